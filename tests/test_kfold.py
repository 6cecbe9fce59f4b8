"""Repeated stratified group k-fold (split.mode: repeated-kfold): the splits, the refusals, the
replicate ↔ seed pairing of the train stage, and the evaluate stage's statistics over replicates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import special
from sklearn.metrics import roc_auc_score

from bench import stats
from bench.config import load_params
from bench.data.splits import repeated_stratified_group_kfold, replicate_index, replicate_seed
from bench.errors import AugbenchError, ConfigError
from bench.io import write_json
from bench.stages import augment, evaluate, prepare
from bench.stages import train as train_stage
from bench.stages.common import load_prepared

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
ONLINE = {"augment.methods.flip-online": {"method": "geometric-flipping", "mode": "online"}}


def _params(**overrides):
    overrides.setdefault("matrix.zoo", [])
    return load_params(PARAMS, "smoke", [f"{k}={json.dumps(v)}" for k, v in overrides.items()])


def _kfold(folds=2, repeats=2, **overrides):
    sets = {"split.mode": "repeated-kfold", "split.folds": folds, "split.repeats": repeats,
            "matrix.seeds": list(range(folds * repeats)), "matrix.methods": ["none"], **overrides}
    return _params(**sets)


# ---------------------------------------------------------------------------
# The splits
# ---------------------------------------------------------------------------

def _labels_groups(n_per_class=(23, 17), pairs=4):
    """Two classes; the first ``pairs`` items of each class have a duplicate in their own group."""
    labels, groups = [], []
    for c, n in enumerate(n_per_class):
        for i in range(n):
            labels.append(f"c{c}")
            groups.append(f"g{c}-{i // 2 if i < 2 * pairs else i}")
    return labels, groups


@pytest.mark.parametrize(("folds", "repeats"), [(2, 5), (3, 2), (5, 1)])
def test_each_repeat_partitions_the_items_into_test_folds(folds, repeats):
    labels, groups = _labels_groups()
    reps = repeated_stratified_group_kfold(labels, groups, folds, repeats, 0.15 / 0.85, seed=3)
    assert reps.shape == (folds * repeats, len(labels))
    assert set(np.unique(reps)) == {"train", "val", "test"}
    for i in range(repeats):
        block = reps[i * folds:(i + 1) * folds]
        np.testing.assert_array_equal((block == "test").sum(axis=0), np.ones(len(labels)))  # each item held out once
    for r in range(len(reps)):
        assert replicate_index(r, folds) == (r // folds, r % folds)


def test_folds_are_stratified_within_one_item_per_class():
    labels = ["b"] * 31 + ["m"] * 19  # one item per group: the greedy assignment meets every target ± 1
    groups = [str(i) for i in range(len(labels))]
    for folds in (2, 3, 5):
        reps = repeated_stratified_group_kfold(labels, groups, folds, 3, 0.2, seed=7)
        for row in reps:
            for cls, total in (("b", 31), ("m", 19)):
                held = sum(1 for s, lab in zip(row, labels, strict=True) if s == "test" and lab == cls)
                assert abs(held - total / folds) <= 1, (folds, cls, held)


def test_groups_never_straddle_folds_or_parts():
    labels, groups = _labels_groups(pairs=6)
    reps = repeated_stratified_group_kfold(labels, groups, 2, 5, 0.2, seed=1)
    frame = pd.DataFrame(reps.T, columns=[f"r{i}" for i in range(len(reps))]).assign(group=groups)
    assert frame.groupby("group").nunique().max().max() == 1  # every member of a group: the same part, everywhere
    assert (pd.Series(groups).value_counts() > 1).sum() >= 6  # the check had groups to break


def test_replicates_are_reproducible_from_the_seed_and_differ_between_repeats_and_seeds():
    labels, groups = _labels_groups()
    a = repeated_stratified_group_kfold(labels, groups, 2, 3, 0.2, seed=5)
    np.testing.assert_array_equal(a, repeated_stratified_group_kfold(labels, groups, 2, 3, 0.2, seed=5))
    assert not np.array_equal(a, repeated_stratified_group_kfold(labels, groups, 2, 3, 0.2, seed=6))
    assert not np.array_equal(a[0] == "test", a[2] == "test")  # repeat 1 re-draws the folds
    assert replicate_seed(5, 1) == replicate_seed(5, 1)
    assert replicate_seed(5, 1) != replicate_seed(5, 2)
    # SeedSequence pads short entropy with zeros: the path's length must still tell these apart
    assert replicate_seed(5, 1) != replicate_seed(5, 1, 0)
    assert replicate_seed(5, 0) != replicate_seed(5, 0, 0) != replicate_seed(5)


def test_no_test_item_is_in_its_replicates_train_or_val_and_val_has_both_classes():
    labels, groups = _labels_groups()
    reps = repeated_stratified_group_kfold(labels, groups, 2, 5, 0.15 / 0.85, seed=0)
    for row in reps:
        test = {i for i, s in enumerate(row) if s == "test"}
        fit = {i for i, s in enumerate(row) if s in ("train", "val")}
        assert test and fit and not test & fit and len(test | fit) == len(labels)
        for part in ("train", "val", "test"):
            assert {labels[i] for i, s in enumerate(row) if s == part} == {"c0", "c1"}
        share = (row == "val").sum() / (row != "test").sum()
        assert share == pytest.approx(0.15 / 0.85, abs=0.08)


def test_bad_arguments_name_their_parameter():
    labels, groups = _labels_groups()
    with pytest.raises(ConfigError, match="split.repeats"):
        repeated_stratified_group_kfold(labels, groups, 2, 0)
    with pytest.raises(ConfigError, match=r"split.folds\b"):
        repeated_stratified_group_kfold(labels, groups, 1, 2)
    with pytest.raises(ConfigError, match=r"split.folds.*got -2"):  # refused before any array is made
        repeated_stratified_group_kfold(labels, groups, -2, 2)
    with pytest.raises(ConfigError, match="validation share"):
        repeated_stratified_group_kfold(labels, groups, 2, 2, val_share=1.0)
    with pytest.raises(ConfigError, match="class 'x'"):  # 3 items cannot reach 5 folds
        repeated_stratified_group_kfold(["x"] * 3 + ["y"] * 20, [str(i) for i in range(23)], 5, 1)


# ---------------------------------------------------------------------------
# Parameters: what the mode refuses
# ---------------------------------------------------------------------------

def test_params_need_one_seed_per_replicate():
    assert _kfold(2, 5).split.n_replicates == 10
    with pytest.raises(ConfigError, match=r"matrix.seeds.*10 replicates.*list 10 seeds"):
        _params(**{"split.mode": "repeated-kfold", "matrix.seeds": [0, 1], "matrix.methods": ["none"]})
    with pytest.raises(ConfigError, match="split.mode"):
        _params(**{"split.mode": "kfold"})
    with pytest.raises(ConfigError, match="split.folds"):
        _params(**{"split.folds": 1})


def test_the_phantoms_own_sets_are_refused():
    with pytest.raises(ConfigError, match=r"split.mode.*own fixed validation and test sets"):
        _kfold(**{"phantom.val_per_class": 5, "phantom.test_per_class": 5})


def test_stored_methods_are_refused_and_online_ones_run():
    with pytest.raises(ConfigError, match=r"matrix.methods.1.*stores synthetic images.*leakage"):
        _kfold(**{"matrix.methods": ["none", "geometric-flipping"]})
    params = _kfold(**{"matrix.methods": ["none", "flip-online"], **ONLINE})
    assert params.method_mode("flip-online") == "online"
    # a stored method at factor 1 stores nothing: it trains on each replicate's own training part
    params = _kfold(**{"matrix.methods": ["none", "classical"], "augment.methods.classical.factor": 1})
    assert params.matrix.methods == ["none", "classical"] and params.method_params("classical").factor == 1


def test_nst_with_every_pair_is_refused_with_the_usual_message():
    """factor null ("every pair") can only count its images after fit(): the check treats it as storing
    images instead of crashing on the unfitted plugin."""
    with pytest.raises(ConfigError, match=r"matrix.methods.1.*'nst-gatys' stores synthetic images.*leakage"):
        _kfold(**{"matrix.methods": ["none", "nst-gatys"], "augment.methods.nst-gatys.factor": None})


def test_split_ratios_are_checked_at_load_under_repeated_kfold():
    with pytest.raises(ConfigError, match=r"split.ratios.*training and validation shares"):
        _kfold(**{"split.ratios": [0.0, 0.5, 0.5]})
    with pytest.raises(ConfigError, match=r"split.ratios.*training and validation shares"):
        _kfold(**{"split.ratios": [0.85, 0.0, 0.15]})
    assert _kfold(**{"split.ratios": [0.6, 0.2, 0.2]}).split.val_share == pytest.approx(0.25)


# ---------------------------------------------------------------------------
# prepare → augment → train's training set, per replicate (no TensorFlow)
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def kfold_prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared-kfold")
    prepare.prepare(_kfold(2, 2), out)
    return out


def test_prepare_stores_every_replicate_and_the_manifest_shows_them(kfold_prepared):
    prepared = load_prepared(kfold_prepared)
    manifest = pd.read_csv(kfold_prepared / "manifest.csv")
    assert prepared.replicates.shape == (4, len(prepared.ids))
    for r in range(4):
        assert manifest[f"replicate{r}"].tolist() == prepared.replicates[r].tolist()
    np.testing.assert_array_equal(prepared.splits, prepared.replicates[0])
    assert manifest.groupby("group")[[f"replicate{r}" for r in range(4)]].nunique().max().max() == 1
    meta = json.loads((kfold_prepared / "meta.json").read_text())
    assert meta["split_rule"].startswith("repeated-kfold") and len(meta["replicate_counts"]) == 4


def test_each_seed_trains_on_its_replicates_training_part_only(kfold_prepared, tmp_path):
    params, prepared = _kfold(2, 2), load_prepared(kfold_prepared)
    augment.augment(params, prepared, "none", tmp_path)
    for r, seed in enumerate(params.matrix.seeds):
        view = train_stage.split_for(params, prepared, seed)
        assert view.replicate == r
        x, _, composition = train_stage.training_set(view, tmp_path)
        in_train = prepared.replicates[r] == "train"
        assert composition["n_split"] == in_train.sum() == len(x)
        np.testing.assert_array_equal(x, prepared.images[in_train])
        test_ids = set(view.subset("test").ids)
        assert test_ids == {i for i, s in zip(prepared.ids, prepared.replicates[r], strict=True) if s == "test"}
        assert not test_ids & (set(view.subset("train").ids) | set(view.subset("val").ids))
    aa = params.controls.aa_seeds(params.matrix.seeds)
    assert [train_stage.split_for(params, prepared, s, aa=True).replicate for s in aa] == [0, 1, 2, 3]


def test_train_refuses_seeds_and_prepared_data_of_another_split(kfold_prepared, phantom_fixed):
    params, prepared = _kfold(2, 2), load_prepared(kfold_prepared)
    with pytest.raises(ConfigError, match="seed 9 is not one of"):
        train_stage.split_for(params, prepared, 9)
    with pytest.raises(ConfigError, match="prepared data has one fixed split"):
        train_stage.split_for(params, load_prepared(phantom_fixed), 0)
    with pytest.raises(ConfigError, match="split.mode: is fixed, but the prepared data is split"):
        train_stage.split_for(_params(), prepared, 0)
    other = _kfold(2, 2, **{"split.seed": 4})
    with pytest.raises(ConfigError, match="the prepared data was split with"):
        train_stage.split_for(other, prepared, 0)


@pytest.fixture(scope="module")
def phantom_fixed(tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared-fixed")
    prepare.prepare(_params(), out)
    return out


def test_train_refuses_stored_images_on_a_replicate(kfold_prepared, tmp_path):
    """Made with other parameters (config refuses the method under repeated-kfold), stored images
    from replicate 0's training part would reach replicate 1, whose test fold they came from."""
    prepared = load_prepared(kfold_prepared)
    augment.augment(_params(), prepared, "classical", tmp_path)  # a fixed-split params file
    assert json.loads((tmp_path / "meta.json").read_text())["n_synthetic"] > 0
    with pytest.raises(AugbenchError, match="stored synthetic images under split.mode repeated-kfold"):
        train_stage.training_set(prepared.for_replicate(1), tmp_path)


