"""``python -m refimpl phase``: the single-task phase diagram
(:func:`refimpl.lab.phase.run_phase`)."""

from __future__ import annotations

import argparse
import shlex
import sys

from ..config import DEFAULT, Config
from ..errors import UsageError
from ..lab.figures import INSTALL_HINT, available
from ..lab.phase import LEVEL, PRESETS, parse_axis, run_phase
from ..lab.phase_transfer import (
    CONTOURS,
    TRANSFER_PRESETS,
    check_transfer_axis_field,
    run_transfer_phase,
)
from .args import add_config_arguments, add_scheduler_argument, build_config, positive_int

__all__ = ["register"]


def _level(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}")
    return value


def _phase_command(args):
    presets = TRANSFER_PRESETS if args.transfer else PRESETS
    if args.preset and args.preset not in presets:
        kind = "a single-task preset" if args.transfer else "a transfer preset (add --transfer)"
        raise UsageError(
            f"--preset {args.preset} is {kind}; the presets "
            f"{'with' if args.transfer else 'without'} --transfer: {', '.join(sorted(presets))}"
        )
    if args.contour and not args.transfer:
        raise UsageError("--contour draws a theory indicator on a transfer diagram: add --transfer")
    preset = presets.get(args.preset, {}) if args.preset else {}
    x_text, y_text = args.x or preset.get("x"), args.y or preset.get("y")
    if x_text is None or y_text is None:
        raise UsageError("phase needs --x FIELD=SPEC and --y FIELD=SPEC (or --preset NAME)")
    check = check_transfer_axis_field if args.transfer else None
    x, y = parse_axis(x_text, "--x", check), parse_axis(y_text, "--y", check)
    reps = args.reps or preset.get("reps") or 10
    base = Config.from_dict({**DEFAULT.to_dict(), **preset.get("base", {})})
    base = build_config(args.config, args.set or (), base=base)
    if base.seed != DEFAULT.seed:  # never silently: derive_seed leaves it out
        print(
            f"refimpl: note: seed={base.seed} is not read: each run's seed derives from its "
            "cell and repetition (--reps)",
            file=sys.stderr,
        )
    if not args.quiet and not available():
        print(f"refimpl: note: no figure: {INSTALL_HINT}", file=sys.stderr)
    command = (
        "python -m refimpl " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        if sys.argv[1:2] == ["phase"]
        else "python -m refimpl phase"
    )
    if args.transfer:
        return _transfer_command(args, base, x, y, reps, command)
    summary = run_phase(
        base,
        x,
        y,
        reps,
        args.out or "out/phase",
        jobs=args.jobs,
        scheduler=args.scheduler,
        level=args.level,
        progress=not args.quiet,
        command=command,
    )
    fit = summary["boundary"]
    print(
        f"phase diagram: {len(x)} {x.field} x {len(y)} {y.field} cells, {reps} repetitions "
        f"({summary['runs']} runs; rows computed {summary['items_computed']}, cached "
        f"{summary['items_cached']}; {summary['wall_seconds']:.1f} s)"
    )
    if summary["diverged"]:
        print(f"  {summary['diverged']} runs diverged (missing values)")
    if fit["crossings"]:
        print(
            f"  boundary n|mu|^4 = C sigma_p^4 d: C = {fit['C']:.4g} (log C = {fit['log_C']:.3f}"
            f" +- {fit['log_C_se']:.3f}, {fit['crossings']} crossings of clean error "
            f"{fit['level']:g}; {100 * fit['misclassified']:.1f}% of cells on the wrong side)"
        )
    else:
        print(f"  boundary: the mean clean error never crosses {fit['level']:g} on this grid")
    print("wrote " + ", ".join(summary["files"]))
    return 0


def _transfer_command(args, base, x, y, reps, command):
    out = args.out or "out/phase-transfer"
    summary = run_transfer_phase(
        base,
        x,
        y,
        reps,
        out,
        jobs=args.jobs,
        scheduler=args.scheduler,
        progress=not args.quiet,
        contour=args.contour,
        command=command,
    )
    print(
        f"transfer phase diagram: {len(x)} {x.field} x {len(y)} {y.field} cells, {reps} "
        f"repetitions ({summary['runs']} runs; computed {summary['runs_computed']}, cached "
        f"{summary['runs_cached']}; {summary['wall_seconds']:.1f} s)"
    )
    print(
        f"  sign of the gain (sign test, p < {summary['sign_level']:g}): transfer helps in "
        f"{summary['cells_positive']} cells, hurts in {summary['cells_negative']}"
    )
    if summary["diverged"]:
        print(f"  {summary['diverged']} runs diverged (missing values)")
    print("wrote " + ", ".join(summary["files"]))
    return 0


def register(subparsers):
    lines = "\n".join(f"  {name}: {p['description']}" for name, p in PRESETS.items())
    lines += "\n" + "\n".join(
        f"  {name} (--transfer): {p['description']}" for name, p in TRANSFER_PRESETS.items()
    )
    p = subparsers.add_parser(
        "phase",
        help="single-task phase diagram: test error over two config fields",
        description="Train the single task (the upstream task of the config, as the 'single' "
        "measure) on every cell of a grid of two config fields, with repetitions; "
        "the clean and noisy test error (mean and standard error), the boundary "
        "n|mu|^4 = C sigma_p^4 d fitted (where the mean clean error crosses "
        "--level) and drawn. Writes DIR/phase.npz, phase.csv, phase.png and "
        "phase.json; finished grid rows are cached in DIR/.sweep-cache, so an "
        "interrupted run resumes. Axes: FIELD=START:STOP:STEP (STOP included) or "
        "FIELD=V1,V2,...",
        epilog="presets:\n" + lines + "\n\nexample: python -m refimpl phase --preset kou2023 "
        "--jobs 2",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--transfer",
        action="store_true",
        help="a transfer diagram: the gain err_scratch - err_transfer of the three-stage "
        "experiment per cell, its sign test and the map of its significant sign "
        "(writes DIR/phase_transfer.*; default DIR out/phase-transfer)",
    )
    p.add_argument(
        "--contour",
        choices=CONTOURS,
        help="with --transfer: draw this theory indicator (docs/model.md §7) as contours",
    )
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS) + sorted(TRANSFER_PRESETS),
        help="a named diagram (axes, repetitions and base config; options given here override it)",
    )
    p.add_argument("--x", metavar="FIELD=SPEC", help="the columns, e.g. u_norm=0:9.9:0.1")
    p.add_argument("--y", metavar="FIELD=SPEC", help="the rows, e.g. d=100:1090:10")
    p.add_argument(
        "--reps",
        type=positive_int,
        metavar="N",
        help="repetitions per cell (default: the preset's, else 10)",
    )
    add_config_arguments(p)
    p.add_argument(
        "--level",
        type=_level,
        default=LEVEL,
        metavar="E",
        help=f"clean test error whose crossing locates the boundary (default {LEVEL})",
    )
    p.add_argument(
        "--jobs",
        type=positive_int,
        default=1,
        metavar="N",
        help="worker processes (joblib; default 1)",
    )
    add_scheduler_argument(p)
    p.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="output folder (default: out/phase; with --transfer out/phase-transfer)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=_phase_command)
