"""Consistency checks on a trajectory file itself (refimpl.crosscheck.consistency):
each mistake is built the way a user makes it, in a small PyTorch training
loop with one switch, and must get its named line in the report and in
--json. The transfer checks: tests/crosscheck/test_transfer_check.py."""

import json

import numpy as np
import pytest
from crosscheck_common import small_config, user_loop

from refimpl import crosscheck as cc
from refimpl.cli import main
from refimpl.trajectory import save
from refimpl.transfer import run_experiment

torch = pytest.importorskip("torch")

CONFIG = small_config(steps_up=40, steps_down=40, weight_decay_up=0.0, seed=3)
NAMES = ["frozen_static", "snapshot0", "trainable_moves", "noise_coefficients", "loss0"]


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    path = tmp_path_factory.mktemp("consistency") / "ref.npz"
    save(path, run_experiment(CONFIG))
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def checks_of(arrays, tmp_path, **kwargs):
    path = tmp_path / "mine.npz"
    save(path, arrays)
    report = cc.crosscheck(path, explain=False, **kwargs)
    return report, {(c.stage, c.name): c for c in report.consistency}


def test_a_correct_loop_passes_every_check(ref, tmp_path):
    for s in ("up", "down"):
        report, checks = checks_of(user_loop(ref, s), tmp_path)
        assert [c.name for c in report.consistency][:5] == NAMES
        assert report.consistent and report.status == 0, report.format()
        assert all(checks[(s, name)].ok and not checks[(s, name)].skipped for name in NAMES)
    transfer = checks[("down", "transfer_sources")]  # a file of down alone
    assert transfer.skipped and "no up stage" in transfer.note


def test_frozen_filters_moved_by_sgd_weight_decay(ref, tmp_path):
    report, checks = checks_of(user_loop(ref, "down", frozen="decay"), tmp_path)
    c = checks[("down", "frozen_static")]
    assert not c.ok and report.status == 1
    assert "4 of 4 filters marked frozen move" in c.note  # alpha m_down = 2 per class
    assert "weight decay" in c.note and "give the optimizer only the trainable" in c.note
    assert "down/frozen_static" in report.format().splitlines()[-1]


def test_frozen_filters_trained(ref, tmp_path):
    _, checks = checks_of(user_loop(ref, "down", frozen="train"), tmp_path)
    c = checks[("down", "frozen_static")]
    assert not c.ok and "is the trainable mask applied?" in c.note


def test_snapshot_taken_after_the_step(ref, tmp_path):
    report, checks = checks_of(user_loop(ref, "up", snapshot_after=True), tmp_path)
    c = checks[("up", "snapshot0")]
    assert not c.ok and "taken after the step instead of before" in c.note
    assert checks[("up", "loss0")].ok  # the loss is recorded before the step: it agrees


def test_a_detached_class_never_moves(ref, tmp_path):
    _, checks = checks_of(user_loop(ref, "up", detach_class=1), tmp_path)
    c = checks[("up", "trainable_moves")]
    assert not c.ok
    assert "no trainable filter of class -1 ever moves" in c.note
    assert "3 filters marked trainable never move" in c.note


def test_a_detached_noise_patch_memorises_nothing(ref, tmp_path):
    _, checks = checks_of(user_loop(ref, "up", noise=False), tmp_path)
    c = checks[("up", "noise_coefficients")]
    assert not c.ok and "a detached noise patch?" in c.note
    assert checks[("up", "trainable_moves")].ok


def test_a_bias_without_b0_is_a_different_network_at_step_0(ref, tmp_path):
    report, checks = checks_of(user_loop(ref, "up", bias=True), tmp_path)
    c = checks[("up", "loss0")]
    assert not c.ok
    assert "a different network function at step 0" in c.note
    assert "store up/b0" in c.note


def test_swapped_classes_named_at_step_0(ref, tmp_path):
    _, checks = checks_of(user_loop(ref, "up", swap=True), tmp_path)
    c = checks[("up", "loss0")]
    assert not c.ok and "with the classes swapped" in c.note


def test_loss0_is_not_checked_against_a_reference_file(ref, tmp_path):
    mine = tmp_path / "mine.npz"
    save(mine, user_loop(ref, "up", bias=True))
    report = cc.crosscheck(mine, mine, explain=False)
    c = {x.name: x for x in report.consistency}["loss0"]
    assert c.skipped and c.ok and "reference file" in c.note


def test_each_check_is_a_named_line_and_in_json(ref, tmp_path, capsys):
    mine, out = tmp_path / "mine.npz", tmp_path / "report.json"
    save(mine, user_loop(ref, "down", frozen="decay"))
    status = main(["crosscheck", str(mine), "--no-explain", "--json", str(out)])
    text = capsys.readouterr().out
    assert status == 1
    for name in NAMES:
        assert any(line.startswith(f"down     {name}") for line in text.splitlines()), name
    doc = json.loads(out.read_text())
    assert doc["consistent"] is False
    got = {(c["stage"], c["name"]): c["verdict"] for c in doc["consistency"]}
    assert got[("down", "frozen_static")] == "FAILED"
    assert got[("down", "snapshot0")] == "ok"


def test_float32_loop_is_consistent(ref, tmp_path):
    arrays = user_loop(ref, "up")
    arrays["up/W"] = arrays["up/W"].astype(np.float32)
    _, checks = checks_of(arrays, tmp_path)
    assert (
        checks[("up", "snapshot0")].ok and "float32 precision" in checks[("up", "snapshot0")].note
    )
