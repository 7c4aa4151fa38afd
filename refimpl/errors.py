"""The errors a user can cause. Every one derives from :class:`RefimplError`;
the command line (:mod:`refimpl.cli`) catches that base class and prints one
line with exit status 2, never a traceback."""

from __future__ import annotations

__all__ = [
    "RefimplError",
    "ConfigError",
    "UsageError",
    "DivergenceError",
    "TrajectoryError",
    "ImageDataError",
    "PatchRoleError",
    "ResourceError",
    "UntrackedStageError",
    "DependentBasisError",
]


class RefimplError(Exception):
    """Base class of every error a user can cause (bad input, bad file, a run
    that cannot proceed); its message is one line that names what to fix."""


class ConfigError(RefimplError, ValueError):
    """A configuration value is not allowed; the message names the field."""


class UsageError(RefimplError):
    """A mistake on the command line (an unknown name, a bad option value, an
    output folder that cannot be written)."""


class DivergenceError(RefimplError, ArithmeticError):
    """GD produced a non-finite loss or weight (step size or init too large)."""


class TrajectoryError(RefimplError, ValueError):
    """A trajectory file is unusable; the message names the file and the key."""


class ImageDataError(RefimplError, ValueError):
    """An image data set cannot be used (missing extra, unreadable file, bad arrays)."""


class PatchRoleError(RefimplError, ValueError):
    """The role of a patch (which signal, or noise) cannot be determined for
    some inputs; the message names them."""


class ResourceError(RefimplError):
    """A run or a replay would need more memory or work than the budget allows
    (:mod:`refimpl.budget`); the message names the fields and the estimate."""


class UntrackedStageError(RefimplError, ValueError):
    """A decomposition was asked of a stage trained with ``track=False``."""


class DependentBasisError(RefimplError, ValueError):
    """The basis {signals, xi_1..xi_n} is not linearly independent (to
    rounding): the coefficients cannot be recovered from the weights."""
