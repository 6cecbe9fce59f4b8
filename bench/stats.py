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

Repeated training seeds against the baseline (see ``docs/statistics.md``):

* ``paired_seed_delta``: the mean per-seed AUC difference with a two-level
  percentile bootstrap interval (seeds and test cases resampled; Efron &
  Tibshirani 1993, ch. 13; Davison & Hinkley 1997, ch. 3) - the primary figure.
* ``paired_t_over_seeds``: Student's paired t-test over seeds (fixed test set).
* ``corrected_resampled_t``: Nadeau & Bengio (2003), "Inference for the
  generalization error", Machine Learning 52(3):239-281, for repeated random
  train/test splits or k-fold cross-validation.
* ``five_by_two_cv_f``: Alpaydin (1999), "Combined 5 x 2 cv F test for comparing
  supervised classification learning algorithms", Neural Computation
  11(8):1885-1892.
* ``minimum_detectable_delta``: power analysis of the paired t-test from the
  noncentral t (Cohen 1988, ch. 2).
* ``paired_t_power``: the power of that paired t-test for a given true difference.
* ``verdict``: "helps" / "hurts" / "no evidence" from the interval and the
  Holm-adjusted p-value; never from one seed.
* ``verdict_rows``: the verdict table of several arms against one baseline - all of
  the above per arm, Holm over the arms, and DeLong per seed as a secondary figure.

Repeated stratified group k-fold (``split.mode: repeated-kfold``; each replicate has its own
test fold):

* ``paired_fold_delta``: the mean per-replicate AUC difference with a two-level bootstrap
  interval that resamples the replicates and, within each, its test cases.
* ``fold_verdict_rows``: the verdict table over replicates, tested with
  ``corrected_resampled_t`` (Nadeau & Bengio 2003; ``n_test/n_train`` of one replicate) and,
  for 5 repeats of 2 folds, ``five_by_two_cv_f`` as a secondary column.

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
from scipy import optimize, special
from scipy import stats as sps

from bench.errors import AugbenchError, NumericalError
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
    _open_unit,
    _percentile_interval,
    roc_curve_points,
)
from bench.typed import suggest

