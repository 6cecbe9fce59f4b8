"""NST losses: content (Panigrahi Eq. 2), Gram style (Eq. 3-5), multi-reference Gram
(Eq. 7-9) and the MMD style losses of Li et al. 2017 (linear, polynomial, Gaussian, BN).

Every style loss is split in two, as pystiche does: ``representation`` turns one
image's features into the statistics a target needs (computed once per style
image and cached), ``compare`` scores generated features against a target. Both
work on a batch: features ``(B, M, N)`` (M = H_l·W_l positions, N = N_l channels),
one loss per image, so images in a batch never influence each other.

Notation follows Panigrahi et al. 2024: F_l ∈ R^{M_l×N_l}, G_l = F_lᵀF_l (Eq. 5).
We store the Gram matrix divided by M_l, Ĝ = G/M. Both the generated image and
its style targets have the same size in this engine (the same M), so

    E_l = 1/(4 N² M²) Σ_ij (G − A)²_ij  (Eq. 4)  =  1/(4 N²) Σ_ij (Ĝ − Â)²_ij,

which is what :class:`GramStyle` computes, with better-conditioned numbers.

Li et al. 2017 ("Demystifying Neural Style Transfer", arXiv 1701.01036; the paper
is not in ../shared/papers, so this follows our reading of it and
../shared/docs/REFERENCES.md) show that E_l = 1/(4N²) · MMD²[F_l, S_l] with the
biased MMD estimator and the kernel k(x, y) = (xᵀy)², and replace it by

    L_l = MMD²_k[F_l, S_l] / Z_k,

with Z_k = N_l for the linear kernel, 1 for the Gaussian kernel and (ours, see
:class:`MMDStyle`) 4·N_l² for the polynomial kernel, and the BN-statistics loss
(1/N_l) Σ_i (μ_F,i − μ_S,i)² + (σ_F,i − σ_S,i)².
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

# Panigrahi Eq. 6 / Li et al. 2017 Eq. 4-5: the polynomial kernel is of degree 2.
POLY_DEGREE = 2
# σ of the BN statistics: sqrt(var + eps). eps is ours (the gradient of sqrt at 0 is infinite).
BN_EPS = 1e-5
# Guards σ² of the Gaussian kernel when every sampled distance is zero (ours).
MIN_SIGMA2 = 1e-12


def flatten(features):
    """(B, H, W, N) → (B, M, N) with M = H·W."""
    import tensorflow as tf

    shape = tf.shape(features)
    return tf.reshape(features, (shape[0], shape[1] * shape[2], shape[3]))


def normalised_gram(f):
    """Ĝ = FᵀF / M (Panigrahi Eq. 5, divided by M_l); f: (B, M, N) → (B, N, N)."""
    import tensorflow as tf

    m = tf.cast(tf.shape(f)[1], f.dtype)
    return tf.einsum("bmi,bmj->bij", f, f) / m


def channel_means(f):
    import tensorflow as tf

    return tf.reduce_mean(f, axis=1)


def content_loss(f, p, weights=None, normalise: bool = False):
    """Panigrahi Eq. 2 (Gatys et al. 2016 Eq. 1): ½ Σ_ij (F − P)²_ij, one value per image.

    ``weights`` (same shape as ``f``, or None = all ones): the relevance-weighted content loss
    of ``nst-proposed-lrp``, ½ Σ_ij ω_ij (F − P)²_ij with ω from :func:`relevance_weights`
    (Panigrahi 2024 Step 2 weights the content loss by LRP relevance but gives no formula;
    this is our reading, README "NST losses"). ω ≡ 1 is exactly Eq. 2.

    ``normalise``: divide by the number of feature elements H_l·W_l·N_l, ½ mean_ij (F − P)²_ij
    (ours, docs/nst.md "Balancing the terms"): Eq. 2 grows with the layer size while the style
    term of Eq. 4 is already divided by N_l²M_l², so at α = 1 the unnormalised content term
    swamps the style term; nst-proposed uses this."""
    import tensorflow as tf

    sq = tf.square(f - p)
    if weights is not None:
        sq = weights * sq
    axes = tf.range(1, tf.rank(f))
    if normalise:
        return 0.5 * tf.reduce_mean(sq, axis=axes)
    return 0.5 * tf.reduce_sum(sq, axis=axes)


def relevance_weights(relevance: np.ndarray) -> np.ndarray:
    """Content-loss weights ω from the LRP relevance R of one content image at a content layer
    (any shape, e.g. (H_l, W_l, N_l)): ω = R⁺ · n / Σ R⁺, the positive relevance rescaled to
    mean 1 over the n elements, so that the weighted loss has the scale of Eq. 2 and a uniform
    relevance gives Eq. 2 itself. Features with no positive relevance (evidence against the
    class, or none) get weight 0: the style loss may change them freely; the features the
    classifier's decision rests on are kept. All-non-positive relevance (no evidence for the
    class anywhere) falls back to ω ≡ 1, i.e. the plain content loss."""
    r = np.clip(np.asarray(relevance, np.float64), 0.0, None)
    total = r.sum()
    if not np.isfinite(total) or total <= 0:
        return np.ones(r.shape, np.float32)
    return (r * (r.size / total)).astype(np.float32)


def total_variation(x):
    """Anisotropic total variation Σ|Δ_row x| + Σ|Δ_col x| of each image (B, H, W, C) → (B,)."""
    import tensorflow as tf

    return tf.image.total_variation(x)


class StyleLoss:
    """A style loss: features → representation (cached per style image), then compare."""

    name = "style"
    min_positions = 1  # spatial positions a style layer needs

    def representation(self, f) -> tuple:
        """(B, M, N) features → a tuple of per-image statistics, each with leading axis B."""
        raise NotImplementedError

    def compare(self, f, target: Sequence, seed) -> object:
        """Loss of each generated image (B,) against its target representation.
        ``seed`` (int64 (2,)) is for stochastic estimators; deterministic losses ignore it."""
        raise NotImplementedError

    def combine(self, reps: list[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
        """One target from the representations of several reference images (one image each)."""
        if len(reps) != 1:
            raise ValueError(f"{self.name} takes one style image per content image, got {len(reps)}")
        return reps[0]

    def describe(self) -> dict:
        return {"style_loss": self.name}


class GramStyle(StyleLoss):
    """Gatys et al. 2016 / Panigrahi Eq. 3-5: E_l = 1/(4N²M²) ‖G(Î) − G(I_s)‖²_F.

    Several references (mr²NST, Panigrahi Eq. 9): the target is the element-wise
    maximum of the references' Gram matrices. Eq. 9 writes M(·) over the feature
    maps F_l(I_s1..sn) but says its output is an N×N matrix whose entries g_ij are
    maxima "across all feature maps"; we read that as g_ij = max_k G_l(I_sk)_ij.
    """

    name = "gram"

    def representation(self, f):
        return (normalised_gram(f),)

    def compare(self, f, target, seed):
        import tensorflow as tf

        n = tf.cast(tf.shape(f)[2], f.dtype)
        diff = normalised_gram(f) - target[0]
        return tf.reduce_sum(tf.square(diff), axis=[1, 2]) / (4.0 * n * n)  # Panigrahi Eq. 4

    def combine(self, reps):
        return max_combine(reps)


class MMDStyle(StyleLoss):
    """Li et al. 2017: style as MMD² between the feature distributions of Î and I_s.

    - ``linear``   k(x, y) = xᵀy:  MMD² = ‖μ_F − μ_S‖², Z = N_l.
    - ``poly``     k(x, y) = (xᵀy + c)²: with the biased estimator
      MMD² = ‖Ĝ_F − Ĝ_S‖²_F + 2c‖μ_F − μ_S‖² (the c² terms cancel), computed from
      (Ĝ, μ) in O(M N²) instead of the O(M²) kernel matrices. Z = 4·N_l², so that
      c = 0 gives exactly Panigrahi Eq. 4/6 (= 1/(4N²) MMD²). Li et al. divide by
      N_l² alone; the constant only rescales the style weight.
    - ``gaussian`` k(x, y) = exp(−‖x − y‖² / (2σ²)), σ² = bandwidth_scale × the
      mean squared distance of the sampled pairs (Li et al. 2017 §4; REFERENCES.md:
      "γ = multiplier / mean squared distance of random pairs"), held constant
      within a step (no gradient through σ²). MMD² by the linear-time unbiased
      estimator (Gretton et al. 2012, Lemma 14, used by Li et al.): positions are
      paired by a random permutation drawn anew every step. Z = 1.
    """

    def __init__(self, kernel: Literal["linear", "poly", "gaussian"], c: float = 0.0,
                 bandwidth_scale: float = 1.0):
        if kernel not in ("linear", "poly", "gaussian"):
            raise ValueError(f"unknown MMD kernel {kernel!r}")
        self.kernel, self.c, self.bandwidth_scale = kernel, float(c), float(bandwidth_scale)
        self.name = f"mmd-{kernel}"
        self.min_positions = 2 if kernel == "gaussian" else 1  # the linear-time estimator needs a pair

    def describe(self):
        out = {"style_loss": self.name}
        if self.kernel == "poly":
            out["poly_c"] = self.c
        if self.kernel == "gaussian":
            out["bandwidth_scale"] = self.bandwidth_scale
        return out

    def representation(self, f):
        if self.kernel == "linear":
            return (channel_means(f),)
        if self.kernel == "poly":
            return (normalised_gram(f), channel_means(f))
        return (f,)  # Gaussian: no finite summary; the style features themselves

    def compare(self, f, target, seed):
        import tensorflow as tf

        n = tf.cast(tf.shape(f)[2], f.dtype)
        if self.kernel == "linear":
            return tf.reduce_sum(tf.square(channel_means(f) - target[0]), axis=1) / n
        if self.kernel == "poly":
            gram = tf.reduce_sum(tf.square(normalised_gram(f) - target[0]), axis=[1, 2])
            means = tf.reduce_sum(tf.square(channel_means(f) - target[1]), axis=1)
            return (gram + 2.0 * self.c * means) / (4.0 * n * n)
        perm = random_permutation(tf.shape(f)[1], seed)
        return mmd2_linear_time(f, target[0], perm, bandwidth_scale=self.bandwidth_scale)


class BNStyle(StyleLoss):
    """Li et al. 2017 BN-statistics matching: (1/N_l) Σ_i (μ_F,i − μ_S,i)² + (σ_F,i − σ_S,i)²."""

    name = "bn"

    def representation(self, f):
        import tensorflow as tf

        mean, var = tf.nn.moments(f, axes=[1])
        return (mean, tf.sqrt(var + BN_EPS))

    def compare(self, f, target, seed):
        import tensorflow as tf

        mean, sd = self.representation(f)
        n = tf.cast(tf.shape(f)[2], f.dtype)
        return (tf.reduce_sum(tf.square(mean - target[0]), axis=1)
                + tf.reduce_sum(tf.square(sd - target[1]), axis=1)) / n


def random_permutation(m, seed):
    """A permutation of range(m) from a stateless seed (int64 (2,)): deterministic, same for
    every image of a batch, so an image's result does not depend on its batch neighbours."""
    import tensorflow as tf

    keys = tf.random.stateless_uniform(tf.reshape(m, [1]), seed=seed)
    return tf.argsort(keys, stable=True)


