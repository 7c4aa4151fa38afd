"""negative_transfer: heatmaps of err_transfer - err_scratch over (|u|, alpha)
and over (|u|, N_1) (docs/model.md §s 7 and 8), in two regimes:

- ``hard``: scratch is not benign (N_2 = 10, |v_2| = 1: the downstream task
  alone is hard, scratch error far above 0);
- ``benign``: scratch is benign (N_2 = 40, |v_2| = 3: the downstream task alone
  is learnable, scratch error near 0).

Each cell averages the paired difference over seeds (transfer and scratch share
data, fresh filters and test draws). A cell is marked where transfer is
significantly worse: one-sided paired t-test, Holm-adjusted over all cells of
all four heatmaps together (the family the verdict's "at least one cell"
draws from), level 0.01. The Gamma_inh contour (a heuristic indicator of our
own derivation, docs/model.md § 7, not the paper's formula) is drawn over it.

Claim and test: negative transfer exists (at least one significantly worse
cell), and it sits at the weak shared signal: in the ``hard`` regime the
difference err_transfer - err_scratch decreases with |u|, seed by seed
(:func:`refimpl.validate.trend`: each (heatmap row, seed) is a block over
|u|; per-block Spearman rho, Page's L test, one-sided, level 0.01). Any
missing value (a diverged run) fails the verdict.
"""

import numpy as np

from .. import files
from ..lab import figures as F
from ..lab import report as R
from ..lab import stats as S
from ..lab.stats import SIGNIFICANCE
from ..lab.sweep import run_sweep
from ..theory import indicators
from ._base import transfer_base

NAME = "negative_transfer"
CLAIM = ("negative transfer exists: regimes where err_transfer > err_scratch significantly, "
         "at a weak or absent shared signal")
SOURCE = "paper"
REGIMES = {"hard": {"n_down": 10, "v_down_norm": 1.0},
           "benign": {"n_down": 40, "v_down_norm": 3.0}}


def holm(pvalues):
    """Holm-Bonferroni adjusted p-values (:func:`refimpl.validate.holm`)."""
    return S.holm(pvalues)


def decide(us, grids):
    """The verdict from the measured errors of all heatmaps (pure: no files,
    no sweeps).

    Parameters
    ----------
    us : sequence of float, shape (k,)
        The values of |u| (the heatmaps' columns; k >= 3 distinct).
    grids : list of dict
        One per heatmap, each with ``regime`` (the trend uses the ``"hard"``
        ones) and ``et``, ``es``: err_transfer and err_scratch, arrays of
        shape (rows, k, seeds) (NaN: missing).

    Returns
    -------
    dict
        ``verdict`` ("PASS" when at least one cell is significantly worse and
        the hard regime's difference decreases with |u|, and no value is
        missing), ``verdict_tests`` (without the missing-value rule, what
        ``negative_transfer.json`` records), ``missing``; ``p`` and ``padj``
        (per heatmap, shape (rows, k): the one-sided paired t-test of
        err_transfer > err_scratch per cell, and its Holm adjustment over
        every cell of every heatmap together), ``significant`` (the cells
        with padj < SIGNIFICANCE as (heatmap, row, column) indices, heatmap
        by heatmap in row-major order), ``trend`` (each (hard heatmap row,
        seed) a block over |u|, one-sided, decrease).
    """
    ps = [np.array([[S.paired_t(G["et"][i, j], G["es"][i, j], "greater")["p"]
                     for j in range(G["et"].shape[1])] for i in range(G["et"].shape[0])])
          for G in grids]
    # Holm over every cell of every heatmap: one family for "at least one cell"
    flat = holm(np.concatenate([p.ravel() for p in ps]))
    padj, off = [], 0
    for p in ps:
        padj.append(flat[off:off + p.size].reshape(p.shape))
        off += p.size
    significant = [(g, int(i), int(j)) for g, pa in enumerate(padj)
                   for i, j in zip(*np.nonzero(pa < SIGNIFICANCE))]
    diffs = [G["et"] - G["es"] for G in grids]
    # location: in the hard regime, the difference falls with |u|
    # blocks: (heatmap row, seed); points: |u|
    blocks = np.concatenate([np.moveaxis(d, 1, 0).reshape(len(us), -1)
                             for G, d in zip(grids, diffs) if G["regime"] == "hard"], axis=1)
    tr = S.trend(us, blocks, "less")
    missing = S.n_missing(*diffs)
    tests = "PASS" if bool(significant) and tr["rho"] < 0 and tr["p"] < SIGNIFICANCE else "FAIL"
    return {"verdict": "FAIL" if missing else tests, "verdict_tests": tests, "missing": missing,
            "p": ps, "padj": padj, "significant": significant, "trend": tr}


