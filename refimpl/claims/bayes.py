"""bayes: Bayes-optimal versus sub-Bayes-optimal downstream test error across
the Gamma boundary (the paper's Theorems 4.2 and 4.3 as the public reviews
state them; docs/model.md §8.1, §8.5). The design is :data:`PROTOCOL`.

The quantity is the excess noisy test error, noisy - p_2 = (1 - 2 p_2) x the
clean error (docs/model.md §6.2), 0 at the Bayes level. N_1 moves Gamma_inh
(docs/model.md §7) and leaves the downstream task and scratch untouched."""

import dataclasses
import math
from functools import partial

import numpy as np

from ..lab import figures as F
from ..lab import present as P
from ..lab import report as R
from ..lab import stats as S
from ..lab.claim import ClaimSweep, Figure, Outcome, Protocol, Size, Table
from ..lab.stats import SIGNIFICANCE
from ..theory import indicators
from . import _base as B

FLIP_DOWN = 0.1
MU2 = 5.0
"""|mu_1|^2 = |mu_2|^2 on the shared-fraction panel (the base |u| = 2, |v| = 1)."""
ROOT = math.sqrt(MU2)  # the largest |u| of the shared-fraction panel (|v_1| = |v_2| = 0)
DELTA = 0.01
"""The Bayes level is reached: excess noisy error <= DELTA."""
GAP = 0.05
"""A constant above p: excess noisy error >= GAP."""
PANELS = ("n_up", "share")
"""The N_1 panel decides the verdict; the shared-fraction panel is reported."""
COMMON = {"n_up": ("n_up",), "share": ("u_norm", "v_up_norm", "v_down_norm")}
OUTCOMES = ("noisy_transfer", "noisy_scratch", "err_transfer", "err_scratch")
METRICS = OUTCOMES + ("loss_down", "loss_scratch", "steps_down", "steps_scratch")
CONDITIONS = ("above", "scratch_sub_bayes", "crossed")
XNAME = {"n_up": "N_1", "share": "|u|"}
XLABEL = {"n_up": "N_1 (upstream samples)", "share": "|u| (shared signal)"}
YES = {True: "yes", False: "no"}
LEVELS = [  # the figures' horizontal lines
    {"y": 0.0, "color": "k", "lw": 0.8, "label": "Bayes level (excess 0)"},
    {"y": DELTA, "color": "0.4", "lw": 0.8, "ls": "--", "label": f"DELTA = {DELTA:g}"},
    {"y": GAP, "color": "0.4", "lw": 0.8, "ls": ":", "label": f"GAP = {GAP:g}"},
]
ARMS = ("transfer", "scratch")


def v_norm(u):
    """|v_k| at |u| on the share panel: |u|^2 + |v_k|^2 = MU2."""
    return math.sqrt(max(0.0, MU2 - u * u))


def _size(quick, ns, us, seeds, cap=B.LOSS_CAP):
    """The two panels around the base regime (p_2 = FLIP_DOWN): N_1 over
    ``ns``; |u| over ``us`` at |mu_1|^2 = |mu_2|^2 = MU2 and the base N_1."""
    base = B.transfer_base(quick, flip_down=FLIP_DOWN, engine=B.ENGINE)
    share = [base.replace(u_norm=u, v_up_norm=v_norm(u), v_down_norm=v_norm(u)) for u in us]
    configs = {"n_up": [base.replace(n_up=n) for n in ns], "share": share}
    return Size(configs, seeds, x={"n_up": ns, "share": us}, loss_cap=cap)


