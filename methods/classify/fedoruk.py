"""``inceptionv3`` and ``efficientnetb0``: the classifiers of Fedoruk et al. 2022.

Recipe (Fedoruk et al. 2022, slide "Training process"): "All networks were
trained with 6 epochs (with batch size equal to 32) per training. Epoch with
best validation accuracy was picked as a training result." The slides say
"transfer learning" and nothing else about the classifiers, so these are our
assumptions, each marked in the parameter's source: all layers fine-tuned
(``finetune-all``), Adam with the Keras defaults (lr 1e-3, β1 0.9, β2 0.999),
head GlobalAveragePooling2D → Dense(2, softmax) (the Keras applications' own top
without its ImageNet classes), no early stopping, no lr schedule, no class
weights.

Last block (``finetune-last-block``, following Byra et al. 2021 §3.2 "the last
block" of the backbone):

* InceptionV3: the last inception module, ``mixed10`` — every layer downstream
  of ``mixed9`` (its branches have auto-generated Keras names, so the block is
  found by graph reachability, not by name): 6,073,536 weights. ``mixed9`` and
  ``mixed10`` are both 8×8 "Figure 7" modules; we take only the last, as Byra
  takes one residual block.
* EfficientNetB0: its last MBConv block ``block7a_*`` (stage 7 has a single
  block in B0) plus the 1×1 ``top_conv``/``top_bn``/``top_activation`` that
  follows it and feeds the pooling: 1,129,392 weights. Without the top
  convolution the "last block" would leave a 320→1280 layer between it and the
  head frozen.

Input size: InceptionV3 needs at least 75 px and EfficientNetB0 32 px
(keras.applications ``obtain_input_shape``). A smaller prepared image is
resized (bilinear) up to that minimum by the train stage, which asks
``input_size``; a model built directly for a smaller input (e.g. 32 px)
upsizes inside the model with a bilinear ``Resizing`` layer named ``upsize``.

Preprocessing (grey [0, 1] → three equal channels × 255, then):

* InceptionV3: Keras ``inception_v3.preprocess_input`` ("tf" mode: x/127.5 − 1,
  i.e. [−1, 1]).
* EfficientNetB0: nothing — Keras' EfficientNet expects [0, 255] and rescales
  inside the model (Rescaling(1/255) → Normalization with the ImageNet
  statistics stored in the weights file). With ``weights="imagenet"`` Keras also
  adds Rescaling(1/sqrt(std)) per channel after the Normalization (tensorflow
  issue 49930), a layer it omits for ``weights=None``; we build with
  ``weights=None`` and load the file, so we fold that factor into the
  Normalization variance instead (var ← var·std: (x−m)/sqrt(var·std) =
  (x−m)/sqrt(var)/sqrt(std), exactly Keras' ImageNet model). A weights *file*
  is loaded as is (it must come from this model, e.g. saved from an augbench run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np

from methods.classify._keras import KerasApplicationClassifier, KerasParams, downstream_of

FEDORUK = "Fedoruk et al. 2022, slide 'Training process'"
ASSUMED = "Fedoruk 2022 is silent (assumption)"
IMAGENET_STDDEV_RGB = (0.229, 0.224, 0.225)  # keras/src/applications/efficientnet.py IMAGENET_STDDEV_RGB
TransferMode = Literal["finetune-all", "feature-extraction", "finetune-last-block"]


@dataclass(frozen=True)
class FedorukParams(KerasParams):
    transfer: TransferMode = field(default="finetune-all", metadata={"source": ASSUMED})
    epochs: int = field(default=6, metadata={"source": FEDORUK})
    batch_size: int = field(default=32, metadata={"source": FEDORUK})
    optimizer: Literal["sgd", "adam"] = field(default="adam", metadata={"source": ASSUMED})
    learning_rate: float = field(default=1e-3, metadata={"source": ASSUMED + "; Keras Adam default"})
    head: Literal["panigrahi", "softmax", "sigmoid"] = field(default="softmax", metadata={
        "source": ASSUMED + ": GAP-Dense(2, softmax)"})
    monitor: Literal["val_loss", "val_accuracy"] = field(default="val_accuracy", metadata={
        "source": FEDORUK + " ('epoch with best validation accuracy')"})
    early_stopping_patience: int = field(default=0, metadata={"source": FEDORUK + ": a fixed 6 epochs"})
    reduce_lr_patience: int = field(default=0, metadata={"source": ASSUMED + "; 0 = off"})


@dataclass(frozen=True)
class InceptionV3Params(FedorukParams):
    MIN_INPUT_SIZE: ClassVar[int] = 75  # keras inception_v3 obtain_input_shape(min_size=75)
    ARCH_NAME: ClassVar[str] = "InceptionV3"


@dataclass(frozen=True)
class EfficientNetB0Params(FedorukParams):
    MIN_INPUT_SIZE: ClassVar[int] = 32  # keras efficientnet obtain_input_shape(min_size=32)
    ARCH_NAME: ClassVar[str] = "EfficientNetB0"


class InceptionV3Classifier(KerasApplicationClassifier):
    Params = InceptionV3Params
    paper = FEDORUK
    summary = "InceptionV3 backbone + GAP/Dense(2) head, 6 epochs, best validation accuracy (Fedoruk 2022)."
    arch = "inception_v3"

    def keras_preprocess(self, rgb255: np.ndarray) -> np.ndarray:
        """Keras 'tf' preprocessing: [0, 255] → [−1, 1]."""
        import tensorflow as tf

        return tf.keras.applications.inception_v3.preprocess_input(rgb255)

    def backbone(self, input_shape):
        import tensorflow as tf

        return tf.keras.applications.InceptionV3(include_top=False, weights=None, input_shape=input_shape)

    def last_block(self, base) -> set[str]:
        """The ``mixed10`` module: every layer downstream of ``mixed9``."""
        return downstream_of(base, "mixed9")


class EfficientNetB0Classifier(KerasApplicationClassifier):
    Params = EfficientNetB0Params
    paper = FEDORUK
    summary = "EfficientNetB0 backbone + GAP/Dense(2) head, 6 epochs, best validation accuracy (Fedoruk 2022)."
    arch = "efficientnetb0"

    def keras_preprocess(self, rgb255: np.ndarray) -> np.ndarray:
        """Nothing: Keras' EfficientNet takes [0, 255] and normalises inside the model."""
        return rgb255

    def backbone(self, input_shape):
        import tensorflow as tf

        return tf.keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=input_shape)

    def last_block(self, base) -> set[str]:
        return {layer.name for layer in base.layers if layer.name.startswith(("block7a_", "top_"))}

    def load_weights(self, base, weights_file: str, spec: str) -> None:
        """Load; for the Keras ImageNet file also fold Keras' 1/sqrt(std) input scaling into
        the Normalization variance (module docstring)."""
        import tensorflow as tf

        base.load_weights(weights_file)
        if spec != "imagenet":
            return
        (norm,) = [layer for layer in base.layers if isinstance(layer, tf.keras.layers.Normalization)]
        mean, variance, n = norm.get_weights()  # set_weights also refreshes the layer's cached tensors
        norm.set_weights([mean, variance * np.asarray(IMAGENET_STDDEV_RGB, np.float32), n])
