"""The batched three-stage path (refimpl/batch_transfer.py) against the
item-by-item experiment (measure_outcomes, run_experiment): the same draws,
so every outcome to rounding and the test errors equal for almost every run
(within sampling error for all, as refimpl/batch.py documents); a run's
numbers do not depend on its batch; a shared upstream stage is trained once;
what the path does not do is refused, naming it."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refimpl import batch as B
from refimpl import batch_transfer as BT
from refimpl.config import Config
from refimpl.lab.measures import measure_outcomes
from refimpl.lab.sweep import run_sweep
from refimpl.memo import shared_stages
from refimpl.transfer import run_experiment

EXACT = ("steps_up", "steps_down", "steps_scratch", "n_flipped", "dead_points", "dead_inherited")
LOSSES = ("loss_up", "loss_down", "loss_scratch")
ERRORS = ("err_transfer", "err_scratch", "noisy_transfer", "noisy_scratch", "gain")


def small(**kw):
    values = dict(d=60, m=3, n_up=12, n_down=6, u_norm=1.5, v_up_norm=1.0, v_down_norm=1.0)
    values |= dict(flip_down=0.2, eta=0.3, sigma_0=0.05, steps_up=40, steps_down=40, n_test=600)
    return Config.from_dict(values | kw)


def assert_agrees(configs, seeds, out):
    """Every outcome of ``out`` against measure_outcomes run by run."""
    equal = 0
    for k, (c, seed) in enumerate(zip(configs, seeds, strict=True)):
        ref = measure_outcomes(c.replace(seed=seed))
        assert set(ref) == set(BT.OUTCOMES)
        for key in EXACT:
            assert out[key][k] == ref[key], (key, c)
        for key in LOSSES:
            assert out[key][k] == pytest.approx(ref[key], rel=1e-10, abs=1e-14), (key, c)
        same = all(out[key][k] == ref[key] for key in ERRORS)
        equal += same
        if not same:  # rotated draws: within sampling error
            for key in ("err_transfer", "err_scratch"):
                assert abs(out[key][k] - ref[key]) <= 5 * np.sqrt(0.25 / c.n_test)
    assert equal >= 0.9 * len(configs)


@pytest.mark.parametrize("layout", ("joint", "split"))
def test_outcomes_are_measure_outcomes(layout):
    configs = [
        small(layout=layout, alpha=a, granularity=g, weight_decay=wd, epsilon=e)
        for a in (0.0, 0.34, 1.0)
        for g in ("filter", "entry")
        for wd, e in ((0.0, 0.0), (0.01, 0.3))
    ]
    seeds = [11 + k % 3 for k in range(len(configs))]
    out = BT.run_transfer_batch(configs, seeds, upstream_error=True)
    assert_agrees(configs, seeds, out)
    pairs = zip(configs, seeds, strict=True)
    up = [run_experiment(c.replace(seed=s)).test_error("up")["clean_error"] for c, s in pairs]
    assert np.mean(np.array(up) == out["err_up"]) >= 0.9
    assert np.all(np.isfinite(out["err_up"])) and np.any(out["err_up"] > 0)


@settings(max_examples=12, deadline=None)
@given(
    alpha=st.sampled_from([0.0, 0.25, 0.5, 1.0]),
    m_down=st.sampled_from([None, 2]),
    eta_down=st.sampled_from([None, 0.1, 0.6]),
    rescale=st.sampled_from([1.0, 0.5, 2.0]),
    flips=st.tuples(st.sampled_from([0.0, 0.2]), st.sampled_from([0.0, 0.3])),
    norms=st.tuples(st.sampled_from([0.0, 1.0]), st.sampled_from([0.0, 2.0])),
    decay=st.sampled_from([(0.0, 0.0), (0.02, 0.005)]),
    down=st.tuples(st.sampled_from([0.0, 0.6, -1.0]), st.sampled_from([1.0, 0.5])),
    steps=st.sampled_from([(40, 40), (25, 60), (0, 30)]),
    seed=st.integers(0, 2**31),
)
def test_drawn_configs_agree(
    alpha, m_down, eta_down, rescale, flips, norms, decay, down, steps, seed
):
    """Drawn widths, step sizes and caps, rescaling, label noise, signals,
    the angle between the task signals, the downstream noise and decay."""
    c = small(
        v_cos=down[0],
        sigma_p_down=down[1],
        steps_up=steps[0],
        steps_down=steps[1],
        alpha=alpha,
        m_down=m_down,
        eta_down=eta_down,
        rescale_inherited=rescale,
        flip_up=flips[0],
        flip_down=flips[1],
        u_norm=norms[0],
        v_down_norm=norms[1],
        weight_decay_up=decay[0],
        weight_decay=decay[1],
    )
    configs, seeds = [c, c.replace(alpha=1.0 - alpha)], [seed, seed]
    assert_agrees(configs, seeds, BT.run_transfer_batch(configs, seeds))


def test_every_upstream_field_keys_the_shared_stage():
    """A run changed in any one field, batched beside the base run of the
    same seed, equals that run alone: an upstream field that the sharing key
    missed would hand it the base's upstream stage."""
    base = small(flip_up=0.1, weight_decay_up=0.01, epsilon=0.2)
    changes = dict(eta=0.2, steps_up=30, weight_decay_up=0.02, flip_up=0.2, sigma_0=0.08)
    changes |= dict(v_up_norm=0.5, u_norm=1.0, sigma_p_up=1.5, epsilon=0.25, d=61, m=4)
    changes |= dict(n_up=10, layout="split", alpha=0.34, n_down=5, v_cos=0.5, sigma_p_down=0.7)
    for field, value in changes.items():
        other = base.replace(**{field: value})
        BT.forget_upstream()
        together = BT.run_transfer_batch([base, other], [5, 5])
        BT.forget_upstream()
        alone = BT.run_transfer_batch([other], [5])
        for key in BT.OUTCOMES:
            assert np.array_equal(together[key][1:], alone[key], equal_nan=True), (field, key)
    BT.forget_upstream()


