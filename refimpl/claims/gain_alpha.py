"""gain_alpha: the downstream test error against the inherited fraction alpha (docs/model.md
§5 and §8), in a clean and a noisy regime; every alpha summarised by the mean, the median and
the failure rate side by side. The design is :data:`PROTOCOL`; the verdict rests on the paper's
part (clean regime), the noisy failure-rate part (c) is our hypothesis (§8.3), reported."""

import numpy as np

from ..lab import figures as F
from ..lab import present as P
from ..lab import report as R
from ..lab import stats as S
from ..lab.claim import Disclosure, Figure, Outcome, Protocol, Size, Table
from ..lab.stats import SIGNIFICANCE
from . import _base as B

REF_ALPHA, END_ALPHA = 0.5, 0.8  # the tail test's moderate alpha; the end-of-range test's start
THRESHOLDS = (0.1, 0.15, 0.2, 0.25, 0.3)  # (c)'s failure thresholds, reported (sensitivity)
ALPHAS = [k / 10 for k in range(11)]
VARIANTS = {"fixed steps": "steps", "equal loss": "loss"}
REGIMES, RULES = ("clean", "noisy"), tuple(VARIANTS.values())
XLABEL = "alpha (inherited fraction)"
REGIME_FIELDS = ("d", "m", "n_up", P.SHARED_V, ("sigma_p", "sigma_p_down"), "eta")
FIXED = ("err_transfer", "err_scratch", "loss_down")
AT_LOSS = FIXED[:2] + tuple(
    "stalled_transfer stalled_scratch steps_down steps_scratch up_stopped_early".split()
)


def _size(quick, seeds, **regimes):
    configs = {
        r: [B.transfer_base(quick, engine=B.ENGINE, **over).replace(alpha=a) for a in ALPHAS]
        for r, over in regimes.items()
    }
    return Size(configs, seeds, alphas=ALPHAS, regimes=regimes, epsilon=0.005, cap=2000)


ITEM_V3 = (  # the committed item-by-item results of v3
    "PASS on main, r1 and r2. (a) Page p < 1e-10 on each (mean per-seed Spearman rho -0.989, "
    "-0.984, -0.984); (b) err(0.8) - err(1): median +0.0018, +0.0018, +0.0017, Wilcoxon p = "
    "4.4e-08, 6.6e-08, 4e-07; (c, reported) failures at alpha = 1 vs 0.5: 26 vs 1, 24 vs 0, 25 "
    "vs 1 discordant, exact p = 2.1e-07, 6e-08, 4e-07"
)

