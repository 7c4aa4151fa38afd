"""The sweep runner the validation scripts share.

A sweep is a grid of configurations, each run for ``replicates`` seeds. Every
(config, replicate) item

- gets its seed from a hash of the config (without its ``seed`` field and
  without the fields named in ``common``) and the replicate index, so results
  depend neither on the number of workers nor on the order in which items
  run; fields named in ``common`` share seeds (common random numbers across,
  for example, alpha: the same data, init and test draws for every alpha);
- runs in a joblib worker (``jobs``) and is persisted atomically as soon as it
  finishes (:func:`refimpl.trajectory.atomic_write`) as ``CACHE/<key>.json``,
  ``key`` a SHA-256 of the measure, its options, the seeded config, the
  package version and a hash of the code (:func:`code_hash`: every
  ``refimpl/*.py`` file and the file defining a custom measure), so a code
  change never reuses stale results; an interrupted sweep resumes where it
  stopped and loses nothing (temporary ``.part`` files a killed run left are
  removed at the next sweep's start);
- is checked when read back (JSON parse, key, SHA-256 of the result): a
  corrupt or partial file is reported on stderr and recomputed; a cached
  result that lacks a metric the caller asks for (``metrics``) is recomputed.

Non-finite numbers (a diverged run) are stored as None (strict JSON) and read
back as NaN by :meth:`Sweep.values`; the validation statistics count them as
missing (:mod:`refimpl.validate`).

Progress goes to stderr through :class:`refimpl.progress.Progress`.

A *measure* maps a seeded :class:`~refimpl.config.Config` to a flat dict of
numbers (or lists of numbers). The built-in measures are :func:`measure_transfer`
(the three-stage experiment and its diagnostics, MODEL.md sections 4-6),
:func:`measure_checks` (exactness of the decomposition, section 4) and
:func:`measure_single` (one task trained alone: the single-task phase
diagram, MODEL.md sections 7 and 8). Any importable top-level function
``f(config, **options) -> dict`` works as well.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import Config

__all__ = ["MEASURES", "Sweep", "run_sweep", "derive_seed", "item_key", "measure_transfer",
           "measure_single", "measure_checks", "read_result", "CACHE_VERSION", "code_hash", "clean_stale_parts",
           "jsonable"]

CACHE_VERSION = 2
"""Format version of the cache records (the code itself enters the key
through :func:`code_hash`)."""
MAX_SEED = 2**63 - 1


# ----------------------------------------------------------------------
# seeds and keys
def _canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _sha(obj):
    return hashlib.sha256(_canonical(obj).encode()).hexdigest()


def derive_seed(config, replicate, common=(), salt=""):
    """The seed of replicate ``replicate`` of ``config``.

    SHA-256 of the config's fields (its own ``seed`` and the ``common`` fields
    left out), the replicate index and ``salt``; the first 8 bytes, shifted
    to fit in [0, 2^63).

    Parameters
    ----------
    config : Config or dict
    replicate : int
    common : iterable of str
        Fields that do not change the seed (common random numbers across them).
    salt : str
        Separates seed streams of different sweeps with equal configs.
    """
    values = _as_config(config).to_dict()
    for name in ("seed", *common):
        if name not in values:
            raise ValueError(f"common field {name!r} is not a config field")
        values.pop(name)
    digest = hashlib.sha256(_canonical({"config": values, "replicate": int(replicate),
                                        "salt": str(salt)}).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _as_config(config):
    if isinstance(config, Config):
        return config
    if isinstance(config, dict):
        return Config.from_dict(config)
    raise TypeError(f"a sweep item must be a Config or a dict, not {type(config).__name__}")


def _measure_id(measure):
    if isinstance(measure, str):
        if measure not in MEASURES:
            raise ValueError(f"unknown measure {measure!r}; built-in: {', '.join(MEASURES)}")
        return measure
    return f"{measure.__module__}.{measure.__qualname__}"


_PACKAGE_DIR = Path(__file__).resolve().parent


@functools.lru_cache(maxsize=None)
def _file_hashes(paths):
    h = hashlib.sha256()
    for p in paths:
        h.update(os.fspath(Path(p).name).encode() + b"\0")
        h.update(Path(p).read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def code_hash(extra=()):
    """SHA-256 of the bytes of every ``refimpl/*.py`` file (sorted by name),
    plus the files in ``extra`` (the source file of a custom measure); read
    once per process."""
    files = tuple(sorted(os.fspath(p) for p in _PACKAGE_DIR.glob("*.py")))
    return _file_hashes(files + tuple(os.fspath(p) for p in extra))


def _measure_files(measure):
    """The source file of a custom measure (none for the built-in ones: they
    live in this package)."""
    if isinstance(measure, str):
        return ()
    import inspect

    try:
        path = inspect.getsourcefile(measure)
    except TypeError:
        path = None
    if path is None or Path(path).resolve().parent == _PACKAGE_DIR:
        return ()
    return (os.fspath(Path(path).resolve()),)


def item_key(measure_id, seeded_config, options, code=None):
    """Cache key of one item: SHA-256 of the measure, its options, the
    seeded config, the record format version, ``refimpl.__version__`` and
    the code hash (``code``; default :func:`code_hash` of the package)."""
    from . import __version__

    return _sha({"version": CACHE_VERSION, "package": __version__,
                 "code": code_hash() if code is None else code, "measure": measure_id,
                 "options": options, "config": seeded_config.to_dict()})


# ----------------------------------------------------------------------
# persisted results
def _result_sha(result):
    return _sha(result)


def read_result(path, key):
    """The result stored at ``path`` if the file is complete and consistent,
    else None (missing) or raises ValueError (corrupt: unparsable JSON, a key
    or checksum mismatch)."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    try:
        rec = json.loads(raw.decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    if not isinstance(rec, dict) or not {"key", "result", "sha256"} <= set(rec):
        raise ValueError("missing fields")
    if rec["key"] != key:
        raise ValueError("key mismatch")
    try:
        ok = _result_sha(rec["result"]) == rec["sha256"]
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError("checksum mismatch")
    return rec["result"]


def _write_result(path, key, measure_id, config, options, result):
    from .trajectory import atomic_write

    rec = {"key": key, "measure": measure_id, "options": options, "config": config.to_dict(),
           "result": result, "sha256": _result_sha(result)}
    text = _canonical(rec) + "\n"
    atomic_write(path, lambda fh: fh.write(text.encode()))


def jsonable(x):
    """JSON-ready copy: numpy to Python, tuples to lists, non-finite floats to
    None (strict JSON); TypeError for any other type. The one converter of
    the sweep cache and the validation reports."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in (x.tolist() if isinstance(x, np.ndarray) else x)]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else None
    if x is None or isinstance(x, str):
        return x
    raise TypeError(f"cannot convert a value of type {type(x).__name__} to JSON")


def _work(measure, measure_id, config_dict, options, key, path):
    """Worker: compute one item and persist it atomically; returns the result."""
    config = Config.from_dict(config_dict)
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
            raise KeyError(f"metric {metric!r} is not in every result of this sweep; "
                           "name it in run_sweep(metrics=...) so that older cached results "
                           "lacking it are recomputed")
        return np.array([[np.nan if r[metric] is None else r[metric] for r in row]
                         for row in self.results], dtype=float)

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
        for p, (cfg, row) in enumerate(zip(self.configs, self.results)):
            cd = cfg.to_dict()
            for r, res in enumerate(row):
                rec = {"point": p, "replicate": r, "seed": int(self.seeds[p, r])}
                rec.update({f: cd[f] for f in fields})
                rec.update({k: v for k, v in res.items()
                            if metrics is None or k in metrics})
                out.append(rec)
        return out


def run_sweep(configs, measure="transfer", replicates=10, jobs=1, cache=None, common=(),
              salt="", options=None, label="sweep", progress=True, metrics=()):
    """Run every config of a grid for ``replicates`` derived seeds.

    Parameters
    ----------
    configs : list of Config or dict
        The grid (each config's own ``seed`` is ignored).
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
    options : dict, optional
        Keyword arguments of the measure (JSON-able; part of the cache key).
    label : str
        Name on the progress lines.
    progress : bool
    metrics : iterable of str
        Metrics the caller will read: a cached result lacking one is a cache
        miss (recomputed); a fresh result lacking one is an error of the measure.

    Returns
    -------
    Sweep
    """
    from joblib import Parallel, delayed

    from .progress import Progress

    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    if not isinstance(replicates, int) or replicates < 1:
        raise ValueError(f"replicates must be a positive integer, got {replicates!r}")
    started = time.time()
    options = jsonable(dict(options or {}))
    measure_id = _measure_id(measure)
    code = code_hash(_measure_files(measure))
    configs = [_as_config(c) for c in configs]
    common = tuple(common)
    metrics = tuple(metrics)
    folder = None
    warn = Progress(enabled=progress).stream
    if cache is not None:
        folder = Path(cache)
        folder.mkdir(parents=True, exist_ok=True)
        ignore = folder / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# sweep cache: results of the validation sweeps, not committed\n*\n")
        removed = clean_stale_parts(folder, started)
        if removed:
            print(f"[refimpl] {label}: removed {removed} stale temporary file(s) of an "
                  "interrupted run", file=warn, flush=True)
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
                try:
                    res = read_result(path, key)
                except ValueError as exc:
                    n_corrupt += 1
                    print(f"[refimpl] {label}: corrupt cached result {path.name} ({exc}); "
                          "recomputing", file=warn, flush=True)
                    res = None
                if res is not None and any(k not in res for k in metrics):
                    res = None                    # an older result without a metric asked for
                if res is not None:
                    results[p][r] = res
                    n_cached += 1
                    continue
            todo.append((p, r, seeded.to_dict(), key, None if path is None else os.fspath(path)))
    total = len(configs) * replicates
    bar = Progress(enabled=progress, after=1.0, every=2.0)
    done = n_cached
    if todo:
        tasks = (delayed(_work)(measure, measure_id, cd, options, key, path)
                 for (_, _, cd, key, path) in todo)
        if jobs == 1:
            outputs = (t[0](*t[1], **t[2]) for t in tasks)
            for (p, r, *_), res in zip(todo, outputs):
                results[p][r] = res
                done += 1
                bar(label, done, total, f"{n_cached} cached")
        else:
            par = Parallel(n_jobs=jobs, return_as="generator_unordered")
            wrapped = (delayed(_indexed)(i, measure, measure_id, cd, options, key, path)
                       for i, (_, _, cd, key, path) in enumerate(todo))
            for i, res in par(wrapped):
                p, r = todo[i][0], todo[i][1]
                results[p][r] = res
                done += 1
                bar(label, done, total, f"{n_cached} cached")
    for p, r, *_ in todo:
        lacking = [k for k in metrics if k not in results[p][r]]
        if lacking:
            raise KeyError(f"measure {measure_id} returned no {', '.join(map(repr, lacking))}")
    return Sweep(configs=configs, replicates=replicates, seeds=seeds, results=results,
                 computed=len(todo), cached=n_cached, recomputed=n_corrupt)


def clean_stale_parts(folder, before):
    """Remove the temporary ``.part`` files (of :func:`refimpl.trajectory.atomic_write`)
    that a killed run left in the cache ``folder`` and its subfolders, only
    those last modified before ``before`` (a time.time() value: the sweep's
    start). Returns how many were removed."""
    removed = 0
    for pattern in (".*.part", "*/.*.part"):
        for f in Path(folder).glob(pattern):
            try:
                if f.is_file() and f.stat().st_mtime < before:
                    f.unlink()
                    removed += 1
            except FileNotFoundError:            # finished or removed meanwhile
                pass
    return removed


