"""The hypothesis strategies of :mod:`refimpl.testing` and the problem
builders they use (dyadic and Gaussian numbers: see the package's
docstring). The strategies need hypothesis, the ``testing`` extra; without
it this module still imports, and each strategy raises ImportError saying
what to install.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..config import LAYOUTS, Config
from ..data import Task, sample_task, signal_vectors

try:
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError:  # the `testing` extra is not installed: the assertions still work
    st = hnp = None

NO_HYPOTHESIS = "refimpl.testing's strategies need hypothesis: pip install 'refimpl[testing]'"


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
    """(n, P, m, d) with n, P, m, d >= 1 (any number of patches P).

    Parameters
    ----------
    n_max, P_max, m_max, d_max : int, optional
        The largest n, P, m and d drawn.
    P_min : int, optional
        The smallest P drawn.

    Returns
    -------
    hypothesis.strategies.SearchStrategy
        Of tuples (n, P, m, d) of ints.
    """
    n = draw(st.integers(1, n_max))
    P = draw(st.integers(P_min, P_max))
    m = draw(st.integers(1, m_max))
    d = draw(st.integers(1, d_max))
    return n, P, m, d


def dyadic_arrays(shape):
    """Arrays of ``shape`` with entries in :data:`DYADIC`.

    Parameters
    ----------
    shape : tuple of int
        The arrays' shape.

    Returns
    -------
    hypothesis.strategies.SearchStrategy
        Of float64 arrays.
    """
    _need_hypothesis()
    return hnp.arrays(np.float64, shape, elements=st.sampled_from(DYADIC))


def labels(n):
    """(n,) labels of +-1.

    Parameters
    ----------
    n : int
        The number of labels.

    Returns
    -------
    hypothesis.strategies.SearchStrategy
        Of float64 arrays of shape (n,).
    """
    _need_hypothesis()
    return hnp.arrays(np.float64, (n,), elements=st.sampled_from((1.0, -1.0)))


@_composite
def dyadic_problems(draw, **shape_kw):
    """(W, X, y) with dyadic entries: exact pre-activations, frequent exact zeros.

    Parameters
    ----------
    **shape_kw : dict
        The bounds of :func:`shapes` (``n_max``, ``P_max``, ``m_max``, ``d_max``,
        ``P_min``).

    Returns
    -------
    hypothesis.strategies.SearchStrategy
        Of tuples (W (2, m, d), X (n, P, d), y (n,)), float64.
    """
    n, P, m, d = draw(shapes(**shape_kw))
    W = draw(dyadic_arrays((2, m, d)))
    X = draw(dyadic_arrays((n, P, d)))
    y = draw(labels(n))
    return W, X, y


@_composite
def gaussian_problems(draw, **shape_kw):
    """(W, X, y) with Gaussian entries of drawn scales, from a drawn seed.

    Parameters
    ----------
    **shape_kw : dict
        The bounds of :func:`shapes` (``n_max``, ``P_max``, ``m_max``, ``d_max``,
        ``P_min``).

    Returns
    -------
    hypothesis.strategies.SearchStrategy
        Of tuples (W (2, m, d), X (n, P, d), y (n,)), float64.
    """
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
    """W, X, y whose pre-activations all satisfy |<w_{j,r}, x_i^(p)>| >= delta.

    Attributes
    ----------
    W : ndarray of shape (2, m, d)
        Orthogonal filters of equal norm (2m <= d).
    X : ndarray of shape (n, P, d)
        Inputs whose every pre-activation has magnitude in [delta, 3].
    y : ndarray of shape (n,)
        Labels, +1 or -1.
    delta : float
        The bound on |<w_{j,r}, x_i^(p)>| (0.2 as drawn).
    """

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

    Returns
    -------
    hypothesis.strategies.SearchStrategy
        Of :class:`MarginProblem`.
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
    kernel and its twin do not rely on orthogonality.

    Parameters
    ----------
    rng : numpy.random.Generator
        The source of the signals, noise, labels and flips.
    n : int
        The number of inputs.
    S : int
        The number of signal patches.
    d : int
        The dimension.
    flip : float, optional
        The label-flip probability.
    signal_scale, noise_scale : float, optional
        The standard deviations of the signals' and the noise's entries.

    Returns
    -------
    Task
        With its signal/noise structure (roles left to be derived).
    """
    signals = signal_scale * rng.standard_normal((S, d))
    xi = noise_scale * rng.standard_normal((n, d))
    y_clean = rng.choice(np.array([1.0, -1.0]), size=n)
    y = np.where(rng.random(n) < flip, -y_clean, y_clean)
    X = np.concatenate([y_clean[:, None, None] * signals[None], xi[:, None, :]], axis=1)
    return Task(X=np.ascontiguousarray(X), y=y, y_clean=y_clean, xi=xi, signals=signals)


