"""The transfer regime most claims start from (every field set explicitly:
the package defaults may change), full size and CI size."""
from __future__ import annotations

from ..config import Config

__all__ = ["TRANSFER_BASE", "TRANSFER_QUICK", "transfer_base"]

TRANSFER_BASE = dict(d=600, m=10, m_down=None, n_up=200, n_down=10, u_norm=2.0, v_up_norm=1.0,
                     v_down_norm=1.0, v_cos=0.0, sigma_p_up=1.0, sigma_p_down=1.0, flip_up=0.0,
                     flip_down=0.1, layout="joint", eta=1.0, sigma_0=0.01, weight_decay_up=0.0,
                     weight_decay=0.0, steps_up=200, steps_down=200, epsilon=0.0, snapshots=2,
                     alpha=0.5, granularity="filter", freeze_inherited=False,
                     rescale_inherited=1.0, n_test=10000, estimator="reduced", seed=0)
"""The full-size transfer regime."""

TRANSFER_QUICK = dict(TRANSFER_BASE, d=120, m=4, n_up=40, n_down=8, steps_up=60, steps_down=60,
                      n_test=2000)
"""The CI-size version of :data:`TRANSFER_BASE`."""


def transfer_base(quick, **changes):
    """The base transfer :class:`~refimpl.config.Config` (full or quick size)."""
    return Config.from_dict({**(TRANSFER_QUICK if quick else TRANSFER_BASE), **changes})
