"""failure_mode: does the failure mechanism of the validation audit (P1)
predict failed and stalled fine-tuning? Our own hypothesis, not the paper's
(docs/model.md §8.3; how this claim tests it: §8.5).

A flipped downstream training point is *dead* when every filter (inherited or
fresh) of its observed class has a non-positive pre-activation on every
patch at step 0 of fine-tuning (:func:`refimpl.lab.measures.dead_points`):
ReLU'(0) = 0, so no filter of that class can start to memorise it, and GD
fits it by unlearning the signal instead (the audit's seed 0).

Design (protocol :data:`PROTOCOL`, fixed 2026-11-29 before its first full
run): gain_alpha's noisy regime (|u| = 2, N_2 = 30, p_2 = 0.3; the rest
TRANSFER_BASE) at alpha in {0.25, 0.5, 0.75, 1} and two remedies at alpha =
1 (fine-tuning weight decay 0.01; inherited weights rescaled by 0.5); 200
seeds per point with common random numbers across all points (the same data,
upstream model and initialisation per seed), under both stopping rules (fixed
T = 200; training loss <= 1e-3 with cap 2000, the same runs stopped by the
loss).

Verdict, at alpha = 1 (independent seeds): (a) failures (clean test error >
0.2, fixed T) are more frequent among runs with at least one dead point than
among runs without (one-sided Fisher exact test) and (b) so are stalled runs
(training loss above 1e-3 at the cap, loss rule, with that rule's own dead
count), both p < 0.01; no missing value. Reported beside it, each with its
own test: per point the dead, failure and stalled rates and the errors; the
AUC of the dead count for the event at alpha = 1 (one-sided Mann-Whitney)
and its Spearman correlation with err_transfer - err_scratch; the event rate
against alpha (exact McNemar, alpha = 1 more often than alpha = 0.5); and
whether each of alpha = 0.5, weight decay and rescaling removes it (exact
McNemar, fewer events than alpha = 1), under both rules (the event: a
failure under the fixed-T rule, a stalled run under the loss rule).
"""

import math
import warnings

import numpy as np
import scipy.stats

from .. import files
from ..lab import figures as F
from ..lab import report as R
from ..lab import stats as S
from ..lab.protocol import Protocol
from ..lab.stats import SIGNIFICANCE
from ._base import (
    ENGINE,
    EPSILON,
    FAILURE_ERROR,
    LOSS_CAP,
    OUTCOME_HEADER,
    QUICK_LOSS_CAP,
    RULES,
    STALL_HEADER,
    outcome_cells,
    point_summary,
    rule_label,
    stalled,
    sweep_rules,
    transfer_base,
)

NAME = "failure_mode"
CLAIM = (
    "under downstream label noise, flipped training points on which every filter of the "
    'observed class is inactive at the start of fine-tuning ("dead points") predict '
    "failed and stalled fine-tuning"
)
SOURCE = "hypothesis"
SALT = "failure_mode-v1"
SEEDS = 200
QUICK_SEEDS = 8
N_DOWN, QUICK_N_DOWN = 30, 16
REGIME = {"u_norm": 2.0, "flip_down": 0.3}
ALPHAS = [0.25, 0.5, 0.75, 1.0]
REMEDIES = {"weight decay 0.01": {"weight_decay": 0.01}, "rescale 0.5": {"rescale_inherited": 0.5}}
POINTS = [(f"alpha = {a:g}", {"alpha": a}) for a in ALPHAS] + [
    (f"alpha = 1, {k}", {"alpha": 1.0, **v}) for k, v in REMEDIES.items()
]
ONE, HALF = ALPHAS.index(1.0), ALPHAS.index(0.5)
COMPARED = {"alpha = 0.5": HALF, **{k: len(ALPHAS) + i for i, k in enumerate(REMEDIES)}}
"""The points tested for removing the event (index into POINTS) against alpha = 1."""
COMMON = ("alpha", "weight_decay", "rescale_inherited")
METRICS = (
    "err_transfer",
    "err_scratch",
    "loss_down",
    "loss_scratch",
    "steps_down",
    "n_flipped",
    "dead_points",
    "dead_inherited",
)
EVENT = {"steps": "failure", "loss": "stalled"}

