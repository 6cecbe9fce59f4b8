"""augment@method: synthetic training images with per-image provenance and a sample grid.

Only the training split reaches the augmenter; every provenance record's
``source_id`` (and ``style_ids``, when present) is checked against the training
ids, so no validation or test image can leak into a training set. Under
``split.mode: repeated-kfold`` the matrix holds only methods that store no images (``none``,
online methods; bench.config), and the train stage takes each replicate's own training part
itself; this stage sees replicate 0's split (``splits``).

Writes ``synthetic.npz`` (images, labels), ``provenance.jsonl`` (one JSON object
per image), ``meta.json``, ``grid.png`` (source | result, or content | style |
result for style-transfer methods) and, when the provenance records carry NST
losses, ``dvclive/`` (final total/content/style/tv loss per image, for
``dvc plots``). ``--encoder DIR`` hands the encoder stage's
output to the plugin (``resources["encoder_dir"]``); for NST, ``meta.json``
records the encoder weights used (``encoder_weights``, ``run_info``). Plugins that
train (stylegan2-ada) keep their checkpoint in ``OUT/shards`` (``resources
["checkpoint_dir"]``: a re-run resumes from it; removed once the output is complete)
and write their training log into the output folder itself (``resources["log_dir"]``,
e.g. ``train_log.csv``). For a phantom dataset, ``resources["fresh_real_images"]`` makes new
phantom images preprocessed like the prepared ones (bench.data.fresh; the positive control's).

A method with ``mode: online`` (bench.online) makes no images here: the stage writes
``online.json`` (the plugin, its parameters, a digest of its code: what the train stage draws
its per-minibatch transforms from), ``grid.png`` (a few training images through one draw of
the transform) and ``meta.json``; ``synthetic.npz`` and ``provenance.jsonl`` are absent.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import time
from pathlib import Path

import numpy as np

from bench import online, registry, tracking
from bench.config import Params
from bench.data.fresh import FRESH_REAL_IMAGES, fresh_source
from bench.distributed import (
    Sharding,
    default_shard_dir,
    init_workers,
    phase_summary,
    phases,
    rank_guard,
)
from bench.errors import AugbenchError, NumericalError
from bench.finite import require_finite
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
    writing,
)
from bench.typed import to_dict

CHECKPOINT = "shards"  # partial results of a resumable plugin (NST batches), under the output folder


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


def checkpoint_key(params: Params, prepared: Prepared, method: str, encoder_dir: Path | None) -> str:
    """What a resumable plugin's partial results depend on besides its own plan: the method's
    parameters, the seed, the prepared data and the encoder stage's output."""
    encoder_meta = Path(encoder_dir) / "meta.json" if encoder_dir is not None else None
    return json.dumps({"method": method, "params": to_dict(params.method_params(method)),
                       "seed": params.augment.seed, "upstream": prepared.digest,
                       "encoder": file_digest(encoder_meta) if encoder_meta and encoder_meta.is_file() else None},
                      sort_keys=True, default=str)


