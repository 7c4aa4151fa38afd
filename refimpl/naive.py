"""Plain-numpy twins of the compiled kernels: slow, obviously correct, written
term by term from MODEL.md. The tests compare every kernel with its twin, and
``validation/bench_step.py`` times the twin's GD step beside the kernel's.

Shapes: W (2, m, d) with axis 0 index 0 for j = +1; X (n, P, d); y (n,).
"""
import numpy as np

J = np.array([1.0, -1.0])  # the class j of axis 0 of W


def relu(a):
    """sigma(a) = max(a, 0)."""
    return np.maximum(a, 0.0)


def relu_prime(a):
    """sigma'(a) = 1(a > 0); sigma'(0) := 0 (MODEL.md section 3)."""
    return (a > 0.0).astype(float)


def logistic_loss(z):
    """l(z) = log(1 + exp(-z)) = max(-z, 0) + log1p(exp(-|z|)), stable for any
    finite z (MODEL.md section 3)."""
    z = np.asarray(z, dtype=float)
    return np.maximum(-z, 0.0) + np.log1p(np.exp(-np.abs(z)))


def logistic_dloss(z):
    """l'(z) = -1/(1 + exp(z)) via e = exp(-|z|): -e/(1+e) (z >= 0), -1/(1+e) (z < 0)."""
    z = np.asarray(z, dtype=float)
    e = np.exp(-np.abs(z))
    return np.where(z >= 0.0, -e / (1.0 + e), -1.0 / (1.0 + e))


def preactivations(W, X):
    """<w_{j,r}, x_i^(p)>, ndarray of shape (2, m, n, P)."""
    return np.einsum("jrd,ipd->jrip", W, X)


def forward(W, X):
    """f(W, x_i) = F_{+1} - F_{-1}, F_j = (1/m) sum_r sum_p sigma(<w_{j,r}, x_i^(p)>)."""
    m = W.shape[1]
    F = relu(preactivations(W, X)).sum(axis=(1, 3)) / m  # (2, n)
    return F[0] - F[1]


def loss(W, X, y):
    """Data loss (1/n) sum_i l(y_i f(W, x_i)), without the weight-decay term."""
    return float(np.mean(logistic_loss(y * forward(W, X))))


def gradient(W, X, y, weight_decay=0.0):
    """Gradient of L_S: (1/(nm)) sum_i l'_i sum_p sigma'(<w_{j,r}, x_i^(p)>) j y_i x_i^(p)
    + lambda w_{j,r} (MODEL.md section 3)."""
    n, m = X.shape[0], W.shape[1]
    dloss = logistic_dloss(y * forward(W, X))                   # (n,)
    active = relu_prime(preactivations(W, X))                  # (2, m, n, P)
    coef = active * (dloss * y)[None, None, :, None] * J[:, None, None, None]
    return np.einsum("jrip,ipd->jrd", coef, X) / (n * m) + weight_decay * W


def gd_step(W, X, y, y_clean, signals, xi, trainable, eta, weight_decay,
            gamma, rho_bar, rho_under):
    """One GD step and the coefficient recursions, literally as MODEL.md
    sections 3 and 4 write them (signal patches first, the noise patch last).

    Parameters
    ----------
    W : ndarray of shape (2, m, d)
    X : ndarray of shape (n, P, d)
    y, y_clean : ndarray of shape (n,)
    signals : ndarray of shape (S, d)
    xi : ndarray of shape (n, d)
    trainable : ndarray of shape (2, m), bool
    eta, weight_decay : float
    gamma : ndarray of shape (2, m, S)
    rho_bar, rho_under : ndarray of shape (2, m, n)

    Returns
    -------
    loss : float
        Data loss at the weights before the step.
    W, gamma, rho_bar, rho_under : ndarrays
        The state after the step (new arrays).
    """
    n, m = X.shape[0], W.shape[1]
    S = signals.shape[0]
    decay = 1.0 - eta * weight_decay
    f = forward(W, X)
    dloss = logistic_dloss(y * f)
    pre = preactivations(W, X)                                  # (2, m, n, P)
    W_new = decay * W - eta * gradient(W, X, y, 0.0)
    # gamma_{j,r,s} -= (eta/(nm)) sum_i l'_i sigma'(<w, yhat_i sig_s>) yhat_i y_i |sig_s|^2
    sig_sq = np.sum(signals**2, axis=1)
    g_inc = -(eta / (n * m)) * np.einsum(
        "i,jris,i,i->jrs", dloss, relu_prime(pre[:, :, :, :S]), y_clean, y) * sig_sq
    gamma_new = decay * gamma + g_inc
    # rho_{j,r,i} -= (eta/(nm)) l'_i sigma'(<w, xi_i>) |xi_i|^2 (bar: y_i = j; under: y_i = -j, + sign)
    xi_sq = np.sum(xi**2, axis=1)
    r_inc = -(eta / (n * m)) * dloss * relu_prime(pre[:, :, :, S]) * xi_sq   # (2, m, n)
    same = y[None, None, :] == J[:, None, None]
    rho_bar_new = decay * rho_bar + np.where(same, r_inc, 0.0)
    rho_under_new = decay * rho_under - np.where(same, 0.0, r_inc)
    keep = ~trainable[:, :, None]
    return (loss_from_f(f, y),
            np.where(keep, W, W_new),
            np.where(keep, gamma, gamma_new),
            np.where(keep, rho_bar, rho_bar_new),
            np.where(keep, rho_under, rho_under_new))


def loss_from_f(f, y):
    return float(np.mean(logistic_loss(y * f)))

