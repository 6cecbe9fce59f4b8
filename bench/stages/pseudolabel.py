"""pseudolabel: Mikołajczyk & Grochowski 2018's k-fold protocol for pseudo-labelled NST.

Every real image of the prepared data (all three splits) goes into ``pseudolabel.folds``
stratified, group-aware folds (:func:`bench.pseudolabel.fold_plan`) — or, with
``pseudolabel.max_per_class``, a stratified, group-aware subsample of at most that many images
per class, drawn from ``pseudolabel.seed`` (the other images take no part in the stage). Fold k
holds out fold k, halved into validation and test; only the other folds' images (the fold's
*sources*) reach anything that is trained. Per fold, in this order:

1. a domain encoder for the method's NST (when it uses ``weights: domain``), trained on the
   sources only — the encoder stage's own one saw images that are this fold's val/test;
2. the augment stage's function on the fold (``pseudolabel.method``, mode ``replace``): NST
   of source images, the teacher trained on the sources, the class-balancing threshold;
   :func:`bench.pseudolabel.check_fold` then checks every synthetic image's provenance;
3. the train stage's function: ``pseudolabel.classifier`` on the synthetic images only,
   early stopping and model choice on the fold's validation half, predictions on its test half.

Writes, under ``--out``: ``folds.json`` (the plan, and the images per class it covers),
``fold<k>/encoder`` (its ``meta.json`` with the weights' md5 and the sha256 of the ids it was
trained on; the weight files are dropped once the fold's images are made), ``fold<k>/augmented``
(as the augment stage: synthetic.npz, provenance.jsonl, grid.png, meta.json), ``fold<k>/run``
(as the train stage) and ``fold<k>/meta.json`` (the fold's key and its metrics, written last:
a re-run outside DVC skips a finished fold with the same key), ``meta.json``; under
``--reports``: ``pseudolabel.csv`` / ``.md`` (test metrics per fold, mean and sd: the layout of
their Table I) and ``pseudolabel.json`` (mean and sd). dvc.yaml points ``--reports`` into ``--out``
(``data/pseudolabel/report``), the stage's one output; the report stage copies the tables into ``reports/``.

With ``--skip-if-off`` and ``pseudolabel.enabled: false`` the stage removes an earlier run's output and
writes only ``--out``/switched_off.json (how dvc.yaml switches it off).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench import registry
from bench.config import Params
from bench.errors import AugbenchError
from bench.io import read_json, write_json, write_text
from bench.lock import LOCK_NAME
from bench.metrics import METRIC_NAMES, binary_metrics
from bench.pseudolabel import MIKOLAJCZYK, Fold, check_fold, fold_plan, fold_table
from bench.quiet import progress
from bench.stages import augment, encoder, train
from bench.stages.common import (
    OPTIONAL_REPORTS,
    Prepared,
    add_params_args,
    add_skip_if_off_arg,
    clear_keras,
    enabled_params,
    load_prepared,
    log,
    not_switched_off,
    switched_off,
    writing,
)
from bench.typed import to_dict

COUNTS = ("n_synthetic", "n_synthetic_malignant", "n_val", "n_test", "teacher_threshold", "epochs_run", "seconds")


def read_groups(prepared_dir: Path, prepared: Prepared) -> list[str]:
    """Each image's duplicate group from the prepare stage's manifest (prepared order)."""
    manifest = pd.read_csv(prepared_dir / "manifest.csv", dtype={"id": str, "group": str})
    group_of = dict(zip(manifest["id"], manifest["group"], strict=True))
    missing = [i for i in prepared.ids if i not in group_of]
    if missing:
        raise AugbenchError(f"{prepared_dir / 'manifest.csv'}: no group for {missing[0]!r} "
                            f"({len(missing)} images); re-run the prepare stage")
    return [group_of[i] for i in prepared.ids]


def fold_data(prepared: Prepared, fold: Fold) -> Prepared:
    """The fold's images (in prepared order) with its roles as splits: sources = train, held-out
    halves = val/test. Prepared images the plan leaves out (``pseudolabel.max_per_class``) are not in it."""
    role = {**{i: "train" for i in fold.sources}, **{i: "val" for i in fold.val}, **{i: "test" for i in fold.test}}
    if len(role) != len(fold.sources) + len(fold.val) + len(fold.test):
        raise AugbenchError(f"fold {fold.index}: an image has two roles in the plan")
    unknown = sorted(set(role) - set(prepared.ids))
    if unknown:
        raise AugbenchError(f"fold {fold.index}: the plan names {unknown[0]!r} ({len(unknown)} images), which the "
                            "prepared data does not hold; re-run the pseudolabel stage")
    keep = np.array([i in role for i in prepared.ids])
    ids = [i for i in prepared.ids if i in role]
    spec = json.dumps({"upstream": prepared.digest, "fold": dataclasses.asdict(fold)}, sort_keys=True)
    return Prepared(prepared.images[keep], prepared.labels[keep], ids, np.array([role[i] for i in ids]),
                    None if prepared.masks is None else prepared.masks[keep], {**prepared.meta, "fold": fold.index},
                    hashlib.sha256(spec.encode()).hexdigest())


def plan_counts(prepared: Prepared, fold: Fold) -> dict[str, int]:
    """Images per class (label 0/1, as text) that the plan covers: a fold's sources and held-out halves."""
    label_of = dict(zip(prepared.ids, prepared.labels.tolist(), strict=True))
    counts: dict[str, int] = {}
    for i in (*fold.sources, *fold.val, *fold.test):
        counts[str(label_of[i])] = counts.get(str(label_of[i]), 0) + 1
    return dict(sorted(counts.items()))


