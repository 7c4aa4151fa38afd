"""gain_upstream_n: the transfer gain against the upstream sample size N_1,
with the universal knowledge and the inherited noise energy beside it
(docs/model.md §s 4 and 8).

Design (protocol :data:`PROTOCOL`, fixed 2026-11-29 before its first full
run): the base transfer regime with |u| = 1 (a moderate shared signal, so the
gain is neither 0 nor saturated), N_1 from 10 to 400. The design is paired:
scratch cannot depend on N_1, so the points share their random numbers
(common random numbers across N_1: the same downstream data, fresh filters,
initialisations and test draws at every N_1; scratch is the same run at every
point) and each seed is a block of Page's L test. Test: the per-seed gain
err_scratch - err_transfer increases with N_1 (Page, one-sided, level 0.01),
both at the fixed step count T = 200 and at equal training loss (fine-tuning
and scratch each until the training loss is <= 1e-3, cap 2000 steps; the
same runs stopped by the loss). Per point the mean, median and failure rate
(error > 0.2) of both errors and the stalled runs are reported; beside it,
two-sided, the trends of the universal knowledge K = j<w, u> of the
inherited filters at the start of fine-tuning and of their inherited noise
energy. Any missing gain value fails the verdict.
"""

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
    OUTCOME_HEADER,
    QUICK_LOSS_CAP,
    RULES,
    RUN_METRICS,
    STALL_HEADER,
    gain_rises,
    outcome_cells,
    point_summary,
    rule_label,
    sweep_rules,
    transfer_base,
)

NAME = "gain_upstream_n"
CLAIM = "the gain err_scratch - err_transfer grows with the upstream sample size N_1"
SOURCE = "paper"

NS = [10, 25, 50, 100, 200, 400]
QUICK_NS = [10, 20, 40]
SEEDS = 30
QUICK_SEEDS = 3
SALT = "gain_upstream_n-v2"
EXTRA_METRICS = ("K_inh_start", "inh_noise_energy", "err_up")

PROTOCOL = Protocol(
    claim=NAME,
    grid={
        "base": "TRANSFER_BASE (d = 600, m = 10, N_2 = 10, |v_1| = |v_2| = 1, sigma_p = 1, "
        "p_2 = 0.1, alpha = 0.5, eta = 1, T = 200) with |u| = 1",
        "n_up": NS,
    },
    seeds=SEEDS,
    statistic=(
        "Page's L test (one-sided, increase) of the per-seed gain err_scratch - "
        "err_transfer over N_1, seeds as blocks, under each stopping rule (fixed "
        f"T = 200; training loss <= {EPSILON:g} with cap {LOSS_CAP})"
    ),
    pass_rule=(
        f"under both stopping rules mean per-seed Spearman rho > 0 and Page p < "
        f"{SIGNIFICANCE}; no missing value"
    ),
    fixed="2026-11-29",
    extra={
        "pairing": "common random numbers across N_1 (scratch cannot depend on N_1: the same "
        "scratch run at every N_1) and across the stopping rule",
        "salt": SALT,
        "failure": f"clean test error > {FAILURE_ERROR}",
        "stalled": f"training loss > {EPSILON:g} at the cap (loss-target runs)",
        "reported, not in the verdict": "per point mean, median and failure rate of both "
        "errors; Wilcoxon p of gain > 0; stalled runs; "
        "two-sided Page trends of K_inh_start and the "
        "inherited noise energy (fixed T)",
        "quick": f"d = 120, m = 4, N_2 = 8, T = 60, N_1 in {QUICK_NS}, {QUICK_SEEDS} seeds, "
        f"cap {QUICK_LOSS_CAP}",
    },
)

