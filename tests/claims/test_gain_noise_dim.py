"""Tests of gain_noise_dim (moved from the history-named test files)."""

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
from refimpl.theory import indicators

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


def test_gain_noise_dim_d_panel_keeps_gamma_scr_and_the_geometry():
    _, panels = gain_noise_dim.panel_configs(False)
    _, grid = panels["d"]
    assert [c.n_down for c in grid] == [5, 10, 20, 40, 80]  # N_2 = 10 d / 600
    for c in grid:
        assert indicators(c)["gamma_scr"] == approx(10 * 4 / 600, rel=1e-12)  # 1/15
        assert (c.u_norm, c.v_up_norm, c.v_down_norm, c.sigma_p_up) == (1.0, 1.0, 1.0, 1.0)
    _, grid = panels["sigma_p_up"]
    assert {(c.d, c.n_down) for c in grid} == {(600, 10)}


@pytest.mark.parametrize(
    "sig_loss, d_loss, verdict",
    [
        (DOWN, DOWN, "PASS"),
        (DOWN, UP, "FAIL"),  # d panel rises at equal loss
        (DOWN[:, :2], DOWN, "FAIL"),
    ],
)  # 1/36 in the sigma panel at equal loss
def test_gain_noise_dim_needs_both_panels_under_both_rules(sig_loss, d_loss, verdict):
    d = gain_noise_dim.decide(
        [0.5, 1.0, 2.0],
        {"steps": DOWN, "loss": sig_loss},
        [300, 600, 1200],
        {"steps": DOWN, "loss": d_loss},
    )
    assert d["trend_sigma"]["steps"]["p"] == approx(1 / 216)
    assert d["trend_d"]["steps"]["p"] == approx(1 / 216)
    assert d["verdict"] == verdict and d["missing"] == 0
    assert d["holds"][("sigma_p_up", "steps")] and d["holds"][("d", "steps")]


def test_gain_noise_dim_missing_values_per_panel():
    d_loss = DOWN.copy()
    d_loss[0, 0] = NAN
    d = gain_noise_dim.decide(
        [0.5, 1.0, 2.0],
        {"steps": DOWN, "loss": DOWN},
        [300, 600, 1200],
        {"steps": DOWN, "loss": d_loss},
    )
    assert (d["missing_sigma"], d["missing_d"], d["missing"]) == (0, 1, 1)
    assert d["verdict"] == "FAIL"
