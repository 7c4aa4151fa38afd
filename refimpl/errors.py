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
    that cannot proceed); its message is one line that names what to fix.

    Parameters
    ----------
    message : str
        One line that names what to fix.
    """


class ConfigError(RefimplError, ValueError):
    """A configuration value is not allowed; the message names the field.

    Parameters
    ----------
    message : str
        Names the field (or the argument) and what it must be.
    """


class UsageError(RefimplError):
    """A mistake on the command line (an unknown name, a bad option value, an
    output folder that cannot be written).

    Parameters
    ----------
    message : str
        Names the option or the name and what is allowed.
    """


class DivergenceError(RefimplError, ArithmeticError):
    """GD produced a non-finite loss or weight (step size or init too large).

    Parameters
    ----------
    message : str
        Names the step by which the loss, weights or coefficients were no
        longer finite, and what to lower.
    """


class TrajectoryError(RefimplError, ValueError):
    """A trajectory file is unusable; the message names the file and the key.

    Parameters
    ----------
    message : str
        Names the file and the key.
    """


class ImageDataError(RefimplError, ValueError):
    """An image data set cannot be used (missing extra, unreadable file, bad arrays).

    Parameters
    ----------
    message : str
        Names the data set or the file and what is wrong with it.
    """


class PatchRoleError(RefimplError, ValueError):
    """The role of a patch (which signal, or noise) cannot be determined for
    some inputs; the message names them.

    Parameters
    ----------
    message : str
        Names the inputs whose patch roles cannot be determined.
    """


class ResourceError(RefimplError):
    """A run or a replay would need more memory or work than the budget allows
    (:mod:`refimpl.budget`); the message names the fields and the estimate.

    Parameters
    ----------
    message : str
        Names the fields and the estimate against the budget.
    """


class UntrackedStageError(RefimplError, ValueError):
    """A decomposition was asked of a stage trained with ``track=False``.

    Parameters
    ----------
    message : str
        Says to train the stage with ``track=True``.
    """


class DependentBasisError(RefimplError, ValueError):
    """The basis {signals, xi_1..xi_n} is not linearly independent (to
    rounding): the coefficients cannot be recovered from the weights.

    Parameters
    ----------
    message : str
        Says why: more vectors than dimensions, a zero noise vector, or the Gram condition number.
    """
