"""Configuration of one transfer experiment (up, down and scratch stages).

A frozen dataclass whose constructor validates every field; a bad value raises
:class:`ConfigError` naming the field and what is allowed. Names follow the
notation table of MODEL.md section 1; per-task quantities carry the suffix
``_up`` (task 1, upstream) or ``_down`` (task 2, downstream). In dictionaries
(JSON files, ``--set``) the shorthands ``sigma_p``, ``flip`` and ``n`` set both
tasks at once.
"""
from __future__ import annotations

import dataclasses
import json
import math
import numbers
from dataclasses import dataclass, field, fields

import numpy as np

__all__ = ["Config", "ConfigError", "DEFAULT", "parse_assignment", "n_inherited",
           "expand_shorthands", "read_json_object"]


class ConfigError(ValueError):
    """A configuration value is not allowed; the message names the field."""


LAYOUTS = ("joint", "split")
GRANULARITIES = ("filter", "entry")
ESTIMATORS = ("reduced", "sample")
SHORTHANDS = {"sigma_p": ("sigma_p_up", "sigma_p_down"),
              "flip": ("flip_up", "flip_down"),
              "n": ("n_up", "n_down")}


def n_inherited(alpha, m_down):
    """round(alpha m_2), halves rounded up: inherited filters per class (MODEL.md section 5.2)."""
    return int(math.floor(alpha * m_down + 0.5))


def _int(lo=None, hi=None, optional=False):
    return {"kind": "int", "lo": lo, "hi": hi, "optional": optional}


def _real(lo=None, hi=None, lo_open=False, hi_open=False):
    return {"kind": "real", "lo": lo, "hi": hi, "lo_open": lo_open, "hi_open": hi_open}


def _choice(*options):
    return {"kind": "choice", "options": options}


_BOOL = {"kind": "bool"}


