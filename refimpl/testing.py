"""Testing your own implementation against refimpl, in pytest and hypothesis
(README, "Testing your own implementation").

* **Assertions** that raise ``AssertionError`` with refimpl's diagnosis:
  :func:`assert_forward_matches`, :func:`assert_gradient_matches`,
  :func:`assert_step_matches` (your function against refimpl's on the same
  arrays; the message says what differs and which usual departure, if any,
  your result equals) and :func:`assert_trajectory_matches` (a whole run
  through :func:`refimpl.crosscheck.crosscheck`; the report, explain mode's
  verdict included, is the message). PyTorch tensors and JAX arrays are
  accepted wherever numpy arrays are (neither is imported here).
* **Hypothesis strategies** that build valid inputs directly (no filtering):
  :func:`configs`, :func:`tasks` (both layouts, any patch order, dyadic
  entries with exact-zero pre-activations), :func:`weights`,
  :func:`problems` (whole training problems), and the lower-level ones the
  project's own tests use. They need hypothesis, the ``testing`` extra
  (``pip install 'refimpl[testing]'``); without it a strategy raises
  ImportError saying so, and the assertions work.

Array conventions follow docs/model.md §1: W (2, m, d) with axis 0 index 0
for j = +1, X (n, P, d), y (n,) of +-1.

Two kinds of numbers are used by the strategies:

* ``dyadic`` entries (small multiples of 1/4): every dot product of such
  vectors is exact in floating point whatever the summation order, so the
  compiled kernel (BLAS) and any other implementation see the very same
  pre-activations, exact zeros included (the ReLU'(0) = 0 convention matters
  there);
* ``gaussian`` entries generated from a drawn seed: generic inputs on which a
  pre-activation is exactly 0 with probability 0.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .config import LAYOUTS, Config
from .crosscheck import Recorder, as_array, as_trajectory, crosscheck, run_arrays
from .crosscheck.variants import Convention, variant_loss_gradient
from .data import Task, sample_task, signal_vectors
from .errors import ConfigError
from .network import forward, gradient
from .train import train_stage

try:
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError:  # the `testing` extra is not installed: the assertions still work
    st = hnp = None

__all__ = [
    "DEFAULT_RTOL",
    "FLOAT32_RTOL",
    "assert_forward_matches",
    "assert_gradient_matches",
    "assert_step_matches",
    "assert_trajectory_matches",
    "configs",
    "tasks",
    "weights",
    "problems",
    "TrainProblem",
    "PermutedProblem",
    "MarginProblem",
    "DYADIC",
    "seeds",
    "shapes",
    "dyadic_arrays",
    "labels",
    "dyadic_problems",
    "gaussian_problems",
    "margin_problems",
    "structured_task",
    "train_problems",
    "inherit_problems",
    "tiny_config",
    "dyadic_train_problems",
    "permute_patches",
    "permuted_problems",
]

NO_HYPOTHESIS = "refimpl.testing's strategies need hypothesis: pip install 'refimpl[testing]'"
DEFAULT_RTOL = 1e-10
FLOAT32_RTOL = 1e-5
"""The rtol a float32 result is judged at when a smaller one is asked for."""


# ---------------------------------------------------------------------------
# comparing, and the message of a failure


def _values(x, what):
    """A numeric numpy array from a user's result, or an AssertionError naming it."""
    if isinstance(x, (tuple, list)) and len(x) == 2 and np.ndim(as_array(x[0])) == 2:
        x = np.stack([as_array(v) for v in x])  # a pair (class +1, class -1)
    a = as_array(x)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise AssertionError(f"{what}: expected numbers, got {type(x).__name__} ({a.dtype})")
    return a


def _rtol(mine, rtol, notes):
    """``rtol``, raised to :data:`FLOAT32_RTOL` for a result in float32 or
    less (float32 cannot resolve 1e-10), with a note saying so."""
    if np.issubdtype(mine.dtype, np.floating) and mine.dtype.itemsize < 8 and rtol < FLOAT32_RTOL:
        notes.append(f"your result is {mine.dtype}: judged at rtol {FLOAT32_RTOL:g}")
        return FLOAT32_RTOL
    return rtol


def _difference(mine, ref, rtol, atol=None):
    """None when |mine - ref| <= atol + rtol |ref| everywhere (atol default:
    rtol max|ref|, as crosscheck judges), else a line describing the worst entry."""
    if np.shape(mine) != np.shape(ref):
        return f"shape {np.shape(mine)}, refimpl's is {np.shape(ref)}"
    a, b = np.asarray(mine, np.float64), np.asarray(ref, np.float64)
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    tol = (rtol * scale if atol is None else atol) + rtol * np.abs(b)
    with np.errstate(invalid="ignore"):
        err = np.abs(a - b)
        bad = ~(err <= tol)
    if not bad.any():
        return None
    err = np.nan_to_num(err, nan=np.inf)  # a NaN differs most
    where = np.unravel_index(int(np.argmax(np.where(bad, err, -1.0))), a.shape)
    worst = float(np.max(err))
    rel = worst / scale if scale else float("inf")
    atol = rtol * scale if atol is None else atol
    return (
        f"{int(bad.sum())} of {bad.size} entries differ; max abs {worst:.3g}, max rel {rel:.3g}; "
        f"worst at {list(map(int, where))}: yours {a[where]:.17g}, refimpl {b[where]:.17g} "
        f"(rtol {rtol:g}, atol {atol:.3g})"
    )


def _match(mine, candidates, rtol):
    """The label of the first candidate (label, thunk) that ``mine`` agrees
    with, or None. Thunks returning None or another shape are skipped."""
    for label, thunk in candidates:
        value = thunk()
        if value is not None and np.shape(value) == np.shape(mine):
            if _difference(mine, value, rtol) is None:
                return label
    return None


