"""Trajectory files, format version 1: one ``.npz`` per run, the interchange
format for other implementations (README, "Trajectory file format").

Top-level keys: ``format_version`` (int, 1), ``config_json``,
``provenance_json``. For each stage ``s`` in ``up``, ``down``, ``scratch``
(any non-empty subset): the keys of :data:`STAGE_KEYS`, the optional keys of
:data:`OPTIONAL_KEYS`, and ``down/inherited``. Files load with
``allow_pickle=False``; anything malformed raises :class:`TrajectoryError`
naming the key and what was expected (a ``patch_role`` that does not fit the
data: :class:`~refimpl.errors.PatchRoleError`, naming the inputs).

Optional per-stage keys (all additive; the version stays 1):

- ``s/patch_role`` (n, P) int: the role of every patch, s for the patch
  ``y_clean[i] * signals[s]``, -1 for the noise patch (docs/model.md §2.4).
  Without it the roles are derived from the data.
- ``s/b0`` (2, m) float and ``s/b`` (K, 2, m) float: a model with a bias per
  filter (not the model of docs/model.md §3), its initial value and its value
  at the snapshots; axis 0 index 0 is j = +1, as for ``W``. ``b`` needs ``b0``.
- ``down/inherited_from`` (2, m_down) int: the upstream filter (same class)
  each downstream filter was copied from, -1 for fresh ones (docs/model.md
  §5.2; ``entry`` granularity: the filter's own index where any entry is
  inherited). refimpl writes it; crosscheck checks the transfer with it.
"""

from __future__ import annotations

import json
import os

import numpy as np

from .data import Task, patch_roles
from .errors import PatchRoleError, TrajectoryError
from .files import atomic_write, provenance, read_npz
from .train import Stage
from .transfer import STAGES

__all__ = [
    "FORMAT_VERSION",
    "STAGE_KEYS",
    "OPTIONAL_KEYS",
    "COEFFICIENT_KEYS",
    "TrajectoryError",
    "Trajectory",
    "StageView",
    "save",
    "load",
    "experiment_arrays",
    "stage_arrays",
]

FORMAT_VERSION = 1
STAGE_KEYS = (
    "X",
    "y",
    "y_clean",
    "xi",
    "signals",
    "W0",
    "eta",
    "weight_decay",
    "trainable",
    "steps",
    "W",
    "gamma",
    "rho_bar",
    "rho_under",
    "loss",
)
OPTIONAL_KEYS = ("patch_role", "b0", "b")
COEFFICIENT_KEYS = ("gamma", "rho_bar", "rho_under")


def stage_arrays(name, stage: Stage):
    """The ``name/...`` arrays of one stage (coefficients only when tracked;
    ``patch_role`` only when the task sets it).

    Parameters
    ----------
    name : str
        The stage's name, the prefix of its keys.
    stage : Stage
        The trained stage.

    Returns
    -------
    dict of str to ndarray
        ``name/X``, ``name/y``, ``name/y_clean``, ``name/xi``,
        ``name/signals``, ``name/W0``, ``name/eta``, ``name/weight_decay``,
        ``name/trainable``, ``name/steps``, ``name/W``, ``name/loss``, and
        when present the coefficients and ``name/patch_role``.
    """
    t = stage.task
    arrays = {
        "X": t.X,
        "y": t.y,
        "y_clean": t.y_clean,
        "xi": t.xi,
        "signals": t.signals,
        "W0": stage.W0,
        "eta": np.float64(stage.eta),
        "weight_decay": np.float64(stage.weight_decay),
        "trainable": stage.trainable,
        "steps": stage.steps,
        "W": stage.W,
        "loss": stage.loss,
    }
    for key in COEFFICIENT_KEYS:
        if getattr(stage, key) is not None:
            arrays[key] = getattr(stage, key)
    if getattr(t, "patch_role", None) is not None:
        arrays["patch_role"] = np.asarray(t.patch_role, dtype=np.int64)
    return {f"{name}/{key}": np.asarray(value) for key, value in arrays.items()}