# ---------------------------------------------------------------------------
# Statistics over replicates
# ---------------------------------------------------------------------------

def _folds(rng, n_replicates=10, sizes=(21, 20)):
    ys, base, method = [], [], []
    for r in range(n_replicates):
        y = np.r_[np.ones(sizes[r % 2], np.int64), np.zeros(sizes[(r + 1) % 2], np.int64)]
        shared = rng.normal(size=y.size)
        ys.append(y)
        base.append(special.expit(0.8 * y + shared + 0.5 * rng.normal(size=y.size)))
        method.append(special.expit(1.4 * y + shared + 0.5 * rng.normal(size=y.size)))
    return ys, base, method


def test_paired_fold_delta_is_the_mean_of_per_fold_auc_differences(rng):
    ys, base, method = _folds(rng)
    found = stats.paired_fold_delta(ys, method, base, 500, seed=2)
    expected = [roc_auc_score(y, m) - roc_auc_score(y, b) for y, m, b in zip(ys, method, base, strict=True)]
    np.testing.assert_allclose(found.per_seed, expected)
    assert found.delta == pytest.approx(np.mean(expected)) and found.low < found.delta < found.high
    again = stats.paired_fold_delta(ys, method, base, 500, seed=2)
    assert (again.low, again.high) == (found.low, found.high)
    with pytest.raises(AugbenchError, match=r"scores_method\[1\]"):
        stats.paired_fold_delta(ys, [method[0], method[1][:-1], *method[2:]], base)
    with pytest.raises(AugbenchError, match="replicate 0"):
        stats.paired_fold_delta([np.ones(5, np.int64)], [np.ones(5)], [np.ones(5)])


