"""Real images (refimpl.lab.images): the loaders, clear one-line errors for
malformed files, data sources and their content hash, patches and the
standardiser."""

import socket
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refimpl.errors import ImageDataError, RefimplError
from refimpl.lab import images as I


@pytest.fixture(scope="module")
def digits():
    return I.load_digits_images()


# ----------------------------------------------------------------------
# loaders
def test_digits_shapes_dtypes_labels(digits):
    assert digits.images.shape == (1797, 8, 8, 1)
    assert digits.images.dtype == np.float64
    assert digits.labels.shape == (1797,)
    assert digits.labels.dtype == np.int64
    assert set(np.unique(digits.labels)) == set(range(10))
    assert digits.images.min() == 0.0 and digits.images.max() == 1.0  # 0..16 scaled by 1/16
    # every pixel value is a multiple of 1/16
    assert np.allclose(digits.images * 16, np.round(digits.images * 16))
    counts = digits.class_counts()
    assert sum(counts.values()) == 1797 and min(counts.values()) >= 170


def test_digits_load_offline(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    images = I.load_digits_images()
    assert images.n == 1797


def test_missing_extra_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    assert not I.digits_available()
    with pytest.raises(ImageDataError, match=r"pip install 'refimpl\[realdata\]'") as err:
        I.load_digits_images()
    assert isinstance(err.value, RefimplError)  # the CLI's one-line errors


def _save(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_npz_grayscale_uint8(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(12, 4, 6), dtype=np.uint8)
    labels = np.arange(12) % 3
    out = I.load_npz_images(_save(tmp_path / "a.npz", images=imgs, labels=labels, extra=np.ones(2)))
    assert out.images.shape == (12, 4, 6, 1) and out.images.dtype == np.float64
    np.testing.assert_array_equal(out.images[..., 0], imgs / 255.0)
    assert out.labels.dtype == np.int64
    np.testing.assert_array_equal(out.labels, labels)
    assert out.name == "a.npz (4x6x1)"


def test_npz_color_float_and_integral_float_labels(tmp_path):
    imgs = np.linspace(-1, 1, 5 * 4 * 4 * 3).reshape(5, 4, 4, 3).astype(np.float32)
    out = I.load_npz_images(
        _save(tmp_path / "b.npz", images=imgs, labels=np.array([0.0, 1.0, 2.0, 1.0, 0.0]))
    )
    assert out.images.shape == (5, 4, 4, 3)
    np.testing.assert_allclose(out.images, imgs)  # float images kept as stored
    np.testing.assert_array_equal(out.labels, [0, 1, 2, 1, 0])


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"labels": np.zeros(3, int)}, r"missing array 'images'"),
        ({"images": np.zeros((3, 4, 4))}, r"missing array 'labels'"),
        ({"images": np.zeros((3, 16)), "labels": np.zeros(3, int)}, r"'images' must have shape"),
        (
            {"images": np.zeros((3, 4, 4, 1, 1)), "labels": np.zeros(3, int)},
            r"'images' must have shape",
        ),
        (
            {"images": np.zeros((3, 4, 4)), "labels": np.zeros((3, 1), int)},
            r"'labels' must have shape \(n,\)",
        ),
        ({"images": np.zeros((3, 4, 4)), "labels": np.zeros(4, int)}, r"4 entries for 3 images"),
        (
            {"images": np.zeros((3, 4, 4)), "labels": np.array([0.0, 0.5, 1.0])},
            r"integer class labels",
        ),
        (
            {"images": np.zeros((3, 4, 4)), "labels": np.array(["a", "b", "c"])},
            r"'labels' must be numeric",
        ),
        ({"images": np.full((3, 4, 4), np.nan), "labels": np.zeros(3, int)}, r"NaN or infinite"),
        ({"images": np.zeros((0, 4, 4)), "labels": np.zeros(0, int)}, r"empty"),
    ],
)
def test_npz_malformed(tmp_path, arrays, message):
    path = _save(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ImageDataError, match=message) as err:
        I.load_npz_images(path)
    text = str(err.value)
    assert text.startswith(str(path)) and "\n" not in text  # one line naming the file


def test_npz_object_array_refused(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, images=np.array([np.zeros((2, 2)), "x"], dtype=object), labels=np.zeros(2, int))
    with pytest.raises(ImageDataError, match="plain numeric arrays"):
        I.load_npz_images(path)


