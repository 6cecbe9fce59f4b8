"""The ResNet50 classifier (Panigrahi et al. 2024 recipe) and the shared Keras training helpers."""

from __future__ import annotations

import numpy as np
import pytest

from bench import registry
from bench import weights as _weights
from bench.errors import AugbenchError, ConfigError, NumericalError

tf = pytest.importorskip("tensorflow")

pytestmark = pytest.mark.filterwarnings(
    # Keras 2.15 initialisers call random.randint(1, 1e9); not ours to fix.
    "ignore:non-integer arguments to randrange:DeprecationWarning")

SHAPE = (32, 32, 3)
HEAD = ["head_gap", "head_bn", "head_leaky_relu", "head_dropout", "head_dense"]
NOTOP = _weights.IMAGENET_FILES["resnet50"][0]


def build(**params):
    clf = registry.create("classifier", "resnet50", **params)
    return clf, clf.build(SHAPE, 2)


def trainable_count(layer_or_model) -> int:
    return int(sum(int(np.prod(w.shape)) for w in layer_or_model.trainable_weights))


@pytest.fixture(scope="module")
def default_model(classifier_model):
    """The default ResNet50 (seed 0) from the session's shared models; these tests only read it."""
    return classifier_model("resnet50", SHAPE)


@pytest.fixture(scope="module")
def saved_backbone(tmp_path_factory):
    """A no-top ResNet50 with fixed-seed random weights, saved where Keras caches ImageNet files."""
    tf.keras.utils.set_random_seed(1234)
    ref = tf.keras.applications.ResNet50(include_top=False, weights=None, input_shape=SHAPE)
    keras_home = tmp_path_factory.mktemp("keras_home")
    path = keras_home / "models" / NOTOP
    path.parent.mkdir()
    ref.save_weights(str(path))
    weights = ref.get_weights()
    del ref
    tf.keras.backend.clear_session()
    return keras_home, path, weights


def assert_backbone_equals(model, expected: list[np.ndarray]) -> None:
    got = model.get_layer("resnet50").get_weights()
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- architecture


@pytest.mark.slow
def test_head_is_gap_bn_leakyrelu_dropout_dense(default_model):
    _, model = default_model
    names = [layer.name for layer in model.layers]
    assert names[-5:] == HEAD
    assert isinstance(model.layers[-6], tf.keras.Model) and model.layers[-6].name == "resnet50"
    kinds = [tf.keras.layers.GlobalAveragePooling2D, tf.keras.layers.BatchNormalization,
             tf.keras.layers.LeakyReLU, tf.keras.layers.Dropout, tf.keras.layers.Dense]
    for name, kind in zip(HEAD, kinds, strict=True):
        assert isinstance(model.get_layer(name), kind), name
    # wired in that order: each head layer reads the previous one's output
    chain = ["resnet50", *HEAD]
    for prev, name in zip(chain, chain[1:], strict=False):
        inbound = model.get_layer(name).inbound_nodes[0].inbound_layers
        assert inbound is model.get_layer(prev), name
    assert model.outputs[0] is model.get_layer("head_dense").output
    assert model.get_layer("head_dropout").rate == 0.5
    assert float(model.get_layer("head_leaky_relu").alpha) == pytest.approx(0.3)
    dense = model.get_layer("head_dense")
    assert dense.units == 2 and dense.activation is tf.keras.activations.softmax
    assert model.output_shape == (None, 2)


@pytest.mark.slow
def test_optimizer_is_sgd_lr_1e4_momentum_09(default_model):
    _, model = default_model
    opt = model.optimizer
    assert isinstance(opt, tf.keras.optimizers.SGD)
    assert float(opt.learning_rate) == pytest.approx(1e-4)
    assert float(opt.momentum) == pytest.approx(0.9)
    assert not opt.nesterov
    assert model.loss == "categorical_crossentropy"


@pytest.mark.slow
def test_finetune_all_trains_the_backbone(default_model):
    clf, model = default_model
    assert clf.params.transfer == "finetune-all"
    backbone = model.get_layer("resnet50")
    assert backbone.trainable
    # every backbone weight trains except BatchNorm moving statistics
    moving = sum(int(np.prod(w.shape)) for w in backbone.weights if "moving_" in w.name)
    total = sum(int(np.prod(w.shape)) for w in backbone.weights)
    assert trainable_count(backbone) == total - moving > 23_000_000