def test_the_n_test_argument_and_entry_groups():
    """n_test overrides the configs' (as measure_outcomes' argument does);
    entry granularity's dead_inherited counts the filters most of whose
    entries are inherited."""
    c = small(n_test=600, granularity="entry", alpha=0.5, flip_down=0.45, n_down=12)
    seeds = list(range(20))
    out = BT.run_transfer_batch([c] * 20, seeds, n_test=300)
    dead = 0
    for k, seed in enumerate(seeds):
        ref = measure_outcomes(c.replace(seed=seed), n_test=300)
        assert out["dead_inherited"][k] == ref["dead_inherited"]
        assert out["dead_points"][k] == ref["dead_points"]
        dead += ref["dead_inherited"] > 0
        assert out["err_transfer"][k] == ref["err_transfer"] or abs(
            out["err_transfer"][k] - ref["err_transfer"]
        ) <= 5 * np.sqrt(0.25 / 300)
    assert dead >= 2  # the majority rule is exercised


def test_calls_are_cut_by_bytes_without_changing_a_number(monkeypatch):
    configs = [small(alpha=a, n_down=n) for n in (4, 6) for a in (0.0, 0.5, 1.0)]
    seeds = [7, 8, 9, 7, 8, 9]
    BT.forget_upstream()
    whole = BT.run_transfer_batch(configs, seeds)
    monkeypatch.setattr(BT, "CALL_BYTES", 1)  # one run per call
    BT.forget_upstream()
    cut = BT.run_transfer_batch(configs, seeds)
    for key in BT.OUTCOMES:
        assert np.array_equal(whole[key], cut[key]), key
    BT.forget_upstream()


def test_a_run_does_not_depend_on_its_batch():
    """Bitwise the same outcomes alone, in a batch, and in another order."""
    configs = [small(alpha=a, u_norm=u) for a, u in ((0.5, 1.0), (1.0, 2.0), (0.0, 0.5))]
    seeds = [3, 3, 4]
    together = BT.run_transfer_batch(configs, seeds)
    reordered = BT.run_transfer_batch(configs[::-1], seeds[::-1])
    for k in range(3):
        alone = BT.run_transfer_batch([configs[k]], [seeds[k]])
        for key in BT.OUTCOMES:
            assert together[key][k] == alone[key][0] == reordered[key][2 - k], key


def test_a_shared_upstream_stage_is_trained_once(monkeypatch):
    """Alphas of one seed share the upstream stage: one upstream run per seed."""
    sizes = []
    train = BT.train_batch

    def counting(G, *args, **kw):
        sizes.append(G.shape[0])
        return train(G, *args, **kw)

    monkeypatch.setattr(BT, "train_batch", counting)
    BT.forget_upstream()
    configs = [small(alpha=a) for _ in range(2) for a in (0.0, 0.5, 1.0)]
    first = BT.run_transfer_batch(configs, [7, 7, 7, 8, 8, 8])
    assert sizes == [2, 12]  # two upstream stages, then down and scratch of six runs
    sizes.clear()
    BT.run_transfer_batch([small(), small(sigma_p_up=2.0)], [7, 7])  # upstream differs
    assert sizes == [1, 4]  # seed 7's kept from the first call; the other one trained
    sizes.clear()
    again = BT.run_transfer_batch(configs, [7, 7, 7, 8, 8, 8])  # every upstream kept
    assert sizes == [12]
    for key in BT.OUTCOMES:
        assert np.array_equal(first[key], again[key]), key
    BT.forget_upstream()
    alone = BT.run_transfer_batch(configs[3:4], [8])
    assert sizes == [12, 1, 2] and alone["gain"][0] == first["gain"][3]
    sizes.clear()
    BT.forget_upstream()
    BT.run_transfer_batch([small(n_down=4), small(n_down=6)], [7, 7])  # downstream shapes
    assert sizes == [1, 2, 2]  # one upstream stage for both


