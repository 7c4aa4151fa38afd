"""Signal-noise decomposition (docs/model.md §4): reconstruction of the
weights from the tracked coefficients, an independent recovery of the
coefficients from weight snapshots alone, and the invariants the theory
guarantees.

    w_{j,r}^(t) = s_t w_{j,r}^[0] + j sum_s gamma_{j,r,s} sig_s/|sig_s|^2
                  + sum_i (rho_bar_{j,r,i} + rho_under_{j,r,i}) xi_i/|xi_i|^2

What the coefficients mean, for any data whose patch roles are determined
(:func:`refimpl.data.patch_roles`): GD adds to w_{j,r} a combination of the
training patches (docs/model.md §9.1); gamma_{j,r,s} is j |sig_s|^2 times the
total weight it gave to the patches yhat_i sig_s, signed by yhat_i, and
rho_{j,r,i} is |xi_i|^2 times the total weight it gave to the noise patch xi_i
(§9.3). The reconstruction above is therefore exact to rounding whatever the
geometry: neither orthogonality nor independence of {sig_s, xi_i} is needed,
and :func:`reconstruction_error` checks exactly this bookkeeping.

Two readings need more:

* linear independence of {sig_s (nonzero), xi_1..xi_n} (almost sure for
  n + S <= d): the coefficients are then the unique coordinates of
  W_t - s_t W^[0] in that basis, and :func:`project` recovers them from the
  weights alone; otherwise it refuses (:class:`DependentBasisError`);
* orthogonality of every xi_i and every other signal to sig_s (refimpl's own
  data, docs/model.md §2.3): only then is gamma_{j,r,s} = j <w - s_t w^[0], sig_s>,
  and j <w, u> reads the signal part alone (:func:`universal_knowledge`).
  With noise that has components along the signals the coefficients keep the
  meaning above, but inner products with a signal mix in noise terms.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from .data import patch_roles  # re-exported: the roles say which patch is which vector
from .errors import DependentBasisError, UntrackedStageError

__all__ = [
    "reconstruct",
    "reconstruction_error",
    "project",
    "project_stage",
    "projection_error",
    "invariants",
    "scales",
    "own_entries",
    "universal_knowledge",
    "noise_part",
    "basis_vectors",
    "patch_roles",
    "UntrackedStageError",
    "DependentBasisError",
    "MAX_CONDITION",
    "J",
]

J = np.array([1.0, -1.0])  # the class j of axis 0 of W

MAX_CONDITION = 1e10
"""Largest condition number of the (unit-normalised) basis Gram matrix that
:func:`project` accepts; its result is accurate to about cond * 1e-16."""


def _require_coefficients(stage):
    if stage.gamma is None or stage.rho_bar is None or stage.rho_under is None:
        raise UntrackedStageError(
            "stage was trained with track=False: no coefficients (train it with track=True)"
        )


def _directions(signals, xi):
    """sig_s/|sig_s|^2 and xi_i/|xi_i|^2, (S, d) and (n, d); a zero vector
    gets a zero direction (its patch is zero, so its coefficient is too)."""
    sig_sq = np.sum(signals**2, axis=1)
    xi_sq = np.sum(xi**2, axis=1)
    sig_dir = np.divide(
        signals, sig_sq[:, None], out=np.zeros_like(signals), where=sig_sq[:, None] > 0
    )
    xi_dir = np.divide(xi, xi_sq[:, None], out=np.zeros_like(xi), where=xi_sq[:, None] > 0)
    return sig_dir, xi_dir


def basis_vectors(task):
    """The vectors the coefficients multiply, as GD used them: the signals and
    the noise patches X[i, q(i)] found by the patch roles (docs/model.md §9.3),
    which :func:`refimpl.data.patch_roles` checks against ``task.xi``.

    Parameters
    ----------
    task : Task
        A task with its signal/noise structure.

    Returns
    -------
    signals : ndarray of shape (S, d)
    noise : ndarray of shape (n, d)

    Raises
    ------
    PatchRoleError
        When the roles of some inputs cannot be determined.
    """
    roles = task.roles()
    q = np.argmax(roles == -1, axis=1)
    return np.asarray(task.signals, dtype=np.float64), task.X[np.arange(task.n), q]


def reconstruct(W0, scale, signals, xi, gamma, rho_bar, rho_under):
    """Weights from the decomposition (docs/model.md §4.1, §4.3):

        w = s_t w^[0] + j sum_s gamma_s sig_s/|sig_s|^2
              + sum_i (rho_bar + rho_under)_i xi_i/|xi_i|^2

    No orthogonality is assumed (see the module docstring).

    Parameters
    ----------
    W0 : ndarray of shape (2, m, d)
        The stage's initial weights w^[0].
    scale : ndarray of shape (2, m)
        s_t per filter.
    signals : ndarray of shape (S, d)
        The signal rows mu_s.
    xi : ndarray of shape (n, d)
        The noise patches xi_i.
    gamma : ndarray of shape (..., 2, m, S)
        Signal coefficients gamma_{j,r,s}.
    rho_bar, rho_under : ndarray of shape (..., 2, m, n)
        Noise coefficients where y_i = j and where y_i = -j.

    Returns
    -------
    ndarray of shape (..., 2, m, d)
    """
    sig_dir, xi_dir = _directions(signals, xi)
    return (
        scale[..., None] * W0
        + J[:, None, None] * np.einsum("...jrs,sd->...jrd", gamma, sig_dir)
        + np.einsum("...jri,id->...jrd", rho_bar + rho_under, xi_dir)
    )


def scales(steps, trainable, eta, weight_decay):
    """s_t per snapshot and filter: (1 - eta*lambda)^t for trainable filters,
    1 for frozen ones (docs/model.md §4).

    Parameters
    ----------
    steps : int or ndarray of shape (K,)
        The steps t.
    trainable : ndarray of shape (2, m), bool
        False marks a frozen filter.
    eta, weight_decay : float
        Step size eta and L2 coefficient lambda.

    Returns
    -------
    ndarray of shape (2, m) (scalar steps) or (K, 2, m)
    """
    t = np.asarray(steps, dtype=np.float64)[..., None, None]
    return np.where(np.asarray(trainable, bool), (1.0 - eta * weight_decay) ** t, 1.0)


def own_entries(y):
    """Mask of the entries (j, i) with y_i = j, shape (2, 1, n): where rho_bar
    lives; rho_under lives on the complement (docs/model.md §4).

    Parameters
    ----------
    y : array_like of shape (n,)
        The observed labels y_i, +1 or -1.

    Returns
    -------
    ndarray of shape (2, 1, n), bool
        True where y_i = j (axis 0: j = +1, then -1).
    """
    return np.asarray(y)[None, None, :] == J[:, None, None]


def _stage_scales(stage):
    return scales(stage.steps, stage.trainable, stage.eta, stage.weight_decay)


def reconstruction_error(stage):
    """Largest relative difference, over snapshots, between the GD weights and
    the reconstruction from the tracked coefficients (docs/model.md §4.5):
    max_t |W_t - recon_t|_max / max(|W_t|_max, tiny).

    The reconstruction uses the vectors GD actually used (:func:`basis_vectors`):
    it checks the bookkeeping of the tracking, which is exact whatever the
    geometry of the signals and the noise.

    Parameters
    ----------
    stage : Stage
        A trained stage (:func:`refimpl.train.train_stage`).

    Returns
    -------
    float
        The largest relative difference.

    Raises
    ------
    UntrackedStageError
        The stage has no coefficients (``track=False``).
    PatchRoleError
        The patch roles of some inputs cannot be determined.
    """
    _require_coefficients(stage)
    signals, noise = basis_vectors(stage.task)
    recon = reconstruct(
        stage.W0, _stage_scales(stage), signals, noise, stage.gamma, stage.rho_bar, stage.rho_under
    )
    diff = np.abs(stage.W - recon).max(axis=(1, 2, 3))
    size = np.maximum(np.abs(stage.W).max(axis=(1, 2, 3)), np.finfo(float).tiny)
    return float(np.max(diff / size))


def project(W, W0, scale, signals, xi, y):
    """Recover the coefficients from weights alone (docs/model.md §4.4).

    Solves the Gram system of the basis {sig_s/|sig_s|^2, xi_i/|xi_i|^2} for
    the coordinates c of W - s_t W0 (the normal equations of least squares;
    no orthogonality assumed) and reads gamma_s = j c_s, and rho_i = c_i split
    by the label: rho_bar where y_i = j, rho_under where y_i = -j. Zero
    signals get gamma = 0. The coordinates are unique only when the basis is
    linearly independent (almost surely when n + S <= d); a basis that is
    not, to rounding, is refused rather than answered with arbitrary numbers.

    Parameters
    ----------
    W : ndarray of shape (..., 2, m, d)
        The weights (one stage's snapshots, or one set).
    W0 : ndarray of shape (2, m, d)
        The stage's initial weights w^[0].
    scale : ndarray of shape (..., 2, m)
        s_t per filter, for each set of weights.
    signals : ndarray of shape (S, d)
        The signal rows mu_s.
    xi : ndarray of shape (n, d)
        The noise patches xi_i.
    y : ndarray of shape (n,)
        The observed labels y_i (which split rho into rho_bar and rho_under).

    Returns
    -------
    gamma : ndarray of shape (..., 2, m, S)
    rho_bar, rho_under : ndarray of shape (..., 2, m, n)

    Raises
    ------
    DependentBasisError
        n + S' > d (S' the nonzero signals), a zero noise vector, or a basis
        Gram matrix whose condition number exceeds :data:`MAX_CONDITION`.
    """
    sig_dir, xi_dir = _directions(signals, xi)
    nonzero = np.sum(signals**2, axis=1) > 0
    basis = np.concatenate([sig_dir[nonzero], xi_dir])  # (S' + n, d)
    _check_independent(basis)
    R = W - scale[..., None] * W0  # (..., 2, m, d)
    gram = basis @ basis.T
    rhs = np.einsum("...d,bd->...b", R, basis)
    coef = scipy.linalg.solve(gram, rhs.reshape(-1, basis.shape[0]).T, assume_a="pos").T
    coef = coef.reshape(R.shape[:-1] + (basis.shape[0],))
    S = signals.shape[0]
    gamma = np.zeros(R.shape[:-1] + (S,))
    gamma[..., nonzero] = J[:, None, None] * coef[..., : nonzero.sum()]
    rho = coef[..., nonzero.sum() :]
    same = y[None, None, :] == J[:, None, None]
    return gamma, np.where(same, rho, 0.0), np.where(same, 0.0, rho)


def _check_independent(basis):
    """Refuse a basis (k, d) that is not linearly independent to rounding."""
    k, d = basis.shape
    if k > d:
        raise DependentBasisError(
            f"coefficients cannot be recovered by projection: {k} signal "
            f"and noise vectors in d = {d} dimensions are not independent"
        )
    norms = np.linalg.norm(basis, axis=1)
    if np.any(norms == 0):
        raise DependentBasisError(
            "coefficients cannot be recovered by projection: noise vector "
            f"{int(np.argmin(norms))} is zero"
        )
    unit = basis / norms[:, None]
    eig = np.linalg.eigvalsh(unit @ unit.T)  # scale-free conditioning
    cond = eig[-1] / eig[0] if eig[0] > 0 else np.inf
    if cond > MAX_CONDITION:
        raise DependentBasisError(
            "coefficients cannot be recovered by projection: the signal and noise vectors are "
            f"not independent to rounding (Gram condition number {cond:.1e} > {MAX_CONDITION:.0e})"
        )


def project_stage(stage):
    """:func:`project` applied to every snapshot of a :class:`~refimpl.train.Stage`,
    in the basis GD used (:func:`basis_vectors`). Needs no tracked
    coefficients, only determinable patch roles and an independent basis.

    Parameters
    ----------
    stage : Stage
        A trained stage (:func:`refimpl.train.train_stage`), tracked or not.

    Returns
    -------
    gamma : ndarray of shape (K, 2, m, S)
    rho_bar, rho_under : ndarray of shape (K, 2, m, n)

    Raises
    ------
    PatchRoleError
        When the patch roles of some inputs cannot be determined.
    DependentBasisError
        When the basis is not linearly independent to rounding.
    """
    signals, noise = basis_vectors(stage.task)
    return project(stage.W, stage.W0, _stage_scales(stage), signals, noise, stage.task.y)


def projection_error(stage):
    """Largest difference between projected and tracked coefficients, relative
    to the largest tracked coefficient of the same kind (docs/model.md §4.5).

    A kind whose tracked coefficients are all exactly 0 (a stage that learned
    nothing, e.g. every ReLU off) is measured against the size a coefficient
    of a weight-sized vector would have, max|W| * max|v| (v the signals for
    gamma, the noise vectors for rho): the projection of W - s_t W^[0] then
    holds rounding residues only, which this reports as rounding.

    Parameters
    ----------
    stage : Stage
        A trained stage (:func:`refimpl.train.train_stage`).

    Returns
    -------
    float
        The largest relative difference over gamma, rho_bar and rho_under.

    Raises
    ------
    UntrackedStageError, PatchRoleError, DependentBasisError
    """
    _require_coefficients(stage)
    signals, noise = basis_vectors(stage.task)
    weight_size = np.abs(stage.W).max(initial=0.0)
    worst = 0.0
    for name, rec in zip(("gamma", "rho_bar", "rho_under"), project_stage(stage), strict=True):
        tracked = getattr(stage, name)
        size = np.abs(tracked).max(initial=0.0)
        if size == 0.0:
            vectors = signals if name == "gamma" else noise
            size = weight_size * np.abs(vectors).max(initial=0.0)
        size = max(size, np.finfo(float).tiny)
        worst = max(worst, float(np.abs(rec - tracked).max(initial=0.0) / size))
    return worst


def invariants(stage):
    """The signs and monotonicity docs/model.md §4 guarantees, checked over
    the snapshots: with lambda = 0, rho_bar >= 0 and nondecreasing,
    rho_under <= 0 and nonincreasing; with lambda = 0 and clean training labels
    (p = 0, or no flip drawn), gamma nondecreasing.
    Returns {name: {"applies": bool, "holds": bool or None}}.

    Parameters
    ----------
    stage : Stage
        A trained stage (:func:`refimpl.train.train_stage`).

    Returns
    -------
    dict of str to dict
        Per check (``"rho_bar >= 0"``, ``"rho_bar nondecreasing"``,
        ``"rho_under <= 0"``, ``"rho_under nonincreasing"``, ``"gamma
        nondecreasing"``): ``applies``, whether the stage's lambda and labels
        make it a guarantee, and ``holds``, whether it held (None when it
        does not apply).

    Raises
    ------
    UntrackedStageError
        The stage has no coefficients (``track=False``).
    """
    _require_coefficients(stage)
    plain = stage.weight_decay == 0.0
    clean = bool(np.all(stage.task.y == stage.task.y_clean))
    rb, ru, g = stage.rho_bar, stage.rho_under, stage.gamma
    checks = {
        "rho_bar >= 0": (plain, lambda: bool(np.all(rb >= 0))),
        "rho_bar nondecreasing": (plain, lambda: bool(np.all(np.diff(rb, axis=0) >= 0))),
        "rho_under <= 0": (plain, lambda: bool(np.all(ru <= 0))),
        "rho_under nonincreasing": (plain, lambda: bool(np.all(np.diff(ru, axis=0) <= 0))),
        "gamma nondecreasing": (plain and clean, lambda: bool(np.all(np.diff(g, axis=0) >= 0))),
    }
    return {
        name: {"applies": applies, "holds": test() if applies else None}
        for name, (applies, test) in checks.items()
    }


def universal_knowledge(W, u):
    """K_{j,r} = j <w_{j,r}, u> (docs/model.md §4), shape (..., 2, m).

    Parameters
    ----------
    W : ndarray of shape (..., 2, m, d)
        The weights.
    u : ndarray of shape (d,)
        The shared signal.

    Returns
    -------
    ndarray of shape (..., 2, m)
        K_{j,r} per filter.
    """
    return J[:, None] * np.einsum("...jrd,d->...jr", W, u)


def noise_part(stage, k=-1):
    """sum_i (rho_bar + rho_under)_{j,r,i} xi_i/|xi_i|^2 at snapshot k, shape (2, m, d):
    the noise memorised during the stage (docs/model.md §4.6), with the noise
    patches GD used (:func:`basis_vectors`).

    Parameters
    ----------
    stage : Stage
        A trained stage (:func:`refimpl.train.train_stage`).
    k : int, optional
        The snapshot index (-1: the last).

    Returns
    -------
    ndarray of shape (2, m, d)
        The memorised noise of every filter.

    Raises
    ------
    UntrackedStageError, PatchRoleError
    """
    _require_coefficients(stage)
    _, xi_dir = _directions(*basis_vectors(stage.task))
    return np.einsum("jri,id->jrd", stage.rho_bar[k] + stage.rho_under[k], xi_dir)
