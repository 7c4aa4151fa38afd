"""Tests of claims_common (moved from the history-named test files)."""

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
from refimpl.lab import stats as S

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


def test_closed_forms_match_the_t_distribution():  # the helpers themselves
    assert p_df1(2.0) == approx(scipy.stats.t.sf(2.0, 1))
    assert p_df2(6 * math.sqrt(3)) == approx(scipy.stats.t.sf(6 * math.sqrt(3), 2))


def test_every_claim_uses_the_one_significance_level():
    for mod in CLAIMS:
        assert callable(mod.decide), mod.NAME
        if hasattr(mod, "SIGNIFICANCE"):
            assert mod.SIGNIFICANCE == S.SIGNIFICANCE == 0.01, mod.NAME
    assert not hasattr(phase_single, "LEVEL")
    assert phase_single.BOUNDARY_ERROR == 0.2


# --- moved from test_disclosed.py

import json
import math

import numpy as np

from refimpl.claims import (
    coefficients,
    gain_alpha,
    mechanism,
    mitigation,
    mitigation_freezing,
    phase_single,
)
from refimpl.lab import report as R
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


@pytest.mark.parametrize("mod", MINE)
def test_protocol_and_disclosures_are_declared(mod):
    assert isinstance(mod.PROTOCOL, Protocol) and mod.PROTOCOL.claim == mod.NAME
    assert isinstance(mod.QUICK_PROTOCOL, Protocol) and mod.QUICK_PROTOCOL.hash != mod.PROTOCOL.hash
    assert len(mod.PROTOCOL.hash) == 12 and mod.PROTOCOL.fixed
    assert all(isinstance(d, Disclosure) and d.earlier for d in mod.DISCLOSURES)
    text = json.dumps(mod.PROTOCOL.to_dict(), allow_nan=False)
    assert "engine" not in text  # how, not what: not part of the protocol


def test_sources_follow_docs_model_section_8():
    assert {m.NAME: m.SOURCE for m in MINE} == {
        "coefficients": "framework",
        "phase_single": "framework",
        "gain_alpha": "paper",
        "mechanism": "hypothesis",
        "mitigation": "paper",
        "mitigation_freezing": "hypothesis",
    }
    assert "freezing" not in mitigation.CLAIMED and "freeze inherited" not in mitigation.LEVERS
    assert mitigation_freezing.CLAIMED == {"freezing": ["freeze inherited"]}


def test_the_disclosed_earlier_results_are_there():
    ps = " ".join(d.change + d.earlier for d in phase_single.DISCLOSURES)
    assert "eta = 1" in ps and "0.299" in ps and "-0.293" in ps
    ga = " ".join(d.change + d.earlier for d in gain_alpha.DISCLOSURES)
    assert "|u| = 0.5" in ga and "alpha <= 0.7" in ga and "16 -> 20" in ga
    assert "+0.0441" in ga  # the committed v1 statistic
    mech = " ".join(d.change + d.earlier for d in mechanism.DISCLOSURES)
    assert "`negative`" in mech and "-0.438" in mech and "20 -> 30" in mech
    assert "12 -> 24" in mitigation.DISCLOSURES[0].change
    assert "freeze inherited -0.0357 (p = 1)" in mitigation_freezing.DISCLOSURES[-1].earlier


def test_json_verdict_is_the_reported_one(tmp_path, monkeypatch):
    """mitigation_freezing at quick size with one run made missing: the
    tests alone would give some verdict; the reported one is FAIL, and the
    JSON says the same."""
    real = mitigation._sweeps

    def with_nan(*a, **k):
        res, cells = real(*a, **k)
        res["neg"] = res["neg"].copy()
        res["neg"][1, 0, 0] = NAN
        return res, cells

    monkeypatch.setattr(mitigation, "_sweeps", with_nan)
    res = mitigation_freezing.run(tmp_path, quick=True)
    saved = json.loads((tmp_path / "mitigation_freezing" / "mitigation_freezing.json").read_text())
    assert res["verdict"] == saved["verdict"] == "FAIL"
    assert saved["n_missing"] == 1 and saved["statistic"] == res["statistic"]
    assert R.missing_note(1) in saved["statistic"]
    assert saved["protocol_hash"] == mitigation_freezing.QUICK_PROTOCOL.hash
    assert "Disclosed change" in res["markdown"]


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
from refimpl.lab.seeds import derive_seed

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
