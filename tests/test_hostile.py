"""Hostile input: whatever a user or a crafted file gives, the library raises
one of its own errors (RefimplError) and the command line prints one line and
exits 2: no traceback, no hang, no silent wrong result, and no work or memory
beyond the budget before that is known."""

import io
import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import tiny_config

from refimpl.cli import main
from refimpl.config import Config, parse_assignment
from refimpl.errors import ConfigError, RefimplError, ResourceError, TrajectoryError
from refimpl.trajectory import load

FIELDS = [f for f in Config.__dataclass_fields__]

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


def exit_and_err(argv, capsys):
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


@settings(max_examples=150)
@given(
    st.dictionaries(st.sampled_from(FIELDS + ["sigma_p", "flip", "n", "bogus"]), values, max_size=4)
)
def test_any_config_dict_is_a_config_or_a_config_error(changes):
    base = tiny_config().to_dict()
    try:
        Config.from_dict({**base, **changes})
    except ConfigError:
        pass


@settings(max_examples=150)
@given(st.text(max_size=40))
def test_any_set_argument_parses_or_is_a_config_error(text):
    try:
        key, value = parse_assignment(text)
    except ConfigError:
        return
    try:
        Config.from_dict({**tiny_config().to_dict(), key: value})
    except ConfigError:
        pass


@pytest.mark.parametrize(
    "sets, needle",
    [
        (["d=10000000"], "memory"),
        (["m=1000000"], "memory"),
        (["steps_up=1000000000"], "multiply-adds"),
        (["steps_up=4611686018427387904"], "memory"),
        (["d=" + "9" * 5000], "too long"),
        (["alpha=" + "[" * 100000], "nested too deeply"),
        (["alpha=NaN"], "not a JSON number"),
    ],
)
def test_sizes_and_values_refused_before_work(sets, needle, tmp_path, capsys):
    argv = ["run", "--quiet", "--out", str(tmp_path / "o")]
    for s in sets:
        argv += ["--set", s]
    start = time.monotonic()
    code, err = exit_and_err(argv, capsys)
    assert code == 2 and len(err.splitlines()) == 1 and needle in err, err
    assert time.monotonic() - start < 10  # refused at once, not after the work
    assert not (tmp_path / "o").exists()


def test_budget_can_be_raised_or_lowered(tmp_path, capsys):
    argv = ["run", "--quiet", "--out", str(tmp_path / "o"), "--memory-budget", "1K"]
    argv += [f"--set={k}={json.dumps(v)}" for k, v in tiny_config().to_dict().items()]
    code, err = exit_and_err(argv, capsys)
    assert code == 2 and "budget of 1 KiB" in err
    assert "REFIMPL_MEMORY_BUDGET" not in os.environ  # the option held for that call only
    code, err = exit_and_err([*argv[:4], "--memory-budget", "lots", *argv[6:]], capsys)
    assert code == 2 and "cannot read the size" in err


