"""StyleGAN2-ADA under interruption and bad numbers (issue 10): training stopped mid-way resumes
from its checkpoint bit for bit, in the trainer and in the augment stage; a checkpoint of other
data is not resumed; a non-finite loss stops training by name and keeps the last good checkpoint.
(The GAN's maths and plugin contract: tests/test_stylegan2.py, whose small trainer config these share.)"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from bench.config import load_params
from bench.errors import NumericalError
from bench.gan.training import CHECKPOINT, TRAIN_LOG, Trainer
from bench.stages import augment, prepare
from bench.stages.common import load_prepared
from tests.test_stylegan2 import NAME, _config, _weights

pytestmark = pytest.mark.filterwarnings("ignore:non-integer arguments to randrange:DeprecationWarning")

PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


@pytest.fixture(scope="module")
def data():
    """Ten 8x8 images in [-1, 1], two classes: the size of tests/test_stylegan2.py's trainer config."""
    r = np.random.default_rng(0)
    return r.uniform(-1, 1, (10, 8, 8, 1)).astype(np.float32), np.arange(10) % 2


@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_resume_from_a_checkpoint_is_bit_for_bit(tmp_path, data, compiled):
    """Stopped after 3 of 6 steps (last checkpoint at step 2), then resumed by a fresh process-like
    Trainer: every variable of G, D, G_ema and both optimisers, p and the log equal an unbroken run."""
    images, labels = data
    whole = Trainer(_config(), images, labels, compiled=compiled)
    whole.run(6)
    first = Trainer(_config(), images, labels, compiled=compiled)
    first.run(6, tmp_path, checkpoint_every=2, stop_after=3)
    assert first.step == 3
    resumed = Trainer(_config(), images, labels, compiled=compiled)
    rows = resumed.run(6, tmp_path, checkpoint_every=2)
    assert [r["step"] for r in rows] == [3, 4, 5, 6]
    for a, b in zip(_weights(whole), _weights(resumed), strict=True):
        np.testing.assert_array_equal(a, b)
    assert resumed.ada.state() == whole.ada.state() and 0 < whole.ada.p < 1  # p moved during the run
    with open(tmp_path / TRAIN_LOG, newline="") as fh:
        assert [int(r["step"]) for r in csv.DictReader(fh)] == [1, 2, 3, 4, 5, 6]
    np.testing.assert_array_equal(whole.generate(np.array([0, 1]), 5), resumed.generate(np.array([0, 1]), 5))


def test_a_non_finite_loss_stops_training_by_name_and_saves_nothing(tmp_path, data):
    """Issue 10 (numerics): a NaN in a GAN loss is an error naming the loss and the step; the
    checkpoint on disk stays the last good one."""
    images, labels = data
    trainer = Trainer(_config(), images, labels, compiled=False)
    trainer.run(2, tmp_path, checkpoint_every=1)
    saved = (tmp_path / CHECKPOINT).read_bytes()
    poisoned = images.copy()
    poisoned[:] = np.nan  # every real image: D(real) and L_D become NaN at once
    trainer.images = poisoned
    with pytest.raises(NumericalError, match=r"loss_d = nan.*at step 3"):
        trainer.run(4, tmp_path, checkpoint_every=1)
    assert trainer.step == 2 and (tmp_path / CHECKPOINT).read_bytes() == saved


def test_a_checkpoint_of_other_data_is_not_resumed(tmp_path, data):
    images, labels = data
    Trainer(_config(), images, labels, compiled=False).run(2, tmp_path)
    other = Trainer(_config(), images[::-1].copy(), labels, compiled=False)
    assert not other.load(tmp_path / CHECKPOINT)
    assert other.run(1, tmp_path)[0]["step"] == 1  # started afresh


@pytest.mark.slow
def test_the_augment_stage_resumes_the_gan_from_its_checkpoint_folder(tmp_path, monkeypatch):
    """A run killed after training (before meta.json) leaves OUT/shards/checkpoint.npz and the log; the
    next run of the stage with more steps continues from there and ends bit-identical to a run that was
    never stopped; a complete run removes the checkpoint folder and keeps the log."""

    def params(steps):
        return load_params(PARAMS, "smoke", [f"augment.methods.{NAME}.steps={steps}",
                                                          f"augment.methods.{NAME}.checkpoint_every=2"])

    prepare.prepare(params(4), tmp_path / "prepared")
    prepared = load_prepared(tmp_path / "prepared")
    out, fresh = tmp_path / "resumed", tmp_path / "fresh"
    real_write_json = augment.write_json

    def killed(path, content):
        if Path(path).name == "meta.json":
            raise KeyboardInterrupt("killed before the output was complete")
        real_write_json(path, content)

    monkeypatch.setattr(augment, "write_json", killed)
    with pytest.raises(KeyboardInterrupt, match="killed before the output was complete"):
        augment.augment(params(4), prepared, NAME, out)
    monkeypatch.setattr(augment, "write_json", real_write_json)
    assert (out / augment.CHECKPOINT / CHECKPOINT).is_file()
    before = (out / TRAIN_LOG).read_text().splitlines()
    assert len(before) == 1 + 4

    meta = augment.augment(params(6), prepared, NAME, out)  # continues at step 4
    augment.augment(params(6), prepared, NAME, fresh)
    assert meta["run_info"]["steps"] == 6 and not (out / augment.CHECKPOINT).exists()
    after = (out / TRAIN_LOG).read_text().splitlines()
    same_columns = [c for c in before[0].split(",") if c != "seconds"]

    def rows(lines):
        return [{k: v for k, v in r.items() if k in same_columns} for r in csv.DictReader(lines)]

    assert rows(after)[:4] == rows(before) and rows(after) == rows((fresh / TRAIN_LOG).read_text().splitlines())
    for name in ("images", "labels"):
        np.testing.assert_array_equal(np.load(out / "synthetic.npz")[name], np.load(fresh / "synthetic.npz")[name])
