"""The single-task phase diagram (``python -m refimpl phase``): clean and noisy
test error (mean and standard error over repetitions) over a grid of two
config fields, with the theory's boundary ``n |mu|^4 = C sigma_p^4 d``
(docs/model.md §7, §8.2) fitted and drawn.

The single task is the upstream task of the config, trained alone, as in
:func:`refimpl.lab.measures.measure_single`. Cell (x, y), repetition k runs
with the seed ``derive_seed(cell, k, salt=...)`` of the sweeps
(:mod:`refimpl.lab.seeds`), so a cell's numbers are those of
``run_sweep(cells, measure="single")`` (up to rounding) and depend neither on
the batching nor on the workers. The work goes through
:func:`refimpl.lab.sweep.run_sweep`, one item per grid row (a row's cells
share their shapes when the y field is the only one that changes them):
each item trains all of its runs with :func:`refimpl.batch.run_single_batch`
and is persisted as it finishes, so a killed run resumes with every finished
row; ``jobs`` and ``scheduler`` (dask.distributed) give the same numbers.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, fields
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..batch import run_single_batch
from ..budget import (
    RESULT_BYTES,
    SINGLE_FIELDS,
    as_float,
    check,
    shown_value,
    single_estimate,
)
from ..config import SHORTHANDS, Config
from ..errors import ConfigError, UsageError
from ..files import atomic_write, check_output, write_csv, write_json
from ..theory import indicators
from . import figures as F
from .measures import measure_single
from .report import cache_dir, check_out
from .seeds import derive_seed, stream_salt
from .sweep import run_sweep

__all__ = [
    "Axis",
    "parse_axis",
    "PRESETS",
    "measure_phase_row",
    "run_phase",
    "check_diagram",
    "fit_boundary",
    "LEVEL",
    "MAX_VALUES",
    "SALT",
]

LEVEL = 0.2
"""Default clean test error whose crossing locates the boundary."""
MAX_VALUES = 10_000
"""Most values an axis may have."""
SALT = "phase"
_FIELD_KINDS = {f.name: f.metadata.get("kind") for f in fields(Config)}

# kou2023: the grid, repetitions, n, m, steps, step size, test points, sigma_p
# and p = 0.1 (their ``flip = 0.1``: y = -yhat with probability 0.1) are those
# of Kou et al.'s syntheticrelu.py (uclaml/Benign_ReLU_CNN), whose heatmap is
# the error on test labels flipped like the training labels: our noisy error.
# The model is the theory's (docs/model.md §2-3), not their script's: noise
# orthogonal to mu (theirs: N(0, I_d)), F_j = (1/m) sum over filters and sum
# over patches (theirs: sum over filters, mean over the 2 patches, so their
# step of 0.1 moves the weights about m/2 = 5 times as far), no bias, Gaussian
# init N(0, sigma_0^2) with sigma_0 = 0.01 (refimpl's default and the std of
# their initialize_weights, which their script defines but leaves commented
# out: PyTorch's default Conv1d init applies there), logistic loss in
# float64 (theirs: cross-entropy on two logits in float32). The patch order
# (theirs: random per input) does not change f.
PRESETS = {
    "kou2023": {
        "description": "Kou et al. (ICML 2023), the test-error heatmap of their syntheticrelu.py "
        "in the theory's exact model: |mu| = 0..9.9 step 0.1, d = 100..1090 step "
        "10, 10 repetitions, n = 20, m = 10, 100 GD steps of size 0.1, 1000 test "
        "draws, sigma_p = 1, label flips p = 0.1, sigma_0 = 0.01",
        "base": dict(
            d=100,
            m=10,
            n_up=20,
            n_down=1,
            u_norm=0.0,
            v_up_norm=0.0,
            v_down_norm=0.0,
            sigma_p_up=1.0,
            sigma_p_down=1.0,
            flip_up=0.1,
            flip_down=0.0,
            eta=0.1,
            sigma_0=0.01,
            steps_up=100,
            steps_down=0,
            epsilon=0.0,
            weight_decay_up=0.0,
            snapshots=2,
            n_test=1000,
            estimator="reduced",
            layout="joint",
        ),
        "x": "u_norm=0:9.9:0.1",
        "y": "d=100:1090:10",
        "reps": 10,
    },
}
"""Named phase diagrams: a base config (fields over the defaults), the axes and the repetitions."""


@dataclass(frozen=True)
class Axis:
    """One axis of the grid: a config field (or shorthand) and its values.

    Attributes
    ----------
    field : str
        A numeric config field or a shorthand (``n``, ``sigma_p``, ``flip``).
    values : tuple of int or float
        The grid's values along the axis.
    """

    field: str
    values: tuple

    def __len__(self):
        return len(self.values)


SINGLE_TASK_FIELDS = (
    "d",
    "m",
    "n_up",
    "u_norm",
    "v_up_norm",
    "sigma_p_up",
    "flip_up",
    "eta",
    "sigma_0",
    "weight_decay_up",
    "steps_up",
    "epsilon",
    "n_test",
)
"""The numeric fields the single task's runs read (the upstream task, its
training and its test error): the only possible axes. The downstream fields
(``alpha``, ``n_down``, ``steps_down``, ...) change stages the diagram does not
run, ``snapshots`` only what a run stores, and ``seed`` is not read: a run's
seed derives from its cell and repetition (``--reps`` is the repetition axis)."""
_EXPONENT = 308
"""Axis values are finite floats: at most 1e308 in magnitude, and not below
1e-307 unless zero."""


def check_axis_field(field, option="--x"):
    """UsageError unless ``field`` (a config field or shorthand) changes the
    diagram's runs (:data:`SINGLE_TASK_FIELDS`); the message says why not."""
    targets = SHORTHANDS.get(field, (field,))
    if any(t in SINGLE_TASK_FIELDS for t in targets):
        return
    kind = _FIELD_KINDS.get(targets[0])
    if field == "seed":
        why = (
            "is not an axis: a run's seed derives from its cell and repetition, not from "
            "the seed field; the repetitions are --reps"
        )
    elif kind not in ("int", "real"):
        why = "is not a config field" if kind is None else "is not a numeric field"
    elif field == "snapshots":
        why = "changes only what a run stores, not the runs"
    else:
        why = (
            "changes only the downstream stages (transfer, fine-tuning, scratch), which the "
            "single-task diagram does not run"
        )
    allowed = ", ".join(SINGLE_TASK_FIELDS + tuple(sorted(SHORTHANDS)))
    raise UsageError(f"{option}: {field!r} {why}; axes: {allowed}")


