"""coefficients: the signal-learning and noise-memorisation coefficients step by step, the
exactness of the decomposition, and the stage-1 ratio (docs/model.md §4 and §7). The design is
:data:`PROTOCOL`; its three parts:

1. one small run, every GD step kept: the coefficients of every stage as
   ``coefficients_<stage>.csv``, a reference for other implementations of the framework;
2. the decomposition checks (reconstruction, projection, invariants) on every seed at the base
   transfer size, the verdict's first half;
3. the stage-1 ratio mean gamma / mean rho-bar against n|mu|^2/(sigma_p^2 d) over a grid of N
   and |mu|: the log-log slope's 95% t interval within 1 +- 0.05, the verdict's second half.
"""

import csv
import io
import json

import numpy as np
import scipy.stats

from ..config import Config
from ..decomposition import J, own_entries
from ..files import jsonable
from ..lab import figures as F
from ..lab import present as P
from ..lab import report as R
from ..lab import stats as S
from ..lab.claim import Figure, Outcome, Protocol, Size, Table
from ..transfer import STAGES, run_experiment
from . import _base as B

TOL = 1e-8
"""Largest relative discrepancy of the reconstruction and the projection against GD."""
RATIO_MARGIN = 0.05
"""Equivalence margin of the stage-1 slope (theory 1)."""
CHECKS = ("reconstruction", "projection", "invariants_applicable", "invariants_broken")
"""The per-seed numbers of the decomposition checks, per stage."""
STEP_FIELDS = ("steps", "gamma", "rho_bar", "rho_under")
STEP_HEADER = ["step", "j", "r", "i", "coefficient", "value"]
RATIO_HEADER = ["n", "mu_norm", "d", "theory_ratio", "measured_ratio", "measured_ratio_se"]

STEPS_RUN = dict(B.TRANSFER_BASE, d=150, m=3, n_up=30, n_down=8, u_norm=2.0, alpha=0.5)
STEPS_RUN.update(steps_up=80, steps_down=80, snapshots=81, flip_up=0.0, flip_down=0.1)
STEPS_RUN.update(n_test=5000, seed=20250926)
"""The step-by-step run (full size): every GD step a snapshot."""
RATIO_BASE = dict(d=800, m=10, n_down=1, v_up_norm=0.0, v_down_norm=0.0, sigma_p=1.0, flip=0.0)
RATIO_BASE.update(eta=0.1, sigma_0=0.01, steps_up=5, steps_down=0, snapshots=2, n_test=100)
RATIO_BASE.update(epsilon=0.0, weight_decay_up=0.0, layout="joint")
"""The stage-1 ratio's task (full size): one task, eta = 0.1, 5 GD steps."""


def _size(quick, seeds, ns, mus, steps_run=None, ratio=None):
    """A size: the step-by-step run, the checks' base regime and the stage-1 grid."""
    base, cells = {**RATIO_BASE, **(ratio or {})}, [(n, mu) for n in ns for mu in mus]
    grid = [Config.from_dict({**base, "n_up": n, "u_norm": mu}) for n, mu in cells]
    configs = {
        "steps_run": Config.from_dict({**STEPS_RUN, **(steps_run or {})}),
        "checks": B.transfer_base(quick, snapshots=21),
        "ratio": grid,
    }
    return Size(configs, seeds)


def _quick():
    """The CI size: fewer seeds, a smaller step-by-step run, a 2 x 2 grid at d = 200."""
    run = dict(d=60, n_up=12, n_down=6, steps_up=20, steps_down=20, snapshots=21, n_test=1000)
    return _size(True, 2, [10, 20], [1.0, 2.0], run, ratio=dict(d=200, m=4))


NOTE = (
    "over these 5 steps the loss derivative is still about -1/2 for every sample, so the "
    "recursions of docs/model.md § 4 make gamma grow by about eta |mu|^2/(2m) and rho-bar by "
    "about eta sigma_p^2 d/(2 n m) per step (times the fraction of active ReLUs): the ratio "
    "n|mu|^2/(sigma_p^2 d) follows almost algebraically. This part checks that the implemented "
    "recursions scale right; it is not independent evidence for the theory's long-run dynamics."
)
"""Why the stage-1 ratio is near-algebraic (docs/model.md §4)."""


