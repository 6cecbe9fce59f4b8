"""Layer-wise relevance propagation (LRP) for tf.keras functional models.

``explain(model, x)`` gives every input element x_i a relevance R_i, its share of
the model's output f(x). Relevance starts at the explained output unit and is
handed backwards layer by layer: neuron j sends messages R_{i←j} to the neurons
i that feed it (Panigrahi et al. 2024, Eq. 10), neuron i sums what it receives
(Eq. 11), so each layer's total equals the next one's (Eq. 12) and, down to the
input, f(x) (Eq. 13) — up to what biases absorb and stabilisers lose.

Rules, for a linear layer z_j = Σ_i z_ij + b_j with contributions z_ij = a_i w_ij
(Panigrahi Eq. 15 is this sum for a convolution):

``alpha-beta``  Panigrahi Eq. 16; Montavon, Samek & Müller 2018 (αβ-rule)
    R_i = Σ_j (α z_ij⁺ / z_j⁺ − β z_ij⁻ / z_j⁻) R_j, where z_ij⁺ = (a_i w_ij)⁺ =
    a_i⁺ w_ij⁺ + a_i⁻ w_ij⁻ and z_j⁺ = Σ_i z_ij⁺ + b_j⁺ (negative parts alike).
    α − β = 1 is required (α2β1 and α1β0 are the usual choices). The bias sits in
    the denominators and keeps its share: relevance is absorbed by biases, and a
    neuron with no negative (or positive) contribution passes on only α R_j (or
    −β R_j), so α2β1 conserves relevance only where both parts exist.
``epsilon``  Bach et al. 2015; Montavon et al. 2018 (ε-rule)
    R_i = Σ_j z_ij / (z_j + ε·sign(z_j)) R_j, z_j with the bias, sign(0) = +1.
    A tiny ε is LRP-0, which on ReLU networks equals gradient × input
    (Ancona et al. 2018); larger ε (e.g. 0.25) smooths the explanation.
``z-plus``  Montavon et al. 2017, deep Taylor decomposition (z⁺-rule)
    R_i = Σ_j z_ij⁺ / Σ_i z_ij⁺ R_j: α1β0 with the biases ignored.
``box`` (``input_rule="box"``)  Montavon et al. 2017 (z^B-rule), first layer only
    R_i = Σ_j (x_i w_ij − l_i w_ij⁺ − h_i w_ij⁻) / Σ_i (x_i w_ij − l_i w_ij⁺ − h_i w_ij⁻) R_j
    for inputs bounded by l ≤ x ≤ h (``low``, ``high``: in the model's input space,
    e.g. 0 and 1 for images in [0, 1], or the range after a model's own
    preprocessing). Biases ignored. It applies to each weighted layer reached from
    the input before any other weighted layer; the bounds are carried to it
    through the layers in between (padding, rescaling, resizing, ...).

In the αβ, z⁺ and box rules every numerator has the sign of its denominator, so a
zero denominator means zero contributions: the message is zero (no NaN/inf). The
ε-rule divides by z + ε·sign(z); with ε = 0 a zero z gives zero as well.
``Σ_j w_ij s_j`` is computed by the gradient trick (Montavon et al. 2018): it is the
vector–Jacobian product of a ↦ z(a) with s = R / z, taken by ``tf.GradientTape``.
All arithmetic is in float64 (``DTYPE``).

Layers (each layer is looked up by its exact class; subclasses are refused):

- The weighted layers Conv2D (strides, dilation, 'same'/'valid', bias),
  DepthwiseConv2D (the same options, any depth multiplier M) and Dense: the rule.
  A depthwise convolution is a linear layer like any other, only sparser: output
  channel c·M + m reads input channel c alone (kernel[:, :, c, m]), so the rule's
  sums over i run over one channel's window. Their activation, and
  Activation/ReLU/LeakyReLU/ELU layers, pass relevance through unchanged
  (elementwise: each output has exactly one input).
- BatchNormalization right after a weighted layer (linear activation, sole
  consumer) is folded into it ("canonisation", as zennit's canonizers):
  W' = W·γ/√(σ²+ε), b' = (b − μ)·γ/√(σ²+ε) + β, the factor taken per output channel
  (for DepthwiseConv2D: γ/√(σ²+ε) reshaped to the kernel's (C, M) axes). ``canonize``
  returns the folded graph and ``canonization_error`` checks that it computes what
  the model computes. Any other
  BatchNormalization, Rescaling, Normalization and augbench's DRS layer
  (``methods.classify.layers``, Byra 2021 Eq. 3–4) are elementwise affine maps:
  pass-through (their bias is not given a share).
- Add, Average, AveragePooling2D, GlobalAveragePooling2D (keepdims or not),
  Resizing (bilinear, nearest, area): linear maps with non-negative weights (all 1 for Add) and no
  bias, given the same rule with its sign handling and stabiliser: a residual Add
  splits each sum's relevance between the branches in proportion to their
  contributions z_k — ε-rule: z_k / (Σ z + ε·sign Σ z); z⁺: z_k⁺ / Σ z⁺; αβ:
  α z_k⁺/Σ z⁺ − β z_k⁻/Σ z⁻. For αβ one change keeps the layer conservative: where
  a sum has contributions of one sign only, that part takes the whole relevance
  (factor 1 instead of α or β). Without it, α2β1 hands on 2R at every pooling of
  ReLU outputs and every residual sum of non-negative branches (the "relevance
  doubling" trouble spot: on a random-weight ResNet50 at 64 px the input relevance
  came out ~6000 × the logit).
  For non-negative inputs every rule is "proportional to contributions".
- Multiply of a signal x and a gate g (squeeze-and-excitation: g = sigmoid(...) of a
  globally pooled branch, broadcast over space; EfficientNet's ``*_se_excite``):
  signal-take-all (Arras, Montavon, Müller & Samek 2017, "Explaining recurrent neural
  network predictions in sentiment analysis": their treatment of LSTM gates). The gate is
  held as a constant weight, so y = g ⊙ x is elementwise in x and the whole
  relevance R_y goes to x (summed where x was broadcast); g receives none.
  Relevance is conserved through the layer, and the gate's branch (pooling, the two
  small layers, the sigmoid) gets zero relevance: the explanation says which signal
  elements mattered, not why the channel weights came out as they did. The gate
  input is the one produced by a sigmoid/hard_sigmoid (a weighted layer's
  activation or an Activation layer, looking back through Reshape, Dropout and
  other single-input routing layers); if that does not single one out, the one that
  is spatially 1×1 while the other is not. A product of two signals (neither input a
  gate) has no rule here and is refused, as is a Multiply of more than two inputs.
- MaxPooling2D, GlobalMaxPooling2D: winner-take-all — the relevance of a window
  goes to its maximum (where windows overlap an input collects from each window it
  wins; ties are broken as TensorFlow's max-pool gradient does).
- ZeroPadding2D, Cropping2D, Flatten, Reshape, Permute, Concatenate, Dropout and
  friends (identity at inference): relevance is routed back by the transposed op
  (padding cropped, concatenation split, reshape undone).
- InputLayer; nested functional models (a backbone inside a classifier) are inlined.
- Anything else (Lambda, TFOpLambda, SeparableConv2D, grouped Conv2D, recurrent
  layers, subclassed models, ...) is refused by ``UnsupportedLayerError`` naming
  every such layer and listing what is supported; ``register_layer`` adds a layer
  class.

Output: the explained quantity is the target unit's *logit*, the input of the final
softmax/sigmoid (a weighted layer's activation, an Activation or Softmax layer at the
output is removed; ``Graph.head`` keeps it for ``Graph.predict``). Relevance starts
as that logit at the target unit and zero elsewhere (Montavon et al. 2018). For
augbench's ``SigmoidPair`` head, softmax(0, z) = softmax(−z/2, z/2): the pair is
folded into its Dense(1) as a Dense(2) with centred logits ±z/2, so both classes are
explained like a softmax head. A single sigmoid unit is explained through its logit
z whatever the prediction (negative z: relevances sum to a negative number).
``target=None`` explains each image's predicted (largest-logit) unit.

The explained model is the inference-mode model (BatchNorm moving statistics,
dropout off).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np
import tensorflow as tf

from bench.errors import AugbenchError
from bench.typed import suggest

DTYPE = tf.float64  # float32 rounding would blur the conservation checks (Panigrahi Eq. 12-13)
ONE = tf.constant(1.0, DTYPE)  # the kernel of the weightless linear layers (sums and averages)
# Panigrahi 2024 Eq. 16 names α and β but not their values; α2β1 is Montavon et al. 2018's usual choice (ours).
ALPHA, BETA = 2.0, 1.0
# Stabiliser of the ε-rule's denominators (ours: small enough to be LRP-0 in practice).
EPSILON = 1e-6
# Elementwise activation functions: relevance passes through them unchanged.
ELEMENTWISE = frozenset({"linear", "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "swish", "silu",
                         "mish", "tanh", "sigmoid", "hard_sigmoid", "softplus", "softsign", "exponential"})
# Trailing Activation layers removed as the output function (Dense/Conv2D lose whatever activation they have).
OUTPUT_FUNCTIONS = frozenset({"linear", "softmax", "sigmoid"})


class UnsupportedLayerError(AugbenchError, ValueError):
    """A model holds layers LRP cannot propagate through."""

    def __init__(self, model: str, problems: Sequence[tuple[str, str, str]]):
        """``problems``: (layer name, layer class, what is wrong) for every refused layer."""
        self.problems = list(problems)
        groups: dict[tuple[str, str], list[str]] = {}
        for name, cls, problem in self.problems:
            groups.setdefault((cls, problem), []).append(repr(name))
        text = "; ".join(f"{cls}: {problem} ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''}"
                         f"{f', {len(names)} layers' if len(names) > 1 else ''})"
                         for (cls, problem), names in groups.items())
        super().__init__(f"{model}: cannot explain {len(self.problems)} layer(s): {text}. LRP supports: "
                         f"{', '.join(supported_layers())}, and nested functional models")


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True, eq=False)
class Linear:
    """z = apply(inputs, kernel) + bias, linear in ``inputs`` (a list of tensors)."""

    apply: Callable[[list, tf.Tensor], tf.Tensor]
    kernel: tf.Tensor
    bias: tf.Tensor | None = None


def _nonzero(tensors) -> bool:
    return any(bool(tf.reduce_any(t != 0)) for t in tensors)


def _traced(apply: Callable, a: list, w):
    with tf.GradientTape() as tape:
        tape.watch(a)
        y = apply(a, w)
    return y, tape


def _redistribute(lin: Linear, terms, bias, relevance, divide, like: list) -> list:
    """Messages summed per input (Panigrahi Eq. 10-11): R_i = Σ_terms c·a_i·Σ_j w_ij·s_j with
    s_j = divide(R_j, z_j), z_j = Σ_terms c·Σ_i a_i w_ij + bias_j; ``terms`` are (c, a, w).
    Σ_j w_ij s_j is the vector-Jacobian product of a ↦ apply(a, w) (the gradient trick)."""
    out = [tf.zeros_like(t) for t in like]
    live = [(c, a, w) for c, a, w in terms if _nonzero([w]) and _nonzero(a)]
    if not live:
        return out
    traced = [_traced(lin.apply, a, w) for _, a, w in live]
    z = tf.add_n([c * y for (c, _, _), (y, _) in zip(live, traced, strict=True)])
    s = divide(relevance, z if bias is None else z + bias)
    for (c, a, _), (y, tape) in zip(live, traced, strict=True):
        grads = tape.gradient(y, a, output_gradients=s)
        out = [o + c * t * (tf.zeros_like(t) if g is None else g) for o, t, g in zip(out, a, grads, strict=True)]
    return out


def _total(lin: Linear, terms, bias):
    """z_j = Σ_terms c·Σ_i a_i w_ij + bias_j (0 when every term is zero)."""
    z = [c * lin.apply(a, w) for c, a, w in terms if _nonzero([w]) and _nonzero(a)]
    z = tf.add_n(z) if z else tf.zeros((), DTYPE)
    return z if bias is None else z + bias


def _safe_divide(r, z):
    """r / z, and 0 where z = 0 (all contributions zero)."""
    return tf.math.divide_no_nan(r, z)


def _positive(ts: list) -> list:
    return [tf.nn.relu(t) for t in ts]


def _negative(ts: list) -> list:
    return [tf.minimum(t, tf.zeros_like(t)) for t in ts]


def _part(b, sign: int):
    if b is None:
        return None
    return tf.nn.relu(b) if sign > 0 else tf.minimum(b, tf.zeros_like(b))


RULES: dict[str, type[Rule]] = {}


def register_rule(name: str):
    """Class decorator: make a rule available to ``explain(rule=name)``; a taken name raises."""
    def add(cls):
        if name in RULES:
            raise ValueError(f"LRP rule {name!r} is already registered by {RULES[name].__qualname__}")
        cls.name = name
        RULES[name] = cls
        return cls
    return add


class Rule:
    """Redistributes the relevance of a linear layer's outputs onto its inputs."""

    name: ClassVar[str] = ""

    @classmethod
    def from_options(cls, *, alpha: float, beta: float, epsilon: float) -> Rule:
        raise NotImplementedError

    def for_weightless(self) -> Rule:
        """The rule for the weightless linear layers (sums, average pools, resizes)."""
        return self

    def __call__(self, lin: Linear, a: list, relevance) -> list:
        raise NotImplementedError


