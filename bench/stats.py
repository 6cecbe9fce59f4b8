"""Statistics for comparing classifiers on one test set.

The positive class is 1 (malignant), the negative class 0 (benign); a higher
score means "more likely malignant", as in ``bench.metrics``.

What is here, and where it comes from
-------------------------------------
* ``closest_to_corner_threshold``: the operating point Byra (2021, Sec. 3.3)
  used for accuracy, sensitivity and specificity, "the point on the ROC curve
  closest to [the] upper left corner", after Fawcett (2006, Byra's ref. [30]).
  Chosen here on the validation split only.
* ``delong_test`` / ``delong_ci``: DeLong, DeLong & Clarke-Pearson (1988),
  "Comparing the areas under two or more correlated receiver operating
  characteristic curves: a nonparametric approach", Biometrics 44(3):837-845,
  computed with the O(n log n) midrank algorithm of Sun & Xu (2014), "Fast
  implementation of DeLong's algorithm for comparing the areas under correlated
  receiver operating characteristic curves", IEEE Signal Processing Letters
  21(11):1389-1393. (Neither paper is in ``../shared/papers``; the formulas
  below are restated in this module's own notation, so no equation numbers are
  quoted.)
* ``bootstrap_auc_ranksum``: the comparison Byra (2021, Sec. 3.3) reports,
  "the bootstrapped AUC values obtained for different methods were compared
  using Wilcoxon rank sum test at the significance level of 0.05". Kept to
  reproduce the paper; it is not a valid test (see its docstring). Use DeLong.
* ``bootstrap_sd``: the "± std" of Byra (2021, Table 2; Sec. 3.3,
  "Bootstraping was applied to calculated the standard deviations"), from the
  vectorised bootstrap of ``bench.metrics``.
* ``seed_summary``: mean and sample standard deviation over training seeds.
* ``holm_adjust`` / ``compare_to_baseline``: Holm (1979), "A simple sequentially
  rejective multiple test procedure", Scandinavian Journal of Statistics
  6(2):65-70, over the DeLong p-values of all runs against one baseline.

DeLong's structural components, in this module's notation
---------------------------------------------------------
With ``m`` positives ``X_i`` and ``n`` negatives ``Y_j`` and
``psi(x, y) = 1 if x > y, 1/2 if x == y, 0 otherwise``:

* ``V10[i] = (1/n) sum_j psi(X_i, Y_j)`` (the share of negatives below positive ``i``)
* ``V01[j] = (1/m) sum_i psi(X_i, Y_j)`` (the share of positives above negative ``j``)
* ``AUC = mean(V10) = mean(V01)``
* ``S = cov(V10) / m + cov(V01) / n`` (sample covariances, ddof = 1, across the
  predictors), the estimated covariance matrix of the AUC estimates.

Sun & Xu's observation: with ``T_Z`` the midranks of a case among all cases,
``T_X`` its midrank among the positives and ``T_Y`` among the negatives,
``T_Z - T_X`` of a positive is the number of negatives below it (ties counting
one half), and ``T_Z - T_Y`` of a negative the number of positives below it. So
``V10 = (T_Z - T_X) / n`` and ``V01 = 1 - (T_Z - T_Y) / m``: three sorts instead
of an ``m x n`` comparison. These "placements" are half-integers, exact in
floating point, which the degenerate-variance rule of ``delong_test`` relies on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
from scipy import special
from scipy import stats as sps

from bench.errors import AugbenchError
from bench.metrics import (
    METRIC_NAMES,
    Interval,
    _as_1d,
    _auc_from_counts,
    _bootstrap_indices,
    _check_labels,
    _check_scores,
    _check_threshold,
    _counts_from_indices,
    _metrics_from_counts,
    roc_curve_points,
)
from bench.typed import suggest

__all__ = [
    "DeLongResult",
    "RankSumResult",
    "bootstrap_auc_ranksum",
    "bootstrap_sd",
    "closest_to_corner_threshold",
    "compare_to_baseline",
    "delong_ci",
    "delong_test",
    "holm_adjust",
    "seed_summary",
]

COMPARISON_COLUMNS = (
    "run", "auc", "auc_diff", "delong_z", "delong_p", "delong_p_holm", "ranksum_stat", "ranksum_p",
)


# ---------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------


def _scores(values, n: int, name: str) -> np.ndarray:
    """One score vector as float64, with errors that name the argument."""
    arr = _as_1d(values, name)
    if arr.shape[0] != n:
        raise AugbenchError(
            f"stats: y has {n} cases but {name} has {arr.shape[0]}; "
            "they must be the same length and in the same order"
        )
    try:
        return _check_scores(arr, n)
    except AugbenchError as exc:  # NumericalError for NaN/inf keeps its type
        raise type(exc)(f"stats: {name}: {exc}") from None


def _labels_and_scores(y, **scores) -> tuple[np.ndarray, np.ndarray]:
    """Labels as int64 0/1 and the named score vectors stacked as rows."""
    labels = _check_labels(y, "y")
    rows = [_scores(values, labels.shape[0], name) for name, values in scores.items()]
    return labels, np.stack(rows)


def _require_classes(y: np.ndarray, minimum: int, what: str) -> tuple[int, int]:
    """``(n_pos, n_neg)``, or raise when either class has fewer than ``minimum`` cases."""
    n_pos = int(y.sum())
    n_neg = int(y.shape[0] - n_pos)
    if min(n_pos, n_neg) < minimum:
        raise AugbenchError(
            f"stats: {what} needs at least {minimum} malignant (1) and {minimum} benign (0) "
            f"case(s); got {n_pos} malignant and {n_neg} benign"
        )
    return n_pos, n_neg


def _check_n_resamples(n_resamples) -> int:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)):
        raise AugbenchError(f"stats: n_resamples must be an integer, got {n_resamples!r}")
    if n_resamples < 2:
        raise AugbenchError(
            f"stats: n_resamples must be >= 2 (a spread needs two values), got {n_resamples}"
        )
    return int(n_resamples)


def _check_confidence(confidence) -> float:
    try:
        conf = float(confidence)
    except (TypeError, ValueError):
        raise AugbenchError(f"stats: confidence must be a number, got {confidence!r}") from None
    if not 0.0 < conf < 1.0:
        raise AugbenchError(
            f"stats: confidence must be strictly between 0 and 1 (e.g. 0.95), got {confidence!r}"
        )
    return conf


def _resample_counts(y: np.ndarray, n_resamples: int, seed, stratified: bool) -> np.ndarray:
    """The case-count matrix of ``bench.metrics``' bootstrap: the same seed draws the
    same resamples as ``metrics.bootstrap_ci``."""
    rng = np.random.default_rng(seed)
    indices = _bootstrap_indices(y, n_resamples, rng, stratified=stratified)
    return _counts_from_indices(indices, y.shape[0])


# ---------------------------------------------------------------------------
# Operating point
# ---------------------------------------------------------------------------


def closest_to_corner_threshold(y_val, s_val) -> float:
    """The threshold of the validation ROC point closest to the corner (FPR 0, TPR 1).

    Byra (2021, Sec. 3.3, after Fawcett 2006) read accuracy, sensitivity and
    specificity at "the point on the ROC curve closest to [the] upper left
    corner" but does not say on which data that point was found. Choosing it on
    the test set tunes the threshold to the very cases it is scored on, which
    makes the threshold metrics optimistic; pass the VALIDATION labels and
    scores here and apply the returned threshold to the test scores.

    The candidates are the distinct validation scores ``t``; a case is called
    malignant when ``score >= t`` (as in ``metrics.binary_metrics``), and the
    returned value is such a score, so on the validation set it reproduces the
    chosen ROC point exactly. The all-negative point at ``t = +inf`` (FPR 0,
    TPR 0, squared distance 1) is not a candidate: the all-positive point at the
    lowest score has the same distance, so a finite threshold always attains the
    minimum. The squared distance ``(1 - TPR)^2 + FPR^2`` is compared exactly
    (in rationals), and among equally close points the HIGHEST threshold wins
    (the fewest malignant calls).

    Raises ``AugbenchError`` unless ``y_val`` holds both classes, and
    ``NumericalError`` for non-finite scores.
    """
    y, s = _labels_and_scores(y_val, s_val=s_val)
    n_pos, n_neg = _require_classes(y, 1, "closest_to_corner_threshold")
    fpr, tpr, thresholds = roc_curve_points(y, s[0])
    tps = np.rint(tpr[1:] * n_pos).astype(np.int64)  # back to exact counts
    fps = np.rint(fpr[1:] * n_neg).astype(np.int64)
    dist = [Fraction(n_pos - tp, n_pos) ** 2 + Fraction(fp, n_neg) ** 2
            for tp, fp in zip(tps.tolist(), fps.tolist(), strict=True)]
    # thresholds[1:] decrease, so the first minimiser is the highest threshold
    best = dist.index(min(dist))
    return float(thresholds[1 + best])


# ---------------------------------------------------------------------------
# DeLong
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class DeLongResult:
    """DeLong's test of ``AUC_a == AUC_b`` on the same cases.

    ``diff = auc_a - auc_b``; ``se`` is the standard error of ``diff``;
    ``z = diff / se``; ``p_value`` is two-sided (standard normal); ``cov`` is
    the 2x2 estimated covariance matrix of ``(auc_a, auc_b)``.
    """

    auc_a: float
    auc_b: float
    diff: float
    se: float
    z: float
    p_value: float
    cov: np.ndarray


def _placements(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sun & Xu (2014) midrank placements for every row of ``scores``.

    Returns ``(below_pos, below_neg)``: for each positive, the number of
    negatives scoring below it; for each negative, the number of positives
    scoring below it; ties count one half. Shapes ``(k, m)`` and ``(k, n)``.
    """
    pos = y == 1
    t_z = sps.rankdata(scores, method="average", axis=1)
    t_x = sps.rankdata(scores[:, pos], method="average", axis=1)
    t_y = sps.rankdata(scores[:, ~pos], method="average", axis=1)
    return t_z[:, pos] - t_x, t_z[:, ~pos] - t_y


