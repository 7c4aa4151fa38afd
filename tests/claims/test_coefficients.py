"""Tests of coefficients (moved from the history-named test files)."""

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
