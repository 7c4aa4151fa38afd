"""The pure decision functions of the claims (``refimpl.claims.<name>.decide``)
on hand-made inputs with known answers.

Expected p-values come from closed forms, not from running the code:

- one-sided paired t with n = 2 (1 degree of freedom, Cauchy):
  p = 1/2 - arctan(t)/pi;
- with n = 3 (2 degrees of freedom): p = 1/2 - t / (2 sqrt(t^2 + 2));
- differences [a - h, a, a + h] have sd h, so t = a sqrt(3) / h;
- a constant nonzero difference has zero variance: p = 0 in the tested
  direction, 1 against it (documented rule of ``paired_t``);
- Page's L test, exact, when every one of b blocks is perfectly ordered as
  predicted over k points: p = (1/k!)^b (the largest L, reached only so).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from refimpl.claims import (
    coefficients,
    gain_alpha,
    gain_noise_dim,
    gain_shared,
    gain_upstream_n,
    mechanism,
    mitigation,
    negative_transfer,
    phase_single,
    robustness,
)
from refimpl.lab import stats as S

NAN = float("nan")
CLAIMS = (
    coefficients,
    phase_single,
    gain_shared,
    gain_upstream_n,
    gain_alpha,
    gain_noise_dim,
    negative_transfer,
    mechanism,
    mitigation,
    robustness,
)


def p_df1(t):
    """One-sided p of a t statistic with 1 degree of freedom."""
    return 0.5 - math.atan(t) / math.pi


def p_df2(t):
    """One-sided p of a t statistic with 2 degrees of freedom."""
    return 0.5 - t / (2 * math.sqrt(t * t + 2))


def page_perfect(k, b):
    """Exact Page p of b perfectly ordered blocks over k points."""
    return (1 / math.factorial(k)) ** b


def approx(x, rel=1e-6, abs=1e-12):
    return pytest.approx(x, rel=rel, abs=abs)


UP3, UP3_P = [0.010, 0.012, 0.014], p_df2(6 * math.sqrt(3))  # a = 0.012, h = 0.002


def test_closed_forms_match_the_t_distribution():  # the helpers themselves
    assert p_df1(2.0) == approx(scipy.stats.t.sf(2.0, 1))
    assert p_df2(6 * math.sqrt(3)) == approx(scipy.stats.t.sf(6 * math.sqrt(3), 2))


def test_every_claim_uses_the_one_significance_level():
    for mod in CLAIMS:
        assert callable(mod.decide), mod.NAME
        if hasattr(mod, "SIGNIFICANCE"):
            assert mod.SIGNIFICANCE == S.SIGNIFICANCE == 0.01, mod.NAME
    assert not hasattr(phase_single, "LEVEL")
    assert phase_single.BOUNDARY_ERROR == 0.2


# gain_shared, gain_upstream_n (the same rule), gain_noise_dim: Page trend tests
UP = np.array([[0.0, 0.01, 0.02], [0.1, 0.12, 0.11], [0.2, 0.25, 0.3]])  # every seed rising
X3 = [1.0, 2.0, 4.0]
TREND_CASES = [
    (X3, UP, page_perfect(3, 3), "PASS"),  # 1/216 < 0.01
    (X3, UP[:, :2], page_perfect(3, 2), "FAIL"),  # 1/36: two seeds are too few
    (X3, UP[:, :1], 1.0, "FAIL"),  # one seed: no test
    (X3, UP[::-1], 1.0, "FAIL"),  # falling: the smallest L
    ([10, 20, 40, 80], [[0, 1], [1, 2], [2, 3], [3, 4]], page_perfect(4, 2), "PASS"),
]


@pytest.mark.parametrize("mod", [gain_shared, gain_upstream_n])
@pytest.mark.parametrize("x, gain, p, verdict", TREND_CASES)
def test_gain_grows_page_trend(mod, x, gain, p, verdict):
    d = mod.decide(x, {"steps": np.asarray(gain, float)})  # one stopping rule
    assert d["trend"]["steps"]["p"] == approx(p) and d["verdict"] == verdict and d["missing"] == 0
    assert verdict == "FAIL" or d["trend"]["steps"]["rho"] == approx(1.0)


@pytest.mark.parametrize("mod", [gain_shared, gain_upstream_n])
def test_gain_grows_missing_values_fail_and_are_counted(mod):
    gain = UP.tolist()
    gain[1][2] = None
    gain[2][0] = NAN
    d = mod.decide(X3, {"steps": gain})
    assert d["missing"] == 2 and d["verdict"] == "FAIL" and math.isnan(d["trend"]["steps"]["p"])


DOWN_NAN = np.where([[True, False, False], [False] * 3, [False] * 3], NAN, UP[::-1])


@pytest.mark.parametrize(
    "gain_sigma, gain_d, verdict, missing",
    [
        (UP[::-1], UP[::-1], "PASS", (0, 0, 0)),  # both fall: p = 1/216 each
        (UP[::-1], UP, "FAIL", (0, 0, 0)),  # d rises
        (UP[::-1, :2], UP[::-1], "FAIL", (0, 0, 0)),  # sigma: 1/36 with two seeds
        (UP[::-1], DOWN_NAN, "FAIL", (0, 1, 1)),
    ],
)  # a missing value, counted per panel
def test_gain_noise_dim_both_trends_must_fall(gain_sigma, gain_d, verdict, missing):
    d = gain_noise_dim.decide(X3, {"steps": gain_sigma}, [60, 120, 240], {"steps": gain_d})
    assert d["trend_sigma"]["steps"]["p"] == approx(page_perfect(3, gain_sigma.shape[1]))
    assert (d["missing_sigma"], d["missing_d"], d["missing"]) == missing
    assert d["verdict"] == verdict


# gain_alpha: protocol v2 (Page, Wilcoxon, McNemar on failures), tested in
# tests/test_claims_disclosed.py


# negative_transfer: protocol v2 (distinct cells; Wilcoxon and McNemar on
# failures per cell, Holm over both; both stopping rules), tested in
# tests/test_claims_redesign.py


# mechanism
def mech(err_diff, rho_diff, flip_diff):
    base = np.array([0.25, 0.375, 0.5])
    return dict(
        err_transfer=base + err_diff,
        err_scratch=base,
        rho_transfer=1.0 + base + rho_diff,
        rho_scratch=1.0 + base,
        rho_flip_transfer=2.0 + base + flip_diff,
        rho_flip_scratch=2.0 + base,
    )


@pytest.mark.parametrize(
    "err_diff, flip_diff, p_err, p_flip, verdict",
    [
        (UP3, [0.010, 0.011, 0.012], UP3_P, p_df2(11 * math.sqrt(3)), "PASS"),
        (UP3, [0.01, 0.02, 0.03], UP3_P, p_df2(2 * math.sqrt(3)), "FAIL"),  # flip: 0.037
        ([-x for x in UP3], [0.010, 0.011, 0.012], 1 - UP3_P, p_df2(11 * math.sqrt(3)), "FAIL"),
    ],
)
def test_mechanism_three_one_sided_tests(err_diff, flip_diff, p_err, p_flip, verdict):
    d = mechanism.decide(**mech(err_diff, 0.5, flip_diff))
    assert d["tests"]["err"]["p"] == approx(p_err)
    assert d["tests"]["rho_flip"]["p"] == approx(p_flip)
    assert d["tests"]["rho_mean"]["p"] == 0.0  # constant 0.5
    assert d["verdict"] == verdict and d["missing"] == 0


def test_mechanism_seed_without_flipped_points_is_missing():
    v = mech([0.010, 0.012, 0.014], 0.5, [0.010, 0.011, 0.012])
    v["rho_flip_scratch"] = np.array([2.25, NAN, 2.5])
    d = mechanism.decide(**v)
    assert math.isnan(d["tests"]["rho_flip"]["p"])
    assert d["missing"] == 1 and d["verdict"] == "FAIL"


# mitigation
LEVERS = ["baseline", "alpha", "wd 1", "wd 2", "freeze", "rescale"]
CLAIMED = {"smaller alpha": ["alpha"], "weight decay": ["wd 1", "wd 2"], "freezing": ["freeze"]}
BASE_NEG = np.array([8, 9, 10]) / 64  # negative transfer: t = 9 sqrt(3) against 0
WD_SMALL = np.array([4, 5, 6]) / 1024  # a reduction with t = 5 sqrt(3)


def mit(reductions):
    """neg of shape (levers, 1 cell, 3 seeds): baseline minus each lever's reduction."""
    return np.array([[BASE_NEG]] + [[BASE_NEG - np.asarray(r, float)] for r in reductions])


