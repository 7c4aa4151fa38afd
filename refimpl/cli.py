"""Command line: ``python -m refimpl SUBCOMMAND``.

Every subcommand is also a Python function (``run_main`` here, and the
``register``-ed functions of the other command modules). A user mistake gives
one line on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

from .config import (DEFAULT, Config, ConfigError, expand_shorthands, parse_assignment,
                     read_json_object)
from .train import DivergenceError

__all__ = ["main", "run_main", "build_config", "UsageError", "Parser"]

# Modules that add subcommands through ``register(subparsers)``; each
# registered parser sets ``func(args) -> int``.
COMMAND_MODULES = ("refimpl.cli", "refimpl.validate", "refimpl.crosscheck", "refimpl.realdata")


class UsageError(Exception):
    """A user mistake on the command line; exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line on stderr and exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_config(config_file=None, assignments=()):
    """The default config, overlaid by a JSON file and then by KEY=VALUE pairs
    (each layer's shorthands expanded first), validated once at the end."""
    values = DEFAULT.to_dict()
    if config_file is not None:
        values.update(expand_shorthands(read_json_object(config_file)))
    values.update(expand_shorthands(dict(parse_assignment(a) for a in assignments)))
    return Config.from_dict(values)


def run_main(config: Config, out="out", quiet=False, stream=None):
    """The main job: train up, transfer, fine-tune and the scratch baseline;
    print the summary; write ``out/trajectory.npz`` and ``out/summary.json``.

    Returns the summary dict.
    """
    from .progress import Progress
    from .summary import format_summary, summarize
    from .trajectory import atomic_write, save
    from .transfer import run_experiment

    stream = sys.stdout if stream is None else stream
    progress = Progress(enabled=not quiet)
    exp = run_experiment(config, progress=progress.stage)
    summary = summarize(exp)
    summary["config"] = config.to_dict()
    save(os.path.join(out, "trajectory.npz"), exp)
    text = json.dumps(summary, indent=2, sort_keys=True) + "\n"
    atomic_write(os.path.join(out, "summary.json"), lambda fh: fh.write(text.encode()))
    print(format_summary(summary), file=stream)
    print(f"\nwrote {os.path.join(out, 'trajectory.npz')} and {os.path.join(out, 'summary.json')}",
          file=stream)
    return summary


def _run_command(args):
    config = build_config(args.config, args.set or ())
    run_main(config, out=args.out, quiet=args.quiet)
    return 0


def register(subparsers):
    p = subparsers.add_parser(
        "run", help="the main job: upstream, transfer, fine-tuning and scratch baseline",
        description="Train the upstream model, transfer a fraction alpha of its filters, "
                    "fine-tune downstream and train the scratch baseline; print a summary "
                    "and write DIR/trajectory.npz and DIR/summary.json.")
    p.add_argument("--config", metavar="FILE.json", help="JSON object of config fields")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override one config field (repeatable), e.g. --set alpha=0.25")
    p.add_argument("--out", metavar="DIR", default="out", help="output folder (default: out)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=_run_command)


def build_parser():
    parser = Parser(prog="python -m refimpl",
                    description="Reference implementation of partial parameter transfer "
                                "between two-layer ReLU CNNs (see MODEL.md).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:     # a command module not present in this version
                continue
            raise
        module.register(sub)
    return parser


def main(argv=None):
    """Entry point; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ConfigError, UsageError, DivergenceError) as exc:
        print(f"refimpl: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:           # output piped into e.g. `head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:
        where = f" {exc.filename}:" if exc.filename else ""
        print(f"refimpl: error:{where} {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("refimpl: interrupted", file=sys.stderr)
        return 130
