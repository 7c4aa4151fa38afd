"""realdata: the paper's claims (docs/model.md §8.1) on real images, the class-split tasks of
:mod:`refimpl.lab.image_experiment` on scikit-learn's digits. The design is :data:`PROTOCOL`;
``python -m refimpl realdata`` (:mod:`refimpl.cli.realdata`) runs it on other images or splits."""

from __future__ import annotations

import sys

import numpy as np
import scipy.stats

from ..lab import report as R
from ..lab.claim import Outcome, Protocol, Size, Skip, Table
from ..lab.image_experiment import METRICS, PAIRED, SHARE_LEVELS, SPLITS, ImageConfig, sweep_images
from ..lab.images import DIGITS, DIGITS_NAME, INSTALL_HINT, digits_available, load_source
from ..lab.stats import SIGNIFICANCE, holm, paired_t, sem, trend
from . import _realdata_figures as RF
from ._base import as_float, history

SWEEPS = {  # the swept values, with their axis labels
    "alpha": "inherited fraction alpha",
    "n_down": "downstream sample size N_2",
    "n_up": "upstream sample size N_1",
    "flip_up": "upstream label-flip probability",
}
KEYS = ("sweep", "level", "alpha", "n_up", "n_down", "flip_up")  # level 'default': not alpha's
_SIDE = {+1: "greater", -1: "less"}
CLAIM_TEMPLATE = (  # on images {data} cut into k x k patches
    "On real images ({data}, {k}x{k} patches, the same CNN and GD) transfer vs scratch follows "
    "the paper: the gain grows with alpha, N_1 and shared structure, upstream label noise "
    "shrinks it, and transfer hurts without shared structure"
)


def image_size(base, seeds, x, levels=None, source=None):
    """The :class:`Size` of the sweeps: alpha for each split level (default :data:`SPLITS`),
    N_2, N_1, flip_up at ``base``; ``source``: :func:`refimpl.lab.images.source_options`."""
    levels = dict(SPLITS) if levels is None else dict(levels)
    alpha = {lv: [base.replace(split=s, alpha=a) for a in x["alpha"]] for lv, s in levels.items()}
    configs = {k: [base.replace(**{k: v}) for v in x[k]] for k in list(SWEEPS)[1:]}
    configs = {"base": base, "alpha": alpha, **configs}
    return Size(configs, seeds, x=x, source=source or {"source": DIGITS})


TESTS = {  # key: (the split level it needs, the swept value (None: a point test), the sign)
    "transfer_helps": ("half", None, +1),
    "alpha_half": ("half", "alpha", +1),
    "alpha_same": ("same", "alpha", +1),
    "n_up": (None, "n_up", +1),
    "flip_up": (None, "flip_up", -1),
    "shared": ("share", "share", +1),
    "negative": ("none", None, -1),
    "negative_alpha": ("none", "alpha", -1),
    "n_down": (None, "n_down", -1),
}
"""The claims tested, in report order; ``n_down`` is not a paper claim."""
CLAIMS = {  # {a}: the largest alpha, {b}: the base config
    "transfer_helps": "transfer beats scratch on the default split (alpha = {a:g}, "
    "N_1 = {b.n_up}, N_2 = {b.n_down})",
    "alpha_half": "the gain grows with alpha (default split, shared in part)",
    "alpha_same": "the gain grows with alpha (fully shared split: upstream = downstream classes)",
    "n_up": "the gain grows with the upstream sample size N_1 (alpha = {b.alpha:g})",
    "flip_up": "upstream label noise shrinks the gain (alpha = {b.alpha:g})",
    "shared": "the gain grows with the shared structure (|u| analogue: none < half < same "
    "shared classes; alpha = {a:g})",
    "negative": "negative transfer without shared structure (split 'none', alpha = {a:g}): "
    "transfer worse than scratch",
    "negative_alpha": "without shared structure a smaller alpha shrinks the harm (the gain "
    "falls as alpha grows)",
    "n_down": "the gain shrinks as the downstream sample size N_2 grows (a common "
    "expectation; not among the paper's claims, docs/model.md §8.1)",
}
TREND = "Page's L test of the per-seed gains, one-sided"
POINT = "one-sided paired t-test of transfer vs scratch accuracy"


