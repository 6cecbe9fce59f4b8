"""Pseudo-labelled NST (Mikołajczyk & Grochowski 2018): teacher, balanced threshold, folds, leakage check.

§IV of the paper: synthetic images (benign content, malignant style) are labelled by a
network "previously trained on the target dataset", with its decision threshold moved
"so the number of images in all classes are equal"; all synthetic images form the
training set and the real images are divided into validation and test sets, in 5-fold
cross-validation, with care that "any images that were used to generate the augmented
database did not appear in the validation or test sets".

Here:

- :func:`train_teacher`: a small CNN trained on the real images the fold may use (its
  training part); the paper's teacher architecture is not given (ours: two conv blocks).
- :func:`balanced_labels`: rank the teacher's scores; the top ⌊n/2⌋ become class 1,
  the rest class 0; the threshold reported is the midpoint of the two scores at the cut.
- :func:`fold_plan`: stratified, group-aware 5 folds over the real images
  (:func:`bench.data.splits.stratified_group_kfold`); fold k holds out fold k, split in
  halves into validation and test (again stratified and group-aware); the other folds
  are the only images that may serve as content, style or teacher training data. With
  ``max_per_class`` the folds cover only a stratified, group-aware subsample
  (:func:`subsample`), to bound the protocol's cost on a large dataset.
- :func:`check_fold`: the leakage check, on the synthetic images' provenance.
- :func:`fold_table`: per-fold metrics and their mean and sd, the layout of the paper's Table I.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench.errors import AugbenchError
from bench.quiet import progress

MIKOLAJCZYK = "Mikołajczyk & Grochowski 2018"


# --------------------------------------------------------------------------- teacher


@dataclass(frozen=True)
class TeacherConfig:
    filters: int = 8
    epochs: int = 2
    batch_size: int = 16
    learning_rate: float = 1e-3
    seed: int = 0


def build_teacher(input_shape: tuple[int, int], cfg: TeacherConfig):
    """Conv(f)-MaxPool-Conv(2f)-MaxPool-GlobalAvg-Dense(1, sigmoid), seeded Glorot kernels."""
    import tensorflow as tf

    def glorot(k):
        return tf.keras.initializers.GlorotUniform(seed=cfg.seed + k)

    layers = tf.keras.layers
    return tf.keras.Sequential([
        layers.Input((*input_shape, 1)),
        layers.Conv2D(cfg.filters, 3, padding="same", activation="relu", kernel_initializer=glorot(1)),
        layers.MaxPooling2D(),
        layers.Conv2D(2 * cfg.filters, 3, padding="same", activation="relu", kernel_initializer=glorot(2)),
        layers.MaxPooling2D(),
        layers.GlobalAveragePooling2D(),
        layers.Dense(1, activation="sigmoid", kernel_initializer=glorot(3)),
    ], name="teacher")


def train_teacher(images: np.ndarray, labels: np.ndarray, cfg: TeacherConfig):
    """Fit the teacher on real images (N, H, W) in [0, 1]; minibatch order from ``numpy`` (seeded),
    so the same seed gives the same teacher. Returns the model."""
    import tensorflow as tf

    model = build_teacher(images.shape[1:], cfg)
    opt = tf.keras.optimizers.Adam(cfg.learning_rate, jit_compile=False)
    loss_fn = tf.keras.losses.BinaryCrossentropy()
    x, y = np.asarray(images, np.float32)[..., None], np.asarray(labels, np.float32)[:, None]
    rng = np.random.default_rng(cfg.seed)
    steps = -(-len(x) // cfg.batch_size)  # batches per epoch
    with progress(total=cfg.epochs * steps, desc="teacher", unit="batch") as bar:
        for epoch in range(cfg.epochs):
            order = rng.permutation(len(x))
            for start in range(0, len(x), cfg.batch_size):
                idx = order[start:start + cfg.batch_size]
                with tf.GradientTape() as tape:
                    loss = loss_fn(y[idx], model(x[idx], training=True))
                opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables,
                                        strict=True))
                bar.update(1)
                if not bar.disable:  # float(loss) waits for the device: only when shown
                    bar.set_postfix_str(f"epoch {epoch + 1}/{cfg.epochs}, loss {float(loss):.4f}", refresh=False)
    return model


def teacher_scores(model, images: np.ndarray, batch: int = 64) -> np.ndarray:
    x = np.asarray(images, np.float32)[..., None]
    return np.concatenate([model(x[s:s + batch], training=False).numpy()[:, 0]
                           for s in range(0, len(x), batch)]) if len(x) else np.zeros(0, np.float32)


def balanced_labels(scores: np.ndarray) -> tuple[np.ndarray, float]:
    """Labels with ⌊n/2⌋ ones (the highest scores; ties by index) and the threshold between the classes."""
    scores = np.asarray(scores, np.float64)
    n = len(scores)
    labels = np.zeros(n, np.int64)
    if n == 0:
        return labels, float("nan")
    order = np.argsort(-scores, kind="stable")
    k = n // 2
    labels[order[:k]] = 1
    if k == 0:  # one image: it stays class 0, the threshold sits just above its score
        return labels, float(scores.max())
    return labels, float((scores[order[k - 1]] + scores[order[k]]) / 2)


# --------------------------------------------------------------------------- folds


@dataclass(frozen=True)
class Fold:
    index: int
    sources: tuple[str, ...]  # real images this fold may use: content, style, teacher training
    val: tuple[str, ...]
    test: tuple[str, ...]


def subsample(labels: Sequence, groups: Sequence, max_per_class: int | None, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most ``max_per_class`` items per class, whole groups only; all items when
    ``max_per_class`` is None.

    Groups are visited in an order drawn from ``seed``; a group is taken when every class still has
    room for all of its members, else skipped (so a class with room left can still take smaller
    groups). A class with at most ``max_per_class`` items is thus kept whole; a larger one reaches
    ``max_per_class`` unless its remaining groups are all too big to fit.
    """
    labels = [str(c) for c in labels]
    groups = [str(g) for g in groups]
    if len(labels) != len(groups):
        raise ValueError(f"labels and groups differ in length ({len(labels)} vs {len(groups)})")
    if max_per_class is None:
        return np.arange(len(labels))
    members: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    names = sorted(members)
    room = dict.fromkeys(labels, int(max_per_class))
    keep: list[int] = []
    for k in np.random.default_rng(seed).permutation(len(names)):
        rows = members[names[k]]
        need: dict[str, int] = {}
        for i in rows:
            need[labels[i]] = need.get(labels[i], 0) + 1
        if all(n <= room[c] for c, n in need.items()):
            keep += rows
            for c, n in need.items():
                room[c] -= n
    return np.array(sorted(keep), dtype=np.int64)


