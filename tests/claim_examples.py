"""Synthetic measurements for the claims' tests and the registry test.

A claim's test file defines ``examples(size) -> {"PASS": m, "FAIL": m}``,
measurements shaped as its ``measure(size, sweep)`` returns them; the
helpers here build them for the claims that share a procedure.
:class:`RecordingSweep` stands in for a claim's sweep in the tests of
``measure``."""

from __future__ import annotations

import types

import numpy as np

from refimpl.claims import _base as B


class RecordingSweep:
    """A claim's sweep that records its calls (``calls``: a list of (configs,
    keywords)) and answers ``values(metric)`` with ``scale`` x item +
    ``seed_step`` x seed (+ ``offsets[metric]``), shape (items, seeds)."""

    def __init__(self, seeds, scale=100.0, seed_step=1.0, offsets=None):
        self.calls, self.seeds, self.scale, self.seed_step = [], seeds, scale, seed_step
        self.offsets = offsets or {}

    def __call__(self, configs, **kwargs):
        self.calls.append((list(configs), kwargs))
        items, seeds = np.arange(len(configs))[:, None], np.arange(self.seeds)[None, :]
        grid = self.scale * items + self.seed_step * seeds
        return types.SimpleNamespace(values=lambda metric: grid + self.offsets.get(metric, 0.0))


def rising(points, seeds):
    """Gains strictly rising over the points in every seed block, with
    distinct values: 0.01 k + 0.001 r at point k, seed r."""
    k, r = np.arange(points)[:, None], np.arange(seeds)[None, :]
    return 0.01 * k + 0.001 * r


def trend_measurements(size, gain_of_panel, extra=()):
    """``{panel: {rule: {metric: (points, seeds)}}}`` as
    :func:`refimpl.claims._trend.trend_measure` returns it: err_scratch 0.3,
    err_transfer 0.3 - gain, both losses 1e-4 (no stall), steps at the cap;
    ``gain_of_panel(points, seeds)`` gives the gains; ``extra`` metrics
    are 1 everywhere."""
    out = {}
    for panel, grid in size.configs.items():
        gain = gain_of_panel(len(grid), size.seeds)
        ones = np.ones_like(gain)
        metrics = {
            "gain": gain,
            "err_transfer": 0.3 - gain,
            "err_scratch": 0.3 * ones,
            "loss_down": 1e-4 * ones,
            "loss_scratch": 1e-4 * ones,
            "steps_down": 100 * ones,
            "steps_scratch": 100 * ones,
            "loss_up": 1e-4 * ones,
            "steps_up": 100 * ones,
        }
        metrics.update({m: ones for m in extra})
        assert set(metrics) >= set(B.RUN_METRICS)
        out[panel] = {r: dict(metrics) for r in B.RULES}
    return out


def trend_examples(size, alternative, extra=()):
    """PASS: the gains move in the predicted direction in every block; FAIL:
    the opposite direction."""
    up = trend_measurements(size, rising, extra)
    down = trend_measurements(size, lambda k, s: rising(k, s)[::-1], extra)
    return {"PASS": up, "FAIL": down} if alternative == "greater" else {"PASS": down, "FAIL": up}


def gamma_measurements(size, prob_of, seed=0):
    """``{design: {metric: (configs, seeds)}}`` as
    :func:`refimpl.claims._gamma.measure` returns it: each run's gain is
    +0.05 with probability ``prob_of(configs)`` (per config) and -0.05
    otherwise, errors near 0.2, every loss 0.005 (nothing stalled)."""
    rng, out = np.random.default_rng(seed), {}
    for part, configs in size.configs.items():
        n = size.seeds[part]
        positive = rng.random((len(configs), n)) < np.asarray(prob_of(configs))[:, None]
        et = 0.2 + 0.001 * rng.random((len(configs), n))
        loss = np.full(et.shape, 0.005)
        out[part] = {
            "err_transfer": et,
            "err_scratch": et + np.where(positive, 0.05, -0.05),
            "loss_down": loss,
            "loss_scratch": loss.copy(),
            "loss_up": loss.copy(),
            "steps_up": np.full(et.shape, 100.0),
        }
    return out


def logistic_in(key, width, centre=None):
    """``prob_of`` for :func:`gamma_measurements`: P(gain > 0) a logistic in
    log10 of candidate ``key`` (refimpl.claims._gamma.candidates) with the
    10-90% width ``width`` decades, centred at ``centre`` (None: 10^-1.45,
    near the median of the full confirmation cells' Gamma_inh)."""
    from refimpl.claims import _gamma as G

    def prob(configs):
        x = G.candidates(configs)[key]
        c = -1.45 if centre is None else centre
        return 1 / (1 + np.exp(-(x - c) * 2 * np.log(9) / width))

    return prob


def gamma_examples(size, key="gamma_inh"):
    """PASS (full size): the sign follows a logistic in log10 Gamma_inh of
    width 1 decade, the same at every scale. FAIL: it follows the parity of
    p_2 (0: helps with probability 0.9, 0.1: with 0.1), which no candidate carries."""

    def parity(configs):
        return np.array([0.9 if c.flip_down == 0 else 0.1 for c in configs])

    fail = {"FAIL": gamma_measurements(size, parity)}
    return (
        fail
        if size.seeds["confirm"] < 16
        else fail | {"PASS": gamma_measurements(size, logistic_in(key, 1.0))}
    )
