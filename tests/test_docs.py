"""The documentation builds without warnings, and the PCA guide cannot go stale.

The builds run offline: intersphinx and the execution of the gallery stay off
(see docs/conf.py), whatever the caller's environment says.
"""

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PCA_GUIDE = DOCS / "user_guide" / "pca_migration.rst"
# Public modules of skae, each documented in docs/api.rst.
MODULES = ["architectures", "datasets", "metrics", "persistence", "plotting"]


def _sphinx(builder, out_dir, *options):
    pytest.importorskip("sphinx")
    pytest.importorskip("numpydoc")
    pytest.importorskip("sphinx_gallery")
    pytest.importorskip("pydata_sphinx_theme")
    pytest.importorskip("myst_parser")
    env = dict(os.environ, MPLBACKEND="Agg")
    for name in ("SKAE_DOCS_INTERSPHINX", "SKAE_DOCS_RUN_GALLERY"):
        env.pop(name, None)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            *options,
            "-b",
            builder,
            "-d",
            str(out_dir / "doctrees"),
            str(DOCS),
            str(out_dir / builder),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )


def test_docs_build_without_warnings(tmp_path):
    # The command of README.md, into a fresh folder so that nothing is cached.
    result = _sphinx("html", tmp_path, "-W", "--keep-going")
    assert result.returncode == 0, result.stderr[-5000:]
    html = tmp_path / "html"
    for page in [
        "index.html",
        "getting_started.html",
        "user_guide/pca_migration.html",
        "benchmarks.html",
        "api.html",
        "changelog.html",
        "auto_examples/index.html",
        "gen_modules/skae.AutoencoderTransformer.html",
    ]:
        assert (html / page).is_file(), page
    # The benchmark page carries the report and its figures.
    benchmark = (html / "benchmarks.html").read_text()
    figures = sorted((DOCS / "benchmark-report").glob("*.png"))
    assert figures
    for figure in figures:
        assert f'src="_images/{figure.name}"' in benchmark, figure.name


@pytest.mark.slow
def test_docs_code_runs(tmp_path):
    # Every >>> block of the pages (and of the API reference) as a doctest.
    result = _sphinx("doctest", tmp_path)
    report = tmp_path / "doctest" / "output.txt"
    summary = report.read_text() if report.is_file() else result.stdout[-5000:]
    assert result.returncode == 0, summary[-5000:] + result.stderr[-3000:]
    assert re.search(r"\b0 failures in tests", summary), summary[-5000:]


# -- the PCA guide --------------------------------------------------------------


def _guide_table_names():
    """Every ``literal`` inside the list-tables of the PCA guide."""
    lines = PCA_GUIDE.read_text().splitlines()
    names, in_table = set(), False
    for line in lines:
        if line.startswith(".. list-table::"):
            in_table = True
        elif line and not line[0].isspace():
            in_table = False
        if in_table:
            for literal in re.findall(r"``([^`]+)``", line):
                names.add(literal)
    return names


def _public_attributes(estimator, X):
    """Fitted attributes: documented in the docstring, or set by ``fit``."""
    from numpydoc.docscrape import ClassDoc

    documented = {item.name for item in ClassDoc(type(estimator))["Attributes"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator.fit(X)
    fitted = {
        name
        for name in vars(estimator)
        if name.endswith("_") and not name.startswith("_")
    }
    return documented | fitted


def _public_methods(cls):
    return {
        name
        for name in dir(cls)
        if not name.startswith("_") and callable(getattr(cls, name, None))
    }


def test_pca_guide_covers_every_pca_and_skae_name():
    from sklearn.decomposition import PCA

    from skae import AutoencoderTransformer

    X = np.random.RandomState(0).rand(20, 4)
    expected = {
        "PCA parameter": set(PCA().get_params()),
        "AutoencoderTransformer parameter": set(AutoencoderTransformer().get_params()),
        "PCA attribute": _public_attributes(PCA(n_components=2), X),
        "AutoencoderTransformer attribute": _public_attributes(
            AutoencoderTransformer(hidden_layer_sizes=(4,), epochs=1, random_state=0),
            X,
        ),
        "PCA method": _public_methods(PCA),
        "AutoencoderTransformer method": _public_methods(AutoencoderTransformer),
    }
    names = _guide_table_names()
    # get_params and set_params share a row: "``get_params`` / ``set_params``".
    missing = {kind: sorted(wanted - names) for kind, wanted in expected.items()}
    missing = {kind: absent for kind, absent in missing.items() if absent}
    assert not missing, (
        f"{PCA_GUIDE.relative_to(ROOT)} has no table row for: {missing}. Add "
        "each to the tables (with its counterpart, or why there is none)."
    )


def test_api_reference_lists_every_public_name():
    import importlib

    api = (DOCS / "api.rst").read_text()
    listed = set(re.findall(r"^   ([\w.]+)$", api, flags=re.M))
    missing = []
    for module_name in ["skae", *(f"skae.{m}" for m in MODULES)]:
        module = importlib.import_module(module_name)
        prefix = module_name.removeprefix("skae").lstrip(".")
        for name in module.__all__:
            if name == "__version__":
                continue  # Stated in the text of api.rst.
            if (f"{prefix}.{name}" if prefix else name) not in listed:
                missing.append(f"{module_name}.{name}")
    assert not missing, f"docs/api.rst does not list {missing}"
