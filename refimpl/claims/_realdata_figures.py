"""The figures of the claim realdata (a helper, not a claim): per sweep the
downstream accuracy of transfer and scratch and the paired gain against the
swept value."""

from ..lab import figures as F
from ..lab.claim import Figure


def sweep_panels(points, sweep, xlabel):
    """Accuracy of transfer and scratch, and the paired gain, against the swept
    value (± SE bands): one curve per split level, one scratch curve (the
    levels share the downstream task)."""
    acc, gain = [], []
    for i, level in enumerate(dict.fromkeys(p["level"] for p in points)):
        ps = sorted((p for p in points if p["level"] == level), key=lambda p: p[sweep])
        x, name = [p[sweep] for p in ps], f" ({level})" if sweep == "alpha" else ""

        def curve(key, label, fmt, ps=ps, x=x):
            return F.Curve([p[key] for p in ps], label, fmt, x, [p[f"{key}_se"] for p in ps])

        acc += [curve("acc_transfer", f"transfer{name}", f"C{i}o-")]
        acc += [curve("acc_scratch", "scratch", "kx--")] if i == 0 else []
        gain += [curve("gain", f"transfer - scratch{name}", f"C{i}o-")]
    log = {"xscale": "log"} if sweep in ("n_down", "n_up") else {}
    zero = [{"y": 0.0, "color": "k", "lw": 0.8}]
    return [
        F.Panel(acc, xlabel=xlabel, ylabel="downstream test accuracy", axes=log),
        F.Panel(gain, xlabel=xlabel, ylabel="gain (paired, ± SE band)", hlines=zero, axes=log),
    ]


def sweep_figure(points, sweep, xlabel, title):
    """The :class:`~refimpl.lab.claim.Figure` ``accuracy_vs_<sweep>`` of :func:`sweep_panels`."""

    def draw(path):
        panels = sweep_panels(points, sweep, xlabel)
        F.panels_figure(path, panels, figsize=(10, 3.8), suptitle=title)

    return Figure(f"accuracy_vs_{sweep}", draw)
