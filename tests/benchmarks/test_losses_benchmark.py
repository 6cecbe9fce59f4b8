"""Speed of the NST style losses (``bench.nst.losses``) against their naive forms.

Features are shaped like VGG19 ``block3_conv1`` at 128 px in a batch of four: ``(B, M, N) =
(4, 1024, 256)``, ReLU-like (non-negative, about half zeros), float32 as in the engine. Every
hot path is a ``tf.function`` (the engine traces its loss the same way), timed after a
warm-up call that traces it. Each ratio is ``reference seconds / hot-path seconds`` from the
same run (higher is better):

``losses.gram_vs_matmul``
    ``GramStyle.compare`` (Panigrahi Eq. 4-5: the normalised Gram matrices and their squared
    distance). It has no naive twin, so the reference is one ``tf.linalg.matmul`` of two fixed
    1024 x 1024 float32 matrices: the ratio is Gram-loss throughput in units of a TF matmul.
``losses.mmd_linear_vs_quadratic``
    ``MMDStyle("linear")``: MMD² of the linear kernel as the squared distance of the channel
    means, O(M N), against the textbook estimator from the three M x M kernel matrices
    (``mean Kxx + mean Kyy - 2 mean Kxy``), O(M² N). Same value, asserted.
``losses.mmd_poly_vs_quadratic``
    ``MMDStyle("poly", c=1)``: the biased MMD² of ``(xᵀy + c)²`` from Gram matrices and means,
    O(M N²), against the same kernel-matrix estimator, O(M² N). Same value, asserted.
``losses.mmd_linear_time_vs_quadratic``
    ``MMDStyle("gaussian")``: the linear-time unbiased estimator (Gretton et al. 2012, Lemma 14;
    M/2 sampled pairs, bandwidth from those pairs) against the quadratic-time unbiased MMD²_u
    with the full M x M Gaussian kernel matrices (bandwidth from all pairs). The two are
    different estimators of one quantity, so only their agreement in expectation is checked:
    the mean of the linear-time estimate over 32 permutations, at the quadratic reference's
    bandwidth, lies within 5 standard errors of MMD²_u.
``losses.multi_reference_vs_matmul``
    The mr²NST target (Panigrahi Eq. 9) for a batch: for each of 8 jobs with 3 style images,
    ``GramStyle.combine`` (element-wise max of the cached Gram matrices) at the five VGG19 style
    layers, stacked per layer as ``NSTEngine._batch_targets`` does. This is NumPy work, so the
    reference is a NumPy matmul of two fixed 512 x 512 float64 matrices (on one BLAS thread,
    as the element-wise max runs on one core). The result is checked
    against ``np.max`` of the stacked Grams.

No minimum ratio is asserted here; floors and the committed baseline live in
``tests/benchmarks/baseline.json``.
"""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

tf = pytest.importorskip("tensorflow")

from bench.nst import losses  # noqa: E402
from tests.benchmarks.conftest import paired_seconds  # noqa: E402

B, M, N = 4, 32 * 32, 256  # VGG19 block3_conv1 at 128 px, batch 4
TF_REF = 1024  # tf.linalg.matmul reference: (1024 x 1024) @ (1024 x 1024), float32
NP_REF = 512  # NumPy matmul reference: (512 x 512) @ (512 x 512), float64
SEED = tf.constant([11, 3], tf.int64)
POLY_C = 1.0


@pytest.fixture(scope="module")
def feats() -> tuple[tf.Tensor, tf.Tensor]:
    """Generated and style features: ReLU-like, the style ones shifted and rescaled."""
    rng = np.random.default_rng(0)
    x = np.maximum(rng.standard_normal((B, M, N)), 0.0)
    y = np.maximum(1.2 * rng.standard_normal((B, M, N)) + 0.2, 0.0)
    return tf.constant(x, tf.float32), tf.constant(y, tf.float32)


def _tf_matmul():
    rng = np.random.default_rng(1)
    a = tf.constant(rng.standard_normal((TF_REF, TF_REF)), tf.float32)
    b = tf.constant(rng.standard_normal((TF_REF, TF_REF)), tf.float32)
    return lambda: tf.linalg.matmul(a, b).numpy()


def _np_matmul():
    """The NumPy reference op. Callers time it on one BLAS thread: the hot paths it is compared
    with run on one core too, so the ratio does not depend on how many cores BLAS finds free."""
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((NP_REF, NP_REF)), rng.standard_normal((NP_REF, NP_REF))
    return lambda: a @ b


