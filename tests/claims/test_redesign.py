"""The redesigned transfer claims (issue 9): gain_shared, gain_upstream_n,
gain_noise_dim, negative_transfer and robustness. Their decision functions on
hand-made inputs, their designs (fixed |mu|, fixed Gamma_scr, distinct cells,
common random numbers where paired) and their declared protocols.

Expected p-values come from closed forms, not from running the code:

- Page's L test, exact, when every one of b blocks is perfectly ordered as
  predicted over k points: p = (1/k!)^b (the largest L, reached only so);
- Wilcoxon signed-rank, exact, one-sided "greater": n nonzero differences
  of distinct magnitudes, all positive: p = 2^-n (the largest W+, reached
  only so); all negative: p = 1; the one with the smallest magnitude
  negative, the rest positive: W+ = n(n+1)/2 - 1, reached by that sign
  pattern and by all positive, so p = 2 / 2^n;
- exact McNemar, one-sided: k discordant pairs, all failing under a:
  p = 2^-k;
- Holm over m tests: the smallest p-value is multiplied by m.
"""

from __future__ import annotations

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
from refimpl.lab import stats as S
from refimpl.lab.protocol import Disclosure, Protocol
from refimpl.lab.seeds import derive_seed
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


# ----------------------------------------------------------------------
# protocols and disclosures
@pytest.mark.parametrize("mod", MODULES)
def test_every_redesigned_claim_declares_its_protocol_and_discloses_the_change(mod):
    p = mod.PROTOCOL
    assert isinstance(p, Protocol) and p.claim == mod.NAME and p.fixed == "2026-11-29"
    assert p.seeds == mod.SEEDS and len(p.hash) == 12
    assert "pairing" in p.extra and "failure" in p.extra
    assert str(S.SIGNIFICANCE) in p.pass_rule
    assert mod.DISCLOSURES and all(isinstance(d, Disclosure) for d in mod.DISCLOSURES)
    for d in mod.DISCLOSURES:
        assert d.date == "2026-11-29" and "->" in d.change
        assert d.earlier.startswith(("PASS", "FAIL"))  # the committed result, stated
    assert p.extra["salt"] == f"{mod.NAME}-v2"  # fresh seeds for the new design


def test_the_protocols_grids_are_the_ones_run():
    fr, _, _grid = gain_shared.grid_configs(False)
    assert gain_shared.PROTOCOL.grid["shared_fraction"] == fr == gain_shared.FRACTIONS
    assert gain_upstream_n.PROTOCOL.grid["n_up"] == gain_upstream_n.NS
    _, panels = gain_noise_dim.panel_configs(False)
    assert panels["sigma_p_up"][0] == gain_noise_dim.PROTOCOL.grid["sigma_p_up panel"]["sigma_p_up"]
    assert panels["d"][0] == gain_noise_dim.PROTOCOL.grid["d panel"]["d"]
    us, rows = negative_transfer.distinct_rows(False)
    assert len(rows) * len(us) == negative_transfer.PROTOCOL.grid["distinct cells"] == 70
    assert list(robustness.PROTOCOL.grid["variants"]) == list(robustness.VARIANTS)


# ----------------------------------------------------------------------
# designs
def test_gain_shared_holds_both_signal_strengths_fixed():
    fr, _, grid = gain_shared.grid_configs(False)
    for f, c in zip(fr, grid):
        assert c.u_norm**2 + c.v_up_norm**2 == approx(5.0, rel=1e-12)
        assert c.u_norm**2 + c.v_down_norm**2 == approx(5.0, rel=1e-12)
        assert c.u_norm**2 / 5.0 == approx(f, rel=1e-12, abs=1e-12)
    # the base regime's point |u| = 2, |v| = 1 is f = 0.8
    c = grid[fr.index(0.8)]
    assert (c.u_norm, c.v_down_norm) == (approx(2.0), approx(1.0))
    # the downstream task's own indicator N_2 |mu_2|^4 / (sigma^4 d) = 10 * 25 / 600
    assert {round(indicators(c)["gamma_scr"], 12) for c in grid} == {round(250 / 600, 12)}


