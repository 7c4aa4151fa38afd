"""Resource budget: the memory and the work a job needs, estimated from its
sizes and checked before anything is allocated or any step is taken.

The memory budget is by default half of this machine's physical memory; the
work budget (multiply-adds of the GD steps and the test-error estimates, with
:data:`STEP_OVERHEAD` charged per step) is by default 1e13, roughly half an
hour to an hour on two cores. Both can be raised or lowered with
the environment variables ``REFIMPL_MEMORY_BUDGET`` (bytes, or with a suffix
K, M, G, T: ``16G``) and ``REFIMPL_WORK_BUDGET`` (a number, e.g. ``1e14``), or
with the command line's ``--memory-budget`` and ``--work-budget`` (which set
those variables, so worker processes see them too).

A budget holds for a whole job: a run, a phase diagram with all its cells and
repetitions (:func:`single_estimate` per run), a claim with all its configs
and seeds, a replay with its explain mode. The estimates are upper bounds of
the dominant arrays (float64) and of the work at the step caps (a run that
stops early at its loss target does less), not exact counts; they exist so
that a typo such as ``d=10000000`` ends in one clear line instead of a
MemoryError after minutes of work. They are computed in floating point from
the sizes alone, so that sizes too large for any float give an infinite
estimate (refused, naming the fields) instead of an OverflowError.
"""

from __future__ import annotations

import math
import os

import numpy as np

from .errors import ResourceError
from .gram import GRAM_BUDGET, engine_costs, gram_bytes

__all__ = [
    "MEMORY_ENV",
    "WORK_ENV",
    "MEMORY_OPTION",
    "WORK_OPTION",
    "memory_budget",
    "work_budget",
    "work_budget_given",
    "parse_size",
    "parse_work",
    "run_estimate",
    "single_estimate",
    "image_estimate",
    "check",
    "check_run",
    "format_bytes",
    "format_count",
    "as_float",
    "shown_value",
    "RESULT_BYTES",
    "SINGLE_FIELDS",
    "stage_work",
    "STEP_OVERHEAD",
]

MEMORY_ENV = "REFIMPL_MEMORY_BUDGET"
WORK_ENV = "REFIMPL_WORK_BUDGET"
MEMORY_OPTION = "--memory-budget"
WORK_OPTION = "--work-budget"
DEFAULT_WORK = 1e13
STEP_OVERHEAD = 1e5
"""Multiply-adds charged per GD step on top of its products: a step of a tiny
problem still costs microseconds."""
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_DRAW = 30
"""Multiply-adds charged per standard normal drawn."""
_BATCH_ENTRY = 10
"""Multiply-adds charged per pre-activation entry and step of the batched
single-task kernel (:mod:`refimpl.batch`; about 4 measured on two cores)."""
_BATCH_CHUNK = 256
"""Runs the batched kernel holds at once (``refimpl.batch._CHUNK``)."""
RESULT_BYTES = 256
"""Bytes a finished run's results take in a sweep (a handful of Python floats
in lists, then numpy arrays)."""


# ----------------------------------------------------------------------
# the budgets


def parse_size(text):
    """Bytes from ``"123"``, ``"1.5G"``, ``"512M"`` ...; ResourceError if unreadable."""
    t = str(text).strip().upper().removesuffix("B").removesuffix("I")
    unit = t[-1:] if t[-1:] in _UNITS and t[-1:] != "" else ""
    number = t[: len(t) - len(unit)]
    expected = "the size", "e.g. 8G, 512M or bytes", "size"
    return _positive(number, text, *expected, scale=_UNITS[unit])


def parse_work(text):
    """Multiply-adds from ``"1e14"``; ResourceError if not a positive finite number."""
    return _positive(str(text).strip(), text, "the number", "multiply-adds, e.g. 1e14", "number")


