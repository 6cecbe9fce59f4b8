"""LRP (bench.xai.lrp): conservation, agreement with a NumPy reference, BatchNorm folding,
depthwise convolutions and squeeze-and-excitation gates, ResNet50, EfficientNetB0 and the
project's classifiers, refusals, the gradient × input baseline."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from bench.xai import lrp  # noqa: E402
from bench.xai.runs import explained_rows  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    # Keras 2.15 initialisers call random.randint(1, 1e9); not ours to fix.
    "ignore:non-integer arguments to randrange:DeprecationWarning")

L = tf.keras.layers
RULES = [("alpha-beta", {"alpha": 2.0, "beta": 1.0}), ("alpha-beta", {"alpha": 1.0, "beta": 0.0}),
         ("epsilon", {"epsilon": 0.01}), ("z-plus", {}), ("box", {})]
RULE_IDS = ["a2b1", "a1b0", "epsilon", "z-plus", "box-a2b1"]


def _randomise_batchnorm(model, seed: int) -> None:
    """Non-trivial γ (one negative), β, moving mean and variance for every BatchNormalization."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            n = layer.gamma.shape[0]
            gamma = rng.uniform(0.5, 1.5, n) * np.where(np.arange(n) == 0, -1.0, 1.0)
            layer.set_weights([gamma, rng.normal(0, 0.1, n), rng.normal(0, 0.2, n), rng.uniform(0.5, 2.0, n)])


def _biases(seed: int):
    """Fresh random-normal bias initialisers, seeded seed·100, seed·100 + 1, ..."""
    counter = itertools.count(seed * 100)
    return lambda: {"bias_initializer": tf.keras.initializers.RandomNormal(0.0, 0.1, seed=next(counter))}


def conv_net(seed: int = 1, head_bn: bool = True):
    """Bias, stride, 'same'/'valid' padding, max/average pooling, residual Add, folded and
    (``head_bn``) standalone BatchNorm, LeakyReLU, Dropout, softmax output."""
    tf.keras.utils.set_random_seed(seed)
    bias = _biases(seed)
    inp = tf.keras.Input((10, 10, 2), name="x")
    x = L.ZeroPadding2D(1, name="pad")(inp)
    x = L.Conv2D(4, 3, name="c1", **bias())(x)
    x = L.BatchNormalization(name="bn1")(x)
    m1 = L.MaxPooling2D(2, name="m1")(L.ReLU(name="r1")(x))
    x = L.Conv2D(4, 3, padding="same", activation="relu", name="c2", **bias())(m1)
    x = L.Conv2D(4, 1, name="c3", **bias())(x)
    x = L.Activation("relu", name="r3")(L.Add(name="add")([x, m1]))
    x = L.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="c4", **bias())(x)
    x = L.AveragePooling2D(2, strides=1, padding="same", name="ap")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = L.BatchNormalization(name="bn_head")(x) if head_bn else x
    x = L.Dropout(0.5, name="drop")(L.LeakyReLU(0.3, name="leaky")(x))
    model = tf.keras.Model(inp, L.Dense(3, activation="softmax", name="dense", **bias())(x))
    _randomise_batchnorm(model, seed)
    return model


def dense_net(seed: int = 2):
    tf.keras.utils.set_random_seed(seed)
    bias = _biases(seed)
    inp = tf.keras.Input((2, 3), name="x")
    x = L.Dense(8, name="d1", **bias())(L.Flatten(name="flat")(inp))
    x = L.Dropout(0.2, name="drop")(L.ReLU(name="r1")(L.BatchNormalization(name="bn1")(x)))
    x = L.Dense(5, activation="relu", name="d2", **bias())(x)
    model = tf.keras.Model(inp, L.Dense(3, activation="softmax", name="d3", **bias())(x))
    _randomise_batchnorm(model, seed)
    return model


# --------------------------------------------------------------------------- NumPy reference
# Every linear layer is written out as an explicit matrix M (inputs × outputs, built by loops),
# and every rule as a formula on the contributions c_ij = a_i M_ij (Panigrahi Eq. 16 and
# Montavon et al. 2018), independent of the TensorFlow path's gradient trick.


def _div(num, den):
    """num (N, I, J) / den (N, J) per output j; 0 where den is 0."""
    den = np.broadcast_to(den[:, None, :], num.shape)
    return np.divide(num, den, out=np.zeros_like(num), where=den != 0)


def ref_rule(rule, a, m, b, r, *, alpha=2.0, beta=1.0, epsilon=1e-6, low=None, high=None, weightless=False):
    """Relevance of the inputs a (N, I) of z = a M + b given R (N, J); ``weightless``: the
    conservative αβ of sums and pools (a part alone takes factor 1)."""
    c = a[:, :, None] * m[None]
    b = np.zeros(m.shape[1]) if b is None else b
    if rule == "epsilon":
        z = c.sum(1) + b
        share = _div(c, z + epsilon * np.where(z >= 0, 1.0, -1.0))
    elif rule == "z-plus":
        share = _div(np.maximum(c, 0), np.maximum(c, 0).sum(1))
    elif rule == "alpha-beta":
        cp, cn = np.maximum(c, 0), np.minimum(c, 0)
        zp, zn = cp.sum(1) + np.maximum(b, 0), cn.sum(1) + np.minimum(b, 0)
        if weightless:
            alpha, beta = np.where(zn != 0, alpha, 1.0)[:, None, :], np.where(zp != 0, beta, -1.0)[:, None, :]
        share = alpha * _div(cp, zp) - beta * _div(cn, zn)
    else:  # box: x w − l w⁺ − h w⁻
        c = c - low[:, :, None] * np.maximum(m, 0)[None] - high[:, :, None] * np.minimum(m, 0)[None]
        share = _div(c, c.sum(1))
    return np.einsum("nij,nj->ni", share, r)


