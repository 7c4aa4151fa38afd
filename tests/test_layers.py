"""The layer rule of the package, checked on every import statement (top
level and inside functions): the model <- lab and crosscheck <- claims <- cli.

- the model (flat modules at the top of ``refimpl/``) imports only the model;
- ``refimpl.lab`` and ``refimpl.crosscheck`` import the model and
  themselves, never each other;
- ``refimpl.claims`` imports those; ``refimpl.cli`` imports everything;
- ``refimpl.testing`` (the testing API, a package: its ``__init__`` and every
  ``refimpl.testing.*`` module) is on top, like the package itself: it
  imports anything, nothing else in the package imports it;
- nothing in the package imports ``refimpl.naive``, the numpy twin that the
  tests use as an oracle.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "refimpl"
RANK = {"model": 0, "lab": 1, "crosscheck": 1, "claims": 2, "cli": 3, "top": 4}


def room(module):
    """The room of a dotted module name inside refimpl."""
    parts = module.split(".")
    if len(parts) == 1:
        return "top"  # refimpl/__init__.py re-exports the public API
    if parts[1] in ("lab", "crosscheck", "claims", "cli"):
        return parts[1]
    if parts[1] == "testing":
        return "top"  # refimpl.testing and refimpl.testing.*: the testing API, for users' suites
    if parts[1] == "__main__":
        return "top"
    return "model"


def module_name(path):
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports(path):
    """Every refimpl module that ``path`` imports (absolute names)."""
    return imports_of(path.read_text(), module_name(path), path.name == "__init__.py")


def imports_of(source, name, is_package=False):
    """Every refimpl module that the source of module ``name`` imports."""
    package = name if is_package else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "refimpl"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "refimpl":
                continue
            if node.module:
                found.add(target)
            for a in node.names:  # `from . import files` imports a module
                candidate = f"{target}.{a.name}"
                if (PACKAGE.parent / Path(*candidate.split("."))).with_suffix(".py").exists() or (
                    PACKAGE.parent / Path(*candidate.split(".")) / "__init__.py"
                ).exists():
                    found.add(candidate)
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: module_name(p))
def test_layer_rule(path):
    me = module_name(path)
    mine = room(me)
    for target in imports(path):
        theirs = room(target)
        assert target != "refimpl.naive" or me == "refimpl.naive", (
            f"{me} imports the numpy twin refimpl.naive (a test oracle)"
        )
        if mine == "top":
            continue
        assert RANK[theirs] <= RANK[mine] and theirs != "top", (
            f"{me} ({mine}) imports {target} ({theirs}): against the layer rule"
        )
        assert {mine, theirs} != {"lab", "crosscheck"}, (
            f"{me} ({mine}) imports {target} ({theirs}): lab and crosscheck are peers"
        )


def violations(source, name):
    mine = room(name)
    return [
        t
        for t in imports_of(source, name)
        if t == "refimpl.naive"
        or RANK[room(t)] > RANK[mine]
        or {mine, room(t)} == {"lab", "crosscheck"}
    ]


def test_the_checker_sees_violations():
    """The checker itself, on made-up sources: lazy, relative and absolute imports."""
    assert violations("def f():\n    from ..cli import main\n", "refimpl.lab.x") == ["refimpl.cli"]
    assert violations("from . import naive\n", "refimpl.evaluation") == ["refimpl.naive"]
    assert violations("import refimpl.claims.gain_alpha\n", "refimpl.train") == [
        "refimpl.claims.gain_alpha"
    ]
    assert sorted(violations("from ..lab import stats\n", "refimpl.crosscheck.explain")) == [
        "refimpl.lab",
        "refimpl.lab.stats",
    ]
    assert (
        violations(
            "from ..lab.sweep import run_sweep\nfrom ..data import Task\n", "refimpl.claims.x"
        )
        == []
    )


def test_the_checker_keeps_the_testing_package_on_top():
    """refimpl.testing is a package: the checker sees each of its modules, all
    on top (they import anything), and flags the rest of refimpl importing any
    of them, however the import is written."""
    testing = {module_name(p) for p in SOURCES if (PACKAGE / "testing") in p.parents}
    assert {"refimpl.testing", "refimpl.testing.assertions", "refimpl.testing.strategies"} <= (
        testing
    )
    assert {room(name) for name in testing} == {"top"}
    assert room("refimpl.lab.testing") == "lab" and room("refimpl.testing_x") == "model"
    source = "from ..cli import main\nfrom ..lab.sweep import run_sweep\nfrom . import strategies\n"
    assert violations(source, "refimpl.testing.assertions") == []
    assert violations("from . import testing\n", "refimpl.train") == ["refimpl.testing"]
    assert violations("from ..testing.strategies import problems\n", "refimpl.lab.x") == [
        "refimpl.testing.strategies"
    ]
    assert violations("import refimpl.testing.assertions\n", "refimpl.cli.x") == [
        "refimpl.testing.assertions"
    ]
