"""mitigation: its declared protocol, the pure ``decide(size, measurements)``
on hand-made negative-transfer amounts with known answers, ``measure``'s
shape on a fake sweep and ``present`` on synthetic measurements.

Expected p-values come from closed forms, not from running the code:

- one-sided paired t with n = 3 (2 degrees of freedom):
  p = 1/2 - t / (2 sqrt(t^2 + 2));
- values [a - h, a, a + h] have sd h, so t = a sqrt(3) / h: the baseline
  amounts [8, 9, 10] / 64 give t = 9 sqrt(3), the reductions [4, 5, 6] / 1024
  give t = 5 sqrt(3);
- a constant nonzero reduction has zero variance: p = 0 when it lowers the
  amount, 1 when it raises it (the documented rule of ``paired_t``).

Every value is a multiple of 1/1024 and err_scratch is 0.25, so err_transfer
- err_scratch recovers the amounts exactly.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.stats

from refimpl.claims import _base as B
from refimpl.claims import mitigation as M
from refimpl.lab.claim import Disclosure, Figure, Outcome, Protocol, Table

NAN = float("nan")
QUICK, FULL = M.PROTOCOL.quick, M.PROTOCOL.full
NAMES = list(M.LEVERS)
BASE_NEG = np.array([8, 9, 10]) / 64
WD_SMALL = np.array([4, 5, 6]) / 1024


def approx(x, rel=1e-6, abs=1e-12):
    return pytest.approx(x, rel=rel, abs=abs)


def p_df2(t):
    """One-sided p of a t statistic with 2 degrees of freedom."""
    return 0.5 - t / (2 * math.sqrt(t * t + 2))


def lever_measurements(neg, neg_loss=None, stalled=0.0):
    """Measurements as ``measure`` returns them from amounts ``neg`` (levers,
    cells, seeds): err_scratch 0.25, err_transfer 0.25 + neg; at equal loss
    ``neg_loss`` (default: the same), every run stalled or not."""
    neg = np.asarray(neg, float)
    eq = neg if neg_loss is None else np.asarray(neg_loss, float)
    flags = {
        "stalled_transfer": np.full(eq.shape, stalled),
        "stalled_scratch": np.full(eq.shape, stalled),
        "up_stopped_early": np.zeros(eq.shape),
    }
    return {
        "steps": {"err_transfer": 0.25 + neg, "err_scratch": np.full(neg.shape, 0.25)},
        "loss": {"err_transfer": 0.25 + eq, "err_scratch": np.full(eq.shape, 0.25), **flags},
    }


def lever_neg(reductions, base=BASE_NEG):
    """Amounts of shape (levers, 1 cell, 3 seeds): the baseline, then the
    baseline minus each lever's reduction (decide pools cells and seeds)."""
    return np.array([[base]] + [[base - np.asarray(r, float)] for r in reductions])


def decide(neg, neg_loss=None):
    return M.decide(QUICK, lever_measurements(neg, neg_loss))


def examples(size):
    """PASS: the baseline amount is positive in every run and every lever
    lowers it by 1/16; FAIL: every lever raises it by 1/16."""
    cells = sum(len(grid) for grid in size.configs.values()) // len(size.levers)
    c, r = np.meshgrid(np.arange(cells), np.arange(size.seeds), indexing="ij")
    base = (8 + r + 2 * c) / 64
    out = {}
    for verdict, step in (("PASS", -1 / 16), ("FAIL", 1 / 16)):
        neg = np.stack([base] + [base + step] * (len(size.levers) - 1))
        out[verdict] = lever_measurements(neg)
    return out


def test_closed_form_matches_the_t_distribution():
    assert p_df2(9 * math.sqrt(3)) == approx(scipy.stats.t.sf(9 * math.sqrt(3), 2))


