"""augbench quality: image-quality metrics of every generative method's synthetic images.

For each method folder (the augment stage's output) it computes the full-reference
metrics (RMSE, PSNR, SSIM, SRE, SAM; :mod:`bench.quality`) of every synthetic image
against the image its provenance names as ``source_id`` (the content image for NST, the
nearest training image of the class for the GAN), and FID and KID of the synthetic set
against the real training set. The floor row is FID/KID of the real training set against
the real validation set. One feature network serves every row, and every row names it.

The methods are ``quality.methods`` of params.yaml (default: every generative method of
``matrix.methods``) or ``--methods``. With ``--pseudolabel DIR`` (the pseudolabel stage's
output) a row for its fold-0 synthetic images is added, measured against that fold's real
training part (the only real images they were made from); when that folder records the pseudolabel
stage as switched off (``switched_off.json``) there is no such row, and a log line says so.

Writes ``quality.csv``, ``quality.md`` and ``quality.json`` under ``--out`` (dvc.yaml: ``data/quality``,
the stage's one output; the report stage copies them into ``reports/``). With ``--skip-if-off`` and
``quality.enabled: false``: removes those files and writes only ``--out``/switched_off.json.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

import numpy as np

from bench import quality
from bench.errors import AugbenchError
from bench.io import load_npz, read_json, write_json, write_text
from bench.plugins import ImageSet
from bench.stages.common import (
    OPTIONAL_REPORTS,
    SWITCHED_OFF,
    Prepared,
    add_params_args,
    add_skip_if_off_arg,
    enabled_params,
    load_prepared,
    log,
    not_switched_off,
    switched_off,
    writing,
)

COLUMNS = ("method", "n", "rmse", "psnr", "ssim", "sre", "sam", "fid", "kid", "kid_sd", "feature_network")


def read_provenance(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def method_row(name: str, folder: Path, train: ImageSet, network: quality.FeatureNetwork,
               real_features: np.ndarray, kid_subsets: int, kid_subset_size: int) -> dict:
    """One table row: full-reference means against the named sources, FID/KID against ``train``."""
    synthetic = load_npz(folder / "synthetic.npz")["images"]
    records = read_provenance(folder / "provenance.jsonl")
    index = {img_id: k for k, img_id in enumerate(train.ids)}
    missing = [r.get("source_id") for r in records if r.get("source_id") not in index]
    if missing:
        raise ValueError(f"{folder}: {len(missing)} records name no training image as source_id "
                         f"(first: {missing[0]!r})")
    sources = train.images[[index[r["source_id"]] for r in records]]
    full = quality.full_reference(sources, synthetic)
    distances = quality.feature_distances(network.extract(synthetic), real_features, kid_subsets, kid_subset_size)
    return {"method": name, "n": len(synthetic), **{m: full[m]["mean"] for m in quality.FULL_REFERENCE},
            **distances, "feature_network": network.name}


def floor_row(prepared: Prepared, network: quality.FeatureNetwork, real_features: np.ndarray,
              kid_subsets: int, kid_subset_size: int) -> dict:
    val = network.extract(prepared.subset("val").images)
    return {"method": "real train vs real val (floor)", "n": len(val),
            **quality.feature_distances(real_features, val, kid_subsets, kid_subset_size),
            "feature_network": network.name}


def quality_table(prepared: Prepared, methods: dict[str, Path], network: quality.FeatureNetwork,
                  kid_subsets: int = 100, kid_subset_size: int = 1000,
                  own_train: dict[str, ImageSet] | None = None) -> list[dict]:
    """The floor row, then one row per method. ``own_train``: methods whose real reference set is not
    the training split (the pseudo-label folds), with that set."""
    train = prepared.subset("train")
    real = network.extract(train.images)
    rows = [floor_row(prepared, network, real, kid_subsets, kid_subset_size)]
    for name, folder in methods.items():
        log.info("quality: %s", name)
        reference = (own_train or {}).get(name)
        ref, ref_features = (train, real) if reference is None else (reference, network.extract(reference.images))
        rows.append(method_row(name, folder, ref, network, ref_features, kid_subsets, kid_subset_size))
    return rows


def pseudolabel_fold(prepared: Prepared, folder: Path, fold: int = 0) -> tuple[str, Path, ImageSet]:
    """(row name, synthetic-image folder, the fold's real training part) from the pseudolabel stage's
    ``folds.json``."""
    if not (folder / "folds.json").is_file():
        raise AugbenchError(f"{folder / 'folds.json'}: not found, so {folder} is not the pseudolabel stage's output "
                            f"(nor does it hold {SWITCHED_OFF}); run that stage, or leave --pseudolabel out")
    plan = read_json(folder / "folds.json")
    entry = next((f for f in plan["folds"] if f["index"] == fold), None)
    if entry is None:
        raise AugbenchError(f"{folder / 'folds.json'}: no fold {fold}")
    index = {img_id: k for k, img_id in enumerate(prepared.ids)}
    missing = [i for i in entry["sources"] if i not in index]
    if missing:
        raise AugbenchError(f"{folder / 'folds.json'}: fold {fold} names {missing[0]!r}, which the prepared data "
                            "does not hold; re-run the pseudolabel stage")
    keep = [index[i] for i in entry["sources"]]
    train = ImageSet(prepared.images[keep], prepared.labels[keep], list(entry["sources"]))
    return f"{plan['method']} (fold {fold})", folder / f"fold{fold}" / "augmented", train


def write_outputs(out: Path, rows: list[dict]) -> None:
    from tabulate import tabulate

    buf = io.StringIO()
    writer = csv.DictWriter(buf, COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text(out / "quality.csv", buf.getvalue())
    table = tabulate([[r.get(c, "") for c in COLUMNS[:-1]] for r in rows], headers=list(COLUMNS[:-1]),
                     tablefmt="github", floatfmt=".4g")
    write_text(out / "quality.md", f"Feature network for FID/KID: {rows[0]['feature_network']} "
                                   "(numbers are comparable only within one network)\n\n" + table + "\n")
    # last: it marks the tables as complete (the report stage's --extras)
    write_json(out / "quality.json", {"rows": rows, "feature_network": rows[0]["feature_network"]})


def measure(params, prepared: Prepared, augmented: Path, out: Path, encoder_dir: Path | None = None,
            pseudolabel: Path | None = None, methods: list[str] | None = None) -> list[dict]:
    """The stage: the table of ``methods`` (default: params.quality_methods()) and, with ``pseudolabel``,
    its fold-0 row; written to ``out``."""
    settings = params.quality
    network = quality.feature_network(encoder_dir, settings.domain_arch, settings.feature_network)
    folders = {m: augmented / m for m in (methods if methods is not None else params.quality_methods())}
    own = {}
    if pseudolabel is not None and (pseudolabel / SWITCHED_OFF).is_file():
        log.info("quality: no pseudo-label fold-0 row (%s: the pseudolabel stage was switched off)",
                 pseudolabel / SWITCHED_OFF)
    elif pseudolabel is not None:
        name, folder, train = pseudolabel_fold(prepared, pseudolabel)
        folders[name], own[name] = folder, train
    rows = quality_table(prepared, folders, network, settings.kid_subsets, settings.kid_subset_size, own)
    write_outputs(out, rows)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="augbench quality", description=__doc__.splitlines()[0])
    add_params_args(parser)
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--augmented", default="data/augmented", help="folder holding one folder per method")
    parser.add_argument("--methods", nargs="+", default=None,
                        help="generative methods to measure (default: quality.methods of params.yaml)")
    parser.add_argument("--encoder", default=None, metavar="DIR",
                        help="encoder stage output, for quality.feature_network domain (or auto without InceptionV3)")
    parser.add_argument("--pseudolabel", default=None, metavar="DIR",
                        help="pseudolabel stage output: adds its fold-0 row (none when it holds switched_off.json)")
    parser.add_argument("--out", required=True, help="folder for quality.csv/.md/.json")
    add_skip_if_off_arg(parser, "quality", "--out")
    args = parser.parse_args(argv)
    params = enabled_params(args, "quality", parser.prog)
    out = Path(args.out)
    if params is None:
        with writing(out):
            switched_off("quality", out, [out / name for name in OPTIONAL_REPORTS["quality"]])
        return 0
    with writing(out):
        not_switched_off(out)
        measure(params, load_prepared(args.prepared), Path(args.augmented), out,
                Path(args.encoder) if args.encoder else None, Path(args.pseudolabel) if args.pseudolabel else None,
                args.methods)
    return 0
