"""gain_alpha: the downstream test error against the inherited fraction alpha
(docs/model.md §s 5 and 8), in two regimes; protocol v2 (:data:`PROTOCOL`).

Outcomes over seeds are a mixture: most runs reach a small error, a few fail
outright (test error about 0.26; the audit's P1: a flipped training point on
which every inherited filter of its observed class is inactive at step 0 is
fitted by unlearning the signal). So every alpha is summarised by the mean,
the median and the failure rate side by side, and the tests fit that shape.

- ``clean``: clean downstream labels (p_2 = 0; "clean" means exactly that),
  a strong shared signal |u| = 2 and a well-trained upstream model (N_1 =
  200, no upstream label noise). Claim: the typical run's error falls over
  the whole range alpha in [0, 1]. Tests, both at level 0.01: (a) Page's L
  test of a decreasing error over all alphas with the seeds as blocks
  (:func:`refimpl.lab.stats.trend`); (b) the Wilcoxon signed-rank test,
  one-sided, err(0.8) > err(1): the error still falls over the last fifth
  of the range.
- ``noisy``: downstream label noise p_2 = 0.3 with N_2 = 30 (the inherited
  part is not clean for the downstream task). Claim: large alpha hurts
  through failures: the failure probability rises toward alpha = 1. Test
  (c): exact McNemar test, one-sided, that runs fail more often at alpha = 1
  than at the moderate alpha = 0.5 (:func:`refimpl.lab.stats.paired_failures`;
  a failure is a clean test error above :data:`FAIL_ERROR`), level 0.01.

Verdict: PASS when (a), (b) and (c) hold and no value is missing. Reported
beside them, not in the verdict: the noisy regime's typical run (Page's test
and a two-sided Wilcoxon test of err(1) against err(0.5)), the clean regime's
tail (McNemar), the best alpha by mean, by median and by failure rate (over
the alphas without a missing value, never a NaN), and the equal-loss
variant: the same runs (same seeds) with fine-tuning and scratch trained to
the training loss :data:`EPSILON` with a cap of :data:`CAP` steps; a run that
does not reach it stalls and counts as a failure there; stalled runs are
counted and shown; the three tests are repeated on it.

alpha takes the values k/10, k = 0..10; every alpha of a regime and both
stopping rules use the same seeds (common random numbers: the same data,
upstream model, fresh filters and test draws), so all comparisons within a
regime are paired. The seed stream (salt ``gain_alpha/v2``) is new: the
earlier protocol's seeds were explored by the audit.
"""

import numpy as np

from .. import files
from ..lab import figures as F
from ..lab import report as R
from ..lab import stats as S
from ..lab.measures import measure_transfer
from ..lab.protocol import Disclosure, Protocol
from ..lab.stats import SIGNIFICANCE
from ..lab.sweep import run_sweep
from ._base import ENGINE, transfer_base

NAME = "gain_alpha"
CLAIM = (
    "more inherited parameters help where the inherited part is clean: with clean "
    "downstream labels the typical run's error falls over alpha in [0, 1]; under downstream "
    "label noise large alpha hurts: the failure rate rises toward alpha = 1"
)
SOURCE = "paper"
SALT = "gain_alpha/v2"
FAIL_ERROR = 0.2
"""A run fails when its clean test error exceeds this (declared before the run)."""
EPSILON = 0.005
"""Training-loss target of the equal-loss variant: below log(2)/N_2 for every
N_2 used here (a run with one training point left at margin 0 stalls above
it) and below the upstream model's final loss at 200 steps (>= 0.0116 in the
base), so the upstream stage is the same as in the fixed-step runs (checked:
the count of upstream runs stopped by epsilon is reported)."""
CAP = 2000
"""Step cap of fine-tuning and scratch in the equal-loss variant (10 x T)."""
REF_ALPHA, END_ALPHA = 0.5, 0.8
"""The moderate alpha of the tail test, and the start of the end-of-range test."""
REGIMES = {
    "clean": {"u_norm": 2.0, "n_up": 200, "flip_up": 0.0, "sigma_p_up": 1.0, "flip_down": 0.0},
    "noisy": {"u_norm": 2.0, "n_down": 30, "flip_down": 0.3},
}
QUICK_REGIMES = {
    "clean": {"u_norm": 2.0, "flip_down": 0.0},
    "noisy": {"u_norm": 2.0, "n_down": 16, "flip_down": 0.3},
}
REPS = {"clean": 40, "noisy": 120}
QUICK_REPS = {"clean": 3, "noisy": 6}
M_ALPHA = 10
ALPHAS = [k / M_ALPHA for k in range(M_ALPHA + 1)]
VARIANTS = ("fixed steps", "equal loss")


