"""Precision is not a departure: a file whose weights are float32 numbers is
judged at float32 precision by default (exit 0 when its dynamics agree at that
precision, the report saying how), and ``--strict-precision`` judges it at the
user's rtol as before. Each file is built the way a user makes one: the torch
client in float32, a refimpl run whose arrays were cast to float32."""

import json

import numpy as np
import pytest
from crosscheck_common import CONFIG, needs_torch

from refimpl import crosscheck as cc
from refimpl.cli import main
from refimpl.crosscheck import clients, torch_client
from refimpl.crosscheck.precision import ARITHMETIC_VERDICT, STORAGE_VERDICT
from refimpl.errors import ConfigError
from refimpl.trajectory import save
from refimpl.transfer import run_experiment


@pytest.fixture(scope="module")
def ref_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("precision") / "ref.npz"
    save(path, run_experiment(CONFIG))
    return str(path)


def cast_to_float32(path, out):
    """A float64 run exported with every float array cast to float32 (what
    ``np.savez(..., **{k: v.astype(np.float32)})`` gives)."""
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    save(out, {k: v.astype(np.float32) if v.dtype == np.float64 else v for k, v in arrays.items()})
    return str(out)


def torch_file(ref_path, out, lr_scale=1.0, model_class=None):
    """The up stage trained by the torch client in float32 (optionally with
    another step size or model), stored with the file's own eta."""

    def trainer(W0, X, y, eta, *rest):
        *rest, _ = rest  # the dtype: float32 here
        return torch_client.train(
            W0, X, y, lr_scale * eta, *rest, dtype="float32", model_class=model_class
        )

    save(out, clients.client_arrays(ref_path, trainer, "float32", stages=["up"]))
    return str(out)


def run(argv, capsys):
    status = main(argv)
    return status, capsys.readouterr().out


# ---------------------------------------------------------------------------
# float64 dynamics stored as float32 arrays
# ---------------------------------------------------------------------------


def test_float64_run_stored_as_float32_arrays_agrees(ref_path, tmp_path, capsys):
    path = cast_to_float32(ref_path, tmp_path / "f32.npz")
    report = cc.crosscheck(path)
    assert report.status == 0, report.format()
    for s in ("up", "down", "scratch"):
        judged = report.precision[s]
        assert judged["precision"] == "storage" and judged["verdict"] == STORAGE_VERDICT
        assert judged["rtol_W"] == pytest.approx(2.0**-23)
    assert all("float32 storage, rtol 1.2e-07" in r.note for r in report.rows)
    status, out = run(["crosscheck", path, "--json", str(tmp_path / "r.json")], capsys)
    assert status == 0
    last = out.strip().splitlines()[-1]
    assert last.startswith("RESULT: all quantities agree (at float32 precision: up: ")
    assert "refimpl's own dynamics, rounded to float32 on output" in last
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["precision"]["down"]["verdict"] == STORAGE_VERDICT
    # today's judgement on demand
    status, out = run(["crosscheck", path, "--strict-precision", "--no-explain"], capsys)
    assert status == 1 and "DIFFERS" in out and "float32 storage" not in out


def test_float32_arrays_against_the_float64_file(ref_path, tmp_path):
    """Two-file mode: inputs that are the reference's rounded to float32 are
    the same problem at float32 precision, named in a note."""
    path = cast_to_float32(ref_path, tmp_path / "f32.npz")
    report = cc.crosscheck(path, ref_path, stages="up")
    assert report.status == 0, report.format()
    assert not any(r.quantity == "inputs" for r in report.rows)
    assert any("are the reference's rounded to float32" in n for n in report.notes)
    strict = cc.crosscheck(path, ref_path, stages="up", strict_precision=True, explain=False)
    assert strict.status == 1 and any(r.quantity == "inputs" for r in strict.rows)


# ---------------------------------------------------------------------------
# float32 arithmetic: the torch client in float32
# ---------------------------------------------------------------------------