def test_gain_noise_dim_d_panel_keeps_gamma_scr_and_the_geometry():
    _, panels = gain_noise_dim.panel_configs(False)
    _, grid = panels["d"]
    assert [c.n_down for c in grid] == [5, 10, 20, 40, 80]  # N_2 = 10 d / 600
    for c in grid:
        assert indicators(c)["gamma_scr"] == approx(10 * 4 / 600, rel=1e-12)  # 1/15
        assert (c.u_norm, c.v_up_norm, c.v_down_norm, c.sigma_p_up) == (1.0, 1.0, 1.0, 1.0)
    _, grid = panels["sigma_p_up"]
    assert {(c.d, c.n_down) for c in grid} == {(600, 10)}


def test_negative_transfer_cells_are_distinct_and_the_shared_row_is_kept_once():
    _, rows = negative_transfer.distinct_rows(False)
    configs = [c.to_dict() for row in rows for c in row["configs"]]
    keys = {tuple(sorted(c.items())) for c in configs}
    assert len(keys) == len(configs) == 70
    for regime in ("hard", "benign"):
        mine = [r for r in rows if r["regime"] == regime]
        assert [r["value"] for r in mine if r["field"] == "alpha"] == [0.2, 0.5, 0.8, 1.0]
        assert [r["value"] for r in mine if r["field"] == "n_up"] == [20, 50, 100]
        # the (|u|, N_1) heatmap's N_1 = 200 row is the alpha = 0.5 row
        shared = next(r for r in mine if r["field"] == "alpha" and r["value"] == 0.5)
        assert {c.n_up for c in shared["configs"]} == {200}
    q_us, q_rows = negative_transfer.distinct_rows(True)
    assert len({tuple(sorted(c.to_dict().items())) for r in q_rows for c in r["configs"]}) == len(
        q_rows
    ) * len(q_us)


def test_robustness_predicts_the_reversal_with_correlated_signals_only():
    assert robustness.REVERSED == {"cos(v_1, v_2) = 0.5": "gain"}
    assert robustness.VARIANTS["cos(v_1, v_2) = 0.5"] == {"v_cos": 0.5}
    eq = robustness.VARIANTS[robustness.EQUAL_LOSS]
    assert eq == {"epsilon": _base.EPSILON, "steps_down": _base.LOSS_CAP}


def fake_measure(config):
    """A sweep measure for the seed tests: the seed in every metric."""
    s = float(config.seed % 100003)
    return {m: s for m in _base.RUN_METRICS + gain_upstream_n.EXTRA_METRICS}


def test_common_random_numbers_exactly_where_the_design_is_paired(tmp_path):
    """gain_upstream_n: every N_1 and both stopping rules share a seed (scratch
    cannot depend on N_1); the d panel of gain_noise_dim does not."""
    base = gain_upstream_n.transfer_base(True, u_norm=1.0)
    grid = [base.replace(n_up=n) for n in (10, 20, 40)]
    vals = _base.sweep_rules(
        tmp_path,
        grid,
        True,
        3,
        1,
        "t",
        "salt",
        common=("n_up",),
        metrics=_base.RUN_METRICS,
        measure=fake_measure,
    )
    seeds = np.stack([vals[r]["gain"] for r in _base.RULES])  # (rules, points, reps)
    assert np.all(seeds == seeds[0, 0])  # one seed per replicate
    assert np.unique(seeds[0, 0]).size == 3
    # the d panel: no common field, so the seeds differ across d
    _, panels = gain_noise_dim.panel_configs(True)
    dgrid = panels["d"][1]
    common = _base.STOP_FIELDS
    assert len({derive_seed(c, 0, common, "s") for c in dgrid}) == len(dgrid)
    # the sigma_p,1 panel: one seed across sigma_p,1
    sgrid = panels["sigma_p_up"][1]
    assert len({derive_seed(c, 0, ("sigma_p_up",) + common, "s") for c in sgrid}) == 1


def test_stalled_runs_are_those_above_the_loss_target():
    got = _base.stalled([[1e-3, 2e-3, 5e-4], [NAN, 0.07, 1e-3]], 1e-3)
    assert np.array_equal(got[0], [0, 1, 0]) and math.isnan(got[1, 0])
    assert np.array_equal(got[1, 1:], [1, 0])  # met at the cap: reached


