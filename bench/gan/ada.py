"""Adaptive discriminator augmentation (Karras et al. 2020b).

Every image the discriminator sees, real or generated, in every loss term, passes
through the same augmentation pipeline (§2.2: otherwise the augmentations "leak"
into the generator); each transform is applied to each image independently with
probability p (§2.3), and every transform is differentiable in the pixels, so the
generator's gradient flows through it.

The pipeline is Karras et al. 2020b's "bgc" (Appendix B: blit + geometric + colour; its
pseudocode figure, whose defaults the release's ``augment_pipeline`` also carries) for
one grey channel. Every op has probability multiplier 1, i.e. it is applied with
probability p, and they are composed in the paper's order:

blit (pixel blitting)
- ``xflip``: x -> -x with probability ½ (i ~ U{0, 1}) when applied;
- ``rotate90``: rotation by k·90°, k ~ U{0, 1, 2, 3};
- ``xint``: integer translation, (tx, ty) ~ U(-0.125, 0.125)² of the image size, rounded to whole px;

geometric
- ``scale``: isotropic scaling by s = 2^N(0, 0.2²) (lognormal(0, (0.2 ln 2)²));
- ``rotate``: arbitrary rotation θ ~ U(-π, π), twice: a pre-rotation before and a post-rotation
  after the anisotropic scaling, each with p_rot = 1 - sqrt(1 - p), so that P(pre or post) = p;
- ``aniso``: anisotropic scaling by (s, 1/s), s = 2^N(0, 0.2²);
- ``xfrac``: fractional translation, (tx, ty) ~ N(0, 0.125²) of the image size;

colour (pixel values in [-1, 1], the trainer's range; 0 is mid-grey)
- ``brightness``: add b ~ N(0, 0.2²);
- ``contrast``: multiply by c = 2^N(0, 0.5²), i.e. scale around 0, the centre of the pixel
  range (the paper's S3(c, c, c) acts on the colour vector, not around the image mean);
- ``lumaflip``: with probability ½ (i ~ U{0, 1}) when applied, the Householder reflection
  I - 2vvᵀ about the plane orthogonal to the luma axis v = (1, 1, 1)/√3; a grey pixel lies
  on v, so the reflection maps x -> -x (inversion around 0, the centre of the range).

Composed per image: out = f·c·(x + b) with f = ±1 the luma flip.

Not applicable to grey images: ``hue`` (rotation of the colour vector by θ ~ U(-π, π) around
the luma axis v) and ``saturation`` (scaling by s = 2^N(0, 1²) of the colour vector's
component orthogonal to v). A grey pixel (x, x, x) lies *on* v: the rotation about v leaves
it where it is and its component orthogonal to v is zero, so both are the identity on a
single channel, whatever is drawn; the release skips them for one-channel images too.
(``imgfilter``, ``noise`` and ``cutout`` are not part of "bgc".)

The geometric transforms are composed into one inverse matrix G⁻¹ per image (output pixel
-> input pixel, centred coordinates, x to the right, y down), each op's inverse multiplied
on the right in the order above (Appendix B), and the image is resampled once,
bilinearly, with reflected borders (Appendix B pads by reflection). The paper additionally
upsamples 2× with a sym6 wavelet low-pass filter before the resampling and downsamples
after it to suppress aliasing; we do not (a shrinking or rotating transform aliases a
little more here).

The controller (§3) measures r_t = E[sign(D_train)] on the real images the
discriminator trains on, and every ``interval`` minibatches moves p by
sign(r_t − target) · (batch · interval) / (speed_kimg · 1000), so p can cross
[0, 1] in speed_kimg thousand images (500k in the paper); p is clamped to [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import tensorflow as tf

PIPELINE = "bgc"  # Karras et al. 2020b Appendix B: blit + geometric + colour
BLIT = ("xflip", "rotate90", "xint")
GEOMETRIC = ("scale", "rotate", "aniso", "xfrac")
COLOUR = ("brightness", "contrast", "lumaflip")
OPS = BLIT + GEOMETRIC + COLOUR  # every op of "bgc" that acts on a grey image
NOT_ON_GREY = ("hue", "saturation")  # the rest of "bgc": the identity on a grey image (module docstring)
LABEL = ("'bgc' (Karras et al. 2020b Appendix B) for grey images: xflip, rotate90, xint, scale, rotate "
         "(pre and post), aniso, xfrac, brightness, contrast, lumaflip; hue and saturation are the identity "
         "on one channel")
# the per-image gates of draw(): "rotate" is two gates, the pre- and the post-rotation
STAGES = ("xflip", "rotate90", "xint", "scale", "rotate_pre", "aniso", "rotate_post", "xfrac",
          "brightness", "contrast", "lumaflip")

# Karras et al. 2020b Appendix B (and the release's augment_pipeline defaults).
XINT_MAX = 0.125  # integer translation range, relative to the image size
SCALE_STD = 0.2  # log2 std of isotropic scaling
ROTATE_MAX = 1.0  # arbitrary rotation range, x π (1 = full circle)
ANISO_STD = 0.2  # log2 std of anisotropic scaling
XFRAC_STD = 0.125  # std of fractional translation, relative to the image size
BRIGHTNESS_STD = 0.2
CONTRAST_STD = 0.5  # log2 std
MULTIPLIER = 1.0  # probability multiplier of every op in "bgc": each is applied with probability p


def _mirror(coord, size):
    """Reflect a (float) pixel coordinate into [0, size − 1] (period 2(size − 1))."""
    if size == 1:
        return tf.zeros_like(coord)
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
    """One minibatch's random numbers, kept apart from the maths so tests can fix them.

    ``apply``: stage (``STAGES``) -> bool (B,), whether that op is applied to the image. The
    values are drawn for every image whether applied or not (an op that is not applied is the
    identity); (B, 2) pairs are (x, y) in pixels."""

    apply: dict
    flip: tf.Tensor  # bool (B,): i of the x-flip
    quarter_turns: tf.Tensor  # int32 (B,): k of the 90° rotation
    xint: tf.Tensor  # (B, 2) whole pixels
    log2_scale: tf.Tensor
    theta_pre: tf.Tensor  # radians
    log2_aniso: tf.Tensor
    theta_post: tf.Tensor
    xfrac: tf.Tensor  # (B, 2) pixels
    brightness: tf.Tensor
    log2_contrast: tf.Tensor
    lumaflip: tf.Tensor  # bool (B,): i of the luma flip


def _shape(size) -> tuple[int, int]:
    return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))


def rotation_probability(p):
    """p_rot = 1 − sqrt(1 − p): the pre- and post-rotation each use it, so that
    P(pre or post) = 1 − (1 − p_rot)² = p (Karras et al. 2020b Appendix B)."""
    p = tf.cast(p, tf.float32)
    return 1.0 - tf.sqrt(tf.maximum(1.0 - MULTIPLIER * p, 0.0))


def draw(batch: int, size, p, seed, ops=OPS) -> Draws:
    """Stateless draws for ``batch`` images of ``size`` px (an int, or (height, width)):
    same ``seed`` (int32 (2,)), same draws. Only the ops in ``ops`` can be applied."""
    unknown = sorted(set(ops) - set(OPS))
    if unknown:
        raise ValueError(f"ADA ops {unknown} unknown; known: {list(OPS)}"
                         + (f" ({', '.join(sorted(set(unknown) & set(NOT_ON_GREY)))} act only on colour: the "
                            "identity on grey images)" if set(unknown) & set(NOT_ON_GREY) else ""))
    h, w = _shape(size)

    def key(i):
        return tf.random.experimental.stateless_fold_in(seed, i)

    p = tf.cast(p, tf.float32)
    p_rot = rotation_probability(p)
    u = tf.random.stateless_uniform([len(STAGES), batch], key(0))
    apply = {}
    for i, stage in enumerate(STAGES):
        op = "rotate" if stage.startswith("rotate_") else stage
        apply[stage] = (u[i] < (p_rot if op == "rotate" else MULTIPLIER * p)) & tf.constant(op in ops)
    size_xy = tf.constant([w, h], tf.float32)
    xint = tf.random.stateless_uniform([batch, 2], key(3), -XINT_MAX, XINT_MAX) * size_xy
    theta = tf.random.stateless_uniform([2, batch], key(5), -math.pi * ROTATE_MAX, math.pi * ROTATE_MAX)
    return Draws(apply=apply,
                 flip=tf.random.stateless_uniform([batch], key(1)) < 0.5,
                 quarter_turns=tf.random.stateless_uniform([batch], key(2), 0, 4, dtype=tf.int32),
                 xint=tf.round(xint),
                 log2_scale=tf.random.stateless_normal([batch], key(4)) * SCALE_STD,
                 theta_pre=theta[0],
                 log2_aniso=tf.random.stateless_normal([batch], key(6)) * ANISO_STD,
                 theta_post=theta[1],
                 xfrac=tf.random.stateless_normal([batch, 2], key(7)) * XFRAC_STD * size_xy,
                 brightness=tf.random.stateless_normal([batch], key(8)) * BRIGHTNESS_STD,
                 log2_contrast=tf.random.stateless_normal([batch], key(9)) * CONTRAST_STD,
                 lumaflip=tf.random.stateless_uniform([batch], key(10)) < 0.5)


# --------------------------------------------------------------------------- geometry


def _matrices(rows) -> tf.Tensor:
    """(B, 3, 3) from a 3 x 3 nested list of (B,) tensors or scalars."""
    batch = next(tf.shape(x)[0] for row in rows for x in row if isinstance(x, tf.Tensor))
    return tf.stack([tf.stack([tf.broadcast_to(tf.cast(x, tf.float32), [batch]) for x in row], -1)
                     for row in rows], -2)


def _scale(sx, sy):
    return _matrices([[sx, 0.0, 0.0], [0.0, sy, 0.0], [0.0, 0.0, 1.0]])


def _translate(tx, ty):
    return _matrices([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def _rotate(cos, sin):
    """Rotation by θ given (cos θ, sin θ): [[cos, −sin], [sin, cos]] on (x, y)."""
    return _matrices([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])


def inverse_transform(d: Draws) -> tf.Tensor:
    """G⁻¹ (B, 3, 3): output pixel -> input pixel in centred (x, y, 1) coordinates, the inverse of
    every applied op multiplied on the right in the paper's order (Appendix B)."""
    a = d.apply
    one = tf.ones_like(d.log2_scale)

    def gate(stage, value, identity):
        return tf.where(a[stage], value, identity * one)

    g = _scale(gate("xflip", tf.where(d.flip, -1.0, 1.0), 1.0), one)  # S(1 − 2i, 1) is its own inverse
    k = tf.where(a["rotate90"], d.quarter_turns, 0)
    # R(k·90°)⁻¹ with exact entries (cos, sin of k·90°), so quarter turns move whole pixels
    g = g @ _rotate(tf.gather([1.0, 0.0, -1.0, 0.0], k), -tf.gather([0.0, 1.0, 0.0, -1.0], k))
    g = g @ _translate(-gate("xint", d.xint[:, 0], 0.0), -gate("xint", d.xint[:, 1], 0.0))
    s = tf.pow(2.0, gate("scale", d.log2_scale, 0.0))
    g = g @ _scale(1.0 / s, 1.0 / s)
    theta = gate("rotate_pre", d.theta_pre, 0.0)
    g = g @ _rotate(tf.cos(theta), -tf.sin(theta))
    s = tf.pow(2.0, gate("aniso", d.log2_aniso, 0.0))
    g = g @ _scale(1.0 / s, s)
    theta = gate("rotate_post", d.theta_post, 0.0)
    g = g @ _rotate(tf.cos(theta), -tf.sin(theta))
    return g @ _translate(-gate("xfrac", d.xfrac[:, 0], 0.0), -gate("xfrac", d.xfrac[:, 1], 0.0))


