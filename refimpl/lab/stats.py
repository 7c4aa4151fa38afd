"""The statistics every claim shares, and the one significance level.

Missing values (None, NaN or inf: a diverged run) are counted
(:func:`n_missing`) and make a test's p-value NaN, so a verdict that needs
``p < SIGNIFICANCE`` fails rather than silently testing fewer runs.

- :func:`paired_t`: paired t-test of a mean difference;
- :func:`trend`: a monotone trend tested seed by seed (Page's L test; valid
  when seeds are shared across points), with the mean per-seed Spearman rho;
- :func:`holm`: Holm's adjustment over one family of tests;
- :func:`bonferroni_min`: "at least one of k alternatives";
- :func:`equivalent`: equivalence rule (a whole confidence interval within
  theory +- a stated margin);
- :func:`sem`: standard error of the mean over the finite values;
- :func:`wilcoxon`: paired signed-rank test (heavy-tailed outcomes);
- :func:`paired_failures`: exact McNemar test on paired failure indicators;
- :func:`outcome_summary`: mean, median and failure rate side by side;
- :func:`auc`: area under the ROC curve of a score for a binary label;
- :func:`fisher_greater`: one-sided Fisher exact test of a 2 x 2 table
  (independent runs: does an indicator raise the rate of an event?);
- :func:`logistic_fit`: logistic regression by maximum likelihood (with a
  small declared ridge), for separation curves and likelihood-ratio tests.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.optimize
import scipy.special
import scipy.stats

__all__ = [
    "SIGNIFICANCE",
    "n_missing",
    "paired_t",
    "trend",
    "holm",
    "bonferroni_min",
    "equivalent",
    "sem",
    "wilcoxon",
    "paired_failures",
    "outcome_summary",
    "auc",
    "fisher_greater",
    "logistic_fit",
]

SIGNIFICANCE = 0.01
"""The significance level of every test a verdict rests on (one-sided where
the claim predicts a direction)."""


def sem(values, axis=None):
    """Standard error of the mean over the finite values along ``axis``
    (NaN with fewer than two).

    Parameters
    ----------
    values : array_like
        The values (non-finite ones left out).
    axis : int, optional
        The axis; None: over all values.

    Returns
    -------
    float or ndarray
        A float without ``axis``, else an array without that axis.
    """
    v = np.asarray(values, float)
    ok = np.isfinite(v)
    n = ok.sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(ok, v, 0.0).sum(axis=axis) / n
        dev = np.where(ok, v - (mean if axis is None else np.expand_dims(mean, axis)), 0.0)
        sd = np.sqrt((dev**2).sum(axis=axis) / (n - 1))
        out = np.where(n > 1, sd / np.sqrt(np.maximum(n, 1)), np.nan)
    return float(out) if np.ndim(out) == 0 else out


def n_missing(*arrays):
    """How many values of the arrays are missing: None, NaN or infinite (a
    diverged run, or a quantity undefined for that run).

    Parameters
    ----------
    *arrays : array_like
        Values of any shape (None allowed).

    Returns
    -------
    int
        The count over all of them.
    """
    total = 0
    for a in arrays:
        a = np.asarray(
            [np.nan if v is None else v for v in np.ravel(np.asarray(a, dtype=object))], dtype=float
        )
        total += int(np.sum(~np.isfinite(a)))
    return total


def paired_t(a, b, alternative="greater"):
    """One-sided (by default) paired t-test of mean(a - b) > 0.

    Returns dict mean, se, t, p, n (complete pairs), n_missing (pairs with
    a missing member, see :func:`n_missing`). mean and se are over the
    complete pairs; **p is NaN when any pair is missing**, so a verdict that
    needs ``p < level`` fails rather than silently testing fewer runs. With
    zero variance the p-value is 0 when the mean difference has the tested
    sign, 1 otherwise.

    Parameters
    ----------
    a, b : array_like
        Paired values (NaN or inf: missing).
    alternative : {"greater", "less", "two-sided"}, optional
        The direction tested.

    Returns
    -------
    dict
        ``mean``, ``se``, ``t``, ``p``, ``n``, ``n_missing``.
    """
    diff = np.asarray(a, float) - np.asarray(b, float)
    ok = np.isfinite(diff)
    missing = int(diff.size - ok.sum())
    diff = diff[ok]
    n = diff.size
    mean = float(diff.mean()) if n else float("nan")
    se = float(diff.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    out = {"mean": mean, "se": se, "n": n, "n_missing": missing}
    if n < 2:
        return {**out, "t": float("nan"), "p": float("nan") if missing else 1.0}
    if se == 0:
        sign = {"greater": mean > 0, "less": mean < 0, "two-sided": mean != 0}[alternative]
        t, pv = (float("inf") if sign else 0.0), (0.0 if sign else 1.0)
    else:
        r = scipy.stats.ttest_1samp(diff, 0.0, alternative=alternative)
        t, pv = float(r.statistic), float(r.pvalue)
    return {**out, "t": t, "p": float("nan") if missing else pv}


def trend(x, values, alternative="greater"):
    """Monotone trend of ``values`` along ``x``, replicate by replicate.

    Each replicate (seed) is a block: within it the points are ranked, and
    Page's L test (scipy.scipy.stats.page_trend_test; exact for small designs,
    normal approximation otherwise or with ties) tests the predicted order
    of ``x`` against no trend. Blocks are the unit of replication, so seeds
    shared across points (common random numbers) keep the p-value valid,
    unlike a Spearman correlation pooled over all (point, seed) pairs. The
    effect size is the mean over blocks of the per-block Spearman rho
    (rank correlation of x with the block's values; 0 for a constant block).

    Parameters
    ----------
    x : array of shape (k,), k >= 3 distinct values
        The points, in any order.
    values : array of shape (k, b): ``values[i, r]`` at x[i], replicate r
        The outcomes; a replicate with a missing value is left out.
    alternative : {"greater", "less", "two-sided"}
        "greater": values increase with x; "less": they decrease.

    Returns
    -------
    dict
        rho (mean per-block Spearman), rho_se, L, p, method, n (complete
        blocks), n_missing (missing values, see :func:`n_missing`), points.
        **p is NaN when any value is missing.**

    Raises
    ------
    ValueError
        ``values`` not of shape (len(x), b), fewer than 3 distinct x, or an
        unknown ``alternative``.
    """
    x = np.asarray(x, float)
    v = np.asarray(values, float)
    if v.ndim != 2 or v.shape[0] != x.size:
        raise ValueError(
            f"values must have shape (len(x), replicates) = ({x.size}, b), got {v.shape}"
        )
    if x.size < 3 or np.unique(x).size != x.size:
        raise ValueError("a trend test needs at least 3 distinct x values")
    missing = int(np.sum(~np.isfinite(v)))
    blocks = v[:, np.all(np.isfinite(v), axis=0)].T  # (b, k)
    out = {"points": int(x.size), "n": int(blocks.shape[0]), "n_missing": missing}
    if blocks.shape[0] < 2:
        return {
            **out,
            "rho": float("nan"),
            "rho_se": float("nan"),
            "L": float("nan"),
            "p": float("nan") if missing else 1.0,
            "method": "none",
        }
    rx = scipy.stats.rankdata(x)
    ry = scipy.stats.rankdata(blocks, axis=1)
    cx = rx - rx.mean()
    cy = ry - ry.mean(axis=1, keepdims=True)
    norm = np.sqrt((cx**2).sum() * (cy**2).sum(axis=1))
    rho = np.divide(cy @ cx, norm, out=np.zeros(len(blocks)), where=norm > 0)
    ties = any(np.unique(b).size < b.size for b in blocks)
    method = "asymptotic" if ties else "auto"
    order = np.argsort(x, kind="stable")

    def page(increasing):
        # columns in the order of x; predicted ranks 1..k (or k..1)
        data = blocks[:, order]
        pred = np.arange(1, x.size + 1) if increasing else np.arange(x.size, 0, -1)
        r = scipy.stats.page_trend_test(data, predicted_ranks=pred, method=method)
        return float(r.statistic), float(r.pvalue), r.method

    if alternative == "two-sided":
        L, p_up, meth = page(True)
        _, p_down, _ = page(False)
        pv = min(1.0, 2 * min(p_up, p_down))
    elif alternative in ("greater", "less"):
        L, pv, meth = page(alternative == "greater")
    else:
        raise ValueError(
            f"alternative must be 'greater', 'less' or 'two-sided', got {alternative!r}"
        )
    se = float(rho.std(ddof=1) / np.sqrt(len(rho)))
    return {
        **out,
        "rho": float(rho.mean()),
        "rho_se": se,
        "L": L,
        "p": float("nan") if missing else pv,
        "method": meth,
    }


def holm(pvalues):
    """Holm-Bonferroni adjusted p-values (same shape), over all values given
    (one family). A NaN p-value (a missing measurement) counts as 1 in the
    adjustment and stays NaN.

    Parameters
    ----------
    pvalues : array_like
        The family's p-values, of any shape.

    Returns
    -------
    ndarray
        The adjusted p-values, of the shape of ``pvalues``.
    """
    p = np.asarray(pvalues, float)
    flat = np.where(np.isfinite(p.ravel()), p.ravel(), 1.0)
    order = np.argsort(flat, kind="stable")
    m = flat.size
    adj = np.empty(m)
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * flat[i]))
        adj[i] = running
    adj = np.where(np.isfinite(p.ravel()), adj, np.nan)
    return adj.reshape(p.shape)


def bonferroni_min(pvalues):
    """p-value of "at least one of these holds": min(1, k * min p) over k
    p-values (Bonferroni; Holm's first step). NaN if any is NaN.

    Parameters
    ----------
    pvalues : array_like
        The k p-values.

    Returns
    -------
    float
        The p-value, or NaN (also for none given).
    """
    p = np.asarray(pvalues, float).ravel()
    if p.size == 0 or not np.all(np.isfinite(p)):
        return float("nan")
    return float(min(1.0, p.size * p.min()))


def equivalent(ci, target, margin):
    """Equivalence rule: the whole confidence interval ``ci`` = (lo, hi) lies
    within [target - margin, target + margin] (a wide interval from too little
    data fails, unlike the rule "the interval contains the target").

    Parameters
    ----------
    ci : sequence of float
        The interval (lo, hi).
    target : float
        The value the quantity should equal.
    margin : float
        The allowed distance from ``target``.

    Returns
    -------
    bool
        True when both ends are finite and inside the margin.
    """
    lo, hi = float(ci[0]), float(ci[1])
    return bool(
        math.isfinite(lo) and math.isfinite(hi) and target - margin <= lo and hi <= target + margin
    )


def wilcoxon(a, b, alternative="greater"):
    """Paired Wilcoxon signed-rank test of ``a - b`` (one-sided by default:
    a tends to exceed b), robust to heavy tails.

    Returns dict median (of the differences), n (complete pairs), n_missing,
    p. **p is NaN when any pair is missing**; with all differences zero p is 1.

    Parameters
    ----------
    a, b : array_like
        Paired values (NaN or inf: missing).
    alternative : {"greater", "less", "two-sided"}, optional
        The direction tested.

    Returns
    -------
    dict
        ``median``, ``n``, ``n_missing``, ``p``.
    """
    diff = np.asarray(a, float) - np.asarray(b, float)
    ok = np.isfinite(diff)
    missing = int(diff.size - ok.sum())
    diff = diff[ok]
    out = {
        "median": float(np.median(diff)) if diff.size else float("nan"),
        "n": int(diff.size),
        "n_missing": missing,
    }
    if missing:
        return {**out, "p": float("nan")}
    if diff.size == 0 or np.all(diff == 0):
        return {**out, "p": 1.0}
    r = scipy.stats.wilcoxon(diff, alternative=alternative, zero_method="wilcox")
    return {**out, "p": float(r.pvalue)}


def paired_failures(fail_a, fail_b, alternative="greater"):
    """Exact McNemar test on paired failure indicators: do runs fail more
    often under a than under b? Only the discordant pairs count: a_only runs
    that fail under a only, b_only under b only;
    p = P(Binomial(a_only + b_only, 1/2) >= a_only) (one-sided "greater"), its
    mirror for "less", twice the smaller for "two-sided".

    Returns dict rate_a, rate_b, a_only, b_only, n, n_missing, p (NaN when
    an indicator is missing).

    Parameters
    ----------
    fail_a, fail_b : array_like
        Failure indicators (1/0, True/False; NaN: missing) of the same runs
        under a and under b.
    alternative : {"greater", "less", "two-sided"}, optional
        The direction tested.

    Returns
    -------
    dict
        ``rate_a``, ``rate_b``, ``a_only``, ``b_only``, ``n``, ``n_missing``,
        ``p``.
    """
    fa = np.asarray(fail_a, float)
    fb = np.asarray(fail_b, float)
    ok = np.isfinite(fa) & np.isfinite(fb)
    missing = int(fa.size - ok.sum())
    fa, fb = fa[ok].astype(bool), fb[ok].astype(bool)
    a_only, b_only = int(np.sum(fa & ~fb)), int(np.sum(fb & ~fa))
    out = {
        "rate_a": float(fa.mean()) if fa.size else float("nan"),
        "rate_b": float(fb.mean()) if fb.size else float("nan"),
        "a_only": a_only,
        "b_only": b_only,
        "n": int(fa.size),
        "n_missing": missing,
    }
    if missing:
        return {**out, "p": float("nan")}
    if a_only + b_only == 0:
        return {**out, "p": 1.0}
    binom = scipy.stats.binom(a_only + b_only, 0.5)
    p_up, p_down = float(binom.sf(a_only - 1)), float(binom.cdf(a_only))
    p = {"greater": p_up, "less": p_down, "two-sided": min(1.0, 2 * min(p_up, p_down))}[alternative]
    return {**out, "p": p}


def outcome_summary(values, threshold):
    """Per point (row) the mean, the median and the failure rate (share of
    finite values above ``threshold``) of ``values`` (points, seeds), with
    the count of missing values: the three side by side for heavy-tailed
    outcomes, where a few failed runs move the mean and not the median.

    Parameters
    ----------
    values : array_like of shape (points, seeds)
        The outcomes (NaN: missing).
    threshold : float
        A value above it is a failure.

    Returns
    -------
    dict
        ``mean``, ``median``, ``failure_rate``, ``n`` and ``n_missing`` per
        point, and ``threshold``.
    """
    v = np.asarray(values, float)
    ok = np.isfinite(v)
    n = ok.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(ok, v, 0.0).sum(axis=-1) / n
        fail = np.where(ok, v > threshold, False).sum(axis=-1) / n
    median = np.array(
        [
            np.median(row[np.isfinite(row)]) if np.isfinite(row).any() else np.nan
            for row in np.atleast_2d(v)
        ]
    )
    return {
        "mean": mean,
        "median": median.reshape(mean.shape),
        "failure_rate": fail,
        "threshold": float(threshold),
        "n": n,
        "n_missing": v.shape[-1] - n,
    }


def auc(score, label):
    """Area under the ROC curve of ``score`` for the binary ``label`` (1 =
    positive): P(score of a positive > score of a negative), ties counting
    one half (the Mann-Whitney U statistic over n_pos n_neg). NaN when a class
    is empty or a value is missing.

    Parameters
    ----------
    score : array_like
        The scores.
    label : array_like
        1 for a positive, 0 for a negative; of the shape of ``score``.

    Returns
    -------
    float
        The AUC in [0, 1], or NaN.

    Raises
    ------
    ValueError
        When ``score`` and ``label`` differ in shape.
    """
    score = np.asarray(score, float)
    label = np.asarray(label, float)
    if score.shape != label.shape:
        raise ValueError(f"score and label differ in shape: {score.shape} vs {label.shape}")
    if not (np.all(np.isfinite(score)) and np.all(np.isin(label, (0.0, 1.0)))):
        return float("nan")
    pos, neg = score[label == 1], score[label == 0]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    ranks = scipy.stats.rankdata(np.concatenate([pos, neg]))  # ties: mean rank
    u = ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2
    return float(u / (pos.size * neg.size))


def fisher_greater(exposed, event):
    """One-sided Fisher exact test: is ``event`` more frequent where
    ``exposed`` holds? Both boolean arrays over independent runs.

    Returns dict rate_exposed, rate_unexposed, n_exposed, n_unexposed, odds
    (sample odds ratio, may be inf), p (1 when a group is empty).

    Parameters
    ----------
    exposed : array_like of bool
        Whether each run is exposed.
    event : array_like of bool
        Whether the event happened in each run; of the shape of ``exposed``.

    Returns
    -------
    dict
        ``rate_exposed``, ``rate_unexposed``, ``n_exposed``, ``n_unexposed``,
        ``table`` (the 2 x 2 counts, exposed row first, event column first),
        ``odds`` and ``p``.

    Raises
    ------
    ValueError
        When the two arrays differ in shape.
    """
    x = np.asarray(exposed, bool)
    e = np.asarray(event, bool)
    if x.shape != e.shape:
        raise ValueError(f"exposed and event differ in shape: {x.shape} vs {e.shape}")
    table = [[int(np.sum(x & e)), int(np.sum(x & ~e))], [int(np.sum(~x & e)), int(np.sum(~x & ~e))]]
    nx, nu = int(x.sum()), int((~x).sum())
    out = {
        "rate_exposed": table[0][0] / nx if nx else float("nan"),
        "rate_unexposed": table[1][0] / nu if nu else float("nan"),
        "n_exposed": nx,
        "n_unexposed": nu,
        "table": table,
    }
    if nx == 0 or nu == 0:
        return {**out, "odds": float("nan"), "p": 1.0}
    r = scipy.stats.fisher_exact(table, alternative="greater")
    return {**out, "odds": float(r.statistic), "p": float(r.pvalue)}


def logistic_fit(X, y, ridge=1e-3):
    """Logistic regression logit P(y = 1) = b_0 + X b by maximum likelihood
    with the penalty (ridge / 2) |b|^2 on the slopes (not the intercept):
    the ridge keeps the estimate finite when the classes are separable.

    Parameters
    ----------
    X : array (n, k), or (n,) for one variable
        The explanatory variables.
    y : array (n,) of 0/1
        The outcomes.
    ridge : float
        The penalty's weight on the slopes.

    Returns
    -------
    dict ``coef`` (k + 1,: intercept first), ``loglik`` (the unpenalised
    log-likelihood at the estimate), ``n``, ``converged``.

    Raises
    ------
    ValueError
        When X and y have different numbers of rows.
    """
    X = np.asarray(X, float)
    X = X[:, None] if X.ndim == 1 else X
    y = np.asarray(y, float)
    if X.shape[0] != y.size:
        raise ValueError(f"X has {X.shape[0]} rows for {y.size} labels")
    Z = np.column_stack([np.ones(len(y)), X])
    pen = np.full(Z.shape[1], ridge)
    pen[0] = 0.0

    def nll(b):
        t = Z @ b
        # log(1 + e^t) - y t, the logistic loss, computed stably
        return float(np.sum(np.logaddexp(0.0, t) - y * t) + 0.5 * np.sum(pen * b * b))

    def grad(b):
        p = scipy.special.expit(Z @ b)
        return Z.T @ (p - y) + pen * b

    r = scipy.optimize.minimize(
        nll, np.zeros(Z.shape[1]), jac=grad, method="BFGS", options={"gtol": 1e-8, "maxiter": 10000}
    )
    t = Z @ r.x
    return {
        "coef": r.x,
        "loglik": float(-np.sum(np.logaddexp(0.0, t) - y * t)),
        "n": int(len(y)),
        "converged": bool(r.success),
    }
