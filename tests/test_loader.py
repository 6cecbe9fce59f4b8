"""Tests for bench.data.loader: every file is built in tmp_path with PIL."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from bench.data import loader
from bench.data.loader import (
    IMAGE_SUFFIXES,
    Record,
    load_images,
    natural_key,
    read_grey,
    scan_folder,
)
from bench.errors import ConfigError, DataError

needs_symlinks = pytest.mark.skipif(
    sys.platform == "win32", reason="symlinks need privileges on Windows"
)


def ramp(h: int = 24, w: int = 32) -> np.ndarray:
    """uint8 (h, w) test pattern with distinct rows and columns."""
    y, x = np.mgrid[0:h, 0:w]
    return ((x * 7 + y * 3) % 256).astype(np.uint8)


def save(path: Path, image: Image.Image, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kw)
    return path


def raises_data_error(path: Path, match: str | None = None) -> pytest.ExceptionInfo:
    with pytest.raises(DataError, match=match) as info:
        read_grey(path)
    assert str(path) in str(info.value)
    return info


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


def test_rgba_alpha_ignored(tmp_path):
    a = ramp()
    rgba = np.stack([a, a, a, np.zeros_like(a)], axis=-1)  # fully transparent
    out = read_grey(save(tmp_path / "rgba.png", Image.fromarray(rgba)))
    np.testing.assert_allclose(out, a / 255.0, atol=1e-5)


def test_la_alpha_ignored(tmp_path):
    a = ramp()
    im = Image.merge("LA", [Image.fromarray(a), Image.fromarray(np.full_like(a, 7))])
    out = read_grey(save(tmp_path / "la.png", im))
    np.testing.assert_allclose(out, a / 255.0, atol=1e-6)


def test_palette(tmp_path):
    a = ramp()
    pal = Image.fromarray(np.stack([a, a // 2, 255 - a], axis=-1)).convert(
        "P", palette=Image.Palette.ADAPTIVE
    )
    assert pal.mode == "P"
    path = save(tmp_path / "pal.png", pal)
    expected = (
        np.asarray(pal.convert("RGB"), dtype=np.float32) @ np.array([0.299, 0.587, 0.114]) / 255
    )
    out = read_grey(path)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_palette_bmp_and_transparency(tmp_path):
    a = ramp()
    pal = Image.fromarray(a).convert("P")
    save(tmp_path / "pal.bmp", pal)
    assert read_grey(tmp_path / "pal.bmp").shape == a.shape
    save(tmp_path / "palt.png", pal, transparency=0)
    assert read_grey(tmp_path / "palt.png").shape == a.shape


def test_16bit_png(tmp_path):
    a = (np.arange(24 * 32, dtype=np.uint32).reshape(24, 32) * 85).astype(np.uint16)
    a[0, 0] = 65535
    path = save(tmp_path / "deep.png", Image.fromarray(a))
    out = read_grey(path)
    np.testing.assert_allclose(out, a / 65535.0, atol=1e-6)
    assert out[0, 0] == pytest.approx(1.0)


def test_16bit_tiff(tmp_path):
    a = (np.arange(24 * 32, dtype=np.uint32).reshape(24, 32) * 60).astype(np.uint16)
    out = read_grey(save(tmp_path / "deep.tif", Image.fromarray(a)))
    np.testing.assert_allclose(out, a / 65535.0, atol=1e-6)


def test_32bit_int_tiff(tmp_path):
    small = np.arange(24 * 32, dtype=np.int32).reshape(24, 32) * 50  # fits 16 bits
    out = read_grey(save(tmp_path / "i32.tif", Image.fromarray(small)))
    np.testing.assert_allclose(out, small / 65535.0, atol=1e-6)
    big = small * 10_000
    out = read_grey(save(tmp_path / "i32big.tif", Image.fromarray(big)))
    np.testing.assert_allclose(out, big / (2**31 - 1), atol=1e-6)
    neg = small - 1000
    out = read_grey(save(tmp_path / "i32neg.tif", Image.fromarray(neg)))
    assert out.min() == 0.0 and out.max() == pytest.approx(1.0)


def test_float_tiff_in_range_kept(tmp_path):
    a = (ramp() / 255.0).astype(np.float32)
    out = read_grey(save(tmp_path / "f.tif", Image.fromarray(a)))
    np.testing.assert_array_equal(out, a)


def test_float_tiff_out_of_range_minmax(tmp_path):
    a = (ramp().astype(np.float32) * 4.0) - 100.0
    out = read_grey(save(tmp_path / "f.tiff", Image.fromarray(a)))
    expected = (a - a.min()) / (a.max() - a.min())
    np.testing.assert_allclose(out, expected, atol=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_float_tiff_nonfinite(tmp_path, bad):
    a = (ramp() / 255.0).astype(np.float32)
    a[3, 4] = bad
    path = save(tmp_path / "nan.tif", Image.fromarray(a))
    raises_data_error(path, "NaN" if np.isnan(bad) else "infinite")


def test_exif_orientation_applied(tmp_path):
    a = ramp(20, 40)  # H=20, W=40
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = save(tmp_path / "rot.jpg", Image.fromarray(a), exif=exif.tobytes(), quality=95)
    with Image.open(path) as raw:
        assert raw.size == (40, 20)
    out = read_grey(path)
    assert out.shape == (40, 20)
    # Orientation 6: the displayed image is the stored one rotated 90 degrees clockwise.
    np.testing.assert_allclose(out, np.rot90(a, k=-1) / 255.0, atol=6 / 255)


# ------------------------------------------------------------ read_grey: bad files


def test_zero_byte(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    raises_data_error(path, "empty file")


def test_text_named_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n")
    raises_data_error(path, "not a readable image")


def test_other_format_with_image_suffix(tmp_path):
    path = tmp_path / "really_a_gif.png"
    Image.fromarray(ramp()).save(path, format="GIF")
    raises_data_error(path, "not a readable image")


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif", ".bmp"])
def test_truncated(tmp_path, suffix):
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    full = save(tmp_path / f"full{suffix}", Image.fromarray(noisy))
    data = full.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    raises_data_error(cut)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_corrupt_png_body(tmp_path):
    full = save(tmp_path / "ok.png", Image.fromarray(ramp(64, 64)))
    data = bytearray(full.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 16] = b"\xff" * 16
    bad = tmp_path / "bad.png"
    bad.write_bytes(bytes(data))
    raises_data_error(bad)


def test_too_small(tmp_path):
    path = save(tmp_path / "dot.png", Image.new("L", (1, 1)))
    raises_data_error(path, "smaller than")
    path = save(tmp_path / "thin.png", Image.new("L", (64, 7)))
    raises_data_error(path, "smaller than")
    assert read_grey(save(tmp_path / "ok.png", Image.new("L", (8, 8)))).shape == (8, 8)


def test_decompression_bomb_own_limit(tmp_path, monkeypatch):
    path = save(tmp_path / "bomb.png", Image.new("L", (20, 20)))
    monkeypatch.setattr(loader, "MAX_PIXELS", 100)
    raises_data_error(path, "decompression bomb")


@pytest.mark.parametrize("limit", [300, 150])  # 400 px: PIL warns above 1x, errors above 2x
def test_decompression_bomb_pil_limit(tmp_path, monkeypatch, limit):
    path = save(tmp_path / "bomb.png", Image.new("L", (20, 20)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    raises_data_error(path, "decompression bomb")


def test_missing_file_and_folder(tmp_path):
    raises_data_error(tmp_path / "nope.png", "cannot open")
    (tmp_path / "dir.png").mkdir()
    raises_data_error(tmp_path / "dir.png", "folder")


def test_load_truncated_images_flag_refused(tmp_path, monkeypatch):
    path = save(tmp_path / "ok.png", Image.fromarray(ramp()))
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    raises_data_error(path, "LOAD_TRUNCATED_IMAGES")


_MODES = ["1", "L", "P", "RGB", "RGBA", "LA", "I;16", "I", "F", "CMYK"]
_FORMATS = {".png": "PNG", ".bmp": "BMP", ".tif": "TIFF", ".jpg": "JPEG"}
_HYP_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    # tmp_path is shared by all examples on purpose: each example overwrites its file.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _make_image(mode: str, arr: np.ndarray) -> Image.Image:
    if mode in ("I;16", "I", "F"):
        dtype = {"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]
        scale = {"I;16": 257, "I": 1000, "F": 0.5}[mode]
        return Image.fromarray((arr.astype(np.float64) * scale).astype(dtype))
    return Image.fromarray(arr).convert(mode)


@_HYP_SETTINGS
@pytest.mark.filterwarnings("ignore::UserWarning")  # PIL warns about odd TIFF tags
@given(data=st.binary(min_size=0, max_size=600), suffix=st.sampled_from(sorted(_FORMATS)))
def test_random_bytes_load_or_data_error(tmp_path, data, suffix):
    path = tmp_path / f"random{suffix}"
    path.write_bytes(data)
    try:
        out = read_grey(path)
    except DataError as exc:
        assert str(path) in str(exc)
    else:
        assert out.dtype == np.float32 and out.ndim == 2
        assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


@_HYP_SETTINGS
@pytest.mark.filterwarnings("ignore::UserWarning")  # PIL warns about odd TIFF tags
@given(
    h=st.integers(1, 20),
    w=st.integers(1, 20),
    seed=st.integers(0, 2**32 - 1),
    mode=st.sampled_from(_MODES),
    suffix=st.sampled_from(sorted(_FORMATS)),
    cut=st.one_of(st.none(), st.floats(0.0, 1.0)),
    flip=st.one_of(st.none(), st.integers(0, 10_000)),
)
def test_random_arrays_load_or_data_error(tmp_path, h, w, seed, mode, suffix, cut, flip):
    arr = np.random.default_rng(seed).integers(0, 256, size=(h, w), dtype=np.uint8)
    path = tmp_path / f"arr{suffix}"
    try:
        _make_image(mode, arr).save(path, format=_FORMATS[suffix])
    except (OSError, ValueError, KeyError):
        return  # this format cannot store this mode: nothing to read
    data = bytearray(path.read_bytes())
    if flip is not None and data:
        data[flip % len(data)] ^= 0x5A
    if cut is not None:
        data = data[: int(len(data) * cut)]
    path.write_bytes(bytes(data))
    try:
        out = read_grey(path)
    except DataError as exc:
        assert str(path) in str(exc)
    else:
        assert out.dtype == np.float32 and out.ndim == 2
        assert out.shape[0] >= 8 and out.shape[1] >= 8
        assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


# --------------------------------------------------------------------- scan_folder


def make_dataset(root: Path, spec: dict[str, list[str]]) -> Path:
    for cls, names in spec.items():
        for name in names:
            save(root / cls / name, Image.fromarray(ramp(16, 16)))
    return root


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
    for bad in (["a", "a"], [], "a", ["../x"]):
        with pytest.raises(ConfigError):
            scan_folder(tmp_path, classes=bad)


def test_scan_missing_root_and_root_file(tmp_path):
    with pytest.raises(DataError, match="not found") as info:
        scan_folder(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(info.value)
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(DataError, match="not a folder") as info:
        scan_folder(f)
    assert str(f) in str(info.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no class folders") as info:
        scan_folder(empty)
    assert str(empty) in str(info.value)


def test_scan_class_is_a_file(tmp_path):
    make_dataset(tmp_path, {"benign": ["1.png"]})
    (tmp_path / "malignant").write_text("oops")
    with pytest.raises(DataError, match="is a file") as info:
        scan_folder(tmp_path, classes=["benign", "malignant"])
    assert str(tmp_path / "malignant") in str(info.value)
    # Without an explicit list, a file at the root (README.md, ...) is skipped.
    scan = scan_folder(tmp_path)
    assert scan.classes == ["benign"]
    assert [s.path for s in scan.skipped] == [str(tmp_path / "malignant")]


def test_scan_empty_class_folder(tmp_path):
    make_dataset(tmp_path, {"benign": ["1.png"]})
    (tmp_path / "normal").mkdir()
    (tmp_path / "normal" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="no images") as info:
        scan_folder(tmp_path)
    assert str(tmp_path / "normal") in str(info.value)


def test_scan_hidden_and_non_image_skipped(tmp_path):
    make_dataset(tmp_path, {"benign": ["1.png", ".hidden.png"], ".git": ["x.png"]})
    (tmp_path / "benign" / "readme.txt").write_text("x")
    (tmp_path / "benign" / "Thumbs.db").write_bytes(b"x")
    (tmp_path / "benign" / "noext").write_bytes(b"x")
    (tmp_path / "benign" / "sub").mkdir()
    (tmp_path / "benign" / "UPPER.PNG").write_bytes((tmp_path / "benign" / "1.png").read_bytes())
    scan = scan_folder(tmp_path)
    assert scan.classes == ["benign"]
    assert [r.id for r in scan.records] == ["benign/1", "benign/UPPER"]
    reasons = {Path(s.path).name: s.reason for s in scan.skipped}
    assert set(reasons) == {".git", ".hidden.png", "readme.txt", "Thumbs.db", "noext", "sub"}
    assert "hidden" in reasons[".hidden.png"] and "hidden" in reasons[".git"]
    assert "not an image" in reasons["readme.txt"]
    assert "sub-folder" in reasons["sub"]


def test_scan_masks(tmp_path):
    make_dataset(
        tmp_path,
        {
            "benign": [
                "benign (1).png",
                "benign (1)_mask.png",
                "benign (1)_mask_1.png",
                "benign (2).png",
                "benign (2)_mask_1.png",
                "benign (2)_MASK_2.png",
                "benign (3).png",
                "benign (9)_mask.png",
            ]
        },
    )
    scan = scan_folder(tmp_path)
    assert [r.id for r in scan.records] == [
        "benign/benign (1)",
        "benign/benign (2)",
        "benign/benign (3)",
    ]
    folder = tmp_path / "benign"
    assert scan.masks == {
        "benign/benign (1)": str(folder / "benign (1)_mask.png"),
        "benign/benign (2)": str(folder / "benign (2)_mask_1.png"),
    }
    assert len(scan.skipped) == 1
    assert scan.skipped[0].path == str(folder / "benign (9)_mask.png")
    assert "mask without a matching image" in scan.skipped[0].reason


def test_scan_special_names(tmp_path):
    names = ["benign (12).png", "échographie (1).png", "超音波 2.png", "a b [c] {d}.png"]
    make_dataset(tmp_path, {"bénin": names})
    scan = scan_folder(tmp_path)
    ids = [r.id for r in scan.records]
    assert len(ids) == 4 and len(set(ids)) == 4
    assert "bénin/échographie (1)" in ids and "bénin/超音波 2" in ids
    for r in scan.records:
        assert read_grey(r.path).shape == (16, 16)


def test_scan_same_stem_different_suffix_unique_ids(tmp_path):
    make_dataset(tmp_path, {"a": ["x.png", "x.jpg", "y.png"]})
    ids = [r.id for r in scan_folder(tmp_path).records]
    assert sorted(ids) == ["a/x.jpg", "a/x.png", "a/y"]


@needs_symlinks
def test_scan_symlinks(tmp_path):
    root = make_dataset(tmp_path / "data", {"benign": ["1.png"]})
    outside = save(tmp_path / "elsewhere" / "real.png", Image.fromarray(ramp()))
    folder = root / "benign"
    os.symlink(outside, folder / "linked.png")
    os.symlink(folder / "loop.png", folder / "loop.png")  # points at itself
    os.symlink(folder / "b.png", folder / "a.png")  # a -> b -> a
    os.symlink(folder / "a.png", folder / "b.png")
    os.symlink(tmp_path / "missing.png", folder / "broken.png")
    os.symlink(root, folder / "up")  # directory link back up: not recursed into
    scan = scan_folder(root)
    assert [r.id for r in scan.records] == ["benign/1", "benign/linked"]
    assert read_grey(scan.records[1].path).shape == (24, 32)
    reasons = {Path(s.path).name: s.reason for s in scan.skipped}
    assert "symlink loop" in reasons["loop.png"]
    assert "symlink loop" in reasons["a.png"] and "symlink loop" in reasons["b.png"]
    assert "broken symlink" in reasons["broken.png"]
    assert "sub-folder" in reasons["up"]
    with pytest.raises(DataError) as info:
        read_grey(folder / "loop.png")
    assert str(folder / "loop.png") in str(info.value)


@needs_symlinks
def test_scan_class_symlink_loop(tmp_path):
    root = make_dataset(tmp_path, {"a": ["1.png"]})
    os.symlink(root / "b", root / "b")
    scan = scan_folder(root)
    assert scan.classes == ["a"]
    assert "symlink loop" in scan.skipped[0].reason
    with pytest.raises(DataError, match="symlink loop") as info:
        scan_folder(root, classes=["a", "b"])
    assert str(root / "b") in str(info.value)
    os.symlink(root / "a", root / "alias")  # symlinked class folder is followed
    assert [r.id for r in scan_folder(root, classes=["alias"]).records] == ["alias/1"]


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
        with pytest.raises(ConfigError):
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
