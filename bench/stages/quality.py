"""augbench quality: image-quality metrics of every generative method's synthetic images.

For each method folder (the augment stage's output) it measures (:mod:`bench.quality`; how to read them:
docs/image-quality.md):

- KID (primary) and FID of the synthetic set against the real **validation** images, which no generator
  used, in a feature space of d whitened principal components fitted on the real training features
  (d ≤ n/``quality.samples_per_dim``);
- memorisation: each synthetic image's pixel distance to its nearest training image against the
  validation images' own (``memorised``, ``nn_ratio``, ``copying``);
- distance from source: RMSE, PSNR, SSIM, SRE, SAM of every synthetic image against the image its
  provenance names as ``source_id`` (the content image for NST, the nearest training image of the class
  for the GAN), columns ``source_*``.

The floor row is the real training set against the real validation set: a generator of new images from
the data's distribution reaches that KID/FID at best. One feature network serves every row, and every
row names it.

The methods are ``quality.methods`` of params.yaml (default: every generative method of
``matrix.methods``) or ``--methods``. With ``--pseudolabel DIR`` (the pseudolabel stage's output) a row
for its fold-0 synthetic images is added, judged against that fold's real images: its training part (the
only real images they were made from) and its held-out part (validation and test of the fold), with a
floor row of its own; when that folder records the pseudolabel stage as switched off
(``switched_off.json``) there is no such row, and a log line says so.

Writes ``quality.csv``, ``quality.md`` and ``quality.json`` under ``--out`` (dvc.yaml: ``data/quality``,
the stage's one output; the report stage copies them into ``reports/``). With ``--skip-if-off`` and
``quality.enabled: false``: removes those files and writes only ``--out``/switched_off.json.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
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

COLUMNS = ("method", "reference", "n", "n_reference", "dims", "kid", "kid_sd", "kid_subset_size", "fid", "fid_note",
           "nn_median", "nn_ratio", "memorised", "memorised_p", "copying",
           *(f"source_{m}" for m in quality.FULL_REFERENCE), "feature_network")
MARKDOWN = (("method", "method"), ("n", "n"), ("n_reference", "n_ref"), ("dims", "d"), ("kid", "KID ± sd"),
            ("fid", "FID"), ("fid_note", "FID note"), ("memorised", "memorised"), ("nn_ratio", "nn_ratio"),
            ("copying", "copying"), *((f"source_{m}", f"source {m.upper()}") for m in quality.FULL_REFERENCE))
FLOOR = "real train vs real val (floor)"
VALIDATION = "validation split"


def settings_of(params) -> quality.Settings:
    """bench.quality's settings from params.quality (QualityParams)."""
    q = params.quality
    return quality.Settings(kid_subsets=q.kid_subsets, kid_subset_size=q.kid_subset_size,
                            samples_per_dim=q.samples_per_dim, max_dims=q.max_dims, nn_percentile=q.nn_percentile)


