"""The suite: claim modules run one after another into one folder, then
``REPORT.md`` and ``validate.json`` (:mod:`.report`). The lab takes the
modules it is given (:func:`refimpl.claims.run_claims` loads them), so it
never imports the claims.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from pathlib import Path

from .. import budget as B
from ..errors import UsageError
from . import report as R
from .claim import size_estimate
from .seeds import REPLICATE_ENV

__all__ = ["run_suite", "check_budget", "replication", "CLAIM_PARTS"]


def run_suite(modules, order, out, quick=False, jobs=1, stream=None, command=None, replicate=None):
    """Run claim modules and write ``out/REPORT.md`` and ``out/validate.json``.

    Parameters
    ----------
    modules : dict of str to module
        The claims to run (:mod:`refimpl.lab.claim`'s shape), by name.
    order : sequence of str
        The report's order of every claim's name.
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
        ``jobs`` not a positive integer, a bad replication salt, ``modules``
        not a dict of claim modules (:data:`CLAIM_PARTS`) whose names are in
        ``order``, or an output folder that cannot be written.
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
    _check_modules(modules, order)
    out = Path(out)
    R.check_out(out)
    for module in modules.values():  # every claim's budget, before the first one starts
        check_budget(module.PROTOCOL, quick, jobs)
    run_out = out if replicate is None else out / f"replicate-{replicate}"
    start = time.monotonic()
    with replication(replicate):
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


CLAIM_PARTS = ("PROTOCOL", "measure", "decide", "present")
"""What a claim module defines (:mod:`refimpl.lab.claim`)."""


def _check_modules(modules, order):
    """UsageError unless ``modules`` maps names of ``order`` to claim modules."""
    if not hasattr(modules, "items") or isinstance(order, str):
        raise UsageError("run_suite takes a dict of claim modules by name and a list of names")
    unplaced = [str(n) for n in modules if n not in order]
    if unplaced:
        raise UsageError(f"claims without a place in the report order: {', '.join(unplaced)}")
    for name, module in modules.items():
        lacking = [p for p in CLAIM_PARTS if not hasattr(module, p)]
        if lacking:
            raise UsageError(f"claim {name!r} is not a claim module: no {', '.join(lacking)}")


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
def replication(salt):
    """A context in which every sweep draws its seeds from the stream of
    ``salt`` (:data:`refimpl.lab.seeds.REPLICATE_ENV`); the environment as
    it was afterwards.

    Parameters
    ----------
    salt : str or None
        The replication's salt; None: the original stream.
    """
    old = os.environ.pop(REPLICATE_ENV, None)
    if salt is not None:
        os.environ[REPLICATE_ENV] = str(salt)
    try:
        yield
    finally:
        os.environ.pop(REPLICATE_ENV, None)
        if old is not None:
            os.environ[REPLICATE_ENV] = old