PROTOCOL = Protocol(
    name="gain_alpha",
    claim=(
        "paper: more inherited parameters help where the inherited part is clean: with clean "
        "downstream labels the typical run's error falls over alpha in [0, 1] ((a), (b)); "
        "(c, hypothesis, reported beside the verdict): under downstream label noise large "
        "alpha hurts: the failure rate rises toward alpha = 1"
    ),
    source="paper",
    full=_size(
        False,
        {"clean": 40, "noisy": 120},
        clean=dict(u_norm=2.0, n_up=200, flip_up=0.0, sigma_p_up=1.0, flip_down=0.0),
        noisy=dict(u_norm=2.0, n_down=30, flip_down=0.3),
    ),
    quick=_size(
        True,
        {"clean": 3, "noisy": 6},
        clean=dict(u_norm=2.0, flip_down=0.0),
        noisy=dict(u_norm=2.0, n_down=16, flip_down=0.3),
    ),
    statistic=(
        "(a) clean: Page's L test, decreasing err_transfer over alpha, seeds as "
        f"blocks; (b) clean: Wilcoxon signed-rank, err({END_ALPHA:g}) > err(1); "
        f"(c, hypothesis) noisy: exact McNemar, failure (err_transfer > {B.FAILURE_ERROR:g}) "
        f"more often at alpha = 1 than at alpha = {REF_ALPHA:g}, and its p against the "
        f"failure threshold ({', '.join(f'{t:g}' for t in THRESHOLDS)}; reported); all "
        "one-sided, on the fixed-step runs"
    ),
    pass_rule=(
        f"(a) and (b) each p < {SIGNIFICANCE}; no missing value (either regime); (c, "
        f"hypothesis) is reported with its own outcome (holds when p < {SIGNIFICANCE}), not "
        "in the verdict"
    ),
    fixed="2026-12-06",
    salt="gain_alpha/v3",
    common=("alpha",),
    pairing=(
        "common random numbers across alpha and across the two stopping rules within a "
        "regime (the same data, upstream model, fresh filters and test draws); the regimes "
        "have independent seeds"
    ),
    rules={
        "engine": B.ENGINE_RULE,
        "failure": f"clean test error > {B.FAILURE_ERROR:g}",
        "equal loss": "fine-tuning and scratch until the training loss is <= epsilon, within "
        "the step cap; a run that does not reach it stalls and counts as a failure there",
    },
    notes={
        "outcomes": "a mixture over seeds: most runs reach a small error, a few fail (error "
        "about 0.26: a flipped training point on which every inherited filter of its observed "
        "class is inactive at step 0 is fitted by unlearning the signal)",
        "epsilon": "below log(2)/N_2 for every N_2 here (a run with one training point left at "
        "margin 0 stalls above it) and below the upstream model's final loss at 200 steps "
        "(>= 0.0116 in the base): the upstream stage is that of the fixed-step runs (the count "
        "of upstream runs stopped by epsilon is reported)",
        "reported, not in the verdict": "(c, hypothesis) and its threshold sensitivity; "
        "means, medians, failure rates and stalls per alpha; the noisy typical run (Page, "
        "two-sided Wilcoxon); the clean tail (McNemar); best alpha by mean, median, failure "
        "rate; the equal-loss variant with the same tests",
        "origin": "(c) is a hypothesis generated by an exploratory analysis of the v1 runs, "
        "which showed that the alpha -> 1 effect under label noise is a failure-probability "
        "effect; confirmed on v2's fresh seed streams (main and r1), retested here on new ones",
        "thresholds": "a failed run's error is about 0.26, so a threshold of 0.30 counts only "
        "the worst failures; 0.10 also counts typical runs of the noisy regime",
        "pilot seen": "before fixing: item timings, and a 20-seed pilot of the noisy regime at "
        "alpha = 1 with epsilon 0.005 and cap 2000 (seeds outside this stream) to size the cap",
    },
    disclosures=(
        Disclosure(
            date="2026-11-28 (commit 3137473, before the first full report)",
            change="noisy regime |u| = 0.5 (a weak shared signal) -> |u| = 2, N_2 = 30, p_2 = "
            "0.3 (downstream label noise)",
            reason="at |u| = 0.5 the inherited part is not 'unclean' in the sense of the claim: "
            "the weak shared signal only makes both runs worse",
            earlier="never committed; rerun 2026-11-29 with the code of this commit (16 seeds, "
            "the v0 rule: best interior alpha by mean, one-sided paired t): the error falls "
            "monotonically, mean 0.417 at alpha = 0 to 0.338 at alpha = 1, best interior alpha "
            "0.9, err(1) - err(0.9) = -0.0074 +- 0.0077 (p = 0.83): 'large alpha hurts' FAILS "
            "there (the committed negative_transfer hard row at |u| = 0.5 agrees: transfer - "
            "scratch -0.011 / -0.022 / -0.049 / -0.102 at alpha = 0.2 / 0.5 / 0.8 / 1)",
        ),
        Disclosure(
            date="2026-11-28 (commits ca04bca -> bdbe458 -> c596ead, before the first full report)",
            change="clean regime: the trend was first tested on alpha <= 0.7 only (pooled "
            "Spearman and err(0) > err(0.5)); then on [0, 1] with an absence-of-rise rule (no "
            "significant rise between neighbours, then over all 55 pairs after Holm)",
            reason="a review asked for the whole range [0, 1]",
            earlier="never committed; the v0 rule on the first 16 seeds of the committed v1 "
            "clean runs (the same seeds): Spearman rho = -0.840 (p = 1e-35) on alpha <= 0.7, "
            "err(0) - err(0.5) = +0.236 +- 0.015 (p = 3e-11): PASS, on a range that excluded "
            "the rise after alpha = 0.8",
        ),
        Disclosure(
            date="2026-11-28 (commit 499e002, before the first full report)",
            change="seeds 16 -> 20 (clean) and 40 (noisy, split 20 + 20 for choosing and "
            "testing alpha*)",
            reason="power; the split avoids choosing and testing alpha* on the same seeds",
            earlier="not committed (an exploratory review of the runs found no evidence of "
            "optional stopping either way)",
        ),
        Disclosure(
            date="2026-11-29 (this protocol, v2, after the committed full report)",
            change="v1 -> v2: clean regime redefined as p_2 = 0 (v1: p_2 = 0.1); the "
            "absence-of-rise rule and the split-seed mean t-tests replaced by Page + Wilcoxon "
            "(typical run) and an exact McNemar test of failures (tail); claim restated as a "
            "failure-rate effect; 40 / 120 seeds on a fresh seed stream; equal-loss variant "
            "added (reported)",
            reason="the outcomes are heavy-tailed (most runs reach a small error, a few fail "
            "near 0.26): mean t-tests misread a failure-probability effect, and an "
            "absence-of-rise rule cannot detect a rise",
            earlier="v1 (committed, 2026-11-28): FAIL. clean, alpha in [0, 1]: Page p < 1e-10 "
            "(decrease); largest rise err(1) - err(0.8) = +0.0236 +- 0.0160 (Holm p = 1; 'no "
            "significant rise'); noisy: alpha* = 0.8 (chosen on 20 seeds), on 20 held-out "
            "seeds err(1) - err(alpha*) = +0.0441 +- 0.0247 (p = 0.045), err(0) - err(alpha*) "
            "= +0.2464 +- 0.0219 (p = 3.8e-10). Means / medians / failures (err > 0.2) at "
            "alpha = 0.8, 0.9, 1 in v1: clean 0.014 / 0.028 / 0.038, 0.010 / 0.010 / 0.007, "
            "0 / 1 / 2 of 20; noisy 0.055 / 0.067 / 0.097, 0.045 / 0.043 / 0.038, 1 / 3 / 6 "
            "of 40",
        ),
        Disclosure(
            date="2026-12-06 (this protocol, v3)",
            change="v2 -> v3: (c) (noisy regime, failures at alpha = 1 vs 0.5) tagged as our "
            "hypothesis and taken out of the verdict, which now rests on (a) and (b); (c) is "
            "reported with its own outcome and with its p at the failure thresholds 0.10, "
            "0.15, 0.20, 0.25, 0.30; regimes, seeds, tests and thresholds otherwise unchanged; "
            "fresh seed stream (salt gain_alpha/v3)",
            reason="(c) was generated on the v1 runs, not taken from the paper: a FAIL of it "
            "would refute our reading, not the paper (docs/model.md §8.3), so a paper claim's "
            "verdict should not rest on it; its sensitivity to the failure threshold had not "
            "been reported",
            earlier="v2 (protocol d4d4bd30852e, scheme 1: 751c107a9d2d; salt gain_alpha/v2): "
            "PASS on both streams. main: clean (p_2 = 0, 40 seeds): mean per-seed Spearman rho "
            "= -0.984 ± 0.003, Page's test p < 1e-10 (decrease); err(0.8) - err(1): median "
            "+0.0019, Wilcoxon p = 2.1e-07; noisy (p_2 = 0.3, 120 seeds): failures (err > 0.2) "
            "at alpha = 1 vs 0.5: 35 vs 1 discordant, rates 0.292 vs 0.008, exact p = 5.4e-10; "
            "one-sided, fixed 200 steps. r1: rho = -0.988 ± 0.003, Page's test p < 1e-10; "
            "median +0.0020, Wilcoxon p = 1.1e-07; 34 vs 0 discordant, rates 0.300 vs 0.017, "
            "exact p < 1e-10. (c) recomputed from the committed per-seed errors at thresholds "
            "0.10 / 0.15 / 0.20 / 0.25 / 0.30: main 36 vs 13 (p = 0.0007), 41 vs 3 (8.1e-10), "
            "35 vs 1 (5.4e-10), 21 vs 0 (4.8e-07), 6 vs 0 (0.016); r1 31 vs 7 (5.8e-05), 39 "
            "vs 1 (3.7e-11), 34 vs 0 (5.8e-11), 20 vs 0 (9.5e-07), 7 vs 0 (0.0078). Under the "
            "v3 rule both streams give PASS",
        ),
        B.engine_change(ITEM_V3),
    ),
)


