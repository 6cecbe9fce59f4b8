"""The classifier zoo: transfer modes, counts, preprocessing, input sizes, weights, heads, recipes."""

from __future__ import annotations

import functools
import inspect
import json

import numpy as np
import pytest

from bench import registry
from bench import weights as _weights
from bench.counts import count
from bench.errors import AugbenchError, ConfigError
from methods.classify import _keras

tf = pytest.importorskip("tensorflow")

pytestmark = pytest.mark.filterwarnings(
    # Keras 2.15 initialisers call random.randint(1, 1e9); not ours to fix.
    "ignore:non-integer arguments to randrange:DeprecationWarning")

SIZE = 32
PLAIN = ("feature-extraction", "finetune-last-block", "finetune-all")
MODES = {"resnet50": PLAIN, "inceptionv3": PLAIN, "efficientnetb0": PLAIN,
         "drs-resnet101": ("drs", "drs+finetune-last-block", "drs+finetune-all", "finetune-last-block")}
CASES = [(name, mode) for name, modes in MODES.items() for mode in modes]


def _backbone_layers(model) -> list:
    """Every layer, with nested backbones flattened in their own (topological) order."""
    out = []
    for layer in model.layers:
        out += layer.layers if isinstance(layer, tf.keras.Model) else [layer]
    return out


@pytest.fixture
def built(classifier_model):
    """``built(name, mode)``: what the freezing tests need of ``name`` built in ``mode`` at 32 px
    (the session's shared model, seed 0; only read)."""
    return functools.partial(_built, classifier_model)


def _built(classifier_model, name: str, mode: str) -> dict:
    _, model = classifier_model(name, (SIZE, SIZE, 3), transfer=mode)
    layers = _backbone_layers(model)
    bn = tf.keras.layers.BatchNormalization
    info = {"order": [la.name for la in layers],
            "can_train": {la.name for la in layers
                          if la.weights and not isinstance(la, tf.keras.layers.Normalization)},
            "trains": {la.name for la in layers if la.trainable_weights},
            "bn_trainable": {la.name: la.trainable for la in layers if isinstance(la, bn)},
            "top": [la.name for la in model.layers],
            "backbone_input": [tuple(la.input_shape[1:3]) for la in model.layers if isinstance(la, tf.keras.Model)],
            "trainable": count(model.trainable_weights),
            "non_trainable": count(model.non_trainable_weights)}
    return info


def expected_last_block(name: str, order: list[str]) -> set[str]:
    """The documented last blocks, computed independently of the plugins' own code."""
    if name == "inceptionv3":  # the mixed10 module: everything after mixed9 (heads excluded)
        return {n for n in order[order.index("mixed9") + 1:] if not n.startswith("head_")}
    if name == "efficientnetb0":
        return {n for n in order if n.startswith(("block7a_", "top_"))}
    return {n for n in order if n.startswith("conv5_block3_")}  # ResNet: the last residual block


# --------------------------------------------------------------------------- transfer modes


@pytest.mark.slow
@pytest.mark.parametrize(("name", "mode"), CASES)
def test_transfer_mode_freezes_exactly_what_it_says(name, mode, built):
    info = built(name, mode)
    head = {n for n in info["can_train"] if n.startswith("head_")}
    drs = {n for n in info["order"] if n.endswith("_drs")}
    assert bool(drs) == mode.startswith("drs")
    base = mode.removeprefix("drs").removeprefix("+") or "feature-extraction"
    backbone = {"feature-extraction": set(),
                "finetune-last-block": expected_last_block(name, info["order"]) & info["can_train"],
                "finetune-all": info["can_train"] - head - drs}[base]
    assert info["trains"] == head | drs | backbone
    assert head and (base == "feature-extraction" or backbone)
    # frozen BatchNorm layers run in inference mode (trainable=False); trained ones do not
    bn = {n: t for n, t in info["bn_trainable"].items() if not n.startswith("head_")}
    assert {n for n, t in bn.items() if t} == {n for n in bn if n in backbone}


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in MODES if n != "drs-resnet101"])
def test_counts_grow_from_feature_extraction_to_finetune_all(name, built):
    fe, last, full = (built(name, m) for m in PLAIN)
    assert fe["trainable"] < last["trainable"] < full["trainable"]
    assert len({c["trainable"] + c["non_trainable"] for c in (fe, last, full)}) == 1  # same network


