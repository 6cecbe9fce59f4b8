"""Fresh phantom images: more real data, for the positive control (``control-more-data``).

The phantom draws every sample from its own child seed (:func:`bench.data.phantom.sample_rng`),
so it can make as many new samples of a class as asked. The prepare stage uses, per class, the
sample indices ``0 .. phantom.total_per_class() - 1`` (:func:`bench.stages.prepare.dataset_root`);
the samples from ``total_per_class()`` on were seen by no split. Each one is preprocessed the way
prepare preprocesses its own images:

1. the 8-bit PNG round trip: :func:`bench.data.phantom.write_phantom` stores
   ``round(clip(x, 0, 1) * 255)`` as a grey PNG, which the folder loader reads back as
   ``value / 255`` in float32 (``bench.data.loader._to_grey``, mode ``L``);
2. :func:`bench.data.loader.resize` to ``preprocess.image_size``;
3. SRAD when ``preprocess.srad``, as :func:`bench.stages.prepare.despeckle` runs it.

``tests/test_controls.py`` regenerates a prepared phantom's images with
:meth:`FreshPhantom.images` and checks they equal prepare's arrays bit for bit.

The augment stage hands :func:`fresh_source`'s :class:`FreshPhantom` to a plugin as
``resources[FRESH_REAL_IMAGES]``, for a phantom dataset only; no other dataset has a
generator of new real images.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.config import Params, PhantomParams, PreprocessParams
from bench.data.loader import resize
from bench.data.phantom import render_phantom, sample_rng
from bench.data.srad import srad
from bench.errors import AugbenchError
from bench.plugins import ImageSet
from bench.typed import to_dict

FRESH_REAL_IMAGES = "fresh_real_images"  # the key of the generator in an augmenter's ``resources``

# What the fresh images depend on, checked against the prepared data's meta.json ("inputs").
_INPUTS = ("dataset", "phantom", "preprocess")


@dataclass
class FreshImages(ImageSet):
    """New real images with ids ``fresh-<class>-<n>`` (``n``: 1-based sample number, as the
    phantom's own ids) and one provenance record per image."""

    provenance: list[dict[str, Any]] = field(default_factory=list)


def through_png(image: np.ndarray) -> np.ndarray:
    """``image`` as :func:`~bench.data.phantom.write_phantom`'s 8-bit PNG reads back through the
    folder loader: rounded to 1/255 steps, float32."""
    pixels = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    return pixels.astype(np.float32) / np.float32(255.0)


@dataclass(frozen=True)
class FreshPhantom:
    """New samples of a prepared phantom: ``fresh(counts) → FreshImages``.

    ``classes``: the class names of labels 0 and 1. ``mismatch``: set by :func:`fresh_source`
    when the prepared data was made with other parameters; calling then raises it."""

    phantom: PhantomParams
    preprocess: PreprocessParams
    classes: tuple[str, str] = ("benign", "malignant")
    mismatch: str = ""

    def images(self, label: str, indices: Sequence[int]) -> np.ndarray:
        """Samples ``indices`` of class ``label``, preprocessed as the prepare stage preprocesses
        its images: float32 ``(len(indices), image_size, image_size)``."""
        ph, pp = self.phantom, self.preprocess
        if not len(indices):
            return np.zeros((0, pp.image_size, pp.image_size), np.float32)
        decoded = [through_png(render_phantom(label, ph.size, sample_rng(ph.seed, label, i), ph.difficulty)[0])
                   for i in indices]
        images = np.stack([resize(image, pp.image_size) for image in decoded])
        if pp.srad:  # bench.stages.prepare.despeckle: n_t iterations per scale, up to scale L
            images = np.stack([srad(image, n_iter=pp.srad_iterations * pp.srad_scale, dt=pp.srad_dt)
                               for image in images])
        return images.astype(np.float32)

    def __call__(self, counts: Mapping[int, int], start: int | None = None) -> FreshImages:
        """``counts[label]`` new images of each integer label, class by class in label order.

        Per class they are the samples ``start, start + 1, ...``; ``start`` defaults to (and may
        not be below) ``phantom.total_per_class()``, the first sample index no split used."""
        if self.mismatch:
            raise AugbenchError(self.mismatch)
        first = self.phantom.total_per_class()
        start = first if start is None else int(start)
        if start < first:
            raise AugbenchError(f"fresh phantom images must start at sample {first} or later (samples 0 .. "
                                f"{first - 1} of each class are the prepared train/val/test images), got {start}")
        size = self.preprocess.image_size
        stacks, labels, ids, records = [np.zeros((0, size, size), np.float32)], [], [], []
        for label in sorted(counts):
            name, indices = self.classes[int(label)], range(start, start + int(counts[label]))
            stacks.append(self.images(name, indices))
            labels += [int(label)] * len(indices)
            ids += [f"fresh-{name}-{i + 1:04d}" for i in indices]
            records += [{"id": f"fresh-{name}-{i + 1:04d}", "source": "phantom", "class": name,
                         "sample_index": i, "phantom_seed": self.phantom.seed} for i in indices]
        return FreshImages(np.concatenate(stacks), np.array(labels, np.int64), ids, records)


def fresh_source(params: Params, prepared_meta: Mapping[str, Any]) -> FreshPhantom | None:
    """The generator of new real images the augment stage hands to plugins, or None unless the
    dataset is the phantom. It refuses to run (when called, not before) for prepared data made
    with other dataset, phantom or preprocess parameters: its images would not be drawn and
    preprocessed like the prepared ones."""
    if params.dataset.source != "phantom":
        return None
    made_with, mismatch = prepared_meta.get("inputs") or {}, ""
    for key in _INPUTS:
        current = json.loads(json.dumps(to_dict(getattr(params, key))))
        if key in made_with and made_with[key] != current and not mismatch:
            mismatch = (f"the prepared data was made with other {key} parameters ({made_with[key]}) than the "
                        f"current ones ({current}), so new phantom images would not match it; re-run the "
                        "prepare stage (dvc repro, or augbench prepare)")
    positive = params.dataset.positive
    other = next(c for c in params.dataset.classes if c != positive)
    return FreshPhantom(params.phantom, params.preprocess, (other, positive), mismatch)
