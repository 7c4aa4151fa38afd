"""gain_alpha: the downstream test error against the inherited fraction alpha
(docs/model.md §s 5 and 8), in two regimes.

- ``clean``: the inherited part is clean (strong shared signal |u| = 2, a
  well-trained upstream model: N_1 = 200, no upstream label noise). The claim,
  stated precisely: over the whole range alpha in [0, 1] the error falls as
  alpha grows. Tests (all three must hold, level 0.01): (a) a decreasing
  trend over all alphas, seed by seed (:func:`refimpl.validate.trend`:
  per-seed Spearman rho, Page's L test, one-sided); (b) no significant rise
  anywhere: for every pair alpha_i < alpha_j a one-sided paired t-test of
  err(alpha_j) > err(alpha_i), Holm-adjusted over all m(m+1)/2 pairs, none
  significant (a non-increasing error has no rising pair); (c) the paired
  one-sided t-test err(alpha=0) > err(alpha=0.5). (b) finds a rise only
  when it is significant: the largest observed rise is reported with its
  numbers either way.
- ``noisy``: the inherited part is not clean for the downstream task: strong
  inherited weights meet heavy downstream label noise (N_2 = 30, p_2 = 0.3),
  the mechanism docs/model.md § 8 names. The claim: large
  alpha hurts and a moderate alpha is best. Test (split seeds, so that
  choosing the best alpha does not bias the test): on the first half of the
  seeds the interior alpha* with the lowest mean error is chosen; on the
  other half, one-sided paired t-tests that alpha* has a lower error than
  alpha = 1 and than alpha = 0.

Any missing error value (a diverged run) fails the verdict.

alpha takes the values k/m, k = 0..m (whole filters, m = 10); every alpha of
a regime uses the same seeds (common random numbers: the same data, upstream
model, fresh filters and test draws), so the comparisons are paired.
"""

import numpy as np

from .. import files
from ..lab import figures as F
from ..lab import report as R
from ..lab import stats as S
from ..lab.stats import SIGNIFICANCE
from ..lab.sweep import run_sweep
from ._base import transfer_base

NAME = "gain_alpha"
CLAIM = ("the error falls with alpha over the whole range [0, 1] where the inherited part is clean; "
         "where it is not, large alpha hurts and a moderate alpha is best")
SOURCE = "paper"
REGIMES = {
    "clean": {"u_norm": 2.0, "n_up": 200, "flip_up": 0.0, "sigma_p_up": 1.0},
    "noisy": {"u_norm": 2.0, "n_down": 30, "flip_down": 0.3},
}
QUICK_REGIMES = {"clean": {"u_norm": 2.0}, "noisy": {"u_norm": 2.0, "n_down": 16, "flip_down": 0.3}}


def _describe(over):
    return ", ".join(f"{k} = {v:g}" for k, v in over.items())


def decide(alphas, err_clean, err_noisy):
    """The verdict from the measured errors of both regimes (pure: no files,
    no sweeps).

    Parameters
    ----------
    alphas : sequence of float, shape (k,)
        Increasing, from 0 to 1, containing 0.5 (k >= 3).
    err_clean : array of shape (k, seeds)
        err_transfer of the ``clean`` regime per alpha and seed (NaN: missing).
    err_noisy : array of shape (k, seeds2)
        err_transfer of the ``noisy`` regime; its first ``seeds2 // 2`` seeds
        choose alpha*, the others test it.

    Returns
    -------
    dict
        ``verdict`` ("PASS" when both regimes' tests hold and no value is
        missing), ``verdict_tests`` (without the missing-value rule, what
        ``gain_alpha.json`` records), ``missing``; clean: ``trend`` (a),
        ``pairs`` (index pairs i < j), ``rises`` (their paired t-tests of
        err(alpha_j) > err(alpha_i)), ``rises_holm`` (Holm-adjusted p over all
        pairs), ``k_max`` (the pair with the largest mean rise), ``no_rise``
        (b), ``t_clean`` (c), ``ok_clean``; noisy: ``half`` (selection seeds),
        ``best`` (index of alpha*), ``t_one``, ``t_zero``, ``ok_noisy``.
    """
    alphas = list(alphas)
    tr = S.trend(alphas, err_clean, "less")                     # (a) seeds are blocks
    rho, p = tr["rho"], tr["p"]
    pairs = [(i, j) for i in range(len(alphas)) for j in range(i + 1, len(alphas))]
    rises = [S.paired_t(err_clean[j], err_clean[i], "greater") for i, j in pairs]
    rises_adj = S.holm([t["p"] for t in rises])                 # (b) one family: all pairs
    k_max = int(np.argmax([t["mean"] for t in rises]))
    no_rise = bool(np.all(rises_adj >= SIGNIFICANCE))
    mid = alphas.index(0.5)
    t_clean = S.paired_t(err_clean[0], err_clean[mid], "greater")  # (c)
    ok_clean = rho < 0 and p < SIGNIFICANCE and no_rise and t_clean["p"] < SIGNIFICANCE
    # noisy: alpha* chosen on the first half of the seeds, tested on the rest
    half = err_noisy.shape[1] // 2
    select, test = err_noisy[:, :half], err_noisy[:, half:]
    means = select.mean(axis=1)
    interior = list(range(1, len(alphas) - 1))
    best = interior[int(np.argmin(means[interior]))]
    t_one = S.paired_t(test[-1], test[best], "greater")
    t_zero = S.paired_t(test[0], test[best], "greater")
    ok_noisy = t_one["p"] < SIGNIFICANCE and t_zero["p"] < SIGNIFICANCE
    missing = S.n_missing(err_clean, err_noisy)
    tests = "PASS" if ok_clean and ok_noisy else "FAIL"
    return {"verdict": "FAIL" if missing else tests, "verdict_tests": tests, "missing": missing,
            "trend": tr, "pairs": pairs, "rises": rises, "rises_holm": rises_adj, "k_max": k_max,
            "no_rise": no_rise, "t_clean": t_clean, "ok_clean": ok_clean, "half": half,
            "best": best, "t_one": t_one, "t_zero": t_zero, "ok_noisy": ok_noisy}