def test_mitigation_pass():
    neg = mit([1 / 16, WD_SMALL, 1 / 32, 1 / 16, -1 / 64])
    d = mitigation.decide(LEVERS, neg, CLAIMED)
    assert d["baseline"]["p"] == approx(p_df2(9 * math.sqrt(3)))
    assert d["claim_p"]["weight decay"] == 0.0  # wd 2: constant, p = 0
    assert d["per_claim"] == {"smaller alpha": True, "weight decay": True, "freezing": True}
    assert d["verdict"] == "PASS" and d["missing"] == 0
    pooled = mitigation.decide(LEVERS, np.concatenate([neg, neg], axis=1), CLAIMED)  # 2 cells
    assert pooled["tests"]["alpha"]["n"] == 6 and pooled["verdict"] == "PASS"


def test_mitigation_bonferroni_over_weight_decay_levels_and_the_baseline():
    # wd 1 alone: t = 5 sqrt(3), raw p = 0.0065 < 0.01; wd 2 does nothing
    # (p = 1): the claim's p is 2 x 0.0065 = 0.013 >= 0.01
    neg = mit([1 / 16, WD_SMALL, -1 / 64, 1 / 16, -1 / 64])
    d = mitigation.decide(LEVERS, neg, CLAIMED)
    raw = p_df2(5 * math.sqrt(3))
    assert raw < 0.01
    assert d["tests"]["wd 1"]["p"] == approx(raw)
    assert d["claim_p"]["weight decay"] == approx(2 * raw)
    assert d["per_claim"]["weight decay"] is False and d["verdict"] == "FAIL"
    neg = mit([1 / 16, 1 / 32, 1 / 32, 1 / 16, 0.0]) - 0.25  # baseline < 0: none to mitigate
    d = mitigation.decide(LEVERS, neg, CLAIMED)
    assert all(d["per_claim"].values()) and d["baseline"]["p"] > 0.5
    assert d["verdict"] == "FAIL"


