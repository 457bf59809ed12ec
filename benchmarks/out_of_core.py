"""``python -m benchmarks.out_of_core``: memory while fitting data that stays on disk.

Writes a float32 ``.npy`` file of MNIST-shaped rows (784 features) several
times larger than what the network needs, opens it as a read-only
:class:`numpy.memmap` and fits :class:`skae.AutoencoderTransformer` on it,
sampling the process' memory every 50 ms from ``/proc/self/status``
(Linux): ``RssAnon`` is memory the process owns (arrays, TensorFlow's
buffers); ``RssFile`` counts pages of mapped files currently in RAM, which
the kernel drops under pressure, so it is reported apart. The same is done for
``transform`` over the whole file, and for a scipy.sparse CSR matrix of the
same rows, densified one batch at a time.

Writes ``out_of_core.json`` and ``out_of_core.md`` into ``--out``.
"""

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks import _env


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.out_of_core",
        description="Resident memory while fitting a memmap larger than needed.",
    )
    parser.add_argument(
        "--rows",
        type=int,
        default=None,
        help="rows in the file (default: 400,000; 20,000 with --quick)",
    )
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument("--dir", default=None, help="where to write the data file")
    parser.add_argument("--out", default="benchmark-results", help="report folder")
    _env.add_verbose_flag(parser)
    args = parser.parse_args(argv)
    if args.rows is None:
        args.rows = 20_000 if args.quick else 400_000
    return args


def _status():
    fields = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                    fields[key] = int(value.split()[0]) / 1024  # MiB
    except OSError:
        pass
    return fields


class Sampler:
    """Peak RssAnon / RssFile / VmRSS over a block, sampled every 50 ms."""

    def __enter__(self):
        self.peak = _status()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self.start = time.perf_counter()
        return self

    def _run(self):
        while not self._stop.wait(0.05):
            for key, value in _status().items():
                self.peak[key] = max(self.peak.get(key, 0), value)

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        self._stop.set()
        self._thread.join()
        for key, value in _status().items():
            self.peak[key] = max(self.peak.get(key, 0), value)


def _write_rows(path, n_rows, n_features, seed=0):
    """MNIST-like float32 rows: blobs of ink on a black background, in pieces."""
    rng = np.random.RandomState(seed)
    mm = np.lib.format.open_memmap(path, "w+", np.float32, (n_rows, n_features))
    prototypes = (rng.rand(10, n_features) > 0.8).astype(np.float32)
    for start in range(0, n_rows, 20_000):
        stop = min(start + 20_000, n_rows)
        labels = rng.randint(10, size=stop - start)
        noise = rng.rand(stop - start, n_features).astype(np.float32)
        mm[start:stop] = np.clip(prototypes[labels] * 0.8 + 0.3 * noise - 0.1, 0, 1)
    mm.flush()
    del mm


def main(argv=None):
    args = parse_args(argv)
    import scipy.sparse as sp

    from skae import AutoencoderTransformer

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n_features = 784
    results = {"rows": args.rows, "features": n_features, "epochs": args.epochs}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = os.path.join(tmp, "rows.npy")
        _write_rows(path, args.rows, n_features)
        X = np.load(path, mmap_mode="r")
        results["file_mb"] = X.nbytes / 2**20
        est = AutoencoderTransformer(
            hidden_layer_sizes=(128,), epochs=args.epochs, random_state=0
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # TensorFlow's own start-up memory is not the fit's.
            AutoencoderTransformer(hidden_layer_sizes=(4,), epochs=1).fit(
                np.asarray(X[:256])
            )
            results["before_mb"] = _status()
            with Sampler() as fit:
                est.fit(X)
            with Sampler() as transform:
                Z = est.transform(X)
        results["fit"] = {"seconds": fit.seconds, "peak_mb": fit.peak}
        results["transform"] = {"seconds": transform.seconds, "peak_mb": transform.peak}
        results["weights_mb"] = (
            sum(w.size for w in est.encoder_.get_weights() + est.decoder_.get_weights())
            * 4
            / 2**20
        )
        results["codes_finite"] = bool(np.isfinite(Z).all())
        del Z

        # Sparse: the same rows with small values dropped, as CSR.
        n_sparse = min(args.rows, 100_000)
        pieces = [
            sp.csr_matrix(np.where(X[s : s + 10_000] > 0.5, X[s : s + 10_000], 0))
            for s in range(0, n_sparse, 10_000)
        ]
        S = sp.vstack(pieces, format="csr")
        sparse_mb = (S.data.nbytes + S.indices.nbytes + S.indptr.nbytes) / 2**20
        results["sparse"] = {
            "rows": n_sparse,
            "density": S.nnz / (S.shape[0] * S.shape[1]),
            "csr_mb": sparse_mb,
            "dense_mb": S.shape[0] * S.shape[1] * 4 / 2**20,
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Sampler() as sfit:
                est_s = AutoencoderTransformer(
                    hidden_layer_sizes=(128,), epochs=args.epochs, random_state=0
                ).fit(S)
        results["sparse"]["fit"] = {"seconds": sfit.seconds, "peak_mb": sfit.peak}
        results["sparse"]["score"] = est_s.score(S[:5000])
        del X
    (out / "out_of_core.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "out_of_core.md").write_text(report(results, argv))
    print(report(results, argv))
    return 0


def report(r, argv):
    before = r["before_mb"]
    lines = [
        "# Out-of-core fit",
        "",
        "- command: `python -m benchmarks.out_of_core "
        + " ".join(argv if argv is not None else sys.argv[1:])
        + "`",
        f"- data: {r['rows']} rows x {r['features']} float32 features in a .npy "
        f"file, {r['file_mb']:.0f} MiB, opened with mmap_mode='r'",
        f"- network: hidden_layer_sizes=(128,), n_components=2, epochs="
        f"{r['epochs']}; weights {r['weights_mb']:.2f} MiB",
        f"- before fit (TensorFlow loaded): RssAnon {before.get('RssAnon', 0):.0f} "
        f"MiB, RssFile {before.get('RssFile', 0):.0f} MiB (mostly TensorFlow's "
        f"libraries), VmRSS {before.get('VmRSS', 0):.0f} MiB",
        "",
        "| step | seconds | peak RssAnon MiB | peak RssFile MiB | peak VmRSS MiB |",
        "|:--|--:|--:|--:|--:|",
    ]
    for name in ("fit", "transform"):
        peak = r[name]["peak_mb"]
        lines.append(
            f"| memmap {name} | {r[name]['seconds']:.1f} | "
            f"{peak.get('RssAnon', 0):.0f} | {peak.get('RssFile', 0):.0f} | "
            f"{peak.get('VmRSS', 0):.0f} |"
        )
    s = r["sparse"]
    peak = s["fit"]["peak_mb"]
    lines.append(
        f"| sparse CSR fit ({s['rows']} rows) | {s['fit']['seconds']:.1f} | "
        f"{peak.get('RssAnon', 0):.0f} | {peak.get('RssFile', 0):.0f} | "
        f"{peak.get('VmRSS', 0):.0f} |"
    )
    lines += [
        "",
        f"Sparse input: density {s['density']:.3f}, CSR {s['csr_mb']:.0f} MiB "
        f"(dense it would be {s['dense_mb']:.0f} MiB).",
        "",
        "RssAnon is what the process holds; RssFile counts the file's pages "
        "currently cached in RAM through the mapping, which the kernel can drop.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
