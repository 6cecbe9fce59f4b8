"""bench.stats: DeLong against a direct O(n^2) implementation, the operating point
against brute force, bootstrap spreads against binomial formulas, Holm by hand,
a demonstration that Byra's rank-sum on bootstrapped AUCs is not a test, and the
repeated-seed comparison (two-level bootstrap, t and F tests by hand, power by
simulation, verdicts)."""

from __future__ import annotations

import math
import time
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special
from scipy import stats as sps
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
    corrected_resampled_t,
    delong_ci,
    delong_test,
    five_by_two_cv_f,
    holm_adjust,
    minimum_detectable_delta,
    paired_seed_delta,
    paired_t_over_seeds,
    seed_summary,
    verdict,
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


# ---------------------------------------------------------------------------
# Repeated training seeds against the baseline
# ---------------------------------------------------------------------------


@pytest.fixture
def seeded_arms(rng):
    """Five seeds of a baseline on 120 test cases, seeds differing in their noise."""
    y = labels(40, 80, rng)
    base = 0.8 * y + rng.normal(0.0, 1.0, (5, y.size))
    return y, base


def test_seed_auc_matrix_equals_sklearn_on_resamples_with_ties(rng):
    y = labels(25, 45, rng)
    scores = np.stack([tied_scores(rng, y, 0.7) for _ in range(3)])
    counts = stats._case_counts_both_classes(y, 15, np.random.default_rng(1))
    aucs = stats._auc_matrix(y, scores, counts)
    assert aucs.shape == (3, 15)
    for b in range(15):
        drawn = np.repeat(np.arange(y.size), counts[b])
        for r in range(3):
            assert aucs[r, b] == pytest.approx(roc_auc_score(y[drawn], scores[r, drawn]), abs=1e-12)
    result = paired_seed_delta(y, scores, scores[::-1], n_resamples=10)
    for r in range(3):
        assert result.auc_method[r] == pytest.approx(roc_auc_score(y, scores[r]), abs=1e-12)
        assert result.per_seed[r] == pytest.approx(
            roc_auc_score(y, scores[r]) - roc_auc_score(y, scores[2 - r]), abs=1e-12)


def test_case_resamples_are_unstratified_and_always_hold_both_classes():
    y = np.r_[1, np.zeros(9, int)]  # one positive: ~35% of plain draws miss it
    counts = stats._case_counts_both_classes(y, 500, np.random.default_rng(0))
    assert (counts.sum(axis=1) == 10).all()
    drawn_pos = counts[:, 0]
    assert drawn_pos.min() >= 1 and drawn_pos.max() <= 9
    assert np.ptp(drawn_pos) > 0  # the class mix varies: not stratified


def test_identical_arms_give_zero(seeded_arms):
    y, base = seeded_arms
    result = paired_seed_delta(y, base, base.copy(), n_resamples=500)
    assert result.delta == 0.0 and (result.per_seed == 0.0).all()
    assert result.low <= 0.0 <= result.high
    assert result.n_seeds == 5 and result.interval.value == 0.0


def test_seeds_and_cases_are_paired(seeded_arms):
    """Seed r of the method is rank-equivalent to seed r of the baseline: its AUC equals the
    baseline's on every resample only if seeds AND cases are drawn together for both arms."""
    y, base = seeded_arms
    result = paired_seed_delta(y, 3.0 * base + 1.0, base, n_resamples=500)
    assert (result.delta, result.low, result.high) == (0.0, 0.0, 0.0)


def test_better_on_every_seed_gives_a_positive_interval(seeded_arms, rng):
    y, base = seeded_arms
    better = base + 0.8 * y + rng.normal(0.0, 0.2, base.shape)
    result = paired_seed_delta(y, better, base, n_resamples=1000)
    assert (result.per_seed > 0).all()
    assert 0.0 < result.low < result.delta < result.high
    worse = paired_seed_delta(y, base, better, n_resamples=1000)
    assert worse.delta == pytest.approx(-result.delta) and worse.high < 0.0


def test_constant_predictor_has_a_nonzero_width_interval(seeded_arms):
    y, base = seeded_arms
    constant = np.full(base.shape, 0.5)  # one class predicted for every case: AUC 1/2
    result = paired_seed_delta(y, constant, base, n_resamples=1000)
    assert (result.auc_method == 0.5).all()
    assert result.high - result.low > 0.01
    assert result.low < result.delta < result.high < 0.0


def test_seed_to_seed_spread_widens_the_interval(seeded_arms):
    """The seeds are resampled: the same mean gain, once on every seed and once from
    alternating seeds, gives a much wider interval in the second case."""
    y, base = seeded_arms
    gains = np.array([0.0, 1.6, 0.0, 1.6, 0.8])[:, None]
    steady = paired_seed_delta(y, base + 0.8 * y, base, n_resamples=1000)
    erratic = paired_seed_delta(y, base + gains * y, base, n_resamples=1000)
    assert np.ptp(erratic.per_seed) > 5 * np.ptp(steady.per_seed)
    assert erratic.high - erratic.low > 2 * (steady.high - steady.low)


