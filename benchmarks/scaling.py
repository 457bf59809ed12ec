"""Cost as work grows: fit time and held-out quality against the number of rows.

Run ``python -m benchmarks.scaling --out docs/benchmark-report``. It fits the
plain autoencoder (defaults), the structured one (the main benchmark's
settings) and UMAP on n = 5k ... 100k rows of 784 pixels, scores each on the
same 2,000 held-out MNIST images, and fits ``time = c * n ** b`` to each
method's times: ``b`` is its growth exponent. The report says where the
autoencoder's fit becomes cheaper than UMAP's, if it does in the range.

Only MNIST's 10,000 test images are on this machine, so rows beyond the
8,000 training originals are deformed copies of them (a random rotation,
scale, shear and shift, then a smooth elastic displacement, as in
Simard et al. 2003), labelled as their original. No copy of a held-out image
is ever trained on.
"""

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage
from sklearn.model_selection import train_test_split

from benchmarks import _env
from benchmarks._data import BenchmarkData, find_mnist, portable_source
from benchmarks._suite import run_one, umap_available, warm_up

SIZES = (5_000, 10_000, 20_000, 50_000, 100_000)
QUICK_SIZES = (300, 600)
N_HELD_OUT = 2_000
# PCA shows how hard the rows are at each size, whatever the training.
METHODS = ("autoencoder", "structured", "umap", "pca")
LABELS = {
    "pca": "PCA",
    "autoencoder": "skae, defaults",
    "structured": "skae, structure term",
    "umap": "UMAP",
}


def deformed(images, n_copies, rng):
    """``(copies, originals)``: ``n_copies`` deformed rows of ``images`` (n, 28, 28).

    Each copy takes a random original, applies an affine map (rotation of at
    most 10 degrees, scale 0.92-1.08, shear up to 0.1, shift up to 1.5 pixels)
    and an elastic displacement field (Gaussian-smoothed noise, sigma 4,
    amplitude 1.5 pixels), interpolated linearly; pixels stay in [0, 1].
    """
    n, h, w = images.shape
    originals = rng.integers(n, size=n_copies)
    out = np.empty((n_copies, h, w), np.float32)
    grid = np.stack(np.meshgrid(np.arange(h), np.arange(w), indexing="ij"))
    centre = np.array([(h - 1) / 2, (w - 1) / 2])[:, None, None]
    for i, row in enumerate(originals):
        angle = np.deg2rad(rng.uniform(-10, 10))
        cos, sin = np.cos(angle), np.sin(angle)
        shear = np.array([[1.0, rng.uniform(-0.1, 0.1)], [0.0, 1.0]])
        matrix = np.array([[cos, -sin], [sin, cos]]) @ shear / rng.uniform(0.92, 1.08)
        shift = rng.uniform(-1.5, 1.5, size=2)[:, None, None]
        coords = np.einsum("ij,jhw->ihw", matrix, grid - centre) + centre - shift
        field = ndimage.gaussian_filter(rng.uniform(-1, 1, (2, h, w)), (0, 4, 4))
        coords += field * (1.5 / max(np.abs(field).max(), 1e-12))
        out[i] = ndimage.map_coordinates(images[row], coords, order=1, cval=0.0)
    return np.clip(out, 0.0, 1.0).reshape(n_copies, h * w), originals


class Pool:
    """MNIST's held-out images and the training rows every size draws from.

    Sizes up to the 8,000 training originals are stratified subsets of them;
    larger sizes add the first ``n - 8000`` deformed copies, so each size
    holds every smaller one's copies.
    """

    def __init__(self, bunch, max_rows, seed=0):
        X = bunch.data.astype(np.float32) / np.float32(255)
        y = np.asarray(bunch.target)
        train, test = train_test_split(
            np.arange(len(y)), test_size=N_HELD_OUT, stratify=y, random_state=0
        )
        train = np.sort(train)
        self.X_test, self.y_test = X[test], y[test]
        self.X_base, self.y_base = X[train], y[train]
        n_extra = max(max_rows - len(train), 0)
        images = self.X_base.reshape(-1, 28, 28)
        self.X_extra, originals = deformed(images, n_extra, np.random.default_rng(seed))
        self.y_extra = self.y_base[originals]

    def data(self, n_train):
        n_base = len(self.y_base)
        if n_train < n_base:
            keep, _ = train_test_split(
                np.arange(n_base),
                train_size=n_train,
                stratify=self.y_base,
                random_state=0,
            )
            keep = np.sort(keep)
            X_train, y_train = self.X_base[keep], self.y_base[keep]
        else:
            n_extra = n_train - n_base
            X_train = np.concatenate([self.X_base, self.X_extra[:n_extra]])
            y_train = np.concatenate([self.y_base, self.y_extra[:n_extra]])
        return BenchmarkData(
            name="mnist",
            X_train=X_train,
            X_test=self.X_test,
            y_train=y_train,
            y_test=self.y_test,
            image_shape=(28, 28),
        )


