"""The lever claims' report (mitigation, mitigation_freezing): per lever the
reduction of the negative transfer with its tests pooled and per region, the
stalled runs at equal loss, the table, the CSV and the figure
(:func:`present`); the procedure is :mod:`._levers`."""

from __future__ import annotations

from functools import partial

import numpy as np

from ..lab import figures as F
from ..lab import present as P
from ..lab import report as R
from ..lab import stats as S
from ..lab.claim import Figure, Outcome, Table
from . import _levers as L
from ._base import as_float


def per_region_tests(size, neg):
    """The paired tests of :func:`._levers.lever_tests` within each region (reported)."""
    names, out, off = list(size.levers), {}, 0
    for r, spec in size.regions.items():
        f = neg[:, off : off + len(spec["u"])].reshape(len(names), -1)
        off += len(spec["u"])
        out[r] = {"baseline": S.paired_t(f[0], np.zeros_like(f[0]), "greater")}
        out[r] |= {n: S.paired_t(f[0], f[k], "greater") for k, n in enumerate(names) if k}
    return out


def robust_tests(names, neg):
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


def draw(path, neg, names, cells, title):
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


def figures(name, neg, names, cells, titles):
    """The figures ``<name>.png`` (fixed steps) and ``<name>_equal_loss.png``:
    :func:`draw` of each rule's amounts (``neg``, ``names``, ``titles``: by rule)."""
    return [
        Figure(name + end, partial(draw, neg=neg[r], names=names[r], cells=cells, title=titles[r]))
        for r, end in (("steps", ""), ("loss", "_equal_loss"))
    ]


def equal_loss_data(size, m, robust, stalled):
    """The JSON's ``equal_loss``: target, cap, medians and Wilcoxon tests, stalled runs per
    lever, upstream runs stopped early."""
    up_early = int(np.nansum(as_float(m["loss"]["up_stopped_early"])))
    return {
        "epsilon": size.epsilon,
        "cap": size.cap,
        "medians_wilcoxon": robust,
        "stalled_transfer": np.nansum(stalled[0], axis=(1, 2)),
        "stalled_scratch": np.nansum(stalled[1], axis=(1, 2)),
        "up_stopped_early": up_early,
    }


def stalled_runs(m):
    """(stalled transfer, stalled scratch) at equal loss, (levers, cells, seeds) each."""
    return tuple(as_float(m["loss"][k]) for k in ("stalled_transfer", "stalled_scratch"))


def regions_text(size):
    """The design's regions and base regime in words."""
    b = size.configs["hard"][0]
    regions = "; ".join(
        f"`{r}`: " + ", ".join(f"{k} = {v:g}" for k, v in s["over"].items()) + f", |u| in {s['u']}"
        for r, s in size.regions.items()
    )
    regime = P.regime(b, ("d", "m", "n_up", P.SIGMA_P, "flip_down"))
    return f"Regions: {regions}; otherwise {regime}, {b.steps_down} steps; all levers share seeds."


def _row(k, n, neg, dec, robust, stalled):
    """One lever's cells of :func:`table`."""
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


def table(names, cells, neg, dec, robust, title, stalled=None):
    """Per lever: the mean amount per cell, the median, the pooled reduction
    with its t and Wilcoxon p (and the stalled runs at equal loss)."""
    header = ["lever", *[f"{r}, |u| = {u:g}" for r, u, _ in cells], "median amount"]
    header += ["reduction vs baseline (pooled)", "p (one-sided t)", "Wilcoxon p"]
    if stalled is not None:
        header.append("stalled transfer / scratch")
    rows = [_row(k, n, neg, dec, robust, stalled) for k, n in enumerate(names)]
    return Table(header, rows, title=title)


