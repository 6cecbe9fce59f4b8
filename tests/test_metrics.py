"""bench.metrics agrees with scikit-learn, handles undefined cases, and bootstraps reproducibly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from bench.errors import AugbenchError
from bench.metrics import (
    METRIC_NAMES,
    Interval,
    _bootstrap_indices,
    binary_metrics,
    bootstrap_ci,
    confusion,
    roc_curve_points,
    summarize_runs,
)

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def sklearn_metrics(y, s, threshold=0.5) -> dict[str, float]:
    """The reference values, computed with scikit-learn (0/0 -> nan)."""
    pred = (np.asarray(s) >= threshold).astype(int)
    y = np.asarray(y)
    nan = np.nan
    out = {
        "accuracy": skm.accuracy_score(y, pred),
        "recall": skm.recall_score(y, pred, pos_label=1, zero_division=nan),
        "specificity": skm.recall_score(y, pred, pos_label=0, zero_division=nan),
        "precision": skm.precision_score(y, pred, pos_label=1, zero_division=nan),
        "f1": skm.f1_score(y, pred, pos_label=1, zero_division=nan),
        "auc": skm.roc_auc_score(y, s) if len(np.unique(y)) == 2 else nan,
    }
    # scikit-learn only uses zero_division when *both* precision and recall are
    # undefined; F1 is undefined exactly when 2TP + FP + FN == 0.
    tp = int(np.sum((y == 1) & (pred == 1)))
    fp = int(np.sum((y == 0) & (pred == 1)))
    fn = int(np.sum((y == 1) & (pred == 0)))
    if 2 * tp + fp + fn == 0:
        out["f1"] = nan
    return {k: float(v) for k, v in out.items()}


def assert_metrics_close(ours: dict, ref: dict) -> None:
    assert list(ours) == list(METRIC_NAMES)
    for name in METRIC_NAMES:
        a, b = ours[name], ref[name]
        if math.isnan(b):
            assert math.isnan(a), f"{name}: expected nan, got {a}"
        else:
            assert a == pytest.approx(b, rel=1e-12, abs=1e-12), name


def random_case(rng: np.random.Generator, n: int, pos_rate: float, n_levels: int | None):
    """Labels with the given positive rate; scores correlated with them, optionally tied."""
    y = (rng.random(n) < pos_rate).astype(int)
    s = 1.0 / (1.0 + np.exp(-(rng.normal(size=n) + 1.2 * (2 * y - 1))))
    if n_levels is not None:  # quantise to force many ties
        s = np.round(s * (n_levels - 1)) / (n_levels - 1)
    return y, s


# ---------------------------------------------------------------------------
# point metrics against scikit-learn
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize(
    ("n", "pos_rate", "n_levels"),
    [
        (50, 0.5, None),
        (200, 0.3, None),
        (300, 0.05, None),
        (120, 0.5, 5),
        (400, 0.1, 3),
        (40, 0.9, 11),
    ],
)
def test_binary_metrics_match_sklearn(seed, n, pos_rate, n_levels):
    rng = np.random.default_rng(seed)
    y, s = random_case(rng, n, pos_rate, n_levels)
    assert_metrics_close(binary_metrics(y, s), sklearn_metrics(y, s))


@settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    data=st.lists(st.tuples(st.integers(0, 1), st.integers(0, 8)), min_size=1, max_size=60),
    threshold=st.sampled_from([0.0, 0.25, 0.5, 0.625, 1.0, 1.5]),
)
def test_property_matches_sklearn(data, threshold):
    # scores on a grid of 9 values: many ties, and scores equal to the threshold
    y = np.array([d[0] for d in data])
    s = np.array([d[1] / 8 for d in data])
    ours = binary_metrics(y, s, threshold=threshold)
    assert_metrics_close(ours, sklearn_metrics(y, s, threshold))
    cm = confusion(y, (s >= threshold).astype(int))
    np.testing.assert_array_equal(cm, skm.confusion_matrix(y, s >= threshold, labels=[0, 1]))
    if len(np.unique(y)) == 2:
        fpr, tpr, thr = roc_curve_points(y, s)
        rfpr, rtpr, rthr = skm.roc_curve(y, s, drop_intermediate=False)
        np.testing.assert_allclose(fpr, rfpr)
        np.testing.assert_allclose(tpr, rtpr)
        np.testing.assert_array_equal(thr, rthr)


@pytest.mark.parametrize("seed", range(8))
def test_confusion_and_roc_match_sklearn(seed):
    rng = np.random.default_rng(100 + seed)
    y, s = random_case(rng, 250, [0.5, 0.08][seed % 2], [None, 4][seed // 4])
    pred = (s >= 0.5).astype(int)
    np.testing.assert_array_equal(confusion(y, pred), skm.confusion_matrix(y, pred, labels=[0, 1]))
    fpr, tpr, thr = roc_curve_points(y, s)
    rfpr, rtpr, rthr = skm.roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, rfpr, rtol=0, atol=1e-15)
    np.testing.assert_allclose(tpr, rtpr, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(thr, rthr)
    # AUC is the trapezoidal area under exactly these points
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    assert binary_metrics(y, s)["auc"] == pytest.approx(area, abs=1e-12)


def test_confusion_layout():
    y = [0, 0, 0, 1, 1]
    p = [0, 1, 1, 0, 1]
    np.testing.assert_array_equal(confusion(y, p), [[1, 2], [1, 1]])
    np.testing.assert_array_equal(confusion(np.array(y, bool), np.array(p, bool)), [[1, 2], [1, 1]])


def test_specificity_is_recall_of_negative_class():
    rng = np.random.default_rng(7)
    y, s = random_case(rng, 300, 0.3, None)
    flipped = binary_metrics(1 - y, 1 - s, threshold=0.5 + 1e-12)
    m = binary_metrics(y, s)
    # swapping the classes (and mirroring the scores) swaps recall and specificity
    pred = (s >= 0.5).astype(int)
    assert m["specificity"] == pytest.approx(skm.recall_score(y, pred, pos_label=0))
    assert flipped["recall"] == pytest.approx(m["specificity"])
    assert flipped["specificity"] == pytest.approx(m["recall"])
    assert flipped["auc"] == pytest.approx(m["auc"])


def test_ties_and_hand_computed_values():
    # one positive ties with one negative: AUC counts the tie as 1/2
    y = [0, 0, 1, 1]
    s = [0.1, 0.6, 0.6, 0.9]
    m = binary_metrics(y, s)
    assert m["auc"] == pytest.approx((1 + 1 + 1 + 0.5) / 4)
    # predictions: [0, 1, 1, 1] -> TN=1, FP=1, FN=0, TP=2
    assert m["accuracy"] == pytest.approx(3 / 4)
    assert m["recall"] == 1.0
    assert m["specificity"] == 0.5
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(0.8)
    # all scores equal -> chance-level AUC
    assert binary_metrics([0, 1, 0, 1, 1], [0.3] * 5)["auc"] == 0.5


def test_threshold_is_inclusive():
    m = binary_metrics([1, 0], [0.5, 0.49])
    assert m["recall"] == 1.0 and m["specificity"] == 1.0
    m = binary_metrics([1, 0], [0.7, 0.2], threshold=0.7)
    assert m["recall"] == 1.0


# ---------------------------------------------------------------------------
# undefined cases
# ---------------------------------------------------------------------------


def test_single_class_gives_nan_where_undefined():
    m = binary_metrics([0, 0, 0], [0.1, 0.2, 0.9])
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert math.isnan(m["recall"])  # no positives
    assert m["specificity"] == pytest.approx(2 / 3)
    assert m["precision"] == 0.0  # one predicted positive, a false one
    assert m["f1"] == 0.0
    assert math.isnan(m["auc"])

    m = binary_metrics([1, 1], [0.9, 0.8])
    assert math.isnan(m["specificity"]) and math.isnan(m["auc"])
    assert m["recall"] == 1.0 and m["precision"] == 1.0


def test_nothing_predicted_positive_gives_nan_precision():
    m = binary_metrics([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4])
    assert m["recall"] == 0.0
    assert math.isnan(m["precision"])
    assert m["f1"] == 0.0  # 2TP + FP + FN = 2 > 0: F1 is defined and zero
    m = binary_metrics([0, 0], [0.1, 0.2])
    assert math.isnan(m["precision"]) and math.isnan(m["f1"]) and math.isnan(m["recall"])


def test_roc_single_class_is_nan():
    fpr, tpr, thr = roc_curve_points([1, 1, 1], [0.2, 0.5, 0.5])
    assert np.isnan(fpr).all()
    np.testing.assert_allclose(tpr, [0, 2 / 3, 1])
    assert thr[0] == np.inf


# ---------------------------------------------------------------------------
# input validation (NaN/inf scores: tests/reliability/test_numerics.py)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("y", "s", "match"),
    [
        ([0, 1, 1], [0.1, 0.2], "3 cases but y_score has 2"),
        ([0, 1, 2], [0.1, 0.2, 0.3], "only 0 .* and 1"),
        ([0, 1, -1], [0.1, 0.2, 0.3], "only 0 .* and 1"),
        ([0.0, 0.5], [0.1, 0.2], "only 0 .* and 1"),
        (["a", "b"], [0.1, 0.2], "0 .* and 1"),
        ([], [], "empty"),
        (np.zeros((3, 2)), np.zeros(3), "one-dimensional"),
    ],
)
def test_bad_inputs_raise(y, s, match):
    with pytest.raises(AugbenchError, match=match):
        binary_metrics(y, s)


def test_column_vectors_are_accepted():
    y = np.array([0, 1, 0, 1])
    s = np.array([0.2, 0.8, 0.4, 0.3])
    assert binary_metrics(y[:, None], s[:, None]) == binary_metrics(y, s)
    assert binary_metrics(y.astype(float), s) == binary_metrics(y, s)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"confidence": 0.0}, "confidence"),
        ({"confidence": 1.0}, "confidence"),
        ({"confidence": 95}, "confidence"),
        ({"n_resamples": 0}, "n_resamples"),
        ({"n_resamples": 2.5}, "n_resamples"),
        ({"threshold": float("nan")}, "threshold"),
    ],
)
def test_bootstrap_parameter_validation(kwargs, match):
    with pytest.raises(AugbenchError, match=match):
        bootstrap_ci([0, 1, 0, 1], [0.1, 0.9, 0.4, 0.6], **kwargs)


# ---------------------------------------------------------------------------
# bootstrap
# ---------------------------------------------------------------------------


def test_bootstrap_is_deterministic_and_seed_dependent():
    rng = np.random.default_rng(3)
    y, s = random_case(rng, 150, 0.35, None)
    a = bootstrap_ci(y, s, n_resamples=300, seed=11)
    b = bootstrap_ci(y, s, n_resamples=300, seed=11)
    c = bootstrap_ci(y, s, n_resamples=300, seed=12)
    assert a == b
    assert a != c
    assert list(a) == list(METRIC_NAMES)


@pytest.mark.parametrize("stratified", [True, False])
def test_bootstrap_interval_contains_point_estimate(stratified):
    rng = np.random.default_rng(5)
    y, s = random_case(rng, 300, 0.4, None)
    ci = bootstrap_ci(y, s, n_resamples=1000, seed=0, stratified=stratified)
    point = binary_metrics(y, s)
    for name in METRIC_NAMES:
        iv = ci[name]
        assert iv.value == point[name]
        assert iv.low <= iv.value <= iv.high, (name, iv)
        assert 0.0 <= iv.low <= iv.high <= 1.0


def test_bootstrap_width_shrinks_with_n():
    def width(n):
        y, s = random_case(np.random.default_rng(9), n, 0.4, None)
        ci = bootstrap_ci(y, s, n_resamples=500, seed=0)
        return {k: v.high - v.low for k, v in ci.items()}

    small, large = width(60), width(2000)
    for name in METRIC_NAMES:
        assert large[name] < 0.5 * small[name], name


def test_bootstrap_higher_confidence_is_wider():
    y, s = random_case(np.random.default_rng(2), 200, 0.4, None)
    narrow = bootstrap_ci(y, s, n_resamples=500, confidence=0.5, seed=0)
    wide = bootstrap_ci(y, s, n_resamples=500, confidence=0.99, seed=0)
    for name in METRIC_NAMES:
        assert wide[name].low <= narrow[name].low
        assert wide[name].high >= narrow[name].high


def test_bootstrap_perfect_separation():
    y = np.r_[np.zeros(40, int), np.ones(25, int)]
    s = np.r_[np.linspace(0.0, 0.4, 40), np.linspace(0.6, 1.0, 25)]
    ci = bootstrap_ci(y, s, n_resamples=200, seed=0)
    for name in METRIC_NAMES:
        assert (ci[name].value, ci[name].low, ci[name].high) == (1.0, 1.0, 1.0), name


def test_bootstrap_drops_undefined_resamples():
    # unstratified and tiny: some resamples lack a class, so AUC is nan there;
    # those are dropped and the interval stays finite
    y = np.array([0, 0, 0, 0, 1])
    s = np.array([0.1, 0.3, 0.2, 0.7, 0.8])
    ci = bootstrap_ci(y, s, n_resamples=400, seed=0, stratified=False)
    assert np.isfinite([ci["auc"].low, ci["auc"].high]).all()
    # a class absent from the whole test set: AUC undefined everywhere
    ci = bootstrap_ci([0, 0, 0], [0.1, 0.2, 0.3], n_resamples=50)
    assert math.isnan(ci["auc"].value) and math.isnan(ci["auc"].low)
    assert ci["accuracy"].value == 1.0


def test_bootstrap_indices_stratified_keep_class_counts():
    y = np.array([0] * 30 + [1] * 7)
    idx = _bootstrap_indices(y, 200, np.random.default_rng(0), stratified=True)
    assert idx.shape == (200, 37)
    np.testing.assert_array_equal(y[idx].sum(axis=1), np.full(200, 7))
    idx = _bootstrap_indices(y, 200, np.random.default_rng(0), stratified=False)
    assert idx.shape == (200, 37)
    assert idx.min() >= 0 and idx.max() < 37
    assert len(np.unique(y[idx].sum(axis=1))) > 1


@pytest.mark.parametrize(
    ("n", "pos_rate", "n_levels", "stratified"),
    [(120, 0.4, None, True), (80, 0.2, 4, True), (60, 0.3, 6, False)],
)
def test_vectorised_bootstrap_equals_loop_with_sklearn(n, pos_rate, n_levels, stratified):
    y, s = random_case(np.random.default_rng(21), n, pos_rate, n_levels)
    n_resamples, seed, conf = 60, 4, 0.9
    ci = bootstrap_ci(
        y, s, n_resamples=n_resamples, confidence=conf, seed=seed, stratified=stratified
    )
    idx = _bootstrap_indices(y, n_resamples, np.random.default_rng(seed), stratified)
    per_row = {name: [] for name in METRIC_NAMES}
    for row in idx:
        ref = sklearn_metrics(y[row], s[row])
        for name in METRIC_NAMES:
            per_row[name].append(ref[name])
    for name in METRIC_NAMES:
        vals = np.array(per_row[name])
        vals = vals[~np.isnan(vals)]
        low, high = np.percentile(vals, [5.0, 95.0])
        assert ci[name].low == pytest.approx(low, abs=1e-12), name
        assert ci[name].high == pytest.approx(high, abs=1e-12), name


def test_bootstrap_at_1000_resamples():
    # its speed is a benchmark ratio: tests/benchmarks/test_stats_benchmark.py, metrics.bootstrap_ci_1000_vs_matmul
    y, s = random_case(np.random.default_rng(0), 500, 0.4, None)
    ci = bootstrap_ci(y, s, n_resamples=1000)
    assert set(ci) == set(METRIC_NAMES)
    for name in METRIC_NAMES:
        assert ci[name].low <= ci[name].value <= ci[name].high, name
        assert 0.0 <= ci[name].low < ci[name].high <= 1.0, name


# ---------------------------------------------------------------------------
# formatting and summaries
# ---------------------------------------------------------------------------


def test_interval_str_and_frozen():
    iv = Interval(0.8534, 0.80123, 0.9019)
    assert str(iv) == "0.853 [0.801, 0.902]"
    with pytest.raises(AttributeError, match="cannot assign to field 'value'"):
        iv.value = 0.5  # type: ignore[misc]


def test_summarize_runs():
    runs = [{"auc": 0.8, "f1": 0.6}, {"auc": 0.9, "f1": 0.7}, {"auc": 0.85, "f1": 0.65}]
    out = summarize_runs(runs)
    assert out["auc"][0] == pytest.approx(0.85)
    assert out["auc"][1] == pytest.approx(np.std([0.8, 0.9, 0.85], ddof=1))
    assert out["f1"][1] == pytest.approx(0.05)
    assert summarize_runs([{"auc": 0.7}]) == {"auc": (0.7, 0.0)}


def test_summarize_runs_validation():
    with pytest.raises(AugbenchError, match="at least one"):
        summarize_runs([])
    with pytest.raises(AugbenchError, match="missing"):
        summarize_runs([{"auc": 0.7, "f1": 0.5}, {"auc": 0.8}])