__all__ = [
    "DeLongResult",
    "PairedTResult",
    "RankSumResult",
    "SeedDeltaResult",
    "Significance",
    "VERDICTS",
    "VERDICT_ROW_KEYS",
    "bootstrap_auc_ranksum",
    "bootstrap_sd",
    "closest_to_corner_threshold",
    "compare_to_baseline",
    "corrected_resampled_t",
    "delong_ci",
    "delong_test",
    "five_by_two_cv_f",
    "holm_adjust",
    "minimum_detectable_delta",
    "paired_seed_delta",
    "paired_t_over_seeds",
    "paired_t_power",
    "seed_summary",
    "verdict",
    "verdict_rows",
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
    return _probability(confidence, "confidence", "0.95")


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


# ---------------------------------------------------------------------------
# Repeated training seeds: a method against the baseline
# ---------------------------------------------------------------------------

Verdict = Literal["helps", "hurts", "no evidence"]
VERDICTS: tuple[Verdict, ...] = ("helps", "hurts", "no evidence")

# Rounds of redrawing one-class bootstrap resamples before giving up. Each round leaves a
# row one-class with probability at most 1/2 (two cases, one of each class), so 100 rounds
# fail with probability below 2**-100 per row: reaching the cap means a bug, not bad luck.
_MAX_REDRAW_ROUNDS = 100


class Significance(NamedTuple):
    """``(statistic, p_value)`` of a test."""

    statistic: float
    p_value: float


class PairedTResult(NamedTuple):
    """``(statistic, p_value, df)`` of a two-sided paired t-test."""

    statistic: float
    p_value: float
    df: int


@dataclass(frozen=True, eq=False)
class SeedDeltaResult:
    """The AUC difference (method minus baseline) over paired training seeds.

    ``per_seed[r] = auc_method[r] - auc_base[r]`` on the full test set (shape
    ``(R,)``); ``delta`` is their mean; ``[low, high]`` is the ``confidence``
    percentile interval of ``delta`` from the two-level bootstrap of
    ``paired_seed_delta`` with ``n_resamples`` replicates.
    """

    per_seed: np.ndarray
    auc_method: np.ndarray
    auc_base: np.ndarray
    delta: float
    low: float
    high: float
    confidence: float
    n_resamples: int

    @property
    def n_seeds(self) -> int:
        return int(self.per_seed.shape[0])

    @property
    def interval(self) -> Interval:
        return Interval(value=self.delta, low=self.low, high=self.high)


def _score_matrix(values, n: int, name: str) -> np.ndarray:
    """Scores of shape ``(n_seeds, n)`` as float64: one row of test-case scores per seed."""
    arr = np.asarray(values)
    if arr.ndim != 2:
        raise AugbenchError(
            f"stats: {name} must be two-dimensional, one row of test-case scores per training "
            f"seed (shape (n_seeds, n_test)), got shape {arr.shape}; for one seed pass [scores]"
        )
    if arr.shape[0] < 1:
        raise AugbenchError(f"stats: {name} needs at least one training seed (row), got 0")
    if arr.shape[1] != n:
        raise AugbenchError(
            f"stats: y has {n} cases but {name} has {arr.shape[1]} columns; every row must "
            "score the same test cases as y, in the same order"
        )
    return np.stack([_scores(row, n, f"{name}[{r}]") for r, row in enumerate(arr)])


def _differences(values, name: str, minimum: int) -> np.ndarray:
    """Paired differences as a finite float64 vector of at least ``minimum`` values."""
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size < minimum:
        raise AugbenchError(
            f"stats: {name} needs at least {minimum} paired differences, got {arr.size}"
        )
    if not np.isfinite(arr).all():
        raise NumericalError(
            f"stats: {name} contains {int((~np.isfinite(arr)).sum())} NaN or infinite value(s) "
            f"out of {arr.size}; every repetition needs a finite difference"
        )
    return arr


def _positive(value, name: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise AugbenchError(f"stats: {name} must be a number, got {value!r}") from None
    if not (math.isfinite(out) and out > 0.0):
        raise AugbenchError(f"stats: {name} must be a positive number, got {value!r}")
    return out


def _probability(value, name: str, example: str) -> float:
    return _open_unit(value, name, example, "stats")


def _one_class_rows(counts: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Rows of a case-count matrix that drew no positive or no negative case."""
    n_pos = counts[:, pos].sum(axis=1)
    return (n_pos == 0) | (n_pos == counts.sum(axis=1))


def _case_counts_both_classes(y: np.ndarray, n_resamples: int, rng) -> np.ndarray:
    """Unstratified bootstrap case counts ``(n_resamples, n)``; a row that drew one class
    only is redrawn (from the same ``rng``) until every row holds both classes."""
    n = y.shape[0]
    pos = y == 1
    counts = _counts_from_indices(rng.integers(0, n, size=(n_resamples, n), dtype=np.int64), n)
    for _ in range(_MAX_REDRAW_ROUNDS):
        bad = np.flatnonzero(_one_class_rows(counts, pos))
        if bad.size == 0:
            return counts
        fresh = rng.integers(0, n, size=(bad.size, n), dtype=np.int64)
        counts[bad] = _counts_from_indices(fresh, n)
    raise AugbenchError(  # unreachable with both classes in y (see _MAX_REDRAW_ROUNDS)
        f"stats: bootstrap resamples still lacked a class after {_MAX_REDRAW_ROUNDS} redraws"
    )


def _auc_matrix(y: np.ndarray, scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """AUC of every seed (row of ``scores``) on every resample (row of ``counts``).

    Shape ``(n_seeds, n_resamples)``. Each call of ``metrics._auc_from_counts`` is the
    rank-based Mann-Whitney AUC (ties count 1/2) vectorised over all resamples, so the only
    Python loop is over the few seeds.
    """
    return np.stack([_auc_from_counts(counts, y, row) for row in scores])


def paired_seed_delta(y, scores_method, scores_base, n_resamples: int = 2000, seed: int = 0,
                      confidence: float = 0.95) -> SeedDeltaResult:
    """Mean AUC difference, method minus baseline, over paired training seeds, with a
    two-level (seeds x test cases) percentile bootstrap interval.

    ``scores_method`` and ``scores_base`` have shape ``(R, n_test)``: row ``r`` holds
    the P(malignant) scores of the test cases ``y`` from the model trained with seed
    ``r``. The two arms must use the same test cases and the same seeds in the same
    order: row ``r`` of the method is paired with row ``r`` of the baseline.

    * Per seed: ``per_seed[r] = AUC(method_r) - AUC(base_r)``, the AUC being the
      Mann-Whitney U over ``n_pos * n_neg`` with ties counting 1/2 (as in
      ``bench.metrics``); ``delta = mean_r per_seed[r]``.
    * Interval: two-level bootstrap for crossed data (seeds x test cases; resampling
      every random factor, in the spirit of Davison & Hinkley 1997, "Bootstrap Methods
      and their Application", ch. 3 on hierarchical data; percentile interval as Efron
      & Tibshirani 1993, ch. 13). Each of the ``n_resamples`` replicates draws, from
      ``np.random.default_rng(seed)``:

      1. ``n_test`` test cases with replacement, NOT stratified by class. Rule: a
         resample that drew only one class (its AUC is undefined) is redrawn until it
         holds both; no resample is dropped.
      2. ``R`` seed indices with replacement (pairs of rows: a drawn seed brings its
         method row and its baseline row together).

      Both arms, and every seed, are scored on the same resampled cases within a
      replicate (paired), and the replicate's value is the mean over the drawn seeds of
      ``AUC*(method_r) - AUC*(base_r)``. ``[low, high]`` are the ``(1 - confidence)/2``
      and ``(1 + confidence)/2`` percentiles of the replicates.

    Unstratified resampling lets the class mix vary, so an arm whose AUC is fixed
    (e.g. a constant, one-class predictor has AUC 1/2 on every resample) is still
    compared with a baseline whose AUC moves; stratified resampling gives such
    predictors zero-width intervals on the threshold metrics. With ``R = 1`` only the
    test cases are resampled, and the interval says nothing about seed-to-seed
    variation (see ``verdict``).

    Raises ``AugbenchError`` for labels other than 0/1, a ``y`` without both classes,
    score arrays that are not 2-D, have no rows, have a column count other than
    ``len(y)`` or differ in their number of seeds, a bad ``n_resamples`` (< 2) or
    ``confidence``; ``NumericalError`` for NaN or infinite scores (naming the row).
    """
    labels = _check_labels(y, "y")
    _require_classes(labels, 1, "paired_seed_delta")
    n = labels.shape[0]
    method = _score_matrix(scores_method, n, "scores_method")
    base = _score_matrix(scores_base, n, "scores_base")
    if method.shape[0] != base.shape[0]:
        raise AugbenchError(
            f"stats: scores_method has {method.shape[0]} seeds (rows) but scores_base has "
            f"{base.shape[0]}; seed r of the method is paired with seed r of the baseline, so "
            "both need the same seeds in the same order"
        )
    b = _check_n_resamples(n_resamples)
    conf = _check_confidence(confidence)
    n_seeds = method.shape[0]

    everything = np.ones((1, n), dtype=np.int64)
    auc_method = _auc_matrix(labels, method, everything)[:, 0]
    auc_base = _auc_matrix(labels, base, everything)[:, 0]
    per_seed = auc_method - auc_base

    rng = np.random.default_rng(seed)
    counts = _case_counts_both_classes(labels, b, rng)
    seeds = rng.integers(0, n_seeds, size=(b, n_seeds))
    diff = _auc_matrix(labels, method, counts) - _auc_matrix(labels, base, counts)  # (R, B)
    replicates = diff[seeds, np.arange(b)[:, None]].mean(axis=1)  # (B,)
    low, high = _percentile_interval(replicates, conf)
    return SeedDeltaResult(per_seed=per_seed, auc_method=auc_method, auc_base=auc_base,
                           delta=float(per_seed.mean()), low=low, high=high,
                           confidence=conf, n_resamples=b)


def _t_test(d: np.ndarray, inflation: float) -> tuple[float, float]:
    """``t = mean(d) / sqrt(inflation * var(d))`` (ddof 1), two-sided p from t(J - 1).

    Zero variance: ``(0, 1)`` when the mean is 0 too (nothing differs); ``(nan, nan)``
    otherwise - the t distribution has no scale there, as in ``delong_test``.
    """
    mean, var = float(d.mean()), float(np.var(d, ddof=1))
    if var == 0.0:
        return (0.0, 1.0) if mean == 0.0 else (math.nan, math.nan)
    t = mean / math.sqrt(inflation * var)
    return t, float(2.0 * sps.t.sf(abs(t), d.size - 1))


def corrected_resampled_t(differences, n_train, n_test) -> Significance:
    """Nadeau & Bengio (2003) corrected resampled t-test on ``J`` paired differences.

    Nadeau & Bengio (2003), "Inference for the generalization error", Machine
    Learning 52(3):239-281, the "corrected resampled t" statistic (restated here; the
    paper is not in ``../shared/papers``, so no equation number is quoted):

        t = mean(d) / sqrt((1/J + n_test/n_train) * s^2),   s^2 = var(d, ddof=1),

    two-sided p-value from Student's t with ``J - 1`` degrees of freedom. The plain
    t-test uses ``1/J``; the extra ``n_test/n_train`` accounts for the correlation
    between repetitions whose training sets overlap.

    When it applies: ``d[j]`` is the metric difference (method minus baseline) of the
    ``j``-th of ``J`` repeated random train/test splits (or the folds of k-fold /
    repeated k-fold cross-validation), with ``n_train`` and ``n_test`` the training
    and test set sizes of one split. With a FIXED split where only the training seed
    varies there is no train-set overlap to correct for: the correction then only
    widens the test, so it is conservative (p-values too large) there; use
    ``paired_t_over_seeds`` and the bootstrap interval of ``paired_seed_delta``.

    Zero spread: ``(0.0, 1.0)`` when every difference is 0, ``(nan, nan)`` when all
    are equal but not 0. Raises ``AugbenchError`` for fewer than two differences or
    non-positive sizes, ``NumericalError`` for non-finite differences.
    """
    d = _differences(differences, "corrected_resampled_t", 2)
    ratio = _positive(n_test, "n_test") / _positive(n_train, "n_train")
    return Significance(*_t_test(d, 1.0 / d.size + ratio))


def paired_t_over_seeds(differences) -> PairedTResult:
    """Plain paired t-test over training seeds: ``t = mean(d) / (s / sqrt(R))``,
    ``s`` the sample sd (ddof 1), two-sided p from Student's t with ``df = R - 1``
    (Student 1908; e.g. Cohen 1988, ch. 2).

    For a FIXED test set where only the training seed varies: ``d[r]`` is the metric
    difference (method minus baseline) of seed ``r`` (e.g.
    ``paired_seed_delta(...).per_seed``). This test treats the test set as fixed: it
    covers seed-to-seed variation only and ignores the sampling of the test cases,
    which is why the two-level bootstrap interval of ``paired_seed_delta`` is the
    primary figure and this p-value (Holm-adjusted over methods) the secondary one.

    Zero spread as ``corrected_resampled_t``. Raises ``AugbenchError`` for fewer than
    two differences, ``NumericalError`` for non-finite ones.
    """
    d = _differences(differences, "paired_t_over_seeds", 2)
    t, p = _t_test(d, 1.0 / d.size)
    return PairedTResult(statistic=t, p_value=p, df=d.size - 1)


def five_by_two_cv_f(differences) -> Significance:
    """Alpaydin (1999) combined 5x2cv F-test.

    Alpaydin (1999), "Combined 5 x 2 cv F test for comparing supervised classification
    learning algorithms", Neural Computation 11(8):1885-1892, building on Dietterich's
    (1998) 5x2cv t-test (Neural Computation 10(7):1895-1923); restated here, no
    equation number quoted. ``differences[i, j]`` is the metric difference on fold
    ``j`` (of 2) of replication ``i`` (of 5) of 2-fold cross-validation:

        pbar_i = (d[i, 0] + d[i, 1]) / 2
        s_i^2  = (d[i, 0] - pbar_i)^2 + (d[i, 1] - pbar_i)^2
        F      = sum_ij d[i, j]^2 / (2 sum_i s_i^2)   ~  F(10, 5) under H0,

    p-value ``P(F(10, 5) >= F)``. Applies to 5 repetitions of 2-fold CV only, not to
    training seeds on a fixed split. Zero spread: ``(0.0, 1.0)`` when every difference
    is 0, ``(nan, nan)`` when every ``s_i^2`` is 0 but some difference is not. Raises
    ``AugbenchError`` for a shape other than (5, 2), ``NumericalError`` for non-finite
    values.
    """
    arr = np.asarray(differences, dtype=np.float64)
    if arr.shape != (5, 2):
        raise AugbenchError(
            "stats: five_by_two_cv_f needs differences of shape (5, 2) (5 replications x "
            f"2 folds), got shape {arr.shape}"
        )
    d = _differences(arr, "five_by_two_cv_f", 10).reshape(5, 2)
    s2 = ((d - d.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    num, den = float((d**2).sum()), 2.0 * float(s2.sum())
    if den == 0.0:
        return Significance(0.0, 1.0) if num == 0.0 else Significance(math.nan, math.nan)
    f = num / den
    return Significance(f, float(sps.f.sf(f, 10, 5)))


def _paired_t_power(noncentrality: float, df: int, t_crit: float) -> float:
    """Power of the two-sided t-test: ``P(T' > t_crit) + P(T' < -t_crit)``,
    ``T' ~ noncentral t(df, noncentrality)``.

    The lower tail is taken as ``P(T'(df, -noncentrality) > t_crit)`` (the same value, by
    symmetry): SciPy 1.17's ``nct.cdf`` returns NaN far in that tail (e.g. df 1,
    noncentrality 8), its ``sf`` does not.
    """
    return float(sps.nct.sf(t_crit, df, noncentrality) + sps.nct.sf(t_crit, df, -noncentrality))


def _check_n_seeds(n_seeds) -> int:
    if isinstance(n_seeds, bool) or not isinstance(n_seeds, (int, np.integer)) or n_seeds < 0:
        raise AugbenchError(f"stats: n_seeds must be a non-negative integer, got {n_seeds!r}")
    return int(n_seeds)


def _check_sd(value, name: str) -> float:
    """A standard deviation as a float: NaN and inf pass (callers treat them as unknown)."""
    try:
        sd = float(value)
    except (TypeError, ValueError):
        raise AugbenchError(f"stats: {name} must be a number, got {value!r}") from None
    if sd < 0.0:
        raise AugbenchError(f"stats: {name} must be >= 0, got {value!r}")
    return sd


def _alpha_and_power(alpha, power) -> tuple[float, float]:
    a = _probability(alpha, "alpha", "0.05")
    target = _probability(power, "power", "0.8")
    if target <= a:
        raise AugbenchError(
            f"stats: power must exceed alpha ({a}): a test reaches power alpha with no "
            f"effect at all; got power {power!r}"
        )
    return a, target


def paired_t_power(delta, sd, n_seeds, alpha: float = 0.05) -> float:
    """Power of the two-sided paired t-test over ``n_seeds`` seeds at level ``alpha`` when
    the per-seed differences have true mean ``delta`` and true standard deviation ``sd``.

    The same noncentral-t computation as ``minimum_detectable_delta`` (Cohen 1988, ch. 2;
    exact, as G*Power): ``df = n - 1``, ``c = t_{1 - alpha/2, df}``, ``lambda = delta
    sqrt(n) / sd`` and ``power = P(T'(df, lambda) > c) + P(T'(df, lambda) < -c)``. So
    ``paired_t_power(minimum_detectable_delta(sd, n, alpha, power), sd, n, alpha) ==
    power``, and ``paired_t_power(0, sd, n, alpha) == alpha``. The power depends on
    ``|delta|`` only.

    The sd is the TRUE one. Plugging in the sd observed in the same run gives the
    "observed power", a function of the p-value that says nothing new (Hoenig & Heisey
    2001, The American Statistician 55(1):19-24); report ``minimum_detectable_delta``
    for a finished run instead, and use this function for planning and for checking the
    test by simulation (``tests/test_stats_simulation.py``).

    Returns ``nan`` when ``n_seeds < 2`` (no test can be made) or when ``delta`` or
    ``sd`` is NaN or infinite; for ``sd == 0`` the limit as ``sd -> 0``: ``1.0`` when
    ``delta != 0``, ``alpha`` when ``delta == 0``. Raises ``AugbenchError`` for a
    negative ``sd`` or ``n_seeds``, a non-integer ``n_seeds``, a ``delta`` that is not a
    number, or ``alpha`` outside (0, 1).
    """
    n = _check_n_seeds(n_seeds)
    s = _check_sd(sd, "sd")
    try:
        d = float(delta)
    except (TypeError, ValueError):
        raise AugbenchError(f"stats: delta must be a number, got {delta!r}") from None
    a = _probability(alpha, "alpha", "0.05")
    if n < 2 or not (math.isfinite(s) and math.isfinite(d)):
        return math.nan
    if s == 0.0:
        return a if d == 0.0 else 1.0
    t_crit = float(sps.t.ppf(1.0 - a / 2.0, n - 1))
    return _paired_t_power(d * math.sqrt(n) / s, n - 1, t_crit)


def minimum_detectable_delta(seed_sd, n_seeds, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest mean paired difference that a two-sided paired t-test over ``n_seeds``
    seeds detects with probability ``power`` at level ``alpha``, given ``seed_sd``, the
    standard deviation of the per-seed differences.

    Standard power analysis of the paired t-test (Cohen 1988, "Statistical Power
    Analysis for the Behavioral Sciences", 2nd ed., ch. 2, effect size ``d = delta /
    sd`` of the differences; exact power from the noncentral t, as G*Power computes it,
    Faul et al. 2007, Behavior Research Methods 39(2):175-191). With ``df = n - 1``,
    ``c = t_{1 - alpha/2, df}`` and noncentrality ``lambda = delta sqrt(n) / sd``:

        power(lambda) = P(T'(df, lambda) > c) + P(T'(df, lambda) < -c),

    which rises from ``alpha`` at ``lambda = 0``; ``lambda`` solving ``power(lambda) =
    power`` is found with ``scipy.optimize.brentq``, and ``delta = lambda sd / sqrt(n)``.
    For large ``n`` this approaches ``(z_{1-alpha/2} + z_{power}) sd / sqrt(n)``.

    Returns ``inf`` (no difference is detectable; not an error) when ``n_seeds < 2`` or
    ``seed_sd`` is NaN or infinite (e.g. ``seed_summary`` of one seed gives a NaN sd),
    and ``0.0`` when ``seed_sd == 0``. Raises ``AugbenchError`` for a negative
    ``seed_sd`` or ``n_seeds``, a non-integer ``n_seeds``, ``alpha`` outside (0, 1) or
    ``power`` outside (alpha, 1).
    """
    _check_n_seeds(n_seeds)
    sd = _check_sd(seed_sd, "seed_sd")
    a, target = _alpha_and_power(alpha, power)
    if n_seeds < 2 or not math.isfinite(sd):
        return math.inf
    if sd == 0.0:
        return 0.0
    df = int(n_seeds) - 1
    t_crit = float(sps.t.ppf(1.0 - a / 2.0, df))

    def gap(nc: float) -> float:
        return _paired_t_power(nc, df, t_crit) - target

    high = 1.0
    while gap(high) < 0.0 and high < 2.0**20:  # power rises to 1 with the noncentrality
        high *= 2.0
    nc = optimize.brentq(gap, 0.0, high, xtol=1e-12, rtol=1e-14)
    return float(nc * sd / math.sqrt(n_seeds))


def verdict(delta, low, high, p_adjusted, alpha: float = 0.05, *, n_seeds: int) -> Verdict:
    """A method's verdict against the baseline: "helps", "hurts" or "no evidence".

    * "helps": ``delta > 0``, the interval lies above 0 (``low > 0``) AND the
      Holm-adjusted p-value is below ``alpha``;
    * "hurts": ``delta < 0``, ``high < 0`` AND ``p_adjusted < alpha``;
    * otherwise "no evidence" - including any NaN input, and always when
      ``n_seeds < 2``: the project never calls a difference real from one seed.

    ``delta``, ``low`` and ``high`` come from ``paired_seed_delta`` (the primary
    figure); ``p_adjusted`` is the method's p-value against the baseline (e.g.
    ``paired_t_over_seeds``) after ``holm_adjust`` over all the methods compared with
    that baseline. Requiring both guards against an interval and a test that disagree.
    Raises ``AugbenchError`` when ``low > high`` or ``alpha`` is not in (0, 1).
    """
    a = _probability(alpha, "alpha", "0.05")
    d, lo, hi, p = (float(v) for v in (delta, low, high, p_adjusted))
    if lo > hi:
        raise AugbenchError(f"stats: verdict needs low <= high, got low {low!r} > high {high!r}")
    if n_seeds < 2 or not p < a:
        return "no evidence"
    if d > 0.0 and lo > 0.0:
        return "helps"
    if d < 0.0 and hi < 0.0:
        return "hurts"
    return "no evidence"


VERDICT_ROW_KEYS = (
    "method", "n_seeds", "auc_base", "auc_method", "delta", "low", "high", "p", "p_holm",
    "sd_diff", "mde", "power_at_mde", "delong_significant", "verdict",
)


def _arm_scores(arms: Mapping[str, object], n: int, n_seeds: int) -> dict[str, np.ndarray]:
    """Every arm as an ``(n_seeds, n)`` matrix, or an error naming the arm."""
    if not isinstance(arms, Mapping) or not arms:
        raise AugbenchError(
            "stats: verdict_rows needs arms as a non-empty mapping {name: scores of shape "
            f"(n_seeds, n_test)}}, got {arms!r}"
        )
    out = {}
    for name, scores in arms.items():
        matrix = _score_matrix(scores, n, f"arms[{name!r}]")
        if matrix.shape[0] != n_seeds:
            raise AugbenchError(
                f"stats: arms[{name!r}] has {matrix.shape[0]} seeds (rows) but baseline_scores "
                f"has {n_seeds}; row r of an arm is paired with row r of the baseline, so every "
                "arm needs the baseline's seeds, in the same order"
            )
        out[name] = matrix
    return out


def _arm_row(name: str, y: np.ndarray, method: np.ndarray, base: np.ndarray, n_resamples: int,
             seed, confidence: float, alpha: float, power: float) -> dict:
    """One arm against the baseline, before the Holm adjustment over arms."""
    found = paired_seed_delta(y, method, base, n_resamples, seed, confidence)
    d, n_seeds = found.per_seed, found.n_seeds
    p = paired_t_over_seeds(d).p_value if n_seeds >= 2 else math.nan
    sd = float(np.std(d, ddof=1)) if n_seeds >= 2 else math.nan
    delong = sum(delong_test(y, m, b).p_value < alpha for m, b in zip(method, base, strict=True))
    return {"method": name, "n_seeds": n_seeds, "auc_base": float(found.auc_base.mean()),
            "auc_method": float(found.auc_method.mean()), "delta": found.delta,
            "low": found.low, "high": found.high, "p": p, "p_holm": math.nan, "sd_diff": sd,
            "mde": minimum_detectable_delta(sd, n_seeds, alpha, power), "power_at_mde": power,
            "delong_significant": int(delong), "verdict": "no evidence"}


def verdict_rows(y, baseline_scores, arms: Mapping[str, object], n_resamples: int = 2000,
                 seed: int = 0, confidence: float = 0.95, alpha: float = 0.05,
                 power: float = 0.8, families: Mapping[str, str] | None = None) -> list[dict]:
    """The verdict of every arm against one baseline, over paired training seeds.

    ``baseline_scores`` and every value of ``arms`` have shape ``(R, n_test)``: row ``r``
    holds the test-case scores of the model trained with seed ``r`` (as
    ``paired_seed_delta``), and row ``r`` of an arm is paired with row ``r`` of the
    baseline. One dict per arm, in the order of ``arms``, with the keys of
    ``VERDICT_ROW_KEYS``:

    * ``method``: the arm's name; ``n_seeds``: ``R``;
    * ``auc_base``, ``auc_method``: the mean over seeds of each arm's AUC;
    * ``delta``, ``low``, ``high``: ``paired_seed_delta`` (mean per-seed difference and
      its two-level bootstrap interval at ``confidence``, ``n_resamples`` replicates from
      ``seed``; every arm is resampled with the same draws);
    * ``p``: ``paired_t_over_seeds`` on the per-seed differences (NaN for ``R = 1``);
    * ``p_holm``: ``holm_adjust`` of ``p`` over the arms of the same family: ``families`` maps an
      arm to its family's name (e.g. the methods under study apart from the controls, which check
      the harness and are not hypotheses of the study); None: every arm in one family;
    * ``sd_diff``: the sample sd (ddof 1) of the per-seed differences (NaN for ``R = 1``);
    * ``mde``: ``minimum_detectable_delta(sd_diff, R, alpha, power)`` (``inf`` for
      ``R = 1``), and ``power_at_mde``: that ``power``;
    * ``delong_significant``: on how many of the ``R`` seeds DeLong's test of the arm's
      model against the baseline's model of the same seed has ``p < alpha`` (a secondary
      figure: each such test covers the test cases but not the training randomness);
    * ``verdict``: ``verdict(delta, low, high, p_holm, alpha, n_seeds=R)``.

    Raises ``AugbenchError`` for labels other than 0/1, fewer than two cases of either
    class (DeLong needs two), a baseline or arm that is not ``(R, len(y))`` or has
    another number of seeds than the baseline (the message names the arm), an empty
    ``arms``, a bad ``n_resamples``, ``confidence``, ``alpha`` or ``power`` (which must
    exceed ``alpha``); ``NumericalError`` for NaN or infinite scores.
    """
    labels = _check_labels(y, "y")
    _require_classes(labels, 2, "verdict_rows")
    base = _score_matrix(baseline_scores, labels.shape[0], "baseline_scores")
    a, target = _alpha_and_power(alpha, power)
    b, conf = _check_n_resamples(n_resamples), _check_confidence(confidence)
    matrices = _arm_scores(arms, labels.shape[0], base.shape[0])
    rows = [_arm_row(name, labels, m, base, b, seed, conf, a, target)
            for name, m in matrices.items()]
    return _holm_verdicts(rows, families, a)


def _holm_verdicts(rows: list[dict], families: Mapping[str, str] | None, alpha: float) -> list[dict]:
    """Fill ``p_holm`` (Holm within each family of ``families``; None: one family) and ``verdict``."""
    family_of = {row["method"]: (families or {}).get(row["method"], "") for row in rows}
    for family in dict.fromkeys(family_of.values()):
        members = [r for r in rows if family_of[r["method"]] == family]
        for row, p_holm in zip(members, holm_adjust([r["p"] for r in members]), strict=True):
            row["p_holm"] = float(p_holm)
            row["verdict"] = verdict(row["delta"], row["low"], row["high"], p_holm, alpha,
                                     n_seeds=row["n_seeds"])
    return rows


# ---------------------------------------------------------------------------
# Repeated stratified group k-fold: one test fold per replicate
# ---------------------------------------------------------------------------


def _per_replicate(values, name: str) -> list:
    """One entry per replicate (a list or tuple of arrays, or a 2-D array when the folds are equal)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)) or len(values) < 1:
        raise AugbenchError(f"stats: {name} needs one array per replicate (test fold), got {values!r:.80}")
    return list(values)


def _fold_arrays(ys, scores, name: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per-replicate labels and scores, checked: both classes in every fold, matching lengths."""
    ys, scores = _per_replicate(ys, "y"), _per_replicate(scores, name)
    if len(scores) != len(ys):
        raise AugbenchError(f"stats: {name} has {len(scores)} replicates but y has {len(ys)}; replicate r of "
                            "every arm scores the test fold of replicate r")
    labels = [_check_labels(y, f"y[{r}]") for r, y in enumerate(ys)]
    for r, y in enumerate(labels):
        _require_classes(y, 1, f"{name} (replicate {r})")
    return labels, [_scores(s, y.shape[0], f"{name}[{r}]") for r, (y, s) in enumerate(zip(labels, scores, strict=True))]


def paired_fold_delta(ys, scores_method, scores_base, n_resamples: int = 2000, seed: int = 0,
                      confidence: float = 0.95) -> SeedDeltaResult:
    """Mean AUC difference, method minus baseline, over paired replicates of repeated k-fold,
    with a two-level (replicates x test cases) percentile bootstrap interval.

    ``ys[r]`` holds the labels of replicate ``r``'s test fold, ``scores_method[r]`` and
    ``scores_base[r]`` the two arms' scores of those cases (the folds differ in their cases
    and may differ in size). ``per_seed[r] = AUC(method_r) - AUC(base_r)``; ``delta`` is
    their mean. Each of the ``n_resamples`` bootstrap replicates draws, from
    ``np.random.default_rng(seed)``, for every fold its test cases with replacement (not
    stratified; a one-class draw is redrawn, as in ``paired_seed_delta``), then ``R`` fold
    indices with replacement, and averages the drawn folds' differences. The folds of one
    repeat partition the data and their training parts overlap, so they are not independent
    draws: the interval treats them as exchangeable, like the seeds of ``paired_seed_delta``
    (docs/statistics.md, "Repeated stratified group k-fold").

    Raises ``AugbenchError`` for labels other than 0/1, a fold without both classes, a
    score array of another length than its fold, differing numbers of replicates, a bad
    ``n_resamples`` or ``confidence``; ``NumericalError`` for NaN or infinite scores.
    """
    labels, method = _fold_arrays(ys, scores_method, "scores_method")
    _, base = _fold_arrays(ys, scores_base, "scores_base")
    b, conf = _check_n_resamples(n_resamples), _check_confidence(confidence)
    auc_method = np.array([_auc_from_counts(np.ones((1, y.size), np.int64), y, s)[0]
                           for y, s in zip(labels, method, strict=True)])
    auc_base = np.array([_auc_from_counts(np.ones((1, y.size), np.int64), y, s)[0]
                         for y, s in zip(labels, base, strict=True)])
    per_fold = auc_method - auc_base
    rng = np.random.default_rng(seed)
    diff = np.empty((len(labels), b))
    for r, y in enumerate(labels):
        counts = _case_counts_both_classes(y, b, rng)
        diff[r] = _auc_from_counts(counts, y, method[r]) - _auc_from_counts(counts, y, base[r])
    drawn = rng.integers(0, len(labels), size=(b, len(labels)))
    low, high = _percentile_interval(diff[drawn, np.arange(b)[:, None]].mean(axis=1), conf)
    return SeedDeltaResult(per_seed=per_fold, auc_method=auc_method, auc_base=auc_base,
                           delta=float(per_fold.mean()), low=low, high=high, confidence=conf, n_resamples=b)


def corrected_sd(sd: float, n_replicates: int, n_train, n_test) -> float:
    """The sd of the per-replicate differences scaled so that the plain paired t with it is the
    corrected resampled t: ``t = mean / sqrt((1/J + n_test/n_train) s^2) = mean sqrt(J) /
    (s sqrt(1 + J n_test/n_train))``. ``minimum_detectable_delta`` of this sd is the smallest
    difference ``corrected_resampled_t`` detects (under its t(J - 1) approximation)."""
    ratio = _positive(n_test, "n_test") / _positive(n_train, "n_train")
    return float(sd) * math.sqrt(1.0 + int(n_replicates) * ratio)


FOLD_VERDICT_KEYS = (*VERDICT_ROW_KEYS, "p_5x2cv_f")


def fold_verdict_rows(ys, baseline_scores, arms: Mapping[str, object], n_train, n_test,
                      n_resamples: int = 2000, seed: int = 0, confidence: float = 0.95,
                      alpha: float = 0.05, power: float = 0.8,
                      families: Mapping[str, str] | None = None, folds: int | None = None) -> list[dict]:
    """The verdict of every arm against one baseline over the replicates of repeated k-fold.

    ``ys[r]``: the labels of replicate ``r``'s test fold; ``baseline_scores[r]`` and
    ``arms[name][r]``: each arm's scores of those cases (replicate ``r`` of an arm paired
    with replicate ``r`` of the baseline: the same split). ``n_train``, ``n_test``: the
    training and test sizes of one replicate (their means when the folds differ by a case).
    Replicates are numbered repeat-major (``r = repeat * folds + fold``). The keys of
    ``FOLD_VERDICT_KEYS``, as ``verdict_rows`` with these changes:

    * ``delta``, ``low``, ``high``: ``paired_fold_delta``;
    * ``p``: ``corrected_resampled_t`` on the per-replicate differences with ``n_test /
      n_train`` (Nadeau & Bengio 2003, for k-fold and repeated k-fold); ``p_holm``: Holm
      within each family, as ``verdict_rows``;
    * ``mde``: ``minimum_detectable_delta`` of ``corrected_sd`` (the smallest difference the
      corrected test detects with probability ``power``);
    * ``delong_significant``: on how many replicates DeLong's test on that replicate's test
      fold has ``p < alpha``;
    * ``p_5x2cv_f``: Alpaydin's (1999) combined 5 x 2 cv F-test (``five_by_two_cv_f``) when
      there are 5 repeats of 2 folds (``folds == 2`` and 10 replicates), else NaN; a
      secondary figure, not Holm-adjusted and not used for the verdict.

    Raises ``AugbenchError`` as ``paired_fold_delta`` does, for an arm with another number of
    replicates than the baseline (naming the arm), fewer than two cases of a class in a fold
    (DeLong needs two), non-positive sizes, or a bad ``alpha`` or ``power``.
    """
    a, target = _alpha_and_power(alpha, power)
    labels, base = _fold_arrays(ys, baseline_scores, "baseline_scores")
    for r, y in enumerate(labels):
        _require_classes(y, 2, f"fold_verdict_rows (replicate {r})")
    if not isinstance(arms, Mapping) or not arms:
        raise AugbenchError("stats: fold_verdict_rows needs arms as a non-empty mapping {name: one score array "
                            f"per replicate}}, got {arms!r}")
    ratio_sizes = (_positive(n_train, "n_train"), _positive(n_test, "n_test"))
    five_by_two = folds == 2 and len(labels) == 10
    rows = []
    for name, given in arms.items():
        scores = _per_replicate(given, f"arms[{name!r}]")
        if len(scores) != len(labels):
            raise AugbenchError(f"stats: arms[{name!r}] has {len(scores)} replicates but the baseline has "
                                f"{len(labels)}; replicate r of an arm is paired with replicate r of the baseline")
        found = paired_fold_delta(labels, scores, base, n_resamples, seed, confidence)
        d, j = found.per_seed, found.n_seeds
        p = corrected_resampled_t(d, *ratio_sizes).p_value if j >= 2 else math.nan
        sd = float(np.std(d, ddof=1)) if j >= 2 else math.nan
        mde = minimum_detectable_delta(corrected_sd(sd, j, *ratio_sizes) if j >= 2 else sd, j, a, target)
        delong = sum(delong_test(y, m, b_).p_value < a for y, m, b_ in zip(labels, scores, base, strict=True))
        rows.append({"method": name, "n_seeds": j, "auc_base": float(found.auc_base.mean()),
                     "auc_method": float(found.auc_method.mean()), "delta": found.delta, "low": found.low,
                     "high": found.high, "p": p, "p_holm": math.nan, "sd_diff": sd, "mde": mde,
                     "power_at_mde": target, "delong_significant": int(delong), "verdict": "no evidence",
                     "p_5x2cv_f": five_by_two_cv_f(d.reshape(5, 2)).p_value if five_by_two else math.nan})
    return _holm_verdicts(rows, families, a)
