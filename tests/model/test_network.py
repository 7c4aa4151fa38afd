"""The network, its loss and hand-written gradient (docs/model.md §3):
finite differences, the ReLU'(0) = 0 convention, numba kernels against their
numpy twins, and the stability of the logistic loss for huge margins."""

import math
import warnings
from decimal import Decimal, localcontext

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import dyadic_problems, gaussian_problems, margin_problems, seeds

from refimpl import naive, network


def full_loss(W, X, y, weight_decay):
    """L_S(W) = (1/n) sum_i l(y_i f) + (lambda/2)|W|^2 (docs/model.md §3)."""
    return network.loss(W, X, y) + 0.5 * weight_decay * float(np.sum(W * W))


def assert_close(actual, expected, rtol, scale=None):
    """|actual - expected| <= rtol * scale elementwise; scale defaults to
    max|expected| (a norm-relative bound)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    if scale is None:
        scale = float(np.abs(expected).max(initial=0.0))
    scale = max(scale, 1e-300)
    err = float(np.abs(actual - expected).max(initial=0.0))
    assert err <= rtol * scale, f"max error {err:.3e} > {rtol:.0e} * {scale:.3e}"


# ---------------------------------------------------------------------------
# gradient against central finite differences


@given(problem=margin_problems(), weight_decay=st.sampled_from((0.0, 0.1, 1.5)), seed=seeds)
def test_gradient_matches_central_differences(problem, weight_decay, seed):
    W, X, y = problem.W, problem.X, problem.y
    pre = np.einsum("jrd,ipd->jrip", W, X)
    assert np.abs(pre).min() >= problem.delta * (1 - 1e-9)  # the construction holds
    G = network.gradient(W, X, y, weight_decay)
    rng = np.random.default_rng(seed)
    x_norm = np.linalg.norm(X, axis=-1).max()
    h = 1e-5
    for _ in range(3):
        V = rng.standard_normal(W.shape)
        V /= np.linalg.norm(V) * x_norm  # |<v_k, x>| <= 1: a step h moves no pre-activation by > h
        assert h * np.linalg.norm(V) * x_norm < problem.delta / 4  # so no kink is crossed
        fd = (
            full_loss(W + h * V, X, y, weight_decay) - full_loss(W - h * V, X, y, weight_decay)
        ) / (2 * h)
        analytic = float(np.sum(G * V))
        assert abs(fd - analytic) <= 1e-8 + 1e-6 * abs(analytic), (fd, analytic)


def test_gradient_finite_differences_detect_a_wrong_gradient():
    """The finite-difference check above is sharp enough to see a factor error
    of 1% in one filter's gradient (guards the tolerance)."""
    rng = np.random.default_rng(3)
    m, d, n = 2, 6, 4
    Q, _ = np.linalg.qr(rng.standard_normal((d, 2 * m)))
    W = Q.T.reshape(2, m, d)
    X = np.stack([Q @ rng.choice([-1.0, 1.0], 2 * m) for _ in range(n * 2)]).reshape(n, 2, d)
    y = np.array([1.0, -1.0, 1.0, -1.0])
    G = network.gradient(W, X, y)
    wrong = G.copy()
    wrong[0, 0] *= 1.01
    h = 1e-5
    V = G / np.linalg.norm(G)
    fd = (network.loss(W + h * V, X, y) - network.loss(W - h * V, X, y)) / (2 * h)
    assert abs(fd - np.sum(G * V)) <= 1e-8 + 1e-6 * abs(fd)
    assert abs(fd - np.sum(wrong * V)) > 1e-8 + 1e-6 * abs(fd)


# ---------------------------------------------------------------------------
# sigma'(0) = 0 on its own


def test_relu_prime_at_zero_contributes_nothing_hand_example():
    """d = 3, m = 1, n = 1, P = 2; w_{+1} = (1, 1, 0) sees x^(1) = (2, 0, 0)
    with pre-activation 2 and x^(2) = (1, -1, 5) with pre-activation exactly 0;
    w_{-1} = (0, 0, 0) sees 0 on both patches. With sigma'(0) = 0 only x^(1)
    enters: grad w_{+1} = l'(2) * y * j * x^(1), grad w_{-1} = 0."""
    W = np.array([[[1.0, 1.0, 0.0]], [[0.0, 0.0, 0.0]]])
    X = np.array([[[2.0, 0.0, 0.0], [1.0, -1.0, 5.0]]])
    y = np.array([1.0])
    assert network.forward(W, X)[0] == 2.0
    dl = -1.0 / (1.0 + math.exp(2.0))
    expected = np.array([[[2.0 * dl, 0.0, 0.0]], [[0.0, 0.0, 0.0]]])
    G = network.gradient(W, X, y)
    np.testing.assert_allclose(G, expected, rtol=1e-15, atol=0)
    assert np.array_equal(G[1], np.zeros((1, 3)))
    # the convention sigma'(0) = 1 would have added l' x^(2) to w_{+1}
    # and -l' x^(1), -l' x^(2) to w_{-1}: the result above rules it out
    np.testing.assert_allclose(naive.gradient(W, X, y), expected, rtol=1e-15, atol=0)


