"""The figures and tables of the claim phase_single (a helper, not a claim): the
noisy-error heatmap of one panel with its fitted and theoretical boundaries
(docs/model.md §7), the boundary exponents against the step size, the eta sweep's
table and reading, and the two CSVs."""

import numpy as np

from ..lab import figures as F
from ..lab import stats as S
from ..lab.claim import Table


def _grid_position(mu, mus):
    """Fractional column of each |mu| on the heatmap's log |mu| axis (NaN outside)."""
    lm = np.log(mus)
    return np.interp(np.log(mu), lm, np.arange(len(lm)), left=np.nan, right=np.nan)


def _annotate(ax, mean):
    for i in range(mean.shape[0]):
        for j in range(mean.shape[1]):
            color = "k" if mean[i, j] > 0.33 else "w"
            text = f"{mean[i, j]:.2f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color=color)


def draw_heatmap(path, panel, title, level, flip):
    """The mean noisy test error of one panel over (|mu|, x).

    ``panel``: ``field`` ("d" or "n_up"), ``xs``, ``mus``, ``noisy`` (x, mu,
    seeds), ``bounds`` (|mu|* per row, where the mean clean error crosses
    ``level``); the theory's line |mu|* ~ x^(+-1/4) goes through the middle
    row's boundary. ``flip``: the label noise p (the colour scale's floor)."""
    fig, ax = F.subplots(figsize=(6.4, 4.4))
    xs, mus, bounds = panel["xs"], panel["mus"], np.asarray(panel["bounds"], float)
    mean = np.asarray(panel["noisy"], float).mean(axis=2)
    im = ax.imshow(mean, origin="lower", aspect="auto", cmap="viridis", vmin=flip, vmax=0.5)
    ax.set_xticks(range(len(mus)), [f"{m:.2g}" for m in mus])
    ax.set_yticks(range(len(xs)), [str(x) for x in xs])
    ax.set_xlabel("|mu| (signal strength)")
    ax.set_ylabel("d" if panel["field"] == "d" else "n")
    _annotate(ax, mean)
    rows = range(len(xs))
    label = f"fitted boundary (clean err = {level})"
    ax.plot(_grid_position(bounds, mus), rows, "r-o", ms=3, label=label)
    k = len(xs) // 2
    if np.isfinite(bounds[k]):
        x = np.asarray(xs, float)
        expo = 0.25 if panel["field"] == "d" else -0.25
        theory = bounds[k] * (x / x[k]) ** expo
        label = f"theory |mu|* ~ {panel['field']}^{expo:+g}"
        ax.plot(_grid_position(theory, mus), rows, "w--", label=label)
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, label="noisy test error")
    F.save(fig, path, dpi=100)


def draw_eta_sweep(path, sweep, margin):
    """The fitted exponents in d and n with their 95% CIs per step-size rule
    of ``sweep`` (entries with ``c``, ``d`` and ``n`` fits), theory +-1/4 with
    a band of +-``margin``."""
    fig, ax = F.subplots(figsize=(7.2, 4.2))
    x = np.arange(len(sweep))
    for k, (panel, theory, color) in enumerate((("d", 0.25, "C0"), ("n", -0.25, "C1"))):
        slope = np.array([e[panel]["slope"] for e in sweep])
        lo = np.array([e[panel]["ci"][0] for e in sweep])
        hi = np.array([e[panel]["ci"][1] for e in sweep])
        label = f"exponent in {panel} (95% bootstrap CI)"
        yerr = [slope - lo, hi - slope]
        ax.errorbar(
            x + (k - 0.5) * 0.12, slope, yerr=yerr, fmt="o", color=color, capsize=3, label=label
        )
        ax.axhline(theory, color=color, ls="--", lw=0.8)
        ax.axhspan(theory - margin, theory + margin, color=color, alpha=0.12)
    ax.set_xticks(x, [("eta = 1" if e["c"] is None else f"c = {e['c']:g}") for e in sweep])
    ax.set_xlabel("step size eta = c/(sigma_p^2 d) (smaller step to the left), and eta = 1")
    ax.set_ylabel("fitted boundary exponent")
    title = "boundary exponents against the step size (theory +-1/4, band +-margin)"
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    F.save(fig, path, dpi=100)


