"""The Gamma confirmation shared by the claims ``transfer_phase`` (paper: some
compact scalar predicts the sign of the transfer gain, phase-like) and
``gamma_candidates`` (hypothesis: our reconstruction Gamma_inh is that
scalar); docs/model.md §8.5.

Pre-registered from the exploration stage (transfer_phase v2, 400 cells on two
seed streams) by ``validation/preregister_gamma.py`` before any confirmation
run: :data:`RIDGE` and :data:`MONOMIAL` are its output
(``validation/preregistration/gamma.json``; a test checks they agree).

Three designs, each a list of configs (:func:`sizes`):

- ``confirm``: new cells (Latin hypercube, seed :data:`CONFIRM_SEED`) varying
  alpha, N_1 (d >= 2 N_1), |u|, sigma_p,1, sigma_p,2 and d log-uniformly, with
  N_2, |v_1|, |v_2| and p_2 at two levels each (:data:`STRATA`, cell i in
  stratum i mod 16);
- ``scaled``: other cells (seed :data:`SCALE_SEED`) repeated at every scale s
  of :data:`SCALES` with d, N_1 and N_2 multiplied by s (which leaves Gamma_1,
  Gamma_inh and Gamma_scr unchanged) and the step cap by s;
- ``eta``: the first confirmation cells at the step constant c = 100 and with
  one step for both stages (untied), beside the confirmation's c = 200 tied
  to each stage's sigma_p (the step-size invariance check, reported).

:mod:`._gamma_judge` applies the pass rule (:mod:`._gamma_fit`) to every candidate.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import scipy.stats

from ..lab.claim import Protocol, Size
from ..theory import indicators
from . import _base as B

FACTORS = (
    "alpha",
    "n_up",
    "u_norm",
    "sigma_p_up",
    "sigma_p_down",
    "d",
    "n_down",
    "v_up_norm",
    "v_down_norm",
)
"""The nine multiplicative factors of a cell; p_2 (``flip_down``) enters linearly."""
VARIED = {
    "alpha": (0.1, 1.0),
    "n_up": (10, 400),
    "u_norm": (0.25, 4.0),
    "sigma_p_up": (0.5, 3.0),
    "sigma_p_down": (0.5, 2.0),
    "d": (200, 3200),
}
"""The full size's confirmation ranges (log-uniform; N_1 at most d / 2)."""
STRATA = {
    "n_down": (10, 40),
    "v_up_norm": (0.7, 2.0),
    "v_down_norm": (0.7, 2.0),
    "flip_down": (0.0, 0.1),
}
"""The factors held at two levels each: 16 strata."""
SCALED_RANGES = dict(VARIED, n_up=(10, 100), d=(100, 400))
"""The scaled cells' ranges at s = 1."""
SCALED_N_DOWN = (5, 10)
"""N_2 of the scaled cells at s = 1 (the two levels of the stratum)."""
SCALES = (1, 2, 4)
CONFIRM_SEED = 20261206
SCALE_SEED = 20261207
ETA_C = 200.0
"""eta = ETA_C / (sigma_p^2 d) per stage, as in the exploration."""
ETA_CHECK = ({"c": 100.0, "tied": True}, {"c": 200.0, "tied": False})
"""The step-size variants of the check: c = 100 tied, and c = 200 untied
(one step for both stages, ETA_C / (max(sigma_p,1, sigma_p,2)^2 d))."""
EPS = 0.01
CAP = 2000
N_TEST = 4000
METRICS = ("err_transfer", "err_scratch", "loss_down", "loss_scratch", "loss_up", "steps_up")

RIDGE = 1e-05
"""The free model's ridge per seed-level row (pre-registered)."""
MONOMIAL = dict(zip(FACTORS, (0.0, 0.5, 4.0, 0.0, 0.5, 0.5, -1.5, -1.0, -3.5), strict=True))
"""Gamma_hat's exponents (pre-registered: the exploration's free slopes scaled to
|u|^4, rounded to halves)."""

