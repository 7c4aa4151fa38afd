"""
The coefficients of one transfer run
====================================

One run of the three-stage experiment (docs/model.md §5): the upstream stage,
the fine-tuning of a network that inherits a fraction alpha of its filters,
and the scratch baseline. refimpl tracks the signal-learning coefficient
gamma and the noise-memorisation coefficients rho_bar and rho_under exactly
at every snapshot; here are their means over the filters, stage by stage.
"""

import matplotlib.pyplot as plt

from refimpl import Config, run_experiment

config = Config(d=600, m=10, n_up=200, n_down=10, u_norm=3.0, alpha=0.5, seed=1)
exp = run_experiment(config)

fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), sharey=False)
for ax, name in zip(axes, ("up", "down", "scratch"), strict=True):
    stage = exp.stages[name]
    ax.plot(stage.steps, stage.gamma.mean(axis=(1, 2, 3)), label="gamma (signal)")
    ax.plot(stage.steps, stage.rho_bar.max(axis=(1, 2, 3)), label="max rho_bar (noise)")
    ax.plot(stage.steps, stage.rho_under.min(axis=(1, 2, 3)), label="min rho_under")
    ax.set(title=f"stage {name}", xlabel="GD step")
axes[0].set_ylabel("coefficient")
axes[0].legend(fontsize=8)
fig.tight_layout()

# %%
# The test errors of the transfer and the scratch runs, on the same test draws:
for name in ("down", "scratch"):
    e = exp.test_error(name)
    print(f"{name:8s} clean error {e['clean_error']:.3f} ± {e['clean_error_se']:.3f}")