def _positive(number, text, what, expected, kind, scale=1):
    """``number`` times ``scale`` as a positive finite float; ResourceError
    naming ``text`` (what the user gave) otherwise."""
    try:
        value = float(number) * scale
    except ValueError:
        raise ResourceError(f"cannot read {what} {text!r} (expected {expected})") from None
    if not math.isfinite(value) or value <= 0:
        raise ResourceError(f"a budget must be a positive {kind}, got {text!r}")
    return value


def _physical_memory():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def _from_env(name, parse):
    try:
        return parse(os.environ[name])
    except ResourceError as exc:  # set by hand, not through the option
        raise ResourceError(f"{name}: {exc}") from None


def memory_budget():
    """Bytes a job may use: ``REFIMPL_MEMORY_BUDGET`` or half the physical memory."""
    if os.environ.get(MEMORY_ENV) is None:
        return 0.5 * _physical_memory()
    return _from_env(MEMORY_ENV, parse_size)


def work_budget():
    """Multiply-adds a job may do: ``REFIMPL_WORK_BUDGET`` or 1e13."""
    if os.environ.get(WORK_ENV) is None:
        return DEFAULT_WORK
    return _from_env(WORK_ENV, parse_work)


def work_budget_given():
    """True when the work budget was set (``--work-budget`` or ``REFIMPL_WORK_BUDGET``)."""
    return os.environ.get(WORK_ENV) is not None


# ----------------------------------------------------------------------
# numbers in messages


def as_float(value):
    """A numpy float for the estimates (which overflow to inf, never raise);
    inf for an integer beyond the floats."""
    try:
        return np.float64(value)
    except OverflowError:
        return np.float64(np.inf)


def _finite(x):
    """A float estimate; NaN (inf times 0) counts as infinite."""
    x = float(x)
    return math.inf if math.isnan(x) else x


def format_bytes(n):
    """``1.5 GiB``; ``more than 1.8e+308 B`` for an infinite estimate."""
    n = _finite(n)
    if math.isinf(n):
        return "more than 1.8e+308 B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
        n /= 1024


def format_count(n):
    """``2.3e+14``; ``more than 1.8e+308`` for an infinite estimate."""
    n = _finite(n)
    return "more than 1.8e+308" if math.isinf(n) else f"{n:.2g}"


