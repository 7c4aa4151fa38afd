"""Many three-stage runs at once: the experiment of docs/model.md §5 for many
(config, seed) pairs that share their shapes, each stage trained by the
batched Gram-space trainer of :mod:`refimpl.batch` (docs/model.md §9).

- ``up``: the upstream task in the basis of its S + N_1 distinct patch
  vectors, as :func:`refimpl.batch.run_single_batch` trains it. Runs whose
  upstream stage is the same (same seed and same upstream fields, as the
  alphas or the downstream sizes of one seed under common random numbers)
  train it once, also across downstream shapes: a call trains the distinct
  upstream stages of all its runs first. The process keeps the trained
  upstream stages (final weights, loss, steps and test error; at most
  :func:`refimpl.memo.memo_limit` bytes, the oldest dropped first) for later
  calls, so a sweep worker trains a seed's upstream stage once for all of its
  calls. A run's numbers do not depend on this (nor on the other runs of its
  call).
- the transfer: the upstream weights W = s W_0 + Bv V formed once per
  upstream stage (2m x r x d multiply-adds), then :func:`refimpl.transfer.inherit`
  on the run's ``transfer`` stream, as :func:`refimpl.transfer.run_stages` does.
- ``down`` and ``scratch``: the downstream task in the basis of its S + N_2
  patch vectors, from the inherited weights and from the fresh ones: W_0 is
  any (2m, d) matrix in the representation W_t = s_t W_0 + Bv_t V, so both
  are :func:`refimpl.batch.train_batch` runs with their own Gram matrices.
- test errors by the reduced estimator on the run's ``test`` stream, restarted
  for each stage (transfer and scratch on the same draws, docs/model.md §6.4);
  the upstream stage's only on request (``upstream_error``): at the base
  regime it is a tenth of a run's cost.

The draws are those of :func:`refimpl.transfer.run_experiment` (the same
streams), so the numbers are those of
:func:`refimpl.lab.measures.measure_outcomes` to rounding, with the same
exception as :mod:`refimpl.batch` for the test error (a run where rounding
decides the sign of an eigenvector of the noise covariance), and one more:
a run whose weights pass about 1e154 overflows a Gram matrix and is NaN (a
missing value) where the item path may still score it. Not batched:
frozen inherited filters (the batched trainer trains every filter) and
estimators other than ``reduced``; :func:`check_batchable` names them.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from .batch import (
    _draw,
    _rng,
    _task_geometry,
    check_runs,
    draw_task,
    patch_index,
    test_errors,
    train_batch,
)
from .budget import memory_budget
from .data import noise_basis, signal_vectors, task_signals
from .memo import memo_limit
from .transfer import count_dead, inherit, inherited_filters

__all__ = [
    "OUTCOMES",
    "run_transfer_batch",
    "transfer_shape",
    "check_batchable",
    "forget_upstream",
]

OUTCOMES = (
    *("err_transfer", "err_scratch", "noisy_transfer", "noisy_scratch", "gain"),
    *("loss_up", "loss_down", "loss_scratch", "steps_up", "steps_down", "steps_scratch"),
    *("n_flipped", "dead_points", "dead_inherited"),
)
"""The keys of :func:`refimpl.lab.measures.measure_outcomes`; a batched run also
gives ``err_up``, the upstream stage's clean test error, on request
(:func:`run_transfer_batch`)."""

_UPSTREAM = (  # with the seed and the number of test draws (0: no test error)
    *("d", "m", "n_up", "layout", "u_norm", "v_up_norm", "sigma_p_up", "flip_up"),
    *("sigma_0", "eta", "steps_up", "weight_decay_up", "epsilon"),
)
"""The fields the upstream stage reads (with the seed): runs equal in them share it."""


CALL_BYTES = 64 << 20
"""Bytes of arrays (data, Gram matrices, weights) one compiled call holds at
most (less under a small memory budget: an eighth of it, as
:func:`refimpl.memo.memo_limit`): a larger batch is cut into calls (its
numbers do not depend on it)."""

_KEPT = OrderedDict()  # upstream key -> (W (2, m, d) read-only, final loss, steps, error)
_KEPT_BYTES = [0]


def forget_upstream():
    """Drop the upstream stages this process keeps (module docstring)."""
    _KEPT.clear()
    _KEPT_BYTES[0] = 0


def _keep(key, value):
    """Keep an upstream stage, dropping the oldest beyond :func:`memo_limit` bytes."""
    _KEPT[key] = value
    _KEPT_BYTES[0] += value[0].nbytes
    limit = memo_limit()
    while len(_KEPT) > 1 and _KEPT_BYTES[0] > limit:
        _KEPT_BYTES[0] -= _KEPT.popitem(last=False)[1][0].nbytes


def transfer_shape(config):
    """Runs with equal keys share their upstream shapes (N_1, P, m, d): a sweep
    gives them to one call (:data:`refimpl.lab.measures.BATCHED`), where each
    distinct upstream stage is trained once."""
    return (config.n_up, config.n_patches, config.m, config.d)


def _down_shape(config):
    return (config.n_down, config.n_patches, config.m2, config.d)


def check_batchable(config):
    """Raise ValueError naming what the batched path does not do."""
    if config.freeze_inherited:
        raise ValueError("the batched three-stage path trains every filter: no freeze_inherited")
    if config.estimator != "reduced":
        raise ValueError("the batched three-stage path scores with the reduced estimator only")


def run_transfer_batch(configs, seeds, n_test=None, upstream_error=False):
    """The outcomes of :func:`refimpl.lab.measures.measure_outcomes` for every
    (config, seed) pair (module docstring): the distinct upstream stages by
    :func:`transfer_shape`, then ``down`` and ``scratch`` by downstream
    shape, in compiled calls of at most :data:`CALL_BYTES` of arrays each.

    Parameters
    ----------
    configs : sequence of Config
        Each batchable (:func:`check_batchable`).
    seeds : sequence of int
        The run's seed (``config.seed`` is ignored).
    n_test : int, optional
        Test draws (default: each config's ``n_test``).
    upstream_error : bool
        Also estimate the upstream stage's clean test error ``err_up`` (on
        the same test stream).

    Returns
    -------
    dict of ndarray of shape (R,)
        The keys of :data:`OUTCOMES` (and ``err_up``); a run that left the
        finite numbers has NaN errors (its gain NaN).
    """
    R = len(configs)
    check_runs(R, seeds, n_test)
    for c in configs:
        check_batchable(c)
    seeds = [int(s) for s in seeds]
    draws = [(c.n_test if n_test is None else n_test) if upstream_error else 0 for c in configs]
    keys = [
        (s, t, *(getattr(c, f) for f in _UPSTREAM))
        for c, s, t in zip(configs, seeds, draws, strict=True)
    ]
    names = ("loss_up", "steps_up", "err_up")[: 3 if upstream_error else 2]
    out = {k: np.full(R, np.nan) for k in (*OUTCOMES, *names)}
    with np.errstate(over="ignore", invalid="ignore"):  # a diverged run: NaN
        ups = _upstreams(configs, seeds, keys)
        for k, name in enumerate(names, start=1):
            out[name][:] = [ups[key][k] for key in keys]
        groups = {}
        for i, c in enumerate(configs):
            groups.setdefault(_down_shape(c), []).append(i)
        for shape, members in groups.items():
            n, P, m2, d = shape
            q = n + P - 1 + 2 * m2
            for rows in _chunks(members, 2 * 8 * (q * d + q * q)):
                W = [ups[keys[i]][0] for i in rows]
                down = _downstream([configs[i] for i in rows], [seeds[i] for i in rows], W, n_test)
                for k, v in down.items():
                    out[k][rows] = v
    return out


def _chunks(rows, per_run):
    """``rows`` in runs of at most CALL_BYTES // per_run (at least one)."""
    size = max(1, int(min(CALL_BYTES, memory_budget() / 8) // per_run))
    return [rows[k : k + size] for k in range(0, len(rows), size)]


def _upstreams(configs, seeds, keys):
    """``{key: (W, final loss, steps, test error)}`` of every run's upstream
    stage: kept ones from earlier calls, the others trained, each once."""
    have = {key: _KEPT[key] for key in set(keys) if key in _KEPT}
    for key in have:
        _KEPT.move_to_end(key)
    first = {}
    for b, key in enumerate(keys):
        if key not in have:
            first.setdefault(key, b)
    groups = {}
    for b in first.values():
        groups.setdefault(transfer_shape(configs[b]), []).append(b)
    for (n, P, m, d), members in groups.items():
        q = n + P - 1 + 2 * m
        for ups in _chunks(members, 8 * (q * d + q * q + 2 * m * d)):
            counts = [keys[b][1] for b in ups]
            W, *rest = _upstream([configs[b] for b in ups], [seeds[b] for b in ups], counts)
            for k, b in enumerate(ups):
                w = W[k].copy()  # not a view: the memory kept is what is counted
                w.flags.writeable = False
                have[keys[b]] = (w, *(v[k] for v in rest))
                _keep(keys[b], have[keys[b]])
    return have


def _upstream(configs, seeds, counts):
    """Train the upstream stages; their final weights (R, 2, m, d), final
    losses, steps and clean test errors (``counts[b]`` draws; NaN for every
    run when the call asks for none, counts 0)."""
    c0 = configs[0]
    n, P, m, d = c0.n_up, c0.n_patches, c0.m, c0.d
    S = P - 1
    r, R = S + n, len(configs)
    Z = np.empty((R, r + 2 * m, d))
    G, sign, y = np.empty((R, r + 2 * m, r + 2 * m)), np.ones((R, n, P)), np.empty((R, n))
    E = np.zeros((R, r + 2 * m, 2))
    geometry = {}
    for b, (c, seed) in enumerate(zip(configs, seeds, strict=True)):
        signals, basis = _task_geometry(c, geometry)
        y[b], y_clean = _draw(c, seed, signals, basis, Z[b])
        sign[b, :, :S] = y_clean[:, None]
        np.matmul(Z[b], Z[b].T, out=G[b])
        E[b, :, : basis.shape[0]] = Z[b] @ basis.T
    res = train_batch(
        G,
        patch_index(n, S),
        sign,
        y,
        [c.eta_of("up") for c in configs],
        [c.steps_up for c in configs],
        [c.weight_decay_up for c in configs],
        [c.epsilon for c in configs],
    )
    W = res.weights(Z[:, :r], Z[:, r:].reshape(R, 2, m, d))
    err = np.full(R, np.nan)
    if min(counts) > 0:  # requested for every run of the call (run_transfer_batch)
        sigma_p = np.array([c.sigma_p_up for c in configs])
        err, _ = test_errors(G, E, res, S, sigma_p, np.asarray(counts), seeds)
    return W, res.loss[np.arange(R), res.last], res.last, err


def _downstream(configs, seeds, W_up, n_test):
    """``down`` (from the inherited weights) and ``scratch`` (from the fresh
    ones) of every run, 2R runs of one call; their outcomes."""
    c0 = configs[0]
    n, P, m2, d = c0.n_down, c0.n_patches, c0.m2, c0.d
    S = P - 1
    r, R, q = S + n, len(configs), S + n + 2 * m2
    Z = np.empty((2, R, q, d))  # [down, scratch]: V then the initial weights
    G, E = np.empty((2 * R, q, q)), np.zeros((2 * R, q, 2))
    sign, y, y_clean = np.ones((R, n, P)), np.empty((R, n)), np.empty((R, n))
    inherited = []
    for b, (c, seed) in enumerate(zip(configs, seeds, strict=True)):
        signals, basis = _down_geometry(c)
        rng = _rng(seed, "data_down")
        y[b], y_clean[b] = draw_task(rng, n, c.sigma_p_down, c.flip_down, signals, basis, Z[0, b])
        sign[b, :, :S] = y_clean[b][:, None]
        fresh = c.sigma_0 * _rng(seed, "init_down").standard_normal((2, m2, d))
        W0, inh, _ = inherit(
            W_up[b], fresh, c.alpha, _rng(seed, "transfer"), c.granularity, c.rescale_inherited
        )
        inherited.append(inh)
        Z[1, b, :r] = Z[0, b, :r]
        Z[0, b, r:], Z[1, b, r:] = W0.reshape(2 * m2, d), fresh.reshape(2 * m2, d)
        for k in (0, 1):
            np.matmul(Z[k, b], Z[k, b].T, out=G[k * R + b])
            E[k * R + b, :, : basis.shape[0]] = Z[k, b] @ basis.T
    eta = [c.eta_of("down") for c in configs] + [c.eta_of("scratch") for c in configs]
    res = train_batch(
        G,
        patch_index(n, S),
        np.concatenate([sign, sign]),
        np.concatenate([y, y]),
        eta,
        [c.steps_down for c in configs] * 2,
        [c.weight_decay for c in configs] * 2,
        [c.epsilon for c in configs] * 2,
    )
    counts = np.array([c.n_test if n_test is None else n_test for c in configs] * 2)
    sigma_p = np.array([c.sigma_p_down for c in configs] * 2)
    err, _ = test_errors(G, E, res, S, sigma_p, counts, list(seeds) * 2)
    flip = np.array([c.flip_down for c in configs] * 2)
    noisy = flip + (1.0 - 2.0 * flip) * err
    loss = res.loss[np.arange(2 * R), res.last]
    flipped = y != y_clean
    dead = [_dead(G[b], sign[b], y[b], flipped[b], m2, r, inh) for b, inh in enumerate(inherited)]
    return {
        "err_transfer": err[:R],
        "err_scratch": err[R:],
        "noisy_transfer": noisy[:R],
        "noisy_scratch": noisy[R:],
        "gain": err[R:] - err[:R],
        "loss_down": loss[:R],
        "loss_scratch": loss[R:],
        "steps_down": res.last[:R],
        "steps_scratch": res.last[R:],
        "n_flipped": flipped.sum(axis=1),
        "dead_points": [a for a, _ in dead],
        "dead_inherited": [b for _, b in dead],
    }


def _down_geometry(config):
    """(signals, noise basis) of a config's downstream task."""
    c = config
    u, _, v = signal_vectors(c.d, c.u_norm, c.v_up_norm, c.v_down_norm, c.v_cos)
    return task_signals(u, v, c.layout), noise_basis(u, v)


def _dead(G, sign, y, flipped, m, r, inherited):
    """:func:`refimpl.lab.measures.dead_points` at the start of fine-tuning,
    every filter and the inherited ones, from the Gram matrix: the
    pre-activation of filter k on patch (i, p) is sign[i, p] G[a(i, p), r + k]."""
    n, P = sign.shape
    index = patch_index(n, P - 1)
    pre = sign[None, :, :] * G[index, r + np.arange(2 * m)[:, None, None]]  # (2m, n, P)
    silent = (pre <= 0).all(axis=2).reshape(2, m, n)
    inh = inherited_filters(inherited)
    return [count_dead(silent, y, flipped), count_dead(silent, y, flipped, inh)]
