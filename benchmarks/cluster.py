"""``python -m benchmarks.cluster``: fit and transform Dask arrays on a cluster.

Starts a ``dask.distributed.LocalCluster`` of two single-threaded worker
processes on the loopback interface and measures, against the same work in
memory in this process:

* **fit** from a lazily computed Dask array (``--fit-rows`` x 784 float32,
  chunks of 10,000 rows, each block generated on a worker from its seed:
  curved rows ``tanh(Z W)`` plus noise, Z of 16 dimensions): the time of one
  epoch (a Keras callback's clock), the client's resident memory growth
  (``VmHWM`` over the RSS before the fit), held-out reconstruction MSE on
  10,000 rows of another seed;
* **transform** of a ``--transform-rows`` x 784 lazy Dask array: rows per
  second (generation of the blocks on the workers included) against
  ``transform`` of an in-memory array in this process, and each worker's peak
  RSS;
* **held-out quality over seeds**: the fit from a Dask array against the
  in-memory fit of the same rows, ``--quality-rows`` x 784 (training rows
  still above the size read once into memory, so streamed), for
  ``random_state`` 0, 1 and 2: mean +- std of the held-out MSE of each;
* a **GridSearchCV** under ``joblib.parallel_backend("dask")`` against the
  same search run locally (``n_jobs=1``), once with this process's BLAS
  threads and once with one BLAS thread, as each worker runs (Dask's nanny
  sets ``OPENBLAS_NUM_THREADS=1``): are the ``cv_results_`` scores identical?

Writes ``cluster.json`` and ``cluster.md`` into ``--out``.
"""

import argparse
import importlib.util
import json
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks import _env
from benchmarks.speed import _epoch_timer

FEATURES = 784
CHUNK = 10_000
LATENT = 16


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.cluster",
        description="Dask arrays on a 2-worker LocalCluster against memory.",
    )
    parser.add_argument("--fit-rows", type=int, default=None)
    parser.add_argument("--transform-rows", type=int, default=None)
    parser.add_argument("--quality-rows", type=int, default=None)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument("--out", default="benchmark-results", help="report folder")
    _env.add_verbose_flag(parser)
    args = parser.parse_args(argv)
    if args.fit_rows is None:
        args.fit_rows = 20_000 if args.quick else 200_000
    if args.transform_rows is None:
        args.transform_rows = 50_000 if args.quick else 1_000_000
    if args.quality_rows is None:
        args.quality_rows = 20_000 if args.quick else 50_000
    return args


def _block(block_id, rows, seed):
    """Rows of one block: the same for the same (seed, block), on any machine."""
    rng = np.random.default_rng([seed, block_id])
    weights = np.random.default_rng(seed=12345).standard_normal((LATENT, FEATURES))
    codes = rng.standard_normal((rows, LATENT)).astype(np.float32)
    X = np.tanh(codes @ (weights.astype(np.float32) / 4))
    X += 0.05 * rng.standard_normal(X.shape, dtype=np.float32)
    return X.astype(np.float32)


