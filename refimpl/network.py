"""The two-layer ReLU CNN: forward pass, logistic loss and its hand-written
gradient (docs/model.md §3). Public functions check and prepare arrays and
call the compiled kernels of :mod:`refimpl.kernels`.
"""

import numpy as np

from . import kernels as _k

__all__ = [
    "forward",
    "loss",
    "gradient",
    "logistic_loss",
    "logistic_dloss",
    "check_weights",
    "check_inputs",
]


def check_weights(W, name="W"):
    """W as a C-contiguous float64 array of shape (2, m, d); refuses others."""
    W = np.asarray(W)
    if W.dtype != np.float64:
        raise TypeError(f"{name} must be float64, got {W.dtype}")
    if W.ndim != 3 or W.shape[0] != 2 or W.shape[1] < 1:
        raise ValueError(f"{name} must have shape (2, m, d), got {W.shape}")
    return np.ascontiguousarray(W)


def check_inputs(X, d, y=None):
    """X as a C-contiguous float64 array of shape (n, P, d); y as (n,) of +-1."""
    X = np.asarray(X)
    if X.dtype != np.float64:
        raise TypeError(f"X must be float64, got {X.dtype}")
    if X.ndim != 3 or X.shape[2] != d or X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X must have shape (n, P, d={d}), got {X.shape}")
    X = np.ascontiguousarray(X)
    if y is None:
        return X
    y = np.ascontiguousarray(y, dtype=np.float64)
    if y.shape != (X.shape[0],) or not np.all(np.abs(y) == 1.0):
        raise ValueError(f"y must have shape ({X.shape[0]},) with entries +1 or -1")
    return X, y


def _workspace(W, X):
    n, P, d = X.shape
    two_m = 2 * W.shape[1]
    return np.empty((n * P, two_m)), np.empty(n), np.empty((n * P, two_m)), np.empty((two_m, d))


def forward(W, X):
    """Network outputs f(W, x_i) = F_{+1}(W_{+1}, x_i) - F_{-1}(W_{-1}, x_i).

    Parameters
    ----------
    W : ndarray of shape (2, m, d)
    X : ndarray of shape (n, P, d)

    Returns
    -------
    ndarray of shape (n,)
    """
    W = check_weights(W)
    X = check_inputs(X, W.shape[2])
    n, P, d = X.shape
    A, f, _, _ = _workspace(W, X)
    _k._forward(W.reshape(-1, d), X.reshape(-1, d), n, P, W.shape[1], A, f)
    return f


def loss_and_gradient(W, X, y, weight_decay=0.0):
    """Data loss (1/n) sum_i l(y_i f(W, x_i)) (weight decay not included) and
    the gradient of L_S(W) including (lambda/2)|W|^2 (docs/model.md §3).

    Returns
    -------
    loss : float
    grad : ndarray of shape (2, m, d)
    """
    W = check_weights(W)
    X, y = check_inputs(X, W.shape[2], y)
    n, P, d = X.shape
    A, f, C, G = _workspace(W, X)
    value = _k._loss_gradient(
        W.reshape(-1, d), X.reshape(-1, d), y, n, P, W.shape[1], float(weight_decay), A, f, C, G
    )
    return value, G.reshape(W.shape)


def loss(W, X, y):
    """Data loss (1/n) sum_i l(y_i f(W, x_i)), without the weight-decay term."""
    return loss_and_gradient(W, X, y)[0]


def gradient(W, X, y, weight_decay=0.0):
    """Gradient of L_S(W) = (1/n) sum_i l(y_i f) + (lambda/2)|W|^2, shape (2, m, d)."""
    return loss_and_gradient(W, X, y, weight_decay)[1]


def _logistic(z):
    z = np.ascontiguousarray(z, dtype=np.float64)
    flat = z.reshape(-1)
    out, dout = np.empty_like(flat), np.empty_like(flat)
    _k._logistic_arrays(flat, out, dout)
    return out.reshape(z.shape), dout.reshape(z.shape)


def logistic_loss(z):
    """l(z) = log(1 + exp(-z)), elementwise, stable for any finite z."""
    return _logistic(z)[0]


def logistic_dloss(z):
    """l'(z) = -1/(1 + exp(z)), elementwise, stable for any finite z."""
    return _logistic(z)[1]
