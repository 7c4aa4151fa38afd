"""Recording a training loop (crosscheck.Recorder, run_arrays) and crosscheck()
on runs that are not files (a dict of arrays, a Trajectory): tiny PyTorch,
JAX and numpy loops written as their users write them, from a refimpl run's
inputs or from inputs given by hand."""

import json

import numpy as np
import pytest
from crosscheck_common import needs_jax, needs_torch
from strategies import structured_task, tiny_config

from refimpl import crosscheck as cc
from refimpl import naive
from refimpl.crosscheck import Recorder, jax_client, run_arrays
from refimpl.errors import ConfigError, TrajectoryError, UsageError
from refimpl.trajectory import experiment_arrays, load, save
from refimpl.transfer import run_experiment

CONFIG = tiny_config(weight_decay_up=0.01, weight_decay=0.02, freeze_inherited=True, steps_up=25)


@pytest.fixture(scope="module")
def exp():
    return run_experiment(CONFIG)


@pytest.fixture(scope="module")
def ref_path(exp, tmp_path_factory):
    path = tmp_path_factory.mktemp("recorder") / "ref.npz"
    save(path, exp)
    return str(path)


def torch_loop(rec, ref, s="up", lr_factor=1.0, after=False):
    """A user's PyTorch loop over a refimpl file's inputs: SGD with weight
    decay, frozen filters left out of the update; ``after``: the snapshot
    taken after the step (a common bug)."""
    import torch

    X, y = torch.tensor(ref[f"{s}/X"]), torch.tensor(ref[f"{s}/y"])
    W = torch.nn.Parameter(torch.tensor(ref[f"{s}/W0"]))
    eta, wd = float(ref[f"{s}/eta"]), float(ref[f"{s}/weight_decay"])
    frozen = torch.tensor(~ref[f"{s}/trainable"])
    T = int(ref[f"{s}/steps"][-1])

    def data_loss():
        F = torch.relu(torch.einsum("jrd,ipd->jrip", W, X)).sum(dim=(1, 3)) / W.shape[1]
        return torch.nn.functional.softplus(-y * (F[0] - F[1])).mean()

    for t in range(T + 1):
        loss = data_loss()
        if not after:
            rec.snapshot(W, loss)
        if t < T:
            loss.backward()
            with torch.no_grad():
                step = lr_factor * eta * (W.grad + wd * W)
                step[frozen] = 0
                W -= step  # in place: the recorder must have copied W
            W.grad = None
        if after:
            rec.snapshot(W, data_loss())
    return W


@needs_torch
def test_torch_loop_from_a_file_agrees(ref_path, tmp_path):
    ref = np.load(ref_path)
    out = tmp_path / "mine.npz"
    with Recorder(ref_path, out) as rec:
        torch_loop(rec, ref)
    traj = load(out, require_coefficients=False)  # a valid file
    assert list(traj.stages) == ["up"] and traj.stage("up").steps.tolist() == list(range(26))
    assert np.array_equal(traj.stage("up").W[0], ref["up/W0"])  # copied before the steps
    assert json.loads(str(traj["config_json"]))["steps_up"] == 25
    assert cc.crosscheck(out).status == 0
    assert cc.crosscheck(rec.trajectory).status == 0


@needs_torch
def test_torch_loop_frozen_down_stage_from_the_experiment(exp, tmp_path):
    ref = experiment_arrays(exp)
    assert not ref["down/trainable"].all()
    with Recorder(exp, tmp_path / "down.npz", stage="down", every=7) as rec:
        torch_loop(rec, ref, "down")
    traj = load(tmp_path / "down.npz", require_coefficients=False)
    assert traj.stage("down").steps.tolist() == [0, 7, 14, 21, 28, 30]  # the last step kept
    assert np.array_equal(traj["down/inherited"], exp.inherited)
    assert np.array_equal(traj["down/inherited_from"], exp.source)  # the transfer is checked
    assert cc.crosscheck(tmp_path / "down.npz").status == 0


@needs_torch
def test_torch_loop_wrong_step_size_is_explained(ref_path):
    with Recorder(ref_path) as rec:  # no path: in memory
        torch_loop(rec, np.load(ref_path), lr_factor=0.5)
    report = cc.crosscheck(rec.trajectory)
    assert report.status == 1 and report.theirs == "<recorded run>"
    assert report.explanations["up"]["explanation"] == ["lr_scale"]


@needs_torch
def test_torch_snapshot_after_the_step_differs(ref_path):
    with Recorder(ref_path) as rec:
        torch_loop(rec, np.load(ref_path), after=True)
    assert cc.crosscheck(rec.arrays).status == 1


@needs_jax
def test_jax_loop_agrees(ref_path):
    import jax
    import jax.numpy as jnp

    ref = np.load(ref_path)
    with jax.enable_x64(True):
        X, y = jnp.asarray(ref["up/X"]), jnp.asarray(ref["up/y"])
        W = jnp.asarray(ref["up/W0"])
        eta, wd = float(ref["up/eta"]), float(ref["up/weight_decay"])
        value_and_grad = jax.jit(jax.value_and_grad(jax_client.data_loss))
        with Recorder(ref_path) as rec:
            for _t in range(26):
                loss, grad = value_and_grad(W, X, y)
                rec.snapshot(W, loss)  # jax arrays
                W = W - eta * (grad + wd * W)
    assert cc.crosscheck(rec.trajectory).status == 0


