"""The claim ``bayes`` (version 2): its declared protocol and cells, the
exact sign test, the pure verdict of the three arms (:func:`dichotomy`) and
``decide(size, measurements)`` on hand-made excess errors with known answers,
the measure's split by cell, and one quick end-to-end run.

Known p-values, worked out by hand:

- The one-sided sign test of n values with k above the level and n - k
  below has p = P(Binomial(n, 1/2) >= k) = sum_{j >= k} C(n, j) / 2^n.
  n = 20: k = 20 gives 1 / 2^20 = 9.5367e-7; k = 16 gives (C(20,16) +
  C(20,17) + C(20,18) + C(20,19) + C(20,20)) / 2^20 = (4845 + 1140 + 190 +
  20 + 1) / 1048576 = 6196 / 1048576 = 0.0059090 < 0.01; k = 15 adds
  C(20,15) = 15504: 21700 / 1048576 = 0.020695 > 0.01. So 16 of 20 above
  passes at 0.01 and 15 of 20 does not. Values equal to the level are
  dropped: 10 above, 2 equal, 0 below gives 1 / 2^10 = 9.765625e-4.
- Page's test with b blocks, each strictly decreasing over 3 points, has
  the exact one-sided p (decrease) = (1/3!)^b = 6^-b (only that ordering in
  every block reaches the largest L); each block strictly increasing gives
  the smallest L, so p (decrease) = 1. Mean per-block Spearman rho: -1 and
  +1.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from claim_examples import RecordingSweep

from refimpl.claims import _base as B
from refimpl.claims import bayes
from refimpl.lab import stats as S
from refimpl.lab.claim import Disclosure, Protocol, Size, run_claim
from refimpl.theory import indicators

SCALES = [1, 2, 4]
SEEDS = 20
P_DOWN = 0.1


def rows(levels, n=SEEDS, scale=1e-4):
    """(len(levels), n): row i is levels[i] + scale * (1, ..., n), so with a
    decreasing ``levels`` every seed (column) decreases strictly over the rows
    (the steps between levels exceed scale * n)."""
    return np.asarray(levels, float)[:, None] + scale * np.arange(1, n + 1)


def arms(benign=(0.012, 0.006, 0.003), harmful=(0.13, 0.13, 0.13), scratch=(0.19, 0.19, 0.19)):
    """The three arms' excess, (3 scales, SEEDS): by default benign decreasing
    in every seed, harmful transfer and scratch above GAP in every run."""
    return rows(benign), rows(harmful), rows(scratch, scale=3e-4)


def with_below(values, i, below, value=0.02):
    """``values`` with the first ``below`` runs at scale row ``i`` set to ``value``."""
    v = values.copy()
    v[i, :below] = value
    return v


# ----------------------------------------------------------------------
# measurements shaped as measure(size, sweep) returns them
def cell(transfer, scratch, stalled=False):
    """All metrics of one cell from the excess errors (scales, seeds) at p_2 = P_DOWN."""
    t, s = np.asarray(transfer, float), np.asarray(scratch, float)
    loss = np.full(t.shape, 1e-2 if stalled else 1e-3)  # epsilon = 1e-3: stalled above it
    return {
        "noisy_transfer": P_DOWN + t,
        "noisy_scratch": P_DOWN + s,
        "loss_down": loss,
        "loss_scratch": loss,
        "steps_down": np.full(t.shape, 300.0),
        "steps_scratch": np.full(t.shape, 280.0),
    }


def measurements(benign, harmful, scratch, stalled=False):
    """``{cell: {metric: (scales, seeds)}}``; scratch is the same in both cells."""
    return {
        "benign": cell(benign, scratch, stalled),
        "harmful": cell(harmful, scratch, stalled),
    }


def examples(size):
    """Synthetic measurements of ``size`` with a PASS and a FAIL verdict.

    Seeds: ``size.seeds``, but at least 20 (the quick size's 4 seeds give a
    sign-test p of 1/16 at best). PASS: the benign excess halves with every
    doubling of s (0.012, 0.006, 0.003) in every seed (Page p = 6^-n), the
    harmful transfer (0.13) and scratch (0.19) excess lie above GAP in every
    run (sign-test p = 2^-n at every s). FAIL: the benign excess grows with s
    (0.003, 0.006, 0.012: Page p = 1, (i)); at s = 4 five of twenty harmful
    runs fall to 0.02 (15 above GAP: p = 0.0207, (ii)); and the runs stall."""
    n = max(int(size.seeds), SEEDS)
    k = len(size.scales)
    ok = (rows([0.012 / 2**i for i in range(k)], n), rows([0.13] * k, n))
    scratch = rows([0.19] * k, n, 3e-4)
    harmful_bad = with_below(rows([0.13] * k, n), k - 1, n // 4)
    bad = (rows([0.003 * 2**i for i in range(k)], n), harmful_bad)
    return {
        "PASS": measurements(*ok, scratch),
        "FAIL": measurements(*bad, scratch, stalled=True),
    }


# ----------------------------------------------------------------------
# the protocol and its cells
def test_protocol_is_declared():
    p = bayes.PROTOCOL
    assert isinstance(p, Protocol) and p.name == "bayes" and p.source == "paper"
    assert p.fixed == "2026-12-06" and p.salt == "bayes-v2" and p.common == ("n_up",)
    assert p.full.seeds == 20 and p.quick.seeds == 4 and p.hash_scheme1 == ""
    assert p.full.scales == p.quick.scales == SCALES
    assert str(S.SIGNIFICANCE) in p.pass_rule and "Page" in p.statistic
    assert "sign test" in p.statistic and bayes.GAP == 0.05 and bayes.DELTA == 0.01
    d, engine, wording = p.disclosures
    assert "batched three-stage path" in engine.change and p.rules["engine"] == B.ENGINE_RULE
    assert "cf2b05a42f1e to " + p.hash() in wording.change and "audit" not in p.notes["reading"]
    assert "Page p = 0.034, 0.09, 0.011" in engine.earlier
    assert isinstance(d, Disclosure) and "independent review" in d.reason
    for number in ("60fa49de524f", "+0.0049", "+0.1865", "+0.1352", "+0.0055", "+0.1860"):
        assert number in d.earlier  # v1 main
    for number in ("+0.0056", "+0.1769", "1.8e-08", "+0.1330", "+0.0061", "+0.1771", "+0.1331"):
        assert number in d.earlier  # v1 r1
    json.dumps(p.to_dict(), allow_nan=False)
    assert not any(hasattr(bayes, k) for k in ("NAME", "CLAIM", "SOURCE", "run"))


@pytest.mark.parametrize("which", ["full", "quick"])
def test_the_cells_scale_at_fixed_indicators(which):
    """Gamma_inh = 16 / (1 + k) at N_1 = d / k (|u| = 2, |v_1| = 1, sigma_p = 1):
    16/3 (benign, k = 2) and 16/61 (harmful, k = 60) at every s; Gamma_scr =
    N_2 |mu_2|^4 / d = 10 x 25 / 600 = 5/12 (full), 8 x 25 / 120 = 5/3 (quick)."""
    size = bayes.PROTOCOL.size(which == "quick")
    d0, n2, cap = (600, 10, 2000) if which == "full" else (120, 8, 600)
    assert size.loss_cap == cap
    for name, k, g_inh in (("benign", 2, 16 / 3), ("harmful", 60, 16 / 61)):
        grid = size.configs[name]
        assert len(grid) == 3
        for s, c in zip(SCALES, grid, strict=True):
            assert (c.d, c.n_up, c.n_down) == (d0 * s, d0 * s // k, n2 * s)
            assert (c.epsilon, c.steps_down, c.eta) == (1e-3, cap * s, 1.0)
            assert c.steps_up == grid[0].steps_up and c.flip_down == 0.1
            g = indicators(c)
            assert g["gamma_inh"] == pytest.approx(g_inh)
            assert g["gamma_scr"] == pytest.approx(250 / 600 if which == "full" else 200 / 120)
            same = c.replace(d=d0, n_up=d0 // k, n_down=n2, steps_down=cap)
            assert same == grid[0]  # only d, N_1, N_2 and the cap move with s
    for b, h in zip(size.configs["benign"], size.configs["harmful"], strict=True):
        assert b.replace(n_up=h.n_up) == h  # the cells differ in N_1 only


# ----------------------------------------------------------------------
# the sign test
@pytest.mark.parametrize(
    "above, equal, below, p",
    [
        (20, 0, 0, 1 / 2**20),
        (16, 0, 4, 6196 / 1048576),
        (15, 0, 5, 21700 / 1048576),
        (10, 2, 0, 1 / 2**10),
        (0, 3, 0, 1.0),
    ],
)
def test_the_sign_test_against_hand_values(above, equal, below, p):
    v = [0.1] * above + [bayes.GAP] * equal + [0.0] * below
    t = bayes.sign_test(v, bayes.GAP)
    assert (t["above"], t["below"], t["n_missing"]) == (above, below, 0)
    assert t["p"] == pytest.approx(p, rel=1e-12)


def test_the_sign_test_is_nan_with_a_missing_value():
    t = bayes.sign_test([0.1] * 9 + [None], bayes.GAP)
    assert np.isnan(t["p"]) and t["n_missing"] == 1 and t["above"] == 9


# ----------------------------------------------------------------------
# the verdict of the three arms
def test_pass_with_the_exact_p_values():
    dec = bayes.dichotomy(SCALES, *arms())
    assert dec["verdict"] == dec["verdict_tests"] == "PASS" and dec["missing"] == 0
    assert dec["conditions"] == {"shrinks": True, "harmful_above": True, "scratch_above": True}
    tr = dec["arms"]["benign"]["trend"]
    assert tr["rho"] == pytest.approx(-1.0) and tr["p"] == pytest.approx(6.0**-SEEDS, rel=1e-9)
    for a in bayes.HARMFUL:
        assert [t["p"] for t in dec["arms"][a]["sign"]] == pytest.approx([2.0**-SEEDS] * 3)
    b = dec["arms"]["benign"]
    assert b["median"].tolist() == pytest.approx(
        [0.012 + 10.5e-4, 0.006 + 10.5e-4, 0.003 + 10.5e-4]
    )
    assert b["bayes"].tolist() == [0.0, 1.0, 1.0]  # 0.0061-0.0080 and 0.0031-0.0050 <= 0.01
    assert dec["arms"]["harmful"]["above_gap"].tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    "changes, failing",
    [
        ({"benign": (0.003, 0.006, 0.012)}, "shrinks"),  # increasing: Page p = 1
        ({"benign": (0.006, 0.006, 0.006)}, "shrinks"),  # constant: rho = 0
        ({"harmful_below": (2, 5)}, "harmful_above"),  # 15 of 20 above: p = 0.0207
        ({"scratch": (0.19, 0.04, 0.19)}, "scratch_above"),  # all below GAP at s = 2
    ],
)
def test_each_condition_fails_on_its_own(changes, failing):
    b, h, s = arms(**{k: v for k, v in changes.items() if k != "harmful_below"})
    if "harmful_below" in changes:
        h = with_below(h, *changes["harmful_below"])
    dec = bayes.dichotomy(SCALES, b, h, s)
    assert dec["verdict"] == dec["verdict_tests"] == "FAIL"
    assert dec["conditions"] == {k: k != failing for k in dec["conditions"]}


def test_sixteen_of_twenty_above_is_enough():
    b, h, s = arms()
    dec = bayes.dichotomy(SCALES, b, with_below(h, 0, 4), s)
    assert dec["verdict"] == "PASS"
    assert dec["arms"]["harmful"]["sign"][0]["p"] == pytest.approx(6196 / 1048576)
    assert dec["arms"]["harmful"]["above_gap"][0] == pytest.approx(0.8)


def test_too_few_seeds_fail_both_tests():
    """4 seeds: the sign-test p is 1/16 at best; Page's test (1/6)^4 = 7.7e-4 passes."""
    b, h, s = (rows(v, 4) for v in ((0.012, 0.006, 0.003), (0.13,) * 3, (0.19,) * 3))
    dec = bayes.dichotomy(SCALES, b, h, s)
    assert dec["arms"]["harmful"]["sign"][0]["p"] == pytest.approx(1 / 16)
    assert dec["arms"]["benign"]["trend"]["p"] == pytest.approx(6.0**-4)
    assert dec["conditions"] == {"shrinks": True, "harmful_above": False, "scratch_above": False}