def _compare_fn(style: losses.StyleLoss, y):
    """The traced ``compare`` against the style images' representation (as the engine caches it)."""
    target = [tf.constant(r) for r in style.representation(y)]
    return tf.function(lambda x: style.compare(x, target, SEED))


# --------------------------------------------------------------------------- quadratic references


def _kernel_matrices(x, y):
    """(Kxx, Kyy, Kxy) of the linear kernel: three (B, M, M) matrices of inner products."""
    return (tf.einsum("bin,bjn->bij", x, x), tf.einsum("bin,bjn->bij", y, y),
            tf.einsum("bin,bjn->bij", x, y))


@tf.function
def quadratic_linear_mmd2(x, y):
    """MMD²_b of k(x, y) = xᵀy from the kernel matrices, divided by Z = N (as MMDStyle)."""
    kxx, kyy, kxy = _kernel_matrices(x, y)
    n = tf.cast(tf.shape(x)[2], x.dtype)
    mean = lambda k: tf.reduce_mean(k, axis=[1, 2])  # noqa: E731
    return (mean(kxx) + mean(kyy) - 2.0 * mean(kxy)) / n


@tf.function
def quadratic_poly_mmd2(x, y):
    """MMD²_b of k(x, y) = (xᵀy + c)² from the kernel matrices, divided by Z = 4 N²."""
    kxx, kyy, kxy = (tf.square(k + POLY_C) for k in _kernel_matrices(x, y))
    n = tf.cast(tf.shape(x)[2], x.dtype)
    mean = lambda k: tf.reduce_mean(k, axis=[1, 2])  # noqa: E731
    return (mean(kxx) + mean(kyy) - 2.0 * mean(kxy)) / (4.0 * n * n)


def _sq_distances(x, y):
    """Squared distances of every (M, M) pair of positions, from the Gram trick."""
    dots = tf.einsum("bin,bjn->bij", x, y)
    return tf.maximum(tf.reduce_sum(x * x, -1)[:, :, None] + tf.reduce_sum(y * y, -1)[:, None, :]
                      - 2.0 * dots, 0.0)


@tf.function
def quadratic_gaussian_mmd2(x, y):
    """Quadratic-time unbiased MMD²_u with the Gaussian kernel; σ² = the mean squared distance
    over all pairs (the full-sample version of MMDStyle's rule). Returns (MMD²_u, σ²)."""
    d = [_sq_distances(x, x), _sq_distances(y, y), _sq_distances(x, y)]
    sigma2 = tf.reduce_mean(tf.stack([tf.reduce_mean(di, axis=[1, 2]) for di in d]), axis=0)
    kxx, kyy, kxy = (tf.exp(-di / (2.0 * sigma2[:, None, None])) for di in d)
    h = kxx + kyy - kxy - tf.transpose(kxy, [0, 2, 1])
    m = tf.cast(tf.shape(x)[1], x.dtype)
    return (tf.reduce_sum(h, axis=[1, 2]) - tf.linalg.trace(h)) / (m * (m - 1.0)), sigma2


# --------------------------------------------------------------------------- Gram


@pytest.mark.slow
@pytest.mark.benchmark(group="losses")
def test_gram_loss_vs_matmul(benchmark, record_ratio, feats):
    x, y = feats
    compare = _compare_fn(losses.GramStyle(), y)
    fast, reference = paired_seconds(benchmark, lambda: compare(x).numpy(), _tf_matmul())

    got = compare(x).numpy()
    xs, ys = x.numpy().astype(np.float64), y.numpy().astype(np.float64)
    want = [((a.T @ a - b.T @ b) ** 2).sum() / (4 * N**2 * M**2) for a, b in zip(xs, ys, strict=True)]
    np.testing.assert_allclose(got, want, rtol=1e-4)  # Panigrahi Eq. 4 in float64
    record_ratio("losses.gram_vs_matmul", reference / fast,
                 what=f"GramStyle.compare on (4, {M}, {N}) float32 features vs one "
                      f"{TF_REF}x{TF_REF} tf.linalg.matmul")


# --------------------------------------------------------------------------- MMD


MMD_EXACT = {  # kernel: (style loss, kernel-matrix reference, ratio name, description)
    "linear": (lambda: losses.MMDStyle("linear"), quadratic_linear_mmd2, "losses.mmd_linear_vs_quadratic",
               "linear-kernel MMD² as a distance of means"),
    "poly": (lambda: losses.MMDStyle("poly", c=POLY_C), quadratic_poly_mmd2, "losses.mmd_poly_vs_quadratic",
             f"poly-kernel MMD² (c={POLY_C:g}) from Gram matrices and means"),
}


