"""What the transfer claims share: the base regime (every field set
explicitly: the package defaults may change, full size and CI size), the
failure threshold, the two stopping rules (fixed step count and equal training
loss) and the per-point outcome summaries (mean, median, failure rate and
stalled runs side by side)."""

from __future__ import annotations

import math

import numpy as np

from ..config import Config
from ..lab import figures as F
from ..lab import report as R
from ..lab import stats as S
from ..lab.claim import Figure, Table
from ..lab.measures import measure_transfer
from ..lab.sweep import run_sweep

__all__ = [
    "TRANSFER_BASE",
    "TRANSFER_QUICK",
    "transfer_base",
    "ENGINE",
    "FAILURE_ERROR",
    "EPSILON",
    "LOSS_CAP",
    "QUICK_LOSS_CAP",
    "RULES",
    "STOP_FIELDS",
    "RUN_METRICS",
    "stopping_rules",
    "rule_label",
    "sweep_rules",
    "stalled",
    "point_summary",
    "outcome_cells",
    "OUTCOME_HEADER",
    "STALL_HEADER",
    "summary_rows",
    "gain_rises",
]

TRANSFER_BASE = dict(
    d=600,
    m=10,
    m_down=None,
    n_up=200,
    n_down=10,
    u_norm=2.0,
    v_up_norm=1.0,
    v_down_norm=1.0,
    v_cos=0.0,
    sigma_p_up=1.0,
    sigma_p_down=1.0,
    flip_up=0.0,
    flip_down=0.1,
    layout="joint",
    eta=1.0,
    sigma_0=0.01,
    weight_decay_up=0.0,
    weight_decay=0.0,
    steps_up=200,
    steps_down=200,
    epsilon=0.0,
    snapshots=2,
    alpha=0.5,
    granularity="filter",
    freeze_inherited=False,
    rescale_inherited=1.0,
    n_test=10000,
    estimator="reduced",
    seed=0,
)
"""The full-size transfer regime."""

TRANSFER_QUICK = dict(
    TRANSFER_BASE, d=120, m=4, n_up=40, n_down=8, steps_up=60, steps_down=60, n_test=2000
)
"""The CI-size version of :data:`TRANSFER_BASE`."""


ENGINE = "auto"
"""The GD engine of the transfer claims whose protocols were fixed on
2026-11-29 (version 2): the Gram-space engine where it is cheaper
(docs/model.md §9), as in those protocols' first full runs. The claims fixed
earlier keep the weight-space reference, the package default, with which
their committed results were computed: the engines agree to rounding per
step, but in chaotic runs (eta = 1, activation patterns switching) such
differences can grow into different test errors."""


def transfer_base(quick, **changes):
    """The base transfer :class:`~refimpl.config.Config` (full or quick size)."""
    return Config.from_dict({**(TRANSFER_QUICK if quick else TRANSFER_BASE), **changes})


FAILURE_ERROR = 0.2
"""A run *fails* when its clean test error exceeds this (the level between the
typical error of a successful run and the catastrophic runs near 0.26 seen in
gain_alpha's noisy regime)."""
EPSILON = 1e-3
"""The training-loss target of the equal-loss comparison."""
LOSS_CAP = 2000
"""The step cap of fine-tuning and scratch under the loss target (10 x T)."""
QUICK_LOSS_CAP = 600
RULES = ("steps", "loss")
"""The two stopping rules: ``steps``, the fixed step count T of the regime;
``loss``, fine-tuning and scratch each until the training loss is <= EPSILON
(cap LOSS_CAP; the upstream stage keeps its cap T_1, stopping earlier only
if its loss reaches EPSILON)."""
STOP_FIELDS = ("epsilon", "steps_down")
"""The config fields of the stopping rule: common random numbers across them,
so the loss-target run is the fixed-step run stopped by another rule."""
RUN_METRICS = (
    "gain",
    "err_transfer",
    "err_scratch",
    "loss_down",
    "loss_scratch",
    "steps_down",
    "steps_scratch",
    "loss_up",
    "steps_up",
)


def stopping_rules(quick):
    """Config changes of each rule of :data:`RULES` (full or quick size)."""
    return {
        "steps": {},
        "loss": {"epsilon": EPSILON, "steps_down": QUICK_LOSS_CAP if quick else LOSS_CAP},
    }


def rule_label(rule, quick, steps):
    """The stopping rule in words (``steps``: the regime's T)."""
    if rule == "steps":
        return f"fixed T = {steps} steps"
    cap = QUICK_LOSS_CAP if quick else LOSS_CAP
    return f"equal loss (training loss <= {EPSILON:g}, cap {cap} steps)"


def sweep_rules(
    out, grid, quick, reps, jobs, label, salt, common=(), metrics=RUN_METRICS, measure="transfer"
):
    """Run ``grid`` under both stopping rules in one sweep; returns
    ``{rule: {metric: array (points, reps)}}``. ``common``: fields of the
    grid with common random numbers (a paired design); the stopping-rule
    fields are always common, so a loss-target run is its fixed-step run
    stopped by the other rule."""
    rules = stopping_rules(quick)
    configs = [c.replace(**rules[r]) for r in RULES for c in grid]
    sw = run_sweep(
        configs,
        measure=measure,
        replicates=reps,
        jobs=jobs,
        cache=R.cache_dir(out),
        label=label,
        salt=salt,
        common=tuple(common) + STOP_FIELDS,
        metrics=metrics,
    )
    k = len(grid)
    return {r: {m: sw.values(m)[i * k : (i + 1) * k] for m in metrics} for i, r in enumerate(RULES)}


