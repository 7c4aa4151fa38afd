"""Hostile outputs and files: an output
never replaces what is not a regular file and is checked before any work; a
figure's path is the path written; trajectory files with zero sizes, JSON
members beyond the config limits, a bias stored as b0 only, weights outside
the span of the data and paths that are devices give one clear line."""

import io
import json
import os
import socket
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import tiny_config

from refimpl.cli import main
from refimpl.errors import ResourceError, TrajectoryError, UsageError
from refimpl.files import atomic_write, check_output, write_json
from refimpl.lab.figures import available
from refimpl.trajectory import COEFFICIENT_KEYS, experiment_arrays, load, save

needs_matplotlib = pytest.mark.skipif(not available(), reason="matplotlib is not installed")


def run_cli(argv, capsys):
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def one_line(code, err):
    return code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.fixture(scope="module")
def arrays():
    """A small run's arrays in format 1 (all three stages, coefficients)."""
    from refimpl.transfer import run_experiment

    return experiment_arrays(run_experiment(tiny_config(steps_up=4, steps_down=4)))


@pytest.fixture
def run_file(tmp_path, arrays):
    path = tmp_path / "run.npz"
    save(path, arrays)
    return path


# ---------------------------------------------------------------------------
# outputs that are not regular files
# ---------------------------------------------------------------------------


def _node(tmp_path, kind):
    """A path of ``kind`` in tmp_path; devices through a link (the real node
    is never touched: without the check the link is what gets replaced)."""
    path = tmp_path / f"node-{kind}"
    if kind == "device":
        os.symlink("/dev/null", path)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        sock.close()
    else:
        path.mkdir()
    return path


def _intact(path, kind):
    if kind == "device":
        return os.path.islink(path) and os.readlink(path) == "/dev/null"
    if kind == "folder":
        return path.is_dir()
    return path.exists() and not path.is_file() and not path.is_dir()


KINDS = ["device", "fifo", "socket", "folder"]


@pytest.mark.parametrize("kind", KINDS)
def test_the_one_writer_never_replaces_a_node(tmp_path, kind):
    path = _node(tmp_path, kind)
    with pytest.raises(UsageError, match="not a regular file"):
        atomic_write(path, lambda fh: fh.write(b"x"))
    with pytest.raises(UsageError, match="--json"):
        check_output(path, "--json")
    assert _intact(path, kind)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".part")]


def test_a_regular_file_or_a_new_path_is_written(tmp_path):
    write_json(tmp_path / "a.json", {"a": 1})
    write_json(tmp_path / "a.json", {"a": 2})  # replaced: a regular file
    write_json(tmp_path / "new" / "b.json", [1])
    assert json.loads((tmp_path / "a.json").read_text()) == {"a": 2}
    assert json.loads((tmp_path / "new" / "b.json").read_text()) == [1]


def _must_not_run(*args, **kwargs):
    raise AssertionError("the work started before the output was checked")


@pytest.mark.parametrize("kind", KINDS)
def test_crosscheck_json_into_a_node_is_refused_before_the_comparison(
    tmp_path, run_file, kind, capsys, monkeypatch
):
    import refimpl.crosscheck as cc

    monkeypatch.setattr(cc, "crosscheck", _must_not_run)
    node = _node(tmp_path, kind)
    code, _, err = run_cli(["crosscheck", run_file, "--json", node], capsys)
    assert one_line(code, err) and "--json" in err and str(node) in err, err
    assert _intact(node, kind)


def test_crosscheck_json_into_an_unwritable_folder_is_refused_before_the_comparison(
    tmp_path, run_file, capsys, monkeypatch
):
    import refimpl.crosscheck as cc

    monkeypatch.setattr(cc, "crosscheck", _must_not_run)
    code, _, err = run_cli(["crosscheck", run_file, "--json", run_file / "r.json"], capsys)
    assert one_line(code, err) and "--json" in err and "not a folder" in err, err