def _protocol(quick):
    regimes = QUICK_REGIMES if quick else REGIMES
    return Protocol(
        claim=NAME,
        grid={
            "alpha": ALPHAS,
            "regimes": regimes,
            "base": transfer_base(quick, engine=ENGINE).seed_fields(),
            "equal_loss": {"epsilon": EPSILON, "cap_steps_down": CAP},
        },
        seeds=QUICK_REPS if quick else REPS,
        statistic=(
            "(a) clean: Page's L test, decreasing err_transfer over alpha, seeds as "
            f"blocks; (b) clean: Wilcoxon signed-rank, err({END_ALPHA:g}) > err(1); "
            f"(c) noisy: exact McNemar, failure (err_transfer > {FAIL_ERROR:g}) more "
            f"often at alpha = 1 than at alpha = {REF_ALPHA:g}; all one-sided, on the "
            "fixed-step runs"
        ),
        pass_rule=f"(a), (b) and (c) each p < {SIGNIFICANCE}; no missing value",
        fixed="2026-11-29, before its first full run",
        extra={
            "salt": SALT,
            "failure_threshold": FAIL_ERROR,
            "pairing": "common random numbers across alpha and across the two stopping "
            "rules within a regime; the regimes have independent seeds",
            "reported_not_in_verdict": "means, medians, failure rates and stalls per alpha; "
            "the noisy typical run (Page, two-sided Wilcoxon); "
            "the clean tail (McNemar); best alpha by mean, median, "
            "failure rate; the equal-loss variant (failure: error "
            f"> {FAIL_ERROR:g} or epsilon not reached at the cap) "
            "with the same tests",
            "origin": "restated after the audit's exploratory analysis of the v1 runs (P1: "
            "the alpha -> 1 effect under label noise is a failure-probability "
            "effect); confirmed or refuted here on a fresh seed stream",
            "pilot_seen": "before fixing: item timings, and a 20-seed pilot of the noisy "
            "regime at alpha = 1 with epsilon 0.005 and cap 2000 (seeds outside "
            "this stream) to size the cap",
        },
    )


PROTOCOL = _protocol(False)
"""The full-size protocol, declared before its first full run."""
QUICK_PROTOCOL = _protocol(True)

