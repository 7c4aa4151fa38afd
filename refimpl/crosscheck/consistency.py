"""Consistency checks on a trajectory file itself, before any replay.

A file can contradict itself in ways no replay needs to find: filters marked
frozen that move, a snapshot 0 that is not ``W0``, trainable filters (or a
whole class) that never move although their first step is not zero, noise
coefficients that stay zero while the signal ones grow, a loss at step 0
that is not the loss of ``W0`` on the file's own inputs, and a downstream
stage whose start is not the transfer (docs/model.md §5.2) of the upstream
stage's last weights that the file and its ``config_json`` describe. Each
check is one named :class:`Check`; :func:`check_file` runs them all and
:func:`refimpl.crosscheck.crosscheck` reports them (a failed check makes the
exit status 1). This module holds the checks of each stage on its own
(:func:`stage_checks`) and what every check shares (:class:`Check`,
:data:`CHECKS`, the precision helpers);
:mod:`refimpl.crosscheck.transfer_check` holds the checks of the transfer
(:func:`~refimpl.crosscheck.transfer_check.transfer_checks`).

Precision. "Equal" means equal at the file's precision: a stage whose
weights after step 0 are float32 numbers (or replayed under a float32
convention) is compared with ``W0`` rounded to float32, and two filters are
equal when ``|a - b| <= 4 eps |b|`` (normwise per filter, eps the unit
roundoff of that precision). The transfer's own tolerance is described in
:mod:`refimpl.crosscheck.transfer_check`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import product

import numpy as np

from ..errors import DivergenceError
from ..train import train_stage
from .coefficients import file_run
from .compare import DEFAULT_RTOL, EPS32, float32_valued
from .variants import Convention, variant_loss_gradient, variant_train

__all__ = [
    "CHECKS",
    "Check",
    "check_file",
    "stage_checks",
    "NOISE_FRACTION",
    "step0_losses",
    "loss0_check",
]

EPS64 = float(np.finfo(np.float64).eps)
SAME = 4.0
"""Two filters are equal at a precision eps when |a - b| <= SAME eps |b|."""
NOISE_FRACTION = 1e-3
"""Noise coefficients count as zero below this fraction of those of
refimpl's own first step from the file's W0."""
SHOWN = 4
"""Filters named in a line before "and N more"."""

CHECKS = {
    "frozen_static": "filters marked frozen (trainable False) never move",
    "snapshot0": "snapshot 0 (W[0]) is W0 at the file's precision",
    "trainable_moves": "every trainable filter whose first step is not zero moves",
    "noise_coefficients": "noise coefficients are not all zero while signal ones grow",
    "loss0": "the loss at step 0 is the loss of W0 on the file's inputs",
    "transfer_sources": "inherited filters of down/W0 are (rescaled) copies of up/W[-1]",
    "transfer_count": "round(alpha m_down) inherited filters per class",
    "fresh_scale": "fresh filters of down/W0 have the scale sigma_0",
    "inherited_mask": "down/inherited marks exactly the inherited filters",
}
"""The named checks and what each asserts."""


@dataclass
class Check:
    """One consistency check of one stage.

    Attributes
    ----------
    stage : str
        The stage checked.
    name : str
        A key of :data:`CHECKS`.
    ok : bool
        False when the check failed.
    note : str
        What was found (on failure: what is wrong and its likely cause), or
        why the check was not made.
    skipped : bool
        The check could not be made (``note`` says why); not a failure.
    """

    stage: str
    name: str
    ok: bool = True
    note: str = ""
    skipped: bool = False

    @property
    def verdict(self) -> str:
        return "not checked" if self.skipped else "ok" if self.ok else "FAILED"

    def line(self) -> str:
        """The report's line."""
        return f"{self.stage:8} {self.name:19} {self.verdict}: {self.note}"


def check_file(traj, stages=None, conv=None, replay=True, rtol=DEFAULT_RTOL):
    """Every consistency check of a loaded trajectory file.

    Parameters
    ----------
    traj : refimpl.trajectory.Trajectory
        The loaded file.
    stages : sequence of str, optional
        The stages checked (default all); the transfer is checked when
        ``down`` is among them.
    conv : Convention, optional
        The conventions the file is replayed under (the network whose step-0
        loss and first step are meant); None: refimpl's.
    replay : bool
        False when the file is compared with a reference file: the step-0
        loss is then not checked against refimpl's network.
    rtol : float
        The report's tolerance (the step-0 loss, the transfer).

    Returns
    -------
    list of Check
    """
    # Imported here: transfer_check imports Check and the helpers from this module.
    from .transfer_check import transfer_checks

    stages = traj.stages if stages is None else [s for s in traj.stages if s in stages]
    checks = []
    for s in stages:
        checks += stage_checks(traj.stage(s), conv, replay, rtol)
        if s == "down":
            checks += transfer_checks(traj, rtol)
    return checks


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _rel(a, b):
    """Normwise relative distance |a - b| / |b| over the last axis (0/0 = 0,
    x/0 = inf)."""
    a, b = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64))
    num = np.linalg.norm(a - b, axis=-1)
    den = np.linalg.norm(b, axis=-1)
    out = np.where(num == 0, 0.0, np.inf)
    return np.divide(num, den, out=out, where=den > 0)


