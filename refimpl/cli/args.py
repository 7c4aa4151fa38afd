"""Argument helpers shared by the subcommands: a parser whose errors are one
line and exit status 2, option types, and config assembly from the command line."""

from __future__ import annotations

import argparse

from ..budget import parse_size, parse_work
from ..config import DEFAULT, Config, expand_shorthands, parse_assignment, read_json_object
from ..errors import RefimplError
from ..lab.cluster import SCHEDULER_TIMEOUT

__all__ = [
    "Parser",
    "positive_int",
    "build_config",
    "add_config_arguments",
    "add_claim_arguments",
    "add_budget_arguments",
    "add_scheduler_argument",
]


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line on stderr and exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def positive_int(text):
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_config(config_file=None, assignments=(), base=DEFAULT, cls=Config):
    """``base`` overlaid by a JSON file and then by KEY=VALUE pairs (each
    layer's shorthands expanded first), validated once at the end."""
    values = base.to_dict()
    shorthands = cls.SHORTHANDS
    if config_file is not None:
        values.update(expand_shorthands(read_json_object(config_file), shorthands))
    values.update(expand_shorthands(dict(parse_assignment(a) for a in assignments), shorthands))
    return cls.from_dict(values)


def add_config_arguments(p):
    """``--config FILE.json`` and repeatable ``--set KEY=VALUE``."""
    p.add_argument("--config", metavar="FILE.json", help="JSON object of config fields")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override one config field (repeatable), e.g. --set alpha=0.25",
    )


def _budget_type(parse):
    """argparse type: the text as given, once ``parse`` reads it (so that
    ``--work-budget ''`` is refused as ``--memory-budget ''`` is, naming the option)."""

    def read(text):
        try:
            parse(text)
        except RefimplError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text.strip()

    read.__name__ = parse.__name__
    return read


def add_budget_arguments(p):
    """``--memory-budget SIZE`` and ``--work-budget N`` (docs: refimpl.budget):
    a budget holds for the whole job of the subcommand."""
    p.add_argument(
        "--memory-budget",
        metavar="SIZE",
        type=_budget_type(parse_size),
        help="memory the job may use, e.g. 16G (default: half the physical memory; "
        "env REFIMPL_MEMORY_BUDGET)",
    )
    p.add_argument(
        "--work-budget",
        metavar="N",
        type=_budget_type(parse_work),
        help="multiply-adds the job may do, e.g. 1e14 (default 1e13; env REFIMPL_WORK_BUDGET)",
    )


def add_claim_arguments(p, default_out):
    """The options of every claim run: ``--quick``, ``--jobs``, ``--out``, ``--strict``."""
    p.add_argument("--quick", action="store_true", help="small CI-size version (seconds per claim)")
    p.add_argument(
        "--jobs",
        type=positive_int,
        default=1,
        metavar="N",
        help="parallel workers for the sweeps (default 1)",
    )
    p.add_argument(
        "--out", metavar="DIR", default=default_out, help=f"output folder (default: {default_out})"
    )
    p.add_argument(
        "--strict", action="store_true", help="exit status 1 when a claim does not reproduce (FAIL)"
    )
    p.add_argument(
        "--replicate",
        metavar="SALT",
        help="run the same protocols on an independent seed stream derived from "
        "SALT; outputs in DIR/replicate-SALT/, a replication column in "
        "DIR/REPORT.md",
    )
    add_scheduler_argument(p)


def add_scheduler_argument(p):
    """``--scheduler ADDRESS`` (run the sweeps on a dask.distributed cluster)
    and ``--scheduler-timeout SECONDS``; both are checked, with their
    environment variables, by :func:`refimpl.lab.cluster.set_cluster_environment`."""
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run the sweeps on an existing dask.distributed cluster, e.g. "
        "tcp://10.0.0.1:8786 (the cluster extra; env REFIMPL_SCHEDULER)",
    )
    p.add_argument(
        "--scheduler-timeout",
        metavar="SECONDS",
        help="seconds within which the scheduler must answer (connection and dask's "
        "handshake) and a worker must join when the cluster has none "
        f"(default {SCHEDULER_TIMEOUT:g}; env REFIMPL_SCHEDULER_TIMEOUT)",
    )
