"""bench.stats: DeLong against a direct O(n^2) implementation, the operating point
against brute force, bootstrap spreads against binomial formulas, Holm by hand,
and a demonstration that Byra's rank-sum on bootstrapped AUCs is not a test."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from bench import stats
from bench.errors import AugbenchError, NumericalError
from bench.metrics import METRIC_NAMES, binary_metrics, bootstrap_ci, summarize_runs
from bench.stats import (
    COMPARISON_COLUMNS,
    bootstrap_auc_ranksum,
    bootstrap_sd,
    closest_to_corner_threshold,
    compare_to_baseline,
    delong_ci,
    delong_test,
    holm_adjust,
    seed_summary,
)

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


RNG_SEED = 20240611  # the seed of the rng fixture (tests/conftest.py) for this module


def psi(x: float, y: float) -> float:
    return 1.0 if x > y else 0.5 if x == y else 0.0


def delong_reference(y, s_a, s_b) -> dict:
    """DeLong et al. (1988) written out directly: explicit double loops over
    (positive, negative) pairs for the structural components, then S = S10/m + S01/n."""
    pos = [i for i in range(len(y)) if y[i] == 1]
    neg = [j for j in range(len(y)) if y[j] == 0]
    m, n = len(pos), len(neg)
    v10 = np.zeros((2, m))
    v01 = np.zeros((2, n))
    for k, s in enumerate((s_a, s_b)):
        for a, i in enumerate(pos):
            for b, j in enumerate(neg):
                v = psi(s[i], s[j])
                v10[k, a] += v / n
                v01[k, b] += v / m
    auc = v10.mean(axis=1)
    s10 = np.zeros((2, 2))
    s01 = np.zeros((2, 2))
    for r in range(2):
        for c in range(2):
            s10[r, c] = sum((v10[r, a] - auc[r]) * (v10[c, a] - auc[c]) for a in range(m)) / (m - 1)
            s01[r, c] = sum((v01[r, b] - auc[r]) * (v01[c, b] - auc[c]) for b in range(n)) / (n - 1)
    cov = s10 / m + s01 / n
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    out = {"auc": auc, "cov": cov, "var": var, "z": math.nan, "p": math.nan}
    if var > 1e-15:
        z = (auc[0] - auc[1]) / math.sqrt(var)
        out.update(z=z, p=math.erfc(abs(z) / math.sqrt(2.0)))
    return out


def assert_matches_reference(y, s_a, s_b) -> None:
    ours = delong_test(y, s_a, s_b)
    ref = delong_reference(list(y), list(s_a), list(s_b))
    assert ours.auc_a == pytest.approx(ref["auc"][0], abs=1e-12)
    assert ours.auc_b == pytest.approx(ref["auc"][1], abs=1e-12)
    np.testing.assert_allclose(ours.cov, ref["cov"], rtol=0, atol=1e-12)
    assert ours.se**2 == pytest.approx(ref["var"], abs=1e-12)
    if not math.isnan(ref["z"]):
        assert ours.z == pytest.approx(ref["z"], rel=1e-10, abs=1e-10)
        assert ours.p_value == pytest.approx(ref["p"], rel=1e-10, abs=1e-10)


def tied_scores(rng, y, shift, decimals=1):
    """Scores that depend on the label, rounded so that many cases tie."""
    return np.round(shift * y + rng.normal(0.0, 1.0, y.size), decimals)


def labels(n_pos: int, n_neg: int, rng) -> np.ndarray:
    return rng.permutation(np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)])


def brute_force_corner(y, s) -> float:
    """Every distinct score as a threshold, distances in exact rationals, ties -> highest."""
    y, s = np.asarray(y), np.asarray(s)
    n_pos, n_neg = int(y.sum()), int((y == 0).sum())
    best_t, best_d = None, None
    for t in sorted(set(s.tolist()), reverse=True):
        pred = s >= t
        tp, fp = int(np.sum(pred & (y == 1))), int(np.sum(pred & (y == 0)))
        d = Fraction(n_pos - tp, n_pos) ** 2 + Fraction(fp, n_neg) ** 2
        if best_d is None or d < best_d:
            best_t, best_d = t, d
    return best_t


# ---------------------------------------------------------------------------
# DeLong
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("n_pos", "n_neg"), [(2, 2), (5, 7), (20, 30), (45, 90)])
def test_delong_matches_quadratic_reference_with_ties(rng, n_pos, n_neg):
    for _ in range(3):
        y = labels(n_pos, n_neg, rng)
        s_a = tied_scores(rng, y, 1.0)
        s_b = np.round(s_a + rng.normal(0.0, 0.7, y.size), 1)
        assert_matches_reference(y, s_a, s_b)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_delong_fast_equals_quadratic_property(data):
    n_pos = data.draw(st.integers(2, 12), label="n_pos")
    n_neg = data.draw(st.integers(2, 12), label="n_neg")
    y = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
    ints = st.lists(st.integers(0, 4), min_size=y.size, max_size=y.size)
    s_a = np.array(data.draw(ints, label="s_a"), dtype=float)
    s_b = np.array(data.draw(ints, label="s_b"), dtype=float)
    assert_matches_reference(y, s_a, s_b)


def test_delong_auc_equals_metrics_and_sklearn(rng):
    y = labels(33, 67, rng)
    s_a, s_b = tied_scores(rng, y, 1.2), tied_scores(rng, y, 0.4, decimals=0)
    result = delong_test(y, s_a, s_b)
    for auc, s in ((result.auc_a, s_a), (result.auc_b, s_b)):
        assert auc == pytest.approx(binary_metrics(y, s)["auc"], abs=1e-12)
        assert auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert result.diff == pytest.approx(result.auc_a - result.auc_b, abs=1e-15)


def test_delong_perfect_against_random_is_significant(rng):
    y = labels(50, 50, rng)
    perfect = y + rng.uniform(0.0, 0.5, y.size)
    noise = rng.uniform(0.0, 1.0, y.size)
    result = delong_test(y, perfect, noise)
    assert result.auc_a == 1.0
    assert result.p_value < 1e-6
    assert result.z > 5


def test_delong_identical_and_rank_equivalent_predictors_give_p_one(rng):
    y = labels(30, 40, rng)
    s = tied_scores(rng, y, 1.0)
    for other in (s.copy(), np.exp(3 * s) + 7.0):  # same ranks -> same placements
        result = delong_test(y, s, other)
        assert (result.diff, result.se, result.z, result.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_delong_zero_variance_with_different_aucs_is_undefined():
    y = np.array([1, 1, 0, 0])
    result = delong_test(y, [0.9, 0.8, 0.1, 0.2], [0.5, 0.5, 0.5, 0.5])
    assert result.diff == 0.5 and result.se == 0.0
    assert math.isnan(result.z) and math.isnan(result.p_value)


def test_delong_is_symmetric(rng):
    y = labels(25, 35, rng)
    s_a, s_b = tied_scores(rng, y, 1.0), tied_scores(rng, y, 0.6)
    ab, ba = delong_test(y, s_a, s_b), delong_test(y, s_b, s_a)
    assert ba.p_value == pytest.approx(ab.p_value, rel=1e-12)
    assert ba.z == pytest.approx(-ab.z, rel=1e-12)
    assert ba.diff == pytest.approx(-ab.diff, abs=1e-15)
    np.testing.assert_allclose(ba.cov, ab.cov[::-1, ::-1], rtol=1e-12)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (([1, 1, 1, 1], [0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]), "0 malignant|4 malignant and 0"),
        (([1, 0, 0, 0], [0.9, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]), "at least 2"),
        (([1, 1, 0, 0], [0.9, 0.8, 0.1], [0.4, 0.3, 0.2, 0.1]), "s_a has 3"),
        (([1, 1, 0, 0], [0.9, 0.8, 0.1, 0.2], [0.4, 0.3, 0.2]), "s_b has 3"),
        (([1, 2, 0, 0], [0.9, 0.8, 0.1, 0.2], [0.4, 0.3, 0.2, 0.1]), "only 0"),
    ],
)
def test_delong_rejects_bad_input(args, match):
    with pytest.raises(AugbenchError, match=match):
        delong_test(*args)


def test_delong_rejects_nan_scores_naming_the_argument():
    with pytest.raises(NumericalError, match="s_b.*1 NaN"):
        delong_test([1, 1, 0, 0], [0.9, 0.8, 0.1, 0.2], [0.4, np.nan, 0.2, 0.1])


def test_delong_ci_scales(rng):
    y = labels(40, 80, rng)
    s = tied_scores(rng, y, 1.5)
    plain = delong_ci(y, s, 0.95, scale="plain")
    logit = delong_ci(y, s, 0.95)
    auc = roc_auc_score(y, s)
    se = (plain.high - plain.low) / (2 * 1.959963984540054)
    assert se**2 == pytest.approx(delong_reference(list(y), list(s), list(s))["cov"][0, 0], rel=1e-10)
    assert plain.value == logit.value == pytest.approx(auc, abs=1e-12)
    assert plain.value - plain.low == pytest.approx(plain.high - plain.value, rel=1e-12)
    # the logit interval is the plain one pushed through logit/expit (delta method)
    half = 1.959963984540054 * se / (auc * (1 - auc))
    centre = math.log(auc / (1 - auc))
    assert logit.low == pytest.approx(1 / (1 + math.exp(-(centre - half))), rel=1e-9)
    assert logit.high == pytest.approx(1 / (1 + math.exp(-(centre + half))), rel=1e-9)
    assert 0 < logit.low < auc < logit.high < 1
    narrow = delong_ci(y, s, 0.5, scale="plain")
    assert plain.low < narrow.low < narrow.high < plain.high


def test_delong_se_agrees_with_stratified_bootstrap_sd(rng):
    y = labels(150, 250, rng)
    s = tied_scores(rng, y, 1.0, decimals=2)
    ci = delong_ci(y, s, 0.95, scale="plain")
    se = (ci.high - ci.low) / (2 * 1.959963984540054)
    boot = bootstrap_sd(y, s, n_resamples=3000, seed=1)["auc"]
    assert boot == pytest.approx(se, rel=0.08)


def test_delong_ci_degenerate_and_bad_input():
    perfect = delong_ci([1, 1, 0, 0], [0.9, 0.8, 0.1, 0.2])
    assert (perfect.value, perfect.low, perfect.high) == (1.0, 1.0, 1.0)
    with pytest.raises(AugbenchError, match="scale"):
        delong_ci([1, 1, 0, 0], [0.9, 0.8, 0.1, 0.2], scale="probit")
    with pytest.raises(AugbenchError, match="confidence"):
        delong_ci([1, 1, 0, 0], [0.9, 0.8, 0.1, 0.2], confidence=95)


# ---------------------------------------------------------------------------
# Operating point
# ---------------------------------------------------------------------------


def test_corner_threshold_hand_made_cases():
    # perfect separation: the point (0, 1) at the lowest malignant score
    assert closest_to_corner_threshold([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.9]) == 0.7
    # (0, 0.5) at 0.8 and (0.5, 1) at 0.35 are both at squared distance 1/4: highest wins
    assert closest_to_corner_threshold([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.8
    # inverted predictor: every point is at distance >= 1; the all-positive point wins
    assert closest_to_corner_threshold([0, 1], [0.9, 0.1]) == 0.1
    # a benign and a malignant case tie at 0.5: 0.6 gives (0, 2/3), distance^2 1/9;
    # 0.5 gives (1/4, 1), distance^2 1/16; the tied pair is called malignant together
    y, s = [0, 0, 0, 0, 1, 1, 1], [0.1, 0.2, 0.3, 0.5, 0.5, 0.6, 0.9]
    assert closest_to_corner_threshold(y, s) == 0.5
    m = binary_metrics(y, s, threshold=0.5)
    assert (m["recall"], m["specificity"]) == (1.0, 0.75)


def test_corner_threshold_equals_brute_force(rng):
    for _ in range(40):
        n_pos, n_neg = rng.integers(1, 15, size=2)
        y = labels(int(n_pos), int(n_neg), rng)
        s = np.round(rng.normal(0.8 * y, 1.0), 1)
        t = closest_to_corner_threshold(y, s)
        assert t == brute_force_corner(y, s)
        assert t in set(s.tolist())


def test_corner_threshold_errors():
    with pytest.raises(AugbenchError, match="0 benign"):
        closest_to_corner_threshold([1, 1, 1], [0.2, 0.4, 0.6])
    with pytest.raises(NumericalError, match="s_val"):
        closest_to_corner_threshold([0, 1, 1], [0.2, np.inf, 0.6])


# ---------------------------------------------------------------------------
# Byra's rank-sum on bootstrapped AUCs
# ---------------------------------------------------------------------------


@pytest.fixture
def small_difference(rng):
    """Two correlated models whose AUCs differ by about 0.02 on 120 cases."""
    y = np.r_[np.ones(40, int), np.zeros(80, int)]
    s_a = y + rng.normal(0.0, 1.0, y.size)
    s_b = s_a + rng.normal(0.0, 0.3, y.size)
    return y, s_a, s_b


def test_ranksum_p_value_shrinks_with_resamples_while_delong_does_not(small_difference):
    y, s_a, s_b = small_difference
    delong = delong_test(y, s_a, s_b)
    assert 0.005 < abs(delong.diff) < 0.05
    assert delong.p_value > 0.05  # DeLong: no evidence of a difference
    p = {b: bootstrap_auc_ranksum(y, s_a, s_b, n_resamples=b, seed=3).p_value
         for b in (10, 100, 1000, 10000)}
    assert p[10] > 0.05  # "not significant" with few resamples ...
    assert p[10] > p[100] > p[1000] > p[10000]
    assert p[10000] < 1e-20  # ... "overwhelmingly significant" with many
    # DeLong's p-value is a function of the data only: the quadratic reference gives it without resampling
    assert delong.p_value == pytest.approx(delong_reference(list(y), list(s_a), list(s_b))["p"], rel=1e-10)


def test_ranksum_is_reproducible_and_trivial_for_identical_models(small_difference):
    y, s_a, s_b = small_difference
    first = bootstrap_auc_ranksum(y, s_a, s_b, 200, seed=5)
    assert first == bootstrap_auc_ranksum(y, s_a, s_b, 200, seed=5)
    assert first != bootstrap_auc_ranksum(y, s_a, s_b, 200, seed=6)
    stat, p = bootstrap_auc_ranksum(y, s_a, s_a, 200, seed=5)
    assert (stat, p) == (0.0, 1.0)
    with pytest.raises(AugbenchError, match="n_resamples"):
        bootstrap_auc_ranksum(y, s_a, s_b, 1)


def test_ranksum_uses_paired_resamples(small_difference):
    """Both models see the same resamples: with s_b a shifted copy of s_a the bootstrap
    AUCs are equal resample by resample, so the rank sums are exactly balanced."""
    y, s_a, _ = small_difference
    assert bootstrap_auc_ranksum(y, s_a, s_a + 3.0, 500, seed=0).statistic == 0.0


# ---------------------------------------------------------------------------
# Spreads
# ---------------------------------------------------------------------------


def test_bootstrap_sd_matches_binomial_formulas(rng):
    y = labels(800, 1200, rng)
    s = y * 1.5 + rng.normal(0.0, 1.0, y.size)
    m = binary_metrics(y, s, threshold=0.75)
    n, n_pos, n_neg = y.size, 800, 1200
    free = bootstrap_sd(y, s, n_resamples=3000, seed=2, threshold=0.75, stratified=False)
    assert free["accuracy"] == pytest.approx(math.sqrt(m["accuracy"] * (1 - m["accuracy"]) / n), rel=0.06)
    strat = bootstrap_sd(y, s, n_resamples=3000, seed=2, threshold=0.75)
    se, sp = m["recall"], m["specificity"]
    expected = math.sqrt(n_pos * se * (1 - se) + n_neg * sp * (1 - sp)) / n
    assert strat["accuracy"] == pytest.approx(expected, rel=0.06)
    assert strat["recall"] == pytest.approx(math.sqrt(se * (1 - se) / n_pos), rel=0.06)
    assert strat["specificity"] == pytest.approx(math.sqrt(sp * (1 - sp) / n_neg), rel=0.06)
    assert list(strat) == list(METRIC_NAMES)


def test_bootstrap_sd_uses_the_same_resamples_as_bootstrap_ci(rng):
    """Same seed, same resamples: a metric that never varies has sd 0, and a metric
    with spread has sd > 0; the interval of bootstrap_ci brackets about ±2 sd."""
    y = labels(60, 90, rng)
    s = y + rng.normal(0.0, 1.0, y.size)
    sd = bootstrap_sd(y, s, n_resamples=2000, seed=4)
    ci = bootstrap_ci(y, s, n_resamples=2000, seed=4)
    for name in METRIC_NAMES:
        width = ci[name].high - ci[name].low
        assert width / (2 * 1.96) == pytest.approx(sd[name], rel=0.15)
    assert bootstrap_sd(y, s, 50, seed=4) == bootstrap_sd(y, s, 50, seed=4)
    assert bootstrap_sd(y, s, 50, seed=4)["auc"] != bootstrap_sd(y, s, 50, seed=5)["auc"]  # the seed draws them
    one_class_pred = bootstrap_sd(y, s, 50, seed=4, threshold=100.0)
    assert math.isnan(one_class_pred["precision"]) and one_class_pred["recall"] == 0.0


def test_seed_summary():
    mean, sd = seed_summary([0.8, 0.9, 1.0])
    assert mean == pytest.approx(0.9) and sd == pytest.approx(0.1)
    assert (mean, sd) == summarize_runs([{"a": 0.8}, {"a": 0.9}, {"a": 1.0}])["a"]
    single = seed_summary([0.7])
    assert single[0] == 0.7 and math.isnan(single[1])
    assert all(math.isnan(v) for v in seed_summary([0.7, math.nan]))
    with pytest.raises(AugbenchError, match="at least one"):
        seed_summary([])


# ---------------------------------------------------------------------------
# Holm and the comparison table
# ---------------------------------------------------------------------------


def test_holm_by_hand():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> max so far 0.06
    np.testing.assert_allclose(holm_adjust([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    # capped at 1; monotone
    np.testing.assert_allclose(holm_adjust([0.6, 0.7]), [1.0, 1.0])
    # nan is not a test: it stays nan and k counts the two finite values only
    np.testing.assert_allclose(holm_adjust([0.02, math.nan, 0.5]), [0.04, math.nan, 0.5])
    assert holm_adjust([]).shape == (0,)


def test_compare_to_baseline(rng):
    y = labels(40, 60, rng)
    base = y * 0.8 + rng.normal(0.0, 1.0, y.size)
    runs = {"none": base, "better": base + y * 0.8, "noise": rng.normal(0.0, 1.0, y.size),
            "same": base.copy()}
    frame = compare_to_baseline(y, runs, "none", n_resamples=300, seed=7)
    assert list(frame.columns) == list(COMPARISON_COLUMNS)
    assert list(frame["run"]) == list(runs)
    baseline_row = frame.iloc[0]
    assert baseline_row["auc_diff"] == 0.0
    assert baseline_row[["delong_z", "delong_p", "delong_p_holm", "ranksum_p"]].isna().all()
    assert list(frame["run"][1:]) == ["better", "noise", "same"]
    for _, row in frame.iloc[1:].iterrows():
        ref = delong_reference(list(y), list(runs[row["run"]]), list(base))
        assert row["auc"] == pytest.approx(roc_auc_score(y, runs[row["run"]]), abs=1e-12)
        assert row["auc_diff"] == pytest.approx(ref["auc"][0] - ref["auc"][1], abs=1e-12)
        if row["run"] != "same":  # "same": zero variance, checked below
            assert (row["delong_z"], row["delong_p"]) == pytest.approx((ref["z"], ref["p"]), rel=1e-9, abs=1e-12)
        ranksum = bootstrap_auc_ranksum(y, runs[row["run"]], base, 300, seed=7)
        assert row["ranksum_p"] == ranksum.p_value
    np.testing.assert_array_equal(frame["delong_p_holm"], holm_adjust(frame["delong_p"]))
    assert frame.loc[frame["run"] == "same", "delong_p_holm"].item() == 1.0
    assert frame.loc[frame["run"] == "better", "delong_p"].item() < 0.01


def test_compare_to_baseline_errors(rng):
    y = labels(5, 5, rng)
    runs = {"none": rng.random(10), "classical": rng.random(10)}
    with pytest.raises(AugbenchError, match="did you mean 'classical'"):
        compare_to_baseline(y, runs, "clasical")
    with pytest.raises(AugbenchError, match=r"scores_by_run\['short'\] has 9"):
        compare_to_baseline(y, {**runs, "short": rng.random(9)}, "none")


def test_bootstrap_sd_seeds_is_bootstrap_sd_for_one_seed_and_averages_over_seeds():
    rng = np.random.default_rng(3)
    y = np.array([0] * 30 + [1] * 25)
    a, b = rng.random(55) + 0.3 * y, rng.random(55) + 0.5 * y
    one = stats.bootstrap_sd(y, a, n_resamples=300, seed=2)
    assert stats.bootstrap_sd_seeds(y, [a], n_resamples=300, seed=2) == pytest.approx(one, nan_ok=True)
    two = stats.bootstrap_sd_seeds(y, [a, b], n_resamples=300, seed=2)
    # the seed-mean AUC's spread is not that of either seed's AUC, nor of the ensemble's
    ens = stats.bootstrap_sd(y, (a + b) / 2, n_resamples=300, seed=2)
    assert two["auc"] != pytest.approx(one["auc"], rel=1e-9)
    assert two["auc"] != pytest.approx(ens["auc"], rel=1e-9)
    assert 0 < two["auc"] < 0.2
    # per resample, the mean over seeds of AUC(a) and AUC(-a) = 1 - AUC(a) is exactly 1/2: no spread;
    # a rank-equivalent second seed has AUC(a) on every resample: the spread of one seed
    assert stats.bootstrap_sd_seeds(y, [a, -a], n_resamples=300, seed=2)["auc"] == pytest.approx(0.0, abs=1e-12)
    assert stats.bootstrap_sd_seeds(y, [a, 3 * a + 1], n_resamples=300, seed=2)["auc"] == pytest.approx(one["auc"])
