"""Comparing two runs quantity by quantity: the tolerance rule, the row of a
report, and the check that two files describe the same problem.

An entry b of the reference and a of the other run disagree when
|a - b| > atol + rtol |b|. By default atol is rtol times the largest |b| of the
same quantity at the same snapshot (an entry that happens to be near zero is
judged at the scale of its neighbours). The reported relative difference is
max_k max|a_k - b_k| / max|b_k| over snapshots k (normwise per snapshot;
snapshots where the reference is all zero count in the absolute difference and
the first failing step only).

A file whose weights are float32 numbers stores snapshot 0 as float32(W0):
that rounding is storage, not dynamics, so snapshot 0 of such a file is
compared with the reference's W0 rounded to float32, and its step-0 loss at
float32's resolution (:func:`float32_valued`, :data:`EPS32`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import TrajectoryError

__all__ = [
    "QUANTITIES",
    "DEFAULT_RTOL",
    "INPUT_KEYS",
    "EPS32",
    "Row",
    "compare_arrays",
    "compare_runs",
    "check_same_problem",
    "float32_valued",
]

QUANTITIES = ("W", "loss", "gamma", "rho_bar", "rho_under")
INPUT_KEYS = ("X", "y", "y_clean", "xi", "signals", "W0", "eta", "weight_decay", "trainable")
DEFAULT_RTOL = 1e-10
EPS32 = float(np.finfo(np.float32).eps)  # 2^-23: float32's relative spacing
STEP0_NOTE = "step 0 at float32 precision (float32 file)"


@dataclass
class Row:
    """The comparison of one quantity of one stage.

    Attributes
    ----------
    stage, quantity : str
        The stage (``up``, ``down``, ``scratch``) and the quantity (``W``,
        ``loss``, ``gamma``, ``rho_bar``, ``rho_under``, ``b``, or
        ``length`` when the runs end at different steps).
    max_abs, max_rel : float
        Largest absolute difference; largest per-snapshot normwise relative
        difference (module docstring).
    first_step : int or None
        First snapshot step (for the loss: the first step) at which some entry
        exceeds the tolerance; None when all agree.
    compared : int
        Number of snapshots (loss: steps) compared.
    note : str
        Where the values came from, how they were judged, or why the quantity
        was not compared.
    skipped : bool
        True when the quantity could not be compared (see ``note``); a skipped
        row does not count as a difference.
    """

    stage: str
    quantity: str
    max_abs: float = 0.0
    max_rel: float = 0.0
    first_step: int | None = None
    compared: int = 0
    note: str = ""
    skipped: bool = False

    @property
    def ok(self) -> bool:
        return self.skipped or self.first_step is None


def float32_valued(a) -> bool:
    """True when every entry of ``a`` is a float32 number.

    Parameters
    ----------
    a : array_like
        The values.

    Returns
    -------
    bool
        True for a float32 array, or when every entry survives a round trip
        through float32 unchanged.
    """
    a = np.asarray(a)
    return a.dtype == np.float32 or bool(np.all(a.astype(np.float32).astype(np.float64) == a))


def compare_arrays(a, b, steps, rtol=DEFAULT_RTOL, atol=None, floor=None):
    """Compare two snapshot series entry by entry.

    Parameters
    ----------
    a, b : ndarray of shape (K, ...)
        The other run and the reference, snapshot k on axis 0.
    steps : ndarray of shape (K,), int
        The step of each snapshot.
    rtol : float
        Relative tolerance.
    atol : float, ndarray of shape (K,) or None
        Absolute tolerance (per snapshot when an array); None: rtol times
        max|b_k| at each snapshot k.
    floor : ndarray of shape (K,), optional
        An absolute tolerance per snapshot below which no difference counts
        (float32's resolution of the loss); the tolerance of an entry is then
        max(atol + rtol |b|, floor_k).

    Returns
    -------
    max_abs : float
    max_rel : float
        max_k max|a_k - b_k| / max|b_k| over the snapshots with some b_k != 0
        (an all-zero reference snapshot counts in max_abs and first_step only).
    first_step : int or None
        steps[k] of the first snapshot with an entry |a - b| > atol + rtol |b|
        (and > floor_k), or a non-finite entry in either (a reference that left
    the finite numbers agrees with nothing).
    """
    a = np.asarray(a, dtype=np.float64).reshape(len(steps), -1)
    b = np.asarray(b, dtype=np.float64).reshape(len(steps), -1)
    if a.shape[1] == 0:
        return 0.0, 0.0, None
    with np.errstate(invalid="ignore"):  # inf - inf: a difference, counted below
        diff = np.abs(a - b)
    diff = np.where(np.isfinite(diff), diff, np.inf)
    scale = np.abs(b).max(axis=1)  # (K,)
    worst = diff.max(axis=1)
    # snapshots where the reference is all zero (coefficients at step 0) have no
    # relative scale: they count in max_abs and first_step only
    with np.errstate(invalid="ignore", over="ignore"):  # inf / inf, or a diverged candidate
        rel = np.divide(worst, scale, out=np.zeros_like(worst), where=scale > 0)
    tol_abs = (
        rtol * scale[:, None]
        if atol is None
        else np.broadcast_to(np.asarray(atol, dtype=np.float64).reshape(-1, 1), (len(steps), 1))
    )
    tol = tol_abs + rtol * np.abs(b)
    if floor is not None:
        tol = np.maximum(tol, np.asarray(floor, dtype=np.float64).reshape(-1, 1))
    bad = np.any((diff > tol) | ~np.isfinite(b) | ~np.isfinite(a), axis=1)  # NaN/inf: a difference
    first = int(steps[np.argmax(bad)]) if bad.any() else None
    rel_max = float(rel.max()) if np.all(np.isfinite(scale)) else np.inf
    return float(worst.max()), rel_max, first


def compare_runs(
    name,
    theirs,
    ref,
    rtol=DEFAULT_RTOL,
    atol=None,
    quantities=QUANTITIES,
    notes=None,
    float32=False,
    tolerances=None,
    floors=None,
):
    """Compare two runs of one stage (dicts with ``steps`` and the quantities).

    Snapshot series are compared at the snapshot steps both runs hold, the
    loss over the steps both runs hold. With ``float32`` (the other run's
    weights are float32 numbers) snapshot 0 and the step-0 loss are judged at
    float32 precision (module docstring). A quantity ``b`` (the bias) is
    compared when both runs store it; when only one does, its row is skipped
    ("not compared: b not stored ..."): a stored ``b0`` without ``b`` says
    nothing of the bias's later values.
    ``tolerances`` (quantity -> rtol) and ``floors`` (quantity -> absolute
    tolerance per compared snapshot or step, see :func:`compare_arrays`)
    override the tolerance of single quantities.

    Parameters
    ----------
    name : str
        The stage, named in the rows.
    theirs, ref : dict of str to ndarray
        The other run and the reference: ``steps``, ``loss`` and the snapshot
        series (``W``, the coefficients, ``b``) each holds.
    rtol : float, optional
        Relative tolerance.
    atol : float or None, optional
        Absolute tolerance; None: rtol times max|ref| per snapshot (for the
        coefficients, at the scale of all coefficients at that snapshot).
    quantities : sequence of str, optional
        The quantities compared (``b`` is added when either run stores it).
    notes : dict of str to str, optional
        A note per quantity, shown in its row.
    float32 : bool, optional
        The other run's weights are float32 numbers.
    tolerances : dict of str to float, optional
        rtol per quantity.
    floors : dict of str to array_like, optional
        Absolute tolerance floor per quantity, per compared snapshot or step.

    Returns
    -------
    list of Row
    """
    notes = dict(notes or {})
    common, ia, ib = np.intersect1d(theirs["steps"], ref["steps"], return_indices=True)
    rows = []
    T_a, T_b = len(theirs["loss"]) - 1, len(ref["loss"]) - 1
    if T_a != T_b or theirs["steps"][-1] != ref["steps"][-1]:
        # runs of different length differ from the first step only one of them has
        last = min(T_a, T_b, int(theirs["steps"][-1]), int(ref["steps"][-1]))
        rows.append(
            Row(
                name,
                "length",
                first_step=last + 1,
                compared=1,
                note=f"the runs end at different steps: T = {T_a} vs {T_b} "
                f"(last snapshots {int(theirs['steps'][-1])} vs {int(ref['steps'][-1])})",
            )
        )
    # a coefficient that is 0 at a snapshot (no increment yet, e.g. rho_under
    # of a filter that never fired) is judged at the scale of all coefficients
    # there: projection gives rounding-sized values, not exact zeros
    coef_scale = None
    if atol is None and all(c in ref for c in ("gamma", "rho_bar", "rho_under")):
        coef_scale = rtol * np.max(
            [
                np.abs(ref[c][ib]).reshape(len(ib), -1).max(axis=1, initial=0.0)
                for c in ("gamma", "rho_bar", "rho_under")
            ],
            axis=0,
        )
    quantities = list(quantities)
    if ("b" in theirs or "b" in ref) and "b" not in quantities:
        quantities.append("b")
    for q in quantities:
        if q == "b" and ("b" in theirs) != ("b" in ref):
            # a bias that is not stored is unknown (a file may hold s/b0 only):
            # never compared with zeros
            where = "in the reference" if "b" in theirs else "in the file"
            rows.append(Row(name, q, skipped=True, note=f"b not stored {where}"))
            continue
        if q not in theirs or q not in ref:
            rows.append(Row(name, q, skipped=True, note=notes.get(q, "not available")))
            continue
        elif q == "loss":
            T = min(len(theirs[q]), len(ref[q]))
            a, b = theirs[q][:T, None], ref[q][:T, None]
        else:
            a, b = theirs[q][ia], ref[q][ib]
        at = np.arange(len(a)) if q == "loss" else common
        if a.shape != b.shape:
            rows.append(
                Row(name, q, skipped=True, note=f"shapes differ: {a.shape[1:]} vs {b.shape[1:]}")
            )
            continue
        note = notes.get(q, "")
        floor = (floors or {}).get(q)
        floor = None if floor is None else np.array(floor[: len(at)], dtype=np.float64)
        if float32 and q in ("W", "loss", "b") and at.size and at[0] == 0:
            b = np.array(b, dtype=np.float64)
            if q == "loss":
                floor = np.zeros(len(at)) if floor is None else floor
                floor[0] = max(floor[0], 64 * EPS32 * max(abs(float(b[0, 0])), 1.0))
            else:
                b[0] = b[0].astype(np.float32)
            note = "; ".join(filter(None, [note, STEP0_NOTE]))
        q_rtol = (tolerances or {}).get(q, rtol)
        q_atol = atol
        if coef_scale is not None and q in ("gamma", "rho_bar", "rho_under"):
            q_atol = coef_scale * (q_rtol / rtol if rtol > 0 else 1.0)
        max_abs, max_rel, first = compare_arrays(a, b, at, q_rtol, q_atol, floor)
        rows.append(Row(name, q, max_abs, max_rel, first, len(at), note))
    return rows


def check_same_problem(theirs, ref, stage, float32=False):
    """Raise TrajectoryError when the two files' inputs of a stage have different
    shapes; return the input keys whose values differ (the bias's initial value
    ``b0`` included when either file has it). With ``float32`` (THEIRS is
    judged at float32 precision) an input of THEIRS that equals the
    reference's rounded to float32 does not differ.

    Parameters
    ----------
    theirs, ref : Trajectory
        The two loaded files.
    stage : str
        The stage compared.
    float32 : bool, optional
        THEIRS is judged at float32 precision.

    Returns
    -------
    list of str
        The input keys (of ``X``, ``y``, ``y_clean``, ``xi``, ``signals``,
        ``W0``, ``eta``, ``weight_decay``, ``trainable``, ``b0``) whose values
        differ; a key in one file only as ``"key (only in one file)"``.

    Raises
    ------
    TrajectoryError
        When an input has different shapes in the two files.
    """
    differ = []
    keys = INPUT_KEYS + tuple(
        k for k in ("b0",) if f"{stage}/{k}" in theirs.arrays or f"{stage}/{k}" in ref.arrays
    )
    for key in keys:
        a, b = (t.arrays.get(f"{stage}/{key}") for t in (theirs, ref))
        if a is None or b is None:
            differ.append(f"{key} (only in one file)")
            continue
        if a.shape != b.shape:
            raise TrajectoryError(
                f"{theirs.path} and {ref.path} describe different problems: "
                f"{stage}/{key} has shape {a.shape} vs {b.shape}"
            )
        if np.array_equal(a, b):
            continue
        if not (float32 and b.dtype.kind == "f" and np.array_equal(a, b.astype(np.float32))):
            differ.append(key)
    return differ
