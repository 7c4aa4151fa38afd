"""
Kou et al.'s heatmap at a reduced size
======================================

The single-task phase diagram of Kou et al. (ICML 2023): the test error of a
two-layer ReLU CNN over the signal strength ``|mu|`` and the dimension d, with
the boundary ``n |mu|^4 = C sigma_p^4 d`` of benign overfitting fitted on it
(docs/model.md §7). The ``kou2023`` preset of ``python -m refimpl phase`` is
the full grid; this page runs the same regime on a coarser grid with fewer
repetitions, through the same library function
(:func:`refimpl.lab.phase.run_phase`).
"""

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from refimpl import Config
from refimpl.lab.phase import PRESETS, parse_axis, run_phase

base = Config(**PRESETS["kou2023"]["base"])
x = parse_axis("u_norm=0:9.9:0.45")
y = parse_axis("d=100:1090:45", option="--y")
out = Path(tempfile.mkdtemp())
result = run_phase(base, x, y, reps=3, out=out, progress=False)
print(f"{result['runs']} runs; files written: {sorted(p.name for p in out.glob('phase.*'))}")

# %%
# ``run_phase`` draws the two heatmaps (clean and noisy test error) with the
# fitted boundary into ``phase.png``:
fig, ax = plt.subplots(figsize=(10, 4.5))
ax.imshow(plt.imread(out / "phase.png"))
ax.set_axis_off()
fig.tight_layout()