def stalled(loss, epsilon):
    """1 where a run under a loss target ``epsilon`` ended above it (the cap
    was reached first), 0 where it reached it, NaN where the loss is missing."""
    loss = np.asarray(loss, float)
    return np.where(np.isfinite(loss), (loss > epsilon).astype(float), np.nan)


def point_summary(et, es, loss_t=None, loss_s=None, epsilon=None, failure=FAILURE_ERROR):
    """Per point (row) of err_transfer ``et`` and err_scratch ``es``
    (points, seeds): the gain's mean, se and median, both errors' mean,
    median and failure rate (:func:`refimpl.lab.stats.outcome_summary`), the
    one-sided Wilcoxon p of gain > 0, and with a loss target the count of
    stalled runs of each (:func:`stalled`)."""
    et, es = np.asarray(et, float), np.asarray(es, float)
    gain = es - et
    st, ss = S.outcome_summary(et, failure), S.outcome_summary(es, failure)
    out = {
        "gain_mean": S.outcome_summary(gain, np.inf)["mean"],
        "gain_se": S.sem(gain, axis=1),
        "gain_median": S.outcome_summary(gain, np.inf)["median"],
        "p_gain_wilcoxon": np.array([S.wilcoxon(es[i], et[i])["p"] for i in range(len(et))]),
    }
    for name, s in (("transfer", st), ("scratch", ss)):
        out.update(
            {
                f"err_{name}_mean": s["mean"],
                f"err_{name}_median": s["median"],
                f"fail_{name}": s["failure_rate"],
            }
        )
    if epsilon is not None:
        out["stalled_transfer"] = np.nansum(stalled(loss_t, epsilon), axis=1)
        out["stalled_scratch"] = np.nansum(stalled(loss_s, epsilon), axis=1)
    return out


def outcome_cells(s, i, reps):
    """Markdown cells of point ``i`` of :func:`point_summary`: gain (mean ±
    se, median), err_transfer and err_scratch (mean / median / failure rate),
    Wilcoxon p, and stalled runs when counted."""

    def err(name):
        return (
            f"{s[f'err_{name}_mean'][i]:.3f} / {s[f'err_{name}_median'][i]:.3f} / "
            f"{100 * s[f'fail_{name}'][i]:.0f}%"
        )

    cells = [
        R.fmt_mean_se(s["gain_mean"][i], s["gain_se"][i], 3),
        f"{s['gain_median'][i]:+.3f}",
        err("transfer"),
        err("scratch"),
        _p(s["p_gain_wilcoxon"][i]),
    ]
    if "stalled_transfer" in s:
        cells.append(f"{int(s['stalled_transfer'][i])} / {int(s['stalled_scratch'][i])} of {reps}")
    return cells


OUTCOME_HEADER = [
    "gain (mean ± se)",
    "gain (median)",
    "err_transfer (mean / median / fail)",
    "err_scratch (mean / median / fail)",
    "Wilcoxon p(gain > 0)",
]
STALL_HEADER = "stalled (transfer / scratch)"


def _p(p):
    return "n/a" if p is None or not math.isfinite(p) else f"{p:.2g}"


def summary_rows(s, keys=None):
    """Per point dicts of :func:`point_summary` (for CSV and JSON)."""
    keys = list(s) if keys is None else keys
    n = len(s["gain_mean"])
    return [{k: s[k][i] for k in keys} for i in range(n)]


# ----------------------------------------------------------------------
# one equal-loss mechanism, for every claim


def measure_at_loss(config, epsilon=EPSILON, cap=LOSS_CAP, **options):
    """:func:`refimpl.lab.measures.measure_transfer` of ``config`` with
    fine-tuning and scratch trained to the training loss ``epsilon`` (cap
    ``cap`` steps; the upstream stage keeps its own cap and stops earlier
    only if its loss reaches ``epsilon``): the equal-loss variant of a
    fixed-step sweep item. The seed is that of ``config``, so a sweep over
    the same configs pairs the two stopping rules seed by seed. Adds
    ``stalled_transfer`` / ``stalled_scratch`` (1 when the final training loss
    is above epsilon: not reached at the cap) and ``up_stopped_early`` (1 when
    the upstream stage stopped before its own cap)."""
    c = config.replace(epsilon=float(epsilon), steps_down=int(cap))
    out = measure_transfer(c, **options)
    out["stalled_transfer"] = float(out["loss_down"] > epsilon)
    out["stalled_scratch"] = float(out["loss_scratch"] > epsilon)
    out["up_stopped_early"] = float(out["steps_up"] < c.steps_up)
    return out