def mmd2_linear_time(x, y, perm, sigma2=None, bandwidth_scale: float = 1.0):
    """Linear-time unbiased MMD² with a Gaussian kernel (Gretton et al. 2012, Lemma 14).

    x, y: (B, M, N) samples of the two distributions (same M); perm: a permutation
    of range(M). Positions perm[0], perm[1] form the first pair, perm[2], perm[3] the
    second, …, P = ⌊M/2⌋ pairs: MMD²_l = (1/P) Σ_i h(z_2i−1, z_2i) with
    h(z, z') = k(x, x') + k(y, y') − k(x, y') − k(x', y). Averaged over uniformly
    random permutations it equals the quadratic-time unbiased estimator MMD²_u.
    ``sigma2`` (B,) fixes the bandwidth; None uses the mean squared distance of the
    sampled pairs × ``bandwidth_scale`` (Li et al. 2017), without gradient.
    """
    import tensorflow as tf

    p = tf.shape(perm)[0] // 2
    a, b = perm[0:2 * p:2], perm[1:2 * p:2]
    xa, xb = tf.gather(x, a, axis=1), tf.gather(x, b, axis=1)
    ya, yb = tf.gather(y, a, axis=1), tf.gather(y, b, axis=1)

    def sqdist(u, v):
        return tf.reduce_sum(tf.square(u - v), axis=-1)  # (B, P)

    d = [sqdist(xa, xb), sqdist(ya, yb), sqdist(xa, yb), sqdist(xb, ya)]
    if sigma2 is None:
        sigma2 = tf.stop_gradient(tf.reduce_mean(tf.concat(d, axis=1), axis=1)) * bandwidth_scale
    sigma2 = tf.maximum(tf.cast(sigma2, x.dtype), MIN_SIGMA2)[:, None]
    k = [tf.exp(-di / (2.0 * sigma2)) for di in d]
    return tf.reduce_mean(k[0] + k[1] - k[2] - k[3], axis=1)


