"""mitigation: levers against negative transfer (docs/model.md §s 5 and 8).

In two negative-transfer regions (REGIONS: ``hard``, the base regime at a weak
or absent shared signal with alpha = 0.8; ``benign``, N_2 = 40, |v_2| = 3 where
scratch is nearly benign, also with alpha = 0.8; below alpha = 1 so that
freezing the inherited filters leaves fresh ones to train), each lever
is compared with the unmitigated baseline on the same seeds (common random numbers across the levers):
a smaller alpha, weight decay lambda during fine-tuning (the scratch baseline
uses the same lambda: compared runs share the training rule, MODEL.md
section 3), freezing the inherited filters, and rescaling them.

The negative-transfer amount of a run is err_transfer - err_scratch (same
test draws). Test per lever: one-sided paired t-test over all seeds of all
cells of both regions that the lever lowers it (per-region numbers beside).
Verdict: PASS when the baseline shows negative transfer (one-sided paired t,
level 0.01) and the levers docs/model.md § 8 names (smaller alpha, weight
decay, freezing) each lower it at level 0.01. Weight decay is tried at two
levels and counts if either lowers it: its p-value is Bonferroni-corrected
over the two (min(1, 2 min p)). The claims are required together (all must
hold), which needs no further correction. The rescale is reported beside
them. Any missing value (a diverged run) fails the verdict.
"""

import numpy as np

from .. import files
from ..lab import figures as F
from ..lab import report as R
from ..lab import stats as S
from ..lab.stats import SIGNIFICANCE
from ..lab.sweep import run_sweep
from ._base import transfer_base

NAME = "mitigation"
CLAIM = "a smaller alpha, weight decay during fine-tuning, or freezing shrink negative transfer"
SOURCE = "paper"
REGIONS = {"hard": {"over": {"alpha": 0.8}, "u": [0.0, 0.25]},
           "benign": {"over": {"alpha": 0.8, "n_down": 40, "v_down_norm": 3.0}, "u": [0.0, 0.5]}}
LEVERS = {
    "baseline": {},
    "smaller alpha (0.2)": {"alpha": 0.2},
    "weight decay 0.003": {"weight_decay": 0.003},
    "weight decay 0.01": {"weight_decay": 0.01},
    "freeze inherited": {"freeze_inherited": True},
    "rescale inherited x0.3": {"rescale_inherited": 0.3},
}
CLAIMED = {"smaller alpha": ["smaller alpha (0.2)"],
           "weight decay": ["weight decay 0.003", "weight decay 0.01"],
           "freezing": ["freeze inherited"]}


def decide(levers, neg, claimed=CLAIMED):
    """The verdict from the negative-transfer amounts under each lever (pure:
    no files, no sweeps).

    Parameters
    ----------
    levers : sequence of str, length L
        The lever names; the first is the unmitigated baseline.
    neg : array of shape (L, cells, seeds)
        err_transfer - err_scratch per lever, cell and seed (seeds and cells
        shared across levers: paired; NaN: missing).
    claimed : dict
        Claim name -> the levers that try it (several: Bonferroni over them).

    Returns
    -------
    dict
        ``verdict`` ("PASS" when the baseline shows negative transfer, the
        one-sided paired t of its mean > 0 at p < SIGNIFICANCE, and every
        claim holds: its Bonferroni p (min(1, k min p) over its k levers) <
        SIGNIFICANCE and some lever's mean reduction > 0; and no value is
        missing), ``verdict_tests`` (without the missing-value rule, what
        ``mitigation.json`` records), ``tests`` (lever -> one-sided paired t
        of baseline > lever, pooled over cells and seeds), ``baseline``,
        ``claim_p``, ``per_claim`` and ``missing``.
    """
    levers = list(levers)
    flat = np.asarray(neg).reshape(len(levers), -1)
    tests = {n: S.paired_t(flat[0], flat[k], "greater") for k, n in enumerate(levers) if k > 0}
    base_t = S.paired_t(flat[0], np.zeros_like(flat[0]), "greater")
    # a claim tried with several levers: Bonferroni over them (min(1, k min p))
    claim_p = {c: S.bonferroni_min([tests[n]["p"] for n in ns]) for c, ns in claimed.items()}
    per_claim = {c: bool(claim_p[c] < SIGNIFICANCE
                         and max(tests[n]["mean"] for n in claimed[c]) > 0)
                 for c in claimed}
    missing = S.n_missing(flat)
    verdict = "PASS" if all(per_claim.values()) and base_t["p"] < SIGNIFICANCE else "FAIL"
    return {"verdict": "FAIL" if missing else verdict, "verdict_tests": verdict, "tests": tests,
            "baseline": base_t, "claim_p": claim_p, "per_claim": per_claim, "missing": missing}


