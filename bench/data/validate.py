"""Check a scanned dataset before it is used: unreadable files, duplicates, label conflicts.

Public medical image sets are rarely curated for duplicates. A duplicate that lands in
both the training and the test split inflates test scores, and the same image filed
under two labels is a label error. :func:`validate_records` decodes every image once and

- lists files that cannot be decoded (with the :class:`~bench.errors.DataError` message);
- finds *exact* duplicates: the same file bytes (SHA-256), or the same decoded pixels;
- finds *near* duplicates: 64-bit DCT perceptual hashes within a Hamming distance;
- joins exact and near links into groups (connected components, union-find). Splits
  must keep each group whole (see :mod:`bench.data.splits`);
- flags groups whose members carry different labels (label conflicts) and, by
  default, drops them, since no label can be trusted for them.

Duplicates within one class are kept: they are harmless once they share a split.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np
from PIL import Image
from scipy.fft import dctn
from tqdm import tqdm

from bench.data.loader import PROGRESS_MIN_ITEMS, Record, Scan, Skipped, read_grey_info
from bench.errors import ConfigError, DataError, printable

# pHash geometry: images are shrunk to HASH_RESIZE x HASH_RESIZE, and the top-left
# HASH_SIZE x HASH_SIZE block of the 2-D DCT gives the 64 bits.
HASH_RESIZE = 32
HASH_SIZE = 8

_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)

# Pairwise distances are computed in row blocks of about this many entries, so memory
# stays bounded (tens of MB) for large datasets.
_BLOCK_ENTRIES = 1 << 22


def content_hash(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of the file's bytes."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError as exc:
        raise DataError(path, f"cannot read file: {exc.strerror or exc}") from exc
    return h.hexdigest()


def perceptual_hash(image: np.ndarray) -> int:
    """64-bit DCT perceptual hash (pHash) of a grey image with values in [0, 1].

    The image is resized to 32x32 (antialiased Lanczos), transformed with an orthonormal
    2-D DCT-II, and the top-left 8x8 block of low-frequency coefficients is kept. The
    median is taken over the 63 coefficients without the DC term; bit i (row-major, most
    significant bit first) is set when coefficient i is above that median. The DC bit
    therefore only says whether the mean brightness is above the median AC coefficient
    (almost always 1), so in practice 63 bits carry information. Because exactly 31 of
    the 63 AC coefficients exceed their median (when they are distinct), distances
    between hashes of ordinary images are even numbers.

    Similar-looking images (re-encoded, rescaled, slightly noised) get hashes a few bits
    apart; unrelated images differ in about 32 bits.
    """
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"perceptual_hash needs a 2-D grey image, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("perceptual_hash: image contains NaN or infinite values")
    pil = Image.fromarray(np.ascontiguousarray(arr))
    small = np.asarray(
        pil.resize((HASH_RESIZE, HASH_RESIZE), Image.Resampling.LANCZOS), dtype=np.float64
    )
    coeffs = dctn(small, type=2, norm="ortho")[:HASH_SIZE, :HASH_SIZE].ravel()
    # Round-off noise (~1e-16) would give a flat image a random hash; snap it to zero so
    # all flat images hash alike (DC bit only).
    coeffs[np.abs(coeffs) < 1e-6] = 0.0
    median = np.median(coeffs[1:])
    bits = coeffs > median
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return value


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two hashes."""
    return (int(a) ^ int(b)).bit_count()


def _popcount64(x: np.ndarray) -> np.ndarray:
    """Bit count of every element of a uint64 array (SWAR; overflow wraps on purpose)."""
    x = x - ((x >> np.uint64(1)) & _M1)
    x = (x & _M2) + ((x >> np.uint64(2)) & _M2)
    x = (x + (x >> np.uint64(4))) & _M4
    return ((x * _H01) >> np.uint64(56)).astype(np.uint8)


