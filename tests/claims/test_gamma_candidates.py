"""gamma_candidates: the hypothesis that our Gamma_inh is the paper's scalar,
judged on the runs of transfer_phase v3 (refimpl/claims/_gamma.py). It
passes only when Gamma_inh itself passes; another candidate passing is not
enough. As for transfer_phase, the quick size is too small for a PASS.
"""

from __future__ import annotations

import pytest
from claim_examples import gamma_examples, gamma_measurements, logistic_in

from refimpl.claims import gamma_candidates as C
from refimpl.claims import transfer_phase as T


def examples(size):
    return gamma_examples(size)


def test_protocol_is_the_confirmations_under_its_own_name():
    p, t = C.PROTOCOL, T.PROTOCOL
    assert p.name == "gamma_candidates" and p.source == "hypothesis"
    assert p.salt == t.salt and p.full.configs == t.full.configs  # the same runs, one cache
    assert "Gamma_inh passes" in p.pass_rule and C.NAMES == ("gamma_inh",)


@pytest.mark.slow
def test_another_candidate_passing_is_not_enough():
    """The truth is a logistic in log10 alpha Gamma_1 (width 1 decade):
    transfer_phase passes on it, Gamma_inh (which carries no alpha) does not."""
    size = C.PROTOCOL.full
    m = gamma_measurements(size, logistic_in("alpha_gamma_1", 1.0, centre=-1.0), seed=7)
    dec = C.decide(size, m)
    assert dec["candidates"]["alpha_gamma_1"]["passes"]
    assert not dec["candidates"]["gamma_inh"]["passes"] and dec["verdict"] == "FAIL"
    assert T.decide(size, m)["verdict"] == "PASS"
