"""negative_transfer: err_transfer - err_scratch over (|u|, alpha) and over
(|u|, N_1) (docs/model.md §s 7 and 8), in two regimes:

- ``hard``: scratch is not benign (N_2 = 10, |v_2| = 1: the downstream task
  alone is hard, scratch error far above 0);
- ``benign``: scratch is benign (N_2 = 40, |v_2| = 3: the downstream task
  alone is learnable, scratch error near 0).

Design (protocol :data:`PROTOCOL`, fixed 2026-11-29 before its first full
run): per regime the distinct rows (alpha in {0.2, 0.5, 0.8, 1} at N_1 = 200;
N_1 in {20, 50, 100} at alpha = 0.5: the (|u|, N_1) heatmap's N_1 = 200 row
*is* the alpha = 0.5 row and is run and counted once), |u| in {0, ..., 2}:
35 distinct cells per regime, 70 in all. Transfer and scratch are paired
within a cell (same data, fresh filters and test draws); cells have
independent seeds.

Per cell and stopping rule (the fixed step count T = 200; equal training
loss: fine-tuning and scratch each until the loss is <= 1e-3, cap 2000
steps, the same runs stopped by the loss), two one-sided tests of "transfer
is worse": the Wilcoxon signed-rank test of err_transfer - err_scratch > 0
(the typical run is worse) and the exact McNemar test of the failures (clean
test error > 0.2: transfer fails more often than scratch; the heavy tail).
Holm over the 140 tests of a rule (70 distinct cells x 2 tests); a cell is
significantly worse when either adjusted p < 0.01.

Claim and test, under each stopping rule: negative transfer exists (at least
one significantly worse distinct cell), and it sits at the weak shared
signal: in the ``hard`` regime the difference decreases with |u| (Page's L
test, each (distinct hard row, seed) a block, one-sided, level 0.01). PASS
needs both under both rules. The same trend in the ``benign`` regime, where
the harm is largest, is reported beside it (not in the verdict). Any missing
value fails the verdict.
"""

import numpy as np

from .. import files
from ..lab import figures as F
from ..lab import report as R
from ..lab import stats as S
from ..lab.protocol import Disclosure, Protocol
from ..lab.stats import SIGNIFICANCE
from ..theory import indicators
from ._base import (
    ENGINE,
    EPSILON,
    FAILURE_ERROR,
    LOSS_CAP,
    QUICK_LOSS_CAP,
    RULES,
    rule_label,
    stalled,
    sweep_rules,
    transfer_base,
)

NAME = "negative_transfer"
CLAIM = (
    "negative transfer exists: regimes where err_transfer > err_scratch significantly, "
    "at a weak or absent shared signal"
)
SOURCE = "paper"
REGIMES = {"hard": {"n_down": 10, "v_down_norm": 1.0}, "benign": {"n_down": 40, "v_down_norm": 3.0}}
US = [0.0, 0.5, 1.0, 1.5, 2.0]
ALPHAS = [0.2, 0.5, 0.8, 1.0]
NUPS = [20, 50, 100, 200]
QUICK = {"us": [0.0, 1.0, 2.0], "alphas": [0.5, 1.0], "nups": [10, 40], "n_down_max": 20}
SEEDS = 20
QUICK_SEEDS = 3
SALT = "negative_transfer-v2"
METRICS = (
    "err_transfer",
    "err_scratch",
    "loss_down",
    "loss_scratch",
    "steps_down",
    "steps_scratch",
)

