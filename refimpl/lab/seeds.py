"""Seeding: the one scheme every sweep uses.

A sweep item (one config, one replicate) gets the seed :func:`derive_seed`:
a hash of the config's fields (its own ``seed`` and the fields named in
``common`` left out), the replicate index and a salt. Results therefore
depend neither on the number of workers nor on the order in which items run,
and fields named in ``common`` share seeds (common random numbers). Inside
one run the seed is split into named, independent streams
(:func:`refimpl.transfer.streams`).
"""

from __future__ import annotations

import hashlib
import json
import os

from ..config import Config
from ..transfer import streams

__all__ = [
    "derive_seed",
    "canonical",
    "sha256",
    "streams",
    "MAX_SEED",
    "REPLICATE_ENV",
    "stream_salt",
]

MAX_SEED = 2**63 - 1

REPLICATE_ENV = "REFIMPL_REPLICATE"
"""Environment variable holding the salt of a replication (``validate
--replicate SALT``): every sweep then draws an independent seed stream."""


def stream_salt(salt=""):
    """The salt a sweep uses: ``salt``, extended by the replication salt when
    one is set (:data:`REPLICATE_ENV`), so that a replication runs the same
    protocol on seeds independent of the original ones."""
    replicate = os.environ.get(REPLICATE_ENV)
    return f"{salt}|replicate:{replicate}" if replicate else str(salt)


def canonical(obj):
    """Canonical JSON text of ``obj`` (sorted keys, no spaces, strict)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def sha256(obj):
    """SHA-256 hex digest of :func:`canonical` ``(obj)``."""
    return hashlib.sha256(canonical(obj).encode()).hexdigest()


def derive_seed(config, replicate, common=(), salt=""):
    """The seed of replicate ``replicate`` of ``config``.

    SHA-256 of the config's fields (``config.seed_fields()`` where the class
    defines it; its own ``seed`` and the ``common`` fields left out), the
    replicate index and ``salt``; the first 8 bytes, shifted
    to fit in [0, 2^63).

    Parameters
    ----------
    config : a config dataclass (``to_dict()``), or a dict of :class:`refimpl.Config` fields
    replicate : int
    common : iterable of str
        Fields that do not change the seed (common random numbers across them).
    salt : str
        Separates seed streams of different sweeps with equal configs.
    """
    if isinstance(config, dict):  # the fields of a refimpl.Config
        config = Config.from_dict(config)
    if callable(getattr(config, "seed_fields", None)):
        values = config.seed_fields()
    else:
        values = config.to_dict()
    for name in ("seed", *common):
        if name not in values:
            raise ValueError(f"common field {name!r} is not a config field")
        values.pop(name)
    digest = hashlib.sha256(
        canonical({"config": values, "replicate": int(replicate), "salt": str(salt)}).encode()
    ).digest()
    return int.from_bytes(digest[:8], "little") >> 1