@needs_torch
def test_torch_float32_client_agrees_at_float32_precision(ref_path, tmp_path, capsys):
    path = str(tmp_path / "t32.npz")
    save(path, torch_client.client_arrays(ref_path, dtype="float32"))
    report = cc.crosscheck(path)
    assert report.status == 0, report.format()
    for s in ("up", "down", "scratch"):
        judged = report.precision[s]
        assert judged["precision"] == "arithmetic" and judged["verdict"] == ARITHMETIC_VERDICT
        assert 2.0**-23 < judged["rtol_W"] < 1e-4
    # not float64 dynamics rounded: beyond float32's storage precision
    assert max(r.max_rel for r in report.rows) > 2.0**-23
    status, out = run(["crosscheck", path], capsys)
    assert status == 0 and "refimpl's dynamics in float32 arithmetic" in out
    assert "not within storage precision" in out
    status, out = run(["crosscheck", path, "--strict-precision", "--stage", "up"], capsys)
    assert status == 1 and "=> up matches the reference with: float32" in out


@needs_torch
def test_a_departure_in_float32_still_differs(ref_path, tmp_path):
    """A step 1.0001 x eta in float32 is beyond float32's drift: exit 1, and
    explain names the step."""
    report = cc.crosscheck(torch_file(ref_path, tmp_path / "lr.npz", lr_scale=1.0001))
    assert report.status == 1
    assert not report.rows[0].ok and "float32 arithmetic" in report.rows[0].note
    assert report.precision["up"]["verdict"] == ""
    assert "lr_scale" in report.explanations["up"]["explanation"]


@needs_torch
def test_a_named_convention_is_replayed_in_float32(ref_path, tmp_path):
    import torch

    class SumFilters(torch_client.two_layer_cnn_class()):
        def forward(self, X):
            pre = torch.einsum("jrd,ipd->jrip", self.filters(), X)
            F = torch.relu(pre).sum(dim=(1, 3))
            return F[0] - F[1]

    path = torch_file(ref_path, tmp_path / "sum.npz", model_class=SumFilters)
    report = cc.crosscheck(path, convention="filter_sum")
    assert report.status == 0, report.format()
    assert any("filter_sum+float32 (float32 arithmetic added" in n for n in report.notes)
    strict = cc.crosscheck(path, convention="filter_sum", strict_precision=True)
    assert strict.status == 1


def test_a_float64_file_is_judged_as_before(ref_path):
    report = cc.crosscheck(ref_path, stages="up")
    assert report.status == 0 and not report.precision
    assert "precision" not in report.to_dict()
    assert not any("float32" in r.note for r in report.rows)


def test_strict_precision_must_be_a_bool(ref_path):
    with pytest.raises(ConfigError, match="strict_precision must be True or False, got 'yes'"):
        cc.crosscheck(ref_path, strict_precision="yes")


@needs_torch
def test_the_float32_replays_are_budgeted(ref_path, tmp_path, monkeypatch):
    """The two replays of the float32 arithmetic judgement are checked
    against the work budget before they run; a file that agrees at storage
    precision needs none."""
    from refimpl import budget
    from refimpl.crosscheck import replay_cost
    from refimpl.errors import ResourceError
    from refimpl.trajectory import load

    path = str(tmp_path / "t32.npz")
    save(path, torch_client.client_arrays(ref_path, dtype="float32", stages=["up"]))
    one = replay_cost(load(path, require_coefficients=False).stage("up"))[1]
    monkeypatch.setenv(budget.WORK_ENV, str(1.5 * one))  # the replay, not two more
    with pytest.raises(ResourceError, match=r"the float32 judgement \(two replays; --strict"):
        cc.crosscheck(path, explain=False)
    assert cc.crosscheck(path, explain=False, strict_precision=True).status == 1
    cast = cast_to_float32(ref_path, tmp_path / "f32.npz")
    assert cc.crosscheck(cast, stages="up", explain=False).status == 0