def conv_matrix(kernel, hw, stride, padding):
    """Conv2D as a matrix, TensorFlow's 'same' (extra padding after) and 'valid' padding."""
    kh, kw, cin, cout = kernel.shape
    h, w = hw
    if padding == "same":
        oh, ow = -(-h // stride), -(-w // stride)
        ph, pw = max((oh - 1) * stride + kh - h, 0) // 2, max((ow - 1) * stride + kw - w, 0) // 2
    else:
        oh, ow, ph, pw = (h - kh) // stride + 1, (w - kw) // stride + 1, 0, 0
    m = np.zeros((h, w, cin, oh, ow, cout))
    for i in range(oh):
        for j in range(ow):
            for u in range(kh):
                for v in range(kw):
                    y, x = i * stride + u - ph, j * stride + v - pw
                    if 0 <= y < h and 0 <= x < w:
                        m[y, x, :, i, j, :] += kernel[u, v]
    return m.reshape(h * w * cin, oh * ow * cout), (oh, ow, cout)


def avg_pool_matrix(h, w, c, size):
    """AveragePooling2D(size, strides=1, padding='same'): the mean over the in-image part of each window."""
    m = np.zeros((h, w, c, h, w, c))
    before = (size - 1) // 2
    for i in range(h):
        for j in range(w):
            cells = [(y, x) for y in range(i - before, i - before + size) for x in range(j - before, j - before + size)
                     if 0 <= y < h and 0 <= x < w]
            for y, x in cells:
                m[y, x, range(c), i, j, range(c)] = 1.0 / len(cells)
    return m.reshape(h * w * c, h * w * c)


def max_pool(a, r=None):
    """2×2/2 max pooling forward, or (with r) winner-take-all relevance back."""
    n, h, w, c = a.shape
    out = np.zeros((n, h // 2, w // 2, c)) if r is None else np.zeros_like(a)
    for b in range(n):
        for i in range(h // 2):
            for j in range(w // 2):
                for k in range(c):
                    window = a[b, 2 * i:2 * i + 2, 2 * j:2 * j + 2, k]
                    if r is None:
                        out[b, i, j, k] = window.max()
                    else:
                        u, v = np.unravel_index(np.argmax(window), (2, 2))
                        out[b, 2 * i + u, 2 * j + v, k] += r[b, i, j, k]
    return out


def bn_affine(layer):
    gamma, beta, mean, var = (w.astype(np.float64) for w in layer.get_weights())
    scale = gamma / np.sqrt(var + layer.epsilon)
    return scale, beta - mean * scale


def weights(model, name, bn=None):
    """(matrix kernel, bias) of a Dense/Conv2D, with the BatchNorm ``bn`` after it folded in."""
    k, b = (w.astype(np.float64) for w in model.get_layer(name).get_weights())
    if bn is None:
        return k, b
    scale, shift = bn_affine(model.get_layer(bn))
    return k * scale, b * scale + shift


def start(logits, target):
    out = np.zeros_like(logits)
    idx = np.argmax(logits, 1) if target is None else np.full(len(logits), target)
    out[np.arange(len(logits)), idx] = logits[np.arange(len(logits)), idx]
    return out


def relu(z):
    return np.maximum(z, 0)


def ref_conv_net(model, x, rule, *, target=None, epsilon=1e-6, low=None, high=None, **ab):
    """Forward and LRP backward through ``conv_net`` with the reference's matrices."""
    n, flat = len(x), lambda t: t.reshape(len(t), -1)
    main = "alpha-beta" if rule == "box" else rule
    kw = {"epsilon": epsilon, **ab}
    # forward
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    k1, b1 = weights(model, "c1", bn="bn1")
    m_c1, s1 = conv_matrix(k1, (12, 12), 1, "valid")
    r1 = relu(flat(xp) @ m_c1 + np.tile(b1, 100)).reshape(n, *s1)
    m1 = max_pool(r1)
    k2, b2 = weights(model, "c2")
    m_c2, s2 = conv_matrix(k2, (5, 5), 1, "same")
    r2 = relu(flat(m1) @ m_c2 + np.tile(b2, 25))
    k3, b3 = weights(model, "c3")
    m_c3, _ = conv_matrix(k3, (5, 5), 1, "same")
    c3 = r2 @ m_c3 + np.tile(b3, 25)
    m_add = np.vstack([np.eye(100), np.eye(100)])  # Add: [c3, m1] → sum
    r3 = relu(np.hstack([c3, flat(m1)]) @ m_add)
    k4, b4 = weights(model, "c4")
    m_c4, s4 = conv_matrix(k4, (5, 5), 2, "same")
    r4 = relu(r3 @ m_c4 + np.tile(b4, 9))
    m_ap = avg_pool_matrix(3, 3, 6, 2)
    ap = r4 @ m_ap
    m_gap = np.tile(np.eye(6), (9, 1)) / 9
    gap = ap @ m_gap
    scale, shift = bn_affine(model.get_layer("bn_head"))
    head = gap * scale + shift
    leaky = np.where(head > 0, head, np.float32(0.3) * head)  # Keras stores LeakyReLU's alpha as float32
    kd, bd = weights(model, "dense")
    logits = leaky @ kd + bd
    # backward
    r = start(logits, target)
    r = ref_rule(main, leaky, kd, bd, r, **kw)  # dense; LeakyReLU, head BN, Dropout pass through
    pool = {**kw, "weightless": True}
    r = ref_rule(main, ap, m_gap, None, r, **pool)
    r = ref_rule(main, r4, m_ap, None, r, **pool)
    r = ref_rule(main, r3, m_c4, np.tile(b4, 9), r, **kw)
    r_add = ref_rule(main, np.hstack([c3, flat(m1)]), m_add, None, r, **pool)
    r = ref_rule(main, r2, m_c3, np.tile(b3, 25), r_add[:, :100], **kw)
    r = ref_rule(main, flat(m1), m_c2, np.tile(b2, 25), r, **kw) + r_add[:, 100:]
    r = flat(max_pool(r1, r.reshape(m1.shape)))
    if rule == "box":
        lo, hi = (flat(np.pad(np.broadcast_to(v, x.shape), ((0, 0), (1, 1), (1, 1), (0, 0)))) for v in (low, high))
        r = ref_rule("box", flat(xp), m_c1, None, r, low=lo, high=hi)
    else:
        r = ref_rule(main, flat(xp), m_c1, np.tile(b1, 100), r, **kw)
    return logits, r.reshape(xp.shape)[:, 1:-1, 1:-1, :]


def ref_dense_net(model, x, rule, *, target=None, epsilon=1e-6, low=None, high=None, **ab):
    main = "alpha-beta" if rule == "box" else rule
    kw = {"epsilon": epsilon, **ab}
    a0 = x.reshape(len(x), -1)
    k1, b1 = weights(model, "d1", bn="bn1")
    a1 = relu(a0 @ k1 + b1)
    k2, b2 = weights(model, "d2")
    a2 = relu(a1 @ k2 + b2)
    k3, b3 = weights(model, "d3")
    logits = a2 @ k3 + b3
    r = ref_rule(main, a2, k3, b3, start(logits, target), **kw)
    r = ref_rule(main, a1, k2, b2, r, **kw)
    if rule == "box":
        lo, hi = (np.broadcast_to(v, x.shape).reshape(len(x), -1) for v in (low, high))
        r = ref_rule("box", a0, k1, None, r, low=lo, high=hi)
    else:
        r = ref_rule(main, a0, k1, b1, r, **kw)
    return logits, r.reshape(x.shape)


def _explain_args(rule, options):
    if rule == "box":
        return {"rule": "alpha-beta", "input_rule": "box", "low": 0.0, "high": 1.0}
    return {"rule": rule, **options}


def _ref_args(rule, options):
    return {"low": 0.0, "high": 1.0} if rule == "box" else options


@pytest.fixture(scope="module")
def conv_model():
    return conv_net()


@pytest.fixture(scope="module")
def dense_model():
    return dense_net()


def assert_matches_reference(model, x, reference, rule, options, floor=None, **target):
    """LRP of ``model`` equals the NumPy ``reference`` (and so do the logits); ``floor``: the
    largest expected relevance must exceed it (the comparison is not vacuous)."""
    logits, expected = reference(model, x, rule, **target, **_ref_args(rule, options))
    np.testing.assert_allclose(lrp.canonize(model).logits(x), logits, rtol=1e-9, atol=1e-12)
    got = lrp.explain(model, x, **target, **_explain_args(rule, options))
    if floor is not None:
        assert got.shape == x.shape and np.abs(expected).max() > floor
    np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-10 * np.abs(expected).max())


@pytest.mark.parametrize(("rule", "options"), RULES, ids=RULE_IDS)
def test_conv_net_matches_numpy_reference(conv_model, rule, options, rng):
    assert_matches_reference(conv_model, rng.random((2, 10, 10, 2)), ref_conv_net, rule, options, floor=1e-3)


@pytest.mark.parametrize(("rule", "options"), RULES, ids=RULE_IDS)
def test_dense_net_matches_numpy_reference(dense_model, rule, options, rng):
    assert_matches_reference(dense_model, rng.random((3, 2, 3)), ref_dense_net, rule, options, target=1)


# --------------------------------------------------------------------------- depthwise convolutions, gates


def depthwise_net(seed: int = 10):
    """DepthwiseConv2D (depth multiplier 2, 'same') with a folded BatchNorm, then a strided 'valid' one."""
    tf.keras.utils.set_random_seed(seed)
    bias = _biases(seed)
    inp = tf.keras.Input((6, 6, 2), name="x")
    x = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw1", **bias())(inp)
    x = L.ReLU(name="r1")(L.BatchNormalization(name="bn1")(x))
    x = L.DepthwiseConv2D(3, strides=2, activation="relu", name="dw2", **bias())(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    model = tf.keras.Model(inp, L.Dense(2, activation="softmax", name="dense", **bias())(x))
    _randomise_batchnorm(model, seed)
    return model


def depthwise_as_conv(kernel):
    """A (kh, kw, C, M) depthwise kernel as the full Conv2D kernel (kh, kw, C, C·M) it equals:
    output channel c·M + m sees input channel c only."""
    kh, kw, c, m = kernel.shape
    full = np.zeros((kh, kw, c, c * m))
    for channel in range(c):
        for k in range(m):
            full[:, :, channel, channel * m + k] = kernel[:, :, channel, k]
    return full


def ref_depthwise_net(model, x, rule, *, target=None, epsilon=1e-6, low=None, high=None, **ab):
    main = "alpha-beta" if rule == "box" else rule
    kw = {"epsilon": epsilon, **ab}
    flat = lambda t: t.reshape(len(t), -1)  # noqa: E731
    k1, b1 = (w.astype(np.float64) for w in model.get_layer("dw1").get_weights())
    scale, shift = bn_affine(model.get_layer("bn1"))  # folded on the full kernel's output channels
    m1, _ = conv_matrix(depthwise_as_conv(k1) * scale, (6, 6), 1, "same")
    b1 = np.tile(b1 * scale + shift, 36)
    a1 = relu(flat(x) @ m1 + b1)
    k2, b2 = (w.astype(np.float64) for w in model.get_layer("dw2").get_weights())
    m2, _ = conv_matrix(depthwise_as_conv(k2), (6, 6), 2, "valid")
    b2 = np.tile(b2, 4)
    a2 = relu(a1 @ m2 + b2)
    m_gap = np.tile(np.eye(4), (4, 1)) / 4
    gap = a2 @ m_gap
    kd, bd = weights(model, "dense")
    logits = gap @ kd + bd
    r = ref_rule(main, gap, kd, bd, start(logits, target), **kw)
    r = ref_rule(main, a2, m_gap, None, r, weightless=True, **kw)
    r = ref_rule(main, a1, m2, b2, r, **kw)
    if rule == "box":
        lo, hi = (flat(np.broadcast_to(v, x.shape)) for v in (low, high))
        r = ref_rule("box", flat(x), m1, None, r, low=lo, high=hi)
    else:
        r = ref_rule(main, flat(x), m1, b1, r, **kw)
    return logits, r.reshape(x.shape)


@pytest.fixture(scope="module")
def depthwise_model():
    return depthwise_net()


@pytest.mark.parametrize(("rule", "options"), RULES, ids=RULE_IDS)
def test_depthwise_net_matches_numpy_reference(depthwise_model, rule, options, rng):
    # floor 1e-4: the logits are ~0.1
    assert_matches_reference(depthwise_model, rng.random((2, 6, 6, 2)), ref_depthwise_net, rule, options, floor=1e-4)


def test_depthwise_batchnorm_is_folded_per_channel(depthwise_model, rng):
    assert lrp.canonization_error(depthwise_model, rng.random((4, 6, 6, 2))) < 1e-6
    graph = lrp.canonize(depthwise_model)
    assert graph.folded == {"bn1": "dw1"}
    (dw1,) = (op for op in graph.ops if op.name == "dw1")
    kernel = depthwise_model.get_layer("dw1").depthwise_kernel.numpy()
    scale, _ = bn_affine(depthwise_model.get_layer("bn1"))
    assert dw1.kernel.shape == kernel.shape == (3, 3, 2, 2)
    np.testing.assert_allclose(dw1.kernel.numpy(), kernel * scale.reshape(2, 2), rtol=1e-12)


def se_net(seed: int = 11, gate_first: bool = False):
    """Conv2D, then a squeeze-and-excitation gate (Hu et al. 2018) f · sigmoid(Dense(ReLU(Dense(GAP(f))))),
    the pooling with keepdims=True so the gate is (1, 1, C)."""
    tf.keras.utils.set_random_seed(seed)
    bias = _biases(seed)
    inp = tf.keras.Input((5, 5, 2), name="x")
    f = L.Conv2D(4, 3, padding="same", activation="relu", name="conv", **bias())(inp)
    s = L.GlobalAveragePooling2D(keepdims=True, name="squeeze")(f)
    s = L.Dense(2, activation="relu", name="reduce", **bias())(s)
    s = L.Dense(4, activation="sigmoid", name="expand", **bias())(s)
    y = L.Multiply(name="excite")([s, f] if gate_first else [f, s])
    y = L.GlobalAveragePooling2D(name="gap")(y)
    return tf.keras.Model(inp, L.Dense(2, name="dense", **bias())(y))


def ref_se_net(model, x, rule, *, epsilon=1e-6, **ab):
    """(logits, relevance of the product y, relevance of x) with the gate as a constant weight."""
    kw = {"epsilon": epsilon, **ab}
    flat = lambda t: t.reshape(len(t), -1)  # noqa: E731
    kc, bc = weights(model, "conv")
    m_c, _ = conv_matrix(kc, (5, 5), 1, "same")
    f = relu(flat(x) @ m_c + np.tile(bc, 25))
    m_gap = np.tile(np.eye(4), (25, 1)) / 25
    (k1, b1), (k2, b2) = weights(model, "reduce"), weights(model, "expand")
    gate = 1.0 / (1.0 + np.exp(-(relu(f @ m_gap @ k1 + b1) @ k2 + b2)))
    y = f * np.tile(gate, 25)
    kd, bd = weights(model, "dense")
    logits = (y @ m_gap) @ kd + bd
    r = ref_rule(rule, y @ m_gap, kd, bd, start(logits, None), **kw)
    r_y = ref_rule(rule, y, m_gap, None, r, weightless=True, **kw)
    # Signal-take-all (Arras et al. 2017): y_j = g_j f_j has the one input f_j, which gets all of R_y.
    r_x = ref_rule(rule, flat(x), m_c, np.tile(bc, 25), r_y, **kw)
    return logits, r_y, r_x.reshape(x.shape)


@pytest.mark.parametrize("gate_first", [False, True], ids=["signal-gate", "gate-signal"])
@pytest.mark.parametrize(("rule", "options"), RULES[:4], ids=RULE_IDS[:4])
def test_se_gate_gets_no_relevance_and_the_signal_all_of_it(rule, options, gate_first, rng):
    model = se_net(gate_first=gate_first)
    x = rng.random((2, 5, 5, 2))
    logits, r_y, expected = ref_se_net(model, x, rule, **options)
    graph = lrp.canonize(model)
    np.testing.assert_allclose(graph.logits(x), logits, rtol=1e-9, atol=1e-12)
    assert [op.gate for op in graph.ops if op.name == "excite"] == [0 if gate_first else 1]
    got, layers = lrp.explain(graph, x, rule, return_layers=True, **options)
    assert np.abs(expected).max() > 1e-3
    np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-10 * np.abs(expected).max())
    np.testing.assert_allclose(layers["excite"].reshape(2, -1), r_y, rtol=1e-9, atol=1e-12)
    for name in ("squeeze", "reduce", "expand"):  # the whole gate branch
        assert layers[name].shape[1:3] == (1, 1) and not np.any(layers[name]), name
    np.testing.assert_array_equal(layers["conv"], layers["excite"])  # conserved through the product


def test_gate_is_found_by_its_sigmoid_or_else_by_its_shape(rng):
    """A full-size sigmoid gate (spatial attention) and a 1×1 gate without a sigmoid (after a Reshape)."""
    tf.keras.utils.set_random_seed(14)
    inp = tf.keras.Input((4, 4, 2))
    f = L.Conv2D(3, 1, activation="relu", name="f")(inp)
    attention = L.Conv2D(3, 1, activation="sigmoid", name="attention")(f)
    y = L.Multiply(name="by_sigmoid")([attention, f])
    scale = L.Dense(3, activation="relu", name="scale")(L.GlobalAveragePooling2D(name="pool")(y))
    z = L.Multiply(name="by_shape")([y, L.Reshape((1, 1, 3), name="as_map")(scale)])
    model = tf.keras.Model(inp, L.Dense(2, name="out")(L.GlobalAveragePooling2D(name="gap")(z)))
    graph = lrp.canonize(model)
    assert {op.name: op.gate for op in graph.ops if op.gate is not None} == {"by_sigmoid": 0, "by_shape": 1}
    x = rng.random((2, 4, 4, 2))
    r, layers = lrp.explain(graph, x, "epsilon", epsilon=0.0, return_layers=True)
    assert np.isfinite(r).all() and np.abs(r).max() > 0
    assert not np.any(layers["attention"]) and not np.any(layers["scale"]) and not np.any(layers["pool"])
    np.testing.assert_allclose(layers["f"].sum(axis=(1, 2, 3)), layers["by_shape"].sum(axis=(1, 2, 3)), rtol=1e-12)


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_product_of_two_feature_maps_is_refused(activation):
    """Neither input a gate: both plain maps, or both sigmoid maps of the same size."""
    inp = tf.keras.Input((4, 4, 2))
    a = L.Conv2D(3, 1, activation=activation, name="a")(inp)
    b = L.Conv2D(3, 1, activation=activation, name="b")(inp)
    product = L.Multiply(name="product")([a, b])
    model = tf.keras.Model(inp, L.Dense(2, name="out")(L.GlobalAveragePooling2D(name="gap")(product)))
    with pytest.raises(lrp.UnsupportedLayerError, match="'product'") as err:
        lrp.canonize(model)
    assert [p[:2] for p in err.value.problems] == [("product", "Multiply")]
    assert "neither input is a gate" in str(err.value)


# --------------------------------------------------------------------------- conservation


def bias_free_dense(seed: int = 3):
    tf.keras.utils.set_random_seed(seed)
    inp = tf.keras.Input((6,))
    x = L.Dense(8, activation="relu", use_bias=False, name="d1")(inp)
    x = L.Dense(8, activation="relu", use_bias=False, name="d2")(x)
    return tf.keras.Model(inp, L.Dense(3, use_bias=False, name="d3")(x))


def bias_free_conv(seed: int = 4, residual: bool = False):
    tf.keras.utils.set_random_seed(seed)
    inp = tf.keras.Input((8, 8, 2))
    x = L.Conv2D(4, 3, padding="same", use_bias=False, activation="relu", name="c1")(inp)
    x = L.MaxPooling2D(name="m1")(x)
    y = L.Conv2D(4, 3, padding="same", use_bias=False, activation="relu", name="c2")(x)
    if residual:
        y = L.ReLU(name="r2")(L.Add(name="add")([L.Conv2D(4, 1, use_bias=False, name="c3")(y), x]))
    y = L.AveragePooling2D(name="ap")(y)
    y = L.GlobalAveragePooling2D(name="gap")(y)
    return tf.keras.Model(inp, L.Dense(3, use_bias=False, activation="softmax", name="d")(y))


def _positive_images(model, x):
    """The images whose predicted logit is positive, and that logit."""
    logits = lrp.canonize(model).logits(x).max(axis=1)
    assert np.sum(logits > 0) >= 2
    return x[logits > 0], logits[logits > 0]


@pytest.mark.parametrize(("rule", "options"), [("alpha-beta", {"alpha": 1.0, "beta": 0.0}), ("z-plus", {})],
                         ids=["a1b0", "z-plus"])
@pytest.mark.parametrize("build", [bias_free_dense, bias_free_conv], ids=["dense", "conv"])
def test_relevance_is_conserved_layer_by_layer(build, rule, options, rng):
    """Panigrahi Eq. 12-13: on a bias-free ReLU network every layer holds f(x)."""
    model = build()
    x, logit = _positive_images(model, rng.normal(size=(6, *model.input_shape[1:])))
    relevance, layers = lrp.explain(model, x, rule, epsilon=1e-12, return_layers=True, **options)
    np.testing.assert_allclose(relevance.sum(axis=tuple(range(1, x.ndim))), logit, rtol=1e-9)
    assert len(layers) == len(lrp.canonize(model).ops)
    for name, r in layers.items():
        np.testing.assert_allclose(r.sum(axis=tuple(range(1, r.ndim))), logit, rtol=1e-9, err_msg=name)


@pytest.mark.parametrize("rule", ["alpha-beta", "z-plus"])
def test_residual_sum_conserves_relevance(rule, rng):
    model = bias_free_conv(residual=True)
    x, logit = _positive_images(model, rng.random((4, 8, 8, 2)))
    options = {"alpha": 1.0, "beta": 0.0} if rule == "alpha-beta" else {}
    relevance = lrp.explain(model, x, rule, epsilon=1e-12, **options)
    np.testing.assert_allclose(relevance.sum(axis=(1, 2, 3)), logit, rtol=1e-9)
    assert relevance.min() >= 0.0  # the sum's negative branch gets nothing: no sign flip at the Add


def test_small_epsilon_sums_to_any_logit_and_equals_gradient_x_input(rng):
    """ε → 0 conserves every logit, negative ones included, on a bias-free net; on a ReLU net
    with biases LRP-0 equals gradient × input (Ancona et al. 2018), which α2β1 does not."""
    model = bias_free_conv(residual=True)
    x = rng.random((2, 8, 8, 2))
    logits = lrp.canonize(model).logits(x)
    for target in range(3):
        relevance = lrp.explain(model, x, "epsilon", epsilon=1e-12, target=target)
        np.testing.assert_allclose(relevance.sum(axis=(1, 2, 3)), logits[:, target], rtol=1e-8)
    biased = conv_net(head_bn=False)  # an unfolded BatchNorm's shift passes no relevance: not LRP-0
    x = rng.random((2, 10, 10, 2))
    gxi = lrp.gradient_x_input(biased, x)
    np.testing.assert_allclose(lrp.explain(biased, x, "epsilon", epsilon=0.0), gxi, rtol=1e-7,
                               atol=1e-10 * np.abs(gxi).max())
    ab = lrp.explain(biased, x)
    assert np.abs(ab - gxi).max() > 0.1 * np.abs(gxi).max()


# --------------------------------------------------------------------------- canonisation


def test_batchnorm_folding_leaves_outputs_unchanged(conv_model, dense_model, rng):
    for model, shape in ((conv_model, (4, 10, 10, 2)), (dense_model, (4, 2, 3))):
        assert lrp.canonization_error(model, rng.random(shape)) < 1e-6
    graph = lrp.canonize(conv_model)
    assert graph.folded == {"bn1": "c1"}  # bn_head follows a pooling layer: kept, elementwise
    names = [op.name for op in graph.ops]
    assert "bn1" not in names and "bn_head" in names and graph.head == "softmax"
    c1 = graph.ops[names.index("c1")]  # the statistics are not trivial: folding changed the weights
    assert np.abs(c1.kernel.numpy() - conv_model.get_layer("c1").kernel.numpy()).max() > 0.1
    assert lrp.canonize(dense_model).folded == {"bn1": "d1"}


# --------------------------------------------------------------------------- models and layers


def test_nested_model_is_inlined(rng):
    tf.keras.utils.set_random_seed(5)
    inner_in = tf.keras.Input((6, 6, 2))
    inner = tf.keras.Model(inner_in, L.Conv2D(3, 3, activation="relu", name="inner_conv")(inner_in), name="backbone")
    outer_in = tf.keras.Input((6, 6, 2))
    features = inner(outer_in, training=False)
    nested = tf.keras.Model(outer_in, L.Dense(2, name="head")(L.GlobalAveragePooling2D(name="gap")(features)))
    flat_in = tf.keras.Input((6, 6, 2))
    flat = tf.keras.Model(flat_in, nested.get_layer("head")(nested.get_layer("gap")(
        inner.get_layer("inner_conv")(flat_in))))
    x = rng.random((2, 6, 6, 2))
    assert [op.name for op in lrp.canonize(nested).ops] == ["inner_conv", "gap", "head"]
    np.testing.assert_array_equal(lrp.explain(nested, x), lrp.explain(flat, x))


def test_sigmoid_pair_is_explained_as_centred_logits(rng):
    """augbench's SigmoidPair head: classes 0/1 get logits −z/2 and z/2; DRS passes through."""
    from methods.classify.layers import DRS, SigmoidPair

    tf.keras.utils.set_random_seed(6)
    inp = tf.keras.Input((6, 6, 2))
    x = L.Conv2D(3, 3, padding="same", name="conv")(inp)
    x = L.ReLU(name="relu")(DRS(name="drs")(x))
    z = L.Dense(1, name="head_dense")(L.GlobalAveragePooling2D(name="gap")(x))
    model = tf.keras.Model(inp, SigmoidPair(name="pair")(z))
    drs = model.get_layer("drs")
    drs.set_weights([w + np.random.default_rng(6).normal(0, 0.2, w.shape) for w in drs.get_weights()])
    x = rng.random((3, 6, 6, 2))
    assert lrp.canonization_error(model, x) < 1e-6
    logit = tf.keras.Model(inp, z)(x).numpy()[:, 0]
    np.testing.assert_allclose(lrp.canonize(model).logits(x), np.stack([-logit / 2, logit / 2], 1), rtol=1e-6)
    benign, malignant = (lrp.explain(model, x, "epsilon", epsilon=0.0, target=t) for t in (0, 1))
    assert benign.shape == x.shape and np.isfinite(benign).all() and np.abs(benign).max() > 0
    np.testing.assert_allclose(benign, -malignant, atol=1e-12)  # the ε-rule is linear in the start relevance


def test_box_bounds_are_carried_through_preprocessing_layers(rng):
    """Rescaling (negative scale) then ZeroPadding before the first Conv2D: the z^B bounds at the
    convolution are the preprocessed [0, 255] range, as if the model took preprocessed input."""
    tf.keras.utils.set_random_seed(9)
    conv, gap, head = L.Conv2D(3, 3, name="conv"), L.GlobalAveragePooling2D(), L.Dense(2)
    raw = tf.keras.Input((6, 6, 1))
    with_pre = tf.keras.Model(raw, head(gap(conv(L.ZeroPadding2D(1)(L.Rescaling(-1 / 127.5, offset=1.0)(raw))))))
    pre = tf.keras.Input((8, 8, 1))
    without = tf.keras.Model(pre, head(gap(conv(pre))))
    x = rng.uniform(0, 255, (2, 6, 6, 1))
    a = np.pad(1.0 - x / 127.5, ((0, 0), (1, 1), (1, 1), (0, 0)))
    bounds = np.pad(np.ones_like(x), ((0, 0), (1, 1), (1, 1), (0, 0)))  # padding: l = h = 0
    expected = lrp.explain(without, a, input_rule="box", low=-bounds, high=bounds)[:, 1:-1, 1:-1]
    np.testing.assert_allclose(lrp.explain(with_pre, x, input_rule="box", low=0.0, high=255.0), expected,
                               rtol=1e-9, atol=1e-12)


def test_targets_per_image_and_out_of_range(dense_model, rng):
    x = rng.random((3, 2, 3))
    per_image = lrp.explain(dense_model, x, target=[0, 1, 2])
    for i in range(3):
        np.testing.assert_allclose(per_image[i], lrp.explain(dense_model, x[i:i + 1], target=i)[0])
    with pytest.raises(ValueError, match="out of range"):
        lrp.explain(dense_model, x, target=3)


def test_unsupported_layers_are_refused_by_name():
    inp = tf.keras.Input((4, 4, 1))
    x = L.Lambda(lambda t: t * 2.0, name="double")(inp)
    x = L.Reshape((4, 4), name="rows")(x)
    x = L.LSTM(3, name="memory")(x)
    model = tf.keras.Model(inp, L.Dense(2, name="out")(x))
    with pytest.raises(lrp.UnsupportedLayerError) as err:
        lrp.canonize(model)
    message = str(err.value)
    assert "Lambda" in message and "'double'" in message and "LSTM" in message and "'memory'" in message
    assert "Conv2D" in message and "Add" in message  # what is supported
    assert [p[:2] for p in err.value.problems] == [("double", "Lambda"), ("memory", "LSTM")]


def test_softmax_inside_the_network_is_refused():
    inp = tf.keras.Input((4,))
    model = tf.keras.Model(inp, L.Dense(2, name="out")(L.Dense(3, activation="softmax", name="inner")(inp)))
    with pytest.raises(lrp.UnsupportedLayerError, match="'inner'.*not elementwise|not elementwise.*'inner'"):
        lrp.canonize(model)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"rule": "alpha-beta", "alpha": 1.5, "beta": 1.0}, "alpha - beta = 1"),
    ({"rule": "alpha-beta", "alpha": 0.0, "beta": -1.0}, "beta >= 0"),
    ({"rule": "epsilonn"}, "did you mean 'epsilon'"),
    ({"rule": "epsilon", "epsilon": -1.0}, "epsilon must be >= 0"),
    ({"input_rule": "box"}, "needs low and high"),
    ({"input_rule": "box", "low": 0.0, "high": 0.5}, "low <= x <= high"),
    ({"input_rule": "flat"}, "unknown input rule"),
])
def test_invalid_options_are_refused(dense_model, kwargs, match, rng):
    with pytest.raises(ValueError, match=match):
        lrp.explain(dense_model, rng.random((1, 2, 3)), **kwargs)


