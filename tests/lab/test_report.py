"""Claim results and report files (refimpl.lab.report, refimpl.files)."""

import json
import os

import numpy as np
import pytest

from refimpl import files
from refimpl.config import Config
from refimpl.lab import claim as C
from refimpl.lab import report as V
from refimpl.lab.claim import Disclosure, Protocol, Size

SIZE = Size({"base": Config()}, 1)


def _entry(verdict="PASS", missing=0, statistic="stat"):
    """A claim's report entry as run_claim returns it (claim_result's JSON head)."""
    p = Protocol("x", "claim", "hypothesis", SIZE, SIZE, "a test", "p < 0.01", "2026-12-06")
    doc, markdown = C.claim_result(
        p, False, {"verdict": verdict, "missing": missing}, C.Outcome(statistic, ["body"]), "."
    )
    return {
        **{k: doc[k] for k in ("name", "claim", "source", "verdict", "statistic")},
        **{"n_missing": doc["n_missing"], "markdown": markdown},
    }


def test_check_result():
    good = _entry()
    assert V.check_result(good, "x") == []
    assert "missing key 'markdown'" in V.check_result(
        {k: v for k, v in good.items() if k != "markdown"}, "x"
    )
    assert V.check_result(good, "y") == ["name is 'x', expected 'y'"]
    assert V.check_result([], "x") == ["the claim's entry is a list, not a dict"]
    with pytest.raises(ValueError):
        C.verdict_line("MAYBE", "c", "s")
    assert "source is 'rumour'" in V.check_result({**good, "source": "rumour"}, "x")[0]
    with pytest.raises(ValueError, match="source"):
        Protocol("x", "claim", "rumour", SIZE, SIZE, "a test", "p < 0.01", "2026-12-06")
    assert "Source: hypothesis" in good["markdown"]


def test_skipped_is_a_well_formed_entry():
    p = Protocol("x", "claim", "implementation", SIZE, SIZE, "t", "r", "2026-12-06")
    s = C._skipped(p, True, "torch is not installed")
    assert V.check_result(s, "x") == [] and s["verdict"] == "SKIPPED"
    assert "torch is not installed" in s["statistic"] and "**Verdict: SKIPPED**" in s["markdown"]


def test_a_missing_value_fails_the_verdict_and_says_so():
    ok = _entry("PASS", 0, "rho = 1")
    assert ok["verdict"] == "PASS" and ok["n_missing"] == 0
    bad = _entry("PASS", 2, "rho = 1")
    assert bad["verdict"] == "FAIL" and bad["n_missing"] == 2
    assert "2 value(s) the verdict relies on are missing" in bad["statistic"]
    assert "**Verdict: FAIL**" in bad["markdown"] and V.check_result(bad, "x") == []


def test_write_json_and_csv(tmp_path):
    files.write_json(
        tmp_path / "a.json", {"x": np.float64(np.nan), "y": np.arange(3), "z": np.bool_(True)}
    )
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": None, "y": [0, 1, 2], "z": True}
    files.write_csv(tmp_path / "b.csv", ["a", "b"], [[1, 0.5], [2, float("nan")]])
    assert (tmp_path / "b.csv").read_text() == "a,b\n1,0.5\n2,\n"
    with pytest.raises(ValueError, match="row of length"):
        files.write_csv(tmp_path / "c.csv", ["a"], [[1, 2]])


def test_files_get_the_umask_mode_and_no_part_file_is_left(tmp_path):
    old = os.umask(0o022)
    try:
        path = files.write_text(tmp_path / "t.txt", "hello")
    finally:
        os.umask(old)
    assert (os.stat(path).st_mode & 0o777) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["t.txt"]
    with pytest.raises(RuntimeError):
        files.atomic_write(tmp_path / "t.txt", lambda fh: (_ for _ in ()).throw(RuntimeError()))
    assert (tmp_path / "t.txt").read_text() == "hello"  # the old file is kept
    assert [p.name for p in tmp_path.iterdir()] == ["t.txt"]


def test_protocol_hash_changes_with_any_part_and_disclosures_show_the_earlier_result():
    def protocol(seeds=20, alpha=0.5, disclosures=()):
        size = Size({"grid": [Config(alpha=alpha)]}, seeds)
        return Protocol(
            "x",
            "c",
            "paper",
            size,
            size,
            "Page's L test",
            "p < 0.01",
            "2026-11-29",
            disclosures=disclosures,
        )

    p = protocol()
    assert len(p.hash()) == 12 and p.hash() == protocol().hash()
    assert p.hash() != protocol(seeds=21).hash() and p.hash() != protocol(alpha=0.25).hash()
    d = Disclosure(
        "2026-11-28",
        "eta = 1 -> eta = 200/(sigma_p^2 d)",
        "the theory's condition",
        "FAIL: exponent +0.299 [0.271, 0.327]",
    )
    assert protocol(disclosures=(d,)).hash() == p.hash()  # a disclosure is not the design
    text = C.protocol_markdown(protocol(disclosures=(d,)))
    assert p.hash() in text and "exponent +0.299" in text and "eta = 1 -> " in text
