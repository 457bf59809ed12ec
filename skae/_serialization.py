"""The skae file format: writing and reading fitted estimators without pickle.

This module knows the format (see :mod:`skae.persistence` for what a file
holds) and nothing of the estimators: a class is saved and loaded by name once
it is :func:`register`-ed, and a file can only name a registered class, so it
can never make skae import a module of its choosing.
"""

import contextlib
import importlib.metadata
import io
import json
import math
import numbers
import os
import platform
import shutil
import stat
import tempfile
import warnings
import zipfile
import zlib

import keras
import numpy as np
import sklearn
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from . import _backend, _composite
from ._compat import seeded_python_random
from ._files import atomic_write, check_target, fspath
from ._utils import user_stacklevel
from ._version import __version__

#: Newest file layout this skae reads: 1, one estimator; 2, a scikit-learn
#: object holding estimators (a Pipeline...). Each file is written in the
#: oldest that holds it.
FORMAT_VERSION = 2

_FORMAT = "skae"
_HEADER = "skae.json"
# What a file's members may declare uncompressed, all together: this factor
# (Keras' own for its archives) times the file's size, or the floor. Trained
# weights deflate by a few percent, tiny models' HDF5 padding ~10x, a bomb ~1000x.
_MAX_EXPANSION = 100
_MIN_BUDGET = 4 * 2**20
# The header's own floor: parsed, JSON takes up to ~25 times its size.
_MIN_HEADER = 2**18
# Tags nest less than 10 deep in a real header; decoding recurses.
_MAX_DEPTH = 64
# Tag -> (folder, suffix) of the member it names.
_NPY = ("arrays/", ".npy")
_MEMBER_TAGS = {"__array__": _NPY, "__scalar__": _NPY}
_MEMBER_TAGS["__keras_model__"] = ("models/", ".keras")

# Estimator classes by name, and their checks; see register().
_CLASSES = {}
_CHECKS = {}


def register(cls, *, check=None):
    """Let :func:`save` write instances of ``cls`` and :func:`load` read them.

    :func:`load` calls ``check(estimator, names)`` on each estimator of ``cls``
    (or a subclass) it restores, ``names`` the fitted attributes in the file; it
    raises ValueError naming the first one no fit leaves. Kept by re-registering.
    """
    _CLASSES[cls.__name__] = cls
    if check is not None:
        _CHECKS[cls] = check
    return cls


def _estimator_classes():
    return dict(_CLASSES)


class _Unsupported(TypeError):
    """A value that is not plain data and so cannot be written without pickle."""


# -- encoding ----------------------------------------------------------------


class _Encoder:
    """Turn plain data into tagged JSON, collecting arrays and Keras models.

    Tags are one-key dicts (``{"__tuple__": [...]}``); every dict of the data is
    tagged too, so no user dict can pass for a tag.
    """

    def __init__(self):
        self.arrays = {}
        self.models = {}

    def encode(self, value, *, name, models):
        if value is None or isinstance(value, (bool, str)):
            return value
        # Before float: np.float64 subclasses float, and must come back as itself.
        if isinstance(value, np.ndarray | np.generic):
            return self._encode_array(value, name)
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            if math.isfinite(value):
                return value
            return {"__float__": repr(value)}
        if isinstance(value, tuple):
            return {"__tuple__": self._encode_items(value, name, models)}
        if isinstance(value, list):
            return self._encode_items(value, name, models)
        if isinstance(value, dict):
            if all(isinstance(key, str) for key in value):
                return {
                    "__dict__": {
                        key: self.encode(item, name=f"{name}[{key!r}]", models=models)
                        for key, item in value.items()
                    }
                }
            if all(_is_int_or_str(key) for key in value):
                # JSON keys are str only; n_components_scores_ is keyed by
                # code size.
                return {
                    "__items__": [
                        [
                            key if isinstance(key, str) else int(key),
                            self.encode(item, name=f"{name}[{key!r}]", models=models),
                        ]
                        for key, item in value.items()
                    ]
                }
            raise _Unsupported(f"{name} has keys that are neither int nor str")
        if isinstance(value, np.random.RandomState):
            state = value.get_state(legacy=True)
            return {"__random_state__": self.encode(state, name=name, models=False)}
        if models and isinstance(value, keras.Model):
            stem = name if name.isidentifier() else str(len(self.models))
            member = f"models/{stem}.keras"
            self.models[member] = value
            return {"__keras_model__": member}
        raise _Unsupported(
            f"{name} is a {type(value).__module__}.{type(value).__name__}"
        )

    def _encode_items(self, items, name, models):
        return [
            self.encode(item, name=f"{name}[{i}]", models=models)
            for i, item in enumerate(items)
        ]

    def _encode_array(self, value, name):
        if value.dtype == object:
            # sklearn's feature_names_in_: str objects, which .npy stores only
            # by pickling.
            items = value.ravel().tolist()
            if not all(isinstance(item, str) for item in items):
                raise _Unsupported(f"{name} is an object array of non-str values")
            return {"__str_array__": {"shape": list(value.shape), "items": items}}
        if value.dtype.hasobject:
            raise _Unsupported(f"{name} is an array with Python objects inside")
        member = f"arrays/{len(self.arrays)}.npy"
        buffer = io.BytesIO()
        np.save(buffer, value, allow_pickle=False)
        self.arrays[member] = buffer.getvalue()
        if isinstance(value, np.generic):
            return {"__scalar__": member}
        return {"__array__": member}


