"""Helpers every layer uses: warnings that point at the user's code, number checks."""

import os
import sys
from numbers import Integral, Real

import joblib
import sklearn

# Frames in these folders are skae's own or the wrappers between a user's call and
# skae (sklearn's ``_fit_context``, ``fit_transform``, pipelines, searches).
_INTERNAL_DIRS = tuple(
    os.path.dirname(os.path.abspath(path)) + os.sep
    for path in (__file__, sklearn.__file__, joblib.__file__)
)


def user_stacklevel():
    """``stacklevel`` for ``warnings.warn`` that points at the user's own code.

    Counts the frames, starting at the function that calls this one, up to the
    first frame outside skae, scikit-learn and joblib: a fixed ``stacklevel``
    would point at scikit-learn's ``_fit_context`` wrapper for ``fit`` and at yet
    another line for ``fit_transform`` or a ``Pipeline``.
    """
    frame = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(_INTERNAL_DIRS):
        frame = frame.f_back
        level += 1
    return level


def is_positive_int(value):
    """Whether ``value`` is an integer >= 1; bool, though an Integral, is not."""
    return (
        isinstance(value, Integral) and not isinstance(value, bool) and bool(value >= 1)
    )


def is_fraction(n_components):
    """Whether ``n_components`` asks for a fraction of variance (a non-int real)."""
    return isinstance(n_components, Real) and not isinstance(n_components, Integral)
