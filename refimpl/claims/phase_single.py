"""phase_single: the single-task phase diagram of the framework (docs/model.md §7 and §8.2).

One task trained alone (the batched :func:`refimpl.lab.measures.measure_single_batched`: p = 0.1,
sigma_p = 1, step size eta = c/(sigma_p^2 d), the theory's condition eta <= O(1/(sigma_p^2 d)))
until the training loss reaches epsilon, over (|mu|, d) at the base n and (|mu|, n) at the base
d. A row's boundary |mu|* is where the mean clean error crosses 0.2; its slopes in log d and
log n, with a seed bootstrap, are tested against +1/4 and -1/4 (|mu|^4 ~ sigma_p^4 d / n) at
every small step size c <= 200 (the 1/4 law is a small-step statement); larger steps and
eta = 1, the first rule, are reported beside them. The design is :data:`PROTOCOL`.
"""

import numpy as np

from ..config import Config
from ..lab import present as P
from ..lab import report as R
from ..lab import stats as S
from ..lab.claim import Figure, Outcome, Protocol, Size
from ..lab.stats import SIGNIFICANCE
from . import _base as B
from . import _phase_single_figures as PF
from ._boundary import BOUNDARY_ERROR, fit

FLIP = 0.1
HIGH = 50.0  # cells above the boundary: Kou et al.'s indicator >= HIGH
LOW = 0.5  # cells below it: indicator <= LOW
ETA_D = 200.0
"""The protocol's base step size eta = ETA_D/(sigma_p^2 d), and the largest c of the verdict:
the rule must hold at every c <= ETA_D of the eta sweep."""
MARGIN = 0.05
"""Equivalence margin of the boundary exponents (+-1/4): the whole 95% CI
must lie within theory +- MARGIN."""
BOOTSTRAP_SEED = 20250926
BOOTSTRAP_RESAMPLES = 400
PANELS = ("d", "n_up")  # the config field each panel sweeps (rows)
METRICS = ("err", "noisy", "stopped", "steps")
BASE = {
    **dict(d=800, m=10, n_up=50, n_down=1, u_norm=1.0, v_up_norm=0.0, v_down_norm=0.0),
    **dict(sigma_p_up=1.0, sigma_p_down=1.0, flip_up=FLIP, flip_down=0.0, eta=1.0),
    **dict(sigma_0=0.01, steps_up=2000, steps_down=0, epsilon=0.05, snapshots=2, n_test=10000),
    **dict(weight_decay_up=0.0, layout="joint", estimator="reduced"),
}
"""The single task at full size; ``steps_up`` is the cap at the protocol's step size."""


def _label(c):
    """The step-size rule of the constant c (None: eta = 1, the first rule)."""
    return "eta = 1" if c is None else f"eta = {c:g}/(sigma_p^2 d)"


VERDICT_RULE = _label(ETA_D)


def _in_verdict(c):
    """Whether the step-size rule c enters the verdict (c <= ETA_D; eta = 1 does not)."""
    return c is not None and c <= ETA_D


def _single(base, eta_d=ETA_D, **kw):
    """One single-task config: ``base`` with the changes ``kw`` at the step size
    eta = eta_d/(sigma_p^2 d) (the theory's step-size condition eta <= O(1/(sigma_p^2 d)),
    Kou et al. 2023: the same per-step noise memorisation at every d), the cap grown as the
    step shrinks below ETA_D; ``eta_d`` None: eta = 1 with the base cap."""
    values = {**base, **kw}
    if eta_d is not None:
        values["eta"] = eta_d / (values["sigma_p_up"] ** 2 * values["d"])
        values["steps_up"] = round(values["steps_up"] * max(1.0, ETA_D / eta_d))
    return Config.from_dict(values)


def _size(seeds, xs, mus, eta_sweep, resamples=BOOTSTRAP_RESAMPLES, **changes):
    """Both panels (rows ``xs[field]``, columns |mu| in ``mus``) at every step-size
    rule c of ``eta_sweep``; ``changes``: the base's changes from :data:`BASE`."""
    base = {**BASE, **changes}
    configs = {
        _label(c): {
            p: [_single(base, c, **{p: x, "u_norm": mu}) for x in xs[p] for mu in mus]
            for p in PANELS
        }
        for c in eta_sweep
    }
    values = dict(base=base, xs=xs, mus=mus, eta_sweep=list(eta_sweep), resamples=resamples)
    return Size(configs, seeds, **values)


