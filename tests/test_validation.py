"""The validation suite: every present script runs at --quick size and writes
well-formed outputs; the ``validate`` command's exit statuses; the report."""
import csv
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from refimpl import validate as V
from refimpl.cli import main

PRESENT = V.present_scripts()
REPO = Path(V.__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def quick_suite(tmp_path_factory):
    """Every present script once, quick, one worker, through run_scripts."""
    out = tmp_path_factory.mktemp("validation")
    state = V.run_scripts(None, out=out, quick=True, jobs=1, command="pytest")
    return out, state


def test_some_scripts_are_present():
    assert {"gain_shared", "coefficients", "phase_single"} <= set(PRESENT)


@pytest.mark.parametrize("name", PRESENT)
def test_script_outputs_are_well_formed(quick_suite, name):
    out, state = quick_suite
    entry = next(e for e in state["entries"] if e["name"] == name)
    assert entry["status"] == "ok", entry.get("markdown")
    assert entry["verdict"] in ("PASS", "FAIL")
    assert isinstance(entry["statistic"], str) and entry["statistic"]
    assert f"**Verdict: {entry['verdict']}**" in entry["markdown"]
    folder = out / name
    assert folder.is_dir()
    jsons = list(folder.glob("*.json"))
    assert jsons, f"{name} wrote no JSON"
    for path in jsons:
        json.loads(path.read_text())             # strict JSON (no NaN)
        assert "NaN" not in path.read_text()
    for path in folder.glob("*.csv"):
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh))
        assert len(rows) >= 2, f"{path.name} has no data rows"
        assert all(len(r) == len(rows[0]) for r in rows), f"{path.name} is ragged"
        assert not any(c.replace("_", "").isdigit() for c in rows[0]), "header is a data row"
    pngs = list(folder.glob("*.png"))
    from refimpl.plotting import available
    if available():
        assert pngs, f"{name} drew no figure although matplotlib is installed"
        for p in pngs:
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert f"{name}/{p.name}" in entry["markdown"], "figure not linked from the report"
    else:
        assert "matplotlib" in entry["markdown"]


def test_report_has_every_section_and_the_wall_time(quick_suite):
    out, state = quick_suite
    text = (out / "REPORT.md").read_text()
    assert "Measured wall time of this run" in text
    for name in PRESENT:
        assert f"## {name}" in text
    for name in state["missing"]:
        assert f"validation/{name}.py" in text
    assert set(state["missing"]) == set(V.SCRIPT_NAMES) - set(PRESENT)
    assert json.loads((out / "validate.json").read_text())["quick"] is True
    # the sweep cache lives under the output folder and ignores itself
    assert (out / ".sweep-cache" / ".gitignore").read_text().strip().endswith("*")