def shown_value(value):
    """A field's value for a message: a huge integer by its magnitude."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        v = int(value)
        if abs(v) >= 10**15:
            if v.bit_length() > 10_000:
                return f"an integer of about {int(v.bit_length() * math.log10(2)) + 1} digits"
            text = str(abs(v))
            return f"{'-' if v < 0 else ''}{text[0]}.{text[1:3]}e+{len(text) - 1}"
    return str(value)


def _about(x):
    return "" if math.isinf(x) else "about "


def _ceil2(x):
    """x rounded up to two significant digits."""
    exp = math.floor(math.log10(x)) - 1
    return math.ceil(x / 10.0**exp) * 10.0**exp


def _raise_size(memory):
    """A --memory-budget value at least ``memory`` bytes (``157G``); None
    beyond a million terabytes."""
    if memory >= 2**60:
        return None
    for unit in ("K", "M", "G", "T"):
        if memory / _UNITS[unit] < 1024 or unit == "T":
            return f"{math.ceil(_ceil2(memory / _UNITS[unit]))}{unit}"
    return None  # unreachable


def check(what, memory, work, fields, values, memory_limit=None, work_limit=None, advice=""):
    """ResourceError naming ``fields`` (their ``values``), the estimate, the
    budget, the option that raises it and a value that would do, when
    ``memory`` bytes or ``work`` multiply-adds exceed the budgets (default:
    :func:`memory_budget`, :func:`work_budget`). ``advice``: what to do
    instead of raising the budget (default ``"use smaller values"``)."""
    memory, work = _finite(memory), _finite(work)
    memory_limit = memory_budget() if memory_limit is None else memory_limit
    work_limit = work_budget() if work_limit is None else work_limit
    shown = ", ".join(f"{f}={shown_value(values[f])}" for f in fields if values.get(f) is not None)
    shown = f" ({shown})" if shown else ""
    advice = advice or "use smaller values"
    if memory > memory_limit:
        size = _raise_size(memory)
        to = f"e.g. {MEMORY_OPTION} {size}" if size else MEMORY_OPTION
        raise ResourceError(
            f"{what} would need {_about(memory)}{format_bytes(memory)} of memory{shown}, over "
            f"the memory budget of {format_bytes(memory_limit)}; {advice} or raise the budget "
            f"({to}, or the variable {MEMORY_ENV})"
        )
    if work > work_limit:
        to = WORK_OPTION if math.isinf(work) else f"e.g. {WORK_OPTION} {format_count(_ceil2(work))}"
        raise ResourceError(
            f"{what} would need {_about(work)}{format_count(work)} multiply-adds{shown}, over "
            f"the work budget of {format_count(work_limit)}; {advice} or raise the budget "
            f"({to}, or the variable {WORK_ENV})"
        )


# ----------------------------------------------------------------------
# estimates


def _choose(condition, a, b):
    """``a`` where ``condition`` else ``b`` (scalars or arrays)."""
    return np.where(condition, a, b) if np.ndim(condition) else (a if condition else b)


def stage_work(n, P, d, m, steps, engine="weight", snapshots=2):
    """Multiply-adds of ``steps`` GD steps (and the loss after them) of one
    stage: in weight space the two products of docs/model.md §3 plus
    :data:`STEP_OVERHEAD` per step; with ``engine="gram"`` (or ``"auto"``,
    where :func:`refimpl.gram.choose_engine` would pick it) the Gram engine's
    cost (:func:`refimpl.gram.engine_costs`) plus the same overhead.
    Scalars or arrays."""
    n, P, d, m, steps = (as_float(v) if np.ndim(v) == 0 else v for v in (n, P, d, m, steps))
    weight = (steps + 1) * (2.0 * (2 * m) * (n * P) * d + STEP_OVERHEAD)
    if engine == "weight":
        return weight
    with np.errstate(over="ignore", invalid="ignore"):
        costs = engine_costs(n, P, m, d, steps, snapshots)
        gram = costs["gram"] + (steps + 1) * STEP_OVERHEAD
        if engine == "gram":
            return gram
        picked = (steps > 0) & (gram_bytes(n, P) <= GRAM_BUDGET) & (costs["gram"] < costs["weight"])
        return _choose(picked, gram, weight)


def _stage(n, P, d, m, steps, snapshots, engine="weight"):
    """Memory and work of one GD stage (docs/model.md §3)."""
    k = np.minimum(snapshots, steps + 1)
    memory = 8.0 * (
        n * P * d  # X
        + (k + 3) * 2 * m * d  # W snapshots, W0, the current W and its gradient
        + 3 * k * 2 * m * n  # rho_bar, rho_under and gamma at the snapshots
        + 3 * n * P * 2 * m  # pre-activations and the per-step coefficients
        + n * d  # xi
        + (steps + 1)
    )  # the loss at every step
    return memory, stage_work(n, P, d, m, steps, engine, snapshots)


RUN_FIELDS = ("d", "m", "m_down", "n_up", "n_down", "steps_up", "steps_down", "snapshots", "n_test")
"""The fields a run's estimate reads (the shape fields)."""


def _values(config, names):
    return {k: as_float(getattr(config, k)) for k in names}