PROTOCOL = Protocol(
    name="phase_single",
    claim=(
        "at small step sizes eta = c/(sigma_p^2 d), c <= 200: training loss reaches epsilon; the "
        "test error approaches p where n|mu|^4/(sigma_p^4 d) is large and stays a constant above "
        "p where it is small; the boundary follows |mu|^4 ~ sigma_p^4 d / n (fitted exponents of "
        "|mu|* in d and n within +-0.05 of +-1/4, whole 95% CI, at every such c)"
    ),
    source="framework",
    full=_size(
        32,
        {"d": [200, 400, 800, 1600, 3200], "n_up": [12, 25, 50, 100, 200]},
        [float(x) for x in np.round(np.geomspace(0.6, 8.0, 17), 3)],
        (25.0, 50.0, 100.0, ETA_D, 400.0, 800.0, None),
    ),
    quick=_size(
        3,
        {"d": [100, 200, 400], "n_up": [10, 20, 40]},
        [0.7, 1.4, 2.8, 5.6],
        (100.0, ETA_D, None),
        **dict(m=4, steps_up=400, n_test=2000, d=200, n_up=20),
    ),
    statistic=(
        "share of runs reaching epsilon; one-sided t over seeds of the mean noisy error of the "
        f"cells with indicator >= {HIGH:g} (below p + 0.02) and <= {LOW:g} (above p + 0.1); "
        f"slopes of log|mu|* (clean error {BOUNDARY_ERROR} crossing) on log d and log n with "
        f"{BOOTSTRAP_RESAMPLES}-resample seed bootstrap 95% CIs"
    ),
    pass_rule=(
        f"at every c <= {ETA_D:g} of the eta sweep (an intersection: all must hold): >= 95% "
        f"reach epsilon; both t-tests p < {SIGNIFICANCE}; each whole CI within +-1/4 +- "
        f"{MARGIN:g}; no missing value, no row without a boundary"
    ),
    fixed="2026-12-07 (v3; eta rule 2026-11-28, eta sweep 2026-11-29)",
    salt="phase_single-v3",
    pairing="none: every cell and eta has its own seeds",
    rules={
        "verdict": f"the rule at every step size c <= {ETA_D:g} of the eta sweep; each c's own "
        "seeds; c > 200 and eta = 1 reported beside them",
        "engine": "batched single-task GD in the basis of the distinct patch vectors "
        "(refimpl.batch.run_single_batch; docs/model.md §9), the same draws as the item-by-item "
        "run, its numbers to rounding",
        "boundary": f"|mu|* of a row: where the mean clean error first crosses {BOUNDARY_ERROR} "
        "(from >= to <) along increasing |mu|, interpolated linearly in log |mu|; a row "
        "without a crossing is missing",
        "bootstrap": f"seeds resampled within each cell, {BOOTSTRAP_RESAMPLES} resamples, one "
        f"generator seeded {BOOTSTRAP_SEED} per step size (panel d first); the CI is undefined "
        "with 20 or fewer finite resampled slopes",
        "equivalence": "each whole interval within its predicted value +- the margin, so a "
        "wide interval from too little data fails instead of passing",
    },
    notes={
        "eta sweep": "both panels at eta = c/(sigma_p^2 d) for every c of the size's eta_sweep "
        "and at eta = 1 (the claim's first rule), each step size with its own seeds and the "
        f"verdict's rule applied; the c <= {ETA_D:g} enter the verdict, the others are reported",
        "eta sweep cap": f"the base cap * max(1, {ETA_D:g}/c) steps, so every c has the same "
        "training time eta * T; eta = 1: the base cap",
    },
    disclosures=B.history("phase_single"),
    hash_scheme1="6b60290c66ff",
)


def measure(size, sweep):
    """Both panels at every step-size rule: ``{rule: {panel: {metric: (x, |mu|, seeds)}}}``
    (panel ``d``: rows d at the base n; ``n_up``: rows n at the base d)."""
    out = {}
    for rule, grids in size.configs.items():
        out[rule] = {}
        for p, grid in grids.items():
            sw = sweep(grid, label=f"{p}, {rule}", measure="single_batched", metrics=METRICS)
            shape = (len(size.xs[p]), len(size.mus), size.seeds)
            out[rule][p] = {k: sw.values(k).reshape(shape) for k in METRICS}
    return out


def _panels(size, rule, m):
    """The two panels of one step-size rule: the arrays of ``m[rule]`` with ``field``,
    ``xs``, ``mus`` and Kou et al.'s indicator n|mu|^4/(sigma_p^4 d) per cell (§7)."""
    out = []
    for p in PANELS:
        grid, shape = size.configs[rule][p], (len(size.xs[p]), len(size.mus))
        ind = [c.n_up * c.u_norm**4 / (c.sigma_p_up**4 * c.d) for c in grid]
        arrays = {k: np.asarray(m[rule][p][k], float) for k in METRICS}
        design = {"field": p, "xs": size.xs[p], "mus": size.mus}
        out.append({**design, "indicator": np.reshape(ind, shape), **arrays})
    return out


