"""The assertions of :mod:`refimpl.testing`: your forward pass, gradient,
GD step and whole run against refimpl's, raising ``AssertionError`` with
refimpl's diagnosis (what differs, and which usual departure, if any, your
result equals). They do not need hypothesis.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Mapping

import numpy as np

from ..crosscheck import Recorder, as_array, as_trajectory, crosscheck, run_arrays
from ..crosscheck.variants import Convention, variant_loss_gradient
from ..data import Task
from ..errors import ConfigError
from ..network import forward, gradient
from ..train import train_stage

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
        The weights w_{j,r} (class +1 first), passed to ``fn`` as given.
    X : array of shape (n, P, d)
        The inputs, passed to ``fn`` as given.
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
    ConfigError
        When ``fn`` returns a dict with a key that is not one of the parts.
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
        The weights, passed to ``fn`` as given.
    X : array of shape (n, P, d)
        The inputs, passed to ``fn`` as given.
    y : array of shape (n,), +-1
        The labels, passed to ``fn`` as given.
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
        Step size eta and L2 coefficient lambda.
    trainable : array of shape (2, m), bool, optional
        False marks a frozen filter; None: every filter trainable.
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
    **options : dict
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
    ConfigError
        Your (W, loss) without ``ref``.
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
