"""Geometric augmentation: rotation, scaling, flipping (Panigrahi et al. 2024, Table 2).

Panigrahi et al. grow the dataset ×5 with each transform (800 → 4000 images,
Table 2) and cite Kalaivani et al. 2023 for the methods, but state no angle or
scale range. The ranges below are ours, chosen to keep anatomy plausible, and
are parameters: the paper is silent, so treat them as assumptions.

Each plugin also runs *online* (``mode: online`` in params.yaml; bench.online): ``transform``
draws the same transform from the same parameters for every image of every training
minibatch, as Fedoruk et al. 2022 augment on the fly with Keras ``ImageDataGenerator``
(§Classical augmentation, §Training process), instead of the stored ×factor copies of
Panigrahi et al. 2024 Table 2. ``factor`` has no effect online.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from bench.plugins import Augmenter, Generated, ImageSet
from bench.typed import require
from methods.augment._warp import affine_matrix, provenance, source_plan, warp

PAPER = "Panigrahi et al. 2024, Table 2 (×5 dataset size) and Table 4 (metrics)"


@dataclass(frozen=True)
class RotationParams:
    factor: int = field(default=5, metadata={"source": "Panigrahi 2024 Table 2: 800 → 4000"})
    max_angle: float = field(default=20.0, metadata={"source": "not stated in the paper (assumption)"})
    fill: Literal["reflect", "nearest", "constant"] = "reflect"

    def check(self, path: str) -> None:
        require(self.factor >= 1, f"{path}.factor", "must be >= 1")
        require(0 < self.max_angle <= 180, f"{path}.max_angle", "must lie in (0, 180]")


class GeometricRotation(Augmenter):
    Params = RotationParams
    summary = "Random rotation about the image centre, uniform in ±max_angle degrees."
    paper = PAPER

    def _angles(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(-self.params.max_angle, self.params.max_angle, size=n)

    def _rotate(self, image: np.ndarray, angle: float) -> np.ndarray:
        return warp(image, affine_matrix(rotation_deg=angle), mode=self.params.fill)

    def generate(self, train: ImageSet, n: int, rng: np.random.Generator) -> Generated:
        src, copy = source_plan(len(train), n)
        angles = self._angles(n, rng)
        images = [self._rotate(train.images[s], a) for s, a in zip(src, angles, strict=True)]
        return Generated(_stack(images, train), train.labels[src],
                         provenance("geometric-rotation", train.ids, src, copy, {"angle_deg": angles}))

    def transform(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Online: each image rotated by its own angle, uniform in ±max_angle (as ``generate``;
        Keras ``RandomRotation`` / ``ImageDataGenerator(rotation_range)`` semantics)."""
        angles = self._angles(len(images), rng)
        return _stack([self._rotate(im, a) for im, a in zip(images, angles, strict=True)], images)


@dataclass(frozen=True)
class ScalingParams:
    factor: int = field(default=5, metadata={"source": "Panigrahi 2024 Table 2: 800 → 4000"})
    min_scale: float = field(default=0.8, metadata={"source": "not stated in the paper (assumption)"})
    max_scale: float = field(default=1.25, metadata={"source": "not stated in the paper (assumption)"})
    fill: Literal["reflect", "nearest", "constant"] = "reflect"

    def check(self, path: str) -> None:
        require(self.factor >= 1, f"{path}.factor", "must be >= 1")
        require(0 < self.min_scale <= self.max_scale, f"{path}.min_scale", "need 0 < min_scale <= max_scale")


class GeometricScaling(Augmenter):
    Params = ScalingParams
    summary = "Isotropic zoom about the centre (log-uniform scale), cropped/padded to size."
    paper = PAPER

    def _scales(self, n: int, rng: np.random.Generator) -> np.ndarray:
        lo, hi = np.log(self.params.min_scale), np.log(self.params.max_scale)
        return np.exp(rng.uniform(lo, hi, size=n))

    def _zoom(self, image: np.ndarray, scale: float) -> np.ndarray:
        return warp(image, affine_matrix(zoom=(scale, scale)), mode=self.params.fill)

    def generate(self, train: ImageSet, n: int, rng: np.random.Generator) -> Generated:
        src, copy = source_plan(len(train), n)
        scales = self._scales(n, rng)
        images = [self._zoom(train.images[s], z) for s, z in zip(src, scales, strict=True)]
        return Generated(_stack(images, train), train.labels[src],
                         provenance("geometric-scaling", train.ids, src, copy, {"scale": scales}))

    def transform(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Online: each image zoomed by its own log-uniform scale in [min_scale, max_scale] (as
        ``generate``; Keras ``RandomZoom`` draws a linear factor instead)."""
        scales = self._scales(len(images), rng)
        return _stack([self._zoom(im, z) for im, z in zip(images, scales, strict=True)], images)


FLIPS = {"horizontal": (slice(None), slice(None, None, -1)),
         "vertical": (slice(None, None, -1), slice(None)),
         "both": (slice(None, None, -1), slice(None, None, -1))}


@dataclass(frozen=True)
class FlippingParams:
    factor: int = field(default=5, metadata={"source": "Panigrahi 2024 Table 2: 800 → 4000"})
    # Only three non-identity flips exist, so a ×5 dataset repeats one of them:
    # copy k of a source uses flips[k % len(flips)]. Vertical flips put the skin
    # line at the bottom, which no real B-mode image shows; they are kept because
    # the paper's "flipping" does not say which axes it used.
    flips: list[Literal["horizontal", "vertical", "both"]] = field(
        default_factory=lambda: ["horizontal", "vertical", "both"],
        metadata={"source": "axes not stated in the paper (assumption)"})

    def check(self, path: str) -> None:
        require(self.factor >= 1, f"{path}.factor", "must be >= 1")
        require(len(self.flips) > 0, f"{path}.flips", "must name at least one flip")


class GeometricFlipping(Augmenter):
    Params = FlippingParams
    summary = "Mirror images; copy k of each source uses the k-th flip in turn."
    paper = PAPER

    def generate(self, train: ImageSet, n: int, rng: np.random.Generator) -> Generated:
        src, copy = source_plan(len(train), n)
        names = [self.params.flips[c % len(self.params.flips)] for c in copy]
        images = [np.ascontiguousarray(train.images[s][FLIPS[f]]) for s, f in zip(src, names, strict=True)]
        return Generated(_stack(images, train), train.labels[src],
                         provenance("geometric-flipping", train.ids, src, copy, {"flip": names}))

    def transform(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Online: each image left as it is or given one of ``flips``, uniformly. With the default
        flips that is Keras ``RandomFlip("horizontal_and_vertical")`` (each axis flipped with
        probability 1/2); with ``[horizontal]``, ``ImageDataGenerator(horizontal_flip=True)``. The
        identity is one of the choices because offline the real images stay in the training set
        beside their flipped copies."""
        picks = rng.integers(0, len(self.params.flips) + 1, size=len(images))  # 0: as it is
        out = [im if k == 0 else im[FLIPS[self.params.flips[k - 1]]] for im, k in zip(images, picks, strict=True)]
        return _stack(out, images)


def _stack(images: list[np.ndarray], like: ImageSet | np.ndarray) -> np.ndarray:
    if not images:
        shape = like.images.shape if isinstance(like, ImageSet) else like.shape
        return np.zeros((0, *shape[1:]), np.float32)
    return np.stack(images).astype(np.float32)
