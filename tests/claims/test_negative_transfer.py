"""Tests of negative_transfer (moved from the history-named test files)."""

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


def test_negative_transfer_cells_are_distinct_and_the_shared_row_is_kept_once():
    _, rows = negative_transfer.distinct_rows(False)
    configs = [c.to_dict() for row in rows for c in row["configs"]]
    keys = {tuple(sorted(c.items())) for c in configs}
    assert len(keys) == len(configs) == 70
    for regime in ("hard", "benign"):
        mine = [r for r in rows if r["regime"] == regime]
        assert [r["value"] for r in mine if r["field"] == "alpha"] == [0.2, 0.5, 0.8, 1.0]
        assert [r["value"] for r in mine if r["field"] == "n_up"] == [20, 50, 100]
        # the (|u|, N_1) heatmap's N_1 = 200 row is the alpha = 0.5 row
        shared = next(r for r in mine if r["field"] == "alpha" and r["value"] == 0.5)
        assert {c.n_up for c in shared["configs"]} == {200}
    q_us, q_rows = negative_transfer.distinct_rows(True)
    assert len({tuple(sorted(c.to_dict().items())) for r in q_rows for c in r["configs"]}) == len(
        q_rows
    ) * len(q_us)


def test_negative_transfer_pass_with_exact_p_values():
    et, es = nt_hard_row(distinct(N10))  # +r/1024 at |u| = 0: all positive
    rows = {"steps": et[None], "loss": et[None]}
    d = negative_transfer.decide([0, 1, 2], ["hard"], rows, {k: es[None] for k in rows})
    for rule in ("steps", "loss"):
        x = d["rules"][rule]
        assert x["p_wilcoxon"][0, 0] == approx(2.0**-10)
        assert x["padj_wilcoxon"][0, 0] == approx(6 * 2.0**-10)  # Holm over 2 x 3 tests
        assert x["p_failures"][0, 0] == 1.0  # no failure anywhere
        assert x["significant"] == [(0, 0, "wilcoxon")]
        assert x["trend"]["p"] == approx(page_perfect(3, N10))
        assert x["trend_benign"] is None and x["holds"]
    assert d["verdict"] == "PASS" and d["missing"] == 0


def test_negative_transfer_failures_alone_can_mark_a_cell():
    """10 seeds where transfer fails just above 0.2 and scratch just below
    (differences +0.0100 ... +0.0109), 10 where transfer is better by more
    (-0.021 ... -0.030): W+ = 1 + ... + 10 = 55, below its null mean 105
    (Wilcoxon p > 1/2), but the 10 discordant failures give the exact McNemar
    p = 2^-10. Every block still falls over |u| (Page, 20 perfect blocks)."""
    r = np.arange(N10) * 1e-4
    et0 = np.concatenate([0.205 + r, 0.13 + r])
    es0 = np.concatenate([0.195 + 0 * r, 0.15 + 0.001 * np.arange(1, N10 + 1) + r])
    et, es = nt_hard_row(distinct(N10))
    et = np.concatenate([et, et], axis=1)
    es = np.concatenate([es, es], axis=1)
    et[0], es[0] = et0, es0
    d = negative_transfer.decide([0, 1, 2], ["hard"], {"steps": et[None]}, {"steps": es[None]})
    x = d["rules"]["steps"]
    assert x["p_failures"][0, 0] == approx(2.0**-10)
    assert x["padj_failures"][0, 0] == approx(6 * 2.0**-10)
    assert x["p_wilcoxon"][0, 0] > 0.5
    assert x["significant"] == [(0, 0, "failures")] and d["verdict"] == "PASS"
    assert x["trend"]["n"] == 2 * N10 and x["trend"]["rho"] == approx(-1.0)


def test_negative_transfer_holm_family_grows_with_the_distinct_cells():
    et, es = nt_hard_row(distinct(N10))
    et_b, es_b = nt_hard_row(-distinct(N10))  # benign: transfer better at |u| = 0
    t = {"steps": np.stack([et, et_b])}
    s = {"steps": np.stack([es, es_b])}
    d = negative_transfer.decide([0, 1, 2], ["hard", "benign"], t, s)
    x = d["rules"]["steps"]
    # 2 rows x 3 cells x 2 tests = 12: 12 / 1024 = 0.0117 >= 0.01
    assert x["padj_wilcoxon"][0, 0] == approx(12 * 2.0**-10)
    assert x["significant"] == [] and not x["existence"] and d["verdict"] == "FAIL"
    assert x["trend"]["n"] == N10 and x["trend_benign"]["n"] == N10  # hard blocks only


def test_negative_transfer_needs_existence_and_location_under_both_rules():
    et, es = nt_hard_row(distinct(N10))
    flat_t, flat_s = nt_hard_row(-distinct(N10))  # no worse cell at equal loss
    d = negative_transfer.decide(
        [0, 1, 2],
        ["hard"],
        {"steps": et[None], "loss": flat_t[None]},
        {"steps": es[None], "loss": flat_s[None]},
    )
    assert d["rules"]["steps"]["holds"] and not d["rules"]["loss"]["existence"]
    assert d["verdict"] == "FAIL"
    rising = 2 * ES - et  # the difference now rises with |u|
    d = negative_transfer.decide(
        [0, 1, 2],
        ["hard"],
        {"steps": et[None], "loss": rising[None]},
        {"steps": es[None], "loss": es[None]},
    )
    assert d["rules"]["loss"]["trend"]["rho"] == approx(1.0) and not d["rules"]["loss"]["location"]
    assert d["verdict"] == "FAIL"


def test_negative_transfer_missing_value_fails_and_is_counted():
    et, es = nt_hard_row(distinct(N10))
    loss_t = et.copy()
    loss_t[1, 3] = NAN
    d = negative_transfer.decide(
        [0, 1, 2],
        ["hard"],
        {"steps": et[None], "loss": loss_t[None]},
        {"steps": es[None], "loss": es[None]},
    )
    assert math.isnan(d["rules"]["loss"]["p_wilcoxon"][0, 1])
    assert math.isnan(d["rules"]["loss"]["padj_wilcoxon"][0, 1])
    assert d["verdict_tests"] == "FAIL"  # the trend p is NaN too
    assert d["missing"] == 1 and d["verdict"] == "FAIL"