PROTOCOL = Protocol(
    name="bayes",
    claim=(
        "across the Gamma boundary: with transfer the downstream noisy test error reaches the "
        "Bayes level p, where training from scratch stays a constant above p"
    ),
    source="paper",
    full=_size(False, [10, 20, 50, 100, 200, 400, 590], [0.0, 0.5, 1.0, 1.5, 2.0, ROOT], 40),
    quick=_size(True, [10, 40, 100], [0.0, 1.0, ROOT], 4, B.QUICK_LOSS_CAP),
    statistic=(
        "excess noisy test error (noisy error - p_2) of transfer and scratch per run; "
        "on the N_1 panel, under each stopping rule (fixed T = 200; training loss <= "
        f"{B.EPSILON:g} with cap {B.LOSS_CAP}): medians at the largest and smallest N_1 and "
        "the one-sided Wilcoxon signed-rank test of scratch excess > transfer excess at "
        "the largest N_1"
    ),
    pass_rule=(
        f"under both stopping rules: (i) median transfer excess <= {DELTA} at the largest "
        f"N_1; (ii) median scratch excess >= {GAP} there and Wilcoxon p < {SIGNIFICANCE}; "
        f"(iii) median transfer excess >= {GAP} at the smallest N_1; no missing value"
    ),
    fixed="2026-11-29",
    salt="bayes-v1",
    pairing=(
        "common random numbers across N_1 (scratch is the same run at every N_1), across |u| "
        "on the share panel (u_norm, v_up_norm, v_down_norm) and across the stopping rule; "
        "independent streams between the panels (salts bayes-v1/n_up and bayes-v1/share)"
    ),
    rules={
        "Bayes level reached": f"excess noisy test error <= DELTA = {DELTA}",
        "a constant above p": f"excess noisy test error >= GAP = {GAP}",
        "above / below": "the largest swept value is above the boundary, the smallest below",
        "stalled": f"training loss > {B.EPSILON:g} at the cap (loss-target runs)",
    },
    notes={
        "measure": "outcomes (noisy and clean test errors of transfer and scratch)",
        "reported, not in the verdict": "per point median / mean excess of transfer and "
        "scratch, share of runs with excess <= DELTA, Gamma_inh, Gamma_scr; Page's trend test "
        "(decrease) of the transfer excess over N_1; the same table and conditions on the "
        "share panel (largest |u| above, |u| = 0 below)",
    },
    hash_scheme1="db9e1b7914b8",
)


def measure(size, sweep):
    """Both panels under both stopping rules, each panel on its own seed
    stream: ``{panel: {rule: {metric: array (points, seeds)}}}``."""
    out = {}
    for panel, grid in size.configs.items():
        kw = {"measure": "outcomes", "common": COMMON[panel] + B.STOP_FIELDS}
        sw = _panel_sweep(sweep, panel)
        out[panel] = B.sweep_rules_once(sw, grid, size.loss_cap, METRICS, panel, **kw)
    return out


def _panel_sweep(sweep, panel):
    """The claim's sweep with the panel's salt ``<salt>/<panel>``."""
    salted = dataclasses.replace(sweep.protocol, salt=f"{sweep.protocol.salt}/{panel}")
    return ClaimSweep(salted, sweep.size, sweep.out, sweep.jobs)


