"""robustness: the main gain and negative-transfer findings again under variants of the model
(docs/model.md §2 and §5), each variant a finding of its own: our hypothesis that the findings
survive the granularity and geometry variants (docs/model.md §8.3). Per variant the gain at
|u| = 2, its growth over |u| and the predicted effect at |u| = 0 are tested on their own; the
verdict pools each prediction over the variants that make it. The design is :data:`PROTOCOL`."""

import numpy as np

from ..lab import present as P
from ..lab import report as R
from ..lab import stats as S
from ..lab.claim import Outcome, Protocol, Size, Table
from ..lab.stats import SIGNIFICANCE
from . import _base as B

BASE = "base (joint, filter, p_2 = 0.1)"
EQUAL_LOSS = "equal loss (loss <= 1e-3, cap 2000)"
"""The stopping-rule variant (its name keeps the full size's cap at every size)."""
REVERSED = {"cos(v_1, v_2) = 0.5": "gain"}
"""Variants whose prediction at |u| = 0 is a gain instead of negative transfer."""
US = [0.0, 1.0, 2.0]
FINDINGS = ("gain at |u| = 2", "gain grows with |u|", "at |u| = 0")
POOLED = (
    "gain at |u| = 2",
    "gain grows with |u|",
    "negative transfer at |u| = 0",
    "gain at |u| = 0 (reversal)",
)
METRICS = ("err_transfer", "err_scratch", "loss_down", "loss_scratch")
HEADER = "variant u_norm gain_mean gain_se gain_median err_transfer_mean".split()
HEADER += "err_transfer_median fail_transfer err_scratch_mean err_scratch_median".split()
HEADER += "fail_scratch stalled_transfer stalled_scratch".split()


def _size(quick, seeds, small_step_steps, cap):
    """Every variant of the base transfer regime at each |u| (``small_step_steps``: the steps
    per stage of the small-step variant; ``cap``: the equal-loss variant's step cap)."""
    steps = {"steps_up": small_step_steps, "steps_down": small_step_steps}
    variants = {
        BASE: {},
        "split layout": {"layout": "split"},
        "entry granularity": {"granularity": "entry"},
        "cos(v_1, v_2) = 0.5": {"v_cos": 0.5},
        "p_2 = 0": {"flip_down": 0.0},
        "eta = 0.1, 10x steps": {"eta": 0.1, **steps},
        EQUAL_LOSS: {"epsilon": B.EPSILON, "steps_down": cap},
    }
    configs = {
        n: [B.transfer_base(quick, engine=B.ENGINE, u_norm=u, **o) for u in US]
        for n, o in variants.items()
    }
    base = B.transfer_base(quick, engine=B.ENGINE).to_dict()
    return Size(configs, seeds, us=US, variants=variants, reversed=REVERSED, base=base)