def lazy_rows(n_rows, seed):
    """A lazily computed ``n_rows`` x 784 float32 Dask array, chunks of 10,000."""
    import dask.array as da

    sizes = [CHUNK] * (n_rows // CHUNK) + ([n_rows % CHUNK] if n_rows % CHUNK else [])

    def make(block_info=None):
        info = block_info[None]
        return _block(info["chunk-location"][0], info["chunk-shape"][0], seed)

    return da.map_blocks(
        make,
        chunks=(tuple(sizes), (FEATURES,)),
        dtype=np.float32,
        meta=np.empty((0, 0), np.float32),
    )


def _rss_mb():
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024
    return fields


def _worker_rss_mb():
    return _rss_mb()["VmRSS"]


def _tensorflow_imported():
    import sys

    return "tensorflow" in sys.modules


def _worker_peak_mb():
    return _rss_mb()["VmHWM"]


def _reset_peak():
    """Start ``VmHWM`` again from the current RSS (Linux): the peak measured
    is then the transform's, not that of the fits run on the same workers."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _estimator(clock, epochs):
    from skae import AutoencoderTransformer

    return AutoencoderTransformer(
        n_components=16, epochs=epochs, random_state=0, callbacks=[clock]
    )


def run_fit(args, results):
    Xd = lazy_rows(args.fit_rows, seed=0)
    test = _block(10**6, 10_000, seed=1)
    size_mb = Xd.nbytes / 2**20
    epochs = 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # TensorFlow's start-up and first compilations are not the fit's.
        _estimator(_epoch_timer(), 1).fit(lazy_rows(2 * CHUNK, seed=9))
    before = _rss_mb()["VmRSS"]
    clock = _epoch_timer()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        on_dask = _estimator(clock, epochs).fit(Xd)
    dask_total = time.perf_counter() - start
    peak = _rss_mb()["VmHWM"]
    dask_epochs = clock.seconds

    X = Xd.compute()
    clock = _epoch_timer()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        in_memory = _estimator(clock, epochs).fit(X)
    memory_total = time.perf_counter() - start
    del X
    results["fit"] = {
        "rows": args.fit_rows,
        "array_mb": size_mb,
        "epochs": epochs,
        "dask_epoch_s": min(dask_epochs),
        "memory_epoch_s": min(clock.seconds),
        "epoch_ratio": min(dask_epochs) / min(clock.seconds),
        "dask_fit_s": dask_total,
        "memory_fit_s": memory_total,
        "client_rss_before_mb": before,
        "client_rss_growth_mb": peak - before,
        "heldout_mse_dask": -on_dask.score(test),
        "heldout_mse_memory": -in_memory.score(test),
        "solution_dask": on_dask.solution_,
        "solution_memory": in_memory.solution_,
    }
    return in_memory


def run_quality(args, results):
    """Held-out MSE of the Dask fit and the in-memory fit, over seeds."""
    from skae import _dask

    Xd = lazy_rows(args.quality_rows, seed=0)
    X = Xd.compute()
    test = _block(10**6, 10_000, seed=1)
    dask_mse, memory_mse = [], []
    for seed in range(args.seeds):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for data, scores in ((Xd, dask_mse), (X, memory_mse)):
                est = _estimator(_epoch_timer(), 2).set_params(random_state=seed)
                scores.append(-est.fit(data).score(test))
    results["quality"] = {
        "rows": args.quality_rows,
        "epochs": 2,
        "seeds": list(range(args.seeds)),
        # The training rows (9/10 of X) read a block at a time, not once.
        "streamed": not _dask.fits_in_memory(int(0.9 * args.quality_rows), FEATURES),
        "heldout_mse_dask": dask_mse,
        "heldout_mse_memory": memory_mse,
    }


def run_transform(args, results, client, est, key="transform"):
    Xd = lazy_rows(args.transform_rows, seed=2)
    # In memory: the same transform on 100,000 rows, best of 3.
    X = Xd[: min(100_000, args.transform_rows)].compute()
    est.transform(X[:1000])
    memory = []
    for _ in range(3):
        start = time.perf_counter()
        est.transform(X)
        memory.append(time.perf_counter() - start)
    memory_rate = len(X) / min(memory)
    del X
    # Each worker's start (TensorFlow, the estimator, compilation) first.
    est.transform(lazy_rows(4 * CHUNK, seed=9)).sum().compute()
    # The rows are generated on the workers, inside the timed graph; the
    # in-memory rate has its rows already. Their generation alone, timed the
    # same way, is taken off the cluster's time for the comparison.
    start = time.perf_counter()
    float(Xd.sum().compute())
    generation_s = time.perf_counter() - start
    client.run(_reset_peak)
    baseline = client.run(_worker_rss_mb)
    start = time.perf_counter()
    # Reduced on the workers: only the sums come back.
    total = float(est.transform(Xd).sum().compute())
    cluster_s = time.perf_counter() - start
    net_rate = args.transform_rows / max(cluster_s - generation_s, 1e-9)
    peaks = client.run(_worker_peak_mb)
    tensorflow = client.run(_tensorflow_imported)
    results[key] = {
        "rows": args.transform_rows,
        "array_mb": Xd.nbytes / 2**20,
        "memory_rows_per_s": memory_rate,
        "cluster_rows_per_s": args.transform_rows / cluster_s,
        "cluster_net_rows_per_s": net_rate,
        "slowdown": memory_rate / net_rate,
        "slowdown_with_generation": memory_rate / (args.transform_rows / cluster_s),
        "cluster_s": cluster_s,
        "generation_s": generation_s,
        # Since the warm-up: the fits before ran on the same workers.
        "worker_peak_rss_mb": max(peaks.values()),
        # After importing skae (TensorFlow) and the warm-up transform.
        "worker_rss_before_mb": max(baseline.values()),
        "worker_growth_mb": max(peaks[w] - baseline[w] for w in peaks),
        "checksum": total,
        "tensorflow_on_workers": any(tensorflow.values()),
    }


def run_search(results, client):
    import joblib
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV
    from threadpoolctl import threadpool_limits

    from skae import AutoencoderTransformer

    X = _block(0, 3000, seed=3)
    search = GridSearchCV(
        AutoencoderTransformer(epochs=5, random_state=0),
        {"n_components": [4, 8, 16]},
        cv=3,
        n_jobs=-1,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        local = clone(search).set_params(n_jobs=1).fit(X)
        local_s = time.perf_counter() - start
        with threadpool_limits(1, user_api="blas"):
            one_thread = clone(search).set_params(n_jobs=1).fit(X)
        start = time.perf_counter()
        with joblib.parallel_backend("dask"):
            remote = search.fit(X)
        cluster_s = time.perf_counter() - start
    keys = [k for k in local.cv_results_ if k.endswith("test_score")]

    def difference(a, b):
        return max(
            float(np.max(np.abs(a.cv_results_[k] - b.cv_results_[k]))) for k in keys
        )

    results["search"] = {
        "candidates": 3,
        "folds": 3,
        "local_blas_threads": _blas_threads(),
        "max_difference": difference(local, remote),
        "identical": difference(local, remote) == 0,
        "max_difference_one_blas_thread": difference(one_thread, remote),
        "identical_one_blas_thread": difference(one_thread, remote) == 0,
        "local_s": local_s,
        "cluster_s": cluster_s,
    }


def _blas_threads():
    from threadpoolctl import threadpool_info

    return max(
        (p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"),
        default=None,
    )


def main(argv=None):
    args = parse_args(argv)
    _env.quiet_tensorflow_start()
    import distributed

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {
        "environment": _env.environment(),
        "command": _env.command_line(),
        "date": _env.now(),
    }
    cluster = _cluster(distributed)
    with distributed.Client(cluster) as client:
        est = run_fit(args, results)
        run_quality(args, results)
        run_transform(args, results, client, est)
        run_search(results, client)
    cluster.close()
    if importlib.util.find_spec("jax") is not None:
        # The same transform on workers whose Keras runs on JAX: they never
        # import TensorFlow, whose runtime is most of a worker's memory.
        cluster = _cluster(distributed, env={"KERAS_BACKEND": "jax"})
        with distributed.Client(cluster) as client:
            run_transform(args, results, client, est, key="transform_jax")
        cluster.close()
    (out / "cluster.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "cluster.md").write_text(report(results))
    print(report(results))
    return 0


def _cluster(distributed, env=None):
    """Two single-threaded worker processes on the loopback interface."""
    return distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=":0",
        memory_limit="3GiB",
        **({"env": env} if env else {}),
    )


def report(r):
    fit, tr, search = r["fit"], r["transform"], r["search"]
    load = r["environment"]["machine"].get("load_average")

    def hit(ok):
        return "met" if ok else "**missed**"

    epoch_target = (
        f"Dask within 2x: {hit(fit['epoch_ratio'] <= 2)} ({fit['epoch_ratio']:.2f}x)"
    )
    growth = fit["client_rss_growth_mb"]
    rss_target = f"< 400 MB and the array: {hit(growth < min(400, fit['array_mb']))}"
    rate_target = f"within 1.5x: {hit(tr['slowdown'] <= 1.5)} ({tr['slowdown']:.2f}x)"
    peak = tr["worker_peak_rss_mb"]
    mse = (fit["heldout_mse_dask"], fit["heldout_mse_memory"])

    return f"""# Dask on a 2-worker LocalCluster

`{r["command"]}`, {r["date"]}; load average at the start: {load}.
Two single-threaded worker processes on 127.0.0.1; the client (this process)
trains. Timings: one run each, seed 0, indicative to +-10% on this shared
machine; held-out quality: {len(r["quality"]["seeds"])} seeds.

## Fit from a lazily computed Dask array

{fit["rows"]:,} x 784 float32 ({fit["array_mb"]:.0f} MB), chunks of 10,000
rows generated on the workers; {fit["epochs"]} epochs, `n_components=16`.

| | Dask array | in memory | target |
|---|---|---|---|
| epoch (s, best) | {fit["dask_epoch_s"]:.1f} | {fit["memory_epoch_s"]:.1f} \
| {epoch_target} |
| whole fit (s) | {fit["dask_fit_s"]:.1f} | {fit["memory_fit_s"]:.1f} | |
| client RSS growth (MB) | {growth:.0f} | | {rss_target} |
| held-out MSE (10k rows) | {mse[0]:.5f} | {mse[1]:.5f} | see below |
| solution | {fit["solution_dask"]} | {fit["solution_memory"]} | |

Each block is computed once per pass (statistics, PCA start, each epoch,
the validation rows once): `tests/test_dask.py` counts it.
{_quality_rows(r)}
## Transform

{tr["rows"]:,} x 784 float32 ({tr["array_mb"]:.0f} MB), lazily generated on
the workers, reduced there. The in-memory rate has its rows already; the
cluster's generation of them alone ({tr["generation_s"]:.1f} s, timed the same
way) is taken off its time for the comparison.

