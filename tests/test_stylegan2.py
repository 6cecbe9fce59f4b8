"""StyleGAN2-ADA (bench.gan, methods.augment.stylegan2): the maths of its parts, ADA's controller,
exact resume from a checkpoint, and the plugin contract."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from bench import contract, registry
from bench.errors import ConfigError
from bench.gan import ada
from bench.gan.layers import ModulatedConv2D, demodulation
from bench.gan.networks import Architecture, Generator
from bench.gan.training import (
    CHECKPOINT,
    TRAIN_LOG,
    TrainConfig,
    Trainer,
    ema_beta,
    ema_update,
    r1_penalty,
)
from methods.augment.stylegan2 import StyleGAN2ADA, StyleGAN2Params

pytestmark = pytest.mark.filterwarnings("ignore:non-integer arguments to randrange:DeprecationWarning")

NAME = "stylegan2-ada"
RNG_SEED = 1234  # the seed of the rng fixture (tests/conftest.py) for this module


# --------------------------------------------------------------------------- modulated convolution


def test_demodulated_convolution_keeps_unit_variance(rng):
    """Karras et al. 2020a Eq. 2-3: for i.i.d. unit-variance input, demodulated outputs have unit variance,
    whatever the styles and weights; without demodulation they do not."""
    x = tf.constant(rng.standard_normal((16, 24, 24, 48)), tf.float32)
    w = tf.constant(rng.standard_normal((16, 8)) * 3.0, tf.float32)
    for demod in (True, False):
        layer = ModulatedConv2D(32, 3, demodulate=demod, seed=5)
        y = layer([x, w]).numpy()[:, 1:-1, 1:-1, :]  # SAME padding: the border sees fewer inputs
        variance = y.var(axis=(0, 1, 2))
        if demod:
            np.testing.assert_allclose(variance.mean(), 1.0, atol=0.03)
            assert np.abs(variance - 1).max() < 0.15
        else:
            assert abs(variance.mean() - 1.0) > 0.3


def test_modulation_on_activations_equals_modulated_weights(rng):
    """The activation-scaling form equals convolving each sample with its own w''_ijk (Eq. 1 and 3)."""
    x = tf.constant(rng.standard_normal((3, 6, 6, 4)), tf.float32)
    w = tf.constant(rng.standard_normal((3, 5)), tf.float32)
    layer = ModulatedConv2D(2, 3, seed=1)
    y = layer([x, w]).numpy()
    s = layer.styles(w).numpy()
    weight = layer.weight.numpy() * layer.gain
    for b in range(3):
        w1 = weight * s[b][None, None, :, None]  # Eq. 1
        w2 = w1 / np.sqrt((w1**2).sum(axis=(0, 1, 2), keepdims=True) + 1e-8)  # Eq. 3
        ref = tf.nn.conv2d(x[b:b + 1], w2.astype(np.float32), 1, "SAME").numpy()[0]
        np.testing.assert_allclose(y[b], ref, atol=1e-5)
    np.testing.assert_allclose(demodulation(tf.constant(weight), tf.constant(s)).numpy()[0],
                               1 / np.sqrt((weight**2 * s[0][None, None, :, None] ** 2).sum(axis=(0, 1, 2)) + 1e-8),
                               rtol=1e-5)


def test_modulated_conv_serialises():
    layer = ModulatedConv2D(8, 3, demodulate=False, seed=4)
    again = ModulatedConv2D.from_config(layer.get_config())
    assert (again.filters, again.kernel, again.demodulate, again.seed) == (8, 3, False, 4)


# --------------------------------------------------------------------------- ADA


def _feed(ctrl: ada.AdaController, sign: float, minibatches: int) -> list[float]:
    ps = []
    for _ in range(minibatches):
        ctrl.observe(sign * ctrl.batch, ctrl.batch)
        ps.append(ctrl.p)
    return ps


def test_ada_p_rises_when_d_overfits_and_falls_when_not():
    """Karras et al. 2020b §3: r_t = E[sign(D(real))] above 0.6 raises p, below lowers it, by
    B·interval/(500k) per adjustment, within [0, 1]."""
    ctrl = ada.AdaController(target=0.6, interval=4, speed_kimg=500, batch=32)
    rising = _feed(ctrl, +1.0, 400)  # the discriminator is sure of every real image: r_t = 1
    assert ctrl.last_rt == 1.0 and np.all(np.diff(rising) >= 0)
    assert ctrl.p == pytest.approx(100 * 32 * 4 / 500_000)
    falling = _feed(ctrl, 0.2, 200)  # r_t = 0.2 < 0.6
    assert np.all(np.diff(falling) <= 0) and ctrl.p == pytest.approx(50 * 32 * 4 / 500_000)
    _feed(ctrl, -1.0, 400)
    assert ctrl.p == 0.0  # clamped
    fixed = ada.AdaController(batch=32, p=0.3, fixed=True)
    _feed(fixed, 1.0, 40)
    assert fixed.p == 0.3 and fixed.last_rt == 1.0


def test_ada_state_round_trips():
    ctrl = ada.AdaController(batch=8)
    _feed(ctrl, 1.0, 6)  # one adjustment after 4 minibatches (+8·4/500k), then 2 minibatches of 8 reals
    assert ctrl.state() == pytest.approx({"p": 8 * 4 / 500_000, "sign_sum": 16.0, "count": 16, "minibatches": 6,
                                          "last_rt": 1.0})
    again = ada.AdaController(batch=8)
    again.load(ctrl.state())
    assert again.state() == ctrl.state()
    assert _feed(again, 1.0, 2) == _feed(ctrl, 1.0, 2) == [8 * 4 / 500_000, 2 * 8 * 4 / 500_000]


def test_augment_is_identity_at_p0_and_exact_for_flips_and_quarter_turns(rng):
    x = tf.constant(rng.standard_normal((8, 10, 10, 1)), tf.float32)
    seed = tf.constant([3, 4], tf.int32)
    np.testing.assert_allclose(ada.augment(x, 0.0, seed).numpy(), x.numpy(), atol=1e-5)
    y = ada.augment(x, 1.0, seed, ops=("xflip", "rotate90")).numpy()
    for b in range(8):
        candidates = [np.rot90(v, k, axes=(0, 1)) for v in (x[b].numpy(), x[b].numpy()[:, ::-1]) for k in range(4)]
        assert min(np.abs(y[b] - c).max() for c in candidates) < 1e-5


def test_augment_is_differentiable_and_seeded(rng):
    x = tf.constant(rng.standard_normal((4, 8, 8, 1)), tf.float32)
    seed = tf.constant([1, 2], tf.int32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(ada.augment(x, 1.0, seed) ** 2)
    grad = tape.gradient(total, x)
    assert grad is not None and float(tf.reduce_sum(tf.abs(grad))) > 0
    y = ada.augment(x, 0.7, seed).numpy()
    np.testing.assert_array_equal(y, ada.augment(x, 0.7, seed).numpy())  # stateless: the seed fixes the draw
    assert not np.allclose(y, x.numpy(), atol=1e-3)  # p = 0.7 does change the images
    assert not np.allclose(y, ada.augment(x, 0.7, tf.constant([1, 3], tf.int32)).numpy(), atol=1e-3)


def test_augment_translation_shifts_by_whole_pixels():
    x = tf.reshape(tf.range(64, dtype=tf.float32), [1, 8, 8, 1])
    d = ada.draw(1, 8, 1.0, tf.constant([0, 0], tf.int32), ops=("xint",))
    d = dataclasses.replace(d, xint=tf.constant([[2.0, -1.0]]))  # (tx, ty): content moves 2 right, 1 up
    y = ada.apply(x, d).numpy()[0, :, :, 0]
    np.testing.assert_allclose(y[2:6, 2:6], x.numpy()[0, 3:7, 0:4, 0], atol=1e-5)  # out[r, c] = in[r+1, c-2]


# --------------------------------------------------------------------------- R1 and EMA


def test_r1_penalty_matches_a_hand_computation(rng):
    """D(x) = Σ a·x + ½Σx²: ∇_x D = a + x, so R1 = γ/2 · mean_i ‖a + x_i‖² (Mescheder et al. 2018 Eq. 9)."""
    a = tf.constant(rng.standard_normal((1, 4, 4, 1)), tf.float32)
    x = tf.constant(rng.standard_normal((3, 4, 4, 1)), tf.float32)

    def toy(images):
        return tf.reduce_sum(a * images, axis=[1, 2, 3]) + 0.5 * tf.reduce_sum(images**2, axis=[1, 2, 3])

    penalty, logits = r1_penalty(toy, x, gamma=0.4)
    expected = 0.5 * 0.4 * np.mean(((a.numpy() + x.numpy()) ** 2).sum(axis=(1, 2, 3)))
    assert float(penalty) == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose(logits.numpy(), toy(x).numpy())


def test_ema_update_and_half_life():
    e, v = tf.Variable([1.0, 4.0]), tf.Variable([3.0, 0.0])
    ema_update([e], [v], 0.75)
    np.testing.assert_allclose(e.numpy(), [3.0 + 0.75 * (1.0 - 3.0), 0.0 + 0.75 * 4.0])
    beta = ema_beta(32, 10**6, ema_kimg=10.0, rampup=0.05)
    assert beta == pytest.approx(0.5 ** (32 / 10_000))
    assert beta ** (10_000 / 32) == pytest.approx(0.5)  # the half-life is ema_kimg thousand images
    assert ema_beta(32, 1000, ema_kimg=10.0, rampup=0.05) == pytest.approx(0.5 ** (32 / 50))  # ramp-up
    assert ema_beta(32, 1000, ema_kimg=10.0, rampup=None) == pytest.approx(beta)


# --------------------------------------------------------------------------- networks and training


def _config(**changes) -> TrainConfig:
    arch = Architecture(resolution=8, n_classes=2, z_dim=8, w_dim=8, mapping_layers=2, channel_base=64,
                        channel_max=8, seed=3)
    cfg = TrainConfig(arch=arch, batch_size=4, learning_rate=0.0025, adam_beta1=0.0, adam_beta2=0.99,
                      adam_epsilon=1e-8, r1_gamma=0.05, r1_interval=2, ema_kimg=0.01, ema_rampup=0.05,
                      ada_target=0.0, ada_interval=2, ada_kimg=0.1, ada_p_init=0.2, ada_fixed=False,
                      ada_ops=ada.OPS, seed=11)
    return dataclasses.replace(cfg, **changes)


@pytest.fixture(scope="module")
def data():
    r = np.random.default_rng(0)
    return r.uniform(-1, 1, (10, 8, 8, 1)).astype(np.float32), np.arange(10) % 2


def _weights(trainer: Trainer) -> list[np.ndarray]:
    return [v.numpy() for v in trainer.variables()]


def test_generator_shapes_and_conditioning():
    arch = _config().arch
    g = Generator(arch)
    z = tf.random.stateless_normal([2, arch.z_dim], [0, 1])
    a = g(z, tf.one_hot([0, 0], 2), noise_seed=tf.constant([1, 1]))
    b = g(z, tf.one_hot([1, 1], 2), noise_seed=tf.constant([1, 1]))
    assert a.shape == (2, 8, 8, 1) and not np.allclose(a.numpy(), b.numpy())
    np.testing.assert_array_equal(a.numpy(), g(z, tf.one_hot([0, 0], 2), noise_seed=tf.constant([1, 1])).numpy())


@pytest.mark.slow
def test_compiled_and_eager_steps_agree(data):
    images, labels = data
    eager, graph = (Trainer(_config(), images, labels, compiled=c) for c in (False, True))
    eager.run(3)
    graph.run(3)
    for a, b in zip(_weights(eager), _weights(graph), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- the plugin


@pytest.fixture(scope="module")
def registered():
    """The class under its name; registered here when the installed metadata lacks the entry point."""
    with registry.registered_if_missing("augmenter", NAME, StyleGAN2ADA) as name:
        yield name


CHECKS = ["params", "descriptions", "mode", "n_synthetic", "generate_output", "provenance", "deterministic",
          "seed_matters", "no_mutation"]


@pytest.mark.parametrize("check", CHECKS)
def test_contract(registered, check):
    found = [c for c in contract.checks("augmenter", registered) if c.id.split("[")[0] == check]
    want = [f"n_synthetic[{n}]" for n in (0, 1, 12, 800)] if check == "n_synthetic" else [check]
    assert [c.id for c in found] == want  # a renamed or dropped check must not pass by matching nothing
    for c in found:
        c.run()


def test_parameters_are_checked():
    with pytest.raises(ConfigError, match="resolution"):
        StyleGAN2Params(resolution=24).check("augment.methods.stylegan2-ada")
    with pytest.raises(ConfigError, match="augment_ops"):
        StyleGAN2Params(augment_ops=["xflip", "hue"]).check("augment.methods.stylegan2-ada")
    p = StyleGAN2Params(resolution=32, batch_size=32)
    assert p.gamma() == pytest.approx(0.0002 * 32**2 / 32) and p.ema() == pytest.approx(10.0)


def test_minority_mode_generates_the_minority_class_with_nearest_sources(tmp_path, monkeypatch):
    train = contract.phantom()
    keep = np.flatnonzero((train.labels == 0) | (np.arange(len(train)) % 2 == 0))  # fewer malignant
    train = type(train)(train.images[keep], train.labels[keep], [train.ids[i] for i in keep])
    plugin = StyleGAN2ADA(StyleGAN2Params(classes="minority", n_per_class=3))
    plugin.resources = {"checkpoint_dir": tmp_path / "shards", "log_dir": tmp_path}
    rng = np.random.default_rng(0)
    plugin.fit(train, rng)
    gen = plugin.generate(train, plugin.n_synthetic(len(train)), rng)
    assert gen.labels.tolist() == [1, 1, 1]
    ids = {i: k for k, i in enumerate(train.ids)}
    for img, rec in zip(gen.images, gen.provenance, strict=True):
        src = ids[rec["source_id"]]
        assert train.labels[src] == 1 and rec["class"] == 1 and rec["checkpoint"].endswith(CHECKPOINT)
        rmse = [np.sqrt(np.mean((img - train.images[k]) ** 2)) for k in range(len(train)) if train.labels[k] == 1]
        assert rec["source_rmse"] == pytest.approx(min(rmse), rel=1e-5)
    assert (tmp_path / "shards" / CHECKPOINT).is_file() and (tmp_path / TRAIN_LOG).is_file()
    again = StyleGAN2ADA(StyleGAN2Params(classes="minority", n_per_class=3))
    again.resources = {"checkpoint_dir": tmp_path / "shards", "log_dir": tmp_path}

    def no_training(trainer):  # retraining from scratch would give the same weights: forbid it
        raise AssertionError(f"trained again from step {trainer.step} instead of resuming")

    monkeypatch.setattr(Trainer, "train_step", no_training)
    again.fit(train, np.random.default_rng(0))  # resumes at the last step: nothing left to train
    assert again.run_info["steps"] == plugin.run_info["steps"] == plugin.params.steps > 0
    assert again.weights_digest() == plugin.weights_digest()
