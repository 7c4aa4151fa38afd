"""mitigation (v3: per region, Holm over the regions): its declared protocol, the pure
``region_tests`` and ``decide`` on hand-made negative-transfer amounts with known answers,
``measure``'s shape on a fake sweep and ``present`` on synthetic measurements.

Expected p-values come from closed forms, not from running the code:

- one-sided paired t with n = 3 (2 degrees of freedom): p = 1/2 - t / (2 sqrt(t^2 + 2));
- values [a - h, a, a + h] have sd h, so t = a sqrt(3) / h: the baseline amounts
  [8, 9, 10] / 64 give t = 9 sqrt(3) (p = 0.00204), [16, 17, 18] / 64 give t = 17 sqrt(3)
  (p = 0.00058), the reductions [4, 5, 6] / 1024 give t = 5 sqrt(3) (p = 0.00654);
- a constant nonzero reduction has zero variance: p = 0 when it lowers the amount, 1 when
  it raises it (the documented rule of ``paired_t``);
- Bonferroni over a group of two levers: min(1, 2 min p);
- Holm over two regions: the smaller p times 2, the larger max(that, itself): so two
  regions at p = 0.00654 each are both adjusted to 0.01307 >= 0.01.

Every value is a multiple of 1/1024 and err_scratch is 0.25, so err_transfer - err_scratch
recovers the amounts exactly.
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
AT = [NAMES.index(n) for n in M.AT_LOSS]  # the levers run at equal loss: 0, 1, 4
LOW, HIGH = np.array([8, 9, 10]) / 64, np.array([16, 17, 18]) / 64
VARIED = np.array([4, 5, 6]) / 1024
TWO = {"hard": 1, "benign": 1}  # one cell per region (3 seeds each)


def approx(x, rel=1e-6, abs=1e-12):
    return pytest.approx(x, rel=rel, abs=abs)


def p_df2(t):
    """One-sided p of a t statistic with 2 degrees of freedom."""
    return 0.5 - t / (2 * math.sqrt(t * t + 2))


P_LOW, P_HIGH, P_VARIED = p_df2(9 * math.sqrt(3)), p_df2(17 * math.sqrt(3)), p_df2(5 * math.sqrt(3))


def lever_measurements(neg, neg_loss=None, stalled=0.0):
    """Measurements as ``measure`` returns them from amounts ``neg`` (levers, cells, seeds):
    err_scratch 0.25, err_transfer 0.25 + neg; at equal loss ``neg_loss`` (default: the
    levers of AT_LOSS of ``neg``), every run stalled or not."""
    neg = np.asarray(neg, float)
    eq = neg[AT] if neg_loss is None else np.asarray(neg_loss, float)
    flags = {
        "stalled_transfer": np.full(eq.shape, stalled),
        "stalled_scratch": np.full(eq.shape, stalled),
        "up_stopped_early": np.zeros(eq.shape),
    }
    return {
        "steps": {"err_transfer": 0.25 + neg, "err_scratch": np.full(neg.shape, 0.25)},
        "loss": {"err_transfer": 0.25 + eq, "err_scratch": np.full(eq.shape, 0.25), **flags},
    }


def region(base, reductions):
    """One region's amounts (5 levers, 3 seeds): the baseline, then the baseline minus each
    lever's reduction (smaller alpha, weight decay 0.003, 0.01, rescale)."""
    return np.array([base] + [base - np.asarray(r, float) for r in reductions])


def two(hard, benign):
    """Amounts (5 levers, 2 cells: hard, benign, 3 seeds)."""
    return np.stack([hard, benign], axis=1)


def verdict_of(hard, benign):
    return M.region_tests(NAMES, two(hard, benign), M.CLAIMED, TWO)


def examples(size):
    """PASS: the baseline amount is positive in every run and every lever lowers it by
    1/16 (constant: p = 0 in each region); FAIL: every lever raises it by 1/16."""
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
    assert P_VARIED < 0.01 < 2 * P_VARIED and 2 * P_HIGH < P_LOW < 0.01


