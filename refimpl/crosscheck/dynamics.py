"""The GD of the convention variants, in weight space or in the span of the data.

One loop (:func:`replay`) serves every variant of
:class:`~refimpl.crosscheck.variants.Convention` in two representations of
the filters:

- :class:`WeightSpace`: the filters themselves, ``theta = (W,)`` with W of
  shape (2m, d); the obviously correct form, kept as the oracle of the other;
- :class:`GramSpace`: the form of docs/model.md §9.1, w_r = s_r w_{r,0} +
  sum_k B_{r,k} u_k over the *distinct* patch vectors u_k of the stage,
  ``theta = (s, B)``; the pre-activations come from the Gram matrix
  G = U U^T and K_0 = W_0 U^T (§9.2), so a step costs O(m |U|^2) instead of
  O(m nP d). The weights are formed only where they are recorded.

Both spaces give the same run to rounding (tests/crosscheck/test_dynamics.py).
The network outputs, the loss and the coefficients of the gradient are the
same code in both (:func:`outputs`); a space only says how pre-activations
are formed from theta and how a gradient is expressed in theta's coordinates.

The update of docs/model.md §3.4, w <- (1 - c eta lambda) w - c eta grad w, is
the default; with ``momentum`` mu it is the heavy-ball step of
``torch.optim.SGD`` (d = grad w + lambda w, buf <- mu buf + d, the first
buf = d; w <- w - c eta buf, or w <- w - c eta (d + mu buf) with
``nesterov``); with ``decay_frozen`` the frozen filters are
decayed by the same rule with a zero gradient (an optimizer's weight decay on
parameters whose gradient was masked). c is ``lr_scale``, times the factor of
the step's segment of ``lr_schedule``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "WeightSpace",
    "GramSpace",
    "StageReplay",
    "choose_space",
    "outputs",
    "data_losses",
    "step_factors",
    "replay",
]


def _logistic(z):
    """l(z) = log(1 + exp(-z)) and l'(z) = -1/(1 + exp(z)), stable for any
    finite z, in the dtype of z (docs/model.md §3.2). Subnormal values of
    l' are flushed to 0: they change no sum by more than the smallest normal
    number, and subnormal arithmetic is up to 100x slower."""
    e = np.exp(-np.abs(z))
    loss = np.maximum(-z, 0) + np.log1p(e)
    dloss = np.where(z >= 0, -e / (1 + e), -1 / (1 + e)).astype(z.dtype)
    dloss[np.abs(dloss) < np.finfo(z.dtype).tiny] = 0
    return loss, dloss


def outputs(pre, y, n, P, conv):
    """Loss, gradient coefficients, zero count and output size from the
    pre-activations under ``conv`` (docs/model.md §3.1, §3.2, §3.4).

    F_j = c_F sum_r sum_p sigma(pre_{j,r,i,p}), c_F = (1/m or 1)(1 or 1/P);
    f = F_{+1} - F_{-1} (F_{-1} - F_{+1} with ``swap_classes``). The gradient
    of the data loss with respect to filter (j, r) is sum_{i,p} coef[r, i P + p]
    x_i^(p) (and sum of the row for its bias), with
    coef = (c_F/n) l'_i y_i j sigma'(pre) (c_F without 1/n, and the loss a sum,
    with ``loss_sum``).

    Parameters
    ----------
    pre : ndarray of shape (2m, nP)
        Row j*m + r, column i*P + p; the bias already added.
    y : ndarray of shape (n,)
    n, P : int
    conv : Convention

    Returns
    -------
    loss : float
    coef : ndarray of shape (2m, nP)
    zeros : int
        Pre-activations exactly 0.
    logits : float
        mean_i (F_{+1}(x_i) + F_{-1}(x_i)).
    """
    m = pre.shape[0] // 2
    dt = pre.dtype.type
    norm, F, z = _forward(pre, y, n, P, conv)
    loss, dloss = _logistic(z)
    zero = pre == 0
    active = (pre > 0).astype(pre.dtype)
    if conv.relu_prime_zero != 0.0:
        active += dt(conv.relu_prime_zero) * zero
    j = np.array([-1.0, 1.0] if conv.swap_classes else [1.0, -1.0], pre.dtype)
    sign = np.repeat(j, m)[:, None]  # j of each row
    per_input = norm if conv.loss_sum else norm / n  # a summed loss: n times the mean
    coef = active * (np.repeat(dloss * y, P) * dt(per_input))[None, :] * sign
    coef[np.abs(coef) < np.finfo(pre.dtype).tiny] = 0  # no subnormal products (slow)
    value = float(np.sum(loss) if conv.loss_sum else np.mean(loss))
    return value, coef, int(np.count_nonzero(zero)), float(np.mean(F[0] + F[1]))


def _forward(pre, y, n, P, conv):
    """(c_F, the outputs F (..., 2, n), the margins y f (..., n)) of
    pre-activations (..., 2m, nP), any leading axes (docs/model.md §3.1)."""
    m = pre.shape[-2] // 2
    norm = (1.0 if conv.filter_sum else 1.0 / m) * (1.0 / P if conv.patch_mean else 1.0)
    lead = pre.shape[:-2]
    F = np.maximum(pre, 0).reshape(*lead, 2, m, n, P).sum(axis=(-3, -1)) * pre.dtype.type(norm)
    f = F[..., 1, :] - F[..., 0, :] if conv.swap_classes else F[..., 0, :] - F[..., 1, :]
    return norm, F, y * f


def data_losses(pre, y, n, P, conv):
    """The data loss (docs/model.md §3.2) of each of a stack of
    pre-activations (G, 2m, nP): shape (G,)."""
    z = _forward(pre, y, n, P, conv)[2]
    losses = np.logaddexp(0.0, -z)
    return np.sum(losses, axis=-1) if conv.loss_sum else np.mean(losses, axis=-1)


class WeightSpace:
    """theta = (W,), the filters as rows of W (2m, d)."""

    name = "weight"

    def __init__(self, W0f, Xf):
        self.W0f, self.Xf, self.XfT = W0f, Xf, np.ascontiguousarray(Xf.T)

    def start(self):
        return [self.W0f.copy()]

    def pre(self, theta):
        return theta[0] @ self.XfT

    def grad(self, coef):
        return [coef @ self.Xf]

    def weights(self, thetas):
        """The filters (K, 2m, d) of K recorded thetas."""
        return np.stack([th[0] for th in thetas])

    def inner(self, p, q):
        """sum_r <w_r(p), w_r(q)> over all filters."""
        return float(np.vdot(p[0].astype(np.float64), q[0].astype(np.float64)))


class GramSpace:
    """theta = (s, B): w_r = s_r w_{r,0} + sum_k B_{r,k} u_k over the distinct
    patch vectors u_k (docs/model.md §9.1); float64 only."""

    name = "gram"

    def __init__(self, W0f, Xf):
        self.U, self.idx = _distinct_rows(Xf)
        self.W0f = W0f
        self.G = self.U @ self.U.T  # (|U|, |U|)
        self.K0 = W0f @ self.U.T  # (2m, |U|)
        self.w0sq = np.einsum("rd,rd->r", W0f, W0f)
        self.order = np.argsort(self.idx, kind="stable")
        self.starts = np.flatnonzero(np.r_[True, np.diff(self.idx[self.order]) != 0])

    def start(self):
        return [np.ones(self.W0f.shape[0]), np.zeros(self.K0.shape)]

    def pre(self, theta):
        s, B = theta
        return (s[:, None] * self.K0 + B @ self.G)[:, self.idx]

    def grad(self, coef):
        return [np.zeros(coef.shape[0]), np.add.reduceat(coef[:, self.order], self.starts, axis=1)]

    def weights(self, thetas):
        """The filters (K, 2m, d) of K recorded thetas: one product for all."""
        s = np.stack([th[0] for th in thetas])
        B = np.stack([th[1] for th in thetas])
        K, two_m, u = B.shape
        return s[..., None] * self.W0f + (B.reshape(K * two_m, u) @ self.U).reshape(K, two_m, -1)

    def inner(self, p, q):
        """sum_r <w_r(p), w_r(q)> from G and K_0 (no d-dimensional work)."""
        (sp, Bp), (sq, Bq) = p, q
        total = sp * sq * self.w0sq + sp * np.einsum("rk,rk->r", Bq, self.K0)
        total += sq * np.einsum("rk,rk->r", Bp, self.K0)
        return float(np.sum(total + np.einsum("rk,rk->r", Bp @ self.G, Bq)))


def _distinct_rows(Xf):
    """The distinct rows U of Xf and, for each row of Xf, its index in U."""
    U, idx = np.unique(Xf, axis=0, return_inverse=True)
    return np.ascontiguousarray(U), np.asarray(idx).reshape(-1)


def choose_space(W0f, Xf, dtype="float64"):
    """The cheaper space for a float64 replay: Gram space when its per-step
    products (2m |U|^2, the distinct patches U) cost less than half of the
    weight-space ones (2 * 2m nP d); weight space for float32 arithmetic (the
    rounding of a framework's float32 run is that of weight space)."""
    if np.dtype(dtype) != np.float64:
        return WeightSpace(W0f, Xf)
    n_distinct = len(np.unique(Xf, axis=0))
    if n_distinct**2 < Xf.shape[0] * Xf.shape[1]:
        return GramSpace(W0f, Xf)
    return WeightSpace(W0f, Xf)


def step_factors(conv, T):
    """c_t for t = 0..T-1: ``lr_scale``, times each step's segment factor of
    ``lr_schedule`` ((start, factor) pairs, the first start 0)."""
    c = np.full(max(int(T), 0), float(conv.lr_scale))
    for start, factor in conv.lr_schedule:
        c[int(start) :] = float(conv.lr_scale) * float(factor)
    return c


def _update(theta, grads, buf, keep, step, lam, conv, t):
    """One step of every array of theta (rows are filters; ``keep`` the frozen
    rows); returns the new theta and momentum buffer (module docstring)."""
    dt = theta[0].dtype.type
    frozen = keep if not conv.decay_frozen else np.zeros_like(keep)
    grads = [np.where(_rows(keep, g), 0, g) for g in grads] if conv.decay_frozen else grads
    if conv.momentum == 0.0:
        decay = dt(1.0 - step * lam)
        new = [decay * p - dt(step) * g for p, g in zip(theta, grads, strict=True)]
    else:
        mu = dt(conv.momentum)
        d = [g + dt(lam) * p for p, g in zip(theta, grads, strict=True)]
        buf = d if t == 0 else [mu * b + e for b, e in zip(buf, d, strict=True)]
        move = [e + mu * b for e, b in zip(d, buf, strict=True)] if conv.nesterov else buf
        new = [p - dt(step) * v for p, v in zip(theta, move, strict=True)]
    return [np.where(_rows(frozen, p), p, q) for p, q in zip(theta, new, strict=True)], buf


def _rows(mask, a):
    """``mask`` (2m,) broadcast over the rows of ``a``."""
    return mask.reshape((-1,) + (1,) * (a.ndim - 1))


def _start(space, conv, b0, two_m):
    """theta at step 0 in ``space``, with the bias b0 (0 when None) appended
    under ``conv.bias``."""
    theta = space.start()
    if conv.bias:
        dt = theta[0].dtype
        theta.append(np.zeros(two_m, dt) if b0 is None else np.array(b0, dt))
    return theta


def replay(space, b0, y, n, P, conv, eta, lam, trainable, T, record):
    """Run GD under ``conv`` in ``space`` for T steps.

    Parameters
    ----------
    space : WeightSpace or GramSpace
        Built on the stage's W0 (2m, d) and patches (nP, d) in the run's dtype.
    b0 : ndarray of shape (2m,) or None
        The bias's initial value (with ``conv.bias``).
    y : ndarray of shape (n,)
    conv : Convention
    eta, lam : float
    trainable : ndarray of shape (2m,), bool
    T : int
    record : sorted sequence of int
        Steps at which the weights (and the bias) are recorded.

    Returns
    -------
    W : ndarray of shape (len(record), 2m, d), float64
    b : ndarray of shape (len(record), 2m) or None
    loss, penalty, logits : ndarray of shape (T + 1,)
        The data loss, (lambda/2) |W_t|^2 and mean_i (F_+1 + F_-1) per step.
    zeros : int
    """
    theta = _start(space, conv, b0, len(trainable))
    dt = theta[0].dtype
    keep, factors, wanted = ~np.asarray(trainable, bool), step_factors(conv, T), set(record)
    y = np.asarray(y, dt)
    Ws, bs, buf, zeros = [], [], None, 0
    loss, penalty, logits = np.empty(T + 1), np.zeros(T + 1), np.empty(T + 1)
    for t in range(T + 1):
        w = theta[: len(theta) - conv.bias]
        if t in wanted:
            Ws.append([a.copy() for a in w])
            if conv.bias:
                bs.append(theta[-1].astype(np.float64))
        pre = space.pre(w) + (theta[-1][:, None] if conv.bias else 0)
        loss[t], coef, z, logits[t] = outputs(pre, y, n, P, conv)
        zeros += z
        if lam:
            penalty[t] = 0.5 * lam * space.inner(w, w)
        if t == T:
            break
        grads = space.grad(coef) + ([coef.sum(axis=1)] if conv.bias else [])
        theta, buf = _update(theta, grads, buf, keep, factors[t] * eta, lam, conv, t)
    b = np.stack(bs) if conv.bias else None
    return np.asarray(space.weights(Ws), np.float64), b, loss, penalty, logits, zeros


class StageReplay:
    """One stage of a file, ready to be replayed under any convention: its
    inputs in float64 and, per arithmetic, the space of the replays (Gram
    space for float64 when it is cheaper, :func:`choose_space`)."""

    def __init__(self, view):
        W0, X = view.f64("W0"), view.f64("X")
        n, P, d = X.shape
        m = W0.shape[1]
        self.view, self.n, self.P, self.m, self.d = view, n, P, m, d
        self.W0f, self.Xf = W0.reshape(2 * m, d), np.ascontiguousarray(X.reshape(n * P, d))
        self.y = view.f64("y")
        self.eta, self.lam = float(view.eta), float(view.weight_decay)
        self.trainable = np.asarray(view.trainable, bool).reshape(2 * m)
        self.b0 = None if view.b0 is None else view.f64("b0").reshape(2 * m)
        self._spaces = {}

    def space(self, dtype="float64"):
        if dtype not in self._spaces:
            dt = np.dtype(dtype)
            W0f, Xf = self.W0f.astype(dt), self.Xf.astype(dt)
            self._spaces[dtype] = choose_space(W0f, Xf, dt)
        return self._spaces[dtype]

    def theta0(self, conv):
        """The starting point of a replay under ``conv``: the space's theta
        and, with the bias, b0 (0 when the file has none)."""
        return _start(self.space(conv.dtype), conv, self.b0, 2 * self.m)

    def run(self, conv, T, record):
        """:func:`replay` of ``conv`` for T steps, weights at ``record``:
        (W (K, 2m, d), b (K, 2m) or None, loss, penalty, logits, zeros); the
        loss includes the penalty with ``loss_with_decay``."""
        args = (self.y, self.n, self.P, conv, self.eta, self.lam, self.trainable, int(T))
        with np.errstate(over="ignore", invalid="ignore"):  # a variant may diverge
            W, b, loss, penalty, logits, zeros = replay(
                self.space(conv.dtype), self.b0, *args, sorted(record)
            )
        if conv.loss_with_decay:
            loss = loss + penalty
        return W, b, loss, penalty, logits, zeros

    def pre(self, theta, conv):
        """Pre-activations (2m, nP) of theta, the bias added (linear in theta)."""
        w = theta[: len(theta) - conv.bias]
        pre = self.space(conv.dtype).pre(w)
        return pre + theta[-1][:, None] if conv.bias else pre

    def step(self, theta, buf, conv, t, factor):
        """One GD step at ``factor`` x eta from theta (momentum buffer ``buf``):
        (data loss at theta, the new theta, the new buffer, zeros, logits)."""
        loss, coef, zeros, logits = outputs(self.pre(theta, conv), self.y, self.n, self.P, conv)
        grads = self.space(conv.dtype).grad(coef) + ([coef.sum(axis=1)] if conv.bias else [])
        keep = ~self.trainable
        new, buf = _update(theta, grads, buf, keep, factor * self.eta, self.lam, conv, t)
        return loss, new, buf, zeros, logits

    def penalty(self, theta, conv):
        w = theta[: len(theta) - conv.bias]
        return 0.5 * self.lam * self.space(conv.dtype).inner(w, w) if self.lam else 0.0
