"""The transfer phase diagram (``python -m refimpl phase --transfer``): the
sign and size of the transfer gain over two config fields.

Every cell (x, y) runs the three-stage experiment of docs/model.md §5
``reps`` times, by the batched three-stage path
(:func:`refimpl.lab.measures.measure_outcomes_batched`: every stage in Gram
space, many runs per compiled call, an upstream stage shared by the cells of
one seed trained once per worker; the numbers of
:func:`refimpl.lab.measures.measure_outcomes` to rounding), or run by run
(:func:`~refimpl.lab.measures.measure_outcomes`) when the base freezes the
inherited filters or scores with the sample estimator, which the batched path
does not do. The gain of a
run is err_scratch - err_transfer (clean test errors on the same test draws,
docs/model.md §6.4): positive where transfer helps. Per cell: its mean,
median and standard error, the share of runs with gain > 0, a two-sided sign
test of gain > 0 against gain < 0 (ties left out), and the mean transfer and
scratch errors. The map of the significant sign marks the cells whose sign
test gives p < :data:`SIGN_LEVEL`.

Repetition k of every cell has the same seed (common random numbers across
the grid: the two axis fields do not enter the seed,
:func:`refimpl.lab.seeds.derive_seed`), so neighbouring cells differ by their
fields, not by their draws, and cells that differ only downstream (alpha,
N_2, p_2, ...) share their upstream stage (:mod:`refimpl.memo`). The work
goes through :func:`refimpl.lab.sweep.run_sweep` (one item per run, persisted
as it finishes: an interrupted diagram resumes; ``jobs`` and ``scheduler``
give the same numbers).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import binomtest

from ..batch_transfer import check_batchable
from ..budget import check, run_estimate, shown_value
from ..config import SHORTHANDS
from ..errors import UsageError
from ..files import write_csv, write_json
from ..theory import indicators
from . import figures as F
from .phase import _FIELD_KINDS, _assign, _grid, _save_npz, _stats, _ticks, check_diagram
from .report import cache_dir
from .seeds import stream_salt
from .sweep import run_sweep

__all__ = [
    "TRANSFER_PRESETS",
    "CONTOURS",
    "SIGN_LEVEL",
    "check_transfer_axis_field",
    "gain_statistics",
    "run_transfer_phase",
]

SALT = "phase-transfer"
SIGN_LEVEL = 0.05
"""Two-sided sign-test level of the map of the significant sign."""
METRICS = ("gain", "err_transfer", "err_scratch")
CONTOURS = ("gamma_inh", "gamma_scr", "gamma_ratio")
"""Theory indicators (docs/model.md §7) that ``--contour`` draws: Gamma_inh,
Gamma_scr and their ratio Gamma_inh / Gamma_scr."""

TRANSFER_PRESETS = {
    "transfer-u-n1": {
        "description": "the transfer gain over the shared signal |u| and the upstream "
        "sample size N_1 (two of the paper's factors), the base regime otherwise "
        "(d = 600, m = 10, N_2 = 10, p_2 = 0.1, alpha = 0.5, 200 steps per stage)",
        "base": dict(engine="auto", n_test=5000),
        "x": "u_norm=0:3:0.25",
        "y": "n_up=25,50,100,200,400",
        "reps": 10,
    },
    "transfer-alpha-n2": {
        "description": "the transfer gain over the inherited fraction alpha and the "
        "downstream sample size N_2 at the base regime (the upstream stage is shared "
        "by every cell of a repetition)",
        "base": dict(engine="auto", n_test=5000),
        "x": "alpha=0:1:0.1",
        "y": "n_down=5,10,20,40",
        "reps": 10,
    },
}
"""Named transfer diagrams: a base config (fields over the defaults), the axes
and the repetitions."""

_NOT_AXES = {
    "seed": "is not an axis: repetition k of every cell has its own derived seed; "
    "the repetitions are --reps",
    "snapshots": "changes only what a run stores, not the runs",
}


def check_transfer_axis_field(field, option="--x"):
    """UsageError unless ``field`` (a config field or shorthand) is a numeric
    field of the three-stage experiment.

    Parameters
    ----------
    field : str
        The field or shorthand.
    option : str, optional
        The option's name in the message.

    Raises
    ------
    UsageError
        Naming the option, the field, why it is not an axis and the allowed
        axes.
    """
    targets = SHORTHANDS.get(field, (field,))
    if field in _NOT_AXES:
        why = _NOT_AXES[field]
    elif _FIELD_KINDS.get(targets[0]) in ("int", "real"):
        return
    else:
        why = "is not a config field" if targets[0] not in _FIELD_KINDS else "is not numeric"
    numeric = sorted(k for k, v in _FIELD_KINDS.items() if v in ("int", "real"))
    allowed = ", ".join([f for f in numeric if f not in _NOT_AXES] + sorted(SHORTHANDS))
    raise UsageError(f"{option}: {field!r} {why}; axes: {allowed}")


def gain_statistics(gain):
    """Per cell of ``gain`` (..., reps): mean, median, se, share of runs with
    gain > 0, two-sided sign-test p (ties and missing runs left out; 1 with no
    informative run) and the significant sign (+1 / -1 where p < SIGN_LEVEL,
    else 0).

    Parameters
    ----------
    gain : array_like of shape (..., reps)
        The gain (scratch minus transfer clean error) of every run; NaN for a
        missing run.

    Returns
    -------
    dict of str to ndarray of shape (...)
        ``mean``, ``median``, ``se``, ``share``, ``p`` and ``sign``.
    """
    g = np.asarray(gain, float)
    finite = np.isfinite(g)
    count = finite.sum(axis=-1)
    mean, se = _stats(g)
    with np.errstate(invalid="ignore", divide="ignore"):
        median = np.nanmedian(np.where(finite, g, np.nan), axis=-1) if g.size else mean
    up, down = (finite & (g > 0)).sum(axis=-1), (finite & (g < 0)).sum(axis=-1)
    p = np.ones(up.shape)
    for idx in np.ndindex(up.shape):
        k, n = int(up[idx]), int(up[idx] + down[idx])
        if n:
            p[idx] = binomtest(k, n, 0.5).pvalue
    with np.errstate(invalid="ignore"):
        share = up / count
    sign = np.where(p < SIGN_LEVEL, np.sign(up - down), 0).astype(np.int64)
    return {"mean": mean, "median": median, "se": se, "share": share, "p": p, "sign": sign}


def _contour_values(cells, name):
    def one(cell):
        ind = indicators(cell)
        value = (
            ind["gamma_inh"] / ind["gamma_scr"]
            if name == "gamma_ratio" and ind["gamma_inh"] is not None and ind["gamma_scr"]
            else ind.get(name)
        )
        return np.nan if value is None else float(value)

    return np.array([[one(c) for c in row] for row in cells])


def _check(base, x, y, reps, out, contour):
    check_diagram(out, "phase_transfer", x, y, reps)  # before any work
    if contour is not None and contour not in CONTOURS:
        raise UsageError(f"--contour {contour!r}: one of {', '.join(CONTOURS)}")
    for axis, option in ((x, "--x"), (y, "--y")):
        check_transfer_axis_field(axis.field, option)
    # the largest cell (axis values increase) bounds every cell's cost
    corner = base.replace(**_assign(x.field, x.values[-1]), **_assign(y.field, y.values[-1]))
    memory, work, fields = run_estimate(corner)
    runs = len(x) * len(y) * reps
    check(
        f"the transfer phase diagram ({len(x)} {x.field} x {len(y)} {y.field} cells x "
        f"{shown_value(reps)} repetitions = {shown_value(runs)} three-stage runs)",
        memory,
        work * runs,
        fields,
        corner.to_dict(),
        advice="use fewer cells, fewer repetitions or smaller values",
    )


def measure_of(base):
    """The sweep measure of a diagram: ``outcomes_batched`` unless the base
    config is not batchable (:func:`refimpl.batch_transfer.check_batchable`)."""
    try:
        check_batchable(base)
    except ValueError:
        return "outcomes"
    return "outcomes_batched"


def run_transfer_phase(
    base,
    x,
    y,
    reps,
    out,
    jobs=1,
    scheduler=None,
    progress=True,
    salt=SALT,
    plot=True,
    contour=None,
    command="",
):
    """Compute, save and draw a transfer phase diagram (module docstring).

    Parameters
    ----------
    base : Config
        The three-stage experiment every cell changes two fields of.
    x, y : refimpl.lab.phase.Axis
        Columns and rows (different fields; :func:`check_transfer_axis_field`).
    reps : int
        Repetitions (seeds) per cell.
    out : path
        Folder of ``phase_transfer.npz``, ``.csv``, ``.png`` and ``.json``;
        finished runs are cached in ``out/.sweep-cache``.
    jobs, scheduler : int, str or None
        As :func:`refimpl.lab.sweep.run_sweep`.
    progress : bool, optional
        Print the progress lines (and the run count) on stderr.
    salt : str, optional
        Separates the seed streams (extended by the replication salt when
        one is set).
    plot : bool, optional
        Also draw the PNG (when matplotlib is available).
    command : str, optional
        The command line that asked for it, recorded in the summary.
    contour : str, optional
        A name of :data:`CONTOURS`, drawn as contour lines on both maps.

    Returns
    -------
    dict
        The summary written to ``phase_transfer.json``, with ``files``.

    Raises
    ------
    UsageError
        An output that cannot be written, equal fields on both axes, ``reps``
        not a positive integer, an unknown contour, a field that is not an
        axis.
    """
    started = time.time()
    out = Path(out)
    _check(base, x, y, reps, out, contour)
    cells = _grid(base, x, y)
    flat = [c for row in cells for c in row]
    if progress:
        print(
            f"[refimpl] phase --transfer: {len(x)} x {len(y)} cells x {reps} repetitions = "
            f"{len(flat) * reps} three-stage runs",
            file=sys.stderr,
            flush=True,
        )
    sweep = run_sweep(
        flat,
        measure=measure_of(base),
        replicates=reps,
        jobs=jobs,
        cache=cache_dir(out),
        common=tuple(sorted(_assign(x.field, 0).keys() | _assign(y.field, 0).keys())),
        salt=stream_salt(salt),
        label="phase --transfer",
        progress=progress,
        scheduler=scheduler,
        metrics=METRICS,
    )
    shape = (len(y), len(x), reps)
    data = {k: sweep.values(k).reshape(shape) for k in METRICS}
    stats = gain_statistics(data["gain"])
    arrays = {
        "x_field": np.str_(x.field),
        "y_field": np.str_(y.field),
        "x": np.asarray(x.values),
        "y": np.asarray(y.values),
        "reps": np.int64(reps),
        **{f"gain_{k}": v for k, v in stats.items()},
        "err_transfer_mean": np.nanmean(data["err_transfer"], axis=-1),
        "err_scratch_mean": np.nanmean(data["err_scratch"], axis=-1),
        "gain": data["gain"],
        "err_transfer": data["err_transfer"],
        "err_scratch": data["err_scratch"],
        "seeds": sweep.seeds.reshape(shape),
        "config_json": np.str_(base.to_json()),
    }
    if contour is not None:
        arrays["contour_name"] = np.str_(contour)
        arrays["contour"] = _contour_values(cells, contour)
    written = [_save_npz(out / "phase_transfer.npz", arrays)]
    written.append(_save_csv(out / "phase_transfer.csv", x, y, arrays))
    if plot and F.available():
        written.append(draw_transfer_phase(out / "phase_transfer.png", arrays))
    summary = {
        "command": command,
        "base_config": base.to_dict(),
        "salt": stream_salt(salt),
        "x": {"field": x.field, "values": list(x.values)},
        "y": {"field": y.field, "values": list(y.values)},
        "reps": int(reps),
        "runs": int(np.prod(shape)),
        "diverged": int(np.sum(~np.isfinite(data["gain"]))),
        "cells_positive": int(np.sum(stats["sign"] > 0)),
        "cells_negative": int(np.sum(stats["sign"] < 0)),
        "sign_level": SIGN_LEVEL,
        "runs_computed": sweep.computed,
        "runs_cached": sweep.cached,
        "wall_seconds": time.time() - started,
        "jobs": jobs,
        "scheduler": scheduler,
        "measure": measure_of(base),
    }
    written.append(write_json(out / "phase_transfer.json", summary))
    summary["files"] = [str(p) for p in written]
    return summary


def _save_csv(path, x, y, a):
    keys = ["gain_mean", "gain_median", "gain_se", "gain_share", "gain_p", "gain_sign"]
    keys += ["err_transfer_mean", "err_scratch_mean"] + (["contour"] if "contour" in a else [])
    header = [x.field, y.field] + [
        str(a["contour_name"]) if k == "contour" else k.replace("gain_share", "share_gain_pos")
        for k in keys
    ]
    rows = [
        [xv, yv] + [a[k][i, j].item() for k in keys]
        for i, yv in enumerate(y.values)
        for j, xv in enumerate(x.values)
    ]
    return write_csv(path, header, rows)


def draw_transfer_phase(path, a):
    """Two maps: the mean gain (diverging around 0) and the significant sign
    of the gain (sign test, p < SIGN_LEVEL), with the contour lines of the
    chosen theory indicator on both; returns the path."""
    fig, axes = F.subplots(1, 2, figsize=(12.0, 4.8))
    gain = a["gain_mean"]
    bound = float(np.nanmax(np.abs(gain))) if np.isfinite(gain).any() else 1.0
    im = axes[0].imshow(
        gain, origin="lower", aspect="auto", cmap="RdBu", vmin=-bound, vmax=bound or 1.0
    )
    fig.colorbar(im, ax=axes[0], label=f"mean gain err_scratch - err_transfer ({int(a['reps'])})")
    axes[0].set_title("transfer gain (blue: transfer helps)", fontsize=10)
    im = axes[1].imshow(
        a["gain_sign"], origin="lower", aspect="auto", cmap="RdBu", vmin=-1.5, vmax=1.5
    )
    cbar = fig.colorbar(im, ax=axes[1], ticks=[-1, 0, 1])
    cbar.ax.set_yticklabels(["negative", "not significant", "positive"])
    axes[1].set_title(f"sign of the gain (sign test, p < {SIGN_LEVEL:g})", fontsize=10)
    for ax in axes:
        _draw_contour(ax, a)
        ax.set_xticks(*_ticks(a["x"]))
        ax.set_yticks(*_ticks(a["y"]))
        ax.set_xlabel(str(a["x_field"]))
        ax.set_ylabel(str(a["y_field"]))
    return F.save(fig, path, dpi=110)


def _draw_contour(ax, a):
    if "contour" not in a or min(a["contour"].shape) < 2:
        return
    values = a["contour"]
    with np.errstate(divide="ignore", invalid="ignore"):
        logv = np.log10(np.where(values > 0, values, np.nan))
    if np.isfinite(logv).sum() < 4 or np.nanmax(logv) == np.nanmin(logv):
        return
    filled = np.where(np.isfinite(logv), logv, np.nanmin(logv) - 1.0)
    lines = ax.contour(
        np.arange(len(a["x"])), np.arange(len(a["y"])), filled, colors="k", linewidths=0.8
    )
    ax.clabel(lines, fontsize=6, fmt=lambda v: f"1e{v:.1f}")
    ax.plot([], [], "k-", lw=0.8, label=f"log10 {a['contour_name']}")
    ax.legend(fontsize=7, loc="upper right")
