"""Compiled kernels: forward pass, logistic loss, gradient, the GD step loop
with exact coefficient tracking (docs/model.md §3 and §4), and the same GD in
the span of the data (the Gram-space engine, docs/model.md §9).

Only loops live here; validation and array preparation happen in the public
functions of :mod:`refimpl.network`, :mod:`refimpl.train` and
:mod:`refimpl.gram`. Every kernel has a plain-numpy twin in
:mod:`refimpl.naive` that the tests compare it with.

Array conventions inside the kernels: the weights ``W`` of shape (2, m, d) are
passed as their C-contiguous view ``Wf`` of shape (2m, d) (row ``k = j_idx*m + r``,
``j_idx = 0`` is j = +1); the inputs ``X`` of shape (n, P, d) as ``Xf`` of shape
(nP, d) (row ``i*P + p``). The dense products go to BLAS through ``np.dot``:
in weight space the pre-activations ``A = Xf Wf^T`` and the gradient
``G = C^T Xf`` of every step; in Gram space ``A = Q B^T`` only. Every other
loop is serial and runs in a fixed order, so the same inputs give
bit-identical outputs.
"""

import numpy as np
from numba import njit

_JIT = dict(cache=True, nogil=True)


@njit(**_JIT)
def _relu(a):
    """sigma(a) = max(a, 0) (docs/model.md §3)."""
    return a if a > 0.0 else 0.0


@njit(**_JIT)
def _relu_prime(a):
    """sigma'(a) with the convention sigma'(0) := 0 (docs/model.md §3)."""
    return 1.0 if a > 0.0 else 0.0


@njit(**_JIT)
def _logistic_loss(z):
    """l(z) = log(1 + exp(-z)), computed as max(-z, 0) + log1p(exp(-|z|)):
    no overflow for any finite z (docs/model.md §3)."""
    return max(-z, 0.0) + np.log1p(np.exp(-abs(z)))


@njit(**_JIT)
def _logistic_dloss(z):
    """l'(z) = -1/(1 + exp(z)); with e = exp(-|z|) <= 1 it is -e/(1 + e) for
    z >= 0 and -1/(1 + e) for z < 0 (docs/model.md §3)."""
    e = np.exp(-abs(z))
    if z >= 0.0:
        return -e / (1.0 + e)
    return -1.0 / (1.0 + e)


@njit(**_JIT)
def _outputs(A, n, P, m, f):
    """f_i = F_{+1} - F_{-1}, F_j = (1/m) sum_r sum_p sigma(<w_{j,r}, x_i^(p)>)
    from the pre-activations A (nP, 2m) (docs/model.md §3). Fills f (n,)."""
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
    (docs/model.md §3, the GD update)."""
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
    G = C^T Xf + lambda W (docs/model.md §3)."""
    _forward(Wf, Xf, n, P, m, A, f)
    loss = _loss_and_coefficients(A, f, y, n, P, m, C)
    np.dot(C.T, Xf, G)
    for k in range(2 * m):
        for c in range(Wf.shape[1]):
            G[k, c] += weight_decay * Wf[k, c]
    return loss


@njit(**_JIT)
def _gd_chunk(
    Wf,
    Xf,
    y,
    y_clean,
    sig_sq,
    xi_sq,
    signal_patch,
    noise_patch,
    track,
    trainable,
    eta,
    weight_decay,
    epsilon,
    n_steps,
    t0,
    loss,
    gamma,
    rho_bar,
    rho_under,
    A,
    f,
    C,
    G,
):
    """Up to ``n_steps`` full-batch GD steps, in place, starting at step t0.

    For every step t: record the data loss of the current weights in
    ``loss[t]``; stop (without stepping) if it is <= epsilon; else apply

        w_{j,r} <- (1 - eta*lambda) w_{j,r} - eta * G_{j,r}          (docs/model.md §3.4)

    to trainable filters and, when ``track``, the coefficient recursions of
    docs/model.md §4 in the same pass, read off the same coefficients C, with
    p_s(i) = ``signal_patch[i, s]`` and q(i) = ``noise_patch[i]`` the patch
    roles of input i (§9.3):

        gamma_{j,r,s} <- (1 - eta*lambda) gamma - eta j |sig_s|^2 sum_i C[(i, p_s(i)), k] yhat_i
            (= ... - (eta/(nm)) sum_i l'_i sigma'(<w, yhat_i sig_s>) yhat_i y_i |sig_s|^2)
        rho_{j,r,i}   <- (1 - eta*lambda) rho - eta |xi_i|^2 C[(i, q(i)), k]
            (= ... - (eta/(nm)) l'_i sigma'(<w, xi_i>) j y_i |xi_i|^2),

    the increment going to rho_bar when y_i = j and to rho_under when y_i = -j.
    Frozen filters and their coefficients do not move. Without ``track`` the
    role and coefficient arrays are not read (they may be empty).

    Returns the number of steps taken (< n_steps when the rule stopped it).
    """
    n = y.shape[0]
    two_m, d = Wf.shape
    m = two_m // 2
    P = Xf.shape[0] // n
    n_signals = signal_patch.shape[1]
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
                    acc += C[i * P + signal_patch[i, s], k] * y_clean[i]
                gamma[k, s] = decay * gamma[k, s] - eta * j * sig_sq[s] * acc
            for i in range(n):
                increment = -eta * xi_sq[i] * C[i * P + noise_patch[i], k]
                if y[i] == j:
                    rho_bar[k, i] = decay * rho_bar[k, i] + increment
                    rho_under[k, i] = decay * rho_under[k, i]
                else:
                    rho_bar[k, i] = decay * rho_bar[k, i]
                    rho_under[k, i] = decay * rho_under[k, i] + increment
    return n_steps