PROTOCOL = Protocol(
    claim=NAME,
    grid={
        "base": "TRANSFER_BASE (d = 600, m = 10, N_1 = 200, p_1 = 0, eta = 1, T = 200) with "
        f"|u| = 2, N_2 = {N_DOWN}, p_2 = 0.3 (gain_alpha's noisy regime)",
        "alpha": ALPHAS,
        "remedies at alpha = 1": REMEDIES,
        "points": [p for p, _ in POINTS],
    },
    seeds=SEEDS,
    statistic=(
        "at alpha = 1: (a) one-sided Fisher exact test that failures (err_transfer > "
        f"{FAILURE_ERROR:g}, fixed T) are more frequent among runs with dead >= 1 than "
        "with dead = 0; (b) the same for stalled fine-tuning (training loss > "
        f"{EPSILON:g} at the cap {LOSS_CAP}, loss rule, its own dead count)"
    ),
    pass_rule=f"(a) and (b) each p < {SIGNIFICANCE}; no missing value",
    fixed="2026-11-29",
    extra={
        "salt": SALT,
        "pairing": "common random numbers across all points (alpha, weight "
        "decay, rescaling) and across the stopping rules",
        "dead": "dead_points >= 1: a flipped training point on which every filter "
        "(inherited or fresh) of its observed class has non-positive pre-activation "
        "on every patch at step 0 of fine-tuning",
        "failure": f"clean test error > {FAILURE_ERROR} (fixed T)",
        "stalled": f"training loss > {EPSILON:g} at the cap (loss rule)",
        "reported, not in the verdict": "per point dead, failure and stalled rates and "
        "errors; AUC (Mann-Whitney) and Spearman of the "
        "dead count at alpha = 1; McNemar alpha = 1 vs 0.5; "
        "McNemar of each remedy (and alpha = 0.5) vs alpha "
        "= 1, both rules",
        "quick": f"d = 120, m = 4, N_1 = 40, N_2 = {QUICK_N_DOWN}, T = 60, {QUICK_SEEDS} "
        f"seeds, cap {QUICK_LOSS_CAP}: a smoke test",
    },
)


def _f(a):
    return np.array(
        [np.nan if v is None else v for v in np.ravel(np.asarray(a, dtype=object))], float
    ).reshape(np.shape(a))


def failed(err, failure=FAILURE_ERROR):
    """1 where the error exceeds ``failure``, 0 where not, NaN where missing."""
    err = _f(err)
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(err), (err > failure).astype(float), np.nan)


def association(dead, event):
    """:func:`refimpl.lab.stats.fisher_greater` of ``dead >= 1`` for ``event``
    over independent runs, on the complete runs; p is NaN when a value is
    missing (``n_missing`` counts them)."""
    d, e = _f(dead), _f(event)
    ok = np.isfinite(d) & np.isfinite(e)
    out = S.fisher_greater(d[ok] >= 1, e[ok] > 0)
    out["n_missing"] = int(d.size - ok.sum())
    if out["n_missing"]:
        out["p"] = float("nan")
    return out


def decide(dead_steps, err_transfer, dead_loss, loss_down, epsilon=EPSILON, failure=FAILURE_ERROR):
    """The verdict at alpha = 1 (pure: no files, no sweeps).

    Parameters
    ----------
    dead_steps, err_transfer : arrays of shape (seeds,)
        Dead points and clean test error of fine-tuning under the fixed-T
        rule (None or NaN: missing).
    dead_loss, loss_down : arrays of shape (seeds,)
        Dead points and final training loss of fine-tuning under the loss
        rule (the same step-0 state; None or NaN: missing).
    epsilon, failure : float
        The loss target, and the error above which a run fails.

    Returns
    -------
    dict
        ``verdict`` ("PASS" when (a) failures and (b) stalled runs are more
        frequent with dead >= 1, one-sided Fisher p < SIGNIFICANCE each, and
        no value is missing), ``verdict_tests`` (without the missing-value
        rule), ``missing``, ``failure`` (a) and ``stalled`` (b)
        (:func:`association`), ``ok`` ({"a", "b"}).
    """
    a = association(dead_steps, failed(err_transfer, failure))
    b = association(dead_loss, stalled(_f(loss_down), epsilon))
    ok = {"a": bool(a["p"] < SIGNIFICANCE), "b": bool(b["p"] < SIGNIFICANCE)}
    missing = S.n_missing(_f(dead_steps), _f(err_transfer), _f(dead_loss), _f(loss_down))
    tests = "PASS" if all(ok.values()) else "FAIL"
    return {
        "verdict": "FAIL" if missing else tests,
        "verdict_tests": tests,
        "missing": missing,
        "failure": a,
        "stalled": b,
        "ok": ok,
    }


