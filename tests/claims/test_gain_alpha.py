"""gain_alpha (protocol v3): its declared protocol and disclosures, and the pure
``decide(size, measurements)`` on hand-made per-seed errors with known answers.
The verdict rests on (a) and (b) (clean regime, the paper's part); (c), the
noisy regime's failure-rate test, is our hypothesis: reported with its own
outcome and its p at each failure threshold, not in the verdict.

Expected p-values come from closed forms, not from running the code:

- Wilcoxon signed-rank, exact, n positive differences of distinct sizes:
  the largest statistic, reached only so: p = 1/2^n;
- exact McNemar with k discordant pairs all failing under a: p = 1/2^k;
- Page's L test with b perfectly ordered blocks over k > 8 points uses the
  normal approximation; there L - E0 = b k (k+1)(k-1)/12 and
  sqrt(V0) = k (k+1) sqrt(b (k-1)) / 12, so z = sqrt(b (k-1)).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.stats

from refimpl.claims import _base as B
from refimpl.claims import gain_alpha as G
from refimpl.lab import stats as S
from refimpl.lab.claim import Disclosure, Protocol

NAN = float("nan")
SIZE = G.PROTOCOL.full
A = SIZE.alphas  # 0, 0.1, ..., 1


def approx(x, rel=1e-6, abs=1e-12):
    return pytest.approx(x, rel=rel, abs=abs)


def clean_falling(seeds):
    """Every seed strictly decreasing over the 11 alphas; err(0.8) - err(1)
    = 0.04 + 2r/1000 > 0, distinct over the seeds r."""
    return np.array([[0.3 - 0.02 * k - k * r / 1000 for r in range(seeds)] for k in range(11)])


def noisy_failing(seeds, failing):
    """0.05 everywhere, except 0.3 at alpha = 1 on the first ``failing`` seeds."""
    err = np.full((11, seeds), 0.05)
    err[10, :failing] = 0.3
    return err


def meas(clean, noisy, stalled_noisy=None):
    """Measurements with the same errors under both stopping rules (no stall
    unless ``stalled_noisy``, the noisy regime's stalls at equal loss)."""
    stalled = {"clean": np.zeros_like(clean), "noisy": np.zeros_like(noisy)}
    if stalled_noisy is not None:
        stalled["noisy"] = stalled_noisy
    return {
        r: {
            "steps": {"err_transfer": err},
            "loss": {"err_transfer": err, "stalled_transfer": stalled[r]},
        }
        for r, err in (("clean", clean), ("noisy", noisy))
    }


def decide(clean, noisy, stalled_noisy=None):
    return G.decide(SIZE, meas(clean, noisy, stalled_noisy))


def page_perfect_asymptotic(points, blocks):
    return scipy.stats.norm.sf(math.sqrt(blocks * (points - 1)))


# ----------------------------------------------------------------------
# the protocol and its disclosures, declared as data
def test_protocol_and_disclosures_are_declared():
    p = G.PROTOCOL
    assert isinstance(p, Protocol) and p.name == "gain_alpha" and p.source == "paper"
    assert p.hash(quick=True) != p.hash() and len(p.hash()) == 12 and p.fixed
    assert p.hash_scheme1 == ""  # v3 was never hashed under scheme 1
    v2 = p.disclosures[-2].earlier  # v2's hashes (scheme 2 and 1) are named there
    assert "d4d4bd30852e" in v2 and "751c107a9d2d" in v2
    assert all(isinstance(d, Disclosure) and d.earlier for d in p.disclosures)
    json.dumps(p.to_dict(), allow_nan=False)
    assert not hasattr(G, "SIGNIFICANCE") or G.SIGNIFICANCE == S.SIGNIFICANCE == 0.01


def test_the_disclosed_earlier_results_are_there():
    ga = " ".join(d.change + d.earlier for d in G.PROTOCOL.disclosures)
    assert "|u| = 0.5" in ga and "alpha <= 0.7" in ga and "16 -> 20" in ga
    assert "+0.0441" in ga  # the committed v1 statistic
    v3, engine = G.PROTOCOL.disclosures[-2:]
    assert v3.date.startswith("2026-12-06") and "v2 -> v3" in v3.change
    # the committed v2 statistics, main and r1, word for word in numbers
    assert "35 vs 1 discordant, rates 0.292 vs 0.008, exact p = 5.4e-10" in v3.earlier
    assert "+0.0019, Wilcoxon p = 2.1e-07" in v3.earlier and "-0.984 ± 0.003" in v3.earlier
    assert "34 vs 0 discordant, rates 0.300 vs 0.017, exact p < 1e-10" in v3.earlier
    assert "6 vs 0 (0.016)" in v3.earlier  # (c) at the threshold 0.30 on main
    assert "audit" not in json.dumps([d.to_dict() for d in G.PROTOCOL.disclosures])
    # the engine change after v3's item-by-item runs, with their numbers on three streams
    assert (
        "batched three-stage path" in engine.change and "PASS on main, r1 and r2" in engine.earlier
    )
    assert (
        "26 vs 1, 24 vs 0, 25 vs 1" in engine.earlier
        and G.PROTOCOL.rules["engine"] == B.ENGINE_RULE
    )


def test_protocol_declares_the_new_rule_and_seed_stream():
    p = G.PROTOCOL
    assert p.full.seeds == {"clean": 40, "noisy": 120} and p.quick.seeds == {"clean": 3, "noisy": 6}
    assert all(c.flip_down == 0.0 for c in p.full.configs["clean"])  # clean means p_2 = 0
    assert [c.alpha for c in p.full.configs["noisy"]] == A == [k / 10 for k in range(11)]
    assert p.salt == "gain_alpha/v3" != p.name  # a fresh seed stream
    assert p.fixed == "2026-12-06" and G.THRESHOLDS == (0.1, 0.15, 0.2, 0.25, 0.3)
    assert p.common == ("alpha",)  # common random numbers across alpha
    assert B.FAILURE_ERROR == 0.2 and (p.full.epsilon, p.full.cap) == (0.005, 2000)
    assert "McNemar" in p.statistic and "Wilcoxon" in p.statistic and "Page" in p.statistic
    # (c) is tagged as our hypothesis in the claim, the statistic and the pass rule
    assert "(c, hypothesis" in p.claim and "(c, hypothesis)" in p.statistic
    assert "(c, hypothesis)" in p.pass_rule and "not in the verdict" in p.pass_rule
    assert "(a) and (b)" in p.pass_rule and "0.1, 0.15, 0.2, 0.25, 0.3" in p.statistic


# ----------------------------------------------------------------------
# decide
def test_pass():
    d = decide(clean_falling(8), noisy_failing(10, 7))
    assert d["trend_clean"]["p"] == approx(page_perfect_asymptotic(11, 8))
    assert d["end_clean"]["p"] == approx(1 / 2**8)  # 0.0039 < 0.01
    assert d["tail_noisy"]["a_only"] == 7 and d["tail_noisy"]["b_only"] == 0
    assert d["tail_noisy"]["p"] == approx(1 / 2**7)  # 0.0078 < 0.01
    assert d["ok"] == {"a": True, "b": True} and d["hypothesis_c"] is True
    assert d["verdict"] == d["verdict_tests"] == "PASS" and d["missing"] == 0
    assert d["equal_loss"]["verdict"] == "PASS"  # the same errors, no stall


def test_fail_on_each_test():
    d = decide(clean_falling(6), noisy_failing(10, 7))
    assert d["end_clean"]["p"] == approx(1 / 2**6)  # 0.0156: six seeds too few
    assert d["ok"]["b"] is False and d["verdict"] == "FAIL"
    rising = clean_falling(8)[::-1]  # error rises with alpha
    d = decide(rising, noisy_failing(10, 7))
    assert d["ok"]["a"] is False and d["ok"]["b"] is False and d["verdict"] == "FAIL"


def test_hypothesis_c_is_reported_not_in_the_verdict():
    """Six failures at alpha = 1 (0.3 against 0.05 at alpha = 0.5): 6 vs 0
    discordant, p = 1/2^6 = 0.0156 >= 0.01, so (c) does not hold; (a) and (b)
    hold (as in test_pass), so the verdict is PASS. No failure at all: (c)'s
    p = 1 and the verdict is still PASS. With (b) failing (six clean seeds,
    p = 1/2^6) the verdict is FAIL although (c) holds (seven failures, 1/2^7)."""
    d = decide(clean_falling(8), noisy_failing(10, 6))
    assert d["tail_noisy"]["p"] == approx(1 / 2**6) and d["hypothesis_c"] is False
    assert d["ok"] == {"a": True, "b": True} and d["verdict"] == "PASS"
    d = decide(clean_falling(8), noisy_failing(10, 0))
    assert d["tail_noisy"]["p"] == 1.0 and d["hypothesis_c"] is False
    assert d["verdict"] == "PASS"
    d = decide(clean_falling(6), noisy_failing(10, 7))
    assert d["hypothesis_c"] is True and d["ok"]["b"] is False and d["verdict"] == "FAIL"


def test_hypothesis_c_against_the_failure_threshold():
    """alpha = 0.5 at 0.05 on every seed; alpha = 1 at 0.12 on seeds 0-1, 0.22
    on seeds 2-4, 0.35 on seeds 5-6, 0.05 on seeds 7-9. Failures at alpha = 1
    by threshold: > 0.10: 7 (p = 1/2^7); > 0.15: 5 (1/2^5); > 0.20: 5 (1/2^5);
    > 0.25: 2 (1/2^2); > 0.30: 2 (1/2^2); none at alpha = 0.5 (b_only = 0).
    At equal loss a stall fails at every threshold: seeds 7-8 stalled at
    alpha = 1 add two failures everywhere (> 0.30: 4, p = 1/2^4)."""
    noisy = np.full((11, 10), 0.05)
    noisy[10, :2], noisy[10, 2:5], noisy[10, 5:7] = 0.12, 0.22, 0.35
    stall = np.zeros((11, 10))
    stall[10, 7:9] = 1
    d = decide(clean_falling(8), noisy, stall)
    by = d["tail_by_threshold"]
    assert list(by) == ["0.1", "0.15", "0.2", "0.25", "0.3"]
    assert [by[t]["a_only"] for t in by] == [7, 5, 5, 2, 2]
    assert all(by[t]["b_only"] == 0 for t in by)
    assert [by[t]["p"] for t in by] == [approx(1 / 2**k) for k in (7, 5, 5, 2, 2)]
    assert by["0.2"]["p"] == d["tail_noisy"]["p"]  # the threshold of (c) itself
    assert d["verdict"] == "PASS" and d["hypothesis_c"] is False
    eq = d["equal_loss"]["tail_by_threshold"]
    assert [eq[t]["a_only"] for t in eq] == [9, 7, 7, 4, 4]
    assert eq["0.3"]["p"] == approx(1 / 2**4)


def test_failures_are_errors_above_the_threshold_or_stalls():
    err = np.array([[0.1, 0.25, 0.2, NAN]])
    assert np.array_equal(G.failures(err), [[0.0, 1.0, 0.0, NAN]], equal_nan=True)
    stalled = np.array([[1.0, 0.0, 0.0, 1.0]])
    assert np.array_equal(G.failures(err, stalled), [[1.0, 1.0, 0.0, NAN]], equal_nan=True)
    # at equal loss a stalled run is a failure even with a small error
    noisy = np.full((11, 10), 0.05)
    stall = np.zeros((11, 10))
    stall[10, :7] = 1
    d = decide(clean_falling(8), noisy, stall)
    assert d["hypothesis_c"] is False and d["tail_noisy"]["p"] == 1.0  # fixed steps: none
    eq = d["equal_loss"]
    assert eq["tail_noisy"]["p"] == approx(1 / 2**7) and eq["hypothesis_c"] is True
    assert eq["summary"]["noisy"]["failure_rate"][10] == approx(0.7)
    assert eq["summary"]["noisy"]["median"][10] == approx(0.05)


def test_reports_mean_median_and_failure_rate_side_by_side():
    noisy = noisy_failing(10, 3)  # alpha = 1: 3 of 10 at 0.3, 7 at 0.05
    d = decide(clean_falling(8), noisy)
    s = d["summary"]["noisy"]
    assert s["mean"][10] == approx(0.125) and s["median"][10] == approx(0.05)
    assert s["failure_rate"][10] == approx(0.3) and s["failure_rate"][5] == 0.0
    # the best alpha by mean is one without failures; by median every alpha ties
    assert d["best"]["noisy"]["mean"] == 0.0 and d["best"]["noisy"]["median"] == 0.0
    # clean: the first alpha whose eight errors are all <= 0.2 is 0.5 (0.3 - 5 x 0.02 - 5r/1000)
    assert d["best"]["clean"] == {"mean": 1.0, "median": 1.0, "failure": 0.5}


def test_never_picks_a_missing_alpha_as_the_best_and_missing_fails():
    noisy = np.full((11, 10), 0.2)
    noisy[3] = 0.01  # alpha 0.3 lowest ...
    noisy[3, 4] = NAN  # ... but with a missing value
    noisy[6] = 0.1
    d = decide(clean_falling(8), noisy)
    assert d["best"]["noisy"]["mean"] == 0.6 and d["best"]["noisy"]["median"] == 0.6
    assert d["missing"] == 1 and d["verdict"] == "FAIL"
    assert G.best_alpha([0, 1], [[NAN], [NAN]], "mean") is None
    clean = clean_falling(8)
    clean[0, 0] = NAN  # the tests would hold: the rule fails it
    d = decide(clean, noisy_failing(10, 7))
    assert d["missing"] == 1 and d["verdict"] == "FAIL" and math.isnan(d["trend_clean"]["p"])
    as_lists = meas(clean_falling(8).tolist(), noisy_failing(10, 7).tolist())
    as_lists["noisy"]["steps"]["err_transfer"][2][3] = None  # None: missing too
    d = G.decide(SIZE, as_lists)
    assert d["missing"] == 1 and d["verdict"] == "FAIL" and d["verdict_tests"] == "PASS"


def test_equal_loss_measure_pairs_the_seed_and_flags_stalls():
    cfg = B.transfer_base(True, d=60, m=2, n_up=10, n_down=6, steps_up=20, n_test=200, seed=7)
    r = B.measure_at_loss(cfg, epsilon=1e-9, cap=5)  # unreachable: stalls
    assert r["stalled_transfer"] == 1.0 and r["stalled_scratch"] == 1.0
    assert r["steps_down"] == 5 and r["up_stopped_early"] == 0.0
    r2 = B.measure_at_loss(cfg, epsilon=10.0, cap=5)  # reached at step 0
    assert r2["stalled_transfer"] == 0.0 and r2["steps_down"] == 0
    assert r2["up_stopped_early"] == 1.0  # upstream stops too


# ----------------------------------------------------------------------
# registry examples (tests/claims/test_declarations.py)
def _measurements(clean, noisy):
    """Every metric measure() returns: the given transfer errors, scratch
    0.3, no stall, both rules alike."""
    out = {}
    for r, err in (("clean", clean), ("noisy", noisy)):
        ones = np.ones_like(err)
        both = {"err_transfer": err, "err_scratch": 0.3 * ones}
        steps = {**both, "loss_down": 1e-4 * ones}
        loss = {**both, "stalled_transfer": 0 * ones, "stalled_scratch": 0 * ones}
        loss.update(steps_down=100 * ones, steps_scratch=100 * ones, up_stopped_early=0 * ones)
        out[r] = {"steps": steps, "loss": loss}
    return out


def examples(size):
    """FAIL: the clean error rises with alpha (the noisy regime's failures as
    in test_pass, so (c) holds where there are seeds: it does not save the
    verdict); PASS (where the size has the seeds: >= 7 clean seeds, 1/2^7 <
    0.01) as test_pass."""
    clean, noisy = size.seeds["clean"], size.seeds["noisy"]
    out = {"FAIL": _measurements(clean_falling(clean)[::-1], noisy_failing(noisy, min(noisy, 7)))}
    if clean >= 7:
        out["PASS"] = _measurements(clean_falling(clean), noisy_failing(noisy, min(noisy, 7)))
    return out
