"""Sweeps on a dask.distributed cluster (optional extra ``cluster``): the
scheduler address and timeout as the user gives them (option or environment,
checked before any work), a connection whose connect and handshake are both
bounded, and the executor that runs a sweep's items on the cluster's workers
while this process persists each result as it arrives (the cache of
:mod:`refimpl.lab.sweep`, so a stopped cluster sweep resumes as a local one).
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import os
import re
import threading
import time
from contextlib import contextmanager

from ..errors import UsageError
from .sweep import _indexed, _write_result

__all__ = [
    "SCHEDULER_ENV",
    "SCHEDULER_TIMEOUT_ENV",
    "SCHEDULER_TIMEOUT",
    "SCHEDULER_FORMS",
    "check_scheduler",
    "check_scheduler_timeout",
    "cluster_settings",
    "set_cluster_environment",
    "cluster_environment",
    "connect_scheduler",
]

SCHEDULER_ENV = "REFIMPL_SCHEDULER"
"""Environment variable naming a dask.distributed scheduler for every sweep
(empty: none)."""

SCHEDULER_TIMEOUT_ENV = "REFIMPL_SCHEDULER_TIMEOUT"
"""Environment variable of ``--scheduler-timeout`` (seconds)."""

SCHEDULER_TIMEOUT = 30.0
"""Default seconds within which the scheduler must accept the connection and
answer dask's handshake, and within which a worker must join when the
cluster has none (at the start, or when every worker has left)."""

MAX_SCHEDULER_TIMEOUT = 7 * 86400.0
"""The longest ``--scheduler-timeout`` accepted (a week)."""

SCHEDULER_FORMS = (
    "tcp://HOST:PORT or HOST:PORT (also tls://, ws://, wss://, ucx://; HOST a name, "
    "an IPv4 address or [an IPv6 address], PORT 1-65535)"
)
"""The scheduler addresses accepted, as the error messages name them."""


_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")
_LABEL = r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)"
_HOST_NAME = re.compile(rf"{_LABEL}(\.{_LABEL})*\.?")


def _host_port_problem(text):
    """Why ``text`` is not ``HOST:PORT`` (HOST a name, an IPv4 address or a
    bracketed IPv6 one), or None."""
    if text.startswith("["):
        host, closed, tail = text[1:].partition("]")
        if not closed:
            return "an IPv6 address without its closing ]"
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return f"{host!r} is not an IPv6 address"
        if not tail.startswith(":"):
            return "no :PORT after the address"
        port = tail[1:]
    else:
        host, colon, port = text.rpartition(":")
        if not colon:
            return "no :PORT"
        if ":" in host:
            return "an IPv6 address needs brackets, like [::1]:8786"
        if re.fullmatch(r"[0-9.]+", host):
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                return f"{host!r} is not an IPv4 address"
        elif len(host) > 253 or not _HOST_NAME.fullmatch(host):
            return f"{host[:80]!r} is not a host name"
    if not re.fullmatch(r"[0-9]{1,5}", port) or not 1 <= int(port) <= 65535:
        return f"port {port[:20]!r} is not a number in 1-65535"
    return None


def _address_problem(address):
    """Why ``address`` is not a scheduler address of an accepted form, or None."""
    if not isinstance(address, str):
        return f"not a string but {type(address).__name__}"
    if not address:
        return "empty"
    if not address.isprintable() or any(c.isspace() for c in address):
        return "spaces or control characters"
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "tcp", address
    if scheme == "inproc":  # a cluster inside this process (LocalCluster(processes=False))
        return None if re.fullmatch(r"[^/]+/[0-9]+/[0-9]+", rest) else "not an inproc address"
    if scheme not in _SCHEMES:
        return f"unknown scheme {scheme[:20]}://"
    return _host_port_problem(rest)


def check_scheduler(address, given="scheduler"):
    """``address`` when it is a dask.distributed scheduler address of an
    accepted form (:data:`SCHEDULER_FORMS`, or ``inproc://`` for a cluster in
    this process) whose transport dask offers here; otherwise UsageError, one
    line naming ``given`` (the option, parameter or environment variable), the
    address and the accepted forms. Needs the cluster extra (UsageError
    without it). Nothing is contacted."""
    problem = _address_problem(address)
    if problem is not None:
        raise UsageError(f"{given} {str(address)[:200]!r}: {problem}; expected {SCHEDULER_FORMS}")
    try:
        from distributed.comm import registry
    except ImportError:
        raise UsageError(
            f"{given} needs dask.distributed (the cluster extra): pip install 'refimpl[cluster]'"
        ) from None
    scheme = address.partition("://")[0] if "://" in address else "tcp"
    try:
        registry.get_backend(scheme).get_connector()
    except Exception as exc:  # e.g. ucx without its backend: an abstract connector
        raise UsageError(
            f"{given} {address!r}: dask offers no {scheme}:// transport here "
            f"({type(exc).__name__}); expected {SCHEDULER_FORMS}"
        ) from None
    return address


def check_scheduler_timeout(value, given="scheduler_timeout"):
    """``value`` as seconds (a float in (0, :data:`MAX_SCHEDULER_TIMEOUT`]);
    UsageError naming ``given`` otherwise."""
    try:
        seconds = float(value) if isinstance(value, (str, int, float)) else math.nan
    except (ValueError, OverflowError):
        seconds = math.nan
    if isinstance(value, bool) or not 0.0 < seconds <= MAX_SCHEDULER_TIMEOUT:
        raise UsageError(
            f"{given} {str(value)[:40]!r}: expected seconds, a number > 0 and at most "
            f"{MAX_SCHEDULER_TIMEOUT:g}"
        )
    return seconds


def cluster_settings(scheduler=None, timeout=None, names=("scheduler", "scheduler_timeout")):
    """``(address, seconds)``, checked: the scheduler address (``scheduler``,
    else ``REFIMPL_SCHEDULER`` when set and not empty, else None: local
    workers) and the timeout (``timeout``, else ``REFIMPL_SCHEDULER_TIMEOUT``,
    else :data:`SCHEDULER_TIMEOUT`). Values given here are named by ``names``
    in errors, values of the environment by their variable; the timeout's
    variable is read only when a scheduler is used."""
    if scheduler is None:
        env = os.environ.get(SCHEDULER_ENV, "")
        address = check_scheduler(env, SCHEDULER_ENV) if env else None
    else:
        address = check_scheduler(scheduler, names[0])
    if timeout is not None:
        return address, check_scheduler_timeout(timeout, names[1])
    env = os.environ.get(SCHEDULER_TIMEOUT_ENV, "")
    if address is None or not env:
        return address, SCHEDULER_TIMEOUT
    return address, check_scheduler_timeout(env, SCHEDULER_TIMEOUT_ENV)


def set_cluster_environment(scheduler=None, timeout=None):
    """The command line's ``--scheduler`` and ``--scheduler-timeout`` (None:
    not given), checked together with the environment's values, set as the
    environment variables that every sweep of the command (and its worker
    processes) reads; the caller restores them. UsageError before any work."""
    cluster_settings(scheduler, timeout, ("--scheduler", "--scheduler-timeout"))
    if scheduler is not None:
        os.environ[SCHEDULER_ENV] = scheduler
    if timeout is not None:
        os.environ[SCHEDULER_TIMEOUT_ENV] = str(timeout)


@contextmanager
def cluster_environment(scheduler=None, timeout=None):
    """:func:`set_cluster_environment` for the block, the environment
    restored after it; yields :func:`cluster_settings` ``(address, seconds)``."""
    saved = {k: os.environ.get(k) for k in (SCHEDULER_ENV, SCHEDULER_TIMEOUT_ENV)}
    try:
        set_cluster_environment(scheduler, timeout)
        yield cluster_settings()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _one_line(exc):
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _handshake_problem(address, timeout):
    """None when the scheduler at ``address`` accepts a connection and
    completes dask's handshake within ``timeout`` seconds, else why not (one
    line). dask's own timeout bounds the connection, not the handshake: a
    server that accepts and never answers would hold the client forever, so
    the attempt runs on an event loop of its own, in a thread of its own,
    under a deadline."""
    from distributed.comm import connect

    outcome = []

    async def attempt():
        comm = await asyncio.wait_for(connect(address, timeout=timeout), timeout)
        await comm.close()

    def run():
        try:
            asyncio.run(attempt())
            outcome.append(None)
        except (TimeoutError, asyncio.TimeoutError):  # one class from Python 3.11 on
            outcome.append(f"no answer to dask's handshake within {timeout:g} s")
        except OSError as exc:  # refused, unreachable, closed (CommClosedError)
            outcome.append(_one_line(exc))
        except BaseException as exc:  # noqa: BLE001  (bytes that are not dask's: any error)
            outcome.append(
                f"the server there answered, but not as a dask scheduler "
                f"({type(exc).__name__}: {_one_line(exc)})"
            )

    thread = threading.Thread(target=run, name="refimpl-scheduler-handshake", daemon=True)
    thread.start()
    thread.join(timeout + 5.0)  # a hung name lookup, say: given up with the thread
    return outcome[0] if outcome else f"no answer to dask's handshake within {timeout:g} s"


def _await_worker(client, address, timeout, what):
    """Return once the cluster has a worker; UsageError after ``timeout``
    seconds without one (``what``: the message's start)."""
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (TimeoutError, asyncio.TimeoutError):  # one class from Python 3.11 on
        raise UsageError(
            f"{what} the dask scheduler at {address} within {timeout:g} s (start workers: "
            f"dask worker {address}; or raise --scheduler-timeout / {SCHEDULER_TIMEOUT_ENV})"
        ) from None
    except (OSError, ValueError, TypeError) as exc:
        raise UsageError(f"lost the dask scheduler at {address}: {_one_line(exc)}") from None


def connect_scheduler(address, timeout=SCHEDULER_TIMEOUT):
    """A dask.distributed Client of the scheduler at ``address`` (checked:
    :func:`check_scheduler`) once at least one worker has joined. Each step
    is bounded by ``timeout`` seconds: the connection with dask's handshake
    (:func:`_handshake_problem`), the client's own start, and the wait for a
    worker. Every failure is a UsageError of one line naming the address."""
    check_scheduler(address)
    with _dask_logs_quiet():
        return _connect(address, timeout)


def _connect(address, timeout):
    from distributed import Client

    problem = _handshake_problem(address, timeout)
    if problem is not None:
        raise UsageError(f"cannot reach the dask scheduler at {address}: {problem}")
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, ValueError, TypeError, MemoryError, ImportError) as exc:
        raise UsageError(
            f"cannot reach the dask scheduler at {address}: {_one_line(exc)}"
        ) from None
    try:
        _await_worker(client, address, timeout, "no workers joined")
    except BaseException:
        client.close()
        raise
    return client


