"""A claim is a declaration; the lab runs, writes and renders it.

A claim module (:mod:`refimpl.claims`) holds only what is specific to it:

- ``PROTOCOL``, a :class:`Protocol` declared as data in both sizes
  (:class:`Size`: the configs that run, the seeds, named values), fixed
  before its first full run, with its :class:`Disclosure` s;
- ``measure(size, sweep) -> measurements``: the sweeps (``sweep`` is a
  :class:`ClaimSweep`: the cache, the salt and the common random numbers
  come from the protocol);
- ``decide(size, measurements) -> dict``, pure: at least ``verdict``
  (``PASS`` or ``FAIL``), and ``missing`` (how many values the verdict
  relies on are missing; any makes the verdict FAIL, docs/model.md §8.4);
- ``present(size, measurements, decision) -> Outcome``: the statistic line
  and the report's sections, made of text, :class:`Table` s and
  :class:`Figure` s.

:func:`run_claim` does the rest for every claim: the output folder, one JSON
schema (:data:`SCHEMA_KEYS`), the CSVs of the tables, the figures (or the
install hint) and the markdown section (verdict line, protocol block, quick
banner, figure links, missing-value rule). A claim module does no file I/O
and has no ``quick`` branch: the size it runs is the :class:`Size` it gets.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from .. import budget as B
from ..errors import RefimplError
from ..files import jsonable, write_csv, write_json, write_text
from . import figures as F
from .seeds import sha256
from .sweep import run_sweep

__all__ = [
    "Size",
    "Protocol",
    "Disclosure",
    "Table",
    "Figure",
    "Outcome",
    "Skip",
    "ClaimSweep",
    "SCHEMA_KEYS",
    "SOURCES",
    "HASH_SCHEME",
    "protocol_markdown",
    "render",
    "run_claim",
    "claim_result",
    "size_runs",
    "size_estimate",
]

SOURCES = ("paper", "framework", "hypothesis", "implementation")
"""Where a claim comes from (docs/model.md §8): the paper's own claims, the
framework's theorems (Kou et al. 2023), our own hypotheses, or a check of
this implementation against others."""

HASH_SCHEME = 2
"""Protocol hashes since 2026-12-02 cover the configs that actually run (the
size's :meth:`Size.to_dict`); scheme 1 hashed a hand-written grid, often a
prose description of the base regime. A protocol may carry its scheme-1 hash
(``hash_scheme1``), printed beside the new one."""

SCHEMA_KEYS = (
    "name",
    "claim",
    "source",
    "verdict",
    "verdict_tests",
    "statistic",
    "n_missing",
    "quick",
    "protocol",
    "protocol_hash",
    "protocol_hash_scheme1",
    "disclosures",
    "decision",
    "tables",
    "figures",
    "data",
)
"""The keys of every claim's ``<name>/<name>.json``: the claim and its
verdict (``verdict_tests``: the verdict without the missing-value rule), the
protocol of the size that ran with its hash, the decision (what ``decide``
returned), the tables (name -> rows as dicts), the figure files, and
``data``: the claim's own measurements (per-seed values and the like)."""


class Size:
    """One size of a protocol (``full`` or ``quick``).

    Parameters
    ----------
    configs : dict
        The configs that run: name -> a :class:`~refimpl.config.Config`, a
        list of them, or a dict of those (a grid per panel or regime).
    seeds : int or dict
        Replicates per point (or per panel or regime).
    **values : dict
        Named values the claim reads (caps, x values, thresholds); also
        attributes: ``size.cap``.
    """

    def __init__(self, configs, seeds, **values):
        self.configs = dict(configs)
        self.seeds = seeds
        self.values = values

    def __getattr__(self, name):
        values = self.__dict__.get("values", {})
        if name in values:
            return values[name]
        raise AttributeError(f"this size declares no value {name!r}")

    def to_dict(self):
        """The size as JSON: every config with all its fields."""
        return jsonable({"configs": _as_dicts(self.configs), "seeds": self.seeds, **self.values})


def _leaves(x):
    """The configs of a (nested) dict or list of them."""
    if isinstance(x, dict):
        for v in x.values():
            yield from _leaves(v)
    elif isinstance(x, (list, tuple)):
        for v in x:
            yield from _leaves(v)
    else:
        yield x


def size_runs(size):
    """{config: replicates} of a :class:`Size`: every distinct config of its
    ``configs`` with its seeds (a panel's where ``seeds`` is a dict by panel;
    the most seeds where a config is in several panels or the panel has
    none): what its sweeps run at most, a config shared by sweeps of the same
    seeds running once (the sweep cache).

    Parameters
    ----------
    size : Size
        The size.

    Returns
    -------
    dict
        Config to the number of replicates it runs.
    """
    seeds = size.seeds
    most = max(seeds.values()) if isinstance(seeds, dict) and seeds else seeds
    runs = {}
    for panel, configs in size.configs.items():
        r = seeds.get(panel, most) if isinstance(seeds, dict) else seeds
        for c in _leaves(configs):
            runs[c] = max(runs.get(c, 0), int(r))
    return runs


def _image_geometry(size):
    """(number of images, k -> (P, d) of k x k patches) of the images a
    real-image size reads (its ``source`` value), or None when they cannot be
    loaded here (the claim skips or says why itself)."""
    from .images import load_source

    try:
        images = load_source(**size.values.get("source", {}))
    except (RefimplError, OSError):
        return None
    H, W, C = images.shape
    return images.n, lambda k: ((H // k) * (W // k), k * k * C)


def _run_estimate(config, geometry):
    """(bytes, multiply-adds) of one run of a config of a size."""
    if callable(getattr(config, "seed_fields", None)) and hasattr(config, "n_patches"):
        return B.run_estimate(config)[:2]
    if geometry is None or not hasattr(config, "n_test_per_class"):
        return 0.0, 0.0  # not a run this lab can size
    n_images, patches = geometry
    P, d = patches(config.k)
    n_test = config.n_test_per_class * len(config.split.classes("down")[0])
    return B.image_estimate(config, n_images, P, d, n_test)


def size_estimate(size, jobs=1):
    """(bytes, multiply-adds, runs) of running a :class:`Size`, from its
    configs and seeds alone (:func:`size_runs`) without claim-specific code:
    the work of every run at its step caps (:func:`refimpl.budget.run_estimate`;
    real-image configs by :func:`refimpl.budget.image_estimate`), the memory
    of ``jobs`` of the largest runs at once plus every run's results. An
    upper bound where runs stop at a loss target; measures that run a config
    twice (both stopping rules) do up to twice the work of its caps.

    Parameters
    ----------
    size : Size
        The size.
    jobs : int, optional
        Runs at once.

    Returns
    -------
    memory : float
        Bytes.
    work : float
        Multiply-adds.
    runs : int
        The number of runs.
    """
    runs = size_runs(size)
    geometry = None
    if any(hasattr(c, "n_test_per_class") for c in runs):
        geometry = _image_geometry(size)
    memory = work = 0.0
    for config, r in runs.items():
        mem, w = _run_estimate(config, geometry)
        memory, work = max(memory, mem), work + B.as_float(r) * w
    count = sum(runs.values())
    parallel = B.as_float(min(jobs, max(count, 1)))
    return memory * parallel + B.as_float(count) * B.RESULT_BYTES, work, count


def _as_dicts(x):
    if isinstance(x, dict):
        return {k: _as_dicts(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_as_dicts(v) for v in x]
    return x.to_dict() if hasattr(x, "to_dict") else x


@dataclass(frozen=True)
class Disclosure:
    """A protocol change made after a full run had been seen: what changed
    (from what to what), why, and the result under the earlier protocol
    (its verdict and statistic), shown beside the new one.

    Attributes
    ----------
    date : str
        When the change was made.
    change : str
        What changed, from what to what.
    reason : str
        Why.
    earlier : str
        The result under the earlier protocol (verdict and statistic).
    """

    date: str
    change: str
    reason: str
    earlier: str

    def to_dict(self):
        return asdict(self)


@dataclass(frozen=True)
class Protocol:
    """What a claim runs and how it decides, declared before it runs.

    Attributes
    ----------
    name, claim, source : str
        The claim's module name, one line of what is predicted, and where the
        claim comes from (:data:`SOURCES`).
    full, quick : Size
        The protocol's size, and the CI-size version of it.
    statistic, pass_rule : str
        The test and the quantity it is applied to; the rule that gives PASS.
    fixed : str
        When the protocol was fixed (a date), before its first full run.
    salt : str
        Separates the claim's seed streams from other claims' with equal configs.
    common : tuple of str
        Config fields with common random numbers (a paired design), the
        default of every sweep of the claim.
    pairing : str
        The design in words (what is paired with what).
    rules : dict
        Named rules that decide the verdict (failure threshold, stopping rules).
    notes : dict
        Anything else the report should carry (what is reported but not in
        the verdict, the origin of the design).
    disclosures : tuple of Disclosure
        Protocol changes made after a full run had been seen, oldest first.
    hash_scheme1 : str
        The full-size protocol's hash under scheme 1 (:data:`HASH_SCHEME`).
    """

    name: str
    claim: str
    source: str
    full: Size
    quick: Size
    statistic: str
    pass_rule: str
    fixed: str
    salt: str = ""
    common: tuple = ()
    pairing: str = ""
    rules: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)
    disclosures: tuple = ()
    hash_scheme1: str = ""

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {self.source!r}")

    def size(self, quick):
        return self.quick if quick else self.full

    def to_dict(self, quick=False):
        """The protocol as run at one size (the disclosures apart)."""
        keep = ("name", "claim", "source", "statistic", "pass_rule", "fixed", "salt")
        d = {k: getattr(self, k) for k in keep}
        d.update(
            common=list(self.common),
            pairing=self.pairing,
            rules=self.rules,
            notes=self.notes,
            size="quick" if quick else "full",
            **self.size(quick).to_dict(),
        )
        return jsonable(d)

    def hash(self, quick=False):
        """The first 12 hex digits of the SHA-256 of :meth:`to_dict`."""
        return sha256(self.to_dict(quick))[:12]


@dataclass
class Table:
    """A table: ``name`` set, it is written as ``<name>.csv`` and stored in
    the JSON's ``tables``; ``show``, it is drawn in the report (below
    ``title``), floats with 4 significant digits.

    Attributes
    ----------
    header : list of str
        The column names.
    rows : list of list
        The rows, each as long as ``header``.
    name : str
        The CSV's name without ``.csv`` and the key in the JSON's ``tables``;
        "" for neither.
    title : str
        A line above the drawn table.
    show : bool
        Draw the table in the report.
    """

    header: list
    rows: list
    name: str = ""
    title: str = ""
    show: bool = True


@dataclass
class Figure:
    """A figure ``<name>.png``: ``draw(path)`` draws and saves it (called
    only when matplotlib is there).

    Attributes
    ----------
    name : str
        The file's name without ``.png``.
    draw : callable
        ``draw(path)`` draws the figure and saves it to ``path``.
    """

    name: str
    draw: Callable


@dataclass
class Outcome:
    """What ``present`` returns: the statistic line, the sections of the
    report (str, :class:`Table` or :class:`Figure`, in order), the claim's own
    data for the JSON, and text files to attach (file name -> text).

    Attributes
    ----------
    statistic : str
        The statistic line of the verdict.
    sections : list of str, Table or Figure
        The report's sections, in order.
    data : dict
        The claim's own data for the JSON.
    attachments : dict of str to str
        File name to text, written into the claim's folder.
    """

    statistic: str
    sections: list
    data: dict = field(default_factory=dict)
    attachments: dict = field(default_factory=dict)


class Skip(Exception):
    """Raised by ``measure`` when the claim cannot run here (an optional
    extra is missing); the message says what to install.

    Parameters
    ----------
    message : str
        What to install for the claim to run.
    """


class ClaimSweep:
    """The ``sweep`` a claim's ``measure`` gets: :func:`refimpl.lab.sweep.run_sweep`
    with the cache of the output folder, the protocol's salt and common
    fields, the run's ``jobs`` and the size's seeds as defaults.

    Parameters
    ----------
    protocol : Protocol
        The claim's protocol (its name, salt and common fields).
    size : Size
        The size that runs (its seeds).
    out : str or os.PathLike
        The output folder; the cache is ``out/.sweep-cache``.
    jobs : int
        Worker processes.
    """

    def __init__(self, protocol, size, out, jobs):
        self.protocol, self.size, self.out, self.jobs = protocol, size, Path(out), jobs

    @property
    def cache(self):
        return self.out / ".sweep-cache"

    def __call__(self, configs, label="", replicates=None, common=None, **kwargs):
        name = self.protocol.name
        return run_sweep(
            configs,
            replicates=self.size.seeds if replicates is None else replicates,
            jobs=self.jobs,
            cache=self.cache,
            salt=self.protocol.salt,
            common=self.protocol.common if common is None else tuple(common),
            label=f"{name} {label}" if label else name,
            **kwargs,
        )


def protocol_markdown(protocol, quick=False):
    """The report's protocol block: the declared protocol of the size that
    ran, its hash (and its scheme-1 hash), then every disclosed change with
    the earlier result.

    Parameters
    ----------
    protocol : Protocol
        The claim's protocol.
    quick : bool, optional
        The CI-size run (noted as such).

    Returns
    -------
    str
        Markdown paragraphs.
    """
    p, size = protocol, protocol.size(quick)
    old = f"; scheme 1: `{p.hash_scheme1}`" if p.hash_scheme1 and not quick else ""
    lines = [
        f"**Protocol** `{p.hash(quick)}` (hash scheme {HASH_SCHEME}{old}; fixed {p.fixed}): "
        f"{p.statistic}. Pass rule: {p.pass_rule}. Seeds: {size.seeds}."
    ]
    if quick:
        lines.append("_Quick (CI-size) run: not the protocol's sizes._")
    for d in p.disclosures:
        lines.append(
            f"**Disclosed change** ({d.date}): {d.change}. Why: {d.reason}. "
            f"Earlier result: {d.earlier}."
        )
    return "\n\n".join(lines)


def render(sections, folder):
    """Markdown of an outcome's sections; figures are links relative to the
    report (consecutive figures form one paragraph), or the install hint.

    Parameters
    ----------
    sections : list of str, Table or Figure
        An outcome's sections.
    folder : pathlib.Path
        The claim's output folder.

    Returns
    -------
    str
        Markdown.
    """
    parts, figures = [], []

    def flush():
        if figures:
            parts.append(_figure_note(figures, folder))
            figures.clear()

    for s in sections:
        if isinstance(s, Figure):
            figures.append(s)
            continue
        flush()
        if isinstance(s, Table):
            if s.show:
                table = markdown_table(s.header, s.rows)
                parts.append(f"{s.title}\n\n{table}" if s.title else table)
        elif s:
            parts.append(str(s))
    flush()
    return "\n\n".join(parts)


def _figure_note(figures, folder):
    if not F.available():
        return f"_No figure: {F.INSTALL_HINT}._"
    paths = [Path(folder) / f"{f.name}.png" for f in figures]
    return "\n\n".join(f"![{p.stem}]({p.parent.name}/{p.name})" for p in paths if p.exists())


def markdown_table(header, rows):
    """A markdown table from a header and rows of cells (floats: 4 significant digits)."""

    def cell(v):
        if isinstance(v, float):
            return f"{v:.4g}" if v == v and abs(v) != float("inf") else "n/a"
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |"]
    lines.append("| " + " | ".join("---" for _ in header) + " |")
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def missing_note(missing):
    """The text added to a statistic when values the verdict relies on are missing."""
    return (
        f"{missing} value(s) the verdict relies on are missing (non-finite or undefined: "
        f"a diverged run?), so the claim was not measured in full: FAIL"
    )


VERDICTS = ("PASS", "FAIL", "SKIPPED")


def verdict_line(verdict, claim, statistic):
    """The report's verdict line: ``**Verdict: PASS** — claim — statistic``."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}")
    return f"**Verdict: {verdict}** — {claim} — {statistic}"


def section(name, claim, verdict, statistic, body, source):
    """A claim's REPORT.md section: title, verdict line, source, then the body."""
    head = f"## {name}\n\n{verdict_line(verdict, claim, statistic)}\n\n"
    return f"{head}Source: {source} (docs/model.md §8).\n\n{body.strip()}\n"


def claim_result(protocol, quick, decision, outcome, folder):
    """The claim's result: the JSON of :data:`SCHEMA_KEYS` and its report section.

    Parameters
    ----------
    protocol : Protocol
        The claim's protocol.
    quick : bool
        The CI-size run.
    decision : dict
        What ``decide`` returned (``verdict``, and ``missing``: a claim with
        missing values fails).
    outcome : Outcome
        What ``present`` returned.
    folder : pathlib.Path
        The claim's output folder (figure links are relative to the report).

    Returns
    -------
    doc : dict
        The JSON (JSON-ready).
    markdown : str
        The REPORT.md section.
    """
    p = protocol
    missing = int(decision.get("missing", 0) or 0)
    tests = decision["verdict"]
    verdict = "FAIL" if missing else tests
    statistic = outcome.statistic + (f"; {missing_note(missing)}" if missing else "")
    tables = {
        t.name: [dict(zip(t.header, r, strict=True)) for r in t.rows]
        for t in outcome.sections
        if isinstance(t, Table) and t.name
    }
    figures = [f"{f.name}.png" for f in outcome.sections if isinstance(f, Figure)]
    body = protocol_markdown(p, quick) + "\n\n" + render(outcome.sections, folder)
    doc = {
        "name": p.name,
        "claim": p.claim,
        "source": p.source,
        "verdict": verdict,
        "verdict_tests": tests,
        "statistic": statistic,
        "n_missing": missing,
        "quick": bool(quick),
        "protocol": p.to_dict(quick),
        "protocol_hash": p.hash(quick),
        "protocol_hash_scheme1": None if quick else (p.hash_scheme1 or None),
        "disclosures": [d.to_dict() for d in p.disclosures],
        "decision": decision,
        "tables": tables,
        "figures": figures,
        "data": outcome.data,
    }
    return jsonable(doc), section(p.name, p.claim, verdict, statistic, body, p.source)


def run_claim(module, out, quick=False, jobs=1):
    """Run one claim module into ``out/<name>/``; returns its report entry
    (the JSON's head and the markdown section).

    Parameters
    ----------
    module : module
        A claim module (``PROTOCOL``, ``measure``, ``decide``, ``present``).
    out : str or os.PathLike
        The output folder.
    quick : bool, optional
        Run the CI size.
    jobs : int, optional
        Worker processes of the claim's sweeps.

    Returns
    -------
    dict
        ``name``, ``claim``, ``source``, ``verdict`` (``SKIPPED`` when the
        measure raised :class:`Skip`), ``statistic``, ``n_missing``,
        ``protocol_hash`` and ``markdown``.
    """
    p = module.PROTOCOL
    size = p.size(quick)
    folder = Path(out) / p.name
    folder.mkdir(parents=True, exist_ok=True)
    try:
        measurements = module.measure(size, ClaimSweep(p, size, out, jobs))
    except Skip as exc:
        return _skipped(p, quick, str(exc))
    decision = module.decide(size, measurements)
    outcome = module.present(size, measurements, decision)
    for t in outcome.sections:
        if isinstance(t, Table) and t.name:
            write_csv(folder / f"{t.name}.csv", t.header, t.rows)
    if F.available():
        for f in outcome.sections:
            if isinstance(f, Figure):
                f.draw(folder / f"{f.name}.png")
    doc, markdown = claim_result(p, quick, decision, outcome, folder)
    for name, text in outcome.attachments.items():
        write_text(folder / name, text)
    write_json(folder / f"{p.name}.json", doc)
    head = ("name", "claim", "source", "verdict", "statistic", "n_missing", "protocol_hash")
    return {**{k: doc[k] for k in head}, "markdown": markdown}


def _skipped(p, quick, reason):
    body = f"Not run: {reason}."
    return {
        "name": p.name,
        "claim": p.claim,
        "source": p.source,
        "verdict": "SKIPPED",
        "statistic": reason,
        "n_missing": 0,
        "skip_reason": reason,
        "protocol_hash": p.hash(quick),
        "markdown": section(p.name, p.claim, "SKIPPED", reason, body, p.source),
    }