def _sweeps(out, quick, jobs, reps, names):
    """Every lever in every region: neg, err_transfer, err_scratch of shape
    (levers, cells, reps) and the cells as (region, |u|, alpha)."""
    negs, ets, ess, cells = [], [], [], []
    for region, spec in REGIONS.items():
        over = dict(spec["over"])
        if quick and "n_down" in over:
            over["n_down"] = 16
        base = transfer_base(quick, **over)
        grid = [base.replace(u_norm=u, **LEVERS[n]) for n in names for u in spec["u"]]
        sw = run_sweep(grid, replicates=reps, jobs=jobs, cache=R.cache_dir(out),
                       label=f"{NAME} {region}", salt=NAME,
                       common=("alpha", "weight_decay", "freeze_inherited", "rescale_inherited"),
                       metrics=("err_transfer", "err_scratch"))
        shape = (len(names), len(spec["u"]), reps)
        et, es = sw.values("err_transfer").reshape(shape), sw.values("err_scratch").reshape(shape)
        negs.append(et - es)
        ets.append(et)
        ess.append(es)
        cells += [(region, u, base.alpha) for u in spec["u"]]
    return (np.concatenate(negs, axis=1), np.concatenate(ets, axis=1),
            np.concatenate(ess, axis=1), cells)


def _per_region(neg, names):
    """The same paired tests within each region (reported, not in the verdict)."""
    per_region = {}
    off = 0
    for region, spec in REGIONS.items():
        sl = slice(off, off + len(spec["u"]))
        off += len(spec["u"])
        f = neg[:, sl].reshape(len(names), -1)
        per_region[region] = {"baseline": S.paired_t(f[0], np.zeros_like(f[0]), "greater"),
                              **{n: S.paired_t(f[0], f[k], "greater")
                                 for k, n in enumerate(names) if k > 0}}
    return per_region


