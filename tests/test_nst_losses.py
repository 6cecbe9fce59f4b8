"""NST style losses against independent NumPy references built from kernel matrices.

The references compute MMD² the slow, textbook way — full kernel matrices over all
pairs of positions — so the identities the engine relies on (Gram = polynomial-MMD
up to Li et al.'s constant, linear MMD = distance of means, the linear-time Gaussian
estimator is unbiased) are checked, not assumed.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from bench.nst import losses  # noqa: E402

M, N = 6, 5  # positions, channels
RNG_SEED = 1234  # the seed of the rng fixture (tests/conftest.py) for this module


def _feats(rng, b=3, m=M, n=N, shift=0.0):
    return (rng.standard_normal((b, m, n)) + shift).astype(np.float64)


# --------------------------------------------------------------------------- references


def kernel(kind: str, x: np.ndarray, y: np.ndarray, c: float = 0.0, sigma2: float = 1.0) -> np.ndarray:
    """Kernel matrix K_ij = k(x_i, y_j) for rows x (m, n), y (m', n)."""
    if kind == "linear":
        return x @ y.T
    if kind == "poly":
        return (x @ y.T + c) ** 2
    d = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    return np.exp(-d / (2 * sigma2))


def mmd2_biased(kind: str, x: np.ndarray, y: np.ndarray, **kw) -> float:
    """MMD²_b = mean K(x,x) + mean K(y,y) − 2 mean K(x,y) (Gretton et al. 2012, Eq. 5)."""
    return float(kernel(kind, x, x, **kw).mean() + kernel(kind, y, y, **kw).mean()
                 - 2 * kernel(kind, x, y, **kw).mean())


def mmd2_unbiased(kind: str, x: np.ndarray, y: np.ndarray, **kw) -> float:
    """MMD²_u = 1/(m(m−1)) Σ_{i≠j} h(z_i, z_j), h = k(x_i,x_j) + k(y_i,y_j) − k(x_i,y_j) − k(x_j,y_i)."""
    m = len(x)
    kxx, kyy, kxy = kernel(kind, x, x, **kw), kernel(kind, y, y, **kw), kernel(kind, x, y, **kw)
    h = kxx + kyy - kxy - kxy.T
    return float((h.sum() - np.trace(h)) / (m * (m - 1)))


def gram_loss_eq4(x: np.ndarray, y: np.ndarray) -> float:
    """Panigrahi Eq. 4 with Eq. 5: 1/(4 N² M²) Σ (FᵀF − SᵀS)²."""
    m, n = x.shape
    return float(((x.T @ x - y.T @ y) ** 2).sum() / (4 * n**2 * m**2))


def _tf(a):
    return tf.constant(a, tf.float64)


# --------------------------------------------------------------------------- Gram and polynomial MMD


def test_gram_loss_is_eq4(rng):
    x, y = _feats(rng), _feats(rng, shift=0.5)
    style = losses.GramStyle()
    got = style.compare(_tf(x), style.representation(_tf(y)), seed=None).numpy()
    np.testing.assert_allclose(got, [gram_loss_eq4(a, b) for a, b in zip(x, y, strict=True)], rtol=1e-10)


def test_gram_loss_is_poly_mmd_at_c0_over_4n2(rng):
    """Li et al. 2017: E_l = 1/(4 N_l²) · MMD²_b[F, S] with k(x, y) = (xᵀy)²."""
    x, y = _feats(rng), _feats(rng, shift=0.3)
    for a, b in zip(x, y, strict=True):
        assert gram_loss_eq4(a, b) == pytest.approx(mmd2_biased("poly", a, b, c=0.0) / (4 * N**2), rel=1e-10)
    gram = losses.GramStyle()
    poly = losses.MMDStyle("poly", c=0.0)
    np.testing.assert_allclose(poly.compare(_tf(x), poly.representation(_tf(y)), None).numpy(),
                               gram.compare(_tf(x), gram.representation(_tf(y)), None).numpy(), rtol=1e-10)


@pytest.mark.parametrize("c", [0.0, 0.7, 3.0])
def test_poly_mmd_from_statistics_equals_kernel_matrices(rng, c):
    """‖Ĝ_F − Ĝ_S‖² + 2c‖μ_F − μ_S‖² is the biased MMD² of (xᵀy + c)², divided by Z = 4N²."""
    x, y = _feats(rng), _feats(rng, shift=-0.4)
    style = losses.MMDStyle("poly", c=c)
    got = style.compare(_tf(x), style.representation(_tf(y)), None).numpy()
    want = [mmd2_biased("poly", a, b, c=c) / (4 * N**2) for a, b in zip(x, y, strict=True)]
    np.testing.assert_allclose(got, want, rtol=1e-9)


# --------------------------------------------------------------------------- linear and BN


def test_linear_mmd_is_distance_of_feature_means(rng):
    x, y = _feats(rng), _feats(rng, shift=1.0)
    for a, b in zip(x, y, strict=True):
        means = float(((a.mean(0) - b.mean(0)) ** 2).sum())
        assert mmd2_biased("linear", a, b) == pytest.approx(means, rel=1e-10)
    style = losses.MMDStyle("linear")
    got = style.compare(_tf(x), style.representation(_tf(y)), None).numpy()
    want = [((a.mean(0) - b.mean(0)) ** 2).sum() / N for a, b in zip(x, y, strict=True)]  # Z = N_l
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_bn_loss_matches_means_and_standard_deviations(rng):
    x, y = _feats(rng), _feats(rng, shift=0.2) * 2.0
    style = losses.BNStyle()
    got = style.compare(_tf(x), style.representation(_tf(y)), None).numpy()
    sd = lambda a: np.sqrt(a.var(0) + losses.BN_EPS)  # noqa: E731
    want = [(((a.mean(0) - b.mean(0)) ** 2).sum() + ((sd(a) - sd(b)) ** 2).sum()) / N
            for a, b in zip(x, y, strict=True)]
    np.testing.assert_allclose(got, want, rtol=1e-8)
    assert np.all(style.compare(_tf(y), style.representation(_tf(y)), None).numpy() == 0)


# --------------------------------------------------------------------------- Gaussian, linear time


def _linear_time(x, y, perm, sigma2):
    b = x.shape[0]
    out = losses.mmd2_linear_time(_tf(x), _tf(y), tf.constant(perm, tf.int32),
                                  sigma2=tf.constant(np.full(b, sigma2), tf.float64))
    return out.numpy()


def test_linear_time_gaussian_is_exactly_unbiased_over_all_permutations(rng):
    """The mean over *every* permutation of M = 6 positions equals the quadratic MMD²_u."""
    x, y = _feats(rng, b=2), _feats(rng, b=2, shift=0.6)
    sigma2 = 2.5
    estimate = tf.function(lambda perm: losses.mmd2_linear_time(_tf(x), _tf(y), perm,
                                                                sigma2=tf.constant([sigma2] * 2, tf.float64)))
    perms = list(itertools.permutations(range(M)))
    mean = np.mean([estimate(tf.constant(p, tf.int32)).numpy() for p in perms], axis=0)
    want = [mmd2_unbiased("gaussian", a, b, sigma2=sigma2) for a, b in zip(x, y, strict=True)]
    np.testing.assert_allclose(mean, want, rtol=1e-9, atol=1e-12)


def test_linear_time_gaussian_agrees_in_expectation_on_random_permutations(rng):
    """Monte Carlo at M = 40: the average of 2000 estimates lies within 4 standard errors of MMD²_u."""
    m, draws, sigma2 = 40, 2000, 5.0
    x, y = _tf(_feats(rng, b=1, m=m)), _tf(_feats(rng, b=1, m=m, shift=1.0))
    estimate = tf.function(lambda perm: losses.mmd2_linear_time(x, y, perm, sigma2=tf.constant([sigma2], tf.float64)))
    estimates = np.array([estimate(tf.constant(rng.permutation(m), tf.int32)).numpy()[0] for _ in range(draws)])
    x, y = x.numpy(), y.numpy()
    want = mmd2_unbiased("gaussian", x[0], y[0], sigma2=sigma2)
    assert abs(estimates.mean() - want) < 4 * estimates.std(ddof=1) / np.sqrt(draws)
    assert want > 0.05  # the shifted samples differ: a real signal, not 0 ≈ 0


def test_gaussian_bandwidth_is_mean_squared_distance_of_sampled_pairs(rng):
    x, y = _feats(rng, b=1), _feats(rng, b=1, shift=0.3)
    perm = np.arange(M)
    a, b = perm[0::2], perm[1::2]
    d = np.concatenate([((x[0, a] - x[0, b]) ** 2).sum(-1), ((y[0, a] - y[0, b]) ** 2).sum(-1),
                        ((x[0, a] - y[0, b]) ** 2).sum(-1), ((x[0, b] - y[0, a]) ** 2).sum(-1)])
    auto = losses.mmd2_linear_time(_tf(x), _tf(y), tf.constant(perm), bandwidth_scale=1.5).numpy()
    fixed = _linear_time(x, y, perm, 1.5 * d.mean())
    np.testing.assert_allclose(auto, fixed, rtol=1e-12)


def test_gaussian_style_loss_is_zero_for_identical_features_and_deterministic(rng):
    x = tf.constant(_feats(rng), tf.float32)
    style = losses.MMDStyle("gaussian")
    seed = tf.constant([3, 4], tf.int64)
    np.testing.assert_allclose(style.compare(x, style.representation(x), seed).numpy(), 0.0, atol=1e-6)
    y = tf.constant(_feats(rng, shift=1.0), tf.float32)
    a = style.compare(x, style.representation(y), seed).numpy()
    b = style.compare(x, style.representation(y), seed).numpy()
    np.testing.assert_array_equal(a, b)
    assert np.all(a > 0)


def test_random_permutation_is_a_permutation_and_seeded():
    p = losses.random_permutation(tf.constant(50), tf.constant([1, 2], tf.int64)).numpy()
    assert sorted(p.tolist()) == list(range(50))
    q = losses.random_permutation(tf.constant(50), tf.constant([1, 2], tf.int64)).numpy()
    r = losses.random_permutation(tf.constant(50), tf.constant([1, 3], tf.int64)).numpy()
    np.testing.assert_array_equal(p, q)
    assert not np.array_equal(p, r)


# --------------------------------------------------------------------------- multi-reference, content


def test_multi_reference_target_is_elementwise_max_of_grams(rng):
    """Panigrahi Eq. 9, M(·): g_ij = max over references of G_l(I_sk)_ij."""
    refs = [_feats(rng, b=1, shift=s) for s in (0.0, 0.5, -0.5)]
    style = losses.GramStyle()
    reps = [tuple(r.numpy()[0] for r in style.representation(_tf(f))) for f in refs]
    (combined,) = style.combine(reps)
    grams = np.stack([f[0].T @ f[0] / M for f in refs])
    np.testing.assert_allclose(combined, grams.max(axis=0), rtol=1e-12)
    assert not np.allclose(combined, grams[0])


def test_single_reference_losses_refuse_several_references(rng):
    rep = (np.zeros(N),)
    with pytest.raises(ValueError, match="one style image"):
        losses.MMDStyle("linear").combine([rep, rep])


def test_content_loss_is_half_squared_error(rng):
    f, p = rng.standard_normal((2, 3, 3, 4)), rng.standard_normal((2, 3, 3, 4))
    got = losses.content_loss(_tf(f), _tf(p)).numpy()
    np.testing.assert_allclose(got, 0.5 * ((f - p) ** 2).sum(axis=(1, 2, 3)), rtol=1e-12)


def test_unknown_style_loss_is_named():
    with pytest.raises(ValueError, match="known: bn, gaussian, gram, linear, poly"):
        losses.make_style_loss("cubic")
