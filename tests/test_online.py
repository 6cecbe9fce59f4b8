"""Online augmentation (bench.online): ``mode: online`` entries of ``augment.methods``, the augment
stage's manifest, the per-minibatch transforms and their reproducibility (re-run, resume, seeds in
one process)."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from bench import online, registry, training
from bench.errors import ConfigError, RegistryError
from bench.plugins import ImageSet
from tests._resume import interrupted_then_resumed

PARAMS_FILE = Path(__file__).resolve().parents[1] / "params.yaml"
ONLINE_METHODS = ("geometric-rotation", "geometric-scaling", "geometric-flipping", "classical")


def _images(n: int = 12, size: int = 16, seed: int = 0) -> np.ndarray:
    """Asymmetric grey images in [0, 1]: every flip, rotation and zoom changes them."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, size, dtype=np.float32)
    return np.clip(0.5 * ramp[None, :, None] * ramp[None, None, :] ** 2
                   + 0.5 * rng.random((n, size, size), dtype=np.float32), 0, 1).astype(np.float32)


def _plugin(name: str, **params):
    return registry.create("augmenter", name, **params)


# --------------------------------------------------------------------------- the transforms


@pytest.mark.parametrize("name", ["geometric-rotation", "geometric-scaling", "classical"])
def test_online_draws_the_transforms_offline_generate_draws(name):
    """Same parameters, same rng: ``transform`` of the training images is ``generate``'s first copy
    of each (source k = image k), so offline and online rows differ only in the mode."""
    images = _images()
    train = ImageSet(images, np.arange(len(images)) % 2, [f"i{k}" for k in range(len(images))])
    plugin = _plugin(name)
    offline = plugin.generate(train, len(train), np.random.default_rng(5)).images
    online_out = plugin.transform(images.copy(), np.random.default_rng(5))
    np.testing.assert_array_equal(online_out, offline)
    assert not np.array_equal(online_out, images)


def test_online_rotation_follows_max_angle():
    from methods.augment._warp import affine_matrix, warp

    images = _images()
    out = _plugin("geometric-rotation", max_angle=7.0).transform(images, np.random.default_rng(1))
    angles = np.random.default_rng(1).uniform(-7.0, 7.0, len(images))
    assert np.abs(angles).max() <= 7.0
    for im, a, got in zip(images, angles, out, strict=True):
        np.testing.assert_array_equal(got, warp(im, affine_matrix(rotation_deg=a), mode="reflect"))


def test_online_scaling_uses_the_configured_scale():
    from methods.augment._warp import affine_matrix, warp

    images = _images()
    out = _plugin("geometric-scaling", min_scale=1.25, max_scale=1.25).transform(images, np.random.default_rng(2))
    for im, got in zip(images, out, strict=True):
        np.testing.assert_allclose(got, warp(im, affine_matrix(zoom=(1.25, 1.25)), mode="reflect"), atol=1e-6)


@pytest.mark.parametrize(("flips", "allowed"), [
    (["horizontal"], {"identity", "horizontal"}),
    (["horizontal", "vertical", "both"], {"identity", "horizontal", "vertical", "both"}),
])
def test_online_flipping_draws_identity_or_one_of_the_configured_flips(flips, allowed):
    from methods.augment.geometric import FLIPS

    images = _images(n=64)
    out = _plugin("geometric-flipping", flips=flips).transform(images, np.random.default_rng(3))
    seen = set()
    for im, got in zip(images, out, strict=True):
        match = [f for f, s in {"identity": (slice(None), slice(None)), **FLIPS}.items() if np.array_equal(got, im[s])]
        assert len(match) == 1
        seen.add(match[0])
    assert seen == allowed  # every choice occurs in 64 draws, none outside the configured flips


def test_only_plugins_with_a_transform_have_an_online_mode():
    for name in ONLINE_METHODS:
        assert registry.modes_of(name) == ("append", "online")
    for name in ("none", "nst-gatys", "stylegan2-ada", "control-more-data", "control-shuffled-labels"):
        assert "online" not in registry.modes_of(name)


