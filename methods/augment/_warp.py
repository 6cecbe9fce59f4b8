"""Shared by the geometric and classical augmenters: the affine warp, which source
image each synthetic image comes from, and its provenance record."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def affine_matrix(rotation_deg: float = 0.0, shear_deg: float = 0.0,
                  zoom: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """2×2 output→input matrix in (row, col) coordinates: rotation · shear · zoom.

    Angles in degrees; a positive rotation turns the content counter-clockwise as
    displayed (row 0 at the top), as Keras ``ImageDataGenerator`` and
    ``scipy.ndimage.rotate`` do. Zoom > 1 shows a smaller field of view, i.e.
    magnifies.
    """
    theta, shear = np.deg2rad(rotation_deg), np.deg2rad(shear_deg)
    rot = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
    shr = np.array([[1.0, -np.sin(shear)], [0.0, np.cos(shear)]])
    zm = np.diag([1.0 / zoom[0], 1.0 / zoom[1]])
    return rot @ shr @ zm


def warp(image: np.ndarray, matrix: np.ndarray, shift: tuple[float, float] = (0.0, 0.0),
         mode: str = "reflect") -> np.ndarray:
    """Apply ``matrix`` about the image centre, then translate by ``shift`` pixels (row, col)."""
    centre = (np.array(image.shape, dtype=np.float64) - 1) / 2
    offset = centre - matrix @ (centre + np.asarray(shift, dtype=np.float64))
    out = ndimage.affine_transform(image, matrix, offset=offset, order=1, mode=mode)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def source_plan(n_train: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Source index and copy number of each of ``n`` synthetic images (sources in turn)."""
    j = np.arange(n)
    return j % n_train, j // n_train


def provenance(method: str, ids: list[str], src: np.ndarray, copy: np.ndarray,
               per_image: dict[str, np.ndarray | list]) -> list[dict]:
    """One record per synthetic image: method, source id, copy number, drawn parameters."""
    def plain(value):
        return value.item() if isinstance(value, np.generic) else value

    return [{"method": method, "source_id": ids[s], "copy": int(c),
             **{k: plain(v[i]) for k, v in per_image.items()}}
            for i, (s, c) in enumerate(zip(src, copy, strict=True))]
