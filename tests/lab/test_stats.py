"""The shared statistics (refimpl.lab.stats) against hand values, and a
diverged seed failing a verdict end to end through the sweep."""

import numpy as np
import pytest

from refimpl.claims._trend import trend_decision
from refimpl.lab import report as R
from refimpl.lab import stats as V


def test_sem_over_finite_values():
    assert V.sem([1.0, 2.0, 3.0]) == pytest.approx(1 / np.sqrt(3))
    assert V.sem([1.0, 2.0, 3.0, np.nan]) == pytest.approx(1 / np.sqrt(3))
    assert np.isnan(V.sem([1.0, np.inf]))
    rows = V.sem(np.array([[1.0, 2.0, 3.0], [2.0, 2.0, np.nan]]), axis=1)
    assert rows[0] == pytest.approx(1 / np.sqrt(3)) and rows[1] == 0.0


def test_one_significance_level():
    assert V.SIGNIFICANCE == 0.01


def test_paired_t_against_hand_values():
    # differences 1, 2, 3: mean 2, se 1/sqrt(3), t = 2 sqrt(3), df = 2;
    # one-sided p = P(T_2 > 3.4641) = 0.037089 (t-table value): FAIL at 0.01
    r = V.paired_t([2.0, 4.0, 6.0], [1.0, 2.0, 3.0], "greater")
    assert r["mean"] == pytest.approx(2.0)
    assert r["se"] == pytest.approx(1 / np.sqrt(3))
    assert r["t"] == pytest.approx(2 * np.sqrt(3))
    assert r["p"] == pytest.approx(0.037089, abs=2e-6)
    assert r["n"] == 3 and r["n_missing"] == 0 and not r["p"] < 0.01
    # differences 1..5: mean 3, se sqrt(2.5 / 5), t = sqrt(18) = 4.2426, df = 4; the
    # closed form of the T_4 tail, P(T_4 > t) = 1/2 - (3/4) s (1 - s^2/3) with
    # s = t / sqrt(4 + t^2) = sqrt(18/22), gives p = 0.0066178: PASS at 0.01
    r = V.paired_t([1.0, 2, 3, 4, 5], [0.0] * 5)
    assert r["t"] == pytest.approx(np.sqrt(18))
    s = np.sqrt(18 / 22)
    assert r["p"] == pytest.approx(0.5 - 0.75 * s * (1 - s**2 / 3)) and r["p"] < 0.01
    assert V.paired_t([1.0, 1.0], [0.0, 0.0])["p"] == 0.0  # no variance, right sign
    assert V.paired_t([0.0, 0.0], [1.0, 1.0])["p"] == 1.0


def test_a_missing_value_makes_p_nan_and_is_counted():
    r = V.paired_t([1.0, 2.0, np.nan, 4.0, 5.0, 6.0], [0.0] * 6)
    assert r["n"] == 5 and r["n_missing"] == 1
    assert np.isnan(r["p"]) and not r["p"] < 0.01  # the verdict cannot pass
    assert r["mean"] == pytest.approx(18 / 5)  # shown over the complete pairs
    assert V.n_missing([1.0, None, np.inf], [[np.nan, 2.0]]) == 3
    v = np.array([[1.0, 1, 1, 1], [2, 2, np.inf, 2], [3, 3, 3, 3]])
    t = V.trend([1, 2, 3], v)
    assert t["n_missing"] == 1 and t["n"] == 3 and np.isnan(t["p"])
    assert "p n/a" in R.fmt_p(t["p"])


def increasing_unless_diverged(config):
    """g grows with u_norm in every run; g_diverged is the same except one
    run at u_norm = 3 that diverged (inf, stored as null)."""
    g = config.u_norm
    return {
        "g": g,
        "g_diverged": float("inf") if (config.u_norm == 3.0 and config.n_up == 11) else g,
    }


