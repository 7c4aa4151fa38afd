"""The report of the Gamma confirmation (claims ``transfer_phase`` and
``gamma_candidates``): the statistic line, the candidates' table, the
scaling table, the step-size check, the cells' CSV and the collapse figure."""

from __future__ import annotations

import numpy as np

from ..lab import figures as F
from ..lab.claim import Figure, Outcome, Table
from . import _gamma as G
from . import _gamma_fit as GF
from . import _gamma_judge as J


def _f(x, digits=3):
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def _p(p):
    return "n/a" if p is None or not np.isfinite(p) else (f"{p:.2g}" if p >= 1e-3 else "< 0.001")


def _shifts(sc):
    return ", ".join(
        f"s = {s}: {_f(v['shift'], 2)} [{_f(v['ci90'][0], 2)}, {_f(v['ci90'][1], 2)}]"
        for s, v in sc["shifts"].items()
    )


def _row(k, c):
    a, b, sc = c["auc"], c["brier"], c["scaling"]
    w = sc["width"]
    return [
        G.LABELS[k],
        _f(a["auc"]),
        _f(a["lower95"]),
        _f(b["diff"], 4),
        _f(b["upper95"], 4),
        _shifts(sc),
        f"{_f(w['ratio'], 2)} (upper {_f(w['upper95'], 2)})",
        ", ".join(c["flagged"]) or "none",
        _p(c["p"]),
        _p(c["p_holm"]),
        "PASS" if c["passes"] else "fail",
    ]


def candidate_table(dec):
    """One row per candidate and null: every test's estimate and bound."""
    head = ["candidate", "AUC", "95% lower", "Brier - free", "95% upper"]
    head += ["threshold shift from s = 1 (90% interval)", "width ratio largest / s = 1"]
    head += ["residual factors flagged", "p", "p (Holm)", "passes"]
    rows = [_row(k, c) for k, c in dec["candidates"].items()]
    title = (
        f"**Candidates** — AUC of the cells' sign (needs a lower bound >= {G.AUC_FLOOR}), "
        f"out-of-sample Brier against the free model's {_f(dec['free_brier'], 4)} (needs an "
        f"upper bound < {G.BRIER_DELTA}), threshold shifts in decades (needs +-{G.SHIFT_MARGIN}), "
        f"width ratio (needs < {G.WIDTH_RATIO}); Holm over the five candidates at {G.LEVEL} "
        "(nulls unadjusted, for comparison)"
    )
    return Table(head, rows, title=title)


def scaling_table(dec):
    """Per candidate and scale the fitted threshold and width."""
    rows = []
    for k, c in dec["candidates"].items():
        for s, b in c["scaling"]["boundaries"].items():
            rows.append([G.LABELS[k], s, _f(b["log10_threshold"], 2), _f(b["width_decades"], 2)])
    head = ["candidate", "scale s", "log10 threshold", "10-90% width (decades)"]
    return Table(head, rows, name="gamma_scaling", show=False)


def eta_text(dec):
    parts = []
    for v in dec["eta_check"]:
        rule = f"c = {v['c']:g} {'tied' if v['tied'] else 'untied'}"
        ci = v["ci90"]
        verdict = "within" if v["equivalent"] else "not within"
        parts.append(
            f"{rule}: mean change {v['mean_change']:+.4f} [{ci[0]:+.4f}, {ci[1]:+.4f}] ({verdict} "
            f"+-{G.ETA_MARGIN})"
        )
    return "Step-size check (reported, not in the verdict), median gain against c = 200 tied: " + (
        "; ".join(parts)
    )


def cells_table(size, m):
    """Per confirmation cell: factors, q, median gain and every candidate."""
    configs = size.configs["confirm"]
    y, x = J.scores(m["confirm"]), G.candidates(configs)
    q, med = GF.share(y), J.median_gain(m["confirm"])
    names = [*G.FACTORS, "flip_down"]
    rows = [
        [getattr(c, f) for f in names] + [q[i], med[i]] + [x[k][i] for k in x]
        for i, c in enumerate(configs)
    ]
    head = [*names, "share_gain_positive", "median_gain", *(f"log10_{k}" for k in x)]
    return Table(head, rows, name="gamma_cells", show=False)


