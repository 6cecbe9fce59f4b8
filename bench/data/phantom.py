"""Deterministic synthetic breast-ultrasound phantom: the embedded default dataset.

Each sample is a B-mode-like image of a breast cross-section with one lesion.
The image is built the way a scanner forms it, in four steps:

1. an *echogenicity map* (mean backscatter amplitude of the tissue): skin line,
   lobulated subcutaneous fat, textured fibroglandular layer, striated pectoral
   muscle, and the lesion with its posterior acoustic feature;
2. depth attenuation with an imperfect time-gain compensation (TGC);
3. multiplicative, fully developed speckle (Rayleigh amplitude of a smoothed
   complex Gaussian field, so the grain is a few pixels, wider than tall);
4. log compression into a fixed dynamic range, as a B-mode display does.

The class cues follow the ACR BI-RADS ultrasound lexicon (5th ed., 2013):

* shape / orientation: benign masses are oval and *parallel* (wider than
  tall); malignant ones are irregular and *not parallel* (taller than wide);
* margin: *circumscribed* (benign) versus *spiculated / angular* (malignant),
  with an optional *echogenic halo* around malignant masses;
* echo pattern: hypo-echoic, malignant more markedly so;
* posterior features: *enhancement* (benign, e.g. cysts and fibroadenomas)
  versus *shadowing* (malignant).

``difficulty`` (0..1) moves each class's parameters toward the other class,
randomly weakens or flips the posterior feature, lowers lesion contrast and
adds noise, so at 0 the classes are trivially separable and at 1 the cues
overlap heavily.

Every sample draws from its own child seed ``SeedSequence([seed, class, i])``:
sample ``i`` of a class is the same whatever the number of samples requested.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import skimage.io
from scipy import ndimage

from bench.errors import DataError
from bench.io import atomic_path

LABELS: tuple[str, ...] = ("benign", "malignant")
_CLASS_CODE = {"benign": 0, "malignant": 1}
_MIN_SIZE = 16


@dataclass(frozen=True)
class PhantomSample:
    image: np.ndarray  # float32 (size, size) in [0, 1]
    mask: np.ndarray  # bool (size, size), lesion region
    label: str  # "benign" | "malignant"
    id: str  # e.g. "benign-0007"


@dataclass(frozen=True)
class _Lesion:
    cx: float  # centre, fraction of the width
    cy: float  # centre, fraction of the depth
    a: float  # horizontal semi-axis, fraction of the size
    b: float  # vertical semi-axis, fraction of the size
    echo: float  # interior echogenicity (tissue ~0.7)
    posterior: float  # >0 enhancement, <0 shadowing (gain change below the lesion)
    halo: float  # echogenic-halo strength (0 = none)


# --------------------------------------------------------------------------- checks


def _check_args(size: int, difficulty: float, label: str = LABELS[0]) -> None:
    if label not in _CLASS_CODE:
        raise ValueError(f"label must be one of {LABELS}, got {label!r}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < _MIN_SIZE:
        raise ValueError(f"size must be an integer >= {_MIN_SIZE}, got {size!r}")
    if not np.isfinite(difficulty) or not 0.0 <= difficulty <= 1.0:
        raise ValueError(f"difficulty must be in [0, 1], got {difficulty!r}")


# --------------------------------------------------------------------------- fields


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(depth, lateral) coordinates in [0, 1], depth increasing downwards."""
    t = (np.arange(size, dtype=np.float64) + 0.5) / size
    return np.meshgrid(t, t, indexing="ij")


