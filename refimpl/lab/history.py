"""A claim's history: the protocol changes it disclosed, read from a markdown
file beside the claims (``refimpl/claims/history/<name>.md``).

A disclosure is a record, not code: it is appended when a protocol changes
after a full run was seen, and never edited after. Keeping the records in a
file of their own lets a reader follow a claim's history in one place, and
keeps the claim module to what runs. The file's form::

    # <name>: disclosed protocol changes      (a preamble, free text)

    ## <date: when the change was made>

    Change: <what changed, from what to what>

    Reason: <why>

    Earlier: <the result under the earlier protocol>

one ``##`` section per change, oldest first. A field is one paragraph; its
lines are joined with single spaces (so the text may be wrapped freely).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from ..errors import UsageError
from .claim import Disclosure

__all__ = ["read_history", "format_history"]

FIELDS = {"Change": "change", "Reason": "reason", "Earlier": "earlier"}


def _paragraphs(lines):
    """The blank-line separated paragraphs of ``lines``, each joined into
    one string with single spaces."""
    out, cur = [], []
    for line in [*lines, ""]:
        if line.strip():
            cur.append(line.strip())
        elif cur:
            out.append(" ".join(cur))
            cur = []
    return out


def _disclosure(path, date, lines):
    fields = {}
    for para in _paragraphs(lines):
        label, sep, text = para.partition(": ")
        if not sep or label not in FIELDS or FIELDS[label] in fields:
            known = ", ".join(f"'{k}:'" for k in FIELDS)
            raise UsageError(
                f"{path}: section '{date}': a paragraph must start with one of {known}, each "
                f"once; got {para[:40]!r}"
            )
        fields[FIELDS[label]] = text
    missing = [k for k, v in FIELDS.items() if v not in fields]
    if missing:
        raise UsageError(f"{path}: section '{date}' has no {', '.join(missing)} paragraph")
    return Disclosure(date=date, **fields)


def read_history(path):
    """The disclosures of the history file ``path``, oldest first.

    Parameters
    ----------
    path : str or pathlib.Path
        A markdown file of the form of this module's docstring.

    Returns
    -------
    tuple of Disclosure

    Raises
    ------
    UsageError
        The file is missing or a section lacks a field (the message names the
        file and the section).
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no history file {path}")
    sections, date = [], None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            date = line[3:].strip()
            sections.append((date, []))
        elif date is not None:
            sections[-1][1].append(line)
    return tuple(_disclosure(path, d, lines) for d, lines in sections)


def format_history(name, disclosures, width=100):
    """The text of a history file (the inverse of :func:`read_history`).

    Parameters
    ----------
    name : str
        The claim's name, for the title.
    disclosures : sequence of Disclosure
        Oldest first; each field non-empty, on one line, without the word ``##``
        (a wrapped line starting with it would read as a section).
    width : int
        The line width the fields are wrapped at.

    Returns
    -------
    str
    """
    wrap = textwrap.TextWrapper(width, break_long_words=False, break_on_hyphens=False)
    parts = [
        f"# {name}: disclosed protocol changes",
        "Each section is a change to the claim's protocol made after a full run had been seen, "
        "oldest first: what changed, why, and the result under the earlier protocol. The report "
        "prints each beside the verdict; the protocol hash does not cover them.",
    ]
    for d in disclosures:
        parts.append(f"## {d.date}")
        parts += [f"{label}: {getattr(d, key)}" for label, key in FIELDS.items()]
    return (
        "\n\n".join("\n".join(wrap.wrap(p)) if not p.startswith("#") else p for p in parts) + "\n"
    )