def test_relu_prime_at_zero_orthogonal_patch_changes_nothing():
    """A patch orthogonal to every filter (exact integer arithmetic) changes
    neither f nor the gradient."""
    W = np.array(
        [
            [[1.0, 2.0, 0.0, 0.0], [0.0, 1.0, -1.0, 0.0]],
            [[3.0, 0.0, 1.0, 0.0], [-1.0, 1.0, 1.0, 0.0]],
        ]
    )
    X = np.array([[[1.0, 1.0, 1.0, 0.0]], [[-2.0, 1.0, 0.0, 0.0]], [[0.0, 1.0, 2.0, 0.0]]])
    y = np.array([1.0, -1.0, -1.0])
    z = np.array([0.0, 0.0, 0.0, 7.0])  # <w, z> = 0 for every filter
    assert np.all(W @ z == 0)
    X_more = np.concatenate([X, np.broadcast_to(z, (3, 1, 4))], axis=1)
    assert np.array_equal(network.forward(W, X_more), network.forward(W, X))
    np.testing.assert_allclose(
        network.gradient(W, X_more, y), network.gradient(W, X, y), rtol=1e-15, atol=1e-300
    )
    assert np.all(network.gradient(W, X_more, y)[..., 3] == 0)  # z never enters


def gradient_scale(W, X, weight_decay):
    """A bound on the sum of the absolute terms of any gradient entry,
    (1/(nm)) sum_i |l'_i| sum_p |x| + lambda |w| <= P max|X| / m + lambda max|W|:
    the size against which the rounding of a (possibly cancelling) sum is measured."""
    return X.shape[1] * np.abs(X).max() / W.shape[1] + weight_decay * np.abs(W).max()


def reference_gradient(W, X, y, weight_decay):
    """docs/model.md §3 written with Python loops and the test 1(a > 0)."""
    _, m, _ = W.shape
    n, P, _ = X.shape
    J = (1.0, -1.0)
    pre = [
        [[[float(np.dot(W[j, r], X[i, p])) for p in range(P)] for i in range(n)] for r in range(m)]
        for j in range(2)
    ]
    f = [
        sum(J[j] * max(pre[j][r][i][p], 0.0) for j in range(2) for r in range(m) for p in range(P))
        / m
        for i in range(n)
    ]
    dl = [-1.0 / (1.0 + math.exp(y[i] * f[i])) for i in range(n)]
    G = weight_decay * W.copy()
    for j in range(2):
        for r in range(m):
            for i in range(n):
                for p in range(P):
                    if pre[j][r][i][p] > 0.0:
                        G[j, r] += dl[i] * J[j] * y[i] * X[i, p] / (n * m)
    return G


@given(problem=dyadic_problems(), weight_decay=st.sampled_from((0.0, 0.25)))
def test_gradient_with_exact_zero_preactivations(problem, weight_decay):
    """Dyadic inputs: every pre-activation is exact, many are exactly 0."""
    W, X, y = problem
    expected = reference_gradient(W, X, y, weight_decay)
    assert_close(
        network.gradient(W, X, y, weight_decay), expected, 1e-13, gradient_scale(W, X, weight_decay)
    )


# ---------------------------------------------------------------------------
# kernels against their numpy twins


def output_scale(W, X):
    """max(F_{+1}, F_{-1}) per input: the size against which f = F_{+1} - F_{-1}
    is rounded (f itself may cancel)."""
    F = np.maximum(np.einsum("jrd,ipd->jrip", W, X), 0).sum(axis=(1, 3)) / W.shape[1]
    return np.maximum(F.max(axis=0), 1e-300)


@given(problem=dyadic_problems())
def test_forward_matches_twin_on_dyadic_inputs(problem):
    W, X, _ = problem
    # the pre-activations and the sums over patches and filters are exact; only
    # the division by m (once in the kernel, per class in the twin) rounds
    err = np.abs(network.forward(W, X) - naive.forward(W, X))
    assert np.all(err <= 2.3e-16 * output_scale(W, X))


