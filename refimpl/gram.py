"""Gradient descent in the span of the data: the Gram-space engine
(docs/model.md §9).

Every data gradient of a filter is a combination of training patches, so the
weights of a stage stay of the form

    W_t = S_t W_0 + B_t X_f,     B: (2m, nP),   S_t = diag(s_t)

and the pre-activations need no d-dimensional work once ``Q = X_f X_f^T``
(nP, nP) and ``K_0 = X_f W_0^T`` (nP, 2m) are formed:

    A_t = K_0 S_t + Q B_t^T.

A step costs O(m (nP)^2) instead of the O(m nP d) of the weight-space step of
:func:`refimpl.kernels._gd_chunk`, which stays the reference. The weights are
formed only at snapshots, and gamma, rho_bar, rho_under are read off B with
the patch roles (§9.3). :func:`refimpl.train.train_stage` runs it with
``engine="gram"``, or picks by cost with ``engine="auto"``
(:func:`choose_engine`); both engines give the same Stage to rounding.
"""

from __future__ import annotations

import numpy as np

from . import kernels as _k

__all__ = [
    "GRAM_BUDGET",
    "ENGINES",
    "gram_bytes",
    "engine_costs",
    "choose_engine",
    "read_coefficients",
    "GramEngine",
]

ENGINES = ("auto", "weight", "gram")

GRAM_BUDGET = 1 << 30
"""Bytes the Gram matrix Q (8 (nP)^2 of them) may take when ``engine="auto"``
chooses the Gram engine: 1 GiB, nP <= 11585."""

# Cost model of a stage, in multiply-adds of a large BLAS product, fitted to
# per-step times measured on the development machine (2 cores, OpenBLAS;
# validation/bench_step.py). A multiply-add of Q B^T runs at about the rate of
# the weight-space products, a little slower when nP is small; one element of
# a compiled elementwise loop costs about 30 of them. The model errs towards
# weight space: near the break-even it may keep the weight engine where Gram
# space would have been up to ~1.5x faster, but not the reverse.
_GRAM_PRODUCT = 1.25
_LOOP = 30.0


def gram_bytes(n, P):
    """Memory of the Gram matrix Q = X_f X_f^T: 8 (nP)^2 bytes."""
    return 8 * (n * P) ** 2


def engine_costs(n, P, m, d, steps, n_snapshots=2):
    """Estimated cost of a stage with each engine, in units of one multiply-add
    of a large BLAS product (docs/model.md §9.2).

    weight: per step the two products A = X_f W^T and G = C^T X_f
    (2 * 2m nP d) and the loops over A, C and W.
    gram: once Q = X_f X_f^T (syrk, (nP)^2 d / 2) and K_0 (2m nP d); per step
    A = Q B^T (2m (nP)^2) and the loops over A, C and B; per snapshot one
    W = S W_0 + B X_f (2m nP d).

    Parameters
    ----------
    n, P, m, d : int
    steps : int
        Step cap T.
    n_snapshots : int
        Snapshots taken (step 0 and the last included).

    Returns
    -------
    dict
        ``{"weight": float, "gram": float}``.
    """
    nP, two_m = n * P, 2 * m
    weight_step = 2 * two_m * nP * d + _LOOP * (2 * two_m * nP + two_m * d)
    gram_step = _GRAM_PRODUCT * two_m * nP**2 + _LOOP * 3 * two_m * nP
    setup = 0.5 * nP**2 * d + two_m * nP * d
    return {
        "weight": steps * weight_step,
        "gram": setup + steps * gram_step + n_snapshots * two_m * nP * d,
    }


def choose_engine(n, P, m, d, steps, n_snapshots=2, budget=GRAM_BUDGET):
    """The engine ``engine="auto"`` uses: "gram" when Q fits in ``budget``
    bytes and :func:`engine_costs` predicts it cheaper, else "weight".

    Returns
    -------
    {"weight", "gram"}
    """
    if steps <= 0 or gram_bytes(n, P) > budget:
        return "weight"
    cost = engine_costs(n, P, m, d, steps, n_snapshots)
    return "gram" if cost["gram"] < cost["weight"] else "weight"


