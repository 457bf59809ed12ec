"""Tests of the benchmark suite in benchmarks/ (run from the repository root)."""

import itertools
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.pipeline import Pipeline

from benchmarks import _report
from benchmarks.__main__ import _json_safe, parse_args

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_MNIST = REPO_ROOT.parent / "shared" / "data" / "mnist"


def run_module(*args, timeout=300):
    """Run ``python -m <args>`` from the repository root; fail with its output."""
    env = dict(os.environ, MPLBACKEND="Agg")
    completed = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed


def is_finite_number(value):
    return isinstance(value, (int, float)) and math.isfinite(value)


@pytest.fixture
def no_mnist_anywhere(tmp_path, monkeypatch):
    """Hide every copy of MNIST the benchmark could find."""
    from benchmarks import _data

    monkeypatch.delenv("SKAE_DATA_HOME", raising=False)
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path / "no-sklearn-home"))
    # Existing, so writable: Keras (and skae's search) would otherwise fall
    # back to /tmp/.keras, which may hold a copy.
    (tmp_path / "keras-home").mkdir()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.setattr(_data, "SHARED_MNIST", tmp_path / "no-shared-copy")


# -- end to end ----------------------------------------------------------------


def test_quick_digits_end_to_end(tmp_path):
    out = tmp_path / "out"
    run = run_module("benchmarks", "--quick", "--datasets", "digits", "--out", str(out))
    # TensorFlow's C++ log lines ("I0000 00:00:... port.cc] oneDNN ...") stay
    # hidden without --verbose; the progress lines remain.
    assert not re.search(r"^[IWEF]\d{4} ", run.stderr + run.stdout, re.MULTILINE)
    assert "oneDNN" not in run.stderr

    for name in (
        "results.json",
        "report.md",
        "digits_embeddings_2d.png",
        "digits_reconstructions_8d.png",
        "digits_training_curve.png",
    ):
        assert (out / name).is_file(), name
    assert (out / "digits_embeddings_2d.png").read_bytes()[:4] == b"\x89PNG"

    results = json.loads((out / "results.json").read_text())
    assert results["config"]["quick"] is True
    assert results["config"]["seeds"] == [0]
    assert results["datasets"]["digits"]["status"] == "ok"
    assert "mnist" not in results["datasets"]  # not requested
    versions = results["environment"]["versions"]
    for package in ("skae", "keras", "tensorflow", "scikit-learn", "numpy"):
        assert versions[package]
    assert results["environment"]["machine"]["cpu_count"] >= 1
    # Two code sizes, AE and PCA, one seed; the structured AE at 2-D only.
    assert len(results["runs"]) == 2 * 2 + 1
    assert "structured" not in results["summary"]["digits"]["8"]

    cells = [(c, m) for c in ("2", "8") for m in ("autoencoder", "pca")]
    for code, method in [*cells, ("2", "structured")]:
        cell = results["summary"]["digits"][code][method]
        for metric in _report.METRICS:
            assert is_finite_number(cell[metric]["mean"]), (code, method, metric)
    # Held-out reconstructions are in input units: digits pixels are 0-16.
    assert (
        0
        < results["summary"]["digits"]["8"]["pca"]["reconstruction_mse"]["mean"]
        < 16**2
    )
    # Fixed thresholds are for the default epochs; comparisons with PCA are
    # judged within the run.
    for row in results["targets"]:
        if "than PCA" in row["target"]:
            assert row["status"] in {"PASS", "MISS"}, row
        else:
            assert row["status"] == "N/A" and "default epochs" in row["note"], row

    report = (out / "report.md").read_text()
    assert "### 2-D code" in report and "### 8-D code" in report
    assert "| Autoencoder (skae) |" in report and "| PCA |" in report
    assert "| Structured AE (skae) |" in report and "structure_weight=1.0" in report
    assert "kNN acc ↑" in report and "Davies-B. ↓" in report
    assert "## Targets" in report and "Quick run" in report
    assert "(digits_embeddings_2d.png)" in report


def test_speed_of_one_backend_quick_end_to_end(tmp_path):
    # benchmarks.speed --backend hands over to benchmarks.backends, which
    # measures the backend in a process of its own.
    out = tmp_path / "out"
    run_module(
        "benchmarks.speed", "--backend", "tensorflow", "--quick", "--out", str(out)
    )
    (result,) = json.loads((out / "backends.json").read_text())
    assert result["backend"] == "tensorflow"
    assert result["steady_gflops"] > 0 and result["fixed_cost_seconds"] > 0
    assert min(result["transform_rows_per_second"].values()) > 0
    markdown = (out / "backends.md").read_text()
    assert "| steady training (GFLOP/s) |" in markdown
    assert "| structured fit, digits (s) |" in markdown


