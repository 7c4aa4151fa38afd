"""The ``crosscheck`` and ``decompose`` subcommands (argparse only; each calls
one function of :mod:`refimpl.crosscheck`).

::

    python -m refimpl crosscheck THEIRS.npz [REF.npz] [--rtol R] [--atol A]
                                 [--convention NAMES] [--stage S] [--no-explain]
                                 [--explain-steps N] [--strict-precision] [--json FILE]
    python -m refimpl decompose RUN.npz [--out NEW.npz]

Exit status of ``crosscheck``: 0 when every quantity agrees, 1 when any
differs or a consistency check of the file fails, 2 for unusable input (the
error's one line, printed by :mod:`refimpl.cli`). A file of float32 numbers is
judged at float32 precision unless ``--strict-precision``.
"""

from __future__ import annotations

import sys

from .. import crosscheck as cc
from ..crosscheck.coefficients import SPAN_TOLERANCE
from ..files import check_output, write_json
from ..lab.progress import Progress
from ..trajectory import STAGES

__all__ = ["register", "crosscheck_command", "decompose_command"]


def crosscheck_command(args):
    """``crosscheck``: print the report, optionally write it as JSON; the exit status."""
    if args.json:
        check_output(args.json, "--json")  # before the comparison
    report = cc.crosscheck(
        args.theirs,
        args.reference,
        rtol=args.rtol,
        atol=args.atol,
        explain=not args.no_explain,
        stages=args.stage,
        explain_steps=args.explain_steps,
        convention=args.convention,
        strict_precision=args.strict_precision,
        progress=Progress(),
    )
    print(report.format())
    if args.json:
        write_json(args.json, report.to_dict())
    return report.status


def decompose_command(args):
    """``decompose``: add projected coefficients to a weights-only file; a
    warning line for a stage whose weights are not in the span of its data."""
    target = check_output(args.out, "--out") if args.out else check_output(args.run, "RUN.npz")
    added = cc.decompose(args.run, args.out)
    if added:
        errors = ", ".join(f"{s} {e:.2g}" for s, e in added.items())
        print(
            f"added coefficients by projection to {', '.join(added)} (relative "
            f"reconstruction error {errors}); wrote {target}"
        )
        for s, e in added.items():
            if e > SPAN_TOLERANCE:
                print(
                    f"refimpl: warning: {s}: the weights are not in the span of the signals "
                    f"and noise vectors (relative reconstruction error {e:.2g} > "
                    f"{SPAN_TOLERANCE:g}): the coefficients describe their projection only",
                    file=sys.stderr,
                )
    else:
        print(
            "every stage already has coefficients; nothing added"
            + (f" (copied to {target})" if args.out else ""),
            file=sys.stderr,
        )
    return 0


def register(subparsers):
    """Add the ``crosscheck`` and ``decompose`` subcommands."""
    names = ", ".join(k for k, v in cc.VARIANTS.items() if v is not None)
    p = subparsers.add_parser(
        "crosscheck",
        help="compare a trajectory file with refimpl (replay or a second file)",
        description="Compare THEIRS.npz (trajectory format 1) with refimpl: with a replay of "
        "its own inputs, or with REF.npz. Reports, per stage and quantity, the "
        "largest absolute and relative differences and the first step at which "
        "the tolerance is exceeded; on a difference, explain mode names the "
        "smallest combination of convention variants that reproduces it. The file is "
        "first checked against itself (frozen filters, snapshot 0, the step-0 loss, the "
        "transfer, ...). Exit status 0 all agree, 1 any differs or a check fails, 2 "
        "unusable input.",
    )
    p.add_argument("theirs", metavar="THEIRS.npz")
    p.add_argument(
        "reference",
        metavar="REF.npz",
        nargs="?",
        help="reference file (default: replay THEIRS with refimpl)",
    )
    p.add_argument(
        "--rtol",
        type=float,
        default=cc.DEFAULT_RTOL,
        help=f"relative tolerance (default {cc.DEFAULT_RTOL:g})",
    )
    p.add_argument(
        "--atol",
        type=float,
        default=None,
        help="absolute tolerance (default: rtol times the largest |value| of the "
        "quantity at that snapshot)",
    )
    p.add_argument(
        "--convention",
        metavar="NAMES",
        help=f"replay under these conventions, comma-separated ({names}, "
        "lr_scale=C, relu_prime=V, momentum=MU, lr_schedule=0:1/50:0.1), "
        "e.g. filter_sum,patch_mean,bias,float32",
    )
    p.add_argument(
        "--stage", action="append", choices=STAGES, help="compare only this stage (repeatable)"
    )
    p.add_argument("--no-explain", action="store_true", help="skip explain mode")
    p.add_argument(
        "--explain-steps",
        type=int,
        metavar="N",
        help="explain mode replays only the first N steps (default: all)",
    )
    p.add_argument(
        "--strict-precision",
        action="store_true",
        help="judge a file of float32 numbers at --rtol like any other (default: at float32 "
        "precision, where refimpl's dynamics rounded to float32 or run in float32 agree)",
    )
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    p.set_defaults(func=crosscheck_command)

    q = subparsers.add_parser(
        "decompose",
        help="add coefficients recovered by projection to a weights-only file",
        description="Recover gamma, rho_bar and rho_under from the weight snapshots by the "
        "projection of docs/model.md §4.4 for every stage of RUN.npz that lacks "
        "them, and write the file (atomically) in place or to --out.",
    )
    q.add_argument("run", metavar="RUN.npz")
    q.add_argument("--out", metavar="NEW.npz", help="write here instead of in place")
    q.set_defaults(func=decompose_command)