def _name(j, r):
    return f"({'+1' if j == 0 else '-1'}, {r})"


def _names(positions):
    """'(+1, 0), (-1, 2)' for a list of (j, r), at most SHOWN of them."""
    shown = ", ".join(_name(j, r) for j, r in positions[:SHOWN])
    more = len(positions) - SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def _eps(view, conv):
    """The unit roundoff of the stage's precision (module docstring)."""
    W = view.W[1:] if len(view.W) > 1 else view.W
    f32 = float32_valued(W) or (conv is not None and conv.dtype == "float32")
    return EPS32 if f32 else EPS64


def _at_precision(a, eps):
    a = np.asarray(a, np.float64)
    return a.astype(np.float32).astype(np.float64) if eps == EPS32 else a


def _precision(eps):
    return "float32" if eps == EPS32 else "float64"


def _grad_convention(view, conv):
    """The network whose gradient is meant: the replay's, with the file's
    bias when it stores ``s/b0``."""
    conv = Convention() if conv is None else conv
    return replace(conv, dtype="float64", bias=conv.bias or view.b0 is not None)


def _flat(view):
    X = view.f64("X")
    n, P, d = X.shape
    return X.reshape(n * P, d), view.f64("y"), n, P


# ---------------------------------------------------------------------------
# the checks of one stage
# ---------------------------------------------------------------------------


def stage_checks(view, conv=None, replay=True, rtol=DEFAULT_RTOL):
    """The consistency checks of one stage (:data:`CHECKS` but the transfer).

    Parameters
    ----------
    view : refimpl.trajectory.StageView
    conv, replay, rtol
        As in :func:`check_file`.

    Returns
    -------
    list of Check
    """
    view.roles()  # refuses undeterminable inputs, naming them
    eps = _eps(view, conv)
    W, W0 = view.f64("W"), view.f64("W0")
    W0p = _at_precision(W0, eps)
    declared = _declared(view, conv)
    checks = [
        declared.get("frozen_static") or _frozen(view, W, W0p, eps),
        declared.get("snapshot0") or _snapshot0(view, W, W0, W0p, eps, conv),
        _trainable(view, W, W0p, eps, conv),
        _noise(view),
    ]
    if replay:
        checks.append(_loss0(view, eps, conv, rtol))
    else:
        checks.append(
            Check(
                view.name,
                "loss0",
                skipped=True,
                note="compared with a reference file, not with refimpl's network",
            )
        )
    return checks


def _declared(view, conv):
    """The checks a named convention answers itself: frozen filters that
    move under ``decay_frozen``, a snapshot 0 that is not W0 under
    ``snapshot_offset+1`` (the replay, which has the same departure, is
    compared with the file instead)."""
    out = {}
    if conv is not None and conv.decay_frozen:
        note = "not checked: the convention decays frozen filters (decay_frozen); the replay does"
        out["frozen_static"] = Check(view.name, "frozen_static", skipped=True, note=note)
    if conv is not None and conv.snapshot_offset > 0:
        note = "not checked: the convention records W after the step (snapshot_offset+1)"
        out["snapshot0"] = Check(view.name, "snapshot0", skipped=True, note=note)
    return out


def _frozen(view, W, W0p, eps):
    s = view.name
    frozen = ~np.asarray(view.trainable, bool)
    if not frozen.any():
        return Check(s, "frozen_static", note="no filter is frozen")
    move = _rel(W, W0p[None]).max(axis=0)  # (2, m): the largest move of each filter
    moved = frozen & (move > SAME * eps)
    if not moved.any():
        return Check(s, "frozen_static", note=f"the {int(frozen.sum())} frozen filters stay at W0")
    where = [tuple(p) for p in np.argwhere(moved)]
    worst = float(move[moved].max())
    T = view.T
    decay = (1.0 - float(view.eta) * float(view.weight_decay)) ** view.steps
    by_decay = _rel(W[:, moved], decay[:, None, None] * W0p[None][:, moved]).max()
    cause = (
        "as weight decay alone would move them (s_t W0): the optimizer's weight decay "
        "reaches the frozen filters (give the optimizer only the trainable ones)"
        if float(view.weight_decay) and by_decay <= 1e-3 * worst
        else "a gradient or update reaches them (is the trainable mask applied?)"
    )
    return Check(
        s,
        "frozen_static",
        ok=False,
        note=f"{int(moved.sum())} of {int(frozen.sum())} filters marked frozen move, by up to "
        f"{worst:.3g} of their norm over steps 0..{T} ({_names(where)}): {cause}",
    )


