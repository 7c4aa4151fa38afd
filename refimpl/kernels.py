"""Compiled kernels: forward pass, logistic loss, gradient and the GD step loop
with exact coefficient tracking (MODEL.md sections 3 and 4).

Only loops live here; validation and array preparation happen in the public
functions of :mod:`refimpl.network` and :mod:`refimpl.train`. Every kernel has
a plain-numpy twin in :mod:`refimpl.naive` that the tests compare it with.

Array conventions inside the kernels: the weights ``W`` of shape (2, m, d) are
passed as their C-contiguous view ``Wf`` of shape (2m, d) (row ``k = j_idx*m + r``,
``j_idx = 0`` is j = +1); the inputs ``X`` of shape (n, P, d) as ``Xf`` of shape
(nP, d) (row ``i*P + p``). The two dense products of a step, the
pre-activations ``A = Xf Wf^T`` and the gradient ``G = C^T Xf``, go to BLAS
through ``np.dot``; every other loop is serial and runs in a fixed order, so
the same inputs give bit-identical outputs.
"""
import numpy as np
from numba import njit

_JIT = dict(cache=True, nogil=True)


@njit(**_JIT)
def _relu(a):
    """sigma(a) = max(a, 0) (MODEL.md section 3)."""
    return a if a > 0.0 else 0.0


@njit(**_JIT)
def _relu_prime(a):
    """sigma'(a) with the convention sigma'(0) := 0 (MODEL.md section 3)."""
    return 1.0 if a > 0.0 else 0.0


@njit(**_JIT)
def _logistic_loss(z):
    """l(z) = log(1 + exp(-z)), computed as max(-z, 0) + log1p(exp(-|z|)):
    no overflow for any finite z (MODEL.md section 3)."""
    return max(-z, 0.0) + np.log1p(np.exp(-abs(z)))


@njit(**_JIT)
def _logistic_dloss(z):
    """l'(z) = -1/(1 + exp(z)); with e = exp(-|z|) <= 1 it is -e/(1 + e) for
    z >= 0 and -1/(1 + e) for z < 0 (MODEL.md section 3)."""
    e = np.exp(-abs(z))
    if z >= 0.0:
        return -e / (1.0 + e)
    return -1.0 / (1.0 + e)


@njit(**_JIT)
def _outputs(A, n, P, m, f):
    """f_i = F_{+1} - F_{-1}, F_j = (1/m) sum_r sum_p sigma(<w_{j,r}, x_i^(p)>)
    from the pre-activations A (nP, 2m) (MODEL.md section 3). Fills f (n,)."""
    for i in range(n):
        f_plus = 0.0
        f_minus = 0.0
        for p in range(P):
            row = i * P + p
            for r in range(m):
                f_plus += _relu(A[row, r])
                f_minus += _relu(A[row, m + r])
        f[i] = (f_plus - f_minus) / m


@njit(**_JIT)
def _loss_and_coefficients(A, f, y, n, P, m, C):
    """Mean data loss (1/n) sum_i l(y_i f_i) and the gradient coefficients

        C[i*P + p, k] = l'(y_i f_i) sigma'(A[i*P + p, k]) j_k y_i / (n m),

    so that the data gradient of filter k is sum_rows C[row, k] Xf[row]
    (MODEL.md section 3, the GD update)."""
    total = 0.0
    scale = 1.0 / (n * m)
    for i in range(n):
        z = y[i] * f[i]
        total += _logistic_loss(z)
        g = _logistic_dloss(z) * y[i] * scale
        for p in range(P):
            row = i * P + p
            for k in range(2 * m):
                j = 1.0 if k < m else -1.0
                C[row, k] = g * j * _relu_prime(A[row, k])
    return total / n


@njit(**_JIT)
def _forward(Wf, Xf, n, P, m, A, f):
    """Network outputs f (n,) for inputs Xf (nP, d); A (nP, 2m) is workspace."""
    np.dot(Xf, Wf.T, A)
    _outputs(A, n, P, m, f)


@njit(**_JIT)
def _loss_gradient(Wf, Xf, y, n, P, m, weight_decay, A, f, C, G):
    """Data loss and the full gradient G (2m, d) of L_S, weight decay included:
    G = C^T Xf + lambda W (MODEL.md section 3)."""
    _forward(Wf, Xf, n, P, m, A, f)
    loss = _loss_and_coefficients(A, f, y, n, P, m, C)
    np.dot(C.T, Xf, G)
    for k in range(2 * m):
        for c in range(Wf.shape[1]):
            G[k, c] += weight_decay * Wf[k, c]
    return loss


@njit(**_JIT)
def _gd_chunk(Wf, Xf, y, y_clean, sig_sq, xi_sq, n_signals, track, trainable,
              eta, weight_decay, epsilon, n_steps, t0, loss,
              gamma, rho_bar, rho_under, A, f, C, G):
    """Up to ``n_steps`` full-batch GD steps, in place, starting at step t0.

    For every step t: record the data loss of the current weights in
    ``loss[t]``; stop (without stepping) if it is <= epsilon; else apply

        w_{j,r} <- (1 - eta*lambda) w_{j,r} - eta * G_{j,r}          (section 3)

    to trainable filters and, when ``track``, the coefficient recursions of
    section 4 in the same pass, read off the same coefficients C:

        gamma_{j,r,s} <- (1 - eta*lambda) gamma - eta j |sig_s|^2 sum_i C[i,s] yhat_i
            (= ... - (eta/(nm)) sum_i l'_i sigma'(<w, yhat_i sig_s>) yhat_i y_i |sig_s|^2)
        rho_{j,r,i}   <- (1 - eta*lambda) rho - eta |xi_i|^2 C[i, P-1]
            (= ... - (eta/(nm)) l'_i sigma'(<w, xi_i>) j y_i |xi_i|^2),

    the increment going to rho_bar when y_i = j and to rho_under when y_i = -j.
    Frozen filters and their coefficients do not move.

    Returns the number of steps taken (< n_steps when the rule stopped it).
    """
    n = y.shape[0]
    two_m, d = Wf.shape
    m = two_m // 2
    P = Xf.shape[0] // n
    decay = 1.0 - eta * weight_decay
    for step in range(n_steps):
        _forward(Wf, Xf, n, P, m, A, f)
        current = _loss_and_coefficients(A, f, y, n, P, m, C)
        loss[t0 + step] = current
        if current <= epsilon:
            return step
        np.dot(C.T, Xf, G)
        for k in range(two_m):
            if not trainable[k]:
                continue
            for c in range(d):
                Wf[k, c] = decay * Wf[k, c] - eta * G[k, c]
            if not track:
                continue
            j = 1.0 if k < m else -1.0
            for s in range(n_signals):
                acc = 0.0
                for i in range(n):
                    acc += C[i * P + s, k] * y_clean[i]
                gamma[k, s] = decay * gamma[k, s] - eta * j * sig_sq[s] * acc
            for i in range(n):
                increment = -eta * xi_sq[i] * C[i * P + P - 1, k]
                if y[i] == j:
                    rho_bar[k, i] = decay * rho_bar[k, i] + increment
                    rho_under[k, i] = decay * rho_under[k, i]
                else:
                    rho_bar[k, i] = decay * rho_bar[k, i]
                    rho_under[k, i] = decay * rho_under[k, i] + increment
    return n_steps


@njit(**_JIT)
def _logistic_arrays(z, loss, dloss):
    """Elementwise l(z) and l'(z) over a 1-d array."""
    for i in range(z.shape[0]):
        loss[i] = _logistic_loss(z[i])
        dloss[i] = _logistic_dloss(z[i])
