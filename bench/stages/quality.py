"""augbench quality: image-quality metrics of every generative method's synthetic images.

For each method folder (the augment stage's output) it computes the full-reference
metrics (RMSE, PSNR, SSIM, SRE, SAM; :mod:`bench.quality`) of every synthetic image
against the image its provenance names as ``source_id`` (the content image for NST, the
nearest training image of the class for the GAN), and FID and KID of the synthetic set
against the real training set. The floor row is FID/KID of the real training set against
the real validation set. One feature network serves every row, and every row names it.

Writes ``quality.csv``, ``quality.md`` and ``quality.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

import numpy as np

from bench import quality
from bench.io import load_npz, write_json, write_text
from bench.plugins import ImageSet
from bench.stages.common import Prepared, load_prepared, log

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
    feats = network.extract(synthetic)
    kid_mean, kid_sd = quality.kid(feats, real_features, kid_subsets, kid_subset_size)
    return {"method": name, "n": len(synthetic), **{m: full[m]["mean"] for m in quality.FULL_REFERENCE},
            "fid": quality.fid(feats, real_features), "kid": kid_mean, "kid_sd": kid_sd,
            "feature_network": network.name}


def floor_row(prepared: Prepared, network: quality.FeatureNetwork, real_features: np.ndarray,
              kid_subsets: int, kid_subset_size: int) -> dict:
    val = network.extract(prepared.subset("val").images)
    kid_mean, kid_sd = quality.kid(real_features, val, kid_subsets, kid_subset_size)
    return {"method": "real train vs real val (floor)", "n": len(val), "fid": quality.fid(real_features, val),
            "kid": kid_mean, "kid_sd": kid_sd, "feature_network": network.name}


def quality_table(prepared: Prepared, methods: dict[str, Path], network: quality.FeatureNetwork,
                  kid_subsets: int = 100, kid_subset_size: int = 1000) -> list[dict]:
    train = prepared.subset("train")
    real = network.extract(train.images)
    rows = [floor_row(prepared, network, real, kid_subsets, kid_subset_size)]
    for name, folder in methods.items():
        log.info("quality: %s", name)
        rows.append(method_row(name, folder, train, network, real, kid_subsets, kid_subset_size))
    return rows


def write_outputs(out: Path, rows: list[dict]) -> None:
    from tabulate import tabulate

    buf = io.StringIO()
    writer = csv.DictWriter(buf, COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text(out / "quality.csv", buf.getvalue())
    write_json(out / "quality.json", {"rows": rows, "feature_network": rows[0]["feature_network"]})
    table = tabulate([[r.get(c, "") for c in COLUMNS[:-1]] for r in rows], headers=list(COLUMNS[:-1]),
                     tablefmt="github", floatfmt=".4g")
    write_text(out / "quality.md", f"Feature network for FID/KID: {rows[0]['feature_network']} "
                                   "(numbers are comparable only within one network)\n\n" + table + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="augbench quality", description=__doc__.splitlines()[0])
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--augmented", default="data/augmented", help="folder holding one folder per method")
    parser.add_argument("--methods", nargs="+", required=True, help="generative methods to measure")
    parser.add_argument("--encoder", default=None, metavar="DIR",
                        help="encoder stage output: domain features when no InceptionV3 ImageNet file is cached")
    parser.add_argument("--kid-subsets", type=int, default=100)
    parser.add_argument("--kid-subset-size", type=int, default=1000)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    network = quality.feature_network(Path(args.encoder) if args.encoder else None)
    methods = {m: Path(args.augmented) / m for m in args.methods}
    rows = quality_table(load_prepared(args.prepared), methods, network, args.kid_subsets, args.kid_subset_size)
    write_outputs(Path(args.out), rows)
    return 0