class _Decoder:
    """Invert :class:`_Encoder`; any malformed input raises ``_Corrupt``."""

    def __init__(self, arrays, models):
        self.arrays = arrays  # name -> bytes of the .npy member
        self.models = models

    def decode(self, value):
        if value is None or isinstance(value, (bool, str, int, float)):
            return value
        if isinstance(value, list):
            return [self.decode(item) for item in value]
        if not isinstance(value, dict):
            raise _Corrupt(f"an unexpected JSON value of type {type(value).__name__}")
        if len(value) != 1:
            raise _Corrupt(f"an unknown tag among {sorted(value)[:5]}")
        (tag, content), *_ = value.items()
        if tag == "__tuple__":
            if not isinstance(content, list):
                raise _Corrupt("a __tuple__ tag without a list")
            return tuple(self.decode(content))
        if tag == "__dict__":
            if not isinstance(content, dict):
                raise _Corrupt("a __dict__ tag without a dict")
            return {key: self.decode(item) for key, item in content.items()}
        if tag == "__items__":
            if not isinstance(content, list) or not all(
                isinstance(pair, list) and len(pair) == 2 and _is_int_or_str(pair[0])
                for pair in content
            ):
                raise _Corrupt("an __items__ tag without [int or str key, value] pairs")
            return {key: self.decode(item) for key, item in content}
        if tag == "__str_array__":
            items, shape = content.get("items"), content.get("shape")
            if not all(isinstance(item, str) for item in items):
                raise _Corrupt("a str array with values that are not str")
            array = np.empty(len(items), dtype=object)
            array[:] = items
            return array.reshape([int(n) for n in shape])
        if tag == "__float__":
            if content not in ("nan", "inf", "-inf"):
                raise _Corrupt(f"a non-finite float {content!r}")
            return float(content)
        if tag in ("__array__", "__scalar__"):
            array = np.load(io.BytesIO(self.arrays[content]), allow_pickle=False)
            return array[()] if tag == "__scalar__" else array
        if tag == "__keras_model__":
            return self.models[content]  # _references() saw every name
        if tag == "__random_state__":
            random_state = np.random.RandomState()
            random_state.set_state(self.decode(content))
            return random_state
        raise _Corrupt(f"an unknown tag {tag!r}")


def _is_int_or_str(key):
    return isinstance(key, (numbers.Integral, str)) and not isinstance(key, bool)


class _Corrupt(ValueError):
    """The file is not a well-formed skae file; turned into a ValueError naming it."""


class _Unsafe(ValueError):
    """A Keras model in the file holds Python code and safe_mode is on."""


# -- save -----------------------------------------------------------------------