def test_batches_draw_from_seed_epoch_and_batch_only():
    images = _images(n=20)
    aug = online.OnlineAugmentation(_plugin("geometric-rotation").transform, images, lambda x: x[..., None])
    rows = np.random.default_rng(0).permutation(20)
    a = aug.epoch_inputs(rows, seed=4, epoch=2, batch_size=8)
    np.testing.assert_array_equal(a, aug.epoch_inputs(rows, seed=4, epoch=2, batch_size=8))
    assert a.shape == (20, 16, 16, 1)
    assert not np.array_equal(a, images[rows][..., None])  # really transformed
    for other in ({"seed": 5, "epoch": 2}, {"seed": 4, "epoch": 3}):
        assert not np.array_equal(a, aug.epoch_inputs(rows, batch_size=8, **other))
    # batch 1 is its own draw: the same rows in batch 0 of another call are transformed differently
    second = aug.epoch_inputs(rows[8:16], seed=4, epoch=2, batch_size=8)
    assert not np.array_equal(second, a[8:16])
    np.testing.assert_array_equal(aug.epoch_inputs(rows[:8], seed=4, epoch=2, batch_size=8), a[:8])


# --------------------------------------------------------------------------- params.yaml


def _write(tmp_path, changes: dict) -> Path:
    raw = yaml.safe_load(PARAMS_FILE.read_text())
    data = copy.deepcopy(raw)
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_an_online_variant_inherits_its_plugin_section(tmp_path):
    from bench.config import load_params

    path = _write(tmp_path, {"augment.methods.geometric-rotation-online": {"method": "geometric-rotation",
                                                                          "mode": "online"},
                             "augment.methods.geometric-rotation.max_angle": 9.0})
    params = load_params(path, "smoke", ["matrix.methods=[none, geometric-rotation, geometric-rotation-online]"])
    assert params.method_plugin("geometric-rotation-online") == "geometric-rotation"
    assert params.method_mode("geometric-rotation-online") == "online"
    assert params.method_mode("geometric-rotation") == "append"
    offline, live = params.method_params("geometric-rotation"), params.method_params("geometric-rotation-online")
    assert offline == live and live.max_angle == 9.0 and live.factor == 2  # the smoke profile's factor too
    assert params.quality_methods() == []  # online methods store no images to measure


@pytest.mark.parametrize(("changes", "key", "text"), [
    ({"augment.methods.x": {"method": "nst-gatys", "mode": "online"}}, "augment.methods.x.mode", "no online mode"),
    ({"augment.methods.x": {"method": "control-more-data", "mode": "online"}}, "augment.methods.x.mode",
     "no online mode"),
    ({"augment.methods.none": {"mode": "online"}}, "augment.methods.none.mode", "no online mode"),
    ({"augment.methods.x": {"method": "classical", "mode": "onlin"}}, "augment.methods.x.mode", "'online'"),
    ({"augment.methods.x": {"method": "classical", "mode": "replace"}}, "augment.methods.x.mode",
     "cannot run in mode 'replace'"),
    ({"augment.methods.x": {"method": "clasical", "mode": "online"}}, "augment.methods.x", "classical"),
    ({"augment.methods.x": {"method": "classical", "mode": "online", "zoom": 0.2}}, "augment.methods.x.zoom",
     "zoom_range"),
    ({"augment.methods.x": {"method": "classical", "mode": "online"},
      "augment.methods.y": {"method": "x", "mode": "online"}}, "augment.methods.y.method", "itself a variant"),
    ({"augment.methods.x": {"method": "classical", "mode": "online"}, "quality.methods": ["x"]},
     "quality.methods.0", "stores no images"),
])
def test_bad_online_entries_name_the_key_and_what_to_do(tmp_path, changes, key, text):
    from bench.config import load_params

    with pytest.raises((ConfigError, RegistryError)) as info:
        load_params(_write(tmp_path, changes), "smoke")
    message = str(info.value)
    assert key in message and text in message
    if "no online mode" in text:
        assert "remove `mode: online`" in message and "augbench describe" in message


