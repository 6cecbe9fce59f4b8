"""``drs-resnet101``: the DRS layer (Byra 2021 Eq. 2–4), its network, training, analysis (Eq. 5–7)."""

from __future__ import annotations

import numpy as np
import pytest

from bench import registry

tf = pytest.importorskip("tensorflow")

from methods.classify import drs  # noqa: E402
from methods.classify.layers import DRS  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    # Keras 2.15 initialisers call random.randint(1, 1e9); not ours to fix.
    "ignore:non-integer arguments to randrange:DeprecationWarning")

SIZE = 32
SHAPE = (SIZE, SIZE, 3)
# ResNet101 at 32 px: (H, W, C) after each stage, and the number of blocks in it.
STAGES = {"conv2": (8, 8, 256, 3), "conv3": (4, 4, 512, 4), "conv4": (2, 2, 1024, 23), "conv5": (1, 1, 2048, 3)}
BLOCKS = [f"{stage}_block{i}" for stage, (*_, n) in STAGES.items() for i in range(1, n + 1)]


def _images(n: int, seed: int = 0) -> np.ndarray:
    clf = registry.create("classifier", "drs-resnet101")
    return clf.preprocess(np.random.default_rng(seed).random((n, SIZE, SIZE), dtype=np.float32))


@pytest.fixture(scope="module")
def plain_resnet101():
    """A no-top ResNet101 with fixed-seed random weights (only read)."""
    tf.keras.utils.set_random_seed(4321)
    return tf.keras.applications.ResNet101(include_top=False, weights=None, input_shape=SHAPE)


@pytest.fixture(scope="module")
def plain_weights(tmp_path_factory, plain_resnet101):
    """``plain_resnet101``'s weights saved to a file."""
    path = tmp_path_factory.mktemp("weights") / "resnet101_notop.h5"
    plain_resnet101.save_weights(str(path))
    return path


def _randomise_drs(model, seed: int = 0, scale: float = 0.05) -> None:
    rng = np.random.default_rng(seed)
    for layer in drs.drs_layers(model):
        layer.set_weights([w + rng.normal(0, scale, w.shape).astype(np.float32) for w in layer.get_weights()])


# --------------------------------------------------------------------------- the layer


