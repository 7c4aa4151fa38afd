"""gain_noise_dim: the transfer gain against the upstream noise level
sigma_{p,1} and against the dimension d (MODEL.md section 8).

Regime: :data:`refimpl.validate.TRANSFER_BASE` with |u| = 1; sigma_{p,1}
from 0.5 to 3 at d = 600, and d from 300 to 4800 at sigma_p = 1. Tests: a
monotone decrease of the gain in each variable, seed by seed
(:func:`refimpl.validate.trend`: per-seed Spearman rho, Page's L test,
one-sided, level 0.01; both must hold). Any missing gain value fails the
verdict.
"""
import sys

import numpy as np

from refimpl import validate as V
from refimpl.sweep import run_sweep
from refimpl.theory import indicators

NAME = "gain_noise_dim"
CLAIM = "the gain err_scratch - err_transfer shrinks as the upstream noise sigma_p,1 or the dimension d grows"
ALPHA_LEVEL = 0.01
METRICS = ["gain", "err_transfer", "err_scratch", "err_up"]


def _panel(out, folder, base, field, values, reps, jobs, label):
    grid = [base.replace(**{field: v}) for v in values]
    sw = run_sweep(grid, replicates=reps, jobs=jobs, cache=V.cache_dir(out),
                   label=f"{NAME} {field}", salt=NAME, metrics=METRICS)
    tr = V.trend(values, sw.values("gain"), "less")
    rho, p = tr["rho"], tr["p"]
    metrics = METRICS
    header = [field] + [h for m in metrics for h in (m, m + "_se")] + ["gamma_inh"]
    rows = [[v] + [x for m in metrics for x in (sw.mean(m)[i], sw.se(m)[i])]
            + [indicators(grid[i])["gamma_inh"]] for i, v in enumerate(values)]
    V.write_csv(folder / f"gain_vs_{field}.csv", header, rows)
    figs = V.line_figure(folder / f"gain_vs_{field}.png", values,
                         {m: (sw.mean(m), sw.se(m)) for m in metrics},
                         label, "clean test error / gain",
                         f"gain vs {label} (|u| = {base.u_norm:g}; mean ± se, {reps} seeds)",
                         hline=0.0, xlog=(field == "d"))
    table = V.markdown_table([label, "gain", "err_transfer", "err_scratch", "upstream error", "Gamma_inh"],
                             [[f"{r[0]:g}"] + [V.fmt_mean_se(r[1 + 2 * k], r[2 + 2 * k])
                                               for k in range(len(metrics))] + [r[-1]] for r in rows])
    return {"field": field, "values": values, "rho": rho, "p": p, "trend": tr,
            "missing": V.n_missing(sw.values("gain")), "rows": rows, "header": header,
            "figs": figs, "table": table, "per_seed_gain": sw.values("gain")}


def run(out, quick=False, jobs=1):
    folder = V.script_out(out, NAME)
    reps = 3 if quick else 20
    base = V.transfer_base(quick, u_norm=1.0)
    sig = [0.5, 1.0, 2.0] if quick else [0.5, 1.0, 1.5, 2.0, 3.0]
    ds = [60, 120, 240] if quick else [300, 600, 1200, 2400, 4800]
    a = _panel(out, folder, base, "sigma_p_up", sig, reps, jobs, "sigma_p,1 (upstream noise)")
    b = _panel(out, folder, base, "d", ds, reps, jobs, "d (dimension)")
    ok = all(x["rho"] < 0 and x["p"] < ALPHA_LEVEL for x in (a, b))
    verdict = "PASS" if ok else "FAIL"
    statistic = (f"gain against sigma_p,1: {V.fmt_trend(a['trend'])}; against d: "
                 f"{V.fmt_trend(b['trend'])}; one-sided (decrease), {reps} seeds per point")
    V.write_json(folder / "gain_noise_dim.json", {
        "claim": CLAIM, "verdict": verdict, "statistic": statistic, "replicates": reps,
        "base_config": base.to_dict(),
        "n_missing": a["missing"] + b["missing"],
        "panels": [{k: x[k] for k in ("field", "values", "trend", "missing", "per_seed_gain")}
                   | {"table": [dict(zip(x["header"], r)) for r in x["rows"]]} for x in (a, b)]})
    body = "\n\n".join([
        f"Regime: m = {base.m}, N_1 = {base.n_up}, N_2 = {base.n_down}, |u| = {base.u_norm:g}, "
        f"|v_1| = |v_2| = {base.v_up_norm:g}, sigma_p,2 = {base.sigma_p_down:g}, p_2 = {base.flip_down:g}, "
        f"alpha = {base.alpha:g}, {base.steps_down} GD steps per stage; the upstream-noise panel at "
        f"d = {base.d}, the dimension panel at sigma_p = 1 (d changes both tasks). Tests: a "
        f"monotone decrease of the gain in each variable seed by seed (per-seed Spearman rho, "
        f"Page's L test, one-sided, level {ALPHA_LEVEL}).",
        "**Gain against the upstream noise sigma_p,1**", a["table"],
        "**Gain against the dimension d**", b["table"],
        V.figure_note(a["figs"] + b["figs"])])
    return V.result(NAME, CLAIM, verdict, statistic, body, missing=a["missing"] + b["missing"])


if __name__ == "__main__":
    sys.exit(V.script_main(sys.modules[__name__]))