def run_estimate(config):
    """(bytes, multiply-adds, fields) of the three-stage experiment of a
    :class:`refimpl.Config`: the largest stage's memory plus the test set,
    and the work of all stages and the three test-error estimates."""
    c = config
    v = _values(c, ("d", "m", "m2", "n_up", "n_down", "steps_up", "steps_down", "n_test"))
    P, snaps, m, m2, d = c.n_patches, as_float(c.snapshots), v["m"], v["m2"], v["d"]
    with np.errstate(over="ignore", invalid="ignore"):
        stages = {
            "up": _stage(v["n_up"], P, d, m, v["steps_up"], snaps, c.engine),
            "down": _stage(v["n_down"], P, d, m2, v["steps_down"], snaps, c.engine),
            "scratch": _stage(v["n_down"], P, d, m2, v["steps_down"], snaps, c.engine),
        }
        wide = max(m, m2)
        per_point = 2 * wide * (P * d if c.estimator == "sample" else 2 * wide)
        batch = min(v["n_test"], 4096)
        test_memory = 8 * (v["n_test"] + batch * (P * d if c.estimator == "sample" else 2 * m2))
        # the Gram engine's Q (docs/model.md §9), where it may be chosen: at most its budget
        n_max = max(v["n_up"], v["n_down"])
        gram = 0 if c.engine == "weight" else min(gram_bytes(n_max, P), GRAM_BUDGET)
        memory = sum(mem for mem, _ in stages.values()) + test_memory + gram
        work = sum(w for _, w in stages.values()) + 3.0 * v["n_test"] * per_point
    return _finite(memory), _finite(work), RUN_FIELDS


def check_run(config, memory_limit=None, work_limit=None):
    """Check a config's experiment against the budgets before it starts."""
    memory, work, fields = run_estimate(config)
    check("this run", memory, work, fields, config.to_dict(), memory_limit, work_limit)


SINGLE_FIELDS = ("d", "m", "n_up", "steps_up", "snapshots", "n_test")
"""The fields the single task's estimate reads (:func:`single_estimate`)."""


def single_estimate(values, P=2, estimator="reduced", engine="weight"):
    """(bytes, multiply-adds) of one single-task run (the upstream task of a
    config trained alone and scored, :func:`refimpl.lab.measures.measure_single`)
    from the values of :data:`SINGLE_FIELDS` (numbers or arrays, which
    broadcast; ``P`` patches). With the reduced estimator the run is batched
    (:func:`refimpl.batch.run_single_batch`: the draws and the Gram matrix of
    its q = P - 1 + n + 2m basis rows, the compiled steps, the test draws) and
    the memory is a chunk of such runs; otherwise it is the weight-space run."""
    d, m, n, steps = (values[k] for k in ("d", "m", "n_up", "steps_up"))
    snaps, n_test = values["snapshots"], values["n_test"]
    with np.errstate(over="ignore", invalid="ignore"):
        if estimator != "reduced":
            memory, work = _stage(n, P, d, m, steps, snaps, engine)
            return memory + 8.0 * (n_test + 4096 * P * d), work + 2.0 * n_test * 2 * m * P * d
        q = P - 1 + n + 2 * m
        work = (
            q * d * (q / 2 + _DRAW)  # the draws, the projections and the Gram matrix
            + (steps + 1) * _BATCH_ENTRY * 2 * m * n * P  # the compiled steps
            + n_test * 2 * m * (2 * m + _DRAW)  # the reduced estimator's draws
        )
        memory = 8.0 * (_BATCH_CHUNK * (q * q + 3 * q + 2 * n * P) + q * d + 4096 * 2 * m)
    return memory, work


def image_estimate(config, n_images, P, d, n_test):
    """(bytes, multiply-adds) of one real-image run
    (:func:`refimpl.lab.image_experiment.transfer_vs_scratch`) of an
    :class:`~refimpl.lab.image_experiment.ImageConfig` on ``n_images``
    images of ``P`` patches of dimension ``d`` with ``n_test`` test images:
    the patched images, three weight-space stages and two accuracies."""
    c = config
    with np.errstate(over="ignore", invalid="ignore"):
        stages = [
            _stage(as_float(c.n_up), P, d, as_float(c.m), as_float(c.steps_up), 2),
            _stage(as_float(c.n_down), P, d, as_float(c.m), as_float(c.steps_down), 2),
            _stage(as_float(c.n_down), P, d, as_float(c.m), as_float(c.steps_down), 2),
        ]
        images = 8.0 * n_images * P * d * (2 if c.standardize else 1)
        memory = images + sum(mem for mem, _ in stages) + 8.0 * n_test * P * d
        work = sum(w for _, w in stages) + 2.0 * n_test * 2 * c.m * P * d
    return _finite(memory), _finite(work)
