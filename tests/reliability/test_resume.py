"""Checkpoints and resume, in process: an NST augment stage stopped after some batches and a
training run stopped after some epochs continue from what they finished, and end bit for bit
where an uninterrupted run ends. (tests/reliability/test_interrupt.py kills real processes.)"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from bench.config import load_params
from bench.io import file_digest, load_npz
from bench.nst import shards as shards_module
from bench.stages import augment, prepare
from bench.stages.common import load_prepared
from tests._resume import Stop, interrupted_then_resumed

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings(
    "ignore:non-integer arguments to randrange:DeprecationWarning")]

PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"
NST = "nst-gatys"
# 28 training images x (factor 2 - 1) = 28 jobs in 7 batches of 4; random VGG19 weights, so
# no encoder stage is needed.
NST_SETS = [f"augment.methods.{NST}.weights=random", f"augment.methods.{NST}.batch_size=4",
            f"augment.methods.{NST}.iterations=[3]"]


def _params(sets=()):
    return load_params(PARAMS, "smoke", list(sets))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    prepare.prepare(_params(), out)
    return load_prepared(out)


@pytest.fixture(scope="module")
def nst_reference(prepared, tmp_path_factory):
    out = tmp_path_factory.mktemp("nst-reference")
    augment.augment(_params(NST_SETS), prepared, NST, out)
    return out


def _stop_after_saves(monkeypatch, n: int) -> list[str]:
    saved, original = [], shards_module.ShardStore.save

    def save(self, attempt, first, indices, shard):
        if len(saved) == n:
            raise Stop
        saved.append(original(self, attempt, first, indices, shard).name)
        return self.folder / saved[-1]

    monkeypatch.setattr(shards_module.ShardStore, "save", save)
    return saved


def _same_output(a: Path, b: Path) -> None:
    for name in ("synthetic.npz", "provenance.jsonl"):
        assert file_digest(a / name) == file_digest(b / name), name
    volatile = {"seconds", "run_info"}
    meta_a, meta_b = (json.loads((d / "meta.json").read_text()) for d in (a, b))
    assert {k: v for k, v in meta_a.items() if k not in volatile} == {
        k: v for k, v in meta_b.items() if k not in volatile}


def test_nst_resumes_from_finished_batches_bit_identical(prepared, nst_reference, tmp_path, monkeypatch, caplog):
    out = tmp_path / NST
    saved = _stop_after_saves(monkeypatch, 3)
    with pytest.raises(Stop):
        augment.augment(_params(NST_SETS), prepared, NST, out)
    assert not (out / "meta.json").exists()  # nothing marked complete
    assert saved == ["shard-0-4.npz", "shard-4-4.npz", "shard-8-4.npz"]
    assert sorted(p.name for p in (out / "shards").iterdir()) == sorted(saved)

    monkeypatch.undo()
    ran = []
    original_run = shards_module.ShardStore.save
    monkeypatch.setattr(shards_module.ShardStore, "save",
                        lambda self, a, first, i, s: ran.append(first) or original_run(self, a, first, i, s))
    with caplog.at_level(logging.INFO, logger="augbench"):
        augment.augment(_params(NST_SETS), prepared, NST, out)
    assert ran == [12, 16, 20, 24]  # only the four missing batches ran
    assert "resuming: 3 of 7 batches (12 images)" in caplog.text
    assert not (out / "shards").exists()  # removed once meta.json is written
    _same_output(out, nst_reference)
    assert json.loads((out / "meta.json").read_text())["run_info"]["resumed"] == [
        {"attempt": 0, "batches_loaded": 3, "batches": 7}]


def test_nst_shard_of_another_plan_is_ignored(prepared, nst_reference, tmp_path, monkeypatch, caplog):
    other = tmp_path / "other"
    _stop_after_saves(monkeypatch, 2)
    with pytest.raises(Stop):  # the same batches under another augment seed: another plan
        augment.augment(_params([*NST_SETS, "augment.seed=1"]), prepared, NST, other)
    monkeypatch.undo()
    out = tmp_path / NST
    (out / "shards").mkdir(parents=True)
    for shard in (other / "shards").iterdir():
        shard.rename(out / "shards" / shard.name)
    with caplog.at_level(logging.INFO, logger="augbench"):
        augment.augment(_params(NST_SETS), prepared, NST, out)
    assert "shard-0-4.npz: ignored and deleted, written by a run with another plan" in caplog.text
    assert "resuming" not in caplog.text
    _same_output(out, nst_reference)


def test_nst_different_seed_gives_different_images(prepared, nst_reference, tmp_path):
    out = tmp_path / NST
    augment.augment(_params([*NST_SETS, "augment.seed=1"]), prepared, NST, out)
    a, b = (load_npz(d / "synthetic.npz")["images"] for d in (nst_reference, out))
    assert a.shape == b.shape and not np.array_equal(a, b)


# --------------------------------------------------------------------------- training


def _tiny_fit(checkpoint, epochs=4, log_dir=None):
    """A small CNN with Dropout at 32 px, SGD with momentum, lr plateau and best-epoch weights."""
    import tensorflow as tf

    from bench import training

    rng = np.random.default_rng(0)
    x = rng.random((40, 32, 32, 1), dtype=np.float32)
    y = (x[:, :16].mean(axis=(1, 2, 3)) > x[:, 16:].mean(axis=(1, 2, 3))).astype(int)
    training.seed_everything(3)
    model = tf.keras.Sequential([
        tf.keras.Input((32, 32, 1)), tf.keras.layers.Conv2D(4, 3, activation="relu"),
        tf.keras.layers.BatchNormalization(), tf.keras.layers.GlobalAveragePooling2D(),
        tf.keras.layers.Dropout(0.5), tf.keras.layers.Dense(2, activation="softmax")])
    model.compile(tf.keras.optimizers.SGD(0.05, momentum=0.9), "categorical_crossentropy", metrics=["accuracy"])
    p = SimpleNamespace(epochs=epochs, batch_size=8, reduce_lr_patience=1, reduce_lr_factor=0.5,
                        early_stopping_patience=0, bn_recalibration_images=16)
    return training.fit(model, p, x[:32], y[:32], x[32:], y[32:], seed=3, verbose=0, checkpoint=checkpoint,
                        log_dir=log_dir)


def _same_fit(a, b) -> None:
    assert a.history == b.history and a.best_epoch == b.best_epoch
    for wa, wb in zip(a.model.get_weights(), b.model.get_weights(), strict=True):
        assert np.array_equal(wa, wb)


def test_training_resumes_after_an_epoch_bit_identical(tmp_path, monkeypatch):
    from bench import training

    reference = _tiny_fit(None)
    path = tmp_path / "checkpoint" / "candidate0.npz"
    resumed = interrupted_then_resumed(monkeypatch, _tiny_fit, path)
    _same_fit(reference, resumed)
    assert "lr" in resumed.history and len(set(resumed.history["lr"])) > 1  # the plateau fired
    again = _tiny_fit(training.Checkpoint(path, "run"))  # finished: loaded, not trained
    _same_fit(reference, again)
    assert again.seconds == resumed.seconds


def test_training_checkpoint_of_another_run_is_ignored(tmp_path, caplog):
    from bench import training

    path = tmp_path / "candidate0.npz"
    _tiny_fit(training.Checkpoint(path, "other parameters"), epochs=2)
    with caplog.at_level(logging.INFO, logger="augbench"):
        result = _tiny_fit(training.Checkpoint(path, "run"))
    assert "checkpoint of another run" in caplog.text
    _same_fit(_tiny_fit(None), result)
