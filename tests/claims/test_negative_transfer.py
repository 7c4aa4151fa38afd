"""negative_transfer (v3: location in the benign regime's alpha rows): its declared protocol
(the distinct cells of both sizes), measure's shape, the pure ``decide(size, measurements)``
on hand-made per-seed errors, ``present``, and the registry examples.

Expected p-values come from closed forms, not from running the code:

- Wilcoxon signed-rank, exact, n positive differences: the largest statistic, reached only
  so: p = 1/2^n;
- exact McNemar with k discordant pairs all failing under transfer: p = 1/2^k;
- Page's L test, exact, b perfectly ordered blocks over k points: p = (1/k!)^b;
- Holm over m tests: the smallest p times m.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from claim_examples import RecordingSweep

from refimpl.claims import _base as B
from refimpl.claims import negative_transfer as NT
from refimpl.lab import stats as S
from refimpl.lab.claim import Outcome, Size, Table

NAN = float("nan")
N10 = 10
ES = 0.125
US3 = [0.0, 1.0, 2.0]


def approx(x, rel=1e-9, abs=1e-15):
    return pytest.approx(x, rel=rel, abs=abs)


def page_perfect(k, b):
    return (1 / math.factorial(k)) ** b


def distinct(n, scale=1 / 1024):
    """n values scale * (1, 2, ..., n): distinct magnitudes."""
    return scale * np.arange(1, n + 1)


def nt_row(first, n=N10):
    """One row over |u| = (0, 1, 2), n seeds, err_scratch 1/8: diff (transfer - scratch) =
    first(r) at |u| = 0, -1/16 - r/1024 at 1, -3/32 - r/1024 at 2; every block strictly
    decreasing when first > 0 > -1/16. No run fails (all errors < 0.2)."""
    r = np.arange(n) / 1024
    diff = np.stack([first, -1 / 16 - r, -3 / 32 - r])
    return ES + diff, np.full((3, n), ES)


def small(regimes, seeds=N10, fields=None):
    """A size with one row per regime (varying alpha, or ``fields``) over |u| = (0, 1, 2)
    (decide reads only ``us`` and ``rows``)."""
    fields = fields or ["alpha"] * len(regimes)
    rows = [{"regime": g, "field": f, "value": 0.5} for g, f in zip(regimes, fields, strict=True)]
    return Size({}, seeds, us=US3, rows=rows)


def decide(regimes, t, s, fields=None):
    """``decide`` on rule -> (rows, 3, seeds) errors of transfer ``t`` and scratch ``s``."""
    m = {r: {"err_transfer": t[r], "err_scratch": s[r]} for r in t}
    return NT.decide(small(regimes, fields=fields), m)


# ----------------------------------------------------------------------
# the protocol, declared as data
def test_protocol_is_declared_with_its_seed_stream_and_disclosures():
    p = NT.PROTOCOL
    assert p.name == "negative_transfer" and p.source == "paper" and p.fixed == "2026-12-06"
    assert p.salt == "negative_transfer-v3"  # a fresh seed stream for the v3 rule
    assert p.common == ("epsilon", "steps_down")  # the stopping rules share seeds
    assert p.hash_scheme1 == "" and p.hash() != "db3e2f7f08e4"  # v2's committed hash
    assert "0.01" in p.pass_rule and "Wilcoxon" in p.statistic and "McNemar" in p.statistic
    assert "benign regime's alpha rows" in p.pass_rule and "(alpha row, seed)" in p.statistic
    v2, v3, engine = p.disclosures
    assert v2.date == "2026-11-29" and "->" in v2.change and v2.earlier.startswith("PASS")
    text = json.dumps(v2.to_dict())
    assert "audit" not in text and "issue" not in text and "9 distinct of 70" in text
    assert "hard regime (its 7 rows) -> in the benign regime's 4 alpha rows" in v3.change
    assert "PASS on main" in v3.earlier and "PASS on r1" in v3.earlier
    for committed in ("rho = -0.911 ± 0.012", "rho = -0.892 ± 0.013", "7 of 70", "11 of 70"):
        assert committed in v3.earlier
    assert "batched three-stage path" in engine.change and p.rules["engine"] == B.ENGINE_RULE
    assert "PASS on main, r1 and r2" in engine.earlier and "10, 10 and 9 of 70" in engine.earlier
    json.dumps(p.to_dict(), allow_nan=False)


def test_cells_are_distinct_and_the_shared_row_is_kept_once():
    full = NT.PROTOCOL.full
    configs = [c.to_dict() for row in full.configs["rows"] for c in row]
    assert len({json.dumps(c, sort_keys=True) for c in configs}) == len(configs) == 70
    assert full.seeds == 20 and full.us == [0.0, 0.5, 1.0, 1.5, 2.0]
    pairs = list(zip(full.rows, full.configs["rows"], strict=True))
    for regime, n_down, v in (("hard", 10, 1.0), ("benign", 40, 3.0)):
        mine = [(r, g) for r, g in pairs if r["regime"] == regime]
        assert [r["value"] for r, _ in mine if r["field"] == "alpha"] == [0.2, 0.5, 0.8, 1.0]
        assert [r["value"] for r, _ in mine if r["field"] == "n_up"] == [20, 50, 100]
        # the (|u|, N_1) heatmap's N_1 = 200 row is the alpha = 0.5 row
        shared = next(g for r, g in mine if r["field"] == "alpha" and r["value"] == 0.5)
        assert {c.n_up for c in shared} == {200}
        assert {(c.n_down, c.v_down_norm) for _, g in mine for c in g} == {(n_down, v)}
        for r, g in mine:
            assert [c.u_norm for c in g] == full.us
            assert all(getattr(c, r["field"]) == r["value"] for c in g)
    assert (full.epsilon, full.loss_cap) == (1e-3, 2000)
    quick = NT.PROTOCOL.quick
    q = [c.to_dict() for row in quick.configs["rows"] for c in row]
    assert len({json.dumps(c, sort_keys=True) for c in q}) == len(q) == 2 * 3 * 3
    assert quick.regimes["benign"]["n_down"] == 20 and quick.loss_cap == 600


def test_measure_runs_both_rules_in_one_sweep_and_shapes_rows_u_seeds():
    size = NT.PROTOCOL.quick
    sweep = RecordingSweep(size.seeds, scale=10.0)  # item index * 10 + seed
    m = NT.measure(size, sweep)
    ((configs, kwargs),) = sweep.calls
    flat = [c for row in size.configs["rows"] for c in row]
    assert (
        configs[:18] == flat and kwargs["measure"] == "outcomes_batched" and "common" not in kwargs
    )
    # the loss runs: the same configs with the loss target and the cap (the stopping-rule
    # fields are the protocol's common fields, so they keep the fixed-step runs' seeds)
    assert configs[18:] == [c.replace(epsilon=1e-3, steps_down=600) for c in flat]
    assert set(m) == {"steps", "loss"} and set(m["loss"]) == set(NT.METRICS)
    assert m["steps"]["err_transfer"].shape == (6, 3, 3)
    assert m["steps"]["err_scratch"][4, 2, 1] == (4 * 3 + 2) * 10 + 1  # row-major: row, |u|, seed
    assert m["loss"]["err_scratch"][4, 2, 1] == (18 + 4 * 3 + 2) * 10 + 1


# ----------------------------------------------------------------------
# decide
def test_pass_with_exact_p_values():
    et, es = nt_row(distinct(N10))  # +r/1024 at |u| = 0: all positive
    d = decide(["benign"], {"steps": et[None], "loss": et[None]}, {r: es[None] for r in B.RULES})
    for rule in B.RULES:
        x = d["rules"][rule]
        assert x["p_wilcoxon"][0, 0] == approx(2.0**-10)
        assert x["padj_wilcoxon"][0, 0] == approx(6 * 2.0**-10)  # Holm over 2 x 3 tests
        assert x["p_failures"][0, 0] == 1.0  # no failure anywhere
        assert x["significant"] == [(0, 0, "wilcoxon")]
        assert x["trend"]["p"] == approx(page_perfect(3, N10))
        assert x["trend_hard"] is None and x["holds"]  # no hard row: nothing to report
    assert d["verdict"] == "PASS" and d["missing"] == 0


def test_failures_alone_can_mark_a_cell():
    """10 seeds where transfer fails just above 0.2 and scratch just below (differences
    +0.0100 ... +0.0109), 10 where transfer is better by more (-0.021 ... -0.030): W+ = 1 +
    ... + 10 = 55, below its null mean 105 (Wilcoxon p > 1/2), but the 10 discordant failures
    give the exact McNemar p = 2^-10. Every block still falls over |u| (Page, 20 blocks)."""
    r = np.arange(N10) * 1e-4
    et0 = np.concatenate([0.205 + r, 0.13 + r])
    es0 = np.concatenate([0.195 + 0 * r, 0.15 + 0.001 * np.arange(1, N10 + 1) + r])
    et, es = nt_row(distinct(N10))
    et, es = np.concatenate([et, et], axis=1), np.concatenate([es, es], axis=1)
    et[0], es[0] = et0, es0
    d = decide(["benign"], {"steps": et[None]}, {"steps": es[None]})
    x = d["rules"]["steps"]
    assert x["p_failures"][0, 0] == approx(2.0**-10)
    assert x["padj_failures"][0, 0] == approx(6 * 2.0**-10)
    assert x["p_wilcoxon"][0, 0] > 0.5
    assert x["significant"] == [(0, 0, "failures")] and d["verdict"] == "PASS"
    assert x["trend"]["n"] == 2 * N10 and x["trend"]["rho"] == approx(-1.0)


def test_holm_family_grows_with_the_distinct_cells():
    et, es = nt_row(distinct(N10))
    et_b, es_b = nt_row(-distinct(N10))  # benign: transfer better at |u| = 0
    t, s = {"steps": np.stack([et, et_b])}, {"steps": np.stack([es, es_b])}
    d = decide(["hard", "benign"], t, s)
    x = d["rules"]["steps"]
    # 2 rows x 3 cells x 2 tests = 12: 12 / 1024 = 0.0117 >= 0.01
    assert x["padj_wilcoxon"][0, 0] == approx(12 * 2.0**-10)
    assert x["significant"] == [] and not x["existence"] and d["verdict"] == "FAIL"
    assert x["trend"]["n"] == N10 and x["trend_hard"]["n"] == N10  # one row each


def test_needs_existence_and_location_under_both_rules():
    et, es = nt_row(distinct(N10))
    flat_t, flat_s = nt_row(-distinct(N10))  # no worse cell at equal loss
    d = decide(
        ["benign"],
        {"steps": et[None], "loss": flat_t[None]},
        {"steps": es[None], "loss": flat_s[None]},
    )
    assert d["rules"]["steps"]["holds"] and not d["rules"]["loss"]["existence"]
    assert d["verdict"] == "FAIL"
    rising = 2 * ES - et  # the difference now rises with |u|
    d = decide(
        ["benign"], {"steps": et[None], "loss": rising[None]}, {r: es[None] for r in B.RULES}
    )
    assert d["rules"]["loss"]["trend"]["rho"] == approx(1.0) and not d["rules"]["loss"]["location"]
    assert d["verdict"] == "FAIL"


def test_location_reads_only_the_benign_alpha_rows():
    """Three rows of 20 seeds: hard alpha, benign alpha, benign N_1. A falling row is
    nt_row(distinct(20)) (positive at |u| = 0: Wilcoxon p = 2^-20, Holm over 3 x 3 x 2 = 18
    tests: 18 / 2^20 < 0.01); a rising row is its mirror 2 ES - transfer (transfer better at
    |u| = 0, worse at |u| = 1, 2). Location follows the benign alpha row alone: PASS when it
    falls although the other two rise (the hard trend is reported, rho = +1), FAIL when it
    rises although the other two fall."""
    fields = ["alpha", "alpha", "n_up"]
    fall, es = nt_row(distinct(20), 20)
    rise = 2 * ES - fall
    for rows, verdict in (((rise, fall, rise), "PASS"), ((fall, rise, fall), "FAIL")):
        t, s = {"steps": np.stack(rows)}, {"steps": np.stack([es] * 3)}
        d = decide(["hard", "benign", "benign"], t, s, fields)
        x = d["rules"]["steps"]
        assert x["existence"] and x["trend"]["n"] == 20  # the benign alpha row's blocks only
        assert x["trend"]["rho"] == approx(-1.0 if verdict == "PASS" else 1.0)
        assert x["trend_hard"]["rho"] == approx(1.0 if verdict == "PASS" else -1.0)
        assert x["location"] is (verdict == "PASS") and d["verdict"] == verdict
        if verdict == "PASS":
            assert x["trend"]["p"] < 1e-10 and x["padj_wilcoxon"][1, 0] == approx(18 / 2**20)


def test_missing_value_fails_and_is_counted():
    et, es = nt_row(distinct(N10))
    loss_t = et.copy()
    loss_t[1, 3] = NAN
    d = decide(
        ["benign"], {"steps": et[None], "loss": loss_t[None]}, {r: es[None] for r in B.RULES}
    )
    assert math.isnan(d["rules"]["loss"]["p_wilcoxon"][0, 1])
    assert math.isnan(d["rules"]["loss"]["padj_wilcoxon"][0, 1])
    assert d["verdict_tests"] == "FAIL"  # the trend p is NaN too
    assert d["missing"] == 1 and d["verdict"] == "FAIL"
    as_lists = {"steps": {"err_transfer": et[None].tolist(), "err_scratch": es[None].tolist()}}
    as_lists["steps"]["err_transfer"][0][2][4] = None  # None: missing too
    d = NT.decide(small(["benign"]), as_lists)
    assert d["missing"] == 1 and d["verdict"] == "FAIL"
    assert math.isnan(d["rules"]["steps"]["p_wilcoxon"][0, 2])


# ----------------------------------------------------------------------
# present
def test_present_reports_every_cell_with_its_tests_and_stalls():
    size = NT.PROTOCOL.full
    m = examples(size)["PASS"]
    m["loss"]["loss_down"][0, 0, :3] = 0.01  # three transfer runs above the loss target
    d = NT.decide(size, m)
    out = NT.present(size, m, d)
    assert isinstance(out, Outcome)
    # every cell positive in all 20 seeds: Wilcoxon 2^-20, Holm over 140 tests
    assert "70 of 70 distinct cells significantly worse (Wilcoxon 70, failures 0" in out.statistic
    assert "largest median +0.042 at |u| = 0 (hard, alpha = 0.2 (N_1 = 200))" in out.statistic
    # location: the benign alpha rows, 4 rows x 20 seeds = 80 blocks, all falling
    assert (
        "benign regime, alpha rows (N_1 = 200), difference against |u|: mean per-seed "
        "Spearman rho = -1.000 ± 0.000, Page's test p < 1e-10 (decrease)" in out.statistic
    )
    assert d["rules"]["steps"]["trend"]["n"] == 80 and d["rules"]["loss"]["trend_hard"]["n"] == 140
    (csv,) = [t for t in out.sections if isinstance(t, Table) and t.name]
    assert csv.name == "negative_transfer" and len(csv.rows) == 2 * 70
    first = dict(zip(csv.header, csv.rows[0], strict=True))
    assert (first["rule"], first["regime"], first["field"], first["value"]) == (
        "steps",
        "hard",
        "alpha",
        0.2,
    )
    assert first["diff_mean"] == approx(1 / 32 + 10.5 / 1024)  # (k - 1 - j)/32(k - 1) + mean r
    assert first["diff_median"] == approx(1 / 32 + 10.5 / 1024)
    assert first["p_wilcoxon"] == approx(2.0**-20) and first["padj_wilcoxon"] == approx(140 / 2**20)
    assert first["stalled_transfer"] is None and first["fail_transfer"] == 0
    loss = dict(zip(csv.header, csv.rows[70], strict=True))
    assert loss["rule"] == "loss" and loss["stalled_transfer"] == 3 and loss["stalled_scratch"] == 0
    shown = [t for t in out.sections if isinstance(t, Table) and t.show]
    assert len(shown) == 4  # 2 rules x 2 regimes
    assert shown[2].rows[0][-1] == "3 / 0 of 100"  # loss, hard, first row: 5 |u| x 20 seeds
    assert "(in the verdict: the alpha rows)" in shown[1].title and "(reported)" in shown[0].title
    figures = [f.name for f in out.sections if not isinstance(f, (str, Table))]
    assert figures == [f"negative_{g}_{r}" for r in B.RULES for g in ("hard", "benign")]
    assert out.data["distinct_cells"] == 70 and len(out.data["significant_cells"]["steps"]) == 70


# ----------------------------------------------------------------------
# registry examples (tests/claims/test_declarations.py)
def _measurements(size, sign):
    """Every metric measure() returns: err_scratch 1/8 and err_transfer - err_scratch =
    sign x ((k - 1 - j) / (32 (k - 1)) + (r + 1) / 1024) at |u| index j and seed r (positive
    and falling over |u| in every block for sign = +1; no run fails or stalls)."""
    rows, k, n = len(size.rows), len(size.us), size.seeds
    j = np.arange(k)[None, :, None]
    diff = (k - 1 - j) / (32 * (k - 1)) + np.arange(1, n + 1)[None, None, :] / 1024
    es = np.full((rows, k, n), ES)
    v = {"err_transfer": es + sign * diff, "err_scratch": es}
    v.update(loss_down=np.full_like(es, 1e-4), loss_scratch=np.full_like(es, 1e-4))
    v.update(steps_down=np.full_like(es, 100), steps_scratch=np.full_like(es, 100))
    return {r: {key: x.copy() for key, x in v.items()} for r in B.RULES}


def examples(size):
    """FAIL: transfer better in every cell, the difference rising over |u|; PASS where the
    seeds allow a significant cell (2 x cells x 2^-seeds < 0.01): transfer worse in every
    cell, falling over |u|."""
    out = {"FAIL": _measurements(size, -1.0)}
    if 2 * len(size.rows) * len(size.us) * 2.0**-size.seeds < S.SIGNIFICANCE:
        out["PASS"] = _measurements(size, 1.0)
    return out
