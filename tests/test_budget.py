"""The training budget (``train.budget``: steps or epochs) and the seeds a train stage trains."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from bench import training

PARAMS_FILE = Path(__file__).resolve().parents[1] / "params.yaml"


def test_an_epoch_of_size_k_is_the_first_k_rows_of_that_epochs_permutation():
    whole = training.epoch_order(3, 5, 100)
    part = training.epoch_rows(3, 5, 100, size=40)
    np.testing.assert_array_equal(part, whole[:40])
    assert len(set(part)) == 40
    # another epoch draws another subset, so every image is used over the epochs
    seen = set().union(*(set(training.epoch_rows(3, e, 100, size=40)) for e in range(20)))
    assert seen == set(range(100))
    np.testing.assert_array_equal(training.epoch_rows(3, 5, 100, size=100), whole)


def test_an_epoch_size_below_one_is_refused():
    with pytest.raises(ValueError, match="epoch size"):
        training.epoch_rows(0, 0, 100, size=0)


def test_an_epoch_larger_than_the_set_is_whole_passes_then_part_of_another():
    rows = training.epoch_rows(3, 5, 40, size=100)  # 2.5 passes over 40 images
    assert len(rows) == 100
    np.testing.assert_array_equal(rows[:40], training.epoch_order(3, 5, 40))  # the first pass: as before
    for k in (0, 1):  # each whole pass holds every image once
        assert sorted(rows[40 * k:40 * (k + 1)]) == list(range(40))
    assert len(set(rows[80:])) == 20
    assert not np.array_equal(rows[:40], rows[40:80])  # the passes are shuffled apart
    np.testing.assert_array_equal(rows, training.epoch_rows(3, 5, 40, size=100))  # from (seed, epoch) alone
    assert not np.array_equal(rows, training.epoch_rows(3, 6, 40, size=100))


def test_under_horovod_the_ranks_share_the_epochs_subset():
    from types import SimpleNamespace

    rows = [training.epoch_rows(1, 2, 100, SimpleNamespace(size=2, rank=r), size=41) for r in (0, 1)]
    assert len(rows[0]) == len(rows[1]) == 20
    np.testing.assert_array_equal(np.concatenate(rows), training.epoch_order(1, 2, 100)[:40])


def test_the_steps_budget_gives_an_augmented_run_the_images_per_epoch_of_the_real_split():
    from bench.stages.train import epoch_size_for

    augmented = {"n_split": 90, "n_total": 450}
    assert epoch_size_for("steps", augmented) == 90
    assert epoch_size_for("epochs", augmented) is None
    assert epoch_size_for("steps", {"n_split": 90, "n_total": 90}) is None  # `none` itself
    assert epoch_size_for("steps", {"n_split": 90, "n_total": 60}) is None  # replace mode, fewer images


def test_min_epoch_images_gives_every_method_the_same_larger_epoch():
    from bench.stages.train import epoch_size_for

    # train.min_epoch_images: `none` (90 images) and a x5 method both take 288 images an epoch
    assert epoch_size_for("steps", {"n_split": 90, "n_total": 90}, 288) == 288
    assert epoch_size_for("steps", {"n_split": 90, "n_total": 450}, 288) == 288
    assert epoch_size_for("steps", {"n_split": 317, "n_total": 634}, 288) == 317  # a larger split: unchanged


def test_min_epoch_images_is_refused_under_the_epochs_budget():
    from bench.config import load_params
    from bench.errors import ConfigError

    with pytest.raises(ConfigError, match="min_epoch_images"):
        load_params(PARAMS_FILE, "smoke", ["train.budget=epochs", "train.min_epoch_images=64"],
                    validate_plugins=False)


def test_a_budget_other_than_steps_or_epochs_is_refused():
    from bench.config import load_params
    from bench.errors import ConfigError

    with pytest.raises(ConfigError, match="train.budget"):
        load_params(PARAMS_FILE, "smoke", ["train.budget=iterations"], validate_plugins=False)


@pytest.fixture(scope="module")
def flipped_stage(tmp_path_factory):
    """Smoke params (two ResNet50 epochs), the prepared phantom and its ×2 flips."""
    from bench.config import load_params
    from bench.stages import augment, prepare
    from bench.stages.common import load_prepared

    params = load_params(PARAMS_FILE, "smoke", ["train.classifiers.resnet50.epochs=2"])
    root = tmp_path_factory.mktemp("budget")
    prepare.prepare(params, root / "prepared")
    prepared = load_prepared(root / "prepared")
    augment.augment(params, prepared, "geometric-flipping", root / "flip")
    return params, prepared, root / "flip"


@pytest.mark.slow
@pytest.mark.parametrize("budget", ["steps", "epochs", "steps-min"])
def test_the_train_stage_takes_the_steps_its_budget_gives(flipped_stage, tmp_path, monkeypatch, budget):
    from bench.stages import train

    params, prepared, flip = flipped_stage
    n_real = len(prepared.subset("train"))
    more = 3 * n_real + 1 if budget == "steps-min" else None  # train.min_epoch_images: > the x2 set
    budget = budget.split("-")[0]
    params = dataclasses.replace(params, train=dataclasses.replace(params.train, budget=budget,
                                                                   min_epoch_images=more))
    epoch_images, real_batches = [], training.epoch_batches

    def spy(x, y, order, *args):
        epoch_images.append(len(order))
        return real_batches(x, y, order, *args)

    monkeypatch.setattr(training, "epoch_batches", spy)
    meta = train.run(params, prepared, flip, "resnet50", 0, tmp_path / "run")
    n_split, n_total = meta["training_set"]["n_split"], meta["training_set"]["n_total"]
    assert n_total == 2 * n_split  # ×2 flips
    expected = more or (n_split if budget == "steps" else n_total)
    assert epoch_images == [expected] * meta["epochs_run"]
    batch = params.classifier_params("resnet50").batch_size
    assert meta["budget"] == budget and meta["epoch_images"] == expected
    assert meta["optimizer_steps"] == meta["epochs_run"] * math.ceil(expected / batch)


def _seeds_trained(monkeypatch, argv):
    from bench.stages import train

    seen = []
    monkeypatch.setattr(train, "load_prepared", lambda path: None)
    monkeypatch.setattr(train, "split_for", lambda params, prepared, seed, aa=False: prepared)
    monkeypatch.setattr(train, "run", lambda params, prepared, augmented, clf, seed, out, *a, **k: seen.append((seed, str(out))))
    assert train.main(["--params", str(PARAMS_FILE), "--profile", "smoke", "--augmented", "x", "--classifier",
                       "resnet50", *argv]) == 0
    return seen


def test_without_seed_the_train_stage_trains_every_seed_of_the_matrix(monkeypatch, tmp_path):
    from bench.config import load_params

    seeds = load_params(PARAMS_FILE, "smoke").matrix.seeds
    assert len(seeds) >= 2
    seen = _seeds_trained(monkeypatch, ["--out", str(tmp_path / "seed{seed}")])
    assert seen == [(s, str(tmp_path / f"seed{s}")) for s in seeds]


def test_the_aa_control_trains_the_matrix_seeds_plus_the_offset(monkeypatch, tmp_path):
    from bench.config import load_params

    params = load_params(PARAMS_FILE, "smoke")
    seen = _seeds_trained(monkeypatch, ["--aa", "--out", str(tmp_path / "seed{seed}")])
    offset = params.controls.aa_seed_offset
    assert [s for s, _ in seen] == [s + offset for s in params.matrix.seeds]
    assert not set(s for s, _ in seen) & set(params.matrix.seeds)


def test_several_seeds_need_a_seed_placeholder_in_out(monkeypatch, tmp_path, capsys):
    with pytest.raises(SystemExit):
        _seeds_trained(monkeypatch, ["--out", str(tmp_path / "run")])
    assert "{seed}" in capsys.readouterr().err

