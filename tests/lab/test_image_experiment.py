"""The real-image experiment (refimpl.lab.image_experiment): class splits,
the validated ImageConfig, disjoint and nested image draws from the one
seeding scheme, label noise, tasks, accuracy, and one seeded run."""

import json

import numpy as np
import pytest

from refimpl.data import Task
from refimpl.errors import ConfigError, ImageDataError
from refimpl.lab import image_experiment as E
from refimpl.lab.images import SPLITS, Split, load_digits_images, patchify
from refimpl.train import train_stage


@pytest.fixture(scope="module")
def digits():
    return load_digits_images()


# ----------------------------------------------------------------------
# splits and the config
def test_split_parse_and_errors():
    s = Split.parse("3,5/8,9:3,2/8,7")
    assert s == SPLITS["half"] and s.spec() == "3,5/8,9:3,2/8,7"
    assert s.shared() == [3, 8] and s.same() == SPLITS["same"]
    assert SPLITS["none"].shared() == [] and SPLITS["same"].shared() == [2, 3, 7, 8]
    assert s.classes("up") == ((3, 5, 8, 9), (1.0, 1.0, -1.0, -1.0))
    with pytest.raises(ConfigError, match="expected UP_POS/UP_NEG"):
        Split.parse("3,5/8,9")
    with pytest.raises(ConfigError, match="on both sides of the up task"):
        Split.parse("3,5/5,9:3/8")
    with pytest.raises(ConfigError, match="lists a class twice"):
        Split.parse("3,3/8:2/7")


@pytest.mark.parametrize(
    "values, message",
    [
        ({"n_down": 10}, r"n_down=10 must be a positive multiple of the 4 classes"),
        ({"n_up": 7, "split": "1/2,3:4/5"}, r"n_up=7 must be a positive multiple of the 3 classes"),
        ({"k": 0}, r"^k must be an integer in \[1, inf\)"),
        ({"alpha": 1.5}, r"^alpha must be in \[0.0, 1.0\]"),
        ({"flip_up": 0.5}, r"^flip_up must be in \[0.0, 0.5\)"),
        ({"granularity": "row"}, r"^granularity must be 'filter' or 'entry'"),
        ({"standardize": 1}, r"^standardize must be true or false"),
        ({"freeze_inherited": True, "granularity": "entry"}, r"needs granularity='filter'"),
        ({"weight_decay": 2.0}, r"eta\*weight_decay must be < 1"),
        ({"split": "3/8"}, r"expected UP_POS/UP_NEG"),
        ({"bogus": 1}, r"unknown config key 'bogus'"),
    ],
)
def test_config_validation_names_the_field(values, message):
    with pytest.raises(ConfigError, match=message):
        E.ImageConfig.from_dict(values)


def test_config_round_trips_through_json():
    c = E.ImageConfig(split=SPLITS["none"], alpha=0.25, seed=7)
    d = json.loads(c.to_json())
    assert d["split"] == "0,5/6,9:3,2/8,7"
    back = E.ImageConfig.from_dict(d)
    assert back == c and hash(back) == hash(c) and back.split == SPLITS["none"]
    # replace takes a Split or its text form; numpy scalars become Python numbers
    assert c.replace(split="3,5/8,9:3,2/8,7") == c.replace(split=SPLITS["half"])
    assert type(c.replace(n_up=np.int64(40)).n_up) is int


# ----------------------------------------------------------------------
# image draws
@pytest.mark.parametrize("level", list(SPLITS))
def test_indices_disjoint_balanced(digits, level):
    c = E.ImageConfig(split=SPLITS[level], n_up=320, n_down=128, n_test_per_class=60, seed=7)
    idx = E.draw_indices(digits.labels, c)
    up, down, test = (set(idx[k].tolist()) for k in ("up", "down", "test"))
    assert len(up) == 320 and len(down) == 128 and len(test) == 240  # no repeats
    assert not (test & up) and not (test & down) and not (up & down)
    sp = SPLITS[level]
    for task, n in (("up", 320), ("down", 128), ("test", 240)):
        lab, y = digits.labels[idx[task]], idx[task + "_y"]
        pos, neg = (sp.down_pos, sp.down_neg) if task != "up" else (sp.up_pos, sp.up_neg)
        # labels follow the classes, and each class gives n / (number of classes) images
        assert set(lab[y == 1]) == set(pos) and set(lab[y == -1]) == set(neg)
        for cls in pos + neg:
            assert np.sum(lab == cls) == n // (len(pos) + len(neg))
        assert y.sum() == 0


def test_indices_nested_and_shared_across_levels(digits):
    base = E.ImageConfig(n_up=40, n_down=16, seed=3)
    small = E.draw_indices(digits.labels, base)
    big = E.draw_indices(digits.labels, base.replace(n_up=160, n_down=64))
    assert set(small["up"]) <= set(big["up"]) and set(small["down"]) <= set(big["down"])
    np.testing.assert_array_equal(small["test"], big["test"])
    other = E.draw_indices(digits.labels, base.replace(split=SPLITS["none"], alpha=0.5))
    np.testing.assert_array_equal(small["down"], other["down"])  # same downstream data
    np.testing.assert_array_equal(small["test"], other["test"])
    again = E.draw_indices(digits.labels, E.ImageConfig.from_dict(base.to_dict()))
    np.testing.assert_array_equal(small["up"], again["up"])  # the seed fixes the draws
    assert not np.array_equal(
        small["test"], E.draw_indices(digits.labels, base.replace(seed=4))["test"]
    )