def _diagnosis(mine, candidates, rtol, tried):
    label = _match(mine, candidates, rtol)
    if label is not None:
        return f"  diagnosis: yours equals refimpl's with {label}"
    return f"  diagnosis: none of the departures tried gives yours (tried: {tried})"


def _fail(title, rows, notes):
    raise AssertionError("\n".join([title, *rows, *(f"  note: {n}" for n in notes)]))


def _float64(x, name):
    a = as_array(x)
    if not np.issubdtype(a.dtype, np.number):
        raise ConfigError(f"{name} must be numbers, got {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.float64)


# ---------------------------------------------------------------------------
# forward

_FORWARD_DEPARTURES = {
    "swapped": "the class order swapped (your W[0] is class -1; refimpl's W[0] is j = +1)",
    "filter_sum": "sum instead of 1/m over filters",
    "patch_mean": "mean instead of sum over patches",
    "unsigned": "F_{+1} + F_{-1} (class -1's output weight without its minus sign)",
}
_PARTS = ("f", "F_plus", "F_minus", "pre", "active")


def _departure_sets(names):
    """Every non-empty subset of ``names``, smallest first."""
    for k in range(1, len(names) + 1):
        yield from itertools.combinations(names, k)


def _label(names, table):
    return " + ".join(table[n] for n in names)


def _forward_candidates(parts, m, P, two_outputs):
    """(label, thunk) of f under the departures (or two outputs [F_a, F_b])."""
    names = ("swapped", "filter_sum", "patch_mean") + (() if two_outputs else ("unsigned",))
    sets = [()] if two_outputs else []
    sets += list(_departure_sets(names))
    for chosen in sets:
        a, b = (
            (parts.F_minus, parts.F_plus) if "swapped" in chosen else (parts.F_plus, parts.F_minus)
        )
        scale = (m if "filter_sum" in chosen else 1) / (P if "patch_mean" in chosen else 1)
        if two_outputs:
            order = "[F_{-1}, F_{+1}]" if "swapped" in chosen else "[F_{+1}, F_{-1}]"
            rest = [n for n in chosen if n != "swapped"]
            label = f"two outputs {order} instead of f = F_{{+1}} - F_{{-1}}"
            label += "".join(" + " + _FORWARD_DEPARTURES[n] for n in rest)
            yield label, functools.partial(lambda a, b, s: np.stack([a, b], 1) * s, a, b, scale)
        else:
            sign = 1.0 if "unsigned" in chosen else -1.0
            yield (
                _label(chosen, _FORWARD_DEPARTURES),
                functools.partial(lambda a, b, s, c: s * (a + c * b), a, b, scale, sign),
            )


def _layout_candidates(ref, zero_is_active=False):
    """``ref`` (2, m, n, P) in other axis orders and with the classes swapped."""
    axes = "jrip"
    for swapped in (False, True):
        base = ref[::-1] if swapped else ref
        for perm in itertools.permutations(range(4)):
            layout = "".join(axes[i] for i in perm)
            if layout == axes and not swapped and not zero_is_active:
                continue
            label = f"the layout [{', '.join(layout)}] (refimpl's pre[j, r, i, p])"
            if swapped:
                label += " + " + _FORWARD_DEPARTURES["swapped"]
            yield label, functools.partial(np.transpose, base, perm)


def _reshaped(thunk, shape):
    value = thunk()
    return value.reshape(shape) if value.size == int(np.prod(shape)) else None


def _compare_part(key, mine, ref, parts, rtol, atol, m, P):
    """The rows of one part of the forward pass (empty when it agrees)."""
    notes = []
    tol = _rtol(mine, rtol, notes)
    diff = _difference(mine, ref, tol, atol)
    if diff is None:
        return []
    rows = [f"  {key}: {diff}"]
    if key == "f":
        two = mine.shape == (ref.shape[0], 2)
        rows.append(
            _diagnosis(
                mine,
                _forward_candidates(parts, m, P, two),
                tol,
                "the class order, sum over filters, mean over patches, the sign of class -1",
            )
        )
        if two:
            rows.append(
                "  note: refimpl's forward returns one output f = F_{+1} - F_{-1}, shape (n,)"
            )
    elif key in ("pre", "active"):
        base = parts.pre
        cands = [
            (lab, functools.partial(_reshaped, th, mine.shape))
            for lab, th in _layout_candidates(base)
        ]
        if key == "active":
            cands = [(lab, functools.partial(lambda th: _to_active(th()), th)) for lab, th in cands]
            cands.insert(
                0,
                (
                    "sigma'(0) = 1 (pre >= 0)",
                    lambda: (
                        (parts.pre >= 0).reshape(mine.shape)
                        if parts.pre.size == mine.size
                        else None
                    ),
                ),
            )
        rows.append(_diagnosis(mine, cands, tol, "other axis orders, the class order"))
    return rows + [f"  note: {n}" for n in notes]


def _to_active(pre):
    return None if pre is None else pre > 0


def assert_forward_matches(fn, W, X, rtol=DEFAULT_RTOL, atol=None):
    """Assert that your forward pass computes refimpl's network.

    Parameters
    ----------
    fn : callable
        ``fn(W, X)``, called with ``W`` and ``X`` as you give them (numpy
        arrays, PyTorch tensors, JAX arrays), returns f(W, x_i) (n,) or a
        dict holding some of ``f``, ``F_plus``, ``F_minus`` (n,), ``pre``
        (2, m, n, P) and ``active`` (2, m, n, P) (the fields of
        :func:`refimpl.network.forward` with ``parts=True``); each given part
        is compared.
    W : array of shape (2, m, d)
    X : array of shape (n, P, d)
    rtol, atol : float
        An entry differs when |yours - refimpl's| > atol + rtol |refimpl's|;
        atol defaults to rtol times the largest |refimpl's| (crosscheck's
        rule). A float32 result is judged at :data:`FLOAT32_RTOL` at least.

    Raises
    ------
    AssertionError
        Naming each part that differs, its worst entry and the departure
        your result equals (the class order, a sum over filters, a mean over
        patches, the sign of class -1, two outputs instead of one, another
        axis order of the pre-activations), if any.
    """
    W64, X64 = _float64(W, "W"), _float64(X, "X")
    parts = forward(W64, X64, parts=True)
    out = fn(W, X)
    given = out if isinstance(out, Mapping) else {"f": out}
    unknown = [k for k in given if k not in _PARTS]
    if unknown:
        raise ConfigError(
            f"assert_forward_matches: fn returned unknown parts {unknown}; "
            f"known: {', '.join(_PARTS)}"
        )
    m, P = W64.shape[1], X64.shape[1]
    rows = []
    for key in _PARTS:
        if key in given:
            mine = _values(given[key], f"fn's {key}")
            rows += _compare_part(key, mine, getattr(parts, key), parts, rtol, atol, m, P)
    if rows:
        _fail("forward differs from refimpl.network.forward:", rows, [])


# ---------------------------------------------------------------------------
# gradient and step

_GRADIENT_DEPARTURES = {
    "swapped": _FORWARD_DEPARTURES["swapped"],
    "filter_sum": _FORWARD_DEPARTURES["filter_sum"],
    "patch_mean": _FORWARD_DEPARTURES["patch_mean"],
    "relu_prime_1": "ReLU'(0) = 1",
    "relu_prime_half": "ReLU'(0) = 1/2",
    "sum_inputs": "a sum instead of the mean over inputs (n x)",
    "negated": "the opposite sign (the gradient of -loss, or labels flipped)",
}


class _Variants:
    """Loss and gradient of (W, X, y) under convention departures, computed
    on demand (:func:`refimpl.crosscheck.variants.variant_loss_gradient`)."""

    SCALINGS = ("sum_inputs", "negated")

    def __init__(self, W, X, y):
        self.W, self.X, self.y = W, X, y
        n, P, d = X.shape
        self.Xf = X.reshape(n * P, d)
        self.zeros = None
        self._cache = {}

    def get(self, chosen):
        """(loss, gradient (2, m, d)) with the departures in ``chosen``."""
        key = tuple(c for c in chosen if c not in self.SCALINGS)
        if key not in self._cache:
            self._cache[key] = self._compute(key)
        value, G = self._cache[key]
        factor = (self.X.shape[0] if "sum_inputs" in chosen else 1) * (
            -1 if "negated" in chosen else 1
        )
        return value * factor, G * factor

    def _compute(self, chosen):
        n, P, _ = self.X.shape
        W = self.W[::-1] if "swapped" in chosen else self.W
        relu0 = 1.0 if "relu_prime_1" in chosen else 0.5 if "relu_prime_half" in chosen else 0.0
        conv = Convention(
            filter_sum="filter_sum" in chosen,
            patch_mean="patch_mean" in chosen,
            relu_prime_zero=relu0,
        )
        value, gW, _, zeros, _ = variant_loss_gradient(
            np.ascontiguousarray(W.reshape(-1, W.shape[2])), None, self.Xf, self.y, n, P, conv
        )
        self.zeros = zeros if self.zeros is None else self.zeros
        G = gW.reshape(W.shape)
        return value, G[::-1] if "swapped" in chosen else G

    def sets(self):
        """The departure sets worth trying, smallest first (ReLU'(0) only when
        some pre-activation is exactly 0; at most one ReLU'(0) value)."""
        self.get(())
        names = ["swapped", "filter_sum", "patch_mean", "sum_inputs", "negated"]
        if self.zeros:
            names[3:3] = ["relu_prime_1", "relu_prime_half"]
        for chosen in _departure_sets(names):
            if not {"relu_prime_1", "relu_prime_half"} <= set(chosen):
                yield chosen


def assert_gradient_matches(fn, W, X, y, rtol=DEFAULT_RTOL, atol=None):
    """Assert that your gradient is refimpl's gradient of the data loss
    (1/n) sum_i l(y_i f(W, x_i)) (docs/model.md §3.2; no weight decay).

    Parameters
    ----------
    fn : callable
        ``fn(W, X, y)``, called with the arguments as you give them, returns
        the gradient (2, m, d) (or a pair for class +1 and class -1).
    W : array of shape (2, m, d)
    X : array of shape (n, P, d)
    y : array of shape (n,), +-1
    rtol, atol : float
        As for :func:`assert_forward_matches`.

    Raises
    ------
    AssertionError
        With the worst entry and the departures your gradient equals, if
        any: the class order, a sum over filters, a mean over patches,
        ReLU'(0) = 1 or 1/2 (when a pre-activation is exactly 0), a sum over
        inputs, the opposite sign.
    """
    W64, X64, y64 = _float64(W, "W"), _float64(X, "X"), _float64(y, "y")
    ref = gradient(W64, X64, y64)
    mine = _values(fn(W, X, y), "fn's gradient")
    notes = []
    tol = _rtol(mine, rtol, notes)
    diff = _difference(mine, ref, tol, atol)
    if diff is None:
        return
    variants = _Variants(W64, X64, y64)
    cands = [
        (_label(c, _GRADIENT_DEPARTURES), functools.partial(lambda c: variants.get(c)[1], c))
        for c in variants.sets()
    ]
    row = _diagnosis(mine, cands, tol, ", ".join(_GRADIENT_DEPARTURES))
    _fail("gradient differs from refimpl.network.gradient:", [f"  gradient: {diff}", row], notes)


_STEP_DEPARTURES = {
    "decay_frozen": "weight decay applied to frozen filters (an optimizer's weight decay "
    "moves parameters whose gradient is zero: leave frozen filters out of it)",
    "train_frozen": "frozen filters trained (the trainable mask not applied)",
    "no_decay": "no weight decay",
    "decay_without_eta": "the decay without eta (w <- (1 - lambda) w - eta grad)",
}


def _step(W, G, eta, weight_decay, mask, departures=()):
    """One GD step (docs/model.md §3.4) with the step departures named."""
    decay = (
        1.0
        if "no_decay" in departures
        else 1.0 - (weight_decay if "decay_without_eta" in departures else eta * weight_decay)
    )
    moved = decay * W - eta * G
    if "train_frozen" in departures:
        return moved
    still = decay * W if "decay_frozen" in departures else W
    return np.where(mask[:, :, None], moved, still)


def _step_candidates(variants, W, eta, weight_decay, mask, mine):
    """(label, thunk) of the step under gradient and step departures, then
    the step with its size estimated (c x eta)."""
    steps = [()]
    if weight_decay:
        steps += [("no_decay",), ("decay_without_eta",)] if eta != 1 else [("no_decay",)]
    if not mask.all():
        steps += [("train_frozen",)] + ([("decay_frozen",)] if weight_decay else [])
    table = {**_GRADIENT_DEPARTURES, **_STEP_DEPARTURES}
    for grad in [(), *variants.sets()]:
        for step in steps:
            if grad or step:
                yield (
                    _label(grad + step, table),
                    functools.partial(
                        lambda g, s: _step(W, variants.get(g)[1], eta, weight_decay, mask, s),
                        grad,
                        step,
                    ),
                )
    ref = _step(W, variants.get(())[1], eta, weight_decay, mask)
    delta = (ref - W)[mask]
    if np.any(delta):
        c = float(np.vdot((np.asarray(mine, np.float64) - W)[mask], delta) / np.vdot(delta, delta))
        yield f"a step of c x eta, c = {c:.6g} (estimated)", lambda: W + c * (ref - W)


def assert_step_matches(
    fn, W, X, y, eta, weight_decay=0.0, trainable=None, rtol=DEFAULT_RTOL, atol=None
):
    """Assert that one step of your training is refimpl's GD step
    w <- (1 - eta lambda) w - eta grad (trainable filters; frozen ones do
    not move at all, no decay either; docs/model.md §3.4).

    Parameters
    ----------
    fn : callable
        ``fn(W, X, y, eta, weight_decay, trainable)``, called with the
        arguments as you give them (``trainable`` all True when you give
        None), returns the weights after one step (2, m, d), or
        ``(W_next, loss)`` with the data loss of ``W`` (compared too).
    W, X, y : arrays
        As for :func:`assert_gradient_matches`.
    eta, weight_decay : float
    trainable : array of shape (2, m), bool, optional
    rtol, atol : float
        As for :func:`assert_forward_matches`.

    Raises
    ------
    AssertionError
        With the worst entry and the departures your step equals, if any:
        those of :func:`assert_gradient_matches`, weight decay on frozen
        filters, frozen filters trained, no weight decay, the decay without
        eta, a step of another size (estimated); for the loss, the penalty
        (lambda/2)|W|^2 included.
    """
    W64, X64, y64 = _float64(W, "W"), _float64(X, "X"), _float64(y, "y")
    m = W64.shape[1]
    mask = np.ones((2, m), bool) if trainable is None else np.asarray(as_array(trainable), bool)
    ref = train_stage(
        W64,
        Task(X64, y64, y64),
        float(eta),
        1,
        weight_decay=float(weight_decay),
        trainable=mask,
        snapshots=[0, 1],
        track=False,
    )
    out = fn(W, X, y, eta, weight_decay, mask if trainable is None else trainable)
    their_loss = None
    if isinstance(out, tuple) and len(out) == 2 and np.size(as_array(out[1])) == 1:
        out, their_loss = out
    mine = _values(out, "fn's step")
    notes = []
    tol = _rtol(mine, rtol, notes)
    rows = []
    diff = _difference(mine, ref.W[1], tol, atol)
    if diff is not None:
        variants = _Variants(W64, X64, y64)
        cands = _step_candidates(variants, W64, float(eta), float(weight_decay), mask, mine)
        rows += [
            f"  W after the step: {diff}",
            _diagnosis(
                mine,
                cands,
                tol,
                "the departures of "
                "the gradient, weight decay on frozen filters, frozen filters trained, no or "
                "another decay, another step size",
            ),
        ]
    if their_loss is not None:
        rows += _loss_rows(_values(their_loss, "fn's loss"), ref.loss[0], W64, weight_decay, tol)
    if rows:
        _fail("step differs from refimpl's GD step (refimpl.train.train_stage):", rows, notes)


def _loss_rows(mine, ref, W, weight_decay, rtol):
    diff = _difference(mine.reshape(()), ref, rtol)
    if diff is None:
        return []
    penalty = 0.5 * float(weight_decay) * float(np.sum(W * W))
    cands = [("the penalty (lambda/2)|W|^2 included", lambda: np.float64(ref + penalty))]
    return [f"  loss of W: {diff}", _diagnosis(mine.reshape(()), cands, rtol, "the penalty")]


# ---------------------------------------------------------------------------
# trajectories


def assert_trajectory_matches(mine, ref=None, *, stage=None, steps=None, **options):
    """Assert that a whole run agrees with refimpl
    (:func:`refimpl.crosscheck.crosscheck`, explain mode on).

    Parameters
    ----------
    mine : path, dict of arrays, Trajectory, Recorder, or (W, loss)
        Your run: a trajectory file, its arrays in format 1, a loaded
        Trajectory, a closed :class:`~refimpl.crosscheck.Recorder`; or only
        your weights at the snapshot steps (K, 2, m, d) and your loss at
        every step (T + 1,), as a pair or a dict with ``W``, ``loss`` (and
        ``steps``, ``b``), on the inputs of ``ref``.
    ref : path, dict of arrays, Trajectory, optional
        With a whole run: the reference run (None: refimpl replays yours).
        With (W, loss): where the inputs come from (required); refimpl
        replays them.
    stage : str, optional
        With (W, loss): the stage of ``ref`` (as :class:`Recorder`).
    steps : array_like of int, optional
        With (W, loss): the snapshot steps (as
        :func:`refimpl.crosscheck.run_arrays`).
    **options
        Passed to :func:`refimpl.crosscheck.crosscheck` (``rtol``,
        ``atol``, ``stages``, ``explain_steps``, ``convention``, ...).

    Returns
    -------
    refimpl.crosscheck.Report
        When the run agrees.

    Raises
    ------
    AssertionError
        The report (every row, the notes and explain mode's verdict).
    """
    if isinstance(mine, Recorder):
        mine = mine.close()
    given = _given_run(mine)
    if given is not None:
        if ref is None:
            raise ConfigError(
                "assert_trajectory_matches: your W and loss need ref, the run (or inputs) they "
                "were trained from"
            )
        mine, ref = run_arrays(ref, stage=stage, steps=steps, **given), None
    report = crosscheck(as_trajectory(mine, "<your run>", "mine"), ref, **options)
    if not report.agree:
        raise AssertionError(report.format())
    return report


def _given_run(mine):
    """{W, loss, b} when ``mine`` is a run given as arrays, else None."""
    if isinstance(mine, (tuple, list)) and len(mine) == 2:
        return {"W": mine[0], "loss": mine[1]}
    if isinstance(mine, Mapping) and "W" in mine and "format_version" not in mine:
        unknown = sorted(set(mine) - {"W", "loss", "b"})
        if unknown or "loss" not in mine:
            raise ConfigError(
                "assert_trajectory_matches: a run given as arrays has W, loss and optionally "
                f"b, got keys {sorted(mine)}"
            )
        return dict(mine)
    return None


# ---------------------------------------------------------------------------
# hypothesis strategies


def _composite(fn):
    """``st.composite(fn)``, or without hypothesis a function that says what
    to install."""
    if st is not None:
        return st.composite(fn)

    @functools.wraps(fn)
    def missing(*args, **kwargs):
        raise ImportError(NO_HYPOTHESIS)

    return missing


def _need_hypothesis():
    if st is None:
        raise ImportError(NO_HYPOTHESIS)


def __getattr__(name):
    if name == "seeds":  # a strategy object, defined only with hypothesis
        raise ImportError(NO_HYPOTHESIS)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


DYADIC = tuple(k / 4.0 for k in range(-8, 9))  # -2, -1.75, ..., 2 (0 included)

if st is not None:
    seeds = st.integers(min_value=0, max_value=2**32 - 1)


@_composite
def shapes(draw, n_max=6, P_max=4, m_max=4, d_max=8, P_min=1):
    """(n, P, m, d) with n, P, m, d >= 1 (any number of patches P)."""
    n = draw(st.integers(1, n_max))
    P = draw(st.integers(P_min, P_max))
    m = draw(st.integers(1, m_max))
    d = draw(st.integers(1, d_max))
    return n, P, m, d


def dyadic_arrays(shape):
    """Arrays of ``shape`` with entries in :data:`DYADIC`."""
    _need_hypothesis()
    return hnp.arrays(np.float64, shape, elements=st.sampled_from(DYADIC))


def labels(n):
    """(n,) labels of +-1."""
    _need_hypothesis()
    return hnp.arrays(np.float64, (n,), elements=st.sampled_from((1.0, -1.0)))


@_composite
def dyadic_problems(draw, **shape_kw):
    """(W, X, y) with dyadic entries: exact pre-activations, frequent exact zeros."""
    n, P, m, d = draw(shapes(**shape_kw))
    W = draw(dyadic_arrays((2, m, d)))
    X = draw(dyadic_arrays((n, P, d)))
    y = draw(labels(n))
    return W, X, y


@_composite
def gaussian_problems(draw, **shape_kw):
    """(W, X, y) with Gaussian entries of drawn scales, from a drawn seed."""
    n, P, m, d = draw(shapes(**shape_kw))
    rng = np.random.default_rng(draw(seeds))
    w_scale = draw(st.sampled_from((0.01, 0.3, 1.0, 3.0)))
    x_scale = draw(st.sampled_from((0.5, 1.0, 4.0)))
    W = w_scale * rng.standard_normal((2, m, d))
    X = x_scale * rng.standard_normal((n, P, d))
    y = rng.choice(np.array([1.0, -1.0]), size=n)
    return W, X, y


@dataclass
class MarginProblem:
    """W, X, y whose pre-activations all satisfy |<w_{j,r}, x_i^(p)>| >= delta."""

    W: np.ndarray
    X: np.ndarray
    y: np.ndarray
    delta: float


@_composite
def margin_problems(draw):
    """Inputs whose pre-activations are bounded away from 0 by construction.

    The 2m filters are orthonormal rows times ``w_scale`` (so 2m <= d); each
    patch is x = W_f^T a / w_scale^2 + (I - Q^T Q) z, with the target
    pre-activations a drawn with |a_k| in [delta, 3] and a random sign, and z
    an arbitrary component orthogonal to every filter. Then <w_k, x> = a_k.
    """
    m = draw(st.integers(1, 3))
    d = draw(st.integers(2 * m, 2 * m + 4))
    n = draw(st.integers(1, 5))
    P = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(seeds))
    delta = 0.2
    w_scale = draw(st.sampled_from((0.5, 1.0, 2.0)))
    Q, _ = np.linalg.qr(rng.standard_normal((d, 2 * m)))  # (d, 2m), orthonormal columns
    Wf = w_scale * Q.T  # (2m, d)
    magnitude = rng.uniform(delta, 3.0, size=(n, P, 2 * m))
    sign = rng.choice(np.array([1.0, -1.0]), size=(n, P, 2 * m))
    a = sign * magnitude
    z = rng.standard_normal((n, P, d))
    z -= (z @ Q) @ Q.T
    X = a @ Wf / w_scale**2 + z
    y = rng.choice(np.array([1.0, -1.0]), size=n)
    return MarginProblem(W=Wf.reshape(2, m, d), X=X, y=y, delta=delta)


