"""bayes: Bayes-optimal versus sub-Bayes-optimal downstream test error across
the Gamma boundary (the paper's Theorems 4.2 and 4.3 as the public reviews
state them; docs/model.md §s 6-8).

Design (protocol :data:`PROTOCOL`, fixed 2026-11-29 before its first full
run): the base transfer regime (d = 600, m = 10, |u| = 2, |v_1| = |v_2| = 1,
sigma_p = 1, N_2 = 10, alpha = 0.5, p_1 = 0, p_2 = 0.1, eta = 1, T = 200).
The quantity is the *excess noisy test error*, noisy error - p_2, of
fine-tuning (transfer) and of training from scratch, per run (the noisy error
is p + (1 - 2p) x the clean error, so the Bayes level p is excess 0).

Verdict panel: the upstream sample size N_1 from 10 to 590 (it moves the
inherited filters' quality, Gamma_inh, and leaves the downstream task and
scratch untouched). Common random numbers across N_1 (scratch is the same run
at every N_1) and across the stopping rule. Under each stopping rule (fixed
T = 200; training loss <= 1e-3, cap 2000 steps) all of:

(i) above the boundary: at the largest N_1 the median transfer excess is
    <= DELTA = 0.01 (the Bayes level is reached);
(ii) scratch is sub-Bayes there: its median excess is >= GAP = 0.05 and the
     one-sided Wilcoxon signed-rank test of scratch excess > transfer excess
     has p < 0.01;
(iii) the boundary lies inside the grid: at the smallest N_1 the median
      transfer excess is >= GAP.

PASS iff (i)-(iii) hold under both rules and no value is missing. Reported
beside it: per point medians, means and the share of runs at the Bayes level,
Gamma_inh and Gamma_scr, Page's trend test of the transfer excess over N_1,
and the same conditions on a shared-fraction panel (|mu_1|^2 = |mu_2|^2 = 5,
|u| from 0 to sqrt 5 at N_1 = 200; gain_shared's design) as its own finding.
"""

import math

import numpy as np

from .. import files
from ..lab import figures as F
from ..lab import report as R
from ..lab import stats as S
from ..lab.protocol import Protocol
from ..lab.stats import SIGNIFICANCE
from ..theory import indicators
from ._base import (
    ENGINE,
    EPSILON,
    LOSS_CAP,
    QUICK_LOSS_CAP,
    RULES,
    rule_label,
    stalled,
    sweep_rules,
    transfer_base,
)

NAME = "bayes"
CLAIM = (
    "across the Gamma boundary: with transfer the downstream noisy test error reaches the "
    "Bayes level p, where training from scratch stays a constant above p"
)
SOURCE = "paper"

# ----------------------------------------------------------------------
# the protocol
FLIP_DOWN = 0.1
NS = [10, 20, 50, 100, 200, 400, 590]
QUICK_NS = [10, 40, 100]
MU2 = 5.0
"""|mu_1|^2 = |mu_2|^2 on the shared-fraction panel (the base |u| = 2, |v| = 1)."""
US = [0.0, 0.5, 1.0, 1.5, 2.0, math.sqrt(MU2)]
QUICK_US = [0.0, 1.0, math.sqrt(MU2)]
SEEDS = 40
QUICK_SEEDS = 4
SALT = "bayes-v1"
DELTA = 0.01
"""The Bayes level is reached: excess noisy error <= DELTA."""
GAP = 0.05
"""A constant above p: excess noisy error >= GAP."""
PANELS = ("n_up", "share")
COMMON = {"n_up": ("n_up",), "share": ("u_norm", "v_up_norm", "v_down_norm")}
METRICS = (
    "noisy_transfer",
    "noisy_scratch",
    "err_transfer",
    "err_scratch",
    "loss_down",
    "loss_scratch",
    "steps_down",
    "steps_scratch",
)
CONDITIONS = ("above", "scratch_sub_bayes", "crossed")

