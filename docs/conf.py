"""Sphinx configuration for the cygrad documentation.

Build (from the repository root, with the package installed: ``pip install ".[docs]"``)::

    sphinx-build -W --keep-going -b html docs docs/_build/html

The API pages are generated from the *installed* package's docstrings (autodoc,
autosummary, numpydoc). Pages written as MyST notebooks (``file_format: mystnb``)
are executed on every build, so their outputs are always those of the current code.
No extension here needs the network.
"""

import cygrad

project = "cygrad"
author = "the cygrad developers"
copyright = "the cygrad developers"
release = str(cygrad.__version__)
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "myst_nb",
]

exclude_patterns = ["_build", "_static", "**.ipynb_checkpoints", "Thumbs.db", ".DS_Store"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
templates_path = []

# -- API reference -----------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"  # numpydoc's Parameters sections carry the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# -- MyST and notebook execution -----------------------------------------------------
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3
nb_execution_mode = "force"
nb_execution_timeout = 300
nb_execution_raise_on_error = True  # a cell that raises fails the build, unless tagged raises-exception
nb_execution_show_tb = True
nb_merge_streams = True

# -- HTML ----------------------------------------------------------------------------
html_theme = "alabaster"
html_title = f"cygrad {release}"
html_static_path = ["_static"]
html_theme_options = {
    "description": "PyTorch's API on the CPU: NumPy data, Cython kernels",
    "page_width": "1100px",
    "sidebar_width": "230px",
}
