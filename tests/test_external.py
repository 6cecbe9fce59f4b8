"""Kept models (bench.models_io), `augbench predict` and the external stage (bench/stages/external.py).

One ResNet50 at 32 px, built untrained (the session's shared model), is saved once per module the
way the train stage saves it; every test reads that folder (or a copy of its record)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import bench
from bench import models_io
from bench.errors import DataError
from bench.io import save_npz, write_json
from bench.stages.common import Prepared

SIZE = 32
CLASSES = ["benign", "malignant"]


def smooth_images(rng: np.random.Generator, n: int, size: int = SIZE) -> np.ndarray:
    """Distinct low-frequency grey images in [0, 1] (their perceptual hashes lie far apart)."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for _ in range(n):
        a, b, c, d = rng.uniform(1, 6, 4)
        out.append(0.5 + 0.25 * np.sin(a * np.pi * xx + c) * np.cos(b * np.pi * yy + d) + 0.1 * rng.random((size, size)))
    return np.clip(np.stack(out), 0, 1).astype(np.float32)


def prepared_meta() -> dict:
    return {"classes": CLASSES, "positive": "malignant", "image_size": SIZE, "srad": False,
            "inputs": {"preprocess": {"image_size": SIZE, "srad": False, "srad_iterations": 10, "srad_scale": 8,
                                      "srad_dt": 0.05}}}


@pytest.fixture(scope="module")
def kept_folder(tmp_path_factory, classifier_model):
    """A run folder holding model.keras + model.json, written by the train stage's keep_model, and
    the predictions.csv beside them that the external stage reads."""
    from bench.stages.train import keep_model

    clf, model = classifier_model("resnet50", (SIZE, SIZE, 3), weights="none")
    folder = tmp_path_factory.mktemp("runs") / "none" / "resnet50" / "seed0"
    folder.mkdir(parents=True)
    prepared = Prepared(np.zeros((1, SIZE, SIZE), np.float32), np.zeros(1, np.int64), ["x"], np.array(["train"]),
                        None, prepared_meta())
    entry = keep_model(model, prepared, "none", "resnet50", "resnet50", clf.params, 0, SIZE, folder)
    pd.DataFrame({"split": ["test"] * 4, "id": list("abcd"), "label": [0, 1, 0, 1],
                  "score": [0.1, 0.8, 0.3, 0.6]}).to_csv(folder / "predictions.csv", index=False)
    return folder, model, clf, entry


def copy_run(kept: Path, to: Path) -> Path:
    """A run folder at ``to`` with a link to the kept model and a copy of its record (to tamper with)."""
    to.mkdir(parents=True)
    (to / models_io.MODEL_FILE).symlink_to(kept / models_io.MODEL_FILE)
    shutil.copy(kept / models_io.MODEL_JSON, to / models_io.MODEL_JSON)
    return to


def edit_record(folder: Path, **changes) -> None:
    record = json.loads((folder / models_io.MODEL_JSON).read_text())
    record.update(changes)
    (folder / models_io.MODEL_JSON).write_text(json.dumps(record))


@pytest.mark.slow  # the shared ResNet50 (built, saved, loaded): tens of seconds on 2 CPU cores
def test_saved_model_record(kept_folder):
    folder, model, _, entry = kept_folder
    record = json.loads((folder / models_io.MODEL_JSON).read_text())
    assert record["augbench_version"] == bench.__version__
    assert record["run"] == {"method": "none", "classifier": "resnet50", "plugin": "resnet50", "seed": 0}
    assert record["classes"] == ["benign", "malignant"] and record["positive"] == "malignant"
    assert record["preprocessing"]["input_size"] == SIZE and record["preprocessing"]["prepared_size"] == SIZE
    assert record["preprocessing"]["classifier"]["plugin"] == "resnet50"
    assert record["sha256"] == entry["sha256"] == models_io.file_digest(folder / models_io.MODEL_FILE)
    assert "commit" in record["git"]
    assert not list(folder.glob(".*.tmp*"))  # written atomically: no temporary left behind


