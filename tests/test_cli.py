"""The command line: ``python -m refimpl run`` with a tiny config writes
trajectory.npz and summary.json; ``plot`` draws a run; bad input gives exit
status 2 and exactly one line on stderr, never a traceback. In-process
(``main(argv)``), with one subprocess smoke test of ``python -m refimpl``."""

import json
import subprocess
import sys

import numpy as np
import pytest
from strategies import tiny_config

from refimpl.cli import main
from refimpl.cli.args import build_config
from refimpl.config import ConfigError
from refimpl.lab.figures import available
from refimpl.trajectory import load

TINY = tiny_config(
    steps_up=25, steps_down=20, snapshots=3, n_test=400, alpha=1 / 3, flip_down=0.2, seed=3
)
# the tiny config as --set arguments (every field set: the defaults may change)
TINY_SETS = [f"{k}={json.dumps(v)}" for k, v in TINY.to_dict().items()]


class Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def refimpl(capsys):
    """``refimpl(*args)``: run the command line in this process; returns its
    exit status and what it printed."""

    def call(*args):
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse's own usage errors
            code = exc.code
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return call


def subprocess_refimpl(*args):
    """Run ``python -m refimpl ARGS`` with the interpreter running the tests."""
    return subprocess.run(
        [sys.executable, "-m", "refimpl", *args], capture_output=True, text=True, timeout=120
    )


def sets(*pairs):
    out = []
    for pair in pairs:
        out += ["--set", pair]
    return out


@pytest.fixture(scope="module")
def main_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    proc = subprocess_refimpl("run", "--out", str(out), *sets(*TINY_SETS))
    return proc, out


def test_run_writes_trajectory_and_summary(main_run):
    proc, out = main_run
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert (out / "trajectory.npz").is_file() and (out / "summary.json").is_file()
    summary = json.loads((out / "summary.json").read_text())
    for name, flip in (
        ("transfer", TINY.flip_down),
        ("scratch", TINY.flip_down),
        ("upstream", TINY.flip_up),
    ):
        e = summary[name]
        for key in ("clean_error", "clean_error_se", "noisy_error"):
            assert isinstance(e[key], float), (name, key)
        assert 0.0 <= e["clean_error"] <= 1.0 and e["clean_error_se"] >= 0.0
        assert e["noisy_error"] == pytest.approx(flip + (1 - 2 * flip) * e["clean_error"])
    # the printed summary shows both errors of transfer and scratch
    assert "transfer" in proc.stdout and "scratch" in proc.stdout
    assert "trajectory.npz" in proc.stdout


def test_run_trajectory_is_the_requested_experiment(main_run):
    proc, out = main_run
    assert proc.returncode == 0, proc.stderr
    t = load(out / "trajectory.npz")
    assert t.config == TINY.to_dict()
    assert t.stages == ("up", "down", "scratch")
    assert t.get("up", "W").shape == (3, 2, TINY.m, TINY.d)
    assert t.get("down", "loss").shape == (TINY.steps_down + 1,)
    assert int(t["down/inherited"].sum(axis=1)[0]) == 1  # round(3 / 3)
    # the same seed through the Python API gives the same bits
    from refimpl.transfer import run_experiment

    exp = run_experiment(TINY)
    for s in ("up", "down", "scratch"):
        assert np.array_equal(t.get(s, "W"), exp.stages[s].W)
        assert np.array_equal(t.get(s, "gamma"), exp.stages[s].gamma)


