"""failure_mode: do dead points predict failed and stalled fine-tuning? Our
own hypothesis, not the paper's (docs/model.md §8.3, §8.5); the design is
:data:`PROTOCOL`. A flipped downstream training point is *dead* when every
filter of its observed class is inactive on all its patches at step 0 of
fine-tuning (:func:`refimpl.lab.measures.dead_points`): ReLU'(0) = 0, so no
filter can start to memorise it, and GD fits it by unlearning the signal."""

import itertools
import math
import warnings
from functools import partial

import numpy as np
import scipy.stats
from scipy.stats.contingency import odds_ratio

from ..lab import present as P
from ..lab import report as R
from ..lab import stats as S
from ..lab.claim import Figure, Outcome, Protocol, Size, Table
from ..lab.stats import SIGNIFICANCE
from . import _base as B
from . import _failure_mode_figures as FF

ALPHAS = [0.25, 0.5, 0.75, 1.0]
REMEDIES = {"weight decay 0.01": {"weight_decay": 0.01}, "rescale 0.5": {"rescale_inherited": 0.5}}
POINTS = {f"alpha = {a:g}": {"alpha": a} for a in ALPHAS}
POINTS.update({f"alpha = 1, {k}": {"alpha": 1.0, **v} for k, v in REMEDIES.items()})
"""The points: name -> changes of the regime (alpha, then the remedies at alpha = 1)."""
ONE = ALPHAS.index(1.0)
HALF = ALPHAS.index(0.5)
COMPARED = {"alpha = 0.5": HALF, **{k: len(ALPHAS) + i for i, k in enumerate(REMEDIES)}}
"""The points (index into POINTS) tested for removing the event against alpha = 1."""
COMMON = ("alpha", "weight_decay", "rescale_inherited")
OUTCOMES = ("err_transfer", "err_scratch", "loss_down", "loss_scratch")  # for point_summary
METRICS = OUTCOMES + ("steps_down", "n_flipped", "dead_points", "dead_inherited")
EVENT = {"steps": "failure", "loss": "stalled"}
STALL = 2 * B.EPSILON
"""A run stalled when its final training loss under the loss rule is above this: a declared
margin (2 x the target) above the target, so that a run still converging at the cap is not one."""
SEEDS = 470
"""Seeds per point: 80% power of part (b) at the committed v1 rates (see the protocol notes)."""


def _size(quick, n_down, seeds, cap):
    """gain_alpha's noisy regime (|u| = 2, p_2 = 0.3) at N_2 = ``n_down``, every point."""
    base = B.transfer_base(quick, n_down=n_down, engine=B.ENGINE, u_norm=2.0, flip_down=0.3)
    return Size({"points": [base.replace(**o) for o in POINTS.values()]}, seeds, loss_cap=cap)