def _execute_on_cluster(groups, address, timeout=SCHEDULER_TIMEOUT):
    """Run the groups of items (:func:`refimpl.lab.sweep._groups`, each in one
    task) on a dask.distributed cluster; yields ``(index, result)``
    as results arrive, after persisting each one here (the workers need not
    share this machine's disk). A lost worker's items are rescheduled by dask;
    a killed client loses nothing that has arrived. Connecting is bounded by
    ``timeout`` seconds (:func:`connect_scheduler`), and so is the wait for a
    worker whenever nothing has arrived for ``timeout`` seconds."""
    with _dask_logs_quiet():
        yield from _run_on_cluster(groups, address, timeout)


def _run_on_cluster(groups, address, timeout):
    client = connect_scheduler(address, timeout)
    with client:
        futures = {  # a group of items in one task; results persisted here
            client.submit(
                _indexed,
                [(i, (*args[:-1], None)) for i, args in group],
                key=f"refimpl-{group[0][1][5]}",
                pure=False,
            ): g
            for g, group in enumerate(groups)
        }
        calls = {i: args for group in groups for i, args in group}
        for results in _arrivals(client, futures, address, timeout):
            for i, result in results:
                measure, measure_id, config_class, cd, options, key, path = calls[i]
                if path is not None:
                    cfg = config_class.from_dict(cd)
                    _write_result(path, key, measure_id, cfg, options, result)
                yield i, result


