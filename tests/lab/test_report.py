"""Claim results and report files (refimpl.lab.report, refimpl.files)."""

import json
import os

import numpy as np
import pytest

from refimpl import files
from refimpl.lab import report as V


def test_check_result():
    good = V.result("x", "claim", "PASS", "stat", "body", source="hypothesis")
    assert V.check_result(good, "x") == []
    assert "missing key 'markdown'" in V.check_result(
        {k: v for k, v in good.items() if k != "markdown"}, "x"
    )
    assert V.check_result(good, "y") == ["name is 'x', expected 'y'"]
    assert V.check_result([], "x") == ["run() returned list, not a dict"]
    with pytest.raises(ValueError):
        V.verdict_line("MAYBE", "c", "s")

    assert "source is 'rumour'" in V.check_result({**good, "source": "rumour"}, "x")[0]
    with pytest.raises(ValueError, match="source"):
        V.result("x", "claim", "PASS", "stat", "body", source="rumour")
    assert "Source: hypothesis" in good["markdown"]


def test_skipped_is_a_well_formed_result():
    s = V.skipped("x", "claim", "implementation", "torch is not installed")
    assert V.check_result(s, "x") == [] and s["verdict"] == "SKIPPED"
    assert "torch is not installed" in s["statistic"] and "**Verdict: SKIPPED**" in s["markdown"]


def test_result_fails_and_says_so_when_values_are_missing():
    ok = V.result("x", "claim", "PASS", "rho = 1", "body", source="paper")
    assert ok["verdict"] == "PASS" and ok["n_missing"] == 0
    bad = V.result("x", "claim", "PASS", "rho = 1", "body", missing=2, source="paper")
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
    from refimpl.lab.protocol import Disclosure, Protocol, protocol_markdown

    p = Protocol("x", {"alpha": [0, 0.5, 1]}, 20, "Page's L test", "p < 0.01", "2026-11-29")
    assert len(p.hash) == 12 and p.hash == Protocol(**{**p.__dict__}).hash
    assert (
        p.hash
        != Protocol("x", {"alpha": [0, 0.5, 1]}, 21, "Page's L test", "p < 0.01", "2026-11-29").hash
    )
    d = Disclosure(
        "2026-11-28",
        "eta = 1 -> eta = 200/(sigma_p^2 d)",
        "the theory's condition",
        "FAIL: exponent +0.299 [0.271, 0.327]",
    )
    text = protocol_markdown(p, [d])
    assert p.hash in text and "exponent +0.299" in text and "eta = 1 -> " in text