@register_rule("epsilon")
@dataclass(frozen=True)
class Epsilon(Rule):
    """R_i = Σ_j z_ij / (z_j + ε sign z_j) R_j (Bach et al. 2015; Montavon et al. 2018)."""

    epsilon: float = EPSILON

    def __post_init__(self):
        if not self.epsilon >= 0:
            raise ValueError(f"epsilon must be >= 0, got {self.epsilon}")

    @classmethod
    def from_options(cls, *, alpha, beta, epsilon):
        return cls(epsilon)

    def divide(self, r, z):
        return tf.math.divide_no_nan(r, z + self.epsilon * tf.where(z >= 0, ONE, -ONE))

    def __call__(self, lin, a, relevance):
        return _redistribute(lin, [(1.0, a, lin.kernel)], lin.bias, relevance, self.divide, a)


@register_rule("alpha-beta")
@dataclass(frozen=True)
class AlphaBeta(Rule):
    """Panigrahi Eq. 16: R_i = Σ_j (α z_ij⁺/z_j⁺ − β z_ij⁻/z_j⁻) R_j, biases in z_j^±.

    ``conserve`` (used at sums and average pools): where z_j⁻ = 0 the positive part
    takes factor 1 instead of α, where z_j⁺ = 0 the negative part takes −1 instead of β."""

    alpha: float = ALPHA
    beta: float = BETA
    conserve: bool = False

    def __post_init__(self):
        if self.beta < 0 or abs(self.alpha - self.beta - 1.0) > 1e-9:
            raise ValueError(f"the alpha-beta rule needs alpha - beta = 1 and beta >= 0 (Montavon et al. 2018), "
                             f"got alpha={self.alpha}, beta={self.beta}; e.g. alpha=2, beta=1 or alpha=1, beta=0")

    @classmethod
    def from_options(cls, *, alpha, beta, epsilon):
        return cls(alpha, beta)

    def for_weightless(self) -> Rule:
        return replace(self, conserve=True)

    def __call__(self, lin, a, relevance):
        wp, wn = _part(lin.kernel, 1), _part(lin.kernel, -1)
        ap, an = _positive(a), _negative(a)
        pos_terms, neg_terms = [(1.0, ap, wp), (1.0, an, wn)], [(1.0, ap, wn), (1.0, an, wp)]
        bp, bn = _part(lin.bias, 1), _part(lin.bias, -1)
        alpha, beta = self.alpha, self.beta
        if self.conserve:
            alpha = tf.where(_total(lin, neg_terms, bn) != 0, tf.constant(alpha, DTYPE), ONE)
            beta = tf.where(_total(lin, pos_terms, bp) != 0, tf.constant(beta, DTYPE), -ONE)
        pos = _redistribute(lin, pos_terms, bp, alpha * relevance, _safe_divide, a)
        if self.beta == 0 and not self.conserve:
            return pos
        neg = _redistribute(lin, neg_terms, bn, beta * relevance, _safe_divide, a)
        return [p - q for p, q in zip(pos, neg, strict=True)]


