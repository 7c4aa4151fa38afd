"""The figures of the claim failure_mode (a helper, not a claim): the failure,
stalled and dead >= 1 rates against alpha with the remedies beside, and the
transfer gain against the dead count at alpha = 1."""

import numpy as np

from ..lab import figures as F


def draw_rates(path, dec, labels, reps, alphas, remedies, event):
    """Event and dead >= 1 rates against ``alphas``; the ``remedies`` offset at
    alpha = 1 (``event``: rule -> the event's name)."""
    k, curves = len(alphas), []
    for c, (r, ls) in enumerate((("steps", "-"), ("loss", "--"))):
        f, ev = dec["reported"][r], event[r]
        curves += [F.Curve(f["event_rate"][:k], f"{ev} rate ({labels[r]})", f"C{c}o{ls}")]
        curves += [F.Curve(f["dead_rate"][:k], f"dead >= 1 ({r} runs)", f"C{c}x:")]
        for j, (name, mk) in enumerate(zip(remedies, ("s", "^"), strict=True)):
            x, open_ = [1.0 + 0.025 * (j + 1)], {"mfc": "none"}
            curves += [F.Curve([f["event_rate"][k + j]], f"{ev}, {name}", f"C{c}{mk}", x)]
            curves += [F.Curve([f["dead_rate"][k + j]], "", f"C{c}{mk}", x, style=open_)]
    title = f"failure / stalled rate and dead >= 1 rate ({reps} seeds; open markers: dead >= 1"
    xlabel = "alpha (inherited fraction); remedies at alpha = 1, offset"
    panel = F.Panel(curves, f"{title} of the remedies)", xlabel, "rate", alphas, title_size=8)
    panel.axes, panel.legend = {"ylim": (-0.02, 1.02)}, {"fontsize": 6, "ncol": 2, "loc": "best"}
    F.panels_figure(path, [panel], figsize=(7.2, 4.4))


def draw_dead(path, at_one, labels, event):
    """err_transfer - err_scratch against the dead count at alpha = 1, per rule
    (``at_one``: rule -> (dead counts, differences, event flags))."""
    fig, axes = F.subplots(1, 2, figsize=(10, 4.2))
    rng = np.random.default_rng(0)  # jitter only
    for ax, (r, (d, diff, ev)) in zip(axes, at_one.items(), strict=True):
        none = {"steps": "no failure", "loss": "not stalled"}[r]
        x = d + rng.uniform(-0.15, 0.15, d.shape)
        ax.scatter(x[~ev], diff[~ev], s=10, c="C0", label=none)
        ax.scatter(x[ev], diff[ev], s=14, c="C3", marker="x", label=event[r])
        ax.axhline(0, color="k", lw=0.6)
        ax.set(xlabel="dead points at step 0 (jittered)", ylabel="err_transfer - err_scratch")
        ax.set_title(f"alpha = 1, {labels[r]}", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    F.save(fig, path, dpi=100)
