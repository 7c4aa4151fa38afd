"""The built-in measures of a sweep: each maps a seeded config to a flat
dict of numbers (or lists of numbers), JSON-able, so that the sweep cache can
persist it (:mod:`refimpl.lab.sweep`).

- :func:`measure_transfer`: the three-stage experiment and its diagnostics
  (docs/model.md §4-6);
- :func:`measure_single`: one task trained alone (the single-task phase
  diagram, docs/model.md §7-8);
- :func:`measure_single_batched`: the same runs, many at once
  (:func:`refimpl.batch.run_single_batch`): a *batched* measure, which maps a
  list of seeded configs to a list of dicts (:data:`BATCHED`);
- :func:`measure_outcomes_batched`: :func:`measure_outcomes`, batched
  (:func:`refimpl.batch_transfer.run_transfer_batch`);
- :func:`measure_checks`: exactness of the decomposition (docs/model.md §4).
"""

from __future__ import annotations

import numpy as np

from ..batch import run_single_batch, shape_key
from ..batch_transfer import run_transfer_batch, transfer_shape
from ..decomposition import (
    invariants,
    own_entries,
    projection_error,
    reconstruction_error,
    universal_knowledge,
)
from ..network import forward
from ..transfer import STAGES, count_dead, inherited_noise_energy, run_experiment

__all__ = [
    "MEASURES",
    "measure_transfer",
    "measure_outcomes",
    "measure_single",
    "measure_single_batched",
    "measure_outcomes_batched",
    "measure_checks",
    "BATCHED",
    "dead_points",
    "at_loss",
    "loss_flags",
]


def _group_stats(a, mask):
    a = np.asarray(a, float)[mask]
    if a.size == 0:
        return None, None
    return float(a.mean()), float(a.max())


