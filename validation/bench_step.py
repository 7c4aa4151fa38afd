"""Time per GD step with coefficient tracking: refimpl's weight-space engine,
its Gram-space engine (docs/model.md §9), the plain-numpy twin, and the floor
(the two dense products a weight-space step needs at least), as ratios to the
floor measured in the same run (targets per size: WEIGHT_TARGETS).

The floor is ``A = X W^T`` (pre-activations, (nP, d) x (d, 2m)) and
``G = C^T X`` (gradient, (2m, nP) x (nP, d)) with numpy's BLAS, outputs
preallocated. The engines are timed through the public ``train_stage``
(``engine="weight"`` / ``"gram"``, snapshots at step 0 and the last step
only), as the marginal cost of a step: (time of k2 steps - time of k1 steps) /
(k2 - k1), so that the fixed costs of a stage (patch roles, the Gram set-up
Q = X X^T and K_0 = X W_0^T, the final loss) are not counted per step; they
are reported on their own (``set-up``: a stage of 0 steps). The twin is
``refimpl.naive.gd_step``. Measurements are interleaved and the best of
several repeats is kept, since the machine is shared. The ``auto`` column is
the engine ``train_stage(engine="auto")`` picks for a stage of 1000 steps and
21 snapshots, and whether that pick is at least as fast per step as the
weight engine.

    python validation/bench_step.py [--repeats 5] [--sizes small,...] [--blas-threads N] [--no-twin]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from refimpl import naive
from refimpl.data import sample_task, signal_vectors
from refimpl.gram import choose_engine
from refimpl.train import train_stage

SIZES = {  # name: (d, m, n); P = 2 (joint layout)
    "small": (500, 10, 20),
    "small-wide": (1000, 10, 20),
    "medium": (1000, 20, 200),
    "large": (4000, 50, 1000),
    "many-patches": (200, 10, 500),  # nP > 2d: weight space is the cheaper engine
}
# targets, as per-step ratios to the floor
WEIGHT_TARGETS = {"small": 3.0, "large": 1.3}
GRAM_TARGETS = {"small-wide": 0.2, "large": 0.5}
AUTO_STEPS, AUTO_SNAPSHOTS = 1000, 21


def _problem(d, m, n, seed=0):
    rng = np.random.default_rng(seed)
    u, v, _ = signal_vectors(d, 3.0, 1.0, 1.0)
    task = sample_task(rng, n, u, v, 1.0, 0.1, "joint")
    W0 = 0.01 * rng.standard_normal((2, m, d))
    return task, W0


def _seconds(fn, k):
    start = time.perf_counter()
    fn(k)
    return time.perf_counter() - start


def _twin_steps(W0, task, roles, trainable, eta, k):
    """``k`` steps of the numpy twin (refimpl.naive.gd_step) from W0."""
    _, m, _ = W0.shape
    n, S = task.X.shape[0], task.signals.shape[0]
    state = (W0, np.zeros((2, m, S)), np.zeros((2, m, n)), np.zeros((2, m, n)))
    for _ in range(k):
        args = (task.X, task.y, task.y_clean, task.signals, task.xi, roles, trainable)
        state = naive.gd_step(state[0], *args, eta, 0.0, *state[1:])[1:]


def bench(name, repeats, budget=0.5, min_steps=10, twin=True):
    """Best-of-``repeats`` seconds per step of each method, and the fixed
    costs of the two engines (seconds for a stage of 0 steps)."""
    d, m, n = SIZES[name]
    task, W0 = _problem(d, m, n)
    Xf = task.X.reshape(-1, d)
    Wf = W0.reshape(2 * m, d)
    A = np.empty((Xf.shape[0], 2 * m))
    C = np.random.default_rng(1).standard_normal(A.shape)
    G = np.empty((2 * m, d))
    eta = 0.1

    def floor(k):
        for _ in range(k):
            np.dot(Xf, Wf.T, out=A)
            np.dot(C.T, Xf, out=G)

    def engine(which):
        return lambda k: train_stage(W0, task, eta, k, snapshots=2, engine=which)

    trainable = np.ones((2, m), bool)
    roles = task.roles()

    def numpy_twin(k):
        _twin_steps(W0, task, roles, trainable, eta, k)

    marginal = {"weight": engine("weight"), "gram": engine("gram")}
    plain = {"floor": floor}
    if twin:
        plain["numpy twin"] = numpy_twin
    for fn in marginal.values():
        fn(2)  # compile / load the cached kernels
    # steps per measurement: enough for the steps alone (beyond the fixed
    # costs of a stage, which can be large: the Gram set-up) to fill
    # ``budget`` seconds, doubling from ``min_steps``; the twin: 1 step
    steps = {"numpy twin": 1}
    for key, fn in {**plain, **marginal}.items():
        if key in steps:
            continue
        fixed = _seconds(fn, 0) if key in marginal else 0.0
        k = min_steps
        while _seconds(fn, k) - fixed < budget and k < 10**7:
            k *= 2
        steps[key] = k
    best = {}
    for _ in range(repeats):
        for key, fn in plain.items():
            best[key] = min(best.get(key, np.inf), _seconds(fn, steps[key]) / steps[key])
        for key, fn in marginal.items():
            k2 = steps[key]
            k1 = k2 // 5
            for k in (0, k1, k2):
                best[(key, k)] = min(best.get((key, k), np.inf), _seconds(fn, k))
    out = {key: best[key] for key in plain}
    for key in marginal:
        k2 = steps[key]
        k1 = k2 // 5
        out[key] = (best[(key, k2)] - best[(key, k1)]) / (k2 - k1)
        out[key + " set-up"] = best[(key, 0)]
    out["auto"] = choose_engine(n, 2, m, d, AUTO_STEPS, AUTO_SNAPSHOTS)
    return out


def _target(ratio, target):
    if target is None:
        return ""
    return f" (<= {target}: {'met' if ratio <= target else 'NOT met'})"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", default=",".join(SIZES))
    parser.add_argument(
        "--blas-threads",
        type=int,
        default=None,
        help="limit every BLAS (numpy's and numba's) to N threads",
    )
    parser.add_argument("--no-twin", action="store_true", help="skip the slow numpy twin")
    args = parser.parse_args(argv)
    if args.blas_threads is not None:
        import scipy.linalg.cython_blas  # noqa: F401  (numba's np.dot calls scipy's BLAS)
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.blas_threads, user_api="blas")
    try:
        from threadpoolctl import threadpool_info

        blas = "; ".join(
            f"{i['internal_api']} {i.get('version')} threads={i['num_threads']}"
            for i in threadpool_info()
            if i["user_api"] == "blas"
        )
    except ImportError:
        blas = "threadpoolctl not installed"
    print(f"# {platform.processor() or platform.machine()}, numpy {np.__version__}; BLAS: {blas}")
    print(
        "| size (d, m, n), P=2 | floor ms/step | weight ms/step | gram ms/step "
        "| weight / floor | gram / floor | twin / floor | set-up ms weight, gram "
        f"| auto ({AUTO_STEPS} steps) |"
    )
    print("|" + "---|" * 9)
    for name in args.sizes.split(","):
        best = bench(name, args.repeats, twin=not args.no_twin)
        f = best["floor"]
        w, g = best["weight"] / f, best["gram"] / f
        twin = f"{best['numpy twin'] / f:.1f}" if "numpy twin" in best else "-"
        auto = best["auto"]
        ok = "ok" if auto == "weight" or best["gram"] <= best["weight"] else "SLOWER than weight"
        print(
            f"| {name} {SIZES[name]} | {1e3 * f:.3f} | {1e3 * best['weight']:.3f} "
            f"| {1e3 * best['gram']:.3f} | {w:.2f}{_target(w, WEIGHT_TARGETS.get(name))} "
            f"| {g:.3f}{_target(g, GRAM_TARGETS.get(name))} | {twin} "
            f"| {1e3 * best['weight set-up']:.1f}, {1e3 * best['gram set-up']:.1f} "
            f"| {auto}: {ok} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
