"""A Conv2D whose input gradient is a forward convolution, shared by the NST encoders and the
classifier zoo.

On CPUs TensorFlow 2.15's ``Conv2DBackpropInput`` (Eigen's spatial-convolution backward-input
kernel; oneDNN does not take it over) can be far slower than a forward convolution on small,
wide feature maps: 254 ms against 7 ms for 2 × 2 × 512 maps of 16 images on a 2-core AVX-512
machine, and 0.19 s against 0.003 s for a 3 × 3, 512-channel convolution on 1 × 1 maps of 32
images on a 2-core AVX2 AMD EPYC, where it made 1.8 s of a 2.0 s ResNet50 training step at
32 px (docs/training-speed.md). The input gradient has exact forward forms:

- stride 1, odd kernel, SAME padding (or a 1 × 1 kernel): the forward SAME (VALID for 1 × 1)
  convolution of the output gradient with the kernel rotated by 180° and its channel axes
  swapped (the transposed convolution of stride 1; Dumoulin & Visin 2016, "A guide to
  convolution arithmetic for deep learning", §4.1, relationship 8);
- a 1 × 1 kernel with stride s, VALID padding: the output gradient times the transposed kernel,
  placed on every s-th row and column of a zero map of the input's size (ibid. §4.5: a transposed
  strided convolution puts s − 1 zeros between its inputs).

Same sums in another order: equal to the native gradient up to float rounding. Any other
configuration (dilation, groups, channels-first, larger strided kernels) keeps the native op.
Importing this module imports TensorFlow: import it where a model is built.
"""

from __future__ import annotations

import tensorflow as tf


def flip_kernel(kernel):
    """The kernel rotated by 180° in its spatial axes, input and output channels swapped."""
    return tf.transpose(tf.reverse(kernel, axis=[0, 1]), [0, 1, 3, 2])


def has_forward_form(kernel_size, strides, padding: str) -> bool:
    """Whether :func:`forward_input_gradient` has an exact forward form for this configuration
    (``padding``: 'SAME' or 'VALID')."""
    kh, kw = kernel_size
    if tuple(strides) == (1, 1):
        return (kh, kw) == (1, 1) or (padding == "SAME" and kh % 2 == 1 and kw % 2 == 1)
    return (kh, kw) == (1, 1) and padding == "VALID"


def forward_input_gradient(x, kernel, dy, strides: tuple[int, int], padding: str, flipped=None):
    """d loss / d ``x`` of ``conv2d(x, kernel, strides, padding)`` given the output gradient ``dy``,
    by a forward convolution (the configuration must pass :func:`has_forward_form`). ``flipped``:
    ``flip_kernel(kernel)`` when it is already at hand."""
    sh, sw = strides
    if (sh, sw) == (1, 1):
        return tf.nn.conv2d(dy, flip_kernel(kernel) if flipped is None else flipped, 1, padding)
    g = tf.nn.conv2d(dy, tf.transpose(kernel, [0, 1, 3, 2]), 1, "VALID")  # (n, oh, ow, c_in)
    n, oh, ow, c = tf.unstack(tf.shape(g))
    g = tf.pad(tf.reshape(g, [n, oh, 1, ow, 1, c]), [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]])
    size = tf.shape(x)
    g = tf.reshape(g, [n, oh * sh, ow * sw, c])[:, :size[1], :size[2], :]
    return tf.pad(g, [[0, 0], [0, size[1] - tf.shape(g)[1]], [0, size[2] - tf.shape(g)[2]], [0, 0]])


@tf.keras.utils.register_keras_serializable(package="augbench")
class InputGradConv2D(tf.keras.layers.Conv2D):
    """``Conv2D`` with the same forward op (``tf.nn.conv2d``) and its input gradient computed by
    :func:`forward_input_gradient` where that has a forward form; the kernel gradient is
    TensorFlow's own ``Conv2DBackpropFilter`` (pruned from graphs that do not ask for it, as in
    NST, which differentiates with respect to the image only). :meth:`freeze_input_gradient`
    stores the flipped kernel once when the weights are final (an NST encoder), so that a step
    does not flip and transpose every kernel again."""

    flipped_kernel = None

    def _fast(self) -> bool:
        return (self.data_format == "channels_last" and tuple(self.dilation_rate) == (1, 1) and self.groups == 1
                and self.padding in ("same", "valid")
                and has_forward_form(self.kernel_size, self.strides, self.padding.upper()))

    def freeze_input_gradient(self) -> None:
        if self._fast() and tuple(self.strides) == (1, 1):
            self.flipped_kernel = tf.Variable(flip_kernel(self.kernel), trainable=False, name=f"{self.name}_flipped")

    def convolution_op(self, inputs, kernel):
        if not self._fast():
            return super().convolution_op(inputs, kernel)
        strides, padding = tuple(self.strides), self.padding.upper()
        flipped = None if self.flipped_kernel is None else tf.convert_to_tensor(self.flipped_kernel)

        @tf.custom_gradient
        def conv(x, k):
            def grad(dy):
                dx = forward_input_gradient(x, k, dy, strides, padding, flipped)
                dk = tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=tf.shape(k), out_backprop=dy,
                                                     strides=[1, *strides, 1], padding=padding)
                return dx, dk

            return tf.nn.conv2d(x, k, strides, padding), grad

        return conv(inputs, tf.convert_to_tensor(kernel))


def with_swapped_layers(model, swaps: dict):
    """A copy of functional ``model`` in which every layer of exactly a class in ``swaps`` is
    rebuilt as ``swaps[class]`` (same configuration, same weights); the model itself when no
    layer is of such a class."""
    if not any(type(layer) in swaps for layer in model.layers):
        return model

    def clone(layer):
        return swaps.get(type(layer), type(layer)).from_config(layer.get_config())

    copy = tf.keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def with_input_grad_convs(model):
    """A copy of functional ``model`` whose ``Conv2D`` layers are :class:`InputGradConv2D` (same
    forward results, same weights); the model itself when it has none."""
    return with_swapped_layers(model, {tf.keras.layers.Conv2D: InputGradConv2D})
