"""What the transfer claims share: the base regime (every field set
explicitly: the package defaults may change, full size and CI size), the
failure threshold, the two stopping rules (fixed step count and equal training
loss) and the per-point outcome summaries (mean, median, failure rate and
stalled runs side by side)."""

from __future__ import annotations

import math

import numpy as np

from ..config import Config
from ..lab import report as R
from ..lab import stats as S
from ..lab.sweep import run_sweep

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
    "stopping_rules",
    "rule_label",
    "sweep_rules",
    "stalled",
    "point_summary",
    "outcome_cells",
    "OUTCOME_HEADER",
    "STALL_HEADER",
    "summary_rows",
    "gain_rises",
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
typical error of a successful run and the catastrophic runs near 0.26 of the
validation audit, P1)."""
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


def stopping_rules(quick):
    """Config changes of each rule of :data:`RULES` (full or quick size)."""
    return {
        "steps": {},
        "loss": {"epsilon": EPSILON, "steps_down": QUICK_LOSS_CAP if quick else LOSS_CAP},
    }


def rule_label(rule, quick, steps):
    """The stopping rule in words (``steps``: the regime's T)."""
    if rule == "steps":
        return f"fixed T = {steps} steps"
    cap = QUICK_LOSS_CAP if quick else LOSS_CAP
    return f"equal loss (training loss <= {EPSILON:g}, cap {cap} steps)"


def sweep_rules(
    out, grid, quick, reps, jobs, label, salt, common=(), metrics=RUN_METRICS, measure="transfer"
):
    """Run ``grid`` under both stopping rules in one sweep; returns
    ``{rule: {metric: array (points, reps)}}``. ``common``: fields of the
    grid with common random numbers (a paired design); the stopping-rule
    fields are always common, so a loss-target run is its fixed-step run
    stopped by the other rule."""
    rules = stopping_rules(quick)
    configs = [c.replace(**rules[r]) for r in RULES for c in grid]
    sw = run_sweep(
        configs,
        measure=measure,
        replicates=reps,
        jobs=jobs,
        cache=R.cache_dir(out),
        label=label,
        salt=salt,
        common=tuple(common) + STOP_FIELDS,
        metrics=metrics,
    )
    k = len(grid)
    return {r: {m: sw.values(m)[i * k : (i + 1) * k] for m in metrics} for i, r in enumerate(RULES)}


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


def summary_rows(s, keys=None):
    """Per point dicts of :func:`point_summary` (for CSV and JSON)."""
    keys = list(s) if keys is None else keys
    n = len(s["gain_mean"])
    return [{k: s[k][i] for k in keys} for i in range(n)]


def gain_rises(x, gain):
    """The verdict "the gain grows with x" under every stopping rule (pure).

    Parameters
    ----------
    x : sequence of float, shape (k,)
        The swept values (k >= 3 distinct).
    gain : mapping rule -> array of shape (k, seeds)
        err_scratch - err_transfer per point and seed under each stopping
        rule (NaN or None: missing).

    Returns
    -------
    dict
        ``verdict`` ("PASS" when under every rule the one-sided Page trend
        test of an increase has rho > 0 and p < SIGNIFICANCE, and no value
        is missing; else "FAIL"), ``verdict_tests`` (the same without the
        missing-value rule), ``trend`` (rule -> :func:`refimpl.lab.stats.trend`),
        ``holds`` (rule -> bool) and ``missing`` (missing gain values, all rules).
    """
    trends, holds, missing = {}, {}, 0
    for rule, g in gain.items():
        g = np.array([[np.nan if v is None else v for v in row] for row in g], float)
        tr = S.trend(x, g, "greater")
        trends[rule] = tr
        holds[rule] = bool(tr["rho"] > 0 and tr["p"] < S.SIGNIFICANCE)
        missing += S.n_missing(g)
    tests = "PASS" if holds and all(holds.values()) else "FAIL"
    return {
        "verdict": "FAIL" if missing else tests,
        "verdict_tests": tests,
        "trend": trends,
        "holds": holds,
        "missing": missing,
    }
