"""Fixtures shared by the whole suite (``tests/benchmarks/conftest.py`` adds the benchmarks' own).

- ``rng``: a fresh, seeded NumPy generator per test.
- ``classifier_model``: the session's cache of built classifier plugins. Building a Keras
  application (ResNet50/101, InceptionV3, EfficientNetB0) takes seconds on a CPU, and the
  contract, classifier, ResNet, DRS and LRP tests all ask for the same few models.

The contract suite's seeded augmenter runs are cached by ``bench.contract.shared_run`` itself,
so that ``contract.checks`` (used by test_stylegan2 and test_pseudolabel too) shares them.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.quiet import filter_tensorflow_startup

filter_tensorflow_startup()  # TensorFlow's harmless start-up lines stay out of `pytest -s` and failure reports

RNG_SEED = 0


@pytest.fixture
def rng(request) -> np.random.Generator:
    """``np.random.default_rng(RNG_SEED)``, fresh per test. A test module whose expected values
    were drawn with another seed keeps it by defining its own ``RNG_SEED`` (test_stats and
    test_nst_losses each have a test that fails with seed 0)."""
    return np.random.default_rng(getattr(request.module, "RNG_SEED", RNG_SEED))


@pytest.fixture(scope="session")
def classifier_model():
    """``classifier_model(name, shape=(32, 32, 3), seed=0, **params)`` → ``(classifier, model)``:
    classifier plugin ``name`` created with ``params`` and built for ``shape`` and two classes
    after ``tf.keras.utils.set_random_seed(seed)``, as ``bench.contract.build`` does, once per
    session for each (name, resolved parameters, shape, seed).

    The models are shared: a test may read them (layers, trainable flags, counts, ``predict``)
    but must not train or change them; one that does builds its own. Every cache hit checks
    that the weights, trainable flags and optimizer step are as built, so a leak fails loudly.
    (``tf.keras.backend.clear_session()`` elsewhere does not invalidate these eager models.)"""
    from bench import registry

    cache: dict[tuple, tuple] = {}

    def get(name: str, shape=(32, 32, 3), *, seed: int = 0, **params):
        import tensorflow as tf

        clf = registry.create("classifier", name, **params)
        key = (name, repr(clf.params), tuple(int(d) for d in shape), seed)
        if key in cache:
            clf, model, fingerprint = cache[key]
            if _fingerprint(model) != fingerprint:
                raise AssertionError(f"a test changed the shared {key} model: build your own to train or change one")
            return clf, model
        tf.keras.utils.set_random_seed(seed)
        model = clf.build(key[2], 2)
        cache[key] = (clf, model, _fingerprint(model))
        return clf, model

    yield get
    cache.clear()


def _fingerprint(model) -> tuple:
    """Trainable flags, optimizer step and a checksum of every weight."""
    flags = tuple(layer.trainable for layer in _all_layers(model))
    step = int(model.optimizer.iterations.numpy()) if getattr(model, "optimizer", None) is not None else None
    return flags, step, tuple(float(np.sum(w.numpy(), dtype=np.float64)) for w in model.weights)


def _all_layers(model) -> list:
    out = []
    for layer in model.layers:
        out += [layer, *(_all_layers(layer) if hasattr(layer, "layers") else [])]
    return out
