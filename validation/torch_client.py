"""A reference client: the model of MODEL.md section 3 in plain PyTorch.

It is what a framework user would write (an ``nn.Module``, autograd,
``torch.optim.SGD``), trains the stages of a refimpl trajectory file from that
file's inputs (X, y, W0, eta, weight decay, trainable mask, snapshot steps) and
exports its own run as a trajectory file in format 1: weights and the loss at
every step, and optionally coefficients by the projection recovery. refimpl's
``crosscheck`` then compares the two (issue 4).

Command line::

    python validation/torch_client.py REF.npz OUT.npz [--float32] [--coefficients]
                                      [--stage up --stage down ...]

Nothing in refimpl imports this module; it needs ``torch`` (the ``torch``
extra).
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

try:
    import torch
    from torch import nn
except ImportError:  # pragma: no cover - the message is the point
    torch = None
    nn = None

__all__ = ["TwoLayerCNN", "train", "client_arrays", "main"]

STAGES = ("up", "down", "scratch")
INPUT_KEYS = ("X", "y", "y_clean", "xi", "signals", "W0", "eta", "weight_decay",
              "trainable", "steps")


def _need_torch():
    if torch is None:
        raise SystemExit("torch_client: PyTorch is not installed; "
                         "pip install torch==2.13.0 (CPU build)")


if nn is not None:
    class TwoLayerCNN(nn.Module):
        """f(W, x) = F_{+1} - F_{-1}, F_j = (1/m) sum_r sum_p ReLU(<w_{j,r}, x^(p)>)
        (MODEL.md section 3); the second layer is fixed at +-1/m, no biases.

        The trainable filters are one ``nn.Parameter``; frozen filters are a
        buffer, so that neither their gradient nor SGD's weight decay moves
        them (MODEL.md section 3: frozen filters do not move at all).

        Parameters
        ----------
        W0 : ndarray of shape (2, m, d)
            Initial weights; axis 0 index 0 is j = +1.
        trainable : ndarray of shape (2, m), bool
        dtype : torch.dtype
        """

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
            F = torch.relu(pre).sum(dim=(1, 3)) / self.m      # (2, n); ReLU'(0) = 0 in autograd
            return F[0] - F[1]

        def data_loss(self, X, y):
            """(1/n) sum_i log(1 + exp(-y_i f_i)), computed as softplus(-y f)."""
            return torch.nn.functional.softplus(-y * self(X)).mean()
else:  # pragma: no cover
    TwoLayerCNN = None


def train(W0, X, y, eta, weight_decay, trainable, steps, snapshots, dtype="float64",
          model_class=None):
    """Full-batch GD with torch.optim.SGD (lr = eta, weight_decay = lambda:
    w <- w - eta (grad + lambda w), MODEL.md section 3).

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
    model_class : subclass of TwoLayerCNN, optional
        Another model with the same constructor (the tests use it to build
        convention variants the framework way); every parameter it has is
        trained.

    Returns
    -------
    W : ndarray of shape (K, 2, m, d), float64
    loss : ndarray of shape (steps + 1,)
        Data loss at steps 0..steps.
    """
    _need_torch()
    tdt = {"float64": torch.float64, "float32": torch.float32}[dtype]
    model = (model_class or TwoLayerCNN)(W0, trainable, tdt)
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
        if opt is None:      # every filter frozen: nothing moves
            continue
        opt.zero_grad()
        value.backward()
        opt.step()
    return np.stack(snaps), loss


def client_arrays(ref_path, dtype="float64", coefficients=False, stages=None):
    """Train the stages of a refimpl trajectory file with the torch client.

    Returns
    -------
    dict of str to ndarray
        A format-1 trajectory: the file's inputs, the client's W and loss, and
        coefficients by projection when ``coefficients``.
    """
    _need_torch()
    with np.load(ref_path, allow_pickle=False) as npz:
        ref = {k: npz[k] for k in npz.files}
    present = [s for s in STAGES if f"{s}/X" in ref]
    out = {"format_version": ref["format_version"], "config_json": ref["config_json"],
           "provenance_json": np.str_(json.dumps({
               "package": "validation/torch_client.py", "torch": torch.__version__,
               "dtype": dtype, "reference": str(ref_path)}))}
    stages = list(stages or present)
    if "down/inherited" in ref and "down" in stages:
        out["down/inherited"] = ref["down/inherited"]
    torch.set_num_threads(1)
    for s in stages:
        g = lambda k: ref[f"{s}/{k}"]  # noqa: E731,B023
        for key in INPUT_KEYS:
            out[f"{s}/{key}"] = g(key)
        steps = g("steps")
        W, loss = train(g("W0"), g("X"), g("y"), float(g("eta")), float(g("weight_decay")),
                        g("trainable"), int(steps[-1]), steps, dtype)
        out[f"{s}/W"], out[f"{s}/loss"] = W, loss
        if coefficients:
            from refimpl.crosscheck import recover_coefficients
            coef = recover_coefficients(W, g("W0"), steps, g("trainable"), float(g("eta")),
                                        float(g("weight_decay")), g("signals"), g("xi"), g("y"))
            for key, value in zip(("gamma", "rho_bar", "rho_under"), coef):
                out[f"{s}/{key}"] = value
    return out


def main(argv=None):
    p = argparse.ArgumentParser(prog="torch_client.py", description=__doc__.split("\n\n")[0])
    p.add_argument("reference", metavar="REF.npz", help="a refimpl trajectory file (its inputs)")
    p.add_argument("out", metavar="OUT.npz")
    p.add_argument("--float32", action="store_true", help="train in float32")
    p.add_argument("--coefficients", action="store_true",
                   help="also store coefficients recovered by projection")
    p.add_argument("--stage", action="append", choices=STAGES)
    args = p.parse_args(argv)
    from refimpl.trajectory import TrajectoryError, load, save
    try:
        load(args.reference, require_coefficients=False)
    except TrajectoryError as exc:
        print(f"torch_client: error: {exc}", file=sys.stderr)
        return 2
    arrays = client_arrays(args.reference, "float32" if args.float32 else "float64",
                           args.coefficients, args.stage)
    save(args.out, arrays)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
