"""gamma_candidates: our reconstruction Gamma_inh (docs/model.md §7) is the
compact scalar of the paper's headline (a hypothesis of ours, docs/model.md
§8.5): it passes every test of the Gamma confirmation (:mod:`._gamma`, the
same runs as ``transfer_phase``), Holm over the five candidates.
The other reconstructions (Gamma_inh / Gamma_scr, Gamma_1, alpha Gamma_1,
the exploration's monomial) are reported beside it.
"""

from . import _gamma as G
from . import _gamma_judge as J
from . import _gamma_report as R

PROTOCOL = G.protocol(
    name="gamma_candidates",
    claim=(
        "our reconstruction Gamma_inh = |u|^4 / (sigma_p,2^2 (|v_1|^2 + sigma_p,1^2 d / N_1)) "
        "is the paper's compact scalar: it predicts the sign of the transfer gain on new cells, "
        "phase-like under scaling"
    ),
    source="hypothesis",
    pass_rule="PASS when Gamma_inh passes: " + G.PASS_RULE,
)

NAMES = ("gamma_inh",)


def measure(size, sweep):
    return G.measure(size, sweep)


def decide(size, m):
    """:func:`._gamma_judge.judge` and the verdict of Gamma_inh alone."""
    dec = J.judge(size, m)
    return dec | J.verdict(dec, NAMES)


def present(size, m, dec):
    return R.present(size, m, dec, NAMES, "gamma_collapse")