def measure(size, sweep):
    """Both regimes, both stopping rules: ``{regime: {rule: {metric: (alphas, seeds)}}}``."""
    rules = B.rule_sweeps(size.epsilon, size.cap, batched=True)
    out = {}
    for r, grid in size.configs.items():
        reps = size.seeds[r]
        fixed = sweep(grid, label=r, replicates=reps, metrics=FIXED, **rules["steps"])
        loss = sweep(
            grid, label=f"{r} (equal loss)", replicates=reps, metrics=AT_LOSS, **rules["loss"]
        )
        out[r] = {"steps": {k: fixed.values(k) for k in FIXED}}
        out[r]["loss"] = {k: loss.values(k) for k in AT_LOSS}
    return out


def failures(err, stalled=None, threshold=B.FAILURE_ERROR):
    """Failure indicators (1.0 / 0.0; NaN where the error is missing): the
    error is above ``threshold``, or the run stalled (``stalled`` true)."""
    err = np.asarray(err, float)
    fail = err > threshold
    if stalled is not None:
        fail = fail | (np.asarray(stalled, float) > 0)
    return np.where(np.isfinite(err), fail.astype(float), np.nan)


def best_alpha(alphas, values, stat):
    """The alpha with the lowest ``stat`` ("mean", "median" or "failure")
    of ``values`` (alphas, seeds) among the alphas without a missing value;
    None when every alpha has one (never a NaN's alpha)."""
    v = np.asarray(values, float)
    ok = np.all(np.isfinite(v), axis=1)
    if not ok.any():
        return None
    v = v[ok] > 0.5 if stat == "failure" else v[ok]
    score = (np.median if stat == "median" else np.mean)(v, axis=1)
    return float(np.asarray(alphas, float)[ok][int(np.argmin(score))])


