"""The transfer checked (docs/model.md §5.2, README "Trajectory file format"):
refimpl records the upstream source of every downstream filter
(``down/inherited_from``), and crosscheck checks ``down/W0`` against
``up/W[-1]``, the count against alpha and m_down, the fresh filters' scale
against sigma_0 and the mask against ``down/inherited``, with the key or by
matching. Every wrong transfer is a refimpl file edited the way a user's
code gets it wrong; each replays exactly (the stages agree) and must still
fail with a line that says what is wrong."""

import json

import numpy as np
import pytest
from crosscheck_common import SMALL_RUN

from refimpl import crosscheck as cc
from refimpl.cli import main
from refimpl.config import Config
from refimpl.errors import TrajectoryError
from refimpl.train import train_stage
from refimpl.trajectory import load, save
from refimpl.transfer import run_experiment

BASE = {**SMALL_RUN, "steps_up": 40, "steps_down": 40, "seed": 7}
TRANSFER = ["transfer_sources", "transfer_count", "fresh_scale", "inherited_mask"]


def written(tmp_path_factory, name, **changes):
    path = tmp_path_factory.mktemp("transfer") / f"{name}.npz"
    exp = run_experiment(Config(**{**BASE, **changes}))
    save(path, exp)
    with np.load(path, allow_pickle=False) as npz:
        return exp, {k: npz[k] for k in npz.files}


@pytest.fixture(scope="module")
def half(tmp_path_factory):
    return written(tmp_path_factory, "half")


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    return written(tmp_path_factory, "full", alpha=1.0, freeze_inherited=False)


def with_config(arrays, **changes):
    out = dict(arrays)
    out["config_json"] = np.str_(json.dumps({**json.loads(str(arrays["config_json"])), **changes}))
    return out


def check(arrays, tmp_path, **kwargs):
    path = tmp_path / "mine.npz"
    save(path, arrays)
    report = cc.crosscheck(path, explain=False, **kwargs)
    return report, {c.name: c for c in report.consistency if c.stage == "down"}


def retrained_down(exp, arrays, W0):
    """The user's down stage, trained (by refimpl) from their own start W0."""
    down = exp.stages["down"]
    stage = train_stage(
        W0,
        down.task,
        down.eta,
        down.T,
        weight_decay=down.weight_decay,
        trainable=down.trainable,
        snapshots=down.steps,
    )
    out = dict(arrays)
    out.update({"down/W0": W0, "down/W": stage.W, "down/loss": stage.loss})
    for key in ("gamma", "rho_bar", "rho_under"):
        out[f"down/{key}"] = getattr(stage, key)
    return out


# ---------------------------------------------------------------------------
# the key: written, read, refused when malformed
# ---------------------------------------------------------------------------


def test_refimpl_records_each_inherited_filters_source(tmp_path_factory):
    exp, arrays = written(tmp_path_factory, "wide", m=4, m_down=5, alpha=0.4, rescale_inherited=0.5)
    src = arrays["down/inherited_from"]
    assert src.shape == (2, 5) and np.issubdtype(src.dtype, np.integer)
    assert np.array_equal(src >= 0, arrays["down/inherited"])
    assert ((src >= 0).sum(axis=1) == 2).all()  # round(0.4 * 5) per class
    W_up = exp.stages["up"].W[-1]
    for j, r in np.argwhere(src >= 0):
        assert np.array_equal(arrays["down/W0"][j, r], 0.5 * W_up[j, src[j, r]])
    for j in range(2):  # distinct sources per class
        assert len(set(src[j][src[j] >= 0])) == 2