def conditions(x, transfer, scratch, delta=DELTA, gap=GAP):
    """The three conditions of one panel (pure). ``x`` (k,): the swept values
    (the largest is "above the boundary", the smallest "below"); ``transfer``,
    ``scratch``: rule -> excess noisy error per point and seed, (k, seeds)
    (NaN or None: missing); ``delta``, ``gap``: the Bayes level is reached
    (excess <= delta), a constant above p (excess >= gap).

    Returns ``verdict`` ("PASS" when under every rule (i) the median transfer
    excess at the largest x is <= delta, (ii) the median scratch excess there
    is >= gap and the one-sided Wilcoxon test of scratch > transfer has p <
    SIGNIFICANCE, (iii) the median transfer excess at the smallest x is >=
    gap; and no value is missing), ``verdict_tests`` (without the
    missing-value rule), ``missing``, and ``rules``: rule -> per point
    ``median_*``, ``mean_*`` and ``bayes_*`` (share of runs with excess <=
    delta) of transfer and scratch, ``wilcoxon`` at the top, ``conditions``,
    ``holds``, ``trend`` (Page, decrease of the transfer excess over x; None
    with fewer than 3 points), ``top`` and ``bottom`` (their row indices).
    """
    x = np.asarray(x, float)
    top, bottom = int(np.argmax(x)), int(np.argmin(x))
    rules, missing = {}, 0
    for rule in transfer:
        t, s = B.as_float(transfer[rule]), B.as_float(scratch[rule])
        out = {}
        for name, v in zip(ARMS, (t, s), strict=True):
            o = S.outcome_summary(v, delta)
            out[f"median_{name}"], out[f"mean_{name}"] = o["median"], o["mean"]
            out[f"bayes_{name}"] = 1.0 - o["failure_rate"]
        w = S.wilcoxon(s[top], t[top], "greater")
        mt, ms = out["median_transfer"], out["median_scratch"]
        cond = {
            "above": bool(mt[top] <= delta),
            "scratch_sub_bayes": bool(ms[top] >= gap and w["p"] < SIGNIFICANCE),
            "crossed": bool(mt[bottom] >= gap),
        }
        trend = S.trend(x, t, "less") if x.size >= 3 else None
        missing += S.n_missing(t, s)
        holds = all(cond.values())
        rules[rule] = {**out, "wilcoxon": w, "conditions": cond, "holds": holds, "trend": trend}
        rules[rule].update(top=top, bottom=bottom)
    tests = "PASS" if rules and all(r["holds"] for r in rules.values()) else "FAIL"
    verdict = "FAIL" if missing else tests
    return {"verdict": verdict, "verdict_tests": tests, "missing": missing, "rules": rules}


def _panel(size, panel, vals):
    """:func:`conditions` of one panel's measurements (excess = noisy error - p_2)."""
    p = size.configs[panel][0].flip_down
    t, s = ({r: B.as_float(vals[r][f"noisy_{k}"]) - p for r in B.RULES} for k in ARMS)
    return conditions(size.x[panel], t, s)


def decide(size, m):
    """The verdict (pure): :func:`conditions` of the N_1 panel under both
    stopping rules; ``panels`` holds both panels' (the share panel's is
    reported, not in the verdict)."""
    panels = {panel: _panel(size, panel, vals) for panel, vals in m.items()}
    main = panels["n_up"]
    out = {k: main[k] for k in ("verdict", "verdict_tests", "missing")}
    out["holds"] = {r: main["rules"][r]["holds"] for r in B.RULES}
    return {**out, "share_panel": panels["share"]["verdict_tests"], "panels": panels}


# ----------------------------------------------------------------------
# presenting it


def _base_config(size):
    """The base regime: the N_1 panel's config at the share panel's N_1."""
    return size.configs["n_up"][0].replace(n_up=size.configs["share"][0].n_up)


def _conditions_text(d, x, xname):
    """One rule's three conditions in words."""
    c, top, bot = d["conditions"], d["top"], d["bottom"]
    return (
        f"(i) transfer at Bayes at {xname} = {x[top]:g}: {YES[c['above']]} (median "
        f"{d['median_transfer'][top]:+.4f}); (ii) scratch sub-Bayes there: "
        f"{YES[c['scratch_sub_bayes']]} (median {d['median_scratch'][top]:+.4f}, Wilcoxon "
        f"scratch > transfer {R.fmt_p(d['wilcoxon']['p'])}); (iii) transfer above Bayes at "
        f"{xname} = {x[bot]:g}: {YES[c['crossed']]} (median "
        f"{d['median_transfer'][bot]:+.4f})"
    )


def _stalled(vals):
    """Stalled runs per point at equal loss: (transfer, scratch)."""
    loss = vals["loss"]
    return [np.nansum(B.stalled(loss[k], B.EPSILON), axis=1) for k in ("loss_down", "loss_scratch")]


