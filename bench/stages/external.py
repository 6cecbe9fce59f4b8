"""external: every kept model of the matrix scored on an outside dataset (``external.path``).

The outside set is a folder-per-class root (``root/<class>/<images>``), a MedMNIST v2 ``.npz`` or
a CSV list (bench.data.sources). Its classes are matched to the models' by name: a folder's or CSV's
names are its own, a ``.npz``'s label k is named by ``external.classes`` or the file's dataset card
(never the training set's order). Every run of the matrix (and the A/A control's, as ``none-aa``)
keeps a model (``model.keras`` + ``model.json``, bench.models_io) that scores it, preprocessed
exactly as its train stage did. Writes to ``--out``:

* ``external.csv``: method, classifier, seed, the external AUC, accuracy, sensitivity and
  specificity (threshold ``evaluate.threshold``), n, and the run's internal test AUC (from its
  predictions.csv) beside them;
* ``external_duplicates.csv``: the near-duplicate pairs between the prepared data and the outside
  set (perceptual hashes within ``external.near_duplicate_threshold`` bits, bench.data.validate):
  external id, prepared id, its split, distance. Copies of training or validation images inflate
  the external figure (counted apart from copies of test images);
* ``external.md``: both, for the report; ``external.json`` (written last): counts and settings.

``external.path: null`` switches the stage off: with ``--skip-if-off`` (dvc.yaml) it writes only
``switched_off.json``. ``augbench predict`` (:func:`main_predict`) scores one kept model on one
set and writes per-image probabilities.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from bench import models_io
from bench.data import cards
from bench.data.loader import read_grey
from bench.data.sources import kind_of_path, open_source
from bench.data.validate import near_pairs, perceptual_hash
from bench.errors import ConfigError, DataError
from bench.io import write_json, write_text
from bench.metrics import binary_metrics
from bench.stages.common import (
    OPTIONAL_REPORTS,
    add_params_args,
    add_skip_if_off_arg,
    clear_keras,
    load_prepared,
    log,
    not_switched_off,
    params_from_args,
    switched_off,
    writing,
)
from bench.stages.evaluate import AA_METHOD, run_dir

REPORTS = OPTIONAL_REPORTS["external"]  # external.csv, external_duplicates.csv, external.md, external.json


@dataclass
class OutsideSet:
    """Decoded outside images: grey [0, 1] arrays of any size, their ids, paths and class names
    (None where the set has no labels for them)."""

    images: list[np.ndarray]
    ids: list[str]
    paths: list[str]
    labels: list[str | None]


def npz_classes(path: Path, given: list[str] | None, key: str) -> list[str]:
    """The class names of a MedMNIST ``.npz`` outside set, label k named ``[k]``: its own, never the
    training set's (BUSI's [benign, malignant] and BreastMNIST's label 0 = malignant would swap the
    classes, and the AUC with them). ``given`` (``key``: external.classes or --classes) when set,
    else the dataset card one of whose known copies has the file's name (bench.data.cards); the two
    must agree. A clear error when neither names them."""
    probe = SimpleNamespace(card=None, name=path.stem, source="medmnist", path=str(path), classes=None, positive=None)
    found = cards.dataset_card(probe)
    from_card = cards.card_classes(found[0], "medmnist") if found else None
    if given is not None:
        given = [str(c) for c in given]
        if from_card is not None and given != from_card:
            raise ConfigError(key, f"{given} disagrees with the dataset card {found[1]}, which names label k of "
                              f"{path.name} classes[k] = {from_card}", f"remove {key} or set it to {from_card}")
        return given
    if from_card is None:
        raise ConfigError(key, f"{path}: a MedMNIST .npz labels its images 0 and 1, and no dataset card names them "
                          "for this file", f"set {key} to [name of label 0, name of label 1] in the model's class "
                          "names, e.g. [malignant, benign] for BreastMNIST (label 0 = malignant)")
    log.info("external: class names of %s from the dataset card %s: %s (label k = classes[k])", path.name,
             found[1], from_card)
    return from_card


def read_outside_set(path: str | Path, classes: list[str], outside_classes: list[str] | None = None,
                     key: str = "external.classes") -> OutsideSet:
    """Read a folder-per-class root, MedMNIST ``.npz`` or CSV list at ``path``. A ``.npz``'s label k
    is named by its own class list (:func:`npz_classes`: ``outside_classes``, else its dataset card);
    folders and CSV lists name their classes themselves. Every class the set holds must be one of
    ``classes`` (the model's), matched by name; an unknown one is refused, naming it. Images of any
    size are accepted (resized later as the stages did)."""
    path = Path(path).expanduser()
    kind = kind_of_path(path)
    if not path.exists():
        raise DataError(path, "outside dataset not found", "set external.path (or --data) to a folder-per-class "
                        "root, a MedMNIST .npz or a CSV list")
    if kind != "medmnist" and outside_classes is not None:
        log.warning("%s: %s is used for a MedMNIST .npz only; a %s set names its classes itself", path, key, kind)
    names = npz_classes(path, outside_classes, key) if kind == "medmnist" else None
    with tempfile.TemporaryDirectory(prefix="augbench-external-") as work:
        source = open_source(kind, path, names, Path(work) / "medmnist")
        unknown = [c for c in source.scan.classes if c not in classes]
        if unknown:
            raise DataError(path, f"class {'folders' if kind == 'folder' else 'labels'} {unknown} are not classes "
                            f"of the model ({classes})", "rename them to the model's class names, or remove them")
        records = source.scan.records
        if not records:
            raise DataError(path, "no images", "expected root/<class>/<image files>")
        images = [read_grey(r.path) for r in records]  # DataError naming the file for a bad one
        return OutsideSet(images, [r.id for r in records], [source.location(r) for r in records],
                          [r.label for r in records])


def labels_of(outside: OutsideSet, positive: str) -> np.ndarray | None:
    """1 = positive, 0 = the other class; None unless every image is labelled and both classes occur
    (the metrics need both)."""
    if any(label is None for label in outside.labels):
        return None
    y = np.array([int(label == positive) for label in outside.labels], np.int64)
    return y if 0 < y.sum() < len(y) else None


def score(kept: models_io.KeptModel, outside: OutsideSet, threshold: float) -> tuple[pd.DataFrame, dict | None]:
    """Per-image probabilities of ``kept`` on ``outside``, and its metrics (None without both
    classes: see :func:`labels_of`)."""
    p = models_io.predict_kept(kept, outside.images)
    negative, positive = kept.classes
    table = pd.DataFrame({"id": outside.ids, "path": outside.paths,
                          "label": [label or "" for label in outside.labels],
                          f"p_{negative}": 1.0 - p, f"p_{positive}": p,
                          "predicted": np.where(p >= threshold, positive, negative)})
    y = labels_of(outside, positive)
    return table, None if y is None else binary_metrics(y, p, threshold)


# --------------------------------------------------------------------------- augbench predict


def main_predict(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="augbench predict",
                                     description="score a kept model (a train run's folder) on a set of images")
    parser.add_argument("--model", required=True, help="a run folder holding model.keras and model.json, "
                        "e.g. runs/none/resnet50/seed0")
    parser.add_argument("--data", required=True, help="folder-per-class root (class names: the model's), "
                        "MedMNIST .npz or CSV list")
    parser.add_argument("--out", help="per-image probabilities CSV (default: standard output); the metrics go "
                                      "beside it as <name>.metrics.json")
    parser.add_argument("--threshold", type=float, default=0.5, help="P(positive) at which an image is called "
                                                                      "positive (default 0.5)")
    parser.add_argument("--classes", metavar="A,B",
                        help="a MedMNIST .npz's class names, label 0's first (e.g. malignant,benign for "
                             "BreastMNIST); default: from its dataset card. Not the model's order: the set's own")
    args = parser.parse_args(argv)
    kept = models_io.load_kept(args.model)
    given = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None
    outside = read_outside_set(args.data, kept.classes, given, "--classes")
    table, metrics = score(kept, outside, args.threshold)
    note = (f"metrics ({kept.positive} positive, threshold {args.threshold:g}): "
            + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()) if metrics is not None
            else "no metrics: the set does not hold images of both classes " f"{kept.classes}")
    if args.out:
        Path(args.out).with_suffix(".metrics.json").unlink(missing_ok=True)  # never an older run's beside
        write_text(args.out, table.to_csv(index=False))
        if metrics is not None:
            write_json(Path(args.out).with_suffix(".metrics.json"),
                       {"model": str(args.model), "data": str(args.data), "n": len(table),
                        "threshold": args.threshold, "positive": kept.positive, **metrics})
        print(f"{len(table)} images scored: {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(table.to_csv(index=False))
    print(note, file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- the stage


def kept_runs(params, runs: Path) -> list[tuple[str, Path]]:
    """``(method label, run folder)`` of each run of the matrix (each method × classifier, each zoo
    classifier on ``none``, each seed), all of which must hold a kept model, then the A/A control's
    runs (labelled ``none-aa``, as the evaluate stage names them) that hold one. Folders of methods
    no longer in the matrix are not scored."""
    m = params.matrix
    cells = [(method, classifier) for method in m.methods for classifier in m.classifiers]
    cells += [("none", classifier) for classifier in m.zoo if ("none", classifier) not in cells]
    wanted = [(method, run_dir(runs, method, classifier, seed)) for method, classifier in cells for seed in m.seeds]
    absent = [folder for _, folder in wanted if not (folder / models_io.MODEL_FILE).is_file()]
    if absent:
        raise DataError(absent[0], f"{len(absent)} of the matrix's {len(wanted)} runs hold no kept model "
                        f"({models_io.MODEL_FILE})", "set train.keep_models: true and re-run the train stages "
                        "(dvc repro)")
    aa = [(AA_METHOD, run_dir(runs, AA_METHOD, classifier, seed)) for classifier in m.classifiers
          for seed in params.controls.aa_seeds(m.seeds)]
    return wanted + [(label, folder) for label, folder in aa if (folder / models_io.MODEL_FILE).is_file()]


def internal_test_auc(run: Path) -> float:
    """The run's test AUC, from its predictions.csv (the internal figure beside the external one)."""
    predictions = pd.read_csv(run / "predictions.csv")
    test = predictions[predictions["split"] == "test"]
    return binary_metrics(test["label"].to_numpy(), test["score"].to_numpy())["auc"]


def near_duplicates(prepared, outside: OutsideSet, size: int, srad: dict | None, threshold: int) -> pd.DataFrame:
    """Pairs (outside image, prepared image) whose perceptual hashes differ in at most ``threshold``
    bits (bench.data.validate.near_pairs); the outside images are first brought to the prepared
    form (size, SRAD) so that a copy of a prepared image hashes like it."""
    ours = [perceptual_hash(image) for image in prepared.images]
    theirs = [perceptual_hash(image) for image in models_io.prepared_like(outside.images, size, srad)]
    hashes = np.array(ours + theirs, dtype=np.uint64)
    n = len(ours)
    pairs = [(i, j) for i, j in near_pairs(hashes, threshold) if i < n <= j]
    return pd.DataFrame({"external_id": [outside.ids[j - n] for _, j in pairs],
                         "prepared_id": [prepared.ids[i] for i, _ in pairs],
                         "prepared_split": [str(prepared.splits[i]) for i, _ in pairs],
                         "distance": [int(hashes[i] ^ hashes[j]).bit_count() for i, j in pairs]},
                        columns=["external_id", "prepared_id", "prepared_split", "distance"])


def check_prepared_form(kept: models_io.KeptModel, size: int, srad: dict | None) -> None:
    """The kept model was trained on the prepared data beside it: same image size and SRAD."""
    pre = kept.record["preprocessing"]
    if int(pre["prepared_size"]) != size or (pre.get("srad") or None) != srad:
        raise DataError(kept.folder / models_io.MODEL_JSON, f"the model was trained on {pre['prepared_size']} px "
                        f"images (SRAD {pre.get('srad')}), the prepared data is {size} px (SRAD {srad})",
                        "re-run its train stage on the current prepared data (dvc repro)")


def external_rows(runs: list[tuple[str, Path]], outside: OutsideSet, threshold: float, size: int,
                  srad: dict | None) -> pd.DataFrame:
    rows = []
    for method, run in runs:
        kept = models_io.load_kept(run)
        check_prepared_form(kept, size, srad)
        _, metrics = score(kept, outside, threshold)
        if metrics is None:
            raise DataError(outside.paths[0], f"the outside set does not hold images of both classes {kept.classes}",
                            "AUC, sensitivity and specificity need both")
        spec = {**kept.record["run"], "method": method}
        rows.append({"method": spec["method"], "classifier": spec["classifier"], "seed": spec["seed"],
                     "n": len(outside.ids), "auc": metrics["auc"], "accuracy": metrics["accuracy"],
                     "sensitivity": metrics["recall"], "specificity": metrics["specificity"],
                     "internal_test_auc": internal_test_auc(run)})
        log.info("external: %s/%s seed %s: AUC %.3f (internal test %.3f)", spec["method"], spec["classifier"],
                 spec["seed"], rows[-1]["auc"], rows[-1]["internal_test_auc"])
        clear_keras()
    return pd.DataFrame(rows)


TRAINING_SPLITS = ("train", "val")  # the model learnt from train and chose its epoch on val


def duplicate_counts(pairs: pd.DataFrame) -> dict:
    """Outside images with a near-duplicate among the training images (train + validation: these
    inflate the external figure) and among the test images (they do not, but are no outside data)."""
    def images(splits) -> int:
        return int(pairs.loc[pairs["prepared_split"].isin(splits), "external_id"].nunique()) if len(pairs) else 0

    return {"train_val": images(TRAINING_SPLITS), "test": images(("test",)),
            "any": int(pairs["external_id"].nunique()) if len(pairs) else 0}


def markdown(table: pd.DataFrame, pairs: pd.DataFrame, n_outside: int, threshold: int, replicated: bool) -> str:
    counts = duplicate_counts(pairs)
    lines = ["# External validation", "",
             f"{len(table)} kept models scored on {n_outside} outside images (method none-aa: the A/A control's "
             "runs).", "",
             table.to_markdown(index=False, floatfmt=".3f"), "",
             f"## Near-duplicates ({len(pairs)} pairs)", "",
             f"Perceptual hashes within {threshold} bits of a prepared image: {counts['train_val']} of {n_outside} "
             "outside images near a training or validation image (these inflate the external figure: the models "
             f"learnt from them, or chose their epoch on them); {counts['test']} near a test image (no inflation, "
             "but not outside data either). docs/external.md.", ""]
    if replicated:
        lines += ["Under repeated k-fold the prepared_split column is replicate 0's split; an image is in "
                  "training in most replicates.", ""]
    if len(pairs):
        lines += [pairs.to_markdown(index=False), ""]
    return "\n".join(lines)


def run(params, prepared_dir: Path, runs_dir: Path, out: Path) -> dict:
    ext = params.external
    prepared = load_prepared(prepared_dir)
    runs = kept_runs(params, runs_dir)
    classes = models_io.class_order(prepared.meta["classes"], prepared.meta["positive"])
    outside = read_outside_set(ext.path, classes, ext.classes)
    size, srad = models_io.prepared_form(prepared.meta)
    table = external_rows(runs, outside, params.evaluate.threshold, size, srad)
    threshold = params.dataset.near_duplicate_threshold if ext.near_duplicate_threshold is None \
        else ext.near_duplicate_threshold
    pairs = near_duplicates(prepared, outside, size, srad, threshold)
    replicated = prepared.replicates is not None
    names = dict(zip(("csv", "pairs", "md", "json"), REPORTS, strict=True))
    write_text(out / names["csv"], table.to_csv(index=False))
    write_text(out / names["pairs"], pairs.to_csv(index=False))
    write_text(out / names["md"], markdown(table, pairs, len(outside.ids), threshold, replicated))
    counts = duplicate_counts(pairs)
    summary = {"path": str(ext.path), "classes": ext.classes, "n_images": len(outside.ids), "n_models": len(table),
               "threshold": params.evaluate.threshold, "near_duplicate_threshold": threshold,
               "near_duplicate_pairs": len(pairs), "near_duplicate_images": counts["any"],
               "near_duplicate_images_train_val": counts["train_val"],
               "near_duplicate_images_test": counts["test"],
               "near_duplicates_by_split": {str(k): int(v) for k, v in pairs["prepared_split"].value_counts().items()},
               "split_column": "replicate 0's split (repeated k-fold)" if replicated else "the split"}
    write_json(out / names["json"], summary)  # last: marks the tables complete (the report's --extras)
    if counts["train_val"]:
        log.warning("external: %d of %d outside images are near-duplicates of training/validation images (%s); "
                    "they inflate the external figures", counts["train_val"], len(outside.ids), out / names["pairs"])
    log.info("external: DVC does not track the files of external.path: after changing them, re-run this stage "
             "alone with `dvc repro -f -s external`")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="augbench external", description=__doc__.splitlines()[0])
    add_params_args(parser)
    add_skip_if_off_arg(parser, "external", "--out")
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--runs", default="runs")
    parser.add_argument("--out", default="data/external", help="output folder (data/external)")
    args = parser.parse_args(argv)
    params = params_from_args(args)
    out = Path(args.out)
    with writing(out):
        if params.external.path is None:
            if not args.skip_if_off:
                raise ConfigError("external.path", "is null, so `augbench external` has nothing to score",
                                  "set it to an outside dataset (docs/external.md), or add --skip-if-off")
            switched_off("external", out, [out / name for name in REPORTS], reason="external.path: null")
            return 0
        not_switched_off(out)
        for name in REPORTS:
            (out / name).unlink(missing_ok=True)
        run(params, Path(args.prepared), Path(args.runs), out)
    return 0


