"""gain_noise_dim: the transfer gain against the upstream noise sigma_p,1
and against the dimension d at fixed downstream difficulty Gamma_scr
(docs/model.md §8.1), with a control panel of d at a fixed upstream Kou
indicator (§8.2). The design is :data:`PROTOCOL`; the procedure is the trend
claims' one (:func:`refimpl.claims._trend.trend_decision`)."""

from ..lab import present as P
from ..lab import report as R
from ..lab import stats as S
from ..lab.claim import Outcome, Protocol, Size
from ..lab.stats import SIGNIFICANCE
from ..theory import indicators
from . import _base as B
from . import _trend as T

EXTRA_METRICS = ("err_up",)
REGIME_FIELDS = ("m", "n_up", "u_norm", P.SHARED_V, "sigma_p_down", "flip_down", "alpha", "eta")
VERDICT_PANELS, CONTROL = ("sigma_p_up", "d"), "d_n1"
COMMON = {"sigma_p_up": ("sigma_p_up",), "d": (), CONTROL: ()}
NAMES = {
    "sigma_p_up": "sigma_p,1 (upstream noise)",
    "d": "d (dimension; N_2 ∝ d, N_1 fixed)",
    CONTROL: "d (control: N_1 ∝ d and N_2 ∝ d)",
}
KOU_UP = "N_1 |mu_1|^4 / (sigma_p,1^4 d)"  # the upstream task's Kou indicator (§8.2)


def _size(quick, sigmas, ds, d_ref, n_ref, seeds, cap):
    """The sigma_p,1 panel at the base; the d panel with N_2 = N_2,ref d / d_ref
    (N_1 fixed); the control panel with N_1 = N_1,base d / d_ref as well."""
    base = B.transfer_base(quick, engine=B.ENGINE, u_norm=1.0)
    n_down = {d: round(n_ref * d / d_ref) for d in ds}
    panels = {
        "sigma_p_up": [base.replace(sigma_p_up=s) for s in sigmas],
        "d": [base.replace(d=d, n_down=n_down[d]) for d in ds],
        CONTROL: [
            base.replace(d=d, n_down=n_down[d], n_up=round(base.n_up * d / d_ref)) for d in ds
        ],
    }
    x = {"sigma_p_up": sigmas, "d": ds, CONTROL: ds}
    return Size(panels, seeds, x=x, loss_cap=cap)


PROTOCOL = Protocol(
    name="gain_noise_dim",
    claim=(
        "the gain err_scratch - err_transfer shrinks as the upstream noise sigma_p,1 grows, "
        "and as the dimension d grows with the downstream task's difficulty Gamma_scr held "
        f"fixed (at fixed N_1, where d acts through the upstream indicator {KOU_UP})"
    ),
    source="paper",
    full=_size(
        False, [0.5, 1.0, 1.5, 2.0, 3.0], [300, 600, 1200, 2400, 4800], 600, 10, 30, B.LOSS_CAP
    ),
    quick=_size(True, [0.5, 1.0, 2.0], [60, 120, 240], 120, 8, 3, B.QUICK_LOSS_CAP),
    statistic=(
        "Page's L test (one-sided, decrease) of the per-seed gain err_scratch - "
        "err_transfer in each panel, seeds as blocks, under each stopping rule (the "
        f"fixed step count T; training loss <= {B.EPSILON:g} within the size's step cap); "
        f"in the d panel N_1 is fixed, so d acts through the upstream indicator {KOU_UP} "
        "(falling as 1/d); the control panel (N_1 ∝ d: that indicator fixed) gets the same "
        "test and a two-sided one, reported beside the d panel"
    ),
    pass_rule=(
        f"in the sigma_p,1 and d panels and under both stopping rules mean per-seed Spearman "
        f"rho < 0 and Page p < {SIGNIFICANCE}; no missing value in them; the control panel is "
        "reported, not in the verdict"
    ),
    fixed="2026-12-06",
    salt="gain_noise_dim-v3",
    common=COMMON,
    pairing=(
        "the base transfer regime with |u| = 1; common random numbers across sigma_p_up "
        "(scratch cannot depend on it) and across the stopping rule; independent seeds per "
        "d, where N_2 ∝ d keeps Gamma_scr = N_2 |mu_2|^4 / (sigma_p,2^4 d) fixed; the control "
        "panel's d = d_ref point is the d panel's (the same config and seeds)"
    ),
    rules={
        "failure": f"clean test error > {B.FAILURE_ERROR}",
        "stalled": f"training loss > {B.EPSILON:g} at the cap (loss-target runs)",
        "engine": B.ENGINE_RULE,
    },
    notes={
        "reported, not in the verdict": "the control panel; per point mean, median and "
        "failure rate of both errors; Wilcoxon p of gain > 0; stalled runs; upstream error "
        "and indicator",
        "control reading (declared before its first run)": "if the control's one-sided test "
        "holds (rho < 0, p < 0.01) under both rules, d lowers the gain beyond the upstream "
        "indicator; otherwise no decrease is detected at a fixed upstream indicator, and "
        "the d panel's decrease is read as going through it",
        "step size": "eta = 1 everywhere: eta sigma_p,1^2 d runs from 150 to 5400 in the "
        "sigma_p,1 panel and up to 4800 in the d panels, far above the theory's "
        "eta <= O(1 / (sigma_p^2 d)) (docs/model.md §8.2)",
    },
    disclosures=B.history("gain_noise_dim"),
)