PROTOCOL = Protocol(
    name="coefficients",
    claim=(
        "the tracked coefficients reproduce GD exactly, obey the section-4 invariants, and "
        "gamma / rho-bar in stage 1 scales as n|mu|^2/(sigma_p^2 d) (log-log slope within "
        "1 +- 0.05, whole 95% CI)"
    ),
    source="framework",
    full=_size(False, 10, [20, 40, 80, 160], [0.5, 1.0, 2.0, 4.0]),
    quick=_quick(),
    statistic=(
        "largest relative discrepancy of the reconstruction and of the projection "
        "against GD, invariant counts, per stage and seed; least-squares slope of "
        "log(mean gamma / mean rho-bar) on log(n|mu|^2/(sigma_p^2 d)) over every "
        "seed, with its 95% t interval"
    ),
    pass_rule=(
        f"every discrepancy <= {TOL:g} and no invariant broken on every seed and "
        f"stage; the whole slope interval within 1 +- {RATIO_MARGIN:g}; no missing value"
    ),
    fixed="2026-11-28 (before the first full report; unchanged since)",
    salt="coefficients",
    pairing="none: the three parts have their own configs and seeds",
    rules={
        "tolerance": f"relative discrepancy <= {TOL:g} (reconstruction and projection)",
        "invariants": "lambda = 0: rho-bar >= 0 nondecreasing, rho-underline <= 0 "
        "nonincreasing; with clean labels, gamma nondecreasing (docs/model.md §4)",
        "equivalence": f"the whole 95% t interval of the slope within 1 +- {RATIO_MARGIN:g}",
    },
    notes={
        "step-by-step run": "not in the verdict: every GD step of one run, written as "
        "coefficients_<stage>.csv, a reference for other implementations",
        "near-algebraic ratio": NOTE,
        "disclosures": "none: the protocol has not changed since it was fixed",
    },
    hash_scheme1="83bc7f45597d",
)


def _step_run(config):
    """The step-by-step run: per stage the snapshot steps, the coefficients, the
    training labels and the test error."""
    exp = run_experiment(config)
    out = {s: {k: getattr(exp.stages[s], k) for k in STEP_FIELDS} for s in STAGES}
    for s in STAGES:
        out[s].update(y=np.asarray(exp.stages[s].task.y), test_error=exp.test_error(s))
    return out


def measure(size, sweep):
    """``{"steps": {stage: arrays}, "checks": {stage: {check: (seeds,), "broken":
    [names per seed]}}, "ratio": {"gamma", "rho": (cells, seeds)}}``."""
    metrics = [f"{s}_{k}" for s in STAGES for k in CHECKS] + [f"{s}_broken" for s in STAGES]
    chk = sweep([size.configs["checks"]], label="checks", measure="checks", metrics=metrics)
    checks = {s: {k: chk.values(f"{s}_{k}") for k in CHECKS} for s in STAGES}
    for s in STAGES:
        checks[s]["broken"] = [r[f"{s}_broken"] for r in chk.results[0]]
    single = dict(measure="single", metrics=("gamma_mean", "rho_mean"))
    rs = sweep(size.configs["ratio"], label="stage-1 ratio", **single)
    ratio = {"gamma": rs.values("gamma_mean"), "rho": rs.values("rho_mean")}
    return {"steps": _step_run(size.configs["steps_run"]), "checks": checks, "ratio": ratio}


def theory_ratio(grid):
    """n|mu|^2/(sigma_p^2 d) per config (docs/model.md §7)."""
    return np.array([c.n_up * c.u_norm**2 / (c.sigma_p_up**2 * c.d) for c in grid])


def _worst(checks):
    """Per stage: the largest discrepancies, the summed invariant counts and the
    names of the invariants that broke on some seed."""
    return {
        s: {
            "reconstruction": float(np.max(c["reconstruction"])),
            "projection": float(np.max(c["projection"])),
            "invariants_applicable": int(np.nan_to_num(c["invariants_applicable"]).sum()),
            "invariants_broken": int(np.nan_to_num(c["invariants_broken"]).sum()),
            "broken": sorted({b for b in c["broken"] if b}),
        }
        for s, c in checks.items()
    }


