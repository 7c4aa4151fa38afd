"""coefficients: the signal-learning and noise-memorisation coefficients step
by step, the exactness of the decomposition, and the stage-1 ratio
(docs/model.md §s 4 and 7).

1. One small run, every GD step kept (d = 150, m = 3, N_1 = 30, N_2 = 8, |u| = 2,
   |v_1| = |v_2| = 1, sigma_p = 1, p_1 = 0, p_2 = 0.1, alpha = 0.5, 80 steps
   per stage): ``coefficients_<stage>.csv`` with columns step, j (+1/-1), r,
   i, coefficient (gamma: i is the signal index s; rho_bar, rho_under: i is
   the training sample), value — the reference for a framework-based
   implementation (issue 4's cross-check).
2. The decomposition checks on 10 seeds at the full transfer size of
   :data:`refimpl.validate.TRANSFER_BASE` (21 snapshots per stage): the
   reconstruction of W from the coefficients and the independent projection
   must agree with GD to 1e-8 (relative), and every invariant that applies
   (lambda = 0: rho-bar >= 0 nondecreasing, rho-underline <= 0
   nonincreasing; with clean labels, gamma nondecreasing) must hold.
3. Stage-1 ratio: one task, eta = 0.1, 5 GD steps (the loss derivative is
   still about -1/2), over N in {20, 40, 80, 160} and |mu| in {0.5, 1, 2, 4}
   at d = 800, 10 seeds each: the ratio mean gamma / mean rho-bar against
   n|mu|^2/(sigma_p^2 d). Test: least-squares slope of log(ratio) on
   log(n|mu|^2/(sigma_p^2 d)) over all seeds, with its 95% t confidence
   interval; the theory predicts slope 1. Equivalence rule: the whole
   interval must lie within 1 +- 0.05 (RATIO_MARGIN). Note: over these first
   steps the loss derivative is about -1/2 for every sample, so the
   recursions of docs/model.md § 4 give gamma ~ t eta |mu|^2 / (2m) and
   rho-bar ~ t eta sigma_p^2 d / (2 n m) (times the fraction of active
   ReLUs) almost algebraically: the ratio is a check that the implemented
   recursions have the right scaling, not an independent test of the
   theory's long-run dynamics.

Verdict: PASS when the checks of 2 hold on every seed and stage (every
value measured: a missing one fails) and the interval of 3 lies within
1 +- 0.05.
"""

import numpy as np
import scipy.stats

from .. import files
from ..config import Config
from ..decomposition import J, own_entries
from ..lab import figures as F
from ..lab import report as R
from ..lab import stats as S
from ..lab.protocol import Protocol
from ..lab.sweep import run_sweep
from ..transfer import STAGES, run_experiment
from ._base import TRANSFER_BASE, transfer_base

NAME = "coefficients"
CLAIM = (
    "the tracked coefficients reproduce GD exactly, obey the section-4 invariants, and "
    "gamma / rho-bar in stage 1 scales as n|mu|^2/(sigma_p^2 d) (log-log slope within "
    "1 +- 0.05, whole 95% CI)"
)
SOURCE = "framework"
TOL = 1e-8
RATIO_MARGIN = 0.05
"""Equivalence margin of the stage-1 slope (theory 1)."""
CHECKS = ("reconstruction", "projection", "invariants_applicable", "invariants_broken")
"""The per-seed numbers of the decomposition checks, per stage."""


REPS, QUICK_REPS = 10, 2


def _protocol(quick):
    return Protocol(
        claim=NAME,
        grid={
            "steps_run": _steps_config(quick).seed_fields(),
            "checks": transfer_base(quick, snapshots=21).seed_fields(),
            "stage1_ratio": {
                "base": _ratio_grid(quick)[0].seed_fields(),
                "n": sorted({c.n_up for c in _ratio_grid(quick)}),
                "mu": sorted({c.u_norm for c in _ratio_grid(quick)}),
            },
        },
        seeds=QUICK_REPS if quick else REPS,
        statistic=(
            "largest relative discrepancy of the reconstruction and of the projection "
            "against GD, invariant counts, per stage and seed; least-squares slope of "
            "log(mean gamma / mean rho-bar) on log(n|mu|^2/(sigma_p^2 d)) over every "
            "seed, with its 95% t interval"
        ),
        pass_rule=(
            f"every discrepancy <= {TOL:g} and no invariant broken on every seed and "
            f"stage; the whole slope interval within 1 +- {RATIO_MARGIN:g}; no missing "
            "value"
        ),
        fixed="2026-11-28 (before the first full report; unchanged since)",
        extra={"salt": NAME, "pairing": "none"},
    )


