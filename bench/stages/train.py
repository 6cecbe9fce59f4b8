"""train@method×classifier×seed: fit a classifier on real (+ synthetic) training images.

``append`` methods add their synthetic images to the real training split;
``replace`` methods train on the synthetic images only. Validation and test are
always the real val/test splits. Writes ``predictions.csv`` (val and test
scores), ``history.csv`` and ``meta.json`` (trainable parameters, epochs, wall
time, weights source, training-set composition).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench import registry, training
from bench.config import Params
from bench.errors import AugbenchError
from bench.io import file_digest, load_npz, read_json, write_json, write_text
from bench.stages.augment import check_sources
from bench.stages.common import Prepared, add_params_args, load_prepared, log, params_from_args
from bench.typed import to_dict


def training_set(prepared: Prepared, augmented: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """Real train split plus (append) or instead of (replace) the synthetic images."""
    train = prepared.subset("train")
    meta = read_json(augmented / "meta.json")
    synth = load_npz(augmented / "synthetic.npz")
    if synth["images"].shape[1:] != train.images.shape[1:]:
        raise AugbenchError(f"{augmented}: synthetic images are {synth['images'].shape[1:]}, prepared images "
                            f"{train.images.shape[1:]}; re-run the augment stage (dvc repro)")
    provenance = [json.loads(line) for line in (augmented / "provenance.jsonl").read_text().splitlines()]
    check_sources(provenance, set(train.ids), meta["method"])  # made from an older split? refuse
    if meta["mode"] == "replace":
        x, y = synth["images"], synth["labels"]
    else:
        x = np.concatenate([train.images, synth["images"]])
        y = np.concatenate([train.labels, synth["labels"]])
    composition = {"mode": meta["mode"], "n_real": 0 if meta["mode"] == "replace" else len(train),
                   "n_synthetic": int(len(synth["labels"])), "n_positive": int(y.sum()), "n_total": int(len(y))}
    return x, y, composition


def run(params: Params, prepared: Prepared, augmented: Path, classifier: str, seed: int, out: Path) -> dict:
    started = time.perf_counter()
    training.seed_everything(seed)
    clf = registry.get("classifier", classifier)(params.classifier_params(classifier))
    x_raw, y, composition = training_set(prepared, augmented)
    val, test = prepared.subset("val"), prepared.subset("test")
    size = clf.input_size(prepared.images.shape[1])
    if size != prepared.images.shape[1]:
        import tensorflow as tf
        resize = lambda a: tf.image.resize(a[..., None], (size, size)).numpy()[..., 0]  # noqa: E731
    else:
        resize = lambda a: a  # noqa: E731
    x_train, x_val, x_test = (clf.preprocess(resize(a)) for a in (x_raw, val.images, test.images))
    model = clf.build(x_train.shape[1:], 2)
    log.info("%s seed %d: %d trainable parameters, %d training images (%s), weights %s",
             classifier, seed, training.trainable_count(model), len(y), composition, clf.weights_source())
    result = training.fit(model, clf.params, x_train, y, x_val, val.labels, seed=seed)
    frames = [pd.DataFrame({"split": name, "id": s.ids, "label": s.labels,
                            "score": training.predict_positive(model, x)})
              for name, s, x in (("val", val, x_val), ("test", test, x_test))]
    write_text(out / "predictions.csv", pd.concat(frames).to_csv(index=False))
    write_text(out / "history.csv", pd.DataFrame(result.history, index=pd.RangeIndex(1, len(result.history.get("loss", [])) + 1, name="epoch")).to_csv())
    meta = {"method": augmented.name, "classifier": classifier, "seed": seed,
            "params": to_dict(clf.params), "weights": clf.weights_source(), "input_size": size,
            "trainable_params": training.trainable_count(model), "training_set": composition,
            "upstream": [prepared.digest, file_digest(augmented / "synthetic.npz")],
            "epochs_run": len(result.history.get("loss", [])), "best_epoch": result.best_epoch,
            "fit_seconds": round(result.seconds, 1),
            "seconds": round(time.perf_counter() - started, 1)}
    write_json(out / "meta.json", meta)
    log.info("%s/%s seed %d: best epoch %d of %d, %.0fs", augmented.name, classifier, seed,
             meta["best_epoch"], meta["epochs_run"], meta["seconds"])
    return meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="augbench train", description=__doc__.splitlines()[0])
    add_params_args(parser)
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--augmented", required=True, help="folder written by the augment stage")
    parser.add_argument("--classifier", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    run(params_from_args(args), load_prepared(args.prepared), Path(args.augmented),
        args.classifier, args.seed, Path(args.out))
    return 0
