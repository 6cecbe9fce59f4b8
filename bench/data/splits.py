"""Stratified, group-aware data splits.

Items that share a group id (duplicates and near duplicates found by
:mod:`bench.data.validate`, or images of one patient) always go to the same split or
fold, so no test image has a copy in the training set. Within that constraint each
split's class proportions are kept as close as possible to the whole set's.

Algorithm (deterministic for a given seed): the groups are shuffled with
``np.random.default_rng(seed)``, then stably ordered largest first, and each group is
assigned to the split whose per-class deficit (target count minus count so far, summed
over the group's classes weighted by its item counts) is largest. With one item per
group this keeps every class within one item of its target in every split. A final
repair pass moves small groups so that no class is missing from a split (or fold) that
should hold some of it; when that is impossible, a :class:`~bench.errors.ConfigError`
names the class and its counts.

Repeated k-fold (:func:`repeated_stratified_group_kfold`): each of ``n_repeats`` repeats
assigns the groups to ``n_folds`` folds as above, from a seed derived from the split seed and
the repeat; each (repeat, fold) is one *replicate*, whose test part is the held-out fold, whose
validation part is carved from the other folds (stratified and group-aware, by the same
algorithm) and whose training part is the rest. Replicates are numbered repeat-major
(``r = repeat * n_folds + fold``), the order of Dietterich's (1998) and Alpaydin's (1999)
5 × 2 cv tables (:func:`bench.stats.five_by_two_cv_f`).

Defaults: 70/15/15 train/val/test as in Panigrahi et al. 2024 (section "Experimental
setup"); 5 folds as in Mikolajczyk & Grochowski 2018; 5 repeats of 2 folds for repeated
k-fold, Dietterich's (1998) 5 × 2 cv design, also used by Tupper & Gagné 2024 (augmentation
on BUSI).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bench.errors import ConfigError

SPLIT_NAMES = ("train", "val", "test")

# Panigrahi et al. 2024, section "Experimental setup": 70 % train, 15 % val, 15 % test.
DEFAULT_RATIOS = (0.70, 0.15, 0.15)

# Mikolajczyk & Grochowski 2018: 5-fold cross-validation.
DEFAULT_FOLDS = 5

# Dietterich 1998 (5 × 2 cv paired t-test) and Alpaydin 1999 (combined 5 × 2 cv F-test):
# 5 repeats of 2-fold cross-validation.
DEFAULT_KFOLD_FOLDS = 2
DEFAULT_KFOLD_REPEATS = 5

_RATIO_TOL = 1e-6


def _check_ratios(ratios: Sequence[float]) -> np.ndarray:
    try:
        r = np.asarray([float(x) for x in ratios], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError("split.ratios", f"must be three numbers, got {ratios!r}") from exc
    if r.shape != (len(SPLIT_NAMES),):
        raise ConfigError(
            "split.ratios",
            f"must be three numbers (train, val, test), got {len(r)}: {list(ratios)!r}",
        )
    if not np.isfinite(r).all() or (r < 0).any():
        raise ConfigError("split.ratios", f"must be finite and non-negative, got {list(ratios)!r}")
    if abs(r.sum() - 1.0) > _RATIO_TOL:
        raise ConfigError(
            "split.ratios", f"must sum to 1, got {list(ratios)!r} (sum {r.sum():.6g})"
        )
    return r


def _encode(labels: Sequence, groups: Sequence) -> tuple[list[str], np.ndarray, np.ndarray]:
    """-> (class names, group index per item, counts[group, class])."""
    labels = [str(x) for x in labels]
    groups = [str(x) for x in groups]
    if len(labels) != len(groups):
        raise ValueError(f"labels and groups differ in length ({len(labels)} vs {len(groups)})")
    classes = sorted(set(labels))
    group_names = sorted(set(groups))
    cls_index = {c: i for i, c in enumerate(classes)}
    grp_index = {g: i for i, g in enumerate(group_names)}
    item_group = np.array([grp_index[g] for g in groups], dtype=np.int64)
    item_class = np.array([cls_index[c] for c in labels], dtype=np.int64)
    counts = np.zeros((len(group_names), len(classes)), dtype=np.int64)
    np.add.at(counts, (item_group, item_class), 1)
    return classes, item_group, counts


def _assign(counts: np.ndarray, ratios: np.ndarray, seed: int) -> np.ndarray:
    """Greedy group -> bin assignment; returns the bin index of every group."""
    n_groups, _ = counts.shape
    n_bins = len(ratios)
    targets = ratios[:, None] * counts.sum(axis=0)[None, :].astype(np.float64)
    current = np.zeros_like(targets)
    sizes = counts.sum(axis=1)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n_groups)
    order = perm[np.argsort(-sizes[perm], kind="stable")]
    assigned = np.empty(n_groups, dtype=np.int64)
    for g in order:
        v = counts[g]
        deficit = targets - current
        score = deficit @ v
        total_deficit = deficit.sum(axis=1)
        # Largest class-weighted deficit; ties -> largest overall deficit -> lowest index.
        best = max(range(n_bins), key=lambda b: (score[b], total_deficit[b], -b))
        assigned[g] = best
        current[best] += v
    return assigned


def _repair(
    counts: np.ndarray,
    assigned: np.ndarray,
    ratios: np.ndarray,
    classes: list[str],
    bin_names: Sequence[str],
) -> None:
    """Move small groups so every class appears in every bin with a positive ratio.

    A move never empties a (bin, class) cell, so each move fills at least one empty cell
    and the loop ends. Raises ConfigError when a class cannot be spread.
    """
    n_bins = len(ratios)
    needed = [b for b in range(n_bins) if ratios[b] > 0]
    totals = counts.sum(axis=0)
    groups_per_class = (counts > 0).sum(axis=0)

    def fail(c: int, cur: np.ndarray) -> ConfigError:
        got = ", ".join(f"{bin_names[b]}={int(cur[b, c])}" for b in range(n_bins))
        return ConfigError(
            "split",
            f"class {classes[c]!r} has {int(totals[c])} items in {int(groups_per_class[c])} "
            f"groups: too few to put at least one in each of {', '.join(bin_names[b] for b in needed)} "
            f"(got {got})",
            "add data for this class, drop the class, or use fewer splits/folds",
        )

    def table() -> np.ndarray:
        cur = np.zeros((n_bins, counts.shape[1]), dtype=np.int64)
        np.add.at(cur, assigned, counts)
        return cur

    cur = table()
    for c in range(counts.shape[1]):
        if totals[c] > 0 and groups_per_class[c] < len(needed):
            raise fail(c, cur)

    targets = ratios[:, None] * totals[None, :]
    while True:
        empty = [
            (b, c)
            for b in needed
            for c in range(counts.shape[1])
            if totals[c] > 0 and cur[b, c] == 0
        ]
        if not empty:
            return
        b, c = empty[0]
        best = None
        for g in np.flatnonzero(counts[:, c] > 0):
            s = assigned[g]
            if s == b:
                continue
            after = cur[s] - counts[g]
            # The source bin must keep every class it needs to keep.
            if s in needed and ((after == 0) & (cur[s] > 0)).any():
                continue
            surplus = cur[s, c] - targets[s, c]
            key = (int(counts[g].sum()), -surplus, int(g))
            if best is None or key < best[0]:
                best = (key, g, s)
        if best is None:
            raise fail(c, cur)
        _, g, s = best
        cur[s] -= counts[g]
        cur[b] += counts[g]
        assigned[g] = b


def stratified_group_split(
    labels: Sequence[str],
    groups: Sequence[str],
    ratios: Sequence[float] = DEFAULT_RATIOS,
    seed: int = 0,
) -> np.ndarray:
    """Split items into "train"/"val"/"test", keeping groups whole and classes stratified.

    ``labels[i]`` and ``groups[i]`` describe item i (values are compared as strings).
    ``ratios`` (train, val, test) must be non-negative and sum to 1 (default 70/15/15,
    Panigrahi et al. 2024). Returns a string array with one split name per item. Every
    class must reach every split with a positive ratio, else :class:`ConfigError`
    (key ``split``); bad ratios raise :class:`ConfigError` (key ``split.ratios``).
    """
    r = _check_ratios(ratios)
    classes, item_group, counts = _encode(labels, groups)
    if len(item_group) == 0:
        return np.array([], dtype="<U5")
    assigned = _assign(counts, r, seed)
    _repair(counts, assigned, r, classes, SPLIT_NAMES)
    return np.array(SPLIT_NAMES)[assigned[item_group]]


def stratified_group_kfold(
    labels: Sequence[str],
    groups: Sequence[str],
    n_folds: int = DEFAULT_FOLDS,
    seed: int = 0,
) -> np.ndarray:
    """Assign every item a fold index 0..n_folds-1, keeping groups whole and classes
    stratified (default 5 folds, Mikolajczyk & Grochowski 2018).

    Each fold serves once as the test set, so every class must appear in every fold,
    else :class:`ConfigError` (key ``split``).
    """
    if isinstance(n_folds, bool) or not isinstance(n_folds, int | np.integer) or n_folds < 2:
        raise ConfigError("split.folds", f"must be an integer >= 2, got {n_folds!r}")
    n_folds = int(n_folds)
    classes, item_group, counts = _encode(labels, groups)
    if len(item_group) == 0:
        return np.array([], dtype=np.int64)
    r = np.full(n_folds, 1.0 / n_folds)
    assigned = _assign(counts, r, seed)
    _repair(counts, assigned, r, classes, [f"fold {k}" for k in range(n_folds)])
    return assigned[item_group].astype(np.int64)


def replicate_seed(seed: int, *path: int) -> int:
    """A seed for one repeat (``path = (repeat,)``) or one replicate's validation carve
    (``path = (repeat, fold)``), derived from the split seed ``seed``: stable across
    processes and platforms (``np.random.SeedSequence``), distinct for every path. The path's
    length is part of the entropy: SeedSequence pads short entropy with zeros, so without it
    ``(seed, i)`` and ``(seed, i, 0)`` would give the same seed."""
    return int(np.random.SeedSequence([int(seed), len(path), *map(int, path)]).generate_state(1)[0])


def replicate_index(replicate: int, n_folds: int) -> tuple[int, int]:
    """``(repeat, fold)`` of replicate ``replicate`` (numbered repeat-major)."""
    return divmod(int(replicate), int(n_folds))


def repeated_stratified_group_kfold(
    labels: Sequence[str],
    groups: Sequence[str],
    n_folds: int = DEFAULT_KFOLD_FOLDS,
    n_repeats: int = DEFAULT_KFOLD_REPEATS,
    val_share: float = DEFAULT_RATIOS[1] / (DEFAULT_RATIOS[0] + DEFAULT_RATIOS[1]),
    seed: int = 0,
) -> np.ndarray:
    """Every replicate's split of every item: shape ``(n_repeats * n_folds, n_items)``, values
    "train"/"val"/"test"; row ``r = repeat * n_folds + fold``.

    Repeat ``i`` assigns folds with :func:`stratified_group_kfold` seeded by
    ``replicate_seed(seed, i)``; in replicate ``(i, k)`` fold ``k`` is the test part, and the
    other folds are split into training and validation by :func:`stratified_group_split`
    with ratios ``(1 - val_share, val_share, 0)``, seeded by ``replicate_seed(seed, i, k)``.
    A group is never in two folds of a repeat, nor in two parts of a replicate. The default
    ``val_share`` keeps the 70:15 train:val proportion of the fixed split.

    Raises :class:`ConfigError` for ``n_folds`` < 2 (``split.folds``), ``n_repeats`` < 1
    (``split.repeats``), ``val_share`` outside (0, 1) (``split.ratios``), or a class too
    small to reach every fold (key ``split``, naming the class).
    """
    if isinstance(n_folds, bool) or not isinstance(n_folds, int | np.integer) or n_folds < 2:
        raise ConfigError("split.folds", f"must be an integer >= 2, got {n_folds!r}")
    if isinstance(n_repeats, bool) or not isinstance(n_repeats, int | np.integer) or n_repeats < 1:
        raise ConfigError("split.repeats", f"must be an integer >= 1, got {n_repeats!r}")
    if not 0.0 < float(val_share) < 1.0:
        raise ConfigError("split.ratios", f"the validation share of the training folds must lie in (0, 1), "
                          f"got {val_share!r}", "give the validation and training ratios positive values")
    labels, groups = [str(x) for x in labels], [str(x) for x in groups]
    out = np.empty((int(n_repeats) * int(n_folds), len(labels)), dtype="<U5")
    for i in range(int(n_repeats)):
        folds = stratified_group_kfold(labels, groups, n_folds, replicate_seed(seed, i))
        for k in range(int(n_folds)):
            row = out[i * int(n_folds) + k]
            row[folds == k] = "test"
            rest = np.flatnonzero(folds != k)
            row[rest] = stratified_group_split([labels[j] for j in rest], [groups[j] for j in rest],
                                               (1.0 - float(val_share), float(val_share), 0.0),
                                               replicate_seed(seed, i, k))
    return out


def split_summary(labels: Sequence[str], assignment: Sequence) -> dict[str, dict[str, int]]:
    """Counts per split (or fold) and class: ``{split: {class: n}}``, for reports."""
    out: dict[str, dict[str, int]] = {}
    for lab, s in zip(labels, assignment, strict=True):
        d = out.setdefault(str(s), {})
        d[str(lab)] = d.get(str(lab), 0) + 1
    return {k: dict(sorted(v.items())) for k, v in sorted(out.items())}


__all__ = [
    "DEFAULT_FOLDS",
    "DEFAULT_KFOLD_FOLDS",
    "DEFAULT_KFOLD_REPEATS",
    "DEFAULT_RATIOS",
    "SPLIT_NAMES",
    "repeated_stratified_group_kfold",
    "replicate_index",
    "replicate_seed",
    "split_summary",
    "stratified_group_kfold",
    "stratified_group_split",
]