def _rule(alphas, err, stalled):
    """The tests on the errors ``err`` (regime -> (alphas, seeds)) of one stopping
    rule; ``stalled`` (regime -> indicators or None): a stall is a failure too."""
    fail = {r: failures(err[r], stalled[r]) for r in err}
    one, ref, end = alphas.index(1.0), alphas.index(REF_ALPHA), alphas.index(END_ALPHA)
    trend_clean = S.trend(alphas, err["clean"], "less")  # (a)
    end_clean = S.wilcoxon(err["clean"][end], err["clean"][one], "greater")  # (b)
    ref_noisy = fail["noisy"][ref]
    tail_noisy = S.paired_failures(fail["noisy"][one], ref_noisy, "greater")  # (c), hypothesis
    by_threshold = [failures(err["noisy"], stalled["noisy"], t) for t in THRESHOLDS]
    ok = {k: bool(t["p"] < SIGNIFICANCE) for k, t in {"a": trend_clean, "b": end_clean}.items()}
    missing = S.n_missing(err["clean"], err["noisy"])
    tests = "PASS" if all(ok.values()) else "FAIL"
    summary, best = {}, {}
    for r in err:
        s = summary[r] = S.outcome_summary(err[r], B.FAILURE_ERROR)
        with np.errstate(invalid="ignore"):
            s["failure_rate"] = np.nanmean(fail[r], axis=1) if fail[r].size else s["failure_rate"]
        rated = {"mean": err[r], "median": err[r]}
        rated["failure"] = np.where(np.isfinite(err[r]), fail[r], np.nan)
        best[r] = {k: best_alpha(alphas, v, k) for k, v in rated.items()}
    return {
        "verdict": "FAIL" if missing else tests,
        "verdict_tests": tests,
        "missing": missing,
        "trend_clean": trend_clean,
        "end_clean": end_clean,
        "tail_noisy": tail_noisy,
        "ok": ok,
        "hypothesis_c": bool(tail_noisy["p"] < SIGNIFICANCE),
        "tail_by_threshold": {
            f"{t:g}": S.paired_failures(f[one], f[ref], "greater")
            for t, f in zip(THRESHOLDS, by_threshold, strict=True)
        },
        "summary": summary,
        "trend_noisy": S.trend(alphas, err["noisy"], "less"),
        "typical_noisy": S.wilcoxon(err["noisy"][one], err["noisy"][ref], "two-sided"),
        "tail_clean": S.paired_failures(fail["clean"][one], fail["clean"][ref], "greater"),
        "tail_by_alpha": [S.paired_failures(f, ref_noisy, "greater") for f in fail["noisy"]],
        "best": best,
    }


def decide(size, m):
    """The verdict (pure): (a) and (b) of the protocol on the fixed-step runs
    (docs/model.md §8.4); beside them the hypothesis (c) (``tail_noisy``, its
    outcome ``hypothesis_c``) and its p by failure threshold
    (``tail_by_threshold``), per regime ``summary`` (mean, median, failure
    rate), the reported tests, ``best`` alpha, and ``equal_loss``: the same at
    equal training loss (a stalled run fails)."""
    alphas = [float(a) for a in size.alphas]
    err = {rule: {r: B.as_float(m[r][rule]["err_transfer"]) for r in REGIMES} for rule in RULES}
    stalled = {r: m[r]["loss"]["stalled_transfer"] for r in REGIMES}
    fixed = _rule(alphas, err["steps"], dict.fromkeys(REGIMES))
    return {**fixed, "equal_loss": _rule(alphas, err["loss"], stalled)}


