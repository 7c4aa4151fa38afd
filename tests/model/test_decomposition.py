"""The signal-noise decomposition (docs/model.md §4): reconstruction of the
GD weights from the tracked recursions, independent recovery by projection,
and the invariants, on stages with inherited, frozen and weight-decayed
filters, in both layouts."""

import dataclasses
import functools

import numpy as np
import pytest
from strategies import tiny_config

from refimpl.decomposition import (
    invariants,
    noise_part,
    project,
    project_stage,
    projection_error,
    reconstruct,
    reconstruction_error,
    universal_knowledge,
)
from refimpl.transfer import run_experiment

VARIANTS = {
    "plain": dict(flip_down=0.4),
    "weight_decay": dict(weight_decay_up=0.01, weight_decay=0.03),
    "frozen": dict(freeze_inherited=True),
    "frozen_decayed_rescaled": dict(
        freeze_inherited=True, weight_decay=0.03, rescale_inherited=0.5
    ),
    "entry": dict(granularity="entry", alpha=0.5),
    "wider_down": dict(m_down=5, alpha=0.4),
}
LAYOUTS = ("joint", "split")
STAGES = ("up", "down", "scratch")


@functools.lru_cache(maxsize=None)
def experiment(layout, variant):
    return run_experiment(tiny_config(layout=layout, **VARIANTS[variant]))


def my_reconstruction(stage, k):
    """docs/model.md §4 written out filter by filter:
    w = s_t w^[0] + j sum_s gamma_s sig_s/|sig_s|^2 + sum_i (rho_bar + rho_under)_i xi_i/|xi_i|^2,
    s_t = (1 - eta lambda)^t for trainable filters and 1 for frozen ones."""
    t = stage.steps[k]
    task = stage.task
    _, m, d = stage.W0.shape
    out = np.empty((2, m, d))
    for jx, j in enumerate((1.0, -1.0)):
        for r in range(m):
            s_t = (1.0 - stage.eta * stage.weight_decay) ** t if stage.trainable[jx, r] else 1.0
            w = s_t * stage.W0[jx, r]
            for s, sig in enumerate(task.signals):
                w = w + j * stage.gamma[k, jx, r, s] * sig / (sig @ sig)
            for i, xi in enumerate(task.xi):
                w = w + (stage.rho_bar[k, jx, r, i] + stage.rho_under[k, jx, r, i]) * xi / (xi @ xi)
            out[jx, r] = w
    return out


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_reconstruction_within_1e10(layout, variant):
    exp = experiment(layout, variant)
    for name in STAGES:
        stage = exp.stages[name]
        # the coefficients are not trivially zero: the test has something to check
        assert stage.gamma.shape[-1] == (1 if layout == "joint" else 2)
        assert np.abs(stage.gamma[-1]).max() > 0.1 and stage.rho_bar[-1].max() > 0.1
        assert reconstruction_error(stage) < 1e-10, (name, reconstruction_error(stage))
        for k in range(len(stage.steps)):
            W = stage.W[k]
            err = np.abs(my_reconstruction(stage, k) - W).max() / np.abs(W).max()
            assert err < 1e-10, (name, k, err)


def test_the_down_stage_starts_from_inherited_and_frozen_weights():
    """The variants above really exercise inherited, frozen and rescaled filters."""
    exp = experiment("joint", "frozen_decayed_rescaled")
    down, up = exp.stages["down"], exp.stages["up"]
    inh = exp.inherited
    assert inh.sum() == 4 and np.array_equal(down.trainable, ~inh)
    assert np.array_equal(down.W0[inh], 0.5 * up.W_final[np.nonzero(inh)[0], exp.source[inh]])
    assert np.array_equal(down.W[-1][inh], down.W0[inh])  # frozen
    assert not np.array_equal(down.W[-1][~inh], down.W0[~inh])  # trained
    assert down.weight_decay == 0.03


def test_reconstruction_error_detects_a_wrong_coefficient():
    stage = experiment("joint", "plain").stages["down"]
    assert reconstruction_error(stage) < 1e-10
    for name in ("gamma", "rho_bar", "rho_under"):
        bad = getattr(stage, name).copy()
        idx = np.unravel_index(np.argmax(np.abs(bad[-1])), bad[-1].shape)
        bad[-1][idx] *= 1.001
        broken = dataclasses.replace(stage, **{name: bad})
        assert reconstruction_error(broken) > 1e-6, name
        assert projection_error(broken) > 1e-6, name
    # a wrong scale s_t (weight decay ignored) is seen too
    decayed = experiment("joint", "weight_decay").stages["down"]
    assert reconstruction_error(dataclasses.replace(decayed, weight_decay=0.0)) > 1e-6