DISCLOSURES = [
    Disclosure(
        date="2026-11-28 (commit 3137473, before the first full report)",
        change="noisy regime |u| = 0.5 (a weak shared signal) -> |u| = 2, N_2 = 30, p_2 = 0.3 "
        "(downstream label noise)",
        reason="at |u| = 0.5 the inherited part is not 'unclean' in the sense of the claim: the "
        "weak shared signal only makes both runs worse",
        earlier="never committed; rerun 2026-11-29 with the code of this commit (16 seeds, the "
        "v0 rule: best interior alpha by mean, one-sided paired t): the error falls "
        "monotonically, mean 0.417 at alpha = 0 to 0.338 at alpha = 1, best interior "
        "alpha 0.9, err(1) - err(0.9) = -0.0074 +- 0.0077 (p = 0.83): 'large alpha "
        "hurts' FAILS there (the committed negative_transfer hard row at |u| = 0.5 "
        "agrees: transfer - scratch -0.011 / -0.022 / -0.049 / -0.102 at alpha = 0.2 / "
        "0.5 / 0.8 / 1)",
    ),
    Disclosure(
        date="2026-11-28 (commits ca04bca -> bdbe458 -> c596ead, before the first full report)",
        change="clean regime: the trend was first tested on alpha <= 0.7 only (pooled Spearman "
        "and err(0) > err(0.5)); then on [0, 1] with an absence-of-rise rule (no "
        "significant rise between neighbours, then over all 55 pairs after Holm)",
        reason="a review asked for the whole range [0, 1]",
        earlier="never committed; the v0 rule on the first 16 seeds of the committed v1 clean "
        "runs (the same seeds): Spearman rho = -0.840 (p = 1e-35) on alpha <= 0.7, "
        "err(0) - err(0.5) = +0.236 +- 0.015 (p = 3e-11): PASS, on a range that "
        "excluded the rise after alpha = 0.8",
    ),
    Disclosure(
        date="2026-11-28 (commit 499e002, before the first full report)",
        change="seeds 16 -> 20 (clean) and 40 (noisy, split 20 + 20 for choosing and testing "
        "alpha*)",
        reason="power; the split avoids choosing and testing alpha* on the same seeds",
        earlier="not committed (the audit finds no evidence of optional stopping either way)",
    ),
    Disclosure(
        date="2026-11-29 (this protocol, v2, after the committed full report)",
        change="v1 -> v2: clean regime redefined as p_2 = 0 (v1: p_2 = 0.1); the "
        "absence-of-rise rule and the split-seed mean t-tests replaced by Page + "
        "Wilcoxon (typical run) and an exact McNemar test of failures (tail); claim "
        "restated as a failure-rate effect; 40 / 120 seeds on a fresh seed stream; "
        "equal-loss variant added (reported)",
        reason="the audit (P1): the outcomes are heavy-tailed; mean t-tests misread a "
        "failure-probability effect, and an absence-of-rise rule cannot detect a rise",
        earlier="v1 (committed, 2026-11-28): FAIL. clean, alpha in [0, 1]: Page p < 1e-10 "
        "(decrease); largest rise err(1) - err(0.8) = +0.0236 +- 0.0160 (Holm p = 1; "
        "'no significant rise'); noisy: alpha* = 0.8 (chosen on 20 seeds), on 20 "
        "held-out seeds err(1) - err(alpha*) = +0.0441 +- 0.0247 (p = 0.045), err(0) - "
        "err(alpha*) = +0.2464 +- 0.0219 (p = 3.8e-10). Means / medians / failures "
        "(err > 0.2) at alpha = 0.8, 0.9, 1 in v1: clean 0.014 / 0.028 / 0.038, "
        "0.010 / 0.010 / 0.007, 0 / 1 / 2 of 20; noisy 0.055 / 0.067 / 0.097, "
        "0.045 / 0.043 / 0.038, 1 / 3 / 6 of 40",
    ),
]
"""Protocol changes made after the claim's script had been run (audit P2)."""


def measure_at_loss(config, epsilon=EPSILON, cap=CAP, **options):
    """:func:`refimpl.lab.measures.measure_transfer` of ``config`` with
    fine-tuning and scratch trained to the training loss ``epsilon`` (cap
    ``cap`` steps): the equal-loss variant of a fixed-step sweep item. The
    seed is that of ``config``, so a sweep over the same configs pairs the
    two variants seed by seed. Adds ``stalled_transfer`` / ``stalled_scratch``
    (1 when the final training loss is above epsilon: not reached at the cap)
    and ``up_stopped_early`` (1 when the upstream stage, under the same
    rule, stopped before its own cap)."""
    c = config.replace(epsilon=float(epsilon), steps_down=int(cap))
    out = measure_transfer(c, **options)
    out["stalled_transfer"] = float(out["loss_down"] > epsilon)
    out["stalled_scratch"] = float(out["loss_scratch"] > epsilon)
    out["up_stopped_early"] = float(out["steps_up"] < c.steps_up)
    return out


def failures(err, stalled=None, threshold=FAIL_ERROR):
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
    score = {
        "mean": np.mean,
        "median": np.median,
        "failure": lambda a, axis: np.mean(a > 0.5, axis=axis),
    }[stat](v[ok], axis=1)
    return float(np.asarray(alphas, float)[ok][int(np.argmin(score))])