def _components(y: np.ndarray, scores: np.ndarray):
    """AUCs (k,) and DeLong's structural components V10 (k, m) and V01 (k, n)."""
    below_pos, below_neg = _placements(y, scores)
    m, n = below_pos.shape[1], below_neg.shape[1]
    auc = below_pos.sum(axis=1) / (m * n)  # Mann-Whitney U / (m n); the sum is exact
    return auc, below_pos / n, (m - below_neg) / m


def _covariance(v10: np.ndarray, v01: np.ndarray) -> np.ndarray:
    """DeLong's ``S = S10 / m + S01 / n`` (sample covariances across predictors)."""
    s10 = np.atleast_2d(np.cov(v10, ddof=1))
    s01 = np.atleast_2d(np.cov(v01, ddof=1))
    return s10 / v10.shape[1] + s01 / v01.shape[1]


def _variance_of_difference(y: np.ndarray, scores: np.ndarray) -> float:
    """``Var(AUC_a - AUC_b) = L S L'`` with ``L = (1, -1)``, from the per-case differences.

    Computed from the exact half-integer placement differences so that it is
    exactly 0 when, and only when, every positive's placement changes by the
    same amount between the two predictors and so does every negative's (e.g.
    identical predictors, or one a strictly increasing function of the other).
    """
    below_pos, below_neg = _placements(y, scores)
    d_pos = below_pos[0] - below_pos[1]
    d_neg = below_neg[0] - below_neg[1]
    if np.ptp(d_pos) == 0 and np.ptp(d_neg) == 0:
        return 0.0
    m, n = d_pos.shape[0], d_neg.shape[0]
    return float(np.var(d_pos / n, ddof=1) / m + np.var(d_neg / m, ddof=1) / n)


