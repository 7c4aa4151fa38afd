"""The claims suite: discovery of the claim modules, the runner's report and
exit statuses, the thin scripts of validation/, and (slow) every claim at
--quick size writing well-formed outputs."""

import csv
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

from refimpl import claims
from refimpl.cli import main
from refimpl.config import Config
from refimpl.lab import report as R
from refimpl.lab.claim import Outcome, Protocol, Size, Skip, missing_note
from refimpl.lab.figures import available

REPO = Path(__file__).resolve().parents[2]
NAMES = claims.names()


def test_every_claim_has_its_thin_script():
    for name in NAMES:
        script = REPO / "validation" / f"{name}.py"
        assert script.is_file(), script
        assert f'claim_main("{name}")' in script.read_text(), script


def _fake(name, measure, source="paper", decide=None, statistic="a statistic"):
    """A declared claim (refimpl/lab/claim.py) named ``name``: ``measure(size,
    sweep)`` is given; ``decide`` returns the measurement as the verdict
    unless given; ``present`` writes one line."""
    size = Size({"base": Config()}, 1)
    protocol = Protocol(name, "a claim", source, size, size, "s", "r", "2026-12-06")
    return types.SimpleNamespace(
        PROTOCOL=protocol,
        measure=measure,
        decide=decide or (lambda size, m: {"verdict": m, "missing": 0}),
        present=lambda size, m, dec: Outcome(statistic, ["body"]),
    )


def test_a_broken_claim_is_reported_and_exits_1(tmp_path, monkeypatch):
    def boom(size, sweep):
        raise RuntimeError("kaput")

    cases = ((_fake("gain_shared", boom), "kaput"),)
    cases += ((_fake("gain_shared", lambda size, sweep: "MAYBE"), "got 'MAYBE'"),)
    for fake, expect in cases:
        monkeypatch.setattr(claims, "load", lambda n, fake=fake: fake)
        state = claims.run_claims(["gain_shared"], out=tmp_path, quick=True)
        entry = state["entries"][0]
        assert entry["verdict"] == "ERROR" and entry["status"] == "error"
        assert expect in entry["markdown"]
        assert R.exit_status(state, strict=False) == 1
        assert "ERROR" in (tmp_path / "REPORT.md").read_text()


def test_strict_turns_a_fail_into_exit_1_but_not_a_skip(tmp_path, monkeypatch):
    def skips(size, sweep):
        raise Skip("an extra is missing")

    fails = _fake("gain_shared", lambda size, sweep: "FAIL")
    monkeypatch.setattr(claims, "load", lambda n: fails)
    state = claims.run_claims(["gain_shared"], out=tmp_path, quick=True)
    assert R.exit_status(state, strict=False) == 0
    assert R.exit_status(state, strict=True) == 1
    monkeypatch.setattr(claims, "load", lambda n: _fake(n, skips))
    state = claims.run_claims(["gain_shared"], out=tmp_path, quick=True)
    assert state["entries"][0]["verdict"] == "SKIPPED"
    assert R.exit_status(state, strict=True) == 0


def test_report_keeps_earlier_sections_in_report_order(tmp_path, monkeypatch):
    def ok(n):
        return _fake(n, lambda size, sweep: "PASS", "framework", statistic=f"{n} holds")

    monkeypatch.setattr(claims, "load", ok)
    claims.run_claims(["gain_alpha"], out=tmp_path, quick=True)
    state = claims.run_claims(["gain_shared"], out=tmp_path, quick=True)
    assert [e["name"] for e in state["entries"]] == ["gain_shared", "gain_alpha"]
    assert [e["this_run"] for e in state["entries"]] == [True, False]
    text = (tmp_path / "REPORT.md").read_text()
    assert "## gain_shared" in text and "## gain_alpha" in text and "earlier run" in text
    assert "| framework |" in text  # the source column
    saved = json.loads((tmp_path / "validate.json").read_text())
    assert all(e["source"] == "framework" for e in saved["entries"])
    # a full-size run does not keep quick sections
    state = claims.run_claims(["gain_shared"], out=tmp_path, quick=False)
    assert [e["name"] for e in state["entries"]] == ["gain_shared"]