def fold_plan(ids: Sequence[str], labels: Sequence, groups: Sequence | None = None, n_folds: int = 5,
              seed: int = 0, max_per_class: int | None = None) -> list[Fold]:
    """Stratified, group-aware folds; fold k's held-out part halves into validation and test. With
    ``max_per_class`` the folds cover only :func:`subsample`'s items (drawn from ``seed``); the other
    ids appear in no fold."""
    from bench.data.splits import stratified_group_kfold

    ids = [str(i) for i in ids]
    labels = [str(c) for c in labels]
    groups = [str(g) for g in (groups if groups is not None else ids)]
    if max_per_class is not None:
        keep = subsample(labels, groups, max_per_class, seed)
        ids, labels, groups = ([v[i] for i in keep] for v in (ids, labels, groups))
    fold_of = stratified_group_kfold(labels, groups, n_folds, seed)
    folds = []
    for k in range(n_folds):
        held = np.flatnonzero(fold_of == k)
        half = stratified_group_kfold([labels[i] for i in held], [groups[i] for i in held], 2, seed + 1 + k)
        folds.append(Fold(k, tuple(ids[i] for i in np.flatnonzero(fold_of != k)),
                          tuple(ids[held[j]] for j in np.flatnonzero(half == 0)),
                          tuple(ids[held[j]] for j in np.flatnonzero(half == 1))))
    return folds


def provenance_sources(record: dict) -> list[str]:
    """Every real image a synthetic image was made from (content/source and style ids)."""
    found = [record[k] for k in ("content_id", "source_id") if record.get(k)]
    return list(dict.fromkeys([*found, *record.get("style_ids", [])]))


def check_fold(fold: Fold, provenance: list[dict]) -> None:
    """Raise if a synthetic image of this fold was made from one of its validation or test images,
    or from an image outside the fold's sources."""
    held_out = {**{i: "validation" for i in fold.val}, **{i: "test" for i in fold.test}}
    allowed = set(fold.sources)
    for n, rec in enumerate(provenance):
        for src in provenance_sources(rec):
            if src in held_out:
                raise AugbenchError(f"fold {fold.index}: synthetic image {n} was made from {src!r}, a "
                                    f"{held_out[src]} image of this fold (leakage)")
            if src not in allowed:
                raise AugbenchError(f"fold {fold.index}: synthetic image {n} names {src!r}, which is not among "
                                    "the fold's source images")


def fold_table(rows: list[dict], metrics: Sequence[str]) -> list[dict]:
    """Rows {fold, metric...} plus a 'mean' row and an 'sd' row (Mikołajczyk & Grochowski 2018, Table I)."""
    values = {m: np.array([float(r[m]) for r in rows]) for m in metrics}
    table = [{"fold": str(r["fold"]), **{m: float(r[m]) for m in metrics}} for r in rows]
    table.append({"fold": "mean", **{m: float(v.mean()) for m, v in values.items()}})
    table.append({"fold": "sd", **{m: float(v.std(ddof=1)) if len(v) > 1 else float("nan")
                                   for m, v in values.items()}})
    return table