@pytest.mark.slow
@pytest.mark.benchmark(group="losses")
@pytest.mark.parametrize("kernel", list(MMD_EXACT))
def test_mmd_exact_vs_quadratic(benchmark, record_ratio, feats, kernel):
    x, y = feats
    make_style, quadratic, name, described = MMD_EXACT[kernel]
    compare = _compare_fn(make_style(), y)
    fast, slow = paired_seconds(benchmark, lambda: compare(x).numpy(), lambda: quadratic(x, y).numpy())

    np.testing.assert_allclose(compare(x).numpy(), quadratic(x, y).numpy(), rtol=1e-3)
    record_ratio(name, slow / fast,
                 what=f"{described} vs the {M}x{M} kernel-matrix estimator, (4, {M}, {N}) float32")


@pytest.mark.slow
@pytest.mark.benchmark(group="losses")
def test_mmd_gaussian_linear_time_vs_quadratic(benchmark, record_ratio, feats):
    x, y = feats
    compare = _compare_fn(losses.MMDStyle("gaussian"), y)
    fast, slow = paired_seconds(benchmark, lambda: compare(x).numpy(), lambda: quadratic_gaussian_mmd2(x, y)[0].numpy())

    # Agreement in expectation, at the reference's bandwidth: linear-time estimates over
    # 32 seeded permutations against the quadratic unbiased estimate.
    want, sigma2 = (t.numpy() for t in quadratic_gaussian_mmd2(x, y))
    estimate = tf.function(lambda perm: losses.mmd2_linear_time(x, y, perm, sigma2=sigma2))
    draws = np.array([estimate(losses.random_permutation(M, tf.constant([5, k], tf.int64))).numpy()
                      for k in range(32)])
    se = draws.std(axis=0, ddof=1) / np.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(axis=0) - want) < 5 * se), (draws.mean(axis=0), want, se)
    assert np.all(want > 5 * se)  # the two feature sets differ: a real signal, not 0 ≈ 0
    assert np.all(np.isfinite(compare(x).numpy()))
    record_ratio("losses.mmd_linear_time_vs_quadratic", slow / fast,
                 what=f"Gaussian MMD², linear-time estimator (M/2 pairs) vs quadratic-time "
                      f"MMD²_u with {M}x{M} kernel matrices, (4, {M}, {N}) float32")


# --------------------------------------------------------------------------- multi-reference


VGG19_STYLE_CHANNELS = (64, 128, 256, 512, 512)  # block1_conv1 ... block5_conv1
N_JOBS, N_REFS, N_SOURCES = 8, 3, 12


@pytest.mark.slow
@pytest.mark.benchmark(group="losses")
def test_multi_reference_target_vs_matmul(benchmark, record_ratio):
    rng = np.random.default_rng(2)
    style = losses.GramStyle()
    # cache[source][layer] = that source's Gram representation, as NSTEngine._targets keeps it
    cache = [[(rng.random((n, n), dtype=np.float32),) for n in VGG19_STYLE_CHANNELS]
             for _ in range(N_SOURCES)]
    jobs = [[(j + k * 5) % N_SOURCES for k in range(N_REFS)] for j in range(N_JOBS)]

    def batch_targets():
        out = []
        for k in range(len(VGG19_STYLE_CHANNELS)):
            combined = [style.combine([cache[s][k] for s in refs]) for refs in jobs]
            out.append([np.stack([c[r] for c in combined]) for r in range(len(combined[0]))])
        return out

    with threadpool_limits(limits=1, user_api="blas"):  # as the hot path: one core

        fast, reference = paired_seconds(benchmark, batch_targets, _np_matmul(), rounds=10)

    got = batch_targets()
    for k in range(len(VGG19_STYLE_CHANNELS)):
        want = np.stack([np.max(np.stack([cache[s][k][0] for s in refs]), axis=0) for refs in jobs])
        np.testing.assert_array_equal(got[k][0], want)
    record_ratio("losses.multi_reference_vs_matmul", reference / fast,
                 what=f"mr²NST Gram targets (element-wise max of {N_REFS} references, 5 VGG19 "
                      f"layers, {N_JOBS} jobs) vs one {NP_REF}x{NP_REF} float64 NumPy matmul")
