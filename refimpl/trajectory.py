"""Trajectory files, format version 1: one ``.npz`` per run, the interchange
format for other implementations (README, "Trajectory file format").

Top-level keys: ``format_version`` (int, 1), ``config_json``,
``provenance_json``. For each stage ``s`` in ``up``, ``down``, ``scratch``
(any non-empty subset): the keys of :data:`STAGE_KEYS`, and ``down/inherited``.
Files load with ``allow_pickle=False``; anything malformed raises
:class:`TrajectoryError` naming the key and what was expected.
"""
from __future__ import annotations

import json
import os
import platform
import tempfile
import zipfile
import zlib

import numpy as np

from .data import Task
from .train import Stage

__all__ = ["FORMAT_VERSION", "STAGE_KEYS", "COEFFICIENT_KEYS", "TrajectoryError",
           "Trajectory", "atomic_write", "save", "load", "experiment_arrays", "stage_arrays", "provenance"]

FORMAT_VERSION = 1
STAGES = ("up", "down", "scratch")
STAGE_KEYS = ("X", "y", "y_clean", "xi", "signals", "W0", "eta", "weight_decay",
              "trainable", "steps", "W", "gamma", "rho_bar", "rho_under", "loss")
COEFFICIENT_KEYS = ("gamma", "rho_bar", "rho_under")


class TrajectoryError(ValueError):
    """A trajectory file is unusable; the message names the file and the key."""


def provenance(seed=None):
    """Package, numpy, numba and Python versions, and the seed."""
    import numba

    from . import __version__
    return {"package": "refimpl", "version": __version__, "numpy": np.__version__,
            "numba": numba.__version__, "python": platform.python_version(), "seed": seed}


def stage_arrays(name, stage: Stage):
    """The ``name/...`` arrays of one stage."""
    t = stage.task
    arrays = {"X": t.X, "y": t.y, "y_clean": t.y_clean, "xi": t.xi, "signals": t.signals,
              "W0": stage.W0, "eta": np.float64(stage.eta),
              "weight_decay": np.float64(stage.weight_decay), "trainable": stage.trainable,
              "steps": stage.steps, "W": stage.W, "gamma": stage.gamma,
              "rho_bar": stage.rho_bar, "rho_under": stage.rho_under, "loss": stage.loss}
    return {f"{name}/{key}": np.asarray(value) for key, value in arrays.items()}


def experiment_arrays(exp):
    """All arrays of an :class:`~refimpl.transfer.Experiment` in format 1."""
    arrays = {"format_version": np.int64(FORMAT_VERSION),
              "config_json": np.str_(exp.config.to_json()),
              "provenance_json": np.str_(json.dumps(provenance(exp.config.seed)))}
    for name, stage in exp.stages.items():
        arrays.update(stage_arrays(name, stage))
    arrays["down/inherited"] = exp.inherited
    return arrays


