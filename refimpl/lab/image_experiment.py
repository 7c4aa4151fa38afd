"""Partial parameter transfer on real images: the class-split tasks, their
validated config, and one seeded run as a sweep measure.

The same two-layer ReLU CNN and the same full-batch GD as the synthetic
experiments (docs/model.md §3, :func:`refimpl.train.train_stage` with
``track=False``), the same three-stage experiment (docs/model.md §5,
:func:`refimpl.transfer.run_stages`: upstream training, the transfer
operator, fine-tuning and the scratch baseline), fed with real images cut
into patches (:mod:`refimpl.lab.images`). The image tasks are data only: they
have no signal/noise structure (``Task.structure`` is None).

Tasks (the class-split design)
------------------------------
Both tasks are binary, +1 versus -1, each side a set of classes
(:class:`Split`). They *share structure and differ in part*, the analogue of
docs/model.md §2: a pair of classes appears in both tasks with the same sign
(it plays the shared signal u: a filter that separates 3 from 8 upstream still
separates them downstream), and each task has a pair of its own (the
task-specific signals v_1, v_2: what upstream learns about 5 vs 9 is of no
direct use for 2 vs 7). No class appears with opposite signs in the two tasks:
that would be a shared signal with a flipped sign, which the model does not
have. The downstream task is fixed, 3 and 2 (+1) versus 8 and 7 (-1), and
three upstream tasks set how much is shared (:data:`SPLITS`):

========  =======================  ==================================
level     upstream (+1 vs -1)      shared with downstream
========  =======================  ==================================
none      0, 5 vs 6, 9             nothing (the |u| = 0 analogue)
half      3, 5 vs 8, 9 (default)   3 vs 8; 5 vs 9 is upstream's own
same      3, 2 vs 8, 7             everything (same task, other images)
========  =======================  ==================================

3 vs 8 and 2 vs 7 are pairs that share strokes, so the downstream task is not
trivial for a model that sees an image as a bag of 4 x 4 blocks (scratch
accuracy about 0.83 from 16 images). Every class of a task contributes the
same number of images (n must be a multiple of the number of classes of the
task): both tasks are exactly class-balanced and label-balanced.

Randomness
----------
All of a run's randomness comes from ``config.seed``, split into the named
streams :data:`STREAMS` (:func:`refimpl.lab.seeds.streams`): ``images`` (one
permutation of the whole image set), ``flips`` (one uniform draw per image),
``init_up``, ``init_down`` and ``transfer``. The images of class c are taken
in the order in which they appear in that permutation: the downstream test
images are the first ``n_test_per_class``, the downstream training images the
next ones, and the upstream training images are taken from the end. Test
images are never trained on, by either task. The draws do not depend on the
sizes, the split or the flip probability, so with one seed a larger N_1 or
N_2 adds images and keeps the others, every split level has the same
downstream data, and the flipped sets are nested in ``flip_up`` (image i is
flipped when its draw is below the probability). A sweep that names those
fields ``common`` (:func:`refimpl.lab.sweep.run_sweep`) therefore pairs its
points by seed (common random numbers). Upstream label noise flips each
upstream training label with probability ``flip_up`` (docs/model.md §2.2);
the test labels are always the true ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from ..config import BOOL_FIELD, ValidatedConfig, choice_field, int_field, parsed_field, real_field
from ..data import Task
from ..errors import ConfigError, ImageDataError
from ..network import forward
from ..transfer import run_stages, stage_schedule, train_shared
from .images import (
    DIGITS,
    SHARE_LEVELS,
    SPLITS,
    Split,
    apply_standardizer,
    fit_standardizer,
    load_patches,
    load_source,
)
from .seeds import streams
from .sweep import run_sweep

__all__ = [
    "Split",
    "SPLITS",
    "SHARE_LEVELS",
    "ImageConfig",
    "STREAMS",
    "METRICS",
    "draw_indices",
    "flip_mask",
    "make_task",
    "build_tasks",
    "accuracy",
    "transfer_vs_scratch",
    "measure_images",
    "PAIRED",
    "sweep_images",
]

STREAMS = ("images", "flips", "init_up", "init_down", "transfer")
"""The named random streams of one run, all from ``config.seed``."""

METRICS = (
    "acc_transfer",
    "acc_scratch",
    "gain",
    "loss_up",
    "loss_down",
    "loss_scratch",
    "steps_up",
    "steps_down",
    "steps_scratch",
)
"""What :func:`measure_images` returns: the accuracies of the fine-tuned
(``transfer``) and the scratch networks and their difference; the final
training loss and the steps run of each stage, named by the stages of
:data:`refimpl.transfer.STAGES` as in the synthetic measures."""


# ----------------------------------------------------------------------
# tasks
SPLIT_FIELD = parsed_field(lambda v: v if isinstance(v, Split) else Split.parse(v))
"""Field metadata: a :class:`Split` (or its text form, parsed)."""


@dataclass(frozen=True)
class ImageConfig(ValidatedConfig):
    """One real-image transfer run (docs/model.md §1 names where they exist).

    Validated at construction like :class:`refimpl.Config`: a bad value raises
    :class:`~refimpl.errors.ConfigError` naming the field. In ``to_dict`` and
    JSON the split is its text form (:meth:`Split.spec`).

    Attributes
    ----------
    split : Split
        The classes of both tasks (a text form is parsed).
    k : int
        Patch side (d = k*k*C, P = HW/k^2).
    standardize : bool
        Standardise patch coordinates with the statistics of the downstream
        training images (no test image; the upstream and test images are
        transformed with the same statistics, so that inherited filters see
        inputs on the same scale).
    m : int
        Filters per class, both networks.
    sigma_0, eta : float
        Init scale and step size (docs/model.md §3).
    steps_up, steps_down : int
        Step caps T of the upstream stage and of the downstream stages
        (transfer and scratch share the rule).
    epsilon : float
        Stop a stage at the first step whose training loss is <= epsilon (0: off).
    weight_decay_up, weight_decay : float
        lambda upstream; lambda of fine-tuning and scratch.
    n_up, n_down : int
        N_1, N_2; multiples of the number of classes of the task.
    n_test_per_class : int
        Downstream test images per downstream class.
    flip_up, flip_down : float
        Label-flip probability of the training labels, in [0, 1/2).
    alpha : float
        Inherited fraction (docs/model.md §5).
    granularity : {"filter", "entry"}
    freeze_inherited : bool
    rescale_inherited : float
        Factor on inherited weights.
    seed : int
        The one seed of the run (:data:`STREAMS`).
    """

    split: Split = field(default=SPLITS["half"], metadata=SPLIT_FIELD)
    k: int = field(default=4, metadata=int_field(1))
    standardize: bool = field(default=False, metadata=BOOL_FIELD)
    m: int = field(default=10, metadata=int_field(1))
    sigma_0: float = field(default=0.01, metadata=real_field(0.0, lo_open=True))
    eta: float = field(default=0.5, metadata=real_field(0.0, lo_open=True))
    steps_up: int = field(default=3000, metadata=int_field(1))
    steps_down: int = field(default=3000, metadata=int_field(1))
    epsilon: float = field(default=0.05, metadata=real_field(0.0))
    weight_decay_up: float = field(default=0.0, metadata=real_field(0.0))
    weight_decay: float = field(default=0.0, metadata=real_field(0.0))
    n_up: int = field(default=160, metadata=int_field(1))
    n_down: int = field(default=16, metadata=int_field(1))
    n_test_per_class: int = field(default=60, metadata=int_field(1))
    flip_up: float = field(default=0.0, metadata=real_field(0.0, 0.5, hi_open=True))
    flip_down: float = field(default=0.0, metadata=real_field(0.0, 0.5, hi_open=True))
    alpha: float = field(default=1.0, metadata=real_field(0.0, 1.0))
    granularity: str = field(default="filter", metadata=choice_field("filter", "entry"))
    freeze_inherited: bool = field(default=False, metadata=BOOL_FIELD)
    rescale_inherited: float = field(default=1.0, metadata=real_field(0.0))
    seed: int = field(default=0, metadata=int_field(0, 2**63 - 1))

    def _check_combinations(self):
        for name, task in (("n_up", "up"), ("n_down", "down")):
            n, count = getattr(self, name), len(self.split.classes(task)[0])
            if n % count:
                raise ConfigError(
                    f"{name}={n} must be a positive multiple of the {count} classes "
                    f"of the {task} task (each class gives {name}/{count} images)"
                )
        if self.freeze_inherited and self.granularity == "entry":
            raise ConfigError(
                "freeze_inherited=true needs granularity='filter' (a filter with "
                "some frozen entries cannot be frozen as a whole)"
            )
        for name in ("weight_decay_up", "weight_decay"):
            if self.eta * getattr(self, name) >= 1.0:
                raise ConfigError(
                    f"{name}={getattr(self, name)} with eta={self.eta}: "
                    f"eta*{name} must be < 1 (docs/model.md §3.4)"
                )

    def to_dict(self) -> dict:
        return {
            f.name: (self.split.spec() if f.name == "split" else getattr(self, f.name))
            for f in fields(self)
        }


def _stream(config, name):
    return streams(config.seed, STREAMS)[name]


def draw_indices(labels, config: ImageConfig):
    """Disjoint, class-balanced image indices of one run (module docstring).

    Parameters
    ----------
    labels : ndarray of shape (n_images,), int
    config : ImageConfig

    Returns
    -------
    dict
        ``up``, ``down``, ``test``: index arrays (into ``labels``) of the
        upstream training, downstream training and downstream test images,
        class by class in the order of :meth:`Split.classes` (+1 side first);
        ``up_y``, ``down_y``, ``test_y``: their true labels (+-1, float64).

    Raises
    ------
    ImageDataError
        A class has too few images for the requested sizes.
    """
    labels = np.asarray(labels)
    s = config.split
    up_cls, up_sign = s.classes("up")
    dn_cls, dn_sign = s.classes("down")
    n1c, n2c, tc = config.n_up // len(up_cls), config.n_down // len(dn_cls), config.n_test_per_class
    for c in sorted(set(up_cls) | set(dn_cls)):
        have = int(np.sum(labels == c))
        need = (tc + n2c if c in dn_cls else 0) + (n1c if c in up_cls else 0)
        if need > have:
            raise ImageDataError(
                f"class {c} has {have} images; the run needs {need} "
                f"(test {tc if c in dn_cls else 0} + downstream {n2c if c in dn_cls else 0} + "
                f"upstream {n1c if c in up_cls else 0}): lower n_up, n_down or n_test_per_class"
            )
    perm = _stream(config, "images").permutation(labels.size)
    order = {c: perm[labels[perm] == c] for c in set(up_cls) | set(dn_cls)}
    out = {key: [] for key in ("up", "down", "test", "up_y", "down_y", "test_y")}
    for c, sign in zip(dn_cls, dn_sign, strict=True):
        out["test"].append(order[c][:tc])
        out["down"].append(order[c][tc : tc + n2c])
        out["test_y"].append(np.full(tc, sign))
        out["down_y"].append(np.full(n2c, sign))
    for c, sign in zip(up_cls, up_sign, strict=True):
        out["up"].append(order[c][::-1][:n1c])
        out["up_y"].append(np.full(n1c, sign))
    return {k: np.concatenate(v) for k, v in out.items()}


def flip_mask(n_images, idx, flip, config: ImageConfig):
    """Which of the images ``idx`` get a flipped training label: image i is
    flipped when its own uniform draw (stream ``flips``, one per image of the
    set) is below ``flip``, so the flipped sets are nested in ``flip``."""
    if flip <= 0:
        return np.zeros(len(idx), bool)
    return _stream(config, "flips").random(n_images)[idx] < flip


def make_task(X, y_clean, y=None):
    """A :class:`refimpl.data.Task` of real patches: the data only, without a
    signal/noise structure (``structure`` None: the patches are not signals
    and noise), so it is trained with ``track=False``.

    Parameters
    ----------
    X : ndarray of shape (n, P, d)
    y_clean : ndarray of shape (n,), true labels +-1
    y : ndarray of shape (n,), observed labels +-1 (default: y_clean)
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    y_clean = np.asarray(y_clean, dtype=np.float64)
    y = y_clean if y is None else np.asarray(y, dtype=np.float64)
    return Task(X=X, y=y, y_clean=y_clean)


