"""Explain mode names what training code does: swapped classes, momentum,
a step-size schedule, weight decay on frozen filters, a snapshot taken after
the update, a bias with no stored b0. Each is built the way a user makes it:
a PyTorch loop with one switch (tests/crosscheck_common.user_loop), or a
hand-made file (refimpl's own variant GD, no framework needed)."""

import numpy as np
import pytest
from crosscheck_common import needs_torch, small_config, user_loop
from hypothesis import given, settings
from hypothesis import strategies as st

from refimpl import crosscheck as cc
from refimpl.errors import UsageError
from refimpl.trajectory import load, save
from refimpl.transfer import run_experiment

CONFIG = small_config(steps_up=40, steps_down=40, weight_decay_up=0.0, seed=3)

conventions = st.builds(
    cc.Convention,
    filter_sum=st.booleans(),
    bias=st.booleans(),
    lr_scale=st.floats(0.01, 100),
    relu_prime_zero=st.sampled_from([0.0, 0.5, 1.0]),
    dtype=st.sampled_from(["float64", "float32"]),
    loss_sum=st.booleans(),
    swap_classes=st.booleans(),
    momentum=st.sampled_from([0.9, 1 / 3]),
    nesterov=st.booleans(),
    lr_schedule=st.sampled_from([(), ((0, 1.0), (7, 0.1)), ((0, 0.3),)]),
    snapshot_offset=st.sampled_from([-1, 0, 1]),
)


@pytest.fixture(scope="module")
def ref_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("variants") / "ref.npz"
    save(path, run_experiment(CONFIG))
    return path


@pytest.fixture(scope="module")
def ref(ref_path):
    with np.load(ref_path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def explain(arrays, tmp_path, stage):
    path = tmp_path / "mine.npz"
    save(path, arrays)
    report = cc.crosscheck(path, stages=[stage])
    assert report.status == 1
    ex = report.explanations[stage]
    return ex, "\n".join(cc.format_explanation(stage, ex))


# ---------------------------------------------------------------------------
# hand-made files: refimpl's variant GD under the convention
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec,stage",
    [
        ("swap_classes", "up"),
        ("momentum=0.9", "up"),
        ("lr_schedule=0:1/15:0.5/30:0.25", "up"),
        ("decay_frozen", "down"),
        ("filter_sum,momentum=0.5", "up"),
        ("patch_mean,swap_classes", "down"),
        ("lr_schedule=0:0.2/1:0.4/2:0.6/3:0.8/4:1", "up"),  # a warm-up: not momentum
        ("loss_sum", "up"),
        ("loss_sum,momentum=0.5", "down"),
        ("momentum=0.9,nesterov", "up"),
        ("lr_scale=0.5,momentum=0.8,nesterov", "down"),
    ],
)
def test_hand_made_variant_is_named(ref_path, tmp_path, spec, stage):
    conv = cc.parse_convention(spec)
    arrays = cc.variant_arrays(load(ref_path), conv, stages=[stage])
    ex, text = explain(arrays, tmp_path, stage)
    assert ex["explanation"] == conv.names()
    assert f"=> {stage} matches the reference with: {' + '.join(conv.names())}" in text
    if conv.momentum:
        assert f"momentum {conv.momentum:g}" in ex["description"]
    if conv.lr_schedule:
        assert cc.schedule_text(conv.lr_schedule) in ex["description"]
    # the explanation's --convention text replays the file: it agrees
    assert (
        cc.crosscheck(tmp_path / "mine.npz", stages=[stage], convention=ex["convention"]).status
        == 0
    )


@pytest.mark.parametrize("offset", [1, -1])
def test_snapshot_offset_is_named(ref_path, tmp_path, offset):
    traj = load(ref_path)
    v = traj.stage("up")
    shifted = np.clip(v.steps + offset, 0, v.T)
    run = cc.variant_train(
        v.W0, v.X, v.y, float(v.eta), float(v.weight_decay), v.trainable, v.T, shifted
    )
    arrays = cc.variant_arrays(traj, cc.Convention(), stages=["up"])
    arrays["up/W"] = run.W[np.searchsorted(run.at, shifted)]
    ex, _ = explain(arrays, tmp_path, "up")
    assert ex["explanation"] == [f"snapshot_offset{offset:+d}"]
    again = cc.crosscheck(tmp_path / "mine.npz", stages=["up"], convention=ex["convention"])
    assert again.status == 0  # --convention applies the offset too


def test_exponential_schedule_is_named(ref_path, tmp_path):
    conv = cc.Convention(lr_schedule=tuple((t, 0.97**t) for t in range(CONFIG.steps_up)))
    arrays = cc.variant_arrays(load(ref_path), conv, stages=["up"])
    ex, _ = explain(arrays, tmp_path, "up")
    assert ex["explanation"] == ["lr_schedule"]
    assert "times 0.97 every step (exponential)" in ex["description"]


