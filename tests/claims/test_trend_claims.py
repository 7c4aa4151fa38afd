"""The trend claims' one procedure (:func:`refimpl.claims._trend.trend_decision`)
and the direction each claim predicts, on hand-made gains with known answers.

Page's L test, exact, when every one of b blocks is perfectly ordered as
predicted over k points: p = (1/k!)^b (the largest L, reached only so); a
perfectly reversed order gives the smallest L, p = 1."""

from __future__ import annotations

import math
import types

import numpy as np
import pytest

from refimpl.claims import _base as B
from refimpl.claims import _trend as T
from refimpl.claims import gain_noise_dim, gain_shared, gain_upstream_n

NAN = float("nan")
UP = np.array([[0.0, 0.01, 0.02], [0.1, 0.12, 0.11], [0.2, 0.25, 0.3]])  # every seed rising
X3 = [1.0, 2.0, 4.0]


def page_perfect(k, b):
    """Exact Page p of b perfectly ordered blocks over k points."""
    return (1 / math.factorial(k)) ** b


def approx(x):
    return pytest.approx(x, rel=1e-9, abs=1e-15)


def decide(x, steps, loss=None, alternative="greater"):
    """trend_decision on one panel "p" under one or both rules."""
    rules = {"steps": steps} if loss is None else {"steps": steps, "loss": loss}
    return T.trend_decision({"p": x}, {"p": rules}, alternative)


@pytest.mark.parametrize(
    "x, gain, p, verdict",
    [
        (X3, UP, page_perfect(3, 3), "PASS"),  # 1/216 < 0.01
        (X3, UP[:, :2], page_perfect(3, 2), "FAIL"),  # 1/36: two seeds are too few
        (X3, UP[:, :1], 1.0, "FAIL"),  # one seed: no test
        (X3, UP[::-1], 1.0, "FAIL"),  # falling: the smallest L
        ([10, 20, 40, 80], [[0, 1], [1, 2], [2, 3], [3, 4]], page_perfect(4, 2), "PASS"),
    ],
)
def test_page_trend_one_rule(x, gain, p, verdict):
    d = decide(x, np.asarray(gain, float))
    assert d["trend"]["p"]["steps"]["p"] == approx(p)
    assert d["verdict"] == verdict and d["missing"] == 0
    assert verdict == "FAIL" or d["trend"]["p"]["steps"]["rho"] == approx(1.0)


@pytest.mark.parametrize(
    "steps, loss, verdict",
    [
        (UP, UP, "PASS"),  # 1/216 under each rule
        (UP, UP[:, :2], "FAIL"),  # 1/36 at equal loss: two seeds are too few
        (UP, UP[::-1], "FAIL"),  # falls at equal loss
        (UP[::-1], UP, "FAIL"),  # falls at fixed T
    ],
)
def test_the_trend_must_hold_under_both_stopping_rules(steps, loss, verdict):
    d = decide(X3, steps, loss)
    assert d["verdict"] == d["verdict_tests"] == verdict and d["missing"] == 0
    for rule, g in (("steps", steps), ("loss", loss)):
        tr, holds = d["trend"]["p"][rule], d["holds"]["p"][rule]
        if g is UP:
            assert tr["p"] == approx(page_perfect(3, 3)) and holds
        elif g.shape[1] == 2:
            assert tr["p"] == approx(page_perfect(3, 2)) and not holds
        else:
            assert tr["p"] == approx(1.0) and not holds


def test_falling_is_predicted_with_less():
    assert decide(X3, UP[::-1], alternative="less")["verdict"] == "PASS"
    assert decide(X3, UP, alternative="less")["verdict"] == "FAIL"


def test_missing_values_are_counted_across_rules_and_panels_and_fail():
    loss = UP.tolist()
    loss[1][2] = None
    steps = UP.copy()
    steps[0, 0] = NAN
    gains = {"a": {"steps": UP, "loss": loss}, "b": {"steps": steps, "loss": UP}}
    d = T.trend_decision({"a": X3, "b": X3}, gains, "greater")
    assert d["missing"] == 2 and d["verdict"] == "FAIL" and d["verdict_tests"] == "FAIL"
    assert math.isnan(d["trend"]["a"]["loss"]["p"])
    assert d["trend"]["a"]["steps"]["p"] == approx(1 / 216)


def test_every_panel_must_hold():
    gains = {"a": {"steps": UP, "loss": UP}, "b": {"steps": UP, "loss": UP[::-1]}}
    d = T.trend_decision({"a": X3, "b": X3}, gains, "greater")
    assert d["verdict"] == "FAIL" and d["holds"]["a"]["loss"] and not d["holds"]["b"]["loss"]


@pytest.mark.parametrize(
    "mod, alternative",
    [(gain_shared, "greater"), (gain_upstream_n, "greater"), (gain_noise_dim, "less")],
)
def test_each_claim_predicts_its_direction_in_every_panel(mod, alternative):
    size = mod.PROTOCOL.quick
    rising = {p: {r: {"gain": UP} for r in B.RULES} for p in size.configs}
    falling = {p: {r: {"gain": UP[::-1]} for r in B.RULES} for p in size.configs}
    three = types.SimpleNamespace(x={p: X3 for p in size.configs})
    good, bad = (rising, falling) if alternative == "greater" else (falling, rising)
    assert mod.decide(three, good)["verdict"] == "PASS"
    assert mod.decide(three, bad)["verdict"] == "FAIL"
