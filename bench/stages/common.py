"""Helpers shared by the stage entry points: arguments, params, prepared data."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import shutil
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.config import Params, load_params
from bench.errors import ConfigError
from bench.io import file_digest, load_npz, read_json, remove_temporaries, write_json
from bench.lock import workspace_lock
from bench.plugins import ImageSet

log = logging.getLogger("augbench")


def add_params_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("--profile", default=None, help="profile to use (default: 'profile' in the params file)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a parameter, e.g. --set train.classifiers.resnet50.epochs=2")


def params_from_args(args: argparse.Namespace) -> Params:
    return load_params(args.params, args.profile, args.overrides)


# The optional stages and the report files each writes (into its --reports/--out folder); the last
# name is written last and marks the stage's tables as present (the report stage's --extras).
OPTIONAL_REPORTS: dict[str, tuple[str, ...]] = {
    "pseudolabel": ("pseudolabel.csv", "pseudolabel.md", "pseudolabel.json"),
    "quality": ("quality.csv", "quality.md", "quality.json"),
    "scaling": ("speedup.csv", "speedup.md", "speedup.png", "speedup_train.csv", "speedup_train.md", "scaling.json"),
    "external": ("external.csv", "external_duplicates.csv", "external.md", "external.json"),
}
SWITCHED_OFF = "switched_off.json"  # what an optional stage's data folder holds when it was switched off


def add_skip_if_off_arg(parser: argparse.ArgumentParser, stage: str, folder: str) -> None:
    parser.add_argument("--skip-if-off", action="store_true",
                        help=f"when {stage}.enabled is false, write {folder}/{SWITCHED_OFF} (after removing an "
                             "earlier run's output) and exit 0, instead of refusing: dvc.yaml runs every stage, "
                             "so this is how a stage is switched off under DVC")


def enabled_params(args: argparse.Namespace, stage: str, prog: str) -> Params | None:
    """The parameters of an optional stage's CLI. When ``<stage>.enabled`` is false: None with
    ``--skip-if-off`` (the caller then writes :func:`switched_off`), otherwise refused (there is
    nothing to do)."""
    params = params_from_args(args)
    if not getattr(params, stage).enabled:
        if getattr(args, "skip_if_off", False):
            return None
        raise ConfigError(f"{stage}.enabled", f"is false, so `{prog}` has nothing to do",
                          "set it to true, or add --skip-if-off (as dvc.yaml does) to record the stage as "
                          "switched off")
    return params


def _remove(path: Path) -> bool:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
        return True
    if path.exists() or path.is_symlink():
        path.unlink()
        return True
    return False


def switched_off(stage: str, folder: Path, stale: list[Path], reason: str | None = None) -> Path:
    """An optional stage's output when ``<stage>.enabled`` is false (``--skip-if-off``): the paths of
    ``stale`` (an earlier run's output: files or folders) are removed, then ``folder/switched_off.json``
    is written. ``folder`` is the stage's data folder (its one DVC output). ``reason``: the setting
    that switches it off, when not ``<stage>.enabled: false``."""
    removed = [path for path in stale if _remove(path)]
    marker = folder / SWITCHED_OFF
    reason = reason or f"{stage}.enabled: false"
    write_json(marker, {"stage": stage, "reason": reason})
    log.info("stage %s: switched off (%s); wrote %s%s", stage, reason, marker,
             f"; removed an earlier run's {', '.join(str(p) for p in removed)}" if removed else "")
    return marker


def not_switched_off(folder: Path) -> None:
    """A stage that runs removes the marker an earlier switched-off run left in its data folder."""
    (folder / SWITCHED_OFF).unlink(missing_ok=True)


def switched_off_stage(folder: Path) -> str | None:
    """The stage that ``folder`` (or its parent) records as switched off, or None."""
    for candidate in (folder / SWITCHED_OFF, folder.parent / SWITCHED_OFF):
        if candidate.is_file():
            return str(read_json(candidate).get("stage") or "") or None
    return None


def stable_seed(*parts: object) -> np.random.SeedSequence:
    """A seed sequence from ints and strings, stable across processes (no ``hash()``)."""
    ints = [p if isinstance(p, int) else zlib.crc32(str(p).encode()) for p in parts]
    return np.random.SeedSequence(ints)


@dataclass
class Prepared:
    """The prepare stage's output, loaded."""

    images: np.ndarray  # float32 (N, S, S) in [0, 1]
    labels: np.ndarray  # int64, 1 = positive class
    ids: list[str]
    splits: np.ndarray  # "train" | "val" | "test"
    masks: np.ndarray | None
    meta: dict
    digest: str = ""  # sha256 of dataset.npz: downstream stages record what they were made from
    # split.mode repeated-kfold: every replicate's split, shape (R, N) (bench.data.splits); `splits` is
    # replicate 0's. None for a fixed split.
    replicates: np.ndarray | None = None
    replicate: int | None = None  # which replicate `splits` holds (a view from for_replicate)

    def subset(self, split: str) -> ImageSet:
        keep = self.splits == split
        return ImageSet(self.images[keep], self.labels[keep], [i for i, k in zip(self.ids, keep, strict=True) if k])

    def for_replicate(self, replicate: int) -> Prepared:
        """The same images with replicate ``replicate``'s train/val/test split (repeated k-fold)."""
        if self.replicates is None:
            raise ConfigError("split.mode", "is repeated-kfold, but the prepared data has one fixed split",
                              "re-run the prepare stage with these parameters (dvc repro, or augbench prepare)")
        if not 0 <= replicate < len(self.replicates):
            raise ConfigError("matrix.seeds", f"replicate {replicate} asked for, the prepared data has "
                              f"{len(self.replicates)}", "re-run the prepare stage with these parameters")
        return dataclasses.replace(self, splits=self.replicates[replicate], replicate=int(replicate))


def load_prepared(folder: str | os.PathLike) -> Prepared:
    folder = Path(folder)
    arrays = load_npz(folder / "dataset.npz")
    return Prepared(images=arrays["images"], labels=arrays["labels"].astype(np.int64),
                    ids=[str(i) for i in arrays["ids"]], splits=arrays["splits"].astype(str),
                    masks=arrays.get("masks"), meta=read_json(folder / "meta.json"),
                    digest=file_digest(folder / "dataset.npz"),
                    replicates=arrays["replicate_splits"].astype(str) if "replicate_splits" in arrays else None)


def clear_keras() -> None:
    """Drop Keras' global graph state between models trained in one process (stages that run others)."""
    import tensorflow as tf

    tf.keras.backend.clear_session()


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


@contextlib.contextmanager
def writing(folder: str | os.PathLike, what: str = "this output folder") -> Iterator[Path]:
    """Hold ``folder``'s lock (bench.lock) while a stage writes there, after removing the
    temporary files of a run that was killed mid-write."""
    with workspace_lock(folder, what) as lock:
        for path in remove_temporaries(folder):
            log.info("removed %s, left by an interrupted run", path)
        yield lock
