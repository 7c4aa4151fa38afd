"""The Gram-space engine (docs/model.md §9): its kernel against the numpy
twin, the read-off of gamma and rho from B, and the whole stage against the
weight-space engine (the reference) over drawn shapes, both layouts, any
patch order, weight decay, frozen filters and the epsilon rule, plus one long
run of 2000 steps."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import permute_patches, permuted_problems, train_problems

from refimpl import gram, naive
from refimpl.data import role_positions, sample_task, signal_vectors
from refimpl.decomposition import projection_error, reconstruction_error
from refimpl.gram import GramEngine, choose_engine, engine_costs, read_coefficients
from refimpl.train import train_stage

QUANTITIES = ("W", "loss", "gamma", "rho_bar", "rho_under")


def rel_err(a, b):
    """max|a - b| / max|b| (0 when both vanish)."""
    scale = np.abs(b).max(initial=0.0)
    diff = np.abs(a - b).max(initial=0.0)
    return diff / scale if scale > 0 else diff


def assert_engines_agree(weight, gram_, rtol=1e-12):
    assert np.array_equal(weight.steps, gram_.steps) and weight.stopped == gram_.stopped
    for name in QUANTITIES:
        a, b = getattr(gram_, name), getattr(weight, name)
        assert a.shape == b.shape, name
        if name == "loss":
            np.testing.assert_allclose(a, b, rtol=rtol, atol=0)
        else:  # per snapshot, relative to the snapshot's largest entry
            for k in range(len(weight.steps)):
                assert rel_err(a[k], b[k]) <= rtol, (name, weight.steps[k], rel_err(a[k], b[k]))


def epsilon_between(losses, k):
    """An epsilon that the k-th smallest distinct loss is below and the next
    is above, with a wide gap on both sides (so rounding cannot decide the
    stop); None when no such gap exists."""
    values = np.unique(losses)
    if len(values) < 2:
        return None
    k = min(k, len(values) - 2)
    lo, hi = values[k], values[k + 1]
    return 0.5 * (lo + hi) if hi - lo > 1e-8 * hi else None


# ---------------------------------------------------------------------------
# the kernel against its twin


@given(p=train_problems(max_steps=6))
def test_gram_kernel_matches_twin_step_by_step(p):
    """_gram_chunk one step at a time against naive.gram_gd_step: B, s and the
    loss; any P, frozen filters, weight decay (no patch roles needed)."""
    X, y = p.task.X, p.task.y
    m = p.W0.shape[1]
    n, P, _ = X.shape
    engine = GramEngine(p.W0, X, y, p.trainable.reshape(-1), p.eta, p.weight_decay, -1.0)
    loss = np.empty(p.steps + 1)
    B, s = np.zeros((2, m, n, P)), np.ones((2, m))
    for t in range(p.steps):
        assert engine.run(1, t, loss) == 1
        value, B, s = naive.gram_gd_step(B, s, p.W0, X, y, p.trainable, p.eta, p.weight_decay)
        assert value == pytest.approx(loss[t], rel=1e-12, abs=0)
        assert rel_err(engine.B, B) <= 1e-12
        np.testing.assert_allclose(engine.s.reshape(2, m), s, rtol=1e-14, atol=0)
        assert rel_err(engine.weights(), naive.gram_weights(B, s, p.W0, X)) <= 1e-12
    assert engine.current_loss() == pytest.approx(naive.loss(engine.weights(), X, y), rel=1e-12)
    # frozen filters: s = 1 and a zero row of B, exactly
    frozen = ~p.trainable
    assert np.all(engine.s.reshape(2, m)[frozen] == 1.0) and np.all(engine.B[frozen] == 0.0)


@given(p=permuted_problems(max_steps=6))
def test_read_off_matches_twin_and_the_recursions(p):
    """gram.read_coefficients against its loop twin, and the twin's read-off
    of the twin's B against the twin's recursions (docs/model.md §9.3: they
    agree term by term), on permuted patches."""
    task, roles = p.permuted, p.roles
    m = p.W0.shape[1]
    n, P, _ = task.X.shape
    S = task.signals.shape[0]
    B, s = np.zeros((2, m, n, P)), np.ones((2, m))
    W, gamma = p.W0.copy(), np.zeros((2, m, S))
    rho_bar, rho_under = np.zeros((2, m, n)), np.zeros((2, m, n))
    for _ in range(p.steps):
        _, B, s = naive.gram_gd_step(B, s, p.W0, task.X, task.y, p.trainable, p.eta, p.weight_decay)
        _, W, gamma, rho_bar, rho_under = naive.gd_step(
            W,
            task.X,
            task.y,
            task.y_clean,
            task.signals,
            task.xi,
            roles,
            p.trainable,
            p.eta,
            p.weight_decay,
            gamma,
            rho_bar,
            rho_under,
        )
    twin = naive.gram_coefficients(B, task.y, task.y_clean, task.signals, task.xi, roles)
    fast = read_coefficients(
        B, task.y, task.y_clean, task.signals, task.xi, *role_positions(roles, S)
    )
    for a, b, c in zip(fast, twin, (gamma, rho_bar, rho_under), strict=True):
        assert rel_err(a, b) <= 1e-13
        assert rel_err(b, c) <= 1e-11
    assert rel_err(naive.gram_weights(B, s, p.W0, task.X), W) <= 1e-12


# ---------------------------------------------------------------------------
# the Gram engine against the weight engine


@given(p=permuted_problems(max_steps=60), stop=st.none() | st.integers(0, 30))
def test_gram_engine_equals_weight_engine(p, stop):
    """Whole stages, snapshots at every step: W, loss, gamma, rho_bar and
    rho_under agree to 1e-12 relative; with epsilon drawn between two recorded
    losses both engines stop at the same step."""
    kw = dict(weight_decay=p.weight_decay, trainable=p.trainable, snapshots=np.arange(p.steps + 1))
    weight = train_stage(p.W0, p.permuted, p.eta, p.steps, engine="weight", **kw)
    eps = None if stop is None else epsilon_between(weight.loss, stop)
    if eps is not None:
        weight = train_stage(p.W0, p.permuted, p.eta, p.steps, engine="weight", epsilon=eps, **kw)
        assert weight.stopped
    gram_ = train_stage(p.W0, p.permuted, p.eta, p.steps, engine="gram", epsilon=eps or 0.0, **kw)
    assert_engines_agree(weight, gram_)


@given(p=train_problems(max_steps=20))
def test_gram_engine_untracked_any_patch_count(p):
    """track=False: any P (no roles needed), same W and loss as weight space."""
    kw = dict(weight_decay=p.weight_decay, trainable=p.trainable, snapshots=4, track=False)
    weight = train_stage(p.W0, p.task, p.eta, p.steps, engine="weight", **kw)
    gram_ = train_stage(p.W0, p.task, p.eta, p.steps, engine="gram", **kw)
    assert gram_.gamma is None and gram_.rho_bar is None and gram_.rho_under is None
    np.testing.assert_allclose(gram_.loss, weight.loss, rtol=1e-12, atol=0)
    for k in range(len(weight.steps)):
        assert rel_err(gram_.W[k], weight.W[k]) <= 1e-12


@pytest.mark.parametrize(
    "layout, weight_decay, frozen",
    [
        ("joint", 0.0, False),
        ("split", 1e-3, True),
    ],
)
def test_long_run_2000_steps(layout, weight_decay, frozen):
    """2000 steps of a transfer-sized problem, patches permuted at random:
    the engines agree to 1e-12 at every snapshot, and s_t = (1 - eta
    lambda)^t is exact in Gram space (a power, not a running product)."""
    rng = np.random.default_rng(11)
    d, m, n = 120, 4, 16
    u, v, _ = signal_vectors(d, 2.0, 1.0, 1.0)
    task = sample_task(rng, n, u, v, 1.0, 0.2, layout)
    P = task.X.shape[1]
    task, _ = permute_patches(task, [rng.permutation(P) for _ in range(n)])
    W0 = 0.05 * rng.standard_normal((2, m, d))
    trainable = np.ones((2, m), bool)
    if frozen:
        trainable[:, :2] = False
    kw = dict(weight_decay=weight_decay, trainable=trainable, snapshots=11)
    weight = train_stage(W0, task, 0.5, 2000, engine="weight", **kw)
    gram_ = train_stage(W0, task, 0.5, 2000, engine="gram", **kw)
    assert weight.T == 2000 and weight.loss[-1] < 0.5 * weight.loss[0]  # it learned
    assert_engines_agree(weight, gram_)
    for stage in (weight, gram_):
        assert reconstruction_error(stage) < 1e-11 and projection_error(stage) < 1e-9


def test_epsilon_stop_and_divergence_in_gram_space():
    rng = np.random.default_rng(2)
    u, v, _ = signal_vectors(30, 3.0, 1.0, 1.0)
    task = sample_task(rng, 8, u, v, 1.0, 0.0, "joint")
    W0 = 0.05 * rng.standard_normal((2, 2, 30))
    free = train_stage(W0, task, 0.5, 60, engine="weight", snapshots=np.arange(61))
    eps = 0.5 * (free.loss[24] + free.loss[25])
    a = train_stage(W0, task, 0.5, 60, engine="weight", epsilon=eps, snapshots=5)
    b = train_stage(W0, task, 0.5, 60, engine="gram", epsilon=eps, snapshots=5)
    assert a.stopped and b.stopped and a.T == b.T == 25
    assert_engines_agree(a, b)
    from refimpl.errors import DivergenceError

    with pytest.raises(DivergenceError):
        train_stage(W0, task, 1e308, 5, engine="gram")


# ---------------------------------------------------------------------------
# the automatic choice


def test_choose_engine_follows_cost_and_memory():
    # the benchmark sizes (P = 2, 1000 steps): nP well below 2d, Gram space wins
    for d, m, n in ((500, 10, 20), (1000, 10, 20), (1000, 20, 200), (4000, 50, 1000)):
        assert choose_engine(n, 2, m, d, 1000, 21) == "gram"
    # many patches in few dimensions: weight space
    assert choose_engine(1000, 2, 10, 100, 1000, 21) == "weight"
    # a few steps do not pay for the set-up of Q
    assert choose_engine(1000, 2, 50, 4000, 1, 2) == "weight"
    # over the memory budget: weight space whatever the cost
    assert (
        choose_engine(1000, 2, 50, 4000, 1000, 21, budget=gram.gram_bytes(1000, 2) - 1) == "weight"
    )
    cost = engine_costs(20, 2, 10, 1000, 1000)
    assert cost["gram"] < 0.2 * cost["weight"]
