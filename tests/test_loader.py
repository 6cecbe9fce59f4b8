"""Tests for bench.data.loader on good input: every file is built in tmp_path with PIL.

Bad and unusual input (corrupt files, palette/16-bit/float/EXIF images, masks, symlinks,
odd names, broken layouts) is tested in tests/reliability/test_files.py, and the
property-based tests are in tests/reliability/test_property.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.data.loader import (
    IMAGE_SUFFIXES,
    Record,
    load_images,
    natural_key,
    read_grey,
    scan_folder,
)
from bench.errors import ConfigError, DataError
from tests.reliability.builders import make_dataset, ramp, save

# ---------------------------------------------------------------- read_grey: modes


def test_mode_L_png(tmp_path):
    a = ramp()
    out = read_grey(save(tmp_path / "l.png", Image.fromarray(a)))
    assert out.dtype == np.float32 and out.shape == a.shape
    np.testing.assert_allclose(out, a / 255.0, atol=1e-6)


def test_mode_1(tmp_path):
    a = ramp() > 100
    out = read_grey(save(tmp_path / "one.png", Image.fromarray(a).convert("1")))
    np.testing.assert_array_equal(out, a.astype(np.float32))


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".jpg"])
def test_rgb_grey_replicated_equals_grey(tmp_path, suffix):
    a = ramp()
    rgb = Image.fromarray(np.stack([a, a, a], axis=-1))
    kw = {"quality": 100} if suffix == ".jpg" else {}
    out = read_grey(save(tmp_path / f"rgb{suffix}", rgb, **kw))
    atol = 3 / 255 if suffix == ".jpg" else 1e-5
    np.testing.assert_allclose(out, a / 255.0, atol=atol)
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_rgb_uses_bt601_weights(tmp_path):
    rgb = np.zeros((10, 10, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    out = read_grey(save(tmp_path / "red.png", Image.fromarray(rgb)))
    np.testing.assert_allclose(out, 0.299, atol=1e-6)


def test_la_alpha_ignored(tmp_path):
    a = ramp()
    im = Image.merge("LA", [Image.fromarray(a), Image.fromarray(np.full_like(a, 7))])
    out = read_grey(save(tmp_path / "la.png", im))
    np.testing.assert_allclose(out, a / 255.0, atol=1e-6)


# --------------------------------------------------------------------- scan_folder


def test_scan_basic_and_natural_sort(tmp_path):
    names = [f"benign ({i}).png" for i in (10, 2, 1, 33, 3)]
    make_dataset(
        tmp_path, {"benign": names, "malignant": ["malignant (2).png", "malignant (1).png"]}
    )
    scan = scan_folder(tmp_path)
    assert scan.classes == ["benign", "malignant"]
    assert [r.id for r in scan.records] == [
        "benign/benign (1)",
        "benign/benign (2)",
        "benign/benign (3)",
        "benign/benign (10)",
        "benign/benign (33)",
        "malignant/malignant (1)",
        "malignant/malignant (2)",
    ]
    assert all(Path(r.path).is_file() for r in scan.records)
    assert scan.records[0] == Record(
        "benign/benign (1)", "benign", str(tmp_path / "benign" / "benign (1).png")
    )
    assert scan.skipped == [] and scan.masks == {}
    assert scan_folder(tmp_path) == scan  # deterministic


def test_natural_key_orders_numbers_by_value():
    names = ["b (10)", "b (2)", "B (3)", "a", "b (1)"]
    assert sorted(names, key=natural_key) == ["a", "b (1)", "b (2)", "B (3)", "b (10)"]


def test_scan_given_classes_order_and_subset(tmp_path):
    make_dataset(tmp_path, {"a": ["1.png"], "b": ["1.png"], "c": ["1.png"]})
    scan = scan_folder(tmp_path, classes=["c", "a"])
    assert scan.classes == ["c", "a"]
    assert [r.id for r in scan.records] == ["c/1", "a/1"]


def test_scan_missing_class_lists_present(tmp_path):
    make_dataset(tmp_path, {"benign": ["1.png"], "normal": ["1.png"]})
    with pytest.raises(DataError) as info:
        scan_folder(tmp_path, classes=["benign", "malignant"])
    msg = str(info.value)
    assert str(tmp_path / "malignant") in msg and "benign, normal" in msg


def test_scan_bad_class_lists(tmp_path):
    make_dataset(tmp_path, {"a": ["1.png"]})
    for bad, problem in ((["a", "a"], "class 'a' is listed twice"), ([], "the class list is empty"),
                         ("a", "expected a list of class names, got the string 'a'"),
                         (["../x"], r"invalid class name '\.\./x'")):
        with pytest.raises(ConfigError, match=problem):
            scan_folder(tmp_path, classes=bad)


def test_scan_same_stem_different_suffix_unique_ids(tmp_path):
    make_dataset(tmp_path, {"a": ["x.png", "x.jpg", "y.png"]})
    ids = [r.id for r in scan_folder(tmp_path).records]
    assert sorted(ids) == ["a/x.jpg", "a/x.png", "a/y"]


def test_image_suffixes_constant():
    assert IMAGE_SUFFIXES == (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


# --------------------------------------------------------------------- load_images


def test_load_images_resize_and_native(tmp_path):
    make_dataset(tmp_path, {"a": ["1.png", "2.png"]})
    save(tmp_path / "b" / "big.png", Image.fromarray(ramp(40, 60)))
    scan = scan_folder(tmp_path)
    out = load_images(scan.records, 12)
    assert out.shape == (3, 12, 12) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    native = load_images(scan.records[:2], None)
    assert native.shape == (2, 16, 16)
    np.testing.assert_allclose(native[0], ramp(16, 16) / 255.0, atol=1e-6)
    with pytest.raises(DataError, match="px") as info:
        load_images(scan.records, None)
    assert scan.records[2].path in str(info.value)
    assert load_images([], 8).shape == (0, 8, 8)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ConfigError, match=f"image_size: must be a positive integer or None, got {bad}"):
            load_images(scan.records, bad)


def test_load_images_antialiased(tmp_path):
    # A 1-pixel checkerboard shrunk 4x must average to grey, not alias to black/white.
    board = ((np.indices((64, 64)).sum(axis=0) % 2) * 255).astype(np.uint8)
    path = save(tmp_path / "a" / "board.png", Image.fromarray(board))
    out = load_images([Record("a/board", "a", str(path))], 16)
    assert abs(float(out.mean()) - 0.5) < 0.02
    assert out.std() < 0.05


def test_load_images_bad_file_raises_data_error(tmp_path):
    bad = tmp_path / "a" / "bad.png"
    bad.parent.mkdir()
    bad.write_bytes(b"")
    with pytest.raises(DataError) as info:
        load_images([Record("a/bad", "a", str(bad))], 8)
    assert str(bad) in str(info.value)
