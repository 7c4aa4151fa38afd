"""gain_upstream_n: the transfer gain against the upstream sample size N_1,
with the universal knowledge and the inherited noise energy beside it
(docs/model.md §4 and §8.1). The design is :data:`PROTOCOL`; the procedure
is the trend claims' one (:func:`refimpl.claims._trend.trend_decision`)."""

from ..lab import present as P
from ..lab import report as R
from ..lab import stats as S
from ..lab.claim import Outcome, Protocol, Size, Table
from ..lab.stats import SIGNIFICANCE
from ..theory import indicators
from . import _base as B
from . import _trend as T

PANEL = "n_up"
EXTRA_METRICS = ("K_inh_start", "inh_noise_energy", "err_up")
REGIME_FIELDS = ("d", "m", "n_down", "u_norm", P.SHARED_V, P.SIGMA_P, "flip_down", "alpha", "eta")


def _size(quick, ns, seeds, cap):
    base = B.transfer_base(quick, engine=B.ENGINE, u_norm=1.0)
    return Size({PANEL: [base.replace(n_up=n) for n in ns]}, seeds, x={PANEL: ns}, loss_cap=cap)


PROTOCOL = Protocol(
    name="gain_upstream_n",
    claim="the gain err_scratch - err_transfer grows with the upstream sample size N_1",
    source="paper",
    full=_size(False, [10, 25, 50, 100, 200, 400], 30, B.LOSS_CAP),
    quick=_size(True, [10, 20, 40], 3, B.QUICK_LOSS_CAP),
    statistic=(
        "Page's L test (one-sided, increase) of the per-seed gain err_scratch - "
        "err_transfer over N_1, seeds as blocks, under each stopping rule (the fixed step "
        f"count T; training loss <= {B.EPSILON:g} within the size's step cap)"
    ),
    pass_rule=(
        f"under both stopping rules mean per-seed Spearman rho > 0 and Page p < "
        f"{SIGNIFICANCE}; no missing value"
    ),
    fixed="2026-11-29",
    salt="gain_upstream_n-v2",
    common=("n_up",) + B.STOP_FIELDS,
    pairing=(
        "the base transfer regime with |u| = 1; common random numbers across N_1 (scratch "
        "cannot depend on N_1: the same scratch run at every N_1) and across the stopping "
        "rule, each seed a block"
    ),
    rules={
        "failure": f"clean test error > {B.FAILURE_ERROR}",
        "stalled": f"training loss > {B.EPSILON:g} at the cap (loss-target runs)",
    },
    notes={
        "reported, not in the verdict": "per point mean, median and failure rate of both "
        "errors; Wilcoxon p of gain > 0; stalled runs; "
        "two-sided Page trends of K_inh_start and the "
        "inherited noise energy (fixed T)"
    },
    disclosures=B.history("gain_upstream_n"),
    hash_scheme1="77a52e8e36e9",
)


def measure(size, sweep):
    return T.trend_measure(size, sweep, {PANEL: ("n_up",)}, B.RUN_METRICS + EXTRA_METRICS)


def decide(size, vals):
    """:func:`refimpl.claims._trend.trend_decision` of the gains, increasing in N_1."""
    gains = {p: {r: v[r]["gain"] for r in B.RULES} for p, v in vals.items()}
    return T.trend_decision(size.x, gains, "greater")


def present(size, vals, dec):
    grid, ns = size.configs[PANEL], size.x[PANEL]
    base, reps, st = grid[0], size.seeds, vals[PANEL]["steps"]
    summ = T.trend_summaries(vals)
    labels = {r: B.stop_label(r, B.EPSILON, size.loss_cap, base.steps_down) for r in B.RULES}
    tk = S.trend(ns, st["K_inh_start"], "two-sided")  # reported beside it
    te = S.trend(ns, st["inh_noise_energy"], "two-sided")
    statistic = T.trend_statistic(
        size.x,
        {PANEL: "N_1"},
        summ,
        dec,
        labels,
        f"one-sided, {len(ns)} values of N_1 x {reps} paired seeds",
    )
    mean = {m: S.outcome_summary(st[m], float("inf"))["mean"] for m in EXTRA_METRICS}
    se = {m: S.sem(st[m], axis=1) for m in EXTRA_METRICS}
    gam = [indicators(c)["gamma_inh"] for c in grid]
    points = {
        PANEL: {
            "gamma_inh": gam,
            **{k: v for m in EXTRA_METRICS for k, v in ((m, mean[m]), (m + "_se", se[m]))},
        }
    }
    inherited = Table(
        ["N_1", "K inherited (start)", "inherited noise energy", "upstream error", "Gamma_inh"],
        [
            [str(n)] + [R.fmt_mean_se(mean[m][i], se[m][i]) for m in EXTRA_METRICS] + [gam[i]]
            for i, n in enumerate(ns)
        ],
        title=(
            f"What the inherited filters carry ({labels['steps']}; mean ± se). Two-sided "
            f"trends: universal knowledge against N_1: {R.fmt_trend(tk)}; inherited noise "
            f"energy against N_1: {R.fmt_trend(te)}."
        ),
    )
    regime = (
        f"Regime: {P.regime(base, REGIME_FIELDS)}. Common random numbers across N_1: scratch is "
        "the same run at every N_1. Errors are clean test errors; 'fail' is the share of runs "
        f"with error > {B.FAILURE_ERROR:g}."
    )
    knowledge = B.line_figure(
        "gain_upstream_n_knowledge",
        ns,
        {"universal knowledge K (inherited, start)": (mean["K_inh_start"], se["K_inh_start"])},
        "N_1 (upstream samples)",
        "K = j<w, u>",
        "what the inherited filters carry",
        xlog=True,
        twin=(
            "inherited noise energy",
            {"inherited noise energy": (mean["inh_noise_energy"], se["inh_noise_energy"])},
        ),
    )
    sections = [
        regime,
        *T.trend_tables(
            size.x,
            {PANEL: "N_1"},
            summ,
            dec,
            labels,
            reps,
            {PANEL: (["N_1"], [[str(n)] for n in ns])},
        ),
        inherited,
        T.trend_csv("gain_upstream_n", size.x, summ, points),
        T.trend_figure(
            "gain_upstream_n",
            ns,
            "N_1 (upstream samples)",
            summ[PANEL],
            vals[PANEL],
            f"gain vs N_1 (|u| = {base.u_norm:g}; {reps} paired seeds)",
            xlog=True,
        ),
        knowledge,
    ]
    data = {
        "base_config": base.to_dict(),
        "per_seed": vals,
        "trend_universal_knowledge": tk,
        "trend_noise_energy": te,
    }
    return Outcome(statistic, sections, data)