def test_protocol_and_disclosures_are_declared():
    p = M.PROTOCOL
    assert isinstance(p, Protocol) and p.name == "mitigation" and p.source == "paper"
    assert p.hash(quick=True) != p.hash() and len(p.hash()) == 12 and p.fixed
    assert p.hash_scheme1 == "bf5bd550d74d"  # the committed full-size hash
    assert all(isinstance(d, Disclosure) and d.earlier for d in p.disclosures)
    json.dumps(p.to_dict(), allow_nan=False)
    assert "12 -> 24" in p.disclosures[0].change
    assert "freeze inherited -0.0357 (p = 1)" in p.disclosures[1].earlier
    assert "0.01" in p.pass_rule and "weight decay 0.003, weight decay 0.01" in p.pass_rule


def test_design_levers_regions_and_seeds():
    p = M.PROTOCOL
    assert NAMES == [
        "baseline",
        "smaller alpha (0.2)",
        "weight decay 0.003",
        "weight decay 0.01",
        "rescale inherited x0.3",
    ]
    assert "freezing" not in M.CLAIMED and "freeze inherited" not in M.LEVERS
    assert p.salt == "mitigation" and set(p.common) == {
        "alpha",
        "weight_decay",
        "freeze_inherited",
        "rescale_inherited",
    }
    assert FULL.seeds == 24 and QUICK.seeds == 3
    assert (FULL.epsilon, FULL.cap) == (0.005, 2000) == (QUICK.epsilon, QUICK.cap)
    # the base regime's d and N_2 (hard), the benign region's N_2 (16 at CI size)
    for size, d, hard_n, n_down in ((FULL, 600, 10, 40), (QUICK, 120, 8, 16)):
        hard, benign = size.configs["hard"], size.configs["benign"]
        assert len(hard) == len(benign) == 5 * 2  # levers x |u|, lever-major
        c = hard[7]  # lever 3 (weight decay 0.01), |u| index 1
        assert (c.weight_decay, c.u_norm, c.alpha, c.d, c.n_down) == (0.01, 0.25, 0.8, d, hard_n)
        c = benign[3]  # lever 1 (smaller alpha), |u| index 1
        assert (c.alpha, c.u_norm, c.n_down, c.v_down_norm) == (0.2, 0.5, n_down, 3.0)
        assert benign[9].rescale_inherited == 0.3 and benign[0].alpha == 0.8


def test_decide_pass_with_a_constant_weight_decay_reduction():
    d = decide(lever_neg([1 / 16, WD_SMALL, 1 / 32, -1 / 64]))
    assert d["baseline"]["p"] == approx(p_df2(9 * math.sqrt(3)))
    assert d["tests"]["weight decay 0.003"]["p"] == approx(p_df2(5 * math.sqrt(3)))
    assert d["claim_p"]["weight decay"] == 0.0  # weight decay 0.01: constant, p = 0
    assert d["tests"]["rescale inherited x0.3"]["p"] == 1.0  # raises it: not claimed
    assert d["per_claim"] == {"smaller alpha": True, "weight decay": True}
    assert d["verdict"] == "PASS" and d["missing"] == 0
    two = lever_neg([1 / 16, WD_SMALL, 1 / 32, -1 / 64])
    pooled = decide(np.concatenate([two, two], axis=1))  # 2 cells: pooled
    assert pooled["tests"]["smaller alpha (0.2)"]["n"] == 6 and pooled["verdict"] == "PASS"


def test_bonferroni_over_the_weight_decay_levels():
    # 0.003 alone: raw p = p(5 sqrt 3) = 0.0065 < 0.01; 0.01 raises the
    # amount (p = 1): the group's p is 2 x 0.0065 = 0.013 >= 0.01
    d = decide(lever_neg([1 / 16, WD_SMALL, -1 / 64, 0.0]))
    raw = p_df2(5 * math.sqrt(3))
    assert raw < 0.01 < 2 * raw
    assert d["claim_p"]["weight decay"] == approx(2 * raw)
    assert d["per_claim"] == {"smaller alpha": True, "weight decay": False}
    assert d["verdict"] == "FAIL"


def test_each_paper_lever_is_required():
    d = decide(lever_neg([-1 / 16, 0.0, 1 / 32, 1 / 16]))
    assert d["per_claim"] == {"smaller alpha": False, "weight decay": True}
    assert d["verdict"] == "FAIL"