def test_a_diverged_seed_fails_the_verdict(tmp_path):
    """End to end through the sweep: a diverged run gives FAIL with the
    missing count, not a PASS over the remaining seeds."""
    from refimpl.config import Config
    from refimpl.lab.sweep import run_sweep

    def grid(n_up):
        return [
            Config(d=40, m=2, n_up=n_up, n_down=6, steps_up=5, steps_down=5, u_norm=u)
            for u in (1.0, 2.0, 3.0)
        ]

    # blocks: 5 seeds of n_up = 10 and 1 seed of n_up = 11 (the diverging one)
    a = run_sweep(
        grid(10), measure=increasing_unless_diverged, replicates=5, cache=tmp_path, progress=False
    )
    b = run_sweep(
        grid(11), measure=increasing_unless_diverged, replicates=1, cache=tmp_path, progress=False
    )
    values = {k: np.concatenate([a.values(k), b.values(k)], axis=1) for k in ("g", "g_diverged")}
    clean = V.trend([1, 2, 3], values["g"])
    assert clean["p"] == pytest.approx(6.0**-6) and clean["n_missing"] == 0  # PASS
    t = V.trend([1, 2, 3], values["g_diverged"])
    missing = V.n_missing(values["g_diverged"])
    assert missing == 1 and t["n"] == 5
    # the trend procedure of the claims counts it and fails (refimpl.claims._base)
    dec = trend_decision({"p": [1, 2, 3]}, {"p": {"steps": values["g_diverged"]}}, "greater")
    assert dec["missing"] == 1 and dec["verdict"] == "FAIL"
    # the five complete seeds alone would pass (6^-5 < 0.01): the missing one must not be dropped
    assert V.trend([1, 2, 3], values["g"][:, :5])["p"] < 0.01


def test_trend_against_hand_values():
    # 3 points, every block perfectly increasing: rank sums R = (b, 2b, 3b),
    # L = sum_j j R_j = 14 b; exact p = P(every block in the predicted order) = (1/3!)^b
    up = np.array([[1.0, 5.0, 9.0]] * 4).T  # (points, blocks)
    t = V.trend([0.1, 0.2, 0.3], up, "greater")
    assert t["L"] == 56 and t["rho"] == 1.0
    assert t["p"] == pytest.approx(1 / 1296) and t["p"] < 0.01  # PASS
    t2 = V.trend([0.1, 0.2, 0.3], up[:, :2], "greater")
    assert t2["p"] == pytest.approx(1 / 36) and not t2["p"] < 0.01  # two blocks only: FAIL
    down = V.trend([0.1, 0.2, 0.3], up[::-1], "less")
    assert down["p"] == pytest.approx(1 / 1296) and down["rho"] == -1.0
    assert V.trend([0.1, 0.2, 0.3], up, "less")["p"] == pytest.approx(1.0)
    assert V.trend([0.1, 0.2, 0.3], up, "two-sided")["p"] == pytest.approx(2 / 1296)
    # x given out of order: the order of x, not of the rows, is predicted
    t3 = V.trend([0.3, 0.1, 0.2], up[[2, 0, 1]], "greater")
    assert t3["p"] == pytest.approx(1 / 1296) and t3["rho"] == 1.0
    # per-block Spearman: block (1, 3, 2) has rho = 1 - 6*2/(3*8) = 0.5
    mixed = np.array([[1.0, 2, 3], [1, 3, 2]]).T
    assert V.trend([1, 2, 3], mixed)["rho"] == pytest.approx(0.75)
    with pytest.raises(ValueError, match="3 distinct"):
        V.trend([1, 2], np.ones((2, 3)))
    with pytest.raises(ValueError, match="shape"):
        V.trend([1, 2, 3], np.ones((4, 3)))


