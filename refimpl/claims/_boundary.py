"""The boundary of a row of a phase diagram and its slope across rows, with a
seed bootstrap (the claim phase_single; docs/model.md §8.2): a row's boundary
|mu|* is where its mean clean error first crosses :data:`BOUNDARY_ERROR` along
increasing |mu|, interpolated in log |mu|; the slope is that of log |mu|* on
log x over the rows."""

import numpy as np

BOUNDARY_ERROR = 0.2
"""The clean test error that defines the boundary |mu|* of a row (where the
mean clean error crosses it): an error threshold, not a significance level."""


def boundary(mus, err):
    """|mu| where the error curve (decreasing in |mu|) first crosses
    BOUNDARY_ERROR (from >= to <); interpolated in log |mu|; NaN if it does
    not cross."""
    lm = np.log(mus)
    for k in range(len(mus) - 1):
        a, b = err[k], err[k + 1]
        if a >= BOUNDARY_ERROR > b:
            return float(np.exp(lm[k] + (a - BOUNDARY_ERROR) / (a - b) * (lm[k + 1] - lm[k])))
    return float("nan")


def slope(xs, mus, errs):
    """Fitted slope of log |mu|* against log x; errs (x, mu) mean errors."""
    bs = np.array([boundary(mus, e) for e in errs])
    ok = np.isfinite(bs)
    if ok.sum() < 2:
        return float("nan"), bs
    return float(np.polyfit(np.log(np.asarray(xs, float)[ok]), np.log(bs[ok]), 1)[0]), bs


def fit(P, rng, resamples):
    """Boundary slope of one panel and its bootstrap 95% CI (seeds resampled
    within each cell; ``rng`` is advanced)."""
    err = P["err"]
    point, bounds = slope(P["xs"], P["mus"], err.mean(axis=2))
    boots = []
    for _ in range(resamples):
        idx = rng.integers(0, err.shape[2], size=err.shape)
        s, _ = slope(P["xs"], P["mus"], np.take_along_axis(err, idx, axis=2).mean(axis=2))
        if np.isfinite(s):
            boots.append(s)
    ci = (float("nan"), float("nan"))
    if len(boots) > 20:
        ci = (float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5)))
    return {"slope": point, "ci": ci, "bounds": bounds, "n_boot": len(boots)}