def _regime(out, folder, name, over, alphas, reps, jobs, quick):
    """Sweep one regime over alpha; its CSV, figure and markdown table."""
    base = transfer_base(quick, **over)
    grid = [base.replace(alpha=a) for a in alphas]
    sw = run_sweep(grid, replicates=reps, jobs=jobs, cache=R.cache_dir(out),
                   label=f"{NAME} {name}", salt=NAME, common=("alpha",),
                   metrics=("err_transfer", "err_scratch", "gain"))
    rows = [[a, sw.mean("err_transfer")[i], sw.se("err_transfer")[i],
             sw.mean("err_scratch")[i], sw.se("err_scratch")[i], sw.mean("gain")[i],
             sw.se("gain")[i]] for i, a in enumerate(alphas)]
    header = ["alpha", "err_transfer", "err_transfer_se", "err_scratch", "err_scratch_se",
              "gain", "gain_se"]
    files.write_csv(folder / f"gain_alpha_{name}.csv", header, rows)
    table = (f"**Regime `{name}`** ({_describe(over)}; other fields as the base)\n\n" +
             R.markdown_table(["alpha", "err_transfer", "err_scratch (alpha=0)", "gain"],
                              [[f"{r[0]:.1f}", R.fmt_mean_se(r[1], r[2]),
                                R.fmt_mean_se(r[3], r[4]), R.fmt_mean_se(r[5], r[6])]
                               for r in rows]))
    figs = F.line_figure(folder / f"gain_alpha_{name}.png", alphas,
                         {"err_transfer": (sw.mean("err_transfer"), sw.se("err_transfer")),
                          "err_scratch": (sw.mean("err_scratch"), sw.se("err_scratch"))},
                         "alpha (inherited fraction)", "clean test error",
                         f"regime {name}: {_describe(over)} (mean ± se, {reps} seeds)",
                         ax_extra=lambda ax: ax.set_ylim(bottom=0))
    return {"base": base, "err": sw.values("err_transfer"),          # (alphas, reps)
            "rows": [dict(zip(header, r)) for r in rows], "table": table, "figs": figs}


def _statistic(dec, alphas, reps_noisy):
    tr, rise_max, k_max = dec["trend"], dec["rises"][dec["k_max"]], dec["k_max"]
    a_lo, a_hi = alphas[dec["pairs"][k_max][0]], alphas[dec["pairs"][k_max][1]]
    t_one, t_zero, half = dec["t_one"], dec["t_zero"], dec["half"]
    return (f"clean, alpha in [0, 1]: {R.fmt_trend(tr)} (decrease); largest rise "
            f"err({a_hi:g}) - err({a_lo:g}) = "
            f"{rise_max['mean']:+.4f} ± {rise_max['se']:.4f} (Holm-adjusted "
            f"{R.fmt_p(dec['rises_holm'][k_max])}; {'no' if dec['no_rise'] else 'a'} significant rise); "
            f"noisy: alpha* = {alphas[dec['best']]:.1f} (chosen on {half} seeds), on {reps_noisy - half} "
            f"held-out seeds err(1) - err(alpha*) = "
            f"{t_one['mean']:+.4f} ± {t_one['se']:.4f} ({R.fmt_p(t_one['p'])}), "
            f"err(0) - err(alpha*) = {t_zero['mean']:+.4f} ± {t_zero['se']:.4f} "
            f"({R.fmt_p(t_zero['p'])}); one-sided paired t-tests")


