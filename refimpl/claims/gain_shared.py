"""gain_shared: the transfer gain against the shared fraction of the signal
at fixed signal strengths (docs/model.md §8.1). The design is
:data:`PROTOCOL`; the procedure is the trend claims' one
(:func:`refimpl.claims._trend.trend_decision`)."""

import math

from ..lab import present as P
from ..lab.claim import Outcome, Protocol, Size
from ..lab.stats import SIGNIFICANCE
from ..theory import indicators
from . import _base as B
from . import _trend as T

REGIME_FIELDS = ("d", "m", "n_up", "n_down", P.SIGMA_P, "flip_down", "alpha", "eta")
MU2 = 5.0
"""|mu_1|^2 = |mu_2|^2 at every point (the base regime's |u| = 2, |v| = 1)."""
PANEL = "shared_fraction"
COMMON = ("u_norm", "v_up_norm", "v_down_norm")


def _size(quick, fractions, seeds, cap):
    base = B.transfer_base(quick, engine=B.ENGINE)
    grid = [
        base.replace(
            u_norm=math.sqrt(MU2 * f),
            v_up_norm=math.sqrt(MU2 * (1 - f)),
            v_down_norm=math.sqrt(MU2 * (1 - f)),
        )
        for f in fractions
    ]
    return Size({PANEL: grid}, seeds, x={PANEL: fractions}, loss_cap=cap)


PROTOCOL = Protocol(
    name="gain_shared",
    claim=(
        "the gain err_scratch - err_transfer grows with the shared fraction |u|^2/|mu|^2 at "
        "fixed |mu_1| and |mu_2|"
    ),
    source="paper",
    full=_size(False, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0], 30, B.LOSS_CAP),
    quick=_size(True, [0.0, 0.5, 1.0], 3, B.QUICK_LOSS_CAP),
    statistic=(
        "Page's L test (one-sided, increase) of the per-seed gain err_scratch - "
        "err_transfer over the shared fraction f, seeds as blocks, under each stopping "
        "rule (the fixed step count T; training loss <= 1e-3 within the size's step cap)"
    ),
    pass_rule=(
        f"under both stopping rules mean per-seed Spearman rho > 0 and Page p < "
        f"{SIGNIFICANCE}; no missing value"
    ),
    fixed="2026-11-29",
    salt="gain_shared-v2",
    common=COMMON + B.STOP_FIELDS,
    pairing=(
        "both tasks keep |mu_1|^2 = |mu_2|^2 = 5 (|u| = sqrt(5 f), |v_1| = |v_2| = "
        "sqrt(5 (1 - f))), so the downstream task alone is equally hard at every f; common "
        "random numbers across f and across the stopping rule, each seed a block"
    ),
    rules={
        "engine": B.ENGINE_RULE,
        "failure": f"clean test error > {B.FAILURE_ERROR}",
        "stalled": f"training loss > {B.EPSILON:g} at the cap (loss-target runs)",
    },
    notes={
        "reported, not in the verdict": "per point mean, median and failure rate of both "
        "errors; Wilcoxon p of gain > 0; stalled runs"
    },
    disclosures=B.history("gain_shared"),
    hash_scheme1="5d84359b6e8e",
)


def measure(size, sweep):
    return T.trend_measure(size, sweep, {PANEL: COMMON}, batched=True)


def decide(size, vals):
    """:func:`refimpl.claims._trend.trend_decision` of the gains, increasing in f."""
    gains = {p: {r: v[r]["gain"] for r in B.RULES} for p, v in vals.items()}
    return T.trend_decision(size.x, gains, "greater")


def present(size, vals, dec):
    grid, fractions = size.configs[PANEL], size.x[PANEL]
    base, reps = grid[0], size.seeds
    summ = T.trend_summaries(vals)
    labels = {r: B.stop_label(r, B.EPSILON, size.loss_cap, base.steps_down) for r in B.RULES}
    gam = [indicators(c) for c in grid]
    statistic = T.trend_statistic(
        size.x,
        {PANEL: "f"},
        summ,
        dec,
        labels,
        f"one-sided, {len(fractions)} fractions x {reps} paired seeds",
    )
    columns = {
        PANEL: (
            ["f", "|u|"],
            [[f"{f:g}", f"{c.u_norm:.3g}"] for f, c in zip(fractions, grid, strict=True)],
        )
    }
    points = {
        PANEL: {
            "u_norm": [c.u_norm for c in grid],
            "v_norm": [c.v_down_norm for c in grid],
            "gamma_inh": [g["gamma_inh"] for g in gam],
            "gamma_scr": [g["gamma_scr"] for g in gam],
        }
    }
    regime = (
        f"Regime: {P.regime(base, REGIME_FIELDS)}; |mu_1|^2 = |mu_2|^2 = {MU2:g} at every point, "
        f"|u| = sqrt({MU2:g} f), |v_1| = |v_2| = sqrt({MU2:g} (1 - f)); Gamma_scr = "
        f"{gam[0]['gamma_scr']:.3g} at every point. Common random numbers across f. Errors are "
        f"clean test errors; 'fail' is the share of runs with error > {B.FAILURE_ERROR:g}."
    )
    figure = T.trend_figure(
        "gain_shared",
        fractions,
        "shared fraction f = |u|^2 / |mu|^2",
        summ[PANEL],
        vals[PANEL],
        f"gain vs shared fraction at |mu|^2 = {MU2:g} ({reps} paired seeds)",
    )
    sections = [
        regime,
        *T.trend_tables(size.x, {PANEL: "the shared fraction f"}, summ, dec, labels, reps, columns),
        T.trend_csv("gain_shared", size.x, summ, points),
        figure,
    ]
    data = {"base_config": base.to_dict(), "per_seed": vals}
    return Outcome(statistic, sections, data)
