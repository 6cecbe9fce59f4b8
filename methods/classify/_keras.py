"""Shared base of the Keras-applications classifiers: transfer modes, heads, optimizers.

A plugin names its backbone (a ``tf.keras.applications`` model built without top
and without weights, then loaded by ``bench.weights.resolve_weights``), its smallest
input size, its Keras preprocessing and which backbone layers form its *last
block*. Everything else — freezing, head, optimizer, loss — is shared here.

Transfer modes (Byra et al. 2021, §3.2):

``feature-extraction``
    every backbone layer frozen, BatchNorm in inference mode (moving statistics
    fixed); only the head trains.
``finetune-last-block``
    the backbone's last block (defined by each plugin) and the head train; the
    rest is frozen, its BatchNorm in inference mode (Keras runs a BatchNorm layer
    with ``trainable=False`` in inference mode).
``finetune-all``
    every layer trains (BatchNorm moving statistics still are not weights).

Input size: ``input_size(image_size)`` is the prepared size raised to the
architecture's minimum (the train stage resizes to it); a model built for a
smaller input upsizes inside the model (bilinear ``Resizing`` layer ``upsize``).

DRS variants (``methods.classify.drs``) prefix a mode with ``drs``: ``drs`` is
feature extraction with the DRS layers trainable, ``drs+finetune-last-block``
and ``drs+finetune-all`` add those layers to the DRS ones (Byra 2021, §3.2).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np

from bench.plugins import Classifier
from bench.typed import require
from bench.weights import resolve_weights

TRANSFER_MODES = ("feature-extraction", "finetune-last-block", "finetune-all")
DRS_PREFIX = "drs"
HEADS = ("panigrahi", "softmax", "sigmoid")


@dataclass(frozen=True)
class KerasParams:
    """Parameters every Keras-applications classifier shares; plugins override defaults.

    ``grid_learning_rate`` / ``grid_beta_1``: values tried by the train stage (an
    empty tuple means the single ``learning_rate`` / ``beta_1``), each combination
    ``repeats`` times; the candidate with the best ``select`` criterion on the
    validation split is kept (bench.training.run_grid).
    """

    weights: str = field(default="none", metadata={"source": "imagenet | <path> | none"})
    transfer: str = "finetune-all"  # each plugin narrows this to a Literal of its modes
    input_size: int | None = field(default=None, metadata={
        "source": "None: the prepared image size, raised to the architecture's minimum"})
    epochs: int = 20
    batch_size: int = 32
    optimizer: Literal["sgd", "adam"] = "sgd"
    learning_rate: float = 1e-3
    momentum: float = field(default=0.0, metadata={"source": "sgd only"})
    beta_1: float = field(default=0.9, metadata={"source": "adam only; Keras default"})
    beta_2: float = field(default=0.999, metadata={"source": "adam only; Keras default"})
    clipnorm: float = field(default=0.0, metadata={
        "source": "ours: gradients rescaled to this global L2 norm when above it (Pascanu et al. 2013, "
                  "'On the difficulty of training recurrent neural networks', §3.2); 0 = off"})
    head: Literal["panigrahi", "softmax", "sigmoid"] = field(default="softmax", metadata={
        "source": "panigrahi: GAP-BN-LeakyReLU-Dropout-Dense(2, softmax); softmax: GAP-Dense(2, softmax); "
                  "sigmoid: GAP-Dense(1, sigmoid)"})
    dropout: float = field(default=0.5, metadata={"source": "panigrahi head only"})
    leaky_relu_alpha: float = field(default=0.3, metadata={"source": "panigrahi head only; Keras default"})
    monitor: Literal["val_loss", "val_accuracy", "val_auc"] = field(default="val_loss", metadata={
        "source": "best epoch kept, early stopping and lr reduction follow this"})
    early_stopping_patience: int = field(default=0, metadata={"source": "0 = no early stopping"})
    reduce_lr_factor: float = 0.5
    reduce_lr_patience: int = field(default=0, metadata={"source": "0 = no lr reduction"})
    class_weight: Literal["none", "balanced"] = field(default="none", metadata={
        "source": "balanced: loss weights inverse to class frequency in the training set"})
    grid_learning_rate: tuple[float, ...] = ()
    grid_beta_1: tuple[float, ...] = ()
    repeats: int = 1
    select: Literal["val_loss", "val_auc"] = field(default="val_loss", metadata={
        "source": "grid selection criterion, on the validation split only"})
    bn_recalibration_images: int = field(default=0, metadata={
        "source": "ours: precise-BN re-estimation for random init (Wu & Johnson 2021); 0 = off"})
    jit_compile: bool = field(default=False, metadata={
        "source": "ours: XLA-compiled train step, max pooling as ShiftedMaxPooling2D (same forward, a "
                  "deterministic gradient); faster on some CPUs, slower on others (docs/training-speed.md)"})
    conv_input_gradient: Literal["forward-conv", "native"] = field(default="forward-conv", metadata={
        "source": "ours: forward-conv computes each Conv2D's input gradient as a forward convolution "
                  "(bench/convgrad.py InputGradConv2D: same forward results, same sums in another order); native uses "
                  "TensorFlow's Conv2DBackpropInput, which took 1.8 s of a 2.0 s ResNet50 step at 32 px on a "
                  "2-core AVX2 AMD EPYC (docs/training-speed.md)"})
    precision: Literal["float32", "mixed_bfloat16"] = field(default="float32", metadata={
        "source": "ours: mixed_bfloat16 computes the backbone in bfloat16 (variables stay float32; the head "
                  "and its softmax in float32, Keras' mixed-precision guide); faster only where the CPU's "
                  "bfloat16 kernels are (docs/training-speed.md)"})

    MIN_INPUT_SIZE: ClassVar[int] = 32  # keras.applications obtain_input_shape(min_size=32)
    ARCH_NAME: ClassVar[str] = "the backbone"

    def check(self, path: str) -> None:
        require(self.weights in ("imagenet", "none") or "/" in self.weights or self.weights.endswith(".h5"),
                f"{path}.weights", f"{self.weights!r} is not 'imagenet', 'none' or a weights file path")
        require(self.epochs >= 1, f"{path}.epochs", "must be >= 1")
        require(self.batch_size >= 1, f"{path}.batch_size", "must be >= 1")
        require(self.learning_rate > 0, f"{path}.learning_rate", "must be > 0")
        require(self.clipnorm >= 0, f"{path}.clipnorm", "must be >= 0 (0 = off)")
        require(all(lr > 0 for lr in self.grid_learning_rate), f"{path}.grid_learning_rate", "must all be > 0")
        require(all(0 <= b < 1 for b in (self.beta_1, self.beta_2, *self.grid_beta_1)), f"{path}.beta_1",
                "beta_1, beta_2 and grid_beta_1 must lie in [0, 1)")
        require(self.optimizer == "adam" or not self.grid_beta_1, f"{path}.grid_beta_1",
                "beta_1 is an Adam parameter; the optimizer is sgd", "set optimizer: adam or leave the grid empty")
        require(self.repeats >= 1, f"{path}.repeats", "must be >= 1")
        require(0 <= self.dropout < 1, f"{path}.dropout", "must lie in [0, 1)")
        require(0 < self.reduce_lr_factor < 1, f"{path}.reduce_lr_factor", "must lie in (0, 1)")
        require(self.early_stopping_patience >= 0 and self.reduce_lr_patience >= 0, f"{path}.early_stopping_patience",
                "patiences must be >= 0 (0 = off)")
        require(self.input_size is None or self.input_size >= self.MIN_INPUT_SIZE, f"{path}.input_size",
                f"{self.ARCH_NAME} needs at least {self.MIN_INPUT_SIZE} px")


def grey_to_rgb255(images: np.ndarray) -> np.ndarray:
    """Grey [0, 1] (N, H, W) → the same intensity in three channels, scaled to [0, 255]."""
    return np.repeat(np.asarray(images, np.float32)[..., None] * np.float32(255.0), 3, axis=-1)


# --------------------------------------------------------------------------- transfer modes


def split_mode(mode: str) -> tuple[bool, str]:
    """``drs+finetune-all`` → (True, 'finetune-all'); ``drs`` → (True, 'feature-extraction')."""
    if mode == DRS_PREFIX:
        return True, "feature-extraction"
    if mode.startswith(DRS_PREFIX + "+"):
        return True, mode[len(DRS_PREFIX) + 1:]
    return False, mode


def trainable_names(mode: str, backbone: Iterable[str], last_block: Iterable[str],
                    drs: Iterable[str] = ()) -> set[str]:
    """Names of the backbone (and DRS) layers that train in ``mode``; the head always trains."""
    with_drs, plain = split_mode(mode)
    plans = {"feature-extraction": set(), "finetune-last-block": set(last_block),
             "finetune-all": set(backbone) | set(drs)}
    if plain not in plans:
        raise ValueError(f"unknown transfer mode {mode!r}; known: {', '.join(TRANSFER_MODES)} "
                         f"(optionally prefixed '{DRS_PREFIX}+')")
    return plans[plain] | (set(drs) if with_drs else set())


def freeze(layers: Iterable, trainable: set[str]) -> None:
    """Set ``layer.trainable`` to whether its name is in ``trainable``."""
    for layer in layers:
        layer.trainable = layer.name in trainable


# --------------------------------------------------------------------------- heads


def _head_panigrahi(x, p, n_classes: int):
    import tensorflow as tf

    x = tf.keras.layers.BatchNormalization(name="head_bn")(x)
    x = tf.keras.layers.LeakyReLU(p.leaky_relu_alpha, name="head_leaky_relu")(x)
    x = tf.keras.layers.Dropout(p.dropout, name="head_dropout")(x)
    return tf.keras.layers.Dense(n_classes, activation="softmax", name="head_dense")(x)


def _head_softmax(x, p, n_classes: int):
    import tensorflow as tf

    return tf.keras.layers.Dense(n_classes, activation="softmax", name="head_dense")(x)


def _head_sigmoid(x, p, n_classes: int):
    """One sigmoid unit. For ``n_classes == 2`` its probability is also given as the pair
    (1 − σ(z), σ(z)) = softmax(0, z): no extra weights, and categorical cross-entropy on
    one-hot labels is then exactly the binary cross-entropy of σ(z)."""
    import tensorflow as tf

    from methods.classify.layers import SigmoidPair

    if n_classes == 1:
        return tf.keras.layers.Dense(1, activation="sigmoid", name="head_dense")(x)
    logit = tf.keras.layers.Dense(1, name="head_dense")(x)
    return SigmoidPair(name="head_sigmoid_pair")(logit)


HEAD_BUILDERS: dict[str, Callable] = {"panigrahi": _head_panigrahi, "softmax": _head_softmax,
                                      "sigmoid": _head_sigmoid}


def add_head(features, p, n_classes: int):
    """GlobalAveragePooling2D then the head named by ``p.head``."""
    import tensorflow as tf

    if n_classes < 1 or (p.head != "sigmoid" and n_classes < 2) or (p.head == "sigmoid" and n_classes > 2):
        raise ValueError(f"head {p.head!r} cannot give {n_classes} output(s)")
    x = tf.keras.layers.GlobalAveragePooling2D(name="head_gap")(features)
    return HEAD_BUILDERS[p.head](x, p, n_classes)


# --------------------------------------------------------------------------- optimizer, compile


def _clip(p) -> dict:
    """The optimizer's global-norm clipping argument, when ``clipnorm`` is on."""
    clip = getattr(p, "clipnorm", 0.0)
    return {"global_clipnorm": clip} if clip else {}


