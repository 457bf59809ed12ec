"""Pipelines and other scikit-learn objects holding skae estimators, saved
without pickle (skae.save / skae.load on a composite file)."""

import io
import json
import sys
import zipfile

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

import skae
from skae import AutoencoderTransformer, _composite

sio = pytest.importorskip("skops.io")

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

SMALL = {"n_components": 2, "hidden_layer_sizes": (8,), "epochs": 2}


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.rand(120, 6).astype(np.float32)
    return X, (X[:, 0] + X[:, 1] > 1).astype(int)


@pytest.fixture(scope="module")
def pipeline(data):
    X, y = data
    ae = AutoencoderTransformer(**SMALL, random_state=0)
    return make_pipeline(StandardScaler(), ae, LogisticRegression()).fit(X, y)


class Counting(StandardScaler):
    """A user's own class: loading it would run its code."""

    restored = 0

    def __setstate__(self, state):
        type(self).restored += 1
        super().__setstate__(state)


def _members(path):
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _write(path, members):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)


def test_pipeline_round_trip(pipeline, data, tmp_path):
    X, _ = data
    path = skae.save(pipeline, tmp_path / "pipe.skae")
    members = _members(path)
    assert sorted(members) == ["estimators/0.skae", "object.skops", "skae.json"]
    header = json.loads(members["skae.json"])
    assert header["kind"] == "composite" and header["format_version"] == 2
    assert header["class"] == "sklearn.pipeline.Pipeline"
    loaded = skae.load(path)
    assert [name for name, _ in loaded.steps] == [name for name, _ in pipeline.steps]
    ae, original = loaded.steps[1][1], pipeline.steps[1][1]
    assert type(ae) is AutoencoderTransformer and ae is not original
    np.testing.assert_array_equal(ae.transform(X), original.transform(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), pipeline.predict_proba(X))
    # The user's object was neither modified nor copied into the file's slots.
    assert pipeline.steps[1][1] is original
    assert type(pipeline.steps[0][1]) is StandardScaler


def test_column_transformer_keeps_unfitted_templates(data, tmp_path):
    X, _ = data
    template = AutoencoderTransformer(**SMALL, random_state=1)
    columns = ColumnTransformer(
        [("ae", template, [0, 1, 2, 3]), ("pca", PCA(1), [4, 5])]
    ).fit(X)
    loaded = skae.load(skae.save(columns, tmp_path / "ct.skae"))
    np.testing.assert_array_equal(loaded.transform(X), columns.transform(X))
    # The parameter is the unfitted template, the fitted clone is separate.
    kept = loaded.transformers[0][1]
    assert type(kept) is AutoencoderTransformer
    assert kept.get_params() == template.get_params()
    with pytest.raises(NotFittedError):
        kept.transform(X[:, :4])
    assert loaded.named_transformers_["ae"] is not kept


def test_one_estimator_twice_is_saved_once(data, tmp_path):
    X, _ = data
    ae = AutoencoderTransformer(**SMALL, random_state=0).fit(X)
    both = make_pipeline(ae, FunctionTransformer())
    both.steps.append(("again", ae))
    path = skae.save(both, tmp_path / "twice.skae")
    assert json.loads(_members(path)["skae.json"])["estimators"] == [
        "estimators/0.skae"
    ]
    loaded = skae.load(path)
    assert loaded.steps[0][1] is loaded.steps[2][1]


@pytest.mark.parametrize(
    "make, names, where",
    [
        (lambda: Counting(), r"Counting", r"estimator\.steps\[0\]\[1\]"),
        (
            lambda: FunctionTransformer(lambda x: x),
            r"<lambda>",
            r"\.steps\[0\]\[1\]\.func",
        ),
    ],
)
def test_what_would_run_code_is_refused_by_name(data, tmp_path, make, names, where):
    X, _ = data
    obj = make_pipeline(make(), AutoencoderTransformer(**SMALL)).fit(X)
    path = tmp_path / "refused.skae"
    path.write_bytes(b"previous")
    with pytest.raises(TypeError, match=rf"{names}.*{where}.*pickled"):
        skae.save(obj, path)
    assert path.read_bytes() == b"previous"


def test_other_objects_are_refused(tmp_path, pipeline):
    with pytest.raises(TypeError, match=r"Expected a skae estimator or a scikit"):
        skae.save({"model": pipeline}, tmp_path / "dict.skae")
    with pytest.raises(NotFittedError):
        skae.save(AutoencoderTransformer(), tmp_path / "unfitted.skae")
    assert not list(tmp_path.iterdir())


