"""Signal-noise decomposition (MODEL.md section 4): reconstruction of the
weights from the tracked coefficients, an independent recovery of the
coefficients from weight snapshots alone, and the invariants the theory
guarantees.

    w_{j,r}^(t) = s_t w_{j,r}^[0] + j sum_s gamma_{j,r,s} sig_s/|sig_s|^2
                  + sum_i (rho_bar_{j,r,i} + rho_under_{j,r,i}) xi_i/|xi_i|^2
"""
from __future__ import annotations

import numpy as np
import scipy.linalg

__all__ = ["reconstruct", "reconstruction_error", "project", "project_stage", "projection_error",
           "invariants", "scales", "own_entries", "universal_knowledge", "noise_part", "J"]

J = np.array([1.0, -1.0])  # the class j of axis 0 of W


def _directions(signals, xi):
    """sig_s/|sig_s|^2 (0 for a zero signal) and xi_i/|xi_i|^2."""
    sig_sq = np.sum(signals**2, axis=1)
    sig_dir = np.divide(signals, sig_sq[:, None], out=np.zeros_like(signals),
                        where=sig_sq[:, None] > 0)
    return sig_dir, xi / np.sum(xi**2, axis=1)[:, None]


def reconstruct(W0, scale, signals, xi, gamma, rho_bar, rho_under):
    """Weights from the decomposition (MODEL.md section 4).

    Parameters
    ----------
    W0 : ndarray of shape (2, m, d)
        The stage's initial weights w^[0].
    scale : ndarray of shape (2, m)
        s_t per filter.
    signals : ndarray of shape (S, d)
    xi : ndarray of shape (n, d)
    gamma : ndarray of shape (..., 2, m, S)
    rho_bar, rho_under : ndarray of shape (..., 2, m, n)

    Returns
    -------
    ndarray of shape (..., 2, m, d)
    """
    sig_dir, xi_dir = _directions(signals, xi)
    return (scale[..., None] * W0
            + J[:, None, None] * np.einsum("...jrs,sd->...jrd", gamma, sig_dir)
            + np.einsum("...jri,id->...jrd", rho_bar + rho_under, xi_dir))


def scales(steps, trainable, eta, weight_decay):
    """s_t per snapshot and filter: (1 - eta*lambda)^t for trainable filters,
    1 for frozen ones (MODEL.md section 4).

    Parameters
    ----------
    steps : int or ndarray of shape (K,)
    trainable : ndarray of shape (2, m), bool
    eta, weight_decay : float

    Returns
    -------
    ndarray of shape (2, m) (scalar steps) or (K, 2, m)
    """
    t = np.asarray(steps, dtype=np.float64)[..., None, None]
    return np.where(np.asarray(trainable, bool), (1.0 - eta * weight_decay) ** t, 1.0)


def own_entries(y):
    """Mask of the entries (j, i) with y_i = j, shape (2, 1, n): where rho_bar
    lives; rho_under lives on the complement (MODEL.md section 4)."""
    return np.asarray(y)[None, None, :] == J[:, None, None]


def _stage_scales(stage):
    return scales(stage.steps, stage.trainable, stage.eta, stage.weight_decay)


def reconstruction_error(stage):
    """Largest relative difference, over snapshots, between the GD weights and
    the reconstruction from the tracked coefficients:
    max_t |W_t - recon_t|_max / max(|W_t|_max, tiny)."""
    recon = reconstruct(stage.W0, _stage_scales(stage), stage.task.signals, stage.task.xi,
                        stage.gamma, stage.rho_bar, stage.rho_under)
    diff = np.abs(stage.W - recon).max(axis=(1, 2, 3))
    size = np.maximum(np.abs(stage.W).max(axis=(1, 2, 3)), np.finfo(float).tiny)
    return float(np.max(diff / size))


