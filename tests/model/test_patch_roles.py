"""Coefficient tracking for any patch order (docs/model.md §2.4, §4, §9.3):
roles derived or given per input, the tracked coefficients of permuted data
(reconstruction, equality with the unpermuted data, the numpy twin), and the
refusal of inputs whose roles cannot be determined or do not fit."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import permute_patches, permuted_problems, seeds, structured_task

from refimpl import naive
from refimpl.data import NOISE, Task, patch_roles, role_positions, sample_task, signal_vectors
from refimpl.decomposition import (
    DependentBasisError,
    project,
    project_stage,
    projection_error,
    reconstruction_error,
)
from refimpl.errors import PatchRoleError, RefimplError
from refimpl.train import train_stage

ENGINES = ("weight", "gram")
COEFFICIENTS = ("gamma", "rho_bar", "rho_under")


def rel_err(a, b):
    """max|a - b| / max|b| (0 when both vanish)."""
    scale = np.abs(b).max(initial=0.0)
    diff = np.abs(a - b).max(initial=0.0)
    return diff / scale if scale > 0 else diff


def fit(p, task, engine, **kw):
    return train_stage(
        p.W0,
        task,
        p.eta,
        p.steps,
        weight_decay=p.weight_decay,
        trainable=p.trainable,
        engine=engine,
        **kw,
    )


def joint_task(seed=0, n=6, d=12, flip=0.0):
    rng = np.random.default_rng(seed)
    u, v, _ = signal_vectors(d, 2.0, 1.0, 1.0)
    return sample_task(rng, n, u, v, 1.0, flip, "joint")


def split_task(seed=0, n=6, d=12, flip=0.0):
    rng = np.random.default_rng(seed)
    u, v, _ = signal_vectors(d, 2.0, 1.0, 1.0)
    return sample_task(rng, n, u, v, 1.0, flip, "split")


def with_X(task, X, **changes):
    return dataclasses.replace(task, X=np.ascontiguousarray(X), **changes)


# ---------------------------------------------------------------------------
# tracking on permuted data


@pytest.mark.parametrize("engine", ENGINES)
@given(p=permuted_problems())
def test_permuted_patches_reconstruct_and_equal_the_unpermuted_run(engine, p):
    """For every drawn per-input permutation, both layouts, weight decay and
    frozen filters: the tracked coefficients reconstruct W to 1e-10, and equal
    those of the same data in refimpl's order (f sums over patches, so GD is
    the same) to rounding."""
    assert np.array_equal(p.permuted.roles(), p.roles)
    permuted = fit(p, p.permuted, engine, snapshots=5)
    ordered = fit(p, p.task, engine, snapshots=5)
    assert reconstruction_error(permuted) <= 1e-10
    assert rel_err(permuted.W, ordered.W) <= 1e-12
    np.testing.assert_allclose(permuted.loss, ordered.loss, rtol=1e-12, atol=0)
    for name in COEFFICIENTS:
        assert rel_err(getattr(permuted, name), getattr(ordered, name)) <= 1e-11, name


@pytest.mark.parametrize("engine", ENGINES)
@given(p=permuted_problems(max_steps=5))
def test_permuted_patches_match_the_twin_step_by_step(engine, p):
    """The kernels (both engines) against naive.gd_step, which picks the
    patch of each role by the role array, on permuted data."""
    stage = fit(p, p.permuted, engine, snapshots=np.arange(p.steps + 1))
    m, S, n = p.W0.shape[1], p.task.signals.shape[0], p.task.n
    W, gamma = p.W0.copy(), np.zeros((2, m, S))
    rho_bar, rho_under = np.zeros((2, m, n)), np.zeros((2, m, n))
    for t in range(p.steps):
        value, W, gamma, rho_bar, rho_under = naive.gd_step(
            W,
            p.permuted.X,
            p.permuted.y,
            p.permuted.y_clean,
            p.permuted.signals,
            p.permuted.xi,
            p.roles,
            p.trainable,
            p.eta,
            p.weight_decay,
            gamma,
            rho_bar,
            rho_under,
        )
        assert value == pytest.approx(stage.loss[t], rel=1e-12)
        for got, want in (
            (stage.W[t + 1], W),
            (stage.gamma[t + 1], gamma),
            (stage.rho_bar[t + 1], rho_bar),
            (stage.rho_under[t + 1], rho_under),
        ):
            assert rel_err(got, want) <= 1e-11


@given(p=permuted_problems(max_steps=1), engine=st.sampled_from(ENGINES))
def test_given_roles_are_used_and_checked(p, engine):
    """Task.patch_role given: the same stage as derived roles; the roles of one
    input swapped (signal <-> noise): refused, naming that input."""
    given_roles = dataclasses.replace(p.permuted, patch_role=p.roles.copy())
    a = fit(p, given_roles, engine)
    b = fit(p, p.permuted, engine)
    for name in ("W",) + COEFFICIENTS:
        assert np.array_equal(getattr(a, name), getattr(b, name))
    bad = p.roles.copy()
    i = p.task.n - 1
    bad[i] = bad[i][::-1]  # the first and last roles swap
    with pytest.raises(PatchRoleError, match=f"input {i}:"):
        fit(p, dataclasses.replace(p.permuted, patch_role=bad), engine)


@given(p=permuted_problems(max_steps=1), data=st.data())
def test_an_undeterminable_input_is_refused_by_name(p, data):
    """One drawn input corrupted in a drawn way: a signal patch that holds no
    signal any more, or a noise patch that agrees with a signal patch to
    rounding only (ambiguous). Roles and training refuse it, naming it and
    only it."""
    task = p.permuted
    n = task.n
    i = data.draw(st.integers(0, n - 1))
    S = task.signals.shape[0]
    s = data.draw(st.integers(0, S - 1))
    p_s, q = p.roles[i].tolist().index(s), p.roles[i].tolist().index(NOISE)
    X, xi = task.X.copy(), task.xi.copy()
    how = data.draw(st.sampled_from(("no signal", "ambiguous")))
    if how == "no signal" or not np.any(X[i, p_s] != 0):
        X[i, p_s] = 1.5 * X[i, p_s] + 1.0
        expected = f"input {i}: no patch equals"
    else:
        X[i, q] = X[i, p_s] * (1 + 1e-14) + 1e-300
        xi[i] = X[i, q]
        expected = f"input {i}: patches .* differ but both equal"
    bad = with_X(task, X, xi=xi)
    with pytest.raises(PatchRoleError, match=f"for 1 of {n} inputs: {expected}"):
        bad.roles()
    with pytest.raises(PatchRoleError, match=f"input {i}:"):
        fit(p, bad, "weight")
    # the right roles, given, settle the ambiguous case (the data hold them
    # to rounding); a patch that holds no signal stays refused
    given_roles = dataclasses.replace(bad, patch_role=p.roles)
    if how == "ambiguous" and "differ" in expected:
        assert np.array_equal(given_roles.roles(), p.roles)
    else:
        with pytest.raises(
            PatchRoleError,
            match=f"patch_role does not fit the data for 1 of "
            f"{n} inputs: input {i}: patch {p_s} does not",
        ):
            given_roles.roles()


# ---------------------------------------------------------------------------
# deriving the roles


def test_roles_of_refimpl_data_and_of_a_permutation_by_hand():
    task = split_task(n=4)
    assert np.array_equal(task.roles(), np.tile([0, 1, NOISE], (4, 1)))
    permuted, roles = permute_patches(task, [[2, 0, 1], [0, 1, 2], [1, 2, 0], [2, 1, 0]])
    assert np.array_equal(roles, [[NOISE, 0, 1], [0, 1, NOISE], [1, NOISE, 0], [NOISE, 1, 0]])
    assert np.array_equal(permuted.roles(), roles)
    signal_patch, noise_patch = role_positions(roles, 2)
    assert np.array_equal(signal_patch, [[1, 2], [0, 1], [2, 0], [2, 1]])
    assert np.array_equal(noise_patch, [0, 2, 1, 0])


def test_roles_to_rounding_and_the_noise_check():
    """A signal patch off by 1e-13 relative still holds its signal; off by
    1e-9 it does not, and the input is named; xi must equal the noise patch."""
    task = joint_task(n=5)
    X = task.X.copy()
    X[1, 0] *= 1 + 1e-13
    assert np.array_equal(with_X(task, X).roles(), np.tile([0, NOISE], (5, 1)))
    X[3, 0] *= 1 + 1e-9
    with pytest.raises(PatchRoleError, match=r"for 1 of 5 inputs: input 3: no patch equals"):
        with_X(task, X).roles()
    xi = task.xi.copy()
    xi[2, 4] += 1e-3
    with pytest.raises(
        PatchRoleError, match=r"input 2: its noise patch 1 .* does not equal xi\[2\]"
    ):
        dataclasses.replace(task, xi=xi).roles()


def test_ambiguous_inputs_are_refused_and_named():
    """Inputs 2 and 4: the noise patch agrees with the signal patch to rounding
    without being the same bits, so which is which cannot be told."""
    task = joint_task(n=6)
    X = task.X.copy()
    xi = task.xi.copy()
    for i in (2, 4):
        X[i, 1] = X[i, 0] * (1 + 1e-14)
        xi[i] = X[i, 1]
    bad = with_X(task, X, xi=xi)
    with pytest.raises(
        PatchRoleError,
        match=r"for 2 of 6 inputs: input 2: patches 0 and 1 "
        r"differ but both equal .*; input 4: ",
    ):
        bad.roles()
    with pytest.raises(PatchRoleError, match="input 2"):
        train_stage(0.1 * np.ones((2, 1, 12)), bad, 0.5, 3)
    # the given roles settle it
    given = dataclasses.replace(bad, patch_role=np.tile([0, NOISE], (6, 1)))
    assert np.array_equal(given.roles(), given.patch_role)
    assert reconstruction_error(train_stage(0.1 * np.ones((2, 1, 12)), given, 0.5, 3)) < 1e-12


def test_identical_patches_are_interchangeable():
    """A noise patch equal bit for bit to the signal patch (and two equal
    signals in the split layout) can take either role: nothing changes."""
    task = split_task(n=4, d=10)
    signals = np.stack([task.signals[0], task.signals[0]])  # u twice
    X = task.X.copy()
    X[:, 1] = X[:, 0]
    xi = task.xi.copy()
    X[2, 2] = X[2, 0]
    xi[2] = X[2, 0]
    same = with_X(task, X, xi=xi, signals=signals)
    roles = same.roles()
    assert np.array_equal(roles[2], [0, 1, NOISE])
    stage = train_stage(0.1 * np.random.default_rng(0).standard_normal((2, 2, 10)), same, 0.5, 20)
    assert reconstruction_error(stage) < 1e-12


def test_many_bad_inputs_are_listed_ten_then_counted():
    task = joint_task(n=15)
    X = task.X.copy()
    X[:, 0] *= 1.5  # no input holds yhat * mu any more
    with pytest.raises(PatchRoleError) as info:
        with_X(task, X).roles()
    msg = str(info.value)
    assert "for 15 of 15 inputs" in msg and "input 9:" in msg and "input 10:" not in msg
    assert msg.endswith("and 5 more; give Task.patch_role to set them")
    assert "\n" not in msg


def test_a_wrong_clean_label_is_pointed_at():
    task = joint_task(n=4)
    y_clean = task.y_clean.copy()
    y_clean[1] = -y_clean[1]
    with pytest.raises(PatchRoleError, match=r"input 1: .*equals -yhat\*signals\[0\]: is y_clean"):
        dataclasses.replace(task, y_clean=y_clean, y=y_clean).roles()


@pytest.mark.parametrize(
    "roles, match",
    [
        (np.tile([0, NOISE], (4, 1)).astype(float), "integer array"),
        (np.tile([0, NOISE, 0], (4, 1)), "shape"),
        (
            np.array([[0, NOISE], [0, 0], [NOISE, 0], [0, NOISE]]),
            r"for 1 of 4 inputs: input 1: roles \[0, 0\] are not one noise patch",
        ),
        (np.array([[0, NOISE], [0, NOISE], [0, NOISE], [0, 5]]), "input 3: roles"),
    ],
)
def test_malformed_given_roles_are_refused(roles, match):
    task = joint_task(n=4)
    permuted, _ = permute_patches(task, [[0, 1], [0, 1], [1, 0], [0, 1]])
    with pytest.raises(PatchRoleError, match=match):
        dataclasses.replace(permuted, patch_role=roles).roles()


def test_layout_without_one_noise_patch_is_refused():
    task = joint_task(n=3)
    X = np.concatenate([task.X, task.X[:, 1:]], axis=1)  # P = 3, S = 1
    with pytest.raises(PatchRoleError, match=r"P = S \+ 1"):
        patch_roles(X, task.y_clean, task.signals, xi=task.xi)
    assert issubclass(PatchRoleError, RefimplError) and issubclass(PatchRoleError, ValueError)


def test_zero_signal_is_held_by_a_zero_patch_only():
    """v_down_norm = 0 (split layout): the zero patch holds the zero signal."""
    rng = np.random.default_rng(1)
    u, v, _ = signal_vectors(10, 2.0, 0.0, 0.0)
    task = sample_task(rng, 5, u, v, 1.0, 0.0, "split")
    permuted, roles = permute_patches(task, [rng.permutation(3) for _ in range(5)])
    assert np.array_equal(permuted.roles(), roles)


# ---------------------------------------------------------------------------
# noise not orthogonal to the signals (docs/model.md §4.2, §9.3)


@pytest.mark.parametrize("engine", ENGINES)
@given(seed=seeds, layout=st.sampled_from(("joint", "split")))
def test_nonorthogonal_noise_coefficients_mean_the_expansion(engine, seed, layout):
    """Generic signals and noise (no orthogonality): the reconstruction is
    exact, projection on the full basis recovers the tracked coefficients, and
    the inner-product reading j<w - s_t w0, sig> is NOT gamma (what the
    decomposition docstring says)."""
    rng = np.random.default_rng(seed)
    S = 1 if layout == "joint" else 2
    task = structured_task(rng, 6, S, 14, flip=0.2)
    permuted, _ = permute_patches(task, [rng.permutation(S + 1) for _ in range(6)])
    W0 = 0.1 * rng.standard_normal((2, 2, 14))
    stage = train_stage(W0, permuted, 0.5, 30, weight_decay=0.01, engine=engine)
    assert reconstruction_error(stage) < 1e-11
    assert projection_error(stage) < 1e-8
    R = stage.W[-1] - stage.scale()[..., None] * W0
    inner = np.array([1.0, -1.0])[:, None, None] * (R @ task.signals.T)
    assert rel_err(inner, stage.gamma[-1]) > 1e-3


def test_projection_refuses_a_dependent_basis():
    rng = np.random.default_rng(0)
    task = structured_task(rng, 6, 1, 5)  # n + S = 7 > d = 5
    stage = train_stage(0.1 * rng.standard_normal((2, 1, 5)), task, 0.5, 10)
    assert reconstruction_error(stage) < 1e-12  # the bookkeeping holds anyway
    with pytest.raises(DependentBasisError, match="not independent"):
        project_stage(stage)
    # independent in count, dependent in fact: xi_5 = xi_0 + xi_1
    task = structured_task(rng, 6, 1, 12)
    xi = task.xi.copy()
    xi[5] = xi[0] + xi[1]
    X = task.X.copy()
    X[5, 1] = xi[5]
    with pytest.raises(DependentBasisError, match="condition number"):
        project(
            np.zeros((2, 1, 12)), np.zeros((2, 1, 12)), np.ones((2, 1)), task.signals, xi, task.y
        )
    assert issubclass(DependentBasisError, RefimplError)


def test_kou_style_random_swaps():
    """Kou et al.'s generator: x = [yhat mu, xi] or [xi, yhat mu] at random."""
    rng = np.random.default_rng(3)
    n, d = 20, 60
    mu = np.zeros(d)
    mu[0] = 2.0
    y_clean = rng.choice([1.0, -1.0], n)
    xi = rng.standard_normal((n, d))
    xi[:, 0] = 0.0
    swap = rng.random(n) < 0.5
    first = np.where(swap[:, None], xi, y_clean[:, None] * mu)
    second = np.where(swap[:, None], y_clean[:, None] * mu, xi)
    task = Task(
        X=np.stack([first, second], axis=1), y=y_clean, y_clean=y_clean, xi=xi, signals=mu[None]
    )
    assert np.array_equal(task.roles()[:, 0], np.where(swap, NOISE, 0))
    W0 = 0.01 * rng.standard_normal((2, 3, d))
    ordered = Task(
        X=np.stack([y_clean[:, None] * mu, xi], axis=1),
        y=y_clean,
        y_clean=y_clean,
        xi=xi,
        signals=mu[None],
    )
    for engine in ENGINES:
        a = train_stage(W0, task, 1.0, 200, engine=engine)
        b = train_stage(W0, ordered, 1.0, 200, engine=engine)
        assert reconstruction_error(a) < 1e-12 and projection_error(a) < 1e-9
        for name in COEFFICIENTS:
            assert rel_err(getattr(a, name), getattr(b, name)) < 1e-12
