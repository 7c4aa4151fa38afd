"""Sweeps on a real dask.distributed cluster (a scheduler and two workers on
127.0.0.1, started here): the same numbers as a local run, and every result
that arrived is kept when the client stops early. Skipped without the
``cluster`` extra."""

import os

import pytest

pytest.importorskip("distributed", reason="the cluster extra (dask.distributed) is not installed")
pytestmark = pytest.mark.slow

from cluster_processes import end_processes, start_scheduler, start_worker  # noqa: E402

from refimpl.config import Config  # noqa: E402
from refimpl.lab import cluster as CL  # noqa: E402
from refimpl.lab import sweep as S  # noqa: E402

TINY = Config(
    d=40, m=2, n_up=10, n_down=6, steps_up=20, steps_down=20, snapshots=2, n_test=200, u_norm=2.0
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dask")
    env = dict(os.environ)
    scheduler, address = start_scheduler(folder, env)
    procs = [scheduler] + [start_worker(address, folder, env) for _ in range(2)]
    try:
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        end_processes(procs)


def test_cluster_sweep_gives_the_local_numbers(cluster, tmp_path):
    grid = [TINY.replace(alpha=a) for a in (0.0, 0.5, 1.0)]
    local = S.run_sweep(grid, replicates=2, jobs=1, progress=False)
    remote = S.run_sweep(
        grid, replicates=2, cache=tmp_path / "c", scheduler=cluster, progress=False
    )
    assert remote.computed == 6 and remote.rows() == local.rows()
    again = S.run_sweep(grid, replicates=2, cache=tmp_path / "c", scheduler=cluster, progress=False)
    assert again.cached == 6 and again.rows() == local.rows()


def test_results_that_arrived_are_kept_when_the_client_stops(cluster, tmp_path):
    grid = [TINY.replace(u_norm=u) for u in (0.5, 1.0, 2.0, 4.0)]
    cache = tmp_path / "c"
    calls = []
    for cfg in grid:
        seeded = cfg.replace(seed=S.derive_seed(cfg, 0))
        key = S.item_key("transfer", seeded, {})
        calls.append(
            (
                "transfer",
                "transfer",
                Config,
                seeded.to_dict(),
                {},
                key,
                str(cache / key[:2] / f"{key}.json"),
            )
        )
    runs = CL._execute_on_cluster([[(i, c)] for i, c in enumerate(calls)], cluster)
    next(runs)  # one result arrives, then the client stops
    runs.close()
    resumed = S.run_sweep(grid, replicates=1, cache=cache, progress=False)
    assert resumed.cached >= 1 and resumed.computed == 4 - resumed.cached


def test_unreachable_scheduler_is_one_clear_error(tmp_path):
    from refimpl.errors import UsageError

    with pytest.raises(UsageError, match="cannot reach the dask scheduler"):
        S.run_sweep([TINY], replicates=1, scheduler="tcp://127.0.0.1:9", progress=False)
