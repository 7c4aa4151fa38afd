"""phase_single: its declared protocol (the configs of both sizes, the step-size rules),
``measure``'s shapes, and the pure ``decide(size, measurements)`` on hand-made surfaces
with known answers; ``examples(size)`` for the registry test.

The surfaces: clean error err = 0.2 - 0.1 (log|mu| - log mu*(x)) with
mu*(x) = mu0 (x / x_mid)^exponent, linear in log|mu|, so the interpolated
boundary is exactly mu*(x) and its slope in log x exactly the exponent. The
noisy error is 0.1 above the boundary (indicator >= 50), 0.3 below it
(<= 0.5), else 0.2, plus a per-seed offset of 0.001 per seed; with three
seeds the one-sided t statistic with 2 degrees of freedom is then closed
form: p = 1/2 - t / (2 sqrt(t^2 + 2)).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from claim_examples import RecordingSweep

from refimpl.claims import _boundary as B
from refimpl.claims import _phase_single_figures as PF
from refimpl.claims import phase_single as P
from refimpl.config import Config
from refimpl.lab.claim import Disclosure, Outcome, Protocol, Table

NAN = float("nan")
MUS = [0.5, 1.0, 2.0, 4.0, 8.0]
XS = {"d": [100, 200, 400], "n_up": [10, 20, 40]}
RULE = "eta = 200/(sigma_p^2 d)"  # the protocol's step size


def approx(x, rel=1e-6, abs=1e-12):
    return pytest.approx(x, rel=rel, abs=abs)


def p_df2(t):
    """One-sided p of a t statistic with 2 degrees of freedom."""
    return 0.5 - t / (2 * math.sqrt(t * t + 2))


def small(resamples=400, eta_sweep=(200.0,)):
    """A size of 3 x 5 cells per panel, base n = 20 and d = 200, three seeds."""
    return P._size(3, XS, MUS, eta_sweep, resamples=resamples, d=200, n_up=20)


def surface(p, xs, mus, base_n, base_d, exponent, seeds, mu0=2.0):
    """The measured arrays of one panel (see the module docstring)."""
    xs = np.asarray(xs, float)
    star = mu0 * (xs / xs[len(xs) // 2]) ** exponent
    err = 0.2 - 0.1 * (np.log(mus)[None, :] - np.log(star)[:, None])
    n = xs if p == "n_up" else np.full_like(xs, base_n)
    d = xs if p == "d" else np.full_like(xs, base_d)
    ind = n[:, None] * np.asarray(mus)[None, :] ** 4 / d[:, None]
    level = np.where(ind >= 50, 0.1, np.where(ind <= 0.5, 0.3, 0.2))
    off = 0.001 * np.arange(seeds)[None, None, :]
    return {
        "err": np.repeat(err[:, :, None], seeds, axis=2),
        "noisy": level[:, :, None] + off,
        "stopped": np.ones((len(xs), len(mus), seeds)),
        "steps": np.full((len(xs), len(mus), seeds), 10.0),
    }


def pair(exp_d=0.25, exp_n=-0.25):
    """Both panels of :func:`small`'s size."""
    return (
        surface("d", XS["d"], MUS, 20, 200, exp_d, 3),
        surface("n_up", XS["n_up"], MUS, 20, 200, exp_n, 3),
    )


def meas(pd, pn, rule=RULE):
    return {rule: {"d": pd, "n_up": pn}}


def examples(size):
    """PASS: both exponents the theory's (+-1/4) at every step size, every run stopped,
    noisy errors at p above the boundary and 0.3 below; FAIL: the same with an exponent
    1/2 in d (the boundaries stay inside the |mu| grid)."""
    b, mus, s = size.base, size.mus, size.seeds
    mu0 = math.sqrt(mus[0] * mus[-1])

    def rules(exp_d):
        pd = surface("d", size.xs["d"], mus, b["n_up"], b["d"], exp_d, s, mu0)
        pn = surface("n_up", size.xs["n_up"], mus, b["n_up"], b["d"], -0.25, s, mu0)
        return {rule: {"d": pd, "n_up": pn} for rule in size.configs}

    return {"PASS": rules(0.25), "FAIL": rules(0.5)}


# ----------------------------------------------------------------------
# the protocol, declared as data