def _snapshot0(view, W, W0, W0p, eps, conv):
    s = view.name
    gap = _rel(W[0], W0p)
    if gap.max() <= SAME * eps:
        return Check(s, "snapshot0", note=f"equal at {_precision(eps)} precision")
    worst = float(gap.max())
    cause = "the file's W0 is not the start of its run"
    if float(_rel(W[0], W0p[::-1]).max()) <= SAME * eps:
        cause = "it is W0 with its classes swapped: axis 0 index 0 must be class j = +1 in both"
    elif view.T >= 1:
        gconv = _grad_convention(view, conv)
        b0 = view.b0 if gconv.bias else None
        args = (view.f64("X"), view.f64("y"), float(view.eta), float(view.weight_decay))
        W1 = variant_train(W0, *args, view.trainable, 1, [0, 1], gconv, b0).W[1]
        if float(_rel(W[0], W1).max()) <= 1e-3 * worst:
            cause = (
                "it is the weights after the first step: the snapshots are taken after the "
                "step instead of before (snapshot k must hold the weights of step steps[k])"
            )
    return Check(
        s,
        "snapshot0",
        ok=False,
        note=f"W[0] differs from W0 by up to {worst:.3g} of a filter's norm "
        f"(at {_precision(eps)} precision they must be equal): {cause}",
    )


def _trainable(view, W, W0p, eps, conv):
    s = view.name
    if len(view.steps) < 2:
        return Check(s, "trainable_moves", skipped=True, note="the file has one snapshot")
    trainable = np.asarray(view.trainable, bool)
    gconv = _grad_convention(view, conv)
    Xf, y, n, P = _flat(view)
    W0 = view.f64("W0")
    two, m, d = W0.shape
    b = None if not gconv.bias else np.asarray(view.b0, np.float64).reshape(-1)
    with np.errstate(over="ignore", invalid="ignore"):
        g = variant_loss_gradient(W0.reshape(2 * m, d), b, Xf, y, n, P, gconv)[1]
    step = gconv.lr_scale * float(view.eta) * (g.reshape(2, m, d) + float(view.weight_decay) * W0)
    expected = trainable & (_rel(W0 + step, W0) > 2 * SAME * eps)
    static = _rel(W[1:], W0p[None]).max(axis=0) <= SAME * eps
    still = expected & static
    if not still.any():
        return Check(
            s,
            "trainable_moves",
            note=f"the {int(expected.sum())} trainable filters whose first step is not zero move",
        )
    classes = ["+1" if j == 0 else "-1" for j in range(2) if expected[j].any() and still[j].all()]
    what = (
        f"no trainable filter of class {' nor '.join(classes)} ever moves: is the class "
        "detached from the loss?"
        if classes
        else "is their gradient detached or masked?"
    )
    return Check(
        s,
        "trainable_moves",
        ok=False,
        note=f"{int(still.sum())} filters marked trainable never move over steps 0..{view.T} "
        f"although their first step is not zero ({_names([tuple(p) for p in np.argwhere(still)])})"
        f": {what}",
    )


def _noise(view):
    s = view.name
    if view.T < 1:
        return Check(s, "noise_coefficients", skipped=True, note="the run has no step")
    run, note = file_run(view)
    if "rho_bar" not in run:
        return Check(s, "noise_coefficients", skipped=True, note=note)
    try:
        one = train_stage(
            view.f64("W0"),
            view.task(),
            float(view.eta),
            1,
            weight_decay=float(view.weight_decay),
            trainable=view.trainable,
            snapshots=[0, 1],
        )
    except DivergenceError:
        return Check(s, "noise_coefficients", skipped=True, note="refimpl's first step diverges")
    ref_noise = max(np.abs(one.rho_bar[1]).max(), np.abs(one.rho_under[1]).max())
    ref_signal = float(np.abs(one.gamma[1]).max(initial=0.0))
    noise = max(np.abs(run["rho_bar"]).max(), np.abs(run["rho_under"]).max())
    signal = float(np.abs(run["gamma"]).max(initial=0.0))
    if ref_noise == 0:
        return Check(
            s, "noise_coefficients", skipped=True, note="refimpl's first step memorises no noise"
        )
    if noise > NOISE_FRACTION * ref_noise or signal <= NOISE_FRACTION * ref_signal:
        return Check(s, "noise_coefficients", note=f"max |rho| = {noise:.3g} ({note})")
    return Check(
        s,
        "noise_coefficients",
        ok=False,
        note=f"the noise coefficients stay zero (max |rho_bar|, |rho_under| = {noise:.3g}, "
        f"{note}) while the signal ones grow (max |gamma| = {signal:.3g}); refimpl's first "
        f"step alone from the file's W0 gives max |rho| = {ref_noise:.3g}: the noise patches "
        "do not reach the gradient (a detached noise patch?)",
    )


