"""The ``validate`` subcommand: run the validation scripts and write a report.

Each validation script ``validation/<name>.py`` (the folder next to the
package; the repository is installed editable) follows one protocol:

- module attributes ``NAME`` (str, equal to the file name) and ``CLAIM``
  (one line: what the paper's theory predicts, MODEL.md section 8);
- ``run(out, quick=False, jobs=1) -> dict``: ``out`` is a :class:`pathlib.Path`
  folder; the script writes its numbers (JSON, plus CSV where tabular) and
  figures (PNG, only when :func:`refimpl.plotting.available`; otherwise the
  markdown says :data:`refimpl.plotting.INSTALL_HINT`) into ``out/<name>/``
  and returns a dict with at least ``name``, ``claim``, ``statistic`` (text),
  ``verdict`` (``"PASS"`` or ``"FAIL"``; FAIL means the claim did not
  reproduce: a finding, not an error) and ``markdown`` (its REPORT.md section,
  containing the verdict line made by :func:`verdict_line`);
- runnable on its own::

      if __name__ == "__main__":
          import sys
          from refimpl.validate import script_main
          sys.exit(script_main(sys.modules[__name__]))

  which accepts ``[--quick] [--jobs N] [--out DIR]``.

``python -m refimpl validate [NAME ...] [--quick] [--jobs N] [--out DIR]``
runs the named scripts (all present ones when no name is given, in the fixed
order of :data:`SCRIPT_NAMES`) and writes ``OUT/REPORT.md`` (every script's
section, a summary table, the wall time of each script and of the whole run,
and the scripts that are missing) and ``OUT/validate.json`` (the same in JSON).
When only some scripts run, the sections of the others are kept from an
earlier run into the same folder with the same ``--quick`` setting (marked
as such), so the report stays complete.

The statistics the scripts share (below): :func:`paired_t` (paired t-test),
:func:`trend` (a monotone trend tested seed by seed: per-seed Spearman rho and
Page's L test, valid when seeds are shared across points), :func:`holm`
(Holm over one family of tests), :func:`bonferroni_min` ("at least one of k
alternatives"), :func:`equivalent` (equivalence rule: a whole confidence
interval within theory +- a stated margin). Missing values (None, NaN or
inf: a diverged run) are counted (:func:`n_missing`), make a test's p-value
NaN, and make the verdict FAIL (:func:`result` with ``missing``), so that a
script never passes on fewer measurements than it claims.

Exit status: 0 when every script ran and returned a well-formed result (PASS
or FAIL), 1 when a script raised or returned a malformed result (the report
shows the traceback), 2 for a usage mistake (unknown name, a named script that
is not present, a bad ``--jobs``). With ``--strict`` a FAIL verdict also
gives 1.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import importlib.util
import io
import json
import math
import os
import platform
import sys
import time
import traceback
from pathlib import Path

__all__ = ["SCRIPT_NAMES", "VERDICTS", "validation_dir", "script_path", "load_script",
           "check_result", "run_scripts", "write_report", "script_main", "register",
           "verdict_line", "script_out", "write_json", "write_csv", "figure_note",
           "fmt_mean_se", "fmt_p", "DEFAULT_OUT", "TRANSFER_BASE", "TRANSFER_QUICK",
           "transfer_base", "cache_dir", "trend", "fmt_trend", "paired_t", "n_missing", "holm",
           "bonferroni_min", "equivalent", "missing_note", "markdown_table", "section",
           "result", "line_figure", "present_scripts"]

SCRIPT_NAMES = ("coefficients", "phase_single", "gain_shared", "gain_upstream_n", "gain_alpha",
                "gain_noise_dim", "negative_transfer", "mechanism", "mitigation", "robustness",
                "crosscheck", "realdata")
"""All validation scripts, in report order (issues 3, 4 and 5)."""

VERDICTS = ("PASS", "FAIL")
REQUIRED_KEYS = ("name", "claim", "statistic", "verdict", "markdown")
DEFAULT_OUT = "out/validation"
REPORT_NAME = "REPORT.md"
STATE_NAME = "validate.json"


# ----------------------------------------------------------------------
# helpers the scripts share
def verdict_line(verdict, claim, statistic):
    """The report's verdict line: ``**Verdict: PASS** — claim — statistic``."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be 'PASS' or 'FAIL', got {verdict!r}")
    return f"**Verdict: {verdict}** — {claim} — {statistic}"


