"""Protocols as data: a claim's grid, seeds, statistic and pass rule in one
declared object, fixed before its first full run and printed in the report
with a short hash; a change made after a full run has been seen is a
:class:`Disclosure`, shown in the report with the earlier result beside the
new one (docs/model.md §8)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..files import jsonable
from .seeds import sha256

__all__ = ["Protocol", "Disclosure", "protocol_markdown"]


@dataclass(frozen=True)
class Protocol:
    """What a claim runs and how it decides, declared before it runs.

    Attributes
    ----------
    claim : str
        The claim's name.
    grid : dict
        The points: the base config and what varies (JSON-able).
    seeds : int or dict
        Replicates per point (or per part of the grid).
    statistic : str
        The test and the quantity it is applied to.
    pass_rule : str
        The rule that gives PASS, in words (thresholds included).
    fixed : str
        When the protocol was fixed (a date), before its first full run.
    extra : dict
        Anything else that decides the verdict (failure threshold, pairing).
    """

    claim: str
    grid: dict
    seeds: object
    statistic: str
    pass_rule: str
    fixed: str
    extra: dict = field(default_factory=dict)

    def to_dict(self):
        return jsonable(asdict(self))

    @property
    def hash(self):
        """The first 12 hex digits of the SHA-256 of the protocol's canonical JSON."""
        return sha256(self.to_dict())[:12]


@dataclass(frozen=True)
class Disclosure:
    """A protocol change made after a full run had been seen.

    Attributes
    ----------
    date : str
    change : str
        What changed (from what to what).
    reason : str
    earlier : str
        The result under the earlier protocol (its verdict and statistic),
        shown beside the new one.
    """

    date: str
    change: str
    reason: str
    earlier: str

    def to_dict(self):
        return asdict(self)


def protocol_markdown(protocol, disclosures=()):
    """The report's protocol block: the declared object with its hash, then
    every disclosed change with the earlier result."""
    p = protocol
    lines = [
        f"**Protocol** `{p.hash}` (fixed {p.fixed}): {p.statistic}. Pass rule: "
        f"{p.pass_rule}. Seeds: {p.seeds}."
    ]
    for d in disclosures:
        lines.append(
            f"**Disclosed change** ({d.date}): {d.change}. Why: {d.reason}. "
            f"Earlier result: {d.earlier}."
        )
    return "\n\n".join(lines)