def test_protocol_v3_and_its_disclosures():
    p = M.PROTOCOL
    assert isinstance(p, Protocol) and p.name == "mitigation" and p.source == "paper"
    assert p.salt == "mitigation-v3" and p.fixed == "2026-12-06" and p.hash_scheme1 == ""
    assert p.hash(quick=True) != p.hash() and p.hash() != "c61733ab6bab"  # v2's hash
    assert all(isinstance(d, Disclosure) and d.earlier for d in p.disclosures)
    json.dumps(p.to_dict(), allow_nan=False)
    first, split, v3, engine = p.disclosures
    assert "12 -> 24" in first.change and "freeze inherited -0.0357 (p = 1)" in split.earlier
    assert "per region" in v3.change and "24 -> 96" in v3.change and "dropped" in v3.change
    for committed in ("smaller alpha +0.0115 (p = 0.029)", "smaller alpha +0.0070 (p = 0.085)"):
        assert committed in v3.earlier  # the hard region on main and on r1
    assert "PASS on main" in v3.earlier and "PASS on r1" in v3.earlier
    assert "0.01 96 / 96" in v3.earlier
    assert "Holm-adjusted p < 0.01" in p.pass_rule and "every region" in p.pass_rule
    # the engine change after v3's item-by-item runs (weight engine) on three streams
    assert "batched three-stage path" in engine.change and p.rules["engine"] == B.ENGINE_RULE
    assert "engine 'weight'" in engine.change and "FAIL on main, r1 and r2" in engine.earlier
    assert "+0.0122 ± 0.0031" in engine.earlier and "+0.0052 ± 0.0036" in engine.earlier


def test_design_levers_regions_seeds_and_equal_loss_levers():
    p = M.PROTOCOL
    assert NAMES == [
        "baseline",
        "smaller alpha (0.2)",
        "weight decay 0.003",
        "weight decay 0.01",
        "rescale inherited x0.3",
    ]
    assert "freezing" not in M.CLAIMED and "freeze inherited" not in M.LEVERS
    assert set(p.common) == {"alpha", "weight_decay", "freeze_inherited", "rescale_inherited"}
    assert FULL.seeds == 96 and QUICK.seeds == 3
    assert (
        FULL.at_loss
        == QUICK.at_loss
        == ["baseline", "smaller alpha (0.2)", "rescale inherited x0.3"]
    )
    assert (FULL.epsilon, FULL.cap) == (0.005, 2000) == (QUICK.epsilon, QUICK.cap)
    for size, d, hard_n, n_down in ((FULL, 600, 10, 40), (QUICK, 120, 8, 16)):
        hard, benign = size.configs["hard"], size.configs["benign"]
        assert len(hard) == len(benign) == 5 * 2  # levers x |u|, lever-major
        c = hard[7]  # lever 3 (weight decay 0.01), |u| index 1
        assert (c.weight_decay, c.u_norm, c.alpha, c.d, c.n_down) == (0.01, 0.25, 0.8, d, hard_n)
        c = benign[3]  # lever 1 (smaller alpha), |u| index 1
        assert (c.alpha, c.u_norm, c.n_down, c.v_down_norm) == (0.2, 0.5, n_down, 3.0)
        assert benign[9].rescale_inherited == 0.3 and benign[0].alpha == 0.8


# ----------------------------------------------------------------------
# region_tests: hand-made amounts, one cell of 3 seeds per region
def test_pass_in_both_regions_with_holm_values():
    """hard: baseline LOW (p = 0.00204); smaller alpha VARIED (p = 0.00654); weight decay
    0.003 lowers by 1/32 (p = 0), 0.01 raises by 1/64 (p = 1): Bonferroni min(1, 2 x 0) = 0.
    benign: baseline HIGH (p = 0.00058); smaller alpha 1/16 (p = 0); weight decay 0.003
    VARIED, 0.01 1/32 (p = 0): Bonferroni 0. Holm: baseline benign 2 x 0.00058 = 0.00115,
    hard max(0.00115, 0.00204) = 0.00204; smaller alpha benign 0, hard 0.00654; weight decay
    0 and 0. All < 0.01: PASS."""
    d = verdict_of(
        region(LOW, [VARIED, 1 / 32, -1 / 64, 0.0]),
        region(HIGH, [1 / 16, VARIED, 1 / 32, -1 / 64]),
    )
    hard, benign = d["regions"]["hard"], d["regions"]["benign"]
    assert hard["baseline"]["p"] == approx(P_LOW) and benign["baseline"]["p"] == approx(P_HIGH)
    assert hard["baseline_holm"] == approx(P_LOW)
    assert benign["baseline_holm"] == approx(2 * P_HIGH)
    assert hard["claim_holm"]["smaller alpha"] == approx(P_VARIED)
    assert benign["claim_holm"]["smaller alpha"] == 0.0
    assert hard["claim_p"]["weight decay"] == 0.0 and benign["claim_p"]["weight decay"] == 0.0
    assert hard["tests"]["weight decay 0.01"]["p"] == 1.0
    assert benign["tests"]["rescale inherited x0.3"]["p"] == 1.0  # raises it: not claimed
    for x in (hard, benign):
        assert x["negative"] and x["per_claim"] == {"smaller alpha": True, "weight decay": True}
    assert d["verdict"] == d["verdict_tests"] == "PASS" and d["missing"] == 0