PROTOCOL = Protocol(
    claim=NAME,
    grid={
        "base": "TRANSFER_BASE (d = 600, m = 10, |v_1| = 1, sigma_p = 1, p_2 = 0.1, eta = 1, "
        "T = 200)",
        "regimes": REGIMES,
        "u_norm": US,
        "rows": {"alpha at N_1 = 200": ALPHAS, "N_1 at alpha = 0.5": [n for n in NUPS if n != 200]},
        "distinct cells": 70,
    },
    seeds=SEEDS,
    statistic=(
        "per distinct cell and stopping rule (fixed T = 200; training loss <= "
        f"{EPSILON:g} with cap {LOSS_CAP}): one-sided Wilcoxon signed-rank test of "
        "err_transfer - err_scratch > 0 and one-sided exact McNemar test of failures "
        f"(error > {FAILURE_ERROR}), Holm over the 140 tests of the rule; hard regime: "
        "Page's L test (one-sided, decrease) of the difference over |u|, blocks = "
        "(distinct row, seed)"
    ),
    pass_rule=(
        f"under both stopping rules at least one distinct cell with a Holm-adjusted p < "
        f"{SIGNIFICANCE} and, in the hard regime, mean per-block Spearman rho < 0 with "
        f"Page p < {SIGNIFICANCE}; no missing value"
    ),
    fixed="2026-11-29",
    extra={
        "pairing": "transfer and scratch paired within a cell; independent seeds across cells; "
        "common random numbers across the stopping rule",
        "salt": SALT,
        "failure": f"clean test error > {FAILURE_ERROR}",
        "stalled": f"training loss > {EPSILON:g} at the cap (loss-target runs)",
        "reported, not in the verdict": "per cell mean and median difference, failures and "
        "stalled runs; the benign regime's trend over |u|",
        "quick": f"d = 120, m = 4, T = 60, |u| in {QUICK['us']}, alpha in {QUICK['alphas']} at "
        f"N_1 = 40, N_1 in {QUICK['nups']} at alpha = 0.5, N_2 <= 20; "
        f"{QUICK_SEEDS} seeds, cap {QUICK_LOSS_CAP}",
    },
)

DISCLOSURES = [
    Disclosure(
        date="2026-11-29",
        change=(
            "80 cells (the alpha = 0.5 row of the (|u|, alpha) heatmaps and the N_1 = 200 row of "
            "the (|u|, N_1) heatmaps are the same configurations, run and counted twice, also "
            "in the Holm family and the trend blocks), one-sided paired t per cell, 16 seeds, "
            "fixed T only -> 70 distinct cells, Wilcoxon signed-rank and exact McNemar on "
            "failures per cell (Holm over the 140 tests), trend blocks over distinct rows, 20 "
            "seeds, both stopping rules, fresh seed stream (salt negative_transfer-v2)"
        ),
        reason=(
            "the validation audit (3.7, P3): 10 duplicated cells, 3 of the 12 significant ones "
            "counted twice (9 distinct of 70); heavy-tailed outcomes (P1); issue 9 items 4-6"
        ),
        earlier=(
            "PASS: 12 of 80 cells significantly worse (paired one-sided t, Holm over all cells, "
            "level 0.01), i.e. 9 of 70 distinct cells, largest +0.092 at |u| = 0 (benign, "
            "alpha = 1); hard regime, diff against |u|: mean per-seed Spearman rho = -0.880 ± "
            "0.016, Page's test p < 1e-10 (decrease)"
        ),
    )
]


def holm(pvalues):
    """Holm-Bonferroni adjusted p-values (:func:`refimpl.lab.stats.holm`)."""
    return S.holm(pvalues)


def _arr(a):
    return np.array(
        [[[np.nan if v is None else v for v in cell] for cell in row] for row in a], float
    )


def _trend_over_rows(us, diff, regimes, regime):
    """Page's test of a decrease over |u| with every (row of ``regime``, seed)
    a block; None when the regime has no row. ``diff``: (rows, k, seeds)."""
    rows = [diff[i] for i in range(len(diff)) if regimes[i] == regime]
    if not rows:
        return None
    return S.trend(us, np.concatenate(rows, axis=1), "less")  # (k, rows * seeds)


