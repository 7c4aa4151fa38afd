"""Real images as model inputs: loading, cutting into patches, standardising.

Data
----
- :func:`load_digits_images`: the 8 x 8 handwritten digits that scikit-learn
  ships inside its package (``sklearn.datasets.load_digits``: 1797 images,
  labels 0-9, pixel values 0..16, no download). Needs the optional extra
  ``realdata`` (``pip install 'refimpl[realdata]'``).
- :func:`load_npz_images`: images a user already has on disk, as a ``.npz``
  (:data:`NPZ_FORMAT`), for example CIFAR-10 or MNIST exported by the user.
- :func:`source_options` and :func:`load_source`: a data *source* by name
  (:data:`DIGITS` or the path of a ``.npz``), as the options of the sweep
  measure :func:`refimpl.lab.image_experiment.measure_images`. A ``.npz``
  source carries the SHA-256 of the file's bytes, so the sweep cache key
  changes when the file changes; each process loads a source once (cached
  by path, modification time and size) and refuses a file whose content no
  longer matches the hash.

Class splits
------------
:class:`Split`: which classes form the +1 and -1 sides of the upstream and
the downstream task; :data:`SPLITS`: the three splits of the digits design
(described in :mod:`refimpl.lab.image_experiment`).

Patches (docs/model.md §1: X has shape (n, P, d))
-------------------------------------------------
An image of shape (H, W, C) is cut into P = (H/k)(W/k) non-overlapping k x k
blocks, in row-major block order; each block is flattened in (row, column,
channel) order to d = k*k*C numbers (:func:`patchify`, inverse
:func:`unpatchify`). The network sums over patches, so its filters are shared
across patches (docs/model.md §3.1). Optional standardisation
(:func:`fit_standardizer`, :func:`apply_standardizer`): per coordinate of d,
centred and divided by the standard deviation.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, ImageDataError
from ..files import read_npz

__all__ = [
    "Images",
    "Split",
    "SPLITS",
    "SHARE_LEVELS",
    "NPZ_FORMAT",
    "INSTALL_HINT",
    "DIGITS",
    "DIGITS_NAME",
    "digits_available",
    "load_digits_images",
    "load_npz_images",
    "file_sha256",
    "source_options",
    "load_source",
    "load_patches",
    "check_patch_size",
    "patchify",
    "unpatchify",
    "fit_standardizer",
    "apply_standardizer",
]

INSTALL_HINT = (
    "the digits need scikit-learn (it ships them, no download): "
    "pip install 'refimpl[realdata]' (or .venv/bin/pip install scikit-learn)"
)

DIGITS = "digits"
"""The source name of scikit-learn's bundled digits (:func:`load_source`)."""
DIGITS_MAX = 16.0  # load_digits pixel values are integers 0..16
DIGITS_NAME = "sklearn digits (8x8, 0-9)"

NPZ_FORMAT = """\
A .npz file (numpy.savez or numpy.savez_compressed) with two arrays:
  images : shape (n, H, W) (grayscale) or (n, H, W, C) (channels last),
           any integer or float dtype, finite values. uint8 images are
           divided by 255; other dtypes are used as stored (pass
           --standardize when their scale is far from 1).
  labels : shape (n,), integer class labels (any integer dtype, or floats
           with integral values), one per image, in the same order.
Other arrays in the file are ignored. No pickled objects (the file is read
with allow_pickle=False). H and W must be multiples of the patch size k.
Example: numpy.savez("mnist.npz", images=x_train, labels=y_train)."""


@dataclass(frozen=True)
class Images:
    """A labelled image set.

    Attributes
    ----------
    images : ndarray of shape (n, H, W, C), float64
        The pixel values.
    labels : ndarray of shape (n,), int64
        The class of each image.
    name : str
        Where the images come from.
    """

    images: np.ndarray
    labels: np.ndarray
    name: str

    @property
    def n(self) -> int:
        return self.images.shape[0]

    @property
    def shape(self):
        """(H, W, C) of one image."""
        return self.images.shape[1:]

    def class_counts(self):
        """{label: number of images}, labels in increasing order."""
        values, counts = np.unique(self.labels, return_counts=True)
        return {int(v): int(c) for v, c in zip(values, counts, strict=True)}


