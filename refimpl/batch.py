"""Many small runs at once: single-task runs that share their shapes
(n, P, m, d), trained in one compiled call and scored by the reduced
estimator right after (docs/model.md §3, §6.3, §9).

Every run is trained in the span of its data (§9), written in a basis V of
the distinct patch vectors: for refimpl's data the S signal rows and the n
noise vectors, r = S + n rows, each patch being +-1 times one of them,
``x_i^(p) = c_{i,p} V[a(i,p)]``. The weights stay of the form

    W_t = s_t W_0 + Bv_t V,        Bv: (2m, r),   s_t = (1 - eta*lambda)^t,

and with the Gram matrix G of Z = [V; W_0] (q = r + 2m rows; one BLAS syrk
per run, the only d-dimensional work besides drawing the data) a step is

    <w_k, V_a>  = s_t <V_a, w0_k> + sum_b <V_a, V_b> Bv_t[k, b]            (r x 2m)
    A[(i,p), k] = c_{i,p} <w_k, V_a(i,p)>
    Bv_{t+1}[k, a] = (1 - eta*lambda) Bv_t[k, a] - eta sum_{(i,p): a(i,p) = a} c_{i,p} C[(i,p), k]

the Gram-space step of §9.1 with the patches that are multiples of one
vector merged (O(m r^2) instead of O(m (nP)^2)). The test error needs
``W Pi W^T`` and ``W sig^T``, again read off G (and Z times the noise basis),
so no run forms W. The loops are serial and in a fixed order per run, so a
run's numbers do not depend on the other runs of its batch.

:func:`run_single_batch` is the whole single-task run of
:func:`refimpl.lab.measures.measure_single` for many (config, seed) pairs:
the same random streams and draws (:func:`refimpl.transfer.streams`), so the
same data, initialisation and test draws; its GD agrees with
:func:`refimpl.train.train_stage` to rounding, and its test error equals
:func:`refimpl.evaluation.estimate_test_error`'s, except in the rare runs
(about 1 in 200 at Kou et al.'s sizes) where rounding decides the sign of an
eigenvector of the noise covariance: the draws are then rotated, and the two
estimates agree statistically. A run that leaves the finite numbers (where
``train_stage`` raises DivergenceError) gets NaN errors instead.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# numba's np.dot calls scipy's BLAS: loaded with this module, so that the
# sweeps' BLAS pinning (threadpoolctl, at the first item) covers it
import scipy.linalg.cython_blas  # noqa: F401
from numba import njit

from .data import noise_basis, signal_vectors, task_signals
from .kernels import _loss_and_coefficients, _outputs, _relu

__all__ = [
    "BatchResult",
    "train_batch",
    "reduced_errors",
    "run_single_batch",
    "shape_key",
    "STREAM_INDEX",
    "DRAW_BLOCK",
    "error_moments",
]

_JIT = dict(cache=True, nogil=True)
_PLUS_MINUS = np.array([1.0, -1.0])
STREAM_INDEX = {
    "data_up": 0,
    "init_up": 1,
    "data_down": 2,
    "init_down": 3,
    "transfer": 4,
    "test": 5,
}
"""Positions of the streams of a run among those of :func:`refimpl.transfer.streams`
(the children of ``SeedSequence(seed)``)."""
_NORMALS_BYTES = 32 << 20  # test draws held at once
DRAW_BLOCK = 4096  # test draws per run and block (as refimpl.evaluation)
_CHUNK = 256  # runs per compiled training call


@njit(**_JIT)
def _train(  # noqa: C901 (a numba kernel: one fused loop over runs and steps, as kernels.py)
    G, index, sign, y, eta, weight_decay, epsilon, steps, Bt, s, loss, last, stopped, finite
):
    """GD of every run b in the basis V (module docstring), in place: ``Bt[b]``
    (r, 2m) is Bv^T, ``s[b]`` the final s_t, ``loss[b, t]`` the data loss at
    step t (recorded before the step; the rule ``loss <= epsilon`` stops
    without stepping, as in :func:`refimpl.kernels._gd_chunk`), ``last[b]``
    the last step, ``stopped[b]`` whether the rule fired, ``finite[b]`` False
    once the loss is not finite (the run stops there) or when B is not."""
    R = G.shape[0]
    n, P = index.shape
    r, two_m = Bt.shape[1], Bt.shape[2]
    m = two_m // 2
    Q = np.empty((r, r))
    B = np.empty((r, two_m))
    Av = np.empty((r, two_m))
    A = np.empty((n * P, two_m))
    C = np.empty((n * P, two_m))
    f = np.empty(n)
    yb = np.empty(n)
    for b in range(R):
        for a in range(r):
            for c in range(r):
                Q[a, c] = G[b, a, c]
        for i in range(n):
            yb[i] = y[b, i]
        B[:, :] = 0.0
        decay = 1.0 - eta[b] * weight_decay[b]
        sk = 1.0
        t = 0
        while True:
            np.dot(Q, B, Av)  # <w_k, V_a> = Q Bv^T + s K0
            for a in range(r):
                for k in range(two_m):
                    Av[a, k] += sk * G[b, a, r + k]
            for i in range(n):
                for p in range(P):
                    a = index[i, p]
                    c = sign[b, i, p]
                    for k in range(two_m):
                        A[i * P + p, k] = c * Av[a, k]
            _outputs(A, n, P, m, f)
            current = _loss_and_coefficients(A, f, yb, n, P, m, C)
            loss[b, t] = current
            if not np.isfinite(current):
                finite[b] = False
                break
            if current <= epsilon[b]:
                stopped[b] = True
                break
            if t == steps[b]:
                break
            for a in range(r):
                for k in range(two_m):
                    B[a, k] *= decay
            for i in range(n):
                for p in range(P):
                    a = index[i, p]
                    c = eta[b] * sign[b, i, p]
                    for k in range(two_m):
                        B[a, k] -= c * C[i * P + p, k]
            t += 1
            sk = decay ** float(t)
        Bt[b] = B
        s[b] = sk
        last[b] = t
        if not np.all(np.isfinite(B)):
            finite[b] = False


@njit(**_JIT)
def _moments(G, E, Bt, s, n_signals, WWt, PW, sig_pre):  # noqa: C901 (numba kernel: loops)
    """Per run, with H = Z W^T (q, 2m) read off G: ``WWt = W W^T``,
    ``PW = W N^T`` (N: the noise basis, ``E = Z N^T``) and ``sig_pre[k, s] =
    <w_k, sig_s>`` (the signals are the first rows of Z)."""
    R, q, _ = G.shape
    r, two_m = Bt.shape[1], Bt.shape[2]
    kb = E.shape[2]
    H = np.empty((q, two_m))
    for b in range(R):
        for x in range(q):
            for k in range(two_m):
                H[x, k] = s[b] * G[b, x, r + k]
            for a in range(r):
                g = G[b, x, a]
                for k in range(two_m):
                    H[x, k] += g * Bt[b, a, k]
        for k in range(two_m):
            for el in range(two_m):
                WWt[b, k, el] = s[b] * H[r + k, el]
            for c in range(kb):
                PW[b, k, c] = s[b] * E[b, r + k, c]
        for a in range(r):
            for k in range(two_m):
                w = Bt[b, a, k]
                for el in range(two_m):
                    WWt[b, k, el] += w * H[a, el]
                for c in range(kb):
                    PW[b, k, c] += w * E[b, a, c]
        for k in range(two_m):
            for el in range(k):  # exactly symmetric: the lower triangle
                WWt[b, el, k] = WWt[b, k, el]
            for sg in range(n_signals):
                sig_pre[b, k, sg] = H[sg, k]


@njit(**_JIT)
def _score(normals, rows, rootT, sig_pre, m, counts):
    """The reduced estimator (docs/model.md §6.3) on a block of draws of
    every run: z = root g for each draw g (a row of ``normals[rows[b]]``:
    runs may share their draws), the draw's clean error the mean over
    yhat = +1, -1 of 1(yhat f <= 0); ``counts[b, e]`` += the draws with
    error e/2."""
    _, N, two_m = normals.shape
    R, S = rows.shape[0], sig_pre.shape[2]
    z = np.empty((N, two_m))
    for b in range(R):
        sp_plus = 0.0
        sp_minus = 0.0
        for k in range(two_m):
            j = 1.0 if k < m else -1.0
            up = 0.0
            down = 0.0
            for sg in range(S):
                up += _relu(sig_pre[b, k, sg])
                down += _relu(-sig_pre[b, k, sg])
            sp_plus += j * up
            sp_minus += j * down
        sp_plus /= m
        sp_minus /= m
        np.dot(normals[rows[b]], rootT[b], z)  # z = root g, one draw a row
        for t in range(N):
            noise = 0.0
            for k in range(two_m):
                noise += (1.0 if k < m else -1.0) * _relu(z[t, k])
            noise /= m
            counts[b, int(sp_plus + noise <= 0.0) + int(-(sp_minus + noise) <= 0.0)] += 1.0


class BatchResult(NamedTuple):
    """GD of a batch of runs in the basis V (:func:`train_batch`).

    Bt : (R, r, 2m) -- Bv^T: ``W = s W_0 + Bt^T V`` per run.
    s : (R,) -- s_t at the last step.
    loss : (R, T_max + 1) -- data loss per step (NaN after a run's last step).
    last : (R,) int -- the last step T of each run.
    stopped : (R,) bool -- the epsilon rule fired.
    finite : (R,) bool -- False for a run whose loss left the finite numbers.
    """

    Bt: np.ndarray
    s: np.ndarray
    loss: np.ndarray
    last: np.ndarray
    stopped: np.ndarray
    finite: np.ndarray

    def weights(self, V, W0):
        """W = s W_0 + Bv V of run b for each b, from V (R, r, d) and W0
        (R, 2, m, d); a new (R, 2, m, d) array (for checks: runs never need it)."""
        R, _, m, d = W0.shape
        W = self.s[:, None, None] * W0.reshape(R, 2 * m, d) + np.einsum("bak,bad->bkd", self.Bt, V)
        return W.reshape(R, 2, m, d)


def _per_run(value, R, dtype=np.float64):
    out = np.ascontiguousarray(np.broadcast_to(np.asarray(value, dtype=dtype), (R,)))
    return out.copy()


def train_batch(G, index, sign, y, eta, steps, weight_decay=0.0, epsilon=0.0):
    """GD (docs/model.md §3.4, §3.5) of R runs that share their shapes, in
    one compiled call.

    Parameters
    ----------
    G : ndarray of shape (R, q, q)
        Gram matrix of Z = [V; W_0f] per run: r basis rows, then the 2m rows
        of the initial weights (row ``k = j_idx*m + r``), q = r + 2m.
    index : ndarray of shape (n, P), int
        The basis row a(i, p) of patch p of input i (shared by all runs).
    sign : ndarray of shape (R, n, P)
        c_{i,p}: patch p of input i is ``sign * V[index]``.
    y : ndarray of shape (R, n)
        Labels +-1.
    eta, steps, weight_decay, epsilon : scalar or ndarray of shape (R,)
        Step size, step cap T, lambda, and the loss threshold (0: off).

    Returns
    -------
    BatchResult
    """
    G = np.ascontiguousarray(G, dtype=np.float64)
    index = np.ascontiguousarray(index, dtype=np.int64)
    R, q, _ = G.shape
    n, P = index.shape
    sign = np.ascontiguousarray(np.broadcast_to(sign, (R, n, P)), dtype=np.float64)
    y = np.ascontiguousarray(np.broadcast_to(y, (R, n)), dtype=np.float64)
    r = int(index.max()) + 1 if index.size else 0
    two_m = q - r
    if G.shape != (R, q, q) or two_m < 2 or two_m % 2 or index.min() < 0:
        raise ValueError(
            f"G must have shape (R, r + 2m, r + 2m) with r = {r} basis rows, got {G.shape}"
        )
    steps = _per_run(steps, R, np.int64)
    eps = _per_run(epsilon, R)
    eps = np.where(eps > 0, eps, -1.0)  # the loss is >= 0: -1 never stops
    Bt = np.empty((R, r, two_m))
    loss = np.full((R, int(steps.max(initial=0)) + 1), np.nan)
    s, last = np.ones(R), np.zeros(R, np.int64)
    stopped, finite = np.zeros(R, bool), np.ones(R, bool)
    _train(
        G,
        index,
        sign,
        y,
        _per_run(eta, R),
        _per_run(weight_decay, R),
        eps,
        steps,
        Bt,
        s,
        loss,
        last,
        stopped,
        finite,
    )
    return BatchResult(Bt=Bt, s=s, loss=loss, last=last, stopped=stopped, finite=finite)


def error_moments(G, E, result, n_signals):
    """``W W^T`` (R, 2m, 2m), ``W N^T`` (R, 2m, kb) and the signal
    pre-activations ``W sig^T`` (R, 2m, S) of the trained runs, from G, the
    projections ``E = Z N^T`` (R, q, kb) of Z on the noise basis N and the
    signals held in the first ``n_signals`` rows of V. W is each run's
    weights divided by a power of two (exact; the sign of f, all the error
    reads, is unchanged), so that huge weights do not overflow."""
    R = G.shape[0]
    two_m = result.Bt.shape[2]
    E = np.ascontiguousarray(E, dtype=np.float64)
    peak = np.maximum(np.abs(result.Bt).max(axis=(1, 2), initial=0.0), result.s)
    e = np.where((peak > 0) & np.isfinite(peak), np.frexp(peak)[1], 0)
    Bt, s = np.ldexp(result.Bt, -e[:, None, None]), np.ldexp(result.s, -e)
    WWt, PW = np.empty((R, two_m, two_m)), np.empty((R, two_m, E.shape[2]))
    sig_pre = np.empty((R, two_m, n_signals))
    _moments(G, E, Bt, s, n_signals, WWt, PW, sig_pre)
    return WWt, PW, sig_pre


def reduced_errors(WWt, PW, sig_pre, sigma_p, n_test, draw, streams=None):
    """Clean test error and its standard error per run by the reduced
    estimator (docs/model.md §6.3), computed as
    :func:`refimpl.evaluation.estimate_test_error` does: W scaled by a power
    of two, ``cov = sigma_p^2 W Pi W^T`` with ``W Pi W^T = W W^T - (W N^T)(W
    N^T)^T``, its eigendecomposition (numpy's LAPACK), ``z = root g`` for
    standard normal draws g, in blocks of :data:`DRAW_BLOCK` draws.

    Parameters
    ----------
    WWt, PW, sig_pre : ndarray
        From :func:`error_moments`, R runs.
    sigma_p : float or ndarray of shape (R,)
    n_test : int
        Draws per run.
    draw : callable(b, out)
        Fills ``out`` (k, 2m) with the next k standard normal rows of run b.
    streams : sequence, optional
        One key per run: runs with equal keys draw the same rows (as runs on
        one seed's ``test`` stream do), which are drawn once, by the first
        of them, and read by all of them (default: every run its own).

    Returns
    -------
    mean, se : ndarray of shape (R,)
    """
    R, two_m, _ = WWt.shape
    peak = np.sqrt(np.max(np.diagonal(WWt, axis1=1, axis2=2), axis=1))  # largest |w_k|
    e = np.where(peak > 0, np.frexp(peak)[1], 0)[:, None, None]
    WWt, PW = np.ldexp(WWt, -2 * e), np.ldexp(PW, -e)  # exact: W / 2^e
    sig_pre = np.ascontiguousarray(np.ldexp(sig_pre, -e))
    cov = np.asarray(sigma_p, float).reshape(-1, 1, 1) ** 2 * (WWt - PW @ PW.transpose(0, 2, 1))
    vals, vecs = np.linalg.eigh(cov)
    rootT = np.ascontiguousarray(
        (vecs * np.sqrt(np.clip(vals, 0.0, None))[:, None, :]).transpose(0, 2, 1)
    )
    first = {}  # stream key -> (its block row, the run that draws it)
    keys = range(R) if streams is None else list(streams)
    if len(keys) != R:
        raise ValueError(f"one stream key per run: {len(keys)} keys for {R} runs")
    rows = np.array([first.setdefault(k, (len(first), b))[0] for b, k in enumerate(keys)], np.int64)
    counts = np.zeros((R, 3))
    for start in range(0, n_test, DRAW_BLOCK):
        block = np.empty((len(first), min(DRAW_BLOCK, n_test - start), two_m))
        for row, b in first.values():
            draw(b, block[row])
        _score(block, rows, rootT, sig_pre, two_m // 2, counts)
    mean = (0.5 * counts[:, 1] + counts[:, 2]) / n_test
    ss = counts[:, 0] * mean**2 + counts[:, 1] * (0.5 - mean) ** 2 + counts[:, 2] * (1 - mean) ** 2
    return mean, np.sqrt(ss / (n_test - 1)) / np.sqrt(n_test)


# ----------------------------------------------------------------------
# the single-task run of measure_single, for many (config, seed) pairs


def shape_key(config):
    """Runs with equal keys share their shapes and are batched together."""
    return (config.n_up, config.n_patches, config.m, config.d)


def _rng(seed, stream):
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(STREAM_INDEX[stream],)))


def _task_geometry(config, cache):
    """(signals, noise basis) of a config's upstream task, shared by its runs."""
    c = config
    key = (c.d, c.u_norm, c.v_up_norm, c.layout)
    if key not in cache:
        u, v, _ = signal_vectors(c.d, c.u_norm, c.v_up_norm, c.v_down_norm, c.v_cos)
        cache[key] = (task_signals(u, v, c.layout), noise_basis(u, v))
    return cache[key]


def draw_task(rng, n, sigma_p, flip, signals, basis, V):
    """A task's labels and data into V = [signals; xi] (its first S + n rows),
    drawn from ``rng`` exactly as :func:`refimpl.data.sample_task` draws them.
    Returns (y, y_clean)."""
    S = signals.shape[0]
    y_clean = rng.choice(_PLUS_MINUS, size=n)
    flipped = rng.random(n) < flip
    y = np.where(flipped, -y_clean, y_clean)
    g = V[S : S + n]
    rng.standard_normal(out=g)
    g *= sigma_p
    if basis.shape[0]:
        g -= (g @ basis.T) @ basis
    V[:S] = signals
    return y, y_clean


def _draw(config, seed, signals, basis, Z):
    """The upstream data and initial weights of run ``seed`` into Z = [signals;
    xi; W_0f], drawn exactly as :func:`refimpl.data.sample_task` and
    :func:`refimpl.transfer.run_experiment` draw them. Returns (y, y_clean)."""
    c = config
    S, n = signals.shape[0], c.n_up
    y, y_clean = draw_task(_rng(seed, "data_up"), n, c.sigma_p_up, c.flip_up, signals, basis, Z)
    W0 = Z[S + n :]
    _rng(seed, "init_up").standard_normal(out=W0)
    W0 *= c.sigma_0
    return y, y_clean


def patch_index(n, S):
    """Patch (i, p) -> basis row a(i, p) of refimpl's data: the S signal rows,
    then input i's noise row S + i (module docstring)."""
    index = np.empty((n, S + 1), np.int64)
    index[:, :S] = np.arange(S)
    index[:, S] = S + np.arange(n)
    return index


def _test_draws(seeds):
    """draw(b, out) of :func:`reduced_errors`: run b's ``test`` stream."""
    gens = [_rng(seed, "test") for seed in seeds]
    return lambda b, out: gens[b].standard_normal(out=out)


def check_runs(R, seeds, n_test):
    """Raise ValueError unless there is one seed per config and ``n_test``
    (the test draws of every run, None: each config's) is an integer >= 2
    (as a Config's: a standard error needs two draws)."""
    if len(seeds) != R:
        raise ValueError("one seed per config")
    if n_test is not None and not (
        isinstance(n_test, (int, np.integer)) and not isinstance(n_test, bool) and n_test >= 2
    ):
        raise ValueError(f"n_test must be an integer >= 2, got {n_test!r}")


def run_single_batch(configs, seeds, n_test=None, keep_weights=False):
    """The single-task run of :func:`refimpl.lab.measures.measure_single` (the
    upstream task of each config, trained alone, scored by the reduced
    estimator) for every (config, seed) pair, batched by :func:`shape_key`.

    Parameters
    ----------
    configs : sequence of Config
        Each with ``estimator == "reduced"``.
    seeds : sequence of int
        The run's seed (``config.seed`` is ignored).
    n_test : int, optional
        Test draws (default: each config's ``n_test``).
    keep_weights : bool
        Also return the final weights (for checks; costs memory).

    Returns
    -------
    dict of ndarray of shape (R,)
        ``err`` (clean), ``err_se``, ``noisy``, ``noisy_se``, ``loss`` (final
        training loss), ``steps`` (last step), ``stopped`` (reached epsilon)
        and ``finite`` (False: the run diverged; its errors are NaN); with
        ``keep_weights`` also ``W`` (a list of (2, m, d) arrays).
    """
    R = len(configs)
    check_runs(R, seeds, n_test)
    out = {k: np.full(R, np.nan) for k in ("err", "err_se", "noisy", "noisy_se", "loss")}
    out.update(steps=np.zeros(R, np.int64), stopped=np.zeros(R, bool), finite=np.ones(R, bool))
    if keep_weights:
        out["W"] = [None] * R
    groups = {}
    for i, c in enumerate(configs):
        if c.estimator != "reduced":
            raise ValueError("run_single_batch scores with the reduced estimator only")
        groups.setdefault(shape_key(c), []).append(i)
    geometry = {}
    for members in groups.values():
        for start in range(0, len(members), _CHUNK):
            rows = members[start : start + _CHUNK]
            with np.errstate(over="ignore", invalid="ignore"):  # a diverged run: NaN
                _run_group(
                    [configs[i] for i in rows],
                    [int(seeds[i]) for i in rows],
                    n_test,
                    geometry,
                    keep_weights,
                    out,
                    rows,
                )
    return out


def test_errors(G, E, result, n_signals, sigma_p, counts, seeds):
    """Clean test error and its standard error of every trained run of a batch
    (:func:`error_moments`, then :func:`reduced_errors` on ``counts[b]`` draws
    of run b's own ``test`` stream, restarted for every call as
    :meth:`refimpl.transfer.Experiment.test_error` restarts it: runs of one
    seed, such as a seed's transfer and scratch runs or its alphas, draw the
    same rows, drawn once); NaN for a run that left the finite numbers."""
    WWt, PW, sig_pre = error_moments(G, E, result, n_signals)
    R, two_m = WWt.shape[0], WWt.shape[1]
    err, se = np.full(R, np.nan), np.full(R, np.nan)
    ok = np.flatnonzero(result.finite & np.all(np.isfinite(WWt), axis=(1, 2)))
    for N in np.unique(counts[ok]):  # runs with equal test counts together,
        same = ok[counts[ok] == N]  # those of one seed adjacent: they share draws
        same = same[np.argsort([seeds[run] for run in same], kind="stable")]
        per = max(1, _NORMALS_BYTES // (8 * min(int(N), DRAW_BLOCK) * two_m))
        for k in range(0, same.size, per):
            part = same[k : k + per]
            err[part], se[part] = reduced_errors(
                WWt[part],
                PW[part],
                sig_pre[part],
                sigma_p[part],
                int(N),
                _test_draws([seeds[run] for run in part]),
                [seeds[run] for run in part],
            )
    return err, se


def _run_group(configs, seeds, n_test, geometry, keep_weights, out, rows):
    c0 = configs[0]
    n, P, m, d = shape_key(c0)
    S = P - 1
    r, q, R = S + n, S + n + 2 * m, len(configs)
    index = patch_index(n, S)
    G, E = np.empty((R, q, q)), np.zeros((R, q, 2))
    sign, y = np.ones((R, n, P)), np.empty((R, n))
    Z = np.empty((q, d))
    kept = []
    for b, (c, seed) in enumerate(zip(configs, seeds, strict=True)):
        signals, basis = _task_geometry(c, geometry)
        y[b], y_clean = _draw(c, seed, signals, basis, Z)
        sign[b, :, :S] = y_clean[:, None]  # signal patches: yhat_i sig_s
        np.matmul(Z, Z.T, out=G[b])  # syrk: d-dimensional work, once
        E[b, :, : basis.shape[0]] = Z @ basis.T
        if keep_weights:
            kept.append((Z[:r].copy(), Z[r:].reshape(2, m, d).copy()))
    res = train_batch(
        G,
        index,
        sign,
        y,
        [c.eta for c in configs],
        [c.steps_up for c in configs],
        [c.weight_decay_up for c in configs],
        [c.epsilon for c in configs],
    )
    sigma_p = np.array([c.sigma_p_up for c in configs])
    counts = np.array([c.n_test if n_test is None else n_test for c in configs])
    err, se = test_errors(G, E, res, S, sigma_p, counts, seeds)
    flip = np.array([c.flip_up for c in configs])
    last = res.last
    rows = np.asarray(rows)
    out["err"][rows], out["err_se"][rows] = err, se
    out["noisy"][rows] = flip + (1.0 - 2.0 * flip) * err
    out["noisy_se"][rows] = (1.0 - 2.0 * flip) * se
    out["loss"][rows] = res.loss[np.arange(R), last]
    out["steps"][rows], out["stopped"][rows], out["finite"][rows] = last, res.stopped, res.finite
    if keep_weights:
        V = np.stack([v for v, _ in kept])
        W = res.weights(V, np.stack([w for _, w in kept]))
        for b, i in enumerate(rows):
            out["W"][i] = W[b]
