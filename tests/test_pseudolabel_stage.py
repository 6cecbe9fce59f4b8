"""Stage ``pseudolabel`` (Mikołajczyk & Grochowski 2018's protocol): fold roles, the leakage audit of
a whole run (encoder, NST, teacher and classifier see only the fold's sources), the Table-I files,
resuming finished folds, and the report's k-fold row."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bench.errors import AugbenchError
from bench.io import read_json
from bench.metrics import METRIC_NAMES
from bench.nst.domain import ids_digest
from bench.pseudolabel import Fold
from bench.stages import pseudolabel, report
from bench.stages.common import load_prepared
from tests import test_nst_stages

_params = test_nst_stages._params  # the smoke profile with overrides
prepared_dir = test_nst_stages.prepared_dir  # fixture: the smoke profile's prepared data

FOLDS = 2  # the smallest plan the stage accepts: keeps the end-to-end run short


def test_fold_data_gives_each_image_its_fold_role(prepared_dir):
    prepared = load_prepared(prepared_dir)
    ids = prepared.ids
    fold = Fold(3, tuple(ids[4:]), tuple(ids[:2]), tuple(ids[2:4]))
    data = pseudolabel.fold_data(prepared, fold)
    assert data.subset("train").ids == list(ids[4:])
    assert data.subset("val").ids == list(ids[:2]) and data.subset("test").ids == list(ids[2:4])
    assert data.digest != prepared.digest and data.meta["fold"] == 3
    other = pseudolabel.fold_data(prepared, Fold(3, tuple(ids[2:]), tuple(ids[:1]), tuple(ids[1:2])))
    assert other.digest != data.digest  # the digest names the roles: encoders and checkpoints of one fold
    with pytest.raises(AugbenchError, match="two roles"):
        pseudolabel.fold_data(prepared, Fold(0, tuple(ids[1:]), tuple(ids[:1]), tuple(ids[1:2])))
    with pytest.raises(AugbenchError, match="'nope' .1 images., which the prepared data does not hold"):
        pseudolabel.fold_data(prepared, Fold(0, (*ids[2:], "nope"), tuple(ids[:1]), tuple(ids[1:2])))


def test_fold_data_leaves_out_images_outside_the_plan(prepared_dir):
    """With pseudolabel.max_per_class the plan covers a subsample: the fold holds only its images."""
    prepared = load_prepared(prepared_dir)
    ids = prepared.ids
    fold = Fold(0, tuple(ids[3:9]), (ids[1],), (ids[0], ids[2]))
    data = pseudolabel.fold_data(prepared, fold)
    assert data.ids == list(ids[:9]) and data.images.shape[0] == 9 == len(data.labels) == len(data.splits)
    np.testing.assert_array_equal(data.images, prepared.images[:9])
    np.testing.assert_array_equal(data.labels, prepared.labels[:9])
    assert data.masks is not None and data.masks.shape[0] == 9
    np.testing.assert_array_equal(data.masks, prepared.masks[:9])
    assert data.subset("test").ids == [ids[0], ids[2]] and data.subset("train").ids == list(ids[3:9])


def test_fold_key_depends_on_the_subsample(prepared_dir):
    prepared = load_prepared(prepared_dir)
    data = pseudolabel.fold_data(prepared, Fold(0, tuple(prepared.ids[4:]), tuple(prepared.ids[:2]),
                                                 tuple(prepared.ids[2:4])))
    keys = {pseudolabel.fold_key(_params(**over), data)
            for over in ({}, {"pseudolabel.max_per_class": 8}, {"pseudolabel.max_per_class": 9})}
    assert len(keys) == 3
    smaller = pseudolabel.fold_data(prepared, Fold(0, tuple(prepared.ids[4:-1]), tuple(prepared.ids[:2]),
                                                   tuple(prepared.ids[2:4])))
    assert json.loads(pseudolabel.fold_key(_params(), smaller))["n_images"] == len(prepared.ids) - 1


def test_the_plan_covers_a_subsample_and_says_so(prepared_dir, tmp_path, monkeypatch):
    """max_per_class: folds.json and meta.json name the subsample's size, every fold holds only it
    (each fold's run is replaced here: the plan, not the training, is under test)."""
    params = _params(**{"pseudolabel.folds": FOLDS, "pseudolabel.max_per_class": 8})
    prepared = load_prepared(prepared_dir)
    seen = []

    def fake_run_fold(params, prepared, fold, folder):
        data = pseudolabel.fold_data(prepared, fold)
        seen.append(data.ids)
        row = _rows([0.5 + 0.1 * fold.index] * (fold.index + 1))[fold.index]
        folder.mkdir(parents=True)
        (folder / "meta.json").write_text(json.dumps({"key": pseudolabel.fold_key(params, data), "row": row}))
        return row

    monkeypatch.setattr(pseudolabel, "run_fold", fake_run_fold)
    out = tmp_path / "out"
    pseudolabel.pseudolabel(params, prepared, pseudolabel.read_groups(prepared_dir, prepared), out, tmp_path / "r")
    plan, meta = read_json(out / "folds.json"), read_json(out / "meta.json")
    assert plan["max_per_class"] == 8 and plan["per_class"] == {"0": 8, "1": 8} and plan["n_images"] == 16
    assert meta["n_images"] == 16 and meta["params"]["max_per_class"] == 8
    assert len(seen) == FOLDS and all(len(ids) == 16 for ids in seen)
    assert all(json.loads(key)["n_images"] == 16 for key in meta["keys"])


def test_groups_come_from_the_manifest(prepared_dir, tmp_path):
    prepared = load_prepared(prepared_dir)
    groups = pseudolabel.read_groups(prepared_dir, prepared)
    manifest = pd.read_csv(prepared_dir / "manifest.csv", dtype=str)
    assert groups == [dict(zip(manifest["id"], manifest["group"], strict=True))[i] for i in prepared.ids]
    (tmp_path / "manifest.csv").write_text(manifest.iloc[1:].to_csv(index=False))
    with pytest.raises(AugbenchError, match="no group for"):
        pseudolabel.read_groups(tmp_path, prepared)


def test_an_append_method_is_refused(prepared_dir, tmp_path):
    params = _params(**{"pseudolabel.method": "classical", "pseudolabel.folds": FOLDS})
    prepared = load_prepared(prepared_dir)
    with pytest.raises(AugbenchError, match="synthetic images only"):
        pseudolabel.pseudolabel(params, prepared, list(prepared.ids), tmp_path / "out", tmp_path / "reports")


def _rows(aucs):
    return [{"fold": k, **{m: 0.5 for m in METRIC_NAMES}, "auc": a, "n_synthetic": 10 + k,
             "n_synthetic_malignant": 5, "n_val": 4, "n_test": 4, "teacher_threshold": 0.5, "epochs_run": 2 + k,
             "seconds": 1.0} for k, a in enumerate(aucs)]


def test_table_i_files_and_the_report_row(tmp_path):
    params = _params(**{"pseudolabel.folds": 3})
    table = pseudolabel.fold_results(_rows([0.7, 0.8, 0.9]))
    assert list(table["fold"]) == ["0", "1", "2", "mean", "sd"]
    pseudolabel.write_reports(params, table, tmp_path)
    saved = read_json(tmp_path / "pseudolabel.json")
    assert saved["mean"]["auc"] == pytest.approx(0.8) and saved["sd"]["auc"] == pytest.approx(0.1)
    assert "Table I" in (tmp_path / "pseudolabel.md").read_text()
    row = report.fold_mean_row(tmp_path)
    assert row["Method"] == "nst-pseudolabel (3-fold mean ± sd)" and row["Classifier"] == "resnet50"
    assert row["AUC"] == "0.800 ± 0.100" and row["Acc"] == "50.0 ± 0.0"
    assert row["n train"] == "10–12" and row["Epochs"] == 4
    assert report.fold_mean_row(tmp_path / "nothing") is None


@pytest.mark.slow
def test_every_fold_sees_only_its_sources_and_a_rerun_keeps_finished_folds(prepared_dir, tmp_path):
    params = _params(**{"pseudolabel.folds": FOLDS})
    prepared = load_prepared(prepared_dir)
    out, reports = tmp_path / "out", tmp_path / "reports"
    table = pseudolabel.pseudolabel(params, prepared, pseudolabel.read_groups(prepared_dir, prepared), out, reports)
    plan = read_json(out / "folds.json")
    label_of = dict(zip(prepared.ids, prepared.labels.tolist(), strict=True))
    assert [entry["index"] for entry in plan["folds"]] == list(range(FOLDS))  # the loop below sees every fold
    tested = []
    for entry in plan["folds"]:
        sources, held = set(entry["sources"]), set(entry["val"]) | set(entry["test"])
        assert sources.isdisjoint(held) and sources | held == set(prepared.ids)
        folder = out / f"fold{entry['index']}"
        encoders = read_json(folder / "encoder" / "meta.json")["encoders"]
        train_ids = [i for i in prepared.ids if i in sources]  # prepared order, as the stage trains
        assert all(e["train_ids_sha256"] == ids_digest(train_ids) for e in encoders.values())
        records = [json.loads(line) for line in (folder / "augmented" / "provenance.jsonl").read_text().splitlines()]
        assert records and read_json(folder / "augmented" / "meta.json")["mode"] == "replace"
        for rec in records:
            assert rec["content_id"] in sources and label_of[rec["content_id"]] == 0
            assert set(rec["style_ids"]) <= sources and all(label_of[s] == 1 for s in rec["style_ids"])
        run = read_json(folder / "run" / "meta.json")["training_set"]
        assert run["n_real"] == 0 and run["n_synthetic"] == len(records)  # synthetic images only
        predictions = pd.read_csv(folder / "run" / "predictions.csv")
        assert set(predictions.loc[predictions["split"] == "val", "id"]) == set(entry["val"])
        assert set(predictions.loc[predictions["split"] == "test", "id"]) == set(entry["test"])
        tested += entry["test"]
    assert len(tested) == len(set(tested))  # each image is a test image of at most one fold
    assert list(table["fold"]) == [str(k) for k in range(FOLDS)] + ["mean", "sd"]
    assert read_json(reports / "pseudolabel.json")["folds"] == FOLDS
    finished = {k: (out / f"fold{k}" / "meta.json").stat().st_mtime_ns for k in range(FOLDS)}
    again = pseudolabel.pseudolabel(params, prepared, pseudolabel.read_groups(prepared_dir, prepared), out, reports)
    pd.testing.assert_frame_equal(again, table)
    assert {k: (out / f"fold{k}" / "meta.json").stat().st_mtime_ns for k in range(FOLDS)} == finished
    assert np.isfinite(table.loc[table["fold"] == "mean", "auc"]).all()
