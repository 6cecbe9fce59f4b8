"""``stylegan2-ada``: a class-conditional StyleGAN2 trained with adaptive discriminator augmentation.

Fedoruk et al. 2022 train StyleGAN2-ADA (Karras et al. 2020a, 2020b) on the training
images of their minority class and add 2,000 generated images to the training set;
they compare generated and real images with RMSE, SRE, SAM, PSNR and FID. Our network
is written from the two Karras papers (:mod:`bench.gan`): mapping network with a label
embedding, modulated/demodulated convolutions with noise, skip generator, residual
projection discriminator, non-saturating loss, lazy R1, generator EMA and ADA with the
r_t = 0.6 heuristic and the 'bgc' pipeline for grey images (every geometric op and brightness,
contrast, luma flip; hue and saturation are the identity on one channel). Left out, to fit a CPU budget: path-length regularisation and
style mixing (Karras et al. 2020a §3.2, 2019 §3.1) and truncation (ψ = 1, as for FID).

Training reads the training split only (resized to ``resolution``, pixels to [−1, 1]).
With ``resources["checkpoint_dir"]`` set (the augment stage's ``OUT/shards``) it writes
``checkpoint.npz`` there (every ``checkpoint_every`` steps and at the end, atomically) and
resumes from a checkpoint of the same configuration and data (raising ``steps`` continues
training); ``train_log.csv`` (losses, R1, p, r_t per step) goes to ``resources["log_dir"]``
(the stage's output folder; default: the checkpoint folder). Under Horovod only rank 0
writes either. Generated images are
G_ema's at ψ = 1, resized back to the dataset's size; each provenance record names the
class, seed, index, training step and a digest of the generator weights (and checkpoint).
A GAN image has no single source; ``source_id`` names the nearest training image of its
class in pixel RMSE (a memorisation check, the sample grid's left column, and the
reference image of the full-reference quality metrics).

Defaults are tiny so that the contract checks run in seconds; the ``quick`` and
``paper`` profiles set real sizes (see ``PAPER_PROFILE`` below for the paper's values).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np

from bench.finite import require_finite
from bench.gan import KARRAS_A, KARRAS_B
from bench.gan.ada import LABEL as ADA_LABEL
from bench.gan.ada import NOT_ON_GREY, OPS
from bench.plugins import Augmenter, Generated, ImageSet
from bench.typed import require

FEDORUK = "Fedoruk et al. 2022"
AUTO = KARRAS_B + ", the 'auto' configuration of its release (REFERENCES.md)"
TINY = "tiny by default (tests); "
COMPILE_FROM = 20  # steps from which tracing the step (~8 s at tiny sizes, here) beats eager (~1 s per step)

# The values the `paper` profile of params.yaml should carry (Fedoruk's setting at 256 px, the
# network sizes of Karras et al. 2020a, the auto configuration of 2020b).
PAPER_PROFILE = {"resolution": 256, "z_dim": 512, "w_dim": 512, "mapping_layers": 2, "channel_base": 16384,
                 "channel_max": 512, "batch_size": 16, "classes": "minority", "n_per_class": 2000}


@dataclass(frozen=True)
class StyleGAN2Params:
    resolution: int = field(default=16, metadata={
        "source": TINY + "a power of two >= 8; quick 32, paper 256 (" + FEDORUK + " resize to 256x256)"})
    conditional: bool = field(default=True, metadata={
        "source": "label embedding into the mapping network + projection discriminator (" + KARRAS_B + ")"})
    z_dim: int = field(default=16, metadata={"source": TINY + "paper 512 (" + KARRAS_A + ")"})
    w_dim: int = field(default=16, metadata={"source": TINY + "paper 512 (" + KARRAS_A + ")"})
    mapping_layers: int = field(default=2, metadata={
        "source": AUTO + ": 2 for limited data (" + KARRAS_A + " uses 8)"})
    channel_base: int = field(default=128, metadata={
        "source": TINY + "channels per block min(channel_base/res, channel_max); paper 16384 (" + KARRAS_A + ")"})
    channel_max: int = field(default=16, metadata={"source": TINY + "paper 512 (" + KARRAS_A + ")"})
    batch_size: int = field(default=4, metadata={
        "source": TINY + AUTO + ": max(min(4096 // res, 32), 1), 32 at 32 px, 16 at 256 px"})
    steps: int = field(default=1, metadata={
        "source": TINY + "minibatches in all; " + FEDORUK + " give no length (assumption per profile)"})
    learning_rate: float = field(default=0.0025, metadata={"source": AUTO})
    adam_beta1: float = field(default=0.0, metadata={"source": KARRAS_A + ", Appendix B"})
    adam_beta2: float = field(default=0.99, metadata={"source": KARRAS_A + ", Appendix B"})
    adam_epsilon: float = field(default=1e-8, metadata={"source": KARRAS_A + ", Appendix B"})
    r1_gamma: float | None = field(default=None, metadata={
        "source": "None = 0.0002 * resolution² / batch_size (" + AUTO + ")"})
    r1_interval: int = field(default=16, metadata={"source": KARRAS_A + " §4, lazy regularisation every 16"})
    ema_kimg: float | None = field(default=None, metadata={
        "source": "EMA half-life in thousands of images; None = 10 * batch_size / 32 (" + AUTO + ")"})
    ema_rampup: float | None = field(default=0.05, metadata={"source": AUTO + " (None: no ramp-up)"})
    ada_target: float = field(default=0.6, metadata={"source": KARRAS_B + " §3: r_t target 0.6"})
    ada_interval: int = field(default=4, metadata={"source": KARRAS_B + " §3: p adjusted every 4 minibatches"})
    ada_kimg: float = field(default=500.0, metadata={
        "source": KARRAS_B + " §3: p can go from 0 to 1 in 500k images"})
    ada_p_init: float = field(default=0.0, metadata={"source": KARRAS_B + " §3: p starts at 0"})
    ada_fixed: bool = field(default=False, metadata={"source": "ours: True keeps p at ada_p_init (ablation)"})
    augment_ops: list[str] = field(default_factory=lambda: list(OPS), metadata={
        "source": KARRAS_B + " Appendix B " + ADA_LABEL + " (bench.gan.ada)"})
    classes: Literal["each", "minority"] = field(default="each", metadata={
        "source": "which classes to generate; paper: minority (" + FEDORUK + ": 2000 COVID images)"})
    n_per_class: int = field(default=2, metadata={"source": TINY + "paper 2000 (" + FEDORUK + ")"})
    checkpoint_every: int = field(default=500, metadata={"source": "ours: steps between checkpoints"})

    def check(self, path: str) -> None:
        r = self.resolution
        require(r >= 8 and r & (r - 1) == 0, f"{path}.resolution", "must be a power of two >= 8")
        for key in ("z_dim", "w_dim", "channel_base", "channel_max", "batch_size", "r1_interval",
                    "ada_interval", "checkpoint_every"):
            require(getattr(self, key) >= 1, f"{path}.{key}", "must be >= 1")
        require(self.mapping_layers >= 1, f"{path}.mapping_layers", "must be >= 1")
        require(self.steps >= 0 and self.n_per_class >= 0, f"{path}.steps", "steps and n_per_class must be >= 0")
        require(self.learning_rate > 0 and self.adam_epsilon > 0, f"{path}.learning_rate", "must be > 0")
        require(0 <= self.adam_beta1 < 1 and 0 <= self.adam_beta2 < 1, f"{path}.adam_beta1", "must lie in [0, 1)")
        require(self.r1_gamma is None or self.r1_gamma >= 0, f"{path}.r1_gamma", "must be >= 0")
        require(self.ema_kimg is None or self.ema_kimg > 0, f"{path}.ema_kimg", "must be > 0")
        require(0 <= self.ada_p_init <= 1 and 0 < self.ada_target < 1, f"{path}.ada_p_init",
                "p must lie in [0, 1] and the target in (0, 1)")
        require(self.ada_kimg > 0, f"{path}.ada_kimg", "must be > 0")
        colour_only = sorted(set(self.augment_ops) & set(NOT_ON_GREY))
        require(not colour_only, f"{path}.augment_ops", f"{colour_only} act only on colour (chroma) and are the "
                "identity on grey images: leave them out (bench.gan.ada)")
        unknown = sorted(set(self.augment_ops) - set(OPS))
        require(not unknown, f"{path}.augment_ops", f"unknown {unknown}; known: {list(OPS)}")

    def gamma(self) -> float:
        return self.r1_gamma if self.r1_gamma is not None else 0.0002 * self.resolution**2 / self.batch_size

    def ema(self) -> float:
        return self.ema_kimg if self.ema_kimg is not None else 10.0 * self.batch_size / 32


class StyleGAN2ADA(Augmenter):
    Params = StyleGAN2Params
    name: ClassVar[str] = "stylegan2-ada"
    generative: ClassVar[bool] = True
    summary = ("StyleGAN2-ADA (ours, from the papers): conditional generator trained on the training split, "
               "N generated images per class (or the minority class).")
    paper = f"{FEDORUK}; {KARRAS_A}; {KARRAS_B}"

    def __init__(self, params):
        super().__init__(params)
        self.trainer = None
        self.run_info: dict = {}
        self._labels: np.ndarray | None = None

    def n_synthetic(self, n_train: int) -> int:
        if n_train == 0:
            return 0
        return self.params.n_per_class * (1 if self.params.classes == "minority" else 2)

    # ---------------------------------------------------------------- training

    def train_config(self, seed: int):
        from bench.gan.networks import Architecture
        from bench.gan.training import TrainConfig

        p = self.params
        arch = Architecture(resolution=p.resolution, n_classes=2 if p.conditional else 0, z_dim=p.z_dim,
                            w_dim=p.w_dim, mapping_layers=p.mapping_layers, channel_base=p.channel_base,
                            channel_max=p.channel_max, seed=seed)
        return TrainConfig(arch=arch, batch_size=p.batch_size, learning_rate=p.learning_rate,
                           adam_beta1=p.adam_beta1, adam_beta2=p.adam_beta2, adam_epsilon=p.adam_epsilon,
                           r1_gamma=p.gamma(), r1_interval=p.r1_interval, ema_kimg=p.ema(),
                           ema_rampup=p.ema_rampup, ada_target=p.ada_target, ada_interval=p.ada_interval,
                           ada_kimg=p.ada_kimg, ada_p_init=p.ada_p_init, ada_fixed=p.ada_fixed,
                           ada_ops=tuple(p.augment_ops), seed=seed)

    def fit(self, train: ImageSet, rng: np.random.Generator) -> None:
        """Train (or resume) on the training split; ``resources["checkpoint_dir"]`` keeps the checkpoint,
        ``resources["log_dir"]`` the CSV log."""
        import time

        from bench.gan.training import CHECKPOINT, TRAIN_LOG, Trainer

        seed = int(rng.integers(2**31 - 1))
        self._labels = np.asarray(train.labels).copy()
        if len(train) == 0:
            self.trainer = None
            return
        require_finite(train.images, train.ids, "stylegan2-ada: training data")  # before any TF op
        started = time.perf_counter()
        images = to_gan_pixels(train.images, self.params.resolution)
        self.trainer = Trainer(self.train_config(seed), images, self._labels,
                               compiled=self.params.steps >= COMPILE_FROM)
        work, logs = self.work_folders()
        self.trainer.run(self.params.steps, work, self.params.checkpoint_every, log_dir=logs)
        self.run_info = {"train_seed": seed, "steps": self.trainer.step, "kimg": self.trainer.images_seen / 1000,
                         "ada_p": self.trainer.ada.p, "ada_rt": self.trainer.ada.last_rt,
                         "r1_gamma": self.params.gamma(), "ema_kimg": self.params.ema(),
                         "train_seconds": round(time.perf_counter() - started, 2)}
        if work is not None:
            self.run_info["checkpoint"] = str(work / CHECKPOINT)
        if logs is not None:
            self.run_info["train_log"] = TRAIN_LOG

    def work_folders(self) -> tuple[Path | None, Path | None]:
        """(checkpoint folder, log folder) from the resources; (None, None) on a Horovod rank other than 0,
        which trains the same network but must not write the shared files."""
        workers = self.resources.get("workers")
        if workers is not None and not workers.is_root:
            return None, None
        work, logs = self.resources.get("checkpoint_dir"), self.resources.get("log_dir")
        work = Path(work) if work is not None else None
        return work, Path(logs) if logs is not None else work

    # ---------------------------------------------------------------- generation

    def target_labels(self, n: int) -> np.ndarray:
        """n labels over the classes to generate, in equal shares, sorted."""
        present, counts = np.unique(self._labels, return_counts=True)
        if self.params.classes == "minority":  # ties: the higher label (the positive class)
            present = present[[int(np.flatnonzero(counts == counts.min())[-1])]]
        return np.sort(present[np.arange(n) % len(present)]).astype(np.int64)

    def generate(self, train: ImageSet, n: int, rng: np.random.Generator) -> Generated:
        size = train.images.shape[1:]
        if n == 0 or len(train) == 0:
            return Generated(np.zeros((0, *size), np.float32), np.zeros(0, np.int64), [])
        if self.trainer is None or self._labels is None or len(self._labels) != len(train):
            self.fit(train, rng)
        seed = int(rng.integers(2**31 - 1))
        labels = self.target_labels(n)
        raw = self.trainer.generate(labels, seed)
        images = from_gan_pixels(raw, size)
        digest = self.weights_digest()
        record = {"method": self.name, "generator": "G_ema", "truncation_psi": 1.0, "seed": seed,
                  "step": self.trainer.step, "resolution": self.params.resolution,
                  "generator_sha256": digest, **self.checkpoint_record(),
                  "source": "nearest training image of the same class (pixel RMSE)"}
        nearest, rmse = nearest_sources(images, labels, train)
        provenance = [{**record, "class": int(c), "index": i, "source_id": train.ids[j], "source_rmse": float(e)}
                      for i, (c, j, e) in enumerate(zip(labels, nearest, rmse, strict=True))]
        self.run_info["generator_sha256"] = digest
        return Generated(images, labels, provenance)

    def checkpoint_record(self) -> dict:
        """The checkpoint's file name and sha256 (None without a work folder); the folder itself stays out
        of the per-image records so that they do not depend on the machine."""
        from bench.io import file_digest

        path = self.run_info.get("checkpoint")
        if not path or not Path(path).is_file():
            return {"checkpoint": None, "checkpoint_sha256": None}
        return {"checkpoint": Path(path).name, "checkpoint_sha256": file_digest(path)}

    def weights_digest(self) -> str:
        digest = hashlib.sha256()
        for v in self.trainer.G_ema.weights:
            digest.update(v.numpy().tobytes())
        return digest.hexdigest()


def to_gan_pixels(images: np.ndarray, resolution: int) -> np.ndarray:
    """Grey [0, 1] (N, H, W) → (N, R, R, 1) in [−1, 1] (area resampling when shrinking)."""
    import tensorflow as tf

    x = tf.convert_to_tensor(np.asarray(images, np.float32)[..., None])
    if x.shape[1:3] != (resolution, resolution):
        x = tf.image.resize(x, (resolution, resolution), method="area", antialias=True)
    return (x.numpy() * 2.0 - 1.0).astype(np.float32)


def from_gan_pixels(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, R, R) in [−1, 1] → grey [0, 1] float32 (N, *size), bilinear when the sizes differ."""
    import tensorflow as tf

    x = np.clip((np.asarray(images, np.float32) + 1.0) / 2.0, 0.0, 1.0)
    if x.shape[1:] != tuple(size):
        x = tf.image.resize(x[..., None], size, method="bilinear").numpy()[..., 0]
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def nearest_sources(images: np.ndarray, labels: np.ndarray, train: ImageSet,
                    chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """For each image, the index of the nearest training image of the same label and the RMSE to it
    (in chunks of ``chunk`` images, so 2,000 images at 224 px stay within a few hundred MB)."""
    ref = train.images.reshape(len(train), -1).astype(np.float64)
    ref_sq = (ref**2).sum(1)
    nearest, rmse = np.zeros(len(images), np.int64), np.zeros(len(images))
    for start in range(0, len(images), chunk):
        flat = images[start:start + chunk].reshape(-1, ref.shape[1]).astype(np.float64)
        d2 = (flat**2).sum(1)[:, None] + ref_sq[None, :] - 2.0 * flat @ ref.T
        d2[labels[start:start + chunk, None] != np.asarray(train.labels)[None, :]] = np.inf
        best = np.argmin(d2, axis=1)
        nearest[start:start + chunk] = best
        rmse[start:start + chunk] = np.sqrt(np.maximum(d2[np.arange(len(flat)), best], 0.0) / ref.shape[1])
    return nearest, rmse
