"""gain_shared: the transfer gain against the shared signal |u| (MODEL.md section 8).

Regime: the base transfer regime of :data:`refimpl.validate.TRANSFER_BASE`
(d = 600, m = 10, N_1 = 200, N_2 = 10, sigma_p = 1, |v_1| = |v_2| = 1,
p_2 = 0.1, alpha = 0.5, 200 GD steps per stage), |u| from 0 to 2.5. Over this
range the downstream task alone stays hard (scratch error well above 0), so
the gain has room to grow. Test: a monotone trend of the gain in |u|,
seed by seed (:func:`refimpl.validate.trend`: per-seed Spearman rho, Page's
L test, one-sided, level 0.01). Any missing value (a diverged run) fails the
verdict.
"""
import sys

import numpy as np

from refimpl import validate as V
from refimpl.sweep import run_sweep
from refimpl.theory import indicators

NAME = "gain_shared"
CLAIM = "the gain err_scratch - err_transfer grows with the shared signal |u|"
ALPHA_LEVEL = 0.01


def run(out, quick=False, jobs=1):
    folder = V.script_out(out, NAME)
    us = [0.0, 1.0, 2.0] if quick else [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    reps = 3 if quick else 20
    base = V.transfer_base(quick)
    grid = [base.replace(u_norm=u) for u in us]
    sw = run_sweep(grid, replicates=reps, jobs=jobs, cache=V.cache_dir(out), label=NAME, salt=NAME,
                   metrics=("gain", "err_transfer", "err_scratch"))
    gain = sw.values("gain")                                     # (points, reps)
    tr = V.trend(us, gain, "greater")
    rho, p = tr["rho"], tr["p"]
    per_point = [V.paired_t(sw.values("err_scratch")[i], sw.values("err_transfer")[i])
                 for i in range(len(us))]
    missing = V.n_missing(gain)
    verdict = "PASS" if (rho > 0 and p < ALPHA_LEVEL) else "FAIL"
    statistic = (f"gain grows with |u|: {V.fmt_trend(tr)}, one-sided "
                 f"({len(us)} values of |u| x {reps} seeds; gain {sw.mean('gain')[0]:+.3f} at "
                 f"|u| = {us[0]:g} to {sw.mean('gain')[-1]:+.3f} at |u| = {us[-1]:g})")
    rows = []
    for i, u in enumerate(us):
        rows.append([u, sw.mean("gain")[i], sw.se("gain")[i], sw.mean("err_transfer")[i],
                     sw.se("err_transfer")[i], sw.mean("err_scratch")[i], sw.se("err_scratch")[i],
                     per_point[i]["p"], indicators(grid[i])["gamma_inh"]])
    header = ["u_norm", "gain", "gain_se", "err_transfer", "err_transfer_se", "err_scratch",
              "err_scratch_se", "p_gain_positive", "gamma_inh"]
    V.write_csv(folder / "gain_shared.csv", header, rows)
    V.write_json(folder / "gain_shared.json", {
        "claim": CLAIM, "verdict": verdict, "statistic": statistic, "trend": tr,
        "n_missing": missing, "replicates": reps, "base_config": base.to_dict(), "u_norm": us,
        "table": [dict(zip(header, r)) for r in rows],
        "per_seed": {k: sw.values(k) for k in ("gain", "err_transfer", "err_scratch")}})
    figs = V.line_figure(folder / "gain_shared.png", us,
                         {"gain = err_scratch - err_transfer": (sw.mean("gain"), sw.se("gain")),
                          "err_transfer": (sw.mean("err_transfer"), sw.se("err_transfer")),
                          "err_scratch": (sw.mean("err_scratch"), sw.se("err_scratch"))},
                         "|u| (shared signal)", "clean test error / gain",
                         f"gain vs |u| (mean ± se over {reps} seeds)", hline=0.0)
    body = "\n\n".join([
        f"Regime: d = {base.d}, m = {base.m}, N_1 = {base.n_up}, N_2 = {base.n_down}, "
        f"sigma_p = {base.sigma_p_up:g}, |v_1| = |v_2| = {base.v_up_norm:g}, p_2 = {base.flip_down:g}, "
        f"alpha = {base.alpha:g}, {base.steps_down} GD steps per stage, eta = {base.eta:g}. "
        f"Test: a monotone increase of the gain with |u| seed by seed (per-seed Spearman rho, "
        f"Page's L test, one-sided, level {ALPHA_LEVEL}); per point a one-sided paired t-test of "
        f"gain > 0 (reported, not in the verdict).",
        V.markdown_table(["|u|", "gain", "err_transfer", "err_scratch", "p(gain > 0)", "Gamma_inh"],
                         [[f"{r[0]:g}", V.fmt_mean_se(r[1], r[2]), V.fmt_mean_se(r[3], r[4]),
                           V.fmt_mean_se(r[5], r[6]), r[7], r[8]] for r in rows]),
        V.figure_note(figs)])
    return V.result(NAME, CLAIM, verdict, statistic, body, missing=missing, trend_rho=rho, trend_p=p)


if __name__ == "__main__":
    sys.exit(V.script_main(sys.modules[__name__]))