def script_out(out, name):
    """``out/<name>/``, created; the folder a script writes into."""
    folder = Path(out) / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _jsonable(x):
    """JSON-ready copy (:func:`refimpl.sweep.jsonable`: NaN/inf become None)."""
    from .sweep import jsonable

    return jsonable(x)


def write_json(path, obj):
    """Write ``obj`` as strict JSON (NaN becomes null) atomically; returns the path."""
    from .trajectory import atomic_write

    text = json.dumps(_jsonable(obj), indent=2, sort_keys=True, allow_nan=False) + "\n"
    atomic_write(path, lambda fh: fh.write(text.encode()))
    return Path(path)


def write_csv(path, header, rows):
    """Write a CSV with a header row; returns the path."""
    from .trajectory import atomic_write

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"CSV row of length {len(row)} for a header of {len(header)}")
        w.writerow([_csv_cell(v) for v in row])
    atomic_write(path, lambda fh: fh.write(buf.getvalue().encode()))
    return Path(path)


def _csv_cell(v):
    v = _jsonable(v)
    if isinstance(v, float):
        return repr(v)
    return "" if v is None else v


def figure_note(paths):
    """Markdown for figures: image links relative to the report, or the
    install hint when matplotlib is missing (``paths`` empty)."""
    from .plotting import INSTALL_HINT, available

    if not available():
        return f"_No figure: {INSTALL_HINT}._"
    return "\n\n".join(f"![{Path(p).stem}]({Path(p).parent.name}/{Path(p).name})" for p in paths)


def fmt_mean_se(mean, se, digits=4):
    """``0.1234 ± 0.0012``."""
    if mean is None or (isinstance(mean, float) and not math.isfinite(mean)):
        return "n/a"
    return f"{mean:.{digits}f} ± {se:.{digits}f}"


# ----------------------------------------------------------------------
# discovery
def validation_dir():
    """The ``validation/`` folder beside the package (editable install)."""
    return Path(__file__).resolve().parent.parent / "validation"


def script_path(name):
    return validation_dir() / f"{name}.py"


def _usage_error(msg):
    from .cli import UsageError
    return UsageError(msg)


