"""Figures, behind the optional ``plot`` extra (matplotlib). Every function
saves a PNG and returns its path; without matplotlib, :func:`available` is
False and :data:`INSTALL_HINT` says how to get the figures."""
from __future__ import annotations

import os

__all__ = ["available", "INSTALL_HINT", "pyplot", "save"]

INSTALL_HINT = ("figures need matplotlib: pip install 'refimpl[plot]' "
                "(or .venv/bin/pip install matplotlib)")


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def pyplot():
    """matplotlib.pyplot with the non-interactive Agg backend; ImportError
    with :data:`INSTALL_HINT` when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save(fig, path, dpi=120):
    """Save and close a figure (tight layout); returns the path."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path