@given(problem=gaussian_problems())
def test_forward_matches_twin(problem):
    W, X, _ = problem
    err = np.abs(network.forward(W, X) - naive.forward(W, X))
    assert np.all(err <= 1e-14 * output_scale(W, X))


@given(problem=st.one_of(dyadic_problems(), gaussian_problems()))
def test_loss_matches_twin(problem):
    W, X, y = problem
    value = network.loss(W, X, y)
    assert isinstance(value, float)
    assert math.isclose(value, naive.loss(W, X, y), rel_tol=1e-13, abs_tol=1e-300)


@given(
    problem=st.one_of(dyadic_problems(), gaussian_problems()),
    weight_decay=st.sampled_from((0.0, 0.01, 0.5)),
)
def test_gradient_matches_twin(problem, weight_decay):
    W, X, y = problem
    value, G = network.loss_and_gradient(W, X, y, weight_decay)
    assert G.shape == W.shape
    assert_close(
        G, naive.gradient(W, X, y, weight_decay), 1e-13, gradient_scale(W, X, weight_decay)
    )
    # the reported loss is the data loss, without the weight-decay term
    assert math.isclose(value, naive.loss(W, X, y), rel_tol=1e-13, abs_tol=1e-300)
    assert_close(network.gradient(W, X, y, weight_decay), G, 0.0)


finite_floats = st.floats(allow_nan=False, allow_infinity=False)


@given(z=st.lists(finite_floats, min_size=1, max_size=20))
def test_logistic_kernels_match_twins(z):
    z = np.array(z)
    np.testing.assert_allclose(network.logistic_loss(z), naive.logistic_loss(z), rtol=1e-14, atol=0)
    np.testing.assert_allclose(
        network.logistic_dloss(z), naive.logistic_dloss(z), rtol=1e-14, atol=0
    )


def test_logistic_keeps_shape():
    z = np.arange(6.0).reshape(2, 3) - 3
    assert network.logistic_loss(z).shape == (2, 3)
    assert network.logistic_dloss(z).shape == (2, 3)


# ---------------------------------------------------------------------------
# stability for margins up to 1e300 (and beyond)


def _ln1p(e):
    """log(1 + e) for a Decimal 0 <= e <= 1; the series for tiny e, where
    1 + e would round to 1 even at 80 digits (truncation error < e^4)."""
    if e < Decimal("1e-30"):
        return e - e * e / 2 + e * e * e / 3
    return (1 + e).ln()


def exact_loss(z):
    """l(z) = log(1 + exp(-z)) in 80-digit decimal arithmetic (the identity
    l(z) = -z + log(1 + exp(z)) avoids exp overflow for z < 0)."""
    with localcontext() as ctx:
        ctx.prec = 80
        ctx.Emin, ctx.Emax = -999999999999999999, 999999999999999999
        Z = Decimal(float(z))
        if Z >= 0:
            return float(_ln1p((-Z).exp()))
        return float(-Z + _ln1p(Z.exp()))


def exact_dloss(z):
    """l'(z) = -1/(1 + exp(z)) in 80-digit decimal arithmetic."""
    with localcontext() as ctx:
        ctx.prec = 80
        ctx.Emin, ctx.Emax = -999999999999999999, 999999999999999999
        Z = Decimal(float(z))
        if Z >= 0:
            e = (-Z).exp()
            return float(-e / (1 + e))
        return float(-1 / (1 + Z.exp()))


EDGE = [
    0.0,
    -0.0,
    5e-324,
    -5e-324,
    1e-300,
    -1e-300,
    1e-8,
    -1e-8,
    1.0,
    -1.0,
    36.0,
    -36.0,
    40.0,
    -40.0,
    709.0,
    -709.0,
    710.0,
    -710.0,
    745.0,
    -745.0,
    800.0,
    -800.0,
    1e20,
    -1e20,
    1e200,
    -1e200,
    1e300,
    -1e300,
    1.7976931348623157e308,
    -1.7976931348623157e308,
]


def test_logistic_edge_values_exact_and_silent():
    z = np.array(EDGE)
    with np.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = network.logistic_loss(z)
        dloss = network.logistic_dloss(z)
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(dloss))
    expected_loss = np.array([exact_loss(v) for v in EDGE])
    expected_dloss = np.array([exact_dloss(v) for v in EDGE])
    # a few ulps, or a few of the smallest subnormals where the value underflows
    np.testing.assert_allclose(loss, expected_loss, rtol=4e-16, atol=1e-322)
    np.testing.assert_allclose(dloss, expected_dloss, rtol=4e-16, atol=1e-322)