def test_speed_quick_end_to_end(tmp_path):
    out = tmp_path / "out"
    run_module("benchmarks.speed", "--quick", "--structured", "--out", str(out))

    result = json.loads((out / "speed.json").read_text())
    training = result["training"]
    for trainer in ("skae", "keras"):
        assert is_finite_number(training[trainer]["samples_per_second"])
        assert training[trainer]["steady_gflops"] > 0
    assert result["matmul_peak"]["numpy_gflops"] > 0
    # The default network's Dense layers, encoder then decoder, mirror-imaged.
    widths = result["network"]["widths"]
    assert widths[0] == widths[-1] == 784 and widths == widths[::-1]
    assert result["network"]["flops_per_sample_epoch"] == 6 * sum(
        a * b for a, b in itertools.pairwise(widths)
    )
    assert result["wrapper_vs_keras"]["status"] in {"PASS", "MISS"}
    assert is_finite_number(result["wrapper_vs_keras"]["time_ratio"])
    for call in (
        "skae_transform",
        "skae_transform_keras_path",
        "numpy_reference",
        "pca_transform",
        "keras_predict",
    ):
        assert result["transform"][call]["latency_seconds"] > 0
        assert is_finite_number(result["transform"][call]["rows_per_second"])
    targets = result["transform_targets"]
    assert targets["throughput_vs_numpy"]["target"] == 0.7
    assert targets["latency_vs_pca"]["target"] == 1.5
    for target in targets.values():
        assert target["status"] in {"PASS", "MISS"}
        assert is_finite_number(target["ratio"])
    fixed = result["fixed_cost"]
    assert 0 < fixed["repeated_seconds"] == min(fixed["repeated_runs"])
    assert fixed["first_seconds"] > 0 and fixed["status"] in {"PASS", "MISS"}
    assert result["peak_target"]["status"] in {"PASS", "MISS"}
    speed_md = (out / "speed.md").read_text()
    assert "skae / plain Keras time" in speed_md and "| PCA `transform` |" in speed_md
    assert "## Fixed cost" in speed_md and "repeated fit:" in speed_md
    assert "| NumPy reference forward pass |" in speed_md
    assert "skae / NumPy reference throughput" in speed_md
    # The structured fit's section: the quick run's two schedules, no UMAP.
    structured = result["structured"]
    assert [f["epochs"] for f in structured["fits"]] == [2, 1]
    first, second = structured["fits"]
    assert first["gflop"] == pytest.approx(2 * second["gflop"])
    for fit in structured["fits"]:
        assert 0 < fit["floor_seconds"] < fit["metrics"]["fit_seconds"]
        assert 0 <= fit["metrics"]["knn_accuracy"] <= 1
    assert structured["umap"] is None
    assert "## Structured fit against UMAP's" in speed_md


def test_dropin_frontier_keeps_the_codes_only_past_the_margin():
    from benchmarks.dropin_frontier import frontier

    def run(solution, ratio, difference, errors=None):
        ae = {"solution": solution, "validation_errors": errors}
        return {"ae": ae, "ratio": ratio, "downstream_difference": difference}

    errors = {"pca": 1.0, "pca_decoder": 0.8, "autoencoder": 0.6}
    fits = [
        # Codes 25% below the decoder's error: kept up to a margin of 0.25.
        {
            "case": ("a", False, 2),
            "kept": run("autoencoder", 0.5, -0.04, errors),
            "without": run("pca_decoder", 0.8, 0.0),
        },
        {"case": ("b", False, 2), "kept": run("pca", 1.0, 0.0)},
    ]
    loose, strict = frontier(fits, margins=(0.2, 0.3))
    assert loose["codes_kept"] == 1 and strict["codes_kept"] == 0
    assert loose["geometric_mean_ratio"] == pytest.approx(np.sqrt(0.5))
    assert loose["min_downstream_difference"] == -0.04
    assert strict["geometric_mean_ratio"] == pytest.approx(np.sqrt(0.8))
    assert strict["mean_downstream_difference"] == 0.0


def test_linear_loss_is_zero_for_affine_maps_of_pca_scores_only():
    from benchmarks.dropin import linear_loss

    rng = np.random.RandomState(0)
    scores = rng.normal(size=(200, 2)) * [3.0, 1.0]
    mixed = scores @ [[0.5, 2.0], [-1.0, 0.3]] + [4.0, -2.0]
    assert linear_loss(mixed, scores) == pytest.approx(0.0, abs=1e-12)
    # Codes that keep the first score and fold the second: the second's
    # variance (a tenth of the total) is what an affine map misses.
    folded = np.c_[scores[:, 0], np.abs(scores[:, 1])]
    assert 0.08 < linear_loss(folded, scores) < 0.12
    assert linear_loss(rng.normal(size=(200, 2)), scores) > 0.9


def test_dropin_frontier_bounds_the_codes_linear_loss():
    from benchmarks.dropin_frontier import linear_frontier

    def run(solution, ratio, difference, loss=None):
        ae = {"solution": solution, "linear_loss": loss}
        return {"ae": ae, "ratio": ratio, "downstream_difference": difference}

    fits = [
        {
            "case": ("a", False, 2),
            "kept": run("autoencoder", 0.5, -0.04, loss=0.12),
            "without": run("pca_decoder", 0.8, 0.0),
        },
        {"case": ("b", False, 2), "kept": run("autoencoder", 0.7, 0.01, loss=0.01)},
    ]
    loose, strict = linear_frontier(fits, losses=(0.15, 0.1))
    assert loose["codes_kept"] == 2 and strict["codes_kept"] == 1
    assert loose["min_downstream_difference"] == -0.04
    assert strict["mean_downstream_difference"] == pytest.approx(0.005)
    assert strict["geometric_mean_ratio"] == pytest.approx(np.sqrt(0.8 * 0.7))


