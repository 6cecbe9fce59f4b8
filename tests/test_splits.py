"""Tests for bench.data.splits."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.data.splits import (
    DEFAULT_RATIOS,
    SPLIT_NAMES,
    split_summary,
    stratified_group_kfold,
    stratified_group_split,
)
from bench.errors import ConfigError


def singletons(class_sizes: dict[str, int]) -> tuple[list[str], list[str]]:
    labels = [c for c, n in class_sizes.items() for _ in range(n)]
    return labels, [f"g{i}" for i in range(len(labels))]


def assert_groups_whole(groups, assignment):
    where = defaultdict(set)
    for g, s in zip(groups, assignment, strict=True):
        where[g].add(s)
    assert all(len(v) == 1 for v in where.values())


def test_default_ratios():
    assert DEFAULT_RATIOS == (0.70, 0.15, 0.15)
    assert SPLIT_NAMES == ("train", "val", "test")


def test_ratios_respected():
    labels, groups = singletons({"benign": 437, "malignant": 210, "normal": 133})
    s = stratified_group_split(labels, groups)
    assert s.shape == (780,) and set(s) == set(SPLIT_NAMES)
    n = Counter(s.tolist())
    assert abs(n["train"] - 546) <= 3 and abs(n["val"] - 117) <= 3 and abs(n["test"] - 117) <= 3
    summary = split_summary(labels, s)
    for split, ratio in zip(SPLIT_NAMES, DEFAULT_RATIOS, strict=True):
        for cls, total in (("benign", 437), ("malignant", 210), ("normal", 133)):
            assert abs(summary[split][cls] - ratio * total) < 1


def test_other_ratios():
    labels, groups = singletons({"a": 100, "b": 50})
    s = stratified_group_split(labels, groups, ratios=(0.6, 0.2, 0.2), seed=3)
    summary = split_summary(labels, s)
    assert summary["train"] == {"a": 60, "b": 30}
    assert summary["val"] == {"a": 20, "b": 10} and summary["test"] == {"a": 20, "b": 10}


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(7, 60), min_size=1, max_size=4),
    seed=st.integers(0, 2**31),
)
def test_stratified_within_one_item(sizes, seed):
    labels, groups = singletons({f"c{i}": n for i, n in enumerate(sizes)})
    s = stratified_group_split(labels, groups, seed=seed)
    summary = split_summary(labels, s)
    for i, n in enumerate(sizes):
        for split, ratio in zip(SPLIT_NAMES, DEFAULT_RATIOS, strict=True):
            assert abs(summary[split].get(f"c{i}", 0) - ratio * n) < 1


@settings(max_examples=60, deadline=None)
@given(
    items=st.lists(st.tuples(st.integers(0, 40), st.sampled_from("abc")), min_size=1, max_size=150),
    seed=st.integers(0, 1000),
    n_folds=st.integers(2, 6),
)
def test_groups_never_straddle(items, seed, n_folds):
    groups = [f"g{g}" for g, _ in items]
    labels = [lab for _, lab in items]
    for call in (
        lambda: stratified_group_split(labels, groups, seed=seed),
        lambda: stratified_group_kfold(labels, groups, n_folds=n_folds, seed=seed),
    ):
        try:
            out = call()
        except ConfigError as exc:
            assert exc.key == "split"
            continue
        assert len(out) == len(items)
        assert_groups_whole(groups, out)


def test_grouped_split_balanced_and_whole():
    rng = np.random.default_rng(0)
    labels, groups = [], []
    for g in range(300):  # groups of 1-3 items of one class, like duplicate groups
        cls = "benign" if g % 3 else "malignant"
        for _ in range(int(rng.integers(1, 4))):
            labels.append(cls)
            groups.append(f"grp{g}")
    s = stratified_group_split(labels, groups, seed=1)
    assert_groups_whole(groups, s)
    summary = split_summary(labels, s)
    totals = Counter(labels)
    for split, ratio in zip(SPLIT_NAMES, DEFAULT_RATIOS, strict=True):
        for cls, total in totals.items():
            assert abs(summary[split][cls] - ratio * total) <= 3  # max group size


def test_deterministic_and_seed_dependent():
    labels, groups = singletons({"a": 120, "b": 60})
    a = stratified_group_split(labels, groups, seed=7)
    b = stratified_group_split(labels, groups, seed=7)
    c = stratified_group_split(labels, groups, seed=8)
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()
    # Same per-class counts either way.
    assert split_summary(labels, a) == split_summary(labels, c)
    f1 = stratified_group_kfold(labels, groups, seed=7)
    np.testing.assert_array_equal(f1, stratified_group_kfold(labels, groups, seed=7))
    assert (f1 != stratified_group_kfold(labels, groups, seed=8)).any()


def test_kfold_covers_every_item_once():
    rng = np.random.default_rng(2)
    labels = rng.choice(["a", "b", "c"], size=233, p=[0.6, 0.3, 0.1]).tolist()
    groups = [f"g{int(x)}" for x in rng.integers(0, 180, size=233)]
    folds = stratified_group_kfold(labels, groups, n_folds=5, seed=0)
    assert folds.shape == (233,) and folds.dtype.kind == "i"
    assert set(folds.tolist()) == set(range(5))
    # Each item is in exactly one test fold; the folds partition the items.
    test_sets = [set(np.flatnonzero(folds == k).tolist()) for k in range(5)]
    assert sum(len(t) for t in test_sets) == 233
    assert set().union(*test_sets) == set(range(233))
    assert_groups_whole(groups, folds)
    sizes = Counter(folds.tolist())
    assert max(sizes.values()) - min(sizes.values()) <= 8


def test_kfold_stratified_singletons():
    labels, groups = singletons({"a": 53, "b": 21})
    folds = stratified_group_kfold(labels, groups, n_folds=5, seed=4)
    summary = split_summary(labels, folds)
    for k in range(5):
        assert abs(summary[str(k)]["a"] - 53 / 5) < 1
        assert abs(summary[str(k)]["b"] - 21 / 5) < 1


@pytest.mark.parametrize(
    ("ratios", "problem"),
    [
        ((0.5, 0.5, 0.5), r"must sum to 1, got \[0\.5, 0\.5, 0\.5\] \(sum 1\.5\)"),
        ((0.7, 0.3), r"must be three numbers \(train, val, test\), got 2"),
        ((1.1, -0.05, -0.05), "must be finite and non-negative"),
        ((float("nan"), 0.5, 0.5), "must be finite and non-negative"),
        (("a", 0.5, 0.5), "must be three numbers, got"),
        ((0.7, 0.15, 0.1499), r"must sum to 1, .*\(sum 0\.9999\)"),
    ],
)
def test_bad_ratios(ratios, problem):
    labels, groups = singletons({"a": 30})
    with pytest.raises(ConfigError, match=problem) as info:
        stratified_group_split(labels, groups, ratios=ratios)
    assert info.value.key == "split.ratios"


def test_ratio_tolerance_and_zero_ratio():
    labels, groups = singletons({"a": 30, "b": 20})
    stratified_group_split(labels, groups, ratios=(0.7, 0.15, 0.15 + 5e-7))
    s = stratified_group_split(labels, groups, ratios=(0.8, 0.0, 0.2))
    assert "val" not in set(s.tolist())


def test_small_class_repaired_into_every_split():
    labels = ["a"] * 40 + ["small"] * 3
    groups = [f"g{i}" for i in range(43)]
    s = stratified_group_split(labels, groups, seed=5)
    summary = split_summary(labels, s)
    assert all(summary[name]["small"] == 1 for name in SPLIT_NAMES)


def test_bad_arguments():
    labels, groups = singletons({"a": 30})
    for bad in (1, 0, 2.0, True):
        with pytest.raises(ConfigError, match=f"must be an integer >= 2, got {bad}") as info:
            stratified_group_kfold(labels, groups, n_folds=bad)
        assert info.value.key == "split.folds"
    with pytest.raises(ValueError, match=r"labels and groups differ in length \(30 vs 29\)"):
        stratified_group_split(labels, groups[:-1])
    assert stratified_group_split([], []).shape == (0,)
    assert stratified_group_kfold([], []).shape == (0,)
