"""Full-batch gradient descent with the exact coefficient recursions updated in
the same pass (MODEL.md sections 3 and 4).

The step loop runs inside the compiled kernel ``_gd_chunk``, a chunk of steps
per call; between chunks Python takes the snapshots and reports progress.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import kernels as _k
from .data import Task
from .network import check_inputs, check_weights

__all__ = ["Stage", "snapshot_schedule", "train_stage", "CHUNK", "DivergenceError"]

CHUNK = 256  # steps per kernel call between progress reports


class DivergenceError(ArithmeticError):
    """GD produced a non-finite loss or weight (step size or init too large)."""


@dataclass
class Stage:
    """One trained stage: its inputs, the weight snapshots, the tracked
    coefficients at the same snapshots, and the loss at every step.

    Attributes
    ----------
    task : Task
        Training data.
    W0 : ndarray of shape (2, m, d)
        Initial weights w^[0] of the stage.
    eta, weight_decay : float
    trainable : ndarray of shape (2, m), bool
    steps : ndarray of shape (K,), int
        Snapshot steps, 0 and the last step included.
    W : ndarray of shape (K, 2, m, d)
    gamma : ndarray of shape (K, 2, m, S)
    rho_bar, rho_under : ndarray of shape (K, 2, m, n)
    loss : ndarray of shape (T + 1,)
        Data loss (weight decay not included) at steps 0..T.
    stopped : bool
        True when the epsilon rule ended the stage (before or at the cap).
    """

    task: Task
    W0: np.ndarray
    eta: float
    weight_decay: float
    trainable: np.ndarray
    steps: np.ndarray
    W: np.ndarray
    gamma: np.ndarray
    rho_bar: np.ndarray
    rho_under: np.ndarray
    loss: np.ndarray
    stopped: bool = False

    @property
    def W_final(self):
        return self.W[-1]

    @property
    def T(self) -> int:
        """The last step."""
        return int(self.steps[-1])

    def scale(self, k=-1):
        """s_t per filter at snapshot k: (1 - eta*lambda)^t for trainable
        filters, 1 for frozen ones (MODEL.md section 4). Shape (2, m)."""
        from .decomposition import scales
        return scales(self.steps[k], self.trainable, self.eta, self.weight_decay)


def snapshot_schedule(cap, count):
    """``count`` snapshot steps evenly spaced over 0..cap (0 and cap included;
    fewer when cap + 1 < count)."""
    return np.unique(np.rint(np.linspace(0, cap, min(count, cap + 1))).astype(np.int64))


def train_stage(W0, task: Task, eta, steps, *, weight_decay=0.0, trainable=None,
                epsilon=0.0, snapshots=21, track=True, progress=None):
    """Run full-batch GD from W0 on ``task`` (MODEL.md section 3).

    Parameters
    ----------
    W0 : ndarray of shape (2, m, d)
        Initial weights (not modified).
    task : Task
        X (n, P, d) with the S signal patches first and the noise patch last.
    eta : float
        Step size.
    steps : int
        Step cap T.
    weight_decay : float
        lambda.
    trainable : ndarray of shape (2, m), bool, optional
        False for frozen filters; default all trainable.
    epsilon : float
        Stop at the first step whose data loss is <= epsilon; 0 disables.
    snapshots : int or array_like of int
        Number of evenly spaced snapshots over 0..steps, or the snapshot steps
        themselves. Step 0 and the last step are always kept.
    track : bool
        Update the coefficient recursions (section 4). Needs the layout of
        :class:`~refimpl.data.Task`; off for data without that structure.
    progress : callable(step, cap, loss), optional
        Called after every chunk of steps.

    Returns
    -------
    Stage

    Raises
    ------
    DivergenceError
        When the loss or the weights become non-finite.
    """
    W = check_weights(W0, "W0").copy()
    two, m, d = W.shape
    X, y = check_inputs(task.X, d, task.y)
    n, P, _ = X.shape
    S = task.signals.shape[0]
    if track and P != S + 1:
        raise ValueError(f"tracking needs P = S + 1 patches, got P={P}, S={S}")
    trainable = np.ones((2, m), bool) if trainable is None else np.asarray(trainable, bool)
    if trainable.shape != (2, m):
        raise ValueError(f"trainable must have shape (2, {m}), got {trainable.shape}")
    steps = int(steps)
    if np.ndim(snapshots) == 0:
        schedule = snapshot_schedule(steps, int(snapshots))
    else:
        schedule = np.union1d(np.asarray(snapshots, np.int64), [0, steps])
        schedule = schedule[(schedule >= 0) & (schedule <= steps)]

    Wf = W.reshape(2 * m, d)
    Xf = X.reshape(n * P, d)
    y_clean = np.ascontiguousarray(task.y_clean, dtype=np.float64)
    sig_sq = np.sum(task.signals**2, axis=1)
    xi_sq = np.sum(task.xi**2, axis=1)
    gamma = np.zeros((2 * m, S))
    rho_bar = np.zeros((2 * m, n))
    rho_under = np.zeros((2 * m, n))
    loss = np.empty(steps + 1)
    A, f, C, G = np.empty((n * P, 2 * m)), np.empty(n), np.empty((n * P, 2 * m)), np.empty((2 * m, d))
    eps = float(epsilon) if epsilon > 0 else -1.0  # the loss is >= 0: -1 never stops
    flat_trainable = np.ascontiguousarray(trainable.reshape(-1))

    taken = []
    snaps = {name: [] for name in ("W", "gamma", "rho_bar", "rho_under")}

    def snapshot(t):
        taken.append(t)
        snaps["W"].append(W.copy())
        snaps["gamma"].append(gamma.reshape(2, m, S).copy())
        snaps["rho_bar"].append(rho_bar.reshape(2, m, n).copy())
        snaps["rho_under"].append(rho_under.reshape(2, m, n).copy())

    t, stopped = 0, False
    snapshot(0)
    for target in schedule[1:]:
        while t < target and not stopped:
            count = int(min(CHUNK, target - t))
            done = _k._gd_chunk(Wf, Xf, y, y_clean, sig_sq, xi_sq, S, track,
                                flat_trainable, float(eta), float(weight_decay), eps,
                                count, t, loss, gamma, rho_bar, rho_under, A, f, C, G)
            t0, t = t, t + done
            stopped = done < count
            _check_finite(loss[t0: t + 1 if stopped else t], Wf, t, eta)
            if progress is not None:
                progress(t, steps, loss[t if stopped else t - 1])
        if stopped:
            break
        snapshot(t)
    if stopped:
        if taken[-1] != t:
            snapshot(t)
    else:
        # the loss of the final weights (the kernel records it before a step)
        _k._forward(Wf, Xf, n, P, m, A, f)
        loss[t] = _k._loss_and_coefficients(A, f, y, n, P, m, C)
        _check_finite(loss[t: t + 1], Wf, t, eta)
        stopped = bool(loss[t] <= eps)      # the rule met exactly at the cap
    return Stage(task=task, W0=np.array(W0, dtype=np.float64), eta=float(eta),
                 weight_decay=float(weight_decay), trainable=trainable.copy(),
                 steps=np.array(taken, dtype=np.int64),
                 W=np.stack(snaps["W"]), gamma=np.stack(snaps["gamma"]),
                 rho_bar=np.stack(snaps["rho_bar"]), rho_under=np.stack(snaps["rho_under"]),
                 loss=loss[: t + 1].copy(), stopped=stopped)


def _check_finite(losses, Wf, t, eta):
    """Raise :class:`DivergenceError` when GD has left the finite numbers."""
    if not (np.all(np.isfinite(losses)) and np.all(np.isfinite(Wf))):
        raise DivergenceError(
            f"gradient descent diverged by step {t} (non-finite loss or weights); "
            f"lower the step size eta={eta:g} or the init scale sigma_0")
