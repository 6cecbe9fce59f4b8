"""The building blocks of StyleGAN2 as serialisable Keras layers.

Equalised learning rate (Karras et al. 2018, ProGAN §4.1): weights are stored as
N(0, 1/lr_mul²) draws and scaled at run time by lr_mul·1/√fan_in, so Adam's
per-parameter step acts alike on every layer. Leaky ReLU (slope 0.2) is followed
by a gain of √2 (He et al. 2015), which keeps unit second moments through a layer.

``ModulatedConv2D`` is Karras et al. 2020a §2.2, Eq. 1-3:

    w'_ijk = s_i · w_ijk                                    (Eq. 1, modulation)
    σ_j    = sqrt(Σ_{i,k} w'_ijk²)                           (Eq. 2, output std for unit-variance input)
    w''_ijk = w'_ijk / sqrt(Σ_{i,k} w'_ijk² + ε)             (Eq. 3, demodulation)

computed, as §2.2 allows, by scaling the input activations by s_i, convolving with the
shared weight and scaling each output channel by 1/σ_j (identical result, one
convolution for the whole batch instead of one per sample).

Every layer takes a ``seed`` so that its initial weights are a function of the
model's seed only (the contract: same seed, same images).
"""

from __future__ import annotations

import math

import tensorflow as tf

SQRT2 = math.sqrt(2.0)
LRELU_SLOPE = 0.2  # Karras et al. 2018, 2019, 2020a: leaky ReLU, α = 0.2


def lrelu(x):
    """Leaky ReLU with the √2 gain (He et al. 2015; Karras et al. 2018 §4.1)."""
    return tf.nn.leaky_relu(x, LRELU_SLOPE) * SQRT2


def normalize_2nd_moment(x, eps: float = 1e-8):
    """x / sqrt(mean(x²)) over the feature axis (Karras et al. 2019 §2: z is normalised before mapping)."""
    return x * tf.math.rsqrt(tf.reduce_mean(tf.square(x), axis=-1, keepdims=True) + eps)


def _normal(std: float, seed: int):
    return tf.keras.initializers.RandomNormal(0.0, std, seed=seed)


