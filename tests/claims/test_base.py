"""The shared procedures of the claims (refimpl/claims/_base.py, and the
trend claims' measure of _trend.py) on hand-made values with known answers
(the trend decision: test_trend_claims.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from claim_examples import RecordingSweep

from refimpl.claims import _base as B
from refimpl.claims import _trend as T

NAN = float("nan")


def test_stalled_runs_are_those_above_the_loss_target():
    got = B.stalled([[1e-3, 2e-3, 5e-4], [NAN, 0.07, 1e-3]], 1e-3)
    assert np.array_equal(got[0], [0, 1, 0]) and math.isnan(got[1, 0])
    assert np.array_equal(got[1, 1:], [1, 0])  # met at the cap: reached


def test_point_summary_puts_mean_median_and_failure_rate_side_by_side():
    # err_transfer: two good runs and one failure (0.26 > 0.2); err_scratch 0.25 each
    et = np.array([[0.01, 0.03, 0.26]])
    es = np.full((1, 3), 0.25)
    s = B.point_summary(et, es, [[5e-4, 5e-4, 0.07]], [[5e-4] * 3], 1e-3)
    assert s["err_transfer_mean"][0] == pytest.approx(0.1, rel=1e-12)
    assert s["err_transfer_median"][0] == pytest.approx(0.03)
    assert s["fail_transfer"][0] == pytest.approx(1 / 3) and s["fail_scratch"][0] == 1.0
    assert s["gain_median"][0] == pytest.approx(0.22) and s["gain_mean"][0] == pytest.approx(0.15)
    assert s["stalled_transfer"][0] == 1 and s["stalled_scratch"][0] == 0
    # gains 0.24, 0.22, -0.01: the negative one has the smallest magnitude: p = 2/2^3
    assert s["p_gain_wilcoxon"][0] == pytest.approx(2 / 8)


def test_as_float_reads_none_as_nan_at_any_depth():
    got = B.as_float([[1, None], (2.5, 3)])
    assert got.dtype == float and got.shape == (2, 2) and math.isnan(got[0, 1])
    assert got[1].tolist() == [2.5, 3.0]


def test_trend_measure_batched_runs_both_rules_in_one_batched_sweep():
    """batched=True: per panel one sweep of "outcomes_batched" over the configs
    as they are (fixed T) and with the loss target and cap (equal loss), the
    stopping-rule fields common so both rules share seeds; item-by-item: two
    sweeps, the second of measure_at_loss on the configs as they are."""
    from refimpl.config import Config

    grid = [Config(d=400, u_norm=u) for u in (1.0, 2.0)]
    size = type("Size", (), {"configs": {"p": grid}, "loss_cap": 77})()
    sweep = RecordingSweep(3)
    out = T.trend_measure(size, sweep, {"p": ("u_norm",)}, ("gain",), batched=True)
    ((configs, kw),) = sweep.calls
    assert kw["measure"] == "outcomes_batched" and kw["common"] == ("u_norm", *B.STOP_FIELDS)
    assert kw["options"] == {"upstream_error": False}  # err_up not asked for
    assert configs[:2] == grid
    assert configs[2:] == [c.replace(epsilon=B.EPSILON, steps_down=77) for c in grid]
    assert out["p"]["steps"]["gain"].tolist() == [[0, 1, 2], [100, 101, 102]]
    assert out["p"]["loss"]["gain"].tolist() == [[200, 201, 202], [300, 301, 302]]
    sweep = RecordingSweep(3)
    T.trend_measure(size, sweep, {"p": ("u_norm",)}, ("gain", "err_up"), batched=True)
    assert sweep.calls[0][1]["options"] == {"upstream_error": True}  # as gain_noise_dim asks
    sweep = RecordingSweep(3)
    T.trend_measure(size, sweep, {"p": ("u_norm",)}, ("gain",))
    (fixed, kw1), (loss, kw2) = sweep.calls
    assert fixed == loss == grid and "measure" not in kw1
    assert kw2["measure"] is B.measure_at_loss and kw2["options"] == {
        "epsilon": B.EPSILON,
        "cap": 77,
    }


def test_batched_equal_loss_runs_are_measure_at_loss_runs():
    """rule_sweeps(batched=True)'s equal-loss measure runs what measure_at_loss
    runs (the same config change and seed) and gives the same flags; item by
    item it is measure_at_loss."""
    from refimpl.config import Config
    from refimpl.lab.measures import measure_outcomes_batched

    rules = B.rule_sweeps(0.05, 30, batched=True)
    assert rules["steps"] == {"measure": "outcomes_batched"}
    assert rules["loss"]["options"] == {"epsilon": 0.05, "cap": 30}
    assert B.rule_sweeps(0.05, 30)["loss"]["measure"] is B.measure_at_loss
    small = dict(d=60, m=3, n_up=12, n_down=6, eta=0.3, steps_up=40, steps_down=40, n_test=600)
    configs = [Config(**small, flip_down=0.2, alpha=a, seed=9) for a in (0.0, 0.5)]
    configs.append(Config(**small, u_norm=0.3, seed=4))  # upstream not stopped at 0.05
    flags = set()
    for cap in (30, 100):  # 30: every run stalls at 0.05; 100: none
        got = measure_outcomes_batched(configs, epsilon=0.05, cap=cap)
        for c, g in zip(configs, got, strict=True):
            ref = B.measure_at_loss(c, epsilon=0.05, cap=cap)
            for key in ("stalled_transfer", "stalled_scratch", "up_stopped_early"):
                assert g[key] == ref[key], key
                flags.add((key, g[key]))
            for key in ("steps_up", "steps_down", "steps_scratch"):
                assert g[key] == ref[key], key
            for key in ("loss_up", "loss_down", "loss_scratch"):
                assert g[key] == pytest.approx(ref[key], rel=1e-9), key
    assert len(flags) == 6  # each flag seen as 0 and as 1