CSV_HEADER = ["panel", "rule", "x", "n_up", "u_norm", "v_norm", "gamma_inh", "gamma_scr"]
CSV_HEADER += ["excess_transfer_median", "excess_transfer_mean", "bayes_share_transfer"]
CSV_HEADER += ["excess_scratch_median", "excess_scratch_mean", "bayes_share_scratch"]
CSV_HEADER += ["stalled_transfer", "stalled_scratch"]
SUMMARY = ("median_transfer", "mean_transfer", "bayes_transfer")
SUMMARY += ("median_scratch", "mean_scratch", "bayes_scratch")


def _rows(size, m, dec, gam, panel, rule):
    """The CSV rows of one panel and rule: per point its values, summaries
    and (equal loss) stalled runs."""
    d, stall, rows = dec["panels"][panel]["rules"][rule], _stalled(m[panel]), []
    for i, c in enumerate(size.configs[panel]):
        row = [panel, rule, size.x[panel][i], c.n_up, c.u_norm, c.v_down_norm]
        row += [gam[panel][i]["gamma_inh"], gam[panel][i]["gamma_scr"]]
        row += [d[k][i] for k in SUMMARY]
        rows.append(row + ([stall[0][i], stall[1][i]] if rule == "loss" else [None, None]))
    return rows


def _cells(row, reps):
    """One CSV row as the report table's cells."""
    v = dict(zip(CSV_HEADER, row, strict=True))
    x = v["x"]
    cells = [f"{x:g}" if isinstance(x, int) else f"{x:.3g}"]
    cells += ["n/a" if v[k] is None else f"{v[k]:.3g}" for k in ("gamma_inh", "gamma_scr")]
    for k in ("transfer", "scratch"):
        cells += [f"{v[f'excess_{k}_median']:+.4f} / {v[f'excess_{k}_mean']:+.4f}"]
        cells += [f"{100 * v[f'bayes_share_{k}']:.0f}%"]
    if v["rule"] == "loss":
        cells += [f"{int(v['stalled_transfer'])} / {int(v['stalled_scratch'])} of {reps}"]
    return cells


def _table(size, m, dec, gam, panel, rule, title):
    """The report's table of one panel and rule."""
    head = [XNAME[panel], "Gamma_inh", "Gamma_scr", "transfer excess (median / mean)"]
    head += [f"transfer <= {DELTA:g}", "scratch excess (median / mean)", f"scratch <= {DELTA:g}"]
    head += ["stalled (transfer / scratch)"] if rule == "loss" else []
    rows = [_cells(row, size.seeds) for row in _rows(size, m, dec, gam, panel, rule)]
    return Table(head, rows, title=title)


def _panel_tables(size, m, dec, gam, labels):
    """The report's text and table of every panel and rule."""
    out, n_up = [], _base_config(size).n_up
    for panel in PANELS:
        x, xn = size.x[panel], XNAME[panel]
        role = "in the verdict"
        if panel == "share":
            role = f"reported, not in the verdict; N_1 = {n_up}, |mu_1|^2 = |mu_2|^2 = {MU2:g}"
        for r in B.RULES:
            d = dec["panels"][panel]["rules"][r]
            tr = R.fmt_trend(d["trend"]) if d["trend"] else "n/a"
            title = (
                f"**{xn} panel ({role}), {labels[r]}**: {_conditions_text(d, x, xn)}; all three: "
                f"{YES[d['holds']]}. Transfer excess against {xn} (decrease): {tr}."
            )
            out.append(_table(size, m, dec, gam, panel, r, title))
    return out


def _draw(path, size, dec, labels, panel):
    """Median excess of transfer and scratch against the panel's x, one panel per rule."""
    base, reps = _base_config(size), size.seeds
    title = f"excess noisy error vs N_1 (|u| = {base.u_norm:g}; {reps} paired seeds)"
    if panel == "share":
        at = f"|mu|^2 = {MU2:g}, N_1 = {base.n_up}"
        title = f"excess noisy error vs |u| at {at} ({reps} paired seeds)"
    panels = []
    for r in B.RULES:
        d = dec["panels"][panel]["rules"][r]
        curves = [F.Curve(d["median_transfer"], "transfer (median)", "C0o-")]
        curves += [F.Curve(d["median_scratch"], "scratch (median)", "C3s-")]
        log = {"xscale": "log"} if panel == "n_up" else {}
        panels += [F.Panel(curves, labels[r], XLABEL[panel], x=size.x[panel], hlines=LEVELS)]
        panels[-1].axes, panels[-1].legend = log, None
    panels[0].ylabel, panels[0].legend = "excess noisy test error (noisy - p_2)", {"fontsize": 7}
    F.panels_figure(path, panels, figsize=(10.0, 4.0), suptitle=title, sharey=True)


