"""Every public function and class of the API page (docs/reference/api.rst) has
a numpydoc docstring with its sections.

The public names are each listed module's ``__all__`` (a re-exported name is
checked where it is defined, once). The rules, read from the docstring as
numpydoc reads it (``inspect.getdoc``, sections underlined with dashes):

- a one-line summary;
- a function: ``Parameters`` naming every parameter of its signature, each
  with a type and a description; ``Returns`` (``Yields`` for a generator)
  unless it returns nothing (annotated ``-> None``, or no ``return`` with a
  value in its own body); ``Raises`` when its own body raises an exception;
- a class: ``Parameters`` or ``Attributes``, together naming every parameter
  of its own ``__init__`` (a dataclass's fields), each with a type and a
  description (an exception class without its own ``__init__`` names its
  message).

A missing name fails the test with the name and what its docstring lacks.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import textwrap

import pytest

MODULES = [
    "refimpl.config",
    "refimpl.errors",
    "refimpl.data",
    "refimpl.network",
    "refimpl.train",
    "refimpl.decomposition",
    "refimpl.transfer",
    "refimpl.evaluation",
    "refimpl.theory",
    "refimpl.summary",
    "refimpl.trajectory",
    "refimpl.memo",
    "refimpl.crosscheck",
    "refimpl.testing",
    "refimpl.lab.job",
    "refimpl.lab.sweep",
    "refimpl.lab.phase",
    "refimpl.lab.phase_transfer",
    "refimpl.lab.figures",
    "refimpl.lab.images",
    "refimpl.lab.claim",
    "refimpl.lab.stats",
    "refimpl.lab.history",
    "refimpl.lab.suite",
    "refimpl.claims",
]

# Names whose docstrings are known to lack a section (none now). A name listed
# here that has become complete fails the test too (take it off the list).
ALLOWED_GAPS: set[str] = set()

SECTIONS = ("Parameters", "Attributes", "Returns", "Yields", "Raises")


def sections(doc: str) -> tuple[str, dict[str, list[tuple[str, list[str]]]]]:
    """The summary line and the entries (header line, description lines) of
    each section of a cleaned numpydoc docstring."""
    lines = doc.splitlines()
    summary = next((line.strip() for line in lines if line.strip()), "")
    found: dict[str, list[tuple[str, list[str]]]] = {}
    current = None
    k = 0
    while k < len(lines):
        line = lines[k]
        underline = k + 1 < len(lines) and re.fullmatch(r"-{3,}", lines[k + 1].strip())
        if underline and line.strip() and not line.startswith(" "):
            current = found.setdefault(line.strip(), [])
            k += 2
            continue
        if current is not None:
            if line.strip() and not line.startswith(" "):
                current.append((line.strip(), []))
            elif line.strip() and current:
                current[-1][1].append(line.strip())
        k += 1
    if summary in SECTIONS:
        summary = ""
    return summary, found


def entry_names(entries) -> dict[str, tuple[str, list[str]]]:
    """Parameter name (without ``*``) to its entry; ``a, b : float`` names both."""
    names = {}
    for header, desc in entries:
        for name in header.split(" : ")[0].split(","):
            names[name.strip().lstrip("*")] = (header, desc)
    return names


def entry_problems(entries) -> list[str]:
    problems = []
    for header, desc in entries:
        name, _, kind = header.partition(" : ")
        if not kind.strip():
            problems.append(f"{name.strip()!r} has no type")
        if not desc:
            problems.append(f"{name.strip()!r} has no description")
    return problems


def function_node(obj):
    """The function's own definition, parsed from its source (None without one)."""
    try:
        source = textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError):
        return None
    node = ast.parse(source).body[0]
    return node if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else None


def own_nodes(node):
    """The nodes of a function's body, nested definitions left out."""
    nested = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
    stack = list(node.body)
    while stack:
        child = stack.pop()
        yield child
        stack.extend(c for c in ast.iter_child_nodes(child) if not isinstance(c, nested))