def test_holm_over_one_family():
    # sorted 0.01, 0.03, 0.04 -> 3*0.01, max(0.03, 2*0.03), max(0.06, 1*0.04)
    assert np.allclose(V.holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    assert np.allclose(V.holm([0.5, 0.9]), [1.0, 1.0])
    # a cell at p = 0.004: significant in a heatmap of 2 cells (0.008) but
    # not in the family of 4 heatmaps x 2 cells (8 * 0.004 = 0.032)
    assert V.holm([0.004, 0.5])[0] < 0.01
    assert not V.holm([0.004] + [0.5] * 7)[0] < 0.01
    adj = V.holm(np.array([[0.001, np.nan], [0.2, 0.3]]))
    assert np.isnan(adj[0, 1]) and adj[0, 0] == pytest.approx(0.004)  # NaN counts as 1


def test_bonferroni_min_over_alternative_levers():
    assert V.bonferroni_min([0.004, 0.2]) == pytest.approx(0.008)  # either holds: PASS
    assert not V.bonferroni_min([0.006, 0.2]) < 0.01  # 0.012: FAIL
    assert V.bonferroni_min([0.6, 0.9]) == 1.0
    assert np.isnan(V.bonferroni_min([0.001, np.nan]))


def test_equivalence_rule():
    assert V.equivalent((0.22, 0.28), 0.25, 0.05)  # PASS
    assert not V.equivalent((0.17, 0.33), 0.25, 0.05)  # contains 0.25 but too wide: FAIL
    assert not V.equivalent((0.26, 0.31), 0.25, 0.05)
    assert V.equivalent((-0.29, -0.21), -0.25, 0.05)
    assert not V.equivalent((float("nan"), 0.3), 0.25, 0.05)


def test_wilcoxon_against_hand_values():
    # five positive differences, all distinct: the exact one-sided p is 1/2^5
    r = V.wilcoxon([1.0, 2, 3, 4, 5], [0.0] * 5)
    assert r["p"] == pytest.approx(1 / 32) and r["median"] == 3.0 and r["n"] == 5
    # one huge outlier moves the mean, not the rank test: 4 of 5 differences negative
    a, b = [0.0, 0, 0, 0, 100.0], [1.0, 2, 3, 4, 0]
    assert V.paired_t(a, b)["mean"] > 0 and V.wilcoxon(a, b)["p"] > 0.1
    assert np.isnan(V.wilcoxon([1.0, np.nan], [0.0, 0.0])["p"])
    assert V.wilcoxon([1.0, 1.0], [1.0, 1.0])["p"] == 1.0


def test_paired_failures_exact_mcnemar():
    # 5 runs fail under a only, none under b only: p = 1/2^5 (gain_alpha's noisy regime: 5 vs 0)
    fa = [1] * 5 + [0] * 30 + [1] * 2
    fb = [0] * 5 + [0] * 30 + [1] * 2
    r = V.paired_failures(fa, fb)
    assert (r["a_only"], r["b_only"]) == (5, 0) and r["p"] == pytest.approx(1 / 32)
    assert r["rate_a"] == pytest.approx(7 / 37) and r["rate_b"] == pytest.approx(2 / 37)
    # 3 vs 1 discordant: P(Bin(4, 1/2) >= 3) = 5/16
    r = V.paired_failures([1, 1, 1, 0], [0, 0, 0, 1])
    assert r["p"] == pytest.approx(5 / 16)
    assert V.paired_failures([1, 1, 1, 0], [0, 0, 0, 1], "less")["p"] == pytest.approx(15 / 16)
    assert V.paired_failures([0, 0], [0, 0])["p"] == 1.0
    assert np.isnan(V.paired_failures([1, np.nan], [0, 0])["p"])


def test_outcome_summary_shows_the_tail():
    v = np.array([[0.01, 0.02, 0.03, 0.26], [0.01, 0.02, 0.03, np.nan]])
    s = V.outcome_summary(v, threshold=0.2)
    assert s["median"][0] == pytest.approx(0.025) and s["mean"][0] == pytest.approx(0.08)
    assert s["failure_rate"][0] == 0.25 and s["failure_rate"][1] == 0.0
    assert list(s["n_missing"]) == [0, 1]


def test_auc_by_hand():
    assert V.auc([1, 2, 3, 4], [0, 0, 1, 1]) == 1.0
    assert V.auc([4, 3, 2, 1], [0, 0, 1, 1]) == 0.0
    assert V.auc([1, 1, 1, 1], [0, 1, 0, 1]) == 0.5  # ties count one half
    assert V.auc([1, 3, 2, 4], [0, 0, 1, 1]) == 0.75  # pairs (2>1, 2<3, 4>1, 4>3)
    assert np.isnan(V.auc([1, 2], [1, 1]))  # one class empty
    assert np.isnan(V.auc([1, np.nan], [0, 1]))


def test_fisher_greater_by_hand():
    # 3 exposed runs, 2 events, both among the exposed: P = C(2,2) C(4,1) / C(6,3) = 0.2
    r = V.fisher_greater([1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0])
    assert r["p"] == pytest.approx(0.2)
    assert r["rate_exposed"] == pytest.approx(2 / 3) and r["rate_unexposed"] == 0.0
    assert V.fisher_greater([0, 0, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0])["p"] == pytest.approx(1.0)
    assert V.fisher_greater([0, 0, 0], [1, 0, 1])["p"] == 1.0  # nobody exposed


def test_logistic_fit_recovers_coefficients_and_stays_finite_when_separable():
    rng = np.random.default_rng(3)
    x = rng.normal(size=20000)
    y = (rng.random(20000) < 1 / (1 + np.exp(-(0.5 + 2 * x)))).astype(float)
    fit = V.logistic_fit(x, y)
    assert fit["converged"]
    assert fit["coef"] == pytest.approx([0.5, 2.0], abs=0.1)
    sep = V.logistic_fit(np.array([-2.0, -1.0, 1.0, 2.0]), np.array([0, 0, 1, 1]))
    assert np.all(np.isfinite(sep["coef"])) and sep["coef"][1] > 0
    with pytest.raises(ValueError):
        V.logistic_fit(np.ones((3, 2)), [0, 1])
