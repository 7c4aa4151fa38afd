"""``python -m refimpl realdata``: transfer vs scratch on real images, the
realdata claim (:mod:`refimpl.claims.realdata`) run with the command line's
images, patches, splits and seeds (:func:`run_realdata`).

Every (point, seed) is an item of the sweep cache ``DIR/.sweep-cache``,
persisted as it finishes, so a killed run resumes where it stopped. The
outputs (``realdata.json``, ``points.csv``, ``runs.csv``, ``README.md``, the
figures) are written into a temporary folder beside ``DIR/realdata/`` that is
swapped in at the end (:func:`staged_folder`): a killed run leaves the previous
complete outputs or the new complete ones, never a mix of two runs."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import types
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from ..budget import check, shown_value
from ..claims import realdata as C
from ..errors import ConfigError
from ..files import write_text
from ..lab.claim import ClaimSweep, Size, run_claim, size_estimate
from ..lab.images import DIGITS, NPZ_FORMAT, Split, load_source, source_options
from .args import add_scheduler_argument, positive_int

__all__ = ["register", "run_realdata", "make_size", "staged_folder"]


def make_size(quick=False, patch=4, standardize=False, split=None, split_none=None, seeds=None):
    """The claim's full (or quick) size with the command line's choices: patch side,
    standardisation, a class split (text, :meth:`Split.parse`: levels ``half`` = it and
    ``same`` = its downstream task upstream, plus ``none`` = ``split_none``) and the
    seeds per point. ConfigError for a split_none that does not fit."""
    size = C.PROTOCOL.size(quick)
    base = size.configs["base"].replace(k=patch, standardize=standardize)
    levels = None
    if split is not None:
        main = Split.parse(split)
        levels = {"half": main, "same": main.same()}
        if split_none is not None:
            none = Split.parse(split_none)
            if none.classes("down") != main.classes("down"):
                raise ConfigError(
                    f"split_none {split_none!r} must have the downstream task of split {split!r}"
                )
            levels = {"none": none, **levels}
        base = base.replace(split=main)
    elif split_none is not None:
        raise ConfigError("split_none needs split (it is the no-shared-class variant of it)")
    return C.image_size(base, size.seeds if seeds is None else seeds, size.x, levels)


@contextmanager
def staged_folder(final):
    """Yield a fresh temporary folder ``tmp`` beside ``final``; on a normal exit
    ``tmp / final.name`` replaces ``final`` whole (the old folder is renamed
    away first and deleted last: killed between the two renames, the previous
    outputs stay intact under a ``.old`` name), on an exception ``tmp`` is
    deleted. Stale temporary folders of killed runs are deleted first."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}-*"):
        if stale.suffix in (".tmp", ".old") and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}-", suffix=".tmp"))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if final.exists():
        old = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}-", suffix=".old"))
        os.rename(final, old)  # onto the empty folder just made
    os.rename(tmp / final.name, final)
    shutil.rmtree(tmp, ignore_errors=True)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def run_realdata(out, quick=False, jobs=1, source=DIGITS, size=None, progress=True, **choices):
    """Run the realdata claim into ``out/realdata/`` (swapped in whole) with the
    sweep cache ``out/.sweep-cache``: the library function of the command.
    ``source``: "digits" or a .npz path (:data:`refimpl.lab.images.NPZ_FORMAT`);
    ``size`` defaults to :func:`make_size` ``(quick, **choices)``. Data and
    option errors are raised before any folder is made. Returns the claim's
    report entry (:func:`refimpl.lab.claim.run_claim`)."""
    size = make_size(quick, **choices) if size is None else size
    options = source_options(source)
    name = load_source(**options).name
    size = Size(size.configs, size.seeds, **{**size.values, "source": options})
    _check_budget(size, jobs, quick)  # the whole job, before any folder or run
    claim = C.CLAIM_TEMPLATE.format(data=name, k=size.configs["base"].k)
    protocol = replace(C.PROTOCOL, claim=claim, full=size, quick=size)
    sweep = ClaimSweep(protocol, size, out, jobs)
    sweep.progress = progress
    measurements = C.measure(size, sweep)

    def measured(size, sweep):
        return measurements

    module = types.SimpleNamespace(
        PROTOCOL=protocol, measure=measured, decide=C.decide, present=C.present
    )
    with staged_folder(Path(out) / "realdata") as tmp:
        entry = run_claim(module, tmp, quick=quick, jobs=jobs)
        write_text(tmp / "realdata" / "README.md", entry["markdown"])
    return entry


def _check_budget(size, jobs, quick):
    """ResourceError when every run of the size (its points and seeds at
    their step caps, :func:`refimpl.lab.claim.size_estimate`) exceeds the
    memory or the work budget."""
    memory, work, runs = size_estimate(size, jobs)
    ways = (
        ([] if quick else ["--quick"]) + ["fewer --seeds"] + (["fewer --jobs"] if jobs > 1 else [])
    )
    check(
        f"realdata ({shown_value(runs)} runs at their step caps, --jobs {jobs})",
        memory,
        work,
        (),
        {},
        advice="use " + ", ".join(ways),
    )


def _realdata_command(args):
    result = run_realdata(
        args.out,
        quick=args.quick,
        jobs=args.jobs,
        source=args.npz or DIGITS,
        progress=not args.quiet,
        patch=args.patch,
        standardize=args.standardize,
        split=args.split,
        split_none=args.split_none,
        seeds=args.seeds,
    )
    print(result["markdown"].split("\n\nPoints")[0])
    figures = any((Path(args.out) / "realdata").glob("*.png"))
    print(
        f"\nwrote {args.out}/realdata/ (realdata.json, points.csv, runs.csv, README.md"
        f"{', figures' if figures else ''})"
    )
    return 0


def register(subparsers):
    p = subparsers.add_parser(
        "realdata",
        help="partial parameter transfer on real images: transfer vs scratch",
        description="Transfer vs scratch on real images (default: scikit-learn's bundled "
        "digits, offline) with the same CNN and GD as the synthetic runs: accuracy "
        "against alpha (per shared-structure level), N_2, N_1 and upstream label "
        "noise, with verdicts. Writes DIR/realdata/ (replaced whole at the end); "
        "finished items are cached in DIR/.sweep-cache, so an interrupted run "
        "resumes.",
        epilog="User images: --npz FILE.\n" + NPZ_FORMAT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="smoke-test size (seconds)")
    p.add_argument(
        "--jobs",
        type=positive_int,
        default=1,
        metavar="N",
        help="worker processes (joblib; default 1)",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        default="out",
        help="output folder; results go to DIR/realdata/ (default: out)",
    )
    p.add_argument("--npz", metavar="FILE", help="use a user's .npz of images and labels")
    p.add_argument(
        "--split",
        metavar="SPEC",
        help="class split UP_POS/UP_NEG:DOWN_POS/DOWN_NEG, e.g. 3,5/8,9:3,2/8,7 "
        "(default: the digits design)",
    )
    p.add_argument(
        "--split-none",
        metavar="SPEC",
        help="with --split: an upstream split sharing no class with the downstream task",
    )
    p.add_argument(
        "--patch", type=positive_int, default=4, metavar="K", help="patch side k (default 4)"
    )
    p.add_argument(
        "--standardize",
        action="store_true",
        help="standardise patch coordinates (statistics of the downstream training images)",
    )
    p.add_argument(
        "--seeds",
        type=positive_int,
        default=None,
        metavar="N",
        help="seeds per point (default 20; --quick: 3)",
    )
    add_scheduler_argument(p)
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=_realdata_command)