def build_tasks(X_all, labels, config: ImageConfig):
    """The upstream and downstream training tasks and the downstream test set
    of one run.

    Parameters
    ----------
    X_all : ndarray of shape (n_images, P, d)
        All images, patched (:func:`refimpl.lab.images.patchify`).
    labels : ndarray of shape (n_images,)
    config : ImageConfig

    Returns
    -------
    dict
        ``up``, ``down``: :class:`~refimpl.data.Task`; ``X_test`` (n_test, P, d),
        ``y_test`` (n_test,); ``indices``: the dict of :func:`draw_indices`.
    """
    idx = draw_indices(labels, config)
    X_up, X_down, X_test = X_all[idx["up"]], X_all[idx["down"]], X_all[idx["test"]]
    if config.standardize:
        stats = fit_standardizer(X_down)  # downstream training images only
        X_up, X_down, X_test = (apply_standardizer(Z, stats) for Z in (X_up, X_down, X_test))
    n = len(labels)
    flip_up = flip_mask(n, idx["up"], config.flip_up, config)
    flip_down = flip_mask(n, idx["down"], config.flip_down, config)
    up = make_task(X_up, idx["up_y"], np.where(flip_up, -idx["up_y"], idx["up_y"]))
    down = make_task(X_down, idx["down_y"], np.where(flip_down, -idx["down_y"], idx["down_y"]))
    return {
        "up": up,
        "down": down,
        "X_test": np.ascontiguousarray(X_test),
        "y_test": idx["test_y"],
        "indices": idx,
    }