def test_structured_flops_count_the_fitted_networks_layers():
    from benchmarks._timing import dense_flops_per_sample
    from benchmarks.structured_speed import structured_flops
    from skae import AutoencoderTransformer

    X = np.random.RandomState(0).normal(size=(60, 7))
    ae = AutoencoderTransformer(
        3, structure_weight=1.0, hidden_layer_sizes=(9, 5), epochs=1, random_state=0
    ).fit(X)
    per_row = dense_flops_per_sample([ae.encoder_, ae.decoder_])
    # 4 epochs of 100 edges: 800 rows through both networks.
    assert structured_flops(7, (9, 5), 3, 100, 4) == per_row * 800


def test_speed_refuses_fewer_samples_than_a_batch(tmp_path):
    from benchmarks import speed

    argv = ["--quick", "--n-samples", "20", "--random-data", "--out", str(tmp_path)]
    with pytest.raises(
        SystemExit, match=r"at least one batch \(32 rows here\), got 20"
    ):
        speed.main(argv)


def test_reconstruction_quick_end_to_end(tmp_path):
    out = tmp_path / "out"
    run_module(
        "benchmarks.reconstruction",
        "--quick",
        "--datasets",
        "digits",
        "--seeds",
        "0",
        "--out",
        str(out),
    )
    result = json.loads((out / "reconstruction.json").read_text())
    digits = result["datasets"]["digits"]
    assert [row["k"] for row in digits["sizes"]] == [2, 8]
    for row in digits["sizes"]:
        assert row["PCA"] > 0 and row["default"] in {"random", "pca"}
        assert all(is_finite_number(v) and v > 0 for v in row["random"] + row["pca"])
    assert [s["target"] for s in digits["search"]] == [0.9, 0.95]
    for search in digits["search"]:
        assert search["val_r2"] >= search["target"]
        reaching = [
            int(k) for k, r2 in search["tried"].items() if r2 >= search["target"]
        ]
        assert search["chosen"] == min(reaching)
    text = (out / "reconstruction.md").read_text()
    assert "| code size | PCA |" in text and "| target R² |" in text


def test_dropin_quick_end_to_end(tmp_path):
    out = tmp_path / "out"
    run_module(
        "benchmarks.dropin",
        "--datasets",
        "wine",
        "s_curve",
        "--seeds",
        "0",
        "--out",
        str(out),
    )
    result = json.loads((out / "dropin.json").read_text())
    # wine: 13 features, k=2 and 4; the S curve: 3 features, k=2 alone.
    cases = [(c["dataset"], c["prep"], c["k"]) for c in result["cases"]]
    assert cases == [
        ("wine", "raw", 2),
        ("wine", "raw", 4),
        ("wine", "std", 2),
        ("wine", "std", 4),
        ("s_curve", "raw", 2),
        ("s_curve", "std", 2),
    ]
    for case in result["cases"]:
        (run,) = case["runs"]
        assert run["ratio"] == pytest.approx(run["ae"]["mse"] / run["pca"]["mse"])
        assert run["ae"]["solution"] in {"autoencoder", "pca"}
        assert all(is_finite_number(run[m]["downstream"]) for m in ("ae", "pca"))
        # PCA's codes, whichever network rebuilds them, are PCA's scores.
        assert 0 <= run["ae"]["linear_loss"] <= 1
        if run["ae"]["solution"] != "autoencoder":
            assert run["ae"]["linear_loss"] < 1e-8
    summary = result["summary"]
    assert summary["cases"] == summary["runs"] == 6
    ratios = [c["ratio_mean"] for c in result["cases"]]
    assert summary["cases_over_ratio"] == sum(r > 1.02 for r in ratios)
    assert summary["max_ratio"] == max(ratios)
    assert 0 < result["small_fit_s"] == min(result["small_fit_times"])
    text = (out / "dropin.md").read_text()
    assert f"**{summary['cases_over_ratio']} of 6 cases reconstruct worse" in text


def test_recipes_score_images_and_tables_per_recipe(tmp_path):
    from benchmarks import recipes

    argv = ["--recipes", "gelu-layer", "--images", "digits", "--tables", "wine"]
    assert recipes.main([*argv, "--seeds", "0", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "recipes.json").read_text())
    (name,) = result["recipes"]
    recipe = result["recipes"][name]
    assert name == "gelu-layer" and recipe["params"] == recipes.GELU_LAYER
    ((run,),) = recipe["images"].values()
    assert 0.5 < run["knn"] <= 1 and 0.5 < run["trustworthiness"] <= 1
    assert run["fit_s"] > 0 and run["n_iter"] >= 1
    assert [c["dataset"] for c in recipe["cases"]] == ["wine"] * 4
    assert recipe["tables"]["cases"] == 4 and recipe["small_fit_s"] > 0
    for kind in ("--recipes", "--images", "--tables"):
        assert recipes.main([kind, "nope", "--out", str(tmp_path)]) == 2


