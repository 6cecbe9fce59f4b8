"""Keras training loop shared by classifier plugins: seeds, callbacks, predictions."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from bench.errors import NumericalError


def seed_everything(seed: int) -> None:
    """Python, NumPy and TensorFlow seeds plus deterministic TF kernels."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def trainable_count(model) -> int:
    return int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))


@dataclass
class FitResult:
    model: object
    history: dict[str, list[float]]
    best_epoch: int
    seconds: float


class PreciseBatchNorm:
    """Re-estimate BatchNorm moving statistics on training images before each validation.

    A randomly initialised network trained for few steps has moving means and
    variances far from the true activation statistics (Keras momentum 0.99), so
    inference-mode outputs — validation and test — are garbage (validation losses
    of 1e6 and more). Recomputing the population statistics with the weights
    fixed ("precise BN": Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm",
    §3) removes that artefact without changing any weight. Off in the paper
    profile (ImageNet-initialised statistics are already sensible).
    """

    def __init__(self, images: np.ndarray, n_images: int, batch_size: int, seed: int):
        rng = np.random.default_rng(seed)
        pick = rng.choice(len(images), size=min(n_images, len(images)), replace=False)
        self.batches = [images[np.sort(pick)[i:i + batch_size]] for i in range(0, len(pick), batch_size)]

    @staticmethod
    def _bn_layers(model) -> list:
        import tensorflow as tf

        found = []
        for layer in model.layers:
            if isinstance(layer, tf.keras.Model):
                found += PreciseBatchNorm._bn_layers(layer)
            elif isinstance(layer, tf.keras.layers.BatchNormalization) and layer.trainable:
                found.append(layer)
        return found

    def recalibrate(self, model) -> None:
        """Cumulative average of batch statistics: momentum k/(k+1) on batch k."""
        layers = self._bn_layers(model)
        saved = [layer.momentum for layer in layers]
        try:
            for k, batch in enumerate(self.batches):
                for layer in layers:
                    layer.momentum = k / (k + 1)
                model(batch, training=True)
        finally:
            for layer, m in zip(layers, saved, strict=True):
                layer.momentum = m

    def callback(self):
        import tensorflow as tf

        outer = self

        class _Callback(tf.keras.callbacks.Callback):
            def on_test_begin(self, logs=None):
                outer.recalibrate(self.model)

        return _Callback()


def restore_best_callback():
    """Keep the weights of the epoch with the lowest validation loss and put them back at
    the end of training — whether or not early stopping fired (Keras' own
    ``restore_best_weights`` only restores when it stops early)."""
    import tensorflow as tf

    class RestoreBest(tf.keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.best, self.best_weights = np.inf, None

        def on_epoch_end(self, epoch, logs=None):
            loss = (logs or {}).get("val_loss", np.inf)
            if np.isfinite(loss) and loss < self.best:
                self.best, self.best_weights = loss, self.model.get_weights()

        def on_train_end(self, logs=None):
            if self.best_weights is not None:
                self.model.set_weights(self.best_weights)

    return RestoreBest()


def callbacks_for(p) -> list:
    """Best-validation-loss weights kept, EarlyStopping on validation loss, ReduceLROnPlateau."""
    import tensorflow as tf

    cbs = [tf.keras.callbacks.TerminateOnNaN(),
           tf.keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=getattr(p, "reduce_lr_factor", 0.5),
                                                patience=getattr(p, "reduce_lr_patience", 3), verbose=0)]
    patience = getattr(p, "early_stopping_patience", None)
    if patience:
        cbs.append(tf.keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience,
                                                    restore_best_weights=False, verbose=0))
    cbs.append(restore_best_callback())
    return cbs


def fit(model, p, x_train, y_train, x_val, y_val, n_classes: int = 2, verbose: int = 2,
        seed: int = 0) -> FitResult:
    """Fit with categorical cross-entropy on one-hot labels; keep the best-validation weights."""
    import tensorflow as tf

    started = time.perf_counter()
    callbacks = callbacks_for(p)
    n_bn = getattr(p, "bn_recalibration_images", 0)
    if n_bn:
        precise = PreciseBatchNorm(x_train, n_bn, 64, seed)
        callbacks.insert(0, precise.callback())
    hist = model.fit(x_train, tf.keras.utils.to_categorical(y_train, n_classes),
                     validation_data=(x_val, tf.keras.utils.to_categorical(y_val, n_classes)),
                     epochs=p.epochs, batch_size=p.batch_size, shuffle=True,
                     callbacks=callbacks, verbose=verbose)
    if n_bn:  # the best epoch's weights are back: re-estimate their statistics
        precise.recalibrate(model)
    history = {k: [float(v) for v in vs] for k, vs in hist.history.items()}
    if any(not np.isfinite(v) for v in history.get("loss", [])):
        raise NumericalError("training loss became NaN/inf; no predictions were written "
                             "(lower the learning rate or check the inputs)")
    val_loss = history.get("val_loss", [0.0])
    return FitResult(model, history, int(np.argmin(val_loss)) + 1, time.perf_counter() - started)


def predict_positive(model, x, batch_size: int = 64) -> np.ndarray:
    """P(positive class) for each input; NaN/inf raises NumericalError."""
    probs = model.predict(x, batch_size=batch_size, verbose=0)
    scores = np.asarray(probs)[:, 1].astype(np.float64)
    bad = ~np.isfinite(scores)
    if bad.any():
        raise NumericalError(f"the classifier output NaN/inf for {int(bad.sum())} of {len(scores)} images")
    return scores