def sweep_stopping(sweep, grid, epsilon, cap, metrics=RUN_METRICS, label="", **kwargs):
    """``grid`` under both stopping rules of :data:`RULES`, the same seeds
    for both: ``{rule: {metric: array (points, seeds)}}``. ``steps``: the
    fixed step count of each config; ``loss``: :func:`measure_at_loss` with
    ``epsilon`` and ``cap``. ``sweep``: the claim's
    :class:`~refimpl.lab.claim.ClaimSweep` (further keywords go to it)."""
    fixed = sweep(grid, label=label, metrics=metrics, **kwargs)
    options = {**kwargs.pop("options", {}), "epsilon": epsilon, "cap": cap}
    loss = sweep(
        grid,
        label=f"{label} (equal loss)".strip(),
        measure=measure_at_loss,
        options=options,
        metrics=metrics,
        **kwargs,
    )
    return {"steps": _values(fixed, metrics), "loss": _values(loss, metrics)}


def _values(sw, metrics):
    return {m: sw.values(m) for m in metrics}


def stop_label(rule, epsilon, cap, steps):
    """The stopping rule in words (``steps``: the regime's T)."""
    if rule == "steps":
        return f"fixed T = {steps} steps"
    return f"equal loss (training loss <= {epsilon:g}, cap {cap} steps)"


def as_float(values):
    """A float array of ``values`` (nested sequences; None: NaN)."""
    if isinstance(values, np.ndarray):
        return values.astype(float)
    return np.array(
        [
            as_float(v) if isinstance(v, (list, tuple)) else (np.nan if v is None else v)
            for v in values
        ],
        float,
    )


# ----------------------------------------------------------------------
# one procedure for the trend claims: the gain along one or more panels of
# configs, a one-sided Page trend test under both stopping rules


def trend_measure(size, sweep, common, metrics=RUN_METRICS):
    """Every panel of ``size.configs`` under both stopping rules (equal-loss
    target :data:`EPSILON`, cap ``size.loss_cap``): ``{panel: {rule: {metric:
    (points, seeds)}}}``. ``common``: panel -> its fields with common random
    numbers (the stopping-rule fields are always common)."""
    return {
        panel: sweep_stopping(
            sweep, grid, EPSILON, size.loss_cap, metrics, panel, common=common[panel] + STOP_FIELDS
        )
        for panel, grid in size.configs.items()
    }


def trend_decision(x, gains, alternative):
    """The verdict "the gain moves with x in the predicted direction" (pure).

    Parameters
    ----------
    x : mapping panel -> sequence of float, shape (k,)
        The swept values of each panel (k >= 3 distinct).
    gains : mapping panel -> mapping rule -> array of shape (k, seeds)
        err_scratch - err_transfer per point and seed under each stopping
        rule (NaN or None: missing).
    alternative : {"greater", "less"}
        The predicted direction: the gain increases or decreases with x.

    Returns
    -------
    dict
        ``verdict`` ("PASS" when in every panel under every rule the
        one-sided Page trend test has rho of the predicted sign and p <
        SIGNIFICANCE, and no value is missing; else "FAIL"), ``verdict_tests``
        (the same without the missing-value rule), ``trend`` (panel -> rule ->
        :func:`refimpl.lab.stats.trend`), ``holds`` (panel -> rule -> bool)
        and ``missing`` (missing gain values, all panels and rules).
    """
    sign = 1.0 if alternative == "greater" else -1.0
    trend, holds, missing = {}, {}, 0
    for panel, by_rule in gains.items():
        trend[panel], holds[panel] = {}, {}
        for rule, g in by_rule.items():
            g = as_float(g)
            tr = S.trend(x[panel], g, alternative)
            trend[panel][rule] = tr
            holds[panel][rule] = bool(sign * tr["rho"] > 0 and tr["p"] < S.SIGNIFICANCE)
            missing += S.n_missing(g)
    ok = [h for by_rule in holds.values() for h in by_rule.values()]
    tests = "PASS" if ok and all(ok) else "FAIL"
    verdict = "FAIL" if missing else tests
    return {
        "verdict": verdict,
        "verdict_tests": tests,
        "trend": trend,
        "holds": holds,
        "missing": missing,
    }


def trend_summaries(vals):
    """:func:`point_summary` of every panel and rule of :func:`trend_measure`'s values."""
    return {
        panel: {
            r: point_summary(
                v[r]["err_transfer"],
                v[r]["err_scratch"],
                v[r]["loss_down"],
                v[r]["loss_scratch"],
                EPSILON if r == "loss" else None,
            )
            for r in RULES
        }
        for panel, v in vals.items()
    }


def trend_statistic(x, symbol, summ, dec, labels, tail):
    """The statistic line of a trend claim: per panel and rule the trend and
    the median gain at both ends (and the stalled runs at equal loss)."""

    def one(panel, r):
        s, xs = summ[panel][r], x[panel]
        text = (
            f"{labels[r]}: {R.fmt_trend(dec['trend'][panel][r])} (median gain "
            f"{s['gain_median'][0]:+.3f} at {symbol[panel]} = {xs[0]:g} to "
            f"{s['gain_median'][-1]:+.3f} at {symbol[panel]} = {xs[-1]:g}"
        )
        if r == "loss":
            text += (
                f"; stalled {int(s['stalled_transfer'].sum())} transfer / "
                f"{int(s['stalled_scratch'].sum())} scratch runs"
            )
        return text + ")"

    lead = len(summ) > 1
    sep = ", " if lead else "; "
    parts = [
        (f"against {symbol[p]}: " if lead else "") + sep.join(one(p, r) for r in RULES)
        for p in summ
    ]
    return "; ".join(parts) + f"; {tail}"