def near_pairs(hashes: np.ndarray, threshold: int) -> np.ndarray:
    """All index pairs (i, j), i < j, whose hashes differ in at most ``threshold`` bits.

    ``hashes`` is a uint64 array; returns an (M, 2) int64 array, vectorised in row blocks.
    """
    h = np.asarray(hashes, dtype=np.uint64)
    n = h.shape[0]
    if n < 2:
        return np.zeros((0, 2), dtype=np.int64)
    block = max(1, _BLOCK_ENTRIES // n)
    found = []
    for start in range(0, n - 1, block):
        stop = min(n - 1, start + block)
        # Row r (global index start + r) is compared with columns start + 1 .. n - 1;
        # only columns j > i are kept.
        cols = h[start + 1 :]
        dist = _popcount64(h[start:stop, None] ^ cols[None, :])
        ii, jj = np.nonzero(dist <= threshold)
        gi = ii + start
        gj = jj + start + 1
        keep = gj > gi
        if keep.any():
            found.append(np.stack([gi[keep], gj[keep]], axis=1))
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    return np.concatenate(found).astype(np.int64)


class _UnionFind:
    """Disjoint sets over 0..n-1; the root of a set is always its smallest index."""

    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if ra < rb:
            self.parent[rb] = ra
        else:
            self.parent[ra] = rb

    def components(self) -> dict[int, list[int]]:
        comps: dict[int, list[int]] = {}
        for i in range(len(self.parent)):
            comps.setdefault(self.find(i), []).append(i)
        return comps


@dataclass
class ValidationReport:
    """What :func:`validate_records` found.

    - ``n_files``: image files found by the scan (before anything is removed).
    - ``class_counts``: images found per class (before anything is removed);
      ``usable_class_counts``: per class after removing unreadable and dropped images.
    - ``skipped``: entries the scan did not use; ``unreadable``: images and masks that
      failed to decode (reason = the DataError message; a mask's starts with "mask of").
    - ``exact_duplicate_groups``: record ids with identical bytes or identical pixels.
    - ``near_duplicate_groups``: duplicate groups (exact + pHash links) holding at least
      two different images, i.e. not explained by exact copies alone.
    - ``label_conflicts``: duplicate groups whose members have more than one label.
    - ``size_stats``: width/height min, max, median (after EXIF orientation) and counts
      of the stored image modes and formats.
    - ``groups``: record id -> group id (the first record id of its group; a record with
      no duplicate is its own group). Covers every readable record, dropped ones included.
    - ``dropped``: ids removed because of label conflicts.
    - ``sha256``: record id -> SHA-256 of the file, for every readable record.
    """

    n_files: int
    class_counts: dict[str, int]
    skipped: list[Skipped]
    unreadable: list[Skipped]
    exact_duplicate_groups: list[list[str]]
    near_duplicate_groups: list[list[str]]
    label_conflicts: list[list[str]]
    size_stats: dict
    groups: dict[str, str]
    dropped: list[str]
    usable_class_counts: dict[str, int] = field(default_factory=dict)
    sha256: dict[str, str] = field(default_factory=dict)  # record id -> file digest (readable records)
    n_usable: int = 0
    near_dup_threshold: int = 4
    conflicts_dropped: bool = True

    def to_dict(self) -> dict:
        """Plain JSON-serialisable dict."""
        return asdict(self)

    def check_usable(self, root) -> None:
        """Raise :class:`DataError` (at ``root``) when a class has no usable image left,
        e.g. every file of it was unreadable or dropped: training on the rest would
        silently turn a two-class task into a one-class one."""
        empty = [label for label, n in self.usable_class_counts.items() if n == 0]
        if empty:
            found = ", ".join(f"{label} {self.class_counts.get(label, 0)}" for label in empty)
            raise DataError(
                root,
                f"no usable images left in class(es) {', '.join(map(repr, empty))} "
                f"(image files found: {found})",
                "see the Unreadable and Label conflicts sections of the validation report",
            )

    def to_markdown(self, max_examples: int = 5) -> str:
        """Readable summary: counts, then up to ``max_examples`` example groups per
        duplicate finding, then every unreadable and every skipped file with its reason."""

        def counts(d: dict[str, int]) -> str:
            return ", ".join(f"{k} {v}" for k, v in d.items()) or "none"

        def n_members(groups: list[list[str]]) -> int:
            return sum(len(g) for g in groups)

        s = self.size_stats
        lines = ["# Dataset validation", ""]
        lines.append(f"- Image files found: {self.n_files} ({counts(self.class_counts)})")
        lines.append(f"- Usable images: {self.n_usable} ({counts(self.usable_class_counts)})")
        lines.append(f"- Skipped entries: {len(self.skipped)}")
        lines.append(f"- Unreadable images: {len(self.unreadable)}")
        lines.append(
            f"- Exact-duplicate groups: {len(self.exact_duplicate_groups)} "
            f"({n_members(self.exact_duplicate_groups)} images)"
        )
        lines.append(
            f"- Near-duplicate groups (pHash Hamming distance <= {self.near_dup_threshold}): "
            f"{len(self.near_duplicate_groups)} ({n_members(self.near_duplicate_groups)} images)"
        )
        action = "dropped" if self.conflicts_dropped else "kept"
        lines.append(
            f"- Label conflicts: {len(self.label_conflicts)} groups "
            f"({n_members(self.label_conflicts)} images, {action}; {len(self.dropped)} images dropped)"
        )
        if s.get("width"):
            w, h = s["width"], s["height"]
            lines.append(
                f"- Image width: {w['min']}-{w['max']} px (median {w['median']:g}); "
                f"height: {h['min']}-{h['max']} px (median {h['median']:g})"
            )
            lines.append(
                f"- Stored modes: {counts(s.get('modes', {}))}; formats: {counts(s.get('formats', {}))}"
            )

        def section(title: str, groups: list[list[str]]) -> None:
            if not groups:
                return
            lines.extend(
                ["", f"## {title} (showing {min(len(groups), max_examples)} of {len(groups)})", ""]
            )
            for g in groups[:max_examples]:
                lines.append("- " + ", ".join(f"`{m}`" for m in g))

        section("Label conflicts", self.label_conflicts)
        section("Exact duplicates", self.exact_duplicate_groups)
        section("Near duplicates", self.near_duplicate_groups)
        # Per-file problems are listed in full, never cut to examples: each file that is
        # not used must be findable in the report with its reason.
        for title, items in (("Unreadable", self.unreadable), ("Skipped", self.skipped)):
            if items:
                lines.extend(["", f"## {title} ({len(items)})", ""])
                lines.extend(f"- `{printable(it.path)}`: {it.reason}" for it in items)
        return "\n".join(lines) + "\n"


def _pixel_digest(grey: np.ndarray) -> str:
    # Quantised to 16 bits so that the same picture stored as L, RGB or 16-bit (whose
    # float conversions can differ in the last bit) still counts as identical.
    q = np.round(grey.astype(np.float64) * 65535.0).astype(np.uint16)
    h = hashlib.sha256(np.asarray(q.shape, dtype=np.int64).tobytes())
    h.update(q.tobytes())
    return h.hexdigest()


def _stats(values: list[int]) -> dict:
    if not values:
        return {}
    return {"min": int(min(values)), "max": int(max(values)), "median": float(np.median(values))}


def _check_masks(scan: Scan, decoded: dict[str, np.ndarray] | None = None) -> list[Skipped]:
    """Decode every mask once (into ``decoded``, keyed by its image's id, when given). An
    unreadable mask is returned with its reason and detached from its image (``scan.masks``
    is edited in place) so no later stage trips over it; the image itself stays usable."""
    bad = []
    for rid, path in list(scan.masks.items()):
        try:
            grey, _ = read_grey_info(path)
            if decoded is not None:
                decoded[rid] = grey
        except DataError as exc:
            bad.append(Skipped(printable(path), f"mask of {rid}: {exc}"))
            del scan.masks[rid]
    return bad


def validate_records(
    scan: Scan,
    near_dup_threshold: int = 4,
    drop_conflicts: bool = True,
    progress: bool = True,
    masks_out: dict[str, np.ndarray] | None = None,
) -> tuple[list[Record], ValidationReport, dict[str, np.ndarray]]:
    """Decode and check every record of ``scan``.

    Returns ``(records, report, images)``: the usable records (unreadable ones removed;
    members of label-conflict groups removed when ``drop_conflicts``, else kept and
    listed), the :class:`ValidationReport`, and the decoded grey images (native size,
    float32 in [0, 1]) of the usable records keyed by record id, so callers need not decode
    twice. ``near_dup_threshold`` is the largest pHash Hamming distance counted as a near
    duplicate (0 disables near matching beyond identical hashes; negative is an error).
    A progress bar is shown when ``progress`` and there are more than 200 records.
    Masks are decoded too; an unreadable one is reported and removed from ``scan.masks``;
    ``masks_out`` (a dict) receives the decoded masks keyed by record id.
    """
    if isinstance(near_dup_threshold, bool) or not isinstance(near_dup_threshold, int | np.integer):
        raise ConfigError("near_dup_threshold", f"must be an integer, got {near_dup_threshold!r}")
    if not 0 <= near_dup_threshold <= 64:
        raise ConfigError(
            "near_dup_threshold", f"must be between 0 and 64, got {near_dup_threshold}"
        )

    all_records = list(scan.records)
    class_counts = dict(Counter(r.label for r in all_records))
    ok: list[Record] = []
    images: dict[str, np.ndarray] = {}
    infos: list[dict] = []
    byte_digests: list[str] = []
    pixel_digests: list[str] = []
    phashes: list[int] = []
    unreadable: list[Skipped] = []

    bar = tqdm(
        all_records,
        desc="validating images",
        unit="img",
        disable=not progress or len(all_records) <= PROGRESS_MIN_ITEMS,
    )
    for rec in bar:
        try:
            digest = content_hash(rec.path)
            grey, info = read_grey_info(rec.path)
        except DataError as exc:
            unreadable.append(Skipped(printable(rec.path), str(exc)))
            continue
        ok.append(rec)
        images[rec.id] = grey
        infos.append(info)
        byte_digests.append(digest)
        pixel_digests.append(_pixel_digest(grey))
        phashes.append(perceptual_hash(grey))
    unreadable.extend(_check_masks(scan, masks_out))

    n = len(ok)
    exact = _UnionFind(n)
    for digests in (byte_digests, pixel_digests):
        first: dict[str, int] = {}
        for i, d in enumerate(digests):
            exact.union(first.setdefault(d, i), i)

    full = _UnionFind(n)
    for i in range(n):
        full.union(exact.find(i), i)
    pairs = near_pairs(np.array(phashes, dtype=np.uint64), near_dup_threshold)
    for i, j in pairs.tolist():
        full.union(i, j)

    exact_groups = [[ok[i].id for i in m] for m in exact.components().values() if len(m) > 1]
    near_groups: list[list[str]] = []
    conflicts: list[list[str]] = []
    groups: dict[str, str] = {}
    for root, members in full.components().items():
        for i in members:
            groups[ok[i].id] = ok[root].id
        if len(members) < 2:
            continue
        ids = [ok[i].id for i in members]
        if len({exact.find(i) for i in members}) > 1:
            near_groups.append(ids)
        if len({ok[i].label for i in members}) > 1:
            conflicts.append(ids)

    dropped: list[str] = []
    if drop_conflicts:
        dropped = [rid for g in conflicts for rid in g]
        gone = set(dropped)
        usable = [r for r in ok if r.id not in gone]
        for rid in dropped:
            images.pop(rid, None)
    else:
        usable = ok

    size_stats = {
        "width": _stats([info["width"] for info in infos]),
        "height": _stats([info["height"] for info in infos]),
        "modes": dict(Counter(info["mode"] for info in infos).most_common()),
        "formats": dict(Counter(info["format"] for info in infos).most_common()),
    }
    usable_counts = Counter(r.label for r in usable)
    report = ValidationReport(
        n_files=len(all_records),
        class_counts=class_counts,
        skipped=list(scan.skipped),
        unreadable=unreadable,
        exact_duplicate_groups=exact_groups,
        near_duplicate_groups=near_groups,
        label_conflicts=conflicts,
        size_stats=size_stats,
        groups=groups,
        dropped=dropped,
        usable_class_counts={label: usable_counts.get(label, 0) for label in class_counts},
        n_usable=len(usable),
        near_dup_threshold=int(near_dup_threshold),
        conflicts_dropped=bool(drop_conflicts),
        sha256={r.id: d for r, d in zip(ok, byte_digests, strict=True)},
    )
    return usable, report, images