@pytest.mark.parametrize("kind", KINDS)
def test_decompose_out_into_a_node_is_refused_before_work(
    tmp_path, run_file, kind, capsys, monkeypatch
):
    import refimpl.crosscheck as cc

    monkeypatch.setattr(cc, "load", _must_not_run)
    node = _node(tmp_path, kind)
    code, _, err = run_cli(["decompose", run_file, "--out", node], capsys)
    assert one_line(code, err) and "--out" in err, err
    assert _intact(node, kind)


@pytest.mark.parametrize("kind", KINDS)
def test_run_out_files_that_are_nodes_are_refused_before_work(tmp_path, kind, capsys, monkeypatch):
    import refimpl.cli.run as run_cli_module

    monkeypatch.setattr(run_cli_module, "run_job", _must_not_run)
    out = tmp_path / "out"
    out.mkdir()
    node = _node(out, kind)
    os.rename(node, out / "summary.json")
    code, _, err = run_cli(["run", "--out", out], capsys)
    assert one_line(code, err) and "summary.json" in err and "--out" in err, err
    assert _intact(out / "summary.json", kind)


@pytest.mark.parametrize("kind", ["device", "folder"])
def test_phase_files_that_are_nodes_are_refused_before_the_sweep(
    tmp_path, kind, capsys, monkeypatch
):
    from refimpl.lab import phase as PH

    monkeypatch.setattr(PH, "_grid", _must_not_run)
    out = tmp_path / "phase"
    out.mkdir()
    os.rename(_node(out, kind), out / "phase.png")
    code, _, err = run_cli(
        ["phase", "--x", "u_norm=1,2", "--y", "d=40,50", "--reps", "1", "--out", out, "--quiet"],
        capsys,
    )
    assert one_line(code, err) and "phase.png" in err, err
    assert _intact(out / "phase.png", kind)


# ---------------------------------------------------------------------------
# plot --out: the format, folders, the path printed is the path written
# ---------------------------------------------------------------------------


@needs_matplotlib
@pytest.mark.parametrize("name", ["x.npz", "x.txt", "x.", "x.png.gz"])
def test_plot_refuses_a_suffix_that_is_no_figure_format(tmp_path, run_file, name, capsys):
    code, _, err = run_cli(["plot", run_file, "--out", tmp_path / name], capsys)
    assert one_line(code, err) and "--out" in err and "not a figure format" in err, err
    assert not (tmp_path / name).exists()


@needs_matplotlib
@pytest.mark.parametrize("kind", KINDS)
def test_plot_refuses_a_folder_or_a_node_and_adds_no_suffix_to_it(tmp_path, run_file, kind, capsys):
    node = _node(tmp_path, kind)
    code, _, err = run_cli(["plot", run_file, "--out", node], capsys)
    assert one_line(code, err) and "--out" in err and "not a regular file" in err, err
    assert _intact(node, kind) and not os.path.lexists(f"{node}.png")


@needs_matplotlib
def test_plot_without_a_suffix_prints_the_path_it_writes(tmp_path, run_file, capsys):
    code, out, _ = run_cli(["plot", run_file, "--out", tmp_path / "fig"], capsys)
    written = tmp_path / "fig.png"
    assert code == 0 and out.strip() == f"wrote {written}"
    assert written.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not (tmp_path / "fig").exists()
    code, out, _ = run_cli(["plot", run_file, "--out", tmp_path / "fig.PDF"], capsys)
    assert code == 0 and out.strip() == f"wrote {tmp_path / 'fig.PDF'}"
    assert (tmp_path / "fig.PDF").read_bytes()[:5] == b"%PDF-"


