"""``python -m refimpl phase`` and refimpl/lab/phase.py: the axes, the
preset, the boundary fit, the numbers against the 'single' sweep, batching,
workers and dask independence, resuming, the files, and bad input (one line,
exit status 2, before any work)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from refimpl.cli import main
from refimpl.config import Config
from refimpl.errors import ConfigError, UsageError
from refimpl.lab import phase as PH
from refimpl.lab.seeds import stream_salt
from refimpl.lab.sweep import run_sweep

BASE = Config(
    d=40,
    m=3,
    n_up=8,
    n_down=1,
    u_norm=1.0,
    v_up_norm=0.0,
    v_down_norm=0.0,
    flip_up=0.1,
    eta=0.2,
    sigma_0=0.05,
    steps_up=30,
    steps_down=0,
    n_test=400,
    snapshots=2,
)
SETS = [a for k, v in BASE.to_dict().items() for a in ("--set", f"{k}={json.dumps(v)}")]


@pytest.fixture
def refimpl(capsys):
    def call(*args):
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = exc.code
        out, err = capsys.readouterr()
        return code, out, err

    return call


# ----------------------------------------------------------------------
# axes and preset


def test_ranges_are_decimal_and_include_the_stop():
    x = PH.parse_axis("u_norm=0:9.9:0.1")
    assert len(x) == 100 and x.values[0] == 0.0 and x.values[-1] == 9.9
    assert x.values[3] == 0.3 and all(isinstance(v, float) for v in x.values)
    y = PH.parse_axis("d=100:1090:10")
    assert y.values == tuple(range(100, 1091, 10)) and all(type(v) is int for v in y.values)
    assert PH.parse_axis("d=100:105:10").values == (100,)
    assert PH.parse_axis("sigma_p=0.5,1,2").values == (0.5, 1.0, 2.0)
    assert PH.parse_axis(" n_up = 10, 20 ").values == (10, 20)


@pytest.mark.parametrize(
    "text",
    [
        "u_norm",
        "foo=1,2",
        "layout=1,2",
        "seed=",
        "u_norm=1:0:0.1",
        "u_norm=0:1:0",
        "u_norm=0:1",
        "u_norm=1,1",
        "u_norm=2,1",
        "u_norm=a,b",
        "u_norm=nan",
        "u_norm=inf,1",
        "d=1.5,2",
        "u_norm=0:1e9:1e-9",
        "u_norm=1,,2",
    ],
)
def test_bad_axes_are_usage_errors(text):
    with pytest.raises(UsageError):
        PH.parse_axis(text)


def test_kou2023_preset():
    p = PH.PRESETS["kou2023"]
    x, y = PH.parse_axis(p["x"]), PH.parse_axis(p["y"])
    assert (x.field, len(x), x.values[-1]) == ("u_norm", 100, 9.9)
    assert (y.field, len(y), y.values[0], y.values[-1]) == ("d", 100, 100, 1090)
    c = Config.from_dict({**Config().to_dict(), **p["base"]})
    assert (
        c.n_up,
        c.m,
        c.steps_up,
        c.eta,
        c.n_test,
        c.sigma_p_up,
        c.flip_up,
        c.v_up_norm,
        c.sigma_0,
        c.estimator,
        p["reps"],
    ) == (20, 10, 100, 0.1, 1000, 1.0, 0.1, 0.0, 0.01, "reduced", 10)


# ----------------------------------------------------------------------
# the boundary fit


def test_fit_recovers_a_known_boundary():
    mus, ds, n = np.linspace(0.2, 4.0, 40), np.arange(100, 1001, 50), 20
    K = n * mus[None, :] ** 4 / ds[:, None]
    clean = 0.45 / (1.0 + (K / 2.0) ** 2)  # crosses 0.2 at K = 2 * sqrt(1.25)
    fit = PH.fit_boundary(K, clean, 0.2)
    assert fit["C"] == pytest.approx(2.0 * np.sqrt(1.25), rel=0.05)
    assert fit["crossings"] >= len(ds) and fit["misclassified"] < 0.02
    none = PH.fit_boundary(K, np.full_like(K, 0.4), 0.2)
    assert none["crossings"] == 0 and np.isnan(none["C"])


# ----------------------------------------------------------------------
# the numbers


def test_cells_are_the_single_sweep_and_do_not_depend_on_batching():
    """A cell's repetitions equal run_sweep(measure="single") with the same
    salt (identical draws: equal errors for nearly every run), and a cell
    computed alone equals the same cell computed in its row, bit for bit."""
    xs, reps = [0.5, 1.5, 3.0], 3
    salt = stream_salt("t")
    row = PH.measure_phase_row(BASE, "u_norm", xs, reps, salt)
    sweep = run_sweep(
        [BASE.replace(u_norm=u) for u in xs],
        measure="single",
        replicates=reps,
        salt="t",
        progress=False,
    )
    ref = sweep.values("err").ravel()
    assert np.sum(np.array(row["err"]) == ref) >= len(ref) - 1
    assert np.allclose(row["err"], ref, atol=0.02)
    assert row["seed"] == sweep.seeds.ravel().tolist()
    alone = PH.measure_phase_row(BASE.replace(u_norm=1.5), "u_norm", [1.5], reps, salt)
    for key in ("err", "noisy", "loss", "steps", "seed"):
        assert list(alone[key]) == list(row[key][reps : 2 * reps])


def test_sample_estimator_goes_through_measure_single():
    c = BASE.replace(estimator="sample", n_test=200)
    row = PH.measure_phase_row(c, "u_norm", [1.0, 2.0], 2, "s")
    sweep = run_sweep(
        [c.replace(u_norm=u) for u in (1.0, 2.0)],
        measure="single",
        replicates=2,
        salt="s",
        progress=False,
    )
    assert list(row["err"]) == sweep.values("err").ravel().tolist()


def _grid_args(out, y="d=30,40", x="u_norm=0.5,2,4", reps="2"):
    return ["phase", "--x", x, "--y", y, "--reps", reps, *SETS, "--out", str(out), "--quiet"]


def test_command_writes_the_diagram_and_resumes(refimpl, tmp_path):
    out = tmp_path / "ph"
    code, stdout, err = refimpl(*_grid_args(out, y="d=30"))
    assert code == 0, err
    code, stdout, err = refimpl(*_grid_args(out))  # the row d=30 is reused
    assert code == 0, err
    assert "rows computed 1, cached 1" in stdout
    a = np.load(out / "phase.npz")
    assert str(a["x_field"]) == "u_norm" and str(a["y_field"]) == "d"
    assert a["x"].tolist() == [0.5, 2.0, 4.0] and a["y"].tolist() == [30, 40]
    for key in ("clean_mean", "clean_se", "noisy_mean", "noisy_se", "indicator"):
        assert a[key].shape == (2, 3)
    assert a["clean"].shape == a["seeds"].shape == (2, 3, 2)
    assert np.allclose(a["clean_mean"], a["clean"].mean(axis=2))
    assert np.allclose(a["clean_se"], a["clean"].std(axis=2, ddof=1) / np.sqrt(2))
    assert np.allclose(a["noisy_mean"], 0.1 + 0.8 * a["clean_mean"])
    assert np.allclose(a["indicator"], 8 * a["x"][None, :] ** 4 / a["y"][:, None])
    rows = (out / "phase.csv").read_text().splitlines()
    assert rows[0].startswith("u_norm,d,kou_indicator,clean_error") and len(rows) == 7
    summary = json.loads((out / "phase.json").read_text())
    assert summary["runs"] == 12 and summary["items_cached"] == 1
    # all cached: the same numbers again
    code, stdout, _ = refimpl(*_grid_args(tmp_path / "ph"))
    assert "rows computed 0, cached 2" in stdout
    assert np.array_equal(np.load(out / "phase.npz")["clean"], a["clean"])


def test_two_workers_give_the_same_numbers(tmp_path):
    x, y = PH.parse_axis("u_norm=0.5,2,4"), PH.parse_axis("d=30,40,50")
    one = PH.run_phase(BASE, x, y, 2, tmp_path / "a", jobs=1, progress=False, plot=False)
    two = PH.run_phase(BASE, x, y, 2, tmp_path / "b", jobs=2, progress=False, plot=False)
    assert one["items_computed"] == two["items_computed"] == 3
    a, b = np.load(tmp_path / "a" / "phase.npz"), np.load(tmp_path / "b" / "phase.npz")
    for key in ("clean", "noisy", "final_loss", "steps", "seeds"):
        assert np.array_equal(a[key], b[key])


@pytest.mark.slow
def test_a_dask_cluster_gives_the_same_numbers(tmp_path):
    distributed = pytest.importorskip("distributed")
    x, y = PH.parse_axis("u_norm=0.5,2"), PH.parse_axis("d=30,40")
    local = PH.run_phase(BASE, x, y, 2, tmp_path / "a", progress=False, plot=False)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        remote = PH.run_phase(
            BASE,
            x,
            y,
            2,
            tmp_path / "b",
            progress=False,
            plot=False,
            scheduler=cluster.scheduler_address,
        )
    assert remote["items_computed"] == 2 and local["boundary"] == remote["boundary"]
    a, b = np.load(tmp_path / "a" / "phase.npz"), np.load(tmp_path / "b" / "phase.npz")
    assert np.array_equal(a["clean"], b["clean"])


@pytest.mark.slow
def test_a_killed_run_resumes_with_its_finished_rows(tmp_path):
    out = tmp_path / "ph"
    args = _grid_args(out, y="d=30:200:10", x="u_norm=0.5:4:0.5", reps="10")
    proc = subprocess.Popen(
        [sys.executable, "-m", "refimpl", *args],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )

    def files():
        return list(Path(out / ".sweep-cache").glob("*/*.json"))

    deadline = time.monotonic() + 120
    try:
        while len(files()) < 2:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done = len(files())
    assert 2 <= done < 18
    code = main(args)
    assert code == 0
    assert json.loads((out / "phase.json").read_text())["items_cached"] == done


# ----------------------------------------------------------------------
# bad input: one line, exit status 2, nothing computed


@pytest.mark.parametrize(
    "args,what",
    [
        (["--x", "u_norm=0.5,1"], "needs --x"),
        (["--x", "foo=1", "--y", "d=30"], "not a config field"),
        (["--x", "u_norm=1,2", "--y", "u_norm=3,4"], "different fields"),
        (["--x", "n=10,20", "--y", "n_up=10"], "different fields"),
        (["--x", "u_norm=1,2", "--y", "d=30,20"], "increasing"),
        (["--x", "u_norm=1,2", "--y", "d=30", "--set", "n_up=40"], "cell u_norm=1.0, d=30"),
        (["--x", "u_norm=1,2", "--y", "d=30", "--level", "1.5"], "(0, 1)"),
        (["--x", "u_norm=1,2", "--y", "d=30", "--reps", "0"], "positive integer"),
        (["--preset", "nope"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(refimpl, tmp_path, args, what):
    code, _, err = refimpl("phase", *args, "--out", str(tmp_path / "o"), "--quiet")
    assert code == 2 and what in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


def test_an_unwritable_out_is_refused_before_any_work(refimpl, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = refimpl(*_grid_args(blocker))
    assert code == 2 and "--out" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / ".sweep-cache").exists()


def test_run_phase_refuses_bad_arguments(tmp_path):
    x = PH.parse_axis("u_norm=1,2")
    with pytest.raises(UsageError):
        PH.run_phase(BASE, x, x, 2, tmp_path)
    with pytest.raises(ConfigError):
        PH.run_phase(BASE.replace(n_up=30), x, PH.parse_axis("d=30"), 2, tmp_path)