def _rule(level, x, sign):
    where = f" on split '{level}'" if level in SPLITS else ""
    if x is None:
        return f"{POINT}{where} at the largest alpha: transfer {'><'[sign < 0]} scratch"
    along = "none < half < same at the largest alpha" if x == "share" else x
    return f"{TREND}, along {along}{where}: the gain {'increases' if sign > 0 else 'decreases'}"


FULL_X = dict(alpha=[0.0, 0.25, 0.5, 0.75, 1.0], n_down=[8, 16, 32, 64, 128])
FULL_X.update(n_up=[20, 40, 80, 160, 320], flip_up=[0.0, 0.1, 0.2, 0.3, 0.4])
QUICK_BASE = ImageConfig(steps_up=200, steps_down=200, n_test_per_class=30, n_up=80)
PROTOCOL = Protocol(
    name="realdata",
    claim=CLAIM_TEMPLATE.format(data=DIGITS_NAME, k=4),
    source="paper",
    full=image_size(ImageConfig(), 80, FULL_X),
    quick=image_size(
        QUICK_BASE, 3, dict(alpha=[0.0, 1.0], n_down=[8, 32], n_up=[20, 80], flip_up=[0.0, 0.4])
    ),
    statistic=f"per analogue (rules; docs/model.md §8.4), on all seeds: a trend is {TREND} along "
    "the swept value (seeds the blocks; two values: their one-sided paired t-test), its effects "
    "the mean per-seed Spearman rho and the mean paired gain difference between the sweep's ends, "
    "each with its 95% t-interval over seeds (rho's kept within [-1, 1]); a point analogue is a "
    f"{POINT}, its effect the mean paired gain with its 95% t-interval; medians beside; gain = "
    "transfer - scratch accuracy",
    pass_rule=f"8 of 8 paper analogues hold: effect of the predicted sign and one-sided p, "
    f"Holm-adjusted over the 8 (family-wise {SIGNIFICANCE}), below {SIGNIFICANCE}; none missing",
    fixed="2026-12-06",
    salt="realdata-v2",
    common=PAIRED,
    pairing="the swept fields (split, alpha, N_1, N_2, flip_up) do not enter the seed, so every "
    "point of a replicate shares its draws (images, label flips, initialisations): common "
    "random numbers, each seed a block",
    rules={k: _rule(*t) for k, t in TESTS.items() if k != "n_down"},
    notes={
        "n_down": "a common expectation, not a paper claim (docs/model.md §8.1): reported with "
        "its unadjusted p, outside the Holm family and the verdict",
        "multiplicity": "Holm (refimpl.lab.stats.holm, a missing p as 1) makes every 'holds' "
        "family-wise at 0.01, so their count is a claim too (8 of 8 alone would need none)",
        "seeds": "80, from this rule's power on v1's 40 seeds (main + r1 runs.csv resampled by "
        "seed, 1000 draws; exploratory): 0.43 at 40 seeds, 0.66 at 60, 0.80 at 80; flip_up "
        "limits it (0.49, 0.67, 0.81), the other seven >= 0.98 at 80",
    },
    disclosures=history("realdata"),
)


def measure(size, sweep):
    """The rows of :func:`refimpl.lab.image_experiment.sweep_images` (one per point and seed)."""
    if size.source["source"] == DIGITS and not digits_available():
        raise Skip(INSTALL_HINT)
    c = size.configs
    items = [("alpha", lv, cfg) for lv, grid in c["alpha"].items() for cfg in grid]
    items += [(s, "default", cfg) for s in list(SWEEPS)[1:] for cfg in c[s]]
    run = dict(jobs=sweep.jobs, cache=sweep.cache, progress=getattr(sweep, "progress", True))
    run.update(salt=sweep.protocol.salt, common=sweep.protocol.common)
    rows, sw = sweep_images(items, size.seeds, size.source, **run)
    sklearn = getattr(sys.modules.get("sklearn"), "__version__", None)
    name = load_source(**size.source).name
    return {"rows": rows, "data": name, "scikit-learn": sklearn, "cached": sw.cached}


