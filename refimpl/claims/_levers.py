"""The lever claims' one procedure (mitigation: the paper's levers,
docs/model.md §8.1; mitigation_freezing: our hypothesis, §8.3): the negative
transfer err_transfer - err_scratch under each lever, paired with the
unmitigated baseline on the same seeds, at fixed steps and at equal loss."""

from __future__ import annotations

import numpy as np

from ..lab import stats as S
from ..lab.claim import Size
from ._base import as_float, rule_sweeps, transfer_base

LEVER_COMMON = ("alpha", "weight_decay", "freeze_inherited", "rescale_inherited")
"""The lever fields with common random numbers: every lever of a cell runs
on the baseline's seeds (data, upstream model, fresh filters, test draws)."""
LEVER_ERRORS = ("err_transfer", "err_scratch")
LEVER_AT_LOSS = LEVER_ERRORS + ("stalled_transfer", "stalled_scratch", "up_stopped_early")
LEVER_STATISTIC = (
    "negative transfer err_transfer - err_scratch per run; one-sided paired t of the "
    "baseline's amount > 0 and of each lever's reduction > 0, pooled over the cells of both "
    "regions and the seeds (fixed steps)"
)
LEVER_PAIRING = (
    "common random numbers across the levers (fields " + ", ".join(LEVER_COMMON) + "); the "
    "equal-loss runs reuse the fixed-step runs' seeds; cells have their own seeds"
)
LEVER_REPORTED = (
    "per-region tests, medians and Wilcoxon tests, the equal-loss variant with stalled runs "
    "per lever"
)


def lever_pass_rule(claimed):
    """The pass rule of a lever claim with the claimed lever groups ``claimed``."""
    groups = "; ".join(f"{c}: {', '.join(ns)}" for c, ns in claimed.items())
    return (
        f"baseline p < {S.SIGNIFICANCE} and every claimed lever group ({groups}) p < "
        f"{S.SIGNIFICANCE} (Bonferroni over a group's levers) with a positive mean reduction; "
        "no missing value"
    )


def lever_regions(quick):
    """The two negative-transfer regions: changes from the base regime
    (:func:`transfer_base`) and the |u| of their cells. ``hard``: the base at
    a weak or absent shared signal; ``benign``: N_2 = 40 (16 at CI size),
    |v_2| = 3, where scratch is nearly benign; both at alpha = 0.8, which
    leaves fresh filters to train when the inherited ones are frozen."""
    benign = {"alpha": 0.8, "n_down": 16 if quick else 40, "v_down_norm": 3.0}
    return {
        "hard": {"over": {"alpha": 0.8}, "u": [0.0, 0.25]},
        "benign": {"over": benign, "u": [0.0, 0.5]},
    }


def lever_size(quick, levers, claimed, seeds, at_loss=None):
    """The :class:`~refimpl.lab.claim.Size` of a lever claim: per region the
    configs of every lever of ``levers`` (name -> config changes; the first:
    the unmitigated baseline) at every |u|, lever-major; values ``regions``,
    ``levers``, ``claimed`` (claim -> the levers that try it), ``base`` (the
    regime the regions change, :func:`transfer_base`), the equal-loss target
    ``epsilon`` 0.005 and step ``cap`` 2000; with ``at_loss`` (lever names, in
    the order of ``levers``) the value ``at_loss``: only those levers run at
    equal loss (:func:`lever_at_loss`; without it, every lever)."""

    regions, configs = lever_regions(quick), {}
    for r, spec in regions.items():
        base = transfer_base(quick, **spec["over"])
        configs[r] = [base.replace(u_norm=u, **ch) for ch in levers.values() for u in spec["u"]]
    values = dict(regions=regions, levers=levers, claimed=claimed, epsilon=0.005, cap=2000)
    if at_loss is not None:
        values["at_loss"] = [n for n in levers if n in at_loss]
    return Size(configs, seeds, base=transfer_base(quick).to_dict(), **values)


def lever_at_loss(size):
    """The levers of ``size`` measured at equal training loss, in order."""
    return list(size.values.get("at_loss", size.levers))