@pytest.mark.slow
def test_drs_counts_grow_with_the_mode(built):
    drs, last, full = (built("drs-resnet101", m) for m in MODES["drs-resnet101"][:3])
    plain_last = built("drs-resnet101", "finetune-last-block")
    assert drs["trainable"] < last["trainable"] < full["trainable"]
    assert last["trainable"] - plain_last["trainable"] == drs["trainable"] - 2_049  # + the DRS layers


@pytest.mark.slow
def test_inceptionv3_built_for_32_px_upsizes_to_75_inside_the_model(built):
    info = built("inceptionv3", "finetune-all")
    assert "upsize" in info["top"] and info["backbone_input"] == [(75, 75)]
    assert "upsize" not in built("resnet50", "finetune-all")["top"]


def test_trainable_names_compose_drs_with_the_plain_modes():
    names, last, drs = ["a", "b", "c"], {"c"}, ["d1", "d2"]
    assert _keras.trainable_names("feature-extraction", names, last) == set()
    assert _keras.trainable_names("finetune-last-block", names, last) == {"c"}
    assert _keras.trainable_names("finetune-all", names, last) == {"a", "b", "c"}
    assert _keras.trainable_names("drs", names, last, drs) == {"d1", "d2"}
    assert _keras.trainable_names("drs+finetune-last-block", names, last, drs) == {"c", "d1", "d2"}
    assert _keras.trainable_names("drs+finetune-all", names, last, drs) == {"a", "b", "c", "d1", "d2"}
    with pytest.raises(ValueError, match="unknown transfer mode"):
        _keras.trainable_names("finetune-some", names, last)


def test_downstream_of_finds_the_layers_after_a_node():
    inp = tf.keras.Input((4,), name="in")
    a = tf.keras.layers.Dense(2, name="a")(inp)
    side = tf.keras.layers.Dense(2, name="side")(inp)
    b = tf.keras.layers.Dense(2, name="b")(a)
    out = tf.keras.layers.Add(name="join")([b, side])
    model = tf.keras.Model(inp, out)
    assert _keras.downstream_of(model, "a") == {"b", "join"}
    assert _keras.downstream_of(model, "join") == set()


# --------------------------------------------------------------------------- input size, preprocessing


@pytest.mark.parametrize(("name", "image", "expected"), [
    ("inceptionv3", 32, 75), ("inceptionv3", 128, 128), ("efficientnetb0", 16, 32), ("efficientnetb0", 64, 64),
    ("resnet50", 32, 32), ("drs-resnet101", 224, 224)])
def test_input_size_is_raised_to_the_architecture_minimum(name, image, expected):
    assert registry.create("classifier", name).input_size(image) == expected


@pytest.mark.parametrize(("name", "too_small"), [("inceptionv3", 74), ("efficientnetb0", 31), ("drs-resnet101", 31)])
def test_an_explicit_input_size_below_the_minimum_is_a_config_error(name, too_small):
    with pytest.raises(ConfigError, match=f"needs at least {too_small + 1} px") as info:
        registry.create("classifier", name, input_size=too_small)
    assert info.value.key == f"classifier.{name}.input_size"
    assert registry.create("classifier", name, input_size=too_small + 1).input_size(8) == too_small + 1


GREY = np.array([[[0.0, 1.0], [0.5, 0.25]]], np.float32)


def test_inceptionv3_preprocessing_maps_grey_to_minus_one_one():
    x = registry.create("classifier", "inceptionv3").preprocess(GREY)
    assert x.shape == (1, 2, 2, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x, np.repeat(GREY[..., None] * 2 - 1, 3, -1), atol=1e-6)


def test_efficientnetb0_preprocessing_is_0_255_for_the_in_model_rescaling():
    x = registry.create("classifier", "efficientnetb0").preprocess(GREY)
    np.testing.assert_allclose(x, np.repeat(GREY[..., None] * 255, 3, -1), rtol=1e-6)


def test_drs_resnet101_uses_the_caffe_resnet_preprocessing():
    ours = registry.create("classifier", "drs-resnet101").preprocess(GREY)
    np.testing.assert_array_equal(ours, registry.create("classifier", "resnet50").preprocess(GREY))