def _number(text, field, kind, option):
    text = text.strip()
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise UsageError(f"{option} {field}: {text!r} is not a number") from None
    if not value.is_finite():
        raise UsageError(f"{option} {field}: {text!r} is not a finite number")
    if value and not -_EXPONENT < value.adjusted() <= _EXPONENT:
        raise UsageError(
            f"{option} {field}: {_cut(text)} is out of range (a value is 0 or between "
            f"1e-{_EXPONENT - 1} and 1e{_EXPONENT} in magnitude)"
        )
    if kind == "int" and value != value.to_integral_value():
        raise UsageError(f"{option} {field} takes integers, got {_cut(text)}")
    return Fraction(value)


def _cut(text, limit=40):
    return text if len(text) <= limit else f"{text[:20]}... ({len(text)} characters)"


def _range(spec, field, kind, option):
    """START, START + STEP, ... up to STOP, as exact fractions: the count is
    checked against :data:`MAX_VALUES` from the arithmetic before any value
    is made."""
    parts = spec.split(":")
    if len(parts) != 3:
        raise UsageError(f"{option} {field}: a range is START:STOP:STEP, got {spec!r}")
    start, stop, step = (_number(p, field, kind, option) for p in parts)
    if step <= 0 or stop < start:
        raise UsageError(
            f"{option} {field}: a range needs STEP > 0 and STOP >= START, got {_cut(spec)!r}"
        )
    count = (stop - start) // step + 1
    if count > MAX_VALUES:
        raise UsageError(f"{option} {field}: {shown_value(count)} values, more than {MAX_VALUES}")
    return [start + k * step for k in range(count)]