def structured_task(rng, n, S, d, flip=0.2, signal_scale=1.0, noise_scale=1.0):
    """A Task in the layout of docs/model.md §2.4 with S signal patches
    (any S >= 0, so P = S + 1 >= 1): X[i, s] = yhat_i sig_s, X[i, S] = xi_i.
    The signals and noise are generic Gaussian vectors (not orthogonal): the
    kernel and its twin do not rely on orthogonality."""
    signals = signal_scale * rng.standard_normal((S, d))
    xi = noise_scale * rng.standard_normal((n, d))
    y_clean = rng.choice(np.array([1.0, -1.0]), size=n)
    y = np.where(rng.random(n) < flip, -y_clean, y_clean)
    X = np.concatenate([y_clean[:, None, None] * signals[None], xi[:, None, :]], axis=1)
    return Task(X=np.ascontiguousarray(X), y=y, y_clean=y_clean, xi=xi, signals=signals)


@dataclass
class TrainProblem:
    """A training problem: initial weights, a task, the step size, the weight
    decay, the trainable mask (False: frozen) and a number of steps."""

    W0: np.ndarray
    task: Task
    eta: float
    weight_decay: float
    trainable: np.ndarray
    steps: int


@_composite
def train_problems(draw, max_steps=6):
    """A small training problem: shapes (n, P = S + 1, m, d) with P >= 1, a
    structured task, step size, weight decay (0 or not), a frozen-filter mask."""
    n, P, m, d = draw(shapes(n_max=6, P_max=4, m_max=3, d_max=9))
    rng = np.random.default_rng(draw(seeds))
    task = structured_task(rng, n, P - 1, d, flip=draw(st.sampled_from((0.0, 0.3))))
    W0 = draw(st.sampled_from((0.05, 0.5))) * rng.standard_normal((2, m, d))
    eta = draw(st.sampled_from((0.1, 0.7, 2.0)))
    weight_decay = draw(st.sampled_from((0.0, 0.05, 0.3)))
    trainable = draw(hnp.arrays(np.bool_, (2, m)))
    steps = draw(st.integers(0, max_steps))
    return TrainProblem(
        W0=W0, task=task, eta=eta, weight_decay=weight_decay, trainable=trainable, steps=steps
    )


