"""Coefficients of a file's stage: from the file, or recovered from its weight
snapshots by projection (docs/model.md §4.4), and what the basis allows.

Which patch of an input holds which signal and which holds the noise (its
patch roles, docs/model.md §2.4) comes from the file's ``s/patch_role`` or is
derived from the data (:func:`refimpl.data.patch_roles`); inputs whose roles
cannot be determined are refused (:class:`~refimpl.errors.PatchRoleError`,
naming them). Projection reads the coordinates of W - s_t W0 in the basis
{signals, xi_1..xi_n}, whatever the order of the patches; the replay tracks
them with the roles (``train_stage(track=True)``).

Noise that is not orthogonal to the signals (Kou et al.'s generator draws
xi ~ N(0, sigma_p^2 I)) leaves both exact: the increments of GD are
combinations of the patches, so the coefficients are the coordinates in the
(non-orthogonal) basis {signals, xi}, unique while the basis is independent.
What no longer holds is their reading as inner products (gamma = j <R, mu>,
universal knowledge j <w, u>): :func:`basis_note` says so in the report.
"""

from __future__ import annotations

import numpy as np

from ..decomposition import project, reconstruct, scales
from ..trajectory import COEFFICIENT_KEYS

__all__ = [
    "recover_coefficients",
    "file_run",
    "basis_note",
    "span_error",
    "ORTHOGONAL_COS",
    "SPAN_TOLERANCE",
]

ORTHOGONAL_COS = 1e-10  # |cos(xi_i, sig_s)| above this: the noise is not orthogonal
SPAN_TOLERANCE = 1e-3
"""A relative reconstruction error (:func:`span_error`) above this: the weights'
increments are not in the span of {signals, xi} (rounding, float32 storage
included, stays far below)."""


def recover_coefficients(W, W0, steps, trainable, eta, weight_decay, signals, xi, y):
    """Coefficients from weight snapshots alone by the projection recovery
    (docs/model.md §4.4; :func:`refimpl.decomposition.project`).

    Parameters
    ----------
    W : ndarray of shape (K, 2, m, d)
        The weight snapshots.
    W0 : ndarray of shape (2, m, d)
        The stage's initial weights w^[0].
    steps : ndarray of shape (K,)
        The step of each snapshot.
    trainable : ndarray of shape (2, m), bool
        False marks a frozen filter.
    eta, weight_decay : float
        Step size eta and L2 coefficient lambda (they give s_t).
    signals : ndarray of shape (S, d)
        The signal rows mu_s.
    xi : ndarray of shape (n, d)
        The noise patches xi_i.
    y : ndarray of shape (n,)
        The observed labels y_i.

    Returns
    -------
    gamma : ndarray of shape (K, 2, m, S)
    rho_bar, rho_under : ndarray of shape (K, 2, m, n)

    Raises
    ------
    ValueError
        When the basis {signals, xi_1..xi_n} cannot be independent (n + S' > d,
        S' the nonzero signals) or its Gram matrix is singular.
    """
    import scipy.linalg

    W, W0, signals, xi, y = (np.asarray(a, dtype=np.float64) for a in (W, W0, signals, xi, y))
    n, d = xi.shape
    S = int(np.sum(np.sum(signals**2, axis=1) > 0))
    if n + S > d:
        raise ValueError(
            f"coefficients cannot be recovered by projection: n + S = {n + S} "
            f"basis vectors in d = {d} dimensions are not independent"
        )
    scale = scales(steps, trainable, eta, weight_decay)
    try:
        return project(W, W0, scale, signals, xi, y)
    except (np.linalg.LinAlgError, scipy.linalg.LinAlgError) as exc:
        raise ValueError(
            "coefficients cannot be recovered by projection: the Gram matrix "
            f"of the signal and noise vectors is singular ({exc})"
        ) from None


def project_view(view, W=None, origin=None):
    """:func:`recover_coefficients` for a stage view (its own W by default;
    ``origin`` replaces W0 as the start w^[0])."""
    return recover_coefficients(
        view.W if W is None else W,
        view.W0 if origin is None else origin,
        view.steps,
        view.trainable,
        float(view.eta),
        float(view.weight_decay),
        view.signals,
        view.xi,
        view.y,
    )


