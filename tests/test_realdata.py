"""Real-data experiments (issue 5): loaders, patching, task construction,
an end-to-end run, and clear errors for user mistakes."""
import csv
import json
import socket
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refimpl import realdata as R
from refimpl.cli import main
from refimpl.data import Task
from refimpl.train import train_stage



@pytest.fixture(scope="module")
def digits():
    return R.load_digits_images()


# ----------------------------------------------------------------------
# loaders
def test_digits_shapes_dtypes_labels(digits):
    assert digits.images.shape == (1797, 8, 8, 1)
    assert digits.images.dtype == np.float64
    assert digits.labels.shape == (1797,)
    assert digits.labels.dtype == np.int64
    assert set(np.unique(digits.labels)) == set(range(10))
    assert digits.images.min() == 0.0 and digits.images.max() == 1.0   # 0..16 scaled by 1/16
    # every pixel value is a multiple of 1/16
    assert np.allclose(digits.images * 16, np.round(digits.images * 16))
    counts = digits.class_counts()
    assert sum(counts.values()) == 1797 and min(counts.values()) >= 170


def test_digits_load_offline(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network disabled by the test")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    images = R.load_digits_images()
    assert images.n == 1797


def test_missing_extra_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(R.RealDataError, match=r"pip install 'refimpl\[realdata\]'"):
        R.load_digits_images()


def test_missing_extra_cli_one_line_exit_2(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    assert main(["realdata", "--quick", "--quiet", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "refimpl[realdata]" in err[0]
    assert not (tmp_path / "realdata").exists()


def _save(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_npz_grayscale_uint8(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(12, 4, 6), dtype=np.uint8)
    labels = np.arange(12) % 3
    out = R.load_npz_images(_save(tmp_path / "a.npz", images=imgs, labels=labels, extra=np.ones(2)))
    assert out.images.shape == (12, 4, 6, 1) and out.images.dtype == np.float64
    np.testing.assert_array_equal(out.images[..., 0], imgs / 255.0)
    assert out.labels.dtype == np.int64
    np.testing.assert_array_equal(out.labels, labels)


def test_npz_color_float_and_integral_float_labels(tmp_path):
    imgs = np.linspace(-1, 1, 5 * 4 * 4 * 3).reshape(5, 4, 4, 3).astype(np.float32)
    out = R.load_npz_images(_save(tmp_path / "b.npz", images=imgs,
                                  labels=np.array([0.0, 1.0, 2.0, 1.0, 0.0])))
    assert out.images.shape == (5, 4, 4, 3)
    np.testing.assert_allclose(out.images, imgs)          # float images kept as stored
    np.testing.assert_array_equal(out.labels, [0, 1, 2, 1, 0])


@pytest.mark.parametrize("arrays, message", [
    ({"labels": np.zeros(3, int)}, r"missing array 'images'"),
    ({"images": np.zeros((3, 4, 4))}, r"missing array 'labels'"),
    ({"images": np.zeros((3, 16)), "labels": np.zeros(3, int)}, r"'images' must have shape"),
    ({"images": np.zeros((3, 4, 4, 1, 1)), "labels": np.zeros(3, int)}, r"'images' must have shape"),
    ({"images": np.zeros((3, 4, 4)), "labels": np.zeros((3, 1), int)}, r"'labels' must have shape \(n,\)"),
    ({"images": np.zeros((3, 4, 4)), "labels": np.zeros(4, int)}, r"4 entries for 3 images"),
    ({"images": np.zeros((3, 4, 4)), "labels": np.array([0.0, 0.5, 1.0])}, r"integer class labels"),
    ({"images": np.zeros((3, 4, 4)), "labels": np.array(["a", "b", "c"])}, r"'labels' must be numeric"),
    ({"images": np.full((3, 4, 4), np.nan), "labels": np.zeros(3, int)}, r"NaN or infinite"),
    ({"images": np.zeros((0, 4, 4)), "labels": np.zeros(0, int)}, r"empty"),
])
def test_npz_malformed(tmp_path, arrays, message):
    path = _save(tmp_path / "bad.npz", **arrays)
    with pytest.raises(R.RealDataError, match=message):
        R.load_npz_images(path)


def test_npz_object_array_refused(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, images=np.array([np.zeros((2, 2)), "x"], dtype=object), labels=np.zeros(2, int))
    with pytest.raises(R.RealDataError, match="plain numeric arrays"):
        R.load_npz_images(path)


def test_npz_not_a_file_or_not_npz(tmp_path):
    with pytest.raises(R.RealDataError, match="no such file"):
        R.load_npz_images(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"this is not a zip archive")
    with pytest.raises(R.RealDataError, match="not a readable .npz"):
        R.load_npz_images(junk)


def test_npz_malformed_cli_one_line_exit_2(tmp_path, capsys):
    path = _save(tmp_path / "bad.npz", images=np.zeros((3, 4, 4)))
    assert main(["realdata", "--quick", "--quiet", "--npz", str(path), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing array 'labels'" in err[0]


def test_npz_too_few_images_per_class_cli(tmp_path, capsys):
    labels = np.repeat(np.arange(10), 5)
    path = _save(tmp_path / "small.npz", images=np.zeros((50, 8, 8), np.uint8), labels=labels)
    assert main(["realdata", "--quick", "--quiet", "--npz", str(path), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has 5 images; the run needs" in err[0]


def test_npz_patch_size_not_dividing_cli(tmp_path, capsys):
    path = _save(tmp_path / "odd.npz", images=np.zeros((20, 6, 6), np.uint8),
                 labels=np.arange(20) % 10)
    assert main(["realdata", "--quick", "--quiet", "--npz", str(path), "--out", str(tmp_path)]) == 2
    assert "cannot be cut into 4x4 blocks" in capsys.readouterr().err


# ----------------------------------------------------------------------
# patches
def test_patchify_by_hand():
    img = np.arange(16.0).reshape(1, 4, 4)
    X = R.patchify(img, 2)
    assert X.shape == (1, 4, 4)
    np.testing.assert_array_equal(X[0], [[0, 1, 4, 5], [2, 3, 6, 7],
                                         [8, 9, 12, 13], [10, 11, 14, 15]])
    # channels last: a block is flattened in (row, column, channel) order
    rgb = np.arange(2 * 2 * 3.0).reshape(1, 2, 2, 3)
    np.testing.assert_array_equal(R.patchify(rgb, 2)[0, 0], np.arange(12.0))


@given(n=st.integers(1, 3), a=st.integers(1, 3), b=st.integers(1, 3), k=st.integers(1, 4),
       C=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_patch_round_trip(n, a, b, k, C, seed):
    images = np.random.default_rng(seed).standard_normal((n, a * k, b * k, C))
    X = R.patchify(images, k)
    assert X.shape == (n, a * b, k * k * C)
    np.testing.assert_array_equal(R.unpatchify(X, (a * k, b * k, C), k), images)
    # every pixel appears exactly once among the patches
    np.testing.assert_array_equal(np.sort(X.reshape(n, -1), axis=1),
                                  np.sort(images.reshape(n, -1), axis=1))


def test_patch_size_must_divide():
    with pytest.raises(R.RealDataError, match="cannot be cut into 3x3 blocks"):
        R.patchify(np.zeros((1, 8, 8)), 3)


def test_digits_patches(digits):
    X = R.patchify(digits.images, 4)
    assert X.shape == (1797, 4, 16)
    np.testing.assert_array_equal(X[0, 3], digits.images[0, 4:, 4:, 0].ravel())


def test_standardizer():
    rng = np.random.default_rng(1)
    X = rng.normal(3.0, 2.0, size=(50, 4, 5))
    X[:, :, 2] = 7.0                                      # a constant coordinate
    stats = R.fit_standardizer(X)
    Z = R.apply_standardizer(X, stats).reshape(-1, 5)
    np.testing.assert_allclose(Z.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.delete(Z.std(axis=0), 2), 1.0)
    np.testing.assert_array_equal(Z[:, 2], 0.0)


# ----------------------------------------------------------------------
# tasks
def test_split_parse_and_errors():
    s = R.Split.parse("3,5/8,9:3,2/8,7")
    assert s == R.SPLITS["half"] and s.spec() == "3,5/8,9:3,2/8,7"
    assert s.shared() == [3, 8]
    assert R.SPLITS["none"].shared() == [] and R.SPLITS["same"].shared() == [2, 3, 7, 8]
    with pytest.raises(R.RealDataError, match="expected UP_POS/UP_NEG"):
        R.Split.parse("3,5/8,9")
    with pytest.raises(R.RealDataError, match="on both sides of the up task"):
        R.Split.parse("3,5/5,9:3/8")


def test_config_sizes_must_be_class_multiples():
    with pytest.raises(R.RealDataError, match="n_down=10 must be a positive multiple of the 4"):
        R.RealConfig(n_down=10)


@pytest.mark.parametrize("level", list(R.SPLITS))
def test_indices_disjoint_balanced(digits, level):
    c = R.RealConfig(split=R.SPLITS[level], n_up=320, n_down=128, n_test_per_class=60)
    idx = R.draw_indices(digits.labels, c, seed=7)
    up, down, test = (set(idx[k].tolist()) for k in ("up", "down", "test"))
    assert len(up) == 320 and len(down) == 128 and len(test) == 240    # no repeats
    assert not (test & up) and not (test & down) and not (up & down)
    for task, n in (("up", 320), ("down", 128), ("test", 240)):
        lab, y = digits.labels[idx[task]], idx[task + "_y"]
        sp = R.SPLITS[level]
        pos, neg = (sp.down_pos, sp.down_neg) if task != "up" else (sp.up_pos, sp.up_neg)
        # labels follow the classes, and each class gives n / (number of classes) images
        assert set(lab[y == 1]) == set(pos) and set(lab[y == -1]) == set(neg)
        for cls in pos + neg:
            assert np.sum(lab == cls) == n // (len(pos) + len(neg))
        assert y.sum() == 0


def test_indices_nested_and_shared_across_levels(digits):
    base = R.RealConfig(n_up=40, n_down=16)
    small = R.draw_indices(digits.labels, base, seed=3)
    big = R.draw_indices(digits.labels, base.replace(n_up=160, n_down=64), seed=3)
    assert set(small["up"]) <= set(big["up"]) and set(small["down"]) <= set(big["down"])
    np.testing.assert_array_equal(small["test"], big["test"])
    other = R.draw_indices(digits.labels, base.replace(split=R.SPLITS["none"]), seed=3)
    np.testing.assert_array_equal(small["down"], other["down"])     # same downstream data
    np.testing.assert_array_equal(small["test"], other["test"])
    assert not np.array_equal(small["test"], R.draw_indices(digits.labels, base, seed=4)["test"])


def test_too_many_images_requested(digits):
    c = R.RealConfig(n_up=400, n_down=128, n_test_per_class=60)
    with pytest.raises(R.RealDataError, match="images; the run needs"):
        R.draw_indices(digits.labels, c, seed=0)


def test_upstream_label_noise(digits):
    X_all = R.patchify(digits.images, 4)
    c = R.RealConfig(n_up=320)
    clean = R.build_tasks(X_all, digits.labels, c, seed=5)
    noisy = R.build_tasks(X_all, digits.labels, c.replace(flip_up=0.3), seed=5)
    more = R.build_tasks(X_all, digits.labels, c.replace(flip_up=0.45), seed=5)
    np.testing.assert_array_equal(noisy["up"].y_clean, clean["up"].y)
    flipped = noisy["up"].y != noisy["up"].y_clean
    assert 0.2 < flipped.mean() < 0.4                        # Binomial(320, 0.3)
    assert np.all(flipped <= (more["up"].y != more["up"].y_clean))   # nested flips
    np.testing.assert_array_equal(noisy["down"].y, clean["down"].y)  # downstream untouched
    np.testing.assert_array_equal(noisy["y_test"], clean["y_test"])


def test_task_fields_and_training(digits):
    X_all = R.patchify(digits.images, 4)
    c = R.RealConfig(n_up=40, n_down=16, standardize=True)
    t = R.build_tasks(X_all, digits.labels, c, seed=0)
    down = t["down"]
    assert isinstance(down, Task) and down.X.shape == (16, 4, 16)
    assert down.signals.shape == (3, 16) and down.xi.shape == (16, 16)
    assert down.X.dtype == np.float64 and set(np.unique(down.y)) == {-1.0, 1.0}
    # standardised with the downstream training images' statistics
    np.testing.assert_allclose(down.X.reshape(-1, 16).mean(axis=0), 0.0, atol=1e-12)
    W0 = 0.01 * np.random.default_rng(0).standard_normal((2, 5, 16))
    stage = train_stage(W0, down, 0.1, 50, track=False, snapshots=2)
    assert stage.loss[-1] < stage.loss[0]


def test_accuracy_counts_ties_as_errors():
    W = np.zeros((2, 1, 2))
    X = np.ones((3, 1, 2))
    assert R.accuracy(W, X, np.array([1.0, -1.0, 1.0])) == 0.0   # f = 0 everywhere
    W[0, 0] = [1.0, 0.0]                                         # f = x_0 > 0: predicts +1
    assert R.accuracy(W, X, np.array([1.0, -1.0, 1.0])) == pytest.approx(2 / 3)


# ----------------------------------------------------------------------
# end to end
def _tiny_plan(seeds=2):
    base = R.RealConfig(steps_up=60, steps_down=60, n_up=40, n_down=16, n_test_per_class=20)
    return R.Plan(base=base, seeds=seeds, alphas=(0.0, 0.5, 1.0), n_down=(8, 16), n_up=(20, 40),
                  flip_up=(0.0, 0.3))


def test_run_seed_alpha_zero_is_scratch(digits):
    X_all = R.patchify(digits.images, 4)
    c = R.RealConfig(steps_up=100, steps_down=100, n_up=40)
    res = R.run_seed(X_all, digits.labels, c, seed=1, alphas=(0.0, 1.0))
    assert res["transfer"][0.0] == res["scratch"]        # alpha = 0 inherits nothing
    assert 0.5 < res["scratch"] <= 1.0
    tested = set(res["indices"]["test"])
    assert not tested & (set(res["indices"]["up"]) | set(res["indices"]["down"]))


def test_end_to_end(digits, tmp_path):
    plan = _tiny_plan()
    result = R.run_validation(tmp_path, images=digits, plan=plan)
    for key in ("name", "claim", "statistic", "verdict", "markdown"):
        assert key in result
    assert result["name"] == "realdata" and result["verdict"] in ("PASS", "FAIL")
    assert f"**Verdict: {result['verdict']}**" in result["markdown"]
    folder = tmp_path / "realdata"
    data = json.loads((folder / "results.json").read_text())
    assert data["verdict"] == result["verdict"] and data["plan"]["seeds"] == 2
    keys = {c["key"] for c in data["claims"]}
    assert {"alpha_half", "n_up", "flip_up", "shared", "negative"} <= keys
    with open(folder / "points.csv") as fh:
        points = list(csv.DictReader(fh))
    # 3 levels x 3 alphas + 2 + 2 + 2 points, every one with 2 seeds
    assert len(points) == 15 and all(p["seeds"] == "2" for p in points)
    with open(folder / "runs.csv") as fh:
        runs = list(csv.DictReader(fh))
    assert len(runs) == 30
    for r in runs:
        assert 0.0 <= float(r["acc_transfer"]) <= 1.0
        assert float(r["gain"]) == pytest.approx(float(r["acc_transfer"]) - float(r["acc_scratch"]))
    from refimpl.plotting import available
    if available():
        assert (folder / "accuracy_vs_alpha.png").stat().st_size > 0


def test_jobs_do_not_change_results(digits):
    plan = R.Plan(base=_tiny_plan().base, seeds=1, alphas=(0.0, 1.0), n_down=(16,), n_up=(40,),
                  flip_up=(0.3,))
    one = R.run_experiments(digits, plan, jobs=1)
    two = R.run_experiments(digits, plan, jobs=2)
    assert one == two


def test_cli_quick(tmp_path, capsys):
    assert main(["realdata", "--quick", "--quiet", "--seeds", "2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "**Verdict:" in out and (tmp_path / "realdata" / "results.json").is_file()


def test_cli_bad_split(tmp_path, capsys):
    assert main(["realdata", "--quick", "--split", "1,2/3", "--out", str(tmp_path)]) == 2
    assert "UP_POS/UP_NEG" in capsys.readouterr().err


# ----------------------------------------------------------------------
# the statistics behind the verdicts
def _rows(sweep, xs, gain_of_x, seeds=12, noise=0.01, level="half", key=None):
    rng = np.random.default_rng(0)
    key = key or sweep
    rows = []
    for s in range(seeds):
        for x in xs:
            g = gain_of_x(x) + noise * rng.standard_normal()
            row = {"sweep": sweep, "level": level, "alpha": 1.0, "n_up": 160, "n_down": 16,
                   "flip_up": 0.0, "seed": s, "acc_scratch": 0.8, "acc_transfer": 0.8 + g,
                   "gain": g}
            row[key] = x
            rows.append(row)
    return rows


def test_trend_test_detects_and_rejects():
    xs = (0.0, 0.25, 0.5, 0.75, 1.0)
    up = R._trend(_rows("alpha", xs, lambda a: 0.05 * a), "alpha", +1, level="half")
    assert up["verdict"] == "PASS" and up["rho"] > 0.5 and up["p"] < R.LEVEL
    wrong_sign = R._trend(_rows("alpha", xs, lambda a: 0.05 * a), "alpha", -1, level="half")
    assert wrong_sign["verdict"] == "FAIL"
    flat = R._trend(_rows("alpha", xs, lambda a: 0.0), "alpha", +1, level="half")
    assert flat["verdict"] == "FAIL" and abs(flat["diff_mean"]) < 0.02


def test_trend_with_two_points_is_their_paired_difference():
    rows = _rows("n_up", (20, 320), lambda n: 0.0001 * n, key="n_up")
    res = R._trend(rows, "n_up", +1)
    assert res["verdict"] == "PASS" and "2 points only" in res["statistic"]
    assert res["diff_mean"] == pytest.approx(0.03, abs=0.01)
    assert R._trend(rows, "n_up", -1)["verdict"] == "FAIL"


def test_paired_test():
    rows = _rows("alpha", (1.0,), lambda a: -0.03, level="none")
    res = R._paired(rows, "alpha", "none", 1.0, -1)
    assert res["verdict"] == "PASS" and res["diff_mean"] == pytest.approx(-0.03, abs=0.01)
    assert R._paired(rows, "alpha", "none", 1.0, +1)["verdict"] == "FAIL"
    # no spread: no evidence either way
    const = [dict(r, acc_transfer=0.8, gain=0.0) for r in rows]
    assert R._paired(const, "alpha", "none", 1.0, -1)["verdict"] == "FAIL"


def test_summarize_points_mean_and_se():
    rows = _rows("n_up", (20, 40), lambda n: 0.0, seeds=4, noise=0.0, key="n_up")
    for i, r in enumerate(rows):
        r["gain"] = float(i % 2)      # rows alternate x = 20, 40 within a seed: gain 0 at 20, 1 at 40
        r["loss_up"] = 0.1
    pts = R.summarize_points(rows)
    assert [p["n_up"] for p in pts] == [20, 40]
    assert pts[0]["gain"] == 0.0 and pts[1]["gain"] == 1.0 and pts[0]["seeds"] == 4
    assert pts[0]["acc_scratch"] == pytest.approx(0.8) and pts[0]["acc_scratch_se"] == 0.0