def test_positive_share_inside():
    relevance = np.zeros((2, 2, 2, 3))
    relevance[0, 0, 0] = [1.0, 1.0, 1.0]  # pixel relevance 3, inside
    relevance[0, 1, 1] = [1.0, 0.0, 0.0]  # 1, outside
    relevance[0, 0, 1] = [-5.0, 0.0, 0.0]  # negative: not counted
    mask = np.array([[1, 0], [0, 0]])
    share = lrp.positive_share_inside(relevance, mask)
    assert share[0] == pytest.approx(0.75) and np.isnan(share[1])
    with pytest.raises(ValueError, match="mask shape"):
        lrp.positive_share_inside(relevance, np.ones((3, 3)))


def test_explained_rows_all_by_default_else_a_stratified_seeded_pick():
    labels = np.array([0] * 10 + [1] * 3)
    for limit in (None, 13, 50):
        np.testing.assert_array_equal(explained_rows(labels, limit), np.arange(13))
    rows = explained_rows(labels, 6, seed=1)
    assert list(rows) == sorted(set(rows)) and np.bincount(labels[rows]).tolist() == [3, 3]
    np.testing.assert_array_equal(explained_rows(labels, 6, seed=1), rows)  # deterministic
    assert len({tuple(explained_rows(labels, 6, seed=s)) for s in range(5)}) > 1  # the seed decides
    assert np.bincount(labels[explained_rows(labels, 9)]).tolist() == [6, 3]  # class 1 gives its spare to 0
    assert np.bincount(labels[explained_rows(labels, 5)]).tolist() == [3, 2]  # the odd one: first class
    assert np.bincount(labels[explained_rows(labels, 1)], minlength=2).tolist() == [1, 0]
    three = np.array([2] * 2 + [0] * 5 + [1] * 5)
    assert np.bincount(three[explained_rows(three, 10)]).tolist() == [4, 4, 2]
    assert explained_rows(np.array([], np.int64), 3).tolist() == []
    with pytest.raises(ValueError, match="limit must be >= 1"):
        explained_rows(labels, 0)