@tf.keras.utils.register_keras_serializable("augbench")
class EqualDense(tf.keras.layers.Layer):
    """Fully connected layer with equalised learning rate and optional lrelu."""

    def __init__(self, units: int, lr_mul: float = 1.0, bias_init: float = 0.0,
                 activation: str = "linear", seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.units, self.lr_mul, self.bias_init = units, lr_mul, bias_init
        self.activation, self.seed = activation, seed

    def build(self, input_shape):
        fan_in = int(input_shape[-1])
        self.weight = self.add_weight(name="weight", shape=(fan_in, self.units),
                                      initializer=_normal(1.0 / self.lr_mul, self.seed))
        self.bias = self.add_weight(name="bias", shape=(self.units,),
                                    initializer=tf.keras.initializers.Constant(self.bias_init / self.lr_mul))
        self.gain = self.lr_mul / math.sqrt(fan_in)

    def call(self, x):
        y = tf.matmul(x, self.weight * self.gain) + self.bias * self.lr_mul
        return lrelu(y) if self.activation == "lrelu" else y

    def get_config(self):
        return {**super().get_config(), "units": self.units, "lr_mul": self.lr_mul,
                "bias_init": self.bias_init, "activation": self.activation, "seed": self.seed}


@tf.keras.utils.register_keras_serializable("augbench")
class EqualConv2D(tf.keras.layers.Layer):
    """Convolution (SAME padding) with equalised learning rate, optional bias, lrelu and 2× average-pool
    downsampling after the activation (``down``; ours: a 2×2 box filter where Karras et al. 2020a low-pass
    filter with [1, 3, 3, 1] before striding)."""

    def __init__(self, filters: int, kernel: int = 3, use_bias: bool = True, activation: str = "linear",
                 down: bool = False, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel, self.use_bias = filters, kernel, use_bias
        self.activation, self.down, self.seed = activation, down, seed

    def build(self, input_shape):
        fan_in = int(input_shape[-1]) * self.kernel**2
        self.weight = self.add_weight(name="weight", shape=(self.kernel, self.kernel, int(input_shape[-1]),
                                                            self.filters), initializer=_normal(1.0, self.seed))
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros") if self.use_bias else None
        self.gain = 1.0 / math.sqrt(fan_in)

    def call(self, x):
        y = tf.nn.conv2d(x, self.weight * self.gain, strides=1, padding="SAME")
        if self.bias is not None:
            y = y + self.bias
        if self.activation == "lrelu":
            y = lrelu(y)
        return tf.nn.avg_pool2d(y, 2, 2, "VALID") if self.down else y

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel": self.kernel, "use_bias": self.use_bias,
                "activation": self.activation, "down": self.down, "seed": self.seed}


def demodulation(weight, styles, eps: float = 1e-8):
    """1/σ_j of Karras et al. 2020a Eq. 3 per sample: rsqrt(Σ_i s_i² Σ_k w_ijk² + ε), shape (B, out)."""
    w2 = tf.reduce_sum(tf.square(weight), axis=[0, 1])  # (in, out): Σ_k over the kernel taps
    return tf.math.rsqrt(tf.matmul(tf.square(styles), w2) + eps)


@tf.keras.utils.register_keras_serializable("augbench")
class ModulatedConv2D(tf.keras.layers.Layer):
    """Modulated (and optionally demodulated) convolution, Karras et al. 2020a Eq. 1-3.

    ``call([x, w])``: the style s = A(w) is an equalised dense layer with bias 1
    (Karras et al. 2019 §2: styles start at identity scale)."""

    def __init__(self, filters: int, kernel: int = 3, demodulate: bool = True, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel, self.demodulate, self.seed = filters, kernel, demodulate, seed

    def build(self, input_shape):
        x_shape, _ = input_shape
        in_ch = int(x_shape[-1])
        self.affine = EqualDense(in_ch, bias_init=1.0, seed=self.seed + 1, name="affine")
        self.weight = self.add_weight(name="weight", shape=(self.kernel, self.kernel, in_ch, self.filters),
                                      initializer=_normal(1.0, self.seed))
        self.gain = 1.0 / math.sqrt(in_ch * self.kernel**2)

    def styles(self, w):
        return self.affine(w)

    def call(self, inputs):
        x, w = inputs
        s = self.styles(w)
        weight = self.weight * self.gain
        y = tf.nn.conv2d(x * s[:, None, None, :], weight, strides=1, padding="SAME")  # Eq. 1, on activations
        if self.demodulate:
            y = y * demodulation(weight, s)[:, None, None, :]  # Eq. 3
        return y

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel": self.kernel,
                "demodulate": self.demodulate, "seed": self.seed}


@tf.keras.utils.register_keras_serializable("augbench")
class StyleConv(tf.keras.layers.Layer):
    """One synthesis layer (Karras et al. 2020a Fig. 2c-d): optional 2× upsampling, modulated 3×3
    convolution, per-pixel noise × a learned per-channel strength (initially 0, Karras et al. 2019 §2),
    bias, lrelu. Upsampling is bilinear: with half-pixel centres that is the separable [1, 3, 3, 1]/4
    filter on a zero-stuffed map, the filter Karras et al. use (boundary handling aside).

    ``call([x, w], noise_seed=None)``: noise from a stateless generator keyed on ``noise_seed``
    (int32, shape (2,)); ``None`` means no noise."""

    def __init__(self, filters: int, up: bool = False, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.up, self.seed = filters, up, seed

    def build(self, input_shape):
        self.conv = ModulatedConv2D(self.filters, 3, seed=self.seed, name="conv")
        self.noise_strength = self.add_weight(name="noise_strength", shape=(), initializer="zeros")
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")

    def call(self, inputs, noise_seed=None):
        x, w = inputs
        if self.up:
            x = tf.image.resize(x, 2 * tf.shape(x)[1:3], method="bilinear")
        y = self.conv([x, w])
        if noise_seed is not None:
            shape = tf.concat([tf.shape(y)[:3], [1]], axis=0)
            y = y + self.noise_strength * tf.random.stateless_normal(shape, noise_seed)
        return lrelu(y + self.bias)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "up": self.up, "seed": self.seed}


@tf.keras.utils.register_keras_serializable("augbench")
class ToImage(tf.keras.layers.Layer):
    """tRGB of the skip generator (Karras et al. 2020a Fig. 7): modulated 1×1 convolution without
    demodulation, plus bias; here to one grey channel."""

    def __init__(self, channels: int = 1, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.seed = channels, seed

    def build(self, input_shape):
        self.conv = ModulatedConv2D(self.channels, 1, demodulate=False, seed=self.seed, name="conv")
        self.bias = self.add_weight(name="bias", shape=(self.channels,), initializer="zeros")

    def call(self, inputs):
        return self.conv(inputs) + self.bias

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "seed": self.seed}


@tf.keras.utils.register_keras_serializable("augbench")
class MinibatchStd(tf.keras.layers.Layer):
    """Minibatch standard deviation (Karras et al. 2018 §3): the std over groups of ``group_size``
    samples, averaged over features and pixels, appended as one feature map."""

    def __init__(self, group_size: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.group_size = group_size

    def call(self, x):
        b, h, w, c = x.shape
        g = min(self.group_size, b) if b else self.group_size
        while b and b % g:
            g -= 1
        y = tf.reshape(x, [g, -1, h, w, c])
        y = tf.sqrt(tf.reduce_mean(tf.square(y - tf.reduce_mean(y, axis=0)), axis=0) + 1e-8)
        y = tf.reduce_mean(y, axis=[1, 2, 3])  # (B/g,)
        y = tf.tile(y[None, :, None, None, None], [g, 1, h, w, 1])
        return tf.concat([x, tf.reshape(y, [-1, h, w, 1])], axis=-1)

    def get_config(self):
        return {**super().get_config(), "group_size": self.group_size}