def _sgd(p):
    import tensorflow as tf

    return tf.keras.optimizers.SGD(p.learning_rate, momentum=p.momentum, **_clip(p))


def _adam(p):
    import tensorflow as tf

    return tf.keras.optimizers.Adam(p.learning_rate, beta_1=p.beta_1, beta_2=p.beta_2, **_clip(p))


OPTIMIZERS: dict[str, Callable] = {"sgd": _sgd, "adam": _adam}


def compile_model(model, p) -> None:
    """Cross-entropy matching the output (one unit: binary, else categorical), accuracy metric."""
    loss = "binary_crossentropy" if model.output_shape[-1] == 1 else "categorical_crossentropy"
    model.compile(optimizer=OPTIMIZERS[p.optimizer](p), loss=loss, metrics=["accuracy"],
                  jit_compile=bool(getattr(p, "jit_compile", False)))


@contextlib.contextmanager
def global_policy(name: str):
    """Keras' global dtype policy set to ``name`` while layers are built, then restored."""
    import tensorflow as tf

    before = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        tf.keras.mixed_precision.set_global_policy(before)


# --------------------------------------------------------------------------- the plugin base


class KerasApplicationClassifier(Classifier):
    """A ``tf.keras.applications`` backbone, nested in the model as one layer, plus a head."""

    Params: ClassVar[type] = KerasParams
    arch: ClassVar[str] = ""  # key of bench.weights.IMAGENET_FILES; also the nested backbone's name

    def input_size(self, image_size: int) -> int:
        """The requested (or prepared) size, raised to the architecture's minimum."""
        return max(self.Params.MIN_INPUT_SIZE, self.params.input_size or image_size)

    def preprocess(self, images: np.ndarray) -> np.ndarray:
        """Grey [0, 1] → 3 replicated channels in [0, 255] → the architecture's preprocessing."""
        return np.asarray(self.keras_preprocess(grey_to_rgb255(images)), np.float32)

    def keras_preprocess(self, rgb255: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backbone(self, input_shape):
        """The Keras application without top and without weights."""
        raise NotImplementedError

    def last_block(self, base) -> set[str]:
        """Names of the backbone layers that form its last block."""
        raise NotImplementedError

    def training_backbone(self, input_shape):
        """:meth:`backbone`, with its max pooling made XLA-deterministic when ``jit_compile``, its
        layers computing in bfloat16 when ``precision`` is ``mixed_bfloat16`` (the head, built
        after it, stays float32: its first layer casts the features back), and its Conv2D input
        gradients computed as forward convolutions when ``conv_input_gradient`` is ``forward-conv``."""
        with global_policy(getattr(self.params, "precision", "float32")):
            base = self.backbone(input_shape)
        if getattr(self.params, "jit_compile", False):
            from methods.classify.layers import with_shifted_max_pooling

            base = with_shifted_max_pooling(base)
        if getattr(self.params, "conv_input_gradient", "native") == "forward-conv":
            from bench.convgrad import with_input_grad_convs

            base = with_input_grad_convs(base)
        return base

    def load_weights(self, base, weights_file: str, spec: str) -> None:
        base.load_weights(weights_file)

    def build(self, input_shape: tuple[int, ...], n_classes: int):
        import tensorflow as tf

        p = self.params
        weights_file, self.weights_description = resolve_weights(p.weights, self.arch)
        inputs, upsized = upsize_input(input_shape, self.Params.MIN_INPUT_SIZE)
        base = self.training_backbone(tuple(upsized.shape[1:]))
        if weights_file:
            self.load_weights(base, weights_file, p.weights)
        frozen = p.transfer == "feature-extraction"
        base.trainable = not frozen  # propagates to every layer; the plan below refines it
        if not frozen:
            freeze(base.layers, trainable_names(p.transfer, (layer.name for layer in base.layers),
                                                self.last_block(base)))
        # training=False keeps frozen BatchNorm statistics fixed in feature-extraction mode.
        x = base(upsized, training=False if frozen else None)
        model = tf.keras.Model(inputs, add_head(x, p, n_classes), name=f"{self.arch}_classifier")
        compile_model(model, p)
        return model

    def weights_source(self) -> str:
        return getattr(self, "weights_description", self.params.weights)

    @classmethod
    def register_custom_objects(cls) -> None:
        """Register the Keras layers of methods.classify.layers that these models can hold (a
        ``sigmoid`` head's SigmoidPair, ``jit_compile``'s ShiftedMaxPooling2D, DRS)."""
        import methods.classify.layers  # noqa: F401  register_keras_serializable on import


def upsize_input(input_shape: tuple[int, ...], min_size: int):
    """(Input, tensor for the backbone): the input itself, or — when it is smaller than the
    architecture's minimum — its bilinear resize to ``min_size`` (layer ``upsize``), so a model
    built for small images still works; the train stage resizes to ``input_size`` beforehand."""
    import tensorflow as tf

    inputs = tf.keras.Input(shape=input_shape)
    h, w = input_shape[:2]
    if h >= min_size and w >= min_size:
        return inputs, inputs
    size = (max(h, min_size), max(w, min_size))
    return inputs, tf.keras.layers.Resizing(*size, interpolation="bilinear", name="upsize")(inputs)


def downstream_of(model, name: str) -> set[str]:
    """Names of the layers of functional ``model`` that (transitively) consume layer ``name``."""
    found: set[str] = set()
    for layer in model.layers:  # topological order
        parents = layer.inbound_nodes[0].inbound_layers if layer.inbound_nodes else []
        parents = parents if isinstance(parents, list) else [parents]
        if any(q.name == name or q.name in found for q in parents):
            found.add(layer.name)
    return found