def _grid(out, regime, over, quick, us, field, values, reps, jobs):
    base = transfer_base(quick, **over)
    grid = [base.replace(u_norm=u, **{field: v}) for v in values for u in us]
    sw = run_sweep(grid, replicates=reps, jobs=jobs, cache=R.cache_dir(out),
                   label=f"{NAME} {regime} {field}", salt=NAME,
                   metrics=("err_transfer", "err_scratch"))
    shape = (len(values), len(us), reps)
    et, es = sw.values("err_transfer").reshape(shape), sw.values("err_scratch").reshape(shape)
    diff = et - es
    gam = np.array([[indicators(c)["gamma_inh"] for c in grid[i * len(us):(i + 1) * len(us)]]
                    for i in range(len(values))])
    return {"regime": regime, "field": field, "values": values, "us": us, "diff": diff,
            "et": et, "es": es, "gamma_inh": gam, "base": base}


def _heatmap(path, G, reps):
    if not F.available():
        return []
    from matplotlib.patches import Rectangle

    fig, ax = F.subplots(figsize=(6.2, 4.4))
    mean = G["diff"].mean(axis=2)
    lim = max(0.02, float(np.nanmax(np.abs(mean))))
    im = ax.imshow(mean, origin="lower", aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set_xticks(range(len(G["us"])), [f"{u:g}" for u in G["us"]])
    ax.set_yticks(range(len(G["values"])), [f"{v:g}" for v in G["values"]])
    ax.set_xlabel("|u| (shared signal)")
    ax.set_ylabel({"alpha": "alpha", "n_up": "N_1"}[G["field"]])
    for i in range(mean.shape[0]):
        for j in range(mean.shape[1]):
            sig = G["padj"][i, j] < SIGNIFICANCE
            ax.text(j, i, f"{mean[i, j]:+.3f}" + ("\n*" if sig else ""), ha="center", va="center",
                    fontsize=7, fontweight="bold" if sig else "normal")
            if sig:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="k", lw=2))
    g = np.log10(np.maximum(G["gamma_inh"], 1e-3))
    if np.ptp(g) > 0:
        cs = ax.contour(np.arange(len(G["us"])), np.arange(len(G["values"])), g,
                        levels=[-1, 0, 1], colors="k", linestyles=["dotted", "dashed", "solid"],
                        linewidths=1)
        ax.clabel(cs, fmt={-1: "Γ_inh=0.1", 0: "Γ_inh=1", 1: "Γ_inh=10"}, fontsize=7)
    fig.colorbar(im, ax=ax, label="err_transfer - err_scratch")
    ax.set_title(f"regime {G['regime']}: transfer - scratch ({reps} seeds)\nbox = significantly "
                 f"worse, Holm over all heatmaps", fontsize=9)
    return [F.save(fig, path, dpi=100)]


def _rows(G, us, reps):
    rows = []
    for i, v in enumerate(G["values"]):
        for j, u in enumerate(us):
            d = G["diff"][i, j]
            rows.append([G["regime"], G["field"], v, u, d.mean(), d.std(ddof=1) / np.sqrt(reps),
                         G["et"][i, j].mean(), G["es"][i, j].mean(), G["p"][i, j],
                         G["padj"][i, j], G["gamma_inh"][i, j]])
    return rows


def _heatmap_table(G, reps, n_cells):
    return (f"**Regime `{G['regime']}`, (|u|, {G['field']})** — mean err_transfer - "
            f"err_scratch ± se; `*` significantly worse (Holm-adjusted over all "
            f"{n_cells} cells, p < {SIGNIFICANCE}); "
            f"scratch error range {G['es'].mean(axis=2).min():.3f}–{G['es'].mean(axis=2).max():.3f}\n\n"
            + R.markdown_table([G["field"] + " \\ |u|"] + [f"{u:g}" for u in G["us"]],
                               [[f"{v:g}"] + [R.fmt_mean_se(G["diff"][i, j].mean(),
                                                            G["diff"][i, j].std(ddof=1) / np.sqrt(reps))
                                              + (" *" if G["padj"][i, j] < SIGNIFICANCE else "")
                                              for j in range(len(G["us"]))]
                                for i, v in enumerate(G["values"])]))