CANDIDATES = ("gamma_inh", "gamma_ratio", "gamma_1", "alpha_gamma_1", "gamma_hat")
NULLS = ("u_norm", "inv_gamma_scr")
LABELS = {
    "gamma_inh": "Gamma_inh",
    "gamma_ratio": "Gamma_inh / Gamma_scr",
    "gamma_1": "Gamma_1 = N_1 |u|^4 / (sigma_p,1^2 sigma_p,2^2 d)",
    "alpha_gamma_1": "alpha Gamma_1",
    "gamma_hat": "Gamma_hat (exploration monomial)",
    "u_norm": "|u| (null)",
    "inv_gamma_scr": "1 / Gamma_scr (null)",
}

AUC_FLOOR = 0.85
BRIER_DELTA = 0.01
SHIFT_MARGIN = 0.5
"""Decades of log10 Gamma the threshold may move between scales."""
WIDTH_RATIO = 1.5
"""The largest scale's width over the smallest's must be below this."""
WIDTH_FLOOR = 0.1
"""Widths below this many decades count as this (the design's resolution)."""
RESID_LIMIT = 0.2
LEVEL = 0.05
ETA_MARGIN = 0.01
BOOT = 1000
FOLDS = 10
SEED = 1206
"""The seed of the folds and of every bootstrap."""


def _logu(lo, hi, x):
    return math.exp(math.log(lo) + x * (math.log(hi) - math.log(lo)))


