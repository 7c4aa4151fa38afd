"""The trend claims' one procedure (gain_shared, gain_upstream_n,
gain_noise_dim): the transfer gain along one or more panels of configs under
both stopping rules of :mod:`._base`, a one-sided Page trend test per panel and
rule (docs/model.md §8.4), and its summaries, tables, CSV and figure."""

from __future__ import annotations

import numpy as np

from ..lab import report as R
from ..lab import stats as S
from ..lab.claim import Table
from . import _base as B


def trend_measure(size, sweep, common, metrics=B.RUN_METRICS, batched=False):
    """Every panel of ``size.configs`` under both stopping rules (equal-loss
    target :data:`._base.EPSILON`, cap ``size.loss_cap``): ``{panel: {rule: {metric:
    (points, seeds)}}}``. ``common``: panel -> its fields with common random
    numbers (the stopping-rule fields are always common). ``batched``: both
    rules in one sweep of the batched three-stage measure
    (:func:`._base.sweep_rules_once`; the same configs and seeds as
    :func:`._base.measure_at_loss`'s runs)."""
    if batched:
        return {
            panel: B.sweep_rules_once(
                sweep,
                grid,
                size.loss_cap,
                metrics,
                panel,
                measure="outcomes_batched",
                options={"upstream_error": "err_up" in metrics},
                common=common[panel] + B.STOP_FIELDS,
            )
            for panel, grid in size.configs.items()
        }
    return {
        panel: B.sweep_stopping(
            sweep,
            grid,
            B.EPSILON,
            size.loss_cap,
            metrics,
            panel,
            common=common[panel] + B.STOP_FIELDS,
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
            g = B.as_float(g)
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
    """:func:`._base.point_summary` of every panel and rule of :func:`trend_measure`'s values."""
    return {
        panel: {
            r: B.point_summary(
                v[r]["err_transfer"],
                v[r]["err_scratch"],
                v[r]["loss_down"],
                v[r]["loss_scratch"],
                B.EPSILON if r == "loss" else None,
            )
            for r in B.RULES
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
        (f"against {symbol[p]}: " if lead else "") + sep.join(one(p, r) for r in B.RULES)
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
        for r in B.RULES:
            stall = [B.STALL_HEADER] if r == "loss" else []
            rows = [
                cells[i] + B.outcome_cells(summ[panel][r], i, reps) for i in range(len(x[panel]))
            ]
            title = (
                f"**Gain against {names[panel]}, {labels[r]}**: "
                f"{R.fmt_trend(dec['trend'][panel][r])}"
            )
            tables.append(Table(head + B.OUTCOME_HEADER + stall, rows, title=title))
    return tables


def trend_csv(name, x, summ, point_columns):
    """The CSV of a trend claim: per panel, rule and point the summary of
    :func:`._base.point_summary` after the claim's ``point_columns`` (panel ->
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
        for r in B.RULES
        for i, v in enumerate(x[panel])
    ]
    return Table(header, rows, name=name, show=False)


def trend_figure(name, xs, names, summ, vals, title, extra=None, xlog=False):
    """The figure of one panel: the gain's mean and median under both rules
    and the scratch error (and ``extra`` series: label -> (mean, se))."""
    series = {f"gain, {r} rule (mean)": (summ[r]["gain_mean"], summ[r]["gain_se"]) for r in B.RULES}
    series.update(
        {f"gain, {r} rule (median)": (summ[r]["gain_median"], np.zeros(len(xs))) for r in B.RULES}
    )
    series["err_scratch (mean)"] = (
        summ["steps"]["err_scratch_mean"],
        S.sem(vals["steps"]["err_scratch"], axis=1),
    )
    series.update(extra or {})
    return B.line_figure(
        name, xs, series, names, "clean test error / gain", title, hline=0.0, xlog=xlog
    )
