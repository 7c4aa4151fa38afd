"""gain_noise_dim: the transfer gain against the upstream noise level
sigma_{p,1} and against the dimension d (docs/model.md § 8).

Regime: :data:`refimpl.validate.TRANSFER_BASE` with |u| = 1; sigma_{p,1}
from 0.5 to 3 at d = 600, and d from 300 to 4800 at sigma_p = 1. Tests: a
monotone decrease of the gain in each variable, seed by seed
(:func:`refimpl.validate.trend`: per-seed Spearman rho, Page's L test,
one-sided, level 0.01; both must hold). Any missing gain value fails the
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

NAME = "gain_noise_dim"
CLAIM = "the gain err_scratch - err_transfer shrinks as the upstream noise sigma_p,1 or the dimension d grows"
SOURCE = "paper"
METRICS = ["gain", "err_transfer", "err_scratch", "err_up"]


def decide(sigmas, gain_sigma, ds, gain_d):
    """The verdict from the measured gains of the two panels (pure: no files,
    no sweeps).

    Parameters
    ----------
    sigmas, ds : sequence of float, shapes (k1,), (k2,)
        The values of sigma_p,1 and of d (each >= 3 distinct).
    gain_sigma, gain_d : arrays of shape (k1, seeds), (k2, seeds)
        err_scratch - err_transfer per point and seed (NaN: missing).

    Returns
    -------
    dict
        ``verdict`` ("PASS" when both one-sided Page trend tests of a decrease
        have rho < 0 and p < SIGNIFICANCE, and no value is missing; else
        "FAIL"), ``verdict_tests`` (the same without the missing-value rule,
        what ``gain_noise_dim.json`` records), ``trend_sigma``, ``trend_d``,
        ``missing_sigma``, ``missing_d`` and ``missing`` (their sum).
    """
    t_sigma = S.trend(sigmas, gain_sigma, "less")
    t_d = S.trend(ds, gain_d, "less")
    ok = all(t["rho"] < 0 and t["p"] < SIGNIFICANCE for t in (t_sigma, t_d))
    m_sigma, m_d = S.n_missing(gain_sigma), S.n_missing(gain_d)
    tests = "PASS" if ok else "FAIL"
    return {"verdict": "FAIL" if m_sigma + m_d else tests, "verdict_tests": tests,
            "trend_sigma": t_sigma, "trend_d": t_d, "missing_sigma": m_sigma, "missing_d": m_d,
            "missing": m_sigma + m_d}


def _panel(out, folder, base, field, values, reps, jobs, label):
    """Sweep one variable; its CSV, figure and table (the trend comes from :func:`decide`)."""
    grid = [base.replace(**{field: v}) for v in values]
    sw = run_sweep(grid, replicates=reps, jobs=jobs, cache=R.cache_dir(out),
                   label=f"{NAME} {field}", salt=NAME, metrics=METRICS)
    metrics = METRICS
    header = [field] + [h for m in metrics for h in (m, m + "_se")] + ["gamma_inh"]
    rows = [[v] + [x for m in metrics for x in (sw.mean(m)[i], sw.se(m)[i])]
            + [indicators(grid[i])["gamma_inh"]] for i, v in enumerate(values)]
    files.write_csv(folder / f"gain_vs_{field}.csv", header, rows)
    figs = F.line_figure(folder / f"gain_vs_{field}.png", values,
                         {m: (sw.mean(m), sw.se(m)) for m in metrics},
                         label, "clean test error / gain",
                         f"gain vs {label} (|u| = {base.u_norm:g}; mean ± se, {reps} seeds)",
                         hline=0.0, xlog=(field == "d"))
    table = R.markdown_table([label, "gain", "err_transfer", "err_scratch", "upstream error", "Gamma_inh"],
                             [[f"{r[0]:g}"] + [R.fmt_mean_se(r[1 + 2 * k], r[2 + 2 * k])
                                               for k in range(len(metrics))] + [r[-1]] for r in rows])
    return {"field": field, "values": values, "rows": rows, "header": header,
            "figs": figs, "table": table, "per_seed_gain": sw.values("gain")}


def run(out, quick=False, jobs=1):
    folder = R.claim_folder(out, NAME)
    reps = 3 if quick else 20
    base = transfer_base(quick, u_norm=1.0)
    sig = [0.5, 1.0, 2.0] if quick else [0.5, 1.0, 1.5, 2.0, 3.0]
    ds = [60, 120, 240] if quick else [300, 600, 1200, 2400, 4800]
    a = _panel(out, folder, base, "sigma_p_up", sig, reps, jobs, "sigma_p,1 (upstream noise)")
    b = _panel(out, folder, base, "d", ds, reps, jobs, "d (dimension)")
    dec = decide(sig, a["per_seed_gain"], ds, b["per_seed_gain"])
    a.update(trend=dec["trend_sigma"], missing=dec["missing_sigma"])
    b.update(trend=dec["trend_d"], missing=dec["missing_d"])
    statistic = (f"gain against sigma_p,1: {R.fmt_trend(a['trend'])}; against d: "
                 f"{R.fmt_trend(b['trend'])}; one-sided (decrease), {reps} seeds per point")
    files.write_json(folder / "gain_noise_dim.json", {
        "claim": CLAIM, "verdict": dec["verdict_tests"], "statistic": statistic,
        "replicates": reps, "base_config": base.to_dict(), "n_missing": dec["missing"],
        "panels": [{k: x[k] for k in ("field", "values", "trend", "missing", "per_seed_gain")}
                   | {"table": [dict(zip(x["header"], r)) for r in x["rows"]]} for x in (a, b)]})
    body = "\n\n".join([
        f"Regime: m = {base.m}, N_1 = {base.n_up}, N_2 = {base.n_down}, |u| = {base.u_norm:g}, "
        f"|v_1| = |v_2| = {base.v_up_norm:g}, sigma_p,2 = {base.sigma_p_down:g}, p_2 = {base.flip_down:g}, "
        f"alpha = {base.alpha:g}, {base.steps_down} GD steps per stage; the upstream-noise panel at "
        f"d = {base.d}, the dimension panel at sigma_p = 1 (d changes both tasks). Tests: a "
        f"monotone decrease of the gain in each variable seed by seed (per-seed Spearman rho, "
        f"Page's L test, one-sided, level {SIGNIFICANCE}).",
        "**Gain against the upstream noise sigma_p,1**", a["table"],
        "**Gain against the dimension d**", b["table"],
        R.figure_note(a["figs"] + b["figs"])])
    return R.result(NAME, CLAIM, dec["verdict"], statistic, body, source=SOURCE,
                    missing=dec["missing"])
