"""A second reference client: the model of docs/model.md §3 in JAX (CPU).

Written the way a JAX user would: a pure loss function of the weights,
``jax.value_and_grad``, a jitted SGD step w <- w - eta (grad + lambda w) on
the trainable filters (frozen ones are masked out), float64 through
``jax.enable_x64``. It trains the stages of a refimpl trajectory file from
that file's inputs and exports weights and the loss at every step in format
1, like :mod:`.torch_client`; ``crosscheck`` then compares.

jax is optional (the ``jax`` extra: ``pip install jax jaxlib``, CPU); it is
imported when a function here is called.

Command line::

    python -m refimpl.crosscheck.jax_client REF.npz OUT.npz [--float32]
                                            [--coefficients] [--stage up ...]
"""

from __future__ import annotations

import sys

import numpy as np

from ..errors import UsageError
from . import clients

__all__ = ["INSTALL_HINT", "available", "data_loss", "train", "client_arrays", "main"]

INSTALL_HINT = "JAX is not installed: pip install jax jaxlib (CPU; the jax extra)"


def available() -> bool:
    """True when jax can be imported."""
    import importlib.util

    try:
        return importlib.util.find_spec("jax") is not None
    except (ImportError, ValueError):  # e.g. sys.modules["jax"] = None
        return False


def _jax():
    try:
        import jax
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    return jax


def data_loss(W, X, y):
    """(1/n) sum_i log(1 + exp(-y_i f(W, x_i))) with
    f = F_{+1} - F_{-1}, F_j = (1/m) sum_r sum_p ReLU(<w_{j,r}, x_i^(p)>)
    (docs/model.md §3.1-3.2), as jax arrays; ``jax.nn.relu`` has ReLU'(0) = 0."""
    import jax
    import jax.numpy as jnp

    m = W.shape[1]
    pre = jnp.einsum("jrd,ipd->jrip", W, X)
    F = jax.nn.relu(pre).sum(axis=(1, 3)) / m  # (2, n)
    return jnp.mean(jax.nn.softplus(-y * (F[0] - F[1])))


def train(W0, X, y, eta, weight_decay, trainable, steps, snapshots, dtype="float64"):
    """Full-batch GD in JAX: w <- w - eta (grad L + lambda w) on the
    trainable filters (docs/model.md §3.4), frozen filters unchanged.

    Parameters and returns as :func:`refimpl.crosscheck.torch_client.train`.
    """
    jax = _jax()
    import jax.numpy as jnp

    with jax.enable_x64(dtype == "float64"):
        jdt = {"float64": jnp.float64, "float32": jnp.float32}[dtype]
        W = jnp.asarray(np.asarray(W0), dtype=jdt)
        Xj = jnp.asarray(np.asarray(X), dtype=jdt)
        yj = jnp.asarray(np.asarray(y), dtype=jdt)
        mask = jnp.asarray(np.asarray(trainable, bool))[:, :, None]
        value_and_grad = jax.value_and_grad(data_loss)

        @jax.jit
        def step(W):
            value, grad = value_and_grad(W, Xj, yj)
            moved = W - eta * (grad + weight_decay * W)
            return jnp.where(mask, moved, W), value

        wanted = set(int(s) for s in snapshots)
        snaps, loss = [], np.empty(int(steps) + 1)
        for t in range(int(steps) + 1):
            if t in wanted:
                snaps.append(np.asarray(W, dtype=np.float64))
            if t == steps:
                loss[t] = float(jax.jit(data_loss)(W, Xj, yj))
                break
            W, value = step(W)
            loss[t] = float(value)
    return np.stack(snaps), loss


def client_arrays(ref_path, dtype="float64", coefficients=False, stages=None):
    """Train the stages of a refimpl trajectory file with the JAX client
    (:func:`refimpl.crosscheck.clients.client_arrays`)."""
    jax = _jax()
    return clients.client_arrays(
        ref_path,
        train,
        dtype,
        coefficients,
        stages,
        package=__name__,
        versions={"jax": jax.__version__},
    )


def main(argv=None):
    """Command line: train REF.npz's inputs with JAX and write OUT.npz."""
    return clients.main(argv, "jax_client", client_arrays)


if __name__ == "__main__":
    sys.exit(main())