def accuracy(W, X, y):
    """Held-out accuracy: the fraction of y_i f(W, x_i) > 0 (ties count as
    errors, docs/model.md §6.1)."""
    return float(np.mean(y * forward(W, X) > 0))


# ----------------------------------------------------------------------
# one run
def _fitter(config):
    """The ``fit`` of :func:`refimpl.transfer.run_stages` for images: one
    step size, two snapshots, no tracking."""

    def fit(stage, W0, task, trainable):
        steps, weight_decay = stage_schedule(config, stage)
        return train_shared(  # once per block of refimpl.memo.shared_stages
            W0,
            task,
            config.eta,
            steps,
            weight_decay=weight_decay,
            trainable=trainable,
            epsilon=config.epsilon,
            snapshots=2,
            track=False,
        )

    return fit


def transfer_vs_scratch(X_all, labels, config: ImageConfig):
    """Train upstream, transfer (alpha = ``config.alpha``), fine-tune, and the
    scratch baseline (same downstream data, same fresh filters, same step size
    and stopping rule, docs/model.md §5.4) with
    :func:`refimpl.transfer.run_stages`; score the fine-tuned and the scratch
    network on the held-out downstream images.

    Parameters
    ----------
    X_all : ndarray of shape (n_images, P, d)
    labels : ndarray of shape (n_images,)
    config : ImageConfig

    Returns
    -------
    dict
        :data:`METRICS` (``gain`` = acc_transfer - acc_scratch; final training
        losses and steps run of ``up``, ``down`` and ``scratch``) and
        ``indices`` (:func:`draw_indices`).
    """
    t = build_tasks(X_all, labels, config)
    d, m = X_all.shape[2], config.m
    W_up0 = config.sigma_0 * _stream(config, "init_up").standard_normal((2, m, d))
    W_fresh = config.sigma_0 * _stream(config, "init_down").standard_normal((2, m, d))
    run = run_stages(
        _fitter(config),
        t["up"],
        t["down"],
        W_up0,
        W_fresh,
        _stream(config, "transfer"),
        alpha=config.alpha,
        granularity=config.granularity,
        rescale=config.rescale_inherited,
        freeze_inherited=config.freeze_inherited,
    )
    up, down, scratch = (run.stages[s] for s in ("up", "down", "scratch"))
    acc_t = accuracy(down.W_final, t["X_test"], t["y_test"])
    acc_s = accuracy(scratch.W_final, t["X_test"], t["y_test"])
    return {
        "acc_transfer": acc_t,
        "acc_scratch": acc_s,
        "gain": acc_t - acc_s,
        "loss_up": float(up.loss[-1]),
        "loss_down": float(down.loss[-1]),
        "loss_scratch": float(scratch.loss[-1]),
        "steps_up": int(up.T),
        "steps_down": int(down.T),
        "steps_scratch": int(scratch.T),
        "indices": t["indices"],
    }


