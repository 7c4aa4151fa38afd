"""negative_transfer: err_transfer - err_scratch over (|u|, alpha) and over (|u|, N_1), in a
regime where scratch is hard and one where it is benign (docs/model.md §8.1: negative transfer
occurs, and its cause is a weak shared signal; the indicators of §7 beside every cell). Per
distinct cell and stopping rule a Wilcoxon test of the difference and an exact McNemar test of
the failures, Holm within the rule (existence), and Page's trend test over |u| in the benign
regime's alpha rows (location; v3, docs/model.md §8.4). The design is :data:`PROTOCOL`."""

from functools import partial

import numpy as np

from ..lab import figures as F
from ..lab import present as P
from ..lab import report as R
from ..lab import stats as S
from ..lab.claim import Figure, Outcome, Protocol, Size, Table
from ..lab.stats import SIGNIFICANCE
from ..theory import indicators
from . import _base as B

METRICS = tuple("err_transfer err_scratch loss_down loss_scratch steps_down steps_scratch".split())
TESTS = ("wilcoxon", "failures", "both")
MARKS = {"wilcoxon": " *", "failures": " †", "both": " *†"}
HEADER = "rule regime field value u_norm diff_mean diff_se diff_median".split()
HEADER += "err_transfer_mean err_transfer_median err_scratch_mean err_scratch_median".split()
HEADER += "fail_transfer fail_scratch stalled_transfer stalled_scratch p_wilcoxon".split()
HEADER += "p_failures padj_wilcoxon padj_failures gamma_inh gamma_scr".split()


def _size(quick, seeds, cap, us, alphas, nups, n_benign):
    """The distinct rows of both regimes (``benign`` with N_2 = ``n_benign``): alpha at the
    base N_1, then N_1 at the base alpha (the N_1 row at the base N_1 is the alpha row at the
    base alpha: run and counted once)."""
    regimes = {"hard": {"n_down": 10, "v_down_norm": 1.0}}
    regimes["benign"] = {"n_down": n_benign, "v_down_norm": 3.0}
    rows, grids = [], []
    for regime, over in regimes.items():
        base = B.transfer_base(quick, engine=B.ENGINE, **over)
        for a in alphas:
            rows.append({"regime": regime, "field": "alpha", "value": a})
            grids.append([base.replace(u_norm=u, alpha=a) for u in us])
        for n in (n for n in nups if n != base.n_up):
            rows.append({"regime": regime, "field": "n_up", "value": n})
            grids.append([base.replace(u_norm=u, n_up=n) for u in us])
    base = B.transfer_base(quick, engine=B.ENGINE).to_dict()
    values = dict(us=us, rows=rows, regimes=regimes, base=base, epsilon=B.EPSILON, loss_cap=cap)
    return Size({"rows": grids}, seeds, **values)


