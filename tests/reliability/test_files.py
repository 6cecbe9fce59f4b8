"""Bad input files and folders (issue 10): each gets a clear error or a recorded skip.

A single bad file is a :class:`DataError` whose message starts with its path when read
directly, and an entry with its reason in the validation report when met while scanning
or validating a dataset; a bad dataset *layout* (no root, a class folder that is a file
or holds no image in an explicit class list) is a :class:`DataError` naming the folder.
The last section seeds one folder with every bad file and runs ``augbench validate`` and
the prepare stage over it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from bench.cli import main as cli_main
from bench.data import loader
from bench.data.loader import read_grey, scan_folder
from bench.data.validate import validate_records
from bench.errors import DataError
from tests.reliability.builders import (
    bytes_name,
    corrupted,
    exif_rotated_jpeg,
    make_dataset,
    needs_bytes_names,
    needs_symlinks,
    noise,
    png_header_only,
    ramp,
    save,
    truncated,
)


def raises_data_error(path: Path, match: str | None = None) -> pytest.ExceptionInfo:
    with pytest.raises(DataError, match=match) as info:
        read_grey(path)
    assert str(path) in str(info.value)
    return info


# ------------------------------------------------------------ one bad file: read_grey


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
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    raises_data_error(truncated(tmp_path / f"cut{suffix}", rgb), "truncated or corrupt")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_corrupt_png_body(tmp_path):
    raises_data_error(corrupted(tmp_path / "bad.png", Image.fromarray(ramp(64, 64))))


def test_corrupt_jpeg_header(tmp_path):
    path = save(tmp_path / "bad.jpg", Image.fromarray(noise(1, 64, 64)), quality=90)
    data = bytearray(path.read_bytes())
    data[2:40] = b"\x00" * 38  # the JFIF segment and the start of the tables
    path.write_bytes(bytes(data))
    raises_data_error(path)


def test_one_pixel_image(tmp_path):
    raises_data_error(save(tmp_path / "dot.png", Image.new("L", (1, 1))), "1x1 px, smaller than")
    raises_data_error(save(tmp_path / "thin.png", Image.new("L", (64, 7))), "smaller than")
    assert read_grey(save(tmp_path / "ok.png", Image.new("L", (8, 8)))).shape == (8, 8)


def test_decompression_bomb_20000_square_header(tmp_path):
    """A 60-byte PNG claiming 20,000 x 20,000 px is refused from its header, under
    Pillow's own default limit, with the file and the limit in the message."""
    path = png_header_only(tmp_path / "bomb.png", 20_000, 20_000)
    assert path.stat().st_size < 100
    info = raises_data_error(path, "decompression bomb")
    msg = str(info.value)
    assert "400000000 pixels" in msg
    assert f"Image.MAX_IMAGE_PIXELS is {Image.MAX_IMAGE_PIXELS:,}" in msg


def test_decompression_bomb_own_limit(tmp_path, monkeypatch):
    path = save(tmp_path / "bomb.png", Image.new("L", (20, 20)))
    monkeypatch.setattr(loader, "MAX_PIXELS", 100)
    raises_data_error(path, r"20x20 = 400 pixels, above the 100-pixel limit")