def test_drs_layer_is_eq3_then_eq4_and_identity_at_init():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
    layer = DRS()
    np.testing.assert_array_equal(layer(y).numpy(), y)  # initialised as identity
    assert [w.shape.as_list() for w in layer.weights] == [[3, 4, 1], [3, 4, 1], [5], [5]]
    assert len(layer.trainable_weights) == 4 and sum(int(np.prod(w.shape)) for w in layer.weights) == 2 * 12 + 2 * 5
    sm, sb = rng.normal(size=(3, 4, 1)), rng.normal(size=(3, 4, 1))
    dm, db = rng.normal(size=5), rng.normal(size=5)
    layer.set_weights([a.astype(np.float32) for a in (sm, sb, dm, db)])
    expected = dm * (sm * y + sb) + db  # Eq. 3: y' = S^m(i,j) y + S^b(i,j); Eq. 4: z = D^m(k) y' + D^b(k)
    np.testing.assert_allclose(layer(y).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_drs_layer_config_round_trip():
    layer = DRS(name="conv2_block1_drs")
    assert tf.keras.utils.get_registered_name(DRS) == "augbench>DRS"
    config = tf.keras.layers.serialize(layer)
    assert config["registered_name"] == "augbench>DRS"
    again = tf.keras.layers.deserialize(config)
    assert isinstance(again, DRS) and again.name == "conv2_block1_drs"


# --------------------------------------------------------------------------- the network


@pytest.mark.slow
def test_drs_sits_between_add_and_relu_and_starts_as_the_plain_network(plain_weights, plain_resnet101):
    tf.keras.utils.set_random_seed(0)
    model = registry.create("classifier", "drs-resnet101", weights=str(plain_weights)).build(SHAPE, 2)
    assert [layer.name for layer in drs.drs_layers(model)] == [f"{b}_drs" for b in BLOCKS]
    assert drs.block_outputs(model) == [f"{b}_out" for b in BLOCKS]
    for block in BLOCKS:
        assert model.get_layer(f"{block}_drs").inbound_nodes[0].inbound_layers.name == f"{block}_add"
        assert model.get_layer(f"{block}_out").inbound_nodes[0].inbound_layers.name == f"{block}_drs"

    plain = plain_resnet101  # the weights in plain_weights
    x = _images(4)
    probe = tf.keras.Model(model.inputs, model.get_layer("conv5_block3_out").output)
    expected = plain(x, training=False).numpy()
    assert np.isfinite(expected).all() and np.abs(expected).max() > 0
    np.testing.assert_allclose(probe(x, training=False).numpy(), expected, rtol=1e-5, atol=1e-5)
    _randomise_drs(model)  # the comparison can fail: a non-identity DRS changes the features
    assert not np.allclose(probe(x, training=False).numpy(), expected, rtol=1e-3, atol=1e-3)
    tf.keras.backend.clear_session()


@pytest.mark.slow
def test_drs_mode_trains_only_drs_and_head_in_one_step():
    tf.keras.utils.set_random_seed(0)
    model = registry.create("classifier", "drs-resnet101").build(SHAPE, 2)
    trainable = {w.name.split("/")[0] for w in model.trainable_weights}
    assert trainable == {f"{b}_drs" for b in BLOCKS} | {"head_dense"}
    x, y = _images(8), np.tile([[1.0, 0.0], [0.0, 1.0]], (4, 1))
    # Random backbones give huge features: scale the head so the sigmoid is not saturated.
    feats = tf.keras.Model(model.inputs, model.get_layer("head_gap").output)(x).numpy()
    dense = model.get_layer("head_dense")
    kernel = np.random.default_rng(0).normal(0, 1 / (feats.std() * np.sqrt(feats.shape[1])), (feats.shape[1], 1))
    dense.set_weights([kernel.astype(np.float32), np.zeros(1, np.float32)])
    before = {w.name: w.numpy().copy() for w in model.weights}
    model.train_on_batch(x, y)
    changed = {w.name for w in model.weights if not np.array_equal(w.numpy(), before[w.name])}
    layers_changed = {name.split("/")[0] for name in changed}
    assert layers_changed == trainable  # every DRS layer and the head moved ...
    frozen = [w for w in model.weights if w.name.split("/")[0] not in trainable]
    assert any("moving_mean" in w.name for w in frozen)  # ... BatchNorm statistics did not (inference mode)
    tf.keras.backend.clear_session()


@pytest.mark.slow
def test_byra_table1_count_at_224():
    from bench.counts import parameter_counts

    counts = parameter_counts("drs-resnet101", "drs", 224)
    assert counts["trainable"] == 101_471  # Byra 2021 Table 1, DRS row
    assert counts["head"] == 2_049 and counts["drs"] == 99_422
    assert [(g["h"], g["c"], g["blocks"], g["total"]) for g in counts["drs_groups"]] == [
        (56, 256, 3, 20_352), (28, 512, 4, 10_368), (14, 1024, 23, 56_120), (7, 2048, 3, 12_582)]


def test_saved_and_reloaded_drs_network_predicts_identically(tmp_path):
    """``model.save`` to .keras and ``load_model``, on a small DRS network with the sigmoid-pair
    head (Keras 2.15 reads the full ResNet101's 170 MB .keras back in over a minute; its
    architecture round trip is the next test)."""
    from methods.classify.layers import SigmoidPair

    body = _tiny_resnet(0)
    _randomise_drs(body, seed=1, scale=0.5)
    logit = tf.keras.layers.Dense(1, name="head_dense")(body.output)
    model = tf.keras.Model(body.inputs, SigmoidPair(name="head_sigmoid_pair")(logit))
    x = np.random.default_rng(2).normal(size=(4, 4, 4, 2)).astype(np.float32)
    model.save(tmp_path / "drs.keras")
    again = tf.keras.models.load_model(tmp_path / "drs.keras")
    assert [type(la).__name__ for la in again.layers].count("DRS") == 2
    assert isinstance(again.layers[-1], SigmoidPair)
    expected = model.predict(x, verbose=0)
    assert not np.allclose(expected, 0.5)  # the DRS weights and head matter
    np.testing.assert_array_equal(again.predict(x, verbose=0), expected)
    for a, b in zip(drs.drs_layers(again), drs.drs_layers(model), strict=True):
        for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
            np.testing.assert_array_equal(wa, wb)


@pytest.mark.slow
def test_drs_resnet101_architecture_round_trips_through_its_config(classifier_model):
    _, model = classifier_model("drs-resnet101", SHAPE, transfer="drs+finetune-last-block")  # shared, seed 0
    built = [layer.get_weights() for layer in drs.drs_layers(model)]
    try:
        _randomise_drs(model, seed=1)
        again = tf.keras.models.model_from_json(model.to_json())
        again.set_weights(model.get_weights())
        x = _images(3, seed=2)
        assert [la.name for la in again.layers] == [la.name for la in model.layers]
        logits = [tf.keras.Model(m.inputs, m.get_layer("head_dense").output)(x).numpy() for m in (model, again)]
        np.testing.assert_array_equal(logits[0], logits[1])
        assert np.ptp(logits[0]) > 0
    finally:  # the shared model goes back to its built weights
        for layer, weights in zip(drs.drs_layers(model), built, strict=True):
            layer.set_weights(weights)
    tf.keras.backend.clear_session()


# --------------------------------------------------------------------------- analysis


def _tiny_resnet(seed: int):
    """Two 'residual blocks' with Keras ResNet names: conv → add → DRS → ReLU ``{block}_out``."""
    tf.keras.utils.set_random_seed(seed)
    inp = tf.keras.Input((4, 4, 2))
    x = inp
    for block in ("conv2_block1", "conv2_block2"):
        y = tf.keras.layers.Conv2D(2, 3, padding="same", name=f"{block}_conv")(x)
        y = tf.keras.layers.Add(name=f"{block}_add")([x, y])
        y = DRS(name=f"{block}_drs")(y)
        x = tf.keras.layers.Activation("relu", name=f"{block}_out")(y)
    return tf.keras.Model(inp, tf.keras.layers.GlobalAveragePooling2D()(x))


def _numpy_block_outputs(model, x):
    """Forward pass in NumPy through the tiny network (Keras Conv2D is a cross-correlation)."""
    from scipy.signal import correlate

    outs = []
    for block in ("conv2_block1", "conv2_block2"):
        kernel, bias = model.get_layer(f"{block}_conv").get_weights()
        sm, sb, dm, db = model.get_layer(f"{block}_drs").get_weights()
        conv = np.stack([sum(correlate(x[..., ci], kernel[:, :, ci, co][None], mode="same")
                             for ci in range(x.shape[-1])) + bias[co] for co in range(kernel.shape[-1])], -1)
        x = np.maximum(dm * (sm * (x + conv) + sb) + db, 0)
        outs.append(x)
    return outs


def test_activation_rates_match_a_numpy_count():
    model, reference = _tiny_resnet(0), _tiny_resnet(0)
    _randomise_drs(model, seed=3, scale=0.8)
    x = np.random.default_rng(1).normal(size=(5, 4, 4, 2)).astype(np.float32)
    table = drs.activation_rates(model, reference, x, batch_size=2)  # batches of 2, 2, 1

    ours, ref = _numpy_block_outputs(model, x), _numpy_block_outputs(reference, x)
    for got, want in zip(ours, [o.numpy() for o in tf.keras.Model(model.inputs, [
            model.get_layer(n).output for n in ("conv2_block1_out", "conv2_block2_out")])(x)], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)  # the NumPy network is the model
    assert table["name"].tolist() == ["conv2_block1", "conv2_block2"] and table["block"].tolist() == [1, 2]
    for i, (a, b) in enumerate(zip(ours, ref, strict=True)):
        assert table["rate"][i] == pytest.approx(np.mean(a > 0))  # Eq. 5
        assert table["rate_reference"][i] == pytest.approx(np.mean(b > 0))
        assert table["rate_change"][i] == pytest.approx(np.mean((a > 0) != (b > 0)))  # Eq. 6–7
    assert 0 < table["rate_change"].max() < 1

    same = drs.activation_rates(reference, reference, x)
    assert (same["rate_change"] == 0).all() and np.allclose(same["rate"], same["rate_reference"])


def test_activation_rates_find_blocks_inside_a_nested_backbone():
    inner = _tiny_resnet(0)
    outer_in = tf.keras.Input((4, 4, 2))
    model = tf.keras.Model(outer_in, tf.keras.layers.Dense(1)(inner(outer_in)))
    x = np.random.default_rng(2).normal(size=(3, 4, 4, 2)).astype(np.float32)
    table = drs.activation_rates(model, model, x, names=["conv2_block1_out", "conv2_block2_out"])
    assert table["rate"].between(0, 1).all() and (table["rate_change"] == 0).all()


def test_drs_deviation_from_identity():
    model = _tiny_resnet(0)
    first = model.get_layer("conv2_block1_drs")
    sm = np.ones((4, 4, 1), np.float32)
    sm[0, 0, 0] = 1.5  # one spatial scale off by 0.5: mean 0.5/16, max 0.5
    first.set_weights([sm, np.zeros((4, 4, 1), np.float32), np.ones(2, np.float32),
                       np.array([0.0, -0.2], np.float32)])
    table = drs.drs_deviation(model)
    assert table["name"].tolist() == ["conv2_block1", "conv2_block2"]
    assert table.loc[0, "spatial_scale_mean_abs"] == pytest.approx(0.5 / 16)
    assert table.loc[0, "spatial_scale_max_abs"] == pytest.approx(0.5)
    assert table.loc[0, "channel_bias_mean_abs"] == pytest.approx(0.1)
    assert (table.loc[1, [c for c in table.columns if c.endswith("_abs")]] == 0).all()
    summary = drs.deviation_summary(model)
    assert summary["spatial_scale"] == pytest.approx({"mean_abs": 0.5 / 32, "max_abs": 0.5})
    assert summary["channel_bias"] == pytest.approx({"mean_abs": 0.2 / 4, "max_abs": 0.2}, rel=1e-6)
    assert summary["spatial_bias"] == {"mean_abs": 0.0, "max_abs": 0.0}


@pytest.mark.slow
def test_train_stage_writes_the_activation_analysis(tmp_path_factory, tmp_path):
    import pandas as pd

    from bench.stages import train
    from tests.test_training import smoke_run_inputs

    quick = {"classifier": "drs-resnet101", "epochs": 1, "batch_size": 16, "grid_learning_rate": [],
             "grid_beta_1": [], "repeats": 1}
    params, prepared, augmented = smoke_run_inputs(tmp_path_factory, {"drs-quick": quick})
    meta = train.run(params, prepared, augmented, "drs-quick", 0, tmp_path)
    assert meta["mode"] == "drs" and meta["trainable_params"] == 65_726 + 2_049  # DRS at 32 px + head
    assert meta["selection"]["n_candidates"] == 1 and meta["analysis_split"] == "test"
    table = pd.read_csv(tmp_path / "activation.csv")
    assert table["name"].tolist() == BLOCKS and table["block"].tolist() == list(range(1, 34))
    assert {"rate", "rate_reference", "rate_change", "spatial_scale_max_abs", "channel_bias_mean_abs"} <= set(table)
    for col in ("rate", "rate_reference", "rate_change"):
        assert table[col].between(0, 1).all()
    dev = meta["drs_deviation"]
    assert set(dev) == set(drs.DRS_PARAMS)
    assert all(0 <= d["mean_abs"] <= d["max_abs"] for d in dev.values())
    assert max(d["max_abs"] for d in dev.values()) > 0  # one epoch of Adam moved the DRS layers
    assert len(pd.read_csv(tmp_path / "grid.csv")) == 1