def trend_tables(x, names, summ, dec, labels, reps, columns):
    """The report's tables of a trend claim, one per panel and rule: the
    outcome cells of every point, after the claim's own ``columns`` (panel ->
    (header, cells per point))."""
    tables = []
    for panel in summ:
        head, cells = columns[panel]
        for r in RULES:
            stall = [STALL_HEADER] if r == "loss" else []
            rows = [cells[i] + outcome_cells(summ[panel][r], i, reps) for i in range(len(x[panel]))]
            title = (
                f"**Gain against {names[panel]}, {labels[r]}**: "
                f"{R.fmt_trend(dec['trend'][panel][r])}"
            )
            tables.append(Table(head + OUTCOME_HEADER + stall, rows, title=title))
    return tables


def trend_csv(name, x, summ, point_columns):
    """The CSV of a trend claim: per panel, rule and point the summary of
    :func:`point_summary` after the claim's ``point_columns`` (panel ->
    {column: value per point})."""
    keys = list(next(iter(summ.values()))["loss"])
    extra = list(next(iter(point_columns.values())))
    header = ["panel", "rule", "value", *extra, *keys]
    rows = [
        [
            panel,
            r,
            v,
            *(point_columns[panel][c][i] for c in extra),
            *(summ[panel][r].get(k, [None] * len(x[panel]))[i] for k in keys),
        ]
        for panel in summ
        for r in RULES
        for i, v in enumerate(x[panel])
    ]
    return Table(header, rows, name=name, show=False)


def line_figure(name, *args, **kwargs):
    """A :class:`~refimpl.lab.claim.Figure` of :func:`refimpl.lab.figures.line_figure`."""
    return Figure(name, lambda path: F.line_figure(path, *args, **kwargs))


def trend_figure(name, xs, names, summ, vals, title, extra=None, xlog=False):
    """The figure of one panel: the gain's mean and median under both rules
    and the scratch error (and ``extra`` series: label -> (mean, se))."""
    series = {f"gain, {r} rule (mean)": (summ[r]["gain_mean"], summ[r]["gain_se"]) for r in RULES}
    series.update(
        {f"gain, {r} rule (median)": (summ[r]["gain_median"], np.zeros(len(xs))) for r in RULES}
    )
    series["err_scratch (mean)"] = (
        summ["steps"]["err_scratch_mean"],
        S.sem(vals["steps"]["err_scratch"], axis=1),
    )
    series.update(extra or {})
    return line_figure(
        name, xs, series, names, "clean test error / gain", title, hline=0.0, xlog=xlog
    )


def gain_rises(x, gain):
    """The verdict "the gain grows with x" under every stopping rule (pure).

    Parameters
    ----------
    x : sequence of float, shape (k,)
        The swept values (k >= 3 distinct).
    gain : mapping rule -> array of shape (k, seeds)
        err_scratch - err_transfer per point and seed under each stopping
        rule (NaN or None: missing).

    Returns
    -------
    dict
        ``verdict`` ("PASS" when under every rule the one-sided Page trend
        test of an increase has rho > 0 and p < SIGNIFICANCE, and no value
        is missing; else "FAIL"), ``verdict_tests`` (the same without the
        missing-value rule), ``trend`` (rule -> :func:`refimpl.lab.stats.trend`),
        ``holds`` (rule -> bool) and ``missing`` (missing gain values, all rules).
    """
    trends, holds, missing = {}, {}, 0
    for rule, g in gain.items():
        g = np.array([[np.nan if v is None else v for v in row] for row in g], float)
        tr = S.trend(x, g, "greater")
        trends[rule] = tr
        holds[rule] = bool(tr["rho"] > 0 and tr["p"] < S.SIGNIFICANCE)
        missing += S.n_missing(g)
    tests = "PASS" if holds and all(holds.values()) else "FAIL"
    return {
        "verdict": "FAIL" if missing else tests,
        "verdict_tests": tests,
        "trend": trends,
        "holds": holds,
        "missing": missing,
    }


# ----------------------------------------------------------------------
# both stopping rules in one sweep (the claims whose item measure is not
# measure_transfer: measure="outcomes" and the like)