def read_coefficients(B, y, y_clean, signals, xi, signal_patch, noise_patch):
    """gamma, rho_bar and rho_under read off B (docs/model.md §9.3):

        gamma_{j,r,s} = j |sig_s|^2 sum_i yhat_i B[(j,r), (i, p_s(i))]
        rho_{j,r,i}   = |xi_i|^2 B[(j,r), (i, q(i))]  -> rho_bar if y_i = j, else rho_under

    They equal the recursions of docs/model.md §4 term by term, whatever the
    patch order, and reconstruct W_t - S_t W_0 = B_t X_f exactly whenever the
    patches hold yhat_i sig_s and xi_i (see :mod:`refimpl.decomposition` for
    what they mean when the noise is not orthogonal to the signals).

    Parameters
    ----------
    B : ndarray of shape (2, m, n, P)
        ``B[j, r, i, p]``: the coefficient of patch x_i^(p) in w_{j,r}.
    y, y_clean : ndarray of shape (n,)
    signals : ndarray of shape (S, d)
    xi : ndarray of shape (n, d)
    signal_patch : ndarray of shape (n, S), int
        p_s(i) (:func:`refimpl.data.role_positions`).
    noise_patch : ndarray of shape (n,), int
        q(i).

    Returns
    -------
    gamma : ndarray of shape (2, m, S)
    rho_bar, rho_under : ndarray of shape (2, m, n)
    """
    n = B.shape[2]
    rows = np.arange(n)
    j = np.array([1.0, -1.0])
    sig_sq = np.sum(signals**2, axis=1)
    xi_sq = np.sum(xi**2, axis=1)
    on_signal = B[:, :, rows[:, None], signal_patch]  # (2, m, n, S)
    gamma = j[:, None, None] * sig_sq * np.einsum("i,jris->jrs", y_clean, on_signal)
    rho = xi_sq * B[:, :, rows, noise_patch]  # (2, m, n)
    same = y[None, None, :] == j[:, None, None]
    return gamma, np.where(same, rho, 0.0), np.where(same, 0.0, rho)


class GramEngine:
    """The state of a stage trained in Gram space, and its step loop
    (:func:`refimpl.train.train_stage` with ``engine="gram"`` drives it).

    Parameters
    ----------
    W0 : ndarray of shape (2, m, d)
        Initial weights (C-contiguous float64; not modified).
    X : ndarray of shape (n, P, d)
        Training inputs (C-contiguous float64).
    y : ndarray of shape (n,)
    trainable : ndarray of shape (2m,), bool
    eta, weight_decay : float
    epsilon : float
        Stop at the first loss <= epsilon (a negative value never stops).

    Attributes
    ----------
    Bt : ndarray of shape (nP, 2m)
        B^T (the layout of A and C in the kernels).
    s : ndarray of shape (2m,)
        s_t per filter.
    Q : ndarray of shape (nP, nP)
    K0 : ndarray of shape (nP, 2m)
    """

    def __init__(self, W0, X, y, trainable, eta, weight_decay, epsilon):
        self.n, self.P, d = X.shape
        self.m = W0.shape[1]
        nP, two_m = self.n * self.P, 2 * self.m
        self.W0f = W0.reshape(two_m, d)
        self.Xf = X.reshape(nP, d)
        self.y = y
        self.trainable = trainable
        self.eta, self.weight_decay, self.epsilon = float(eta), float(weight_decay), float(epsilon)
        self.Q = np.ascontiguousarray(self.Xf @ self.Xf.T)  # docs/model.md §9.2
        self.K0 = np.ascontiguousarray(self.Xf @ self.W0f.T)
        self.Bt = np.zeros((nP, two_m))
        self.s = np.ones(two_m)
        self.A, self.f, self.C = np.empty((nP, two_m)), np.empty(self.n), np.empty((nP, two_m))

    def run(self, count, t0, loss):
        """Up to ``count`` steps from step t0, losses into ``loss[t0:]``;
        returns the number of steps taken."""
        return _k._gram_chunk(
            self.Bt,
            self.s,
            self.K0,
            self.Q,
            self.y,
            self.trainable,
            self.eta,
            self.weight_decay,
            self.epsilon,
            count,
            t0,
            loss,
            self.A,
            self.f,
            self.C,
        )

    def current_loss(self):
        """Data loss of the current weights."""
        return _k._gram_loss(
            self.Bt, self.s, self.K0, self.Q, self.y, self.n, self.P, self.m, self.A, self.f, self.C
        )

    @property
    def B(self):
        """B of shape (2, m, n, P): ``B[j, r, i, p]`` is the coefficient of
        patch x_i^(p) in w_{j,r} (a copy or a view; do not write to it)."""
        return self.Bt.T.reshape(2, self.m, self.n, self.P)

    def weights(self):
        """W_t = S_t W_0 + B_t X_f (docs/model.md §9.1), a new (2, m, d) array."""
        W = self.s[:, None] * self.W0f + self.Bt.T @ self.Xf
        return W.reshape(2, self.m, -1)

    def finite(self):
        """False once B holds a non-finite number (GD diverged)."""
        return bool(np.all(np.isfinite(self.Bt)))
