"""gain_shared: the transfer gain against the shared signal |u| (docs/model.md § 8).

Regime: the base transfer regime of :data:`refimpl.validate.TRANSFER_BASE`
(d = 600, m = 10, N_1 = 200, N_2 = 10, sigma_p = 1, |v_1| = |v_2| = 1,
p_2 = 0.1, alpha = 0.5, 200 GD steps per stage), |u| from 0 to 2.5. Over this
range the downstream task alone stays hard (scratch error well above 0), so
the gain has room to grow. Test: a monotone trend of the gain in |u|,
seed by seed (:func:`refimpl.validate.trend`: per-seed Spearman rho, Page's
L test, one-sided, level 0.01). Any missing value (a diverged run) fails the
verdict.
"""


from .. import files
from ..lab import figures as F
from ..lab import report as R
from ..lab import stats as S
from ..lab.stats import SIGNIFICANCE
from ..lab.sweep import run_sweep
from ..theory import indicators
from ._base import transfer_base

NAME = "gain_shared"
CLAIM = "the gain err_scratch - err_transfer grows with the shared signal |u|"
SOURCE = "paper"


def decide(us, gain):
    """The verdict from the measured gains (pure: no files, no sweeps).

    Parameters
    ----------
    us : sequence of float, shape (k,)
        The values of |u| (k >= 3 distinct).
    gain : array of shape (k, seeds)
        err_scratch - err_transfer per point and seed (NaN: missing).

    Returns
    -------
    dict
        ``verdict`` ("PASS" when the one-sided Page trend test of an increase
        has rho > 0 and p < SIGNIFICANCE, and no value is missing; else
        "FAIL"), ``verdict_tests`` (the same without the missing-value rule,
        what ``gain_shared.json`` records), ``trend`` (:func:`refimpl.lab.stats.trend`)
        and ``missing`` (missing gain values).
    """
    tr = S.trend(us, gain, "greater")
    missing = S.n_missing(gain)
    tests = "PASS" if (tr["rho"] > 0 and tr["p"] < SIGNIFICANCE) else "FAIL"
    return {"verdict": "FAIL" if missing else tests, "verdict_tests": tests, "trend": tr,
            "missing": missing}


def run(out, quick=False, jobs=1):
    folder = R.claim_folder(out, NAME)
    us = [0.0, 1.0, 2.0] if quick else [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    reps = 3 if quick else 20
    base = transfer_base(quick)
    grid = [base.replace(u_norm=u) for u in us]
    sw = run_sweep(grid, replicates=reps, jobs=jobs, cache=R.cache_dir(out), label=NAME, salt=NAME,
                   metrics=("gain", "err_transfer", "err_scratch"))
    gain = sw.values("gain")                                     # (points, reps)
    dec = decide(us, gain)
    tr, missing = dec["trend"], dec["missing"]
    rho, p = tr["rho"], tr["p"]
    per_point = [S.paired_t(sw.values("err_scratch")[i], sw.values("err_transfer")[i])
                 for i in range(len(us))]
    statistic = (f"gain grows with |u|: {R.fmt_trend(tr)}, one-sided "
                 f"({len(us)} values of |u| x {reps} seeds; gain {sw.mean('gain')[0]:+.3f} at "
                 f"|u| = {us[0]:g} to {sw.mean('gain')[-1]:+.3f} at |u| = {us[-1]:g})")
    rows = []
    for i, u in enumerate(us):
        rows.append([u, sw.mean("gain")[i], sw.se("gain")[i], sw.mean("err_transfer")[i],
                     sw.se("err_transfer")[i], sw.mean("err_scratch")[i], sw.se("err_scratch")[i],
                     per_point[i]["p"], indicators(grid[i])["gamma_inh"]])
    header = ["u_norm", "gain", "gain_se", "err_transfer", "err_transfer_se", "err_scratch",
              "err_scratch_se", "p_gain_positive", "gamma_inh"]
    files.write_csv(folder / "gain_shared.csv", header, rows)
    files.write_json(folder / "gain_shared.json", {
        "claim": CLAIM, "verdict": dec["verdict_tests"], "statistic": statistic, "trend": tr,
        "n_missing": missing, "replicates": reps, "base_config": base.to_dict(), "u_norm": us,
        "table": [dict(zip(header, r)) for r in rows],
        "per_seed": {k: sw.values(k) for k in ("gain", "err_transfer", "err_scratch")}})
    figs = F.line_figure(folder / "gain_shared.png", us,
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
        f"Page's L test, one-sided, level {SIGNIFICANCE}); per point a one-sided paired t-test of "
        f"gain > 0 (reported, not in the verdict).",
        R.markdown_table(["|u|", "gain", "err_transfer", "err_scratch", "p(gain > 0)", "Gamma_inh"],
                         [[f"{r[0]:g}", R.fmt_mean_se(r[1], r[2]), R.fmt_mean_se(r[3], r[4]),
                           R.fmt_mean_se(r[5], r[6]), r[7], r[8]] for r in rows]),
        R.figure_note(figs)])
    return R.result(NAME, CLAIM, dec["verdict"], statistic, body, source=SOURCE, missing=missing,
                    trend_rho=rho, trend_p=p)