def hypercube(ranges, n, seed):
    """``n`` points (dicts of the varied factors) of a scrambled Latin hypercube,
    log-uniform in ``ranges`` (4 digits; d and N_1 whole, N_1 <= d / 2)."""
    keys = tuple(ranges)
    t = scipy.stats.qmc.LatinHypercube(d=len(keys), seed=seed).random(n)
    cells = []
    for row in t:
        x = dict(zip(keys, row, strict=True))
        cell = {f: float(f"{_logu(*ranges[f], x[f]):.4g}") for f in keys}
        cell["d"] = round(_logu(*ranges["d"], x["d"]))
        lo, hi = ranges["n_up"]
        cell["n_up"] = round(_logu(lo, min(hi, cell["d"] // 2), x["n_up"]))
        cells.append(cell)
    return cells


def strata(n, levels):
    """Cell i's stratum: the (i mod 16)-th combination of the two-level factors."""
    combos = list(itertools.product(*levels.values()))
    return [dict(zip(levels, combos[i % len(combos)], strict=True)) for i in range(n)]


def config(quick, cell, cap=CAP, n_test=N_TEST, c=ETA_C, tied=True):
    """A cell's Config: eta = c / (sigma_p^2 d) per stage (``tied``) or one
    step c / (max sigma_p^2 d) for both, every stage to the loss EPS within ``cap``."""
    if tied:
        eta = {s: c / (cell[f"sigma_p_{s}"] ** 2 * cell["d"]) for s in ("up", "down")}
    else:
        top = max(cell["sigma_p_up"], cell["sigma_p_down"])
        eta = dict.fromkeys(("up", "down"), c / (top**2 * cell["d"]))
    stop = dict(epsilon=EPS, steps_up=cap, steps_down=cap, n_test=n_test, engine=B.ENGINE)
    return B.transfer_base(quick, **cell, flip_up=0.0, eta=eta["up"], eta_down=eta["down"], **stop)


def scaled(cell, s):
    """``cell`` with d, N_1 and N_2 multiplied by ``s``."""
    return dict(cell, d=cell["d"] * s, n_up=cell["n_up"] * s, n_down=cell["n_down"] * s)


def designs(quick, n_confirm, n_scaled, n_eta, ranges, scaled_ranges, scales):
    """The three designs' cells (dicts) and configs."""
    base = hypercube(ranges, n_confirm, CONFIRM_SEED)
    confirm = [c | s for c, s in zip(base, strata(n_confirm, STRATA), strict=True)]
    levels = dict(STRATA, n_down=SCALED_N_DOWN)
    small = hypercube(scaled_ranges, n_scaled, SCALE_SEED)
    small = [c | s for c, s in zip(small, strata(n_scaled, levels), strict=True)]
    configs = {"confirm": [config(quick, c) for c in confirm]}
    configs["scaled"] = [config(quick, scaled(c, s), cap=CAP * s) for s in scales for c in small]
    configs["eta"] = [config(quick, c, **v) for v in ETA_CHECK for c in confirm[:n_eta]]
    return configs


def candidates(configs):
    """log10 of every candidate and null per config (larger = transfer helps):
    Gamma_inh and Gamma_scr of docs/model.md §7, Gamma_1 and the others of §8.5."""
    ind = [indicators(c) for c in configs]
    inh = np.array([g["gamma_inh"] for g in ind], float)
    scr = np.array([g["gamma_scr"] for g in ind], float)
    f = {k: np.array([getattr(c, k) for c in configs], float) for k in FACTORS}
    g1 = f["n_up"] * f["u_norm"] ** 4 / (f["sigma_p_up"] ** 2 * f["sigma_p_down"] ** 2 * f["d"])
    hat = np.prod([f[k] ** e for k, e in MONOMIAL.items()], axis=0)
    raw = dict(gamma_inh=inh, gamma_ratio=inh / scr, gamma_1=g1, alpha_gamma_1=f["alpha"] * g1)
    raw.update(gamma_hat=hat, u_norm=f["u_norm"], inv_gamma_scr=1.0 / scr)
    return {k: np.log10(v) for k, v in raw.items()}


def features(configs):
    """The free model's features per config: log10 of the nine factors and p_2."""
    logs = [[math.log10(getattr(c, k)) for k in FACTORS] + [c.flip_down] for c in configs]
    return np.array(logs, float)


QUICK_VARIED = dict(VARIED, n_up=(10, 100), d=(100, 400))
QUICK_SCALED = dict(VARIED, n_up=(10, 40), d=(60, 160))


def size(quick):
    """The full size (160 confirmation cells x 16 seeds; 96 scaled cells x 12
    seeds at s = 1, 2, 4; 32 cells x 16 seeds per step-size variant) or the
    quick one (32 x 4; 16 x 3 at s = 1, 2; 8 x 4)."""
    if quick:
        n, seeds, scales = (32, 16, 8), {"confirm": 4, "scaled": 3, "eta": 4}, (1, 2)
        configs = designs(True, *n, QUICK_VARIED, QUICK_SCALED, scales)
    else:
        n, seeds, scales = (160, 96, 32), {"confirm": 16, "scaled": 12, "eta": 16}, SCALES
        configs = designs(False, *n, VARIED, SCALED_RANGES, scales)
    ranges = QUICK_VARIED if quick else VARIED
    return Size(configs, seeds, scales=scales, n_eta=n[2], ranges=ranges)


def measure(size, sweep):
    """Every design's outcomes: ``{design: {metric: (configs, seeds)}}``."""
    out = {}
    for part, configs in size.configs.items():
        sw = sweep(
            configs,
            label=part,
            replicates=size.seeds[part],
            measure="outcomes_batched",
            metrics=METRICS,
        )
        out[part] = {k: sw.values(k) for k in METRICS}
    return out


STATISTIC = (
    "per run the score of the paired gain err_scratch - err_transfer (1 if > 0, 0 if < 0, 1/2 if "
    "0), per cell the share q of its seeds; per candidate (log10 Gamma): (i) the AUC of log10 "
    f"Gamma for the sign of q - 1/2 over the confirmation cells (q = 1/2 unranked), one-sided "
    f"95% lower bound by {BOOT} cell resamples; (ii) the out-of-sample Brier score ({FOLDS}-fold "
    "CV over cells, seed-level) of the logistic in log10 Gamma minus that of the free logistic "
    f"(log10 of the nine factors and p_2, ridge {RIDGE:g} per row, frozen from the exploration), "
    "one-sided 95% upper bound by cell resamples; (iii) on the scaled cells, the seed-level "
    "logistic in log10 Gamma per scale: threshold (P = 1/2) and 10-90% width in decades, paired "
    "cell resamples; (iv) Spearman correlation of the cells' residual q - P (0 below half a "
    "seed's share) with each factor, "
    "95% interval; each test's p-value from its resamples, a candidate's p the largest of "
    "(i)-(iii) (all must hold), Holm over the five candidates (the two nulls judged alike, "
    "unadjusted, for comparison)"
)
PASS_RULE = (
    f"a candidate passes when its Holm-adjusted p < {LEVEL}: (i) AUC lower bound >= {AUC_FLOOR}; "
    f"(ii) Brier difference upper bound < {BRIER_DELTA}; (iii) at every larger scale the "
    f"threshold within +-{SHIFT_MARGIN} decades of the s = 1 threshold (two one-sided tests) and "
    f"the largest scale's width < {WIDTH_RATIO} x the s = 1 width (widths below {WIDTH_FLOOR} "
    "decades count as that); and (iv) no factor with "
    f"|residual Spearman| > {RESID_LIMIT} and an interval excluding 0; no value missing"
)
NOTES = {
    "pre-registration": "validation/preregister_gamma.py on the exploration cells (transfer_phase "
    "v2, 400 cells x 16 seeds over its two seed streams): the free model's ridge by 5-fold CV "
    f"of the Brier score ({RIDGE:g} of 1e-5..1e-1, nested-CV Brier 0.148), Gamma_hat = "
    + " ".join(f"{k}^{e:g}" for k, e in MONOMIAL.items() if e)
    + " (exponents rounded to halves; 95% intervals in validation/preregistration/gamma.json)",
    "candidates": [LABELS[k] for k in CANDIDATES],
    "nulls": [LABELS[k] for k in NULLS],
    "confirmation": f"Latin hypercube seed {CONFIRM_SEED}: alpha, N_1 (<= d / 2), |u|, "
    "sigma_p,1, sigma_p,2, d log-uniform; strata "
    + ", ".join(f"{k} {v}" for k, v in STRATA.items()),
    "scaling": f"Latin hypercube seed {SCALE_SEED} at s = 1 (d in [100, 400], N_1 in [10, "
    f"min(100, d / 2)], N_2 in {SCALED_N_DOWN}), repeated with d, N_1, N_2 and the step cap x s",
    "step-size check (reported, not in the verdict)": "the first confirmation cells at c = 100 "
    "tied and c = 200 untied against c = 200 tied: mean change of the median gain, 90% interval "
    f"within +-{ETA_MARGIN}",
    "runs": f"eta = {ETA_C:g} / (sigma_p^2 d) per stage, p_1 = 0, every stage to the training "
    f"loss {EPS:g} within the cap ({CAP} x s), n_test {N_TEST}; stalled runs counted",
    "not covered": "N_1 above 400 (the reviews' very large upstream task): a run at N_1 = 800 "
    "costs about 11 s here, the design would not fit the session's compute",
}


def protocol(name, claim, source, pass_rule):
    """The confirmation's :class:`~refimpl.lab.claim.Protocol` under ``name``
    (both claims run the same sweeps: same salt, same cache)."""
    return Protocol(
        name=name,
        claim=claim,
        source=source,
        full=size(False),
        quick=size(True),
        statistic=STATISTIC,
        pass_rule=pass_rule,
        fixed="2026-12-06",
        salt="transfer_phase-v3",
        common=("eta", "eta_down"),
        pairing="transfer and scratch paired within a run; the step-size variants share the "
        "confirmation cells' seeds; cells and scales have independent seeds",
        rules={
            "stalled": f"training loss > {EPS:g} at the cap (counted, every stage)",
            "engine": B.ENGINE_RULE,
        },
        notes=NOTES,
        disclosures=B.history(name),
    )
