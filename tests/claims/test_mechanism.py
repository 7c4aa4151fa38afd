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


# ----------------------------------------------------------------------
# registry examples (tests/claims/test_declarations.py)
def _regime(seeds, diff):
    """Every scalar metric at ``seeds`` seeds, transfer above scratch by
    ``diff`` + r/1024 (seed r) in the tested metrics; curves of two steps."""
    r = np.arange(seeds) / 1024
    v = {k: 0.25 + r for k in M.EQ_METRICS}
    for k in ("err", "rho_mean", "rho_flip", "rho_max"):
        v[M.TESTED[k].format("transfer")] = 0.25 + diff + 2 * r
    v.update(stalled_transfer=0 * r, stalled_scratch=0 * r, up_stopped_early=0 * r)
    curves = {k: [[0.0, 1.0] for _ in range(seeds)] for k in M.CURVES}
    return {"steps": v, "loss": dict(v), "curves": curves}


def examples(size):
    """PASS: transfer above scratch in every tested metric (a t statistic
    far beyond 0.01's quantile); FAIL: below."""
    return {
        verdict: {name: _regime(size.seeds, diff) for name in size.configs}
        for verdict, diff in (("PASS", 0.125), ("FAIL", -0.125))
    }
