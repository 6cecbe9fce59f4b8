"""Custom Keras layers of the classifier zoo, registered for ``tf.keras.models.load_model``.

Importing this module imports TensorFlow, so plugin modules import it only inside
``build`` (``augbench list``/``describe`` must not load TensorFlow). Import it
before loading a saved model that contains these layers.
"""

from __future__ import annotations

import tensorflow as tf


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
