"""robustness: the main gain and negative-transfer findings again under
variants of the model (docs/model.md §s 2 and 5), each variant a finding of
its own.

Variants of the base transfer regime (joint layout, filter granularity,
orthogonal v_1, v_2, p_2 = 0.1, eta = 1, T = 200): the split layout
(x = [yhat u, yhat v, xi]); entry granularity (an i.i.d. Bernoulli(alpha)
mask per weight entry); correlated task signals (cos(v_1, v_2) = 0.5); no
downstream label noise (p_2 = 0); a ten times smaller step size with ten
times the steps (eta = 0.1, 2000 steps per stage: the base's eta = 1 takes
large fine-tuning steps, eta |xi|^2/(N_2 m) ~ 6); equal training loss
(fine-tuning and scratch each until the loss is <= 1e-3, cap 2000 steps: the
stopping-rule variant).

Design (protocol :data:`PROTOCOL`, fixed 2026-11-29 before its first full
run), |u| in {0, 1, 2}, 40 seeds per point, transfer and scratch paired
within a run, independent seeds across points and variants. Predictions,
per variant, each tested on its own (one-sided, level 0.01) and reported as
"detected" or "not detected" (never "lost"; a significant effect against
the prediction is reported as "opposite"):

- gain at |u| = 2: err_scratch - err_transfer > 0 (Wilcoxon signed-rank);
- growth: the gain increases with |u| (Page's L test, seeds as blocks);
- at |u| = 0: negative transfer, err_transfer - err_scratch > 0 (Wilcoxon),
  except with cos(v_1, v_2) = 0.5, where v_1 carries half of v_2's
  direction, a shared signal of norm 0.5 of its own: there the prediction is
  the reverse, a gain at |u| = 0.

Verdict, with no AND across variants: each prediction is tested once on all
the variants that make it together (pairs or blocks pooled over the
variants, the variants as strata): the gain at |u| = 2 and its growth over
all seven variants, negative transfer at |u| = 0 over the six variants that
predict it, the gain at |u| = 0 over the one that predicts it. PASS when all
four pooled tests are significant (one-sided, 0.01) and no value is missing;
the per-variant results are separate findings beside it. Per point the
mean, median and failure rate (error > 0.2) of both errors, and the stalled
runs of the loss-target variant, are reported.
"""

import numpy as np

from .. import files
from ..lab import figures as F
from ..lab import report as R
from ..lab import stats as S
from ..lab.protocol import Disclosure, Protocol
from ..lab.stats import SIGNIFICANCE
from ..lab.sweep import run_sweep
from ._base import ENGINE, EPSILON, FAILURE_ERROR, LOSS_CAP, QUICK_LOSS_CAP, stalled, transfer_base

NAME = "robustness"
CLAIM = (
    "the gain at |u| = 2, its growth with |u| and negative transfer at |u| = 0 hold across "
    "the split layout, entry granularity, p_2 = 0, a smaller step size and equal loss, and "
    "correlated v_1/v_2 turn |u| = 0 into a gain (each variant a finding of its own)"
)
SOURCE = "hypothesis"
EQUAL_LOSS = "equal loss (loss <= 1e-3, cap 2000)"
VARIANTS = {
    "base (joint, filter, p_2 = 0.1)": {},
    "split layout": {"layout": "split"},
    "entry granularity": {"granularity": "entry"},
    "cos(v_1, v_2) = 0.5": {"v_cos": 0.5},
    "p_2 = 0": {"flip_down": 0.0},
    "eta = 0.1, 10x steps": {"eta": 0.1, "steps_up": 2000, "steps_down": 2000},
    EQUAL_LOSS: {"epsilon": EPSILON, "steps_down": LOSS_CAP},
}
QUICK_STEPS = {"steps_up": 600, "steps_down": 600}
REVERSED = {"cos(v_1, v_2) = 0.5": "gain"}
"""Variants whose prediction at |u| = 0 is a gain instead of negative transfer."""
US = [0.0, 1.0, 2.0]
SEEDS = 40
QUICK_SEEDS = 3
SALT = "robustness-v2"
FINDINGS = ("gain at |u| = 2", "gain grows with |u|", "at |u| = 0")
POOLED = (
    "gain at |u| = 2",
    "gain grows with |u|",
    "negative transfer at |u| = 0",
    "gain at |u| = 0 (reversal)",
)
METRICS = ("err_transfer", "err_scratch", "loss_down", "loss_scratch")