def test_protocol_and_disclosure_are_declared():
    p = P.PROTOCOL
    assert isinstance(p, Protocol) and p.name == "phase_single" and p.source == "framework"
    assert p.hash_scheme1 == "6b60290c66ff"  # the committed full-size hash
    assert p.salt == "phase_single-v3" and p.common == ()  # every cell its own seeds
    assert len(p.disclosures) == 2 and all(isinstance(d, Disclosure) for d in p.disclosures)
    v3, d = p.disclosures
    assert "9 -> 17 points" in v3.change and "10 -> 32" in v3.change
    assert "-0.215 [-0.329, -0.197]" in v3.earlier and "-0.225 [-0.257, -0.203]" in v3.earlier
    assert "eta = 1 -> eta = 200/(sigma_p^2 d)" in d.change and "+0.299" in d.earlier
    assert "audit" not in json.dumps(d.to_dict())
    json.dumps(p.to_dict(), allow_nan=False)


def test_full_size_grid_and_one_cell():
    full = P.PROTOCOL.full
    assert full.seeds == 32 and full.resamples == 400
    assert full.xs == {"d": [200, 400, 800, 1600, 3200], "n_up": [12, 25, 50, 100, 200]}
    v2 = [0.6, 0.829, 1.147, 1.585, 2.191, 3.029, 4.187, 5.787, 8.0]  # v2's grid, kept
    assert len(full.mus) == 17 and full.mus[::2] == v2
    assert full.mus[1:-1:2] == approx(list(np.sqrt(np.multiply(v2[:-1], v2[1:]))), rel=2e-3)
    assert full.eta_sweep == [25.0, 50.0, 100.0, 200.0, 400.0, 800.0, None]
    assert sum(len(g) for v in full.configs.values() for g in v.values()) == 7 * 2 * 85
    cell = full.configs[RULE]["d"][3 * 17 + 4]  # d = 1600, |mu| = 1.147, n = 50
    expected = dict(d=1600, m=10, n_up=50, n_down=1, u_norm=1.147, v_up_norm=0.0)
    expected |= dict(v_down_norm=0.0, sigma_p_up=1.0, sigma_p_down=1.0, flip_up=0.1)
    expected |= dict(flip_down=0.0, eta=200 / 1600, sigma_0=0.01, steps_up=2000, steps_down=0)
    expected |= dict(epsilon=0.05, snapshots=2, n_test=10000, weight_decay_up=0.0)
    assert cell == Config.from_dict(expected | dict(layout="joint", estimator="reduced"))
    assert full.configs[RULE]["n_up"][4 * 17].n_up == 200  # the n panel at d = 800
    assert full.configs[RULE]["n_up"][4 * 17].d == 800


def test_quick_size_is_smaller_and_caps_at_400():
    q = P.PROTOCOL.quick
    assert q.seeds == 3 and q.mus == [0.7, 1.4, 2.8, 5.6] and q.eta_sweep == [100.0, 200.0, None]
    c = P._single(q.base)
    assert (c.m, c.d, c.n_up, c.n_test, c.steps_up, c.eta) == (4, 200, 20, 2000, 400, 1.0)


def test_eta_rule_and_sweep_caps():
    base = P.PROTOCOL.full.base
    c = P._single(base)
    assert c.eta == approx(200 / 800) and c.steps_up == 2000
    one = P._single(base, None, d=3200)
    assert one.eta == 1.0 and one.steps_up == 2000  # the original rule
    small_step = P._single(base, 50.0, d=400)
    assert small_step.eta == approx(50 / 400) and small_step.steps_up == 8000  # eta * T kept
    big = P._single(base, 800.0)
    assert big.eta == approx(1.0) and big.steps_up == 2000
    grids = P.PROTOCOL.full.configs
    assert all(g.eta == 1.0 for g in grids["eta = 1"]["d"])
    assert {g.steps_up for g in grids["eta = 25/(sigma_p^2 d)"]["n_up"]} == {16000}


# ----------------------------------------------------------------------
# measure


def test_measure_runs_every_rule_and_panel_cell_major():
    size = small(eta_sweep=(200.0, None))
    sweep = RecordingSweep(3, offsets={"noisy": 0.5})
    m = P.measure(size, sweep)
    assert list(m) == [RULE, "eta = 1"] and len(sweep.calls) == 4
    for configs, kwargs in sweep.calls:
        assert len(configs) == 15 and kwargs["measure"] == "single_batched"
        assert tuple(kwargs["metrics"]) == ("err", "noisy", "stopped", "steps")
        assert "replicates" not in kwargs and "common" not in kwargs  # the protocol's
    e = m[RULE]["n_up"]["err"]
    assert e.shape == (3, 5, 3) and e[1, 2, 0] == 100.0 * (1 * 5 + 2) and e[2, 4, 2] == 1402.0
    assert m["eta = 1"]["d"]["noisy"][0, 1, 1] == 101.5


