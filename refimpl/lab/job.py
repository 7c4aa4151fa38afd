"""The main job of ``python -m refimpl run`` as a library function: the
three-stage experiment, its summary and its files."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..files import write_json
from ..summary import format_summary, summarize
from ..trajectory import save
from ..transfer import run_experiment
from .figures import plot_trajectory
from .progress import Progress
from .report import check_out

__all__ = ["run_job"]


def run_job(config, out="out", quiet=False, plot=False, stream=None):
    """Train up, transfer, fine-tune and the scratch baseline; print the
    summary; write ``out/trajectory.npz`` and ``out/summary.json`` (and
    ``out/run.png`` with ``plot``: :func:`refimpl.lab.figures.plot_trajectory`).

    The trajectory is written before the summary, so a failure while
    summarising never loses the run. Returns the summary dict.

    Parameters
    ----------
    config : Config
        The run's configuration.
    out : str or os.PathLike, optional
        The output folder (checked writable before the work starts).
    quiet : bool, optional
        No progress lines.
    plot : bool, optional
        Also draw ``out/run.png``.
    stream : file-like, optional
        Where the summary is printed; None: standard output.

    Returns
    -------
    dict
        The summary (:func:`refimpl.summary.summarize`) with the config under
        ``config``.
    """
    stream = sys.stdout if stream is None else stream
    check_out(Path(out))  # a bad --out is found before the work
    progress = Progress(enabled=not quiet)
    exp = run_experiment(config, progress=progress.stage)
    traj_path = os.path.join(out, "trajectory.npz")
    save(traj_path, exp)
    summary = summarize(exp)
    summary["config"] = config.to_dict()
    json_path = write_json(os.path.join(out, "summary.json"), summary)
    print(format_summary(summary), file=stream)
    written = [traj_path, json_path]
    if plot:
        written.append(plot_trajectory(traj_path, os.path.join(out, "run.png")))
    print("\nwrote " + ", ".join(os.fspath(p) for p in written), file=stream)
    return summary
