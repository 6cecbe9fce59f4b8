"""Feature encoders for neural style transfer: a small registry and where weights come from.

Two encoders are registered, ``vgg19`` (Gatys et al. 2016; Kavitha et al. 2021)
and ``resnet50`` (Panigrahi et al. 2024, §Experimental setup, Step 1: "used
ResNet50 in place of Vgg19"). Each knows its default content and style layers.

``weights`` is one of

- ``imagenet``: the Keras application (no-top) weight file from the Keras cache,
  MD5-checked (bench/weights.py: the file names, published MD5s and URLs);
- a path to a ``.h5`` weight file in the Keras no-top layout;
- ``domain``: ``<arch>.weights.h5`` written by the ``encoder`` stage, trained on
  the training split only (its folder is handed to the augmenter as
  ``resources["encoder_dir"]``);
- ``random``: every convolution kernel re-drawn from a *seeded* Glorot-uniform
  distribution, biases zero, BatchNorm layers at their Keras initial values.

Input: grey images in [0, 1], shape (B, H, W, 1); they are replicated to three
channels and put through the Keras "caffe" preprocessing both encoders were
trained with (×255, ImageNet BGR means subtracted).

Speed: TensorFlow's CPU kernel for the input gradient of a convolution
(``Conv2DBackpropInput``, without oneDNN) is up to 35× slower than a forward
convolution on small, wide feature maps (2×2×512: 254 ms vs 7 ms for 16 images on
this 2-core CPU). NST needs only that input gradient, so every stride-1 "same"
(or 1×1) convolution of an encoder is rebuilt as :class:`InputGradConv2D`, whose
input gradient is the mathematically identical forward convolution of the output
gradient with the spatially flipped, channel-transposed kernel.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import weights as weight_files
from bench.errors import AugbenchError
from bench.io import read_json

# Keras "caffe" preprocessing (keras/src/applications/imagenet_utils.py): BGR channel means.
CAFFE_BGR_MEANS = (103.939, 116.779, 123.68)

WEIGHT_KINDS = ("imagenet", "domain", "random")


@dataclass(frozen=True)
class EncoderSpec:
    """A registered encoder: how to build it (random weights, any input size) and its layers."""

    name: str
    build: Callable[[], object]
    style_layers: tuple[str, ...]
    content_layers: tuple[str, ...]
    source: str


ENCODERS: dict[str, EncoderSpec] = {}


def register_encoder(name: str, style_layers: Sequence[str], content_layers: Sequence[str], source: str):
    """Decorator: register a builder returning a no-top Keras model with input (None, None, 3)."""
    def wrap(build: Callable[[], object]) -> Callable[[], object]:
        if name in ENCODERS:
            raise AugbenchError(f"encoder {name!r} is registered twice")
        ENCODERS[name] = EncoderSpec(name, build, tuple(style_layers), tuple(content_layers), source)
        return build
    return wrap


def get_encoder_spec(name: str) -> EncoderSpec:
    from bench.typed import suggest

    if name not in ENCODERS:
        raise AugbenchError(f"unknown NST encoder {name!r}; "
                            f"{suggest(name, ENCODERS) or 'known: ' + ', '.join(sorted(ENCODERS))}")
    return ENCODERS[name]


# Gatys et al. 2016 §2 (and Li et al. 2017 §5.1, the DNST code): style relu1_1, relu2_1,
# relu3_1, relu4_1, relu5_1 and content relu4_2. Keras fuses each ReLU into its
# convolution, so relu{b}_{k} is the output of layer block{b}_conv{k}.
@register_encoder("vgg19",
                  style_layers=("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1"),
                  content_layers=("block4_conv2",),
                  source="Gatys et al. 2016 §2: style relu1_1..relu5_1, content relu4_2")
def _vgg19():
    import tensorflow as tf

    return tf.keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))


# Panigrahi et al. 2024 name no ResNet50 layers. Ours: the stem and the outputs of
# stages 2-4 for style (input/2 ... input/16, like relu1_1 ... relu5_1 at input/1 ...
# input/16 in VGG19) and the output of stage 3 (input/8, the resolution of VGG19's
# relu4_2) for content. Stage 5 is left out: it is 1×1 at 32 px.
@register_encoder("resnet50",
                  style_layers=("conv1_relu", "conv2_block3_out", "conv3_block4_out", "conv4_block6_out"),
                  content_layers=("conv3_block4_out",),
                  source="ours (Panigrahi 2024 uses ResNet50 but names no layers)")
def _resnet50():
    import tensorflow as tf

    return tf.keras.applications.ResNet50(include_top=False, weights=None, input_shape=(None, None, 3))


# --------------------------------------------------------------------------- weights


@dataclass(frozen=True)
class WeightsSource:
    """Where an encoder's weights come from: ``kind`` (imagenet | file | domain | random),
    the file to load (None for random), and a sentence for reports."""

    kind: str
    path: str | None
    description: str
    seed: int = 0


def imagenet_file(arch: str, download: bool = True) -> Path:
    """The verified ImageNet no-top weight file of ``arch`` (Keras cache; downloaded if absent
    and ``download``, else an error): bench.weights.imagenet_weights_file."""
    return weight_files.imagenet_weights_file(
        arch, download, alternatives="set weights to 'domain' (the encoder stage), 'random' or a file path")


def resolve_encoder_weights(spec: str, arch: str, encoder_dir: Path | None = None,
                            seed: int = 0) -> WeightsSource:
    """Resolve a ``weights`` parameter (imagenet | <path> | domain | random) for ``arch``."""
    get_encoder_spec(arch)
    if spec == "random":
        return WeightsSource("random", None, f"random (seeded Glorot-uniform kernels, zero biases, seed {seed})",
                             seed)
    if spec == "imagenet":
        path = imagenet_file(arch)
        return WeightsSource("imagenet", str(path), f"imagenet ({path.name}, md5 verified)")
    if spec == "domain":
        return _domain_weights(arch, encoder_dir)
    path = Path(spec).expanduser()
    if not path.is_file():
        raise AugbenchError(f"{path}: encoder weights file not found "
                            "(weights must be 'imagenet', 'domain', 'random' or a file path)")
    return WeightsSource("file", str(path), f"file {path} (md5 {weight_files.md5(path)})")


def domain_weights_name(arch: str) -> str:
    # Not "*.weights.h5": Keras ≥ 2.13 reads that suffix as its new weights format.
    return f"{arch}_domain_notop.h5"


def domain_head_name(arch: str) -> str:
    return f"{arch}_domain_head.npz"


def _encoder_file(encoder_dir: Path, arch: str, name: str, md5_key: str, missing: str) -> tuple[Path, dict, str]:
    """(path, meta.json record of ``arch``, md5) of a file the encoder stage wrote into
    ``encoder_dir``, its MD5 checked against meta.json; ``missing``: the error when it is absent."""
    path, meta_path = encoder_dir / name, encoder_dir / "meta.json"
    if not path.is_file() or not meta_path.is_file():
        raise AugbenchError(missing)
    record = read_json(meta_path).get("encoders", {}).get(arch, {})
    digest = weight_files.md5(path)
    if record.get(md5_key) not in (None, digest):
        raise AugbenchError(f"{path}: MD5 {digest} differs from the {record[md5_key]} in {meta_path}; "
                            "re-run the encoder stage")
    return path, record, digest


def domain_head(arch: str, encoder_dir: Path) -> dict:
    """{kernel, bias} of the domain encoder's classification head (encoder stage), MD5-checked
    against meta.json; a clear error when it is missing (older encoder folders)."""
    from bench.io import load_npz

    name = domain_head_name(arch)
    path, _, _ = _encoder_file(Path(encoder_dir), arch, name, "head_md5",
                               f"{Path(encoder_dir) / name}: the domain encoder's classification head is missing "
                               f"(needed for the LRP relevance); re-run the encoder stage with {arch!r} among "
                               "encoder.archs")
    return load_npz(path)


def _domain_weights(arch: str, encoder_dir: Path | None) -> WeightsSource:
    if encoder_dir is None:
        raise AugbenchError("weights: 'domain' needs the encoder stage's output folder: run "
                            "`augbench encoder` and pass `augbench augment --encoder DIR`")
    encoder_dir = Path(encoder_dir)
    name = domain_weights_name(arch)
    path, record, digest = _encoder_file(encoder_dir, arch, name, "md5",
                                         f"{encoder_dir}: no domain encoder for {arch!r} ({name} and meta.json "
                                         f"expected); run `augbench encoder` with {arch!r} among its archs")
    trained = (f"trained on the training split ({record.get('n_train', '?')} images, "
               f"{record.get('epochs', '?')} epochs, init {record.get('init', '?')})")
    return WeightsSource("domain", str(path), f"domain ({path.name}, {trained}, md5 {digest})")


# --------------------------------------------------------------------------- model


def _conv_layer_class():
    """InputGradConv2D (bench/convgrad.py), imported on first use so that importing this module
    needs no TensorFlow."""
    from bench.convgrad import InputGradConv2D

    return InputGradConv2D


def _randomise(model, seed: int) -> None:
    """Seeded Glorot-uniform kernels and zero biases (Keras' default initialisers, made reproducible)."""
    import tensorflow as tf

    for i, layer in enumerate(model.layers):
        kernel = getattr(layer, "kernel", None)
        if kernel is not None:
            kernel.assign(tf.keras.initializers.GlorotUniform(seed=seed * 1009 + i)(kernel.shape))
        bias = getattr(layer, "bias", None)
        if bias is not None:
            bias.assign(tf.zeros_like(bias))


def clone_with_input_grad_convs(base, pooling: str = "max", freeze: bool = True):
    """Rebuild ``base`` with InputGradConv2D convolutions and (optionally) average pooling.
    ``freeze``: store the flipped kernels once (the weights will not change any more)."""
    import tensorflow as tf

    conv_cls = _conv_layer_class()

    def clone(layer):
        config = layer.get_config()
        if type(layer) is tf.keras.layers.Conv2D:
            return conv_cls.from_config(config)
        if pooling == "avg" and isinstance(layer, tf.keras.layers.MaxPooling2D):
            keep = {k: config[k] for k in ("name", "pool_size", "strides", "padding", "data_format")}
            return tf.keras.layers.AveragePooling2D(**keep)
        return layer.__class__.from_config(config)

    model = tf.keras.models.clone_model(base, clone_function=clone)
    model.set_weights(base.get_weights())
    if freeze:
        for layer in model.layers:
            if isinstance(layer, conv_cls):
                layer.freeze_input_gradient()
    return model


def build_feature_model(arch: str, weights: WeightsSource, layers: Sequence[str], pooling: str = "avg"):
    """A Keras model: preprocessed input (B, H, W, 3) → the outputs of ``layers``, in that order,
    truncated after the deepest of them."""
    import tensorflow as tf

    spec = get_encoder_spec(arch)
    base = spec.build()
    if weights.path:
        try:
            base.load_weights(weights.path)
        except (ValueError, OSError) as exc:
            raise AugbenchError(f"{weights.path}: cannot load as {arch} no-top weights ({exc})") from None
    else:
        _randomise(base, weights.seed)
    names = [layer.name for layer in base.layers]
    unknown = [n for n in layers if n not in names]
    if unknown:
        from bench.typed import suggest

        raise AugbenchError(f"encoder {arch!r} has no layer {unknown[0]!r}; "
                            f"{suggest(unknown[0], names) or 'see model.summary()'}")
    model = clone_with_input_grad_convs(base, pooling)
    return tf.keras.Model(model.input, [model.get_layer(n).output for n in layers], name=f"{arch}_nst")


_FEATURE_MODELS: collections.OrderedDict = collections.OrderedDict()
_CACHE_SIZE = 3


def feature_model(arch: str, weights: WeightsSource, layers: Sequence[str], pooling: str = "avg"):
    """:func:`build_feature_model`, memoised on (arch, weights, layers, pooling): building and
    cloning VGG19 takes about a second, and several augmenters of one process share encoders."""
    key = (arch, weights, tuple(layers), pooling)
    if key in _FEATURE_MODELS:
        _FEATURE_MODELS.move_to_end(key)
        return _FEATURE_MODELS[key]
    model = build_feature_model(arch, weights, layers, pooling)
    _FEATURE_MODELS[key] = model
    while len(_FEATURE_MODELS) > _CACHE_SIZE:
        _FEATURE_MODELS.popitem(last=False)
    return model


def to_encoder_input(grey):
    """(B, H, W, 1) grey in [0, 1] → (B, H, W, 3) Keras "caffe" input (×255, BGR means removed)."""
    import tensorflow as tf

    rgb = tf.repeat(grey, 3, axis=-1) * 255.0
    return rgb - tf.constant(CAFFE_BGR_MEANS, dtype=rgb.dtype)
