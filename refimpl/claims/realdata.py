"""realdata: the paper's claims (docs/model.md §8.1) on real images, transfer vs scratch.

The experiment is :mod:`refimpl.lab.image_experiment` (class-split tasks on
scikit-learn's bundled digits, or a user's ``.npz``). The plan (:func:`full_plan`;
:func:`quick_plan` for CI): test accuracy of transfer and scratch and their
paired difference (the gain) against alpha for each split level, against N_2,
N_1 and the upstream flip probability. Every (point, replicate) is a cached
item of the common sweep runner (:func:`refimpl.lab.image_experiment.sweep_images`):
a killed run resumes where it stopped; the swept fields do not enter the
seed, so all points of a replicate share its draws (common random numbers).

Tests (:func:`claim_tests`, decided by the pure :func:`decide`): a trend claim
is Page's L test of the per-seed gains along the swept value (seeds are the
blocks), one-sided; with two values only (quick runs), their one-sided paired
t-test. A point claim is a one-sided paired t-test of transfer vs scratch. A
claim holds when its effect has the predicted sign with p < SIGNIFICANCE
(:mod:`refimpl.lab.stats`); the verdict is PASS when every paper claim holds.

Outputs: ``OUT/realdata/`` holds README.md (the report section), results.json,
points.csv (one row per point), runs.csv (one row per item) and
``accuracy_vs_*.png``. They are written into a temporary folder
``OUT/.realdata-*.tmp`` that is swapped in at the end (:func:`staged_folder`:
old folder renamed to ``OUT/.realdata-*.old``, new one renamed into place, old
one deleted), so a killed run leaves the previous complete outputs or the new
complete ones, never a mix of two runs (killed between the two renames: the
previous outputs intact under the ``.old`` name). The next run deletes leftovers.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .. import files
from ..errors import ConfigError
from ..lab import figures as F
from ..lab import report as R
from ..lab.image_experiment import (
    METRICS,
    PAIRED,
    SHARE_LEVELS,
    SPLITS,
    ImageConfig,
    Split,
    sweep_images,
)
from ..lab.images import (
    DIGITS,
    DIGITS_NAME,
    INSTALL_HINT,
    digits_available,
    load_source,
    source_options,
)
from ..lab.stats import SIGNIFICANCE, paired_t, sem, trend

__all__ = [
    "NAME",
    "CLAIM",
    "SOURCE",
    "COMMON",
    "Plan",
    "full_plan",
    "quick_plan",
    "make_plan",
    "plan_items",
    "run_plan",
    "summarize_points",
    "trend_test",
    "point_test",
    "claim_tests",
    "decide",
    "negative_regimes",
    "write_outputs",
    "run_realdata",
    "run",
    "claim_text",
    "staged_folder",
    "draw_sweep",
]

NAME = "realdata"
SOURCE = "paper"
SWEEPS = ("alpha", "n_down", "n_up", "flip_up")
COMMON = PAIRED
"""The swept fields: they do not enter the seed (common random numbers)."""
_SIDE = {+1: "greater", -1: "less"}


def claim_text(data_name=DIGITS_NAME, k=4):
    """The one-line claim of a run on ``data_name`` with k x k patches."""
    return (
        f"On real images ({data_name}, {k}x{k} patches, the same CNN and GD) transfer "
        "vs scratch follows the paper: the gain grows with alpha, N_1 and shared structure, "
        "upstream label noise shrinks it, and transfer hurts without shared structure"
    )


CLAIM = claim_text()


# ----------------------------------------------------------------------
# the plan
@dataclass(frozen=True)
class Plan:
    """The sweeps of a realdata run: ``base`` is the default point (its alpha
    and split are those of the N_1, N_2 and noise sweeps), ``seeds`` the
    replicates per point, ``alphas``, ``n_down``, ``n_up``, ``flip_up`` the
    grids and ``levels`` {name: Split} the split levels of the alpha sweep."""

    base: ImageConfig
    seeds: int
    alphas: tuple
    n_down: tuple
    n_up: tuple
    flip_up: tuple
    levels: dict = field(default_factory=lambda: dict(SPLITS))

    def to_dict(self):
        return {
            "base": self.base.to_dict(),
            "seeds": self.seeds,
            "alphas": list(self.alphas),
            "n_down": list(self.n_down),
            "n_up": list(self.n_up),
            "flip_up": list(self.flip_up),
            "levels": {k: v.spec() for k, v in self.levels.items()},
        }


def full_plan(base=None, seeds=20, levels=None):
    """20 seeds per point; alpha in {0, .25, .5, .75, 1} for each split level;
    N_2 in {8, 16, 32, 64, 128}; N_1 in {20, 40, 80, 160, 320}; flip_up in
    {0, .1, .2, .3, .4}; the last three at alpha = 1 on the default split
    (N_1 = 160, N_2 = 16)."""
    base = ImageConfig() if base is None else base
    return Plan(
        base=base,
        seeds=seeds,
        alphas=(0.0, 0.25, 0.5, 0.75, 1.0),
        n_down=(8, 16, 32, 64, 128),
        n_up=(20, 40, 80, 160, 320),
        flip_up=(0.0, 0.1, 0.2, 0.3, 0.4),
        levels=dict(SPLITS) if levels is None else dict(levels),
    )


def quick_plan(base=None, levels=None):
    """A smoke-test plan that runs in seconds (CI): 3 seeds, short step caps,
    two values per sweep. Its verdicts have little power."""
    base = ImageConfig() if base is None else base
    base = base.replace(steps_up=200, steps_down=200, n_test_per_class=30, n_up=80)
    return Plan(
        base=base,
        seeds=3,
        alphas=(0.0, 1.0),
        n_down=(8, 32),
        n_up=(20, 80),
        flip_up=(0.0, 0.4),
        levels=dict(SPLITS) if levels is None else dict(levels),
    )


def make_plan(quick=False, patch=4, standardize=False, split=None, split_none=None, seeds=None):
    """The full (or quick) plan with the command line's choices: patch side, standardisation,
    a class split (text, :meth:`Split.parse`: levels ``half`` = it and ``same`` = its
    downstream task upstream, plus ``none`` = ``split_none``) and the seeds per point."""
    base = ImageConfig(k=patch, standardize=standardize)
    levels = dict(SPLITS)
    if split is not None:
        main = Split.parse(split)
        levels = {"half": main, "same": main.same()}
        if split_none is not None:
            none = Split.parse(split_none)
            if none.classes("down") != main.classes("down"):
                raise ConfigError(
                    f"split_none {split_none!r} must have the downstream task of split {split!r}"
                )
            levels = {"none": none, **levels}
        base = base.replace(split=main)
    elif split_none is not None:
        raise ConfigError("split_none needs split (it is the no-shared-class variant of it)")
    plan = quick_plan(base, levels) if quick else full_plan(base, levels=levels)
    return plan if seeds is None else replace(plan, seeds=seeds)


def plan_items(plan: Plan):
    """The sweep points ``(sweep, level, config)`` of a plan ('default' is the
    level of the N_2, N_1 and noise sweeps)."""
    items = [
        ("alpha", level, plan.base.replace(split=s, alpha=a))
        for level, s in plan.levels.items()
        for a in plan.alphas
    ]
    for sweep in SWEEPS[1:]:
        items += [(sweep, "default", plan.base.replace(**{sweep: v})) for v in getattr(plan, sweep)]
    return items


def run_plan(plan: Plan, options=None, jobs=1, cache=None, progress=True):
    """Rows (one per point and seed) and the Sweep of a plan
    (:func:`refimpl.lab.image_experiment.sweep_images`; the points of one
    replicate share its seed)."""
    return sweep_images(
        plan_items(plan),
        plan.seeds,
        options,
        jobs=jobs,
        cache=cache,
        progress=progress,
        salt=NAME,
        common=COMMON,
    )


# ----------------------------------------------------------------------
# statistics
def _select(rows, sweep, level=None):
    return [r for r in rows if r["sweep"] == sweep and (level is None or r["level"] == level)]


def _num(v):
    return np.nan if v is None else float(v)


def summarize_points(rows):
    """Mean and standard error over seeds at every sweep point: sweep, level,
    alpha, n_up, n_down, flip_up, seeds, acc_transfer(_se), acc_scratch(_se),
    gain(_se) (the paired difference transfer - scratch), loss_up (mean)."""
    groups = {}
    for r in rows:
        key = (r["sweep"], str(r["level"]), r["alpha"], r["n_up"], r["n_down"], r["flip_up"])
        groups.setdefault(key, []).append(r)
    out = []
    for key, rs in groups.items():
        p = dict(zip(("sweep", "level", "alpha", "n_up", "n_down", "flip_up"), key), seeds=len(rs))
        for name in ("acc_transfer", "acc_scratch", "gain"):
            v = np.array([_num(r[name]) for r in rs])
            p[name], p[name + "_se"] = float(np.mean(v)), sem(v)
        p["loss_up"] = float(np.mean([_num(r["loss_up"]) for r in rs]))
        out.append(p)
    order = {s: i for i, s in enumerate(SWEEPS)}
    lv = {name: i for i, name in enumerate(SHARE_LEVELS)}
    out.sort(key=lambda p: (order[p["sweep"]], lv.get(p["level"], 99), p["level"], p[p["sweep"]]))
    return out


def trend_test(rows, x_name, sign, sweep=None, level=None):
    """Trend of the per-seed gains along ``x_name`` (seeds are the blocks):
    Page's L test one-sided in the direction ``sign`` (+1 or -1), or with two
    values of x their one-sided paired t-test. Returns sign, effect (mean
    per-seed Spearman rho; with two values the mean difference), p,
    diff_mean (gain at the largest x minus at the smallest), n, n_missing and
    the statistic text."""
    by_seed = {}
    for r in _select(rows, sweep or x_name, level):
        by_seed.setdefault(r["replicate"], {})[r[x_name]] = _num(r["gain"])
    grid = sorted({x for xs in by_seed.values() for x in xs})
    values = np.array([[by_seed[s].get(x, np.nan) for s in sorted(by_seed)] for x in grid])
    ends = paired_t(values[-1], values[0], _SIDE[sign])
    head = (
        f"gain at {x_name}={grid[-1]:g} minus at {x_name}={grid[0]:g}: "
        f"{ends['mean']:+.4f} ± {ends['se']:.4f}"
    )
    if len(grid) < 3:
        effect, p, n, missing = ends["mean"], ends["p"], ends["n"], ends["n_missing"]
        text = f"{head} (one-sided paired t, {R.fmt_p(p)}, {n} seeds; 2 points only)"
    else:
        res = trend(grid, values, _SIDE[sign])
        effect, p, n, missing = res["rho"], res["p"], res["n"], res["n_missing"]
        text = (
            f"Page's L test, one-sided: mean per-seed Spearman rho = {res['rho']:+.3f} ± "
            f"{res['rho_se']:.3f} ({R.fmt_p(p)}, {n} seeds x {res['points']} points); {head}"
        )
    return {
        "sign": sign,
        "effect": effect,
        "p": p,
        "diff_mean": ends["mean"],
        "n": n,
        "n_missing": missing,
        "statistic": text,
    }


def point_test(rows, sweep, level, alpha, sign):
    """One-sided paired t-test of transfer vs scratch accuracy at one point,
    in the direction ``sign``. Returns sign, effect (= diff_mean, the mean
    gain), p, t, n, n_missing and the statistic text."""
    sel = [r for r in _select(rows, sweep, level) if r["alpha"] == alpha]
    a = np.array([_num(r["acc_transfer"]) for r in sel])
    b = np.array([_num(r["acc_scratch"]) for r in sel])
    res = paired_t(a, b, _SIDE[sign])
    text = (
        f"transfer {np.mean(a):.4f} vs scratch {np.mean(b):.4f}: gain {res['mean']:+.4f} ± "
        f"{res['se']:.4f} (one-sided paired t = {res['t']:+.2f}, {R.fmt_p(res['p'])}, "
        f"{res['n']} seeds)"
    )
    return {
        "sign": sign,
        "effect": res["mean"],
        "p": res["p"],
        "diff_mean": res["mean"],
        "t": res["t"],
        "n": res["n"],
        "n_missing": res["n_missing"],
        "statistic": text,
    }


def claim_tests(rows, plan: Plan):
    """The test of every claim the plan can speak to (docs/model.md §8.1),
    each on all seeds: dicts key, claim, paper (False for an observation
    outside the paper's claims) and the test's numbers (sign, effect, p, ...)."""
    a_max = max(plan.alphas)
    levels = list(plan.levels)
    base = plan.base
    out = []

    def add(key, claim, paper, res):
        out.append({"key": key, "claim": claim, "paper": paper, **res})

    if "half" in levels:
        add(
            "transfer_helps",
            f"transfer beats scratch on the default split (alpha = {a_max:g}, "
            f"N_1 = {base.n_up}, N_2 = {base.n_down})",
            True,
            point_test(rows, "alpha", "half", a_max, +1),
        )
        add(
            "alpha_half",
            "the gain grows with alpha (default split, shared in part)",
            True,
            trend_test(rows, "alpha", +1, level="half"),
        )
    if "same" in levels:
        add(
            "alpha_same",
            "the gain grows with alpha (fully shared split: upstream = downstream classes)",
            True,
            trend_test(rows, "alpha", +1, level="same"),
        )
    add(
        "n_up",
        f"the gain grows with the upstream sample size N_1 (alpha = {base.alpha:g})",
        True,
        trend_test(rows, "n_up", +1),
    )
    add(
        "flip_up",
        f"upstream label noise shrinks the gain (alpha = {base.alpha:g})",
        True,
        trend_test(rows, "flip_up", -1),
    )
    if len(levels) >= 2 and all(lv in SHARE_LEVELS for lv in levels):
        sel = [
            dict(r, share=SHARE_LEVELS.index(r["level"]))
            for r in _select(rows, "alpha")
            if r["alpha"] == a_max
        ]
        add(
            "shared",
            f"the gain grows with the shared structure (|u| analogue: none < half < "
            f"same shared classes; alpha = {a_max:g})",
            True,
            trend_test(sel, "share", +1, sweep="alpha"),
        )
    if "none" in levels:
        add(
            "negative",
            f"negative transfer without shared structure (split 'none', alpha = "
            f"{a_max:g}): transfer worse than scratch",
            True,
            point_test(rows, "alpha", "none", a_max, -1),
        )
        add(
            "negative_alpha",
            "without shared structure a smaller alpha shrinks the harm "
            "(the gain falls as alpha grows)",
            True,
            trend_test(rows, "alpha", -1, level="none"),
        )
    add(
        "n_down",
        "the gain shrinks as the downstream sample size N_2 grows (a common "
        "expectation; not among the paper's claims, docs/model.md §8.1)",
        False,
        trend_test(rows, "n_down", -1),
    )
    return out


def decide(tests, significance=SIGNIFICANCE):
    """The verdicts from the tests' numbers alone (pure).

    ``tests``: dicts with ``key``, ``paper`` (bool), ``sign`` (+1 or -1, the
    predicted direction), ``effect`` and ``p`` (NaN when values were missing).
    Returns ``claims`` (the tests with ``verdict``: PASS when the effect has
    the predicted sign and p < significance, else FAIL), ``verdict`` (PASS
    when at least one paper claim was tested and all hold), ``held`` and
    ``paper`` (how many paper claims hold, of how many) and ``failed`` (keys).
    """
    claims = []
    for t in tests:
        effect, p = float(t["effect"]), float(t["p"])
        ok = bool(
            np.isfinite(effect)
            and np.sign(effect) == t["sign"]
            and np.isfinite(p)
            and p < significance
        )
        claims.append({**t, "verdict": "PASS" if ok else "FAIL"})
    paper = [c for c in claims if c["paper"]]
    failed = [c["key"] for c in paper if c["verdict"] != "PASS"]
    return {
        "claims": claims,
        "verdict": "PASS" if paper and not failed else "FAIL",
        "held": len(paper) - len(failed),
        "paper": len(paper),
        "failed": failed,
    }


def negative_regimes(points, rows):
    """Sweep points where transfer is significantly worse than scratch: the
    per-seed gains below 0 by a one-sided paired t-test at SIGNIFICANCE (each
    point on its own, no correction across points: a list of regimes, not a
    verdict)."""
    keys = ("sweep", "level", "alpha", "n_up", "n_down", "flip_up")
    found = []
    for p in points:
        d = np.array([_num(r["gain"]) for r in rows if all(str(r[k]) == str(p[k]) for k in keys)])
        res = paired_t(d, np.zeros_like(d), "less")
        if res["mean"] < 0 and res["p"] < SIGNIFICANCE:
            found.append(
                {
                    **{k: p[k] for k in keys},
                    "gain": p["gain"],
                    "gain_se": p["gain_se"],
                    "t": res["t"],
                    "p": res["p"],
                }
            )
    return found


# ----------------------------------------------------------------------
# outputs
POINT_COLUMNS = (
    "sweep",
    "level",
    "alpha",
    "n_up",
    "n_down",
    "flip_up",
    "seeds",
    "acc_transfer",
    "acc_transfer_se",
    "acc_scratch",
    "acc_scratch_se",
    "gain",
    "gain_se",
    "loss_up",
)
RUN_COLUMNS = (
    "sweep",
    "level",
    "split",
    "alpha",
    "n_up",
    "n_down",
    "flip_up",
    "replicate",
    "seed",
) + METRICS
_XLABEL = {
    "alpha": "inherited fraction alpha",
    "n_down": "downstream sample size N_2",
    "n_up": "upstream sample size N_1",
    "flip_up": "upstream label-flip probability",
}


def draw_sweep(axes, points, sweep):
    """Accuracy of transfer and scratch (``axes[0]``) and the paired gain
    (``axes[1]``) against the swept value, one line per split level."""
    groups = {}
    for p in points:
        groups.setdefault(p["level"], []).append(p)
    drawn = []  # scratch curves already drawn (the splits share downstream data)
    for level, ps in groups.items():
        ps = sorted(ps, key=lambda p: p[sweep])
        x = [p[sweep] for p in ps]
        name = f" ({level})" if sweep == "alpha" else ""
        line = axes[0].errorbar(
            x,
            [p["acc_transfer"] for p in ps],
            yerr=[p["acc_transfer_se"] for p in ps],
            marker="o",
            capsize=3,
            label=f"transfer{name}",
        )
        scratch = [p["acc_scratch"] for p in ps]
        if scratch not in drawn:
            drawn.append(scratch)
            axes[0].errorbar(
                x,
                scratch,
                yerr=[p["acc_scratch_se"] for p in ps],
                marker="x",
                ls="--",
                capsize=3,
                alpha=0.6,
                label="scratch",
                color="k" if sweep == "alpha" else line[0].get_color(),
            )
        axes[1].errorbar(
            x,
            [p["gain"] for p in ps],
            yerr=[p["gain_se"] for p in ps],
            marker="o",
            capsize=3,
            label=f"transfer - scratch{name}",
        )
    axes[1].axhline(0.0, color="k", lw=0.8)
    for ax in axes:
        ax.set_xlabel(_XLABEL[sweep])
        if sweep in ("n_down", "n_up"):
            ax.set_xscale("log", base=2)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("downstream test accuracy")
    axes[1].set_ylabel("accuracy gain (paired, ± SE)")
    return axes


def _figures(points, folder, plan, data_name):
    names = []
    for sweep in SWEEPS:
        pts = [p for p in points if p["sweep"] == sweep]
        if not pts:
            continue
        fig, axes = F.subplots(1, 2, figsize=(10, 3.8))
        draw_sweep(axes, pts, sweep)
        fig.suptitle(
            f"{data_name}, {plan.base.k}x{plan.base.k} patches, {plan.seeds} seeds per point",
            fontsize=9,
        )
        F.save(fig, Path(folder) / f"accuracy_vs_{sweep}.png")
        names.append(f"accuracy_vs_{sweep}.png")
    return names


def _body(data_name, plan, points, decision, negatives, figs, wall, cached, quick):
    b = plan.base
    splits = ", ".join(f"{k} = {v.spec()}" for k, v in plan.levels.items())
    intro = (
        f"Partial parameter transfer on real images, transfer vs scratch. Data: {data_name}, "
        f"{b.k}x{b.k} blocks ({'standardised' if b.standardize else 'not standardised'}); "
        f"downstream task {b.split.spec().split(':')[1]} (+1/-1); splits {splits}; "
        f"m = {b.m}, eta = {b.eta:g}, sigma_0 = {b.sigma_0:g}, epsilon = {b.epsilon:g}, "
        f"step caps {b.steps_up}/{b.steps_down}; {plan.seeds} seeds per point, shared by "
        f"all points (common random numbers); accuracy on {b.n_test_per_class} held-out "
        f"images per downstream class. {'QUICK run (little power). ' if quick else ''}"
        f"Wall time {wall:.0f} s ({cached} items from the sweep cache)."
    )
    tests = (
        f"Tests: a trend claim is Page's L test of the per-seed gains along x (seeds are "
        f"the blocks), one-sided at level {SIGNIFICANCE}; a point claim is a one-sided "
        f"paired t-test at {SIGNIFICANCE}. These tests replaced the first run's pooled "
        "Spearman test; the project README ('Real images') says when and why."
    )
    claims = R.markdown_table(
        ["claim", "paper", "verdict", "statistic"],
        [
            [c["claim"], "yes" if c["paper"] else "no", c["verdict"], c["statistic"]]
            for c in decision["claims"]
        ],
    )
    pts = R.markdown_table(
        ["sweep", "split", "alpha", "N_1", "N_2", "flip_up", "transfer", "scratch", "gain"],
        [
            [
                p["sweep"],
                p["level"],
                f"{p['alpha']:g}",
                p["n_up"],
                p["n_down"],
                f"{p['flip_up']:g}",
                R.fmt_mean_se(p["acc_transfer"], p["acc_transfer_se"], 3),
                R.fmt_mean_se(p["acc_scratch"], p["acc_scratch_se"], 3),
                R.fmt_mean_se(p["gain"], p["gain_se"], 3),
            ]
            for p in points
        ],
    )
    neg = (
        "; ".join(
            f"{n['sweep']} {n['level']} alpha={n['alpha']:g} N_1={n['n_up']} "
            f"N_2={n['n_down']} flip_up={n['flip_up']:g}: {n['gain']:+.3f} ± "
            f"{n['gain_se']:.3f}"
            for n in negatives
        )
        or "none found."
    )
    neg = f"Negative transfer (gain < 0, one-sided paired t p < {SIGNIFICANCE}, per point): {neg}"
    return "\n\n".join(
        [
            intro,
            tests,
            claims,
            "Points (mean ± SE over seeds; gain = paired transfer - scratch):",
            pts,
            neg,
            f"'default' marks the N_1, N_2 and noise sweeps (default split, alpha = {b.alpha:g}).",
            R.figure_note(figs),
        ]
    )


@contextmanager
def staged_folder(final):
    """Yield a fresh temporary folder beside ``final``; on a normal exit swap
    it in as ``final`` (module docstring), on an exception delete it. Stale
    temporary folders of killed runs are deleted first."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}-*"):
        if stale.suffix in (".tmp", ".old") and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}-", suffix=".tmp"))
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o777 & ~mask)  # as a plain mkdir would (not 0700)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if final.exists():
        old = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}-", suffix=".old"))
        os.rename(final, old)  # onto the empty folder just made
    os.rename(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_outputs(folder, data_name, plan, rows, wall, quick=False, cached=0):
    """Decide, and write README.md, results.json, points.csv, runs.csv and the
    figures into ``folder`` (swapped in whole, :func:`staged_folder`); returns
    the claim protocol's result dict."""
    points = summarize_points(rows)
    decision = decide(claim_tests(rows, plan))
    negatives = negative_regimes(points, rows)
    failed = decision["failed"]
    statistic = (
        f"{decision['held']}/{decision['paper']} paper claims hold on {data_name} "
        f"({plan.seeds} seeds per point)"
        + (f"; not reproduced: {', '.join(failed)}" if failed else "")
    )
    claim = claim_text(data_name, plan.base.k)
    missing = sum(c["n_missing"] for c in decision["claims"] if c["paper"])
    folder = Path(folder)
    with staged_folder(folder) as tmp:
        figs = [folder / n for n in _figures(points, tmp, plan, data_name)] if F.available() else []
        body = _body(data_name, plan, points, decision, negatives, figs, wall, cached, quick)
        res = R.result(
            NAME,
            claim,
            decision["verdict"],
            statistic,
            body,
            missing=missing,
            source=SOURCE,
            claims=decision["claims"],
            points=points,
            figures=[str(p) for p in figs],
            negative_regimes=negatives,
        )
        sklearn = getattr(sys.modules.get("sklearn"), "__version__", None)
        prov = {
            **files.provenance(),
            "scikit-learn": sklearn,
            "data": data_name,
            "quick": quick,
            "wall_seconds": wall,
            "cached_items": cached,
        }
        files.write_json(
            tmp / "results.json",
            {
                "status": "ok",
                "plan": plan.to_dict(),
                "provenance": prov,
                "claims": decision["claims"],
                "negative_regimes": negatives,
                "points": points,
                "verdict": res["verdict"],
                "statistic": res["statistic"],
            },
        )
        files.write_csv(
            tmp / "points.csv", POINT_COLUMNS, [[p[c] for c in POINT_COLUMNS] for p in points]
        )
        files.write_csv(tmp / "runs.csv", RUN_COLUMNS, [[r[c] for c in RUN_COLUMNS] for r in rows])
        files.write_text(tmp / "README.md", res["markdown"])
    return res


def run_realdata(out, quick=False, jobs=1, source=DIGITS, plan=None, progress=True, **choices):
    """Run a plan and write ``out/realdata/``: the library function of
    ``python -m refimpl realdata``. ``source``: "digits" or a .npz path
    (:data:`refimpl.lab.images.NPZ_FORMAT`); ``plan`` defaults to
    :func:`make_plan` ``(quick, **choices)`` (patch, standardize, split,
    split_none, seeds); the sweep cache is ``out/.sweep-cache``. Returns the
    claim protocol's result dict (plus claims, points, figures,
    negative_regimes)."""
    plan = make_plan(quick, **choices) if plan is None else plan
    options = source_options(source)
    data_name = load_source(**options).name  # data errors before any folder is made
    start = time.monotonic()
    rows, sw = run_plan(plan, options, jobs=jobs, cache=R.cache_dir(out), progress=progress)
    wall = time.monotonic() - start
    return write_outputs(
        Path(out) / NAME, data_name, plan, rows, wall, quick=quick, cached=sw.cached
    )


def run(out, quick=False, jobs=1):
    """The claim protocol: the full (or quick) plan on the digits. Without
    scikit-learn the claim is SKIPPED, with results.json saying why."""
    if not digits_available():
        res = R.skipped(NAME, CLAIM, SOURCE, INSTALL_HINT)
        with staged_folder(Path(out) / NAME) as tmp:
            files.write_json(
                tmp / "results.json",
                {"status": "skipped", "verdict": "SKIPPED", "statistic": INSTALL_HINT},
            )
            files.write_text(tmp / "README.md", res["markdown"])
        return res
    return run_realdata(out, quick=quick, jobs=jobs)