PROTOCOL = Protocol(
    name="robustness",
    claim=(
        "the gain at |u| = 2, its growth with |u| and negative transfer at |u| = 0 hold across "
        "the split layout, entry granularity, p_2 = 0, a smaller step size and equal loss, and "
        "correlated v_1/v_2 turn |u| = 0 into a gain (each variant a finding of its own)"
    ),
    source="hypothesis",
    full=_size(False, 40, 2000, 2000),
    quick=_size(True, 3, 600, 600),
    statistic=(
        "per variant: one-sided Wilcoxon signed-rank of the gain at |u| = 2, Page's L test of the "
        "gain's growth over |u|, one-sided Wilcoxon at |u| = 0 in the predicted direction "
        "(negative transfer; a gain with cos(v_1, v_2) = 0.5); the verdict on each prediction "
        "pooled over the variants that make it (pairs, or blocks, of all those variants together)"
    ),
    pass_rule=(
        "the four pooled tests (gain at |u| = 2 and growth over all 7 variants; negative transfer "
        "at |u| = 0 over the 6 that predict it; gain at |u| = 0 with cos = 0.5) each p < "
        f"{SIGNIFICANCE} in the predicted direction; no missing value; per-variant results "
        "reported as detected / not detected, not in the verdict"
    ),
    fixed="2026-11-29",
    salt="robustness-v2",
    pairing="transfer and scratch paired within a run; independent seeds across |u| and "
    "variants (none is paired: each changes the model)",
    rules={
        "engine": B.ENGINE_RULE,
        "failure": f"clean test error > {B.FAILURE_ERROR}",
        "stalled": f"training loss > {B.EPSILON:g} at the cap (the equal-loss variant)",
        "findings": "a prediction of a variant is 'detected' (one-sided p < the level), 'not "
        "detected', or 'opposite' (significant against it; never 'lost')",
    },
    notes={
        "variants": "of the base transfer regime (joint layout, filter granularity, orthogonal "
        "v_1, v_2, p_2 = 0.1, eta = 1): the split layout (x = [yhat u, yhat v, xi]); entry "
        "granularity (an i.i.d. Bernoulli(alpha) mask per weight entry); correlated task signals "
        "(cos(v_1, v_2) = 0.5: v_1 carries half of v_2's direction, a shared signal of norm 0.5 "
        "of its own, hence the predicted gain at |u| = 0); no downstream label noise; a ten "
        "times smaller step size with ten times the steps (the base's eta = 1 takes large "
        "fine-tuning steps, eta |xi|^2/(N_2 m) ~ 6); equal training loss (fine-tuning and "
        "scratch each until the loss is <= 1e-3 within the cap: the stopping-rule variant)",
        "seeds": "40: about 80% power at one-sided 0.01 per variant for the base's |u| = 0 "
        "effect (+0.02, sd 0.034); entry granularity (sd 0.067) would need ~110",
        "reported, not in the verdict": "per variant and finding the one-sided test and its "
        "mirror; per point the mean, median and failure rate of both errors and the stalled "
        "runs of the equal-loss variant",
    },
    disclosures=B.history("robustness"),
    hash_scheme1="eeed9e964800",
)


def measure(size, sweep):
    """Every variant at every |u|, one sweep: ``{metric: (variants, |u|, seeds)}``."""
    configs = [c for grid in size.configs.values() for c in grid]
    sw = sweep(configs, metrics=METRICS, measure="outcomes_batched")
    shape = (len(size.configs), len(size.us), size.seeds)
    return {k: sw.values(k).reshape(shape) for k in METRICS}


def _finding(test, *args):
    """The one-sided test ``test(*args, "greater")`` with its mirror's p and the status:
    "detected", "opposite" (the mirror significant) or "not detected"."""
    one, mirror = test(*args, "greater"), test(*args, "less")
    if np.isfinite(one["p"]) and one["p"] < SIGNIFICANCE:
        status = "detected"
    elif np.isfinite(mirror["p"]) and mirror["p"] < SIGNIFICANCE:
        status = "opposite"
    else:
        status = "not detected"
    return {**one, "p_opposite": mirror["p"], "status": status}


def _variant(us, et, es, pred):
    """The three findings of one variant from its errors (|u|, seeds); at |u| = 0 in the
    direction ``pred`` ("negative": transfer worse; "gain": transfer better)."""
    u0 = (et[0], es[0]) if pred == "negative" else (es[0], et[0])
    return {
        "prediction_u0": pred,
        FINDINGS[0]: _finding(S.wilcoxon, es[-1], et[-1]),
        FINDINGS[1]: _finding(S.trend, us, es - et),
        FINDINGS[2]: _finding(S.wilcoxon, *u0),
    }


def _pooled(variants, us, et, es, predicts):
    """The four pooled tests (each with ``variants``, the ones pooled, and ``holds``)."""
    every = list(variants)
    pooled = {
        POOLED[0]: dict(S.wilcoxon(es[:, -1].ravel(), et[:, -1].ravel()), variants=every),
        POOLED[1]: dict(S.trend(us, np.concatenate(list(es - et), axis=1)), variants=every),
    }
    for name, pred, (a, b) in ((POOLED[2], "negative", (et, es)), (POOLED[3], "gain", (es, et))):
        idx = [k for k, p in enumerate(predicts) if p == pred]
        if idx:
            test = S.wilcoxon(a[idx, 0].ravel(), b[idx, 0].ravel())
            pooled[name] = dict(test, variants=[variants[k] for k in idx])
    for name, t in pooled.items():
        ok = np.isfinite(t["p"]) and t["p"] < SIGNIFICANCE
        t["holds"] = bool(ok and (name != POOLED[1] or t["rho"] > 0))
    return pooled