# --------------------------------------------------------------------------- the stages


def _tiny_classifier():
    import tensorflow as tf

    from bench.plugins import Classifier

    @dataclasses.dataclass(frozen=True)
    class TinyParams:
        transfer: str = "finetune-all"
        epochs: int = 2
        batch_size: int = 8
        learning_rate: float = 5e-2
        early_stopping_patience: int = 0
        reduce_lr_patience: int = 0

    class TinyOnline(Classifier):
        Params = TinyParams
        paper = summary = "test double"

        def preprocess(self, images):
            return np.asarray(images, np.float32)[..., None]

        def build(self, input_shape, n_classes):
            model = tf.keras.Sequential([tf.keras.Input(input_shape), tf.keras.layers.Conv2D(3, 3),
                                         tf.keras.layers.GlobalAveragePooling2D(), tf.keras.layers.Dropout(0.3),
                                         tf.keras.layers.Dense(2, activation="softmax")])
            model.compile(tf.keras.optimizers.SGD(self.params.learning_rate, momentum=0.9),
                          "categorical_crossentropy", metrics=["accuracy"])
            return model

    return TinyOnline


@pytest.fixture(scope="module")
def online_stage(tmp_path_factory):
    """Smoke params with a tiny classifier and an online flipping row; the prepared phantom; the
    augment outputs of `none`, `geometric-flipping` and `geometric-flipping-online`."""
    from bench.config import load_params
    from bench.stages import augment, prepare
    from bench.stages.common import load_prepared

    registry.register("classifier", "tiny-online-test", _tiny_classifier())
    try:
        params = load_params(PARAMS_FILE, "smoke", [
            "augment.methods.geometric-flipping-online={method: geometric-flipping, mode: online}",
            "matrix.methods=[none, geometric-flipping, geometric-flipping-online]"], validate_plugins=True)
        params = dataclasses.replace(params, train=dataclasses.replace(
            params.train, classifiers={"tiny": {"classifier": "tiny-online-test"}}, explain_images=1))
        root = tmp_path_factory.mktemp("online")
        prepare.prepare(params, root / "prepared")
        prepared = load_prepared(root / "prepared")
        for method in ("none", "geometric-flipping", "geometric-flipping-online"):
            augment.augment(params, prepared, method, root / method)
        yield params, prepared, root
    finally:
        registry.unregister("classifier", "tiny-online-test")


def test_the_online_augment_stage_writes_no_images_only_the_manifest(online_stage):
    params, prepared, root = online_stage
    out = root / "geometric-flipping-online"
    assert sorted(p.name for p in out.iterdir()) == ["grid.png", "meta.json", "online.json"]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["mode"] == "online" and meta["plugin"] == "geometric-flipping" and meta["n_synthetic"] == 0
    spec = json.loads((out / "online.json").read_text())
    assert spec["plugin"] == "geometric-flipping" and spec["method"] == "geometric-flipping-online"
    assert spec["params"] == json.loads((root / "geometric-flipping" / "meta.json").read_text())["params"]
    assert len(spec["code"]) == 64
    assert (root / "geometric-flipping" / "synthetic.npz").is_file()  # the offline row is unchanged


def _train(params, prepared, augmented, out, budget="steps", seed=0, reuse=None):
    from bench.stages import train

    params = dataclasses.replace(params, train=dataclasses.replace(params.train, budget=budget))
    return train.run(params, prepared, augmented, "tiny", seed, out, reuse=reuse, explain=False)


