"""coefficients: its declared protocol, the pure ``decide(size, measurements)`` on hand-made
values with known answers, the step-by-step CSV text, and ``examples(size)`` for the registry.

Expected values are closed forms, not outputs of the code:

- the stage-1 ratio gamma / rho = theory^slope exp(+-noise) (seed 0: +, seed 1: -) over four
  theory values doubling from cell to cell: the least-squares slope is ``slope`` exactly, the
  residuals are +-noise, so with x = log theory twice (Sxx = 10 (ln 2)^2) and n = 8 points the
  slope's standard error is sqrt(8 noise^2 / 6 / Sxx) and the 95% t half-width that times
  t_{0.975, 6};
- n|mu|^2/(sigma_p^2 d) with |mu| = 1, sigma_p = 1, d = 800: n / 800.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.stats

from refimpl.claims import coefficients as C
from refimpl.lab.claim import Protocol, Size
from refimpl.transfer import STAGES

NAN = float("nan")
FULL = C.PROTOCOL.full
SIZE = Size({**FULL.configs, "ratio": [c for c in FULL.configs["ratio"] if c.u_norm == 1.0]}, 2)
"""The full size with the stage-1 grid cut to |mu| = 1: n = 20, 40, 80, 160 at d = 800."""
THEORY = np.array([20, 40, 80, 160]) / 800  # n|mu|^2/(sigma_p^2 d) with |mu| = sigma_p = 1


def approx(x, rel=1e-6, abs=1e-12):
    return pytest.approx(x, rel=rel, abs=abs)


def checks(reconstruction=(1e-12, 1e-10), broken=(0, 0), names=("", "")):
    """Per-stage check values of two seeds, every check holding by default."""
    one = {
        "reconstruction": np.array(reconstruction, float),
        "projection": np.array([1e-12, 1e-11]),
        "invariants_applicable": np.array([5.0, 5.0]),
        "invariants_broken": np.array(broken, float),
        "broken": list(names),
    }
    return {s: dict(one) for s in STAGES}


def ratio(theory, seeds, slope=1.0, noise=0.0):
    """gamma / rho = theory^slope * exp(+-noise), alternating over seeds; rho = 1."""
    e = noise * (-1.0) ** np.arange(seeds)
    return {
        "gamma": theory[:, None] ** slope * np.exp(e)[None, :],
        "rho": np.ones((theory.size, seeds)),
    }


def ci_half_width(noise):
    """95% t half-width of the slope for ``ratio`` on THEORY with two seeds."""
    se = math.sqrt(8 * noise**2 / 6 / (10 * math.log(2) ** 2))
    return scipy.stats.t.ppf(0.975, 6) * se


def measurements(slope=1.0, noise=0.0, chk=None, size=SIZE):
    """Measurements as ``measure`` returns them (the steps part left out: decide ignores it)."""
    theory = np.array([c.n_up * c.u_norm**2 / c.d for c in size.configs["ratio"]])
    return {"checks": chk or checks(), "ratio": ratio(theory, size.seeds, slope, noise)}


def decide(**kwargs):
    return C.decide(SIZE, measurements(**kwargs))


def test_protocol_is_declared_with_the_old_design():
    p = C.PROTOCOL
    assert isinstance(p, Protocol) and p.name == "coefficients" and p.source == "framework"
    assert p.hash_scheme1 == "83bc7f45597d"  # the committed full-size hash
    assert p.salt == "coefficients" and p.common == () and p.disclosures == ()
    assert p.full.seeds == 10 and p.quick.seeds == 2
    run = p.full.configs["steps_run"]
    assert (run.d, run.m, run.n_up, run.n_down, run.steps_up, run.snapshots) == (
        150,
        3,
        30,
        8,
        80,
        81,
    )
    assert (run.seed, run.flip_down, run.alpha) == (20250926, 0.1, 0.5)
    assert p.full.configs["checks"].snapshots == 21 and p.full.configs["checks"].d == 600
    grid = p.full.configs["ratio"]
    assert [(c.n_up, c.u_norm) for c in grid] == [
        (n, mu) for n in (20, 40, 80, 160) for mu in (0.5, 1.0, 2.0, 4.0)
    ]
    assert {(c.d, c.m, c.eta, c.steps_up, c.sigma_p_up) for c in grid} == {(800, 10, 0.1, 5, 1.0)}
    assert [(c.n_up, c.d) for c in p.quick.configs["ratio"]] == [(10, 200)] * 2 + [(20, 200)] * 2
    json.dumps(p.to_dict(), allow_nan=False)


def test_theory_ratio_is_n_mu2_over_sigma2_d():
    assert C.theory_ratio(SIZE.configs["ratio"]) == approx(THEORY)
    assert C.theory_ratio(FULL.configs["ratio"])[3] == approx(20 * 16 / 800)  # n 20, |mu| 4


def test_pass_and_fail_on_the_slope_interval():
    d = decide(noise=0.01)
    assert d["fit"]["slope"] == approx(1.0) and d["fit"]["n_points"] == 8
    assert d["ci"] == approx((1 - ci_half_width(0.01), 1 + ci_half_width(0.01)))
    assert d["ok_exact"] and d["ok_ratio"] and d["verdict"] == "PASS" and d["missing"] == 0
    assert d["worst"]["up"]["invariants_applicable"] == 10
    wide = decide(noise=0.1)
    assert wide["fit"]["slope"] == approx(1.0)  # right slope, CI +-0.13
    assert wide["ci"][1] == approx(1 + ci_half_width(0.1)) and wide["verdict"] == "FAIL"
    steep = decide(slope=1.2)
    assert steep["fit"]["slope"] == approx(1.2) and steep["verdict"] == "FAIL"


def test_tolerance_invariants_and_missing_checks():
    at_tol = decide(chk=checks(reconstruction=(1e-8, 0.0)))
    assert at_tol["ok_exact"] is True  # <= TOL passes
    above = decide(chk=checks(reconstruction=(2e-8, 0.0)))
    assert above["ok_exact"] is False and above["verdict"] == "FAIL"
    broke = decide(chk=checks(broken=(0, 1), names=("", "rho_bar_sign,gamma_monotone")))
    assert broke["worst"]["up"]["invariants_broken"] == 1 and broke["verdict"] == "FAIL"
    assert broke["worst"]["down"]["broken"] == ["rho_bar_sign,gamma_monotone"]
    c = checks()  # a missing check value
    c["down"] = dict(c["down"], projection=np.array([1e-12, NAN]))
    d = decide(chk=c)
    assert d["missing_checks"] == 1 and d["ok_exact"] is False and d["verdict"] == "FAIL"


def test_non_positive_ratio_is_missing_and_left_out_of_the_fit():
    m = measurements(noise=0.01)
    m["ratio"]["rho"][2, 1] = 0.0  # ratio inf
    m["ratio"]["gamma"][3, 0] = -1.0  # ratio negative: log undefined
    d = C.decide(SIZE, m)
    assert d["missing_ratio"] == 2 and d["fit"]["n_points"] == 6
    assert d["verdict_tests"] == "PASS"
    assert d["missing"] == 2 and d["verdict"] == "FAIL"


def test_step_csv_rows_by_step_class_filter_and_coefficient():
    gamma = np.arange(4.0).reshape(2, 2, 1, 1)  # (steps, j, r, signals)
    rho_bar = np.arange(8.0).reshape(2, 2, 1, 2) / 4  # (steps, j, r, samples)
    st = {"steps": np.array([0, 5]), "gamma": gamma, "rho_bar": rho_bar, "rho_under": -rho_bar}
    st["rho_under"][1, 1, 0, 1] = NAN  # a missing value: an empty cell
    lines = C._step_csv(st).splitlines()
    assert lines[0] == "step,j,r,i,coefficient,value" and len(lines) == 1 + 2 * 2 * (1 + 2 + 2)
    assert lines[1:6] == [
        "0,1,0,0,gamma,0.0",
        "0,1,0,0,rho_bar,0.0",
        "0,1,0,1,rho_bar,0.25",
        "0,1,0,0,rho_under,-0.0",
        "0,1,0,1,rho_under,-0.25",
    ]
    assert lines[6] == "0,-1,0,0,gamma,1.0" and lines[-1] == "5,-1,0,1,rho_under,"


def steps(size, seed=0):
    """The step-by-step part of the measurements, shaped as ``measure`` returns it."""
    c, rng = size.configs["steps_run"], np.random.default_rng(seed)
    k, out = 3, {}
    for s in STAGES:
        n = c.n_up if s == "up" else c.n_down
        out[s] = {
            "steps": np.arange(k),
            "gamma": np.cumsum(rng.random((k, 2, c.m, 2)), axis=0),
            "rho_bar": np.cumsum(rng.random((k, 2, c.m, n)), axis=0),
            "rho_under": -np.cumsum(rng.random((k, 2, c.m, n)), axis=0),
            "y": np.resize([1.0, -1.0], n),  # labels +1, -1, +1, ...
            "test_error": {"clean_error": 0.01, "noisy_error": 0.1},
        }
    return out


def examples(size):
    """PASS: every check holds and gamma / rho = theory * exp(+-0.001) (slope 1, a narrow
    interval); FAIL: the same checks with gamma / rho = theory^1.5."""
    seeds = size.seeds
    chk = {
        s: {
            "reconstruction": np.full(seeds, 1e-15),
            "projection": np.full(seeds, 2e-15),
            "invariants_applicable": np.full(seeds, 5.0),
            "invariants_broken": np.zeros(seeds),
            "broken": [""] * seeds,
        }
        for s in STAGES
    }
    theory = np.array(
        [c.n_up * c.u_norm**2 / (c.sigma_p_up**2 * c.d) for c in size.configs["ratio"]]
    )
    good = {"steps": steps(size), "checks": chk, "ratio": ratio(theory, seeds, 1.0, 0.001)}
    return {"PASS": good, "FAIL": {**good, "ratio": ratio(theory, seeds, 1.5, 0.001)}}


@pytest.mark.parametrize("quick", [True, False], ids=["quick", "full"])
def test_examples_decide_and_present(quick):
    size = C.PROTOCOL.size(quick)
    for verdict, m in examples(size).items():
        d = C.decide(size, m)
        assert d["verdict"] == verdict and d["missing"] == 0
        out = C.present(size, m, d)
        tables = [getattr(t, "name", "") for t in out.sections]
        assert "coefficients_up.csv" in out.attachments and "stage1_ratio" in tables
        assert json.loads(out.attachments["coefficients_config.json"])["config"]["seed"] == 20250926