def _select(rows, sweep, level=None):
    return [r for r in rows if r["sweep"] == sweep and (level is None or r["level"] == level)]


def interval(mean, se, n):
    """The 95% t-interval of a mean over ``n`` seeds (NaN below 2 seeds)."""
    h = float(scipy.stats.t.ppf(0.975, n - 1)) * se if n > 1 else float("nan")
    return [mean - h, mean + h]


def _ci(mean, ci, digits=4):
    return f"{mean:+.{digits}f} [{ci[0]:+.{digits}f}, {ci[1]:+.{digits}f}]"


def trend_test(rows, x_name, sign, sweep=None, level=None):
    """Page's L test of the per-seed gains along ``x_name`` (seeds the blocks), one-sided
    toward ``sign``; two values of x: their paired t-test. effect: mean per-seed rho (rho_ci;
    two values: the mean difference); diff_*: last x minus first (mean, 95% CI, median)."""
    by_seed = {}
    for r in _select(rows, sweep or x_name, level):
        by_seed.setdefault(r["replicate"], {})[r[x_name]] = r["gain"]
    grid = sorted({x for xs in by_seed.values() for x in xs})
    values = as_float([[by_seed[s].get(x) for s in sorted(by_seed)] for x in grid])
    ends = paired_t(values[-1], values[0], _SIDE[sign])
    ci = interval(ends["mean"], ends["se"], ends["n"])
    median = float(np.nanmedian(values[-1] - values[0]))
    head = f"gain at {x_name}={grid[-1]:g} minus at {x_name}={grid[0]:g}: mean "
    head += f"{_ci(ends['mean'], ci)} (95% t-interval), median {median:+.4f}"
    out = {"sign": sign, "diff_mean": ends["mean"], "diff_ci": ci, "diff_median": median}
    if len(grid) < 3:
        effect, p, n, missing, rho_ci = ends["mean"], ends["p"], ends["n"], ends["n_missing"], None
        text = f"{head} (one-sided paired t, {R.fmt_p(p)}, {n} seeds; 2 points only)"
    else:
        res = trend(grid, values, _SIDE[sign])
        effect, p, n, missing = res["rho"], res["p"], res["n"], res["n_missing"]
        rho_ci = [float(v) for v in np.clip(interval(effect, res["rho_se"], n), -1.0, 1.0)]
        text = (
            f"Page's L test, one-sided, {R.fmt_p(p)} ({n} seeds x {res['points']} points); "
            f"mean per-seed Spearman rho {_ci(effect, rho_ci, 3)}; {head}"
        )
    out.update(effect=effect, rho_ci=rho_ci, p=p, n=n, n_missing=missing)
    return {**out, "statistic": text}


def point_test(rows, level, alpha, sign):
    """One-sided paired t-test, transfer vs scratch accuracy at (level, alpha) of the alpha
    sweep, toward ``sign``; effect = diff_mean = mean gain (diff_ci: 95% CI; diff_median)."""
    sel = [r for r in _select(rows, "alpha", level) if r["alpha"] == alpha]
    a, b = (as_float([r[k] for r in sel]) for k in ("acc_transfer", "acc_scratch"))
    res = paired_t(a, b, _SIDE[sign])
    ci, median = interval(res["mean"], res["se"], res["n"]), float(np.nanmedian(a - b))
    text = (
        f"transfer {np.mean(a):.4f} vs scratch {np.mean(b):.4f}: mean gain {_ci(res['mean'], ci)} "
        f"(95% t-interval), median {median:+.4f} (one-sided paired t = {res['t']:+.2f}, "
        f"{R.fmt_p(res['p'])}, {res['n']} seeds)"
    )
    out = {"sign": sign, "effect": res["mean"], "p": res["p"], "diff_mean": res["mean"]}
    out.update(diff_ci=ci, diff_median=median, t=res["t"], n=res["n"])
    return {**out, "n_missing": res["n_missing"], "statistic": text}