def test_no_baseline_negative_transfer_fails():
    d = decide(lever_neg([1 / 16, 1 / 32, 1 / 32, 0.0], base=BASE_NEG - 0.25))
    assert all(d["per_claim"].values()) and d["baseline"]["p"] > 0.5
    assert d["verdict"] == "FAIL"


def test_a_missing_value_of_any_lever_fails():
    neg = lever_neg([1 / 16, 1 / 32, 1 / 32, 0.0])
    assert decide(neg)["verdict"] == "PASS"
    neg[4, 0, 1] = NAN  # the rescale lever: not claimed, but its run is missing
    d = decide(neg)
    assert d["verdict_tests"] == "PASS"
    assert d["missing"] == 1 and d["verdict"] == "FAIL"


def test_equal_loss_is_reported_not_the_verdict():
    passing = lever_neg([1 / 16, 1 / 32, 1 / 32, 0.0])
    failing = lever_neg([-1 / 16, -1 / 32, -1 / 32, 0.0])
    d = decide(passing, failing)
    assert d["verdict"] == "PASS" and d["equal_loss"]["verdict"] == "FAIL"
    d = decide(failing, passing)
    assert d["verdict"] == "FAIL" and d["equal_loss"]["verdict"] == "PASS"


def test_measure_reshapes_each_region_lever_major():
    """A fake sweep whose value is 100 * region + point index + replicate / 10:
    cell c of lever k holds point k * 2 + (c mod 2) of region c // 2."""
    calls = []

    class Fake:
        def __init__(self, offset, n, seeds):
            self.v = offset + np.arange(n)[:, None] + np.arange(seeds)[None, :] / 10

        def values(self, key):
            return self.v

    def sweep(grid, label="", metrics=(), **kwargs):
        calls.append((label, tuple(metrics), kwargs))
        return Fake(100 * (len(calls) > 2), len(grid), QUICK.seeds)

    m = M.measure(QUICK, sweep)
    assert [c[0] for c in calls] == ["hard", "hard (equal loss)", "benign", "benign (equal loss)"]
    assert calls[0][1] == ("err_transfer", "err_scratch") and calls[0][2] == {}
    at_loss = calls[1][2]
    assert at_loss["measure"] is B.measure_at_loss
    assert at_loss["options"] == {"epsilon": 0.005, "cap": 2000}
    assert "up_stopped_early" in calls[1][1] and "stalled_scratch" in calls[1][1]
    et = m["steps"]["err_transfer"]
    assert et.shape == (5, 4, 3) and m["loss"]["stalled_transfer"].shape == (5, 4, 3)
    assert et[3, 1, 2] == 3 * 2 + 1 + 0.2  # hard, lever 3, |u| index 1, replicate 2
    assert et[4, 2, 0] == 100 + 4 * 2 + 0  # benign, lever 4, |u| index 0


@pytest.mark.parametrize("size", [QUICK, FULL], ids=["quick", "full"])
def test_present_on_the_examples(size):
    for verdict, m in examples(size).items():
        dec = M.decide(size, m)
        assert dec["verdict"] == verdict
        out = M.present(size, m, dec)
        assert isinstance(out, Outcome) and out.statistic.startswith("baseline negative transfer")
        assert f"{size.seeds} seeds x 4 cells" in out.statistic
        assert "weight decay (Bonferroni x2)" in out.statistic
        csv = [s for s in out.sections if isinstance(s, Table) and s.name == "mitigation"]
        assert len(csv[0].rows) == 2 * 5 * 4  # rules x levers x cells
        figures = [f.name for f in out.sections if isinstance(f, Figure)]
        assert figures == ["mitigation", "mitigation_equal_loss"]
        assert not out.statistic.startswith("our hypothesis")


def test_present_warns_where_runs_stall():
    neg = examples(QUICK)["PASS"]["steps"]["err_transfer"] - 0.25
    m = lever_measurements(neg, stalled=1.0)
    text = "\n".join(
        s for s in M.present(QUICK, m, M.decide(QUICK, m)).sections if isinstance(s, str)
    )
    assert "Caveat" in text and "baseline (12 transfer / 12 scratch runs of 12 stalled)" in text