def project(W, W0, scale, signals, xi, y):
    """Recover the coefficients from weights alone (MODEL.md section 4).

    Solves the Gram system of the basis {sig_s/|sig_s|^2, xi_i/|xi_i|^2} for
    W - s_t W0 (least squares; exact when the basis is independent, n + S <= d)
    and reads gamma_s = j c_s, and rho_i = c_i split by the label: rho_bar
    where y_i = j, rho_under where y_i = -j. Zero signals get gamma = 0.

    Parameters
    ----------
    W : ndarray of shape (..., 2, m, d)
    W0 : ndarray of shape (2, m, d)
    scale : ndarray of shape (..., 2, m)
    signals : ndarray of shape (S, d)
    xi : ndarray of shape (n, d)
    y : ndarray of shape (n,)

    Returns
    -------
    gamma : ndarray of shape (..., 2, m, S)
    rho_bar, rho_under : ndarray of shape (..., 2, m, n)
    """
    sig_dir, xi_dir = _directions(signals, xi)
    nonzero = np.sum(signals**2, axis=1) > 0
    basis = np.concatenate([sig_dir[nonzero], xi_dir])           # (S' + n, d)
    R = W - scale[..., None] * W0                                # (..., 2, m, d)
    gram = basis @ basis.T
    rhs = np.einsum("...d,bd->...b", R, basis)
    coef = scipy.linalg.solve(gram, rhs.reshape(-1, basis.shape[0]).T, assume_a="pos").T
    coef = coef.reshape(R.shape[:-1] + (basis.shape[0],))
    S = signals.shape[0]
    gamma = np.zeros(R.shape[:-1] + (S,))
    gamma[..., nonzero] = J[:, None, None] * coef[..., : nonzero.sum()]
    rho = coef[..., nonzero.sum():]
    same = y[None, None, :] == J[:, None, None]
    return gamma, np.where(same, rho, 0.0), np.where(same, 0.0, rho)


def project_stage(stage):
    """:func:`project` applied to every snapshot of a :class:`~refimpl.train.Stage`."""
    return project(stage.W, stage.W0, _stage_scales(stage), stage.task.signals,
                   stage.task.xi, stage.task.y)


def projection_error(stage):
    """Largest difference between projected and tracked coefficients, relative
    to the largest tracked coefficient of the same kind."""
    worst = 0.0
    for name, rec in zip(("gamma", "rho_bar", "rho_under"), project_stage(stage)):
        tracked = getattr(stage, name)
        size = max(np.abs(tracked).max(initial=0.0), np.finfo(float).tiny)
        worst = max(worst, float(np.abs(rec - tracked).max(initial=0.0) / size))
    return worst


def invariants(stage):
    """The signs and monotonicity MODEL.md section 4 guarantees, checked over
    the snapshots: with lambda = 0, rho_bar >= 0 and nondecreasing,
    rho_under <= 0 and nonincreasing; with lambda = 0 and clean training labels
    (p = 0, or no flip drawn), gamma nondecreasing.
    Returns {name: {"applies": bool, "holds": bool or None}}.
    """
    plain = stage.weight_decay == 0.0
    clean = bool(np.all(stage.task.y == stage.task.y_clean))
    rb, ru, g = stage.rho_bar, stage.rho_under, stage.gamma
    checks = {
        "rho_bar >= 0": (plain, lambda: bool(np.all(rb >= 0))),
        "rho_bar nondecreasing": (plain, lambda: bool(np.all(np.diff(rb, axis=0) >= 0))),
        "rho_under <= 0": (plain, lambda: bool(np.all(ru <= 0))),
        "rho_under nonincreasing": (plain, lambda: bool(np.all(np.diff(ru, axis=0) <= 0))),
        "gamma nondecreasing": (plain and clean,
                                lambda: bool(np.all(np.diff(g, axis=0) >= 0))),
    }
    return {name: {"applies": applies, "holds": test() if applies else None}
            for name, (applies, test) in checks.items()}


def universal_knowledge(W, u):
    """K_{j,r} = j <w_{j,r}, u> (MODEL.md section 4), shape (..., 2, m)."""
    return J[:, None] * np.einsum("...jrd,d->...jr", W, u)


def noise_part(stage, k=-1):
    """sum_i (rho_bar + rho_under)_{j,r,i} xi_i/|xi_i|^2 at snapshot k, shape (2, m, d):
    the noise memorised during the stage (MODEL.md section 4)."""
    _, xi_dir = _directions(stage.task.signals, stage.task.xi)
    return np.einsum("jri,id->jrd", stage.rho_bar[k] + stage.rho_under[k], xi_dir)
