"""The statistics of the Gamma confirmation (claims ``transfer_phase`` and
``gamma_candidates``, docs/model.md §8.5: outcome, candidates' tests, scaling),
pure and on any inputs.

The outcome is kept at the seed level: a run's gain err_scratch - err_transfer
scores 1 when positive, 0 when negative and 1/2 when exactly 0
(:func:`seed_outcome`); no cell is dropped for being "neither". A cell's
share q is the mean of its seeds' scores. Every model is a logistic in
log10 features fitted to the seed-level scores (:func:`fit`, its ridge per
row so that it does not depend on the number of rows), and every interval is
a bootstrap over cells.

The steps, each a function: :func:`cell_auc` (the sign of q, the cells with
q = 1/2 left out of the ranking only), :func:`cv_brier` (out-of-sample
Brier score per cell, K folds of cells), :func:`choose_ridge` and
:func:`nested_cv` (the free model's ridge), :func:`boundary` (threshold and
10-90% width of a one-scalar logistic), :func:`scaling` (the boundary at
every scale, paired cell bootstrap), :func:`residual_spearman`,
:func:`flagged`; :mod:`._gamma_judge` combines them into the pass rule
(Holm over the candidates).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.optimize
import scipy.special
import scipy.stats

from ..lab import stats as S

WIDTH_LOGIT = 2 * math.log(9)
"""The logit distance between P = 0.1 and P = 0.9: width = WIDTH_LOGIT / slope."""


def seed_outcome(et, es):
    """Per run (cells, seeds) the score of the gain es - et: 1 (> 0), 0 (< 0),
    1/2 (= 0); NaN where an error is missing."""
    et, es = np.asarray(et, float), np.asarray(es, float)
    g = es - et
    with np.errstate(invalid="ignore"):
        y = np.where(g > 0, 1.0, np.where(g < 0, 0.0, 0.5))
    return np.where(np.isfinite(g), y, np.nan)


def share(y):
    """Per cell the share q of its seeds' scores (missing seeds left out)."""
    with np.errstate(invalid="ignore"):
        return np.nanmean(y, axis=1)


def rows(X, y):
    """The seed-level rows of cell features ``X`` (cells, k) and scores ``y``
    (cells, seeds): each cell's features repeated per finite score."""
    X = np.asarray(X, float).reshape(len(y), -1)
    ok = np.isfinite(y)
    return np.repeat(X, ok.sum(axis=1), axis=0), y[ok]


def fit(X, y, ridge):
    """The logistic logit P = b_0 + X b fitted to seed-level scores ``y``
    (cells, seeds) with the penalty ``ridge`` * rows / 2 * |b|^2 on the slopes.
    Returns the coefficients (intercept first)."""
    Xr, yr = rows(X, y)
    if yr.size == 0:
        return np.full(Xr.shape[1] + 1, np.nan)
    return S.logistic_fit(Xr, yr, ridge * yr.size)["coef"]


def predict(coef, X):
    """P(gain > 0) per cell for features ``X`` (cells, k)."""
    X = np.asarray(X, float).reshape(len(X), -1)
    return scipy.special.expit(coef[0] + X @ coef[1:])


def brier(p, y):
    """Per cell the mean over its seeds of (score - p)^2 (NaN: no seed)."""
    with np.errstate(invalid="ignore"):
        return np.nanmean((y - np.asarray(p, float)[:, None]) ** 2, axis=1)


def folds(n, k, seed):
    """A fold index per cell: ``k`` folds of a fixed permutation (``seed``)."""
    f = np.empty(n, int)
    f[np.random.default_rng(seed).permutation(n)] = np.arange(n) % k
    return f


def standardise(X, mask):
    """``X`` centred and scaled with the moments of the rows in ``mask``."""
    mu, sd = X[mask].mean(axis=0), X[mask].std(axis=0)
    return (X - mu) / np.where(sd > 0, sd, 1.0)


def cv_brier(X, y, ridge, k, seed):
    """The out-of-sample Brier score per cell: each fold predicted by the
    model fitted (features standardised on the training folds) to the others."""
    X = np.asarray(X, float).reshape(len(y), -1)
    f, out = folds(len(y), k, seed), np.full(len(y), np.nan)
    for i in range(k):
        test = f == i
        Z = standardise(X, ~test)
        out[test] = brier(predict(fit(Z[~test], y[~test], ridge), Z[test]), y[test])
    return out


def choose_ridge(X, y, grid, k, seed):
    """The ridge of ``grid`` with the least mean out-of-sample Brier score (the
    first of equals) and the scores of every ridge."""
    scores = [float(np.nanmean(cv_brier(X, y, r, k, seed))) for r in grid]
    return grid[int(np.argmin(scores))], scores


