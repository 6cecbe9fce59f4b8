"""Speckle Reducing Anisotropic Diffusion (SRAD).

Y. Yu and S. T. Acton, "Speckle reducing anisotropic diffusion",
IEEE Trans. Image Processing 11(11):1260-1270, 2002.

SRAD evolves the image with the PDE  dI/dt = div[c(q) grad I]  (Neumann
boundaries), where the diffusion coefficient c depends on the *instantaneous
coefficient of variation* q, an edge detector for speckled images that combines
the normalised gradient magnitude and the normalised Laplacian:

    q^2 = (1/2 |grad I / I|^2 - 1/16 (lap I / I)^2) / (1 + 1/4 (lap I / I))^2   (Eq. 33)
    c(q) = 1 / (1 + (q^2 - q0^2) / (q0^2 (1 + q0^2)))                        (Eq. 33)

q0(t), the speckle scale function, is the coefficient of variation of fully
developed speckle at time t. The paper estimates it as std/mean over a
homogeneous region of the current image (or approximates q0(t) = q0 exp(-rho t)).

Choice made here: q0(t) is re-estimated at every iteration as std/mean of the
current image over ``roi`` (an index into the image: a pair of slices or a
boolean mask), the *whole image* when ``roi`` is None; a float ``q0`` overrides
it with a constant. Re-estimating from the evolving image lets q0 shrink as the
speckle is smoothed, as q0(t) does in the paper, without a tuning constant rho.
Caveat: on an image with strong structure the whole-image ratio overestimates
the speckle level (it includes the contrast between tissues), so c ~ 1 almost
everywhere and SRAD behaves close to linear diffusion; pass a homogeneous
``roi`` (or ``q0``) when edges must be kept.

The vectorised :func:`srad` evaluates algebraically rearranged but identical
expressions with preallocated buffers; :func:`srad_reference` spells the
equations out pixel by pixel. They agree to float32 precision.

Discretisation (Eqs. 35-37, pixel spacing h = 1): one-sided differences to the
four neighbours, the 5-point Laplacian, and the divergence

    d = c[i+1,j](I[i+1,j]-I) + c(I[i-1,j]-I) + c[i,j+1](I[i,j+1]-I) + c(I[i,j-1]-I)
    I <- I + dt/4 * d

which uses the coefficient of the south and east neighbours and the pixel's own
coefficient for the north and west fluxes. Neumann boundaries: as if the image
were padded by replicating its border, differences across the border are zero.
With c in [0, 1] the update is a convex combination of neighbours when
dt <= 1 (maximum principle), so 0 < dt <= 1 is required.
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-6  # added to the intensities so that I > 0 in the divisions by I


def _check(image, n_iter: int, dt: float, q0: float | None) -> np.ndarray:
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2 or min(img.shape) < 1:
        raise ValueError(f"image must be a non-empty 2-D array, got shape {img.shape}")
    if not np.all(np.isfinite(img)) or img.min() < 0:
        raise ValueError("image must be finite and non-negative (intensities, typically in [0, 1])")
    if isinstance(n_iter, bool) or int(n_iter) != n_iter or n_iter < 0:
        raise ValueError(f"n_iter must be an integer >= 0, got {n_iter!r}")
    if not 0.0 < dt <= 1.0:
        raise ValueError(f"dt must be in (0, 1] for a stable explicit update, got {dt!r}")
    if q0 is not None and not q0 > 0:
        raise ValueError(f"q0 must be > 0, got {q0!r}")
    return img + _EPS


def _speckle_scale(img: np.ndarray, q0: float | None, roi) -> float:
    """q0(t): the given constant, or std/mean over the homogeneous ROI (whole image)."""
    if q0 is not None:
        return float(q0)
    region = img if roi is None else img[roi]
    return float(region.std() / region.mean())


class _Workspace:
    """Preallocated float64 buffers for :func:`_step`, reused across iterations.

    Allocating ~20 fresh image-sized temporaries per iteration costs more (page
    faults) than the arithmetic itself, so every operation writes into these."""

    def __init__(self, shape: tuple[int, int]):
        rows, cols = shape
        self.dv = np.empty((rows - 1, cols))  # I[i+1, j] - I[i, j]
        self.dh = np.empty((rows, cols - 1))  # I[i, j+1] - I[i, j]  (then: east fluxes)
        self.sv, self.sh = np.empty_like(self.dv), np.empty_like(self.dh)
        self.grad2, self.lap, self.den, self.c = (np.empty(shape) for _ in range(4))
        self.out = np.empty(shape)


def _scatter(acc: np.ndarray, v: np.ndarray, h: np.ndarray, sign: float) -> None:
    """acc = sum over the (up to) four neighbour pairs of a pixel of +-v (vertical) and
    +-h (horizontal): the forward pixel gets +v, the backward one ``sign`` * v. Pairs
    across the border do not exist, which is the replicate (Neumann) boundary."""
    acc[:-1] = v
    acc[-1] = 0.0
    acc[1:] += v if sign > 0 else -v
    acc[:, :-1] += h
    if sign > 0:
        acc[:, 1:] += h
    else:
        acc[:, 1:] -= h


def _icov(img: np.ndarray, ws: _Workspace) -> tuple[np.ndarray, np.ndarray]:
    """(num, den) with q^2 = num / den, the ICOV of Eq. 33 multiplied through by I^2:
    with G = |grad_R I|^2 + |grad_L I|^2 and L the 5-point Laplacian (Eq. 35),
    q^2 = (G/(2 I^2) - L^2/(16 I^2)) / (1 + L/(4I))^2 = (G/2 - L^2/16) / (I + L/4)^2."""
    np.subtract(img[1:], img[:-1], out=ws.dv)
    np.subtract(img[:, 1:], img[:, :-1], out=ws.dh)
    _scatter(ws.lap, ws.dv, ws.dh, sign=-1.0)  # L = sum of (neighbour - I)
    np.multiply(ws.dv, ws.dv, out=ws.sv)
    np.multiply(ws.dh, ws.dh, out=ws.sh)
    _scatter(ws.grad2, ws.sv, ws.sh, sign=1.0)  # G = sum of (neighbour - I)^2
    np.multiply(ws.lap, 0.25, out=ws.den)
    ws.den += img
    ws.den *= ws.den
    num = ws.grad2
    num *= 0.5
    np.multiply(ws.lap, ws.lap, out=ws.c)
    ws.c *= 0.0625
    num -= ws.c
    return num, ws.den


def _diffusion_coefficient(num: np.ndarray, den: np.ndarray, q0: float, out: np.ndarray) -> np.ndarray:
    """c(q) of Eq. 33 clipped to [0, 1], for q^2 = num / den (``num`` is overwritten).

    c = 1 / (1 + (q^2 - q0^2) / (q0^2 (1 + q0^2))) rearranges exactly to
    q0^2 (1 + q0^2) / (q^2 + q0^4); it is never negative, since q^2 >= 0."""
    q0sq = max(q0 * q0, 1e-12)
    np.multiply(den, q0sq * q0sq, out=out)
    num += out
    np.divide(den, num, out=out)
    out *= q0sq * (1.0 + q0sq)
    return np.minimum(out, 1.0, out=out)


def _step(img: np.ndarray, dt: float, q0: float, ws: _Workspace) -> np.ndarray:
    """One explicit SRAD iteration (Eqs. 35-37) on a float64 image; returns ``ws.out``."""
    c = _diffusion_coefficient(*_icov(img, ws), q0, out=ws.c)
    # Eq. 36: the flux between a pixel and its south (east) neighbour uses the
    # neighbour's c; the same flux, reversed, is that neighbour's north (west) term.
    np.multiply(c[1:], ws.dv, out=ws.sv)
    np.multiply(c[:, 1:], ws.dh, out=ws.sh)
    div = ws.lap
    _scatter(div, ws.sv, ws.sh, sign=-1.0)
    div *= 0.25 * dt
    return np.add(img, div, out=ws.out)  # Eq. 37: I <- I + dt/4 * div


def _run(img: np.ndarray, n_iter: int, dt: float, q0: float | None, roi) -> np.ndarray:
    """``n_iter`` SRAD iterations on a float64 image with I > 0 (a new array)."""
    img = img.copy()
    ws = _Workspace(img.shape)
    for _ in range(int(n_iter)):
        img, ws.out = _step(img, dt, _speckle_scale(img, q0, roi), ws), img
    return img


def srad(image, n_iter: int = 10, dt: float = 0.05, q0: float | None = None, roi=None) -> np.ndarray:
    """SRAD-filtered copy of ``image`` (2-D, non-negative), as float32.

    ``q0``: constant speckle scale; None re-estimates q0(t) = std/mean over
    ``roi`` (a homogeneous region; the whole image when None) at every iteration.
    """
    img = _check(image, n_iter, dt, q0)
    return (_run(img, n_iter, dt, q0, roi) - _EPS).astype(np.float32)


def srad_scales(image, n_t: int = 10, n_scales: int = 8, dt: float = 0.05,
                q0: float | None = None, roi=None) -> list[np.ndarray]:
    """Multi-scale SRAD series: scale k (k = 1..n_scales) is ``image`` after k * n_t
    iterations (Panigrahi et al. 2024, Experimental setup: n_t = 10, L = 8 scales)."""
    if isinstance(n_t, bool) or int(n_t) != n_t or n_t < 1:
        raise ValueError(f"n_t must be an integer >= 1, got {n_t!r}")
    if isinstance(n_scales, bool) or int(n_scales) != n_scales or n_scales < 1:
        raise ValueError(f"n_scales must be an integer >= 1, got {n_scales!r}")
    img = _check(image, n_t, dt, q0)
    scales = []
    for _ in range(int(n_scales)):
        img = _run(img, n_t, dt, q0, roi)
        scales.append((img - _EPS).astype(np.float32))
    return scales


def equivalent_number_of_looks(region: np.ndarray) -> float:
    """ENL = mean^2 / variance of a (homogeneous) region; higher = less speckle."""
    values = np.asarray(region, dtype=np.float64).ravel()
    if values.size < 2:
        raise ValueError("ENL needs a region of at least 2 pixels")
    var = values.var()
    return float("inf") if var == 0 else float(values.mean() ** 2 / var)


# --------------------------------------------------------------------------- reference


def _ref_speckle_scale(img: np.ndarray, q0: float | None, roi) -> float:
    """q0(t) as in :func:`_speckle_scale`, with plain Python sums."""
    if q0 is not None:
        return float(q0)
    values = [float(v) for v in (img if roi is None else img[roi]).ravel()]
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / len(values)
    return var**0.5 / mean


def _ref_coefficients(img, q0: float) -> list[list[float]]:
    """c(i, j) for every pixel (Eq. 33), one pixel at a time."""
    rows, cols = len(img), len(img[0])
    q0sq = max(q0 * q0, 1e-12)
    c = [[0.0] * cols for _ in range(rows)]
    for i in range(rows):
        for j in range(cols):
            v = img[i][j]
            dn = img[max(i - 1, 0)][j] - v
            ds = img[min(i + 1, rows - 1)][j] - v
            dw = img[i][max(j - 1, 0)] - v
            de = img[i][min(j + 1, cols - 1)] - v
            grad2 = (dn * dn + ds * ds + dw * dw + de * de) / (v * v)
            lap = (dn + ds + dw + de) / v
            q2 = (0.5 * grad2 - lap * lap / 16.0) / (1.0 + 0.25 * lap) ** 2
            c[i][j] = min(max(1.0 / (1.0 + (q2 - q0sq) / (q0sq * (1.0 + q0sq))), 0.0), 1.0)
    return c


def _ref_step(img, dt: float, q0: float) -> list[list[float]]:
    """One SRAD iteration (Eqs. 36-37), one pixel at a time."""
    rows, cols = len(img), len(img[0])
    c = _ref_coefficients(img, q0)
    out = [[0.0] * cols for _ in range(rows)]
    for i in range(rows):
        for j in range(cols):
            v = img[i][j]
            s, e = min(i + 1, rows - 1), min(j + 1, cols - 1)
            div = (c[s][j] * (img[s][j] - v) + c[i][j] * (img[max(i - 1, 0)][j] - v)
                   + c[i][e] * (img[i][e] - v) + c[i][j] * (img[i][max(j - 1, 0)] - v))
            out[i][j] = v + 0.25 * dt * div
    return out


def srad_reference(image, n_iter: int = 10, dt: float = 0.05, q0: float | None = None,
                   roi=None) -> np.ndarray:
    """Straightforward per-pixel loop version of :func:`srad` (same maths); used only
    as a correctness and speed reference."""
    img = _check(image, n_iter, dt, q0)
    for _ in range(int(n_iter)):
        scale = _ref_speckle_scale(img, q0, roi)
        img = np.array(_ref_step(img.tolist(), dt, scale))
    return (img - _EPS).astype(np.float32)
