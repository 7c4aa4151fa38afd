"""
A small transfer phase diagram
==============================

Where does transfer help? Per cell of a grid over the shared signal ``|u|`` and
the upstream sample size N_1, the gain err_scratch - err_transfer of the
three-stage experiment (positive where transfer helps), its mean over
repetitions, and the map of its significant sign, with the theory indicator
Gamma_inh as contour lines (docs/model.md §7). The same function runs
``python -m refimpl phase --transfer`` (preset ``transfer-u-n1`` is the full
size); here the grid and the model are small.
"""

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from refimpl import Config
from refimpl.lab.phase import parse_axis
from refimpl.lab.phase_transfer import run_transfer_phase

base = Config(d=300, m=10, n_down=10, alpha=0.5, steps_up=100, steps_down=100, n_test=2000)
x = parse_axis("u_norm=0:3:0.75")
y = parse_axis("n_up=25,50,100,200", option="--y")
out = Path(tempfile.mkdtemp())
result = run_transfer_phase(base, x, y, reps=3, out=out, progress=False, contour="gamma_inh")

# %%
# The figure ``run_transfer_phase`` writes (``phase_transfer.png``):
fig, ax = plt.subplots(figsize=(10, 4.5))
ax.imshow(plt.imread(out / "phase_transfer.png"))
ax.set_axis_off()
fig.tight_layout()