def nested_cv(X, y, grid, k, seed):
    """The out-of-sample Brier score of the whole procedure (ridge chosen by
    inner CV on the training folds), per cell, and the ridge each outer fold chose."""
    X = np.asarray(X, float).reshape(len(y), -1)
    f, out, chosen = folds(len(y), k, seed), np.full(len(y), np.nan), []
    for i in range(k):
        test = f == i
        r, _ = choose_ridge(X[~test], y[~test], grid, k, seed + 1 + i)
        chosen.append(r)
        Z = standardise(X, ~test)
        out[test] = brier(predict(fit(Z[~test], y[~test], r), Z[test]), y[test])
    return out, chosen


def cell_auc(score, q):
    """The AUC of ``score`` for the sign of the cells' shares ``q`` (q > 1/2
    positive, q < 1/2 negative; cells with q = 1/2 or a missing value have no
    sign and are not ranked)."""
    score, q = np.asarray(score, float), np.asarray(q, float)
    ok = np.isfinite(q) & (q != 0.5) & np.isfinite(score)
    return S.auc(score[ok], (q[ok] > 0.5).astype(float))


def boundary(x, y, ridge=0.0):
    """The one-scalar logistic P = expit(b_0 + b_1 x) in ``x`` = log10 Gamma
    per cell, fitted to the seed-level scores ``y``: its threshold -b_0 / b_1
    (log10 Gamma at P = 1/2) and 10-90% width WIDTH_LOGIT / b_1 in decades
    (infinite unless b_1 > 0)."""
    b0, b1 = fit_1d(x, y, ridge)
    thr = -b0 / b1 if b1 != 0 else float("nan")
    width = WIDTH_LOGIT / b1 if b1 > 0 else float("inf")
    return {"b0": b0, "b1": b1, "log10_threshold": thr, "width_decades": width}


def fit_1d(x, y, ridge=0.0):
    """(b_0, b_1) of the one-scalar logistic by Newton's method on the
    seed-level rows (a small ridge ``ridge`` * rows on b_1); after 100 steps
    without convergence the last iterate if finite, else NaN."""
    xr, yr = rows(np.asarray(x, float)[:, None], y)
    xr = xr[:, 0]
    if yr.size == 0 or np.ptp(xr) == 0:
        return float("nan"), float("nan")
    lam, b = max(ridge, 1e-8) * yr.size, np.zeros(2)
    Z = np.column_stack([np.ones_like(xr), xr])
    for _ in range(100):
        p = scipy.special.expit(Z @ b)
        g = Z.T @ (p - yr) + np.array([0.0, lam * b[1]])
        H = (Z * (p * (1 - p))[:, None]).T @ Z + np.diag([1e-12, lam])
        step = np.linalg.solve(H, g)
        b = b - step
        if np.max(np.abs(step)) < 1e-10:
            return float(b[0]), float(b[1])
    return (float(b[0]), float(b[1])) if np.all(np.isfinite(b)) else (math.nan, math.nan)


def residual_spearman(x, y, feats, names, boot, seed):
    """Per factor the Spearman correlation of the cells' residual q - P(cell)
    (the one-scalar logistic in ``x``; a residual below half a seed's share,
    1 / (2 seeds), counts as 0: the model then predicts the cell to the
    resolution of its seeds, and the tiny residuals of cells far from the
    transition, whose signs follow the side they are on, are not ranked)
    with the factor, and its 95% interval over ``boot`` cell resamples."""
    b = fit_1d(x, y)
    resid = share(y) - scipy.special.expit(b[0] + b[1] * np.asarray(x, float))
    tol = 0.5 / np.maximum(np.sum(np.isfinite(y), axis=1), 1)  # half a seed's share
    resid = np.where(np.abs(resid) < tol, 0.0, resid)
    rng, out = np.random.default_rng(seed), {}
    idx = [rng.integers(0, len(resid), len(resid)) for _ in range(boot)]
    for j, name in enumerate(names):
        f = feats[:, j]
        rho = _spearman(resid, f)
        reps = np.array([_spearman(resid[i], f[i]) for i in idx])
        reps = reps[np.isfinite(reps)]
        ci = (
            [float(np.quantile(reps, 0.025)), float(np.quantile(reps, 0.975))]
            if reps.size
            else None
        )
        out[name] = {"rho": rho, "ci95": ci}
    return out


def _ranks(x):
    """Average ranks (1-based; ties share their mean rank), as
    ``scipy.stats.rankdata`` gives them: the same values, exactly."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    first = np.empty(len(x), bool)  # where a tie group starts
    first[:1] = True  # (none for an empty x)
    np.not_equal(xs[1:], xs[:-1], out=first[1:])
    start = np.flatnonzero(first)
    counts = np.diff(start, append=len(x))
    ranks = np.empty(len(x))
    ranks[order] = np.repeat(start + (counts + 1) / 2, counts)
    return ranks


def _spearman(a, b):
    """Spearman's rho of the pairs where both are finite (NaN below 3 pairs or
    for a constant side): the correlation of the ranks computed as
    ``scipy.stats.spearmanr`` does (its (n, 2) column layout and
    ``np.corrcoef``), so the same bits, without its p-value's cost."""
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return float("nan")
    ranks = np.stack([_ranks(a[ok]), _ranks(b[ok])]).T  # (n, 2), column-major
    return float(np.corrcoef(ranks, rowvar=False)[1, 0])