def test_mitigation_counts_missing_of_any_lever():
    neg = mit([1 / 16, 1 / 32, 1 / 32, 1 / 16, 0.0])
    assert mitigation.decide(LEVERS, neg, CLAIMED)["verdict"] == "PASS"
    neg[5, 0, 1] = NAN  # the rescale lever: not claimed
    d = mitigation.decide(LEVERS, neg, CLAIMED)
    assert d["verdict_tests"] == "PASS"
    assert d["missing"] == 1 and d["verdict"] == "FAIL"


# robustness: protocol v2 (separate findings per variant, pooled verdict,
# the cos(v_1, v_2) = 0.5 reversal as its own prediction), tested in
# tests/test_claims_redesign.py


# phase_single
MUS = [0.5, 1.0, 2.0, 4.0, 8.0]


def phase_panel(field, xs, fixed, exponent, seeds=3, noisy_offsets=(0.0, 0.001, 0.002)):
    """err = 0.2 - 0.1 (log|mu| - log mu*(x)), mu*(x) = 2 (x/x_mid)^exponent: linear in
    log|mu|, so the interpolated boundary is exact. Noisy error 0.1 above the boundary
    (indicator >= 50), 0.3 below (<= 0.5), else 0.2, plus a per-seed offset."""
    xs = np.asarray(xs, float)
    star = 2.0 * (xs / xs[len(xs) // 2]) ** exponent
    err = 0.2 - 0.1 * (np.log(MUS)[None, :] - np.log(star)[:, None])
    n = xs if field == "n_up" else np.full_like(xs, fixed)
    d = xs if field == "d" else np.full_like(xs, fixed)
    ind = n[:, None] * np.asarray(MUS)[None, :] ** 4 / d[:, None]
    level = np.where(ind >= 50, 0.1, np.where(ind <= 0.5, 0.3, 0.2))
    off = np.asarray(noisy_offsets)[None, None, :seeds]
    return {
        "field": field,
        "xs": list(xs),
        "mus": MUS,
        "indicator": ind,
        "err": np.repeat(err[:, :, None], seeds, axis=2),
        "noisy": level[:, :, None] + off,
        "stopped": np.ones((len(xs), len(MUS), seeds)),
    }


def phase_pair(exp_d=0.25, exp_n=-0.25):
    return (
        phase_panel("d", [100, 200, 400], 20, exp_d),
        phase_panel("n_up", [10, 20, 40], 200, exp_n),
    )


def test_phase_single_boundary_interpolates_in_log_mu():
    mus = [1.0, math.e, math.e**2]
    assert phase_single._boundary(mus, [0.4, 0.3, 0.1]) == approx(math.exp(1.5))
    assert phase_single._boundary(mus, [0.3, 0.2, 0.1]) == approx(math.e)  # 0.2 is not below
    # from >= 0.2 to < 0.2: on a plateau at exactly 0.2 the boundary is where it leaves it
    assert phase_single._boundary([1, 2, 4, 8], [0.3, 0.2, 0.2, 0.1]) == approx(4.0)
    assert phase_single._boundary([1, 2, 4], [0.2, 0.1, 0.05]) == approx(1.0)
    assert phase_single._boundary([1, 2, 4, 8], [0.3, 0.1, 0.3, 0.1]) == approx(math.sqrt(2))
    assert math.isnan(phase_single._boundary(mus, [0.5, 0.4, 0.3]))


def test_phase_single_pass_on_a_surface_with_the_theory_exponents():
    pd, pn = phase_pair()
    d = phase_single.decide(pd, pn)
    assert d["fits"]["d"]["bounds"] == approx(2.0 * (np.array([100, 200, 400]) / 200) ** 0.25)
    assert d["fits"]["n"]["bounds"] == approx(2.0 * (np.array([10, 20, 40]) / 20) ** -0.25)
    assert d["fits"]["d"]["slope"] == approx(0.25) and d["fits"]["n"]["slope"] == approx(-0.25)
    # identical seeds: every bootstrap resample gives the same slope
    assert d["fits"]["d"]["ci"] == approx((0.25, 0.25)) and d["fits"]["d"]["n_boot"] == 400
    # above: 0.12 - [0.100, 0.101, 0.102]; below: [0.300, 0.301, 0.302] - 0.2
    assert d["t_hi"]["p"] == approx(p_df2(19 * math.sqrt(3)))
    assert d["t_lo"]["p"] == approx(p_df2(101 * math.sqrt(3)))
    assert d["frac_stopped"] == 1.0 and d["no_boundary"] == 0
    assert d["verdict"] == "PASS" and d["missing"] == 0


def test_phase_single_fail_on_a_wrong_exponent_or_a_wide_interval():
    d = phase_single.decide(*phase_pair(exp_d=0.5), resamples=50)
    assert d["fits"]["d"]["slope"] == approx(0.5)
    assert d["ok_d"] is False and d["ok_n"] is True and d["verdict"] == "FAIL"
    pd, pn = phase_pair()
    # seeds disagree by +-0.05 in clean error: +-0.5 in log|mu|* per cell resample
    pd["err"] = pd["err"] + np.array([-0.05, 0.0, 0.05])[None, None, :]
    d = phase_single.decide(pd, pn, resamples=200)
    assert d["fits"]["d"]["slope"] == approx(0.25)  # the point estimate is right
    lo, hi = d["fits"]["d"]["ci"]
    assert hi - lo > 2 * phase_single.MARGIN and d["ok_d"] is False
    assert d["verdict"] == "FAIL"
    assert phase_single.decide(pd, pn, resamples=200)["fits"]["d"]["ci"] == (lo, hi)  # seeded


def test_phase_single_loss_threshold_95_percent():
    pd, pn = phase_pair()
    pd["stopped"].ravel()[:4] = 0  # 86 of 90 runs: 95.6%
    assert phase_single.decide(pd, pn, resamples=50)["ok_loss"] is True
    pd["stopped"].ravel()[4] = 0  # 85 of 90: 94.4%
    d = phase_single.decide(pd, pn, resamples=50)
    assert d["frac_stopped"] == approx(85 / 90) and d["ok_loss"] is False
    assert d["verdict"] == "FAIL"


def test_phase_single_row_without_boundary_or_a_missing_value_fails():
    pd, pn = phase_pair()
    pd["err"][2] = 0.35  # the last d never gets below 0.2
    d = phase_single.decide(pd, pn, resamples=50)
    assert d["no_boundary"] == 1 and math.isnan(d["fits"]["d"]["bounds"][2])
    assert d["fits"]["d"]["slope"] == approx(0.25)  # fitted on the other two rows
    assert d["verdict_tests"] == "PASS"
    assert d["missing"] == 1 and d["verdict"] == "FAIL"
    pn["stopped"][0, 0, 0] = NAN  # and a missing value
    d = phase_single.decide(pd, pn, resamples=50)
    assert d["missing"] == 2 and d["ok_loss"] is False and d["verdict"] == "FAIL"


# coefficients
THEORY = np.array([0.1, 0.2, 0.4, 0.8])


def checks(reconstruction=(1e-12, 1e-10), broken=(0, 0)):
    one = {
        "reconstruction": np.array(reconstruction, float),
        "projection": np.array([1e-12, 1e-11]),
        "invariants_applicable": np.array([5.0, 5.0]),
        "invariants_broken": np.array(broken, float),
    }
    return {"up": one, "down": dict(one)}


def ratio_data(slope=1.0, noise=0.0):
    """gamma / rho = theory^slope * exp(+-noise) (seed 0: +, seed 1: -)."""
    e = np.array([noise, -noise])
    return THEORY[:, None] ** slope * np.exp(e)[None, :], np.ones((4, 2))


def ci_half_width(noise):
    """95% t half-width of the slope for ratio_data: residuals +-noise about an
    exact line, x = log theory twice (Sxx = 10 (ln 2)^2), n = 8."""
    se = math.sqrt(8 * noise**2 / 6 / (10 * math.log(2) ** 2))
    return scipy.stats.t.ppf(0.975, 6) * se


def test_coefficients_pass_and_fail_on_the_slope_interval():
    d = coefficients.decide(checks(), THEORY, *ratio_data(noise=0.01))
    assert d["fit"]["slope"] == approx(1.0) and d["fit"]["n_points"] == 8
    assert d["ci"] == approx((1 - ci_half_width(0.01), 1 + ci_half_width(0.01)))
    assert d["ok_exact"] and d["ok_ratio"] and d["verdict"] == "PASS"
    assert d["worst"]["up"]["invariants_applicable"] == 10
    wide = coefficients.decide(checks(), THEORY, *ratio_data(noise=0.1))
    assert wide["fit"]["slope"] == approx(1.0)  # right slope, CI +-0.13
    assert wide["ci"][1] == approx(1 + ci_half_width(0.1)) and wide["verdict"] == "FAIL"
    steep = coefficients.decide(checks(), THEORY, *ratio_data(slope=1.2))
    assert steep["fit"]["slope"] == approx(1.2) and steep["verdict"] == "FAIL"


def test_coefficients_tolerance_invariants_and_missing_checks():
    at_tol = coefficients.decide(checks(reconstruction=(1e-8, 0.0)), THEORY, *ratio_data())
    assert at_tol["ok_exact"] is True  # <= TOL passes
    above = coefficients.decide(checks(reconstruction=(2e-8, 0.0)), THEORY, *ratio_data())
    assert above["ok_exact"] is False and above["verdict"] == "FAIL"
    broke = coefficients.decide(checks(broken=(0, 1)), THEORY, *ratio_data())
    assert broke["worst"]["up"]["invariants_broken"] == 1 and broke["verdict"] == "FAIL"
    c = checks()  # a missing check value
    c["down"] = dict(c["down"], projection=np.array([1e-12, NAN]))
    d = coefficients.decide(c, THEORY, *ratio_data())
    assert d["missing_checks"] == 1 and d["ok_exact"] is False and d["verdict"] == "FAIL"


def test_coefficients_non_positive_ratio_is_missing_and_left_out_of_the_fit():
    gamma, rho = ratio_data(noise=0.01)
    rho[2, 1] = 0.0  # ratio inf
    gamma[3, 0] = -1.0  # ratio negative: log undefined
    d = coefficients.decide(checks(), THEORY, gamma, rho)
    assert d["missing_ratio"] == 2 and d["fit"]["n_points"] == 6
    assert d["verdict_tests"] == "PASS"
    assert d["missing"] == 2 and d["verdict"] == "FAIL"