def decide(alphas, err_clean, err_noisy, stalled_clean=None, stalled_noisy=None):
    """The verdict from the per-seed errors of both regimes (pure: no files,
    no sweeps).

    Parameters
    ----------
    alphas : sequence of float, shape (k,)
        Increasing, containing 0.5, 0.8 and 1 (k >= 3).
    err_clean, err_noisy : arrays of shape (k, seeds)
        err_transfer per alpha and seed (NaN: missing); seeds shared across
        alphas (paired).
    stalled_clean, stalled_noisy : arrays of shape (k, seeds), optional
        1 where the run stalled (equal-loss variant): a failure too.

    Returns
    -------
    dict
        ``verdict`` ("PASS" when (a) Page's decreasing trend in the clean
        regime, (b) the clean Wilcoxon err(0.8) > err(1) and (c) the noisy
        McNemar fail(1) > fail(0.5) all have p < SIGNIFICANCE and no value is
        missing), ``verdict_tests`` (the same without the missing-value
        rule), ``missing``, ``trend_clean`` (a), ``end_clean`` (b),
        ``tail_noisy`` (c), ``ok`` ({"a", "b", "c"}); reported: ``summary``
        (regime -> :func:`refimpl.lab.stats.outcome_summary` of the errors
        with the failure rate of :func:`failures`), ``fail`` (regime ->
        indicators), ``trend_noisy`` (Page, decreasing), ``typical_noisy``
        (Wilcoxon two-sided err(1) vs err(0.5)), ``tail_clean`` (McNemar),
        ``tail_by_alpha`` (noisy: McNemar fail(alpha) > fail(0.5) per
        alpha, raw p) and ``best`` (regime -> {"mean", "median",
        "failure"} -> alpha or None).
    """
    alphas = [float(a) for a in alphas]
    err = {"clean": np.asarray(err_clean, float), "noisy": np.asarray(err_noisy, float)}
    fail = {
        "clean": failures(err["clean"], stalled_clean),
        "noisy": failures(err["noisy"], stalled_noisy),
    }
    one, ref, end = alphas.index(1.0), alphas.index(REF_ALPHA), alphas.index(END_ALPHA)
    trend_clean = S.trend(alphas, err["clean"], "less")  # (a)
    end_clean = S.wilcoxon(err["clean"][end], err["clean"][one], "greater")  # (b)
    tail_noisy = S.paired_failures(fail["noisy"][one], fail["noisy"][ref], "greater")  # (c)
    ok = {
        "a": bool(trend_clean["p"] < SIGNIFICANCE),
        "b": bool(end_clean["p"] < SIGNIFICANCE),
        "c": bool(tail_noisy["p"] < SIGNIFICANCE),
    }
    missing = S.n_missing(err["clean"], err["noisy"])
    tests = "PASS" if all(ok.values()) else "FAIL"
    summary = {}
    for r in err:
        s = S.outcome_summary(err[r], FAIL_ERROR)
        with np.errstate(invalid="ignore"):
            s["failure_rate"] = np.nanmean(fail[r], axis=1) if fail[r].size else s["failure_rate"]
        summary[r] = s
    best = {
        r: {
            "mean": best_alpha(alphas, err[r], "mean"),
            "median": best_alpha(alphas, err[r], "median"),
            "failure": best_alpha(
                alphas, np.where(np.isfinite(err[r]), fail[r], np.nan), "failure"
            ),
        }
        for r in err
    }
    return {
        "verdict": "FAIL" if missing else tests,
        "verdict_tests": tests,
        "missing": missing,
        "trend_clean": trend_clean,
        "end_clean": end_clean,
        "tail_noisy": tail_noisy,
        "ok": ok,
        "summary": summary,
        "fail": fail,
        "trend_noisy": S.trend(alphas, err["noisy"], "less"),
        "typical_noisy": S.wilcoxon(err["noisy"][one], err["noisy"][ref], "two-sided"),
        "tail_clean": S.paired_failures(fail["clean"][one], fail["clean"][ref], "greater"),
        "tail_by_alpha": [
            S.paired_failures(fail["noisy"][k], fail["noisy"][ref], "greater")
            for k in range(len(alphas))
        ],
        "best": best,
    }