@pytest.mark.parametrize(
    "value, words",
    [
        (np.zeros((2, 4), np.int64), "has shape (2, 4); expected (2, 3)"),
        (np.zeros((2, 3)), "expected int"),
        (np.full((2, 3), 3, np.int64), "outside -1..2"),
        (np.full((2, 3), -2, np.int64), "outside -1..2"),
    ],
)
def test_load_refuses_a_malformed_inherited_from(half, tmp_path, value, words):
    arrays = dict(half[1])
    arrays["down/inherited_from"] = value
    save(tmp_path / "bad.npz", arrays)
    with pytest.raises(TrajectoryError, match="down/inherited_from") as info:
        load(tmp_path / "bad.npz")
    assert words in str(info.value)


# ---------------------------------------------------------------------------
# refimpl's own files
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("key", [True, False])
def test_refimpl_transfer_passes(half, tmp_path, key):
    arrays = dict(half[1])
    if not key:
        del arrays["down/inherited_from"]
    report, checks = check(arrays, tmp_path)
    assert report.status == 0, report.format()
    assert [n for n in checks if n in TRANSFER] == TRANSFER
    assert all(checks[n].ok and not checks[n].skipped for n in TRANSFER)
    how = "from down/inherited_from" if key else "by matching down/W0 to up/W[-1]"
    assert how in checks["transfer_sources"].note
    assert "4 inherited filters" in checks["transfer_sources"].note  # round(0.5 * 3) = 2 per class


@pytest.mark.parametrize(
    "changes",
    [dict(granularity="entry", freeze_inherited=False), dict(m_down=5, alpha=0.3), dict(alpha=0.0)],
)
def test_other_transfers_pass(tmp_path_factory, tmp_path, changes):
    _, arrays = written(tmp_path_factory, "other", **changes)
    report, checks = check(arrays, tmp_path)
    assert report.status == 0, report.format()
    assert {"transfer_sources", "transfer_count", "fresh_scale"} <= set(checks)
    assert all(c.ok and not c.skipped for c in checks.values())


def test_float32_client_transfer_within_its_drift(half, tmp_path):
    torch_client = pytest.importorskip("refimpl.crosscheck.torch_client")
    pytest.importorskip("torch")
    save(tmp_path / "ref.npz", half[1])
    arrays = torch_client.client_arrays(tmp_path / "ref.npz", dtype="float32")
    report, checks = check(arrays, tmp_path)
    assert checks["transfer_sources"].ok, checks["transfer_sources"].note
    assert "within 0.001 relative" in checks["transfer_sources"].note
    assert report.status == 0, report.format()


# ---------------------------------------------------------------------------
# the wrong transfers
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["dropped", "edited"])
def test_all_filters_inherited_but_labelled_half(full, tmp_path, capsys, key):
    """The user's code started down from every upstream filter (alpha = 1);
    the file says alpha = 0.5 and marks half of them inherited."""
    arrays = with_config(full[1], alpha=0.5)
    mask = np.zeros((2, 3), bool)
    mask[:, :2] = True
    arrays["down/inherited"] = mask
    if key == "dropped":
        del arrays["down/inherited_from"]
    else:
        arrays["down/inherited_from"] = np.where(mask, arrays["down/inherited_from"], -1)
    report, checks = check(arrays, tmp_path)
    assert report.agree  # every stage replays exactly: only the transfer is wrong
    assert report.status == 1
    count = checks["transfer_count"]
    assert not count.ok
    assert "round(alpha m_down) = 2 per class" in count.note
    assert "holds 3 (class +1), 3 (class -1) copies" in count.note
    if key == "dropped":
        assert not checks["inherited_mask"].ok
        assert "inherited but not marked: (+1, 2), (-1, 2)" in checks["inherited_mask"].note
    else:
        assert (
            "(+1, 2) is recorded fresh (-1) but copies upstream" in checks["transfer_sources"].note
        )
        assert not checks["fresh_scale"].ok  # trained upstream filters, not N(0, sigma_0^2)
    save(tmp_path / "cli.npz", arrays)
    assert main(["crosscheck", str(tmp_path / "cli.npz"), "--no-explain"]) == 1
    out = capsys.readouterr().out
    assert "down     transfer_count      FAILED" in out
    assert out.splitlines()[-1].startswith(
        "RESULT: all quantities agree; the file is not consistent"
    )
    assert "down/transfer_count" in out.splitlines()[-1]