def _list(spec, field, kind, option):
    parts = spec.split(",")
    if len(parts) > MAX_VALUES:
        raise UsageError(f"{option} {field}: more than {MAX_VALUES} values")
    if not all(p.strip() for p in parts):
        raise UsageError(f"{option} {field}: an empty value in {_cut(spec)!r}")
    values = [_number(p, field, kind, option) for p in parts]
    if any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise UsageError(f"{option} {field}: the values must be increasing, got {_cut(spec)!r}")
    return values


def parse_axis(text, option="--x", check_field=None):
    """``FIELD=START:STOP:STEP`` (START, START + STEP, ... up to STOP,
    included when it is on the grid; exact decimal arithmetic, so 0:9.9:0.1
    is the 100 numbers 0.0, 0.1, ..., 9.9, and the count is known before any
    value is made) or ``FIELD=V1,V2,...`` (increasing). FIELD is a numeric
    :class:`~refimpl.Config` field or a shorthand (``n``, ``sigma_p``,
    ``flip``) that changes the single task's runs (:func:`check_axis_field`,
    or ``check_field(field, option)`` when given). UsageError naming the
    option and the field for anything else.

    Parameters
    ----------
    text : str
        The option's value.
    option : str, optional
        The option's name in messages.
    check_field : callable, optional
        ``check_field(field, option)`` raises UsageError for a field that is
        not an axis; default :func:`check_axis_field`.

    Returns
    -------
    Axis
        The field and its values (ints for an integer field).

    Raises
    ------
    UsageError
        Text without ``=``, a field that is not an axis, or bad values.
    """
    if not isinstance(text, str) or "=" not in text:
        raise UsageError(
            f"{option} expects FIELD=START:STOP:STEP or FIELD=V1,V2,..., got {_cut(str(text))!r}"
        )
    field, spec = (part.strip() for part in text.split("=", 1))
    (check_field or check_axis_field)(field, option)
    kind = _FIELD_KINDS.get(SHORTHANDS.get(field, (field,))[0])
    read = _range if ":" in spec else _list
    values = read(spec, field, kind, option)
    cast = int if kind == "int" else float
    return Axis(field, tuple(cast(v) for v in values))


# ----------------------------------------------------------------------
# the sweep item: one grid row


def _assign(field, value):
    """The config fields an axis value sets (a shorthand sets both tasks)."""
    return {name: value for name in SHORTHANDS.get(field, (field,))}


def _cell(row, field, value):
    return row.replace(**_assign(field, value))


class _SeedFields:
    """A cell's seed fields computed once for all of its repetitions (what
    :func:`refimpl.lab.seeds.derive_seed` reads of a config)."""

    def __init__(self, cell):
        self._values = cell.seed_fields()

    def seed_fields(self):
        return dict(self._values)


def measure_phase_row(config, x_field, x_values, reps, salt):
    """The sweep measure: every cell of one grid row (``config`` with
    ``x_field`` set to each of ``x_values``), ``reps`` repetitions each,
    seeds ``derive_seed(cell, k, (), salt)``. Flat lists of length
    ``len(x_values) * reps`` (cell-major): ``err``, ``noisy``, ``loss``,
    ``steps``, ``stopped``, ``seed`` (a diverged run: None errors).

    Parameters
    ----------
    config : Config
        The row's config (its y field set).
    x_field : str
        The column field.
    x_values : sequence of float
        The column values.
    reps : int
        Repetitions per cell.
    salt : str
        The seed stream's salt.

    Returns
    -------
    dict
        The flat lists named above.
    """
    cells = [_cell(config, x_field, v) for v in x_values]
    runs = [c for c in cells for _ in range(reps)]
    seeds = [derive_seed(f, k, (), salt) for f in map(_SeedFields, cells) for k in range(reps)]
    if config.estimator == "reduced":
        res = run_single_batch(runs, seeds)
    else:  # the sample estimator: one run at a time
        each = [measure_single(c.replace(seed=s)) for c, s in zip(runs, seeds, strict=True)]
        res = {
            k: np.array([e[k] for e in each], dtype=float)
            for k in ("err", "noisy", "loss", "steps", "stopped")
        }
    return {
        "err": res["err"],
        "noisy": res["noisy"],
        "loss": res["loss"],
        "steps": np.asarray(res["steps"], np.int64),
        "stopped": np.asarray(res["stopped"], bool),
        "seed": seeds,
    }


# ----------------------------------------------------------------------
# the boundary


