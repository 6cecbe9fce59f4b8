"""Binary classification metrics, ROC points and percentile-bootstrap intervals.

The positive class is 1 (malignant), the negative class 0 (benign).

Definitions
-----------
The five threshold metrics are the columns of Panigrahi et al. (2024), Table 4
(Acc, Recall, Specificity, Precision, F1), computed from the confusion matrix
``[[TN, FP], [FN, TP]]`` of the predictions ``y_pred = y_score >= threshold``:

* accuracy    = (TP + TN) / (TP + TN + FP + FN)
* recall      = TP / (TP + FN)            (sensitivity, true positive rate)
* specificity = TN / (TN + FP)            (recall of the negative class)
* precision   = TP / (TP + FP)            (positive predictive value)
* f1          = 2 TP / (2 TP + FP + FN)   (harmonic mean of precision and recall)

AUC is the area under the ROC curve, threshold-free, as reported by Byra (2021).
It is computed as the Mann-Whitney U statistic divided by ``n_pos * n_neg``:
the probability that a random malignant case scores higher than a random benign
one, a tie counting one half (equivalently, average ranks for tied scores).
This equals the trapezoidal area under the ROC curve of ``roc_curve_points``.

A ratio whose denominator is zero (e.g. precision when nothing is predicted
positive) is undefined and reported as ``nan``, never silently as 0 or 1; AUC is
``nan`` when one class is absent.

Confidence intervals are percentile bootstrap intervals (Efron & Tibshirani,
*An Introduction to the Bootstrap*, 1993, ch. 13): the test cases are resampled
with replacement (by default within each class, so every resample keeps the
class sizes of the test set), every metric is recomputed on each resample, and
the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` percentiles of those
values are the interval ends. The point estimate is the metric on the full
sample. Resamples on which a metric is undefined are dropped for that metric.

The bootstrap is vectorised: each resample is stored as a row of case counts
(how often each original case was drawn), so all metrics, AUC included, are
array operations over an ``(n_resamples, n_cases)`` matrix, with no Python
loop over resamples and no per-row sort.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bench.errors import AugbenchError, NumericalError

__all__ = [
    "METRIC_NAMES",
    "Interval",
    "binary_metrics",
    "bootstrap_ci",
    "bootstrap_ci_seeds",
    "confusion",
    "roc_curve_points",
    "summarize_runs",
]

METRIC_NAMES = ("accuracy", "recall", "specificity", "precision", "f1", "auc")


# ---------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------


def _as_1d(values, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim == 2 and arr.shape[1] == 1:  # e.g. Keras predict() on a sigmoid head
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise AugbenchError(
            f"metrics: {name} must be one-dimensional (one value per case), got shape {arr.shape}"
        )
    return arr


def _check_labels(y_true, name: str = "y_true") -> np.ndarray:
    """Return ``y_true`` as an int64 array of 0/1, or raise naming the bad values."""
    arr = _as_1d(y_true, name)
    if arr.size == 0:
        raise AugbenchError(f"metrics: {name} is empty; at least one test case is needed")
    if arr.dtype == bool:
        return arr.astype(np.int64)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise AugbenchError(
            f"metrics: {name} must hold the numbers 0 (benign) and 1 (malignant), "
            f"got dtype {arr.dtype}"
        )
    bad = ~((arr == 0) | (arr == 1))
    if bad.any():
        examples = ", ".join(repr(v) for v in np.unique(arr[bad])[:5].tolist())
        raise AugbenchError(
            f"metrics: {name} must contain only 0 (benign) and 1 (malignant); "
            f"{int(bad.sum())} of {arr.size} values are not (e.g. {examples})"
        )
    return arr.astype(np.int64)


def _check_scores(y_score, n: int) -> np.ndarray:
    arr = _as_1d(y_score, "y_score")
    if arr.shape[0] != n:
        raise AugbenchError(
            f"metrics: y_true has {n} cases but y_score has {arr.shape[0]}; "
            "they must be the same length and in the same order"
        )
    if not (
        np.issubdtype(arr.dtype, np.floating)
        or np.issubdtype(arr.dtype, np.integer)
        or arr.dtype == bool
    ):
        raise AugbenchError(f"metrics: y_score must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    finite = np.isfinite(arr)
    if not finite.all():
        n_nan = int(np.isnan(arr).sum())
        n_inf = int((~finite).sum()) - n_nan
        raise NumericalError(
            f"metrics: y_score contains {n_nan} NaN and {n_inf} infinite value(s) out of "
            f"{arr.size} predictions; the model output is not finite (check training for "
            "divergence, e.g. the loss curve or the learning rate)"
        )
    return arr


def _check_pair(y_true, y_score) -> tuple[np.ndarray, np.ndarray]:
    y = _check_labels(y_true)
    s = _check_scores(y_score, y.shape[0])
    return y, s


def _check_threshold(threshold) -> float:
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise AugbenchError(f"metrics: threshold must be a number, got {threshold!r}") from None
    if not math.isfinite(t):
        raise AugbenchError(f"metrics: threshold must be finite, got {threshold!r}")
    return t


# ---------------------------------------------------------------------------
# Point metrics
# ---------------------------------------------------------------------------


def _ratio(num, den):
    """Elementwise ``num / den`` with nan where ``den == 0`` (no warnings)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def confusion(y_true, y_pred) -> np.ndarray:
    """The 2x2 confusion matrix ``[[TN, FP], [FN, TP]]`` (rows: truth, columns: prediction).

    Both arguments hold 0/1 (or bool) labels; the positive class is 1 (malignant).
    Same layout as ``sklearn.metrics.confusion_matrix(y_true, y_pred, labels=[0, 1])``.
    """
    y = _check_labels(y_true, "y_true")
    p = _check_labels(y_pred, "y_pred")
    if p.shape[0] != y.shape[0]:
        raise AugbenchError(
            f"metrics: y_true has {y.shape[0]} cases but y_pred has {p.shape[0]}; "
            "they must be the same length and in the same order"
        )
    return np.bincount(2 * y + p, minlength=4).reshape(2, 2).astype(np.int64)


