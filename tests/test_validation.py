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
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_unwritable_out_is_one_line_and_exit_2(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    bad = blocker / "sub"
    for cmd in ([sys.executable, "-m", "refimpl", "validate", "gain_shared", "--quick", "--out", str(bad)],
                [sys.executable, str(REPO / "validation" / "gain_shared.py"), "--quick", "--out", str(bad)]):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert r.returncode == 2, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "cannot write into" in r.stderr and "Traceback" not in r.stderr


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


def test_paired_t_against_hand_values():
    # differences 1, 2, 3: mean 2, se 1/sqrt(3), t = 2 sqrt(3), df = 2;
    # one-sided p = P(T_2 > 3.4641) = 0.037089 (t-table value): FAIL at 0.01
    r = V.paired_t([2.0, 4.0, 6.0], [1.0, 2.0, 3.0], "greater")
    assert r["mean"] == pytest.approx(2.0)
    assert r["se"] == pytest.approx(1 / np.sqrt(3))
    assert r["t"] == pytest.approx(2 * np.sqrt(3))
    assert r["p"] == pytest.approx(0.037089, abs=2e-6)
    assert r["n"] == 3 and r["n_missing"] == 0 and not r["p"] < 0.01
    # differences 1..5: mean 3, se sqrt(2.5 / 5), t = sqrt(18) = 4.2426, df = 4; the
    # closed form of the T_4 tail, P(T_4 > t) = 1/2 - (3/4) s (1 - s^2/3) with
    # s = t / sqrt(4 + t^2) = sqrt(18/22), gives p = 0.0066178: PASS at 0.01
    r = V.paired_t([1.0, 2, 3, 4, 5], [0.0] * 5)
    assert r["t"] == pytest.approx(np.sqrt(18))
    s = np.sqrt(18 / 22)
    assert r["p"] == pytest.approx(0.5 - 0.75 * s * (1 - s**2 / 3)) and r["p"] < 0.01
    assert V.paired_t([1.0, 1.0], [0.0, 0.0])["p"] == 0.0          # no variance, right sign
    assert V.paired_t([0.0, 0.0], [1.0, 1.0])["p"] == 1.0


def test_a_missing_value_makes_p_nan_and_is_counted():
    r = V.paired_t([1.0, 2.0, np.nan, 4.0, 5.0, 6.0], [0.0] * 6)
    assert r["n"] == 5 and r["n_missing"] == 1
    assert np.isnan(r["p"]) and not r["p"] < 0.01              # the verdict cannot pass
    assert r["mean"] == pytest.approx(18 / 5)                   # shown over the complete pairs
    assert V.n_missing([1.0, None, np.inf], [[np.nan, 2.0]]) == 3
    v = np.array([[1.0, 1, 1, 1], [2, 2, np.inf, 2], [3, 3, 3, 3]])
    t = V.trend([1, 2, 3], v)
    assert t["n_missing"] == 1 and t["n"] == 3 and np.isnan(t["p"])
    assert "p n/a" in V.fmt_p(t["p"])


def test_result_fails_and_says_so_when_values_are_missing():
    ok = V.result("x", "claim", "PASS", "rho = 1", "body")
    assert ok["verdict"] == "PASS" and ok["n_missing"] == 0
    bad = V.result("x", "claim", "PASS", "rho = 1", "body", missing=2)
    assert bad["verdict"] == "FAIL" and bad["n_missing"] == 2
    assert "2 value(s) the verdict relies on are missing" in bad["statistic"]
    assert "**Verdict: FAIL**" in bad["markdown"] and V.check_result(bad, "x") == []


def increasing_unless_diverged(config):
    """g grows with u_norm in every run; g_diverged is the same except one
    run at u_norm = 3 that diverged (inf, stored as null)."""
    g = config.u_norm
    return {"g": g, "g_diverged": float("inf") if (config.u_norm == 3.0 and config.n_up == 11) else g}


def test_a_diverged_seed_fails_the_verdict(tmp_path):
    """End to end through the sweep: a diverged run gives FAIL with the
    missing count, not a PASS over the remaining seeds."""
    from refimpl.config import Config
    from refimpl.sweep import run_sweep

    def grid(n_up):
        return [Config(d=40, m=2, n_up=n_up, n_down=6, steps_up=5, steps_down=5, u_norm=u)
                for u in (1.0, 2.0, 3.0)]
    # blocks: 5 seeds of n_up = 10 and 1 seed of n_up = 11 (the diverging one)
    a = run_sweep(grid(10), measure=increasing_unless_diverged, replicates=5, cache=tmp_path,
                  progress=False)
    b = run_sweep(grid(11), measure=increasing_unless_diverged, replicates=1, cache=tmp_path,
                  progress=False)
    values = {k: np.concatenate([a.values(k), b.values(k)], axis=1) for k in ("g", "g_diverged")}
    clean = V.trend([1, 2, 3], values["g"])
    assert clean["p"] == pytest.approx(6.0**-6) and clean["n_missing"] == 0     # PASS
    t = V.trend([1, 2, 3], values["g_diverged"])
    missing = V.n_missing(values["g_diverged"])
    assert missing == 1 and t["n"] == 5
    res = V.result("x", "c", "PASS" if t["p"] < 0.01 else "FAIL", V.fmt_trend(t), "b",
                   missing=missing)
    assert res["verdict"] == "FAIL" and "1 value(s)" in res["statistic"]
    # the five complete seeds alone would pass (6^-5 < 0.01): the missing one must not be dropped
    assert V.trend([1, 2, 3], values["g"][:, :5])["p"] < 0.01


def test_trend_against_hand_values():
    # 3 points, every block perfectly increasing: rank sums R = (b, 2b, 3b),
    # L = sum_j j R_j = 14 b; exact p = P(every block in the predicted order) = (1/3!)^b
    up = np.array([[1.0, 5.0, 9.0]] * 4).T                        # (points, blocks)
    t = V.trend([0.1, 0.2, 0.3], up, "greater")
    assert t["L"] == 56 and t["rho"] == 1.0
    assert t["p"] == pytest.approx(1 / 1296) and t["p"] < 0.01    # PASS
    t2 = V.trend([0.1, 0.2, 0.3], up[:, :2], "greater")
    assert t2["p"] == pytest.approx(1 / 36) and not t2["p"] < 0.01  # two blocks only: FAIL
    down = V.trend([0.1, 0.2, 0.3], up[::-1], "less")
    assert down["p"] == pytest.approx(1 / 1296) and down["rho"] == -1.0
    assert V.trend([0.1, 0.2, 0.3], up, "less")["p"] == pytest.approx(1.0)
    assert V.trend([0.1, 0.2, 0.3], up, "two-sided")["p"] == pytest.approx(2 / 1296)
    # x given out of order: the order of x, not of the rows, is predicted
    t3 = V.trend([0.3, 0.1, 0.2], up[[2, 0, 1]], "greater")
    assert t3["p"] == pytest.approx(1 / 1296) and t3["rho"] == 1.0
    # per-block Spearman: block (1, 3, 2) has rho = 1 - 6*2/(3*8) = 0.5
    mixed = np.array([[1.0, 2, 3], [1, 3, 2]]).T
    assert V.trend([1, 2, 3], mixed)["rho"] == pytest.approx(0.75)
    with pytest.raises(ValueError, match="3 distinct"):
        V.trend([1, 2], np.ones((2, 3)))
    with pytest.raises(ValueError, match="shape"):
        V.trend([1, 2, 3], np.ones((4, 3)))


def test_holm_over_one_family():
    # sorted 0.01, 0.03, 0.04 -> 3*0.01, max(0.03, 2*0.03), max(0.06, 1*0.04)
    assert np.allclose(V.holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    assert np.allclose(V.holm([0.5, 0.9]), [1.0, 1.0])
    # a cell at p = 0.004: significant in a heatmap of 2 cells (0.008) but
    # not in the family of 4 heatmaps x 2 cells (8 * 0.004 = 0.032)
    assert V.holm([0.004, 0.5])[0] < 0.01
    assert not V.holm([0.004] + [0.5] * 7)[0] < 0.01
    adj = V.holm(np.array([[0.001, np.nan], [0.2, 0.3]]))
    assert np.isnan(adj[0, 1]) and adj[0, 0] == pytest.approx(0.004)   # NaN counts as 1
    nt = V.load_script("negative_transfer")
    assert np.allclose(nt.holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])


def test_bonferroni_min_over_alternative_levers():
    assert V.bonferroni_min([0.004, 0.2]) == pytest.approx(0.008)        # either holds: PASS
    assert not V.bonferroni_min([0.006, 0.2]) < 0.01                     # 0.012: FAIL
    assert V.bonferroni_min([0.6, 0.9]) == 1.0
    assert np.isnan(V.bonferroni_min([0.001, np.nan]))


def test_equivalence_rule():
    assert V.equivalent((0.22, 0.28), 0.25, 0.05)                        # PASS
    assert not V.equivalent((0.17, 0.33), 0.25, 0.05)    # contains 0.25 but too wide: FAIL
    assert not V.equivalent((0.26, 0.31), 0.25, 0.05)
    assert V.equivalent((-0.29, -0.21), -0.25, 0.05)
    assert not V.equivalent((float("nan"), 0.3), 0.25, 0.05)


def test_write_json_and_csv(tmp_path):
    V.write_json(tmp_path / "a.json", {"x": np.float64(np.nan), "y": np.arange(3), "z": np.bool_(True)})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": None, "y": [0, 1, 2], "z": True}
    V.write_csv(tmp_path / "b.csv", ["a", "b"], [[1, 0.5], [2, float("nan")]])
    assert (tmp_path / "b.csv").read_text() == "a,b\n1,0.5\n2,\n"
    with pytest.raises(ValueError, match="row of length"):
        V.write_csv(tmp_path / "c.csv", ["a"], [[1, 2]])