PROTOCOL = Protocol(
    claim=NAME,
    grid={
        "base": "TRANSFER_BASE (d = 600, m = 10, |u| = 2, |v_1| = |v_2| = 1, sigma_p = 1, "
        "N_2 = 10, alpha = 0.5, p_1 = 0, p_2 = 0.1, eta = 1, T = 200, n_test = 10000, "
        "reduced estimator)",
        "n_up (verdict)": NS,
        "share (reported)": {
            "n_up": 200,
            "mu_sq": MU2,
            "u_norm": US,
            "v_up_norm = v_down_norm": "sqrt(mu_sq - |u|^2)",
        },
    },
    seeds=SEEDS,
    statistic=(
        "excess noisy test error (noisy error - p_2) of transfer and scratch per run; "
        "on the N_1 panel, under each stopping rule (fixed T = 200; training loss <= "
        f"{EPSILON:g} with cap {LOSS_CAP}): medians at the largest and smallest N_1 and "
        "the one-sided Wilcoxon signed-rank test of scratch excess > transfer excess at "
        "the largest N_1"
    ),
    pass_rule=(
        f"under both stopping rules: (i) median transfer excess <= {DELTA} at the largest "
        f"N_1; (ii) median scratch excess >= {GAP} there and Wilcoxon p < {SIGNIFICANCE}; "
        f"(iii) median transfer excess >= {GAP} at the smallest N_1; no missing value"
    ),
    fixed="2026-11-29",
    extra={
        "pairing": "common random numbers across N_1 (scratch is the same run at every N_1), "
        "across |u| on the share panel (u_norm, v_up_norm, v_down_norm) and across "
        "the stopping rule; independent streams between the panels",
        "salt": {"n_up": f"{SALT}/n_up", "share": f"{SALT}/share"},
        "delta": DELTA,
        "gap": GAP,
        "measure": "outcomes",
        "stalled": f"training loss > {EPSILON:g} at the cap (loss-target runs)",
        "reported, not in the verdict": "per point median / mean excess of transfer and "
        "scratch, share of runs with excess <= DELTA, "
        "Gamma_inh, Gamma_scr; Page's trend test (decrease) "
        "of the transfer excess over N_1; the same table and "
        "conditions on the share panel (largest |u| above, "
        "|u| = 0 below)",
        "quick": f"d = 120, m = 4, N_2 = 8, T = 60, N_1 in {QUICK_NS}, share panel at "
        f"N_1 = 40 with |u| in {{0, 1, sqrt 5}}, {QUICK_SEEDS} seeds, "
        f"cap {QUICK_LOSS_CAP}",
    },
)


def _arr(a):
    return np.array([[np.nan if v is None else v for v in row] for row in a], float)


def decide(x, transfer, scratch, delta=DELTA, gap=GAP):
    """The verdict from the excess noisy errors (pure: no files, no sweeps).

    Parameters
    ----------
    x : sequence of float, shape (k,)
        The swept values (N_1, or |u|): the largest is "above the boundary",
        the smallest "below".
    transfer, scratch : mapping rule -> array of shape (k, seeds)
        Excess noisy test error (noisy error - p) of fine-tuning and of
        scratch per point and seed under each stopping rule (NaN or None:
        missing).
    delta, gap : float
        Bayes level reached (excess <= delta); a constant above p (>= gap).

    Returns
    -------
    dict
        ``verdict`` ("PASS" when under every rule (i) the median transfer
        excess at the largest x is <= delta, (ii) the median scratch excess
        there is >= gap and the one-sided Wilcoxon test of scratch >
        transfer has p < SIGNIFICANCE, (iii) the median transfer excess at
        the smallest x is >= gap; and no value is missing), ``verdict_tests``
        (without the missing-value rule), ``missing`` and ``rules`` (rule ->
        per point ``median_*``, ``mean_*``, ``bayes_*`` (share of runs with
        excess <= delta) for transfer and scratch, ``wilcoxon`` at the top,
        ``conditions``, ``holds``, ``trend`` (Page, decrease of the transfer
        excess over x; None with fewer than 3 points)).
    """
    x = np.asarray(x, float)
    top, bottom = int(np.argmax(x)), int(np.argmin(x))
    rules, missing = {}, 0
    for rule in transfer:
        t, s = _arr(transfer[rule]), _arr(scratch[rule])
        out = {}
        for name, v in (("transfer", t), ("scratch", s)):
            o = S.outcome_summary(v, delta)
            out.update(
                {
                    f"median_{name}": o["median"],
                    f"mean_{name}": o["mean"],
                    f"bayes_{name}": 1.0 - o["failure_rate"],
                }
            )
        w = S.wilcoxon(s[top], t[top], "greater")
        mt, ms = out["median_transfer"], out["median_scratch"]
        cond = {
            "above": bool(mt[top] <= delta),
            "scratch_sub_bayes": bool(ms[top] >= gap and w["p"] < SIGNIFICANCE),
            "crossed": bool(mt[bottom] >= gap),
        }
        trend = S.trend(x, t, "less") if x.size >= 3 else None
        missing += S.n_missing(t, s)
        rules[rule] = {
            **out,
            "wilcoxon": w,
            "conditions": cond,
            "holds": all(cond.values()),
            "trend": trend,
            "top": top,
            "bottom": bottom,
        }
    tests = "PASS" if rules and all(r["holds"] for r in rules.values()) else "FAIL"
    return {
        "verdict": "FAIL" if missing else tests,
        "verdict_tests": tests,
        "missing": missing,
        "rules": rules,
    }