def test_too_many_images_requested(digits):
    c = E.ImageConfig(n_up=400, n_down=128, n_test_per_class=60)
    with pytest.raises(ImageDataError, match="images; the run needs"):
        E.draw_indices(digits.labels, c)


def test_upstream_label_noise(digits):
    X_all = patchify(digits.images, 4)
    c = E.ImageConfig(n_up=320, seed=5)
    clean = E.build_tasks(X_all, digits.labels, c)
    noisy = E.build_tasks(X_all, digits.labels, c.replace(flip_up=0.3))
    more = E.build_tasks(X_all, digits.labels, c.replace(flip_up=0.45))
    np.testing.assert_array_equal(noisy["up"].y_clean, clean["up"].y)
    flipped = noisy["up"].y != noisy["up"].y_clean
    assert 0.2 < flipped.mean() < 0.4  # Binomial(320, 0.3)
    assert np.all(flipped <= (more["up"].y != more["up"].y_clean))  # nested flips
    np.testing.assert_array_equal(noisy["down"].y, clean["down"].y)  # downstream untouched
    np.testing.assert_array_equal(noisy["y_test"], clean["y_test"])


def test_task_fields_and_training(digits):
    X_all = patchify(digits.images, 4)
    c = E.ImageConfig(n_up=40, n_down=16, standardize=True)
    t = E.build_tasks(X_all, digits.labels, c)
    down = t["down"]
    assert isinstance(down, Task) and down.X.shape == (16, 4, 16)
    assert down.structure is None and down.patch_role is None  # data only: no xi, no signals
    assert not hasattr(down, "xi") and not hasattr(down, "signals")
    assert down.X.dtype == np.float64 and set(np.unique(down.y)) == {-1.0, 1.0}
    # standardised with the downstream training images' statistics
    np.testing.assert_allclose(down.X.reshape(-1, 16).mean(axis=0), 0.0, atol=1e-12)
    W0 = 0.01 * np.random.default_rng(0).standard_normal((2, 5, 16))
    stage = train_stage(W0, down, 0.1, 50, track=False, snapshots=2)
    assert stage.loss[-1] < stage.loss[0]


def test_accuracy_counts_ties_as_errors():
    W = np.zeros((2, 1, 2))
    X = np.ones((3, 1, 2))
    assert E.accuracy(W, X, np.array([1.0, -1.0, 1.0])) == 0.0  # f = 0 everywhere
    W[0, 0] = [1.0, 0.0]  # f = x_0 > 0: predicts +1
    assert E.accuracy(W, X, np.array([1.0, -1.0, 1.0])) == pytest.approx(2 / 3)


# ----------------------------------------------------------------------
# one run
def test_alpha_zero_is_scratch_and_test_images_are_held_out(digits):
    X_all = patchify(digits.images, 4)
    c = E.ImageConfig(steps_up=100, steps_down=100, n_up=40, seed=1)
    zero = E.transfer_vs_scratch(X_all, digits.labels, c.replace(alpha=0.0))
    one = E.transfer_vs_scratch(X_all, digits.labels, c)
    assert zero["acc_transfer"] == zero["acc_scratch"] and zero["gain"] == 0.0  # inherits nothing
    assert one["acc_scratch"] == zero["acc_scratch"]  # the scratch run ignores alpha
    assert one["loss_up"] == zero["loss_up"]
    assert 0.5 < one["acc_scratch"] <= 1.0
    tested = set(one["indices"]["test"])
    assert not tested & (set(one["indices"]["up"]) | set(one["indices"]["down"]))


def test_shared_stages_give_the_same_runs(digits):
    """Inside refimpl.memo.shared_stages the alphas of one seed train their
    upstream stage and scratch baseline once, with the same numbers."""
    from refimpl.memo import shared_stages

    X_all = patchify(digits.images, 4)
    c = E.ImageConfig(steps_up=60, steps_down=60, n_up=40, seed=2)
    configs = [c.replace(alpha=a) for a in (0.25, 0.75)]
    alone = [E.transfer_vs_scratch(X_all, digits.labels, k) for k in configs]
    with shared_stages():
        shared = [E.transfer_vs_scratch(X_all, digits.labels, k) for k in configs]
    for a, b in zip(alone, shared, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            if k == "indices":
                assert all(np.array_equal(a[k][s], b[k][s]) for s in a[k])
            else:
                assert a[k] == b[k], k


def test_measure_is_flat_and_deterministic():
    c = E.ImageConfig(steps_up=40, steps_down=40, n_up=40, n_test_per_class=20, seed=11)
    res = E.measure_images(c, source="digits")
    assert tuple(res) == E.METRICS
    # the downstream stage has the names of the synthetic measures
    assert {"loss_down", "steps_down"} <= set(res) and not {
        "loss_transfer",
        "steps_transfer",
    } & set(res)
    assert all(isinstance(v, (int, float)) for v in res.values())
    assert res["gain"] == pytest.approx(res["acc_transfer"] - res["acc_scratch"])
    assert E.measure_images(E.ImageConfig.from_dict(c.to_dict())) == res
