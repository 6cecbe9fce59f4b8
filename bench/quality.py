"""Image-quality metrics of generated images (Fedoruk et al. 2022's list plus SSIM and KID), measured
so that a good generator and a copier of its training images score differently.

Three families of figures (docs/image-quality.md explains how to read them):

**Distance from source** (full-reference; each generated image y against the one image x its provenance
names as its source: the content image for NST, the nearest training image of the class for the GAN).
They say how far a method moves an image from where it started, not how good it is: a copy scores best.
Both grey, in [0, 1], same shape, n pixels:

- RMSE = sqrt( (1/n) Σ_p (x_p − y_p)² ).
- PSNR = 10·log10( L² / MSE ) dB with the data range L = 1 (Gonzalez & Woods, *Digital Image
  Processing*); MSE is floored at 1e-10, so identical images score 100 dB, not ∞.
- SSIM: Wang, Bovik, Sheikh & Simoncelli 2004, Eq. 13, with their Gaussian window (σ = 1.5,
  11×11), K1 = 0.01, K2 = 0.03, L = 1, averaged over the image (``skimage.metrics``).
- SRE = 10·log10( μ_x² / ((1/n) Σ_p (x_p − y_p)²) ) dB, μ_x the mean of the reference
  (Lanaras et al. 2018, "Super-resolution of Sentinel-2 images", Eq. 13; the error floored as
  for PSNR).
- SAM (spectral angle mapper, Kruse et al. 1993): per pixel, the angle between the two
  spectral vectors, arccos(⟨x_p, y_p⟩ / (‖x_p‖‖y_p‖)), averaged. With one grey channel each
  "vector" is a non-negative scalar and that angle is 0 everywhere, so for grey images we
  take the whole image as the vector: SAM = arccos(⟨x, y⟩ / (‖x‖‖y‖)) in degrees (0 when
  both are all-zero, 90 when only one is).

**Distribution distances (KID, FID) against real images no generator used** (the validation split; for
a pseudo-label fold, that fold's held-out images), in a feature space the sample sizes support:

- Features: a network's pooled features (Keras InceptionV3 pool features, not the TF-slim reference FID
  network, so not comparable to published FIDs; or the domain encoder), then :class:`Projection`: the
  d leading principal components of one random half of the *real training* features (the fit half),
  each divided by its standard deviation (whitened), with d = min(max_dims, ⌊n / samples_per_dim⌋), n the smaller real set, at least
  ``MIN_DIMS``. Reason: a d × d sample covariance of n points has eigenvalues spread over
  [(1 − √(d/n))², (1 + √(d/n))²] times the true ones (Marchenko & Pastur 1967; white data), so FID's
  covariance term is mostly estimation noise unless n ≫ d; n/d = 10 keeps that band within about
  [0.47, 1.73]. In 2,048 dimensions with 90 images the same sets gave KIDs from −381 to 192,700.
  Whitening also puts the coordinates on unit scale, which the KID kernel's xᵀy/d assumes.
- KID (Bińkowski et al. 2018, §3 and Appendix), the primary figure at small n: the unbiased MMD²
  estimator (Gretton et al. 2012, Eq. 3) with the cubic polynomial kernel k(x, y) = (xᵀy/d + 1)³,

      MMD²_u = 1/(m(m−1)) Σ_{i≠j} k(x_i, x_j) + 1/(n(n−1)) Σ_{i≠j} k(y_i, y_j) − 2/(mn) Σ_{i,j} k(x_i, y_j),

  mean ± sd over random subsets (Bińkowski: 100 subsets of 1000) of size min(kid_subset_size,
  ⌊KID_SUBSET_FRACTION · min(m, n)⌋), so that at small n the subsets differ and the sd measures the
  estimate's spread. Unbiased: it can be negative for close distributions; real vs real is ≈ 0.
- FID (Heusel et al. 2017, Eq. 6), secondary: ‖μ_1 − μ_2‖² + Tr(Σ_1 + Σ_2 − 2(Σ_1Σ_2)^½), covariances
  with N − 1. It is biased upwards by about a constant over N (Chong & Forsyth 2020, "Effectively
  unbiased FID", §3), so rows with n < samples_per_dim · d carry a note. With fewer images than feature
  dimensions the trace of the square root comes exactly from the singular values of the N_1 × N_2
  cross-product of the centred sets (:func:`trace_sqrt_product`); otherwise the matrix square root by
  ``scipy.linalg.sqrtm``; if it is not finite, ε·I (ε = 1e-6) is added to both covariances; a complex
  result is accepted only when its imaginary part is negligible (|Im| ≤ 1e-3 on the diagonal).
- The floor (real training vs held-out images) compares the *other* half of the training images (the
  floor half) with the held-out ones: a projection fitted on the very images it then compares makes
  them exactly white and the held-out ones not, which biases that floor's KID/FID upwards.

**Memorisation** (:func:`nearest_distances`, :func:`memorisation`): each generated image's distance to
its nearest training image, in pixel space (RMS over pixels), against the same distance of the
held-out real images, which are new to the training set by construction (the split keeps duplicate
groups on one side, so these distances carry none of the training set's own duplicates, which
leave-one-out training distances would). Pixel space because copying is a pixel-level event (a copy
with a little noise or a brightness change is close in pixels whatever a network makes of it), because
it needs no network (the domain encoder was itself fitted to the training images), and because the
low-dimensional projection that makes FID estimable discards the detail that tells a near-copy from a
new image of the same kind. It does not catch flipped, shifted or rotated copies. Rule: τ = the k-th
smallest of the n held-out images' distances, k = ⌊p(n + 1)⌋ with p = ``nn_percentile``/100 (at least
1); ``memorised`` = the fraction of the m generated images closer to a training image than τ (new
images: k/(n + 1) on average, about p); ``copying`` = "yes" when that count b is improbably high for
images as new as the held-out ones: P(B ≥ b) < ``COPYING_ALPHA`` with B beta-binomial(m, k, n + 1 − k).
Why: if the generated and held-out distances are exchangeable (new images of one distribution), the
share of new images below the k-th order statistic of n is Beta(k, n + 1 − k) (the coverage of an
order statistic: Wilks 1941, "Determination of sample sizes for setting tolerance limits"), and given
that share each generated image falls below independently, so B is beta-binomial: the noise in τ is
part of the test. A binomial test at p with τ a percentile ignores it and flags new images far more
often than α (at n = 30 the interpolated 5th percentile covers 7.9 % on average). ``nn_ratio`` =
median generated distance / median held-out distance (copies: 0; new images: about 1).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import linalg

MSE_FLOOR = 1e-10
FULL_REFERENCE = ("rmse", "psnr", "ssim", "sre", "sam")
MIN_DIMS = 2  # the projection keeps at least this many dimensions, however few the images (a note says so)
MIN_IMAGES = 4  # per set: KID's subsets of half a set need two images each
KID_SUBSET_FRACTION = 0.5  # subsets of half the smaller set: they differ, so their sd measures the spread
COPYING_ALPHA = 0.01  # the level of the memorisation rule's one-sided beta-binomial test
RANK_TOLERANCE = 1e-9  # principal directions with sd below this × the largest are dropped (no variance)


# --------------------------------------------------------------------------- full-reference metrics


def _pair(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {x.shape} vs {y.shape}")
    return x, y


def rmse(x: np.ndarray, y: np.ndarray) -> float:
    x, y = _pair(x, y)
    return float(np.sqrt(np.mean((x - y) ** 2)))


def psnr(x: np.ndarray, y: np.ndarray, data_range: float = 1.0) -> float:
    x, y = _pair(x, y)
    return float(10.0 * np.log10(data_range**2 / max(np.mean((x - y) ** 2), MSE_FLOOR)))


def ssim(x: np.ndarray, y: np.ndarray, data_range: float = 1.0) -> float:
    from skimage.metrics import structural_similarity

    x, y = _pair(x, y)
    win = min(11, *(s - (1 - s % 2) for s in x.shape))  # odd, at most the image size
    return float(structural_similarity(x, y, data_range=data_range, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False, win_size=win))


def sre(x: np.ndarray, y: np.ndarray) -> float:
    x, y = _pair(x, y)
    return float(10.0 * np.log10(max(np.mean(x) ** 2, MSE_FLOOR) / max(np.mean((x - y) ** 2), MSE_FLOOR)))


def sam(x: np.ndarray, y: np.ndarray) -> float:
    x, y = _pair(x, y)
    nx, ny = np.linalg.norm(x), np.linalg.norm(y)
    if nx == 0 or ny == 0:
        return 0.0 if nx == ny else 90.0
    return float(np.degrees(np.arccos(np.clip(np.dot(x.ravel(), y.ravel()) / (nx * ny), -1.0, 1.0))))


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "rmse": rmse, "psnr": psnr, "ssim": ssim, "sre": sre, "sam": sam}


def full_reference(sources: np.ndarray, generated: np.ndarray) -> dict[str, dict[str, float]]:
    """Mean and sd over pairs (source_i, generated_i) of every full-reference metric."""
    if len(sources) != len(generated):
        raise ValueError(f"{len(sources)} sources for {len(generated)} generated images")
    out = {}
    for name, metric in METRICS.items():
        values = np.array([metric(s, g) for s, g in zip(sources, generated, strict=True)])
        out[name] = {"mean": float(values.mean()) if len(values) else float("nan"),
                     "sd": float(values.std(ddof=1)) if len(values) > 1 else float("nan")}
    return out


# --------------------------------------------------------------------------- FID and KID


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    """scipy's matrix square root, quiet about singular input (the caller checks finiteness)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        return linalg.sqrtm(matrix)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2(Σ1Σ2)^½) (Heusel et al. 2017, Eq. 6), with the guards above."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    covmean = _sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(sigma1)) * eps
        covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        imaginary = np.max(np.abs(np.diagonal(covmean).imag))
        if imaginary > 1e-3:
            raise ValueError(f"FID: the matrix square root has an imaginary part of {imaginary:.3g}")
        covmean = covmean.real
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean), 0.0))


