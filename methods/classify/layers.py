"""Custom Keras layers of the classifier zoo, registered for ``tf.keras.models.load_model``.

Importing this module imports TensorFlow, so plugin modules import it only inside
``build`` (``augbench list``/``describe`` must not load TensorFlow). Import it
before loading a saved model that contains these layers.
"""

from __future__ import annotations

import tensorflow as tf

from bench.convgrad import with_swapped_layers


@tf.keras.utils.register_keras_serializable(package="augbench")
class DRS(tf.keras.layers.Layer):
    """Deep Representation Scaling (Byra et al. 2021, Eq. 3–4), identity at initialisation.

    For an input y ∈ R^{H×W×C}:
    y'(i, j, k) = S^m(i, j) · y(i, j, k) + S^b(i, j)      (Eq. 3, spatial)
    z(i, j, k)  = D^m(k)    · y'(i, j, k) + D^b(k)        (Eq. 4, per channel)
    with S^m = 1, S^b = 0, D^m = 1, D^b = 0 at initialisation ("initialized as identity
    mappings", Byra 2021 §2.2). 2·H·W + 2·C weights.
    """

    def build(self, input_shape):
        _, h, w, c = (int(d) if d is not None else None for d in input_shape)
        if h is None or w is None or c is None:
            raise ValueError(f"DRS needs a fixed (H, W, C) input, got {tuple(input_shape)}")
        self.spatial_scale = self.add_weight(name="spatial_scale", shape=(h, w, 1), initializer="ones")
        self.spatial_bias = self.add_weight(name="spatial_bias", shape=(h, w, 1), initializer="zeros")
        self.channel_scale = self.add_weight(name="channel_scale", shape=(c,), initializer="ones")
        self.channel_bias = self.add_weight(name="channel_bias", shape=(c,), initializer="zeros")
        super().build(input_shape)

    def call(self, inputs):
        spatial = inputs * self.spatial_scale + self.spatial_bias  # Eq. 3
        return spatial * self.channel_scale + self.channel_bias  # Eq. 4

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return super().get_config()  # no arguments beyond name/dtype/trainable: shapes come from build


@tf.keras.utils.register_keras_serializable(package="augbench")
class SigmoidPair(tf.keras.layers.Layer):
    """A single logit z → (1 − σ(z), σ(z)), computed as softmax(0, z); no weights."""

    def call(self, inputs):
        return tf.keras.activations.softmax(tf.concat([tf.zeros_like(inputs), inputs], axis=-1))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 2)


@tf.keras.utils.register_keras_serializable(package="augbench")
class ShiftedMaxPooling2D(tf.keras.layers.MaxPooling2D):
    """``MaxPooling2D`` computed as the elementwise maximum of its pool_size[0] × pool_size[1]
    strided shifts of the input. The forward result is the same maximum, so the outputs are
    unchanged; the gradient goes through ``tf.maximum`` (a select) instead of ``MaxPoolGrad``,
    which has no deterministic XLA implementation ("MaxPool gradient ops do not yet have a
    deterministic XLA implementation" under ``enable_op_determinism``). Where several inputs of
    a window tie for the maximum, the gradient may go to another of them than MaxPoolGrad's.
    Channels-last only."""

    def call(self, inputs):
        if self.data_format != "channels_last":
            raise ValueError(f"{self.name}: ShiftedMaxPooling2D supports channels_last only")
        (ph, pw), (sh, sw) = self.pool_size, self.strides
        x = inputs
        h, w = int(x.shape[1]), int(x.shape[2])
        if self.padding == "same":  # TensorFlow's SAME: out = ceil(in / stride), padding never wins the max
            oh, ow = -(-h // sh), -(-w // sw)
            pad_h, pad_w = max((oh - 1) * sh + ph - h, 0), max((ow - 1) * sw + pw - w, 0)
            x = tf.pad(x, [[0, 0], [pad_h // 2, pad_h - pad_h // 2], [pad_w // 2, pad_w - pad_w // 2], [0, 0]],
                       constant_values=x.dtype.min)
        else:
            oh, ow = (h - ph) // sh + 1, (w - pw) // sw + 1
        out = None
        for i in range(ph):
            for j in range(pw):
                part = x[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw, :]
                out = part if out is None else tf.maximum(out, part)
        return out


def with_shifted_max_pooling(model):
    """A copy of functional ``model`` whose ``MaxPooling2D`` layers are :class:`ShiftedMaxPooling2D`
    (same configuration, same weights everywhere else), so that it trains under XLA with op
    determinism on; the model itself when it has no max pooling."""
    return with_swapped_layers(model, {tf.keras.layers.MaxPooling2D: ShiftedMaxPooling2D})