@dataclass(frozen=True)
class Config:
    """All inputs of one run; see MODEL.md sections 1-6 for each symbol.

    Attributes
    ----------
    d : int
        Patch dimension.
    m : int
        Filters per class of the upstream network (m_1).
    m_down : int or None
        Filters per class downstream (m_2); None means ``m``.
    n_up, n_down : int
        Training samples N_1, N_2.
    u_norm, v_up_norm, v_down_norm : float
        |u|, |v_1|, |v_2| (MODEL.md section 2).
    v_cos : float
        Cosine of the angle between v_up and v_down (0: orthogonal).
    sigma_p_up, sigma_p_down : float
        Noise scale sigma_{p,k}.
    flip_up, flip_down : float
        Label-flip probability p_k, in [0, 1/2).
    layout : {"joint", "split"}
        Signal layout (MODEL.md section 2.4); P = 2 or 3.
    eta : float
        Step size (both stages).
    sigma_0 : float
        Init scale.
    weight_decay_up : float
        lambda during upstream training.
    weight_decay : float
        lambda during fine-tuning and the scratch baseline (section 5.2).
    steps_up, steps_down : int
        Step caps T of the stages.
    epsilon : float
        Stop at the first step whose training loss is <= epsilon (0: never;
        run the full cap). Transfer and scratch share the rule.
    snapshots : int
        Number of weight snapshots per stage, evenly spaced over the cap;
        step 0 and the last step are always included.
    alpha : float
        Inherited fraction, in [0, 1].
    granularity : {"filter", "entry"}
        Whole filters or i.i.d. entries are inherited (section 5.2).
    freeze_inherited : bool
        Inherited filters do not move during fine-tuning.
    rescale_inherited : float
        Factor applied to inherited weights.
    n_test : int
        Test points per error estimate (section 6).
    estimator : {"reduced", "sample"}
        Test-error estimator.
    seed : int
        The one seed from which all randomness is derived.
    """

    d: int = field(default=600, metadata=_int(3))
    m: int = field(default=10, metadata=_int(1))
    m_down: int | None = field(default=None, metadata=_int(1, optional=True))
    n_up: int = field(default=200, metadata=_int(1))
    n_down: int = field(default=10, metadata=_int(1))
    u_norm: float = field(default=3.0, metadata=_real(0.0))
    v_up_norm: float = field(default=1.0, metadata=_real(0.0))
    v_down_norm: float = field(default=1.0, metadata=_real(0.0))
    v_cos: float = field(default=0.0, metadata=_real(-1.0, 1.0))
    sigma_p_up: float = field(default=1.0, metadata=_real(0.0, lo_open=True))
    sigma_p_down: float = field(default=1.0, metadata=_real(0.0, lo_open=True))
    flip_up: float = field(default=0.0, metadata=_real(0.0, 0.5, hi_open=True))
    flip_down: float = field(default=0.1, metadata=_real(0.0, 0.5, hi_open=True))
    layout: str = field(default="joint", metadata=_choice(*LAYOUTS))
    eta: float = field(default=1.0, metadata=_real(0.0, lo_open=True))
    sigma_0: float = field(default=0.01, metadata=_real(0.0, lo_open=True))
    weight_decay_up: float = field(default=0.0, metadata=_real(0.0))
    weight_decay: float = field(default=0.0, metadata=_real(0.0))
    steps_up: int = field(default=200, metadata=_int(0))
    steps_down: int = field(default=200, metadata=_int(0))
    epsilon: float = field(default=0.0, metadata=_real(0.0))
    snapshots: int = field(default=21, metadata=_int(2))
    alpha: float = field(default=0.5, metadata=_real(0.0, 1.0))
    granularity: str = field(default="filter", metadata=_choice(*GRANULARITIES))
    freeze_inherited: bool = field(default=False, metadata=_BOOL)
    rescale_inherited: float = field(default=1.0, metadata=_real())
    n_test: int = field(default=20000, metadata=_int(2, 10**7))
    estimator: str = field(default="reduced", metadata=_choice(*ESTIMATORS))
    seed: int = field(default=0, metadata=_int(0, 2**63 - 1))

    def __post_init__(self):
        for f in fields(self):
            value = _check_field(f, getattr(self, f.name))
            object.__setattr__(self, f.name, value)   # numpy scalars -> int / float
        self._check_combinations()

    # ------------------------------------------------------------------
    @property
    def m2(self) -> int:
        """Downstream width m_2."""
        return self.m if self.m_down is None else self.m_down

    @property
    def n_signals(self) -> int:
        """S, the number of signal patches (MODEL.md section 2.4)."""
        return 1 if self.layout == "joint" else 2

    @property
    def n_patches(self) -> int:
        """P = S + 1 (signal patches, then the noise patch)."""
        return self.n_signals + 1

    def removed_directions(self, task: str) -> int:
        """Rank of the directions projected out of task's noise (section 2.3)."""
        v = self.v_up_norm if task == "up" else self.v_down_norm
        return int(self.u_norm > 0) + int(v > 0)

    def _check_combinations(self):
        if self.freeze_inherited and self.granularity == "entry":
            raise ConfigError(
                "freeze_inherited=true needs granularity='filter': a filter with "
                "some frozen entries is not represented by the decomposition "
                "(MODEL.md section 4)")
        if self.granularity == "entry" and self.m2 != self.m:
            raise ConfigError(
                f"granularity='entry' needs m_down equal to m (got m_down={self.m2}, "
                f"m={self.m}): entries are inherited in place")
        for name in ("weight_decay_up", "weight_decay"):
            if self.eta * getattr(self, name) >= 1.0:
                raise ConfigError(
                    f"{name}={getattr(self, name)} with eta={self.eta}: eta*{name} must be "
                    "< 1 so that the decay factor 1 - eta*lambda is positive (MODEL.md section 3)")
        k = n_inherited(self.alpha, self.m2)
        if self.granularity == "filter" and k > self.m:
            raise ConfigError(
                f"alpha={self.alpha} inherits round(alpha*m_down)={k} filters per "
                f"class but the upstream network has only m={self.m}")
        for task in ("up", "down"):
            n = getattr(self, f"n_{task}")
            room = self.d - self.removed_directions(task)
            if n > room:
                raise ConfigError(
                    f"n_{task}={n} is too large for d={self.d}: the decomposition "
                    f"needs n_{task} <= {room} (d minus the signal directions) so "
                    "that the noise vectors are linearly independent (MODEL.md section 4)")

    # ------------------------------------------------------------------
    def replace(self, **changes) -> "Config":
        """A copy with some fields changed (validated like the original)."""
        return Config.from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict) -> "Config":
        """Build a config from a mapping; shorthands expand; unknown keys are refused."""
        values = expand_shorthands(values)
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            allowed = ", ".join(sorted(names | set(SHORTHANDS)))
            raise ConfigError(f"unknown config key {unknown[0]!r}; allowed keys: {allowed}")
        return cls(**values)

    @classmethod
    def from_json_file(cls, path) -> "Config":
        """A config from a JSON file (fields not in the file take their defaults)."""
        return cls.from_dict(read_json_object(path))


