"""``classical``: the Keras ImageDataGenerator recipe of Fedoruk et al. 2022.

Fedoruk et al. 2022 (§"Classical augmentation"): rotation range 5, width and
height shift range 0.05, shear range 0.05, zoom range 0.1, horizontal flip off,
brightness range [0.6, 1.4]. Semantics follow Keras 2 ``ImageDataGenerator``,
the tool they name: rotation uniform in ±5°, shifts as a fraction of the size,
*shear in degrees* (so 0.05 is a 0.05° shear — negligible; we keep the paper's
number and note that it almost certainly meant something larger), zoom drawn
independently per axis from [0.9, 1.1], brightness a multiplicative factor,
fill mode "nearest". Fedoruk applied it on the fly, to every training minibatch: that is
``mode: online`` here (``transform``; bench.online); the plugin's own mode is offline, ×factor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bench.plugins import Augmenter, Generated, ImageSet
from bench.typed import require
from methods.augment._warp import affine_matrix, provenance, source_plan, warp

FEDORUK = "Fedoruk et al. 2022, §Classical augmentation"


@dataclass(frozen=True)
class ClassicalParams:
    factor: int = field(default=5, metadata={"source": "ours: same ×5 as Panigrahi Table 2 geometric rows"})
    rotation_range: float = field(default=5.0, metadata={"source": FEDORUK})
    width_shift_range: float = field(default=0.05, metadata={"source": FEDORUK})
    height_shift_range: float = field(default=0.05, metadata={"source": FEDORUK})
    shear_range: float = field(default=0.05, metadata={"source": FEDORUK + " (degrees, Keras semantics)"})
    zoom_range: float = field(default=0.1, metadata={"source": FEDORUK})
    horizontal_flip: bool = field(default=False, metadata={"source": FEDORUK})
    brightness_range: tuple[float, float] = field(default=(0.6, 1.4), metadata={"source": FEDORUK})

    def check(self, path: str) -> None:
        require(self.factor >= 1, f"{path}.factor", "must be >= 1")
        require(0 <= self.zoom_range < 1, f"{path}.zoom_range", "must lie in [0, 1)")
        lo, hi = self.brightness_range
        require(0 < lo <= hi, f"{path}.brightness_range", "need 0 < low <= high")


class ClassicalAugmentation(Augmenter):
    Params = ClassicalParams
    summary = "Random small affine warp + brightness (Keras ImageDataGenerator recipe)."
    paper = FEDORUK

    def _draw(self, n: int, size: tuple[int, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
        p = self.params
        return {
            "rotation_deg": rng.uniform(-p.rotation_range, p.rotation_range, n),
            "shift_row_px": rng.uniform(-p.height_shift_range, p.height_shift_range, n) * size[0],
            "shift_col_px": rng.uniform(-p.width_shift_range, p.width_shift_range, n) * size[1],
            "shear_deg": rng.uniform(-p.shear_range, p.shear_range, n),
            "zoom_row": rng.uniform(1 - p.zoom_range, 1 + p.zoom_range, n),
            "zoom_col": rng.uniform(1 - p.zoom_range, 1 + p.zoom_range, n),
            "flip": (rng.random(n) < 0.5) & p.horizontal_flip,
            "brightness": rng.uniform(*p.brightness_range, n),
        }

    def _one(self, image: np.ndarray, d: dict[str, np.ndarray], i: int) -> np.ndarray:
        m = affine_matrix(d["rotation_deg"][i], d["shear_deg"][i], (d["zoom_row"][i], d["zoom_col"][i]))
        out = warp(image, m, (d["shift_row_px"][i], d["shift_col_px"][i]), mode="nearest")
        if d["flip"][i]:
            out = out[:, ::-1]
        return np.clip(out * d["brightness"][i], 0.0, 1.0)

    def transform(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Online (Fedoruk et al. 2022's own use, ImageDataGenerator on the fly): every image of the
        minibatch warped with its own draw of the parameters, as ``generate`` draws them."""
        draws = self._draw(len(images), images.shape[1:], rng)
        out = np.zeros(images.shape, np.float32)
        for i, image in enumerate(images):
            out[i] = self._one(image, draws, i)
        return out

    def generate(self, train: ImageSet, n: int, rng: np.random.Generator) -> Generated:
        src, copy = source_plan(len(train), n)
        draws = self._draw(n, train.images.shape[1:], rng)
        images = np.zeros((n, *train.images.shape[1:]), np.float32)
        for i, s in enumerate(src):
            images[i] = self._one(train.images[s], draws, i)
        return Generated(images, train.labels[src], provenance("classical", train.ids, src, copy, draws))
