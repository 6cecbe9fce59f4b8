"""The plugin contract, generated from the registry.

Every installed augmenter and classifier (built-in or third-party, found through
the ``augbench.augmenters`` / ``augbench.classifiers`` entry points) is run
through the same checks, with its default parameters, on a small phantom set.
"""

from __future__ import annotations

import dataclasses
import json
import numbers

import numpy as np
import pytest

from bench import registry
from bench.data.phantom import generate_phantom
from bench.plugins import Generated, ImageSet
from bench.stages.augment import check_generated

pytestmark = pytest.mark.filterwarnings(
    # Keras 2.15 initialisers call random.randint(1, 1e9); not ours to fix.
    "ignore:non-integer arguments to randrange:DeprecationWarning")

AUGMENTERS = registry.list_plugins("augmenter")
CLASSIFIERS = registry.list_plugins("classifier")
PLUGINS = [("augmenter", n) for n in AUGMENTERS] + [("classifier", n) for n in CLASSIFIERS]
SIZE = 32


def test_registry_finds_the_built_ins():
    assert {"none", "geometric-rotation", "geometric-scaling", "geometric-flipping",
            "classical"} <= set(AUGMENTERS)
    assert "resnet50" in CLASSIFIERS
    assert [str(f) for f in registry.failures() if f.package == "augbench"] == []


# --------------------------------------------------------------------------- data


@pytest.fixture(scope="module")
def _phantom() -> tuple[np.ndarray, np.ndarray, list[str]]:
    samples = generate_phantom(6, size=SIZE, seed=0)  # 6 benign then 6 malignant
    images = np.stack([s.image for s in samples]).astype(np.float32)
    labels = np.array([int(s.label == "malignant") for s in samples], dtype=np.int64)
    return images, labels, [s.id for s in samples]


@pytest.fixture
def train(_phantom) -> ImageSet:
    """A fresh copy per test, so a mutating plugin cannot hide behind another test."""
    images, labels, ids = _phantom
    return ImageSet(images.copy(), labels.copy(), list(ids))


def _augmenter(name: str):
    return registry.get("augmenter", name)(registry.params_for("augmenter", name))


def _run(name: str, train: ImageSet, seed: int) -> tuple[Generated, object]:
    plugin = _augmenter(name)
    rng = np.random.default_rng(seed)
    plugin.fit(train, rng)
    gen = plugin.generate(train, plugin.n_synthetic(len(train)), rng)
    return gen, rng


# --------------------------------------------------------------------------- augmenters


@pytest.mark.parametrize(("kind", "name"), PLUGINS)
def test_params_build_with_defaults(kind, name):
    cls = registry.get(kind, name)
    assert dataclasses.is_dataclass(cls.Params) and isinstance(cls.Params, type)
    params = registry.params_for(kind, name)
    assert isinstance(params, cls.Params)
    assert params == cls.Params()


@pytest.mark.parametrize(("kind", "name"), PLUGINS)
def test_descriptions(kind, name):
    cls = registry.get(kind, name)
    for attr in ("paper", "summary"):
        text = getattr(cls, attr, None)
        assert isinstance(text, str) and text.strip(), f"{name}.{attr} is empty"


