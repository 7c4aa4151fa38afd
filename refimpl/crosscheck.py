"""Cross-checking other implementations against refimpl's exact dynamics
(issue 4): replay, compare, explain, and coefficient recovery.

Another implementation (PyTorch, JAX, ...) exports its run as a trajectory
file in format 1 (:mod:`refimpl.trajectory`); often it holds weights but no
coefficients. This module

* **replays** a file: it reruns :func:`refimpl.train.train_stage` from the
  file's own inputs (X, y, W0, eta, weight decay, trainable mask) for the
  file's number of steps, with snapshots at the file's snapshot steps (the
  file has no epsilon: the given steps are replayed);
* **compares** two runs stage by stage for every quantity (W, loss, gamma,
  rho_bar, rho_under): the largest absolute and relative difference and the
  first snapshot step at which |a - b| > atol + rtol |b| for some entry;
* recovers **coefficients by projection** (MODEL.md section 4,
  :func:`refimpl.decomposition.project` with s_t = (1 - eta lambda)^t for
  trainable filters, 1 for frozen ones) for files that lack them
  (``python -m refimpl decompose``);
* **explains** a failed comparison: it replays the file's inputs under each
  usual convention difference of framework code (:data:`VARIANTS`, run by the
  small plain-numpy GD :func:`variant_train`, kept apart from the exact
  kernels) and names the variant that then agrees.

Command line::

    python -m refimpl crosscheck THEIRS.npz [REF.npz] [--rtol R] [--atol A]
                                 [--no-explain] [--explain-steps N] [--json FILE]
    python -m refimpl decompose RUN.npz [--out NEW.npz]

Exit status of ``crosscheck``: 0 when every quantity agrees, 1 when any
differs, 2 for unusable input (one line naming the reason).

Tolerances. An entry b of the reference and a of the other run disagree when
|a - b| > atol + rtol |b|. By default atol is rtol times the largest |b| of the
same quantity at the same snapshot (an entry that happens to be near zero is
judged at the scale of its neighbours); ``--atol`` fixes it instead. The
reported relative difference is max_k max|a_k - b_k| / max|b_k| over snapshots
k (normwise per snapshot; snapshots where the reference is all zero, such as
the coefficients at step 0, count in the absolute difference and the first
failing step only); for the loss, a scalar per step, it is the plain relative
difference.
"""
from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass, field

import numpy as np

from . import naive
from .data import Task
from .decomposition import project, scales
from .train import train_stage
from .trajectory import (COEFFICIENT_KEYS, STAGES, TrajectoryError, Trajectory, load, save)

__all__ = ["QUANTITIES", "DEFAULT_RTOL", "FLOAT32_FACTOR", "Row", "Report", "compare_arrays",
           "recover_coefficients", "decompose", "replay", "compare_runs",
           "crosscheck", "Convention", "VARIANTS", "variant_train", "variant_arrays",
           "estimate_lr_scale", "explain_stage", "register"]

QUANTITIES = ("W", "loss", "gamma", "rho_bar", "rho_under")
INPUT_KEYS = ("X", "y", "y_clean", "xi", "signals", "W0", "eta", "weight_decay", "trainable")
DEFAULT_RTOL = 1e-10
FLOAT32_FACTOR = 10.0  # explain mode: float32 agreement within this many times float32's own drift


# ---------------------------------------------------------------------------
# comparison
# ---------------------------------------------------------------------------