def measure(size, sweep):
    return T.trend_measure(size, sweep, COMMON, B.RUN_METRICS + EXTRA_METRICS, batched=True)


def _control(x, gains):
    """The control panel's gains (rule -> (points, seeds)), reported: the
    one-sided (decrease) and two-sided Page tests, whether the decrease holds
    under every rule, and its missing values (not the verdict's)."""
    g = {r: B.as_float(v) for r, v in gains.items()}
    trend = {r: S.trend(x, v, "less") for r, v in g.items()}
    holds = {r: bool(t["rho"] < 0 and t["p"] < SIGNIFICANCE) for r, t in trend.items()}
    return {
        "panel": CONTROL,
        "in_verdict": False,
        "trend": trend,
        "two_sided": {r: S.trend(x, v, "two-sided") for r, v in g.items()},
        "holds": holds,
        "decrease": all(holds.values()),
        "missing": S.n_missing(*g.values()),
    }


def decide(size, vals):
    """:func:`refimpl.claims._trend.trend_decision` of the gains, decreasing in
    sigma_p,1 and in d (docs/model.md §8.4); beside it ``control``: the
    control panel's tests (:func:`_control`), not in the verdict."""
    gains = {p: {r: v[r]["gain"] for r in B.RULES} for p, v in vals.items()}
    dec = T.trend_decision(size.x, {p: gains[p] for p in VERDICT_PANELS}, "less")
    return {**dec, "control": _control(size.x[CONTROL], gains[CONTROL])}


def _panel(size, vals, summ, panel):
    """The claim's own columns of a panel (markdown, CSV) and its figure (the
    d panel's with the control's mean gain beside it)."""
    grid, xs, reps = size.configs[panel], size.x[panel], size.seeds
    ind = [indicators(c) for c in grid]
    st = vals[panel]["steps"]
    err_up = S.outcome_summary(st["err_up"], float("inf"))["mean"]
    kou = [g["up"]["kou_indicator"] for g in ind]
    cells = [
        [f"{v:g}", str(c.n_up), str(c.n_down), f"{k:.3g}", f"{e:.3f}", f"{g['gamma_scr']:.3g}"]
        for v, c, k, e, g in zip(xs, grid, kou, err_up, ind, strict=True)
    ]
    points = {
        "n_up": [c.n_up for c in grid],
        "n_down": [c.n_down for c in grid],
        "kou_up": kou,
        "gamma_inh": [g["gamma_inh"] for g in ind],
        "gamma_scr": [g["gamma_scr"] for g in ind],
        "err_up": err_up,
    }
    extra = {"upstream error (mean)": (err_up, S.sem(st["err_up"], axis=1))}
    if panel == "d" and CONTROL in summ:
        s = summ[CONTROL]["steps"]
        extra["gain, steps rule, control N_1 ∝ d (mean)"] = (s["gain_mean"], s["gain_se"])
    figure = T.trend_figure(
        f"gain_vs_{panel}",
        xs,
        NAMES[panel],
        summ[panel],
        vals[panel],
        f"gain vs {NAMES[panel]} (|u| = {grid[0].u_norm:g}; {reps} seeds)",
        extra=extra,
        xlog=(panel != "sigma_p_up"),
    )
    header = [NAMES[panel], "N_1", "N_2", "upstream indicator", "upstream error", "Gamma_scr"]
    return (header, cells), points, figure