@dataclass
class TrainProblem:
    """A training problem: initial weights, a task, the step size, the weight
    decay, the trainable mask (False: frozen) and a number of steps.

    Attributes
    ----------
    W0 : ndarray of shape (2, m, d)
        The initial weights w^[0].
    task : Task
        The training data.
    eta, weight_decay : float
        Step size eta and L2 coefficient lambda.
    trainable : ndarray of shape (2, m), bool
        False marks a frozen filter.
    steps : int
        The number of steps T.
    """

    W0: np.ndarray
    task: Task
    eta: float
    weight_decay: float
    trainable: np.ndarray
    steps: int


@_composite
def train_problems(draw, max_steps=6):
    """A small training problem: shapes (n, P = S + 1, m, d) with P >= 1, a
    structured task, step size, weight decay (0 or not), a frozen-filter mask.

    Parameters
    ----------
    max_steps : int, optional
        The most steps drawn (0 included).

    Returns
    -------
    hypothesis.strategies.SearchStrategy
        Of :class:`TrainProblem`.
    """
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
    an exact integer <= min(m1, m2), so round(alpha m2) = k unambiguously.

    Returns
    -------
    hypothesis.strategies.SearchStrategy
        Of tuples (W_up, W_fresh, alpha, k, seed); entry 0 of upstream filter r
        of class j is j (100 + r), so every inherited filter can be traced.
    """
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
    of Config may change): d = 40, m = 3, N_1 = 12, N_2 = 8, 40 + 30 steps.

    Parameters
    ----------
    **changes : dict
        Fields that replace the tiny values.

    Returns
    -------
    Config
        The tiny config with the changes (validated).
    """
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
    the step are exact in any summation order, exact zeros frequent.

    Returns
    -------
    hypothesis.strategies.SearchStrategy
        Of :class:`TrainProblem` with ``steps`` 1.
    """
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

    Parameters
    ----------
    task : Task
        A task with its S signal patches first and the noise patch last.
    perms : array_like of shape (n, P), int
        A permutation of 0..P-1 per input.

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
    the patches of every input permuted.

    Attributes
    ----------
    W0 : ndarray of shape (2, m, d)
        The initial weights.
    task : Task
        The data in refimpl's patch order (signals first, noise last).
    permuted : Task
        The same data with the patches of every input in a drawn order
        (patch roles left to be derived).
    roles : ndarray of shape (n, P), int
        The roles of the permuted patches (s for signal s, -1 for noise).
    layout : {"joint", "split"}
        The layout (P = 2 or 3).
    eta, weight_decay : float
        Step size eta and L2 coefficient lambda.
    trainable : ndarray of shape (2, m), bool
        False marks a frozen filter.
    steps : int
        The number of steps T.
    """

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
    not, a drawn frozen-filter mask (all filters trainable half of the time).

    Parameters
    ----------
    max_steps : int, optional
        The most steps drawn (at least 1).
    layouts : sequence of {"joint", "split"}, optional
        The layouts drawn from.

    Returns
    -------
    hypothesis.strategies.SearchStrategy
        Of :class:`PermutedProblem`.
    """
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
    draw the others validly; other fixed values are yours to keep valid).

    Parameters
    ----------
    **fixed : dict
        Config fields set as given instead of drawn.

    Returns
    -------
    hypothesis.strategies.SearchStrategy
        Of :class:`~refimpl.config.Config`.
    """
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
    Gaussian ones of a drawn scale.

    Parameters
    ----------
    m, d : int, optional
        The shape; drawn (m <= 4, d <= 8) when None.
    dyadic : bool, optional
        Entries from :data:`DYADIC` instead of Gaussian ones.

    Returns
    -------
    hypothesis.strategies.SearchStrategy
        Of float64 arrays of shape (2, m, d).
    """
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

    Returns
    -------
    hypothesis.strategies.SearchStrategy
        Of :class:`~refimpl.data.Task`.
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
    are exact (exact zeros frequent).

    Parameters
    ----------
    layouts : sequence of {"joint", "split"}, optional
        As for :func:`tasks`.
    order : {"any", "refimpl"}, optional
        As for :func:`tasks`.
    dyadic : bool, optional
        As for :func:`tasks` and :func:`weights`.
    max_steps : int, optional
        The most steps drawn.
    frozen : bool, optional
        False: every filter trainable.

    Returns
    -------
    hypothesis.strategies.SearchStrategy
        Of :class:`TrainProblem`.
    """
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
