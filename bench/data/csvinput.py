"""A dataset listed in a CSV file: one row per image.

Columns (header row required, names matched case-insensitively):

- ``path``: the image file; a relative path resolves against the CSV file's folder;
- ``label``: its class, as written in ``dataset.classes``;
- ``group`` or ``patient`` (optional): images with the same value (e.g. one patient's
  images) always go to the same split. An empty cell makes the image its own group.

Other columns are ignored. Rows whose label is not one of the classes are listed as
skipped (as unlisted class folders are); a path listed twice, a missing column or an
empty cell is an error naming the CSV line. A listed file that cannot be read is reported
by validation like any unreadable image.
"""

from __future__ import annotations

import csv
import os
import unicodedata
from collections.abc import Sequence
from pathlib import Path, PurePath

from bench.data.loader import Record, Scan, Skipped, natural_key
from bench.data.sources import Source
from bench.errors import DataError, printable

REQUIRED_COLUMNS = ("path", "label")
GROUP_COLUMNS = ("group", "patient")


def _read_rows(csv_path: Path) -> tuple[dict[str, str], list[tuple[int, dict[str, str]]]]:
    """(lower-cased column name -> column as written, [(line number, row)])."""
    if not csv_path.is_file():
        what = "is a folder, not a CSV file" if csv_path.is_dir() else "CSV file not found"
        raise DataError(csv_path, what, "check dataset.path in params.yaml")
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            rows = [(reader.line_num, row) for row in reader]
    except UnicodeDecodeError as exc:
        raise DataError(csv_path, f"not UTF-8 text ({exc.reason} at byte {exc.start})",
                        "save the CSV as UTF-8") from None
    except csv.Error as exc:
        raise DataError(csv_path, f"not a readable CSV file ({exc})") from None
    columns: dict[str, str] = {}
    for name in header:
        key = (name or "").strip().lower()
        if key in columns:
            raise DataError(csv_path, f"column {key!r} appears twice in the header")
        columns[key] = name
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        found = ", ".join(repr(n) for n in header) or "none (empty file)"
        raise DataError(csv_path, f"missing column(s) {', '.join(missing)}; header has {found}",
                        "expected a header row with path, label and optionally group or patient")
    both = [c for c in GROUP_COLUMNS if c in columns]
    if len(both) > 1:
        raise DataError(csv_path, "has both a group and a patient column", "keep one of them")
    return columns, rows


def _cell(row: dict[str, str], columns: dict[str, str], key: str) -> str:
    value = row.get(columns[key])
    return "" if value is None else str(value).strip()


def csv_source(path: str | os.PathLike, classes: Sequence[str] | None) -> Source:
    """Read the CSV at ``path``. ``classes`` (in order) are the labels used; ``None`` uses
    every label found, natural-sorted. Record ids are ``"<label>/<path as written>"``."""
    csv_path = Path(path).expanduser()
    columns, rows = _read_rows(csv_path)
    if not rows:
        raise DataError(csv_path, "has a header but no rows", "add one row per image: path,label[,group]")
    base = csv_path.parent
    group_key = next((c for c in GROUP_COLUMNS if c in columns), None)
    found = sorted({_cell(r, columns, "label") for _, r in rows} - {""}, key=natural_key)
    wanted = list(classes) if classes is not None else found
    scan = Scan(records=[], masks={}, skipped=[], classes=[])
    groups: dict[str, str] = {}
    locations: dict[str, str] = {}
    seen: dict[str, int] = {}
    for line, row in rows:
        written, label = _cell(row, columns, "path"), _cell(row, columns, "label")
        for key, value in (("path", written), ("label", label)):
            if not value:
                raise DataError(csv_path, f"line {line}: empty {key} cell", "every row needs a path and a label")
        file = Path(written).expanduser()
        file = file if file.is_absolute() else base / file
        key = os.path.normcase(os.path.normpath(file))
        if key in seen:
            raise DataError(csv_path, f"line {line}: {printable(written)!r} is already listed on line {seen[key]}",
                            "list each image once")
        seen[key] = line
        if label not in wanted:
            scan.skipped.append(Skipped(printable(file), f"CSV line {line}: label {label!r} is not in the "
                                        f"class list ({', '.join(wanted)})"))
            continue
        rid = f"{label}/{unicodedata.normalize('NFC', PurePath(written).as_posix())}"
        scan.records.append(Record(id=rid, label=label, path=str(file)))
        locations[rid] = written
        if group_key and _cell(row, columns, group_key):
            groups[rid] = _cell(row, columns, group_key)
    present = {r.label for r in scan.records}
    absent = [c for c in wanted if c not in present]
    if absent:
        raise DataError(csv_path, f"no row has the label(s) {', '.join(map(repr, absent))}",
                        f"labels in the CSV: {', '.join(map(repr, found)) or 'none'}; set dataset.classes to two of them")
    if not any(Path(r.path).exists() for r in scan.records):
        raise DataError(csv_path, f"none of the {len(scan.records)} listed files exists (the first is "
                        f"{printable(scan.records[0].path)})",
                        f"relative paths resolve against the CSV's folder {printable(base)}")
    scan.classes = wanted
    return Source(kind="csv", origin=csv_path, root=base, scan=scan, groups=groups, locations=locations)
