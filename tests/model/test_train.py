"""The training kernel (docs/model.md §3 and §4): train_stage against
repeated steps of the numpy twin ``naive.gd_step`` (weights, gamma, rho_bar,
rho_under, loss), frozen filters, weight decay, chunking, snapshots and the
epsilon stopping rule."""

import numpy as np
import pytest
from hypothesis import given
from strategies import dyadic_train_problems, structured_task, train_problems

from refimpl import naive, network, train
from refimpl.errors import ConfigError, PatchRoleError, RefimplError
from refimpl.train import snapshot_schedule, train_stage


def assert_close(actual, expected, rtol):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    scale = max(float(np.abs(expected).max(initial=0.0)), 1e-300)
    err = float(np.abs(actual - expected).max(initial=0.0))
    assert err <= rtol * scale, f"max error {err:.3e} > {rtol:.0e} * {scale:.3e}"


def naive_run(p):
    """Repeated naive.gd_step from zero coefficients; states at steps 0..T and
    the data loss at every step 0..T."""
    m, S, n = p.W0.shape[1], p.task.signals.shape[0], p.task.n
    W, gamma = p.W0.copy(), np.zeros((2, m, S))
    rho_bar, rho_under = np.zeros((2, m, n)), np.zeros((2, m, n))
    states, losses = [(W, gamma, rho_bar, rho_under)], []
    roles = p.task.roles()
    for _ in range(p.steps):
        value, W, gamma, rho_bar, rho_under = naive.gd_step(
            W,
            p.task.X,
            p.task.y,
            p.task.y_clean,
            p.task.signals,
            p.task.xi,
            roles,
            p.trainable,
            p.eta,
            p.weight_decay,
            gamma,
            rho_bar,
            rho_under,
        )
        states.append((W, gamma, rho_bar, rho_under))
        losses.append(value)
    losses.append(naive.loss(W, p.task.X, p.task.y))
    return states, np.array(losses)


ENGINES = ("weight", "gram")


@pytest.mark.parametrize("engine", ENGINES)
@given(p=train_problems())
def test_train_stage_matches_naive_gd_steps(engine, p):
    """Every step of the compiled loop equals the twin's step: weights,
    coefficients and loss; any P >= 1, frozen filters and weight decay drawn."""
    stage = train_stage(
        p.W0,
        p.task,
        p.eta,
        p.steps,
        weight_decay=p.weight_decay,
        trainable=p.trainable,
        snapshots=np.arange(p.steps + 1),
        engine=engine,
    )
    states, losses = naive_run(p)
    assert list(stage.steps) == list(range(p.steps + 1))
    assert stage.T == p.steps and not stage.stopped
    m, S, n, d = p.W0.shape[1], p.task.signals.shape[0], p.task.n, p.W0.shape[2]
    K = p.steps + 1
    assert stage.W.shape == (K, 2, m, d) and stage.gamma.shape == (K, 2, m, S)
    assert stage.rho_bar.shape == stage.rho_under.shape == (K, 2, m, n)
    assert stage.loss.shape == (K,)
    for t, (W, gamma, rho_bar, rho_under) in enumerate(states):
        assert_close(stage.W[t], W, 1e-12)
        assert_close(stage.gamma[t], gamma, 1e-11)
        assert_close(stage.rho_bar[t], rho_bar, 1e-11)
        assert_close(stage.rho_under[t], rho_under, 1e-11)
    np.testing.assert_allclose(stage.loss, losses, rtol=1e-12, atol=0)
    # frozen filters do not move at all and keep zero coefficients
    frozen = ~p.trainable
    assert np.array_equal(
        stage.W[:, frozen], np.broadcast_to(p.W0[frozen], stage.W[:, frozen].shape)
    )
    for name in ("gamma", "rho_bar", "rho_under"):
        assert np.all(getattr(stage, name)[:, frozen] == 0)
    # rho_bar only for y_i = j, rho_under only for y_i = -j
    same = np.broadcast_to(
        p.task.y[None, None, :] == np.array([1.0, -1.0])[:, None, None], (2, m, n)
    )
    assert np.all(stage.rho_bar[:, ~same] == 0) and np.all(stage.rho_under[:, same] == 0)
    # the input is not modified
    assert stage.W0 is not p.W0 and np.array_equal(stage.W0, p.W0)