def boundary_table(panels):
    """The boundary |mu|* of every row of both panels."""
    rows = [
        [P["field"], str(x), b] for P in panels for x, b in zip(P["xs"], P["bounds"], strict=True)
    ]
    return Table(["panel", "value", "boundary |mu|*"], rows)


def fmt_slope(f):
    """``+0.250 [+0.200, +0.300]``: a fitted slope and its 95% CI."""
    return f"{f['slope']:+.3f} [{f['ci'][0]:+.3f}, {f['ci'][1]:+.3f}]"


def fmt_step(e):
    """One step size c of the eta sweep: its exponents and its verdict under the rule."""
    nb = f", {e['no_boundary']} row(s) without a boundary" if e["no_boundary"] else ""
    slopes = f"d {fmt_slope(e['d'])}, n {fmt_slope(e['n'])}"
    return f"c = {e['c']:g}: {slopes} ({e['verdict_under_rule']}{nb})"


def eta_table(sweep, d_fixed):
    """The eta sweep in the report: one row per step-size rule (``d_fixed``: the d of the
    eta column)."""
    header = ["step size", f"eta at d = {d_fixed}", "cap (steps)", "mean steps"]
    header += ["reached epsilon", "exponent in d [95% CI]", "exponent in n [95% CI]"]
    header += ["rows without boundary", "verdict under the rule", "in the verdict"]
    rows = [
        [e["label"], f"{e['eta_at_panel_n']:.4g}", str(e["cap_steps"]), f"{e['mean_steps']:.0f}"]
        + [f"{100 * e['frac_stopped']:.1f}%", fmt_slope(e["d"]), fmt_slope(e["n"])]
        + [str(e["no_boundary"]), e["verdict_under_rule"], "yes" if e["in_verdict"] else "no"]
        for e in sweep
    ]
    return Table(header, rows)


def eta_reading(sweep, one, margin):
    """Where the exponents are within ``margin`` of +-1/4 (whole CI), from the numbers,
    and this run's eta = 1 rerun (``one``, or None)."""

    def where(panel, theory):
        ok = [e["label"] for e in sweep if S.equivalent(e[panel]["ci"], theory, margin)]
        return ", ".join(ok) if ok else "none"

    text = (
        f"Whole 95% CI within +-{margin:g} of the theory: exponent in d (+1/4) at "
        f"{where('d', 0.25)}; exponent in n (-1/4) at {where('n', -0.25)}."
    )
    if one is not None:
        text += (
            f" This run's eta = 1 rerun (the first rule, see the disclosed change): d "
            f"{fmt_slope(one['d'])}, n {fmt_slope(one['n'])}: {one['verdict_under_rule']} "
            "under the rule."
        )
    return text


def cells_csv(panels):
    """The CSV of every cell: mean and standard error of the clean and noisy errors."""
    rows = []
    for P in panels:
        se_err, se_noisy = S.sem(P["err"], axis=2), S.sem(P["noisy"], axis=2)
        for i, x in enumerate(P["xs"]):
            for j, mu in enumerate(P["mus"]):
                rows.append(
                    [P["field"], x, mu, P["indicator"][i, j], P["err"][i, j].mean()]
                    + [se_err[i, j], P["noisy"][i, j].mean(), se_noisy[i, j]]
                    + [P["stopped"][i, j].mean(), P["steps"][i, j].mean()]
                )
    header = ["panel", "x", "mu_norm", "kou_indicator", "clean_error", "clean_error_se"]
    header += ["noisy_error", "noisy_error_se", "frac_reached_epsilon", "mean_steps"]
    return Table(header, rows, name="phase_single", show=False)


def eta_csv(sweep):
    """The CSV of the eta sweep: one row per step-size rule."""
    header = ["rule", "c", "eta_at_panel_n", "cap_steps", "mean_steps", "frac_reached_epsilon"]
    header += ["slope_d", "slope_d_lo", "slope_d_hi", "slope_n", "slope_n_lo", "slope_n_hi"]
    header += ["rows_without_boundary", "verdict_under_rule"]
    rows = [
        [e["label"], "" if e["c"] is None else e["c"], e["eta_at_panel_n"], e["cap_steps"]]
        + [e["mean_steps"], e["frac_stopped"], e["d"]["slope"], *e["d"]["ci"]]
        + [e["n"]["slope"], *e["n"]["ci"], e["no_boundary"], e["verdict_under_rule"]]
        for e in sweep
    ]
    return Table(header, rows, name="phase_eta_sweep", show=False)