def save(obj, path, *, overwrite=None):
    """Write a fitted, registered estimator, or a scikit-learn object holding
    them, to ``path``; see :func:`skae.persistence.save`."""
    classes = _estimator_classes()
    registered = _registered(obj)
    if not registered and isinstance(obj, tuple(classes.values())):
        # A subclass is not its registered parent: load would build the parent.
        raise TypeError(
            f"Expected a skae estimator, one of {sorted(classes)}. "
            f"Received: estimator of type {type(obj).__qualname__}"
        )
    if registered:
        check_is_fitted(obj)
    path = fspath(path)
    if overwrite is not None and not isinstance(overwrite, (bool, np.bool_)):
        raise TypeError(
            "Expected overwrite to be a bool or None. "
            f"Received: overwrite={overwrite!r}"
        )
    # Through a symbolic link: replace the file it points to, not the link;
    # checked before the work of serialising, to fail at once.
    target = os.path.realpath(path)
    check_target(target, path, overwrite)
    # Serialised before the target's folder is touched: a model Keras cannot
    # save leaves nothing behind.
    members = _members(obj) if registered else _composite_members(obj)

    def write(fileobj):
        with zipfile.ZipFile(fileobj, "w", zipfile.ZIP_DEFLATED) as archive:
            for member, data in members.items():
                # Deflated although .keras files are zip archives: stored as is,
                # a model's own zip directory would sit in plain sight near the
                # end, and a truncated skae file would read as that model.
                archive.writestr(member, data)

    atomic_write(target, write, lambda: check_target(target, path, overwrite))
    return path


def _registered(obj):
    return _estimator_classes().get(type(obj).__name__) is type(obj)


def _versions():
    return {
        "skae": __version__,
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        _backend.name(): importlib.metadata.version(_backend.name()),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _members(estimator):
    """The members of a registered, fitted estimator's file, header first."""
    class_name = type(estimator).__name__
    encoder = _Encoder()
    params = estimator.get_params(deep=False)
    stored_params, unsaved = {}, []
    for name, value in params.items():
        trial = _Encoder()
        try:
            trial.encode(value, name=name, models=False)
        except _Unsupported:
            stored_params[name] = None
            unsaved.append(name)
        else:
            stored_params[name] = encoder.encode(value, name=name, models=False)
    state = {}
    # What pickle would store, so that transient caches the class drops there
    # (compiled functions) are dropped here too.
    for name, value in estimator.__getstate__().items():
        if name in params or name == "_sklearn_version":
            continue
        try:
            state[name] = encoder.encode(value, name=name, models=True)
        except _Unsupported as exc:
            raise TypeError(
                "Expected fitted attributes that are plain data (numbers, str, "
                "arrays, lists, tuples, dicts) or Keras models. Received: "
                f"{exc} on the {class_name}; it cannot be saved without pickle."
            ) from None
    if unsaved:
        warnings.warn(
            f"Parameters {unsaved} of the {class_name} are not plain data and are "
            "saved as None. The loaded estimator transforms exactly like this "
            "one; set them again before refitting it.",
            UserWarning,
            stacklevel=user_stacklevel(),
        )
    header = {
        "format": _FORMAT,
        # A single estimator's layout has not changed since version 1.
        "format_version": 1,
        "versions": _versions(),
        "class": class_name,
        "params": stored_params,
        "unsaved_params": unsaved,
        "state": state,
    }
    members = {_HEADER: json.dumps(header, allow_nan=False, indent=1).encode()}
    members.update(encoder.arrays)
    members.update(
        (member, _model_bytes(model)) for member, model in encoder.models.items()
    )
    return members


def _composite_members(obj):
    """The members of a composite file: skops' object and one file per estimator."""
    data, estimators = _composite.split(obj, _registered)
    names = [f"estimators/{i}.skae" for i in range(len(estimators))]
    header = {
        "format": _FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": "composite",
        "versions": _versions(),
        "class": f"{type(obj).__module__}.{type(obj).__qualname__}",
        "object": _composite.OBJECT,
        "estimators": names,
    }
    members = {_HEADER: json.dumps(header, indent=1).encode(), _composite.OBJECT: data}
    for name, estimator in zip(names, estimators, strict=True):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for member, content in _members(estimator).items():
                archive.writestr(member, content)
        members[name] = buffer.getvalue()
    return members


def _model_bytes(model):
    # keras.saving.save_model wants a path ending in .keras.
    with tempfile.TemporaryDirectory(prefix="skae-") as tmp:
        model_path = os.path.join(tmp, "model.keras")
        keras.saving.save_model(model, model_path)
        with open(model_path, "rb") as f:
            return f.read()


# -- load -----------------------------------------------------------------------


def load(path, *, safe_mode=True):
    """Read an estimator written by :func:`save`; see :func:`skae.persistence.load`."""
    path = fspath(path)
    if not isinstance(safe_mode, (bool, np.bool_)):
        raise TypeError(
            f"Expected safe_mode to be a bool. Received: safe_mode={safe_mode!r}"
        )
    # open() raises FileNotFoundError, IsADirectoryError, ... naming the path.
    with open(path, "rb") as f:
        try:
            return _load_file(f, path, safe_mode)
        except _Unsafe as exc:
            raise ValueError(
                "Expected Keras models without Python code (Lambda layers, "
                f"lambdas) with safe_mode=True. Received: path={path!r}, whose "
                f"{exc}, which loading would run. Load it with safe_mode=False "
                "only if you trust the file."
            ) from (exc.__cause__ or None)
        except _Corrupt as exc:
            raise ValueError(
                "Expected a skae file written by AutoencoderTransformer.save. "
                f"Received: path={path!r}, {exc}"
            ) from (exc.__cause__ or None)


# What zipfile raises on a damaged archive (NotImplementedError: a RuntimeError).
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError)
_ZIP_ERRORS += (ValueError, OverflowError, OSError, RuntimeError)


