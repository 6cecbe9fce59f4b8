"""Explicit finiteness checks of images that augmentation takes from outside.

Whether a NaN pixel reaches a loss depends on the CPU's kernels (``tf.nn.max_pool2d``
drops a NaN on some CPUs and keeps it on others), so a guard that waits for a
non-finite loss works on one machine and not on another. These checks look at the
arrays themselves, once, in numpy, before any TensorFlow op, and name the image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bench.errors import NumericalError


def nonfinite_rows(images: np.ndarray) -> np.ndarray:
    """Indices of the images (first axis) holding at least one NaN or ±inf value."""
    images = np.asarray(images)
    if images.size == 0 or not np.issubdtype(images.dtype, np.inexact):
        return np.zeros(0, np.int64)
    if np.isfinite(images).all():  # the common case: one pass, no per-image reduction
        return np.zeros(0, np.int64)
    return np.flatnonzero(~np.isfinite(images.reshape(len(images), -1)).all(axis=1))


def require_finite(images: np.ndarray, ids: Sequence[str], what: str) -> None:
    """Raise :class:`NumericalError` naming the first non-finite image of ``images`` (id and index)."""
    bad = nonfinite_rows(images)
    if len(bad):
        i = int(bad[0])
        n_bad = int((~np.isfinite(images[i])).sum())
        more = f" ({len(bad)} of {len(images)} images are)" if len(bad) > 1 else ""
        raise NumericalError(f"{what}: image {ids[i]!r} (index {i}) has {n_bad} NaN/inf pixel(s){more}; "
                             "refused before any computation, nothing was written — fix or remove it")