def _z_and_p(diff: float, var: float) -> tuple[float, float]:
    if var > 0.0:
        z = diff / math.sqrt(var)
        return z, float(2.0 * sps.norm.sf(abs(z)))
    if diff == 0.0:
        return 0.0, 1.0
    return math.nan, math.nan


def delong_test(y, s_a, s_b) -> DeLongResult:
    """DeLong's test for two correlated AUCs (the same cases scored by two models).

    DeLong, DeLong & Clarke-Pearson (1988), with the midrank algorithm of Sun &
    Xu (2014): O(n log n), ties handled by midranks (a tie counts one half, as
    in the AUC). ``z = (AUC_a - AUC_b) / sqrt(L S L')`` with ``L = (1, -1)``
    and ``S`` the covariance matrix of the module docstring; the p-value is
    two-sided from the standard normal.

    Degenerate variance. When the estimated variance of the difference is
    exactly 0 (every positive's, and every negative's, placement differs by the
    same amount between the two predictors; see ``_variance_of_difference``):

    * if the AUCs are equal too (identical predictors, or predictors that rank
      the cases identically), there is nothing to test: ``z = 0.0``,
      ``p_value = 1.0``;
    * if they differ (possible only in extreme data, e.g. one predictor
      separates the classes perfectly and the other is constant), the normal
      approximation has no scale: ``z`` and ``p_value`` are ``nan`` -
      undefined, never silently 0.

    Raises ``AugbenchError`` for labels other than 0/1, fewer than two cases of
    either class (the sample covariances need two), scores of a different
    length from ``y``; ``NumericalError`` (an ``AugbenchError``) for NaN or
    infinite scores.
    """
    labels, scores = _labels_and_scores(y, s_a=s_a, s_b=s_b)
    _require_classes(labels, 2, "delong_test")
    auc, v10, v01 = _components(labels, scores)
    var = _variance_of_difference(labels, scores)
    diff = float(auc[0] - auc[1])
    z, p = _z_and_p(diff, var)
    return DeLongResult(auc_a=float(auc[0]), auc_b=float(auc[1]), diff=diff,
                        se=math.sqrt(var), z=z, p_value=p, cov=_covariance(v10, v01))


