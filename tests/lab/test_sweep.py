"""The sweep runner: resume after a kill, worker-count independence, corrupt
results recomputed, seeds derived from the config."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from refimpl.config import Config
from refimpl.lab import sweep as S
from refimpl.lab.seeds import derive_seed
from refimpl.lab.seeds import sha256 as _sha
from refimpl.lab.sweep import clean_stale_parts, item_key, read_result, run_sweep

TINY = Config(
    d=40,
    m=2,
    n_up=10,
    n_down=6,
    steps_up=20,
    steps_down=20,
    snapshots=2,
    n_test=200,
    u_norm=2.0,
    sigma_p_up=1.0,
    sigma_p_down=1.0,
)

SLOW_MODULE = """
import time
from refimpl.lab.measures import measure_single

def slow(config, delay=0.0):
    time.sleep(delay)
    return measure_single(config)
"""

RUNNER = """
import sys
from refimpl.config import Config
from refimpl.lab.sweep import run_sweep
import slowmeasure
cfg = Config.from_dict({cfg!r})
grid = [cfg.replace(u_norm=float(u)) for u in (0.5, 1.0, 2.0, 4.0)]
run_sweep(grid, measure=slowmeasure.slow, replicates=3, jobs={jobs}, cache={cache!r},
          options={{"delay": {delay}}}, progress=False)