@contextlib.contextmanager
def _zip_errors():
    """Turn the many exceptions of zipfile on a damaged archive into _Corrupt."""
    try:
        yield
    except _ZIP_ERRORS as exc:
        raise _Corrupt(
            f"which is not a complete zip archive (truncated or corrupt?): {exc}"
        ) from exc


def _load_file(f, path, safe_mode):
    """Check the archive in ``f`` from its directory inwards: a member is read
    once what was read before bounds its size."""
    if not isinstance(f, io.BytesIO) and not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
        f = io.BytesIO(f.read())  # a pipe: zipfile seeks
    size = f.seek(0, os.SEEK_END)
    if not size:
        raise _Corrupt("an empty file")
    with _zip_errors():
        archive = zipfile.ZipFile(f)
    with archive:
        infos = {info.filename: info for info in archive.infolist()}
        if len(infos) != len(archive.infolist()):
            raise _Corrupt("a zip archive with two members of the same name")
        # Nothing is decompressed yet: what the members declare must fit the file.
        declared = sum(info.file_size for info in infos.values())
        header = infos.get(_HEADER, zipfile.ZipInfo()).file_size
        limit = _MAX_EXPANSION * size
        if declared > max(_MIN_BUDGET, limit) or header > max(_MIN_HEADER, limit):
            raise _Corrupt(
                f"whose members declare {declared} bytes uncompressed ({header} "
                f"for {_HEADER}), more than a skae file of {size} bytes holds; "
                "refused unread as a possible decompression bomb"
            )
        for info in infos.values():
            # LZMA would allocate the dictionary its header asks for.
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise _Corrupt(
                    f"whose member {info.filename!r} is compressed with method "
                    f"{info.compress_type}, which skae never writes"
                )
            # zipfile would allocate buffers of the size it claims.
            if info.header_offset + info.compress_size > size:
                raise _Corrupt(f"whose member {info.filename!r} ends after the file")
        if _HEADER not in infos:
            raise _Corrupt(
                f"a zip archive without {_HEADER!r} (another kind of file, or a "
                "damaged skae file)"
            )
        with _zip_errors():
            raw = archive.read(infos[_HEADER])
        header = _parse_header(raw, path)
        if header.get("kind") == "composite":
            return _load_composite(archive, infos, header, path, safe_mode)
        cls, params, state = _read_header(header, path)
        references = _references([*params.values(), *state.values()])
        for member in references:
            if member not in infos:
                raise _Corrupt(f"a reference to a missing member {member!r}")
        unreferenced = sorted(set(infos) - set(references) - {_HEADER})
        if unreferenced:
            raise _Corrupt(
                f"with members its {_HEADER} never refers to: {unreferenced[:5]}"
            )
        arrays, models = {}, {}
        for member, tag in references.items():
            if tag == "__keras_model__":
                models[member] = _load_model(archive, infos[member], safe_mode)
            else:
                arrays[member] = _read_array(archive, infos[member])
    decoder = _Decoder(arrays, models)
    try:
        params = {name: decoder.decode(value) for name, value in params.items()}
        state = {name: decoder.decode(value) for name, value in state.items()}
    except _Corrupt:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, OSError) as exc:
        # np.load, reshape or RandomState.set_state on damaged content.
        raise _Corrupt(f"with unreadable state ({type(exc).__name__}: {exc})") from exc
    return _restore(cls, params, state)