def sweep_rules_once(sweep, grid, cap, metrics=RUN_METRICS, label="", **kwargs):
    """``grid`` under both stopping rules of :data:`RULES` in ONE sweep of
    the claim's :class:`~refimpl.lab.claim.ClaimSweep` (further keywords,
    e.g. ``measure`` or ``common``, go to it): every config as it is
    (``steps``) and with the loss target :data:`EPSILON` and the step cap
    ``cap`` (``loss``). Returns ``{rule: {metric: array (points, seeds)}}``.
    With :data:`STOP_FIELDS` among the common fields the loss-target run is
    the fixed-step run stopped by the other rule (as in :func:`sweep_rules`)."""
    change = {"steps": {}, "loss": {"epsilon": EPSILON, "steps_down": int(cap)}}
    configs = [c.replace(**change[r]) for r in RULES for c in grid]
    sw = sweep(configs, label=label, metrics=metrics, **kwargs)
    k = len(grid)
    return {r: {m: sw.values(m)[i * k : (i + 1) * k] for m in metrics} for i, r in enumerate(RULES)}


# ----------------------------------------------------------------------
# one procedure for the lever claims (mitigation: the paper's levers,
# docs/model.md §8.1; mitigation_freezing: our hypothesis, §8.3): the
# negative transfer err_transfer - err_scratch under each lever, paired with
# the unmitigated baseline on the same seeds, at fixed steps and equal loss

LEVER_COMMON = ("alpha", "weight_decay", "freeze_inherited", "rescale_inherited")
"""The lever fields with common random numbers: every lever of a cell runs
on the baseline's seeds (data, upstream model, fresh filters, test draws)."""
LEVER_ERRORS = ("err_transfer", "err_scratch")
LEVER_AT_LOSS = LEVER_ERRORS + ("stalled_transfer", "stalled_scratch", "up_stopped_early")
LEVER_STATISTIC = (
    "negative transfer err_transfer - err_scratch per run; one-sided paired t of the "
    "baseline's amount > 0 and of each lever's reduction > 0, pooled over the cells of both "
    "regions and the seeds (fixed steps)"
)
LEVER_PAIRING = (
    "common random numbers across the levers (fields " + ", ".join(LEVER_COMMON) + "); the "
    "equal-loss runs reuse the fixed-step runs' seeds; cells have their own seeds"
)
LEVER_REPORTED = (
    "per-region tests, medians and Wilcoxon tests, the equal-loss variant with stalled runs "
    "per lever"
)
LEVERS_V1 = (
    "v1 (committed, 2026-11-28): FAIL, through freezing alone. Baseline negative "
    "transfer +0.0357 +- 0.0044 (p < 1e-10); reduction: smaller alpha (0.2) +0.0300 "
    "(p < 1e-10), weight decay 0.003 +0.0202 (p < 1e-10), 0.01 +0.0424 (p < 1e-10), "
    "freeze inherited -0.0357 (p = 1), rescale x0.3 +0.0442 (p < 1e-10); 24 seeds x 4 "
    "cells"
)
"""The committed first result of the lever design, when both claims were one."""


def lever_design_change():
    """The disclosed design change of the lever claims (before their first
    full report): alpha, the second region, the seeds."""
    from ..lab.claim import Disclosure

    return Disclosure(
        date="2026-11-28 (commits 3137473, 499e002, 0b2d229; before the first full report)",
        change="alpha 1.0 -> 0.8; a second region (benign) added at alpha 1.0, then moved to "
        "0.8; seeds 12 -> 24",
        reason="freezing at alpha = 1 leaves no filter to train (an a-priori reason); power",
        earlier="not committed; none of these changes flipped a lever's result (checked "
        "after the fact)",
    )


def lever_pass_rule(claimed):
    """The pass rule of a lever claim with the claimed lever groups ``claimed``."""
    groups = "; ".join(f"{c}: {', '.join(ns)}" for c, ns in claimed.items())
    return (
        f"baseline p < {S.SIGNIFICANCE} and every claimed lever group ({groups}) p < "
        f"{S.SIGNIFICANCE} (Bonferroni over a group's levers) with a positive mean reduction; "
        "no missing value"
    )


def lever_regions(quick):
    """The two negative-transfer regions: changes from the base regime
    (:func:`transfer_base`) and the |u| of their cells. ``hard``: the base at
    a weak or absent shared signal; ``benign``: N_2 = 40 (16 at CI size),
    |v_2| = 3, where scratch is nearly benign; both at alpha = 0.8, which
    leaves fresh filters to train when the inherited ones are frozen."""
    benign = {"alpha": 0.8, "n_down": 16 if quick else 40, "v_down_norm": 3.0}
    return {
        "hard": {"over": {"alpha": 0.8}, "u": [0.0, 0.25]},
        "benign": {"over": benign, "u": [0.0, 0.5]},
    }


def lever_size(quick, levers, claimed, seeds):
    """The :class:`~refimpl.lab.claim.Size` of a lever claim: per region the
    configs of every lever of ``levers`` (name -> config changes; the first:
    the unmitigated baseline) at every |u|, lever-major; values ``regions``,
    ``levers``, ``claimed`` (claim -> the levers that try it), ``base`` (the
    regime the regions change, :func:`transfer_base`), the equal-loss target
    ``epsilon`` 0.005 and step ``cap`` 2000."""
    from ..lab.claim import Size

    regions, configs = lever_regions(quick), {}
    for r, spec in regions.items():
        base = transfer_base(quick, **spec["over"])
        configs[r] = [base.replace(u_norm=u, **ch) for ch in levers.values() for u in spec["u"]]
    values = dict(regions=regions, levers=levers, claimed=claimed, epsilon=0.005, cap=2000)
    return Size(configs, seeds, base=transfer_base(quick).to_dict(), **values)