def test_point_summary_puts_mean_median_and_failure_rate_side_by_side():
    # err_transfer: two good runs and one failure (0.26 > 0.2); err_scratch 0.25 each
    et = np.array([[0.01, 0.03, 0.26]])
    es = np.full((1, 3), 0.25)
    s = _base.point_summary(et, es, [[5e-4, 5e-4, 0.07]], [[5e-4] * 3], 1e-3)
    assert s["err_transfer_mean"][0] == approx(0.1, rel=1e-12)
    assert s["err_transfer_median"][0] == approx(0.03)
    assert s["fail_transfer"][0] == approx(1 / 3) and s["fail_scratch"][0] == 1.0
    assert s["gain_median"][0] == approx(0.22) and s["gain_mean"][0] == approx(0.15)
    assert s["stalled_transfer"][0] == 1 and s["stalled_scratch"][0] == 0
    # gains 0.24, 0.22, -0.01: the negative one has the smallest magnitude: p = 2/2^3
    assert s["p_gain_wilcoxon"][0] == approx(2 / 8)


# ----------------------------------------------------------------------
# gain_shared, gain_upstream_n: Page trend under both stopping rules
X3 = [0.0, 0.5, 1.0]
UP = np.array([[0.0, 0.01, 0.02], [0.1, 0.12, 0.11], [0.2, 0.25, 0.3]])  # every seed rising


@pytest.mark.parametrize("mod", [gain_shared, gain_upstream_n])
@pytest.mark.parametrize(
    "steps, loss, verdict",
    [
        (UP, UP, "PASS"),  # (1/6)^3 = 1/216 under each rule
        (UP, UP[:, :2], "FAIL"),  # 1/36 at equal loss: two seeds are too few
        (UP, UP[::-1], "FAIL"),  # falls at equal loss
        (UP[::-1], UP, "FAIL"),
    ],
)  # falls at fixed T
def test_gain_trends_must_hold_under_both_stopping_rules(mod, steps, loss, verdict):
    d = mod.decide(X3, {"steps": steps, "loss": loss})
    assert d["verdict"] == d["verdict_tests"] == verdict and d["missing"] == 0
    for rule, g in (("steps", steps), ("loss", loss)):
        if g is UP:  # three perfectly rising blocks
            assert d["trend"][rule]["p"] == approx(page_perfect(3, 3)) and d["holds"][rule]
        elif g.shape[1] == 2:  # two: 1/36
            assert d["trend"][rule]["p"] == approx(page_perfect(3, 2)) and not d["holds"][rule]
        else:  # falling: the smallest L
            assert d["trend"][rule]["p"] == approx(1.0) and not d["holds"][rule]


@pytest.mark.parametrize("mod", [gain_shared, gain_upstream_n])
def test_gain_trend_missing_values_are_counted_across_rules_and_fail(mod):
    loss = UP.tolist()
    loss[1][2] = None
    d = mod.decide(X3, {"steps": UP, "loss": loss})
    assert d["missing"] == 1 and d["verdict"] == "FAIL"
    assert math.isnan(d["trend"]["loss"]["p"]) and d["trend"]["steps"]["p"] == approx(1 / 216)


# ----------------------------------------------------------------------
# gain_noise_dim: four Page trends
DOWN = UP[::-1]


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


# ----------------------------------------------------------------------
# negative_transfer: Wilcoxon and McNemar per distinct cell, Holm over both
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


def test_negative_transfer_pass_with_exact_p_values():
    et, es = nt_hard_row(distinct(N10))  # +r/1024 at |u| = 0: all positive
    rows = {"steps": et[None], "loss": et[None]}
    d = negative_transfer.decide([0, 1, 2], ["hard"], rows, {k: es[None] for k in rows})
    for rule in ("steps", "loss"):
        x = d["rules"][rule]
        assert x["p_wilcoxon"][0, 0] == approx(2.0**-10)
        assert x["padj_wilcoxon"][0, 0] == approx(6 * 2.0**-10)  # Holm over 2 x 3 tests
        assert x["p_failures"][0, 0] == 1.0  # no failure anywhere
        assert x["significant"] == [(0, 0, "wilcoxon")]
        assert x["trend"]["p"] == approx(page_perfect(3, N10))
        assert x["trend_benign"] is None and x["holds"]
    assert d["verdict"] == "PASS" and d["missing"] == 0


