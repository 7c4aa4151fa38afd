"""negative_transfer: heatmaps of err_transfer - err_scratch over (|u|, alpha)
and over (|u|, N_1) (MODEL.md sections 7 and 8), in two regimes:

- ``hard``: scratch is not benign (N_2 = 10, |v_2| = 1: the downstream task
  alone is hard, scratch error far above 0);
- ``benign``: scratch is benign (N_2 = 40, |v_2| = 3: the downstream task alone
  is learnable, scratch error near 0).

Each cell averages the paired difference over seeds (transfer and scratch share
data, fresh filters and test draws). A cell is marked where transfer is
significantly worse: one-sided paired t-test, Holm-adjusted over all cells of
all four heatmaps together (the family the verdict's "at least one cell"
draws from), level 0.01. The Gamma_inh contour (a heuristic indicator of our
own derivation, MODEL.md section 7, not the paper's formula) is drawn over it.

Claim and test: negative transfer exists (at least one significantly worse
cell), and it sits at the weak shared signal: in the ``hard`` regime the
difference err_transfer - err_scratch decreases with |u|, seed by seed
(:func:`refimpl.validate.trend`: each (heatmap row, seed) is a block over
|u|; per-block Spearman rho, Page's L test, one-sided, level 0.01). Any
missing value (a diverged run) fails the verdict.
"""
import sys

import numpy as np

from refimpl import validate as V
from refimpl.sweep import run_sweep
from refimpl.theory import indicators

NAME = "negative_transfer"
CLAIM = ("negative transfer exists: regimes where err_transfer > err_scratch significantly, "
         "at a weak or absent shared signal")
ALPHA_LEVEL = 0.01
REGIMES = {"hard": {"n_down": 10, "v_down_norm": 1.0},
           "benign": {"n_down": 40, "v_down_norm": 3.0}}


def holm(pvalues):
    """Holm-Bonferroni adjusted p-values (:func:`refimpl.validate.holm`)."""
    return V.holm(pvalues)


def _grid(out, regime, over, quick, us, field, values, reps, jobs):
    base = V.transfer_base(quick, **over)
    grid = [base.replace(u_norm=u, **{field: v}) for v in values for u in us]
    sw = run_sweep(grid, replicates=reps, jobs=jobs, cache=V.cache_dir(out),
                   label=f"{NAME} {regime} {field}", salt=NAME,
                   metrics=("err_transfer", "err_scratch"))
    shape = (len(values), len(us), reps)
    et, es = sw.values("err_transfer").reshape(shape), sw.values("err_scratch").reshape(shape)
    diff = et - es
    p = np.array([[V.paired_t(et[i, j], es[i, j], "greater")["p"] for j in range(len(us))]
                  for i in range(len(values))])
    gam = np.array([[indicators(c)["gamma_inh"] for c in grid[i * len(us):(i + 1) * len(us)]]
                    for i in range(len(values))])
    return {"regime": regime, "field": field, "values": values, "us": us, "diff": diff,
            "et": et, "es": es, "p": p, "gamma_inh": gam, "base": base}


def _heatmap(path, G, reps):
    from refimpl.plotting import available, pyplot, save

    if not available():
        return []
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.2, 4.4))
    mean = G["diff"].mean(axis=2)
    lim = max(0.02, float(np.nanmax(np.abs(mean))))
    im = ax.imshow(mean, origin="lower", aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set_xticks(range(len(G["us"])), [f"{u:g}" for u in G["us"]])
    ax.set_yticks(range(len(G["values"])), [f"{v:g}" for v in G["values"]])
    ax.set_xlabel("|u| (shared signal)")
    ax.set_ylabel({"alpha": "alpha", "n_up": "N_1"}[G["field"]])
    for i in range(mean.shape[0]):
        for j in range(mean.shape[1]):
            sig = G["padj"][i, j] < ALPHA_LEVEL
            ax.text(j, i, f"{mean[i, j]:+.3f}" + ("\n*" if sig else ""), ha="center", va="center",
                    fontsize=7, fontweight="bold" if sig else "normal")
            if sig:
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="k", lw=2))
    g = np.log10(np.maximum(G["gamma_inh"], 1e-3))
    if np.ptp(g) > 0:
        cs = ax.contour(np.arange(len(G["us"])), np.arange(len(G["values"])), g,
                        levels=[-1, 0, 1], colors="k", linestyles=["dotted", "dashed", "solid"],
                        linewidths=1)
        ax.clabel(cs, fmt={-1: "Γ_inh=0.1", 0: "Γ_inh=1", 1: "Γ_inh=10"}, fontsize=7)
    fig.colorbar(im, ax=ax, label="err_transfer - err_scratch")
    ax.set_title(f"regime {G['regime']}: transfer - scratch ({reps} seeds)\nbox = significantly "
                 f"worse, Holm over all heatmaps", fontsize=9)
    return [save(fig, path, dpi=100)]


