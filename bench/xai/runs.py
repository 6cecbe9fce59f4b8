"""Explanations of a trained classifier on the test images: LRP heatmaps and how much of the
relevance falls on the lesion (issue "LRP and the proposed NST"; Panigrahi et al. 2024, §LRP).

For every test image, after the model has been chosen on the validation split (the test
split is used descriptively only, as for the predictions):

- LRP relevance, αβ-rule with α = 2, β = 1 (Panigrahi Eq. 16; Montavon, Samek & Müller 2018),
  of the *predicted* class's logit, summed over channels into a pixel map R_p (§LRP:
  "assign a relevance score R_p to each pixel p");
- the same for gradient × input (not LRP; the usual baseline, Ancona et al. 2018);
- where the dataset has lesion masks (the phantom always; BUSI's public release), the
  share of positive relevance inside the mask (bench.xai.lrp.positive_share_inside) for
  both, next to the lesion's area fraction — the share a relevance spread evenly over the
  image would get. An explanation that points at the lesion beats the area fraction.

The maps are stored in ``relevance.npz`` of the run folder (float16, model input size) and
summarised in its meta.json; the report stage draws the heatmaps and the table. A model the
LRP module cannot explain (an unsupported layer) is recorded with the reason, never skipped
silently.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bench.errors import AugbenchError
from bench.io import save_npz

RULE = "alpha-beta"  # with bench.xai.lrp's ALPHA, BETA: α2β1 (Montavon et al. 2018; Panigrahi give no values)
BATCH = 16  # images explained at once (float64: memory grows with batch × model size)


def resize_masks(masks: np.ndarray, size: int) -> np.ndarray:
    """(N, H, W) masks → (N, size, size) booleans (nearest neighbour, as masks must stay binary)."""
    if masks.shape[1:] == (size, size):
        return masks.astype(bool)
    import tensorflow as tf

    out = tf.image.resize(masks[..., None].astype(np.float32), (size, size), method="nearest")
    return out.numpy()[..., 0] > 0.5


def explained_rows(labels: np.ndarray, limit: int | None, seed: int = 0) -> np.ndarray:
    """Sorted row indices of the test images to explain (``train.explain_images``): every row when
    ``limit`` is None or at least ``len(labels)``; otherwise ``limit`` rows, stratified by class — as
    equal per class as possible, a class with fewer rows than its share giving the spare to the others
    (a remainder of one goes to the classes in sorted order) — each class's rows drawn with
    ``np.random.default_rng(seed)``."""
    labels = np.asarray(labels)
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 or None, got {limit!r}")
    if limit is None or limit >= len(labels):
        return np.arange(len(labels))
    classes = np.unique(labels)
    sizes = np.array([int((labels == c).sum()) for c in classes])
    quota, left = np.zeros(len(classes), np.int64), int(limit)
    while left:  # ends: every pass adds at least one row, and limit < len(labels)
        open_ = np.flatnonzero(quota < sizes)
        share = max(left // len(open_), 1)
        for k in open_:
            add = min(share, sizes[k] - quota[k], left)
            quota[k] += add
            left -= add
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(labels == c), q, replace=False) for c, q in zip(classes, quota, strict=True)]
    return np.sort(np.concatenate(picked))


def explain_test(model, x_test: np.ndarray, masks: np.ndarray | None) -> tuple[dict, dict]:
    """(arrays for relevance.npz, summary for meta.json) for the model's test inputs ``x_test``
    (model input space, (N, S, S, C)); ``masks`` (N, H, W) of the same images, or None."""
    from bench.xai.lrp import (
        ALPHA,
        BETA,
        UnsupportedLayerError,
        canonize,
        explain,
        gradient_x_input,
        positive_share_inside,
    )

    started = time.perf_counter()
    summary = {"explain_rule": f"{RULE} (alpha {ALPHA:g}, beta {BETA:g})", "explain_target": "predicted class",
               "explain_split": "test", "explain_images": int(len(x_test))}
    try:
        graph = canonize(model)
    except UnsupportedLayerError as exc:
        summary["explain_error"] = str(exc)
        return {}, summary
    lrp, gxi = [], []
    for start in range(0, len(x_test), BATCH):
        chunk = x_test[start:start + BATCH]
        lrp.append(explain(graph, chunk, RULE, alpha=ALPHA, beta=BETA).sum(axis=-1))
        gxi.append(gradient_x_input(graph, chunk).sum(axis=-1))
    lrp_maps, gxi_maps = np.concatenate(lrp), np.concatenate(gxi)
    if not (np.isfinite(lrp_maps).all() and np.isfinite(gxi_maps).all()):
        raise AugbenchError("LRP or gradient × input relevance of the test images is not finite")
    arrays = {"lrp": lrp_maps.astype(np.float16), "gradient_x_input": gxi_maps.astype(np.float16),
              "inputs": x_test.mean(axis=-1).astype(np.float16)}
    if masks is not None:
        m = resize_masks(masks, x_test.shape[1])
        arrays["masks"] = m
        lrp_share, gxi_share = positive_share_inside(lrp_maps, m), positive_share_inside(gxi_maps, m)
        area = m.mean(axis=(1, 2))
        summary.update(lrp_share_inside=_mean(lrp_share), lrp_share_inside_sd=_sd(lrp_share),
                       gxi_share_inside=_mean(gxi_share), gxi_share_inside_sd=_sd(gxi_share),
                       lesion_area_fraction=_mean(area), lrp_beats_area=int(np.nansum(lrp_share > area)))
    summary["explain_seconds"] = round(time.perf_counter() - started, 1)
    return arrays, summary


def write_explanations(model, x_test: np.ndarray, test_ids: list[str], masks: np.ndarray | None,
                       out: Path) -> dict:
    """Explain, write ``out/relevance.npz``, return the meta.json entries."""
    arrays, summary = explain_test(model, x_test, masks)
    if arrays:
        save_npz(out / "relevance.npz", ids=np.asarray(test_ids), **arrays)
    return summary


def _mean(v: np.ndarray) -> float | None:
    v = v[np.isfinite(v)]
    return round(float(v.mean()), 4) if len(v) else None


def _sd(v: np.ndarray) -> float | None:
    v = v[np.isfinite(v)]
    return round(float(v.std(ddof=1)), 4) if len(v) > 1 else None
