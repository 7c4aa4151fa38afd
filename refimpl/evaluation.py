"""Test error with standard errors, by two estimators (docs/model.md §6).

A fresh point is an error when yhat f(W, x) <= 0 (clean) or y f(W, x) <= 0
(noisy); ties count as errors. The noisy error follows from the clean one
exactly: p + (1 - 2p) * clean.
"""

from __future__ import annotations

import numpy as np

from .config import ESTIMATORS, LAYOUTS, integer_argument, real_argument, shown
from .data import noise_basis, sample_task, task_signals
from .errors import ConfigError
from .network import check_weights, forward

__all__ = ["estimate_test_error", "ESTIMATORS"]

_BATCH = 4096


def _sample_errors(W, u, v, sigma_p, layout, n_test, rng):
    """Per-point clean errors 1(yhat f(W, x) <= 0) on fresh inputs in d dims
    (drawn like training data, docs/model.md §2, without label flips)."""
    out = []
    for start in range(0, n_test, _BATCH):
        test = sample_task(rng, min(_BATCH, n_test - start), u, v, sigma_p, 0.0, layout)
        out.append((test.y_clean * forward(W, test.X) <= 0).astype(float))
    return np.concatenate(out)


def _reduced_errors(W, u, v, sigma_p, layout, n_test, rng):
    """Per-draw clean errors from the 2m-dimensional noise term (section 6).

    Only z = W xi enters f's noise part, and z ~ N(0, sigma_p^2 W Pi W^T). The
    signal patches are deterministic given yhat, so each draw of z is scored
    for both yhat = +1 and -1 (each with probability 1/2) and the draw's error
    is the average of the two: the same expectation as the sample estimator.
    """
    two, m, d = W.shape
    Wf = W.reshape(2 * m, d)
    basis = noise_basis(u, v)
    P_W = Wf @ basis.T
    cov = sigma_p**2 * (Wf @ Wf.T - P_W @ P_W.T)  # sigma_p^2 W Pi W^T
    vals, vecs = np.linalg.eigh(cov)
    root = vecs * np.sqrt(np.clip(vals, 0.0, None))  # cov = root root^T
    sig_pre = Wf @ task_signals(u, v, layout).T  # <w_k, sig_s>, (2m, S)
    sign = np.repeat([1.0, -1.0], m)  # j of each row
    errors = np.empty(n_test)
    for start in range(0, n_test, _BATCH):
        b = min(_BATCH, n_test - start)
        z = rng.standard_normal((b, 2 * m)) @ root.T  # (b, 2m)
        noise_part = np.maximum(z, 0.0) @ sign / m  # (1/m) sum_k j_k sigma(z_k)
        score = 0.0
        for y_hat in (1.0, -1.0):
            signal_part = np.maximum(y_hat * sig_pre, 0.0).sum(axis=1) @ sign / m
            score = score + 0.5 * (y_hat * (signal_part + noise_part) <= 0)
        errors[start : start + b] = score
    return errors


def estimate_test_error(W, u, v, sigma_p, flip, layout, n_test, rng, estimator="reduced"):
    """Clean and noisy test error of the network W on a task, with standard errors.

    Parameters
    ----------
    W : ndarray of shape (2, m, d)
        The network's weights.
    u, v : ndarray of shape (d,)
        The task's shared and own signal.
    sigma_p, flip : float
        The noise level sigma_p (> 0) and the label-flip probability (in
        [0, 0.5)).
    layout : {"joint", "split"}
        The patch layout (docs/model.md §2).
    n_test : int
        Independent draws.
    rng : numpy.random.Generator
        The source of the draws.
    estimator : {"reduced", "sample"}
        ``"reduced"``: each draw of the noise term W xi scored for both
        yhat = +1 and -1 (docs/model.md §6); ``"sample"``: fresh inputs drawn
        like training data, without label flips.

    Returns
    -------
    dict with ``clean_error``, ``clean_error_se``, ``noisy_error``,
    ``noisy_error_se``, ``n_test``, ``estimator``.

    Raises
    ------
    ConfigError
        When an argument is unusable (out of the bounds of the Config fields,
        u or v not a finite real vector of W's d, an unknown layout or
        estimator).
    """
    W = check_weights(W)
    n_test = _check_arguments(W, u, v, sigma_p, flip, layout, n_test, rng, estimator)
    # f is positively homogeneous in W (ReLU, no biases): the sign of f, all an
    # error depends on, is the same for W / 2^k, and dividing by a power of two
    # is exact. Scaling the largest entry to about 1 keeps sigma_p^2 W Pi W^T
    # and the pre-activations finite for any finite W.
    peak = np.abs(W).max()
    if peak > 0:
        W = np.ldexp(W, -int(np.frexp(peak)[1]))
    draw = _reduced_errors if estimator == "reduced" else _sample_errors
    e = draw(W, u, v, sigma_p, layout, n_test, rng)
    clean, se = float(e.mean()), float(e.std(ddof=1) / np.sqrt(e.size))
    return {
        "clean_error": clean,
        "clean_error_se": se,
        "noisy_error": flip + (1.0 - 2.0 * flip) * clean,
        "noisy_error_se": (1.0 - 2.0 * flip) * se,
        "n_test": n_test,
        "estimator": estimator,
    }


def _check_arguments(W, u, v, sigma_p, flip, layout, n_test, rng, estimator):
    """The arguments of :func:`estimate_test_error`, each a ConfigError naming
    it when unusable (the bounds of the Config fields); returns n_test as an int."""
    label = "estimate_test_error"
    for name, value in (("layout", layout), ("estimator", estimator)):
        options = LAYOUTS if name == "layout" else ESTIMATORS
        if not isinstance(value, str) or value not in options:
            raise ConfigError(
                f"{label}: {name} must be one of {', '.join(options)}, got {shown(value)}"
            )
    n_test = integer_argument(f"{label}: n_test", n_test, 2, 10**7)
    real_argument(f"{label}: sigma_p", sigma_p, 0.0, lo_open=True)
    real_argument(f"{label}: flip", flip, 0.0)
    if flip >= 0.5:
        raise ConfigError(f"{label}: flip must be in [0.0, 0.5), got {flip}")
    for name, given in (("u", u), ("v", v)):
        try:
            vector = np.asarray(given)
        except (ValueError, TypeError):  # ragged nesting
            vector = np.zeros(0, object)
        if vector.shape != W.shape[2:] or vector.dtype.kind not in "iuf":
            raise ConfigError(
                f"{label}: {name} must be a real vector of shape ({W.shape[2]},) like W's d, "
                f"got {shown(given)}"
            )
        if not np.all(np.isfinite(vector)):
            raise ConfigError(f"{label}: {name} has non-finite entries")
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(f"{label}: rng must be a numpy.random.Generator, got {shown(rng)}")
    if not np.all(np.isfinite(W)):
        raise ConfigError(f"{label}: W has non-finite entries")
    return n_test
