"""Property-based tests (hypothesis) of the loader and the params loader (issue 10).

Every generated input either loads or raises the project's own error type whose message
names the offending path (a file path, or a params key path); nothing crashes with an
unrelated exception, and no file of a dataset folder is dropped without a record.
"""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from bench.config import load_params
from bench.data.loader import read_grey, scan_folder
from bench.data.validate import validate_records
from bench.errors import AugbenchError, ConfigError, DataError, RegistryError, printable
from tests.reliability.builders import noise

PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"

_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    # tmp_path is shared by all examples on purpose: each example overwrites its files.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# ------------------------------------------------------------------ read_grey

_MODES = ["1", "L", "P", "RGB", "RGBA", "LA", "I;16", "I", "F", "CMYK"]
_FORMATS = {".png": "PNG", ".bmp": "BMP", ".tif": "TIFF", ".jpg": "JPEG"}


def _make_image(mode: str, arr: np.ndarray) -> Image.Image:
    if mode in ("I;16", "I", "F"):
        dtype = {"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]
        scale = {"I;16": 257, "I": 1000, "F": 0.5}[mode]
        return Image.fromarray((arr.astype(np.float64) * scale).astype(dtype))
    return Image.fromarray(arr).convert(mode)


def _read_or_data_error(path: Path) -> None:
    try:
        out = read_grey(path)
    except DataError as exc:
        assert str(path) in str(exc)
    else:
        assert out.dtype == np.float32 and out.ndim == 2
        assert out.shape[0] >= 8 and out.shape[1] >= 8
        assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


@_SETTINGS
@pytest.mark.filterwarnings("ignore::UserWarning")  # PIL warns about odd TIFF tags
@given(data=st.binary(min_size=0, max_size=600), suffix=st.sampled_from(sorted(_FORMATS)))
def test_random_bytes_load_or_data_error(tmp_path, data, suffix):
    path = tmp_path / f"random{suffix}"
    path.write_bytes(data)
    _read_or_data_error(path)


@_SETTINGS
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
def test_damaged_images_load_or_data_error(tmp_path, h, w, seed, mode, suffix, cut, flip):
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
    _read_or_data_error(path)


# --------------------------------------------------------- scan_folder + validate

# Entry names: ordinary, hidden, spaces and parentheses, masks, odd suffixes, and raw
# bytes that are not UTF-8 (Linux only).
_STEMS = st.sampled_from(["a", "b (1)", "b (1)_mask", "b (1)_mask_2", ".h", "x y", "é", "c_mask"])
_SUFFIXES = st.sampled_from([".png", ".PNG", ".jpg", ".tif", ".txt", ""])
_RAW = st.sampled_from([b"\xff", b"caf\xe9", b""]) if os.name == "posix" else st.just(b"")
_NAMES = st.tuples(_STEMS, _RAW, _SUFFIXES).map(
    lambda t: os.fsdecode(t[0].encode() + t[1] + t[2].encode())
)
# What an entry is: a good image, damaged bytes, an empty file, a folder, a symlink to a
# sibling (possibly itself: a loop), or a broken symlink.
_KINDS = st.sampled_from(["image", "junk", "empty", "folder", "link", "broken"])
_ENTRIES = st.lists(st.tuples(_NAMES, _KINDS, st.integers(0, 5)), max_size=6)
_TREES = st.fixed_dictionaries(
    {"benign": _ENTRIES, "malignant": _ENTRIES},
    optional={".hidden": _ENTRIES, "x (2)": _ENTRIES},
)


def _build(root: Path, tree: dict) -> None:
    if root.exists():
        shutil.rmtree(root)
    root.mkdir()
    for cls, entries in tree.items():
        folder = root / cls
        folder.mkdir()
        for name, kind, k in entries:
            path = folder / name
            if os.path.lexists(path):
                continue
            if kind == "image":
                Image.fromarray(noise(k, 12, 12)).save(path, format="PNG")
            elif kind == "junk":
                path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(k * 7)))
            elif kind == "empty":
                path.write_bytes(b"")
            elif kind == "folder":
                path.mkdir()
            else:
                siblings = [e[0] for e in entries]
                target = folder / siblings[k % len(siblings)] if kind == "link" else root / "gone"
                os.symlink(target, path)