@pytest.mark.parametrize(
    "content, needle",
    [
        ('{"alpha": 0.5, "alpha": 0.6}', "duplicate key 'alpha'"),
        ("[" * 100000, "nested too deeply"),
        ('{"d": ' + "9" * 5000 + "}", "too long"),
        ('{"alpha": Infinity}', "not a JSON number"),
    ],
)
def test_hostile_config_files(content, needle, tmp_path, capsys):
    cfg = tmp_path / "c.json"
    cfg.write_text(content)
    code, err = exit_and_err(["run", "--config", str(cfg), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and needle in err, err


def test_tiny_noise_scale_finishes_and_reads_undefined(tmp_path, capsys):
    argv = ["run", "--quiet", "--out", str(tmp_path / "o")]
    cfg = tiny_config(steps_up=3, steps_down=3).to_dict()
    cfg.update(sigma_p_up=1e-300, sigma_p_down=1e-300)
    argv += [f"--set={k}={json.dumps(v)}" for k, v in cfg.items()]
    code, err = exit_and_err(argv, capsys)
    capsys.readouterr()
    assert (tmp_path / "o" / "trajectory.npz").is_file()
    assert code == 0 and "Traceback" not in err, err
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["theory"]["up"]["kou_indicator"] is None


# ----------------------------------------------------------------------
# crafted files
def _with_magic(header):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue()


def _zip(path, members):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)


def test_a_member_that_declares_a_huge_shape_is_refused_at_once(tmp_path, capsys):
    bad = tmp_path / "huge.npz"
    _zip(
        bad,
        {
            "format_version.npy": _with_magic(
                {"descr": "<f8", "fortran_order": False, "shape": (10**12,)}
            )
            + b"\0" * 16
        },
    )
    start = time.monotonic()
    with pytest.raises(ResourceError, match="memory"):
        load(bad)
    code, err = exit_and_err(["crosscheck", str(bad)], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert time.monotonic() - start < 5


def test_object_arrays_and_npy_files_and_folders_are_named(tmp_path):
    obj = tmp_path / "obj.npz"
    np.savez(obj, format_version=np.array([{"a": 1}], dtype=object))
    with pytest.raises(TrajectoryError, match="format_version: holds Python objects"):
        load(obj)
    npy = tmp_path / "a.npy"
    np.save(npy, np.zeros(3))
    with pytest.raises(TrajectoryError, match="not a readable .npz"):
        load(npy)
    with pytest.raises(TrajectoryError, match="is a folder"):
        load(tmp_path)


def _good_file(tmp_path, **extra):
    from refimpl.trajectory import save
    from refimpl.transfer import run_experiment

    exp = run_experiment(tiny_config(steps_up=4, steps_down=4))
    from refimpl.trajectory import experiment_arrays

    arrays = experiment_arrays(exp)
    arrays.update(extra)
    path = tmp_path / "run.npz"
    save(path, arrays)
    return path, arrays


def test_unused_keys_are_not_read(tmp_path):
    path, _ = _good_file(tmp_path, extra_unused_key=np.zeros(20_000_000))  # 160 MB, compressed
    tracemalloc.start()
    load(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 40e6, peak


def test_unsigned_steps_that_wrap_are_refused(tmp_path):
    path, arrays = _good_file(tmp_path)
    arrays = dict(arrays)
    steps = arrays["up/steps"].astype(np.uint64)
    arrays["up/steps"] = steps[::-1].copy()
    from refimpl.trajectory import save

    save(path, arrays)
    with pytest.raises(TrajectoryError, match="up/steps"):
        load(path)


def test_a_replay_beyond_the_work_budget_is_refused_before_it_starts(tmp_path, capsys, monkeypatch):
    path, arrays = _good_file(tmp_path)
    monkeypatch.setenv("REFIMPL_WORK_BUDGET", "1e6")
    start = time.monotonic()
    code, err = exit_and_err(["crosscheck", str(path)], capsys)
    assert code == 2 and "multiply-adds" in err and len(err.splitlines()) == 1, err
    assert time.monotonic() - start < 5


@settings(max_examples=40, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "format_version",
                "config_json",
                "provenance_json",
                "up/X",
                "up/y",
                "up/W0",
                "up/steps",
                "up/loss",
                "up/W",
                "junk",
            ]
        ),
        st.tuples(
            st.sampled_from(["<f8", "<i8", "|b1", "<u8", "<f4", "<U3"]),
            st.lists(st.integers(0, 5), max_size=3),
            st.integers(0, 64),
        ),
        max_size=6,
    )
)
def test_random_crafted_files_give_one_clear_error(tmp_path_factory, members):
    path = tmp_path_factory.mktemp("crafted") / "f.npz"
    files = {}
    for key, (descr, shape, nbytes) in members.items():
        header = {"descr": descr, "fortran_order": False, "shape": tuple(shape)}
        files[f"{key}.npy"] = _with_magic(header) + os.urandom(nbytes)
    _zip(path, files)
    try:
        load(path, require_coefficients=False)
    except RefimplError:
        pass