PROTOCOL = Protocol(
    name="negative_transfer",
    claim="negative transfer exists: regimes where err_transfer > err_scratch significantly, "
    "at a weak or absent shared signal",
    source="paper",
    full=_size(
        False, 20, 2000, [0.0, 0.5, 1.0, 1.5, 2.0], [0.2, 0.5, 0.8, 1.0], [20, 50, 100, 200], 40
    ),
    quick=_size(True, 3, 600, [0.0, 1.0, 2.0], [0.5, 1.0], [10, 40], 20),
    statistic="per distinct cell and stopping rule (the fixed step count T; training loss <= "
    f"{B.EPSILON:g} within the size's step cap): one-sided Wilcoxon signed-rank test of "
    "err_transfer - err_scratch > 0 and one-sided exact McNemar test of failures (error > "
    f"{B.FAILURE_ERROR}), Holm over the 2 x (distinct cells) tests of the rule; "
    "Page's L test (one-sided, decrease) of the difference over |u| in the benign regime's "
    "alpha rows (at the base N_1), blocks = (alpha row, seed)",
    pass_rule=f"under both stopping rules at least one distinct cell with a Holm-adjusted p < "
    f"{SIGNIFICANCE} (existence) and, in the benign regime's alpha rows, mean per-block "
    f"Spearman rho < 0 with Page p < {SIGNIFICANCE} (location); no missing value",
    fixed="2026-12-06",
    salt="negative_transfer-v3",
    common=B.STOP_FIELDS,
    pairing="transfer and scratch paired within a cell; independent seeds across cells; "
    "common random numbers across the stopping rule",
    rules={
        "engine": B.ENGINE_RULE,
        "failure": f"clean test error > {B.FAILURE_ERROR}",
        "stalled": f"training loss > {B.EPSILON:g} at the cap (loss-target runs)",
    },
    notes={
        "regimes": "hard: scratch is not benign (N_2 = 10, |v_2| = 1: the downstream task alone "
        "is hard, scratch error far above 0); benign: scratch is benign (|v_2| = 3 and a larger "
        "N_2: the downstream task alone is learnable, scratch error near 0)",
        "rows": "alpha at the base N_1, and N_1 at the base alpha; the (|u|, N_1) heatmap's row "
        "at the base N_1 is the alpha row at the base alpha, run and counted once",
        "reported, not in the verdict": "per cell mean and median difference, failures and "
        "stalled runs; the hard regime's trend over |u| (all its rows)",
    },
    disclosures=B.history("negative_transfer"),
)


def measure(size, sweep):
    """Both rules in one sweep (the first runs' items): ``{rule: {metric: (rows, |u|, seeds)}}``."""
    grid = [c for row in size.configs["rows"] for c in row]
    vals = B.sweep_rules_once(sweep, grid, size.loss_cap, METRICS, measure="outcomes_batched")
    shape = (len(size.rows), len(size.us), size.seeds)
    return {r: {k: v.reshape(shape) for k, v in vals[r].items()} for r in B.RULES}


def _cell_tests(t, s, failure):
    """Per cell (row, |u|): the one-sided Wilcoxon p of t - s > 0 and the exact McNemar p of
    t failing (error > ``failure``) more often than s."""
    ft = np.where(np.isfinite(t), (t > failure).astype(float), np.nan)
    fs = np.where(np.isfinite(s), (s > failure).astype(float), np.nan)
    cells = list(np.ndindex(t.shape[:2]))
    pw = [S.wilcoxon(t[c], s[c])["p"] for c in cells]
    pf = [S.paired_failures(ft[c], fs[c])["p"] for c in cells]
    return np.array(pw).reshape(t.shape[:2]), np.array(pf).reshape(t.shape[:2])


def _significant(aw, af):
    """The cells with an adjusted p below the level, row-major: (row, column, which test)."""
    ok = (np.asarray(aw) < SIGNIFICANCE, np.asarray(af) < SIGNIFICANCE)
    which = {(True, False): "wilcoxon", (False, True): "failures", (True, True): "both"}
    cells = ((i, j, (bool(ok[0][i, j]), bool(ok[1][i, j]))) for i, j in np.ndindex(aw.shape))
    return [(i, j, which[k]) for i, j, k in cells if any(k)]


def _trend(us, diff, rows, regime, field=None):
    """Page's test of a decrease over |u|, every (row of ``regime`` varying ``field``, any
    field when None; seed) a block; None when there is no such row. ``diff``: (rows, |u|,
    seeds)."""
    match = [r["regime"] == regime and field in (None, r["field"]) for r in rows]
    keep = [d for d, ok in zip(diff, match, strict=True) if ok]
    return S.trend(us, np.concatenate(keep, axis=1), "less") if keep else None


