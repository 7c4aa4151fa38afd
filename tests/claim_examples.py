"""Synthetic measurements for the claims' tests and the registry test.

A claim's test file defines ``examples(size) -> {"PASS": m, "FAIL": m}``,
measurements shaped as its ``measure(size, sweep)`` returns them; the
helpers here build them for the claims that share a procedure."""

from __future__ import annotations

import numpy as np

from refimpl.claims import _base as B


def rising(points, seeds):
    """Gains strictly rising over the points in every seed block, with
    distinct values: 0.01 k + 0.001 r at point k, seed r."""
    k, r = np.arange(points)[:, None], np.arange(seeds)[None, :]
    return 0.01 * k + 0.001 * r


def trend_measurements(size, gain_of_panel, extra=()):
    """``{panel: {rule: {metric: (points, seeds)}}}`` as
    :func:`refimpl.claims._base.trend_measure` returns it: err_scratch 0.3,
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