def delong_ci(y, s, confidence: float = 0.95,
              scale: Literal["logit", "plain"] = "logit") -> Interval:
    """Confidence interval for one AUC from DeLong's variance estimate.

    ``se = sqrt(var(V10) / m + var(V01) / n)``, the same structural components
    as ``delong_test`` (DeLong et al. 1988; Sun & Xu 2014). ``q`` is the
    ``(1 + confidence) / 2`` standard-normal quantile.

    * ``scale="logit"`` (default): ``expit(logit(AUC) +- q * se / (AUC (1 - AUC)))``,
      the delta-method interval on the logit scale. It always lies inside
      (0, 1) and is asymmetric near 1, where the AUCs of this benchmark sit
      (Byra 2021, Table 2: 0.90-0.96 on 130 test images).
    * ``scale="plain"``: ``AUC +- q * se`` (the Wald interval), clipped to [0, 1].

    When ``se`` is 0 (every case has the same placement, which includes an AUC
    of exactly 0 or 1) both scales give the point ``[AUC, AUC]``: the variance
    estimate shows no uncertainty there, which is a limit of the estimator on a
    small sample, not a certainty. Errors as in ``delong_test``.
    """
    labels, scores = _labels_and_scores(y, s=s)
    _require_classes(labels, 2, "delong_ci")
    conf = _check_confidence(confidence)
    if scale not in ("logit", "plain"):
        raise AugbenchError(f"stats: scale must be 'logit' or 'plain', got {scale!r}")
    auc_arr, v10, v01 = _components(labels, scores)
    auc = float(auc_arr[0])
    se = math.sqrt(float(_covariance(v10, v01)[0, 0]))
    q = float(sps.norm.ppf((1.0 + conf) / 2.0))
    if se == 0.0:
        return Interval(value=auc, low=auc, high=auc)
    if scale == "plain":
        return Interval(value=auc, low=max(0.0, auc - q * se), high=min(1.0, auc + q * se))
    centre, half = math.log(auc / (1.0 - auc)), q * se / (auc * (1.0 - auc))
    return Interval(value=auc, low=float(special.expit(centre - half)),
                    high=float(special.expit(centre + half)))