REGIME_FIELDS = ("d", "m", "n_down", "u_norm", P.SHARED_V, P.SIGMA_P, "flip_up", "flip_down")
REGIME_FIELDS += ("alpha", "eta", "n_test")


def _regime(base, reps):
    """The regime and the reading of the numbers."""
    return (
        f"Regime: {P.regime(base, REGIME_FIELDS)}. Excess = noisy test error - p_2 per run (the "
        "Bayes level is 0; the noisy error is p_2 + (1 - 2 p_2) x the clean error). Bayes level "
        f"reached: excess <= {DELTA:g}; a constant above p: excess >= {GAP:g}. Gamma_inh is our "
        "heuristic indicator (docs/model.md §7), Gamma_scr the downstream task's Kou indicator. "
        "Common random numbers across the points of each panel: on the N_1 panel scratch is the "
        f"same run at every N_1. With {reps} seeds the one-sided Wilcoxon p cannot fall below "
        f"{0.5**reps:.3g}."
    )


def _finding(size, share):
    """The share panel's conditions in one sentence."""
    held = "hold under both rules"
    if share["verdict_tests"] != "PASS":
        each = ", ".join(f"{r}: {YES[share['rules'][r]['holds']]}" for r in B.RULES)
        held = f"do not hold under both rules ({each})"
    missing = f"; {share['missing']} missing value(s)" if share["missing"] else ""
    return (
        f"Shared-fraction panel (reported, not in the verdict): the three conditions "
        f"(largest |u| = {size.x['share'][-1]:.3g} as 'above', |u| = 0 as 'below') "
        f"{held}{missing}."
    )


def present(size, m, dec):
    base, ns = _base_config(size), size.x["n_up"]
    labels = {r: B.stop_label(r, B.EPSILON, size.loss_cap, base.steps_down) for r in B.RULES}
    main = dec["panels"]["n_up"]["rules"]
    statistic = "; ".join(f"{labels[r]}: {_conditions_text(main[r], ns, 'N_1')}" for r in B.RULES)
    statistic += (
        f"; excess = noisy error - p_2 (p_2 = {base.flip_down:g}), DELTA = {DELTA:g}, GAP = "
        f"{GAP:g}; {len(ns)} values of N_1 x {size.seeds} paired seeds"
    )
    gam = {panel: [indicators(c) for c in size.configs[panel]] for panel in PANELS}
    finding = _finding(size, dec["panels"]["share"])
    rows = [row for p in PANELS for r in B.RULES for row in _rows(size, m, dec, gam, p, r)]
    draw = partial(_draw, size=size, dec=dec, labels=labels)
    figures = [Figure(f"bayes_{p}", partial(draw, panel=p)) for p in PANELS]
    sections = [_regime(base, size.seeds), *_panel_tables(size, m, dec, gam, labels), finding]
    sections += [Table(CSV_HEADER, rows, name="bayes", show=False), *figures]
    panels = {p: {"x": size.x[p]} for p in PANELS}
    for p, k in ((p, k) for p in PANELS for k in ("gamma_inh", "gamma_scr")):
        panels[p][k] = [g[k] for g in gam[p]]
    data = {"delta": DELTA, "gap": GAP, "p_down": base.flip_down, "replicates": size.seeds}
    data.update(base_config=base.to_dict(), finding_share_panel=finding, panels=panels, per_seed=m)
    return Outcome(statistic, sections, data)