def lever_measure(size, sweep, batched=False):
    """Every lever in every region at fixed steps, and those of
    :func:`lever_at_loss` at equal training loss (the same seeds; item by item
    or ``batched``, :func:`~refimpl.claims._base.rule_sweeps`): ``{"steps":
    {metric: (levers, cells, seeds)}, "loss": {metric: (levers at equal loss,
    cells, seeds)}}``, the cells region by region."""
    rules = rule_sweeps(size.epsilon, size.cap, batched)
    keep = [k for k, n in enumerate(size.levers) if n in lever_at_loss(size)]
    got = {"steps": [], "loss": []}
    for r, grid in size.configs.items():
        nu = len(size.regions[r]["u"])
        shape = (len(size.levers), nu, size.seeds)
        sub = [c for k in keep for c in grid[k * nu : (k + 1) * nu]]
        fixed = sweep(grid, label=r, metrics=LEVER_ERRORS, **rules["steps"])
        loss = sweep(sub, label=f"{r} (equal loss)", metrics=LEVER_AT_LOSS, **rules["loss"])
        got["steps"].append({k: fixed.values(k).reshape(shape) for k in LEVER_ERRORS})
        got["loss"].append(
            {k: loss.values(k).reshape((len(keep),) + shape[1:]) for k in LEVER_AT_LOSS}
        )
    return {
        rule: {k: np.concatenate([p[k] for p in parts], axis=1) for k in parts[0]}
        for rule, parts in got.items()
    }


def lever_negative(v):
    """err_transfer - err_scratch of one stopping rule's measurements."""
    return as_float(v["err_transfer"]) - as_float(v["err_scratch"])


def lever_tests(levers, neg, claimed):
    """The verdict from the negative-transfer amounts under each lever (pure).

    Parameters
    ----------
    levers : sequence of str, length L
        The lever names; the first is the unmitigated baseline.
    neg : array of shape (L, cells, seeds)
        err_transfer - err_scratch (paired across levers; NaN: missing).
    claimed : dict
        Claim name -> the levers that try it (several: Bonferroni over them).

    Returns
    -------
    dict
        ``verdict`` ("PASS" when the baseline's one-sided paired t of mean > 0
        has p < SIGNIFICANCE and every claim holds: its Bonferroni p, min(1, k
        min p) over its k levers, < SIGNIFICANCE and some lever's mean
        reduction > 0; and no value is missing), ``verdict_tests`` (without
        the missing-value rule), ``tests`` (lever -> one-sided paired t of
        baseline > lever, pooled over cells and seeds), ``baseline``,
        ``claim_p``, ``per_claim`` and ``missing``.
    """
    levers = list(levers)
    flat = np.asarray(neg, float).reshape(len(levers), -1)
    tests = {n: S.paired_t(flat[0], flat[k], "greater") for k, n in enumerate(levers) if k}
    base_t = S.paired_t(flat[0], np.zeros_like(flat[0]), "greater")
    claim_p = {c: S.bonferroni_min([tests[n]["p"] for n in ns]) for c, ns in claimed.items()}
    per_claim = {
        c: bool(claim_p[c] < S.SIGNIFICANCE and max(tests[n]["mean"] for n in ns) > 0)
        for c, ns in claimed.items()
    }
    missing = S.n_missing(flat)
    verdict = "PASS" if all(per_claim.values()) and base_t["p"] < S.SIGNIFICANCE else "FAIL"
    return {
        "verdict": "FAIL" if missing else verdict,
        "verdict_tests": verdict,
        "tests": tests,
        "baseline": base_t,
        "claim_p": claim_p,
        "per_claim": per_claim,
        "missing": missing,
    }


def lever_decision(size, m):
    """The verdict of a lever claim (pure): :func:`lever_tests` at fixed
    steps; ``equal_loss``: the same rule at equal training loss (reported)."""
    names = list(size.levers)
    fixed = lever_tests(names, lever_negative(m["steps"]), size.claimed)
    return {**fixed, "equal_loss": lever_tests(names, lever_negative(m["loss"]), size.claimed)}


def lever_cells(size):
    """The cells as (region, |u|, alpha), region by region."""
    return [
        (r, c.u_norm, c.alpha)
        for r, grid in size.configs.items()
        for c in grid[: len(size.regions[r]["u"])]
    ]
