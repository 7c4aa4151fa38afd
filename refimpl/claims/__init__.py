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

:func:`run_claims` loads several and has the lab run them
(:func:`refimpl.lab.suite.run_suite`), which writes the suite's
``REPORT.md`` and ``validate.json``.
"""

from __future__ import annotations

import importlib
import pkgutil

from ..errors import UsageError
from ..lab.suite import run_suite

__all__ = ["ORDER", "names", "load", "run_claims", "DEFAULT_OUT"]

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
        Claims to run (names of :func:`names`); None or empty: all of them.
    out, quick, jobs, stream, command, replicate : optional
        As :func:`refimpl.lab.suite.run_suite`, which runs the claims (``out``:
        :data:`DEFAULT_OUT` by default).

    Returns
    -------
    dict
        The report state of :func:`refimpl.lab.suite.run_suite`.

    Raises
    ------
    UsageError
        An unknown claim (before any claim runs), and as
        :func:`refimpl.lab.suite.run_suite`.
    ResourceError
        As :func:`refimpl.lab.suite.run_suite`.
    """
    order = names()
    modules = {n: load(n) for n in dict.fromkeys(selected or order)}
    return run_suite(modules, order, out, quick, jobs, stream, command, replicate)