def numpy_loop(rec, task, W0, eta, steps, b=None):
    W = W0.copy()
    for _t in range(steps + 1):
        rec.snapshot((W[0], W[1]), naive.loss(W, task.X, task.y), b=b)  # a pair of classes
        W = W - eta * naive.gradient(W, task.X, task.y)


def test_inputs_by_hand_w0_and_mask_default(tmp_path):
    task = structured_task(np.random.default_rng(3), 6, 1, 12, flip=0.0)
    W0 = 0.3 * np.random.default_rng(4).standard_normal((2, 2, 12))
    with Recorder({"task": task, "eta": 0.5, "config": {"mine": 1}}, tmp_path / "h.npz") as rec:
        numpy_loop(rec, task, W0, 0.5, 10)
    traj = load(tmp_path / "h.npz", require_coefficients=False)
    v = traj.stage("up")
    assert np.array_equal(v.W0, W0) and v.trainable.all() and float(v.weight_decay) == 0.0
    assert json.loads(str(traj["config_json"])) == {"mine": 1}
    assert cc.crosscheck(tmp_path / "h.npz").status == 0


def test_bias_is_stored(tmp_path):
    task = structured_task(np.random.default_rng(3), 5, 1, 10, flip=0.0)
    W0 = 0.3 * np.random.default_rng(4).standard_normal((2, 2, 10))
    b = np.full((2, 2), 0.25)
    with Recorder({"task": task, "eta": 0.5}, tmp_path / "b.npz") as rec:
        numpy_loop(rec, task, W0, 0.5, 3, b=b)
    v = load(tmp_path / "b.npz", require_coefficients=False).stage("up")
    assert np.array_equal(v.b0, b) and v.b.shape == (4, 2, 2)


def test_run_arrays_of_a_run_kept_whole(ref_path):
    v = load(ref_path).stage("up")
    run = v.W, v.loss  # refimpl's own run, at its snapshot steps
    arrays = run_arrays(ref_path, *run)
    assert np.array_equal(arrays["up/steps"], v.steps)
    assert cc.crosscheck(arrays).status == 0
    with pytest.raises(ConfigError, match="W has 2 snapshots and the loss 26 steps: give steps"):
        run_arrays(ref_path, v.W[:2], v.loss)


def test_recorder_mistakes_are_named(ref_path, tmp_path):
    with pytest.raises(ConfigError, match=r"W has shape \(6, 3, 40\); expected \(2, 3, 40\)"):
        Recorder(ref_path).snapshot(np.zeros((6, 3, 40)), 0.5)
    with pytest.raises(ConfigError, match=r"loss must be one number .* shape \(12,\)"):
        Recorder(ref_path).snapshot(np.zeros((2, 3, 40)), np.zeros(12))
    with pytest.raises(ConfigError, match="no snapshot was recorded"):
        Recorder(ref_path).close()
    with pytest.raises(ConfigError, match="stage must be one of up, down, scratch"):
        Recorder(ref_path, stage="middle")
    with pytest.raises(ConfigError, match="the inputs lack y_clean, xi, signals"):
        Recorder({"X": np.zeros((2, 2, 3)), "y": np.ones(2), "eta": 1.0})
    with pytest.raises(ConfigError, match="unknown input 'lr'"):
        Recorder({"lr": 1.0})
    with pytest.raises(UsageError):
        Recorder(ref_path, tmp_path)  # a folder is no file to write
    with pytest.raises(RuntimeError), Recorder(ref_path, tmp_path / "never.npz") as rec:
        rec.snapshot(np.zeros((2, 3, 40)), 0.5)
        raise RuntimeError("the loop failed")
    assert not (tmp_path / "never.npz").exists()


def test_crosscheck_takes_a_dict_or_a_trajectory(ref_path):
    by_path = cc.crosscheck(ref_path)
    arrays = dict(np.load(ref_path))
    for run in (arrays, load(ref_path)):
        report = cc.crosscheck(run)
        assert report.status == 0
        assert [(r.stage, r.quantity, r.max_abs) for r in report.rows] == [
            (r.stage, r.quantity, r.max_abs) for r in by_path.rows
        ]
    assert cc.crosscheck(ref_path, arrays).status == 0  # the reference as a dict
    assert cc.crosscheck(arrays).theirs == "<arrays: theirs>"


@needs_torch
def test_crosscheck_dict_of_torch_tensors(ref_path):
    import torch

    arrays = {
        k: (torch.tensor(v, requires_grad=v.dtype == np.float64) if v.dtype.kind in "fb" else v)
        for k, v in np.load(ref_path).items()
    }
    assert cc.crosscheck(arrays, stages="up").status == 0


def test_crosscheck_dict_mistakes_named_like_a_file(ref_path):
    arrays = dict(np.load(ref_path))
    del arrays["up/W0"]
    with pytest.raises(TrajectoryError, match=r"^<arrays: theirs>: up/W0 is missing$"):
        cc.crosscheck(arrays)
    with pytest.raises(ConfigError, match=r"crosscheck: theirs must be a trajectory file's path"):
        cc.crosscheck([1, 2])