def flagged(resid, limit):
    """The factors whose residual correlation exceeds ``limit`` in size with a
    95% interval that excludes 0."""
    out = []
    for name, r in resid.items():
        ci = r["ci95"]
        if np.isfinite(r["rho"]) and abs(r["rho"]) > limit and ci and (ci[0] > 0 or ci[1] < 0):
            out.append(name)
    return out


def _p_beyond(reps, limit, upper=True):
    """The bootstrap p-value of a one-sided test: the share of resamples at or
    beyond ``limit`` (above it when ``upper``), counted as (k + 1) / (B + 1)."""
    reps = np.asarray(reps, float)
    k = np.sum(~(reps < limit)) if upper else np.sum(~(reps > limit))
    return float((k + 1) / (reps.size + 1))


def _resamples(n, boot, seed):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, n, n) for _ in range(boot)]


def auc_test(score, y, floor, boot, seed):
    """The cells' sign AUC of ``score``, its one-sided 95% lower bound and the
    p-value of AUC <= ``floor`` over ``boot`` cell resamples."""
    q = share(y)
    reps = np.array([cell_auc(score[i], q[i]) for i in _resamples(len(q), boot, seed)])
    reps = np.where(np.isfinite(reps), reps, 0.0)  # a resample without both signs: no evidence
    lower = float(np.quantile(reps, 0.05, method="lower"))
    return {"auc": cell_auc(score, q), "lower95": lower, "p": _p_beyond(reps, floor, upper=False)}


def brier_test(cand, free, delta, boot, seed):
    """Predictive non-inferiority: the mean over cells of the candidate's
    out-of-sample Brier score minus the free model's, its one-sided 95% upper
    bound and the p-value of a difference >= ``delta`` (cell resamples)."""
    diff = np.asarray(cand, float) - np.asarray(free, float)
    reps = np.array([np.nanmean(diff[i]) for i in _resamples(len(diff), boot, seed)])
    upper = float(np.quantile(reps, 0.95, method="higher"))
    out = {"brier": float(np.nanmean(cand)), "brier_free": float(np.nanmean(free))}
    return out | {"diff": float(np.nanmean(diff)), "upper95": upper, "p": _p_beyond(reps, delta)}


def _boundaries(xs, ys, idx=None):
    """Per scale the one-scalar boundary of the cells ``idx`` (all: None)."""
    take = (lambda a: a) if idx is None else (lambda a: a[idx])
    return {s: boundary(take(xs[s]), take(ys[s])) for s in xs}


def scaling(xs, ys, margin, ratio, boot, seed, floor=0.0):
    """Phase-like under scaling. ``xs``: scale -> log10 Gamma per cell (the
    same cells at every scale), ``ys``: scale -> seed-level scores. The
    location test (two one-sided tests per larger scale): the threshold moves
    by less than ``margin`` decades from the smallest scale's; the width
    test: the largest scale's 10-90% width is less than ``ratio`` times the
    smallest's, widths below ``floor`` decades counting as ``floor`` (a
    transition sharper than the design resolves, e.g. separated signs, is
    not "wider" at one scale than at another). p-values over ``boot`` paired
    cell resamples."""
    scales = sorted(xs)
    first, last = scales[0], scales[-1]
    point = _boundaries(xs, ys)
    reps = [_boundaries(xs, ys, i) for i in _resamples(len(xs[first]), boot, seed)]
    p_loc, shifts = [], {}
    for s in scales[1:]:
        d = np.array([r[s]["log10_threshold"] - r[first]["log10_threshold"] for r in reps])
        d = np.where(np.isfinite(d), d, np.inf)
        p = max(_p_beyond(d, margin), _p_beyond(d, -margin, upper=False))
        shift = point[s]["log10_threshold"] - point[first]["log10_threshold"]
        p_loc.append(p)
        ci = [
            float(np.quantile(d, 0.05, method="lower")),
            float(np.quantile(d, 0.95, method="higher")),
        ]
        shifts[str(s)] = {"shift": shift, "ci90": ci, "p": p}

    def ratio_of(r):
        return max(r[last]["width_decades"], floor) / max(r[first]["width_decades"], floor)

    w = np.array([ratio_of(r) for r in reps])
    w = np.where(np.isfinite(w), w, np.inf)
    wr = ratio_of(point)
    width = {
        "ratio": float(wr),
        "upper95": float(np.quantile(w, 0.95, method="higher")),
        "p": _p_beyond(w, ratio),
    }
    boundaries = {str(s): b for s, b in point.items()}
    p = max([*p_loc, width["p"]])
    return {"boundaries": boundaries, "shifts": shifts, "width": width, "p": p}


def as_array(values):
    """A nested list of numbers (None: missing) as a float array with NaN."""
    return np.array([[np.nan if v is None else v for v in row] for row in values], float)