| | rows/s | target |
|---|---|---|
| in memory, this process (2 BLAS threads) | {tr["memory_rows_per_s"]:,.0f} | |
| 2-worker LocalCluster, generation included | {tr["cluster_rows_per_s"]:,.0f} \
| {tr["slowdown_with_generation"]:.2f}x |
| 2-worker LocalCluster, transform | {tr["cluster_net_rows_per_s"]:,.0f} \
| {rate_target} |
| worker peak RSS (during the transform) | {peak:.0f} MB | < 1 GB: {hit(peak < 1024)} |
| worker RSS after warm-up | {tr["worker_rss_before_mb"]:.0f} MB | |
| worker peak growth | {tr["worker_growth_mb"]:.0f} MB | |

TensorFlow imported on the workers: {tr["tensorflow_on_workers"]}. The
dense networks run on the workers as NumPy matrix products: what is shipped
to them is `skae._forward.Forward` (the scaling and a copy of the weights),
whose module imports neither Keras nor TensorFlow, whose runtime alone holds
about 900 MB (`python -c "import keras"` on this machine).
{_jax_rows(r)}
## GridSearchCV under `joblib.parallel_backend("dask")`

{search["candidates"]} candidates x {search["folds"]} folds, 3,000 rows;
{search["local_s"]:.1f} s locally, {search["cluster_s"]:.1f} s on the cluster.

