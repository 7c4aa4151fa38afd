"""Explain mode: which combination of convention variants reproduces a file.

A stage whose weights or loss differ from refimpl's replay is replayed again
from the file's own inputs under combinations of the variants of
:mod:`refimpl.crosscheck.variants` (every subset of filter_sum, patch_mean,
bias, an estimated learning-rate factor, ReLU'(0) in {1, 1/2}, float32
arithmetic and a loss that includes the penalty), and each candidate is
judged against the file: W at the snapshots, the loss at every step, and the
bias when the file stores one (``s/b``).

The search:

- **pruned** where a variant cannot matter: ReLU'(0) when no pre-activation
  of the candidate's run is exactly 0 (the runs are then identical),
  loss_with_decay when lambda = 0, filter_sum when m = 1, patch_mean when
  P = 1, float32 arithmetic when the file's weights are not float32 numbers,
  and the learning-rate factor when the first step gives c = 1;
- **screened** on a prefix of the run (:data:`SCREEN_STEPS`, or T/20 when
  longer): every candidate is replayed on the prefix, and only those that
  agree there, and the :data:`SHOW` best, are replayed in full;
- the **smallest** set of variants that agrees is named; the best
  :data:`SHOW` candidates are shown with their numbers.

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

import itertools
import math
import time
from dataclasses import replace

import numpy as np

from ..errors import TrajectoryError
from .compare import DEFAULT_RTOL, EPS32, STEP0_NOTE, compare_arrays, float32_valued
from .variants import (
    VARIANTS,
    Convention,
    VariantRun,
    parse_convention,  # noqa: F401
    variant_loss_gradient,
    variant_train,
)

__all__ = [
    "FLOAT32_FACTOR",
    "SCREEN_STEPS",
    "SHOW",
    "Convention",
    "VARIANTS",
    "variant_train",
    "estimate_lr_scale",
    "explain_stage",
    "format_explanation",
    "judge_float32",
    "float32_file",
    "judge_at_float32",
    "STORAGE_VERDICT",
    "ARITHMETIC_VERDICT",
]

FLOAT32_FACTOR = 10.0  # float32 agreement within this many times float32's own drift
SCREEN_STEPS = 50  # the prefix every candidate is replayed on (or T/20 when longer)
SHOW = 5  # candidates shown
NO_VARIANT = Convention()  # the GD of docs/model.md §3.4 (frozen: safe as a shared default)


def float32_file(view) -> bool:
    """True when the stage's weight snapshots after step 0 (all, if there is
    only one) are float32 numbers."""
    W = view.W[1:] if len(view.W) > 1 else view.W
    return float32_valued(W)


def _nice(c, tol):
    """c rounded to the fewest significant digits (or the reciprocal of such a
    number) within ``tol`` relative; c itself when none is."""
    for digits in range(1, 7):
        for cand in (float(f"{c:.{digits}g}"), 1.0 / float(f"{1.0 / c:.{digits}g}")):
            if abs(cand - c) <= tol * abs(c):
                return cand
    return c


def estimate_lr_scale(view, conv=NO_VARIANT, tol=1e-9):
    """Estimate the constant c of a learning rate c*eta from the first step,
    under the other departures of ``conv``.

    With the first snapshot after 0 at step k: the first-step direction
    D = -eta (grad L(W0) + lambda W0) of ``conv`` (docs/model.md §3.4 with the
    variant's gradient) over the trainable filters gives
    c0 = <W_k - W0, D> / (k |D|^2), exact when k = 1. For k > 1 neither the
    linear estimate nor W_k itself serves (the activation pattern changes
    along k steps); instead c solves L(W0 + c D) = loss[1], the file's data
    loss after one step: its roots are bracketed on a geometric grid over
    [1e-3, 1e3] and solved by Brent's method, and among several roots the
    one whose k-step replay is nearest to W_k is taken. The result is
    rounded to a short decimal (or its reciprocal) within ``tol`` relative.

    Parameters
    ----------
    view : refimpl.trajectory.StageView
    conv : Convention
        The other departures (its lr_scale and dtype are ignored).
    tol : float

    Returns
    -------
    (float, None) or (None, str)
        The estimate, or None and the reason it cannot be estimated.
    """
    import scipy.optimize

    conv = replace(conv, lr_scale=1.0, dtype="float64", loss_with_decay=False)
    steps, W, W0, X, y = view.steps, view.f64("W"), view.f64("W0"), view.f64("X"), view.f64("y")
    eta, lam, trainable = float(view.eta), float(view.weight_decay), view.trainable
    if len(steps) < 2:
        return None, "the file has no snapshot after step 0"
    n, P, d = X.shape
    m = W0.shape[1]
    Xf = X.reshape(n * P, d)
    b0 = None
    if conv.bias:
        b0 = np.zeros(2 * m) if view.b0 is None else view.f64("b0").reshape(2 * m)
    k = int(steps[1])
    _, gW, gb, _, _ = variant_loss_gradient(W0.reshape(2 * m, d), b0, Xf, y, n, P, conv)
    mask = trainable.reshape(2 * m)
    D = np.where(mask[:, None], -eta * (gW + lam * W0.reshape(2 * m, d)), 0.0)
    Db = None if b0 is None else np.where(mask, -eta * (gb + lam * b0), 0.0)
    delta = (W[1] - W0).reshape(2 * m, d)
    if not np.any(D) or not np.any(delta[mask]):
        return None, "the trainable weights do not move in the first step"
    c = float(np.vdot(delta, D) / (k * np.vdot(D, D)))
    if not (math.isfinite(c) and c > 0):
        return None, f"the first step points away from the gradient step (estimate {c:.3g})"
    if k > 1:
        target = float(view.loss[1])

        def h(cc):
            bb = None if b0 is None else b0 + cc * Db
            return (
                variant_loss_gradient(W0.reshape(2 * m, d) + cc * D, bb, Xf, y, n, P, conv)[0]
                - target
            )

        grid = np.geomspace(1e-3, 1e3, 601)
        with np.errstate(over="ignore", invalid="ignore"):
            vals = np.array([h(cc) for cc in grid])
        roots = []
        for a, b, fa, fb in zip(grid[:-1], grid[1:], vals[:-1], vals[1:], strict=True):
            if fa == 0:
                roots.append(a)
            elif fa * fb < 0:
                roots.append(scipy.optimize.brentq(h, a, b, xtol=1e-300, rtol=1e-15))
        if not roots:
            return None, ("no step size in [1e-3, 1e3] x eta gives the file's loss after one step")

        def mismatch(cc):
            run = variant_train(
                W0, X, y, eta, lam, trainable, k, [k], replace(conv, lr_scale=cc), b0=view.b0
            )
            return float(np.abs(run.W[0] - W[1]).max())

        c = float(min(roots, key=mismatch))
    return _nice(c, tol), None


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


class _Search:
    """Replays of one stage under candidates, cached by convention and length."""

    def __init__(self, view, T, rtol, atol):
        self.view, self.T, self.rtol, self.atol = view, T, rtol, atol
        self.steps = view.steps[view.steps <= T]
        self.f32 = float32_file(view)
        self.lam = float(view.weight_decay)
        self.cache = {}

    def run(self, conv, T) -> VariantRun:
        key = (replace(conv, loss_with_decay=False), T)
        if key not in self.cache:
            v = self.view
            self.cache[key] = variant_train(
                v.W0,
                v.X,
                v.y,
                float(v.eta),
                self.lam,
                v.trainable,
                T,
                self.steps[self.steps <= T],
                key[0],
                b0=v.b0,
            )
        r = self.cache[key]
        return r._replace(loss=r.loss + r.penalty) if conv.loss_with_decay else r

    def judge(self, conv, T, note=""):
        """The comparison of the file with candidate ``conv`` over steps 0..T."""
        v, steps = self.view, self.steps[self.steps <= T]
        K = len(steps)
        r64 = self.run(replace(conv, dtype="float64"), T)
        floor = None
        if conv.dtype == "float32":
            tol_W, tol_L, floor = judge_float32(self.run(conv, T), r64, steps, self.rtol)
        else:
            tol_W = tol_L = max(self.rtol, EPS32) if self.f32 else self.rtol
        W_ref = np.array(r64.W)
        if self.f32:
            W_ref[0] = W_ref[0].astype(np.float32)
            floor = np.zeros(T + 1) if floor is None else np.array(floor)
            floor[0] = max(floor[0], 64 * EPS32 * max(abs(r64.loss[0]), 1.0))
        out = {
            "name": conv.label(),
            "names": conv.names(),
            "size": len(conv.names()),
            "description": conv.describe(b0_from_file=v.b0 is not None),
            "convention": conv,
            "steps": T,
            "rtol_W": tol_W,
            "rtol_loss": tol_L,
            "note": note,
        }
        _, out["W_max_rel"], out["W_first_step"] = compare_arrays(
            v.W[:K], W_ref, steps, tol_W, self.atol
        )
        _, out["loss_max_rel"], out["loss_first_step"] = compare_arrays(
            v.loss[: T + 1, None], r64.loss[:, None], np.arange(T + 1), tol_L, self.atol, floor
        )
        rels = [out["W_max_rel"] / tol_W, out["loss_max_rel"] / tol_L]
        firsts = [out["W_first_step"], out["loss_first_step"]]
        if v.b is not None:
            b_ref = np.zeros(v.b[:K].shape) if r64.b is None else np.array(r64.b)
            if self.f32:
                b_ref[0] = b_ref[0].astype(np.float32)
            _, out["b_max_rel"], out["b_first_step"] = compare_arrays(
                v.b[:K], b_ref, steps, tol_W, self.atol
            )
            rels.append(out["b_max_rel"] / tol_W)
            firsts.append(out["b_first_step"])
        if floor is not None:
            out["loss_unresolved"] = int(np.sum(floor[1:] > tol_L * np.abs(r64.loss[1:])))
        out["agrees"] = all(f is None for f in firsts)
        out["score"] = float(max(rels)) if all(map(math.isfinite, rels)) else math.inf
        out["zeros"] = r64.zeros
        return out


def _bases(view):
    """Every subset of filter_sum, patch_mean and bias (pruned where they
    cannot matter), and the reasons for what was pruned."""
    m, P = view.W0.shape[1], view.X.shape[1]
    axes, pruned = [], {}
    for name, free in (("filter_sum", m > 1), ("patch_mean", P > 1), ("bias", True)):
        if free:
            axes.append(name)
        else:
            pruned[name] = (
                "m = 1: the sum over filters is the mean"
                if name == "filter_sum"
                else "P = 1: the sum over patches is the mean"
            )
    bases, seen = [], {}
    for flags in itertools.product((False, True), repeat=len(axes)):
        conv = Convention(**dict(zip(axes, flags, strict=True)))
        # the variants only rescale the outputs by c_F = (1/m or 1) (1 or 1/P):
        # two bases with the same c_F and bias are the same dynamics
        key = (
            (1.0 if conv.filter_sum else 1.0 / m) * (1.0 / P if conv.patch_mean else 1.0),
            conv.bias,
        )
        if key in seen:
            pruned[conv.label()] = f"the same dynamics as {seen[key].label()} here (m = P = {m})"
            continue
        seen[key] = conv
        bases.append(conv)
    return bases, pruned


def _order(rows):
    return sorted(
        rows, key=lambda r: (not r["agrees"], r["size"] if r["agrees"] else 0, r["score"])
    )


def explain_stage(traj, stage, rtol=DEFAULT_RTOL, atol=None, max_steps=None, screen_steps=None):
    """Replay a stage of a file under combinations of convention variants and
    name the smallest one that agrees with the file (module docstring).

    Parameters
    ----------
    traj : refimpl.trajectory.Trajectory
    stage : str
    rtol, atol : float
        The user's tolerances (float64 judgement).
    max_steps : int, optional
        Replay only steps 0..max_steps.
    screen_steps : int, optional
        The prefix every candidate is replayed on; default max(SCREEN_STEPS,
        T // 20). No screening when T <= 2 x the prefix.

    Returns
    -------
    dict
        ``explanation`` (names of the smallest agreeing set of variants, [] when
        none or when the reference itself agrees, see ``matches``),
        ``description``, ``matches`` (labels of every agreeing candidate,
        smallest first), ``candidates`` (the SHOW best, dicts with W_max_rel,
        loss_max_rel, b_max_rel, rtol_W, rtol_loss, first steps, agrees,
        note), ``baseline`` (the reference convention), ``pruned`` (variant ->
        reason), ``judged`` (how each quantity was judged), ``steps``,
        ``screen_steps``, ``tried``, ``replayed``, ``seconds``.
    """
    start = time.monotonic()
    view = traj.stage(stage)
    T = view.T
    if max_steps is not None:
        if max_steps < 1:
            raise TrajectoryError(f"--explain-steps must be >= 1, got {max_steps}")
        T = min(T, int(max_steps))
    search = _Search(view, T, rtol, atol)
    prefix = max(SCREEN_STEPS, T // 20) if screen_steps is None else int(screen_steps)
    screen = prefix if T > 2 * prefix else None
    first_T = screen or T
    bases, pruned = _bases(view)
    if not search.f32:
        pruned["float32"] = "the file's weights are not float32 numbers"
    if search.lam == 0.0:
        pruned["loss_with_decay"] = "lambda = 0: the penalty is 0"
    dtypes = ("float64", "float32") if search.f32 else ("float64",)
    decays = (False, True) if search.lam else (False,)
    lr_notes, any_zeros, candidates = [], False, []
    for base in bases:
        c, why = (
            estimate_lr_scale(view, base, 1e-4 if search.f32 else 1e-9)
            if view.steps[1:2].size and view.steps[1] <= T
            else (None, "no snapshot after step 0 within the steps replayed")
        )
        lr_notes.append((base.label(), c, why))
        lrs = [1.0] + ([c] if c is not None and c != 1.0 else [])
        zeros = search.run(base, first_T).zeros > 0
        any_zeros |= zeros
        relus = (0.0, 1.0, 0.5) if zeros else (0.0,)
        for lr, rp, dt, lwd in itertools.product(lrs, relus, dtypes, decays):
            candidates.append(
                replace(base, lr_scale=lr, relu_prime_zero=rp, dtype=dt, loss_with_decay=lwd)
            )
    note_of = {
        label: f"c estimated from the first step: {c:.12g}"
        for label, c, _ in lr_notes
        if c is not None and c != 1.0
    }
    judged = [search.judge(c, first_T, _lr_note(c, note_of)) for c in candidates]
    tried = len(judged)
    if screen is not None:
        keep = [r for r in judged if r["agrees"]] + _order(judged)[:SHOW]
        chosen = list({r["name"]: r["convention"] for r in keep}.values())
        screened = set(candidates)
        for conv in list(chosen):  # ReLU'(0) may matter after the prefix
            if (
                conv.relu_prime_zero == 0.0
                and replace(conv, relu_prime_zero=1.0) not in screened
                and search.run(replace(conv, dtype="float64"), T).zeros
            ):
                chosen += [replace(conv, relu_prime_zero=rp) for rp in (1.0, 0.5)]
                any_zeros = True
        judged = [search.judge(c, T, _lr_note(c, note_of)) for c in chosen]
    if not any_zeros:
        for name in ("relu_prime_1", "relu_prime_half"):
            pruned[name] = (
                "no pre-activation is exactly 0 along the runs tried: ReLU'(0) cannot matter here"
            )
    if not note_of:
        _, c, why = lr_notes[0]
        pruned["lr_scale"] = "the first step gives c = 1" if c is not None else why
    baseline = search.judge(Convention(), T, "no variant (docs/model.md §3), for comparison")
    rows = _order(judged)
    agreeing = [r for r in rows if r["agrees"]]
    best = agreeing[0] if agreeing else None
    for r in rows + [baseline]:
        r.pop("convention")
    return {
        "explanation": best["names"] if best else [],
        "description": best["description"] if best else "",
        "matches": [r["name"] for r in agreeing],
        "candidates": rows[:SHOW],
        "baseline": baseline,
        "pruned": pruned,
        "judged": _judged_lines(search, T),
        "steps": T,
        "screen_steps": screen,
        "tried": tried,
        "replayed": len(judged),
        "float32_file": search.f32,
        "seconds": time.monotonic() - start,
    }


def _lr_note(conv, note_of):
    if conv.lr_scale == 1.0:
        return ""
    return note_of.get(
        replace(
            conv, lr_scale=1.0, relu_prime_zero=0.0, dtype="float64", loss_with_decay=False
        ).label(),
        "",
    )


def _judged_lines(search, T):
    """How each quantity was judged, in words."""
    b = ", the bias b at the snapshots" if search.view.b is not None else ""
    what = f"W at the snapshots{b} and the loss at every step 0..{T}"
    if not search.f32:
        return [f"{what}, at rtol {search.rtol:g} (a file of float64 numbers)"]
    return [
        f"{what}; the file's weights are float32 numbers, so snapshot 0 is compared with "
        "float32(W0) and the step-0 loss at float32 resolution",
        f"candidates with float32 arithmetic: W{' and b' if b else ''} within "
        f"{FLOAT32_FACTOR:g} x the normwise drift of the candidate's float32 replay from its "
        f"float64 replay (at least {FLOAT32_FACTOR:g} eps32); the loss likewise at the steps "
        f"where float32 resolves it (resolution {FLOAT32_FACTOR:g} eps32 mean_i(F_+1 + F_-1) "
        "within the tolerance), elsewhere within that resolution",
        f"candidates in float64 arithmetic: every quantity at float32 storage precision "
        f"(rtol {EPS32:.2g})",
    ]


def _verdict(r):
    if r["agrees"]:
        return "AGREES"
    firsts = [r.get(k) for k in ("W_first_step", "loss_first_step", "b_first_step")]
    return f"differs from step {min(s for s in firsts if s is not None)}"


def format_explanation(stage, ex):
    """Text lines of one stage's explain-mode result."""
    if "skipped" in ex:
        return [f"explain {stage}: {ex['skipped']}"]
    screened = (
        f"; screened on steps 0..{ex['screen_steps']}: {ex['tried']} candidates, "
        f"{ex['replayed']} replayed in full"
        if ex["screen_steps"]
        else f"; {ex['tried']} candidates"
    )
    lines = [
        f"explain {stage}: combinations of convention variants replayed from the file's "
        f"inputs over steps 0..{ex['steps']}{screened} ({ex['seconds']:.1f} s)"
    ]
    lines += [f"  judged: {j}" for j in ex["judged"]]
    for name, why in ex["pruned"].items():
        lines.append(f"  not tried: {name}: {why}")
    has_b = "b_max_rel" in ex["baseline"]
    lines.append(
        f"  {'candidate':40} {'W max rel':>10} {'loss max rel':>12}"
        + (f" {'b max rel':>10}" if has_b else "")
        + f" {'rtol W/loss':>17}  verdict"
    )
    shown = [r for r in ex["candidates"] if r["name"] != "reference"]
    for r in [ex["baseline"]] + shown:
        verdict = f"baseline, {_verdict(r).lower()}" if r is ex["baseline"] else _verdict(r)
        extra = f"{r['b_max_rel']:10.3g} " if has_b else ""
        unres = r.get("loss_unresolved")
        note = "; ".join(
            filter(
                None,
                [
                    r["note"] if r is not ex["baseline"] else "",
                    f"loss judged by float32 resolution at {unres} steps" if unres else "",
                ],
            )
        )
        lines.append(
            f"  {r['name']:40} {r['W_max_rel']:10.3g} {r['loss_max_rel']:12.3g} "
            f"{extra}{r['rtol_W']:8.2g}/{r['rtol_loss']:<8.2g}  {verdict}"
            + (f" ({note})" if note else "")
        )
    if ex["explanation"]:
        best = ex["candidates"][0]
        lines.append(
            f"  => {stage} matches the reference with: "
            f"{' + '.join(ex['explanation'])} ({ex['description']}; W max rel "
            f"{best['W_max_rel']:.3g}, loss max rel {best['loss_max_rel']:.3g})"
        )
    elif "reference" in ex["matches"] and ex["float32_file"]:
        lines.append(
            f"  => {stage}: refimpl's own dynamics, rounded to float32 on output "
            "(no convention departs)"
        )
    elif "reference" in ex["matches"]:
        lines.append(
            f"  => {stage}: explain's own replay of the reference conventions agrees "
            "(no convention departs; the difference is at the tolerance's edge)"
        )
    else:
        lines.append(
            f"  => no combination of the convention variants tried explains the "
            f"difference in {stage}"
        )
    return lines
