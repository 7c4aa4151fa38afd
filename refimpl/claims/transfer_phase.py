"""transfer_phase: one scalar Gamma separates beneficial from negative transfer
(docs/model.md §s 7 and 8; the paper's compact indicator, tested as the
validation audit 6.3 proposes).

Design (protocol :data:`PROTOCOL`, fixed 2026-11-29 before its first full
run): 400 cells from a scrambled Latin hypercube (scipy, seed
:data:`DESIGN_SEED`) over nine factors, each log-uniform: alpha in [0.1, 1],
|u| in [0.25, 4], sigma_p,1 in [0.5, 3], sigma_p,2 in [0.5, 2], d in [200,
3200], N_2 in [5, 60], |v_1|, |v_2| in [0.5, 3], and N_1 in [10, min(400,
d/2)] (the decomposition needs N_1 <= d - 2; the hypercube coordinate is
mapped into that range); the downstream flip rate p_2 is 0 in the even cells
and 0.1 in the odd ones (revised before any outcome was seen:
:data:`DISCLOSURES`). Step size eta = 200 / (sigma_p^2 d) per stage (the
theory's condition eta <= O(1/(sigma_p^2 d)), as in phase_single); every
stage trains to the loss 0.01, cap 2000 steps; stalled runs are counted. 8
seeds per cell, transfer and scratch paired within a run; cells have
independent seeds.

Per cell the paired gain err_scratch - err_transfer and its label: +1 when
the one-sided Wilcoxon test of gain > 0 has p < 0.05, -1 when that of gain
< 0 has, else 0 (a label, not a claim); cells where both mean errors are
below 0.01 or both above 0.45 are uninformative (label 0). The labelled
cells (+1 / -1) are the outcome.

Before any fit the cells are split into a fit half and a held-out half (a
permutation with seed :data:`SPLIT_SEED`). Candidates, each oriented so that
larger means "transfer helps": Gamma_inh, Gamma_inh / Gamma_scr, |u| (the
paper-side scalars), 1/Gamma_scr (the null: the upstream task irrelevant),
and a free log-linear logistic model in the nine log factors and p_2. Per
candidate: the held-out AUC (bootstrap 99% interval over held-out cells), a
logistic logit P(+) = b_0 + b_1 log10 Gamma on the fit half with its
threshold Gamma* = 10^(-b_0/b_1) and 10-90% transition width 2 ln 9 / b_1
decades. The best scalar is the paper-side candidate with the highest
fit-half AUC; a likelihood-ratio test of the free model against it on all
labelled cells (chi-square, 9 degrees of freedom; approximate where the
scalar is not a monomial of the factors). Both logistic fits carry a ridge of
1e-3 on the slopes.

PASS: the best scalar's held-out AUC >= 0.9 and the free model not
significantly better (LR p > 0.01), with at least 20 held-out labelled cells,
5 of each sign, and no missing value. Reported beside it: the free model's
exponents scaled to |u|^4, the residual Spearman correlation of the best
scalar's fit with every factor, AUCs per p_2, the all-cells outcome (sign of
the mean gain over the informative cells), stalled runs.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.special
import scipy.stats

from .. import files
from ..lab import figures as F
from ..lab import report as R
from ..lab import stats as S
from ..lab.protocol import Disclosure, Protocol
from ..lab.seeds import sha256
from ..lab.stats import SIGNIFICANCE
from ..lab.sweep import run_sweep
from ..theory import indicators
from ._base import ENGINE, transfer_base

NAME = "transfer_phase"
CLAIM = (
    "one scalar Gamma separates beneficial from negative transfer (phase-like), over "
    "alpha, N_1, N_2, |u|, |v_1|, |v_2|, sigma_p,1, sigma_p,2, d and the downstream flip rate"
)
SOURCE = "paper"

FACTORS = (
    "alpha",
    "n_up",
    "u_norm",
    "sigma_p_up",
    "sigma_p_down",
    "d",
    "n_down",
    "v_up_norm",
    "v_down_norm",
)
RANGES = {
    "alpha": (0.1, 1.0),
    "n_up": (10, 400),
    "u_norm": (0.25, 4.0),
    "sigma_p_up": (0.5, 3.0),
    "sigma_p_down": (0.5, 2.0),
    "d": (200, 3200),
    "n_down": (5, 60),
    "v_up_norm": (0.5, 3.0),
    "v_down_norm": (0.5, 3.0),
}
QUICK_RANGES = dict(RANGES, n_up=(10, 200), d=(100, 400), n_down=(5, 30))
FLIPS = (0.0, 0.1)
CELLS, QUICK_CELLS = 400, 40
SEEDS, QUICK_SEEDS = 8, 5
DESIGN_SEED, SPLIT_SEED, BOOT_SEED = 20261129, 1129, 2911
ETA_C = 200.0
"""eta = ETA_C / (sigma_p^2 d) per stage (phase_single's constant)."""
EPS, CAP, QUICK_CAP = 0.01, 2000, 400
N_TEST, QUICK_N_TEST = 4000, 1000
LABEL_LEVEL = 0.05
UNINFORMATIVE = (0.01, 0.45)
AUC_PASS = 0.9
MIN_HELD, MIN_CLASS = 20, 5
RIDGE = 1e-3
BOOT = 1000
PAPER_CANDIDATES = ("gamma_inh", "gamma_ratio", "u_norm")
CANDIDATES = PAPER_CANDIDATES + ("inv_gamma_scr",)
CANDIDATE_LABELS = {
    "gamma_inh": "Gamma_inh",
    "gamma_ratio": "Gamma_inh / Gamma_scr",
    "u_norm": "|u|",
    "inv_gamma_scr": "1 / Gamma_scr (null)",
    "free": "free log-linear (10 factors)",
}
SALT = "transfer_phase-v2"
METRICS = ("err_transfer", "err_scratch", "loss_down", "loss_scratch", "loss_up", "steps_up")


def design(quick=False):
    """The cells of the protocol: list of dicts of the nine factors and
    ``flip_down`` (deterministic: the Latin hypercube's seed is fixed)."""
    ranges = QUICK_RANGES if quick else RANGES
    n = QUICK_CELLS if quick else CELLS
    t = scipy.stats.qmc.LatinHypercube(d=len(FACTORS), seed=DESIGN_SEED).random(n)

    def logu(lo, hi, x):
        return math.exp(math.log(lo) + x * (math.log(hi) - math.log(lo)))

    cells = []
    for i, row in enumerate(t):
        x = dict(zip(FACTORS, row))
        cell = {f: float(f"{logu(*ranges[f], x[f]):.4g}") for f in FACTORS}
        cell["d"] = round(logu(*ranges["d"], x["d"]))
        cell["n_down"] = round(logu(*ranges["n_down"], x["n_down"]))
        lo, hi = ranges["n_up"]
        cell["n_up"] = round(logu(lo, min(hi, cell["d"] // 2), x["n_up"]))
        cell["flip_down"] = FLIPS[i % 2]
        cells.append(cell)
    return cells


def config(cell, quick=False):
    """The Config of a cell: eta = ETA_C / (sigma_p^2 d) per stage, loss target EPS."""
    cap = QUICK_CAP if quick else CAP
    return transfer_base(
        quick,
        **cell,
        flip_up=0.0,
        eta=ETA_C / (cell["sigma_p_up"] ** 2 * cell["d"]),
        eta_down=ETA_C / (cell["sigma_p_down"] ** 2 * cell["d"]),
        epsilon=EPS,
        steps_up=cap,
        steps_down=cap,
        n_test=QUICK_N_TEST if quick else N_TEST,
        engine=ENGINE,
    )


def protocol(quick=False):
    """The declared protocol (full size, or the CI-size version)."""
    r = QUICK_RANGES if quick else RANGES
    return Protocol(
        claim=NAME,
        grid={
            "cells": QUICK_CELLS if quick else CELLS,
            "design": f"scipy.stats.qmc.LatinHypercube(d=9, seed={DESIGN_SEED}), log-uniform "
            "factors; N_1 in [lo, min(hi, d // 2)]; p_2 = 0 (even cells), 0.1 (odd)",
            "ranges": r,
            "flip_down": FLIPS,
            "cells_sha256": sha256(design(quick))[:12],
            "eta": f"{ETA_C:g} / (sigma_p^2 d) per stage",
            "epsilon": EPS,
            "cap": QUICK_CAP if quick else CAP,
            "n_test": QUICK_N_TEST if quick else N_TEST,
            "fixed": "m = 10 (quick 4), sigma_0 = 0.01, p_1 = 0, joint layout, no weight decay, "
            "filter granularity, engine auto",
        },
        seeds=QUICK_SEEDS if quick else SEEDS,
        statistic=(
            f"per cell label from one-sided Wilcoxon tests of the paired gain (level "
            f"{LABEL_LEVEL}; uninformative when both mean errors < {UNINFORMATIVE[0]} or > "
            f"{UNINFORMATIVE[1]}); cells split in halves (seed {SPLIT_SEED}) before fitting; "
            "per candidate held-out AUC (bootstrap 99% interval, "
            f"{BOOT} resamples) and a logistic in log10 Gamma on the fit half (threshold, "
            "10-90% width); best paper-side scalar by fit-half AUC; likelihood-ratio test of "
            "the free log-linear logistic (9 log factors + p_2) against it on all labelled "
            f"cells, chi-square df 9; ridge {RIDGE} on slopes"
        ),
        pass_rule=(
            f"best scalar's held-out AUC >= {AUC_PASS} and LR p > {SIGNIFICANCE}; at least "
            f"{MIN_HELD} held-out labelled cells with {MIN_CLASS} of each sign; no missing "
            "value"
        ),
        fixed="2026-11-29",
        extra={
            "candidates": [CANDIDATE_LABELS[k] for k in CANDIDATES] + ["free"],
            "paper-side candidates": [CANDIDATE_LABELS[k] for k in PAPER_CANDIDATES],
            "salt": SALT,
            "pairing": "transfer and scratch paired within a run; cells independent",
            "revision": "v1 (N_1 up to min(1000, d/2), 10 seeds, salt transfer_phase-v1) was "
            "stopped at 385 of 4000 runs of its first full run, before any "
            "outcome was looked at: its cost (about 25 minutes on 2 cores, the "
            "N_1 ~ 1000 cells) broke the suite's budget; v2 caps N_1 at 400 and "
            "runs 8 seeds (the issue's minimum) on a fresh seed stream",
            "reported, not in the verdict": "free exponents scaled to |u|^4, residual "
            "Spearman per factor, AUC per p_2, sign of the "
            "mean gain over informative cells, stalled runs",
        },
    )


PROTOCOL = protocol(False)

DISCLOSURES = [
    Disclosure(
        date="2026-11-29",
        earlier="none: the stopped run computed no verdict; no outcome was read",
        change=(
            "v1 -> v2 before any outcome was read: N_1 in [10, min(1000, d/2)], 10 seeds (salt "
            "transfer_phase-v1) -> N_1 in [10, min(400, d/2)], 8 seeds (salt transfer_phase-v2)"
        ),
        reason=(
            "cost: v1's first full run, stopped at 385 of 4000 runs, was on course for about 25 "
            "minutes (the N_1 ~ 1000 cells), breaking the suite's budget"
        ),
    )
]


def split(n):
    """Boolean mask of the fit half (fixed before any outcome is seen)."""
    mask = np.zeros(n, bool)
    mask[np.random.default_rng(SPLIT_SEED).permutation(n)[: n // 2]] = True
    return mask


def scores(cells, quick=False):
    """Candidate scalars per cell (dict name -> array), and the free model's
    features (cells, 10): log10 of the nine factors and p_2."""
    out = {k: [] for k in CANDIDATES}
    for cell in cells:
        ind = indicators(config(cell, quick))
        out["gamma_inh"].append(ind["gamma_inh"])
        out["gamma_ratio"].append(ind["gamma_inh"] / ind["gamma_scr"])
        out["u_norm"].append(cell["u_norm"])
        out["inv_gamma_scr"].append(1.0 / ind["gamma_scr"])
    feats = np.array([[math.log10(c[f]) for f in FACTORS] + [c["flip_down"]] for c in cells])
    return {k: np.array(v, float) for k, v in out.items()}, feats


def labels(et, es):
    """Per cell (rows of ``et``, ``es``: (cells, seeds)) the label +1 / -1 / 0,
    the one-sided Wilcoxon p-values and the uninformative flag."""
    et, es = np.asarray(et, float), np.asarray(es, float)
    p_pos = np.array([S.wilcoxon(es[i], et[i], "greater")["p"] for i in range(len(et))])
    p_neg = np.array([S.wilcoxon(es[i], et[i], "less")["p"] for i in range(len(et))])
    with np.errstate(invalid="ignore"):
        mt, ms = np.nanmean(et, axis=1), np.nanmean(es, axis=1)
    lo, hi = UNINFORMATIVE
    unin = ((mt < lo) & (ms < lo)) | ((mt > hi) & (ms > hi))
    lab = np.where(p_pos < LABEL_LEVEL, 1, np.where(p_neg < LABEL_LEVEL, -1, 0))
    return np.where(unin, 0, lab), p_pos, p_neg, unin


def _logistic_1d(x, y):
    fit = S.logistic_fit(x, y, RIDGE)
    b0, b1 = fit["coef"]
    thr = -b0 / b1 if b1 != 0 else float("nan")
    width = 2 * math.log(9) / b1 if b1 > 0 else float("inf")
    return {
        "b0": float(b0),
        "b1": float(b1),
        "log10_threshold": float(thr),
        "width_decades": float(width),
        "loglik": fit["loglik"],
        "converged": fit["converged"],
    }


def _boot_auc(s, y, rng):
    vals = []
    for _ in range(BOOT):
        i = rng.integers(0, len(s), len(s))
        vals.append(S.auc(s[i], y[i]))
    vals = np.array(vals)
    vals = vals[np.isfinite(vals)]
    return [float(np.quantile(vals, 0.005)), float(np.quantile(vals, 0.995))] if vals.size else None


def decide(cand, feats, et, es, fit_mask, flips=None):
    """The verdict (pure: no files, no sweeps).

    Parameters
    ----------
    cand : mapping name -> array (cells,)
        Positive candidate scalars, larger = transfer helps; the keys of
        :data:`PAPER_CANDIDATES` compete for "best scalar".
    feats : array (cells, k)
        Features of the free model (log factors and p_2).
    et, es : array (cells, seeds)
        err_transfer and err_scratch (NaN or None: missing).
    fit_mask : bool array (cells,)
        The fit half; the rest is held out.
    flips : array (cells,), optional
        p_2 per cell, for the AUCs per flip rate (reported).

    Returns
    -------
    dict: ``verdict``, ``verdict_tests``, ``missing``, ``label`` (cells,),
    ``candidates`` (name -> auc_fit, auc_held, auc_held_ci, auc_held_mean_sign,
    logistic, per_flip), ``free`` (auc_fit, auc_held, coef, exponents_u4),
    ``best``, ``lr`` (stat, df, p), ``residual_spearman``, ``counts``.
    """
    et = np.array([[np.nan if v is None else v for v in r] for r in et], float)
    es = np.array([[np.nan if v is None else v for v in r] for r in es], float)
    fit_mask = np.asarray(fit_mask, bool)
    lab, p_pos, p_neg, unin = labels(et, es)
    has = lab != 0
    y = (lab == 1).astype(float)
    fit, held = fit_mask & has, ~fit_mask & has
    with np.errstate(invalid="ignore"):
        mean_gain = np.nanmean(es - et, axis=1)
    informative = ~unin & np.isfinite(mean_gain)
    y_mean = (mean_gain > 0).astype(float)
    rng = np.random.default_rng(BOOT_SEED)
    out_c = {}
    for name, val in cand.items():
        s = np.log10(np.asarray(val, float))
        per_flip = {}
        if flips is not None:
            for p in sorted(set(np.asarray(flips, float).tolist())):
                m = held & (np.asarray(flips, float) == p)
                per_flip[f"{p:g}"] = S.auc(s[m], y[m])
        out_c[name] = {
            "auc_fit": S.auc(s[fit], y[fit]),
            "auc_held": S.auc(s[held], y[held]),
            "auc_held_ci": _boot_auc(s[held], y[held], rng),
            "auc_held_mean_sign": S.auc(
                s[~fit_mask & informative], y_mean[~fit_mask & informative]
            ),
            "logistic": _logistic_1d(s[fit], y[fit]) if fit.sum() >= 2 else None,
            "per_flip": per_flip,
        }
    feats = np.asarray(feats, float)
    free = {
        "auc_fit": float("nan"),
        "auc_held": float("nan"),
        "coef_per_log10": None,
        "exponents_u4": None,
    }
    z = feats
    if fit.sum() >= 2:
        # the free model on standardised features (fit-half moments), slopes
        # reported per log10 unit of each factor
        mu, sd = feats[fit].mean(axis=0), feats[fit].std(axis=0)
        sd[sd == 0] = 1.0
        z = (feats - mu) / sd
        free_fit = S.logistic_fit(z[fit], y[fit], RIDGE)
        eta_free = np.column_stack([np.ones(len(z)), z]) @ free_fit["coef"]
        beta = free_fit["coef"][1:] / sd
        iu = FACTORS.index("u_norm")
        exps = (4 * beta / beta[iu]).tolist() if feats.shape[1] > iu and beta[iu] != 0 else None
        free = {
            "auc_fit": S.auc(eta_free[fit], y[fit]),
            "auc_held": S.auc(eta_free[held], y[held]),
            "coef_per_log10": beta.tolist(),
            "exponents_u4": exps,
        }
    paper = [k for k in PAPER_CANDIDATES if k in out_c]
    aucs = [out_c[k]["auc_fit"] for k in paper]
    best = paper[int(np.nanargmax(aucs))] if paper and np.isfinite(aucs).any() else None
    lr = {"stat": float("nan"), "df": feats.shape[1] - 1, "p": float("nan")}
    resid = {}
    if best is not None and has.sum() > feats.shape[1] + 1:
        sb = np.log10(np.asarray(cand[best], float))
        one = S.logistic_fit(sb[has], y[has], RIDGE)
        full = S.logistic_fit(z[has], y[has], RIDGE)
        stat = max(0.0, 2 * (full["loglik"] - one["loglik"]))
        lr = {
            "stat": stat,
            "df": feats.shape[1] - 1,
            "p": float(scipy.stats.chi2.sf(stat, feats.shape[1] - 1)),
        }
        pred = scipy.special.expit(one["coef"][0] + one["coef"][1] * sb[has])
        for k in range(feats.shape[1]):
            name = FACTORS[k] if k < len(FACTORS) else "flip_down"
            r = scipy.stats.spearmanr(y[has] - pred, feats[has, k])
            resid[name] = float(r.statistic) if np.isfinite(r.statistic) else None
    counts = {
        "cells": len(lab),
        "positive": int((lab == 1).sum()),
        "negative": int((lab == -1).sum()),
        "neither": int(((lab == 0) & ~unin).sum()),
        "uninformative": int(unin.sum()),
        "held_labelled": int(held.sum()),
        "held_positive": int((held & (y == 1)).sum()),
        "held_negative": int((held & (y == 0)).sum()),
    }
    enough = (
        counts["held_labelled"] >= MIN_HELD
        and counts["held_positive"] >= MIN_CLASS
        and counts["held_negative"] >= MIN_CLASS
    )
    auc_best = out_c[best]["auc_held"] if best else float("nan")
    holds = bool(
        enough
        and np.isfinite(auc_best)
        and auc_best >= AUC_PASS
        and np.isfinite(lr["p"])
        and lr["p"] > SIGNIFICANCE
    )
    missing = S.n_missing(et, es)
    tests = "PASS" if holds else "FAIL"
    return {
        "verdict": "FAIL" if missing else tests,
        "verdict_tests": tests,
        "missing": missing,
        "label": lab,
        "p_pos": p_pos,
        "p_neg": p_neg,
        "uninformative": unin,
        "mean_gain": mean_gain,
        "candidates": out_c,
        "free": free,
        "best": best,
        "lr": lr,
        "residual_spearman": resid,
        "counts": counts,
        "enough": bool(enough),
    }


def _inside(logistic, x):
    """True when a fitted threshold exists and lies within the plotted values
    (a threshold far outside them, e.g. of a flat fit, is not drawn)."""
    return bool(
        logistic
        and np.isfinite(logistic["log10_threshold"])
        and np.nanmin(x) <= logistic["log10_threshold"] <= np.nanmax(x)
    )


def _figures(folder, cand, dec, quick):
    """The measured sign in two planes with the fitted boundaries, and the
    data collapse per candidate (median gain against log10 Gamma)."""
    if not F.available():
        return []
    lab = dec["label"]
    colors = {1: "tab:green", -1: "tab:red", 0: "0.75"}
    names = {1: "transfer better", -1: "transfer worse", 0: "neither / uninformative"}
    gi, gr, u = (np.log10(cand[k]) for k in ("gamma_inh", "gamma_ratio", "u_norm"))
    gs = gi - gr  # log10 Gamma_scr
    paths = []
    fig, axes = F.subplots(1, 2, figsize=(11, 4.6))
    for ax, x, xl, key in (
        (axes[0], gi, "log10 Gamma_inh", "gamma_inh"),
        (axes[1], u, "log10 |u|", "u_norm"),
    ):
        for v in (0, -1, 1):
            m = lab == v
            ax.scatter(x[m], gs[m], s=14, c=colors[v], label=names[v], alpha=0.85)
        thr = dec["candidates"][key]["logistic"]
        if _inside(thr, x):
            ax.axvline(
                thr["log10_threshold"],
                color="k",
                ls="--",
                lw=1,
                label=f"{CANDIDATE_LABELS[key]} boundary (fit half)",
            )
        if key == "gamma_inh":
            t = dec["candidates"]["gamma_ratio"]["logistic"]
            if t and np.isfinite(t["log10_threshold"]):
                xs = np.linspace(np.nanmin(gi), np.nanmax(gi), 2)
                ax.plot(
                    xs,
                    xs - t["log10_threshold"],
                    color="tab:blue",
                    lw=1.2,
                    label="Gamma_inh / Gamma_scr boundary (fit half)",
                )
            ts = dec["candidates"]["inv_gamma_scr"]["logistic"]
            if _inside(ts, -gs):
                ax.axhline(
                    -ts["log10_threshold"],
                    color="tab:purple",
                    lw=1,
                    ls=":",
                    label="1 / Gamma_scr boundary (null)",
                )
        ax.set_xlabel(xl)
        ax.set_ylabel("log10 Gamma_scr (downstream Kou indicator)")
        ax.set_ylim(np.nanmin(gs) - 0.3, np.nanmax(gs) + 0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(
        "transfer_phase: sign of the paired gain per cell" + (" (quick)" if quick else ""),
        fontsize=10,
    )
    paths.append(F.save(fig, folder / "transfer_phase_planes.png", dpi=100))
    fig, axes = F.subplots(1, len(CANDIDATES), figsize=(4 * len(CANDIDATES), 3.8))
    for ax, key in zip(np.atleast_1d(axes), CANDIDATES):
        x = np.log10(cand[key])
        for v in (0, -1, 1):
            m = lab == v
            ax.scatter(x[m], dec["mean_gain"][m], s=10, c=colors[v], alpha=0.85)
        c = dec["candidates"][key]
        if _inside(c["logistic"], x):
            ax.axvline(c["logistic"]["log10_threshold"], color="k", ls="--", lw=1)
        ax.axhline(0, color="0.4", lw=0.8)
        ax.set_xlabel(f"log10 {CANDIDATE_LABELS[key]}")
        ax.set_title(f"held-out AUC {c['auc_held']:.3f}", fontsize=9)
    np.atleast_1d(axes)[0].set_ylabel("mean gain (err_scratch - err_transfer)")
    paths.append(F.save(fig, folder / "transfer_phase_collapse.png", dpi=100))
    return paths


def _p(p):
    return "p n/a" if p is None or not np.isfinite(p) else R.fmt_p(p)


def _fmt(x, digits=3):
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def run(out, quick=False, jobs=1):
    folder = R.claim_folder(out, NAME)
    reps = QUICK_SEEDS if quick else SEEDS
    cells = design(quick)
    configs = [config(c, quick) for c in cells]
    sw = run_sweep(
        configs,
        measure="outcomes",
        replicates=reps,
        jobs=jobs,
        cache=R.cache_dir(out),
        label=NAME,
        salt=SALT,
        metrics=METRICS,
    )
    v = {m: sw.values(m) for m in METRICS}
    cand, feats = scores(cells, quick)
    fit_mask = split(len(cells))
    flips = np.array([c["flip_down"] for c in cells])
    dec = decide(cand, feats, v["err_transfer"], v["err_scratch"], fit_mask, flips)
    cap = QUICK_CAP if quick else CAP
    stalled_t = int(np.nansum(v["loss_down"] > EPS))
    stalled_s = int(np.nansum(v["loss_scratch"] > EPS))
    stalled_u = int(np.nansum(v["loss_up"] > EPS))
    n_runs = len(cells) * reps
    best = dec["best"]
    cb = dec["candidates"].get(best) if best else None
    cn = dec["counts"]
    statistic = (
        f"{cn['positive']} cells transfer better, {cn['negative']} worse, "
        f"{cn['neither']} neither, {cn['uninformative']} uninformative of {cn['cells']}; "
        f"held-out AUC "
        + ", ".join(
            f"{CANDIDATE_LABELS[k]} {_fmt(c['auc_held'])}" for k, c in dec["candidates"].items()
        )
        + f", free {_fmt(dec['free']['auc_held'])}; best scalar (fit half) "
        f"{CANDIDATE_LABELS.get(best, 'none')}"
        + (
            f": held-out AUC {_fmt(cb['auc_held'])} (needs >= {AUC_PASS}), width "
            f"{_fmt(cb['logistic']['width_decades'], 2)} decades"
            if cb
            else ""
        )
        + f"; free vs best scalar LR {_fmt(dec['lr']['stat'], 1)} (df {dec['lr']['df']}), "
        f"{_p(dec['lr']['p'])} (needs > {SIGNIFICANCE}); {reps} seeds per cell"
    )
    rows = []
    for k, c in dec["candidates"].items():
        lg = c["logistic"] or {}
        ci = c["auc_held_ci"]
        rows.append(
            [
                CANDIDATE_LABELS[k],
                _fmt(c["auc_fit"]),
                _fmt(c["auc_held"]),
                f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "n/a",
                _fmt(c["auc_held_mean_sign"]),
                ", ".join(f"p_2 = {p}: {_fmt(a)}" for p, a in c["per_flip"].items()),
                _fmt(lg.get("log10_threshold"), 2),
                _fmt(lg.get("width_decades"), 2),
            ]
        )
    rows.append(
        [
            CANDIDATE_LABELS["free"],
            _fmt(dec["free"]["auc_fit"]),
            _fmt(dec["free"]["auc_held"]),
            "",
            "",
            "",
            "",
            "",
        ]
    )
    table = R.markdown_table(
        [
            "candidate",
            "AUC fit half",
            "AUC held-out",
            "99% bootstrap",
            "held-out AUC, sign of mean gain",
            "held-out AUC per p_2",
            "log10 threshold",
            "10-90% width (decades)",
        ],
        rows,
    )
    exps = dec["free"]["exponents_u4"]
    exp_line = (
        "Free model exponents scaled to |u|^4: "
        + ", ".join(f"{f} {e:+.2f}" for f, e in zip(FACTORS, exps))
        + f", p_2 (linear) {exps[-1]:+.2f}"
        if exps
        else "Free model exponents: n/a"
    )
    resid = ", ".join(f"{k} {_fmt(r, 2)}" for k, r in dec["residual_spearman"].items())
    figs = _figures(folder, cand, dec, quick)
    body = "\n\n".join(
        [
            (
                f"{len(cells)} cells (Latin hypercube), {reps} seeds each ({n_runs} paired runs); eta = "
                f"{ETA_C:g} / (sigma_p^2 d) per stage; every stage to training loss <= {EPS:g}, cap "
                f"{cap} steps; m = {configs[0].m}, n_test = {configs[0].n_test}, engine {ENGINE}."
                + (" Quick (CI-size) run: not the protocol's sizes." if quick else "")
            ),
            (
                f"Labels (one-sided Wilcoxon at {LABEL_LEVEL}): {cn['positive']} better, "
                f"{cn['negative']} worse, {cn['neither']} neither, {cn['uninformative']} uninformative; "
                f"held-out labelled cells {cn['held_labelled']} ({cn['held_positive']} + / "
                f"{cn['held_negative']} -). Stalled runs (loss > {EPS:g} at the cap): fine-tuning "
                f"{stalled_t}, scratch {stalled_s}, upstream {stalled_u} of {n_runs}."
            ),
            table,
            (
                f"Likelihood-ratio test, free model against {CANDIDATE_LABELS.get(best, 'none')} on "
                f"all labelled cells: statistic {_fmt(dec['lr']['stat'], 2)}, df {dec['lr']['df']}, "
                f"{_p(dec['lr']['p'])}. Residual Spearman correlation of the best scalar's fit with "
                f"each factor (reported; the audit's criterion |rho| < 0.1): {resid or 'n/a'}."
            ),
            exp_line + ". Gamma_inh = |u|^4 / (sigma_p,2^2 (|v_1|^2 + sigma_p,1^2 d / N_1)) has "
            "exponents alpha 0, N_2 0, |v_2| 0; Gamma_inh / Gamma_scr divides by N_2 |mu_2|^4 / "
            "(sigma_p,2^4 d).",
            R.figure_note(figs),
        ]
    )
    res = R.result(
        NAME,
        CLAIM,
        dec["verdict"],
        statistic,
        body,
        source=SOURCE,
        missing=dec["missing"],
        protocol=protocol(quick),
        disclosures=DISCLOSURES,
        held_out_auc={k: c["auc_held"] for k, c in dec["candidates"].items()}
        | {"free": dec["free"]["auc_held"]},
        best_scalar=best,
    )
    header = (
        list(cells[0])
        + ["fit_half", "label", "mean_gain", "median_gain", "p_pos", "p_neg", "uninformative"]
        + list(CANDIDATES)
    )
    med = np.nanmedian(v["err_scratch"] - v["err_transfer"], axis=1)
    table_rows = [
        [c[k] for k in cells[0]]
        + [
            bool(fit_mask[i]),
            int(dec["label"][i]),
            dec["mean_gain"][i],
            med[i],
            dec["p_pos"][i],
            dec["p_neg"][i],
            bool(dec["uninformative"][i]),
        ]
        + [cand[k][i] for k in CANDIDATES]
        for i, c in enumerate(cells)
    ]
    files.write_csv(folder / "transfer_phase.csv", header, table_rows)
    files.write_json(
        folder / "transfer_phase.json",
        {
            "claim": CLAIM,
            "verdict": res["verdict"],
            "statistic": res["statistic"],
            "verdict_without_missing_rule": dec["verdict_tests"],
            "quick": quick,
            "replicates": reps,
            "protocol": res["protocol"],
            "protocol_hash": res["protocol_hash"],
            "disclosures": res["disclosures"],
            "counts": dec["counts"],
            "candidates": dec["candidates"],
            "free": dec["free"],
            "best_scalar": best,
            "lr": dec["lr"],
            "residual_spearman": dec["residual_spearman"],
            "stalled": {
                "transfer": stalled_t,
                "scratch": stalled_s,
                "upstream": stalled_u,
                "runs": n_runs,
            },
            "cells": [dict(zip(header, r)) for r in table_rows],
            "per_seed": {m: v[m] for m in METRICS},
        },
    )
    return res
