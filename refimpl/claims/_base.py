"""What the transfer claims share: the base regime (every field set
explicitly: the package defaults may change, full size and CI size), the
failure threshold, the two stopping rules (fixed step count and equal training
loss) and the per-point outcome summaries (mean, median, failure rate and
stalled runs side by side)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..config import Config
from ..lab import figures as F
from ..lab import report as R
from ..lab import stats as S
from ..lab.claim import Figure, Table
from ..lab.history import read_history
from ..lab.measures import at_loss, loss_flags, measure_transfer

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
    "stalled",
    "point_summary",
    "outcome_cells",
    "OUTCOME_HEADER",
    "STALL_HEADER",
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
    run = at_loss(config, epsilon, cap)
    out = measure_transfer(run, **options)
    out.update(loss_flags(out, run))
    return out


def rule_sweeps(epsilon, cap, batched=False):
    """The sweep keywords of each stopping rule's runs of a grid: ``steps``,
    every config as it is; ``loss``, the equal-loss runs (target ``epsilon``,
    step cap ``cap``) of the same configs and seeds. Item by item
    (:func:`measure_transfer` with its diagnostics; :func:`measure_at_loss`),
    or ``batched``: the outcomes of the batched three-stage path
    (``outcomes_batched``, the equal-loss runs and their flags by its
    ``epsilon`` and ``cap`` options)."""
    options = {"epsilon": epsilon, "cap": cap}
    if batched:
        batch = "outcomes_batched"
        return {"steps": {"measure": batch}, "loss": {"measure": batch, "options": options}}
    return {"steps": {}, "loss": {"measure": measure_at_loss, "options": options}}


ENGINE_RULE = (
    "the batched three-stage path (refimpl.batch_transfer: every stage in Gram space, the "
    "configs' engine field unused), the numbers of the item-by-item experiment to rounding"
)
"""The protocol rule of a claim whose runs go through the batched three-stage path."""


HISTORY = Path(__file__).with_name("history")
"""The claims' history files: ``<name>.md`` holds claim ``name``'s disclosed
protocol changes (:mod:`refimpl.lab.history`)."""


def history(name):
    """The disclosed protocol changes of claim ``name``, oldest first (its
    file in :data:`HISTORY`)."""
    return read_history(HISTORY / f"{name}.md")


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


def trend_measure(size, sweep, common, metrics=RUN_METRICS, batched=False):
    """Every panel of ``size.configs`` under both stopping rules (equal-loss
    target :data:`EPSILON`, cap ``size.loss_cap``): ``{panel: {rule: {metric:
    (points, seeds)}}}``. ``common``: panel -> its fields with common random
    numbers (the stopping-rule fields are always common). ``batched``: both
    rules in one sweep of the batched three-stage measure
    (:func:`sweep_rules_once`; the same configs and seeds as
    :func:`measure_at_loss`'s runs)."""
    if batched:
        return {
            panel: sweep_rules_once(
                sweep,
                grid,
                size.loss_cap,
                metrics,
                panel,
                measure="outcomes_batched",
                options={"upstream_error": "err_up" in metrics},
                common=common[panel] + STOP_FIELDS,
            )
            for panel, grid in size.configs.items()
        }
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
