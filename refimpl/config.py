"""Configuration of one transfer experiment (up, down and scratch stages).

A frozen dataclass whose constructor validates every field; a bad value raises
:class:`ConfigError` naming the field and what is allowed. Names follow the
notation table of docs/model.md §1; per-task quantities carry the suffix
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

from .errors import ConfigError

__all__ = [
    "Config",
    "ConfigError",
    "DEFAULT",
    "parse_assignment",
    "n_inherited",
    "expand_shorthands",
    "read_json_object",
    "ValidatedConfig",
    "int_field",
    "real_field",
    "choice_field",
    "parsed_field",
    "BOOL_FIELD",
    "loads_json",
    "shown",
    "INT_MAX",
    "integer_argument",
    "real_argument",
]


LAYOUTS = ("joint", "split")
GRANULARITIES = ("filter", "entry")
ESTIMATORS = ("reduced", "sample")
ENGINES = ("auto", "weight", "gram")
SHORTHANDS = {
    "sigma_p": ("sigma_p_up", "sigma_p_down"),
    "flip": ("flip_up", "flip_down"),
    "n": ("n_up", "n_down"),
}


def n_inherited(alpha, m_down):
    """round(alpha m_2), halves rounded up: inherited filters per class (docs/model.md §5.2).

    Parameters
    ----------
    alpha : float
        The inherited fraction alpha in [0, 1].
    m_down : int
        Filters per class downstream, m_2.

    Returns
    -------
    int
        The number of inherited filters per class.
    """
    return int(math.floor(alpha * m_down + 0.5))


def int_field(lo=None, hi=None, optional=False):
    """Field metadata: an integer in [lo, hi] (None allowed when ``optional``);
    ``hi`` None means up to :data:`INT_MAX`.

    Parameters
    ----------
    lo, hi : int or None, optional
        The bounds, inclusive; None: no lower bound, and ``INT_MAX`` above.
    optional : bool, optional
        Whether None is allowed.

    Returns
    -------
    dict
        The metadata (``kind`` ``"int"``, ``lo``, ``hi``, ``optional``).
    """
    return {"kind": "int", "lo": lo, "hi": hi, "optional": optional}


def real_field(lo=None, hi=None, lo_open=False, hi_open=False, optional=False):
    """Field metadata: a finite real in the interval (ends open or closed);
    None allowed when ``optional``.

    Parameters
    ----------
    lo, hi : float or None, optional
        The interval's ends; None: unbounded on that side.
    lo_open, hi_open : bool, optional
        Whether the end itself is excluded.
    optional : bool, optional
        Whether None is allowed.

    Returns
    -------
    dict
        The metadata (``kind`` ``"real"``, the ends and their openness,
        ``optional``).
    """
    return {
        "kind": "real",
        "lo": lo,
        "hi": hi,
        "lo_open": lo_open,
        "hi_open": hi_open,
        "optional": optional,
    }


def choice_field(*options):
    """Field metadata: one of ``options``.

    Parameters
    ----------
    *options : object
        The allowed values.

    Returns
    -------
    dict
        The metadata ``{"kind": "choice", "options": options}``.
    """
    return {"kind": "choice", "options": options}


BOOL_FIELD = {"kind": "bool"}
"""Field metadata: true or false."""


def parsed_field(parse):
    """Field metadata: a value of its own type, or what ``parse(value)``
    makes of one (``parse`` raises :class:`ConfigError` for a bad value).

    Parameters
    ----------
    parse : callable
        Takes the given value and returns the field's value, or raises
        :class:`ConfigError`.

    Returns
    -------
    dict
        The metadata ``{"kind": "parsed", "parse": parse}``.
    """
    return {"kind": "parsed", "parse": parse}


class ValidatedConfig:
    """Base of the frozen config dataclasses (:class:`Config`,
    :class:`refimpl.lab.image_experiment.ImageConfig`): every field carries metadata
    (:func:`int_field`, :func:`real_field`, :func:`choice_field`,
    :data:`BOOL_FIELD`, :func:`parsed_field`) checked at construction, then ``_check_combinations``;
    a bad value raises :class:`ConfigError` naming the field. Unknown keys are
    refused; ``SHORTHANDS`` maps a shorthand key to the fields it sets.

    Attributes
    ----------
    SHORTHANDS : dict of str to tuple of str
        A shorthand key and the fields it sets (:func:`expand_shorthands`);
        empty in the base class.
    """

    SHORTHANDS: dict = {}

    def __post_init__(self):
        for f in fields(self):
            value = _check_field(f, getattr(self, f.name))
            object.__setattr__(self, f.name, value)  # numpy scalars -> int / float
        self._check_combinations()

    def _check_combinations(self):
        """Checks across fields (none by default)."""

    def replace(self, **changes):
        """A copy with some fields changed (validated like the original)."""
        return type(self).from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict):
        """Build a config from a mapping; shorthands expand; unknown keys are refused."""
        values = expand_shorthands(values, cls.SHORTHANDS)
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names, key=shown)  # keys of any type
        if unknown:
            allowed = ", ".join(sorted(names | set(cls.SHORTHANDS)))
            raise ConfigError(f"unknown config key {shown(unknown[0])}; allowed keys: {allowed}")
        return cls(**values)

    @classmethod
    def from_json_file(cls, path):
        """A config from a JSON file (fields not in the file take their defaults)."""
        return cls.from_dict(read_json_object(path))


@dataclass(frozen=True)
class Config(ValidatedConfig):
    """All inputs of one run; see docs/model.md §1-6 for each symbol.

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
        |u|, |v_1|, |v_2| (docs/model.md §2).
    v_cos : float
        Cosine of the angle between v_up and v_down (0: orthogonal).
    sigma_p_up, sigma_p_down : float
        Noise scale sigma_{p,k}.
    flip_up, flip_down : float
        Label-flip probability p_k, in [0, 1/2).
    layout : {"joint", "split"}
        Signal layout (docs/model.md §2.4); P = 2 or 3.
    eta : float
        Step size of the upstream stage (and of the others unless ``eta_down`` is set).
    eta_down : float or None
        Step size of fine-tuning and the scratch baseline; None means ``eta``.
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
    engine : {"auto", "weight", "gram"}
        How GD is computed (:func:`refimpl.train.train_stage`): in weight
        space (the reference, the default), in the span of the data
        (docs/model.md §9; much faster where nP << d), or chosen by cost. The
        same dynamics to rounding per step; not part of the seed.
    """

    SHORTHANDS = SHORTHANDS
    SEED_EXCLUDED = ("engine",)
    """Fields that do not enter a derived seed (how, not what, is computed)."""
    SEED_NEUTRAL = {"eta_down": None}
    """Fields added after version 0.1 that enter a derived seed only when they
    differ from the value given here, so earlier protocols keep their seeds."""

    d: int = field(default=600, metadata=int_field(3))
    m: int = field(default=10, metadata=int_field(1))
    m_down: int | None = field(default=None, metadata=int_field(1, optional=True))
    n_up: int = field(default=200, metadata=int_field(1))
    n_down: int = field(default=10, metadata=int_field(1))
    u_norm: float = field(default=3.0, metadata=real_field(0.0))
    v_up_norm: float = field(default=1.0, metadata=real_field(0.0))
    v_down_norm: float = field(default=1.0, metadata=real_field(0.0))
    v_cos: float = field(default=0.0, metadata=real_field(-1.0, 1.0))
    sigma_p_up: float = field(default=1.0, metadata=real_field(0.0, lo_open=True))
    sigma_p_down: float = field(default=1.0, metadata=real_field(0.0, lo_open=True))
    flip_up: float = field(default=0.0, metadata=real_field(0.0, 0.5, hi_open=True))
    flip_down: float = field(default=0.1, metadata=real_field(0.0, 0.5, hi_open=True))
    layout: str = field(default="joint", metadata=choice_field(*LAYOUTS))
    eta: float = field(default=1.0, metadata=real_field(0.0, lo_open=True))
    eta_down: float | None = field(
        default=None, metadata=real_field(0.0, lo_open=True, optional=True)
    )
    sigma_0: float = field(default=0.01, metadata=real_field(0.0, lo_open=True))
    weight_decay_up: float = field(default=0.0, metadata=real_field(0.0))
    weight_decay: float = field(default=0.0, metadata=real_field(0.0))
    steps_up: int = field(default=200, metadata=int_field(0))
    steps_down: int = field(default=200, metadata=int_field(0))
    epsilon: float = field(default=0.0, metadata=real_field(0.0))
    snapshots: int = field(default=21, metadata=int_field(2))
    alpha: float = field(default=0.5, metadata=real_field(0.0, 1.0))
    granularity: str = field(default="filter", metadata=choice_field(*GRANULARITIES))
    freeze_inherited: bool = field(default=False, metadata=BOOL_FIELD)
    rescale_inherited: float = field(default=1.0, metadata=real_field())
    n_test: int = field(default=20000, metadata=int_field(2, 10**7))
    estimator: str = field(default="reduced", metadata=choice_field(*ESTIMATORS))
    seed: int = field(default=0, metadata=int_field(0, 2**63 - 1))
    engine: str = field(default="weight", metadata=choice_field(*ENGINES))

    # ------------------------------------------------------------------
    def eta_of(self, stage: str) -> float:
        """The step size of a stage: ``eta`` upstream, ``eta_down`` (or ``eta``)
        for fine-tuning and the scratch baseline."""
        return self.eta if stage == "up" or self.eta_down is None else self.eta_down

    def seed_fields(self) -> dict:
        """The fields a derived seed hashes (:func:`refimpl.lab.seeds.derive_seed`):
        all but :attr:`SEED_EXCLUDED`, and the :attr:`SEED_NEUTRAL` ones only
        when set."""
        values = self.to_dict()
        for name in self.SEED_EXCLUDED:
            values.pop(name)
        for name, neutral in self.SEED_NEUTRAL.items():
            if values[name] == neutral:
                values.pop(name)
        return values

    @property
    def m2(self) -> int:
        """Downstream width m_2."""
        return self.m if self.m_down is None else self.m_down

    @property
    def n_signals(self) -> int:
        """S, the number of signal patches (docs/model.md §2.4)."""
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
                "(docs/model.md §4)"
            )
        if self.granularity == "entry" and self.m2 != self.m:
            raise ConfigError(
                f"granularity='entry' needs m_down equal to m (got m_down={self.m2}, "
                f"m={self.m}): entries are inherited in place"
            )
        for name, eta in (("weight_decay_up", self.eta), ("weight_decay", self.eta_of("down"))):
            if eta * getattr(self, name) >= 1.0:
                raise ConfigError(
                    f"{name}={getattr(self, name)} with step size {eta}: eta*{name} must be "
                    "< 1 so that the decay factor 1 - eta*lambda is positive (docs/model.md §3)"
                )
        k = n_inherited(self.alpha, self.m2)
        if self.granularity == "filter" and k > self.m:
            raise ConfigError(
                f"alpha={self.alpha} inherits round(alpha*m_down)={k} filters per "
                f"class but the upstream network has only m={self.m}"
            )
        for task in ("up", "down"):
            n = getattr(self, f"n_{task}")
            room = self.d - self.removed_directions(task)
            if n > room:
                raise ConfigError(
                    f"n_{task}={n} is too large for d={self.d}: the decomposition "
                    f"needs n_{task} <= {room} (d minus the signal directions) so "
                    "that the noise vectors are linearly independent (docs/model.md §4)"
                )


def expand_shorthands(values: dict, shorthands=None) -> dict:
    """The mapping with ``sigma_p``, ``flip`` and ``n`` replaced by the keys of
    both tasks; a per-task key given in the same mapping wins over its shorthand.

    Parameters
    ----------
    values : dict
        The config mapping as given (keys not yet checked).
    shorthands : dict of str to tuple of str, optional
        A shorthand key and the keys it stands for; None: the module's
        ``SHORTHANDS`` (``sigma_p``, ``flip`` and ``n``).

    Returns
    -------
    dict
        A new mapping without shorthand keys.

    Raises
    ------
    ConfigError
        When ``values`` is not a dict.
    """
    if not isinstance(values, dict):
        raise ConfigError(f"a config must be a JSON object, not {type(values).__name__}")
    shorthands = SHORTHANDS if shorthands is None else shorthands
    out = {}
    for key, value in values.items():
        for name in shorthands.get(key, ()):
            out[name] = value
    out.update({key: value for key, value in values.items() if key not in shorthands})
    return out


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise ConfigError(f"duplicate key {dup[0]!r}")
    return dict(pairs)


def loads_json(text, where):
    """Parse JSON text strictly for configs: duplicate keys, NaN/Infinity,
    numbers too long to convert and nesting too deep are refused with one
    :class:`ConfigError` naming ``where``.

    Parameters
    ----------
    text : str
        The JSON text.
    where : str
        What the text is (``"config file c.json"``, ``"--set eta"``), named in
        the message.

    Returns
    -------
    object
        The parsed value (a dict for a JSON object).

    Raises
    ------
    ConfigError
        When the text is not valid JSON, or holds a duplicate key, NaN or
        Infinity, a number too long to read or too deep a nesting.
    """

    def refuse(constant):
        raise ConfigError(f"{where}: {constant} is not a JSON number")

    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=refuse)
    except ConfigError as exc:
        raise ConfigError(
            f"{where}: {exc}" if not str(exc).startswith(where) else str(exc)
        ) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where} is not valid JSON: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{where}: JSON nested too deeply") from None
    except ValueError as exc:  # an integer of more than 4300 digits
        raise ConfigError(
            f"{where}: a number too long to read ({str(exc).split(':')[0]})"
        ) from None


def read_json_object(path) -> dict:
    """The JSON object in a config file (not yet validated).

    Parameters
    ----------
    path : str or os.PathLike
        The config file.

    Returns
    -------
    dict
        The file's JSON object.

    Raises
    ------
    ConfigError
        When the file cannot be read, is too large to be a config, is not
        strict JSON (:func:`loads_json`) or does not hold an object.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read(_MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid JSON: {exc}") from None
    if len(text) > _MAX_CONFIG_BYTES:
        raise ConfigError(
            f"config file {path} is larger than {_MAX_CONFIG_BYTES} characters: not a config"
        )
    values = loads_json(text, f"config file {path}")
    if not isinstance(values, dict):
        raise ConfigError(
            f"config file {path} must hold a JSON object, not {type(values).__name__}"
        )
    return values


_MAX_CONFIG_BYTES = 1 << 20


INT_MAX = 2**63 - 1
"""The largest integer field value (numpy's int64): an integer field without
an upper bound of its own is refused above it, naming the field, before any
size is converted to a float or an array."""


def _check_field(f, value):
    spec = f.metadata
    check = _CHECKS.get(spec["kind"])
    return value if check is None else check(f.name, spec, value)


def _check_int(name, spec, value):
    if value is None and spec["optional"]:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ConfigError(
            f"{name} must be an integer{' or null' if spec['optional'] else ''}, got {shown(value)}"
        )
    return _in_range(name, int(value), spec["lo"], spec["hi"])


def _in_range(label, value, lo, hi):
    """The int ``value`` when in [lo, hi] (``hi`` None: up to :data:`INT_MAX`)."""
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError(f"{label} must be an integer in {_interval(lo, hi)}, got {shown(value)}")
    if value > INT_MAX:
        raise ConfigError(
            f"{label} must be at most {INT_MAX} (2**63 - 1, numpy's int64), got {shown(value)}"
        )
    return value


def _check_real(name, spec, value):
    if value is None and spec.get("optional"):
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name} must be a number, got {shown(value)}")
    try:
        with np.errstate(over="ignore"):  # a numpy longdouble beyond float64: inf
            number = float(value)
    except OverflowError:  # an integer or fraction beyond float64
        number = math.inf
    if not math.isfinite(number):
        raise ConfigError(f"{name} must be a finite number, got {shown(value)}")
    lo, hi = spec["lo"], spec["hi"]
    bad = (lo is not None and (number < lo or (spec["lo_open"] and number == lo))) or (
        hi is not None and (number > hi or (spec["hi_open"] and number == hi))
    )
    if bad:
        raise ConfigError(
            f"{name} must be in {_interval(lo, hi, spec['lo_open'], spec['hi_open'])}, got {number}"
        )
    return number


