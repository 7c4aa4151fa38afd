"""mitigation_freezing: freezing the inherited filters during fine-tuning shrinks negative
transfer (docs/model.md §5.2 and §8.3: our hypothesis, not a claim of the paper; a FAIL
refutes our hypothesis). The regions and cells of ``mitigation`` v2 on its seed stream
(salt ``mitigation``, common random numbers across the levers): its baseline runs were
those of ``mitigation`` v2 (``mitigation`` v3 runs on its own salt, with more seeds). The
design is :data:`PROTOCOL`; the procedure, shared with ``mitigation``, is
``refimpl.claims._levers`` and ``refimpl.claims._levers_report``."""

from ..lab.claim import Protocol
from . import _base as B
from . import _levers as L
from . import _levers_report as LR

LEVERS = {"baseline": {}, "freeze inherited": {"freeze_inherited": True}}
"""The baseline and the lever: the inherited filters do not move during fine-tuning."""
CLAIMED = {"freezing": ["freeze inherited"]}

PROTOCOL = Protocol(
    name="mitigation_freezing",
    claim="freezing the inherited filters during fine-tuning shrinks negative transfer",
    source="hypothesis",
    full=L.lever_size(False, LEVERS, CLAIMED, seeds=24),
    quick=L.lever_size(True, LEVERS, CLAIMED, seeds=3),
    statistic=L.LEVER_STATISTIC,
    pass_rule=L.lever_pass_rule(CLAIMED),
    fixed="2026-11-28 (regions and levers, commit 0b2d229, before the first full report); "
    "2026-11-29: split by source, equal-loss reporting added",
    salt="mitigation",  # the seed stream of mitigation v2: the same baseline runs
    common=L.LEVER_COMMON,
    pairing=L.LEVER_PAIRING,
    rules={
        "negative transfer": "err_transfer - err_scratch of a run (the same test draws)",
        "missing": "a diverged run of either lever in any cell fails the verdict",
    },
    notes={
        "source": "our hypothesis (docs/model.md §8.3): a FAIL refutes our hypothesis, not the "
        "paper; the hypothesis is kept as it was stated before the first run, although the "
        "committed run showed the opposite direction",
        "regions": "those of mitigation, at alpha = 0.8, which leaves fresh filters to train",
        "reported, not in the verdict": L.LEVER_REPORTED,
    },
    disclosures=B.history("mitigation_freezing"),
    hash_scheme1="427b95125ded",
)


def measure(size, sweep):
    """The baseline and the frozen runs in both regions at fixed steps and at
    equal loss (:func:`refimpl.claims._levers.lever_measure`)."""
    return L.lever_measure(size, sweep)


def decide(size, m):
    """The verdict (pure, :func:`refimpl.claims._levers.lever_decision`): the
    baseline shows negative transfer and freezing lowers it, one-sided paired
    t at level 0.01 pooled over cells and seeds, fixed steps; the same rule at
    equal loss is reported as ``equal_loss``."""
    return L.lever_decision(size, m)


def present(size, m, dec):
    """The statistic (a FAIL says whether our hypothesis was refuted or not
    tested), tables, CSV and figures (:func:`refimpl.claims._levers_report.present`)."""
    return LR.present(PROTOCOL.name, size, m, dec, hypothesis=True)