def trace_sqrt_product(a: np.ndarray, b: np.ndarray) -> float:
    """Tr((Σ_a Σ_b)^½) of two sample sets (N, d) without a d × d matrix square root.

    With centred data A (N_a × d) and B, Σ_a = AᵀA/(N_a − 1) and Σ_b = BᵀB/(N_b − 1), so
    Σ_aΣ_b = Aᵀ(ABᵀ)B / c with c = (N_a − 1)(N_b − 1). XY and YX have the same non-zero
    eigenvalues (Horn & Johnson, *Matrix Analysis*, Thm 1.3.22); with X = Aᵀ and Y = (ABᵀ)B that
    gives those of (ABᵀ)(BAᵀ)/c = MMᵀ/c, M = ABᵀ (N_a × N_b): the squared singular values of M over
    c. The trace of the square root is therefore Σ_i σ_i(M) / √c — exact, and it costs an
    N_a × N_b SVD instead of a d × d square root (2048-d features, a few hundred images)."""
    a = np.asarray(a, np.float64) - np.mean(a, axis=0)
    b = np.asarray(b, np.float64) - np.mean(b, axis=0)
    singular = np.linalg.svd(a @ b.T, compute_uv=False)
    return float(singular.sum() / np.sqrt((len(a) - 1) * (len(b) - 1)))


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two feature sets (N, d); needs N ≥ 2 each. With fewer images than feature
    dimensions the covariances are singular: the trace term then comes from
    :func:`trace_sqrt_product` (exact; no ε), otherwise from :func:`frechet_distance`."""
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ValueError("FID needs at least two images per set")
    if min(len(a), len(b)) >= a.shape[1]:
        return frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    diff = a.mean(0) - b.mean(0)
    traces = np.var(a, axis=0, ddof=1).sum() + np.var(b, axis=0, ddof=1).sum()
    return float(max(diff @ diff + traces - 2.0 * trace_sqrt_product(a, b), 0.0))


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (xᵀy/d + 1)³ (Bińkowski et al. 2018)."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD² estimate (Gretton et al. 2012, Eq. 3) with the cubic polynomial kernel."""
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError("the unbiased MMD² needs at least two samples per set")
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2.0 * kxy.mean())


