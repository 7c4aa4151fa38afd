"""The claim ``bayes``: its pure decision on hand-made excess errors with known
answers, its protocol and grid, and one quick end-to-end run.

Known p-values: the one-sided Wilcoxon signed-rank test of n paired
differences, all positive and of distinct magnitudes (no ties: the exact
null distribution), has p = 1 / 2^n (only the all-positive sign pattern
reaches the largest W+). n = 8 gives 1/256 < 0.01; n = 4 gives 1/16.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from refimpl.claims import bayes
from refimpl.lab import stats as S

X = [10, 50, 200]
SEEDS = 8


def distinct(level, n=SEEDS, scale=1e-4):
    """n values level + scale * (1, ..., n): distinct magnitudes, median
    level + scale * (n + 1) / 2."""
    return level + scale * np.arange(1, n + 1)


def panel(bottom=0.10, middle=0.05, top=0.002, scratch=0.15, scratch_top=None, n=SEEDS):
    """Transfer and scratch excess, shape (3, n), at X (bottom to top)."""
    t = np.stack([distinct(bottom, n), distinct(middle, n), distinct(top, n)])
    s_top = scratch if scratch_top is None else scratch_top
    s = np.stack([distinct(scratch, n, 3e-4), distinct(scratch, n, 3e-4), distinct(s_top, n, 3e-4)])
    return t, s


def both(t, s, t_loss=None, s_loss=None):
    """The same values under both rules unless the loss rule is given."""
    return (
        {"steps": t, "loss": t if t_loss is None else t_loss},
        {"steps": s, "loss": s if s_loss is None else s_loss},
    )


def test_pass_with_the_exact_wilcoxon_p():
    dec = bayes.decide(X, *both(*panel()))
    assert dec["verdict"] == dec["verdict_tests"] == "PASS" and dec["missing"] == 0
    for r in ("steps", "loss"):
        d = dec["rules"][r]
        assert d["wilcoxon"]["p"] == pytest.approx(1 / 2**SEEDS, rel=1e-9)
        assert d["conditions"] == {"above": True, "scratch_sub_bayes": True, "crossed": True}
        assert d["median_transfer"][2] == pytest.approx(0.002 + 4.5e-4)
        assert d["bayes_transfer"].tolist() == [0.0, 0.0, 1.0]
        assert d["bayes_scratch"].tolist() == [0.0, 0.0, 0.0]
        # the reported trend: every seed decreasing over x, exact Page p = (1/3!)^8
        assert d["trend"]["rho"] == pytest.approx(-1.0)
        assert d["trend"]["p"] == pytest.approx((1 / 6) ** SEEDS, rel=1e-6)


@pytest.mark.parametrize(
    "changes, failing",
    [
        ({"top": 0.02}, "above"),  # (i) transfer not at Bayes at the top
        ({"top": 0.0096}, "above"),  # median 0.01005: just above DELTA
        ({"scratch_top": 0.004}, "scratch_sub_bayes"),  # (ii) scratch at Bayes at the top
        ({"scratch_top": 0.045}, "scratch_sub_bayes"),  # (ii) median 0.04635 < GAP
        ({"bottom": 0.004}, "crossed"),  # (iii) transfer at Bayes at the bottom
        ({"bottom": 0.045}, "crossed"),  # (iii) median 0.04545 < GAP
    ],
)
def test_each_condition_fails_on_its_own(changes, failing):
    dec = bayes.decide(X, *both(*panel(**changes)))
    assert dec["verdict"] == dec["verdict_tests"] == "FAIL"
    for r in ("steps", "loss"):
        cond = dec["rules"][r]["conditions"]
        assert cond == {k: k != failing for k in bayes.CONDITIONS}


def test_scratch_far_above_but_too_few_seeds_for_the_test():
    """(ii) needs the Wilcoxon test too: 4 seeds give p = 1/16 at best."""
    dec = bayes.decide(X, *both(*panel(n=4)))
    d = dec["rules"]["steps"]
    assert d["wilcoxon"]["p"] == pytest.approx(1 / 16)
    assert d["conditions"] == {"above": True, "scratch_sub_bayes": False, "crossed": True}
    assert dec["verdict"] == "FAIL"


def test_the_thresholds_are_inclusive():
    t, s = panel()
    t[2] = [0.0, 0.0, 0.0, bayes.DELTA, bayes.DELTA, 0.02, 0.02, 0.02]  # median DELTA
    t[0] = bayes.GAP  # median GAP
    dec = bayes.decide(X, *both(t, s))
    assert dec["verdict"] == "PASS"


@pytest.mark.parametrize("failing_rule", ["steps", "loss"])
def test_one_rule_failing_fails_the_verdict(failing_rule):
    good, bad = panel(), panel(top=0.02)
    t = {r: (bad if r == failing_rule else good)[0] for r in ("steps", "loss")}
    s = {r: (bad if r == failing_rule else good)[1] for r in ("steps", "loss")}
    dec = bayes.decide(X, t, s)
    assert dec["verdict"] == "FAIL"
    assert {r: dec["rules"][r]["holds"] for r in t} == {r: r != failing_rule for r in t}


@pytest.mark.parametrize("where", ["transfer", "scratch"])
def test_a_missing_value_fails_and_is_counted(where):
    t, s = panel()
    target = t if where == "transfer" else s
    target = target.astype(object)
    target[1, 3] = None  # a point outside the conditions
    target[1, 4] = float("nan")
    args = (target, s) if where == "transfer" else (t, target)
    dec = bayes.decide(X, *both(*args))
    assert dec["missing"] == 4  # two values under each rule
    assert dec["verdict"] == "FAIL" and dec["verdict_tests"] == "PASS"


def test_a_missing_value_at_the_top_fails_the_wilcoxon_test():
    t, s = panel()
    s = s.copy()
    s[2, 0] = np.nan
    dec = bayes.decide(X, *both(t, s))
    assert math.isnan(dec["rules"]["steps"]["wilcoxon"]["p"])
    assert dec["verdict"] == dec["verdict_tests"] == "FAIL"


def test_above_and_below_follow_x_not_the_row_order():
    """The |u| panel, or any unsorted grid: the largest x is 'above'."""
    t, s = panel()
    dec = bayes.decide(X[::-1], *both(t[::-1], s[::-1]))
    assert dec["verdict"] == "PASS"
    dec = bayes.decide(X[::-1], *both(t, s))  # the bottom values now sit at the top
    assert dec["verdict"] == "FAIL"
    assert dec["rules"]["steps"]["conditions"]["above"] is False


def test_protocol_and_grid():
    p = bayes.PROTOCOL
    assert p.claim == bayes.NAME and p.fixed == "2026-11-29" and p.seeds == bayes.SEEDS == 40
    assert str(S.SIGNIFICANCE) in p.pass_rule and len(p.hash) == 12
    assert bayes.SOURCE == "paper"
    assert max(bayes.NS) <= 600 - 2 and max(bayes.QUICK_NS) <= 120 - 2
    for quick in (False, True):
        base, panels = bayes.panel_configs(quick)
        assert base.flip_down == 0.1 and base.flip_up == 0.0 and base.u_norm == 2.0
        assert base.n_up == (40 if quick else 200)
        ns, grid = panels["n_up"]
        assert [c.n_up for c in grid] == ns
        assert all(c.replace(n_up=base.n_up) == base for c in grid)  # only N_1 moves
        us, grid = panels["share"]
        assert us[0] == 0.0 and us[-1] == pytest.approx(math.sqrt(5))
        for c in grid:
            assert c.u_norm**2 + c.v_down_norm**2 == pytest.approx(5.0)
            assert c.v_up_norm == c.v_down_norm and c.n_up == base.n_up


def test_quick_run_end_to_end(tmp_path):
    res = bayes.run(tmp_path, quick=True, jobs=1)
    assert res["source"] == "paper" and res["verdict"] in ("PASS", "FAIL")
    assert res["name"] == "bayes" and f"**Verdict: {res['verdict']}**" in res["markdown"]
    path = tmp_path / "bayes" / "bayes.json"
    data = json.loads(path.read_text())
    assert data["verdict"] == res["verdict"] and data["quick"] is True
    assert (tmp_path / "bayes" / "bayes.csv").is_file()
    # common random numbers across N_1: scratch is the same run at every N_1
    scratch = np.array(data["panels"]["n_up"]["per_seed"]["steps"]["noisy_scratch"], float)
    assert np.all(scratch == scratch[0])
    transfer = np.array(data["panels"]["n_up"]["per_seed"]["steps"]["noisy_transfer"], float)
    assert not np.all(transfer == transfer[0])