@pytest.mark.slow
def test_efficientnet_imagenet_weights_give_the_keras_imagenet_model(tmp_path, monkeypatch):
    """Keras adds Rescaling(1/sqrt(std)) after the Normalization only for weights='imagenet';
    we fold it into the Normalization variance. Same outputs as Keras' own ImageNet model."""
    tf.keras.utils.set_random_seed(7)
    ref = tf.keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3))
    (norm,) = [la for la in ref.layers if isinstance(la, tf.keras.layers.Normalization)]
    norm.set_weights([np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32) ** 2,
                      np.array(1000, np.int64)])
    name = _weights.IMAGENET_FILES["efficientnetb0"][0]
    path = tmp_path / "models" / name
    path.parent.mkdir()
    ref.save_weights(str(path))
    tf.keras.backend.clear_session()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setitem(_weights.IMAGENET_FILES, "efficientnetb0", (name, _weights.md5(path)))
    monkeypatch.setattr("keras.src.utils.data_utils.get_file", lambda *a, **k: str(path))

    keras_imagenet = tf.keras.applications.EfficientNetB0(include_top=False, weights="imagenet",
                                                          input_shape=(SIZE, SIZE, 3))
    x = registry.create("classifier", "efficientnetb0").preprocess(np.random.default_rng(0).random((2, SIZE, SIZE)))
    want = keras_imagenet(x, training=False).numpy()

    def ours(weights: str):
        model = registry.create("classifier", "efficientnetb0", weights=weights).build((SIZE, SIZE, 3), 2)
        return model.get_layer("efficientnetb0")(x, training=False).numpy()

    def relative_error(got):
        return np.linalg.norm(got - want) / np.linalg.norm(want)

    assert np.linalg.norm(want) > 0
    assert relative_error(ours("imagenet")) < 1e-4
    assert relative_error(ours(str(path))) > 1e-2  # a file is loaded as is: no fold, other outputs
    tf.keras.backend.clear_session()


# --------------------------------------------------------------------------- weights


KERAS_APPS = "keras.src.applications."


def test_weight_files_and_hashes_are_the_published_keras_ones():
    import importlib

    resnet = importlib.import_module(KERAS_APPS + "resnet")
    efficientnet = importlib.import_module(KERAS_APPS + "efficientnet")
    inception = importlib.import_module(KERAS_APPS + "inception_v3")
    files = _weights.IMAGENET_FILES
    assert files["resnet50"][1] == resnet.WEIGHTS_HASHES["resnet50"][1]
    assert files["resnet101"] == ("resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5",
                                  resnet.WEIGHTS_HASHES["resnet101"][1])
    assert files["efficientnetb0"] == ("efficientnetb0_notop.h5", efficientnet.WEIGHTS_HASHES["b0"][1])
    source = inspect.getsource(inception)
    assert files["inception_v3"][0] in source and f'file_hash="{files["inception_v3"][1]}"' in source
    assert _weights.URL_PREFIXES["resnet101"] == resnet.BASE_WEIGHTS_PATH
    assert _weights.URL_PREFIXES["efficientnetb0"] == efficientnet.BASE_WEIGHTS_PATH
    assert _weights.URL_PREFIXES["inception_v3"] + files["inception_v3"][0] == inception.WEIGHTS_PATH_NO_TOP


@pytest.mark.parametrize(("name", "arch"), [("resnet50", "resnet50"), ("inceptionv3", "inception_v3"),
                                            ("efficientnetb0", "efficientnetb0"), ("drs-resnet101", "resnet101")])
