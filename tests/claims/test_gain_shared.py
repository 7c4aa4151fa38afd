"""Tests of gain_shared (moved from the history-named test files)."""

from __future__ import annotations

# --- moved from test_redesign.py
import math

import numpy as np
import pytest

from refimpl.claims import (
    _base,
    gain_noise_dim,
    gain_shared,
    gain_upstream_n,
    negative_transfer,
    robustness,
)
from refimpl.theory import indicators

NAN = float("nan")


MODULES = (gain_shared, gain_upstream_n, gain_noise_dim, negative_transfer, robustness)


def approx(x, rel=1e-9, abs=1e-15):
    return pytest.approx(x, rel=rel, abs=abs)


def page_perfect(k, b):
    return (1 / math.factorial(k)) ** b


def distinct(n, scale=1 / 1024, offset=0.0):
    """n values offset + scale * (1, 2, ..., n): distinct magnitudes."""
    return offset + scale * np.arange(1, n + 1)


def fake_measure(config):
    """A sweep measure for the seed tests: the seed in every metric."""
    s = float(config.seed % 100003)
    return {m: s for m in _base.RUN_METRICS + gain_upstream_n.EXTRA_METRICS}


X3 = [0.0, 0.5, 1.0]


UP = np.array([[0.0, 0.01, 0.02], [0.1, 0.12, 0.11], [0.2, 0.25, 0.3]])  # every seed rising


DOWN = UP[::-1]


N10 = 10


ES = 0.125


def nt_hard_row(first):
    """One hard row over |u| = (0, 1, 2), 10 seeds, err_scratch 1/8:
    diff (transfer - scratch) = first(r) at |u| = 0, -1/16 - r/1024 at 1,
    -3/32 - r/1024 at 2; every block strictly decreasing when first > 0 >
    -1/16. No run fails (all errors < 0.2)."""
    r = np.arange(N10) / 1024
    diff = np.stack([first, -1 / 16 - r, -3 / 32 - r])
    return ES + diff, np.full((3, N10), ES)


def rob(u0, u1, u2):
    """One variant: err_scratch 1/4, err_transfer 1/4 - gain at each |u|
    (gain arrays of 10 seeds)."""
    es = np.full((3, N10), 0.25)
    return 0.25 - np.stack([u0, u1, u2]), es


def band(b, sign=1.0):
    """Gains of band b: sign * (10 b + r) / 1024, r = 1..10 (magnitudes of
    different bands never tie)."""
    return sign * distinct(N10, offset=10 * b / 1024)


def rising(b, u0):
    """A variant whose gain is u0 at |u| = 0, 1/8 + band b at 1, 1/4 + band b at 2:
    every seed strictly rising (|u0| < 1/8)."""
    return rob(u0, 1 / 8 + band(b), 1 / 4 + band(b))


def upper_tail(n, w):
    """Exact P(W+ >= w) of the signed-rank statistic over n ranks: subsets of
    {1..n} with sum >= w, counted by dynamic programming, over 2^n."""
    counts = np.zeros(n * (n + 1) // 2 + 1)
    counts[0] = 1
    for k in range(1, n + 1):
        counts[k:] = counts[k:] + counts[:-k].copy()
    return counts[w:].sum() / 2.0**n


def scipy_norm_sf(z):
    return 0.5 * math.erfc(z / math.sqrt(2))


def test_gain_shared_holds_both_signal_strengths_fixed():
    fr, _, grid = gain_shared.grid_configs(False)
    for f, c in zip(fr, grid):
        assert c.u_norm**2 + c.v_up_norm**2 == approx(5.0, rel=1e-12)
        assert c.u_norm**2 + c.v_down_norm**2 == approx(5.0, rel=1e-12)
        assert c.u_norm**2 / 5.0 == approx(f, rel=1e-12, abs=1e-12)
    # the base regime's point |u| = 2, |v| = 1 is f = 0.8
    c = grid[fr.index(0.8)]
    assert (c.u_norm, c.v_down_norm) == (approx(2.0), approx(1.0))
    # the downstream task's own indicator N_2 |mu_2|^4 / (sigma^4 d) = 10 * 25 / 600
    assert {round(indicators(c)["gamma_scr"], 12) for c in grid} == {round(250 / 600, 12)}