@register_rule("z-plus")
@dataclass(frozen=True)
class ZPlus(Rule):
    """R_i = Σ_j z_ij⁺ / Σ_i z_ij⁺ R_j, biases ignored (Montavon et al. 2017)."""

    @classmethod
    def from_options(cls, *, alpha, beta, epsilon):
        return cls()

    def __call__(self, lin, a, relevance):
        terms = [(1.0, _positive(a), _part(lin.kernel, 1)), (1.0, _negative(a), _part(lin.kernel, -1))]
        return _redistribute(lin, terms, None, relevance, _safe_divide, a)


@dataclass(frozen=True, eq=False)
class ZBox(Rule):
    """z^B for inputs with low ≤ x ≤ high (Montavon et al. 2017); biases ignored."""

    low: tf.Tensor
    high: tf.Tensor
    name: ClassVar[str] = "box"

    def __call__(self, lin, a, relevance):
        terms = [(1.0, a, lin.kernel), (-1.0, [self.low], _part(lin.kernel, 1)),
                 (-1.0, [self.high], _part(lin.kernel, -1))]
        return _redistribute(lin, terms, None, relevance, _safe_divide, a)


INPUT_RULES = ("box",)


def make_rule(name: str, *, alpha: float = ALPHA, beta: float = BETA, epsilon: float = EPSILON) -> Rule:
    """The registered rule ``name`` with the options it takes."""
    if name not in RULES:
        raise ValueError(f"unknown LRP rule {name!r}; known: {', '.join(sorted(RULES))} {suggest(name, RULES)}")
    return RULES[name].from_options(alpha=alpha, beta=beta, epsilon=epsilon)


