"""The ``domain`` NST encoder: a VGG19/ResNet50 feature extractor trained on the training split.

The backbone (Keras application, no top) gets a small head —
GlobalAveragePooling2D → Dense(n_classes, softmax) — and is trained to classify
the *training split only* (never validation or test), with the same input
preprocessing NST uses (:func:`bench.nst.encoders.to_encoder_input`). The
backbone's weights are then saved in the Keras no-top layout, so NST loads them
exactly like the ImageNet file; the head's kernel and bias are saved beside it
(``<arch>_domain_head.npz``) for the LRP relevance of ``nst-proposed-lrp``.

``init``: ``imagenet`` starts from the Keras ImageNet weights (must be on disk),
``random`` from Keras' default initialisation (seeded), ``auto`` from ImageNet
when the verified file is in the Keras cache and from random otherwise. The
choice made is recorded. ResNet50's BatchNorm statistics are re-estimated on the
training images after training (bench.training.PreciseBatchNorm), since NST runs
the encoder in inference mode. Training runs on a copy whose convolutions are
:class:`~bench.nst.encoders.InputGradConv2D` (identical maths, ~2× faster
back-propagation on this CPU); the weights are copied back into the plain model.
"""

from __future__ import annotations

import hashlib
import time

import numpy as np

from bench.config import EncoderParams  # the encoder stage's parameters (params.yaml `encoder`)
from bench.plugins import ImageSet


def ids_digest(ids: list[str]) -> str:
    """sha256 of the image ids, one per line: which images the encoder saw."""
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


def _initial_weights(arch: str, init: str) -> tuple[str | None, str]:
    from bench.errors import AugbenchError
    from bench.nst.encoders import imagenet_file

    if init == "random":
        return None, "random (Keras default initialisers, seeded)"
    try:
        path = imagenet_file(arch, download=init == "imagenet")  # auto: only a file already on disk
    except AugbenchError:
        if init == "imagenet":
            raise
        return None, "random (Keras default initialisers, seeded; no ImageNet file on disk)"
    return str(path), f"imagenet ({path.name}, md5 verified)"


def with_head(backbone, n_classes: int):
    """``backbone`` → GlobalAveragePooling2D → Dense(n_classes, softmax): the domain classifier.
    The layer names are how the head is saved (here) and restored (bench.nst.relevance)."""
    import tensorflow as tf

    pooled = tf.keras.layers.GlobalAveragePooling2D(name="domain_gap")(backbone.output)
    out = tf.keras.layers.Dense(n_classes, activation="softmax", name="domain_head")(pooled)
    return tf.keras.Model(backbone.input, out, name=f"{backbone.name}_domain_classifier")


def train_domain_encoder(arch: str, train: ImageSet, params: EncoderParams) -> tuple[object, dict, dict]:
    """(trained no-top backbone, head {kernel, bias}, record) for ``arch``, trained on ``train``
    only. The head (GlobalAveragePooling2D → Dense) is kept: ``nst-proposed-lrp`` explains the
    encoder's classifier with LRP (bench.nst.relevance)."""
    import tensorflow as tf

    from bench.nst.encoders import clone_with_input_grad_convs, get_encoder_spec, to_encoder_input
    from bench.quiet import keras_progress
    from bench.training import PreciseBatchNorm, seed_everything

    started = time.perf_counter()
    seed_everything(params.seed)
    weights_file, init = _initial_weights(arch, params.init)
    backbone = get_encoder_spec(arch).build()
    if weights_file:
        backbone.load_weights(weights_file)
    trainable = clone_with_input_grad_convs(backbone, pooling="max", freeze=False)  # same maths, faster on CPU
    n_classes = int(max(2, train.labels.max() + 1)) if len(train) else 2
    model = with_head(trainable, n_classes)
    model.compile(optimizer=tf.keras.optimizers.Adam(params.learning_rate), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    x = to_encoder_input(tf.constant(train.images[..., None], tf.float32)).numpy()
    y = tf.keras.utils.to_categorical(train.labels, n_classes)
    steps = -(-len(x) // params.batch_size)  # batches per epoch
    with keras_progress(f"encoder {arch}", params.epochs, steps) as callbacks:
        history = model.fit(x, y, epochs=params.epochs, batch_size=params.batch_size, shuffle=True, verbose=0,
                            callbacks=callbacks)
    if arch == "resnet50" and params.bn_recalibration_images:
        PreciseBatchNorm(x, params.bn_recalibration_images, params.batch_size, params.seed).recalibrate(trainable)
    loss, accuracy = model.evaluate(x, y, batch_size=params.batch_size, verbose=0)
    backbone.set_weights(trainable.get_weights())  # back into the plain Keras layout that NST loads
    record = {"arch": arch, "init": init, "epochs": params.epochs, "n_train": len(train),
              "train_ids_sha256": ids_digest(list(train.ids)), "split": "train",
              "history": {k: [round(float(v), 6) for v in vals] for k, vals in history.history.items()},
              "train_loss": round(float(loss), 6), "train_accuracy": round(float(accuracy), 6),
              "seconds": round(time.perf_counter() - started, 2)}
    if not np.isfinite(loss):
        from bench.errors import NumericalError

        raise NumericalError(f"domain encoder {arch}: training loss is {loss}; lower encoder.learning_rate")
    kernel, bias = model.get_layer("domain_head").get_weights()
    return backbone, {"kernel": kernel, "bias": bias}, record
