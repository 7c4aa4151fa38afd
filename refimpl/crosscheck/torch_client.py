"""A reference client: the model of docs/model.md §3 in plain PyTorch.

It is what a framework user would write (an ``nn.Module``, autograd,
``torch.optim.SGD``), trains the stages of a refimpl trajectory file from that
file's inputs (X, y, W0, eta, weight decay, trainable mask, snapshot steps) and
exports its own run as a trajectory file in format 1: weights and the loss at
every step, and optionally coefficients by the projection recovery.
``crosscheck`` then compares the two.

torch is optional (the ``torch`` extra: ``pip install torch==2.13.0``, CPU
build); it is imported when a function here is called, never at import time
of :mod:`refimpl.crosscheck`. Training runs with one torch thread (the
caller's setting is restored afterwards).

Command line (``validation/torch_client.py`` calls :func:`main`)::

    python -m refimpl.crosscheck.torch_client REF.npz OUT.npz [--float32]
                                              [--coefficients] [--stage up ...]
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager

import numpy as np

from ..errors import UsageError
from . import clients

__all__ = [
    "INSTALL_HINT",
    "available",
    "two_layer_cnn_class",
    "train",
    "client_arrays",
    "main",
    "kou_data",
    "CONV1D_MODEL",
    "conv1d_arrays",
]

INSTALL_HINT = "PyTorch is not installed: pip install torch==2.13.0 (CPU build; the torch extra)"


def available() -> bool:
    """True when torch can be imported."""
    import importlib.util

    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # e.g. sys.modules["torch"] = None
        return False


def _torch():
    try:
        import torch
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    return torch


@contextmanager
def one_thread():
    """torch with one intra-op thread; the caller's count is restored."""
    torch = _torch()
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield torch
    finally:
        torch.set_num_threads(before)


_CLASS = None


def two_layer_cnn_class():
    """The ``nn.Module`` class of the model (built on first use, so that
    importing this module does not import torch).

    f(W, x) = F_{+1} - F_{-1}, F_j = (1/m) sum_r sum_p ReLU(<w_{j,r}, x^(p)>)
    (docs/model.md §3.1); the second layer is fixed at +-1/m, no biases. The
    trainable filters are one ``nn.Parameter``; frozen filters are a buffer,
    so that neither their gradient nor SGD's weight decay moves them.
    Constructor: ``(W0 (2, m, d), trainable (2, m) bool, dtype)``;
    ``filters()`` gives W (2, m, d); ``data_loss(X, y)`` the mean logistic loss.
    """
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    torch = _torch()
    nn = torch.nn

    class TwoLayerCNN(nn.Module):
        def __init__(self, W0, trainable, dtype=torch.float64):
            super().__init__()
            two, m, d = W0.shape
            self.m, self.d = m, d
            flat = np.asarray(W0).reshape(2 * m, d)
            mask = np.asarray(trainable, bool).reshape(-1)
            order = np.concatenate([np.flatnonzero(mask), np.flatnonzero(~mask)])
            self.weight = nn.Parameter(torch.tensor(flat[mask], dtype=dtype))
            self.register_buffer("frozen", torch.tensor(flat[~mask], dtype=dtype))
            # row k of W is row inverse[k] of cat([weight, frozen])
            self.register_buffer("inverse", torch.tensor(np.argsort(order)))

        def filters(self):
            """W as a tensor of shape (2, m, d)."""
            rows = torch.cat([self.weight, self.frozen])[self.inverse]
            return rows.reshape(2, self.m, self.d)

        def forward(self, X):
            """Network outputs f (n,) for X of shape (n, P, d)."""
            pre = torch.einsum("jrd,ipd->jrip", self.filters(), X)
            F = torch.relu(pre).sum(dim=(1, 3)) / self.m  # (2, n); ReLU'(0) = 0 in autograd
            return F[0] - F[1]

        def data_loss(self, X, y):
            """(1/n) sum_i log(1 + exp(-y_i f_i)), computed as softplus(-y f)."""
            return torch.nn.functional.softplus(-y * self(X)).mean()

    _CLASS = TwoLayerCNN
    return _CLASS