POWER = (
    f"{SEEDS} seeds: 80% power of (b) at v1's committed rates on main (stalled 93 of 126 with "
    "dead >= 1, 45 of 74 without: q = 0.63, p1 = 0.738, p0 = 0.608, log OR = 0.597). Closed form "
    "(normal log odds ratio, two-sided 0.05): n = (1.960 + 0.842)^2 (1/(q p1) + 1/(q (1 - p1)) + "
    "1/((1 - q) p0) + 1/((1 - q)(1 - p0))) / log(OR)^2 = 7.849 x 19.55 / 0.3561 = 431; the exact "
    "interval is conservative: its power (the binomial counts enumerated) is 0.418 at 200 seeds "
    "(v1), 0.767 at 431, 0.800 at 466, 0.804 at 470 (tests/claims/test_failure_mode.py). Sized on "
    "v1's stall rule, the smaller effect: at v2's rates on the same runs (66 of 126 vs 10 of 74) "
    "the power at 470 is > 0.999. A full run takes about 470/200 x v1's 210 s, 8-9 minutes with "
    "--jobs 1 (more than 6): kept"
)
PROTOCOL = Protocol(
    name="failure_mode",
    claim=(
        "under downstream label noise, flipped training points on which every filter of the "
        'observed class is inactive at the start of fine-tuning ("dead points") predict '
        "failed and stalled fine-tuning"
    ),
    source="hypothesis",
    full=_size(False, 30, SEEDS, B.LOSS_CAP),
    quick=_size(True, 16, 8, B.QUICK_LOSS_CAP),
    statistic=(
        "at alpha = 1: (a) one-sided Fisher exact test that failures (err_transfer > "
        f"{B.FAILURE_ERROR:g}, fixed T) are more frequent among runs with dead >= 1 than "
        "with dead = 0; (b) the odds ratio of stalled fine-tuning (training loss > "
        f"{STALL:g} = 2 x the target {B.EPSILON:g} at the cap {B.LOSS_CAP}, loss rule, its own "
        "dead count) for dead >= 1, conditional maximum likelihood with its exact 95% interval"
    ),
    pass_rule=f"(a) p < {SIGNIFICANCE}; (b) the 95% interval of the odds ratio above 1 (its "
    "lower end > 1: an exact one-sided level of 0.025); no missing value",
    fixed="2026-12-06",
    salt="failure_mode-v2",
    common=COMMON + B.STOP_FIELDS,
    pairing=(
        "common random numbers across all points (alpha, weight decay, rescaling: the same data, "
        "upstream model and initialisation per seed) and across the stopping rules (the loss-rule "
        "run is the fixed-T run stopped by the loss); independent seeds at alpha = 1"
    ),
    rules={
        "dead": "dead_points >= 1: a flipped training point on which every filter (inherited or "
        "fresh) of its observed class is inactive on every patch at step 0 of fine-tuning",
        "failure": f"clean test error > {B.FAILURE_ERROR} (fixed T)",
        "stalled": f"training loss > {STALL:g} (2 x the target {B.EPSILON:g}) at the cap (loss "
        "rule): a run still converging just above the target at the cap is not stalled",
        "engine": B.ENGINE_RULE,
    },
    notes={
        "points": "; ".join(POINTS),
        "reported, not in the verdict": "per point dead, failure and stalled rates and errors; "
        "AUC (Mann-Whitney) of the dead count at alpha = 1 (v1 also gave a Spearman rho with the "
        "error difference, now the figure's); McNemar alpha = 1 vs "
        "0.5; McNemar of each remedy (and alpha = 0.5) vs alpha = 1, both rules; (b)'s Fisher p",
        "seeds": POWER,
    },
    disclosures=B.history("failure_mode"),
)


def measure(size, sweep):
    """Every point under both stopping rules: ``{rule: {metric: (points, seeds)}}``."""
    grid = size.configs["points"]
    return B.sweep_rules_once(sweep, grid, size.loss_cap, METRICS, measure="outcomes_batched")


def failed(err, failure=B.FAILURE_ERROR):
    """1 where the error exceeds ``failure``, 0 where not, NaN where missing."""
    e = B.as_float(err)
    return np.where(np.isfinite(e), e > failure, np.nan)


def association(dead, event, level=0.95):
    """:func:`refimpl.lab.stats.fisher_greater` of ``dead >= 1`` for ``event`` over
    independent runs, on the complete runs, with ``odds_ratio`` (conditional maximum
    likelihood) and ``ci``, its exact conditional interval at ``level``
    (scipy.stats.contingency.odds_ratio: NaN and [0, inf] without a contrast); p, the odds
    ratio and its interval are NaN when a value is missing (``n_missing`` counts them)."""
    d, e = B.as_float(dead), B.as_float(event)
    ok = np.isfinite(d) & np.isfinite(e)
    out = S.fisher_greater(d[ok] >= 1, e[ok] > 0)
    r, out["n_missing"] = odds_ratio(out["table"]), int(d.size - ok.sum())
    ci = r.confidence_interval(level)
    out.update(odds_ratio=float(r.statistic), ci=[float(ci.low), float(ci.high)])
    if out["n_missing"]:
        out.update(p=float("nan"), odds_ratio=float("nan"), ci=[float("nan")] * 2)
    return out


