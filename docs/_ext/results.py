"""The Results pages, rendered at build time from the committed report.

Everything on these pages comes from ``validation/report/validate.json`` (each
claim's verdict, source, statistic, and its report section with protocol,
tables and figures, as ``refimpl validate`` wrote them) and the figures beside
it; no number is typed by hand. :func:`verdict_table` is also the README's
verdict table (``python docs/_ext/results.py --readme`` prints it, and
tests/test_docs.py checks that the README holds exactly that).
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "validation" / "report"
SOURCES = ("paper", "framework", "hypothesis", "implementation")
_FIGURE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")


def load(report=REPORT):
    """The suite's ``validate.json`` as a dict."""
    return json.loads((Path(report) / "validate.json").read_text(encoding="utf-8"))


def replication(data, name):
    """The replication's verdict of claim ``name`` ('' when there is none)."""
    entries = (data.get("replication") or {}).get("entries") or {}
    return entries.get(name, {}).get("verdict", "")


def _ordered(data):
    rank = {s: i for i, s in enumerate(SOURCES)}
    return sorted(data["entries"], key=lambda e: rank.get(e["source"], len(SOURCES)))


def _cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def verdict_table(data, link=None):
    """One Markdown table line per claim: source, claim, what was tested (the
    protocol's claim), the verdict with its statistic (effects and intervals,
    as the report holds them), and the replication's verdict and statistic.

    ``link(name)`` gives the claim's address (None: plain names)."""
    salt = (data.get("replication") or {}).get("salt", "")
    head = f"replication ({salt})" if salt else "replication"
    lines = [f"| source | claim | what was tested | verdict | {head} |"]
    lines.append("| --- | --- | --- | --- | --- |")
    reps = (data.get("replication") or {}).get("entries") or {}
    for e in _ordered(data):
        name = f"[{e['name']}]({link(e['name'])})" if link else e["name"]
        r = reps.get(e["name"], {})
        rep = f"**{r['verdict']}**: {_cell(r.get('statistic', ''))}" if r.get("verdict") else "-"
        mine = f"**{e['verdict']}**: {_cell(e.get('statistic', ''))}"
        lines.append(f"| {e['source']} | {name} | {_cell(e.get('claim', ''))} | {mine} | {rep} |")
    return "\n".join(lines)


def _claim_page(data, e, report, out):
    name = e["name"]
    body = e["markdown"].split("\n", 1)[1] if e["markdown"].startswith("## ") else e["markdown"]
    figures = []
    for _alt, target in _FIGURE.findall(body):
        source = (report / target).resolve()
        if not source.is_file():
            raise FileNotFoundError(f"{name}: the report names {target}, which does not exist")
        dest = out / target
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
        figures.append(target)
    rep = replication(data, name)
    facts = [
        f"- **Verdict:** {e['verdict']}",
        f"- **Replication** (salt `{data['replication']['salt']}`): {rep}" if rep else "",
        f"- **Source:** {e['source']} (docs/model.md §8)",
        f"- **Protocol hash:** `{e['protocol_hash']}`",
        f"- **Claim:** {_cell(e['claim'])}",
        f"- **Statistic:** {_cell(e['statistic'])}",
        f"- **Run:** finished {e['finished_utc']}, {e['seconds']:.1f} s with `--jobs {e['jobs']}`"
        + (" (quick size)" if e.get("quick") else " (full size)"),
    ]
    text = [f"# {name}: {e['verdict']}", "", *[f for f in facts if f], ""]
    text += ["## The report's section", "", body.strip(), ""]
    (out / f"{name}.md").write_text("\n".join(text), encoding="utf-8")
    return figures


def write_pages(report, out):
    """Write ``out/index.md`` and one ``out/<claim>.md`` per claim of ``report``."""
    report, out = Path(report), Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    data = load(report)
    names = []
    for e in _ordered(data):
        _claim_page(data, e, report, out)
        names.append(e["name"])
    machine = data.get("machine", {})
    packages = ", ".join(
        f"{k} {', '.join(v) if isinstance(v, list) else v}"
        for k, v in machine.get("packages", {}).items()
    )
    index = [
        "# Results",
        "",
        "Each claim of docs/model.md §8, measured by `python -m refimpl validate` and",
        "rendered here from the committed report (`validation/report/validate.json`",
        "and the figures beside it) when the site is built. FAIL is a finding: for a",
        "paper or framework claim, the claim did not reproduce in the regime tested;",
        "for one of our hypotheses, the hypothesis is refuted.",
        "",
        f"The report finished {data['finished_utc']} on a {machine.get('cpus', '?')}-CPU",
        f"machine (Python {machine.get('python', '?')}; {packages}), in",
        f"{data['wall_seconds']:.0f} s of claim time; command: {_cell(data['command'])}.",
        "",
        verdict_table(data, link=lambda n: f"{n}.md"),
        "",
        "```{toctree}",
        ":hidden:",
        "",
        *names,
        "```",
        "",
    ]
    (out / "index.md").write_text("\n".join(index), encoding="utf-8")
    return names


if __name__ == "__main__":
    if sys.argv[1:] != ["--readme"]:
        sys.exit("usage: python docs/_ext/results.py --readme")
    print(verdict_table(load()))
