"""What the built-in augmenters do to an image, checked on images with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from bench import registry
from bench.errors import ConfigError
from bench.plugins import ImageSet

FACTOR_METHODS = ["geometric-rotation", "geometric-scaling", "geometric-flipping", "classical"]


def make(name: str, **params):
    return registry.create("augmenter", name, **params)


def image_set(*images: np.ndarray, labels=None) -> ImageSet:
    stack = np.stack(images).astype(np.float32)
    labels = np.zeros(len(stack), np.int64) if labels is None else np.asarray(labels, np.int64)
    return ImageSet(stack, labels, [f"img-{i}" for i in range(len(stack))])


def disk(size: int, radius: float, centre: tuple[float, float] | None = None, soft: float = 1.0) -> np.ndarray:
    """A bright disk (linear edge ramp ``soft`` px wide) on black."""
    r0, c0 = ((size - 1) / 2, (size - 1) / 2) if centre is None else centre
    rr, cc = np.mgrid[:size, :size]
    dist = np.hypot(rr - r0, cc - c0)
    return np.clip((radius - dist) / soft + 0.5, 0.0, 1.0).astype(np.float32)


def centroid(image: np.ndarray) -> np.ndarray:
    rr, cc = np.mgrid[: image.shape[0], : image.shape[1]]
    w = image.sum()
    return np.array([(rr * image).sum() / w, (cc * image).sum() / w])


def polar_angle_deg(point: np.ndarray, size: int) -> float:
    """Counter-clockwise angle as displayed (row 0 at the top) about the image centre."""
    c = (size - 1) / 2
    return float(np.degrees(np.arctan2(-(point[0] - c), point[1] - c)))


def signed_diff_deg(a: float, b: float) -> float:
    return (a - b + 180.0) % 360.0 - 180.0


# --------------------------------------------------------------------------- rotation


def test_rotation_angles_lie_within_max_angle_and_cover_it():
    aug = make("geometric-rotation", max_angle=15.0)
    train = image_set(disk(32, 8))
    gen = aug.generate(train, 200, np.random.default_rng(0))
    angles = np.array([rec["angle_deg"] for rec in gen.provenance])
    assert np.all(np.abs(angles) <= 15.0)
    assert angles.min() < -12 and angles.max() > 12  # uniform over the whole range


def test_rotation_turns_content_by_the_recorded_angle():
    size = 65
    centred = disk(size, 14)
    dot = disk(size, 3, centre=(32.0, 52.0))  # right of the centre, angle 0
    aug = make("geometric-rotation", max_angle=90.0, fill="constant")
    train = image_set(centred, dot)
    gen = aug.generate(train, 16, np.random.default_rng(3))
    assert [rec["source_id"] for rec in gen.provenance[:2]] == ["img-0", "img-1"]
    before = polar_angle_deg(centroid(dot), size)
    checked = 0
    for img, rec in zip(gen.images, gen.provenance, strict=True):
        angle = rec["angle_deg"]
        if rec["source_id"] == "img-0":  # rotation-symmetric: unchanged up to interpolation
            assert np.abs(img - centred).max() < 0.5
            assert abs(img.sum() - centred.sum()) / centred.sum() < 0.01
        else:
            after = polar_angle_deg(centroid(img), size)
            assert abs(signed_diff_deg(after - before, angle)) < 1.5, (angle, after)
            assert np.linalg.norm(centroid(img) - 32) == pytest.approx(20.0, abs=0.5)
            checked += abs(angle) > 20
    assert checked >= 2  # the test saw rotations large enough to tell directions apart


def test_rotation_by_zero_degrees_is_the_identity_warp():
    from methods.augment._warp import affine_matrix, warp

    img = np.random.default_rng(0).random((16, 16)).astype(np.float32)
    np.testing.assert_allclose(warp(img, affine_matrix(rotation_deg=0.0)), img, atol=1e-6)


# --------------------------------------------------------------------------- scaling


def test_scaling_enlarges_a_centred_square_by_the_recorded_scale():
    size, side, ramp = 64, 20, 4.0
    # Soft (linear-ramp) edges: a hard-edged square resampled at pixel centres has an
    # area quantised to whole pixels, which would hide a few percent of scale error.
    x = np.abs(np.arange(size) - (size - 1) / 2)
    profile = np.clip((side / 2 - x) / ramp + 0.5, 0.0, 1.0)
    square = np.outer(profile, profile).astype(np.float32)
    aug = make("geometric-scaling", min_scale=0.7, max_scale=1.4)
    gen = aug.generate(image_set(square), 12, np.random.default_rng(1))
    scales = np.array([rec["scale"] for rec in gen.provenance])
    assert np.all((scales >= 0.7) & (scales <= 1.4))
    assert scales.min() < 0.85 and scales.max() > 1.2
    for img, s in zip(gen.images, scales, strict=True):
        assert img.sum() / square.sum() == pytest.approx(s**2, rel=0.015)
        np.testing.assert_allclose(centroid(img), (size - 1) / 2, atol=0.05)  # about the centre
        bright = np.argwhere(img > 0.5)  # half-height extent of the square
        extent = bright.max(axis=0) - bright.min(axis=0) + 1
        np.testing.assert_allclose(extent, side * s, atol=1.5)


def test_scale_range_is_respected_per_image():
    aug = make("geometric-scaling", min_scale=0.9, max_scale=0.95)
    gen = aug.generate(image_set(disk(16, 4)), 50, np.random.default_rng(0))
    scales = np.array([rec["scale"] for rec in gen.provenance])
    assert np.all((scales >= 0.9) & (scales <= 0.95))


# --------------------------------------------------------------------------- flipping

FLIP_VIEW = {"horizontal": lambda a: a[:, ::-1], "vertical": lambda a: a[::-1, :],
             "both": lambda a: a[::-1, ::-1]}


def test_flipping_copy_k_uses_flip_k_mod_3_exactly():
    rng = np.random.default_rng(0)
    train = image_set(*rng.random((3, 8, 10)), labels=[0, 1, 1])  # non-square: axes matter
    aug = make("geometric-flipping")  # factor 5 → copies 0..3 of each source
    n = aug.n_synthetic(len(train))
    assert n == 12
    gen = aug.generate(train, n, np.random.default_rng(0))
    flips = ["horizontal", "vertical", "both"]
    for j, (img, rec) in enumerate(zip(gen.images, gen.provenance, strict=True)):
        src, copy = j % 3, j // 3
        assert rec["source_id"] == train.ids[src] and rec["copy"] == copy
        assert rec["flip"] == flips[copy % 3]
        np.testing.assert_array_equal(img, FLIP_VIEW[rec["flip"]](train.images[src]))
        assert gen.labels[j] == train.labels[src]
    horizontal = [i for i, r in enumerate(gen.provenance) if r["flip"] == "horizontal"]
    assert horizontal
    for i in horizontal:
        src = train.ids.index(gen.provenance[i]["source_id"])
        np.testing.assert_array_equal(gen.images[i], train.images[src][:, ::-1])


def test_flipping_with_a_single_flip_repeats_it():
    train = image_set(np.arange(12, dtype=np.float32).reshape(3, 4) / 12)
    gen = make("geometric-flipping", flips=["vertical"]).generate(train, 4, np.random.default_rng(0))
    assert [r["flip"] for r in gen.provenance] == ["vertical"] * 4
    for img in gen.images:
        np.testing.assert_array_equal(img, train.images[0][::-1])


# --------------------------------------------------------------------------- classical


@pytest.fixture(scope="module")
def classical_draws():
    size = 40
    aug = make("classical")
    train = image_set(disk(size, 10), labels=[1])
    gen = aug.generate(train, 400, np.random.default_rng(5))
    keys = gen.provenance[0].keys() - {"method", "source_id", "copy"}
    return size, gen, {k: np.array([r[k] for r in gen.provenance]) for k in keys}


def _within_and_covering(values: np.ndarray, lo: float, hi: float, cover: float = 0.9) -> None:
    assert values.min() >= lo and values.max() <= hi, (values.min(), values.max(), lo, hi)
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    assert values.min() < mid - cover * half and values.max() > mid + cover * half


def test_classical_draws_follow_fedoruk_ranges(classical_draws):
    size, _, d = classical_draws
    _within_and_covering(d["rotation_deg"], -5.0, 5.0)
    _within_and_covering(d["shift_row_px"], -0.05 * size, 0.05 * size)
    _within_and_covering(d["shift_col_px"], -0.05 * size, 0.05 * size)
    _within_and_covering(d["shear_deg"], -0.05, 0.05)
    _within_and_covering(d["zoom_row"], 0.9, 1.1)
    _within_and_covering(d["zoom_col"], 0.9, 1.1)
    _within_and_covering(d["brightness"], 0.6, 1.4)
    assert not d["flip"].any()  # horizontal_flip is False in the paper
    assert not np.allclose(d["zoom_row"], d["zoom_col"])  # independent per axis


def test_classical_flip_is_drawn_when_enabled():
    aug = make("classical", horizontal_flip=True)
    gen = aug.generate(image_set(disk(16, 4)), 200, np.random.default_rng(0))
    flips = np.array([r["flip"] for r in gen.provenance])
    assert 0.3 < flips.mean() < 0.7


def test_classical_brightness_scales_a_flat_image():
    size = 32
    flat = np.full((size, size), 0.5, np.float32)
    gen = make("classical").generate(image_set(flat), 20, np.random.default_rng(2))
    inner = slice(4, size - 4)
    for img, rec in zip(gen.images, gen.provenance, strict=True):
        np.testing.assert_allclose(img[inner, inner], 0.5 * rec["brightness"], atol=1e-5)


def test_classical_warp_moves_content_by_the_recorded_shift(classical_draws):
    size, gen, d = classical_draws
    c = (size - 1) / 2
    for k in range(0, 400, 40):  # a centred disk: rotation/zoom keep its centroid, the shift moves it
        expected = np.array([c + d["shift_row_px"][k], c + d["shift_col_px"][k]])
        np.testing.assert_allclose(centroid(gen.images[k]), expected, atol=0.15)


def test_classical_brightness_is_clipped_to_one():
    bright = np.full((16, 16), 0.95, np.float32)
    gen = make("classical", brightness_range=[1.3, 1.4]).generate(
        image_set(bright), 5, np.random.default_rng(0))
    np.testing.assert_array_equal(gen.images, 1.0)


# --------------------------------------------------------------------------- factor, labels, none


@pytest.mark.parametrize("name", FACTOR_METHODS)
@pytest.mark.parametrize("n_train", [0, 1, 7, 800])
def test_factor_five_adds_four_copies_per_image(name, n_train):
    assert make(name, factor=5).n_synthetic(n_train) == 4 * n_train
    assert make(name, factor=1).n_synthetic(n_train) == 0


@pytest.mark.parametrize("name", FACTOR_METHODS)
def test_labels_follow_sources(name):
    rng = np.random.default_rng(0)
    train = image_set(*[disk(16, 3 + i) for i in range(5)], labels=[0, 1, 1, 0, 1])
    aug = make(name, factor=3)
    gen = aug.generate(train, aug.n_synthetic(len(train)), rng)
    assert len(gen) == 10
    by_id = dict(zip(train.ids, train.labels.tolist(), strict=True))
    assert [by_id[r["source_id"]] for r in gen.provenance] == gen.labels.tolist()
    # every source is used equally often (sources in turn)
    counts = np.unique([r["source_id"] for r in gen.provenance], return_counts=True)[1]
    assert counts.tolist() == [2] * 5


def test_none_produces_nothing():
    aug = make("none")
    assert aug.n_synthetic(100) == 0
    train = image_set(disk(16, 4), disk(16, 5), labels=[0, 1])
    gen = aug.generate(train, 0, np.random.default_rng(0))
    assert gen.images.shape == (0, 16, 16) and len(gen.labels) == 0 and gen.provenance == []


# --------------------------------------------------------------------------- invalid parameters


@pytest.mark.parametrize(("name", "params", "key"), [
    ("geometric-rotation", {"factor": 0}, "factor"),
    ("geometric-scaling", {"factor": 0}, "factor"),
    ("geometric-flipping", {"factor": 0}, "factor"),
    ("classical", {"factor": 0}, "factor"),
    ("geometric-rotation", {"max_angle": 0.0}, "max_angle"),
    ("geometric-rotation", {"max_angle": 181.0}, "max_angle"),
    ("geometric-scaling", {"min_scale": 1.2, "max_scale": 1.1}, "min_scale"),
    ("geometric-scaling", {"min_scale": 0.0}, "min_scale"),
    ("geometric-flipping", {"flips": []}, "flips"),
    ("geometric-flipping", {"flips": ["diagonal"]}, "flips.0"),
    ("classical", {"brightness_range": [1.4, 0.6]}, "brightness_range"),
    ("classical", {"brightness_range": [0.0, 1.0]}, "brightness_range"),
    ("classical", {"zoom_range": 1.0}, "zoom_range"),
    ("classical", {"rotation_degrees": 5.0}, "rotation_degrees"),
    ("geometric-rotation", {"factor": 2.5}, "factor"),
])
def test_invalid_params_raise_config_error_naming_the_key(name, params, key):
    with pytest.raises(ConfigError) as info:
        make(name, **params)
    assert info.value.key == f"augmenter.{name}.{key}"
    assert f"augmenter.{name}.{key}" in str(info.value)
