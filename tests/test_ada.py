"""The ADA augmentation pipeline (bench.gan.ada): Karras et al. 2020b's 'bgc' for grey images.

Each operation is checked for what it does with fixed draws (the x-flip mirrors, quarter turns and
integer shifts move whole pixels, scaling / rotation / anisotropic scaling / fractional shifts move
the sampling grid as their matrices say, brightness adds, contrast scales around 0, luma flip
negates), the draws follow the paper's distributions and probabilities (p = 0 is the identity, p = 1
applies every op, the two rotations share p so that one of them happens with probability p), and
the pipeline is differentiable in the pixels, seeded, and traceable with p as a tensor."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import tensorflow as tf

from bench.gan import ada

SEED = tf.constant([3, 4], tf.int32)


@pytest.fixture
def images():
    return tf.constant(np.random.default_rng(0).standard_normal((4, 9, 11, 1)), tf.float32)


def _only(op: str, batch: int, size, **values) -> ada.Draws:
    """Draws in which only ``op`` is applied (to every image), with ``values`` fixed."""
    d = ada.draw(batch, size, 1.0, SEED, ops=(op,))
    return dataclasses.replace(d, **{k: tf.constant(v) for k, v in values.items()})


def _centred_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of every output pixel, centred: x to the right, y down."""
    ys, xs = np.meshgrid(np.arange(h) - (h - 1) / 2, np.arange(w) - (w - 1) / 2, indexing="ij")
    return xs, ys


