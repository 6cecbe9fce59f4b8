"""The two plugin contracts: augmenters and classifiers.

An augmenter has a typed ``Params`` dataclass, a ``mode`` (``append``: synthetic
images are added to the real training split; ``replace``: they are the whole
training set), an optional ``fit(train, rng)`` and ``generate(train, n, rng)``.
It must be deterministic for a given ``rng`` seed and may only read ``train``.
An augmenter that can also run *online* (random transforms drawn per minibatch
during training, instead of stored copies: docs/online-augmentation.md) defines
``transform(images, rng)``; a params.yaml entry with ``mode: online`` selects it
(:func:`bench.registry.modes_of`).

A classifier has a typed ``Params`` dataclass, declares its input size and
preprocessing, and ``build(input_shape, n_classes)`` returns a compiled Keras
model whose trainable set follows its transfer mode. Optionally it counts its
models' parameters (``parameter_counts(model)``) and registers the custom Keras
layers they contain (``register_custom_objects()``), so that the harness never
imports a plugin's modules itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np


@dataclass
class ImageSet:
    """Grey images in [0, 1] with integer labels (1 = positive class) and stable ids."""

    images: np.ndarray  # float32 (N, H, W)
    labels: np.ndarray  # int64 (N,)
    ids: list[str]

    def __post_init__(self) -> None:
        if self.images.ndim != 3:
            raise ValueError(f"images must be (N, H, W), got shape {self.images.shape}")
        if not len(self.images) == len(self.labels) == len(self.ids):
            raise ValueError("images, labels and ids differ in length")

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Generated:
    """Synthetic images with one provenance record per image."""

    images: np.ndarray
    labels: np.ndarray
    provenance: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)


class Augmenter:
    """Base class for augmentation plugins (optional; the contract is duck-typed).

    ``resources`` holds what the pipeline hands over before ``fit``: ``"encoder_dir"``, the
    ``encoder`` stage's output (``augbench augment --encoder DIR``); ``"checkpoint_dir"``, a
    folder for partial results that a re-run of the same stage may resume from (removed by
    the stage once its output is complete), with ``"checkpoint_key"``, a string that changes
    whenever the stage's parameters or inputs do (bench.nst.shards uses both); ``"log_dir"``,
    the stage's output folder, for logs that are part of the output (a GAN's training log).
    """

    Params: ClassVar[type]
    mode: ClassVar[str] = "append"
    paper: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    # True for methods that synthesise new images (NST, GANs) rather than transform one: the
    # quality stage measures these (bench.quality) by default.
    generative: ClassVar[bool] = False
    # "positive" (should help) or "negative" (should hurt) for a control whose effect is known in
    # advance (methods/augment/controls.py); "" for an ordinary method. The verdict table checks them.
    control: ClassVar[str] = ""

    def __init__(self, params: Any):
        self.params = params
        self.resources: dict[str, Path | str] = {}

    def needs_encoders(self) -> tuple[str, ...]:
        """Domain encoders (architectures) this plugin reads from ``resources["encoder_dir"]``
        with its current parameters. The pipeline's encoder stage trains them; the contract
        checks (bench.contract) train tiny ones. Default: none."""
        return ()

    def fit(self, train: ImageSet, rng: np.random.Generator) -> None:
        """Learn what generation needs (GANs, teachers). Default: nothing."""

    def n_synthetic(self, n_train: int) -> int:
        """How many images ``generate`` makes for a training split of ``n_train``."""
        factor = getattr(self.params, "factor", 1)
        return max(0, (factor - 1) * n_train)

    def generate(self, train: ImageSet, n: int, rng: np.random.Generator) -> Generated:
        raise NotImplementedError

    # Online mode (optional; not defined here, so that ``hasattr(plugin, "transform")`` says whether
    # a plugin has it): ``transform(images, rng)`` returns a new float32 (N, H, W) array in [0, 1],
    # each image of ``images`` transformed with parameters drawn from ``rng`` (only from ``rng``: the
    # train stage seeds it from the run seed, the epoch and the batch, bench.online). It must not
    # need ``fit``, and must draw from the same distributions as ``generate`` with the same parameters,
    # so that an offline and an online row of one method differ only in the mode.


class Classifier:
    """Base class for classifier plugins."""

    Params: ClassVar[type]
    paper: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    def __init__(self, params: Any):
        self.params = params

    def input_size(self, image_size: int) -> int:
        return getattr(self.params, "input_size", None) or image_size

    def preprocess(self, images: np.ndarray) -> np.ndarray:
        """Grey [0, 1] (N, H, W) → model input (N, H, W, C)."""
        raise NotImplementedError

    def build(self, input_shape: tuple[int, ...], n_classes: int):
        raise NotImplementedError

    def weights_source(self) -> str:
        return str(getattr(self.params, "weights", "none"))

    def parameter_counts(self, model) -> dict[str, Any]:
        """Parameter counts of ``model``, built by this plugin's ``build`` (``augbench params-count``,
        the report's parameter table): trainable, non_trainable, total and head (the trainable
        weights of the layers named ``head_*``; bench.counts.model_counts). A plugin whose models
        have parts of their own to count adds entries (the DRS classifier: ``drs``, ``drs_groups``)."""
        from bench.counts import model_counts

        return model_counts(model)

    @classmethod
    def register_custom_objects(cls) -> None:
        """Register the custom Keras objects (``register_keras_serializable``) this plugin's models
        can contain, so that a kept model loads in a fresh process (bench.models_io.load_kept calls
        it for the plugin that built the model). Default: none."""