def measure_images(config: ImageConfig, source=DIGITS, sha256=None):
    """The sweep measure (:func:`refimpl.lab.sweep.run_sweep`) of one seeded
    real-image run: :data:`METRICS` of :func:`transfer_vs_scratch`.

    Parameters
    ----------
    config : ImageConfig
    source, sha256 : the options of :func:`refimpl.lab.images.source_options`
        The images, loaded and patched once per process.
    """
    X_all, labels = load_patches(config.k, source, sha256)
    res = transfer_vs_scratch(X_all, labels, config)
    return {k: res[k] for k in METRICS}


PAIRED = ("split", "alpha", "n_up", "n_down", "flip_up")
"""The fields a real-image sweep varies without changing the seed (module
docstring: with one seed the draws do not depend on them)."""


def sweep_images(
    points,
    replicates,
    options=None,
    jobs=1,
    cache=None,
    progress=True,
    salt="images",
    common=PAIRED,
):
    """Run labelled sweep points through :func:`refimpl.lab.sweep.run_sweep`
    with :func:`measure_images` (a config shared by several points runs once).

    Parameters
    ----------
    points : list of (sweep, level, ImageConfig)
        ``sweep`` and ``level`` only label the rows.
    replicates : int
        Seeds per point; replicate r of every point has the same seed when
        the points differ only in ``common`` fields (common random numbers).
    options : dict, optional
        The data source (:func:`refimpl.lab.images.source_options`; default
        the digits).
    jobs, cache, progress, salt, common
        As for :func:`~refimpl.lab.sweep.run_sweep`.

    Returns
    -------
    rows : list of dict
        One per (point, replicate): sweep, level, split (text), alpha, n_up,
        n_down, flip_up, replicate, seed and :data:`METRICS`.
    sweep : refimpl.lab.sweep.Sweep

    Raises
    ------
    ImageDataError
        Before any training: the patch size does not divide the images, or a
        class has too few images for a point.
    """
    options = {"source": DIGITS} if options is None else options
    labels = load_source(**options).labels
    unique = list(dict.fromkeys(cfg for _, _, cfg in points))
    for cfg in unique:
        load_patches(cfg.k, **options)
        draw_indices(labels, cfg)
    sw = run_sweep(
        unique,
        measure=measure_images,
        replicates=replicates,
        jobs=jobs,
        cache=cache,
        common=common,
        salt=salt,
        options=options,
        label=salt,
        progress=progress,
        metrics=METRICS,
    )
    where = {cfg: i for i, cfg in enumerate(unique)}
    rows = []
    for sweep, level, cfg in points:
        i = where[cfg]
        rows += [
            {
                "sweep": sweep,
                "level": level,
                "split": cfg.split.spec(),
                "alpha": cfg.alpha,
                "n_up": cfg.n_up,
                "n_down": cfg.n_down,
                "flip_up": cfg.flip_up,
                "replicate": r,
                "seed": int(sw.seeds[i, r]),
                **sw.results[i][r],
            }
            for r in range(replicates)
        ]
    return rows, sw
