"""The shared training loop: best-validation epoch kept, monitors, class weights, heads, grids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

tf = pytest.importorskip("tensorflow")

pytestmark = pytest.mark.filterwarnings(
    # Keras 2.15 initialisers call random.randint(1, 1e9); not ours to fix.
    "ignore:non-integer arguments to randrange:DeprecationWarning")

from bench.training import restore_best_callback  # noqa: E402


def _model():
    tf.keras.utils.set_random_seed(0)
    return tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2)])


def test_best_epoch_weights_are_restored_without_early_stop():
    model = _model()
    cb = restore_best_callback()
    cb.set_model(model)
    cb.on_train_begin()
    best = [w + 1.0 for w in model.get_weights()]
    model.set_weights(best)
    cb.on_epoch_end(0, {"val_loss": 0.5})
    model.set_weights([w + 7.0 for w in best])
    cb.on_epoch_end(1, {"val_loss": 0.9})
    cb.on_epoch_end(2, {"val_loss": float("nan")})
    cb.on_train_end()
    for got, want in zip(model.get_weights(), best, strict=True):
        np.testing.assert_array_equal(got, want)


def test_fit_returns_model_at_best_validation_epoch():
    """End to end through keras.fit: the final weights give the lowest val loss seen."""
    from types import SimpleNamespace

    from bench.training import fit

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype("float32")
    y = (x[:, 0] > 0).astype(int)
    xv, yv = x[:16], 1 - y[:16]  # validation labels flipped: val loss rises as training fits
    model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2, activation="softmax")])
    model.compile(tf.keras.optimizers.SGD(0.5), "categorical_crossentropy")
    p = SimpleNamespace(epochs=6, batch_size=16, early_stopping_patience=None,
                        reduce_lr_factor=0.5, reduce_lr_patience=100)
    result = fit(model, p, x, y, xv, yv, verbose=0)
    val_loss = result.history["val_loss"]
    assert result.best_epoch == int(np.argmin(val_loss)) + 1 and result.best_epoch < len(val_loss)
    final = model.evaluate(xv, tf.keras.utils.to_categorical(yv, 2), verbose=0)
    assert final == pytest.approx(min(val_loss), rel=1e-5)


def test_fit_on_val_auc_keeps_the_epoch_with_the_highest_validation_auc():
    """monitor: val_auc: the AUC of P(positive) on the validation split each epoch (the number the
    report gives), the best epoch kept — not Keras' "auto" direction, which takes it for a loss."""
    from types import SimpleNamespace

    from sklearn.metrics import roc_auc_score

    from bench.training import fit

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype("float32")
    y = (x[:, 0] > 0).astype(int)
    xv, yv = x[:16], np.where(np.arange(16) % 3 == 0, 1 - y[:16], y[:16])  # partly flipped: AUC moves both ways
    model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2, activation="softmax")])
    model.compile(tf.keras.optimizers.SGD(0.5), "categorical_crossentropy")
    p = SimpleNamespace(epochs=6, batch_size=16, monitor="val_auc", early_stopping_patience=None,
                        reduce_lr_factor=0.5, reduce_lr_patience=100)
    result = fit(model, p, x, y, xv, yv, verbose=0)
    val_auc = result.history["val_auc"]
    assert len(val_auc) == 6 and result.best_epoch == int(np.argmax(val_auc)) + 1
    assert roc_auc_score(yv, model.predict(xv, verbose=0)[:, 1]) == pytest.approx(max(val_auc))


def test_val_auc_callbacks_maximise():
    from types import SimpleNamespace

    from bench.training import callbacks_for

    kinds = {type(cb).__name__: cb for cb in callbacks_for(SimpleNamespace(
        monitor="val_auc", early_stopping_patience=3, reduce_lr_factor=0.5, reduce_lr_patience=2))}
    assert kinds["EarlyStopping"].monitor_op is np.greater
    assert kinds["ReduceLROnPlateau"].mode == "max"


# --------------------------------------------------------------------------- monitors, class weights, heads