def measure_transfer(config, n_test=None, curves=False):
    """The three-stage experiment (docs/model.md §5) and its diagnostics.

    Returns a flat dict:

    - ``err_transfer``, ``err_scratch``, ``err_up`` (clean test error,
      docs/model.md §6) with ``*_se``; ``noisy_transfer``, ``noisy_scratch``;
      ``gain`` = err_scratch - err_transfer (same test draws);
    - ``loss_up``, ``loss_down``, ``loss_scratch`` (final training loss),
      ``steps_down``, ``steps_scratch``, ``steps_up`` (steps run);
    - ``err_inherited_part``, ``err_fresh_part``: test error of
      f_inherited and f_fresh alone (the other filters zeroed), section 4;
    - ``wrong0_transfer``, ``wrong0_scratch``: fraction of downstream training
      points with y f(W^(0), x) <= 0;
    - ``K_inh_start``, ``K_inh_end``, ``K_fresh_end``, ``K_scratch_end``:
      universal knowledge j<w, u>, mean over the filter group;
    - ``inh_noise_energy``: inherited noise energy, mean over inherited filters;
    - ``rho_inh_mean``/``rho_inh_max``, ``rho_fresh_mean``/``rho_fresh_max``,
      ``rho_scratch_mean``/``rho_scratch_max``, ``rho_transfer_mean``/``rho_transfer_max``
      (all filters): downstream noise memorisation
      rho-bar at the end of fine-tuning (mean over the entries with y_i = j,
      and max), per filter group; ``rho_flip_transfer``, ``rho_flip_scratch``:
      mean rho-bar over the flipped training points only;
    - with ``curves``: ``curve_steps`` and per snapshot ``curve_rho_inh``,
      ``curve_rho_fresh``, ``curve_rho_scratch`` (mean rho-bar) and
      ``curve_K_inh``, ``curve_K_fresh``, ``curve_K_scratch``.
    """
    exp = run_experiment(config)
    down, scratch, up = exp.stages["down"], exp.stages["scratch"], exp.stages["up"]
    out = {}
    et = exp.test_error("down", n_test=n_test)
    es = exp.test_error("scratch", n_test=n_test)
    eu = exp.test_error("up", n_test=n_test)
    out.update(
        err_transfer=et["clean_error"],
        err_transfer_se=et["clean_error_se"],
        err_scratch=es["clean_error"],
        err_scratch_se=es["clean_error_se"],
        err_up=eu["clean_error"],
        err_up_se=eu["clean_error_se"],
        noisy_transfer=et["noisy_error"],
        noisy_scratch=es["noisy_error"],
        gain=es["clean_error"] - et["clean_error"],
    )
    out.update(
        loss_up=float(up.loss[-1]),
        loss_down=float(down.loss[-1]),
        loss_scratch=float(scratch.loss[-1]),
        steps_up=up.T,
        steps_down=down.T,
        steps_scratch=scratch.T,
    )
    # filter granularity: the inherited filters; entry granularity: filters
    # most of whose entries are inherited (Experiment.inherited_filters)
    inh = exp.inherited_filters  # (2, m_2)
    W = down.W_final
    for name, mask in (("inherited", inh), ("fresh", ~inh)):
        if mask.any():
            out[f"err_{name}_part"] = exp.test_error(
                "down", W=np.where(mask[..., None], W, 0.0), n_test=n_test
            )["clean_error"]
        else:
            out[f"err_{name}_part"] = None
    task = down.task
    out["wrong0_transfer"] = float(np.mean(task.y * forward(down.W0, task.X) <= 0))
    out["wrong0_scratch"] = float(np.mean(task.y * forward(scratch.W0, task.X) <= 0))
    K0, K1 = universal_knowledge(down.W[0], exp.u), universal_knowledge(W, exp.u)
    Ks = universal_knowledge(scratch.W_final, exp.u)
    out["K_inh_start"] = float(K0[inh].mean()) if inh.any() else None
    out["K_inh_end"] = float(K1[inh].mean()) if inh.any() else None
    out["K_fresh_end"] = float(K1[~inh].mean()) if (~inh).any() else None
    out["K_scratch_end"] = float(Ks.mean())
    out["inh_noise_energy"] = float(inherited_noise_energy(exp)[inh].mean()) if inh.any() else 0.0
    # rho-bar_{j,r,i} lives where y_i = j (docs/model.md §4)
    own = own_entries(task.y)  # (2, 1, n)
    flipped = (task.y != task.y_clean)[None, None, :]

    def rho(stage, fmask, k=-1, sample_mask=own):
        m = fmask[..., None] & sample_mask
        return _group_stats(stage.rho_bar[k], np.broadcast_to(m, stage.rho_bar[k].shape))

    allf = np.ones_like(inh)
    out["rho_inh_mean"], out["rho_inh_max"] = rho(down, inh)
    out["rho_fresh_mean"], out["rho_fresh_max"] = rho(down, ~inh)
    out["rho_scratch_mean"], out["rho_scratch_max"] = rho(scratch, allf)
    out["rho_transfer_mean"], out["rho_transfer_max"] = rho(down, allf)
    out["rho_flip_transfer"] = rho(down, allf, sample_mask=own & flipped)[0]
    out["rho_flip_scratch"] = rho(scratch, allf, sample_mask=own & flipped)[0]
    out["n_flipped"] = int(flipped.sum())
    if curves:
        out["curve_steps"] = down.steps.tolist()
        out["curve_steps_scratch"] = scratch.steps.tolist()
        out["curve_rho_inh"] = [rho(down, inh, k)[0] for k in range(len(down.steps))]
        out["curve_rho_fresh"] = [rho(down, ~inh, k)[0] for k in range(len(down.steps))]
        out["curve_rho_scratch"] = [rho(scratch, allf, k)[0] for k in range(len(scratch.steps))]
        Kd = universal_knowledge(down.W, exp.u)  # (K, 2, m)
        out["curve_K_inh"] = [float(k[inh].mean()) if inh.any() else None for k in Kd]
        out["curve_K_fresh"] = [float(k[~inh].mean()) if (~inh).any() else None for k in Kd]
        out["curve_K_scratch"] = [float(k.mean()) for k in universal_knowledge(scratch.W, exp.u)]
    return out


def dead_points(W0, task, inherited=None):
    """Flipped training points that no filter of their observed class can
    start to memorise (the failure mode seen in gain_alpha's noisy regime;
    docs/model.md §8.3).

    A flipped point i (y_i != y_clean_i) is *dead* when every filter r of
    its observed class j = y_i has a non-positive pre-activation
    <w_{j,r}, x_i^(p)> on every patch p of x_i at the start of fine-tuning:
    ReLU'(0) = 0 (docs/model.md §3), so none of them receives a gradient
    from that point.

    Parameters
    ----------
    W0 : ndarray (2, m, d)
        Weights at the start of fine-tuning.
    task : Task
        The downstream training task.
    inherited : ndarray (2, m) of bool, optional
        The inherited filters. Given: only they are required to be inactive,
        and a class without inherited filters has no dead point.

    Returns
    -------
    int
    """
    silent = (np.einsum("jrd,npd->jrnp", W0, task.X) <= 0).all(axis=3)  # (2, m, n)
    return count_dead(silent, task.y, task.y != task.y_clean, inherited)


