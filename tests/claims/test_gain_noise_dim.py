"""gain_noise_dim (protocol v3): its declared panels (sigma_p,1 at the base;
d with N_2 growing as d so Gamma_scr stays put, N_1 fixed; the control panel
with N_1 growing as d too, so the upstream Kou indicator stays put), its
decision on hand-made gains (the verdict on the sigma_p,1 and d panels, the
control reported beside them) and its registry examples; the trend procedure
itself is tested in tests/claims/test_trend_claims.py.

Hand-worked values: a seed block whose gains fall strictly over the points
has Spearman rho = -1 exactly, so the mean per-seed rho is -1.000; a rising
block has +1. Page's one-sided p for 30 perfectly ordered blocks of 5 points
is below 1e-10 (z = sqrt(b (k - 1)) = sqrt(120) = 10.95 under the normal
approximation, (1/5!)^30 exactly): far below 0.01 either way.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from claim_examples import rising, trend_examples, trend_measurements

from refimpl.claims import _base as B
from refimpl.claims import gain_noise_dim as G
from refimpl.lab.seeds import derive_seed
from refimpl.theory import indicators

SIZE = G.PROTOCOL.full


def examples(size):
    return trend_examples(size, "less", G.EXTRA_METRICS)


def falling(k, s):
    return rising(k, s)[::-1]


def measurements(sigma, d, control):
    """Full-size measurements whose panels' gains are given by the three
    functions (points, seeds) -> gains (:func:`claim_examples.rising` or
    :func:`falling`)."""
    of = {"sigma_p_up": sigma, "d": d, G.CONTROL: control}
    out = {}
    for panel, fn in of.items():
        one = trend_measurements(SIZE, fn, G.EXTRA_METRICS)
        out[panel] = one[panel]
    return out


def test_the_d_panel_keeps_gamma_scr_and_the_geometry():
    grid = SIZE.configs["d"]
    assert [c.d for c in grid] == SIZE.x["d"] == [300, 600, 1200, 2400, 4800]
    assert [c.n_down for c in grid] == [5, 10, 20, 40, 80]  # N_2 = 10 d / 600
    assert {c.n_up for c in grid} == {200}  # N_1 fixed: the upstream indicator falls as 1/d
    # N_1 |mu_1|^4 / (sigma_p,1^4 d) with |mu_1|^2 = 1 + 1: 200 * 4 / d
    kou = [indicators(c)["up"]["kou_indicator"] for c in grid]
    assert kou == pytest.approx([8 / 3, 4 / 3, 2 / 3, 1 / 3, 1 / 6], rel=1e-12)
    for c in grid:
        assert indicators(c)["gamma_scr"] == pytest.approx(10 * 4 / 600, rel=1e-12)  # 1/15
        assert (c.u_norm, c.v_up_norm, c.v_down_norm, c.sigma_p_up) == (1.0, 1.0, 1.0, 1.0)
    assert {(c.d, c.n_down) for c in SIZE.configs["sigma_p_up"]} == {(600, 10)}


def test_the_control_panel_fixes_the_upstream_indicator_and_gamma_scr():
    grid = SIZE.configs[G.CONTROL]
    assert [c.d for c in grid] == SIZE.x[G.CONTROL] == SIZE.x["d"]
    assert [c.n_up for c in grid] == [100, 200, 400, 800, 1600]  # N_1 = 200 d / 600
    assert [c.n_down for c in grid] == [5, 10, 20, 40, 80]
    for c in grid:
        assert indicators(c)["up"]["kou_indicator"] == pytest.approx(4 / 3, rel=1e-12)
        assert indicators(c)["gamma_scr"] == pytest.approx(1 / 15, rel=1e-12)
    # the d = 600 point is the d panel's config (and so its runs)
    assert grid[1] == SIZE.configs["d"][1]
    assert G.COMMON[G.CONTROL] == ()


def test_protocol_v3_declares_the_control_and_discloses_v2():
    p = G.PROTOCOL
    assert p.salt == "gain_noise_dim-v3" and p.fixed == "2026-12-06" and p.hash_scheme1 == ""
    assert "upstream indicator" in p.statistic and "upstream indicator" in p.claim
    assert "control panel is reported, not in the verdict" in p.pass_rule
    v3, engine = p.disclosures[-2:]
    assert "v2 -> v3" in v3.change and "12d0b2222718" in v3.earlier
    # the engine change after v3's item-by-item runs, with their numbers on three streams
    assert (
        "batched three-stage path" in engine.change and "PASS on main, r1 and r2" in engine.earlier
    )
    assert "-0.910 ± 0.018" in engine.earlier and "+0.047 ± 0.103" in engine.earlier
    assert p.rules["engine"] == B.ENGINE_RULE
    # the committed v2 statistics, main and r1, in numbers
    assert "-0.920 ± 0.019" in v3.earlier and "-0.860 ± 0.049" in v3.earlier
    assert "-0.837 ± 0.047" in v3.earlier and "-0.773 ± 0.066" in v3.earlier
    assert "stalled 12 / 2" in v3.earlier and "0.015" in v3.reason and "0.253" in v3.reason


def test_the_control_panel_is_reported_not_in_the_verdict():
    """sigma and d falling, control rising: PASS (rho -1 in both verdict
    panels), the control's one-sided decrease does not hold (rho +1, p near
    1) and its two-sided p is below 0.01."""
    d = G.decide(SIZE, measurements(falling, falling, rising))
    assert d["verdict"] == d["verdict_tests"] == "PASS" and d["missing"] == 0
    assert set(d["trend"]) == {"sigma_p_up", "d"}  # the control is not among them
    c = d["control"]
    assert c["in_verdict"] is False and c["decrease"] is False
    for r in B.RULES:
        assert d["trend"]["d"][r]["rho"] == pytest.approx(-1.0)
        assert d["trend"]["d"][r]["p"] < 1e-10
        assert c["trend"][r]["rho"] == pytest.approx(1.0) and c["trend"][r]["p"] > 0.99
        assert c["two_sided"][r]["p"] < 0.01 and c["holds"][r] is False


def test_a_falling_control_does_not_save_a_rising_d_panel():
    """d rising (rho +1), control falling (rho -1): FAIL, the control's
    decrease holds under both rules."""
    d = G.decide(SIZE, measurements(falling, rising, falling))
    assert d["verdict"] == "FAIL" and d["holds"]["d"] == {"steps": False, "loss": False}
    assert d["holds"]["sigma_p_up"] == {"steps": True, "loss": True}
    assert d["control"]["decrease"] is True
    assert d["control"]["trend"]["steps"]["rho"] == pytest.approx(-1.0)


def test_a_missing_control_value_is_counted_apart():
    """One missing control gain: the verdict (on the other panels) PASSes with
    missing = 0; the control counts 1 and its p is NaN under that rule."""
    m = measurements(falling, falling, falling)
    gain = np.array(m[G.CONTROL]["steps"]["gain"], float)
    gain[2, 5] = np.nan
    m[G.CONTROL]["steps"] = {**m[G.CONTROL]["steps"], "gain": gain}
    d = G.decide(SIZE, m)
    assert d["verdict"] == "PASS" and d["missing"] == 0
    assert d["control"]["missing"] == 1 and math.isnan(d["control"]["trend"]["steps"]["p"])
    assert d["control"]["decrease"] is False  # NaN p: the decrease is not shown


def test_common_random_numbers_in_the_sigma_panel_only():
    size, salt = G.PROTOCOL.quick, G.PROTOCOL.salt
    sigma = ("sigma_p_up",) + B.STOP_FIELDS
    assert len({derive_seed(c, 0, sigma, salt) for c in size.configs["sigma_p_up"]}) == 1
    for panel in ("d", G.CONTROL):
        grid = size.configs[panel]
        assert len({derive_seed(c, 0, B.STOP_FIELDS, salt) for c in grid}) == len(grid)
    assert G.COMMON == {"sigma_p_up": ("sigma_p_up",), "d": (), G.CONTROL: ()}
