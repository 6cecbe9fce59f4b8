"""``conv_input_gradient: forward-conv``: ``InputGradConv2D`` (bench/convgrad.py) has Conv2D's forward results and
Conv2D's gradients (up to float rounding), for the configurations it computes itself and for
those it leaves to the native op; the classifiers swap it in, LRP treats it as a Conv2D."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from bench import registry  # noqa: E402
from bench.convgrad import InputGradConv2D, has_forward_form, with_input_grad_convs  # noqa: E402
from bench.xai import lrp  # noqa: E402
from methods.classify.layers import ShiftedMaxPooling2D, with_shifted_max_pooling  # noqa: E402

# (kernel, strides, padding, input shape, forward form used): ResNet's 3 × 3 and 1 × 1 convolutions
# (strided shortcut included, even and odd maps), Inception's 1 × 7, and configurations left native.
CASES = [((3, 3), 1, "same", (2, 5, 5, 4), True), ((3, 3), 1, "same", (2, 1, 1, 6), True),
         ((1, 1), 1, "valid", (2, 4, 3, 5), True), ((1, 1), 2, "valid", (2, 4, 4, 3), True),
         ((1, 1), 2, "valid", (2, 5, 7, 3), True), ((1, 1), 2, "same", (2, 5, 6, 3), False),
         ((1, 7), 1, "same", (2, 9, 9, 2), True), ((3, 3), 2, "valid", (2, 9, 8, 3), False),
         ((7, 7), 2, "valid", (1, 16, 16, 3), False), ((2, 2), 1, "same", (2, 6, 6, 2), False)]


@pytest.mark.parametrize(("kernel", "strides", "padding", "shape", "forward_form"), CASES)
def test_forward_grad_conv_matches_conv2d(rng, kernel, strides, padding, shape, forward_form):
    x = tf.constant(rng.standard_normal(shape), tf.float32)
    layers = [cls(5, kernel, strides, padding, use_bias=True) for cls in (tf.keras.layers.Conv2D, InputGradConv2D)]
    layers[0].build(x.shape)
    layers[1].build(x.shape)
    layers[1].set_weights(layers[0].get_weights())
    weight = tf.constant(rng.standard_normal(layers[0](x).shape), tf.float32)
    results = []
    for layer in layers:
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(weight * y * y)
        dx, dk, db = tape.gradient(loss, [x, *layer.trainable_weights])
        results.append((y.numpy(), dx.numpy(), dk.numpy(), db.numpy()))
    np.testing.assert_array_equal(results[0][0], results[1][0])  # forward: the same op
    for native, ours in zip(results[0][1:], results[1][1:], strict=True):
        np.testing.assert_allclose(ours, native, rtol=1e-5, atol=1e-5 * np.abs(native).max())
    assert has_forward_form(kernel, (strides, strides), padding.upper()) == forward_form


def test_swap_keeps_weights_outputs_and_lrp(rng):
    inputs = tf.keras.Input((12, 12, 2))
    x = tf.keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    x = tf.keras.layers.MaxPooling2D(3, 2, name="pool")(x)
    x = tf.keras.layers.Conv2D(3, 1, strides=2, name="shortcut")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(2, name="head")(x))
    swapped = with_shifted_max_pooling(with_input_grad_convs(model))
    assert type(swapped.get_layer("conv")) is InputGradConv2D
    assert type(swapped.get_layer("pool")) is ShiftedMaxPooling2D
    images = rng.standard_normal((3, 12, 12, 2)).astype(np.float32)
    np.testing.assert_array_equal(model(images).numpy(), swapped(images).numpy())
    np.testing.assert_allclose(lrp.explain(swapped, images, "epsilon"), lrp.explain(model, images, "epsilon"),
                               rtol=1e-6, atol=1e-9)
    no_conv = tf.keras.Model(inputs, tf.keras.layers.GlobalAveragePooling2D()(inputs))
    assert with_input_grad_convs(no_conv) is no_conv


@pytest.mark.parametrize("option", ["forward-conv", "native"])
def test_the_classifier_option_picks_the_layer(option):
    clf = registry.create("classifier", "resnet50", weights="none", conv_input_gradient=option)
    model = clf.build((32, 32, 3), 2)
    (backbone,) = [layer for layer in model.layers if isinstance(layer, tf.keras.Model)]
    kinds = {type(layer) for layer in backbone.layers}
    expected = InputGradConv2D if option == "forward-conv" else tf.keras.layers.Conv2D
    assert expected in kinds and ({InputGradConv2D, tf.keras.layers.Conv2D} - {expected}).isdisjoint(kinds)