def load_script(name):
    """Import ``validation/<name>.py`` as a module; UsageError when the name
    is unknown or the file is not present."""
    if name not in SCRIPT_NAMES:
        raise _usage_error(f"unknown validation script {name!r}; known: {', '.join(SCRIPT_NAMES)}")
    path = script_path(name)
    if not path.is_file():
        raise _usage_error(f"validation script {name!r} is not present "
                           f"(expected {path}); present: {', '.join(present_scripts()) or 'none'}")
    modname = f"refimpl_validation_{name}"
    spec = importlib.util.spec_from_file_location(modname, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module
    spec.loader.exec_module(module)
    _pickle_by_value(module)
    return module


def _pickle_by_value(module):
    """Functions of a script loaded from a file are not importable by the
    joblib workers: pickle them by value."""
    try:
        from joblib.externals import cloudpickle
        cloudpickle.register_pickle_by_value(module)
    except Exception:            # joblib missing or an old cloudpickle: nothing to do
        pass


def present_scripts():
    return [n for n in SCRIPT_NAMES if script_path(n).is_file()]


# ----------------------------------------------------------------------
# running
def check_result(result, name):
    """Problems with a script's returned dict (empty list when well formed)."""
    if not isinstance(result, dict):
        return [f"run() returned {type(result).__name__}, not a dict"]
    problems = [f"missing key {k!r}" for k in REQUIRED_KEYS if k not in result]
    if problems:
        return problems
    if result["name"] != name:
        problems.append(f"name is {result['name']!r}, expected {name!r}")
    if result["verdict"] not in VERDICTS:
        problems.append(f"verdict is {result['verdict']!r}, expected 'PASS' or 'FAIL'")
    elif f"**Verdict: {result['verdict']}**" not in str(result["markdown"]):
        problems.append("markdown lacks the verdict line **Verdict: PASS|FAIL**")
    for k in ("claim", "statistic", "markdown"):
        if not isinstance(result[k], str):
            problems.append(f"{k} must be a string")
    return problems


def _run_module(module, name, out, quick, jobs, stream):
    """Run one script; returns its report entry (never raises for a script's
    own failure: the entry then has status 'error')."""
    start = time.monotonic()
    print(f"[refimpl] validate {name}: running ({'quick' if quick else 'full size'}, "
          f"jobs={jobs})", file=stream, flush=True)
    entry = {"name": name, "claim": getattr(module, "CLAIM", ""), "quick": bool(quick),
             "jobs": jobs, "finished_utc": None}
    try:
        result = module.run(Path(out), quick=quick, jobs=jobs)
        problems = check_result(result, name)
    except KeyboardInterrupt:
        raise
    except Exception:
        result, problems = None, None
        entry.update(status="error", verdict="ERROR", statistic="the script raised",
                     markdown=f"## {name}\n\n**Verdict: ERROR** — the script raised:\n\n"
                              f"```\n{traceback.format_exc()}```\n")
    if result is not None:
        if problems:
            entry.update(status="error", verdict="ERROR",
                         statistic="malformed result: " + "; ".join(problems),
                         markdown=f"## {name}\n\n**Verdict: ERROR** — malformed result: "
                                  + "; ".join(problems) + "\n")
        else:
            entry.update({k: v for k, v in result.items() if k != "markdown"})
            entry.update(status="ok", markdown=result["markdown"])
    entry["seconds"] = time.monotonic() - start
    entry["finished_utc"] = _now()
    print(f"[refimpl] validate {name}: {entry['verdict']} in {entry['seconds']:.1f} s — "
          f"{entry['statistic']}", file=stream, flush=True)
    return _jsonable(entry)


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def run_scripts(names=None, out=DEFAULT_OUT, quick=False, jobs=1, modules=None, stream=None,
                command=None):
    """Run validation scripts and write ``out/REPORT.md`` and ``out/validate.json``.

    Parameters
    ----------
    names : list of str, optional
        Scripts to run (each must be present); None or empty: all present ones.
    out : path
    quick : bool
    jobs : int
        joblib workers each script may use.
    modules : dict name -> module, optional
        Already loaded scripts (``script_main`` passes the running one).
    command : str, optional
        The command line recorded in the report.

    Returns
    -------
    dict
        The report state: ``entries`` (one per script that ran), ``missing``,
        ``wall_seconds``, ...
    """
    stream = sys.stderr if stream is None else stream
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise _usage_error(f"--jobs must be a positive integer, got {jobs!r}")
    modules = dict(modules or {})
    if names:
        for n in names:
            if n not in modules:
                modules[n] = load_script(n)
        order = [n for n in SCRIPT_NAMES if n in names] + [n for n in names if n not in SCRIPT_NAMES]
        order = list(dict.fromkeys(order))
    else:
        for n in present_scripts():
            modules.setdefault(n, None)
        order = [n for n in SCRIPT_NAMES if n in modules]
    out = Path(out)
    _check_out(out)
    start = time.monotonic()
    entries = {}
    for n in order:
        module = modules[n] if modules[n] is not None else load_script(n)
        entries[n] = _run_module(module, n, out, quick, jobs, stream)
    wall = time.monotonic() - start
    state = _merge_state(out, entries, quick, wall, jobs, command)
    try:
        write_report(out, state)
    except OSError as exc:
        raise _usage_error(f"cannot write the report into --out {out}: {exc}") from None
    print(f"[refimpl] validate: wrote {out / REPORT_NAME} ({wall:.1f} s)", file=stream, flush=True)
    return state


def _check_out(out):
    """Create the output folder and check that a file can be written in it,
    before any script runs; UsageError (one line, exit 2) otherwise."""
    import tempfile

    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".probe-")
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        raise _usage_error(f"cannot write into the output folder --out {out}: "
                           f"{exc.strerror or exc}") from None