def test_restore_best_keeps_the_highest_validation_accuracy():
    model = _model()
    cb = restore_best_callback("val_accuracy")
    cb.set_model(model)
    cb.on_train_begin()
    model.set_weights([w + 1.0 for w in model.get_weights()])
    cb.on_epoch_end(0, {"val_accuracy": 0.6, "val_loss": 0.9})
    best = [w + 2.0 for w in model.get_weights()]
    model.set_weights(best)
    cb.on_epoch_end(1, {"val_accuracy": 0.8, "val_loss": 1.5})  # worse loss, better accuracy: kept
    model.set_weights([w + 5.0 for w in best])
    cb.on_epoch_end(2, {"val_accuracy": 0.8, "val_loss": 0.1})  # a tie is not an improvement
    cb.on_train_end()
    for got, want in zip(model.get_weights(), best, strict=True):
        np.testing.assert_array_equal(got, want)


def test_best_epoch_index_follows_the_monitor_direction():
    from bench.training import best_epoch_index

    assert best_epoch_index([0.5, 0.3, 0.3, 0.4], "val_loss") == 1
    assert best_epoch_index([0.5, 0.7, 0.7, 0.6], "val_accuracy") == 1
    assert best_epoch_index([float("nan"), 0.2, 0.1], "val_loss") == 2
    assert best_epoch_index([float("nan")], "val_loss") == 0


def test_callbacks_follow_monitor_and_zero_patience_means_off():
    from types import SimpleNamespace

    from bench.training import callbacks_for

    on = callbacks_for(SimpleNamespace(monitor="val_accuracy", early_stopping_patience=20,
                                       reduce_lr_factor=0.9, reduce_lr_patience=4))
    kinds = {type(cb).__name__: cb for cb in on}
    assert kinds["EarlyStopping"].monitor == "val_accuracy" and kinds["EarlyStopping"].patience == 20
    assert kinds["ReduceLROnPlateau"].monitor == "val_accuracy" and kinds["ReduceLROnPlateau"].factor == 0.9
    assert kinds["ReduceLROnPlateau"].patience == 4
    off = callbacks_for(SimpleNamespace(monitor="val_loss", early_stopping_patience=0, reduce_lr_patience=0))
    assert {type(cb).__name__ for cb in off} == {"TerminateOnNaN", "RestoreBest"}


def test_balanced_class_weights_are_inverse_to_frequency():
    from bench.errors import AugbenchError
    from bench.training import class_weights

    y = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    w = class_weights(y, "balanced")
    assert w == pytest.approx({0: 8 / (2 * 6), 1: 8 / (2 * 2)})
    assert w[1] / w[0] == pytest.approx(6 / 2)  # inverse to the class frequencies
    assert np.mean([w[c] for c in y]) == pytest.approx(1.0)
    assert class_weights(y, "none") is None
    with pytest.raises(AugbenchError, match="every class"):
        class_weights(np.zeros(5, int), "balanced")


@pytest.mark.parametrize(("mode", "moves"), [("none", True), ("balanced", False)])
def test_fit_applies_class_weights_to_a_sigmoid_unit(mode, moves):
    """Constant inputs, a zero-initialised sigmoid unit (p = 0.5), 6 negatives and 2 positives:
    the gradient is Σ w_i (p − y_i), which balanced weights make exactly zero."""
    from types import SimpleNamespace

    from bench.training import fit

    model = tf.keras.Sequential([tf.keras.Input((1,)),
                                 tf.keras.layers.Dense(1, activation="sigmoid", kernel_initializer="zeros")])
    model.compile(tf.keras.optimizers.SGD(0.5), "binary_crossentropy", metrics=["accuracy"])
    x = np.ones((8, 1), np.float32)
    y = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    p = SimpleNamespace(epochs=1, batch_size=8, early_stopping_patience=0, reduce_lr_patience=0,
                        class_weight=mode)
    fit(model, p, x, y, x, y, verbose=0)
    prob = float(model(x[:1])[0, 0])
    if moves:
        assert prob < 0.49  # pulled towards the majority class
    else:
        assert prob == pytest.approx(0.5, abs=1e-6)


