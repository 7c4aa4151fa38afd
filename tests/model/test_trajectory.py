"""Trajectory files, format version 1 (README, "Trajectory file format"): round trip of a small
experiment, every documented key with its shape, and corrupt files (missing
key, wrong version, wrong shape, truncated bytes) raising TrajectoryError
that names what is wrong."""

import json
import os

import numpy as np
import pytest
from strategies import tiny_config

from refimpl.data import Task
from refimpl.decomposition import reconstruction_error
from refimpl.errors import PatchRoleError
from refimpl.files import atomic_write
from refimpl.train import train_stage
from refimpl.trajectory import (
    OPTIONAL_KEYS,
    StageView,
    TrajectoryError,
    experiment_arrays,
    load,
    save,
    stage_arrays,
)
from refimpl.transfer import run_experiment

STAGES = ("up", "down", "scratch")
# the per-stage keys as the README documents them
DOC_STAGE_KEYS = (
    "X",
    "y",
    "y_clean",
    "xi",
    "signals",
    "W0",
    "eta",
    "weight_decay",
    "trainable",
    "steps",
    "W",
    "gamma",
    "rho_bar",
    "rho_under",
    "loss",
)
DOC_KEYS = (
    ["format_version", "config_json", "provenance_json"]
    + [f"{s}/{k}" for s in STAGES for k in DOC_STAGE_KEYS]
    + ["down/inherited"]
)

CONFIGS = {
    "joint_frozen_wider": dict(alpha=0.4, m_down=5, freeze_inherited=True, weight_decay=0.01),
    "split_entry": dict(layout="split", alpha=0.5, granularity="entry", steps_down=7),
}


