"""Recording a training loop as a trajectory file, and what :func:`crosscheck`
accepts as a run.

:class:`Recorder` is for PyTorch and JAX users: it takes the inputs of a
stage (from a refimpl run, a file, or given by hand), collects the weights and
the data loss that the loop produces, and writes a valid file in format 1
(README, "Trajectory file format")::

    with Recorder("out/trajectory.npz", "mine.npz") as rec:   # stage "up"
        for t in range(T + 1):
            loss = data_loss(W)
            rec.snapshot(W, loss)        # W_t and L(W_t), *before* step t
            if t < T:
                step(W, loss)

:func:`as_trajectory` turns a path, a dict of format-1 arrays (numpy, PyTorch
or JAX values) or a :class:`~refimpl.trajectory.Trajectory` into a checked
Trajectory, with the checks of :func:`refimpl.trajectory.load`.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from collections.abc import Mapping

import numpy as np

from ..config import integer_argument, shown
from ..errors import ConfigError, RefimplError
from ..files import check_output
from ..train import Stage
from ..trajectory import FORMAT_VERSION, Trajectory, load, save, stage_arrays
from ..transfer import Experiment

__all__ = ["Recorder", "as_array", "as_trajectory", "run_arrays"]

INPUTS = ("X", "y", "y_clean", "xi", "signals", "W0", "eta", "weight_decay", "trainable")
OPTIONAL_INPUTS = ("patch_role", "b0")
ARRAYS_LABEL = "<arrays>"


def as_array(x):
    """``x`` as a numpy array: PyTorch tensors through
    ``x.detach().cpu()``, JAX arrays and anything else through
    :func:`numpy.asarray` (neither framework is imported here).

    The result may share memory with ``x`` (copy it to keep a value that is
    later changed in place).

    Parameters
    ----------
    x : object
        A PyTorch tensor, a JAX array, a numpy array or anything
        :func:`numpy.asarray` reads.

    Returns
    -------
    ndarray
        The values of ``x``.
    """
    detach = getattr(x, "detach", None)
    if callable(detach) and callable(getattr(x, "cpu", None)):
        x = detach().cpu()
    return np.asarray(x)


def as_trajectory(run, label=ARRAYS_LABEL, what="a run"):
    """A checked :class:`~refimpl.trajectory.Trajectory` from a path, a
    mapping of format-1 arrays or a Trajectory (returned as is).

    Parameters
    ----------
    run : str, PathLike, Mapping or Trajectory
        Array values may be numpy arrays, PyTorch tensors, JAX arrays,
        Python numbers, lists or strings (``config_json``).
    label : str
        How messages and reports name a mapping (a file is named by its path).
    what : str
        How a message names ``run`` when it is of none of these kinds.

    Returns
    -------
    Trajectory
        ``run`` itself, the loaded file, or the mapping checked as a file is.

    Raises
    ------
    TrajectoryError, PatchRoleError
        As :func:`refimpl.trajectory.load`, naming the key.
    ConfigError
        ``run`` is of another kind.
    """
    if isinstance(run, Trajectory):
        return run
    if isinstance(run, Mapping):
        return _from_arrays(run, label)
    if isinstance(run, (str, bytes, os.PathLike)):
        return load(run, require_coefficients=False)
    raise ConfigError(
        f"{what} must be a trajectory file's path, a dict of format-1 arrays or a "
        f"refimpl.trajectory.Trajectory, got {shown(run)}"
    )


def _from_arrays(arrays, label):
    """The mapping written to a private temporary file and read back with
    :func:`refimpl.trajectory.load`: every check of a file applies, and
    messages name ``label`` instead of the temporary path."""
    converted = {}
    for key, value in arrays.items():
        if not isinstance(key, str):
            raise ConfigError(f"{label}: the keys must be strings such as 'up/X', got {shown(key)}")
        converted[key] = np.str_(value) if isinstance(value, str) else as_array(value)
    with tempfile.TemporaryDirectory(prefix="refimpl-arrays-") as folder:
        path = os.path.join(folder, "arrays.npz")
        np.savez(path, **converted)
        try:
            traj = load(path, require_coefficients=False)
        except RefimplError as exc:
            raise type(exc)(str(exc).replace(path, label)) from None
    traj.path = label
    return traj


class Recorder:
    """Record one stage of a training loop as a trajectory file (format 1).

    Call :meth:`snapshot` once per step with the weights and their data loss
    taken *before* the step (step 0 is the initial weights), and once more
    after the last step: T + 1 calls for T steps. On leaving the ``with``
    block (or :meth:`close`) the file is checked as
    :func:`refimpl.trajectory.load` checks it and written atomically;
    nothing is written when the block raises.

    Parameters
    ----------
    ref_or_inputs : path, Trajectory, Mapping, Experiment or Stage
        Where the stage's inputs come from: a refimpl trajectory file (path,
        :class:`~refimpl.trajectory.Trajectory` or a mapping with
        ``format_version``), a :class:`~refimpl.transfer.Experiment`, a
        :class:`~refimpl.train.Stage`, or the inputs by hand: a mapping with
        ``X``, ``y``, ``y_clean``, ``xi``, ``signals`` (or ``task``, a
        :class:`~refimpl.data.Task`) and ``eta``; optional ``weight_decay``
        (0), ``trainable`` (all True), ``W0`` (default: the first snapshot),
        ``patch_role``, ``b0``, ``inherited`` and ``inherited_from`` (stage
        ``down``) and ``config`` (a dict or JSON text). Tensors are accepted everywhere.
    path : str or PathLike, optional
        The file to write (checked before anything is recorded); None keeps
        the run in memory only (:attr:`arrays`, :attr:`trajectory`).
    stage : {"up", "down", "scratch"}, optional
        The stage recorded; default ``up`` when the reference has it, else
        its only stage (``up`` for inputs by hand).
    every : int
        Keep the weights of every ``every``-th step (the last step always);
        the loss is kept at every step.

    Attributes
    ----------
    arrays : dict of str to ndarray or None
        The format-1 arrays, after :meth:`close`.
    trajectory : Trajectory or None
        The checked run, after :meth:`close` (pass it to
        :func:`refimpl.crosscheck.crosscheck`).
    """

    def __init__(self, ref_or_inputs, path=None, *, stage=None, every=1):
        self.every = integer_argument("Recorder: every", every, 1)
        self.path = None if path is None else os.fspath(path)
        if self.path is not None:
            check_output(self.path)
        self.stage, self._inputs, self._config, self._extra = _stage_inputs(ref_or_inputs, stage)
        self._steps, self._W, self._b, self._loss = [], [], [], []
        self._last = None
        self.arrays = self.trajectory = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        return False

    def _shape(self):
        W0 = self._inputs.get("W0")
        if W0 is not None:
            return np.shape(W0)
        return self._W[0].shape if self._W else None

    def snapshot(self, W, loss, b=None):
        """Record the weights of the current step and their data loss.

        Parameters
        ----------
        W : array or tensor of shape (2, m, d), or a pair (W_plus, W_minus)
            The weights before this step's update (index 0 of axis 0 is
            j = +1); copied.
        loss : number, 0-d array or tensor
            The data loss of ``W`` (mean logistic loss, weight decay not
            included).
        b : array or tensor of shape (2, m), optional
            A bias per filter, for a model that has one (stored as ``s/b``;
            ``s/b0`` from the inputs or the first call). Give it at every
            call or never.
        """
        W = _weights(W, self._shape())
        value = as_array(loss)
        if value.size != 1 or not np.issubdtype(value.dtype, np.number):
            raise ConfigError(
                "Recorder.snapshot: loss must be one number (the data loss of W, weight "
                f"decay not included), got {value.dtype} of shape {value.shape}"
            )
        if (b is None) != (not self._b) and self._loss:
            raise ConfigError("Recorder.snapshot: give the bias b at every call or at none")
        bias = None if b is None else np.array(as_array(b), copy=True)
        t = len(self._loss)
        self._loss.append(value.reshape(()))
        self._last = (t, W, bias)
        if t % self.every == 0:
            self._keep(t, W, bias)

    def _keep(self, t, W, bias):
        self._steps.append(t)
        self._W.append(W)
        if bias is not None:
            self._b.append(bias)

    def close(self):
        """Check the run and write the file (once; later calls return the same).

        Returns
        -------
        Trajectory
        """
        if self.trajectory is not None:
            return self.trajectory
        if not self._loss:
            raise ConfigError(
                "Recorder: no snapshot was recorded (call rec.snapshot(W, loss) before "
                "every step and once after the last)"
            )
        t, W, bias = self._last
        if self._steps[-1] != t:
            self._keep(t, W, bias)
        arrays = self._arrays()
        self.trajectory = as_trajectory(arrays, self.path or "<recorded run>")
        if self.path is not None:
            save(self.path, arrays)
        self.arrays = arrays
        return self.trajectory

    def _arrays(self):
        b = np.stack(self._b) if self._b else None
        run = {"steps": self._steps, "W": np.stack(self._W), "loss": np.array(self._loss), "b": b}
        return _assemble(self.stage, self._inputs, self._config, self._extra, run)


def run_arrays(ref_or_inputs, W, loss, steps=None, *, stage=None, b=None):
    """The format-1 arrays of a run given whole: its weights at the snapshot
    steps and its loss at every step, on the inputs of ``ref_or_inputs``
    (for a loop that keeps its own history, e.g. a ``jax.lax.scan``).

    Parameters
    ----------
    ref_or_inputs, stage : path, Trajectory, Mapping, Experiment or Stage; str
        As for :class:`Recorder` (``stage`` keyword-only).
    W : array or tensor of shape (K, 2, m, d)
        The weights at the snapshot steps.
    loss : array or tensor of shape (T + 1,)
        The data loss at every step 0..T.
    steps : array_like of int, optional
        The snapshot steps of ``W``; default every step (K = T + 1), else
        the reference's snapshot steps when there are K of them ending at T.
    b : array or tensor of shape (K, 2, m), optional
        The bias at the snapshot steps, when the model has one.

    Returns
    -------
    dict of str to ndarray
    """
    stage, inputs, config, extra = _stage_inputs(ref_or_inputs, stage)
    W, loss = np.asarray(as_array(W)), np.asarray(as_array(loss)).reshape(-1)
    if steps is None:
        steps = _default_steps(ref_or_inputs, stage, len(W), loss.size)
    run = {"steps": steps, "W": W, "loss": loss, "b": None if b is None else as_array(b)}
    return _assemble(stage, inputs, config, extra, run)


def _default_steps(ref, stage, K, length):
    if K == length:
        return np.arange(K)
    if isinstance(ref, (str, bytes, os.PathLike, Trajectory)) or (
        isinstance(ref, Mapping) and "format_version" in ref
    ):
        steps = as_trajectory(ref).stage(stage).steps
        if len(steps) == K and steps[-1] == length - 1:
            return steps
    raise ConfigError(
        f"run_arrays: W has {K} snapshots and the loss {length} steps: give steps "
        "(the snapshot steps of W, 0 and the last step T included)"
    )


def _assemble(stage, inputs, config, extra, run):
    """The format-1 arrays of one stage: the inputs, ``run`` (steps, W, loss,
    b or None), W0 and the mask defaulting to the first snapshot's."""
    inputs = dict(inputs)
    W = run["W"]
    inputs.setdefault("W0", W[0])
    inputs.setdefault("trainable", np.ones(np.shape(W)[1:3], bool))
    if run["b"] is not None:
        inputs.setdefault("b0", run["b"][0])
        inputs["b"] = run["b"]
    inputs.update(steps=np.asarray(run["steps"], dtype=np.int64), W=W, loss=run["loss"])
    from .. import __version__

    prov = {
        "package": "a training loop recorded by refimpl.crosscheck.Recorder",
        "refimpl": __version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    arrays = {
        "format_version": np.int64(FORMAT_VERSION),
        "config_json": np.str_(config),
        "provenance_json": np.str_(json.dumps(prov)),
    }
    arrays.update({f"{stage}/{k}": v for k, v in inputs.items()})
    arrays.update(extra)
    return arrays


def _weights(W, shape):
    """W as a (2, m, d) numpy copy; a ConfigError names the shape otherwise."""
    if isinstance(W, (tuple, list)) and len(W) == 2:
        W = np.stack([as_array(w) for w in W])
    W = np.array(as_array(W), copy=True)
    expected = "(2, m, d)" if shape is None else str(tuple(shape))
    if W.ndim != 3 or W.shape[0] != 2 or (shape is not None and W.shape != tuple(shape)):
        raise ConfigError(
            f"Recorder.snapshot: W has shape {W.shape}; expected {expected} (axis 0 the "
            "class, index 0 is j = +1) or a pair (W_plus, W_minus)"
        )
    return W


def _stage_inputs(ref, stage):
    """(stage, inputs without the stage prefix, config JSON, top-level extras)."""
    if isinstance(ref, Experiment):
        stage = _pick_stage(stage, tuple(ref.stages), "the Experiment")
        extra = {}
        if stage == "down":
            extra = {"down/inherited": ref.inherited, "down/inherited_from": ref.source}
        return stage, _from_stage(stage, ref.stages[stage]), ref.config.to_json(), extra
    if isinstance(ref, Stage):
        stage = stage or "up"
        if stage == "down":
            raise ConfigError(
                "Recorder: stage 'down' needs down/inherited: give the Experiment, its "
                "file, or inputs with 'inherited'"
            )
        return stage, _from_stage(stage, ref), "{}", {}
    if isinstance(ref, Mapping) and "format_version" not in ref:
        return _by_hand(ref, stage)
    traj = as_trajectory(ref, what="Recorder: ref_or_inputs")
    stage = _pick_stage(stage, traj.stages, traj.path)
    view = traj.stage(stage)
    inputs = {k: getattr(view, k) for k in INPUTS + OPTIONAL_INPUTS if k in view}
    extra = {}
    if stage == "down":
        extra = {k: v for k, v in traj.arrays.items() if k.startswith("down/inherited")}
    return stage, inputs, str(traj.arrays["config_json"]), extra


def _pick_stage(stage, stages, where):
    if stage is None:
        if "up" in stages or len(stages) == 1:
            return "up" if "up" in stages else stages[0]
        raise ConfigError(f"Recorder: {where} has stages {', '.join(stages)}: give stage=")
    if stage not in stages:
        raise ConfigError(
            f"Recorder: stage must be one of {', '.join(stages)} ({where}), got {shown(stage)}"
        )
    return stage


def _from_stage(name, stage):
    arrays = stage_arrays(name, stage)
    keep = INPUTS + OPTIONAL_INPUTS
    return {k.split("/", 1)[1]: v for k, v in arrays.items() if k.split("/", 1)[1] in keep}


def _by_hand(given, stage):
    """The inputs of a stage given by hand (see :class:`Recorder`)."""
    stage = stage or "up"
    known = set(INPUTS + OPTIONAL_INPUTS) | {"task", "inherited", "inherited_from", "config"}
    unknown = sorted(str(k) for k in given if k not in known)
    if unknown:
        raise ConfigError(
            f"Recorder: unknown input {unknown[0]!r}; inputs are {', '.join(sorted(known))}"
        )
    inputs = {k: as_array(v) for k, v in given.items() if k in INPUTS + OPTIONAL_INPUTS}
    task = given.get("task")
    if task is not None:
        for k in ("X", "y", "y_clean", "xi", "signals", "patch_role"):
            value = getattr(task, k, None)
            if value is not None:
                inputs.setdefault(k, np.asarray(value))
    inputs.setdefault("weight_decay", np.float64(0.0))
    missing = [k for k in INPUTS if k not in inputs and k not in ("W0", "trainable")]
    if missing:
        raise ConfigError(
            f"Recorder: the inputs lack {', '.join(missing)} (give them, or 'task' for "
            "X, y, y_clean, xi and signals)"
        )
    extra = {}
    if stage == "down":
        if "inherited" not in given:
            raise ConfigError("Recorder: stage 'down' needs 'inherited' (2, m) bool in the inputs")
        extra["down/inherited"] = as_array(given["inherited"])
        if "inherited_from" in given:
            extra["down/inherited_from"] = as_array(given["inherited_from"])
    config = given.get("config", {})
    return stage, inputs, config if isinstance(config, str) else json.dumps(config), extra