def fold_key(params: Params, data: Prepared) -> str:
    """What a finished fold depends on: method, classifier, encoder settings, seeds, the subsample's
    bound and the fold's data (its digest names the fold's images and roles)."""
    s = params.pseudolabel
    return json.dumps({"method": s.method, "method_params": to_dict(params.method_params(s.method)),
                       "classifier": s.classifier, "classifier_params": to_dict(params.classifier_params(s.classifier)),
                       "encoder": to_dict(fold_encoder_settings(params, ())), "encoder_epochs": s.encoder_epochs,
                       "augment_seed": params.augment.seed, "seed": params.matrix.seeds[0],
                       "threshold": params.evaluate.threshold, "max_per_class": s.max_per_class,
                       "n_images": len(data.ids), "data": data.digest}, sort_keys=True, default=str)


def fold_encoder_settings(params: Params, archs: tuple[str, ...]):
    """The encoder section, restricted to ``archs``, with ``pseudolabel.encoder_epochs`` when set."""
    settings = encoder.encoder_params(params)
    epochs = params.pseudolabel.encoder_epochs or settings.epochs
    return dataclasses.replace(settings, archs=list(archs) or settings.archs, epochs=epochs)


def run_fold(params: Params, prepared: Prepared, fold: Fold, folder: Path) -> dict:
    """Encoder, augmentation, leakage check, classifier and test metrics of one fold."""
    started = time.perf_counter()
    s = params.pseudolabel
    data = fold_data(prepared, fold)
    key = fold_key(params, data)
    done = folder / "meta.json"
    if done.is_file() and read_json(done).get("key") == key:
        log.info("pseudolabel fold %d: finished earlier with the same settings, kept", fold.index)
        return read_json(done)["row"]
    done.unlink(missing_ok=True)
    plugin = registry.get("augmenter", params.method_plugin(s.method))(params.method_params(s.method))
    if params.method_mode(s.method) != "replace":
        raise AugbenchError(f"pseudolabel.method {s.method!r} has mode {params.method_mode(s.method)!r}; the "
                            "protocol trains on synthetic images only (mode 'replace', e.g. nst-pseudolabel)")
    encoder_dir = None
    if plugin.needs_encoders():
        encoder_dir = folder / "encoder"
        encoder.write_encoders(data.subset("train"), encoder_dir, fold_encoder_settings(params, plugin.needs_encoders()),
                               data.digest)
        clear_keras()
    synthetic = augment.augment(params, data, s.method, folder / "augmented", encoder_dir)
    clear_keras()
    if encoder_dir is not None:  # ~80 MB per VGG19 and fold; meta.json keeps their md5 and training ids
        for weights in encoder_dir.glob("*.h5"):
            weights.unlink()
    provenance = [json.loads(line) for line in (folder / "augmented" / "provenance.jsonl").read_text().splitlines()]
    check_fold(fold, provenance)
    run = train.run(params, data, folder / "augmented", s.classifier, params.matrix.seeds[0], folder / "run")
    clear_keras()
    predictions = pd.read_csv(folder / "run" / "predictions.csv")
    test = predictions[predictions["split"] == "test"]
    teacher = (synthetic.get("run_info") or {}).get("teacher", {})
    row = {"fold": fold.index, **binary_metrics(test["label"].to_numpy(), test["score"].to_numpy(),
                                                params.evaluate.threshold),
           "n_synthetic": synthetic["n_synthetic"], "n_synthetic_malignant": synthetic["synthetic_per_class"]["1"],
           "n_val": len(fold.val), "n_test": len(fold.test), "teacher_threshold": teacher.get("threshold"),
           "epochs_run": run["epochs_run"], "seconds": round(time.perf_counter() - started, 1)}
    write_json(done, {"key": key, "row": row})
    log.info("pseudolabel fold %d: AUC %.3f on %d test images, %.0fs", fold.index, row["auc"], len(fold.test),
             row["seconds"])
    return row