def read_provenance(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def source_distances(folder: Path, synthetic: np.ndarray, train: ImageSet) -> dict:
    """Distance from source: the mean of every full-reference metric over (source, synthetic) pairs,
    the source being the training image the provenance names as ``source_id``."""
    records = read_provenance(folder / "provenance.jsonl")
    if len(records) != len(synthetic):
        raise ValueError(f"{folder}: {len(records)} provenance records for {len(synthetic)} synthetic images")
    index = {img_id: k for k, img_id in enumerate(train.ids)}
    missing = [r.get("source_id") for r in records if r.get("source_id") not in index]
    if missing:
        raise ValueError(f"{folder}: {len(missing)} records name no training image as source_id "
                         f"(first: {missing[0]!r})")
    full = quality.full_reference(train.images[[index[r["source_id"]] for r in records]], synthetic)
    return {f"source_{m}": full[m]["mean"] for m in quality.FULL_REFERENCE}


def method_row(name: str, folder: Path, train: ImageSet, ref: quality.Reference, network: quality.FeatureNetwork,
               settings: quality.Settings) -> dict:
    """One table row: KID/FID against the held-out real images, memorisation against ``train``, the
    distance from each image's source."""
    synthetic = load_npz(folder / "synthetic.npz")["images"]
    return {"method": name, **quality.generated_figures(ref, synthetic, network, settings),
            **source_distances(folder, synthetic, train)}


FOLD_HINT = ("the pseudo-label fold's images are too few: set fewer pseudolabel.folds (larger held-out folds) or a "
             "larger pseudolabel.max_per_class (or null)")


def real_reference(name: str, train: ImageSet, held_out: ImageSet, network: quality.FeatureNetwork,
                   settings: quality.Settings, hint: str | None = None) -> quality.Reference:
    more = {} if hint is None else {"hint": hint}
    ref = quality.real_reference(name, train.images, held_out.images, network, settings, **more)
    if ref.novelty.threshold == 0:
        log.warning("quality: %s: %.0f%% or more of the held-out images have an exact copy among the training "
                    "images (their pixel distance is 0), so nothing can count as memorised; check the split for "
                    "duplicates (prepare's validation report)", name, ref.novelty.percentile)
    return ref


def quality_table(prepared: Prepared, methods: dict[str, Path], network: quality.FeatureNetwork,
                  settings: quality.Settings,
                  own: dict[str, tuple[ImageSet, ImageSet, str]] | None = None) -> tuple[list[dict], list[dict]]:
    """(rows, references): the floor row, then one row per method. ``own``: methods judged against other
    real sets than the training and validation splits (the pseudo-label folds): (their training part,
    their held-out part, the floor row's name); each such reference gets its floor row before its method."""
    train = prepared.subset("train")
    main = real_reference(VALIDATION, train, prepared.subset("val"), network, settings)
    rows, references = [{"method": FLOOR, **quality.floor_figures(main, settings)}], [main.summary()]
    for name, folder in methods.items():
        log.info("quality: %s", name)
        if name in (own or {}):
            own_train, held_out, floor = own[name]
            ref = real_reference(f"{name} held-out", own_train, held_out, network, settings, FOLD_HINT)
            rows.append({"method": floor, **quality.floor_figures(ref, settings)})
            references.append(ref.summary())
            rows.append(method_row(name, folder, own_train, ref, network, settings))
        else:
            rows.append(method_row(name, folder, train, main, network, settings))
    return rows, references


def pseudolabel_fold(prepared: Prepared, folder: Path,
                     fold: int = 0) -> tuple[str, Path, tuple[ImageSet, ImageSet, str]]:
    """(row name, synthetic-image folder, (the fold's real training part, its held-out part — validation and
    test —, the floor row's name)) from the pseudolabel stage's ``folds.json``."""
    if not (folder / "folds.json").is_file():
        raise AugbenchError(f"{folder / 'folds.json'}: not found, so {folder} is not the pseudolabel stage's output "
                            f"(nor does it hold {SWITCHED_OFF}); run that stage, or leave --pseudolabel out")
    plan = read_json(folder / "folds.json")
    entry = next((f for f in plan["folds"] if f["index"] == fold), None)
    if entry is None:
        raise AugbenchError(f"{folder / 'folds.json'}: no fold {fold}")
    index = {img_id: k for k, img_id in enumerate(prepared.ids)}
    missing = [i for i in (*entry["sources"], *entry["val"], *entry["test"]) if i not in index]
    if missing:
        raise AugbenchError(f"{folder / 'folds.json'}: fold {fold} names {missing[0]!r}, which the prepared data "
                            "does not hold; re-run the pseudolabel stage")

    def images(ids: list[str]) -> ImageSet:
        keep = [index[i] for i in ids]
        return ImageSet(prepared.images[keep], prepared.labels[keep], list(ids))

    sets = (images(entry["sources"]), images([*entry["val"], *entry["test"]]),
            f"real fold-{fold} train vs held-out (floor)")
    return f"{plan['method']} (fold {fold})", folder / f"fold{fold}" / "augmented", sets


def _cell(row: dict, key: str) -> str | float:
    value = row.get(key, "")
    if key == "kid" and value != "":
        return f"{value:.4g} ± {row['kid_sd']:.2g}"
    if key == "memorised" and value != "":
        return f"{value:.0%}"
    return value


def markdown(rows: list[dict], references: list[dict], settings: quality.Settings) -> str:
    """quality.md: what the features and references are, the table, the rules."""
    from tabulate import tabulate

    lines = [f"KID and FID: {rows[0]['feature_network']}, projected onto d whitened principal components of each "
             f"reference's real training features (d = ⌊n / {settings.samples_per_dim}⌋ of the smaller real set, "
             f"at most {settings.max_dims}, at least {quality.MIN_DIMS}); numbers are comparable only within one "
             "network and one reference. Memorisation: RMS pixel distance to the nearest training image.", ""]
    for ref in references:
        lines.append(f"- {ref['name']}: {ref['n_held_out']} held-out vs {ref['n_train']} training images (projection "
                     f"fitted on {ref['n_fit']}, the floor row from the other {ref['n_floor']}), d = {ref['dims']}; "
                     f"τ = {ref['pixel_threshold']:.4g} (about the {ref['percentile']:g}th percentile of the held-out "
                     "images' distances to the nearest training image: an order statistic; median "
                     f"{ref['pixel_median']:.4g})")
    table = tabulate([[_cell(r, key) for key, _ in MARKDOWN] for r in rows], headers=[h for _, h in MARKDOWN],
                     tablefmt="github", floatfmt=".4g")
    rules = (f"KID (unbiased, mean ± sd over {settings.kid_subsets} subsets) is the primary figure: near the floor "
             "row of its reference = as close to unseen real images as real training images are; FID is "
             "secondary (biased upwards at small n). memorised: the fraction of synthetic images closer to a "
             f"training image than τ (new images: about {settings.nn_percentile:g} %); copying: yes when that "
             f"fraction is improbably high for new images (one-sided beta-binomial test, which accounts for the "
             f"noise in τ, p < {quality.COPYING_ALPHA}); "
             "nn_ratio: median nearest-training distance over the held-out images' (copies 0, new images about 1). "
             "source_*: distance of each image from its own source (NST: content image; GAN: nearest training "
             "image): how far the method moved it, not its quality (a copy scores best).")
    return "\n".join([*lines, "", table, "", rules]) + "\n"


def write_outputs(out: Path, rows: list[dict], references: list[dict], settings: quality.Settings) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text(out / "quality.csv", buf.getvalue())
    write_text(out / "quality.md", markdown(rows, references, settings))
    # last: it marks the tables as complete (the report stage's --extras)
    write_json(out / "quality.json", {"rows": rows, "feature_network": rows[0]["feature_network"],
                                      "references": references, "settings": dataclasses.asdict(settings),
                                      "copying_alpha": quality.COPYING_ALPHA})


def measure(params, prepared: Prepared, augmented: Path, out: Path, encoder_dir: Path | None = None,
            pseudolabel: Path | None = None, methods: list[str] | None = None) -> list[dict]:
    """The stage: the table of ``methods`` (default: params.quality_methods()) and, with ``pseudolabel``,
    its fold-0 rows; written to ``out``."""
    settings = settings_of(params)
    network = quality.feature_network(encoder_dir, params.quality.domain_arch, params.quality.feature_network)
    folders = {m: augmented / m for m in (methods if methods is not None else params.quality_methods())}
    own = {}
    if pseudolabel is not None and (pseudolabel / SWITCHED_OFF).is_file():
        log.info("quality: no pseudo-label fold-0 row (%s: the pseudolabel stage was switched off)",
                 pseudolabel / SWITCHED_OFF)
    elif pseudolabel is not None:
        name, folder, sets = pseudolabel_fold(prepared, pseudolabel)
        folders[name], own[name] = folder, sets
    rows, references = quality_table(prepared, folders, network, settings, own)
    write_outputs(out, rows, references, settings)
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
