"""augment@method: synthetic training images with per-image provenance and a sample grid.

Only the training split reaches the augmenter; every provenance record's
``source_id`` (and ``style_ids``, when present) is checked against the training
ids, so no validation or test image can leak into a training set.

Writes ``synthetic.npz`` (images, labels), ``provenance.jsonl`` (one JSON object
per image), ``meta.json``, ``grid.png`` (source | result, or content | style |
result for style-transfer methods) and, when the provenance records carry NST
losses, ``dvclive/`` (final total/content/style/tv loss per image, for
``dvc plots``). ``--encoder DIR`` hands the encoder stage's
output to the plugin (``resources["encoder_dir"]``); for NST, ``meta.json``
records the encoder weights used (``encoder_weights``, ``run_info``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bench import registry, tracking
from bench.config import Params
from bench.errors import AugbenchError, NumericalError
from bench.io import file_digest, read_json, save_npz, write_json, write_text
from bench.plots import sample_grid
from bench.plugins import Generated, ImageSet
from bench.stages.common import (
    Prepared,
    add_params_args,
    load_prepared,
    log,
    params_from_args,
    stable_seed,
)
from bench.typed import to_dict


def check_generated(gen: Generated, train: ImageSet, method: str) -> None:
    """Shapes, ranges, finiteness and provenance of a plugin's output."""
    n = len(gen.labels)
    if gen.images.shape != (n, *train.images.shape[1:]):
        raise AugbenchError(f"{method}: generated images have shape {gen.images.shape}, "
                            f"expected ({n}, {', '.join(map(str, train.images.shape[1:]))})")
    bad = ~np.isfinite(gen.images).all(axis=(1, 2))
    if bad.any():
        raise NumericalError(f"{method}: {int(bad.sum())} generated images contain NaN/inf "
                             f"(first: index {int(np.argmax(bad))}); nothing was written")
    if gen.images.size and (gen.images.min() < 0 or gen.images.max() > 1):
        raise AugbenchError(f"{method}: generated pixels leave [0, 1]")
    if len(gen.provenance) != n:
        raise AugbenchError(f"{method}: {len(gen.provenance)} provenance records for {n} images")
    check_sources(gen.provenance, set(train.ids), method)


def check_sources(provenance: list[dict], train_ids: set[str], method: str) -> None:
    for i, rec in enumerate(provenance):
        sources = [rec.get("source_id")] if rec.get("source_id") else []
        sources += list(rec.get("style_ids", []))
        leaked = [s for s in sources if s not in train_ids]
        if leaked:
            raise AugbenchError(f"{method}: synthetic image {i} was made from {leaked[0]!r}, which is not "
                                "in the training split (validation/test leakage); nothing was written")


def write_grid(path: Path, gen: Generated, train: ImageSet, method: str, k: int) -> None:
    """Sample grid: source | result, or content | style | result when provenance names style
    images (NST; a multi-reference record shows its first style)."""
    index = {img_id: i for i, img_id in enumerate(train.ids)}
    picks = np.linspace(0, len(gen.labels) - 1, num=min(k, len(gen.labels))).astype(int) if len(gen.labels) else []
    styled = any(rec.get("style_ids") for rec in gen.provenance)

    def real(img_id, like):
        return train.images[index[img_id]] if img_id in index else np.zeros_like(like)

    rows, names = [], []
    for p in picks:
        rec = gen.provenance[p]
        src = rec.get("source_id")
        row = [real(src, gen.images[p])]
        if styled:
            row.append(real((rec.get("style_ids") or [None])[0], gen.images[p]))
        rows.append((*row, gen.images[p]))
        names.append(str(src))
    if not rows:  # the baseline: show real training images
        rows = [(train.images[i], train.images[i]) for i in range(min(k, len(train)))]
        names = train.ids[: len(rows)]
    titles = ["content (train)", "style (train)", method] if styled else ["source (train)", method]
    sample_grid(path, rows, titles, names, f"augment: {method}")