def test_cli_runs_one_script_and_keeps_earlier_sections(tmp_path):
    # an earlier quick run of another script into the same folder is kept
    assert main(["validate", "gain_alpha", "--quick", "--out", str(tmp_path)]) == 0
    r = subprocess.run([sys.executable, "-m", "refimpl", "validate", "gain_shared", "--quick",
                        "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "REPORT.md").read_text()
    assert "## gain_shared" in text and "## gain_alpha" in text
    assert "earlier run" in text
    state = json.loads((tmp_path / "validate.json").read_text())
    assert [e["name"] for e in state["entries"]] == ["gain_shared", "gain_alpha"]   # report order


def test_script_runs_on_its_own(tmp_path):
    r = subprocess.run([sys.executable, str(REPO / "validation" / "gain_shared.py"), "--quick",
                        "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("gain_shared: PASS") or r.stdout.startswith("gain_shared: FAIL")
    assert (tmp_path / "gain_shared" / "gain_shared.csv").is_file()


@pytest.mark.parametrize("argv, message", [
    (["validate", "nonsense", "--quick"], "unknown validation script"),
    (["validate", "gain_shared", "--jobs", "0", "--quick"], "--jobs"),
    (["validate", "--jobs", "two"], "invalid int"),
])
def test_bad_input_exits_2(argv, message, tmp_path):
    r = subprocess.run([sys.executable, "-m", "refimpl", *argv, "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 or "usage" in r.stderr


def test_missing_script_is_a_usage_error(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "validation"
    empty.mkdir()
    monkeypatch.setattr(V, "validation_dir", lambda: empty)
    assert main(["validate", "crosscheck", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "'crosscheck' is not present" in err and "Traceback" not in err
    # with no names nothing runs and every script is listed as missing
    assert main(["validate", "--quick", "--out", str(tmp_path / "o")]) == 0
    text = (tmp_path / "o" / "REPORT.md").read_text()
    assert "validation/crosscheck.py" in text and "validation/realdata.py" in text


def _fake(name, run):
    return types.SimpleNamespace(NAME=name, CLAIM="a claim", run=run)


def test_a_broken_script_is_reported_and_exits_1(tmp_path):
    def boom(out, quick=False, jobs=1):
        raise RuntimeError("kaput")

    def malformed(out, quick=False, jobs=1):
        return {"name": "gain_shared", "claim": "c", "statistic": "s", "verdict": "MAYBE",
                "markdown": "no line"}

    for fn, expect in ((boom, "kaput"), (malformed, "verdict is 'MAYBE'")):
        state = V.run_scripts(["gain_shared"], out=tmp_path, quick=True,
                              modules={"gain_shared": _fake("gain_shared", fn)})
        entry = state["entries"][0]
        assert entry["verdict"] == "ERROR" and entry["status"] == "error"
        assert expect in entry["markdown"]
        assert V._status(state, ["gain_shared"], strict=False) == 1
        assert "ERROR" in (tmp_path / "REPORT.md").read_text()


def test_strict_turns_a_fail_into_exit_1(tmp_path):
    def fails(out, quick=False, jobs=1):
        return V.result("gain_shared", "c", "FAIL", "rho = -1", "body")

    state = V.run_scripts(["gain_shared"], out=tmp_path, quick=True,
                          modules={"gain_shared": _fake("gain_shared", fails)})
    assert V._status(state, ["gain_shared"], strict=False) == 0
    assert V._status(state, ["gain_shared"], strict=True) == 1


def test_check_result():
    good = V.result("x", "claim", "PASS", "stat", "body")
    assert V.check_result(good, "x") == []
    assert "missing key 'markdown'" in V.check_result({k: v for k, v in good.items()
                                                       if k != "markdown"}, "x")
    assert V.check_result(good, "y") == ["name is 'x', expected 'y'"]
    assert V.check_result([], "x") == ["run() returned list, not a dict"]
    with pytest.raises(ValueError):
        V.verdict_line("MAYBE", "c", "s")


def test_paired_t_and_spearman_against_hand_values():
    # differences 1, 2, 3: mean 2, se 1/sqrt(3), t = 2 sqrt(3), df = 2;
    # one-sided p = P(T_2 > 3.4641) = 0.037089 (t-table value)
    r = V.paired_t([2.0, 4.0, 6.0], [1.0, 2.0, 3.0], "greater")
    assert r["mean"] == pytest.approx(2.0)
    assert r["se"] == pytest.approx(1 / np.sqrt(3))
    assert r["t"] == pytest.approx(2 * np.sqrt(3))
    assert r["p"] == pytest.approx(0.037089, abs=2e-6)
    assert V.paired_t([1.0, 1.0], [0.0, 0.0])["p"] == 0.0          # no variance, right sign
    assert V.paired_t([0.0, 0.0], [1.0, 1.0])["p"] == 1.0
    rho, p = V.spearman([1, 2, 3, 4, 5], [2, 4, 5, 9, 10], "greater")
    assert rho == pytest.approx(1.0)
    rho, _ = V.spearman([1, 2, 3, 4], [4, 3, 2, 1])
    assert rho == pytest.approx(-1.0)
    assert V.spearman([1, 1, 1], [1, 2, 3]) == (pytest.approx(np.nan, nan_ok=True), 1.0)


def test_holm_adjustment():
    nt = V.load_script("negative_transfer")
    # sorted 0.01, 0.03, 0.04 -> 3*0.01, max(0.03, 2*0.03), max(0.06, 1*0.04)
    assert np.allclose(nt.holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    assert np.allclose(nt.holm([0.5, 0.9]), [1.0, 1.0])


def test_write_json_and_csv(tmp_path):
    V.write_json(tmp_path / "a.json", {"x": np.float64(np.nan), "y": np.arange(3), "z": np.bool_(True)})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": None, "y": [0, 1, 2], "z": True}
    V.write_csv(tmp_path / "b.csv", ["a", "b"], [[1, 0.5], [2, float("nan")]])
    assert (tmp_path / "b.csv").read_text() == "a,b\n1,0.5\n2,\n"
    with pytest.raises(ValueError, match="row of length"):
        V.write_csv(tmp_path / "c.csv", ["a"], [[1, 2]])
