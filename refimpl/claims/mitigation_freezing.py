"""mitigation_freezing: freezing the inherited filters during fine-tuning
shrinks negative transfer (docs/model.md §8.3: our hypothesis, not a claim
of the paper; a FAIL refutes our hypothesis).

The same design, regions, seeds and runs as ``mitigation`` (salt
``mitigation``, common random numbers across the levers, so the baseline
runs are those of ``mitigation``): the baseline and the lever "freeze
inherited" (the inherited filters do not move during fine-tuning; alpha =
0.8 leaves fresh filters to train). Verdict: PASS when the baseline shows
negative transfer (one-sided paired t > 0, level 0.01) and freezing lowers
it (one-sided paired t of the reduction, pooled over the cells of both
regions and the seeds, level 0.01, positive mean); any missing value fails
it. The hypothesis is kept as it was stated before the first run, although
the committed run showed the opposite direction. Reported beside it: per
region, medians and Wilcoxon tests, and the equal-loss variant
(:mod:`refimpl.claims.mitigation`).
"""

from ..lab.protocol import Disclosure
from . import mitigation as M

NAME = "mitigation_freezing"
CLAIM = "freezing the inherited filters during fine-tuning shrinks negative transfer"
SOURCE = "hypothesis"
LEVERS = {"baseline": {}, "freeze inherited": {"freeze_inherited": True}}
CLAIMED = {"freezing": ["freeze inherited"]}

PROTOCOL = M._protocol(False, NAME, LEVERS, CLAIMED, "hypothesis (docs/model.md §8.3)")
"""The full-size protocol (the lever and rule of the committed v1 run, alone)."""
QUICK_PROTOCOL = M._protocol(True, NAME, LEVERS, CLAIMED, "hypothesis (docs/model.md §8.3)")

DISCLOSURES = [
    M.DISCLOSURES[0],
    Disclosure(
        date="2026-11-29 (after the committed full report)",
        change="freezing split out of `mitigation` into this claim (source: our hypothesis), "
        "with its own verdict; the same runs and seeds",
        reason="docs/model.md §8: a FAIL of our hypothesis must not read as a FAIL of the paper",
        earlier=M.EARLIER_V1 + "; freezing per region: hard -0.0040 (p = 0.83), benign -0.0673 "
        "(p = 1): freezing more than doubled the harm in the benign "
        "region",
    ),
]
"""Protocol changes made after the claim's script had been run (audit P2)."""


def decide(neg):
    """The verdict from the negative-transfer amounts (pure): ``neg`` of
    shape (2, cells, seeds), the baseline then the frozen runs (paired).
    :func:`refimpl.claims.mitigation.decide` with the one claimed lever."""
    return M.decide(list(LEVERS), neg, CLAIMED)


def run(out, quick=False, jobs=1):
    return M.run_levers(
        out,
        quick,
        jobs,
        NAME,
        CLAIM,
        SOURCE,
        LEVERS,
        CLAIMED,
        QUICK_PROTOCOL if quick else PROTOCOL,
        DISCLOSURES,
        hypothesis=True,
    )