@needs_matplotlib
@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="aZ.-_/ 9", min_size=0, max_size=10))
def test_a_figure_path_is_the_file_written_or_refused(name):
    from refimpl.lab.figures import figure_path

    base = "/tmp/refimpl-hostile-figure-names"  # never created: only checked
    try:
        path = figure_path(f"{base}/{name}", "--out")
    except UsageError as exc:
        assert "--out" in str(exc)
        return
    assert path in (f"{base}/{name}", f"{base}/{name}.png")
    file_name = os.path.basename(path)
    assert file_name.rfind(".") > 0  # a suffix, after some other character
    assert file_name.rsplit(".", 1)[1].lower() in {
        "avif", "eps", "gif", "jpeg", "jpg", "pdf", "pgf", "png", "ps", "raw", "rgba",
        "svg", "svgz", "tif", "tiff", "webp",
    }  # fmt: skip


# ---------------------------------------------------------------------------
# trajectory files: zero sizes, JSON members, devices, declared sizes
# ---------------------------------------------------------------------------

_AXES = {  # key -> the axis of n, m or d (None: no such axis), in stage order
    "n": {"X": 0, "y": 0, "y_clean": 0, "xi": 0, "rho_bar": 3, "rho_under": 3},
    "m": {"W0": 1, "trainable": 1, "W": 2, "gamma": 2, "rho_bar": 2, "rho_under": 2},
    "d": {"X": 2, "xi": 1, "signals": 1, "W0": 2, "W": 3},
}


def _zero(arrays, stage, dim):
    out = dict(arrays)
    for key, axis in _AXES[dim].items():
        a = out[f"{stage}/{key}"]
        out[f"{stage}/{key}"] = np.take(a, np.arange(0), axis=axis)
    if stage == "down" and dim == "m":
        out["down/inherited"] = out["down/inherited"][:, :0]
    return out


@settings(max_examples=12, deadline=None)
@given(st.sampled_from(["up", "down", "scratch"]), st.sampled_from(["n", "m", "d"]))
def test_zero_sizes_are_refused_in_one_line(tmp_path_factory, arrays, stage, dim):
    path = tmp_path_factory.mktemp("zero") / "z.npz"
    save(path, _zero(arrays, stage, dim))
    key = "W0" if dim == "m" else "X"
    with pytest.raises(TrajectoryError, match=f"{stage}/{key} has shape .*{dim} = 0"):
        load(path, require_coefficients=False)


def test_zero_sizes_on_the_command_line(tmp_path, arrays, capsys):
    for dim in "nmd":
        path = tmp_path / f"{dim}.npz"
        save(path, _zero(arrays, "up", dim))
        for argv in (["crosscheck", path], ["decompose", path, "--out", tmp_path / "o.npz"]):
            code, _, err = run_cli(argv, capsys)
            assert one_line(code, err) and f"{dim} = 0" in err, err


@settings(max_examples=20, deadline=None)
@given(
    st.sampled_from(["config_json", "provenance_json"]),
    st.one_of(
        st.integers(4400, 20000).map(lambda k: '{"d": ' + "7" * k + "}"),
        st.tuples(st.integers(2000, 50000), st.sampled_from(["[", '{"a":'])).map(
            lambda t: t[1] * t[0]
        ),
    ),
)
def test_json_members_read_with_the_limits_of_config_files(tmp_path_factory, arrays, key, text):
    path = tmp_path_factory.mktemp("json") / "j.npz"
    save(path, {**arrays, key: np.str_(text)})
    with pytest.raises(TrajectoryError) as info:
        load(path)
    msg = str(info.value)
    assert key in msg and ("too long" in msg or "nested too deeply" in msg), msg


def test_a_5000_digit_integer_and_deep_nesting_on_the_command_line(tmp_path, arrays, capsys):
    for name, text in (("long", '{"d": ' + "9" * 5000 + "}"), ("deep", "[" * 100000)):
        path = tmp_path / f"{name}.npz"
        save(path, {**arrays, "config_json": np.str_(text)})
        code, _, err = run_cli(["crosscheck", path], capsys)
        assert one_line(code, err) and "config_json" in err, err
        assert "RecursionError" not in err and "sys.set_int_max_str_digits" not in err