def _merge_state(out, entries, quick, wall, jobs, command):
    """This run's entries plus the other scripts' entries of an earlier run
    into the same folder with the same ``quick`` setting."""
    previous = {}
    path = Path(out) / STATE_NAME
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
            if old.get("quick") == bool(quick):
                previous = {e["name"]: e for e in old.get("entries", [])
                            if isinstance(e, dict) and "name" in e}
        except (OSError, ValueError, TypeError, AttributeError):
            previous = {}
    merged = []
    for n in SCRIPT_NAMES + tuple(sorted(set(entries) | set(previous))):
        if any(e["name"] == n for e in merged):
            continue
        if n in entries:
            merged.append({**entries[n], "this_run": True})
        elif n in previous and script_path(n).is_file():
            merged.append({**previous[n], "this_run": False})
    return {"quick": bool(quick), "jobs": jobs, "command": command, "finished_utc": _now(),
            "wall_seconds": wall, "entries": merged,
            "missing": [n for n in SCRIPT_NAMES if not script_path(n).is_file()],
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "platform": platform.platform()}}


def write_report(out, state):
    """Write ``out/REPORT.md`` and ``out/validate.json`` from a report state."""
    from . import __version__
    from .trajectory import atomic_write

    entries = state["entries"]
    size = "quick (CI size)" if state["quick"] else "full size"
    lines = ["# Validation report", "",
             f"Generated by refimpl {__version__} on {state['finished_utc']}, {size}, "
             f"`--jobs {state['jobs']}`, on a {state['machine']['cpus']}-CPU machine "
             f"(Python {state['machine']['python']}).", ""]
    if state.get("command"):
        lines += [f"Command: `{state['command']}`", ""]
    lines += [f"**Measured wall time of this run: {state['wall_seconds']:.1f} s "
              f"({state['wall_seconds'] / 60:.1f} min)** for the scripts it ran "
              f"(marked * below).", "",
              "The claims are those of MODEL.md section 8. FAIL means the claim did not "
              "reproduce in the regime tested (a finding, shown with its numbers); ERROR "
              "means the script itself broke. A value a verdict relies on that is missing "
              "(non-finite: a diverged run) makes that verdict FAIL. Trends are tested seed by "
              "seed (per-seed Spearman rho, Page's L test); families of tests are Holm- or "
              "Bonferroni-corrected where a verdict takes 'any of' them.", "",
              "| script | verdict | statistic | wall time |", "| --- | --- | --- | --- |"]
    for e in entries:
        mark = "*" if e.get("this_run") else f" (earlier run, {e.get('finished_utc')})"
        stat = str(e.get("statistic", "")).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| [{e['name']}](#{e['name']}) | {e['verdict']} | {stat} | "
                     f"{e.get('seconds', float('nan')):.1f} s{mark} |")
    if state["missing"]:
        lines += ["", "Scripts not present in this version (not run): "
                  + ", ".join(f"`validation/{n}.py`" for n in state["missing"]) + "."]
    lines.append("")
    for e in entries:
        section = str(e.get("markdown", "")).rstrip()
        lines += ["", section, "",
                  f"_Wall time of `{e['name']}`: {e.get('seconds', float('nan')):.1f} s"
                  + ("" if e.get("this_run") else f" (earlier run, {e.get('finished_utc')})")
                  + "._"]
    text = "\n".join(lines) + "\n"
    out = Path(out)
    atomic_write(out / REPORT_NAME, lambda fh: fh.write(text.encode()))
    write_json(out / STATE_NAME, state)
    return out / REPORT_NAME