def _body(dec, res, alphas, m, reps_of):
    tr, rise_max, k_max, t_clean = dec["trend"], dec["rises"][dec["k_max"]], dec["k_max"], dec["t_clean"]
    a_lo, a_hi = alphas[dec["pairs"][k_max][0]], alphas[dec["pairs"][k_max][1]]
    b = res["clean"]["base"]
    return "\n\n".join([
        f"Base: d = {b.d}, m = {b.m}, N_2 = {b.n_down}, |v_1| = |v_2| = {b.v_up_norm:g}, "
        f"sigma_p,2 = {b.sigma_p_down:g}, p_2 = {b.flip_down:g}, {b.steps_down} GD steps per stage; "
        f"alpha = k/{m}; all alphas of a regime share seeds (paired); {reps_of['clean']} seeds (clean), "
        f"{reps_of['noisy']} seeds (noisy: alpha* chosen on the first {dec['half']}, tested on the rest). "
        f"Clean regime, over the whole range alpha in [0, 1]: PASS part needs (a) a decreasing "
        f"trend seed by seed ({R.fmt_trend(tr)}), (b) no significant rise from any alpha to a "
        f"larger one (one-sided paired t, Holm over all {len(dec['rises'])} pairs; largest rise "
        f"err({a_hi:g}) - err({a_lo:g}) = {rise_max['mean']:+.4f} ± "
        f"{rise_max['se']:.4f}, raw {R.fmt_p(rise_max['p'])}, Holm {R.fmt_p(dec['rises_holm'][k_max])}) "
        f"and (c) err(0) > err(0.5) "
        f"(paired t: {t_clean['mean']:+.4f} ± {t_clean['se']:.4f}, {R.fmt_p(t_clean['p'])}) — "
        f"{'holds' if dec['ok_clean'] else 'does not hold'}. Noisy regime: the best interior alpha must "
        f"beat alpha = 1 and alpha = 0 — {'holds' if dec['ok_noisy'] else 'does not hold'}.",
        *[r["table"] for r in res.values()], R.figure_note([f for r in res.values() for f in r["figs"]])])


def run(out, quick=False, jobs=1):
    folder = R.claim_folder(out, NAME)
    reps_of = {"clean": 3 if quick else 20, "noisy": 4 if quick else 40}
    m = 4 if quick else 10
    alphas = [k / m for k in range(m + 1)]
    regimes = QUICK_REGIMES if quick else REGIMES
    res = {name: _regime(out, folder, name, over, alphas, reps_of[name], jobs, quick)
           for name, over in regimes.items()}
    c, n = res["clean"], res["noisy"]
    dec = decide(alphas, c["err"], n["err"])
    statistic = _statistic(dec, alphas, reps_of["noisy"])
    pairs, rises, rises_adj = dec["pairs"], dec["rises"], dec["rises_holm"]
    files.write_json(folder / "gain_alpha.json", {
        "claim": CLAIM, "verdict": dec["verdict_tests"], "statistic": statistic, "alphas": alphas,
        "replicates": reps_of, "noisy_selection_seeds": dec["half"],
        "n_missing": dec["missing"],
        "clean": {"regime": regimes["clean"], "trend": dec["trend"], "t_alpha0_vs_half": dec["t_clean"],
                  "rises": [{"from": alphas[i], "to": alphas[j], **t, "p_holm": rises_adj[k]}
                            for k, ((i, j), t) in enumerate(zip(pairs, rises))],
                  "no_significant_rise": dec["no_rise"],
                  "table": c["rows"], "per_seed_err": c["err"],
                  "base_config": c["base"].to_dict()},
        "noisy": {"regime": regimes["noisy"], "best_alpha": alphas[dec["best"]],
                  "t_one_vs_best": dec["t_one"], "t_zero_vs_best": dec["t_zero"],
                  "table": n["rows"], "per_seed_err": n["err"], "base_config": n["base"].to_dict()}})
    body = _body(dec, res, alphas, m, reps_of)
    return R.result(NAME, CLAIM, dec["verdict"], statistic, body, source=SOURCE,
                    missing=dec["missing"])