def _fmt_fail(t):
    rates = f"rates {t['rate_a']:.3f} vs {t['rate_b']:.3f}"
    return f"{t['a_only']} vs {t['b_only']} discordant, {rates}, exact {R.fmt_p(t['p'])}"


def _by_threshold(d):
    """(c)'s discordant pairs and one-sided McNemar p at each failure threshold."""
    items = d["tail_by_threshold"].items()
    return "; ".join(f"> {t}: {v['a_only']} vs {v['b_only']}, {R.fmt_p(v['p'])}" for t, v in items)


def _text(size, dec, up_early):
    b, seeds, eq, ok = size.configs["clean"][0], size.seeds, dec["equal_loss"], dec["ok"]
    tc, ec, tn, tl = dec["trend_clean"], dec["end_clean"], dec["tail_noisy"], dec["typical_noisy"]
    tail, hc = _fmt_fail(tn), dec["hypothesis_c"]
    end = f"median paired difference {ec['median']:+.4f}, Wilcoxon one-sided {R.fmt_p(ec['p'])}"
    regimes = "; ".join(
        f"`{r}`: " + ", ".join(f"{k} = {v:g}" for k, v in over.items()) + f" ({seeds[r]} seeds)"
        for r, over in size.regimes.items()
    )
    best = "; ".join(
        f"{r}: mean {v['mean']}, median {v['median']}, failure rate {v['failure']}"
        for r, v in dec["best"].items()
    )
    lines = [
        f"Base: {P.regime(b, REGIME_FIELDS)}; alpha = k/10; regimes {regimes}. Fixed steps: "
        f"{b.steps_down} GD steps per stage (the verdict). Equal loss: fine-tuning and scratch "
        f"until the training loss is <= {size.epsilon:g}, cap {size.cap} steps (upstream runs "
        f"stopped early by epsilon: {up_early}). A failure: clean test error > "
        f"{B.FAILURE_ERROR:g} (and, at equal loss, a stalled run).\n",
        P.test_line("(a) clean, typical run, decreasing over alpha", R.fmt_trend(tc), ok["a"]),
        P.test_line(f"(b) clean, end of the range, err({END_ALPHA:g}) > err(1)", end, ok["b"]),
        P.test_line(f"(c, hypothesis) noisy, failures at alpha = 1 vs {REF_ALPHA:g}", tail, hc),
        f"- (c)'s sensitivity to the failure threshold (reported): {_by_threshold(dec)}",
        f"- reported: noisy typical run, err(1) - err({REF_ALPHA:g}) median {tl['median']:+.4f} "
        f"(Wilcoxon two-sided {R.fmt_p(tl['p'])}), decreasing trend "
        f"{R.fmt_trend(dec['trend_noisy'])}; clean tail, failures at alpha = 1 vs "
        f"{REF_ALPHA:g}: {_fmt_fail(dec['tail_clean'])}",
        f"- best alpha (among alphas without a missing value): {best}",
        f"- equal loss (reported): (a) {R.fmt_trend(eq['trend_clean'])}; (b) median "
        f"{eq['end_clean']['median']:+.4f}, {R.fmt_p(eq['end_clean']['p'])} — the rule would give "
        f"{eq['verdict']} at equal loss; (c, hypothesis) {_fmt_fail(eq['tail_noisy'])}, by "
        f"threshold (a stall fails) {_by_threshold(eq)}",
    ]
    return "\n".join(lines)


def _table(size, m, dec, regime):
    """Per alpha: mean, median and failure rate under both stopping rules."""
    f, e, eq = dec["summary"][regime], dec["equal_loss"]["summary"][regime], m[regime]["loss"]
    cols = [f["mean"], f["median"], f["failure_rate"], e["mean"], e["median"], e["failure_rate"]]
    cols += [np.nanmean(eq["stalled_transfer"], axis=1), np.nanmedian(eq["steps_down"], axis=1)]
    cols += [np.nanmean(eq["stalled_scratch"], axis=1)]
    digits = (".4f", ".4f", ".3f", ".4f", ".4f", ".3f", ".3f", ".0f", ".3f")
    rows = [
        [f"{a:.1f}", *(format(c[i], d) for c, d in zip(cols, digits, strict=True))]
        for i, a in enumerate(size.alphas)
    ]
    eq_cols = ["mean", "median", "failure rate", "stalled", "median steps", "scratch stalled"]
    header = ["alpha", "mean", "median", "failure rate", *(f"{c} (eq. loss)" for c in eq_cols)]
    title = (
        f"**Regime `{regime}`**, per alpha (failure: error > {B.FAILURE_ERROR:g}; at equal loss "
        "also a stalled run; scratch is alpha = 0's other arm):"
    )
    return Table(header, rows, title=title)


