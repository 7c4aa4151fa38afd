"""phase_single: the single-task phase diagram (MODEL.md sections 7 and 8).

One task trained alone (:func:`refimpl.sweep.measure_single`: signal mu = u,
|v| = 0, label noise p = 0.1, sigma_p = 1, m = 10, step size
eta = 200/(sigma_p^2 d), which keeps the theory's condition eta <= O(1/(sigma_p^2 d))
and the same per-step noise memorisation at every d) until the training
loss reaches epsilon = 0.05 (cap 2000 steps). Two heatmaps of the test error:
over (|mu|, d) at n = 50 and over (|mu|, n) at d = 800.

Claims and tests:
- training loss reaches epsilon: the fraction of runs stopped by the epsilon
  rule (must be >= 0.95);
- above the boundary (Kou et al.'s indicator n|mu|^4/(sigma_p^4 d) >= 50) the
  noisy test error approaches p: one-sided t-test over seeds that the mean
  noisy error of those cells is below p + 0.02;
- below it (indicator <= 0.5) the noisy error stays a constant above p:
  one-sided t-test that it exceeds p + 0.1;
- the boundary |mu|^4 ~ sigma_p^4 d / n: for each d (each n) the boundary
  |mu|* is where the mean clean error crosses 0.2 (linear interpolation in
  log |mu|); the slopes of log |mu|* against log d and log n are fitted, with
  95% bootstrap confidence intervals (seeds resampled within each cell, 400
  resamples). The theory predicts +1/4 and -1/4. Equivalence rule: the
  verdict requires each whole interval to lie within its predicted value
  +- 0.05 (MARGIN), so a wide interval from too little data fails instead of
  passing; every row must have a boundary inside the |mu| grid.

Any missing value (a diverged run, or a row without a boundary crossing)
fails the verdict.
"""
import sys

import numpy as np

from refimpl import validate as V
from refimpl.config import Config
from refimpl.sweep import run_sweep

NAME = "phase_single"
CLAIM = ("training loss reaches epsilon; the test error approaches p where n|mu|^4/(sigma_p^4 d) "
         "is large and stays a constant above p where it is small; the boundary follows "
         "|mu|^4 ~ sigma_p^4 d / n (fitted exponents of |mu|* in d and n within +-0.05 of +-1/4, "
         "whole 95% CI)")
ALPHA_LEVEL = 0.01
FLIP = 0.1
LEVEL = 0.2
HIGH, LOW = 50.0, 0.5
ETA_D = 200.0
MARGIN = 0.05
"""Equivalence margin of the boundary exponents (+-1/4): the whole 95% CI
must lie within theory +- MARGIN."""


def _single(quick, **kw):
    values = dict(d=800, m=10, n_up=50, n_down=1, u_norm=1.0, v_up_norm=0.0, v_down_norm=0.0,
                  sigma_p_up=1.0, sigma_p_down=1.0, flip_up=FLIP, flip_down=0.0, eta=1.0,
                  sigma_0=0.01, steps_up=2000, steps_down=0, epsilon=0.05, snapshots=2,
                  n_test=10000, weight_decay_up=0.0, layout="joint", estimator="reduced")
    if quick:
        values.update(m=4, steps_up=400, n_test=2000, d=200, n_up=20)
    values.update(kw)
    # step size eta = ETA_D / (sigma_p^2 d): the theory's step-size condition
    # eta <= O(1/(sigma_p^2 d)) (Kou et al. 2023), the same per-step noise
    # memorisation at every d
    values["eta"] = ETA_D / (values["sigma_p_up"] ** 2 * values["d"])
    return Config.from_dict(values)


def _boundary(mus, err):
    """|mu| where the error curve (decreasing in |mu|) first crosses LEVEL;
    interpolated in log |mu|; NaN if it does not cross."""
    lm = np.log(mus)
    for k in range(len(mus) - 1):
        a, b = err[k], err[k + 1]
        if a >= LEVEL > b:
            return float(np.exp(lm[k] + (a - LEVEL) / (a - b) * (lm[k + 1] - lm[k])))
    return float("nan")


