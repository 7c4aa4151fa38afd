"""The two-layer ReLU CNN: forward pass, logistic loss and its hand-written
gradient (docs/model.md §3). Public functions check and prepare arrays and
call the compiled kernels of :mod:`refimpl.kernels`.
"""

from typing import NamedTuple

import numpy as np

from . import kernels as _k

__all__ = [
    "forward",
    "ForwardParts",
    "loss",
    "gradient",
    "logistic_loss",
    "logistic_dloss",
    "check_weights",
    "check_inputs",
]


def check_weights(W, name="W"):
    """W as a C-contiguous float64 array of shape (2, m, d); refuses others.

    Parameters
    ----------
    W : array_like of shape (2, m, d), float64
        The weights w_{j,r} of both classes j = +1, -1.
    name : str, optional
        The argument's name in the messages.

    Returns
    -------
    ndarray of shape (2, m, d)
        W as a C-contiguous float64 array.

    Raises
    ------
    TypeError
        When W is not float64.
    ValueError
        When W is not of shape (2, m, d) with m >= 1.
    """
    W = np.asarray(W)
    if W.dtype != np.float64:
        raise TypeError(f"{name} must be float64, got {W.dtype}")
    if W.ndim != 3 or W.shape[0] != 2 or W.shape[1] < 1:
        raise ValueError(f"{name} must have shape (2, m, d), got {W.shape}")
    return np.ascontiguousarray(W)


def check_inputs(X, d, y=None):
    """X as a C-contiguous float64 array of shape (n, P, d); y as (n,) of +-1.

    Parameters
    ----------
    X : array_like of shape (n, P, d), float64
        The inputs x_i, P patches of dimension d each.
    d : int
        The dimension the weights expect.
    y : array_like of shape (n,), optional
        The labels, each +1 or -1.

    Returns
    -------
    ndarray of shape (n, P, d), or tuple of it and ndarray of shape (n,)
        X as a C-contiguous float64 array; with ``y``, the pair (X, y), y as
        float64.

    Raises
    ------
    TypeError
        When X is not float64.
    ValueError
        When X or y has the wrong shape, or a label is not +1 or -1.
    """
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


class ForwardParts(NamedTuple):
    """What :func:`forward` computes on the way to f (``parts=True``).

    Attributes
    ----------
    f : ndarray of shape (n,)
        f(W, x_i), the very array ``forward(W, X)`` returns.
    F_plus, F_minus : ndarray of shape (n,)
        F_{+1}(W_{+1}, x_i) and F_{-1}(W_{-1}, x_i), each with its 1/m
        (docs/model.md §3.1), summed in the kernel's order; F_plus - F_minus
        equals f up to rounding (the kernel divides the difference of the
        two sums by m).
    pre : ndarray of shape (2, m, n, P)
        The pre-activations <w_{j,r}, x_i^(p)> at ``pre[j, r, i, p]`` (axis 0
        index 0 is j = +1), as the kernel computed them.
    active : ndarray of shape (2, m, n, P), bool
        The activation pattern sigma'(pre) = 1(pre > 0) (sigma'(0) = 0).
    """

    f: np.ndarray
    F_plus: np.ndarray
    F_minus: np.ndarray
    pre: np.ndarray
    active: np.ndarray


def forward(W, X, parts=False):
    """Network outputs f(W, x_i) = F_{+1}(W_{+1}, x_i) - F_{-1}(W_{-1}, x_i).

    Parameters
    ----------
    W : ndarray of shape (2, m, d)
        The weights w_{j,r}, filters of class j = +1 (``W[0]``) and -1
        (``W[1]``).
    X : ndarray of shape (n, P, d)
        The inputs x_i, P patches each.
    parts : bool
        Also return F_{+1}, F_{-1}, the pre-activations and the activation
        pattern (what one compares first when outputs differ).

    Returns
    -------
    ndarray of shape (n,), or ForwardParts when ``parts``
        With ``parts``, its ``f`` is the array returned without it.
    """
    W = check_weights(W)
    X = check_inputs(X, W.shape[2])
    n, P, d = X.shape
    A, f, _, _ = _workspace(W, X)
    _k._forward(W.reshape(-1, d), X.reshape(-1, d), n, P, W.shape[1], A, f)
    if parts:
        return _parts(A, f, n, P, W.shape[1])
    return f


def _parts(A, f, n, P, m):
    """F_{+1}, F_{-1} from the kernel's pre-activations A (nP, 2m), summed in
    the order of ``kernels._outputs`` (over p, then r, per input)."""
    pre = A.reshape(n, P, 2, m)
    relu = np.maximum(pre, 0.0)
    sums = np.zeros((2, n))
    for p in range(P):
        for r in range(m):
            sums += relu[:, p, :, r].T
    return ForwardParts(
        f=f,
        F_plus=sums[0] / m,
        F_minus=sums[1] / m,
        pre=np.ascontiguousarray(pre.transpose(2, 3, 0, 1)),
        active=np.ascontiguousarray(pre.transpose(2, 3, 0, 1) > 0.0),
    )


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
    """Data loss (1/n) sum_i l(y_i f(W, x_i)), without the weight-decay term.

    Parameters
    ----------
    W : ndarray of shape (2, m, d)
        The weights.
    X : ndarray of shape (n, P, d)
        The inputs.
    y : ndarray of shape (n,)
        The labels, +1 or -1.

    Returns
    -------
    float
        The mean logistic loss over the n samples.
    """
    return loss_and_gradient(W, X, y)[0]


def gradient(W, X, y, weight_decay=0.0):
    """Gradient of L_S(W) = (1/n) sum_i l(y_i f) + (lambda/2)|W|^2, shape (2, m, d).

    Parameters
    ----------
    W : ndarray of shape (2, m, d)
        The weights.
    X : ndarray of shape (n, P, d)
        The inputs.
    y : ndarray of shape (n,)
        The labels, +1 or -1.
    weight_decay : float, optional
        lambda.

    Returns
    -------
    ndarray of shape (2, m, d)
        The gradient of L_S with respect to W.
    """
    return loss_and_gradient(W, X, y, weight_decay)[1]


def _logistic(z):
    z = np.ascontiguousarray(z, dtype=np.float64)
    flat = z.reshape(-1)
    out, dout = np.empty_like(flat), np.empty_like(flat)
    _k._logistic_arrays(flat, out, dout)
    return out.reshape(z.shape), dout.reshape(z.shape)


def logistic_loss(z):
    """l(z) = log(1 + exp(-z)), elementwise, stable for any finite z.

    Parameters
    ----------
    z : array_like
        The margins y f.

    Returns
    -------
    ndarray
        l(z), of the shape of ``z``.
    """
    return _logistic(z)[0]


def logistic_dloss(z):
    """l'(z) = -1/(1 + exp(z)), elementwise, stable for any finite z.

    Parameters
    ----------
    z : array_like
        The margins y f.

    Returns
    -------
    ndarray
        l'(z), of the shape of ``z``.
    """
    return _logistic(z)[1]