def measure_outcomes(config, n_test=None):
    """The outcomes of the three-stage experiment, without the diagnostics of
    :func:`measure_transfer` (cheaper: two test-error estimates).

    Returns ``err_transfer``, ``err_scratch`` (clean test error, docs/model.md
    §6), ``noisy_transfer``, ``noisy_scratch`` (noisy test error), ``gain`` =
    err_scratch - err_transfer, ``loss_up``, ``loss_down``, ``loss_scratch``
    (final training loss), ``steps_up``, ``steps_down``, ``steps_scratch``,
    ``n_flipped`` (flipped downstream training points), ``dead_points`` and
    ``dead_inherited`` (:func:`dead_points` at the start of fine-tuning: every
    filter, or every inherited filter, of the observed class inactive).
    """
    exp = run_experiment(config)
    down, scratch, up = exp.stages["down"], exp.stages["scratch"], exp.stages["up"]
    et = exp.test_error("down", n_test=n_test)
    es = exp.test_error("scratch", n_test=n_test)
    task = down.task
    return {
        "err_transfer": et["clean_error"],
        "err_scratch": es["clean_error"],
        "noisy_transfer": et["noisy_error"],
        "noisy_scratch": es["noisy_error"],
        "gain": es["clean_error"] - et["clean_error"],
        "loss_up": float(up.loss[-1]),
        "loss_down": float(down.loss[-1]),
        "loss_scratch": float(scratch.loss[-1]),
        "steps_up": up.T,
        "steps_down": down.T,
        "steps_scratch": scratch.T,
        "n_flipped": int(np.sum(task.y != task.y_clean)),
        "dead_points": dead_points(down.W0, task),
        "dead_inherited": dead_points(down.W0, task, exp.inherited_filters),
    }


def measure_single(config, n_test=None):
    """One task trained alone (the upstream task of ``config``: ``n_up``,
    ``u_norm``/``v_up_norm`` (|mu|^2 = |u|^2 + |v_up|^2), ``sigma_p_up``,
    ``flip_up``, ``steps_up``, ``epsilon``, ``weight_decay_up``).

    The upstream stage of :func:`refimpl.transfer.run_experiment` (the same
    random streams, so the same data, initialisation and test draws), run
    with ``steps_down = 0`` so that the downstream stages cost nothing.

    Returns ``err`` (clean), ``err_se``, ``noisy`` (noisy error), ``loss``
    (final training loss), ``steps``, ``stopped`` (reached epsilon),
    ``gamma_mean`` (mean over filters of gamma summed over signals),
    ``rho_mean`` (mean rho-bar over the entries with y_i = j) and ``ratio`` =
    max_{j,r} gamma / max rho-bar at the end of training, compared with
    n|mu|^2/(sigma_p^2 d) in docs/model.md §7.
    """
    exp = run_experiment(config.replace(steps_down=0))
    st = exp.stages["up"]
    e = exp.test_error("up", n_test=n_test)
    own = np.broadcast_to(own_entries(st.task.y), st.rho_bar[-1].shape)  # y_i = j, section 4
    rb = st.rho_bar[-1][own]
    g = st.gamma[-1].sum(axis=-1)  # (2, m)
    return {
        "err": e["clean_error"],
        "err_se": e["clean_error_se"],
        "noisy": e["noisy_error"],
        "loss": float(st.loss[-1]),
        "steps": st.T,
        "stopped": bool(st.stopped),
        "gamma_mean": float(g.mean()),
        "rho_mean": float(rb.mean()),
        "ratio": float(g.max() / max(rb.max(), 1e-300)),
    }


SINGLE_BATCHED_KEYS = ("err", "err_se", "noisy", "loss", "steps", "stopped")


def measure_single_batched(configs, n_test=None):
    """:func:`measure_single`'s ``err``, ``err_se``, ``noisy``, ``loss``,
    ``steps`` and ``stopped`` for many seeded configs at once, by the batched
    trainer (:func:`refimpl.batch.run_single_batch`: the same data,
    initialisation and test draws; GD in the basis of the distinct patch
    vectors, docs/model.md §9, agreeing with :func:`measure_single` to rounding
    and in the test error except in the rare runs batch.py names). A run's
    numbers do not depend on the other configs of the call, so each can be
    cached alone. A diverged run has NaN errors and loss.

    Returns
    -------
    list of dict
        One dict per config, in order.
    """
    out = run_single_batch(configs, [c.seed for c in configs], n_test)
    return [{k: out[k][i].item() for k in SINGLE_BATCHED_KEYS} for i in range(len(configs))]


