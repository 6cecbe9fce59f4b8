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
developed speckle at time t. Yu & Acton (where they introduce c(q) above) estimate
it as q0(t) = sqrt(var[z(t)]) / mean[z(t)] over a *homogeneous area* of the
image at time t, chosen by the user (or approximate it as q0(t) = q0 exp(-rho t)).

Choice made here (``roi=None``, the default): the homogeneous area is found
automatically, as the *minimum-coefficient-of-variation window*
(:func:`homogeneous_window`): among the 16 x 16 px windows on a half-overlapping grid
(stride 8 px, the last row and column of windows flush with the border), the one with
the smallest std/mean in the input image, leaving out windows in which more than 5 % of
the pixels sit at the image's minimum or maximum (clipped or padded background: black
borders, saturation, whose CoV ~ 0 is not speckle), windows whose mean lies in the darkest
5 % of the image's range (near-black areas blurred by resizing) and windows whose CoV is
below 0.02 (flat areas); see DARK_SHARE and MIN_COV. The window is chosen once, on the
input, and q0(t) is re-estimated over that same window of the evolving image at every
iteration, as the paper's definition does; q0(t) therefore shrinks as the speckle is
smoothed without a tuning constant rho. ``roi`` may instead be an index into the image
(a pair of slices or a boolean mask), or ``"image"`` for the whole image (on an image
with strong structure the whole-image ratio includes the contrast between tissues, so
it overestimates the speckle, c ~ 1 almost everywhere and SRAD acts close to a Gaussian
blur); a float ``q0`` overrides all of it with a constant.

Bias of the automatic choice: the minimum over many windows is an optimistic (low)
estimate of the speckle CoV, so SRAD smooths somewhat less than with a hand-picked
region; it keeps edges sharper for the same smoothing (tests/test_srad.py measures it).

Multi-scale series (Panigrahi et al. 2024, "Bus image filtering" and §Experimental
setup: "an iteration interval of n_t = 10 and a number of scales L = 8"): our reading is
that scale l (l = 1..L) is the image after l * n_t iterations of *one* SRAD run (scale 0
is the input), so the diffusion time of scale l is l * n_t * dt and the noise decreases
with l, as the paper says it does (:func:`srad_scales`). The paper does not say which
scale (or what combination of scales) goes on to the classifier, nor dt, nor how q0 is
estimated; we keep one image, scale L, the end of the series (:func:`srad_scale_image`;
``preprocess.srad_scale`` in params.yaml), dt = 0.05 (``preprocess.srad_dt``) and the
homogeneous window above.

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

import logging

import numpy as np

log = logging.getLogger("augbench")
_warned_tiny_q0 = False

_EPS = 1e-6  # added to the intensities so that I > 0 in the divisions by I
HOMOGENEOUS_WINDOW = 16  # px, side of the candidate windows for q0 (ours; the paper picks a region by hand)
CLIPPED_SHARE = 0.05  # a candidate window may hold at most this share of pixels at the image's min or max
# A candidate window whose mean lies in the darkest DARK_SHARE of the image's range (min + 5 % of max - min)
# is left out: near-black areas (outside the scan sector, acoustic shadow, black borders blurred by
# resizing, so not exactly at the minimum) hold no developed speckle, and their std/mean ~ 0 gives q0 ~ 0,
# c ~ 0 everywhere and no diffusion. On the BUSI working copy at 128 px (110 images) the old rule picked a
# window with CoV < 0.02 in 8 images; with this one the smallest chosen CoV is 0.038, and at 28 px nothing changes.
DARK_SHARE = 0.05
# ... and so is a window whose std/mean is below MIN_COV: a flat area (a uniform box, a text label) is not
# speckle either. 0.02 is about one grey level of 8-bit noise on mid-grey and below every window the rule
# above chose on BUSI (>= 0.038 at 128 px), while log-compressed speckle is far above it (phantom: 0.18-0.22).
MIN_COV = 0.02
TINY_Q0 = 1e-3  # q0 below this (at the first iteration) means c ~ 0: SRAD would barely change the image


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


