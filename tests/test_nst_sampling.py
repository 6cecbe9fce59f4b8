"""Pair sampling for NST: counts, class constraints, balance, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from bench.nst.sampling import add_references, all_within_class, k_per_content, plan_pairs, select


def _labels(*counts: int) -> np.ndarray:
    return np.concatenate([np.full(n, c) for c, n in enumerate(counts)])


def test_all_within_class_on_panigrahis_counts_gives_325408_pairs():
    labels = _labels(348, 452)  # Panigrahi et al. 2024: 348 benign + 452 malignant
    plan = all_within_class(labels)
    assert len(plan) == 348**2 + 452**2 == 325_408
    assert (labels[plan.content] == labels[plan.styles[:, 0]]).all()
    assert int((labels[plan.content] == 0).sum()) == 121_104  # their benign count
    pairs = plan.content.astype(np.int64) * 1000 + plan.styles[:, 0]
    assert len(np.unique(pairs)) == len(plan)  # every pair exactly once


@pytest.mark.parametrize("cross", [False, True])
def test_k_per_content(cross):
    labels = _labels(5, 7)
    plan = k_per_content(labels, 3, np.random.default_rng(0), cross=cross)
    assert len(plan) == 3 * len(labels)
    assert np.array_equal(np.bincount(plan.content), np.full(len(labels), 3))
    same = labels[plan.content] == labels[plan.styles[:, 0]]
    assert (~same).all() if cross else same.all()
    assert (plan.content != plan.styles[:, 0]).all()
    for c in range(len(labels)):  # without replacement while the pool is large enough
        assert len(set(plan.styles[plan.content == c, 0])) == 3


def test_k_per_content_small_class_draws_with_replacement_and_lone_image_styles_itself():
    labels = np.array([0, 0, 1])
    plan = k_per_content(labels, 4, np.random.default_rng(0))
    assert (plan.styles[plan.content == 0, 0] == 1).all()
    assert (plan.styles[plan.content == 2, 0] == 2).all()
    with pytest.raises(ValueError, match="two classes"):
        k_per_content(np.zeros(3, int), 1, np.random.default_rng(0), cross=True)


def test_select_balances_contents_and_is_seeded():
    labels = _labels(6, 6)
    plan = all_within_class(labels)
    a = select(plan, 48, np.random.default_rng(7))
    b = select(plan, 48, np.random.default_rng(7))
    c = select(plan, 48, np.random.default_rng(8))
    assert np.array_equal(a.content, b.content) and np.array_equal(a.styles, b.styles)
    assert not np.array_equal(a.styles, c.styles)
    assert np.array_equal(np.bincount(a.content, minlength=12), np.full(12, 4))
    pairs = set(zip(a.content.tolist(), a.styles[:, 0].tolist(), strict=True))
    assert len(pairs) == 48 and (a.repeat == 0).all()


def test_select_beyond_the_plan_repeats_whole_rounds():
    plan = all_within_class(_labels(2, 1))  # 4 + 1 = 5 pairs
    out = select(plan, 12, np.random.default_rng(0))
    assert len(out) == 12
    assert out.repeat.tolist() == [0] * 5 + [1] * 5 + [2] * 2
    assert sorted(zip(out.content[:5].tolist(), out.styles[:5, 0].tolist(), strict=True)) == \
        sorted(zip(plan.content.tolist(), plan.styles[:, 0].tolist(), strict=True))
    with pytest.raises(ValueError, match="empty"):
        select(all_within_class(np.zeros(0, int)), 1, np.random.default_rng(0))


def test_add_references_stay_in_the_first_styles_class():
    labels = _labels(8, 9)
    plan = add_references(plan_pairs(labels, "cross-class", np.random.default_rng(0), k=2), labels, 3,
                          np.random.default_rng(1))
    assert plan.styles.shape == (34, 3)
    assert (labels[plan.styles] == labels[plan.styles[:, :1]]).all()
    assert all(len(set(row)) == 3 for row in plan.styles.tolist())
    assert (labels[plan.content] != labels[plan.styles[:, 0]]).all()


def test_unknown_strategy_is_named():
    with pytest.raises(ValueError, match="all-within-class"):
        plan_pairs(np.zeros(2, int), "everything", np.random.default_rng(0))
