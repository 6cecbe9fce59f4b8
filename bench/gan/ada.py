"""Adaptive discriminator augmentation (Karras et al. 2020b).

Every image the discriminator sees, real or generated, in every loss term, passes
through the same augmentation pipeline (§2.2: otherwise the augmentations "leak"
into the generator); each transform is applied to each image independently with
probability p (§2.3), and every transform is differentiable in the pixels, so the
generator's gradient flows through it.

Transforms and their distributions (Karras et al. 2020b Appendix B, the "bgc"
pipeline, reduced to one grey channel):

- x-flip: with probability ½ (applied with probability p);
- 90° rotation: k·90°, k uniform in {0, 1, 2, 3};
- integer translation: uniform in [−0.125, 0.125] of the image size, rounded to whole pixels;
- isotropic scaling: s = 2^N(0, 0.2²) (lognormal(0, (0.2 ln 2)²));
- brightness: add N(0, 0.2²);
- contrast: scale around the image mean by 2^N(0, 0.5²) (lognormal(0, (0.5 ln 2)²)).

The geometric ones are composed into one affine map per image and resampled
bilinearly with mirrored borders (Appendix B pads by reflection). We draw the map
from output to input coordinates directly: each distribution above is symmetric
(in log scale for s), so its inverse has the same law.

The controller (§3) measures r_t = E[sign(D_train)] on the real images the
discriminator trains on, and every ``interval`` minibatches moves p by
sign(r_t − target) · (batch · interval) / (speed_kimg · 1000), so p can cross
[0, 1] in speed_kimg thousand images (500k in the paper); p is clamped to [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import tensorflow as tf

OPS = ("xflip", "rotate90", "translate", "scale", "brightness", "contrast")

TRANSLATE_MAX = 0.125  # Karras et al. 2020b Appendix B
SCALE_STD = 0.2  # log2 std of isotropic scaling, Appendix B
BRIGHTNESS_STD = 0.2  # Appendix B
CONTRAST_STD = 0.5  # log2 std, Appendix B


def _mirror(coord, size):
    """Reflect a (float) pixel coordinate into [0, size − 1] (period 2(size − 1))."""
    period = 2.0 * (size - 1)
    c = tf.math.floormod(coord, period)
    return (size - 1) - tf.abs(c - (size - 1))


def bilinear_sample(images, rows, cols):
    """images (B, H, W, C); rows, cols (B, H, W) float source coordinates, mirrored at the borders.
    Differentiable in ``images`` (the coordinates carry no gradient)."""
    h, w = images.shape[1], images.shape[2]
    rows, cols = _mirror(rows, h), _mirror(cols, w)
    r0, c0 = tf.floor(rows), tf.floor(cols)
    fr, fc = (rows - r0)[..., None], (cols - c0)[..., None]
    r0 = tf.clip_by_value(tf.cast(r0, tf.int32), 0, h - 1)
    c0 = tf.clip_by_value(tf.cast(c0, tf.int32), 0, w - 1)
    r1, c1 = tf.minimum(r0 + 1, h - 1), tf.minimum(c0 + 1, w - 1)

    flat = tf.reshape(images, [-1, images.shape[3]])
    base = (tf.range(tf.shape(images)[0]) * (h * w))[:, None, None]

    def at(r, c):
        return tf.gather(flat, base + r * w + c)

    top = at(r0, c0) * (1 - fc) + at(r0, c1) * fc
    bottom = at(r1, c0) * (1 - fc) + at(r1, c1) * fc
    return top * (1 - fr) + bottom * fr


@dataclass(frozen=True)
class Draws:
    """One minibatch's random numbers (each (B,)), kept apart from the maths so tests can fix them."""

    apply: dict  # op → bool (B,): whether the op is applied to the image
    flip: tf.Tensor
    quarter_turns: tf.Tensor
    shift_rows: tf.Tensor
    shift_cols: tf.Tensor
    log2_scale: tf.Tensor
    brightness: tf.Tensor
    log2_contrast: tf.Tensor


