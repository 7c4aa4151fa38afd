"""The crosscheck claim (refimpl/claims/crosscheck.py): its pure decision on
hand-made measurements, its protocol, the skipped result without torch, and
(slow) a quick run."""

import json
import math

import pytest

from refimpl.claims import crosscheck as C
from refimpl.crosscheck import torch_client
from refimpl.lab import report as R
from refimpl.lab.claim import SOURCES, Outcome, claim_result, run_claim

SIZE = C.PROTOCOL.full
GOOD = dict(
    max_rel={"torch": 3e-15, "jax": 2e-15, "torch vs file": 4e-15},
    all_compared=True,
    steps={"up": 2000, "down": 2000, "scratch": 2000},
    frozen=8,
    weight_decay={"up": 0.001, "down": 0.005, "scratch": 0.005},
    conv1d_named=["filter_sum", "patch_mean", "bias", "float32"],
)


def test_decide_pass():
    d = C.decide(SIZE, GOOD)
    assert d == {"verdict": "PASS", "verdict_tests": "PASS", "missing": 0, "reasons": []}
    # a client that did not run (jax absent) does not fail the claim
    assert C.decide(SIZE, dict(GOOD, max_rel={"torch": 1e-15, "jax": None}))["verdict"] == "PASS"


@pytest.mark.parametrize(
    "change,reason",
    [
        (dict(max_rel={"torch": 2e-10, "jax": 1e-15}), "torch: largest relative difference 2e-10"),
        (dict(max_rel={"torch": 1e-15, "jax": 1.5e-10}), "jax: largest relative difference"),
        (dict(max_rel={"torch": None, "jax": None}), "no client ran"),
        (dict(all_compared=False), "not compared"),
        (dict(steps={"up": 2000, "down": 999, "scratch": 2000}), "only 999 steps"),
        (dict(frozen=0), "no frozen filter"),
        (dict(weight_decay={"up": 0.001, "down": 0.0, "scratch": 0.005}), "without weight decay"),
        (dict(conv1d_named=["filter_sum", "patch_mean", "float32"]), "Conv1d model"),
        (dict(conv1d_named=None), "Conv1d model"),
    ],
)
def test_decide_fail(change, reason):
    d = C.decide(SIZE, dict(GOOD, **change))
    assert d["verdict"] == d["verdict_tests"] == "FAIL" and d["missing"] == 0
    assert any(reason in r for r in d["reasons"])


def test_the_tolerance_is_the_sizes():
    m = dict(GOOD, max_rel={"torch": 5e-11})
    assert C.decide(SIZE, m)["verdict"] == "PASS"
    assert SIZE.tolerance == C.PROTOCOL.quick.tolerance == 1e-10


def test_a_missing_value_fails_the_claim():
    d = C.decide(SIZE, dict(GOOD, max_rel={"torch": math.nan}))
    assert d["verdict"] == "FAIL" and d["verdict_tests"] == "PASS" and d["missing"] == 1
    assert "no finite difference" in d["reasons"][0]
    # the lab turns a missing value into FAIL with the reason in the statistic
    doc, _ = claim_result(C.PROTOCOL, True, d, Outcome("s", []), "unused")
    assert doc["verdict"] == "FAIL" and doc["n_missing"] == 1 and "missing" in doc["statistic"]


def test_protocol():
    p = C.PROTOCOL
    assert p.name == "crosscheck" and p.source in SOURCES and "\n" not in p.claim
    assert not p.hash_scheme1 and p.hash() != p.hash(quick=True)
    for size in (p.full, p.quick):
        run = size.configs["run"]
        assert min(run.steps_up, run.steps_down) >= C.MIN_STEPS
        assert run.freeze_inherited and min(run.weight_decay_up, run.weight_decay) > 0
        assert size.clients == ["torch", "jax"] and size.seeds == 1
    assert p.full.configs["run"].d == 400 and p.full.conv1d["steps"] == 500
    assert p.quick.configs["run"].d == 120 and p.quick.conv1d["steps"] == 100


def test_skipped_without_torch(tmp_path, monkeypatch):
    monkeypatch.setattr(torch_client, "available", lambda: False)
    result = run_claim(C, tmp_path, quick=True)
    assert result["verdict"] == "SKIPPED" and "pip install torch" in result["skip_reason"]
    assert R.check_result(result, "crosscheck") == []


@pytest.mark.slow
@pytest.mark.skipif(not torch_client.available(), reason=torch_client.INSTALL_HINT)
def test_quick_run(tmp_path):
    result = run_claim(C, tmp_path, quick=True)
    assert R.check_result(result, "crosscheck") == []
    assert result["verdict"] == "PASS", result["statistic"]
    folder = tmp_path / "crosscheck"
    data = json.loads((folder / "crosscheck.json").read_text())
    assert data["data"]["conv1d_explanation"]["explanation"] == C.CONV1D_DEPARTURES
    for name in ("crosscheck.csv", "drift.csv", "report_torch.txt", "report_conv1d.txt"):
        assert (folder / name).exists(), name
    assert str(tmp_path) not in (folder / "report_torch_vs_file.txt").read_text()
    assert not list(folder.glob("*.npz"))  # the trajectory files were temporary


# ----------------------------------------------------------------------
# registry examples (tests/claims/test_declarations.py)
def _report(max_rel, explanation=None):
    """A crosscheck report's dict as present() reads it: one row per quantity
    of one stage, and the explain mode's names."""
    rows = [
        dict(stage="up", quantity=q, max_abs=max_rel, max_rel=max_rel, first_step=None)
        | dict(note="", compared=True)
        for q in ("W", "loss", "gamma", "rho_bar", "rho_under")
    ]
    return {"rows": rows, "explanations": {"up": {"explanation": explanation}}}


def examples(size):
    """PASS: GOOD with reports that agree; FAIL: the torch client 1e-6 off."""
    reports = {k: _report(3e-15) for k in ("torch", "jax", "torch vs file")}
    reports["float32"] = _report(1e-7, ["float32"])
    reports["conv1d"] = {"rows": [], "explanations": {}}
    m = dict(GOOD, reports=reports, texts={k: "text\n" for k in reports})
    m.update(versions={"torch": "2", "jax": "0.4"}, seconds={"refimpl run": 1.0})
    m["drift"] = {"torch float64": [("up", 0, 0.0), ("up", 10, 1e-15)]}
    bad = dict(m, max_rel=dict(m["max_rel"], torch=1e-6))
    return {"PASS": m, "FAIL": bad}
