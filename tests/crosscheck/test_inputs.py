"""Forgiving, exact inputs: integer +-1 labels and 0/1 integer masks are read
(their values checked), a file whose X, xi and signals are stored at
different precisions is refused with one line that says so, and the
documentation's reference pages (docs/reference/trajectory.md, config.md)
say what each key is for and list every config field. Each file is a
refimpl run exported the way a user would change it: labels cast to int, a
mask cast to int, X cast to float32."""

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
from crosscheck_common import small_config

from refimpl import crosscheck as cc
from refimpl.cli import main
from refimpl.config import Config
from refimpl.data import patch_roles
from refimpl.errors import PatchRoleError, TrajectoryError
from refimpl.trajectory import OPTIONAL_KEYS, STAGE_KEYS, load, save
from refimpl.transfer import run_experiment

ROOT = Path(__file__).resolve().parents[2]
CONFIG = small_config(steps_up=20, steps_down=20, snapshots=3, seed=3)


@pytest.fixture(scope="module")
def ref_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("inputs") / "ref.npz"
    save(path, run_experiment(CONFIG))
    return str(path)


def changed(ref_path, out, **casts):
    """The refimpl file with some arrays replaced (key -> function of the array)."""
    with np.load(ref_path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    for key, fn in casts.items():
        key = key.replace("__", "/")
        arrays[key] = fn(arrays[key])
    save(out, arrays)
    return str(out)


def refused(path, capsys):
    """The CLI's exit status and its one stderr line."""
    status = main(["crosscheck", str(path), "--no-explain"])
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, err
    return status, err


# ---------------------------------------------------------------------------
# labels and masks
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.int64, np.int8])
def test_integer_labels_are_read(ref_path, tmp_path, dtype):
    casts = {
        f"{s}__{label}": (lambda a: a.astype(dtype))
        for s in ("up", "down", "scratch")
        for label in ("y", "y_clean")
    }
    path = changed(ref_path, tmp_path / "int.npz", **casts)
    with np.load(path) as npz:
        assert npz["up/y"].dtype == dtype and npz["down/y_clean"].dtype == dtype
    traj = load(path)
    assert traj.get("up", "y").dtype == np.float64
    with np.load(ref_path) as npz:
        assert np.array_equal(traj.get("down", "y"), npz["down/y"])
    assert cc.crosscheck(path).status == 0


def test_labels_must_be_plus_or_minus_one(ref_path, tmp_path, capsys):
    path = changed(ref_path, tmp_path / "01.npz", up__y=lambda a: (a > 0).astype(np.int64))
    with pytest.raises(
        TrajectoryError, match=r"up/y has entries other than \+1 and -1 \(e\.g\. 0\); 0/1"
    ):
        load(path)
    status, err = refused(path, capsys)
    assert status == 2 and "2*y - 1" in err
    path = changed(ref_path, tmp_path / "b.npz", up__y_clean=lambda a: a > 0)
    with pytest.raises(TrajectoryError, match=r"up/y_clean has dtype bool; expected float or int"):
        load(path)
    path = changed(ref_path, tmp_path / "3.npz", down__y=lambda a: (3 * a).astype(np.int64))
    with pytest.raises(
        TrajectoryError, match=r"down/y has entries other than \+1 and -1 \(e\.g\. "
    ):
        load(path)


def test_integer_masks_are_read(ref_path, tmp_path):
    as_int = lambda a: a.astype(np.int64)  # noqa: E731
    path = changed(
        ref_path,
        tmp_path / "m.npz",
        down__trainable=as_int,
        down__inherited=as_int,
        up__trainable=as_int,
    )
    traj = load(path)
    assert traj.get("down", "trainable").dtype == np.bool_
    assert traj["down/inherited"].dtype == np.bool_
    assert not traj.get("down", "trainable").all()  # the frozen filters stay frozen
    with np.load(ref_path) as npz:
        assert np.array_equal(traj.get("down", "trainable"), npz["down/trainable"])
    assert cc.crosscheck(path).status == 0


