"""Test error (docs/model.md §6): the 'sample' and 'reduced' estimators
against an exact value and against each other, the noisy error, ties."""

import math

import numpy as np
import pytest
from scipy import integrate, stats

from refimpl.data import sample_task, signal_vectors
from refimpl.evaluation import estimate_test_error as estimate_error
from refimpl.network import forward

N_TEST = 40000


def two_noise_directions_network(d, c, a):
    """m = 1: w_{+1} = c mu/|mu| + a e_3, w_{-1} = -c mu/|mu| + a e_4 with
    u = e_0, v = e_1 (so e_3, e_4 lie in the noise subspace)."""
    u, v, _ = signal_vectors(d, 1.0, 1.0, 1.0)
    mu = u + v
    W = np.zeros((2, 1, d))
    W[0, 0] = c * mu / np.linalg.norm(mu)
    W[1, 0] = -c * mu / np.linalg.norm(mu)
    W[0, 0, 3] = a
    W[1, 0, 4] = a
    return W, u, v


def exact_clean_error(t_over_s):
    """For the network above with z_3, z_4 iid N(0, s^2), s = a sigma_p, and
    t = c|mu|: both classes err iff relu(z_4) - relu(z_3) >= t, so
    P = P(z_4 >= t, z_3 <= 0) + P(z_3 > 0, z_4 - z_3 >= t)
      = Q(t/s)/2 + int_0^inf phi(b) Q(b + t/s) db."""
    tail = stats.norm.sf
    second, _ = integrate.quad(
        lambda b: stats.norm.pdf(b) * tail(b + t_over_s), 0, np.inf, epsabs=1e-13
    )
    return 0.5 * tail(t_over_s) + second


@pytest.mark.parametrize("estimator", ["sample", "reduced"])
def test_estimator_matches_exact_error(estimator):
    d, sigma_p, a = 12, 1.5, 1.0
    t_over_s = 0.5
    c = t_over_s * a * sigma_p / math.sqrt(2.0)  # t = c |mu|, |mu| = sqrt(2)
    W, u, v = two_noise_directions_network(d, c, a)
    exact = exact_clean_error(t_over_s)
    assert 0.15 < exact < 0.35
    r = estimate_error(W, u, v, sigma_p, 0.0, "joint", N_TEST, np.random.default_rng(1), estimator)
    assert r["estimator"] == estimator and r["n_test"] == N_TEST
    assert abs(r["clean_error"] - exact) < 4 * r["clean_error_se"], (r, exact)
    assert r["noisy_error"] == r["clean_error"]  # p = 0


def generic_network(d, m, seed, signal):
    rng = np.random.default_rng(seed)
    u, v, _ = signal_vectors(d, 1.0, 0.7, 1.0)
    W = 0.4 * rng.standard_normal((2, m, d))
    W[0] += signal * (u + v)
    W[1] -= 0.5 * signal * (u + v)
    return W, u, v


@pytest.mark.parametrize("layout", ["joint", "split"])
def test_sample_and_reduced_agree(layout):
    W, u, v = generic_network(d=30, m=3, seed=5, signal=0.8)
    sigma_p, flip = 1.0, 0.15
    s = estimate_error(W, u, v, sigma_p, flip, layout, N_TEST, np.random.default_rng(2), "sample")
    r = estimate_error(W, u, v, sigma_p, flip, layout, N_TEST, np.random.default_rng(3), "reduced")
    for e in (s, r):
        assert 0.1 < e["clean_error"] < 0.4, e  # well inside (0, 1/2)
    combined = math.hypot(s["clean_error_se"], r["clean_error_se"])
    assert abs(s["clean_error"] - r["clean_error"]) < 4 * combined, (s, r)
    # the sample estimator's SE is the binomial one; the reduced one, which
    # averages over both labels per draw, is not larger
    q = s["clean_error"]
    assert s["clean_error_se"] == pytest.approx(math.sqrt(q * (1 - q) / N_TEST), rel=1e-3)
    assert r["clean_error_se"] <= 1.05 * s["clean_error_se"]


def test_error_is_invariant_to_the_scale_of_W():
    """The sign of f is positively homogeneous in W: a huge W (whose Gram
    matrix would overflow) scores exactly like W itself on the same draws."""
    W, u, v = generic_network(d=20, m=2, seed=6, signal=0.4)
    for estimator in ("sample", "reduced"):
        ref = estimate_error(W, u, v, 1.0, 0.1, "joint", 3000, np.random.default_rng(4), estimator)
        big = estimate_error(
            W * 2.0**1000, u, v, 1.0, 0.1, "joint", 3000, np.random.default_rng(4), estimator
        )
        assert 0.05 < ref["clean_error"] < 0.5
        assert big == ref


def test_noisy_error_against_flipped_labels():
    """The noisy error p + (1 - 2p) clean agrees with the error rate against
    observed labels on a directly drawn test set with flips."""
    W, u, v = generic_network(d=20, m=2, seed=6, signal=0.4)
    flip = 0.3
    e = estimate_error(W, u, v, 1.0, flip, "joint", N_TEST, np.random.default_rng(5), "sample")
    task = sample_task(np.random.default_rng(6), N_TEST, u, v, 1.0, flip, "joint")
    wrong = (task.y * forward(W, task.X) <= 0).astype(float)
    direct, se = wrong.mean(), wrong.std(ddof=1) / math.sqrt(N_TEST)
    assert 0.3 < direct < 0.5
    assert abs(direct - e["noisy_error"]) < 4 * math.hypot(se, e["noisy_error_se"])


@pytest.mark.parametrize("estimator", ["sample", "reduced"])
def test_ties_are_errors(estimator):
    """W = 0 gives f = 0 everywhere: every point is a tie, hence an error."""
    u, v, _ = signal_vectors(8, 1.0, 1.0, 1.0)
    e = estimate_error(
        np.zeros((2, 2, 8)), u, v, 1.0, 0.1, "joint", 100, np.random.default_rng(0), estimator
    )
    assert e["clean_error"] == 1.0 and e["clean_error_se"] == 0.0
    assert e["noisy_error"] == pytest.approx(0.9)


@pytest.mark.parametrize("estimator", ["sample", "reduced"])
def test_perfect_network_has_zero_error(estimator):
    """Signal only, no weight in the noise subspace: never wrong."""
    u, v, _ = signal_vectors(8, 1.0, 1.0, 1.0)
    W = np.zeros((2, 1, 8))
    W[0, 0] = u + v
    W[1, 0] = -(u + v)
    e = estimate_error(W, u, v, 1.0, 0.0, "joint", 200, np.random.default_rng(0), estimator)
    assert e["clean_error"] == 0.0


def test_same_rng_same_numbers_and_bad_arguments():
    W, u, v = generic_network(d=20, m=2, seed=6, signal=0.4)
    a = estimate_error(W, u, v, 1.0, 0.1, "joint", 300, np.random.default_rng(9), "reduced")
    b = estimate_error(W, u, v, 1.0, 0.1, "joint", 300, np.random.default_rng(9), "reduced")
    assert a == b
    with pytest.raises(ValueError, match="estimator"):
        estimate_error(W, u, v, 1.0, 0.1, "joint", 300, np.random.default_rng(9), "exact")
    with pytest.raises(ValueError, match="n_test"):
        estimate_error(W, u, v, 1.0, 0.1, "joint", 1, np.random.default_rng(9), "sample")