# --------------------------------------------------------------------------- layers


@dataclass(frozen=True, eq=False)
class Op:
    """One call of a (leaf) layer in the flattened graph; tensors are named by integer keys."""

    layer: Any
    handler: Handler | None
    inputs: tuple[int, ...]
    output: int
    kernel: tf.Tensor | None = None  # float64; BatchNorm folded in
    bias: tf.Tensor | None = None
    activation: str = "linear"
    folded: tuple[str, ...] = ()  # names of the BatchNormalization layers folded into this one
    shapes: tuple[tuple, ...] = ()  # static shapes of the inputs (batch dimension None)
    gate: int | None = None  # Multiply: index of the input that is the gate (set by ``Handler.resolve``)

    @property
    def name(self) -> str:
        return self.layer.name

    def describe(self) -> str:
        return f"{self.name!r} ({type(self.layer).__name__})"


def _no_params(layer):
    return None, None, "linear"


def _unit_kernel(layer):
    return ONE, None, "linear"


def _no_problem(op: Op) -> str:
    return ""


def _scale_kernel(kernel, scale):
    """A kernel whose last axis is the output channel, times a per-output-channel ``scale``."""
    return kernel * scale


def _as_is(op: Op, producers: dict) -> Op:
    return op


@dataclass(frozen=True)
class Handler:
    """How one layer class runs forward and sends relevance back.

    ``kind``: ``linear`` (the rule; ``fn(op, a, kernel)`` is z without the bias),
    ``route`` (relevance routed by the transposed op; ``fn(op, a)`` is the output),
    ``elementwise`` (relevance passed through; ``fn(op, a)`` is the output) or
    ``gate`` (a product signal × gate: all relevance to the signal, ``op.gate`` names the
    gate input; ``fn(op, a)`` is the output).
    ``params(layer)`` gives (kernel, bias, activation); ``weighted``: a Conv2D, DepthwiseConv2D
    or Dense (BatchNorm folds into it, the box rule applies to it); ``fold(kernel, scale)``:
    the kernel with each output channel multiplied by ``scale`` (BatchNorm folding);
    ``resolve(op, producers)``: the op completed from the ops producing its inputs
    ({tensor key: op}; e.g. which input of a Multiply is the gate); ``check(op)`` names a
    configuration that cannot be handled ('' when fine)."""

    kind: str
    fn: Callable
    params: Callable = _no_params
    check: Callable[[Op], str] = _no_problem
    weighted: bool = False
    fold: Callable = _scale_kernel
    resolve: Callable[[Op, dict], Op] = _as_is


_LAYERS: dict[type | str, Handler] = {}


def register_layer(key: type | str, handler: Handler) -> None:
    """Support a layer class (or a Keras registered name such as ``'package>Name'``)."""
    if key in _LAYERS:
        raise ValueError(f"LRP already handles {key!r}")
    _LAYERS[key] = handler


def supported_layers() -> list[str]:
    return sorted(k if isinstance(k, str) else k.__name__ for k in _LAYERS)


def _handler(layer) -> Handler | None:
    return _LAYERS.get(type(layer)) or _LAYERS.get(tf.keras.utils.get_registered_name(type(layer)))


def _as64(value) -> tf.Tensor:
    return tf.constant(np.asarray(value, np.float64), DTYPE)


def _activation_name(fn) -> str:
    name = tf.keras.activations.serialize(fn)
    return name if isinstance(name, str) else repr(fn)


def _call(op: Op, a: list):
    return op.layer.call(a[0] if len(a) == 1 else a)


def _identity(op: Op, a: list):
    return a[0]


def _weights(layer, kernel: str = "kernel"):
    bias = _as64(layer.bias.numpy()) if layer.use_bias else None
    return _as64(getattr(layer, kernel).numpy()), bias, _activation_name(layer.activation)


def _conv2d(op: Op, a: list, kernel):
    layer = op.layer
    return tf.nn.conv2d(a[0], kernel, strides=layer.strides, padding=layer.padding.upper(),
                        dilations=layer.dilation_rate)


def _depthwise_weights(layer):
    return _weights(layer, "depthwise_kernel")


def _depthwise(op: Op, a: list, kernel):
    """Output channel c·M + m = input channel c convolved with kernel[:, :, c, m] (M: depth multiplier)."""
    layer = op.layer
    return tf.nn.depthwise_conv2d(a[0], kernel, strides=(1, *layer.strides, 1), padding=layer.padding.upper(),
                                  dilations=layer.dilation_rate)


def _scale_depthwise(kernel, scale):
    """Per-output-channel scale on a (kh, kw, C, M) kernel: output channel c·M + m is kernel[..., c, m]."""
    return kernel * tf.reshape(scale, kernel.shape[2:])


def _dense(op: Op, a: list, kernel):
    return tf.tensordot(a[0], kernel, [[a[0].shape.rank - 1], [0]])


def _pool(op: Op, a: list, kernel):
    return kernel * op.layer.call(a[0])


def _add(op: Op, a: list, kernel):
    return kernel * tf.add_n(a)


def _average(op: Op, a: list, kernel):
    return kernel * tf.add_n(a) / len(a)


def _resize(op: Op, a: list, kernel):
    layer = op.layer  # tf.image.resize gives float32 for bilinear/area: that layer is float32-exact only
    out = tf.image.resize(a[0], (layer.height, layer.width), method=layer.interpolation)
    return kernel * tf.cast(out, DTYPE)


def _activation(op: Op, a: list):
    return tf.keras.activations.get(_activation_name(op.layer.activation))(a[0])


def bn_scale_shift(layer) -> tuple[tf.Tensor, tf.Tensor]:
    """Inference BatchNorm as y = x·scale + shift: scale = γ/√(σ²+ε), shift = β − μ·scale."""
    mean, var = _as64(layer.moving_mean.numpy()), _as64(layer.moving_variance.numpy())
    gamma = _as64(layer.gamma.numpy()) if layer.scale else tf.ones_like(mean)
    beta = _as64(layer.beta.numpy()) if layer.center else tf.zeros_like(mean)
    scale = gamma / tf.sqrt(var + layer.epsilon)
    return scale, beta - mean * scale