@contextmanager
def _dask_logs_quiet():
    """dask's client logs the failures it meets (a lost scheduler, a refused
    reconnection) as tracebacks on stderr; the sweep reports them itself,
    in one line, so inside the block only dask's critical records show."""
    import logging

    names = ["distributed"] + [
        n for n in logging.root.manager.loggerDict if n.startswith("distributed.")
    ]
    levels = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)


def _arrivals(client, futures, address, timeout):
    """The results of ``futures`` as they finish (a measure's own error is
    raised as it is); when nothing has arrived for ``timeout`` seconds, a
    worker must join within ``timeout`` more (:func:`_await_worker`)."""
    from concurrent.futures import CancelledError as FutureCancelledError

    from distributed import as_completed

    arriving = as_completed(futures, loop=client.loop)
    quiet_since = time.monotonic()
    while not arriving.is_empty():
        if not arriving.has_ready():
            if time.monotonic() - quiet_since > timeout:
                _await_worker(client, address, timeout, "no result arrived and no worker joined")
                quiet_since = time.monotonic()
            time.sleep(0.02)
            continue
        future = next(arriving)
        try:
            arrived = future.result()
        except (asyncio.CancelledError, FutureCancelledError):  # dask's: the latter
            raise UsageError(
                f"lost the dask scheduler at {address} (the items not yet arrived were "
                "cancelled; those that arrived are kept: run again to resume)"
            ) from None
        yield arrived
        quiet_since = time.monotonic()