@pytest.mark.slow
@pytest.mark.parametrize("budget", ["steps", "epochs"])
def test_an_online_row_takes_the_steps_of_none_on_transformed_batches(online_stage, tmp_path, monkeypatch, budget):
    params, prepared, root = online_stage
    seen, real = [], training.epoch_batches

    def spy(x, y, order, batch_size):
        seen.append((np.asarray(x)[order].copy(), len(order)))
        return real(x, y, order, batch_size)

    monkeypatch.setattr(training, "epoch_batches", spy)
    none = _train(params, prepared, root / "none", tmp_path / "none", budget)
    plain = seen[:]
    seen.clear()
    meta = _train(params, prepared, root / "geometric-flipping-online", tmp_path / "online", budget)
    assert meta["augmentation_mode"] == "online" and none["augmentation_mode"] == "append"
    assert meta["training_set"]["n_total"] == meta["training_set"]["n_split"] == none["training_set"]["n_total"]
    assert meta["optimizer_steps"] == none["optimizer_steps"] and meta["epoch_images"] == none["epoch_images"]
    assert [n for _, n in seen] == [n for _, n in plain]
    # the same images in the same order as `none`, each batch transformed: not the identity
    for (x_online, _), (x_none, _) in zip(seen, plain, strict=True):
        assert x_online.shape == x_none.shape and not np.array_equal(x_online, x_none)
    assert json.loads((tmp_path / "online" / "meta.json").read_text())["training_set"]["mode"] == "online"


@pytest.mark.slow
def test_an_online_run_is_bit_identical_again_and_with_seeds_in_one_process(online_stage, tmp_path):
    params, prepared, root = online_stage
    augmented = root / "geometric-flipping-online"
    reuse = training.ModelReuse()  # seeds 0 then 1 in one process, as `augbench train --seed 0,1`
    _train(params, prepared, augmented, tmp_path / "cell0", seed=0, reuse=reuse)
    _train(params, prepared, augmented, tmp_path / "cell1", seed=1, reuse=reuse)
    _train(params, prepared, augmented, tmp_path / "alone1", seed=1)
    _train(params, prepared, augmented, tmp_path / "again1", seed=1)
    for name in ("predictions.csv", "history.csv"):
        alone = (tmp_path / "alone1" / name).read_text()
        assert (tmp_path / "again1" / name).read_text() == alone, name
        assert (tmp_path / "cell1" / name).read_text() == alone, name
    assert (tmp_path / "cell0" / "predictions.csv").read_text() != (tmp_path / "alone1" / "predictions.csv").read_text()


def _online_fit(checkpoint, epochs=4):
    """A small CNN with Dropout, SGD with momentum and an lr plateau, on online-rotated batches."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    grey = rng.random((40, 16, 16), dtype=np.float32)
    y = (grey[:, :8].mean(axis=(1, 2)) > grey[:, 8:].mean(axis=(1, 2))).astype(int)
    aug = online.OnlineAugmentation(_plugin("geometric-rotation", max_angle=30.0).transform, grey[:32],
                                    lambda x: x[..., None])
    training.seed_everything(3)
    model = tf.keras.Sequential([
        tf.keras.Input((16, 16, 1)), tf.keras.layers.Conv2D(4, 3, activation="relu"),
        tf.keras.layers.GlobalAveragePooling2D(), tf.keras.layers.Dropout(0.5),
        tf.keras.layers.Dense(2, activation="softmax")])
    model.compile(tf.keras.optimizers.SGD(0.05, momentum=0.9), "categorical_crossentropy", metrics=["accuracy"])
    p = SimpleNamespace(epochs=epochs, batch_size=8, reduce_lr_patience=1, reduce_lr_factor=0.5,
                        early_stopping_patience=0)
    return training.fit(model, p, grey[:32, ..., None], y[:32], grey[32:, ..., None], y[32:], seed=3, verbose=0,
                        checkpoint=checkpoint, online=aug)


@pytest.mark.slow
def test_an_online_training_resumed_after_an_epoch_is_bit_identical(tmp_path, monkeypatch):
    reference = _online_fit(None)
    resumed = interrupted_then_resumed(monkeypatch, _online_fit, tmp_path / "checkpoint" / "candidate0.npz")
    assert resumed.history == reference.history
    for a, b in zip(reference.model.get_weights(), resumed.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