"""


def _grid():
    return [TINY.replace(u_norm=float(u)) for u in (0.5, 1.0, 2.0, 4.0)]


def _files(folder):
    return sorted(Path(folder).glob("*/*.json"))


@pytest.fixture
def slowmeasure(tmp_path, monkeypatch):
    mod_dir = tmp_path / "mods"
    mod_dir.mkdir()
    (mod_dir / "slowmeasure.py").write_text(SLOW_MODULE)
    monkeypatch.syspath_prepend(str(mod_dir))
    import importlib

    import slowmeasure as mod

    importlib.reload(mod)
    return mod_dir, mod


@pytest.mark.slow
def test_resume_after_kill_gives_the_same_table(tmp_path, slowmeasure):
    mod_dir, mod = slowmeasure
    cache = tmp_path / "cache"
    script = RUNNER.format(cfg=TINY.to_dict(), jobs=2, cache=str(cache), delay=0.4)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(mod_dir), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 90
    try:
        while len(_files(cache)) < 2:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the sweep never wrote a result"
            time.sleep(0.02)
    finally:
        # kill the sweep and its joblib workers (the process group we started)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    n_before = len(_files(cache))
    assert 2 <= n_before < 12, "the kill must interrupt the sweep mid-way"
    for f in _files(cache):  # what survived the kill is complete
        rec = json.loads(f.read_text())
        assert read_result(f, rec["key"]) is not None

    # the delay is a measure option, part of the key: resume with the same one
    resumed = run_sweep(
        _grid(),
        measure=mod.slow,
        replicates=3,
        jobs=1,
        cache=cache,
        options={"delay": 0.4},
        progress=False,
    )
    assert resumed.cached == n_before
    assert resumed.computed == 12 - n_before
    fresh = run_sweep(
        _grid(),
        measure=mod.slow,
        replicates=3,
        jobs=1,
        cache=tmp_path / "other",
        options={"delay": 0.4},
        progress=False,
    )
    assert fresh.cached == 0
    assert resumed.rows() == fresh.rows()
    again = run_sweep(
        _grid(),
        measure=mod.slow,
        replicates=3,
        jobs=1,
        cache=cache,
        options={"delay": 0.4},
        progress=False,
    )
    assert again.cached == 12 and again.computed == 0


def test_same_results_with_one_and_two_workers(tmp_path):
    grid = [TINY.replace(alpha=a) for a in (0.0, 0.5, 1.0)]
    one = run_sweep(grid, replicates=2, jobs=1, cache=tmp_path / "a", progress=False)
    two = run_sweep(grid, replicates=2, jobs=2, cache=tmp_path / "b", progress=False)
    assert one.computed == two.computed == 6
    assert one.rows() == two.rows()
    # and with no cache at all, in reverse order of the grid
    rev = run_sweep(grid[::-1], replicates=2, jobs=2, progress=False)
    assert rev.rows() != [] and [r["gain"] for r in rev.rows()] == [
        r["gain"] for p in (2, 1, 0) for r in one.rows() if r["point"] == p
    ]


def test_corrupt_result_is_detected_and_recomputed(tmp_path, capsys):
    grid = _grid()[:2]
    cache = tmp_path / "cache"
    first = run_sweep(grid, measure="single", replicates=2, cache=cache, progress=False)
    files = _files(cache)
    assert len(files) == 4
    # a truncated file (a crash mid-write without atomic rename) ...
    files[0].write_bytes(files[0].read_bytes()[:25])
    # ... and a complete JSON whose result was altered
    rec = json.loads(files[1].read_text())
    rec["result"]["err"] = 0.123456
    files[1].write_text(json.dumps(rec))
    second = run_sweep(grid, measure="single", replicates=2, cache=cache, progress=True)
    err = capsys.readouterr().err
    assert second.recomputed == 2 and second.computed == 2 and second.cached == 2
    assert "corrupt cached result" in err and "checksum mismatch" in err and "not valid JSON" in err
    assert second.rows() == first.rows()
    for f in files:  # rewritten correctly
        assert read_result(f, json.loads(f.read_text())["key"]) is not None


def test_seeds_derive_from_the_config():
    a, b = TINY.replace(alpha=0.2), TINY.replace(alpha=0.8)
    assert derive_seed(a, 0) == derive_seed(a.replace(seed=99), 0)  # own seed ignored
    assert derive_seed(a, 0) != derive_seed(a, 1)
    assert derive_seed(a, 0) != derive_seed(b, 0)
    assert derive_seed(a, 0, common=("alpha",)) == derive_seed(b, 0, common=("alpha",))
    assert derive_seed(a, 0, salt="x") != derive_seed(a, 0)
    assert 0 <= derive_seed(a, 3) < 2**63
    assert derive_seed(a.to_dict(), 2) == derive_seed(a, 2)
    with pytest.raises(ValueError, match="not a config field"):
        derive_seed(a, 0, common=("nonsense",))


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown measure"):
        run_sweep([TINY], measure="nope", replicates=1, progress=False)
    with pytest.raises(ValueError, match="jobs"):
        run_sweep([TINY], replicates=1, jobs=0, progress=False)
    with pytest.raises(TypeError, match="config dataclass or a dict"):
        run_sweep([42], replicates=1, progress=False)


def test_cache_folder_ignores_itself(tmp_path):
    run_sweep([TINY], measure="single", replicates=1, cache=tmp_path / "c", progress=False)
    assert (tmp_path / "c" / ".gitignore").read_text().strip().endswith("*")


def test_code_change_or_version_change_is_a_cache_miss(tmp_path, monkeypatch):
    grid = _grid()[:2]
    cache = tmp_path / "cache"
    first = run_sweep(grid, measure="single", replicates=1, cache=cache, progress=False)
    assert first.computed == 2
    assert run_sweep(grid, measure="single", replicates=1, cache=cache, progress=False).cached == 2
    # the package source enters the key: a changed file means different keys
    real = S.code_hash()
    monkeypatch.setattr(S, "code_hash", lambda extra=(): "0" * 64)
    changed = run_sweep(grid, measure="single", replicates=1, cache=cache, progress=False)
    assert changed.cached == 0 and changed.computed == 2
    monkeypatch.setattr(S, "code_hash", lambda extra=(): real)
    import refimpl

    monkeypatch.setattr(refimpl, "__version__", "999.0")
    bumped = run_sweep(grid, measure="single", replicates=1, cache=cache, progress=False)
    assert bumped.cached == 0 and bumped.computed == 2
    seeded = TINY.replace(seed=3)
    assert item_key("single", seeded, {}, code="a") != item_key("single", seeded, {}, code="b")


def test_code_hash_reads_the_bytes_of_the_files(tmp_path):
    a, b = tmp_path / "x" / "m.py", tmp_path / "y" / "m.py"
    a.parent.mkdir()
    b.parent.mkdir()
    a.write_text("x = 1\n")
    b.write_text("x = 2\n")
    assert S._file_hashes([("m.py", a)]) != S._file_hashes([("m.py", b)])  # same name, other bytes
    assert len(S.code_hash()) == 64
    assert S.code_hash() == S.code_hash()
    assert S.code_hash((str(a),)) != S.code_hash()  # a custom measure's file counts


def test_cached_result_lacking_a_metric_is_recomputed(tmp_path):
    grid = _grid()[:1]
    cache = tmp_path / "cache"
    first = run_sweep(grid, measure="single", replicates=2, cache=cache, progress=False)
    f = _files(cache)[0]
    rec = json.loads(f.read_text())
    del rec["result"]["ratio"]  # an older measure without "ratio"
    rec["sha256"] = _sha(rec["result"])  # consistent, not corrupt
    f.write_text(json.dumps(rec))
    old = run_sweep(grid, measure="single", replicates=2, cache=cache, progress=False)
    with pytest.raises(KeyError, match="metrics="):
        old.values("ratio")
    again = run_sweep(
        grid, measure="single", replicates=2, cache=cache, progress=False, metrics=("err", "ratio")
    )
    assert again.recomputed == 0 and again.cached == 1 and again.computed == 1
    assert again.rows() == first.rows()
    with pytest.raises(KeyError, match="returned no 'nonsense'"):
        run_sweep(grid, measure="single", replicates=1, progress=False, metrics=("nonsense",))


def test_stale_part_files_are_removed_at_sweep_start(tmp_path):
    cache = tmp_path / "cache"
    (cache / "ab").mkdir(parents=True)
    old_top, old_sub = cache / ".x1.part", cache / "ab" / ".x2.part"
    new_sub = cache / "ab" / ".x3.part"  # a concurrent writer's, newer than the start
    keep = cache / "ab" / "keep.json"
    for f in (old_top, old_sub, new_sub, keep):
        f.write_text("{")
    past = time.time() - 3600
    for f in (old_top, old_sub, keep):
        os.utime(f, (past, past))
    future = time.time() + 3600
    os.utime(new_sub, (future, future))
    run_sweep([TINY], measure="single", replicates=1, cache=cache, progress=False)
    assert not old_top.exists() and not old_sub.exists()
    assert new_sub.exists() and keep.exists()
    assert clean_stale_parts(cache, time.time() + 7200) == 1  # now older than that time


def diverging(config):
    """A measure whose run at u_norm = 4 diverges (inf), for the missing-value tests."""
    return {"x": float("inf") if config.u_norm == 4.0 else config.u_norm, "y": float("nan")}


def test_non_finite_values_are_stored_as_none_and_read_as_nan(tmp_path):
    sw = run_sweep(_grid(), measure=diverging, replicates=2, cache=tmp_path / "c", progress=False)
    again = run_sweep(
        _grid(), measure=diverging, replicates=2, cache=tmp_path / "c", progress=False
    )
    assert again.cached == 8
    for s in (sw, again):
        assert s.results[3][0]["x"] is None
        assert s.n_missing("x") == 2 and s.n_missing("y") == 8
        assert s.values("x")[0].tolist() == [0.5, 0.5]


def test_every_item_runs_with_the_same_blas_threads(tmp_path):
    """Items run with BLAS pinned to BLAS_THREADS in this process (jobs=1),
    whatever the caller's setting, and the setting is part of the cache key."""
    from threadpoolctl import threadpool_info

    seen = []
    import refimpl.lab.measures as M

    real = M.MEASURES["single"]

    def spy(config, **kw):
        seen.extend(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")
        return real(config, **kw)

    M.MEASURES["single"] = spy
    try:
        run_sweep(_grid()[:1], measure="single", replicates=1, progress=False)
    finally:
        M.MEASURES["single"] = real
    assert seen and set(seen) == {S.BLAS_THREADS}
    seeded = TINY.replace(seed=1)
    key = item_key("single", seeded, {}, code="x")
    old, S.BLAS_THREADS = S.BLAS_THREADS, S.BLAS_THREADS + 1
    try:
        assert item_key("single", seeded, {}, code="x") != key
    finally:
        S.BLAS_THREADS = old


def test_jobs_do_not_change_the_numbers_at_a_size_where_blas_threads_matter(tmp_path):
    """Without BLAS threads pinned in the environment (this process keeps its
    default), --jobs 1 and --jobs 2 give the same bits: every item runs with
    BLAS_THREADS threads in the main process and in the workers."""
    big = Config(
        d=600,
        m=10,
        n_up=200,
        n_down=10,
        steps_up=30,
        steps_down=30,
        snapshots=2,
        n_test=500,
        u_norm=2.0,
    )
    grid = [big.replace(alpha=a) for a in (0.5, 1.0)]
    one = run_sweep(grid, replicates=2, jobs=1, progress=False)
    two = run_sweep(grid, replicates=2, jobs=2, progress=False)
    assert one.rows() == two.rows()


def test_claims_and_cli_do_not_enter_the_code_hash_but_a_measure_there_does(tmp_path, monkeypatch):
    """Editing a claim's decision or report keeps its runs; a measure defined
    in the claims room (measure_at_loss) is hashed by its own file."""
    from refimpl.claims._base import measure_at_loss

    own = S._measure_files(measure_at_loss)
    assert len(own) == 1 and own[0].endswith("claims/_base.py")
    assert S._measure_files("outcomes") == () and S.code_hash(own) != S.code_hash()
    pkg = tmp_path / "pkg"
    for rel in ("core.py", "claims/a.py", "cli/b.py"):
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text("x = 1\n")
    monkeypatch.setattr(S, "_PACKAGE_DIR", pkg)
    before = S.code_hash()
    (pkg / "claims" / "a.py").write_text("x = 2\n")
    (pkg / "cli" / "b.py").write_text("x = 2\n")
    assert S.code_hash() == before
    (pkg / "core.py").write_text("x = 2\n")
    assert S.code_hash() != before


def test_a_batched_measure_gives_the_item_measure_and_caches_each_item(tmp_path):
    """measure="single_batched" runs items of equal shape in one call: the
    same seeds as measure="single", its numbers to rounding (the test error
    equal where the draws are), one cache record per item, read back alone;
    jobs do not change it."""
    grid = [TINY.replace(u_norm=u, d=d, epsilon=0.2) for u in (0.5, 2.0) for d in (30, 40)]
    single = run_sweep(grid, measure="single", replicates=3, progress=False)
    batched = run_sweep(
        grid, measure="single_batched", replicates=3, cache=tmp_path, jobs=2, progress=False
    )
    assert (batched.seeds == single.seeds).all()
    for key in ("loss", "steps", "stopped"):
        assert batched.values(key) == pytest.approx(single.values(key), rel=1e-10)
    assert (batched.values("err") == single.values("err")).mean() >= 0.9
    assert len(_files(tmp_path)) == 12 and batched.computed == 12
    again = run_sweep(
        grid[::-1], measure="single_batched", replicates=3, cache=tmp_path, progress=False
    )
    assert again.computed == 0 and (again.values("err") == batched.values("err")[::-1]).all()


def test_batched_groups_hold_one_shape_and_at_most_batch_items():
    grid = [TINY.replace(d=d, u_norm=u) for u in (0.5, 1.0, 2.0) for d in (30, 40)]
    calls = [("single_batched", "single_batched", Config, None, {}, k, None) for k in range(6 * 50)]
    configs = [grid[k % 6] for k in range(300)]
    groups = S._plan(calls, configs, list(range(300)))
    assert sorted(i for g in groups for i, _ in g) == list(range(300))
    for g in groups:
        assert len(g) <= S.BATCH_ITEMS and len({configs[i].d for i, _ in g}) == 1
    assert len(groups) == 2 * -(-150 // S.BATCH_ITEMS)
    seeds = [(k * 7919) % 11 for k in range(300)]  # unsorted: 11 seeds
    for g in S._plan(calls, configs, seeds):  # a seed's items adjacent, indices kept
        assert all(args[5] == i for i, args in g)
        assert [seeds[i] for i, _ in g] == sorted(seeds[i] for i, _ in g)
    items = [("single", "single", Config, None, {}, k, None) for k in range(6)]
    assert len(S._plan(items, configs[:6], [7] * 6)) == 1  # an item measure: by seed