def _smooth_noise(rng: np.random.Generator, size: int, sigma) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian random field with correlation ``sigma`` (px)."""
    field = ndimage.gaussian_filter(rng.standard_normal((size, size)), sigma, mode="wrap")
    return field / (field.std() + 1e-12)


def _wavy(rng: np.random.Generator, x: np.ndarray, base: float, amp: float) -> np.ndarray:
    """A wavy tissue interface: depth ``base`` plus two random sinusoids of lateral position."""
    f = rng.uniform([0.5, 1.5], [1.5, 3.5])
    phase = rng.uniform(0, 2 * np.pi, 2)
    w = rng.uniform(0.4, 1.0, 2)
    return base + amp * (w[0] * np.sin(2 * np.pi * f[0] * x + phase[0])
                         + 0.5 * w[1] * np.sin(2 * np.pi * f[1] * x + phase[1]))


# --------------------------------------------------------------------------- tissue layers


def _fat_echo(rng: np.random.Generator, size: int) -> np.ndarray:
    """Subcutaneous fat: dark lobules separated by thin bright septa (Cooper's ligaments)."""
    field = _smooth_noise(rng, size, sigma=(size / 20, size / 12))
    septa = np.exp(-(field / 0.25) ** 2)  # bright curves along the field's zero crossings
    return 0.2 + 0.45 * septa


def _gland_echo(rng: np.random.Generator, size: int) -> np.ndarray:
    """Fibroglandular layer: bright, with horizontally stretched texture."""
    texture = _smooth_noise(rng, size, sigma=(1.0, size / 24))
    return np.clip(0.8 + 0.2 * texture, 0.3, 1.4)


def _muscle_echo(rng: np.random.Generator, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Pectoral muscle: low-echo band with oblique bright striations (fibre sheaths)."""
    period = rng.uniform(0.03, 0.05)
    tilt = rng.uniform(-0.15, 0.15)
    stripes = 0.5 + 0.5 * np.cos(2 * np.pi * (y + tilt * x) / period)
    return 0.2 + 0.5 * stripes**4


def _layers(rng: np.random.Generator, size: int) -> np.ndarray:
    """Echogenicity of the lesion-free breast: gel, skin, fat, gland, fascia, muscle."""
    y, x = _grid(size)
    skin = _wavy(rng, x[0], rng.uniform(0.035, 0.05), 0.004)
    fat = _wavy(rng, x[0], rng.uniform(0.2, 0.28), 0.03)
    muscle = _wavy(rng, x[0], rng.uniform(0.8, 0.86), 0.025)
    echo = np.where(y < fat, _fat_echo(rng, size), _gland_echo(rng, size))
    echo = np.where(y >= muscle, _muscle_echo(rng, y, x), echo)
    echo = np.where(y < skin - 0.02, 0.04, echo)  # coupling gel / stand-off: anechoic
    line = 1.0 / size  # interfaces are ~1-2 px thick specular reflectors
    echo += 0.9 * np.exp(-(((y - skin) / (1.2 * line)) ** 2))  # skin line
    echo += 0.5 * np.exp(-(((y - muscle) / line) ** 2))  # pectoral fascia
    return echo


# --------------------------------------------------------------------------- lesion


def _mix(own: float, other: float, m: float) -> float:
    return (1.0 - m) * own + m * other


def _sample_ratio(rng: np.random.Generator, label: str, m: float) -> float:
    """Width/height ratio. BI-RADS orientation: parallel (benign, 1.3-2) vs
    not parallel, taller-than-wide (malignant, 0.55-0.9); mixed in log space."""
    benign = np.log(rng.uniform(1.3, 2.0))
    malignant = np.log(rng.uniform(0.55, 0.9))
    own, other = (benign, malignant) if label == "benign" else (malignant, benign)
    return float(np.exp(_mix(own, other, m)))


def _posterior(rng: np.random.Generator, label: str, d: float) -> float:
    """BI-RADS posterior features: enhancement (benign, >0) vs shadowing (malignant, <0).
    Difficulty weakens the cue and sometimes flips it."""
    strength = rng.uniform(0.35, 0.6) * (1.0 - 0.6 * d * rng.uniform())
    sign = 1.0 if label == "benign" else -1.0
    if rng.uniform() < 0.3 * d:
        sign = -sign
    return sign * strength


def _sample_lesion(rng: np.random.Generator, label: str, d: float) -> _Lesion:
    m = 0.4 * d  # how far each class's parameters move toward the other class
    ratio = _sample_ratio(rng, label, m)
    r = rng.uniform(0.07, 0.115)  # geometric-mean radius, fraction of the size
    # Echo pattern: hypo-echoic; malignant markedly so (lexicon "hypoechoic" vs
    # near-"anechoic"); difficulty lowers the contrast to the surrounding tissue.
    benign_echo, malignant_echo = rng.uniform(0.1, 0.15), rng.uniform(0.035, 0.07)
    own, other = (benign_echo, malignant_echo) if label == "benign" else (malignant_echo, benign_echo)
    echo = _mix(_mix(own, other, m), 0.35, 0.4 * d)
    halo = rng.uniform(0.15, 0.35) if label == "malignant" and rng.uniform() < 0.5 else 0.0
    return _Lesion(cx=rng.uniform(0.32, 0.68), cy=rng.uniform(0.46, 0.54),
                   a=r * np.sqrt(ratio), b=r / np.sqrt(ratio), echo=echo,
                   posterior=_posterior(rng, label, d), halo=halo)


def _margin(rng: np.random.Generator, label: str, d: float, theta: np.ndarray) -> np.ndarray:
    """Relative boundary radius r(theta). BI-RADS margin: circumscribed (a smooth,
    nearly elliptic outline) vs not circumscribed - angular / spiculated (lobulation
    plus narrow radial spikes). Difficulty blends the two margin types. r is
    tabulated on 1024 angles and interpolated (periodically) at ``theta``."""
    m = 0.4 * d
    spiky = _mix(1.0, 0.0, m) if label == "malignant" else _mix(0.0, 1.0, m)
    table = np.linspace(-np.pi, np.pi, 1024, endpoint=False)
    harmonics = np.arange(2, 7)[:, None]
    amp = rng.uniform(0.0, 0.04, (5, 1)) + spiky * rng.uniform(0.0, 0.07, (5, 1))
    r = 1.0 + np.sum(amp * np.cos(harmonics * table + rng.uniform(0, 2 * np.pi, (5, 1))), axis=0)
    n_spikes = int(rng.integers(7, 14))
    angle, length = rng.uniform(-np.pi, np.pi, (n_spikes, 1)), rng.uniform(0.2, 0.6, (n_spikes, 1))
    r += spiky * np.sum(length * np.maximum(np.cos(table - angle), 0.0) ** 60, axis=0)
    return np.interp(theta, table, r, period=2 * np.pi)


def _lesion_geometry(rng, label, d, lesion: _Lesion, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Mask of the lesion and its normalised radius rho (1 on the boundary)."""
    y, x = _grid(size)
    u, v = (x - lesion.cx) / lesion.a, (y - lesion.cy) / lesion.b
    rho = np.hypot(u, v) / _margin(rng, label, d, np.arctan2(v, u))
    return rho <= 1.0, rho


def _posterior_column(mask: np.ndarray) -> np.ndarray:
    """Weight in [0, 1] of the acoustic column below the lesion (0 elsewhere)."""
    size = mask.shape[0]
    rows = np.arange(size)[:, None]
    covered = mask.any(axis=0)
    bottom = np.where(covered, size - 1 - np.argmax(mask[::-1], axis=0), size)
    below = (rows > bottom[None, :]).astype(np.float64)
    # Beam width blurs the column edges laterally; the effect builds up over a few px.
    return ndimage.gaussian_filter(below, sigma=(1.5, 1.0), mode="nearest")


def _add_lesion(echo, rng, label, d, lesion: _Lesion) -> tuple[np.ndarray, np.ndarray]:
    mask, rho = _lesion_geometry(rng, label, d, lesion, echo.shape[0])
    soft = ndimage.gaussian_filter(mask.astype(np.float64), 0.7)
    echo = echo * (1.0 - soft) + lesion.echo * soft
    if lesion.halo:
        echo = echo + lesion.halo * np.exp(-(((rho - 1.12) / 0.08) ** 2)) * (1.0 - soft)
    echo = echo * (1.0 + lesion.posterior * _posterior_column(mask))
    return echo, mask


# --------------------------------------------------------------------------- image formation


def _attenuation(rng: np.random.Generator, size: int, d: float) -> np.ndarray:
    """Depth attenuation left over after an imperfect TGC: exponential decay plus a
    slow gain ripple (one TGC slider set a little off)."""
    depth = (np.arange(size) + 0.5) / size
    alpha = rng.uniform(0.5, 1.0) + 0.5 * d
    ripple = 1.0 + 0.08 * np.sin(2 * np.pi * rng.uniform(0.5, 1.5) * depth + rng.uniform(0, 2 * np.pi))
    return (np.exp(-alpha * depth) * ripple)[:, None]


def _speckle(rng: np.random.Generator, size: int) -> np.ndarray:
    """Fully developed speckle: Rayleigh amplitude |g| of a smoothed circular complex
    Gaussian field g, normalised to unit RMS. The smoothing kernel stands in for the
    point-spread function, so the grain is a few px and wider (lateral) than tall."""
    psf = (0.8, 1.6)
    re = ndimage.gaussian_filter(rng.standard_normal((size, size)), psf, mode="wrap")
    im = ndimage.gaussian_filter(rng.standard_normal((size, size)), psf, mode="wrap")
    amp = np.hypot(re, im)
    return amp / np.sqrt(np.mean(amp**2))


def _log_compress(envelope: np.ndarray, dynamic_range_db: float) -> np.ndarray:
    """B-mode display mapping: 20 log10 of the envelope, the top 0 dB at amplitude 3,
    ``dynamic_range_db`` below it mapped linearly onto [0, 1]."""
    db = 20.0 * np.log10(np.maximum(envelope, 1e-8) / 3.0)
    return np.clip(1.0 + db / dynamic_range_db, 0.0, 1.0)


def render_phantom(label: str, size: int, rng: np.random.Generator,
                   difficulty: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """One phantom image (float32, (size, size), [0, 1]) and its lesion mask (bool)."""
    _check_args(size, difficulty, label)
    echo = _layers(rng, size)
    lesion = _sample_lesion(rng, label, difficulty)
    echo, mask = _add_lesion(echo, rng, label, difficulty, lesion)
    envelope = echo * _attenuation(rng, size, difficulty) * _speckle(rng, size)
    envelope = envelope + 0.03 * difficulty * np.abs(rng.standard_normal((size, size)))  # thermal noise
    image = _log_compress(envelope, dynamic_range_db=42.0 - 10.0 * difficulty)
    return image.astype(np.float32), mask


# --------------------------------------------------------------------------- dataset


def _counts(n_per_class: dict[str, int] | int) -> dict[str, int]:
    counts = dict.fromkeys(LABELS, n_per_class) if isinstance(n_per_class, int) else dict(n_per_class)
    unknown = set(counts) - set(LABELS)
    if unknown:
        raise ValueError(f"unknown class(es) {sorted(unknown)}; expected {LABELS}")
    for label, n in counts.items():
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"sample count for {label!r} must be an integer >= 0, got {n!r}")
    return counts


def sample_rng(seed: int, label: str, index: int) -> np.random.Generator:
    """The child generator of sample ``index`` (0-based) of ``label``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), _CLASS_CODE[label], int(index)]))


def generate_phantom(n_per_class: dict[str, int] | int, size: int = 128, seed: int = 0,
                     difficulty: float = 0.5) -> list[PhantomSample]:
    """``n_per_class`` samples of each class (an int: the same for both), benign first.

    Sample ids are ``"<label>-<n>"`` with ``n`` 1-based and zero-padded to 4 digits,
    matching the ``<label> (<n>).png`` file names that :func:`write_phantom` writes.
    """
    _check_args(size, difficulty)
    samples = []
    for label, n in _counts(n_per_class).items():
        for i in range(int(n)):
            image, mask = render_phantom(label, size, sample_rng(seed, label, i), difficulty)
            samples.append(PhantomSample(image, mask, label, f"{label}-{i + 1:04d}"))
    return samples


# --------------------------------------------------------------------------- BUSI-like layout


def _to_png(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:  # tmp keeps the ".png" suffix, which picks the format
        skimage.io.imsave(tmp, array, check_contrast=False)


def _file_number(sample: PhantomSample) -> int:
    match = re.fullmatch(rf"{re.escape(sample.label)}-(\d+)", sample.id)
    if match is None:
        raise ValueError(f"sample id {sample.id!r} is not of the form '{sample.label}-<n>'")
    return int(match.group(1))


def file_index(label: str, stem: str) -> int:
    """The 0-based sample index of the file ``<label> (<n>)`` (its stem) that :func:`write_phantom`
    wrote: ``n - 1``, the ``i`` of its child seed ``SeedSequence([seed, class, i])``."""
    match = re.fullmatch(rf"{re.escape(label)} \((\d+)\)", stem)
    if match is None or int(match.group(1)) < 1:
        raise ValueError(f"{stem!r} is not a phantom file name of the form '{label} (<n>)', n >= 1")
    return int(match.group(1)) - 1


def set_of(index: int, per_split: dict[str, int]) -> str:
    """The split of sample ``index`` of a class whose samples are laid out as consecutive sets, in
    the order of ``per_split``: ``{"train": 64, "val": 50, "test": 50}`` puts samples 0..63 in
    train, 64..113 in val and 114..163 in test."""
    start = 0
    for name, n in per_split.items():
        if start <= index < start + n:
            return name
        start += n
    raise ValueError(f"sample index {index} lies outside the {start} samples of {per_split}")


def write_phantom(root, samples: Iterable[PhantomSample]) -> None:
    """Write ``samples`` in the BUSI folder layout under ``root``:
    ``root/<label>/<label> (<n>).png`` (8-bit grey) and ``... (<n>)_mask.png``
    (0/255), each written atomically (temporary name in the folder, then rename)."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise DataError(root, "is not a folder", "choose a directory for the phantom dataset")
    seen: set[tuple[str, int]] = set()
    for sample in samples:
        key = (sample.label, _file_number(sample))
        if key in seen:
            raise DataError(root / sample.label, f"two samples would both be written as {sample.label} ({key[1]})",
                            "give every sample a distinct id")
        seen.add(key)
        stem = root / sample.label / f"{sample.label} ({key[1]})"
        pixels = np.round(np.clip(sample.image, 0.0, 1.0) * 255.0).astype(np.uint8)
        _to_png(stem.with_name(stem.name + ".png"), pixels)
        _to_png(stem.with_name(stem.name + "_mask.png"), sample.mask.astype(np.uint8) * 255)