def test_recipes_params_reach_the_fits():
    from benchmarks import dropin, recipes
    from benchmarks._tabular import LOADERS

    (run,) = recipes.image_codes("digits", [0], {"epochs": 2})
    assert run["n_iter"] == 2
    X, y, task, _ = LOADERS["wine"]()
    case = dropin.run_case(X, y, task, 2, True, 0, params={"epochs": 3})
    assert case["ae"]["n_iter"] <= 3


def test_dropin_skips_a_data_set_whose_package_is_missing(tmp_path, monkeypatch):
    from benchmarks import _tabular, dropin

    def missing():
        raise ImportError("No module named 'palmerpenguins'")

    monkeypatch.setattr(_tabular, "LOADERS", {"penguins": missing})
    assert dropin.main(["--datasets", "penguins", "--out", str(tmp_path)]) == 1
    assert dropin.main(["--datasets", "nope", "--out", str(tmp_path)]) == 2


def test_reconstruction_skips_missing_mnist_unless_asked(
    tmp_path, no_mnist_anywhere, monkeypatch, capsys
):
    from benchmarks import reconstruction

    real_load = reconstruction.load

    def load(name, **kwargs):
        if name == "digits":  # hidden too, so that nothing is fitted
            raise FileNotFoundError("digits hidden by the test")
        return real_load(name, **kwargs)

    monkeypatch.setattr(reconstruction, "load", load)
    out = tmp_path / "out"
    assert reconstruction.main(["--quick", "--out", str(out)]) == 0
    result = json.loads((out / "reconstruction.json").read_text())
    assert sorted(result["skipped"]) == ["digits", "mnist"]
    assert "MNIST was not found" in result["skipped"]["mnist"]
    assert "**Skipped**" in (out / "reconstruction.md").read_text()
    assert reconstruction.main(["--datasets", "mnist", "--out", str(out)]) == 1
    assert "error: MNIST was not found" in capsys.readouterr().err


def test_out_of_core_quick_keeps_an_explicit_row_count():
    from benchmarks.out_of_core import parse_args as out_of_core_args

    assert out_of_core_args([]).rows == 400_000
    assert out_of_core_args(["--quick"]).rows == 20_000
    assert out_of_core_args(["--quick", "--rows", "3000"]).rows == 3000


def test_out_of_core_quick_end_to_end(tmp_path):
    out = tmp_path / "out"
    run_module(
        "benchmarks.out_of_core", "--quick", "--dir", str(tmp_path), "--out", str(out)
    )
    result = json.loads((out / "out_of_core.json").read_text())
    assert result["rows"] == 20_000 and result["codes_finite"]
    assert result["fit"]["seconds"] > 0 and result["sparse"]["fit"]["seconds"] > 0
    assert 0 < result["sparse"]["density"] < 1
    assert "| memmap fit |" in (out / "out_of_core.md").read_text()


@pytest.mark.slow  # compiling UMAP's numba code alone takes about 30 s
def test_quick_with_umap(tmp_path):
    pytest.importorskip("umap")
    out = tmp_path / "out"
    run_module(
        "benchmarks", "--quick", "--umap", "--datasets", "digits", "--out", str(out)
    )
    results = json.loads((out / "results.json").read_text())
    umap_cell = results["summary"]["digits"]["2"]["umap"]
    assert is_finite_number(umap_cell["knn_accuracy"]["mean"])
    assert umap_cell["reconstruction_mse"] is None
    assert "| UMAP |" in (out / "report.md").read_text()


def test_parametric_umap_peer_reconstructs_in_the_input_units():
    from benchmarks._peers import ParametricUMAPPeer, parametric_umap_available

    if not parametric_umap_available()[0]:
        pytest.skip("umap.parametric_umap is not available")
    rng = np.random.RandomState(0)
    X = 5.0 + 11.0 * rng.rand(200, 6)  # a range far from [0, 1]
    peer = ParametricUMAPPeer(2, decoder=True, random_state=0, n_epochs=5).fit(X)
    Z = peer.transform(X)
    assert Z.shape == (200, 2) and np.isfinite(Z).all()
    X_rebuilt = peer.inverse_transform(Z)
    assert X_rebuilt.shape == X.shape
    # The sigmoid's range mapped back: inside the training rows' range.
    assert X.min() <= X_rebuilt.min() and X_rebuilt.max() <= X.max()
    with pytest.raises(ValueError, match="decoder=True"):
        ParametricUMAPPeer(2, random_state=0, n_epochs=5).fit(X).inverse_transform(Z)


@pytest.mark.slow
def test_quick_with_parametric_umap(tmp_path):
    from benchmarks._peers import parametric_umap_available

    if not parametric_umap_available()[0]:
        pytest.skip("umap.parametric_umap is not available")
    out = tmp_path / "out"
    run_module(
        "benchmarks",
        "--quick",
        "--parametric-umap",
        "--datasets",
        "digits",
        "--out",
        str(out),
    )
    results = json.loads((out / "results.json").read_text())
    cells = results["summary"]["digits"]
    plain = cells["2"]["parametric_umap"]
    with_decoder = cells["2"]["parametric_umap_ae"]
    assert is_finite_number(plain["knn_accuracy"]["mean"])
    assert plain["reconstruction_mse"] is None
    assert is_finite_number(with_decoder["reconstruction_mse"]["mean"])
    # 2-D only, as the structured autoencoder.
    assert "parametric_umap" not in cells["8"]
    report = (out / "report.md").read_text()
    assert "| ParametricUMAP + decoder |" in report