def decide(us, regimes, et, es, failure=FAILURE_ERROR):
    """The verdict from the errors of the distinct rows (pure: no files, no
    sweeps).

    Parameters
    ----------
    us : sequence of float, shape (k,)
        The values of |u| (the columns; k >= 3 distinct).
    regimes : sequence of str, length R
        The regime of each distinct row (the trend uses the ``"hard"`` rows;
        the ``"benign"`` rows' trend is reported).
    et, es : mapping rule -> array of shape (R, k, seeds)
        err_transfer and err_scratch per distinct row, |u| and seed under
        each stopping rule (NaN or None: missing). Each row must be a
        distinct configuration: a row given twice is counted twice.
    failure : float
        A run fails when its error exceeds this.

    Returns
    -------
    dict
        ``verdict`` ("PASS" when under every rule at least one cell is
        significantly worse and the hard rows' difference decreases with |u|,
        and no value is missing), ``verdict_tests`` (without the
        missing-value rule), ``missing``, and ``rules`` (rule -> dict):
        ``p_wilcoxon``, ``p_failures`` (shape (R, k): one-sided Wilcoxon of
        err_transfer - err_scratch > 0, exact McNemar of failing more often),
        ``padj_wilcoxon``, ``padj_failures`` (Holm over the 2 R k tests of
        the rule), ``significant`` (row, column, which: "wilcoxon",
        "failures" or "both", in row-major order), ``trend`` (hard rows,
        blocks = (row, seed), decrease), ``trend_benign`` (the same over the
        benign rows, or None), ``existence``, ``location``, ``holds``.
    """
    regimes = list(regimes)
    rules, missing = {}, 0
    for rule in et:
        t, s = _arr(et[rule]), _arr(es[rule])
        R_, k = t.shape[:2]
        pw = np.array([[S.wilcoxon(t[i, j], s[i, j])["p"] for j in range(k)] for i in range(R_)])
        ft = np.where(np.isfinite(t), (t > failure).astype(float), np.nan)
        fs = np.where(np.isfinite(s), (s > failure).astype(float), np.nan)
        pf = np.array(
            [[S.paired_failures(ft[i, j], fs[i, j])["p"] for j in range(k)] for i in range(R_)]
        )
        adj = holm(np.concatenate([pw.ravel(), pf.ravel()]))
        aw, af = adj[: pw.size].reshape(pw.shape), adj[pw.size :].reshape(pf.shape)
        sig = []
        for i in range(R_):
            for j in range(k):
                w, f = bool(aw[i, j] < SIGNIFICANCE), bool(af[i, j] < SIGNIFICANCE)
                if w or f:
                    sig.append((i, j, "both" if w and f else ("wilcoxon" if w else "failures")))
        tr, tb = (_trend_over_rows(us, t - s, regimes, g) for g in ("hard", "benign"))
        existence = bool(sig)
        location = bool(tr is not None and tr["rho"] < 0 and tr["p"] < SIGNIFICANCE)
        missing += S.n_missing(t, s)
        rules[rule] = {
            "p_wilcoxon": pw,
            "p_failures": pf,
            "padj_wilcoxon": aw,
            "padj_failures": af,
            "significant": sig,
            "trend": tr,
            "trend_benign": tb,
            "existence": existence,
            "location": location,
            "holds": existence and location,
        }
    tests = "PASS" if rules and all(r["holds"] for r in rules.values()) else "FAIL"
    return {
        "verdict": "FAIL" if missing else tests,
        "verdict_tests": tests,
        "missing": missing,
        "rules": rules,
    }


def distinct_rows(quick):
    """The distinct rows of the protocol: list of dicts ``regime``, ``field``
    ("alpha" or "n_up"), ``value`` and ``configs`` (one per |u|). The
    (|u|, N_1) heatmap's row at the base N_1 is the alpha row at the base
    alpha and is not repeated."""
    us = QUICK["us"] if quick else US
    alphas = QUICK["alphas"] if quick else ALPHAS
    nups = QUICK["nups"] if quick else NUPS
    rows = []
    for regime, over in REGIMES.items():
        if quick:
            over = {
                "n_down": min(over["n_down"], QUICK["n_down_max"]),
                "v_down_norm": over["v_down_norm"],
            }
        base = transfer_base(quick, engine=ENGINE, **over)
        for a in alphas:
            rows.append(
                {
                    "regime": regime,
                    "field": "alpha",
                    "value": a,
                    "configs": [base.replace(u_norm=u, alpha=a) for u in us],
                }
            )
        for n in nups:
            if n == base.n_up:  # the alpha = base.alpha row: run once
                continue
            rows.append(
                {
                    "regime": regime,
                    "field": "n_up",
                    "value": n,
                    "configs": [base.replace(u_norm=u, n_up=n) for u in us],
                }
            )
    return us, rows


