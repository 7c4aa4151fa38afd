"""The suite's report: every claim's entry, ``REPORT.md`` and ``validate.json``,
and the number formats the claims' texts share.

A claim (:mod:`refimpl.claims`) is run by :func:`refimpl.lab.claim.run_claim`,
which returns its entry: at least ``name``, ``claim`` (one line), ``source``
(where the claim comes from, docs/model.md §8), ``statistic`` (text),
``verdict`` and ``markdown`` (its REPORT.md section, with the verdict line of
:func:`refimpl.lab.claim.verdict_line`); :func:`check_result` checks it.

Verdicts: ``PASS``; ``FAIL`` (the claim did not reproduce in the regime
tested: a finding, shown with its numbers); ``SKIPPED`` (the claim could not
run here, e.g. an optional extra is missing; the statistic says why). The
runner adds ``ERROR`` for a claim that raised or returned a malformed result.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import time
import traceback
from pathlib import Path

from ..errors import ResourceError, UsageError
from ..files import jsonable, write_json, write_text
from .claim import SOURCES, VERDICTS

__all__ = [
    "VERDICTS",
    "SOURCES",
    "REPORT_NAME",
    "STATE_NAME",
    "fmt_mean_se",
    "fmt_p",
    "fmt_trend",
    "check_result",
    "run_entry",
    "check_out",
    "merge_state",
    "write_report",
    "exit_status",
    "cache_dir",
    "confirmed",
]

REQUIRED_KEYS = ("name", "claim", "source", "statistic", "verdict", "markdown")
REPORT_NAME = "REPORT.md"
STATE_NAME = "validate.json"


def cache_dir(out):
    """The sweep cache under the output folder (it ignores itself in git)."""
    return Path(out) / ".sweep-cache"


def fmt_mean_se(mean, se, digits=4):
    """``0.1234 ± 0.0012``."""
    if mean is None or (isinstance(mean, float) and not math.isfinite(mean)):
        return "n/a"
    return f"{mean:.{digits}f} ± {se:.{digits}f}"


def fmt_p(p):
    """A p-value for the report ("p n/a" when missing values made it NaN)."""
    if p is None or not math.isfinite(p):
        return "p n/a (missing values)"
    return "p < 1e-10" if p < 1e-10 else f"p = {p:.2g}"


def fmt_trend(t):
    """``mean per-seed rho = -0.812 ± 0.020, Page p < 1e-10``."""
    rho = f"mean per-seed Spearman rho = {t['rho']:.3f} ± {t['rho_se']:.3f}"
    return f"{rho}, Page's test {fmt_p(t['p'])}"


def check_result(result, name):
    """Problems with a claim's returned dict (empty list when well formed)."""
    if not isinstance(result, dict):
        return [f"the claim's entry is a {type(result).__name__}, not a dict"]
    problems = [f"missing key {k!r}" for k in REQUIRED_KEYS if k not in result]
    if problems:
        return problems
    if result["name"] != name:
        problems.append(f"name is {result['name']!r}, expected {name!r}")
    if result["verdict"] not in VERDICTS:
        problems.append(f"verdict is {result['verdict']!r}, expected one of {', '.join(VERDICTS)}")
    elif f"**Verdict: {result['verdict']}**" not in str(result["markdown"]):
        problems.append("markdown lacks the verdict line **Verdict: ...**")
    if result["source"] not in SOURCES:
        problems.append(f"source is {result['source']!r}, expected one of {', '.join(SOURCES)}")
    for k in ("claim", "statistic", "markdown"):
        if not isinstance(result[k], str):
            problems.append(f"{k} must be a string")
    return problems


