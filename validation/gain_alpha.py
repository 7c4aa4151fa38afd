"""gain_alpha: the downstream test error against the inherited fraction alpha
(MODEL.md sections 5 and 8), in two regimes.

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
  the mechanism MODEL.md section 8 names. The claim: large
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
import sys

import numpy as np

from refimpl import validate as V
from refimpl.sweep import run_sweep

NAME = "gain_alpha"
CLAIM = ("the error falls with alpha over the whole range [0, 1] where the inherited part is clean; "
         "where it is not, large alpha hurts and a moderate alpha is best")
ALPHA_LEVEL = 0.01
REGIMES = {
    "clean": {"u_norm": 2.0, "n_up": 200, "flip_up": 0.0, "sigma_p_up": 1.0},
    "noisy": {"u_norm": 2.0, "n_down": 30, "flip_down": 0.3},
}
QUICK_REGIMES = {"clean": {"u_norm": 2.0}, "noisy": {"u_norm": 2.0, "n_down": 16, "flip_down": 0.3}}


def _describe(over):
    return ", ".join(f"{k} = {v:g}" for k, v in over.items())


def run(out, quick=False, jobs=1):
    folder = V.script_out(out, NAME)
    reps_of = {"clean": 3 if quick else 20, "noisy": 4 if quick else 40}
    m = 4 if quick else 10
    alphas = [k / m for k in range(m + 1)]
    regimes = QUICK_REGIMES if quick else REGIMES
    res, figs, parts, tables = {}, [], [], []
    for name, over in regimes.items():
        reps = reps_of[name]
        base = V.transfer_base(quick, **over)
        grid = [base.replace(alpha=a) for a in alphas]
        sw = run_sweep(grid, replicates=reps, jobs=jobs, cache=V.cache_dir(out),
                       label=f"{NAME} {name}", salt=NAME, common=("alpha",),
                       metrics=("err_transfer", "err_scratch", "gain"))
        err = sw.values("err_transfer")               # (alphas, reps)
        res[name] = {"base": base, "sw": sw, "err": err}
        rows = [[a, sw.mean("err_transfer")[i], sw.se("err_transfer")[i],
                 sw.mean("err_scratch")[i], sw.se("err_scratch")[i], sw.mean("gain")[i],
                 sw.se("gain")[i]] for i, a in enumerate(alphas)]
        header = ["alpha", "err_transfer", "err_transfer_se", "err_scratch", "err_scratch_se",
                  "gain", "gain_se"]
        V.write_csv(folder / f"gain_alpha_{name}.csv", header, rows)
        res[name]["rows"] = [dict(zip(header, r)) for r in rows]
        tables.append(f"**Regime `{name}`** ({_describe(over)}; other fields as the base)\n\n" +
                      V.markdown_table(["alpha", "err_transfer", "err_scratch (alpha=0)", "gain"],
                                       [[f"{r[0]:.1f}", V.fmt_mean_se(r[1], r[2]),
                                         V.fmt_mean_se(r[3], r[4]), V.fmt_mean_se(r[5], r[6])]
                                        for r in rows]))
        figs += V.line_figure(folder / f"gain_alpha_{name}.png", alphas,
                              {"err_transfer": (sw.mean("err_transfer"), sw.se("err_transfer")),
                               "err_scratch": (sw.mean("err_scratch"), sw.se("err_scratch"))},
                              "alpha (inherited fraction)", "clean test error",
                              f"regime {name}: {_describe(over)} (mean ± se, {reps} seeds)",
                              ax_extra=lambda ax: ax.set_ylim(bottom=0))
    # clean: the error falls with alpha over the whole range [0, 1]
    c = res["clean"]
    reps = reps_of["clean"]
    tr = V.trend(alphas, c["err"], "less")                     # (a) seeds are blocks
    rho, p = tr["rho"], tr["p"]
    pairs = [(i, j) for i in range(len(alphas)) for j in range(i + 1, len(alphas))]
    rises = [V.paired_t(c["err"][j], c["err"][i], "greater") for i, j in pairs]
    rises_adj = V.holm([t["p"] for t in rises])                 # (b) one family: all pairs
    k_max = int(np.argmax([t["mean"] for t in rises]))
    rise_max = rises[k_max]
    a_lo, a_hi = alphas[pairs[k_max][0]], alphas[pairs[k_max][1]]
    no_rise = bool(np.all(rises_adj >= ALPHA_LEVEL))
    mid = alphas.index(0.5)
    t_clean = V.paired_t(c["err"][0], c["err"][mid], "greater")  # (c)
    ok_clean = rho < 0 and p < ALPHA_LEVEL and no_rise and t_clean["p"] < ALPHA_LEVEL
    # noisy: a moderate alpha is best, alpha = 1 worse, alpha = 0 worse
    n = res["noisy"]
    half = reps_of["noisy"] // 2
    select, test = n["err"][:, :half], n["err"][:, half:]
    means = select.mean(axis=1)
    interior = list(range(1, len(alphas) - 1))
    best = interior[int(np.argmin(means[interior]))]
    t_one = V.paired_t(test[-1], test[best], "greater")
    t_zero = V.paired_t(test[0], test[best], "greater")
    ok_noisy = t_one["p"] < ALPHA_LEVEL and t_zero["p"] < ALPHA_LEVEL
    missing = V.n_missing(c["err"], n["err"])
    verdict = "PASS" if ok_clean and ok_noisy else "FAIL"
    statistic = (f"clean, alpha in [0, 1]: {V.fmt_trend(tr)} (decrease); largest rise "
                 f"err({a_hi:g}) - err({a_lo:g}) = "
                 f"{rise_max['mean']:+.4f} ± {rise_max['se']:.4f} (Holm-adjusted "
                 f"{V.fmt_p(rises_adj[k_max])}; {'no' if no_rise else 'a'} significant rise); "
                 f"noisy: alpha* = {alphas[best]:.1f} (chosen on {half} seeds), on {reps_of['noisy'] - half} "
                 f"held-out seeds err(1) - err(alpha*) = "
                 f"{t_one['mean']:+.4f} ± {t_one['se']:.4f} ({V.fmt_p(t_one['p'])}), "
                 f"err(0) - err(alpha*) = {t_zero['mean']:+.4f} ± {t_zero['se']:.4f} "
                 f"({V.fmt_p(t_zero['p'])}); one-sided paired t-tests")
    V.write_json(folder / "gain_alpha.json", {
        "claim": CLAIM, "verdict": verdict, "statistic": statistic, "alphas": alphas,
        "replicates": reps_of, "noisy_selection_seeds": half,
        "n_missing": missing,
        "clean": {"regime": regimes["clean"], "trend": tr, "t_alpha0_vs_half": t_clean,
                  "rises": [{"from": alphas[i], "to": alphas[j], **t, "p_holm": rises_adj[k]}
                            for k, ((i, j), t) in enumerate(zip(pairs, rises))],
                  "no_significant_rise": no_rise,
                  "table": res["clean"]["rows"], "per_seed_err": c["err"],
                  "base_config": c["base"].to_dict()},
        "noisy": {"regime": regimes["noisy"], "best_alpha": alphas[best], "t_one_vs_best": t_one,
                  "t_zero_vs_best": t_zero, "table": res["noisy"]["rows"],
                  "per_seed_err": n["err"], "base_config": n["base"].to_dict()}})
    b = c["base"]
    body = "\n\n".join([
        f"Base: d = {b.d}, m = {b.m}, N_2 = {b.n_down}, |v_1| = |v_2| = {b.v_up_norm:g}, "
        f"sigma_p,2 = {b.sigma_p_down:g}, p_2 = {b.flip_down:g}, {b.steps_down} GD steps per stage; "
        f"alpha = k/{m}; all alphas of a regime share seeds (paired); {reps_of['clean']} seeds (clean), "
        f"{reps_of['noisy']} seeds (noisy: alpha* chosen on the first {half}, tested on the rest). "
        f"Clean regime, over the whole range alpha in [0, 1]: PASS part needs (a) a decreasing "
        f"trend seed by seed ({V.fmt_trend(tr)}), (b) no significant rise from any alpha to a "
        f"larger one (one-sided paired t, Holm over all {len(rises)} pairs; largest rise "
        f"err({a_hi:g}) - err({a_lo:g}) = {rise_max['mean']:+.4f} ± "
        f"{rise_max['se']:.4f}, raw {V.fmt_p(rise_max['p'])}, Holm {V.fmt_p(rises_adj[k_max])}) "
        f"and (c) err(0) > err(0.5) "
        f"(paired t: {t_clean['mean']:+.4f} ± {t_clean['se']:.4f}, {V.fmt_p(t_clean['p'])}) — "
        f"{'holds' if ok_clean else 'does not hold'}. Noisy regime: the best interior alpha must "
        f"beat alpha = 1 and alpha = 0 — {'holds' if ok_noisy else 'does not hold'}.",
        *tables, V.figure_note(figs)])
    return V.result(NAME, CLAIM, verdict, statistic, body, missing=missing)


if __name__ == "__main__":
    sys.exit(V.script_main(sys.modules[__name__]))
