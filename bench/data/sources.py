"""The dataset inputs the prepare stage reads, as one :class:`Source` each.

``dataset.source`` picks the reader:

- ``folder``: ``root/<class>/<image files>`` (:func:`bench.data.loader.scan_folder`);
- ``csv``: a CSV with columns ``path``, ``label`` and optionally ``group`` or ``patient``
  (:mod:`bench.data.csvinput`); images of one group never straddle two splits;
- ``medmnist``: a MedMNIST v2 ``.npz`` file with its official train/val/test splits
  (:mod:`bench.data.medmnist`), kept as they are;
- ``phantom``: the embedded synthetic phantom, written as a folder by the prepare stage.

Every reader yields the same :class:`~bench.data.loader.Scan` of image files, so validation
(unreadable files, duplicates, label conflicts) is the same for all of them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.data.loader import Record, Scan, scan_folder
from bench.data.splits import SPLIT_NAMES, split_summary
from bench.errors import DataError, printable

SOURCES = ("phantom", "folder", "medmnist", "csv")


@dataclass
class Source:
    """What a dataset input holds, ready for validation.

    - ``kind``: one of :data:`SOURCES`; ``origin``: what the user pointed at (folder, ``.npz``
      or ``.csv`` file); ``root``: the folder the scanned files lie in (for MedMNIST, the
      folder its arrays were written to as PNG files).
    - ``groups``: record id -> group the input declares (a CSV's ``group``/``patient``
      column); images of one group go to one split.
    - ``splits``: record id -> the input's own split (MedMNIST's official splits); empty
      when the split is drawn by ``split.ratios``.
    - ``locations``: record id -> what the manifest's ``path`` column shows (default: the
      file's path relative to ``root``, or absolute when it lies outside).
    """

    kind: str
    origin: Path
    root: Path
    scan: Scan
    groups: dict[str, str] = field(default_factory=dict)
    splits: dict[str, str] = field(default_factory=dict)
    locations: dict[str, str] = field(default_factory=dict)

    def location(self, record: Record) -> str:
        """The manifest's ``path`` of ``record``."""
        if record.id in self.locations:
            return self.locations[record.id]
        path = Path(record.path)
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)


def folder_source(root: str | os.PathLike, classes: Sequence[str] | None, kind: str = "folder") -> Source:
    """A folder-per-class dataset (also the phantom, once written)."""
    root = Path(root).expanduser()
    return Source(kind=kind, origin=root, root=root, scan=scan_folder(root, classes))


def open_source(kind: str, path: str | os.PathLike, classes: Sequence[str] | None, workdir: Path) -> Source:
    """Read the dataset input ``path`` of kind ``folder``, ``csv`` or ``medmnist``. A MedMNIST
    file's images are written as PNG files under ``workdir`` (emptied first)."""
    if kind == "folder":
        return folder_source(path, classes)
    if kind == "csv":
        from bench.data.csvinput import csv_source

        return csv_source(path, classes)
    if kind == "medmnist":
        from bench.data.medmnist import medmnist_source

        return medmnist_source(path, classes, workdir)
    raise DataError(path, f"unknown dataset source {kind!r}", f"one of {', '.join(SOURCES)}")


def kind_of_path(path: str | os.PathLike) -> str:
    """The reader for ``path`` when none is named (``augbench validate``): ``.npz`` ->
    medmnist, ``.csv`` -> csv, anything else -> folder."""
    suffix = Path(path).suffix.lower()
    return {".npz": "medmnist", ".csv": "csv"}.get(suffix, "folder")


def merge_groups(ids: Sequence[str], *mappings: dict[str, str]) -> list[str]:
    """One group name per id, joining ids that share a group in any of ``mappings`` (id ->
    group; an id a mapping lacks is its own group there). Joined groups are the connected
    components; each is named by its members' first mapping's group names joined with "+"
    (e.g. two patients linked by a duplicate image: ``"p01+p07"``), made unique."""
    index = {rid: k for k, rid in enumerate(ids)}
    parent = list(range(len(ids)))

    def find(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for mapping in mappings:
        first: dict[str, int] = {}
        for rid, k in index.items():
            if rid in mapping:
                a, b = find(first.setdefault(str(mapping[rid]), k)), find(k)
                parent[max(a, b)] = min(a, b)
    members: dict[int, list[str]] = {}
    for rid, k in index.items():
        members.setdefault(find(k), []).append(rid)
    names: dict[int, str] = {}
    used: set[str] = set()
    for root, rids in members.items():
        own = mappings[0] if mappings else {}
        parts = list(dict.fromkeys(str(own.get(r, r)) for r in rids))
        name = "+".join(parts)
        while name in used:  # two components whose names collide stay apart
            name += "'"
        used.add(name)
        names[root] = name
    return [names[find(index[rid])] for rid in ids]


def official_splits(records: Sequence[Record], source: Source) -> np.ndarray:
    """The input's own split of each record (MedMNIST's official splits). Raises
    :class:`DataError` when validation left a split without one of the classes."""
    splits = np.array([source.splits[r.id] for r in records])
    counts = split_summary([r.label for r in records], splits)
    labels = sorted({r.label for r in records})
    for name in SPLIT_NAMES:
        missing = [c for c in labels if c not in counts.get(name, {})]
        if missing:
            raise DataError(source.origin, f"the official {name} split has no {', '.join(missing)} image "
                            "(after validation)", "augbench needs every class in train, val and test; see "
                            "validation.md for dropped files")
    return splits


def straddling_groups(ids: Sequence[str], groups: Sequence[str], splits: Sequence[str]) -> list[list[str]]:
    """The groups (duplicates, patients) whose members lie in more than one split: never with
    splits drawn here, possible with an input's own splits, which are kept as published."""
    members: dict[str, list[int]] = {}
    for k, group in enumerate(groups):
        members.setdefault(str(group), []).append(k)
    return [[ids[k] for k in rows] for rows in members.values() if len({str(splits[k]) for k in rows}) > 1]


def describe_straddling(groups: list[list[str]], limit: int = 3) -> str:
    """A log line for groups that straddle the official splits."""
    shown = "; ".join(", ".join(printable(m) for m in g) for g in groups[:limit])
    more = f" (and {len(groups) - limit} more)" if len(groups) > limit else ""
    return (f"{len(groups)} duplicate group(s) straddle the official splits, which are kept as published: "
            f"{shown}{more}")