def _batchnorm(op: Op, a: list):
    scale, shift = bn_scale_shift(op.layer)
    return a[0] * scale + shift


def _rescaling(op: Op, a: list):
    return a[0] * _as64(op.layer.scale) + _as64(op.layer.offset)


def _normalization(op: Op, a: list):
    layer = op.layer
    mean, std = _as64(layer.mean.numpy()), tf.maximum(tf.sqrt(_as64(layer.variance.numpy())),
                                                      tf.keras.backend.epsilon())
    return mean + a[0] * std if getattr(layer, "invert", False) else (a[0] - mean) / std


def _drs(op: Op, a: list):
    """augbench's DRS layer (Byra 2021 Eq. 3-4): spatial then per-channel scale and bias."""
    layer = op.layer
    spatial = a[0] * _as64(layer.spatial_scale.numpy()) + _as64(layer.spatial_bias.numpy())
    return spatial * _as64(layer.channel_scale.numpy()) + _as64(layer.channel_bias.numpy())


def _check_activation(op: Op) -> str:
    name = op.activation if op.handler.weighted else _activation_name(op.layer.activation)
    return "" if name in ELEMENTWISE else f"activation {name!r} is not elementwise (allowed only at the output)"


def _check_channels_last(op: Op) -> str:
    fmt = getattr(op.layer, "data_format", "channels_last")
    return "" if fmt == "channels_last" else f"data_format {fmt!r} (only channels_last)"


def _check_conv(op: Op) -> str:
    groups = "" if op.layer.groups == 1 else f"groups={op.layer.groups} (only 1)"
    return _check_channels_last(op) or groups or _check_activation(op)


def _check_depthwise(op: Op) -> str:
    return _check_channels_last(op) or _check_activation(op)


# Output functions that make a tensor a multiplicative gate in (0, 1) (squeeze-and-excitation, LSTM gates).
GATE_FUNCTIONS = frozenset({"sigmoid", "hard_sigmoid"})


def _squashed(key: int, producers: dict) -> bool:
    """Whether tensor ``key`` is a sigmoid/hard_sigmoid output, looking back through single-input
    routing layers (Reshape, Dropout, ...: they move values, they do not change them)."""
    op = producers.get(key)
    while op is not None and op.handler is not None and op.handler.kind == "route" and len(op.inputs) == 1:
        op = producers.get(op.inputs[0])
    if op is None or op.handler is None:
        return False
    if op.handler.kind == "linear":
        return op.activation in GATE_FUNCTIONS
    return type(op.layer) is tf.keras.layers.Activation and _activation_name(op.layer.activation) in GATE_FUNCTIONS


def _pointwise(shape: tuple) -> bool:
    """Spatially 1×1: every axis between batch and channels has size 1 (it broadcasts over space)."""
    return len(shape) >= 3 and all(d == 1 for d in shape[1:-1])


def _resolve_gate(op: Op, producers: dict) -> Op:
    """Which of a Multiply's two inputs is the gate: the one that is a sigmoid/hard_sigmoid output,
    else the one that is spatially 1×1 beside a larger map; None (refused by the check) otherwise."""
    if len(op.inputs) != 2:
        return op
    for found in ([_squashed(k, producers) for k in op.inputs], [_pointwise(s) for s in op.shapes]):
        if found.count(True) == 1:
            return replace(op, gate=found.index(True))
    return op


def _check_gate(op: Op) -> str:
    if len(op.inputs) != 2:
        return f"{len(op.inputs)} inputs (only signal × gate)"
    if op.gate is None:
        return ("neither input is a gate (a sigmoid/hard_sigmoid output, or spatially 1×1 beside a larger "
                "map): a product of two signals has no LRP rule here")
    return ""


def _check_batchnorm(op: Op) -> str:
    axis, ndim = list(op.layer.axis), op.layer.input_spec.ndim
    return "" if axis == [ndim - 1] else f"axis {axis} (only the last axis)"


def _check_resizing(op: Op) -> str:
    layer = op.layer
    if layer.crop_to_aspect_ratio:
        return "crop_to_aspect_ratio=True"
    ok = ("bilinear", "nearest", "area")
    return "" if layer.interpolation in ok else f"interpolation {layer.interpolation!r} (only {', '.join(ok)})"


def _register_builtins() -> None:
    L = tf.keras.layers
    linear, route, elementwise = "linear", "route", "elementwise"
    table: list[tuple[type | str, Handler]] = [
        (L.Conv2D, Handler(linear, _conv2d, _weights, _check_conv, weighted=True)),
        (L.DepthwiseConv2D, Handler(linear, _depthwise, _depthwise_weights, _check_depthwise, weighted=True,
                                    fold=_scale_depthwise)),
        (L.Dense, Handler(linear, _dense, _weights, _check_activation, weighted=True)),
        (L.Add, Handler(linear, _add, _unit_kernel)),
        (L.Average, Handler(linear, _average, _unit_kernel)),
        (L.AveragePooling2D, Handler(linear, _pool, _unit_kernel, _check_channels_last)),
        (L.GlobalAveragePooling2D, Handler(linear, _pool, _unit_kernel, _check_channels_last)),
        (L.Resizing, Handler(linear, _resize, _unit_kernel, _check_resizing)),
        (L.MaxPooling2D, Handler(route, _call, check=_check_channels_last)),
        (L.GlobalMaxPooling2D, Handler(route, _call, check=_check_channels_last)),
        (L.ZeroPadding2D, Handler(route, _call, check=_check_channels_last)),
        (L.Cropping2D, Handler(route, _call, check=_check_channels_last)),
        (L.Flatten, Handler(route, _call)),
        (L.Reshape, Handler(route, _call)),
        (L.Permute, Handler(route, _call)),
        (L.Concatenate, Handler(route, _call)),
        (L.Multiply, Handler("gate", _call, check=_check_gate, resolve=_resolve_gate)),
        *((cls, Handler(route, _identity)) for cls in (L.Dropout, L.SpatialDropout2D, L.GaussianDropout,
                                                      L.GaussianNoise)),
        (L.Activation, Handler(elementwise, _activation, check=_check_activation)),
        *((cls, Handler(elementwise, _call)) for cls in (L.ReLU, L.LeakyReLU, L.ELU)),
        (L.BatchNormalization, Handler(elementwise, _batchnorm, check=_check_batchnorm)),
        (L.Rescaling, Handler(elementwise, _rescaling)),
        (L.Normalization, Handler(elementwise, _normalization)),
        ("augbench>DRS", Handler(elementwise, _drs)),
        # Conv2D and MaxPooling2D with the same forward function and another gradient (bench/convgrad.py,
        # methods/classify/layers.py): the same rule as their base class.
        ("augbench>InputGradConv2D", Handler(linear, _conv2d, _weights, _check_conv, weighted=True)),
        ("augbench>ShiftedMaxPooling2D", Handler(route, _call, check=_check_channels_last)),
    ]
    for key, handler in table:
        register_layer(key, handler)