def source_coordinates(d: Draws, h: int, w: int):
    """(rows, cols), each (B, H, W): where in the input every output pixel is sampled."""
    ys, xs = tf.meshgrid(tf.range(h, dtype=tf.float32) - (h - 1) / 2,
                         tf.range(w, dtype=tf.float32) - (w - 1) / 2, indexing="ij")
    g = inverse_transform(d)[:, None, None]  # (B, 1, 1, 3, 3)
    x_in = g[..., 0, 0] * xs + g[..., 0, 1] * ys + g[..., 0, 2]
    y_in = g[..., 1, 0] * xs + g[..., 1, 1] * ys + g[..., 1, 2]
    return y_in + (h - 1) / 2, x_in + (w - 1) / 2


# --------------------------------------------------------------------------- colour


def colour(images, d: Draws):
    """Brightness, contrast and luma flip on grey images in [-1, 1]: f·c·(x + b)."""
    b = tf.where(d.apply["brightness"], d.brightness, 0.0)
    c = tf.pow(2.0, tf.where(d.apply["contrast"], d.log2_contrast, 0.0))
    f = tf.where(d.apply["lumaflip"] & d.lumaflip, -1.0, 1.0)
    return (images + b[:, None, None, None]) * (c * f)[:, None, None, None]


def apply(images, d: Draws):
    """Augment images (B, H, W, C) with the draws ``d``: geometry, then colour (Appendix B)."""
    rows, cols = source_coordinates(d, images.shape[1], images.shape[2])
    return colour(bilinear_sample(images, rows, cols), d)


def augment(images, p, seed, ops=OPS):
    """The ADA pipeline on images (B, H, W, C) with probability ``p`` per transform and image."""
    return apply(images, draw(images.shape[0], (images.shape[1], images.shape[2]), p, seed, ops))


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