def test_negative_transfer_failures_alone_can_mark_a_cell():
    """10 seeds where transfer fails just above 0.2 and scratch just below
    (differences +0.0100 ... +0.0109), 10 where transfer is better by more
    (-0.021 ... -0.030): W+ = 1 + ... + 10 = 55, below its null mean 105
    (Wilcoxon p > 1/2), but the 10 discordant failures give the exact McNemar
    p = 2^-10. Every block still falls over |u| (Page, 20 perfect blocks)."""
    r = np.arange(N10) * 1e-4
    et0 = np.concatenate([0.205 + r, 0.13 + r])
    es0 = np.concatenate([0.195 + 0 * r, 0.15 + 0.001 * np.arange(1, N10 + 1) + r])
    et, es = nt_hard_row(distinct(N10))
    et = np.concatenate([et, et], axis=1)
    es = np.concatenate([es, es], axis=1)
    et[0], es[0] = et0, es0
    d = negative_transfer.decide([0, 1, 2], ["hard"], {"steps": et[None]}, {"steps": es[None]})
    x = d["rules"]["steps"]
    assert x["p_failures"][0, 0] == approx(2.0**-10)
    assert x["padj_failures"][0, 0] == approx(6 * 2.0**-10)
    assert x["p_wilcoxon"][0, 0] > 0.5
    assert x["significant"] == [(0, 0, "failures")] and d["verdict"] == "PASS"
    assert x["trend"]["n"] == 2 * N10 and x["trend"]["rho"] == approx(-1.0)


def test_negative_transfer_holm_family_grows_with_the_distinct_cells():
    et, es = nt_hard_row(distinct(N10))
    et_b, es_b = nt_hard_row(-distinct(N10))  # benign: transfer better at |u| = 0
    t = {"steps": np.stack([et, et_b])}
    s = {"steps": np.stack([es, es_b])}
    d = negative_transfer.decide([0, 1, 2], ["hard", "benign"], t, s)
    x = d["rules"]["steps"]
    # 2 rows x 3 cells x 2 tests = 12: 12 / 1024 = 0.0117 >= 0.01
    assert x["padj_wilcoxon"][0, 0] == approx(12 * 2.0**-10)
    assert x["significant"] == [] and not x["existence"] and d["verdict"] == "FAIL"
    assert x["trend"]["n"] == N10 and x["trend_benign"]["n"] == N10  # hard blocks only


def test_negative_transfer_needs_existence_and_location_under_both_rules():
    et, es = nt_hard_row(distinct(N10))
    flat_t, flat_s = nt_hard_row(-distinct(N10))  # no worse cell at equal loss
    d = negative_transfer.decide(
        [0, 1, 2],
        ["hard"],
        {"steps": et[None], "loss": flat_t[None]},
        {"steps": es[None], "loss": flat_s[None]},
    )
    assert d["rules"]["steps"]["holds"] and not d["rules"]["loss"]["existence"]
    assert d["verdict"] == "FAIL"
    rising = 2 * ES - et  # the difference now rises with |u|
    d = negative_transfer.decide(
        [0, 1, 2],
        ["hard"],
        {"steps": et[None], "loss": rising[None]},
        {"steps": es[None], "loss": es[None]},
    )
    assert d["rules"]["loss"]["trend"]["rho"] == approx(1.0) and not d["rules"]["loss"]["location"]
    assert d["verdict"] == "FAIL"


def test_negative_transfer_missing_value_fails_and_is_counted():
    et, es = nt_hard_row(distinct(N10))
    loss_t = et.copy()
    loss_t[1, 3] = NAN
    d = negative_transfer.decide(
        [0, 1, 2],
        ["hard"],
        {"steps": et[None], "loss": loss_t[None]},
        {"steps": es[None], "loss": es[None]},
    )
    assert math.isnan(d["rules"]["loss"]["p_wilcoxon"][0, 1])
    assert math.isnan(d["rules"]["loss"]["padj_wilcoxon"][0, 1])
    assert d["verdict_tests"] == "FAIL"  # the trend p is NaN too
    assert d["missing"] == 1 and d["verdict"] == "FAIL"


