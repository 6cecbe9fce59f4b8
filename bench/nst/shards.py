"""Checkpoints of a style-transfer run: one file per finished engine batch.

The engine optimises the job list in fixed batches of ``batch_size`` (:mod:`bench.nst.engine`);
each batch's result (a :class:`~bench.nst.engine.Shard`) is written, atomically, to
``<folder>/shard-<first job index>-<n>.npz`` as soon as it is done (retry rounds:
``retry<attempt>-<first position in the retry list>-<n>.npz``). A run that is killed
and started again with the same plan loads the finished batches and runs only the others.
Batches keep their composition whichever of them run, so a resumed run's images are bit
for bit those of an uninterrupted one; so do Horovod ranks that each run a disjoint set of
batches and write their own files (rank 0 then loads them all).

Every file records the fingerprint of the run that wrote it: the job plan (content, styles,
seed, learning-rate scale of every job), the engine seed, the losses, schedule, encoder and
weights, the image size, and a key from the caller (the augment stage: method parameters,
seed and the digests of its inputs). A file with another fingerprint, or whose jobs are not
the planned ones, is deleted with a log line and never mixed in.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.errors import DataError
from bench.io import load_npz, save_npz
from bench.nst.engine import Job, Shard

log = logging.getLogger("augbench")


def plan_fingerprint(key: str, jobs: Sequence[Job], engine_seed: int, config, image_shape: tuple) -> str:
    """sha256 of everything a batch's result depends on besides the source images (which
    ``key`` covers: the augment stage puts the prepared data's digest in it)."""
    plan = {"key": key, "engine_seed": int(engine_seed), "image_shape": list(image_shape),
            "jobs": [[j.content, list(j.styles), j.seed, j.lr_scale] for j in jobs],
            "method": config.method, "arch": config.arch, "weights": repr(config.weights),
            "pooling": config.pooling, "style_loss": config.style_loss.describe(),
            "losses": repr(config.losses), "schedule": repr(config.schedule), "record": config.record}
    return hashlib.sha256(json.dumps(plan, sort_keys=True, default=repr).encode()).hexdigest()


def shard_name(attempt: int, first: int, n: int) -> str:
    return f"{'shard' if attempt == 0 else f'retry{attempt}'}-{first}-{n}.npz"


class ShardStore:
    """Finished batches of one planned run under ``folder``."""

    def __init__(self, folder: str | Path, fingerprint: str):
        self.folder, self.fingerprint = Path(folder), fingerprint

    def save(self, attempt: int, first: int, indices: Sequence[int], shard: Shard) -> Path:
        path = self.folder / shard_name(attempt, first, len(indices))
        styles = np.array([j.styles for j in shard.jobs], np.int64).reshape(len(shard.jobs), -1)
        save_npz(path, fingerprint=np.array(self.fingerprint), attempt=np.int64(attempt),
                 indices=np.asarray(indices, np.int64), content=np.array([j.content for j in shard.jobs], np.int64),
                 styles=styles, seed=np.array([j.seed for j in shard.jobs], np.int64),
                 lr_scale=np.array([j.lr_scale for j in shard.jobs], np.float64),
                 images=shard.images, ok=np.asarray(shard.ok, bool), reasons=np.array(shard.reasons, str),
                 **{f"loss_{k}": v for k, v in shard.losses.items()})
        return path

    def load(self, attempt: int, first: int, indices: Sequence[int], jobs: Sequence[Job]) -> Shard | None:
        """The saved result of this batch, or None when there is none that belongs to this plan."""
        path = self.folder / shard_name(attempt, first, len(indices))
        if not path.is_file():
            return None
        try:
            data = load_npz(path)
            problem = self._mismatch(data, indices, jobs)
        except (DataError, KeyError, ValueError) as exc:
            problem = f"unreadable ({exc})"
        if problem:
            log.warning("%s: ignored and deleted, %s", path, problem)
            path.unlink(missing_ok=True)
            return None
        losses = {k[len("loss_"):]: v for k, v in data.items() if k.startswith("loss_")}
        return Shard(list(jobs), data["images"], losses, data["ok"], [str(r) for r in data["reasons"]])

    def _mismatch(self, data: dict, indices: Sequence[int], jobs: Sequence[Job]) -> str:
        if str(data["fingerprint"]) != self.fingerprint:
            return "written by a run with another plan or other parameters"
        saved = [Job(int(c), tuple(int(s) for s in st), int(sd), float(lr)) for c, st, sd, lr in
                 zip(data["content"], data["styles"], data["seed"], data["lr_scale"], strict=True)]
        if data["indices"].tolist() != list(indices) or saved != list(jobs):
            return "its jobs are not the planned ones"
        if len(data["images"]) != len(jobs):
            return f"{len(data['images'])} images for {len(jobs)} jobs"
        return ""
