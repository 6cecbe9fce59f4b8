"""Numerical failures (issue 10): a classifier that outputs NaN and a split that leaves a
class empty in val or test are detected and reported, never turned into numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.data.splits import stratified_group_kfold, stratified_group_split
from bench.errors import AugbenchError, ConfigError, NumericalError
from bench.metrics import binary_metrics, bootstrap_ci, roc_curve_points
from bench.training import predict_positive

# ---------------------------------------------------------------- NaN predictions


class _FixedModel:
    """Stands in for a Keras model: ``predict`` returns the given probabilities."""

    def __init__(self, probs):
        self.probs = np.asarray(probs, dtype=np.float32)

    def predict(self, x, batch_size=None, verbose=0):
        return self.probs


@pytest.mark.parametrize(
    "probs",
    [
        [[0.2], [np.nan], [0.9]],  # one sigmoid unit
        [[0.8, 0.2], [np.nan, np.nan], [0.1, np.inf]],  # two-unit softmax
    ],
    ids=["sigmoid", "softmax"],
)
def test_classifier_that_outputs_nan_is_an_error(probs):
    with pytest.raises(NumericalError, match=r"output NaN/inf for \d of 3 images"):
        predict_positive(_FixedModel(probs), np.zeros((3, 8, 8, 1), np.float32))


def test_finite_predictions_pass():
    scores = predict_positive(_FixedModel([[0.8, 0.2], [0.3, 0.7]]), np.zeros((2, 4)))
    np.testing.assert_allclose(scores, [0.2, 0.7], rtol=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_scores_raise_numerical_error(bad):
    s = np.array([0.1, bad, 0.7, bad])
    with pytest.raises(NumericalError, match=r"y_score contains .*out of 4"):
        binary_metrics([0, 1, 0, 1], s)
    with pytest.raises(NumericalError, match=r"y_score contains .*out of 4 predictions; the model output is not"):
        bootstrap_ci([0, 1, 0, 1], s, n_resamples=10)
    with pytest.raises(NumericalError, match=r"y_score contains .*out of 4 predictions; the model output is not"):
        roc_curve_points([0, 1, 0, 1], s)


def test_numerical_error_counts_nan_and_inf():
    with pytest.raises(NumericalError, match=r"2 NaN and 1 infinite value\(s\) out of 5"):
        binary_metrics([0, 1, 0, 1, 1], [np.nan, 0.2, np.inf, np.nan, 0.3])


def test_one_class_test_set_reports_nan_not_a_number():
    """A test split without positives cannot have a recall or an AUC: nan, never 0 or 1."""
    m = binary_metrics([0, 0, 0, 0], [0.1, 0.6, 0.2, 0.3])
    assert math.isnan(m["recall"]) and math.isnan(m["auc"])
    assert m["specificity"] == pytest.approx(0.75)


# ------------------------------------------------------- a class empty in val or test


def test_too_few_items_names_class():
    labels = ["a"] * 40 + ["rare"] * 2
    groups = [f"g{i}" for i in range(42)]
    with pytest.raises(AugbenchError) as info:
        stratified_group_split(labels, groups)
    msg = str(info.value)
    assert "'rare'" in msg and "2 items" in msg and "val" in msg and "test" in msg
    # Enough items but all in one group: also impossible.
    labels = ["a"] * 40 + ["rare"] * 10
    groups = [f"g{i}" for i in range(40)] + ["one"] * 10
    with pytest.raises(ConfigError, match="'rare' has 10 items in 1 groups"):
        stratified_group_split(labels, groups)
    with pytest.raises(ConfigError, match="'rare'"):
        stratified_group_kfold(["a"] * 40 + ["rare"] * 4, [f"g{i}" for i in range(44)], n_folds=5)


def test_split_error_names_the_split_key_and_counts():
    labels = ["benign"] * 30 + ["malignant"] * 2
    with pytest.raises(ConfigError) as info:
        stratified_group_split(labels, [f"g{i}" for i in range(32)], seed=3)
    assert info.value.key == "split"
    assert str(info.value).startswith("params: split: class 'malignant' has 2 items")
    assert "add data for this class" in str(info.value)
