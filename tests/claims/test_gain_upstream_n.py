"""gain_upstream_n: its declared design (N_1 swept, common random numbers
across N_1 so scratch is one run) and its registry examples; the decision
is the trend procedure (tests/claims/test_trend_claims.py)."""

from __future__ import annotations

from claim_examples import trend_examples

from refimpl.claims import _base as B
from refimpl.claims import gain_upstream_n as G
from refimpl.lab.seeds import derive_seed


def examples(size):
    return trend_examples(size, "greater", G.EXTRA_METRICS)


def test_only_n_up_varies_and_every_n_up_shares_a_seed():
    size = G.PROTOCOL.full
    grid = size.configs[G.PANEL]
    assert [c.n_up for c in grid] == size.x[G.PANEL]
    assert len({str(c.replace(n_up=10).to_dict()) for c in grid}) == 1  # nothing else
    common = ("n_up",) + B.STOP_FIELDS
    assert len({derive_seed(c, 0, common, G.PROTOCOL.salt) for c in grid}) == 1
    assert len({derive_seed(c, 0, B.STOP_FIELDS, G.PROTOCOL.salt) for c in grid}) == len(grid)