@pytest.mark.slow
def test_ctrl_c_while_workers_start_is_one_line_and_leaves_no_worker(tmp_path):
    # 0.5 s: still importing; 1.2 s: string execs of numba and dataclasses; 2 s and
    # 3 s: the workers are importing. Full size, so the run cannot end before.
    for delay in (0.5, 1.2, 2.0, 3.0):
        p = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "refimpl",
                "validate",
                "gain_shared",
                "--jobs",
                "2",
                "--out",
                str(tmp_path / "v"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            time.sleep(delay)
            os.killpg(p.pid, signal.SIGINT)
            _, err = p.communicate(timeout=120)
        finally:  # a lost interrupt must not leave a full-size run
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
        err = err.decode()
        assert p.returncode == 130 and "Traceback" not in err, err
        assert err.strip().splitlines()[-1] == "refimpl: interrupted"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            left = subprocess.run(
                ["pgrep", "-g", str(p.pid)], capture_output=True, text=True
            ).stdout.split()
            if not left:
                break
            time.sleep(0.5)
        assert not left, f"worker processes left: {left}"


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="POSIX signal masks")
def test_workers_started_while_sweeping_never_see_ctrl_c_but_this_process_does():
    # in a process of one thread (no BLAS threads), so only the relay can pass
    # the blocked SIGINT on; the loop polls as joblib does while it waits
    # SIGINT handled as in a terminal even when this test runs in a background
    # job, whose shell starts it with SIGINT ignored (the child would inherit that)
    script = """if True:
        import os, signal, subprocess, sys, time
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from refimpl.lab.sweep import _interrupts_for_this_process_only
        probe = [sys.executable, "-c",
                 "import signal; print(signal.SIGINT in signal.pthread_sigmask(0, []))"]
        def child_blocks():
            return subprocess.run(probe, capture_output=True, text=True).stdout.strip()
        print("before", child_blocks())
        start = time.monotonic()
        try:
            with _interrupts_for_this_process_only():
                print("inside", child_blocks())
                os.kill(os.getpid(), signal.SIGINT)
                while time.monotonic() - start < 10:
                    time.sleep(0.01)
        except KeyboardInterrupt:
            print("interrupted after", round(time.monotonic() - start, 1))
        print("after", SIGNAL_IN_MASK)
    """.replace("SIGNAL_IN_MASK", "signal.SIGINT in signal.pthread_sigmask(0, [])")
    env = {
        **os.environ,
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    ).stdout.split("\n")
    assert out[0] == "before False" and out[1] == "inside True", out
    assert out[2].startswith("interrupted after") and float(out[2].split()[-1]) < 5, out
    assert out[3] == "after False", out


def run_dash_m_refimpl_with_main(tmp_path, main_source):
    """``python -m`` on a module that replaces ``refimpl.cli.main`` by
    ``main_source`` and then runs refimpl's ``__main__``, as ``-m refimpl`` does."""
    (tmp_path / "patched_refimpl.py").write_text(
        "import os, runpy, signal, threading, time, refimpl.cli\n"
        + main_source
        + "refimpl.cli.main = main\n"
        "runpy.run_module('refimpl', run_name='__main__')\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    return subprocess.run(
        [sys.executable, "-m", "patched_refimpl"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
        timeout=60,
    )


def test_ctrl_c_inside_string_exec_still_exits_130_under_dash_m(tmp_path):
    # CPython marks a KeyboardInterrupt that ends a string exec as unhandled even
    # when caught, and `python -m` then exits by SIGINT (-2) instead of 130
    p = run_dash_m_refimpl_with_main(
        tmp_path, "def main(argv=None):\n    exec('raise KeyboardInterrupt')\n"
    )
    assert p.returncode == 130 and p.stderr.strip() == "refimpl: interrupted", p


def test_ctrl_c_while_the_interpreter_shuts_down_is_ignored(tmp_path):
    # the command has finished (status 0) and a thread is still being joined at
    # exit, as joblib's are, when SIGINT arrives: no traceback, status kept
    p = run_dash_m_refimpl_with_main(
        tmp_path,
        "def late():\n"
        "    time.sleep(0.5)\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(0.5)\n"
        "def main(argv=None):\n"
        "    threading.Thread(target=late).start()\n"
        "    return 0\n",
    )
    assert p.returncode == 0 and p.stderr == "", p
