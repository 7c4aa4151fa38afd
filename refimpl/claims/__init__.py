"""The claims: one module per claim of docs/model.md §8, discovered as the
public modules of this package (a module whose name starts with ``_`` is a
helper, not a claim: ``_base`` holds the procedures several claims share;
``history/<name>.md`` holds a claim's disclosed protocol changes).

A claim is a declaration (:mod:`refimpl.lab.claim`): its module defines
``PROTOCOL`` (a :class:`~refimpl.lab.claim.Protocol` in both sizes),
``measure(size, sweep)``, a pure ``decide(size, measurements)`` and
``present(size, measurements, decision)``; the lab runs it and writes its
JSON, CSVs, figures and report section. Adding a claim is one module here,
its thin script ``validation/<name>.py``, its tests
``tests/claims/test_<name>.py`` (with ``examples(size)`` for the registry
test) and, to fix its place in the report, a line in :data:`ORDER`. No
claim imports another.

:func:`run_claims` runs several and writes the suite's ``REPORT.md`` and
``validate.json``.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pkgutil
import re
import sys
import time
from pathlib import Path

from .. import budget as B
from ..errors import UsageError
from ..lab import report as R
from ..lab.claim import size_estimate
from ..lab.seeds import REPLICATE_ENV

__all__ = ["ORDER", "names", "load", "run_claims", "check_budget", "DEFAULT_OUT"]

ORDER = (
    "coefficients",
    "phase_single",
    "gain_shared",
    "gain_upstream_n",
    "gain_alpha",
    "gain_noise_dim",
    "negative_transfer",
    "transfer_phase",
    "gamma_candidates",
    "bayes",
    "failure_mode",
    "mechanism",
    "mitigation",
    "mitigation_freezing",
    "robustness",
    "crosscheck",
    "realdata",
)
"""Report order; claims not listed here follow in alphabetical order."""

DEFAULT_OUT = "out/validation"


def names():
    """The claims of this package, in report order.

    Returns
    -------
    list of str
        The module names: those of the report's order first, then any others
        alphabetically.
    """
    found = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
    return [n for n in ORDER if n in found] + [n for n in found if n not in ORDER]


def load(name):
    """The claim module ``name``; UsageError for an unknown name.

    Parameters
    ----------
    name : str
        A name of :func:`names`.

    Returns
    -------
    module
        The imported claim module.

    Raises
    ------
    UsageError
        When ``name`` is not a claim.
    """
    known = names()
    if name not in known:
        raise UsageError(f"unknown claim {name!r}; known: {', '.join(known)}")
    return importlib.import_module(f"{__name__}.{name}")


def run_claims(
    selected=None, out=DEFAULT_OUT, quick=False, jobs=1, stream=None, command=None, replicate=None
):
    """Run claims and write ``out/REPORT.md`` and ``out/validate.json``.

    Parameters
    ----------
    selected : list of str, optional
        Claims to run; None or empty: all of them.
    out : path
        Output folder (checked to be writable before any claim runs). The
        sections of claims not run now are kept from an earlier run into the
        same folder with the same ``quick`` setting, so the report stays complete.
    quick : bool
        The CI-size version of every claim.
    jobs : int
        Worker processes each claim's sweeps may use.
    stream : file-like, optional
        Where the progress lines go; None: standard error.
    command : str, optional
        The command line recorded in the report.
    replicate : str, optional
        A replication: the same protocols on a seed stream independent of the
        original one, derived from this salt (letters, digits, ``._-``). Its
        outputs go to ``out/replicate-SALT/``; ``out/REPORT.md`` gains a
        replication column, and a claim is confirmed when it passes on both.

    Returns
    -------
    dict
        The report state: ``entries`` (one per claim), ``wall_seconds``, ...

    Raises
    ------
    UsageError
        ``jobs`` not a positive integer, a bad replication salt, an unknown
        claim, or an output folder that cannot be written.
    ResourceError
        Before the first claim runs, when a claim's size exceeds the budget
        (:func:`check_budget`).
    """
    stream = sys.stderr if stream is None else stream
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise UsageError(f"--jobs must be a positive integer, got {jobs!r}")
    if replicate is not None and not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", str(replicate)):
        raise UsageError(
            f"--replicate takes a salt of letters, digits, '.', '_' or '-' "
            f"(at most 64), got {replicate!r}"
        )
    order = names()
    chosen = list(dict.fromkeys(selected or order))
    modules = {n: load(n) for n in chosen}  # usage errors before any work
    out = Path(out)
    R.check_out(out)
    for n in chosen:  # every claim's budget, before the first one starts
        check_budget(modules[n].PROTOCOL, quick, jobs)
    run_out = out if replicate is None else out / f"replicate-{replicate}"
    start = time.monotonic()
    with _replication(replicate):
        entries = {
            n: R.run_entry(modules[n], n, run_out, quick, jobs, stream)
            for n in order
            if n in modules
        }
    wall = time.monotonic() - start
    try:
        if replicate is not None:
            R.write_report(
                run_out, R.merge_state(run_out, entries, order, quick, wall, jobs, command)
            )
        state = R.merge_state(
            out,
            entries,
            order,
            quick,
            wall,
            jobs,
            command,
            None if replicate is None else (replicate, entries),
        )
        R.write_report(out, state)
    except OSError as exc:
        raise UsageError(
            f"cannot write the report into --out {out}: {exc.strerror or exc}"
        ) from None
    print(
        f"[refimpl] validate: wrote {out / R.REPORT_NAME} ({wall:.1f} s)", file=stream, flush=True
    )
    return state


def check_budget(protocol, quick=False, jobs=1):
    """ResourceError (one line naming the claim, the estimate and the option
    to raise) when a claim's size (:func:`refimpl.lab.claim.size_estimate`:
    its configs and seeds, at the step caps) exceeds the memory budget, or a
    work budget that was given (``--work-budget`` or ``REFIMPL_WORK_BUDGET``).
    The default work budget does not apply: a claim's sizes are its
    protocol's, not typed by the user, and its step caps are far above what
    runs stopping at a loss target do (phase_single's full size: about 1e14
    at the caps, a few minutes of work).

    Parameters
    ----------
    protocol : Protocol
        The claim's protocol.
    quick : bool, optional
        Its CI size instead of the full one.
    jobs : int, optional
        Worker processes (runs held in memory at once).

    Raises
    ------
    ResourceError
        When the estimate exceeds the budget.
    """
    memory, work, runs = size_estimate(protocol.size(quick), jobs)
    ways = ([] if quick else ["--quick"]) + (["fewer --jobs"] if jobs > 1 else [])
    B.check(
        f"claim {protocol.name} ({'quick' if quick else 'full'} size: {runs} runs at their "
        f"step caps, --jobs {jobs})",
        memory,
        work if B.work_budget_given() else 0.0,
        (),
        {},
        advice="use " + ", ".join(ways) if ways else "run other claims",
    )


@contextlib.contextmanager
def _replication(salt):
    """Every sweep inside draws its seeds from the stream of ``salt``
    (:data:`refimpl.lab.seeds.REPLICATE_ENV`; None: the original stream)."""
    old = os.environ.pop(REPLICATE_ENV, None)
    if salt is not None:
        os.environ[REPLICATE_ENV] = str(salt)
    try:
        yield
    finally:
        os.environ.pop(REPLICATE_ENV, None)
        if old is not None:
            os.environ[REPLICATE_ENV] = old