@_composite
def inherit_problems(draw):
    """(W_up (2, m1, d), W_fresh (2, m2, d), alpha, k, seed) with k = alpha m2
    an exact integer <= min(m1, m2), so round(alpha m2) = k unambiguously."""
    m1 = draw(st.integers(1, 6))
    m2 = draw(st.integers(1, 6))
    d = draw(st.integers(1, 5))
    k = draw(st.integers(0, min(m1, m2)))
    seed = draw(seeds)
    rng = np.random.default_rng(seed)
    # every upstream filter is unique and tells its class and index apart:
    # entry 0 is +-(100 + r) (sign = class), the rest random
    W_up = rng.standard_normal((2, m1, d))
    W_up[:, :, 0] = np.array([1.0, -1.0])[:, None] * (100.0 + np.arange(m1))[None, :]
    W_fresh = rng.standard_normal((2, m2, d)) * 1e-3
    return W_up, W_fresh, k / m2, k, seed


def tiny_config(**changes):
    """A small, fast experiment with every field set explicitly (the defaults
    of Config may change): d = 40, m = 3, N_1 = 12, N_2 = 8, 40 + 30 steps."""
    values = dict(
        d=40,
        m=3,
        m_down=None,
        n_up=12,
        n_down=8,
        u_norm=2.0,
        v_up_norm=1.0,
        v_down_norm=1.0,
        v_cos=0.0,
        sigma_p_up=1.0,
        sigma_p_down=1.0,
        flip_up=0.0,
        flip_down=0.2,
        layout="joint",
        eta=1.0,
        sigma_0=0.05,
        weight_decay_up=0.0,
        weight_decay=0.0,
        steps_up=40,
        steps_down=30,
        epsilon=0.0,
        snapshots=6,
        alpha=2 / 3,
        granularity="filter",
        freeze_inherited=False,
        rescale_inherited=1.0,
        n_test=2000,
        estimator="reduced",
        seed=1,
    )
    values.update(changes)
    return Config(**values)


