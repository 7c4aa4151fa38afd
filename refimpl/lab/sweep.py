"""The sweep runner every experiment shares: a grid of configurations, each
run for ``replicates`` seeds, with a cache that makes an interrupted sweep
resume where it stopped.

Every (config, replicate) item

- gets its seed from :func:`refimpl.lab.seeds.derive_seed` (a hash of the
  config without its ``seed`` and ``common`` fields, the replicate index and
  a salt), so results depend neither on the number of workers nor on the
  order in which items run;
- runs in a joblib worker (``jobs > 1``; joblib is needed only then) and is
  persisted atomically (:func:`refimpl.files.atomic_write`) as
  ``CACHE/<key>.json`` as soon as it finishes. ``key`` is a SHA-256 of the
  measure, its options, the seeded config, the record format, the package
  version and a hash of the code (:func:`code_hash`: every ``.py`` file of
  the package and the file defining a custom measure, read afresh for every
  sweep), so a code change never reuses stale results. Temporary ``.part``
  files a killed run left are removed at the next sweep's start;
- is checked when read back (JSON parse, key, SHA-256 of the result): a
  corrupt or partial record is reported on stderr and recomputed, and so is
  a cached result that lacks a metric the caller asks for (``metrics``).

Non-finite numbers (a diverged run) are stored as None (strict JSON) and read
back as NaN by :meth:`Sweep.values`; the statistics count them as missing
(:mod:`refimpl.lab.stats`).

A *config* is any frozen dataclass with ``to_dict()``, ``from_dict(dict)``
and ``replace(**changes)`` and a ``seed`` field (:class:`refimpl.Config`,
:class:`refimpl.lab.image_experiment.ImageConfig`). A *measure* maps a seeded config to
a flat dict of numbers or lists of numbers: a name of
:data:`refimpl.lab.measures.MEASURES` or any importable top-level function
``f(config, **options) -> dict``.
"""

from __future__ import annotations