def test_default_run_skips_missing_mnist(tmp_path, no_mnist_anywhere):
    from benchmarks.__main__ import main

    out = tmp_path / "out"
    argv = ["--quick", "--subsample", "200", "--epochs", "2", "--out", str(out)]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    mnist = results["datasets"]["mnist"]
    assert mnist["status"] == "skipped"
    assert "not found" in mnist["reason"] and "no-shared-copy" not in mnist["reason"]
    assert results["datasets"]["digits"]["n_train"] == 100
    report = (out / "report.md").read_text()
    assert "## mnist" in report and "**Skipped**" in report


def test_explicit_mnist_fails_when_missing(tmp_path, no_mnist_anywhere, capsys):
    from benchmarks.__main__ import main

    empty = tmp_path / "empty"
    empty.mkdir()
    argv = ["--datasets", "mnist", "--data-home", str(empty), "--out", str(tmp_path)]
    assert main(argv) == 1
    message = capsys.readouterr().err
    assert "MNIST was not found" in message and str(empty) in message
    assert not (tmp_path / "results.json").exists()


@pytest.mark.skipif(
    not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").is_file(),
    reason="no MNIST copy in ../shared/data/mnist",
)
def test_mnist_found_beside_the_repository(tmp_path, monkeypatch):
    from benchmarks import _data

    monkeypatch.delenv("SKAE_DATA_HOME", raising=False)
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path / "no-sklearn-home"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # an empty Keras cache
    data = _data.load("mnist", subsample=1000)
    # The files' names only: reports must not carry this machine's folders.
    assert data.info["source"] == "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz"
    assert data.info["variant"] == "test-10k"
    assert data.X_train.shape == (500, 784) and data.X_test.shape == (500, 784)
    assert 0 <= data.X_train.min() and data.X_train.max() <= 1
    assert any("10,000-image MNIST test set" in note for note in data.info["notes"])
    assert "50/50" in data.info["split"]


def test_structured_reaches_wide_inputs_through_pca():
    from benchmarks import _data, _suite

    rng = np.random.RandomState(0)
    wide = _suite.STRUCTURED_PCA + 20
    X = rng.rand(240, wide).astype(np.float32)
    y = np.repeat(np.arange(4), 60)
    X += y[:, None] * rng.rand(4, wide)[y]  # four clusters, to score
    data = _data.BenchmarkData(
        "wide", X[::2], X[1::2], y[::2], y[1::2], image_shape=(wide,)
    )
    run, arrays = _suite.run_one("structured", data, 2, 0, epochs=2)
    assert run["details"]["steps"] == ["PCA", "AutoencoderTransformer"]
    assert run["details"]["pca_components"] == _suite.STRUCTURED_PCA
    assert run["details"]["params"]["structure_weight"] == 1.0
    assert run["details"]["n_iter_"] == 2
    # Reconstructions come back in input units, all features.
    assert arrays["X_reconstructed"].shape == data.X_test.shape
    assert 0 < run["metrics"]["reconstruction_mse"] < np.var(data.X_test) * 2
    note = _report.autoencoder_note([run], "wide", 2, "structured")
    assert note.startswith(
        f"Structured AE: PCA to {_suite.STRUCTURED_PCA} components first, "
    )
    # The plain autoencoder, and narrow inputs, take the pixels themselves.
    assert not isinstance(
        _suite.make_estimator("autoencoder", 2, 0, n_features=wide), Pipeline
    )
    narrow = _suite.make_estimator("structured", 2, 0, n_features=64)
    assert narrow.get_params()["structure_weight"] == 1.0


# -- argument parsing ----------------------------------------------------------


def test_parse_args_defaults_and_quick():
    args = parse_args([])
    assert args.datasets is None and args.seeds == 3 and args.epochs is None
    assert args.out == Path("benchmark-results")
    quick = parse_args(["--quick", "--datasets", "digits,mnist"])
    assert quick.datasets == ["digits", "mnist"] and quick.seeds == 1
    assert quick.epochs is not None and quick.subsample is not None
    assert parse_args(["--quick", "--seeds", "2"]).seeds == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["--datasets", "cifar"],
        ["--seeds", "0"],
        ["--epochs", "-1"],
        # Too few held-out rows to score; 44 runs.
        ["--subsample", "43"],
    ],
)
def test_parse_args_rejects(argv, capsys):
    with pytest.raises(SystemExit):
        parse_args(argv)
    assert "error" in capsys.readouterr().err


# -- aggregation and formatting ------------------------------------------------


def test_aggregate():
    summary = _report.aggregate([0.9, None, 0.92, float("nan"), 0.94])
    assert summary["n"] == 3 and summary["values"] == [0.9, 0.92, 0.94]
    assert summary["mean"] == pytest.approx(0.92)
    assert summary["std"] == pytest.approx(0.02)  # sample standard deviation
    assert _report.aggregate([1.5])["std"] is None
    assert _report.aggregate([None, None]) is None


