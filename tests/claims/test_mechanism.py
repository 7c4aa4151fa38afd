"""mechanism (v2): its declared protocol and disclosures, and the pure
``decide(size, measurements)`` on hand-made per-seed values with known answers.

Expected p-values come from closed forms, not from running the code:

- exact one-sided Wilcoxon signed-rank test, n nonzero differences with
  distinct sizes, no ties: every sign pattern has probability 2^-n, so when
  all n differences are positive p = 2^-n (10 seeds: 1/1024 = 0.00098);
- differences +1, -2, +3, -4, ..., -10: W+ = 1 + 3 + 5 + 7 + 9 = 25 of 55,
  near the null mean 27.5, so neither one-sided p is below 0.01 (the larger
  one-sided p is at least 1/2);
- exact one-sided McNemar test, k discordant pairs all in the tested
  direction: p = 2^-k (8: 0.0039 < 0.01; 6: 0.0156 > 0.01).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from refimpl.claims import mechanism as M
from refimpl.lab import stats as S
from refimpl.lab.claim import Disclosure, Protocol

NAN = float("nan")
SIZE = M.PROTOCOL.full
N = 10
UP = np.arange(1.0, N + 1)  # +1 ... +10: all positive, distinct sizes
ALT = UP * (-1.0) ** np.arange(N)  # +1, -2, +3, ..., -10


def values(n_fail=8, rho_diff=UP, flip_diff=UP, n=N):
    """One stopping rule's values of the verdict regime over n seeds: transfer
    fails (error 0.3) on the first ``n_fail`` seeds, scratch never (0.05);
    rho-bar transfer - scratch = ``rho_diff`` (mean) and ``flip_diff`` (flipped points)."""
    base = 1.0 + np.arange(n) / 64
    err_t = np.where(np.arange(n) < n_fail, 0.3, 0.05)
    return {
        "err_transfer": err_t,
        "err_scratch": np.full(n, 0.05),
        "rho_transfer_mean": 4.0 + base + np.asarray(rho_diff, float),
        "rho_scratch_mean": 4.0 + base,
        "rho_flip_transfer": 6.0 + base + np.asarray(flip_diff, float),
        "rho_flip_scratch": 6.0 + base,
        "stalled_transfer": np.zeros(n),
        "stalled_scratch": np.zeros(n),
    }


def decide(loss, steps=None):
    """decide on the verdict regime at equal loss (fixed steps: the same unless given)."""
    m = {M.VERDICT_REGIME: {"loss": loss, "steps": loss if steps is None else steps}}
    return M.decide(SIZE, m)


def test_protocol_and_disclosures_are_declared():
    p = M.PROTOCOL
    assert isinstance(p, Protocol) and p.name == "mechanism" and p.source == "hypothesis"
    assert p.hash(quick=True) != p.hash() and len(p.hash()) == 12
    assert p.fixed == "2026-12-06" and p.salt == "mechanism-v2" and not p.hash_scheme1
    assert len(p.disclosures) == 2
    assert all(isinstance(d, Disclosure) and d.earlier for d in p.disclosures)
    json.dumps(p.to_dict(), allow_nan=False)
    first, v2 = p.disclosures
    assert "`negative`" in first.change and "-0.438" in first.earlier and "20 -> 30" in first.change
    for number in ("+0.0311", "-1.162", "-0.106", "+1.578", "4.4e-10"):  # main, committed v1
        assert number in v2.earlier
    for number in ("+0.0543", "-1.156", "-0.249", "+1.428", "1.1e-13"):  # r1, committed v1
        assert number in v2.earlier
    assert "8d11f84a2426" in v2.earlier and "independent review" in v2.reason
    assert S.SIGNIFICANCE == 0.01


def test_design_and_stopping_rule():
    p = M.PROTOCOL
    assert p.full.seeds == 30 and p.quick.seeds == 3 and M.VERDICT_REGIME == "label_noise"
    assert M.VERDICT_RULE == "loss" and p.common == ()
    ln = p.full.configs["label_noise"]
    assert (ln.u_norm, ln.alpha, ln.n_down, ln.v_down_norm, ln.flip_down) == (2, 1, 40, 3, 0.2)
    assert p.full.configs["absent"].u_norm == 0.0 and ln.snapshots == 21
    assert (p.full.epsilon, p.full.cap) == (0.005, 2000)
    assert "equal training loss" in p.statistic and "Wilcoxon" in p.statistic
    assert "McNemar" in p.statistic and "refuted only when both" in p.pass_rule


def test_hand_made_pass():
    """8 of 10 seeds fail under transfer only: McNemar p = 2^-8; both rho-bar
    differences +1 ... +10: Wilcoxon p = 2^-10."""
    d = decide(values())
    assert d["premise"]["p"] == pytest.approx(2.0**-8)
    assert (d["premise"]["a_only"], d["premise"]["b_only"]) == (8, 0)
    for k in ("rho_mean", "rho_flip"):
        assert d["tests"][k]["p"] == pytest.approx(2.0**-10)
        assert d["tests"][k]["median"] == pytest.approx(5.5)
        assert d["readings"][k] == "larger"
    assert d["verdict"] == d["verdict_tests"] == "PASS" and d["missing"] == 0
    assert d["wording"] == "our hypothesis supported"


@pytest.mark.parametrize(
    "n_fail, rho_diff, flip_diff, readings, word",
    [
        # premise p = 2^-6 = 0.0156: not tested, whatever the readings
        (6, UP, UP, ("larger", "larger"), "not tested"),
        (6, -UP, -UP, ("smaller", "smaller"), "not tested"),
        # mean rho-bar without a significant difference (W+ = 25 of 55), flipped points larger
        (8, ALT, UP, ("no significant difference", "larger"), "mixed evidence"),
        # mean rho-bar smaller (p_less = 2^-10), flipped points larger: mixed, not refuted
        (8, -UP, UP, ("smaller", "larger"), "mixed evidence"),
        # mean rho-bar smaller, flipped points without a difference: not supported
        (8, -UP, ALT, ("smaller", "no significant difference"), "not supported"),
        # both smaller: the only refutation
        (8, -UP, -UP, ("smaller", "smaller"), "refuted"),
    ],
)
def test_hand_made_fail_and_its_wording(n_fail, rho_diff, flip_diff, readings, word):
    d = decide(values(n_fail, rho_diff, flip_diff))
    assert d["verdict"] == d["verdict_tests"] == "FAIL" and d["missing"] == 0
    assert (d["readings"]["rho_mean"], d["readings"]["rho_flip"]) == readings
    assert word in d["wording"]
    assert ("refuted" in d["wording"]) == (word == "refuted")


def test_exact_p_of_the_wrong_direction():
    """-1 ... -10: W+ = 0, so p(larger) = P(W+ >= 0) = 1 and p(smaller) = 2^-10;
    the alternating differences (W+ = 25 of 55) are significant in neither direction."""
    d = decide(values(8, -UP, ALT))
    assert d["tests"]["rho_mean"]["p_less"] == pytest.approx(2.0**-10)
    assert d["tests"]["rho_mean"]["p"] == 1.0
    t = d["tests"]["rho_flip"]
    assert t["p"] >= 0.5 and t["p_less"] > 0.01


def test_equal_loss_decides_fixed_steps_is_reported():
    d = decide(values(), steps=values(8, -UP, -UP))
    assert d["verdict"] == "PASS" and d["fixed_steps"]["verdict"] == "FAIL"
    assert "refuted" in d["fixed_steps"]["wording"]
    d = decide(values(8, -UP, -UP), steps=values())
    assert d["verdict"] == "FAIL" and d["fixed_steps"]["verdict"] == "PASS"


def test_stalled_runs_count_and_the_reached_subset_is_reported():
    """A stalled run stays in the verdict; ``reached`` keeps the 7 seeds where
    both runs reached the target: all 7 differences positive, p = 2^-7."""
    v = values()
    v["stalled_transfer"] = np.array([1.0, 1.0, 0, 0, 0, 0, 0, 0, 0, 1.0])
    d = decide(v)
    assert d["verdict"] == "PASS" and d["tests"]["rho_mean"]["n"] == N
    assert d["reached"]["rho_mean"]["n"] == 7
    assert d["reached"]["rho_flip"]["p"] == pytest.approx(2.0**-7)


def test_seed_without_flipped_points_is_missing():
    v = values()
    v["rho_flip_scratch"] = v["rho_flip_scratch"].copy()
    v["rho_flip_scratch"][1] = NAN
    d = decide(v)
    assert math.isnan(d["tests"]["rho_flip"]["p"])
    assert d["missing"] == 1 and d["verdict"] == d["verdict_tests"] == "FAIL"  # its p is NaN


# ----------------------------------------------------------------------
# registry examples (tests/claims/test_declarations.py)
def _regime(seeds, sign):
    """Every metric at ``seeds`` seeds: transfer fails on the first third of
    the seeds (scratch never), rho-bar transfer - scratch = sign (1 + r/64) at
    seed r in every tested metric; curves of two steps."""
    r = np.arange(seeds) / 64
    v = {k: 0.05 + r / 64 for k in M.EQ_METRICS}
    for k in ("rho_mean", "rho_flip", "rho_max"):
        v[M.TESTED[k].format("transfer")] = v[M.TESTED[k].format("scratch")] + sign * (1 + r)
    v["err_transfer"] = np.where(np.arange(seeds) < seeds // 3, 0.3, 0.05 + r / 32)
    v.update(stalled_transfer=0 * r, stalled_scratch=0 * r, up_stopped_early=0 * r)
    curves = {k: [[0.0, 1.0] for _ in range(seeds)] for k in M.CURVES}
    return {"steps": v, "loss": dict(v), "curves": curves}


def examples(size):
    """PASS (full size, 30 seeds): 10 failures under transfer only (McNemar
    p = 2^-10) and every rho-bar difference positive (Wilcoxon p = 2^-30);
    FAIL: every difference negative. With 3 seeds (quick) the smallest
    Wilcoxon p is 2^-3 = 0.125: no PASS exists there, FAIL only."""
    fail = {"FAIL": {name: _regime(size.seeds, -1.0) for name in size.configs}}
    if size.seeds < 10:
        return fail
    return fail | {"PASS": {name: _regime(size.seeds, 1.0) for name in size.configs}}


@pytest.mark.parametrize("which", ["quick", "full"])
def test_examples_give_their_verdicts_and_present(which):
    size = M.PROTOCOL.size(which == "quick")
    for verdict, m in examples(size).items():
        dec = M.decide(size, m)
        assert dec["verdict"] == verdict
        out = M.present(size, m, dec)
        assert out.statistic.startswith(dec["wording"])
        assert "exact McNemar" in out.statistic and "Wilcoxon" in out.statistic