DISCLOSURES = []
"""No protocol change after a full run (the audit found none, §3.1)."""


def _steps_config(quick):
    c = dict(
        TRANSFER_BASE,
        d=150,
        m=3,
        n_up=30,
        n_down=8,
        u_norm=2.0,
        steps_up=80,
        steps_down=80,
        snapshots=81,
        alpha=0.5,
        flip_up=0.0,
        flip_down=0.1,
        n_test=5000,
        seed=20250926,
    )
    if quick:
        c.update(d=60, n_up=12, n_down=6, steps_up=20, steps_down=20, snapshots=21, n_test=1000)
    return Config.from_dict(c)


def _write_steps(folder, quick):
    cfg = _steps_config(quick)
    exp = run_experiment(cfg)
    step_files = {}
    for s in STAGES:
        st = exp.stages[s]
        rows = []
        K, _, m, n_signals = st.gamma.shape
        n = st.rho_bar.shape[-1]
        for k in range(K):
            step = int(st.steps[k])
            for jj, j in enumerate(J.astype(int)):  # j = +1, -1: axis 0 of W
                for r in range(m):
                    for si in range(n_signals):
                        rows.append([step, int(j), r, si, "gamma", float(st.gamma[k, jj, r, si])])
                    for i in range(n):
                        rows.append([step, int(j), r, i, "rho_bar", float(st.rho_bar[k, jj, r, i])])
                    for i in range(n):
                        rows.append(
                            [step, int(j), r, i, "rho_under", float(st.rho_under[k, jj, r, i])]
                        )
        step_files[s] = files.write_csv(
            folder / f"coefficients_{s}.csv", ["step", "j", "r", "i", "coefficient", "value"], rows
        )
    files.write_json(
        folder / "coefficients_config.json",
        {
            "config": cfg.to_dict(),
            "note": "the run behind coefficients_<stage>.csv; "
            "every GD step is a row group; j = +1/-1 is axis 0 of W (docs/model.md § 1)",
            "test_error": {s: exp.test_error(s) for s in STAGES},
        },
    )
    return exp, step_files


def _figure_steps(path, exp):
    if not F.available():
        return []
    fig, axes = F.subplots(1, 3, figsize=(12, 3.6))
    for ax, s in zip(axes, STAGES):
        st = exp.stages[s]
        t = st.steps
        g = st.gamma.sum(axis=-1)  # (K, 2, m)
        rb = np.where(own_entries(st.task.y), st.rho_bar, np.nan)  # y_i = j, docs/model.md §4
        ax.plot(t, g.reshape(len(t), -1).mean(axis=1), "C0-", label="mean gamma")
        ax.plot(t, g.reshape(len(t), -1).max(axis=1), "C0:", label="max gamma")
        ax.plot(
            t, np.nanmean(rb.reshape(len(t), -1), axis=1), "C1-", label="mean rho-bar (y_i = j)"
        )
        ax.plot(t, np.nanmax(rb.reshape(len(t), -1), axis=1), "C1:", label="max rho-bar")
        ax.plot(t, st.rho_under.reshape(len(t), -1).min(axis=1), "C2:", label="min rho-under")
        ax.set_title(f"stage {s}", fontsize=10)
        ax.set_xlabel("GD step")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("coefficient")
    axes[0].legend(fontsize=7)
    return [F.save(fig, path, dpi=90)]


