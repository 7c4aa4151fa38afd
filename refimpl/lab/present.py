"""What the claims' ``present`` functions share: the few shapes their reports
repeat, built from data.

- :func:`regime`: a regime sentence ("d = 600, m = 10, N_1 = 200") from a
  config and the fields to name, each under its symbol of docs/model.md
  (:data:`SYMBOLS`);
- :func:`holds`, :func:`test_line`: whether a test of the verdict holds, in
  words, and its line in the report ("- (a) label: result — holds");
- :func:`discordant`: a paired failure test's result in words.

A claim says what to show; these functions say how it looks, the same in
every claim. They format numbers, never compute them.
"""

from __future__ import annotations

from collections.abc import Mapping

from .report import fmt_p

__all__ = [
    "SYMBOLS",
    "SHARED_V",
    "SIGMA_P",
    "fmt_value",
    "regime",
    "holds",
    "test_line",
    "discordant",
]

SYMBOLS = {
    "d": "d",
    "m": "m",
    "n_up": "N_1",
    "n_down": "N_2",
    "u_norm": "|u|",
    "v_up_norm": "|v_1|",
    "v_down_norm": "|v_2|",
    "v_cos": "cos(v_1, v_2)",
    "sigma_p_up": "sigma_p,1",
    "sigma_p_down": "sigma_p,2",
    "flip_up": "p_1",
    "flip_down": "p_2",
    "alpha": "alpha",
    "eta": "eta",
    "sigma_0": "sigma_0",
    "epsilon": "epsilon",
    "n_test": "n_test",
    "seed": "seed",
}
"""The report's symbol of a config field (docs/model.md); a field not listed
is shown under its own name."""

SHARED_V = ("|v_1| = |v_2|", "v_up_norm")
"""The field spec of :func:`regime` for |v_1| = |v_2| (read from |v_1|)."""
SIGMA_P = ("sigma_p", "sigma_p_up")
"""The field spec of :func:`regime` for one sigma_p of both tasks (read from sigma_p,1)."""


def fmt_value(v):
    """A config value in a sentence: an integer as it is (``600``), a float in
    the shortest form (``:g``: ``2``, ``0.1``), anything else by ``str``."""
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def regime(config, fields):
    """``d = 600, m = 10, N_1 = 200``: the named fields of ``config`` (a config
    object or a mapping of its fields), in order, by :func:`fmt_value`.

    Parameters
    ----------
    config : object or mapping
        Where the values are read: ``config.<field>``, or ``config[field]``.
    fields : iterable
        Each a field name, shown under its :data:`SYMBOLS` name, or a pair
        ``(label, field)`` to show it under another label: ``("|v_1| =
        |v_2|", "v_up_norm")`` for a value two symbols share.
    """
    parts = []
    for f in fields:
        label, name = (SYMBOLS.get(f, f), f) if isinstance(f, str) else f
        value = config[name] if isinstance(config, Mapping) else getattr(config, name)
        parts.append(f"{label} = {fmt_value(value)}")
    return ", ".join(parts)


def holds(ok, yes="holds", no="does NOT hold"):
    """``yes`` when ``ok``, else ``no``: a test's outcome in words, its
    negation in capitals so that a failed test stands out in the report."""
    return yes if ok else no


def test_line(label, result, ok, yes="holds", no="does NOT hold"):
    """``- label: result — holds``: one test of a verdict as a line of the
    report's list, its outcome by :func:`holds`."""
    return f"- {label}: {result} — {holds(ok, yes, no)}"


def discordant(t, test="exact"):
    """``a vs b discordant, rates ra vs rb, <test> p``: the result ``t`` of
    :func:`refimpl.lab.stats.paired_failures` in words."""
    return (
        f"{t['a_only']} vs {t['b_only']} discordant, rates {t['rate_a']:.3f} vs "
        f"{t['rate_b']:.3f}, {test} {fmt_p(t['p'])}"
    )