def _window_starts(length: int, size: int) -> np.ndarray:
    """Start offsets of windows of ``size`` along an axis of ``length``: stride size // 2,
    plus one flush with the far border, so that the windows cover the axis."""
    last = length - size
    starts = np.arange(0, last + 1, max(size // 2, 1))
    return starts if starts[-1] == last else np.append(starts, last)


def _window_sums(table: np.ndarray, rows: np.ndarray, cols: np.ndarray, size: int) -> np.ndarray:
    """Sums over every window (rows[i], cols[j], size x size) from a summed-area ``table``
    (one leading row and column of zeros)."""
    r, c = rows[:, None], cols[None, :]
    return table[r + size, c + size] - table[r, c + size] - table[r + size, c] + table[r, c]


def _summed_area(values: np.ndarray) -> np.ndarray:
    table = np.zeros((values.shape[0] + 1, values.shape[1] + 1))
    np.cumsum(np.cumsum(values, axis=0), axis=1, out=table[1:, 1:])
    return table


def homogeneous_window(image, size: int = HOMOGENEOUS_WINDOW) -> tuple[slice, slice]:
    """The minimum-coefficient-of-variation window of ``image``: (row slice, column slice).

    Candidates: ``size`` x ``size`` windows (``size`` clipped to the image) on a grid of
    stride size // 2 whose last windows are flush with the border; a window with more than
    ``CLIPPED_SHARE`` of its pixels at the image's minimum or maximum is left out (clipped
    or padded background, not speckle), and so is one whose mean lies in the darkest
    ``DARK_SHARE`` of the image's range (near-black, no speckle) or whose std/mean is below
    ``MIN_COV`` (flat, no speckle). The one with the smallest std/mean wins (the first
    in row-major order on a tie). When every window is left out, the whole image is
    returned. Yu & Acton 2002 estimate q0 over a homogeneous area picked by hand; this is
    our automatic stand-in (summed-area tables, one pass over the image)."""
    img = np.asarray(image, dtype=np.float64)
    if isinstance(size, bool) or int(size) != size or size < 2:
        raise ValueError(f"homogeneous window size must be an integer >= 2 px, got {size!r}")
    if img.ndim != 2 or min(img.shape) < 1:
        raise ValueError(f"image must be a non-empty 2-D array, got shape {img.shape}")
    rows_n, cols_n = img.shape
    side = min(int(size), rows_n, cols_n)
    rows, cols = _window_starts(rows_n, side), _window_starts(cols_n, side)
    area = float(side * side)
    mean = _window_sums(_summed_area(img), rows, cols, side) / area
    var = np.maximum(_window_sums(_summed_area(img * img), rows, cols, side) / area - mean * mean, 0.0)
    clipped = (img <= img.min()) | (img >= img.max())
    share = _window_sums(_summed_area(clipped.astype(np.float64)), rows, cols, side) / area
    lo, hi = float(img.min()), float(img.max())
    ratio = np.sqrt(var) / np.where(mean > 0, mean, 1.0)
    usable = (share <= CLIPPED_SHARE) & (mean > 0) & (mean >= lo + DARK_SHARE * (hi - lo)) & (ratio >= MIN_COV)
    cov = np.where(usable, ratio, np.inf)
    if not np.isfinite(cov).any():
        return slice(0, rows_n), slice(0, cols_n)
    i, j = np.unravel_index(int(np.argmin(cov)), cov.shape)
    return slice(int(rows[i]), int(rows[i]) + side), slice(int(cols[j]), int(cols[j]) + side)


def _resolve_roi(img: np.ndarray, q0: float | None, roi):
    """The region q0(t) is measured over: None -> the minimum-CoV window of the input,
    "image" -> the whole image, else ``roi`` as given (slices or a boolean mask)."""
    if q0 is not None:
        return None
    if roi is None:
        return homogeneous_window(img)
    if isinstance(roi, str):
        if roi != "image":
            raise ValueError(f"roi must be None (automatic homogeneous window), 'image', a pair of slices or "
                             f"a boolean mask, got {roi!r}")
        return (slice(None), slice(None))
    if np.asarray(img[roi]).size < 2:
        raise ValueError("roi must select at least 2 pixels to estimate q0 = std/mean over it")
    return roi


def _speckle_scale(img: np.ndarray, q0: float | None, roi) -> float:
    """q0(t): the given constant, or std/mean of the current image over the region ``roi``."""
    if q0 is not None:
        return float(q0)
    region = img[roi]
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


def _warn_tiny_q0(img: np.ndarray, q0: float | None, roi) -> None:
    """Log (a warning once per process, then at debug level) when q0 is so small that SRAD
    will leave the image nearly as it is."""
    global _warned_tiny_q0
    scale = _speckle_scale(img, q0, roi)
    if scale >= TINY_Q0:
        return
    message = ("SRAD: q0 = %.2g (< %g) over the speckle region: the diffusion coefficient is ~0 and the image "
               "stays nearly unfiltered (a flat or near-black image? bench/data/srad.py, docs/srad.md)")
    (log.debug if _warned_tiny_q0 else log.warning)(message, scale, TINY_Q0)
    _warned_tiny_q0 = True


def _run(img: np.ndarray, n_iter: int, dt: float, q0: float | None, roi) -> np.ndarray:
    """``n_iter`` SRAD iterations on a float64 image with I > 0 (a new array)."""
    img = img.copy()
    ws = _Workspace(img.shape)
    if n_iter:
        _warn_tiny_q0(img, q0, roi)
    for _ in range(int(n_iter)):
        img, ws.out = _step(img, dt, _speckle_scale(img, q0, roi), ws), img
    return img


def srad(image, n_iter: int = 10, dt: float = 0.05, q0: float | None = None, roi=None) -> np.ndarray:
    """SRAD-filtered copy of ``image`` (2-D, non-negative), as float32.

    ``q0``: constant speckle scale; None re-estimates q0(t) = std/mean of the current image
    over ``roi`` at every iteration: None (default) = the minimum-CoV window of the input
    (:func:`homogeneous_window`), ``"image"`` = the whole image, or slices / a boolean mask.
    """
    img = _check(image, n_iter, dt, q0)
    return (_run(img, n_iter, dt, q0, _resolve_roi(img, q0, roi)) - _EPS).astype(np.float32)


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def srad_scales(image, n_t: int = 10, n_scales: int = 8, dt: float = 0.05,
                q0: float | None = None, roi=None) -> list[np.ndarray]:
    """Panigrahi et al. 2024's multi-scale SRAD series (§Experimental setup: iteration
    interval n_t = 10, L = 8 scales), our reading: scale l (l = 1..n_scales) is ``image``
    after l * n_t iterations of one SRAD run, i.e. snapshots every n_t iterations. The
    homogeneous window is chosen once, on the input, so scale l equals
    ``srad(image, l * n_t, dt, q0, roi)``."""
    n_t, n_scales = _positive_int(n_t, "n_t"), _positive_int(n_scales, "n_scales")
    img = _check(image, n_t, dt, q0)
    roi = _resolve_roi(img, q0, roi)
    scales = []
    for _ in range(n_scales):
        img = _run(img, n_t, dt, q0, roi)
        scales.append((img - _EPS).astype(np.float32))
    return scales


def srad_scale_image(image, n_t: int = 10, scale: int = 8, dt: float = 0.05) -> np.ndarray:
    """The one image the pipeline keeps from the series: scale ``scale`` (Panigrahi's L = 8,
    the end of their series), i.e. ``image`` after scale * n_t iterations with q0(t) over
    the automatic homogeneous window. Panigrahi et al. 2024 do not say which scale (or which
    combination of scales) they classify; see the module docstring."""
    n_t, scale = _positive_int(n_t, "n_t"), _positive_int(scale, "scale")
    return srad(image, n_iter=n_t * scale, dt=dt)


def equivalent_number_of_looks(region: np.ndarray) -> float:
    """ENL = mean^2 / variance of a (homogeneous) region; higher = less speckle."""
    values = np.asarray(region, dtype=np.float64).ravel()
    if values.size < 2:
        raise ValueError("ENL needs a region of at least 2 pixels")
    var = values.var()
    return float("inf") if var == 0 else float(values.mean() ** 2 / var)


# --------------------------------------------------------------------------- reference


def _ref_homogeneous_window(img: np.ndarray, size: int = HOMOGENEOUS_WINDOW) -> tuple[slice, slice]:
    """:func:`homogeneous_window` with plain Python sums over every candidate window."""
    rows_n, cols_n = img.shape
    side = min(size, rows_n, cols_n)
    lo, hi = float(img.min()), float(img.max())
    best, best_cov = (slice(0, rows_n), slice(0, cols_n)), float("inf")
    for r in _window_starts(rows_n, side).tolist():
        for c in _window_starts(cols_n, side).tolist():
            values = [float(v) for v in img[r:r + side, c:c + side].ravel()]
            mean = sum(values) / len(values)
            clipped = sum(1 for v in values if v <= lo or v >= hi) / len(values)
            if clipped > CLIPPED_SHARE or mean <= 0 or mean < lo + DARK_SHARE * (hi - lo):
                continue
            cov = max(sum(v * v for v in values) / len(values) - mean * mean, 0.0) ** 0.5 / mean
            if cov < MIN_COV:
                continue
            if cov < best_cov:
                best, best_cov = (slice(r, r + side), slice(c, c + side)), cov
    return best


def _ref_speckle_scale(img: np.ndarray, q0: float | None, roi) -> float:
    """q0(t) as in :func:`_speckle_scale`, with plain Python sums."""
    if q0 is not None:
        return float(q0)
    values = [float(v) for v in img[roi].ravel()]
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
    if q0 is None and roi is None:
        roi = _ref_homogeneous_window(img)
    elif q0 is None:
        roi = _resolve_roi(img, q0, roi)
    for _ in range(int(n_iter)):
        scale = _ref_speckle_scale(img, q0, roi)
        img = np.array(_ref_step(img.tolist(), dt, scale))
    return (img - _EPS).astype(np.float32)