def test_nothing_explains_a_different_step_0_loss(ref_path, tmp_path):
    """A bias that was never stored: no network tried has the file's loss at
    step 0, explain replays nothing and says what to store."""
    traj = load(ref_path)
    arrays = cc.variant_arrays(traj, "bias", stages=["up"], b0={"up": np.full((2, CONFIG.m), 0.05)})
    for key in ("up/b0", "up/b"):
        del arrays[key]
    ex, text = explain(arrays, tmp_path, "up")
    assert ex["explanation"] == [] and ex["tried"] == 0
    assert "a different network function at step 0" in ex["step0"]
    assert "store up/b0" in ex["step0"] and "store up/b0" in text


@settings(max_examples=100, deadline=None)
@given(conventions)
def test_spec_gives_the_convention_back(conv):
    assert cc.parse_convention(conv.spec()) == conv


def test_a_convention_that_leaves_the_finite_numbers_agrees_with_nothing(ref_path, capsys):
    from refimpl.cli import main

    assert main(["crosscheck", str(ref_path), "--convention", "lr_schedule=0:inf"]) == 2
    assert "lr_schedule needs" in capsys.readouterr().err
    a = np.ones((2, 3))
    b = a.copy()
    b[1, 2] = np.inf
    assert cc.compare_arrays(a, b, np.array([0, 5]))[2] == 5
    assert cc.compare_arrays(b, b, np.array([0, 5]))[2] == 5  # inf - inf: not agreement


def test_parse_and_describe_the_new_variants():
    conv = cc.parse_convention("momentum=0.9,lr_schedule=0:1/50:0.1,decay_frozen,swap_classes")
    assert conv.names() == ["swap_classes", "momentum", "lr_schedule", "decay_frozen"]
    assert conv.lr_schedule == ((0, 1.0), (50, 0.1))
    text = conv.describe()
    assert "momentum 0.9" in text and "from step 50: 0.1 x eta" in text
    assert cc.parse_convention("snapshot_offset+1").snapshot_offset == 1
    for bad in (
        "momentum=1",
        "momentum=-0.1",
        "lr_schedule=5:1",
        "lr_schedule=0:1/0:2",
        "nesterov",
    ):
        with pytest.raises(UsageError):
            cc.parse_convention(bad)


# ---------------------------------------------------------------------------
# the same mistakes in a PyTorch loop
# ---------------------------------------------------------------------------


@needs_torch
@pytest.mark.parametrize(
    "switch,stage,names",
    [
        (dict(swap=True), "up", ["swap_classes"]),
        (dict(momentum=0.9), "up", ["momentum"]),
        (dict(step_lr=(15, 0.5)), "up", ["lr_schedule"]),
        (dict(frozen="decay"), "down", ["decay_frozen"]),
        (dict(snapshot_after=True), "up", ["snapshot_offset+1"]),
        (dict(momentum=0.9, frozen="decay"), "down", ["momentum", "decay_frozen"]),
        (dict(momentum=0.9), "down", ["momentum"]),
        (dict(momentum=0.9, step_lr=(15, 0.5)), "up", ["momentum", "lr_schedule"]),
        (dict(frozen="decay", step_lr=(10, 0.3)), "down", ["lr_schedule", "decay_frozen"]),
        (dict(swap=True, momentum=0.5), "up", ["swap_classes", "momentum"]),
        (dict(snapshot_after=True, momentum=0.9), "up", ["momentum", "snapshot_offset+1"]),
        (dict(reduction="sum"), "up", ["loss_sum"]),
        (dict(momentum=0.9, nesterov=True), "up", ["momentum", "nesterov"]),
        (
            dict(momentum=0.9, nesterov=True, frozen="decay"),
            "down",
            ["momentum", "nesterov", "decay_frozen"],
        ),
    ],
)
def test_torch_loop_mistake_is_named(ref, tmp_path, switch, stage, names):
    ex, text = explain(user_loop(ref, stage, **switch), tmp_path, stage)
    assert ex["explanation"] == names, text
    if "momentum" in switch:
        assert f"momentum {switch['momentum']:g}" in ex["description"]
    if switch.get("step_lr") == (15, 0.5):
        assert "from step 30: 0.25 x eta" in ex["description"]


@needs_torch
def test_torch_loop_bias_without_b0(ref, tmp_path):
    ex, text = explain(user_loop(ref, "up", bias=True), tmp_path, "up")
    assert ex["explanation"] == [] and "store up/b0" in text