def test_a_file_naming_untrusted_types_is_refused_without_running_them(
    pipeline, data, tmp_path
):
    X, y = data
    path = skae.save(pipeline, tmp_path / "pipe.skae")
    members = _members(path)
    # A crafted object member: the user's class in place of the scaler.
    crafted = make_pipeline(Counting(), LogisticRegression()).fit(X, y)
    members["object.skops"] = sio.dumps(crafted)
    _write(path, members)
    Counting.restored = 0
    with pytest.raises(ValueError, match=r"pipe\.skae.*test_composite\.Counting"):
        skae.load(path)
    assert Counting.restored == 0


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda m: m.update({"extra.bin": b"x"}), "do not match"),
        (lambda m: m.pop("estimators/0.skae"), "do not match"),
        (lambda m: m.update({"object.skops": b"not a skops file"}), "readable"),
        (
            lambda m: m.update(
                {"object.skops": sio.dumps(_composite.EstimatorSlot(index=3))}
            ),
            "slot with index 3",
        ),
        (
            lambda m: m.update(
                {"object.skops": sio.dumps(_composite.EstimatorSlot(class_name="os"))}
            ),
            "slot of class 'os'",
        ),
        (lambda m: m.update({"estimators/0.skae": b"PK\x03\x04"}), "estimators/0"),
        (
            lambda m: m.update(
                {
                    "skae.json": json.dumps(
                        {**json.loads(m["skae.json"]), "format_version": 3}
                    ).encode()
                }
            ),
            r"format_version=3.*upgrade skae",
        ),
    ],
)
def test_damaged_composite_files_are_refused_naming_the_file(
    pipeline, tmp_path, edit, match
):
    path = skae.save(pipeline, tmp_path / "pipe.skae")
    members = _members(path)
    edit(members)
    _write(path, members)
    with pytest.raises(ValueError, match=match) as excinfo:
        skae.load(path)
    assert "pipe.skae" in str(excinfo.value)


def test_truncated_composite_file(pipeline, tmp_path):
    path = skae.save(pipeline, tmp_path / "pipe.skae")
    with open(path, "rb") as f:
        content = f.read()
    for size in (10, len(content) // 2, len(content) - 20):
        with open(path, "wb") as f:
            f.write(content[:size])
        with pytest.raises(ValueError, match=r"pipe\.skae"):
            skae.load(path)


def test_without_skops(monkeypatch, pipeline, tmp_path, data):
    X, _ = data
    monkeypatch.setitem(sys.modules, "skops", None)
    monkeypatch.setitem(sys.modules, "skops.io", None)
    with pytest.raises(ImportError, match=r"skae\[pipelines\]"):
        skae.save(pipeline, tmp_path / "pipe.skae")
    # A bare estimator needs no skops.
    ae = pipeline.steps[1][1]
    loaded = skae.load(skae.save(ae, tmp_path / "ae.skae"))
    np.testing.assert_array_equal(loaded.transform(X), ae.transform(X))


def test_walk_paths():
    obj = {"a": [1, (2, {"b": 3})]}
    paths = dict((repr(v), p) for p, v in _composite.walk(obj) if isinstance(v, int))
    assert paths == {"1": "['a'][0]", "2": "['a'][1][0]", "3": "['a'][1][1]['b']"}
    # Shared and cyclic references are visited once.
    cycle = []
    cycle.append(cycle)
    assert [p for p, _ in _composite.walk(cycle)] == [""]
    # A leaf is yielded, not entered (a skae estimator's Keras models).
    leaf = Counting()
    leaf.inner = [1, 2]
    assert "[0].inner[1]" in [p for p, _ in _composite.walk([leaf])]
    walked = _composite.walk([leaf], leaf=lambda v: isinstance(v, Counting))
    assert [p for p, _ in walked] == ["", "[0]"]


def test_composite_file_is_a_zip_with_the_estimator_file_inside(pipeline, tmp_path):
    path = skae.save(pipeline, tmp_path / "pipe.skae")
    inner = _members(path)["estimators/0.skae"]
    (tmp_path / "inner.skae").write_bytes(inner)
    # The estimator member is a complete skae file of its own.
    loaded = skae.load(tmp_path / "inner.skae")
    assert type(loaded) is AutoencoderTransformer
    assert zipfile.is_zipfile(io.BytesIO(inner))
