"""Tests for bench.data.validate (synthetic images built in tmp_path; BUSI test optional)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from bench.data.loader import scan_folder
from bench.data.validate import (
    ValidationReport,
    content_hash,
    hamming,
    near_pairs,
    perceptual_hash,
    validate_records,
)
from bench.errors import ConfigError

BUSI = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "busi"
BUSI_COUNTS = {"benign": 312, "malignant": 148, "normal": 90}  # from its README.md


def smooth(seed: int, size: int = 64) -> np.ndarray:
    """A smooth random grey image in [0, 1] (low-frequency blobs, like tissue texture)."""
    coarse = np.random.default_rng(seed).random((6, 6)).astype(np.float32)
    big = np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC))
    return (big - big.min()) / (big.max() - big.min())


def to_u8(a: np.ndarray) -> np.ndarray:
    return np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)


def put(path: Path, a: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_u8(a)).save(path)
    return path


# ------------------------------------------------------------------------- hashes


def test_content_hash(tmp_path):
    p = tmp_path / "x.bin"
    p.write_bytes(b"abc")
    assert content_hash(p) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_perceptual_hash_basic():
    a = smooth(1)
    h = perceptual_hash(a)
    assert isinstance(h, int) and 0 <= h < 2**64
    assert perceptual_hash(a) == h
    assert hamming(h, h) == 0
    assert hamming(0, 2**64 - 1) == 64
    assert hamming(0b1011, 0b0001) == 2
    # Insensitive to small noise and rescaling, sensitive to content.
    rng = np.random.default_rng(0)
    noisy = np.clip(a + rng.normal(0, 0.01, a.shape), 0, 1)
    assert hamming(h, perceptual_hash(noisy)) <= 4
    bigger = np.asarray(
        Image.fromarray(a.astype(np.float32)).resize((96, 96), Image.Resampling.BILINEAR)
    )
    assert hamming(h, perceptual_hash(bigger)) <= 4
    assert hamming(h, perceptual_hash(smooth(2))) > 10
    with pytest.raises(ValueError, match=r"needs a 2-D grey image, got shape \(4, 4, 3\)"):
        perceptual_hash(np.zeros((4, 4, 3)))


@settings(max_examples=40, deadline=None)
@given(
    hashes=st.lists(st.integers(0, 2**64 - 1), min_size=0, max_size=40),
    threshold=st.integers(0, 64),
)
def test_near_pairs_matches_brute_force(hashes, threshold):
    # Clustered hashes so that small distances actually occur.
    hashes = hashes + [h ^ (1 << (h % 64)) for h in hashes[:10]]
    got = {tuple(p) for p in near_pairs(np.array(hashes, dtype=np.uint64), threshold).tolist()}
    want = {
        (i, j)
        for i in range(len(hashes))
        for j in range(i + 1, len(hashes))
        if hamming(hashes[i], hashes[j]) <= threshold
    }
    assert got == want


def test_near_pairs_for_800():
    # its speed is a benchmark ratio: tests/benchmarks/test_validate_benchmark.py, validate.near_pairs_vs_pair_loop
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**63, size=800, dtype=np.int64).astype(np.uint64)
    hashes[1::100] = hashes[::100] ^ np.uint64(0b101)  # eight planted pairs 2 bits apart
    got = near_pairs(hashes, 4)
    assert got.shape[1] == 2 and got.dtype == np.int64
    assert {(100 * k, 100 * k + 1) for k in range(8)} <= {tuple(p) for p in got.tolist()}
    assert all(hamming(int(hashes[i]), int(hashes[j])) <= 4 for i, j in got.tolist())


# --------------------------------------------------------------- validate_records


@pytest.fixture
def dataset(tmp_path) -> Path:
    root = tmp_path / "data"
    # Distinct images.
    for i in range(4):
        put(root / "benign" / f"benign ({i + 1}).png", smooth(100 + i))
        put(root / "malignant" / f"malignant ({i + 1}).png", smooth(200 + i))
    # The same file filed under both labels: a label conflict.
    shared = put(root / "benign" / "benign (10).png", smooth(300))
    (root / "malignant" / "malignant (10).png").write_bytes(shared.read_bytes())
    # A noised, rescaled copy within one class: a near duplicate.
    base = smooth(400)
    put(root / "benign" / "benign (20).png", base)
    rng = np.random.default_rng(1)
    copy = np.asarray(
        Image.fromarray(base.astype(np.float32)).resize((80, 80), Image.Resampling.BILINEAR)
    )
    put(root / "benign" / "benign (21).png", copy + rng.normal(0, 0.01, copy.shape))
    # The same pixels stored as PNG and BMP: identical decoded pixels, different bytes.
    put(root / "malignant" / "malignant (30).png", smooth(500))
    put(root / "malignant" / "malignant (31).bmp", smooth(500))
    # An unreadable file.
    (root / "malignant" / "malignant (40).png").write_bytes(b"")
    return root


def test_validate_findings(dataset):
    scan = scan_folder(dataset)
    records, report, images = validate_records(scan, progress=False)
    assert report.n_files == 15
    assert report.class_counts == {"benign": 7, "malignant": 8}
    assert len(report.unreadable) == 1
    assert str(dataset / "malignant" / "malignant (40).png") in report.unreadable[0].reason

    exact = {frozenset(g) for g in report.exact_duplicate_groups}
    assert exact == {
        frozenset({"benign/benign (10)", "malignant/malignant (10)"}),
        frozenset({"malignant/malignant (30)", "malignant/malignant (31)"}),
    }
    assert report.near_duplicate_groups == [["benign/benign (20)", "benign/benign (21)"]]
    assert report.label_conflicts == [["benign/benign (10)", "malignant/malignant (10)"]]
    assert sorted(report.dropped) == ["benign/benign (10)", "malignant/malignant (10)"]

    ids = [r.id for r in records]
    assert "benign/benign (10)" not in ids and "malignant/malignant (10)" not in ids
    assert "malignant/malignant (40)" not in ids
    assert len(ids) == 12 and report.n_usable == 12
    assert report.usable_class_counts == {"benign": 6, "malignant": 6}
    assert set(images) == set(ids)
    assert images["benign/benign (21)"].shape == (80, 80)
    assert all(im.dtype == np.float32 for im in images.values())

    # Groups: near and exact copies share a group; distinct images are singletons.
    g = report.groups
    assert g["benign/benign (21)"] == g["benign/benign (20)"] == "benign/benign (20)"
    assert g["malignant/malignant (31)"] == "malignant/malignant (30)"
    for i in range(4):
        rid = f"benign/benign ({i + 1})"
        assert g[rid] == rid
    singletons = [rid for rid, gid in g.items() if gid == rid]
    assert len(set(g.values())) == len(singletons)
    assert Counter(g.values())["benign/benign (20)"] == 2

    assert report.size_stats["width"] == {"min": 64, "max": 80, "median": 64.0}
    assert report.size_stats["modes"] == {"L": 14}
    assert report.size_stats["formats"] == {"PNG": 13, "BMP": 1}


def test_validate_keep_conflicts(dataset):
    records, report, images = validate_records(
        scan_folder(dataset), drop_conflicts=False, progress=False
    )
    ids = {r.id for r in records}
    assert {"benign/benign (10)", "malignant/malignant (10)"} <= ids
    assert report.label_conflicts and report.dropped == []
    assert report.groups["malignant/malignant (10)"] == "benign/benign (10)"
    assert len(images) == len(records) == 14


def test_distinct_images_not_grouped(tmp_path):
    for i in range(12):
        put(tmp_path / ("a" if i % 2 else "b") / f"{i}.png", smooth(1000 + i))
    records, report, _ = validate_records(scan_folder(tmp_path), progress=False)
    assert len(records) == 12
    assert report.exact_duplicate_groups == [] and report.near_duplicate_groups == []
    assert report.label_conflicts == [] and report.dropped == []
    assert all(gid == rid for rid, gid in report.groups.items())


def test_report_to_dict_and_markdown(dataset):
    _, report, _ = validate_records(scan_folder(dataset), progress=False)
    assert isinstance(report, ValidationReport)
    d = json.loads(json.dumps(report.to_dict()))
    assert d["n_files"] == 15 and len(d["label_conflicts"]) == 1
    assert d["unreadable"][0]["path"].endswith("malignant (40).png")
    md = report.to_markdown()
    assert "Image files found: 15 (benign 7, malignant 8)" in md
    assert "Usable images: 12" in md
    assert "Unreadable images: 1" in md
    assert "Exact-duplicate groups: 2 (4 images)" in md
    assert "Near-duplicate groups (pHash Hamming distance <= 4): 1 (2 images)" in md
    assert "Label conflicts: 1 groups (2 images, dropped" in md
    assert "`benign/benign (10)`, `malignant/malignant (10)`" in md
    assert "Image width: 64-80 px" in md
    short = report.to_markdown(max_examples=1)
    assert "showing 1 of 2" in short


def test_threshold_validation(dataset):
    scan = scan_folder(dataset)
    for bad, problem in ((-1, "must be between 0 and 64, got -1"), (65, "must be between 0 and 64, got 65"),
                         (2.5, "must be an integer, got 2.5"), (True, "must be an integer, got True")):
        with pytest.raises(ConfigError, match=f"near_dup_threshold: {problem}"):
            validate_records(scan, near_dup_threshold=bad, progress=False)
    _, report, _ = validate_records(scan, near_dup_threshold=0, progress=False)
    assert report.near_dup_threshold == 0


# --------------------------------------------------------------------------- BUSI


@pytest.mark.busi
def test_busi_scan_and_validate():
    if not BUSI.is_dir():
        pytest.skip(
            f"BUSI not found at {BUSI.resolve()}: put the dataset at ../shared/datasets/busi"
        )
    scan = scan_folder(BUSI)
    assert Counter(r.label for r in scan.records) == BUSI_COUNTS
    records, report, images = validate_records(scan, progress=False)
    assert report.class_counts == BUSI_COUNTS
    assert report.unreadable == []
    assert len(records) == report.n_usable == len(images)
    assert set(report.groups) == {r.id for r in scan.records}
    print()
    print(report.to_markdown(max_examples=10))
