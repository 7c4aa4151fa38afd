"""The GD of the convention variants (refimpl.crosscheck.dynamics): Gram
space against weight space (the oracle) over drawn problems and conventions,
and the estimators of refimpl.crosscheck.estimate on files made under a
known step size, momentum and schedule."""

import numpy as np
import pytest
from crosscheck_common import CONFIG
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import gaussian_problems

from refimpl import crosscheck as cc
from refimpl.crosscheck.dynamics import GramSpace, StageReplay, data_losses, outputs
from refimpl.crosscheck.estimate import (
    estimate_momentum,
    estimate_schedule,
    plausible,
    segments,
)
from refimpl.trajectory import load, save
from refimpl.transfer import run_experiment

conventions = st.builds(
    cc.Convention,
    filter_sum=st.booleans(),
    patch_mean=st.booleans(),
    bias=st.booleans(),
    swap_classes=st.booleans(),
    loss_with_decay=st.booleans(),
    decay_frozen=st.booleans(),
    momentum=st.sampled_from([0.0, 0.5, 0.9]),
    lr_schedule=st.sampled_from([(), ((0, 1.0), (3, 0.5))]),
    lr_scale=st.sampled_from([1.0, 0.7]),
)


@settings(max_examples=60, deadline=None)
@given(gaussian_problems(), conventions, st.data())
def test_gram_space_replays_weight_space(problem, conv, data):
    W0, X, y = problem
    n, P, d = X.shape
    m = W0.shape[1]
    X = X.copy()
    if data.draw(st.booleans()):  # repeated patches share one vector of the Gram basis
        X[:, 0] = X[0, 0]
    trainable = data.draw(st.lists(st.booleans(), min_size=2 * m, max_size=2 * m))
    trainable = np.array(trainable).reshape(2, m)
    lam = data.draw(st.sampled_from([0.0, 0.05]))
    b0 = np.linspace(-0.1, 0.1, 2 * m).reshape(2, m)
    args = (W0, X, y, 0.05, lam, trainable, 6, [0, 2, 6], conv, b0)
    ref = cc.variant_train(*args, space="weight")
    gram = cc.variant_train(*args, space="gram")
    scale = max(np.abs(ref.W).max(), 1e-300)
    assert np.abs(gram.W - ref.W).max() <= 1e-11 * scale
    assert np.allclose(gram.loss, ref.loss, rtol=1e-11, atol=1e-14)
    assert np.allclose(gram.penalty, ref.penalty, rtol=1e-11, atol=1e-14)
    if conv.bias:
        assert np.allclose(gram.b, ref.b, rtol=1e-11, atol=1e-13)
    frozen = ~trainable
    if not conv.decay_frozen or lam == 0:  # frozen filters do not move
        assert np.array_equal(ref.W[:, frozen], np.broadcast_to(W0[frozen], ref.W[:, frozen].shape))


def test_gram_basis_is_the_distinct_patches():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 2, 7))
    X[:, 0] = X[0, 0]  # one signal patch for every input
    space = GramSpace(rng.standard_normal((4, 7)), X.reshape(10, 7))
    assert space.U.shape == (6, 7)  # 1 shared + 5 noise patches
    assert np.array_equal(space.U[space.idx], X.reshape(10, 7))


def test_data_losses_is_outputs_loss_on_a_stack():
    rng = np.random.default_rng(1)
    pre = rng.standard_normal((3, 4, 6))  # 3 stacks, 2m = 4, n = 3, P = 2
    y = np.array([1.0, -1.0, 1.0])
    conv = cc.Convention(patch_mean=True, swap_classes=True)
    stacked = data_losses(pre, y, 3, 2, conv)
    assert np.allclose(stacked, [outputs(p, y, 3, 2, conv)[0] for p in pre], rtol=1e-15)


# ---------------------------------------------------------------------------
# the estimators, on files made under known values
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ref_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("dynamics") / "ref.npz"
    save(path, run_experiment(CONFIG))
    return path


def _stage(ref_path, tmp_path, conv, stage="up"):
    arrays = cc.variant_arrays(load(ref_path), conv, stages=[stage])
    save(tmp_path / "v.npz", arrays)
    return StageReplay(load(tmp_path / "v.npz", require_coefficients=False).stage(stage))


@pytest.mark.parametrize("mu", [0.3, 0.9, 0.99])
def test_momentum_is_read_off_the_loss_after_step_2(ref_path, tmp_path, mu):
    st_ = _stage(ref_path, tmp_path, cc.Convention(momentum=mu))
    assert estimate_momentum(st_, cc.Convention()) == mu
    plain = _stage(ref_path, tmp_path, cc.Convention())
    assert estimate_momentum(plain, cc.Convention()) is None


@pytest.mark.parametrize(
    "schedule", [((0, 1.0), (20, 0.1)), ((0, 2.0), (7, 1.0), (45, 0.25)), ((0, 0.5),)]
)
def test_schedule_is_read_off_the_loss_at_every_step(ref_path, tmp_path, schedule):
    st_ = _stage(ref_path, tmp_path, cc.Convention(lr_schedule=schedule))
    start = cc.Convention(lr_scale=schedule[0][1])
    assert segments(estimate_schedule(st_, start, st_.view.T)) == schedule


def test_schedule_under_momentum(ref_path, tmp_path):
    conv = cc.Convention(momentum=0.9, lr_schedule=((0, 1.0), (30, 0.5)))
    st_ = _stage(ref_path, tmp_path, conv)
    factors = estimate_schedule(st_, cc.Convention(momentum=0.9), st_.view.T)
    assert segments(factors) == conv.lr_schedule


@pytest.mark.parametrize(
    "schedule,ok",
    [
        (((0, 1.0), (50, 0.5), (100, 0.25)), True),  # StepLR
        (((0, 0.2), (1, 0.4), (2, 0.6), (3, 0.8), (4, 1.0)), True),  # a linear warm-up
        (tuple((t, 0.97**t) for t in range(30)), True),  # ExponentialLR
        (((0, 0.5), (1, 1.0)), True),  # one warm-up step
        (((0, 1.0), (931, 1.0232), (932, 0.9797), (933, 1.0122), (934, 0.8936)), False),
        (((0, 1.0), (10, 1.3), (11, 1.0)), False),  # one odd step
    ],
)
def test_plausible_schedules(schedule, ok):
    """What a training loop sets, not float32 drift read as step sizes."""
    assert plausible(schedule) is ok
