"""``python -m refimpl realdata``: transfer vs scratch on real images
(:func:`refimpl.claims.realdata.run_realdata`)."""

from __future__ import annotations

import argparse

from ..claims.realdata import run_realdata
from ..lab.images import DIGITS, NPZ_FORMAT
from .args import positive_int

__all__ = ["register"]


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
    print(
        f"\nwrote {args.out}/realdata/ (results.json, points.csv, runs.csv, README.md"
        f"{', figures' if result['figures'] else ''})"
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
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=_realdata_command)
