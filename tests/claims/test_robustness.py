"""Tests of robustness (moved from the history-named test files)."""

from __future__ import annotations

# --- moved from test_redesign.py
import math

import numpy as np
import pytest

from refimpl.claims import (
    _base,
    gain_noise_dim,
    gain_shared,
    gain_upstream_n,
    negative_transfer,
    robustness,
)

NAN = float("nan")


MODULES = (gain_shared, gain_upstream_n, gain_noise_dim, negative_transfer, robustness)


def approx(x, rel=1e-9, abs=1e-15):
    return pytest.approx(x, rel=rel, abs=abs)


def page_perfect(k, b):
    return (1 / math.factorial(k)) ** b


def distinct(n, scale=1 / 1024, offset=0.0):
    """n values offset + scale * (1, 2, ..., n): distinct magnitudes."""
    return offset + scale * np.arange(1, n + 1)


def fake_measure(config):
    """A sweep measure for the seed tests: the seed in every metric."""
    s = float(config.seed % 100003)
    return {m: s for m in _base.RUN_METRICS + gain_upstream_n.EXTRA_METRICS}


X3 = [0.0, 0.5, 1.0]


UP = np.array([[0.0, 0.01, 0.02], [0.1, 0.12, 0.11], [0.2, 0.25, 0.3]])  # every seed rising


DOWN = UP[::-1]


N10 = 10


ES = 0.125


def nt_hard_row(first):
    """One hard row over |u| = (0, 1, 2), 10 seeds, err_scratch 1/8:
    diff (transfer - scratch) = first(r) at |u| = 0, -1/16 - r/1024 at 1,
    -3/32 - r/1024 at 2; every block strictly decreasing when first > 0 >
    -1/16. No run fails (all errors < 0.2)."""
    r = np.arange(N10) / 1024
    diff = np.stack([first, -1 / 16 - r, -3 / 32 - r])
    return ES + diff, np.full((3, N10), ES)


def rob(u0, u1, u2):
    """One variant: err_scratch 1/4, err_transfer 1/4 - gain at each |u|
    (gain arrays of 10 seeds)."""
    es = np.full((3, N10), 0.25)
    return 0.25 - np.stack([u0, u1, u2]), es


def band(b, sign=1.0):
    """Gains of band b: sign * (10 b + r) / 1024, r = 1..10 (magnitudes of
    different bands never tie)."""
    return sign * distinct(N10, offset=10 * b / 1024)


def rising(b, u0):
    """A variant whose gain is u0 at |u| = 0, 1/8 + band b at 1, 1/4 + band b at 2:
    every seed strictly rising (|u0| < 1/8)."""
    return rob(u0, 1 / 8 + band(b), 1 / 4 + band(b))


def upper_tail(n, w):
    """Exact P(W+ >= w) of the signed-rank statistic over n ranks: subsets of
    {1..n} with sum >= w, counted by dynamic programming, over 2^n."""
    counts = np.zeros(n * (n + 1) // 2 + 1)
    counts[0] = 1
    for k in range(1, n + 1):
        counts[k:] = counts[k:] + counts[:-k].copy()
    return counts[w:].sum() / 2.0**n


def scipy_norm_sf(z):
    return 0.5 * math.erfc(z / math.sqrt(2))


def test_robustness_predicts_the_reversal_with_correlated_signals_only():
    assert robustness.REVERSED == {"cos(v_1, v_2) = 0.5": "gain"}
    assert robustness.VARIANTS["cos(v_1, v_2) = 0.5"] == {"v_cos": 0.5}
    eq = robustness.VARIANTS[robustness.EQUAL_LOSS]
    assert eq == {"epsilon": _base.EPSILON, "steps_down": _base.LOSS_CAP}


def test_robustness_findings_are_separate_and_the_verdict_pooled():
    base = rising(0, band(1, -1.0))  # negative transfer at |u| = 0
    alternate = np.array([1.0, -1.0] * 5)
    entry = rising(1, band(0) * alternate)  # |u| = 0: no effect
    cos = rising(2, band(2))  # the reversal: a gain at |u| = 0
    names = ["base", "entry", "cos"]
    et = np.stack([base[0], entry[0], cos[0]])
    es = np.stack([base[1], entry[1], cos[1]])
    d = robustness.decide(names, [0.0, 1.0, 2.0], et, es, reversed_={"cos": "gain"})
    res = d["results"]
    assert res["base"]["at |u| = 0"]["p"] == approx(2.0**-10)
    assert res["base"]["at |u| = 0"]["status"] == "detected"
    # entry: et - es = -gain positive at r = 2, 4, ..., 10: W+ = 30 of 55
    assert res["entry"]["at |u| = 0"]["p"] == approx(upper_tail(10, 30))
    assert res["entry"]["at |u| = 0"]["status"] == "not detected"  # not "lost"
    assert res["cos"]["prediction_u0"] == "gain"
    assert res["cos"]["at |u| = 0"]["p"] == approx(2.0**-10)
    assert res["cos"]["at |u| = 0"]["status"] == "detected"
    for n in names:
        assert res[n]["gain at |u| = 2"]["p"] == approx(2.0**-10)
        assert res[n]["gain grows with |u|"]["p"] == approx(page_perfect(3, N10))
    pooled = d["pooled"]
    assert pooled["gain at |u| = 2"]["p"] == approx(2.0**-30)  # 3 variants x 10 seeds
    # 30 perfect blocks: Page's normal approximation, L = 14 b, mean 12 b,
    # variance 2 b, so z = sqrt(2 b)
    assert pooled["gain grows with |u|"]["p"] == approx(scipy_norm_sf(math.sqrt(60)), rel=1e-6)
    assert pooled["negative transfer at |u| = 0"]["variants"] == ["base", "entry"]
    # pooled: base's 10 positive differences are ranks 11..20 (155), entry's
    # positive ones ranks 2, 4, ..., 10 (30): W+ = 185 over 20 ranks
    assert pooled["negative transfer at |u| = 0"]["p"] == approx(upper_tail(20, 185))
    assert upper_tail(20, 185) < 0.01
    assert pooled["gain at |u| = 0 (reversal)"]["variants"] == ["cos"]
    assert pooled["gain at |u| = 0 (reversal)"]["p"] == approx(2.0**-10)
    # entry's non-detection does not fail the verdict: no AND across variants
    assert all(t["holds"] for t in pooled.values())
    assert d["verdict"] == "PASS" and d["missing"] == 0


def test_robustness_opposite_effect_and_a_failing_pooled_prediction():
    # predicted negative transfer at |u| = 0 but transfer is better in every seed
    better = rising(0, band(0))
    d = robustness.decide(["v"], [0.0, 1.0, 2.0], better[0][None], better[1][None], reversed_={})
    r = d["results"]["v"]["at |u| = 0"]
    assert r["p"] == 1.0 and r["p_opposite"] == approx(2.0**-10) and r["status"] == "opposite"
    assert not d["pooled"]["negative transfer at |u| = 0"]["holds"]
    assert "gain at |u| = 0 (reversal)" not in d["pooled"]  # no variant predicts it
    assert d["verdict"] == "FAIL"


def test_robustness_missing_value_fails_and_is_counted():
    et, es = rising(0, band(1, -1.0))
    et[1, 4] = NAN  # |u| = 1: only the growth uses it
    d = robustness.decide(["v"], [0.0, 1.0, 2.0], et[None], es[None], reversed_={})
    assert d["results"]["v"]["gain at |u| = 2"]["status"] == "detected"
    assert math.isnan(d["results"]["v"]["gain grows with |u|"]["p"])
    assert d["missing"] == 1 and d["verdict"] == "FAIL"
