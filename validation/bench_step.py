"""Time per GD step with coefficient tracking: refimpl, its plain-numpy twin,
and the floor (the two dense products one step needs at least), as ratios to
the floor measured in the same run (issue 2, "Performance").

The floor is ``A = X W^T`` (pre-activations, (nP, d) x (d, 2m)) and
``G = C^T X`` (gradient, (2m, nP) x (nP, d)) with numpy's BLAS, outputs
preallocated. refimpl is timed through its public ``train_stage`` (snapshots
at step 0 and the last step only); the twin is ``refimpl.naive.gd_step``.
Measurements are interleaved and the best of several repeats is kept, since
the machine is shared.

    python validation/bench_step.py [--repeats 5] [--sizes small,medium,large] [--blas-threads N]
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from refimpl import naive
from refimpl.data import sample_task, signal_vectors
from refimpl.train import train_stage

SIZES = {  # name: (d, m, n); P = 2 (joint layout)
    "small": (500, 10, 20),
    "medium": (1000, 20, 200),
    "large": (4000, 50, 1000),
}
TARGETS = {"small": 3.0, "medium": None, "large": 1.3}


def _problem(d, m, n, seed=0):
    rng = np.random.default_rng(seed)
    u, v, _ = signal_vectors(d, 3.0, 1.0, 1.0)
    task = sample_task(rng, n, u, v, 1.0, 0.1, "joint")
    W0 = 0.01 * rng.standard_normal((2, m, d))
    return task, W0


def _per_step(fn, steps):
    start = time.perf_counter()
    fn(steps)
    return (time.perf_counter() - start) / steps


def bench(name, repeats, budget=0.4, min_steps=10):
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

    def refimpl(k):
        train_stage(W0, task, eta, k, snapshots=2)

    S = task.signals.shape[0]
    trainable = np.ones((2, m), bool)

    def twin(k):
        state = (W0, np.zeros((2, m, S)), np.zeros((2, m, n)), np.zeros((2, m, n)))
        for _ in range(k):
            state = naive.gd_step(state[0], task.X, task.y, task.y_clean, task.signals,
                                  task.xi, trainable, eta, 0.0, *state[1:])[1:]

    refimpl(2)  # compile / load the cached kernels
    fns = {"floor": floor, "refimpl": refimpl, "numpy twin": twin}
    # steps per measurement: enough to fill ``budget`` seconds
    # steps per measurement: enough to fill ``budget`` seconds, and at least
    # ``min_steps`` for refimpl and the floor (train_stage's fixed costs, one
    # extra forward for the final loss among them, are spread over the steps)
    steps = {key: max(1 if key == "numpy twin" else min_steps,
                      int(budget / max(_per_step(fn, 1), 1e-7))) for key, fn in fns.items()}
    best = {key: np.inf for key in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            best[key] = min(best[key], _per_step(fn, steps[key]))
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", default="small,medium,large")
    parser.add_argument("--blas-threads", type=int, default=None,
                        help="limit every BLAS (numpy's and numba's) to N threads")
    args = parser.parse_args(argv)
    if args.blas_threads is not None:
        from threadpoolctl import threadpool_limits
        import scipy.linalg.cython_blas  # noqa: F401  (numba's np.dot calls scipy's BLAS)
        threadpool_limits(args.blas_threads, user_api="blas")
    try:
        from threadpoolctl import threadpool_info
        blas = "; ".join(f"{i['internal_api']} {i.get('version')} threads={i['num_threads']}"
                         for i in threadpool_info() if i["user_api"] == "blas")
    except ImportError:
        blas = "threadpoolctl not installed"
    print(f"# {platform.processor() or platform.machine()}, numpy {np.__version__}; BLAS: {blas}")
    header = (f"| size (d, m, n), P=2 | floor ms/step | refimpl ms/step | twin ms/step "
              f"| refimpl / floor | twin / floor | target |")
    print(header)
    print("|" + "---|" * 7)
    for name in args.sizes.split(","):
        best = bench(name, args.repeats)
        f = best["floor"]
        target = TARGETS[name]
        ok = "" if target is None else (f"<= {target}x: {'met' if best['refimpl'] / f <= target else 'NOT met'}")
        faster = "faster" if best["refimpl"] < best["numpy twin"] else "NOT faster"
        print(f"| {name} {SIZES[name]} | {1e3 * f:.3f} | {1e3 * best['refimpl']:.3f} "
              f"| {1e3 * best['numpy twin']:.3f} | {best['refimpl'] / f:.2f} "
              f"| {best['numpy twin'] / f:.1f} | {ok} ({faster} than twin) |", flush=True)


if __name__ == "__main__":
    main()
