"""Stage functions without TensorFlow training: prepare, augment, evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from bench import metrics
from bench.config import load_params
from bench.errors import AugbenchError
from bench.io import write_json
from bench.stages import augment, evaluate, prepare, report
from bench.stages import train as train_stage
from bench.stages.common import load_prepared

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def _params(**overrides):
    overrides.setdefault("matrix.zoo", [])  # the classifier zoo has no fake runs here
    sets = [f"{k}={json.dumps(v)}" for k, v in overrides.items()]
    return load_params(PARAMS, "smoke", sets)


def _folder_dataset(root, n=24, seed=0):
    """Two classes of random textures; one image copied into the other class (a conflict)
    and one near-copy within a class (must stay in one split)."""
    rng = np.random.default_rng(seed)
    for label in ("benign", "malignant"):
        (root / label).mkdir(parents=True)
        for i in range(1, n + 1):
            arr = (rng.random((40, 40)) * 255).astype(np.uint8)
            Image.fromarray(arr).save(root / label / f"{label} ({i}).png")
    (root / "malignant" / "malignant (99).png").write_bytes((root / "benign" / "benign (1).png").read_bytes())
    near = np.asarray(Image.open(root / "benign" / "benign (2).png")).astype(int) + 2
    Image.fromarray(np.clip(near, 0, 255).astype(np.uint8)).save(root / "benign" / "benign (98).png")


def test_prepare_folder_drops_conflicts_and_keeps_groups_whole(tmp_path):
    _folder_dataset(tmp_path / "ds")
    params = _params(**{"dataset.source": "folder", "dataset.path": str(tmp_path / "ds"), "matrix.methods": ["none"]})
    meta = prepare.prepare(params, tmp_path / "out")
    manifest = pd.read_csv(tmp_path / "out" / "manifest.csv")
    assert "benign/benign (1)" not in set(manifest["id"])  # conflicting label: dropped
    assert "malignant/malignant (99)" not in set(manifest["id"])
    assert meta["validation"]["label_conflicts"] == 1
    assert manifest.groupby("group")["split"].nunique().max() == 1
    pair = manifest[manifest["id"].isin(["benign/benign (2)", "benign/benign (98)"])]
    assert len(pair) == 2 and pair["group"].nunique() == 1
    prepared = load_prepared(tmp_path / "out")
    assert prepared.images.shape == (len(manifest), 32, 32)
    assert set(prepared.splits) == {"train", "val", "test"}
    assert "Label conflicts: 1" in (tmp_path / "out" / "validation.md").read_text()


@pytest.fixture(scope="module")
def phantom_prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    prepare.prepare(_params(), out)
    return out


def test_prepare_phantom_is_deterministic_and_has_masks(phantom_prepared, tmp_path):
    prepare.prepare(_params(), tmp_path)
    a, b = load_prepared(phantom_prepared), load_prepared(tmp_path)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.splits, b.splits)
    assert a.masks is not None and a.masks.shape == a.images.shape and a.masks.any()


def test_prepare_phantom_splits_by_ratios_by_default(phantom_prepared):
    meta = json.loads((Path(phantom_prepared) / "meta.json").read_text())
    assert meta["split_rule"] == "ratios"
    assert report.dataset_source(meta).startswith(f"generated: {_params().phantom.n_per_class} per class at")


SETS = {"phantom.n_per_class": 4, "phantom.val_per_class": 3, "phantom.test_per_class": 2, "phantom.size": 32,
        "preprocess.image_size": 32}


def test_prepare_phantom_with_its_own_sets_splits_by_sample_index(tmp_path, caplog):
    with caplog.at_level("INFO", logger="augbench"):
        meta = prepare.prepare(_params(**SETS), tmp_path / "a")
    assert "4 train + 3 val + 2 test per class" in caplog.text
    assert meta["split_rule"] == "phantom sets" and meta["n_images"] == 18
    assert meta["split_counts"] == {s: {"benign": n, "malignant": n} for s, n in (("test", 2), ("train", 4),
                                                                                  ("val", 3))}
    manifest = pd.read_csv(tmp_path / "a" / "manifest.csv")
    number = manifest["id"].str.extract(r"\((\d+)\)$")[0].astype(int)  # "benign/benign (7)": sample 6
    expected = np.where(number <= 4, "train", np.where(number <= 7, "val", "test"))
    np.testing.assert_array_equal(manifest["split"], expected)
    # Larger held-out sets leave the training images as they are: sample i does not depend on the counts.
    prepare.prepare(_params(**{**SETS, "phantom.val_per_class": 5, "phantom.test_per_class": 4}), tmp_path / "b")
    a, b = load_prepared(tmp_path / "a"), load_prepared(tmp_path / "b")
    assert a.subset("train").ids == b.subset("train").ids
    np.testing.assert_array_equal(a.subset("train").images, b.subset("train").images)
    assert len(b.subset("val").ids) == 10 and len(b.subset("test").ids) == 8
    assert report.dataset_source(meta).startswith("generated: 4 train + 3 val + 2 test per class at 32 px")


def test_phantom_sets_refuse_a_duplicate_group_across_splits(tmp_path):
    from bench.data.loader import Record
    from bench.errors import DataError

    records = [Record(f"benign/benign ({n})", "benign", f"benign/benign ({n}).png") for n in (1, 2, 3, 4)]
    groups = ["g1", "g1", "g3", "g4"]
    splits = prepare.phantom_set_splits(records, groups, {"train": 2, "val": 1, "test": 1}, tmp_path)
    assert splits.tolist() == ["train", "train", "val", "test"]  # a group within one split is fine
    per_split = {"train": 1, "val": 2, "test": 1}
    with pytest.raises(DataError, match=r"benign/benign \(1\) \(train\), benign/benign \(2\) \(val\)"):
        prepare.phantom_set_splits(records, groups, per_split, tmp_path)
    with pytest.raises(DataError, match="no benign image is left in the phantom's test set"):
        prepare.phantom_set_splits(records[:3], groups[1:], per_split, tmp_path)


def test_augment_uses_only_training_images(phantom_prepared, tmp_path, monkeypatch):
    prepared = load_prepared(phantom_prepared)
    drawn = []  # what the sample grid shows, beside the PNG it writes
    real_grid = augment.sample_grid
    monkeypatch.setattr(augment, "sample_grid", lambda *args: drawn.append(args) or real_grid(*args))
    meta = augment.augment(_params(), prepared, "classical", tmp_path)
    train = prepared.subset("train")
    train_ids = set(train.ids)
    manifest = pd.read_csv(Path(phantom_prepared) / "manifest.csv")  # the split as written, not as subset() reads it
    assert train_ids == set(manifest.loc[manifest["split"] == "train", "id"].astype(str))
    sources = [json.loads(line)["source_id"] for line in (tmp_path / "provenance.jsonl").read_text().splitlines()]
    assert len(sources) == meta["n_synthetic"] > 0 and set(sources) <= train_ids
    [(path, rows, titles, names, _)] = drawn
    assert Path(path) == tmp_path / "grid.png" and titles == ["source (train)", "classical"]
    assert len(rows) == len(names) == min(_params().augment.sample_grid, len(sources)) and set(names) <= train_ids
    for (source, _result), name in zip(rows, names, strict=True):  # the left column is the named training image
        np.testing.assert_array_equal(source, train.images[train.ids.index(name)])
    with Image.open(tmp_path / "grid.png") as grid:
        assert grid.format == "PNG" and np.asarray(grid.convert("L")).std() > 10  # decodes, not blank


def test_training_set_holds_exactly_the_training_split(phantom_prepared, tmp_path):
    """What a classifier is fitted on: the manifest's training images and their synthetic
    images, never a validation or test image."""
    prepared = load_prepared(phantom_prepared)
    augment.augment(_params(), prepared, "classical", tmp_path)
    x, y, composition = train_stage.training_set(prepared, tmp_path)
    manifest = pd.read_csv(Path(phantom_prepared) / "manifest.csv")
    in_train = (manifest["split"] == "train").to_numpy()
    assert composition["n_real"] == in_train.sum() and composition["n_total"] == len(x) == len(y)
    np.testing.assert_array_equal(x[:in_train.sum()], prepared.images[in_train])
    np.testing.assert_array_equal(y[:in_train.sum()], manifest.loc[in_train, "label"].map(
        {"benign": 0, "malignant": 1}).to_numpy())
    held_out = prepared.images[~in_train].reshape(int((~in_train).sum()), -1)
    fitted = x.reshape(len(x), -1)
    assert not (held_out[:, None, :] == fitted[None, :, :]).all(axis=2).any()  # no val/test image, anywhere


def test_leaked_source_is_refused(phantom_prepared):
    prepared = load_prepared(phantom_prepared)
    test_id = prepared.subset("test").ids[0]
    with pytest.raises(AugbenchError, match="not in the training split"):
        augment.check_sources([{"source_id": test_id}], set(prepared.subset("train").ids), "x")
    with pytest.raises(AugbenchError, match="leakage"):
        augment.check_sources([{"source_id": prepared.subset("train").ids[0], "style_ids": [test_id]}],
                              set(prepared.subset("train").ids), "x")


def _fake_run(folder, y, score, seed):
    folder.mkdir(parents=True)
    pd.DataFrame({"split": "test", "id": [f"i{k}" for k in range(len(y))], "label": y, "score": score}
                 ).to_csv(folder / "predictions.csv", index=False)
    write_json(folder / "meta.json", {"seed": seed, "weights": "none", "epochs_run": 3,
                                      "training_set": {"n_total": 10}, "trainable_params": 5})


def test_evaluate_matches_metrics_and_averages_seeds(tmp_path):
    params = _params(**{"matrix.methods": ["none"], "matrix.seeds": [0, 1]})
    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 20)
    scores = [np.clip(y * 0.3 + rng.random(40) * 0.7, 0, 1) for _ in range(2)]
    for seed, s in zip((0, 1), scores, strict=True):
        _fake_run(evaluate.run_dir(tmp_path / "runs", "none", "resnet50", seed), y, s, seed)
    table = evaluate.evaluate(params, tmp_path / "runs", tmp_path / "reports")
    expected = np.mean([roc_auc_score(y, s) for s in scores])  # the seed mean, from an independent AUC
    assert table.loc[0, "auc"] == pytest.approx(expected)
    assert table.loc[0, "auc_low"] <= expected <= table.loc[0, "auc_high"]
    assert table.loc[0, "auc_sd"] > 0
    dvc_metrics = json.loads((tmp_path / "reports" / "metrics.json").read_text())
    assert dvc_metrics["none"]["resnet50"]["auc"] == pytest.approx(expected, abs=1e-4)


def test_evaluate_names_a_missing_run(tmp_path):
    params = _params(**{"matrix.methods": ["none"]})
    with pytest.raises(AugbenchError, match="seed0"):
        evaluate.evaluate(params, tmp_path / "runs", tmp_path / "reports")


def _fake_run_with_val(folder, y, score, y_val, s_val, seed=0, meta=None):
    folder.mkdir(parents=True)
    frame = pd.concat([
        pd.DataFrame({"split": "val", "id": [f"v{k}" for k in range(len(y_val))], "label": y_val, "score": s_val}),
        pd.DataFrame({"split": "test", "id": [f"i{k}" for k in range(len(y))], "label": y, "score": score})])
    frame.to_csv(folder / "predictions.csv", index=False)
    write_json(folder / "meta.json", {"seed": seed, "weights": "none", "epochs_run": 3, "mode": "finetune-all",
                                      "training_set": {"n_total": 10}, "trainable_params": 5, **(meta or {})})


def test_evaluate_val_threshold_and_paired_comparisons(tmp_path):
    from bench import stats

    params = _params(**{"matrix.methods": ["none", "classical"], "matrix.seeds": [0],
                        "matrix.classifiers": ["resnet50"], "matrix.zoo": []})
    rng = np.random.default_rng(1)
    y, y_val = np.array([0, 1] * 30), np.array([0, 1] * 15)
    runs = {}
    for k, method in enumerate(("none", "classical")):
        s = np.clip(y * (0.2 + 0.2 * k) + rng.random(60) * 0.8, 0, 1)
        s_val = np.clip(y_val * 0.3 + rng.random(30) * 0.7, 0, 1)
        runs[method] = (s, s_val)
        _fake_run_with_val(evaluate.run_dir(tmp_path / "runs", method, "resnet50", 0), y, s, y_val, s_val)
    table = evaluate.evaluate(params, tmp_path / "runs", tmp_path / "reports").set_index("method")
    t = stats.closest_to_corner_threshold(y_val, runs["none"][1])
    assert table.loc["none", "threshold_val"] == pytest.approx(t)
    at_t = metrics.binary_metrics(y, runs["none"][0], threshold=t)
    assert table.loc["none", "accuracy_at_val"] == pytest.approx(at_t["accuracy"])
    assert table.loc["none", "recall_at_val"] == pytest.approx(at_t["recall"])
    assert table.loc["none", "auc_bootstrap_sd"] > 0
    compared = pd.read_csv(tmp_path / "reports" / "comparisons.csv")
    assert len(compared) == 1 and compared.loc[0, "method"] == "classical"
    assert compared.loc[0, "baseline_method"] == "none"
    expected = stats.delong_test(y, runs["classical"][0], runs["none"][0])
    assert compared.loc[0, "delong_p"] == pytest.approx(expected.p_value)
    assert compared.loc[0, "delong_p_holm"] == pytest.approx(expected.p_value)  # one comparison: unchanged
    assert compared.loc[0, "auc_diff"] == pytest.approx(expected.diff)


def test_evaluate_refuses_comparisons_on_different_test_sets(tmp_path):
    params = _params(**{"matrix.methods": ["none", "classical"], "matrix.seeds": [0], "matrix.zoo": []})
    y = np.array([0, 1] * 10)
    for method in ("none", "classical"):
        _fake_run_with_val(evaluate.run_dir(tmp_path / "runs", method, "resnet50", 0), y,
                           np.linspace(0, 1, 20), y, np.linspace(0, 1, 20))
    pred = evaluate.run_dir(tmp_path / "runs", "classical", "resnet50", 0) / "predictions.csv"
    frame = pd.read_csv(pred)
    frame.loc[frame["split"] == "test", "id"] = [f"other{k}" for k in range(20)]
    frame.to_csv(pred, index=False)
    with pytest.raises(AugbenchError, match="different test sets"):
        evaluate.evaluate(params, tmp_path / "runs", tmp_path / "reports")


def test_report_has_the_scaling_tables_only_when_the_scaling_stage_ran(tmp_path):
    from bench.stages.report import scaling_section

    assert scaling_section(tmp_path) == ""
    (tmp_path / "speedup.md").write_text("### NST augmentation\n\n| np | speedup T_1/T_p |\n|---|---|\n| 2 | 1.8 |\n")
    (tmp_path / "speedup.png").write_bytes(b"png")
    text = scaling_section(tmp_path)
    assert text.startswith("## Speed-up under Horovod") and "#### NST augmentation" in text
    assert "| 2 | 1.8 |" in text and "![speed-up](speedup.png)" in text
    (tmp_path / "speedup_train.md").write_text("### Training resnet50\n\n| np |\n|---|\n| 2 |\n")
    assert "#### Training resnet50" in scaling_section(tmp_path)


def test_report_header_states_the_gan_and_pseudolabel_settings_as_run():
    """Reports show what was run: the GAN's size, steps, kimg and final ADA p from its meta, and the
    pseudo-label protocol from params, only when those methods ran."""
    from bench.stages.report import gan_lines, pseudolabel_line

    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml", "quick")
    meta = {"n_synthetic": 90, "params": {"resolution": 32, "z_dim": 64, "w_dim": 64, "channel_max": 64,
                                          "batch_size": 32, "ada_target": 0.6, "ada_kimg": 5.0,
                                          "classes": "each", "n_per_class": 45},
            "run_info": {"steps": 200, "kimg": 6.4, "train_seconds": 227.0, "ada_p": 0.128, "r1_gamma": 0.0064,
                         "ema_kimg": 10.0}}
    (item,) = gan_lines({"stylegan2-ada": meta, "nst-gatys": {"params": {}, "run_info": {"iterations": 15}}})
    line = item.markdown  # the header bullet as results.md has it
    assert line.startswith("- **GAN** (stylegan2-ada): ")
    assert "200 steps (6.4 kimg" in line and "final p 0.128" in line
    assert "90 images" in line
    text = pseudolabel_line(params).markdown
    assert f"{params.pseudolabel.folds} folds" in text and f"{params.pseudolabel.encoder_epochs} epochs" in text
    assert f"teacher epochs {params.method_params('nst-pseudolabel').teacher_epochs}" in text
    assert f"{params.pseudolabel.folds} folds over ≤ {params.pseudolabel.max_per_class} images per class" in text
    uncapped = load_params(Path(__file__).resolve().parents[1] / "params.yaml", "quick", ["pseudolabel.max_per_class=null"])
    assert "folds (seed" in pseudolabel_line(uncapped).text  # no subsample named without a cap
    capped = load_params(Path(__file__).resolve().parents[1] / "params.yaml", "quick", ["pseudolabel.max_per_class=40"])
    assert f"{params.pseudolabel.folds} folds over ≤ 40 images per class" in pseudolabel_line(capped).text


def test_report_training_line_states_the_step_options_only_when_on():
    from bench.stages.report import training_line

    meta = {"classifier": "resnet50", "params": {"epochs": 40, "batch_size": 32, "optimizer": "sgd",
                                                  "learning_rate": 0.01, "monitor": "val_auc",
                                                  "jit_compile": False, "precision": "float32"}}
    plain = training_line(meta)
    assert plain == "resnet50: ≤40 epochs, batch 32, sgd lr 0.01, best epoch by val_auc"
    meta["params"].update(jit_compile=True, precision="mixed_bfloat16")
    assert training_line(meta) == plain + ", XLA-compiled steps, mixed_bfloat16"


def _write(folder: Path, names, text: str = "new") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text(f"{text} {name}")


def test_report_copies_the_tables_of_the_optional_stages_that_ran_and_removes_the_others(tmp_path, caplog):
    """--extras: a stage whose folder holds its tables has them copied into --out (over an earlier run's);
    a stage switched off (switched_off.json) or absent leaves none of its files there."""
    from bench.stages.common import OPTIONAL_REPORTS

    out, data = tmp_path / "reports", tmp_path / "data"
    _write(out, [n for names in OPTIONAL_REPORTS.values() for n in names] + ["results.csv"], "old")
    _write(data / "pseudolabel" / "report", OPTIONAL_REPORTS["pseudolabel"])
    _write(data / "quality", ["switched_off.json"])
    (data / "quality" / "switched_off.json").write_text('{"stage": "quality", "reason": "quality.enabled: false"}')
    extras = [data / "pseudolabel" / "report", data / "quality", data / "scaling" / "report"]  # scaling: not run
    with caplog.at_level("INFO", logger="augbench"):
        found = report.copy_extras(extras, out)
    assert found == {"pseudolabel": extras[0], "quality": None, "scaling": None, "external": None}
    assert sorted(p.name for p in out.iterdir()) == sorted([*OPTIONAL_REPORTS["pseudolabel"], "results.csv"])
    assert all((out / n).read_text() == f"new {n}" for n in OPTIONAL_REPORTS["pseudolabel"])
    assert (out / "results.csv").read_text() == "old results.csv"  # not an optional stage's file
    text = caplog.text
    assert "stage quality was switched off" in text and "removed an earlier run's quality.csv" in text
    assert "stage scaling has no tables in --extras" in text
    # pseudolabel switched off next time: its copies go too; scaling ran without training (no speedup_train.*)
    for name in OPTIONAL_REPORTS["pseudolabel"]:
        (data / "pseudolabel" / "report" / name).unlink()
    (data / "pseudolabel" / "report").rmdir()
    _write(data / "pseudolabel", ["switched_off.json"])
    (data / "pseudolabel" / "switched_off.json").write_text('{"stage": "pseudolabel"}')
    ran = [n for n in OPTIONAL_REPORTS["scaling"] if not n.startswith("speedup_train")]
    _write(data / "scaling" / "report", ran)
    (out / "speedup_train.md").write_text("old")
    caplog.clear()
    with caplog.at_level("INFO", logger="augbench"):
        found = report.copy_extras(extras, out)
    assert found == {"pseudolabel": None, "quality": None, "scaling": extras[2], "external": None}
    assert sorted(p.name for p in out.iterdir()) == sorted([*ran, "results.csv"])
    assert not list(out.glob(".*.tmp*"))  # copied through temporary files, none left
    assert "stage pseudolabel was switched off" in caplog.text


def test_report_refuses_two_extras_folders_for_one_stage(tmp_path):
    from bench.stages.common import OPTIONAL_REPORTS

    _write(tmp_path / "a", OPTIONAL_REPORTS["quality"])
    _write(tmp_path / "b", OPTIONAL_REPORTS["quality"])
    with pytest.raises(AugbenchError, match="both hold quality.json"):
        report.copy_extras([tmp_path / "a", tmp_path / "b"], tmp_path / "out")


def test_report_reads_the_fold0_grid_only_when_the_pseudolabel_stage_made_one(tmp_path):
    """A switched-off pseudolabel folder holds no grid: none is copied, and an earlier run's copy goes."""
    params = _params(**{"matrix.methods": ["none"]})
    augmented, out, folds = tmp_path / "augmented", tmp_path / "reports", tmp_path / "pseudolabel"
    (augmented / "none").mkdir(parents=True)
    Image.new("L", (8, 8)).save(augmented / "none" / "grid.png")
    (folds / "fold0" / "augmented").mkdir(parents=True)
    Image.new("L", (8, 8), 200).save(folds / "fold0" / "augmented" / "grid.png")
    assert report.copy_grids(params, augmented, out, folds) == ["none", params.pseudolabel.method]
    assert (out / "grids" / f"{params.pseudolabel.method}.png").is_file()
    (folds / "fold0" / "augmented" / "grid.png").unlink()
    assert report.copy_grids(params, augmented, out, folds) == ["none"]
    assert sorted(p.name for p in (out / "grids").iterdir()) == ["none.png"]
