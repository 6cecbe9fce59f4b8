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

Transfer modes (methods.classify._keras): ``finetune-all`` (the paper's),
``feature-extraction`` and ``finetune-last-block``. The *last block* of a ResNet
is its last residual block, ``conv5_block3`` (Keras layer names
``conv5_block3_*``): Byra et al. 2021 §3.2 fine-tune "the last residual block",
one of the 33 blocks of Eq. (1), and their Table 1 count for it, 4,471,394,
matches one bottleneck block (Keras ResNet101 ``conv5_block3``: 4,465,664
trainable weights), not the whole conv5 stage (14,976,000).

Preprocessing: grey [0, 1] → three equal channels × 255 → Keras "caffe" ResNet
preprocessing (RGB→BGR, ImageNet channel means subtracted, no scaling), which is
what the Keras ImageNet weights expect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np

from methods.classify._keras import KerasApplicationClassifier, KerasParams

PANIGRAHI = "Panigrahi et al. 2024, §Quantitative evaluation of ResNet50"
ASSUMED = "not stated in the paper (assumption)"
RESNET_LAST_BLOCK = "conv5_block3_"  # Byra 2021 §3.2 + Table 1: the last residual block (module docstring)


@dataclass(frozen=True)
class ResNet50Params(KerasParams):
    transfer: Literal["finetune-all", "feature-extraction", "finetune-last-block"] = field(
        default="finetune-all", metadata={"source": PANIGRAHI + " ('fully fine-tuned')"})
    epochs: int = field(default=20, metadata={"source": PANIGRAHI})
    batch_size: int = field(default=32, metadata={"source": PANIGRAHI})
    optimizer: Literal["sgd", "adam"] = field(default="sgd", metadata={"source": PANIGRAHI})
    learning_rate: float = field(default=1e-4, metadata={"source": PANIGRAHI})
    momentum: float = field(default=0.9, metadata={"source": PANIGRAHI})
    head: Literal["panigrahi", "softmax", "sigmoid"] = field(default="panigrahi", metadata={
        "source": PANIGRAHI + ": GAP-BN-LeakyReLU-Dropout-Dense(2, softmax)"})
    dropout: float = field(default=0.5, metadata={"source": PANIGRAHI})
    leaky_relu_alpha: float = field(default=0.3, metadata={"source": "Keras default; not stated in the paper"})
    monitor: Literal["val_loss", "val_accuracy", "val_auc"] = field(default="val_loss", metadata={
        "source": PANIGRAHI + " (early stopping on validation loss)"})
    early_stopping_patience: int = field(default=7, metadata={"source": PANIGRAHI})
    reduce_lr_factor: float = field(default=0.5, metadata={"source": ASSUMED})
    reduce_lr_patience: int = field(default=3, metadata={"source": ASSUMED})
    bn_recalibration_images: int = field(default=0, metadata={
        "source": "ours: precise-BN re-estimation for random init (Wu & Johnson 2021); 0 = off as in the paper"})

    ARCH_NAME: ClassVar[str] = "ResNet50"


def caffe_preprocess(rgb255: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    return tf.keras.applications.resnet.preprocess_input(rgb255)


def resnet_last_block(names) -> set[str]:
    return {n for n in names if n.startswith(RESNET_LAST_BLOCK)}


class ResNet50Classifier(KerasApplicationClassifier):
    Params = ResNet50Params
    paper = PANIGRAHI
    summary = "ResNet50 backbone + GAP/BN/LeakyReLU/Dropout/Dense(2) head, SGD (Panigrahi 2024)."
    arch = "resnet50"

    def keras_preprocess(self, rgb255: np.ndarray) -> np.ndarray:
        """Keras 'caffe' ResNet preprocessing (BGR, ImageNet means subtracted)."""
        return caffe_preprocess(rgb255)

    def backbone(self, input_shape):
        import tensorflow as tf

        return tf.keras.applications.ResNet50(include_top=False, weights=None, input_shape=input_shape)

    def last_block(self, base) -> set[str]:
        return resnet_last_block(layer.name for layer in base.layers)