def test_paired_seed_delta_is_reproducible_and_fast(rng):
    y = labels(90, 210, rng)
    base = 0.8 * y + rng.normal(0.0, 1.0, (5, y.size))
    method = base + 0.2 * y
    start = time.perf_counter()
    first = paired_seed_delta(y, method, base, n_resamples=2000, seed=3)
    assert time.perf_counter() - start < 2.0
    again = paired_seed_delta(y, method, base, n_resamples=2000, seed=3)
    other = paired_seed_delta(y, method, base, n_resamples=2000, seed=4)
    assert (first.low, first.high) == (again.low, again.high) != (other.low, other.high)
    one_seed = paired_seed_delta(y, method[:1], base[:1], n_resamples=200)
    assert one_seed.n_seeds == 1 and one_seed.low < one_seed.high


@pytest.mark.parametrize(
    ("y", "method", "base", "match"),
    [
        ([0, 1, 1], [[0.1, 0.2, 0.3]], [[0.1, 0.2]], "scores_base has 2 columns"),
        ([0, 1, 1], [[0.1, 0.2, 0.3]], [[0.1, 0.2, 0.3]] * 2, "1 seeds.*scores_base has 2"),
        ([0, 1, 1], [0.1, 0.2, 0.3], [[0.1, 0.2, 0.3]], "two-dimensional"),
        ([0, 1, 1], np.zeros((0, 3)), np.zeros((0, 3)), "at least one training seed"),
        ([1, 1, 1], [[0.1, 0.2, 0.3]], [[0.1, 0.2, 0.3]], "0 benign"),
        ([0, 1, 2], [[0.1, 0.2, 0.3]], [[0.1, 0.2, 0.3]], "only 0"),
    ],
)
def test_paired_seed_delta_rejects_bad_input(y, method, base, match):
    with pytest.raises(AugbenchError, match=match):
        paired_seed_delta(y, method, base, n_resamples=10)


def test_paired_seed_delta_rejects_nan_naming_the_row():
    scores = [[0.1, 0.2, 0.3], [0.1, math.nan, 0.3]]
    with pytest.raises(NumericalError, match=r"scores_method\[1\]"):
        paired_seed_delta([0, 1, 1], scores, [[0.1, 0.2, 0.3]] * 2, n_resamples=10)
    with pytest.raises(AugbenchError, match="n_resamples"):
        paired_seed_delta([0, 1, 1], [[0.1, 0.2, 0.3]], [[0.1, 0.2, 0.3]], n_resamples=1)


def t4_sf(t: float) -> float:
    """Upper tail of Student's t with 4 df from its closed-form CDF (no SciPy):
    F(t) = 1/2 + (3/8) t / sqrt(1 + x) * (1 - x / (3 (1 + x))), x = t^2 / 4."""
    x = t * t / 4.0
    cdf = 0.5 + 0.375 * (t / math.sqrt(1.0 + x)) * (1.0 - x / (3.0 * (1.0 + x)))
    return 1.0 - cdf


def test_corrected_resampled_t_by_hand():
    d = [0.02, 0.01, 0.03, 0.00, 0.04]
    # mean 0.02; s^2 = (0 + 1 + 1 + 4 + 4) 1e-4 / 4 = 2.5e-4; (1/5 + 100/400) s^2 = 1.125e-4
    t, p = corrected_resampled_t(d, n_train=400, n_test=100)
    assert t == pytest.approx(0.02 / math.sqrt(1.125e-4), rel=1e-12)
    assert t == pytest.approx(1.8856180831641267, rel=1e-12)
    assert p == pytest.approx(2.0 * t4_sf(t), rel=1e-9)
    plain = paired_t_over_seeds(d)
    assert plain.statistic == pytest.approx(0.02 / math.sqrt(2.5e-4 / 5), rel=1e-12)
    assert plain.p_value == pytest.approx(2.0 * t4_sf(plain.statistic), rel=1e-9)
    assert plain.df == 4
    assert plain.p_value < p  # the correction only ever widens
    near_plain = corrected_resampled_t(d, n_train=1e12, n_test=1)
    assert near_plain == pytest.approx(tuple(plain)[:2], rel=1e-9)


def test_paired_t_matches_scipy_and_zero_spread_rules(rng):
    d = rng.normal(0.01, 0.02, 7)
    ref = sps.ttest_1samp(d, 0.0)
    assert tuple(paired_t_over_seeds(d)) == pytest.approx((ref.statistic, ref.pvalue, 6), rel=1e-12)
    assert tuple(paired_t_over_seeds([0.0, 0.0, 0.0])) == (0.0, 1.0, 2)
    assert all(math.isnan(v) for v in corrected_resampled_t([0.01, 0.01], 100, 50))
    with pytest.raises(AugbenchError, match="at least 2"):
        paired_t_over_seeds([0.01])
    with pytest.raises(NumericalError, match="NaN"):
        paired_t_over_seeds([0.01, math.nan])
    with pytest.raises(AugbenchError, match="n_train must be a positive"):
        corrected_resampled_t([0.01, 0.02], 0, 50)