# ----------------------------------------------------------------------
# class splits: the classes of the two binary tasks
@dataclass(frozen=True)
class Split:
    """Classes of the two binary tasks (+1 side and -1 side of each).

    Parse from text with :meth:`parse`: ``"UP_POS/UP_NEG:DOWN_POS/DOWN_NEG"``,
    comma-separated labels, e.g. ``"3,5/8,9:3,2/8,7"``.

    Attributes
    ----------
    up_pos, up_neg, down_pos, down_neg : tuple of int
        The classes of the +1 and -1 sides of the upstream and downstream
        tasks (each non-empty, without repeats; no class on both sides of a
        task).
    """

    up_pos: tuple
    up_neg: tuple
    down_pos: tuple
    down_neg: tuple

    def __post_init__(self):
        for name in ("up_pos", "up_neg", "down_pos", "down_neg"):
            value = tuple(int(c) for c in getattr(self, name))
            if not value:
                raise ConfigError(f"split: {name} has no class")
            if len(set(value)) != len(value):
                raise ConfigError(f"split: {name} lists a class twice: {value}")
            object.__setattr__(self, name, value)
        for task in ("up", "down"):
            both = set(getattr(self, f"{task}_pos")) & set(getattr(self, f"{task}_neg"))
            if both:
                raise ConfigError(f"split: class {sorted(both)} on both sides of the {task} task")

    @classmethod
    def parse(cls, text):
        """A Split from ``"UP_POS/UP_NEG:DOWN_POS/DOWN_NEG"``; ConfigError if malformed."""
        try:
            up, down = str(text).split(":")
            (a, b), (c, d) = (side.split("/") for side in (up, down))
            parts = [tuple(int(x) for x in s.split(",") if x.strip()) for s in (a, b, c, d)]
        except ValueError:
            raise ConfigError(
                f"split {text!r}: expected UP_POS/UP_NEG:DOWN_POS/DOWN_NEG with "
                f"comma-separated integer labels, e.g. 3,5/8,9:3,2/8,7"
            ) from None
        return cls(*parts)

    def spec(self):
        """The text form that :meth:`parse` reads."""
        up, down = (
            f"{','.join(map(str, pos))}/{','.join(map(str, neg))}"
            for pos, neg in ((self.up_pos, self.up_neg), (self.down_pos, self.down_neg))
        )
        return f"{up}:{down}"

    def classes(self, task):
        """(classes, signs) of ``task`` ('up' or 'down'), +1 side first."""
        pos, neg = getattr(self, f"{task}_pos"), getattr(self, f"{task}_neg")
        return pos + neg, (1.0,) * len(pos) + (-1.0,) * len(neg)

    def shared(self):
        """Classes present in both tasks with the same sign."""
        return sorted(
            (set(self.up_pos) & set(self.down_pos)) | (set(self.up_neg) & set(self.down_neg))
        )

    def same(self):
        """The split whose upstream task is the downstream task."""
        return Split(self.down_pos, self.down_neg, self.down_pos, self.down_neg)


SPLITS = {
    "none": Split((0, 5), (6, 9), (3, 2), (8, 7)),
    "half": Split((3, 5), (8, 9), (3, 2), (8, 7)),
    "same": Split((3, 2), (8, 7), (3, 2), (8, 7)),
}
"""The three upstream tasks for the fixed downstream task (module docstring);
``half`` is the default."""

SHARE_LEVELS = ("none", "half", "same")
"""The split levels in increasing order of shared structure."""


# ----------------------------------------------------------------------
# loaders
def digits_available() -> bool:
    """True when scikit-learn (the ``realdata`` extra) can be imported.

    Returns
    -------
    bool
        Whether ``sklearn.datasets`` imports.
    """
    try:
        import sklearn.datasets  # noqa: F401
    except ImportError:
        return False
    return True