def experiment_arrays(exp):
    """All arrays of an :class:`~refimpl.transfer.Experiment` in format 1.

    Parameters
    ----------
    exp : Experiment
        A finished run.

    Returns
    -------
    dict of str to ndarray
        ``format_version``, ``config_json``, ``provenance_json``, each stage's
        arrays (:func:`stage_arrays`) and ``down/inherited``,
        ``down/inherited_from``.
    """
    arrays = {
        "format_version": np.int64(FORMAT_VERSION),
        "config_json": np.str_(exp.config.to_json()),
        "provenance_json": np.str_(json.dumps(provenance(exp.config.seed))),
    }
    for name, stage in exp.stages.items():
        arrays.update(stage_arrays(name, stage))
    arrays["down/inherited"] = exp.inherited
    arrays["down/inherited_from"] = np.asarray(exp.source, dtype=np.int64)
    return arrays


def save(path, arrays):
    """Write arrays (a dict in format 1, or an Experiment) to ``path`` atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write (a ``.npz`` archive, compressed).
    arrays : dict of str to ndarray, or Experiment
        The arrays in format 1, or a run (:func:`experiment_arrays`).

    Raises
    ------
    UsageError
        When ``path`` exists and is not a regular file.
    """
    if not isinstance(arrays, dict):
        arrays = experiment_arrays(arrays)
    atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))


class StageView:
    """The arrays of one stage of a file, by attribute: ``view.W``,
    ``view.eta``, ... (the ``stage/...`` keys; an optional key the file lacks
    is None).

    Attributes
    ----------
    name : str
        The stage.
    path : str
        The file.

    Parameters
    ----------
    traj : Trajectory
        The loaded file.
    name : str
        The stage, one of ``traj.stages``.
    """

    def __init__(self, traj, name):
        self._arrays, self.name, self.path = traj.arrays, name, traj.path
        self._has_coefficients = traj.has_coefficients[name]

    def __getattr__(self, key):
        if key.startswith("_"):
            raise AttributeError(key)
        full = f"{self.name}/{key}"
        if full in self._arrays:
            return self._arrays[full]
        if key in OPTIONAL_KEYS or key in COEFFICIENT_KEYS:
            return None
        raise AttributeError(f"stage {self.name!r} of {self.path} has no key {key!r}")

    def __contains__(self, key):
        return f"{self.name}/{key}" in self._arrays

    def f64(self, key):
        """The array of ``key`` as C-contiguous float64 (a file may store float32)."""
        return np.ascontiguousarray(getattr(self, key), dtype=np.float64)

    @property
    def has_coefficients(self) -> bool:
        return self._has_coefficients

    @property
    def T(self) -> int:
        """The last step."""
        return int(self.steps[-1])

    def task(self) -> Task:
        """The stage's data as a float64 :class:`~refimpl.data.Task` (with the
        file's ``patch_role`` when it has one)."""
        return Task(
            X=self.f64("X"),
            y=self.f64("y"),
            y_clean=self.f64("y_clean"),
            xi=self.f64("xi"),
            signals=self.f64("signals"),
            patch_role=self.patch_role,
        )

    def roles(self):
        """The patch roles (n, P): the file's ``patch_role`` checked against the
        data, or derived from it (:func:`refimpl.data.patch_roles`).

        Raises
        ------
        PatchRoleError
            Naming the file, the stage and the inputs whose roles cannot be
            determined (or do not fit).
        """
        try:
            return self.task().roles()
        except PatchRoleError as exc:
            mismatch = precision_mismatch(self._arrays, self.name)
            if mismatch:
                raise PatchRoleError(f"{self.path}: {mismatch}") from None
            text = str(exc).replace(
                "give Task.patch_role to set them",
                f"store {self.name}/patch_role in the file to set them",
            )
            raise PatchRoleError(f"{self.path}: stage {self.name!r}: {text}") from None


def _precision(a):
    """'float32', 'float32 numbers stored as float64', 'float64', ..."""
    a = np.asarray(a)
    if a.dtype == np.float32 or not np.all(a.astype(np.float32) == a):
        return a.dtype.name
    return f"float32 numbers stored as {a.dtype.name}"