def _rule(us, rows, t, s, failure=B.FAILURE_ERROR):
    """The tests of one stopping rule on err_transfer ``t`` and err_scratch ``s``: existence
    (Holm over the cells' tests) and location (the benign alpha rows' trend over |u|)."""
    pw, pf = _cell_tests(t, s, failure)
    adj = S.holm(np.concatenate([pw.ravel(), pf.ravel()]))
    aw, af = adj[: pw.size].reshape(pw.shape), adj[pw.size :].reshape(pf.shape)
    sig = _significant(aw, af)
    trend, hard = _trend(us, t - s, rows, "benign", "alpha"), _trend(us, t - s, rows, "hard")
    location = bool(trend is not None and trend["rho"] < 0 and trend["p"] < SIGNIFICANCE)
    tests = dict(p_wilcoxon=pw, p_failures=pf, padj_wilcoxon=aw, padj_failures=af)
    found = dict(significant=sig, trend=trend, trend_hard=hard, existence=bool(sig))
    return tests | found | {"location": location, "holds": bool(sig) and location}


def decide(size, m):
    """The verdict (pure): under every stopping rule of ``m`` at least one distinct cell
    significantly worse (either test, Holm over the rule's 2 x cells tests) and the benign
    alpha rows' difference decreasing over |u|; no value missing. ``rules``: per rule the
    p-values per cell (rows, |u|), the significant cells (row, column, test), ``trend`` (the
    location's) and ``trend_hard`` (the hard rows', reported)."""
    rules, missing = {}, 0
    for rule, v in m.items():
        t, s = B.as_float(v["err_transfer"]), B.as_float(v["err_scratch"])
        rules[rule] = _rule(size.us, size.rows, t, s)
        missing += S.n_missing(t, s)
    tests = "PASS" if rules and all(r["holds"] for r in rules.values()) else "FAIL"
    verdict = "FAIL" if missing else tests
    return {"verdict": verdict, "verdict_tests": tests, "missing": missing, "rules": rules}


def _label(size, i):
    """Row ``i``'s name with the fixed factor: ``alpha = 0.5 (N_1 = 200)``."""
    c = size.configs["rows"][i][0]
    if size.rows[i]["field"] == "alpha":
        return f"alpha = {c.alpha:g} (N_1 = {c.n_up})"
    return f"N_1 = {c.n_up} (alpha = {c.alpha:g})"


def _summary(v, epsilon):
    """Per cell of one rule's values: the difference's mean, se and median, both errors'
    outcome summaries (cells flattened), failing and stalled runs of each arm."""
    t, s = B.as_float(v["err_transfer"]), B.as_float(v["err_scratch"])
    rows, k, reps = t.shape
    d = S.outcome_summary((t - s).reshape(rows * k, reps), np.inf)
    loss = (B.as_float(v["loss_down"]), B.as_float(v["loss_scratch"]))
    arms = (("transfer", t), ("scratch", s))
    out = dict(mean=d["mean"].reshape(rows, k), median=d["median"].reshape(rows, k))
    out |= {a: S.outcome_summary(x.reshape(rows * k, reps), B.FAILURE_ERROR) for a, x in arms}
    out["fail"] = tuple((x > B.FAILURE_ERROR).sum(axis=2) for _, x in arms)
    out["stalled"] = tuple(np.nansum(B.stalled(x, epsilon), axis=2) for x in loss)
    return out | {"se": S.sem(t - s, axis=2)}


def _part(size, label, d, s):
    """The statistic of one rule: significant cells by test, the largest median, the trend."""
    sig, n = d["significant"], len(size.rows) * len(size.us)
    which = {w: sum(1 for c in sig if c[2] == w) for w in TESTS}
    text = (
        f"{label}: {len(sig)} of {n} distinct cells significantly worse (Wilcoxon "
        f"{which['wilcoxon']}, failures {which['failures']}, both {which['both']}; Holm over "
        f"{2 * n} tests)"
    )
    if sig:
        i, j, _ = max(sig, key=lambda c: s["median"][c[0], c[1]])
        text += (
            f", largest median {s['median'][i, j]:+.3f} at |u| = {size.us[j]:g} "
            f"({size.rows[i]['regime']}, {_label(size, i)})"
        )
    return text + (
        f"; benign regime, alpha rows (N_1 = {size.base['n_up']}), difference against |u|: "
        f"{R.fmt_trend(d['trend']) if d['trend'] else 'n/a'} (decrease)"
    )