def load_digits_images() -> Images:
    """scikit-learn's bundled 8 x 8 digits, offline.

    Returns
    -------
    Images
        images of shape (1797, 8, 8, 1), float64 in [0, 1] (pixel value / 16);
        labels of shape (1797,), int64 in 0..9.

    Raises
    ------
    ImageDataError
        scikit-learn (the ``realdata`` extra) is not installed.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImageDataError(INSTALL_HINT) from None
    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float64)[..., None] / DIGITS_MAX
    labels = np.asarray(bunch.target, dtype=np.int64)
    return Images(images=np.ascontiguousarray(images), labels=labels, name=DIGITS_NAME)


def _read_npz(path):
    """The ``images`` and ``labels`` arrays of a .npz, read by
    :func:`refimpl.files.read_npz` (declared sizes checked against the memory
    budget before reading; other keys not read); errors name the path and the key."""
    if not os.path.isfile(path):
        raise ImageDataError(f"{path}: no such file")
    try:
        arrays = read_npz(path, wanted=lambda k: k in ("images", "labels"), what="the image file")
    except ValueError as exc:
        raise ImageDataError(
            f"{path}: not a readable .npz file of plain numeric arrays "
            f"({exc}); write it with numpy.savez or numpy.savez_compressed"
        ) from None
    except OSError as exc:
        raise ImageDataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    missing = [k for k in ("images", "labels") if k not in arrays]
    if missing:
        raise ImageDataError(
            f"{path}: missing array {', '.join(repr(k) for k in missing)}; the file needs "
            f"'images' (n, H, W[, C]) and 'labels' (n,)"
        )
    return arrays["images"], arrays["labels"]


def load_npz_images(path) -> Images:
    """Images and labels from a user's ``.npz`` (format: :data:`NPZ_FORMAT`).

    Parameters
    ----------
    path : str or os.PathLike
        The ``.npz`` file.

    Returns
    -------
    Images
        images of shape (n, H, W, C) float64, labels (n,) int64.

    Raises
    ------
    ImageDataError
        The file is missing, not a .npz, or its arrays do not follow the format
        (one line naming the path, the array and what was expected).
    """
    path = os.fspath(path)
    images, labels = _read_npz(path)
    for key, a in (("images", images), ("labels", labels)):
        if a.dtype.kind not in "uif":
            raise ImageDataError(f"{path}: '{key}' must be numeric, got dtype {a.dtype}")
    if images.ndim not in (3, 4):
        raise ImageDataError(
            f"{path}: 'images' must have shape (n, H, W) or (n, H, W, C), got {images.shape}"
        )
    if labels.ndim != 1:
        raise ImageDataError(f"{path}: 'labels' must have shape (n,), got {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise ImageDataError(
            f"{path}: 'labels' has {labels.shape[0]} entries for "
            f"{images.shape[0]} images; they must match one to one"
        )
    if images.shape[0] == 0 or min(images.shape[1:]) == 0:
        raise ImageDataError(f"{path}: 'images' is empty (shape {images.shape})")
    if labels.dtype.kind == "f" and (
        not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels))
    ):
        raise ImageDataError(f"{path}: 'labels' must be integer class labels")
    if images.dtype.kind == "f" and not np.all(np.isfinite(images)):
        raise ImageDataError(f"{path}: 'images' contains NaN or infinite values")
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    images = np.asarray(images, dtype=np.float64) / scale
    if images.ndim == 3:
        images = images[..., None]
    H, W, C = images.shape[1:]
    return Images(
        images=np.ascontiguousarray(images),
        labels=labels.astype(np.int64),
        name=f"{os.path.basename(path)} ({H}x{W}x{C})",
    )


# ----------------------------------------------------------------------
# sources: what a sweep measure is told to load
def file_sha256(path) -> str:
    """SHA-256 hex digest of a file's bytes.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    str
        The hex digest.

    Raises
    ------
    ImageDataError
        When the file cannot be read.
    """
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise ImageDataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return h.hexdigest()


def source_options(source=DIGITS) -> dict:
    """The measure options naming a data source: ``{"source": "digits"}``, or
    for a ``.npz`` its absolute path and the SHA-256 of its bytes (so the
    sweep cache key changes with the file's content).

    Parameters
    ----------
    source : str or os.PathLike, optional
        ``"digits"`` or a ``.npz`` file.

    Returns
    -------
    dict
        ``{"source": "digits"}`` or ``{"source": path, "sha256": digest}``.

    Raises
    ------
    ImageDataError
        When the ``.npz`` file does not exist or cannot be read.
    """
    if source == DIGITS:
        return {"source": DIGITS}
    path = os.path.abspath(os.fspath(source))
    if not os.path.isfile(path):
        raise ImageDataError(f"{source}: no such file")
    return {"source": path, "sha256": file_sha256(path)}


def _readonly(a):
    a.setflags(write=False)
    return a


def _frozen(images: Images) -> Images:
    _readonly(images.images)
    _readonly(images.labels)
    return images


@functools.lru_cache(maxsize=1)
def _digits():
    return _frozen(load_digits_images())


@functools.lru_cache(maxsize=4)
def _npz(path, mtime_ns, size):
    """(Images, sha256) of a .npz; cached per process by path, mtime and size."""
    del mtime_ns, size  # cache key only: a rewritten file is read again
    return _frozen(load_npz_images(path)), file_sha256(path)


def load_source(source=DIGITS, sha256=None) -> Images:
    """The images of a source (:func:`source_options`), loaded once per process.

    The returned arrays are read-only (they are shared by the calls).
    ImageDataError when the file's content no longer matches ``sha256``.

    Parameters
    ----------
    source : str or os.PathLike, optional
        ``"digits"`` (scikit-learn's 8x8 digits) or a ``.npz`` file.
    sha256 : str, optional
        The SHA-256 the file had when the run started; None: not checked.

    Returns
    -------
    Images
        The images and labels.

    Raises
    ------
    ImageDataError
        A missing or unusable file, or one whose SHA-256 changed.
    """
    if source == DIGITS:
        return _digits()
    path = os.fspath(source)
    try:
        st = os.stat(path)
    except OSError:
        raise ImageDataError(f"{path}: no such file") from None
    images, digest = _npz(path, st.st_mtime_ns, st.st_size)
    if sha256 is not None and digest != sha256:
        raise ImageDataError(
            f"{path}: the file changed since the run started (its SHA-256 "
            f"no longer matches); run again"
        )
    return images


@functools.lru_cache(maxsize=8)
def _patched(source, sha256, k):
    images = load_source(source, sha256)
    return _readonly(patchify(images.images, k)), images.labels


def load_patches(k, source=DIGITS, sha256=None):
    """``(X_all, labels)`` of a source cut into k x k patches (:func:`patchify`),
    once per process and patch size; read-only arrays of shapes (n, P, d), (n,).

    Parameters
    ----------
    k : int
        The block side.
    source : str or os.PathLike, optional
        ``"digits"`` or a ``.npz`` file (:func:`source_options`).
    sha256 : str, optional
        The file's expected SHA-256 (see :func:`load_source`).

    Returns
    -------
    X_all : ndarray of shape (n, P, d)
        The patches of every image.
    labels : ndarray of shape (n,)
        The class of each image.
    """
    return _patched(source, sha256, k)


# ----------------------------------------------------------------------
# patches
def check_patch_size(shape, k):
    """ImageDataError unless ``k`` is a positive integer dividing H and W of
    ``shape`` = (H, W[, C]).

    Parameters
    ----------
    shape : tuple of int
        (H, W) or (H, W, C) of one image.
    k : int
        The block side.

    Raises
    ------
    ImageDataError
        When ``k`` is not a positive integer or does not divide H and W.
    """
    H, W = shape[0], shape[1]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ImageDataError(f"patch size k must be a positive integer, got {k!r}")
    if H % k or W % k:
        raise ImageDataError(
            f"images of {H}x{W} pixels cannot be cut into {k}x{k} blocks "
            f"(H and W must be multiples of k)"
        )


def patchify(images, k):
    """Non-overlapping k x k blocks, flattened (module docstring).

    Parameters
    ----------
    images : ndarray of shape (n, H, W, C) or (n, H, W)
        The images (one channel when 3-dimensional).
    k : int
        Block side; divides H and W.

    Returns
    -------
    ndarray of shape (n, P, d), float64, P = (H/k)(W/k), d = k*k*C
        ``X[i, a*(W/k) + b]`` is block (a, b) of image i, flattened in
        (row, column, channel) order.

    Raises
    ------
    ImageDataError
        Images of another dimension, or k not a positive integer dividing H
        and W.
    """
    images = np.asarray(images, dtype=np.float64)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise ImageDataError(f"images must have shape (n, H, W[, C]), got {images.shape}")
    n, H, W, C = images.shape
    check_patch_size((H, W), k)
    X = images.reshape(n, H // k, k, W // k, k, C).transpose(0, 1, 3, 2, 4, 5)
    return np.ascontiguousarray(X.reshape(n, (H // k) * (W // k), k * k * C))


def unpatchify(X, shape, k):
    """Inverse of :func:`patchify`.

    Parameters
    ----------
    X : ndarray of shape (n, P, d)
        Patches made by :func:`patchify`.
    shape : (H, W, C)
        The shape of one image.
    k : int
        Block side.

    Returns
    -------
    ndarray of shape (n, H, W, C)

    Raises
    ------
    ValueError
        When X does not hold k x k blocks of images of ``shape``.
    """
    H, W, C = shape
    X = np.asarray(X)
    n = X.shape[0]
    if X.shape[1:] != ((H // k) * (W // k), k * k * C):
        raise ValueError(f"X of shape {X.shape} does not hold {k}x{k} blocks of {shape} images")
    return X.reshape(n, H // k, W // k, k, k, C).transpose(0, 1, 3, 2, 4, 5).reshape(n, H, W, C)


def fit_standardizer(X):
    """Per-coordinate mean and standard deviation over all patches of X.

    Parameters
    ----------
    X : ndarray of shape (n, P, d)
        Patches (training patches: the statistics are then applied to the
        test patches too).

    Returns
    -------
    mean, std : ndarray of shape (d,)
        ``std`` is 1 where a coordinate is constant (for example a border
        pixel that is always 0), so that coordinate stays 0 after centring.
    """
    flat = np.asarray(X, dtype=np.float64).reshape(-1, X.shape[-1])
    mean = flat.mean(axis=0)
    std = flat.std(axis=0)
    return mean, np.where(std > 1e-12, std, 1.0)


def apply_standardizer(X, stats):
    """(X - mean) / std, coordinatewise; shape (n, P, d) kept.

    Parameters
    ----------
    X : ndarray of shape (n, P, d)
        Patches.
    stats : tuple of ndarray
        ``(mean, std)`` from :func:`fit_standardizer`.

    Returns
    -------
    ndarray of shape (n, P, d)
        The standardised patches.
    """
    mean, std = stats
    return np.ascontiguousarray((X - mean) / std)
