"""Sphinx configuration of the skae documentation.

Build (from the repository root, in an environment with ``pip install -e ".[docs]"``)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The build works offline and is warning-free there. Three environment variables
turn on what needs more than that:

``SKAE_DOCS_INTERSPHINX=1``
    Link to the scikit-learn, NumPy, Matplotlib and Python documentation through
    intersphinx. Off by default: the inventories are downloaded at build time,
    and a machine without internet access would turn each failed download into
    a warning (an error under ``-W``). Keras publishes no Sphinx inventory, so
    Keras names are never linked.
``SKAE_DOCS_RUN_GALLERY=1``
    Execute the gallery examples (``examples/plot_*.py``) and embed their
    figures and output. Off by default: the examples train networks (minutes
    each, and MNIST must be found, see ``skae.datasets.fetch_mnist``). They are
    run as tests in ``tests/test_examples.py`` either way.
``SKAE_DOCS_GALLERY_QUICK=1``
    With ``SKAE_DOCS_RUN_GALLERY=1``, run each example with ``--quick`` (a few
    epochs): a fast check that the executed gallery builds.

The code in the user guide is tested by the doctest builder::

    python -m sphinx -b doctest docs docs/_build/doctest
"""

import json
import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))

# As in the test suite: TensorFlow quiet, one BLAS thread, no windows.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("MPLBACKEND", "Agg")

import skae  # noqa: E402

# -- Project ------------------------------------------------------------------

project = "skae"
author = "The skae developers"
copyright = "The skae developers, BSD-3-Clause"
release = skae.__version__
version = ".".join(release.split(".")[:2])

# -- General ------------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
    "skae_docs_ext",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = [
    "_build",
    "_ext",
    "_tools",
    "_templates",
    # Included into the benchmark page rather than built as a page of its own.
    "benchmark-report/**",
    # Included into the peers page (written from the benchmark's results.json).
    "peers_figures.rst",
    # sphinx-gallery's execution-time table (generated, not linked).
    "sg_execution_times.rst",
]
default_role = "py:obj"
pygments_style = "sphinx"
# Curly quotes and ellipses, but "--" stays "--": option names such as --quick
# appear in plain text (the included benchmark report).
smartquotes_action = "qe"

# Unresolved Python cross-references (Keras' names, for one) are not errors;
# labels and documents (:ref:, :doc:) still must resolve.
nitpicky = False

# -- autodoc, autosummary, numpydoc --------------------------------------------

autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"member-order": "groupwise"}
autodoc_typehints = "none"
autoclass_content = "class"

numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True

# -- doctest --------------------------------------------------------------------

doctest_global_setup = """
import os, warnings
os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np
from sklearn.exceptions import ConvergenceWarning
# The snippets train for a few epochs only, to stay fast.
warnings.filterwarnings("ignore", category=ConvergenceWarning)
"""
doctest_default_flags = (
    __import__("doctest").ELLIPSIS | __import__("doctest").NORMALIZE_WHITESPACE
)

# -- intersphinx ------------------------------------------------------------------

SKAE_DOCS_INTERSPHINX = os.environ.get("SKAE_DOCS_INTERSPHINX", "") == "1"
intersphinx_mapping = (
    {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable/", None),
        "sklearn": ("https://scikit-learn.org/stable/", None),
        "matplotlib": ("https://matplotlib.org/stable/", None),
    }
    if SKAE_DOCS_INTERSPHINX
    else {}
)
intersphinx_timeout = 10

# -- sphinx-gallery ---------------------------------------------------------------

RUN_GALLERY = os.environ.get("SKAE_DOCS_RUN_GALLERY", "") == "1"
plot_gallery = RUN_GALLERY
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "plot_gallery": RUN_GALLERY,
    # Examples parse their own options: send their figures to the build folder
    # (and --quick, if asked), not into examples/.
    "reset_argv": "skae_docs_ext.reset_argv",
    "doc_module": ("skae",),
    "backreferences_dir": "gen_modules/backreferences",
    "reference_url": {"skae": None},
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "write_computation_times": False,
    "min_reported_time": 10,
}

# -- MyST ---------------------------------------------------------------------------

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# -- HTML -----------------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"skae {release}"
html_static_path = []
html_show_sourcelink = False
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_context = {"default_mode": "light"}

# -- The benchmark report -----------------------------------------------------------

BENCHMARK_REPORT = DOCS / "benchmark-report"


def _benchmark_facts():
    """What the benchmark page says about the report it includes."""
    try:
        results = json.loads((BENCHMARK_REPORT / "results.json").read_text())
    except (OSError, ValueError):
        return None
    return {
        "command": results.get("command", "python -m benchmarks"),
        "date": results.get("date", "an unknown date"),
        "quick": bool(results.get("config", {}).get("quick", False)),
    }


skae_benchmark = _benchmark_facts()
