"""gain_noise_dim: its declared panels (sigma_p,1 at the base; d with N_2
growing as d so Gamma_scr stays put) and its registry examples; the decision
is the trend procedure (tests/claims/test_trend_claims.py)."""

from __future__ import annotations

import pytest
from claim_examples import trend_examples

from refimpl.claims import _base as B
from refimpl.claims import gain_noise_dim as G
from refimpl.lab.seeds import derive_seed
from refimpl.theory import indicators


def examples(size):
    return trend_examples(size, "less", G.EXTRA_METRICS)


def test_the_d_panel_keeps_gamma_scr_and_the_geometry():
    size = G.PROTOCOL.full
    grid = size.configs["d"]
    assert [c.d for c in grid] == size.x["d"] == [300, 600, 1200, 2400, 4800]
    assert [c.n_down for c in grid] == [5, 10, 20, 40, 80]  # N_2 = 10 d / 600
    for c in grid:
        assert indicators(c)["gamma_scr"] == pytest.approx(10 * 4 / 600, rel=1e-12)  # 1/15
        assert (c.u_norm, c.v_up_norm, c.v_down_norm, c.sigma_p_up) == (1.0, 1.0, 1.0, 1.0)
    assert {(c.d, c.n_down) for c in size.configs["sigma_p_up"]} == {(600, 10)}


def test_common_random_numbers_in_the_sigma_panel_only():
    size, salt = G.PROTOCOL.quick, G.PROTOCOL.salt
    sigma = ("sigma_p_up",) + B.STOP_FIELDS
    assert len({derive_seed(c, 0, sigma, salt) for c in size.configs["sigma_p_up"]}) == 1
    dgrid = size.configs["d"]
    assert len({derive_seed(c, 0, B.STOP_FIELDS, salt) for c in dgrid}) == len(dgrid)
    assert G.COMMON == {"sigma_p_up": ("sigma_p_up",), "d": ()}
