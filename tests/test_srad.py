"""SRAD (Yu & Acton 2002): vectorised == reference, the automatic homogeneous window for q0,
speckle reduction, edge keeping (also with the pipeline's own settings from params.yaml) and
Panigrahi et al. 2024's multi-scale series."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import ndimage

from bench.data.srad import (
    CLIPPED_SHARE,
    _ref_homogeneous_window,
    equivalent_number_of_looks,
    homogeneous_window,
    srad,
    srad_reference,
    srad_scale_image,
    srad_scales,
)

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"

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


def _gaussian_with_enl(image: np.ndarray, target: float, enl=None) -> np.ndarray:
    """Gaussian blur whose ENL (``enl``, default: in the homogeneous region) equals ``target``
    (bisection on sigma)."""
    enl = enl or _enl
    lo, hi = 0.05, 10.0
    for _ in range(40):
        sigma = 0.5 * (lo + hi)
        if enl(ndimage.gaussian_filter(image, sigma, mode="nearest")) < target:
            lo = sigma
        else:
            hi = sigma
    return ndimage.gaussian_filter(image, 0.5 * (lo + hi), mode="nearest")


@pytest.mark.parametrize("q0, roi", [(None, None), (0.3, None), (None, (slice(2, 20), slice(4, 20))),
                                     (None, "image")])
def test_vectorised_matches_reference(q0, roi):
    image = np.random.default_rng(1).uniform(0.0, 1.0, (24, 40))
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


# --------------------------------------------------------------------------- q0 from a homogeneous window


def _correlated_speckle(rng: np.random.Generator, shape, psf=(0.8, 1.6)) -> np.ndarray:
    """Fully developed speckle with a grain of a few px (as bench.data.phantom makes it): the
    Rayleigh amplitude of a Gaussian-smoothed complex Gaussian field, unit RMS."""
    re = ndimage.gaussian_filter(rng.standard_normal(shape), psf, mode="wrap")
    im = ndimage.gaussian_filter(rng.standard_normal(shape), psf, mode="wrap")
    amplitude = np.hypot(re, im)
    return amplitude / np.sqrt(np.mean(amplitude**2))


@pytest.mark.parametrize("shape, size", [((37, 53), 16), ((40, 40), 8), ((12, 30), 16), ((64, 64), 64)])
def test_homogeneous_window_matches_a_loop_over_every_window(shape, size):
    image = np.random.default_rng(4).gamma(2.0, 0.2, shape) * np.linspace(0.5, 1.5, shape[1])[None, :]
    window = homogeneous_window(image, size)
    assert window == _ref_homogeneous_window(image, size)
    side = min(size, *shape)
    assert (window[0].stop - window[0].start, window[1].stop - window[1].start) == (side, side)


def test_homogeneous_window_finds_the_low_variation_region():
    rng = np.random.default_rng(5)
    image = 0.4 * _rayleigh(rng, (96, 96))  # CoV 0.52 everywhere ...
    image[48:80, 16:48] = 0.4 * (1.0 + 0.1 * rng.standard_normal((32, 32)))  # ... but 0.1 here
    rows, cols = homogeneous_window(image)
    assert rows.start >= 48 and rows.stop <= 80 and cols.start >= 16 and cols.stop <= 48


def test_homogeneous_window_skips_clipped_background():
    """Black padding and saturated pixels have CoV ~ 0 but are not speckle: never chosen."""
    rng = np.random.default_rng(6)
    image = np.clip(0.4 * _correlated_speckle(rng, (80, 80)), 0.0, 1.0)
    image[:, :24] = 0.0  # a black border, as outside an ultrasound sector
    image[:24, 40:] = 1.0  # saturation
    rows, cols = homogeneous_window(image)
    clipped = (image <= image.min()) | (image >= image.max())
    assert clipped[rows, cols].mean() <= CLIPPED_SHARE
    assert image[rows, cols].std() > 0


def test_homogeneous_window_falls_back_to_the_whole_image():
    assert homogeneous_window(np.full((20, 30), 0.3)) == (slice(0, 20), slice(0, 30))


@pytest.mark.parametrize("size", [1, 2.5, True])
def test_homogeneous_window_bad_size_raises(size):
    with pytest.raises(ValueError, match="homogeneous window size must be an integer >= 2 px"):
        homogeneous_window(np.ones((8, 8)), size)


def test_default_q0_region_is_the_homogeneous_window(speckled_step):
    np.testing.assert_array_equal(srad(speckled_step, 5), srad(speckled_step, 5, roi=homogeneous_window(speckled_step)))
    assert not np.array_equal(srad(speckled_step, 5), srad(speckled_step, 5, roi="image"))


@pytest.mark.parametrize(("roi", "problem"), [("whole", "roi must be None .*got 'whole'"),
                                              ((slice(0, 1), slice(0, 1)), "at least 2 pixels")])
def test_bad_roi_raises(roi, problem):
    with pytest.raises(ValueError, match=problem):
        srad(np.ones((8, 8)), 1, roi=roi)


# --------------------------------------------------------------------------- the pipeline's own settings

STEP_ROWS, STEP_COLS = 192, 96
FLATS = ((slice(8, STEP_ROWS - 8), slice(8, 32)), (slice(8, STEP_ROWS - 8), slice(64, 88)))  # both sides
EDGE_SEEDS = (0, 1, 2)
SHARPER = 1.2  # SRAD's edge step at least 1.2x the matched Gaussian's


def _step_with_correlated_speckle(seed: int) -> np.ndarray:
    """A vertical step edge (0.2 | 0.5) at column 48 under fully developed, correlated speckle."""
    truth = np.where(np.arange(STEP_COLS) < STEP_COLS // 2, 0.2, 0.5)[None, :] * np.ones((STEP_ROWS, 1))
    return truth * _correlated_speckle(np.random.default_rng(seed), (STEP_ROWS, STEP_COLS))


def _flat_enl(image: np.ndarray) -> float:
    """ENL averaged over the flat regions on both sides of the edge."""
    return float(np.mean([equivalent_number_of_looks(image[flat]) for flat in FLATS]))


def _step_sharpness(image: np.ndarray) -> float:
    """Largest step of the row-averaged profile across the edge, per unit edge height."""
    profile = image[8:STEP_ROWS - 8].mean(axis=0)
    height = profile[64:88].mean() - profile[8:32].mean()
    return float(np.abs(np.diff(profile[36:60])).max() / height)


def _matched_gaussian(image: np.ndarray, target: float) -> np.ndarray:
    """Gaussian blur whose flat-region ENL equals ``target`` (bisection on sigma)."""
    return _gaussian_with_enl(image, target, _flat_enl)


def _sharpness_against_blur(image: np.ndarray, smoothed: np.ndarray) -> tuple[float, float]:
    """(ENL gain in the flat regions, SRAD's edge sharpness / the matched Gaussian's)."""
    enl = _flat_enl(smoothed)
    blurred = _matched_gaussian(image, enl)
    assert _flat_enl(blurred) == pytest.approx(enl, rel=1e-3)
    return enl / _flat_enl(image), _step_sharpness(smoothed) / _step_sharpness(blurred)


def _profiles() -> list[str]:
    return sorted(yaml.safe_load(PARAMS.read_text())["profiles"])


@pytest.fixture(scope="module", params=_profiles())
def profile_params(request):
    """Each profile of params.yaml, loaded as the prepare stage loads it (SRAD switched on, so
    that a profile that has it off still says what `--set preprocess.srad=true` would run)."""
    from bench.config import load_params

    return load_params(PARAMS, request.param, ["preprocess.srad=true"])


def test_prepare_keeps_scale_l_of_the_series(profile_params):
    from bench.stages.prepare import despeckle

    pp = profile_params.preprocess
    image = _step_with_correlated_speckle(3)[:32, 16:48]  # both sides of the edge
    kept = despeckle(image[None], profile_params)[0]
    # independently: the per-pixel reference loop run n_t * L iterations from the input
    expected = srad_reference(image, pp.srad_iterations * pp.srad_scale, pp.srad_dt)
    np.testing.assert_allclose(kept, expected, rtol=0, atol=1e-5)
    assert np.abs(kept - image).max() > 1e-2  # it did filter
    series = srad_scales(image, pp.srad_iterations, pp.srad_scale, pp.srad_dt)
    np.testing.assert_allclose(kept, series[-1], rtol=0, atol=1e-6)


def test_a_black_band_and_a_flat_box_do_not_switch_srad_off(speckled_step, caplog):
    """Near-black areas (not exactly at the minimum, as after resizing) and a flat grey box have a
    CoV ~ 0; picked as the homogeneous window they give q0 ~ 0 and no diffusion. They are left out,
    so SRAD still removes speckle elsewhere."""
    image = speckled_step.copy()
    image[:, :16] = 0.004 + 0.0005 * _rayleigh(np.random.default_rng(1), (HEIGHT, 16))  # near-black, not min
    image[:, :2] = 0.0  # the image's minimum: a true black border
    image[96:112, 40:56] = 0.35  # a uniform grey box
    image[0, -1] = image.max() * 1.5
    rows, cols = homogeneous_window(image)
    window = image[rows, cols]
    assert window.mean() > 0.05 * image.max() and window.std() / window.mean() > 0.02
    assert (rows, cols) == _ref_homogeneous_window(image + 1e-6)
    out = srad(image, 80)  # n_t * L of the pipeline
    region = (slice(8, 88), slice(40, 60))  # bright speckle, away from the box and the edge
    # picking the box or the band (the former rule) gives q0 ~ 0 and a gain of exactly 1.0
    assert equivalent_number_of_looks(out[region]) > 2 * equivalent_number_of_looks(image[region])
    with caplog.at_level("DEBUG", logger="augbench"):
        srad(image, 2, roi=(slice(98, 110), slice(42, 54)))  # a hand-picked region inside the flat box: q0 ~ 0
    assert "q0 = " in caplog.text and "nearly unfiltered" in caplog.text


@pytest.mark.parametrize("seed", EDGE_SEEDS)
def test_pipeline_settings_keep_an_edge_sharper_than_a_matched_gaussian(profile_params, seed):
    """SRAD as the prepare stage runs it (each profile's n_t, L, dt) keeps a speckled step edge
    sharper than a Gaussian blur with the same noise reduction (ENL) in the flat regions."""
    from bench.stages.prepare import despeckle

    image = _step_with_correlated_speckle(seed)
    gain, ratio = _sharpness_against_blur(image, despeckle(image[None], profile_params)[0])
    assert gain >= 2.0, f"SRAD hardly smoothed (ENL x{gain:.2f}): the comparison would say nothing"
    assert ratio >= SHARPER, f"edge sharpness against the matched blur {ratio:.3f} < {SHARPER}"


def test_whole_image_q0_acts_close_to_a_gaussian_blur(profile_params):
    """Why q0 comes from a homogeneous window: from the whole image (tissue contrast included)
    the same settings give an edge hardly sharper than the matched blur."""
    pp = profile_params.preprocess
    image = _step_with_correlated_speckle(EDGE_SEEDS[0])
    smoothed = srad(image, pp.srad_iterations * pp.srad_scale, pp.srad_dt, roi="image")
    assert _sharpness_against_blur(image, smoothed)[1] < 1.15


# --------------------------------------------------------------------------- Panigrahi's series


def test_scales_are_successive_iterations_with_decreasing_speckle(speckled_step):
    scales = srad_scales(speckled_step, n_t=5, n_scales=4, dt=0.1, roi=HOMOGENEOUS)
    assert len(scales) == 4
    assert all(s.dtype == np.float32 and s.shape == speckled_step.shape for s in scales)
    np.testing.assert_allclose(scales[2], srad(speckled_step, 15, dt=0.1, roi=HOMOGENEOUS), atol=1e-6)
    enls = [_enl(speckled_step)] + [_enl(s) for s in scales]
    assert np.all(np.diff(enls) > 0)


def test_scales_are_one_run_with_the_window_chosen_on_the_input():
    """Scale l is the input after l * n_t iterations of one run: the automatic window is chosen
    once, on the input, not again on each scale's starting image."""
    image = _step_with_correlated_speckle(4)[:64, :64]
    scales = srad_scales(image, n_t=3, n_scales=4, dt=0.1)
    for level, scale in enumerate(scales, start=1):
        np.testing.assert_allclose(scale, srad(image, 3 * level, dt=0.1), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(srad_scale_image(image, n_t=3, scale=4, dt=0.1), srad(image, 12, dt=0.1))


@pytest.mark.parametrize(("kwargs", "problem"), [({"n_t": 0}, "n_t must be an integer >= 1, got 0"),
                                                 ({"scale": 1.5}, "scale must be an integer >= 1")])
def test_scale_image_bad_arguments_raise(kwargs, problem):
    with pytest.raises(ValueError, match=problem):
        srad_scale_image(np.ones((8, 8)), **kwargs)


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