# ----------------------------------------------------------------------
# decide


def test_boundary_interpolates_in_log_mu():
    mus = [1.0, math.e, math.e**2]
    assert B.boundary(mus, [0.4, 0.3, 0.1]) == approx(math.exp(1.5))
    assert B.boundary(mus, [0.3, 0.2, 0.1]) == approx(math.e)  # 0.2 is not below
    # from >= 0.2 to < 0.2: on a plateau at exactly 0.2 the boundary is where it leaves it
    assert B.boundary([1, 2, 4, 8], [0.3, 0.2, 0.2, 0.1]) == approx(4.0)
    assert B.boundary([1, 2, 4], [0.2, 0.1, 0.05]) == approx(1.0)
    assert B.boundary([1, 2, 4, 8], [0.3, 0.1, 0.3, 0.1]) == approx(math.sqrt(2))
    assert math.isnan(B.boundary(mus, [0.5, 0.4, 0.3]))


def test_pass_on_a_surface_with_the_theory_exponents():
    d = P.decide(small(), meas(*pair()))
    assert d["fits"]["d"]["bounds"] == approx(2.0 * (np.array([100, 200, 400]) / 200) ** 0.25)
    assert d["fits"]["n"]["bounds"] == approx(2.0 * (np.array([10, 20, 40]) / 20) ** -0.25)
    assert d["fits"]["d"]["slope"] == approx(0.25) and d["fits"]["n"]["slope"] == approx(-0.25)
    # identical seeds: every bootstrap resample gives the same slope
    assert d["fits"]["d"]["ci"] == approx((0.25, 0.25)) and d["fits"]["d"]["n_boot"] == 400
    # above: 0.12 - [0.100, 0.101, 0.102]; below: [0.300, 0.301, 0.302] - 0.2
    assert d["t_hi"]["p"] == approx(p_df2(19 * math.sqrt(3)))
    assert d["t_lo"]["p"] == approx(p_df2(101 * math.sqrt(3)))
    # cells with indicator n|mu|^4/d >= 50: d panel (n = 20) mu = 4 at d = 100 and mu = 8
    # at every d; n panel (d = 200) mu = 4 at n = 40 and mu = 8 at every n
    assert d["n_hi"] == 8 and d["n_lo"] == 12  # <= 0.5: mu <= 1 everywhere, 2 x 3 x 2
    assert d["frac_stopped"] == 1.0 and d["no_boundary"] == 0 and d["n_runs"] == 90
    assert d["verdict"] == "PASS" and d["missing"] == 0


def test_fail_on_a_wrong_exponent_or_a_wide_interval():
    d = P.decide(small(50), meas(*pair(exp_d=0.5)))
    assert d["fits"]["d"]["slope"] == approx(0.5)
    assert d["ok_d"] is False and d["ok_n"] is True and d["verdict"] == "FAIL"
    pd, pn = pair()
    # seeds disagree by +-0.05 in clean error: +-0.5 in log|mu|* per cell resample
    pd["err"] = pd["err"] + np.array([-0.05, 0.0, 0.05])[None, None, :]
    d = P.decide(small(200), meas(pd, pn))
    assert d["fits"]["d"]["slope"] == approx(0.25)  # the point estimate is right
    lo, hi = d["fits"]["d"]["ci"]
    assert hi - lo > 2 * P.MARGIN and d["ok_d"] is False
    assert d["verdict"] == "FAIL"
    assert P.decide(small(200), meas(pd, pn))["fits"]["d"]["ci"] == (lo, hi)  # seeded


def test_loss_threshold_95_percent():
    pd, pn = pair()
    pd["stopped"].ravel()[:4] = 0  # 86 of 90 runs: 95.6%
    assert P.decide(small(50), meas(pd, pn))["ok_loss"] is True
    pd["stopped"].ravel()[4] = 0  # 85 of 90: 94.4%
    d = P.decide(small(50), meas(pd, pn))
    assert d["frac_stopped"] == approx(85 / 90) and d["ok_loss"] is False
    assert d["verdict"] == "FAIL"


def test_row_without_boundary_or_a_missing_value_fails():
    pd, pn = pair()
    pd["err"][2] = 0.35  # the last d never gets below 0.2
    d = P.decide(small(50), meas(pd, pn))
    assert d["no_boundary"] == 1 and math.isnan(d["fits"]["d"]["bounds"][2])
    assert d["fits"]["d"]["slope"] == approx(0.25)  # fitted on the other two rows
    assert d["verdict_tests"] == "PASS"
    assert d["missing"] == 1 and d["verdict"] == "FAIL"
    pn["stopped"][0, 0, 0] = NAN  # and a missing value
    d = P.decide(small(50), meas(pd, pn))
    assert d["missing"] == 2 and d["ok_loss"] is False and d["verdict"] == "FAIL"


