"""Resource budget: the memory and the work a run needs, estimated from its
sizes and checked before anything is allocated or any step is taken.

The memory budget is by default half of this machine's physical memory; the
work budget (multiply-adds of the GD steps and the test-error estimates, with
:data:`STEP_OVERHEAD` charged per step) is by default 1e13, roughly half an
hour to an hour on two cores. Both can be raised or lowered with
the environment variables ``REFIMPL_MEMORY_BUDGET`` (bytes, or with a suffix
K, M, G, T: ``16G``) and ``REFIMPL_WORK_BUDGET`` (a number, e.g. ``1e14``), or
with the command line's ``--memory-budget`` and ``--work-budget`` (which set
those variables, so worker processes see them too).

The estimates are upper bounds of the dominant arrays (float64), not exact
counts; they exist so that a typo such as ``d=10000000`` ends in one clear line
instead of a MemoryError after minutes of work.
"""

from __future__ import annotations

import math
import os

from .errors import ResourceError
from .gram import GRAM_BUDGET, gram_bytes

__all__ = [
    "MEMORY_ENV",
    "WORK_ENV",
    "memory_budget",
    "work_budget",
    "parse_size",
    "run_estimate",
    "check",
    "check_run",
    "format_bytes",
    "stage_work",
    "STEP_OVERHEAD",
]

MEMORY_ENV = "REFIMPL_MEMORY_BUDGET"
WORK_ENV = "REFIMPL_WORK_BUDGET"
DEFAULT_WORK = 1e13
STEP_OVERHEAD = 1e5
"""Multiply-adds charged per GD step on top of its products: a step of a tiny
problem still costs microseconds."""
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_size(text):
    """Bytes from ``"123"``, ``"1.5G"``, ``"512M"`` ...; ResourceError if unreadable."""
    t = str(text).strip().upper().removesuffix("B").removesuffix("I")
    unit = t[-1:] if t[-1:] in _UNITS and t[-1:] != "" else ""
    try:
        value = float(t[: len(t) - len(unit)]) * _UNITS[unit]
    except ValueError:
        raise ResourceError(
            f"cannot read the size {text!r} (expected e.g. 8G, 512M or bytes)"
        ) from None
    if not math.isfinite(value) or value <= 0:
        raise ResourceError(f"a budget must be a positive size, got {text!r}")
    return value


def _physical_memory():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def memory_budget():
    """Bytes a run may use: ``REFIMPL_MEMORY_BUDGET`` or half the physical memory."""
    env = os.environ.get(MEMORY_ENV)
    return parse_size(env) if env else 0.5 * _physical_memory()


def work_budget():
    """Multiply-adds a run may do: ``REFIMPL_WORK_BUDGET`` or 1e13."""
    env = os.environ.get(WORK_ENV)
    if not env:
        return DEFAULT_WORK
    try:
        value = float(env)
    except ValueError:
        raise ResourceError(f"{WORK_ENV}={env!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise ResourceError(f"{WORK_ENV} must be a positive number, got {env!r}")
    return value


def format_bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
        n /= 1024


def stage_work(n, P, d, m, steps):
    """Multiply-adds of ``steps`` GD steps (and the loss after them) of one
    stage: the two products of docs/model.md §3 plus :data:`STEP_OVERHEAD`."""
    return (steps + 1) * (2.0 * (2 * m) * (n * P) * d + STEP_OVERHEAD)


def _stage(n, P, d, m, steps, snapshots):
    """Memory and work of one GD stage (weight-space engine, docs/model.md §3)."""
    k = min(snapshots, steps + 1)
    memory = 8 * (
        n * P * d  # X
        + (k + 3) * 2 * m * d  # W snapshots, W0, the current W and its gradient
        + 3 * k * 2 * m * n  # rho_bar, rho_under and gamma at the snapshots
        + 3 * n * P * 2 * m  # pre-activations and the per-step coefficients
        + n * d  # xi
        + (steps + 1)
    )  # the loss at every step
    work = stage_work(n, P, d, m, steps)
    return memory, work


def run_estimate(config):
    """(bytes, multiply-adds, fields) of the three-stage experiment of a
    :class:`refimpl.Config`: the largest stage's memory plus the test set,
    and the work of all stages and the three test-error estimates."""
    c = config
    P, m2 = c.n_patches, c.m2
    stages = {
        "up": _stage(c.n_up, P, c.d, c.m, c.steps_up, c.snapshots),
        "down": _stage(c.n_down, P, c.d, m2, c.steps_down, c.snapshots),
        "scratch": _stage(c.n_down, P, c.d, m2, c.steps_down, c.snapshots),
    }
    batch = min(c.n_test, 4096)
    per_point = 2 * max(c.m, m2) * (P * c.d if c.estimator == "sample" else 2 * max(c.m, m2))
    test_memory = 8 * (c.n_test + batch * (P * c.d if c.estimator == "sample" else 2 * m2))
    # the Gram engine's Q (docs/model.md §9), where it may be chosen: at most its budget
    n_max = max(c.n_up, c.n_down)
    gram = 0 if c.engine == "weight" else min(gram_bytes(n_max, P), GRAM_BUDGET)
    memory = sum(mem for mem, _ in stages.values()) + test_memory + gram
    work = sum(w for _, w in stages.values()) + 3.0 * c.n_test * per_point
    return (
        memory,
        work,
        ("d", "m", "m_down", "n_up", "n_down", "steps_up", "steps_down", "snapshots", "n_test"),
    )


def check(what, memory, work, fields, values, memory_limit=None, work_limit=None):
    """ResourceError naming ``fields`` when ``memory`` bytes or ``work``
    multiply-adds exceed the budgets."""
    memory_limit = memory_budget() if memory_limit is None else memory_limit
    work_limit = work_budget() if work_limit is None else work_limit
    shown = ", ".join(f"{f}={values[f]}" for f in fields if values.get(f) is not None)
    shown = f" ({shown})" if shown else ""
    if memory > memory_limit:
        raise ResourceError(
            f"{what} would need about {format_bytes(memory)} of memory{shown}, over the "
            f"budget of {format_bytes(memory_limit)}; use smaller values or raise the budget "
            f"(--memory-budget or {MEMORY_ENV})"
        )
    if work > work_limit:
        raise ResourceError(
            f"{what} would need about {work:.2g} multiply-adds{shown}, over the budget of "
            f"{work_limit:.2g}; use smaller values or raise the budget (--work-budget or "
            f"{WORK_ENV})"
        )


def check_run(config, memory_limit=None, work_limit=None):
    """Check a config's experiment against the budgets before it starts."""
    memory, work, fields = run_estimate(config)
    check("this run", memory, work, fields, config.to_dict(), memory_limit, work_limit)
