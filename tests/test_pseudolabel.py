"""nst-pseudolabel (Mikołajczyk & Grochowski 2018): balanced pseudo-labels, benign→malignant pairs,
5 folds without leakage of content/style images into a fold's validation or test set."""

from __future__ import annotations

import numpy as np
import pytest

from bench import contract, registry
from bench.errors import AugbenchError
from bench.plugins import ImageSet
from bench.pseudolabel import Fold, balanced_labels, check_fold, fold_plan, fold_table, subsample
from methods.augment.pseudolabel import NSTPseudoLabel, PseudoLabelParams

pytestmark = pytest.mark.filterwarnings("ignore:non-integer arguments to randrange:DeprecationWarning")

NAME = "nst-pseudolabel"
FAST = {"iterations": [1], "batch_size": 16, "factor": 2, "teacher_epochs": 1}


def test_balanced_labels_split_at_the_median_rank():
    labels, threshold = balanced_labels(np.array([0.9, 0.1, 0.4, 0.6, 0.2, 0.8]))
    assert labels.tolist() == [1, 0, 0, 1, 0, 1] and threshold == pytest.approx(0.5)
    labels, _ = balanced_labels(np.array([0.3, 0.3, 0.3, 0.3, 0.3]))  # ties: by index, ⌊5/2⌋ ones
    assert labels.tolist() == [1, 1, 0, 0, 0]
    assert balanced_labels(np.array([0.7]))[0].tolist() == [0] and len(balanced_labels(np.zeros(0))[0]) == 0


