"""The claim ``bayes``: its declared protocol and panels, the pure three
conditions of a panel (:func:`conditions`) and ``decide(size, measurements)``
on hand-made excess errors with known answers, the shared one-sweep stopping
rules, and one quick end-to-end run.

Known p-values: the one-sided Wilcoxon signed-rank test of n paired
differences, all positive and of distinct magnitudes (no ties: the exact
null distribution), has p = 1 / 2^n (only the all-positive sign pattern
reaches the largest W+). n = 8 gives 1/256 < 0.01; n = 4 gives 1/16.
Page's test with b blocks, each strictly decreasing over 3 points, has the
exact one-sided p = (1/3!)^b (only that ordering in every block reaches L).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from refimpl.claims import _base as B
from refimpl.claims import bayes
from refimpl.lab import stats as S
from refimpl.lab.claim import ClaimSweep, Protocol, Size, run_claim

X = [10, 50, 200]
SEEDS = 8
P_DOWN = 0.1
RULES = ("steps", "loss")


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


# ----------------------------------------------------------------------
# measurements shaped as measure(size, sweep) returns them
def _rule(t, s, stalled=False):
    """All metrics of one rule from the excess errors (points, seeds) at p_2 = P_DOWN."""
    t, s = np.asarray(t, float), np.asarray(s, float)
    loss = np.full(t.shape, 1e-2 if stalled else 1e-4)  # epsilon = 1e-3: stalled above it
    return {
        "noisy_transfer": P_DOWN + t,
        "noisy_scratch": P_DOWN + s,
        "err_transfer": t / (1 - 2 * P_DOWN),  # noisy = p + (1 - 2p) clean
        "err_scratch": s / (1 - 2 * P_DOWN),
        "loss_down": loss,
        "loss_scratch": loss,
        "steps_down": np.full(t.shape, 100.0),
        "steps_scratch": np.full(t.shape, 150.0),
    }


def measurements(n_up, share=None, stalled=False):
    """``{panel: {rule: {metric: (points, seeds)}}}`` from (transfer, scratch)
    excess per panel (the share panel as the N_1 panel unless given)."""
    share = n_up if share is None else share
    return {
        p: {r: _rule(*v, stalled=stalled and r == "loss") for r in RULES}
        for p, v in (("n_up", n_up), ("share", share))
    }


def examples(size):
    """Synthetic measurements of ``size`` with a PASS and a FAIL verdict.

    Seeds: ``size.seeds``, but at least 8: with fewer than 7 the one-sided
    Wilcoxon p cannot fall below 0.01 (1/2^n), so no PASS exists at the
    quick size's 4 seeds. PASS: the transfer excess falls from 0.10 at the
    smallest x to 0.002 at the largest, scratch stays at 0.15 (condition
    (ii): 8 positive distinct differences). FAIL: the transfer excess is 0.03
    everywhere (not at Bayes at the top, (i); not >= GAP at the bottom,
    (iii)), and the equal-loss runs stall."""
    n = max(int(size.seeds), 8)
    out = {}
    for verdict, (bottom, top) in {"PASS": (0.10, 0.002), "FAIL": (0.03, 0.03)}.items():
        excess = {}
        for p in bayes.PANELS:
            k = len(size.x[p])
            t = np.linspace(bottom, top, k)[:, None] + 1e-4 * np.arange(1, n + 1)
            excess[p] = (t, np.tile(distinct(0.15, n, 3e-4), (k, 1)))
        out[verdict] = measurements(excess["n_up"], excess["share"], stalled=verdict == "FAIL")
    return out


def quick_size(x):
    """The quick size's configs with the swept values ``x`` on both panels."""
    q = bayes.PROTOCOL.quick
    return Size(q.configs, SEEDS, x={"n_up": x, "share": x}, loss_cap=q.loss_cap)


# ----------------------------------------------------------------------
# the protocol and its panels
def test_protocol_is_declared():
    p = bayes.PROTOCOL
    assert isinstance(p, Protocol) and p.name == "bayes" and p.source == "paper"
    assert p.fixed == "2026-11-29" and p.full.seeds == 40 and p.quick.seeds == 4
    assert p.hash_scheme1 == "db9e1b7914b8"  # the committed full-size hash
    assert p.hash(quick=True) != p.hash() and len(p.hash()) == 12
    assert p.salt == "bayes-v1" and p.disclosures == ()
    assert str(S.SIGNIFICANCE) in p.pass_rule and "Wilcoxon" in p.statistic
    assert bayes.DELTA == 0.01 and bayes.GAP == 0.05
    json.dumps(p.to_dict(), allow_nan=False)
    assert not any(hasattr(bayes, k) for k in ("NAME", "CLAIM", "SOURCE", "run"))