def test_holm_over_the_regions_can_fail_what_each_region_passes_alone():
    """smaller alpha VARIED in both regions: raw p = 0.00654 < 0.01 in each, Holm-adjusted
    2 x 0.00654 = 0.01307 >= 0.01 in both: it holds in neither; FAIL."""
    d = verdict_of(
        region(LOW, [VARIED, 1 / 32, 1 / 32, 0.0]),
        region(HIGH, [VARIED, 1 / 32, 1 / 32, 0.0]),
    )
    for x in d["regions"].values():
        assert x["claim_p"]["smaller alpha"] == approx(P_VARIED)
        assert x["claim_holm"]["smaller alpha"] == approx(2 * P_VARIED)
        assert x["per_claim"] == {"smaller alpha": False, "weight decay": True}
    assert d["verdict"] == "FAIL"


def test_weight_decay_bonferroni_then_holm_fails_in_one_region_only():
    """hard: weight decay 0.003 VARIED (p = 0.00654), 0.01 raises (p = 1): Bonferroni
    0.01307; benign: 0.01 lowers by 1/32 (p = 0): Bonferroni 0. Holm: benign 0, hard
    max(0, 0.01307) = 0.01307: weight decay holds in benign, not in hard; FAIL."""
    d = verdict_of(
        region(LOW, [1 / 16, VARIED, -1 / 64, 0.0]),
        region(HIGH, [1 / 16, -1 / 64, 1 / 32, 0.0]),
    )
    hard, benign = d["regions"]["hard"], d["regions"]["benign"]
    assert hard["claim_p"]["weight decay"] == approx(2 * P_VARIED)
    assert hard["claim_holm"]["weight decay"] == approx(2 * P_VARIED)
    assert benign["claim_holm"]["weight decay"] == 0.0
    assert hard["per_claim"] == {"smaller alpha": True, "weight decay": False}
    assert benign["per_claim"] == {"smaller alpha": True, "weight decay": True}
    assert d["verdict"] == "FAIL"


def test_a_region_without_negative_transfer_fails():
    """hard baseline LOW - 1/4 < 0 in every seed: p > 1/2, not significant; the levers'
    reductions there are constant (p = 0) but the region has nothing to shrink; FAIL."""
    d = verdict_of(
        region(LOW - 0.25, [1 / 16, 1 / 32, 1 / 32, 0.0]),
        region(HIGH, [1 / 16, 1 / 32, 1 / 32, 0.0]),
    )
    hard = d["regions"]["hard"]
    assert hard["baseline"]["p"] > 0.5 and not hard["negative"]
    assert all(hard["per_claim"].values()) and d["regions"]["benign"]["negative"]
    assert d["verdict"] == "FAIL"
    text = M._regions_text(d, M.CLAIMED)
    assert ", NOT significant: nothing to shrink; smaller alpha not tested (" in text
    assert "benign region: negative transfer +0.2656 ± 0.0090" in text  # 17/64, (1/64)/sqrt(3)


def test_a_missing_value_of_any_lever_fails():
    neg = two(region(LOW, [1 / 16, 1 / 32, 1 / 32, 0.0]), region(HIGH, [1 / 16, 1 / 32, 1 / 32, 0]))
    assert M.region_tests(NAMES, neg, M.CLAIMED, TWO)["verdict"] == "PASS"
    neg[4, 1, 2] = NAN  # the rescale lever in benign: not claimed, but its run is missing
    d = M.region_tests(NAMES, neg, M.CLAIMED, TWO)
    assert d["verdict_tests"] == "PASS" and d["missing"] == 1 and d["verdict"] == "FAIL"


def test_claims_without_their_levers_are_left_out():
    """At equal loss only AT_LOSS runs: weight decay has no reading there."""
    neg = two(region(LOW, [1 / 16, 1 / 32, 1 / 32, 0.0]), region(HIGH, [1 / 16, 1 / 32, 1 / 32, 0]))
    d = M.region_tests(M.AT_LOSS, neg[AT], M.CLAIMED, TWO)
    for x in d["regions"].values():
        assert x["per_claim"] == {"smaller alpha": True} and set(x["tests"]) == set(M.AT_LOSS[1:])
    assert d["verdict"] == "PASS"


# ----------------------------------------------------------------------
# decide, measure, present
def test_decide_pools_cells_within_a_region_and_reads_equal_loss_apart():
    """QUICK: two cells per region, so each region's tests have 2 x 3 = 6 runs."""
    neg = examples(QUICK)["PASS"]["steps"]["err_transfer"] - 0.25
    failing = neg[AT].copy()
    failing[1] = failing[0] + 1 / 16  # smaller alpha raises it at equal loss
    d = M.decide(QUICK, lever_measurements(neg, failing))
    assert d["verdict"] == "PASS" and d["regions"]["hard"]["tests"]["smaller alpha (0.2)"]["n"] == 6
    eq = d["equal_loss"]
    assert eq["verdict"] == "FAIL" and set(eq["regions"]["benign"]["per_claim"]) == {
        "smaller alpha"
    }
    assert d["pooled"]["steps"]["tests"]["weight decay 0.01"]["n"] == 12  # v2's pooled test
    assert set(d["pooled"]["loss"]["claim_p"]) == {"smaller alpha"}


