"""The lever claims' one procedure (mitigation: the paper's levers,
docs/model.md §8.1; mitigation_freezing: our hypothesis, §8.3): the negative
transfer err_transfer - err_scratch under each lever, paired with the
unmitigated baseline on the same seeds, at fixed steps and at equal loss."""

from __future__ import annotations

import numpy as np

from ..lab import figures as F
from ..lab import present as P
from ..lab import report as R
from ..lab import stats as S
from ..lab.claim import Figure, Outcome, Size, Table
from ._base import as_float, rule_sweeps, transfer_base

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


def lever_size(quick, levers, claimed, seeds, at_loss=None):
    """The :class:`~refimpl.lab.claim.Size` of a lever claim: per region the
    configs of every lever of ``levers`` (name -> config changes; the first:
    the unmitigated baseline) at every |u|, lever-major; values ``regions``,
    ``levers``, ``claimed`` (claim -> the levers that try it), ``base`` (the
    regime the regions change, :func:`transfer_base`), the equal-loss target
    ``epsilon`` 0.005 and step ``cap`` 2000; with ``at_loss`` (lever names, in
    the order of ``levers``) the value ``at_loss``: only those levers run at
    equal loss (:func:`lever_at_loss`; without it, every lever)."""

    regions, configs = lever_regions(quick), {}
    for r, spec in regions.items():
        base = transfer_base(quick, **spec["over"])
        configs[r] = [base.replace(u_norm=u, **ch) for ch in levers.values() for u in spec["u"]]
    values = dict(regions=regions, levers=levers, claimed=claimed, epsilon=0.005, cap=2000)
    if at_loss is not None:
        values["at_loss"] = [n for n in levers if n in at_loss]
    return Size(configs, seeds, base=transfer_base(quick).to_dict(), **values)


def lever_at_loss(size):
    """The levers of ``size`` measured at equal training loss, in order."""
    return list(size.values.get("at_loss", size.levers))


def lever_measure(size, sweep, batched=False):
    """Every lever in every region at fixed steps, and those of
    :func:`lever_at_loss` at equal training loss (the same seeds; item by item
    or ``batched``, :func:`~refimpl.claims._base.rule_sweeps`): ``{"steps":
    {metric: (levers, cells, seeds)}, "loss": {metric: (levers at equal loss,
    cells, seeds)}}``, the cells region by region."""
    rules = rule_sweeps(size.epsilon, size.cap, batched)
    keep = [k for k, n in enumerate(size.levers) if n in lever_at_loss(size)]
    got = {"steps": [], "loss": []}
    for r, grid in size.configs.items():
        nu = len(size.regions[r]["u"])
        shape = (len(size.levers), nu, size.seeds)
        sub = [c for k in keep for c in grid[k * nu : (k + 1) * nu]]
        fixed = sweep(grid, label=r, metrics=LEVER_ERRORS, **rules["steps"])
        loss = sweep(sub, label=f"{r} (equal loss)", metrics=LEVER_AT_LOSS, **rules["loss"])
        got["steps"].append({k: fixed.values(k).reshape(shape) for k in LEVER_ERRORS})
        got["loss"].append(
            {k: loss.values(k).reshape((len(keep),) + shape[1:]) for k in LEVER_AT_LOSS}
        )
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


def _lever_csv(name, names, cells, m, loss_names=None):
    """Per stopping rule, lever and cell: the amount (mean, se, median), both
    errors (mean, se) and the stalled rates (``loss_names``: the levers
    measured at equal loss, default ``names``)."""
    rows, by_rule = [], {"steps": names, "loss": names if loss_names is None else loss_names}
    for variant, rule in (("fixed steps", "steps"), ("equal loss", "loss")):
        v = m[rule]
        et, es = as_float(v["err_transfer"]), as_float(v["err_scratch"])
        stalled = [as_float(v[s]) for s in LEVER_AT_LOSS[2:4] if s in v]
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
        f"{c}: {P.holds(ok, 'shrinks it', 'does NOT shrink it')} ({R.fmt_p(dec['claim_p'][c])})"
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
        f"Regions: {regions}; otherwise "
        f"{P.regime(b, ('d', 'm', 'n_up', P.SIGMA_P, 'flip_down'))}, {b.steps_down} steps; all "
        f"levers share seeds. Claimed levers: {_shrinks(dec)} (level {S.SIGNIFICANCE}; a lever "
        "group tried at several levels counts if either lowers it, "
        "Bonferroni-corrected)." + (source if hypothesis else "")
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