def _threshold_metrics(tn, fp, fn, tp) -> dict[str, np.ndarray]:
    """The five confusion-matrix metrics; arguments may be arrays (one entry per resample)."""
    return {
        "accuracy": _ratio(tp + tn, tp + tn + fp + fn),
        "recall": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "precision": _ratio(tp, tp + fp),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
    }


def _auc_from_counts(counts: np.ndarray, y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC for each row of a case-count matrix.

    ``counts[r, i]`` is how many times case ``i`` appears in sample ``r`` (a row of
    ones is the original sample). The cases are sorted by score once and grouped
    into runs of equal scores; for every row, each positive scores above every
    negative in a lower group (counts 1) and ties with the negatives of its own
    group (counts 1/2). Everything is kept in integers (twice the U statistic),
    so the result is exact up to the final division.
    """
    order = np.argsort(s, kind="mergesort")
    s_sorted = s[order]
    pos_sorted = y[order] == 1
    starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])

    c = counts[:, order]
    pos_g = np.add.reduceat(np.where(pos_sorted, c, 0), starts, axis=1)
    neg_g = np.add.reduceat(np.where(pos_sorted, 0, c), starts, axis=1)
    neg_below = np.cumsum(neg_g, axis=1) - neg_g
    twice_u = np.sum(pos_g * (2 * neg_below + neg_g), axis=1)
    n_pos = pos_g.sum(axis=1)
    n_neg = neg_g.sum(axis=1)
    return _ratio(twice_u, 2 * n_pos * n_neg)


def _metrics_from_counts(
    counts: np.ndarray, y: np.ndarray, s: np.ndarray, threshold: float
) -> dict[str, np.ndarray]:
    """All six metrics for each row of a case-count matrix, as arrays of length n_rows."""
    pred = s >= threshold
    pos = y == 1
    tp = counts @ (pos & pred).astype(np.int64)
    fn = counts @ (pos & ~pred).astype(np.int64)
    fp = counts @ (~pos & pred).astype(np.int64)
    tn = counts @ (~pos & ~pred).astype(np.int64)
    out = _threshold_metrics(tn, fp, fn, tp)
    out["auc"] = _auc_from_counts(counts, y, s)
    return out


def binary_metrics(y_true, y_score, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy, recall, specificity, precision, F1 and AUC of one set of predictions.

    ``y_score`` is the predicted probability of the positive class (malignant);
    a case is predicted positive when ``y_score >= threshold``. AUC ignores the
    threshold. Undefined ratios (0/0) are ``nan``; AUC is ``nan`` when ``y_true``
    holds a single class. Keys are in the order of ``METRIC_NAMES``.
    """
    y, s = _check_pair(y_true, y_score)
    t = _check_threshold(threshold)
    values = _metrics_from_counts(np.ones((1, y.shape[0]), dtype=np.int64), y, s, t)
    return {name: float(values[name][0]) for name in METRIC_NAMES}


def roc_curve_points(y_true, y_score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve points ``(fpr, tpr, thresholds)``, thresholds decreasing.

    One point per distinct score (a case is positive when ``score >= threshold``),
    preceded by the point (0, 0) at threshold ``+inf``: the same points as
    ``sklearn.metrics.roc_curve(y_true, y_score, drop_intermediate=False)`` in
    scikit-learn >= 1.3. ``fpr`` (``tpr``) is all ``nan`` when there is no negative
    (positive) case.
    """
    y, s = _check_pair(y_true, y_score)
    order = np.argsort(-s, kind="mergesort")
    s_desc = s[order]
    y_desc = y[order]
    # last index of each run of equal scores: the cumulative counts there are the
    # numbers of cases with score >= that value
    last = np.flatnonzero(np.r_[s_desc[1:] != s_desc[:-1], True])
    tps = np.cumsum(y_desc)[last]
    fps = (last + 1) - tps
    tps = np.r_[0, tps]
    fps = np.r_[0, fps]
    thresholds = np.r_[np.inf, s_desc[last]]
    fpr = _ratio(fps, np.full(fps.shape, fps[-1]))
    tpr = _ratio(tps, np.full(tps.shape, tps[-1]))
    return fpr, tpr, thresholds


# ---------------------------------------------------------------------------
# Bootstrap
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """A point estimate with the ends of its confidence interval."""

    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


def _bootstrap_indices(
    y_true, n_resamples: int, rng: np.random.Generator, stratified: bool = True
) -> np.ndarray:
    """Indices of the bootstrap resamples: an int64 matrix of shape ``(n_resamples, n)``.

    Row ``r`` lists the cases (indices into ``y_true``) drawn with replacement for
    resample ``r``. When ``stratified``, the positives are drawn from the positives
    and the negatives from the negatives, so every row keeps the class counts of
    ``y_true`` (columns: the positive draws first, then the negative draws).
    All draws come from ``rng`` in one call per class, so a seed fixes the matrix.
    """
    y = _check_labels(y_true)
    n = y.shape[0]
    if not stratified:
        return rng.integers(0, n, size=(n_resamples, n), dtype=np.int64)
    blocks = []
    for cls in (1, 0):
        members = np.flatnonzero(y == cls)
        if members.size:
            picks = rng.integers(0, members.size, size=(n_resamples, members.size))
            blocks.append(members[picks])
    return np.concatenate(blocks, axis=1).astype(np.int64, copy=False)


def _counts_from_indices(indices: np.ndarray, n: int) -> np.ndarray:
    """Turn an index matrix into a case-count matrix of shape ``(n_rows, n)``."""
    n_rows = indices.shape[0]
    flat = indices + (np.arange(n_rows, dtype=np.int64) * n)[:, None]
    return np.bincount(flat.ravel(), minlength=n_rows * n).reshape(n_rows, n)


def _percentile_interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    finite = samples[~np.isnan(samples)]
    if finite.size == 0:
        return math.nan, math.nan
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(finite, [100.0 * alpha, 100.0 * (1.0 - alpha)])
    return float(low), float(high)


def bootstrap_ci(
    y_true,
    y_score,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    threshold: float = 0.5,
    stratified: bool = True,
) -> dict[str, Interval]:
    """Percentile bootstrap intervals for the six metrics (Efron & Tibshirani, 1993).

    Returns one ``Interval`` per name in ``METRIC_NAMES``: ``value`` is the metric
    on the full sample, ``low``/``high`` the percentile interval over
    ``n_resamples`` resamples of the test cases, drawn with ``np.random.default_rng(seed)``
    (stratified by class unless ``stratified=False``). Resamples on which a metric
    is undefined are left out for that metric; if all are, the ends are ``nan``.
    The same inputs and seed always give the same intervals.
    """
    return bootstrap_ci_seeds(y_true, [y_score], n_resamples, confidence, seed, threshold, stratified)


def _bootstrap_mean(y, score_rows, t, n_resamples, conf, seed, stratified) -> dict[str, Interval]:
    """Intervals for the mean over ``score_rows`` (one row per seed), resampling test
    cases jointly: the same index matrix is applied to every row."""
    points = [binary_metrics(y, s, threshold=t) for s in score_rows]
    rng = np.random.default_rng(seed)
    indices = _bootstrap_indices(y, n_resamples, rng, stratified=stratified)
    counts = _counts_from_indices(indices, y.shape[0])
    per_row = [_metrics_from_counts(counts, y, s, t) for s in score_rows]
    out = {}
    for name in METRIC_NAMES:
        stacked = np.stack([r[name] for r in per_row])
        # a resample where a metric is undefined for any seed is left out for that metric
        samples = stacked.mean(axis=0)
        low, high = _percentile_interval(samples, conf)
        out[name] = Interval(value=float(np.mean([p[name] for p in points])), low=low, high=high)
    return out


def bootstrap_ci_seeds(y_true, score_rows, n_resamples: int = 1000, confidence: float = 0.95,
                       seed: int = 0, threshold: float = 0.5, stratified: bool = True
                       ) -> dict[str, Interval]:
    """Percentile bootstrap of the *seed-averaged* metrics.

    ``score_rows`` holds one score vector per training seed, all for the same
    test cases in the same order. Each resample draws test cases once and
    evaluates every seed on them, so the interval reflects test-set sampling
    of the mean over seeds (seed-to-seed spread is reported separately).
    """
    rows = [_check_pair(y_true, r)[1] for r in score_rows]
    if not rows:
        raise AugbenchError("metrics: score_rows is empty")
    y = _check_labels(y_true)
    t = _check_threshold(threshold)
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)):
        raise AugbenchError(f"metrics: n_resamples must be an integer, got {n_resamples!r}")
    if n_resamples < 1:
        raise AugbenchError(f"metrics: n_resamples must be >= 1, got {n_resamples}")
    conf = _open_unit(confidence, "confidence", "0.95")
    return _bootstrap_mean(y, rows, t, int(n_resamples), conf, seed, stratified)


def _open_unit(value, name: str, example: str, module: str = "metrics") -> float:
    """``value`` as a float strictly between 0 and 1 (a confidence, a level, a power), or an
    AugbenchError naming ``module`` and ``name``, with ``example`` as a valid value."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise AugbenchError(f"{module}: {name} must be a number, got {value!r}") from None
    if not 0.0 < out < 1.0:
        raise AugbenchError(
            f"{module}: {name} must be strictly between 0 and 1 (e.g. {example}), got {value!r}"
        )
    return out


# ---------------------------------------------------------------------------
# Across seeds
# ---------------------------------------------------------------------------


def summarize_runs(per_seed: list[dict[str, float]]) -> dict[str, tuple[float, float]]:
    """Mean and sample standard deviation (ddof=1) of each metric over seeds.

    ``per_seed`` holds one metrics dict per training seed, all with the same keys.
    The standard deviation is 0.0 for a single seed. A ``nan`` for any seed makes
    that metric's mean and std ``nan`` (an undefined metric is not averaged away).
    """
    runs = list(per_seed)
    if not runs:
        raise AugbenchError("metrics: summarize_runs needs at least one run, got none")
    keys = list(runs[0])
    for i, run in enumerate(runs[1:], start=1):
        if set(run) != set(keys):
            missing = sorted(set(keys) - set(run))
            extra = sorted(set(run) - set(keys))
            raise AugbenchError(
                f"metrics: run {i} has different metrics from run 0 "
                f"(missing {missing}, extra {extra}); every seed must report the same metrics"
            )
    out = {}
    for key in keys:
        vals = np.array([float(run[key]) for run in runs], dtype=np.float64)
        mean = float(vals.mean())
        std = float(vals.std(ddof=1)) if vals.size > 1 else 0.0
        if vals.size == 1 and math.isnan(mean):
            std = math.nan
        out[key] = (mean, std)
    return out