def power_law(sizes, seconds):
    """``(c, b)`` of the least-squares fit ``log t = log c + b log n``, or None."""
    points = [
        (n, t) for n, t in zip(sizes, seconds, strict=True) if t is not None and t > 0
    ]
    if len(points) < 2:
        return None
    n, t = np.log(np.array(points)).T
    b, log_c = np.polyfit(n, t, 1)
    return float(np.exp(log_c)), float(b)


def growth_exponent(sizes, seconds):
    """``b`` of :func:`power_law`, or None."""
    law = power_law(sizes, seconds)
    return None if law is None else law[1]


def extrapolated_crossover(ours, theirs):
    """Where two power laws ``(c, b)`` cross, if ours grows more slowly."""
    (c1, b1), (c2, b2) = ours, theirs
    if b1 >= b2 or c1 <= c2:
        return None
    return float(np.exp(np.log(c1 / c2) / (b2 - b1)))


def crossover(sizes, ours, theirs):
    """The smallest n where ``ours`` is at most ``theirs``, interpolated in log-log.

    Returns ``(n, how)``: ``how`` says "from the start", "between a and b",
    or "not in the range" (n is None then).
    """
    ratio = [np.log(a / b) for a, b in zip(ours, theirs, strict=True)]
    if ratio[0] <= 0:
        return sizes[0], "from the smallest size"
    for (n0, r0), (n1, r1) in itertools.pairwise(zip(sizes, ratio, strict=True)):
        if r1 <= 0:
            # Linear in log n between the two measured sizes.
            x = np.log(n0) + (np.log(n1) - np.log(n0)) * r0 / (r0 - r1)
            return round(float(np.exp(x))), f"between {n0:,} and {n1:,} rows"
    return None, "not in the measured range"


def run(args, progress):
    bunch = find_mnist(args.data_home)
    sizes = tuple(args.sizes)
    with_umap = not args.no_umap and umap_available()[0]
    methods = [m for m in METHODS if m != "umap" or with_umap]
    progress(f"making {max(sizes):,} rows (deformed copies beyond 8,000)")
    pool = Pool(bunch, max(sizes), seed=0)
    warm_up(methods, pool.data(min(sizes)))
    runs = []
    # Alternating methods at each size shares the machine's load between them.
    for n in sizes:
        data = pool.data(n)
        for method in methods:
            progress(f"n={n:,} {method}")
            run_, _ = run_one(method, data, 2, args.seed, epochs=args.epochs)
            m = run_["metrics"]
            runs.append(
                {
                    "n_train": n,
                    "method": method,
                    "fit_seconds": m["fit_seconds"],
                    "knn_accuracy": m["knn_accuracy"],
                    "trustworthiness": m["trustworthiness"],
                    "silhouette": m["silhouette"],
                    "reconstruction_mse": m["reconstruction_mse"],
                    "n_iter": run_["details"].get("n_iter_"),
                }
            )
            progress(
                f"  fit {m['fit_seconds']:.1f} s, kNN {m['knn_accuracy']:.3f}, "
                f"trust {m['trustworthiness']:.3f}"
            )
    summary = {}
    times = {m: [r["fit_seconds"] for r in runs if r["method"] == m] for m in methods}
    for method in methods:
        law = power_law(sizes, times[method])
        summary[method] = {
            "exponent": None if law is None else law[1],
            "power_law": law,
        }
    if "umap" in methods:
        for method in ("autoencoder", "structured"):
            n, how = crossover(sizes, times[method], times["umap"])
            summary[method]["overtakes_umap_at"] = n
            summary[method]["overtakes_umap"] = how
            laws = summary[method]["power_law"], summary["umap"]["power_law"]
            summary[method]["extrapolated_overtakes_umap_at"] = (
                None if n is not None or None in laws else extrapolated_crossover(*laws)
            )
    return {
        "command": _env.command_line(),
        "date": _env.now(),
        "machine": _env.machine(),
        "versions": _env.versions(),
        "data": {
            "source": portable_source(bunch.source),
            "held_out": N_HELD_OUT,
            "training_originals": len(pool.y_base),
            "copies": "deformed copies of the training originals beyond that",
        },
        "seed": args.seed,
        "epochs": args.epochs,
        "sizes": list(sizes),
        "runs": runs,
        "summary": summary,
    }


