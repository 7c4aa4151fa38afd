"""mechanism: its declared protocol and disclosure, and the pure
``decide(size, measurements)`` on hand-made per-seed values with known answers.

Expected p-values come from closed forms, not from running the code:

- one-sided paired t with n = 3 (2 degrees of freedom):
  p = 1/2 - t / (2 sqrt(t^2 + 2));
- differences [a - h, a, a + h] have sd h, so t = a sqrt(3) / h;
- a constant nonzero difference has zero variance: p = 0 in the tested
  direction, 1 against it (documented rule of ``paired_t``).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.stats

from refimpl.claims import mechanism as M
from refimpl.lab import stats as S
from refimpl.lab.claim import Disclosure, Protocol

NAN = float("nan")
SIZE = M.PROTOCOL.full


def approx(x, rel=1e-6, abs=1e-12):
    return pytest.approx(x, rel=rel, abs=abs)


def p_df2(t):
    """One-sided p of a t statistic with 2 degrees of freedom."""
    return 0.5 - t / (2 * math.sqrt(t * t + 2))


UP3, UP3_P = [0.010, 0.012, 0.014], p_df2(6 * math.sqrt(3))  # a = 0.012, h = 0.002


def values(err_diff, rho_diff, flip_diff=0.5):
    base = np.array([0.25, 0.375, 0.5])
    return {
        "err_transfer": base + np.asarray(err_diff, float),
        "err_scratch": base,
        "rho_transfer_mean": 1.0 + base + np.asarray(rho_diff, float),
        "rho_scratch_mean": 1.0 + base,
        "rho_flip_transfer": 2.0 + base + np.asarray(flip_diff, float),
        "rho_flip_scratch": 2.0 + base,
    }


def decide(v, at_loss=None):
    """decide on the verdict regime's values (the same at equal loss unless given)."""
    m = {M.VERDICT_REGIME: {"steps": v, "loss": v if at_loss is None else at_loss}}
    return M.decide(SIZE, m)


def test_closed_form_matches_the_t_distribution():
    assert p_df2(6 * math.sqrt(3)) == approx(scipy.stats.t.sf(6 * math.sqrt(3), 2))


def test_protocol_and_disclosure_are_declared():
    p = M.PROTOCOL
    assert isinstance(p, Protocol) and p.name == "mechanism" and p.source == "hypothesis"
    assert p.hash(quick=True) != p.hash() and len(p.hash()) == 12 and p.fixed
    assert p.hash_scheme1 == "143dfe2521b6"  # the committed full-size hash
    assert all(isinstance(d, Disclosure) and d.earlier for d in p.disclosures)
    json.dumps(p.to_dict(), allow_nan=False)
    text = " ".join(d.change + d.earlier for d in p.disclosures)
    assert "`negative`" in text and "-0.438" in text and "20 -> 30" in text
    assert not hasattr(M, "SIGNIFICANCE") or M.SIGNIFICANCE == S.SIGNIFICANCE == 0.01


def test_verdict_rule_and_design_are_unchanged():
    p = M.PROTOCOL
    assert p.full.seeds == 30 and p.quick.seeds == 3 and M.VERDICT_REGIME == "label_noise"
    assert p.salt == "mechanism" and p.common == ()
    ln = p.full.configs["label_noise"]
    assert (ln.u_norm, ln.alpha, ln.n_down, ln.v_down_norm, ln.flip_down) == (2, 1, 40, 3, 0.2)
    assert p.full.configs["absent"].u_norm == 0.0 and p.full.configs["label_noise"].snapshots == 21
    assert (p.full.epsilon, p.full.cap) == (0.005, 2000)
    d = decide(values(UP3, 0.5))
    assert d["tests"]["err"]["p"] == approx(UP3_P)  # 0.0044
    assert d["verdict"] == "PASS"


@pytest.mark.parametrize(
    "err_diff, flip_diff, p_err, p_flip, verdict",
    [
        (UP3, [0.010, 0.011, 0.012], UP3_P, p_df2(11 * math.sqrt(3)), "PASS"),
        (UP3, [0.01, 0.02, 0.03], UP3_P, p_df2(2 * math.sqrt(3)), "FAIL"),  # flip: 0.037
        ([-x for x in UP3], [0.010, 0.011, 0.012], 1 - UP3_P, p_df2(11 * math.sqrt(3)), "FAIL"),
    ],
)
def test_three_one_sided_tests(err_diff, flip_diff, p_err, p_flip, verdict):
    d = decide(values(err_diff, 0.5, flip_diff))
    assert d["tests"]["err"]["p"] == approx(p_err)
    assert d["tests"]["rho_flip"]["p"] == approx(p_flip)
    assert d["tests"]["rho_mean"]["p"] == 0.0  # constant 0.5
    assert d["verdict"] == d["verdict_tests"] == verdict and d["missing"] == 0


def test_equal_loss_is_the_same_rule_and_reported_only():
    d = decide(values(UP3, 0.5), at_loss=values(UP3, -0.5))
    assert d["verdict"] == "PASS" and d["equal_loss"]["verdict"] == "FAIL"
    assert d["equal_loss"]["tests"]["rho_mean"]["p"] == 1.0


def test_seed_without_flipped_points_is_missing():
    v = values(UP3, 0.5, [0.010, 0.011, 0.012])
    v["rho_flip_scratch"] = np.array([2.25, NAN, 2.5])
    d = decide(v)
    assert math.isnan(d["tests"]["rho_flip"]["p"])
    assert d["missing"] == 1 and d["verdict"] == "FAIL"


@pytest.mark.parametrize(
    "err_diff, rho_diff, verdict, reading",
    [
        (0.125, 0.5, "PASS", None),  # all constant: p = 0
        (0.125, -0.5, "FAIL", "refuted"),  # rho-bar smaller: p = 1
        ([0.010, 0.012, 0.014], -0.5, "FAIL", "refuted"),
        ([-0.010, 0.0, 0.010], 0.5, "FAIL", "not tested"),  # no negative transfer
    ],
)
def test_fail_reads_as_refuted_or_not_tested(err_diff, rho_diff, verdict, reading):
    d = decide(values(err_diff, rho_diff))
    assert d["verdict"] == verdict
    if reading:
        assert reading in M._reading(d)


# --- moved from test_decide.py

import math

import pytest

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


# --- moved from test_disclosed.py


import math

import numpy as np
import pytest

from refimpl.claims import (
    coefficients,
    gain_alpha,
    mechanism,
    mitigation,
    mitigation_freezing,
    phase_single,
)
from refimpl.lab.protocol import Disclosure, Protocol

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
