"""Kept models (bench.models_io), `augbench predict` and the external stage (bench/stages/external.py).

One ResNet50 at 32 px, built untrained (the session's shared model), is saved once per module the
way the train stage saves it; every test reads that folder (or a copy of its record)."""

from __future__ import annotations

import hashlib
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
    assert record["sha256"] == models_io.file_digest(folder / models_io.MODEL_FILE)
    weights = hashlib.sha256(b"".join(np.ascontiguousarray(w).tobytes() for w in model.get_weights()))
    assert entry == {"file": models_io.MODEL_FILE, "weights_sha256": weights.hexdigest()}  # meta.json's entry
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
    outside = read_outside_set(tmp_path / "outside", kept.classes)
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
def test_external_stage_resnet50(kept_folder, tmp_path, rng):
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
    args = ["--prepared", str(tmp_path / "prepared"), "--runs", str(runs), "--out", str(out), *MATRIX]
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


# ------------------------------------------------------------------ a deterministic model (fast)
# A tiny network whose P(malignant) is a known, increasing function of an image's brightness: with
# the resnet50 plugin's 'caffe' preprocessing (BGR, ImageNet means subtracted, no scaling) a uniform
# grey image g gives channel means 255 g − mean_c, so the logit is W (765 g − Σ mean_c) + B.
W, B = 0.01, 0.0
CAFFE_MEANS = (103.939, 116.779, 123.68)


def expected_p(grey_level: np.ndarray) -> np.ndarray:
    """The tiny model's P(malignant) of a uniform image of grey level ``g``, computed by hand."""
    logit = W * (3 * 255 * np.asarray(grey_level, np.float64) - sum(CAFFE_MEANS)) + B
    return 1 / (1 + np.exp(-logit))


def tiny_model():
    import tensorflow as tf

    inputs = tf.keras.Input((SIZE, SIZE, 3))
    dense = tf.keras.layers.Dense(1, activation="sigmoid")
    outputs = dense(tf.keras.layers.GlobalAveragePooling2D()(inputs))
    dense.set_weights([np.full((3, 1), W, np.float32), np.full((1,), B, np.float32)])
    return tf.keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def tiny_kept(tmp_path_factory):
    """A kept-model folder (runs/none/resnet50/seed0: the resnet50 plugin's preprocessing) holding the
    tiny deterministic network, trained on BUSI's order [benign, malignant], with a predictions.csv."""
    from bench import registry
    from bench.typed import to_dict

    clf = registry.create("classifier", "resnet50")
    folder = tmp_path_factory.mktemp("tiny") / "none" / "resnet50" / "seed0"
    folder.mkdir(parents=True)
    preprocessing = models_io.preprocessing_record(prepared_meta(), SIZE, "resnet50", to_dict(clf.params))
    models_io.save_kept(tiny_model(), folder, {"method": "none", "classifier": "resnet50", "plugin": "resnet50",
                                               "seed": 0}, CLASSES, "malignant", preprocessing)
    pd.DataFrame({"split": ["test"] * 4, "id": list("abcd"), "label": [0, 1, 0, 1],
                  "score": [0.1, 0.8, 0.3, 0.6]}).to_csv(folder / "predictions.csv", index=False)
    return folder


def breastmnist_npz(path: Path, malignant: list[float], benign: list[float]) -> None:
    """A BreastMNIST-format file (label 0 = malignant, 1 = benign) of uniform 28 px images; the same
    images in each official split."""
    levels = [*malignant, *benign]
    images = np.stack([np.full((28, 28), round(g * 255), np.uint8) for g in levels])
    labels = np.array([[0]] * len(malignant) + [[1]] * len(benign), np.uint8)
    np.savez(path, **{f"{split}_{what}": array for split in ("train", "val", "test")
                      for what, array in (("images", images), ("labels", labels))})