_register_builtins()


# --------------------------------------------------------------------------- the graph


def _forward(op: Op, a: list):
    if op.handler.kind != "linear":
        return op.handler.fn(op, a)
    z = op.handler.fn(op, a, op.kernel)
    z = z if op.bias is None else z + op.bias
    return tf.keras.activations.get(op.activation)(z)


def _backward_linear(op: Op, a: list, relevance, rule: Rule) -> list:
    """The rule on z = fn(a, W) + b; the activation passes relevance through (R at z = R at a)."""
    lin = Linear(lambda t, w: op.handler.fn(op, t, w), op.kernel, op.bias)
    return rule(lin, a, relevance)


def _backward_route(op: Op, a: list, relevance, rule: Rule) -> list:
    y, tape = _traced(lambda t, _: op.handler.fn(op, t), a, None)
    grads = tape.gradient(y, a, output_gradients=relevance)
    return [tf.zeros_like(t) if g is None else g for t, g in zip(a, grads, strict=True)]


def _backward_pass(op: Op, a: list, relevance, rule: Rule) -> list:
    return [relevance]


def _backward_gate(op: Op, a: list, relevance, rule: Rule) -> list:
    """Signal-take-all (Arras et al. 2017): the gate is a constant weight of its signal, each output
    then has one input, so the whole relevance goes to the signal (summed where the signal was
    broadcast) and none to the gate."""
    signal = 1 - op.gate
    y, tape = _traced(lambda t, _: tf.broadcast_to(t[0], tf.shape(relevance)), [a[signal]], None)
    out = [tf.zeros_like(t) for t in a]
    out[signal] = tape.gradient(y, [a[signal]], output_gradients=relevance)[0]
    return out


BACKWARD = {"linear": _backward_linear, "route": _backward_route, "elementwise": _backward_pass,
            "gate": _backward_gate}


@dataclass(frozen=True, eq=False)
class Graph:
    """A model as ops in topological order: nested models inlined, BatchNorm folded, the output
    function removed (``head``: applied by ``predict``, not by ``logits``)."""

    ops: tuple[Op, ...]
    input: int
    output: int
    head: str
    name: str

    @property
    def folded(self) -> dict[str, str]:
        """BatchNormalization layer name → the weighted layer it was folded into."""
        return {bn: op.name for op in self.ops for bn in op.folded}

    def activations(self, x) -> dict[int, tf.Tensor]:
        acts = {self.input: tf.cast(x, DTYPE)}
        for op in self.ops:
            acts[op.output] = _forward(op, [acts[k] for k in op.inputs])
        return acts

    def logits(self, x) -> np.ndarray:
        """The explained output: the model's output before its final softmax/sigmoid."""
        return self.activations(x)[self.output].numpy()

    def predict(self, x) -> np.ndarray:
        """What the model outputs (float64)."""
        return tf.keras.activations.get(self.head)(self.activations(x)[self.output]).numpy()


def _key(tensor, alias: dict[int, int]) -> int:
    return alias.get(id(tensor), id(tensor))


def _is_functional(layer) -> bool:
    return isinstance(layer, tf.keras.Model) and getattr(layer, "_is_graph_network", False)


def _walk(model, alias: dict[int, int], steps: list) -> None:
    """Append (layer, input keys, output key) for every layer call of ``model`` in topological
    order (iterative depth-first post-order from the outputs), inlining nested functional models."""
    done = {id(t) for t in model.inputs}
    stack = [(t, False) for t in model.outputs]
    while stack:
        tensor, expanded = stack.pop()
        if id(tensor) in done:
            continue
        layer, node_index, _ = tensor._keras_history
        node = layer.inbound_nodes[node_index]
        parents = node.keras_inputs
        if not expanded:
            stack.append((tensor, True))
            stack.extend((p, False) for p in parents if id(p) not in done)
            continue
        if len(tf.nest.flatten(node.outputs)) != 1:
            raise UnsupportedLayerError(model.name, [(layer.name, type(layer).__name__, "several outputs")])
        if _is_functional(layer):
            _inline(layer, parents, tensor, alias, steps)
        else:
            steps.append((layer, tuple(_key(p, alias) for p in parents), id(tensor),
                          tuple(tuple(p.shape) for p in parents)))
        done.add(id(tensor))


def _inline(inner, parents, tensor, alias: dict[int, int], steps: list) -> None:
    if len(inner.inputs) != len(parents) or len(inner.outputs) != 1:
        raise UnsupportedLayerError(inner.name, [(inner.name, type(inner).__name__,
                                                  "nested model with several outputs or unmatched inputs")])
    for t, p in zip(inner.inputs, parents, strict=True):
        alias[id(t)] = _key(p, alias)
    _walk(inner, alias, steps)
    alias[id(tensor)] = _key(inner.outputs[0], alias)


def _make_op(layer, inputs: tuple[int, ...], output: int, shapes: tuple[tuple, ...]) -> Op:
    handler = _handler(layer)
    kernel, bias, activation = (handler.params if handler else _no_params)(layer)
    return Op(layer, handler, inputs, output, kernel, bias, activation, shapes=shapes)


