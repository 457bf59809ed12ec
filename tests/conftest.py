import numpy as np
import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    # A test module may name parametrized cases that belong to ``-m slow``
    # (``is_slow_check(estimator, check)``); marking them here, before the
    # ``-m "not slow"`` selection runs, keeps them out of the default run.
    for item in items:
        is_slow = getattr(getattr(item, "module", None), "is_slow_check", None)
        params = getattr(getattr(item, "callspec", None), "params", {})
        if (
            is_slow
            and "check" in params
            and is_slow(params["estimator"], params["check"])
        ):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def memmap_of(tmp_path):
    """Write an array to a .npy file and open it read-only, as a user's memmap."""

    def memmap(X, dtype=np.float64):
        path = tmp_path / "X.npy"
        mm = np.lib.format.open_memmap(path, "w+", dtype, X.shape)
        mm[:] = X
        mm.flush()
        return np.load(path, mmap_mode="r")

    return memmap
