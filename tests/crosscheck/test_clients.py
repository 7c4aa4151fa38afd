"""The framework clients: a plain PyTorch client and a JAX
client agree with refimpl within 1e-10 in float64; their float32 runs are
recognised; convention variants written the framework way are named; a
default ``nn.Conv1d`` model as people write it (Kou et al.'s LinearCNN:
bias on, mean over patches, sum over filters, float32, CrossEntropyLoss)
differs, and explain names all four departures. Every test skips with its
reason when its framework is absent."""

import os
import subprocess
import sys

import numpy as np
import pytest
from crosscheck_common import CONFIG, needs_jax, needs_torch

from refimpl import crosscheck as cc
from refimpl.cli import main
from refimpl.crosscheck import jax_client, torch_client
from refimpl.trajectory import COEFFICIENT_KEYS, load, save
from refimpl.transfer import run_experiment

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the project


CLIENTS = [
    pytest.param(torch_client, marks=needs_torch, id="torch"),
    pytest.param(jax_client, marks=needs_jax, id="jax"),
]


@pytest.fixture(scope="module")
def exp():
    return run_experiment(CONFIG)


@pytest.fixture(scope="module")
def ref_path(exp, tmp_path_factory):
    path = tmp_path_factory.mktemp("clients") / "ref.npz"
    save(path, exp)
    return str(path)


def rows_by(report):
    return {(r.stage, r.quantity): r for r in report.rows}


@pytest.mark.parametrize("client", CLIENTS)
def test_client_agrees_within_1e_10(client, exp, ref_path, tmp_path):
    arrays = client.client_arrays(ref_path)
    assert not any(k.endswith("/gamma") for k in arrays)
    save(tmp_path / "c.npz", arrays)
    report = cc.crosscheck(tmp_path / "c.npz")
    assert report.status == 0
    for r in report.rows:
        assert not r.skipped and r.max_rel <= 1e-10, r
    # weight decay acted, and frozen (inherited) filters did not move at all
    down = exp.stages["down"]
    assert down.weight_decay > 0 and not down.trainable.all()
    W = arrays["down/W"]
    assert np.array_equal(
        W[:, ~down.trainable],
        np.broadcast_to(down.W0[~down.trainable], W[:, ~down.trainable].shape),
    )
    assert cc.crosscheck(tmp_path / "c.npz", ref_path).status == 0


@pytest.mark.parametrize("client", CLIENTS)
def test_client_float32_is_recognised(client, ref_path, tmp_path):
    save(tmp_path / "c32.npz", client.client_arrays(ref_path, dtype="float32", stages=["up"]))
    report = cc.crosscheck(tmp_path / "c32.npz", strict_precision=True)
    assert report.status == 1
    assert rows_by(report)[("up", "W")].first_step > 0  # snapshot 0 is storage
    assert report.explanations["up"]["explanation"] == ["float32"]


@needs_torch
@needs_jax
def test_jax_and_torch_clients_agree(ref_path, tmp_path):
    for name, client in (("t", torch_client), ("j", jax_client)):
        save(tmp_path / f"{name}.npz", client.client_arrays(ref_path, coefficients=True))
    report = cc.crosscheck(tmp_path / "j.npz", tmp_path / "t.npz")
    assert report.status == 0 and max(r.max_rel for r in report.rows) <= 1e-10


@pytest.mark.parametrize("client", CLIENTS)
def test_patches_in_random_order_agree_with_coefficients(client, tmp_path):
    """Kou et al.'s data (patches swapped at random per input, noise not
    orthogonal to the signal) trained by a framework client with refimpl's
    conventions: crosscheck exits 0, coefficients included."""
    rng = np.random.default_rng(5)
    data = torch_client.kou_data(rng, 20, 60)
    roles = load_roles(data)
    assert 0 < np.sum(roles[:, 0] == -1) < 20  # some inputs have the noise first
    W0 = 0.01 * rng.standard_normal((2, 4, 60))
    trainable = np.ones((2, 4), bool)
    steps = np.array([0, 1, 20, 80])
    W, loss = client.train(W0, data["X"], data["y"], 0.5, 0.001, trainable, 80, steps)
    coef = cc.recover_coefficients(
        W, W0, steps, trainable, 0.5, 0.001, data["signals"], data["xi"], data["y"]
    )
    stage = dict(
        data,
        W0=W0,
        eta=np.float64(0.5),
        weight_decay=np.float64(0.001),
        trainable=trainable,
        steps=steps,
        W=W,
        loss=loss,
        **dict(zip(COEFFICIENT_KEYS, coef, strict=True)),
    )
    arrays = {
        "format_version": np.int64(1),
        "config_json": np.str_("{}"),
        "provenance_json": np.str_("{}"),
    }
    arrays.update({f"up/{k}": np.asarray(v) for k, v in stage.items()})
    save(tmp_path / "perm.npz", arrays)
    report = cc.crosscheck(tmp_path / "perm.npz")
    assert report.status == 0, report.format()
    for q in COEFFICIENT_KEYS:
        assert rows_by(report)[("up", q)].max_rel <= 1e-10
    text = report.format()
    assert "another order than signals first" in text and "not orthogonal" in text


def load_roles(data):
    from refimpl.data import patch_roles

    return patch_roles(data["X"], data["y_clean"], data["signals"], xi=data["xi"])