def precision_mismatch(arrays, stage, patch_role=None):
    """Why the patch roles of a stage fail when X, xi and signals are stored at
    different precisions: a one-line reason naming each array's precision
    when the roles fit once all three are rounded to float32; None when they
    do not (the failure is of another kind).

    Parameters
    ----------
    arrays : dict of str to ndarray
        The file's arrays (``stage/X``, ``stage/y_clean``, ``stage/signals``,
        ``stage/xi``).
    stage : str
    patch_role : ndarray of shape (n, P), optional
        The stored roles, checked instead of derived.
    """
    X, y_clean, signals, xi = (arrays[f"{stage}/{k}"] for k in ("X", "y_clean", "signals", "xi"))
    f32 = lambda a: np.asarray(a, dtype=np.float32).astype(np.float64)  # noqa: E731
    try:
        patch_roles(f32(X), np.asarray(y_clean, float), f32(signals), patch_role, xi=f32(xi))
    except (PatchRoleError, ValueError, OverflowError):
        return None
    shown = ", ".join(
        f"{k} {_precision(a)}" for k, a in (("X", X), ("xi", xi), ("signals", signals))
    )
    return (
        f"stage {stage!r}: {stage}/X, {stage}/xi and {stage}/signals are stored at different "
        f"precisions ({shown}): the patches of X must equal y_clean * signals and xi to rounding "
        "(1e-12 relative), and they agree only at float32 precision; store the three at the "
        "same precision (all float32 or all float64)"
    )


class Trajectory:
    """A loaded, checked trajectory file.

    Attributes
    ----------
    path : str
        The file.
    arrays : dict of str to ndarray
        Every array of the file, by key (``up/W``, ``config_json``, ...).
    config : dict
        The run's configuration as stored (``config_json``).
    provenance : dict
        The run's provenance as stored (``provenance_json``).
    stages : tuple of str
        The stages present, in the order up, down, scratch.
    has_coefficients : dict of str to bool
        Per stage, whether the file holds its coefficients (``gamma``,
        ``rho_bar``, ``rho_under``).

    Parameters
    ----------
    path, arrays, config, stages, has_coefficients : as the attributes
        Given by :func:`load`, which checks the file first.
    provenance_ : dict
        The ``provenance`` attribute.
    """

    def __init__(self, path, arrays, config, provenance_, stages, has_coefficients):
        self.path, self.arrays, self.config = path, arrays, config
        self.provenance, self.stages = provenance_, stages
        self.has_coefficients = has_coefficients

    def __getitem__(self, key):
        return self.arrays[key]

    def get(self, stage, key):
        return self.arrays[f"{stage}/{key}"]

    def stage(self, stage) -> StageView:
        """The arrays of ``stage`` by attribute (:class:`StageView`)."""
        if stage not in self.stages:
            raise TrajectoryError(
                f"{self.path} has no stage {stage!r} (it has {', '.join(self.stages)})"
            )
        return StageView(self, stage)

    def task(self, stage) -> Task:
        return self.stage(stage).task()

    def to_stage(self, stage) -> Stage:
        """The stage as a :class:`~refimpl.train.Stage` (coefficients required)."""
        if not self.has_coefficients[stage]:
            raise TrajectoryError(
                f"{self.path}: stage {stage!r} has no coefficients "
                "(run `python -m refimpl decompose` first)"
            )
        v = self.stage(stage)
        return Stage(
            task=v.task(),
            W0=v.W0,
            eta=float(v.eta),
            weight_decay=float(v.weight_decay),
            trainable=v.trainable,
            steps=v.steps,
            W=v.W,
            gamma=v.gamma,
            rho_bar=v.rho_bar,
            rho_under=v.rho_under,
            loss=v.loss,
        )


def load(path, require_coefficients=True) -> Trajectory:
    """Read and check a format-1 trajectory file.

    Parameters
    ----------
    path : str or PathLike
        The ``.npz`` file.
    require_coefficients : bool
        When False, stages may lack ``gamma``, ``rho_bar`` and ``rho_under``
        (a framework run that stored weights only).

    Returns
    -------
    Trajectory
        The checked file, its arrays in memory.

    Raises
    ------
    TrajectoryError
        Missing file, truncated or non-npz bytes, wrong version, a missing key,
        a wrong shape, dtype or value; the message names it.
    PatchRoleError
        A stored ``patch_role`` that does not fit the data (names the inputs).
    """
    path = os.fspath(path)
    try:
        arrays = read_npz(path, wanted=_known_key, what="the trajectory file")
    except IsADirectoryError:
        raise TrajectoryError(f"{path}: is a folder, not a trajectory file") from None
    except FileNotFoundError:
        raise TrajectoryError(f"{path}: no such file") from None
    except OSError as exc:
        raise TrajectoryError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise TrajectoryError(f"{path}: not a readable .npz trajectory file: {exc}") from None
    check = _Checker(path, arrays)
    version = check.scalar("format_version", int)
    if version != FORMAT_VERSION:
        raise TrajectoryError(
            f"{path}: format_version is {version}; this refimpl reads version {FORMAT_VERSION}"
        )
    config = check.json("config_json")
    prov = check.json("provenance_json")
    stages = tuple(s for s in STAGES if any(k.startswith(s + "/") for k in arrays))
    if not stages:
        raise TrajectoryError(f"{path}: no stage keys (expected up/..., down/... or scratch/...)")
    has_coef = {s: check.stage(s, require_coefficients) for s in stages}
    if "down" in stages:
        inh = check.mask("down/inherited")
        m, d = arrays["down/W0"].shape[1:]
        if inh.shape not in ((2, m), (2, m, d)):
            raise TrajectoryError(
                f"{path}: down/inherited has shape {inh.shape}; expected (2, {m}) or (2, {m}, {d})"
            )
        _check_inherited_from(check, arrays, stages)
    return Trajectory(path, arrays, config, prov, stages, has_coef)