# ----------------------------------------------------------------------
# running it
def _sweeps(out, quick, jobs):
    """Both regimes, both stopping rules: per regime the arrays (alphas, seeds)."""
    regimes = QUICK_REGIMES if quick else REGIMES
    reps = QUICK_REPS if quick else REPS
    res = {}
    for name, over in regimes.items():
        base = transfer_base(quick, engine=ENGINE, **over)
        grid = [base.replace(alpha=a) for a in ALPHAS]
        common = dict(
            replicates=reps[name], jobs=jobs, cache=R.cache_dir(out), salt=SALT, common=("alpha",)
        )
        fixed = run_sweep(
            grid,
            label=f"{NAME} {name}",
            **common,
            metrics=("err_transfer", "err_scratch", "loss_down"),
        )
        eq = run_sweep(
            grid,
            measure=measure_at_loss,
            label=f"{NAME} {name} (equal loss)",
            options={"epsilon": EPSILON, "cap": CAP},
            **common,
            metrics=(
                "err_transfer",
                "err_scratch",
                "stalled_transfer",
                "stalled_scratch",
                "steps_down",
                "steps_scratch",
                "up_stopped_early",
            ),
        )
        res[name] = {
            "base": base,
            "over": over,
            "reps": reps[name],
            "fixed": {k: fixed.values(k) for k in ("err_transfer", "err_scratch", "loss_down")},
            "eq": {
                k: eq.values(k)
                for k in (
                    "err_transfer",
                    "err_scratch",
                    "stalled_transfer",
                    "stalled_scratch",
                    "steps_down",
                )
            },
            "up_stopped_early": int(np.nansum(eq.values("up_stopped_early"))),
        }
    return res


def _decisions(res):
    fixed = decide(
        ALPHAS, res["clean"]["fixed"]["err_transfer"], res["noisy"]["fixed"]["err_transfer"]
    )
    eq = decide(
        ALPHAS,
        res["clean"]["eq"]["err_transfer"],
        res["noisy"]["eq"]["err_transfer"],
        res["clean"]["eq"]["stalled_transfer"],
        res["noisy"]["eq"]["stalled_transfer"],
    )
    return fixed, eq


def _fmt_fail(t):
    return (
        f"{t['a_only']} vs {t['b_only']} discordant, rates {t['rate_a']:.3f} vs "
        f"{t['rate_b']:.3f}, exact {R.fmt_p(t['p'])}"
    )


def _statistic(dec, res):
    tc, ec, tn = dec["trend_clean"], dec["end_clean"], dec["tail_noisy"]
    return (
        f"clean (p_2 = 0, {res['clean']['reps']} seeds): {R.fmt_trend(tc)} (decrease); "
        f"err({END_ALPHA:g}) - err(1): median {ec['median']:+.4f}, Wilcoxon {R.fmt_p(ec['p'])}; "
        f"noisy (p_2 = 0.3, {res['noisy']['reps']} seeds): failures (err > {FAIL_ERROR:g}) "
        f"at alpha = 1 vs {REF_ALPHA:g}: {_fmt_fail(tn)}; one-sided, fixed {res['clean']['base'].steps_down} steps"
    )


def _table(dec, res, regime):
    """Per alpha: mean, median and failure rate of both stopping rules."""
    f, e = dec[0]["summary"][regime], dec[1]["summary"][regime]
    r = res[regime]
    stall_t = np.nanmean(r["eq"]["stalled_transfer"], axis=1)
    stall_s = np.nanmean(r["eq"]["stalled_scratch"], axis=1)
    steps = np.nanmedian(r["eq"]["steps_down"], axis=1)
    rows = []
    for k, a in enumerate(ALPHAS):
        rows.append(
            [
                f"{a:.1f}",
                f"{f['mean'][k]:.4f}",
                f"{f['median'][k]:.4f}",
                f"{f['failure_rate'][k]:.3f}",
                f"{e['mean'][k]:.4f}",
                f"{e['median'][k]:.4f}",
                f"{e['failure_rate'][k]:.3f}",
                f"{stall_t[k]:.3f}",
                f"{steps[k]:.0f}",
                f"{stall_s[k]:.3f}",
            ]
        )
    header = [
        "alpha",
        "mean",
        "median",
        "failure rate",
        "mean (eq. loss)",
        "median (eq. loss)",
        "failure rate (eq. loss)",
        "stalled (eq. loss)",
        "median steps (eq. loss)",
        "scratch stalled (eq. loss)",
    ]
    return R.markdown_table(header, rows)