@pytest.mark.parametrize("name", AUGMENTERS)
class TestAugmenterContract:
    def test_mode(self, name):
        assert registry.get("augmenter", name).mode in {"append", "replace"}

    @pytest.mark.parametrize("n_train", [0, 1, 12, 800])
    def test_n_synthetic_is_a_non_negative_int(self, name, n_train):
        k = _augmenter(name).n_synthetic(n_train)
        assert isinstance(k, numbers.Integral) and not isinstance(k, bool)
        assert k >= 0

    def test_generate_output(self, name, train):
        gen, _ = _run(name, train, seed=7)
        n = _augmenter(name).n_synthetic(len(train))
        assert isinstance(gen, Generated)
        assert gen.images.shape == (n, SIZE, SIZE)
        assert gen.images.dtype == np.float32
        assert np.isfinite(gen.images).all()
        if n:
            assert gen.images.min() >= 0.0 and gen.images.max() <= 1.0
        labels = np.asarray(gen.labels)
        assert labels.shape == (n,)
        assert np.issubdtype(labels.dtype, np.integer)
        assert set(labels.tolist()) <= {0, 1}
        assert len(gen.provenance) == n
        assert all(isinstance(rec, dict) for rec in gen.provenance)
        check_generated(gen, train, name)

    def test_provenance_names_training_sources_and_is_json(self, name, train):
        gen, _ = _run(name, train, seed=7)
        ids = set(train.ids)
        for rec in gen.provenance:
            assert rec.get("source_id") in ids, rec
            assert set(rec.get("style_ids", [])) <= ids, rec
            json.dumps(rec)  # provenance.jsonl must be writable: plain Python types only

    def test_deterministic_for_a_seed(self, name, train):
        a, _ = _run(name, train, seed=7)
        b, _ = _run(name, train, seed=7)
        np.testing.assert_array_equal(a.images, b.images)
        np.testing.assert_array_equal(a.labels, b.labels)
        assert a.provenance == b.provenance

    def test_seed_matters_when_randomness_is_used(self, name, train):
        a, rng = _run(name, train, seed=7)
        if len(a) == 0:
            pytest.skip(f"{name} generates nothing by default")
        b, _ = _run(name, train, seed=8)
        drew = rng.bit_generator.state != np.random.default_rng(7).bit_generator.state
        same = np.array_equal(a.images, b.images) and a.provenance == b.provenance
        if drew:
            assert not same, f"{name} draws from rng but seeds 7 and 8 give the same output"
        else:  # no draws from rng: the output must not depend on hidden randomness either
            assert same, f"{name} does not use rng, yet its output changes between runs"

    def test_does_not_mutate_or_alias_the_training_set(self, name, train):
        images, labels, ids = train.images.copy(), train.labels.copy(), list(train.ids)
        gen, _ = _run(name, train, seed=7)
        np.testing.assert_array_equal(train.images, images)
        np.testing.assert_array_equal(train.labels, labels)
        assert train.ids == ids
        assert train.images.dtype == images.dtype
        assert not np.shares_memory(gen.images, train.images)


# --------------------------------------------------------------------------- classifiers


@pytest.mark.parametrize("name", CLASSIFIERS)
class TestClassifierParams:
    def test_preprocess_grey_to_channels(self, name, train):
        clf = registry.create("classifier", name)
        before = train.images.copy()
        x = np.asarray(clf.preprocess(train.images))
        assert x.dtype == np.float32
        assert x.ndim == 4 and x.shape[:3] == train.images.shape and x.shape[3] >= 1
        assert np.isfinite(x).all()
        np.testing.assert_array_equal(train.images, before)

    def test_input_size_defaults_to_image_size(self, name):
        clf = registry.create("classifier", name)
        size = clf.input_size(SIZE)
        assert isinstance(size, numbers.Integral) and size > 0


@pytest.fixture(scope="module",
                params=[pytest.param(n, marks=pytest.mark.slow) for n in CLASSIFIERS])
def built(request, _phantom):
    """(plugin, model, preprocessed inputs) for each classifier, built once per module."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    clf = registry.create("classifier", request.param)
    x = np.asarray(clf.preprocess(_phantom[0][:4]))
    model = clf.build(x.shape[1:], 2)
    yield clf, model, x
    tf.keras.backend.clear_session()


class TestClassifierBuild:
    def test_builds_a_compiled_two_class_model(self, built):
        _, model, x = built
        assert x.shape[1:3] == (SIZE, SIZE)
        assert model.optimizer is not None, "build must return a compiled model"
        assert model.loss is not None
        assert tuple(model.output_shape) == (None, 2)

    def test_outputs_are_probabilities(self, built):
        _, model, x = built
        probs = model(x, training=False).numpy()
        assert probs.shape == (len(x), 2)
        assert np.isfinite(probs).all() and (probs >= 0).all()
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)

    def test_has_trainable_weights(self, built):
        _, model, _ = built
        assert len(model.trainable_weights) > 0
        assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) > 0

    def test_weights_source_is_described(self, built):
        clf, _, _ = built
        source = clf.weights_source()
        assert isinstance(source, str) and source.strip()