def _csv(size, summ, dec):
    """Per rule and distinct cell: the summaries, the p-values and the indicators of
    docs/model.md §7."""
    table, k = [], len(size.us)
    for r, s in summ.items():
        d, (ot, os_) = dec["rules"][r], (s["transfer"], s["scratch"])
        for (i, j), row in ((c, size.rows[c[0]]) for c in np.ndindex(len(size.rows), k)):
            c, ind = i * k + j, indicators(size.configs["rows"][i][j])
            stall = [s["stalled"][0][i, j], s["stalled"][1][i, j]] if r == "loss" else [None] * 2
            cells = [r, row["regime"], row["field"], row["value"], size.us[j]]
            cells += [s["mean"][i, j], s["se"][i, j], s["median"][i, j]]
            cells += [ot["mean"][c], ot["median"][c], os_["mean"][c], os_["median"][c]]
            cells += [s["fail"][0][i, j], s["fail"][1][i, j], *stall]
            cells += [d[f"{p}_{w}"][i, j] for p in ("p", "padj") for w in ("wilcoxon", "failures")]
            table.append(cells + [ind["gamma_inh"], ind["gamma_scr"]])
    return Table(HEADER, table, name="negative_transfer", show=False)


def _cell(s, marks, i, j):
    """A heatmap cell in text: mean / median (failing runs transfer:scratch) and its mark."""
    text = f"{s['mean'][i, j]:+.3f} / {s['median'][i, j]:+.3f} "
    text += f"({s['fail'][0][i, j]}:{s['fail'][1][i, j]})"
    return text + MARKS.get(marks.get((i, j)), "")


def _regime_table(size, rule, label, regime, s, d):
    """One regime under one rule: per distinct row and |u| the cell of :func:`_cell`."""
    reps, n = size.seeds, len(size.rows) * len(size.us)
    idx = [i for i, row in enumerate(size.rows) if row["regime"] == regime]
    marks = {(i, j): w for i, j, w in d["significant"]}
    loss = rule == "loss"
    head = ["row \\ |u|", *(f"{u:g}" for u in size.us)]
    head += ["stalled (transfer / scratch)"] if loss else []
    rows = [[_label(size, i), *(_cell(s, marks, i, j) for j in range(len(size.us)))] for i in idx]
    if loss:
        for row, i in zip(rows, idx, strict=True):
            st = [int(s["stalled"][a][i].sum()) for a in (0, 1)]
            row.append(f"{st[0]} / {st[1]} of {len(size.us) * reps}")
    scratch = s["scratch"]["mean"].reshape(len(size.rows), -1)[idx]  # cell means
    trend = d["trend"] if regime == "benign" else d["trend_hard"]
    title = (
        f"**Regime `{regime}`, {label}** — per cell mean / median of err_transfer - err_scratch "
        f"over {reps} seeds, (failing runs transfer:scratch, error > {B.FAILURE_ERROR:g}); `*` "
        f"Wilcoxon, `†` failures significantly worse (Holm over {2 * n} tests, p < "
        f"{SIGNIFICANCE}); scratch error (cell means) {np.nanmin(scratch):.3f}–"
        f"{np.nanmax(scratch):.3f}; difference against |u| "
        f"({'in the verdict: the alpha rows' if regime == 'benign' else 'reported'}): "
        f"{R.fmt_trend(trend) if trend else 'n/a'}"
    )
    return Table(head, rows, title=title)


