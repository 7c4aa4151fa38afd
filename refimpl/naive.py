"""Plain-numpy twins of the compiled kernels: slow, obviously correct, written
term by term from docs/model.md. The tests compare every kernel with its twin,
and ``validation/bench_step.py`` times the twin's GD step beside the kernel's.
This module is a test oracle: no model module imports it.

Shapes: W (2, m, d) with axis 0 index 0 for j = +1; X (n, P, d); y (n,).
"""

import numpy as np

J = np.array([1.0, -1.0])  # the class j of axis 0 of W


def relu(a):
    """sigma(a) = max(a, 0)."""
    return np.maximum(a, 0.0)


def relu_prime(a):
    """sigma'(a) = 1(a > 0); sigma'(0) := 0 (docs/model.md §3)."""
    return (a > 0.0).astype(float)


def logistic_loss(z):
    """l(z) = log(1 + exp(-z)) = max(-z, 0) + log1p(exp(-|z|)), stable for any
    finite z (docs/model.md §3)."""
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
    + lambda w_{j,r} (docs/model.md §3)."""
    n, m = X.shape[0], W.shape[1]
    dloss = logistic_dloss(y * forward(W, X))  # (n,)
    active = relu_prime(preactivations(W, X))  # (2, m, n, P)
    coef = active * (dloss * y)[None, None, :, None] * J[:, None, None, None]
    return np.einsum("jrip,ipd->jrd", coef, X) / (n * m) + weight_decay * W


def role_masks(patch_role, S):
    """One-hot masks of the patch roles (docs/model.md §9.3): ``is_signal``
    (n, P, S) with ``is_signal[i, p, s] = 1(role[i, p] = s)`` and ``is_noise``
    (n, P) with ``is_noise[i, p] = 1(role[i, p] = -1)``."""
    patch_role = np.asarray(patch_role)
    is_signal = (patch_role[:, :, None] == np.arange(S)[None, None, :]).astype(float)
    return is_signal, (patch_role == -1).astype(float)


def gd_step(
    W,
    X,
    y,
    y_clean,
    signals,
    xi,
    patch_role,
    trainable,
    eta,
    weight_decay,
    gamma,
    rho_bar,
    rho_under,
):
    """One GD step and the coefficient recursions, literally as docs/model.md
    §3.4 and §4 write them, with the patch of each role picked by the role
    array (any patch order).

    Parameters
    ----------
    W : ndarray of shape (2, m, d)
    X : ndarray of shape (n, P, d)
    y, y_clean : ndarray of shape (n,)
    signals : ndarray of shape (S, d)
    xi : ndarray of shape (n, d)
    patch_role : ndarray of shape (n, P), int
        s for the patch ``y_clean[i] * signals[s]``, -1 for the noise patch.
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
    is_signal, is_noise = role_masks(patch_role, S)
    decay = 1.0 - eta * weight_decay
    f = forward(W, X)
    dloss = logistic_dloss(y * f)
    active = relu_prime(preactivations(W, X))  # (2, m, n, P)
    W_new = decay * W - eta * gradient(W, X, y, 0.0)
    # sigma'(<w, yhat_i sig_s>) and sigma'(<w, xi_i>): the patches holding them
    active_signal = np.einsum("jrip,ips->jris", active, is_signal)
    active_noise = np.einsum("jrip,ip->jri", active, is_noise)
    # gamma_{j,r,s} -= (eta/(nm)) sum_i l'_i sigma'(<w, yhat_i sig_s>) yhat_i y_i |sig_s|^2
    sig_sq = np.sum(signals**2, axis=1)
    g_inc = (
        -(eta / (n * m)) * np.einsum("i,jris,i,i->jrs", dloss, active_signal, y_clean, y) * sig_sq
    )
    gamma_new = decay * gamma + g_inc
    # rho_{j,r,i} -= (eta/(nm)) l'_i sigma'(<w, xi_i>) |xi_i|^2
    # (bar: y_i = j; under: y_i = -j, + sign)
    xi_sq = np.sum(xi**2, axis=1)
    r_inc = -(eta / (n * m)) * dloss * active_noise * xi_sq  # (2, m, n)
    same = y[None, None, :] == J[:, None, None]
    rho_bar_new = decay * rho_bar + np.where(same, r_inc, 0.0)
    rho_under_new = decay * rho_under - np.where(same, 0.0, r_inc)
    keep = ~trainable[:, :, None]
    return (
        loss_from_f(f, y),
        np.where(keep, W, W_new),
        np.where(keep, gamma, gamma_new),
        np.where(keep, rho_bar, rho_bar_new),
        np.where(keep, rho_under, rho_under_new),
    )


