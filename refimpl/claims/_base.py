"""What the transfer claims share: the base regime (every field set
explicitly: the package defaults may change, full size and CI size), the
failure threshold, the two stopping rules (fixed step count and equal training
loss) and the per-point outcome summaries (mean, median, failure rate and
stalled runs side by side)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..config import Config
from ..lab import figures as F
from ..lab import report as R
from ..lab import stats as S
from ..lab.claim import Figure
from ..lab.history import read_history
from ..lab.measures import at_loss, loss_flags, measure_transfer

__all__ = [
    "TRANSFER_BASE",
    "TRANSFER_QUICK",
    "transfer_base",
    "ENGINE",
    "FAILURE_ERROR",
    "EPSILON",
    "LOSS_CAP",
    "QUICK_LOSS_CAP",
    "RULES",
    "STOP_FIELDS",
    "RUN_METRICS",
    "stalled",
    "point_summary",
    "outcome_cells",
    "OUTCOME_HEADER",
    "STALL_HEADER",
]

TRANSFER_BASE = dict(
    d=600,
    m=10,
    m_down=None,
    n_up=200,
    n_down=10,
    u_norm=2.0,
    v_up_norm=1.0,
    v_down_norm=1.0,
    v_cos=0.0,
    sigma_p_up=1.0,
    sigma_p_down=1.0,
    flip_up=0.0,
    flip_down=0.1,
    layout="joint",
    eta=1.0,
    sigma_0=0.01,
    weight_decay_up=0.0,
    weight_decay=0.0,
    steps_up=200,
    steps_down=200,
    epsilon=0.0,
    snapshots=2,
    alpha=0.5,
    granularity="filter",
    freeze_inherited=False,
    rescale_inherited=1.0,
    n_test=10000,
    estimator="reduced",
    seed=0,
)
"""The full-size transfer regime."""

TRANSFER_QUICK = dict(
    TRANSFER_BASE, d=120, m=4, n_up=40, n_down=8, steps_up=60, steps_down=60, n_test=2000
)
"""The CI-size version of :data:`TRANSFER_BASE`."""


ENGINE = "auto"
"""The GD engine of the transfer claims whose protocols were fixed on
2026-11-29 (version 2): the Gram-space engine where it is cheaper
(docs/model.md §9), as in those protocols' first full runs. The claims fixed
earlier keep the weight-space reference, the package default, with which
their committed results were computed: the engines agree to rounding per
step, but in chaotic runs (eta = 1, activation patterns switching) such
differences can grow into different test errors."""


def transfer_base(quick, **changes):
    """The base transfer :class:`~refimpl.config.Config` (full or quick size)."""
    return Config.from_dict({**(TRANSFER_QUICK if quick else TRANSFER_BASE), **changes})


FAILURE_ERROR = 0.2
"""A run *fails* when its clean test error exceeds this (the level between the
typical error of a successful run and the catastrophic runs near 0.26 seen in
gain_alpha's noisy regime)."""
EPSILON = 1e-3
"""The training-loss target of the equal-loss comparison."""
LOSS_CAP = 2000
"""The step cap of fine-tuning and scratch under the loss target (10 x T)."""
QUICK_LOSS_CAP = 600
RULES = ("steps", "loss")
"""The two stopping rules: ``steps``, the fixed step count T of the regime;
``loss``, fine-tuning and scratch each until the training loss is <= EPSILON
(cap LOSS_CAP; the upstream stage keeps its cap T_1, stopping earlier only
if its loss reaches EPSILON)."""
STOP_FIELDS = ("epsilon", "steps_down")
"""The config fields of the stopping rule: common random numbers across them,
so the loss-target run is the fixed-step run stopped by another rule."""
RUN_METRICS = (
    "gain",
    "err_transfer",
    "err_scratch",
    "loss_down",
    "loss_scratch",
    "steps_down",
    "steps_scratch",
    "loss_up",
    "steps_up",
)


def stalled(loss, epsilon):
    """1 where a run under a loss target ``epsilon`` ended above it (the cap
    was reached first), 0 where it reached it, NaN where the loss is missing."""
    loss = np.asarray(loss, float)
    return np.where(np.isfinite(loss), (loss > epsilon).astype(float), np.nan)


def point_summary(et, es, loss_t=None, loss_s=None, epsilon=None, failure=FAILURE_ERROR):
    """Per point (row) of err_transfer ``et`` and err_scratch ``es``
    (points, seeds): the gain's mean, se and median, both errors' mean,
    median and failure rate (:func:`refimpl.lab.stats.outcome_summary`), the
    one-sided Wilcoxon p of gain > 0, and with a loss target the count of
    stalled runs of each (:func:`stalled`)."""
    et, es = np.asarray(et, float), np.asarray(es, float)
    gain = es - et
    st, ss = S.outcome_summary(et, failure), S.outcome_summary(es, failure)
    out = {
        "gain_mean": S.outcome_summary(gain, np.inf)["mean"],
        "gain_se": S.sem(gain, axis=1),
        "gain_median": S.outcome_summary(gain, np.inf)["median"],
        "p_gain_wilcoxon": np.array([S.wilcoxon(es[i], et[i])["p"] for i in range(len(et))]),
    }
    for name, s in (("transfer", st), ("scratch", ss)):
        out.update(
            {
                f"err_{name}_mean": s["mean"],
                f"err_{name}_median": s["median"],
                f"fail_{name}": s["failure_rate"],
            }
        )
    if epsilon is not None:
        out["stalled_transfer"] = np.nansum(stalled(loss_t, epsilon), axis=1)
        out["stalled_scratch"] = np.nansum(stalled(loss_s, epsilon), axis=1)
    return out


def outcome_cells(s, i, reps):
    """Markdown cells of point ``i`` of :func:`point_summary`: gain (mean ±
    se, median), err_transfer and err_scratch (mean / median / failure rate),
    Wilcoxon p, and stalled runs when counted."""

    def err(name):
        return (
            f"{s[f'err_{name}_mean'][i]:.3f} / {s[f'err_{name}_median'][i]:.3f} / "
            f"{100 * s[f'fail_{name}'][i]:.0f}%"
        )

    cells = [
        R.fmt_mean_se(s["gain_mean"][i], s["gain_se"][i], 3),
        f"{s['gain_median'][i]:+.3f}",
        err("transfer"),
        err("scratch"),
        _p(s["p_gain_wilcoxon"][i]),
    ]
    if "stalled_transfer" in s:
        cells.append(f"{int(s['stalled_transfer'][i])} / {int(s['stalled_scratch'][i])} of {reps}")
    return cells


OUTCOME_HEADER = [
    "gain (mean ± se)",
    "gain (median)",
    "err_transfer (mean / median / fail)",
    "err_scratch (mean / median / fail)",
    "Wilcoxon p(gain > 0)",
]
STALL_HEADER = "stalled (transfer / scratch)"


def _p(p):
    return "n/a" if p is None or not math.isfinite(p) else f"{p:.2g}"


# ----------------------------------------------------------------------
# one equal-loss mechanism, for every claim


def measure_at_loss(config, epsilon=EPSILON, cap=LOSS_CAP, **options):
    """:func:`refimpl.lab.measures.measure_transfer` of ``config`` with
    fine-tuning and scratch trained to the training loss ``epsilon`` (cap
    ``cap`` steps; the upstream stage keeps its own cap and stops earlier
    only if its loss reaches ``epsilon``): the equal-loss variant of a
    fixed-step sweep item. The seed is that of ``config``, so a sweep over
    the same configs pairs the two stopping rules seed by seed. Adds
    ``stalled_transfer`` / ``stalled_scratch`` (1 when the final training loss
    is above epsilon: not reached at the cap) and ``up_stopped_early`` (1 when
    the upstream stage stopped before its own cap)."""
    run = at_loss(config, epsilon, cap)
    out = measure_transfer(run, **options)
    out.update(loss_flags(out, run))
    return out


def rule_sweeps(epsilon, cap, batched=False):
    """The sweep keywords of each stopping rule's runs of a grid: ``steps``,
    every config as it is; ``loss``, the equal-loss runs (target ``epsilon``,
    step cap ``cap``) of the same configs and seeds. Item by item
    (:func:`measure_transfer` with its diagnostics; :func:`measure_at_loss`),
    or ``batched``: the outcomes of the batched three-stage path
    (``outcomes_batched``, the equal-loss runs and their flags by its
    ``epsilon`` and ``cap`` options)."""
    options = {"epsilon": epsilon, "cap": cap}
    if batched:
        batch = "outcomes_batched"
        return {"steps": {"measure": batch}, "loss": {"measure": batch, "options": options}}
    return {"steps": {}, "loss": {"measure": measure_at_loss, "options": options}}


ENGINE_RULE = (
    "the batched three-stage path (refimpl.batch_transfer: every stage in Gram space, the "
    "configs' engine field unused), the numbers of the item-by-item experiment to rounding"
)
"""The protocol rule of a claim whose runs go through the batched three-stage path."""


HISTORY = Path(__file__).with_name("history")
"""The claims' history files: ``<name>.md`` holds claim ``name``'s disclosed
protocol changes (:mod:`refimpl.lab.history`)."""


def history(name):
    """The disclosed protocol changes of claim ``name``, oldest first (its
    file in :data:`HISTORY`)."""
    return read_history(HISTORY / f"{name}.md")


def sweep_stopping(sweep, grid, epsilon, cap, metrics=RUN_METRICS, label="", **kwargs):
    """``grid`` under both stopping rules of :data:`RULES`, the same seeds
    for both: ``{rule: {metric: array (points, seeds)}}``. ``steps``: the
    fixed step count of each config; ``loss``: :func:`measure_at_loss` with
    ``epsilon`` and ``cap``. ``sweep``: the claim's
    :class:`~refimpl.lab.claim.ClaimSweep` (further keywords go to it)."""
    fixed = sweep(grid, label=label, metrics=metrics, **kwargs)
    options = {**kwargs.pop("options", {}), "epsilon": epsilon, "cap": cap}
    loss = sweep(
        grid,
        label=f"{label} (equal loss)".strip(),
        measure=measure_at_loss,
        options=options,
        metrics=metrics,
        **kwargs,
    )
    return {"steps": _values(fixed, metrics), "loss": _values(loss, metrics)}


def _values(sw, metrics):
    return {m: sw.values(m) for m in metrics}


def stop_label(rule, epsilon, cap, steps):
    """The stopping rule in words (``steps``: the regime's T)."""
    if rule == "steps":
        return f"fixed T = {steps} steps"
    return f"equal loss (training loss <= {epsilon:g}, cap {cap} steps)"


def as_float(values):
    """A float array of ``values`` (nested sequences; None: NaN)."""
    if isinstance(values, np.ndarray):
        return values.astype(float)
    return np.array(
        [
            as_float(v) if isinstance(v, (list, tuple)) else (np.nan if v is None else v)
            for v in values
        ],
        float,
    )


def line_figure(name, *args, **kwargs):
    """A :class:`~refimpl.lab.claim.Figure` of :func:`refimpl.lab.figures.line_figure`."""
    return Figure(name, lambda path: F.line_figure(path, *args, **kwargs))


# ----------------------------------------------------------------------
# both stopping rules in one sweep (the claims whose item measure is not
# measure_transfer: measure="outcomes" and the like)


def sweep_rules_once(sweep, grid, cap, metrics=RUN_METRICS, label="", **kwargs):
    """``grid`` under both stopping rules of :data:`RULES` in ONE sweep of
    the claim's :class:`~refimpl.lab.claim.ClaimSweep` (further keywords,
    e.g. ``measure`` or ``common``, go to it): every config as it is
    (``steps``) and with the loss target :data:`EPSILON` and the step cap
    ``cap`` (``loss``). Returns ``{rule: {metric: array (points, seeds)}}``.
    With :data:`STOP_FIELDS` among the common fields the loss-target run is
    the fixed-step run stopped by the other rule (as in :func:`sweep_rules`)."""
    change = {"steps": {}, "loss": {"epsilon": EPSILON, "steps_down": int(cap)}}
    configs = [c.replace(**change[r]) for r in RULES for c in grid]
    sw = sweep(configs, label=label, metrics=metrics, **kwargs)
    k = len(grid)
    return {r: {m: sw.values(m)[i * k : (i + 1) * k] for m in metrics} for i, r in enumerate(RULES)}
