"""Mapping network, skip generator and residual projection discriminator (Karras et al. 2020a Fig. 7,
the configuration "F" they keep; class conditioning as in Karras et al. 2020b's conditional runs).

Images are one grey channel in [-1, 1]. Widths follow ch(res) = min(channel_base // res,
channel_max) (Karras et al. 2020a Appendix: 16384 / 512 at full size; augbench's quick
profile uses far smaller values to train on a CPU).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import tensorflow as tf

from bench.gan.layers import (
    EqualConv2D,
    EqualDense,
    MinibatchStd,
    StyleConv,
    ToImage,
    lrelu,
    normalize_2nd_moment,
)


@dataclass(frozen=True)
class Architecture:
    resolution: int  # a power of two ≥ 8
    n_classes: int  # 0 = unconditional
    z_dim: int
    w_dim: int
    mapping_layers: int
    channel_base: int
    channel_max: int
    mapping_lr_mul: float = 0.01  # Karras et al. 2019 Appendix C: mapping learning rate × 0.01
    mbstd_group: int = 4  # Karras et al. 2018 §3 / 2020a: groups of 4
    seed: int = 0

    def channels(self, res: int) -> int:
        return max(1, min(self.channel_base // res, self.channel_max))

    @property
    def log2(self) -> int:
        return int(round(math.log2(self.resolution)))

    def resolutions(self) -> list[int]:
        """8, 16, …, resolution (the blocks above the 4×4 base)."""
        return [2**k for k in range(3, self.log2 + 1)]


class Mapping(tf.keras.Model):
    """z (normalised) ⊕ embed(c) (normalised) → w through ``mapping_layers`` lrelu dense layers
    (Karras et al. 2019 §2; label embedding of the conditional StyleGAN2-ADA, Karras et al. 2020b)."""

    def __init__(self, arch: Architecture, **kwargs):
        super().__init__(**kwargs)
        self.arch = arch
        self.embed = EqualDense(arch.z_dim, seed=arch.seed + 11, name="embed") if arch.n_classes else None
        self.fcs = [EqualDense(arch.w_dim, lr_mul=arch.mapping_lr_mul, activation="lrelu",
                               seed=arch.seed + 12 + i, name=f"fc{i}") for i in range(arch.mapping_layers)]

    def call(self, z, c):
        x = normalize_2nd_moment(z)
        if self.embed is not None:
            x = tf.concat([x, normalize_2nd_moment(self.embed(c))], axis=-1)
        for fc in self.fcs:
            x = fc(x)
        return x


class Generator(tf.keras.Model):
    """Skip generator: learned 4×4 constant, two StyleConv per resolution (the first upsamples),
    and a ToImage at every resolution whose outputs are upsampled and summed (Karras et al. 2020a
    Fig. 7, "skip"). ``call(z, c, noise_seed)``: c is one-hot (B, n_classes)."""

    def __init__(self, arch: Architecture, **kwargs):
        super().__init__(**kwargs)
        self.arch = arch
        s = arch.seed + 100
        self.mapping = Mapping(arch, name="mapping")
        self.const = self.add_weight(name="const", shape=(4, 4, arch.channels(4)),
                                     initializer=tf.keras.initializers.RandomNormal(0.0, 1.0, seed=s))
        self.base = StyleConv(arch.channels(4), seed=s + 1, name="b4_conv")
        self.to_images = [ToImage(seed=s + 2, name="b4_img")]
        self.blocks = []
        for res in arch.resolutions():
            k = s + 10 * res
            self.blocks.append((StyleConv(arch.channels(res), up=True, seed=k, name=f"b{res}_conv0"),
                                StyleConv(arch.channels(res), seed=k + 3, name=f"b{res}_conv1")))
            self.to_images.append(ToImage(seed=k + 6, name=f"b{res}_img"))

    def synthesis(self, w, noise_seed=None):
        def seed(i):
            return None if noise_seed is None else tf.random.experimental.stateless_fold_in(noise_seed, i)

        x = tf.tile(self.const[None], [tf.shape(w)[0], 1, 1, 1])
        x = self.base([x, w], noise_seed=seed(0))
        img = self.to_images[0]([x, w])
        for i, ((conv0, conv1), to_image) in enumerate(zip(self.blocks, self.to_images[1:], strict=True)):
            x = conv0([x, w], noise_seed=seed(2 * i + 1))
            x = conv1([x, w], noise_seed=seed(2 * i + 2))
            img = tf.image.resize(img, 2 * tf.shape(img)[1:3], method="bilinear") + to_image([x, w])
        return img

    def call(self, z, c, noise_seed=None):
        return self.synthesis(self.mapping(z, c), noise_seed)


class Discriminator(tf.keras.Model):
    """Residual discriminator (Karras et al. 2020a Fig. 7, "resnet"): FromImage, then per resolution
    two 3×3 convolutions (the second halves the size) plus a 1×1 downsampled skip, summed and scaled
    by 1/√2; at 4×4 minibatch std, a 3×3 convolution and two dense layers. Conditional: projection
    (Miyato & Koyama 2018) of the last features onto an embedding of the label, divided by
    √cmap_dim, as in Karras et al. 2020b's conditional networks. ``call(x, c)`` → logits (B,)."""

    def __init__(self, arch: Architecture, **kwargs):
        super().__init__(**kwargs)
        self.arch = arch
        s = arch.seed + 5000
        top = arch.resolution
        self.from_image = EqualConv2D(arch.channels(top), 1, activation="lrelu", seed=s, name="from_img")
        self.blocks = []
        for res in reversed(arch.resolutions()):
            k = s + 10 * res
            self.blocks.append((EqualConv2D(arch.channels(res), 3, activation="lrelu", seed=k, name=f"b{res}_conv0"),
                                EqualConv2D(arch.channels(res // 2), 3, activation="lrelu", down=True, seed=k + 1,
                                            name=f"b{res}_conv1"),
                                EqualConv2D(arch.channels(res // 2), 1, use_bias=False, seed=k + 2,
                                            name=f"b{res}_skip")))
        self.mbstd = MinibatchStd(arch.mbstd_group, name="mbstd")
        self.conv = EqualConv2D(arch.channels(4), 3, activation="lrelu", seed=s + 1, name="b4_conv")
        self.fc = EqualDense(arch.channels(4), activation="lrelu", seed=s + 2, name="b4_fc")
        self.cmap_dim = arch.channels(4)
        self.out = EqualDense(self.cmap_dim if arch.n_classes else 1, seed=s + 3, name="out")
        self.cmap = EqualDense(self.cmap_dim, seed=s + 4, name="cmap") if arch.n_classes else None

    def call(self, x, c):
        x = self.from_image(x)
        for conv0, conv1, skip in self.blocks:
            y = skip(tf.nn.avg_pool2d(x, 2, 2, "VALID"))
            x = (conv1(conv0(x)) + y) * (1.0 / math.sqrt(2.0))
        x = self.conv(self.mbstd(x))
        x = self.out(self.fc(tf.reshape(x, [tf.shape(x)[0], -1])))
        if self.cmap is None:
            return x[:, 0]
        return tf.reduce_sum(x * self.cmap(c), axis=-1) / math.sqrt(self.cmap_dim)


__all__ = ["Architecture", "Discriminator", "Generator", "Mapping", "lrelu"]