def _parse_header(raw, path):
    """``skae.json`` as a dict, of a format version this skae reads."""
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        # As are UnicodeDecodeError, JSONDecodeError and ints of 5000 digits.
        raise _Corrupt(
            f"whose {_HEADER} is not valid JSON ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(header, dict) or header.get("format") != _FORMAT:
        raise _Corrupt(f"whose {_HEADER} does not describe a skae file")
    version = header.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _Corrupt(f"with an invalid format_version={version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"Expected a skae file of format version {FORMAT_VERSION} or older. "
            f"Received: path={path!r} with format_version={version}, written by "
            f"skae {_written_by(header)}; upgrade skae to load it."
        )
    return header


def _written_by(header):
    versions = header.get("versions")
    written_by = versions.get("skae") if isinstance(versions, dict) else None
    return written_by if isinstance(written_by, str) else "an unknown version"


def _read_header(header, path):
    """The registered class, params and state (still tagged) of ``skae.json``."""
    written_by = _written_by(header)
    name = header.get("class")
    cls = _estimator_classes().get(name) if isinstance(name, str) else None
    if cls is None:
        raise _Corrupt(f"for an unknown estimator class {name!r}")
    params, state = header.get("params"), header.get("state")
    if not isinstance(params, dict) or not isinstance(state, dict):
        raise _Corrupt(f"whose {_HEADER} lacks params or state")
    defaults = cls().get_params(deep=False)
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ValueError(
            f"Expected parameters of a {cls.__name__}. Received: path={path!r} "
            f"with unknown parameters {unknown}, written by skae {written_by}; "
            "upgrade skae to load it."
        )
    for name in state:
        # Data must not shadow a method or property: the file could otherwise
        # replace transform with one of its Keras models.
        if not name.isidentifier() or name in defaults or hasattr(cls, name):
            raise _Corrupt(f"with an invalid fitted attribute name {name!r}")
    return cls, params, state


def _load_composite(archive, infos, header, path, safe_mode):
    """A scikit-learn object holding estimators: skops' trusted types only."""
    names = header.get("estimators")
    if (
        not isinstance(names, list)
        or header.get("object") != _composite.OBJECT
        or not all(isinstance(n, str) and n.startswith("estimators/") for n in names)
        or len(set(names)) != len(names)
    ):
        raise _Corrupt(f"whose {_HEADER} does not list its members")
    expected = {_HEADER, _composite.OBJECT, *names}
    if set(infos) != expected:
        odd = sorted(set(infos) ^ expected)[:5]
        raise _Corrupt(f"whose members do not match its {_HEADER}: {odd}")
    estimators = []
    for name in names:
        with _zip_errors():
            data = archive.read(infos[name])
        # The same checks as a file of its own, within this file's budget.
        try:
            estimators.append(_load_file(io.BytesIO(data), path, safe_mode))
        except _Corrupt as exc:
            raise _Corrupt(f"whose member {name} is damaged: {exc}") from exc
    with _zip_errors():
        data = archive.read(infos[_composite.OBJECT])
    try:
        return _composite.join(data, estimators, _estimator_classes(), path)
    except ValueError as exc:
        raise _Corrupt(str(exc)) from exc


def _references(values):
    """The members the tagged JSON ``values`` refer to: name -> tag.

    Walks the tags as :class:`_Decoder` will (a user's dict with a key such as
    "__array__" is data), refusing what nests too deep for its recursion.
    """
    found, stack = {}, [(value, 0) for value in values]
    while stack:
        value, depth = stack.pop()
        if depth > _MAX_DEPTH:
            raise _Corrupt(f"whose {_HEADER} nests deeper than {_MAX_DEPTH} levels")
        if isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
        if not isinstance(value, dict) or len(value) != 1:
            continue  # the decoder refuses what is malformed
        ((tag, content),) = value.items()
        if tag in ("__tuple__", "__random_state__"):
            children = [content]
        elif tag == "__dict__" and isinstance(content, dict):
            children = content.values()
        elif tag == "__items__" and isinstance(content, list):
            children = [p[1] for p in content if isinstance(p, list) and len(p) == 2]
        else:
            children = []
        stack.extend((child, depth + 1) for child in children)
        if tag in _MEMBER_TAGS:
            folder, suffix = _MEMBER_TAGS[tag]
            if not (
                isinstance(content, str)
                and content.startswith(folder)
                and content.endswith(suffix)
            ):
                raise _Corrupt(f"a {tag} tag naming {content!r}, not a {suffix} file")
            if content in found:
                # Each would be read again, as many times as the file says.
                raise _Corrupt(f"two references to the member {content!r}")
            found[content] = tag
    return found


def _read_array(archive, info):
    """The bytes of an ``.npy`` member, once its header declares its own size."""
    with _zip_errors(), archive.open(info) as stream:
        # np.save's header is at most a few hundred bytes (numpy reads 10,000).
        head = io.BytesIO(stream.read(min(info.file_size, 2**16)))
    try:
        version = np.lib.format.read_magic(head)
        if version not in ((1, 0), (2, 0)):  # np.save writes 3.0 for no skae state
            raise ValueError(f"version {version} of the .npy format")
        read = getattr(np.lib.format, f"read_array_header_{version[0]}_0")
        shape, _, dtype = read(head)
    except ValueError as exc:
        raise _Corrupt(f"whose {info.filename} is not a .npy array ({exc})") from exc
    # In Python ints: a shape of 1e13 elements must not overflow to a small size.
    nbytes = math.prod(shape) * dtype.itemsize
    if head.tell() + nbytes != info.file_size:
        raise _Corrupt(
            f"whose {info.filename} declares a {dtype} array of shape {shape} "
            f"({nbytes} bytes) but holds {info.file_size - head.tell()} bytes"
        )
    with _zip_errors():
        return archive.read(info)


def _restore(cls, params, state):
    estimator = cls.__new__(cls)
    defaults = cls().get_params(deep=False)
    try:
        # The class's own unpickling path, so whatever it restores there
        # (caches) it restores here.
        estimator.__setstate__({**defaults, **params, **state})
    except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
        raise _Corrupt(
            f"whose state cannot be restored ({type(exc).__name__}: {exc})"
        ) from exc
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        raise _Corrupt("whose state is not that of a fitted estimator") from None
    checks = (_CHECKS[c] for c in cls.__mro__ if c in _CHECKS)
    check = next(checks, lambda estimator, names: None)
    try:
        check(estimator, set(state))
    except (ValueError, TypeError) as exc:
        raise _Corrupt(f"whose fitted state is inconsistent: {exc}") from exc
    return estimator


def _load_model(archive, info, safe_mode):
    member = info.filename
    with tempfile.TemporaryDirectory(prefix="skae-") as tmp:
        model_path = os.path.join(tmp, "model.keras")
        # Streamed to disk, not held in memory: Keras reads from a file anyway.
        with _zip_errors(), archive.open(info) as src, open(model_path, "wb") as out:
            shutil.copyfileobj(src, out, 2**20)
        if safe_mode:
            _check_no_code(model_path, member)
        try:
            # Rebuilding user layers draws seeds from Python's random; loading
            # must leave the caller's stream as it was.
            with seeded_python_random(0):
                model = keras.saving.load_model(
                    model_path, compile=False, safe_mode=safe_mode
                )
        except Exception as exc:
            if "safe_mode" in str(exc):
                raise _Unsafe(f"{member} holds Python code ({exc})") from exc
            raise _Corrupt(
                f"whose {member} is not a Keras model that Keras can load "
                f"({type(exc).__name__}: {exc})"
            ) from exc
    if not isinstance(model, keras.Model):
        raise _Corrupt(f"whose {member} is not a Keras model")
    return model


def _check_no_code(model_path, member):
    """Refuse a ``.keras`` file whose config holds Python code, before Keras reads it.

    Keras' own ``safe_mode`` refuses Python lambdas; this also refuses every
    ``Lambda`` layer (a named function may come from any importable module), and
    does so with one clear message whichever Keras version is installed.
    """
    try:
        with zipfile.ZipFile(model_path) as archive:
            config = json.loads(archive.read("config.json"))
    except Exception as exc:
        raise _Corrupt(
            f"whose {member} is not a Keras model file ({type(exc).__name__}: {exc})"
        ) from exc
    found = _find_code(config)
    if found:
        raise _Unsafe(f"{member} holds {found}")


def _find_code(config):
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            class_name = item.get("class_name")
            if class_name == "Lambda":
                layer = item.get("config", {})
                name = layer.get("name") if isinstance(layer, dict) else None
                return f"a Lambda layer {name!r}"
            if class_name == "__lambda__" or "__lambda__" in item:
                return "a Python lambda"
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None
