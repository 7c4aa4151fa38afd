"""
The two engines side by side
============================

``train_stage`` computes the same gradient descent in two ways
(docs/model.md §9): in weight space (``engine="weight"``, the reference) and
in the span of the data (``engine="gram"``, W_t = s_t W_0 + B_t X_f with the
Gram matrix formed once). They add the same terms in a different order, so
they agree to rounding; this example trains one stage with each and shows
their difference step by step, and their times.
"""

import time

import matplotlib.pyplot as plt
import numpy as np

from refimpl.data import sample_task, signal_vectors
from refimpl.train import train_stage

rng = np.random.default_rng(0)
d, m, n = 1000, 10, 20
u, v, _ = signal_vectors(d, 2.0, 1.0, 1.0)
task = sample_task(rng, n, u, v, 1.0, 0.0, "joint")
W0 = rng.normal(0.0, 0.01, size=(2, m, d))

runs, seconds = {}, {}
for engine in ("weight", "gram"):
    train_stage(W0, task, 0.1, 5, engine=engine)  # compile once before timing
    start = time.perf_counter()
    runs[engine] = train_stage(W0, task, 0.1, 300, snapshots=31, engine=engine)
    seconds[engine] = time.perf_counter() - start
    print(f"{engine:6s} {seconds[engine]:.3f} s for 300 steps")

w, g = runs["weight"], runs["gram"]
rel_W = np.abs(w.W - g.W).max(axis=(1, 2, 3)) / np.abs(w.W).max(axis=(1, 2, 3))
rel_loss = np.abs(w.loss - g.loss) / np.abs(w.loss)

fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
a.semilogy(w.loss, label="weight space")
a.semilogy(g.loss, "--", label="Gram space")
a.set(xlabel="GD step", ylabel="training loss", title="the same dynamics")
a.legend()
b.semilogy(w.steps, np.maximum(rel_W, 1e-17), "o-", label="W (normwise)")
b.semilogy(np.maximum(rel_loss, 1e-17), label="loss")
b.set(xlabel="GD step", ylabel="relative difference", title="weight vs Gram: rounding")
b.legend()
fig.tight_layout()