def _status(state, names, strict):
    ran = [e for e in state["entries"] if e.get("this_run")]
    if any(e.get("status") != "ok" for e in ran):
        return 1
    if strict and any(e.get("verdict") != "PASS" for e in ran):
        return 1
    return 0


# ----------------------------------------------------------------------
# command line
def _add_common_arguments(p, default_out):
    p.add_argument("--quick", action="store_true",
                   help="small CI-size version (seconds per script)")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="parallel workers for the sweeps (default 1)")
    p.add_argument("--out", metavar="DIR", default=default_out,
                   help=f"output folder (default: {default_out})")
    p.add_argument("--strict", action="store_true",
                   help="exit status 1 when a claim does not reproduce (FAIL)")


def _validate_command(args):
    names = list(dict.fromkeys(args.names or []))
    for n in names:          # all usage errors before any work
        if n not in SCRIPT_NAMES:
            raise _usage_error(f"unknown validation script {n!r}; known: {', '.join(SCRIPT_NAMES)}")
        if not script_path(n).is_file():
            raise _usage_error(f"validation script {n!r} is not present (expected {script_path(n)}); "
                               f"present: {', '.join(present_scripts()) or 'none'}")
    if args.jobs < 1:
        raise _usage_error(f"--jobs must be a positive integer, got {args.jobs}")
    command = "python -m refimpl validate" + "".join(f" {n}" for n in names) + \
        (" --quick" if args.quick else "") + f" --jobs {args.jobs} --out {args.out}"
    try:
        state = run_scripts(names, out=args.out, quick=args.quick, jobs=args.jobs, command=command)
    except OSError as exc:          # e.g. the output folder vanished mid-run
        raise _usage_error(f"cannot write into --out {args.out}: {exc}") from None
    return _status(state, names, args.strict)


def register(subparsers):
    p = subparsers.add_parser(
        "validate", help="run the validation scripts and write REPORT.md",
        description="Run the validation scripts (validation/<name>.py; all present ones "
                    "when no NAME is given, in the order " + ", ".join(SCRIPT_NAMES) +
                    ") and write DIR/REPORT.md with each claim's verdict, statistic and "
                    "figures. Exit status 0 when every script ran (PASS or FAIL), 1 when "
                    "one broke, 2 for a usage mistake.")
    p.add_argument("names", nargs="*", metavar="NAME", help="scripts to run (default: all)")
    _add_common_arguments(p, DEFAULT_OUT)
    p.set_defaults(func=_validate_command)


