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
``f(config, **options) -> dict``. A *batched* measure (a name of
:data:`refimpl.lab.measures.BATCHED`) computes many items of equal shape in
one call; each item is still keyed, cached and read back alone.
"""

from __future__ import annotations

import _thread
import hashlib
import inspect
import json
import os
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
from ..files import PART_SUFFIX, atomic_write, jsonable
from ..memo import shared_stages
from .measures import BATCHED, MEASURES
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
    "BLAS_THREADS",
    "WORKER_IDLE_SECONDS",
]

CACHE_VERSION = 2
"""Format version of the cache records (the code itself enters the key
through :func:`code_hash`)."""

WORKER_IDLE_SECONDS = 10
"""Idle joblib workers of a live sweep exit after this many seconds (loky's
timeout); a worker whose sweep process is gone exits within
:data:`PARENT_POLL_SECONDS`, busy or idle (:func:`_watch_parent`)."""

PARENT_POLL_SECONDS = 0.5

GROUP_ITEMS = 16
"""Most items of one seed run as one unit of work (:func:`_groups`): enough
for the alphas of a gain_alpha seed to share one upstream stage, few enough
that a grid under one seed (a transfer phase diagram) still spreads over the
workers."""
BATCH_ITEMS = 64
"""Items of equal shape per call of a batched measure (:func:`_groups`): the
compiled trainer's overhead spread over many runs, while a sweep of a few
hundred items still spreads over the workers."""
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
        if measure not in MEASURES and measure not in BATCHED:
            names = ", ".join([*MEASURES, *BATCHED])
            raise ValueError(f"unknown measure {measure!r}; built-in: {names}")
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


UNHASHED = ("claims", "cli")
"""Package folders left out of :func:`code_hash`: their code declares configs
and presents results but never runs inside a measurement (the configs and
options it passes are part of the key), so editing a claim's decision or
report does not throw away its runs. A measure defined in one of them
(``refimpl.claims._base.measure_at_loss``) has its own file hashed
(:func:`_measure_files`)."""


def _hashed(rel):
    return rel.split("/", 1)[0] not in UNHASHED


def code_hash(extra=()):
    """SHA-256 of the bytes of every ``.py`` file of the package outside
    :data:`UNHASHED` (named by their paths inside the package, sorted), plus
    the files in ``extra`` (the source file of a custom measure, named by its
    file name). Independent of where the package is installed; read afresh
    on every call, so an edited file in a long-lived session is never served
    stale results.

    Parameters
    ----------
    extra : iterable of path, optional
        More source files to hash.

    Returns
    -------
    str
        The hex digest.
    """
    files = sorted((p.relative_to(_PACKAGE_DIR).as_posix(), p) for p in _PACKAGE_DIR.rglob("*.py"))
    files = [(rel, p) for rel, p in files if _hashed(rel)]
    return _file_hashes(files + [(Path(p).name, p) for p in extra])


def _measure_files(measure):
    """The source file of a custom measure outside the package or in one of
    its :data:`UNHASHED` folders (none for the built-in ones, whose files
    :func:`code_hash` covers)."""
    if isinstance(measure, str):
        return ()
    try:
        path = inspect.getsourcefile(measure)
    except TypeError:
        path = None
    if path is None:
        return ()
    path = Path(path).resolve()
    if _PACKAGE_DIR in path.parents and _hashed(path.relative_to(_PACKAGE_DIR).as_posix()):
        return ()
    return (os.fspath(path),)


def item_key(measure_id, seeded_config, options, code=None):
    """Cache key of one item: SHA-256 of the measure, its options, the
    seeded config, the record format version, ``refimpl.__version__`` and
    the code hash (``code``; default :func:`code_hash` of the package).

    Parameters
    ----------
    measure_id : str
        The measure's name or its importable path.
    seeded_config : Config
        The config with the item's derived seed.
    options : dict
        The measure's keyword arguments (JSON-able).
    code : str, optional
        The code hash; None: :func:`code_hash` of the package now.

    Returns
    -------
    str
        The hex digest (the BLAS thread count is part of it too).
    """
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
    or checksum mismatch).

    Parameters
    ----------
    path : str or os.PathLike
        The record file.
    key : str
        The item's key (:func:`item_key`), which the record must carry.

    Returns
    -------
    dict or None
        The stored result; None when there is no file.

    Raises
    ------
    ValueError
        A record that is unreadable, not valid JSON, lacks a field, carries
        another key or fails its checksum.
    """
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
        Seeds per config.
    seeds : ndarray of shape (points, replicates), int
        The derived seed of every item (:func:`derive_seed`).
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
        A name of :data:`MEASURES` or of :data:`~refimpl.lab.measures.BATCHED`,
        or an importable top-level function ``f(config, **options) -> dict``.
    replicates : int
        Derived seeds per config (at least 1).
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
        Print progress lines (and cache warnings) on stderr.
    metrics : iterable of str
        Metrics the caller will read: a cached result lacking one is a cache
        miss (recomputed); a fresh result lacking one is an error of the measure.
    scheduler : str, optional
        Address of a dask.distributed scheduler (``tcp://host:8786``); the
        items then run on that cluster's workers (``jobs`` is ignored) and
        this process persists each result as it arrives. Default: the
        environment variable ``REFIMPL_SCHEDULER``, else local workers. The
        address is checked before any work (:func:`refimpl.lab.cluster.check_scheduler`); the
        connection, dask's handshake and the wait for a worker are bounded
        by ``REFIMPL_SCHEDULER_TIMEOUT`` seconds (default
        :data:`refimpl.lab.cluster.SCHEDULER_TIMEOUT`;
        :func:`refimpl.lab.cluster.connect_scheduler`).

    Returns
    -------
    Sweep

    Raises
    ------
    ValueError
        ``jobs`` or ``replicates`` not a positive integer.
    TypeError
        Configs of more than one class.
    KeyError
        A fresh result lacking one of ``metrics``.
    """
    _check_counts(jobs, replicates)
    # imported here: the cluster executor persists results with this module's cache
    from .cluster import _execute_on_cluster, cluster_settings

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
        (measure, measure_id, config_class, cd, options, key, path) for *_, cd, key, path in todo
    ]
    groups = _plan(calls, [configs[p] for p, *_ in todo], [seeds[p, r] for p, r, *_ in todo])
    runs = _execute_on_cluster(groups, *cluster) if cluster[0] else _execute(groups, jobs)
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
    start). Returns how many were removed.

    Parameters
    ----------
    folder : str or os.PathLike
        The cache folder.
    before : float
        A ``time.time()`` value.

    Returns
    -------
    int
        The number of files removed.
    """
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


def _indexed(group):
    """Worker: pin BLAS threads once per worker process, then run a group of
    items ``[(index, args), ...]`` sharing their stages
    (:func:`refimpl.memo.shared_stages`); returns ``[(index, result), ...]``."""
    global _pinned
    if not _pinned:
        threadpool_limits(limits=BLAS_THREADS, user_api="blas")
        _pinned = True
    return _run_group(group)


def _run_group(group):
    """One group of items ``[(index, args), ...]`` (:func:`_groups`) in this
    process: a batched measure's in one call, any other's one by one inside
    one :func:`~refimpl.memo.shared_stages` block; ``[(index, result), ...]``."""
    measure = group[0][1][0]
    if isinstance(measure, str) and measure in BATCHED:
        return _work_batch(group)
    with shared_stages():
        return [(i, _work(*args)) for i, args in group]


def _work_batch(group):
    """Worker: the items of one group of a batched measure, in one call of it,
    each persisted atomically as :func:`_work` does."""
    measure, _, config_class, _, options, _, _ = group[0][1]
    configs = [config_class.from_dict(args[3]) for _, args in group]
    results = [jsonable(r) for r in BATCHED[measure][0](configs, **options)]
    for (_, args), config, result in zip(group, configs, results, strict=True):
        _, measure_id, _, _, _, key, path = args
        if path is not None:
            _write_result(path, key, measure_id, config, options, result)
    return [(i, result) for (i, _), result in zip(group, results, strict=True)]


def _check_counts(jobs, replicates):
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    if not isinstance(replicates, int) or replicates < 1:
        raise ValueError(f"replicates must be a positive integer, got {replicates!r}")


def _plan(calls, configs, seeds):
    """The groups of the items to compute (:func:`_groups`): for a batched
    measure equal shapes together, :data:`BATCH_ITEMS` to a call, the items of
    one seed next to each other (a call trains a stage they share once); for
    any other, equal seeds together (shared stages)."""
    measure_id = calls[0][1] if calls else None
    if measure_id not in BATCHED:
        return _groups(calls, seeds)
    shape = BATCHED[measure_id][1]
    order = sorted(range(len(calls)), key=lambda i: seeds[i])
    groups = _groups([calls[i] for i in order], [shape(configs[i]) for i in order], BATCH_ITEMS)
    return [[(order[k], args) for k, args in g] for g in groups]


def _groups(calls, keys, size=None):
    """The items as groups of equal key, ``[[(index, args), ...], ...]``, in
    the order of their first item, each cut into runs of at most ``size``
    (default :data:`GROUP_ITEMS`) consecutive items. The key is the seed for
    item-by-item measures: under common random numbers items of one seed
    share their upstream stage and scratch baseline (same data, same initial
    weights), so a group runs in one worker and trains them once. It is the
    shape for batched measures (one compiled call per group). The cut keeps
    the work divisible among workers (a group is the unit of parallel work, of
    progress and, on a cluster, of persistence)."""
    size = GROUP_ITEMS if size is None else size
    groups = {}
    for i, (args, key) in enumerate(zip(calls, keys, strict=True)):
        groups.setdefault(key, []).append((i, args))
    return [g[k : k + size] for g in groups.values() for k in range(0, len(g), size)]


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


def _execute(groups, jobs):
    """Run each group of ``groups`` (:func:`_groups`) by :func:`_run_group`;
    yields ``(index, result)`` as results arrive (in this process for ``jobs == 1``, otherwise
    in ``jobs`` joblib worker processes, a group in one of them)."""
    if jobs == 1:
        with threadpool_limits(limits=BLAS_THREADS, user_api="blas"):
            for group in groups:
                yield from _run_group(group)
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
            for results in par(delayed(_indexed)(group) for group in groups):
                yield from results
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