def _csv_rows(dec, res):
    rows = []
    for regime in res:
        r = res[regime]
        for v, (d, key) in zip(VARIANTS, ((dec[0], "fixed"), (dec[1], "eq"))):
            s = d["summary"][regime]
            et, es = r[key]["err_transfer"], r[key]["err_scratch"]
            stalled = r["eq"]["stalled_transfer"] if key == "eq" else np.zeros_like(et)
            for k, a in enumerate(ALPHAS):
                rows.append(
                    [
                        regime,
                        v,
                        a,
                        s["mean"][k],
                        S.sem(et[k]),
                        s["median"][k],
                        s["failure_rate"][k],
                        float(np.nanmean(stalled[k])),
                        float(np.nanmean(es[k])),
                        float(np.nanmedian(es[k])),
                        int(s["n"][k]),
                    ]
                )
    header = [
        "regime",
        "variant",
        "alpha",
        "err_transfer_mean",
        "err_transfer_se",
        "err_transfer_median",
        "failure_rate",
        "stalled_rate",
        "err_scratch_mean",
        "err_scratch_median",
        "n",
    ]
    return header, rows


def _figure(path, dec, res):
    if not F.available():
        return []
    fig, axes = F.subplots(2, 2, figsize=(11, 7.4))
    for row, regime in enumerate(("clean", "noisy")):
        ax, ax2 = axes[row]
        for d, ls, v in ((dec[0], "-", "fixed steps"), (dec[1], "--", "equal loss")):
            s = d["summary"][regime]
            ax.plot(ALPHAS, s["mean"], "C0" + ls, marker="o", ms=3, label=f"mean, {v}")
            ax.plot(ALPHAS, s["median"], "C1" + ls, marker="s", ms=3, label=f"median, {v}")
            ax2.plot(
                ALPHAS, s["failure_rate"], "C3" + ls, marker="o", ms=3, label=f"failure rate, {v}"
            )
        ax2.plot(
            ALPHAS,
            np.nanmean(res[regime]["eq"]["stalled_transfer"], axis=1),
            "C4:",
            marker="^",
            ms=3,
            label="stalled (equal loss)",
        )
        ax.set_yscale("log")
        ax.set_title(f"{regime}: test error over alpha ({res[regime]['reps']} seeds)", fontsize=9)
        ax2.set_title(
            f"{regime}: share of runs with error > {FAIL_ERROR:g} (or stalled)", fontsize=9
        )
        for a in (ax, ax2):
            a.set_xlabel("alpha (inherited fraction)")
            a.grid(alpha=0.3)
            a.legend(fontsize=7)
        ax.set_ylabel("clean test error (log)")
        ax2.set_ylabel("rate")
        ax2.set_ylim(-0.02, 1.02)
    return [F.save(fig, path, dpi=90)]


