"""What the cross-check tests share: a small transfer run (short stages,
weight decay in both, the inherited filters frozen: every part of a file
is exercised), the markers of the optional framework clients, and a PyTorch
training loop as a user writes it, with switches for the usual mistakes."""

from __future__ import annotations

import numpy as np
import pytest

from refimpl.config import Config
from refimpl.crosscheck import jax_client, torch_client

SMALL_RUN = dict(
    d=30,
    m=3,
    n_up=10,
    n_down=8,
    steps_up=60,
    steps_down=60,
    snapshots=5,
    weight_decay_up=0.005,
    weight_decay=0.01,
    freeze_inherited=True,
    alpha=0.5,
    sigma_0=0.1,
    eta=1.0,
    u_norm=3.0,
    flip_down=0.1,
    n_test=100,
    seed=1,
)


def small_config(**changes):
    """The small run's Config with ``changes``."""
    return Config(**{**SMALL_RUN, **changes})


CONFIG = small_config()
needs_torch = pytest.mark.skipif(not torch_client.available(), reason=torch_client.INSTALL_HINT)
needs_jax = pytest.mark.skipif(not jax_client.available(), reason=jax_client.INSTALL_HINT)


def user_loop(
    ref,
    s,
    frozen="mask",
    snapshot_after=False,
    detach_class=None,
    noise=True,
    momentum=0.0,
    step_lr=None,
    reduction="mean",
    nesterov=False,
    **model,
):
    """The README's PyTorch loop for stage ``s`` of ``ref``, with one switch:
    ``frozen`` "mask" (frozen filters out of the update), "decay" (their
    gradient masked by a hook, SGD's weight decay still on them) or "train";
    ``snapshot_after`` (W recorded after the step); ``detach_class`` (0 or 1:
    that class's filters detached from the loss); ``noise`` False (the noise
    patch's pre-activations detached); ``bias`` (a bias of 0.05 per filter,
    not stored); ``swap`` (f = F_{-1} - F_{+1}); ``momentum`` (SGD's);
    ``step_lr`` ((step_size, gamma) of a StepLR scheduler); ``reduction``
    ("sum": the loss summed over the inputs); ``nesterov`` (SGD's, with
    ``momentum``)."""
    import torch

    X, y = torch.tensor(ref[f"{s}/X"]), torch.tensor(ref[f"{s}/y"])
    W = torch.nn.Parameter(torch.tensor(ref[f"{s}/W0"]))
    keep = torch.tensor(ref[f"{s}/trainable"], dtype=torch.float64)[..., None]
    lam = float(ref[f"{s}/weight_decay"])
    if frozen == "mask":  # w <- w - eta (grad + lambda w) on the trainable filters only
        W.register_hook(lambda g: (g + lam * W.detach()) * keep)
    elif frozen == "decay":  # the gradient masked, SGD's weight decay on every filter
        W.register_hook(lambda g: g * keep)
    opt = torch.optim.SGD(
        [W],
        lr=float(ref[f"{s}/eta"]),
        weight_decay=0 if frozen == "mask" else lam,
        momentum=momentum,
        nesterov=nesterov,
    )
    sched = None if step_lr is None else torch.optim.lr_scheduler.StepLR(opt, *step_lr)
    is_noise = torch.tensor(np.all(ref[f"{s}/X"] == ref[f"{s}/xi"][:, None, :], axis=2))
    steps = [int(t) for t in ref[f"{s}/steps"]]
    m, snaps, losses = W.shape[1], [], []
    for t in range(steps[-1] + 1):
        if t in steps and not snapshot_after:
            snaps.append(W.detach().numpy().copy())
        Wc = W
        if detach_class == 0:
            Wc = torch.stack([W[0].detach(), W[1]])
        elif detach_class == 1:
            Wc = torch.stack([W[0], W[1].detach()])
        pre = torch.einsum("jrd,ipd->jrip", Wc, X)
        if not noise:
            pre = torch.where(is_noise, torch.einsum("jrd,ipd->jrip", Wc.detach(), X), pre)
        if model.get("bias"):
            pre = pre + 0.05
        F = torch.relu(pre).sum(dim=(1, 3)) / m
        f = F[1] - F[0] if model.get("swap") else F[0] - F[1]
        loss = getattr(torch.nn.functional.softplus(-y * f), reduction)()
        losses.append(loss.item())
        if t < steps[-1]:
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
        if t in steps and snapshot_after:
            snaps.append(W.detach().numpy().copy())
    out = {k: ref[k] for k in ("format_version", "config_json", "provenance_json")}
    for k in ("X", "y", "y_clean", "xi", "signals", "W0", "eta", "weight_decay"):
        out[f"{s}/{k}"] = ref[f"{s}/{k}"]
    out[f"{s}/trainable"], out[f"{s}/steps"] = ref[f"{s}/trainable"], ref[f"{s}/steps"]
    out[f"{s}/W"], out[f"{s}/loss"] = np.stack(snaps), np.array(losses)
    if s == "down":
        out["down/inherited"] = ref["down/inherited"]
    return out
