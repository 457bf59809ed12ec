"""Pipelines and other scikit-learn objects holding skae estimators, saved safely.

A composite file holds the object with each skae estimator swapped for an
:class:`EstimatorSlot`, written by skops (whose loader builds only types it
trusts: scikit-learn's estimators, NumPy's arrays, plain data), and each skae
estimator in its own ``.skae`` member. Nothing is pickled: an object that skops
could only store as an untrusted type is refused at save time, by name, rather
than written as something :func:`load` would refuse.
"""

import contextvars
import copy
import numbers

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

OBJECT = "object.skops"
_SLOT_TYPE = "skae._composite.EstimatorSlot"
# The skae estimators of the file being loaded, for EstimatorSlot.__deepcopy__.
_LOADED = contextvars.ContextVar("skae_loaded_estimators")


class EstimatorSlot:
    """Where a skae estimator sat in a saved object.

    A fitted one is ``index``, its place among the file's ``.skae`` members;
    an unfitted one (a ColumnTransformer's template, a search's estimator) is
    only its class's name and parameters, which skops stores as plain data.
    """

    def __init__(self, index=None, class_name=None, params=None):
        self.index = index
        self.class_name = class_name
        self.params = params

    def __deepcopy__(self, memo):
        # The loaded object is deep-copied once with every slot resolved: the
        # copy handles tuples, dicts and shared references as they were.
        estimators, classes = _LOADED.get()
        if self.index is None:
            cls = classes.get(self.class_name)
            if cls is None or not isinstance(self.params, dict):
                raise _BadSlot(f"a slot of class {self.class_name!r}")
            try:
                return cls(**self.params)
            except TypeError as exc:
                raise _BadSlot(f"a slot with parameters {exc}") from None
        index = self.index
        if (
            not isinstance(index, numbers.Integral)
            or isinstance(index, bool)
            or not 0 <= index < len(estimators)
        ):
            raise _BadSlot(f"a slot with index {index!r}")
        return estimators[index]


class _BadSlot(ValueError):
    """A slot that names no estimator of the file."""


def _skops():
    try:
        import skops.io
    except ImportError as exc:
        raise ImportError(
            "Saving or loading a scikit-learn object that holds skae estimators "
            "(a Pipeline, a ColumnTransformer, ...) needs skops: pip install "
            '"skae[pipelines]" (or pip install skops).'
        ) from exc
    return skops.io


def walk(obj, leaf=lambda value: False):
    """Yield ``(path, value)`` for ``obj`` and everything reachable from it.

    Paths read as Python (``steps[1][1]``, ``.transformers_[0][1]``) so that an
    error can say where in the user's object a value sits. Each object is
    visited once, through the first path found; what ``leaf`` accepts is
    yielded but not entered (a skae estimator: its Keras models are thousands
    of objects, none of which skops will see).
    """
    seen = set()
    stack = [("", obj)]
    while stack:
        path, value = stack.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        yield path, value
        children = []
        if leaf(value):
            pass
        elif isinstance(value, dict):
            children = [(f"{path}[{key!r}]", item) for key, item in value.items()]
        elif isinstance(value, (list, tuple)):
            children = [(f"{path}[{i}]", item) for i, item in enumerate(value)]
        elif isinstance(value, (set, frozenset)):
            children = [(f"{path}{{...}}", item) for item in value]
        elif isinstance(value, np.ndarray):
            if value.dtype == object:
                children = [(f"{path}[...]", item) for item in value.ravel()]
        elif hasattr(value, "__dict__") and not isinstance(value, type):
            children = [(f"{path}.{name}", item) for name, item in vars(value).items()]
        stack.extend(reversed(children))


def split(obj, is_skae_estimator):
    """``(skops bytes, estimators)``: ``obj`` with its skae estimators slotted out.

    Raises TypeError naming what skops could not store as a trusted type.
    """
    if not isinstance(obj, BaseEstimator):
        raise TypeError(
            "Expected a skae estimator or a scikit-learn estimator holding them "
            "(a Pipeline, a ColumnTransformer, ...). Received: estimator of type "
            f"{type(obj).__qualname__}"
        )
    sio = _skops()
    estimators, memo = [], {}
    for _, value in walk(obj, is_skae_estimator):
        if not is_skae_estimator(value):
            continue
        try:
            check_is_fitted(value)
        except NotFittedError:
            memo[id(value)] = EstimatorSlot(
                class_name=type(value).__name__, params=value.get_params(deep=False)
            )
        else:
            memo[id(value)] = EstimatorSlot(len(estimators))
            estimators.append(value)
    # deepcopy with the estimators pre-mapped to their slots: the user's object
    # is never modified, and the skae estimators are not copied.
    slotted = copy.deepcopy(obj, memo)
    data = sio.dumps(slotted)
    untrusted = sorted(set(sio.get_untrusted_types(data=data)) - {_SLOT_TYPE})
    if untrusted:
        where = {
            path
            for path, value in walk(obj, is_skae_estimator)
            if _names(value) & set(untrusted)
        }
        where = sorted(f"estimator{path}" if path else "estimator" for path in where)
        raise TypeError(
            "Expected scikit-learn estimators, skae estimators and plain data, "
            "which load without running code. Received: estimator of type "
            f"{type(obj).__qualname__} holding {untrusted} at "
            f"{where or 'an inner value'}; such an object can only be pickled "
            "(joblib.dump), which runs code on load."
        )
    return data, estimators


def _names(value):
    """The names skops may give ``value``: its type's, or its own (a function)."""
    names = {f"{type(value).__module__}.{type(value).__qualname__}"}
    module = getattr(value, "__module__", None)
    for attribute in ("__qualname__", "__name__"):
        if isinstance(getattr(value, attribute, None), str):
            names.add(f"{module}.{getattr(value, attribute)}")
    return names


def join(data, estimators, classes, name):
    """The object of :func:`split`'s ``data`` with ``estimators`` back in.

    ``classes`` are the skae estimator classes by name, for unfitted slots;
    ``name`` names the file in errors. Raises ValueError for anything but the
    trusted types and slots that index ``estimators``.
    """
    sio = _skops()
    try:
        untrusted = set(sio.get_untrusted_types(data=data))
    except Exception as exc:  # skops parses the member: any failure is damage.
        raise ValueError(
            f"Expected a readable {OBJECT}. Received: {name} ({exc!r})"
        ) from exc
    untrusted.discard(_SLOT_TYPE)
    if untrusted:
        raise ValueError(
            "Expected only scikit-learn estimators, skae estimators and plain "
            f"data. Received: {name} with types {sorted(untrusted)}, which loading "
            "could run code from; it was not written by skae.save."
        )
    token = _LOADED.set((list(estimators), dict(classes)))
    try:
        obj = sio.loads(data, trusted=[_SLOT_TYPE])
        obj = copy.deepcopy(obj)
    except _BadSlot as exc:
        raise ValueError(
            f"Expected slots of the file's estimators. Received: {name} with {exc}"
        ) from None
    except Exception as exc:
        raise ValueError(
            f"Expected a readable {OBJECT}. Received: {name} ({exc!r})"
        ) from exc
    finally:
        _LOADED.reset(token)
    return obj