def span_error(view, coef):
    """How far the coefficients ``coef`` (gamma, rho_bar, rho_under) of a
    stage view fall short of its weights: max_t |W_t - recon_t|_max over
    max_t |W_t - s_t W0|_max (the largest increment), with recon the weights
    rebuilt from the coefficients (:func:`refimpl.decomposition.reconstruct`,
    the file's signals and xi). About the rounding when every increment lies
    in the span of {signals, xi} (GD's do); about 1 for weights that do not
    (the coefficients then describe their projection only). 0 for a stage whose
    weights never move."""
    W, W0 = view.f64("W"), view.f64("W0")
    scale = scales(view.steps, view.trainable, float(view.eta), float(view.weight_decay))
    recon = reconstruct(W0, scale, view.f64("signals"), view.f64("xi"), *coef)
    moved = float(np.abs(W - scale[..., None] * W0).max(initial=0.0))
    miss = float(np.abs(W - recon).max(initial=0.0))
    return miss / moved if moved > 0 else 0.0


def file_run(view):
    """The comparable quantities of a stage of a file (a
    :class:`~refimpl.trajectory.StageView`); coefficients by projection when
    the file has none.

    Returns
    -------
    run : dict
        ``steps``, ``W``, ``loss``, ``b`` (when the file has a bias) and the
        coefficients when available.
    note : str
        Where the coefficients came from, or why there are none.
    """
    run = {"steps": view.steps, "W": view.W, "loss": view.loss}
    if view.b is not None:
        run["b"] = view.b
    if view.has_coefficients:
        run.update({c: getattr(view, c) for c in COEFFICIENT_KEYS})
        return run, "coefficients from the file"
    origin = None
    if not np.array_equal(view.W[0], view.W0) and np.array_equal(
        view.W[0], np.asarray(view.W0).astype(np.float32)
    ):
        origin = view.W[0]  # a float32 run starts from float32(W0), its snapshot 0
    try:
        coef = project_view(view, origin=origin)
    except ValueError as exc:
        return run, str(exc)
    run.update(zip(COEFFICIENT_KEYS, coef, strict=True))
    return run, (
        "coefficients by projection"
        if origin is None
        else "coefficients by projection from the file's start float32(W0)"
    )


def basis_note(view, roles):
    """A sentence on the basis the coefficients live in, or None when it is
    the orthogonal basis of docs/model.md §4 with refimpl's patch order.

    Parameters
    ----------
    view : refimpl.trajectory.StageView
    roles : ndarray of shape (n, P), int
        The checked patch roles.
    """
    signals, xi = view.f64("signals"), view.f64("xi")
    parts = []
    S = signals.shape[0]
    if S and not np.array_equal(roles, np.broadcast_to(np.r_[np.arange(S), -1], roles.shape)):
        moved = int(np.sum(np.any(roles != np.r_[np.arange(S), -1], axis=1)))
        source = "s/patch_role" if view.patch_role is not None else "derived from the data"
        parts.append(
            f"{moved} of {roles.shape[0]} inputs have their patches in another order "
            f"than signals first (roles {source}); coefficients are tracked per input"
        )
    sig_norm = np.linalg.norm(signals, axis=1)
    xi_norm = np.linalg.norm(xi, axis=1)
    ok = sig_norm > 0
    if ok.any():
        cos = np.abs(xi @ signals[ok].T) / np.outer(xi_norm, sig_norm[ok])
        worst = float(cos.max())
        if worst > ORTHOGONAL_COS:
            parts.append(
                f"the noise is not orthogonal to the signals (largest |cos(xi_i, sig_s)| "
                f"= {worst:.2g}): gamma and rho are the coordinates of W - s_t W0 in the "
                "non-orthogonal basis {signals, xi_i} (exact, docs/model.md §4.2), not "
                "the inner products j<W - s_t W0, sig_s> of §4.4 (those are not tracked)"
            )
    return "; ".join(parts) or None