def _csv(size, m, dec):
    rows = []
    for r, (variant, rule) in ((r, vr) for r in m for vr in VARIANTS.items()):
        s, v = (dec if rule == "steps" else dec["equal_loss"])["summary"][r], m[r][rule]
        et, es = v["err_transfer"], v["err_scratch"]
        stalled = v["stalled_transfer"] if rule == "loss" else np.zeros_like(et)
        for k, a in enumerate(size.alphas):
            row = [r, variant, a, s["mean"][k], S.sem(et[k]), s["median"][k], s["failure_rate"][k]]
            row += [float(np.nanmean(stalled[k])), float(np.nanmean(es[k]))]
            rows.append(row + [float(np.nanmedian(es[k])), int(s["n"][k])])
    header = ["regime", "variant", "alpha", "err_transfer_mean", "err_transfer_se"]
    header += ["err_transfer_median", "failure_rate", "stalled_rate", "err_scratch_mean"]
    header += ["err_scratch_median", "n"]
    return Table(header, rows, name="gain_alpha", show=False)


def _draw(path, size, m, dec):
    """Per regime: the mean and median error, the failure and stalled rates over alpha."""
    rules = ((dec, "-", "fixed steps"), (dec["equal_loss"], "--", "equal loss"))
    share, panels = f"share of runs with error > {B.FAILURE_ERROR:g} (or stalled)", []
    for regime in REGIMES:
        err, rate = [], []
        for d, ls, v in rules:
            s = d["summary"][regime]
            err += [F.Curve(s["mean"], f"mean, {v}", f"C0o{ls}")]
            err += [F.Curve(s["median"], f"median, {v}", f"C1s{ls}")]
            rate += [F.Curve(s["failure_rate"], f"failure rate, {v}", f"C3o{ls}")]
        stalled = np.nanmean(m[regime]["loss"]["stalled_transfer"], axis=1)
        rate += [F.Curve(stalled, "stalled (equal loss)", "C4^:")]
        title = f"{regime}: test error over alpha ({size.seeds[regime]} seeds)"
        log, rates = {"yscale": "log"}, {"ylim": (-0.02, 1.02)}
        panels += [F.Panel(err, title, XLABEL, "clean test error (log)", axes=log)]
        panels += [F.Panel(rate, f"{regime}: {share}", XLABEL, "rate", axes=rates)]
    for p in panels:
        p.x, p.style = size.alphas, {"ms": 3}
    F.panels_figure(path, panels, ncols=2, figsize=(11, 7.4), dpi=90)


def present(size, m, dec):
    tc, ec, tn = dec["trend_clean"], dec["end_clean"], dec["tail_noisy"]
    steps = size.configs["clean"][0].steps_down
    statistic = (
        f"clean (p_2 = 0, {size.seeds['clean']} seeds): {R.fmt_trend(tc)} (decrease); "
        f"err({END_ALPHA:g}) - err(1): median {ec['median']:+.4f}, Wilcoxon {R.fmt_p(ec['p'])}; "
        f"(c, hypothesis, not in the verdict) noisy (p_2 = 0.3, {size.seeds['noisy']} seeds): "
        f"failures (err > {B.FAILURE_ERROR:g}) at alpha = 1 vs {REF_ALPHA:g}: {_fmt_fail(tn)} "
        f"({P.holds(dec['hypothesis_c'])}), by threshold {_by_threshold(dec)}; one-sided, "
        f"fixed {steps} steps"
    )
    up_early = {r: int(np.nansum(m[r]["loss"]["up_stopped_early"])) for r in m}
    sections = [
        _text(size, dec, sum(up_early.values())),
        *(_table(size, m, dec, r) for r in m),
        _csv(size, m, dec),
        Figure("gain_alpha", lambda path: _draw(path, size, m, dec)),
    ]
    return Outcome(statistic, sections, {"per_seed": m, "up_stopped_early": up_early})
