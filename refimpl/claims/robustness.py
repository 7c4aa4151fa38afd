"""robustness: the main gain and negative-transfer findings again under
variants of the model (docs/model.md §s 2 and 5).

Variants of :data:`refimpl.validate.TRANSFER_BASE`: the base (joint layout,
filter granularity, orthogonal v_1, v_2, p_2 = 0.1); the split layout
(x = [yhat u, yhat v, xi]); entry granularity (an i.i.d. Bernoulli(alpha)
mask per weight entry); correlated task signals (cos(v_1, v_2) = 0.5); no
downstream label noise (p_2 = 0); a ten times smaller step size with ten
times the steps (eta = 0.1, 2000 steps per stage: the base's eta = 1 takes
large fine-tuning steps, eta |xi|^2/(N_2 m) ~ 6).

Findings tested in each variant (one-sided, level 0.01, paired seeds within a
run; |u| in {0, 1, 2}):
- gain: at |u| = 2 transfer beats scratch (paired t-test of the gain > 0);
- trend: the gain grows with |u|, seed by seed (:func:`refimpl.validate.trend`:
  per-seed Spearman rho, Page's L test);
- negative transfer: at |u| = 0 transfer is worse than scratch (paired t-test).
Verdict: PASS when every finding holds in every variant, the base included;
otherwise FAIL, listing where each finding is lost. (With correlated task
signals v_1 carries part of v_2, a shared signal of its own, so the
negative transfer at |u| = 0 need not survive there.) Any missing value (a
diverged run) fails the verdict.
"""

import numpy as np

from .. import files
from ..lab import figures as F
from ..lab import report as R
from ..lab import stats as S
from ..lab.stats import SIGNIFICANCE
from ..lab.sweep import run_sweep
from ._base import transfer_base

NAME = "robustness"
CLAIM = ("the gain at a strong shared signal, its growth with |u| and negative transfer at |u| = 0 "
         "survive the split layout, entry granularity, correlated v_1/v_2, p_2 = 0 and a smaller step size")
SOURCE = "hypothesis"
VARIANTS = {
    "base (joint, filter, p_2 = 0.1)": {},
    "split layout": {"layout": "split"},
    "entry granularity": {"granularity": "entry"},
    "cos(v_1, v_2) = 0.5": {"v_cos": 0.5},
    "p_2 = 0": {"flip_down": 0.0},
    "eta = 0.1, 10x steps": {"eta": 0.1, "steps_up": 2000, "steps_down": 2000},
}
QUICK_STEPS = {"steps_up": 600, "steps_down": 600}
US = [0.0, 1.0, 2.0]
FINDINGS = ("gain at |u| = 2", "gain grows with |u|", "negative transfer at |u| = 0")


def decide(variants, us, err_transfer, err_scratch):
    """The verdict from the errors of every variant (pure: no files, no sweeps).

    Parameters
    ----------
    variants : sequence of str, length V
    us : sequence of float, shape (k,)
        The values of |u| (k >= 3 distinct, increasing: the first is the
        weak-signal point of the negative-transfer finding, the last the
        strong-signal point of the gain finding).
    err_transfer, err_scratch : arrays of shape (V, k, seeds)
        Test errors per variant, |u| and seed (paired; NaN: missing).

    Returns
    -------
    dict
        ``verdict`` ("PASS" when every finding of :data:`FINDINGS` holds in
        every variant at SIGNIFICANCE, and no value is missing),
        ``verdict_tests`` (without the missing-value rule, what
        ``robustness.json`` records), ``results`` (variant -> ``t_gain_u2``,
        ``trend``, ``t_negative_u0``, ``holds``), ``broken`` (the (variant,
        finding) pairs that do not hold) and ``missing``.
    """
    et, es = err_transfer, err_scratch
    gain = es - et
    results = {}
    for k, n in enumerate(variants):
        t_gain = S.paired_t(es[k, -1], et[k, -1], "greater")
        tr = S.trend(us, gain[k], "greater")
        rho, p_rho = tr["rho"], tr["p"]
        t_neg = S.paired_t(et[k, 0], es[k, 0], "greater")
        holds = {FINDINGS[0]: t_gain["p"] < SIGNIFICANCE,
                 FINDINGS[1]: rho > 0 and p_rho < SIGNIFICANCE,
                 FINDINGS[2]: t_neg["p"] < SIGNIFICANCE}
        results[n] = {"t_gain_u2": t_gain, "trend": tr, "t_negative_u0": t_neg,
                      "holds": holds}
    broken = [(n, f) for n in variants for f in FINDINGS if not results[n]["holds"][f]]
    missing = S.n_missing(et, es)
    verdict = "PASS" if not broken else "FAIL"
    return {"verdict": "FAIL" if missing else verdict, "verdict_tests": verdict,
            "results": results, "broken": broken, "missing": missing}