PROTOCOL = Protocol(
    claim=NAME,
    grid={
        "base": "TRANSFER_BASE (d = 600, m = 10, N_1 = 200, N_2 = 10, |v_1| = |v_2| = 1, "
        "sigma_p = 1, p_2 = 0.1, alpha = 0.5, eta = 1, T = 200)",
        "variants": VARIANTS,
        "u_norm": US,
    },
    seeds=SEEDS,
    statistic=(
        "per variant: one-sided Wilcoxon signed-rank of the gain at |u| = 2, Page's L "
        "test of the gain's growth over |u|, one-sided Wilcoxon at |u| = 0 in the "
        "predicted direction (negative transfer; a gain with cos(v_1, v_2) = 0.5); the "
        "verdict on each prediction pooled over the variants that make it (pairs, or "
        "blocks, of all those variants together)"
    ),
    pass_rule=(
        f"the four pooled tests (gain at |u| = 2 and growth over all 7 variants; negative "
        f"transfer at |u| = 0 over the 6 that predict it; gain at |u| = 0 with cos = 0.5) "
        f"each p < {SIGNIFICANCE} in the predicted direction; no missing value; per-variant "
        f"results reported as detected / not detected, not in the verdict"
    ),
    fixed="2026-11-29",
    extra={
        "pairing": "transfer and scratch paired within a run; independent seeds across |u| "
        "and variants (none is paired: each changes the model)",
        "salt": SALT,
        "failure": f"clean test error > {FAILURE_ERROR}",
        "stalled": f"training loss > {EPSILON:g} at the cap (the equal-loss variant)",
        "seeds": "40: about 80% power at one-sided 0.01 per variant for the base's |u| = 0 "
        "effect (+0.02, sd 0.034); entry granularity (sd 0.067) would need ~110",
        "quick": f"d = 120, m = 4, N_1 = 40, N_2 = 8, T = 60 (600 for the small-step "
        f"variant), {QUICK_SEEDS} seeds, cap {QUICK_LOSS_CAP}",
    },
)

DISCLOSURES = [
    Disclosure(
        date="2026-11-29",
        change=(
            "verdict = AND of 18 (variant, finding) tests with paired t-tests, negative transfer "
            "at |u| = 0 required in every variant (also with cos(v_1, v_2) = 0.5), "
            "non-detections reported as 'lost', 20 seeds, 6 variants -> each variant a finding "
            "of its own (detected / not detected), the reversal with cos = 0.5 predicted as a "
            "gain at |u| = 0, the verdict on four pooled tests (variants as strata; Wilcoxon "
            "and Page), an equal-loss variant, 40 seeds, fresh seed stream (salt robustness-v2)"
        ),
        reason=(
            "the validation audit (3.10, P3): an 18-way AND has little power, the cos = 0.5 "
            "reversal is expected by construction, and 'lost' reported non-detections; issue 9 "
            "items 4-6"
        ),
        earlier=(
            "FAIL: 16 of 18 (variant, finding) pairs hold; 'lost': entry granularity: "
            "negative transfer at |u| = 0 (-0.0064 ± 0.0149); cos(v_1, v_2) = 0.5: negative "
            "transfer at |u| = 0 (-0.0856 ± 0.0039, i.e. a gain) (20 seeds per point, "
            "one-sided tests at 0.01)"
        ),
    )
]


def _arr(a):
    return np.array(
        [[[np.nan if v is None else v for v in row] for row in var] for var in a], float
    )


def _finding(test, opposite):
    """Status of a one-sided test and of its mirror."""
    if np.isfinite(test["p"]) and test["p"] < SIGNIFICANCE:
        status = "detected"
    elif np.isfinite(opposite["p"]) and opposite["p"] < SIGNIFICANCE:
        status = "opposite"
    else:
        status = "not detected"
    return {**test, "p_opposite": opposite["p"], "status": status}


