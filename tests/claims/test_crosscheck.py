"""The crosscheck claim (refimpl.claims.crosscheck): its verdict logic on
hand-made numbers, the skipped result without torch, and (slow) a quick run."""

import json
import math

import pytest

from refimpl.claims import crosscheck as claim
from refimpl.crosscheck import torch_client
from refimpl.lab import report as R

GOOD = dict(
    max_rel={"torch": 3e-15, "jax": 2e-15, "torch vs file": 4e-15},
    all_compared=True,
    steps=2000,
    frozen=8,
    decays=[0.001, 0.005, 0.005],
    conv1d_named=["filter_sum", "patch_mean", "bias", "float32"],
)


def test_decide_pass():
    assert claim.decide(**GOOD) == ("PASS", [], 0)
    # a client that did not run (jax absent) does not fail the claim
    assert claim.decide(**dict(GOOD, max_rel={"torch": 1e-15, "jax": None}))[0] == "PASS"


@pytest.mark.parametrize(
    "change,reason",
    [
        (dict(max_rel={"torch": 2e-10, "jax": 1e-15}), "torch: largest relative difference 2e-10"),
        (dict(max_rel={"torch": 1e-15, "jax": 1.5e-10}), "jax: largest relative difference"),
        (dict(max_rel={"torch": None, "jax": None}), "no client ran"),
        (dict(all_compared=False), "not compared"),
        (dict(steps=999), "only 999 steps"),
        (dict(frozen=0), "no frozen filter"),
        (dict(decays=[0.001, 0.0, 0.005]), "without weight decay"),
        (dict(conv1d_named=["filter_sum", "patch_mean", "float32"]), "Conv1d model"),
        (dict(conv1d_named=None), "Conv1d model"),
    ],
)
def test_decide_fail(change, reason):
    verdict, reasons, missing = claim.decide(**dict(GOOD, **change))
    assert verdict == "FAIL" and any(reason in r for r in reasons) and missing == 0


def test_decide_missing_value_counts():
    verdict, reasons, missing = claim.decide(**dict(GOOD, max_rel={"torch": math.nan}))
    assert verdict == "FAIL" and missing == 1 and "no finite difference" in reasons[0]
    # the protocol turns a missing value into FAIL with the reason in the statistic
    result = R.result(
        claim.NAME, claim.CLAIM, verdict, "s", "body", missing=missing, source=claim.SOURCE
    )
    assert result["verdict"] == "FAIL" and result["n_missing"] == 1


def test_protocol_constants():
    assert claim.NAME == "crosscheck" and claim.SOURCE in R.SOURCES
    assert "\n" not in claim.CLAIM


def test_skipped_without_torch(tmp_path, monkeypatch):
    monkeypatch.setattr(torch_client, "available", lambda: False)
    result = claim.run(tmp_path, quick=True)
    assert result["verdict"] == "SKIPPED" and "torch" in result["skip_reason"]
    assert R.check_result(result, "crosscheck") == []
    data = json.loads((tmp_path / "crosscheck" / "crosscheck.json").read_text())
    assert data["status"] == "skipped" and data["verdict"] == "SKIPPED"
    assert "pip install torch" in data["skip_reason"]


@pytest.mark.slow
@pytest.mark.skipif(not torch_client.available(), reason=torch_client.INSTALL_HINT)
def test_quick_run(tmp_path):
    result = claim.run(tmp_path, quick=True)
    assert R.check_result(result, "crosscheck") == []
    assert result["verdict"] == "PASS", result["statistic"]
    assert result["conv1d_named"] == claim.CONV1D_DEPARTURES
    folder = tmp_path / "crosscheck"
    for name in (
        "crosscheck.json",
        "crosscheck.csv",
        "drift.csv",
        "report_torch.txt",
        "report_conv1d.txt",
    ):
        assert (folder / name).exists(), name
