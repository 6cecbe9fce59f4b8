"""prepare: dataset → validated, split, resized arrays + manifest + validation report.

Reads the embedded phantom (generated into ``<out>/phantom``), a folder-per-class dataset, a
MedMNIST v2 .npz (written into ``<out>/medmnist``; its official splits are kept) or a CSV list
of images with optional patient groups (bench.data.sources), validates it (unreadable files, duplicates, label conflicts), splits it
stratified and group-aware by ``split.ratios`` (duplicate groups never straddle splits) —
or, for a phantom with its own val/test sets (``phantom.val_per_class``/``test_per_class``),
by sample index; or, with ``split.mode: repeated-kfold``, into ``split.repeats`` × ``split.folds``
replicate splits (``splits`` is then replicate 0's) — resizes, optionally despeckles with SRAD,
and writes:

- ``dataset.npz``: images, labels, ids, splits (and lesion masks for the phantom; every
  replicate's split as ``replicate_splits``, shape (R, N), under repeated k-fold)
- ``manifest.csv``: id, label, group, split, content hash, source path (and ``replicate<r>``)
- ``validation.json`` / ``validation.md``: what validation found and dropped
- ``meta.json``: dataset name, classes, image size, split sizes and rule, preprocessing, and the
  dataset card (name, citation, licence, whether the copy matched it; bench.data.cards)
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.config import Params
from bench.data.cards import check_copy, dataset_card, dataset_classes
from bench.data.loader import Record, resize
from bench.data.phantom import file_index, generate_phantom, set_of, write_phantom
from bench.data.sources import (
    Source,
    describe_straddling,
    folder_source,
    merge_groups,
    official_splits,
    open_source,
    straddling_groups,
)
from bench.data.splits import repeated_stratified_group_kfold, split_summary, stratified_group_split
from bench.data.srad import srad_scale_image
from bench.data.validate import validate_records
from bench.errors import ConfigError, DataError
from bench.io import save_npz, write_json, write_text
from bench.stages.common import add_params_args, log, params_from_args, writing
from bench.typed import to_dict


def dataset_root(params: Params, out: Path, classes: list[str]) -> Path:
    """Where the images come from: a user folder, or the phantom written under ``out``."""
    if params.dataset.source == "folder":
        return Path(params.dataset.path).expanduser()
    root = out / "phantom"
    if root.exists():  # regenerate from the seed: never mix in files of an earlier run
        shutil.rmtree(root)
    ph = params.phantom
    log.info("generating the phantom: %s, %d px, difficulty %.2f, seed %d",
             ph.describe(), ph.size, ph.difficulty, ph.seed)
    write_phantom(root, generate_phantom({c: ph.total_per_class() for c in classes},
                                         ph.size, ph.seed, ph.difficulty))
    return root


def dataset_input(params: Params, out: Path, classes: list[str]) -> Source:
    """The dataset input with the class list ``classes`` (bench.data.cards.dataset_classes): the
    phantom written under ``out``, or the user's folder, MedMNIST .npz (its images written under
    ``out/medmnist``; label k named ``classes[k]``) or CSV (bench.data.sources)."""
    if params.dataset.source in ("phantom", "folder"):
        return folder_source(dataset_root(params, out, classes), classes, kind=params.dataset.source)
    return open_source(params.dataset.source, params.dataset.path, classes, out / "medmnist")


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


def replicate_splits(params: Params, records: list[Record], groups: list[str]) -> np.ndarray | None:
    """Under ``split.mode: repeated-kfold``, every replicate's split of the records, shape
    ``(repeats × folds, N)`` (bench.data.splits.repeated_stratified_group_kfold); None otherwise."""
    sp = params.split
    if not sp.n_replicates:
        return None
    return repeated_stratified_group_kfold([r.label for r in records], groups, sp.folds, sp.repeats,
                                           sp.val_share, sp.seed)


def assign_splits(params: Params, records: list[Record], groups: list[str], root: Path,
                  source: Source | None = None) -> tuple[np.ndarray, str]:
    """(split of each record, the rule used: ``"official"`` (an input's own splits: MedMNIST),
    ``"phantom sets"`` or ``"ratios"``, for meta.json)."""
    if source is not None and source.splits:
        return official_splits(records, source), "official"
    if params.dataset.source == "phantom" and params.phantom.has_sets:
        return phantom_set_splits(records, groups, params.phantom.per_split(), root), "phantom sets"
    labels = [r.label for r in records]
    return stratified_group_split(labels, groups, params.split.ratios, params.split.seed), "ratios"


def despeckle(images: np.ndarray, params: Params) -> np.ndarray:
    """SRAD (Yu & Acton 2002, q0 over the minimum-CoV window): scale ``srad_scale`` (L) of
    Panigrahi 2024's multi-scale series with ``srad_iterations`` (n_t) iterations per scale
    (n_t = 10, L = 8), i.e. each image after n_t × L iterations (bench.data.srad)."""
    pp = params.preprocess
    return np.stack([srad_scale_image(image, n_t=pp.srad_iterations, scale=pp.srad_scale, dt=pp.srad_dt)
                     for image in images]).astype(np.float32)


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
    card = dataset_card(params.dataset)  # first: a card error stops the stage before any work
    classes, positive = dataset_classes(params.dataset, card)
    source = dataset_input(params, out, classes)
    root, scan = source.origin, source.scan
    if source.splits and params.split.n_replicates:
        raise ConfigError("split.mode", f"dataset.source {source.kind!r} keeps its official train/val/test splits, "
                          "and repeated-kfold would draw new ones", "use split.mode: fixed for this dataset")
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
    labels = np.array([int(r.label == positive) for r in records], np.int64)
    groups = [report.groups.get(r.id, r.id) for r in records]
    if source.groups:  # the input's own groups (a CSV's group/patient column), joined with the duplicate groups
        groups = merge_groups(ids, source.groups, report.groups)
    replicates = replicate_splits(params, records, groups)  # None unless split.mode is repeated-kfold
    splits, split_rule = ((replicates[0], "repeated-kfold (replicate 0)") if replicates is not None
                          else assign_splits(params, records, groups, root, source))
    straddling = straddling_groups(ids, groups, splits)  # only an input's own splits can have any
    if straddling:
        log.warning(describe_straddling(straddling))
    size = params.preprocess.image_size
    images = np.stack([resize(decoded[r.id], size) for r in records])  # decoded once, by validation
    if params.preprocess.srad:
        images = despeckle(images, params)
    masks = load_masks(decoded_masks, ids, size)
    arrays = {"images": images.astype(np.float32), "labels": labels, "ids": np.array(ids), "splits": splits}
    if masks is not None:
        arrays["masks"] = masks
    if replicates is not None:
        arrays["replicate_splits"] = replicates
    save_npz(out / "dataset.npz", **arrays)
    manifest = pd.DataFrame({"id": ids, "label": [r.label for r in records], "group": groups,
                             "split": splits, "sha256": [report.sha256[r.id] for r in records],
                             "path": [source.location(r) for r in records]})
    for r, row in enumerate(replicates if replicates is not None else []):  # repeated k-fold: each replicate's split
        manifest[f"replicate{r}"] = row
    write_text(out / "manifest.csv", manifest.to_csv(index=False))
    meta = {"dataset": params.dataset.name, "source": params.dataset.source,
            "root": str(root), "classes": classes, "positive": positive,
            "image_size": size, "srad": params.preprocess.srad, "n_images": len(ids),
            "split_counts": split_summary([r.label for r in records], splits), "split_rule": split_rule,
            "validation": {"n_files": report.n_files, "dropped": len(report.dropped),
                           "unreadable": len(report.unreadable), "skipped": len(report.skipped),
                           "exact_duplicate_groups": len(report.exact_duplicate_groups),
                           "near_duplicate_groups": len(report.near_duplicate_groups),
                           "label_conflicts": len(report.label_conflicts)},
            "has_masks": masks is not None, "inputs": prepare_inputs(params),
            "straddling_groups": len(straddling), "card": check_copy(card, source) if card else None,
            "replicate_counts": None if replicates is None else [split_summary([r.label for r in records], row)
                                                                 for row in replicates],
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