@pytest.mark.parametrize("arm", [0, 1, 2])
def test_a_missing_value_fails_and_is_counted(arm):
    values = [v.astype(object) for v in arms()]
    values[arm][1, 3] = None
    values[arm][2, 5] = float("nan")
    dec = bayes.dichotomy(SCALES, *values)
    assert dec["missing"] == 2 and dec["verdict"] == "FAIL"
    assert dec["verdict_tests"] == "FAIL"  # the tests themselves give NaN p-values


def test_the_scales_order_is_read_from_x():
    b, h, s = arms()
    assert bayes.dichotomy(SCALES[::-1], b[::-1], h, s)["verdict"] == "PASS"
    assert bayes.dichotomy(SCALES[::-1], b, h, s)["conditions"]["shrinks"] is False


# ----------------------------------------------------------------------
# decide(size, measurements)
def quick_size():
    q = bayes.PROTOCOL.quick
    return Size(q.configs, SEEDS, scales=q.scales, loss_cap=q.loss_cap)


def test_decide_reads_the_excess_over_p2():
    dec = bayes.decide(quick_size(), measurements(*arms()))
    assert dec["verdict"] == "PASS" and dec["missing"] == 0
    assert dec["arms"]["harmful"]["median"][0] == pytest.approx(0.13 + 10.5e-4)  # noisy - 0.1
    assert dec["arms"]["scratch"]["median"][2] == pytest.approx(0.19 + 10.5 * 3e-4)