def claim_tests(rows, size):
    """:data:`TESTS` the size's split levels can speak to, in order: dicts key,
    claim (:data:`CLAIMS`), paper (False for ``n_down``) and the test's numbers."""
    a, b, levels = max(size.x["alpha"]), size.configs["base"], list(size.configs["alpha"])
    can = {None: True, "share": len(levels) >= 2 and all(lv in SHARE_LEVELS for lv in levels)}
    out = []
    for key, (level, x, sign) in TESTS.items():
        if not can.get(level, level in levels):
            continue
        if x is None:
            res = point_test(rows, level, a, sign)
        elif x == "share":
            top = [r for r in _select(rows, "alpha") if r["alpha"] == a]
            top = [dict(r, share=SHARE_LEVELS.index(r["level"])) for r in top]
            res = trend_test(top, "share", sign, sweep="alpha")
        else:
            res = trend_test(rows, x, sign, level=level)
        claim = CLAIMS[key].format(a=a, b=b)
        out.append({"key": key, "claim": claim, "paper": key != "n_down", **res})
    return out


def judge(tests, significance=SIGNIFICANCE):
    """The verdicts from the tests' numbers alone (pure). The paper claims' p
    are Holm-adjusted as one family (p_holm; NaN counts as 1 and stays NaN); a
    claim holds (verdict PASS) when its effect has the predicted sign (sign_ok)
    and its p (paper: p_holm) is below ``significance``. PASS when a paper
    claim was tested, all hold and no value (``n_missing``) is missing."""
    paper = [i for i, t in enumerate(tests) if t["paper"]]
    adjusted = dict(zip(paper, holm([float(tests[i]["p"]) for i in paper]), strict=True))
    claims = []
    for i, t in enumerate(tests):
        effect, p = float(t["effect"]), float(adjusted.get(i, t["p"]))
        sign_ok = bool(np.isfinite(effect) and np.sign(effect) == t["sign"])
        held = sign_ok and bool(np.isfinite(p) and p < significance)
        p_holm = float(adjusted[i]) if i in adjusted else None
        verdict = "PASS" if held else "FAIL"
        claims.append({**t, "p_holm": p_holm, "sign_ok": sign_ok, "verdict": verdict})
    paper = [c for c in claims if c["paper"]]
    failed = [c["key"] for c in paper if c["verdict"] != "PASS"]
    missing = sum(int(c.get("n_missing", 0)) for c in paper)
    held = "PASS" if paper and not failed else "FAIL"
    out = {"verdict": "FAIL" if missing else held, "verdict_tests": held, "missing": missing}
    out.update(claims=claims, held=len(paper) - len(failed), paper=len(paper), failed=failed)
    return {**out, "signs": sum(c["sign_ok"] for c in paper)}


def decide(size, m):
    """:func:`judge` of :func:`claim_tests` of the measured rows."""
    return judge(claim_tests(m["rows"], size))


def summarize_points(rows):
    """Per sweep point (:data:`KEYS`, in the rows' order): seeds, the mean and SE
    over seeds of acc_transfer, acc_scratch and gain, the mean loss_up; and the
    negative regimes, points whose per-seed gains are below 0 by a one-sided
    paired t-test at SIGNIFICANCE (each on its own: a list, not a verdict)."""
    groups, points, negatives = {}, [], []
    for r in rows:
        groups.setdefault(tuple(str(r[k]) if k == "level" else r[k] for k in KEYS), []).append(r)
    for key, rs in groups.items():
        p = dict(zip(KEYS, key, strict=True), seeds=len(rs))
        for name in ("acc_transfer", "acc_scratch", "gain"):
            v = as_float([r[name] for r in rs])
            p[name], p[name + "_se"] = float(np.mean(v)), sem(v)
        p["loss_up"] = float(np.mean(as_float([r["loss_up"] for r in rs])))
        points.append(p)
        res = paired_t(v, np.zeros_like(v), "less")  # v: the gains
        if res["mean"] < 0 and res["p"] < SIGNIFICANCE:
            neg = {k: p[k] for k in (*KEYS, "gain", "gain_se")}
            negatives.append({**neg, "t": res["t"], "p": res["p"]})
    return points, negatives


