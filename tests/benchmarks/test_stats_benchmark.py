"""Speed of the statistics of ``bench.stats`` and ``bench.metrics`` against naive loops.

Every ratio is ``reference seconds / hot-path seconds`` measured in the same run (higher is
better). The bootstrap tests use a test set the size of Byra (2021)'s BUSI test split (130
cases, 45 malignant) and ``N_RESAMPLES`` resamples; scores are rounded to two decimals so that
ties occur as they do in real softmax outputs.

``stats.bootstrap_auc_vs_sklearn_loop``
    ``bootstrap_auc_ranksum`` (a case-count matrix: all resampled AUCs of both models in array
    operations, then the rank-sum test) against the textbook loop: for every resample,
    ``sklearn.metrics.roc_auc_score`` of each model on the resampled cases, then the same
    ``scipy.stats.ranksums``. The reference is the obvious way to write it, the one the
    vectorisation replaced.
``stats.bootstrap_sd_vs_sklearn_loop``
    ``bootstrap_sd`` (six metrics, one pass over the count matrix) against a per-resample loop
    with ``sklearn.metrics.confusion_matrix`` and ``roc_auc_score``.
``stats.bootstrap_ci_vs_sklearn_loop``
    ``metrics.bootstrap_ci`` (percentile intervals of the six metrics) against the same
    per-resample sklearn loop followed by ``np.percentile``.
``stats.delong_ci_vs_pairwise_loop``
    ``delong_ci`` (Sun & Xu's midrank algorithm, three sorts) against DeLong's structural
    components written out as a Python loop over all (malignant, benign) pairs. DeLong's
    interval has no resamples, so the pairwise definition is its naive implementation. At 130
    cases the loop is only ~4,000 pairs and both take well under a millisecond (the ratio
    would measure call overhead), so this test uses every benign and malignant BUSI image
    (647 cases, ~92,000 pairs).
``stats.bootstrap_ci_1000_vs_matmul``
    ``metrics.bootstrap_ci`` at 1000 resamples of 500 cases (the size of a wall-clock assert
    tests/test_metrics.py used to make) against one fixed 512x512 float64 NumPy matmul.

The references draw exactly the resamples the vectorised code draws (the same seed through
``bench.metrics._bootstrap_indices``), so the results must agree: that is asserted, which
also guards the vectorised arithmetic. sklearn's trapezoidal AUC differs from the exact
Mann-Whitney quotient in the last bit, which reorders tied AUCs inside the rank-sum test, so
the reference snaps its AUCs to the grid they lie on (multiples of 1 / (2 m n)). No minimum
ratio is asserted here; floors and the committed baseline live in
``tests/benchmarks/baseline.json``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special
from scipy import stats as sps
from sklearn.metrics import confusion_matrix, roc_auc_score
from threadpoolctl import threadpool_limits

from bench import stats
from bench.metrics import METRIC_NAMES, _bootstrap_indices, bootstrap_ci
from tests.benchmarks.conftest import paired_seconds

N_POS, N_NEG = 45, 85  # Byra 2021: 130 test images
N_RESAMPLES = 100  # the naive loops cost 1-5 ms per resample; 100 keeps each test to a few seconds
DELONG_POS, DELONG_NEG = 210, 437  # every malignant and benign BUSI image
SEED = 7
THRESHOLD = 0.5
CONFIDENCE = 0.95
ROUNDS = 3  # interleaved rounds of each side; the naive loops are long enough that three, no warm-up, give a stable min


def _cases(n_pos: int, n_neg: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels and two correlated score vectors (AUC about 0.9 and 0.85), with ties."""
    rng = np.random.default_rng(20240611)
    y = rng.permutation(np.r_[np.ones(n_pos, np.int64), np.zeros(n_neg, np.int64)])
    latent = 1.8 * y + rng.normal(0.0, 1.0, y.size)
    s_a = np.round(special.expit(latent - 0.9), 2)
    s_b = np.round(special.expit(latent + rng.normal(0.0, 0.6, y.size) - 0.9), 2)
    return y, s_a, s_b


@pytest.fixture(scope="module")
def cases():
    return _cases(N_POS, N_NEG)


def _resamples(y: np.ndarray) -> np.ndarray:
    """The index matrix ``bench.stats`` / ``bench.metrics`` draw for ``SEED`` (stratified)."""
    return _bootstrap_indices(y, N_RESAMPLES, np.random.default_rng(SEED), stratified=True)