DISCLOSURES = [
    Disclosure(
        date="2026-11-29",
        change=(
            "independent seeds per N_1 (scratch redrawn at every N_1), 20 seeds, fixed T only -> "
            "common random numbers across N_1 (one scratch run per seed), 30 seeds, both "
            "stopping rules, fresh seed stream (salt gain_upstream_n-v2); the grid and the test "
            "are unchanged"
        ),
        reason=(
            "the validation audit (3.4, 'smaller issues'): the trend was called seed by seed "
            "without shared seeds, and scratch (0.370-0.385) was redrawn although it cannot "
            "depend on N_1; issue 9 items 4-6"
        ),
        earlier=(
            "PASS: gain grows with N_1: mean per-seed Spearman rho = 0.900 ± 0.025, Page's test "
            "p < 1e-10, one-sided (6 values of N_1 x 20 seeds; gain +0.018 at N_1 = 10 to "
            "+0.155 at N_1 = 400)"
        ),
    )
]


def decide(ns, gain):
    """The verdict from the measured gains (pure: no files, no sweeps):
    :func:`refimpl.claims._base.gain_rises`, with ``x`` the values of N_1."""
    return gain_rises(ns, gain)


def run(out, quick=False, jobs=1):
    folder = R.claim_folder(out, NAME)
    ns = QUICK_NS if quick else NS
    reps = QUICK_SEEDS if quick else SEEDS
    base = transfer_base(quick, engine=ENGINE, u_norm=1.0)
    grid = [base.replace(n_up=n) for n in ns]
    vals = sweep_rules(
        out,
        grid,
        quick,
        reps,
        jobs,
        NAME,
        SALT,
        common=("n_up",),
        metrics=RUN_METRICS + EXTRA_METRICS,
    )
    dec = decide(ns, {r: vals[r]["gain"] for r in RULES})
    summ = {
        r: point_summary(
            vals[r]["err_transfer"],
            vals[r]["err_scratch"],
            vals[r]["loss_down"],
            vals[r]["loss_scratch"],
            EPSILON if r == "loss" else None,
        )
        for r in RULES
    }
    labels = {r: rule_label(r, quick, base.steps_down) for r in RULES}
    st = vals["steps"]
    tk = S.trend(ns, st["K_inh_start"], "two-sided")  # reported beside it
    te = S.trend(ns, st["inh_noise_energy"], "two-sided")
    statistic = (
        "; ".join(
            f"{labels[r]}: {R.fmt_trend(dec['trend'][r])} (median gain {summ[r]['gain_median'][0]:+.3f}"
            f" at N_1 = {ns[0]} to {summ[r]['gain_median'][-1]:+.3f} at N_1 = {ns[-1]}"
            + (
                f"; stalled {int(summ[r]['stalled_transfer'].sum())} transfer / "
                f"{int(summ[r]['stalled_scratch'].sum())} scratch runs"
                if r == "loss"
                else ""
            )
            + ")"
            for r in RULES
        )
        + f"; one-sided, {len(ns)} values of N_1 x {reps} paired seeds"
    )
    keys = list(summ["loss"])
    extra_mean = {m: S.outcome_summary(st[m], float("inf"))["mean"] for m in EXTRA_METRICS}
    extra_se = {m: S.sem(st[m], axis=1) for m in EXTRA_METRICS}
    gam = [indicators(c)["gamma_inh"] for c in grid]
    header = (
        ["rule", "n_up", "gamma_inh"] + keys + [h for m in EXTRA_METRICS for h in (m, m + "_se")]
    )
    rows = [
        [r, n, gam[i]]
        + [summ[r].get(k, [None] * len(ns))[i] for k in keys]
        + [v for m in EXTRA_METRICS for v in (extra_mean[m][i], extra_se[m][i])]
        for r in RULES
        for i, n in enumerate(ns)
    ]
    files.write_csv(folder / "gain_upstream_n.csv", header, rows)
    tables = []
    for r in RULES:
        head = ["N_1"] + OUTCOME_HEADER + ([STALL_HEADER] if r == "loss" else [])
        tables.append(
            f"**{labels[r]}**: {R.fmt_trend(dec['trend'][r])}\n\n"
            + R.markdown_table(
                head, [[str(n)] + outcome_cells(summ[r], i, reps) for i, n in enumerate(ns)]
            )
        )
    inherited = R.markdown_table(
        ["N_1", "K inherited (start)", "inherited noise energy", "upstream error", "Gamma_inh"],
        [
            [str(n)]
            + [R.fmt_mean_se(extra_mean[m][i], extra_se[m][i]) for m in EXTRA_METRICS]
            + [gam[i]]
            for i, n in enumerate(ns)
        ],
    )
    figs = F.line_figure(
        folder / "gain_upstream_n.png",
        ns,
        {
            **{f"gain, {r} rule (mean)": (summ[r]["gain_mean"], summ[r]["gain_se"]) for r in RULES},
            **{
                f"gain, {r} rule (median)": (summ[r]["gain_median"], 0 * summ[r]["gain_median"])
                for r in RULES
            },
            "err_scratch (mean)": (
                summ["steps"]["err_scratch_mean"],
                S.sem(st["err_scratch"], axis=1),
            ),
        },
        "N_1 (upstream samples)",
        "clean test error / gain",
        f"gain vs N_1 (|u| = {base.u_norm:g}; {reps} paired seeds)",
        hline=0.0,
        xlog=True,
    )
    figs += F.line_figure(
        folder / "gain_upstream_n_knowledge.png",
        ns,
        {
            "universal knowledge K (inherited, start)": (
                extra_mean["K_inh_start"],
                extra_se["K_inh_start"],
            )
        },
        "N_1 (upstream samples)",
        "K = j<w, u>",
        "what the inherited filters carry",
        xlog=True,
        twin=(
            "inherited noise energy",
            {
                "inherited noise energy": (
                    extra_mean["inh_noise_energy"],
                    extra_se["inh_noise_energy"],
                )
            },
        ),
    )
    body = "\n\n".join(
        [
            f"Regime: d = {base.d}, m = {base.m}, N_2 = {base.n_down}, |u| = {base.u_norm:g}, "
            f"|v_1| = |v_2| = {base.v_up_norm:g}, sigma_p = {base.sigma_p_up:g}, p_2 = "
            f"{base.flip_down:g}, alpha = {base.alpha:g}, eta = {base.eta:g}. Common random numbers "
            f"across N_1: scratch is the same run at every N_1. Errors are clean test errors; "
            f"'fail' is the share of runs with error > {FAILURE_ERROR:g}."
            + (" Quick (CI-size) run: not the protocol's sizes." if quick else ""),
            *tables,
            (
                f"What the inherited filters carry ({labels['steps']}; mean ± se). Two-sided trends: "
                f"universal knowledge against N_1: {R.fmt_trend(tk)}; inherited noise energy against "
                f"N_1: {R.fmt_trend(te)}."
            ),
            inherited,
            R.figure_note(figs),
        ]
    )
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
        trend_p={r: dec["trend"][r]["p"] for r in RULES},
    )
    files.write_json(
        folder / "gain_upstream_n.json",
        {
            "claim": CLAIM,
            "verdict": res["verdict"],
            "statistic": res["statistic"],
            "verdict_without_missing_rule": dec["verdict_tests"],
            "holds": dec["holds"],
            "trend_gain": dec["trend"],
            "trend_universal_knowledge": tk,
            "trend_noise_energy": te,
            "n_missing": dec["missing"],
            "replicates": reps,
            "quick": quick,
            "protocol": PROTOCOL.to_dict(),
            "protocol_hash": PROTOCOL.hash,
            "disclosures": [d.to_dict() for d in DISCLOSURES],
            "base_config": base.to_dict(),
            "n_up": ns,
            "table": [dict(zip(header, r)) for r in rows],
            "per_seed": {r: {k: vals[r][k] for k in RUN_METRICS} for r in RULES}
            | {"extra_fixed_T": {m: st[m] for m in EXTRA_METRICS}},
        },
    )
    return res