def render_markdown(result):
    sizes = result["sizes"]
    by = {(r["method"], r["n_train"]): r for r in result["runs"]}
    methods = [m for m in METHODS if any(r["method"] == m for r in result["runs"])]
    machine = result["machine"]
    lines = [
        "# skae scaling: fit time and held-out quality against rows",
        "",
        f"- date: {result['date']}",
        f"- command: `{result['command']}`",
        f"- machine: {machine['cpu_model']}, {machine['cpus_usable']} CPUs; "
        f"load average at the end {machine.get('load_average')}",
        f"- data: {result['data']['source']}; {result['data']['held_out']:,} "
        "held-out images (never trained on, nor their copies); training rows: "
        f"{result['data']['training_originals']:,} originals, then "
        f"{result['data']['copies']} (random affine map and elastic field)",
        f"- 2-D codes, seed {result['seed']}, one fit per cell: times are single "
        "measurements on a shared machine"
        + ("" if result["epochs"] is None else f"; epochs set to {result['epochs']}"),
        "",
        "Fit time in seconds (held-out 5-NN accuracy / trustworthiness):",
        "",
        "| rows | " + " | ".join(LABELS[m] for m in methods) + " |",
        "|---:|" + "---:|" * len(methods),
    ]
    for n in sizes:
        cells = []
        for m in methods:
            r = by.get((m, n))
            cells.append(
                "n/a"
                if r is None
                else f"{r['fit_seconds']:.1f} ({r['knn_accuracy']:.3f} / "
                f"{r['trustworthiness']:.3f})"
            )
        lines.append(f"| {n:,} | " + " | ".join(cells) + " |")
    lines += ["", "Growth of fit time, `t = c * n ** b`, least squares in log-log:", ""]
    for m in methods:
        s = result["summary"][m]
        exponent = "n/a" if s["exponent"] is None else f"{s['exponent']:.2f}"
        line = f"- {LABELS[m]}: b = {exponent}"
        if "overtakes_umap" in s:
            where = s["overtakes_umap"]
            if s["overtakes_umap_at"] is not None:
                where = f"at about {s['overtakes_umap_at']:,} rows ({where})"
            line += f"; fits faster than UMAP {where}"
            far = s.get("extrapolated_overtakes_umap_at")
            if far is not None and far > 100 * sizes[-1]:
                line += (
                    " (the fitted power laws cross only beyond "
                    f"{100 * sizes[-1]:,} rows: an extrapolation)"
                )
            elif far is not None:
                line += (
                    f" (the fitted power laws cross at about {far:,.0f} rows: an "
                    "extrapolation, not a measurement)"
                )
            elif s["overtakes_umap_at"] is None:
                line += " (nor do the fitted power laws cross beyond it)"
        lines.append(line)
    lines += [
        "",
        'The plain autoencoder\'s epochs (`epochs="auto"`) see 250,000 samples, '
        "and at least 20 epochs: its work grows with n only beyond 12,500 "
        "training rows. Rows beyond 8,000 are deformed copies, harder than the "
        "originals: every method's held-out kNN moves with them, PCA's column "
        "shows by how much for a fixed linear map.",
    ]
    return "\n".join(lines) + "\n"


def section(out, quick, progress):
    """Run the benchmark into ``out``; its table as a section of another report."""
    main(["--out", str(out), *(["--quick"] if quick else [])], progress=progress)
    text = (out / "scaling.md").read_text(encoding="utf-8")
    return text.replace("# skae scaling:", "## Cost as work grows:", 1)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scaling", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument(
        "--quick", action="store_true", help=f"smoke run: sizes {QUICK_SIZES}, 1 epoch"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--epochs", type=int, default=None, help="override the epochs (smoke runs)"
    )
    parser.add_argument("--no-umap", action="store_true", help="leave UMAP out")
    parser.add_argument("--data-home", default=None)
    parser.add_argument("--out", type=Path, default=None, help="report folder")
    _env.add_verbose_flag(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes = list(QUICK_SIZES)
        args.epochs = args.epochs or 1
    if sorted(set(args.sizes)) != args.sizes or min(args.sizes) < 100:
        parser.error(
            f"Expected increasing sizes of at least 100. Received: {args.sizes}"
        )
    return args


def main(argv=None, progress=None):
    args = parse_args(argv)
    start = time.perf_counter()

    def log(message):
        print(
            f"[{time.perf_counter() - start:7.1f}s] {message}",
            file=sys.stderr,
            flush=True,
        )

    result = run(args, progress or log)
    text = render_markdown(result)
    if progress is None:
        print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "scaling.json").write_text(json.dumps(result, indent=1) + "\n")
        (args.out / "scaling.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