def measure_outcomes_batched(configs, n_test=None, epsilon=None, cap=None, upstream_error=False):
    """:func:`measure_outcomes` for many seeded configs at once, by the batched
    three-stage path (:func:`refimpl.batch_transfer.run_transfer_batch`: the
    same draws, every stage in Gram space, docs/model.md §9; the numbers to
    rounding, the test errors equal except in the rare runs batch.py names;
    an upstream stage shared by runs of one call, or kept from an earlier
    call, trained once). A run's numbers do not depend on the other configs
    of the call.

    Parameters
    ----------
    configs : sequence of Config
    n_test : int, optional
        Test draws (default: each config's).
    epsilon, cap : float, int, optional
        The equal-loss runs of each config (:func:`at_loss`: both needed), with
        the flags of :func:`loss_flags`; without ``epsilon`` the configs run as
        they are (a ``cap`` alone is refused).
    upstream_error : bool
        Also ``err_up``, the upstream stage's clean test error (as
        :func:`measure_transfer` gives it).

    Returns
    -------
    list of dict
        One dict per config, in order, with the keys of :func:`measure_outcomes`
        (and ``err_up``; and with ``epsilon`` those of :func:`loss_flags`).
    """
    if epsilon is None and cap is not None:
        raise ValueError("a step cap without a loss target epsilon: give both")
    runs = configs if epsilon is None else [at_loss(c, epsilon, cap) for c in configs]
    out = run_transfer_batch(runs, [c.seed for c in configs], n_test, upstream_error)
    rows = [{k: _number(k, v[i]) for k, v in out.items()} for i in range(len(configs))]
    if epsilon is not None:
        for row, run in zip(rows, runs, strict=True):
            row.update(loss_flags(row, run))
    return rows


def at_loss(config, epsilon, cap):
    """The equal-loss run of ``config``: fine-tuning and scratch trained to the
    training loss ``epsilon`` (at most ``cap`` steps); the upstream stage keeps
    its own step count and stops earlier only if its loss reaches ``epsilon``.
    The seed is that of ``config``, so the two stopping rules pair seed by seed."""
    if cap is None:
        raise ValueError("an equal-loss run needs its step cap")
    return config.replace(epsilon=float(epsilon), steps_down=int(cap))


def loss_flags(outcomes, run):
    """``stalled_transfer`` / ``stalled_scratch`` (1.0 when the final training
    loss is above the run's epsilon: the cap came first) and
    ``up_stopped_early`` (1.0 when the upstream stage stopped before its step
    count) of an :func:`at_loss` run's outcomes."""
    return {
        "stalled_transfer": float(outcomes["loss_down"] > run.epsilon),
        "stalled_scratch": float(outcomes["loss_scratch"] > run.epsilon),
        "up_stopped_early": float(outcomes["steps_up"] < run.steps_up),
    }


_COUNTS = {"steps_up", "steps_down", "steps_scratch", "n_flipped", "dead_points", "dead_inherited"}


def _number(key, value):
    """A batched outcome as measure_outcomes gives it: counts as int."""
    return int(value) if key in _COUNTS else float(value)


def measure_checks(config):
    """Exactness checks of the decomposition for each stage of the three-stage
    experiment (docs/model.md §4): ``<stage>_reconstruction`` and
    ``<stage>_projection`` (largest relative discrepancies over the
    snapshots), ``<stage>_invariants_applicable`` and
    ``<stage>_invariants_broken`` (counts), ``<stage>_broken`` (names, ``;``-joined).
    """
    exp = run_experiment(config)
    out = {}
    for s in STAGES:
        st = exp.stages[s]
        inv = invariants(st)
        out[f"{s}_reconstruction"] = float(reconstruction_error(st))
        out[f"{s}_projection"] = float(projection_error(st))
        out[f"{s}_invariants_applicable"] = sum(v["applies"] for v in inv.values())
        broken = [k for k, v in inv.items() if v["applies"] and not v["holds"]]
        out[f"{s}_invariants_broken"] = len(broken)
        out[f"{s}_broken"] = ";".join(broken)
    return out


MEASURES = {
    "transfer": measure_transfer,
    "outcomes": measure_outcomes,
    "single": measure_single,
    "checks": measure_checks,
}
"""Built-in measures by name."""

BATCHED = {
    "single_batched": (measure_single_batched, shape_key),
    "outcomes_batched": (measure_outcomes_batched, transfer_shape),
}
"""Built-in batched measures by name: ``(f, key)``, ``f(configs, **options)
-> [dict, ...]`` and ``key(config)``: configs of equal key run in one call
(:func:`refimpl.lab.sweep._groups`)."""
