"""Helpers of every layer (``skae._utils``): number tests, warnings' stack level."""

import inspect
import os
import warnings

import numpy as np
import pytest

import skae
from skae._utils import is_fraction, is_positive_int, user_stacklevel


@pytest.mark.parametrize("value", [1, 2, np.int64(3), np.int32(1), 10**12])
def test_is_positive_int_is_true_for_integers_from_one(value):
    assert is_positive_int(value) is True


@pytest.mark.parametrize(
    "value", [0, -1, np.int64(0), True, False, np.bool_(True), 1.0, 2.5, "1", None]
)
def test_is_positive_int_is_false_for_the_rest(value):
    assert is_positive_int(value) is False


@pytest.mark.parametrize("value", [0.5, 0.99, np.float64(0.9), np.float32(0.25), 1.0])
def test_is_fraction_is_true_for_reals_that_are_not_ints(value):
    # A real that is not an int asks for a fraction of variance; the range
    # (0, 1) is the parameter constraints' to check.
    assert is_fraction(value) is True


@pytest.mark.parametrize("value", [1, 2, np.int64(2), True, None, "0.5"])
def test_is_fraction_is_false_for_ints_and_the_rest(value):
    assert is_fraction(value) is False


def _as_if_in_skae(source):
    """The functions ``source`` defines, as if they were skae's own code."""
    path = os.path.join(os.path.dirname(skae.__file__), "_not_a_real_module.py")
    namespace = {"warnings": warnings, "user_stacklevel": user_stacklevel}
    exec(compile(source, path, "exec"), namespace)
    return namespace


SKAE_CODE = """
def inner():
    warnings.warn("from skae", UserWarning, stacklevel=user_stacklevel())

def outer():
    inner()
"""


def test_user_stacklevel_points_at_the_first_caller_outside_skae():
    outer = _as_if_in_skae(SKAE_CODE)["outer"]
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        line = inspect.currentframe().f_lineno + 1
        outer()
    assert len(record) == 1
    # Not inner's line, nor outer's: the test's own call.
    assert (record[0].filename, record[0].lineno) == (__file__, line)


def test_user_stacklevel_is_one_for_a_call_from_user_code():
    assert user_stacklevel() == 1
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        line = inspect.currentframe().f_lineno + 1
        warnings.warn("here", UserWarning, stacklevel=user_stacklevel())
    assert (record[0].filename, record[0].lineno) == (__file__, line)
