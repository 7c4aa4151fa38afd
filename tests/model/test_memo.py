"""Shared stages (refimpl.memo): inside a block, equal stages and test errors
are computed once, and every number is bit for bit that of separate runs;
the sweep runner groups items by seed so that they share."""

import numpy as np
import pytest

from refimpl import memo
from refimpl.config import Config
from refimpl.files import jsonable
from refimpl.lab import sweep as S
from refimpl.lab.measures import measure_transfer
from refimpl.transfer import run_experiment

BASE = Config(d=40, m=3, n_up=12, n_down=6, steps_up=30, steps_down=30, n_test=200, seed=7)
ALPHAS = (0.0, 0.33, 0.67, 1.0)


def _same(a, b):
    """Two measure results equal bit for bit (NaN equal to NaN)."""
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]), err_msg=k)


def test_equal_stages_are_trained_once_and_agree_bit_for_bit():
    alone = [run_experiment(BASE.replace(alpha=a)) for a in ALPHAS]
    with memo.shared_stages():
        shared = [run_experiment(BASE.replace(alpha=a)) for a in ALPHAS]
    for one, two in zip(alone, shared, strict=True):
        for name in ("up", "down", "scratch"):
            np.testing.assert_array_equal(one.stages[name].W, two.stages[name].W)
            np.testing.assert_array_equal(one.stages[name].loss, two.stages[name].loss)
    # the upstream stage and the scratch baseline are the same objects, read-only
    assert all(e.stages["up"] is shared[0].stages["up"] for e in shared)
    assert all(e.stages["scratch"] is shared[0].stages["scratch"] for e in shared)
    assert len({id(e.stages["down"]) for e in shared}) == len(ALPHAS)
    with pytest.raises(ValueError, match="read-only"):
        shared[0].stages["up"].W[0, 0, 0, 0] = 1.0
    # outside a block nothing is kept
    assert run_experiment(BASE).stages["up"] is not run_experiment(BASE).stages["up"]


def test_measures_agree_with_and_without_sharing(monkeypatch):
    alone = [measure_transfer(BASE.replace(alpha=a)) for a in ALPHAS]
    with memo.shared_stages():
        shared = [measure_transfer(BASE.replace(alpha=a)) for a in ALPHAS]
    for a, b in zip(alone, shared, strict=True):
        _same(a, b)
    monkeypatch.setattr(memo, "MEMO_BYTES", 1)  # keeps no stage (test errors hold no array)
    with memo.shared_stages():
        tight = [measure_transfer(BASE.replace(alpha=a)) for a in ALPHAS]
        assert not [k for k in memo._memo.get() if k[0] == "stage"]
    for a, b in zip(alone, tight, strict=True):
        _same(a, b)


def test_a_small_memory_budget_bounds_the_memo(monkeypatch):
    monkeypatch.setenv("REFIMPL_MEMORY_BUDGET", "8M")
    assert memo.memo_limit() == 1 << 20  # an eighth of the budget
    monkeypatch.delenv("REFIMPL_MEMORY_BUDGET")
    assert memo.memo_limit() <= memo.MEMO_BYTES
    alone = [measure_transfer(BASE.replace(alpha=a)) for a in ALPHAS]
    monkeypatch.setenv("REFIMPL_MEMORY_BUDGET", "400K")  # a run fits; the memo keeps 50 KiB
    with memo.shared_stages():
        tight = []
        for a in ALPHAS:
            tight.append(measure_transfer(BASE.replace(alpha=a)))
            kept = sum(size for _, size in memo._memo.get().values())
            assert kept <= memo.memo_limit() == 400 * 1024 / 8
    for a, b in zip(alone, tight, strict=True):
        _same(a, b)


def test_content_key_tells_inputs_apart():
    x = np.arange(6.0)
    assert memo.content_key(x, 1.0) == memo.content_key(x.copy(), 1.0)
    assert memo.content_key(x, 1.0) != memo.content_key(x.reshape(2, 3), 1.0)
    assert memo.content_key(x, 1.0) != memo.content_key(x.astype(np.float32), 1.0)
    y = x.copy()
    y[3] = np.nextafter(y[3], 10)
    assert memo.content_key(x) != memo.content_key(y)
    assert memo.content_key(BASE) != memo.content_key(BASE.replace(seed=8))
    big = np.zeros(2000)
    other = big.copy()
    other[1000] = 1.0
    assert memo.content_key({"a": big}) != memo.content_key({"a": other})
    assert memo.content_key(1) != memo.content_key(1.0) != memo.content_key("1")
    with pytest.raises(TypeError, match="cannot key"):
        memo.content_key(object())


def test_blocks_in_threads_do_not_meet():
    """A block is per thread: two overlapping blocks in two threads leave no
    memo behind, and nothing outside a block is memoized."""
    import threading

    inside = threading.Barrier(2)

    def block():
        with memo.shared_stages():
            inside.wait()
            run_experiment(BASE)
            inside.wait()

    threads = [threading.Thread(target=block) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert memo._memo.get() is None
    one, two = run_experiment(BASE), run_experiment(BASE)
    assert one.stages["up"] is not two.stages["up"] and one.stages["up"].W.flags.writeable


def test_sweep_groups_items_by_seed():
    calls = ["a", "b", "c", "d", "e"]
    assert S._groups(calls, [5, 3, 5, 3, 9]) == [
        [(0, "a"), (2, "c")],
        [(1, "b"), (3, "d")],
        [(4, "e")],
    ]
    # a seed's items are cut into groups of at most `size` consecutive items
    assert S._groups(calls, [1] * 5, size=2) == [
        [(0, "a"), (1, "b")],
        [(2, "c"), (3, "d")],
        [(4, "e")],
    ]
    assert S.GROUP_ITEMS >= 11  # the alphas of a gain_alpha seed in one group


@pytest.mark.parametrize("jobs", [1, 2])
def test_sweep_under_common_seeds_matches_items_run_alone(jobs):
    grid = [BASE.replace(alpha=a) for a in ALPHAS]
    sw = S.run_sweep(grid, replicates=2, jobs=jobs, common=("alpha",), progress=False)
    for p, cfg in enumerate(grid):
        for r in range(2):
            alone = jsonable(measure_transfer(cfg.replace(seed=int(sw.seeds[p, r]))))
            assert sw.results[p][r] == alone