def test_logistic_analytic_limits():
    with np.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        l_big, l_neg = network.logistic_loss(np.array([1e300, -1e300]))
        d_big, d_neg = network.logistic_dloss(np.array([1e300, -1e300]))
        l50, lm50 = network.logistic_loss(np.array([50.0, -50.0]))
        d50 = network.logistic_dloss(np.array([50.0]))[0]
        l0, d0 = (
            network.logistic_loss(np.array([0.0]))[0],
            network.logistic_dloss(np.array([0.0]))[0],
        )
    assert l_big == 0.0  # l(z) ~ exp(-z) underflows to 0
    assert l_neg == 1e300  # l(z) ~ -z
    assert d_neg == -1.0  # l'(-inf) = -1
    assert d_big == 0.0 and np.signbit(d_big)  # l'(+inf) = -0
    assert math.isclose(l50, math.exp(-50.0), rel_tol=1e-15)
    assert math.isclose(d50, -math.exp(-50.0), rel_tol=1e-15)
    assert lm50 == 50.0  # log1p(e^-50) is below half an ulp of 50
    assert math.isclose(l0, math.log(2.0), rel_tol=1e-16)
    assert d0 == -0.5


@settings(max_examples=60)
@given(z=st.floats(min_value=-1e300, max_value=1e300))
def test_logistic_matches_high_precision(z):
    arr = np.array([z])
    with np.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = network.logistic_loss(arr)[0]
        dloss = network.logistic_dloss(arr)[0]
    assert loss >= 0.0 and -1.0 <= dloss <= 0.0
    assert math.isclose(loss, exact_loss(z), rel_tol=4e-16, abs_tol=1e-322)
    assert math.isclose(dloss, exact_dloss(z), rel_tol=4e-16, abs_tol=1e-322)


def test_twin_logistic_silent_for_huge_margins():
    """The numpy twin warns about nothing under numpy's default settings and
    neither overflows nor divides by zero nor produces invalid values. (Only
    the underflow of exp(-|z|) to 0, which is the correctly rounded value, is
    left at numpy's default 'ignore'.)"""
    z = np.array(EDGE)
    with (
        np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("error")
        loss = naive.logistic_loss(z)
        dloss = naive.logistic_dloss(z)
    np.testing.assert_allclose(loss, [exact_loss(v) for v in EDGE], rtol=4e-16, atol=1e-322)
    np.testing.assert_allclose(dloss, [exact_dloss(v) for v in EDGE], rtol=4e-16, atol=1e-322)


def test_network_loss_and_gradient_at_margins_1e300():
    """f = 2^997 (about 1.3e300) on two inputs with labels +1 and -1: margins
    +-2^997 (powers of 2, so every product below is exact)."""
    W = np.array([[[2.0**500]], [[0.0]]])
    X = np.array([[[2.0**497]], [[2.0**497]]])
    y = np.array([1.0, -1.0])
    with np.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        f = network.forward(W, X)
        value, G = network.loss_and_gradient(W, X, y, 0.0)
    assert np.array_equal(f, [2.0**997, 2.0**997])
    assert value == 0.5 * (0.0 + 2.0**997)
    # input 1 has l'(1e300) = -0 and adds nothing; input 2 has l'(-1e300) = -1 and
    # adds l'_i y_i j x / (n m) = (-1)(-1)(+1) 2^497 / 2 to w_{+1}; w_{-1} sees
    # pre-activations 0 only (sigma'(0) = 0)
    assert np.array_equal(G, np.array([[[2.0**496]], [[0.0]]]))


# ---------------------------------------------------------------------------
# input checking


def test_bad_inputs_are_refused():
    W = np.zeros((2, 1, 3))
    X = np.zeros((2, 2, 3))
    with pytest.raises(TypeError, match="float64"):
        network.forward(W.astype(np.float32), X)
    with pytest.raises(ValueError, match=r"\(2, m, d\)"):
        network.forward(np.zeros((3, 1, 3)), X)
    with pytest.raises(ValueError, match="X must have shape"):
        network.forward(W, np.zeros((2, 2, 4)))
    with pytest.raises(ValueError, match="y must"):
        network.gradient(W, X, np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="y must"):
        network.gradient(W, X, np.array([1.0]))