def _indexed(i, *args):
    return i, _work(*args)


# ----------------------------------------------------------------------
# built-in measures
def _group_stats(a, mask):
    a = np.asarray(a, float)[mask]
    if a.size == 0:
        return None, None
    return float(a.mean()), float(a.max())


def measure_transfer(config, n_test=None, curves=False):
    """The three-stage experiment (MODEL.md section 5) and its diagnostics.

    Returns a flat dict:

    - ``err_transfer``, ``err_scratch``, ``err_up`` (clean test error,
      MODEL.md section 6) with ``*_se``; ``noisy_transfer``, ``noisy_scratch``;
      ``gain`` = err_scratch - err_transfer (same test draws);
    - ``loss_up``, ``loss_down``, ``loss_scratch`` (final training loss),
      ``steps_down``, ``steps_scratch``, ``steps_up`` (steps run);
    - ``err_inherited_part``, ``err_fresh_part``: test error of
      f_inherited and f_fresh alone (the other filters zeroed), section 4;
    - ``wrong0_transfer``, ``wrong0_scratch``: fraction of downstream training
      points with y f(W^(0), x) <= 0;
    - ``K_inh_start``, ``K_inh_end``, ``K_fresh_end``, ``K_scratch_end``:
      universal knowledge j<w, u>, mean over the filter group;
    - ``inh_noise_energy``: inherited noise energy, mean over inherited filters;
    - ``rho_inh_mean``/``rho_inh_max``, ``rho_fresh_mean``/``rho_fresh_max``,
      ``rho_scratch_mean``/``rho_scratch_max``, ``rho_transfer_mean``/``rho_transfer_max``
      (all filters): downstream noise memorisation
      rho-bar at the end of fine-tuning (mean over the entries with y_i = j,
      and max), per filter group; ``rho_flip_transfer``, ``rho_flip_scratch``:
      mean rho-bar over the flipped training points only;
    - with ``curves``: ``curve_steps`` and per snapshot ``curve_rho_inh``,
      ``curve_rho_fresh``, ``curve_rho_scratch`` (mean rho-bar) and
      ``curve_K_inh``, ``curve_K_fresh``, ``curve_K_scratch``.
    """
    from .decomposition import own_entries, universal_knowledge
    from .network import forward
    from .transfer import inherited_noise_energy, run_experiment

    exp = run_experiment(config)
    c = config
    down, scratch, up = exp.stages["down"], exp.stages["scratch"], exp.stages["up"]
    out = {}
    et = exp.test_error("down", n_test=n_test)
    es = exp.test_error("scratch", n_test=n_test)
    eu = exp.test_error("up", n_test=n_test)
    out.update(err_transfer=et["clean_error"], err_transfer_se=et["clean_error_se"],
               err_scratch=es["clean_error"], err_scratch_se=es["clean_error_se"],
               err_up=eu["clean_error"], err_up_se=eu["clean_error_se"],
               noisy_transfer=et["noisy_error"], noisy_scratch=es["noisy_error"],
               gain=es["clean_error"] - et["clean_error"])
    out.update(loss_up=float(up.loss[-1]), loss_down=float(down.loss[-1]),
               loss_scratch=float(scratch.loss[-1]), steps_up=up.T, steps_down=down.T,
               steps_scratch=scratch.T)
    # filter granularity: the inherited filters; entry granularity: filters
    # most of whose entries are inherited (Experiment.inherited_filters)
    inh = exp.inherited_filters                                   # (2, m_2)
    W = down.W_final
    for name, mask in (("inherited", inh), ("fresh", ~inh)):
        if mask.any():
            out[f"err_{name}_part"] = exp.test_error(
                "down", W=np.where(mask[..., None], W, 0.0), n_test=n_test)["clean_error"]
        else:
            out[f"err_{name}_part"] = None
    task = down.task
    out["wrong0_transfer"] = float(np.mean(task.y * forward(down.W0, task.X) <= 0))
    out["wrong0_scratch"] = float(np.mean(task.y * forward(scratch.W0, task.X) <= 0))
    K0, K1 = universal_knowledge(down.W[0], exp.u), universal_knowledge(W, exp.u)
    Ks = universal_knowledge(scratch.W_final, exp.u)
    out["K_inh_start"] = float(K0[inh].mean()) if inh.any() else None
    out["K_inh_end"] = float(K1[inh].mean()) if inh.any() else None
    out["K_fresh_end"] = float(K1[~inh].mean()) if (~inh).any() else None
    out["K_scratch_end"] = float(Ks.mean())
    out["inh_noise_energy"] = float(inherited_noise_energy(exp)[inh].mean()) if inh.any() else 0.0
    # rho-bar_{j,r,i} lives where y_i = j (MODEL.md section 4)
    own = own_entries(task.y)                                           # (2, 1, n)
    flipped = (task.y != task.y_clean)[None, None, :]

    def rho(stage, fmask, k=-1, sample_mask=own):
        m = fmask[..., None] & sample_mask
        return _group_stats(stage.rho_bar[k], np.broadcast_to(m, stage.rho_bar[k].shape))

    allf = np.ones_like(inh)
    out["rho_inh_mean"], out["rho_inh_max"] = rho(down, inh)
    out["rho_fresh_mean"], out["rho_fresh_max"] = rho(down, ~inh)
    out["rho_scratch_mean"], out["rho_scratch_max"] = rho(scratch, allf)
    out["rho_transfer_mean"], out["rho_transfer_max"] = rho(down, allf)
    out["rho_flip_transfer"] = rho(down, allf, sample_mask=own & flipped)[0]
    out["rho_flip_scratch"] = rho(scratch, allf, sample_mask=own & flipped)[0]
    out["n_flipped"] = int(flipped.sum())
    if curves:
        out["curve_steps"] = down.steps.tolist()
        out["curve_steps_scratch"] = scratch.steps.tolist()
        out["curve_rho_inh"] = [rho(down, inh, k)[0] for k in range(len(down.steps))]
        out["curve_rho_fresh"] = [rho(down, ~inh, k)[0] for k in range(len(down.steps))]
        out["curve_rho_scratch"] = [rho(scratch, allf, k)[0] for k in range(len(scratch.steps))]
        Kd = universal_knowledge(down.W, exp.u)                            # (K, 2, m)
        out["curve_K_inh"] = [float(k[inh].mean()) if inh.any() else None for k in Kd]
        out["curve_K_fresh"] = [float(k[~inh].mean()) if (~inh).any() else None for k in Kd]
        out["curve_K_scratch"] = [float(k.mean()) for k in universal_knowledge(scratch.W, exp.u)]
    return out


