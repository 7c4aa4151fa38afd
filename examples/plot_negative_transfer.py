"""
Negative transfer and its levers
================================

Without a shared signal (``|u| = 0``) the inherited filters carry only the
upstream task's own signal and its memorised noise, and fine-tuning from
them can end worse than training from scratch: negative transfer,
err_transfer - err_scratch > 0 (docs/model.md §5, §8.1). The paper's levers
against it are a smaller inherited fraction alpha and weight decay during
fine-tuning; rescaling the inherited filters is a diagnostic. Here each lever
is run on the same seeds (common random numbers, so every lever of a seed
shares its upstream stage, :mod:`refimpl.memo`), at the default regime with
alpha = 0.8, as the ``mitigation`` claim does in its ``hard`` region (at a
smaller number of seeds: the claim's own numbers are on its results page).
"""

import matplotlib.pyplot as plt
import numpy as np

from refimpl import Config
from refimpl.claims.mitigation import LEVERS
from refimpl.lab.sweep import run_sweep

base = Config(u_norm=0.0, alpha=0.8, engine="auto", n_test=5000)
levers = LEVERS  # the mitigation claim's: name -> config changes, the baseline first
grid = [base.replace(**changes) for changes in levers.values()]
sweep = run_sweep(
    grid,
    replicates=12,
    common=("alpha", "weight_decay", "rescale_inherited"),
    salt="gallery/negative-transfer",
    progress=False,
)
harm = -sweep.values("gain")  # err_transfer - err_scratch, (levers, seeds)

# %%
# Mean negative transfer per lever, with its standard error over the seeds
# (above zero: transfer is worse than scratch):
mean = harm.mean(axis=1)
se = harm.std(axis=1, ddof=1) / np.sqrt(harm.shape[1])
fig, ax = plt.subplots(figsize=(7, 3.8))
ax.bar(range(len(levers)), mean, yerr=se, color=["C3"] + ["C0"] * (len(levers) - 1), capsize=4)
ax.axhline(0.0, color="k", lw=0.8)
ax.set_xticks(range(len(levers)), list(levers), rotation=15)
ax.set_ylabel("err_transfer - err_scratch")
ax.set_title(f"negative transfer at |u| = 0 and its levers ({harm.shape[1]} seeds)")
fig.tight_layout()
for name, m, s in zip(levers, mean, se, strict=True):
    print(f"{name:20} {m:+.4f} +- {s:.4f}")
