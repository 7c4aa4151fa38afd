"""The transfer operator and the three-stage experiment (docs/model.md §5):
``up`` (upstream training), ``down`` (fine-tuning from inherited weights) and
``scratch`` (the baseline with the same downstream data and fresh filters).

:func:`run_stages` runs the three stages on any data; :func:`run_experiment`
runs them on the synthetic tasks of docs/model.md §2, and
:func:`refimpl.lab.image_experiment.transfer_vs_scratch` on real images.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .budget import check_run
from .config import GRANULARITIES, Config, n_inherited, real_argument, shown
from .data import sample_task, signal_vectors
from .errors import ConfigError
from .evaluation import estimate_test_error
from .memo import memoized
from .network import check_weights
from .train import train_stage

__all__ = [
    "n_inherited",
    "inherit",
    "inherited_filters",
    "count_dead",
    "Experiment",
    "StageRun",
    "stage_schedule",
    "run_stages",
    "run_experiment",
    "train_shared",
    "STAGES",
    "streams",
]

STAGES = ("up", "down", "scratch")
_STREAMS = ("data_up", "init_up", "data_down", "init_down", "transfer", "test")


def streams(seed, names=_STREAMS):
    """Independent generators for each use of randomness, all from one seed
    (a SeedSequence spawned once per use, in the order of ``names``): the
    same seed gives the same draws for each use whatever the others do.

    Parameters
    ----------
    seed : int
        The run's seed.
    names : sequence of str, optional
        The uses, by default ``data_up``, ``init_up``, ``data_down``,
        ``init_down``, ``transfer`` and ``test``.

    Returns
    -------
    dict of str to numpy.random.Generator
        A fresh generator per name.
    """
    children = np.random.SeedSequence(seed).spawn(len(names))
    return {name: np.random.default_rng(c) for name, c in zip(names, children, strict=True)}


def inherit(W_up, W_fresh, alpha, rng, granularity="filter", rescale=1.0):
    """The transfer operator (docs/model.md §5.2).

    ``filter``: for each class j, round(alpha m_2) upstream filters chosen
    uniformly at random are copied (times ``rescale``) into as many downstream
    positions chosen uniformly at random, in order; the class is kept. The
    other downstream filters keep their fresh values W_fresh.
    ``entry``: each weight entry is inherited in place with probability alpha.

    Parameters
    ----------
    W_up : ndarray of shape (2, m_1, d)
        The upstream weights after training (not modified).
    W_fresh : ndarray of shape (2, m_2, d)
        Freshly initialised downstream weights (not modified).
    alpha : float in [0, 1]
        The inherited fraction.
    rng : numpy.random.Generator
        Chooses the filters or entries (the run's ``transfer`` stream).
    granularity : {"filter", "entry"}
        The unit of inheritance; ``entry`` needs m_1 = m_2.
    rescale : float
        The factor c applied to the inherited weights.

    Returns
    -------
    W0 : ndarray of shape (2, m_2, d)
        Downstream initial weights.
    inherited : ndarray of shape (2, m_2) or (2, m_2, d), bool
    source : ndarray of shape (2, m_2), int
        The upstream filter each downstream filter inherits from; -1 for
        fresh filters (``entry``: the same index, where any entry is inherited).

    Raises
    ------
    ConfigError
        An unusable argument (weights of different d, alpha outside [0, 1],
        a non-finite rescale, an unknown granularity, rng not a Generator).
    TypeError, ValueError
        Weights that are not float64 arrays of shape (2, m, d)
        (:func:`refimpl.network.check_weights`); ``entry`` with m_1 != m_2; more
        inherited filters per class than m_1.
    """
    _check_inherit(W_up, W_fresh, alpha, rng, granularity, rescale)
    m1, m2 = W_up.shape[1], W_fresh.shape[1]
    W0 = W_fresh.copy()
    if granularity == "entry":
        if m1 != m2:
            raise ValueError("granularity='entry' needs equal upstream and downstream widths")
        inherited = rng.random(W_fresh.shape) < alpha
        W0[inherited] = rescale * W_up[inherited]
        source = np.where(inherited.any(axis=2), np.arange(m2)[None, :], -1)
        return W0, inherited, source
    k = n_inherited(alpha, m2)
    if k > m1:
        raise ValueError(f"cannot inherit {k} filters per class from an upstream width of {m1}")
    inherited = np.zeros((2, m2), bool)
    source = np.full((2, m2), -1)
    for j in range(2):
        src = np.sort(rng.choice(m1, size=k, replace=False))
        dst = np.sort(rng.choice(m2, size=k, replace=False))
        W0[j, dst] = rescale * W_up[j, src]
        inherited[j, dst] = True
        source[j, dst] = src
    return W0, inherited, source


def _check_inherit(W_up, W_fresh, alpha, rng, granularity, rescale):
    """The arguments of :func:`inherit`, each a ConfigError naming it when unusable."""
    W_up, W_fresh = check_weights(W_up, "W_up"), check_weights(W_fresh, "W_fresh")
    if W_up.shape[2] != W_fresh.shape[2]:
        raise ConfigError(
            f"inherit: W_up and W_fresh must have the same d, got {W_up.shape} and {W_fresh.shape}"
        )
    real_argument("inherit: alpha", alpha, 0.0)
    if alpha > 1:
        raise ConfigError(f"inherit: alpha must be in [0, 1], got {alpha}")
    real_argument("inherit: rescale", rescale)
    if not isinstance(granularity, str) or granularity not in GRANULARITIES:
        raise ConfigError(
            f"inherit: granularity must be {' or '.join(map(repr, GRANULARITIES))}, "
            f"got {shown(granularity)}"
        )
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(f"inherit: rng must be a numpy.random.Generator, got {shown(rng)}")


@dataclass
class Experiment:
    """The three stages of one run and what is needed to evaluate them.

    Attributes
    ----------
    config : Config
        The run's configuration.
    u, v_up, v_down : ndarray of shape (d,)
        The shared signal u and the task signals v_1, v_2 (docs/model.md §2.5).
    stages : dict of str to Stage
        ``up``, ``down`` and ``scratch`` (:class:`refimpl.train.Stage`).
    inherited : ndarray of shape (2, m_2) or (2, m_2, d), bool
        The transfer mask of :func:`inherit`.
    source : ndarray of shape (2, m_2), int
        The upstream filter each downstream filter inherits from; -1 for fresh
        filters.
    """

    config: Config
    u: np.ndarray
    v_up: np.ndarray
    v_down: np.ndarray
    stages: dict
    inherited: np.ndarray
    source: np.ndarray

    def task_of(self, stage):
        """(v, sigma_p, flip) of the task a stage is trained and tested on."""
        c = self.config
        if stage == "up":
            return self.v_up, c.sigma_p_up, c.flip_up
        return self.v_down, c.sigma_p_down, c.flip_down

    def test_error(self, stage, W=None, n_test=None, estimator=None):
        """Test error of a stage's final weights (or of W) on the stage's task.

        The test draws come from the run's own ``test`` stream, restarted for
        every call: transfer and scratch are scored on the same draws
        (common random numbers), so their difference has a small variance."""
        c = self.config
        if not isinstance(stage, str) or stage not in self.stages:
            raise ConfigError(
                f"test_error: stage must be one of {', '.join(self.stages)}, got {shown(stage)}"
            )
        v, sigma_p, flip = self.task_of(stage)
        W = self.stages[stage].W_final if W is None else W
        args = (W, self.u, v, sigma_p, flip, c.layout, c.n_test if n_test is None else n_test)
        estimator = c.estimator if estimator is None else estimator
        return memoized(  # computed once per block of refimpl.memo.shared_stages
            "test_error",
            (*args, c.seed, estimator),
            lambda: estimate_test_error(*args, streams(c.seed)["test"], estimator),
        )

    @property
    def inherited_filters(self):
        """(2, m_2) bool: the inherited filters (``filter`` granularity), or the
        filters with the majority of their entries inherited (``entry``): the
        groups "inherited" and "fresh" of the diagnostics (docs/model.md §4)."""
        return inherited_filters(self.inherited)


def inherited_filters(inherited):
    """(2, m_2) bool filter groups from the transfer mask ``inherited`` of
    shape (2, m_2) (``filter`` granularity: itself) or (2, m_2, d) (``entry``:
    the filters with the majority of their entries inherited).

    Parameters
    ----------
    inherited : array_like of shape (2, m_2) or (2, m_2, d), bool
        The transfer mask.

    Returns
    -------
    ndarray of shape (2, m_2), bool
        A new array, True for an inherited filter.
    """
    inherited = np.asarray(inherited, bool)
    if inherited.ndim == 3:
        return inherited.mean(axis=2) > 0.5
    return inherited.copy()


def count_dead(silent, y, flipped, inherited=None):
    """The dead points of a fine-tuning start (docs/model.md §8.3): flipped
    training points i of observed class j = y_i on which every filter of
    class j is silent (``silent[j, r, i]``: filter r of class j has a
    non-positive pre-activation on every patch of x_i); given ``inherited``
    (2, m) only the inherited filters need be silent, and a class without
    one has no dead point.

    Parameters
    ----------
    silent : ndarray of shape (2, m, n), bool
        True where filter r of class j is inactive on every patch of x_i.
    y : ndarray of shape (n,)
        Observed labels (+1 for axis 0 of ``silent``, -1 for axis 1).
    flipped : ndarray of shape (n,), bool
        True for a training point whose observed label is flipped.
    inherited : ndarray of shape (2, m), bool, optional
        The inherited filters; None: every filter counts.

    Returns
    -------
    int
    """
    if inherited is not None:
        silent = silent | ~inherited[:, :, None]
    dead = 0
    for j, label in enumerate((1.0, -1.0)):
        if inherited is not None and not inherited[j].any():
            continue
        dead += int(np.sum(flipped & (y == label) & silent[j].all(axis=0)))
    return dead


class StageRun(NamedTuple):
    """What :func:`run_stages` returns.

    Attributes
    ----------
    stages : dict of str to Stage
        ``up``, ``down`` and ``scratch``.
    inherited : ndarray of shape (2, m_2) or (2, m_2, d), bool
        The transfer mask of :func:`inherit`.
    source : ndarray of shape (2, m_2), int
        The upstream filter of each downstream filter; -1 for fresh filters.
    """

    stages: dict
    """``{"up", "down", "scratch"}``: :class:`~refimpl.train.Stage`."""
    inherited: np.ndarray
    """The transfer mask of :func:`inherit`, (2, m_2) or (2, m_2, d) bool."""
    source: np.ndarray
    """The upstream filter of each downstream filter (:func:`inherit`), (2, m_2) int."""


def stage_schedule(config, stage):
    """(step cap, weight decay) of a stage: ``steps_up`` and
    ``weight_decay_up`` upstream (docs/model.md §5.1), ``steps_down`` and
    ``weight_decay`` for fine-tuning and the scratch baseline (§5.3, §5.4).
    ``config`` is any config with those fields (a :class:`Config`, an
    :class:`~refimpl.lab.image_experiment.ImageConfig`).

    Parameters
    ----------
    config : Config or ImageConfig
        The run's configuration.
    stage : str
        ``"up"``; any other name is a downstream stage.

    Returns
    -------
    steps : int
        The step cap T of the stage.
    weight_decay : float
        Its L2 coefficient lambda.
    """
    if stage == "up":
        return config.steps_up, config.weight_decay_up
    return config.steps_down, config.weight_decay


def run_stages(
    fit,
    up_task,
    down_task,
    W_up0,
    W_fresh,
    rng,
    *,
    alpha,
    granularity="filter",
    rescale=1.0,
    freeze_inherited=False,
) -> StageRun:
    """The three stages of docs/model.md §5 on given data and initial weights:
    ``up`` from W_up0 on ``up_task`` (§5.1); the transfer of ``alpha`` of its
    filters into W_fresh (§5.2, :func:`inherit` with ``rng``); ``down``, the
    fine-tuning from the inherited weights on ``down_task`` (§5.3, inherited
    filters frozen with ``freeze_inherited``); and ``scratch``, from W_fresh
    itself on the same ``down_task``, every filter trainable (§5.4).

    Parameters
    ----------
    fit : callable(stage, W0, task, trainable) -> Stage
        Trains one stage (``stage`` in :data:`STAGES`; ``trainable`` is None
        or a (2, m_2) bool mask), e.g. with :func:`refimpl.train.train_stage`;
        the step size, step cap and weight decay of each stage
        (:func:`stage_schedule`) and its stopping rule are its business.
    up_task, down_task : Task
        The training data of the upstream and downstream tasks.
    W_up0 : ndarray of shape (2, m_1, d)
        The upstream initial weights.
    W_fresh : ndarray of shape (2, m_2, d)
        The fresh downstream filters (not modified).
    rng : numpy.random.Generator
        The ``transfer`` stream.
    alpha, granularity, rescale : float, str, float
        Of :func:`inherit` (keyword-only).
    freeze_inherited : bool
        Freeze the inherited filters in ``down`` (its ``trainable`` mask is
        ``~inherited``); ``scratch`` always trains every filter.

    Returns
    -------
    StageRun
    """
    up = fit("up", W_up0, up_task, None)
    W_down0, inherited, source = inherit(up.W_final, W_fresh, alpha, rng, granularity, rescale)
    trainable = ~inherited if freeze_inherited else None
    down = fit("down", W_down0, down_task, trainable)
    scratch = fit("scratch", W_fresh, down_task, None)
    return StageRun({"up": up, "down": down, "scratch": scratch}, inherited, source)


def train_shared(W0, task, eta, steps, progress=None, **settings):
    """:func:`refimpl.train.train_stage`, trained once per distinct input
    within a :func:`refimpl.memo.shared_stages` block (the key covers every
    argument but ``progress``, which a shared stage does not report).

    Parameters
    ----------
    W0 : ndarray of shape (2, m, d)
        The stage's initial weights w^[0].
    task : Task
        The training data.
    eta : float
        The step size.
    steps : int
        The step cap T.
    progress : callable, optional
        Passed to :func:`refimpl.train.train_stage` (not called when the stage
        is shared).
    **settings : dict
        The other keywords of :func:`refimpl.train.train_stage`
        (``weight_decay``, ``trainable``, ``epsilon``, ``snapshots``, ...).

    Returns
    -------
    Stage
        The trained stage (its arrays read-only when it is kept for sharing).
    """
    return memoized(
        "stage",
        (W0, task, eta, steps, *sorted(settings.items())),
        lambda: train_stage(W0, task, eta, steps, progress=progress, **settings),
    )


def run_experiment(config: Config, progress=None) -> Experiment:
    """Train ``up``, transfer, fine-tune ``down`` and train ``scratch``
    (docs/model.md §5, :func:`run_stages`) on the synthetic tasks of §2, all
    randomness from ``config.seed``.

    Parameters
    ----------
    config : Config or dict
        A dict is read by :meth:`Config.from_dict` (shorthands expand,
        unknown keys are refused).
    progress : callable(stage, step, cap, loss), optional
        Called as each stage trains (the stage's name, the step, the step cap
        and the loss), as :func:`refimpl.train.train_stage` reports it.

    Returns
    -------
    Experiment

    Raises
    ------
    ConfigError
        A config that is neither a Config nor a dict, a bad field, or a
        progress that is not callable.
    ResourceError
        Before any work, when the run would exceed the memory or work budget
        (:mod:`refimpl.budget`).
    """
    c = _as_config(config)
    if progress is not None and not callable(progress):
        raise ConfigError(
            f"run_experiment: progress must be callable or None, got {shown(progress)}"
        )
    check_run(c)
    rng = streams(c.seed)
    u, v_up, v_down = signal_vectors(c.d, c.u_norm, c.v_up_norm, c.v_down_norm, c.v_cos)
    up_task = sample_task(rng["data_up"], c.n_up, u, v_up, c.sigma_p_up, c.flip_up, c.layout)
    down_task = sample_task(
        rng["data_down"], c.n_down, u, v_down, c.sigma_p_down, c.flip_down, c.layout
    )
    W_up0 = c.sigma_0 * rng["init_up"].standard_normal((2, c.m, c.d))
    W_fresh = c.sigma_0 * rng["init_down"].standard_normal((2, c.m2, c.d))

    def report(name):
        return None if progress is None else (lambda t, cap, loss: progress(name, t, cap, loss))

    def fit(name, W0, task, trainable):
        steps, weight_decay = stage_schedule(c, name)
        return train_shared(
            W0,
            task,
            c.eta_of(name),
            steps,
            progress=report(name),
            weight_decay=weight_decay,
            trainable=trainable,
            epsilon=c.epsilon,
            snapshots=c.snapshots,
            engine=c.engine,
        )

    run = run_stages(
        fit,
        up_task,
        down_task,
        W_up0,
        W_fresh,
        rng["transfer"],
        alpha=c.alpha,
        granularity=c.granularity,
        rescale=c.rescale_inherited,
        freeze_inherited=c.freeze_inherited,
    )
    return Experiment(
        config=c,
        u=u,
        v_up=v_up,
        v_down=v_down,
        stages=run.stages,
        inherited=run.inherited,
        source=run.source,
    )


def _as_config(config):
    """``config`` as a :class:`Config`: itself, or a dict read by
    :meth:`Config.from_dict`; anything else is a ConfigError naming config."""
    if isinstance(config, Config):
        return config
    if isinstance(config, Mapping):
        return Config.from_dict(dict(config))
    raise ConfigError(
        "run_experiment: config must be a refimpl.Config or a dict of its fields, "
        f"got {type(config).__name__}"
    )


def inherited_noise_energy(exp: Experiment):
    """|rescale * sum_i rho^up_{j,r,i} xi^up_i/|xi^up_i|^2| carried into each
    downstream filter (docs/model.md §4), shape (2, m_2); 0 for fresh filters.
    With entry granularity only the inherited entries count."""
    from .decomposition import noise_part

    N_up = noise_part(exp.stages["up"])
    src = np.maximum(exp.source, 0)
    carried = exp.config.rescale_inherited * N_up[np.arange(2)[:, None], src]  # (2, m_2, d)
    mask = exp.inherited if exp.inherited.ndim == 3 else exp.inherited[..., None]
    return np.linalg.norm(np.where(mask, carried, 0.0), axis=-1)