def test_five_by_two_cv_f_by_hand():
    d = np.array([[1, 3], [2, 2], [0, 2], [1, 1], [4, 0]]) * 0.01
    # sum d^2 = (10 + 8 + 4 + 2 + 16) 1e-4 = 40e-4; s_i^2 = (2, 0, 2, 0, 8) 1e-4, sum 12e-4
    f, p = five_by_two_cv_f(d)
    assert f == pytest.approx(40.0 / (2.0 * 12.0), rel=1e-12)
    # P(F(10, 5) >= f) = 1 - I_x(5, 5/2) with x = 10 f / (10 f + 5) = 10/13
    assert p == pytest.approx(1.0 - special.betainc(5.0, 2.5, 10.0 / 13.0), rel=1e-10)
    assert tuple(five_by_two_cv_f(7.0 * d)) == pytest.approx((f, p), rel=1e-12)  # scale-free
    assert tuple(five_by_two_cv_f(np.zeros((5, 2)))) == (0.0, 1.0)
    with pytest.raises(AugbenchError, match=r"shape \(5, 2\)"):
        five_by_two_cv_f(np.zeros((5, 3)))


def independent_power(delta: float, sd: float, n: int, alpha: float) -> float:
    c = sps.t.ppf(1.0 - alpha / 2.0, n - 1)
    nc = delta * math.sqrt(n) / sd
    return sps.nct.sf(c, n - 1, nc) + sps.nct.cdf(-c, n - 1, nc)


@pytest.mark.parametrize(("n", "alpha", "power"), [(3, 0.05, 0.8), (5, 0.05, 0.8), (10, 0.05, 0.9),
                                                   (30, 0.01, 0.8)])
def test_minimum_detectable_delta_has_the_requested_power(n, alpha, power):
    delta = minimum_detectable_delta(0.02, n, alpha=alpha, power=power)
    assert independent_power(delta, 0.02, n, alpha) == pytest.approx(power, abs=1e-6)
    # linear in the sd
    assert minimum_detectable_delta(0.04, n, alpha, power) == pytest.approx(2 * delta, rel=1e-9)


def test_minimum_detectable_delta_by_simulation():
    n, sd = 5, 1.0
    delta = minimum_detectable_delta(sd, n)
    d = np.random.default_rng(0).normal(delta, sd, (40_000, n))
    t = d.mean(axis=1) / (d.std(axis=1, ddof=1) / math.sqrt(n))
    assert np.mean(np.abs(t) > sps.t.ppf(0.975, n - 1)) == pytest.approx(0.8, abs=0.012)


def test_minimum_detectable_delta_shape_and_limits():
    values = [minimum_detectable_delta(1.0, n) for n in (2, 3, 5, 10, 100, 10_000)]
    assert all(a > b for a, b in zip(values, values[1:], strict=False))
    z = sps.norm.ppf(0.975) + sps.norm.ppf(0.8)  # large n: the normal approximation
    assert values[-1] == pytest.approx(z / 100.0, rel=1e-3)
    assert minimum_detectable_delta(1.0, 1) == math.inf
    assert minimum_detectable_delta(1.0, 0) == math.inf
    assert minimum_detectable_delta(math.nan, 5) == math.inf
    assert minimum_detectable_delta(seed_summary([0.8])[1], 1) == math.inf
    assert minimum_detectable_delta(0.0, 5) == 0.0
    with pytest.raises(AugbenchError, match="seed_sd"):
        minimum_detectable_delta(-0.1, 5)
    with pytest.raises(AugbenchError, match="power must exceed alpha"):
        minimum_detectable_delta(0.1, 5, alpha=0.05, power=0.05)
    with pytest.raises(AugbenchError, match="n_seeds"):
        minimum_detectable_delta(0.1, 2.5)


@pytest.mark.parametrize(
    ("delta", "low", "high", "p", "n_seeds", "expected"),
    [
        (0.03, 0.01, 0.05, 0.01, 5, "helps"),
        (-0.03, -0.05, -0.01, 0.01, 5, "hurts"),
        (0.03, 0.01, 0.05, 0.20, 5, "no evidence"),  # interval clear of 0, test not
        (0.03, -0.01, 0.05, 0.001, 5, "no evidence"),  # test clear, interval covers 0
        (0.03, 0.01, 0.05, 0.05, 5, "no evidence"),  # p must be strictly below alpha
        (0.03, 0.01, 0.05, 0.001, 1, "no evidence"),  # never from one seed
        (0.03, 0.01, 0.05, math.nan, 5, "no evidence"),
        (-0.01, 0.01, 0.05, 0.001, 5, "no evidence"),  # delta and interval disagree
    ],
)
def test_verdict(delta, low, high, p, n_seeds, expected):
    assert verdict(delta, low, high, p, n_seeds=n_seeds) == expected
    assert expected in stats.VERDICTS


def test_verdict_rejects_inverted_interval():
    with pytest.raises(AugbenchError, match="low <= high"):
        verdict(0.0, 0.1, -0.1, 0.01, n_seeds=5)