def test_preprocess_replicates_grey_into_caffe_bgr():
    clf = registry.create("classifier", "resnet50")
    grey = np.array([[[0.0, 1.0], [0.5, 0.25]]], np.float32)
    x = clf.preprocess(grey)
    assert x.shape == (1, 2, 2, 3) and x.dtype == np.float32
    means = np.array([103.939, 116.779, 123.68], np.float32)  # Keras "caffe" BGR means
    np.testing.assert_allclose(x, grey[..., None] * 255.0 - means, rtol=1e-6, atol=1e-4)


# --------------------------------------------------------------------------- weights


@pytest.mark.slow
def test_imagenet_loads_verified_weights_from_the_keras_cache(saved_backbone, monkeypatch):
    keras_home, path, expected = saved_backbone
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    monkeypatch.setitem(_weights.IMAGENET_FILES, "resnet50", (NOTOP, _weights.md5(path)))

    def offline(*args, **kwargs):
        raise AssertionError("the cached file must be used without downloading")

    monkeypatch.setattr(tf.keras.utils, "get_file", offline)
    try:
        clf, model = build(weights="imagenet")
        assert_backbone_equals(model, expected)
        source = clf.weights_source()
        assert "imagenet" in source and "md5 verified" in source and NOTOP in source
    finally:
        tf.keras.backend.clear_session()


def test_imagenet_with_wrong_md5_raises_naming_the_file(saved_backbone, monkeypatch):
    keras_home, path, _ = saved_backbone
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    monkeypatch.setitem(_weights.IMAGENET_FILES, "resnet50", (NOTOP, "0" * 32))
    clf = registry.create("classifier", "resnet50", weights="imagenet")
    with pytest.raises(AugbenchError, match="MD5") as info:
        clf.build(SHAPE, 2)
    assert str(path) in str(info.value)



@pytest.mark.slow
def test_explicit_weights_file_with_feature_extraction(saved_backbone):
    """``weights: <path>`` loads that file; feature-extraction then trains the head only.

    (One build covers both, and the non-default head/optimizer parameters, to keep
    the ResNet50 builds on a CPU few.)
    """
    _, path, expected = saved_backbone
    tf.keras.utils.set_random_seed(0)
    try:
        clf, model = build(weights=str(path), transfer="feature-extraction", learning_rate=0.01,
                           momentum=0.5, dropout=0.25, leaky_relu_alpha=0.1)
        assert_backbone_equals(model, expected)
        source = clf.weights_source()
        assert str(path) in source and _weights.md5(path) in source

        backbone = model.get_layer("resnet50")
        assert not backbone.trainable and trainable_count(backbone) == 0
        head = sum(trainable_count(model.get_layer(n)) for n in HEAD)
        # BN gamma/beta over 2048 features + Dense 2048×2 kernel and 2 biases
        assert head == 2 * 2048 + 2048 * 2 + 2
        assert trainable_count(model) == head
        assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
        assert float(model.optimizer.momentum) == pytest.approx(0.5)
        assert model.get_layer("head_dropout").rate == 0.25
        assert float(model.get_layer("head_leaky_relu").alpha) == pytest.approx(0.1)
    finally:
        tf.keras.backend.clear_session()


def test_nonexistent_weights_file_raises(tmp_path):
    missing = tmp_path / "no-such-weights.h5"
    clf = registry.create("classifier", "resnet50", weights=str(missing))
    with pytest.raises(AugbenchError, match="not found") as info:
        clf.build(SHAPE, 2)
    assert str(missing) in str(info.value)


def test_weights_spec_that_is_neither_keyword_nor_path_is_a_config_error():
    with pytest.raises(ConfigError, match="'imagenet21k' is not 'imagenet', 'none' or a weights file path") as info:
        registry.create("classifier", "resnet50", weights="imagenet21k")
    assert info.value.key == "classifier.resnet50.weights"


# --------------------------------------------------------------------------- training helpers