def measure_single(config, n_test=None):
    """One task trained alone (the upstream task of ``config``: ``n_up``,
    ``u_norm``/``v_up_norm`` (|mu|^2 = |u|^2 + |v_up|^2), ``sigma_p_up``,
    ``flip_up``, ``steps_up``, ``epsilon``, ``weight_decay_up``).

    The upstream stage of :func:`refimpl.transfer.run_experiment` (the same
    random streams, so the same data, initialisation and test draws), run
    with ``steps_down = 0`` so that the downstream stages cost nothing.

    Returns ``err`` (clean), ``err_se``, ``noisy`` (noisy error), ``loss``
    (final training loss), ``steps``, ``stopped`` (reached epsilon),
    ``gamma_mean`` (mean over filters of gamma summed over signals),
    ``rho_mean`` (mean rho-bar over the entries with y_i = j) and ``ratio`` =
    max_{j,r} gamma / max rho-bar at the end of training, compared with
    n|mu|^2/(sigma_p^2 d) in MODEL.md section 7.
    """
    from .decomposition import own_entries
    from .transfer import run_experiment

    exp = run_experiment(config.replace(steps_down=0))
    st = exp.stages["up"]
    e = exp.test_error("up", n_test=n_test)
    own = np.broadcast_to(own_entries(st.task.y), st.rho_bar[-1].shape)   # y_i = j, section 4
    rb = st.rho_bar[-1][own]
    g = st.gamma[-1].sum(axis=-1)                                          # (2, m)
    return {"err": e["clean_error"], "err_se": e["clean_error_se"], "noisy": e["noisy_error"],
            "loss": float(st.loss[-1]), "steps": st.T, "stopped": bool(st.stopped),
            "gamma_mean": float(g.mean()), "rho_mean": float(rb.mean()),
            "ratio": float(g.max() / max(rb.max(), 1e-300))}


def measure_checks(config):
    """Exactness checks of the decomposition for each stage of the three-stage
    experiment (MODEL.md section 4): ``<stage>_reconstruction`` and
    ``<stage>_projection`` (largest relative discrepancies over the
    snapshots), ``<stage>_invariants_applicable`` and
    ``<stage>_invariants_broken`` (counts), ``<stage>_broken`` (names, ``;``-joined).
    """
    from .decomposition import invariants, projection_error, reconstruction_error
    from .transfer import STAGES, run_experiment

    exp = run_experiment(config)
    out = {}
    for s in STAGES:
        st = exp.stages[s]
        inv = invariants(st)
        out[f"{s}_reconstruction"] = float(reconstruction_error(st))
        out[f"{s}_projection"] = float(projection_error(st))
        out[f"{s}_invariants_applicable"] = sum(v["applies"] for v in inv.values())
        broken = [k for k, v in inv.items() if v["applies"] and not v["holds"]]
        out[f"{s}_invariants_broken"] = len(broken)
        out[f"{s}_broken"] = ";".join(broken)
    return out


MEASURES = {"transfer": measure_transfer, "single": measure_single, "checks": measure_checks}
"""Built-in measures by name."""