def test_the_panels_move_one_factor():
    full, quick = bayes.PROTOCOL.full, bayes.PROTOCOL.quick
    assert full.x["n_up"] == [10, 20, 50, 100, 200, 400, 590] and quick.x["n_up"] == [10, 40, 100]
    assert full.x["share"][-1] == quick.x["share"][-1] == pytest.approx(math.sqrt(5))
    assert (full.loss_cap, quick.loss_cap) == (2000, 600)
    for size, d, n_up in ((full, 600, 200), (quick, 120, 40)):
        ns, us = size.x["n_up"], size.x["share"]
        assert max(ns) <= d - 2
        grid = size.configs["n_up"]
        assert [c.n_up for c in grid] == ns
        base = grid[0].replace(n_up=n_up)
        assert base.flip_down == 0.1 and base.flip_up == 0.0 and base.u_norm == 2.0
        assert base.engine == "auto" and base.d == d
        assert all(c.replace(n_up=n_up) == base for c in grid)  # only N_1 moves
        assert us[0] == 0.0 and [c.u_norm for c in size.configs["share"]] == us
        for c in size.configs["share"]:
            assert c.u_norm**2 + c.v_down_norm**2 == pytest.approx(5.0)
            assert c.v_up_norm == c.v_down_norm and c.n_up == n_up
            assert c.replace(u_norm=2.0, v_up_norm=1.0, v_down_norm=1.0) == base


# ----------------------------------------------------------------------
# the three conditions of a panel
def test_pass_with_the_exact_wilcoxon_p():
    dec = bayes.conditions(X, *both(*panel()))
    assert dec["verdict"] == dec["verdict_tests"] == "PASS" and dec["missing"] == 0
    for r in RULES:
        d = dec["rules"][r]
        assert d["wilcoxon"]["p"] == pytest.approx(1 / 2**SEEDS, rel=1e-9)
        assert d["conditions"] == {"above": True, "scratch_sub_bayes": True, "crossed": True}
        assert d["median_transfer"][2] == pytest.approx(0.002 + 4.5e-4)
        assert d["bayes_transfer"].tolist() == [0.0, 0.0, 1.0]
        assert d["bayes_scratch"].tolist() == [0.0, 0.0, 0.0]
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
    dec = bayes.conditions(X, *both(*panel(**changes)))
    assert dec["verdict"] == dec["verdict_tests"] == "FAIL"
    for r in RULES:
        cond = dec["rules"][r]["conditions"]
        assert cond == {k: k != failing for k in bayes.CONDITIONS}


def test_scratch_far_above_but_too_few_seeds_for_the_test():
    """(ii) needs the Wilcoxon test too: 4 seeds give p = 1/16 at best."""
    dec = bayes.conditions(X, *both(*panel(n=4)))
    d = dec["rules"]["steps"]
    assert d["wilcoxon"]["p"] == pytest.approx(1 / 16)
    assert d["conditions"] == {"above": True, "scratch_sub_bayes": False, "crossed": True}
    assert dec["verdict"] == "FAIL"


def test_the_thresholds_are_inclusive():
    t, s = panel()
    t[2] = [0.0, 0.0, 0.0, bayes.DELTA, bayes.DELTA, 0.02, 0.02, 0.02]  # median DELTA
    t[0] = bayes.GAP  # median GAP
    assert bayes.conditions(X, *both(t, s))["verdict"] == "PASS"


@pytest.mark.parametrize("failing_rule", RULES)
def test_one_rule_failing_fails_the_verdict(failing_rule):
    good, bad = panel(), panel(top=0.02)
    t = {r: (bad if r == failing_rule else good)[0] for r in RULES}
    s = {r: (bad if r == failing_rule else good)[1] for r in RULES}
    dec = bayes.conditions(X, t, s)
    assert dec["verdict"] == "FAIL"
    assert {r: dec["rules"][r]["holds"] for r in t} == {r: r != failing_rule for r in t}


@pytest.mark.parametrize("where", ["transfer", "scratch"])
def test_a_missing_value_fails_and_is_counted(where):
    t, s = panel()
    target = (t if where == "transfer" else s).astype(object)
    target[1, 3] = None  # a point outside the conditions
    target[1, 4] = float("nan")
    args = (target, s) if where == "transfer" else (t, target)
    dec = bayes.conditions(X, *both(*args))
    assert dec["missing"] == 4  # two values under each rule
    assert dec["verdict"] == "FAIL" and dec["verdict_tests"] == "PASS"


def test_a_missing_value_at_the_top_fails_the_wilcoxon_test():
    t, s = panel()
    s[2, 0] = np.nan
    dec = bayes.conditions(X, *both(t, s))
    assert math.isnan(dec["rules"]["steps"]["wilcoxon"]["p"])
    assert dec["verdict"] == dec["verdict_tests"] == "FAIL"


def test_above_and_below_follow_x_not_the_row_order():
    """The |u| panel, or any unsorted grid: the largest x is 'above'."""
    t, s = panel()
    assert bayes.conditions(X[::-1], *both(t[::-1], s[::-1]))["verdict"] == "PASS"
    dec = bayes.conditions(X[::-1], *both(t, s))  # the bottom values now sit at the top
    assert dec["verdict"] == "FAIL"
    assert dec["rules"]["steps"]["conditions"]["above"] is False