def augment(params: Params, prepared: Prepared, method: str, out: Path, encoder_dir: Path | None = None,
            sharding: Sharding | None = None) -> dict | None:
    """Run augmenter ``method`` on the training split; ``encoder_dir`` (the encoder stage's
    output) is handed to the plugin as ``resources["encoder_dir"]`` before ``fit``.

    ``sharding`` (under Horovod, or with ``--shards``): NST plugins split their job plan across
    the ranks through a shard folder (bench.distributed); only rank 0 writes the outputs and
    returns the meta, every other rank returns None."""
    started = time.perf_counter()
    workers = sharding.workers if sharding is not None else None
    timer, phase = (workers.timer if workers is not None else None), phases(workers)
    if workers is None or workers.is_root:
        (out / "meta.json").unlink(missing_ok=True)  # written last: its presence marks a complete output
    train = prepared.subset("train")
    # explicit, before any plugin sees them: whether a NaN pixel reaches a loss depends on the CPU
    require_finite(train.images, train.ids, f"{method}: training split")
    plugin_name = params.method_plugin(method)  # an augment.methods variant names its plugin
    if params.method_mode(method) == online.ONLINE:
        if workers is not None and not workers.is_root:
            return None
        return augment_online(params, prepared, method, out, encoder_dir, started)
    for stale in ("online.json",):  # outside DVC the folder is reused
        (out / stale).unlink(missing_ok=True)
    with phase("build"):
        plugin = registry.get("augmenter", plugin_name)(params.method_params(method))
        if encoder_dir is not None:
            check_encoder(Path(encoder_dir), prepared)
            plugin.resources = {**getattr(plugin, "resources", {}), "encoder_dir": Path(encoder_dir)}
        plugin.resources = {**getattr(plugin, "resources", {}),
                            "checkpoint_dir": sharding.folder if sharding is not None else out / CHECKPOINT,
                            "checkpoint_key": checkpoint_key(params, prepared, method, encoder_dir),
                            "log_dir": out,
                            **({"workers": sharding.workers} if sharding is not None else {})}
        fresh = fresh_source(params, prepared.meta)  # new real images: the phantom only (control-more-data)
        if fresh is not None:
            plugin.resources[FRESH_REAL_IMAGES] = fresh
        rng = np.random.default_rng(stable_seed(params.augment.seed, method))
        plugin.fit(train, rng)
    n = plugin.n_synthetic(len(train))
    log.info("%s: generating %d images from %d training images", method, n, len(train))
    if n == 0 and method != "none":
        log.warning("%s makes no images with these parameters (factor 1 keeps the training set as it is: "
                    "factor F appends F - 1 images per training image)", method)
    before, generating = sum(timer.seconds.values()) if timer else 0.0, time.perf_counter()
    gen = plugin.generate(train, n, rng)
    if timer is not None:  # NST times its own build/compute/io; the rest of generate is compute
        timer.add("compute", time.perf_counter() - generating - (sum(timer.seconds.values()) - before))
    if workers is not None and not workers.is_root:
        return None
    with phase("io"):
        check_generated(gen, train, method)
        save_npz(out / "synthetic.npz", images=gen.images.astype(np.float32), labels=gen.labels.astype(np.int64))
        write_text(out / "provenance.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in gen.provenance))
        write_grid(out / "grid.png", gen, train, method, params.augment.sample_grid)
        tracking.log_generation(out / "dvclive", gen.provenance)  # per-image NST losses, for dvc plots
    meta = {"method": method, "mode": plugin.mode, "plugin": plugin_name, "params": to_dict(plugin.params),
            "seed": params.augment.seed, "upstream": prepared.digest,
            "n_train": len(train), "n_synthetic": len(gen.labels),
            "synthetic_per_class": {str(c): int((gen.labels == c).sum()) for c in (0, 1)},
            "paper": getattr(plugin, "paper", ""), "seconds": round(time.perf_counter() - started, 2)}
    if hasattr(plugin, "loss_name"):  # NST: the loss as a formula and its resolved configuration (bench.nst.identity)
        meta["loss"] = {"formula": plugin.loss_name(), "config": plugin.loss_config()}
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
    if sharding is None:  # under Horovod, finish() writes it once every rank has reported
        write_json(out / "meta.json", meta)
        shutil.rmtree(out / CHECKPOINT, ignore_errors=True)  # complete: partial results are not outputs
    log.info("%s: %d images in %.1fs", method, meta["n_synthetic"], meta["seconds"])
    return meta


def augment_online(params: Params, prepared: Prepared, method: str, out: Path, encoder_dir: Path | None,
                   started: float) -> dict:
    """Online mode: no synthetic images, only what the train stage needs to draw the transforms per
    minibatch (``online.json``), a sample grid of one draw on a few training images, and meta.json."""
    train = prepared.subset("train")
    plugin_name = params.method_plugin(method)
    cls = registry.get("augmenter", plugin_name)
    plugin = cls(params.method_params(method))
    for stale in ("synthetic.npz", "provenance.jsonl"):  # outside DVC the folder is reused
        (out / stale).unlink(missing_ok=True)
    shutil.rmtree(out / "dvclive", ignore_errors=True)
    spec = online.manifest(method, plugin_name, cls, to_dict(plugin.params))
    write_json(out / online.MANIFEST, spec)
    k = min(params.augment.sample_grid, len(train))
    picks = np.linspace(0, len(train) - 1, num=k).astype(int) if k else np.zeros(0, int)
    rng = np.random.default_rng(stable_seed(params.augment.seed, method))
    sample = online.OnlineAugmentation(plugin.transform, train.images, lambda x: x, method).batch(picks, rng)
    write_grid(out / "grid.png", Generated(sample, train.labels[picks], [{"source_id": train.ids[i]} for i in picks]),
               train, f"{method} (one online draw)", k)
    meta = {"method": method, "mode": online.ONLINE, "plugin": plugin_name, "params": to_dict(plugin.params),
            "seed": params.augment.seed, "upstream": prepared.digest, "n_train": len(train), "n_synthetic": 0,
            "synthetic_per_class": {"0": 0, "1": 0}, "paper": getattr(plugin, "paper", ""), "online": spec}
    if encoder_dir is not None and (Path(encoder_dir) / "meta.json").is_file():  # as offline (augbench run's check)
        meta["encoder_dir"] = str(encoder_dir)
        meta["encoder_upstream"] = file_digest(Path(encoder_dir) / "meta.json")
    meta["seconds"] = round(time.perf_counter() - started, 2)
    write_json(out / "meta.json", meta)
    log.info("%s: online (%s per training minibatch); no images stored", method, plugin_name)
    return meta


def finish(out: Path, meta: dict | None, sharding: Sharding | None) -> None:
    """Gather every rank's phase times into rank 0's meta.json, write it last (the completion
    mark), then drop the shard folder."""
    workers = sharding.workers
    # CPU seconds of this process (all its threads): with one thread per process and a busy
    # machine, the share of the work each rank did, whatever else ran beside it
    by_rank = workers.allgather({**workers.timer.rounded(), "cpu": round(time.process_time(), 3)})
    if not workers.is_root:
        return
    meta["distributed"] = {**workers.describe(), **phase_summary(by_rank)}
    write_json(out / "meta.json", meta)
    shutil.rmtree(sharding.folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="augbench augment", description=__doc__.splitlines()[0])
    add_params_args(parser)
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--method", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--encoder", default=None, metavar="DIR",
                        help="output of the encoder stage, for methods with weights: domain")
    parser.add_argument("--shards", default=None, metavar="DIR",
                        help="folder for finished NST batches, so that a rerun resumes (default under Horovod: "
                             "OUT.shards beside --out; removed after a complete run)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    workers = init_workers()  # first: pins threads (AUGBENCH_THREADS, or Horovod's share) before TensorFlow starts
    sharding = None
    if workers.horovod or args.shards:
        sharding = Sharding(workers, Path(args.shards) if args.shards else default_shard_dir(out))
    lock = writing(out) if workers.is_root else contextlib.nullcontext()  # rank 0 writes the outputs: it holds it
    guard = rank_guard(workers, sharding.folder) if sharding else contextlib.nullcontext(lambda: None)
    with lock, guard as done:
        with phases(sharding.workers if sharding else None)("io"):
            params, prepared = params_from_args(args), load_prepared(args.prepared)
        meta = augment(params, prepared, args.method, out, Path(args.encoder) if args.encoder else None, sharding)
        done()
        if sharding is not None:
            finish(out, meta, sharding)
    return 0
