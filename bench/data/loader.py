"""Find images in a folder-per-class dataset and decode them to grey float32 arrays.

Layout: ``root/<class>/<image files>``; the class label is the folder name. Segmentation
masks stored beside the images (``<stem>_mask.png``, ``<stem>_mask_<k>.png``, as in the
public BUSI release) are recognised and attached to their image instead of being read as
images. Anything else that is not an image (hidden files, other suffixes, sub-folders,
broken symlinks, symlink loops, names that are not valid UTF-8) is skipped and listed
with the reason, never silently.

Every problem with a file or folder is raised as :class:`bench.errors.DataError`, whose
message starts with the offending path.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import unicodedata
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError
from tqdm import tqdm

from bench.errors import ConfigError, DataError, printable

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

# Formats PIL may identify a file as. A file with an image suffix whose content is some
# other format (GIF, WebP, ...) is reported as unreadable rather than decoded. (Multi-picture
# JPEG files, MPO, are opened by the JPEG opener.)
PIL_FORMATS = ("PNG", "JPEG", "BMP", "DIB", "TIFF")

# Images with more pixels than this are refused as possible decompression bombs (a tiny
# file that decodes to gigabytes). 50 megapixels is far above any ultrasound frame.
MAX_PIXELS = 50_000_000

# Smallest accepted image side, in pixels.
MIN_SIDE = 8

# ITU-R BT.601 luma weights for R, G, B.
BT601 = np.array([0.299, 0.587, 0.114], dtype=np.float32)

# Show a progress bar when decoding more than this many images.
PROGRESS_MIN_ITEMS = 200

_MASK_RE = re.compile(r"^(?P<stem>.+)_mask(?:_(?P<k>[0-9]+))?$", re.IGNORECASE)
_DIGITS_RE = re.compile(r"([0-9]+)")


@dataclass
class Record:
    """One image: ``id`` is ``"<label>/<file stem>"``, stable across runs and unique."""

    id: str
    label: str
    path: str


@dataclass
class Skipped:
    """A file or folder that was not used, and why."""

    path: str
    reason: str


@dataclass
class Scan:
    """Result of :func:`scan_folder`.

    ``records`` are in deterministic order (class order, then natural file-name order);
    ``masks`` maps a record id to the path of its first mask (``_mask`` before
    ``_mask_1`` before ``_mask_2``...; the others are listed in ``skipped``);
    ``skipped`` lists everything not used, with the reason;
    ``classes`` is the class order used.
    """

    records: list[Record]
    masks: dict[str, str]
    skipped: list[Skipped]
    classes: list[str] = field(default_factory=list)


def natural_key(name: str) -> tuple:
    """Sort key that orders embedded numbers by value: "benign (2)" < "benign (10)".

    Text parts compare case-insensitively; the raw name breaks ties so the order is total.
    """
    parts = _DIGITS_RE.split(name)
    # re.split with a capturing group alternates text, number, text, ...: the same
    # position always holds the same type, so the tuples always compare.
    key = tuple(int(p) if i % 2 else p.casefold() for i, p in enumerate(parts))
    return (key, name)


def _follow(path: str) -> tuple[os.stat_result | None, str]:
    """``os.stat`` following symlinks; on failure return (None, reason)."""
    try:
        return os.stat(path), ""
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None, "symlink loop (the link points back to itself)"
        if exc.errno == errno.ENOENT:
            if os.path.islink(path):
                target = os.readlink(path)
                return None, f"broken symlink (target {target!r} does not exist)"
            return None, "file disappeared while scanning"
        return None, f"cannot access: {exc.strerror or exc}"


def _utf8_problem(name: str) -> str:
    """A skip reason when ``name`` is not valid UTF-8 ('' when it is).

    Such names (bytes on Linux, seen through surrogate escapes) cannot be written to the
    manifest, the reports or dvc.lock, so the file is listed instead of used."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "name is not valid UTF-8 (its odd bytes are shown as \\x escapes); rename it"
    return ""


def _skip(skipped: list[Skipped], path: str, reason: str) -> None:
    skipped.append(Skipped(printable(path), reason))


