"""external: every kept model of the matrix scored on an outside dataset (``external.path``).

The outside set is a folder-per-class root (``root/<class>/<images>``), a MedMNIST v2 ``.npz`` or
a CSV list (bench.data.sources), whose class names are the models' (``dataset.classes``). Every run
folder under ``--runs`` that holds a kept model (``model.keras`` + ``model.json``, bench.models_io)
scores it, preprocessed exactly as its train stage did. Writes to ``--out``:

* ``external.csv``: method, classifier, seed, the external AUC, accuracy, sensitivity and
  specificity (threshold ``evaluate.threshold``), n, and the run's internal test AUC (from its
  predictions.csv) beside them;
* ``external_duplicates.csv``: the near-duplicate pairs between the prepared data and the outside
  set (perceptual hashes within ``external.near_duplicate_threshold`` bits, bench.data.validate):
  external id, prepared id, its split, distance. They inflate the external figure: an outside image
  that is a copy of a training image is not outside;
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

import numpy as np
import pandas as pd

from bench import models_io
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

REPORTS = OPTIONAL_REPORTS["external"]  # external.csv, external_duplicates.csv, external.md, external.json


@dataclass
class OutsideSet:
    """Decoded outside images: grey [0, 1] arrays of any size, their ids, paths and class names
    (None where the set has no labels for them)."""

    images: list[np.ndarray]
    ids: list[str]
    paths: list[str]
    labels: list[str | None]


def read_outside_set(path: str | Path, classes: list[str], dataset_classes: list[str]) -> OutsideSet:
    """Read a folder-per-class root, MedMNIST ``.npz`` (label k named ``dataset_classes[k]``) or CSV
    list at ``path``. Every class it holds must be one of ``classes`` (the model's); an unknown one
    is refused, naming it. Images of any size are accepted (resized later as the stages did)."""
    path = Path(path).expanduser()
    kind = kind_of_path(path)
    if not path.exists():
        raise DataError(path, "outside dataset not found", "set external.path (or --data) to a folder-per-class "
                        "root, a MedMNIST .npz or a CSV list")
    with tempfile.TemporaryDirectory(prefix="augbench-external-") as work:
        source = open_source(kind, path, dataset_classes if kind == "medmnist" else None, Path(work) / "medmnist")
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
    args = parser.parse_args(argv)
    kept = models_io.load_kept(args.model)
    outside = read_outside_set(args.data, kept.classes, kept.record["dataset_classes"])
    table, metrics = score(kept, outside, args.threshold)
    note = (f"metrics ({kept.positive} positive, threshold {args.threshold:g}): "
            + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()) if metrics is not None
            else "no metrics: the set does not hold images of both classes " f"{kept.classes}")
    if args.out:
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


def kept_runs(runs: Path) -> list[Path]:
    """Run folders under ``runs`` (``<method>/<classifier>/seed<k>``) holding a kept model, sorted."""
    return sorted(p.parent for p in runs.glob(f"*/*/seed*/{models_io.MODEL_FILE}"))


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


def external_rows(runs: list[Path], outside: OutsideSet, threshold: float) -> pd.DataFrame:
    rows = []
    for run in runs:
        kept = models_io.load_kept(run)
        _, metrics = score(kept, outside, threshold)
        if metrics is None:
            raise DataError(outside.paths[0], f"the outside set does not hold images of both classes {kept.classes}",
                            "AUC, sensitivity and specificity need both")
        spec = kept.record["run"]
        rows.append({"method": spec["method"], "classifier": spec["classifier"], "seed": spec["seed"],
                     "n": len(outside.ids), "auc": metrics["auc"], "accuracy": metrics["accuracy"],
                     "sensitivity": metrics["recall"], "specificity": metrics["specificity"],
                     "internal_test_auc": internal_test_auc(run)})
        log.info("external: %s/%s seed %s: AUC %.3f (internal test %.3f)", spec["method"], spec["classifier"],
                 spec["seed"], rows[-1]["auc"], rows[-1]["internal_test_auc"])
        clear_keras()
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame, pairs: pd.DataFrame, n_outside: int, threshold: int) -> str:
    hit = pairs["external_id"].nunique() if len(pairs) else 0
    lines = ["# External validation", "",
             f"{len(table)} kept models scored on {n_outside} outside images.", "",
             table.to_markdown(index=False, floatfmt=".3f"), "",
             f"## Near-duplicates ({len(pairs)} pairs; {hit} of {n_outside} outside images)", "",
             f"Perceptual hashes within {threshold} bits of a prepared image. Such an image is not outside "
             "data: it inflates the external figure (docs/external.md).", ""]
    if len(pairs):
        lines += [pairs.to_markdown(index=False), ""]
    return "\n".join(lines)


def run(params, prepared_dir: Path, runs_dir: Path, out: Path) -> dict:
    ext = params.external
    prepared = load_prepared(prepared_dir)
    runs = kept_runs(runs_dir)
    if not runs:
        raise DataError(runs_dir, "no run folder holds a kept model (model.keras)",
                        "set train.keep_models: true and re-run the train stages (dvc repro)")
    classes = models_io.class_order(prepared.meta["classes"], prepared.meta["positive"])
    outside = read_outside_set(ext.path, classes, prepared.meta["classes"])
    table = external_rows(runs, outside, params.evaluate.threshold)
    record = models_io.load_kept(runs[0]).record["preprocessing"]
    threshold = params.dataset.near_duplicate_threshold if ext.near_duplicate_threshold is None \
        else ext.near_duplicate_threshold
    pairs = near_duplicates(prepared, outside, record["prepared_size"], record.get("srad"), threshold)
    names = dict(zip(("csv", "pairs", "md", "json"), REPORTS, strict=True))
    write_text(out / names["csv"], table.to_csv(index=False))
    write_text(out / names["pairs"], pairs.to_csv(index=False))
    write_text(out / names["md"], markdown(table, pairs, len(outside.ids), threshold))
    summary = {"path": str(ext.path), "n_images": len(outside.ids), "n_models": len(table),
               "threshold": params.evaluate.threshold, "near_duplicate_threshold": threshold,
               "near_duplicate_pairs": len(pairs),
               "near_duplicate_images": int(pairs["external_id"].nunique()) if len(pairs) else 0,
               "near_duplicates_by_split": {str(k): int(v) for k, v in pairs["prepared_split"].value_counts().items()}}
    write_json(out / names["json"], summary)  # last: marks the tables complete (the report's --extras)
    if summary["near_duplicate_images"]:
        log.warning("external: %d of %d outside images are near-duplicates of prepared images (%s); they inflate "
                    "the external figures", summary["near_duplicate_images"], len(outside.ids), out / names["pairs"])
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