def atomic_write(path, write):
    """Call ``write(binary_file)`` on a temporary file beside ``path``, then
    rename it over ``path``: a crash leaves the old file or the complete new one."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save(path, arrays):
    """Write arrays (a dict in format 1, or an Experiment) to ``path`` atomically."""
    if not isinstance(arrays, dict):
        arrays = experiment_arrays(arrays)
    atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))


class Trajectory:
    """A loaded, checked trajectory file.

    Attributes
    ----------
    path : str
    arrays : dict of str to ndarray
    config : dict
        The run's configuration as stored (``config_json``).
    provenance : dict
    stages : tuple of str
        The stages present, in the order up, down, scratch.
    has_coefficients : dict of str to bool
    """

    def __init__(self, path, arrays, config, provenance_, stages, has_coefficients):
        self.path, self.arrays, self.config = path, arrays, config
        self.provenance, self.stages = provenance_, stages
        self.has_coefficients = has_coefficients

    def __getitem__(self, key):
        return self.arrays[key]

    def get(self, stage, key):
        return self.arrays[f"{stage}/{key}"]

    def task(self, stage) -> Task:
        g = lambda k: self.get(stage, k)  # noqa: E731
        return Task(X=g("X"), y=g("y"), y_clean=g("y_clean"), xi=g("xi"), signals=g("signals"))

    def to_stage(self, stage) -> Stage:
        """The stage as a :class:`~refimpl.train.Stage` (coefficients required)."""
        if not self.has_coefficients[stage]:
            raise TrajectoryError(f"{self.path}: stage {stage!r} has no coefficients "
                                  "(run `python -m refimpl decompose` first)")
        g = lambda k: self.get(stage, k)  # noqa: E731
        return Stage(task=self.task(stage), W0=g("W0"), eta=float(g("eta")),
                     weight_decay=float(g("weight_decay")), trainable=g("trainable"),
                     steps=g("steps"), W=g("W"), gamma=g("gamma"), rho_bar=g("rho_bar"),
                     rho_under=g("rho_under"), loss=g("loss"))


def load(path, require_coefficients=True) -> Trajectory:
    """Read and check a format-1 trajectory file.

    Parameters
    ----------
    path : str or PathLike
    require_coefficients : bool
        When False, stages may lack ``gamma``, ``rho_bar`` and ``rho_under``
        (a framework run that stored weights only).

    Raises
    ------
    TrajectoryError
        Missing file, truncated or non-npz bytes, wrong version, a missing key,
        a wrong shape, dtype or value; the message names it.
    """
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except FileNotFoundError:
        raise TrajectoryError(f"{path}: no such file") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        raise TrajectoryError(f"{path}: not a readable .npz trajectory file "
                              f"(truncated or corrupt bytes?): {exc}") from None
    check = _Checker(path, arrays)
    version = check.scalar("format_version", int)
    if version != FORMAT_VERSION:
        raise TrajectoryError(f"{path}: format_version is {version}; this refimpl reads "
                              f"version {FORMAT_VERSION}")
    config = check.json("config_json")
    prov = check.json("provenance_json")
    stages = tuple(s for s in STAGES if any(k.startswith(s + "/") for k in arrays))
    if not stages:
        raise TrajectoryError(f"{path}: no stage keys (expected up/..., down/... or scratch/...)")
    has_coef = {s: check.stage(s, require_coefficients) for s in stages}
    if "down" in stages:
        inh = check.array("down/inherited", bool)
        m, d = arrays["down/W0"].shape[1:]
        if inh.shape not in ((2, m), (2, m, d)):
            raise TrajectoryError(f"{path}: down/inherited has shape {inh.shape}; "
                                  f"expected (2, {m}) or (2, {m}, {d})")
    return Trajectory(path, arrays, config, prov, stages, has_coef)


class _Checker:
    def __init__(self, path, arrays):
        self.path, self.arrays = path, arrays

    def fail(self, key, what):
        raise TrajectoryError(f"{self.path}: {key} {what}")

    def array(self, key, kind):
        if key not in self.arrays:
            self.fail(key, "is missing")
        a = self.arrays[key]
        ok = {bool: a.dtype == np.bool_,
              int: np.issubdtype(a.dtype, np.integer),
              float: np.issubdtype(a.dtype, np.floating),
              str: a.dtype.kind == "U"}[kind]
        if not ok:
            self.fail(key, f"has dtype {a.dtype}; expected {kind.__name__}")
        if kind is float and not np.all(np.isfinite(a)):
            self.fail(key, "has non-finite values")
        return a

    def scalar(self, key, kind):
        a = self.array(key, kind)
        if a.shape != ():
            self.fail(key, f"has shape {a.shape}; expected a scalar")
        return a.item()

    def json(self, key):
        try:
            return json.loads(self.scalar(key, str))
        except json.JSONDecodeError as exc:
            self.fail(key, f"is not valid JSON ({exc})")

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
        self.shaped(k("y"), float, (n,))
        self.shaped(k("y_clean"), float, (n,))
        for key in ("y", "y_clean"):
            if not np.all(np.abs(self.arrays[k(key)]) == 1):
                self.fail(k(key), "has entries other than +1 and -1")
        self.shaped(k("xi"), float, (n, d))
        signals = self.array(k("signals"), float)
        if signals.shape != (P - 1, d):
            self.fail(k("signals"), f"has shape {signals.shape}; expected ({P - 1}, {d}) (P - 1 signals)")
        W0 = self.array(k("W0"), float)
        if W0.ndim != 3 or W0.shape[0] != 2 or W0.shape[2] != d:
            self.fail(k("W0"), f"has shape {W0.shape}; expected (2, m, {d})")
        m = W0.shape[1]
        for key in ("eta", "weight_decay"):
            self.scalar(k(key), float)
        self.shaped(k("trainable"), bool, (2, m))
        steps = self.array(k("steps"), int)
        if steps.ndim != 1 or steps.size < 1 or steps[0] != 0 or np.any(np.diff(steps) <= 0):
            self.fail(k("steps"), "must be increasing snapshot steps starting at 0")
        K = steps.size
        self.shaped(k("W"), float, (K, 2, m, d))
        self.shaped(k("loss"), float, (int(steps[-1]) + 1,))
        present = [c for c in COEFFICIENT_KEYS if k(c) in self.arrays]
        if require_coefficients or present:
            self.shaped(k("gamma"), float, (K, 2, m, P - 1))
            self.shaped(k("rho_bar"), float, (K, 2, m, n))
            self.shaped(k("rho_under"), float, (K, 2, m, n))
            return True
        return False