# ---------------------------------------------------------------------------
# Byra (2021): Wilcoxon rank-sum on bootstrapped AUCs
# ---------------------------------------------------------------------------


class RankSumResult(NamedTuple):
    """``(statistic, p_value)`` of ``scipy.stats.ranksums`` on two AUC samples."""

    statistic: float
    p_value: float


def _paired_bootstrap_aucs(y, scores, n_resamples, seed, stratified) -> np.ndarray:
    """AUC of every row of ``scores`` on the same resamples: shape ``(k, n_kept)``.

    Resamples on which the AUC is undefined (one class drawn, only possible
    when not stratified) are dropped for all rows, keeping the pairing.
    """
    counts = _resample_counts(y, n_resamples, seed, stratified)
    aucs = np.stack([_auc_from_counts(counts, y, row) for row in scores])
    return aucs[:, ~np.isnan(aucs).any(axis=0)]


def bootstrap_auc_ranksum(y, s_a, s_b, n_resamples: int = 1000, seed: int = 0,
                          stratified: bool = True) -> RankSumResult:
    """Byra (2021, Sec. 3.3): Wilcoxon rank-sum test on bootstrapped AUC values.

    Reproduces the paper's comparison: the test cases are resampled with
    replacement ``n_resamples`` times (the same resamples for both models - a
    paired bootstrap - drawn as in ``metrics.bootstrap_ci`` from
    ``np.random.default_rng(seed)``, stratified by class unless
    ``stratified=False``); the AUC of each model is computed on each resample;
    the two samples of ``n_resamples`` AUCs are compared with the Wilcoxon
    rank-sum test (``scipy.stats.ranksums``, two-sided). The paper does not say
    whether its resamples were paired or stratified; these are the defaults of
    this project.

    THIS IS NOT A VALID TEST; it is here to reproduce the paper. Use
    ``delong_test``.

    * The rank-sum test assumes two independent samples of independent
      observations. Here the two AUC samples come from the same resampled
      cases, so they are strongly correlated, and within each sample the
      resamples all reuse the same few test cases.
    * More importantly, the bootstrap AUCs of a model scatter around its
      observed AUC with a spread set by the test-set size, whatever the number
      of resamples. The rank-sum statistic measures how far apart the two
      clouds are in units that shrink like ``1 / sqrt(n_resamples)``, so for a
      fixed observed difference the p-value goes to 0 as ``n_resamples`` grows:
      any nonzero difference can be made "significant" by resampling more. The
      number of resamples is a tuning knob, not data.

    A valid bootstrap comparison would instead look at the paired differences
    ``AUC_a* - AUC_b*`` over resamples (e.g. whether their percentile interval
    covers 0), whose spread does not shrink with ``n_resamples``.

    Returns ``RankSumResult(statistic, p_value)`` (a tuple); identical
    predictors give statistic 0 and p-value 1.
    """
    labels, scores = _labels_and_scores(y, s_a=s_a, s_b=s_b)
    _require_classes(labels, 1, "bootstrap_auc_ranksum")
    aucs = _paired_bootstrap_aucs(labels, scores, _check_n_resamples(n_resamples), seed, stratified)
    if aucs.shape[1] < 2:
        raise AugbenchError(
            "stats: fewer than two bootstrap resamples had both classes; use stratified=True "
            "or more resamples"
        )
    result = sps.ranksums(aucs[0], aucs[1])
    return RankSumResult(statistic=float(result.statistic), p_value=float(result.pvalue))