def test_fold_verdict_rows_use_the_corrected_t_and_the_5x2_f_test(rng):
    ys, base, method = _folds(rng)
    rows = stats.fold_verdict_rows(ys, base, {"m": method, "same": base}, n_train=17.0, n_test=20.5,
                                   n_resamples=300, folds=2)
    d = np.array([roc_auc_score(y, m) - roc_auc_score(y, b) for y, m, b in zip(ys, method, base, strict=True)])
    row = rows[0]
    assert row["p"] == pytest.approx(stats.corrected_resampled_t(d, 17.0, 20.5).p_value)
    assert row["p_5x2cv_f"] == pytest.approx(stats.five_by_two_cv_f(d.reshape(5, 2)).p_value)
    sd = np.std(d, ddof=1)
    assert row["mde"] == pytest.approx(stats.minimum_detectable_delta(sd * np.sqrt(1 + 10 * 20.5 / 17.0), 10))
    assert row["mde"] > stats.minimum_detectable_delta(sd, 10)  # the correction costs power
    assert rows[1]["delta"] == 0 and rows[1]["p"] == 1.0 and rows[1]["verdict"] == "no evidence"
    assert [r["p_holm"] for r in rows] == pytest.approx(stats.holm_adjust([r["p"] for r in rows]).tolist())
    three = stats.fold_verdict_rows(ys[:6], base[:6], {"m": method[:6]}, 17, 20, n_resamples=100, folds=3)
    assert np.isnan(three[0]["p_5x2cv_f"])
    with pytest.raises(AugbenchError, match=r"arms\['m'\] has 9 replicates"):
        stats.fold_verdict_rows(ys, base, {"m": method[:9]}, 17, 20)