def step0_losses(view, conv=None):
    """The step-0 loss of W0 under ``conv`` and under every structural
    departure that may explain a different one (filter_sum, patch_mean, the
    file's bias s/b0, the penalty in the loss, the class order, a loss summed
    over the inputs):
    {label: (loss, Convention)}, the replay's network first. Explain mode
    keeps only the departures whose step-0 loss is the file's."""
    Xf, y, n, P = _flat(view)
    W0 = view.f64("W0")
    two, m, d = W0.shape
    lam = float(view.weight_decay)
    relu = {False: np.maximum(W0.reshape(2 * m, d) @ Xf.T, 0)}
    if view.b0 is not None:
        b = np.asarray(view.b0, np.float64).reshape(-1, 1)
        relu[True] = np.maximum(W0.reshape(2 * m, d) @ Xf.T + b, 0)
    conv = Convention() if conv is None else conv
    out = {}
    options = product(
        (conv.filter_sum, not conv.filter_sum),
        (conv.patch_mean, not conv.patch_mean),
        (conv.bias and view.b0 is not None, not conv.bias and view.b0 is not None),
        (conv.loss_with_decay, not conv.loss_with_decay and lam > 0),
        (conv.swap_classes, not conv.swap_classes),
        (conv.loss_sum, not conv.loss_sum),
    )
    for fs, pm, bias, decay, swap, total in dict.fromkeys(options):
        sums = relu[bias].reshape(2, m, n, P).sum(axis=(1, 3))
        F = sums * ((1.0 if fs else 1.0 / m) * (1.0 / P if pm else 1.0))
        z = y * ((F[1] - F[0]) if swap else (F[0] - F[1]))
        losses = np.logaddexp(0.0, -z)
        loss = float(np.sum(losses) if total else np.mean(losses))
        loss += 0.5 * lam * float(np.sum(W0**2)) if decay else 0.0
        c = Convention(
            filter_sum=fs,
            patch_mean=pm,
            bias=bias,
            loss_with_decay=decay,
            swap_classes=swap,
            loss_sum=total,
        )
        out.setdefault(c.label(), (loss, c))
    return out


def loss0_check(view, rtol=DEFAULT_RTOL):
    """The ``loss0`` check of a stage against refimpl's network (module
    docstring): its note names a different network function at step 0."""
    return _loss0(view, _eps(view, None), None, rtol)


def _loss0(view, eps, conv, rtol):
    s = view.name
    theirs = float(view.loss[0])
    losses = step0_losses(view, conv)
    label, (mine, _) = next(iter(losses.items()))
    tol = max(rtol, 64 * eps) * max(abs(mine), 1.0)
    network = "refimpl's network" if conv is None else f"the replay's network ({conv.label()})"
    if abs(theirs - mine) <= tol:
        return Check(s, "loss0", note=f"loss[0] = {theirs:.10g}, W0's under {network}")
    found = [c for lab, (value, c) in losses.items() if abs(theirs - value) <= tol and lab != label]
    head = (
        f"the file's loss at step 0 ({theirs:.10g}) is not the loss of W0 on the file's inputs "
        f"under {network} ({mine:.10g}): a different network function at step 0"
    )
    if found:
        c = found[0]
        swap, c = c.swap_classes, replace(c, swap_classes=False)
        if swap:
            under = f" under {c.label()}" if c.names() else ""
            what = (f"{c.describe(view.b0 is not None)}; " if c.names() else "") + (
                "axis 0 index 0 must be class j = +1"
            )
            under += " with the classes swapped"
        else:
            under = f" under {c.label()}" if c.names() else " under refimpl's network"
            what = c.describe(view.b0 is not None)
        note = f"{head}; it is W0's loss{under} ({what})"
        return Check(s, "loss0", ok=False, note=note)
    tried = "filter_sum, patch_mean, the class order, a summed loss" + (
        ", the decay term" if float(view.weight_decay) else ""
    )
    if view.b0 is not None:
        cause = f"none of {tried} and the file's bias s/b0 explains it: another loss or model"
    else:
        cause = (
            f"none of {tried} explains it; likely a bias (a default nn.Conv1d or nn.Linear has "
            f"one): store {s}/b0, its initial value, in the file (and {s}/b at the snapshots), "
            "then explain mode and --convention bias use it; else another loss or model"
        )
    return Check(s, "loss0", ok=False, note=f"{head}; {cause}")
