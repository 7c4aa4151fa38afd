"""Hypothesis strategies that build valid inputs of refimpl directly.

Nothing here filters (no ``assume``, no ``.filter``): every strategy draws the
free parameters and constructs an input that satisfies the constraints by
design. Array conventions follow docs/model.md §1: W (2, m, d) with axis 0
index 0 for j = +1, X (n, P, d), y (n,) of +-1.

Two kinds of numbers are used:

* ``dyadic`` entries (small multiples of 1/4): every dot product of such
  vectors is exact in floating point whatever the summation order, so the
  compiled kernel (BLAS) and the numpy twin see the very same pre-activations,
  exact zeros included (the ReLU'(0) = 0 convention matters there);
* ``gaussian`` entries generated from a drawn seed: generic inputs on which a
  pre-activation is exactly 0 with probability 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refimpl.data import Task

DYADIC = tuple(k / 4.0 for k in range(-8, 9))  # -2, -1.75, ..., 2 (0 included)

seeds = st.integers(min_value=0, max_value=2**32 - 1)


@st.composite
def shapes(draw, n_max=6, P_max=4, m_max=4, d_max=8, P_min=1):
    """(n, P, m, d) with n, P, m, d >= 1 (any number of patches P)."""
    n = draw(st.integers(1, n_max))
    P = draw(st.integers(P_min, P_max))
    m = draw(st.integers(1, m_max))
    d = draw(st.integers(1, d_max))
    return n, P, m, d


def dyadic_arrays(shape):
    return hnp.arrays(np.float64, shape, elements=st.sampled_from(DYADIC))


def labels(n):
    return hnp.arrays(np.float64, (n,), elements=st.sampled_from((1.0, -1.0)))


@st.composite
def dyadic_problems(draw, **shape_kw):
    """(W, X, y) with dyadic entries: exact pre-activations, frequent exact zeros."""
    n, P, m, d = draw(shapes(**shape_kw))
    W = draw(dyadic_arrays((2, m, d)))
    X = draw(dyadic_arrays((n, P, d)))
    y = draw(labels(n))
    return W, X, y


@st.composite
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


@st.composite
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
    W0: np.ndarray
    task: Task
    eta: float
    weight_decay: float
    trainable: np.ndarray
    steps: int


@st.composite
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


@st.composite
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
    from refimpl.config import Config

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


@st.composite
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


# ---------------------------------------------------------------------------
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


@st.composite
def permuted_problems(draw, max_steps=40, layouts=("joint", "split")):
    """Both layouts (joint P = 2, split P = 3), data of refimpl's generator
    (noise orthogonal to the signals) or generic Gaussian signals and noise,
    a drawn permutation of the patches of every input, weight decay 0 or
    not, a drawn frozen-filter mask (all filters trainable half of the time)."""
    from refimpl.data import sample_task, signal_vectors

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