def lever_measure(size, sweep):
    """Every lever in every region at fixed steps and at equal training loss
    (:func:`measure_at_loss`, the same seeds): ``{"steps": {metric: (levers,
    cells, seeds)}, "loss": {...}}``, the cells region by region."""
    at_loss = dict(measure=measure_at_loss, options={"epsilon": size.epsilon, "cap": size.cap})
    got = {"steps": [], "loss": []}
    for r, grid in size.configs.items():
        shape = (len(size.levers), len(size.regions[r]["u"]), size.seeds)
        fixed = sweep(grid, label=r, metrics=LEVER_ERRORS)
        loss = sweep(grid, label=f"{r} (equal loss)", metrics=LEVER_AT_LOSS, **at_loss)
        got["steps"].append({k: fixed.values(k).reshape(shape) for k in LEVER_ERRORS})
        got["loss"].append({k: loss.values(k).reshape(shape) for k in LEVER_AT_LOSS})
    return {
        rule: {k: np.concatenate([p[k] for p in parts], axis=1) for k in parts[0]}
        for rule, parts in got.items()
    }


def lever_negative(v):
    """err_transfer - err_scratch of one stopping rule's measurements."""
    return as_float(v["err_transfer"]) - as_float(v["err_scratch"])


def lever_tests(levers, neg, claimed):
    """The verdict from the negative-transfer amounts under each lever (pure).

    Parameters
    ----------
    levers : sequence of str, length L
        The lever names; the first is the unmitigated baseline.
    neg : array of shape (L, cells, seeds)
        err_transfer - err_scratch (paired across levers; NaN: missing).
    claimed : dict
        Claim name -> the levers that try it (several: Bonferroni over them).

    Returns
    -------
    dict
        ``verdict`` ("PASS" when the baseline's one-sided paired t of mean > 0
        has p < SIGNIFICANCE and every claim holds: its Bonferroni p, min(1, k
        min p) over its k levers, < SIGNIFICANCE and some lever's mean
        reduction > 0; and no value is missing), ``verdict_tests`` (without
        the missing-value rule), ``tests`` (lever -> one-sided paired t of
        baseline > lever, pooled over cells and seeds), ``baseline``,
        ``claim_p``, ``per_claim`` and ``missing``.
    """
    levers = list(levers)
    flat = np.asarray(neg, float).reshape(len(levers), -1)
    tests = {n: S.paired_t(flat[0], flat[k], "greater") for k, n in enumerate(levers) if k}
    base_t = S.paired_t(flat[0], np.zeros_like(flat[0]), "greater")
    claim_p = {c: S.bonferroni_min([tests[n]["p"] for n in ns]) for c, ns in claimed.items()}
    per_claim = {
        c: bool(claim_p[c] < S.SIGNIFICANCE and max(tests[n]["mean"] for n in ns) > 0)
        for c, ns in claimed.items()
    }
    missing = S.n_missing(flat)
    verdict = "PASS" if all(per_claim.values()) and base_t["p"] < S.SIGNIFICANCE else "FAIL"
    return {
        "verdict": "FAIL" if missing else verdict,
        "verdict_tests": verdict,
        "tests": tests,
        "baseline": base_t,
        "claim_p": claim_p,
        "per_claim": per_claim,
        "missing": missing,
    }


def lever_decision(size, m):
    """The verdict of a lever claim (pure): :func:`lever_tests` at fixed
    steps; ``equal_loss``: the same rule at equal training loss (reported)."""
    names = list(size.levers)
    fixed = lever_tests(names, lever_negative(m["steps"]), size.claimed)
    return {**fixed, "equal_loss": lever_tests(names, lever_negative(m["loss"]), size.claimed)}


def lever_cells(size):
    """The cells as (region, |u|, alpha), region by region."""
    return [
        (r, c.u_norm, c.alpha)
        for r, grid in size.configs.items()
        for c in grid[: len(size.regions[r]["u"])]
    ]


def _lever_per_region(size, neg):
    """The paired tests of :func:`lever_tests` within each region (reported)."""
    names, out, off = list(size.levers), {}, 0
    for r, spec in size.regions.items():
        f = neg[:, off : off + len(spec["u"])].reshape(len(names), -1)
        off += len(spec["u"])
        out[r] = {"baseline": S.paired_t(f[0], np.zeros_like(f[0]), "greater")}
        out[r] |= {n: S.paired_t(f[0], f[k], "greater") for k, n in enumerate(names) if k}
    return out


def _lever_robust(names, neg):
    """Per lever: the median amount, and the one-sided Wilcoxon signed-rank
    test of the reduction (baseline > lever), pooled over cells and seeds."""
    flat = neg.reshape(len(names), -1)
    return {
        n: {
            "median": float(np.nanmedian(flat[k])),
            "wilcoxon": S.wilcoxon(flat[0], flat[k], "greater") if k else None,
        }
        for k, n in enumerate(names)
    }