@pytest.mark.parametrize(
    "values, expected",
    [
        ([0.90, 0.92, 0.94], "0.920 ± 0.020"),
        ([1000.0, 1200.0], "1100 ± 141"),
        ([0.001234, 0.001238], "0.00124 ± 0.00000"),
        ([12.0, 12.0], "12.0 ± 0.0"),
        ([0.5], "0.500"),
        ([None], "n/a"),
    ],
)
def test_format_mean_std(values, expected):
    assert _report.format_mean_std(_report.aggregate(values)) == expected


def test_format_value():
    assert _report.format_value(0.0) == "0.00"
    assert _report.format_value(-2.345) == "-2.35"
    assert _report.format_value(float("inf")) == "n/a"


def fake_runs(values):
    """Runs of digits from ``{(code, method): {metric: [per-seed values]}}``."""
    runs = []
    for (code, method), metrics in values.items():
        n_seeds = len(next(iter(metrics.values())))
        for seed in range(n_seeds):
            runs.append(
                {
                    "dataset": "digits",
                    "n_components": code,
                    "method": method,
                    "seed": seed,
                    "metrics": {m: v[seed] for m, v in metrics.items()},
                }
            )
    return runs


def test_summarize():
    summary = _report.summarize(
        fake_runs({(2, "pca"): {"knn_accuracy": [0.5, 0.7], "fit_seconds": [1, 3]}})
    )
    cell = summary["digits"]["2"]["pca"]
    assert cell["knn_accuracy"]["mean"] == pytest.approx(0.6)
    assert cell["fit_seconds"]["values"] == [1.0, 3.0]
    assert cell["silhouette"] is None  # not measured
    assert list(cell) == list(_report.METRICS)


GOOD_AE = {
    "knn_accuracy": [0.93, 0.95],
    "trustworthiness": [0.97, 0.97],
    "fit_seconds": [8.0, 9.0],
    "silhouette": [0.5, 0.6],
    "davies_bouldin": [0.8, 0.9],
    "calinski_harabasz": [900, 1000],
    "kmeans_ari": [0.7, 0.8],
    "kmeans_nmi": [0.8, 0.8],
}
PCA_2D = {
    "silhouette": [0.1, 0.1],
    "davies_bouldin": [2.0, 2.0],
    "calinski_harabasz": [300, 300],
    "kmeans_ari": [0.4, 0.4],
    "kmeans_nmi": [0.5, 0.5],
}
DIGITS_INFO = {
    "digits": {"status": "ok", "variant": "uci-digits", "code_sizes": [2, 8]}
}


GOOD_STRUCTURED = {
    "knn_accuracy": [0.96, 0.95],
    "silhouette": [0.5, 0.48],
    "trustworthiness": [0.97, 0.965],
}


def test_structured_targets_against_the_plain_ae_and_umap():
    runs = fake_runs(
        {
            (2, "autoencoder"): {"reconstruction_mse": [0.038, 0.038]},
            (2, "structured"): {
                "reconstruction_mse": [0.037, 0.036],
                "fit_seconds": [9.0, 11.0],
            },
            (2, "umap"): {"fit_seconds": [6.0, 6.0]},
        }
    )
    summary = _report.summarize(runs)
    summary["mnist"] = summary.pop("digits")
    info = {"mnist": {"status": "ok", "variant": "test-10k", "code_sizes": [2, 32]}}
    rows = by_target(_report.check_targets(summary, info))
    mse = rows["2-D structured AE reconstruction_mse <= autoencoder's"]
    assert mse["status"] == "PASS" and mse["required"] == "<= 0.0380"
    fit = rows["2-D structured AE fit_seconds <= umap's x 0.333333"]
    assert fit["status"] == "MISS" and fit["measured"] == "10.0"
    assert rows["2-D structured AE silhouette >= 0.35"]["status"] == "MISS"
    # Without UMAP in the run the time target cannot be judged.
    del summary["mnist"]["2"]["umap"]
    rows = by_target(_report.check_targets(summary, info))
    assert rows["2-D structured AE fit_seconds <= umap's x 0.333333"]["status"] == "N/A"


def by_target(rows):
    return {row["target"]: row for row in rows}


def test_check_targets_pass():
    summary = _report.summarize(
        fake_runs(
            {
                (2, "autoencoder"): GOOD_AE,
                (2, "structured"): GOOD_STRUCTURED,
                (2, "pca"): PCA_2D,
                (8, "autoencoder"): {"reconstruction_mse": [3.0, 3.2]},
                (8, "pca"): {"reconstruction_mse": [6.0, 6.0]},
            }
        )
    )
    rows = _report.check_targets(summary, DIGITS_INFO)
    assert len(rows) == 3 + 3 + 5 + 1
    assert {row["status"] for row in rows} == {"PASS"}
    knn = by_target(rows)["2-D autoencoder knn_accuracy >= 0.9"]
    assert knn["measured"] == "0.940" and knn["required"] == ">= 0.9"
    mse = by_target(rows)["8-D autoencoder reconstruction_mse lower than PCA"]
    assert mse["measured"] == "3.10" and mse["required"] == "< 6.00 (PCA)"