def _resolve(ops: list[Op]) -> list[Op]:
    """Each op completed by its handler from the ops that produce its inputs."""
    producers = {op.output: op for op in ops}
    return [op.handler.resolve(op, producers) if op.handler else op for op in ops]


def _output_function(op: Op) -> str | None:
    """The output function a trailing layer applies (an activation name or 'sigmoid-pair'), or None."""
    layer = op.layer
    if type(layer) is tf.keras.layers.Softmax:
        return "softmax"
    if type(layer) is tf.keras.layers.Activation and _activation_name(layer.activation) in OUTPUT_FUNCTIONS:
        return _activation_name(layer.activation)
    if tf.keras.utils.get_registered_name(type(layer)) == "augbench>SigmoidPair":
        return "sigmoid-pair"
    return None


def _centred_pair(op: Op) -> Op:
    """softmax(0, z) = softmax(−z/2, z/2): a Dense(1) giving z becomes a Dense(2) giving ±z/2."""
    if op.handler is None or not op.handler.weighted or op.activation != "linear" or op.kernel.shape[-1] != 1:
        raise UnsupportedLayerError(op.name, [(op.name, type(op.layer).__name__,
                                               "a SigmoidPair must follow a one-unit Dense/Conv2D without activation")])
    bias = op.bias if op.bias is not None else tf.zeros(1, DTYPE)
    return replace(op, kernel=tf.concat([-op.kernel / 2, op.kernel / 2], -1),
                   bias=tf.concat([-bias / 2, bias / 2], -1))


def _strip_output(ops: list[Op]) -> tuple[list[Op], str]:
    """Remove the output function — a trailing Softmax/Activation(softmax|sigmoid) layer, a
    SigmoidPair (folded into its Dense), or else the last Dense/Conv2D's own activation.
    Returns the ops and the removed function's activation name."""
    head = _output_function(ops[-1])
    if head is not None:
        ops = ops[:-1]
        if not ops:
            raise ValueError("the model is only an output function")
    last = ops[-1]
    if head == "sigmoid-pair":
        return [*ops[:-1], _centred_pair(last)], "softmax"
    if head is None and last.handler is not None and last.handler.weighted:
        return [*ops[:-1], replace(last, activation="linear")], last.activation
    return ops, head or "linear"


def _problems(ops: Sequence[Op]) -> list[tuple[str, str, str]]:
    found = []
    for op in ops:
        problem = "not supported" if op.handler is None else op.handler.check(op)
        if problem:
            found.append((op.name, type(op.layer).__name__, problem))
    return found


def _fold(op: Op, bn: Op) -> Op:
    scale, shift = bn_scale_shift(bn.layer)
    bias = shift if op.bias is None else op.bias * scale + shift
    return replace(op, output=bn.output, kernel=op.handler.fold(op.kernel, scale), bias=bias,
                   folded=(*op.folded, bn.name))


def _fold_batchnorm(ops: list[Op]) -> list[Op]:
    """Fold each BatchNormalization into the weighted layer that alone feeds it (linear activation)."""
    producer = {op.output: i for i, op in enumerate(ops)}
    uses = Counter(k for op in ops for k in op.inputs)
    out, dropped = list(ops), set()
    for i, op in enumerate(ops):
        j = producer.get(op.inputs[0])
        if type(op.layer) is not tf.keras.layers.BatchNormalization or j is None or uses[op.inputs[0]] != 1:
            continue
        if out[j].handler.weighted and out[j].activation == "linear":
            out[j], dropped = _fold(out[j], op), dropped | {i}
    return [op for i, op in enumerate(out) if i not in dropped]


def canonize(model) -> Graph:
    """``model`` (a tf.keras functional model, one input, one output) as a :class:`Graph`:
    nested models inlined, BatchNorm folded into the preceding weighted layer, output function
    removed. Raises :class:`UnsupportedLayerError` naming every layer it cannot handle."""
    if isinstance(model, Graph):
        return model
    if not _is_functional(model) or len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(f"{getattr(model, 'name', model)!r}: LRP needs a built functional tf.keras model "
                         "with one input and one output")
    steps: list = []
    alias: dict[int, int] = {}
    _walk(model, alias, steps)
    if not steps:
        raise ValueError(f"{model.name!r} has no layers to explain")
    ops, head = _strip_output([_make_op(*s) for s in steps])
    ops = _resolve(ops)
    problems = _problems(ops)
    if problems:
        raise UnsupportedLayerError(model.name, problems)
    return Graph(tuple(_fold_batchnorm(ops)), id(model.inputs[0]), ops[-1].output, head, model.name)


def canonization_error(model, x) -> float:
    """Largest |model(x) − canonize(model).predict(x)|: 0 up to float32 rounding when the
    folding (and the float64 re-implementation of every layer) is exact."""
    expected = model(np.asarray(x, np.float32), training=False).numpy()
    return float(np.max(np.abs(canonize(model).predict(x) - expected)))


# --------------------------------------------------------------------------- explaining


def _start(logits: tf.Tensor, target) -> tf.Tensor:
    """Relevance at the output: the target unit's logit, zero elsewhere (Montavon et al. 2018)."""
    if logits.shape.rank != 2:
        raise ValueError(f"LRP starts from a (batch, units) output; the model gives {tuple(logits.shape)}")
    n, k = logits.shape
    if target is None:
        index = np.argmax(logits.numpy(), axis=1)
    else:
        try:
            index = np.broadcast_to(np.asarray(target, np.int64), (n,))
        except ValueError as err:
            raise ValueError(f"target must be one unit index or one per image ({n}), got {target!r}") from err
    if np.any(index < 0) or np.any(index >= k):
        raise ValueError(f"target {target!r} out of range: the output has {k} unit(s)")
    return logits * tf.one_hot(index, k, dtype=DTYPE)