def _tiny_bn_model():
    """Conv → BN inside a nested sub-model (as in ResNet50), then a small head."""
    inp = tf.keras.Input((8, 8, 2))
    conv = tf.keras.layers.Conv2D(3, 3, padding="same", name="conv")(inp)
    bn = tf.keras.layers.BatchNormalization(name="bn")(conv)
    inner = tf.keras.Model(inp, tf.keras.layers.ReLU()(bn), name="inner")
    outer_in = tf.keras.Input((8, 8, 2))
    x = tf.keras.layers.GlobalAveragePooling2D()(inner(outer_in))
    out = tf.keras.layers.Dense(2, activation="softmax")(x)
    return tf.keras.Model(outer_in, out), inner


def test_precise_bn_sets_population_statistics():
    from bench.training import PreciseBatchNorm

    tf.keras.utils.set_random_seed(0)
    model, inner = _tiny_bn_model()
    bn = inner.get_layer("bn")
    images = np.random.default_rng(0).normal(3.0, 2.0, (48, 8, 8, 2)).astype(np.float32)
    feats = tf.keras.Model(inner.input, inner.get_layer("conv").output)(images).numpy()
    mean, var = feats.mean(axis=(0, 1, 2)), feats.var(axis=(0, 1, 2))
    assert not np.allclose(bn.moving_mean.numpy(), mean, atol=0.1)  # the test can fail
    weights_before = [w.numpy().copy() for w in model.trainable_weights]

    PreciseBatchNorm(images, n_images=48, batch_size=16, seed=0).recalibrate(model)

    # three batches of 16, pooled (Wu & Johnson's Algorithm 1): the statistics of all 48 images
    np.testing.assert_allclose(bn.moving_mean.numpy(), mean, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(bn.moving_variance.numpy(), var, rtol=2e-3)
    spread = PreciseBatchNorm(images, n_images=48, batch_size=16, seed=0)
    spread.batches = [images[np.argsort(feats[..., 0].mean(axis=(1, 2)))][i:i + 16] for i in (0, 16, 32)]
    spread.recalibrate(model)  # batches sorted by their mean: the spread of batch means counts too
    np.testing.assert_allclose(bn.moving_variance.numpy(), var, rtol=2e-3)
    assert bn.momentum == pytest.approx(0.99)  # restored
    for before, w in zip(weights_before, model.trainable_weights, strict=True):
        np.testing.assert_array_equal(w.numpy(), before)  # no weight changes


def test_precise_bn_leaves_frozen_batchnorm_alone():
    from bench.training import PreciseBatchNorm

    tf.keras.utils.set_random_seed(0)
    model, inner = _tiny_bn_model()
    inner.trainable = False  # feature-extraction: the backbone's statistics stay as loaded
    bn = inner.get_layer("bn")
    images = np.random.default_rng(1).normal(3.0, 2.0, (16, 8, 8, 2)).astype(np.float32)
    PreciseBatchNorm(images, n_images=16, batch_size=8, seed=0).recalibrate(model)
    np.testing.assert_array_equal(bn.moving_mean.numpy(), 0.0)
    np.testing.assert_array_equal(bn.moving_variance.numpy(), 1.0)


def _sqrt_model():
    """Softmax scaled by sqrt(x0): NaN exactly for the rows whose first input is negative."""
    inp = tf.keras.Input((2,))
    out = tf.keras.layers.Lambda(lambda t: tf.nn.softmax(t) * tf.sqrt(t[:, :1]))(inp)
    return tf.keras.Model(inp, out)


def test_predict_positive_returns_the_positive_column():
    from bench.training import predict_positive

    x = np.array([[1.0, 0.0], [4.0, 4.0], [0.25, 3.0]], np.float32)
    scores = predict_positive(_sqrt_model(), x)
    expected = tf.nn.softmax(x).numpy()[:, 1] * np.sqrt(x[:, 0])
    assert scores.dtype == np.float64 and scores.shape == (3,)
    np.testing.assert_allclose(scores, expected, rtol=1e-6)


def test_predict_positive_raises_on_nan():
    from bench.training import predict_positive

    x = np.array([[1.0, 0.0], [-1.0, 2.0], [4.0, 4.0], [-2.0, 0.0], [0.5, 0.5]], np.float32)
    with pytest.raises(NumericalError, match="2 of 5"):
        predict_positive(_sqrt_model(), x)