# ----------------------------------------------------------------------
# decide(size, measurements)
def test_decide_reads_the_excess_over_p2_of_the_n_up_panel():
    dec = bayes.decide(quick_size(X), measurements(panel()))
    assert dec["verdict"] == dec["verdict_tests"] == "PASS" and dec["missing"] == 0
    d = dec["panels"]["n_up"]["rules"]["steps"]
    assert d["median_transfer"][2] == pytest.approx(0.002 + 4.5e-4)  # noisy - 0.1
    assert d["median_scratch"][0] == pytest.approx(0.15 + 4.5 * 3e-4)
    assert dec["holds"] == {"steps": True, "loss": True} and dec["share_panel"] == "PASS"


def test_the_share_panel_is_reported_not_decided():
    dec = bayes.decide(quick_size(X), measurements(panel(), share=panel(top=0.02)))
    assert dec["verdict"] == "PASS" and dec["share_panel"] == "FAIL"
    assert dec["panels"]["share"]["rules"]["loss"]["conditions"]["above"] is False
    dec = bayes.decide(quick_size(X), measurements(panel(top=0.02), share=panel()))
    assert dec["verdict"] == "FAIL" and dec["share_panel"] == "PASS"


def test_decide_counts_missing_values_of_the_n_up_panel():
    m = measurements(panel())
    m["n_up"]["loss"]["noisy_scratch"][1, 2] = np.nan
    m["share"]["steps"]["noisy_transfer"][0, 0] = np.nan  # reported panel: not in the verdict
    dec = bayes.decide(quick_size(X), m)
    assert dec["missing"] == 1 and dec["verdict"] == "FAIL" and dec["verdict_tests"] == "PASS"
    assert dec["panels"]["share"]["missing"] == 1


@pytest.mark.parametrize("which", ["quick", "full"])
def test_examples_give_their_verdicts_and_present(which):
    size = bayes.PROTOCOL.size(which == "quick")
    for verdict, m in examples(size).items():
        dec = bayes.decide(size, m)
        assert dec["verdict"] == verdict
        out = bayes.present(size, m, dec)
        assert "(i) transfer at Bayes" in out.statistic
        csv = [t for t in out.sections if getattr(t, "name", "") == "bayes"]
        rows = 2 * (len(size.x["n_up"]) + len(size.x["share"]))
        assert len(csv) == 1 and len(csv[0].rows) == rows


# ----------------------------------------------------------------------
# measuring
class FakeSweep:
    """Records the configs and keywords of one sweep; every metric is the
    item's position (points, 2 seeds)."""

    def __call__(self, configs, **kwargs):
        self.configs, self.kwargs = configs, kwargs
        return self

    def values(self, metric):
        return np.repeat(np.arange(len(self.configs), dtype=float)[:, None], 2, axis=1)


def test_both_rules_in_one_sweep_with_the_loss_target():
    grid = bayes.PROTOCOL.quick.configs["n_up"]
    fake = FakeSweep()
    out = B.sweep_rules_once(fake, grid, 600, ("a",), "n_up", measure="outcomes", common=("n_up",))
    assert fake.configs[:3] == grid
    assert [(c.epsilon, c.steps_down) for c in fake.configs[3:]] == [(1e-3, 600)] * 3
    assert [c.replace(epsilon=0.0, steps_down=60) for c in fake.configs[3:]] == grid
    assert fake.kwargs == {
        "label": "n_up",
        "metrics": ("a",),
        "measure": "outcomes",
        "common": ("n_up",),
    }
    assert out["steps"]["a"][:, 0].tolist() == [0, 1, 2]
    assert out["loss"]["a"][:, 0].tolist() == [3, 4, 5]


def test_each_panel_has_its_own_seed_stream(tmp_path):
    p = bayes.PROTOCOL
    sweep = ClaimSweep(p, p.quick, tmp_path, 1)
    for panel in bayes.PANELS:
        sw = bayes._panel_sweep(sweep, panel)
        assert sw.protocol.salt == f"bayes-v1/{panel}" and sw.cache == sweep.cache
        assert sw.size is p.quick and sw.jobs == 1


def test_quick_run_end_to_end(tmp_path):
    res = run_claim(bayes, tmp_path, quick=True, jobs=1)
    assert res["source"] == "paper" and res["verdict"] in ("PASS", "FAIL")
    assert res["name"] == "bayes" and f"**Verdict: {res['verdict']}**" in res["markdown"]
    data = json.loads((tmp_path / "bayes" / "bayes.json").read_text())
    assert data["verdict"] == res["verdict"] and data["quick"] is True
    assert (tmp_path / "bayes" / "bayes.csv").is_file()
    # common random numbers across N_1: scratch is the same run at every N_1
    per_seed = data["data"]["per_seed"]["n_up"]["steps"]
    scratch = np.array(per_seed["noisy_scratch"], float)
    assert np.all(scratch == scratch[0])
    transfer = np.array(per_seed["noisy_transfer"], float)
    assert not np.all(transfer == transfer[0])
