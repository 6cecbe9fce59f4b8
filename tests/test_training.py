"""The training loop keeps the best-validation epoch, not the last one."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

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
