"""Data of the upstream and downstream tasks (MODEL.md section 2).

All randomness comes from a ``numpy.random.Generator`` passed in; nothing here
seeds anything globally.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Task", "signal_vectors", "task_signals", "noise_basis", "sample_task"]


@dataclass(frozen=True)
class Task:
    """Training (or test) data of one task.

    Attributes
    ----------
    X : ndarray of shape (n, P, d)
        Patches: the S signal patches ``y_clean[i] * signals[s]``, then the
        noise patch ``xi[i]`` (MODEL.md section 2.4).
    y : ndarray of shape (n,)
        Observed labels (+-1, float64), possibly flipped.
    y_clean : ndarray of shape (n,)
        True labels yhat (+-1, float64).
    xi : ndarray of shape (n, d)
        Noise patches.
    signals : ndarray of shape (S, d)
        mu (joint layout) or u and v (split layout).
    """

    X: np.ndarray
    y: np.ndarray
    y_clean: np.ndarray
    xi: np.ndarray
    signals: np.ndarray

    @property
    def n(self) -> int:
        return self.X.shape[0]


def signal_vectors(d, u_norm, v_up_norm, v_down_norm, v_cos=0.0):
    """u, v_up, v_down on coordinate axes (MODEL.md section 2.5).

    u = |u| e_0, v_up = |v_up| e_1, v_down = |v_down| (c e_1 + sqrt(1 - c^2) e_2)
    with c = ``v_cos``; u is orthogonal to both v's.

    Returns
    -------
    u, v_up, v_down : ndarray of shape (d,)
    """
    e = np.eye(3, d)
    u = u_norm * e[0]
    v_up = v_up_norm * e[1]
    v_down = v_down_norm * (v_cos * e[1] + np.sqrt(1.0 - v_cos**2) * e[2])
    return u, v_up, v_down


def task_signals(u, v, layout):
    """The signal rows of a task: ``[u + v]`` (joint) or ``[u, v]`` (split).

    Returns
    -------
    ndarray of shape (S, d)
    """
    if layout == "joint":
        return (u + v)[None, :]
    return np.stack([u, v])


def noise_basis(u, v):
    """Orthonormal rows spanning the nonzero ones of u, v: the directions that
    Pi_k = I - u u^T/|u|^2 - v v^T/|v|^2 removes (MODEL.md section 2.3; a zero
    vector's projection is skipped).

    Returns
    -------
    ndarray of shape (k, d), k in {0, 1, 2}
    """
    rows = [w for w in (u, v) if np.any(w != 0)]
    if not rows:
        return np.zeros((0, u.shape[0]))
    q, _ = np.linalg.qr(np.stack(rows).T)
    return q.T


def sample_noise(rng, n, sigma_p, basis):
    """xi_i ~ N(0, sigma_p^2 Pi) drawn as Pi g with g ~ N(0, sigma_p^2 I_d).

    Returns
    -------
    ndarray of shape (n, d)
    """
    g = sigma_p * rng.standard_normal((n, basis.shape[1]))
    return g - (g @ basis.T) @ basis


def sample_task(rng, n, u, v, sigma_p, flip, layout):
    """Draw n samples of the task with shared signal u and own signal v.

    Follows MODEL.md section 2 steps 1-4: yhat uniform on {+1, -1}; y = -yhat
    with probability ``flip``; xi ~ N(0, sigma_p^2 Pi); patches as in the
    layout.

    Parameters
    ----------
    rng : numpy.random.Generator
    n : int
    u, v : ndarray of shape (d,)
    sigma_p, flip : float
    layout : {"joint", "split"}

    Returns
    -------
    Task
    """
    y_clean = rng.choice(np.array([1.0, -1.0]), size=n)
    flipped = rng.random(n) < flip
    y = np.where(flipped, -y_clean, y_clean)
    xi = sample_noise(rng, n, sigma_p, noise_basis(u, v))
    signals = task_signals(u, v, layout)
    X = np.concatenate([y_clean[:, None, None] * signals[None, :, :], xi[:, None, :]], axis=1)
    return Task(X=np.ascontiguousarray(X), y=y, y_clean=y_clean, xi=xi, signals=signals)