def kid(features_a: np.ndarray, features_b: np.ndarray, n_subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """KID: mean and sd over ``n_subsets`` random subsets (without replacement within a subset).
    When the subset size covers both sets whole, every subset is the same: one value, sd NaN
    (not the 1e-15 of 100 identical draws)."""
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    rng = np.random.default_rng(seed)
    size = min(subset_size, len(a), len(b))
    if size == len(a) == len(b):
        return float(mmd2_unbiased(a, b)), float("nan")
    values = [mmd2_unbiased(a[rng.choice(len(a), size, replace=False)], b[rng.choice(len(b), size, replace=False)])
              for _ in range(n_subsets)]
    return float(np.mean(values)), float(np.std(values, ddof=1)) if n_subsets > 1 else float("nan")


# --------------------------------------------------------------------------- feature networks


@dataclass(frozen=True)
class FeatureNetwork:
    """Grey images (N, H, W) in [0, 1] → features (N, d); ``name`` says which network and weights."""

    name: str
    extract: Callable[[np.ndarray], np.ndarray]


def features(model, images: np.ndarray, prepare: Callable, batch: int = 32) -> np.ndarray:
    """Run ``model`` on ``prepare(grey batch (B, H, W, 1))`` in batches; flatten to (N, d)."""
    import tensorflow as tf

    out = []
    for start in range(0, len(images), batch):
        x = tf.convert_to_tensor(np.asarray(images[start:start + batch], np.float32)[..., None])
        out.append(np.asarray(model(prepare(x), training=False)).reshape(len(x), -1))
    return np.concatenate(out) if out else np.zeros((0, 0))


INCEPTION_NAME = "Keras InceptionV3 pool features, not the TF-slim reference FID network"


def inception_network(weights_file: Path) -> FeatureNetwork:
    """Keras InceptionV3 pool features (2048-d) from ``weights_file`` (ImageNet no-top); input resized to
    299 px, grey repeated to RGB, Inception preprocessing ([−1, 1]). Not the TF-slim graph of the reference
    FID code (Heusel et al. 2017), whose weights and resizing differ, so its FIDs are not those of papers."""
    import tensorflow as tf

    model = tf.keras.applications.InceptionV3(include_top=False, weights=str(weights_file), pooling="avg",
                                              input_shape=(299, 299, 3))

    def prepare(x):
        return tf.repeat(tf.image.resize(x, (299, 299), method="bilinear"), 3, axis=-1) * 2.0 - 1.0

    return FeatureNetwork(f"{INCEPTION_NAME} (ImageNet, {weights_file.name})",
                          lambda im: features(model, im, prepare))


def domain_network(encoder_dir: Path, arch: str = "resnet50") -> FeatureNetwork:
    """The encoder stage's domain encoder (trained on the training split), global-average-pooled last block."""
    import tensorflow as tf

    from bench.nst.encoders import get_encoder_spec, resolve_encoder_weights, to_encoder_input

    weights = resolve_encoder_weights("domain", arch, encoder_dir)
    base = get_encoder_spec(arch).build()
    base.load_weights(weights.path)
    model = tf.keras.Sequential([base, tf.keras.layers.GlobalAveragePooling2D()])
    return FeatureNetwork(f"{arch} domain encoder ({weights.description})",
                          lambda im: features(model, im, to_encoder_input))


def feature_network(encoder_dir: Path | None, arch: str = "resnet50", choice: str = "auto") -> FeatureNetwork:
    """``choice`` "inceptionv3": InceptionV3 with ImageNet weights from the Keras cache (never downloaded
    here); "domain": the encoder stage's domain encoder ``arch``; "auto": the first when its file is
    cached, otherwise the second."""
    from bench import weights

    if choice not in ("auto", "inceptionv3", "domain"):
        raise ValueError(f"feature network {choice!r}: expected auto, inceptionv3 or domain")
    path = weights.keras_cache_dir() / weights.IMAGENET_FILES["inception_v3"][0]
    if choice != "domain" and path.is_file():
        return inception_network(path)
    if choice == "inceptionv3":
        raise ValueError(f"feature network inceptionv3: no InceptionV3 ImageNet weights at {path} (put the Keras "
                         "file there, or set quality.feature_network: domain)")
    if encoder_dir is None:
        raise ValueError(f"no InceptionV3 ImageNet weights at {path} and no encoder folder for domain features")
    return domain_network(Path(encoder_dir), arch)


# --------------------------------------------------------------------------- the feature space of KID/FID


@dataclass(frozen=True)
class Projection:
    """z = ((f − μ) V_d) / s_d: the d leading principal axes V_d of a reference feature set (mean μ), each
    coordinate divided by the reference's standard deviation s_d along it (whitened)."""

    mean: np.ndarray  # (D,)
    axes: np.ndarray  # (D, d), orthonormal columns
    scale: np.ndarray  # (d,), > 0
    n_fit: int

    @property
    def dims(self) -> int:
        return int(self.axes.shape[1])

    def __call__(self, feats: np.ndarray) -> np.ndarray:
        f = np.asarray(feats, np.float64)
        if f.ndim != 2 or f.shape[1] != len(self.mean):
            raise ValueError(f"features of shape {f.shape}: the projection was fitted on {len(self.mean)}-d features")
        return (f - self.mean) @ self.axes / self.scale


def projection_dims(n_smallest: int, samples_per_dim: int, max_dims: int) -> int:
    """d = min(max_dims, ⌊n_smallest / samples_per_dim⌋), at least ``MIN_DIMS`` (module docstring: why n/d)."""
    if samples_per_dim < 1 or max_dims < MIN_DIMS:
        raise ValueError(f"samples_per_dim {samples_per_dim} must be >= 1 and max_dims {max_dims} >= {MIN_DIMS}")
    return max(MIN_DIMS, min(max_dims, n_smallest // samples_per_dim))


def fit_projection(reference: np.ndarray, dims: int) -> Projection:
    """The whitened ``dims`` leading principal components of ``reference`` (N, D) (fewer when the
    features have fewer directions of non-negligible variance)."""
    ref = np.asarray(reference, np.float64)
    if ref.ndim != 2 or len(ref) < 3:
        raise ValueError(f"a projection needs at least 3 reference feature vectors (N, D); got shape {ref.shape}")
    if not np.isfinite(ref).all():
        raise ValueError("the reference features hold NaN or inf: check the feature network's weights")
    mean = ref.mean(axis=0)
    _, singular, vt = np.linalg.svd(ref - mean, full_matrices=False)
    sd = singular / np.sqrt(len(ref) - 1)
    usable = int(np.sum(sd > RANK_TOLERANCE * sd[0])) if sd[0] > 0 else 0
    if usable == 0:
        raise ValueError("the reference features do not vary (every real image maps to one point): the feature "
                         "network is degenerate; retrain the encoder stage or use quality.feature_network: inceptionv3")
    keep = min(dims, usable)
    return Projection(mean, vt[:keep].T, sd[:keep], len(ref))


def kid_subset_size(m: int, n: int, cap: int) -> int:
    """min(cap, ⌊KID_SUBSET_FRACTION · min(m, n)⌋), at least 2 (the unbiased MMD² needs two per set)."""
    return max(2, min(cap, int(KID_SUBSET_FRACTION * min(m, n))))


def compare(generated: np.ndarray, reference: np.ndarray, kid_subsets: int, kid_max_subset: int,
            samples_per_dim: int, seed: int = 0) -> dict:
    """KID (mean, sd over subsets, the subset size) and FID of two projected feature sets, and a note
    when either set has fewer than ``samples_per_dim`` images per dimension (FID then biased upwards)."""
    g, r = np.asarray(generated, np.float64), np.asarray(reference, np.float64)
    if min(len(g), len(r)) < MIN_IMAGES:
        raise ValueError(f"KID over subsets needs at least {MIN_IMAGES} images per set; got {len(g)} and {len(r)}")
    size = kid_subset_size(len(g), len(r), kid_max_subset)
    kid_mean, kid_sd = kid(g, r, kid_subsets, size, seed)
    d, n = g.shape[1], min(len(g), len(r))
    note = f"n = {n} < {samples_per_dim}·d = {samples_per_dim * d}: biased upwards" if n < samples_per_dim * d else ""
    return {"kid": kid_mean, "kid_sd": kid_sd, "kid_subset_size": size, "fid": fid(g, r), "fid_note": note}


# --------------------------------------------------------------------------- memorisation


def nearest_distances(queries: np.ndarray, references: np.ndarray, chunk: int = 256) -> np.ndarray:
    """For each query image, the RMS pixel distance to its nearest reference image:
    min_r sqrt((1/n) Σ_p (q_p − r_p)²). The nearest is found through ‖q‖² + ‖r‖² − 2⟨q, r⟩ (float64); its
    distance is then taken from the difference itself, so that a copy is at exactly 0."""
    q, r = np.asarray(queries), np.asarray(references)
    if q.shape[1:] != r.shape[1:]:
        raise ValueError(f"images of shape {q.shape[1:]} cannot be compared with training images of shape "
                         f"{r.shape[1:]}: the method must write images at the prepared size")
    if len(r) == 0:
        raise ValueError("no reference images for nearest-neighbour distances")
    ref = r.reshape(len(r), -1).astype(np.float64)
    ref_sq = np.einsum("ij,ij->i", ref, ref)
    out = np.empty(len(q))
    for start in range(0, len(q), chunk):
        block = q[start:start + chunk].reshape(-1, ref.shape[1]).astype(np.float64)
        sq = np.einsum("ij,ij->i", block, block)[:, None] + ref_sq[None, :] - 2.0 * block @ ref.T
        nearest = ref[np.argmin(sq, axis=1)]
        out[start:start + len(block)] = np.sqrt(np.mean((block - nearest) ** 2, axis=1))
    return out


@dataclass(frozen=True)
class Novelty:
    """How close genuinely new real images come to the training set: the held-out images' nearest-training
    distances, τ (their ``rank``-th smallest, about the ``percentile``-th percentile) and their median."""

    distances: np.ndarray
    percentile: float

    @property
    def rank(self) -> int:
        """k = ⌊p(n + 1)⌋, p = percentile/100, within [1, n]: the order statistic whose coverage is
        Beta(k, n + 1 − k) (module docstring); the 1e-9 keeps e.g. 0.29 · 100 from flooring to 28."""
        n = len(self.distances)
        return min(n, max(1, math.floor(self.percentile / 100.0 * (n + 1) + 1e-9)))

    @property
    def threshold(self) -> float:
        return float(np.sort(np.asarray(self.distances, np.float64))[self.rank - 1])

    @property
    def expected(self) -> float:
        """The mean share of new images below τ: k/(n + 1)."""
        return self.rank / (len(self.distances) + 1)

    @property
    def median(self) -> float:
        return float(np.median(self.distances))


def memorisation(distances: np.ndarray, novelty: Novelty, alpha: float = COPYING_ALPHA) -> dict:
    """The memorisation figures of generated images with nearest-training distances ``distances`` (module
    docstring: the rule): nn_median, nn_ratio, memorised (fraction below τ), memorised_p, copying."""
    from scipy import stats

    d = np.asarray(distances, np.float64)
    if len(d) == 0:
        raise ValueError("memorisation of an empty set of generated images")
    below = int(np.sum(d < novelty.threshold))
    k, n = novelty.rank, len(novelty.distances)
    p = float(stats.betabinom.sf(below - 1, len(d), k, n + 1 - k))  # P(B ≥ below) for new images
    median = float(np.median(d))
    return {"nn_median": median, "nn_ratio": median / novelty.median if novelty.median > 0 else float("nan"),
            "memorised": below / len(d), "memorised_p": p, "copying": "yes" if p < alpha else "no"}


# --------------------------------------------------------------------------- a reference pair of real sets


@dataclass(frozen=True)
class Settings:
    """The quality stage's settings (params.yaml ``quality``; bench/config.py QualityParams says why)."""

    kid_subsets: int = 100
    kid_subset_size: int = 1000
    samples_per_dim: int = 10
    max_dims: int = 64
    nn_percentile: float = 5.0
    seed: int = 0


@dataclass(frozen=True)
class Reference:
    """The real images one set of generated images is judged against: ``train`` (what the generator was
    made from) and ``held_out`` (real images it never used), the projection (fitted on the features of
    one random half of ``train``), the projected features of the other half (``floor_z``, the floor row's)
    and of the held-out images, and the held-out images' novelty (against all of ``train``)."""

    name: str
    train_images: np.ndarray
    floor_z: np.ndarray
    held_out_z: np.ndarray
    projection: Projection
    novelty: Novelty
    network: str

    def summary(self) -> dict:
        return {"name": self.name, "n_train": len(self.train_images), "n_fit": self.projection.n_fit,
                "n_floor": len(self.floor_z), "n_held_out": len(self.held_out_z), "dims": self.projection.dims, "pixel_threshold": self.novelty.threshold,
                "pixel_median": self.novelty.median, "percentile": self.novelty.percentile}


def real_reference(name: str, train_images: np.ndarray, held_out_images: np.ndarray, network: FeatureNetwork,
                   settings: Settings, hint: str = "use a larger dataset or a larger validation ratio in "
                                                   "split.ratios") -> Reference:
    """Extract, project (d from the smaller real set; the projection fitted on a random half of the training
    images, seeded by ``settings.seed``) and measure novelty for one pair of real sets. ``hint``: what to
    change when a set is too small (it depends on where the sets come from)."""
    n_train, n_held = len(train_images), len(held_out_images)
    if n_train < 2 * MIN_IMAGES or n_held < MIN_IMAGES:
        raise ValueError(f"{name}: {n_train} training and {n_held} held-out real images; KID and the memorisation "
                         f"rule need at least {MIN_IMAGES} held-out and {2 * MIN_IMAGES} training images (half fit "
                         f"the projection, half make the floor row) ({hint})")
    order = np.random.default_rng(settings.seed).permutation(n_train)
    fit_part, floor_part = order[:n_train - n_train // 2], order[n_train - n_train // 2:]
    train_f, held_f = network.extract(train_images), network.extract(held_out_images)
    dims = projection_dims(min(n_train, n_held), settings.samples_per_dim, settings.max_dims)
    projection = fit_projection(train_f[fit_part], dims)
    novelty = Novelty(nearest_distances(held_out_images, train_images), settings.nn_percentile)
    return Reference(name, np.asarray(train_images), projection(train_f[floor_part]), projection(held_f), projection,
                     novelty, network.name)


def floor_figures(ref: Reference, settings: Settings) -> dict:
    """Real training images (the floor half, which the projection was not fitted on) vs held-out images: the
    KID/FID a generator of new images from this distribution would reach at best, and the held-out images'
    own nearest-training distance (nn_ratio 1 by definition)."""
    return {"reference": ref.name, "n": len(ref.floor_z), "n_reference": len(ref.held_out_z),
            "dims": ref.projection.dims,
            **compare(ref.floor_z, ref.held_out_z, settings.kid_subsets, settings.kid_subset_size,
                      settings.samples_per_dim, settings.seed),
            "nn_median": ref.novelty.median, "nn_ratio": 1.0, "feature_network": ref.network}


def generated_figures(ref: Reference, images: np.ndarray, network: FeatureNetwork, settings: Settings) -> dict:
    """KID/FID of ``images`` against the held-out real images and their memorisation figures."""
    if network.name != ref.network:
        raise ValueError(f"features from {network.name!r} cannot be compared in a space fitted on {ref.network!r}")
    z = ref.projection(network.extract(images))
    return {"reference": ref.name, "n": len(z), "n_reference": len(ref.held_out_z), "dims": ref.projection.dims,
            **compare(z, ref.held_out_z, settings.kid_subsets, settings.kid_subset_size, settings.samples_per_dim,
                      settings.seed),
            **memorisation(nearest_distances(images, ref.train_images), ref.novelty),
            "feature_network": network.name}
