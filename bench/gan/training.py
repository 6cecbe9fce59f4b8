"""Training StyleGAN2-ADA: losses, lazy R1, EMA, checkpoints, resume and a CSV log.

Losses (Goodfellow et al. 2014, the non-saturating form that Karras et al. 2020a/b keep):

    L_D = E_z[softplus(D(A(G(z, c)), c))] + E_x[softplus(−D(A(x), c))]
    L_G = E_z[softplus(−D(A(G(z, c)), c))]

with A the ADA pipeline (:mod:`bench.gan.ada`) at the current p. R1 (Mescheder et al. 2018,
Eq. 9): γ/2 · E_x[‖∇_x D(A(x), c)‖²], taken through the augmentation to the real image.
Lazy regularisation (Karras et al. 2020a §4 and Appendix B): R1 only on every k-th
minibatch (k = 16), multiplied by k, with the discriminator's Adam adjusted by
c = k/(k+1): lr·c, β1^c, β2^c.

EMA of the generator (Karras et al. 2018 §4; 2020b's configuration): after every
step G_ema ← G + β(G_ema − G), β = 0.5^(B / n_ema), with the half-life
n_ema = ema_kimg·1000 images, ramped up as min(n_ema, images_seen · rampup).

All randomness of step t is drawn from stateless generators keyed on (seed, t), and
the minibatch indices from ``numpy.random.default_rng([seed, t])``. A checkpoint
holds every variable (G, D, G_ema, both optimisers), the step, the images seen and
the ADA state, so training resumed from it continues exactly as if never stopped.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import io
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from bench.errors import NumericalError
from bench.gan import ada
from bench.gan.networks import Architecture, Discriminator, Generator
from bench.io import load_npz, save_npz, write_text
from bench.quiet import progress

log = logging.getLogger("augbench.gan")

LOG_COLUMNS = ("step", "kimg", "loss_d", "loss_g", "r1", "p", "r_t", "d_real", "d_fake", "ema_beta", "seconds")
CHECKPOINT = "checkpoint.npz"
TRAIN_LOG = "train_log.csv"


@dataclass(frozen=True)
class TrainConfig:
    arch: Architecture
    batch_size: int
    learning_rate: float
    adam_beta1: float
    adam_beta2: float
    adam_epsilon: float
    r1_gamma: float
    r1_interval: int
    ema_kimg: float
    ema_rampup: float | None
    ada_target: float
    ada_interval: int
    ada_kimg: float
    ada_p_init: float
    ada_fixed: bool
    ada_ops: tuple[str, ...]
    seed: int


def softplus(x):
    return tf.nn.softplus(x)


def r1_penalty(discriminate, reals, gamma: float):
    """γ/2 · mean_i ‖∇_x D(x_i)‖² (Mescheder et al. 2018, Eq. 9), per-sample gradients of Σ D."""
    with tf.GradientTape() as tape:
        tape.watch(reals)
        logits = discriminate(reals)
        total = tf.reduce_sum(logits)
    grads = tape.gradient(total, reals)
    return 0.5 * gamma * tf.reduce_mean(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3])), logits


def ema_beta(batch: int, images_seen: int, ema_kimg: float, rampup: float | None) -> float:
    """β = 0.5^(B / n_ema) with n_ema = min(ema_kimg·1000, images_seen·rampup) (Karras et al. 2020b)."""
    n_ema = ema_kimg * 1000.0
    if rampup is not None:
        n_ema = min(n_ema, images_seen * rampup)
    return 0.5 ** (batch / max(n_ema, 1e-8))


def ema_update(ema_vars, vars_, beta) -> None:
    """θ_ema ← θ + β(θ_ema − θ) for each pair."""
    for e, v in zip(ema_vars, vars_, strict=True):
        e.assign(v + beta * (e - v))


def _adam(cfg: TrainConfig, lazy_interval: int | None):
    """Adam(lr, β1, β2, ε); for a lazily regularised network with c = k/(k+1) (Karras et al. 2020a App. B)."""
    c = lazy_interval / (lazy_interval + 1) if lazy_interval else 1.0
    return tf.keras.optimizers.Adam(cfg.learning_rate * c, beta_1=cfg.adam_beta1**c, beta_2=cfg.adam_beta2**c,
                                    epsilon=cfg.adam_epsilon, jit_compile=False)


def fingerprint(cfg: TrainConfig, images: np.ndarray, labels: np.ndarray) -> str:
    """What a checkpoint must match to be resumed: the configuration and the training data."""
    digest = hashlib.sha256(json.dumps(dataclasses.asdict(cfg), sort_keys=True, default=list).encode())
    digest.update(np.ascontiguousarray(images, np.float32).tobytes())
    digest.update(np.ascontiguousarray(labels, np.int64).tobytes())
    return digest.hexdigest()


class Trainer:
    """G, D, G_ema and their optimisers for one training set (images (N, R, R, 1) in [−1, 1])."""

    def __init__(self, cfg: TrainConfig, images: np.ndarray, labels: np.ndarray, compiled: bool = True):
        """``compiled``: run the step as a ``tf.function`` (tracing costs several seconds, worth it beyond
        a few dozen steps) or eagerly (tests, tiny runs)."""
        self.cfg = cfg
        self.images = np.asarray(images, np.float32)
        self.labels = np.asarray(labels, np.int64)
        self.fingerprint = fingerprint(cfg, self.images, self.labels)
        arch = cfg.arch
        self.G, self.D, self.G_ema = Generator(arch, name="G"), Discriminator(arch, name="D"), Generator(arch, name="G_ema")
        z, c = tf.zeros([2, arch.z_dim]), tf.zeros([2, max(arch.n_classes, 1)])
        for net in (self.G, self.G_ema):
            net(z, c)
        self.D(tf.zeros([2, arch.resolution, arch.resolution, 1]), c)
        ema_update(self.G_ema.weights, self.G.weights, 0.0)
        self.opt_g, self.opt_d = _adam(cfg, None), _adam(cfg, cfg.r1_interval)
        self.opt_g.build(self.G.trainable_variables)
        self.opt_d.build(self.D.trainable_variables)
        self.step, self.images_seen = 0, 0
        self.ada = ada.AdaController(cfg.ada_target, cfg.ada_interval, cfg.ada_kimg, cfg.batch_size,
                                     p=cfg.ada_p_init, fixed=cfg.ada_fixed)
        wrap = (lambda f: tf.function(f, autograph=False)) if compiled else (lambda f: f)
        self._steps = {r1: wrap(functools.partial(self._train_step, do_r1=r1)) for r1 in (True, False)}

    # ---------------------------------------------------------------- one step

    def _onehot(self, labels):
        return tf.one_hot(labels, max(self.cfg.arch.n_classes, 1))

    def _train_step(self, reals, real_c, fake_c, p, step, beta, do_r1: bool):
        cfg, batch = self.cfg, self.cfg.batch_size
        seed = tf.stack([tf.constant(cfg.seed, tf.int32), step])

        def key(i):
            return tf.random.experimental.stateless_fold_in(seed, i)

        def discriminate(x, c, k):
            return self.D(ada.augment(x, p, key(k), cfg.ada_ops), c)

        with tf.GradientTape() as tape:
            z = tf.random.stateless_normal([batch, cfg.arch.z_dim], key(1))
            d_fake = discriminate(self.G(z, fake_c, noise_seed=key(2)), fake_c, 3)
            if do_r1:
                r1, d_real = r1_penalty(lambda x: discriminate(x, real_c, 4), reals, cfg.r1_gamma)
            else:
                r1, d_real = tf.constant(np.nan, tf.float32), discriminate(reals, real_c, 4)
            loss_d = tf.reduce_mean(softplus(d_fake)) + tf.reduce_mean(softplus(-d_real))
            total_d = loss_d + (r1 * cfg.r1_interval if do_r1 else 0.0)
        self.opt_d.apply_gradients(zip(tape.gradient(total_d, self.D.trainable_variables),
                                       self.D.trainable_variables, strict=True))
        with tf.GradientTape() as tape:
            z = tf.random.stateless_normal([batch, cfg.arch.z_dim], key(5))
            loss_g = tf.reduce_mean(softplus(-discriminate(self.G(z, fake_c, noise_seed=key(6)), fake_c, 7)))
        self.opt_g.apply_gradients(zip(tape.gradient(loss_g, self.G.trainable_variables),
                                       self.G.trainable_variables, strict=True))
        ema_update(self.G_ema.weights, self.G.weights, beta)
        return {"loss_d": loss_d, "loss_g": loss_g, "r1": r1, "sign_sum": tf.reduce_sum(tf.sign(d_real)),
                "d_real": tf.reduce_mean(d_real), "d_fake": tf.reduce_mean(d_fake)}

    def _minibatch(self, step: int):
        rng = np.random.default_rng([self.cfg.seed, step])
        real = rng.integers(0, len(self.labels), self.cfg.batch_size)
        fake = rng.integers(0, len(self.labels), self.cfg.batch_size)  # fake labels follow the class frequencies
        return self.images[real], self._onehot(self.labels[real]), self._onehot(self.labels[fake])

    def train_step(self) -> dict:
        """One minibatch of D and G updates; returns the CSV row."""
        cfg, started = self.cfg, time.perf_counter()
        reals, real_c, fake_c = self._minibatch(self.step)
        self.images_seen += cfg.batch_size
        beta = ema_beta(cfg.batch_size, self.images_seen, cfg.ema_kimg, cfg.ema_rampup)
        do_r1 = cfg.r1_gamma > 0 and self.step % cfg.r1_interval == 0
        p = self.ada.p
        out = self._steps[do_r1](tf.constant(reals), real_c, fake_c, tf.constant(p, tf.float32),
                                 tf.constant(self.step, tf.int32), tf.constant(beta, tf.float32))
        out = {k: float(v) for k, v in out.items()}
        bad = [k for k in ("loss_d", "loss_g", "d_real", "d_fake") + (("r1",) if do_r1 else ()) if not np.isfinite(out[k])]
        if bad:  # the variables are already updated: nothing after this step can be trusted or saved
            raise NumericalError(f"StyleGAN2-ADA: {', '.join(f'{k} = {out[k]}' for k in bad)} at step "
                                 f"{self.step + 1} (p = {p:.3f}); the last checkpoint (if any) is from before "
                                 "it. Lower the learning rates or raise r1_gamma, then re-run")
        self.ada.observe(out.pop("sign_sum"), cfg.batch_size)
        self.step += 1
        return {"step": self.step, "kimg": self.images_seen / 1000.0, **out, "p": p, "r_t": self.ada.last_rt,
                "ema_beta": beta, "seconds": time.perf_counter() - started}

    # ---------------------------------------------------------------- checkpoints

    def variables(self) -> list[tf.Variable]:
        """Every variable that training changes, in a fixed order."""
        return [*self.G.weights, *self.D.weights, *self.G_ema.weights, *self.opt_g.variables,
                *self.opt_d.variables]

    def save(self, path: Path) -> None:
        """Write the checkpoint atomically (a temporary file renamed over ``path``)."""
        state = {"fingerprint": self.fingerprint, "step": self.step, "images_seen": self.images_seen,
                 "ada": self.ada.state()}
        arrays = {f"v{i:04d}": v.numpy() for i, v in enumerate(self.variables())}
        save_npz(path, state=np.array(json.dumps(state)), **arrays)

    def load(self, path: Path) -> bool:
        """Restore from ``path``; False (nothing changed) when it belongs to another configuration or data."""
        data = load_npz(path)
        state = json.loads(str(data["state"]))
        variables = self.variables()
        if state["fingerprint"] != self.fingerprint or len(data) - 1 != len(variables):
            return False
        for i, v in enumerate(variables):
            value = data[f"v{i:04d}"]
            if value.shape != tuple(v.shape):
                return False
        for i, v in enumerate(variables):
            v.assign(data[f"v{i:04d}"])
        self.step, self.images_seen = int(state["step"]), int(state["images_seen"])
        self.ada.load(state["ada"])
        return True

    # ---------------------------------------------------------------- the loop

    def run(self, steps: int, work_dir: Path | None = None, checkpoint_every: int = 0,
            stop_after: int | None = None, log_dir: Path | None = None) -> list[dict]:
        """Train until ``steps`` minibatches in all; with ``work_dir`` resume from its checkpoint (when it
        matches), append to the CSV log in ``log_dir`` (default: ``work_dir``; its rows after the
        checkpoint's step are dropped first) and checkpoint every ``checkpoint_every`` steps and at the
        end. ``stop_after`` ends the call early after that many steps (tests: an interrupted run)."""
        ckpt = work_dir / CHECKPOINT if work_dir else None
        log_file = (log_dir or work_dir) / TRAIN_LOG if (log_dir or work_dir) else None
        if ckpt is not None and ckpt.is_file():
            if self.load(ckpt):
                log.info("resumed from %s at step %d (p = %.3f)", ckpt, self.step, self.ada.p)
            else:
                log.warning("%s belongs to another configuration or training set; starting afresh", ckpt)
        if log_file is not None:
            _truncate_log(log_file, self.step)
        rows, done = [], 0
        with progress(total=steps, initial=min(self.step, steps), desc="StyleGAN2-ADA", unit="step") as bar:
            while self.step < steps and (stop_after is None or done < stop_after):
                rows.append(self.train_step())
                done += 1
                bar.update(1)
                bar.set_postfix_str(f"p {rows[-1]['p']:.3f}, loss_d {rows[-1]['loss_d']:.3f}, "
                                    f"loss_g {rows[-1]['loss_g']:.3f}", refresh=False)
                if log_file is not None:
                    _append_log(log_file, rows[-1])
                if ckpt is not None and (self.step == steps or (checkpoint_every and self.step % checkpoint_every == 0)):
                    self.save(ckpt)
        return rows

    def generate(self, labels: np.ndarray, seed: int, batch: int = 64) -> np.ndarray:
        """Images (N, R, R) in [−1, 1] from G_ema for ``labels``; latents and noise keyed on (seed, i)."""
        out = []
        for start in range(0, len(labels), batch):
            chunk = np.asarray(labels[start:start + batch])
            key = tf.constant([seed, start], tf.int32)
            z = tf.random.stateless_normal([len(chunk), self.cfg.arch.z_dim], key)
            noise = tf.random.experimental.stateless_fold_in(key, 1)
            img = self.G_ema(z, self._onehot(chunk), noise_seed=noise)
            out.append(img.numpy()[..., 0])
        size = self.cfg.arch.resolution
        return np.concatenate(out) if out else np.zeros((0, size, size), np.float32)


def _append_log(path: Path, row: dict) -> None:
    new = not path.is_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, LOG_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow({k: row[k] for k in LOG_COLUMNS})


def _truncate_log(path: Path, step: int) -> None:
    """Keep the log's rows up to ``step`` (those after the checkpoint are re-run)."""
    if not path.is_file():
        return
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= step]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, LOG_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())


__all__ = ["LOG_COLUMNS", "TrainConfig", "Trainer", "ema_beta", "ema_update", "r1_penalty"]