def test_check_targets_miss_directions():
    bad_ae = dict(GOOD_AE, fit_seconds=[12.0, 11.0], davies_bouldin=[2.5, 2.5])
    worse_pca = dict(PCA_2D, kmeans_ari=[0.9, 0.9])
    summary = _report.summarize(
        fake_runs(
            {
                (2, "autoencoder"): bad_ae,
                (2, "pca"): worse_pca,
                (8, "autoencoder"): {"reconstruction_mse": [7.0, 7.0]},
                (8, "pca"): {"reconstruction_mse": [6.0, 6.0]},
            }
        )
    )
    status = {
        t: row["status"]
        for t, row in by_target(_report.check_targets(summary, DIGITS_INFO)).items()
    }
    assert status["2-D autoencoder fit_seconds <= 10"] == "MISS"
    assert status["2-D autoencoder davies_bouldin lower than PCA"] == "MISS"
    assert status["2-D autoencoder kmeans_ari higher than PCA"] == "MISS"
    assert status["8-D autoencoder reconstruction_mse lower than PCA"] == "MISS"
    assert status["2-D autoencoder knn_accuracy >= 0.9"] == "PASS"
    assert status["2-D autoencoder silhouette higher than PCA"] == "PASS"


def test_check_targets_off_protocol_runs_are_not_judged():
    # 200 training rows or 5 epochs say nothing of a threshold set for all
    # the data and the default epochs.
    summary = _report.summarize(
        fake_runs({(2, "autoencoder"): {"knn_accuracy": [0.95]}})
    )
    sub = {"digits": {**DIGITS_INFO["digits"], "subsample": 400}}
    for datasets, kwargs, note in [
        (sub, {}, "subsample of 400"),
        (DIGITS_INFO, {"epochs": 5}, "this run used 5"),
    ]:
        rows = by_target(_report.check_targets(summary, datasets, **kwargs))
        row = rows["2-D autoencoder knn_accuracy >= 0.9"]
        assert row["status"] == "N/A" and note in row["note"]
        assert rows["2-D autoencoder silhouette higher than PCA"]["status"] == "MISS"
    rows = by_target(_report.check_targets(summary, DIGITS_INFO))
    assert rows["2-D autoencoder knn_accuracy >= 0.9"]["status"] == "PASS"


def test_check_targets_variants_and_missing_values():
    summary = _report.summarize(
        fake_runs({(2, "autoencoder"): {"knn_accuracy": [0.85]}})
    )
    summary["mnist"] = summary.pop("digits")
    datasets = {
        "mnist": {"status": "ok", "variant": "full-70k", "code_sizes": [2, 32]},
        "digits": {"status": "skipped", "reason": "not asked"},
    }
    rows = _report.check_targets(summary, datasets)
    assert {row["dataset"] for row in rows} == {"mnist"}
    thresholds = [row for row in rows if row["target"].endswith(("0.8", "0.92", "30"))]
    assert len(thresholds) == 3
    assert {row["status"] for row in thresholds} == {"N/A"}
    assert "test-10k" in thresholds[0]["note"]
    # Comparisons with PCA that nothing measured are misses, not passes.
    comparisons = [row for row in rows if "than PCA" in row["target"]]
    assert {row["status"] for row in comparisons} == {"MISS"}


def test_metrics_table():
    summary = _report.summarize(
        fake_runs(
            {
                (2, "autoencoder"): {"knn_accuracy": [0.9, 0.94]},
                (2, "pca"): {"knn_accuracy": [0.6, 0.6]},
            }
        )
    )
    table = _report.metrics_table(
        summary["digits"]["2"], ["autoencoder", "umap", "pca"]
    )
    lines = table.splitlines()
    assert len(lines) == 4  # header, alignment, two methods (no UMAP results)
    assert lines[0].count("|") == len(_report.METRICS) + 2
    assert "| Autoencoder (skae) | 0.920 ± 0.028 | n/a |" in table
    assert lines[3].startswith("| PCA | 0.600 ± 0.000 |")


def test_render_markdown():
    runs = fake_runs(
        {
            (2, "autoencoder"): GOOD_AE,
            (2, "structured"): GOOD_STRUCTURED,
            (2, "pca"): PCA_2D,
        }
    )
    summary = _report.summarize(runs)
    datasets = {
        "digits": dict(
            DIGITS_INFO["digits"],
            source="sklearn",
            split="A split",
            n_train=10,
            n_test=10,
            n_features=64,
            preprocessing="none",
            notes=["A note."],
            figures={"embeddings": "digits_embeddings_2d.png"},
        ),
        "mnist": {"status": "skipped", "reason": "MNIST was not found."},
    }
    results = {
        "date": "today",
        "command": "python -m benchmarks",
        "config": {
            "quick": False,
            "epochs": None,
            "methods": ["autoencoder", "structured", "pca"],
        },
        "environment": {
            "versions": {"skae": "0.1", "umap-learn": None},
            "machine": {"cpu_model": "CPU", "cpu_count": 2, "platform": "Linux"},
        },
        "protocol": ["Split once."],
        "datasets": datasets,
        "summary": summary,
        "targets": _report.check_targets(summary, datasets),
    }
    report = _report.render_markdown(results)
    assert "- versions: skae 0.1\n" in report  # missing packages left out
    assert "- Split once." in report and "- A note." in report
    assert "**Skipped**: MNIST was not found." in report
    assert "![2-D embeddings" in report and "(digits_embeddings_2d.png)" in report
    assert "Quick run" not in report
    # The 8-D reconstruction comparison had no data: 11 of 12 targets pass.
    assert "11 of 12 applicable targets met" in report