def test_targets_match_the_output_width():
    from bench.training import targets

    y = np.array([0, 1, 1])
    one = tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(1)])
    two = tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(2)])
    np.testing.assert_array_equal(targets(one, y), [[0.0], [1.0], [1.0]])
    np.testing.assert_array_equal(targets(two, y), [[1, 0], [0, 1], [0, 1]])


def test_predict_positive_reads_a_single_sigmoid_unit():
    from bench.training import predict_positive

    inp = tf.keras.Input((1,))
    model = tf.keras.Model(inp, tf.keras.layers.Activation("sigmoid")(inp))
    x = np.array([[-2.0], [0.0], [3.0]], np.float32)
    np.testing.assert_allclose(predict_positive(model, x), 1 / (1 + np.exp(-x[:, 0])), rtol=1e-6)


def test_predict_outputs_equal_keras_predict_for_a_batchnorm_cnn():
    """The traced inference pass gives exactly ``model.predict``'s outputs (same 64-image batches,
    inference-mode BatchNorm and Dropout), for a last batch of another size and after the weights
    change (the trace reads the variables, it does not capture their values)."""
    from bench.training import predict_outputs

    tf.keras.utils.set_random_seed(3)
    model = tf.keras.Sequential([
        tf.keras.Input((12, 12, 3)), tf.keras.layers.Conv2D(4, 3), tf.keras.layers.BatchNormalization(),
        tf.keras.layers.ReLU(), tf.keras.layers.GlobalAveragePooling2D(), tf.keras.layers.Dropout(0.5),
        tf.keras.layers.Dense(2, activation="softmax")])
    x = np.random.default_rng(0).random((100, 12, 12, 3), dtype=np.float32)
    for _ in range(2):
        np.testing.assert_array_equal(predict_outputs(model, x), model.predict(x, batch_size=64, verbose=0))
        model.set_weights([w * 1.5 + 0.1 for w in model.get_weights()])
    assert predict_outputs(model, x[:0]).shape == (0, 2)


# --------------------------------------------------------------------------- grid search


def test_grid_candidates_order_and_seeds():
    from types import SimpleNamespace

    from bench.training import grid_candidates

    p = SimpleNamespace(learning_rate=5e-4, beta_1=0.9, grid_learning_rate=(1e-3, 1e-2, 1e-1),
                        grid_beta_1=(0.85, 0.9, 0.95), repeats=3)
    cands = grid_candidates(p, seed=7)
    assert len(cands) == 27
    assert [(c.learning_rate, c.beta_1, c.repeat) for c in cands[:4]] == [
        (1e-3, 0.85, 0), (1e-3, 0.85, 1), (1e-3, 0.85, 2), (1e-3, 0.9, 0)]
    assert [c.index for c in cands] == list(range(27))
    assert cands[0].seed == 7 and len({c.seed for c in cands}) == 27
    assert [c.seed for c in grid_candidates(p, seed=7)] == [c.seed for c in cands]  # deterministic
    assert [c.seed for c in grid_candidates(p, seed=8)][1:] != [c.seed for c in cands][1:]
    single = grid_candidates(SimpleNamespace(learning_rate=5e-4, beta_1=0.8), seed=3)
    assert [(c.learning_rate, c.beta_1, c.repeat, c.seed) for c in single] == [(5e-4, 0.8, 0, 3)]


def _fake_grid(val_auc, val_loss, test_auc):
    """A fit function whose candidates have the given validation and (hidden) test scores."""
    from bench.training import Trial

    def fit_one(c):
        return Trial(c, val_loss[c.index], val_auc[c.index], best_epoch=1, epochs=2,
                     state={"test_auc": test_auc[c.index]})

    return fit_one


def test_grid_selects_on_validation_not_test():
    from types import SimpleNamespace

    from bench.training import grid_candidates, run_grid

    cands = grid_candidates(SimpleNamespace(learning_rate=1.0, grid_learning_rate=(1e-3, 1e-2, 1e-1)), 0)
    # candidate 2 is best on test, candidate 1 on validation AUC, candidate 0 on validation loss
    fit_one = _fake_grid(val_auc=[0.70, 0.90, 0.80], val_loss=[0.30, 0.50, 0.60], test_auc=[0.6, 0.7, 0.99])
    best, table = run_grid(cands, fit_one, "val_auc")
    assert best.candidate.index == 1 and best.candidate.learning_rate == 1e-2
    assert table["selected"].tolist() == [False, True, False]
    assert list(table.columns) == ["candidate", "learning_rate", "beta_1", "repeat", "seed", "val_loss",
                                   "val_auc", "best_epoch", "epochs", "status", "selected"]
    assert table["val_auc"].tolist() == [0.70, 0.90, 0.80]
    best, _ = run_grid(cands, fit_one, "val_loss")
    assert best.candidate.index == 0