def _statistic(size, summ, dec, labels):
    """Per panel the trend text of :func:`refimpl.claims._trend.trend_statistic`
    after what the panel holds fixed; the control's (reported) last."""
    kou = [indicators(c)["up"]["kou_indicator"] for c in size.configs["d"]]
    kc = indicators(size.configs[CONTROL][0])["up"]["kou_indicator"]
    ctl = dec["control"]
    heads = {
        "sigma_p_up": ("sigma_p,1", "Against sigma_p,1"),
        "d": (
            "d",
            f"Against d (Gamma_scr fixed; N_1 fixed, so d acts through the upstream indicator "
            f"{KOU_UP}: {kou[0]:.3g} to {kou[-1]:.3g})",
        ),
        CONTROL: (
            "d",
            f"Control, reported, not in the verdict: against d with N_1 ∝ d (upstream "
            f"indicator fixed at {kc:.3g}; decrease {P.holds(ctl['decrease'])}"
            " (both rules needed))",
        ),
    }
    merged = {"trend": {**dec["trend"], CONTROL: ctl["trend"]}}
    parts = [
        head
        + ": "
        + T.trend_statistic(
            {p: size.x[p]}, {p: sym}, {p: summ[p]}, merged, labels, ""
        ).removesuffix("; ")
        for p, (sym, head) in heads.items()
    ]
    two = ", ".join(
        f"{labels[r].split(' (')[0]} {R.fmt_p(t['p'])}" for r, t in ctl["two_sided"].items()
    )
    return ". ".join(parts) + (
        f"; two-sided Page test: {two}. One-sided (decrease), {size.seeds} seeds per point"
    )


def present(size, vals, dec):
    base = size.configs["sigma_p_up"][0]
    summ = T.trend_summaries(vals)
    labels = {r: B.stop_label(r, B.EPSILON, size.loss_cap, base.steps_down) for r in B.RULES}
    panels = {p: _panel(size, vals, summ, p) for p in vals}
    merged = {"trend": {**dec["trend"], CONTROL: dec["control"]["trend"]}}
    regime = (
        f"Regime: {P.regime(base, REGIME_FIELDS)}. The sigma_p,1 panel at d = {base.d}, N_2 = "
        f"{base.n_down} with common random numbers across sigma_p,1 (scratch is the same run at "
        "every point); the d panel at sigma_p = 1 with N_2 ∝ d, so that the downstream task's "
        f"Gamma_scr is the same at every d, and N_1 = {base.n_up} fixed, so that d lowers the "
        f"upstream indicator {KOU_UP}; the control panel (reported, not in the verdict) with "
        "N_1 ∝ d as well, so that the upstream indicator is fixed too; independent seeds per "
        "d (the control's d = "
        f"{base.d} point is the d panel's). Errors are clean test errors; 'fail' is the share "
        f"of runs with error > {B.FAILURE_ERROR:g}."
    )
    sections = [
        regime,
        *T.trend_tables(
            size.x, NAMES, summ, merged, labels, size.seeds, {p: panels[p][0] for p in panels}
        ),
        T.trend_csv("gain_noise_dim", size.x, summ, {p: panels[p][1] for p in panels}),
        *(panels[p][2] for p in panels),
    ]
    data = {
        "base_config": base.to_dict(),
        "per_seed": vals,
        "points": {p: panels[p][1] for p in panels},
    }
    return Outcome(_statistic(size, summ, dec, labels), sections, data)