def dead_tests(dead_steps, err_transfer, dead_loss, loss_down, threshold=STALL):
    """The verdict at alpha = 1 (pure) from per-seed dead points and clean
    test error (fixed T), dead points and training loss (loss rule); None or
    NaN: missing. ``verdict`` is PASS when (a) failures are more frequent with
    dead >= 1 (``failure``: :func:`association`, p < SIGNIFICANCE) and (b) the
    odds ratio of stalling (loss > ``threshold``) for dead >= 1 has its 95%
    interval above 1 (``stalled``: :func:`association`), and no value is missing;
    ``ok``: (a) and (b); ``verdict_tests`` without the missing-value rule."""
    a = association(dead_steps, failed(err_transfer))
    b = association(dead_loss, B.stalled(loss_down, threshold))
    ok = {"a": bool(a["p"] < SIGNIFICANCE), "b": bool(b["ci"][0] > 1)}
    missing = S.n_missing(*map(B.as_float, (dead_steps, err_transfer, dead_loss, loss_down)))
    tests = "PASS" if all(ok.values()) else "FAIL"
    out = {"verdict": "FAIL" if missing else tests, "verdict_tests": tests, "missing": missing}
    return {**out, "failure": a, "stalled": b, "ok": ok}


def _dead_count(dead, event):
    """The AUC of the dead count for the event over seeds, with its one-sided Mann-Whitney p;
    NaN with a missing value or an empty class."""
    d, e = B.as_float(dead), B.as_float(event)
    auc = {"auc": S.auc(d, e) if d.size else float("nan"), "p": float("nan")}
    auc.update(n_event=int(np.sum(e == 1)), n_none=int(np.sum(e == 0)), n_missing=S.n_missing(d, e))
    if math.isfinite(auc["auc"]):
        auc["p"] = float(
            scipy.stats.mannwhitneyu(d[e == 1], d[e == 0], alternative="greater").pvalue
        )
    return auc


def events(rule, v, threshold=STALL):
    """The event per point and seed of a rule's measurements: failure, or stalled."""
    return failed(v["err_transfer"]) if rule == "steps" else B.stalled(v["loss_down"], threshold)


def findings(m, threshold=STALL):
    """What is reported beside the verdict (pure), per rule of the
    measurements: ``dead_rate``, ``dead_mean``, ``event_rate`` (:func:`events`)
    per point; at alpha = 1 ``auc`` (:func:`_dead_count`);
    ``vs_half`` (McNemar: the event more often at alpha = 1 than at 0.5);
    ``remedies`` (each of :data:`COMPARED`: McNemar "less" against alpha = 1,
    ``removes`` = p < SIGNIFICANCE, its ``dead_rate``)."""
    out = {}
    for rule, v in m.items():
        d, ev = B.as_float(v["dead_points"]), events(rule, v, threshold)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            dead_rate = np.nanmean(np.where(np.isfinite(d), d >= 1, np.nan), axis=1)
            rates, dead_mean = np.nanmean(ev, axis=1), np.nanmean(d, axis=1)
        remedies = {}
        for name, k in COMPARED.items():
            t = S.paired_failures(ev[k], ev[ONE], "less")
            remedies[name] = {**t, "removes": bool(t["p"] < SIGNIFICANCE)}
            remedies[name]["dead_rate"] = float(dead_rate[k])
        out[rule] = {"dead_rate": dead_rate, "dead_mean": dead_mean, "event_rate": rates}
        out[rule].update(auc=_dead_count(d[ONE], ev[ONE]), remedies=remedies)
        out[rule]["vs_half"] = S.paired_failures(ev[ONE], ev[HALF], "greater")
    return out