def decide(variants, us, err_transfer, err_scratch, reversed_=None):
    """The verdict from the errors of every variant (pure: no files, no sweeps).

    Parameters
    ----------
    variants : sequence of str, length V
    us : sequence of float, shape (k,)
        The values of |u| (k >= 3 distinct, increasing: the first is the
        weak-signal point, the last the strong-signal point).
    err_transfer, err_scratch : arrays of shape (V, k, seeds)
        Test errors per variant, |u| and seed (paired; NaN or None: missing).
    reversed_ : mapping variant -> "gain", optional
        Variants predicting a gain at the first |u| instead of negative
        transfer (default :data:`REVERSED`).

    Returns
    -------
    dict
        ``verdict`` ("PASS" when the four pooled tests of :data:`POOLED` all
        have p < SIGNIFICANCE, and no value is missing), ``verdict_tests``
        (without the missing-value rule), ``pooled`` (name -> test dict with
        ``holds`` and ``variants``: the ones pooled), ``results`` (variant ->
        finding -> the Wilcoxon or trend dict with ``p_opposite`` and
        ``status``: "detected", "not detected" or "opposite", plus
        ``prediction_u0``: "negative" or "gain") and ``missing``.
    """
    reversed_ = REVERSED if reversed_ is None else reversed_
    et, es = _arr(err_transfer), _arr(err_scratch)
    gain = es - et
    results = {}
    for k, n in enumerate(variants):
        pred = reversed_.get(n, "negative")
        g2 = _finding(
            S.wilcoxon(es[k, -1], et[k, -1], "greater"), S.wilcoxon(es[k, -1], et[k, -1], "less")
        )
        tr = _finding(S.trend(us, gain[k], "greater"), S.trend(us, gain[k], "less"))
        a, b = (et[k, 0], es[k, 0]) if pred == "negative" else (es[k, 0], et[k, 0])
        u0 = _finding(S.wilcoxon(a, b, "greater"), S.wilcoxon(a, b, "less"))
        results[n] = {"prediction_u0": pred, FINDINGS[0]: g2, FINDINGS[1]: tr, FINDINGS[2]: u0}
    neg = [k for k, n in enumerate(variants) if reversed_.get(n, "negative") == "negative"]
    rev = [k for k, n in enumerate(variants) if reversed_.get(n, "negative") == "gain"]
    pooled = {
        POOLED[0]: dict(
            S.wilcoxon(es[:, -1].ravel(), et[:, -1].ravel(), "greater"), variants=list(variants)
        ),
        POOLED[1]: dict(
            S.trend(us, np.concatenate(list(gain), axis=1), "greater"), variants=list(variants)
        ),
    }
    for name, idx, (a, b) in ((POOLED[2], neg, (et, es)), (POOLED[3], rev, (es, et))):
        if idx:
            pooled[name] = dict(
                S.wilcoxon(a[idx, 0].ravel(), b[idx, 0].ravel(), "greater"),
                variants=[variants[k] for k in idx],
            )
    for name, t in pooled.items():
        ok = np.isfinite(t["p"]) and t["p"] < SIGNIFICANCE
        if name == POOLED[1]:
            ok = ok and t["rho"] > 0
        t["holds"] = bool(ok)
    missing = S.n_missing(et, es)
    tests = "PASS" if all(t["holds"] for t in pooled.values()) else "FAIL"
    return {
        "verdict": "FAIL" if missing else tests,
        "verdict_tests": tests,
        "pooled": pooled,
        "results": results,
        "missing": missing,
    }


def variant_config(name, quick, u):
    """The config of a variant at |u| (quick: the small-step variant at 600 steps)."""
    over = dict(VARIANTS[name])
    if quick and "eta" in over:
        over.update(QUICK_STEPS)
    if quick and "epsilon" in over:
        over["steps_down"] = QUICK_LOSS_CAP
    return transfer_base(quick, engine=ENGINE, u_norm=u, **over)