def _body(quick, results, figs):
    fmt = lambda t: f"{t['mean']:+.4f} ± {t['se']:.4f} ({R.fmt_p(t['p'])})"
    table = R.markdown_table(
        ["variant", "gain at |u| = 2", "gain against |u| (mean per-seed rho, Page's test)",
         "err_t - err_s at |u| = 0", "holds"],
        [[n, fmt(r["t_gain_u2"]), f"{r['trend']['rho']:.3f} ± {r['trend']['rho_se']:.3f} "
                                  f"({R.fmt_p(r['trend']['p'])})",
          fmt(r["t_negative_u0"]), ", ".join("yes" if r["holds"][f] else "NO" for f in FINDINGS)]
         for n, r in results.items()])
    b = transfer_base(quick)
    return "\n\n".join([
        f"Base: d = {b.d}, m = {b.m}, N_1 = {b.n_up}, N_2 = {b.n_down}, |v_1| = |v_2| = {b.v_up_norm:g}, "
        f"sigma_p = {b.sigma_p_up:g}, alpha = {b.alpha:g}, {b.steps_down} steps. The `holds` column "
        f"lists, in order: {'; '.join(FINDINGS)}.",
        table, R.figure_note(figs)])


def run(out, quick=False, jobs=1):
    folder = R.claim_folder(out, NAME)
    reps = 3 if quick else 20
    names = list(VARIANTS)

    def variant(n):
        over = dict(VARIANTS[n])
        if quick and "steps_up" in over:
            over.update(QUICK_STEPS)
        return over

    grid = [transfer_base(quick, u_norm=u, **variant(n)) for n in names for u in US]
    sw = run_sweep(grid, replicates=reps, jobs=jobs, cache=R.cache_dir(out), label=NAME, salt=NAME,
                   metrics=("err_transfer", "err_scratch"))
    shape = (len(names), len(US), reps)
    et, es = sw.values("err_transfer").reshape(shape), sw.values("err_scratch").reshape(shape)
    gain = es - et
    dec = decide(names, US, et, es)
    results, broken = dec["results"], dec["broken"]
    rows = [[n, u, gain[k, i].mean(), gain[k, i].std(ddof=1) / np.sqrt(reps),
             et[k, i].mean(), es[k, i].mean()] for k, n in enumerate(names) for i, u in enumerate(US)]
    statistic = (("all three findings hold in every variant" if not broken else
                  f"{len(FINDINGS) * len(names) - len(broken)} of {len(FINDINGS) * len(names)} "
                  "(variant, finding) pairs hold; lost: "
                  + "; ".join(f"{n}: {f}" for n, f in broken))
                 + f" ({reps} seeds per point, one-sided tests at {SIGNIFICANCE})")
    header = ["variant", "u_norm", "gain", "gain_se", "err_transfer", "err_scratch"]
    files.write_csv(folder / "robustness.csv", header, rows)
    files.write_json(folder / "robustness.json", {
        "claim": CLAIM, "verdict": dec["verdict_tests"], "statistic": statistic, "replicates": reps,
        "variants": VARIANTS, "u_norm": US, "results": results, "expected": list(FINDINGS),
        "broken": broken, "n_missing": dec["missing"], "base_config": transfer_base(quick).to_dict(),
        "table": [dict(zip(header, r)) for r in rows]})
    figs = F.line_figure(folder / "robustness.png", US,
                         {n: (gain[k].mean(axis=1), gain[k].std(axis=1, ddof=1) / np.sqrt(reps))
                          for k, n in enumerate(names)},
                         "|u| (shared signal)", "gain = err_scratch - err_transfer",
                         f"gain vs |u| under each variant (mean ± se, {reps} seeds)", hline=0.0)
    body = _body(quick, results, figs)
    return R.result(NAME, CLAIM, dec["verdict"], statistic, body, source=SOURCE,
                    missing=dec["missing"])
