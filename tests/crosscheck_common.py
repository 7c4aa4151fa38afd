"""What the cross-check tests share: a small transfer run (short stages,
weight decay in both, the inherited filters frozen: every part of a file
is exercised) and the markers of the optional framework clients."""

from __future__ import annotations

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
