"""The decision procedure of the claim ``transfer_phase`` (docs/model.md §8.5),
pure and on any inputs: per cell a label from the sign of the paired gain, then
candidate scalars judged by held-out AUC and a logistic boundary, and a free
log-linear model tested against the best of them.

The steps, each a function: :func:`labelled` (labels, halves), :func:`candidate`
(one scalar's AUCs and logistic boundary), :func:`free_model`,
:func:`best_scalar`, :func:`lr_test`, :func:`counts`, :func:`passes`;
:func:`judge` chains them. Below them the figures of the fits
(:func:`draw_planes`, :func:`draw_collapse`)."""

from __future__ import annotations

import math

import numpy as np
import scipy.special
import scipy.stats

from ..lab import figures as F
from ..lab import stats as S
from ..lab.stats import SIGNIFICANCE
from ._base import as_float

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
"""The nine factors of a cell (config fields); the tenth, p_2 (``flip_down``), is linear."""

LABEL_LEVEL = 0.05
"""A cell is labelled +1 (-1) when the one-sided Wilcoxon test of gain > 0 (< 0) has p below it."""
UNINFORMATIVE_LOW = 0.01
UNINFORMATIVE_HIGH = 0.45
"""A cell is uninformative (label 0) when both mean errors are below the low
level (both runs learn) or both above the high one (neither does)."""
AUC_PASS = 0.9
MIN_HELD = 20
"""The least number of held-out labelled cells the verdict needs ..."""
MIN_CLASS = 5
"""... and of held-out cells of each sign."""
RIDGE = 1e-3
"""The ridge on the slopes of every logistic fit (:func:`refimpl.lab.stats.logistic_fit`)."""
BOOT = 1000
SPLIT_SEED = 1129
BOOT_SEED = 2911
PAPER_CANDIDATES = ("gamma_inh", "gamma_ratio", "u_norm")
"""The paper-side scalars; they compete for "best scalar"."""
CANDIDATES = (*PAPER_CANDIDATES, "inv_gamma_scr")
"""Every candidate scalar: the paper-side ones and the null 1 / Gamma_scr."""
CANDIDATE_LABELS = {
    "gamma_inh": "Gamma_inh",
    "gamma_ratio": "Gamma_inh / Gamma_scr",
    "u_norm": "|u|",
    "inv_gamma_scr": "1 / Gamma_scr (null)",
    "free": "free log-linear (10 factors)",
}