def _source(d: ada.Draws, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(x_in, y_in) centred, (B, H, W)."""
    rows, cols = ada.source_coordinates(d, h, w)
    return cols.numpy() - (w - 1) / 2, rows.numpy() - (h - 1) / 2


# --------------------------------------------------------------------------- p and the gates


def test_p0_is_the_identity(images):
    d = ada.draw(4, (9, 11), 0.0, SEED)
    assert not any(bool(tf.reduce_any(g)) for g in d.apply.values())
    np.testing.assert_array_equal(ada.augment(images, 0.0, SEED).numpy(), images.numpy())


def test_p1_applies_every_op_and_changes_every_image(images):
    d = ada.draw(64, 8, 1.0, SEED)
    assert set(d.apply) == set(ada.STAGES)
    assert all(bool(tf.reduce_all(g)) for g in d.apply.values())  # p_rot = 1 - sqrt(0) = 1: both rotations
    y = ada.augment(images, 1.0, SEED).numpy()
    assert all(np.abs(y[b] - images.numpy()[b]).max() > 1e-2 for b in range(4))


def test_ops_outside_the_selection_are_never_applied():
    d = ada.draw(256, 8, 1.0, SEED, ops=("xflip", "contrast"))
    for stage, gate in d.apply.items():
        assert bool(tf.reduce_all(gate)) == (stage in ("xflip", "contrast")), stage


def test_each_op_is_applied_with_probability_p():
    """Every op has probability multiplier 1 in 'bgc'; the pre- and post-rotation each use
    p_rot = 1 - sqrt(1 - p), so that at least one rotation happens with probability p."""
    n, p = 40_000, 0.3
    d = ada.draw(n, 16, p, SEED)
    rates = {stage: float(tf.reduce_mean(tf.cast(g, tf.float32))) for stage, g in d.apply.items()}
    p_rot = 1 - math.sqrt(1 - p)
    for stage, rate in rates.items():
        assert rate == pytest.approx(p_rot if stage.startswith("rotate_") else p, abs=0.01), stage
    either = float(tf.reduce_mean(tf.cast(d.apply["rotate_pre"] | d.apply["rotate_post"], tf.float32)))
    assert either == pytest.approx(p, abs=0.01)
    assert float(ada.rotation_probability(1.0)) == 1.0 and float(ada.rotation_probability(0.0)) == 0.0


def test_draws_follow_the_papers_distributions():
    """Karras et al. 2020b Appendix B: the laws and their standard deviations / ranges."""
    n, h, w = 40_000, 32, 64
    d = ada.draw(n, (h, w), 1.0, SEED)
    np.testing.assert_allclose(d.xint.numpy() % 1, 0)  # whole pixels ...
    assert np.abs(d.xint.numpy()[:, 0]).max() == round(0.125 * w)  # ... within ±0.125 of width (x) ...
    assert np.abs(d.xint.numpy()[:, 1]).max() == round(0.125 * h)  # ... and height (y)
    for values, std in ((d.log2_scale, 0.2), (d.log2_aniso, 0.2), (d.brightness, 0.2), (d.log2_contrast, 0.5)):
        assert float(tf.math.reduce_std(values)) == pytest.approx(std, rel=0.03)
        assert abs(float(tf.reduce_mean(values))) < 0.01
    xfrac = d.xfrac.numpy()
    assert xfrac[:, 0].std() == pytest.approx(0.125 * w, rel=0.03) and xfrac[:, 1].std() == pytest.approx(0.125 * h, rel=0.03)
    for theta in (d.theta_pre.numpy(), d.theta_post.numpy()):
        assert -math.pi <= theta.min() and theta.max() <= math.pi and theta.std() == pytest.approx(math.pi / 3**0.5, rel=0.03)
    assert float(tf.reduce_mean(tf.cast(d.flip, tf.float32))) == pytest.approx(0.5, abs=0.01)
    assert float(tf.reduce_mean(tf.cast(d.lumaflip, tf.float32))) == pytest.approx(0.5, abs=0.01)
    counts = np.bincount(d.quarter_turns.numpy(), minlength=4) / n
    np.testing.assert_allclose(counts, 0.25, atol=0.01)


def test_colour_only_ops_are_refused_with_the_reason():
    with pytest.raises(ValueError, match=r"\['hue'\] unknown.*act only on colour: the identity on grey"):
        ada.draw(2, 8, 0.5, SEED, ops=("xflip", "hue"))


def test_hue_rotation_and_saturation_leave_a_grey_pixel_unchanged():
    """Why 'bgc' loses hue and saturation on one channel: Appendix B's matrices (rotation about
    the luma axis v; v vᵀ + (I - v vᵀ)s) fix every colour vector on v, and a grey pixel lies on v."""
    v = np.ones(3) / math.sqrt(3)
    cross = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    grey = 0.37 * np.ones(3)
    for theta in (0.4, -2.0, math.pi):
        rotation = np.eye(3) + math.sin(theta) * cross + (1 - math.cos(theta)) * cross @ cross  # Rodrigues
        np.testing.assert_allclose(rotation @ grey, grey, atol=1e-12)
        assert not np.allclose(rotation @ np.array([0.1, 0.5, 0.9]), [0.1, 0.5, 0.9])  # but it does act on colour
    for s in (0.25, 3.0):
        saturation = np.outer(v, v) + (np.eye(3) - np.outer(v, v)) * s
        np.testing.assert_allclose(saturation @ grey, grey, atol=1e-12)


# --------------------------------------------------------------------------- each operation


def test_xflip_mirrors(images):
    d = _only("xflip", 4, (9, 11), flip=[True, False, True, False])
    y, x = ada.apply(images, d).numpy(), images.numpy()
    np.testing.assert_array_equal(y[0], x[0][:, ::-1])
    np.testing.assert_array_equal(y[1], x[1])
    np.testing.assert_array_equal(y[2], x[2][:, ::-1])


def test_quarter_turns_map_a_known_pattern():
    """k quarter turns rotate the content k·90° clockwise on screen (y down): np.rot90(x, -k)."""
    pattern = np.zeros((1, 7, 7, 1), np.float32)
    pattern[0, 1, 1:4, 0] = [1, 2, 3]  # an "L": a row of 1, 2, 3 near the top ...
    pattern[0, 2:5, 1, 0] = [4, 5, 6]  # ... and a column below its left end
    x = tf.constant(np.repeat(pattern, 4, axis=0))
    y = ada.apply(x, _only("rotate90", 4, 7, quarter_turns=[0, 1, 2, 3])).numpy()
    for k in range(4):
        np.testing.assert_array_equal(y[k, :, :, 0], np.rot90(pattern[0, :, :, 0], -k))
    assert y[1, 1, 5, 0] == 1 and y[1, 3, 5, 0] == 3  # after one turn the row of 1, 2, 3 stands on the right


def test_integer_translation_moves_whole_pixels(images):
    d = _only("xint", 4, (9, 11), xint=[[2.0, -1.0]] * 4)  # content 2 px right, 1 px up
    y, x = ada.apply(images, d).numpy(), images.numpy()
    np.testing.assert_array_equal(y[:, 0:7, 2:11], x[:, 1:8, 0:9])  # out[r, c] = in[r + 1, c - 2]


def test_isotropic_scaling_samples_a_shrunken_grid():
    d = _only("scale", 2, (8, 12), log2_scale=[1.0, -1.0])  # s = 2 and 1/2
    x_in, y_in = _source(d, 8, 12)
    xs, ys = _centred_grid(8, 12)
    np.testing.assert_allclose(x_in[0], xs / 2, atol=1e-5)  # enlarged 2x: output x comes from x / 2
    np.testing.assert_allclose(y_in[1], ys * 2, atol=1e-5)


def test_anisotropic_scaling_stretches_x_and_squeezes_y():
    d = _only("aniso", 1, 10, log2_aniso=[1.0])  # S(2, 1/2)
    x_in, y_in = _source(d, 10, 10)
    xs, ys = _centred_grid(10, 10)
    np.testing.assert_allclose(x_in[0], xs / 2, atol=1e-5)
    np.testing.assert_allclose(y_in[0], ys * 2, atol=1e-5)


def test_arbitrary_rotation_by_a_right_angle_is_a_quarter_turn(images):
    square = images[:, :9, :9]
    turned = ada.apply(square, _only("rotate90", 4, 9, quarter_turns=[1, 1, 1, 1])).numpy()
    for stage, field in (("rotate_pre", "theta_pre"), ("rotate_post", "theta_post")):
        d = ada.draw(4, 9, 1.0, SEED, ops=("rotate",))
        d = dataclasses.replace(d, apply={**d.apply, ("rotate_post" if stage == "rotate_pre" else "rotate_pre"):
                                          tf.zeros([4], tf.bool)}, **{field: tf.fill([4], math.pi / 2)})
        np.testing.assert_allclose(ada.apply(square, d).numpy(), turned, atol=1e-5)


def test_pre_and_post_rotation_compose_around_the_anisotropic_scaling():
    """G⁻¹ = R(θpre)⁻¹ S(s, 1/s)⁻¹ R(θpost)⁻¹ (Appendix B's order); without the scaling the two
    rotations add up."""
    pre, post, s = 0.3, -1.1, 2**0.4
    d = ada.draw(1, 12, 1.0, SEED, ops=("rotate", "aniso"))
    d = dataclasses.replace(d, theta_pre=tf.constant([pre]), theta_post=tf.constant([post]),
                            log2_aniso=tf.constant([0.4]))

    def rot_inv(t):
        return np.array([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]])

    g = rot_inv(pre) @ np.diag([1 / s, s]) @ rot_inv(post)
    x_in, y_in = _source(d, 12, 12)
    xs, ys = _centred_grid(12, 12)
    np.testing.assert_allclose(x_in[0], g[0, 0] * xs + g[0, 1] * ys, atol=1e-4)
    np.testing.assert_allclose(y_in[0], g[1, 0] * xs + g[1, 1] * ys, atol=1e-4)
    flat = dataclasses.replace(d, apply={**d.apply, "aniso": tf.constant([False])})
    x_in, y_in = _source(flat, 12, 12)
    g = rot_inv(pre + post)
    np.testing.assert_allclose(x_in[0], g[0, 0] * xs + g[0, 1] * ys, atol=1e-4)


def test_fractional_translation_interpolates_between_pixels():
    x = tf.reshape(tf.range(80, dtype=tf.float32), [1, 8, 10, 1])
    y = ada.apply(x, _only("xfrac", 1, (8, 10), xfrac=[[0.5, 0.0]])).numpy()[0, :, :, 0]
    x = x.numpy()[0, :, :, 0]
    np.testing.assert_allclose(y[:, 1:], 0.5 * (x[:, :-1] + x[:, 1:]), atol=1e-5)  # half a pixel to the right


def test_brightness_adds(images):
    y = ada.apply(images, _only("brightness", 4, (9, 11), brightness=[0.3, -0.2, 0.0, 1.0])).numpy()
    shift = np.broadcast_to(np.array([0.3, -0.2, 0.0, 1.0])[:, None, None, None], y.shape)
    np.testing.assert_allclose(y - images.numpy(), shift, atol=1e-6)


def test_contrast_scales_around_the_centre_of_the_pixel_range(images):
    """S3(c, c, c) of Appendix B on pixels in [-1, 1]: x -> c·x, so 0 (mid-grey) stays put
    while the image mean moves with c."""
    y = ada.apply(images, _only("contrast", 4, (9, 11), log2_contrast=[1.0, -1.0, 0.0, 0.5])).numpy()
    c = 2.0 ** np.array([1.0, -1.0, 0.0, 0.5])
    np.testing.assert_allclose(y, images.numpy() * c[:, None, None, None], atol=1e-6)
    np.testing.assert_allclose(y.mean(axis=(1, 2, 3)), c * images.numpy().mean(axis=(1, 2, 3)), atol=1e-6)


def test_luma_flip_inverts_around_the_centre_of_the_pixel_range(images):
    """I - 2vvᵀ on a grey pixel (x, x, x): -x, i.e. 1 - x on a [0, 1] scale."""
    d = _only("lumaflip", 4, (9, 11), lumaflip=[True, False, True, True])
    y, x = ada.apply(images, d).numpy(), images.numpy()
    np.testing.assert_array_equal(y[[0, 2, 3]], -x[[0, 2, 3]])
    np.testing.assert_array_equal(y[1], x[1])
    white = tf.ones([1, 4, 4, 1])
    np.testing.assert_array_equal(ada.apply(white, _only("lumaflip", 1, 4, lumaflip=[True])).numpy(), -white.numpy())


def test_colour_ops_compose_in_the_papers_order(images):
    """C = flip · contrast · brightness (each multiplied on the left, Appendix B): f·c·(x + b)."""
    d = ada.draw(4, (9, 11), 1.0, SEED, ops=ada.COLOUR)
    d = dataclasses.replace(d, brightness=tf.fill([4], 0.25), log2_contrast=tf.fill([4], 1.0),
                            lumaflip=tf.constant([True, True, False, False]))
    y = ada.apply(images, d).numpy()
    f = np.array([-1, -1, 1, 1])[:, None, None, None]
    np.testing.assert_allclose(y, f * 2.0 * (images.numpy() + 0.25), atol=1e-5)


# --------------------------------------------------------------------------- gradients, seeds, tracing


def test_gradients_flow_through_every_op(images):
    """For fixed draws the pipeline is affine in the pixels, so the tape's gradient must predict
    a finite difference along any direction exactly (up to float32)."""
    d = ada.draw(4, (9, 11), 1.0, SEED)
    weights = tf.constant(np.random.default_rng(1).standard_normal((4, 9, 11, 1)), tf.float32)
    direction = tf.constant(np.random.default_rng(2).standard_normal((4, 9, 11, 1)), tf.float32)

    def objective(x):
        return tf.reduce_sum(weights * ada.apply(x, d))

    with tf.GradientTape() as tape:
        tape.watch(images)
        value = objective(images)
    grad = tape.gradient(value, images)
    assert grad is not None and float(tf.reduce_sum(tf.abs(grad))) > 0
    eps = 0.5
    finite = (float(objective(images + eps * direction)) - float(value)) / eps
    assert float(tf.reduce_sum(grad * direction)) == pytest.approx(finite, rel=1e-3, abs=1e-3)


def test_seeded_and_traceable_with_p_as_a_tensor(images):
    eager = ada.augment(images, 0.6, SEED).numpy()
    np.testing.assert_array_equal(eager, ada.augment(images, 0.6, SEED).numpy())
    assert not np.allclose(eager, ada.augment(images, 0.6, tf.constant([3, 5], tf.int32)).numpy(), atol=1e-3)
    traced = tf.function(lambda x, p, s: ada.augment(x, p, s), autograph=False)
    np.testing.assert_allclose(traced(images, tf.constant(0.6), SEED).numpy(), eager, atol=1e-5)