def _fake_replicate_run(folder: Path, ids, y, score, seed: int, replicate: int, folds: int) -> None:
    folder.mkdir(parents=True)
    pd.DataFrame({"split": "test", "id": ids, "label": y, "score": score}).to_csv(folder / "predictions.csv", index=False)
    write_json(folder / "meta.json", {
        "seed": seed, "weights": "none", "epochs_run": 2, "budget": "steps", "trainable_params": 5,
        "training_set": {"n_total": 30, "n_split": 30},
        "replicate": {"index": replicate, "repeat": replicate // folds, "fold": replicate % folds}})


def test_evaluate_gives_one_row_per_replicate_and_fold_statistics(tmp_path, rng):
    params = _kfold(2, 5, **{"matrix.methods": ["none", "flip-online"], **ONLINE,
                             "evaluate.bootstrap_resamples": 300})
    n = 40
    ids = np.array([f"img{k:02d}" for k in range(n)])
    y_all = np.r_[np.ones(n // 2, np.int64), np.zeros(n // 2, np.int64)]
    per_arm = {}
    for arm, lift in (("none", 0.8), ("flip-online", 1.6), (evaluate.AA_METHOD, 0.8)):
        seeds = params.controls.aa_seeds(params.matrix.seeds) if arm == evaluate.AA_METHOD else params.matrix.seeds
        per_arm[arm] = []
        for r, seed in enumerate(seeds):
            order = np.random.default_rng(100 + r // 2).permutation(n)  # repeat r // 2's folds
            held = np.sort(order[(r % 2) * (n // 2):(r % 2 + 1) * (n // 2)])
            score = special.expit(lift * y_all[held] + rng.normal(size=held.size))
            per_arm[arm].append((y_all[held], score))
            _fake_replicate_run(evaluate.run_dir(tmp_path / "runs", arm, "resnet50", seed), ids[held],
                                y_all[held], score, seed, r, 2)
    table = evaluate.evaluate(params, tmp_path / "runs", tmp_path / "reports").set_index("method")
    runs = pd.read_csv(tmp_path / "reports" / "runs.csv")
    assert len(runs[runs["method"] == "none"]) == 10  # one row per replicate
    assert runs.loc[runs["method"] == "none", ["replicate", "repeat", "fold"]].values.tolist() == \
        [[r, r // 2, r % 2] for r in range(10)]
    assert (runs["n_test"] == n // 2).all()
    per_fold = [roc_auc_score(y, s) for y, s in per_arm["none"]]
    assert runs.loc[runs["method"] == "none", "auc"].tolist() == pytest.approx(per_fold)
    assert table.loc["none", "n_test"] == n and table.loc["none", "n_seeds"] == 10  # pooled out of fold
    verdict = pd.read_csv(tmp_path / "reports" / "verdict.csv").set_index("method")
    d = np.array([roc_auc_score(y, s) - roc_auc_score(y, b) for (y, s), (_, b)
                  in zip(per_arm["flip-online"], per_arm["none"], strict=True)])
    assert verdict.loc["flip-online", "n_seeds"] == 10
    assert verdict.loc["flip-online", "delta"] == pytest.approx(d.mean())
    assert verdict.loc["flip-online", "p"] == pytest.approx(stats.corrected_resampled_t(d, 30, n / 2).p_value)
    assert verdict.loc["flip-online", "p_5x2cv_f"] == pytest.approx(stats.five_by_two_cv_f(d.reshape(5, 2)).p_value)
    assert evaluate.AA_METHOD in verdict.index
    about = json.loads((tmp_path / "reports" / "verdict.json").read_text())
    assert about["split"]["mode"] == "repeated-kfold" and about["split"]["replicates"] == 10
    assert about["split"]["replicate_sizes"] == {"resnet50": {"n_train": 30.0, "n_test": 20.0}}
    assert "corrected resampled t" in about["test"] and "5x2cv F" in about["test"]


def test_evaluate_refuses_folds_of_a_repeat_that_overlap(tmp_path, rng):
    params = _kfold(2, 1)
    ids, y = np.array(["a", "b", "c", "d"]), np.array([0, 1, 0, 1])
    for r in range(2):  # both replicates scored the same images: not the folds of one split
        _fake_replicate_run(evaluate.run_dir(tmp_path / "runs", "none", "resnet50", r), ids, y, rng.random(4), r, r, 2)
    with pytest.raises(AugbenchError, match="in two test folds of repeat 0"):
        evaluate.evaluate(params, tmp_path / "runs", tmp_path / "reports")


# ---------------------------------------------------------------------------
# End to end on a tiny phantom: prepare → augment → train (TensorFlow) → evaluate
# ---------------------------------------------------------------------------

@pytest.mark.slow
def test_end_to_end_two_folds_once(tmp_path):
    params = _kfold(2, 1, **{"matrix.methods": ["none", "flip-online"], **ONLINE, "phantom.n_per_class": 12,
                             "preprocess.image_size": 16, "evaluate.bootstrap_resamples": 50,
                             "train.classifiers.resnet50.batch_size": 8, "train.explain_images": 2})
    prepare.prepare(params, tmp_path / "prepared")
    prepared = load_prepared(tmp_path / "prepared")
    for method in params.matrix.methods:
        augment.augment(params, prepared, method, tmp_path / "augmented" / method)
        for seed in params.matrix.seeds:
            data = train_stage.split_for(params, prepared, seed)
            meta = train_stage.run(params, data, tmp_path / "augmented" / method, "resnet50", seed,
                                   evaluate.run_dir(tmp_path / "runs", method, "resnet50", seed), explain=False)
            assert meta["replicate"]["index"] == seed and meta["training_set"]["n_split"] == len(data.subset("train"))
            scored = pd.read_csv(evaluate.run_dir(tmp_path / "runs", method, "resnet50", seed) / "predictions.csv")
            assert set(scored.loc[scored["split"] == "test", "id"]) == set(data.subset("test").ids)
    evaluate.evaluate(params, tmp_path / "runs", tmp_path / "reports")
    runs = pd.read_csv(tmp_path / "reports" / "runs.csv")
    assert len(runs) == 4 and set(runs["fold"]) == {0, 1}
    verdict = pd.read_csv(tmp_path / "reports" / "verdict.csv")
    assert verdict["method"].tolist() == ["flip-online"] and verdict.loc[0, "n_seeds"] == 2
