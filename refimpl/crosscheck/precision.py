"""Precision is not a departure: judging a file whose weights are float32
numbers at float32 precision (used by ``crosscheck`` and by explain mode,
:mod:`refimpl.crosscheck.explain`).

Judgement. In a file of float64 numbers every candidate is judged at the
user's rtol. In a file whose weights are float32 numbers:

- a candidate with float32 arithmetic is judged against the drift of a
  float32 replay of that same candidate from its float64 replay (normwise
  relative): the tolerance is :data:`FLOAT32_FACTOR` times that drift (at
  least FLOAT32_FACTOR float32 epsilons; two float32 runs that sum in
  different orders drift apart by about as much as either drifts from
  float64), and the loss only at the steps where float32 can resolve it:
  float32 rounds the two outputs F_+1, F_-1 by about eps32 times their size,
  so the loss is resolved where FLOAT32_FACTOR eps32 mean_i(F_+1 + F_-1) is
  within the tolerance (about: the outputs are no larger than twice the
  loss); at the other steps only that resolution itself is required (torch's
  float32 cross-entropy, for one, loses relative precision as the loss
  falls);
- a candidate in float64 arithmetic is judged at float32 storage precision
  (rtol eps32): the file then holds float64 dynamics rounded on output.

Snapshot 0 of a float32 file is compared with float32(W0) (storage rounding,
not dynamics).

Precision is not a departure: ``crosscheck`` judges a float32 file at float32
precision before explain mode is needed (:func:`judge_at_float32`): first at
float32 storage precision (refimpl's own dynamics rounded on output), then
against the drift of a float32 replay of refimpl's conventions (the same
judgement as a float32 candidate above). ``--strict-precision`` judges it at
the user's rtol instead.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .compare import DEFAULT_RTOL, EPS32, STEP0_NOTE, compare_arrays, float32_valued
from .variants import Convention, variant_train

__all__ = [
    "FLOAT32_FACTOR",
    "STORAGE_VERDICT",
    "ARITHMETIC_VERDICT",
    "float32_file",
    "judge_float32",
    "judge_at_float32",
]

FLOAT32_FACTOR = 10.0  # float32 agreement within this many times float32's own drift
NO_VARIANT = Convention()  # the GD of docs/model.md §3.4 (frozen: safe as a shared default)


def float32_file(view) -> bool:
    """True when the stage's weight snapshots after step 0 (all, if there is
    only one) are float32 numbers."""
    W = view.W[1:] if len(view.W) > 1 else view.W
    return float32_valued(W)


def judge_float32(r32, r64, steps, rtol=DEFAULT_RTOL):
    """The float32 tolerances of a candidate from its float32 and float64 replays.

    Returns
    -------
    tol_W, tol_loss : float
        max(rtol, FLOAT32_FACTOR * max(drift, eps32)) for W (normwise relative
        drift at the snapshots) and the loss (at the steps where float32
        resolves it).
    floor : ndarray of shape (T + 1,)
        float32's absolute resolution of the loss per step,
        FLOAT32_FACTOR eps32 mean_i(F_+1 + F_-1) (module docstring).
    """
    floor = FLOAT32_FACTOR * EPS32 * np.abs(r64.logits)
    own_W = compare_arrays(r32.W, r64.W, steps)[1]
    resolved = floor <= FLOAT32_FACTOR * EPS32 * np.abs(r64.loss)
    drift = np.abs(r32.loss - r64.loss) / np.maximum(np.abs(r64.loss), np.finfo(float).tiny)
    own_L = float(np.max(drift[resolved], initial=0.0))
    tol = lambda own: max(rtol, FLOAT32_FACTOR * max(own, EPS32))  # noqa: E731
    return tol(own_W), tol(own_L), floor


STORAGE_VERDICT = "refimpl's own dynamics, rounded to float32 on output"
ARITHMETIC_VERDICT = "refimpl's dynamics in float32 arithmetic"
_JUDGED = ("W", "b", "loss", "gamma", "rho_bar", "rho_under")


def judge_at_float32(view, compare, rtol=DEFAULT_RTOL, before_replays=None):
    """The rows of a stage whose weights are float32 numbers, judged at
    float32 precision (``crosscheck``'s default for such files; module
    docstring).

    First at float32 storage precision: every quantity at rtol
    max(rtol, eps32). When that fails, at float32 arithmetic precision: the
    tolerances of :func:`judge_float32` from a float32 and a float64 replay of
    refimpl's conventions (plain numpy) from the file's inputs, W, b and the
    coefficients within FLOAT32_FACTOR x the float32 replay's drift, the loss
    likewise where float32 resolves it and within its resolution elsewhere.

    Parameters
    ----------
    view : refimpl.trajectory.StageView
    compare : callable
        ``compare(tolerances, floors) -> list of Row``: the stage's
        :func:`~refimpl.crosscheck.compare.compare_runs` of the file and the
        reference with those arguments.
    rtol : float
        The user's rtol (a lower bound of every tolerance).
    before_replays : callable, optional
        Called before the two replays (a budget check).

    Returns
    -------
    rows : list of Row
        Each row's note says the precision and its rtol.
    judged : dict
        ``precision`` ("storage" or "arithmetic"), ``rtol_W``, ``rtol_loss``,
        ``agree``, ``verdict`` (:data:`STORAGE_VERDICT`,
        :data:`ARITHMETIC_VERDICT` or "") and ``line`` (how, in words).
    """
    storage = max(rtol, EPS32)
    rows = compare(dict.fromkeys(_JUDGED, storage), {})
    if all(r.ok for r in rows):
        line = (
            f"float32 file judged at float32 storage precision (rtol {storage:.2g}): "
            f"every quantity agrees: {STORAGE_VERDICT}"
        )
        judged = dict(precision="storage", rtol_W=storage, rtol_loss=storage)
        return _noted(rows, "storage", dict.fromkeys(_JUDGED, storage)), dict(
            judged, agree=True, verdict=STORAGE_VERDICT, line=line
        )
    if before_replays is not None:
        before_replays()
    args = (view.W0, view.X, view.y, float(view.eta), float(view.weight_decay), view.trainable)
    args += (view.T, view.steps)
    r64 = variant_train(*args, NO_VARIANT)
    r32 = variant_train(*args, replace(NO_VARIANT, dtype="float32"))
    tol_W, tol_L, floor = judge_float32(r32, r64, view.steps, rtol)
    tolerances = dict.fromkeys(_JUDGED, tol_W)
    tolerances["loss"] = tol_L
    rows = compare(tolerances, {"loss": floor})
    agree = all(r.ok for r in rows)
    line = (
        f"float32 file judged at float32 precision: not within storage precision (rtol "
        f"{storage:.2g}), so as float32 arithmetic: W, b and coefficients within "
        f"{FLOAT32_FACTOR:g} x the drift of a float32 replay of refimpl's conventions (rtol "
        f"{tol_W:.2g}), the loss at rtol {tol_L:.2g} where float32 resolves it and within its "
        "resolution elsewhere" + (f": every quantity agrees: {ARITHMETIC_VERDICT}" if agree else "")
    )
    judged = dict(precision="arithmetic", rtol_W=tol_W, rtol_loss=tol_L, agree=agree)
    return _noted(rows, "arithmetic", tolerances), dict(
        judged, verdict=ARITHMETIC_VERDICT if agree else "", line=line
    )


def _noted(rows, what, tolerances):
    """The rows with their precision and rtol in the note, in place of
    compare_runs' step-0 note (skipped rows unchanged)."""
    for r in rows:
        if not r.skipped:
            note = r.note.replace(STEP0_NOTE, "").strip("; ")
            here = f"float32 {what}, rtol {tolerances.get(r.quantity, 0.0):.2g}"
            r.note = "; ".join(filter(None, [note, here]))
    return rows