def _list_dir(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: natural_key(e.name))
    except OSError as exc:
        raise DataError(folder, f"cannot list folder: {exc.strerror or exc}") from exc


def _present_classes(root: Path) -> list[str]:
    return [printable(e.name) for e in _list_dir(root) if not _root_entry_problem(e)]


def _root_entry_problem(entry: os.DirEntry) -> str:
    """Why an entry of the dataset root cannot be a class folder ('' when it can)."""
    if entry.name.startswith("."):
        return "hidden entry"
    if entry.name == "__MACOSX":
        return "macOS archive metadata folder"
    st, why = _follow(entry.path)
    if st is None:
        return why
    if not stat.S_ISDIR(st.st_mode):
        return "not a class folder (a file at the dataset root)"
    return _utf8_problem(entry.name)


def _discover_classes(root: Path, skipped: list[Skipped]) -> list[str]:
    found = []
    for entry in _list_dir(root):
        why = _root_entry_problem(entry)
        if why:
            _skip(skipped, entry.path, why)
        else:
            found.append(entry.name)
    if not found:
        raise DataError(root, "no class folders found", "expected root/<class>/<image files>")
    return found


def _check_class_list(classes: Sequence[str]) -> list[str]:
    if isinstance(classes, str):
        raise ConfigError("classes", f"expected a list of class names, got the string {classes!r}")
    classes = list(classes)
    if not classes:
        raise ConfigError("classes", "the class list is empty")
    seen = set()
    for name in classes:
        if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
            raise ConfigError("classes", f"invalid class name {name!r}")
        if name in seen:
            raise ConfigError("classes", f"class {name!r} is listed twice")
        seen.add(name)
    return classes


def _check_class_folder(root: Path, name: str) -> None:
    folder = root / name
    st, why = _follow(str(folder))
    if st is None:
        if os.path.lexists(folder):
            raise DataError(folder, f"class folder unusable: {why}")
        present = ", ".join(_present_classes(root)) or "none"
        raise DataError(folder, f"class folder {name!r} not found", f"folders present: {present}")
    if not stat.S_ISDIR(st.st_mode):
        raise DataError(
            folder, f"class {name!r} is a file, not a folder", "expected root/<class>/<image files>"
        )


def _skip_unlisted(root: Path, classes: list[str], skipped: list[Skipped]) -> None:
    """List every root entry that is not one of the given classes (none is dropped silently)."""
    for entry in _list_dir(root):
        if entry.name not in classes:
            why = _root_entry_problem(entry) or "class folder not in the class list"
            _skip(skipped, entry.path, f"{why}; classes in use: {', '.join(classes)}")


def _file_problem(entry: os.DirEntry) -> str:
    """Why a class-folder entry is not an image file ('' when it is)."""
    if entry.name.startswith("."):
        return "hidden file"
    st, why = _follow(entry.path)
    if st is None:
        return why
    if stat.S_ISDIR(st.st_mode):
        return "sub-folder inside a class folder (not scanned)"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    suffix = os.path.splitext(entry.name)[1]
    if suffix.lower() not in IMAGE_SUFFIXES:
        what = f"suffix {printable(suffix)!r}" if suffix else "no suffix"
        return f"not an image file ({what}; expected {', '.join(IMAGE_SUFFIXES)})"
    return _utf8_problem(entry.name)


def _scan_class(
    folder: Path, skipped: list[Skipped]
) -> tuple[list[tuple[str, str]], list[tuple[str, int, str]]]:
    """``(images, masks)`` of one class folder: ``(file name, path)`` and
    ``(image stem, mask number, path)``; everything else goes to ``skipped``."""
    images: list[tuple[str, str]] = []
    masks: list[tuple[str, int, str]] = []
    for entry in _list_dir(folder):
        why = _file_problem(entry)
        if why:
            _skip(skipped, entry.path, why)
            continue
        m = _MASK_RE.match(os.path.splitext(entry.name)[0])
        if m:
            masks.append((m.group("stem"), int(m.group("k") or 0), entry.path))
        else:
            images.append((entry.name, entry.path))
    return images, masks