def _entries(root: Path, classes: list[str]) -> tuple[set[str], set[str]]:
    """(entries that must be accounted for, every entry down to the class folders' files)."""
    top = {printable(e.path) for e in os.scandir(root)}
    inner = set()
    for e in os.scandir(root):
        if e.is_dir():
            inner.update(printable(f.path) for f in os.scandir(e.path))
    used = {str(root / c) for c in classes}
    must = (top - used) | {p for p in inner if os.path.dirname(p) in used}
    return must, top | inner


@_SETTINGS
@pytest.mark.skipif(os.name != "posix", reason="symlinks and raw-byte names")
@given(tree=_TREES, explicit=st.booleans(), seeded=st.integers(0, 4))
def test_every_entry_is_used_or_listed(tmp_path, tree, explicit, seeded):
    root = tmp_path / "data"
    if seeded:  # mostly: one good image first in each class, so most layouts scan
        tree = {
            c: ([("b (1).png", "image", i)] if i < 2 else []) + e
            for i, (c, e) in enumerate(tree.items())
        }
    _build(root, tree)
    try:
        scan = scan_folder(root, ["benign", "malignant"] if explicit else None)
    except DataError as exc:
        assert str(root) in str(exc)
        event("layout error")
        return
    event(f"scanned, {len(scan.records)} image(s), {len(scan.skipped)} skipped")
    used = {r.path for r in scan.records} | set(scan.masks.values())
    listed = [s.path for s in scan.skipped]
    assert len(listed) == len(set(listed)) and not used & set(listed)
    must, everything = _entries(root, scan.classes)
    assert must <= used | set(listed) <= everything
    assert all(s.reason for s in scan.skipped)

    records, report, images = validate_records(scan, progress=False)
    path_of = {r.id: r.path for r in scan.records}
    unreadable = {e.path for e in report.unreadable if not e.reason.startswith("mask of ")}
    kept = {r.path for r in records}
    assert kept | unreadable | {path_of[i] for i in report.dropped} == set(path_of.values())
    assert set(images) == {r.id for r in records}
    assert all(
        e.reason.startswith(e.path) or e.reason.startswith("mask of ") for e in report.unreadable
    )


# --------------------------------------------------------------- params loader

_RAW_PARAMS = yaml.safe_load(PARAMS.read_text(encoding="utf-8"))


def _key_paths(node, prefix=()) -> list[tuple]:
    out = []
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for k, v in items:
        out.append((*prefix, k))
        out.extend(_key_paths(v, (*prefix, k)))
    return out


_KEY_PATHS = sorted(_key_paths(_RAW_PARAMS), key=str)
_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=5,
)
# (key path, new value, delete instead of replace)
_MUTATIONS = st.lists(
    st.tuples(st.sampled_from(_KEY_PATHS), _VALUES, st.booleans()), min_size=1, max_size=3
)


def _mutate(raw: dict, mutations) -> dict:
    data = copy.deepcopy(raw)
    for path, value, delete in mutations:
        node = data
        try:
            for key in path[:-1]:
                node = node[key]
            if delete and isinstance(node, dict):
                del node[path[-1]]
            else:
                node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            pass  # an earlier mutation replaced a parent: nothing to change
    return data


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(mutations=_MUTATIONS, profile=st.sampled_from([None, "smoke", "quick", "paper", "fast"]))
def test_params_load_or_name_the_key(tmp_path, mutations, profile):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(_mutate(_RAW_PARAMS, mutations)), encoding="utf-8")
    try:
        load_params(path, profile)
    except ConfigError as exc:
        assert str(exc).startswith(f"params: {exc.key}: ")
        assert exc.key and exc.problem
    except RegistryError as exc:
        assert str(exc).startswith("params: ")
    except AugbenchError as exc:
        pytest.fail(f"unexpected {type(exc).__name__}: {exc}")


_OVERRIDES = st.one_of(
    st.text(max_size=16),
    st.tuples(
        st.sampled_from([".".join(map(str, k)) for k in _KEY_PATHS]), st.text(max_size=8)
    ).map("=".join),
)


@settings(max_examples=80, deadline=None)
@given(items=st.lists(_OVERRIDES, max_size=3))
def test_overrides_load_or_name_the_key(items):
    try:
        load_params(PARAMS, "smoke", items)
    except ConfigError as exc:
        assert str(exc).startswith(f"params: {exc.key}: ")
    except RegistryError as exc:
        assert str(exc).startswith("params: ")