# ---------------------------------------------------------------------------
# convention variants written the framework way
# ---------------------------------------------------------------------------


def _torch_variant_file(ref_path, path, model_class=None, lr_scale=1.0):
    """The up stage trained by the torch client with a framework-style variant."""
    traj = load(ref_path)
    v = traj.stage("up")
    W, loss = torch_client.train(
        v.W0,
        v.X,
        v.y,
        lr_scale * float(v.eta),
        float(v.weight_decay),
        v.trainable,
        v.T,
        v.steps,
        model_class=model_class,
    )
    arrays = {k: traj[k] for k in ("format_version", "config_json", "provenance_json")}
    for k in cc.INPUT_KEYS + ("steps",):
        arrays[f"up/{k}"] = getattr(v, k)
    arrays["up/W"], arrays["up/loss"] = W, loss
    save(path, arrays)
    return path


@needs_torch
def test_torch_written_variants_are_recognised(ref_path, tmp_path):
    import torch

    base = torch_client.TwoLayerCNN

    class SumFilters(base):
        def forward(self, X):
            pre = torch.einsum("jrd,ipd->jrip", self.filters(), X)
            F = torch.relu(pre).sum(dim=(1, 3))
            return F[0] - F[1]

    class MeanPatchesSumFilters(base):
        def forward(self, X):
            pre = torch.einsum("jrd,ipd->jrip", self.filters(), X)
            F = torch.relu(pre).mean(dim=3).sum(dim=1)
            return F[0] - F[1]

    class WithBias(base):
        def __init__(self, W0, trainable, dtype):
            super().__init__(W0, trainable, dtype)
            self.bias = torch.nn.Parameter(torch.zeros(2, self.m, 1, 1, dtype=dtype))

        def forward(self, X):
            pre = torch.einsum("jrd,ipd->jrip", self.filters(), X) + self.bias
            F = torch.relu(pre).sum(dim=(1, 3)) / self.m
            return F[0] - F[1]

    cases = [
        (["filter_sum"], dict(model_class=SumFilters)),
        (["filter_sum", "patch_mean"], dict(model_class=MeanPatchesSumFilters)),
        (["bias"], dict(model_class=WithBias)),
        (["lr_scale"], dict(lr_scale=3.0)),
    ]
    for names, kw in cases:
        path = _torch_variant_file(ref_path, tmp_path / f"{'_'.join(names)}.npz", **kw)
        report = cc.crosscheck(path)
        assert report.status == 1 and report.explanations["up"]["explanation"] == names, names
    assert cc.crosscheck(_torch_variant_file(ref_path, tmp_path / "plain.npz")).status == 0


# ---------------------------------------------------------------------------
# a default nn.Conv1d model as people write it
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def conv1d_path(tmp_path_factory):
    if not torch_client.available():
        pytest.skip(torch_client.INSTALL_HINT)
    data = torch_client.kou_data(np.random.default_rng(0), 20, 100)
    arrays = torch_client.conv1d_arrays(
        data, m=10, eta=0.1, steps=100, snapshots=np.arange(0, 101, 10), seed=0
    )
    path = tmp_path_factory.mktemp("conv1d") / "conv1d.npz"
    save(path, arrays)
    return path


def test_default_conv1d_model_is_explained(conv1d_path, capsys):
    traj = load(conv1d_path, require_coefficients=False)
    v = traj.stage("up")
    assert np.any(v.b0 != 0)  # PyTorch's default bias init
    assert cc.compare.float32_valued(v.W)
    status = main(["crosscheck", str(conv1d_path)])
    out = capsys.readouterr().out
    assert status == 1
    assert "=> up matches the reference with: filter_sum + patch_mean + bias + float32" in out, out
    assert "W DIFFERS from step 0" not in out.replace("  ", " ")
    report = cc.crosscheck(conv1d_path)
    ex = report.explanations["up"]
    assert ex["explanation"] == ["filter_sum", "patch_mean", "bias", "float32"]
    assert rows_by(report)[("up", "W")].first_step > 0
    # replayed under the four conventions, it agrees
    assert (
        main(["crosscheck", str(conv1d_path), "--convention", "filter_sum,patch_mean,bias,float32"])
        == 0
    )
    assert cc.crosscheck(conv1d_path, convention=ex["explanation"]).status == 0


@needs_torch
def test_validation_script_is_a_thin_wrapper(ref_path, tmp_path):
    out = tmp_path / "t.npz"
    done = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "validation", "torch_client.py"),
            ref_path,
            str(out),
            "--stage",
            "up",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert cc.crosscheck(out).status == 0
    bad = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "validation", "torch_client.py"),
            str(tmp_path / "absent.npz"),
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert bad.returncode == 2 and "no such file" in bad.stderr


def test_missing_framework_is_one_clear_error(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_frameworks(name, *args, **kw):
        if name.split(".")[0] in ("torch", "jax"):
            raise ImportError(name)
        return real(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_frameworks)
    from refimpl.errors import UsageError

    with pytest.raises(UsageError, match="pip install torch==2.13.0"):
        torch_client.client_arrays("x.npz")
    with pytest.raises(UsageError, match="pip install jax"):
        jax_client.client_arrays("x.npz")
