"""``python -m refimpl plot RUN.npz``: the loss and the coefficients of a run
over the steps, one column per stage."""

from __future__ import annotations

import os

from ..errors import UsageError
from ..lab.figures import INSTALL_HINT, available, figure_path, plot_trajectory

__all__ = ["register"]


def _plot_command(args):
    if not available():
        raise UsageError(INSTALL_HINT)
    stages = [s for part in (args.stage or []) for s in part.split(",") if s]
    if args.out is not None:
        out = figure_path(args.out, "--out")  # before the file is read
    else:
        out = figure_path(os.path.splitext(args.run)[0] + ".png", "(the default of --out)")
    path = plot_trajectory(args.run, out=out, stages=stages)
    print(f"wrote {path}")
    return 0


def register(subparsers):
    p = subparsers.add_parser(
        "plot",
        help="draw a run: loss and coefficients over the steps",
        description="Draw a trajectory file (format 1, e.g. out/trajectory.npz): for each "
        "stage the data loss (log scale) at every step, and gamma, rho_bar and "
        "rho_under at the snapshots (mean and extreme over the filters; "
        "inherited and fresh filters of the fine-tuning stage in two colours).",
    )
    p.add_argument("run", metavar="RUN.npz", help="trajectory file")
    p.add_argument(
        "--out",
        metavar="FIG.png",
        help="output figure (default: RUN.png); its suffix sets the format (png, pdf, svg, "
        "...), .png is added to a name without one; never a folder or a device",
    )
    p.add_argument(
        "--stage",
        action="append",
        metavar="S",
        help="stage(s) to draw: up, down, scratch (repeatable or comma-separated; "
        "default: all in the file)",
    )
    p.set_defaults(func=_plot_command)
