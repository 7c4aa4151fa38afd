"""mitigation: levers against negative transfer (MODEL.md sections 5 and 8).

In the negative-transfer region (REGION: weak or absent shared signal, the
inherited fraction BASE_ALPHA), each lever is compared with the unmitigated
baseline on the same seeds (common random numbers across the levers):
a smaller alpha, weight decay lambda during fine-tuning (the scratch baseline
uses the same lambda: compared runs share the training rule, MODEL.md
section 3), freezing the inherited filters, and rescaling them.

The negative-transfer amount of a run is err_transfer - err_scratch (same
test draws). Test per lever: one-sided paired t-test over all seeds of all
region cells that the lever lowers it. Verdict: PASS when the levers MODEL.md
section 8 names (smaller alpha, weight decay, freezing) each lower it at level
0.01; the rescale is reported beside them.
"""
import sys

import numpy as np

from refimpl import validate as V
from refimpl.sweep import run_sweep

NAME = "mitigation"
CLAIM = "a smaller alpha, weight decay during fine-tuning, or freezing shrink negative transfer"
ALPHA_LEVEL = 0.01
BASE_ALPHA = 0.8
REGION = [0.0, 0.25]
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


def run(out, quick=False, jobs=1):
    folder = V.script_out(out, NAME)
    reps = 3 if quick else 12
    region = REGION
    base = V.transfer_base(quick, alpha=BASE_ALPHA)
    names = list(LEVERS)
    grid = [base.replace(u_norm=u, **LEVERS[n]) for n in names for u in region]
    sw = run_sweep(grid, replicates=reps, jobs=jobs, cache=V.cache_dir(out), label=NAME, salt=NAME,
                   common=("alpha", "weight_decay", "freeze_inherited", "rescale_inherited"))
    shape = (len(names), len(region), reps)
    et, es = sw.values("err_transfer").reshape(shape), sw.values("err_scratch").reshape(shape)
    neg = et - es                                   # (levers, cells, reps)
    flat = neg.reshape(len(names), -1)
    tests = {n: V.paired_t(flat[0], flat[k], "greater") for k, n in enumerate(names) if k > 0}
    base_t = V.paired_t(flat[0], np.zeros_like(flat[0]), "greater")
    per_claim = {c: min(tests[n]["p"] for n in ns) < ALPHA_LEVEL and
                 any(tests[n]["mean"] > 0 and tests[n]["p"] < ALPHA_LEVEL for n in ns)
                 for c, ns in CLAIMED.items()}
    verdict = "PASS" if all(per_claim.values()) else "FAIL"
    statistic = (f"baseline negative transfer {flat[0].mean():+.4f} ± {base_t['se']:.4f} "
                 f"({V.fmt_p(base_t['p'])}); reduction by lever: "
                 + ", ".join(f"{n}: {t['mean']:+.4f} ({V.fmt_p(t['p'])})" for n, t in tests.items())
                 + f"; one-sided paired t, {reps} seeds x {len(region)} cells")
    rows = []
    for k, n in enumerate(names):
        for c, u in enumerate(region):
            d = neg[k, c]
            rows.append([n, u, d.mean(), d.std(ddof=1) / np.sqrt(reps), et[k, c].mean(),
                         et[k, c].std(ddof=1) / np.sqrt(reps), es[k, c].mean(),
                         es[k, c].std(ddof=1) / np.sqrt(reps)])
    header = ["lever", "u_norm", "negative_transfer", "negative_transfer_se", "err_transfer",
              "err_transfer_se", "err_scratch", "err_scratch_se"]
    V.write_csv(folder / "mitigation.csv", header, rows)
    V.write_json(folder / "mitigation.json", {
        "claim": CLAIM, "verdict": verdict, "statistic": statistic, "replicates": reps,
        "region_u_norm": region, "base_alpha": BASE_ALPHA, "levers": LEVERS, "tests": tests,
        "baseline_test": base_t, "per_claim": per_claim, "base_config": base.to_dict(),
        "table": [dict(zip(header, r)) for r in rows]})
    figs = []
    from refimpl.plotting import available
    if available():
        from refimpl.plotting import pyplot, save
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(7.5, 4.2))
        w = 0.8 / len(region)
        for c, u in enumerate(region):
            m = neg[:, c].mean(axis=1)
            s = neg[:, c].std(axis=1, ddof=1) / np.sqrt(reps)
            ax.bar(np.arange(len(names)) + (c - (len(region) - 1) / 2) * w, m, w, yerr=s, capsize=3,
                   label=f"|u| = {u:g}", color=f"C{c}")
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel("err_transfer - err_scratch")
        ax.set_title(f"negative transfer under each lever (alpha = {BASE_ALPHA:g} baseline; "
                     f"{reps} seeds)", fontsize=9)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, axis="y")
        figs.append(save(fig, folder / "mitigation.png", dpi=100))
    table = V.markdown_table(
        ["lever", *[f"transfer - scratch, |u| = {u:g}" for u in region], "reduction vs baseline (pooled)",
         "p (one-sided)"],
        [[n] + [V.fmt_mean_se(neg[k, c].mean(), neg[k, c].std(ddof=1) / np.sqrt(reps))
                for c in range(len(region))]
         + ([V.fmt_mean_se(tests[n]["mean"], tests[n]["se"]), V.fmt_p(tests[n]["p"])] if k else ["—", "—"])
         for k, n in enumerate(names)])
    body = "\n\n".join([
        f"Region: |u| in {region}, baseline alpha = {BASE_ALPHA:g}; d = {base.d}, m = {base.m}, "
        f"N_1 = {base.n_up}, N_2 = {base.n_down}, |v_1| = |v_2| = {base.v_up_norm:g}, "
        f"sigma_p = {base.sigma_p_up:g}, p_2 = {base.flip_down:g}, {base.steps_down} steps; all levers "
        f"share seeds. Claimed levers: " + ", ".join(f"{c}: {'shrinks it' if ok else 'does NOT shrink it'}"
                                                   for c, ok in per_claim.items()) + ".",
        table, V.figure_note(figs)])
    return V.result(NAME, CLAIM, verdict, statistic, body)


if __name__ == "__main__":
    sys.exit(V.script_main(sys.modules[__name__]))