def fit_boundary(indicator, clean, level=LEVEL):
    """C of the boundary ``n |mu|^4 = C sigma_p^4 d``, a one-parameter fit in
    log space: wherever the mean clean error of two neighbouring cells (along
    either axis) lies on both sides of ``level``, the crossing's log
    indicator is interpolated linearly in the error; log C is the mean of
    those crossings (the least-squares fit of log K* = log C).

    Parameters
    ----------
    indicator : ndarray of shape (ny, nx)
        Kou et al.'s indicator n |mu|^4 / (sigma_p^4 d) per cell.
    clean : ndarray of shape (ny, nx)
        Mean clean test error per cell (NaN: missing).
    level : float
        The clean error whose crossing marks the boundary.

    Returns
    -------
    dict
        ``C``, ``log_C``, ``log_C_se`` (standard error over the crossings),
        ``crossings``, ``misclassified`` (share of the cells with a positive
        indicator and an error on the wrong side of ``level`` for the fitted
        boundary), ``level``. NaN when nothing crosses.
    """
    K = np.asarray(indicator, float)
    err = np.asarray(clean, float)
    found = []
    for axis in (0, 1):
        k1, k2 = np.moveaxis(K, axis, 0)[:-1], np.moveaxis(K, axis, 0)[1:]
        e1, e2 = np.moveaxis(err, axis, 0)[:-1], np.moveaxis(err, axis, 0)[1:]
        with np.errstate(invalid="ignore", divide="ignore"):
            ok = (
                ((e1 >= level) != (e2 >= level))
                & np.isfinite(e1)
                & np.isfinite(e2)
                & (k1 > 0)
                & (k2 > 0)
                & np.isfinite(k1)
                & np.isfinite(k2)
            )
            w = (e1 - level) / (e1 - e2)
            found.append((np.log(k1) + w * (np.log(k2) - np.log(k1)))[ok])
    logs = np.concatenate(found)
    out = {
        "level": float(level),
        "crossings": int(logs.size),
        "C": math.nan,
        "log_C": math.nan,
        "log_C_se": math.nan,
        "misclassified": math.nan,
    }
    if logs.size == 0:
        return out
    log_c = float(logs.mean())
    out.update(
        log_C=log_c,
        C=math.exp(log_c),
        log_C_se=float(logs.std(ddof=1) / math.sqrt(logs.size)) if logs.size > 1 else math.nan,
    )
    cells = (K > 0) & np.isfinite(err)
    if cells.any():
        wrong = (err[cells] >= level) != (np.log(K[cells]) < log_c)
        out["misclassified"] = float(wrong.mean())
    return out


# ----------------------------------------------------------------------
# the diagram


def _grid(base, x, y):
    """The cells, rows (y) by columns (x); ConfigError naming the cell."""
    rows = []
    for yv in y.values:
        row = []
        for xv in x.values:
            try:
                row.append(base.replace(**_assign(y.field, yv), **_assign(x.field, xv)))
            except ConfigError as exc:
                raise ConfigError(f"cell {x.field}={xv}, {y.field}={yv}: {exc}") from None
        rows.append(row)
    return rows


_CHUNK_CELLS = 1 << 20
"""Cells whose estimates are computed at once (a chunk of grid rows)."""


def _axis_values(axis, costly):
    """The axis' values as floats where they change a run's estimate, else
    its first value only: (values, how many cells each stands for)."""
    values = [as_float(v) for v in axis.values] if costly else [as_float(axis.values[0])]
    return np.array(values, float), (1 if costly else len(axis))


