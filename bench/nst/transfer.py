"""From a training split to synthetic images: plan pairs, run the engine, retry failures,
post-process, and write one provenance record per image.

Failure policy (NaN/inf, or divergence as defined in :mod:`bench.nst.engine`): a
failed image is never returned. Its pair is run again with the learning rate
multiplied by ``retry_lr_factor`` (ours: 0.5), up to ``max_retries`` times; a pair
that still fails stops the stage with :class:`~bench.errors.NumericalError`
naming the pairs, and nothing is written. Replacing it with another pair instead
would silently change the pair distribution; the stage's ``check_generated``
expects exactly n images, so "fewer images" is not an option either. Every
failed attempt is listed in ``run_info["failures"]`` (and so in meta.json).

A planned content or style image with a NaN/inf pixel stops the stage before the engine is
built (:class:`~bench.errors.NumericalError` naming the image and its role): retrying
cannot help, and whether such a pixel reaches a loss depends on the CPU (:mod:`bench.finite`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.distributed import phases
from bench.errors import AugbenchError, NumericalError
from bench.finite import nonfinite_rows
from bench.nst.engine import Job, LossConfig, Schedule, Shard, get_engine
from bench.nst.losses import StyleLoss
from bench.nst.sampling import add_references, plan_pairs, select
from bench.nst.shards import ShardStore, plan_fingerprint
from bench.plugins import Generated, ImageSet

log = logging.getLogger("augbench")


@dataclass(frozen=True)
class TransferConfig:
    method: str
    arch: str
    weights: object  # bench.nst.encoders.WeightsSource
    pooling: str
    style_loss: StyleLoss
    losses: LossConfig
    schedule: Schedule
    sampling: str = "all-within-class"
    pairs_per_content: int = 1
    n_references: int = 1
    max_retries: int = 2
    retry_lr_factor: float = 0.5
    # (images (n, H, W), jobs, train) → images; applied after optimisation (histogram specification)
    postprocess: Callable | None = None
    # (source indices (n,), images (n, h, w) at a level's size) → content-loss weights per content
    # layer, (n, h_l, w_l, N_l) each (nst-proposed-lrp: LRP relevance, bench.nst.relevance)
    content_weights: Callable | None = None
    record: dict = field(default_factory=dict)  # parameters repeated in every provenance record


def plan_jobs(train: ImageSet, n: int, rng: np.random.Generator, config: TransferConfig) -> list[Job]:
    plan = plan_pairs(train.labels, config.sampling, rng, k=config.pairs_per_content)
    plan = select(add_references(plan, train.labels, config.n_references, rng), n, rng)
    seeds = rng.integers(0, 2**31 - 1, size=len(plan))
    return [Job(int(c), tuple(int(s) for s in styles), int(seed))
            for c, styles, seed in zip(plan.content, plan.styles, seeds, strict=True)]


def style_transfer(train: ImageSet, n: int, rng: np.random.Generator, config: TransferConfig,
                   progress: bool | None = None, checkpoint: Path | None = None,
                   checkpoint_key: str = "", workers=None) -> tuple[Generated | None, dict]:
    """n synthetic images made from ``train`` only, with provenance and a run summary.

    ``checkpoint``: a folder where every finished batch is saved and from which a re-run with
    the same plan (and ``checkpoint_key``) loads them instead of running them again
    (:mod:`bench.nst.shards`); the result is the same either way.

    ``workers`` (a :class:`bench.distributed.Workers` of a Horovod run, with ``checkpoint``):
    the batches of each round are split across the ranks, every rank saves its own to the
    folder, and all of them then read the round's results from there; rank 0 gets the merged
    result, bit for bit the one-process result, and every other rank ``None``. Phase times
    (build, compute, io, wait) go to ``workers.timer``."""
    h, w = train.images.shape[1:]
    info = {"encoder": config.arch, "weights": config.weights.description, "weights_kind": config.weights.kind,
            "style_loss": config.style_loss.describe(), "failures": [], "images_per_second": None}
    if n == 0:
        return Generated(np.zeros((0, h, w), np.float32), np.zeros(0, np.int64), []), info
    jobs = plan_jobs(train, n, rng, config)
    check_sources_finite(train, jobs, config.method)
    engine_seed = int(rng.integers(0, 2**31 - 1))
    distributed = workers is not None and workers.size > 1
    if distributed and checkpoint is None:
        raise ValueError("a run on several processes needs a checkpoint folder that all of them can reach")
    phase = phases(workers)
    with phase("build"):
        engine = get_engine(config.arch, config.weights, config.pooling, config.style_loss, config.losses,
                            config.schedule, (h, w))
        if workers is not None:
            engine.trace()  # so that tracing is timed as build, not as the first batch's compute
    sources = train.images.astype(np.float32)
    started, done = time.perf_counter(), {}
    store = None if checkpoint is None else ShardStore(
        checkpoint, plan_fingerprint(checkpoint_key, jobs, engine_seed, config, (h, w)))
    pending = {i: job for i, job in enumerate(jobs)}
    for attempt in range(config.max_retries + 1):
        order = sorted(pending)
        shards = _run_attempt(engine, [pending[i] for i in order], order, attempt, sources, engine_seed, config,
                              store, progress, info, workers)
        position = 0
        for shard in shards:
            for k in range(len(shard.jobs)):
                index = order[position + k]
                if shard.ok[k]:
                    done[index] = (shard, k, attempt)
                else:
                    info["failures"].append(_failure(train, shard, k, attempt))
            position += len(shard.jobs)
        pending = {i: Job(j.content, j.styles, j.seed, j.lr_scale * config.retry_lr_factor)
                   for i, j in pending.items() if i not in done}
        if not pending:
            break
        log.warning("%s: %d images failed (%s); retrying with learning rate × %g", config.method, len(pending),
                    info["failures"][-1]["reason"], config.retry_lr_factor)
    if pending:
        first = info["failures"][-1]
        raise NumericalError(f"{config.method}: {len(pending)} images still fail after {config.max_retries} "
                             f"retries (e.g. content {first['content_id']!r}, styles {first['style_ids']}: "
                             f"{first['reason']}); nothing was written")
    seconds = time.perf_counter() - started
    counts = info.pop("batch_counts", {"computed": 0, "resumed": 0})
    if workers is not None:
        info["distributed"] = {**workers.describe(), "shard_dir": str(checkpoint),
                               "batches_resumed": counts["resumed"], "batches_computed": counts["computed"]}
        if not workers.is_root:
            return None, info
    images, provenance = _collect(train, jobs, done, config)
    info.update(seconds=round(seconds, 2), images_per_second=round(len(jobs) / seconds, 3),
                image_iterations_per_second=round(len(jobs) * sum(config.schedule.iterations) / seconds, 2))
    labels = train.labels[[j.content for j in jobs]].astype(np.int64)
    log.info("%s: %d images in %.1fs (%.2f images/s, %.1f image-iterations/s; encoder %s, %s)", config.method,
             len(jobs), seconds, info["images_per_second"], info["image_iterations_per_second"], config.arch,
             config.weights.description)
    return Generated(images, labels, provenance), info


def check_sources_finite(train: ImageSet, jobs: list[Job], method: str) -> None:
    """Refuse, before optimisation, a plan that uses an image with a NaN/inf pixel; the error
    names the image, its role (content / style) and how many planned images use it."""
    bad = frozenset(int(i) for i in nonfinite_rows(train.images))
    if not bad:
        return
    as_content = [j for j in jobs if j.content in bad]
    as_style = [j for j in jobs if bad.intersection(j.styles)]
    if not as_content and not as_style:
        return  # not used by this plan
    if as_content:
        i, role = as_content[0].content, "content"
        uses = [j for j in jobs if j.content == i]
    else:
        i, role = next(s for s in as_style[0].styles if s in bad), "style"
        uses = [j for j in jobs if i in j.styles]
    raise NumericalError(f"{method}: {role} image {train.ids[i]!r} (training index {i}) has NaN/inf pixels; "
                         f"{len(uses)} planned image(s) use it as their {role} (non-finite training images: "
                         f"{len(bad)}); refused before optimisation, nothing was written")


def _run_attempt(engine, jobs: list[Job], indices: list[int], attempt: int, sources: np.ndarray, seed: int,
                 config: TransferConfig, store: ShardStore | None, progress: bool | None, info: dict,
                 workers=None) -> list[Shard]:
    """One round over ``jobs`` (``indices``: their positions in the plan), batch by batch: a
    batch saved by an earlier run of the same plan is loaded, the others are run (and saved).
    Under Horovod (``workers.size`` > 1) this rank runs its share of the batches
    (:func:`bench.distributed.share`) and then reads the others' from ``store``."""
    from bench.distributed import share

    b = config.schedule.batch_size
    starts = list(range(0, len(jobs), b))
    distributed = workers is not None and workers.size > 1
    phase = phases(workers)
    mine = [starts[i] for i in share(len(starts), workers.size, workers.rank)] if distributed else starts
    with phase("io"):
        found = {s: store.load(attempt, s, indices[s:s + b], jobs[s:s + b]) for s in mine} if store else {}
    todo = [s // b for s in mine if found.get(s) is None]
    if len(todo) < len(mine):
        n_loaded = sum(len(found[s].jobs) for s in mine if found.get(s) is not None)
        log.info("%s: resuming: %d of %d batches (%d images) of %s already done, loaded from %s", config.method,
                 len(mine) - len(todo), len(mine), n_loaded, "the first round" if attempt == 0 else
                 f"retry round {attempt}", store.folder)
        info.setdefault("resumed", []).append({"attempt": attempt, "batches_loaded": len(mine) - len(todo),
                                               "batches": len(mine)})
    if todo:
        run = engine.run(jobs, sources, seed=seed, progress=progress if not distributed or workers.is_root else False,
                         desc=config.method, content_weights=config.content_weights,
                         batches=None if len(todo) == len(starts) else todo)
        for batch in todo:
            with phase("compute"):
                shard = next(run)
            start = batch * b
            if store is not None:
                with phase("io"):
                    store.save(attempt, start, indices[start:start + b], shard)
            found[start] = shard
        run.close()
    counts = info.setdefault("batch_counts", {"computed": 0, "resumed": 0})
    if distributed:
        with phase("wait"):  # idle until every rank has finished the round
            gathered = workers.allgather((len(todo), len(mine) - len(todo)))
        with phase("io"):
            for s in starts:
                if found.get(s) is None:
                    found[s] = store.load(attempt, s, indices[s:s + b], jobs[s:s + b])
                    if found[s] is None:
                        raise AugbenchError(f"{store.folder}: batch {s // b} of round {attempt}, which another "
                                            "rank reported as finished, is not there; a multi-host run needs "
                                            "its shard folder on a shared filesystem")
    else:
        gathered = [(len(todo), len(mine) - len(todo))]
    counts["computed"] += sum(c for c, _ in gathered)
    counts["resumed"] += sum(r for _, r in gathered)
    return [found[s] for s in starts]


def _failure(train: ImageSet, shard: Shard, k: int, attempt: int) -> dict:
    job = shard.jobs[k]
    return {"content_id": train.ids[job.content], "style_ids": [train.ids[s] for s in job.styles],
            "attempt": attempt, "reason": shard.reasons[k],
            "loss": float(shard.losses["total"][k]), "loss_initial": float(shard.losses["initial"][k])}


def _collect(train: ImageSet, jobs: list[Job], done: dict, config: TransferConfig):
    images = np.stack([done[i][0].images[done[i][1]] for i in range(len(jobs))]).astype(np.float32)
    final_jobs = [done[i][0].jobs[done[i][1]] for i in range(len(jobs))]
    if config.postprocess is not None:
        images = config.postprocess(images, final_jobs, train)
    records = []
    for i, job in enumerate(jobs):
        shard, k, attempt = done[i]
        losses = {name: float(values[k]) for name, values in shard.losses.items()}
        records.append({
            "method": config.method, "source_id": train.ids[job.content], "content_id": train.ids[job.content],
            "style_ids": [train.ids[s] for s in job.styles], "sampling": config.sampling, "seed": job.seed,
            "attempt": attempt, "learning_rate": config.schedule.learning_rate * final_jobs[i].lr_scale,
            "loss": losses["total"], "loss_content": losses["content"], "loss_style": losses["style"],
            "loss_tv": losses["tv"], "loss_initial": losses["initial"], "loss_grey": losses["grey"],
            "params": config.record})
    return np.clip(images, 0.0, 1.0).astype(np.float32), records