def present(size, m, dec):
    rows, b = m["rows"], size.configs["base"]
    pts, negatives = summarize_points(rows)
    failed = f"; not reproduced: {', '.join(dec['failed'])}" if dec["failed"] else ""
    statistic = f"{dec['held']}/{dec['paper']} paper analogues hold (one-sided tests, Holm over "
    statistic += f"the {dec['paper']}, family-wise {SIGNIFICANCE}) on {m['data']} ({size.seeds} "
    statistic += f"seeds per point); predicted sign in {dec['signs']}/{dec['paper']}{failed}"
    yes = ("no", "yes")
    claims = [
        [c["claim"], yes[c["paper"]], yes[c["verdict"] == "PASS"], c["p"]]
        + [c["p_holm"] if c["paper"] else "-", c["statistic"]]
        for c in dec["claims"]
    ]
    shown = [
        [p["sweep"], p["level"], f"{p['alpha']:g}", p["n_up"], p["n_down"], f"{p['flip_up']:g}"]
        + [R.fmt_mean_se(p[k], p[f"{k}_se"], 3) for k in ("acc_transfer", "acc_scratch", "gain")]
        for p in pts
    ]
    neg = "; ".join(
        f"{n['sweep']} {n['level']} alpha={n['alpha']:g} N_1={n['n_up']} N_2={n['n_down']} "
        f"flip_up={n['flip_up']:g}: {n['gain']:+.3f} ± {n['gain_se']:.3f}"
        for n in negatives
    )
    title = f"{m['data']}, {b.k}x{b.k} patches, {size.seeds} seeds per point"
    swept = [s for s in SWEEPS if any(p["sweep"] == s for p in pts)]
    run_columns = (*KEYS[:2], "split", *KEYS[2:], "replicate", "seed", *METRICS)
    splits = ", ".join(f"{lv} = {g[0].split.spec()}" for lv, g in size.configs["alpha"].items())
    intro = (
        f"Partial parameter transfer on real images, transfer vs scratch. Data: {m['data']}, "
        f"{b.k}x{b.k} blocks ({'standardised' if b.standardize else 'not standardised'}); "
        f"downstream task {b.split.spec().split(':')[1]} (+1/-1); splits {splits}; "
        f"m = {b.m}, eta = {b.eta:g}, sigma_0 = {b.sigma_0:g}, epsilon = {b.epsilon:g}, "
        f"step caps {b.steps_up}/{b.steps_down}; {size.seeds} seeds per point, shared by "
        f"all points (common random numbers); accuracy on {b.n_test_per_class} held-out "
        f"images per downstream class. {m['cached']} items came from the sweep cache."
    )
    sections = [
        intro,
        Table(["claim", "paper", "holds", "p", "p (Holm)", "test and effects"], claims),
        Table(
            ["sweep", "split", "alpha", "N_1", "N_2", "flip_up", "transfer", "scratch", "gain"],
            shown,
            title="Points (mean ± SE over seeds; gain = paired transfer - scratch):",
        ),
        f"Negative transfer (gain < 0, one-sided paired t p < {SIGNIFICANCE}, per point): "
        f"{neg or 'none found.'}",
        f"'default' marks the N_1, N_2 and noise sweeps (default split, alpha = {b.alpha:g}).",
        *(RF.sweep_figure([p for p in pts if p["sweep"] == s], s, SWEEPS[s], title) for s in swept),
        Table(list(pts[0]), [list(p.values()) for p in pts], name="points", show=False),
        Table(run_columns, [[r[c] for c in run_columns] for r in rows], name="runs", show=False),
    ]
    data = {"data": m["data"], "scikit-learn": m["scikit-learn"], "cached_items": m["cached"]}
    return Outcome(statistic, sections, {**data, "negative_regimes": negatives})