def _prediction(result, finding):
    """A finding of a variant in words (the |u| = 0 one with its predicted direction)."""
    if finding != FINDINGS[2]:
        return finding
    return (
        "negative transfer" if result["prediction_u0"] == "negative" else "gain"
    ) + " at |u| = 0"


def _fmt_test(t, key="median"):
    if key == "rho":
        return f"rho {t['rho']:+.2f}, {R.fmt_p(t['p'])}"
    return f"{t['median']:+.4f}, {R.fmt_p(t['p'])}"


def run(out, quick=False, jobs=1):
    folder = R.claim_folder(out, NAME)
    reps = QUICK_SEEDS if quick else SEEDS
    names = list(VARIANTS)
    grid = [variant_config(n, quick, u) for n in names for u in US]
    sw = run_sweep(
        grid,
        replicates=reps,
        jobs=jobs,
        cache=R.cache_dir(out),
        label=NAME,
        salt=SALT,
        metrics=METRICS,
    )
    shape = (len(names), len(US), reps)
    et, es = sw.values("err_transfer").reshape(shape), sw.values("err_scratch").reshape(shape)
    dec = decide(names, US, et, es)
    res_v, pooled = dec["results"], dec["pooled"]
    missed = [
        (n, _prediction(r, f), r[f]["status"])
        for n, r in res_v.items()
        for f in FINDINGS
        if r[f]["status"] != "detected"
    ]
    n_pred = len(names) * len(FINDINGS)
    statistic = (
        "pooled over the variants: "
        + "; ".join(
            f"{name}: "
            + (_fmt_test(t, "rho") if name == POOLED[1] else _fmt_test(t))
            + f" ({len(t['variants'])} variant{'s' if len(t['variants']) > 1 else ''})"
            for name, t in pooled.items()
        )
        + f"; per variant: {n_pred - len(missed)} of {n_pred} predictions detected"
        + ("" if not missed else " (" + "; ".join(f"{n}: {f} {s}" for n, f, s in missed) + ")")
        + f"; {reps} seeds per point, one-sided at {SIGNIFICANCE}"
    )
    gain = es - et
    loss_t = sw.values("loss_down").reshape(shape)
    loss_s = sw.values("loss_scratch").reshape(shape)
    header = [
        "variant",
        "u_norm",
        "gain_mean",
        "gain_se",
        "gain_median",
        "err_transfer_mean",
        "err_transfer_median",
        "fail_transfer",
        "err_scratch_mean",
        "err_scratch_median",
        "fail_scratch",
        "stalled_transfer",
        "stalled_scratch",
    ]
    rows = []
    for k, n in enumerate(names):
        ot = S.outcome_summary(et[k], FAILURE_ERROR)
        os_ = S.outcome_summary(es[k], FAILURE_ERROR)
        og = S.outcome_summary(gain[k], np.inf)
        eps = grid[k * len(US)].epsilon
        for i, u in enumerate(US):
            st = (
                (np.nansum(stalled(loss_t[k, i], eps)), np.nansum(stalled(loss_s[k, i], eps)))
                if eps > 0
                else (None, None)
            )
            rows.append(
                [
                    n,
                    u,
                    og["mean"][i],
                    S.sem(gain[k, i]),
                    og["median"][i],
                    ot["mean"][i],
                    ot["median"][i],
                    ot["failure_rate"][i],
                    os_["mean"][i],
                    os_["median"][i],
                    os_["failure_rate"][i],
                    *st,
                ]
            )
    files.write_csv(folder / "robustness.csv", header, rows)
    findings_table = R.markdown_table(
        [
            "variant",
            "gain at |u| = 2 (median, p)",
            "growth with |u| (Page)",
            "prediction at |u| = 0",
            "at |u| = 0, predicted direction (median, p)",
        ],
        [
            [
                n,
                f"{_fmt_test(r[FINDINGS[0]])}: {r[FINDINGS[0]]['status']}",
                f"{_fmt_test(r[FINDINGS[1]], 'rho')}: {r[FINDINGS[1]]['status']}",
                "negative transfer" if r["prediction_u0"] == "negative" else "gain (reversal)",
                f"{_fmt_test(r[FINDINGS[2]])}: {r[FINDINGS[2]]['status']}",
            ]
            for n, r in res_v.items()
        ],
    )
    pooled_table = R.markdown_table(
        ["prediction (pooled)", "variants", "effect", "holds"],
        [
            [
                name,
                len(t["variants"]),
                _fmt_test(t, "rho" if name == POOLED[1] else "median"),
                "yes" if t["holds"] else "NO",
            ]
            for name, t in pooled.items()
        ],
    )
    outcome_table = R.markdown_table(
        [
            "variant",
            "|u|",
            "gain (mean ± se)",
            "gain (median)",
            "err_transfer (mean / median / fail)",
            "err_scratch (mean / median / fail)",
            "stalled (transfer / scratch)",
        ],
        [
            [
                r[0],
                f"{r[1]:g}",
                R.fmt_mean_se(r[2], r[3], 3),
                f"{r[4]:+.3f}",
                f"{r[5]:.3f} / {r[6]:.3f} / {100 * r[7]:.0f}%",
                f"{r[8]:.3f} / {r[9]:.3f} / {100 * r[10]:.0f}%",
                "—" if r[11] is None else f"{int(r[11])} / {int(r[12])} of {reps}",
            ]
            for r in rows
        ],
    )
    b = transfer_base(quick, engine=ENGINE)
    figs = F.line_figure(
        folder / "robustness.png",
        US,
        {n: (gain[k].mean(axis=1), S.sem(gain[k], axis=1)) for k, n in enumerate(names)},
        "|u| (shared signal)",
        "gain = err_scratch - err_transfer",
        f"gain vs |u| under each variant (mean ± se, {reps} seeds)",
        hline=0.0,
    )
    body = "\n\n".join(
        [
            f"Base: d = {b.d}, m = {b.m}, N_1 = {b.n_up}, N_2 = {b.n_down}, |v_1| = |v_2| = "
            f"{b.v_up_norm:g}, sigma_p = {b.sigma_p_up:g}, alpha = {b.alpha:g}, eta = {b.eta:g}, "
            f"{b.steps_down} steps. Each variant is a finding of its own: a prediction is "
            f"'detected' (one-sided p < {SIGNIFICANCE}), 'not detected', or 'opposite' (significant "
            f"against it). The verdict rests on the pooled tests only."
            + (" Quick (CI-size) run: not the protocol's sizes." if quick else ""),
            "**Pooled over the variants (the verdict)**",
            pooled_table,
            "**Per variant (separate findings)**",
            findings_table,
            (
                f"**Outcomes per point** (clean test error; 'fail': error > {FAILURE_ERROR:g}; "
                f"stalled: loss above the target at the cap, equal-loss variant only)"
            ),
            outcome_table,
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
        findings=[
            {
                "variant": n,
                "prediction": _prediction(r, f),
                "status": r[f]["status"],
                "p": r[f]["p"],
            }
            for n, r in res_v.items()
            for f in FINDINGS
        ],
    )
    files.write_json(
        folder / "robustness.json",
        {
            "claim": CLAIM,
            "verdict": res["verdict"],
            "statistic": res["statistic"],
            "verdict_without_missing_rule": dec["verdict_tests"],
            "replicates": reps,
            "quick": quick,
            "protocol": PROTOCOL.to_dict(),
            "protocol_hash": PROTOCOL.hash,
            "disclosures": [d.to_dict() for d in DISCLOSURES],
            "variants": VARIANTS,
            "reversed": REVERSED,
            "u_norm": US,
            "pooled": pooled,
            "results": res_v,
            "n_missing": dec["missing"],
            "base_config": b.to_dict(),
            "table": [dict(zip(header, r)) for r in rows],
            "per_seed": {
                "err_transfer": et,
                "err_scratch": es,
                "loss_down": loss_t,
                "loss_scratch": loss_s,
            },
        },
    )
    return res
