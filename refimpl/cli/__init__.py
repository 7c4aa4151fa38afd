"""Command line: ``python -m refimpl SUBCOMMAND`` (argparse only).

Each subcommand module registers its parser and calls one library function.
Every error a user can cause (:class:`refimpl.errors.RefimplError`, a file
that cannot be read or written) is one line on stderr and exit status 2,
never a traceback; Ctrl-C is one line and exit status 130.
"""

from __future__ import annotations

import os
import sys
import warnings

from ..budget import MEMORY_ENV, WORK_ENV, parse_size, work_budget
from ..errors import RefimplError
from ..lab.cluster import SCHEDULER_ENV, SCHEDULER_TIMEOUT_ENV, set_cluster_environment
from . import crosscheck, phase, plot, realdata, run, validate
from .args import Parser, add_budget_arguments

__all__ = ["main", "build_parser", "SUBCOMMANDS"]

SUBCOMMANDS = (run, plot, validate, crosscheck, realdata, phase)
"""The modules whose ``register(subparsers)`` adds the subcommands, in help order."""


def build_parser():
    parser = Parser(
        prog="python -m refimpl",
        description="Reference implementation of partial parameter transfer "
        "between two-layer ReLU CNNs (see docs/model.md).",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for module in SUBCOMMANDS:
        module.register(sub)
    for command in sub.choices.values():
        add_budget_arguments(command)
    return parser


def _apply_environment(args):
    """--memory-budget / --work-budget / --scheduler set the environment
    variables of :mod:`refimpl.budget` and :mod:`refimpl.lab.sweep` for the
    duration of the command, so that worker processes see them too."""
    if hasattr(args, "scheduler"):  # checked with the environment's, before any work
        set_cluster_environment(args.scheduler, args.scheduler_timeout)
    if getattr(args, "memory_budget", None) is not None:
        parse_size(args.memory_budget)  # refuse a bad value at once
        os.environ[MEMORY_ENV] = args.memory_budget
    if getattr(args, "work_budget", None) is not None:
        os.environ[WORK_ENV] = args.work_budget
        work_budget()


def main(argv=None):
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    kept = (MEMORY_ENV, WORK_ENV, SCHEDULER_ENV, SCHEDULER_TIMEOUT_ENV)
    saved = {k: os.environ.get(k) for k in kept}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            status, error = _dispatch(args)
    finally:  # the options hold for this call only
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    warned = list(dict.fromkeys(str(w.message) for w in caught))
    if error is not None:  # one line; warnings folded into it
        note = f" (warned: {'; '.join(warned[:2])})" if warned else ""
        print(f"refimpl: error: {error}{note}", file=sys.stderr)
    else:  # a run that went through shows them once each
        seen = set()
        for w in caught:
            if (str(w.message), w.filename, w.lineno) not in seen:
                seen.add((str(w.message), w.filename, w.lineno))
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return status


def _dispatch(args):
    """Run the subcommand; returns (exit status, error line or None)."""
    try:
        _apply_environment(args)
        return int(args.func(args) or 0), None
    except RefimplError as exc:
        return 2, str(exc)
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141, None
    except OSError as exc:
        where = f" {exc.filename}:" if exc.filename else ""
        return 2, f"{where.strip()} {exc.strerror or exc}".strip()
    except MemoryError:
        return 2, (
            "out of memory (lower the sizes, or set --memory-budget to what this machine can give)"
        )
    except (OverflowError, RecursionError) as exc:
        return 2, f"{type(exc).__name__}: {exc}"
    except KeyboardInterrupt:
        print("refimpl: interrupted", file=sys.stderr)
        return 130, None
