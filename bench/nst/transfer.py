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
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bench.errors import NumericalError
from bench.nst.engine import Job, LossConfig, Schedule, Shard, get_engine
from bench.nst.losses import StyleLoss
from bench.nst.sampling import add_references, plan_pairs, select
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
                   progress: bool | None = None, shards=None) -> tuple[Generated | None, dict]:
    """n synthetic images made from ``train`` only, with provenance and a run summary.

    ``shards`` (a :class:`bench.distributed.Sharding`: the Horovod workers and a shard folder)
    splits the batches of the job plan across ranks, writes each finished batch to the folder
    and resumes from the batches found there; rank 0 gets the merged result, bit for bit the
    one-process result, and every other rank ``None``."""
    h, w = train.images.shape[1:]
    info = {"encoder": config.arch, "weights": config.weights.description, "weights_kind": config.weights.kind,
            "style_loss": config.style_loss.describe(), "failures": [], "images_per_second": None}
    if n == 0:
        return Generated(np.zeros((0, h, w), np.float32), np.zeros(0, np.int64), []), info
    jobs = plan_jobs(train, n, rng, config)
    engine_seed = int(rng.integers(0, 2**31 - 1))
    timer = shards.workers.timer if shards is not None else None
    with timer("build") if timer else contextlib.nullcontext():
        engine = get_engine(config.arch, config.weights, config.pooling, config.style_loss, config.losses,
                            config.schedule, (h, w))
        if shards is not None:
            engine.trace()  # so that tracing is timed as build, not as the first batch's compute
    sources = train.images.astype(np.float32)
    if shards is None:
        def run(batch_jobs, attempt):
            return engine.run(batch_jobs, sources, seed=engine_seed, progress=progress, desc=config.method,
                              content_weights=config.content_weights)
    else:
        run = shards.runner(engine, sources, engine_seed, config, progress)
    started, done = time.perf_counter(), {}
    pending = {i: job for i, job in enumerate(jobs)}
    for attempt in range(config.max_retries + 1):
        order = sorted(pending)
        batches = run([pending[i] for i in order], attempt)
        position = 0
        for shard in batches:
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
    if shards is not None:
        info["distributed"] = shards.describe(run)
        if not shards.workers.is_root:
            return None, info
    images, provenance = _collect(train, jobs, done, config)
    info.update(seconds=round(seconds, 2), images_per_second=round(len(jobs) / seconds, 3),
                image_iterations_per_second=round(len(jobs) * sum(config.schedule.iterations) / seconds, 2))
    labels = train.labels[[j.content for j in jobs]].astype(np.int64)
    log.info("%s: %d images in %.1fs (%.2f images/s, %.1f image-iterations/s; encoder %s, %s)", config.method,
             len(jobs), seconds, info["images_per_second"], info["image_iterations_per_second"], config.arch,
             config.weights.description)
    return Generated(images, labels, provenance), info


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