def _draw(path, size, idx, mean, sig, title):
    """The heatmap of one regime under one rule: every distinct row of the regime over |u|,
    significantly worse cells boxed."""
    from matplotlib.patches import Rectangle

    fig, ax = F.subplots(figsize=(6.4, 4.8))
    m = mean[idx]
    lim = max(0.02, float(np.nanmax(np.abs(m)))) if np.isfinite(m).any() else 0.02
    im = ax.imshow(m, origin="lower", aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set_xticks(range(len(size.us)), [f"{u:g}" for u in size.us])
    ax.set_yticks(range(len(idx)), [_label(size, i) for i in idx])
    ax.set_xlabel("|u| (shared signal)")
    marks = {(i, j): w for i, j, w in sig}
    for (a, j), i in ((c, idx[c[0]]) for c in np.ndindex(len(idx), len(size.us))):
        w, text = marks.get((i, j)), f"{m[a, j]:+.3f}"
        text, weight = (text + "\n*", "bold") if w else (text, "normal")
        ax.text(j, a, text, ha="center", va="center", fontsize=7, fontweight=weight)
        if w:
            ax.add_patch(Rectangle((j - 0.5, a - 0.5), 1, 1, fill=False, ec="k", lw=2))
    fig.colorbar(im, ax=ax, label="mean err_transfer - err_scratch")
    ax.set_title(title, fontsize=9)
    F.save(fig, path, dpi=100)


def _text(size, n):
    """The design in words: the base, the regimes, the rows."""
    b, g = size.base, size.regimes
    regimes = "; ".join(
        f"`{k}`: N_2 = {o['n_down']}, |v_2| = {o['v_down_norm']:g}" for k, o in g.items()
    )
    return (
        f"Base: {P.regime(b, ('d', 'm', 'v_up_norm', P.SIGMA_P, 'flip_down', 'eta'))}; regimes: "
        f"{regimes}. Rows: alpha at N_1 = {b['n_up']}, and N_1 at alpha = {b['alpha']:g} (the N_1 "
        f"= {b['n_up']} row is the alpha = {b['alpha']:g} row, run and counted once): {n} "
        f"distinct cells, {size.seeds} seeds each."
    )


def _named(size, s, i, j, w):
    """A significant cell named (for the JSON), with its mean and median difference."""
    cell = {"regime": size.rows[i]["regime"], "row": _label(size, i), "u_norm": size.us[j]}
    return cell | {"test": w, "diff_mean": s["mean"][i, j], "diff_median": s["median"][i, j]}


def present(size, m, dec):
    n, reps = len(size.rows) * len(size.us), size.seeds
    steps = size.configs["rows"][0][0].steps_down
    labels = {r: B.stop_label(r, size.epsilon, size.loss_cap, steps) for r in m}
    summ = {r: _summary(m[r], size.epsilon) for r in m}
    parts = [_part(size, labels[r], dec["rules"][r], summ[r]) for r in m]
    statistic = "; ".join(parts) + f"; {reps} seeds per cell"
    tables, figures = [], []
    for r, regime in ((r, g) for r in m for g in size.regimes):
        d = dec["rules"][r]
        tables.append(_regime_table(size, r, labels[r], regime, summ[r], d))
        idx = [i for i, row in enumerate(size.rows) if row["regime"] == regime]
        title = f"regime {regime}, {labels[r]}: transfer - scratch\n({reps} seeds; box = "
        title += f"significantly worse, Holm over {2 * n} tests)"
        draw = partial(_draw, size=size, idx=idx, mean=summ[r]["mean"], sig=d["significant"])
        figures.append(Figure(f"negative_{regime}_{r}", partial(draw, title=title)))
    sections = [_text(size, n), *tables, _csv(size, summ, dec), *figures]
    sig = {r: [_named(size, summ[r], *c) for c in dec["rules"][r]["significant"]] for r in m}
    design = {"base_config": size.base, "regimes": size.regimes, "rows": size.rows}
    data = {**design, "u_norm": size.us, "distinct_cells": n, "replicates": reps}
    return Outcome(statistic, sections, data | {"significant_cells": sig, "per_seed": m})