def v_norm(u):
    """|v_k| at |u| on the share panel: |u|^2 + |v_k|^2 = MU2."""
    return math.sqrt(max(0.0, MU2 - u * u))


def panel_configs(quick):
    """The base config and the two panels: ``{panel: (x, configs)}``."""
    base = transfer_base(quick, flip_down=FLIP_DOWN, engine=ENGINE)
    ns = QUICK_NS if quick else NS
    us = QUICK_US if quick else US
    return base, {
        "n_up": (ns, [base.replace(n_up=n) for n in ns]),
        "share": (
            us,
            [base.replace(u_norm=u, v_up_norm=v_norm(u), v_down_norm=v_norm(u)) for u in us],
        ),
    }


XNAME = {"n_up": "N_1", "share": "|u|"}
YES = {True: "yes", False: "no"}


def _conditions(d, x, xname):
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


def _table(d, x, xname, gam, stall, reps):
    head = [
        xname,
        "Gamma_inh",
        "Gamma_scr",
        "transfer excess (median / mean)",
        f"transfer <= {DELTA:g}",
        "scratch excess (median / mean)",
        f"scratch <= {DELTA:g}",
    ]
    if stall is not None:
        head.append("stalled (transfer / scratch)")
    rows = []
    for i, v in enumerate(x):
        row = [
            f"{v:g}" if isinstance(v, int) else f"{v:.3g}",
            _g(gam[i]["gamma_inh"]),
            _g(gam[i]["gamma_scr"]),
            f"{d['median_transfer'][i]:+.4f} / {d['mean_transfer'][i]:+.4f}",
            f"{100 * d['bayes_transfer'][i]:.0f}%",
            f"{d['median_scratch'][i]:+.4f} / {d['mean_scratch'][i]:+.4f}",
            f"{100 * d['bayes_scratch'][i]:.0f}%",
        ]
        if stall is not None:
            row.append(f"{int(stall[0][i])} / {int(stall[1][i])} of {reps}")
        rows.append(row)
    return R.markdown_table(head, rows)


def _g(v):
    return "n/a" if v is None else f"{v:.3g}"


def _figure(path, x, dec, labels, xlabel, title, xlog):
    """Median excess of transfer and scratch against x, one panel per rule."""
    if not F.available():
        return []
    fig, axes = F.subplots(1, len(RULES), figsize=(10.0, 4.0), sharey=True)
    for ax, r in zip(np.atleast_1d(axes), RULES):
        d = dec["rules"][r]
        ax.plot(x, d["median_transfer"], marker="o", color="C0", label="transfer (median)")
        ax.plot(x, d["median_scratch"], marker="s", color="C3", label="scratch (median)")
        ax.axhline(0.0, color="k", lw=0.8, label="Bayes level (excess 0)")
        ax.axhline(DELTA, color="0.4", lw=0.8, ls="--", label=f"DELTA = {DELTA:g}")
        ax.axhline(GAP, color="0.4", lw=0.8, ls=":", label=f"GAP = {GAP:g}")
        if xlog:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_title(labels[r], fontsize=9)
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("excess noisy test error (noisy - p_2)")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return [F.save(fig, path, dpi=100)]


