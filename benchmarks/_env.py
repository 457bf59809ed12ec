"""What the numbers were measured with: package versions and the machine."""

import datetime
import importlib.metadata
import os
import platform
import shlex
import sys

_PACKAGES = (
    "skae",
    "keras",
    "tensorflow",
    "scikit-learn",
    "numpy",
    "scipy",
    "umap-learn",
    "numba",
    "matplotlib",
)
# Thread-count variables change timings several-fold on a small machine.
_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)


def versions():
    """Installed versions of the packages that matter, None when missing."""
    found = {"python": platform.python_version()}
    for package in _PACKAGES:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found


def _cpuinfo_field(field):
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == field:
                    return value.strip()
    except OSError:
        pass
    return None


def _memory_gib():
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _load_average():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def machine():
    """Platform, CPU model and count, memory and thread settings."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": _cpuinfo_field("model name") or platform.processor() or "unknown",
        "cpu_flags_avx512f": (
            None
            if _cpuinfo_field("flags") is None
            else "avx512f" in _cpuinfo_field("flags").split()
        ),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "memory_gib": _memory_gib(),
        # Other processes' load skews timings; record it with them.
        "load_average": _load_average(),
        "thread_environment": {
            name: os.environ[name] for name in _THREAD_VARIABLES if name in os.environ
        },
    }


def environment():
    """Everything :func:`versions` and :func:`machine` report."""
    return {"versions": versions(), "machine": machine()}


def command_line():
    """The command as typed, e.g. ``python -m benchmarks --quick``."""
    argv = sys.argv[1:]
    program = sys.argv[0]
    if program.endswith("__main__.py") or program.endswith(".py"):
        # Under ``python -m`` argv[0] is the module's file path.
        module = sys.modules["__main__"].__spec__
        if module is not None:
            name = module.name.removesuffix(".__main__")
            return shlex.join(["python", "-m", name, *argv])
    return shlex.join([program, *argv])


def now():
    """Current local date and time, ISO 8601 with the UTC offset."""
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def quiet_tensorflow_start():
    """Import TensorFlow and find its devices with the C++ log lines hidden.

    TensorFlow 2.21 prints oneDNN, CUDA-stub and cuInit lines from C++ before
    any Python logging exists (``TF_CPP_MIN_LOG_LEVEL`` does not stop them), so
    the process's standard error is pointed at a file while it starts. What was
    hidden is printed after all if the start fails, so no error is lost. Later
    C++ info and warning lines (grappler's "Not handling type DT_DOUBLE" for
    every float64 function) obey ``TF_CPP_MIN_LOG_LEVEL``: 2 unless the user
    set it.
    """
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as hidden:
        os.dup2(hidden.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
        except BaseException:
            os.dup2(saved, 2)
            hidden.seek(0)
            sys.stderr.write(hidden.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def add_verbose_flag(parser):
    """``--verbose``: read by the package's import, before argparse runs."""
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show TensorFlow's start-up log lines (hidden by default)",
    )
