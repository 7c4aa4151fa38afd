"""Tests of mitigation_freezing (moved from the history-named test files)."""

from __future__ import annotations

# --- moved from test_disclosed.py
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