@pytest.mark.parametrize("engine", ENGINES)
@given(p=dyadic_train_problems())
def test_one_step_matches_naive_with_exact_zero_preactivations(engine, p):
    """Dyadic inputs: the kernel and the twin see the same exact
    pre-activations, many of them exactly 0 (sigma'(0) = 0 in both)."""
    stage = train_stage(
        p.W0, p.task, p.eta, 1, weight_decay=p.weight_decay, trainable=p.trainable, engine=engine
    )
    states, losses = naive_run(p)
    W, gamma, rho_bar, rho_under = states[1]
    # entries are at most 2 in size and d <= 6: every term is O(1) to O(100)
    for got, want in (
        (stage.W[1], W),
        (stage.gamma[1], gamma),
        (stage.rho_bar[1], rho_bar),
        (stage.rho_under[1], rho_under),
    ):
        assert np.abs(got - want).max(initial=0.0) <= 1e-13 * max(
            1.0, np.abs(want).max(initial=0.0)
        )
    np.testing.assert_allclose(stage.loss[0], losses[0], rtol=1e-14)


def small_task(seed=0, n=6, S=1, d=12, flip=0.0, signal_scale=1.0):
    return structured_task(
        np.random.default_rng(seed), n, S, d, flip=flip, signal_scale=signal_scale
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_weights_untouched_by_tracking_and_recorded_loss_is_data_loss(engine):
    task = small_task(1, flip=0.3)
    W0 = 0.1 * np.random.default_rng(2).standard_normal((2, 3, 12))
    kw = dict(weight_decay=0.2, snapshots=np.arange(8), engine=engine)
    tracked = train_stage(W0, task, 0.5, 7, track=True, **kw)
    untracked = train_stage(W0, task, 0.5, 7, track=False, **kw)
    assert np.array_equal(tracked.W, untracked.W)
    assert np.array_equal(tracked.loss, untracked.loss)
    # no coefficients that look real: None, and the stage says so
    assert untracked.gamma is None and untracked.rho_bar is None and untracked.rho_under is None
    assert tracked.tracked and not untracked.tracked
    # loss[t] is the data loss of W_t, without (lambda/2)|W|^2
    for t in range(8):
        assert tracked.loss[t] == pytest.approx(
            network.loss(tracked.W[t], task.X, task.y), rel=1e-13
        )


def test_track_false_accepts_any_patch_layout():
    task = small_task(1)
    X = np.random.default_rng(0).standard_normal((6, 4, 12))  # P = 4, S = 1: no tracking
    other = type(task)(X=X, y=task.y, y_clean=task.y_clean, xi=task.xi, signals=task.signals)
    W0 = 0.1 * np.ones((2, 2, 12))
    with pytest.raises(PatchRoleError, match="P = S \\+ 1"):
        train_stage(W0, other, 0.5, 3)
    stage = train_stage(W0, other, 0.5, 3, track=False)
    W = W0
    for _ in range(3):
        W = W - 0.5 * naive.gradient(W, X, task.y)
    assert_close(stage.W_final, W, 1e-13)


@pytest.mark.parametrize("engine", ENGINES)
def test_chunking_does_not_change_a_bit(monkeypatch, engine):
    """The step loop runs in chunks; chunks of 3 steps give the same bits as
    one chunk, and the snapshots equal the every-step run's weights."""
    task = small_task(3, flip=0.2)
    W0 = 0.1 * np.random.default_rng(4).standard_normal((2, 2, 12))
    trainable = np.array([[True, False], [True, True]])
    kw = dict(weight_decay=0.05, trainable=trainable, engine=engine)
    every = train_stage(W0, task, 0.8, 10, snapshots=np.arange(11), **kw)
    monkeypatch.setattr(train, "CHUNK", 3)
    chunked = train_stage(W0, task, 0.8, 10, snapshots=4, **kw)
    assert list(chunked.steps) == [0, 3, 7, 10]  # rint(linspace(0, 10, 4))
    for name in ("W", "gamma", "rho_bar", "rho_under"):
        assert np.array_equal(getattr(chunked, name), getattr(every, name)[chunked.steps]), name
    assert np.array_equal(chunked.loss, every.loss)


@pytest.mark.parametrize("engine", ENGINES)
def test_progress_is_reported(engine):
    calls = []
    task = small_task(5)
    train_stage(
        0.1 * np.ones((2, 1, 12)),
        task,
        0.5,
        4,
        snapshots=3,
        progress=lambda t, cap, loss: calls.append((t, cap, loss)),
        engine=engine,
    )
    assert calls and calls[-1][:2] == (4, 4)
    assert all(np.isfinite(c[2]) for c in calls)


def test_snapshot_schedule():
    assert list(snapshot_schedule(10, 4)) == [0, 3, 7, 10]
    assert list(snapshot_schedule(3, 21)) == [0, 1, 2, 3]  # fewer steps than snapshots
    assert list(snapshot_schedule(0, 5)) == [0]
    assert list(snapshot_schedule(100, 2)) == [0, 100]


@pytest.mark.parametrize("engine", ENGINES)
def test_zero_steps(engine):
    task = small_task(6)
    W0 = 0.1 * np.ones((2, 2, 12))
    stage = train_stage(W0, task, 1.0, 0, engine=engine)
    assert list(stage.steps) == [0] and stage.T == 0
    assert np.array_equal(stage.W[0], W0)
    assert stage.loss.shape == (1,)
    assert stage.loss[0] == pytest.approx(naive.loss(W0, task.X, task.y), rel=1e-14)


@pytest.mark.parametrize("engine", ENGINES)
def test_explicit_snapshots_include_0_and_the_last(engine):
    task = small_task(6)
    stage = train_stage(0.1 * np.ones((2, 1, 12)), task, 1.0, 9, snapshots=[4, 2], engine=engine)
    assert list(stage.steps) == [0, 2, 4, 9]


@pytest.mark.parametrize("engine", ENGINES)
def test_scale_per_filter(engine):
    task = small_task(7)
    trainable = np.array([[True, False], [False, True]])
    stage = train_stage(
        0.1 * np.ones((2, 2, 12)),
        task,
        0.5,
        6,
        weight_decay=0.1,
        trainable=trainable,
        snapshots=[3],
        engine=engine,
    )
    assert list(stage.steps) == [0, 3, 6]
    np.testing.assert_allclose(stage.scale(1), [[0.95**3, 1.0], [1.0, 0.95**3]], rtol=1e-15)
    np.testing.assert_allclose(stage.scale(), [[0.95**6, 1.0], [1.0, 0.95**6]], rtol=1e-15)
    assert np.array_equal(stage.scale(0), np.ones((2, 2)))


@pytest.mark.parametrize("engine", ENGINES)
def test_epsilon_stops_at_the_first_step_below(engine):
    """A separable task with a strong signal: the loss decreases; epsilon set
    between two recorded losses stops exactly at the first one below it."""
    task = small_task(8, n=8, d=16, signal_scale=3.0)
    W0 = 0.05 * np.random.default_rng(9).standard_normal((2, 2, 16))
    ref = train_stage(W0, task, 0.5, 40, snapshots=np.arange(41), engine=engine)
    assert np.all(np.diff(ref.loss) < 0)
    t_stop = 12
    eps = 0.5 * (ref.loss[t_stop - 1] + ref.loss[t_stop])
    stage = train_stage(W0, task, 0.5, 40, epsilon=eps, snapshots=5, engine=engine)
    assert stage.stopped
    assert stage.T == t_stop and stage.steps[-1] == t_stop
    assert stage.loss[-1] <= eps < stage.loss[-2]
    assert np.array_equal(stage.loss, ref.loss[: t_stop + 1])
    assert np.array_equal(stage.W_final, ref.W[t_stop])
    assert np.array_equal(stage.rho_bar[-1], ref.rho_bar[t_stop])
    # snapshots taken before the stop are kept, none after it
    assert all(s <= t_stop for s in stage.steps) and stage.steps[0] == 0
    # an epsilon that is never reached runs the full cap
    capped = train_stage(W0, task, 0.5, 40, epsilon=1e-12, snapshots=5, engine=engine)
    assert not capped.stopped and capped.T == 40
    assert np.array_equal(capped.W_final, ref.W_final)


@pytest.mark.parametrize("engine", ENGINES)
def test_epsilon_already_met_at_step_0(engine):
    task = small_task(8, n=8, d=16, signal_scale=3.0)
    W0 = 0.05 * np.ones((2, 2, 16))
    stage = train_stage(W0, task, 0.5, 10, epsilon=100.0, engine=engine)
    assert stage.stopped and stage.T == 0
    assert np.array_equal(stage.W_final, W0)


@pytest.mark.parametrize("engine", ENGINES)
def test_epsilon_met_exactly_at_the_cap_counts_as_stopped(engine):
    """The rule met at step T (the cap) is a stop, as it is one step earlier."""
    task = small_task(8, n=8, d=16, signal_scale=3.0)
    W0 = 0.05 * np.ones((2, 2, 16))
    free = train_stage(W0, task, 0.5, 10, engine=engine)
    eps = free.loss[10]  # decreasing loss: first reached at 10
    assert np.all(free.loss[:10] > eps)
    at_cap = train_stage(W0, task, 0.5, 10, epsilon=eps, engine=engine)
    assert at_cap.stopped and at_cap.T == 10
    beyond = train_stage(W0, task, 0.5, 11, epsilon=eps, engine=engine)
    assert beyond.stopped and beyond.T == 10
    assert not train_stage(W0, task, 0.5, 9, epsilon=eps, engine=engine).stopped


@pytest.mark.parametrize("engine", ENGINES)
def test_divergence_is_a_clear_error(engine):
    task = small_task(8, n=8, d=16, signal_scale=3.0)
    W0 = 0.05 * np.ones((2, 2, 16))
    with pytest.raises(train.DivergenceError, match="eta"):
        train_stage(W0, task, 1e308, 5, engine=engine)


def test_bad_trainable_shape():
    task = small_task(0)
    with pytest.raises(ValueError, match="trainable"):
        train_stage(np.zeros((2, 2, 12)), task, 1.0, 2, trainable=np.ones((2, 3), bool))


@pytest.mark.parametrize("engine", ENGINES)
def test_same_inputs_same_bits(engine):
    task = small_task(10, flip=0.3)
    W0 = 0.1 * np.random.default_rng(11).standard_normal((2, 3, 12))
    a = train_stage(W0, task, 0.7, 15, weight_decay=0.01, engine=engine)
    b = train_stage(W0, task, 0.7, 15, weight_decay=0.01, engine=engine)
    for name in ("W", "gamma", "rho_bar", "rho_under", "loss", "steps"):
        assert np.array_equal(getattr(a, name), getattr(b, name))


@pytest.mark.parametrize("engine", ENGINES)
def test_training_step_relu_prime_zero_convention(engine):
    """One step by hand, with exact zero pre-activations (docs/model.md §3:
    sigma'(0) = 0). d = 3, m = 1, n = 1, mu = e_0, xi = e_1, y = yhat = +1.
    w_{+1} = e_2 sees 0 on both patches: it must not move, its coefficients
    stay 0. w_{-1} = e_0 + e_1 sees 1 on both: f = -2, l' = l'(-2), and
    w_{-1} <- w_{-1} - eta l' y j (mu + xi) / (n m) = (1 + eta l')(e_0 + e_1);
    gamma_{-1} = -eta l' |mu|^2, rho_under_{-1} = +eta l' |xi|^2 (y = -j)."""
    from refimpl.data import Task

    mu, xi = np.array([[1.0, 0.0, 0.0]]), np.array([[0.0, 1.0, 0.0]])
    task = Task(
        X=np.stack([mu, xi], axis=1), y=np.array([1.0]), y_clean=np.array([1.0]), xi=xi, signals=mu
    )
    W0 = np.array([[[0.0, 0.0, 1.0]], [[1.0, 1.0, 0.0]]])
    eta = 0.5
    stage = train_stage(W0, task, eta, 1, engine=engine)
    dl = -1.0 / (1.0 + np.exp(-2.0))
    assert np.array_equal(stage.W[1][0], W0[0])
    np.testing.assert_allclose(
        stage.W[1][1, 0], (1 + eta * dl) * np.array([1.0, 1.0, 0.0]), rtol=1e-15
    )
    assert stage.gamma[1][0, 0, 0] == 0.0 and stage.rho_bar[1][0, 0, 0] == 0.0
    assert stage.rho_under[1][0, 0, 0] == 0.0
    assert stage.gamma[1][1, 0, 0] == pytest.approx(-eta * dl, rel=1e-15)
    assert stage.rho_under[1][1, 0, 0] == pytest.approx(eta * dl, rel=1e-15)
    assert stage.rho_bar[1][1, 0, 0] == 0.0
    assert stage.loss[0] == pytest.approx(np.log1p(np.exp(2.0)), rel=1e-15)


# ---------------------------------------------------------------------------
# the engine option


def test_unknown_engine_and_gram_over_budget_are_refused():
    task = small_task(0)
    W0 = 0.1 * np.ones((2, 1, 12))
    with pytest.raises(ConfigError, match="engine"):
        train_stage(W0, task, 0.5, 2, engine="fast")
    nP = task.n * task.X.shape[1]
    with pytest.raises(ConfigError, match="gram_budget"):
        train_stage(W0, task, 0.5, 2, engine="gram", gram_budget=8 * nP**2 - 1)
    # at the budget exactly it runs
    train_stage(W0, task, 0.5, 2, engine="gram", gram_budget=8 * nP**2)
    assert issubclass(ConfigError, RefimplError)


def test_auto_runs_the_engine_choose_engine_names(monkeypatch):
    """engine="auto" gives bit for bit the stage of the engine that
    choose_engine returns, and falls back to weight space over the budget."""
    from refimpl import gram

    task = small_task(4, flip=0.2)
    W0 = 0.1 * np.random.default_rng(5).standard_normal((2, 2, 12))
    runs = {e: train_stage(W0, task, 0.5, 9, engine=e) for e in ENGINES}
    assert not np.array_equal(runs["weight"].W[-1], runs["gram"].W[-1])  # rounding differs
    for choice in ENGINES:
        monkeypatch.setattr(gram, "choose_engine", lambda *a, c=choice, **k: c)
        monkeypatch.setattr(train, "choose_engine", gram.choose_engine)
        auto = train_stage(W0, task, 0.5, 9, engine="auto")
        assert np.array_equal(auto.W, runs[choice].W) and np.array_equal(
            auto.loss, runs[choice].loss
        )
    monkeypatch.undo()
    # the default is the reference, weight space, whatever the cost model says
    assert np.array_equal(train_stage(W0, task, 0.5, 9).W, runs["weight"].W)
    nP = task.n * task.X.shape[1]
    assert gram.choose_engine(task.n, 2, 2, 12, 100, 21, budget=8 * nP**2 - 1) == "weight"
    assert gram.choose_engine(task.n, 2, 2, 12, 0) == "weight"  # no steps: no set-up