def run(out, quick=False, jobs=1):
    folder = R.claim_folder(out, NAME)
    reps = QUICK_SEEDS if quick else SEEDS
    base, panels = panel_configs(quick)
    p = base.flip_down
    vals, dec, gam, stall = {}, {}, {}, {}
    for panel in PANELS:
        x, grid = panels[panel]
        vals[panel] = sweep_rules(
            out,
            grid,
            quick,
            reps,
            jobs,
            f"{NAME}-{panel}",
            f"{SALT}/{panel}",
            common=COMMON[panel],
            metrics=METRICS,
            measure="outcomes",
        )
        v = vals[panel]
        dec[panel] = decide(
            x,
            {r: v[r]["noisy_transfer"] - p for r in RULES},
            {r: v[r]["noisy_scratch"] - p for r in RULES},
        )
        gam[panel] = [indicators(c) for c in grid]
        stall[panel] = (
            np.nansum(stalled(v["loss"]["loss_down"], EPSILON), axis=1),
            np.nansum(stalled(v["loss"]["loss_scratch"], EPSILON), axis=1),
        )
    labels = {r: rule_label(r, quick, base.steps_down) for r in RULES}
    main = dec["n_up"]
    ns = panels["n_up"][0]
    statistic = "; ".join(
        f"{labels[r]}: {_conditions(main['rules'][r], ns, 'N_1')}" for r in RULES
    ) + (
        f"; excess = noisy error - p_2 (p_2 = {p:g}), DELTA = {DELTA:g}, GAP = {GAP:g}; "
        f"{len(ns)} values of N_1 x {reps} paired seeds"
    )
    header = [
        "panel",
        "rule",
        "x",
        "n_up",
        "u_norm",
        "v_norm",
        "gamma_inh",
        "gamma_scr",
        "excess_transfer_median",
        "excess_transfer_mean",
        "bayes_share_transfer",
        "excess_scratch_median",
        "excess_scratch_mean",
        "bayes_share_scratch",
        "stalled_transfer",
        "stalled_scratch",
    ]
    rows = []
    for panel in PANELS:
        x, grid = panels[panel]
        for r in RULES:
            d = dec[panel]["rules"][r]
            for i, c in enumerate(grid):
                rows.append(
                    [
                        panel,
                        r,
                        x[i],
                        c.n_up,
                        c.u_norm,
                        c.v_down_norm,
                        gam[panel][i]["gamma_inh"],
                        gam[panel][i]["gamma_scr"],
                        d["median_transfer"][i],
                        d["mean_transfer"][i],
                        d["bayes_transfer"][i],
                        d["median_scratch"][i],
                        d["mean_scratch"][i],
                        d["bayes_scratch"][i],
                        stall[panel][0][i] if r == "loss" else None,
                        stall[panel][1][i] if r == "loss" else None,
                    ]
                )
    files.write_csv(folder / "bayes.csv", header, rows)
    sections = []
    for panel in PANELS:
        x = panels[panel][0]
        xn = XNAME[panel]
        role = (
            "in the verdict"
            if panel == "n_up"
            else f"reported, not in the verdict; N_1 = {base.n_up}, |mu_1|^2 = |mu_2|^2 = {MU2:g}"
        )
        for r in RULES:
            d = dec[panel]["rules"][r]
            tr = d["trend"]
            sections.append(
                f"**{xn} panel ({role}), {labels[r]}**: {_conditions(d, x, xn)}; all three: "
                f"{YES[d['holds']]}. Transfer excess against {xn} (decrease): "
                f"{R.fmt_trend(tr) if tr else 'n/a'}.\n\n"
                + _table(d, x, xn, gam[panel], stall[panel] if r == "loss" else None, reps)
            )
    share = dec["share"]
    finding = (
        f"Shared-fraction panel (reported, not in the verdict): the three conditions "
        f"(largest |u| = {panels['share'][0][-1]:.3g} as 'above', |u| = 0 as 'below') "
        + (
            "hold under both rules"
            if share["verdict_tests"] == "PASS"
            else "do not hold under both rules ("
            + ", ".join(f"{r}: {YES[share['rules'][r]['holds']]}" for r in RULES)
            + ")"
        )
        + (f"; {share['missing']} missing value(s)" if share["missing"] else "")
        + "."
    )
    figs = _figure(
        folder / "bayes_n_up.png",
        ns,
        main,
        labels,
        "N_1 (upstream samples)",
        f"excess noisy error vs N_1 (|u| = {base.u_norm:g}; {reps} paired seeds)",
        xlog=True,
    )
    figs += _figure(
        folder / "bayes_share.png",
        panels["share"][0],
        share,
        labels,
        "|u| (shared signal)",
        f"excess noisy error vs |u| at |mu|^2 = {MU2:g}, N_1 = {base.n_up} ({reps} paired seeds)",
        xlog=False,
    )
    body = "\n\n".join(
        [
            f"Regime: d = {base.d}, m = {base.m}, N_2 = {base.n_down}, |u| = {base.u_norm:g}, "
            f"|v_1| = |v_2| = {base.v_up_norm:g}, sigma_p = {base.sigma_p_up:g}, p_1 = "
            f"{base.flip_up:g}, p_2 = {p:g}, alpha = {base.alpha:g}, eta = {base.eta:g}, n_test = "
            f"{base.n_test}. Excess = noisy test error - p_2 per run (the Bayes level is 0; the "
            f"noisy error is p_2 + (1 - 2 p_2) x the clean error). Bayes level reached: excess <= "
            f"{DELTA:g}; a constant above p: excess >= {GAP:g}. Gamma_inh is our heuristic "
            f"indicator (docs/model.md §7), Gamma_scr the downstream task's Kou indicator. Common "
            f"random numbers across the points of each panel: on the N_1 panel scratch is the same "
            f"run at every N_1."
            + (
                " Quick (CI-size) run: not the protocol's sizes; with "
                f"{reps} seeds the one-sided Wilcoxon p cannot fall below {0.5**reps:.3g}."
                if quick
                else ""
            ),
            *sections,
            finding,
            R.figure_note(figs),
        ]
    )
    res = R.result(
        NAME,
        CLAIM,
        main["verdict"],
        statistic,
        body,
        source=SOURCE,
        missing=main["missing"],
        protocol=PROTOCOL,
        holds={r: main["rules"][r]["holds"] for r in RULES},
        share_panel=share["verdict_tests"],
    )
    files.write_json(
        folder / "bayes.json",
        {
            "claim": CLAIM,
            "verdict": res["verdict"],
            "statistic": res["statistic"],
            "verdict_without_missing_rule": main["verdict_tests"],
            "n_missing": main["missing"],
            "replicates": reps,
            "quick": quick,
            "delta": DELTA,
            "gap": GAP,
            "p_down": p,
            "protocol": PROTOCOL.to_dict(),
            "protocol_hash": PROTOCOL.hash,
            "base_config": base.to_dict(),
            "finding_share_panel": finding,
            "panels": {
                panel: {
                    "x": panels[panel][0],
                    "verdict_tests": dec[panel]["verdict_tests"],
                    "n_missing": dec[panel]["missing"],
                    "gamma_inh": [g["gamma_inh"] for g in gam[panel]],
                    "gamma_scr": [g["gamma_scr"] for g in gam[panel]],
                    "rules": dec[panel]["rules"],
                    "per_seed": {r: {k: vals[panel][r][k] for k in METRICS} for r in RULES},
                }
                for panel in PANELS
            },
            "table": [dict(zip(header, row)) for row in rows],
        },
    )
    return res