def _label(row):
    """A row's name with the fixed factor: ``alpha = 0.5 (N_1 = 200)``."""
    c = row["configs"][0]
    if row["field"] == "alpha":
        return f"alpha = {c.alpha:g} (N_1 = {c.n_up})"
    return f"N_1 = {c.n_up} (alpha = {c.alpha:g})"


def _heatmaps(path, rows, us, idx, mean, sig, title):
    """One figure per (regime, rule): all distinct rows of the regime."""
    if not F.available():
        return []
    from matplotlib.patches import Rectangle

    fig, ax = F.subplots(figsize=(6.4, 4.8))
    m = mean[idx]
    lim = max(0.02, float(np.nanmax(np.abs(m)))) if np.isfinite(m).any() else 0.02
    im = ax.imshow(m, origin="lower", aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set_xticks(range(len(us)), [f"{u:g}" for u in us])
    ax.set_yticks(range(len(idx)), [_label(rows[i]) for i in idx])
    ax.set_xlabel("|u| (shared signal)")
    marks = {(i, j): w for i, j, w in sig}
    for a, i in enumerate(idx):
        for j in range(len(us)):
            w = marks.get((i, j))
            ax.text(
                j,
                a,
                f"{m[a, j]:+.3f}" + ("" if w is None else "\n*"),
                ha="center",
                va="center",
                fontsize=7,
                fontweight="bold" if w else "normal",
            )
            if w:
                ax.add_patch(Rectangle((j - 0.5, a - 0.5), 1, 1, fill=False, ec="k", lw=2))
    fig.colorbar(im, ax=ax, label="mean err_transfer - err_scratch")
    ax.set_title(title, fontsize=9)
    return [F.save(fig, path, dpi=100)]


def run(out, quick=False, jobs=1):
    folder = R.claim_folder(out, NAME)
    reps = QUICK_SEEDS if quick else SEEDS
    us, rows = distinct_rows(quick)
    grid = [c for row in rows for c in row["configs"]]
    vals = sweep_rules(out, grid, quick, reps, jobs, NAME, SALT, metrics=METRICS)
    shape = (len(rows), len(us), reps)
    et = {r: vals[r]["err_transfer"].reshape(shape) for r in RULES}
    es = {r: vals[r]["err_scratch"].reshape(shape) for r in RULES}
    regimes = [row["regime"] for row in rows]
    dec = decide(us, regimes, et, es)
    base = rows[0]["configs"][0]
    labels = {r: rule_label(r, quick, base.steps_down) for r in RULES}
    n_cells = len(rows) * len(us)
    diff = {r: et[r] - es[r] for r in RULES}
    mean = {
        r: S.outcome_summary(diff[r].reshape(n_cells, reps), np.inf)["mean"].reshape(shape[:2])
        for r in RULES
    }
    median = {
        r: S.outcome_summary(diff[r].reshape(n_cells, reps), np.inf)["median"].reshape(shape[:2])
        for r in RULES
    }
    se = {r: S.sem(diff[r], axis=2) for r in RULES}
    fails = {
        r: ((et[r] > FAILURE_ERROR).sum(axis=2), (es[r] > FAILURE_ERROR).sum(axis=2)) for r in RULES
    }
    stall = {
        r: (
            np.nansum(stalled(vals[r]["loss_down"].reshape(shape), EPSILON), axis=2),
            np.nansum(stalled(vals[r]["loss_scratch"].reshape(shape), EPSILON), axis=2),
        )
        for r in RULES
    }

    def part(r):
        d = dec["rules"][r]
        sig = d["significant"]
        worst = max(sig, key=lambda s: median[r][s[0], s[1]]) if sig else None
        which = {w: sum(1 for s in sig if s[2] == w) for w in ("wilcoxon", "failures", "both")}
        return (
            f"{labels[r]}: {len(sig)} of {n_cells} distinct cells significantly worse "
            f"(Wilcoxon {which['wilcoxon']}, failures {which['failures']}, both "
            f"{which['both']}; Holm over {2 * n_cells} tests)"
            + (
                f", largest median {median[r][worst[0], worst[1]]:+.3f} at |u| = "
                f"{us[worst[1]]:g} ({rows[worst[0]]['regime']}, {_label(rows[worst[0]])})"
                if worst
                else ""
            )
            + f"; hard regime, difference against |u|: {R.fmt_trend(d['trend'])} (decrease)"
        )

    statistic = "; ".join(part(r) for r in RULES) + f"; {reps} seeds per cell"
    header = [
        "rule",
        "regime",
        "field",
        "value",
        "u_norm",
        "diff_mean",
        "diff_se",
        "diff_median",
        "err_transfer_mean",
        "err_transfer_median",
        "err_scratch_mean",
        "err_scratch_median",
        "fail_transfer",
        "fail_scratch",
        "stalled_transfer",
        "stalled_scratch",
        "p_wilcoxon",
        "p_failures",
        "padj_wilcoxon",
        "padj_failures",
        "gamma_inh",
        "gamma_scr",
    ]
    table = []
    for r in RULES:
        d = dec["rules"][r]
        ot = S.outcome_summary(et[r].reshape(n_cells, reps), FAILURE_ERROR)
        os_ = S.outcome_summary(es[r].reshape(n_cells, reps), FAILURE_ERROR)
        for i, row in enumerate(rows):
            for j, u in enumerate(us):
                c = i * len(us) + j
                ind = indicators(row["configs"][j])
                table.append(
                    [
                        r,
                        row["regime"],
                        row["field"],
                        row["value"],
                        u,
                        mean[r][i, j],
                        se[r][i, j],
                        median[r][i, j],
                        ot["mean"][c],
                        ot["median"][c],
                        os_["mean"][c],
                        os_["median"][c],
                        fails[r][0][i, j],
                        fails[r][1][i, j],
                        stall[r][0][i, j] if r == "loss" else None,
                        stall[r][1][i, j] if r == "loss" else None,
                        d["p_wilcoxon"][i, j],
                        d["p_failures"][i, j],
                        d["padj_wilcoxon"][i, j],
                        d["padj_failures"][i, j],
                        ind["gamma_inh"],
                        ind["gamma_scr"],
                    ]
                )
    files.write_csv(folder / "negative_transfer.csv", header, table)
    sections, figs = [], []
    for r in RULES:
        d = dec["rules"][r]
        marks = {(i, j): w for i, j, w in d["significant"]}
        sym = {"wilcoxon": " *", "failures": " †", "both": " *†"}
        for regime in REGIMES:
            idx = [i for i, row in enumerate(rows) if row["regime"] == regime]
            tb = d["trend"] if regime == "hard" else d["trend_benign"]
            es_range = S.outcome_summary(es[r][idx].reshape(-1, reps), np.inf)["mean"]
            head = (
                ["row \\ |u|"]
                + [f"{u:g}" for u in us]
                + (["stalled (transfer / scratch)"] if r == "loss" else [])
            )
            body_rows = [
                [_label(rows[i])]
                + [
                    (
                        f"{mean[r][i, j]:+.3f} / {median[r][i, j]:+.3f} "
                        f"({fails[r][0][i, j]}:{fails[r][1][i, j]})"
                    )
                    + sym.get(marks.get((i, j)), "")
                    for j in range(len(us))
                ]
                + (
                    [
                        (
                            f"{int(stall[r][0][i].sum())} / {int(stall[r][1][i].sum())} of "
                            f"{len(us) * reps}"
                        )
                    ]
                    if r == "loss"
                    else []
                )
                for i in idx
            ]
            sections.append(
                f"**Regime `{regime}`, {labels[r]}** — per cell mean / median of err_transfer - "
                f"err_scratch over {reps} seeds, (failing runs transfer:scratch, error > "
                f"{FAILURE_ERROR:g}); `*` Wilcoxon, `†` failures significantly worse (Holm over "
                f"{2 * n_cells} tests, p < {SIGNIFICANCE}); scratch error (cell means) "
                f"{np.nanmin(es_range):.3f}–{np.nanmax(es_range):.3f}; difference against |u| "
                f"({'in the verdict' if regime == 'hard' else 'reported'}): "
                f"{R.fmt_trend(tb) if tb else 'n/a'}\n\n" + R.markdown_table(head, body_rows)
            )
            figs += _heatmaps(
                folder / f"negative_{regime}_{r}.png",
                rows,
                us,
                idx,
                mean[r],
                d["significant"],
                f"regime {regime}, {labels[r]}: transfer - scratch\n({reps} seeds; "
                f"box = significantly worse, Holm over {2 * n_cells} tests)",
            )
    b = transfer_base(
        quick, engine=ENGINE
    )  # the fixed factors of the rows: N_1 and alpha of the base
    body = "\n\n".join(
        [
            f"Base: d = {b.d}, m = {b.m}, |v_1| = {b.v_up_norm:g}, sigma_p = {b.sigma_p_up:g}, p_2 = "
            f"{b.flip_down:g}, eta = {b.eta:g}; regimes: "
            + "; ".join(
                f"`{k}`: N_2 = {c.n_down}, |v_2| = {c.v_down_norm:g}"
                for k, c in {row["regime"]: row["configs"][0] for row in rows}.items()
            )
            + f". Rows: alpha at N_1 = {b.n_up}, and N_1 at alpha = {b.alpha:g} (the N_1 = "
            f"{b.n_up} row is the alpha = {b.alpha:g} row, run and counted once): {n_cells} "
            f"distinct cells, {reps} seeds each."
            + (" Quick (CI-size) run: not the protocol's sizes." if quick else ""),
            *sections,
            R.figure_note(figs),
        ]
    )
    sig_json = {
        r: [
            {
                "regime": rows[i]["regime"],
                "row": _label(rows[i]),
                "u_norm": us[j],
                "test": w,
                "diff_mean": mean[r][i, j],
                "diff_median": median[r][i, j],
            }
            for i, j, w in dec["rules"][r]["significant"]
        ]
        for r in RULES
    }
    res = R.result(
        NAME,
        CLAIM,
        dec["verdict"],
        statistic,
        body,
        source=SOURCE,
        missing=dec["missing"],
        protocol=PROTOCOL,
        disclosures=DISCLOSURES,
        significant_cells={r: len(v) for r, v in sig_json.items()},
        distinct_cells=n_cells,
    )
    files.write_json(
        folder / "negative_transfer.json",
        {
            "claim": CLAIM,
            "verdict": res["verdict"],
            "statistic": res["statistic"],
            "verdict_without_missing_rule": dec["verdict_tests"],
            "replicates": reps,
            "quick": quick,
            "regimes": REGIMES,
            "distinct_cells": n_cells,
            "protocol": PROTOCOL.to_dict(),
            "protocol_hash": PROTOCOL.hash,
            "disclosures": [x.to_dict() for x in DISCLOSURES],
            "rules": {
                r: {
                    "significant_cells": sig_json[r],
                    "trend_hard": dec["rules"][r]["trend"],
                    "trend_benign": dec["rules"][r]["trend_benign"],
                    "existence": dec["rules"][r]["existence"],
                    "location": dec["rules"][r]["location"],
                }
                for r in RULES
            },
            "n_missing": dec["missing"],
            "base_config": b.to_dict(),
            "rows": [
                {"regime": row["regime"], "field": row["field"], "value": row["value"]}
                for row in rows
            ],
            "u_norm": us,
            "table": [dict(zip(header, t)) for t in table],
            "per_seed": {
                r: {
                    "err_transfer": et[r],
                    "err_scratch": es[r],
                    "loss_down": vals[r]["loss_down"].reshape(shape),
                    "loss_scratch": vals[r]["loss_scratch"].reshape(shape),
                }
                for r in RULES
            },
        },
    )
    return res