def _auc(dead, event):
    """AUC of the dead count for the event, with the one-sided Mann-Whitney
    p (events score higher); NaN with a missing value or an empty class."""
    d, e = _f(dead), _f(event)
    out = {
        "auc": S.auc(d, e) if d.size else float("nan"),
        "n_event": int(np.sum(e == 1)),
        "n_none": int(np.sum(e == 0)),
        "p": float("nan"),
        "n_missing": S.n_missing(d, e),
    }
    if math.isfinite(out["auc"]):
        out["p"] = float(
            scipy.stats.mannwhitneyu(d[e == 1], d[e == 0], alternative="greater").pvalue
        )
    return out


def _spearman(dead, diff):
    """Spearman rho of the dead count with err_transfer - err_scratch
    (one-sided p, rho > 0); NaN with a missing value or a constant input."""
    d, g = _f(dead), _f(diff)
    out = {"rho": float("nan"), "p": float("nan"), "n": int(d.size)}
    if (
        np.all(np.isfinite(d))
        and np.all(np.isfinite(g))
        and d.size > 2
        and np.ptp(d) > 0
        and np.ptp(g) > 0
    ):
        r = scipy.stats.spearmanr(d, g, alternative="greater")
        out.update(rho=float(r.statistic), p=float(r.pvalue))
    return out