# ---------------------------------------------------------------------------
# Spreads
# ---------------------------------------------------------------------------


def _sd(samples: np.ndarray) -> float:
    finite = samples[~np.isnan(samples)]
    return float(np.std(finite, ddof=1)) if finite.size >= 2 else math.nan


def bootstrap_sd(y, s, n_resamples: int = 1000, seed: int = 0, threshold: float = 0.5,
                 stratified: bool = True) -> dict[str, float]:
    """Bootstrap standard deviation of each metric: the "± std" of Byra (2021, Table 2).

    Byra (2021, Sec. 3.3) only says "Bootstraping was applied to calculated the
    standard deviations". Here the test cases are resampled as in
    ``metrics.bootstrap_ci`` (same seed, same resamples; stratified by class
    unless ``stratified=False``), the six metrics of ``metrics.METRIC_NAMES``
    (accuracy, recall = sensitivity, specificity, precision, f1, auc) are
    recomputed on each resample at ``score >= threshold``, and the sample
    standard deviation (ddof = 1) over resamples is returned per metric.

    Stratified resampling keeps the class counts fixed, so the accuracy's sd is
    ``sqrt(P se(1-se) + N sp(1-sp)) / (P + N)`` rather than the unstratified
    ``sqrt(acc (1 - acc) / (P + N))``. Resamples on which a metric is undefined
    are left out for it; ``nan`` when fewer than two remain. For the Byra
    operating point, pass ``threshold=closest_to_corner_threshold(y_val, s_val)``.
    """
    labels, scores = _labels_and_scores(y, s=s)
    t = _check_threshold(threshold)
    counts = _resample_counts(labels, _check_n_resamples(n_resamples), seed, stratified)
    values = _metrics_from_counts(counts, labels, scores[0], t)
    return {name: _sd(values[name]) for name in METRIC_NAMES}


def bootstrap_sd_seeds(y, score_rows, n_resamples: int = 1000, seed: int = 0, threshold: float = 0.5,
                       stratified: bool = True) -> dict[str, float]:
    """Bootstrap standard deviation of the *seed-mean* metrics — the statistic a results row
    reports when a run has several training seeds (one score vector per seed, same test cases).

    Each resample draws test cases once and scores every seed on them (as
    ``metrics.bootstrap_ci_seeds``); the metric is averaged over seeds per resample, and the
    sd over resamples is returned. With one seed this is ``bootstrap_sd``.
    """
    rows = [np.asarray(r) for r in score_rows]
    if not rows:
        raise AugbenchError("stats: bootstrap_sd_seeds needs at least one score row")
    labels, _ = _labels_and_scores(y, s=rows[0])
    scores = [_labels_and_scores(y, s=r)[1][0] for r in rows]
    t = _check_threshold(threshold)
    counts = _resample_counts(labels, _check_n_resamples(n_resamples), seed, stratified)
    per_row = [_metrics_from_counts(counts, labels, sc, t) for sc in scores]
    return {name: _sd(np.mean(np.stack([v[name] for v in per_row]), axis=0)) for name in METRIC_NAMES}