def decide(size, m):
    """The verdict (pure): :func:`dead_tests` at alpha = 1; ``reported``: :func:`findings`;
    ``missing_all_points``: missing errors and losses over every point."""
    steps, loss = m["steps"], m["loss"]
    at_one = (steps["dead_points"], steps["err_transfer"], loss["dead_points"], loss["loss_down"])
    dec = dead_tests(*(v[ONE] for v in at_one))
    keys = ("err_transfer", "err_scratch", "loss_down")
    missing_all = sum(S.n_missing(B.as_float(m[r][k])) for r in B.RULES for k in keys)
    return {**dec, "reported": findings(m), "missing_all_points": missing_all}


# ----------------------------------------------------------------------
# presenting it


def _pct(x):
    return "n/a" if not math.isfinite(x) else f"{100 * x:.0f}%"


def _fmt_assoc(t, event):
    (lo, hi), o = t["ci"], t["odds_ratio"]
    return (
        f"{event} in {t['table'][0][0]} of {t['n_exposed']} runs with dead >= 1 "
        f"({_pct(t['rate_exposed'])}) vs {t['table'][1][0]} of {t['n_unexposed']} with "
        f"dead = 0 ({_pct(t['rate_unexposed'])}), Fisher one-sided {R.fmt_p(t['p'])}, odds "
        f"ratio {o:.3g}, 95% CI [{lo:.3g}, {hi:.3g}]"
    )


MCNEMAR = "exact McNemar"


def _reported_lines(f, ev, label, reps):
    """The reported findings of one rule, one line each."""
    a, head = f["auc"], f"- reported ({label})"
    counts = f"{a['n_event']} with, {a['n_none']} without"
    auc = f"n/a ({counts}, {a['n_missing']} missing)"
    if math.isfinite(a["auc"]):
        auc = f"{a['auc']:.3f} ({counts}; Mann-Whitney one-sided {R.fmt_p(a['p'])})"
    rates = ", ".join(f"{x:g}: {f['event_rate'][i]:.3f}" for i, x in enumerate(ALPHAS))
    lines = [
        f"{head}, alpha = 1: AUC of the dead count for {ev} {auc}",
        f"{head}, {ev} rate against alpha: {rates}; alpha = 1 more often than 0.5: "
        + P.discordant(f["vs_half"], MCNEMAR),
    ]
    for name, t in f["remedies"].items():
        removes = "removes it" if t["removes"] else "does not remove it"
        lines.append(
            f"{head}, {name} vs alpha = 1, fewer {ev} runs: {P.discordant(t, MCNEMAR)} — "
            f"{removes} (p < {SIGNIFICANCE} needed); dead >= 1 in {_pct(t['dead_rate'])} of "
            f"{reps} runs"
        )
    return lines


REGIME_FIELDS = ("d", "m", "n_up", "flip_up", "u_norm", "n_down", "flip_down", "eta")


def _text(size, dec, labels):
    """The design, the two tests and the reported findings."""
    base, reps, a, b = size.configs["points"][HALF], size.seeds, dec["failure"], dec["stalled"]
    ok = dec["ok"]
    lines = [
        f"Base: {P.regime(base, REGIME_FIELDS)}; points: {', '.join(POINTS)}; {reps} seeds per "
        "point, common random numbers across points and rules. A failure: clean test error > "
        f"{B.FAILURE_ERROR:g}; stalled: training loss > {STALL:g} (2 x the target) at the cap; "
        "dead: dead_points >= 1 at step 0. Missing values over all points (err_transfer, "
        f"err_scratch, loss): {dec['missing_all_points']}.\n",
        P.test_line(f"(a) alpha = 1, {labels['steps']}", _fmt_assoc(a, "failure"), ok["a"]),
        P.test_line(f"(b) alpha = 1, {labels['loss']}", _fmt_assoc(b, "stalled"), ok["b"])
        + " (the interval's lower end above 1 needed)",
    ]
    for r in B.RULES:
        lines += _reported_lines(dec["reported"][r], EVENT[r], labels[r], reps)
    return "\n".join(lines)