@dataclass
class Row:
    """The comparison of one quantity of one stage.

    Attributes
    ----------
    stage, quantity : str
    max_abs, max_rel : float
        Largest absolute difference; largest per-snapshot normwise relative
        difference (module docstring).
    first_step : int or None
        First snapshot step (for the loss: the first step) at which some entry
        exceeds the tolerance; None when all agree.
    compared : int
        Number of snapshots (loss: steps) compared.
    note : str
        Where the values came from, or why the quantity was not compared.
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


def compare_arrays(a, b, steps, rtol=DEFAULT_RTOL, atol=None):
    """Compare two snapshot series entry by entry.

    Parameters
    ----------
    a, b : ndarray of shape (K, ...)
        The other run and the reference, snapshot k on axis 0.
    steps : ndarray of shape (K,), int
        The step of each snapshot.
    rtol : float
    atol : float or None
        None: rtol times max|b_k| at each snapshot k.

    Returns
    -------
    max_abs : float
    max_rel : float
        max_k max|a_k - b_k| / max|b_k| over the snapshots with some b_k != 0
        (an all-zero reference snapshot counts in max_abs and first_step only).
    first_step : int or None
        steps[k] of the first snapshot with an entry |a - b| > atol + rtol |b|
        (or a non-finite a).
    """
    a = np.asarray(a, dtype=np.float64).reshape(len(steps), -1)
    b = np.asarray(b, dtype=np.float64).reshape(len(steps), -1)
    if a.shape[1] == 0:
        return 0.0, 0.0, None
    diff = np.abs(a - b)
    diff = np.where(np.isfinite(diff), diff, np.inf)
    scale = np.abs(b).max(axis=1)                                   # (K,)
    worst = diff.max(axis=1)
    # snapshots where the reference is all zero (coefficients at step 0) have no
    # relative scale: they count in max_abs and first_step only
    rel = np.divide(worst, scale, out=np.zeros_like(worst), where=scale > 0)
    tol_abs = rtol * scale[:, None] if atol is None else float(atol)
    bad = np.any(diff > tol_abs + rtol * np.abs(b), axis=1)
    first = int(steps[np.argmax(bad)]) if bad.any() else None
    return float(worst.max()), float(rel.max()), first


def recover_coefficients(W, W0, steps, trainable, eta, weight_decay, signals, xi, y):
    """Coefficients from weight snapshots alone by the projection recovery
    (MODEL.md section 4; :func:`refimpl.decomposition.project`).

    Parameters
    ----------
    W : ndarray of shape (K, 2, m, d)
    W0 : ndarray of shape (2, m, d)
    steps : ndarray of shape (K,)
    trainable : ndarray of shape (2, m), bool
    eta, weight_decay : float
    signals : ndarray of shape (S, d)
    xi : ndarray of shape (n, d)
    y : ndarray of shape (n,)

    Returns
    -------
    gamma : ndarray of shape (K, 2, m, S)
    rho_bar, rho_under : ndarray of shape (K, 2, m, n)

    Raises
    ------
    ValueError
        When the basis {signals, xi_1..xi_n} cannot be independent (n + S' > d,
        S' the nonzero signals) or its Gram matrix is singular.
    """
    import scipy.linalg

    W, W0, signals, xi, y = (np.asarray(a, dtype=np.float64) for a in (W, W0, signals, xi, y))
    n, d = xi.shape
    S = int(np.sum(np.sum(signals**2, axis=1) > 0))
    if n + S > d:
        raise ValueError(f"coefficients cannot be recovered by projection: n + S = {n + S} "
                         f"basis vectors in d = {d} dimensions are not independent")
    scale = scales(steps, trainable, eta, weight_decay)
    try:
        return project(W, W0, scale, signals, xi, y)
    except (np.linalg.LinAlgError, scipy.linalg.LinAlgError) as exc:
        raise ValueError("coefficients cannot be recovered by projection: the Gram matrix "
                         f"of the signal and noise vectors is singular ({exc})") from None


def _file_stage(traj: Trajectory, stage):
    """The comparable quantities of a stage of a file; coefficients by projection
    when the file has none. Returns (dict, note on the coefficients' source)."""
    g = lambda k: traj.get(stage, k)  # noqa: E731
    run = {"steps": g("steps"), "W": g("W"), "loss": g("loss")}
    if traj.has_coefficients[stage]:
        run.update({c: g(c) for c in COEFFICIENT_KEYS})
        return run, "coefficients from the file"
    try:
        coef = recover_coefficients(g("W"), g("W0"), g("steps"), g("trainable"),
                                    float(g("eta")), float(g("weight_decay")),
                                    g("signals"), g("xi"), g("y"))
    except ValueError as exc:
        return run, str(exc)
    run.update(zip(COEFFICIENT_KEYS, coef))
    return run, "coefficients by projection"


def replay(traj: Trajectory, stage):
    """Rerun a stage of a file with refimpl from the file's own inputs.

    The file's number of steps T = steps[-1] is replayed (no epsilon rule),
    with snapshots at the file's snapshot steps (MODEL.md sections 3-4).

    Returns
    -------
    refimpl.train.Stage
    """
    g = lambda k: traj.get(stage, k)  # noqa: E731
    f64 = lambda k: np.ascontiguousarray(g(k), dtype=np.float64)  # noqa: E731
    task = Task(X=f64("X"), y=f64("y"), y_clean=f64("y_clean"), xi=f64("xi"),
                signals=f64("signals"))   # a file may store float32 inputs
    steps = g("steps")
    return train_stage(f64("W0"), task, float(g("eta")), int(steps[-1]),
                       weight_decay=float(g("weight_decay")), trainable=g("trainable"),
                       epsilon=0.0, snapshots=steps, track=True)


def _stage_run(stage):
    return {"steps": stage.steps, "W": stage.W, "loss": stage.loss, "gamma": stage.gamma,
            "rho_bar": stage.rho_bar, "rho_under": stage.rho_under}


def compare_runs(name, theirs, ref, rtol=DEFAULT_RTOL, atol=None, quantities=QUANTITIES,
                 notes=None):
    """Compare two runs of one stage (dicts with ``steps`` and the quantities).

    Snapshot series are compared at the snapshot steps both runs hold, the
    loss over the steps both runs hold.

    Returns
    -------
    list of Row
    """
    notes = notes or {}
    common, ia, ib = np.intersect1d(theirs["steps"], ref["steps"], return_indices=True)
    rows = []
    T_a, T_b = len(theirs["loss"]) - 1, len(ref["loss"]) - 1
    if T_a != T_b or theirs["steps"][-1] != ref["steps"][-1]:
        # runs of different length differ from the first step only one of them has
        last = min(T_a, T_b, int(theirs["steps"][-1]), int(ref["steps"][-1]))
        rows.append(Row(name, "length", first_step=last + 1, compared=1,
                        note=f"the runs end at different steps: T = {T_a} vs {T_b} "
                             f"(last snapshots {int(theirs['steps'][-1])} vs {int(ref['steps'][-1])})"))
    for q in quantities:
        if q not in theirs or q not in ref:
            rows.append(Row(name, q, skipped=True, note=notes.get(q, "not available")))
            continue
        if q == "loss":
            T = min(len(theirs[q]), len(ref[q]))
            a, b, at = theirs[q][:T, None], ref[q][:T, None], np.arange(T)
        else:
            a, b, at = theirs[q][ia], ref[q][ib], common
        if a.shape != b.shape:
            rows.append(Row(name, q, skipped=True,
                            note=f"shapes differ: {a.shape[1:]} vs {b.shape[1:]}"))
            continue
        max_abs, max_rel, first = compare_arrays(a, b, at, rtol, atol)
        rows.append(Row(name, q, max_abs, max_rel, first, len(at), notes.get(q, "")))
    return rows


@dataclass
class Report:
    """The result of :func:`crosscheck`.

    Attributes
    ----------
    theirs, reference : str
        The checked file; the reference file or ``"replay"``.
    rtol : float
    atol : float or None
    rows : list of Row
    notes : list of str
    explanations : dict of str to dict
        Per failed stage, the explain-mode result of :func:`explain_stage`.
    """

    theirs: str
    reference: str
    rtol: float
    atol: float | None
    rows: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    explanations: dict = field(default_factory=dict)

    @property
    def agree(self) -> bool:
        return all(r.ok for r in self.rows)

    @property
    def status(self) -> int:
        """Exit status: 0 all agree, 1 any differs."""
        return 0 if self.agree else 1

    def failed_stages(self):
        return [s for s in dict.fromkeys(r.stage for r in self.rows)
                if any(not r.ok for r in self.rows if r.stage == s)]

    def to_dict(self):
        return {"theirs": self.theirs, "reference": self.reference, "rtol": self.rtol,
                "atol": self.atol, "agree": self.agree, "status": self.status,
                "rows": [dict(asdict(r), ok=r.ok) for r in self.rows], "notes": self.notes,
                "explanations": self.explanations}

    def format(self) -> str:
        """The human-readable report."""
        atol = "rtol x max|ref| per snapshot" if self.atol is None else f"{self.atol:g}"
        lines = [f"crosscheck {self.theirs} against {self.reference}",
                 f"tolerance: |a - b| > atol + rtol*|b| with rtol={self.rtol:g}, atol={atol}", ""]
        lines.append(f"{'stage':8} {'quantity':10} {'max abs':>10} {'max rel':>10} "
                     f"{'compared':>8}  verdict")
        for r in self.rows:
            if r.skipped:
                lines.append(f"{r.stage:8} {r.quantity:10} {'-':>10} {'-':>10} {'-':>8}  "
                             f"not compared: {r.note}")
                continue
            verdict = "agree" if r.first_step is None else f"DIFFERS from step {r.first_step}"
            extra = f"  ({r.note})" if r.note else ""
            lines.append(f"{r.stage:8} {r.quantity:10} {r.max_abs:10.3g} {r.max_rel:10.3g} "
                         f"{r.compared:8d}  {verdict}{extra}")
        for note in self.notes:
            lines.append(f"note: {note}")
        for stage, ex in self.explanations.items():
            lines.append("")
            lines.extend(format_explanation(stage, ex))
        lines.append("")
        skipped = [f"{r.stage}/{r.quantity}" for r in self.rows if r.skipped]
        if not self.agree:
            lines.append("RESULT: differences found in " + ", ".join(self.failed_stages()))
        elif skipped:
            lines.append("RESULT: all compared quantities agree; not compared: " + ", ".join(skipped))
        else:
            lines.append("RESULT: all quantities agree")
        return "\n".join(lines)


def _check_same_problem(theirs: Trajectory, ref: Trajectory, stage):
    """Raise TrajectoryError when the two files' inputs of a stage have different
    shapes; return the input keys whose values differ."""
    differ = []
    for key in INPUT_KEYS:
        a, b = theirs.get(stage, key), ref.get(stage, key)
        if a.shape != b.shape:
            raise TrajectoryError(f"{theirs.path} and {ref.path} describe different problems: "
                                  f"{stage}/{key} has shape {a.shape} vs {b.shape}")
        if not np.array_equal(a, b):
            differ.append(key)
    return differ


def crosscheck(theirs_path, ref_path=None, rtol=DEFAULT_RTOL, atol=None, explain=True,
               stages=None, explain_steps=None):
    """Compare a trajectory file with refimpl: with a replay of its own inputs
    (``ref_path`` None) or with a second file.

    Parameters
    ----------
    theirs_path : str or PathLike
        The file to check (coefficients optional).
    ref_path : str or PathLike, optional
        The reference file; None replays ``theirs`` with refimpl.
    rtol : float
    atol : float or None
        See the module docstring.
    explain : bool
        Run explain mode on every stage whose W or loss differs.
    stages : sequence of str, optional
        Only these stages.
    explain_steps : int, optional
        Explain mode replays only the first this many steps (for long runs).

    Returns
    -------
    Report

    Raises
    ------
    TrajectoryError
        Unusable input: unreadable file, missing keys, wrong shapes or version,
        files that describe different problems, no stage to compare.
    """
    if not (rtol >= 0 and math.isfinite(rtol)) or (atol is not None and not
                                                   (atol >= 0 and math.isfinite(atol))):
        raise TrajectoryError(f"tolerances must be finite and >= 0 (rtol={rtol}, atol={atol})")
    if explain_steps is not None and explain_steps < 1:
        raise TrajectoryError(f"--explain-steps must be >= 1, got {explain_steps}")
    theirs = load(theirs_path, require_coefficients=False)
    ref = None if ref_path is None else load(ref_path, require_coefficients=False)
    names = [s for s in theirs.stages if ref is None or s in ref.stages]
    if stages:
        unknown = [s for s in stages if s not in STAGES]
        if unknown:
            raise TrajectoryError(f"unknown stage {unknown[0]!r}; stages are {', '.join(STAGES)}")
        names = [s for s in names if s in stages]
    if not names:
        where = f"{theirs.path} has {', '.join(theirs.stages)}"
        if ref is not None:
            where += f", {ref.path} has {', '.join(ref.stages)}"
        raise TrajectoryError(f"no stage to compare: {where}")
    report = Report(str(theirs_path), "replay (refimpl.train from the file's inputs)"
                    if ref is None else str(ref_path), rtol, atol)
    if ref is not None:
        for s in sorted(set(theirs.stages) ^ set(ref.stages), key=STAGES.index):
            if not stages or s in stages:
                where = theirs.path if s in theirs.stages else ref.path
                report.notes.append(f"stage {s} is only in {where}: not compared")
    for s in names:
        their_run, their_note = _file_stage(theirs, s)
        if ref is None:
            ref_run, ref_note = _stage_run(replay(theirs, s)), "tracked"
        else:
            differ = _check_same_problem(theirs, ref, s)
            if differ:
                report.notes.append(f"{s}: the inputs differ ({', '.join(differ)}); the runs "
                                    "cannot agree except by accident")
                report.rows.append(Row(s, "inputs", first_step=0,
                                       note="differ: " + ", ".join(differ)))
            ref_run, ref_note = _file_stage(ref, s)
        notes = {}
        for c in COEFFICIENT_KEYS:
            if c not in their_run or c not in ref_run:
                notes[c] = their_note if c not in their_run else ref_note
            elif their_note != "coefficients from the file" or ref_note not in (
                    "tracked", "coefficients from the file"):
                notes[c] = f"theirs: {their_note}; reference: {ref_note}"
        if not np.array_equal(their_run["steps"], ref_run["steps"]):
            common = np.intersect1d(their_run["steps"], ref_run["steps"])
            report.notes.append(f"{s}: the snapshot steps differ; compared at the {common.size} "
                                "common ones")
        report.rows.extend(compare_runs(s, their_run, ref_run, rtol, atol, notes=notes))
    if explain and not report.agree:
        for s in report.failed_stages():
            stage_rows = {r.quantity: r for r in report.rows if r.stage == s}
            if not stage_rows.get("inputs", Row(s, "inputs")).ok:
                report.explanations[s] = {"skipped": "the two files' inputs differ"}
            elif stage_rows["W"].ok and stage_rows["loss"].ok:
                report.explanations[s] = {"skipped": "weights and loss agree; only the "
                                          "coefficients differ, so the difference is in how "
                                          "the coefficients were computed, not in the dynamics"}
            else:
                report.explanations[s] = explain_stage(theirs, s, rtol, atol, explain_steps)
    return report


# ---------------------------------------------------------------------------
# coefficient recovery for weights-only files
# ---------------------------------------------------------------------------

def decompose(path, out=None):
    """Add coefficients recovered by projection to every stage of a trajectory
    file that has weights only; the file (or ``out``) is written atomically.

    Parameters
    ----------
    path : str or PathLike
    out : str or PathLike, optional
        Where to write; default ``path`` itself.

    Returns
    -------
    list of str
        The stages that got coefficients.

    Raises
    ------
    TrajectoryError
        Unusable file, or coefficients that cannot be recovered.
    """
    traj = load(path, require_coefficients=False)
    arrays = dict(traj.arrays)
    added = []
    for s in traj.stages:
        if traj.has_coefficients[s]:
            continue
        g = lambda k: traj.get(s, k)  # noqa: E731,B023
        try:
            coef = recover_coefficients(g("W"), g("W0"), g("steps"), g("trainable"),
                                        float(g("eta")), float(g("weight_decay")),
                                        g("signals"), g("xi"), g("y"))
        except ValueError as exc:
            raise TrajectoryError(f"{traj.path}: stage {s!r}: {exc}") from None
        for key, value in zip(COEFFICIENT_KEYS, coef):
            arrays[f"{s}/{key}"] = value
        added.append(s)
    if added:
        prov = dict(traj.provenance) if isinstance(traj.provenance, dict) else {}
        prov["coefficients_by_projection"] = sorted(
            set(prov.get("coefficients_by_projection", [])) | set(added))
        arrays["provenance_json"] = np.str_(json.dumps(prov))
    if added or out is not None:
        save(path if out is None else out, arrays)
    return added


# ---------------------------------------------------------------------------
# Explain mode: a small plain-numpy GD under convention variants.
#
# Kept apart from the exact kernels on purpose. The reference convention
# (Convention()) is literally refimpl.naive.gradient's formula; every variant
# changes one thing in it. Only weights and the data loss are produced: the
# variants change the dynamics, and the dynamics are what explain mode tests.
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Convention:
    """A departure from MODEL.md section 3 that framework code often makes.

    Attributes
    ----------
    filter_sum : bool
        F_j = sum_r sum_p sigma(.) (no 1/m over filters).
    patch_mean : bool
        F_j = (1/m) sum_r (1/P) sum_p sigma(.) (mean instead of sum over patches).
    bias : bool
        sigma(<w_{j,r}, x> + b_{j,r}) with a trainable scalar bias per filter,
        initialised at 0 and trained by the same step, weight decay included.
    lr_scale : float
        The step is c * eta.
    relu_prime_zero : float
        sigma'(0) (the reference has 0).
    dtype : str
        "float64" or "float32" arithmetic.
    loss_with_decay : bool
        The stored loss includes the penalty (lambda/2) |W|^2 (all filters);
        a reporting convention, the weights are the reference's.
    """

    filter_sum: bool = False
    patch_mean: bool = False
    bias: bool = False
    lr_scale: float = 1.0
    relu_prime_zero: float = 0.0
    dtype: str = "float64"
    loss_with_decay: bool = False

    def describe(self):
        parts = []
        if self.filter_sum:
            parts.append("sum instead of 1/m over filters")
        if self.patch_mean:
            parts.append("mean instead of sum over patches")
        if self.bias:
            parts.append("a trainable bias per filter (zero init, same step and decay)")
        if self.lr_scale != 1.0:
            parts.append(f"learning rate x {self.lr_scale:.12g}")
        if self.relu_prime_zero != 0.0:
            parts.append(f"ReLU'(0) = {self.relu_prime_zero:g}")
        if self.dtype != "float64":
            parts.append(f"{self.dtype} arithmetic")
        if self.loss_with_decay:
            parts.append("the stored loss includes (lambda/2)|W|^2")
        return "; ".join(parts) or "reference conventions (MODEL.md section 3)"


# The variants explain mode tries (the learning-rate scale is estimated per file).
VARIANTS = {
    "filter_sum": Convention(filter_sum=True),
    "patch_mean": Convention(patch_mean=True),
    "bias": Convention(bias=True),
    "lr_scale": None,
    "relu_prime_1": Convention(relu_prime_zero=1.0),
    "relu_prime_half": Convention(relu_prime_zero=0.5),
    "float32": Convention(dtype="float32"),
    "loss_with_decay": Convention(loss_with_decay=True),
}


def _variant_loss_and_gradient(W, b, X, y, conv: Convention):
    """Data loss, gradients of W (2, m, d) and b (2, m), and the number of exactly
    zero pre-activations, under ``conv``. With Convention() this is
    refimpl.naive.gradient's formula (MODEL.md section 3):
    grad w_{j,r} = (c_F/n) sum_i l'_i sum_p sigma'(<w_{j,r}, x_i^(p)> + b_{j,r}) j y_i x_i^(p),
    c_F = 1/m (1 with filter_sum) times 1 (1/P with patch_mean)."""
    n, P, _ = X.shape
    m = W.shape[1]
    dt = W.dtype
    norm = (1.0 if conv.filter_sum else 1.0 / m) * (1.0 / P if conv.patch_mean else 1.0)
    pre = naive.preactivations(W, X)                                   # (2, m, n, P)
    if b is not None:
        pre = pre + b[:, :, None, None]
    F = naive.relu(pre).sum(axis=(1, 3)) * dt.type(norm)               # (2, n)
    z = y * (F[0] - F[1])
    loss = float(np.mean(naive.logistic_loss(z)))
    dloss = naive.logistic_dloss(z).astype(dt)
    active = (pre > 0).astype(dt)
    zeros = pre == 0
    if conv.relu_prime_zero != 0.0:
        active += dt.type(conv.relu_prime_zero) * zeros
    coef = active * (dloss * y)[None, None, :, None] * naive.J.astype(dt)[:, None, None, None]
    coef *= dt.type(norm / n)
    gW = np.tensordot(coef, X, axes=([2, 3], [0, 1]))          # sum_{i,p} coef x_i^(p)
    gb = coef.sum(axis=(2, 3)) if b is not None else None
    return loss, gW, gb, int(np.count_nonzero(zeros))


def variant_train(W0, X, y, eta, weight_decay, trainable, steps, snapshots,
                  conv: Convention = Convention()):
    """Full-batch GD under a convention variant (plain numpy; explain mode).

    w <- (1 - c eta lambda) w - c eta grad w for trainable filters (MODEL.md
    section 3 with the variant's gradient, c = ``lr_scale``); the bias, when
    present, by the same rule; frozen filters (and their biases) do not move.

    Parameters
    ----------
    W0 : ndarray of shape (2, m, d)
    X : ndarray of shape (n, P, d)
    y : ndarray of shape (n,)
    eta, weight_decay : float
    trainable : ndarray of shape (2, m), bool
    steps : int
        T.
    snapshots : ndarray of shape (K,), int
        Snapshot steps within 0..T.
    conv : Convention

    Returns
    -------
    W : ndarray of shape (K, 2, m, d), float64
    loss : ndarray of shape (T + 1,)
        Data loss at steps 0..T.
    zero_preactivations : int
        How many pre-activations were exactly 0 over the run (ReLU'(0) can
        matter only when this is > 0).
    """
    with np.errstate(over="ignore", invalid="ignore"):   # a variant may diverge
        return _variant_train(W0, X, y, eta, weight_decay, trainable, steps, snapshots, conv)


def _variant_train(W0, X, y, eta, weight_decay, trainable, steps, snapshots, conv):
    dt = np.dtype(conv.dtype)
    W = np.array(W0, dtype=dt)
    X = np.asarray(X, dtype=dt)
    y = np.asarray(y, dtype=dt)
    b = np.zeros(W.shape[:2], dtype=dt) if conv.bias else None
    keep = ~np.asarray(trainable, bool)
    step = dt.type(conv.lr_scale * eta)
    decay = dt.type(1.0 - conv.lr_scale * eta * weight_decay)
    wanted = set(int(s) for s in snapshots)
    snaps, loss, zeros = [], np.empty(int(steps) + 1), 0
    for t in range(int(steps) + 1):
        if t in wanted:
            snaps.append(W.astype(np.float64))
        loss[t], gW, gb, z = _variant_loss_and_gradient(W, b, X, y, conv)
        if conv.loss_with_decay:     # L_S of MODEL.md section 3, penalty included
            loss[t] += 0.5 * weight_decay * float(np.sum(W.astype(np.float64) ** 2))
        zeros += z
        if t == steps:
            break
        W = np.where(keep[:, :, None], W, decay * W - step * gW)
        if b is not None:
            b = np.where(keep, b, decay * b - step * gb)
    return np.stack(snaps), loss, zeros


def variant_arrays(traj: Trajectory, conv: Convention, stages=None):
    """A weights-only trajectory (format 1 arrays) of the file's inputs trained
    under ``conv``: what an implementation with that convention would export.
    Used to produce each variant on purpose (tests, README).

    Returns
    -------
    dict of str to ndarray
    """
    stages = list(stages or traj.stages)
    arrays = {k: v for k, v in traj.arrays.items()
              if k in ("format_version", "config_json")
              or (k == "down/inherited" and "down" in stages)}
    arrays["provenance_json"] = np.str_(json.dumps(
        {"package": "refimpl.crosscheck.variant_train", "convention": asdict(conv)}))
    for s in stages:
        g = lambda k: traj.get(s, k)  # noqa: E731,B023
        steps = g("steps")
        W, loss, _ = variant_train(g("W0"), g("X"), g("y"), float(g("eta")),
                                   float(g("weight_decay")), g("trainable"), int(steps[-1]),
                                   steps, conv)
        for key in INPUT_KEYS + ("steps",):
            arrays[f"{s}/{key}"] = g(key)
        arrays[f"{s}/W"] = W
        arrays[f"{s}/loss"] = loss
    return arrays


def _nice(c):
    """c itself, or a short decimal or the reciprocal of one within 1e-9 relative."""
    for cand in (float(f"{c:.6g}"), 1.0 / float(f"{1.0 / c:.6g}")):
        if abs(cand - c) <= 1e-9 * abs(c):
            return cand
    return c


def estimate_lr_scale(traj: Trajectory, stage):
    """Estimate the constant c of a learning rate c*eta from the first step.

    With the first snapshot after 0 at step k: the reference's first-step
    direction D = -eta (grad L(W0) + lambda W0) over the trainable filters
    (MODEL.md section 3) gives c0 = <W_k - W0, D> / (k |D|^2), exact when k = 1.
    For k > 1 neither the linear estimate nor W_k itself serves (the
    activation pattern changes along k steps, so W_k is not even a continuous
    function of c); instead c solves L(W0 + c D) = loss[1], the file's data loss
    after one step, a continuous function of c: its roots are bracketed on a
    geometric grid over [1e-3, 1e3] and solved by Brent's method to rounding
    error, and among several roots the one whose k-step replay is nearest to
    W_k is taken. The result is rounded to a short decimal (or its reciprocal)
    when within 1e-9 relative.

    Returns
    -------
    (float, None) or (None, str)
        The estimate, or None and the reason it cannot be estimated.
    """
    import scipy.optimize

    g = lambda k: traj.get(stage, k)  # noqa: E731
    f64 = lambda k: np.asarray(g(k), dtype=np.float64)  # noqa: E731
    steps, W, W0, X, y = g("steps"), f64("W"), f64("W0"), f64("X"), f64("y")
    eta, lam, trainable = float(g("eta")), float(g("weight_decay")), g("trainable")
    if len(steps) < 2:
        return None, "the file has no snapshot after step 0"
    k = int(steps[1])
    D = np.where(trainable[:, :, None], -eta * (naive.gradient(W0, X, y, 0.0) + lam * W0), 0.0)
    delta = W[1] - W0
    if not np.any(D) or not np.any(delta[trainable]):
        return None, "the trainable weights do not move in the first step"
    c = float(np.vdot(delta, D) / (k * np.vdot(D, D)))
    if not (math.isfinite(c) and c > 0):
        return None, f"the first step points away from the gradient step (estimate {c:.3g})"
    if k > 1:
        target = float(g("loss")[1])
        h = lambda cc: naive.loss(W0 + cc * D, X, y) - target  # noqa: E731
        grid = np.geomspace(1e-3, 1e3, 601)
        vals = np.array([h(cc) for cc in grid])
        roots = []
        for a, b, fa, fb in zip(grid[:-1], grid[1:], vals[:-1], vals[1:]):
            if fa == 0:
                roots.append(a)
            elif fa * fb < 0:
                roots.append(scipy.optimize.brentq(h, a, b, xtol=1e-300, rtol=1e-15))
        if not roots:
            return None, ("no step size in [1e-3, 1e3] x eta gives the file's loss after "
                          "one step")

        def mismatch(cc):
            Wk, _, _ = variant_train(W0, X, y, eta, lam, trainable, k, [k],
                                     Convention(lr_scale=cc))
            return float(np.abs(Wk[0] - W[1]).max())
        c = float(min(roots, key=mismatch))
    return _nice(c), None


def _float32_valued(a):
    a = np.asarray(a)
    return bool(np.all(a.astype(np.float32).astype(np.float64) == a))


def explain_stage(traj: Trajectory, stage, rtol=DEFAULT_RTOL, atol=None, max_steps=None):
    """Replay a stage of a file under each convention variant and say which
    one agrees with the file's weights and loss.

    Each variant is trained from the file's inputs by :func:`variant_train`
    and compared with the file (W at the snapshots, the loss at every step)
    at the user's tolerance. The reference convention itself, run by the same
    GD, is listed first as the baseline. float32 arithmetic is judged at
    float32 precision: a float32 replay's own distance from the float64
    replay (normwise relative, W and loss), times FLOAT32_FACTOR, is the
    tolerance (two float32 runs that sum in different orders drift apart by
    about as much as either drifts from float64, and more over long runs
    where activation patterns flip). Because at that precision the float64
    reference is close too, float32 is named only when in addition the file's
    weights are exact float32 numbers and the file's own drift from the
    float64 reference is not far smaller (>= 1/FLOAT32_FACTOR^2) than the
    float32 replay's. The ReLU'(0) variants are tested
    only when a pre-activation is exactly 0 somewhere along their run (else
    they equal the reference). The bias is tested in one form: a trainable
    scalar bias per filter with zero init (a bias with any other initial value
    is not in the file and cannot be tested).

    Returns
    -------
    dict
        ``variants``: list of dicts (name, description, W_max_rel,
        loss_max_rel, W_first_step, loss_first_step, rtol, agrees, note);
        ``matches``: names of the variants that agree.
    """
    g = lambda k: traj.get(stage, k)  # noqa: E731
    steps = g("steps")
    W_theirs, loss_theirs = g("W"), g("loss")
    T = int(steps[-1])
    if max_steps is not None:
        if max_steps < 1:
            raise TrajectoryError(f"--explain-steps must be >= 1, got {max_steps}")
        T = min(T, int(max_steps))
        keep = steps <= T
        steps, W_theirs = steps[keep], W_theirs[keep]
    loss_theirs = loss_theirs[: T + 1]
    results = []

    def train(conv):
        return variant_train(g("W0"), g("X"), g("y"), float(g("eta")),
                             float(g("weight_decay")), g("trainable"), T, steps, conv)

    def judge(name, conv, W, loss, tol, note=""):
        _, w_rel, w_first = compare_arrays(W_theirs, W, steps, tol, atol)
        _, l_rel, l_first = compare_arrays(loss_theirs[:, None], loss[:, None],
                                           np.arange(T + 1), tol, atol)
        return {"name": name, "description": conv.describe(), "W_max_rel": w_rel,
                "loss_max_rel": l_rel, "W_first_step": w_first, "loss_first_step": l_first,
                "rtol": tol, "agrees": w_first is None and l_first is None, "note": note,
                "tested": True}

    def run(name, conv, tol, note=""):
        W, loss, zeros = train(conv)
        return judge(name, conv, W, loss, tol, note), zeros

    # the reference itself, by the same plain-numpy GD: the baseline the variants beat
    W_ref, loss_ref, _ = train(Convention())
    base = judge("reference", Convention(), W_ref, loss_ref, rtol,
                 note="no variant (MODEL.md section 3), for comparison")
    base["agrees"] = False
    results.append(base)
    for name, conv in VARIANTS.items():
        if name == "lr_scale":
            c, why = estimate_lr_scale(traj, stage)
            if c is None:
                results.append({"name": name, "description": "learning rate scaled by a constant",
                                "tested": False, "agrees": False, "note": why})
                continue
            res, _ = run(name, Convention(lr_scale=c), rtol,
                         note=f"c estimated from the first step: {c:.12g}")
        elif name == "float32":
            W32, loss32, _ = train(conv)
            # the size of float32 rounding on this run: a float32 replay vs the float64 one
            own = max(compare_arrays(W32, W_ref, steps)[1],
                      compare_arrays(loss32[:, None], loss_ref[:, None], np.arange(T + 1))[1])
            res = judge(name, conv, W32, loss32, max(rtol, FLOAT32_FACTOR * own))
            f32 = _float32_valued(W_theirs)
            drift = max(base["W_max_rel"], base["loss_max_rel"])
            same_order = own > 0 and drift >= own / FLOAT32_FACTOR**2
            res["note"] = (("the file's weights are exact float32 numbers" if f32 else
                            "the file's weights are NOT float32 numbers")
                           + f"; the file drifts {drift:.2g} from the float64 reference, a "
                           f"float32 replay {own:.2g}"
                           + ("" if same_order else " (the file's drift is far smaller)"))
            res["agrees"] = res["agrees"] and f32 and same_order
        elif name == "loss_with_decay" and float(g("weight_decay")) == 0.0:
            results.append({"name": name, "description": conv.describe(), "tested": False,
                            "agrees": False, "note": "lambda = 0: the penalty is 0"})
            continue
        elif name.startswith("relu_prime"):
            res, zeros = run(name, conv, rtol)
            if zeros == 0:
                res.update(tested=False, agrees=False,
                           note="no pre-activation is exactly 0 along this run: ReLU'(0) "
                                "cannot matter here (use zero init or integer data to test it)")
            else:
                res["note"] = f"{zeros} exactly-zero pre-activations along the run"
        else:
            res, _ = run(name, conv, rtol)
            if name == "bias":
                res["note"] = ("tested as a zero-initialised trainable bias per filter; a "
                               "bias with another initial value is not in the file")
        results.append(res)
    return {"variants": results, "matches": [r["name"] for r in results if r["agrees"]],
            "steps": T}


def format_explanation(stage, ex):
    """Text lines of one stage's explain-mode result."""
    if "skipped" in ex:
        return [f"explain {stage}: {ex['skipped']}"]
    lines = [f"explain {stage}: the file's inputs replayed under each convention variant "
             f"over steps 0..{ex['steps']} (W at the snapshots, loss at every step; the first "
             "row is the reference):",
             f"  {'variant':16} {'W max rel':>10} {'loss max rel':>12}  verdict"]
    for r in ex["variants"]:
        if not r["tested"]:
            lines.append(f"  {r['name']:16} {'-':>10} {'-':>12}  not tested: {r['note']}")
            continue
        if r["name"] == "reference":
            verdict = "baseline"
        elif r["agrees"]:
            verdict = f"AGREES (rtol {r['rtol']:g})"
        elif r["W_first_step"] is None and r["loss_first_step"] is None:
            verdict = "agrees numerically but not named (see note)"
        else:
            firsts = [s for s in (r["W_first_step"], r["loss_first_step"]) if s is not None]
            verdict = f"differs from step {min(firsts)}"
        lines.append(f"  {r['name']:16} {r['W_max_rel']:10.3g} {r['loss_max_rel']:12.3g}  "
                     f"{verdict}" + (f"; {r['note']}" if r["note"] else ""))
    if ex["matches"]:
        named = [r for r in ex["variants"] if r["agrees"]]
        for r in named:
            lines.append(f"  => {stage} matches the reference with: {r['description']} "
                         f"(W max rel {r['W_max_rel']:.3g}, loss max rel {r['loss_max_rel']:.3g})")
    else:
        lines.append(f"  => no single convention variant explains the difference in {stage} "
                     "(combinations are not tried)")
    return lines


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------

def _crosscheck_command(args):
    from .cli import UsageError
    try:
        report = crosscheck(args.theirs, args.reference, rtol=args.rtol, atol=args.atol,
                            explain=not args.no_explain, stages=args.stage,
                            explain_steps=args.explain_steps)
    except TrajectoryError as exc:
        raise UsageError(str(exc)) from None
    print(report.format())
    if args.json:
        from .trajectory import atomic_write
        text = json.dumps(report.to_dict(), indent=2, default=_json_default) + "\n"
        atomic_write(args.json, lambda fh: fh.write(text.encode()))
    return report.status


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(type(obj).__name__)


def _decompose_command(args):
    from .cli import UsageError
    try:
        added = decompose(args.run, args.out)
    except TrajectoryError as exc:
        raise UsageError(str(exc)) from None
    target = args.out or args.run
    if added:
        print(f"added coefficients by projection to {', '.join(added)}; wrote {target}")
    else:
        print(f"every stage already has coefficients; nothing added"
              + (f" (copied to {target})" if args.out else ""), file=sys.stderr)
    return 0


def register(subparsers):
    """Add the ``crosscheck`` and ``decompose`` subcommands."""
    p = subparsers.add_parser(
        "crosscheck", help="compare a trajectory file with refimpl (replay or a second file)",
        description="Compare THEIRS.npz (trajectory format 1) with refimpl: with a replay of "
                    "its own inputs, or with REF.npz. Reports, per stage and quantity, the "
                    "largest absolute and relative differences and the first step at which "
                    "the tolerance is exceeded; on a difference, explain mode names the "
                    "convention variant that reproduces it. Exit status 0 all agree, 1 any "
                    "differs, 2 unusable input.")
    p.add_argument("theirs", metavar="THEIRS.npz")
    p.add_argument("reference", metavar="REF.npz", nargs="?",
                   help="reference file (default: replay THEIRS with refimpl)")
    p.add_argument("--rtol", type=float, default=DEFAULT_RTOL,
                   help=f"relative tolerance (default {DEFAULT_RTOL:g})")
    p.add_argument("--atol", type=float, default=None,
                   help="absolute tolerance (default: rtol times the largest |value| of the "
                        "quantity at that snapshot)")
    p.add_argument("--stage", action="append", choices=STAGES,
                   help="compare only this stage (repeatable)")
    p.add_argument("--no-explain", action="store_true", help="skip explain mode")
    p.add_argument("--explain-steps", type=int, metavar="N",
                   help="explain mode replays only the first N steps (default: all; each "
                        "variant is a plain-numpy run, slow for long, large runs)")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    p.set_defaults(func=_crosscheck_command)

    q = subparsers.add_parser(
        "decompose", help="add coefficients recovered by projection to a weights-only file",
        description="Recover gamma, rho_bar and rho_under from the weight snapshots by the "
                    "projection of MODEL.md section 4 for every stage of RUN.npz that lacks "
                    "them, and write the file (atomically) in place or to --out.")
    q.add_argument("run", metavar="RUN.npz")
    q.add_argument("--out", metavar="NEW.npz", help="write here instead of in place")
    q.set_defaults(func=_decompose_command)
