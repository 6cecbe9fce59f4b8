"""``resnet50``: the fully fine-tuned ResNet50 of Panigrahi et al. 2024.

Recipe (Panigrahi et al. 2024, §"Quantitative evaluation of ResNet50 model"):
SGD with initial lr 1e-4 and momentum 0.9, reduced by ReduceLROnPlateau; up to
20 epochs with early stopping after 7 epochs without validation-loss
improvement; batch 32; head GlobalAveragePooling2D → BatchNormalization →
Dropout(0.5) → Dense(2, softmax); categorical cross-entropy on one-hot labels;
LeakyReLU "due to accepting negative input". The paper does not say where the
LeakyReLU sits; we put it after the BatchNormalization of the head (the only
place in that head where an activation can go), and it does not give the
ReduceLROnPlateau factor/patience (ours: 0.5 after 3 epochs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from bench.plugins import Classifier
from bench.typed import require
from methods.classify._weights import resolve_weights

PANIGRAHI = "Panigrahi et al. 2024, §Quantitative evaluation of ResNet50"


@dataclass(frozen=True)
class ResNet50Params:
    weights: str = field(default="none", metadata={"source": "imagenet | <path> | none"})
    transfer: Literal["finetune-all", "feature-extraction"] = field(
        default="finetune-all", metadata={"source": PANIGRAHI + " ('fully fine-tuned')"})
    input_size: int | None = None  # None: the prepared image size
    epochs: int = field(default=20, metadata={"source": PANIGRAHI})
    batch_size: int = field(default=32, metadata={"source": PANIGRAHI})
    learning_rate: float = field(default=1e-4, metadata={"source": PANIGRAHI})
    momentum: float = field(default=0.9, metadata={"source": PANIGRAHI})
    early_stopping_patience: int = field(default=7, metadata={"source": PANIGRAHI})
    reduce_lr_factor: float = field(default=0.5, metadata={"source": "not stated in the paper (assumption)"})
    reduce_lr_patience: int = field(default=3, metadata={"source": "not stated in the paper (assumption)"})
    dropout: float = field(default=0.5, metadata={"source": PANIGRAHI})
    bn_recalibration_images: int = field(default=0, metadata={
        "source": "ours: precise-BN re-estimation for random init (Wu & Johnson 2021); 0 = off as in the paper"})
    leaky_relu_alpha: float = field(default=0.3, metadata={"source": "Keras default; not stated in the paper"})

    def check(self, path: str) -> None:
        require(self.weights in ("imagenet", "none") or "/" in self.weights or self.weights.endswith(".h5"),
                f"{path}.weights", f"{self.weights!r} is not 'imagenet', 'none' or a weights file path")
        require(self.epochs >= 1, f"{path}.epochs", "must be >= 1")
        require(self.batch_size >= 1, f"{path}.batch_size", "must be >= 1")
        require(self.learning_rate > 0, f"{path}.learning_rate", "must be > 0")
        require(0 <= self.dropout < 1, f"{path}.dropout", "must lie in [0, 1)")
        require(self.input_size is None or self.input_size >= 32, f"{path}.input_size",
                "ResNet50 needs at least 32 px")


class ResNet50Classifier(Classifier):
    Params = ResNet50Params
    paper = PANIGRAHI
    summary = "ResNet50 backbone + GAP/BN/LeakyReLU/Dropout/Dense(2) head, SGD (Panigrahi 2024)."
    arch = "resnet50"

    def preprocess(self, images: np.ndarray) -> np.ndarray:
        """Grey [0,1] → 3 replicated channels → Keras 'caffe' ResNet preprocessing."""
        import tensorflow as tf

        rgb = np.repeat(images[..., None].astype(np.float32) * 255.0, 3, axis=-1)
        return tf.keras.applications.resnet50.preprocess_input(rgb)

    def backbone(self, input_shape):
        import tensorflow as tf

        return tf.keras.applications.ResNet50(include_top=False, weights=None, input_shape=input_shape)

    def build(self, input_shape: tuple[int, ...], n_classes: int):
        import tensorflow as tf

        weights_file, self.weights_description = resolve_weights(self.params.weights, self.arch)
        base = self.backbone(input_shape)
        if weights_file:
            base.load_weights(weights_file)
        base.trainable = self.params.transfer == "finetune-all"
        inputs = tf.keras.Input(shape=input_shape)
        # training=False keeps frozen BatchNorm statistics fixed in feature-extraction mode.
        x = base(inputs, training=None if base.trainable else False)
        x = tf.keras.layers.GlobalAveragePooling2D(name="head_gap")(x)
        x = tf.keras.layers.BatchNormalization(name="head_bn")(x)
        x = tf.keras.layers.LeakyReLU(self.params.leaky_relu_alpha, name="head_leaky_relu")(x)
        x = tf.keras.layers.Dropout(self.params.dropout, name="head_dropout")(x)
        outputs = tf.keras.layers.Dense(n_classes, activation="softmax", name="head_dense")(x)
        model = tf.keras.Model(inputs, outputs, name=f"{self.arch}_classifier")
        model.compile(optimizer=tf.keras.optimizers.SGD(self.params.learning_rate, momentum=self.params.momentum),
                      loss="categorical_crossentropy", metrics=["accuracy"])
        return model

    def weights_source(self) -> str:
        return getattr(self, "weights_description", self.params.weights)
