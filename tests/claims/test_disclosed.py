"""Protocols, disclosures and the decision logic of gain_alpha (v2),
mechanism, mitigation, mitigation_freezing, phase_single and coefficients,
on hand-made inputs with known answers.

Expected p-values come from closed forms, not from running the code:

- Wilcoxon signed-rank, exact, n positive differences of distinct sizes:
  the largest statistic, reached only so: p = 1/2^n;
- exact McNemar with k discordant pairs all failing under a: p = 1/2^k;
- Page's L test with b perfectly ordered blocks over k > 8 points uses the
  normal approximation; there L - E0 = b k (k+1)(k-1)/12 and
  sqrt(V0) = k (k+1) sqrt(b (k-1)) / 12, so z = sqrt(b (k-1));
- one-sided paired t with a constant nonzero difference: p = 0 in the
  tested direction, 1 against it (documented rule of ``paired_t``);
  differences [a - h, a, a + h]: t = a sqrt(3) / h, 2 degrees of freedom,
  p = 1/2 - t / (2 sqrt(t^2 + 2)).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.stats

from refimpl.claims import (
    coefficients,
    gain_alpha,
    mechanism,
    mitigation,
    mitigation_freezing,
    phase_single,
)
from refimpl.lab import report as R
from refimpl.lab.protocol import Disclosure, Protocol

NAN = float("nan")
MINE = (coefficients, phase_single, gain_alpha, mechanism, mitigation, mitigation_freezing)
A = gain_alpha.ALPHAS  # 0, 0.1, ..., 1


def approx(x, rel=1e-6, abs=1e-12):
    return pytest.approx(x, rel=rel, abs=abs)


def p_df2(t):
    return 0.5 - t / (2 * math.sqrt(t * t + 2))


# ----------------------------------------------------------------------
# every claim: source, protocol and disclosures declared as data
@pytest.mark.parametrize("mod", MINE)
def test_protocol_and_disclosures_are_declared(mod):
    assert isinstance(mod.PROTOCOL, Protocol) and mod.PROTOCOL.claim == mod.NAME
    assert isinstance(mod.QUICK_PROTOCOL, Protocol) and mod.QUICK_PROTOCOL.hash != mod.PROTOCOL.hash
    assert len(mod.PROTOCOL.hash) == 12 and mod.PROTOCOL.fixed
    assert all(isinstance(d, Disclosure) and d.earlier for d in mod.DISCLOSURES)
    text = json.dumps(mod.PROTOCOL.to_dict(), allow_nan=False)
    assert "engine" not in text  # how, not what: not part of the protocol


def test_sources_follow_docs_model_section_8():
    assert {m.NAME: m.SOURCE for m in MINE} == {
        "coefficients": "framework",
        "phase_single": "framework",
        "gain_alpha": "paper",
        "mechanism": "hypothesis",
        "mitigation": "paper",
        "mitigation_freezing": "hypothesis",
    }
    assert "freezing" not in mitigation.CLAIMED and "freeze inherited" not in mitigation.LEVERS
    assert mitigation_freezing.CLAIMED == {"freezing": ["freeze inherited"]}


def test_the_disclosed_earlier_results_are_there():
    ps = " ".join(d.change + d.earlier for d in phase_single.DISCLOSURES)
    assert "eta = 1" in ps and "0.299" in ps and "-0.293" in ps
    ga = " ".join(d.change + d.earlier for d in gain_alpha.DISCLOSURES)
    assert "|u| = 0.5" in ga and "alpha <= 0.7" in ga and "16 -> 20" in ga
    assert "+0.0441" in ga  # the committed v1 statistic
    mech = " ".join(d.change + d.earlier for d in mechanism.DISCLOSURES)
    assert "`negative`" in mech and "-0.438" in mech and "20 -> 30" in mech
    assert "12 -> 24" in mitigation.DISCLOSURES[0].change
    assert "freeze inherited -0.0357 (p = 1)" in mitigation_freezing.DISCLOSURES[-1].earlier


def test_gain_alpha_protocol_declares_the_new_rule_and_seed_stream():
    p = gain_alpha.PROTOCOL
    assert p.seeds == {"clean": 40, "noisy": 120}
    assert p.grid["regimes"]["clean"]["flip_down"] == 0.0  # clean means p_2 = 0
    assert p.extra["salt"] == gain_alpha.SALT != gain_alpha.NAME  # a fresh seed stream
    assert p.extra["failure_threshold"] == gain_alpha.FAIL_ERROR == 0.2
    assert "McNemar" in p.statistic and "Wilcoxon" in p.statistic and "Page" in p.statistic


# ----------------------------------------------------------------------
# gain_alpha v2
def clean_falling(seeds):
    """Every seed strictly decreasing over the 11 alphas; err(0.8) - err(1)
    = 0.04 + 2r/1000 > 0, distinct over the seeds r."""
    return np.array([[0.3 - 0.02 * k - k * r / 1000 for r in range(seeds)] for k in range(11)])


def noisy_failing(seeds, failing):
    """0.05 everywhere, except 0.3 at alpha = 1 on the first ``failing`` seeds."""
    err = np.full((11, seeds), 0.05)
    err[10, :failing] = 0.3
    return err


def page_perfect_asymptotic(points, blocks):
    return scipy.stats.norm.sf(math.sqrt(blocks * (points - 1)))


def test_gain_alpha_pass():
    d = gain_alpha.decide(A, clean_falling(8), noisy_failing(10, 7))
    assert d["trend_clean"]["p"] == approx(page_perfect_asymptotic(11, 8))
    assert d["end_clean"]["p"] == approx(1 / 2**8)  # 0.0039 < 0.01
    assert d["tail_noisy"]["a_only"] == 7 and d["tail_noisy"]["b_only"] == 0
    assert d["tail_noisy"]["p"] == approx(1 / 2**7)  # 0.0078 < 0.01
    assert d["ok"] == {"a": True, "b": True, "c": True}
    assert d["verdict"] == d["verdict_tests"] == "PASS" and d["missing"] == 0


def test_gain_alpha_fail_on_each_test():
    d = gain_alpha.decide(A, clean_falling(6), noisy_failing(10, 7))
    assert d["end_clean"]["p"] == approx(1 / 2**6)  # 0.0156: six seeds too few
    assert d["ok"]["b"] is False and d["verdict"] == "FAIL"
    d = gain_alpha.decide(A, clean_falling(8), noisy_failing(10, 6))
    assert d["tail_noisy"]["p"] == approx(1 / 2**6)  # six failures: 0.0156
    assert d["ok"] == {"a": True, "b": True, "c": False} and d["verdict"] == "FAIL"
    rising = clean_falling(8)[::-1]  # error rises with alpha
    d = gain_alpha.decide(A, rising, noisy_failing(10, 7))
    assert d["ok"]["a"] is False and d["ok"]["b"] is False and d["verdict"] == "FAIL"


def test_gain_alpha_failures_are_errors_above_the_threshold_or_stalls():
    err = np.array([[0.1, 0.25, 0.2, NAN]])
    assert np.array_equal(gain_alpha.failures(err), [[0.0, 1.0, 0.0, NAN]], equal_nan=True)
    stalled = np.array([[1.0, 0.0, 0.0, 1.0]])
    assert np.array_equal(gain_alpha.failures(err, stalled), [[1.0, 1.0, 0.0, NAN]], equal_nan=True)
    # at equal loss a stalled run is a failure even with a small error
    noisy = np.full((11, 10), 0.05)
    stall = np.zeros((11, 10))
    stall[10, :7] = 1
    d = gain_alpha.decide(A, clean_falling(8), noisy, None, stall)
    assert d["tail_noisy"]["p"] == approx(1 / 2**7) and d["verdict"] == "PASS"
    assert d["summary"]["noisy"]["failure_rate"][10] == approx(0.7)
    assert d["summary"]["noisy"]["median"][10] == approx(0.05)


def test_gain_alpha_reports_mean_median_and_failure_rate_side_by_side():
    noisy = noisy_failing(10, 3)  # alpha = 1: 3 of 10 at 0.3, 7 at 0.05
    d = gain_alpha.decide(A, clean_falling(8), noisy)
    s = d["summary"]["noisy"]
    assert s["mean"][10] == approx(0.125) and s["median"][10] == approx(0.05)
    assert s["failure_rate"][10] == approx(0.3) and s["failure_rate"][5] == 0.0
    # the best alpha by mean is one without failures; by median every alpha ties
    assert d["best"]["noisy"]["mean"] == 0.0 and d["best"]["noisy"]["median"] == 0.0
    # clean: the first alpha whose eight errors are all <= 0.2 is 0.5 (0.3 - 5 x 0.02 - 5r/1000)
    assert d["best"]["clean"] == {"mean": 1.0, "median": 1.0, "failure": 0.5}


def test_gain_alpha_never_picks_a_missing_alpha_as_the_best_and_missing_fails():
    noisy = np.full((11, 10), 0.2)
    noisy[3] = 0.01  # alpha 0.3 lowest ...
    noisy[3, 4] = NAN  # ... but with a missing value
    noisy[6] = 0.1
    d = gain_alpha.decide(A, clean_falling(8), noisy)
    assert d["best"]["noisy"]["mean"] == 0.6 and d["best"]["noisy"]["median"] == 0.6
    assert d["missing"] == 1 and d["verdict"] == "FAIL"
    assert gain_alpha.best_alpha([0, 1], [[NAN], [NAN]], "mean") is None
    d = gain_alpha.decide(A, clean_falling(8), noisy_failing(10, 7))
    assert d["verdict"] == "PASS"
    clean = clean_falling(8)
    clean[0, 0] = NAN  # the tests would hold: the rule fails it
    d = gain_alpha.decide(A, clean, noisy_failing(10, 7))
    assert d["missing"] == 1 and d["verdict"] == "FAIL" and math.isnan(d["trend_clean"]["p"])


def test_gain_alpha_equal_loss_measure_pairs_the_seed_and_flags_stalls():
    from refimpl.claims._base import transfer_base

    cfg = transfer_base(True, d=60, m=2, n_up=10, n_down=6, steps_up=20, n_test=200, seed=7)
    r = gain_alpha.measure_at_loss(cfg, epsilon=1e-9, cap=5)  # unreachable: stalls
    assert r["stalled_transfer"] == 1.0 and r["stalled_scratch"] == 1.0
    assert r["steps_down"] == 5 and r["up_stopped_early"] == 0.0
    r2 = gain_alpha.measure_at_loss(cfg, epsilon=10.0, cap=5)  # reached at step 0
    assert r2["stalled_transfer"] == 0.0 and r2["steps_down"] == 0
    assert r2["up_stopped_early"] == 1.0  # upstream stops too


# ----------------------------------------------------------------------
# mechanism: how a FAIL of the hypothesis reads
def mech(err_diff, rho_diff):
    base = np.array([0.25, 0.375, 0.5])
    return dict(
        err_transfer=base + np.asarray(err_diff, float),
        err_scratch=base,
        rho_transfer=1.0 + base + np.asarray(rho_diff, float),
        rho_scratch=1.0 + base,
        rho_flip_transfer=2.5 + base,
        rho_flip_scratch=2.0 + base,
    )


@pytest.mark.parametrize(
    "err_diff, rho_diff, verdict, reading",
    [
        (0.125, 0.5, "PASS", None),  # all constant: p = 0
        (0.125, -0.5, "FAIL", "refuted"),  # rho-bar smaller: p = 1
        ([0.010, 0.012, 0.014], -0.5, "FAIL", "refuted"),
        ([-0.010, 0.0, 0.010], 0.5, "FAIL", "not tested"),  # no negative transfer
    ],
)
def test_mechanism_fail_reads_as_refuted_or_not_tested(err_diff, rho_diff, verdict, reading):
    d = mechanism.decide(**mech(err_diff, rho_diff))
    assert d["verdict"] == verdict
    if reading:
        assert reading in mechanism._reading(d)


def test_mechanism_verdict_rule_is_unchanged():
    d = mechanism.decide(**mech([0.010, 0.012, 0.014], 0.5))
    assert d["tests"]["err"]["p"] == approx(p_df2(6 * math.sqrt(3)))  # 0.0044
    assert d["verdict"] == "PASS"
    assert mechanism.PROTOCOL.seeds == 30 and mechanism.VERDICT_REGIME == "label_noise"


# ----------------------------------------------------------------------
# mitigation (paper levers) and mitigation_freezing (our hypothesis)
BASE_NEG = np.array([8, 9, 10]) / 64


def lever_neg(reductions):
    return np.array([[BASE_NEG]] + [[BASE_NEG - np.asarray(r, float)] for r in reductions])


def test_mitigation_verdict_rests_on_the_paper_levers_only():
    names = list(mitigation.LEVERS)
    assert names == [
        "baseline",
        "smaller alpha (0.2)",
        "weight decay 0.003",
        "weight decay 0.01",
        "rescale inherited x0.3",
    ]
    # alpha and one weight-decay level reduce it by a constant (p = 0); the
    # rescale (not claimed) makes it worse: the verdict does not look at it
    d = mitigation.decide(names, lever_neg([1 / 16, 0.0, 1 / 32, -1 / 16]))
    assert d["per_claim"] == {"smaller alpha": True, "weight decay": True}
    assert d["tests"]["rescale inherited x0.3"]["p"] == 1.0 and d["verdict"] == "PASS"
    d = mitigation.decide(names, lever_neg([-1 / 16, 0.0, 1 / 32, 1 / 16]))
    assert d["per_claim"]["smaller alpha"] is False and d["verdict"] == "FAIL"


@pytest.mark.parametrize(
    "reduction, verdict, p",
    [
        (1 / 32, "PASS", 0.0),  # freezing lowers it by a constant: p = 0
        (-1 / 32, "FAIL", 1.0),  # freezing raises it: p = 1
        ([0.010, 0.012, 0.014], "PASS", p_df2(6 * math.sqrt(3))),
    ],
)
def test_mitigation_freezing_decide(reduction, verdict, p):
    d = mitigation_freezing.decide(lever_neg([reduction]))
    assert d["tests"]["freeze inherited"]["p"] == approx(p)
    assert d["baseline"]["p"] == approx(p_df2(9 * math.sqrt(3)))
    assert d["verdict"] == verdict and d["missing"] == 0


def test_mitigation_freezing_missing_and_no_baseline_effect_fail():
    neg = lever_neg([1 / 32])
    neg[1, 0, 2] = NAN
    d = mitigation_freezing.decide(neg)
    assert d["missing"] == 1 and d["verdict"] == "FAIL"
    d = mitigation_freezing.decide(lever_neg([1 / 32]) - 0.25)  # baseline < 0
    assert d["per_claim"]["freezing"] is True and d["verdict"] == "FAIL"


def test_mitigation_freezing_shares_the_seeds_of_mitigation():
    from refimpl.claims._base import transfer_base
    from refimpl.lab.seeds import derive_seed

    base = transfer_base(False, alpha=0.8, u_norm=0.0)
    frozen = base.replace(freeze_inherited=True)
    smaller = base.replace(alpha=0.2)
    seeds = {derive_seed(c, 3, mitigation.COMMON, mitigation.SALT) for c in (base, frozen, smaller)}
    assert len(seeds) == 1  # common random numbers across the levers


# ----------------------------------------------------------------------
# phase_single: the step-size rule and the eta sweep
def test_phase_single_eta_rule_and_sweep_caps():
    c = phase_single._single(False)
    assert c.eta == approx(200 / 800) and c.steps_up == phase_single.CAP == 2000
    one = phase_single._single(False, None, d=3200)
    assert one.eta == 1.0 and one.steps_up == 2000  # the original rule
    small = phase_single._single(False, 50.0, d=400)
    assert small.eta == approx(50 / 400) and small.steps_up == 8000  # eta * T kept
    big = phase_single._single(False, 800.0)
    assert big.eta == approx(1.0) and big.steps_up == 2000
    assert phase_single.ETA_SWEEP[-1] is None and 200.0 in phase_single.ETA_SWEEP
    assert (
        phase_single.PROTOCOL.grid["mu"] == phase_single.MU_GRID and len(phase_single.MU_GRID) == 9
    )


def test_phase_single_eta_reading_lists_where_the_whole_ci_is_within_the_margin():
    sweep = [
        {"label": "c = 50", "d": {"ci": (0.22, 0.27)}, "n": {"ci": (-0.27, -0.23)}},
        {"label": "eta = 1", "d": {"ci": (0.27, 0.33)}, "n": {"ci": (-0.32, -0.27)}},
    ]
    text = phase_single._eta_reading(sweep)
    assert "(+1/4) at c = 50;" in text and "(-1/4) at c = 50." in text
    sweep[0]["n"]["ci"] = (-0.31, -0.23)  # -0.31 is outside -0.25 +- 0.05
    assert "(-1/4) at none." in phase_single._eta_reading(sweep)


# ----------------------------------------------------------------------
# the JSON records the reported verdict (the missing-value rule included)
def test_json_verdict_is_the_reported_one(tmp_path, monkeypatch):
    """mitigation_freezing at quick size with one run made missing: the
    tests alone would give some verdict; the reported one is FAIL, and the
    JSON says the same."""
    real = mitigation._sweeps

    def with_nan(*a, **k):
        res, cells = real(*a, **k)
        res["neg"] = res["neg"].copy()
        res["neg"][1, 0, 0] = NAN
        return res, cells

    monkeypatch.setattr(mitigation, "_sweeps", with_nan)
    res = mitigation_freezing.run(tmp_path, quick=True)
    saved = json.loads((tmp_path / "mitigation_freezing" / "mitigation_freezing.json").read_text())
    assert res["verdict"] == saved["verdict"] == "FAIL"
    assert saved["n_missing"] == 1 and saved["statistic"] == res["statistic"]
    assert R.missing_note(1) in saved["statistic"]
    assert saved["protocol_hash"] == mitigation_freezing.QUICK_PROTOCOL.hash
    assert "Disclosed change" in res["markdown"]