def test_measure_runs_equal_loss_only_for_its_levers():
    """A fake sweep whose value is 100 * call + point index + replicate / 10: cell c of
    lever k holds point k * 2 + (c mod 2) of region c // 2 (equal loss: of AT_LOSS)."""
    calls = []

    class Fake:
        def __init__(self, offset, n, seeds):
            self.v = offset + np.arange(n)[:, None] + np.arange(seeds)[None, :] / 10

        def values(self, key):
            return self.v

    def sweep(grid, label="", metrics=(), **kwargs):
        calls.append((label, list(grid), tuple(metrics), kwargs))
        return Fake(100 * len(calls), len(grid), QUICK.seeds)

    m = M.measure(QUICK, sweep)
    assert [c[0] for c in calls] == ["hard", "hard (equal loss)", "benign", "benign (equal loss)"]
    assert calls[0][2] == ("err_transfer", "err_scratch")
    assert calls[0][3] == {"measure": "outcomes_batched"}  # the batched three-stage path
    grid = QUICK.configs["hard"]
    assert calls[1][1] == grid[0:4] + grid[8:10]  # baseline, smaller alpha, rescale
    assert calls[1][3]["measure"] == "outcomes_batched"
    assert calls[1][3]["options"] == {"epsilon": 0.005, "cap": 2000}
    assert m["steps"]["err_transfer"].shape == (5, 4, 3)
    assert m["loss"]["stalled_transfer"].shape == (3, 4, 3)
    assert m["steps"]["err_transfer"][3, 1, 2] == 100 + 3 * 2 + 1 + 0.2  # hard, wd 0.01
    assert m["loss"]["err_transfer"][2, 2, 0] == 400 + 2 * 2 + 0  # benign, rescale, |u| 0


@pytest.mark.parametrize("size", [QUICK, FULL], ids=["quick", "full"])
def test_present_on_the_examples(size):
    for verdict, m in examples(size).items():
        dec = M.decide(size, m)
        assert dec["verdict"] == verdict
        out = M.present(size, m, dec)
        assert isinstance(out, Outcome) and out.statistic.startswith("hard region: negative")
        assert "; benign region: negative transfer" in out.statistic
        assert f"over {size.seeds} seeds x 2 cells per region" in out.statistic
        word = "shrinks it" if verdict == "PASS" else "does NOT shrink it"
        assert f"smaller alpha {word}" in out.statistic and f"weight decay {word}" in out.statistic
        csv = [s for s in out.sections if isinstance(s, Table) and s.name == "mitigation"]
        assert len(csv[0].rows) == (5 + 3) * 4  # (levers + levers at equal loss) x cells
        figures = [f.name for f in out.sections if isinstance(f, Figure)]
        assert figures == ["mitigation", "mitigation_equal_loss"]
        shown = [s for s in out.sections if isinstance(s, Table) and s.show]
        assert [len(t.rows) for t in shown] == [1 + 4 + 2, 5, 1 + 2 + 1, 3]


def test_present_words_each_region_and_warns_where_runs_stall():
    """Smaller alpha VARIED in both regions (Holm-adjusted 0.013, as above); weight decay
    lowers by 1/32 = 0.03125 at both levels (p = 0); the hard baseline LOW: mean 9/64 =
    0.1406, se (1/64) / sqrt(3) = 0.0090."""
    neg = two(region(LOW, [VARIED, 1 / 32, 1 / 32, 0.0]), region(HIGH, [VARIED, 1 / 32, 1 / 32, 0]))
    text = M._regions_text(M.region_tests(NAMES, neg, M.CLAIMED, TWO), M.CLAIMED)
    assert text.startswith("hard region: negative transfer +0.1406 ± 0.0090 (Holm-adjusted p =")
    assert (
        "smaller alpha does NOT shrink it (smaller alpha (0.2): +0.0049; Holm-adjusted p = "
        "0.013)" in text
    )
    assert (
        "weight decay shrinks it (weight decay 0.003: +0.0312, weight decay 0.01: +0.0312, "
        "Bonferroni x2; Holm-adjusted p < 1e-10)" in text
    )
    size = M.PROTOCOL.quick
    m = lever_measurements(examples(size)["PASS"]["steps"]["err_transfer"] - 0.25, stalled=1.0)
    out = M.present(size, m, M.decide(size, m))
    text = "\n".join(s for s in out.sections if isinstance(s, str))
    assert "Caveat" in text and "baseline (12 transfer / 12 scratch runs of 12 stalled)" in text
    assert "Weight decay has no equal-loss reading" in text