def _slope(xs, mus, errs):
    """Fitted slope of log |mu|* against log x; errs (x, mu) mean errors."""
    bs = np.array([_boundary(mus, e) for e in errs])
    ok = np.isfinite(bs)
    if ok.sum() < 2:
        return float("nan"), bs
    return float(np.polyfit(np.log(np.asarray(xs, float)[ok]), np.log(bs[ok]), 1)[0]), bs


def _panel(out, name, field, xs, mus, reps, jobs, quick, rng):
    grid = [_single(quick, **{field: x, "u_norm": mu}) for x in xs for mu in mus]
    sw = run_sweep(grid, measure="single", replicates=reps, jobs=jobs, cache=V.cache_dir(out),
                   label=f"{NAME} {name}", salt=NAME,
                   metrics=("err", "noisy", "stopped", "steps"))
    shape = (len(xs), len(mus), reps)
    err = sw.values("err").reshape(shape)
    noisy = sw.values("noisy").reshape(shape)
    stopped = sw.values("stopped").reshape(shape)
    steps = sw.values("steps").reshape(shape)
    slope, bounds = _slope(xs, mus, err.mean(axis=2))
    boots = []
    for _ in range(400):
        idx = rng.integers(0, reps, size=shape)
        e = np.take_along_axis(err, idx, axis=2).mean(axis=2)
        s, _ = _slope(xs, mus, e)
        if np.isfinite(s):
            boots.append(s)
    ci = (float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))) if len(boots) > 20 \
        else (float("nan"), float("nan"))
    ind = np.array([[c.n_up * c.u_norm**4 / (c.sigma_p_up**4 * c.d) for c in grid[i * len(mus):(i + 1) * len(mus)]]
                    for i in range(len(xs))])      # Kou et al.'s indicator (MODEL.md section 7)
    return {"field": field, "xs": xs, "mus": mus, "err": err, "noisy": noisy, "stopped": stopped,
            "steps": steps, "slope": slope, "ci": ci, "bounds": bounds, "indicator": ind,
            "n_boot": len(boots)}


def _heatmap(path, P, title, xlabel):
    from refimpl.plotting import available, pyplot, save

    if not available():
        return []
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    mean = P["noisy"].mean(axis=2)
    im = ax.imshow(mean, origin="lower", aspect="auto", cmap="viridis", vmin=FLIP, vmax=0.5)
    ax.set_xticks(range(len(P["mus"])), [f"{m:.2g}" for m in P["mus"]])
    ax.set_yticks(range(len(P["xs"])), [str(x) for x in P["xs"]])
    ax.set_xlabel("|mu| (signal strength)")
    ax.set_ylabel(xlabel)
    for i in range(mean.shape[0]):
        for j in range(mean.shape[1]):
            ax.text(j, i, f"{mean[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="k" if mean[i, j] > 0.33 else "w")
    lm = np.log(P["mus"])
    xb = np.interp(np.log(P["bounds"]), lm, np.arange(len(lm)), left=np.nan, right=np.nan)
    ax.plot(xb, range(len(P["xs"])), "r-o", ms=3, label=f"fitted boundary (clean err = {LEVEL})")
    # theory: |mu|^4 = C d / n through the boundary of the middle row
    k = len(P["xs"]) // 2
    if np.isfinite(P["bounds"][k]):
        x = np.asarray(P["xs"], float)
        expo = 0.25 if P["field"] == "d" else -0.25
        theory = P["bounds"][k] * (x / x[k]) ** expo
        ax.plot(np.interp(np.log(theory), lm, np.arange(len(lm)), left=np.nan, right=np.nan),
                range(len(x)), "w--", label=f"theory |mu|* ~ {P['field']}^{expo:+g}")
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, label="noisy test error")
    return [save(fig, path, dpi=100)]