def test_eta_sweep_applies_the_rule_at_every_step_size_the_small_ones_decide():
    size = small(50, eta_sweep=(100.0, 200.0, 400.0, None))
    c100, c400 = "eta = 100/(sigma_p^2 d)", "eta = 400/(sigma_p^2 d)"
    m = meas(*pair()) | meas(*pair(exp_d=0.5), "eta = 1") | meas(*pair(), c100)
    m |= meas(*pair(exp_n=-0.4), c400)
    m["eta = 1"]["d"]["steps"][:] = 40.0  # mean steps (45 x 40 + 45 x 10) / 90 = 25
    d = P.decide(size, m)
    assert d["verdict"] == "PASS"  # c = 100 and 200 decide; 400 and eta = 1 FAIL, reported
    sweep = {e["label"]: e for e in d["eta_sweep"]}
    assert [e["in_verdict"] for e in d["eta_sweep"]] == [True, True, False, False]
    assert sweep[c400]["verdict_under_rule"] == "FAIL"
    del sweep[c400]
    assert list(sweep) == ["eta = 100/(sigma_p^2 d)", RULE, "eta = 1"]
    one, c100 = sweep["eta = 1"], sweep["eta = 100/(sigma_p^2 d)"]
    assert one["verdict_under_rule"] == "FAIL" and one["d"]["slope"] == approx(0.5)
    assert one["mean_steps"] == 25.0 and one["c"] is None
    assert (one["eta_at_panel_n"], one["cap_steps"]) == (1.0, 2000)
    assert c100["eta_at_panel_n"] == approx(0.5) and c100["cap_steps"] == 4000  # at d = 200
    assert c100["verdict_under_rule"] == "PASS"
    # a FAIL at any c <= 200 is the verdict's: here the smallest step
    m["eta = 100/(sigma_p^2 d)"] = meas(*pair(exp_n=-0.4))[RULE]
    d = P.decide(size, m)
    assert d["verdict"] == d["verdict_tests"] == "FAIL" and d["ok_n"] is True  # c = 200's details
    m["eta = 100/(sigma_p^2 d)"]["d"]["err"][2] = 0.35  # a row without a boundary there: missing
    assert P.decide(size, m)["missing"] == 1


def test_eta_reading_lists_where_the_whole_ci_is_within_the_margin():
    sweep = [
        {"label": "c = 50", "d": {"ci": (0.22, 0.27)}, "n": {"ci": (-0.27, -0.23)}},
        {"label": "eta = 1", "d": {"ci": (0.27, 0.33)}, "n": {"ci": (-0.32, -0.27)}},
    ]
    text = PF.eta_reading(sweep, None, 0.05)
    assert "(+1/4) at c = 50;" in text and "(-1/4) at c = 50." in text
    sweep[0]["n"]["ci"] = (-0.31, -0.23)  # -0.31 is outside -0.25 +- 0.05
    assert "(-1/4) at none." in PF.eta_reading(sweep, None, 0.05)


# ----------------------------------------------------------------------
# present


def test_present_tables_and_statistic_on_the_quick_examples():
    size = P.PROTOCOL.quick
    m = examples(size)["PASS"]
    d = P.decide(size, m)
    assert d["verdict"] == "PASS"
    out = P.present(size, m, d)
    assert (
        isinstance(out, Outcome) and "eta sweep (not in the verdict): at eta = 1" in out.statistic
    )
    assert "at c = 100: d +0.250 [+0.250, +0.250], n -0.250 [-0.250, -0.250] (PASS); c = 200" in (
        out.statistic
    )
    tables = {t.name: t for t in out.sections if isinstance(t, Table) and t.name}
    assert set(tables) == {"phase_single", "phase_eta_sweep"}
    cells = tables["phase_single"]
    assert len(cells.rows) == 2 * 3 * 4 and cells.rows[0][:3] == ["d", 100, 0.7]
    se = dict(zip(cells.header, cells.rows[0], strict=True))
    assert se["clean_error_se"] == 0.0  # identical seeds
    assert se["noisy_error_se"] == approx(0.001 / math.sqrt(3))  # offsets 0, 0.001, 0.002
    assert [r[0] for r in tables["phase_eta_sweep"].rows] == list(size.configs)
    assert out.data["base_config"] == P._single(size.base).to_dict()
    assert out.data["panels"]["d"]["xs"] == [100, 200, 400]