def test_decide_reads_scratch_from_the_benign_cell():
    b, h, s = arms()
    m = measurements(b, h, s)
    m["harmful"]["noisy_scratch"] = np.full(s.shape, P_DOWN)  # not read
    assert bayes.decide(quick_size(), m)["verdict"] == "PASS"
    m["benign"]["noisy_scratch"] = np.full(s.shape, P_DOWN)  # excess 0: never above GAP
    assert bayes.decide(quick_size(), m)["conditions"]["scratch_above"] is False


def test_decide_counts_a_missing_value():
    m = measurements(*arms())
    m["harmful"]["noisy_transfer"][2, 0] = np.nan
    dec = bayes.decide(quick_size(), m)
    assert dec["missing"] == 1 and dec["verdict"] == "FAIL"


@pytest.mark.parametrize("which", ["quick", "full"])
def test_examples_give_their_verdicts_and_present(which):
    size = bayes.PROTOCOL.size(which == "quick")
    for verdict, m in examples(size).items():
        dec = bayes.decide(size, m)
        assert dec["verdict"] == verdict
        out = bayes.present(size, m, dec)
        assert "(i) shrinks" in out.statistic and "Gamma_inh = 5.33" in out.statistic
        csv = [t for t in out.sections if getattr(t, "name", "") == "bayes"]
        assert len(csv) == 1 and len(csv[0].rows) == 3 * len(SCALES)
        stalled = {r[0]: r[-2] for r in csv[0].rows}
        assert set(stalled.values()) == ({SEEDS} if verdict == "FAIL" else {0})


