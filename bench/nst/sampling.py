"""Which (content, style) pairs NST makes: deterministic for a seed, training images only.

A :class:`Plan` lists candidate pairs as index arrays into one image set (the
training split): ``content`` (P,) and ``styles`` (P, R), R ≥ 1 references per
pair (R > 1 for multi-reference NST; the first reference is the pair's own style,
the others are drawn from the same pool).

Strategies:

- ``all-within-class``: every content × style pair of one class, the image with
  itself included — Panigrahi et al. 2024 turn 348 benign + 452 malignant images
  into 348² + 452² = 325,408 (§"Quantitative evaluation", 121,104 + 204,304).
- ``k-per-content``: k styles per content image from its own class, without
  replacement, excluding the image itself (with replacement when the class is
  too small; the image itself only when it is alone in its class).
- ``cross-class``: k styles per content image from the other class(es); the
  synthetic image keeps the content's label (pseudo-labelling comes later).
- ``negative-to-positive``: k styles from the positive class (label 1) per content
  image of the negative class (label 0) only: Mikołajczyk & Grochowski 2018 merge
  "the content of a benign lesion with a style of malignant one" (§III.B).

:func:`select` then takes n pairs from a plan, balanced over content images:
round r takes the r-th pair (in a seeded random order) of every content image in
turn, so each training image is a content source ⌊n/n_train⌋ or ⌈n/n_train⌉
times. When n exceeds the plan, rounds repeat and ``repeat`` counts how often.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STRATEGIES = ("all-within-class", "k-per-content", "cross-class", "negative-to-positive")


@dataclass(frozen=True)
class Plan:
    content: np.ndarray  # int64 (P,)
    styles: np.ndarray  # int64 (P, R)
    repeat: np.ndarray | None = None  # int64 (P,): 0 for a pair's first use

    def __len__(self) -> int:
        return len(self.content)


def all_within_class(labels: np.ndarray) -> Plan:
    """Every (content, style) pair with equal labels, content-major: Σ_c n_c² pairs."""
    labels = np.asarray(labels)
    content, style = [], []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        content.append(np.repeat(members, len(members)))
        style.append(np.tile(members, len(members)))
    if not content:
        return Plan(np.zeros(0, np.int64), np.zeros((0, 1), np.int64))
    return Plan(np.concatenate(content).astype(np.int64), np.concatenate(style).astype(np.int64)[:, None])


def _draw(pool: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(pool, size=k, replace=len(pool) < k)


def k_per_content(labels: np.ndarray, k: int, rng: np.random.Generator, cross: bool = False) -> Plan:
    """k styles per content image: from its own class (excluding itself), or from the others."""
    labels = np.asarray(labels)
    content, style = [], []
    for i, c in enumerate(labels):
        pool = np.flatnonzero(labels != c) if cross else np.flatnonzero((labels == c) & (np.arange(len(labels)) != i))
        if len(pool) == 0:
            if cross:
                raise ValueError("cross-class sampling needs at least two classes in the training split")
            pool = np.array([i])
        content.append(np.full(k, i))
        style.append(_draw(pool, k, rng))
    if not content:
        return Plan(np.zeros(0, np.int64), np.zeros((0, 1), np.int64))
    return Plan(np.concatenate(content).astype(np.int64), np.concatenate(style).astype(np.int64)[:, None])


def negative_to_positive(labels: np.ndarray, k: int, rng: np.random.Generator) -> Plan:
    """k positive-class styles per negative-class content image."""
    labels = np.asarray(labels)
    negative, positive = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    if len(negative) and not len(positive):
        raise ValueError("negative-to-positive sampling needs positive (label 1) training images as styles")
    content = np.repeat(negative, k).astype(np.int64)
    styles = np.concatenate([_draw(positive, k, rng) for _ in negative]) if len(negative) else np.zeros(0)
    return Plan(content, styles.astype(np.int64)[:, None])


def plan_pairs(labels: np.ndarray, strategy: str, rng: np.random.Generator, k: int = 1) -> Plan:
    if strategy == "all-within-class":
        return all_within_class(labels)
    if strategy == "negative-to-positive":
        return negative_to_positive(labels, k, rng)
    if strategy in ("k-per-content", "cross-class"):
        return k_per_content(labels, k, rng, cross=strategy == "cross-class")
    raise ValueError(f"unknown sampling strategy {strategy!r}; known: {', '.join(STRATEGIES)}")


def add_references(plan: Plan, labels: np.ndarray, n_refs: int, rng: np.random.Generator) -> Plan:
    """Give every pair n_refs − 1 more style references, drawn without replacement from the
    class of its first style, excluding that style (with replacement if the class is small)."""
    if n_refs <= 1 or len(plan) == 0:
        return plan
    labels = np.asarray(labels)
    pools = {c: np.flatnonzero(labels == c) for c in np.unique(labels)}
    extra = np.empty((len(plan), n_refs - 1), np.int64)
    for p, first in enumerate(plan.styles[:, 0]):
        pool = pools[labels[first]]
        pool = pool[pool != first] if len(pool) > 1 else pool
        extra[p] = _draw(pool, n_refs - 1, rng)
    return Plan(plan.content, np.concatenate([plan.styles[:, :1], extra], axis=1), plan.repeat)


def select(plan: Plan, n: int, rng: np.random.Generator) -> Plan:
    """n pairs of ``plan``, balanced over content images (see the module docstring)."""
    if n <= 0 or len(plan) == 0:
        if n > 0:
            raise ValueError(f"cannot make {n} images from an empty pair plan")
        return Plan(plan.content[:0], plan.styles[:0], np.zeros(0, np.int64))
    keys = rng.random(len(plan))
    order = np.lexsort((keys, plan.content))  # by content, random within content
    content_sorted = plan.content[order]
    starts = np.searchsorted(content_sorted, content_sorted, side="left")
    rank = np.arange(len(order)) - starts  # position within its content group
    by_round = order[np.lexsort((content_sorted, rank))]  # round 0 of every content, round 1, ...
    reps = -(-n // len(plan))
    picked = np.tile(by_round, reps)[:n]
    repeat = np.repeat(np.arange(reps), len(plan))[:n]
    return Plan(plan.content[picked], plan.styles[picked], repeat.astype(np.int64))