def _body(dec, res, figs):
    fx, eq = dec
    b = res["clean"]["base"]
    ok = lambda k: "holds" if fx["ok"][k] else "does NOT hold"
    tc, ec, tn = fx["trend_clean"], fx["end_clean"], fx["tail_noisy"]
    tl = fx["typical_noisy"]
    up_early = sum(res[r]["up_stopped_early"] for r in res)
    lines = [
        f"Base: d = {b.d}, m = {b.m}, N_1 = {b.n_up}, |v_1| = |v_2| = {b.v_up_norm:g}, "
        f"sigma_p = {b.sigma_p_down:g}, eta = {b.eta:g}; alpha = k/{M_ALPHA}; regimes "
        + "; ".join(
            f"`{r}`: "
            + ", ".join(f"{k} = {v:g}" for k, v in res[r]["over"].items())
            + f" ({res[r]['reps']} seeds)"
            for r in res
        )
        + f". Fixed steps: {b.steps_down} GD steps per stage (the verdict). Equal loss: "
        f"fine-tuning and scratch until the training loss is <= {EPSILON:g}, cap {CAP} steps "
        f"(upstream runs stopped early by epsilon: {up_early}). A failure: clean test error > "
        f"{FAIL_ERROR:g} (and, at equal loss, a stalled run).\n",
        f"- (a) clean, typical run, decreasing over alpha: {R.fmt_trend(tc)} — {ok('a')}",
        f"- (b) clean, end of the range, err({END_ALPHA:g}) > err(1): median paired difference "
        f"{ec['median']:+.4f}, Wilcoxon one-sided {R.fmt_p(ec['p'])} — {ok('b')}",
        f"- (c) noisy, tail, failures at alpha = 1 vs {REF_ALPHA:g}: {_fmt_fail(tn)} — {ok('c')}",
        f"- reported: noisy typical run, err(1) - err({REF_ALPHA:g}) median "
        f"{tl['median']:+.4f} (Wilcoxon two-sided {R.fmt_p(tl['p'])}), decreasing trend "
        f"{R.fmt_trend(fx['trend_noisy'])}; clean tail, failures at alpha = 1 vs "
        f"{REF_ALPHA:g}: {_fmt_fail(fx['tail_clean'])}",
        "- best alpha (among alphas without a missing value): "
        + "; ".join(
            f"{r}: mean {fx['best'][r]['mean']}, median {fx['best'][r]['median']}, "
            f"failure rate {fx['best'][r]['failure']}"
            for r in res
        ),
        f"- equal loss (reported): (a) {R.fmt_trend(eq['trend_clean'])}; (b) median "
        f"{eq['end_clean']['median']:+.4f}, {R.fmt_p(eq['end_clean']['p'])}; (c) "
        f"{_fmt_fail(eq['tail_noisy'])} — the rule would give {eq['verdict']} at equal loss",
    ]
    tables = [
        f"**Regime `{r}`**, per alpha (failure: error > {FAIL_ERROR:g}; at equal loss "
        f"also a stalled run; scratch is alpha = 0's other arm):\n\n" + _table(dec, res, r)
        for r in res
    ]
    return "\n\n".join(["\n".join(lines), *tables, R.figure_note(figs)])


def run(out, quick=False, jobs=1):
    folder = R.claim_folder(out, NAME)
    res = _sweeps(out, quick, jobs)
    dec = _decisions(res)
    fx = dec[0]
    statistic = _statistic(fx, res)
    header, rows = _csv_rows(dec, res)
    files.write_csv(folder / "gain_alpha.csv", header, rows)
    figs = _figure(folder / "gain_alpha.png", dec, res)
    protocol = QUICK_PROTOCOL if quick else PROTOCOL
    result = R.result(
        NAME,
        CLAIM,
        fx["verdict"],
        statistic,
        _body(dec, res, figs),
        source=SOURCE,
        missing=fx["missing"],
        protocol=protocol,
        disclosures=DISCLOSURES,
    )

    def public(d):
        return {k: v for k, v in d.items() if k not in ("fail",)}

    files.write_json(
        folder / "gain_alpha.json",
        {
            "claim": CLAIM,
            "verdict": result["verdict"],
            "verdict_tests": fx["verdict_tests"],
            "statistic": result["statistic"],
            "protocol": protocol.to_dict(),
            "protocol_hash": protocol.hash,
            "disclosures": [d.to_dict() for d in DISCLOSURES],
            "alphas": ALPHAS,
            "n_missing": fx["missing"],
            "failure_threshold": FAIL_ERROR,
            "fixed_steps": public(fx),
            "equal_loss": {**public(dec[1]), "epsilon": EPSILON, "cap": CAP},
            "per_seed": {
                r: {
                    "base_config": res[r]["base"].to_dict(),
                    "fixed_steps": res[r]["fixed"],
                    "equal_loss": res[r]["eq"],
                    "up_stopped_early": res[r]["up_stopped_early"],
                }
                for r in res
            },
            "table": [dict(zip(header, row)) for row in rows],
        },
    )
    return result