# --------------------------------------------------------------------------- ResNet50, project classifiers


@pytest.fixture(scope="module")
def resnet50():
    tf.keras.utils.set_random_seed(7)
    base = tf.keras.applications.ResNet50(weights=None, include_top=False, input_shape=(64, 64, 3))
    model = tf.keras.Model(base.input, L.Dense(2, activation="softmax")(L.GlobalAveragePooling2D()(base.output)))
    _randomise_batchnorm(model, 7)
    return model


@pytest.mark.slow
def test_resnet50_relevance_is_finite_and_shaped_like_the_input(resnet50, rng):
    x = rng.uniform(-120.0, 150.0, (2, 64, 64, 3))  # the range of Keras 'caffe' preprocessing
    graph = lrp.canonize(resnet50)
    assert len(graph.folded) == 53 and lrp.canonization_error(resnet50, x) < 1e-5
    for kwargs in ({"rule": "alpha-beta"}, {"rule": "epsilon"}, {"rule": "z-plus"},
                   {"rule": "alpha-beta", "input_rule": "box", "low": -124.0, "high": 152.0}):
        r = lrp.explain(graph, x, **kwargs)
        assert r.shape == x.shape and np.isfinite(r).all() and np.abs(r).max() > 0, kwargs
    sign = np.sign(graph.logits(x).max(axis=1))  # (seeded) one positive, one negative predicted logit
    r = lrp.explain(graph, x, alpha=1.0, beta=0.0)
    # α1β0: every relevance has the sign of the explained logit, residual sums included
    assert (sign[:, None, None, None] * r).min() >= 0.0 and set(sign) == {-1.0, 1.0}