def _check_inherited_from(check, arrays, stages):
    """The optional ``down/inherited_from``: (2, m_down) int, each entry -1 or
    an upstream filter index (below up's m when the file has ``up``)."""
    key = "down/inherited_from"
    if key not in arrays:
        return
    m = arrays["down/W0"].shape[1]
    src = check.shaped(key, int, (2, m))
    top = arrays["up/W0"].shape[1] if "up" in stages else None
    if np.any(src < -1) or (top is not None and np.any(src >= top)):
        upper = f"{top - 1}" if top is not None else "m_up - 1"
        check.fail(
            key, f"has values outside -1..{upper} (the upstream filter index, -1 for fresh ones)"
        )


def _known_key(key):
    """The keys format 1 defines (others are not read: a file may carry
    extra keys of its own, at no cost)."""
    if key in (
        "format_version",
        "config_json",
        "provenance_json",
        "down/inherited",
        "down/inherited_from",
    ):
        return True
    stage, _, name = key.partition("/")
    return stage in STAGES and (name in STAGE_KEYS or name in OPTIONAL_KEYS)


class _Checker:
    def __init__(self, path, arrays):
        self.path, self.arrays = path, arrays

    def fail(self, key, what):
        raise TrajectoryError(f"{self.path}: {key} {what}")

    def array(self, key, kind, expected=None):
        """The array of ``key`` of dtype ``kind`` (a type or a tuple of
        types); ``expected`` words the accepted dtypes in the refusal."""
        if key not in self.arrays:
            self.fail(key, "is missing")
        a = self.arrays[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        ok = {
            bool: a.dtype == np.bool_,
            int: np.issubdtype(a.dtype, np.integer),
            float: np.issubdtype(a.dtype, np.floating),
            str: a.dtype.kind == "U",
        }
        if not any(ok[k] for k in kinds):
            what = expected or " or ".join(k.__name__ for k in kinds)
            self.fail(key, f"has dtype {a.dtype}; expected {what}")
        if float in kinds and ok[float] and not np.all(np.isfinite(a)):
            self.fail(key, "has non-finite values")
        return a

    def labels(self, key, n):
        """Labels +1 and -1 of shape (n,): float, or integers (read as float64)."""
        a = self.array(key, (float, int), "float or int (+1 and -1)")
        if a.shape != (n,):
            self.fail(key, f"has shape {a.shape}; expected ({n},)")
        bad = a[(a != 1) & (a != -1)]
        if bad.size:
            hint = "; 0/1 class labels are 2*y - 1" if np.all((a == 0) | (a == 1)) else ""
            self.fail(key, f"has entries other than +1 and -1 (e.g. {bad.flat[0]}){hint}")
        if a.dtype.kind in "iu":
            self.arrays[key] = a.astype(np.float64)

    def mask(self, key, shape=None):
        """A mask: bool, or integers 0 and 1 (read as bool); of ``shape`` when given."""
        a = self.array(key, (bool, int), "bool (or integers 0 and 1)")
        if shape is not None and a.shape != tuple(shape):
            self.fail(key, f"has shape {a.shape}; expected {tuple(shape)}")
        if a.dtype != np.bool_:
            bad = a[(a != 0) & (a != 1)]
            if bad.size:
                self.fail(
                    key,
                    f"has integer entries other than 0 and 1 (e.g. {bad.flat[0]}); "
                    "expected a mask: bool, or integers 0 and 1",
                )
            a = self.arrays[key] = a.astype(bool)
        return a

    def scalar(self, key, kind):
        a = self.array(key, kind)
        if a.shape != ():
            self.fail(key, f"has shape {a.shape}; expected a scalar")
        return a.item()

    def json(self, key):
        """A JSON member, read with the limits of a config file: a number too
        long to convert and nesting too deep are refused naming the key."""
        try:
            return json.loads(self.scalar(key, str))
        except json.JSONDecodeError as exc:
            self.fail(key, f"is not valid JSON ({exc})")
        except RecursionError:
            self.fail(key, "is JSON nested too deeply")
        except ValueError as exc:  # an integer of more than 4300 digits
            self.fail(key, f"holds a number too long to read ({str(exc).split(':')[0]})")

    def shaped(self, key, kind, shape):
        a = self.array(key, kind)
        if a.shape != tuple(shape):
            self.fail(key, f"has shape {a.shape}; expected {tuple(shape)}")
        return a

    def stage(self, s, require_coefficients):
        k = lambda name: f"{s}/{name}"  # noqa: E731
        X = self.array(k("X"), float)
        if X.ndim != 3:
            self.fail(k("X"), f"has shape {X.shape}; expected (n, P, d)")
        n, P, d = X.shape
        for size, name in ((n, "n = 0 inputs"), (P, "P = 0 patches"), (d, "d = 0 dimensions")):
            if size == 0:
                self.fail(k("X"), f"has shape {X.shape} ({name}); expected (n, P, d), each >= 1")
        for key in ("y", "y_clean"):
            self.labels(k(key), n)
        self.shaped(k("xi"), float, (n, d))
        signals = self.array(k("signals"), float)
        if signals.shape != (P - 1, d):
            self.fail(
                k("signals"), f"has shape {signals.shape}; expected ({P - 1}, {d}) (P - 1 signals)"
            )
        W0 = self.array(k("W0"), float)
        if W0.ndim != 3 or W0.shape[0] != 2 or W0.shape[2] != d:
            self.fail(k("W0"), f"has shape {W0.shape}; expected (2, m, {d})")
        m = W0.shape[1]
        if m == 0:
            self.fail(k("W0"), f"has shape {W0.shape}: no filters (m = 0); expected m >= 1")
        for key in ("eta", "weight_decay"):
            self.scalar(k(key), float)
        self.mask(k("trainable"), (2, m))
        steps = self.array(k("steps"), int)
        if steps.ndim != 1 or steps.size < 1 or np.any(steps < 0) or np.any(steps > 2**62):
            self.fail(k("steps"), "must be increasing snapshot steps starting at 0")
        steps = self.arrays[k("steps")] = steps.astype(np.int64)  # no unsigned wrap-around
        if steps[0] != 0 or np.any(np.diff(steps) <= 0):
            self.fail(k("steps"), "must be increasing snapshot steps starting at 0")
        K = steps.size
        self.shaped(k("W"), float, (K, 2, m, d))
        self.shaped(k("loss"), float, (int(steps[-1]) + 1,))
        self.optional(s, n, P, m, K)
        present = [c for c in COEFFICIENT_KEYS if k(c) in self.arrays]
        if require_coefficients or present:
            self.shaped(k("gamma"), float, (K, 2, m, P - 1))
            self.shaped(k("rho_bar"), float, (K, 2, m, n))
            self.shaped(k("rho_under"), float, (K, 2, m, n))
            return True
        return False

    def optional(self, s, n, P, m, K):
        """The optional keys: ``patch_role`` checked against the data, the bias."""
        k = lambda name: f"{s}/{name}"  # noqa: E731
        if k("patch_role") in self.arrays:
            roles = self.shaped(k("patch_role"), int, (n, P))
            try:
                patch_roles(
                    self.arrays[k("X")],
                    self.arrays[k("y_clean")],
                    self.arrays[k("signals")],
                    roles,
                    xi=self.arrays[k("xi")],
                )
            except PatchRoleError as exc:
                why = precision_mismatch(self.arrays, s, roles) or f"{k('patch_role')}: {exc}"
                raise PatchRoleError(f"{self.path}: {why}") from None
        if k("b") in self.arrays and k("b0") not in self.arrays:
            self.fail(k("b"), f"needs {k('b0')} (the bias's initial value)")
        if k("b0") in self.arrays:
            self.shaped(k("b0"), float, (2, m))
        if k("b") in self.arrays:
            self.shaped(k("b"), float, (K, 2, m))