def test_npz_not_a_file_or_not_npz(tmp_path):
    with pytest.raises(ImageDataError, match="no such file"):
        I.load_npz_images(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"this is not a zip archive")
    with pytest.raises(ImageDataError, match="not a readable .npz"):
        I.load_npz_images(junk)


# ----------------------------------------------------------------------
# sources: what the sweep measure loads
def test_source_options_hash_the_file_content(tmp_path):
    assert I.source_options("digits") == {"source": "digits"}
    path = _save(tmp_path / "s.npz", images=np.zeros((4, 4, 4), np.uint8), labels=np.arange(4))
    opts = I.source_options(path)
    assert opts["source"] == str(path.resolve()) and len(opts["sha256"]) == 64
    assert I.source_options(path) == opts  # same bytes, same options
    _save(path, images=np.ones((4, 4, 4), np.uint8), labels=np.arange(4))
    assert I.source_options(path)["sha256"] != opts["sha256"]  # new content, new cache key
    with pytest.raises(ImageDataError, match="no such file"):
        I.source_options(tmp_path / "none.npz")


def test_load_source_refuses_a_file_changed_since_hashing(tmp_path):
    path = _save(tmp_path / "s.npz", images=np.zeros((4, 4, 4), np.uint8), labels=np.arange(4))
    opts = I.source_options(path)
    first = I.load_source(**opts)
    assert I.load_source(**opts) is first  # once per process
    assert not first.images.flags.writeable  # shared: read-only
    _save(path, images=np.full((4, 4, 4), 9, np.uint8), labels=np.arange(4))
    with pytest.raises(ImageDataError, match="changed since the run started"):
        I.load_source(**opts)
    assert I.load_source(**I.source_options(path)).images.max() == pytest.approx(9 / 255)


def test_load_patches(digits):
    X, labels = I.load_patches(4)
    assert X.shape == (1797, 4, 16) and not X.flags.writeable
    np.testing.assert_array_equal(X, I.patchify(digits.images, 4))
    np.testing.assert_array_equal(labels, digits.labels)
    assert I.load_patches(4)[0] is X


# ----------------------------------------------------------------------
# patches
def test_patchify_by_hand():
    img = np.arange(16.0).reshape(1, 4, 4)
    X = I.patchify(img, 2)
    assert X.shape == (1, 4, 4)
    np.testing.assert_array_equal(
        X[0], [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]
    )
    # channels last: a block is flattened in (row, column, channel) order
    rgb = np.arange(2 * 2 * 3.0).reshape(1, 2, 2, 3)
    np.testing.assert_array_equal(I.patchify(rgb, 2)[0, 0], np.arange(12.0))


@given(
    n=st.integers(1, 3),
    a=st.integers(1, 3),
    b=st.integers(1, 3),
    k=st.integers(1, 4),
    C=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_patch_round_trip(n, a, b, k, C, seed):
    images = np.random.default_rng(seed).standard_normal((n, a * k, b * k, C))
    X = I.patchify(images, k)
    assert X.shape == (n, a * b, k * k * C)
    np.testing.assert_array_equal(I.unpatchify(X, (a * k, b * k, C), k), images)
    # every pixel appears exactly once among the patches
    np.testing.assert_array_equal(
        np.sort(X.reshape(n, -1), axis=1), np.sort(images.reshape(n, -1), axis=1)
    )


def test_patch_size_must_divide():
    with pytest.raises(ImageDataError, match="cannot be cut into 3x3 blocks"):
        I.patchify(np.zeros((1, 8, 8)), 3)
    with pytest.raises(ImageDataError, match="positive integer"):
        I.check_patch_size((8, 8), 0)


def test_digits_patches(digits):
    X = I.patchify(digits.images, 4)
    assert X.shape == (1797, 4, 16)
    np.testing.assert_array_equal(X[0, 3], digits.images[0, 4:, 4:, 0].ravel())


def test_standardizer():
    rng = np.random.default_rng(1)
    X = rng.normal(3.0, 2.0, size=(50, 4, 5))
    X[:, :, 2] = 7.0  # a constant coordinate
    stats = I.fit_standardizer(X)
    Z = I.apply_standardizer(X, stats).reshape(-1, 5)
    np.testing.assert_allclose(Z.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.delete(Z.std(axis=0), 2), 1.0)
    np.testing.assert_array_equal(Z[:, 2], 0.0)