def expand_shorthands(values: dict) -> dict:
    """The mapping with ``sigma_p``, ``flip`` and ``n`` replaced by the keys of
    both tasks; a per-task key given in the same mapping wins over its shorthand."""
    if not isinstance(values, dict):
        raise ConfigError(f"a config must be a JSON object, not {type(values).__name__}")
    out = {}
    for key, value in values.items():
        for name in SHORTHANDS.get(key, ()):
            out[name] = value
    out.update({key: value for key, value in values.items() if key not in SHORTHANDS})
    return out


def read_json_object(path) -> dict:
    """The JSON object in a config file (not yet validated)."""
    try:
        with open(path, encoding="utf-8") as fh:
            values = json.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid JSON: {exc}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a JSON object, not {type(values).__name__}")
    return values

def _check_field(f, value):
    spec = f.metadata
    name = f.name
    kind = spec["kind"]
    if kind == "int":
        if value is None and spec["optional"]:
            return None
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            raise ConfigError(f"{name} must be an integer{' or null' if spec['optional'] else ''}, "
                              f"got {value!r}")
        value = int(value)
        lo, hi = spec["lo"], spec["hi"]
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ConfigError(f"{name} must be an integer in {_interval(lo, hi)}, got {value}")
    elif kind == "real":
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise ConfigError(f"{name} must be a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{name} must be finite, got {value}")
        lo, hi = spec["lo"], spec["hi"]
        bad = ((lo is not None and (value < lo or (spec["lo_open"] and value == lo)))
               or (hi is not None and (value > hi or (spec["hi_open"] and value == hi))))
        if bad:
            raise ConfigError(f"{name} must be in {_interval(lo, hi, spec['lo_open'], spec['hi_open'])}, "
                              f"got {value}")
    elif kind == "bool":
        if not isinstance(value, (bool, np.bool_)):
            raise ConfigError(f"{name} must be true or false, got {value!r}")
        value = bool(value)
    elif kind == "choice":
        if value not in spec["options"]:
            opts = " or ".join(repr(o) for o in spec["options"])
            raise ConfigError(f"{name} must be {opts}, got {value!r}")
    return value


def _interval(lo, hi, lo_open=False, hi_open=False):
    left = "(" if lo_open or lo is None else "["
    right = ")" if hi_open or hi is None else "]"
    return f"{left}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}{right}"


def parse_assignment(text: str) -> tuple[str, object]:
    """Parse ``KEY=VALUE`` from the command line; VALUE is read as JSON when it
    parses (numbers, true/false, null), else as a string."""
    if "=" not in text:
        raise ConfigError(f"--set expects KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    key = key.strip()
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key, value


DEFAULT = Config()