def decide(size, m):
    """The verdict (pure): the four pooled tests of :data:`POOLED` all hold (one-sided, in
    the predicted direction) and no value is missing; ``results``: per variant its three
    findings (separate, not in the verdict)."""
    variants = list(size.configs)
    et, es = B.as_float(m["err_transfer"]), B.as_float(m["err_scratch"])
    predicts = [size.reversed.get(n, "negative") for n in variants]
    results = {
        n: _variant(size.us, et[k], es[k], p)
        for k, (n, p) in enumerate(zip(variants, predicts, strict=True))
    }
    pooled = _pooled(variants, size.us, et, es, predicts)
    missing = S.n_missing(et, es)
    tests = "PASS" if all(t["holds"] for t in pooled.values()) else "FAIL"
    verdict = "FAIL" if missing else tests
    out = {"verdict": verdict, "verdict_tests": tests, "pooled": pooled, "results": results}
    return out | {"missing": missing}


def _prediction(result, finding):
    """A finding of a variant in words (the |u| = 0 one with its predicted direction)."""
    if finding != FINDINGS[2]:
        return finding
    negative = result["prediction_u0"] == "negative"
    return ("negative transfer" if negative else "gain") + " at |u| = 0"


def _fmt_test(t, key="median"):
    if key == "rho":
        return f"rho {t['rho']:+.2f}, {R.fmt_p(t['p'])}"
    return f"{t['median']:+.4f}, {R.fmt_p(t['p'])}"


def _statistic(size, dec):
    """The pooled tests, then how many per-variant predictions were detected (and which not)."""
    pooled = [
        f"{name}: {_fmt_test(t, 'rho' if name == POOLED[1] else 'median')} "
        f"({len(t['variants'])} variant{'s' if len(t['variants']) > 1 else ''})"
        for name, t in dec["pooled"].items()
    ]
    missed = [
        f"{n}: {_prediction(r, f)} {r[f]['status']}"
        for n, r in dec["results"].items()
        for f in FINDINGS
        if r[f]["status"] != "detected"
    ]
    n_pred = len(dec["results"]) * len(FINDINGS)
    text = "pooled over the variants: " + "; ".join(pooled)
    text += f"; per variant: {n_pred - len(missed)} of {n_pred} predictions detected"
    text += f" ({'; '.join(missed)})" if missed else ""
    return text + f"; {size.seeds} seeds per point, one-sided at {SIGNIFICANCE}"


def _rows(size, m):
    """Per variant and |u|: the gain's mean, se and median, both errors' mean, median and
    failure rate, and the stalled runs where the variant has a loss target."""
    et, es = B.as_float(m["err_transfer"]), B.as_float(m["err_scratch"])
    loss = [B.as_float(m["loss_down"]), B.as_float(m["loss_scratch"])]
    gain, rows = es - et, []
    for k, (n, grid) in enumerate(size.configs.items()):
        ot, os_ = (S.outcome_summary(x[k], B.FAILURE_ERROR) for x in (et, es))
        og, eps = S.outcome_summary(gain[k], np.inf), grid[0].epsilon
        for i, u in enumerate(size.us):
            st = [np.nansum(B.stalled(x[k, i], eps)) if eps > 0 else None for x in loss]
            row = [n, u, og["mean"][i], S.sem(gain[k, i]), og["median"][i]]
            row += [ot["mean"][i], ot["median"][i], ot["failure_rate"][i]]
            rows.append(row + [os_["mean"][i], os_["median"][i], os_["failure_rate"][i], *st])
    return rows