# ----------------------------------------------------------------------
# measuring
def test_one_sweep_split_by_cell():
    size, fake = bayes.PROTOCOL.quick, RecordingSweep(2, scale=1.0, seed_step=0.0)
    out = bayes.measure(size, fake)
    ((configs, kwargs),) = fake.calls
    assert configs == size.configs["benign"] + size.configs["harmful"]
    assert kwargs == {
        "label": "cells x scales",
        "metrics": bayes.METRICS,
        "measure": "outcomes_batched",
    }  # the protocol's common fields (n_up) by default
    assert out["benign"]["noisy_transfer"][:, 0].tolist() == [0, 1, 2]
    assert out["harmful"]["steps_scratch"][:, 1].tolist() == [3, 4, 5]


def test_quick_run_end_to_end(tmp_path):
    res = run_claim(bayes, tmp_path, quick=True, jobs=1)
    assert res["source"] == "paper" and res["verdict"] in ("PASS", "FAIL")
    assert res["name"] == "bayes" and f"**Verdict: {res['verdict']}**" in res["markdown"]
    data = json.loads((tmp_path / "bayes" / "bayes.json").read_text())
    assert data["verdict"] == res["verdict"] and data["quick"] is True
    assert (tmp_path / "bayes" / "bayes.csv").is_file()
    # common random numbers across N_1: the two cells share the scratch run
    per_seed = data["data"]["per_seed"]
    scratch = [np.array(per_seed[c]["noisy_scratch"], float) for c in bayes.CELLS]
    assert np.array_equal(scratch[0], scratch[1])
    transfer = [np.array(per_seed[c]["noisy_transfer"], float) for c in bayes.CELLS]
    assert not np.array_equal(transfer[0], transfer[1])
