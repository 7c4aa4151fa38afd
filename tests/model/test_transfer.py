"""The transfer operator and the three-stage experiment (docs/model.md §5):
inherited counts, class identity, alpha = 0 equal to scratch bit for bit,
freezing, entry granularity, a different downstream width, common random
numbers and reproducibility from one seed."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import inherit_problems, seeds, tiny_config

from refimpl.train import train_stage
from refimpl.transfer import (
    STAGES,
    inherit,
    inherited_noise_energy,
    run_experiment,
    run_stages,
    stage_schedule,
    streams,
)

ARRAYS = ("W0", "W", "gamma", "rho_bar", "rho_under", "loss", "steps", "trainable")


def assert_same_stage(a, b):
    for name in ARRAYS:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    for name in ("X", "y", "y_clean", "xi", "signals"):
        assert np.array_equal(getattr(a.task, name), getattr(b.task, name)), name
    assert a.stopped == b.stopped


# ---------------------------------------------------------------------------
# the operator itself


@given(problem=inherit_problems(), rescale=st.sampled_from((1.0, 0.5, -2.0)))
def test_filter_inheritance_count_and_class_identity(problem, rescale):
    W_up, W_fresh, alpha, k, seed = problem
    m1, m2 = W_up.shape[1], W_fresh.shape[1]
    W0, inherited, source = inherit(
        W_up, W_fresh, alpha, np.random.default_rng(seed), "filter", rescale
    )
    assert W0.shape == W_fresh.shape and inherited.shape == (2, m2) and source.shape == (2, m2)
    assert inherited.dtype == bool
    # exactly round(alpha m_2) = k inherited filters in each class
    assert list(inherited.sum(axis=1)) == [k, k]
    assert np.array_equal(source >= 0, inherited)
    for jx in range(2):
        src = source[jx, inherited[jx]]
        assert len(set(src)) == k and np.all((0 <= src) & (src < m1))  # distinct upstream filters
        for r in np.nonzero(inherited[jx])[0]:
            # the inherited filter is an upstream filter of the same class, times rescale;
            # entry 0 (+-(100 + index)) identifies class and index among all 2 m_1 filters
            matches = [
                (jj, q)
                for jj in range(2)
                for q in range(m1)
                if np.array_equal(W0[jx, r], rescale * W_up[jj, q])
            ]
            assert matches == [(jx, source[jx, r])]
    # the other filters keep their fresh values exactly
    assert np.array_equal(W0[~inherited], W_fresh[~inherited])
    # inputs unchanged
    assert W0 is not W_fresh


@given(m1=st.integers(1, 8), m2=st.integers(1, 8), seed=seeds, data=st.data())
def test_inherited_count_is_alpha_m2_rounded(m1, m2, seed, data):
    """For any alpha (allowed: round(alpha m_2) <= m_1) the count per class is
    within 1/2 of alpha m_2."""
    hi = min(1.0, (m1 + 0.25) / m2)
    alpha = data.draw(st.floats(0.0, hi))
    rng = np.random.default_rng(seed)
    _, inherited, _ = inherit(
        rng.standard_normal((2, m1, 3)), np.zeros((2, m2, 3)), alpha, rng, "filter"
    )
    for count in inherited.sum(axis=1):
        assert abs(count - alpha * m2) <= 0.5
        # halves round up (docs/model.md §5.2: round(alpha m_2))
        assert count == math.floor(alpha * m2 + 0.5)


def test_too_many_inherited_filters_refused():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="cannot inherit"):
        inherit(np.ones((2, 2, 3)), np.zeros((2, 5, 3)), 0.8, rng, "filter")


def test_choice_of_filters_is_uniform():
    """Each upstream filter, and each downstream position, is picked with
    probability k/m: chi-square over 2000 draws (fixed seed)."""
    m, k, trials = 4, 2, 2000
    rng = np.random.default_rng(12345)
    W_up = np.arange(2 * m, dtype=float).reshape(2, m, 1)
    src_counts, dst_counts = np.zeros(m), np.zeros(m)
    for _ in range(trials):
        _, inherited, source = inherit(W_up, np.full((2, m, 1), -1.0), k / m, rng)
        src_counts += np.bincount(source[0][inherited[0]], minlength=m)
        dst_counts += inherited[0]
    expected = trials * k / m
    for counts in (src_counts, dst_counts):
        chi2 = np.sum((counts - expected) ** 2 / expected)
        assert chi2 < 16.3  # chi-square(3) 0.999 quantile


@given(seed=seeds, alpha=st.sampled_from((0.0, 0.3, 0.7, 1.0)), rescale=st.sampled_from((1.0, 2.0)))
def test_entry_granularity_mask(seed, alpha, rescale):
    rng = np.random.default_rng(seed)
    W_up = rng.standard_normal((2, 5, 40)) + 10.0  # never equal to a fresh entry
    W_fresh = rng.standard_normal((2, 5, 40))
    W0, inherited, source = inherit(W_up, W_fresh, alpha, rng, "entry", rescale)
    assert inherited.shape == (2, 5, 40) and inherited.dtype == bool
    assert np.array_equal(W0, np.where(inherited, rescale * W_up, W_fresh))
    assert np.array_equal(source, np.where(inherited.any(axis=2), np.arange(5)[None, :], -1))
    frac = inherited.mean()
    if alpha in (0.0, 1.0):
        assert frac == alpha
    else:  # Bernoulli(alpha) over 400 entries: 5 standard deviations
        assert abs(frac - alpha) < 5 * math.sqrt(alpha * (1 - alpha) / 400)


def test_entry_granularity_needs_equal_widths():
    with pytest.raises(ValueError, match="equal"):
        inherit(np.ones((2, 2, 3)), np.zeros((2, 3, 3)), 0.5, np.random.default_rng(0), "entry")


# ---------------------------------------------------------------------------
# the three-stage experiment


@pytest.mark.parametrize(
    "changes",
    [
        dict(),
        dict(weight_decay=0.05, layout="split"),
        dict(freeze_inherited=True, m_down=5),
        dict(granularity="entry"),
    ],
)
def test_alpha_zero_is_scratch_bit_for_bit(changes):
    exp = run_experiment(tiny_config(alpha=0.0, **changes))
    assert not exp.inherited.any() and np.all(exp.source == -1)
    assert_same_stage(exp.stages["down"], exp.stages["scratch"])
    assert exp.test_error("down") == exp.test_error("scratch")


@pytest.mark.parametrize(
    "changes", [dict(), dict(freeze_inherited=True, alpha=1 / 3), dict(granularity="entry")]
)
def test_run_stages_is_the_three_stage_experiment(changes):
    """run_stages with a recording fit: the stages in order, down from the
    inherited weights (frozen filters not trainable), scratch from W_fresh
    itself, every filter trainable; run_experiment is run_stages on the
    synthetic tasks (bit for bit)."""
    c = tiny_config(weight_decay=0.01, weight_decay_up=0.02, steps_up=12, steps_down=9, **changes)
    exp = run_experiment(c)
    calls = []

    def fit(stage, W0, task, trainable):
        calls.append((stage, W0, task, trainable))
        steps, weight_decay = stage_schedule(c, stage)
        return train_stage(
            W0,
            task,
            c.eta_of(stage),
            steps,
            weight_decay=weight_decay,
            trainable=trainable,
            snapshots=c.snapshots,
        )

    up, down = exp.stages["up"], exp.stages["down"]
    W_fresh = exp.stages["scratch"].W0
    kept = W_fresh.copy()
    run = run_stages(
        fit,
        up.task,
        down.task,
        up.W0,
        W_fresh,
        streams(c.seed)["transfer"],
        alpha=c.alpha,
        granularity=c.granularity,
        rescale=c.rescale_inherited,
        freeze_inherited=c.freeze_inherited,
    )
    assert [call[0] for call in calls] == list(STAGES) == list(run.stages)
    assert calls[0][2] is up.task and calls[1][2] is calls[2][2] is down.task
    assert calls[2][1] is W_fresh and np.array_equal(W_fresh, kept)  # not modified
    assert calls[0][3] is None and calls[2][3] is None
    if c.freeze_inherited:
        assert np.array_equal(calls[1][3], ~run.inherited)
    else:
        assert calls[1][3] is None
    assert np.array_equal(run.inherited, exp.inherited)
    assert np.array_equal(run.source, exp.source)
    for s in STAGES:
        assert_same_stage(run.stages[s], exp.stages[s])
    assert [stage_schedule(c, s) for s in STAGES] == [(12, 0.02), (9, 0.01), (9, 0.01)]


def test_alpha_one_frozen_keeps_upstream_weights():
    exp = run_experiment(tiny_config(alpha=1.0, freeze_inherited=True, weight_decay=0.05))
    up, down = exp.stages["up"], exp.stages["down"]
    assert exp.inherited.all() and not down.trainable.any()
    W_up = up.W_final
    for k in range(len(down.steps)):
        # every inherited filter equals its upstream filter at every snapshot
        assert np.array_equal(down.W[k], W_up[np.arange(2)[:, None], exp.source])
    assert sorted(exp.source[0]) == sorted(exp.source[1]) == [0, 1, 2]
    for name in ("gamma", "rho_bar", "rho_under"):
        assert np.all(getattr(down, name) == 0)
    # the loss stays that of the upstream network on the downstream data
    assert np.all(down.loss == down.loss[0])


def test_partial_freeze_with_wider_downstream():
    exp = run_experiment(
        tiny_config(alpha=0.4, m_down=5, freeze_inherited=True, rescale_inherited=0.5)
    )
    up, down, scratch = (exp.stages[s] for s in ("up", "down", "scratch"))
    assert up.W.shape[2] == 3 and down.W.shape[2] == 5 and scratch.W.shape[2] == 5
    inh = exp.inherited
    assert inh.shape == (2, 5) and list(inh.sum(axis=1)) == [2, 2]
    j_idx, r_idx = np.nonzero(inh)
    expected = 0.5 * up.W_final[j_idx, exp.source[inh]]
    for k in range(len(down.steps)):
        assert np.array_equal(down.W[k][inh], expected)
    assert not np.array_equal(down.W_final[~inh], down.W0[~inh])
    # common random numbers: the fresh filters of down are scratch's initial filters
    assert np.array_equal(down.W0[~inh], scratch.W0[~inh])
    assert np.array_equal(down.task.X, scratch.task.X)


def test_entry_granularity_experiment():
    exp = run_experiment(tiny_config(alpha=0.5, granularity="entry"))
    up, down, scratch = (exp.stages[s] for s in ("up", "down", "scratch"))
    inh = exp.inherited
    assert inh.shape == up.W_final.shape
    assert np.array_equal(down.W0, np.where(inh, up.W_final, scratch.W0))
    assert down.trainable.all()
    energy = inherited_noise_energy(exp)
    assert energy.shape == (2, 3) and np.all(energy > 0)


def test_common_random_numbers_and_independent_streams():
    """The upstream stage does not depend on the transfer options; the
    downstream data and fresh filters do not depend on alpha."""
    a = run_experiment(tiny_config(alpha=1 / 3, weight_decay=0.02))
    b = run_experiment(tiny_config(alpha=1.0, freeze_inherited=True))
    assert_same_stage(a.stages["up"], b.stages["up"])
    assert_same_stage(
        a.stages["scratch"],
        run_experiment(tiny_config(alpha=1 / 3, weight_decay=0.02)).stages["scratch"],
    )
    assert np.array_equal(a.stages["down"].task.X, b.stages["down"].task.X)
    assert np.array_equal(a.stages["scratch"].W0, b.stages["scratch"].W0)
    # and the inherited filters carry the upstream weights
    inh = a.inherited
    j_idx, _ = np.nonzero(inh)
    assert np.array_equal(a.stages["down"].W0[inh], a.stages["up"].W_final[j_idx, a.source[inh]])


def test_same_seed_bit_identical_different_seed_not():
    config = tiny_config(alpha=0.5, weight_decay=0.01, flip_down=0.3, layout="split")
    a, b = run_experiment(config), run_experiment(config)
    for s in ("up", "down", "scratch"):
        assert_same_stage(a.stages[s], b.stages[s])
        assert a.test_error(s) == b.test_error(s)
    assert np.array_equal(a.inherited, b.inherited) and np.array_equal(a.source, b.source)
    c = run_experiment(config.replace(seed=config.seed + 1))
    assert not np.array_equal(a.stages["up"].W0, c.stages["up"].W0)
    assert not np.array_equal(a.stages["down"].task.X, c.stages["down"].task.X)


def test_streams_are_reproducible_and_distinct():
    a, b = streams(7), streams(7)
    draws = {name: g.random(3) for name, g in a.items()}
    for name, g in b.items():
        assert np.array_equal(draws[name], g.random(3))
    values = [tuple(v) for v in draws.values()]
    assert len(set(values)) == len(values)


def test_test_error_uses_same_draws_for_transfer_and_scratch():
    """Scoring the same weights as 'down' and as 'scratch' gives the same
    numbers (the test stream restarts for every call)."""
    exp = run_experiment(tiny_config(n_test=500))
    W = exp.stages["scratch"].W_final
    assert exp.test_error("down", W=W) == exp.test_error("scratch")
    assert exp.test_error("scratch") == exp.test_error("scratch")


def test_inherited_filter_groups():
    """filter granularity: the inherited filters; entry granularity: the
    filters with more than half of their entries inherited."""
    exp = run_experiment(tiny_config(alpha=2 / 3, steps_down=2))
    assert np.array_equal(exp.inherited_filters, exp.inherited)
    exp = run_experiment(tiny_config(granularity="entry", alpha=0.5, steps_down=2))
    fraction = exp.inherited.sum(axis=2) / exp.inherited.shape[2]
    assert np.array_equal(exp.inherited_filters, fraction > 0.5)