def draw(batch: int, size: int, p, seed, ops=OPS) -> Draws:
    """Stateless draws for ``batch`` images of ``size`` px: same ``seed`` (int32 (2,)), same draws."""
    def key(i):
        return tf.random.experimental.stateless_fold_in(seed, i)

    u = tf.random.stateless_uniform([len(OPS), batch], key(0))
    apply = {op: (u[i] < p) & tf.constant(op in ops) for i, op in enumerate(OPS)}
    shifts = tf.random.stateless_uniform([2, batch], key(3), -TRANSLATE_MAX, TRANSLATE_MAX) * size
    return Draws(apply=apply,
                 flip=tf.random.stateless_uniform([batch], key(1)) < 0.5,
                 quarter_turns=tf.random.stateless_uniform([batch], key(2), 0, 4, dtype=tf.int32),
                 shift_rows=tf.round(shifts[0]), shift_cols=tf.round(shifts[1]),
                 log2_scale=tf.random.stateless_normal([batch], key(4)) * SCALE_STD,
                 brightness=tf.random.stateless_normal([batch], key(5)) * BRIGHTNESS_STD,
                 log2_contrast=tf.random.stateless_normal([batch], key(6)) * CONTRAST_STD)


def _geometry(d: Draws, h: int, w: int):
    """Source coordinates (B, H, W) of every output pixel under the drawn flips, turns, shifts and scales."""
    rows, cols = tf.meshgrid(tf.range(h, dtype=tf.float32) - (h - 1) / 2,
                             tf.range(w, dtype=tf.float32) - (w - 1) / 2, indexing="ij")
    rows, cols = rows[None], cols[None]

    def where(mask, a, b):
        return tf.where(mask[:, None, None], a, b)

    cols = where(d.apply["xflip"] & d.flip, -cols, cols)
    k = tf.where(d.apply["rotate90"], d.quarter_turns, 0)
    for turn in (1, 2, 3):  # rotate the sampling grid by turn·90°
        angle = turn * math.pi / 2
        cos, sin = round(math.cos(angle)), round(math.sin(angle))
        r_new, c_new = cos * rows - sin * cols, sin * rows + cos * cols
        rows, cols = where(k == turn, r_new, rows), where(k == turn, c_new, cols)
    shift = d.apply["translate"]
    rows = rows + tf.where(shift, d.shift_rows, 0.0)[:, None, None]
    cols = cols + tf.where(shift, d.shift_cols, 0.0)[:, None, None]
    scale = tf.pow(2.0, tf.where(d.apply["scale"], d.log2_scale, 0.0))[:, None, None]
    return rows * scale + (h - 1) / 2, cols * scale + (w - 1) / 2


def apply(images, d: Draws):
    """Augment images (B, H, W, C) with the draws ``d``."""
    h, w = images.shape[1], images.shape[2]
    rows, cols = _geometry(d, h, w)
    x = bilinear_sample(images, rows, cols)
    x = x + tf.where(d.apply["brightness"], d.brightness, 0.0)[:, None, None, None]
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    contrast = tf.pow(2.0, tf.where(d.apply["contrast"], d.log2_contrast, 0.0))[:, None, None, None]
    return (x - mean) * contrast + mean


def augment(images, p, seed, ops=OPS):
    """The ADA pipeline on images (B, H, W, C) with probability ``p`` per transform and image."""
    return apply(images, draw(images.shape[0], images.shape[1], p, seed, ops))


@dataclass
class AdaController:
    """p and its heuristic r_t (Karras et al. 2020b §3, Eq. for r_t; target 0.6, interval 4, 500k images).

    ``observe(sign_sum, count)`` once per minibatch with Σ sign(D(real)) and the number of reals;
    every ``interval`` minibatches it updates ``p`` and ``last_rt``. ``fixed`` keeps p constant."""

    target: float = 0.6
    interval: int = 4
    speed_kimg: float = 500.0
    batch: int = 32
    p: float = 0.0
    fixed: bool = False
    sign_sum: float = 0.0
    count: int = 0
    minibatches: int = 0
    last_rt: float = float("nan")

    def observe(self, sign_sum: float, count: int) -> None:
        self.sign_sum += float(sign_sum)
        self.count += int(count)
        self.minibatches += 1
        if self.minibatches % self.interval == 0:
            self.last_rt = self.sign_sum / max(self.count, 1)
            if not self.fixed:
                sign = (self.last_rt > self.target) - (self.last_rt < self.target)
                step = sign * self.batch * self.interval
                self.p = min(1.0, max(0.0, self.p + step / (self.speed_kimg * 1000.0)))
            self.sign_sum, self.count = 0.0, 0

    def state(self) -> dict:
        return {"p": self.p, "sign_sum": self.sign_sum, "count": self.count,
                "minibatches": self.minibatches, "last_rt": self.last_rt}

    def load(self, state: dict) -> None:
        self.p, self.sign_sum, self.count = float(state["p"]), float(state["sign_sum"]), int(state["count"])
        self.minibatches, self.last_rt = int(state["minibatches"]), float(state["last_rt"])