def findings(dead, err_transfer, err_scratch, loss_down, epsilon=EPSILON, failure=FAILURE_ERROR):
    """What is reported beside the verdict (pure).

    Parameters
    ----------
    dead, err_transfer, err_scratch, loss_down : mapping rule -> array (points, seeds)
        Per point of :data:`POINTS` (alpha = 1 at :data:`ONE`, alpha = 0.5
        at :data:`HALF`) and seed (shared across points: paired).

    Returns
    -------
    dict
        Per rule: ``event`` (rule -> indicators (points, seeds): failure
        under ``steps``, stalled under ``loss``), ``dead_rate``,
        ``dead_mean``, ``event_rate`` (per point), ``auc`` and ``spearman``
        at alpha = 1, ``vs_half`` (McNemar: alpha = 1 has the event more
        often than alpha = 0.5), ``remedies`` (name of :data:`COMPARED` ->
        McNemar "less" against alpha = 1, with ``removes`` = p <
        SIGNIFICANCE and the point's ``dead_rate``).
    """
    out = {}
    for rule in dead:
        d = _f(dead[rule])
        ev = (
            failed(err_transfer[rule], failure)
            if rule == "steps"
            else stalled(_f(loss_down[rule]), epsilon)
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            dead_rate = np.nanmean(np.where(np.isfinite(d), d >= 1, np.nan), axis=1)
            rates = np.nanmean(ev, axis=1)
            dead_mean = np.nanmean(d, axis=1)
        remedies = {}
        for name, k in COMPARED.items():
            t = S.paired_failures(ev[k], ev[ONE], "less")
            remedies[name] = {
                **t,
                "removes": bool(t["p"] < SIGNIFICANCE),
                "dead_rate": float(dead_rate[k]),
            }
        diff = _f(err_transfer[rule])[ONE] - _f(err_scratch[rule])[ONE]
        out[rule] = {
            "event": ev,
            "dead_rate": dead_rate,
            "dead_mean": dead_mean,
            "event_rate": rates,
            "auc": _auc(d[ONE], ev[ONE]),
            "spearman": _spearman(d[ONE], diff),
            "vs_half": S.paired_failures(ev[ONE], ev[HALF], "greater"),
            "remedies": remedies,
        }
    return out


# ----------------------------------------------------------------------
# running it
def regime(quick):
    """The base config of every point (full or quick size)."""
    return transfer_base(quick, n_down=QUICK_N_DOWN if quick else N_DOWN, engine=ENGINE, **REGIME)


def _fmt_assoc(t, event):
    return (
        f"{event} in {t['table'][0][0]} of {t['n_exposed']} runs with dead >= 1 "
        f"({_pct(t['rate_exposed'])}) vs {t['table'][1][0]} of {t['n_unexposed']} with "
        f"dead = 0 ({_pct(t['rate_unexposed'])}), Fisher one-sided {R.fmt_p(t['p'])}"
    )


def _pct(x):
    return "n/a" if not math.isfinite(x) else f"{100 * x:.0f}%"


def _fmt_mcnemar(t):
    return (
        f"{t['a_only']} vs {t['b_only']} discordant, rates {t['rate_a']:.3f} vs "
        f"{t['rate_b']:.3f}, exact McNemar {R.fmt_p(t['p'])}"
    )


def _reported_lines(rep, labels, reps):
    lines = []
    for r in RULES:
        f, ev = rep[r], EVENT[r]
        a, sp = f["auc"], f["spearman"]
        auc = (
            f"{a['auc']:.3f} ({a['n_event']} with, {a['n_none']} without; Mann-Whitney "
            f"one-sided {R.fmt_p(a['p'])})"
            if math.isfinite(a["auc"])
            else f"n/a ({a['n_event']} with, {a['n_none']} without, {a['n_missing']} missing)"
        )
        rho = (
            f"{sp['rho']:.3f} (one-sided {R.fmt_p(sp['p'])})"
            if math.isfinite(sp["rho"])
            else "n/a (a missing value or a constant input)"
        )
        lines.append(
            f"- reported ({labels[r]}), alpha = 1: AUC of the dead count for {ev} "
            f"{auc}; Spearman rho of the dead count with err_transfer - err_scratch "
            f"{rho}"
        )
        lines.append(
            f"- reported ({labels[r]}), {ev} rate against alpha: "
            + ", ".join(f"{a_:g}: {f['event_rate'][i]:.3f}" for i, a_ in enumerate(ALPHAS))
            + f"; alpha = 1 more often than 0.5: {_fmt_mcnemar(f['vs_half'])}"
        )
        for name, t in f["remedies"].items():
            lines.append(
                f"- reported ({labels[r]}), {name} vs alpha = 1, fewer {ev} runs: "
                f"{_fmt_mcnemar(t)} — {'removes it' if t['removes'] else 'does not remove it'} "
                f"(p < {SIGNIFICANCE} needed); dead >= 1 in {_pct(t['dead_rate'])} of "
                f"{reps} runs"
            )
    return lines


def _tables(summ, rep, labels, reps):
    out = []
    for r in RULES:
        s, f = summ[r], rep[r]
        head = ["point", "dead >= 1", "mean dead", f"{EVENT[r]} rate", *OUTCOME_HEADER] + (
            [STALL_HEADER] if r == "loss" else []
        )
        rows = [
            [
                p,
                _pct(f["dead_rate"][i]),
                f"{f['dead_mean'][i]:.2f}",
                f"{f['event_rate'][i]:.3f}",
                *outcome_cells(s, i, reps),
            ]
            for i, (p, _) in enumerate(POINTS)
        ]
        out.append(
            f"**{labels[r]}** — per point over {reps} seeds (dead: flipped points with "
            f"every filter of the observed class inactive at step 0; errors mean / median "
            f"/ share > {FAILURE_ERROR:g}):\n\n" + R.markdown_table(head, rows)
        )
    return out


def _csv(summ, rep, vals):
    header = [
        "rule",
        "point",
        "alpha",
        "weight_decay",
        "rescale_inherited",
        "dead_rate",
        "dead_mean",
        "dead_inherited_mean",
        "event",
        "event_rate",
        "err_transfer_mean",
        "err_transfer_median",
        "fail_transfer",
        "err_scratch_mean",
        "err_scratch_median",
        "fail_scratch",
        "stalled_transfer",
        "stalled_scratch",
        "steps_down_median",
        "n_flipped_mean",
    ]
    rows = []
    for r in RULES:
        s, f = summ[r], rep[r]
        for i, (p, over) in enumerate(POINTS):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                extra = [
                    float(np.nanmean(vals[r]["dead_inherited"][i])),
                    EVENT[r],
                    f["event_rate"][i],
                ]
                tail = [
                    float(np.nanmedian(vals[r]["steps_down"][i])),
                    float(np.nanmean(vals[r]["n_flipped"][i])),
                ]
            rows.append(
                [
                    r,
                    p,
                    over["alpha"],
                    over.get("weight_decay", 0.0),
                    over.get("rescale_inherited", 1.0),
                    f["dead_rate"][i],
                    f["dead_mean"][i],
                    *extra,
                    s["err_transfer_mean"][i],
                    s["err_transfer_median"][i],
                    s["fail_transfer"][i],
                    s["err_scratch_mean"][i],
                    s["err_scratch_median"][i],
                    s["fail_scratch"][i],
                    s["stalled_transfer"][i] if r == "loss" else None,
                    s["stalled_scratch"][i] if r == "loss" else None,
                    *tail,
                ]
            )
    return header, rows


def _figures(folder, rep, vals, labels, reps):
    if not F.available():
        return []
    fig, ax = F.subplots(figsize=(7.2, 4.4))
    k = len(ALPHAS)
    for c, (r, ls) in enumerate((("steps", "-"), ("loss", "--"))):
        f = rep[r]
        ax.plot(
            ALPHAS,
            f["event_rate"][:k],
            f"C{c}{ls}",
            marker="o",
            label=f"{EVENT[r]} rate ({labels[r]})",
        )
        ax.plot(ALPHAS, f["dead_rate"][:k], f"C{c}:", marker="x", label=f"dead >= 1 ({r} runs)")
        for j, (name, mk) in enumerate(zip(REMEDIES, ("s", "^"))):
            x = 1.0 + 0.025 * (j + 1)
            ax.plot(
                [x],
                [f["event_rate"][k + j]],
                f"C{c}",
                marker=mk,
                ls="none",
                label=f"{EVENT[r]}, {name}",
            )
            ax.plot([x], [f["dead_rate"][k + j]], f"C{c}", marker=mk, ls="none", mfc="none")
    ax.set_xlabel("alpha (inherited fraction); remedies at alpha = 1, offset")
    ax.set_ylabel("rate")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2, loc="best")
    ax.set_title(
        f"failure / stalled rate and dead >= 1 rate ({reps} seeds; open markers: "
        "dead >= 1 of the remedies)",
        fontsize=8,
    )
    paths = [F.save(fig, folder / "failure_mode_rates.png", dpi=100)]
    fig, axes = F.subplots(1, 2, figsize=(10, 4.2))
    rng = np.random.default_rng(0)  # jitter only
    for ax, r in zip(axes, RULES):
        d = vals[r]["dead_points"][ONE]
        diff = vals[r]["err_transfer"][ONE] - vals[r]["err_scratch"][ONE]
        ev = rep[r]["event"][ONE] == 1
        x = d + rng.uniform(-0.15, 0.15, d.shape)
        ax.scatter(
            x[~ev],
            diff[~ev],
            s=10,
            c="C0",
            label={"failure": "no failure", "stalled": "not stalled"}[EVENT[r]],
        )
        ax.scatter(x[ev], diff[ev], s=14, c="C3", marker="x", label=EVENT[r])
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xlabel("dead points at step 0 (jittered)")
        ax.set_ylabel("err_transfer - err_scratch")
        ax.set_title(f"alpha = 1, {labels[r]}", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    paths.append(F.save(fig, folder / "failure_mode_dead.png", dpi=100))
    return paths


def run(out, quick=False, jobs=1):
    folder = R.claim_folder(out, NAME)
    reps = QUICK_SEEDS if quick else SEEDS
    base = regime(quick)
    grid = [base.replace(**over) for _, over in POINTS]
    vals = sweep_rules(
        out, grid, quick, reps, jobs, NAME, SALT, common=COMMON, metrics=METRICS, measure="outcomes"
    )
    get = {m: {r: vals[r][m] for r in RULES} for m in METRICS}
    dec = decide(
        get["dead_points"]["steps"][ONE],
        get["err_transfer"]["steps"][ONE],
        get["dead_points"]["loss"][ONE],
        get["loss_down"]["loss"][ONE],
    )
    rep = findings(get["dead_points"], get["err_transfer"], get["err_scratch"], get["loss_down"])
    summ = {
        "steps": point_summary(vals["steps"]["err_transfer"], vals["steps"]["err_scratch"]),
        "loss": point_summary(
            vals["loss"]["err_transfer"],
            vals["loss"]["err_scratch"],
            vals["loss"]["loss_down"],
            vals["loss"]["loss_scratch"],
            EPSILON,
        ),
    }
    labels = {r: rule_label(r, quick, base.steps_down) for r in RULES}
    a, b = dec["failure"], dec["stalled"]
    statistic = (
        f"alpha = 1, {reps} seeds: (a) {labels['steps']}: {_fmt_assoc(a, 'failure')}; "
        f"(b) {labels['loss']}: {_fmt_assoc(b, 'stalled')}"
    )
    missing_all = sum(
        S.n_missing(vals[r][m]) for r in RULES for m in ("err_transfer", "err_scratch", "loss_down")
    )
    ok = lambda k: "holds" if dec["ok"][k] else "does NOT hold"
    lines = [
        f"Base: d = {base.d}, m = {base.m}, N_1 = {base.n_up}, p_1 = {base.flip_up:g}, |u| = "
        f"{base.u_norm:g}, N_2 = {base.n_down}, p_2 = {base.flip_down:g}, eta = {base.eta:g}; "
        f"points: {', '.join(p for p, _ in POINTS)}; {reps} seeds per point, common random "
        f"numbers across points and rules. A failure: clean test error > {FAILURE_ERROR:g}; "
        f"stalled: training loss > {EPSILON:g} at the cap; dead: dead_points >= 1 at step 0."
        + (" Quick (CI-size) run: not the protocol's sizes; a smoke test." if quick else "")
        + f" Missing values over all points (err_transfer, err_scratch, loss): {missing_all}.\n",
        f"- (a) alpha = 1, {labels['steps']}: {_fmt_assoc(a, 'failure')} — {ok('a')}",
        f"- (b) alpha = 1, {labels['loss']}: {_fmt_assoc(b, 'stalled')} — {ok('b')}",
        *_reported_lines(rep, labels, reps),
    ]
    figs = _figures(folder, rep, vals, labels, reps)
    body = "\n\n".join(["\n".join(lines), *_tables(summ, rep, labels, reps), R.figure_note(figs)])
    header, rows = _csv(summ, rep, vals)
    files.write_csv(folder / "failure_mode.csv", header, rows)
    res = R.result(
        NAME,
        CLAIM,
        dec["verdict"],
        statistic,
        body,
        source=SOURCE,
        missing=dec["missing"],
        protocol=PROTOCOL,
    )

    def public(f):
        return {k: v for k, v in f.items() if k != "event"}

    table = [dict(zip(header, row)) for row in rows]
    files.write_json(
        folder / "failure_mode.json",
        {
            "claim": CLAIM,
            "verdict": res["verdict"],
            "verdict_tests": dec["verdict_tests"],
            "statistic": res["statistic"],
            "protocol": PROTOCOL.to_dict(),
            "protocol_hash": PROTOCOL.hash,
            "quick": quick,
            "replicates": reps,
            "n_missing": dec["missing"],
            "n_missing_all_points": missing_all,
            "base_config": base.to_dict(),
            "tests": {"a_failure": a, "b_stalled": b, "ok": dec["ok"]},
            "reported": {r: public(rep[r]) for r in RULES},
            "points": {
                p: {r: next(t for t in table if t["rule"] == r and t["point"] == p) for r in RULES}
                for p, _ in POINTS
            },
            "per_seed": {
                r: {p: {m: vals[r][m][i] for m in METRICS} for i, (p, _) in enumerate(POINTS)}
                for r in RULES
            },
        },
    )
    return res
