"""Histogram specification for mr²NST (Wang et al. 2020; Panigrahi et al. 2024 Eq. 9, H(·, h̄)).

Panigrahi's Eq. 9 applies H, "a histogram specification function", with h̄ "the
density histogram", to the max-combined Gram matrix — an operation on pixel
intensities written into a feature statistic. Our reading: the style target is
the element-wise max of the references' Gram matrices (see
:class:`bench.nst.losses.GramStyle`), and histogram specification maps the
*generated image's* grey levels onto h̄, the histogram of the pooled pixels of its
reference images, after optimisation.
"""

from __future__ import annotations

import numpy as np


def match_to_references(image: np.ndarray, references: list[np.ndarray]) -> np.ndarray:
    """``image`` (H, W) with its grey-level histogram specified to the pooled ``references``."""
    from skimage.exposure import match_histograms

    pooled = np.concatenate([np.asarray(r, np.float32).ravel() for r in references])[None, :]
    out = match_histograms(np.asarray(image, np.float32), pooled)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def specify_histograms(images: np.ndarray, jobs, train) -> np.ndarray:
    """Post-process for :class:`bench.nst.transfer.TransferConfig`: each image to its job's references."""
    return np.stack([match_to_references(img, [train.images[s] for s in job.styles])
                     for img, job in zip(images, jobs, strict=True)])