def test_grid_ties_break_on_loss_then_order_and_nan_ranks_last():
    from types import SimpleNamespace

    from bench.training import grid_candidates, run_grid

    cands = grid_candidates(SimpleNamespace(learning_rate=1.0, grid_learning_rate=(1.0, 2.0, 3.0, 4.0)), 0)
    nan = float("nan")
    best, _ = run_grid(cands, _fake_grid([nan, 0.8, 0.8, 0.8], [0.1, 0.5, 0.4, 0.4], [0] * 4), "val_auc")
    assert best.candidate.index == 2  # AUC tie → lower loss → earlier candidate


def test_grid_records_diverged_candidates_and_raises_when_all_diverge():
    from types import SimpleNamespace

    from bench.errors import NumericalError
    from bench.training import Trial, grid_candidates, run_grid

    cands = grid_candidates(SimpleNamespace(learning_rate=1.0, grid_learning_rate=(1e-3, 1e-1)), 0)

    def fit_one(c):
        if c.learning_rate > 0.01:
            raise NumericalError("training loss became NaN/inf")
        return Trial(c, 0.5, 0.6, 1, 1)

    best, table = run_grid(cands, fit_one, "val_auc")
    assert best.candidate.index == 0 and table["status"].tolist() == ["ok", "diverged"]

    def always(c):
        raise NumericalError(f"boom {c.index}")

    with pytest.raises(NumericalError, match="all 2 grid candidates diverged; the first: boom 0"):
        run_grid(cands, always, "val_auc")
    with pytest.raises(NumericalError, match="^boom 0$"):  # a single candidate: its own error
        run_grid(cands[:1], always, "val_auc")


# --------------------------------------------------------------------------- the train stage


PARAMS_FILE = Path(__file__).resolve().parents[1] / "params.yaml"


def smoke_run_inputs(tmp_path_factory, classifiers: dict):
    """(params with ``train.classifiers`` = ``classifiers``, prepared, augmented 'none' folder)."""
    import dataclasses

    from bench.config import load_params
    from bench.stages import augment, prepare
    from bench.stages.common import load_prepared

    params = load_params(PARAMS_FILE, "smoke")
    params = dataclasses.replace(params, train=dataclasses.replace(params.train, classifiers=classifiers))
    root = tmp_path_factory.mktemp("stage")
    prepare.prepare(params, root / "prepared")
    prepared = load_prepared(root / "prepared")
    augment.augment(params, prepared, "none", root / "none")
    return params, prepared, root / "none"


class _Tiny:
    """A test classifier: conv → GAP → one sigmoid unit, with a grid and an ``analyse`` hook."""

    calls: list = []

    @staticmethod
    def make():
        from dataclasses import dataclass

        from bench.plugins import Classifier

        @dataclass(frozen=True)
        class TinyParams:
            transfer: str = "finetune-all"
            epochs: int = 2
            batch_size: int = 8
            learning_rate: float = 1e-2
            beta_1: float = 0.9
            grid_learning_rate: tuple[float, ...] = (1e-3, 3e-2)
            grid_beta_1: tuple[float, ...] = ()
            repeats: int = 2
            select: str = "val_auc"
            early_stopping_patience: int = 0
            reduce_lr_patience: int = 0

        class TinyClassifier(Classifier):
            Params = TinyParams
            paper = summary = "test double"

            def preprocess(self, images):
                return np.asarray(images, np.float32)[..., None]

            def build(self, input_shape, n_classes):
                model = tf.keras.Sequential([tf.keras.Input(input_shape), tf.keras.layers.Conv2D(2, 3),
                                             tf.keras.layers.GlobalAveragePooling2D(),
                                             tf.keras.layers.Dense(1, activation="sigmoid")])
                model.compile(tf.keras.optimizers.Adam(self.params.learning_rate, beta_1=self.params.beta_1),
                              "binary_crossentropy", metrics=["accuracy"])
                return model

            def analyse(self, model, initial, images):
                _Tiny.calls.append((self.params, initial, images))
                return {"tables": {"extra.csv": pd.DataFrame({"n": [len(images)]})},
                        "meta": {"extra": len(initial)}}

        return TinyClassifier