def returns_value(obj) -> bool:
    annotation = inspect.signature(obj).return_annotation
    if annotation is None or annotation == "None":
        return False
    node = function_node(obj)
    if node is None:  # a wrapper (a hypothesis strategy): it returns something
        return True
    for child in own_nodes(node):
        if isinstance(child, ast.Return) and child.value is not None:
            if not (isinstance(child.value, ast.Constant) and child.value.value is None):
                return True
    return False


def raises(obj) -> bool:
    node = function_node(obj)
    if node is None:
        return False
    return any(isinstance(c, ast.Raise) and c.exc is not None for c in own_nodes(node))


def parameters(obj, skip_first=False) -> list[str]:
    names = list(inspect.signature(obj).parameters)
    return names[1:] if skip_first else names


def problems_of(obj) -> list[str]:
    """What the docstring of a public function or class lacks (empty: nothing)."""
    doc = inspect.getdoc(obj) if obj.__doc__ else None
    if not doc:
        return ["no docstring"]
    summary, found = sections(doc)
    problems = [] if summary else ["no summary"]
    if inspect.isclass(obj):
        entries = found.get("Parameters", []) + found.get("Attributes", [])
        if not entries:
            problems.append("no Parameters or Attributes")
        own_init = "__init__" in vars(obj) or (
            not issubclass(obj, BaseException) and obj.__init__ is not object.__init__
        )
        names = parameters(obj.__init__, skip_first=True) if own_init else []
    else:
        entries = found.get("Parameters", [])
        names = parameters(obj)
        if names and not entries:
            problems.append("no Parameters")
        if inspect.isgeneratorfunction(obj):
            if not found.get("Yields"):
                problems.append("no Yields")
        elif returns_value(obj) and not found.get("Returns"):
            problems.append("no Returns")
        if raises(obj) and not found.get("Raises"):
            problems.append("no Raises")
    documented = entry_names(entries)
    problems += [f"parameter {name!r} undocumented" for name in names if name not in documented]
    return problems + entry_problems(entries)


def public():
    """Each public function and class once, named where it is defined."""
    seen = {}
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj) or inspect.isclass(obj):
                seen.setdefault(id(obj), (f"{obj.__module__}.{name}", obj))
    return sorted(seen.values(), key=lambda item: item[0])


def test_public_docstrings_have_their_sections():
    pytest.importorskip("hypothesis")  # refimpl.testing needs it
    gaps = {name: problems_of(obj) for name, obj in public()}
    gaps = {name: problems for name, problems in gaps.items() if problems}
    missing = {name: gaps[name] for name in gaps if name not in ALLOWED_GAPS}
    assert not missing, "docstrings lacking numpydoc sections:\n" + "\n".join(
        f"  {name}: {'; '.join(problems)}" for name, problems in sorted(missing.items())
    )
    fixed = sorted(ALLOWED_GAPS - set(gaps))
    assert not fixed, f"complete now, take them off ALLOWED_GAPS: {fixed}"


def test_the_check_finds_a_missing_section():
    """The rules catch a removed section, an undocumented parameter, a missing
    type or description, and a missing Returns or Raises."""

    def good(a, b=1):
        """Add.

        Parameters
        ----------
        a : int
            First.
        b : int, optional
            Second.

        Returns
        -------
        int
            The sum.

        Raises
        ------
        ValueError
            When a is negative.
        """
        if a < 0:
            raise ValueError(a)
        return a + b

    assert problems_of(good) == []
    full = good.__doc__
    good.__doc__ = full.replace("        b : int, optional\n            Second.\n", "")
    assert problems_of(good) == ["parameter 'b' undocumented"]
    good.__doc__ = full.replace("b : int, optional", "b")
    assert problems_of(good) == ["'b' has no type"]
    good.__doc__ = full.replace("            Second.\n", "")
    assert problems_of(good) == ["'b' has no description"]
    good.__doc__ = full.split("        Returns")[0]
    assert problems_of(good) == ["no Returns", "no Raises"]
    good.__doc__ = full.split("        Parameters")[0]
    assert "no Parameters" in problems_of(good)
    good.__doc__ = None
    assert problems_of(good) == ["no docstring"]

    class Plain:
        """A thing."""

        def __init__(self, x):
            self.x = x

    assert problems_of(Plain) == ["no Parameters or Attributes", "parameter 'x' undocumented"]