def csv_table(name, names, cells, m, loss_names=None):
    """Per stopping rule, lever and cell: the amount (mean, se, median), both
    errors (mean, se) and the stalled rates (``loss_names``: the levers
    measured at equal loss, default ``names``)."""
    rows, by_rule = [], {"steps": names, "loss": names if loss_names is None else loss_names}
    for variant, rule in (("fixed steps", "steps"), ("equal loss", "loss")):
        v = m[rule]
        et, es = as_float(v["err_transfer"]), as_float(v["err_scratch"])
        stalled = [as_float(v[s]) for s in L.LEVER_AT_LOSS[2:4] if s in v]
        for k, n in enumerate(by_rule[rule]):
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


def stall_caveat(names, eq, share=0.1):
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
        f"{c}: {P.holds(ok, 'shrinks it', 'does NOT shrink it')} ({R.fmt_p(dec['claim_p'][c])})"
        for c, ok in dec["per_claim"].items()
    )


def statistic(size, dec, hypothesis=False):
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


def _design(size, dec, hypothesis):
    """The report's first paragraph: regions, base regime, claimed levers."""
    source = (
        " Source: our hypothesis (docs/model.md §8.3): a FAIL refutes our hypothesis, not the "
        "paper."
    )
    return (
        f"{regions_text(size)} Claimed levers: {_shrinks(dec)} (level {S.SIGNIFICANCE}; a lever "
        "group tried at several levels counts if either lowers it, "
        "Bonferroni-corrected)." + (source if hypothesis else "")
    )


def _equal_loss(size, names, m, dec):
    """The report's paragraph on the equal-loss variant (not in the verdict)."""
    eq = dec["equal_loss"]
    up_early = int(np.nansum(as_float(m["loss"]["up_stopped_early"])))
    return (
        "Equal training loss (reported, not in the verdict): the same seeds with fine-tuning "
        f"and scratch trained to the training loss {size.epsilon:g}, cap {size.cap} steps "
        f"(upstream runs stopped early by epsilon: {up_early}); a stalled run did not reach it. "
        f"Under the same rule: baseline {eq['baseline']['mean']:+.4f} "
        f"({R.fmt_p(eq['baseline']['p'])}); {_shrinks(eq)} — {eq['verdict']} at equal loss."
        + stall_caveat(names, m["loss"])
    )


def present(name, size, m, dec, hypothesis=False):
    """The outcome of a lever claim ``name``: the statistic, the design, the
    lever tables at fixed steps (the verdict), per region and at equal loss,
    the CSV ``<name>.csv`` and the figures ``<name>.png`` and
    ``<name>_equal_loss.png``."""

    names, cells = list(size.levers), L.lever_cells(size)
    neg = {rule: L.lever_negative(m[rule]) for rule in ("steps", "loss")}
    robust = {rule: robust_tests(names, v) for rule, v in neg.items()}
    per_region = per_region_tests(size, neg["steps"])
    eq = dec["equal_loss"]
    stalled = stalled_runs(m)
    region_rows = [
        [n] + [f"{t[n]['mean']:+.4f} ({R.fmt_p(t[n]['p'])})" for t in per_region.values()]
        for n in names[1:]
    ]
    eq_title = f"the same at equal training loss {size.epsilon:g} (cap {size.cap} steps)"
    sections = [
        _design(size, dec, hypothesis),
        table(
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
        _equal_loss(size, names, m, dec),
        table(names, cells, neg["loss"], eq, robust["loss"], "", stalled),
        csv_table(name, names, cells, m),
        *figures(
            name,
            neg,
            {"steps": names, "loss": names},
            cells,
            {"steps": "negative transfer under each lever, fixed steps", "loss": eq_title},
        ),
    ]
    design = {"base_config": size.base, "regions": size.regions, "levers": size.levers}
    data = {
        **design,
        "replicates": size.seeds,
        "tests_per_region": per_region,
        "medians_wilcoxon": robust["steps"],
        "equal_loss": equal_loss_data(size, m, robust["loss"], stalled),
        "per_seed": m,
    }
    return Outcome(statistic(size, dec, hypothesis), sections, data)