@_composite
def dyadic_train_problems(draw):
    """A one-step training problem with dyadic entries: the pre-activations of
    the step are exact in any summation order, exact zeros frequent."""
    n, P, m, d = draw(shapes(n_max=5, P_max=4, m_max=3, d_max=6))
    S = P - 1
    signals = draw(dyadic_arrays((S, d)))
    xi = draw(dyadic_arrays((n, d)))
    y_clean = draw(labels(n))
    y = draw(labels(n))
    X = np.concatenate([y_clean[:, None, None] * signals[None], xi[:, None, :]], axis=1)
    task = Task(X=np.ascontiguousarray(X), y=y, y_clean=y_clean, xi=xi, signals=signals)
    return TrainProblem(
        W0=draw(dyadic_arrays((2, m, d))),
        task=task,
        eta=draw(st.sampled_from((0.5, 1.0))),
        weight_decay=draw(st.sampled_from((0.0, 0.25))),
        trainable=draw(hnp.arrays(np.bool_, (2, m))),
        steps=1,
    )


# patch order (docs/model.md §2.4): the same data with the patches of every
# input in a drawn order


def permute_patches(task, perms):
    """``task`` with the patches of input i in the order ``perms[i]``
    (new X[i, p] = old X[i, perms[i][p]]); patch_role left to be derived.

    Returns
    -------
    permuted : Task
    roles : ndarray of shape (n, P), int
        The roles the permuted patches have (``task`` has its S signal
        patches first and the noise patch last).
    """
    perms = np.asarray(perms, dtype=np.int64)
    n, P, _ = task.X.shape
    X = task.X[np.arange(n)[:, None], perms]
    original = np.append(np.arange(P - 1), -1)  # signals first, noise last
    permuted = Task(
        X=np.ascontiguousarray(X), y=task.y, y_clean=task.y_clean, xi=task.xi, signals=task.signals
    )
    return permuted, original[perms]