def check_encoder(encoder_dir: Path, prepared: Prepared) -> None:
    """A domain encoder trained on another split could have seen today's validation or test
    images with their labels: refuse an encoder folder made from different prepared data."""
    meta = encoder_dir / "meta.json"
    if not meta.is_file():
        return  # nothing trained there (yet): a method that needs it fails with its own message
    found = read_json(meta).get("upstream")
    if found != prepared.digest:
        raise AugbenchError(f"{encoder_dir}: the encoder was trained on other prepared data (digest {found}, "
                            f"current {prepared.digest}); its training images may now be validation or "
                            "test images. Re-run the encoder stage (dvc repro, or augbench encoder)")


def augment(params: Params, prepared: Prepared, method: str, out: Path, encoder_dir: Path | None = None,
            work_dir: Path | None = None) -> dict:
    """Run augmenter ``method`` on the training split; ``encoder_dir`` (the encoder stage's
    output) is handed to the plugin as ``resources["encoder_dir"]`` before ``fit``, and
    ``work_dir`` (checkpoints and training logs of methods that train, e.g. stylegan2-ada)
    as ``resources["work_dir"]``."""
    started = time.perf_counter()
    train = prepared.subset("train")
    plugin = registry.get("augmenter", method)(params.method_params(method))
    if work_dir is not None:
        plugin.resources = {**getattr(plugin, "resources", {}), "work_dir": Path(work_dir)}
    if encoder_dir is not None:
        check_encoder(Path(encoder_dir), prepared)
        plugin.resources = {**getattr(plugin, "resources", {}), "encoder_dir": Path(encoder_dir)}
    rng = np.random.default_rng(stable_seed(params.augment.seed, method))
    plugin.fit(train, rng)
    n = plugin.n_synthetic(len(train))
    log.info("%s: generating %d images from %d training images", method, n, len(train))
    gen = plugin.generate(train, n, rng)
    check_generated(gen, train, method)
    save_npz(out / "synthetic.npz", images=gen.images.astype(np.float32), labels=gen.labels.astype(np.int64))
    write_text(out / "provenance.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in gen.provenance))
    write_grid(out / "grid.png", gen, train, method, params.augment.sample_grid)
    tracking.log_generation(out / "dvclive", gen.provenance)  # per-image NST losses, for dvc plots
    meta = {"method": method, "mode": plugin.mode, "params": to_dict(plugin.params),
            "seed": params.augment.seed, "upstream": prepared.digest,
            "n_train": len(train), "n_synthetic": len(gen.labels),
            "synthetic_per_class": {str(c): int((gen.labels == c).sum()) for c in (0, 1)},
            "paper": getattr(plugin, "paper", ""), "seconds": round(time.perf_counter() - started, 2)}
    run_info = getattr(plugin, "run_info", None)
    if run_info:  # e.g. NST: which encoder weights were used, images/s, failed attempts
        meta["run_info"] = run_info
        if "weights" in run_info:
            meta["encoder"] = run_info.get("encoder")
            meta["encoder_weights"] = run_info["weights"]
    if encoder_dir is not None:
        meta["encoder_dir"] = str(encoder_dir)
        if (Path(encoder_dir) / "meta.json").is_file():  # which encoder-stage output this run saw
            meta["encoder_upstream"] = file_digest(Path(encoder_dir) / "meta.json")
    write_json(out / "meta.json", meta)
    log.info("%s: %d images in %.1fs", method, meta["n_synthetic"], meta["seconds"])
    return meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="augbench augment", description=__doc__.splitlines()[0])
    add_params_args(parser)
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--method", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--encoder", default=None, metavar="DIR",
                        help="output of the encoder stage, for methods with weights: domain")
    parser.add_argument("--work", default=None, metavar="DIR",
                        help="checkpoints and training logs of methods that train (resumed when they match)")
    args = parser.parse_args(argv)
    augment(params_from_args(args), load_prepared(args.prepared), args.method, Path(args.out),
            Path(args.encoder) if args.encoder else None, Path(args.work) if args.work else None)
    return 0
