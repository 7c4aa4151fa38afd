"""Full-batch gradient descent with the exact coefficient recursions updated in
the same pass (docs/model.md §3 and §4), in weight space or in the span of the
data (docs/model.md §9).

The step loop runs inside a compiled kernel, a chunk of steps per call
(``_gd_chunk`` in weight space, ``_gram_chunk`` in Gram space); between
chunks Python takes the snapshots and reports progress.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from . import kernels as _k
from .budget import check as check_budget
from .config import integer_argument, real_argument, shown
from .data import Task, role_positions
from .errors import ConfigError, DivergenceError
from .gram import ENGINES, GRAM_BUDGET, GramEngine, choose_engine, gram_bytes, read_coefficients
from .network import check_inputs, check_weights

__all__ = ["Stage", "snapshot_schedule", "train_stage", "CHUNK", "ENGINES", "DivergenceError"]

CHUNK = 256  # steps per kernel call between progress reports


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
        Step size eta and L2 coefficient lambda of the stage.
    trainable : ndarray of shape (2, m), bool
        False marks a frozen filter (not updated, docs/model.md §3.4).
    steps : ndarray of shape (K,), int
        Snapshot steps, 0 and the last step included.
    W : ndarray of shape (K, 2, m, d)
        The weights at the snapshot steps.
    gamma : ndarray of shape (K, 2, m, S), or None
        Signal coefficients (docs/model.md §4; what they mean for noise that is
        not orthogonal to the signals: :mod:`refimpl.decomposition`). None
        when the stage was trained with ``track=False``; so are ``rho_bar``
        and ``rho_under``.
    rho_bar, rho_under : ndarray of shape (K, 2, m, n), or None
        Noise memorisation where y_i = j and where y_i = -j (docs/model.md
        §4), at the snapshots.
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
    gamma: np.ndarray | None
    rho_bar: np.ndarray | None
    rho_under: np.ndarray | None
    loss: np.ndarray
    stopped: bool = False

    @property
    def W_final(self):
        return self.W[-1]

    @property
    def tracked(self) -> bool:
        """True when the stage carries coefficients (trained with ``track=True``)."""
        return self.gamma is not None

    @property
    def T(self) -> int:
        """The last step."""
        return int(self.steps[-1])

    def scale(self, k=-1):
        """s_t per filter at snapshot k: (1 - eta*lambda)^t for trainable
        filters, 1 for frozen ones (docs/model.md §4.1). Shape (2, m)."""
        from .decomposition import scales

        return scales(self.steps[k], self.trainable, self.eta, self.weight_decay)


def snapshot_schedule(cap, count):
    """``count`` snapshot steps evenly spaced over 0..cap (0 and cap included;
    fewer when cap + 1 < count).

    Parameters
    ----------
    cap : int
        The step cap T.
    count : int
        The number of snapshots wanted (``Config.snapshots``).

    Returns
    -------
    ndarray of shape (K,), int64
        The sorted distinct snapshot steps, K <= min(count, cap + 1).
    """
    return np.unique(np.rint(np.linspace(0, cap, min(count, cap + 1))).astype(np.int64))


class _Tracking(NamedTuple):
    """What the coefficient recursions need besides the weights: labels,
    squared norms and the patch roles (docs/model.md §4, §9.3)."""

    y_clean: np.ndarray  # (n,)
    signals: np.ndarray  # (S, d)
    xi: np.ndarray  # (n, d)
    sig_sq: np.ndarray  # (S,)
    xi_sq: np.ndarray  # (n,)
    signal_patch: np.ndarray  # (n, S) int64, p_s(i)
    noise_patch: np.ndarray  # (n,) int64, q(i)


def _tracking(task: Task):
    """Checked patch roles and norms of ``task``; PatchRoleError when the
    roles of some inputs cannot be determined (:func:`refimpl.data.patch_roles`)."""
    roles = task.roles()
    signals = np.ascontiguousarray(task.signals, dtype=np.float64)
    xi = np.ascontiguousarray(task.xi, dtype=np.float64)
    signal_patch, noise_patch = role_positions(roles, signals.shape[0])
    return _Tracking(
        y_clean=np.ascontiguousarray(task.y_clean, dtype=np.float64),
        signals=signals,
        xi=xi,
        sig_sq=np.sum(signals**2, axis=1),
        xi_sq=np.sum(xi**2, axis=1),
        signal_patch=signal_patch,
        noise_patch=noise_patch,
    )


class _WeightEngine:
    """The state of a stage trained in weight space, with the coefficient
    recursions in the same pass (``_gd_chunk``, docs/model.md §3.4 and §4)."""

    def __init__(self, W0, X, y, trainable, eta, weight_decay, epsilon, tracking):
        n, P, d = X.shape
        two_m = 2 * W0.shape[1]
        self.m, self.n, self.P = two_m // 2, n, P
        self.W = W0.copy()
        self.Wf = self.W.reshape(two_m, d)
        self.Xf = X.reshape(n * P, d)
        self.y, self.trainable = y, trainable
        self.eta, self.weight_decay, self.epsilon = float(eta), float(weight_decay), float(epsilon)
        self.tracking = tracking
        if tracking is None:  # the kernel reads none of these: empty stand-ins
            tracking = _Tracking(
                y_clean=y,
                signals=np.zeros((0, d)),
                xi=np.zeros((0, d)),
                sig_sq=np.zeros(0),
                xi_sq=np.zeros(0),
                signal_patch=np.zeros((n, 0), np.int64),
                noise_patch=np.zeros(n, np.int64),
            )
        self.track_args = (
            tracking.y_clean,
            tracking.sig_sq,
            tracking.xi_sq,
            tracking.signal_patch,
            tracking.noise_patch,
            self.tracking is not None,
        )
        self.gamma = np.zeros((two_m, tracking.signals.shape[0]))
        self.rho_bar = np.zeros((two_m, tracking.xi.shape[0]))
        self.rho_under = np.zeros((two_m, tracking.xi.shape[0]))
        self.A, self.f = np.empty((n * P, two_m)), np.empty(n)
        self.C, self.G = np.empty((n * P, two_m)), np.empty((two_m, d))

    def run(self, count, t0, loss):
        """Up to ``count`` steps from step t0, losses into ``loss[t0:]``;
        returns the number of steps taken."""
        return _k._gd_chunk(
            self.Wf,
            self.Xf,
            self.y,
            *self.track_args,
            self.trainable,
            self.eta,
            self.weight_decay,
            self.epsilon,
            count,
            t0,
            loss,
            self.gamma,
            self.rho_bar,
            self.rho_under,
            self.A,
            self.f,
            self.C,
            self.G,
        )

    def current_loss(self):
        """Data loss of the current weights."""
        _k._forward(self.Wf, self.Xf, self.n, self.P, self.m, self.A, self.f)
        return _k._loss_and_coefficients(self.A, self.f, self.y, self.n, self.P, self.m, self.C)

    def weights(self):
        """The current weights, a new (2, m, d) array."""
        return self.W.copy()

    def coefficients(self):
        """gamma (2, m, S), rho_bar and rho_under (2, m, n), new arrays."""
        m = self.m
        return (
            self.gamma.reshape(2, m, -1).copy(),
            self.rho_bar.reshape(2, m, -1).copy(),
            self.rho_under.reshape(2, m, -1).copy(),
        )

    def finite(self):
        """False once W holds a non-finite number (GD diverged)."""
        return bool(np.all(np.isfinite(self.Wf)))


class _GramStage(GramEngine):
    """:class:`refimpl.gram.GramEngine` with the coefficients of docs/model.md
    §9.3 read off B at the snapshots."""

    def __init__(self, W0, X, y, trainable, eta, weight_decay, epsilon, tracking):
        super().__init__(W0, X, y, trainable, eta, weight_decay, epsilon)
        self.tracking = tracking

    def coefficients(self):
        """gamma (2, m, S), rho_bar and rho_under (2, m, n) read off B."""
        t = self.tracking
        return read_coefficients(
            self.B, self.y, t.y_clean, t.signals, t.xi, t.signal_patch, t.noise_patch
        )


def _trainable_mask(trainable, m):
    """The (2, m) bool mask of trainable filters (None: all); entries must be
    booleans or 0/1 (a 0.5 or a string is refused, not cast)."""
    if trainable is None:
        return np.ones((2, m), bool)
    try:
        mask = np.asarray(trainable)
        ok = mask.dtype == bool or (
            mask.dtype.kind in "iuf" and bool(np.all((mask == 0) | (mask == 1)))
        )
    except (ValueError, TypeError):  # ragged nesting
        ok, mask = False, np.zeros(0)
    if not ok:
        raise ConfigError(
            f"train_stage: trainable must hold booleans (or 0/1), got {shown(trainable)}"
        )
    if mask.shape != (2, m):
        raise ConfigError(f"train_stage: trainable must have shape (2, {m}), got {mask.shape}")
    return mask.astype(bool)


def _snapshot_steps(snapshots, steps):
    """The snapshot steps (checked by :func:`_check_snapshots`): ``snapshots``
    evenly spaced ones, or the given steps, always with 0 and ``steps``."""
    if np.ndim(snapshots) == 0:
        return snapshot_schedule(steps, snapshots)
    return np.union1d(snapshots, [0, steps])


def _check_snapshots(snapshots, steps):
    """``snapshots`` checked against ``steps``: a count (an integer, at least
    2 so that step 0 and the last step are both kept; 1 when steps is 0), or
    integer steps within 0..steps as an int64 array. ConfigError naming
    snapshots otherwise (never truncated nor dropped)."""
    label = "train_stage: snapshots"
    try:
        given = np.asarray(snapshots)
    except (ValueError, TypeError):  # ragged nesting
        given = np.zeros((0, 0))
    if given.ndim == 0:
        count = integer_argument(label, snapshots, 0)
        if count < min(2, steps + 1):
            raise ConfigError(
                f"{label}={count} cannot keep both step 0 and the last step (steps={steps}); "
                "give a count of at least 2, or the snapshot steps themselves"
            )
        return count
    whole = given.dtype.kind in "iu" or (
        given.dtype.kind == "f" and bool(np.all(np.isfinite(given) & (given == np.round(given))))
    )
    if given.ndim != 1 or not whole:
        raise ConfigError(
            f"{label} must be a count or a list of integer steps, got {shown(snapshots)}"
        )
    outside = given[(given < 0) | (given > steps)]
    if outside.size:
        raise ConfigError(f"{label}: step {outside[0]} is outside 0..steps={steps}")
    return given.astype(np.int64)


def _check_arguments(task, eta, steps, weight_decay, epsilon, track, progress, engine, budget):
    """The scalar arguments of :func:`train_stage`, each a ConfigError naming
    it when unusable; returns steps as an int (5.0 -> 5; 2.5 refused)."""
    if not isinstance(engine, str) or engine not in ENGINES:
        raise ConfigError(
            f"train_stage: engine must be one of {', '.join(ENGINES)}, got {shown(engine)}"
        )
    real_argument("train_stage: gram_budget", budget, 0.0, lo_open=True)
    if not isinstance(task, Task):
        raise ConfigError(
            f"train_stage: task must be a refimpl.data.Task, got {type(task).__name__}"
        )
    real_argument("train_stage: eta", eta)
    real_argument("train_stage: weight_decay", weight_decay)
    real_argument("train_stage: epsilon", epsilon, 0.0)
    if not isinstance(track, (bool, np.bool_)):
        raise ConfigError(f"train_stage: track must be True or False, got {shown(track)}")
    if progress is not None and not callable(progress):
        raise ConfigError(f"train_stage: progress must be callable or None, got {shown(progress)}")
    return integer_argument("train_stage: steps", steps, 0)


def _check_memory(X, m, steps, snapshots, track):
    """ResourceError naming steps and snapshots before anything is allocated
    when the stage's loss and snapshot arrays exceed the memory budget
    (:mod:`refimpl.budget`)."""
    n, P, d = X.shape
    K = min(snapshots, steps + 1) if np.ndim(snapshots) == 0 else len(snapshots) + 2
    per_snapshot = 2 * m * (d + (3 * n + P if track else 0))
    memory = 8 * ((steps + 1) + (K + 3) * per_snapshot + X.size + 2 * n * P * 2 * m)
    shown_k = snapshots if np.ndim(snapshots) == 0 else f"{len(snapshots)} steps"
    check_budget(
        "train_stage",
        memory,
        0,
        ("steps", "snapshots", "n", "m", "d"),
        {"steps": steps, "snapshots": shown_k, "n": n, "m": m, "d": d},
    )


def train_stage(
    W0,
    task: Task,
    eta,
    steps,
    *,
    weight_decay=0.0,
    trainable=None,
    epsilon=0.0,
    snapshots=21,
    track=True,
    progress=None,
    engine="weight",
    gram_budget=GRAM_BUDGET,
):
    """Run full-batch GD from W0 on ``task`` (docs/model.md §3.4).

    Parameters
    ----------
    W0 : ndarray of shape (2, m, d)
        Initial weights (not modified).
    task : Task
        X (n, P, d) and labels. With ``track``, every input must hold the S
        signal patches and one noise patch (P = S + 1) in any order; their
        roles come from ``task.patch_role`` or are derived from the data
        (:func:`refimpl.data.patch_roles`).
    eta : float
        Step size.
    steps : int
        Step cap T (>= 0; an integral float such as 5.0 is accepted, 2.5 is
        refused, never truncated).
    weight_decay : float
        lambda.
    trainable : ndarray of shape (2, m), bool, optional
        False for frozen filters; default all trainable.
    epsilon : float
        Stop at the first step whose data loss is <= epsilon; 0 disables.
    snapshots : int or array_like of int
        Number of evenly spaced snapshots over 0..steps (at least 2, or 1
        when steps is 0), or the snapshot steps themselves (integers within
        0..steps). Step 0 and the last step are always kept.
    track : bool
        Track gamma, rho_bar and rho_under (docs/model.md §4). Off for data
        without the signal/noise structure: the Stage then holds None for them.
    progress : callable(step, cap, loss), optional
        Called after every chunk of steps.
    engine : {"auto", "weight", "gram"}
        "weight": the weight-space step (two products of cost O(m nP d) per
        step, the reference); "gram": the Gram-space step (docs/model.md §9,
        O(m (nP)^2) per step after a one-time O((nP)^2 d)); "auto": the one
        :func:`refimpl.gram.choose_engine` predicts cheaper, Gram space only
        when Q (8 (nP)^2 bytes) fits in ``gram_budget``. Both give the same
        Stage to rounding per step; where GD is chaotic (large steps, ReLU
        activations switching) rounding-level differences can grow over many
        steps, so the default is the reference, "weight", whose results are
        bit-identical with earlier versions.
    gram_budget : int
        Bytes the Gram matrix may take (``auto`` falls back to weight space
        above it, ``gram`` refuses).

    Returns
    -------
    Stage

    Raises
    ------
    DivergenceError
        When the loss or the weights become non-finite.
    PatchRoleError
        With ``track``, when the patch roles of some inputs cannot be
        determined or the given ``task.patch_role`` does not fit the data.
    ConfigError
        An argument that is unusable (named: a non-integral or negative
        steps, too few snapshots, a non-number eta, ...), an unknown engine,
        or ``engine="gram"`` over the memory budget.
    ResourceError
        The loss and snapshot arrays would exceed the memory budget
        (:mod:`refimpl.budget`), before anything is allocated.
    """
    steps = _check_arguments(
        task, eta, steps, weight_decay, epsilon, track, progress, engine, gram_budget
    )
    W0 = check_weights(W0, "W0")
    _, m, d = W0.shape
    X, y = check_inputs(task.X, d, task.y)
    n, P, _ = X.shape
    trainable = _trainable_mask(trainable, m)
    snapshots = _check_snapshots(snapshots, steps)
    _check_memory(X, m, steps, snapshots, track)
    tracking = _tracking(task) if track else None
    schedule = _snapshot_steps(snapshots, steps)
    engine = _pick_engine(engine, n, P, m, d, steps, len(schedule), gram_budget)

    eps = float(epsilon) if epsilon > 0 else -1.0  # the loss is >= 0: -1 never stops
    flat_trainable = np.ascontiguousarray(trainable.reshape(-1))
    Engine = _GramStage if engine == "gram" else _WeightEngine
    state = Engine(W0, X, y, flat_trainable, eta, weight_decay, eps, tracking)
    loss = np.empty(steps + 1)

    taken = []
    snaps = {name: [] for name in ("W", "gamma", "rho_bar", "rho_under")}

    def snapshot(t):
        taken.append(t)
        with np.errstate(over="ignore", invalid="ignore"):  # checked just below
            values = {"W": state.weights()}
            if track:
                values.update(
                    zip(("gamma", "rho_bar", "rho_under"), state.coefficients(), strict=True)
                )
        if not all(np.all(np.isfinite(v)) for v in values.values()):
            _diverged(t, eta)
        for name, value in values.items():
            snaps[name].append(value)

    t, stopped = 0, False
    snapshot(0)
    for target in schedule[1:]:
        while t < target and not stopped:
            count = int(min(CHUNK, target - t))
            done = state.run(count, t, loss)
            t0, t = t, t + done
            stopped = done < count
            _check_finite(loss[t0 : t + 1 if stopped else t], state, t, eta)
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
        loss[t] = state.current_loss()
        _check_finite(loss[t : t + 1], state, t, eta)
        stopped = bool(loss[t] <= eps)  # the rule met exactly at the cap
    coefficients = {
        name: np.stack(snaps[name]) if track else None for name in ("gamma", "rho_bar", "rho_under")
    }
    return Stage(
        task=task,
        W0=np.array(W0, dtype=np.float64),
        eta=float(eta),
        weight_decay=float(weight_decay),
        trainable=trainable.copy(),
        steps=np.array(taken, dtype=np.int64),
        W=np.stack(snaps["W"]),
        loss=loss[: t + 1].copy(),
        stopped=stopped,
        **coefficients,
    )


def _pick_engine(engine, n, P, m, d, steps, n_snapshots, budget):
    """The engine to run: "weight" or "gram" (see :func:`train_stage`;
    ``engine`` checked by :func:`_check_arguments`)."""
    if engine == "auto":
        return choose_engine(n, P, m, d, steps, n_snapshots, budget)
    if engine == "gram" and gram_bytes(n, P) > budget:
        raise ConfigError(
            f"engine='gram' needs {gram_bytes(n, P) / 2**20:.0f} MiB for the Gram "
            f"matrix (nP = {n * P}), over the budget of {budget / 2**20:.0f} MiB; "
            "use engine='weight' or raise gram_budget"
        )
    return engine


def _check_finite(losses, state, t, eta):
    """Raise :class:`DivergenceError` when GD has left the finite numbers."""
    if not (np.all(np.isfinite(losses)) and state.finite()):
        _diverged(t, eta)


def _diverged(t, eta):
    raise DivergenceError(
        f"gradient descent diverged by step {t} (non-finite loss, weights or coefficients); "
        f"lower the step size eta={eta:g} or the init scale sigma_0"
    )