def __getattr__(name):
    """``TwoLayerCNN``: the model class, built when first asked for."""
    if name == "TwoLayerCNN":
        return two_layer_cnn_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def train(
    W0, X, y, eta, weight_decay, trainable, steps, snapshots, dtype="float64", model_class=None
):
    """Full-batch GD with torch.optim.SGD (lr = eta, weight_decay = lambda:
    w <- w - eta (grad + lambda w), docs/model.md §3.4).

    Parameters
    ----------
    W0 : ndarray of shape (2, m, d)
    X : ndarray of shape (n, P, d)
    y : ndarray of shape (n,)
    eta, weight_decay : float
    trainable : ndarray of shape (2, m), bool
    steps : int
    snapshots : array_like of int
        Steps at which W is recorded (within 0..steps).
    dtype : {"float64", "float32"}
    model_class : subclass of :func:`two_layer_cnn_class`, optional
        Another model with the same constructor (the tests use it to build
        convention variants the framework way); every parameter it has is
        trained.

    Returns
    -------
    W : ndarray of shape (K, 2, m, d), float64
    loss : ndarray of shape (steps + 1,)
        Data loss at steps 0..steps.
    """
    with one_thread() as torch:
        tdt = {"float64": torch.float64, "float32": torch.float32}[dtype]
        model = (model_class or two_layer_cnn_class())(W0, trainable, tdt)
        Xt = torch.tensor(np.asarray(X), dtype=tdt)
        yt = torch.tensor(np.asarray(y), dtype=tdt)
        params = [p for p in model.parameters() if p.numel()]
        opt = torch.optim.SGD(params, lr=eta, weight_decay=weight_decay) if params else None
        wanted = set(int(s) for s in snapshots)
        snaps, loss = [], np.empty(int(steps) + 1)
        for t in range(int(steps) + 1):
            if t in wanted:
                snaps.append(model.filters().detach().numpy().astype(np.float64))
            value = model.data_loss(Xt, yt)
            loss[t] = value.item()
            if t == steps:
                break
            if opt is None:  # every filter frozen: nothing moves
                continue
            opt.zero_grad()
            value.backward()
            opt.step()
    return np.stack(snaps), loss


def kou_data(rng, n, d, mu_norm=5.0, sigma_p=1.0, flip=0.1):
    """Data the way Kou et al.'s public ``syntheticrelu.py`` draws it
    (uclaml/Benign_ReLU_CNN): signal mu = mu_norm e_0, yhat uniform on +-1,
    noise xi ~ N(0, sigma_p^2 I_d) (NOT orthogonal to mu), the two patches
    [yhat mu, xi] swapped at random per input, y = -yhat with probability
    ``flip``; every number rounded to float32 (``.float()``).

    Returns
    -------
    dict
        ``X`` (n, 2, d), ``y``, ``y_clean`` (n,), ``xi`` (n, d), ``signals``
        (1, d), as float64 arrays of float32 numbers.
    """
    f32 = lambda a: np.asarray(a, dtype=np.float32).astype(np.float64)  # noqa: E731
    mu = np.zeros(d)
    mu[0] = mu_norm
    y_clean = rng.choice(np.array([-1.0, 1.0]), n)
    xi = f32(sigma_p * rng.standard_normal((n, d)))
    X = np.stack([y_clean[:, None] * mu, xi], axis=1)
    swap = rng.random(n) < 0.5
    X[swap] = X[swap][:, ::-1]
    y = np.where(rng.random(n) < flip, -y_clean, y_clean)
    return {"X": f32(X), "y": y, "y_clean": y_clean, "xi": xi, "signals": f32(mu[None])}


CONV1D_MODEL = """\
class LinearCNN(nn.Module):          # Kou et al., syntheticrelu.py, verbatim
    def __init__(self, input_dim, out_channel, patch_num):
        super(LinearCNN, self).__init__()
        self.conv1 = nn.Conv1d(1, out_channel*2, int(input_dim/patch_num),
                               int(input_dim/patch_num))
        self.out_channel = out_channel

    def forward(self, x):
        x = self.conv1(x)
        x = torch.pow(x, 1)
        x = torch.nn.functional.relu(x)
        x = torch.mean(x, 2)
        output = torch.stack([torch.sum(x[:, :self.out_channel], 1),
                              torch.sum(x[:, self.out_channel:], 1)]).transpose(1, 0)
        return output
"""
"""The model as framework users write it: a default ``nn.Conv1d`` (bias on,
PyTorch's default init), ReLU, the mean over patches, the sum over the m
filters of each class, two logits; trained with ``CrossEntropyLoss`` and
plain SGD in float32 (:func:`conv1d_arrays`)."""