def test_json_safe():
    import numpy as np

    cleaned = _json_safe({"a": float("nan"), 1: [np.float64(2.0), (np.int64(3),)]})
    assert cleaned == {"a": None, "1": [2.0, [3]]}
    json.dumps(cleaned, allow_nan=False)


def test_report_doctests():
    import doctest

    failures, tried = doctest.testmod(_report)
    assert tried > 0 and failures == 0


def test_scaling_growth_exponent_and_crossover():
    from benchmarks.scaling import crossover, growth_exponent

    sizes = [1_000, 10_000, 100_000]
    assert growth_exponent(sizes, [1.0, 10.0, 100.0]) == pytest.approx(1.0)
    assert growth_exponent(sizes, [2.0, 200.0, 20_000.0]) == pytest.approx(2.0)
    assert growth_exponent(sizes[:1], [1.0]) is None
    # Ours grows linearly, theirs quadratically: equal at 10,000 rows.
    ours, theirs = [10.0, 100.0, 1000.0], [1.0, 100.0, 10_000.0]
    assert crossover(sizes, ours, theirs) == (10_000, "between 1,000 and 10,000 rows")
    n, how = crossover(sizes, [10.0, 50.0, 100.0], [1.0, 100.0, 10_000.0])
    assert 1_000 < n < 10_000 and how == "between 1,000 and 10,000 rows"
    assert crossover(sizes, [1.0] * 3, [2.0] * 3) == (1_000, "from the smallest size")
    assert crossover(sizes, [3.0] * 3, [2.0] * 3) == (None, "not in the measured range")


def test_scaling_copies_are_deformed_seeded_and_labelled():
    from benchmarks.scaling import deformed

    images = np.zeros((3, 28, 28), np.float32)
    images[0, 12:16, 4:24] = 1.0  # a horizontal bar
    images[1, 4:24, 12:16] = 1.0  # a vertical bar
    images[2, 6:22, 6:22] = 1.0  # a filled square
    images[2, 9:19, 9:19] = 0.0
    copies, originals = deformed(images, 30, np.random.default_rng(0))
    again, originals_again = deformed(images, 30, np.random.default_rng(0))
    np.testing.assert_array_equal(copies, again)
    np.testing.assert_array_equal(originals, originals_again)
    assert copies.shape == (30, 784) and copies.dtype == np.float32
    assert copies.min() >= 0.0 and copies.max() <= 1.0
    assert set(originals) == {0, 1, 2}
    flat = images.reshape(3, -1)
    distances = ((copies[:, None, :] - flat[None]) ** 2).sum(axis=2)
    # Deformed, yet still nearest to the original whose label it carries.
    assert (distances[np.arange(30), originals] > 1.0).all()
    np.testing.assert_array_equal(distances.argmin(axis=1), originals)


@pytest.mark.skipif(
    not (SHARED_MNIST / "SHA256SUMS").exists(),
    reason="no MNIST copy in ../shared/data/mnist",
)
def test_scaling_end_to_end_on_tiny_sizes(tmp_path):
    from benchmarks import scaling

    argv = ["--sizes", "300", "600", "--epochs", "1", "--no-umap"]
    argv += ["--data-home", str(SHARED_MNIST), "--out", str(tmp_path)]
    assert scaling.main(argv) == 0
    result = json.loads((tmp_path / "scaling.json").read_text())
    assert result["sizes"] == [300, 600] and result["epochs"] == 1
    assert sorted({r["method"] for r in result["runs"]}) == [
        "autoencoder",
        "pca",
        "structured",
    ]
    for run in result["runs"]:
        assert run["fit_seconds"] > 0 and 0 <= run["knn_accuracy"] <= 1
    for method in ("autoencoder", "structured", "pca"):
        assert isinstance(result["summary"][method]["exponent"], float)
    report = (tmp_path / "scaling.md").read_text()
    assert "| 600 |" in report and "b = " in report and "epochs set to 1" in report


def test_speed_scaling_adds_the_scaling_table_as_a_section(tmp_path, monkeypatch):
    from benchmarks import scaling, speed

    calls = []

    def fake_main(argv, progress):
        calls.append(argv)
        progress("a line")
        (tmp_path / "scaling.md").write_text("# skae scaling: fit time\n\n| rows |\n")
        return 0

    monkeypatch.setattr(scaling, "main", fake_main)
    section = scaling.section(tmp_path, True, print)
    assert calls == [["--out", str(tmp_path), "--quick"]]
    assert (
        section.startswith("## Cost as work grows: fit time") and "| rows |" in section
    )
    assert speed.parse_args(["--scaling"]).scaling