@dataclass
class PermutedProblem:
    """A training problem in refimpl's patch order and the same problem with
    the patches of every input permuted."""

    W0: np.ndarray
    task: Task  # signals first, noise last
    permuted: Task  # patches in the drawn order
    roles: np.ndarray  # (n, P): the roles of the permuted patches
    layout: str
    eta: float
    weight_decay: float
    trainable: np.ndarray
    steps: int


@_composite
def permuted_problems(draw, max_steps=40, layouts=("joint", "split")):
    """Both layouts (joint P = 2, split P = 3), data of refimpl's generator
    (noise orthogonal to the signals) or generic Gaussian signals and noise,
    a drawn permutation of the patches of every input, weight decay 0 or
    not, a drawn frozen-filter mask (all filters trainable half of the time)."""
    layout = draw(st.sampled_from(layouts))
    P = 2 if layout == "joint" else 3
    n = draw(st.integers(1, 8))
    m = draw(st.integers(1, 3))
    d = draw(st.integers(n + 3, n + 12))  # n + S <= d: an independent basis
    rng = np.random.default_rng(draw(seeds))
    if draw(st.booleans()):
        u, v, _ = signal_vectors(d, draw(st.sampled_from((1.0, 3.0))), 1.0, 1.0)
        task = sample_task(rng, n, u, v, 1.0, draw(st.sampled_from((0.0, 0.3))), layout)
    else:
        task = structured_task(rng, n, P - 1, d, flip=draw(st.sampled_from((0.0, 0.3))))
    perms = draw(st.lists(st.permutations(range(P)), min_size=n, max_size=n))
    permuted, roles = permute_patches(task, perms)
    W0 = draw(st.sampled_from((0.05, 0.5))) * rng.standard_normal((2, m, d))
    if draw(st.booleans()):
        trainable = np.ones((2, m), bool)
    else:
        trainable = draw(hnp.arrays(np.bool_, (2, m)))
    return PermutedProblem(
        W0=W0,
        task=task,
        permuted=permuted,
        roles=roles,
        layout=layout,
        eta=draw(st.sampled_from((0.1, 0.5, 1.0))),
        weight_decay=draw(st.sampled_from((0.0, 0.05))),
        trainable=trainable,
        steps=draw(st.integers(1, max_steps)),
    )