# ----------------------------------------------------------------------
# the Gram-space engine (docs/model.md §9). Here B has shape (2, m, n, P):
# B[j, r, i, p] is the coefficient of patch x_i^(p) in w_{j,r}.


def gram_gd_step(B, s, W0, X, y, trainable, eta, weight_decay):
    """One GD step in coefficient space, literally as docs/model.md §9 writes it:

        <w_{j,r}, x_i^(p)> = s_{j,r} <w^[0]_{j,r}, x_i^(p)>
                             + sum_{i',p'} B[j,r,i',p'] <x_i'^(p'), x_i^(p)>
        B <- (1 - eta*lambda) B - eta C^T,
            C^T[j,r,i,p] = l'_i sigma'(<w_{j,r}, x_i^(p)>) j y_i / (n m)
        s <- (1 - eta*lambda) s

    for trainable filters; frozen ones keep B and s.

    Parameters
    ----------
    B : ndarray of shape (2, m, n, P)
    s : ndarray of shape (2, m)
    W0 : ndarray of shape (2, m, d)
    X : ndarray of shape (n, P, d)
    y : ndarray of shape (n,)
    trainable : ndarray of shape (2, m), bool
    eta, weight_decay : float

    Returns
    -------
    loss : float
        Data loss of W = s W0 + B X before the step.
    B, s : ndarrays
        The state after the step (new arrays).
    """
    n, m = X.shape[0], W0.shape[1]
    Q = np.einsum("ipd,kqd->ipkq", X, X)  # <x_i^(p), x_k^(q)>
    pre = s[:, :, None, None] * preactivations(W0, X) + np.einsum("jrip,ipkq->jrkq", B, Q)
    F = relu(pre).sum(axis=(1, 3)) / m  # (2, n)
    f = F[0] - F[1]
    dloss = logistic_dloss(y * f)
    coef = (
        relu_prime(pre) * (dloss * y)[None, None, :, None] * J[:, None, None, None] / (n * m)
    )  # C^T, (2, m, n, P)
    decay = 1.0 - eta * weight_decay
    keep = ~trainable
    return (
        loss_from_f(f, y),
        np.where(keep[:, :, None, None], B, decay * B - eta * coef),
        np.where(keep, s, decay * s),
    )


def gram_weights(B, s, W0, X):
    """W = s W0 + B X_f (docs/model.md §9.1), shape (2, m, d)."""
    return s[:, :, None] * W0 + np.einsum("jrip,ipd->jrd", B, X)


def gram_coefficients(B, y, y_clean, signals, xi, patch_role):
    """gamma, rho_bar, rho_under read off B (docs/model.md §9.3), loop by loop:

        gamma_{j,r,s} = j |sig_s|^2 sum_i yhat_i B[j, r, i, p_s(i)]
        rho_{j,r,i}   = |xi_i|^2 B[j, r, i, q(i)]   (rho_bar if y_i = j, else rho_under)

    Returns
    -------
    gamma : ndarray of shape (2, m, S)
    rho_bar, rho_under : ndarray of shape (2, m, n)
    """
    _, m, n, P = B.shape
    S = signals.shape[0]
    gamma = np.zeros((2, m, S))
    rho_bar, rho_under = np.zeros((2, m, n)), np.zeros((2, m, n))
    for jx, j in enumerate(J):
        for r in range(m):
            for i in range(n):
                for p in range(P):
                    role = patch_role[i, p]
                    if role >= 0:
                        gamma[jx, r, role] += (
                            j * signals[role] @ signals[role] * y_clean[i] * B[jx, r, i, p]
                        )
                    elif y[i] == j:
                        rho_bar[jx, r, i] = xi[i] @ xi[i] * B[jx, r, i, p]
                    else:
                        rho_under[jx, r, i] = xi[i] @ xi[i] * B[jx, r, i, p]
    return gamma, rho_bar, rho_under


def loss_from_f(f, y):
    return float(np.mean(logistic_loss(y * f)))