@pytest.fixture(scope="module", params=list(CONFIGS))
def saved(request, tmp_path_factory):
    config = tiny_config(**CONFIGS[request.param])
    exp = run_experiment(config)
    path = tmp_path_factory.mktemp(request.param) / "trajectory.npz"
    save(path, exp)
    return exp, path


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A saved file and its raw arrays, for building corrupt variants."""
    exp = run_experiment(tiny_config(alpha=2 / 3))
    path = tmp_path_factory.mktemp("good") / "trajectory.npz"
    save(path, exp)
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return path, arrays


def test_documented_keys_and_shapes(saved):
    """Read with plain numpy (allow_pickle=False), independently of load()."""
    exp, path = saved
    c = exp.config
    with np.load(path, allow_pickle=False) as npz:
        a = {k: npz[k] for k in npz.files}
    assert set(a) == set(DOC_KEYS) | {"down/inherited_from"}  # the optional key refimpl writes
    assert a["format_version"].shape == () and int(a["format_version"]) == 1
    assert json.loads(str(a["config_json"])) == c.to_dict()
    prov = json.loads(str(a["provenance_json"]))
    import numba

    assert prov["package"] == "refimpl" and prov["seed"] == c.seed
    assert prov["numpy"] == np.__version__ and prov["numba"] == numba.__version__
    d, S = c.d, c.n_signals
    P = S + 1
    for s in STAGES:
        n = c.n_up if s == "up" else c.n_down
        m = c.m if s == "up" else c.m2
        T = c.steps_up if s == "up" else c.steps_down
        steps = a[f"{s}/steps"]
        K = steps.shape[0]
        assert steps.ndim == 1 and steps[0] == 0 and steps[-1] == T
        assert np.issubdtype(steps.dtype, np.integer) and np.all(np.diff(steps) > 0)
        assert K == min(c.snapshots, T + 1)
        expected = {
            "X": (n, P, d),
            "y": (n,),
            "y_clean": (n,),
            "xi": (n, d),
            "signals": (S, d),
            "W0": (2, m, d),
            "eta": (),
            "weight_decay": (),
            "trainable": (2, m),
            "W": (K, 2, m, d),
            "gamma": (K, 2, m, S),
            "rho_bar": (K, 2, m, n),
            "rho_under": (K, 2, m, n),
            "loss": (T + 1,),
        }
        for key, shape in expected.items():
            assert a[f"{s}/{key}"].shape == shape, (s, key)
            if key != "trainable":
                assert a[f"{s}/{key}"].dtype == np.float64, (s, key)
        assert a[f"{s}/trainable"].dtype == np.bool_
        assert set(np.unique(a[f"{s}/y"])) <= {-1.0, 1.0}
        # the saved arrays are the run's arrays
        stage = exp.stages[s]
        for key in ("W0", "W", "gamma", "rho_bar", "rho_under", "loss", "steps", "trainable"):
            assert np.array_equal(a[f"{s}/{key}"], getattr(stage, key)), (s, key)
        for key in ("X", "y", "y_clean", "xi", "signals"):
            assert np.array_equal(a[f"{s}/{key}"], getattr(stage.task, key)), (s, key)
        assert float(a[f"{s}/eta"]) == c.eta
    wd = a["down/weight_decay"], a["up/weight_decay"]
    assert (float(wd[0]), float(wd[1])) == (c.weight_decay, c.weight_decay_up)
    inh = a["down/inherited"]
    assert inh.dtype == np.bool_
    assert inh.shape == ((2, c.m2, d) if c.granularity == "entry" else (2, c.m2))
    assert np.array_equal(inh, exp.inherited)
    src = a["down/inherited_from"]
    assert src.shape == (2, c.m2) and np.issubdtype(src.dtype, np.integer)
    assert np.array_equal(src >= 0, inh.any(axis=2) if inh.ndim == 3 else inh)


def test_load_round_trip(saved):
    exp, path = saved
    t = load(path)
    assert t.stages == STAGES
    assert t.config == exp.config.to_dict()
    assert t.provenance["seed"] == exp.config.seed
    assert t.has_coefficients == {s: True for s in STAGES}
    for s in STAGES:
        stage, back = exp.stages[s], t.to_stage(s)
        for key in ("W0", "W", "gamma", "rho_bar", "rho_under", "loss", "steps", "trainable"):
            assert np.array_equal(getattr(back, key), getattr(stage, key)), (s, key)
        for key in ("X", "y", "y_clean", "xi", "signals"):
            assert np.array_equal(getattr(t.task(s), key), getattr(stage.task, key))
        assert back.eta == stage.eta and back.weight_decay == stage.weight_decay
        assert reconstruction_error(back) == reconstruction_error(stage) < 1e-10
    assert np.array_equal(t["down/inherited"], exp.inherited)
    assert np.array_equal(t.get("up", "W"), exp.stages["up"].W)


def test_save_from_arrays_dict(tmp_path, good):
    path, arrays = good
    other = tmp_path / "copy.npz"
    save(other, dict(arrays))
    t = load(other)
    for key, value in arrays.items():
        assert np.array_equal(t[key], value), key


def write(tmp_path, arrays, name="bad.npz"):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("key", DOC_KEYS)
def test_missing_key_named(tmp_path, good, key):
    _, arrays = good
    broken = {k: v for k, v in arrays.items() if k != key}
    path = write(tmp_path, broken)
    with pytest.raises(TrajectoryError, match=key) as info:
        load(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("version", [2, 0, -1])
def test_wrong_version(tmp_path, good, version):
    _, arrays = good
    path = write(tmp_path, {**arrays, "format_version": np.int64(version)})
    with pytest.raises(TrajectoryError, match=rf"format_version is {version}"):
        load(path)


@pytest.mark.parametrize("value", [np.float64(1.0), np.str_("1"), np.array([1])])
def test_version_of_wrong_kind(tmp_path, good, value):
    _, arrays = good
    with pytest.raises(TrajectoryError, match="format_version"):
        load(write(tmp_path, {**arrays, "format_version": value}))


def _drop_first(a, axis=0):
    return np.delete(a, 0, axis=axis)


WRONG_SHAPES = {
    "up/W": lambda a: _drop_first(a, 0),  # K - 1 snapshots
    "down/W": lambda a: _drop_first(a, 3),  # d - 1
    "scratch/W0": lambda a: _drop_first(a, 2),  # d - 1
    "up/gamma": lambda a: np.concatenate([a, a], -1),  # S = 2 in the joint layout
    "down/rho_bar": lambda a: _drop_first(a, 3),  # n - 1
    "scratch/rho_under": lambda a: a[..., None],
    "up/loss": lambda a: a[:-1],
    "down/xi": lambda a: _drop_first(a, 1),
    "up/y": lambda a: a[:-1],
    "down/y_clean": lambda a: np.concatenate([a, a]),
    "scratch/signals": lambda a: np.concatenate([a, a]),
    "up/trainable": lambda a: a[:, :-1],
    "down/inherited": lambda a: np.ones((3, a.shape[1]), bool),
    "down/X": lambda a: a[0],
    "up/eta": lambda a: np.array([a, a]),
    "scratch/steps": lambda a: a[::-1],  # not increasing
}


@pytest.mark.parametrize("key", list(WRONG_SHAPES))
def test_wrong_shape_named(tmp_path, good, key):
    _, arrays = good
    path = write(tmp_path, {**arrays, key: WRONG_SHAPES[key](arrays[key])})
    with pytest.raises(TrajectoryError, match=key):
        load(path)


@pytest.mark.parametrize(
    "key,value",
    [
        ("up/trainable", lambda a: a.astype(float)),
        ("down/y", lambda a: np.where(np.arange(a.size) == 0, 0.0, a)),
        ("scratch/W", lambda a: np.where(np.arange(a.shape[-1]) == 0, np.nan, a)),
        ("config_json", lambda a: np.str_("{not json")),
        ("up/X", lambda a: a.astype(np.int64)),
    ],
)
def test_wrong_dtype_or_value_named(tmp_path, good, key, value):
    _, arrays = good
    with pytest.raises(TrajectoryError, match=key):
        load(write(tmp_path, {**arrays, key: value(arrays[key])}))


@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.5, 0.99])
def test_truncated_bytes(tmp_path, good, fraction):
    path, _ = good
    data = path.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(TrajectoryError, match="truncated or corrupt") as info:
        load(cut)
    assert str(cut) in str(info.value)


def test_corrupt_middle_bytes(tmp_path, good):
    """Flipped bytes inside a compressed member: the CRC or zlib check fails."""
    path, _ = good
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 64):
        data[i] ^= 0xFF
    bad = tmp_path / "flipped.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(TrajectoryError):
        load(bad)


def test_not_an_npz_and_missing_file(tmp_path):
    text = tmp_path / "t.npz"
    text.write_text("hello")
    with pytest.raises(TrajectoryError, match="not a readable"):
        load(text)
    with pytest.raises(TrajectoryError, match="no such file"):
        load(tmp_path / "absent.npz")


def test_pickled_array_refused(tmp_path, good):
    _, arrays = good
    path = tmp_path / "pickled.npz"
    np.savez(path, **{**arrays, "config_json": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(TrajectoryError):
        load(path)


def test_weights_only_files(tmp_path, good):
    """A framework run that stored weights only loads with
    require_coefficients=False; the coefficients are then reported missing."""
    _, arrays = good
    no_coef = {
        k: v
        for k, v in arrays.items()
        if not (k.startswith("down/") and k.split("/")[1] in ("gamma", "rho_bar", "rho_under"))
    }
    path = write(tmp_path, no_coef)
    with pytest.raises(TrajectoryError, match="down/gamma"):
        load(path)
    t = load(path, require_coefficients=False)
    assert t.has_coefficients == {"up": True, "down": False, "scratch": True}
    with pytest.raises(TrajectoryError, match="no coefficients"):
        t.to_stage("down")
    # partly present coefficients are still checked
    partial = {**no_coef, "down/gamma": arrays["down/gamma"]}
    with pytest.raises(TrajectoryError, match="down/rho_bar"):
        load(write(tmp_path, partial, "partial.npz"), require_coefficients=False)


def test_subset_of_stages(tmp_path, good):
    _, arrays = good
    only_up = {k: v for k, v in arrays.items() if not k.startswith(("down/", "scratch/"))}
    t = load(write(tmp_path, only_up))
    assert t.stages == ("up",)
    no_stage = {k: v for k, v in arrays.items() if "/" not in k}
    with pytest.raises(TrajectoryError, match="no stage keys"):
        load(write(tmp_path, no_stage, "none.npz"))


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "out.bin"
    atomic_write(path, lambda fh: fh.write(b"old"))

    def failing(fh):
        fh.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(path, failing)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_experiment_arrays_keys():
    exp = run_experiment(tiny_config(steps_up=3, steps_down=2))
    assert set(experiment_arrays(exp)) == set(DOC_KEYS) | {"down/inherited_from"}


def test_stage_view(good):
    path, arrays = good
    t = load(path)
    v = t.stage("down")
    assert isinstance(v, StageView) and v.name == "down" and v.path == str(path)
    for key in DOC_STAGE_KEYS:
        assert getattr(v, key) is t.arrays[f"down/{key}"]
    assert v.T == int(arrays["down/steps"][-1]) and v.has_coefficients
    for key in OPTIONAL_KEYS:
        assert getattr(v, key) is None and key not in v
    assert "W" in v
    with pytest.raises(AttributeError, match="no key 'Wx'"):
        _ = v.Wx
    with pytest.raises(TrajectoryError, match="no stage 'sideways'"):
        t.stage("sideways")
    task = v.task()
    assert task.X.dtype == np.float64 and task.patch_role is None
    assert np.array_equal(v.roles(), np.tile([0, -1], (task.n, 1)))


def _permuted_arrays(rng, with_track=True):
    """A stage on data whose patches are swapped for half of the inputs."""
    n, d, m = 6, 12, 2
    y_clean = np.array([1.0, -1, 1, -1, 1, -1])
    mu = np.zeros(d)
    mu[0] = 2.0
    xi = rng.standard_normal((n, d))
    X = np.stack([y_clean[:, None] * mu, xi], axis=1)
    X[::2] = X[::2, ::-1]
    roles = np.tile([0, -1], (n, 1))
    roles[::2] = [-1, 0]
    task = Task(X=X, y=y_clean, y_clean=y_clean, xi=xi, signals=mu[None], patch_role=roles)
    stage = train_stage(
        0.1 * rng.standard_normal((2, m, d)), task, 0.5, 5, snapshots=3, track=with_track
    )
    arrays = {
        "format_version": np.int64(1),
        "config_json": np.str_("{}"),
        "provenance_json": np.str_("{}"),
    }
    arrays.update(stage_arrays("up", stage))
    return arrays, roles


def test_patch_role_round_trip_and_check(tmp_path):
    arrays, roles = _permuted_arrays(np.random.default_rng(0))
    assert np.array_equal(arrays["up/patch_role"], roles)
    path = write(tmp_path, arrays)
    v = load(path).stage("up")
    assert np.array_equal(v.patch_role, roles) and np.array_equal(v.roles(), roles)
    assert np.array_equal(v.task().patch_role, roles)
    assert reconstruction_error(load(path).to_stage("up")) < 1e-12
    bad = roles.copy()
    bad[3] = bad[3][::-1]
    with pytest.raises(PatchRoleError, match=r"up/patch_role.*input 3"):
        load(write(tmp_path, {**arrays, "up/patch_role": bad}, "bad_roles.npz"))
    with pytest.raises(TrajectoryError, match="up/patch_role has shape"):
        load(write(tmp_path, {**arrays, "up/patch_role": roles[:-1]}, "short.npz"))


def test_untracked_stage_has_no_coefficient_keys(tmp_path):
    arrays, _ = _permuted_arrays(np.random.default_rng(1), with_track=False)
    assert not any(k.endswith(("gamma", "rho_bar", "rho_under")) for k in arrays)
    t = load(write(tmp_path, arrays), require_coefficients=False)
    assert t.has_coefficients == {"up": False}
