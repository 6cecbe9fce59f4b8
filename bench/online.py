"""Online augmentation: an augmenter's random transforms drawn for every training minibatch.

Fedoruk et al. 2022 (§Classical augmentation, §Training process) augment on the fly with Keras
``ImageDataGenerator``: each minibatch is transformed afresh with random parameters, and no
augmented image is stored. A method with ``mode: online`` (params.yaml ``augment.methods``,
docs/online-augmentation.md) does the same here: its augment stage writes only
``online.json`` (:func:`manifest`: the plugin, its parameters and a digest of its code), and
the train stage transforms the images of each epoch's minibatches with the plugin's
``transform(images, rng)`` (:class:`OnlineAugmentation`, called by :func:`bench.training.fit`).

The randomness derives from the run seed, the epoch and the batch alone (:func:`batch_rng`),
never from global or TensorFlow state: a re-run, a run resumed from an epoch checkpoint, and the
seeds of a cell trained in one process (bench.training.ModelReuse) draw exactly the transforms a
fresh, uninterrupted process draws. The epoch's images and their order are those of
:func:`bench.training.epoch_rows` (the real training split), so under either budget an online row
takes the optimizer steps of ``none``.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.errors import AugbenchError, NumericalError

ONLINE = "online"  # the mode
MANIFEST = "online.json"  # what an online augment stage writes instead of synthetic.npz


def batch_rng(seed: int, epoch: int, batch: int, rank: int = 0) -> np.random.Generator:
    """The generator of one minibatch's transforms: a function of (seed, epoch, batch, rank) only.
    (``rank``: the Horovod rank, 0 without one, so that ranks draw different transforms.)"""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch), int(batch), int(rank)]))


class OnlineAugmentation:
    """``epoch_inputs(rows, seed, epoch, batch_size)``: the model inputs of an epoch's training rows,
    each minibatch of ``batch_size`` rows transformed by ``transform(images, rng)`` with
    :func:`batch_rng`, then turned into model inputs by ``to_input`` (the classifier's resize and
    preprocessing). ``images``: the grey [0, 1] (N, H, W) training images the rows index."""

    def __init__(self, transform: Callable[[np.ndarray, np.random.Generator], np.ndarray], images: np.ndarray,
                 to_input: Callable[[np.ndarray], np.ndarray], name: str = "online"):
        self.transform, self.images, self.to_input, self.name = transform, images, to_input, name

    def batch(self, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The transformed grey images of ``rows``, checked as the augment stage checks stored ones."""
        source = self.images[rows]
        out = np.asarray(self.transform(source.copy(), rng))
        if out.shape != source.shape:
            raise AugbenchError(f"{self.name}: transform returned shape {out.shape} for {source.shape}")
        if not np.isfinite(out).all():
            raise NumericalError(f"{self.name}: transform returned NaN/inf pixels")
        if out.size and (out.min() < 0 or out.max() > 1):
            raise AugbenchError(f"{self.name}: transformed pixels leave [0, 1]")
        return out.astype(np.float32, copy=False)

    def epoch_inputs(self, rows: np.ndarray, seed: int, epoch: int, batch_size: int, rank: int = 0) -> np.ndarray:
        batches = [self.batch(rows[start:start + batch_size], batch_rng(seed, epoch, b, rank))
                   for b, start in enumerate(range(0, len(rows), batch_size))]
        grey = np.concatenate(batches) if batches else self.images[:0]
        return np.asarray(self.to_input(grey), np.float32)


def code_digest(plugin: type) -> str:
    """SHA-256 of the Python files of the package that defines ``plugin`` (its module's folder): the
    transforms run in the train stage, so the manifest changes, and DVC re-runs the online rows,
    when that code does."""
    folder = Path(inspect.getfile(plugin)).parent
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


SEED_NOTE = ("per minibatch: numpy SeedSequence([training seed, epoch, batch, rank]) "
             "(bench.online.batch_rng); each epoch the real training split in bench.training.epoch_rows order")


def manifest(method: str, plugin_name: str, plugin: type, params: dict) -> dict:
    """What the train stage needs to draw ``method``'s transforms (written as ``online.json``)."""
    return {"method": method, "mode": "online", "plugin": plugin_name,
            "class": f"{plugin.__module__}.{plugin.__qualname__}", "params": params,
            "code": code_digest(plugin), "randomness": SEED_NOTE}
