"""Controls: methods whose effect is known in advance, so a run shows whether the harness can see one.

``control-more-data`` (positive control) appends new *real* images — fresh phantom samples that
no split used — so its gain over ``none`` is what more real data buys. ``control-shuffled-labels``
(negative control) appends flipped copies of training images whose labels are a random
permutation of their true labels (about half wrong on balanced data), so it should hurt.
A benchmark that cannot separate either from ``none`` cannot be trusted with the smaller
effects of real augmentation methods (Bouthillier et al. 2021). docs/controls.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bench.data.fresh import FRESH_REAL_IMAGES
from bench.errors import ConfigError
from bench.plugins import Augmenter, Generated, ImageSet
from bench.typed import require
from methods.augment._warp import source_plan

CONTROLS = ("Bouthillier et al. 2021, 'Accounting for variance in machine learning benchmarks' "
            "(MLSys): controls and variance")
# The geometric methods' ×5 (Panigrahi 2024 Table 2: 800 → 4000), so a control adds as many images as they do.
FACTOR_SOURCE = "as the geometric methods: Panigrahi 2024 Table 2, 800 → 4000"


def _check_factor(factor: int, path: str) -> None:
    require(factor >= 2, f"{path}.factor", f"must be >= 2, got {factor}",
            "factor F appends F - 1 images per training image; a control that adds none shows nothing")


def class_counts(labels: np.ndarray, n: int) -> dict[int, int]:
    """``n`` split over the classes of ``labels`` in proportion to their counts (largest
    remainders, ties to the lower label): ``(F - 1) * n_train`` gives each class exactly
    ``(F - 1)`` times its training count."""
    classes, counts = np.unique(np.asarray(labels, np.int64), return_counts=True)
    if n == 0 or not len(classes):
        return {}
    exact = n * counts / counts.sum()
    share = np.floor(exact).astype(int)
    for k in np.argsort(-(exact - share), kind="stable")[: n - int(share.sum())]:
        share[k] += 1
    return {int(c): int(s) for c, s in zip(classes, share, strict=True)}


@dataclass(frozen=True)
class MoreDataParams:
    factor: int = field(default=5, metadata={"source": FACTOR_SOURCE})

    def check(self, path: str) -> None:
        _check_factor(self.factor, path)


class MoreRealData(Augmenter):
    """Positive control: ``n`` fresh phantom images, class-balanced like the training split, from
    the generator the augment stage hands over as ``resources["fresh_real_images"]``
    (bench.data.fresh; the phantom only)."""

    Params = MoreDataParams
    control = "positive"
    summary = ("Positive control: more real data — fresh phantom images that no split used, "
               "(factor - 1) per training image, class-balanced like the training split. Phantom only.")
    paper = f"{CONTROLS}; positive control = more real data"

    def needs_resources(self) -> tuple[str, ...]:
        """What this plugin reads from ``resources`` (as ``needs_encoders`` for encoders): the
        augment stage hands it over for a phantom dataset only."""
        return (FRESH_REAL_IMAGES,)

    def fit(self, train: ImageSet, rng: np.random.Generator) -> None:
        self._fresh()  # fail before any work when there is no generator of new real images

    def _fresh(self):
        fresh = self.resources.get(FRESH_REAL_IMAGES)
        if fresh is None:
            raise ConfigError("matrix.methods", "control-more-data, the positive control, needs a generator of new "
                              "real images, and only the embedded phantom has one (dataset.source: phantom); "
                              "this dataset has none",
                              "remove control-more-data from matrix.methods for folder datasets")
        return fresh

    def generate(self, train: ImageSet, n: int, rng: np.random.Generator) -> Generated:
        fresh = self._fresh()(class_counts(train.labels, n))
        provenance = [{"method": "control-more-data", **rec} for rec in fresh.provenance]
        return Generated(fresh.images.astype(np.float32), fresh.labels.astype(np.int64), provenance)


@dataclass(frozen=True)
class ShuffledLabelsParams:
    factor: int = field(default=5, metadata={"source": FACTOR_SOURCE})

    def check(self, path: str) -> None:
        _check_factor(self.factor, path)


class ShuffledLabels(Augmenter):
    """Negative control: copy ``j`` is training image ``j mod n_train``, mirrored left-right with
    probability 1/2; the copies' labels are a random permutation of their true labels, so the
    class counts stay as they are and only the image-label pairing is lost."""

    Params = ShuffledLabelsParams
    control = "negative"
    summary = ("Negative control: (factor - 1) copies per training image (random horizontal flip) with "
               "labels randomly permuted among the copies, so about half are wrong; it should hurt.")
    paper = (f"{CONTROLS}; random labels as in Zhang et al. 2017, 'Understanding deep learning requires "
             "rethinking generalization' (ICLR)")

    def generate(self, train: ImageSet, n: int, rng: np.random.Generator) -> Generated:
        src, copy = source_plan(len(train), n)
        flip = rng.random(n) < 0.5
        true = train.labels[src].astype(np.int64)
        shuffled = rng.permutation(true)
        images = np.zeros((n, *train.images.shape[1:]), np.float32)
        for k, (s, f) in enumerate(zip(src, flip, strict=True)):
            images[k] = train.images[s, :, ::-1] if f else train.images[s]
        provenance = [{"method": "control-shuffled-labels", "source_id": train.ids[s], "copy": int(c),
                       "flip": "horizontal" if f else "none", "true_label": int(t), "label": int(y),
                       "label_wrong": bool(t != y)}
                      for s, c, f, t, y in zip(src, copy, flip, true, shuffled, strict=True)]
        return Generated(images, shuffled, provenance)