def _check_bool(name, spec, value):
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{name} must be true or false, got {shown(value)}")
    return bool(value)


def _check_parsed(name, spec, value):
    return spec["parse"](value)


def _check_choice(name, spec, value):
    if not isinstance(value, str) or value not in spec["options"]:
        opts = " or ".join(repr(o) for o in spec["options"])
        raise ConfigError(f"{name} must be {opts}, got {shown(value)}")
    return value


_CHECKS = {
    "int": _check_int,
    "real": _check_real,
    "bool": _check_bool,
    "parsed": _check_parsed,
    "choice": _check_choice,
}


def shown(value, limit=80):
    """``value`` for an error message: its repr, cut to about ``limit``
    characters; an integer of more than 30 digits by its number of digits
    (printing one of more than 4300 digits raises in Python itself).

    Parameters
    ----------
    value : object
        Any value, possibly hostile (a huge integer, a deep nesting).
    limit : int, optional
        About the longest text returned, in characters.

    Returns
    -------
    str
        The text, on one line.
    """
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
        v = abs(int(value))
        if v >= 10**30:
            bits = v.bit_length()
            digits = len(str(v)) if bits < 14000 else f"about {int(bits * math.log10(2)) + 1}"
            return f"an integer of {digits} digits"
    try:
        text = " ".join(repr(value).split())  # one line (numpy arrays print several)
    except (ValueError, RecursionError):  # holds a huge integer, or nests too deeply
        return f"a {type(value).__name__}"
    return text if len(text) <= limit else f"{text[: limit - 20]}... ({len(text)} characters)"