def _noise_tests(panels):
    """The per-seed mean noisy error over the cells above (indicator >= HIGH) and below
    (<= LOW) the boundary, and the one-sided t-tests: below p + 0.02, above p + 0.1."""
    inds = np.concatenate([P["indicator"].ravel() for P in panels])
    noisy = np.concatenate([P["noisy"].reshape(-1, P["noisy"].shape[-1]) for P in panels])
    hi, lo = inds >= HIGH, inds <= LOW
    hi_seed = noisy[hi].mean(axis=0) if hi.any() else np.array([np.nan])
    lo_seed = noisy[lo].mean(axis=0) if lo.any() else np.array([np.nan])
    return {
        "hi_seed": hi_seed,
        "lo_seed": lo_seed,
        "n_hi": int(hi.sum()),
        "n_lo": int(lo.sum()),
        "t_hi": S.paired_t(np.full_like(hi_seed, FLIP + 0.02), hi_seed, "greater"),
        "t_lo": S.paired_t(lo_seed, np.full_like(lo_seed, FLIP + 0.1), "greater"),
    }


def _rule(panels, resamples):
    """The verdict's rule on the panels (d, n) of one step size: >= 95% of runs reach
    epsilon, both t-tests p < SIGNIFICANCE, each whole bootstrap CI of the boundary slope
    within +-1/4 +- MARGIN, nothing missing (no value, no row without a boundary)."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    fits = {"d": fit(panels[0], rng, resamples), "n": fit(panels[1], rng, resamples)}
    stopped = np.concatenate([P["stopped"].ravel() for P in panels])
    frac_stopped = float(np.mean(stopped))
    noise = _noise_tests(panels)
    ok = {
        "ok_loss": frac_stopped >= 0.95,
        "ok_hi": noise["t_hi"]["p"] < SIGNIFICANCE,
        "ok_lo": noise["t_lo"]["p"] < SIGNIFICANCE,
        "ok_d": S.equivalent(fits["d"]["ci"], 0.25, MARGIN),
        "ok_n": S.equivalent(fits["n"]["ci"], -0.25, MARGIN),
    }
    no_boundary = int(sum(np.sum(~np.isfinite(f["bounds"])) for f in fits.values()))
    measured = [P[k] for P in panels for k in ("err", "noisy", "stopped")]
    missing = S.n_missing(*measured) + no_boundary
    tests = "PASS" if all(ok.values()) else "FAIL"
    head = {"verdict": "FAIL" if missing else tests, "verdict_tests": tests, "missing": missing}
    runs = {"no_boundary": no_boundary, "frac_stopped": frac_stopped, "n_runs": stopped.size}
    return {**head, **runs, **noise, **ok, "fits": fits}


def decide(size, m):
    """The verdict (pure): :func:`_rule` at every step size c <= ETA_D of the eta sweep, all
    of which must PASS; the details of c = ETA_D; the rule at every step size (``eta_sweep``)."""
    done = {_label(c): _rule(_panels(size, _label(c), m), size.resamples) for c in size.eta_sweep}
    inside = [done[_label(c)] for c in size.eta_sweep if _in_verdict(c)]
    missing = sum(d["missing"] for d in inside)
    tests = "PASS" if all(d["verdict_tests"] == "PASS" for d in inside) else "FAIL"
    sweep = []
    for c in size.eta_sweep:
        dec, top = done[_label(c)], _single(size.base, c)
        steps = np.concatenate([np.ravel(m[_label(c)][p]["steps"]) for p in PANELS])
        entry = {"c": c, "label": _label(c), "eta_at_panel_n": top.eta, "cap_steps": top.steps_up}
        entry |= {"d": dec["fits"]["d"], "n": dec["fits"]["n"], "no_boundary": dec["no_boundary"]}
        entry |= {"frac_stopped": dec["frac_stopped"], "mean_steps": float(np.nanmean(steps))}
        sweep.append(entry | {"verdict_under_rule": dec["verdict"], "in_verdict": _in_verdict(c)})
    head = {"verdict": "FAIL" if missing else tests, "verdict_tests": tests, "missing": missing}
    return {**done[VERDICT_RULE], **head, "eta_sweep": sweep}


def _statistic(dec, one):
    """The statistic line; ``one``: the eta sweep's eta = 1 entry (or None)."""
    slopes = "; ".join(PF.fmt_step(e) for e in dec["eta_sweep"] if e["in_verdict"])
    text = (
        f"at c = {ETA_D:g}: {100 * dec['frac_stopped']:.0f}% of runs reached epsilon, noisy error "
        f"{dec['hi_seed'].mean():.3f} (indicator >= {HIGH:g}, p = {FLIP}) and "
        f"{dec['lo_seed'].mean():.3f} (indicator <= {LOW:g}); boundary slopes (theory d +0.25, "
        f"n -0.25, ± {MARGIN:g}) at {slopes}"
    )
    if one is not None:
        text += f"; eta sweep (not in the verdict): at eta = 1 d {PF.fmt_slope(one['d'])}, "
        text += f"n {PF.fmt_slope(one['n'])}"
    return text