def test_reconstruct_matches_the_filter_by_filter_formula():
    stage = experiment("split", "frozen").stages["down"]
    scales = np.stack([stage.scale(k) for k in range(len(stage.steps))])
    rec = reconstruct(
        stage.W0,
        scales,
        stage.task.signals,
        stage.task.xi,
        stage.gamma,
        stage.rho_bar,
        stage.rho_under,
    )
    for k in range(len(stage.steps)):
        np.testing.assert_allclose(rec[k], my_reconstruction(stage, k), rtol=0, atol=1e-14)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_projection_recovers_the_recursions(layout, variant):
    exp = experiment(layout, variant)
    for name in STAGES:
        stage = exp.stages[name]
        gamma, rho_bar, rho_under = project_stage(stage)
        for key, rec in (("gamma", gamma), ("rho_bar", rho_bar), ("rho_under", rho_under)):
            tracked = getattr(stage, key)
            assert rec.shape == tracked.shape
            err = np.abs(rec - tracked).max() / np.abs(tracked).max()
            assert err < 1e-9, (name, key, err)
        assert projection_error(stage) < 1e-9


def test_project_single_snapshot_by_least_squares():
    """project() on one snapshot against an independent least-squares solve."""
    stage = experiment("joint", "weight_decay").stages["scratch"]
    task = stage.task
    basis = np.concatenate(
        [
            task.signals / np.sum(task.signals**2, 1)[:, None],
            task.xi / np.sum(task.xi**2, 1)[:, None],
        ]
    )
    R = stage.W[-1] - stage.scale()[..., None] * stage.W0
    coef, *_ = np.linalg.lstsq(basis.T, R.reshape(-1, R.shape[-1]).T, rcond=None)
    coef = coef.T.reshape(2, -1, basis.shape[0])
    gamma, rho_bar, rho_under = project(
        stage.W[-1], stage.W0, stage.scale(), task.signals, task.xi, task.y
    )
    np.testing.assert_allclose(
        gamma[..., 0], np.array([1.0, -1.0])[:, None] * coef[..., 0], rtol=1e-9
    )
    np.testing.assert_allclose(rho_bar + rho_under, coef[..., 1:], rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------
# invariants


@pytest.mark.parametrize("layout", LAYOUTS)
def test_invariants_hold_without_weight_decay(layout):
    exp = experiment(layout, "plain")
    for name in STAGES:
        stage = exp.stages[name]
        report = invariants(stage)
        clean = bool(np.all(stage.task.y == stage.task.y_clean))
        for key in (
            "rho_bar >= 0",
            "rho_bar nondecreasing",
            "rho_under <= 0",
            "rho_under nonincreasing",
        ):
            assert report[key] == {"applies": True, "holds": True}, (name, key)
        assert report["gamma nondecreasing"]["applies"] == clean
        if clean:
            assert report["gamma nondecreasing"]["holds"] is True
    # the upstream task has p = 0: the gamma check applies there
    assert invariants(exp.stages["up"])["gamma nondecreasing"] == {"applies": True, "holds": True}
    # downstream labels were flipped (p = 0.4): it does not apply there
    assert not np.all(exp.stages["down"].task.y == exp.stages["down"].task.y_clean)


def test_invariants_directly_on_the_arrays():
    """The same facts checked on the arrays, not through invariants()."""
    stage = experiment("split", "frozen").stages["down"]
    assert np.all(stage.rho_bar >= 0) and np.all(np.diff(stage.rho_bar, axis=0) >= 0)
    assert np.all(stage.rho_under <= 0) and np.all(np.diff(stage.rho_under, axis=0) <= 0)
    up = experiment("split", "frozen").stages["up"]
    assert np.all(np.diff(up.gamma, axis=0) >= 0)


def test_invariants_do_not_apply_with_weight_decay():
    exp = experiment("joint", "weight_decay")
    for name in STAGES:
        for key, value in invariants(exp.stages[name]).items():
            assert value == {"applies": False, "holds": None}, (name, key)


def test_invariants_report_a_broken_coefficient():
    stage = experiment("joint", "plain").stages["up"]
    assert all(v["holds"] for v in invariants(stage).values())

    def broken(name, change):
        arr = getattr(stage, name).copy()
        change(arr)
        return invariants(dataclasses.replace(stage, **{name: arr}))

    def flip_largest(arr):
        idx = np.unravel_index(np.argmax(np.abs(arr[-1])), arr[-1].shape)
        arr[-1][idx] = -arr[-1][idx]

    rep = broken("rho_bar", flip_largest)
    assert rep["rho_bar >= 0"]["holds"] is False
    assert rep["rho_bar nondecreasing"]["holds"] is False
    rep = broken("rho_under", flip_largest)
    assert rep["rho_under <= 0"]["holds"] is False
    assert rep["rho_under nonincreasing"]["holds"] is False
    rep = broken("gamma", flip_largest)
    assert rep["gamma nondecreasing"]["holds"] is False

    def shrink_middle(arr):  # positive everywhere, but not monotone
        arr[2] = 0.5 * arr[1]

    rep = broken("rho_bar", shrink_middle)
    assert rep["rho_bar >= 0"]["holds"] is True
    assert rep["rho_bar nondecreasing"]["holds"] is False


# ---------------------------------------------------------------------------
# diagnostics that follow from xi being orthogonal to u


@pytest.mark.parametrize("layout", LAYOUTS)
def test_universal_knowledge_follows_gamma(layout):
    """K = j<w, u> = s_t K(w^[0]) + gamma_u-part: the noise never touches u.
    joint: gamma |u|^2/|mu|^2 (mu = u + v, v orthogonal to u); split: gamma_u."""
    exp = experiment(layout, "weight_decay")
    u = exp.u
    for name in STAGES:
        stage = exp.stages[name]
        mu = stage.task.signals[0]
        gain = (
            stage.gamma[-1][..., 0] * (u @ u) / (mu @ mu)
            if layout == "joint"
            else stage.gamma[-1][..., 0]
        )
        expected = stage.scale() * universal_knowledge(stage.W0, u) + gain
        got = universal_knowledge(stage.W_final, u)
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
        assert np.abs(noise_part(stage) @ u).max() < 1e-12


def test_universal_knowledge_by_hand():
    u = np.array([2.0, 0.0, 0.0])
    W = np.array([[[1.0, 5.0, 0.0], [-1.0, 0.0, 3.0]], [[0.5, 1.0, 1.0], [0.0, 2.0, 0.0]]])
    assert np.array_equal(universal_knowledge(W, u), [[2.0, -2.0], [-1.0, 0.0]])


# ---------------------------------------------------------------------------
# stages without coefficients (track=False)


def test_untracked_stage_is_refused_by_every_coefficient_function():
    from refimpl.decomposition import UntrackedStageError
    from refimpl.errors import RefimplError
    from refimpl.train import train_stage

    stage = experiment("joint", "plain").stages["up"]
    bare = train_stage(stage.W0, stage.task, stage.eta, 5, track=False)
    assert bare.gamma is None and bare.rho_bar is None and bare.rho_under is None
    for fn in (reconstruction_error, projection_error, invariants, noise_part):
        with pytest.raises(UntrackedStageError, match="track=False: no coefficients"):
            fn(bare)
    assert issubclass(UntrackedStageError, RefimplError) and issubclass(
        UntrackedStageError, ValueError
    )
    # projection needs only the weights: it works, and agrees with a tracked run
    tracked = train_stage(stage.W0, stage.task, stage.eta, 5)
    for got, want in zip(
        project_stage(bare), (tracked.gamma, tracked.rho_bar, tracked.rho_under), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_projection_error_of_a_stage_that_learned_nothing_is_rounding():
    """Positive patches and negative filters: every pre-activation is < 0, no
    coefficient moves, W_t = s_t W0 up to rounding (weight decay), and the
    projection error reports rounding rather than 0/0."""
    from refimpl.data import Task
    from refimpl.train import train_stage

    rng = np.random.default_rng(0)
    n, d = 6, 20
    mu = np.abs(rng.standard_normal(d))
    xi = np.abs(rng.standard_normal((n, d)))
    ones = np.ones(n)
    task = Task(
        X=np.stack([np.tile(mu, (n, 1)), xi], axis=1), y=ones, y_clean=ones, xi=xi, signals=mu[None]
    )
    W0 = -0.01 * np.abs(rng.standard_normal((2, 3, d)))
    stage = train_stage(W0, task, 0.5, 20, weight_decay=0.01)
    for name in ("gamma", "rho_bar", "rho_under"):
        assert np.all(getattr(stage, name) == 0.0)
    assert projection_error(stage) < 1e-12
