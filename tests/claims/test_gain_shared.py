"""gain_shared: its declared design (both signal strengths fixed, the shared
fraction swept) and its registry examples; the decision is the trend
procedure (tests/claims/test_trend_claims.py)."""

from __future__ import annotations

import pytest
from claim_examples import trend_examples

from refimpl.claims import _base as B
from refimpl.claims import gain_shared as G
from refimpl.lab.claim import Disclosure


def examples(size):
    return trend_examples(size, "greater")


@pytest.mark.parametrize("quick", [False, True])
def test_both_signal_strengths_are_fixed_and_f_is_the_shared_fraction(quick):
    size = G.PROTOCOL.size(quick)
    grid, fractions = size.configs[G.PANEL], size.x[G.PANEL]
    assert len(grid) == len(fractions) >= 3
    for f, c in zip(fractions, grid, strict=True):
        assert c.u_norm**2 + c.v_up_norm**2 == pytest.approx(5.0, rel=1e-12)
        assert c.u_norm**2 + c.v_down_norm**2 == pytest.approx(5.0, rel=1e-12)
        assert c.u_norm**2 / 5.0 == pytest.approx(f, rel=1e-12, abs=1e-12)


def test_full_size_design_and_disclosure():
    p = G.PROTOCOL
    assert p.full.x[G.PANEL] == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0] and p.full.seeds == 30
    assert p.salt == "gain_shared-v2" and set(B.STOP_FIELDS) <= set(p.common)
    d, engine = p.disclosures
    assert "batched three-stage path" in engine.change and p.rules["engine"] == B.ENGINE_RULE
    assert "rho 0.987, 0.998, 1.000" in engine.earlier
    assert isinstance(d, Disclosure) and "->" in d.change and d.earlier.startswith("PASS")
