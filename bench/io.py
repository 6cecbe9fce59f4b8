"""Atomic file output: write to a temporary name in the same folder, then rename.

A reader (or a resumed run) never sees a half-written artifact: either the old
file, or the complete new one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import DataError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are meant to be shared
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def remove_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete what :func:`atomic_path` leaves when its process is killed before the rename
    (``.<name>.<random>.tmp<suffix>``) anywhere under ``folder``; call it only while holding the
    folder's lock (bench.lock), when no other writer can be mid-write. Returns what was removed."""
    removed = []
    for path in sorted(Path(folder).rglob(".*.tmp*")) if Path(folder).is_dir() else []:
        if path.is_file() and re.fullmatch(r"\..+\.[A-Za-z0-9_]{8}\.tmp.*", path.name):
            path.unlink()
            removed.append(path)
    return removed


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path: str | os.PathLike, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise DataError(path, f"not valid JSON ({exc})", "delete it and re-run the stage that writes it") from None


def save_npz(path: str | os.PathLike, compress: bool = True, **arrays: np.ndarray) -> None:
    """``np.savez_compressed`` (``np.savez`` when not ``compress``) to a temporary file, then rename."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        (np.savez_compressed if compress else np.savez)(fh, **arrays)


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in 1 MiB chunks: sha256 (upstream fingerprints in stage
    metadata) or another :func:`hashlib.new` algorithm (bench.weights.md5: Keras weight files)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise DataError(path, f"unreadable array file ({exc})", "delete it and re-run the stage that writes it") from None