@pytest.mark.slow
def test_project_resnet50_classifier_is_supported(rng, classifier_model):
    """The resnet50 plugin: nested backbone, Panigrahi head (BN, LeakyReLU, Dropout, softmax)."""
    clf, model = classifier_model("resnet50", (32, 32, 3))  # shared, seed 0; LRP only reads it
    x = clf.preprocess(rng.random((2, 32, 32), dtype=np.float32))
    graph = lrp.canonize(model)
    assert "head_bn" not in graph.folded and lrp.canonization_error(model, x) < 1e-5
    r = lrp.explain(graph, x)
    assert r.shape == x.shape and np.isfinite(r).all()


# --------------------------------------------------------------------------- EfficientNetB0


@pytest.fixture(scope="module")
def efficientnetb0():
    """Random weights, random BatchNorm statistics; the head's two logits are z and −z (kernel
    columns w and −w, no bias), so one of them is positive whatever the seed."""
    tf.keras.utils.set_random_seed(12)
    base = tf.keras.applications.EfficientNetB0(weights=None, include_top=False, input_shape=(32, 32, 3))
    head = L.Dense(2, activation="softmax", name="head")
    model = tf.keras.Model(base.input, head(L.GlobalAveragePooling2D()(base.output)))
    _randomise_batchnorm(model, 12)
    w = head.kernel.numpy()[:, :1]
    head.set_weights([np.hstack([w, -w]), np.zeros(2)])
    return model


