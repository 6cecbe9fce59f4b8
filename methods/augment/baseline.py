"""``none``: the no-augmentation baseline every method is compared against."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.plugins import Augmenter, Generated, ImageSet


@dataclass(frozen=True)
class NoAugmentationParams:
    """No parameters: the classifier sees the real training split only."""


class NoAugmentation(Augmenter):
    Params = NoAugmentationParams
    summary = "Baseline: train on the real training split only."
    paper = "Panigrahi et al. 2024, Table 2 'Pre-aug' rows"

    def n_synthetic(self, n_train: int) -> int:
        return 0

    def generate(self, train: ImageSet, n: int, rng: np.random.Generator) -> Generated:
        h, w = train.images.shape[1:]
        return Generated(np.zeros((0, h, w), np.float32), np.zeros(0, np.int64), [])
