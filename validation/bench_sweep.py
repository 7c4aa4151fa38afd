"""Sweep throughput: runs per second against the summed weight-space floor,
and the speed-up of two dask workers over one.

The floor of a run is what its GD steps need at least in weight space: the
two dense products of a step (``A = X W^T``, (nP, d) x (d, 2m), and ``G =
C^T X``, (2m, nP) x (nP, d)) with numpy's BLAS on one thread, times the
steps; the floor of a sweep is the sum over its runs (the test error, the
data and everything else come on top of it). Printed for

(a) ``run_sweep`` of the ``single`` measure (:func:`refimpl.lab.measures.measure_single`,
    one run per item, ``train_stage`` with its engine chosen by cost),
(b) the batched phase path (:func:`refimpl.lab.phase.measure_phase_row`: one
    item per grid row, all of its runs in one compiled call,
    :mod:`refimpl.batch`), on the same runs as (a) and on whole rows of
    Kou et al.'s grid,

at Kou et al.'s sizes (n = 20, m = 10, P = 2, 100 steps, 1000 test draws),
(d) three-stage items (:func:`refimpl.lab.measures.measure_outcomes`) over
the alphas of one seed, as gain_alpha sweeps them (common random numbers):
each item alone, as before shared stages, against ``run_sweep`` with
``common=("alpha",)``, whose items of one seed share their upstream stage and
scratch baseline (:mod:`refimpl.memo`), and against the batched three-stage
path (``measure="outcomes_batched"``, :mod:`refimpl.batch_transfer`), at the
base regime (d = 600, m = 10, N_1 = 200, N_2 = 10, 200 steps per stage) and
at 2x and 4x its d, N_1 and N_2; the shared numbers are compared with the
items' leaf by leaf, the batched gains with theirs (equal to rounding),
and (c) the same sweep of phase rows through a dask.distributed
``LocalCluster`` with one worker and with two (one thread each; workers
started and warmed up before the clock starts), with the ratio of the two
wall times (the target: at most 0.65). One measurement each, wall
clock, on a machine that may be shared: the load average is printed beside.

    python validation/bench_sweep.py [--quick] [--no-dask | --dask-only | --transfer-only]
                                      [--rows N]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from threadpoolctl import threadpool_limits

from refimpl.config import Config
from refimpl.lab.phase import PRESETS, measure_phase_row
from refimpl.lab.seeds import stream_salt
from refimpl.lab.sweep import run_sweep

KOU = Config.from_dict({**Config().to_dict(), **PRESETS["kou2023"]["base"]})


def floor_per_step(d, m, n, P=2, repeats=5, steps=200):
    """Seconds of the two dense products of one weight-space step (BLAS, 1 thread)."""
    rng = np.random.default_rng(0)
    Xf, Wf = rng.standard_normal((n * P, d)), rng.standard_normal((2 * m, d))
    A, C, G = np.empty((n * P, 2 * m)), rng.standard_normal((n * P, 2 * m)), np.empty((2 * m, d))
    best = np.inf
    with threadpool_limits(1, user_api="blas"):
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(steps):
                np.dot(Xf, Wf.T, out=A)
                np.dot(C.T, Xf, out=G)
            best = min(best, (time.perf_counter() - start) / steps)
    return best


def summed_floor(cells, reps, floors):
    return sum(floors[c.d] * c.steps_up * reps for c in cells)


def load():
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def report(label, runs, seconds, floor):
    print(
        f"| {label} | {runs} | {seconds:.2f} | {runs / seconds:,.0f} | {floor:.3f} "
        f"| {seconds / floor:.2f} |",
        flush=True,
    )


def bench_local(ds, mus, reps, rows_mus):
    floors = {d: floor_per_step(d, KOU.m, KOU.n_up) for d in sorted(set(ds))}
    print("floor per step (ms): " + ", ".join(f"d={d}: {1e3 * f:.4f}" for d, f in floors.items()))
    print("\n| path | runs | seconds | runs/s | summed floor (s) | time / floor |")
    print("|---|---|---|---|---|---|")
    cells = [KOU.replace(d=d, u_norm=u) for d in ds for u in mus]
    floor = summed_floor(cells, reps, floors)
    run_sweep(cells[:1], measure="single", replicates=1, progress=False)  # warm up
    start = time.perf_counter()
    run_sweep(cells, measure="single", replicates=reps, progress=False, salt="bench")
    report(
        "(a) run_sweep, measure 'single' (one run per item)",
        len(cells) * reps,
        time.perf_counter() - start,
        floor,
    )
    salt = stream_salt("bench")
    measure_phase_row(KOU.replace(d=ds[0]), "u_norm", mus[:1], 1, salt)  # warm up
    with threadpool_limits(1, user_api="blas"):
        start = time.perf_counter()
        for d in ds:
            measure_phase_row(KOU.replace(d=d), "u_norm", mus, reps, salt)
        report(
            "(b) batched phase rows, the same runs",
            len(cells) * reps,
            time.perf_counter() - start,
            floor,
        )
        rows = [KOU.replace(d=d, u_norm=u) for d in ds for u in rows_mus]
        start = time.perf_counter()
        for d in ds:
            measure_phase_row(KOU.replace(d=d), "u_norm", rows_mus, 10, salt)
        report(
            f"(b) batched phase rows, {len(rows_mus)} |mu| x 10 reps a row",
            len(rows) * 10,
            time.perf_counter() - start,
            summed_floor(rows, 10, floors),
        )


def _warm():
    from refimpl.lab.phase import measure_phase_row as measure

    measure(KOU.replace(d=100, n_test=10), "u_norm", [1.0], 1, "warm")
    return True


def bench_dask(ds, mus):
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        print("\n(c) skipped: dask.distributed is not installed (pip install 'refimpl[cluster]')")
        return
    configs = [KOU.replace(d=d) for d in sorted(ds, reverse=True)]  # largest rows first
    options = {"x_field": "u_norm", "x_values": list(mus), "reps": 10, "salt": "bench-dask"}
    seconds = {}
    for workers in (1, 2):
        with (
            LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            client.wait_for_workers(workers)
            client.run(_warm)
            start = time.perf_counter()
            sweep = run_sweep(
                configs,
                measure=measure_phase_row,
                replicates=1,
                options=options,
                scheduler=cluster.scheduler_address,
                progress=False,
            )
            seconds[workers] = time.perf_counter() - start
            values = np.array(sweep.results[0][0]["err"])
            if workers == 1:
                first = values
            else:
                same = "identical" if np.array_equal(first, values) else "DIFFERENT"
        print(
            f"(c) dask LocalCluster, {workers} worker(s) x 1 thread: {len(configs)} phase rows "
            f"({len(configs) * len(mus) * 10} runs) in {seconds[workers]:.2f} s ({load()})",
            flush=True,
        )
    ratio = seconds[2] / seconds[1]
    print(
        f"(c) two workers / one worker: {ratio:.2f} (target <= 0.65: "
        f"{'met' if ratio <= 0.65 else 'NOT met'}); numbers {same}"
    )


def bench_transfer(quick):
    """(d): three-stage items one by one, with shared stages, and batched."""
    from refimpl.files import jsonable
    from refimpl.lab.measures import measure_outcomes, measure_outcomes_batched

    plans = {1: (11, 2), 2: (6, 1), 4: (3, 1)} if not quick else {1: (6, 1), 2: (3, 1)}
    for scale, (n_alpha, seeds) in plans.items():
        base = Config(d=600 * scale, n_up=200 * scale, n_down=10 * scale, engine="auto")
        grid = [base.replace(alpha=float(a)) for a in np.linspace(0, 1, n_alpha)]
        sweep = dict(replicates=seeds, common=("alpha",), progress=False)
        with threadpool_limits(1, user_api="blas"):
            measure_outcomes(base.replace(seed=12345))  # compiled kernels loaded before timing
            measure_outcomes_batched([base.replace(seed=12345)])
            start = time.perf_counter()
            sw = run_sweep(grid, measure="outcomes", **sweep)
            shared = time.perf_counter() - start
            start = time.perf_counter()
            bw = run_sweep(grid, measure="outcomes_batched", **sweep)
            batched = time.perf_counter() - start
            start = time.perf_counter()
            alone = [
                [
                    jsonable(measure_outcomes(c.replace(seed=int(sw.seeds[p, r]))))
                    for r in range(seeds)
                ]
                for p, c in enumerate(grid)
            ]
            single = time.perf_counter() - start
        same = "identical" if alone == sw.results else "DIFFERENT"
        gains = np.array([[r["gain"] for r in row] for row in alone])
        equal = np.mean(bw.values("gain") == gains)
        runs = n_alpha * seeds
        print(
            f"(d) x{scale}: d = {base.d}, N_1 = {base.n_up}, N_2 = {base.n_down}, {runs} items: "
            f"alone {runs / single:6.2f} items/s, shared {runs / shared:6.2f} items/s, "
            f"batched {runs / batched:6.2f} items/s; time / alone: shared {shared / single:.2f}, "
            f"batched {batched / single:.3f}; shared numbers {same}, batched gains equal in "
            f"{100 * equal:.0f}% (max |diff| {np.max(np.abs(bw.values('gain') - gains)):.2g}); "
            f"{load()}"
        )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a smaller run (seconds)")
    p.add_argument("--no-dask", action="store_true", help="skip (c)")
    p.add_argument("--dask-only", action="store_true", help="only (c)")
    p.add_argument("--transfer-only", action="store_true", help="only (d)")
    p.add_argument("--rows", type=int, default=12, help="phase rows of the dask sweep (c)")
    args = p.parse_args(argv)
    ds = [100, 600, 1090]
    mus = [0.5, 1.5, 2.5, 5.0] if args.quick else [0.5, 1.0, 1.5, 2.0, 3.0, 5.0]
    reps = 3 if args.quick else 10
    rows_mus = [round(0.1 * k, 1) for k in range(0, 100, 4 if args.quick else 1)]
    print(
        f"# Kou et al.'s sizes: n = {KOU.n_up}, m = {KOU.m}, P = 2, {KOU.steps_up} steps, "
        f"{KOU.n_test} test draws; d in {ds}; {load()}"
    )
    if args.transfer_only:
        bench_transfer(args.quick)
        return
    if not args.dask_only:
        bench_local(ds, mus, reps, rows_mus)
        bench_transfer(args.quick)
    if not args.no_dask:
        grid = np.unique(np.linspace(100, 1090, 3 if args.quick else args.rows) // 10 * 10)
        bench_dask([int(d) for d in grid], rows_mus)


if __name__ == "__main__":
    main()