def run(out, quick=False, jobs=1):
    folder = V.script_out(out, NAME)
    reps = 3 if quick else 16
    us = [0.0, 1.0, 2.0] if quick else [0.0, 0.5, 1.0, 1.5, 2.0]
    alphas = [0.5, 1.0] if quick else [0.2, 0.5, 0.8, 1.0]
    nups = [10, 40] if quick else [20, 50, 100, 200]
    grids, figs, parts = [], [], []
    for regime, over in REGIMES.items():
        if quick:
            over = {"n_down": min(over["n_down"], 20), "v_down_norm": over["v_down_norm"]}
        for field, values in (("alpha", alphas), ("n_up", nups)):
            grids.append(_grid(out, regime, over, quick, us, field, values, reps, jobs))
    # Holm over every cell of every heatmap: one family for "at least one cell"
    padj = holm(np.concatenate([G["p"].ravel() for G in grids]))
    off = 0
    for G in grids:
        G["padj"] = padj[off:off + G["p"].size].reshape(G["p"].shape)
        off += G["p"].size
    for G in grids:
        regime, field, values = G["regime"], G["field"], G["values"]
        figs += _heatmap(folder / f"negative_{regime}_{field}.png", G, reps)
        rows = []
        for i, v in enumerate(values):
            for j, u in enumerate(us):
                d = G["diff"][i, j]
                rows.append([regime, field, v, u, d.mean(), d.std(ddof=1) / np.sqrt(reps),
                             G["et"][i, j].mean(), G["es"][i, j].mean(), G["p"][i, j],
                             G["padj"][i, j], G["gamma_inh"][i, j]])
        G["rows"] = rows
    header = ["regime", "field", "value", "u_norm", "diff", "diff_se", "err_transfer", "err_scratch",
              "p", "p_holm", "gamma_inh"]
    allrows = [r for G in grids for r in G["rows"]]
    V.write_csv(folder / "negative_transfer.csv", header, allrows)
    sig = [(G["regime"], G["field"], G["values"][i], G["us"][j], G["diff"][i, j].mean())
           for G in grids for i, j in zip(*np.nonzero(G["padj"] < ALPHA_LEVEL))]
    # location: in the hard regime, the difference falls with |u|
    hard = [G for G in grids if G["regime"] == "hard"]
    # blocks: (heatmap row, seed); points: |u|
    blocks = np.concatenate([np.moveaxis(G["diff"], 1, 0).reshape(len(us), -1) for G in hard], axis=1)
    tr = V.trend(us, blocks, "less")
    rho, p = tr["rho"], tr["p"]
    missing = V.n_missing(*[G["diff"] for G in grids])
    ok = bool(sig) and rho < 0 and p < ALPHA_LEVEL
    verdict = "PASS" if ok else "FAIL"
    worst = max(sig, key=lambda s: s[4]) if sig else None
    statistic = (f"{len(sig)} of {sum(G['diff'][..., 0].size for G in grids)} cells significantly "
                 f"worse (paired one-sided t, Holm over all cells, level {ALPHA_LEVEL})"
                 + (f", largest {worst[4]:+.3f} at |u| = {worst[3]:g} ({worst[0]}, {worst[1]} = "
                    f"{worst[2]:g})" if worst else "")
                 + f"; hard regime, diff against |u|: {V.fmt_trend(tr)} (decrease)")
    V.write_json(folder / "negative_transfer.json", {
        "claim": CLAIM, "verdict": verdict, "statistic": statistic, "replicates": reps,
        "regimes": REGIMES, "significant_cells": sig, "trend_hard": tr, "n_missing": missing,
        "base_config": grids[0]["base"].to_dict(), "table": [dict(zip(header, r)) for r in allrows]})
    for G in grids:
        parts.append(f"**Regime `{G['regime']}`, (|u|, {G['field']})** — mean err_transfer - "
                     f"err_scratch ± se; `*` significantly worse (Holm-adjusted over all "
                     f"{len(padj)} cells, p < {ALPHA_LEVEL}); "
                     f"scratch error range {G['es'].mean(axis=2).min():.3f}–{G['es'].mean(axis=2).max():.3f}\n\n"
                     + V.markdown_table([G["field"] + " \\ |u|"] + [f"{u:g}" for u in G["us"]],
                                        [[f"{v:g}"] + [V.fmt_mean_se(G["diff"][i, j].mean(),
                                                                     G["diff"][i, j].std(ddof=1) / np.sqrt(reps))
                                                       + (" *" if G["padj"][i, j] < ALPHA_LEVEL else "")
                                                       for j in range(len(G["us"]))]
                                         for i, v in enumerate(G["values"])]))
    b = grids[0]["base"]
    body = "\n\n".join([
        f"Base: d = {b.d}, m = {b.m}, |v_1| = {b.v_up_norm:g}, sigma_p = {b.sigma_p_up:g}, "
        f"p_2 = {b.flip_down:g}, {b.steps_down} GD steps per stage; (|u|, alpha) grids at N_1 = "
        f"{b.n_up}, (|u|, N_1) grids at alpha = {b.alpha:g}; regimes: "
        + "; ".join(f"`{k}`: N_2 = {v['n_down']}, |v_2| = {v['v_down_norm']:g}" for k, v in REGIMES.items())
        + f". {reps} seeds per cell. Verdict: PASS needs a significantly worse cell (Holm over all "
        f"{len(padj)} cells of the four heatmaps) and a decreasing trend of the difference in |u| "
        f"in the hard regime (seed by seed: per-seed Spearman rho, Page's L test, one-sided).",
        *parts, V.figure_note(figs)])
    return V.result(NAME, CLAIM, verdict, statistic, body, missing=missing,
                    significant_cells=len(sig))


if __name__ == "__main__":
    sys.exit(V.script_main(sys.modules[__name__]))