import _thread
import asyncio
import hashlib
import inspect
import ipaddress
import json
import math
import os
import re
import shutil
import signal
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  (numba's BLAS, loaded now so that pinning reaches it)
from threadpoolctl import threadpool_limits

from ..config import Config
from ..errors import UsageError
from ..files import PART_SUFFIX, atomic_write, jsonable
from .measures import MEASURES
from .progress import Progress
from .seeds import canonical, derive_seed, sha256, stream_salt

__all__ = [
    "Sweep",
    "run_sweep",
    "item_key",
    "read_result",
    "CACHE_VERSION",
    "code_hash",
    "clean_stale_parts",
    "SCHEDULER_ENV",
    "SCHEDULER_TIMEOUT_ENV",
    "SCHEDULER_TIMEOUT",
    "SCHEDULER_FORMS",
    "check_scheduler",
    "cluster_settings",
    "cluster_environment",
    "connect_scheduler",
    "BLAS_THREADS",
    "WORKER_IDLE_SECONDS",
]

CACHE_VERSION = 2
"""Format version of the cache records (the code itself enters the key
through :func:`code_hash`)."""

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

WORKER_IDLE_SECONDS = 10
"""Idle joblib workers of a live sweep exit after this many seconds (loky's
timeout); a worker whose sweep process is gone exits within
:data:`PARENT_POLL_SECONDS`, busy or idle (:func:`_watch_parent`)."""

PARENT_POLL_SECONDS = 0.5

BLAS_THREADS = 1
"""BLAS threads of every sweep item, in this process and in the workers alike
(threadpoolctl), so that results do not depend on ``jobs`` or on the
machine's BLAS defaults; part of the cache key."""


def _config_class(config):
    for name in ("to_dict", "from_dict", "replace"):
        if not callable(getattr(config, name, None)):
            raise TypeError(
                f"a sweep item must be a config dataclass or a dict, not {type(config).__name__}"
            )
    return type(config)


def _measure_id(measure):
    if isinstance(measure, str):
        if measure not in MEASURES:
            raise ValueError(f"unknown measure {measure!r}; built-in: {', '.join(MEASURES)}")
        return measure
    return f"{measure.__module__}.{measure.__qualname__}"


_PACKAGE_DIR = Path(__file__).resolve().parent.parent


def _file_hashes(named_paths):
    """SHA-256 over (name, bytes) of each ``(name, path)`` pair, in order."""
    h = hashlib.sha256()
    for name, path in named_paths:
        h.update(str(name).encode() + b"\0")
        h.update(Path(path).read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def code_hash(extra=()):
    """SHA-256 of the bytes of every ``.py`` file of the package (named by
    their paths inside the package, sorted), plus the files in ``extra`` (the
    source file of a custom measure, named by its file name). Independent of
    where the package is installed; read afresh on every call, so an edited
    file in a long-lived session is never served stale results."""
    files = sorted((p.relative_to(_PACKAGE_DIR).as_posix(), p) for p in _PACKAGE_DIR.rglob("*.py"))
    return _file_hashes(files + [(Path(p).name, p) for p in extra])


def _measure_files(measure):
    """The source file of a custom measure outside the package (none for the
    built-in ones)."""
    if isinstance(measure, str):
        return ()
    try:
        path = inspect.getsourcefile(measure)
    except TypeError:
        path = None
    if path is None or _PACKAGE_DIR in Path(path).resolve().parents:
        return ()
    return (os.fspath(Path(path).resolve()),)


def item_key(measure_id, seeded_config, options, code=None):
    """Cache key of one item: SHA-256 of the measure, its options, the
    seeded config, the record format version, ``refimpl.__version__`` and
    the code hash (``code``; default :func:`code_hash` of the package)."""
    from .. import __version__

    return sha256(
        {
            "version": CACHE_VERSION,
            "package": __version__,
            "blas_threads": BLAS_THREADS,
            "code": code_hash() if code is None else code,
            "measure": measure_id,
            "options": options,
            "config": seeded_config.to_dict(),
        }
    )


# ----------------------------------------------------------------------
# persisted results
def read_result(path, key):
    """The result stored at ``path`` if the file is complete and consistent,
    else None (missing) or raises ValueError (corrupt: unparsable JSON, a key
    or checksum mismatch)."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:  # e.g. a folder where a record should be
        raise ValueError(f"unreadable ({exc.strerror or exc})") from None
    try:
        rec = json.loads(raw.decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    if not isinstance(rec, dict) or not {"key", "result", "sha256"} <= set(rec):
        raise ValueError("missing fields")
    if rec["key"] != key:
        raise ValueError("key mismatch")
    try:
        ok = sha256(rec["result"]) == rec["sha256"]
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError("checksum mismatch")
    return rec["result"]


def _write_result(path, key, measure_id, config, options, result):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)  # a wrong-kind entry in the cache: replaced
    rec = {
        "key": key,
        "measure": measure_id,
        "options": options,
        "config": config.to_dict(),
        "result": result,
        "sha256": sha256(result),
    }
    text = canonical(rec) + "\n"
    atomic_write(path, lambda fh: fh.write(text.encode()))


def _work(measure, measure_id, config_class, config_dict, options, key, path):
    """Worker: compute one item and persist it atomically; returns the result."""
    config = config_class.from_dict(config_dict)
    fn = MEASURES[measure] if isinstance(measure, str) else measure
    result = jsonable(fn(config, **options))
    if path is not None:
        _write_result(path, key, measure_id, config, options, result)
    return result


# ----------------------------------------------------------------------
# the runner
@dataclass
class Sweep:
    """Results of a sweep: ``points`` configs (unseeded, as given) times
    ``replicates`` seeds.

    Attributes
    ----------
    configs : list of Config
        The grid as given.
    replicates : int
    seeds : ndarray of shape (points, replicates), int
    results : list of list of dict
        ``results[point][replicate]``, the measure's output.
    computed, cached, recomputed : int
        How many items were computed, read from the cache, and found corrupt
        and recomputed.
    """

    configs: list
    replicates: int
    seeds: np.ndarray
    results: list
    computed: int = 0
    cached: int = 0
    recomputed: int = 0

    def values(self, metric):
        """ndarray of shape (points, replicates) of a scalar metric (NaN for
        None, i.e. a non-finite or undefined value)."""
        if any(metric not in r for row in self.results for r in row):
            raise KeyError(
                f"metric {metric!r} is not in every result of this sweep; "
                "name it in run_sweep(metrics=...) so that older cached results "
                "lacking it are recomputed"
            )
        return np.array(
            [[np.nan if r[metric] is None else r[metric] for r in row] for row in self.results],
            dtype=float,
        )

    def n_missing(self, metric):
        """How many of the metric's values are missing (None or non-finite)."""
        return int(np.sum(~np.isfinite(self.values(metric))))

    def mean(self, metric):
        """Mean over replicates, shape (points,) (NaNs ignored; NaN when all are)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(self.values(metric), axis=1)

    def se(self, metric):
        """Standard error of the mean over replicates, shape (points,) (NaN
        with fewer than two finite values)."""
        v = self.values(metric)
        n = np.sum(np.isfinite(v), axis=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            sd = np.nanstd(v, axis=1, ddof=1)
        return np.where(n > 1, sd / np.sqrt(np.maximum(n, 1)), np.nan)

    def rows(self, fields=(), metrics=None):
        """Flat table: one dict per item with ``point``, ``replicate``,
        ``seed``, the given config fields and the metrics (all by default)."""
        out = []
        for p, (cfg, row) in enumerate(zip(self.configs, self.results, strict=True)):
            cd = cfg.to_dict()
            for r, res in enumerate(row):
                rec = {"point": p, "replicate": r, "seed": int(self.seeds[p, r])}
                rec.update({f: cd[f] for f in fields})
                rec.update({k: v for k, v in res.items() if metrics is None or k in metrics})
                out.append(rec)
        return out


def run_sweep(
    configs,
    measure="transfer",
    replicates=10,
    jobs=1,
    cache=None,
    common=(),
    salt="",
    options=None,
    label="sweep",
    progress=True,
    metrics=(),
    scheduler=None,
):
    """Run every config of a grid for ``replicates`` derived seeds.

    Parameters
    ----------
    configs : list of config dataclasses (or dicts of :class:`~refimpl.Config` fields)
        The grid (each config's own ``seed`` is ignored), all of one class.
    measure : str or callable
        A name of :data:`MEASURES` or an importable top-level function
        ``f(config, **options) -> dict``.
    replicates : int
    jobs : int
        joblib workers (1: in this process).
    cache : path, optional
        Folder of persisted results (created, with a ``.gitignore`` that
        ignores it). None: nothing is persisted.
    common : iterable of str
        Config fields that do not enter the seed (see :func:`derive_seed`).
    salt : str
        Separates the seed streams of sweeps with equal configs; extended by
        the replication salt when one is set (:func:`refimpl.lab.seeds.stream_salt`).
    options : dict, optional
        Keyword arguments of the measure (JSON-able; part of the cache key).
    label : str
        Name on the progress lines.
    progress : bool
    metrics : iterable of str
        Metrics the caller will read: a cached result lacking one is a cache
        miss (recomputed); a fresh result lacking one is an error of the measure.
    scheduler : str, optional
        Address of a dask.distributed scheduler (``tcp://host:8786``); the
        items then run on that cluster's workers (``jobs`` is ignored) and
        this process persists each result as it arrives. Default: the
        environment variable ``REFIMPL_SCHEDULER``, else local workers. The
        address is checked before any work (:func:`check_scheduler`); the
        connection, dask's handshake and the wait for a worker are bounded
        by ``REFIMPL_SCHEDULER_TIMEOUT`` seconds (default
        :data:`SCHEDULER_TIMEOUT`; :func:`connect_scheduler`).

    Returns
    -------
    Sweep
    """
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    if not isinstance(replicates, int) or replicates < 1:
        raise ValueError(f"replicates must be a positive integer, got {replicates!r}")
    cluster = cluster_settings(scheduler)  # (address or None, timeout): checked first
    started = time.time()
    options = jsonable(dict(options or {}))
    measure_id = _measure_id(measure)
    code = code_hash(_measure_files(measure))
    configs = [Config.from_dict(c) if isinstance(c, dict) else c for c in configs]
    classes = {_config_class(c) for c in configs}
    if len(classes) > 1:
        raise TypeError("a sweep's configs must all be of one class")
    config_class = classes.pop() if classes else Config
    common = tuple(common)
    metrics = tuple(metrics)
    salt = stream_salt(salt)
    warn = Progress(enabled=progress).stream
    folder = None if cache is None else _open_cache(cache, started, label, warn)
    seeds = np.zeros((len(configs), replicates), dtype=np.int64)
    results = [[None] * replicates for _ in configs]
    todo = []
    n_cached = n_corrupt = 0
    for p, cfg in enumerate(configs):
        for r in range(replicates):
            s = derive_seed(cfg, r, common, salt)
            seeds[p, r] = s
            seeded = cfg.replace(seed=s)
            key = item_key(measure_id, seeded, options, code)
            path = None if folder is None else folder / key[:2] / f"{key}.json"
            if path is not None:
                res, corrupt = _cached(path, key, metrics, label, warn)
                n_corrupt += corrupt
                if res is not None:
                    results[p][r] = res
                    n_cached += 1
                    continue
            todo.append((p, r, seeded.to_dict(), key, None if path is None else os.fspath(path)))
    total = len(configs) * replicates
    bar = Progress(enabled=progress, after=1.0, every=2.0)
    done = n_cached
    calls = [
        (measure, measure_id, config_class, cd, options, key, path)
        for (_, _, cd, key, path) in todo
    ]
    runs = _execute(calls, jobs) if cluster[0] is None else _execute_on_cluster(calls, *cluster)
    for i, res in runs:
        p, r = todo[i][0], todo[i][1]
        results[p][r] = res
        done += 1
        bar(label, done, total, f"{n_cached} cached")
    for p, r, *_ in todo:
        lacking = [k for k in metrics if k not in results[p][r]]
        if lacking:
            raise KeyError(f"measure {measure_id} returned no {', '.join(map(repr, lacking))}")
    return Sweep(
        configs=configs,
        replicates=replicates,
        seeds=seeds,
        results=results,
        computed=len(todo),
        cached=n_cached,
        recomputed=n_corrupt,
    )


def _open_cache(cache, started, label, warn):
    """The cache folder, created with a ``.gitignore`` that ignores it; the
    temporary files an interrupted run left there are removed (and said)."""
    folder = Path(cache)
    folder.mkdir(parents=True, exist_ok=True)
    ignore = folder / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# sweep cache: results of the validation sweeps, not committed\n*\n")
    removed = clean_stale_parts(folder, started)
    if removed:
        print(
            f"[refimpl] {label}: removed {removed} stale temporary file(s) of an interrupted run",
            file=warn,
            flush=True,
        )
    return folder


def _cached(path, key, metrics, label, warn):
    """``(result, corrupt)``: the cached result at ``path`` (None when there is
    none, when it is corrupt, or when it lacks a metric asked for: an older
    result), and 1 when it was corrupt (said on ``warn``), else 0."""
    try:
        res = read_result(path, key)
    except ValueError as exc:
        print(
            f"[refimpl] {label}: corrupt cached result {path.name} ({exc}); recomputing",
            file=warn,
            flush=True,
        )
        return None, 1
    if res is not None and any(k not in res for k in metrics):
        return None, 0
    return res, 0


def clean_stale_parts(folder, before):
    """Remove the temporary ``.part`` files (of :func:`refimpl.files.atomic_write`)
    that a killed run left in the cache ``folder`` and its subfolders, only
    those last modified before ``before`` (a time.time() value: the sweep's
    start). Returns how many were removed."""
    removed = 0
    for pattern in (f".*{PART_SUFFIX}", f"*/.*{PART_SUFFIX}"):
        for f in Path(folder).glob(pattern):
            try:
                if f.is_file() and f.stat().st_mtime < before:
                    f.unlink()
                    removed += 1
            except FileNotFoundError:  # finished or removed meanwhile
                pass
    return removed


_pinned = False


def _indexed(i, *args):
    """Worker: pin BLAS threads once per worker process, then run the item."""
    global _pinned
    if not _pinned:
        threadpool_limits(limits=BLAS_THREADS, user_api="blas")
        _pinned = True
    return i, _work(*args)


def _watch_parent(parent):
    """joblib worker's initializer: end this worker process (at once, busy or
    idle) when the process ``parent`` that started it is gone: the worker
    then has another parent.

    loky's own idle timeout does not bound the life of an orphan: an idle
    worker waits :data:`WORKER_IDLE_SECONDS` for an item, then up to 30 s more
    for its dead parent to release the worker's exit lock (about 40 s in all),
    and a busy one first finishes its item. Finished items are already
    persisted; a half-written one is a ``.part`` file the next sweep removes."""

    def watch():
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="refimpl-parent-watch", daemon=True).start()


def _execute(calls, jobs):
    """Run :func:`_work` on each argument tuple of ``calls``; yields
    ``(index, result)`` as results arrive (in this process for ``jobs == 1``,
    otherwise in ``jobs`` joblib worker processes)."""
    if jobs == 1:
        with threadpool_limits(limits=BLAS_THREADS, user_api="blas"):
            for i, args in enumerate(calls):
                yield i, _work(*args)
        return
    from joblib import Parallel, delayed  # needed only for parallel sweeps

    # idle workers exit after WORKER_IDLE_SECONDS; orphaned ones at once (_watch_parent)
    par = Parallel(
        n_jobs=jobs,
        return_as="generator_unordered",
        idle_worker_timeout=WORKER_IDLE_SECONDS,
        initializer=_watch_parent,
        initargs=(os.getpid(),),
    )
    try:
        with _interrupts_for_this_process_only():
            yield from par(delayed(_indexed)(i, *args) for i, args in enumerate(calls))
    except BaseException:  # Ctrl-C or an error: stop the workers now
        _stop_workers()
        raise


@contextmanager
def _interrupts_for_this_process_only():
    """Worker processes started inside this block never see SIGINT.

    A Ctrl-C in a terminal reaches every process of the foreground group, so
    workers that are still importing would each print a traceback. Inside the
    block SIGINT is blocked in this thread, and so in every thread and process
    started from it (a blocked signal mask survives fork and exec; the workers
    never unblock it). A relay thread takes the signal with ``sigtimedwait``
    and raises KeyboardInterrupt in the main thread (``interrupt_main``), so
    this process handles Ctrl-C as before and then stops the workers
    (:func:`_stop_workers`). A no-op where signal masks do not exist."""
    if (
        not hasattr(signal, "pthread_sigmask")
        or threading.current_thread() is not threading.main_thread()
    ):
        yield
        return
    # multiprocessing's resource tracker (loky's semaphores need it) unblocks
    # SIGINT in the thread that launches it (CPython 3.11, resource_tracker.
    # ensure_running), which would undo the block below: launch it first
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    stop = threading.Event()

    def relay():
        while not stop.is_set():
            if signal.sigtimedwait({signal.SIGINT}, 0.05) is not None:
                _thread.interrupt_main()

    relay_thread = threading.Thread(target=relay, name="refimpl-sigint-relay", daemon=True)
    relay_thread.start()
    try:
        yield
    finally:
        stop.set()
        relay_thread.join()
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)  # a pending SIGINT lands here


def _stop_workers():
    """Terminate joblib's worker processes (their finished results are already
    persisted; the unfinished ones are recomputed by the next run)."""
    try:
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=False, kill_workers=True)
    except Exception:  # nothing to stop
        pass


# ----------------------------------------------------------------------
# dask.distributed: addresses, settings, connection
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


def _execute_on_cluster(calls, address, timeout=SCHEDULER_TIMEOUT):
    """Run the items on a dask.distributed cluster; yields ``(index, result)``
    as results arrive, after persisting each one here (the workers need not
    share this machine's disk). A lost worker's items are rescheduled by dask;
    a killed client loses nothing that has arrived. Connecting is bounded by
    ``timeout`` seconds (:func:`connect_scheduler`), and so is the wait for a
    worker whenever nothing has arrived for ``timeout`` seconds."""
    with _dask_logs_quiet():
        yield from _run_on_cluster(calls, address, timeout)


def _run_on_cluster(calls, address, timeout):
    client = connect_scheduler(address, timeout)
    with client:
        futures = {
            client.submit(_indexed, i, *args[:-1], None, key=f"refimpl-{args[5]}", pure=False): i
            for i, args in enumerate(calls)
        }
        for i, result in _arrivals(client, futures, address, timeout):
            measure, measure_id, config_class, cd, options, key, path = calls[i]
            if path is not None:
                _write_result(path, key, measure_id, config_class.from_dict(cd), options, result)
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
