"""Hostile budgets and phase axes: a budget holds for the whole job of every
subcommand, checked before anything is built or allocated (one line naming the
option, exit status 2); phase axes are only fields that change the diagram's
runs, counted without float or decimal blow-ups."""

import contextlib
import json
import re
import signal
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import tiny_config

from refimpl import budget as B
from refimpl.cli import main
from refimpl.config import Config
from refimpl.errors import ResourceError, UsageError
from refimpl.lab import phase as PH
from refimpl.trajectory import COEFFICIENT_KEYS, experiment_arrays, save
from refimpl.transfer import run_experiment

BIG = "1" * 400
PHASE_BASE = dict(
    d=40, m=3, n_up=8, n_down=1, u_norm=1.0, v_up_norm=0.0, v_down_norm=0.0, flip_up=0.1
)
PHASE_BASE.update(eta=0.2, sigma_0=0.05, steps_up=30, steps_down=0, n_test=400, snapshots=2)
PHASE_SETS = [a for k, v in PHASE_BASE.items() for a in ("--set", f"{k}={json.dumps(v)}")]


def call(argv, capsys):
    """(exit status, stderr) of the command line."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def one_line(err):
    return len(err.strip().splitlines()) == 1 and "Traceback" not in err


@contextlib.contextmanager
def hang_guard(seconds):
    """A hang guard (not a timed assertion): SIGALRM after ``seconds``."""

    def fail(*_):
        raise TimeoutError(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture
def nothing_built(monkeypatch):
    """Fail the test if a phase diagram builds its cells or starts a sweep."""

    def refuse(*args, **kwargs):
        raise AssertionError("the diagram was built before the budget refused it")

    monkeypatch.setattr(PH, "_grid", refuse)
    monkeypatch.setattr(PH, "run_sweep", refuse)


def _estimate(err, unit="multiply-adds"):
    """The estimate a refusal line states."""
    return float(re.search(rf"would need about (\S+) {unit}", err).group(1))


# ----------------------------------------------------------------------
# the budget options


@pytest.mark.parametrize("option", ["--work-budget", "--memory-budget"])
@pytest.mark.parametrize("value", ["", "  ", "abc", "-1", "0", "nan", "inf", "1e400", "5X"])
def test_a_bad_budget_value_is_refused_naming_the_option(option, value, capsys, tmp_path):
    code, err = call(["run", "--out", str(tmp_path / "o"), option, value], capsys)
    assert code == 2 and one_line(err) and f"argument {option}" in err, err
    assert not (tmp_path / "o").exists()


@settings(max_examples=60)
@given(st.text(max_size=12))
def test_any_work_budget_text_is_a_positive_number_or_refused(text):
    try:
        value = B.parse_work(text)
    except ResourceError:
        return
    assert value > 0 and np.isfinite(value) and value == float(text.strip())


@pytest.mark.parametrize("env", [B.WORK_ENV, B.MEMORY_ENV])
def test_a_bad_budget_variable_is_named(env, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv(env, "lots")
    argv = ["run", "--out", str(tmp_path / "o"), "--set", "d=100", "--set", "n_up=10"]
    code, err = call(argv, capsys)
    assert code == 2 and one_line(err) and env in err, err


def test_stage_work_by_hand():
    # (steps + 1) (2 * 2m * nP * d + 1e5) with n=2, P=2, d=3, m=1, steps=4
    assert B.stage_work(2, 2, 3, 1, 4) == 5 * (2 * 2 * 4 * 3 + 1e5)


def test_a_refusal_names_the_option_and_a_value_that_would_do(capsys, tmp_path):
    argv = ["run", "--out", str(tmp_path / "o"), "--set", "d=100", "--set", "n_up=10"]
    code, err = call([*argv, "--work-budget", "1e3"], capsys)
    assert code == 2 and one_line(err) and "--work-budget" in err and "1e+03" in err, err
    work = _estimate(err)
    suggested = float(re.search(r"e\.g\. --work-budget (\S+),", err).group(1))
    assert suggested >= work
    code, err = call([*argv, "--work-budget", str(suggested), "--memory-budget", "1K"], capsys)
    assert code == 2 and "--memory-budget" in err and "multiply-adds" not in err, err


@pytest.mark.parametrize("field", ["d", "steps_up", "n_test", "m"])
def test_huge_integers_in_set_name_their_field(field, capsys, tmp_path):
    code, err = call(["run", "--out", str(tmp_path / "o"), "--set", f"{field}={BIG}"], capsys)
    assert code == 2 and one_line(err) and field in err and "OverflowError" not in err, err


def test_estimates_of_sizes_beyond_the_floats_are_infinite_not_overflows():
    memory, work = B.single_estimate(
        dict(d=B.as_float(10**400), m=3, n_up=8, steps_up=10, snapshots=2, n_test=10)
    )
    assert memory == np.inf and work == np.inf
    with pytest.raises(ResourceError, match=r"d=1\.11e\+399"):
        B.check("x", np.inf, 0, ("d",), {"d": int(BIG)})


# ----------------------------------------------------------------------
# phase: the whole diagram


def _phase(capsys, tmp_path, *args):
    out = tmp_path / "ph"
    code, err = call(["phase", *args, *PHASE_SETS, "--out", str(out), "--quiet"], capsys)
    return code, err


def test_a_huge_grid_is_refused_before_any_cell_is_built(nothing_built, capsys, tmp_path):
    with hang_guard(60):
        code, err = _phase(capsys, tmp_path, "--x", "u_norm=0:9999:1", "--y", "d=40:10039:1")
    assert code == 2 and one_line(err) and ("--memory-budget" in err or "--work-budget" in err)
    assert "10000 u_norm x 10000 d cells" in err, err
    assert not (tmp_path / "ph").exists()


def test_a_grid_of_two_size_axes_is_estimated_cell_by_cell(nothing_built, capsys, tmp_path):
    # both axes change the estimate; the grid is summed without building it
    with hang_guard(60):
        code, err = _phase(
            capsys, tmp_path, "--x", "d=40:9039:1", "--y", "n_up=8:10007:1", "--work-budget", "1"
        )
    assert code == 2 and one_line(err) and "9000 d x 10000 n_up" in err, err


def test_a_billion_repetitions_are_refused_before_any_work(nothing_built, capsys, tmp_path):
    for reps in ("1000000000", BIG):
        code, err = _phase(capsys, tmp_path, "--x", "u_norm=1,2", "--y", "d=40", "--reps", reps)
        assert code == 2 and one_line(err) and "repetitions" in err, err
        assert "--memory-budget" in err or "--work-budget" in err


def test_the_work_budget_holds_for_the_diagram_not_per_cell(capsys, tmp_path, monkeypatch):
    grid = ("--x", "u_norm=1", "--y", "d=40", "--reps", "1")
    code, err = _phase(capsys, tmp_path, *grid, "--work-budget", "1")
    assert code == 2
    one = _estimate(err)  # one run: u_norm changes no size, so every cell costs as much
    ten = ("--x", "u_norm=0.5:5:0.5", "--y", "d=40", "--reps", "1")
    code, err = _phase(capsys, tmp_path, *ten, "--work-budget", "1")
    assert code == 2 and _estimate(err) == pytest.approx(10 * one, rel=0.05)
    code, err = _phase(capsys, tmp_path, *ten, "--reps", "3", "--work-budget", "1")
    assert _estimate(err) == pytest.approx(30 * one, rel=0.05)
    # a budget of two runs: one cell fits, the ten cells (five times the budget) do not
    budget = f"{2 * one:.6g}"
    seen = []
    monkeypatch.setattr(PH, "run_sweep", lambda *a, **k: seen.append(1) or 1 / 0)
    with pytest.raises(ZeroDivisionError):  # past the budget: the sweep was reached
        main(["phase", *grid, *PHASE_SETS, "--out", str(tmp_path / "a"), "--quiet"])
    code, err = _phase(capsys, tmp_path, *ten, "--work-budget", budget)
    assert code == 2 and one_line(err) and "--work-budget" in err and len(seen) == 1, err


def test_a_diagram_within_its_budget_runs(capsys, tmp_path):
    code, err = _phase(capsys, tmp_path, "--x", "u_norm=1,2", "--y", "d=40", "--reps", "2")
    assert code == 0 and "note" not in err, err
    code, err = _phase(capsys, tmp_path, "--x", "u_norm=1,2", "--y", "d=40", "--set", "seed=5")
    assert code == 0 and "seed=5 is not read" in err, err  # never silently ignored


def test_the_preset_fits_the_default_budget():
    p = PH.PRESETS["kou2023"]
    base = Config.from_dict({**Config().to_dict(), **p["base"]})
    PH._check_budget(base, PH.parse_axis(p["x"]), PH.parse_axis(p["y"]), p["reps"], 2)


# ----------------------------------------------------------------------
# phase: the axes

DOWNSTREAM = [
    "alpha",
    "n_down",
    "m_down",
    "steps_down",
    "v_down_norm",
    "v_cos",
    "sigma_p_down",
    "flip_down",
    "eta_down",
    "weight_decay",
    "rescale_inherited",
]


def test_seed_is_not_an_axis(capsys, tmp_path):
    with pytest.raises(UsageError, match="--reps"):
        PH.parse_axis("seed=1,2,3")
    code, err = _phase(capsys, tmp_path, "--x", "seed=0:9:1", "--y", "d=40")
    assert code == 2 and one_line(err) and "seed" in err and "--reps" in err, err
    with pytest.raises(UsageError, match="seed"):
        PH.run_phase(
            Config(**PHASE_BASE), PH.Axis("seed", (1, 2)), PH.Axis("d", (40,)), 1, tmp_path
        )


@settings(max_examples=30)
@given(st.sampled_from(DOWNSTREAM + ["snapshots"]), st.sampled_from(["--x", "--y"]))
def test_fields_that_change_no_run_are_not_axes(field, option):
    with pytest.raises(UsageError, match=rf"{option}: '{field}' changes only"):
        PH.parse_axis(f"{field}=1,2", option)


INTEGERS = ("d", "m", "n_up", "n", "steps_up", "n_test")


@pytest.mark.parametrize("field", list(PH.SINGLE_TASK_FIELDS) + ["n", "sigma_p", "flip"])
def test_every_field_of_the_single_task_is_an_axis(field):
    spec = "2,3" if field in INTEGERS else "0.25,0.5"
    assert PH.parse_axis(f"{field}={spec}").field == field


@pytest.mark.parametrize(
    "text,what",
    [
        ("u_norm=0:1e29:1", "more than 10000"),
        ("u_norm=0:1e300:1e-300", "more than 10000"),
        ("u_norm=0:1:1e-400", "out of range"),
        ("d=1e400", "out of range"),
        ("d=3,1e400", "out of range"),
        ("u_norm=0:1e999999999:1", "out of range"),
        (f"d={BIG}", "out of range"),
        ("u_norm=0:" + "9" * 5000 + ":1", "out of range"),
    ],
)
def test_ranges_are_counted_without_blow_ups(text, what):
    field = text.split("=")[0]
    with hang_guard(20), pytest.raises(UsageError, match=what) as info:
        PH.parse_axis(text, "--x")
    assert f"--x {field}" in str(info.value) and len(str(info.value)) < 400


def test_a_huge_axis_value_on_the_command_line_names_the_field(capsys, tmp_path):
    code, err = _phase(capsys, tmp_path, "--x", "u_norm=0:1:1", "--y", "d=1e400")
    assert code == 2 and one_line(err) and "--y d" in err, err
    code, err = _phase(capsys, tmp_path, "--x", "u_norm=0:1e29:1", "--y", "d=40")
    assert code == 2 and one_line(err) and "--x u_norm" in err and "Decimal" not in err, err


decimals = st.decimals(allow_nan=False, allow_infinity=False, places=None).map(str)


@settings(max_examples=200)
@given(
    st.one_of(decimals, st.sampled_from(["0", "1e29", "1e-29", "1e308", "1e-307", "9.9"])),
    st.one_of(decimals, st.sampled_from(["0", "1e29", "1", "1e308", "10000", "9999.5"])),
    st.one_of(decimals, st.sampled_from(["1", "0.1", "1e-300", "1e29", "3"])),
)
def test_any_range_is_counted_exactly_or_refused(start, stop, step):
    try:
        axis = PH.parse_axis(f"u_norm={start}:{stop}:{step}")
    except UsageError:
        return
    a, b, h = Fraction(start), Fraction(stop), Fraction(step)
    count = int((b - a) / h) + 1  # exact: the number of grid points from START to STOP
    assert len(axis) == count <= PH.MAX_VALUES
    assert axis.values[0] == float(a) and axis.values[-1] == float(a + (count - 1) * h)


# ----------------------------------------------------------------------
# validate: every claim before the first one starts


def test_validate_under_a_small_budget_is_one_line_and_exit_2(capsys, tmp_path):
    for option, value in (("--work-budget", "1"), ("--memory-budget", "1K")):
        out = tmp_path / option.strip("-")
        argv = ["validate", "mechanism", "--quick", "--out", str(out), option, value]
        code, err = call(argv, capsys)
        assert code == 2 and one_line(err) and "claim mechanism" in err and option in err, err
        assert not (out / "REPORT.md").exists() and not (out / "mechanism").exists()


def test_a_thin_claim_script_refuses_the_same_way(capsys, tmp_path, monkeypatch):
    from refimpl.cli.validate import claim_main

    monkeypatch.setenv(B.WORK_ENV, "1")
    code = claim_main("mechanism", ["--quick", "--out", str(tmp_path / "v")])
    err = capsys.readouterr().err
    assert code == 2 and one_line(err) and "claim mechanism" in err, err


def test_a_refusal_inside_a_claim_is_not_an_error_entry(capsys, tmp_path, monkeypatch):
    from refimpl.claims import mechanism

    def refuse(size, sweep):
        raise ResourceError("this run would need too much (--work-budget)")

    monkeypatch.setattr(mechanism, "measure", refuse)
    out = tmp_path / "v"
    code, err = call(["validate", "mechanism", "--quick", "--out", str(out)], capsys)
    last = err.strip().splitlines()[-1]  # after the progress line
    assert code == 2 and last.startswith("refimpl: error: this run") and "Traceback" not in err
    assert "ERROR" not in err and not (out / "REPORT.md").exists()


def test_the_default_work_budget_does_not_refuse_the_protocols(monkeypatch):
    from refimpl import claims
    from refimpl.lab.suite import check_budget

    monkeypatch.delenv(B.WORK_ENV, raising=False)
    monkeypatch.setenv(B.MEMORY_ENV, "1T")
    phase_single = claims.load("phase_single").PROTOCOL
    check_budget(phase_single, quick=False)  # about 1e14 at its caps: not checked
    monkeypatch.setenv(B.WORK_ENV, "1e13")  # a budget that is given applies
    with pytest.raises(ResourceError, match="claim phase_single .*--work-budget"):
        check_budget(phase_single, quick=False)


def test_a_claim_estimate_counts_configs_times_seeds():
    from refimpl.lab.claim import Size, size_estimate

    c1, c2 = tiny_config(), tiny_config(d=80)
    w1, w2 = B.run_estimate(c1)[1], B.run_estimate(c2)[1]
    _, work, runs = size_estimate(Size({"a": [c1, c2], "b": {"x": [c1]}}, 3))
    assert runs == 6 and work == pytest.approx(3 * (w1 + w2))  # c1 twice: one sweep item
    _, work, runs = size_estimate(Size({"a": [c1], "b": [c2]}, {"a": 2, "b": 5}))
    assert runs == 7 and work == pytest.approx(2 * w1 + 5 * w2)


# ----------------------------------------------------------------------
# realdata


def _images(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "img.npz"
    np.savez(path, images=rng.random((400, 8, 8)), labels=np.repeat(np.arange(10), 40))
    return path


def test_realdata_under_tiny_budgets_is_refused_before_any_run(capsys, tmp_path, monkeypatch):
    from refimpl.cli import realdata as R

    monkeypatch.setattr(R.C, "measure", lambda *a: pytest.fail("a run started"))
    path, out = _images(tmp_path), tmp_path / "out"
    for budgets in (["--work-budget", "1", "--memory-budget", "1K"], ["--work-budget", "1"]):
        argv = ["realdata", "--npz", str(path), "--quick", "--out", str(out), "--quiet"]
        code, err = call([*argv, *budgets], capsys)
        assert code == 2 and one_line(err) and "realdata" in err and budgets[-2] in err, err
        assert not out.exists()
    code, err = call(["realdata", "--npz", str(path), "--seeds", BIG, "--out", str(out)], capsys)
    assert code == 2 and one_line(err) and "--memory-budget" in err, err


# ----------------------------------------------------------------------
# crosscheck and decompose


def _file(tmp_path, differ=False, weights_only=False):
    config = tiny_config(steps_up=60, steps_down=60, snapshots=4)
    arrays = experiment_arrays(run_experiment(config))
    if differ:
        arrays["up/W"] = arrays["up/W"] * 1.01
        arrays["up/W"][0] = arrays["up/W"][0] / 1.01
    if weights_only:
        arrays = {k: v for k, v in arrays.items() if k.split("/")[-1] not in COEFFICIENT_KEYS}
    path = tmp_path / f"run{'-differ' * differ}{'-w' * weights_only}.npz"
    save(path, arrays)
    return path


def _replay_work(path, capsys):
    code, err = call(["crosscheck", str(path), "--work-budget", "1"], capsys)
    assert code == 2 and "replaying stages up, down, scratch" in err, err
    return _estimate(err)


def test_explain_mode_counts_only_where_it_runs(capsys, tmp_path):
    good, bad = _file(tmp_path), _file(tmp_path, differ=True)
    replays = _replay_work(good, capsys)
    budget = f"{1.5 * replays:.6g}"  # the replays fit; 16 explain replays of a stage do not
    code, err = call(["crosscheck", str(good), "--work-budget", budget], capsys)
    assert code == 0, err  # agrees: explain mode never runs, so it is not counted
    code, err = call(["crosscheck", str(bad), "--work-budget", budget], capsys)
    assert code == 2 and one_line(err) and "--no-explain" in err and "--work-budget" in err, err
    assert "explaining the difference in stage up" in err
    code, err = call(["crosscheck", str(bad), "--work-budget", budget, "--no-explain"], capsys)
    assert code == 1, err
    code, err = call(["crosscheck", str(bad), "--work-budget", f"{30 * replays:.6g}"], capsys)
    assert code == 1 and "Traceback" not in err, err


def test_decompose_over_the_budget_is_refused_before_writing(capsys, tmp_path):
    path = _file(tmp_path, weights_only=True)
    before = path.read_bytes()
    out = tmp_path / "new.npz"
    for option, value in (("--work-budget", "1"), ("--memory-budget", "1K")):
        code, err = call(["decompose", str(path), "--out", str(out), option, value], capsys)
        assert code == 2 and one_line(err) and option in err, err
        assert not out.exists() and path.read_bytes() == before
    code, err = call(["decompose", str(path), "--out", str(out)], capsys)
    assert code == 0 and out.exists(), err
