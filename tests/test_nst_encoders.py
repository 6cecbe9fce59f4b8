"""NST encoders: where weights come from (imagenet | path | domain | random) and the
input-gradient convolution."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from bench.errors import AugbenchError  # noqa: E402
from bench.io import write_json  # noqa: E402
from bench.nst import encoders  # noqa: E402
from bench.weights import IMAGENET_FILES, URL_PREFIXES, md5  # noqa: E402

LAYERS = ["block1_conv1", "block3_conv1", "block5_conv1", "block4_conv2"]


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """A VGG19 no-top weight file of our own (seeded random), in the Keras layout."""
    model = encoders.get_encoder_spec("vgg19").build()
    encoders._randomise(model, seed=42)
    path = tmp_path_factory.mktemp("weights") / "vgg19_mine.h5"
    model.save_weights(str(path))
    return path, [w.copy() for w in model.get_weights()]


def _kernels(model) -> list[np.ndarray]:
    return [layer.kernel.numpy() for layer in model.layers if getattr(layer, "kernel", None) is not None]


def test_weights_from_a_file_are_loaded(weights_file):
    path, expected = weights_file
    source = encoders.resolve_encoder_weights(str(path), "vgg19")
    assert source.kind == "file" and md5(path) in source.description
    model = encoders.build_feature_model("vgg19", source, LAYERS, pooling="max")
    got = _kernels(model)
    want = [w for w in expected if w.ndim == 4][: len(got)]
    assert len(got) == 13  # truncated after block5_conv1
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


def test_imagenet_weights_come_from_the_keras_cache_with_an_md5_check(weights_file, tmp_path, monkeypatch):
    path, expected = weights_file
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    cached = tmp_path / "models" / IMAGENET_FILES["vgg19"][0]
    cached.parent.mkdir(parents=True)
    cached.write_bytes(path.read_bytes())
    with pytest.raises(AugbenchError, match="does not match the published 253f8cb5"):
        encoders.resolve_encoder_weights("imagenet", "vgg19")  # our file is not the real one
    monkeypatch.setitem(IMAGENET_FILES, "vgg19", (cached.name, md5(cached)))
    source = encoders.resolve_encoder_weights("imagenet", "vgg19")
    assert source.kind == "imagenet" and source.path == str(cached)
    model = encoders.build_feature_model("vgg19", source, ["block1_conv1"], pooling="max")
    np.testing.assert_array_equal(_kernels(model)[0], expected[0])


def test_imagenet_weights_missing_offline_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setitem(URL_PREFIXES, "vgg19", "http://127.0.0.1:9/")  # nothing listens there
    with pytest.raises(AugbenchError, match="copy it to .*vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5; "
                                            "or set weights to 'domain'"):
        encoders.resolve_encoder_weights("imagenet", "vgg19")


def test_domain_weights_need_the_encoder_stage_and_are_verified(weights_file, tmp_path):
    path, _ = weights_file
    with pytest.raises(AugbenchError, match="--encoder DIR"):
        encoders.resolve_encoder_weights("domain", "vgg19", None)
    with pytest.raises(AugbenchError, match="no domain encoder for 'vgg19'"):
        encoders.resolve_encoder_weights("domain", "vgg19", tmp_path)
    target = tmp_path / encoders.domain_weights_name("vgg19")
    target.write_bytes(path.read_bytes())
    write_json(tmp_path / "meta.json", {"encoders": {"vgg19": {"md5": md5(target), "n_train": 112, "epochs": 3,
                                                               "init": "random"}}})
    source = encoders.resolve_encoder_weights("domain", "vgg19", tmp_path)
    assert source.kind == "domain" and "112 images" in source.description
    write_json(tmp_path / "meta.json", {"encoders": {"vgg19": {"md5": "0" * 32}}})
    with pytest.raises(AugbenchError, match="differs from"):
        encoders.resolve_encoder_weights("domain", "vgg19", tmp_path)


@pytest.mark.slow
def test_random_weights_are_seeded():
    a = encoders.build_feature_model("vgg19", encoders.resolve_encoder_weights("random", "vgg19", seed=1),
                                     ["block2_conv1"])
    b = encoders.build_feature_model("vgg19", encoders.resolve_encoder_weights("random", "vgg19", seed=1),
                                     ["block2_conv1"])
    c = encoders.build_feature_model("vgg19", encoders.resolve_encoder_weights("random", "vgg19", seed=2),
                                     ["block2_conv1"])
    for x, y in zip(_kernels(a), _kernels(b), strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(_kernels(a)[0], _kernels(c)[0])
    assert "seeded Glorot" in encoders.resolve_encoder_weights("random", "vgg19").description


@pytest.mark.parametrize("arch", ["vgg19", pytest.param("resnet50", marks=pytest.mark.slow)])
def test_input_gradient_convolution_matches_tensorflows_gradient(arch):
    """InputGradConv2D changes how the input gradient is computed, not its value."""
    spec = encoders.get_encoder_spec(arch)
    layers = list(spec.style_layers[:3])
    source = encoders.resolve_encoder_weights("random", arch, seed=3)
    fast = encoders.build_feature_model(arch, source, layers, pooling="max")
    assert any(type(layer).__name__ == "InputGradConv2D" for layer in fast.layers)
    base = spec.build()
    plain = tf.keras.Model(base.input, [base.get_layer(n).output for n in layers])
    plain.set_weights([w.numpy() for w in fast.weights if "flipped" not in w.name][: len(plain.weights)])
    x = tf.constant(np.random.default_rng(0).uniform(size=(2, 32, 32, 1)), tf.float32)

    def grad(model):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = model(encoders.to_encoder_input(x), training=False)
            loss = tf.add_n([tf.reduce_sum(tf.square(o)) * (i + 1) for i, o in enumerate(out)])
        return tape.gradient(loss, x).numpy(), [o.numpy() for o in out]

    (g_fast, out_fast), (g_plain, out_plain) = grad(fast), grad(plain)
    for a, b in zip(out_fast, out_plain, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(b).max())
    np.testing.assert_allclose(g_fast, g_plain, rtol=1e-3, atol=1e-4 * np.abs(g_plain).max())
    assert np.abs(g_plain).max() > 0


def test_unknown_encoder_and_layer_are_named():
    with pytest.raises(AugbenchError, match="did you mean 'vgg19'"):
        encoders.get_encoder_spec("vgg91")
    with pytest.raises(AugbenchError, match="no layer 'block4_conv9'"):
        encoders.build_feature_model("vgg19", encoders.resolve_encoder_weights("random", "vgg19"),
                                     ["block4_conv9"])
    with pytest.raises(AugbenchError, match="not found"):
        encoders.resolve_encoder_weights("/nonexistent/weights.h5", "vgg19")


def test_domain_init_auto_uses_imagenet_only_when_on_disk(tmp_path, monkeypatch):
    from bench.nst import domain

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))

    def no_download(*args, **kwargs):
        raise AssertionError("auto must not download")

    monkeypatch.setattr("bench.weights._download", no_download)
    path, init = domain._initial_weights("vgg19", "auto")
    assert path is None and init.startswith("random") and "no ImageNet file on disk" in init
    path, init = domain._initial_weights("vgg19", "random")
    assert path is None and "no ImageNet" not in init