@pytest.mark.parametrize("value", [True, False])
@pytest.mark.parametrize("key", [True, False])
def test_an_all_true_or_all_false_mask(half, tmp_path, value, key):
    arrays = dict(half[1])
    arrays["down/inherited"] = np.full((2, 3), value)
    if not key:
        del arrays["down/inherited_from"]
    report, checks = check(arrays, tmp_path)
    assert report.status == 1
    mask = checks["inherited_mask"]
    assert not mask.ok
    marked = "3 (class +1), 3 (class -1)" if value else "0 (class +1), 0 (class -1)"
    assert f"down/inherited marks {marked} filters" in mask.note
    assert "give 2 (class +1), 2 (class -1)" in mask.note


def test_config_saying_alpha_09(half, tmp_path):
    report, checks = check(with_config(half[1], alpha=0.9), tmp_path)
    assert report.agree and report.status == 1
    count = checks["transfer_count"]
    assert not count.ok
    assert "config alpha = 0.9 and m_down = 3 give round(alpha m_down) = 3 per class" in count.note
    assert "holds 2 (class +1), 2 (class -1) copies" in count.note


def test_a_forgotten_rescale(tmp_path_factory, tmp_path):
    exp, arrays = written(tmp_path_factory, "rescaled", rescale_inherited=0.5)
    src = arrays["down/inherited_from"]
    W0 = arrays["down/W0"].copy()
    for j, r in np.argwhere(src >= 0):  # the user's transfer copies without the factor
        W0[j, r] = exp.stages["up"].W[-1][j, src[j, r]]
    report, checks = check(retrained_down(exp, arrays, W0), tmp_path)
    assert report.agree and report.status == 1
    assert "without the rescale c = 0.5" in checks["transfer_sources"].note


def test_copied_from_the_upstream_start(half, tmp_path):
    """The user's transfer copies the upstream filters before training."""
    exp, arrays = half
    src = arrays["down/inherited_from"]
    W0 = arrays["down/W0"].copy()
    for j, r in np.argwhere(src >= 0):
        W0[j, r] = exp.stages["up"].W0[j, src[j, r]]
    report, checks = check(retrained_down(exp, arrays, W0), tmp_path)
    assert report.agree and report.status == 1
    note = checks["transfer_sources"].note
    assert "copies its source at step 0, not the last" in note


def test_fresh_filters_at_another_scale(half, tmp_path):
    """Fresh filters drawn at 0.1 while the config says sigma_0 = 0.01."""
    report, checks = check(with_config(half[1], sigma_0=0.01), tmp_path)
    fresh = checks["fresh_scale"]
    assert report.status == 1 and not fresh.ok
    assert "config sigma_0 = 0.01 allows" in fresh.note
    assert "chi distribution with 60 degrees of freedom" in fresh.note  # 2 filters x 30


def test_entry_mask_all_false(tmp_path_factory, tmp_path):
    _, arrays = written(tmp_path_factory, "entry", granularity="entry", freeze_inherited=False)
    arrays["down/inherited"] = np.zeros_like(arrays["down/inherited"])
    del arrays["down/inherited_from"]
    report, checks = check(arrays, tmp_path)
    assert report.status == 1
    assert not checks["transfer_sources"].ok and not checks["transfer_count"].ok
    assert "0 of 180 entries inherited" in checks["transfer_count"].note


def test_without_a_config_the_layout_is_still_checked(half, tmp_path):
    arrays = dict(half[1])
    arrays["config_json"] = np.str_("{}")
    arrays["down/inherited"] = np.ones((2, 3), bool)
    _, checks = check(arrays, tmp_path)
    assert (
        checks["transfer_count"].skipped
        and "config_json has no alpha" in checks["transfer_count"].note
    )
    assert checks["fresh_scale"].skipped
    assert not checks["inherited_mask"].ok