def test_predict_scores_a_breastmnist_file_by_its_own_class_names(tiny_kept, tmp_path, capsys):
    """Bright images are malignant here, and the model calls bright images malignant: AUC 1. Read
    with the training set's order ([benign, malignant]) instead, label 0 would be called benign and
    the AUC would be 0."""
    from bench.cli import main

    data = tmp_path / "breastmnist.npz"  # the name of a known copy: its dataset card names the labels
    malignant, benign = [0.7, 0.8, 0.9], [0.1, 0.2, 0.3, 0.4]
    breastmnist_npz(data, malignant, benign)
    out = tmp_path / "scores.csv"
    (tmp_path / "scores.metrics.json").write_text("{}")
    assert main(["predict", "--model", str(tiny_kept), "--data", str(data), "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert len(table) == 3 * 7  # the three official splits
    metrics = json.loads(out.with_suffix(".metrics.json").read_text())
    assert metrics["auc"] == 1.0 and metrics["positive"] == "malignant"
    # each probability is the hand-computed one of the image's grey level
    levels = {round(g * 255) / 255: label for g, label in [*((g, "malignant") for g in malignant),
                                                          *((g, "benign") for g in benign)]}
    for level, label in levels.items():
        rows = table[np.isclose(expected_p(level), table["p_malignant"], atol=2e-3)]
        assert len(rows) and set(rows["label"]) == {label}, (level, label)

    # an explicit --classes that contradicts the card is refused; swapped on a file no card knows,
    # --classes decides the direction (here wrongly, so the AUC flips to 0)
    assert main(["predict", "--model", str(tiny_kept), "--data", str(data), "--classes", "benign,malignant"]) == 2
    assert "disagrees with the dataset card" in capsys.readouterr().err
    unknown = tmp_path / "mystery.npz"
    shutil.copy(data, unknown)
    assert main(["predict", "--model", str(tiny_kept), "--data", str(unknown), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--classes" in err and "no dataset card names them" in err
    assert main(["predict", "--model", str(tiny_kept), "--data", str(unknown), "--classes", "benign,malignant",
                 "--out", str(out)]) == 0
    assert json.loads(out.with_suffix(".metrics.json").read_text())["auc"] == 0.0


def test_predict_without_both_classes_leaves_no_metrics(tiny_kept, tmp_path, rng):
    from bench.cli import main

    write_set(tmp_path / "outside", rng, {"benign": 2}, size=SIZE)
    out = tmp_path / "scores.csv"
    out.with_suffix(".metrics.json").write_text('{"auc": 0.9}')  # an older run's
    assert main(["predict", "--model", str(tiny_kept), "--data", str(tmp_path / "outside"), "--out", str(out)]) == 0
    assert len(pd.read_csv(out)) == 2 and not out.with_suffix(".metrics.json").exists()


def test_preprocessing_at_48_px_with_srad(rng):
    """images_for_model = the prepare stage's Lanczos resize and despeckle (SRAD), then the train
    stage's resize to the input size and the plugin's preprocessing."""
    from types import SimpleNamespace

    from bench import registry
    from bench.data.loader import resize
    from bench.stages.prepare import despeckle
    from bench.stages.train import resize_to

    size, input_size = 48, 40
    meta = {**prepared_meta(), "image_size": size, "srad": True,
            "inputs": {"preprocess": {"image_size": size, "srad": True, "srad_iterations": 2, "srad_scale": 2,
                                      "srad_dt": 0.05}}}
    clf = registry.create("classifier", "resnet50")
    record = {"preprocessing": models_io.preprocessing_record(meta, input_size, "resnet50", {})}
    assert record["preprocessing"]["srad"] == {"iterations": 2, "scale": 2, "dt": 0.05}
    grey = [smooth_images(rng, 1, 70)[0], smooth_images(rng, 1, 33)[0]]
    pp = SimpleNamespace(preprocess=SimpleNamespace(srad_iterations=2, srad_scale=2, srad_dt=0.05))
    prepared = despeckle(np.stack([resize(g, size) for g in grey]), pp)
    assert not np.allclose(prepared, np.stack([resize(g, size) for g in grey]), atol=1e-4)  # SRAD did something
    want = clf.preprocess(resize_to(prepared, input_size))
    got = models_io.images_for_model(grey, record)
    assert got.shape == (2, input_size, input_size, 3)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


MATRIX = ["--set", "matrix.methods=[none]", "--set", "matrix.classifiers=[resnet50]", "--set", "matrix.zoo=[]",
          "--set", "matrix.seeds=[0]"]


def test_external_stage_scores_the_matrix_and_the_aa_runs(tiny_kept, tmp_path):
    """The matrix's run and the A/A run (labelled none-aa) are scored, a stale method's folder is not;
    near-duplicates of training/validation images are counted apart from those of test images."""
    from bench.stages.external import main

    runs = tmp_path / "runs"
    for where in ("none/resnet50/seed0", "none-aa/resnet50/seed1000", "removed-method/resnet50/seed0"):
        run = copy_run(tiny_kept, runs / where)
        shutil.copy(tiny_kept / "predictions.csv", run)
    images = smooth_images(np.random.default_rng(1), 6)  # mean grey about 0.55; distinct hashes
    save_npz(tmp_path / "prepared" / "dataset.npz", images=images, labels=np.array([0, 0, 0, 1, 1, 1]),
             ids=np.array([f"p{k}" for k in range(6)]), splits=np.array(["train", "train", "test", "train", "val",
                                                                         "test"]))
    write_json(tmp_path / "prepared" / "meta.json", prepared_meta())
    # outside: brighter = malignant, so the tiny model scores AUC 1; copies of p1 (train) and p2 (test)
    outside = tmp_path / "outside"
    for name, grey in (("benign", [images[1], images[2], np.full((40, 40), 0.15)]),
                       ("malignant", [np.full((40, 40), 0.85), np.full((40, 40), 0.95)])):
        (outside / name).mkdir(parents=True)
        for k, g in enumerate(grey):
            Image.fromarray((np.clip(g, 0, 1) * 255).astype(np.uint8)).save(outside / name / f"{k}.png")
    out = tmp_path / "external"
    args = ["--prepared", str(tmp_path / "prepared"), "--runs", str(runs), "--out", str(out), *MATRIX,
            "--set", f"external.path={outside}", "--set", "external.near_duplicate_threshold=2"]
    assert main(args) == 0
    table = pd.read_csv(out / "external.csv")
    assert table[["method", "classifier", "seed"]].values.tolist() == [["none", "resnet50", 0],
                                                                       ["none-aa", "resnet50", 0]]
    assert table["auc"].tolist() == [1.0, 1.0]
    summary = json.loads((out / "external.json").read_text())
    assert summary["near_duplicate_images_train_val"] == 1 and summary["near_duplicate_images_test"] == 1, summary
    assert "training or validation" in (out / "external.md").read_text()

    # a model trained on other prepared data (another image size) is refused, naming its record
    meta = prepared_meta()
    write_json(tmp_path / "prepared" / "meta.json", {**meta, "image_size": 48,
                                                     "inputs": {"preprocess": {**meta["inputs"]["preprocess"],
                                                                               "image_size": 48}}})
    with pytest.raises(DataError, match=r"model\.json: the model was trained on 32 px images .* prepared data is 48 px"):
        main(args)
    # a matrix run without a kept model is refused
    write_json(tmp_path / "prepared" / "meta.json", meta)
    with pytest.raises(DataError, match=r"seed1: 1 of the matrix's 2 runs hold no kept model"):
        main([*args, "--set", "matrix.seeds=[0,1]"])


# ------------------------------------------------------------------ custom layers in a fresh process


LOAD_IN_A_FRESH_PROCESS = """
import json, sys
import numpy as np
from bench import models_io
kept = models_io.load_kept(sys.argv[1])
x = np.load(sys.argv[2])
print(json.dumps({"layers": sorted(type(layer).__name__ for layer in kept.model.layers),
                  "p": kept.model(x, training=False).numpy().tolist(),
                  "methods_imported": sorted(m for m in sys.modules if m.startswith("methods."))}))
"""


@pytest.mark.slow  # a second Python process that imports TensorFlow: ~10-20 s on 2 CPU cores
def test_a_kept_model_with_the_zoos_custom_layers_loads_in_a_fresh_process(tmp_path, rng):
    """The classifier plugin named in model.json registers its layers (DRS, SigmoidPair,
    ShiftedMaxPooling2D) through the registry: bench itself imports no plugin module."""
    import subprocess
    import sys

    import tensorflow as tf

    from bench import registry
    from bench.typed import to_dict
    from methods.classify.layers import DRS, ShiftedMaxPooling2D, SigmoidPair

    clf = registry.create("classifier", "drs-resnet101")
    inputs = tf.keras.Input((8, 8, 3))
    x = ShiftedMaxPooling2D(pool_size=2, name="pool")(inputs)
    drs = DRS(name="block_drs")
    x = drs(x)
    logit = tf.keras.layers.Dense(1, name="head_dense")(tf.keras.layers.GlobalAveragePooling2D()(x))
    model = tf.keras.Model(inputs, SigmoidPair(name="head_sigmoid_pair")(logit))
    drs.set_weights([w + rng.normal(0, 0.3, w.shape).astype(np.float32) for w in drs.get_weights()])
    folder = tmp_path / "none" / "drs-resnet101" / "seed0"
    preprocessing = models_io.preprocessing_record(prepared_meta(), 8, "drs-resnet101", to_dict(clf.params))
    models_io.save_kept(model, folder, {"method": "none", "classifier": "drs-resnet101", "plugin": "drs-resnet101",
                                        "seed": 0}, CLASSES, "malignant", preprocessing)
    batch = rng.normal(0, 50, (3, 8, 8, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", batch)
    done = subprocess.run([sys.executable, "-c", LOAD_IN_A_FRESH_PROCESS, str(folder), str(tmp_path / "x.npy")],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"DRS", "ShiftedMaxPooling2D", "SigmoidPair"} <= set(got["layers"])
    assert "methods.classify.layers" in got["methods_imported"]  # registered by the plugin, on demand
    np.testing.assert_allclose(got["p"], model(batch, training=False).numpy(), rtol=1e-5, atol=1e-6)
