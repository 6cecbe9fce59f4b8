"""Image-quality metrics of generated images (issue 6; Fedoruk et al. 2022's list plus SSIM and KID).

Full-reference metrics compare a generated image y with its source image x (the content
image for NST, the nearest training image of the class for the GAN); both grey, in [0, 1],
same shape, n pixels:

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

Distribution metrics compare feature sets (N, d) of generated and real images, the features
from a given network (InceptionV3's 2048-d pool features with ImageNet weights for the usual
FID; otherwise the domain encoder — the numbers are not comparable across networks, so the
report names which):

- FID (Heusel et al. 2017, Eq. 6): ‖μ_1 − μ_2‖² + Tr(Σ_1 + Σ_2 − 2(Σ_1Σ_2)^½), covariances with
  N − 1. With fewer images than feature dimensions (the usual case here) the trace of the square
  root comes exactly from the singular values of the N_1 × N_2 cross-product of the centred sets
  (:func:`trace_sqrt_product`); otherwise the matrix square root by ``scipy.linalg.sqrtm``; if it
  is not finite, ε·I (ε = 1e-6) is added to both covariances; a complex result is accepted only
  when its imaginary part is negligible (|Im| ≤ 1e-3 on the diagonal) and then its real part is used.
- KID (Bińkowski et al. 2018, §3 and Appendix): the unbiased MMD² estimator (Gretton et al.
  2012, Eq. 3) with the cubic polynomial kernel k(x, y) = (xᵀy/d + 1)³,

      MMD²_u = 1/(m(m−1)) Σ_{i≠j} k(x_i, x_j) + 1/(n(n−1)) Σ_{i≠j} k(y_i, y_j) − 2/(mn) Σ_{i,j} k(x_i, y_j),

  averaged over random subsets of size min(subset_size, m, n) (Bińkowski: 100 subsets of 1000).
  Unbiased: it can be negative for close distributions.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import linalg

MSE_FLOOR = 1e-10
FULL_REFERENCE = ("rmse", "psnr", "ssim", "sre", "sam")


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


def inception_network(weights_file: Path) -> FeatureNetwork:
    """InceptionV3 pool features (2048-d) from ``weights_file`` (ImageNet no-top); input resized to 299 px,
    grey repeated to RGB, Inception preprocessing ([−1, 1]) — the usual FID network (Heusel et al. 2017)."""
    import tensorflow as tf

    model = tf.keras.applications.InceptionV3(include_top=False, weights=str(weights_file), pooling="avg",
                                              input_shape=(299, 299, 3))

    def prepare(x):
        return tf.repeat(tf.image.resize(x, (299, 299), method="bilinear"), 3, axis=-1) * 2.0 - 1.0

    return FeatureNetwork(f"InceptionV3 (ImageNet, {weights_file.name})", lambda im: features(model, im, prepare))


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
    from methods.classify._weights import IMAGENET_FILES, keras_cache_dir

    if choice not in ("auto", "inceptionv3", "domain"):
        raise ValueError(f"feature network {choice!r}: expected auto, inceptionv3 or domain")
    path = keras_cache_dir() / IMAGENET_FILES["inception_v3"][0]
    if choice != "domain" and path.is_file():
        return inception_network(path)
    if choice == "inceptionv3":
        raise ValueError(f"feature network inceptionv3: no InceptionV3 ImageNet weights at {path} (put the Keras "
                         "file there, or set quality.feature_network: domain)")
    if encoder_dir is None:
        raise ValueError(f"no InceptionV3 ImageNet weights at {path} and no encoder folder for domain features")
    return domain_network(Path(encoder_dir), arch)


def feature_distances(fa: np.ndarray, fb: np.ndarray, kid_subsets: int = 100, kid_subset_size: int = 1000,
                      seed: int = 0) -> dict:
    """FID and KID (mean, sd) between two sets of features."""
    kid_mean, kid_sd = kid(fa, fb, kid_subsets, kid_subset_size, seed)
    return {"fid": fid(fa, fb), "kid": kid_mean, "kid_sd": kid_sd}


def distribution_metrics(generated: np.ndarray, real: np.ndarray, network: FeatureNetwork,
                         kid_subsets: int = 100, kid_subset_size: int = 1000, seed: int = 0) -> dict:
    """FID and KID (mean, sd) of generated vs real images, with the network's name."""
    fa, fb = network.extract(generated), network.extract(real)
    return {**feature_distances(fa, fb, kid_subsets, kid_subset_size, seed), "feature_network": network.name,
            "n_generated": len(fa), "n_real": len(fb)}