def _slope(theory, gamma, rho):
    """Least-squares slope of log(gamma / rho) on log(theory) over every seed
    (non-finite or non-positive ratios left out and counted), its 95% t interval."""
    reps = np.shape(gamma)[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        measured = np.asarray(gamma) / np.asarray(rho)  # (cells, reps)
        y_all = np.log(measured.ravel())
    x_all = np.log(np.repeat(theory, reps))
    finite = np.isfinite(y_all)
    x, y = x_all[finite], y_all[finite]
    fit = scipy.stats.linregress(x, y)
    tq = scipy.stats.t.ppf(0.975, len(x) - 2)
    ci = (fit.slope - tq * fit.stderr, fit.slope + tq * fit.stderr)
    summary = {"slope": fit.slope, "intercept": fit.intercept, "stderr": fit.stderr}
    summary.update(r=fit.rvalue, n_points=len(x))
    return measured, int(np.sum(~finite)), summary, ci


def decide(size, m):
    """The verdict (pure): PASS when every check holds on every seed and stage
    (a missing check value fails them) and the whole 95% t interval of the
    stage-1 slope lies within 1 +- RATIO_MARGIN; a missing or non-positive ratio
    is left out of the fit and counted in ``missing``. Also ``worst`` (per
    stage), ``ratio`` (gamma / rho), ``fit``, ``ci``, ``ok_exact``, ``ok_ratio``."""
    checks = m["checks"]
    missing_checks = S.n_missing(*[np.asarray(checks[s][k]) for s in checks for k in CHECKS])
    worst = _worst(checks)
    ok_exact = missing_checks == 0 and all(
        w["reconstruction"] <= TOL and w["projection"] <= TOL and w["invariants_broken"] == 0
        for w in worst.values()
    )
    theory = theory_ratio(size.configs["ratio"])
    measured, missing_ratio, fit, ci = _slope(theory, m["ratio"]["gamma"], m["ratio"]["rho"])
    ok_ratio = S.equivalent(ci, 1.0, RATIO_MARGIN)  # whole CI within 1 +- margin
    missing = missing_checks + missing_ratio
    tests = "PASS" if ok_exact and ok_ratio else "FAIL"
    dec = dict(verdict="FAIL" if missing else tests, verdict_tests=tests, missing=missing)
    dec.update(missing_checks=missing_checks, missing_ratio=missing_ratio, worst=worst)
    dec.update(ok_exact=ok_exact, ratio=measured, fit=fit, ci=ci, ok_ratio=ok_ratio)
    return dec


def _step_csv(st):
    """``coefficients_<stage>.csv`` of one stage, a row per snapshot, class j, filter r and
    coefficient entry, as text written as the lab writes CSVs (floats by repr, non-finite ones
    empty): an attachment, too large for the JSON's tables."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(STEP_HEADER)
    for k, step in enumerate(st["steps"]):
        for jj, j in enumerate(J.astype(int)):  # j = +1, -1: axis 0 of W
            for r in range(st["gamma"].shape[2]):
                for name in STEP_FIELDS[1:]:  # gamma per signal s, rho per sample i
                    values = [float(v) if np.isfinite(v) else "" for v in st[name][k, jj, r]]
                    w.writerows([int(step), int(j), r, i, name, v] for i, v in enumerate(values))
    return buf.getvalue()


def _attachments(size, steps):
    """``coefficients_<stage>.csv`` per stage and ``coefficients_config.json``."""
    out = {f"coefficients_{s}.csv": _step_csv(steps[s]) for s in STAGES}
    config = {
        "config": size.configs["steps_run"].to_dict(),
        "note": "the run behind coefficients_<stage>.csv; "
        "every GD step is a row group; j = +1/-1 is axis 0 of W (docs/model.md § 1)",
        "test_error": {s: steps[s]["test_error"] for s in STAGES},
    }
    text = json.dumps(jsonable(config), indent=2, sort_keys=True, allow_nan=False)
    return {**out, "coefficients_config.json": text + "\n"}


def _draw_steps(path, steps):
    """Mean and max gamma, mean and max rho-bar (entries y_i = j) and min
    rho-underline over the GD steps, one panel per stage."""
    panels = []
    for s in STAGES:
        st = steps[s]
        t = st["steps"]
        g = st["gamma"].sum(axis=-1).reshape(len(t), -1)  # (K, 2 m)
        rb = np.where(own_entries(st["y"]), st["rho_bar"], np.nan).reshape(len(t), -1)
        curves = [F.Curve(g.mean(axis=1), "mean gamma", "C0-")]
        curves += [F.Curve(g.max(axis=1), "max gamma", "C0:")]
        curves += [F.Curve(np.nanmean(rb, axis=1), "mean rho-bar (y_i = j)", "C1-")]
        curves += [F.Curve(np.nanmax(rb, axis=1), "max rho-bar", "C1:")]
        rho_under = st["rho_under"].reshape(len(t), -1).min(axis=1)
        curves += [F.Curve(rho_under, "min rho-under", "C2:")]
        panels.append(F.Panel(curves, f"stage {s}", "GD step", x=t, legend=None, title_size=10))
    panels[0].ylabel, panels[0].legend = "coefficient", {"fontsize": 7}
    F.panels_figure(path, panels, figsize=(12, 3.6), dpi=90)


def _draw_ratio(path, theory, dec, reps):
    """The measured stage-1 ratio against the theory's, with the fitted line."""
    measured, fit, ci = dec["ratio"], dec["fit"], dec["ci"]
    fig, ax = F.subplots(figsize=(5.6, 4.4))
    style = dict(fmt="o", ms=4, capsize=3, label=f"measured ({reps} seeds)")
    ax.errorbar(theory, measured.mean(axis=1), yerr=S.sem(measured, axis=1), **style)
    tt = np.geomspace(theory.min(), theory.max(), 50)
    label = f"fit: slope {fit['slope']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"
    ax.plot(tt, np.exp(fit["intercept"]) * tt ** fit["slope"], "C1-", label=label)
    ax.plot(tt, tt, "k--", lw=0.8, label="ratio = n|mu|^2/(sigma_p^2 d)")
    ylabel = "mean gamma / mean rho-bar (stage 1)"
    ax.set(xscale="log", yscale="log", xlabel="n |mu|^2 / (sigma_p^2 d)", ylabel=ylabel)
    ax.set_title("stage-1 ratio of signal learning to noise memorisation", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    F.save(fig, path, dpi=100)


def _statistic(dec):
    worst, fit, ci = dec["worst"].values(), dec["fit"], dec["ci"]
    rec = max(w["reconstruction"] for w in worst)
    proj = max(w["projection"] for w in worst)
    return (
        f"max relative discrepancy: reconstruction {rec:.1e}, projection {proj:.1e} "
        f"(tolerance {TOL:g}); invariants broken: "
        f"{sum(w['invariants_broken'] for w in worst)}; stage-1 slope of "
        f"log(gamma/rho-bar) on log(n|mu|^2/(sigma_p^2 d)) = {fit['slope']:.3f}, 95% CI "
        f"[{ci[0]:.3f}, {ci[1]:.3f}] (theory 1 ± {RATIO_MARGIN:g}; near-algebraic over 5 steps)"
    )


SIZES = ("d", "m", "n_up", "n_down")


def _checks_table(size, dec):
    c = size.configs["checks"]
    title = (
        f"Decomposition checks over {size.seeds} seeds at {P.regime(c, SIZES)}, {c.snapshots} "
        f"snapshots per stage ({P.holds(dec['ok_exact'], 'all hold', 'NOT all hold')}):"
    )
    header = ["stage", "max reconstruction", "max projection", "invariant checks", "broken"]
    rows = [
        [s, f"{w['reconstruction']:.1e}", f"{w['projection']:.1e}"]
        + [str(w["invariants_applicable"])]
        + [str(w["invariants_broken"]) + (f" ({', '.join(w['broken'])})" if w["broken"] else "")]
        for s, w in dec["worst"].items()
    ]
    return Table(header, rows, title=title)


def _ratio_rows(size, dec):
    """Per cell of the stage-1 grid: n, |mu|, d, the theory's ratio, the
    measured mean and its standard error."""
    grid, measured = size.configs["ratio"], dec["ratio"]
    theory = theory_ratio(grid)
    return [
        [c.n_up, c.u_norm, c.d, th, measured[i].mean(), S.sem(measured[i])]
        for i, (c, th) in enumerate(zip(grid, theory, strict=True))
    ]


def _ratio_tables(size, dec, rows):
    c, fit = size.configs["ratio"][0], dec["fit"]
    lies = P.holds(dec["ok_ratio"], "lies", "does NOT lie")
    title = (
        f"Stage-1 ratio (eta = {c.eta:g}, {c.steps_up} steps, d = {c.d}, m = {c.m}; "
        f"{size.seeds} seeds per cell; intercept exp({fit['intercept']:.3f}) = "
        f"{np.exp(fit['intercept']):.3f}; the whole slope CI {lies} within 1 ± "
        f"{RATIO_MARGIN:g}, the equivalence rule):"
    )
    header = ["n", "|mu|", "n|mu|^2/(sigma_p^2 d)", "measured gamma/rho-bar"]
    shown = [[str(r[0]), f"{r[1]:g}", r[3], R.fmt_mean_se(r[4], r[5], 3)] for r in rows]
    csv_table = Table(RATIO_HEADER, rows, "stage1_ratio", show=False)
    return [Table(header, shown, title=title), csv_table]


def present(size, m, dec):
    c, rows = size.configs["steps_run"], _ratio_rows(size, dec)
    files = ", ".join(f"`{PROTOCOL.name}/coefficients_{s}.csv`" for s in STAGES)
    steps = (
        f"Step-by-step coefficients (every GD step; {P.regime(c, SIZES)}, {c.steps_up} steps per "
        f"stage, seed {c.seed}): {files} (columns step, j, r, i, coefficient, value)."
    )
    theory = theory_ratio(size.configs["ratio"])
    sections = [
        steps,
        _checks_table(size, dec),
        *_ratio_tables(size, dec, rows),
        "Note: " + NOTE,
        Figure("coefficients_steps", lambda path: _draw_steps(path, m["steps"])),
        Figure("stage1_ratio", lambda path: _draw_ratio(path, theory, dec, size.seeds)),
    ]
    data = dict(replicates=size.seeds, tolerance=TOL, ratio_margin=RATIO_MARGIN)
    data.update(checks_config=size.configs["checks"].to_dict())
    data.update(stage1_config=size.configs["ratio"][0].to_dict())
    data.update(step_files={s: f"coefficients_{s}.csv" for s in STAGES})
    return Outcome(_statistic(dec), sections, data, _attachments(size, m["steps"]))
