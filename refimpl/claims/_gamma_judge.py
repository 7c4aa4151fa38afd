"""The decision of the Gamma confirmation (claims ``transfer_phase`` and
``gamma_candidates``, docs/model.md §8.5): every candidate and null judged by
the pass rule's tests (:mod:`._gamma_fit`) on the designs of :mod:`._gamma`,
Holm over the candidates, the stalled runs and the step-size check."""

from __future__ import annotations

import numpy as np

from ..lab import stats as S
from . import _base as B
from . import _gamma as G
from . import _gamma_fit as GF


def scores(m):
    """The seed-level scores (cells, seeds) of one design's measurements."""
    return GF.seed_outcome(B.as_float(m["err_transfer"]), B.as_float(m["err_scratch"]))


def judge_candidate(x, y, free, xs, ys, feats):
    """One candidate (``x``: log10 per confirmation cell; ``xs``: per scale) on
    the confirmation scores ``y`` and the scaled ones ``ys``, against the free
    model's out-of-sample Brier scores ``free``: the AUC, Brier, scaling and
    residual tests; ``p`` is the largest of the three tests' p-values (all
    must hold)."""
    out = {"auc": GF.auc_test(x, y, G.AUC_FLOOR, G.BOOT, G.SEED)}
    own = GF.cv_brier(x[:, None], y, 1e-8, G.FOLDS, G.SEED)
    out["brier"] = GF.brier_test(own, free, G.BRIER_DELTA, G.BOOT, G.SEED)
    out["scaling"] = GF.scaling(
        xs, ys, G.SHIFT_MARGIN, G.WIDTH_RATIO, G.BOOT, G.SEED, G.WIDTH_FLOOR
    )
    names = [*G.FACTORS, "flip_down"]
    out["residual"] = GF.residual_spearman(x, y, feats, names, G.BOOT, G.SEED)
    out["flagged"] = GF.flagged(out["residual"], G.RESID_LIMIT)
    out["p"] = max(out["auc"]["p"], out["brier"]["p"], out["scaling"]["p"])
    return out


def eta_check(size, m):
    """Per variant of :data:`._gamma.ETA_CHECK` the mean over cells of the change in
    the cells' median gain against the confirmation's (first cells), its 90%
    bootstrap interval and whether it lies within +-ETA_MARGIN (:mod:`._gamma`)."""
    n = size.n_eta
    base = median_gain(m["confirm"])[:n]
    gains = median_gain(m["eta"]).reshape(len(G.ETA_CHECK), n)
    rng, out = np.random.default_rng(G.SEED), []
    for v, g in zip(G.ETA_CHECK, gains, strict=True):
        diff = g - base
        reps = [np.nanmean(diff[rng.integers(0, n, n)]) for _ in range(G.BOOT)]
        ci = [float(np.quantile(reps, 0.05)), float(np.quantile(reps, 0.95))]
        ok = bool(-G.ETA_MARGIN < ci[0] and ci[1] < G.ETA_MARGIN)
        out.append({**v, "mean_change": float(np.nanmean(diff)), "ci90": ci, "equivalent": ok})
    return out


def median_gain(m):
    """Per config the median over seeds of the gain err_scratch - err_transfer."""
    with np.errstate(invalid="ignore"):
        return np.nanmedian(B.as_float(m["err_scratch"]) - B.as_float(m["err_transfer"]), axis=1)


def judge(size, m):
    """Every candidate and null judged (:func:`judge_candidate`), Holm over
    the five candidates at LEVEL (:mod:`._gamma`); a candidate passes when its adjusted p <
    LEVEL and no residual factor is flagged (a null: its unadjusted p, for
    comparison only). Also the missing values, the stalled runs
    and the step-size check."""
    conf, cells = size.configs["confirm"], len(size.configs["confirm"])
    y, feats = scores(m["confirm"]), G.features(conf)
    free = GF.cv_brier(feats, y, G.RIDGE, G.FOLDS, G.SEED)
    x = G.candidates(conf)
    scaled_cfg = size.configs["scaled"]
    per = len(scaled_cfg) // len(size.scales)
    ys_all, xs_all = scores(m["scaled"]), G.candidates(scaled_cfg)
    part = {s: slice(i * per, (i + 1) * per) for i, s in enumerate(size.scales)}
    ys = {s: ys_all[sl] for s, sl in part.items()}
    judged = {}
    for k in (*G.CANDIDATES, *G.NULLS):
        xs = {s: xs_all[k][sl] for s, sl in part.items()}
        judged[k] = judge_candidate(x[k], y, free, xs, ys, feats)
    adj = dict(zip(G.CANDIDATES, S.holm([judged[k]["p"] for k in G.CANDIDATES]), strict=True))
    for k, c in judged.items():
        c["p_holm"] = float(adj[k]) if k in adj else None  # nulls: for comparison, unadjusted
        c["passes"] = bool(adj.get(k, c["p"]) < G.LEVEL and not c["flagged"])
    missing = sum(
        S.n_missing(B.as_float(v["err_transfer"]), B.as_float(v["err_scratch"])) for v in m.values()
    )
    q = GF.share(y)
    counts = dict(cells=cells, positive=int(np.sum(q > 0.5)), negative=int(np.sum(q < 0.5)))
    counts["half"] = int(np.sum(q == 0.5))
    out = {"candidates": judged, "missing": missing, "counts": counts, "stalled": stalled(m)}
    return out | {"eta_check": eta_check(size, m), "free_brier": float(np.nanmean(free))}


def stalled(m):
    """Runs above the loss target at the cap, per design and stage."""
    out = {}
    for part, v in m.items():
        n = {
            k: int(np.nansum(B.as_float(v[f"loss_{k}"]) > G.EPS)) for k in ("up", "down", "scratch")
        }
        out[part] = n | {"runs": int(B.as_float(v["loss_up"]).size)}
    return out


def verdict(dec, names):
    """PASS when one of ``names`` passes and no value is missing."""
    tests = "PASS" if any(dec["candidates"][k]["passes"] for k in names) else "FAIL"
    return {"verdict": "FAIL" if dec["missing"] else tests, "verdict_tests": tests}
