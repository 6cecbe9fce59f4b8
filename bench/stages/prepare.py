"""prepare: dataset → validated, split, resized arrays + manifest + validation report.

Reads the embedded phantom (generated into ``<out>/phantom``) or a folder-per-class
dataset, validates it (unreadable files, duplicates, label conflicts), splits it
stratified and group-aware by ``split.ratios`` (duplicate groups never straddle splits) —
or, for a phantom with its own val/test sets (``phantom.val_per_class``/``test_per_class``),
by sample index — resizes, optionally despeckles with SRAD, and writes:

- ``dataset.npz``: images, labels, ids, splits (and lesion masks for the phantom)
- ``manifest.csv``: id, label, group, split, content hash, source path
- ``validation.json`` / ``validation.md``: what validation found and dropped
- ``meta.json``: dataset name, classes, image size, split sizes and rule, preprocessing
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.config import Params
from bench.data.loader import Record, resize, scan_folder
from bench.data.phantom import file_index, generate_phantom, set_of, write_phantom
from bench.data.splits import split_summary, stratified_group_split
from bench.data.srad import srad
from bench.data.validate import validate_records
from bench.errors import DataError
from bench.io import save_npz, write_json, write_text
from bench.stages.common import add_params_args, log, params_from_args, writing
from bench.typed import to_dict


def dataset_root(params: Params, out: Path) -> Path:
    """Where the images come from: a user folder, or the phantom written under ``out``."""
    if params.dataset.source == "folder":
        return Path(params.dataset.path).expanduser()
    root = out / "phantom"
    if root.exists():  # regenerate from the seed: never mix in files of an earlier run
        shutil.rmtree(root)
    ph = params.phantom
    log.info("generating the phantom: %s, %d px, difficulty %.2f, seed %d",
             ph.describe(), ph.size, ph.difficulty, ph.seed)
    write_phantom(root, generate_phantom({c: ph.total_per_class() for c in params.dataset.classes},
                                         ph.size, ph.seed, ph.difficulty))
    return root


def phantom_set_splits(records: list[Record], groups: list[str], per_split: dict[str, int],
                       root: Path) -> np.ndarray:
    """Each phantom image's split from its sample index (:func:`bench.data.phantom.set_of` with
    ``PhantomParams.per_split``), after validation. Raises :class:`DataError` when a duplicate group
    would straddle two splits (independently drawn phantom samples should never be duplicates) or
    when validation left a split without a class."""
    splits = np.array([set_of(file_index(r.label, Path(r.path).stem), per_split) for r in records])
    members: dict[str, list[int]] = {}
    for k, group in enumerate(groups):
        members.setdefault(group, []).append(k)
    for rows in members.values():
        if len({splits[k] for k in rows}) > 1:
            found = ", ".join(f"{records[k].id} ({splits[k]})" for k in rows)
            raise DataError(root, f"the duplicate group {found} straddles the phantom's fixed splits",
                            "independently drawn phantom samples should never be near-duplicates: lower "
                            "dataset.near_duplicate_threshold or use another phantom.seed, and report it")
    counts = split_summary([r.label for r in records], splits)
    for name in per_split:
        missing = sorted({r.label for r in records} - set(counts.get(name, {})))
        if missing:
            key = "n_per_class" if name == "train" else f"{name}_per_class"
            raise DataError(root, f"no {', '.join(missing)} image is left in the phantom's {name} set after "
                            "validation", f"raise phantom.{key}")
    return splits


def assign_splits(params: Params, records: list[Record], groups: list[str], root: Path) -> tuple[np.ndarray, str]:
    """(split of each record, the rule used: ``"phantom sets"`` or ``"ratios"``, for meta.json)."""
    if params.dataset.source == "phantom" and params.phantom.has_sets:
        return phantom_set_splits(records, groups, params.phantom.per_split(), root), "phantom sets"
    labels = [r.label for r in records]
    return stratified_group_split(labels, groups, params.split.ratios, params.split.seed), "ratios"


def despeckle(images: np.ndarray, params: Params) -> np.ndarray:
    """SRAD (Yu & Acton 2002): scale ``srad_scale`` of the multi-scale series with
    ``srad_iterations`` (n_t) iterations per scale (Panigrahi 2024: n_t = 10, L = 8),
    i.e. n_t × scale iterations."""
    pp = params.preprocess
    n_iter = pp.srad_iterations * pp.srad_scale
    return np.stack([srad(image, n_iter=n_iter, dt=pp.srad_dt) for image in images]).astype(np.float32)


def load_masks(decoded: dict[str, np.ndarray], ids: list[str], size: int) -> np.ndarray | None:
    """Lesion masks (phantom; BUSI's public release; decoded by validation) resized like the
    images, or None unless every image has one."""
    if not ids or any(i not in decoded for i in ids):
        return None
    return np.stack([resize(decoded[i], size) for i in ids]) >= 0.5


def prepare_inputs(params: Params) -> dict:
    """The parameters this stage's output depends on."""
    return to_dict({k: getattr(params, k) for k in ("dataset", "phantom", "split", "preprocess")})


def prepare(params: Params, out: Path) -> dict:
    started = time.perf_counter()
    (out / "meta.json").unlink(missing_ok=True)  # written last: never beside arrays of another run
    root = dataset_root(params, out)
    scan = scan_folder(root, params.dataset.classes)
    decoded_masks: dict[str, np.ndarray] = {}
    records, report, decoded = validate_records(scan, params.dataset.near_duplicate_threshold,
                                                params.dataset.drop_label_conflicts, masks_out=decoded_masks)
    # the report first, so that a refusal below can be read (tests/reliability/test_files.py)
    write_json(out / "validation.json", report.to_dict())
    write_text(out / "validation.md", report.to_markdown())
    if not records:
        raise DataError(root, "no usable images after validation", f"see {out / 'validation.md'}")
    report.check_usable(root)
    ids = [r.id for r in records]
    labels = np.array([int(r.label == params.dataset.positive) for r in records], np.int64)
    groups = [report.groups.get(r.id, r.id) for r in records]
    splits, split_rule = assign_splits(params, records, groups, root)
    size = params.preprocess.image_size
    images = np.stack([resize(decoded[r.id], size) for r in records])  # decoded once, by validation
    if params.preprocess.srad:
        images = despeckle(images, params)
    masks = load_masks(decoded_masks, ids, size)
    arrays = {"images": images.astype(np.float32), "labels": labels, "ids": np.array(ids), "splits": splits}
    if masks is not None:
        arrays["masks"] = masks
    save_npz(out / "dataset.npz", **arrays)
    manifest = pd.DataFrame({"id": ids, "label": [r.label for r in records], "group": groups,
                             "split": splits, "sha256": [report.sha256[r.id] for r in records],
                             "path": [str(Path(r.path).relative_to(root)) for r in records]})
    write_text(out / "manifest.csv", manifest.to_csv(index=False))
    meta = {"dataset": params.dataset.name, "source": params.dataset.source,
            "root": str(root), "classes": params.dataset.classes, "positive": params.dataset.positive,
            "image_size": size, "srad": params.preprocess.srad, "n_images": len(ids),
            "split_counts": split_summary([r.label for r in records], splits), "split_rule": split_rule,
            "validation": {"n_files": report.n_files, "dropped": len(report.dropped),
                           "unreadable": len(report.unreadable), "skipped": len(report.skipped),
                           "exact_duplicate_groups": len(report.exact_duplicate_groups),
                           "near_duplicate_groups": len(report.near_duplicate_groups),
                           "label_conflicts": len(report.label_conflicts)},
            "has_masks": masks is not None, "inputs": prepare_inputs(params),
            "seconds": round(time.perf_counter() - started, 2)}
    write_json(out / "meta.json", meta)
    log.info("prepared %d images (%s, split by %s) in %.1fs", len(ids), meta["split_counts"], split_rule,
             meta["seconds"])
    return meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="augbench prepare", description=__doc__.splitlines()[0])
    add_params_args(parser)
    parser.add_argument("--out", default="data/prepared", help="output folder")
    args = parser.parse_args(argv)
    with writing(args.out):
        prepare(params_from_args(args), Path(args.out))
    return 0
