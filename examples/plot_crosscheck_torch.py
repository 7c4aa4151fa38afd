"""
Cross-checking a PyTorch model
==============================

refimpl is an exact reference for your own implementation: train from the
inputs of a refimpl run, record what your code produced with
:class:`refimpl.crosscheck.Recorder`, and :func:`refimpl.crosscheck.crosscheck`
replays the file with refimpl and compares every quantity. Here a plain
PyTorch loop agrees to rounding; the same loop with the mean over patches
instead of the sum (a usual departure) differs, and explain mode names it.

This example needs PyTorch (``pip install torch``); without it, it says so
and draws nothing else.
"""

import importlib.util
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from refimpl import Config, run_experiment
from refimpl.crosscheck import Recorder, crosscheck

if importlib.util.find_spec("torch") is None:
    print("PyTorch is not installed: pip install torch (the CPU build) to run this example.")
    fig, ax = plt.subplots(figsize=(6, 1.5))
    ax.text(0.5, 0.5, "skipped: PyTorch is not installed", ha="center", va="center")
    ax.set_axis_off()
else:
    import torch

    exp = run_experiment(Config(d=200, m=5, n_up=40, n_down=10, steps_up=60, steps_down=60))
    up = exp.stages["up"]

    def train(patch_mean=False):
        """The usual PyTorch loop on the inputs of the refimpl run's upstream stage."""
        X, y = torch.tensor(up.task.X), torch.tensor(up.task.y)
        W = torch.nn.Parameter(torch.tensor(up.W0))
        opt = torch.optim.SGD([W], lr=up.eta)
        path = Path(tempfile.mkdtemp()) / "mine.npz"
        with Recorder(exp, path, stage="up") as rec:
            for t in range(up.T + 1):
                pre = torch.relu(torch.einsum("jrd,ipd->jrip", W, X))
                F = (pre.mean(dim=3) if patch_mean else pre.sum(dim=3)).sum(dim=1) / W.shape[1]
                loss = torch.nn.functional.softplus(-y * (F[0] - F[1])).mean()
                rec.snapshot(W.detach().numpy(), loss.item())
                if t < up.T:
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
        return path, np.load(path)["up/loss"]

    fig, ax = plt.subplots(figsize=(7, 3.6))
    for patch_mean, label in ((False, "as the model"), (True, "mean over patches")):
        path, loss = train(patch_mean)
        report = crosscheck(path, stages="up")
        print(f"--- {label}: exit status {report.status}")
        print(report.format())
        ax.semilogy(loss, label=f"PyTorch, {label} (status {report.status})")
    ax.semilogy(up.loss, "k:", label="refimpl")
    ax.set(xlabel="GD step", ylabel="training loss")
    ax.legend(fontsize=8)
    fig.tight_layout()