def _outcome_cells(r, reps):
    """A CSV row of :func:`_rows` in words."""
    stalled = "—" if r[11] is None else f"{int(r[11])} / {int(r[12])} of {reps}"
    return [
        r[0],
        f"{r[1]:g}",
        R.fmt_mean_se(r[2], r[3], 3),
        f"{r[4]:+.3f}",
        f"{r[5]:.3f} / {r[6]:.3f} / {100 * r[7]:.0f}%",
        f"{r[8]:.3f} / {r[9]:.3f} / {100 * r[10]:.0f}%",
        stalled,
    ]


def _tables(size, dec, rows):
    """The pooled tests, the per-variant findings and the outcomes per point."""
    pooled = Table(
        ["prediction (pooled)", "variants", "effect", "holds"],
        [
            [name, len(t["variants"]), _fmt_test(t, "rho" if name == POOLED[1] else "median")]
            + ["yes" if t["holds"] else "NO"]
            for name, t in dec["pooled"].items()
        ],
        title="**Pooled over the variants (the verdict)**",
    )
    head = ["variant", "gain at |u| = 2 (median, p)", "growth with |u| (Page)"]
    head += ["prediction at |u| = 0", "at |u| = 0, predicted direction (median, p)"]
    findings = []
    for n, r in dec["results"].items():
        f0, f1, f2 = (r[f] for f in FINDINGS)
        reversal = "negative transfer" if r["prediction_u0"] == "negative" else "gain (reversal)"
        cells = [f"{_fmt_test(f0)}: {f0['status']}", f"{_fmt_test(f1, 'rho')}: {f1['status']}"]
        findings.append([n, *cells, reversal, f"{_fmt_test(f2)}: {f2['status']}"])
    title = (
        f"**Outcomes per point** (clean test error; 'fail': error > {B.FAILURE_ERROR:g}; "
        "stalled: loss above the target at the cap, equal-loss variant only)"
    )
    head_out = ["variant", "|u|", "gain (mean ± se)", "gain (median)"]
    head_out += ["err_transfer (mean / median / fail)", "err_scratch (mean / median / fail)"]
    outcomes = [_outcome_cells(r, size.seeds) for r in rows]
    return [
        pooled,
        Table(head, findings, title="**Per variant (separate findings)**"),
        Table(head_out + ["stalled (transfer / scratch)"], outcomes, title=title),
    ]


REGIME_FIELDS = ("d", "m", "n_up", "n_down", P.SHARED_V, P.SIGMA_P, "alpha", "eta")


def present(size, m, dec):
    b, reps = size.base, size.seeds
    text = (
        f"Base: {P.regime(b, REGIME_FIELDS)}, {b['steps_down']} steps. Each variant is a finding "
        f"of its own: a prediction is 'detected' (one-sided p < {SIGNIFICANCE}), 'not detected', "
        "or 'opposite' (significant against it). The verdict rests on the pooled tests only."
    )
    rows = _rows(size, m)
    gain = B.as_float(m["err_scratch"]) - B.as_float(m["err_transfer"])
    series = {n: (gain[k].mean(axis=1), S.sem(gain[k], axis=1)) for k, n in enumerate(size.configs)}
    figure = B.line_figure(
        "robustness",
        size.us,
        series,
        "|u| (shared signal)",
        "gain = err_scratch - err_transfer",
        f"gain vs |u| under each variant (mean ± se, {reps} seeds)",
        hline=0.0,
    )
    csv = Table(HEADER, rows, name="robustness", show=False)
    sections = [text, *_tables(size, dec, rows), csv, figure]
    findings = [
        {"variant": n, "prediction": _prediction(r, f), "status": r[f]["status"], "p": r[f]["p"]}
        for n, r in dec["results"].items()
        for f in FINDINGS
    ]
    design = {"base_config": b, "variants": size.variants, "reversed": size.reversed}
    data = {**design, "u_norm": size.us, "replicates": reps, "findings": findings}
    return Outcome(_statistic(size, dec), sections, data | {"per_seed": m})
