"""The gallery examples run: each with --quick, in a fresh process, writing its PNG."""

import ast
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("plot_*.py"))
# MNIST's home in this project's checkout: a sibling of the repository.
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"
# Each example spends most of its quick run importing TensorFlow, on one core:
# two at a time halve the wall time on a 2-core machine.
MAX_PARALLEL = min(2, os.cpu_count() or 1)


def _mnist_home():
    home = os.environ.get("SKAE_DATA_HOME") or str(SHARED_MNIST)
    from skae.datasets import fetch_mnist

    try:
        fetch_mnist(home, download_if_missing=False)
    except FileNotFoundError:
        return None
    return home


def _run(path, output_dir, mnist_home):
    env = dict(os.environ, MPLBACKEND="Agg")
    if mnist_home is not None:
        env["SKAE_DATA_HOME"] = mnist_home
    return subprocess.run(
        [sys.executable, str(path), "--quick", "--output-dir", str(output_dir)],
        cwd=output_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def mnist_home():
    return _mnist_home()


@pytest.fixture(scope="module")
def example_runs(request, tmp_path_factory, mnist_home):
    """Start every selected example at once, a few at a time; map stem to future."""
    selected = [
        item.callspec.params["path"]
        for item in request.session.items
        if getattr(item, "originalname", None) == "test_example_runs_quick"
    ]
    runnable = [p for p in selected if mnist_home or not _uses_mnist(p)]
    with ThreadPoolExecutor(max_workers=MAX_PARALLEL) as pool:
        yield {
            path.stem: (
                pool.submit(_run, path, out, mnist_home),
                out,
            )
            for path in runnable
            for out in [tmp_path_factory.mktemp(path.stem)]
        }
        pool.shutdown(cancel_futures=True)


def _uses_mnist(path):
    text = path.read_text()
    return "load_mnist" in text or "fetch_mnist" in text


def test_there_are_examples():
    assert len(EXAMPLES) >= 8


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_is_gallery_shaped(path):
    # sphinx-gallery: a docstring whose first line is a title underlined with
    # "=", and "# %%" cells; no required command-line arguments.
    source = path.read_text()
    lines = ast.get_docstring(ast.parse(source), clean=False).strip().splitlines()
    assert len(lines) > 2 and set(lines[1]) == {"="}
    assert len(lines[1]) >= len(lines[0])
    assert "# %%" in source
    assert "parse_known_args" in source


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs_quick(path, example_runs, mnist_home):
    if _uses_mnist(path) and mnist_home is None:
        pytest.skip(f"MNIST not found in SKAE_DATA_HOME or {SHARED_MNIST}")
    future, output_dir = example_runs[path.stem]
    result = future.result()
    assert result.returncode == 0, result.stderr[-3000:]
    png = output_dir / f"{path.stem}.png"
    assert png.is_file() and png.stat().st_size > 10_000
    # Every example reports what it measured.
    assert result.stdout.strip(), result.stderr[-3000:]