# ----------------------------------------------------------------------
# the Gram-space engine (docs/model.md §9): GD on the coefficients B of
# W_t = S_t W_0 + B_t X_f. The kernels hold Bt = B^T, shape (nP, 2m), the
# layout of A and C, so that the update is elementwise and A = Q Bt a plain
# product; s (2m,) holds s_t per filter (1 for frozen ones).


@njit(**_JIT)
def _gram_preactivations(Bt, s, K0, Q, A):
    """A_t = K_0 S_t + Q B_t^T (docs/model.md §9.2), A (nP, 2m):

    A[(i,p), k] = s_k K0[(i,p), k] + sum_{(i',p')} Q[(i,p), (i',p')] Bt[(i',p'), k]
    """
    np.dot(Q, Bt, A)
    for row in range(A.shape[0]):
        for k in range(A.shape[1]):
            A[row, k] += s[k] * K0[row, k]


@njit(**_JIT)
def _gram_loss(Bt, s, K0, Q, y, n, P, m, A, f, C):
    """Data loss of W_t = S_t W_0 + B_t X_f, and its gradient coefficients C."""
    _gram_preactivations(Bt, s, K0, Q, A)
    _outputs(A, n, P, m, f)
    return _loss_and_coefficients(A, f, y, n, P, m, C)


@njit(**_JIT)
def _gram_chunk(Bt, s, K0, Q, y, trainable, eta, weight_decay, epsilon, n_steps, t0, loss, A, f, C):
    """Up to ``n_steps`` GD steps in coefficient space, in place, from step t0
    (docs/model.md §9.1): the same steps, loss record and stopping rule as
    :func:`_gd_chunk`, without d-dimensional work.

    For every step t: record the data loss of W_t in ``loss[t]``; stop
    (without stepping) if it is <= epsilon; else, for trainable filters k,

        B_{t+1}[k] = (1 - eta*lambda) B_t[k] - eta C_t[:, k]^T,
        s_{t+1}[k] = (1 - eta*lambda)^(t+1)

    (s by a power, not a running product: no rounding accumulates in it).
    Frozen filters keep s = 1 and a zero row of B.

    Returns the number of steps taken (< n_steps when the rule stopped it).
    """
    n = y.shape[0]
    nP, two_m = Bt.shape
    m = two_m // 2
    P = nP // n
    decay = 1.0 - eta * weight_decay
    for step in range(n_steps):
        current = _gram_loss(Bt, s, K0, Q, y, n, P, m, A, f, C)
        loss[t0 + step] = current
        if current <= epsilon:
            return step
        for row in range(nP):
            for k in range(two_m):
                if trainable[k]:
                    Bt[row, k] = decay * Bt[row, k] - eta * C[row, k]
        s_next = decay ** float(t0 + step + 1)
        for k in range(two_m):
            if trainable[k]:
                s[k] = s_next
    return n_steps


@njit(**_JIT)
def _logistic_arrays(z, loss, dloss):
    """Elementwise l(z) and l'(z) over a 1-d array."""
    for i in range(z.shape[0]):
        loss[i] = _logistic_loss(z[i])
        dloss[i] = _logistic_dloss(z[i])