_GUARDED = (
    "import resource, sys\n"
    "resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))\n"
    "from refimpl.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


@pytest.mark.parametrize("kind", ["zero", "urandom", "fifo"])
def test_a_trajectory_path_that_is_a_device_or_a_fifo_is_named(tmp_path, kind):
    path = tmp_path / "run.npz"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        os.symlink(f"/dev/{kind}", path)
    # a subprocess: without the check, reading never ends (the timeout is a hang guard)
    proc = subprocess.run(
        [sys.executable, "-c", _GUARDED, "crosscheck", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert one_line(proc.returncode, proc.stderr), proc.stderr
    assert ("character device" if kind != "fifo" else "fifo") in proc.stderr
    assert "out of memory" not in proc.stderr


def test_the_declared_size_refusal_names_the_key(tmp_path):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f8", "fortran_order": False, "shape": (1000, 10**9)}
    )
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("up/W.npy", buf.getvalue())
        z.writestr("format_version.npy", _npy(np.int64(1)))
    with pytest.raises(ResourceError, match=r"'up/W': declared shape \(1000, 1000000000\)"):
        load(path)


def _npy(a):
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


# ---------------------------------------------------------------------------
# the bias stored as b0 only; decompose and the span of the data
# ---------------------------------------------------------------------------


def test_b0_without_b_is_not_compared_with_zeros(tmp_path, run_file, capsys):
    from refimpl.crosscheck import parse_convention
    from refimpl.crosscheck.variants import variant_arrays

    conv = parse_convention("filter_sum,bias")
    b0 = np.random.default_rng(1).uniform(-0.1, 0.1, (2, tiny_config().m))
    full = variant_arrays(load(run_file), conv, stages=["up"], b0={"up": b0})
    assert "up/b" in full
    path = tmp_path / "b0only.npz"
    save(path, {k: v for k, v in full.items() if k != "up/b"})
    code, out, _ = run_cli(["crosscheck", path, "--convention", "filter_sum,bias"], capsys)
    assert code == 0, out
    row = next(line for line in out.splitlines() if line.split()[:2] == ["up", "b"])
    assert "not compared" in row and "b not stored" in row
    assert next(line for line in out.splitlines() if line.split()[:2] == ["up", "W"]).endswith(
        "agree"
    )


def _weights_only(arrays, stage="up", W=None):
    out = {
        k: v
        for k, v in arrays.items()
        if not k.startswith(("down/", "scratch/")) and k.split("/")[-1] not in COEFFICIENT_KEYS
    }
    if W is not None:
        out[f"{stage}/W"] = W
    return out


def test_decompose_reports_weights_outside_the_span_of_the_data(tmp_path, arrays, capsys):
    rng = np.random.default_rng(0)
    W = arrays["up/W"] + rng.standard_normal(arrays["up/W"].shape)  # a random direction of R^d
    path = tmp_path / "off.npz"
    save(path, _weights_only(arrays, W=W))
    code, out, err = run_cli(["decompose", path, "--out", tmp_path / "d.npz"], capsys)
    assert code == 0 and "relative reconstruction error up" in out, out
    warning = [line for line in err.splitlines() if line.startswith("refimpl: warning: up:")]
    assert len(warning) == 1 and "not in the span" in warning[0], err
    residual = load(tmp_path / "d.npz").provenance["projection_residual"]["up"]
    assert 0.1 < residual < 10  # d = 40 directions, n + S = 14 of them spanned


def test_decompose_of_gd_weights_warns_nothing(tmp_path, arrays, capsys):
    path = tmp_path / "w.npz"
    save(path, _weights_only(arrays))
    code, out, err = run_cli(["decompose", path], capsys)
    assert code == 0 and "warning" not in err, err
    assert load(path).provenance["projection_residual"]["up"] < 1e-12