def conv1d_arrays(data, m, eta, steps, snapshots, seed=0):
    """Train :data:`CONV1D_MODEL` on ``data`` and export its run in format 1.

    The run: ``torch.manual_seed(seed)``, the model's default init,
    ``CrossEntropyLoss`` on the two logits (label 1 for y = +1), full-batch
    ``SGD(lr=eta, momentum=0, weight_decay=0)``, float32. Channel c of the
    convolution is filter r = c - m of class j = +1 for c >= m (logit 1) and
    filter r = c of class j = -1 otherwise; so W[0] = weight[m:], W[1] =
    weight[:m], and likewise the bias (``up/b0``, ``up/b``).

    Parameters
    ----------
    data : dict
        ``X`` (n, P, d), ``y``, ``y_clean``, ``xi``, ``signals`` (e.g. :func:`kou_data`).
    m : int
        Filters per class.
    eta : float
    steps : int
    snapshots : array_like of int

    Returns
    -------
    dict of str to ndarray
        Stage ``up`` in format 1, weights only, with ``up/b0`` and ``up/b``.
    """
    with one_thread() as torch:
        nn = torch.nn
        namespace = {"nn": nn, "torch": torch}
        exec(CONV1D_MODEL, namespace)  # noqa: S102 - the verbatim model text above
        n, P, d = np.shape(data["X"])
        torch.manual_seed(seed)
        model = namespace["LinearCNN"](P * d, m, P)
        inputs = torch.tensor(np.asarray(data["X"]).reshape(n, 1, P * d), dtype=torch.float32)
        labels = torch.tensor((np.asarray(data["y"]) > 0).astype(np.int64))
        criterion = nn.CrossEntropyLoss()
        optimizer = torch.optim.SGD(model.parameters(), lr=eta, momentum=0, weight_decay=0)

        def weights():
            w = model.conv1.weight.detach().numpy()[:, 0, :].astype(np.float64)
            b = model.conv1.bias.detach().numpy().astype(np.float64)
            return np.stack([w[m:], w[:m]]), np.stack([b[m:], b[:m]])

        W0, b0 = weights()
        wanted = set(int(s) for s in snapshots) | {0, int(steps)}
        Ws, bs, loss = [], [], np.empty(int(steps) + 1)
        for t in range(int(steps) + 1):
            if t in wanted:
                W, b = weights()
                Ws.append(W)
                bs.append(b)
            optimizer.zero_grad()
            value = criterion(model(inputs), labels)
            loss[t] = value.item()
            if t == steps:
                break
            value.backward()
            optimizer.step()
    arrays = {
        "format_version": np.int64(1),
        "config_json": np.str_("{}"),
        "provenance_json": np.str_(
            json.dumps(
                {
                    "package": "torch nn.Conv1d (Kou et al.'s LinearCNN)",
                    "torch": torch.__version__,
                    "seed": seed,
                }
            )
        ),
    }
    stage = {
        key: np.asarray(data[key], dtype=np.float64)
        for key in ("X", "y", "y_clean", "xi", "signals")
    }
    stage.update(
        W0=W0,
        b0=b0,
        eta=np.float64(eta),
        weight_decay=np.float64(0.0),
        trainable=np.ones((2, m), bool),
        steps=np.array(sorted(wanted), np.int64),
        W=np.stack(Ws),
        b=np.stack(bs),
        loss=loss,
    )
    arrays.update({f"up/{k}": v for k, v in stage.items()})
    return arrays


def client_arrays(ref_path, dtype="float64", coefficients=False, stages=None):
    """Train the stages of a refimpl trajectory file with the torch client
    (:func:`refimpl.crosscheck.clients.client_arrays`).

    Returns
    -------
    dict of str to ndarray
        A format-1 trajectory: the file's inputs, the client's W and loss, and
        coefficients by projection when ``coefficients``.
    """
    torch = _torch()
    return clients.client_arrays(
        ref_path,
        train,
        dtype,
        coefficients,
        stages,
        package=__name__,
        versions={"torch": torch.__version__},
    )


def main(argv=None):
    """Command line: train REF.npz's inputs with torch and write OUT.npz."""
    return clients.main(argv, "torch_client", client_arrays)


if __name__ == "__main__":
    sys.exit(main())