# the public strategies: configs, tasks, weights, whole problems


@_composite
def configs(draw, **fixed):
    """Small, fast :class:`~refimpl.config.Config` objects (d <= 40, n <= 10,
    m <= 4, at most 30 steps a stage: a run takes a fraction of a second),
    every field drawn so that every draw is valid: both layouts, both
    granularities, frozen or trained inherited filters, weight decay or
    not. ``fixed`` sets fields as given (d, m and m_down given are used to
    draw the others validly; other fixed values are yours to keep valid)."""
    d = fixed.get("d", draw(st.integers(8, 40)))
    m = fixed.get("m", draw(st.integers(1, 4)))
    m_down = fixed.get("m_down", draw(st.one_of(st.none(), st.integers(1, 4))))
    m2 = m if m_down is None else m_down
    freeze = draw(st.booleans())
    entry = m2 == m and not freeze and draw(st.booleans())
    values = dict(
        d=d,
        m=m,
        m_down=m_down,
        n_up=draw(st.integers(1, min(10, d - 2))),
        n_down=draw(st.integers(1, min(8, d - 2))),
        u_norm=draw(st.sampled_from((0.0, 1.0, 3.0))),
        v_up_norm=draw(st.sampled_from((0.5, 1.0))),
        v_down_norm=draw(st.sampled_from((0.5, 1.0))),
        v_cos=draw(st.sampled_from((0.0, 0.5))),
        sigma_p_up=draw(st.sampled_from((0.5, 1.0))),
        sigma_p_down=draw(st.sampled_from((0.5, 1.0))),
        flip_up=draw(st.sampled_from((0.0, 0.1))),
        flip_down=draw(st.sampled_from((0.0, 0.2))),
        layout=draw(st.sampled_from(LAYOUTS)),
        eta=draw(st.sampled_from((0.5, 1.0, 2.0))),
        eta_down=draw(st.sampled_from((None, 0.5))),
        sigma_0=draw(st.sampled_from((0.01, 0.1))),
        weight_decay_up=draw(st.sampled_from((0.0, 0.01))),
        weight_decay=draw(st.sampled_from((0.0, 0.01))),
        steps_up=draw(st.integers(0, 30)),
        steps_down=draw(st.integers(0, 30)),
        epsilon=draw(st.sampled_from((0.0, 0.3))),
        snapshots=draw(st.integers(2, 5)),
        alpha=draw(st.integers(0, min(m, m2))) / m2,
        granularity="entry" if entry else "filter",
        freeze_inherited=freeze,
        rescale_inherited=draw(st.sampled_from((1.0, 0.5))),
        n_test=draw(st.integers(100, 200)),
        estimator=draw(st.sampled_from(("reduced", "sample"))),
        seed=draw(seeds),
    )
    values.update(fixed)
    return Config(**values)