def _table(size, s, dec, rule, label):
    """Per point: dead, event rate and the outcome cells of one rule's summary ``s``."""
    f, reps = dec["reported"][rule], size.seeds
    head = ["point", "dead >= 1", "mean dead", f"{EVENT[rule]} rate", *B.OUTCOME_HEADER]
    head += [B.STALL_HEADER] if rule == "loss" else []
    rows = [
        [p, _pct(f["dead_rate"][i]), f"{f['dead_mean'][i]:.2f}", f"{f['event_rate'][i]:.3f}"]
        + B.outcome_cells(s, i, reps)
        for i, p in enumerate(POINTS)
    ]
    title = (
        f"**{label}** — per point over {reps} seeds (dead: flipped points with every filter of the "
        f"observed class inactive at step 0; errors mean / median / share > {B.FAILURE_ERROR:g}):"
    )
    return Table(head, rows, title=title)


SUMMARY = ("err_transfer_mean", "err_transfer_median", "fail_transfer", "err_scratch_mean")
SUMMARY += ("err_scratch_median", "fail_scratch", "stalled_transfer", "stalled_scratch")
CSV_HEADER = ["rule", "point", "alpha", "weight_decay", "rescale_inherited", "dead_rate"]
CSV_HEADER += ["dead_mean", "dead_inherited_mean", "event", "event_rate", *SUMMARY]
CSV_HEADER += ["steps_down_median", "n_flipped_mean"]


def _csv(m, dec, summ):
    """Per rule and point: the changes, dead and event rates, the errors."""
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN slice: NaN
        for r, (i, (p, over)) in itertools.product(B.RULES, enumerate(POINTS.items())):
            s, f, v = summ[r], dec["reported"][r], m[r]
            row = [r, p, over["alpha"], over.get("weight_decay", 0.0)]
            row += [over.get("rescale_inherited", 1.0), f["dead_rate"][i], f["dead_mean"][i]]
            row += [float(np.nanmean(v["dead_inherited"][i])), EVENT[r], f["event_rate"][i]]
            row += [s[k][i] if k in s else None for k in SUMMARY]
            row += [float(np.nanmedian(v["steps_down"][i])), float(np.nanmean(v["n_flipped"][i]))]
            rows.append(row)
    return Table(CSV_HEADER, rows, name="failure_mode", show=False)


def _at_one(rule, v):
    """At alpha = 1: the dead counts, err_transfer - err_scratch and the event flags."""
    diff = v["err_transfer"][ONE] - v["err_scratch"][ONE]
    return v["dead_points"][ONE], diff, events(rule, v)[ONE] == 1


def present(size, m, dec):
    base, reps = size.configs["points"][HALF], size.seeds
    labels = {r: B.stop_label(r, B.EPSILON, size.loss_cap, base.steps_down) for r in B.RULES}
    statistic = (
        f"alpha = 1, {reps} seeds: (a) {labels['steps']}: {_fmt_assoc(dec['failure'], 'failure')}; "
        f"(b) {labels['loss']}: {_fmt_assoc(dec['stalled'], f'stalled (loss > {STALL:g})')}"
    )
    eps = {"steps": None, "loss": STALL}  # stalled runs counted at equal loss
    summ = {r: B.point_summary(*(m[r][k] for k in OUTCOMES), eps[r]) for r in B.RULES}
    tables = [_table(size, summ[r], dec, r, labels[r]) for r in B.RULES]
    sections = [_text(size, dec, labels), *tables, _csv(m, dec, summ)]
    rates = dict(reps=reps, alphas=ALPHAS, remedies=REMEDIES, event=EVENT)
    draw = {"rates": partial(FF.draw_rates, dec=dec, labels=labels, **rates)}
    at_one = {r: _at_one(r, m[r]) for r in B.RULES}
    draw["dead"] = partial(FF.draw_dead, at_one=at_one, labels=labels, event=EVENT)
    sections += [Figure(f"failure_mode_{k}", f) for k, f in draw.items()]
    data = {"replicates": reps, "base_config": base.to_dict(), "per_seed": m}
    return Outcome(statistic, sections, data)