def phase_estimate(base, x, y, reps, jobs=1):
    """(bytes, multiply-adds) of a whole diagram before any cell's config is
    built: the sum over every cell and repetition of
    :func:`refimpl.budget.single_estimate` (from the axis values and the base
    config's fields, an axis that changes no estimate counted once per
    value), the memory of ``min(jobs, rows)`` rows at once at the largest
    cell, and the results of every run."""
    x_fields, y_fields = SHORTHANDS.get(x.field, (x.field,)), SHORTHANDS.get(y.field, (y.field,))
    X, x_count = _axis_values(x, any(f in SINGLE_FIELDS for f in x_fields))
    Y, y_count = _axis_values(y, any(f in SINGLE_FIELDS for f in y_fields))
    values = {k: as_float(getattr(base, k)) for k in SINGLE_FIELDS}
    kw = dict(P=base.n_patches, estimator=base.estimator, engine=base.engine)
    work = memory = 0.0
    rows = max(1, _CHUNK_CELLS // len(X))
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, len(Y), rows):
            part = Y[start : start + rows, None]
            cells = dict(values, **{f: X[None, :] for f in x_fields if f in values})
            cells.update({f: part for f in y_fields if f in values})
            mem, w = single_estimate(cells, **kw)
            work += float(np.sum(np.broadcast_to(w, (len(part), len(X)))))
            memory = max(memory, float(np.max(mem)))
        runs = as_float(len(x)) * as_float(len(y)) * as_float(reps)
        work *= x_count * y_count * as_float(reps)
        memory = memory * min(jobs, len(y)) + runs * RESULT_BYTES
    return memory, work


def _check_budget(base, x, y, reps, jobs):
    """ResourceError before anything is built when the whole diagram
    (:func:`phase_estimate`) exceeds the memory or the work budget."""
    memory, work = phase_estimate(base, x, y, reps, jobs)
    shown = {k: getattr(base, k) for k in SINGLE_FIELDS}
    for axis in (x, y):
        for f in SHORTHANDS.get(axis.field, (axis.field,)):
            ends = dict.fromkeys(shown_value(v) for v in (axis.values[0], axis.values[-1]))
            shown[f] = "..".join(ends)
    runs = len(x) * len(y) * reps
    check(
        f"the phase diagram ({len(x)} {x.field} x {len(y)} {y.field} cells x {shown_value(reps)} "
        f"repetitions = {shown_value(runs)} runs)",
        memory,
        work,
        [f for f in SINGLE_FIELDS if f in shown],
        shown,
        advice="use fewer cells, fewer repetitions or smaller values",
    )


def _indicator(cell):
    value = indicators(cell)["up"]["kou_indicator"]
    return math.nan if value is None else value


