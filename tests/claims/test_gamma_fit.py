"""The statistics of the Gamma confirmation (refimpl/claims/_gamma_fit.py)
against hand computations.

- gains (es - et) 0.1, 0, -0.2 score 1, 1/2, 0;
- a logistic fitted to two cells, x = -1 with seed scores (1, 0, 0, 0) and
  x = +1 with (1, 1, 1, 0): maximum likelihood fits each cell's share, so
  b_0 - b_1 = logit(1/4), b_0 + b_1 = logit(3/4): b_0 = 0, b_1 = ln 3,
  threshold 0, 10-90% width 2 ln 9 / ln 3 = 4 decades; scores (1/2, 0, 1/2,
  0) have the same share and the same fit;
- the Brier score of p = 1/4 on (1, 0, 0, 0): (9/16 + 3/16) / 4 = 3/16;
- a bootstrap p of "at or above 0.2" over (0.1, 0.2, 0.3): (2 + 1) / 4.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
from hypothesis import given
from hypothesis import strategies as st

from refimpl.claims import _gamma_fit as G


def test_seed_outcome_scores_signs_ties_and_missing():
    et = np.array([[0.1, 0.2, 0.3, 0.1]])
    es = np.array([[0.2, 0.2, 0.1, np.nan]])
    y = G.seed_outcome(et, es)
    assert y[0, :3].tolist() == [1.0, 0.5, 0.0] and np.isnan(y[0, 3])
    assert G.share(y).tolist() == [0.5]  # the missing seed left out


@pytest.mark.parametrize("low", [[1, 0, 0, 0], [0.5, 0, 0.5, 0]])
def test_two_cell_logistic_matches_the_hand_fit(low):
    x = np.array([-1.0, 1.0])
    y = np.array([low, [1, 1, 1, 0]], float)
    b0, b1 = G.fit_1d(x, y)
    assert b0 == pytest.approx(0, abs=1e-6) and b1 == pytest.approx(math.log(3), rel=1e-6)
    b = G.boundary(x, y)
    assert b["log10_threshold"] == pytest.approx(0, abs=1e-6)
    assert b["width_decades"] == pytest.approx(4.0, rel=1e-6)
    coef = G.fit(x[:, None], y, 1e-12)  # the general fit, seed-level rows
    assert coef[1] == pytest.approx(math.log(3), rel=1e-4)


def test_a_falling_fit_has_no_finite_width():
    x = np.array([-1.0, 1.0])
    y = np.array([[1, 1, 1, 0], [1, 0, 0, 0]], float)
    assert G.boundary(x, y)["width_decades"] == math.inf


def test_brier_score_by_hand():
    assert G.brier([0.25], np.array([[1, 0, 0, 0]], float))[0] == pytest.approx(3 / 16)


def test_cell_auc_ignores_cells_without_sign():
    q = np.array([0.9, 0.5, 0.1, 0.7])
    assert G.cell_auc(np.array([3.0, 0.0, 1.0, 2.0]), q) == 1.0
    assert G.cell_auc(np.array([3.0, 99.0, 1.0, 2.0]), q) == 1.0  # the q = 1/2 cell: unranked
    assert G.cell_auc(np.array([1.0, 0.0, 3.0, 2.0]), q) == 0.0  # positives 1, 2 below negative 3
    assert G.cell_auc(np.array([1.0, 0.0, 2.0, 3.0]), q) == 0.5  # positives 1, 3 vs negative 2


def test_bootstrap_p_counts_the_limit_itself():
    assert G._p_beyond([0.1, 0.2, 0.3], 0.2) == pytest.approx(3 / 4)
    assert G._p_beyond([0.1, 0.2, 0.3], 0.2, upper=False) == pytest.approx(3 / 4)
    assert G._p_beyond([0.1, 0.2, 0.3], 0.35) == pytest.approx(1 / 4)


def test_folds_are_balanced_and_fixed():
    f = G.folds(23, 5, seed=1)
    assert sorted(np.bincount(f).tolist()) == [4, 4, 5, 5, 5]
    assert (G.folds(23, 5, seed=1) == f).all()


def _logistic_scores(x, centre, width, seeds, rng):
    p = 1 / (1 + np.exp(-(x - centre) * 2 * math.log(9) / width))
    return (rng.random((len(x), seeds)) < p[:, None]).astype(float)


def test_scaling_collapse_passes_and_a_moving_threshold_fails():
    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 3, 120)
    same = {s: _logistic_scores(x, 0.0, 1.0, 12, rng) for s in (1, 2, 4)}
    moved = {s: _logistic_scores(x, 0.4 * math.log2(s), 1.0, 12, rng) for s in (1, 2, 4)}
    xs = dict.fromkeys((1, 2, 4), x)
    ok = G.scaling(xs, same, 0.5, 1.5, 300, seed=1)
    assert ok["p"] < 0.01 and abs(ok["shifts"]["4"]["shift"]) < 0.2
    bad = G.scaling(xs, moved, 0.5, 1.5, 300, seed=1)  # the threshold moves 0.8 decades at s = 4
    assert bad["shifts"]["4"]["shift"] == pytest.approx(0.8, abs=0.2) and bad["p"] > 0.5


def test_scaling_width_growth_fails_and_the_floor_holds_separated_signs():
    rng = np.random.default_rng(1)
    x = rng.uniform(-3, 3, 120)
    ys = {1: _logistic_scores(x, 0, 0.5, 12, rng), 4: _logistic_scores(x, 0, 2.0, 12, rng)}
    xs = dict.fromkeys((1, 4), x)
    assert G.scaling(xs, ys, 0.5, 1.5, 300, seed=1)["width"]["ratio"] > 2.5
    sep = {s: np.where(x[:, None] > 0, 1.0, 0.0) * np.ones((1, 12)) for s in (1, 4)}
    w = G.scaling(xs, sep, 0.5, 1.5, 300, seed=1, floor=0.1)["width"]
    assert w["ratio"] == 1.0 and w["p"] < 0.01


def test_residuals_flag_a_factor_the_scalar_misses():
    rng = np.random.default_rng(2)
    n = 200
    x, f = rng.uniform(-2, 2, n), rng.uniform(-1, 1, n)
    y = _logistic_scores(x + 1.5 * f, 0.0, 1.0, 16, rng)  # the truth also carries f
    feats = np.column_stack([x, f, rng.normal(size=n)])
    r = G.residual_spearman(x, y, feats, ["x", "f", "noise"], 200, seed=3)
    assert G.flagged(r, 0.2) == ["f"]


def test_residuals_of_separated_signs_are_not_ranked():
    x = np.linspace(-2, 2, 40)
    y = np.where(x[:, None] > 0, 1.0, 0.0) * np.ones((1, 16))
    r = G.residual_spearman(x, y, x[:, None], ["x"], 50, seed=0)
    assert G.flagged(r, 0.2) == [] and not np.isfinite(r["x"]["rho"])


def test_cv_brier_prefers_the_true_feature():
    rng = np.random.default_rng(4)
    x, noise = rng.uniform(-2, 2, 150), rng.normal(size=150)
    y = _logistic_scores(x, 0, 1.0, 8, rng)
    good = np.nanmean(G.cv_brier(x[:, None], y, 1e-6, 5, seed=0))
    bad = np.nanmean(G.cv_brier(noise[:, None], y, 1e-6, 5, seed=0))
    assert good < bad - 0.1
    ridge, scores = G.choose_ridge(x[:, None], y, (1e-6, 10.0), 5, seed=0)
    assert ridge == 1e-6 and scores[0] < scores[1]


_value = st.one_of(st.integers(-3, 3).map(float), st.floats(-5, 5), st.just(math.nan))


@given(st.lists(st.tuples(_value, _value), min_size=3, max_size=60))
def test_spearman_gives_scipys_rho_bit_for_bit(pairs):
    """The residual test's Spearman rho (ranks and np.corrcoef in spearmanr's
    own layout) equals scipy.stats.spearmanr's statistic exactly, ties and
    missing values included; NaN where it is undefined."""
    a, b = np.array(pairs).T
    ok = np.isfinite(a) & np.isfinite(b)
    assert np.array_equal(G._ranks(a[ok]), scipy.stats.rankdata(a[ok]))
    got = G._spearman(a, b)
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        assert math.isnan(got)
    else:
        assert got == float(scipy.stats.spearmanr(a[ok], b[ok]).statistic)