def seed_summary(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1) of one metric over training seeds.

    ``metrics.summarize_runs`` reports an sd of 0.0 for a single seed; here it
    is ``nan``, because one seed says nothing about seed-to-seed spread. A
    ``nan`` among the values makes both results ``nan``. Raises
    ``AugbenchError`` for no values.
    """
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size == 0:
        raise AugbenchError("stats: seed_summary needs at least one value, got none")
    sd = float(np.std(arr, ddof=1)) if arr.size > 1 else math.nan
    return float(np.mean(arr)), sd


# ---------------------------------------------------------------------------
# Several runs against a baseline
# ---------------------------------------------------------------------------


def holm_adjust(p_values) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values, in the input order.

    With the ``k`` finite p-values sorted ascending, ``p_(1) <= ... <= p_(k)``,
    the adjusted value of ``p_(i)`` is ``max_{j <= i} min(1, (k - j + 1) p_(j))``.
    Rejecting where the adjusted value is ``<= alpha`` controls the
    family-wise error rate at ``alpha`` under any dependence between the tests.
    ``nan`` entries (tests that could not be done) stay ``nan`` and do not count
    towards ``k``.
    """
    p = np.asarray(p_values, dtype=np.float64).ravel()
    out = np.full(p.shape, math.nan)
    finite = np.flatnonzero(~np.isnan(p))
    order = finite[np.argsort(p[finite], kind="mergesort")]
    k = order.size
    scaled = np.minimum(1.0, (k - np.arange(k)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


def _comparison_row(name, auc, y, scores, baseline_scores, n_resamples, seed) -> dict:
    test = delong_test(y, scores, baseline_scores)
    ranksum = bootstrap_auc_ranksum(y, scores, baseline_scores, n_resamples, seed)
    return {"run": name, "auc": auc, "auc_diff": test.diff, "delong_z": test.z,
            "delong_p": test.p_value, "ranksum_stat": ranksum.statistic,
            "ranksum_p": ranksum.p_value}


def compare_to_baseline(y, scores_by_run: Mapping[str, Sequence[float]], baseline: str,
                        n_resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Every run's AUC against the baseline's, on the same test cases.

    One row per run, in the order of ``scores_by_run``, with the columns of
    ``COMPARISON_COLUMNS``: ``auc``; ``auc_diff`` (run minus baseline);
    DeLong's ``delong_z`` and two-sided ``delong_p`` (``delong_test(y, run,
    baseline)``); ``delong_p_holm``, the DeLong p-values Holm-adjusted over all
    the comparisons in the table (``holm_adjust``); and ``ranksum_stat`` /
    ``ranksum_p``, Byra's rank-sum test on bootstrapped AUCs
    (``bootstrap_auc_ranksum``, same ``n_resamples`` and ``seed`` for every
    run, so all runs see the same resamples), reported for comparison with the
    paper only and not adjusted. The baseline's own row has ``auc_diff`` 0 and
    ``nan`` in the test columns (it is not compared with itself).

    Raises ``AugbenchError`` when ``baseline`` is not a key of
    ``scores_by_run`` (with a "did you mean" hint), and as ``delong_test`` for
    bad labels or scores.
    """
    if baseline not in scores_by_run:
        hint = suggest(baseline, scores_by_run)
        raise AugbenchError(f"stats: baseline {baseline!r} is not among the runs "
                            f"{sorted(scores_by_run)}" + (f"; {hint}" if hint else ""))
    labels, scores = _labels_and_scores(y, **{f"scores_by_run[{k!r}]": v
                                              for k, v in scores_by_run.items()})
    _require_classes(labels, 2, "compare_to_baseline")
    aucs = _components(labels, scores)[0]
    names = list(scores_by_run)
    base = scores[names.index(baseline)]
    rows = [_comparison_row(name, float(auc), labels, row, base, n_resamples, seed)
            if name != baseline else {"run": name, "auc": float(auc), "auc_diff": 0.0}
            for name, auc, row in zip(names, aucs, scores, strict=True)]
    frame = pd.DataFrame(rows).reindex(columns=list(COMPARISON_COLUMNS))
    frame["delong_p_holm"] = holm_adjust(frame["delong_p"].to_numpy(dtype=np.float64))
    return frame
