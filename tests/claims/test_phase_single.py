"""Tests of phase_single (moved from the history-named test files)."""

from __future__ import annotations

# --- moved from test_decide.py
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


UP = np.array([[0.0, 0.01, 0.02], [0.1, 0.12, 0.11], [0.2, 0.25, 0.3]])  # every seed rising


X3 = [1.0, 2.0, 4.0]


TREND_CASES = [
    (X3, UP, page_perfect(3, 3), "PASS"),  # 1/216 < 0.01
    (X3, UP[:, :2], page_perfect(3, 2), "FAIL"),  # 1/36: two seeds are too few
    (X3, UP[:, :1], 1.0, "FAIL"),  # one seed: no test
    (X3, UP[::-1], 1.0, "FAIL"),  # falling: the smallest L
    ([10, 20, 40, 80], [[0, 1], [1, 2], [2, 3], [3, 4]], page_perfect(4, 2), "PASS"),
]


DOWN_NAN = np.where([[True, False, False], [False] * 3, [False] * 3], NAN, UP[::-1])


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


LEVERS = ["baseline", "alpha", "wd 1", "wd 2", "freeze", "rescale"]


CLAIMED = {"smaller alpha": ["alpha"], "weight decay": ["wd 1", "wd 2"], "freezing": ["freeze"]}


BASE_NEG = np.array([8, 9, 10]) / 64  # negative transfer: t = 9 sqrt(3) against 0


WD_SMALL = np.array([4, 5, 6]) / 1024  # a reduction with t = 5 sqrt(3)


def mit(reductions):
    """neg of shape (levers, 1 cell, 3 seeds): baseline minus each lever's reduction."""
    return np.array([[BASE_NEG]] + [[BASE_NEG - np.asarray(r, float)] for r in reductions])


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


# --- moved from test_disclosed.py


import math

import numpy as np

from refimpl.claims import (
    coefficients,
    gain_alpha,
    mechanism,
    mitigation,
    mitigation_freezing,
    phase_single,
)

NAN = float("nan")


MINE = (coefficients, phase_single, gain_alpha, mechanism, mitigation, mitigation_freezing)


A = gain_alpha.ALPHAS  # 0, 0.1, ..., 1


def approx(x, rel=1e-6, abs=1e-12):
    return pytest.approx(x, rel=rel, abs=abs)


def p_df2(t):
    return 0.5 - t / (2 * math.sqrt(t * t + 2))


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


BASE_NEG = np.array([8, 9, 10]) / 64


def lever_neg(reductions):
    return np.array([[BASE_NEG]] + [[BASE_NEG - np.asarray(r, float)] for r in reductions])


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
