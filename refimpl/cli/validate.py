"""``python -m refimpl validate [NAME ...]``: run claims and write the report;
:func:`claim_main` is the command line of the thin scripts in ``validation/``."""

from __future__ import annotations

import sys

from .. import claims
from ..errors import RefimplError
from ..lab.cluster import cluster_environment, connect_scheduler
from ..lab.report import exit_status
from .args import Parser, add_claim_arguments

__all__ = ["register", "claim_main"]


def _command_line(prefix, args):
    return (
        prefix
        + (" --quick" if args.quick else "")
        + f" --jobs {args.jobs} --out {args.out}"
        + (f" --replicate {args.replicate}" if args.replicate else "")
    )


def _validate(names, args, command):
    """Run the claims; a scheduler (``--scheduler`` or the environment) is
    checked and reached, with a worker, before the first claim starts: a
    bad address or an unusable cluster is one line and exit status 2, not
    an error inside every claim of the report."""
    with cluster_environment(args.scheduler, args.scheduler_timeout) as (address, timeout):
        if address is not None:
            connect_scheduler(address, timeout).close()
        state = claims.run_claims(
            names,
            out=args.out,
            quick=args.quick,
            jobs=args.jobs,
            command=command,
            replicate=args.replicate,
        )
    return exit_status(state, args.strict), state


def _validate_command(args):
    names = list(dict.fromkeys(args.names or []))
    command = _command_line("python -m refimpl validate" + "".join(f" {n}" for n in names), args)
    return _validate(names, args, command)[0]


def register(subparsers):
    p = subparsers.add_parser(
        "validate",
        help="run the claims and write REPORT.md",
        description="Run the validation claims (all when no NAME is given, in the order "
        + ", ".join(claims.names())
        + ") and write DIR/REPORT.md and "
        "DIR/validate.json with each claim's source, verdict, statistic and "
        "figures. Exit status 0 when every claim ran (PASS, FAIL or SKIPPED), "
        "1 when one broke, 2 for a usage mistake.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="claims to run (default: all)")
    add_claim_arguments(p, claims.DEFAULT_OUT)
    p.set_defaults(func=_validate_command)


def claim_main(name, argv=None):
    """Command line of one claim's script, ``python validation/<name>.py
    [--quick] [--jobs N] [--out DIR] [--strict]``; returns the exit status."""
    module = claims.load(name)
    p = Parser(prog=f"python validation/{name}.py", description=module.PROTOCOL.claim)
    add_claim_arguments(p, claims.DEFAULT_OUT)
    args = p.parse_args(argv)
    try:
        status, state = _validate([name], args, _command_line(f"python validation/{name}.py", args))
    except RefimplError as exc:
        print(f"refimpl: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            f"refimpl: error: cannot write into --out {args.out}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("refimpl: interrupted", file=sys.stderr)
        return 130
    entry = next(e for e in state["entries"] if e["name"] == name)
    print(f"{name}: {entry['verdict']} — {entry['statistic']}")
    return status