def _sklearn_auc(y: np.ndarray, s: np.ndarray) -> float:
    """``roc_auc_score``, snapped to the exact grid k / (2 m n) an AUC of m x n pairs lies on."""
    grid = 2 * int(y.sum()) * int((y == 0).sum())
    return round(roc_auc_score(y, s) * grid) / grid


def _safe(num: float, den: float) -> float:
    return num / den if den else math.nan


def _naive_metrics(y: np.ndarray, s: np.ndarray) -> dict[str, np.ndarray]:
    """The six metrics of every resample, one resample at a time, with scikit-learn."""
    out = {name: np.empty(N_RESAMPLES) for name in METRIC_NAMES}
    for r, idx in enumerate(_resamples(y)):
        yy, ss = y[idx], s[idx]
        tn, fp, fn, tp = confusion_matrix(yy, ss >= THRESHOLD, labels=[0, 1]).ravel()
        out["accuracy"][r] = (tp + tn) / len(yy)
        out["recall"][r] = _safe(tp, tp + fn)
        out["specificity"][r] = _safe(tn, tn + fp)
        out["precision"][r] = _safe(tp, tp + fp)
        out["f1"][r] = _safe(2 * tp, 2 * tp + fp + fn)
        out["auc"][r] = _sklearn_auc(yy, ss)
    return out


def _timed(benchmark, hot, naive, rounds: int = ROUNDS):
    """(hot seconds, naive seconds, hot result, naive result): the results come from the
    timed calls themselves, so the check costs no extra run of the slow reference."""
    box = {}

    def run_hot():
        box["hot"] = hot()

    def run_naive():
        box["naive"] = naive()

    fast, slow = paired_seconds(benchmark, run_hot, run_naive, rounds=rounds, warmup=False)
    return fast, slow, box["hot"], box["naive"]


# --------------------------------------------------------------------------- bootstrap AUC


@pytest.mark.slow
@pytest.mark.benchmark(group="stats")
def test_bootstrap_auc_ranksum_vs_sklearn_loop(benchmark, record_ratio, cases):
    y, s_a, s_b = cases

    def hot():
        return stats.bootstrap_auc_ranksum(y, s_a, s_b, n_resamples=N_RESAMPLES, seed=SEED)

    def naive():
        idx = _resamples(y)
        aucs = np.array([[_sklearn_auc(y[i], s[i]) for i in idx] for s in (s_a, s_b)])
        result = sps.ranksums(aucs[0], aucs[1])
        return float(result.statistic), float(result.pvalue)

    fast, slow, got, want = _timed(benchmark, hot, naive)
    assert got.statistic == pytest.approx(want[0], rel=1e-12)
    assert got.p_value == pytest.approx(want[1], rel=1e-9)
    record_ratio("stats.bootstrap_auc_vs_sklearn_loop", slow / fast,
                 what=f"bootstrap_auc_ranksum ({N_RESAMPLES} paired resamples, 130 cases) vs "
                      "per-resample sklearn roc_auc_score loop + ranksums")


# --------------------------------------------------------------------------- bootstrap sd / CI


@pytest.mark.slow
@pytest.mark.benchmark(group="stats")
def test_bootstrap_sd_vs_sklearn_loop(benchmark, record_ratio, cases):
    y, s, _ = cases

    def hot():
        return stats.bootstrap_sd(y, s, n_resamples=N_RESAMPLES, seed=SEED, threshold=THRESHOLD)

    def naive():
        values = _naive_metrics(y, s)
        return {name: float(np.std(v[~np.isnan(v)], ddof=1)) for name, v in values.items()}

    fast, slow, got, want = _timed(benchmark, hot, naive)
    for name in METRIC_NAMES:
        assert got[name] == pytest.approx(want[name], rel=1e-9), name
    record_ratio("stats.bootstrap_sd_vs_sklearn_loop", slow / fast,
                 what=f"bootstrap_sd, six metrics ({N_RESAMPLES} resamples, 130 cases) vs "
                      "per-resample sklearn confusion_matrix + roc_auc_score loop")


@pytest.mark.slow
@pytest.mark.benchmark(group="stats")
def test_bootstrap_ci_vs_sklearn_loop(benchmark, record_ratio, cases):
    y, s, _ = cases
    alpha = 100.0 * (1.0 - CONFIDENCE) / 2.0

    def hot():
        return bootstrap_ci(y, s, n_resamples=N_RESAMPLES, confidence=CONFIDENCE, seed=SEED,
                            threshold=THRESHOLD)

    def naive():
        values = _naive_metrics(y, s)
        return {name: np.percentile(v[~np.isnan(v)], [alpha, 100.0 - alpha]) for name, v in values.items()}

    fast, slow, got, want = _timed(benchmark, hot, naive)
    for name in METRIC_NAMES:
        np.testing.assert_allclose([got[name].low, got[name].high], want[name], rtol=1e-12, atol=1e-12,
                                   err_msg=name)
    record_ratio("stats.bootstrap_ci_vs_sklearn_loop", slow / fast,
                 what=f"metrics.bootstrap_ci, six percentile intervals ({N_RESAMPLES} resamples, "
                      "130 cases) vs per-resample sklearn loop + np.percentile")


