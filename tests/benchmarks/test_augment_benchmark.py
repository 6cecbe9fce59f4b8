"""Speed of the classical augmenters and of image loading, as ratios to same-run references.

Every ratio is ``reference seconds / hot-path seconds`` measured in the same run (higher is
better). Images are phantom B-mode frames (``bench.data.phantom``), so the content, and with
it PNG compression and interpolation work, looks like ultrasound rather than noise.

``augment.geometric_rotation_vs_matmul``, ``augment.geometric_scaling_vs_matmul``,
``augment.geometric_flipping_vs_matmul``, ``augment.classical_vs_matmul``
    ``Augmenter.generate`` of the plugin with its default parameters, 32 synthetic images
    from 8 training images of 128 x 128 px (one pass of the augment stage in miniature,
    provenance records included). The augmenters are already per-image loops over
    ``scipy.ndimage.affine_transform``; there is no slower "naive" twin to compare with, so the
    reference is one NumPy matmul of two fixed 512 x 512 float64 matrices, on one BLAS thread
    (the augmenters and the decoder run on one core): the ratio is augmentation throughput in
    units of that matmul. Cheap checks: shapes, labels, the [0, 1]
    range, and rotation / flipping against ``scipy.ndimage.rotate`` / ``np.flip`` of the
    recorded source.
``loading.decode_png_vs_matmul``
    ``bench.data.loader.read_grey`` of 16 BUSI-like PNGs (256 x 256, RGB with equal channels)
    against the same NumPy matmul: decoding throughput in units of the matmul.
``loading.load_images_vs_pil_loop``
    ``load_images`` of the same 16 records at 128 px (decode, checks, float luminance,
    antialiased Lanczos resize) against the bare loop a script would write: PIL ``open``,
    ``convert("L")``, ``convert("F")``, ``resize(LANCZOS)``, divide by 255 (resized in float,
    as the loader does; PIL's 8-bit Lanczos differs by up to 5 grey levels). The ratio is near
    or below 1 by design: it measures what the loader's checks and float luminance cost on
    top of PIL, and drops if they grow. The results agree to 1e-4 (asserted).

No minimum ratio is asserted here; floors and the committed baseline live in
``tests/benchmarks/baseline.json``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from threadpoolctl import threadpool_limits

from bench import registry
from bench.data.loader import Record, load_images, read_grey
from bench.data.phantom import generate_phantom
from bench.plugins import ImageSet
from tests.benchmarks.conftest import paired_seconds

AUG_SIZE, N_SOURCES, N_SYNTHETIC = 128, 8, 32
# Flipping copies memory only (~20 µs an image): 32 images would time well below a millisecond,
# where scheduler noise dominates, so it generates more to take as long as the others.
N_SYNTHETIC_OF = {"geometric-flipping": 1024}
PNG_SIZE, N_PNG, LOAD_SIZE = 256, 16, 128
NP_REF = 512  # NumPy matmul reference: (512 x 512) @ (512 x 512), float64


def _np_matmul():
    """The NumPy reference op. Callers time it on one BLAS thread: the hot paths it is compared
    with run on one core too, so the ratio does not depend on how many cores BLAS finds free."""
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((NP_REF, NP_REF)), rng.standard_normal((NP_REF, NP_REF))
    return lambda: a @ b


# --------------------------------------------------------------------------- augmenters


@pytest.fixture(scope="module")
def train() -> ImageSet:
    samples = generate_phantom(N_SOURCES // 2, size=AUG_SIZE, seed=0)
    images = np.stack([s.image for s in samples]).astype(np.float32)
    labels = np.array([s.label == "malignant" for s in samples], np.int64)
    return ImageSet(images, labels, [s.id for s in samples])


def _check_rotation(gen, train):
    for img, rec in zip(gen.images[:4], gen.provenance[:4], strict=True):
        src = train.ids.index(rec["source_id"])
        want = ndimage.rotate(train.images[src], rec["angle_deg"], reshape=False, order=1, mode="reflect")
        np.testing.assert_allclose(img, np.clip(want, 0.0, 1.0), atol=1e-5)


def _check_flipping(gen, train):
    axes = {"horizontal": 1, "vertical": 0, "both": (0, 1)}
    for img, rec in zip(gen.images, gen.provenance, strict=True):
        src = train.ids.index(rec["source_id"])
        np.testing.assert_array_equal(img, np.flip(train.images[src], axes[rec["flip"]]))


AUGMENTERS = {  # plugin: (ratio name, extra check)
    "geometric-rotation": ("augment.geometric_rotation_vs_matmul", _check_rotation),
    "geometric-scaling": ("augment.geometric_scaling_vs_matmul", None),
    "geometric-flipping": ("augment.geometric_flipping_vs_matmul", _check_flipping),
    "classical": ("augment.classical_vs_matmul", None),
}


@pytest.mark.slow
@pytest.mark.benchmark(group="augment")
@pytest.mark.parametrize("method", list(AUGMENTERS))
def test_augmenter_vs_matmul(benchmark, record_ratio, train, method):
    aug = registry.create("augmenter", method)
    n_synthetic = N_SYNTHETIC_OF.get(method, N_SYNTHETIC)
    box = {}

    def hot():
        box["gen"] = aug.generate(train, n_synthetic, np.random.default_rng(0))

    with threadpool_limits(limits=1, user_api="blas"):  # as the hot path: one core

        fast, reference = paired_seconds(benchmark, hot, _np_matmul(), rounds=5)

    gen = box["gen"]
    assert gen.images.shape == (n_synthetic, AUG_SIZE, AUG_SIZE)
    assert gen.images.dtype == np.float32
    assert gen.images.min() >= 0.0 and gen.images.max() <= 1.0
    src = [train.ids.index(rec["source_id"]) for rec in gen.provenance]
    np.testing.assert_array_equal(gen.labels, train.labels[src])
    name, check = AUGMENTERS[method]
    if check is not None:
        check(gen, train)
    record_ratio(name, reference / fast,
                 what=f"{method}.generate, {n_synthetic} images of {AUG_SIZE} px from {N_SOURCES} "
                      f"vs one {NP_REF}x{NP_REF} float64 NumPy matmul")


# --------------------------------------------------------------------------- loading


@pytest.fixture(scope="module")
def png_records(tmp_path_factory) -> list[Record]:
    """16 phantom frames written as 8-bit RGB PNGs (equal channels, as BUSI stores them)."""
    root = tmp_path_factory.mktemp("busi_like")
    records = []
    for s in generate_phantom(N_PNG // 2, size=PNG_SIZE, seed=1):
        grey = np.round(s.image * 255.0).astype(np.uint8)
        folder = root / s.label
        folder.mkdir(exist_ok=True)
        path = folder / f"{s.id}.png"
        Image.fromarray(np.repeat(grey[..., None], 3, axis=-1), mode="RGB").save(path)
        records.append(Record(id=f"{s.label}/{s.id}", label=s.label, path=str(path)))
    return records


@pytest.mark.slow
@pytest.mark.benchmark(group="loading")
def test_decode_png_vs_matmul(benchmark, record_ratio, png_records):
    paths = [Path(r.path) for r in png_records]
    box = {}

    def hot():
        box["images"] = [read_grey(p) for p in paths]

    with threadpool_limits(limits=1, user_api="blas"):  # as the hot path: one core

        fast, reference = paired_seconds(benchmark, hot, _np_matmul(), rounds=5)

    for img, path in zip(box["images"], paths, strict=True):
        with Image.open(path) as im:
            want = np.asarray(im.getchannel(0), np.float32) / 255.0  # equal channels: luma = R
        assert img.shape == (PNG_SIZE, PNG_SIZE)
        np.testing.assert_allclose(img, want, atol=1e-6)
    record_ratio("loading.decode_png_vs_matmul", reference / fast,
                 what=f"read_grey of {N_PNG} {PNG_SIZE}x{PNG_SIZE} RGB PNGs vs one "
                      f"{NP_REF}x{NP_REF} float64 NumPy matmul")


def _pil_loop(records: list[Record], size: int) -> np.ndarray:
    """The bare loop: PIL decode, PIL grey conversion, PIL Lanczos resize in float."""
    out = np.empty((len(records), size, size), np.float32)
    for i, rec in enumerate(records):
        with Image.open(rec.path) as im:
            grey = im.convert("L").convert("F").resize((size, size), Image.Resampling.LANCZOS)
        out[i] = np.clip(np.asarray(grey, np.float32) / 255.0, 0.0, 1.0)
    return out


@pytest.mark.slow
@pytest.mark.benchmark(group="loading")
def test_load_images_vs_pil_loop(benchmark, record_ratio, png_records):
    box = {}

    def hot():
        box["images"] = load_images(png_records, LOAD_SIZE)

    def naive():
        box["naive"] = _pil_loop(png_records, LOAD_SIZE)

    fast, slow = paired_seconds(benchmark, hot, naive)

    assert box["images"].shape == (N_PNG, LOAD_SIZE, LOAD_SIZE)
    np.testing.assert_allclose(box["images"], box["naive"], atol=1e-4)
    record_ratio("loading.load_images_vs_pil_loop", slow / fast,
                 what=f"load_images of {N_PNG} {PNG_SIZE} px RGB PNGs to {LOAD_SIZE} px vs a bare "
                      "PIL open/convert('L')/convert('F')/resize(LANCZOS) loop")
