"""Figures, behind the optional ``plot`` extra (matplotlib).

matplotlib's object-oriented API only (``matplotlib.figure.Figure``, no
pyplot), so that drawing a figure never changes a user's backend or global
state. Drawing functions take an ``ax`` and return it; :func:`save` writes a
PNG. Without matplotlib, :func:`available` is False and :data:`INSTALL_HINT`
says what to install.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from ..decomposition import own_entries
from ..errors import TrajectoryError, UsageError
from ..files import atomic_write, check_output, not_regular
from ..trajectory import load
from ..transfer import inherited_filters

__all__ = [
    "available",
    "INSTALL_HINT",
    "subplots",
    "save",
    "errorbar_lines",
    "line_figure",
    "Curve",
    "Panel",
    "draw_panel",
    "panels_figure",
    "draw_stage",
    "plot_trajectory",
    "figure_path",
]

INSTALL_HINT = (
    "figures need matplotlib: pip install 'refimpl[plot]' (or .venv/bin/pip install matplotlib)"
)


def available() -> bool:
    """True when matplotlib can be imported.

    Returns
    -------
    bool
        Whether ``import matplotlib`` succeeds.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def subplots(nrows=1, ncols=1, figsize=(6.4, 4.2), **kwargs):
    """A new figure and its axes (as ``pyplot.subplots``, without pyplot);
    ImportError with :data:`INSTALL_HINT` when matplotlib is missing.

    Parameters
    ----------
    nrows, ncols : int, optional
        The grid of axes.
    figsize : tuple of float, optional
        The figure's size in inches.
    **kwargs : dict
        More keywords of ``Figure.subplots`` (``squeeze``, ``sharex``, ...).

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure.
    axes : matplotlib.axes.Axes or ndarray of them
        As ``Figure.subplots`` returns them.

    Raises
    ------
    ImportError
        Without matplotlib (the message says what to install).
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def save(fig, path, dpi=120):
    """Save a figure (tight layout) atomically, creating the folder
    (:func:`refimpl.files.atomic_write`: never over a device, fifo, socket or
    folder); the format is the suffix's (PNG without one). Returns the path,
    the file written.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    path : str or os.PathLike
        The file written.
    dpi : int, optional
        Resolution.

    Returns
    -------
    path
        ``path``.
    """
    fmt = _suffix(path)[1:].lower() or "png"
    fig.tight_layout()
    atomic_write(path, lambda fh: fig.savefig(fh, format=fmt, dpi=dpi))
    return path


def errorbar_lines(ax, x, series, marker="o", ls="-", first_color=0):
    """One error-bar line per ``series`` entry ``label -> (mean, se)``; returns ``ax``.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The axes drawn into.
    x : array_like
        The x of every line.
    series : dict of str to (array_like, array_like)
        Label to (mean, standard error).
    marker, ls : str, optional
        The marker and line style of every line.
    first_color : int, optional
        The colour cycle index (``C0``, ``C1``, ...) of the first line.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax``.
    """
    for i, (label, (mean, se)) in enumerate(series.items()):
        ax.errorbar(
            x,
            mean,
            yerr=se,
            marker=marker,
            ms=4,
            capsize=3,
            ls=ls,
            label=label,
            color=f"C{first_color + i}",
        )
    return ax


def line_figure(
    path, x, series, xlabel, ylabel, title, hline=None, xlog=False, ax_extra=None, twin=None
):
    """Error-bar lines (:func:`errorbar_lines`) saved as a PNG. Returns
    ``[path]``, or ``[]`` without matplotlib.

    ``twin``: optional ``(ylabel, {label: (mean, se)})`` drawn on a right axis;
    ``ax_extra``: optional ``f(ax)`` called before the legend.

    Parameters
    ----------
    path : str or os.PathLike
        The PNG written.
    x : array_like
        The x of every line.
    series : dict of str to (array_like, array_like)
        Label to (mean, standard error), on the left axis.
    xlabel, ylabel, title : str
        The labels.
    hline : float, optional
        The y of a dashed grey horizontal line.
    xlog : bool, optional
        A log-scaled x axis.
    ax_extra : callable, optional
        ``f(ax)``, called before the legend.
    twin : tuple of (str, dict), optional
        A right axis: its label and its series.

    Returns
    -------
    list of path
        ``[path]``, or ``[]`` without matplotlib.
    """
    if not available():
        return []
    fig, ax = subplots(figsize=(6.4, 4.2))
    errorbar_lines(ax, x, series)
    if hline is not None:
        ax.axhline(hline, color="0.5", lw=0.8, ls="--")
    if xlog:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    handles, labels = ax.get_legend_handles_labels()
    if twin is not None:
        ax2 = ax.twinx()
        errorbar_lines(ax2, x, twin[1], marker="s", ls=":", first_color=len(series))
        ax2.set_ylabel(twin[0])
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    if ax_extra is not None:
        ax_extra(ax)
    ax.legend(handles, labels, fontsize=8)
    ax.grid(alpha=0.3)
    return [save(fig, path, dpi=100)]


# ----------------------------------------------------------------------
# curves over x in panels, declared as data (the claims' figures)


@dataclass
class Curve:
    """One line of a :class:`Panel`: ``y`` over the panel's x (or ``x``).

    ``fmt`` is matplotlib's format string (colour, marker, line style:
    ``"C0o--"``; a marker alone draws points only), ``style`` further
    keywords of ``Axes.plot`` (``ms``, ``color``, ``mfc``) over the panel's;
    with ``se``, a band of ``y`` ± ``se`` in the line's colour.

    Attributes
    ----------
    y : array_like
        The values.
    label : str
        The legend's label ("" for none).
    fmt : str
        The format string.
    x : array_like or None
        The curve's own x; None: the panel's.
    se : array_like or None
        Standard errors of ``y``, drawn as a band; None: no band.
    style : dict
        More keywords of ``Axes.plot``.
    """

    y: object
    label: str = ""
    fmt: str = "-"
    x: object = None
    se: object = None
    style: dict = field(default_factory=dict)


@dataclass
class Panel:
    """One axes of :func:`panels_figure`: its curves over ``x``, its labels,
    horizontal lines (``hlines``: keywords of ``Axes.axhline`` each, with
    ``y``), ``Axes.set`` keywords (``axes``: ``xscale``, ``yscale``,
    ``ylim``...), ``Axes.plot`` keywords of every curve (``style``: ``ms``),
    the legend's keywords (None: no legend) and the title's font size.

    Attributes
    ----------
    curves : list of Curve
        The lines.
    title, xlabel, ylabel : str
        The labels ("" for none).
    x : array_like or None
        The x of every curve without its own.
    hlines : list of dict
        Keywords of ``Axes.axhline``, one dict a line.
    axes : dict
        Keywords of ``Axes.set``.
    style : dict
        Keywords of ``Axes.plot`` for every curve.
    legend : dict or None
        Keywords of ``Axes.legend``; None: no legend.
    title_size : float
        The title's font size.
    """

    curves: list
    title: str = ""
    xlabel: str = ""
    ylabel: str = ""
    x: object = None
    hlines: list = field(default_factory=list)
    axes: dict = field(default_factory=dict)
    style: dict = field(default_factory=dict)
    legend: dict = field(default_factory=lambda: {"fontsize": 7})
    title_size: float = 9


def draw_panel(ax, panel):
    """Draw a :class:`Panel` into ``ax`` (curves, bands, lines, labels, a
    light grid, the legend); returns ``ax``.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The axes drawn into.
    panel : Panel
        What to draw.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax``.
    """
    for c in panel.curves:
        x = panel.x if c.x is None else c.x
        (line,) = ax.plot(x, c.y, c.fmt, label=c.label, **{**panel.style, **c.style})
        if c.se is not None:
            y, se = np.asarray(c.y, float), np.asarray(c.se, float)
            ax.fill_between(x, y - se, y + se, color=line.get_color(), alpha=0.25)
    for h in panel.hlines:
        ax.axhline(**h)
    if panel.axes:
        ax.set(**panel.axes)
    if panel.title:
        ax.set_title(panel.title, fontsize=panel.title_size)
    if panel.xlabel:
        ax.set_xlabel(panel.xlabel)
    if panel.ylabel:
        ax.set_ylabel(panel.ylabel)
    ax.grid(alpha=0.3)
    if panel.legend is not None:
        ax.legend(**panel.legend)
    return ax


def panels_figure(path, panels, ncols=None, figsize=None, suptitle="", dpi=100, **kwargs):
    """:class:`Panel` s drawn row by row on a grid of ``ncols`` columns
    (default: all in one row), saved as a PNG (:func:`save`); ``figsize``
    defaults to 5 x 4 inches a panel, ``suptitle`` is the figure's title and
    further keywords go to :func:`subplots` (``sharey=True``). Returns the path.

    Parameters
    ----------
    path : str or os.PathLike
        The file written.
    panels : list of Panel
        The panels, row by row.
    ncols : int, optional
        Columns of the grid.
    figsize : tuple of float, optional
        The figure's size in inches.
    suptitle : str, optional
        The figure's title.
    dpi : int, optional
        Resolution.
    **kwargs : dict
        More keywords of :func:`subplots`.

    Returns
    -------
    path
        ``path``.
    """
    ncols = ncols or len(panels)
    nrows = math.ceil(len(panels) / ncols)
    figsize = figsize or (5.0 * ncols, 4.0 * nrows)
    fig, axes = subplots(nrows, ncols, figsize=figsize, squeeze=False, **kwargs)
    for ax, panel in zip(axes.flat, panels, strict=False):
        draw_panel(ax, panel)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return save(fig, path, dpi=dpi)


# ----------------------------------------------------------------------
# one run over the steps (the `plot` subcommand, `run --plot`)
_COEFFICIENTS = (
    ("gamma", "gamma: signal learning", "max"),
    ("rho_bar", "rho_bar: noise, y_i = j", "max"),
    ("rho_under", "rho_under: noise, y_i = -j", "min"),
)


def _group_curves(values, mask, extreme):
    """Mean and extreme over the entries ``mask`` (broadcast over snapshots)
    of ``values`` (K, ...); None when the mask is empty."""
    if not mask.any():
        return None
    v = values[:, mask]
    return v.mean(axis=1), (v.max(axis=1) if extreme == "max" else v.min(axis=1))


def draw_stage(axes, stage, name, inherited=None):
    """Draw one stage into four axes (top to bottom): the data loss (log
    scale) at every step, then gamma, rho_bar and rho_under at the snapshots,
    mean (solid) and extreme (dashed) over the filters; with ``inherited``
    ((2, m) bool), inherited and fresh filters in two colours.

    ``stage`` is a :class:`refimpl.train.Stage` with coefficients; gamma is
    summed over the signal directions (docs/model.md §4). Returns ``axes``.

    Parameters
    ----------
    axes : sequence of matplotlib.axes.Axes
        Four axes, top to bottom.
    stage : Stage
        A stage with coefficients.
    name : str
        The stage's name, in the top title.
    inherited : ndarray of shape (2, m), bool, optional
        The inherited filters; None: one group of all filters.

    Returns
    -------
    sequence of matplotlib.axes.Axes
        ``axes``.
    """
    steps = np.asarray(stage.steps)
    loss = np.asarray(stage.loss)
    axes[0].semilogy(np.arange(loss.size), np.maximum(loss, np.finfo(float).tiny), color="k")
    axes[0].set_title(f"stage {name}", fontsize=10)
    axes[0].set_ylabel("data loss (log)")
    m_shape = stage.trainable.shape  # (2, m)
    groups = (
        [
            ("inherited", np.asarray(inherited, bool), "C1"),
            ("fresh", ~np.asarray(inherited, bool), "C0"),
        ]
        if inherited is not None
        else [("all filters", np.ones(m_shape, bool), "C0")]
    )
    own = own_entries(stage.task.y)  # (2, 1, n): y_i = j
    for ax, (key, label, extreme) in zip(axes[1:], _COEFFICIENTS, strict=True):
        values = np.asarray(getattr(stage, key), float)
        if key == "gamma":
            values, entries = values.sum(axis=-1), None  # (K, 2, m)
        else:
            entries = own if key == "rho_bar" else ~own  # where the coefficient lives
        for gname, gmask, color in groups:
            mask = gmask if entries is None else gmask[:, :, None] & entries
            mask = np.broadcast_to(mask, values.shape[1:])
            curves = _group_curves(values, mask, extreme)
            if curves is None:
                continue
            ax.plot(steps, curves[0], color=color, label=f"{gname}: mean")
            ax.plot(steps, curves[1], color=color, ls="--", label=f"{gname}: {extreme}")
        ax.set_ylabel(label, fontsize=9)
        ax.legend(fontsize=7)
    axes[-1].set_xlabel("GD step")
    for ax in axes:
        ax.grid(alpha=0.3)
    return axes


def _suffix(path):
    """From the last dot of the file name on ("" when the only dot leads the
    name: ".png" has none, "....png" has ".png")."""
    name = os.path.basename(os.fspath(path))
    dot = name.rfind(".")
    return name[dot:] if dot > 0 else ""


def _formats():
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    return sorted(FigureCanvasBase.get_supported_filetypes())


def figure_path(out, option="out"):
    """The file a figure asked for as ``out`` is written to, checked before
    any work: ``out`` itself when its suffix is a format matplotlib writes
    (png, pdf, svg, ...), ``out + ".png"`` when it has no suffix.

    Raises
    ------
    refimpl.errors.UsageError
        Naming ``option``: ``out`` (or the path with ``.png``) exists and is
        not a regular file (a folder, a device, ...), its folder cannot be
        written, or its suffix is not a figure format.

    Parameters
    ----------
    out : str or os.PathLike
        The file asked for.
    option : str, optional
        How the user gave it (named in messages).

    Returns
    -------
    str
        The file to write.
    """
    out = os.fspath(out)
    kind = not_regular(out)
    if kind is not None or os.path.basename(out) in ("", ".", ".."):
        what = f"it is {kind}, not a regular file" if kind else "not a file name"
        raise UsageError(
            f"cannot write the figure {option} {out!r}: {what}; give a file name such as run.png"
        )
    suffix = _suffix(out)
    if not suffix:
        out += ".png"
    elif suffix[1:].lower() not in _formats():
        raise UsageError(
            f"cannot write the figure {option} {out}: {suffix!r} is not a figure format "
            f"(one of {', '.join('.' + f for f in _formats())})"
        )
    return check_output(out, option)


def plot_trajectory(path, out=None, stages=None):
    """Draw a trajectory file (format 1) with :func:`draw_stage`, one column
    per stage; write it to ``out`` (default: ``path`` with suffix ``.png``;
    :func:`figure_path`: ``.png`` is added to a name without a suffix).
    Returns the path written. ImportError with :data:`INSTALL_HINT` without
    matplotlib; :class:`refimpl.errors.TrajectoryError` for an unusable file
    or a stage it does not hold; :class:`refimpl.errors.UsageError` for an
    output that cannot be written (checked before the file is read).

    Parameters
    ----------
    path : str or os.PathLike
        The trajectory file (coefficients required).
    out : str or os.PathLike, optional
        The figure's file.
    stages : sequence of str, optional
        The stages drawn; default all the file holds.

    Returns
    -------
    str
        The file written.

    Raises
    ------
    ImportError
        Without matplotlib.
    TrajectoryError
        An unusable file, or a stage it does not hold.
    UsageError
        An output that cannot be written.
    """
    if out is None:
        out = os.path.splitext(os.fspath(path))[0] + ".png"
    out = figure_path(out)
    traj = load(path)
    stages = list(traj.stages) if not stages else list(stages)
    for s in stages:
        if s not in traj.stages:
            raise TrajectoryError(
                f"{path}: no stage {s!r} (the file holds {', '.join(traj.stages)})"
            )
    fig, axes = subplots(
        4, len(stages), figsize=(4.2 * len(stages), 9.5), squeeze=False, sharex="col"
    )
    for k, s in enumerate(stages):
        inherited = None
        if s == "down" and "down/inherited" in traj.arrays:
            inherited = inherited_filters(traj["down/inherited"])
        draw_stage(axes[:, k], traj.to_stage(s), s, inherited)
    fig.suptitle(
        f"{os.path.basename(os.fspath(path))}: data loss and the coefficients of "
        "docs/model.md §4 over the GD steps\n(over the filters: mean solid, extreme "
        "dashed; fine-tuning: inherited filters orange, fresh blue)",
        fontsize=10,
    )
    return save(fig, out, dpi=100)
