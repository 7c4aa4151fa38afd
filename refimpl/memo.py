"""Shared stages: within a :func:`shared_stages` block, work whose inputs are
equal is done once.

:func:`refimpl.transfer.run_experiment` asks :func:`memoized` for every
stage it trains and every test error it estimates. Outside a block that is a
plain call. Inside one, the result is kept under a SHA-256 of everything the
computation reads (the stage's initial weights, its data, step size, step
cap, weight decay, trainable mask, stopping rule, snapshots and engine; for a
test error the weights, the signals, the noise level, the label noise, the
layout, the number of draws, the seed of the test stream and the estimator)
and handed out again when the same inputs come back. Sweeps under common
random numbers repeat such work across their items (the upstream stage and
the scratch baseline of every alpha of one seed are the same): the sweep
runner (:mod:`refimpl.lab.sweep`) runs each group of items that share a seed
inside one block. The result handed out is the object computed the first
time, so every number is bit for bit the one a separate run gives; its
arrays are made read-only, so that no consumer can change what another one
reads.

The kept results are bounded: when they would exceed :func:`memo_limit`
(:data:`MEMO_BYTES`, or an eighth of the memory budget of
:mod:`refimpl.budget` when that is smaller: several workers keep a block each),
the block forgets them all and goes on (a later request recomputes; results
do not depend on it).
"""

from __future__ import annotations

import dataclasses
import hashlib
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np

from .budget import memory_budget

__all__ = ["MEMO_BYTES", "memo_limit", "shared_stages", "memoized", "content_key"]

MEMO_BYTES = 256 << 20
"""Bytes of results a :func:`shared_stages` block keeps at most (256 MiB;
less under a small memory budget, :func:`memo_limit`)."""


def memo_limit():
    """Bytes a block keeps at most: :data:`MEMO_BYTES`, or an eighth of the
    memory budget (``REFIMPL_MEMORY_BUDGET``, :func:`refimpl.budget.memory_budget`)
    when that is smaller.

    Returns
    -------
    float
    """
    return min(float(MEMO_BYTES), memory_budget() / 8)


# {key: (result, bytes)} of the open block, else None; a context variable, so
# that blocks in different threads (a dask worker's threads) never meet
_memo = ContextVar("refimpl_shared_stages", default=None)


@contextmanager
def shared_stages():
    """A block within which equal stages and test errors are computed once
    (module docstring). Blocks nest: an inner block shares the outer one's
    results. Each thread has its own blocks.

    Yields
    ------
    None
        The block runs with the memo in place (used as ``with
        shared_stages():``); the memo is dropped when the outermost block ends.
    """
    token = _memo.set({}) if _memo.get() is None else None
    try:
        yield
    finally:
        if token is not None:
            _memo.reset(token)


def _update(h, part):
    if isinstance(part, np.ndarray):
        h.update(f"{part.dtype.str}{part.shape}".encode())
        h.update(np.ascontiguousarray(part).tobytes())
    elif dataclasses.is_dataclass(part) and not isinstance(part, type):
        h.update(type(part).__name__.encode())
        for f in dataclasses.fields(part):
            _update(h, getattr(part, f.name))
    elif isinstance(part, dict):
        h.update(b"{")
        for k in sorted(part, key=repr):
            _update(h, k)
            _update(h, part[k])
        h.update(b"}")
    elif isinstance(part, (tuple, list)):
        h.update(b"(")
        for p in part:
            _update(h, p)
        h.update(b")")
    elif part is None or isinstance(part, (bool, int, float, complex, str, np.generic)):
        h.update(f"{type(part).__name__}:{part!r}".encode())
    else:  # a repr may abbreviate: never key on one
        raise TypeError(f"content_key: cannot key a {type(part).__name__}")
    h.update(b"|")


def content_key(*parts):
    """SHA-256 of ``parts``: arrays by dtype, shape and bytes, dataclasses
    field by field, dicts and sequences item by item, numbers, strings and
    None by type and repr; TypeError for anything else (a repr may abbreviate,
    numpy's does for large arrays).

    Parameters
    ----------
    *parts : object
        The values the key is made of.

    Returns
    -------
    str
        The hex digest.
    """
    h = hashlib.sha256()
    for part in parts:
        _update(h, part)
    return h.hexdigest()


def _freeze(x):
    """The bytes of x's arrays (made read-only), recursively through
    dataclasses and dicts."""
    if isinstance(x, np.ndarray):
        x.flags.writeable = False
        return x.nbytes
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return sum(_freeze(getattr(x, f.name)) for f in dataclasses.fields(x))
    if isinstance(x, dict):
        return sum(_freeze(v) for v in x.values())
    return 0


def memoized(kind, parts, compute):
    """``compute()``, or, inside a :func:`shared_stages` block, the result
    kept for equal ``(kind, parts)`` (computed now when there is none).

    Parameters
    ----------
    kind : str
        What is computed (a stage, a test error); part of the key.
    parts : sequence
        The inputs of the computation; keyed by :func:`content_key`.
    compute : callable
        Computes the result, without arguments.

    Returns
    -------
    object
        The result of ``compute()``, or the kept one (its arrays read-only).
        When the kept results would exceed :func:`memo_limit` the memo is
        emptied first; a result larger than the limit is not kept.
    """
    memo = _memo.get()
    if memo is None:
        return compute()
    key = (kind, content_key(*parts))
    if key in memo:
        return memo[key][0]
    result = compute()
    size, limit = _freeze(result), memo_limit()
    if size > limit:  # larger than the whole memo: handed out, not kept
        return result
    if sum(b for _, b in memo.values()) + size > limit:
        memo.clear()
    memo[key] = (result, size)
    return result
