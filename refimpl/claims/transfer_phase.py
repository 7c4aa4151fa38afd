"""transfer_phase: some compact scalar of the factors predicts the sign of the
transfer gain, and the prediction is phase-like: its transition neither moves
nor widens as the problem grows (the paper's headline, docs/model.md §8.1 and
§8.5; the paper's formula is not public, so the claim is tested without
naming it).

Version 3, pre-registered (:mod:`._gamma`): the candidate scalars and the free
model's ridge were fixed from the exploration stage (version 2's 400 cells,
kept in ``validation/exploration/transfer_phase-v2``) before any confirmation
run; the confirmation runs new cells, the same cells at three scales and a
step-size check. PASS when one pre-registered candidate (not a null) passes
every test of :data:`._gamma.PASS_RULE` after Holm over the five candidates.
"""

from . import _gamma as G
from . import _gamma_judge as J
from . import _gamma_report as R

PROTOCOL = G.protocol(
    name="transfer_phase",
    claim=(
        "some compact scalar Gamma of the factors predicts the sign of the transfer gain on new "
        "cells, and the transition is phase-like: its location in Gamma stays put and its width "
        "does not grow as d, N_1 and N_2 grow together"
    ),
    source="paper",
    pass_rule="PASS when at least one candidate (not a null) passes: " + G.PASS_RULE,
)

NAMES = G.CANDIDATES
"""The candidates whose passing makes the claim pass (the nulls do not)."""


def measure(size, sweep):
    return G.measure(size, sweep)


def decide(size, m):
    """:func:`._gamma_judge.judge` and the verdict over the non-null candidates."""
    dec = J.judge(size, m)
    return dec | J.verdict(dec, NAMES)


def present(size, m, dec):
    return R.present(size, m, dec, NAMES, "transfer_phase_collapse")