def test_imagenet_missing_offline_names_file_and_url(name, arch, tmp_path, monkeypatch):
    """Offline, an ImageNet build is tried once (through the mock) and the error says which
    file to put where, what to fetch, and the alternatives."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    calls = []

    def no_network(fname, origin, **kwargs):
        calls.append(origin)
        raise OSError("network is unreachable")

    monkeypatch.setattr(tf.keras.utils, "get_file", no_network)
    with pytest.raises(AugbenchError) as info:
        registry.create("classifier", name, weights="imagenet").build((SIZE, SIZE, 3), 2)
    file = _weights.IMAGENET_FILES[arch][0]
    assert calls == [_weights.URL_PREFIXES[arch] + file]
    message = str(info.value)
    assert str(tmp_path / "models" / file) in message and calls[0] in message
    assert "'none'" in message and "file path" in message


# --------------------------------------------------------------------------- heads


def _features():
    return tf.keras.Input((3, 3, 4))


def test_sigmoid_head_is_one_unit_given_as_a_probability_pair():
    from methods.classify.layers import SigmoidPair

    p = _keras.KerasParams(head="sigmoid")
    inp = _features()
    model = tf.keras.Model(inp, _keras.add_head(inp, p, 2))
    _keras.compile_model(model, p)
    assert isinstance(model.layers[-1], SigmoidPair) and model.get_layer("head_dense").units == 1
    assert model.loss == "categorical_crossentropy" and model.output_shape == (None, 2)
    x = np.random.default_rng(0).normal(size=(5, 3, 3, 4)).astype(np.float32)
    logit = tf.keras.Model(inp, model.get_layer("head_dense").output)(x).numpy()[:, 0]
    probs = model(x).numpy()
    np.testing.assert_allclose(probs[:, 1], 1 / (1 + np.exp(-logit)), rtol=1e-5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)

    single = tf.keras.Model(inp, _keras.add_head(inp, p, 1))
    _keras.compile_model(single, p)
    assert single.output_shape == (None, 1) and single.loss == "binary_crossentropy"
    assert single.get_layer("head_dense").activation is tf.keras.activations.sigmoid


def test_softmax_heads_refuse_one_output_and_optimizers_follow_params():
    inp = _features()
    with pytest.raises(ValueError, match="cannot give 1 output"):
        _keras.add_head(inp, _keras.KerasParams(head="softmax"), 1)
    p = _keras.KerasParams(optimizer="adam", learning_rate=0.01, beta_1=0.85, beta_2=0.99)
    opt = _keras.OPTIMIZERS["adam"](p)
    assert isinstance(opt, tf.keras.optimizers.Adam)
    assert (float(opt.learning_rate), float(opt.beta_1), float(opt.beta_2)) == pytest.approx((0.01, 0.85, 0.99))


# --------------------------------------------------------------------------- recipes


def test_paper_recipes_are_the_defaults():
    fedoruk = registry.params_for("classifier", "inceptionv3")
    assert (fedoruk.epochs, fedoruk.batch_size, fedoruk.monitor) == (6, 32, "val_accuracy")  # Fedoruk 2022
    assert registry.params_for("classifier", "efficientnetb0").epochs == 6
    byra = registry.params_for("classifier", "drs-resnet101")  # Byra 2021 §3.4
    assert (byra.optimizer, byra.batch_size, byra.beta_2, byra.class_weight) == ("adam", 24, 0.999, "balanced")
    assert byra.grid_learning_rate == (1e-3, 1e-2, 1e-1) and byra.grid_beta_1 == (0.85, 0.9, 0.95)
    assert (byra.repeats, byra.early_stopping_patience, byra.reduce_lr_factor, byra.reduce_lr_patience) == (3, 20, 0.9, 4)
    assert (byra.head, byra.transfer, byra.monitor, byra.select) == ("sigmoid", "drs", "val_accuracy", "val_auc")


def test_a_beta_grid_needs_adam():
    with pytest.raises(ConfigError, match="beta_1 is an Adam parameter; the optimizer is sgd") as info:
        registry.create("classifier", "resnet50", grid_beta_1=[0.9, 0.95])
    assert info.value.key == "classifier.resnet50.grid_beta_1"


# --------------------------------------------------------------------------- params-count


@pytest.mark.slow
def test_params_count_command(capsys):
    from bench.cli import main

    assert main(["params-count", "resnet50", "--mode", "feature-extraction", "--input-size", "32", "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["trainable"] == counts["head"] == 2 * 2048 + 2048 * 2 + 2  # BN γ/β + Dense(2048→2)
    assert counts["mode"] == "feature-extraction" and counts["input_size"] == 32
    assert main(["params-count", "inceptionv3", "--input-size", "32"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "inceptionv3, mode finetune-all, input 75 px"
    assert main(["params-count", "resnet50", "--mode", "drs", "--input-size", "32"]) == 2
    assert "classifier.resnet50.transfer" in capsys.readouterr().err


# --------------------------------------------------------------------------- the train stage


@pytest.mark.slow
def test_train_stage_upsizes_for_inceptionv3_and_records_the_mode(tmp_path_factory, tmp_path, built):
    import pandas as pd

    from bench.stages import train
    from tests.test_training import smoke_run_inputs

    variant = {"classifier": "inceptionv3", "transfer": "finetune-last-block", "epochs": 1, "batch_size": 16}
    params, prepared, augmented = smoke_run_inputs(tmp_path_factory, {"inc-last": variant})
    meta = train.run(params, prepared, augmented, "inc-last", 0, tmp_path)
    assert meta["input_size"] == 75 and meta["mode"] == "finetune-last-block" and meta["plugin"] == "inceptionv3"
    assert meta["trainable_params"] == built("inceptionv3", "finetune-last-block")["trainable"]
    assert meta["trainable_params"] + meta["non_trainable_params"] == 21_806_882
    assert not (tmp_path / "activation.csv").exists()
    preds = pd.read_csv(tmp_path / "predictions.csv")
    assert set(preds["split"]) == {"val", "test"} and preds["score"].between(0, 1).all()
