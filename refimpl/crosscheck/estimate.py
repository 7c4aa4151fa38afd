"""Estimating a file's step size, momentum and step-size schedule from its
own loss.

A GD step of docs/model.md §3.4 at factor c, theta(c) = theta + c D (D the
step at c = 1: every variant's update is affine in its step size, the
momentum buffer included), changes the pre-activations linearly,
pre(theta(c)) = pre(theta) + c pre(D), so the loss after the step is a cheap
scalar function of c once the two pre-activation arrays are formed. The file
stores its loss at every step: c at step t solves L(theta_t + c D_t) =
loss[t + 1] (the penalty included when the stored loss includes it, a
quadratic in c). The same holds for the momentum mu at step 1, where the
update is affine in mu. Every estimate is a proposal: explain mode replays it
and judges the replay against the file.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from .dynamics import StageReplay, data_losses

__all__ = [
    "nice",
    "estimate_lr_scale",
    "estimate_momentum",
    "estimate_schedule",
    "segments",
    "plausible",
]

GRID = 241  # points of the geometric grid that brackets a root (40 per decade)
MIN_SEARCHES = 32
"""A walk (:func:`estimate_schedule`) searches for a new step factor at most
max(MIN_SEARCHES, T / 8) times (a step that neither keeps the factor nor
continues it geometrically or linearly); beyond that the step sizes change
irregularly, which no schedule a training loop sets does, and the walk stops."""


def nice(c, tol):
    """c rounded to the fewest significant digits (or the reciprocal of such a
    number) within ``tol`` relative; c itself when none is."""
    for digits in range(1, 7):
        for cand in (float(f"{c:.{digits}g}"), 1.0 / float(f"{1.0 / c:.{digits}g}")):
            if abs(cand - c) <= tol * abs(c):
                return cand
    return c


CHUNK = 1 << 22  # pre-activation entries evaluated at once on a grid of c


def _line(st, theta, D, conv):
    """h(c): the stored loss at theta + c D (penalty included with
    ``loss_with_decay``), from two pre-activation arrays; c a number or a
    1-d array (evaluated in chunks)."""
    p0, pD = st.pre(theta, conv), st.pre(D, conv)
    quad = np.zeros(3)
    if conv.loss_with_decay and st.lam:
        sp, k = st.space(conv.dtype), len(theta) - conv.bias
        w, dw = theta[:k], D[:k]
        quad = [0.5 * st.lam * sp.inner(a, b) for a, b in ((w, w), (w, dw), (dw, dw))]

    def h(c):
        cs = np.atleast_1d(np.asarray(c, np.float64))
        rows = max(1, CHUNK // p0.size)
        out = np.concatenate(
            [
                data_losses(p0 + part[:, None, None] * pD, st.y, st.n, st.P, conv)
                for part in np.array_split(cs, max(1, -(-len(cs) // rows)))
            ]
        )
        out += quad[0] + 2 * cs * quad[1] + cs * cs * quad[2]
        return out if np.ndim(c) else float(out[0])

    return h


def _roots(h, target, grid):
    """The roots of h(c) = target bracketed on ``grid`` (Brent's method)."""
    import scipy.optimize

    with np.errstate(over="ignore", invalid="ignore"):
        vals = h(np.asarray(grid, np.float64)) - target
    roots = []
    g = lambda c: h(c) - target  # noqa: E731
    for a, b, fa, fb in zip(grid[:-1], grid[1:], vals[:-1], vals[1:], strict=True):
        if fa == 0:
            roots.append(float(a))
        elif fa * fb < 0:
            roots.append(scipy.optimize.brentq(g, a, b, xtol=1e-300, rtol=1e-15))
    return roots


def _direction(st, theta, buf, conv, t):
    """(D, the new momentum buffer, the data loss at theta): the step at
    factor 1 from theta is theta + D."""
    loss, new, buf, _, _ = st.step(theta, buf, conv, t, 1.0)
    return [a - b for a, b in zip(new, theta, strict=True)], buf, loss


def _move(theta, D, c):
    return [a + c * b for a, b in zip(theta, D, strict=True)]


def _tolerance(st, target, rtol, f32):
    """How close a predicted loss must be to the file's to count as equal."""
    eps = 64 * float(np.finfo(np.float32 if f32 else np.float64).eps)
    return max(10 * rtol, eps) * max(abs(target), 1e-300)


def estimate_lr_scale(view, conv=None, tol=1e-9, st=None):
    """Estimate the constant c of a learning rate c*eta from the first step,
    under the other departures of ``conv``.

    With the first snapshot after 0 at step k: the first-step direction D of
    ``conv`` over the trainable filters gives c0 = <W_k - W0, D> / (k |D|^2),
    exact when k = 1. For k > 1 c solves L(W0 + c D) = loss[1], the file's
    loss after one step (module docstring): its roots are bracketed on a
    geometric grid over [1e-3, 1e3] and solved by Brent's method, and among
    several roots the one whose k-step replay (with the momentum
    :func:`estimate_momentum` finds for it) is nearest to W_k is taken. The
    result is rounded to a short decimal (or its reciprocal) within ``tol``
    relative.

    Parameters
    ----------
    view : refimpl.trajectory.StageView
        The stage of the file (its W0, first snapshots and loss).
    conv : Convention, optional
        The other departures (its lr_scale, schedule and dtype are ignored).
    tol : float
        Relative tolerance of the rounding to a short decimal (and of the
        momentum estimate).
    st : StageReplay, optional
        The stage's replays (made from ``view`` when not given).

    Returns
    -------
    (float, None) or (None, str)
        The estimate, or None and the reason it cannot be estimated.
    """
    from .variants import Convention

    conv = replace(conv or Convention(), lr_scale=1.0, lr_schedule=(), dtype="float64")
    st = st or StageReplay(view)
    if len(view.steps) < 2:
        return None, "the file has no snapshot after step 0"
    k = int(view.steps[1])
    theta = st.theta0(conv)
    D, _, _ = _direction(st, theta, None, conv, 0)
    sp = st.space()
    Dw = sp.weights([D[: len(D) - conv.bias]])[0]
    delta = (view.f64("W")[1] - view.f64("W0")).reshape(Dw.shape)
    moving = st.trainable | (conv.decay_frozen and st.lam > 0)
    if not np.any(Dw) or not np.any(delta[moving]):
        return None, "the trainable weights do not move in the first step"
    c = float(np.vdot(delta, Dw) / (k * np.vdot(Dw, Dw)))
    if not (math.isfinite(c) and c > 0):
        return None, f"the first step points away from the gradient step (estimate {c:.3g})"
    if k > 1:
        roots = _roots(_line(st, theta, D, conv), float(view.loss[1]), np.geomspace(1e-3, 1e3, 601))
        if not roots:
            return None, "no step size in [1e-3, 1e3] x eta gives the file's loss after one step"

        def mismatch(cc):  # with the momentum the loss after step 2 gives for cc
            mu = estimate_momentum(st, replace(conv, lr_scale=cc), tol)
            W = st.run(replace(conv, lr_scale=cc, momentum=mu or 0.0), k, [k])[0]
            return float(np.abs(W[0] - view.f64("W")[1].reshape(W[0].shape)).max())

        c = float(min(roots, key=mismatch))
    return nice(c, tol), None


def estimate_momentum(st, conv, tol=1e-9, rtol=1e-10, f32=False):
    """The momentum mu of ``torch.optim.SGD`` from the loss after step 2.

    The second step with momentum is theta_2 = theta_2(mu = 0) - mu c eta
    buf_0, affine in mu: mu solves L(theta_2(mu)) = loss[2] in [0, 1)
    (``conv`` carries the step factor c of both steps). None when mu = 0
    already gives the file's loss (or the run is shorter than 2 steps, or no
    mu does).
    """
    T = st.view.T
    if T < 2:
        return None
    conv = replace(conv, momentum=0.0, dtype="float64", lr_schedule=())
    target = float(st.view.loss[2])
    theta = st.theta0(conv)
    _, theta1, _, _, _ = st.step(theta, None, conv, 0, conv.lr_scale)
    D0, _, _ = _direction(st, theta, None, conv, 0)  # -eta buf_0 at factor 1
    _, theta2, _, _, _ = st.step(theta1, None, conv, 1, conv.lr_scale)
    h = _line(st, theta2, [conv.lr_scale * a for a in D0], conv)
    if abs(h(0.0) - target) <= _tolerance(st, target, rtol, f32):
        return None
    roots = [r for r in _roots(h, target, np.linspace(0.0, 0.9999, 401)) if r > 0]
    if not roots:
        return None
    return nice(min(roots), tol)


def estimate_schedule(st, conv, T, tol=1e-9, rtol=1e-10, f32=False):
    """The step factor of every step 0..T-1 from the loss at every step.

    A walk along the run under ``conv`` (its lr_scale the starting factor):
    at step t the factor of step t - 1 is kept when it gives the file's
    loss[t + 1]; otherwise the root of L(theta_t + c D_t) = loss[t + 1]
    nearest to it (on a geometric grid of 1e-3 to 1e3 times it) is taken,
    rounded within ``tol``; before searching, the factor continued
    geometrically or linearly is tried (an exponential decay or a warm-up then
    needs no search). The walk stops at a step no factor explains, or after
    max(:data:`MIN_SEARCHES`, T / 8) searches.

    Returns
    -------
    factors : list of float
        One per step walked (fewer than T when the walk stopped).
    """
    conv = replace(conv, dtype="float64", lr_schedule=())
    theta, buf, c, factors = st.theta0(conv), None, conv.lr_scale, []
    loss, searches = st.view.loss, max(MIN_SEARCHES, int(T) // 8)
    for t in range(int(T)):
        D, new_buf, _ = _direction(st, theta, buf, conv, t)
        target = float(loss[t + 1])
        h = _line(st, theta, D, conv)
        tolerance = _tolerance(st, target, rtol, f32)
        guess = next((g for g in _continued(factors, c) if abs(h(g) - target) <= tolerance), None)
        if guess is None:
            roots = _roots(h, target, c * np.geomspace(1e-3, 1e3, GRID))
            searches -= 1
            if not roots or searches < 0:
                break
            guess = nice(min(roots, key=lambda r: abs(math.log(r / c))), tol)
        c = guess
        factors.append(c)
        theta, buf = _move(theta, D, c), new_buf
    return factors


def _continued(factors, c):
    """The factor of the next step if nothing changes, then if the schedule
    goes on geometrically or linearly (an exponential decay, a warm-up)."""
    yield c
    if len(factors) >= 2 and factors[-2] > 0 and factors[-1] != factors[-2]:
        yield c * c / factors[-2]
        yield 2 * c - factors[-2]


def segments(factors):
    """Consecutive equal factors merged: ((start, factor), ...)."""
    out = []
    for t, c in enumerate(factors):
        if not out or out[-1][1] != c:
            out.append((t, float(c)))
    return tuple(out)


def _regular(values):
    """Arithmetic or geometric to 1e-6 relative (a linear warm-up, an
    exponential decay)."""
    v = np.asarray(values, float)
    if len(v) < 3:
        return False
    steps, ratios = np.diff(v), v[1:] / v[:-1]
    scale = np.max(np.abs(v))
    return bool(np.ptp(steps) <= 1e-6 * scale or np.ptp(ratios) <= 1e-6 * abs(ratios[0]))


def plausible(schedule):
    """Whether an estimated schedule is one a training loop sets, not rounding
    read as step sizes: every segment but the last spans at least two steps,
    except a first segment at step 0 (a one-step warm-up) and runs of one-step
    segments whose factors (with the next segment's) change linearly or
    geometrically (a warm-up, ExponentialLR). A float32 run's loss drifts from
    a float64 walk by more than the walk's tolerance late in a long run; the
    walk then reads that drift as one-step changes of the step size."""
    starts = [a for a, _ in schedule] + [None]
    short = [k for k in range(len(schedule) - 1) if starts[k + 1] - starts[k] == 1]
    runs, run = [], []
    for k in short:
        if run and k != run[-1] + 1:
            runs.append(run)
            run = []
        run.append(k)
    runs += [run] if run else []
    for run in runs:
        if run == [0]:
            continue
        factors = [schedule[k][1] for k in run] + [schedule[run[-1] + 1][1]]
        if not _regular(factors):
            return False
    return True