def _add_class(label: str, images, mask_files, scan: Scan) -> None:
    """Append the records of one class to ``scan`` and attach their masks."""
    stems = [unicodedata.normalize("NFC", os.path.splitext(n)[0]) for n, _ in images]
    counts: dict[str, int] = {}
    for s in stems:
        counts[s] = counts.get(s, 0) + 1
    by_stem: dict[str, str] = {}  # casefolded stem -> record id (first wins)
    for (name, path), s in zip(images, stems, strict=True):
        key = s if counts[s] == 1 else unicodedata.normalize("NFC", name)
        rid = f"{label}/{key}"
        scan.records.append(Record(id=rid, label=label, path=path))
        by_stem.setdefault(s.casefold(), rid)

    mask_files = sorted(
        mask_files, key=lambda t: (natural_key(t[0]), t[1], natural_key(os.path.basename(t[2])))
    )
    for stem, _k, path in mask_files:
        rid = by_stem.get(unicodedata.normalize("NFC", stem).casefold())
        if rid is None:
            _skip(scan.skipped, path, f"mask without a matching image {stem!r} in {label!r}")
        elif rid in scan.masks:
            _skip(scan.skipped, path, f"further mask of {rid!r} (only the first one is used)")
        else:
            scan.masks[rid] = path


def scan_folder(root: str | os.PathLike, classes: list[str] | None = None) -> Scan:
    """Find the images of a folder-per-class dataset.

    ``classes=None`` uses every non-hidden sub-folder of ``root`` (natural-sorted) that
    holds at least one image; an empty one is skipped and listed. A given list is used in
    its order; every class must exist and hold an image (else :class:`DataError`), and the
    other entries of ``root`` are listed as skipped. Only the top level of each class
    folder is scanned. Symlinks to files are followed; broken links and loops are skipped.

    Record ids are ``"<label>/<stem>"`` (Unicode NFC-normalised). If two images in one
    class share a stem (``a.png`` and ``a.jpg``), both get ``"<label>/<file name>"``
    instead so ids stay unique; a mask with that stem attaches to the first of them.
    """
    root = Path(root)
    st, why = _follow(str(root))
    if st is None:
        if os.path.lexists(root):
            raise DataError(root, f"dataset folder unusable: {why}")
        raise DataError(root, "dataset folder not found", "check the data path in params.yaml")
    if not stat.S_ISDIR(st.st_mode):
        raise DataError(
            root, "dataset path is a file, not a folder", "expected root/<class>/<image files>"
        )

    scan = Scan(records=[], masks={}, skipped=[])
    if classes is None:
        class_names = _discover_classes(root, scan.skipped)
    else:
        class_names = _check_class_list(classes)
        for name in class_names:
            _check_class_folder(root, name)
        _skip_unlisted(root, class_names, scan.skipped)

    for label in class_names:
        folder = root / label
        images, mask_files = _scan_class(folder, scan.skipped)
        if not images:
            problem = f"class {label!r} contains no images"
            if classes is not None:
                raise DataError(
                    folder, problem, f"expected files ending in {', '.join(IMAGE_SUFFIXES)}"
                )
            _skip(scan.skipped, str(folder), f"{problem} (class left out)")
            scan.skipped.extend(
                Skipped(printable(p), "mask of a class left out") for *_, p in mask_files
            )
            continue
        scan.classes.append(label)
        _add_class(label, images, mask_files, scan)

    if not scan.classes:
        raise DataError(
            root,
            "no class folder contains an image",
            f"expected root/<class>/<files ending in {', '.join(IMAGE_SUFFIXES)}>",
        )
    return scan