@pytest.mark.slow  # the shared ResNet50 (built, saved, loaded): tens of seconds on 2 CPU cores
def test_load_gives_the_same_predictions(kept_folder, rng):
    folder, model, clf, _ = kept_folder
    kept = models_io.load_kept(folder)
    grey = smooth_images(rng, 4)
    x = clf.preprocess(grey)
    np.testing.assert_allclose(kept.model.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    # the recorded preprocessing reproduces the train stage's (resize_to + the plugin's preprocess)
    np.testing.assert_allclose(models_io.images_for_model(list(grey), kept.record), x, rtol=1e-6)


@pytest.mark.slow  # the shared ResNet50 (built, saved, loaded): tens of seconds on 2 CPU cores
def test_tampered_digest_is_refused(kept_folder, tmp_path):
    run = copy_run(kept_folder[0], tmp_path / "run")
    edit_record(run, sha256="0" * 64)
    with pytest.raises(DataError, match=r"model\.keras: sha256 .* differs .*recorded in model\.json"):
        models_io.load_kept(run)


@pytest.mark.slow  # the shared ResNet50 (built, saved, loaded): tens of seconds on 2 CPU cores
def test_other_version_is_refused(kept_folder, tmp_path):
    run = copy_run(kept_folder[0], tmp_path / "run")
    edit_record(run, augbench_version="0.0.1")
    with pytest.raises(DataError, match=rf"written by augbench 0\.0\.1, this is augbench {bench.__version__}"):
        models_io.load_kept(run)


@pytest.mark.slow  # the shared ResNet50 (built, saved, loaded): tens of seconds on 2 CPU cores
def test_missing_record_is_refused(kept_folder, tmp_path):
    run = copy_run(kept_folder[0], tmp_path / "run")
    (run / models_io.MODEL_JSON).unlink()
    with pytest.raises(DataError, match=r"model\.keras: has no model\.json beside it"):
        models_io.load_kept(run)
    with pytest.raises(DataError, match="no kept model here"):
        models_io.load_kept(tmp_path)


def write_set(root: Path, rng: np.random.Generator, per_class: dict[str, int], size: int = 48) -> None:
    for name, n in per_class.items():
        (root / name).mkdir(parents=True)
        for k, image in enumerate(smooth_images(rng, n, size)):
            Image.fromarray((image * 255).astype(np.uint8)).save(root / name / f"{k}.png")


@pytest.mark.slow  # the shared ResNet50 (built, saved, loaded): tens of seconds on 2 CPU cores
def test_predict_command(kept_folder, tmp_path, rng, capsys):
    from bench.cli import main

    folder = kept_folder[0]
    write_set(tmp_path / "outside", rng, {"benign": 3, "malignant": 2}, size=48)  # resized to 32 as prepared
    out = tmp_path / "scores.csv"
    assert main(["predict", "--model", str(folder), "--data", str(tmp_path / "outside"), "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert len(table) == 5 and set(table["label"]) == set(CLASSES)
    np.testing.assert_allclose(table["p_benign"] + table["p_malignant"], 1.0)
    from bench.stages.external import read_outside_set

    kept = models_io.load_kept(folder)
    outside = read_outside_set(tmp_path / "outside", kept.classes, CLASSES)
    np.testing.assert_allclose(table["p_malignant"], models_io.predict_kept(kept, outside.images), rtol=1e-6)
    metrics = json.loads(out.with_suffix(".metrics.json").read_text())
    assert metrics["n"] == 5 and 0 <= metrics["auc"] <= 1

    (tmp_path / "outside" / "cyst").mkdir()
    shutil.copy(tmp_path / "outside" / "benign" / "0.png", tmp_path / "outside" / "cyst")
    assert main(["predict", "--model", str(folder), "--data", str(tmp_path / "outside")]) == 2
    assert "['cyst'] are not classes of the model" in capsys.readouterr().err


def test_near_duplicates_counted(rng):
    from bench.stages.external import OutsideSet, near_duplicates

    images = smooth_images(rng, 10)
    prepared = Prepared(images, np.arange(10) % 2, [f"p{k}" for k in range(10)],
                        np.array(["train"] * 6 + ["val"] * 2 + ["test"] * 2), None, prepared_meta())
    # two copies of training images (one at another size, slightly noised) among three new images
    copy = np.asarray(Image.fromarray(images[3]).resize((64, 64)), np.float32)
    outside = [images[1], np.clip(copy + 0.01 * rng.standard_normal(copy.shape), 0, 1), *smooth_images(rng, 3)]
    found = near_duplicates(prepared, OutsideSet(outside, [f"e{k}" for k in range(5)], [""] * 5, ["benign"] * 5),
                            SIZE, None, threshold=4)
    assert sorted(zip(found["external_id"], found["prepared_id"], strict=True)) == [("e0", "p1"), ("e1", "p3")]
    assert set(found["prepared_split"]) == {"train"}


@pytest.mark.slow  # the shared ResNet50 (built, saved, loaded): tens of seconds on 2 CPU cores
def test_external_stage(kept_folder, tmp_path, rng):
    from bench.stages.external import main

    runs = tmp_path / "runs"
    run = copy_run(kept_folder[0], runs / "none" / "resnet50" / "seed0")
    shutil.copy(kept_folder[0] / "predictions.csv", run)
    images = smooth_images(rng, 6)
    save_npz(tmp_path / "prepared" / "dataset.npz", images=images, labels=np.arange(6) % 2,
             ids=np.array([f"p{k}" for k in range(6)]), splits=np.array(["train"] * 4 + ["val", "test"]))
    write_json(tmp_path / "prepared" / "meta.json", prepared_meta())
    write_set(tmp_path / "outside", rng, {"benign": 2, "malignant": 2}, size=SIZE)
    Image.fromarray((images[0] * 255).astype(np.uint8)).save(tmp_path / "outside" / "benign" / "copy.png")
    out = tmp_path / "external"
    args = ["--prepared", str(tmp_path / "prepared"), "--runs", str(runs), "--out", str(out)]
    assert main([*args, "--set", f"external.path={tmp_path / 'outside'}"]) == 0
    table = pd.read_csv(out / "external.csv")
    assert table[["method", "classifier", "seed", "n"]].values.tolist() == [["none", "resnet50", 0, 5]]
    assert table["internal_test_auc"].item() == 1.0  # from predictions.csv: 0.8, 0.6 above 0.1, 0.3
    assert {"auc", "accuracy", "sensitivity", "specificity"} <= set(table.columns)
    summary = json.loads((out / "external.json").read_text())
    assert summary["near_duplicate_images"] == 1 and summary["near_duplicate_pairs"] == 1
    assert pd.read_csv(out / "external_duplicates.csv")["prepared_id"].tolist() == ["p0"]

    assert main([*args, "--skip-if-off"]) == 0  # external.path: null
    assert sorted(p.name for p in out.iterdir()) == ["switched_off.json"]