@pytest.mark.slow
def test_efficientnetb0_relevance_is_finite_and_shaped_like_the_input(efficientnetb0, rng):
    """16 DepthwiseConv2D (BatchNorm folded) and 16 squeeze-and-excitation Multiply gates."""
    x = rng.uniform(0.0, 255.0, (2, 32, 32, 3))  # Keras' EfficientNet rescales [0, 255] inside the model
    graph = lrp.canonize(efficientnetb0)
    assert len(graph.folded) == 49 and lrp.canonization_error(efficientnetb0, x) < 1e-5
    assert sum(conv.endswith("_dwconv") for conv in graph.folded.values()) == 16
    gates = {op.name: op.gate for op in graph.ops if type(op.layer) is L.Multiply}
    assert len(gates) == 16 and set(gates.values()) == {1}  # Keras' second input: the se_expand sigmoid
    for kwargs in ({"rule": "alpha-beta"}, {"rule": "epsilon"}, {"rule": "z-plus"},
                   {"rule": "alpha-beta", "input_rule": "box", "low": 0.0, "high": 255.0}):
        r = lrp.explain(graph, x, **kwargs)
        assert r.shape == x.shape and np.isfinite(r).all() and np.abs(r).max() > 0, kwargs


@pytest.mark.slow
def test_efficientnetb0_a1b0_and_zplus_keep_the_logit_sign(efficientnetb0, rng):
    """α1β0 and z⁺ pass on only non-negative shares (the gates and swish pass relevance through),
    so every input relevance has the explained logit's sign; biases absorb some, so no equality."""
    x = rng.uniform(0.0, 255.0, (2, 32, 32, 3))
    graph = lrp.canonize(efficientnetb0)
    logits = graph.logits(x)
    assert np.all(logits != 0)
    for target, options in itertools.product(range(2), ({"alpha": 1.0, "beta": 0.0}, {"rule": "z-plus"})):
        r = lrp.explain(graph, x, target=target, **options)
        sign, total = np.sign(logits[:, target]), r.sum(axis=(1, 2, 3))
        assert np.isfinite(r).all() and (sign[:, None, None, None] * r).min() >= 0.0, options
        assert np.all(sign * total > 0), options


@pytest.mark.slow
@pytest.mark.parametrize(("head", "size"), [("softmax", 32), ("sigmoid", 16)])
def test_project_efficientnetb0_classifier_is_supported(head, size, rng, classifier_model):
    """The efficientnetb0 plugin (Fedoruk 2022): nested backbone with its in-model Rescaling and
    Normalization; the sigmoid head's SigmoidPair; a 16 px model upsizes by a bilinear Resizing."""
    clf, model = classifier_model("efficientnetb0", (size, size, 3), head=head)  # shared, seed 0
    x = clf.preprocess(rng.random((2, size, size), dtype=np.float32))
    graph = lrp.canonize(model)
    kinds = {type(op.layer).__name__ for op in graph.ops}
    assert {"Rescaling", "Normalization", "DepthwiseConv2D", "Multiply"} <= kinds
    assert ("Resizing" in kinds) == (size < 32) and graph.head == "softmax"
    assert lrp.canonization_error(model, x) < 1e-5
    r = lrp.explain(graph, x)
    assert r.shape == x.shape and np.isfinite(r).all() and np.abs(r).max() > 0