def run_entry(module, name, out, quick, jobs, stream):
    """Run one claim module; returns its report entry (never raises for a
    claim's own failure: the entry then has status 'error')."""
    start = time.monotonic()
    print(
        f"[refimpl] validate {name}: running ({'quick' if quick else 'full size'}, jobs={jobs})",
        file=stream,
        flush=True,
    )
    entry = {
        "name": name,
        "claim": module.PROTOCOL.claim,
        "source": module.PROTOCOL.source,
        "quick": bool(quick),
        "jobs": jobs,
        "finished_utc": None,
    }
    try:
        from .claim import run_claim

        result = run_claim(module, Path(out), quick=quick, jobs=jobs)
        problems = check_result(result, name)
    except (KeyboardInterrupt, UsageError, ResourceError):
        raise  # a usage or budget refusal: one line and exit status 2, not an ERROR entry
    except Exception:
        result, problems = None, None
        entry.update(
            status="error",
            verdict="ERROR",
            statistic="the claim raised",
            markdown=f"## {name}\n\n**Verdict: ERROR** — the claim raised:\n\n"
            f"```\n{traceback.format_exc()}```\n",
        )
    if result is not None:
        if problems:
            entry.update(
                status="error",
                verdict="ERROR",
                statistic="malformed result: " + "; ".join(problems),
                markdown=f"## {name}\n\n**Verdict: ERROR** — malformed result: "
                + "; ".join(problems)
                + "\n",
            )
        else:
            entry.update({k: v for k, v in result.items() if k != "markdown"})
            entry.update(status="ok", markdown=result["markdown"])
    entry["seconds"] = time.monotonic() - start
    entry["finished_utc"] = _now()
    print(
        f"[refimpl] validate {name}: {entry['verdict']} in {entry['seconds']:.1f} s — "
        f"{entry['statistic']}",
        file=stream,
        flush=True,
    )
    return jsonable(entry)


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def check_out(out):
    """Check, before any work and without creating anything, that the output
    folder ``out`` can be created or written into; UsageError (one line,
    exit 2) otherwise."""
    out = Path(out)
    probe = out
    while not probe.exists() and probe != probe.parent:
        if probe.is_symlink():  # a dangling link: cannot be created
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        problem = "is a file, not a folder" if probe == out else f"{probe} is not a folder"
    elif not probe.exists():
        problem = "cannot be created"
    elif not os.access(probe, os.W_OK | os.X_OK):
        problem = "is not writable" if probe == out else f"{probe} is not writable"
    else:
        return
    raise UsageError(f"cannot write into the output folder --out {out}: {problem}")


def _previous_state(out, quick):
    """The state of an earlier run into ``out`` with the same ``quick``
    setting (empty when there is none or it is unreadable)."""
    path = Path(out) / STATE_NAME
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return old if isinstance(old, dict) and old.get("quick") == bool(quick) else {}


def merge_state(out, entries, order, quick, wall, jobs, command, replication=None):
    """This run's entries plus the other claims' entries of an earlier run
    into the same folder with the same ``quick`` setting (claims in
    ``order`` only: a claim that no longer exists is dropped).

    ``replication``: ``(salt, entries)`` of a replication run; otherwise the
    earlier state's replication entries are kept.
    """
    old = _previous_state(out, quick)
    previous = {e["name"]: e for e in old.get("entries", []) if isinstance(e, dict) and "name" in e}
    merged = []
    source = entries if replication is None else {}
    for n in order:
        if n in source:
            merged.append({**source[n], "this_run": True})
        elif n in previous:
            merged.append({**previous[n], "this_run": False})
    rep = old.get("replication") if isinstance(old.get("replication"), dict) else None
    if replication is not None:
        salt, rep_entries = replication
        kept = rep["entries"] if rep and rep.get("salt") == salt else {}
        rep = {
            "salt": salt,
            "entries": {
                **kept,
                **{
                    n: {
                        k: e.get(k)
                        for k in ("verdict", "statistic", "status", "finished_utc", "seconds")
                    }
                    for n, e in rep_entries.items()
                },
            },
        }
    state = {
        "quick": bool(quick),
        "jobs": jobs,
        "command": command,
        "finished_utc": _now(),
        "wall_seconds": wall,
        "entries": merged,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "packages": _packages(),
        },
    }
    if rep:
        state["replication"] = rep
    return state


def _versions(machine):
    """``, numpy 2.4.6, scipy 1.17.1, numba 0.68.1, openblas 0.3.31`` (empty
    for a state written before the versions were recorded)."""
    pk = machine.get("packages") or {}
    names = [f"{k} {pk[k]}" for k in ("numpy", "scipy", "numba") if k in pk]
    return "".join(f", {n}" for n in names + list(pk.get("blas", [])))


def _packages():
    """The versions the numbers depend on (numpy, scipy, numba and the BLAS
    numpy calls): rounding differs between them, and in chaotic runs (eta = 1)
    rounding differences grow into different test errors."""
    import numba
    import numpy
    import scipy
    from threadpoolctl import threadpool_info

    blas = [f"{i.get('internal_api')} {i.get('version')}" for i in threadpool_info()]
    return {
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "numba": numba.__version__,
        "blas": sorted(set(blas)),
    }