def script_main(module, argv=None):
    """Command line of a single script: ``python validation/<name>.py
    [--quick] [--jobs N] [--out DIR] [--strict]``. Returns the exit status."""
    from .cli import Parser, UsageError
    from .config import ConfigError

    name = getattr(module, "NAME", None)
    if not isinstance(name, str):
        print("refimpl: error: a validation script must define NAME", file=sys.stderr)
        return 2
    p = Parser(prog=f"python validation/{name}.py",
               description=getattr(module, "CLAIM", None) or f"validation script {name}")
    _add_common_arguments(p, DEFAULT_OUT)
    args = p.parse_args(argv)
    _pickle_by_value(module)
    command = f"python validation/{name}.py" + (" --quick" if args.quick else "") + \
        f" --jobs {args.jobs} --out {args.out}"
    try:
        if args.jobs < 1:
            raise UsageError(f"--jobs must be a positive integer, got {args.jobs}")
        state = run_scripts([name], out=args.out, quick=args.quick, jobs=args.jobs,
                            modules={name: module}, command=command)
    except (UsageError, ConfigError) as exc:
        print(f"refimpl: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:          # e.g. the output folder vanished mid-run
        print(f"refimpl: error: cannot write into --out {args.out}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("refimpl: interrupted", file=sys.stderr)
        return 130
    entry = next(e for e in state["entries"] if e["name"] == name)
    print(f"{name}: {entry['verdict']} — {entry['statistic']}")
    return _status(state, [name], args.strict)


# ----------------------------------------------------------------------
# shared pieces of the validation scripts: base regimes and statistical tests
TRANSFER_BASE = dict(d=600, m=10, m_down=None, n_up=200, n_down=10, u_norm=2.0, v_up_norm=1.0,
                     v_down_norm=1.0, v_cos=0.0, sigma_p_up=1.0, sigma_p_down=1.0, flip_up=0.0,
                     flip_down=0.1, layout="joint", eta=1.0, sigma_0=0.01, weight_decay_up=0.0,
                     weight_decay=0.0, steps_up=200, steps_down=200, epsilon=0.0, snapshots=2,
                     alpha=0.5, granularity="filter", freeze_inherited=False,
                     rescale_inherited=1.0, n_test=10000, estimator="reduced", seed=0)
"""The full-size transfer regime most scripts start from (every field set
explicitly: the package defaults may change)."""

TRANSFER_QUICK = dict(TRANSFER_BASE, d=120, m=4, n_up=40, n_down=8, steps_up=60, steps_down=60,
                      n_test=2000)
"""The CI-size version of :data:`TRANSFER_BASE`."""


def transfer_base(quick, **changes):
    """The base transfer :class:`~refimpl.config.Config` (full or quick size)."""
    from .config import Config
    return Config.from_dict({**(TRANSFER_QUICK if quick else TRANSFER_BASE), **changes})


def cache_dir(out):
    """The sweep cache under the output folder (it ignores itself in git)."""
    return Path(out) / ".sweep-cache"


def n_missing(*arrays):
    """How many values of the arrays are missing: None, NaN or infinite (a
    diverged run, or a quantity undefined for that run)."""
    import numpy as np

    total = 0
    for a in arrays:
        a = np.asarray([np.nan if v is None else v for v in np.ravel(np.asarray(a, dtype=object))],
                       dtype=float)
        total += int(np.sum(~np.isfinite(a)))
    return total


def paired_t(a, b, alternative="greater"):
    """One-sided (by default) paired t-test of mean(a - b) > 0.

    Returns dict mean, se, t, p, n (complete pairs), n_missing (pairs with
    a missing member, see :func:`n_missing`). mean and se are over the
    complete pairs; **p is NaN when any pair is missing**, so a verdict that
    needs ``p < level`` fails rather than silently testing fewer runs. With
    zero variance the p-value is 0 when the mean difference has the tested
    sign, 1 otherwise.
    """
    from scipy import stats
    import numpy as np

    diff = np.asarray(a, float) - np.asarray(b, float)
    ok = np.isfinite(diff)
    missing = int(diff.size - ok.sum())
    diff = diff[ok]
    n = diff.size
    mean = float(diff.mean()) if n else float("nan")
    se = float(diff.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    out = {"mean": mean, "se": se, "n": n, "n_missing": missing}
    if n < 2:
        return {**out, "t": float("nan"), "p": float("nan") if missing else 1.0}
    if se == 0:
        sign = {"greater": mean > 0, "less": mean < 0, "two-sided": mean != 0}[alternative]
        t, pv = (float("inf") if sign else 0.0), (0.0 if sign else 1.0)
    else:
        r = stats.ttest_1samp(diff, 0.0, alternative=alternative)
        t, pv = float(r.statistic), float(r.pvalue)
    return {**out, "t": t, "p": float("nan") if missing else pv}


def trend(x, values, alternative="greater"):
    """Monotone trend of ``values`` along ``x``, replicate by replicate.

    Each replicate (seed) is a block: within it the points are ranked, and
    Page's L test (scipy.stats.page_trend_test; exact for small designs,
    normal approximation otherwise or with ties) tests the predicted order
    of ``x`` against no trend. Blocks are the unit of replication, so seeds
    shared across points (common random numbers) keep the p-value valid,
    unlike a Spearman correlation pooled over all (point, seed) pairs. The
    effect size is the mean over blocks of the per-block Spearman rho
    (rank correlation of x with the block's values; 0 for a constant block).

    Parameters
    ----------
    x : array of shape (k,), k >= 3 distinct values
    values : array of shape (k, b): ``values[i, r]`` at x[i], replicate r
    alternative : {"greater", "less", "two-sided"}
        "greater": values increase with x; "less": they decrease.

    Returns
    -------
    dict
        rho (mean per-block Spearman), rho_se, L, p, method, n (complete
        blocks), n_missing (missing values, see :func:`n_missing`), points.
        **p is NaN when any value is missing.**
    """
    from scipy import stats
    import numpy as np

    x = np.asarray(x, float)
    v = np.asarray(values, float)
    if v.ndim != 2 or v.shape[0] != x.size:
        raise ValueError(f"values must have shape (len(x), replicates) = ({x.size}, b), "
                         f"got {v.shape}")
    if x.size < 3 or np.unique(x).size != x.size:
        raise ValueError("a trend test needs at least 3 distinct x values")
    missing = int(np.sum(~np.isfinite(v)))
    blocks = v[:, np.all(np.isfinite(v), axis=0)].T                 # (b, k)
    out = {"points": int(x.size), "n": int(blocks.shape[0]), "n_missing": missing}
    if blocks.shape[0] < 2:
        return {**out, "rho": float("nan"), "rho_se": float("nan"), "L": float("nan"),
                "p": float("nan") if missing else 1.0, "method": "none"}
    rx = stats.rankdata(x)
    ry = stats.rankdata(blocks, axis=1)
    cx = rx - rx.mean()
    cy = ry - ry.mean(axis=1, keepdims=True)
    norm = np.sqrt((cx**2).sum() * (cy**2).sum(axis=1))
    rho = np.divide(cy @ cx, norm, out=np.zeros(len(blocks)), where=norm > 0)
    ties = any(np.unique(b).size < b.size for b in blocks)
    method = "asymptotic" if ties else "auto"
    order = np.argsort(x, kind="stable")

    def page(increasing):
        # columns in the order of x; predicted ranks 1..k (or k..1)
        data = blocks[:, order]
        pred = np.arange(1, x.size + 1) if increasing else np.arange(x.size, 0, -1)
        r = stats.page_trend_test(data, predicted_ranks=pred, method=method)
        return float(r.statistic), float(r.pvalue), r.method

    if alternative == "two-sided":
        L, p_up, meth = page(True)
        _, p_down, _ = page(False)
        pv = min(1.0, 2 * min(p_up, p_down))
    elif alternative in ("greater", "less"):
        L, pv, meth = page(alternative == "greater")
    else:
        raise ValueError(f"alternative must be 'greater', 'less' or 'two-sided', got {alternative!r}")
    se = float(rho.std(ddof=1) / np.sqrt(len(rho)))
    return {**out, "rho": float(rho.mean()), "rho_se": se, "L": L,
            "p": float("nan") if missing else pv, "method": meth}


def fmt_trend(t):
    """``mean per-seed rho = -0.812 ± 0.020, Page p < 1e-10``."""
    return f"mean per-seed Spearman rho = {t['rho']:.3f} ± {t['rho_se']:.3f}, Page's test {fmt_p(t['p'])}"


def holm(pvalues):
    """Holm-Bonferroni adjusted p-values (same shape), over all values given
    (one family). A NaN p-value (a missing measurement) counts as 1 in the
    adjustment and stays NaN."""
    import numpy as np

    p = np.asarray(pvalues, float)
    flat = np.where(np.isfinite(p.ravel()), p.ravel(), 1.0)
    order = np.argsort(flat, kind="stable")
    m = flat.size
    adj = np.empty(m)
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * flat[i]))
        adj[i] = running
    adj = np.where(np.isfinite(p.ravel()), adj, np.nan)
    return adj.reshape(p.shape)


def bonferroni_min(pvalues):
    """p-value of "at least one of these holds": min(1, k * min p) over k
    p-values (Bonferroni; Holm's first step). NaN if any is NaN."""
    import numpy as np

    p = np.asarray(pvalues, float).ravel()
    if p.size == 0 or not np.all(np.isfinite(p)):
        return float("nan")
    return float(min(1.0, p.size * p.min()))


def equivalent(ci, target, margin):
    """Equivalence rule: the whole confidence interval ``ci`` = (lo, hi) lies
    within [target - margin, target + margin] (a wide interval from too little
    data fails, unlike the rule "the interval contains the target")."""
    lo, hi = float(ci[0]), float(ci[1])
    return bool(math.isfinite(lo) and math.isfinite(hi)
                and target - margin <= lo and hi <= target + margin)


def fmt_p(p):
    """A p-value for the report ("p n/a" when missing values made it NaN)."""
    if p is None or not math.isfinite(p):
        return "p n/a (missing values)"
    return "p < 1e-10" if p < 1e-10 else f"p = {p:.2g}"


def markdown_table(header, rows):
    """A markdown table from a header and rows of cells (floats: 4 significant digits)."""
    def cell(v):
        if isinstance(v, float):
            return "n/a" if not math.isfinite(v) else f"{v:.4g}"
        return str(v).replace("|", "\\|")
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def section(name, claim, verdict, statistic, body):
    """A script's REPORT.md section: title, verdict line, then the body."""
    return f"## {name}\n\n{verdict_line(verdict, claim, statistic)}\n\n{body.strip()}\n"


def missing_note(missing):
    """The text added to a statistic when values the verdict relies on are missing."""
    return (f"{missing} value(s) the verdict relies on are missing (non-finite or undefined: "
            f"a diverged run?), so the claim was not measured in full: FAIL")


def result(name, claim, verdict, statistic, body, missing=0, **extra):
    """The dict ``run`` returns (protocol keys plus extras).

    ``missing``: how many values the verdict relies on are missing
    (:func:`n_missing`); any makes the verdict FAIL and is stated in the
    statistic and in the extra key ``n_missing``."""
    missing = int(missing)
    if missing:
        verdict = "FAIL"
        statistic = f"{statistic}; {missing_note(missing)}"
    return {"name": name, "claim": claim, "verdict": verdict, "statistic": statistic,
            "markdown": section(name, claim, verdict, statistic, body), "n_missing": missing,
            **extra}


def line_figure(path, x, series, xlabel, ylabel, title, hline=None, xlog=False, ax_extra=None,
                twin=None):
    """Error-bar lines, one per ``series`` entry ``label -> (mean, se)``; saved
    as a PNG. Returns [path], or [] without matplotlib.

    ``twin``: optional ``(ylabel, {label: (mean, se)})`` drawn on a right axis.
    """
    from .plotting import available, pyplot, save

    if not available():
        return []
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, (label, (mean, se)) in enumerate(series.items()):
        ax.errorbar(x, mean, yerr=se, marker="o", ms=4, capsize=3, label=label, color=f"C{i}")
    if hline is not None:
        ax.axhline(hline, color="0.5", lw=0.8, ls="--")
    if xlog:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    handles, labels = ax.get_legend_handles_labels()
    if twin is not None:
        ax2 = ax.twinx()
        n0 = len(series)
        for i, (label, (mean, se)) in enumerate(twin[1].items()):
            ax2.errorbar(x, mean, yerr=se, marker="s", ms=4, capsize=3, ls=":", label=label,
                         color=f"C{n0 + i}")
        ax2.set_ylabel(twin[0])
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    if ax_extra is not None:
        ax_extra(ax)
    ax.legend(handles, labels, fontsize=8)
    ax.grid(alpha=0.3)
    return [save(fig, path, dpi=100)]