def _figure(path, neg, names, cells, reps):
    if not F.available():
        return []
    fig, ax = F.subplots(figsize=(8, 4.4))
    w = 0.8 / len(cells)
    for c, (region, u, a) in enumerate(cells):
        m = neg[:, c].mean(axis=1)
        s = neg[:, c].std(axis=1, ddof=1) / np.sqrt(reps)
        ax.bar(np.arange(len(names)) + (c - (len(cells) - 1) / 2) * w, m, w, yerr=s, capsize=2,
               label=f"{region}: |u| = {u:g}, alpha = {a:g}", color=f"C{c}")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("err_transfer - err_scratch")
    ax.set_title(f"negative transfer under each lever (mean ± se, {reps} seeds)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    return [F.save(fig, path, dpi=100)]


def _body(quick, dec, per_region, neg, names, cells, reps, figs):
    tests, claim_p = dec["tests"], dec["claim_p"]
    table = R.markdown_table(
        ["lever", *[f"{r}, |u| = {u:g}" for r, u, _ in cells], "reduction vs baseline (pooled)",
         "p (one-sided)"],
        [[n] + [R.fmt_mean_se(neg[k, c].mean(), neg[k, c].std(ddof=1) / np.sqrt(reps))
                for c in range(len(cells))]
         + ([R.fmt_mean_se(tests[n]["mean"], tests[n]["se"]), R.fmt_p(tests[n]["p"])] if k else ["—", "—"])
         for k, n in enumerate(names)])
    region_table = R.markdown_table(
        ["lever", *[f"reduction, {r}" for r in REGIONS]],
        [[n] + [f"{per_region[r][n]['mean']:+.4f} ({R.fmt_p(per_region[r][n]['p'])})" for r in REGIONS]
         for n in names[1:]])
    b = transfer_base(quick)
    return "\n\n".join([
        "Regions: " + "; ".join(f"`{r}`: " + ", ".join(f"{k} = {v:g}" for k, v in spec["over"].items())
                                + f", |u| in {spec['u']}" for r, spec in REGIONS.items())
        + f"; otherwise d = {b.d}, m = {b.m}, N_1 = {b.n_up}, sigma_p = {b.sigma_p_up:g}, "
        f"p_2 = {b.flip_down:g}, {b.steps_down} steps; all levers share seeds. Claimed levers: "
        + ", ".join(f"{c}: {'shrinks it' if ok else 'does NOT shrink it'} ({R.fmt_p(claim_p[c])})"
                    for c, ok in dec["per_claim"].items())
        + f" (level {SIGNIFICANCE}; weight decay: either of its two levels, Bonferroni-corrected "
        "over the two).",
        "Mean err_transfer - err_scratch per cell (± se):", table,
        "Per region (one-sided paired t of the reduction):", region_table, R.figure_note(figs)])


def run(out, quick=False, jobs=1):
    folder = R.claim_folder(out, NAME)
    reps = 3 if quick else 24
    names = list(LEVERS)
    neg, et, es, cells = _sweeps(out, quick, jobs, reps, names)      # (levers, cells, reps)
    dec = decide(names, neg)
    tests, base_t, claim_p = dec["tests"], dec["baseline"], dec["claim_p"]
    per_region = _per_region(neg, names)
    flat = neg.reshape(len(names), -1)
    statistic = (f"baseline negative transfer {flat[0].mean():+.4f} ± {base_t['se']:.4f} "
                 f"({R.fmt_p(base_t['p'])}); reduction by lever: "
                 + ", ".join(f"{n}: {t['mean']:+.4f} ({R.fmt_p(t['p'])})" for n, t in tests.items())
                 + f"; weight decay (either level, Bonferroni x2): {R.fmt_p(claim_p['weight decay'])}"
                 + f"; one-sided paired t over {reps} seeds x {len(cells)} cells")
    rows = []
    for k, n in enumerate(names):
        for c, (region, u, a) in enumerate(cells):
            d = neg[k, c]
            rows.append([n, region, u, d.mean(), d.std(ddof=1) / np.sqrt(reps), et[k, c].mean(),
                         et[k, c].std(ddof=1) / np.sqrt(reps), es[k, c].mean(),
                         es[k, c].std(ddof=1) / np.sqrt(reps)])
    header = ["lever", "region", "u_norm", "negative_transfer", "negative_transfer_se", "err_transfer",
              "err_transfer_se", "err_scratch", "err_scratch_se"]
    files.write_csv(folder / "mitigation.csv", header, rows)
    files.write_json(folder / "mitigation.json", {
        "claim": CLAIM, "verdict": dec["verdict_tests"], "statistic": statistic, "replicates": reps,
        "regions": REGIONS, "levers": LEVERS, "tests_pooled": tests, "tests_per_region": per_region,
        "baseline_test": base_t, "per_claim": dec["per_claim"], "per_claim_p": claim_p,
        "n_missing": dec["missing"], "base_config": transfer_base(quick).to_dict(),
        "table": [dict(zip(header, r)) for r in rows]})
    figs = _figure(folder / "mitigation.png", neg, names, cells, reps)
    body = _body(quick, dec, per_region, neg, names, cells, reps, figs)
    return R.result(NAME, CLAIM, dec["verdict"], statistic, body, source=SOURCE,
                    missing=dec["missing"])