# ----------------------------------------------------------------------
# robustness: separate findings, pooled verdict
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


def test_robustness_findings_are_separate_and_the_verdict_pooled():
    base = rising(0, band(1, -1.0))  # negative transfer at |u| = 0
    alternate = np.array([1.0, -1.0] * 5)
    entry = rising(1, band(0) * alternate)  # |u| = 0: no effect
    cos = rising(2, band(2))  # the reversal: a gain at |u| = 0
    names = ["base", "entry", "cos"]
    et = np.stack([base[0], entry[0], cos[0]])
    es = np.stack([base[1], entry[1], cos[1]])
    d = robustness.decide(names, [0.0, 1.0, 2.0], et, es, reversed_={"cos": "gain"})
    res = d["results"]
    assert res["base"]["at |u| = 0"]["p"] == approx(2.0**-10)
    assert res["base"]["at |u| = 0"]["status"] == "detected"
    # entry: et - es = -gain positive at r = 2, 4, ..., 10: W+ = 30 of 55
    assert res["entry"]["at |u| = 0"]["p"] == approx(upper_tail(10, 30))
    assert res["entry"]["at |u| = 0"]["status"] == "not detected"  # not "lost"
    assert res["cos"]["prediction_u0"] == "gain"
    assert res["cos"]["at |u| = 0"]["p"] == approx(2.0**-10)
    assert res["cos"]["at |u| = 0"]["status"] == "detected"
    for n in names:
        assert res[n]["gain at |u| = 2"]["p"] == approx(2.0**-10)
        assert res[n]["gain grows with |u|"]["p"] == approx(page_perfect(3, N10))
    pooled = d["pooled"]
    assert pooled["gain at |u| = 2"]["p"] == approx(2.0**-30)  # 3 variants x 10 seeds
    # 30 perfect blocks: Page's normal approximation, L = 14 b, mean 12 b,
    # variance 2 b, so z = sqrt(2 b)
    assert pooled["gain grows with |u|"]["p"] == approx(scipy_norm_sf(math.sqrt(60)), rel=1e-6)
    assert pooled["negative transfer at |u| = 0"]["variants"] == ["base", "entry"]
    # pooled: base's 10 positive differences are ranks 11..20 (155), entry's
    # positive ones ranks 2, 4, ..., 10 (30): W+ = 185 over 20 ranks
    assert pooled["negative transfer at |u| = 0"]["p"] == approx(upper_tail(20, 185))
    assert upper_tail(20, 185) < 0.01
    assert pooled["gain at |u| = 0 (reversal)"]["variants"] == ["cos"]
    assert pooled["gain at |u| = 0 (reversal)"]["p"] == approx(2.0**-10)
    # entry's non-detection does not fail the verdict: no AND across variants
    assert all(t["holds"] for t in pooled.values())
    assert d["verdict"] == "PASS" and d["missing"] == 0


def scipy_norm_sf(z):
    return 0.5 * math.erfc(z / math.sqrt(2))


def test_robustness_opposite_effect_and_a_failing_pooled_prediction():
    # predicted negative transfer at |u| = 0 but transfer is better in every seed
    better = rising(0, band(0))
    d = robustness.decide(["v"], [0.0, 1.0, 2.0], better[0][None], better[1][None], reversed_={})
    r = d["results"]["v"]["at |u| = 0"]
    assert r["p"] == 1.0 and r["p_opposite"] == approx(2.0**-10) and r["status"] == "opposite"
    assert not d["pooled"]["negative transfer at |u| = 0"]["holds"]
    assert "gain at |u| = 0 (reversal)" not in d["pooled"]  # no variant predicts it
    assert d["verdict"] == "FAIL"


def test_robustness_missing_value_fails_and_is_counted():
    et, es = rising(0, band(1, -1.0))
    et[1, 4] = NAN  # |u| = 1: only the growth uses it
    d = robustness.decide(["v"], [0.0, 1.0, 2.0], et[None], es[None], reversed_={})
    assert d["results"]["v"]["gain at |u| = 2"]["status"] == "detected"
    assert math.isnan(d["results"]["v"]["gain grows with |u|"]["p"])
    assert d["missing"] == 1 and d["verdict"] == "FAIL"