@pytest.mark.parametrize("limit", [300, 150])  # 400 px: PIL warns above 1x, errors above 2x
def test_decompression_bomb_pil_limit(tmp_path, monkeypatch, limit):
    path = save(tmp_path / "bomb.png", Image.new("L", (20, 20)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    raises_data_error(path, f"decompression bomb.*MAX_IMAGE_PIXELS is {limit}")


def test_missing_file_and_folder(tmp_path):
    raises_data_error(tmp_path / "nope.png", "cannot open")
    (tmp_path / "dir.png").mkdir()
    raises_data_error(tmp_path / "dir.png", "folder")


def test_load_truncated_images_flag_refused(tmp_path, monkeypatch):
    path = save(tmp_path / "ok.png", Image.fromarray(ramp()))
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    raises_data_error(path, "LOAD_TRUNCATED_IMAGES")


# ------------------------------------------- unusual but valid files: decoded correctly


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
    np.testing.assert_allclose(read_grey(path), expected, atol=1e-5)


def test_palette_bmp_and_transparency(tmp_path):
    a = ramp()
    pal = Image.fromarray(a).convert("P")
    save(tmp_path / "pal.bmp", pal)
    assert read_grey(tmp_path / "pal.bmp").shape == a.shape
    save(tmp_path / "palt.png", pal, transparency=0)
    assert read_grey(tmp_path / "palt.png").shape == a.shape


def test_rgba_alpha_ignored(tmp_path):
    a = ramp()
    rgba = np.stack([a, a, a, np.zeros_like(a)], axis=-1)  # fully transparent
    out = read_grey(save(tmp_path / "rgba.png", Image.fromarray(rgba)))
    np.testing.assert_allclose(out, a / 255.0, atol=1e-5)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_maps_0_to_65535_onto_0_to_1(tmp_path, suffix):
    a = (np.arange(24 * 32, dtype=np.uint32).reshape(24, 32) * 85).astype(np.uint16)
    a[0, 0], a[0, 1], a[0, 2] = 0, 32768, 65535
    out = read_grey(save(tmp_path / f"deep{suffix}", Image.fromarray(a)))
    np.testing.assert_allclose(out, a / 65535.0, atol=1e-6)
    assert out[0, 0] == 0.0 and out[0, 1] == pytest.approx(0.5, abs=1e-4)
    assert out[0, 2] == pytest.approx(1.0)


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
    np.testing.assert_allclose(out, (a - a.min()) / (a.max() - a.min()), atol=1e-6)
    assert out.min() == 0.0 and out.max() == 1.0


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_float_tiff_nonfinite(tmp_path, bad):
    a = (ramp() / 255.0).astype(np.float32)
    a[3, 4] = bad
    path = save(tmp_path / "nan.tif", Image.fromarray(a))
    raises_data_error(path, "NaN" if np.isnan(bad) else "infinite")


def test_exif_rotated_jpeg_is_transposed(tmp_path):
    a = ramp(20, 40)  # H=20, W=40
    path = exif_rotated_jpeg(tmp_path / "rot.jpg", a, orientation=6)
    with Image.open(path) as raw:
        assert raw.size == (40, 20)
    out = read_grey(path)
    assert out.shape == (40, 20)
    # Orientation 6: the displayed image is the stored one rotated 90 degrees clockwise.
    np.testing.assert_allclose(out, np.rot90(a, k=-1) / 255.0, atol=6 / 255)


# --------------------------------------------------------------- folders: scan_folder


def test_masks_beside_images_are_not_images(tmp_path):
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
    reasons = {Path(s.path).name: s.reason for s in scan.skipped}
    assert reasons == {
        "benign (1)_mask_1.png": "further mask of 'benign/benign (1)' (only the first one is used)",
        "benign (2)_MASK_2.png": "further mask of 'benign/benign (2)' (only the first one is used)",
        "benign (9)_mask.png": "mask without a matching image 'benign (9)' in 'benign'",
    }


def test_unreadable_mask_is_reported_and_detached(tmp_path):
    make_dataset(tmp_path, {"a": ["1.png", "2.png"]})
    good = save(tmp_path / "a" / "1_mask.png", Image.new("L", (16, 16)))
    bad = tmp_path / "a" / "2_mask.png"
    bad.write_bytes(b"")
    scan = scan_folder(tmp_path)
    assert set(scan.masks) == {"a/1", "a/2"}
    records, report, _ = validate_records(scan, progress=False)
    assert [r.id for r in records] == ["a/1", "a/2"]  # the image itself stays usable
    assert scan.masks == {"a/1": str(good)}
    [entry] = report.unreadable
    assert entry.path == str(bad) and entry.reason.startswith("mask of a/2: ")
    assert "empty file" in entry.reason


def test_hidden_and_non_image_entries_skipped(tmp_path):
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


@needs_symlinks
def test_symlinks_followed_and_loops_skipped(tmp_path):
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
    raises_data_error(folder / "loop.png", "symlink loop")


@needs_symlinks
def test_class_folder_symlink_loop(tmp_path):
    root = make_dataset(tmp_path, {"a": ["1.png"]})
    os.symlink(root / "b", root / "b")
    scan = scan_folder(root)
    assert scan.classes == ["a"]
    assert "symlink loop" in scan.skipped[0].reason
    with pytest.raises(DataError, match="symlink loop") as info:
        scan_folder(root, classes=["a", "b"])
    assert str(root / "b") in str(info.value)
    os.symlink(root / "a", root / "alias")  # a symlinked class folder is followed
    assert [r.id for r in scan_folder(root, classes=["alias"]).records] == ["alias/1"]


@needs_bytes_names
def test_non_utf8_names_are_skipped_not_crashing(tmp_path, capsys):
    make_dataset(tmp_path, {"a": ["ok.png"]})
    image = bytes_name(tmp_path / "a", b"caf\xe9 (1).png")
    save(Path(image), Image.fromarray(ramp(16, 16)))
    folder = bytes_name(tmp_path, b"cla\xdfs")
    make_dataset(Path(folder), {"": ["x.png"]})
    scan = scan_folder(tmp_path)
    assert [r.id for r in scan.records] == ["a/ok"]
    reasons = {s.path: s.reason for s in scan.skipped}
    assert set(reasons) == {f"{tmp_path}/a/caf\\xe9 (1).png", f"{tmp_path}/cla\\xdfs"}
    assert all("not valid UTF-8" in r for r in reasons.values())
    # The shown names print and serialise as plain UTF-8.
    json.dumps([s.path for s in scan.skipped], ensure_ascii=False).encode("utf-8")
    # Reading such a file directly works, and an error about one prints.
    assert read_grey(image).shape == (16, 16)
    Path(image).write_bytes(b"")
    with pytest.raises(DataError) as info:
        read_grey(image)
    print(info.value)
    assert "caf\\xe9 (1).png: empty file" in capsys.readouterr().out


def test_space_parenthesis_and_unicode_names(tmp_path):
    names = ["benign (12).png", "échographie (1).png", "超音波 2.png", "a b [c] {d}.png"]
    make_dataset(tmp_path, {"bénin": names})
    scan = scan_folder(tmp_path)
    ids = [r.id for r in scan.records]
    assert len(ids) == 4 and len(set(ids)) == 4
    assert "bénin/échographie (1)" in ids and "bénin/超音波 2" in ids
    for r in scan.records:
        assert read_grey(r.path).shape == (16, 16)


def test_empty_class_folder(tmp_path):
    make_dataset(tmp_path, {"benign": ["1.png"]})
    (tmp_path / "normal").mkdir()
    (tmp_path / "normal" / "notes.txt").write_text("x")
    # Discovered classes: the empty folder is left out and listed.
    scan = scan_folder(tmp_path)
    assert scan.classes == ["benign"]
    reasons = {Path(s.path).name: s.reason for s in scan.skipped}
    assert reasons["normal"] == "class 'normal' contains no images (class left out)"
    assert "not an image" in reasons["notes.txt"]
    # A class the caller asked for: an error naming the folder.
    with pytest.raises(DataError, match="no images") as info:
        scan_folder(tmp_path, classes=["benign", "normal"])
    assert str(tmp_path / "normal") in str(info.value)
    # Nothing usable at all: an error naming the root.
    (tmp_path / "benign" / "1.png").unlink()
    with pytest.raises(DataError, match="no class folder contains an image") as info:
        scan_folder(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_single_class(tmp_path):
    make_dataset(tmp_path, {"benign": ["1.png", "2.png"]})
    scan = scan_folder(tmp_path)  # validating a one-class folder is fine
    assert scan.classes == ["benign"] and len(scan.records) == 2
    with pytest.raises(DataError, match="class folder 'malignant' not found") as info:
        scan_folder(tmp_path, classes=["benign", "malignant"])
    assert str(tmp_path / "malignant") in str(info.value)
    assert "folders present: benign" in str(info.value)


def test_class_folder_that_is_a_file(tmp_path):
    make_dataset(tmp_path, {"benign": ["1.png"]})
    (tmp_path / "malignant").write_text("oops")
    with pytest.raises(DataError, match="is a file") as info:
        scan_folder(tmp_path, classes=["benign", "malignant"])
    assert str(tmp_path / "malignant") in str(info.value)
    # Without an explicit list, a file at the root (README.md, ...) is skipped.
    scan = scan_folder(tmp_path)
    assert scan.classes == ["benign"]
    assert [s.path for s in scan.skipped] == [str(tmp_path / "malignant")]


def test_folders_outside_the_class_list_are_listed(tmp_path):
    make_dataset(tmp_path, {"benign": ["1.png"], "malignant": ["1.png"], "normal": ["1.png"]})
    (tmp_path / "README.txt").write_text("x")
    scan = scan_folder(tmp_path, classes=["benign", "malignant"])
    reasons = {Path(s.path).name: s.reason for s in scan.skipped}
    assert set(reasons) == {"normal", "README.txt"}
    assert reasons["normal"].startswith("class folder not in the class list")
    assert reasons["README.txt"].startswith("not a class folder")


def test_dataset_root_that_does_not_exist(tmp_path):
    with pytest.raises(DataError, match="dataset folder not found") as info:
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


def test_class_with_no_usable_image_left_is_an_error(tmp_path):
    make_dataset(tmp_path, {"benign": ["1.png"]})
    (tmp_path / "malignant").mkdir()
    (tmp_path / "malignant" / "broken.png").write_bytes(b"")
    _, report, _ = validate_records(scan_folder(tmp_path), progress=False)
    assert report.usable_class_counts == {"benign": 1, "malignant": 0}
    with pytest.raises(DataError, match=r"no usable images left in class\(es\) 'malignant'"):
        report.check_usable(tmp_path)


# ------------------------------------------- every bad file at once: validate, prepare

# file name -> text its reason must contain (unreadable or skipped); built by seed_bad_folder.
BAD_BENIGN = {
    "empty.png": "empty file (0 bytes)",
    "notes.png": "not a readable image",
    "cut.png": "truncated or corrupt",
    "cut.jpg": "truncated or corrupt",
    "corrupt.png": "truncated or corrupt",
    "dot.png": "1x1 px, smaller than",
    "bomb.png": "decompression bomb",
    "nan.tif": "NaN",
    ".hidden.png": "hidden file",
    "loop.png": "symlink loop",
    "broken.png": "broken symlink",
    "Thumbs.db": "not an image file",
    "orphan_mask.png": "mask without a matching image",
    "caf\\xe9.png": "not valid UTF-8",
}
BAD_ROOT = {
    "README.txt": "not a class folder",
    "normal": "class folder not in the class list",
    ".DS_Store": "hidden entry",
}
GOOD_BENIGN = [
    "b (1)",
    "b (2)",
    "b (3)",
    "b (4)",
    "b (5)",
    "b (6)",
    "b (10)",
    "palette",
    "rgba",
    "deep16",
    "float",
    "exif",
    "linked",
]
GOOD_MALIGNANT = ["m (1)", "m (2)", "m (3)", "m (4)", "m (5)", "m (6)"]


def seed_bad_folder(root: Path) -> Path:
    """benign and malignant images (all distinct), every bad file of issue 10 beside them."""
    b, m = root / "benign", root / "malignant"
    for i, n in enumerate([1, 2, 3, 4, 5, 6, 10]):
        save(b / f"b ({n}).png", Image.fromarray(noise(i)))
        save(b / f"b ({n})_mask.png", Image.new("L", (32, 32)))
    for n in range(1, 7):
        save(m / f"m ({n}).png", Image.fromarray(noise(100 + n)))
    (m / "m (1)_mask.png").write_text("not a mask")  # unreadable mask: detached, listed
    save(b / "palette.png", Image.fromarray(noise(20)).convert("P"))
    save(b / "rgba.png", Image.fromarray(np.stack([noise(21)] * 3 + [noise(22)], axis=-1)))
    save(b / "deep16.tif", Image.fromarray(noise(23).astype(np.uint16) * 257))
    save(b / "float.tif", Image.fromarray(noise(24).astype(np.float32) / 255))
    exif_rotated_jpeg(b / "exif.jpg", noise(25, 32, 48))
    save(tmp := root.parent / "outside" / "real.png", Image.fromarray(noise(26)))
    (b / "empty.png").write_bytes(b"")
    (b / "notes.png").write_text("not an image")
    truncated(b / "cut.png", Image.fromarray(noise(30, 64, 64)))
    truncated(b / "cut.jpg", Image.fromarray(noise(31, 64, 64)))
    corrupted(b / "corrupt.png", Image.fromarray(ramp(64, 64)))
    save(b / "dot.png", Image.new("L", (1, 1)))
    png_header_only(b / "bomb.png", 20_000, 20_000)
    nan = (noise(32) / 255).astype(np.float32)
    nan[0, 0] = np.nan
    save(b / "nan.tif", Image.fromarray(nan))
    save(b / ".hidden.png", Image.fromarray(noise(33)))
    (b / "Thumbs.db").write_bytes(b"x")
    save(b / "orphan_mask.png", Image.new("L", (32, 32)))
    os.symlink(tmp, b / "linked.png")
    os.symlink(b / "loop.png", b / "loop.png")
    os.symlink(root / "missing.png", b / "broken.png")
    save(Path(bytes_name(b, b"caf\xe9.png")), Image.fromarray(noise(34)))
    (root / "README.txt").write_text("x")
    (root / "normal").mkdir()
    (root / ".DS_Store").write_bytes(b"x")
    return root


def reasons_by_name(report: dict) -> dict[str, str]:
    return {Path(e["path"]).name: e["reason"] for e in report["unreadable"] + report["skipped"]}


@needs_symlinks
@needs_bytes_names
@pytest.mark.parametrize("explicit", [True, False], ids=["--classes", "discovered"])
def test_validate_cli_reports_every_bad_file(tmp_path, capsys, explicit):
    root = seed_bad_folder(tmp_path / "data")
    report_json = tmp_path / "report.json"
    classes = ["--classes", "benign", "malignant"] if explicit else []
    code = cli_main(
        ["validate", str(root), *classes, "--json", str(report_json), "--examples", "1"]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    out.encode("utf-8")  # printable on any UTF-8 terminal, odd file names included
    report = json.loads(report_json.read_text(encoding="utf-8"))
    reasons = reasons_by_name(report)
    expected = {**BAD_BENIGN, **BAD_ROOT, "m (1)_mask.png": "mask of malignant/m (1)"}
    if not explicit:
        expected["normal"] = "class 'normal' contains no images (class left out)"
    assert set(reasons) == set(expected)
    for name, text in expected.items():
        assert text in reasons[name], (name, reasons[name])
        assert f"{name}`: " in out  # listed in full even with --examples 1
    assert report["usable_class_counts"] == {"benign": len(GOOD_BENIGN), "malignant": 6}


@needs_symlinks
@needs_bytes_names
def test_prepare_keeps_the_good_images_of_a_bad_folder(tmp_path):
    from bench.config import load_params
    from bench.stages.prepare import prepare

    root = seed_bad_folder(tmp_path / "data")
    params = load_params(
        Path(__file__).resolve().parents[2] / "params.yaml",
        "smoke",
        [
            "dataset.source=folder",
            f"dataset.path={root}",
            "matrix.methods=[none]",  # the positive control is for the phantom only
            "preprocess.image_size=16",
            "preprocess.srad=false",
        ],
    )
    prepare(params, tmp_path / "out")
    with np.load(tmp_path / "out" / "dataset.npz") as npz:
        ids = sorted(npz["ids"].tolist())
        assert npz["images"].shape == (len(ids), 16, 16)
        assert np.isfinite(npz["images"]).all()
    good = [f"benign/{n}" for n in GOOD_BENIGN] + [f"malignant/{n}" for n in GOOD_MALIGNANT]
    assert ids == sorted(good)
    report = json.loads((tmp_path / "out" / "validation.json").read_text(encoding="utf-8"))
    assert set(reasons_by_name(report)) == {*BAD_BENIGN, *BAD_ROOT, "m (1)_mask.png"}
    md = (tmp_path / "out" / "validation.md").read_text(encoding="utf-8")
    assert all(f"{name}`: " in md for name in BAD_BENIGN)