def confirmed(entry, replication):
    """ "confirmed" when the claim passed on its own seeds and on the
    replication's; "not confirmed" when either did not; "not replicated" when
    there is no replication of it."""
    other = (replication or {}).get("entries", {}).get(entry["name"])
    if other is None:
        return "not replicated"
    return (
        "confirmed" if entry.get("verdict") == other.get("verdict") == "PASS" else "not confirmed"
    )


def write_report(out, state):
    """Write ``out/REPORT.md`` and ``out/validate.json`` from a report state."""
    from .. import __version__

    entries = state["entries"]
    size = "quick (CI size)" if state["quick"] else "full size"
    lines = [
        "# Validation report",
        "",
        f"Generated by refimpl {__version__} on {state['finished_utc']}, {size}, "
        f"`--jobs {state['jobs']}`, on a {state['machine']['cpus']}-CPU machine "
        f"(Python {state['machine']['python']}{_versions(state['machine'])}).",
        "",
    ]
    if state.get("command"):
        lines += [f"Command: `{state['command']}`", ""]
    lines += [
        f"**Measured wall time of this run: {state['wall_seconds']:.1f} s "
        f"({state['wall_seconds'] / 60:.1f} min)** for the claims it ran "
        f"(marked * below).",
        "",
        "The claims are those of docs/model.md §8, each with its source: the paper's "
        "own claims, the framework's theorems, our own hypotheses (a FAIL refutes our "
        "hypothesis, not the paper) and checks of this implementation. FAIL means the "
        "claim did not reproduce in the regime tested (a finding, shown with its "
        "numbers); ERROR means the claim's code broke; SKIPPED means it could not run "
        "here. A value a verdict relies on that is missing (non-finite: a diverged run) "
        "makes that verdict FAIL. Trends use Page's L test with the seeds as blocks "
        "(seeds are shared across the points of a sweep only where a claim says so); "
        "families of tests are Holm- or Bonferroni-corrected where a verdict takes "
        "'any of' them.",
        "",
    ]
    rep = state.get("replication")
    if rep:
        lines += [
            f"Replication: every claim's protocol again on an independent seed stream "
            f"(salt `{rep['salt']}`, outputs in `replicate-{rep['salt']}/`); a claim is "
            "confirmed when it passes on both.",
            "",
        ]
        lines += [
            "| claim | source | verdict | replication | confirmed | statistic | wall time |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
    else:
        lines += [
            "| claim | source | verdict | statistic | wall time |",
            "| --- | --- | --- | --- | --- |",
        ]
    for e in entries:
        mark = "*" if e.get("this_run") else f" (earlier run, {e.get('finished_utc')})"
        stat = str(e.get("statistic", "")).replace("|", "\\|").replace("\n", " ")
        cols = ""
        if rep:
            other = rep["entries"].get(e["name"], {})
            cols = f"{other.get('verdict', '—')} | {confirmed(e, rep)} | "
        lines.append(
            f"| [{e['name']}](#{e['name']}) | {e.get('source')} | {e['verdict']} | {cols}{stat} | "
            f"{e.get('seconds', float('nan')):.1f} s{mark} |"
        )
    lines.append("")
    for e in entries:
        section = str(e.get("markdown", "")).rstrip()
        lines += [
            "",
            section,
            "",
            f"_Wall time of `{e['name']}`: {e.get('seconds', float('nan')):.1f} s"
            + ("" if e.get("this_run") else f" (earlier run, {e.get('finished_utc')})")
            + "._",
        ]
    text = "\n".join(lines) + "\n"
    out = Path(out)
    write_text(out / REPORT_NAME, text)
    write_json(out / STATE_NAME, state)
    return out / REPORT_NAME


def exit_status(state, strict):
    """0 when every claim that ran returned a well-formed result; 1 when one
    broke (or, with ``strict``, did not PASS)."""
    ran = [e for e in state["entries"] if e.get("this_run")]
    if any(e.get("status") != "ok" for e in ran):
        return 1
    if strict and any(e.get("verdict") not in ("PASS", "SKIPPED") for e in ran):
        return 1
    return 0
