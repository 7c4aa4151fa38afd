"""A Task is the data (X, y, y_clean) plus an optional signal/noise structure
(refimpl.data.SignalNoise, docs/model.md §2.3-§2.4) that only synthetic tasks
have: the shorthand keywords, dataclasses.replace, and data without it."""

import dataclasses

import numpy as np
import pytest

from refimpl.data import SignalNoise, Task, sample_task, signal_vectors
from refimpl.errors import PatchRoleError
from refimpl.train import train_stage


def synthetic(n=5, d=8, layout="split"):
    u, v, _ = signal_vectors(d, 2.0, 1.0, 1.0)
    return sample_task(np.random.default_rng(0), n, u, v, 1.0, 0.2, layout)


def test_sampled_task_carries_its_structure():
    task = synthetic()
    assert isinstance(task.structure, SignalNoise)
    assert task.xi is task.structure.xi and task.signals is task.structure.signals
    assert task.patch_role is None  # derived from the data
    np.testing.assert_array_equal(task.X[:, -1], task.xi)  # noise patch last (§2.4)
    np.testing.assert_array_equal(task.X[:, 0], task.y_clean[:, None] * task.signals[0])
    assert task.roles().tolist() == [[0, 1, -1]] * task.n


def test_keywords_are_shorthand_for_the_structure():
    t = synthetic()
    roles = t.roles()
    short = Task(X=t.X, y=t.y, y_clean=t.y_clean, xi=t.xi, signals=t.signals, patch_role=roles)
    assert isinstance(short.structure, SignalNoise)
    assert short.signals is t.signals and short.xi is t.xi and short.patch_role is roles
    with pytest.raises(TypeError, match="needs both xi and signals"):
        Task(X=t.X, y=t.y, y_clean=t.y_clean, xi=t.xi)


def test_replace_changes_one_field_of_the_structure():
    t = synthetic()
    roles = t.roles()
    given = dataclasses.replace(t, patch_role=roles)
    assert given.patch_role is roles and given.xi is t.xi and given.signals is t.signals
    xi = t.xi + 1.0
    moved = dataclasses.replace(given, xi=xi)
    assert moved.xi is xi and moved.patch_role is roles and moved.signals is t.signals
    cleared = dataclasses.replace(given, patch_role=None)
    assert cleared.patch_role is None and cleared.xi is t.xi
    assert dataclasses.replace(t, structure=None).structure is None
    assert t.patch_role is None  # the original is unchanged (frozen)
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.X = t.X


def test_data_without_structure():
    """Real data (the image tasks): no signals, no xi, no patch roles; trained
    with track=False only."""
    t = synthetic()
    plain = Task(X=t.X, y=t.y, y_clean=t.y_clean)
    assert plain.structure is None and plain.patch_role is None and plain.n == t.n
    for name in ("xi", "signals"):
        with pytest.raises(AttributeError, match=f"has no {name}: it has no signal/noise"):
            getattr(plain, name)
        assert not hasattr(plain, name)
    with pytest.raises(PatchRoleError, match="no signal/noise structure.*track=False"):
        plain.roles()
    W0 = 0.05 * np.random.default_rng(1).standard_normal((2, 3, t.X.shape[2]))
    with pytest.raises(PatchRoleError, match="track=False"):
        train_stage(W0, plain, 0.5, 5)
    a = train_stage(W0, plain, 0.5, 5, track=False)
    b = train_stage(W0, t, 0.5, 5, track=False)  # the structure plays no part in GD
    np.testing.assert_array_equal(a.W, b.W)
    np.testing.assert_array_equal(a.loss, b.loss)
    assert a.task is plain and a.gamma is None