def _luminance(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of an (H, W, >=3) uint8 array, in [0, 1]. Channels past the third
    (alpha, padding) are ignored."""
    return (rgb[..., :3].astype(np.float32) @ BT601) / np.float32(255.0)


def _to_grey(im: Image.Image, path: Path) -> np.ndarray:
    """Decoded PIL image -> float32 (H, W) grey array (not yet clipped)."""
    mode = im.mode
    if mode == "1":
        return np.asarray(im, dtype=bool).astype(np.float32)
    if mode == "L":
        return np.asarray(im, dtype=np.uint8).astype(np.float32) / np.float32(255.0)
    if mode in ("LA", "La"):
        return np.asarray(im.getchannel(0), dtype=np.uint8).astype(np.float32) / np.float32(255.0)
    if mode in ("RGB", "RGBA", "RGBX", "RGBa"):
        return _luminance(np.asarray(im, dtype=np.uint8))
    if mode.startswith("I;16"):
        return np.asarray(im).astype(np.float32) / np.float32(65535.0)
    if mode == "I":
        arr = np.asarray(im, dtype=np.int32)
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if lo < 0:
            return _minmax(arr.astype(np.float64)).astype(np.float32)
        scale = 65535.0 if hi <= 65535 else float(np.iinfo(np.int32).max)
        return (arr.astype(np.float64) / scale).astype(np.float32)
    if mode == "F":
        arr = np.asarray(im, dtype=np.float32)
        if np.isnan(arr).any():
            raise DataError(path, "float image contains NaN values")
        if not np.isfinite(arr).all():
            raise DataError(path, "float image contains infinite values")
        if arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
            return _minmax(arr.astype(np.float64)).astype(np.float32)
        return arr
    # Palette (P, PA) and anything else PIL can convert (CMYK, YCbCr, LAB, ...): via RGB.
    with warnings.catch_warnings():
        # "Palette images with Transparency expressed in bytes ..." is harmless here.
        warnings.simplefilter("ignore", UserWarning)
        rgb = im.convert("RGB")
    return _luminance(np.asarray(rgb, dtype=np.uint8))


def _minmax(arr: np.ndarray) -> np.ndarray:
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        return np.zeros_like(arr)
    return (arr - lo) / (hi - lo)


def read_grey_info(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """Like :func:`read_grey`, also returning ``{"mode", "format", "width", "height"}``
    (mode and format as stored in the file; width and height after EXIF orientation)."""
    path = Path(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        _, why = _follow(str(path))
        raise DataError(path, f"cannot open image: {why or exc.strerror or exc}") from exc
    if stat.S_ISDIR(st.st_mode):
        raise DataError(path, "is a folder, not an image file")
    if st.st_size == 0:
        raise DataError(path, "empty file (0 bytes)", "re-export or re-download it")
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Some other code switched PIL into "accept truncated images" mode; refuse to
        # silently decode half images rather than changing global state back.
        raise DataError(
            path,
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True, so truncated files cannot be detected",
            "do not set it anywhere in the process",
        )

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=PIL_FORMATS) as im:
                fmt = im.format or "?"
                mode = im.mode
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise DataError(
                        path,
                        f"image is {w}x{h} = {w * h:,} pixels, above the {MAX_PIXELS:,}-pixel "
                        "limit (bench.data.loader.MAX_PIXELS; possible decompression bomb)",
                    )
                if w < MIN_SIDE or h < MIN_SIDE:
                    raise DataError(
                        path, f"image is {w}x{h} px, smaller than the {MIN_SIDE}x{MIN_SIDE} minimum"
                    )
                im.load()  # full decode: truncated or corrupt data fails here
                oriented = ImageOps.exif_transpose(im)
                if oriented is None or oriented is im:
                    oriented = im.copy()  # must outlive the file handle
    except DataError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(
            path,
            f"refused as a possible decompression bomb: {exc} "
            f"(Pillow's Image.MAX_IMAGE_PIXELS is {Image.MAX_IMAGE_PIXELS:,})",
        ) from exc
    except UnidentifiedImageError as exc:
        raise DataError(
            path,
            "not a readable image (format not recognised)",
            f"accepted formats: {', '.join(PIL_FORMATS)}",
        ) from exc
    except MemoryError as exc:
        raise DataError(path, "out of memory while decoding the image") from exc
    except Exception as exc:  # PIL raises many exception types for bad data
        raise DataError(
            path,
            f"truncated or corrupt image data ({type(exc).__name__}: {exc})",
            "re-export or re-download the file",
        ) from exc

    # Conversion runs outside the broad handler above so that a bug here is not
    # misreported as a corrupt file; only PIL's conversion errors are expected.
    try:
        grey = _to_grey(oriented, path)
    except (OSError, ValueError) as exc:
        raise DataError(path, f"cannot convert image mode {mode!r} to grey ({exc})") from exc
    grey = np.ascontiguousarray(np.clip(grey, 0.0, 1.0), dtype=np.float32)
    info = {"mode": mode, "format": fmt, "width": int(grey.shape[1]), "height": int(grey.shape[0])}
    return grey, info


def read_grey(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to a float32 (H, W) grey array in [0, 1].

    Accepts PNG, JPEG, BMP and TIFF in modes 1, L, LA, P/PA, RGB, RGBA, CMYK, I;16, I and F.
    EXIF orientation is applied first, so the array is upright.

    Conversion rules:

    - RGB(A), palette, CMYK...: ITU-R BT.601 luminance 0.299 R + 0.587 G + 0.114 B.
      The alpha channel is ignored (not composited), since ultrasound frames are opaque.
    - LA: the grey channel; alpha ignored.
    - 16-bit (I;16*): divided by 65535, the dtype maximum (not stretched to the values seen).
    - 32-bit int (I): values within [0, 65535] are read as 16-bit (PIL decodes 16-bit PNG and
      TIFF files to mode I on some versions) and divided by 65535; larger values are divided
      by 2**31 - 1; negative values make the image min-max scaled.
    - float (F): kept as is when all values lie in [0, 1]; otherwise min-max scaled to
      [0, 1] (a constant image becomes all zeros). NaN or infinite values are an error.

    Raises :class:`DataError` (message starts with the path) for: a missing or empty file,
    content that is not a PNG/JPEG/BMP/TIFF image, truncated or corrupt data, an image
    smaller than 8x8, more than ``MAX_PIXELS`` pixels, and NaN/inf in float data. No other
    exception type escapes for a bad file.
    """
    return read_grey_info(path)[0]


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """Square ``size`` x ``size`` resize with antialiased Lanczos (float32, clipped to [0, 1])."""
    if image.shape == (size, size):
        return image
    # PIL mode "F" resampling is antialiased when shrinking (the filter support is scaled).
    pil = Image.fromarray(np.ascontiguousarray(image, dtype=np.float32), mode="F")
    out = np.asarray(pil.resize((size, size), Image.Resampling.LANCZOS), dtype=np.float32)
    return np.clip(out, 0.0, 1.0)  # Lanczos overshoots slightly at edges


def load_images(records: Sequence[Record], size: int | None) -> np.ndarray:
    """Decode ``records`` into one float32 array ``(N, size, size)`` in [0, 1].

    Images are resized to ``size`` x ``size`` with antialiased Lanczos resampling (the
    aspect ratio is not preserved). ``size=None`` keeps the native size, which must then be
    the same for all images. A progress bar is shown when N > 200.
    """
    if size is not None and (
        isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1
    ):
        raise ConfigError("image_size", f"must be a positive integer or None, got {size!r}")
    records = list(records)
    if not records:
        side = 0 if size is None else int(size)
        return np.zeros((0, side, side), dtype=np.float32)

    out: np.ndarray | None = None
    first_shape: tuple[int, int] | None = None
    bar = tqdm(
        records, desc="decoding images", unit="img", disable=len(records) <= PROGRESS_MIN_ITEMS
    )
    for i, rec in enumerate(bar):
        img = read_grey(rec.path)
        if size is None:
            if first_shape is None:
                first_shape = img.shape
            elif img.shape != first_shape:
                raise DataError(
                    rec.path,
                    f"image is {img.shape[1]}x{img.shape[0]} px but {records[0].path} is "
                    f"{first_shape[1]}x{first_shape[0]} px",
                    "set an image size so all images are resized to it",
                )
        else:
            img = resize(img, int(size))
        if out is None:
            out = np.empty((len(records), *img.shape), dtype=np.float32)
        out[i] = img
    assert out is not None
    return out