# --------------------------------------------------------------------------- DeLong


def _naive_delong_ci(y, s) -> tuple[float, float, float]:
    """DeLong et al. (1988) by definition: psi over every (positive, negative) pair, then the
    logit-scale interval of ``delong_ci``."""
    pos = [float(v) for v in s[y == 1]]
    neg = [float(v) for v in s[y == 0]]
    m, n = len(pos), len(neg)
    v10, v01 = [0.0] * m, [0.0] * n
    for i, x in enumerate(pos):
        for j, z in enumerate(neg):
            psi = 1.0 if x > z else 0.5 if x == z else 0.0
            v10[i] += psi
            v01[j] += psi
    v10 = [v / n for v in v10]
    v01 = [v / m for v in v01]
    auc = sum(v10) / m
    var = (sum((v - auc) ** 2 for v in v10) / (m - 1) / m
           + sum((v - auc) ** 2 for v in v01) / (n - 1) / n)
    q = float(sps.norm.ppf((1.0 + CONFIDENCE) / 2.0))
    centre, half = math.log(auc / (1.0 - auc)), q * math.sqrt(var) / (auc * (1.0 - auc))
    return auc, float(special.expit(centre - half)), float(special.expit(centre + half))


@pytest.mark.slow
@pytest.mark.benchmark(group="stats")
def test_delong_ci_vs_pairwise_loop(benchmark, record_ratio):
    y, s, _ = _cases(DELONG_POS, DELONG_NEG)

    fast, slow, got, want = _timed(benchmark, lambda: stats.delong_ci(y, s, confidence=CONFIDENCE),
                                   lambda: _naive_delong_ci(y, s), rounds=5)
    np.testing.assert_allclose([got.value, got.low, got.high], want, rtol=1e-10)
    record_ratio("stats.delong_ci_vs_pairwise_loop", slow / fast,
                 what=f"delong_ci (Sun & Xu midranks, {DELONG_POS + DELONG_NEG} cases) vs DeLong "
                      "components from a Python loop over all (malignant, benign) pairs")


# --------------------------------------------------------------------------- bootstrap at scale

SCALE_POS, SCALE_NEG, SCALE_RESAMPLES = 200, 300, 1000  # tests/test_metrics.py's size (500 cases)
NP_REF = 512  # NumPy matmul reference: (512 x 512) @ (512 x 512), float64, one BLAS thread


@pytest.mark.slow
@pytest.mark.benchmark(group="stats")
def test_bootstrap_ci_1000_vs_matmul(benchmark, record_ratio):
    """``metrics.bootstrap_ci`` at 1000 resamples of 500 cases, the size tests/test_metrics.py
    once held to a wall-clock second, against a fixed NumPy matmul (the augment benchmarks'
    unit of work; a per-resample sklearn loop at this size would take seconds a round). Both on
    one BLAS thread, interleaved; the sklearn equivalence is asserted at 100 resamples above."""
    y, s, _ = _cases(SCALE_POS, SCALE_NEG)
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((NP_REF, NP_REF)), rng.standard_normal((NP_REF, NP_REF))
    box = {}

    def hot():
        box["ci"] = bootstrap_ci(y, s, n_resamples=SCALE_RESAMPLES, confidence=CONFIDENCE, seed=SEED,
                                 threshold=THRESHOLD)

    with threadpool_limits(limits=1, user_api="blas"):
        fast, reference = paired_seconds(benchmark, hot, lambda: a @ b, rounds=5)
    assert set(box["ci"]) == set(METRIC_NAMES)
    assert all(box["ci"][n].low <= box["ci"][n].value <= box["ci"][n].high for n in METRIC_NAMES)
    record_ratio("stats.bootstrap_ci_1000_vs_matmul", reference / fast,
                 what=f"metrics.bootstrap_ci, {SCALE_RESAMPLES} resamples of {SCALE_POS + SCALE_NEG} cases, vs one "
                      f"{NP_REF}x{NP_REF} float64 NumPy matmul (one BLAS thread)")
