"""The step options. ``jit_compile``: XLA-compiled training with a max pooling whose gradient is
deterministic under XLA (``ShiftedMaxPooling2D``), same forward results, bit-identical re-runs.
``precision: mixed_bfloat16``: the backbone in bfloat16, the head and output in float32,
bit-identical re-runs."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from bench import registry, training  # noqa: E402
from methods.classify.layers import ShiftedMaxPooling2D, with_shifted_max_pooling  # noqa: E402

CASES = [((3, 3), (2, 2), "valid", (2, 17, 16, 3)), ((3, 3), (2, 2), "same", (2, 17, 16, 3)),
         ((2, 2), None, "valid", (1, 8, 9, 2)), ((3, 3), (1, 1), "same", (1, 5, 5, 1))]


@pytest.mark.parametrize(("pool", "strides", "padding", "shape"), CASES)
def test_shifted_max_pooling_equals_max_pooling_forward_and_gradient(rng, pool, strides, padding, shape):
    x = tf.constant(rng.standard_normal(shape), tf.float32)  # continuous: no ties, one winner per window
    plain = tf.keras.layers.MaxPooling2D(pool, strides, padding)
    shifted = ShiftedMaxPooling2D(pool, strides, padding)
    grads = []
    for layer in (plain, shifted):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * y)
        grads.append((y.numpy(), tape.gradient(loss, x).numpy()))
    np.testing.assert_array_equal(grads[0][0], grads[1][0])
    np.testing.assert_array_equal(grads[0][1], grads[1][1])


def test_swapping_keeps_weights_and_outputs_of_a_functional_model(rng):
    inputs = tf.keras.Input((12, 12, 2))
    x = tf.keras.layers.Conv2D(3, 3, padding="same", name="conv")(inputs)
    x = tf.keras.layers.MaxPooling2D(3, 2, name="pool")(x)
    model = tf.keras.Model(inputs, tf.keras.layers.GlobalAveragePooling2D()(x))
    swapped = with_shifted_max_pooling(model)
    assert type(swapped.get_layer("pool")) is ShiftedMaxPooling2D
    assert isinstance(swapped.get_layer("pool"), tf.keras.layers.MaxPooling2D)  # LRP's rules still apply
    x = rng.standard_normal((4, 12, 12, 2)).astype(np.float32)
    np.testing.assert_array_equal(model(x).numpy(), swapped(x).numpy())
    no_pool = tf.keras.Model(inputs, tf.keras.layers.GlobalAveragePooling2D()(inputs))
    assert with_shifted_max_pooling(no_pool) is no_pool


def _one_run(jit: bool, x, y, precision: str = "float32", reuse=None) -> np.ndarray:
    """Two steps from seed 0. ``reuse`` (bench.training.ModelReuse): re-initialise the model kept
    there as a fresh process would build it, and run its traced (compiled) step again, so an XLA
    re-run costs no second compilation (about 40 s)."""
    training.seed_everything(0)
    clf = registry.create("classifier", "resnet50", weights="none", jit_compile=jit, batch_size=8,
                          precision=precision)
    model = reuse.build(clf, (32, 32, 3), 2) if reuse is not None else clf.build((32, 32, 3), 2)
    for _ in range(2):
        model.train_on_batch(x, y)
    return np.concatenate([w.numpy().ravel() for w in model.trainable_weights[:3]])


@pytest.mark.slow
def test_resnet50_trains_under_xla_with_op_determinism_bit_identically(rng):
    """Without the swap, XLA refuses ResNet50's max-pool gradient under op determinism."""
    x = (rng.random((8, 32, 32, 3), dtype=np.float32) * 255 - 120)
    y = tf.keras.utils.to_categorical(rng.integers(0, 2, 8), 2)
    reuse = training.ModelReuse()
    first, second = _one_run(True, x, y, reuse=reuse), _one_run(True, x, y, reuse=reuse)
    np.testing.assert_array_equal(first, second)
    model = reuse._model
    pools = [layer for layer in model.get_layer("resnet50").layers if isinstance(layer, tf.keras.layers.MaxPooling2D)]
    assert pools and all(type(layer) is ShiftedMaxPooling2D for layer in pools)


@pytest.mark.slow
def test_resnet50_trains_in_mixed_bfloat16_bit_identically(rng):
    x = (rng.random((8, 32, 32, 3), dtype=np.float32) * 255 - 120)
    y = tf.keras.utils.to_categorical(rng.integers(0, 2, 8), 2)
    first, second = _one_run(False, x, y, "mixed_bfloat16"), _one_run(False, x, y, "mixed_bfloat16")
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, _one_run(False, x, y))  # bfloat16 arithmetic: another trajectory


def test_mixed_bfloat16_computes_the_backbone_only_in_bfloat16():
    before = tf.keras.mixed_precision.global_policy().name
    clf = registry.create("classifier", "resnet50", weights="none", precision="mixed_bfloat16")
    model = clf.build((32, 32, 3), 2)
    backbone = model.get_layer("resnet50")
    convs = [layer for layer in backbone.layers if isinstance(layer, tf.keras.layers.Conv2D)]
    assert convs and all(layer.compute_dtype == "bfloat16" for layer in convs)
    assert all(v.dtype == tf.float32 for v in model.weights)  # variables stay float32
    assert model.layers[-1].compute_dtype == "float32" and model.output.dtype == tf.float32
    assert tf.keras.mixed_precision.global_policy().name == before  # restored after the build