def fold_results(rows: list[dict]) -> pd.DataFrame:
    """Per-fold test metrics with mean and sd rows (Table I of the paper), counts beside each fold."""
    table = pd.DataFrame(fold_table(rows, METRIC_NAMES))
    counts = pd.DataFrame([{"fold": str(r["fold"]), **{c: r[c] for c in COUNTS}} for r in rows])
    return table.merge(counts, on="fold", how="left")


def write_reports(params: Params, table: pd.DataFrame, reports: Path) -> None:
    from tabulate import tabulate

    s = params.pseudolabel
    write_text(reports / "pseudolabel.csv", table.to_csv(index=False))
    shown = table.astype(object).where(table.notna(), "")  # mean/sd rows have no counts
    for name in (*METRIC_NAMES, "teacher_threshold"):
        shown[name] = [f"{v:.3f}" if isinstance(v, float) and np.isfinite(v) else ("n/a" if v != "" else "")
                       for v in shown[name]]
    caption = (f"{s.method} with {s.classifier}, {s.folds} folds ({MIKOLAJCZYK}, Table I layout): test metrics "
               "of each fold's held-out half (fractions), their mean and sample sd; trained on synthetic images "
               "only, chosen on the fold's validation half.\n\n")
    write_text(reports / "pseudolabel.md", caption + tabulate(shown, headers="keys", tablefmt="github",
                                                              showindex=False, missingval="") + "\n")
    by_fold = table.set_index("fold")
    write_json(reports / "pseudolabel.json", {
        "method": s.method, "classifier": s.classifier, "folds": s.folds,
        "mean": {m: float(by_fold.loc["mean", m]) for m in METRIC_NAMES},
        "sd": {m: float(by_fold.loc["sd", m]) for m in METRIC_NAMES}})


def pseudolabel(params: Params, prepared: Prepared, groups: list[str], out: Path, reports: Path) -> pd.DataFrame:
    """The whole protocol: plan, every fold, the tables."""
    started = time.perf_counter()
    s = params.pseudolabel
    (out / "meta.json").unlink(missing_ok=True)  # written last: marks a complete output
    folds = fold_plan(prepared.ids, prepared.labels, groups, s.folds, s.seed, s.max_per_class)
    covered = plan_counts(prepared, folds[0])
    log.info("pseudolabel: %d folds over %d of %d images %s", s.folds, sum(covered.values()), len(prepared.ids),
             covered)
    write_json(out / "folds.json", {"method": s.method, "seed": s.seed, "upstream": prepared.digest,
                                    "max_per_class": s.max_per_class, "n_images": sum(covered.values()),
                                    "per_class": covered, "folds": [dataclasses.asdict(f) for f in folds]})
    with progress(folds, desc="pseudolabel folds", unit="fold") as bar:
        rows = [run_fold(params, prepared, fold, out / f"fold{fold.index}") for fold in bar]
    table = fold_results(rows)
    write_reports(params, table, reports)
    write_json(out / "meta.json", {"params": to_dict(s), "upstream": prepared.digest,
                                   "n_images": sum(covered.values()), "per_class": covered,
                                   "keys": [read_json(out / f"fold{f.index}" / "meta.json")["key"] for f in folds],
                                   "seconds": round(time.perf_counter() - started, 1)})
    return table


def stale_outputs(out: Path, reports: Path) -> list[Path]:
    """What an earlier run left: the plan, the folds and meta.json under ``out``, the tables under
    ``reports`` (and ``reports`` itself when it lies inside ``out`` and holds nothing else)."""
    found = [out / "folds.json", out / "meta.json", *sorted(out.glob("fold[0-9]*")),
             *(reports / name for name in OPTIONAL_REPORTS["pseudolabel"])]
    if reports.resolve().is_relative_to(out.resolve()) and reports.resolve() != out.resolve():
        names = {*OPTIONAL_REPORTS["pseudolabel"], LOCK_NAME}
        if reports.is_dir() and all(p.name in names for p in reports.iterdir()):
            found.append(reports)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="augbench pseudolabel", description=__doc__.splitlines()[0])
    add_params_args(parser)
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--out", required=True, help="per-fold encoders, synthetic images and runs")
    parser.add_argument("--reports", required=True, help="folder for pseudolabel.csv/.md/.json")
    add_skip_if_off_arg(parser, "pseudolabel", "--out")
    args = parser.parse_args(argv)
    params = enabled_params(args, "pseudolabel", parser.prog)
    out, reports = Path(args.out), Path(args.reports)
    if params is None:
        with writing(out):
            switched_off("pseudolabel", out, stale_outputs(out, reports))
        return 0
    prepared = load_prepared(args.prepared)
    with writing(out), writing(reports, "the report folder"):
        not_switched_off(out)
        pseudolabel(params, prepared, read_groups(Path(args.prepared), prepared), out, reports)
    return 0