def integer_argument(label, value, lo=None, hi=None):
    """``value`` as an int for a function's argument ``label`` (e.g.
    ``"train_stage: steps"``): an integer, or a float with an integral value
    (5.0), in [lo, hi] (``hi`` None: up to :data:`INT_MAX`); anything else
    (2.5, "5", True, nan) is a :class:`ConfigError` naming ``label``, never
    truncated.

    Parameters
    ----------
    label : str
        The argument's name in the message (``"train_stage: steps"``).
    value : object
        The value passed.
    lo, hi : int or None, optional
        The bounds, inclusive; None: no lower bound, and ``INT_MAX`` above.

    Returns
    -------
    int
        ``value`` as a Python int.

    Raises
    ------
    ConfigError
        When ``value`` is not integral (a bool included) or out of range.
    """
    integral = not isinstance(value, (bool, np.bool_)) and (
        isinstance(value, numbers.Integral)
        or (isinstance(value, numbers.Real) and _is_whole(value))
    )
    if not integral:
        raise ConfigError(f"{label} must be an integer, got {shown(value)}")
    return _in_range(label, int(value), lo, hi)


def _is_whole(value):
    try:
        number = float(value)
    except OverflowError:
        return False
    return math.isfinite(number) and number.is_integer()


def real_argument(label, value, lo=None, lo_open=False, optional=False):
    """``value`` for a function's argument ``label``: a finite real number
    (not a bool, not a string) >= ``lo`` (> with ``lo_open``), None when
    ``optional``; a :class:`ConfigError` naming ``label`` otherwise. The value
    itself is returned (not converted).

    Parameters
    ----------
    label : str
        The argument's name in the message.
    value : object
        The value passed.
    lo : float or None, optional
        The lower bound; None: none.
    lo_open : bool, optional
        Whether ``lo`` itself is refused.
    optional : bool, optional
        Whether None is allowed.

    Returns
    -------
    object
        ``value``, unchanged.

    Raises
    ------
    ConfigError
        When ``value`` is not a finite real number in range (or None when
        ``optional``).
    """
    spec = real_field(lo, lo_open=lo_open, optional=optional)
    _check_real(label, spec, value)
    return value


def _interval(lo, hi, lo_open=False, hi_open=False):
    left = "(" if lo_open or lo is None else "["
    right = ")" if hi_open or hi is None else "]"
    return f"{left}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}{right}"


def parse_assignment(text: str) -> tuple[str, object]:
    """Parse ``KEY=VALUE`` from the command line; VALUE is read as JSON when it
    parses (numbers, true/false, null), else as a string.

    Parameters
    ----------
    text : str
        One ``--set`` argument, ``KEY=VALUE``.

    Returns
    -------
    key : str
        KEY, stripped of surrounding spaces.
    value : object
        The JSON value of VALUE, or VALUE itself as a string when it is not
        valid JSON.

    Raises
    ------
    ConfigError
        When ``text`` has no ``=``, or VALUE is JSON the config refuses (NaN,
        a duplicate key, ...).
    """
    if "=" not in text:
        raise ConfigError(f"--set expects KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    key = key.strip()
    try:
        value = loads_json(raw, f"--set {key}")
    except ConfigError as exc:
        if "not valid JSON" not in str(exc):
            raise
        value = raw
    return key, value


DEFAULT = Config()