def exit_code(argv):
    """``main(argv)``'s exit status, argparse's own exits included."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


@pytest.mark.parametrize(
    "argv, message",
    [
        (["validate", "nonsense", "--quick"], "unknown claim"),
        (["validate", "gain_shared", "--jobs", "0", "--quick"], "--jobs"),
        (["validate", "--jobs", "two"], "positive integer"),
    ],
)
def test_bad_input_exits_2(argv, message, tmp_path, capsys):
    assert exit_code([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


def test_unwritable_out_is_one_line_and_exit_2(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    bad = blocker / "sub"
    assert main(["validate", "gain_shared", "--quick", "--out", str(bad)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "cannot write into" in err and "Traceback" not in err


def test_thin_script_usage_errors_are_one_line(tmp_path):
    r = subprocess.run(
        [sys.executable, str(REPO / "validation" / "gain_shared.py"), "--jobs", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr


# ----------------------------------------------------------------------
# slow: every claim at --quick size
@pytest.fixture(scope="module")
def quick_suite(tmp_path_factory):
    out = tmp_path_factory.mktemp("validation")
    state = claims.run_claims(None, out=out, quick=True, jobs=1, command="pytest")
    return out, state


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_claim_outputs_are_well_formed(quick_suite, name):
    out, state = quick_suite
    entry = next(e for e in state["entries"] if e["name"] == name)
    assert entry["status"] == "ok", entry.get("markdown")
    assert entry["source"] in R.SOURCES
    assert f"**Verdict: {entry['verdict']}**" in entry["markdown"]
    folder = out / name
    jsons = list(folder.glob("*.json"))
    assert jsons, f"{name} wrote no JSON"
    for path in jsons:
        text = path.read_text()
        json.loads(text, parse_constant=lambda c, p=path: pytest.fail(f"{p.name}: {c} in JSON"))
    for path in folder.glob("*.csv"):
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh))
        assert len(rows) >= 2, f"{path.name} has no data rows"
        assert all(len(r) == len(rows[0]) for r in rows), f"{path.name} is ragged"
        for cell in rows[0]:
            with pytest.raises(ValueError):
                float(cell)  # a header cell is not a number
    if entry["verdict"] == "SKIPPED":
        assert entry["statistic"]
        return
    pngs = list(folder.glob("*.png"))
    if available():
        assert pngs, f"{name} drew no figure although matplotlib is installed"
        for p in pngs:
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert f"{name}/{p.name}" in entry["markdown"], "figure not linked from the report"
    else:
        assert "matplotlib" in entry["markdown"]


@pytest.mark.slow
def test_report_has_every_section_and_the_wall_time(quick_suite):
    out, state = quick_suite
    text = (out / "REPORT.md").read_text()
    assert "Measured wall time of this run" in text
    for name in NAMES:
        assert f"## {name}" in text
    assert json.loads((out / "validate.json").read_text())["quick"] is True
    assert (out / ".sweep-cache" / ".gitignore").read_text().strip().endswith("*")


@pytest.mark.slow
def test_script_runs_on_its_own(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            str(REPO / "validation" / "gain_shared.py"),
            "--quick",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split(":")[0] == "gain_shared"
    assert (tmp_path / "gain_shared" / "gain_shared.csv").is_file()


def test_replication_draws_other_seeds_and_adds_a_column(tmp_path, monkeypatch):
    """--replicate SALT: the sweeps inside see another seed stream, outputs go
    to replicate-SALT/, and the report's table gains the replication and
    confirmation columns."""
    from refimpl.lab.seeds import stream_salt

    seen = []

    def fake(n):
        def measure(size, sweep):
            seen.append((n, stream_salt(n), str(sweep.out)))
            return "PASS" if n == "gain_shared" or "replicate" not in str(sweep.out) else "FAIL"

        return _fake(n, measure)

    monkeypatch.setattr(claims, "load", fake)
    claims.run_claims(["gain_shared", "gain_alpha"], out=tmp_path, quick=True)
    state = claims.run_claims(
        ["gain_shared", "gain_alpha"], out=tmp_path, quick=True, replicate="r1"
    )
    assert seen[0][1] == "gain_shared" and seen[2][1] == "gain_shared|replicate:r1"
    assert seen[2][2].endswith("replicate-r1")
    assert state["replication"]["salt"] == "r1"
    assert {
        n: R.confirmed(e, state["replication"])
        for n, e in ((e["name"], e) for e in state["entries"])
    } == {"gain_shared": "confirmed", "gain_alpha": "not confirmed"}
    text = (tmp_path / "REPORT.md").read_text()
    assert "salt `r1`" in text and "| confirmed |" in text and "not confirmed" in text
    assert (tmp_path / "replicate-r1" / "REPORT.md").is_file()
    assert stream_salt("gain_shared") == "gain_shared"  # the original stream afterwards
    with pytest.raises(Exception, match="--replicate"):
        claims.run_claims(["gain_shared"], out=tmp_path, replicate="../x")


def test_a_missing_value_turns_the_verdict_into_fail_in_the_json(tmp_path, monkeypatch):
    """decide's tests say PASS but one value is missing: the reported verdict,
    the JSON's and the statistic all say FAIL and why."""
    fake = _fake("gain_shared", lambda size, sweep: "PASS")
    fake.decide = lambda size, m: {"verdict": "PASS", "missing": 1}
    monkeypatch.setattr(claims, "load", lambda n: fake)
    entry = claims.run_claims(["gain_shared"], out=tmp_path, quick=True)["entries"][0]
    saved = json.loads((tmp_path / "gain_shared" / "gain_shared.json").read_text())
    assert entry["verdict"] == saved["verdict"] == "FAIL" and saved["verdict_tests"] == "PASS"
    assert saved["n_missing"] == 1 and missing_note(1) in saved["statistic"]
    assert saved["protocol_hash"] == fake.PROTOCOL.hash(True)


def test_the_suite_refuses_before_any_work(tmp_path):
    """run_suite: a bad jobs count, a bad salt or a module without a place in
    the report order is a UsageError, and nothing is written."""
    from refimpl.errors import UsageError
    from refimpl.lab.suite import run_suite

    modules = {"gain_shared": claims.load("gain_shared")}
    out = tmp_path / "out"
    cases = [
        (dict(jobs=0), "--jobs"),
        (dict(replicate="a b"), "--replicate"),
        (dict(order=["gain_alpha"]), "without a place in the report order: gain_shared"),
        (dict(order="gain_shared"), "a dict of claim modules by name and a list of names"),
        (dict(modules=["gain_shared"]), "a dict of claim modules by name and a list of names"),
        (dict(modules={"gain_shared": claims}), "'gain_shared' is not a claim module: no PROT"),
    ]
    for kwargs, message in cases:
        order = kwargs.pop("order", claims.names())
        with pytest.raises(UsageError, match=message):
            run_suite(kwargs.pop("modules", modules), order, out, quick=True, **kwargs)
    assert not out.exists()