def test_kept_upstream_stages_stay_within_the_memo_limit(monkeypatch):
    """Beyond memo_limit() bytes the oldest kept stage is dropped; the
    numbers are those of a fresh computation."""
    BT.forget_upstream()
    one = small().m * 2 * small().d * 8  # bytes of one kept W
    monkeypatch.setattr(BT, "memo_limit", lambda: 2.5 * one)
    out = BT.run_transfer_batch([small()] * 4, [1, 2, 3, 4])
    assert len(BT._KEPT) == 2 and BT._KEPT_BYTES[0] == 2 * one
    assert [k[0] for k in BT._KEPT] == [3, 4]  # the newest
    again = BT.run_transfer_batch([small()], [1])  # dropped: trained again
    assert again["gain"][0] == out["gain"][0]
    BT.forget_upstream()


def test_what_is_not_batched_is_refused():
    with pytest.raises(ValueError, match="freeze_inherited"):
        BT.run_transfer_batch([small(freeze_inherited=True)], [1])
    with pytest.raises(ValueError, match="reduced estimator"):
        BT.run_transfer_batch([small(estimator="sample")], [1])
    with pytest.raises(ValueError, match="one seed per config"):
        BT.run_transfer_batch([small()], [1, 2])
    for bad in (0, 1, -3, 2.5, True, float("nan")):  # 0 is not "the default"
        with pytest.raises(ValueError, match="n_test must be an integer >= 2"):
            BT.run_transfer_batch([small()], [1], n_test=bad)
        with pytest.raises(ValueError, match="n_test must be an integer >= 2"):
            B.run_single_batch([small()], [1], n_test=bad)


def test_a_run_beyond_the_gram_range_is_missing_and_leaves_the_others():
    """Weights beyond about 1e154 overflow the Gram matrix of the downstream
    stage: the run's transfer outcome is NaN (a missing value), the others
    are untouched (the item path still scores such a run: documented)."""
    out = BT.run_transfer_batch([small(eta=1e300, steps_up=5), small()], [1, 1])
    assert np.isnan(out["err_transfer"][0]) and np.isnan(out["gain"][0])
    assert np.isfinite(out["err_scratch"][0])  # the scratch stage starts small
    with shared_stages():
        ref = measure_outcomes(small().replace(seed=1))
    assert out["gain"][1] == ref["gain"] and np.isfinite(ref["gain"])


def test_the_sweep_runs_the_batched_measure_like_the_item_one(tmp_path):
    """measure="outcomes_batched" in run_sweep: the seeds and numbers of
    measure="outcomes" (common random numbers across alpha), one cache
    record per item."""
    grid = [small(alpha=a, n_down=n) for n in (4, 6) for a in (0.0, 0.5, 1.0)]
    kw = dict(replicates=2, common=("alpha",), progress=False)
    items = run_sweep(grid, measure="outcomes", **kw)
    batched = run_sweep(grid, measure="outcomes_batched", cache=tmp_path, jobs=2, **kw)
    assert (items.seeds == batched.seeds).all()
    assert (batched.values("gain") == items.values("gain")).mean() >= 0.9
    assert batched.values("loss_up") == pytest.approx(items.values("loss_up"), rel=1e-10)
    assert len(list(tmp_path.glob("*/*.json"))) == 12


def test_the_upstream_error_only_on_request():
    """Without ``upstream_error`` no err_up and every other number the same; an
    upstream stage kept without its error is trained again when it is asked for."""
    configs, seeds = [small(alpha=a) for a in (0.0, 0.5, 1.0)], [3, 3, 4]
    BT.forget_upstream()
    without = BT.run_transfer_batch(configs, seeds)
    assert "err_up" not in without
    asked = BT.run_transfer_batch(configs, seeds, upstream_error=True)
    for key, value in without.items():
        assert np.array_equal(value, asked[key], equal_nan=True), key
    BT.forget_upstream()
    fresh = BT.run_transfer_batch(configs, seeds, upstream_error=True)
    assert np.array_equal(asked["err_up"], fresh["err_up"])
    assert np.all(np.isfinite(asked["err_up"])) and np.any(asked["err_up"] > 0)
