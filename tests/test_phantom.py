"""The synthetic breast-ultrasound phantom: determinism, format and class cues."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.io

from bench.data.phantom import (
    PhantomSample,
    file_index,
    generate_phantom,
    render_phantom,
    set_of,
    write_phantom,
)
from bench.errors import DataError

SIZE = 64


@pytest.fixture(scope="module")
def easy() -> list[PhantomSample]:
    """Difficulty 0: the class cues must be unambiguous."""
    return generate_phantom(12, size=SIZE, seed=3, difficulty=0.0)


def _by_label(samples, label):
    return [s for s in samples if s.label == label]


def test_same_seed_is_bit_identical():
    a = generate_phantom(2, size=32, seed=11)
    b = generate_phantom(2, size=32, seed=11)
    for x, y in zip(a, b, strict=True):
        assert x.id == y.id and x.label == y.label
        np.testing.assert_array_equal(x.image, y.image)
        np.testing.assert_array_equal(x.mask, y.mask)


def test_different_seed_differs():
    a = generate_phantom(1, size=32, seed=0)
    b = generate_phantom(1, size=32, seed=1)
    for x, y in zip(a, b, strict=True):
        assert not np.array_equal(x.image, y.image)


def test_sample_does_not_depend_on_how_many_are_requested():
    few = generate_phantom({"benign": 2, "malignant": 1}, size=32, seed=5)
    many = generate_phantom({"benign": 4, "malignant": 3}, size=32, seed=5)
    many_by_id = {s.id: s for s in many}
    for s in few:
        np.testing.assert_array_equal(s.image, many_by_id[s.id].image)
        np.testing.assert_array_equal(s.mask, many_by_id[s.id].mask)


def test_counts_ids_and_order():
    samples = generate_phantom({"benign": 2, "malignant": 3}, size=32)
    assert [s.id for s in samples] == [
        "benign-0001", "benign-0002", "malignant-0001", "malignant-0002", "malignant-0003",
    ]
    assert generate_phantom({"benign": 0, "malignant": 0}, size=32) == []


@pytest.mark.parametrize("size", [16, 48])
def test_shapes_dtypes_range(size):
    for s in generate_phantom(2, size=size, seed=2):
        assert s.image.shape == s.mask.shape == (size, size)
        assert s.image.dtype == np.float32 and s.mask.dtype == np.bool_
        assert np.all(np.isfinite(s.image))
        assert s.image.min() >= 0.0 and s.image.max() <= 1.0
        assert s.image.std() > 0.05  # speckled, not flat


def test_masks_non_empty_and_inside_image(easy):
    for s in easy:
        assert s.mask.any()
        assert not (s.mask[0].any() or s.mask[-1].any() or s.mask[:, 0].any() or s.mask[:, -1].any())
        assert s.mask.mean() < 0.25


def test_lesion_is_hypoechoic(easy):
    for s in easy:
        assert s.image[s.mask].mean() < s.image[~s.mask].mean()


def _aspect_ratios(mask: np.ndarray) -> tuple[float, float]:
    """(bounding-box width/height, sqrt(lateral/axial second moment))."""
    rows, cols = np.nonzero(mask)
    bbox = (np.ptp(cols) + 1) / (np.ptp(rows) + 1)
    return float(bbox), float(np.sqrt(cols.var() / rows.var()))


def test_benign_wider_than_tall_malignant_taller_than_wide(easy):
    # BI-RADS orientation: parallel (benign) vs not parallel (malignant).
    benign = np.array([_aspect_ratios(s.mask) for s in _by_label(easy, "benign")])
    malignant = np.array([_aspect_ratios(s.mask) for s in _by_label(easy, "malignant")])
    assert np.all(benign.mean(axis=0) > 1.2)
    assert np.all(malignant.mean(axis=0) < 0.95)
    assert np.median(benign[:, 1]) > np.median(malignant[:, 1])


def _posterior_contrast(sample: PhantomSample) -> float:
    """Mean intensity in the column below the lesion minus beside it, same depths."""
    rows, cols = np.nonzero(sample.mask)
    left, right, bottom = cols.min(), cols.max(), rows.max()
    width = right - left + 1
    depth = slice(bottom + 2, min(bottom + 2 + 2 * width, sample.image.shape[0]))
    below = sample.image[depth, left:right + 1]
    beside = np.concatenate([sample.image[depth, max(left - width, 0):left],
                             sample.image[depth, right + 1:right + 1 + width]], axis=1)
    return float(below.mean() - beside.mean())


def test_posterior_enhancement_vs_shadowing(easy):
    benign = np.mean([_posterior_contrast(s) for s in _by_label(easy, "benign")])
    malignant = np.mean([_posterior_contrast(s) for s in _by_label(easy, "malignant")])
    assert benign > 0.02  # enhancement
    assert malignant < -0.02  # shadowing


def test_difficulty_blurs_the_shape_cue():
    def mean_ratio(samples, label):
        return np.mean([_aspect_ratios(s.mask)[1] for s in _by_label(samples, label)])

    easy = generate_phantom(10, size=SIZE, seed=8, difficulty=0.0)
    hard = generate_phantom(10, size=SIZE, seed=8, difficulty=1.0)
    gap_easy = mean_ratio(easy, "benign") - mean_ratio(easy, "malignant")
    gap_hard = mean_ratio(hard, "benign") - mean_ratio(hard, "malignant")
    assert gap_hard < 0.6 * gap_easy


@pytest.mark.parametrize("difficulty", [-0.1, 1.5, float("nan")])
def test_difficulty_validated(difficulty):
    with pytest.raises(ValueError, match="difficulty"):
        generate_phantom(1, size=32, difficulty=difficulty)
    with pytest.raises(ValueError, match="difficulty"):
        render_phantom("benign", 32, np.random.default_rng(0), difficulty)


@pytest.mark.parametrize("size", [8, 15, 32.0])
def test_size_validated(size):
    with pytest.raises(ValueError, match="size"):
        generate_phantom(1, size=size)


def test_label_and_counts_validated():
    with pytest.raises(ValueError, match="label"):
        render_phantom("normal", 32, np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown class"):
        generate_phantom({"normal": 1}, size=32)
    with pytest.raises(ValueError, match="count"):
        generate_phantom({"benign": -1}, size=32)


def test_write_phantom_busi_layout(tmp_path):
    samples = generate_phantom({"benign": 2, "malignant": 1}, size=32, seed=4)
    write_phantom(tmp_path / "busi", samples)
    files = sorted(p.relative_to(tmp_path / "busi").as_posix() for p in (tmp_path / "busi").rglob("*"))
    assert files == [
        "benign", "benign/benign (1).png", "benign/benign (1)_mask.png",
        "benign/benign (2).png", "benign/benign (2)_mask.png",
        "malignant", "malignant/malignant (1).png", "malignant/malignant (1)_mask.png",
    ]
    for s in samples:
        n = int(s.id.rsplit("-", 1)[1])
        image = skimage.io.imread(tmp_path / "busi" / s.label / f"{s.label} ({n}).png")
        mask = skimage.io.imread(tmp_path / "busi" / s.label / f"{s.label} ({n})_mask.png")
        assert image.dtype == np.uint8 and image.shape == (32, 32)
        assert np.abs(image.astype(np.float64) / 255 - s.image).max() <= 0.5 / 255 + 1e-6
        np.testing.assert_array_equal(mask > 127, s.mask)
        assert set(np.unique(mask)) <= {0, 255}


def test_write_phantom_rejects_duplicates_and_files(tmp_path):
    sample = generate_phantom({"benign": 1, "malignant": 0}, size=32)[0]
    with pytest.raises(DataError, match="distinct"):
        write_phantom(tmp_path / "a", [sample, sample])
    (tmp_path / "f").write_text("x")
    with pytest.raises(DataError, match="not a folder"):
        write_phantom(tmp_path / "f", [sample])


def test_file_index_is_the_seed_index_of_a_written_file():
    assert file_index("benign", "benign (1)") == 0 and file_index("malignant", "malignant (12)") == 11
    for stem in ("benign (0)", "malignant (3)", "benign (x)", "benign (3)_mask", "benign-0003"):
        with pytest.raises(ValueError, match="not a phantom file name"):
            file_index("benign", stem)


def test_set_of_lays_the_sets_out_in_order():
    per_split = {"train": 3, "val": 2, "test": 1}
    assert [set_of(i, per_split) for i in range(6)] == ["train"] * 3 + ["val"] * 2 + ["test"]
    with pytest.raises(ValueError, match="outside the 6 samples"):
        set_of(6, per_split)
