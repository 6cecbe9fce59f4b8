"""train@method×classifier: fit a classifier on real (+ synthetic) training images, every seed.

``append`` methods add their synthetic images to the real training split;
``replace`` methods train on the synthetic images only; ``online`` methods (bench.online)
train on the real training split, each minibatch randomly transformed as it is drawn
(``online.json`` of the augment stage says how). Validation and test are
always the real val/test splits: under ``split.mode: repeated-kfold``, those of the run's
replicate (seed ``matrix.seeds[r]`` trains on replicate ``r``: :func:`split_for`), whose
training part also replaces the fixed one. ``--classifier`` names a classifier *variant*
(a key of ``train.classifiers``), which may be a plugin or a variant of one.

When the classifier's parameters define a grid (``grid_learning_rate``,
``grid_beta_1``, ``repeats``), every candidate is trained, each seeded from the
run seed and its index (bench.training.grid_candidates), and the best by the
``select`` criterion on the *validation* split is kept; the test split is never
looked at before the choice. Writes to ``--out``:

* ``predictions.csv``: split (val/test), id, label, score of the chosen model;
* ``history.csv``: per-epoch Keras history of the chosen candidate;
* ``model.keras`` and ``model.json`` (``train.keep_models``): the chosen model and its record
  (classes, preprocessing, version, digest; bench.models_io), for ``augbench predict``;
* ``grid.csv``: one row per candidate (candidate, learning_rate, beta_1,
  repeat, seed, val_loss, val_auc, best_epoch, epochs, status, selected);
* ``meta.json``: parameters, transfer ``mode``, trainable / non-trainable
  parameter counts, the selected candidate, epochs, wall time, weights source,
  training-set composition, upstream digests;
* ``dvclive/``: per-epoch train/eval losses and metrics (one ``candidate<k>/`` folder
  each when there is a grid), for ``dvc plots`` and ``dvc exp show``;
* ``relevance.npz``: LRP (α2β1) and gradient × input pixel relevance of every test image,
  with the lesion masks where the dataset has them; their share inside the lesion is
  summarised in ``meta.json`` (bench.xai.runs; descriptive, after the model is chosen);
* for plugins with an ``analyse`` hook (DRS models): the tables it returns,
  e.g. ``activation.csv`` (Byra 2021 Eq. 5–7, on the test images; descriptive,
  never used for selection), and its summary in ``meta.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench import models_io, online, registry, training
from bench.config import Params
from bench.data.splits import replicate_index
from bench.distributed import default_shard_dir, init_workers, phase_summary, phases, rank_guard
from bench.errors import AugbenchError, ConfigError
from bench.io import file_digest, load_npz, read_json, write_json, write_text
from bench.metrics import binary_metrics
from bench.stages.augment import check_sources
from bench.stages.common import (
    Prepared,
    add_params_args,
    load_prepared,
    log,
    params_from_args,
    writing,
)
from bench.typed import to_dict
from bench.xai.runs import explained_rows, write_explanations

CHECKPOINT = "checkpoint"  # training state, under the output folder, until meta.json is written
# Training state is saved at most once a minute (bench.training.Checkpoint.due); AUGBENCH_CHECKPOINT_SECONDS
# changes that (0: after every epoch, as the interruption tests use it).
CHECKPOINT_EVERY_S = float(os.environ.get("AUGBENCH_CHECKPOINT_SECONDS", "60"))


def training_set(prepared: Prepared, augmented: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """Real train split plus (append) or instead of (replace) the synthetic images; online: the
    real train split alone (its transforms are drawn per minibatch, :func:`online_augmentation`)."""
    train = prepared.subset("train")
    meta = read_json(augmented / "meta.json")
    if meta["mode"] == online.ONLINE:
        composition = {"mode": online.ONLINE, "n_real": len(train), "n_split": len(train), "n_synthetic": 0,
                       "n_positive": int(train.labels.sum()), "n_total": len(train)}
        return train.images, train.labels, composition
    synth = load_npz(augmented / "synthetic.npz")
    if synth["images"].shape[1:] != train.images.shape[1:]:
        raise AugbenchError(f"{augmented}: synthetic images are {synth['images'].shape[1:]}, prepared images "
                            f"{train.images.shape[1:]}; re-run the augment stage (dvc repro)")
    if prepared.replicate is not None and len(synth["labels"]):  # config refuses it first (bench.config)
        raise AugbenchError(f"{augmented}: {len(synth['labels'])} stored synthetic images under split.mode "
                            "repeated-kfold; they were made from one replicate's training part and may hold "
                            "this replicate's test images (docs/statistics.md, \"Repeated stratified group k-fold\")")
    provenance = [json.loads(line) for line in (augmented / "provenance.jsonl").read_text().splitlines()]
    check_sources(provenance, set(train.ids), meta["method"])  # made from an older split? refuse
    if meta["mode"] == "replace":
        x, y = synth["images"], synth["labels"]
    else:
        x = np.concatenate([train.images, synth["images"]])
        y = np.concatenate([train.labels, synth["labels"]])
    composition = {"mode": meta["mode"], "n_real": 0 if meta["mode"] == "replace" else len(train),
                   "n_split": len(train),
                   "n_synthetic": int(len(synth["labels"])), "n_positive": int(y.sum()), "n_total": int(len(y))}
    return x, y, composition


def upstream_file(augmented: Path) -> Path:
    """The augment stage's output a training run depends on: its synthetic images, or for an
    online method the manifest of its transforms."""
    return augmented / (online.MANIFEST if (augmented / online.MANIFEST).is_file() else "synthetic.npz")


def online_augmentation(augmented: Path, mode: str, grey: np.ndarray, to_input) -> online.OnlineAugmentation | None:
    """The per-minibatch transforms of an online method (None for a stored one; ``mode``: the
    composition's, from :func:`training_set`): the plugin and parameters its augment stage recorded
    in ``online.json``, applied to the grey training images ``grey`` before ``to_input`` (the
    classifier's resize and preprocessing)."""
    if mode != online.ONLINE:
        return None
    spec = read_json(augmented / online.MANIFEST)
    plugin = registry.create("augmenter", spec["plugin"], **spec["params"])
    return online.OnlineAugmentation(plugin.transform, grey, to_input, spec["method"])


def epoch_size_for(budget: str, composition: dict, min_images: int | None = None) -> int | None:
    """Images per epoch under ``train.budget``: ``steps`` — as many as the real training split,
    or ``min_images`` (``train.min_epoch_images``) where that is more, so that a method that adds
    images takes the optimizer steps of ``none`` (each epoch a fresh random subset of the larger
    set, or several passes over a smaller one); ``epochs`` — None, the whole set (a ×k method
    takes k times the steps). None as well where the two coincide (``none`` itself, without
    ``min_images``)."""
    if budget == "epochs":
        return None
    if min_images:
        return max(composition["n_split"], min_images)
    return None if composition["n_split"] >= composition["n_total"] else composition["n_split"]


def resize_to(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of (N, H, W) grey images to (N, size, size); unchanged when already that size."""
    if images.shape[1:] == (size, size):
        return images
    import tensorflow as tf

    return tf.image.resize(images[..., None], (size, size)).numpy()[..., 0]


def train_candidate(plugin: type, params, data: tuple, name: str, candidate: training.Candidate, *,
                    log_root: Path | None = None, n_candidates: int = 1,
                    checkpoint_key: str | None = None, workers=None,
                    reuse: training.ModelReuse | None = None, epoch_size: int | None = None,
                    augmentation: online.OnlineAugmentation | None = None,
                    bn_images: int | None = None) -> training.Trial:
    """Build, seed and fit one grid candidate; judge it on the validation split only. ``reuse``:
    the network built and traced for an earlier candidate or seed, re-initialised as a fresh
    process would (bench.training.ModelReuse; not under Horovod, which recompiles). With
    ``checkpoint_key``, its state after every epoch goes to ``log_root/checkpoint/`` and a
    re-run with the same key continues from there (bench.training.Checkpoint). Not under
    Horovod (``workers``): a killed distributed training starts over (README, Known limits).
    ``epoch_size``: images per epoch (the ``steps`` budget, :func:`epoch_size_for`).
    ``augmentation``: an online method's per-minibatch transforms (:func:`online_augmentation`)."""
    x_train, y_train, x_val, y_val = data
    values = {"learning_rate": candidate.learning_rate, "beta_1": candidate.beta_1}
    clf = plugin(dataclasses.replace(params, **{k: v for k, v in values.items() if hasattr(params, k)}))
    training.seed_everything(candidate.seed)
    phase = phases(workers)
    with phase("build"):
        model = (reuse.build(clf, x_train.shape[1:], 2) if reuse is not None and workers is None
                 else clf.build(x_train.shape[1:], 2))
    initial = model.get_weights() if hasattr(clf, "analyse") else None
    log.info("%s candidate %d (lr %g, beta_1 %g, repeat %d, seed %d): %d trainable parameters, weights %s",
             name, candidate.index, candidate.learning_rate, candidate.beta_1, candidate.repeat, candidate.seed,
             training.trainable_count(model), clf.weights_source())
    log_dir = None if log_root is None else training.candidate_log_dir(log_root, candidate.index, n_candidates)
    checkpoint = None
    if log_root is not None and checkpoint_key is not None and workers is None:
        checkpoint = training.Checkpoint(log_root / CHECKPOINT / f"candidate{candidate.index}.npz",
                                         f"{checkpoint_key} {candidate}", every_seconds=CHECKPOINT_EVERY_S)
    with phase("compute"):
        result = training.fit(model, clf.params, x_train, y_train, x_val, y_val, seed=candidate.seed,
                              log_dir=log_dir, checkpoint=checkpoint, workers=workers, epoch_size=epoch_size,
                              online=augmentation, bn_images=bn_images)
    val_scores = training.predict_positive(model, x_val)
    val_loss = result.history.get("val_loss", [np.nan])[result.best_epoch - 1]
    return training.Trial(candidate, float(val_loss), binary_metrics(y_val, val_scores)["auc"], result.best_epoch,
                          len(result.history.get("loss", [])),
                          state={"classifier": clf, "model": model, "result": result, "val_scores": val_scores,
                                 "initial": initial, "weights": model.get_weights()})


def _selection(best: training.Trial, grid: pd.DataFrame, criterion: str) -> dict:
    c = best.candidate
    return {"criterion": criterion, "split": "val", "n_candidates": len(grid),
            "n_diverged": int((grid["status"] != "ok").sum()), "candidate": c.index,
            "learning_rate": c.learning_rate, "beta_1": c.beta_1, "repeat": c.repeat, "seed": c.seed,
            "val_loss": best.val_loss, "val_auc": best.val_auc}


def history_table(history: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame(history, index=pd.RangeIndex(1, len(history.get("loss", [])) + 1, name="epoch"))


def predictions_table(val, test, val_scores: np.ndarray, test_scores: np.ndarray) -> pd.DataFrame:
    return pd.concat([pd.DataFrame({"split": name, "id": s.ids, "label": s.labels, "score": scores})
                      for name, s, scores in (("val", val, val_scores), ("test", test, test_scores))])


def run(params: Params, prepared: Prepared, augmented: Path, classifier: str, seed: int, out: Path,
        workers=None, reuse: training.ModelReuse | None = None, explain: bool = True) -> dict | None:
    """Train, choose, predict and write. ``workers`` (under Horovod, np > 1): every candidate is
    trained data-parallel (bench.training.fit); only rank 0 writes, and the others return None.
    ``reuse``: a :class:`bench.training.ModelReuse` shared with earlier runs of this process (the
    other seeds of the cell); by default the grid's candidates share one. ``explain``: write the LRP
    explanations of the test images (``relevance.npz``); a stage of several seeds explains its
    first only, the one the report draws (4-8 s a seed at 32 px)."""
    started = time.perf_counter()
    root = workers is None or workers.is_root
    for stale in ("meta.json", "activation.csv", "grid.csv", "relevance.npz",  # outside DVC the folder is reused
                  models_io.MODEL_JSON, models_io.MODEL_FILE):
        if root:
            (out / stale).unlink(missing_ok=True)
    training.seed_everything(seed)
    plugin_name = params.classifier_plugin(classifier)
    plugin = registry.get("classifier", plugin_name)
    configured = params.classifier_params(classifier)
    clf = plugin(configured)
    with phases(workers)("io"):
        x_raw, y, composition = training_set(prepared, augmented)
    val, test = prepared.subset("val"), prepared.subset("test")
    size = clf.input_size(prepared.images.shape[1])
    x_train, x_val, x_test = (clf.preprocess(resize_to(a, size)) for a in (x_raw, val.images, test.images))
    augmentation = online_augmentation(augmented, composition["mode"], x_raw, lambda grey: clf.preprocess(resize_to(grey, size)))
    log.info("%s seed %d: %d training images (%s), input %d px", classifier, seed, len(y), composition, size)
    criterion = getattr(configured, "select", "val_loss")
    candidates = training.grid_candidates(configured, seed)
    if root:
        shutil.rmtree(out / "dvclive", ignore_errors=True)  # outside DVC the folder is reused
    upstream = [prepared.digest, file_digest(upstream_file(augmented))]
    epoch_size = epoch_size_for(params.train.budget, composition, params.train.min_epoch_images)
    bn_images = composition["n_split"] if params.train.budget == "steps" else None
    key = json.dumps({"classifier": classifier, "params": to_dict(configured), "seed": seed, "upstream": upstream,
                      "epoch_size": epoch_size}, sort_keys=True, default=str)
    fit_one = functools.partial(train_candidate, plugin, configured, (x_train, y, x_val, val.labels), classifier,
                                log_root=out, n_candidates=len(candidates), checkpoint_key=key, workers=workers,
                                reuse=reuse if reuse is not None else training.ModelReuse(), epoch_size=epoch_size,
                                augmentation=augmentation, bn_images=bn_images)
    best, grid = training.run_grid(candidates, fit_one, criterion)
    by_rank = workers.allgather(workers.timer.rounded()) if workers is not None else None
    if not root:
        return None
    # The choice is made; only now is the test split predicted.
    chosen, model, result = best.state["classifier"], best.state["model"], best.state["result"]
    model.set_weights(best.state["weights"])  # a later candidate may have trained the same (reused) model
    scores = predictions_table(val, test, best.state["val_scores"], training.predict_positive(model, x_test))
    write_text(out / "predictions.csv", scores.to_csv(index=False))
    write_text(out / "history.csv", history_table(result.history).to_csv())
    write_text(out / "grid.csv", grid.to_csv(index=False))
    meta = {"method": augmented.name, "classifier": classifier, "plugin": plugin_name, "seed": seed,
            "params": to_dict(configured), "mode": getattr(configured, "transfer", None),
            "augmentation_mode": composition["mode"],  # append | replace | online (bench.online)
            "weights": chosen.weights_source(), "input_size": size,
            "trainable_params": training.trainable_count(model),
            "non_trainable_params": training.non_trainable_count(model), "training_set": composition,
            "upstream": upstream,
            "selection": _selection(best, grid, criterion), "epochs_run": best.epochs,
            "budget": params.train.budget, "epoch_images": epoch_size or len(y),
            "optimizer_steps": best.epochs * _steps_per_epoch(epoch_size or len(y), configured, workers),
            "best_epoch": result.best_epoch, "fit_seconds": round(result.seconds, 1)}
    if prepared.replicate is not None:  # repeated k-fold: which (repeat, fold) this run's split is
        meta["replicate"] = replicate_record(params, prepared.replicate)
    if params.train.keep_models:
        meta["model"] = keep_model(model, prepared, augmented.name, classifier, plugin_name, configured, seed,
                                   size, out)
    meta.update(write_analysis(chosen, model, best.state["initial"], x_test, out))
    if explain:
        rows = explained_rows(test.labels, params.train.explain_images)  # all, or a class-stratified pick
        masks = test_masks(prepared)
        meta.update(write_explanations(model, x_test[rows], [test.ids[i] for i in rows],
                                       None if masks is None else masks[rows], out))
    meta["seconds"] = round(time.perf_counter() - started, 1)
    if workers is not None:
        meta["distributed"] = {**workers.describe(), "learning_rate_scaled_by": workers.size,
                               "global_batch_size": getattr(configured, "batch_size", None) * workers.size,
                               **phase_summary(by_rank)}
    write_json(out / "meta.json", meta)
    shutil.rmtree(out / CHECKPOINT, ignore_errors=True)  # complete: the epoch checkpoints are not outputs
    log.info("%s/%s seed %d: candidate %d of %d, best epoch %d of %d, %.0fs", augmented.name, classifier, seed,
             best.candidate.index, len(grid), meta["best_epoch"], meta["epochs_run"], meta["seconds"])
    return meta


def keep_model(model, prepared: Prepared, method: str, classifier: str, plugin: str, configured, seed: int,
               size: int, out: Path) -> dict:
    """Save the chosen model as ``out/model.keras`` with its ``model.json`` (bench.models_io: classes,
    preprocessing, version, digest); return meta.json's ``model`` entry. That entry names the
    weights by a digest of their values, not of the file: a ``.keras`` file records when it was
    saved, so its bytes differ between bit-identical runs (its own digest is in model.json)."""
    preprocessing = models_io.preprocessing_record(prepared.meta, size, plugin, to_dict(configured))
    models_io.save_kept(model, out, {"method": method, "classifier": classifier, "plugin": plugin,
                                              "seed": seed}, prepared.meta["classes"], prepared.meta["positive"],
                                 preprocessing)
    weights = hashlib.sha256()
    for array in model.get_weights():
        weights.update(np.ascontiguousarray(array).tobytes())
    return {"file": models_io.MODEL_FILE, "weights_sha256": weights.hexdigest()}


def _steps_per_epoch(images: int, configured, workers) -> int:
    """Optimizer steps of one epoch of ``images`` (per rank under Horovod: bench.training.epoch_rows)."""
    ranks = 1 if workers is None else workers.size
    return -(-(images // ranks if ranks > 1 else images) // configured.batch_size)


def test_masks(prepared: Prepared) -> np.ndarray | None:
    """Lesion masks of the test images (prepared order), or None when the dataset has none."""
    return None if prepared.masks is None else prepared.masks[prepared.splits == "test"]


def write_analysis(clf, model, initial: list | None, x_test: np.ndarray, out: Path) -> dict:
    """Run the plugin's optional ``analyse`` hook on the test images (descriptive only: the
    model is already chosen); write its tables; return its meta.json entries."""
    analysis = clf.analyse(model, initial, x_test) if hasattr(clf, "analyse") else None
    if not analysis:
        return {}
    for filename, table in analysis["tables"].items():
        write_text(out / filename, table.to_csv(index=False))
    return {**analysis["meta"], "analysis_split": "test"}


def replicate_of(params: Params, seed: int, aa: bool = False) -> int | None:
    """Under ``split.mode: repeated-kfold``, the replicate that training seed ``seed`` runs on: its
    position in ``matrix.seeds`` (with ``aa``: in the A/A seeds, so that A/A run i pairs with the
    baseline's run i on the same split); None for a fixed split."""
    if not params.split.n_replicates:
        return None
    seeds = params.controls.aa_seeds(params.matrix.seeds) if aa else list(params.matrix.seeds)
    if seed not in seeds:
        raise ConfigError("matrix.seeds", f"under split.mode repeated-kfold every seed names a replicate, and seed "
                          f"{seed} is not one of the {'A/A ' if aa else ''}seeds {seeds}",
                          "leave out --seed (every replicate), or give seeds from that list")
    return seeds.index(seed)


def split_for(params: Params, prepared: Prepared, seed: int, aa: bool = False) -> Prepared:
    """The prepared data with the split seed ``seed`` trains on: the fixed split, or under repeated
    k-fold its replicate's (:func:`replicate_of`). Refuses prepared data split the other way."""
    replicate = replicate_of(params, seed, aa)
    if replicate is not None:
        view = prepared.for_replicate(replicate)
        made = (prepared.meta.get("inputs") or {}).get("split")
        if made is not None and made != to_dict(params.split):
            raise ConfigError("split", f"the prepared data was split with {made}, the parameters say "
                              f"{to_dict(params.split)}", "re-run the prepare stage with these parameters")
        return view
    if prepared.replicates is not None:
        raise ConfigError("split.mode", "is fixed, but the prepared data is split into repeated k-fold replicates",
                          "re-run the prepare stage with these parameters (dvc repro, or augbench prepare)")
    return prepared


def replicate_record(params: Params, replicate: int) -> dict:
    """meta.json's ``replicate``: index, repeat and held-out fold."""
    repeat, fold = replicate_index(replicate, params.split.folds)
    return {"index": replicate, "repeat": repeat, "fold": fold, "folds": params.split.folds,
            "repeats": params.split.repeats}


def seeds_arg(text: str) -> list[int]:
    """``--seed``: one seed, or several comma-separated (``0,1,2``)."""
    try:
        seeds = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a seed or a comma-separated list of seeds") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"{text!r}: give one seed or distinct comma-separated seeds")
    return seeds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="augbench train", description=__doc__.splitlines()[0])
    add_params_args(parser)
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--augmented", required=True, help="folder written by the augment stage")
    parser.add_argument("--classifier", required=True)
    parser.add_argument("--seed", type=seeds_arg,
                        help="training seed; several (0,1,2) train one after another in this process, sharing "
                             "one built and traced network (each as a fresh process would train it); "
                             "default: matrix.seeds of the parameters (what the DVC stages train)")
    parser.add_argument("--aa", action="store_true",
                        help="the A/A control: train on the seeds plus controls.aa_seed_offset (other seeds "
                             "than the baseline's, the same everything else)")
    parser.add_argument("--out", required=True, help="output folder; with several seeds it must contain {seed}")
    args = parser.parse_args(argv)
    workers = init_workers()  # first: pins threads (AUGBENCH_THREADS, or Horovod's share) before TensorFlow starts
    loaded = {}
    if args.seed is None or args.aa:  # the seeds come from the parameters: read them before the loop
        loaded["params"] = params_from_args(args)
        seeds = args.seed if args.seed is not None else loaded["params"].matrix.seeds
        args.seed = loaded["params"].controls.aa_seeds(seeds) if args.aa else seeds
    if len(args.seed) > 1 and "{seed}" not in args.out:
        parser.error(f"--out {args.out!r}: with several seeds it must contain {{seed}} (e.g. runs/none/resnet50/seed{{seed}})")
    if workers.horovod and len(args.seed) > 1:
        parser.error("under Horovod, train one seed per launch")
    reuse = training.ModelReuse()
    for seed in args.seed:
        out = Path(args.out.replace("{seed}", str(seed)))
        status = default_shard_dir(out) if workers.horovod else None  # rank-R.json: what `augbench launch` reports
        lock = writing(out) if workers.is_root else contextlib.nullcontext()  # rank 0 writes the outputs: it holds it
        with lock, rank_guard(workers, status):
            if "prepared" not in loaded:  # inside the guard: a bad params file or prepared folder is reported like any failure
                with workers.timer("io"):
                    loaded.setdefault("params", params_from_args(args))
                    loaded["prepared"] = load_prepared(args.prepared)
            data = split_for(loaded["params"], loaded["prepared"], seed, args.aa)  # repeated k-fold: seed r ↔ replicate r
            run(loaded["params"], data, Path(args.augmented), args.classifier, seed, out,
                workers if workers.horovod else None, reuse=reuse, explain=seed == args.seed[0])
        if status is not None and workers.is_root:
            shutil.rmtree(status, ignore_errors=True)
    return 0
