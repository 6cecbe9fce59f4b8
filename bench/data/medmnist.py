"""A MedMNIST v2 ``.npz`` file, with its official train/val/test splits.

Format (Yang et al. 2023, "MedMNIST v2 - A large-scale lightweight benchmark for 2D and 3D
biomedical image classification", Scientific Data 10:41, section "Methods"; the ``medmnist``
package writes the same keys): ``train_images``, ``train_labels``, ``val_images``,
``val_labels``, ``test_images``, ``test_labels``; images uint8 ``(N, H, W)`` (grey) or
``(N, H, W, 3)`` (RGB); labels ``(N, 1)`` integers. The MedMNIST+ files (``_64``, ``_128``,
``_224``) have the same keys at larger sizes.

The splits are used as published, not drawn again, so results compare with the
benchmark's. augbench compares two classes: labels must be 0 and 1, and
``dataset.classes[k]`` names label ``k``. For BreastMNIST that is ``[malignant, benign]``
(label 0 = malignant, 1 = normal and benign merged; Yang et al. 2023, BreastMNIST
description), with ``positive: malignant``; datasets/breastmnist.yaml holds these values, and the
prepare stage takes them from the card when ``dataset.classes`` is null (and stops when given ones
disagree with it; bench.data.cards.dataset_classes).

The arrays are written as PNG files (lossless, so decoding gives back ``pixel / 255``)
under a work folder, one class folder each, named ``<split>-<index>.png``, and then go
through the same validation as a folder dataset.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from bench.data.loader import MIN_SIDE
from bench.data.sources import Source, folder_source
from bench.data.splits import SPLIT_NAMES
from bench.errors import DataError

# MedMNIST v2's key names (Yang et al. 2023; medmnist.dataset.MedMNIST reads f"{split}_images").
REQUIRED_KEYS = tuple(f"{split}_{what}" for split in SPLIT_NAMES for what in ("images", "labels"))
HINT = "expected a MedMNIST v2 .npz file (e.g. breastmnist.npz from zenodo.org/records/10519652)"


def _load(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        what = "is a folder, not a .npz file" if path.is_dir() else "MedMNIST file not found"
        raise DataError(path, what, "check dataset.path in params.yaml")
    try:
        with np.load(path, allow_pickle=False) as data:
            files = list(data.files)
            missing = [k for k in REQUIRED_KEYS if k not in files]
            if missing:
                raise DataError(path, f"missing key(s) {', '.join(missing)}; the file has "
                                f"{', '.join(files) or 'no arrays'}", HINT)
            return {k: data[k] for k in REQUIRED_KEYS}
    except DataError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(path, f"not a readable .npz file ({type(exc).__name__}: {exc})", HINT) from None


def _check_images(path: Path, key: str, images: np.ndarray) -> None:
    shape = tuple(images.shape)
    if images.dtype != np.uint8:
        raise DataError(path, f"{key} has dtype {images.dtype}, expected uint8", HINT)
    grey = images.ndim == 3
    colour = images.ndim == 4 and shape[-1] in (1, 3)
    if not (grey or colour):
        raise DataError(path, f"{key} has shape {shape}, expected (N, H, W) or (N, H, W, 3)",
                        "3-D MedMNIST volumes (N, D, H, W) are not supported")
    if shape[0] == 0:
        raise DataError(path, f"{key} holds no images", "every official split needs images")
    if min(shape[1:3]) < MIN_SIDE:
        raise DataError(path, f"{key} images are {shape[2]}x{shape[1]} px, smaller than the "
                        f"{MIN_SIDE}x{MIN_SIDE} minimum")


def _check_labels(path: Path, key: str, labels: np.ndarray, n_images: int) -> np.ndarray:
    """Labels as a flat int64 array of 0s and 1s."""
    shape = tuple(labels.shape)
    if labels.ndim == 2 and shape[1] != 1:
        raise DataError(path, f"{key} has shape {shape}: {shape[1]} labels per image (multi-label)",
                        "augbench needs one binary label per image, shape (N, 1)")
    if labels.ndim not in (1, 2):
        raise DataError(path, f"{key} has shape {shape}, expected (N, 1)")
    if shape[0] != n_images:
        raise DataError(path, f"{key} has {shape[0]} labels for {n_images} images")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(path, f"{key} has dtype {labels.dtype}, expected integers")
    flat = labels.reshape(-1).astype(np.int64)
    values = sorted(int(v) for v in np.unique(flat))
    if not set(values) <= {0, 1}:
        raise DataError(path, f"{key} takes the values {values[:12]}{' ...' if len(values) > 12 else ''}; "
                        "augbench compares two classes (labels 0 and 1)",
                        "use a binary MedMNIST set (BreastMNIST, PneumoniaMNIST), or save a .npz "
                        "with the labels mapped to 0 and 1")
    return flat


def read_medmnist(path: str | os.PathLike) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{split: (images, labels)}`` of a MedMNIST v2 ``.npz`` file, checked: uint8 images
    ``(N, H, W)`` or ``(N, H, W, 3)`` (``(N, H, W, 1)`` is read as grey), labels ``(N, 1)`` or
    ``(N,)`` with values 0 and 1. Every problem is a :class:`DataError` naming the file and key."""
    path = Path(path).expanduser()
    arrays = _load(path)
    out = {}
    for split in SPLIT_NAMES:
        images = arrays[f"{split}_images"]
        _check_images(path, f"{split}_images", images)
        labels = _check_labels(path, f"{split}_labels", arrays[f"{split}_labels"], images.shape[0])
        if images.ndim == 4 and images.shape[-1] == 1:
            images = images[..., 0]
        out[split] = (images, labels)
    return out


def _check_classes(path: Path, classes: Sequence[str] | None) -> list[str]:
    if classes is None:
        return ["0", "1"]
    classes = list(classes)
    if len(classes) != 2:
        raise DataError(path, f"{len(classes)} class names given ({classes}); a MedMNIST file needs two",
                        "dataset.classes: [name of label 0, name of label 1]")
    return classes


def medmnist_source(path: str | os.PathLike, classes: Sequence[str] | None, workdir: str | os.PathLike) -> Source:
    """Read the ``.npz`` at ``path`` and write its images as PNG files under ``workdir``
    (emptied first: never mixed with files of an earlier run). ``classes[k]`` names label
    ``k`` (default ``["0", "1"]``). Record ids are ``"<class>/<split>-<index>"``; the
    manifest's path column names the array: ``<file>:<split>_images[<index>]``."""
    path = Path(path).expanduser()
    splits = read_medmnist(path)
    names = _check_classes(path, classes)
    workdir = Path(workdir)
    if workdir.exists():
        shutil.rmtree(workdir)
    for name in names:
        (workdir / name).mkdir(parents=True)
    official: dict[str, str] = {}
    locations: dict[str, str] = {}
    for split, (images, labels) in splits.items():
        width = len(str(len(images) - 1))
        for k, (image, label) in enumerate(zip(images, labels, strict=True)):
            stem = f"{split}-{k:0{width}d}"
            rid = f"{names[label]}/{stem}"
            Image.fromarray(image).save(workdir / names[label] / f"{stem}.png")
            official[rid] = split
            locations[rid] = f"{path.name}:{split}_images[{k}]"
    present = {rid.split("/", 1)[0] for rid in official}
    for k, name in enumerate(names):
        if name not in present:
            raise DataError(path, f"no image has label {k} ({name!r})", "augbench compares two classes")
    source = folder_source(workdir, names)
    return Source(kind="medmnist", origin=path, root=workdir, scan=source.scan, splits=official,
                  locations=locations)