@pytest.fixture(scope="module")
def tiny_stage(tmp_path_factory):
    from bench import registry

    registry.register("classifier", "tiny-test", _Tiny.make())
    try:
        yield smoke_run_inputs(tmp_path_factory, {"tiny-variant": {"classifier": "tiny-test", "epochs": 2}})
    finally:
        registry.unregister("classifier", "tiny-test")


@pytest.mark.slow
def test_train_stage_grid_selects_on_validation_and_writes_its_outputs(tiny_stage, tmp_path, monkeypatch):
    import json

    from bench import training
    from bench.stages import train

    params, prepared, augmented = tiny_stage
    events, real_predict, real_grid = [], training.predict_positive, training.run_grid

    def spy_predict(model, x, **kw):
        events.append(("predict", len(x)))
        return real_predict(model, x, **kw)

    def spy_grid(*args, **kw):
        out = real_grid(*args, **kw)
        events.append(("selected", None))
        return out

    monkeypatch.setattr(training, "predict_positive", spy_predict)
    monkeypatch.setattr(training, "run_grid", spy_grid)
    _Tiny.calls.clear()
    meta = train.run(params, prepared, augmented, "tiny-variant", 3, tmp_path / "a")
    n_val, n_test = len(prepared.subset("val")), len(prepared.subset("test"))

    selected_at = events.index(("selected", None))
    assert events[:selected_at] == [("predict", n_val)] * 4  # only validation before the choice
    assert ("predict", n_test) in events[selected_at:]

    grid = pd.read_csv(tmp_path / "a" / "grid.csv")
    assert len(grid) == 4 and grid["selected"].sum() == 1 and (grid["status"] == "ok").all()
    assert grid["learning_rate"].tolist() == [1e-3, 1e-3, 3e-2, 3e-2] and grid["repeat"].tolist() == [0, 1, 0, 1]
    trials = [training.Trial(training.Candidate(r.candidate, r.learning_rate, r.beta_1, r.repeat, r.seed),
                             r.val_loss, r.val_auc, r.best_epoch, r.epochs) for r in grid.itertuples()]
    expected = min(trials, key=lambda t: (training.selection_key(t, "val_auc"), t.candidate.index))
    assert grid.loc[grid["selected"], "candidate"].item() == expected.candidate.index
    assert meta["selection"]["candidate"] == expected.candidate.index
    assert meta["selection"]["criterion"] == "val_auc" and meta["selection"]["split"] == "val"
    assert meta["selection"]["learning_rate"] == expected.candidate.learning_rate

    saved = json.loads((tmp_path / "a" / "meta.json").read_text())
    assert saved["plugin"] == "tiny-test" and saved["classifier"] == "tiny-variant"
    assert saved["mode"] == "finetune-all"
    assert saved["trainable_params"] == (3 * 3 * 1 * 2 + 2) + (2 + 1) and saved["non_trainable_params"] == 0
    history = pd.read_csv(tmp_path / "a" / "history.csv")
    assert len(history) == saved["epochs_run"] == 2
    preds = pd.read_csv(tmp_path / "a" / "predictions.csv")
    assert list(preds.columns) == ["split", "id", "label", "score"]
    assert preds["split"].value_counts().to_dict() == {"val": n_val, "test": n_test}
    assert preds["score"].between(0, 1).all()

    (p, initial, images), = _Tiny.calls  # the hook ran once, for the chosen candidate, on test images
    assert p.learning_rate == expected.candidate.learning_rate
    np.testing.assert_array_equal(images, prepared.subset("test").images[..., None])
    training.seed_everything(expected.candidate.seed)  # the initial weights are that candidate's
    fresh = registry_build(p)
    for a, b in zip(initial, fresh.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert saved["extra"] == len(initial) and saved["analysis_split"] == "test"
    assert pd.read_csv(tmp_path / "a" / "extra.csv")["n"].tolist() == [n_test]

    train.run(params, prepared, augmented, "tiny-variant", 3, tmp_path / "b")  # same seed, same run
    for name in ("predictions.csv", "grid.csv"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()


def registry_build(p):
    from bench import registry

    return registry.get("classifier", "tiny-test")(p).build((32, 32, 1), 2)


@pytest.mark.slow
def test_seeds_trained_in_one_process_equal_fresh_processes(tmp_path):
    """``augbench train --seed 0,1`` builds and traces the network once (bench.training.ModelReuse);
    its seed-1 run must equal ``--seed 1`` alone in a fresh process, file for file: weights,
    BatchNorm statistics, optimizer, learning rate and Dropout generator all re-initialised."""
    import os
    import subprocess
    import sys

    from bench.config import load_params
    from bench.io import load_npz
    from bench.stages import augment, prepare
    from bench.stages.common import load_prepared

    params = load_params(PARAMS_FILE, "smoke")
    prepare.prepare(params, tmp_path / "prepared")
    augment.augment(params, load_prepared(tmp_path / "prepared"), "none", tmp_path / "none")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "AUGBENCH_QUIET": "1"}

    def train(seeds: str, out: str) -> None:
        subprocess.run([sys.executable, "-m", "bench.cli", "train", "--params", str(PARAMS_FILE), "--profile", "smoke",
                        "--set", "train.classifiers.resnet50.epochs=2", "--prepared", str(tmp_path / "prepared"),
                        "--augmented", str(tmp_path / "none"), "--classifier", "resnet50", "--seed", seeds,
                        "--out", str(tmp_path / out)], check=True, env=env, timeout=600)

    train("0,1", "cell/seed{seed}")
    train("1", "alone")
    for name in ("predictions.csv", "history.csv", "grid.csv"):
        assert (tmp_path / "cell" / "seed1" / name).read_text() == (tmp_path / "alone" / name).read_text(), name
    assert (tmp_path / "cell" / "seed0" / "predictions.csv").read_text() != (tmp_path / "alone" / "predictions.csv").read_text()
    # the stage explains its first seed only (the one the report draws); a seed alone is its own first
    assert (tmp_path / "cell" / "seed0" / "relevance.npz").is_file()
    assert not (tmp_path / "cell" / "seed1" / "relevance.npz").exists()
    assert load_npz(tmp_path / "alone" / "relevance.npz")["lrp"].shape[0] > 0


def test_model_reuse_keeps_one_network_and_replaces_it_for_another():
    from types import SimpleNamespace

    from bench import training

    class Clf:
        def __init__(self, **params):
            self.params = SimpleNamespace(**params)

        def build(self, input_shape, n_classes):
            model = tf.keras.Sequential([tf.keras.Input(input_shape), tf.keras.layers.Dense(n_classes),
                                         tf.keras.layers.Dropout(0.5)])
            model.compile(tf.keras.optimizers.SGD(self.params.learning_rate, momentum=self.params.momentum), "mse")
            return model

    reuse = training.ModelReuse()
    training.seed_everything(0)
    first = reuse.build(Clf(learning_rate=0.1, momentum=0.9), (3,), 2)
    first.optimizer.build(first.trainable_variables)
    first.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)  # moves weights, optimizer slots, iterations
    training.seed_everything(1)
    again = reuse.build(Clf(learning_rate=0.01, momentum=0.9), (3,), 2)  # another lr only: the same network
    training.seed_everything(1)
    fresh = Clf(learning_rate=0.01, momentum=0.9).build((3,), 2)
    assert again is first
    for got, want in zip(again.get_weights(), fresh.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    assert all(not np.any(v.numpy()) for v in again.optimizer.variables)
    assert float(again.optimizer.learning_rate.numpy()) == pytest.approx(0.01)
    other = reuse.build(Clf(learning_rate=0.01, momentum=0.5), (3,), 2)  # momentum is traced: a new network
    assert other is not first
