"""SRAD (Yu & Acton 2002): vectorised == reference, speckle reduction, edge keeping."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from bench.data.srad import equivalent_number_of_looks, srad, srad_reference, srad_scales

HEIGHT, WIDTH = 128, 64
HOMOGENEOUS = (slice(8, HEIGHT - 8), slice(40, 60))  # bright half, away from the edge
PROFILE_ROWS = slice(8, HEIGHT - 8)


def _rayleigh(rng: np.random.Generator, shape) -> np.ndarray:
    """Fully developed speckle amplitude with unit RMS."""
    return np.hypot(rng.standard_normal(shape), rng.standard_normal(shape)) / np.sqrt(2.0)


@pytest.fixture(scope="module")
def speckled_step() -> np.ndarray:
    """A vertical step edge (0.2 | 0.5) at column WIDTH/2 under multiplicative speckle."""
    rng = np.random.default_rng(0)
    truth = np.where(np.arange(WIDTH) < WIDTH // 2, 0.2, 0.5)[None, :] * np.ones((HEIGHT, 1))
    return truth * _rayleigh(rng, (HEIGHT, WIDTH))


def _enl(image: np.ndarray) -> float:
    return equivalent_number_of_looks(image[HOMOGENEOUS])


def _edge_sharpness(image: np.ndarray) -> float:
    """Largest step of the row-averaged profile across the edge, per unit edge height."""
    profile = image[PROFILE_ROWS].mean(axis=0)
    height = profile[40:60].mean() - profile[4:24].mean()
    return float(np.abs(np.diff(profile[20:44])).max() / height)


def _gaussian_with_enl(image: np.ndarray, target: float) -> np.ndarray:
    """Gaussian blur whose ENL in the homogeneous region equals ``target`` (bisection on sigma)."""
    lo, hi = 0.05, 10.0
    for _ in range(40):
        sigma = 0.5 * (lo + hi)
        if _enl(ndimage.gaussian_filter(image, sigma, mode="nearest")) < target:
            lo = sigma
        else:
            hi = sigma
    return ndimage.gaussian_filter(image, 0.5 * (lo + hi), mode="nearest")


@pytest.mark.parametrize("q0, roi", [(None, None), (0.3, None), (None, (slice(2, 20), slice(4, 20)))])
def test_vectorised_matches_reference(q0, roi):
    image = np.random.default_rng(1).uniform(0.0, 1.0, (24, 24))
    fast = srad(image, n_iter=3, q0=q0, roi=roi)
    slow = srad_reference(image, n_iter=3, q0=q0, roi=roi)
    assert fast.dtype == slow.dtype == np.float32
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-6)
    assert not np.allclose(fast, image, atol=1e-3)  # it did something


def test_boolean_mask_roi_equals_slices(speckled_step):
    mask = np.zeros(speckled_step.shape, dtype=bool)
    mask[HOMOGENEOUS] = True
    np.testing.assert_array_equal(srad(speckled_step, 5, roi=mask), srad(speckled_step, 5, roi=HOMOGENEOUS))


def test_zero_iterations_is_identity_and_mean_is_preserved(speckled_step):
    np.testing.assert_allclose(srad(speckled_step, n_iter=0), speckled_step, atol=1e-6)
    # The flux between two pixels enters one and leaves the other: the update is conservative.
    assert srad(speckled_step, 20, dt=0.2).mean() == pytest.approx(speckled_step.mean(), rel=1e-5)


def test_srad_raises_equivalent_number_of_looks(speckled_step):
    smoothed = srad(speckled_step, n_iter=50, roi=HOMOGENEOUS)
    assert _enl(smoothed) >= 3.0 * _enl(speckled_step)


def test_edge_sharper_than_gaussian_of_equal_smoothing(speckled_step):
    smoothed = srad(speckled_step, n_iter=50, dt=0.2, roi=HOMOGENEOUS)
    enl = _enl(smoothed)
    assert enl >= 10.0 * _enl(speckled_step)
    blurred = _gaussian_with_enl(speckled_step, enl)
    assert _enl(blurred) == pytest.approx(enl, rel=1e-3)
    assert _edge_sharpness(smoothed) >= 1.2 * _edge_sharpness(blurred)


def test_scales_are_successive_iterations_with_decreasing_speckle(speckled_step):
    scales = srad_scales(speckled_step, n_t=5, n_scales=4, dt=0.1, roi=HOMOGENEOUS)
    assert len(scales) == 4
    assert all(s.dtype == np.float32 and s.shape == speckled_step.shape for s in scales)
    np.testing.assert_allclose(scales[2], srad(speckled_step, 15, dt=0.1, roi=HOMOGENEOUS), atol=1e-6)
    enls = [_enl(speckled_step)] + [_enl(s) for s in scales]
    assert np.all(np.diff(enls) > 0)


def test_scales_default_series_length():
    image = 0.5 * _rayleigh(np.random.default_rng(2), (16, 16))
    assert len(srad_scales(image)) == 8  # Panigrahi et al. 2024: n_t = 10, L = 8


def test_equivalent_number_of_looks():
    assert equivalent_number_of_looks(np.array([1.0, 3.0])) == pytest.approx(4.0)
    assert equivalent_number_of_looks(np.full(5, 0.3)) == float("inf")
    intensity = _rayleigh(np.random.default_rng(3), 200_000) ** 2  # single-look intensity: ENL = 1
    assert equivalent_number_of_looks(intensity) == pytest.approx(1.0, rel=0.02)
    with pytest.raises(ValueError, match="at least 2 pixels"):
        equivalent_number_of_looks(np.array([1.0]))


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [({"n_iter": -1}, "n_iter must be an integer >= 0, got -1"), ({"n_iter": 1.5}, "n_iter must be an integer"),
     ({"dt": 0.0}, r"dt must be in \(0, 1\]"), ({"dt": 1.5}, r"dt must be in \(0, 1\].*got 1\.5"),
     ({"q0": 0.0}, "q0 must be > 0")],
)
def test_bad_arguments_raise(kwargs, problem):
    with pytest.raises(ValueError, match=problem):
        srad(np.ones((8, 8)), **kwargs)


@pytest.mark.parametrize(("image", "problem"), [(np.ones(8), r"non-empty 2-D array, got shape \(8,\)"),
                                              (-np.ones((8, 8)), "finite and non-negative"),
                                              (np.full((8, 8), np.nan), "finite and non-negative")])
def test_bad_images_raise(image, problem):
    with pytest.raises(ValueError, match=problem):
        srad(image)