def split(n):
    """Boolean mask of the fit half (fixed before any outcome is seen)."""
    mask = np.zeros(n, bool)
    mask[np.random.default_rng(SPLIT_SEED).permutation(n)[: n // 2]] = True
    return mask


def labelled(et, es, fit_mask):
    """Step 1: per cell (rows of ``et``, ``es``: (cells, seeds)) the one-sided
    Wilcoxon p-values of gain = es - et > 0 and < 0, the uninformative flag,
    the label +1 / -1 / 0, and the cells the later steps use: the labelled
    cells (``has``) of each half, the informative held-out cells and the sign
    of the mean gain."""
    p_pos = np.array([S.wilcoxon(es[i], et[i], "greater")["p"] for i in range(len(et))])
    p_neg = np.array([S.wilcoxon(es[i], et[i], "less")["p"] for i in range(len(et))])
    with np.errstate(invalid="ignore"):
        mt, ms, gain = np.nanmean(et, axis=1), np.nanmean(es, axis=1), np.nanmean(es - et, axis=1)
    lo, hi = UNINFORMATIVE_LOW, UNINFORMATIVE_HIGH
    unin = ((mt < lo) & (ms < lo)) | ((mt > hi) & (ms > hi))
    sign = np.where(p_pos < LABEL_LEVEL, 1, np.where(p_neg < LABEL_LEVEL, -1, 0))
    lab = np.where(unin, 0, sign)
    has = lab != 0
    o = dict(label=lab, p_pos=p_pos, p_neg=p_neg, uninformative=unin, mean_gain=gain, has=has)
    o.update(y=(lab == 1).astype(float), fit=fit_mask & has, held=~fit_mask & has)
    o.update(held_informative=~fit_mask & ~unin & np.isfinite(gain), y_mean=(gain > 0) * 1.0)
    return o


def logistic_1d(x, y):
    """The logistic logit P(+) = b_0 + b_1 x in one log10 scalar ``x``: its
    threshold -b_0 / b_1 (log10 Gamma*) and its 10-90% width 2 ln 9 / b_1 in
    decades (infinite unless b_1 > 0)."""
    fit = S.logistic_fit(x, y, RIDGE)
    b0, b1 = (float(b) for b in fit["coef"])
    thr = -b0 / b1 if b1 != 0 else float("nan")
    width = 2 * math.log(9) / b1 if b1 > 0 else float("inf")
    out = dict(b0=b0, b1=b1, log10_threshold=thr, width_decades=width, loglik=fit["loglik"])
    return {**out, "converged": fit["converged"]}


def boot_auc(s, y, rng):
    """The 99% bootstrap interval of the AUC over BOOT resamples of the cells
    (None when no resample has both classes)."""
    vals = []
    for _ in range(BOOT):
        i = rng.integers(0, len(s), len(s))
        vals.append(S.auc(s[i], y[i]))
    vals = np.array(vals)
    vals = vals[np.isfinite(vals)]
    return [float(np.quantile(vals, 0.005)), float(np.quantile(vals, 0.995))] if vals.size else None


def per_flip(s, o, flips):
    """The held-out AUC of ``s`` among the cells of each p_2 (``flips`` None: none)."""
    flips, held, y, out = np.asarray([] if flips is None else flips, float), o["held"], o["y"], {}
    for p in sorted(set(flips.tolist())):
        m = held & (flips == p)
        out[f"{p:g}"] = S.auc(s[m], y[m])
    return out


def candidate(s, o, flips, rng):
    """Step 2, per candidate (``s``: log10 of its values): fit-half and held-out
    AUC, its bootstrap interval (``rng`` advanced), the held-out AUC of the sign
    of the mean gain, the logistic on the fit half, the held-out AUC per p_2."""
    fit, held, y, hi = o["fit"], o["held"], o["y"], o["held_informative"]
    out = dict(auc_fit=S.auc(s[fit], y[fit]), auc_held=S.auc(s[held], y[held]))
    out.update(auc_held_ci=boot_auc(s[held], y[held], rng))
    out.update(auc_held_mean_sign=S.auc(s[hi], o["y_mean"][hi]), per_flip=per_flip(s, o, flips))
    return {**out, "logistic": logistic_1d(s[fit], y[fit]) if fit.sum() >= 2 else None}


def free_model(feats, o):
    """Step 3: the free log-linear logistic on features standardised with the
    fit half's moments; its AUCs, slopes per log10 unit and exponents scaled
    to |u|^4. Returns it and the features of the likelihood-ratio test (the
    standardised ones; ``feats`` when the fit half has fewer than 2 cells)."""
    fit, held, y, nan = o["fit"], o["held"], o["y"], float("nan")
    if fit.sum() < 2:
        return dict(auc_fit=nan, auc_held=nan, coef_per_log10=None, exponents_u4=None), feats
    mu, sd = feats[fit].mean(axis=0), feats[fit].std(axis=0)
    sd[sd == 0] = 1.0
    z = (feats - mu) / sd
    coef = S.logistic_fit(z[fit], y[fit], RIDGE)["coef"]
    eta = np.column_stack([np.ones(len(z)), z]) @ coef
    beta, iu = coef[1:] / sd, FACTORS.index("u_norm")
    exps = (4 * beta / beta[iu]).tolist() if feats.shape[1] > iu and beta[iu] != 0 else None
    out = dict(auc_fit=S.auc(eta[fit], y[fit]), auc_held=S.auc(eta[held], y[held]))
    return {**out, "coef_per_log10": beta.tolist(), "exponents_u4": exps}, z


def best_scalar(cands):
    """Step 4: the paper-side candidate of highest fit-half AUC (the first of
    equals; None when none has a finite AUC)."""
    paper = [k for k in PAPER_CANDIDATES if k in cands]
    aucs = [cands[k]["auc_fit"] for k in paper]
    return paper[int(np.nanargmax(aucs))] if paper and np.isfinite(aucs).any() else None


def residuals(sb, fit, o):
    """The Spearman correlation of the residual y - P(+) of the scalar's fit
    with each factor, over the labelled cells (None where undefined)."""
    has, out = o["has"], {}
    pred = scipy.special.expit(fit["coef"][0] + fit["coef"][1] * sb[has])
    for k in range(o["feats"].shape[1]):
        r = scipy.stats.spearmanr(o["y"][has] - pred, o["feats"][has, k])
        name = FACTORS[k] if k < len(FACTORS) else "flip_down"
        out[name] = float(r.statistic) if np.isfinite(r.statistic) else None
    return out


def lr_test(sb, z, o):
    """Step 5: the likelihood-ratio test (chi-square, k - 1 df) of the free
    model (features ``z``, k columns) against the best scalar (its log10
    values ``sb``; None: no test) on every labelled cell, and the residual
    Spearman correlations (:func:`residuals`)."""
    has, y, df = o["has"], o["y"], z.shape[1] - 1
    if sb is None or has.sum() <= z.shape[1] + 1:
        return {"stat": float("nan"), "df": df, "p": float("nan")}, {}
    one = S.logistic_fit(sb[has], y[has], RIDGE)
    full = S.logistic_fit(z[has], y[has], RIDGE)
    stat = max(0.0, 2 * (full["loglik"] - one["loglik"]))
    lr = {"stat": stat, "df": df, "p": float(scipy.stats.chi2.sf(stat, df))}
    return lr, residuals(sb, one, o)


def counts(o):
    """Step 6: the cells of each label, the held-out labelled cells of each sign."""
    lab, held, y, unin = o["label"], o["held"], o["y"], o["uninformative"]
    cells = dict(positive=lab == 1, negative=lab == -1, neither=(lab == 0) & ~unin)
    cells.update(uninformative=unin, held_labelled=held)
    cells.update(held_positive=held & (y == 1), held_negative=held & (y == 0))
    return {"cells": len(lab), **{k: int(v.sum()) for k, v in cells.items()}}


def enough(cn):
    """Enough held-out labelled cells: MIN_HELD in all, MIN_CLASS of each sign."""
    signs = min(cn["held_positive"], cn["held_negative"]) >= MIN_CLASS
    return bool(cn["held_labelled"] >= MIN_HELD and signs)


def passes(cn, auc, lr_p):
    """Step 7, the rule: enough cells, the best scalar's held-out AUC ``auc``
    >= AUC_PASS and the free model not significantly better (``lr_p`` > SIGNIFICANCE)."""
    separates = bool(np.isfinite(auc) and auc >= AUC_PASS)
    return enough(cn) and separates and bool(np.isfinite(lr_p) and lr_p > SIGNIFICANCE)


def judge(cand, feats, et, es, fit_mask, flips=None):
    """The verdict (pure) from candidate scalars ``cand`` (name -> positive value
    per cell, larger = transfer helps), the free model's features ``feats``
    (cells, k), the errors ``et``, ``es`` (cells, seeds; NaN or None: missing),
    the fit half ``fit_mask`` and p_2 per cell ``flips``. PASS: :func:`passes`
    and no value missing."""
    et, es = as_float(et), as_float(es)
    o = labelled(et, es, np.asarray(fit_mask, bool))
    o["feats"] = feats = np.asarray(feats, float)
    logs = {k: np.log10(np.asarray(v, float)) for k, v in cand.items()}
    rng = np.random.default_rng(BOOT_SEED)
    cands = {k: candidate(s, o, flips, rng) for k, s in logs.items()}
    free, z = free_model(feats, o)
    best = best_scalar(cands)
    lr, resid = lr_test(logs.get(best), z, o)
    cn = counts(o)
    auc = cands[best]["auc_held"] if best else float("nan")
    missing = S.n_missing(et, es)
    tests = "PASS" if passes(cn, auc, lr["p"]) else "FAIL"
    out = {"verdict": "FAIL" if missing else tests, "verdict_tests": tests, "missing": missing}
    out.update({k: o[k] for k in ("label", "p_pos", "p_neg", "uninformative", "mean_gain")})
    out.update(candidates=cands, free=free, best=best, lr=lr, residual_spearman=resid)
    return {**out, "counts": cn, "enough": enough(cn)}


# ----------------------------------------------------------------------
# the figures of the fits

COLORS = {1: "tab:green", -1: "tab:red", 0: "0.75"}
SIGNS = {1: "transfer better", -1: "transfer worse", 0: "neither / uninformative"}


def _inside(logistic, x):
    """True when a fitted threshold exists and lies within the plotted values
    (a threshold far outside them, e.g. of a flat fit, is not drawn)."""
    t = logistic["log10_threshold"] if logistic else float("nan")
    return bool(np.isfinite(t) and np.nanmin(x) <= t <= np.nanmax(x))


def _boundaries(ax, gi, gs, c):
    """The Gamma_inh / Gamma_scr boundary (a line of slope 1) and the null's
    (1 / Gamma_scr, a horizontal line) in the plane of Gamma_inh."""
    t, ts = c["gamma_ratio"]["logistic"], c["inv_gamma_scr"]["logistic"]
    if t and np.isfinite(t["log10_threshold"]):
        xs = np.linspace(np.nanmin(gi), np.nanmax(gi), 2)
        label = "Gamma_inh / Gamma_scr boundary (fit half)"
        ax.plot(xs, xs - t["log10_threshold"], color="tab:blue", lw=1.2, label=label)
    if _inside(ts, -gs):
        label = "1 / Gamma_scr boundary (null)"
        ax.axhline(-ts["log10_threshold"], color="tab:purple", lw=1, ls=":", label=label)


def _plane(ax, key, logs, dec):
    """The measured sign over (log10 ``key``, log10 Gamma_scr) with the fitted boundaries."""
    x, gi, c = logs[key], logs["gamma_inh"], dec["candidates"]
    gs = gi - logs["gamma_ratio"]  # log10 Gamma_scr
    for v in (0, -1, 1):
        m = dec["label"] == v
        ax.scatter(x[m], gs[m], s=14, c=COLORS[v], label=SIGNS[v], alpha=0.85)
    if _inside(t := c[key]["logistic"], x):
        label = f"{CANDIDATE_LABELS[key]} boundary (fit half)"
        ax.axvline(t["log10_threshold"], color="k", ls="--", lw=1, label=label)
    if key == "gamma_inh":
        _boundaries(ax, gi, gs, c)
    ax.set_xlabel(f"log10 {CANDIDATE_LABELS[key]}")
    ax.set_ylabel("log10 Gamma_scr (downstream Kou indicator)")
    ax.set_ylim(np.nanmin(gs) - 0.3, np.nanmax(gs) + 0.3)
    ax.legend(fontsize=7, loc="lower right")


def draw_planes(path, logs, dec):
    """The measured sign in the planes of Gamma_inh and of |u| against Gamma_scr."""
    fig, axes = F.subplots(1, 2, figsize=(11, 4.6))
    _plane(axes[0], "gamma_inh", logs, dec)
    _plane(axes[1], "u_norm", logs, dec)
    fig.suptitle("transfer_phase: sign of the paired gain per cell", fontsize=10)
    F.save(fig, path, dpi=100)


def draw_collapse(path, logs, dec):
    """The data collapse: mean gain against log10 of each candidate."""
    fig, axes = F.subplots(1, len(CANDIDATES), figsize=(4 * len(CANDIDATES), 3.8))
    for ax, key in zip(axes, CANDIDATES, strict=True):
        x, c = logs[key], dec["candidates"][key]
        for v in (0, -1, 1):
            m = dec["label"] == v
            ax.scatter(x[m], dec["mean_gain"][m], s=10, c=COLORS[v], alpha=0.85)
        if _inside(c["logistic"], x):
            ax.axvline(c["logistic"]["log10_threshold"], color="k", ls="--", lw=1)
        ax.axhline(0, color="0.4", lw=0.8)
        ax.set_xlabel(f"log10 {CANDIDATE_LABELS[key]}")
        ax.set_title(f"held-out AUC {c['auc_held']:.3f}", fontsize=9)
    axes[0].set_ylabel("mean gain (err_scratch - err_transfer)")
    F.save(fig, path, dpi=100)