def _body(grids, reps, figs):
    n_cells = sum(G["p"].size for G in grids)
    b = grids[0]["base"]
    return "\n\n".join([
        f"Base: d = {b.d}, m = {b.m}, |v_1| = {b.v_up_norm:g}, sigma_p = {b.sigma_p_up:g}, "
        f"p_2 = {b.flip_down:g}, {b.steps_down} GD steps per stage; (|u|, alpha) grids at N_1 = "
        f"{b.n_up}, (|u|, N_1) grids at alpha = {b.alpha:g}; regimes: "
        + "; ".join(f"`{k}`: N_2 = {v['n_down']}, |v_2| = {v['v_down_norm']:g}" for k, v in REGIMES.items())
        + f". {reps} seeds per cell. Verdict: PASS needs a significantly worse cell (Holm over all "
        f"{n_cells} cells of the four heatmaps) and a decreasing trend of the difference in |u| "
        f"in the hard regime (seed by seed: per-seed Spearman rho, Page's L test, one-sided).",
        *[_heatmap_table(G, reps, n_cells) for G in grids], R.figure_note(figs)])


def run(out, quick=False, jobs=1):
    folder = R.claim_folder(out, NAME)
    reps = 3 if quick else 16
    us = [0.0, 1.0, 2.0] if quick else [0.0, 0.5, 1.0, 1.5, 2.0]
    alphas = [0.5, 1.0] if quick else [0.2, 0.5, 0.8, 1.0]
    nups = [10, 40] if quick else [20, 50, 100, 200]
    grids, figs = [], []
    for regime, over in REGIMES.items():
        if quick:
            over = {"n_down": min(over["n_down"], 20), "v_down_norm": over["v_down_norm"]}
        for field, values in (("alpha", alphas), ("n_up", nups)):
            grids.append(_grid(out, regime, over, quick, us, field, values, reps, jobs))
    dec = decide(us, grids)
    for G, p, padj in zip(grids, dec["p"], dec["padj"]):
        G["p"], G["padj"] = p, padj
    for G in grids:
        figs += _heatmap(folder / f"negative_{G['regime']}_{G['field']}.png", G, reps)
    header = ["regime", "field", "value", "u_norm", "diff", "diff_se", "err_transfer", "err_scratch",
              "p", "p_holm", "gamma_inh"]
    allrows = [r for G in grids for r in _rows(G, us, reps)]
    files.write_csv(folder / "negative_transfer.csv", header, allrows)
    sig = [(grids[g]["regime"], grids[g]["field"], grids[g]["values"][i], grids[g]["us"][j],
            grids[g]["diff"][i, j].mean()) for g, i, j in dec["significant"]]
    tr = dec["trend"]
    worst = max(sig, key=lambda s: s[4]) if sig else None
    statistic = (f"{len(sig)} of {sum(G['diff'][..., 0].size for G in grids)} cells significantly "
                 f"worse (paired one-sided t, Holm over all cells, level {SIGNIFICANCE})"
                 + (f", largest {worst[4]:+.3f} at |u| = {worst[3]:g} ({worst[0]}, {worst[1]} = "
                    f"{worst[2]:g})" if worst else "")
                 + f"; hard regime, diff against |u|: {R.fmt_trend(tr)} (decrease)")
    files.write_json(folder / "negative_transfer.json", {
        "claim": CLAIM, "verdict": dec["verdict_tests"], "statistic": statistic, "replicates": reps,
        "regimes": REGIMES, "significant_cells": sig, "trend_hard": tr, "n_missing": dec["missing"],
        "base_config": grids[0]["base"].to_dict(), "table": [dict(zip(header, r)) for r in allrows]})
    body = _body(grids, reps, figs)
    return R.result(NAME, CLAIM, dec["verdict"], statistic, body, source=SOURCE,
                    missing=dec["missing"], significant_cells=len(sig))