def _ratio_grid(quick):
    ns = [10, 20] if quick else [20, 40, 80, 160]
    mus = [1.0, 2.0] if quick else [0.5, 1.0, 2.0, 4.0]
    base = dict(
        d=800,
        m=10,
        n_down=1,
        v_up_norm=0.0,
        v_down_norm=0.0,
        sigma_p=1.0,
        flip=0.0,
        eta=0.1,
        sigma_0=0.01,
        steps_up=5,
        steps_down=0,
        snapshots=2,
        n_test=100,
        epsilon=0.0,
        weight_decay_up=0.0,
        layout="joint",
    )
    if quick:
        base.update(d=200, m=4)
    return [Config.from_dict({**base, "n_up": n, "u_norm": mu}) for n in ns for mu in mus]


PROTOCOL = _protocol(False)
"""The full-size protocol, declared before the run."""
QUICK_PROTOCOL = _protocol(True)


def decide(checks, theory, gamma, rho):
    """The verdict from the measured checks and stage-1 coefficients (pure:
    no files, no sweeps).

    Parameters
    ----------
    checks : dict
        stage -> {name -> array of shape (seeds,)} for every name of
        :data:`CHECKS`: the largest relative discrepancies of the
        reconstruction and of the projection, and the counts of invariant
        checks that applied and that broke (NaN: missing).
    theory : array of shape (cells,)
        n|mu|^2/(sigma_p^2 d) per cell of the stage-1 grid.
    gamma, rho : arrays of shape (cells, seeds)
        Mean gamma and mean rho-bar after stage 1, per cell and seed.

    Returns
    -------
    dict
        ``verdict`` ("PASS" when every check holds on every seed and stage,
        every check value measured, and the whole 95% t interval of the
        least-squares slope of log(gamma/rho) on log(theory), over every
        seed, lies within 1 +- RATIO_MARGIN, and no value is missing; else
        "FAIL"), ``verdict_tests`` (without the missing-value rule for the
        ratio, what ``coefficients.json`` records; a missing check value
        fails the checks themselves), ``missing`` (missing check values plus
        missing or non-positive ratios, left out of the fit),
        ``missing_checks``, ``missing_ratio``, ``worst`` (stage -> the
        largest discrepancies and the summed invariant counts),
        ``ok_exact``, ``ratio`` (gamma / rho), ``fit`` (``slope``,
        ``intercept``, ``stderr``, ``r``, ``n_points``), ``ci`` and
        ``ok_ratio``.
    """
    # every value counts: a missing (non-finite) discrepancy is not a pass
    missing_checks = S.n_missing(*[np.asarray(checks[s][k]) for s in checks for k in CHECKS])
    worst = {
        s: {
            "reconstruction": float(np.max(c["reconstruction"])),
            "projection": float(np.max(c["projection"])),
            "invariants_applicable": int(np.nan_to_num(c["invariants_applicable"]).sum()),
            "invariants_broken": int(np.nan_to_num(c["invariants_broken"]).sum()),
        }
        for s, c in checks.items()
    }
    ok_exact = missing_checks == 0 and all(
        w["reconstruction"] <= TOL and w["projection"] <= TOL and w["invariants_broken"] == 0
        for w in worst.values()
    )
    reps = np.shape(gamma)[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        measured = np.asarray(gamma) / np.asarray(rho)  # (cells, reps)
        y_all = np.log(measured.ravel())
    x_all = np.log(np.repeat(theory, reps))
    finite = np.isfinite(y_all)
    missing_ratio = int(np.sum(~finite))  # a missing or non-positive ratio is not measured
    x, y = x_all[finite], y_all[finite]
    fit = scipy.stats.linregress(x, y)
    tq = scipy.stats.t.ppf(0.975, len(x) - 2)
    ci = (fit.slope - tq * fit.stderr, fit.slope + tq * fit.stderr)
    ok_ratio = S.equivalent(ci, 1.0, RATIO_MARGIN)  # whole CI within 1 +- margin
    missing = missing_checks + missing_ratio
    tests = "PASS" if ok_exact and ok_ratio else "FAIL"
    return {
        "verdict": "FAIL" if missing else tests,
        "verdict_tests": tests,
        "missing": missing,
        "missing_checks": missing_checks,
        "missing_ratio": missing_ratio,
        "worst": worst,
        "ok_exact": ok_exact,
        "ratio": measured,
        "ci": ci,
        "ok_ratio": ok_ratio,
        "fit": {
            "slope": fit.slope,
            "intercept": fit.intercept,
            "stderr": fit.stderr,
            "r": fit.rvalue,
            "n_points": len(x),
        },
    }


def _figure_ratio(path, theory, measured, fit, ci, reps):
    if not F.available():
        return []
    fig, ax = F.subplots(figsize=(5.6, 4.4))
    ax.errorbar(
        theory,
        measured.mean(axis=1),
        yerr=measured.std(axis=1, ddof=1) / np.sqrt(reps),
        fmt="o",
        ms=4,
        capsize=3,
        label=f"measured ({reps} seeds)",
    )
    tt = np.geomspace(theory.min(), theory.max(), 50)
    ax.plot(
        tt,
        np.exp(fit["intercept"]) * tt ** fit["slope"],
        "C1-",
        label=f"fit: slope {fit['slope']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]",
    )
    ax.plot(tt, tt, "k--", lw=0.8, label="ratio = n|mu|^2/(sigma_p^2 d)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("n |mu|^2 / (sigma_p^2 d)")
    ax.set_ylabel("mean gamma / mean rho-bar (stage 1)")
    ax.set_title("stage-1 ratio of signal learning to noise memorisation", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return [F.save(fig, path, dpi=100)]


def _statistic(dec):
    worst, fit, ci = dec["worst"], dec["fit"], dec["ci"]
    rec = max(w["reconstruction"] for w in worst.values())
    proj = max(w["projection"] for w in worst.values())
    return (
        f"max relative discrepancy: reconstruction {rec:.1e}, projection {proj:.1e} "
        f"(tolerance {TOL:g}); invariants broken: "
        f"{sum(w['invariants_broken'] for w in worst.values())}; stage-1 slope of "
        f"log(gamma/rho-bar) on log(n|mu|^2/(sigma_p^2 d)) = {fit['slope']:.3f}, 95% CI "
        f"[{ci[0]:.3f}, {ci[1]:.3f}] (theory 1 ± {RATIO_MARGIN:g}; near-algebraic over 5 steps)"
    )


def _body(quick, dec, step_files, chk_base, grid, rows, reps, figs):
    c = _steps_config(quick)
    fit = dec["fit"]
    checks = R.markdown_table(
        ["stage", "max reconstruction", "max projection", "invariant checks", "broken"],
        [
            [
                s,
                f"{w['reconstruction']:.1e}",
                f"{w['projection']:.1e}",
                str(w["invariants_applicable"]),
                str(w["invariants_broken"])
                + (f" ({', '.join(w['broken'])})" if w["broken"] else ""),
            ]
            for s, w in dec["worst"].items()
        ],
    )
    ratio = R.markdown_table(
        ["n", "|mu|", "n|mu|^2/(sigma_p^2 d)", "measured gamma/rho-bar"],
        [[str(r[0]), f"{r[1]:g}", r[3], R.fmt_mean_se(r[4], r[5], 3)] for r in rows],
    )
    return "\n\n".join(
        [
            f"Step-by-step coefficients (every GD step; d = {c.d}, m = {c.m}, N_1 = {c.n_up}, "
            f"N_2 = {c.n_down}, {c.steps_up} steps per stage, seed {c.seed}): "
            + ", ".join(f"`{NAME}/{p.name}`" for p in step_files.values())
            + " (columns step, j, r, i, "
            "coefficient, value).",
            f"Decomposition checks over {reps} seeds at d = {chk_base.d}, m = {chk_base.m}, "
            f"N_1 = {chk_base.n_up}, N_2 = {chk_base.n_down}, 21 snapshots per stage "
            f"({'all hold' if dec['ok_exact'] else 'NOT all hold'}):",
            checks,
            f"Stage-1 ratio (eta = {grid[0].eta:g}, {grid[0].steps_up} steps, d = {grid[0].d}, "
            f"m = {grid[0].m}; {reps} seeds per cell; intercept exp({fit['intercept']:.3f}) = "
            f"{np.exp(fit['intercept']):.3f}; the whole slope CI {'lies' if dec['ok_ratio'] else 'does NOT lie'} "
            f"within 1 ± {RATIO_MARGIN:g}, the equivalence rule):",
            ratio,
            "Note: over these 5 steps the loss derivative is still about -1/2 for every sample, so "
            "the recursions of docs/model.md § 4 make gamma grow by about eta |mu|^2/(2m) and "
            "rho-bar by about eta sigma_p^2 d/(2 n m) per step (times the fraction of active ReLUs): "
            "the ratio n|mu|^2/(sigma_p^2 d) follows almost algebraically. This part checks that the "
            "implemented recursions scale right; it is not independent evidence for the theory's "
            "long-run dynamics.",
            R.figure_note(figs),
        ]
    )


def run(out, quick=False, jobs=1):
    folder = R.claim_folder(out, NAME)
    reps = QUICK_REPS if quick else REPS
    exp, step_files = _write_steps(folder, quick)
    figs = _figure_steps(folder / "coefficients_steps.png", exp)
    # 2. exactness on many seeds
    chk_base = transfer_base(quick, snapshots=21)
    chk = run_sweep(
        [chk_base],
        measure="checks",
        replicates=reps,
        jobs=jobs,
        cache=R.cache_dir(out),
        label=f"{NAME} checks",
        salt=NAME,
        metrics=[f"{s}_{k}" for s in STAGES for k in CHECKS] + [f"{s}_broken" for s in STAGES],
    )
    # 3. stage-1 ratio
    grid = _ratio_grid(quick)
    rs = run_sweep(
        grid,
        measure="single",
        replicates=reps,
        jobs=jobs,
        cache=R.cache_dir(out),
        label=f"{NAME} stage-1 ratio",
        salt=NAME,
        metrics=("gamma_mean", "rho_mean"),
    )
    theory = np.array(
        [c.n_up * c.u_norm**2 / (c.sigma_p_up**2 * c.d) for c in grid]
    )  # docs/model.md §7
    dec = decide(
        {s: {k: chk.values(f"{s}_{k}") for k in CHECKS} for s in STAGES},
        theory,
        rs.values("gamma_mean"),
        rs.values("rho_mean"),
    )
    worst, measured, fit, ci = dec["worst"], dec["ratio"], dec["fit"], dec["ci"]
    for s in STAGES:  # which invariants broke, by name
        worst[s]["broken"] = sorted({r[f"{s}_broken"] for r in chk.results[0] if r[f"{s}_broken"]})
    statistic = _statistic(dec)
    rows = [
        [c.n_up, c.u_norm, c.d, th, measured[i].mean(), measured[i].std(ddof=1) / np.sqrt(reps)]
        for i, (c, th) in enumerate(zip(grid, theory))
    ]
    header = ["n", "mu_norm", "d", "theory_ratio", "measured_ratio", "measured_ratio_se"]
    files.write_csv(folder / "stage1_ratio.csv", header, rows)
    figs += _figure_ratio(folder / "stage1_ratio.png", theory, measured, fit, ci, reps)
    body = _body(quick, dec, step_files, chk_base, grid, rows, reps, figs)
    protocol = QUICK_PROTOCOL if quick else PROTOCOL
    res = R.result(
        NAME,
        CLAIM,
        dec["verdict"],
        statistic,
        body,
        source=SOURCE,
        missing=dec["missing"],
        protocol=protocol,
        disclosures=DISCLOSURES,
    )
    files.write_json(
        folder / "coefficients.json",
        {
            "claim": CLAIM,
            "verdict": res["verdict"],
            "verdict_tests": dec["verdict_tests"],
            "statistic": res["statistic"],
            "replicates": reps,
            "protocol": protocol.to_dict(),
            "protocol_hash": protocol.hash,
            "disclosures": [],
            "checks": worst,
            "checks_config": chk_base.to_dict(),
            "tolerance": TOL,
            "n_missing": dec["missing"],
            "ratio_margin": RATIO_MARGIN,
            "stage1_fit": {
                "slope": fit["slope"],
                "intercept": fit["intercept"],
                "ci95": ci,
                "r": fit["r"],
                "n_points": fit["n_points"],
            },
            "stage1_table": [dict(zip(header, r)) for r in rows],
            "stage1_config": grid[0].to_dict(),
            "step_files": {s: str(p.name) for s, p in step_files.items()},
        },
    )
    return res