@_composite
def weights(draw, m=None, d=None, dyadic=False):
    """W of shape (2, m, d) (m, d drawn when not given): dyadic entries (with
    a dyadic task, every pre-activation exact and exact zeros frequent) or
    Gaussian ones of a drawn scale."""
    m = draw(st.integers(1, 4)) if m is None else m
    d = draw(st.integers(1, 8)) if d is None else d
    if dyadic:
        return draw(dyadic_arrays((2, m, d)))
    rng = np.random.default_rng(draw(seeds))
    return draw(st.sampled_from((0.05, 0.5, 2.0))) * rng.standard_normal((2, m, d))


@_composite
def tasks(draw, n=None, d=None, layouts=LAYOUTS, order="any", dyadic=False):
    """A :class:`~refimpl.data.Task` of the model (docs/model.md §2.4).

    Parameters
    ----------
    n, d : int, optional
        Drawn when not given (dyadic: d <= 6; else n + 3 <= d, so that the
        basis {signals, xi} is independent).
    layouts : sequence of {"joint", "split"}
        Joint (P = 2) or split (P = 3).
    order : {"any", "refimpl"}
        The patches of every input in a drawn order, or refimpl's (signals
        first, the noise patch last).
    dyadic : bool
        Dyadic signals and noise: with :func:`weights` ``(dyadic=True)``
        every pre-activation is exact, exact zeros frequent; ``patch_role``
        is set (equal patches can make the roles ambiguous). Otherwise
        refimpl's generator (noise orthogonal to the signals) or generic
        Gaussian signals and noise, roles left to be derived.
    """
    layout = draw(st.sampled_from(layouts))
    S = 1 if layout == "joint" else 2
    n = draw(st.integers(1, 6)) if n is None else n
    if dyadic:
        task = _dyadic_task(draw, n, S, draw(st.integers(1, 6)) if d is None else d)
    else:
        d = draw(st.integers(n + 3, n + 10)) if d is None else d
        rng = np.random.default_rng(draw(seeds))
        flip = draw(st.sampled_from((0.0, 0.3)))
        if d >= n + 3 and draw(st.booleans()):
            u, v, _ = signal_vectors(d, draw(st.sampled_from((1.0, 3.0))), 1.0, 1.0)
            task = sample_task(rng, n, u, v, 1.0, flip, layout)
        else:
            task = structured_task(rng, n, S, d, flip=flip)
    if order == "any":
        perms = draw(st.lists(st.permutations(range(S + 1)), min_size=n, max_size=n))
        task, roles = permute_patches(task, perms)
        if dyadic:
            task = Task(
                task.X, task.y, task.y_clean, xi=task.xi, signals=task.signals, patch_role=roles
            )
    return task


def _dyadic_task(draw, n, S, d):
    signals = draw(dyadic_arrays((S, d)))
    xi = draw(dyadic_arrays((n, d)))
    y_clean = draw(labels(n))
    y = draw(labels(n))
    X = np.concatenate([y_clean[:, None, None] * signals[None], xi[:, None, :]], axis=1)
    roles = np.tile(np.append(np.arange(S), -1), (n, 1))
    return Task(np.ascontiguousarray(X), y, y_clean, xi=xi, signals=signals, patch_role=roles)


@_composite
def problems(draw, layouts=LAYOUTS, order="any", dyadic=False, max_steps=20, frozen=True):
    """A whole training problem (:class:`TrainProblem`): a task of
    :func:`tasks` (``layouts``, ``order``, ``dyadic`` as there), W0 of
    :func:`weights`, the step size, weight decay 0 or not, the trainable mask
    (all trainable half of the time; always with ``frozen=False``) and
    1..``max_steps`` steps. With ``dyadic`` the first step's pre-activations
    are exact (exact zeros frequent)."""
    task = draw(tasks(layouts=layouts, order=order, dyadic=dyadic))
    m = draw(st.integers(1, 3))
    W0 = draw(weights(m, task.X.shape[2], dyadic=dyadic))
    if frozen and draw(st.booleans()):
        trainable = draw(hnp.arrays(np.bool_, (2, m)))
    else:
        trainable = np.ones((2, m), bool)
    return TrainProblem(
        W0=W0,
        task=task,
        eta=draw(st.sampled_from((0.5, 1.0) if dyadic else (0.1, 0.5, 1.0))),
        weight_decay=draw(st.sampled_from((0.0, 0.25) if dyadic else (0.0, 0.05))),
        trainable=trainable,
        steps=draw(st.integers(1, max_steps)),
    )