class CombinedStyle(MMDStyle):
    """``nst-proposed``: Panigrahi et al. 2024's combined style loss L_ps (Eq. 14, expanded in
    Eq. 17), DNST's MMD form (Eq. 6) with mr²NST's multi-reference target (Eq. 7-9).

    The paper's equations are ambiguous: Eq. 14 writes "MMD² Σ_ij ([F_l, F_l(I_s)])²_ij" and
    Eq. 17 expands the Gram loss of Eq. 4 with the style features replaced by the references'
    G_l. Our reading (README "NST losses"): the MMD² of Eq. 6 with the polynomial kernel
    k(x, y) = (xᵀy + c)² between the generated image's features and a *multi-reference* style
    distribution whose statistics are the element-wise maxima over the references (Eq. 9's M(·)):

        L_ps,l = 1/(4 N_l²) [ ‖Ĝ_l(Î) − max_k Ĝ_l(I_sk)‖²_F + 2c ‖μ_l(Î) − max_k μ_l(I_sk)‖² ]

    (Ĝ = FᵀF/M, μ the channel means; the biased MMD² of the poly kernel in terms of (Ĝ, μ),
    see :class:`MMDStyle`). Properties, tested in tests/test_nst_losses.py:
    one reference and c = 0 → exactly the Gram loss of Eq. 4 (:class:`GramStyle`);
    one reference, any c → DNST's poly MMD (Eq. 6); several references and c = 0 → mr²NST's
    max-Gram loss (Eq. 7-9). Panigrahi use the degree-2 polynomial kernel (Eq. 6: c = 0).
    """

    def __init__(self, c: float = 0.0):
        super().__init__("poly", c=c)
        self.name = "combined-mmd-poly"

    def combine(self, reps):
        return max_combine(reps)


def max_combine(reps: list[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
    """Panigrahi Eq. 9, M(·): the element-wise maximum over the references' representations,
    statistic by statistic (the Gram matrix; for the polynomial kernel also the channel means)."""
    return tuple(np.max(np.stack([r[i] for r in reps]), axis=0) for i in range(len(reps[0])))


STYLE_LOSSES = {
    "gram": lambda c, scale: GramStyle(),
    "bn": lambda c, scale: BNStyle(),
    **{k: (lambda c, scale, k=k: MMDStyle(k, c=c, bandwidth_scale=scale)) for k in ("linear", "poly", "gaussian")},
}


def make_style_loss(kind: str, c: float = 0.0, bandwidth_scale: float = 1.0) -> StyleLoss:
    """``gram`` | ``linear`` | ``poly`` | ``gaussian`` | ``bn``."""
    if kind not in STYLE_LOSSES:
        raise ValueError(f"unknown style loss {kind!r}; known: {', '.join(sorted(STYLE_LOSSES))}")
    return STYLE_LOSSES[kind](c, bandwidth_scale)
