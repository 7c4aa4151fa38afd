"""mitigation_freezing: its declared protocol (the design and seed stream of
mitigation), the pure ``decide(size, measurements)`` on hand-made amounts with
known answers, how a FAIL reads (our hypothesis refuted or not tested), and the
missing-value rule through the lab's JSON.

Expected p-values come from closed forms (see tests/claims/test_mitigation.py):
the one-sided paired t with n = 3 has p = 1/2 - t / (2 sqrt(t^2 + 2)); the
baseline amounts [8, 9, 10] / 64 give t = 9 sqrt(3), the reductions
[0.010, 0.012, 0.014] give t = 6 sqrt(3); a constant reduction gives p = 0
(lowers the amount) or 1 (raises it).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from refimpl.claims import mitigation
from refimpl.claims import mitigation_freezing as M
from refimpl.lab.claim import Protocol, missing_note, run_claim
from refimpl.lab.seeds import derive_seed

NAN = float("nan")
QUICK, FULL = M.PROTOCOL.quick, M.PROTOCOL.full
BASE_NEG = np.array([8, 9, 10]) / 64


def approx(x, rel=1e-6, abs=1e-12):
    return pytest.approx(x, rel=rel, abs=abs)


def p_df2(t):
    """One-sided p of a t statistic with 2 degrees of freedom."""
    return 0.5 - t / (2 * math.sqrt(t * t + 2))


def lever_measurements(neg):
    """Measurements as ``measure`` returns them from amounts ``neg`` (levers,
    cells, seeds), the same at equal loss: err_scratch 0.25, err_transfer
    0.25 + neg, no stalled run."""
    neg = np.asarray(neg, float)
    zeros = np.zeros(neg.shape)
    errors = {"err_transfer": 0.25 + neg, "err_scratch": zeros + 0.25}
    flags = dict.fromkeys(("stalled_transfer", "stalled_scratch", "up_stopped_early"), zeros)
    return {"steps": dict(errors), "loss": {**errors, **flags}}


def frozen(reduction, base=BASE_NEG):
    """Amounts (2 levers, 1 cell, 3 seeds): the baseline, then the baseline
    minus the reduction by freezing (decide pools cells and seeds)."""
    return np.array([[base], [base - np.asarray(reduction, float)]])


def examples(size):
    """PASS: a positive baseline amount in every run, lowered by 1/16 by
    freezing; FAIL: raised by 1/16."""
    cells = len(size.configs["hard"]) // 2 + len(size.configs["benign"]) // 2
    c, r = np.meshgrid(np.arange(cells), np.arange(size.seeds), indexing="ij")
    base = (8 + r + 2 * c) / 64
    return {
        "PASS": lever_measurements(np.stack([base, base - 1 / 16])),
        "FAIL": lever_measurements(np.stack([base, base + 1 / 16])),
    }


def test_protocol_is_declared_with_its_source():
    p = M.PROTOCOL
    assert isinstance(p, Protocol) and p.name == "mitigation_freezing"
    assert p.source == "hypothesis" and p.hash_scheme1 == "427b95125ded"
    assert M.LEVERS == {"baseline": {}, "freeze inherited": {"freeze_inherited": True}}
    assert M.CLAIMED == {"freezing": ["freeze inherited"]}
    assert FULL.seeds == 24 and QUICK.seeds == 3 and p.hash() != p.hash(quick=True)
    json.dumps(p.to_dict(), allow_nan=False)
    text = " ".join(d.change + d.earlier for d in p.disclosures)
    assert "12 -> 24" in text and "freeze inherited -0.0357 (p = 1)" in text
    assert "benign -0.0673 (p = 1)" in text


def test_shares_the_runs_and_seeds_of_mitigation():
    p, other = M.PROTOCOL, mitigation.PROTOCOL
    # the seed stream of mitigation v1 and v2 (their committed runs); mitigation v3 has its own
    assert p.salt == "mitigation" and other.salt == "mitigation-v3" and p.common == other.common
    for size, theirs in ((FULL, other.full), (QUICK, other.quick)):
        for region, grid in size.configs.items():
            assert grid[:2] == theirs.configs[region][:2]  # the baseline runs, both |u|
            base, froze = grid[0], grid[2]
            assert froze == base.replace(freeze_inherited=True)
            smaller = theirs.configs[region][2]  # mitigation's smaller alpha, same cell
            seeds = {derive_seed(c, 5, p.common, p.salt) for c in (base, froze, smaller)}
            assert len(seeds) == 1  # common random numbers across the levers


@pytest.mark.parametrize(
    "reduction, verdict, p",
    [
        (1 / 32, "PASS", 0.0),  # freezing lowers it by a constant: p = 0
        (-1 / 32, "FAIL", 1.0),  # freezing raises it: p = 1
        ([0.010, 0.012, 0.014], "PASS", p_df2(6 * math.sqrt(3))),
    ],
)
def test_decide(reduction, verdict, p):
    d = M.decide(QUICK, lever_measurements(frozen(reduction)))
    assert d["tests"]["freeze inherited"]["p"] == approx(p)
    assert d["baseline"]["p"] == approx(p_df2(9 * math.sqrt(3)))
    assert d["verdict"] == verdict and d["missing"] == 0


def test_missing_and_no_baseline_effect_fail():
    neg = frozen(1 / 32)
    neg[1, 0, 2] = NAN
    d = M.decide(QUICK, lever_measurements(neg))
    assert d["missing"] == 1 and d["verdict"] == "FAIL"  # and its p-values are NaN
    assert math.isnan(d["tests"]["freeze inherited"]["p"])
    d = M.decide(QUICK, lever_measurements(frozen(1 / 32, BASE_NEG - 0.25)))  # baseline < 0
    assert d["per_claim"]["freezing"] is True and d["verdict"] == "FAIL"


def test_a_fail_says_refuted_or_not_tested():
    ex = examples(QUICK)
    m = ex["FAIL"]  # significant negative transfer, freezing raises it
    out = M.present(QUICK, m, M.decide(QUICK, m))
    assert out.statistic.startswith("our hypothesis refuted: baseline negative transfer")
    neg = ex["FAIL"]["steps"]["err_transfer"] - 0.25 - 0.25  # baseline amount < 0 everywhere
    m = lever_measurements(neg)
    out = M.present(QUICK, m, M.decide(QUICK, m))
    assert out.statistic.startswith("our hypothesis not tested (no significant negative")
    m = ex["PASS"]
    assert M.present(QUICK, m, M.decide(QUICK, m)).statistic.startswith("baseline negative")


def test_the_reported_verdict_and_json_count_the_missing_run(tmp_path, monkeypatch):
    """One run missing from measurements that would pass complete: the lab's
    JSON and the report say FAIL with the missing-value note."""
    m = examples(QUICK)["PASS"]
    m["steps"]["err_transfer"][1, 0, 0] = NAN
    monkeypatch.setattr(M, "measure", lambda size, sweep: m)
    res = run_claim(M, tmp_path, quick=True)
    saved = json.loads((tmp_path / "mitigation_freezing" / "mitigation_freezing.json").read_text())
    assert res["verdict"] == saved["verdict"] == "FAIL"
    assert saved["n_missing"] == 1 and saved["statistic"] == res["statistic"]
    assert missing_note(1) in saved["statistic"]
    assert saved["protocol_hash"] == M.PROTOCOL.hash(quick=True)
    assert "Disclosed change" in res["markdown"]
    assert (tmp_path / "mitigation_freezing" / "mitigation_freezing.csv").is_file()