def _bounds(x: np.ndarray, low, high) -> tuple[tf.Tensor, tf.Tensor]:
    if low is None or high is None:
        raise ValueError("the box input rule needs low and high (bounds of the model's input, e.g. 0 and 1)")
    lo, hi = (np.broadcast_to(np.asarray(b, np.float64), x.shape) for b in (low, high))
    if np.any(x < lo - 1e-6) or np.any(x > hi + 1e-6):
        raise ValueError(f"the box rule needs low <= x <= high; x spans [{x.min():.4g}, {x.max():.4g}]")
    return _as64(lo), _as64(hi)


def _box_rules(graph: Graph, acts: dict, bounds: tuple) -> dict[int, Rule]:
    """ZBox for each weighted layer reached from the input before any other weighted layer; the
    bounds are carried to it by the layers in between (min/max of their outputs on l and h)."""
    known, rules = {graph.input: bounds}, {}
    for i, op in enumerate(graph.ops):
        carried = [known[k] for k in op.inputs if k in known]
        if not carried:
            continue
        if len(op.inputs) != 1:
            raise ValueError(f"box rule: the input reaches {op.describe()}, which has several inputs, "
                             "before any weighted layer; use input_rule=None")
        lo, hi = carried[0]
        if op.handler.weighted:
            a = acts[op.inputs[0]]
            if not bool(tf.reduce_all((lo <= a + 1e-9) & (a <= hi + 1e-9))):
                raise ValueError(f"box rule: the bounds carried to {op.describe()} do not enclose its input "
                                 "(a layer before it is not monotone); use input_rule=None")
            rules[i] = ZBox(lo, hi)
            continue
        lo, hi = _forward(op, [lo]), _forward(op, [hi])
        known[op.output] = (tf.minimum(lo, hi), tf.maximum(lo, hi))
    return rules


def _backward(graph: Graph, acts: dict, start, rule: Rule, weightless: Rule,
              special: dict[int, Rule]) -> dict[int, tf.Tensor]:
    """Relevance of every tensor, in reverse topological order; a tensor read by several
    layers receives the sum of their messages (Panigrahi Eq. 11). Weighted layers use
    ``rule`` (or their entry in ``special``), the weightless linear layers ``weightless``."""
    relevance = {graph.output: start}
    for i in reversed(range(len(graph.ops))):
        op = graph.ops[i]
        r = relevance.get(op.output)
        if r is None:
            continue
        a = [acts[k] for k in op.inputs]
        chosen = special.get(i, rule if op.handler.weighted else weightless)
        for k, rk in zip(op.inputs, BACKWARD[op.handler.kind](op, a, r, chosen), strict=True):
            relevance[k] = relevance[k] + rk if k in relevance else rk
    return relevance


def explain(model, x, rule: str = "alpha-beta", *, alpha: float = ALPHA, beta: float = BETA,
            epsilon: float = EPSILON, target=None, input_rule: str | None = None, low=None, high=None,
            return_layers: bool = False):
    """LRP relevance of ``x`` (a batch, the model's input space) for the ``target`` unit.

    ``model``: a tf.keras functional model or its :func:`canonize` graph (reuse it across
    batches). ``rule``: ``alpha-beta`` (``alpha``, ``beta``; α − β = 1), ``epsilon``
    (``epsilon``) or ``z-plus``. ``input_rule="box"`` uses the z^B rule with bounds
    ``low``/``high`` (scalars or arrays broadcastable to ``x``) at the first weighted layer(s).
    ``target``: unit index, one per image, or None (each image's largest logit).
    Returns float64 relevance shaped like ``x``; with ``return_layers`` also
    {layer name: relevance of that layer's output} (a folded BatchNorm's output is its
    Conv2D's)."""
    graph = canonize(model)
    chosen = make_rule(rule, alpha=alpha, beta=beta, epsilon=epsilon)
    if input_rule not in (None, *INPUT_RULES):
        raise ValueError(f"unknown input rule {input_rule!r}; known: None, {', '.join(INPUT_RULES)}")
    x = np.asarray(x, np.float64)
    acts = graph.activations(x)
    special = _box_rules(graph, acts, _bounds(x, low, high)) if input_rule == "box" else {}
    relevance = _backward(graph, acts, _start(acts[graph.output], target), chosen, chosen.for_weightless(), special)
    result = relevance.get(graph.input, tf.zeros_like(acts[graph.input])).numpy()
    if not return_layers:
        return result
    return result, {op.name: relevance[op.output].numpy() for op in graph.ops if op.output in relevance}


def gradient_x_input(model, x, target=None) -> np.ndarray:
    """NOT LRP: the plain gradient × input baseline, x ⊙ ∂logit_target/∂x, for comparisons
    (same explained logit and target choice as :func:`explain`)."""
    graph = canonize(model)
    x = tf.convert_to_tensor(np.asarray(x, np.float64))
    with tf.GradientTape() as tape:
        tape.watch(x)
        score = tf.reduce_sum(_start(graph.activations(x)[graph.output], target))
    return (x * tape.gradient(score, x)).numpy()


def positive_share_inside(relevance, mask) -> np.ndarray:
    """Per image: positive relevance inside ``mask`` / all positive relevance (NaN where there
    is none). ``relevance``: (N, H, W) or (N, H, W, C) — channels are summed first (pixel
    relevance R_p, Panigrahi §LRP); ``mask``: (N, H, W), (H, W) or (N, H, W, 1), truthy inside."""
    r = np.asarray(relevance, np.float64)
    r = r.sum(axis=-1) if r.ndim == 4 else r
    m = np.asarray(mask).astype(bool)
    m = m[..., 0] if m.ndim == 4 and m.shape[-1] == 1 else m
    if r.ndim != 3:
        raise ValueError(f"relevance must be (N, H, W) or (N, H, W, C), got shape {np.shape(relevance)}")
    try:
        m = np.broadcast_to(m, r.shape)
    except ValueError as err:
        raise ValueError(f"mask shape {np.shape(mask)} does not match relevance {r.shape}") from err
    positive = np.clip(r, 0.0, None)
    total, inside = positive.sum(axis=(1, 2)), (positive * m).sum(axis=(1, 2))
    return np.divide(inside, total, out=np.full_like(total, np.nan), where=total > 0)