def run(out, quick=False, jobs=1):
    folder = V.script_out(out, NAME)
    rng = np.random.default_rng(20250926)
    reps = 3 if quick else 10
    if quick:
        mus = [0.7, 1.4, 2.8, 5.6]
        pd = _panel(out, "d", "d", [100, 200, 400], mus, reps, jobs, quick, rng)
        pn = _panel(out, "n", "n_up", [10, 20, 40], mus, reps, jobs, quick, rng)
    else:
        mus = list(np.round(np.geomspace(0.6, 8.0, 9), 3))
        pd = _panel(out, "d", "d", [200, 400, 800, 1600, 3200], mus, reps, jobs, quick, rng)
        pn = _panel(out, "n", "n_up", [12, 25, 50, 100, 200], mus, reps, jobs, quick, rng)
    stopped = np.concatenate([pd["stopped"].ravel(), pn["stopped"].ravel()])
    frac_stopped = float(np.mean(stopped))
    noisy = [np.concatenate([P["noisy"].reshape(-1, reps)]) for P in (pd, pn)]
    inds = np.concatenate([P["indicator"].ravel() for P in (pd, pn)])
    allnoisy = np.concatenate(noisy)                    # (cells, reps)
    hi, lo = inds >= HIGH, inds <= LOW
    hi_seed = allnoisy[hi].mean(axis=0) if hi.any() else np.array([np.nan])
    lo_seed = allnoisy[lo].mean(axis=0) if lo.any() else np.array([np.nan])
    t_hi = V.paired_t(np.full_like(hi_seed, FLIP + 0.02), hi_seed, "greater")
    t_lo = V.paired_t(lo_seed, np.full_like(lo_seed, FLIP + 0.1), "greater")
    ok_loss = frac_stopped >= 0.95
    ok_hi = t_hi["p"] < ALPHA_LEVEL
    ok_lo = t_lo["p"] < ALPHA_LEVEL
    ok_d = V.equivalent(pd["ci"], 0.25, MARGIN)          # whole CI within 1/4 +- MARGIN
    ok_n = V.equivalent(pn["ci"], -0.25, MARGIN)
    no_boundary = int(sum(np.sum(~np.isfinite(P["bounds"])) for P in (pd, pn)))
    missing = V.n_missing(*[P[k] for P in (pd, pn) for k in ("err", "noisy", "stopped")]) \
        + no_boundary
    verdict = "PASS" if all([ok_loss, ok_hi, ok_lo, ok_d, ok_n]) else "FAIL"
    statistic = (f"{100 * frac_stopped:.0f}% of runs reached epsilon; noisy error "
                 f"{hi_seed.mean():.3f} (indicator >= {HIGH:g}, p = {FLIP}) and "
                 f"{lo_seed.mean():.3f} (indicator <= {LOW:g}); boundary slopes "
                 f"d: {pd['slope']:+.3f} [{pd['ci'][0]:+.3f}, {pd['ci'][1]:+.3f}] (theory +0.25 ± {MARGIN:g}), "
                 f"n: {pn['slope']:+.3f} [{pn['ci'][0]:+.3f}, {pn['ci'][1]:+.3f}] (theory -0.25 ± {MARGIN:g})"
                 + (f"; {no_boundary} row(s) without a boundary in the |mu| grid" if no_boundary else ""))
    figs = _heatmap(folder / "phase_mu_d.png", pd, f"noisy test error over (|mu|, d), n = "
                    f"{_single(quick).n_up}, p = {FLIP}", "d")
    figs += _heatmap(folder / "phase_mu_n.png", pn, f"noisy test error over (|mu|, n), d = "
                     f"{_single(quick).d}, p = {FLIP}", "n")
    rows = []
    for P in (pd, pn):
        for i, x in enumerate(P["xs"]):
            for j, mu in enumerate(P["mus"]):
                e, nz = P["err"][i, j], P["noisy"][i, j]
                rows.append([P["field"], x, mu, P["indicator"][i, j], e.mean(),
                             e.std(ddof=1) / np.sqrt(reps), nz.mean(), nz.std(ddof=1) / np.sqrt(reps),
                             P["stopped"][i, j].mean(), P["steps"][i, j].mean()])
    header = ["panel", "x", "mu_norm", "kou_indicator", "clean_error", "clean_error_se",
              "noisy_error", "noisy_error_se", "frac_reached_epsilon", "mean_steps"]
    V.write_csv(folder / "phase_single.csv", header, rows)
    V.write_json(folder / "phase_single.json", {
        "claim": CLAIM, "verdict": verdict, "statistic": statistic, "replicates": reps,
        "frac_reached_epsilon": frac_stopped, "t_above": t_hi, "t_below": t_lo,
        "exponent_margin": MARGIN, "rows_without_boundary": no_boundary, "n_missing": missing,
        "boundary_level_clean_error": LEVEL,
        "panels": {P["field"]: {"xs": P["xs"], "mus": P["mus"], "slope": P["slope"],
                                "ci95": P["ci"], "boundary_mu": P["bounds"],
                                "bootstrap_resamples": P["n_boot"]} for P in (pd, pn)},
        "base_config": _single(quick).to_dict(), "table": [dict(zip(header, r)) for r in rows]})
    bt = V.markdown_table(["panel", "value", "boundary |mu|*"],
                          [[P["field"], str(x), b] for P in (pd, pn) for x, b in zip(P["xs"], P["bounds"])])
    c = _single(quick)
    body = "\n\n".join([
        f"Single task: m = {c.m}, sigma_p = 1, p = {FLIP}, eta = {ETA_D:g}/(sigma_p^2 d), sigma_0 = {c.sigma_0:g}, "
        f"GD until the training loss is <= {c.epsilon:g} (cap {c.steps_up} steps); "
        f"{reps} seeds per cell; (|mu|, d) at n = {c.n_up}, (|mu|, n) at d = {c.d}.",
        f"- loss reaches epsilon: {100 * frac_stopped:.1f}% of {stopped.size} runs "
        f"({'ok' if ok_loss else 'NOT ok'}, needs >= 95%)",
        f"- above the boundary (indicator >= {HIGH:g}, {int(hi.sum())} cells): noisy error "
        f"{hi_seed.mean():.4f} ± {hi_seed.std(ddof=1) / np.sqrt(reps):.4f}; below p + 0.02: "
        f"{V.fmt_p(t_hi['p'])} ({'ok' if ok_hi else 'NOT ok'})",
        f"- below it (indicator <= {LOW:g}, {int(lo.sum())} cells): noisy error "
        f"{lo_seed.mean():.4f} ± {lo_seed.std(ddof=1) / np.sqrt(reps):.4f}; above p + 0.1: "
        f"{V.fmt_p(t_lo['p'])} ({'ok' if ok_lo else 'NOT ok'})",
        f"- boundary exponent (clean error = {LEVEL}): log|mu|* vs log d slope {pd['slope']:+.3f}, "
        f"95% bootstrap CI [{pd['ci'][0]:+.3f}, {pd['ci'][1]:+.3f}] (theory +0.25; the whole CI "
        f"{'lies' if ok_d else 'does NOT lie'} within ±{MARGIN:g} of it); vs log n slope "
        f"{pn['slope']:+.3f}, CI [{pn['ci'][0]:+.3f}, {pn['ci'][1]:+.3f}] (theory -0.25; "
        f"{'within' if ok_n else 'NOT within'} ±{MARGIN:g}). Equivalence rule: a wide interval "
        f"(too little data) fails rather than passes.",
        bt, V.figure_note(figs)])
    return V.result(NAME, CLAIM, verdict, statistic, body, missing=missing)


if __name__ == "__main__":
    sys.exit(V.script_main(sys.modules[__name__]))