def _lever_draw(path, neg, names, cells, title):
    """Bars of the mean amount (± se) per lever and cell."""
    fig, ax = F.subplots(figsize=(8, 4.4))
    w = 0.8 / len(cells)
    for c, (region, u, a) in enumerate(cells):
        ax.bar(
            np.arange(len(names)) + (c - (len(cells) - 1) / 2) * w,
            neg[:, c].mean(axis=1),
            w,
            yerr=S.sem(neg[:, c], axis=1),
            capsize=2,
            label=f"{region}: |u| = {u:g}, alpha = {a:g}",
            color=f"C{c}",
        )
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("err_transfer - err_scratch")
    ax.set_title(f"{title} (mean ± se, {neg.shape[2]} seeds)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    F.save(fig, path, dpi=100)


def _lever_row(k, n, neg, dec, robust, stalled):
    """One lever's cells of :func:`_lever_table`."""
    row = [n] + [R.fmt_mean_se(x.mean(), S.sem(x)) for x in neg[k]]
    row.append(f"{robust[n]['median']:+.4f}")
    if k:
        t = dec["tests"][n]
        row += [R.fmt_mean_se(t["mean"], t["se"]), R.fmt_p(t["p"])]
        row.append(R.fmt_p(robust[n]["wilcoxon"]["p"]))
    else:
        row += ["—", "—", "—"]
    if stalled is not None:
        st, ss = (int(np.nansum(s[k])) for s in stalled)
        row.append(f"{st} / {ss} of {stalled[0][k].size}")
    return row


def _lever_table(names, cells, neg, dec, robust, title, stalled=None):
    """Per lever: the mean amount per cell, the median, the pooled reduction
    with its t and Wilcoxon p (and the stalled runs at equal loss)."""
    header = ["lever", *[f"{r}, |u| = {u:g}" for r, u, _ in cells], "median amount"]
    header += ["reduction vs baseline (pooled)", "p (one-sided t)", "Wilcoxon p"]
    if stalled is not None:
        header.append("stalled transfer / scratch")
    rows = [_lever_row(k, n, neg, dec, robust, stalled) for k, n in enumerate(names)]
    return Table(header, rows, title=title)


def _lever_csv(name, names, cells, m):
    """Per stopping rule, lever and cell: the amount (mean, se, median), both
    errors (mean, se) and the stalled rates."""
    rows = []
    for variant, rule in (("fixed steps", "steps"), ("equal loss", "loss")):
        v = m[rule]
        et, es = as_float(v["err_transfer"]), as_float(v["err_scratch"])
        stalled = [as_float(v[s]) for s in LEVER_AT_LOSS[2:4] if s in v]
        for k, n in enumerate(names):
            for c, (region, u, _) in enumerate(cells):
                d = et[k, c] - es[k, c]
                row = [variant, n, region, u, d.mean(), S.sem(d), float(np.median(d))]
                row += [et[k, c].mean(), S.sem(et[k, c]), es[k, c].mean(), S.sem(es[k, c])]
                rows.append(row + ([s[k, c].mean() for s in stalled] or [0.0, 0.0]))
    header = ["variant", "lever", "region", "u_norm", "negative_transfer"]
    header += ["negative_transfer_se", "negative_transfer_median", "err_transfer"]
    header += ["err_transfer_se", "err_scratch", "err_scratch_se"]
    header += ["stalled_transfer_rate", "stalled_scratch_rate"]
    return Table(header, rows, name=name, show=False)


def _lever_stall_caveat(names, eq, share=0.1):
    """The levers whose runs stalled often at equal loss: for them the
    comparison is at the cap, not at equal training loss."""
    st, ss = as_float(eq["stalled_transfer"]), as_float(eq["stalled_scratch"])
    hit = [
        f"{n} ({int(np.nansum(st[k]))} transfer / {int(np.nansum(ss[k]))} scratch runs of "
        f"{st[k].size} stalled)"
        for k, n in enumerate(names)
        if max(np.nanmean(st[k]), np.nanmean(ss[k])) > share
    ]
    if not hit:
        return ""
    return (
        f" Caveat: where more than {100 * share:g}% of a lever's runs stall, its "
        "comparison is at the step cap, not at equal training loss: " + "; ".join(hit) + "."
    )


def _shrinks(dec):
    return ", ".join(
        f"{c}: {'shrinks it' if ok else 'does NOT shrink it'} ({R.fmt_p(dec['claim_p'][c])})"
        for c, ok in dec["per_claim"].items()
    )


def lever_statistic(size, dec, hypothesis=False):
    """The statistic line: the baseline's amount, each lever's reduction, the
    Bonferroni p of groups of several levers; for our hypothesis a FAIL says
    whether it was refuted or not tested (no negative transfer to shrink)."""
    base_t, tests = dec["baseline"], dec["tests"]
    cells = sum(len(s["u"]) for s in size.regions.values())
    text = (
        f"baseline negative transfer {base_t['mean']:+.4f} ± {base_t['se']:.4f} "
        f"({R.fmt_p(base_t['p'])}); reduction by lever: "
        + ", ".join(f"{n}: {t['mean']:+.4f} ({R.fmt_p(t['p'])})" for n, t in tests.items())
        + "".join(
            f"; {c} (Bonferroni x{len(ns)}): {R.fmt_p(dec['claim_p'][c])}"
            for c, ns in size.claimed.items()
            if len(ns) > 1
        )
        + f"; one-sided paired t over {size.seeds} seeds x {cells} cells, fixed steps"
    )
    if not hypothesis or dec["verdict_tests"] == "PASS":
        return text
    if base_t["p"] < S.SIGNIFICANCE:
        return "our hypothesis refuted: " + text
    return "our hypothesis not tested (no significant negative transfer at the baseline): " + text


def _lever_design(size, dec, hypothesis):
    """The report's first paragraph: regions, base regime, claimed levers."""
    b = size.configs["hard"][0]
    regions = "; ".join(
        f"`{r}`: " + ", ".join(f"{k} = {v:g}" for k, v in s["over"].items()) + f", |u| in {s['u']}"
        for r, s in size.regions.items()
    )
    source = (
        " Source: our hypothesis (docs/model.md §8.3): a FAIL refutes our hypothesis, not the "
        "paper."
    )
    return (
        f"Regions: {regions}; otherwise d = {b.d}, m = {b.m}, N_1 = {b.n_up}, sigma_p = "
        f"{b.sigma_p_up:g}, p_2 = {b.flip_down:g}, {b.steps_down} steps; all levers share "
        f"seeds. Claimed levers: {_shrinks(dec)} (level {S.SIGNIFICANCE}; a lever group tried "
        "at several levels counts if either lowers it, Bonferroni-corrected)."
        + (source if hypothesis else "")
    )


def _lever_equal_loss(size, names, m, dec):
    """The report's paragraph on the equal-loss variant (not in the verdict)."""
    eq = dec["equal_loss"]
    up_early = int(np.nansum(as_float(m["loss"]["up_stopped_early"])))
    return (
        "Equal training loss (reported, not in the verdict): the same seeds with fine-tuning "
        f"and scratch trained to the training loss {size.epsilon:g}, cap {size.cap} steps "
        f"(upstream runs stopped early by epsilon: {up_early}); a stalled run did not reach it. "
        f"Under the same rule: baseline {eq['baseline']['mean']:+.4f} "
        f"({R.fmt_p(eq['baseline']['p'])}); {_shrinks(eq)} — {eq['verdict']} at equal loss."
        + _lever_stall_caveat(names, m["loss"])
    )


def lever_present(name, size, m, dec, hypothesis=False):
    """The outcome of a lever claim ``name``: the statistic, the design, the
    lever tables at fixed steps (the verdict), per region and at equal loss,
    the CSV ``<name>.csv`` and the figures ``<name>.png`` and
    ``<name>_equal_loss.png``."""
    from ..lab.claim import Outcome

    names, cells = list(size.levers), lever_cells(size)
    neg = {rule: lever_negative(m[rule]) for rule in ("steps", "loss")}
    robust = {rule: _lever_robust(names, v) for rule, v in neg.items()}
    per_region = _lever_per_region(size, neg["steps"])
    eq = dec["equal_loss"]
    stalled = tuple(as_float(m["loss"][k]) for k in ("stalled_transfer", "stalled_scratch"))
    region_rows = [
        [n] + [f"{t[n]['mean']:+.4f} ({R.fmt_p(t[n]['p'])})" for t in per_region.values()]
        for n in names[1:]
    ]
    eq_title = f"the same at equal training loss {size.epsilon:g} (cap {size.cap} steps)"
    sections = [
        _lever_design(size, dec, hypothesis),
        _lever_table(
            names,
            cells,
            neg["steps"],
            dec,
            robust["steps"],
            "Mean err_transfer - err_scratch per cell (± se), fixed steps (the verdict):",
        ),
        Table(
            ["lever", *[f"reduction, {r}" for r in per_region]],
            region_rows,
            title="Per region (one-sided paired t of the reduction):",
        ),
        _lever_equal_loss(size, names, m, dec),
        _lever_table(names, cells, neg["loss"], eq, robust["loss"], "", stalled),
        _lever_csv(name, names, cells, m),
        Figure(
            name,
            lambda path: _lever_draw(
                path, neg["steps"], names, cells, "negative transfer under each lever, fixed steps"
            ),
        ),
        Figure(
            f"{name}_equal_loss",
            lambda path: _lever_draw(path, neg["loss"], names, cells, eq_title),
        ),
    ]
    design = {"base_config": size.base, "regions": size.regions, "levers": size.levers}
    data = {
        **design,
        "replicates": size.seeds,
        "tests_per_region": per_region,
        "medians_wilcoxon": robust["steps"],
        "equal_loss": {
            "epsilon": size.epsilon,
            "cap": size.cap,
            "medians_wilcoxon": robust["loss"],
            "stalled_transfer": np.nansum(stalled[0], axis=(1, 2)),
            "stalled_scratch": np.nansum(stalled[1], axis=(1, 2)),
            "up_stopped_early": int(np.nansum(as_float(m["loss"]["up_stopped_early"]))),
        },
        "per_seed": m,
    }
    return Outcome(lever_statistic(size, dec, hypothesis), sections, data)