| local run (`n_jobs=1`) | `cv_results_` test scores identical | largest difference |
|---|---|---|
| one BLAS thread, as each worker | {search["identical_one_blas_thread"]} \
| {search["max_difference_one_blas_thread"]:.3g} |
| this process's {search["local_blas_threads"]} BLAS threads \
| {search["identical"]} | {search["max_difference"]:.3g} |

Target (identical to the local run): \
{hit(search["identical_one_blas_thread"])} with the local run on one BLAS
thread per process, as the workers run (Dask's nanny sets
`OPENBLAS_NUM_THREADS=1` in each worker). The scores are float32 matrix
products, which OpenBLAS rounds differently on one thread and on two; when
the one-thread run is identical, the networks trained here (TensorFlow on
this process's threads) and on the workers (one thread each) were the same,
and any difference with this process's threads is that rounding in the
scoring, not a different fit.
"""


def _quality_rows(r):
    q = r["quality"]
    dask_mse, memory_mse = (
        np.array(q["heldout_mse_dask"]),
        np.array(q["heldout_mse_memory"]),
    )
    diff = dask_mse - memory_mse
    noise = max(dask_mse.std(), memory_mse.std())
    within = abs(diff.mean()) <= noise
    streamed = (
        "the training rows streamed a block at a time"
        if q["streamed"]
        else "the training rows small enough to be read once"
    )
    rows = "\n".join(
        f"| {s} | {a:.5f} | {b:.5f} | {a - b:+.5f} |"
        for s, a, b in zip(q["seeds"], dask_mse, memory_mse, strict=True)
    )
    return f"""
Held-out quality over seeds: {q["rows"]:,} rows ({streamed}), {q["epochs"]}
epochs, `random_state` {", ".join(map(str, q["seeds"]))}; the same rows and
the same 10,000 held-out rows for both fits.

| seed | Dask array | in memory | difference |
|---|---|---|---|
{rows}
| mean +- std | {dask_mse.mean():.5f} +- {dask_mse.std():.5f} \
| {memory_mse.mean():.5f} +- {memory_mse.std():.5f} \
| {diff.mean():+.5f} +- {diff.std():.5f} |

Target (equal to the in-memory fit of the same rows): \
{"met" if within else "**missed**"}: the mean difference is \
{"within" if within else "beyond"} the seed-to-seed spread (std) of either fit.
"""


def _jax_rows(r):
    """The transform on workers running Keras on JAX, when it was measured."""
    tr = r.get("transform_jax")
    if tr is None:
        return "\nJAX is not installed: no run with workers on JAX.\n"
    peak = tr["worker_peak_rss_mb"]
    verdict = "met" if peak < 1024 else "**missed**"
    return f"""
The same transform with `KERAS_BACKEND=jax` on the workers only (the
estimator fitted above under TensorFlow, unpickled there; see the backends
page of the user guide):

| | workers on JAX | target |
|---|---|---|
| rows/s, transform (generation taken off) \
| {tr["cluster_net_rows_per_s"]:,.0f} | within 1.5x: {tr["slowdown"]:.2f}x |
| worker peak RSS (during the transform) | {peak:.0f} MB | < 1 GB: {verdict} |
| worker RSS after warm-up | {tr["worker_rss_before_mb"]:.0f} MB | |
| worker peak growth | {tr["worker_growth_mb"]:.0f} MB | |

TensorFlow imported on the workers: {tr["tensorflow_on_workers"]}. Networks
the NumPy path cannot run (convolutions) ship the estimator and its Keras
models: those workers import Keras, on their own backend, and no longer
TensorFlow on JAX (a worker passing the estimator on to another sent its
pickle's bytes, not its Keras models pickled again, which imported
TensorFlow: `keras/src/saving/serialization_lib.py`, `tf.available`).
"""


if __name__ == "__main__":
    raise SystemExit(main())