def test_run_with_config_file_and_override(tmp_path, refimpl):
    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps(TINY.replace(steps_up=5, steps_down=4).to_dict()))
    out = tmp_path / "o"
    proc = refimpl("run", "--config", str(cfg), "--set", "alpha=0.67", "--quiet", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # --quiet: no progress
    config = json.loads((out / "summary.json").read_text())["config"]
    assert config["alpha"] == 0.67 and config["steps_up"] == 5 and config["d"] == TINY.d


def test_set_shorthands_override_both_tasks(tmp_path):
    """--set sigma_p=..., flip=..., n=... set both tasks (config.py docstring),
    also over the per-task values that the default config or a file gave."""
    cfg = tmp_path / "tiny.json"
    cfg.write_text(TINY.to_json())
    for config_file in (None, cfg):
        c = build_config(config_file, ["d=40", "sigma_p=2.5", "flip=0.3", "n=7"])
        assert (c.sigma_p_up, c.sigma_p_down) == (2.5, 2.5)
        assert (c.flip_up, c.flip_down) == (0.3, 0.3)
        assert (c.n_up, c.n_down) == (7, 7)
        # a per-task key on the command line wins over the shorthand, whatever the order
        c = build_config(config_file, ["sigma_p_down=4.0", "sigma_p=2.5"])
        assert (c.sigma_p_up, c.sigma_p_down) == (2.5, 4.0)
        c = build_config(config_file, ["sigma_p=2.5", "sigma_p_down=4.0"])
        assert (c.sigma_p_up, c.sigma_p_down) == (2.5, 4.0)


def test_config_file_is_validated_only_with_the_overrides(tmp_path):
    """A file that is invalid with the defaults (d=40 < default n_up) is fine
    once --set completes it: the layers are merged, then validated once."""
    cfg = tmp_path / "partial.json"
    cfg.write_text(json.dumps({"d": 40, "sigma_p": 2.0}))
    with pytest.raises(ConfigError, match="n_up"):
        build_config(cfg)
    c = build_config(cfg, ["n=7"])
    assert (c.d, c.n_up, c.n_down, c.sigma_p_up, c.sigma_p_down) == (40, 7, 7, 2.0, 2.0)


BAD = {
    "bad value": (sets(*TINY_SETS, "alpha=2"), "alpha"),
    "bad type": (sets(*TINY_SETS, "d=abc"), "d"),
    "non-finite": (sets(*TINY_SETS, "eta=NaN"), "eta"),
    "unknown key": (sets(*TINY_SETS, "alpah=0.5"), "alpah"),
    "no equals": (sets(*TINY_SETS, "alpha"), "KEY=VALUE"),
    "n too large": (sets(*TINY_SETS, "n_up=39"), "n_up"),
    "freeze with entry": (
        sets(*TINY_SETS, "freeze_inherited=true", "granularity=entry"),
        "freeze_inherited",
    ),
    "missing config file": (["--config", "/nonexistent/cfg.json"], "cannot read config file"),
    "unknown option": (["--bogus"], "unrecognized arguments"),
    "diverging step size": (sets(*TINY_SETS, "eta=1e308"), "diverged"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_exit_2_one_line(tmp_path, case, refimpl):
    args, needle = BAD[case]
    proc = refimpl("run", "--out", str(tmp_path / "o"), *args)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()  # nothing was written


@pytest.mark.parametrize(
    "content,needle",
    [
        ('{"alpha": 0.5,', "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"alpha": 0.5, "sigma_0": -1}', "sigma_0"),
    ],
)
def test_bad_config_file_exit_2_one_line(tmp_path, content, needle, refimpl):
    cfg = tmp_path / "c.json"
    cfg.write_text(content)
    proc = refimpl("run", "--config", str(cfg), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr


def test_no_subcommand_is_a_usage_error():
    proc = subprocess_refimpl()
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1
    assert "Traceback" not in proc.stderr


def test_out_is_an_existing_file(tmp_path, refimpl):
    """An output folder that cannot be created: exit 2, one line (after the
    run, so --quiet keeps progress lines out of stderr)."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = refimpl(
        "run", "--quiet", "--out", str(blocker), *sets(*TINY_SETS, "steps_up=3", "steps_down=2")
    )
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and str(blocker) in lines[0], proc.stderr
    assert blocker.read_text() == "x"


@pytest.mark.skipif(not available(), reason="matplotlib (the plot extra) is not installed")
def test_plot_draws_every_stage_of_a_run(main_run, tmp_path, refimpl):
    proc, out = main_run
    fig = tmp_path / "fig.png"
    res = refimpl("plot", str(out / "trajectory.npz"), "--out", str(fig))
    assert res.returncode == 0, res.stderr
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    one = tmp_path / "down.png"
    assert (
        refimpl(
            "plot", str(out / "trajectory.npz"), "--stage", "down", "--out", str(one)
        ).returncode
        == 0
    )
    from matplotlib.image import imread

    assert imread(fig).shape[1] > imread(one).shape[1]  # three columns against one


@pytest.mark.skipif(not available(), reason="matplotlib (the plot extra) is not installed")
def test_run_plot_writes_the_figure(tmp_path, refimpl):
    out = tmp_path / "o"
    res = refimpl(
        "run",
        "--quiet",
        "--plot",
        "--out",
        str(out),
        *sets(*TINY_SETS, "steps_up=4", "steps_down=3"),
    )
    assert res.returncode == 0, res.stderr
    assert (out / "run.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "args,needle", [(["/nonexistent/run.npz"], "run.npz"), (["--stage", "sideways"], "sideways")]
)
def test_plot_bad_input_exit_2_one_line(main_run, tmp_path, refimpl, args, needle):
    proc, out = main_run
    if args[0].startswith("--"):
        args = [str(out / "trajectory.npz"), *args]
    res = refimpl("plot", *args, "--out", str(tmp_path / "f.png"))
    assert res.returncode == 2
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and needle in lines[0], res.stderr


def test_plot_without_matplotlib_names_the_extra(main_run, tmp_path, refimpl, monkeypatch):
    import refimpl.cli.plot as plot_cli

    monkeypatch.setattr(plot_cli, "available", lambda: False)
    proc, out = main_run
    res = refimpl("plot", str(out / "trajectory.npz"), "--out", str(tmp_path / "f.png"))
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "refimpl[plot]" in res.stderr
    assert not (tmp_path / "f.png").exists()