def test_mask_values_are_checked(ref_path, tmp_path, capsys):
    path = changed(ref_path, tmp_path / "2.npz", up__trainable=lambda a: 2 * a.astype(np.int64))
    with pytest.raises(
        TrajectoryError, match=r"up/trainable has integer entries other than 0 and 1 \(e\.g\. 2\)"
    ):
        load(path)
    assert refused(path, capsys)[0] == 2
    path = changed(ref_path, tmp_path / "f.npz", down__inherited=lambda a: a.astype(np.float64))
    with pytest.raises(
        TrajectoryError,
        match=r"down/inherited has dtype float64; expected bool \(or integers 0 and 1\)",
    ):
        load(path)


# ---------------------------------------------------------------------------
# X, xi and signals at different precisions
# ---------------------------------------------------------------------------


def test_float32_X_beside_float64_xi_is_named(ref_path, tmp_path, capsys):
    path = changed(ref_path, tmp_path / "x32.npz", up__X=lambda a: a.astype(np.float32))
    with pytest.raises(PatchRoleError) as info:
        cc.crosscheck(path)
    text = str(info.value)
    assert (
        "up/X, up/xi and up/signals are stored at different precisions (X float32, xi float64"
        in text
    )
    assert "patch_role" not in text and len(text) < 500
    status, err = refused(path, capsys)
    assert status == 2 and "different precisions" in err and len(err) < 500


def test_float32_xi_beside_float64_X_is_named(ref_path, tmp_path):
    path = changed(
        ref_path,
        tmp_path / "xi32.npz",
        down__xi=lambda a: a.astype(np.float32),
        down__signals=lambda a: a.astype(np.float32),
    )
    with pytest.raises(PatchRoleError, match=r"\(X float64, xi float32, signals float32\)"):
        cc.crosscheck(path, stages="down")


def test_stored_patch_roles_and_a_float32_X(ref_path, tmp_path):
    with np.load(ref_path) as npz:
        roles = patch_roles(npz["up/X"], npz["up/y_clean"], npz["up/signals"], xi=npz["up/xi"])
    path = changed(ref_path, tmp_path / "r.npz", up__X=lambda a: a.astype(np.float32))
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["up/patch_role"] = roles
    save(path, arrays)
    with pytest.raises(PatchRoleError, match="stored at different precisions"):
        load(path)


def test_patch_roles_that_do_not_fit_at_any_precision_are_not_blamed_on_it(ref_path, tmp_path):
    path = changed(ref_path, tmp_path / "bad.npz", up__xi=lambda a: a + 1.0)
    with pytest.raises(PatchRoleError) as info:
        cc.crosscheck(path)
    assert "precision" not in str(info.value) and "does not equal xi" in str(info.value)


# ---------------------------------------------------------------------------
# the reference pages of the documentation
# ---------------------------------------------------------------------------


def page(name):
    return (ROOT / "docs" / "reference" / name).read_text()


def test_config_page_lists_every_config_field():
    text = page("config.md")
    listed = text[text.index("set both tasks): `") + len("set both tasks): `") :]
    names = {n.strip() for n in listed[: listed.index("`")].split(",")}
    assert names == {f.name for f in dataclasses.fields(Config)}


def test_trajectory_page_says_what_each_key_is_for():
    text = page("trajectory.md")
    section = text[text.index("What the cross-check does with") :]
    section = section[: section.index("Keys of other names are not read")]
    kinds = re.findall(r"- \*\*([^*]+)\*\*", section)
    for kind in ("read by the replay", "compared", "patch roles", "bookkeeping"):
        assert any(kind in k for k in kinds), kind
    for key in STAGE_KEYS + OPTIONAL_KEYS:
        assert f"`s/{key}`" in section, key
    for key in ("format_version", "config_json", "provenance_json", "down/inherited"):
        assert f"`{key}`" in section, key
    assert '`"{}"` is fine' in section


def test_an_empty_config_json_is_accepted(ref_path, tmp_path):
    path = changed(ref_path, tmp_path / "c.npz", config_json=lambda a: np.str_("{}"))
    assert load(path).config == {} and cc.crosscheck(path, stages="up").status == 0
