"""Small file builders shared by the reliability tests: every bad file is made in tmp_path."""

from __future__ import annotations

import os
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

needs_symlinks = pytest.mark.skipif(
    sys.platform == "win32", reason="symlinks need privileges on Windows"
)
needs_bytes_names = pytest.mark.skipif(
    sys.platform != "linux", reason="only Linux file systems store names as raw bytes"
)


def ramp(h: int = 24, w: int = 32) -> np.ndarray:
    """uint8 (h, w) test pattern with distinct rows and columns."""
    y, x = np.mgrid[0:h, 0:w]
    return ((x * 7 + y * 3) % 256).astype(np.uint8)


def noise(seed: int, h: int = 32, w: int = 32) -> np.ndarray:
    """uint8 (h, w) random image; different seeds give images far apart in pHash."""
    return np.random.default_rng(seed).integers(0, 256, size=(h, w), dtype=np.uint8)


def save(path: Path, image: Image.Image, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kw)
    return path


def make_dataset(root: Path, spec: dict[str, list[str]]) -> Path:
    """One 16 × 16 ramp PNG per name, under ``root/<class>/``."""
    for cls, names in spec.items():
        for name in names:
            save(root / cls / name, Image.fromarray(ramp(16, 16)))
    return root


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A ~60-byte PNG whose header claims ``width`` x ``height`` 8-bit grey pixels.

    Exercises the decompression-bomb check without creating the image: the size is read
    from the header, before any pixel data.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
    data += _chunk(b"IDAT", zlib.compress(b"")) + _chunk(b"IEND", b"")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def truncated(path: Path, image: Image.Image, **kw) -> Path:
    """``image`` saved to ``path``, then cut to half its bytes."""
    save(path, image, **kw)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def corrupted(path: Path, image: Image.Image, **kw) -> Path:
    """``image`` saved to ``path``, then 16 bytes in the middle overwritten with 0xFF."""
    save(path, image, **kw)
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 16] = b"\xff" * 16
    path.write_bytes(bytes(data))
    return path


def exif_rotated_jpeg(path: Path, pixels: np.ndarray, orientation: int = 6) -> Path:
    """A JPEG stored as ``pixels`` with the EXIF orientation tag set (6 = rotate 90 cw)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return save(path, Image.fromarray(pixels), exif=exif.tobytes(), quality=95)


def bytes_name(folder: Path, name: bytes) -> str:
    """Path (as str, with surrogate escapes) of a file in ``folder`` whose name is raw bytes."""
    return os.fsdecode(os.path.join(os.fsencode(folder), name))