def _stats(values):
    """(mean, se) over the last axis, NaN-aware."""
    finite = np.isfinite(values)
    count = finite.sum(axis=-1)
    total = np.where(finite, values, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        dev = np.where(finite, values - mean[..., None], 0.0)
        sd = np.sqrt((dev**2).sum(axis=-1) / (count - 1))
        se = np.where(count > 1, sd / np.sqrt(count), np.nan)
    return mean, se


def check_diagram(out, stem, x, y, reps):
    """Before any work of a diagram: the output folder and its files
    ``stem.npz``, ``.csv``, ``.png``, ``.json`` (never a folder or a device),
    two different axis fields, a positive integer count of repetitions.

    Parameters
    ----------
    out : pathlib.Path
        The output folder.
    stem : str
        The name of the diagram's files (``phase``, ``phase_transfer``).
    x, y : Axis
        Columns and rows of the grid.
    reps : int
        Repetitions per cell.

    Raises
    ------
    UsageError
        Naming what is wrong.
    """
    check_out(out)
    for suffix in ("npz", "csv", "png", "json"):
        check_output(out / f"{stem}.{suffix}", "--out")
    if set(_assign(x.field, 0)) & set(_assign(y.field, 0)):
        raise UsageError(f"--x and --y must be different fields, got {x.field} and {y.field}")
    if isinstance(reps, bool) or not isinstance(reps, int) or reps < 1:
        raise UsageError(f"the repetitions must be a positive integer, got {reps!r}")


def run_phase(
    base,
    x,
    y,
    reps,
    out,
    jobs=1,
    scheduler=None,
    level=LEVEL,
    progress=True,
    salt=SALT,
    plot=True,
    command="",
):
    """Compute, save and draw a phase diagram.

    Parameters
    ----------
    base : Config
        The single task is its upstream task (``n_up``, ``u_norm`` and
        ``v_up_norm``, ``sigma_p_up``, ``flip_up``, ``steps_up``, ...).
    x, y : Axis
        Columns and rows of the grid (different fields).
    reps : int
        Repetitions (seeds) per cell.
    out : path
        Folder of ``phase.npz``, ``phase.csv``, ``phase.png``, ``phase.json``;
        the cache of finished rows is ``out/.sweep-cache``.
    jobs, scheduler : int, str or None
        As :func:`refimpl.lab.sweep.run_sweep`.
    level : float
        Clean error whose crossing locates the boundary (:func:`fit_boundary`).
    progress : bool, optional
        Print the progress lines (and the run count) on stderr.
    salt : str, optional
        Separates the seed streams (extended by the replication salt when
        one is set).
    plot : bool, optional
        Also draw the PNG (when matplotlib is available).
    command : str, optional
        The command line that asked for it, recorded in the summary.

    Returns
    -------
    dict
        The summary written to ``phase.json``, with ``files``.

    Raises
    ------
    UsageError
        An output that cannot be written, equal fields on both axes, ``reps``
        not a positive integer, ``level`` outside (0, 1), a field that is not
        an axis.
    ResourceError
        Before anything is built, when the whole diagram exceeds the budget.
    """
    started = time.time()
    out = Path(out)
    check_diagram(out, "phase", x, y, reps)
    if not 0.0 < level < 1.0:
        raise UsageError(f"--level must be in (0, 1), got {level}")
    for axis, option in ((x, "--x"), (y, "--y")):
        check_axis_field(axis.field, option)
    _check_budget(base, x, y, reps, jobs)  # the whole diagram, before any cell is built
    cells = _grid(base, x, y)
    salt = stream_salt(salt)
    options = {"x_field": x.field, "x_values": list(x.values), "reps": int(reps), "salt": salt}
    order = sorted(range(len(y)), key=lambda i: -_cost(cells[i][0]))  # largest rows first
    if progress:
        print(
            f"[refimpl] phase: {len(x)} x {len(y)} cells x {reps} repetitions = "
            f"{len(x) * len(y) * reps} runs in {len(y)} items",
            file=sys.stderr,
            flush=True,
        )
    sweep = run_sweep(
        [cells[i][0] for i in order],
        measure=measure_phase_row,
        replicates=1,
        jobs=jobs,
        cache=cache_dir(out),
        options=options,
        label="phase",
        progress=progress,
        scheduler=scheduler,
        metrics=("err", "noisy", "loss", "steps", "stopped", "seed"),
    )
    shape = (len(y), len(x), reps)
    data = {k: np.empty(shape) for k in ("err", "noisy", "loss", "steps", "stopped")}
    seeds = np.empty(shape, np.int64)
    for item, i in enumerate(order):
        res = sweep.results[item][0]
        for k in data:
            data[k][i] = np.array([np.nan if v is None else v for v in res[k]], float).reshape(
                len(x), reps
            )
        seeds[i] = np.array(res["seed"], np.int64).reshape(len(x), reps)
    clean_mean, clean_se = _stats(data["err"])
    noisy_mean, noisy_se = _stats(data["noisy"])
    K = np.array([[_indicator(c) for c in row] for row in cells])
    fit = fit_boundary(K, clean_mean, level)
    arrays = {
        "x_field": np.str_(x.field),
        "y_field": np.str_(y.field),
        "x": np.asarray(x.values),
        "y": np.asarray(y.values),
        "reps": np.int64(reps),
        "clean_mean": clean_mean,
        "clean_se": clean_se,
        "noisy_mean": noisy_mean,
        "noisy_se": noisy_se,
        "clean": data["err"],
        "noisy": data["noisy"],
        "final_loss": data["loss"],
        "steps": data["steps"].astype(np.int64),
        "stopped": data["stopped"] > 0,
        "seeds": seeds,
        "indicator": K,
        "boundary_C": np.float64(fit["C"]),
        "boundary_log_C_se": np.float64(fit["log_C_se"]),
        "boundary_level": np.float64(level),
        "boundary_crossings": np.int64(fit["crossings"]),
        "config_json": np.str_(base.to_json()),
    }
    written = [_save_npz(out / "phase.npz", arrays), _save_csv(out / "phase.csv", x, y, arrays)]
    if plot and F.available():
        written.append(draw_phase(out / "phase.png", arrays, fit))
    summary = {
        "command": command,
        "base_config": base.to_dict(),
        "salt": salt,
        "x": {"field": x.field, "values": list(x.values)},
        "y": {"field": y.field, "values": list(y.values)},
        "reps": int(reps),
        "runs": int(np.prod(shape)),
        "diverged": int(np.sum(~np.isfinite(data["err"]))),
        "items_computed": sweep.computed,
        "items_cached": sweep.cached,
        "boundary": fit,
        "wall_seconds": time.time() - started,
        "jobs": jobs,
        "scheduler": scheduler,
    }
    written.append(write_json(out / "phase.json", summary))
    summary["files"] = [str(p) for p in written]
    return summary


def _cost(cell):
    """Relative cost of a row's runs (drawing and the Gram set-up grow with d)."""
    return cell.d * (cell.n_up + 2 * cell.m) + 30 * cell.steps_up * (cell.n_up + 1) ** 2 * cell.m


def _save_npz(path, arrays):
    atomic_write(path, lambda fh: np.savez(fh, **arrays))
    return path


def _save_csv(path, x, y, a):
    header = [
        x.field,
        y.field,
        "kou_indicator",
        "clean_error",
        "clean_error_se",
        "noisy_error",
        "noisy_error_se",
        "reps_finite",
        "mean_steps",
        "mean_final_loss",
        "frac_stopped",
    ]
    rows = []
    for i, yv in enumerate(y.values):
        for j, xv in enumerate(x.values):
            finite = int(np.isfinite(a["clean"][i, j]).sum())
            loss = a["final_loss"][i, j][np.isfinite(a["final_loss"][i, j])]
            rows.append(
                [
                    xv,
                    yv,
                    a["indicator"][i, j],
                    a["clean_mean"][i, j],
                    a["clean_se"][i, j],
                    a["noisy_mean"][i, j],
                    a["noisy_se"][i, j],
                    finite,
                    float(np.mean(a["steps"][i, j])),
                    float(loss.mean()) if loss.size else None,
                    float(np.mean(a["stopped"][i, j])),
                ]
            )
    return write_csv(path, header, rows)


def _ticks(values, count=10):
    idx = np.unique(np.linspace(0, len(values) - 1, min(count, len(values))).round().astype(int))
    return idx, [f"{values[i]:g}" for i in idx]


def draw_phase(path, a, fit):
    """Two heatmaps (mean clean and noisy test error per cell) with the
    fitted boundary ``n|mu|^4 = C sigma_p^4 d`` (the contour K = C of the
    indicator) drawn on both; returns the path."""
    fig, axes = F.subplots(1, 2, figsize=(12.0, 4.8))
    x, y = a["x"], a["y"]
    K = a["indicator"]
    with np.errstate(divide="ignore"):
        logK = np.log(np.where(K > 0, K, np.nan))
    for ax, key, label in (
        (axes[0], "clean_mean", "clean test error"),
        (axes[1], "noisy_mean", "noisy test error"),
    ):
        im = ax.imshow(
            a[key],
            origin="lower",
            aspect="auto",
            cmap="YlGnBu",
            vmin=0.0,
            vmax=max(0.5, float(np.nanmax(a[key])) if np.isfinite(a[key]).any() else 0.5),
            interpolation="nearest",
        )
        fig.colorbar(im, ax=ax, label=f"{label} (mean over {int(a['reps'])})")
        if np.isfinite(fit["C"]) and np.isfinite(logK).sum() > 3 and min(K.shape) > 1:
            filled = np.where(np.isfinite(logK), logK, np.nanmin(logK) - 10.0)
            ax.contour(
                np.arange(len(x)),
                np.arange(len(y)),
                filled,
                levels=[fit["log_C"]],
                colors="r",
                linestyles="--",
                linewidths=1.5,
            )
            ax.plot(
                [],
                [],
                "r--",
                label=f"fitted n|mu|^4 = C sigma_p^4 d, C = {fit['C']:.3g} "
                f"({fit['crossings']} crossings of {fit['level']:g})",
            )
            ax.legend(fontsize=7, loc="upper right")
        ax.set_xticks(*_ticks(x))
        ax.set_yticks(*_ticks(y))
        ax.set_xlabel(str(a["x_field"]))
        ax.set_ylabel(str(a["y_field"]))
        ax.set_title(f"{label} over ({a['x_field']}, {a['y_field']})", fontsize=10)
    return F.save(fig, path, dpi=110)
