"""Sphinx configuration of refimpl's documentation site (``make docs``).

Offline: no intersphinx, no remote assets (furo ships its fonts and scripts).
Pages generated at build time (never typed by hand, never committed):

- ``generated/results/``: one page per claim from ``validation/report``
  (:mod:`_ext.results`);
- ``generated/cli.md``: the command line's help, from the argparse parser
  (:mod:`_ext.cli`);
- ``generated/api/``: autosummary pages of the public modules;
- ``auto_examples/``: the gallery (sphinx-gallery runs ``examples/plot_*.py``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from _ext import cli, results  # noqa: E402

import refimpl  # noqa: E402

project = "refimpl"
author = "the refimpl authors"
copyright = "2026, the refimpl authors"
release = refimpl.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "Thumbs.db", ".DS_Store", "**/README.md"]
templates_path = ["_templates"]

# Offline: MathJax would load from a CDN, so formulas stay text (the model
# document and the docstrings write them as text); a local stub stands in.
mathjax_path = "math-offline.js"
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
suppress_warnings = ["myst.xref_missing"] if os.environ.get("REFIMPL_DOCS_LAX") else []

# API reference: the public modules only (docs/reference/api.rst lists them).
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "undoc-members": True, "member-order": "bysource"}

# Cross-references are checked (nitpicky) across the public API; a docstring
# may still name a private module or one of its names (they are not on the
# site), or a name relative to its own package: those are not checked.
nitpicky = True
PRIVATE = r"refimpl\.(kernels|naive|gram|batch|files|budget|cli|memo\._|lab\.(seeds|measures"
PRIVATE += r"|cluster|present|progress|report|image_experiment)|crosscheck\.\w+)"
nitpick_ignore_regex = [
    (r"py:.*", PRIVATE + r"(\..*)?"),
    # names relative to the docstring's package (crosscheck's submodules and
    # their names, module constants, ...), resolved by a reader, not by Sphinx
    (r"py:.*", r"(?!refimpl\.)[A-Za-z_][\w.]*"),
]
autodoc_typehints = "none"
autodoc_mock_imports = ["torch", "jax", "jaxlib", "dask", "distributed", "sklearn"]
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks = set()

html_theme = "furo"
html_title = f"refimpl {release}"
html_static_path = ["_static"]
html_show_sourcelink = False
html_copy_source = False

sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": True,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "show_memory": False,
    "plot_gallery": "True",
    "abort_on_example_error": True,
    "min_reported_time": 1,
    "show_signature": False,
    # the computation-times page loads bootstrap and datatables from a CDN
    "write_computation_times": False,
}


def escape_bars(app, what, name, obj, options, lines):
    """The docstrings write norms as plain text (``|u|``, ``|mu|^4``), which
    reStructuredText would read as substitutions: escape a bar outside inline
    literals and table lines (docstrings are not edited for the site)."""
    for k, line in enumerate(lines):
        text = line.strip()
        table = text.startswith(("+-", "+=")) or (text.startswith("|") and text.endswith("|"))
        if table or "|" not in line:
            continue
        parts = line.split("``")
        parts[::2] = [part.replace("|", "\\|") for part in parts[::2]]
        lines[k] = "``".join(parts)


def resolve_alias(app, env, node, contnode):
    """``refimpl.Config`` and the other names of ``from refimpl import ...``
    point at the module that defines them (``refimpl.config.Config``)."""
    target = node.get("reftarget", "")
    module = refimpl._PUBLIC.get(target.removeprefix("refimpl."))
    if node.get("refdomain") != "py" or not target.startswith("refimpl.") or module is None:
        return None
    name = target.removeprefix("refimpl.")
    py = env.domains["py"]
    return py.resolve_xref(
        env,
        node["refdoc"],
        app.builder,
        node["reftype"],
        f"refimpl.{module}.{name}",
        node,
        contnode,
    )


def setup(app):
    """Write the generated pages before Sphinx reads the sources."""
    app.connect("autodoc-process-docstring", escape_bars, priority=400)
    app.connect("missing-reference", resolve_alias)
    results.write_pages(ROOT / "validation" / "report", HERE / "generated" / "results")
    cli.write_page(HERE / "generated" / "cli.md")