def draw_collapse(path, size, m, key):
    """The cells' share q against log10 of candidate ``key`` at every scale,
    with each scale's fitted logistic."""
    cfg = size.configs["scaled"]
    per = len(cfg) // len(size.scales)
    x, y = G.candidates(cfg)[key], J.scores(m["scaled"])
    fig, ax = F.subplots(figsize=(6.4, 4.4))
    grid = np.linspace(np.nanmin(x), np.nanmax(x), 200)
    for i, s in enumerate(size.scales):
        sl = slice(i * per, (i + 1) * per)
        pts = ax.scatter(x[sl], GF.share(y[sl]), s=12, alpha=0.6, label=f"s = {s}")
        b0, b1 = GF.fit_1d(x[sl], y[sl])
        if np.isfinite(b0) and np.isfinite(b1):
            ax.plot(grid, 1 / (1 + np.exp(-(b0 + b1 * grid))), color=pts.get_facecolor()[0])
    ax.axhline(0.5, color="0.5", lw=0.8)
    ax.set_xlabel(f"log10 {G.LABELS[key]}")
    ax.set_ylabel("share of seeds with gain > 0")
    ax.set_title("scaled cells: collapse across scales", fontsize=9)
    ax.legend(fontsize=8)
    F.save(fig, path, dpi=100)


def best(dec, names):
    """The candidate of ``names`` with the smallest Holm p (first of equals)."""
    return min(names, key=lambda k: dec["candidates"][k]["p_holm"] or 1.0)


def statistic(dec, names):
    c = dec["candidates"]
    k = best(dec, names)
    cn = dec["counts"]
    passing = [G.LABELS[n] for n in G.CANDIDATES if c[n]["passes"]] or ["none"]
    a, b, w = c[k]["auc"], c[k]["brier"], c[k]["scaling"]["width"]
    return (
        f"{cn['positive']} of {cn['cells']} confirmation cells with q > 1/2, {cn['negative']} "
        f"with q < 1/2, {cn['half']} at 1/2; {G.LABELS[k]}: AUC {_f(a['auc'])} (lower "
        f"{_f(a['lower95'])}), Brier - free {_f(b['diff'], 4)} (upper {_f(b['upper95'], 4)}), "
        f"threshold shifts {_shifts(c[k]['scaling'])}, width ratio {_f(w['ratio'], 2)} (upper "
        f"{_f(w['upper95'], 2)}), flagged: {', '.join(c[k]['flagged']) or 'none'}; Holm p "
        f"{_p(c[k]['p_holm'])}; passing: {', '.join(passing)}"
    )


def present(size, m, dec, names, figure):
    """The Outcome of either claim; ``names``: the candidates its verdict reads,
    ``figure``: the name of its collapse figure."""
    st = dec["stalled"]
    stall = "; ".join(
        f"{part}: upstream {v['up']}, fine-tuning {v['down']}, scratch {v['scratch']} "
        f"of {v['runs']}"
        for part, v in st.items()
    )
    k = best(dec, names)
    sections = [
        f"Confirmation: {len(size.configs['confirm'])} cells x {size.seeds['confirm']} seeds; "
        f"scaled: {len(size.configs['scaled']) // len(size.scales)} cells x "
        f"{size.seeds['scaled']} seeds at s = {', '.join(map(str, size.scales))}; step-size "
        f"check: {size.n_eta} cells x {size.seeds['eta']} seeds per variant. Stalled runs (loss "
        f"> {G.EPS:g} at the cap): {stall}.",
        candidate_table(dec),
        eta_text(dec),
        Figure(figure, lambda path: draw_collapse(path, size, m, k)),
        scaling_table(dec),
        cells_table(size, m),
    ]
    return Outcome(statistic(dec, names), sections, {"per_seed": m})