def _ids_labels_groups(n_per_class=20):
    ids = [f"img{i:03d}" for i in range(2 * n_per_class)]
    labels = [i // n_per_class for i in range(2 * n_per_class)]
    groups = [f"g{i // 2}" for i in range(2 * n_per_class)]  # pairs of near-duplicates
    return ids, labels, groups


def test_fold_plan_partitions_and_keeps_groups_whole():
    ids, labels, groups = _ids_labels_groups()
    folds = fold_plan(ids, labels, groups, n_folds=5, seed=3)
    assert len(folds) == 5
    tests = [i for f in folds for i in f.test]
    held = [i for f in folds for i in (*f.val, *f.test)]
    assert sorted(held) == sorted(ids) and len(set(tests)) == len(tests)  # every image held out exactly once
    group_of, label_of = dict(zip(ids, groups, strict=True)), dict(zip(ids, labels, strict=True))
    for f in folds:
        parts = [set(f.sources), set(f.val), set(f.test)]
        assert set.union(*parts) == set(ids) and sum(map(len, parts)) == len(ids)  # disjoint
        part_groups = [{group_of[i] for i in p} for p in parts]
        assert not (part_groups[0] & part_groups[1]) and not (part_groups[0] & part_groups[2])
        assert not (part_groups[1] & part_groups[2])
        for p in parts:
            assert {label_of[i] for i in p} == {0, 1}  # stratified: both classes everywhere


def test_subsample_is_stratified_group_aware_and_seeded():
    ids, labels, groups = _ids_labels_groups()  # 20 per class, in pairs of near-duplicates
    labels[-1] = 0  # 21 of class 0 (the last pair now mixes the classes), 19 of class 1
    groups[-3:] = ["big"] * 3  # ... and one group of three
    np.testing.assert_array_equal(subsample(labels, groups, None), np.arange(40))
    np.testing.assert_array_equal(subsample(labels, groups, 25), np.arange(40))  # both classes fit whole
    for seed in range(5):
        keep = subsample(labels, groups, 7, seed)
        assert list(keep) == sorted(keep)
        counts = np.bincount(np.asarray(labels)[keep], minlength=2)
        assert counts.max() <= 7 and counts.min() >= 6  # pairs: a class reaches 6 or 7, never more
        kept_groups = {groups[i] for i in keep}
        assert sorted(keep) == [i for i, g in enumerate(groups) if g in kept_groups]  # whole groups only
        np.testing.assert_array_equal(subsample(labels, groups, 7, seed), keep)  # deterministic
    assert len({tuple(subsample(labels, groups, 7, seed)) for seed in range(5)}) > 1  # the seed decides
    with pytest.raises(ValueError, match="differ in length"):
        subsample(labels, groups[:-1], 7)


def test_fold_plan_covers_only_the_subsample():
    ids, labels, groups = _ids_labels_groups()
    folds = fold_plan(ids, labels, groups, n_folds=2, seed=1, max_per_class=8)
    keep = subsample(labels, groups, 8, seed=1)
    covered = set(folds[0].sources) | set(folds[0].val) | set(folds[0].test)
    assert covered == {ids[i] for i in keep} and len(covered) == 16
    assert [f.test for f in folds] != [f.test for f in fold_plan(ids, labels, groups, n_folds=2, seed=1)]
    for f in folds:
        assert set(f.sources) | set(f.val) | set(f.test) == covered


def test_check_fold_catches_leaks():
    fold = Fold(0, ("a", "b", "c"), ("v",), ("t",))
    check_fold(fold, [{"content_id": "a", "source_id": "a", "style_ids": ["b", "c"]}])
    with pytest.raises(AugbenchError, match="validation image of this fold"):
        check_fold(fold, [{"source_id": "v", "style_ids": ["b"]}])
    with pytest.raises(AugbenchError, match="test image of this fold"):
        check_fold(fold, [{"source_id": "a", "style_ids": ["b", "t"]}])
    with pytest.raises(AugbenchError, match="not among the fold's source"):
        check_fold(fold, [{"source_id": "zzz"}])


def test_fold_table_has_mean_and_sd():
    table = fold_table([{"fold": k, "auc": a} for k, a in enumerate([0.8, 0.9, 1.0])], ["auc"])
    assert [r["fold"] for r in table] == ["0", "1", "2", "mean", "sd"]
    assert table[3]["auc"] == pytest.approx(0.9) and table[4]["auc"] == pytest.approx(0.1)


@pytest.fixture(scope="module")
def phantom_set() -> ImageSet:
    return contract.phantom(n_per_class=10)


def test_generated_images_are_benign_content_in_malignant_style_with_balanced_labels(phantom_set):
    plugin = NSTPseudoLabel(PseudoLabelParams(**FAST))
    assert plugin.mode == "replace"
    rng = np.random.default_rng(0)
    plugin.fit(phantom_set, rng)
    gen = plugin.generate(phantom_set, plugin.n_synthetic(len(phantom_set)), rng)
    label_of = dict(zip(phantom_set.ids, phantom_set.labels.tolist(), strict=True))
    assert len(gen) == 20 and gen.labels.sum() == 10  # the threshold balances the classes
    for rec, y in zip(gen.provenance, gen.labels, strict=True):
        assert label_of[rec["content_id"]] == 0 and rec["content_label"] == 0
        assert all(label_of[s] == 1 for s in rec["style_ids"])
        assert rec["pseudo_label"] == y and (rec["teacher_score"] > rec["threshold"]) == bool(y)
    assert plugin.run_info["teacher"]["n_malignant"] == 10


@pytest.mark.slow
def test_five_folds_never_use_held_out_images_as_content_or_style(phantom_set):
    """The whole protocol on the phantom: per fold, the augmenter sees only the fold's source images;
    the provenance of every synthetic image is checked against the fold's validation and test sets."""
    folds = fold_plan(phantom_set.ids, phantom_set.labels, n_folds=5, seed=0)
    assert len(folds) == 5
    index = {img_id: k for k, img_id in enumerate(phantom_set.ids)}
    for fold in folds:
        keep = [index[i] for i in fold.sources]
        sources = ImageSet(phantom_set.images[keep], phantom_set.labels[keep], list(fold.sources))
        plugin = NSTPseudoLabel(PseudoLabelParams(**FAST))
        rng = np.random.default_rng(fold.index)
        plugin.fit(sources, rng)
        gen = plugin.generate(sources, plugin.n_synthetic(len(sources)), rng)
        check_fold(fold, gen.provenance)
        used = {s for rec in gen.provenance for s in (rec["content_id"], *rec["style_ids"])}
        assert used and not used & (set(fold.val) | set(fold.test))


@pytest.fixture(scope="module")
def registered():
    with registry.registered_if_missing("augmenter", NAME, NSTPseudoLabel) as name:
        yield name


@pytest.mark.slow
@pytest.mark.parametrize("check", ["params", "descriptions", "mode", "n_synthetic", "generate_output",
                                   "provenance", "deterministic", "seed_matters", "no_mutation"])
def test_contract(registered, check):
    found = [c for c in contract.checks("augmenter", registered) if c.id.split("[")[0] == check]
    want = [f"n_synthetic[{n}]" for n in (0, 1, 12, 800)] if check == "n_synthetic" else [check]
    assert [c.id for c in found] == want  # a renamed or dropped check must not pass by matching nothing
    for c in found:
        c.run()