def _text(size, base, dec):
    """The design and the verdict's tests, one line each."""
    pd, pn, reps = dec["fits"]["d"], dec["fits"]["n"], size.seeds
    hi, lo, t_hi, t_lo = dec["hi_seed"], dec["lo_seed"], dec["t_hi"], dec["t_lo"]
    within = {k: P.holds(dec[k], "within", "NOT within") for k in ("ok_d", "ok_n")}
    ok = {k: P.holds(dec[k], "ok", "NOT ok") for k in ("ok_loss", "ok_hi", "ok_lo")}
    lines = [
        f"Single task: m = {base.m}, sigma_p = 1, p = {FLIP}, eta = {ETA_D:g}/(sigma_p^2 d), "
        f"sigma_0 = {base.sigma_0:g}, GD until the training loss is <= {base.epsilon:g} (cap "
        f"{base.steps_up} steps); {reps} seeds per cell; (|mu|, d) at n = {base.n_up}, "
        f"(|mu|, n) at d = {base.d}.\n",
        f"- loss reaches epsilon: {100 * dec['frac_stopped']:.1f}% of {dec['n_runs']} runs "
        f"({ok['ok_loss']}, needs >= 95%)",
        f"- above the boundary (indicator >= {HIGH:g}, {dec['n_hi']} cells): noisy error "
        f"{R.fmt_mean_se(float(hi.mean()), S.sem(hi))}; below p + 0.02: {R.fmt_p(t_hi['p'])} "
        f"({ok['ok_hi']})",
        f"- below it (indicator <= {LOW:g}, {dec['n_lo']} cells): noisy error "
        f"{R.fmt_mean_se(float(lo.mean()), S.sem(lo))}; above p + 0.1: {R.fmt_p(t_lo['p'])} "
        f"({ok['ok_lo']})",
        f"- boundary exponent (clean error = {BOUNDARY_ERROR}): log|mu|* vs log d slope "
        f"{PF.fmt_slope(pd)} (95% bootstrap CI; theory +0.25, the whole CI {within['ok_d']} "
        f"±{MARGIN:g} of it); vs log n slope {PF.fmt_slope(pn)} (theory -0.25; "
        f"{within['ok_n']} ±{MARGIN:g}). Equivalence rule: a wide interval (too little data) "
        "fails rather than passes.",
    ]
    return "\n".join(lines)


def _heatmap(name, panel, title):
    return Figure(name, lambda path: PF.draw_heatmap(path, panel, title, BOUNDARY_ERROR, FLIP))


def present(size, m, dec):
    """The verdict's tests, the heatmaps, the eta sweep (table, reading, figure), two CSVs."""
    base, sweep = _single(size.base), dec["eta_sweep"]
    one = next((e for e in sweep if e["c"] is None), None)
    pd, pn = _panels(size, VERDICT_RULE, m)
    pd, pn = {**pd, **dec["fits"]["d"]}, {**pn, **dec["fits"]["n"]}
    sections = [
        _text(size, base, dec),
        PF.boundary_table((pd, pn)),
        _heatmap("phase_mu_d", pd, f"noisy test error over (|mu|, d), n = {base.n_up}, p = {FLIP}"),
        _heatmap("phase_mu_n", pn, f"noisy test error over (|mu|, n), d = {base.d}, p = {FLIP}"),
        f"**Eta sweep** (the rule at each step size, {size.seeds} seeds per cell, own seeds per "
        f"step size; the verdict needs a PASS at every c <= {ETA_D:g}, the others are reported):",
        PF.eta_table(sweep, base.d),
        PF.eta_reading(sweep, one, MARGIN),
        Figure("phase_eta_sweep", lambda path: PF.draw_eta_sweep(path, sweep, MARGIN)),
        PF.cells_csv((pd, pn)),
        PF.eta_csv(sweep),
    ]
    data = {"base_config": base.to_dict(), "boundary_level_clean_error": BOUNDARY_ERROR}
    data |= {"exponent_margin": MARGIN, "seeds": size.seeds, "per_seed": m}
    data["panels"] = {p: {"xs": size.xs[p], "mus": size.mus} for p in PANELS}
    return Outcome(_statistic(dec, one), sections, data)
