"""The convention-variant GD of explain mode (refimpl.crosscheck.variants)
against independent facts, not against itself: the reference convention is
refimpl's GD, and each single variant equals refimpl's GD on transformed
inputs, or a first step computed by hand."""

import numpy as np
import pytest
from crosscheck_common import CONFIG

from refimpl import crosscheck as cc
from refimpl.crosscheck.variants import variant_loss_gradient
from refimpl.data import Task
from refimpl.train import train_stage
from refimpl.transfer import run_experiment


@pytest.fixture(scope="module")
def exp():
    return run_experiment(CONFIG)


# ---------------------------------------------------------------------------
# the variant GD against independent facts (not against itself)
# ---------------------------------------------------------------------------


def _inputs(exp, name):
    s = exp.stages[name]
    return s.W0, s.task.X, s.task.y, s.eta, s.weight_decay, s.trainable


def _rel(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


def test_variant_gd_reference_convention_equals_refimpl(exp):
    for name, stage in exp.stages.items():
        W, loss = cc.variant_train(*_inputs(exp, name), stage.T, stage.steps)[:2]
        assert _rel(W, stage.W) <= 1e-12 and _rel(loss, stage.loss) <= 1e-12


def test_variant_gd_lr_scale_equals_refimpl_with_scaled_eta(exp):
    s = exp.stages["down"]
    W, loss = cc.variant_train(*_inputs(exp, "down"), s.T, s.steps, cc.Convention(lr_scale=0.7))[:2]
    ref = train_stage(
        s.W0,
        s.task,
        0.7 * s.eta,
        s.T,
        weight_decay=s.weight_decay,
        trainable=s.trainable,
        snapshots=s.steps,
    )
    assert _rel(W, ref.W) <= 1e-12 and _rel(loss, ref.loss) <= 1e-12


def test_variant_gd_patch_mean_equals_refimpl_on_scaled_inputs(exp):
    # ReLU is positively homogeneous: (1/P) sum_p sigma(<w, x_p>) = sum_p sigma(<w, x_p/P>),
    # and sigma'(<w, x/P>) = sigma'(<w, x>); so the mean-over-patches run is the
    # reference run on X/P (P = 2: the division is exact).
    s = exp.stages["up"]
    P = s.task.X.shape[1]
    W, loss = cc.variant_train(*_inputs(exp, "up"), s.T, s.steps, cc.Convention(patch_mean=True))[
        :2
    ]
    task = Task(
        X=s.task.X / P,
        y=s.task.y,
        y_clean=s.task.y_clean,
        xi=s.task.xi / P,
        signals=s.task.signals / P,
    )
    ref = train_stage(
        s.W0,
        task,
        s.eta,
        s.T,
        weight_decay=s.weight_decay,
        trainable=s.trainable,
        snapshots=s.steps,
    )
    assert _rel(W, ref.W) <= 1e-12 and _rel(loss, ref.loss) <= 1e-12


def test_variant_gd_filter_sum_equals_refimpl_rescaled(exp):
    # f_sum(W) = m f(W) = f(m W); with V = m W the variant's step
    # W' = (1 - eta lam) W - eta m grad L(V) is V' = (1 - eta lam) V - eta m^2 grad L(V):
    # the reference with V0 = m W0, step eta m^2 and decay lam / m^2.
    s = exp.stages["down"]
    m = s.W0.shape[1]
    W, loss = cc.variant_train(*_inputs(exp, "down"), s.T, s.steps, cc.Convention(filter_sum=True))[
        :2
    ]
    ref = train_stage(
        m * s.W0,
        s.task,
        s.eta * m**2,
        s.T,
        weight_decay=s.weight_decay / m**2,
        trainable=s.trainable,
        snapshots=s.steps,
    )
    assert _rel(m * W, ref.W) <= 1e-10 and _rel(loss, ref.loss) <= 1e-10


def test_variant_gd_bias_first_step_is_the_reference(exp):
    s = exp.stages["up"]
    W, loss = cc.variant_train(*_inputs(exp, "up"), 2, [0, 1, 2], cc.Convention(bias=True))[:2]
    ref = train_stage(s.W0, s.task, s.eta, 2, weight_decay=s.weight_decay, snapshots=[0, 1, 2])
    assert _rel(W[1], ref.W[1]) <= 1e-13 and loss[0] == pytest.approx(ref.loss[0], rel=1e-13)
    # the bias moved in step 1: it shifts the loss at step 1 and the step after it
    assert abs(loss[1] - ref.loss[1]) > 1e-6 and _rel(W[2], ref.W[2]) > 1e-6


def test_variant_gd_loss_with_decay_adds_the_penalty(exp):
    s = exp.stages["down"]
    W, loss = cc.variant_train(
        *_inputs(exp, "down"), s.T, s.steps, cc.Convention(loss_with_decay=True)
    )[:2]
    penalty = 0.5 * s.weight_decay * np.sum(s.W**2, axis=(1, 2, 3))  # at the snapshots
    assert np.allclose(loss[s.steps], s.loss[s.steps] + penalty, rtol=1e-12, atol=0)
    assert _rel(W, s.W) <= 1e-12


def test_variant_gd_relu_prime_at_zero_by_hand():
    # W0 = 0: every pre-activation is 0, f = 0 and l'(0) = -1/2; with sigma'(0) = c
    # the first step is w_{j,r} = eta c/(2 n m) j sum_i y_i sum_p x_i^(p) (docs/model.md §3.4)
    rng = np.random.default_rng(3)
    n, P, d, m, eta = 4, 2, 5, 2, 0.3
    X = rng.standard_normal((n, P, d))
    y = np.array([1.0, -1.0, -1.0, 1.0])
    W0 = np.zeros((2, m, d))
    T = np.ones((2, m), bool)
    for c in (0.0, 0.5, 1.0):
        W, loss, zeros = cc.variant_train(
            W0, X, y, eta, 0.0, T, 1, [0, 1], cc.Convention(relu_prime_zero=c)
        )[:3]
        by_hand = eta * c / (2 * n * m) * np.einsum("i,ipd->d", y, X)
        assert np.allclose(W[1, 0], by_hand, rtol=1e-13, atol=1e-15)
        assert np.allclose(W[1, 1], -by_hand, rtol=1e-13, atol=1e-15)
        assert loss[0] == pytest.approx(np.log(2.0), rel=1e-15)
        assert zeros >= 2 * m * n * P


def test_variant_gd_filter_sum_and_patch_mean_equal_refimpl_rescaled(exp):
    # with both, F_j = (1/P) sum_r sum_p sigma(.) = (1/m) sum_r sum_p sigma(<c w, x>), c = m/P:
    # the reference on V = c W with step eta c^2 and decay lambda / c^2
    s = exp.stages["down"]
    m, P = s.W0.shape[1], s.task.X.shape[1]
    c = m / P
    W, loss = cc.variant_train(
        *_inputs(exp, "down"), s.T, s.steps, cc.Convention(filter_sum=True, patch_mean=True)
    )[:2]
    ref = train_stage(
        c * s.W0,
        s.task,
        s.eta * c**2,
        s.T,
        weight_decay=s.weight_decay / c**2,
        trainable=s.trainable,
        snapshots=s.steps,
    )
    assert _rel(c * W, ref.W) <= 1e-10 and _rel(loss, ref.loss) <= 1e-10


@pytest.mark.parametrize("spec", ["reference", "bias", "filter_sum,patch_mean,bias"])
def test_variant_gradient_against_central_differences(spec):
    """The hand-written gradient of W and b under a combination of variants
    against central finite differences of its own loss, for random
    directions, away from ReLU's kink (autograd's test_util style)."""
    conv = cc.parse_convention(spec)
    rng = np.random.default_rng(11)
    n, P, m, d = 5, 2, 3, 7
    X = rng.standard_normal((n, P, d))
    y = rng.choice([-1.0, 1.0], n)
    Wf = rng.standard_normal((2 * m, d))
    b = 0.3 * rng.standard_normal(2 * m) if conv.bias else None
    Xf = X.reshape(n * P, d)
    pre = Wf @ Xf.T + (0 if b is None else b[:, None])
    assert np.abs(pre).min() > 1e-3  # the kink is far from the probed points
    loss, gW, gb, _, _ = variant_loss_gradient(Wf, b, Xf, y, n, P, conv)
    h = 1e-6
    for _ in range(5):
        DW = rng.standard_normal(Wf.shape)
        Db = None if b is None else rng.standard_normal(b.shape)

        def shift(s, DW=DW, Db=Db):
            """The loss at the point s along the direction (DW, Db)."""
            b_s = None if b is None else b + s * Db
            return variant_loss_gradient(Wf + s * DW, b_s, Xf, y, n, P, conv)[0]

        numeric = (shift(h) - shift(-h)) / (2 * h)
        exact = np.vdot(gW, DW) + (0.0 if b is None else np.vdot(gb, Db))
        assert numeric == pytest.approx(exact, rel=1e-6, abs=1e-9)


def test_variant_gd_bias_starts_from_b0_and_float32_is_float32(exp):
    s = exp.stages["up"]
    m = s.W0.shape[1]
    b0 = np.linspace(-0.1, 0.1, 2 * m).reshape(2, m)
    run = cc.variant_train(*_inputs(exp, "up"), 3, [0, 3], cc.Convention(bias=True), b0=b0)
    assert np.array_equal(run.b[0], b0) and not np.array_equal(run.b[1], b0)
    run32 = cc.variant_train(*_inputs(exp, "up"), 3, [0, 3], cc.Convention(dtype="float32"))
    assert np.array_equal(run32.W, run32.W.astype(np.float32))
    assert (
        0
        < _rel(
            run32.W[1],
            s.W[1] if s.steps[1] == 3 else cc.variant_train(*_inputs(exp, "up"), 3, [3]).W[0],
        )
        < 1e-5
    )
    assert run.logits.shape == (4,) and np.all(run.logits >= 0)
