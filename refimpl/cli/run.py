"""``python -m refimpl run``: the main job (upstream, transfer, fine-tuning,
scratch baseline), its summary and its trajectory file."""

from __future__ import annotations

import os

from ..files import check_output
from ..lab.figures import INSTALL_HINT, available
from ..lab.job import run_job
from ..lab.report import check_out
from .args import add_config_arguments, build_config

__all__ = ["register"]


def _run_command(args):
    if args.plot and not available():
        print(f"refimpl: note: no figure: {INSTALL_HINT}")
    plot = args.plot and available()
    config = build_config(args.config, args.set or ())
    check_out(args.out)  # the folder, then its files, before any work
    for name in ("trajectory.npz", "summary.json") + (("run.png",) if plot else ()):
        check_output(os.path.join(args.out, name), "--out")
    run_job(config, out=args.out, quiet=args.quiet, plot=plot)
    return 0


def register(subparsers):
    p = subparsers.add_parser(
        "run",
        help="the main job: upstream, transfer, fine-tuning and scratch baseline",
        description="Train the upstream model, transfer a fraction alpha of its filters, "
        "fine-tune downstream and train the scratch baseline; print a summary "
        "and write DIR/trajectory.npz and DIR/summary.json (and DIR/run.png "
        "with --plot).",
    )
    add_config_arguments(p)
    p.add_argument("--out", metavar="DIR", default="out", help="output folder (default: out)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument(
        "--plot",
        action="store_true",
        help="also draw DIR/run.png (the loss and coefficients over the steps; "
        "see the plot subcommand)",
    )
    p.set_defaults(func=_run_command)
