"""The CLI reference page, generated at build time from the argparse parser of
:mod:`refimpl.cli` (so it is the help the command prints, never a copy)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def _subparsers(parser):
    for action in parser._actions:  # argparse has no public accessor for these
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


def _help(parser):
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        return parser.format_help()
    finally:
        if old is None:
            os.environ.pop("COLUMNS")
        else:
            os.environ["COLUMNS"] = old


def write_page(path):
    """Write the page: ``python -m refimpl --help`` and every subcommand's help."""
    from refimpl.cli import build_parser

    parser = build_parser()
    text = [
        "# Command line",
        "",
        "`python -m refimpl SUBCOMMAND [options]`. This page is generated from the",
        "argparse parser (`refimpl.cli.build_parser`) when the site is built: it is",
        "exactly what `--help` prints. Every error a user can cause is one line on",
        "stderr and exit status 2; Ctrl-C is one line and exit status 130",
        "(see [Errors, limits and budgets](../reference/limits.md)).",
        "",
        "```text",
        _help(parser).rstrip(),
        "```",
        "",
    ]
    for name, sub in _subparsers(parser).items():
        text += [f"## `{name}`", "", "```text", _help(sub).rstrip(), "```", ""]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(text), encoding="utf-8")
