"""Keras training loop shared by classifier plugins: seeds, callbacks, grids, predictions.

Works for any compiled binary classifier whose output is either two softmax
probabilities (one-hot targets) or one sigmoid probability (0/1 targets). The
parameters are read from the plugin's dataclass with defaults, so a plugin only
needs the fields it uses: ``epochs``, ``batch_size`` (required); ``monitor``
(``val_loss`` | ``val_accuracy`` | ``val_auc``: best epoch kept, early stopping, lr plateau),
``early_stopping_patience`` / ``reduce_lr_patience`` (0 = off),
``reduce_lr_factor``, ``class_weight`` (``none`` | ``balanced``),
``bn_recalibration_images``; and for grids ``grid_learning_rate``,
``grid_beta_1``, ``repeats``, ``select`` (``val_loss`` | ``val_auc``).
"""

from __future__ import annotations

import json
import logging
import os
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench import tracking
from bench.errors import AugbenchError, NumericalError
from bench.quiet import is_quiet

log = logging.getLogger("augbench")
_TRACED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model → {(training, image shape): traced call}


def seed_everything(seed: int) -> None:
    """Python, NumPy and TensorFlow seeds plus deterministic TF kernels; random layers built
    from now on (Dropout) draw from a ``tf.random.Generator``, whose state can be saved and
    restored (:class:`Checkpoint`), instead of from stateful ops whose state cannot."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    tf.keras.backend.experimental.enable_tf_random_generator()


def trainable_count(model) -> int:
    return int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))


def non_trainable_count(model) -> int:
    return int(sum(int(np.prod(w.shape)) for w in model.non_trainable_weights))


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

    Each batch runs one training-mode forward pass, traced once per model (a graph, not eager
    layer calls: a quarter of the cost), with every BatchNorm's momentum at 0 so that its moving
    statistics become that batch's. Over several batches they are pooled as Wu & Johnson's
    Algorithm 1 does: mean = the average batch mean, variance = the average of (batch variance +
    batch mean²) − mean², i.e. the variance of the pooled images, including the spread of the
    batch means. One batch of all the images (what :func:`fit` asks for at small image sizes,
    :func:`precise_bn_batch`) gives their statistics exactly, in one pass.
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

    def _forward_of(self, model):
        """The training-mode forward pass of ``model``, traced once per model and image shape (kept
        for the model's lifetime: :class:`ModelReuse` trains one model many times) for any batch
        size. It is traced while every BatchNorm momentum is 0, and the trace keeps that value."""
        return _traced_call(model, tuple(self.batches[0].shape[1:]), training=True)

    def recalibrate(self, model) -> None:
        """Moving mean and variance of every trainable BatchNorm := the mean of their batch values."""
        layers = self._bn_layers(model)
        if not layers or not self.batches:
            return
        saved = [layer.momentum for layer in layers]
        sums = [[np.zeros(layer.moving_mean.shape, np.float64), np.zeros(layer.moving_variance.shape, np.float64)]
                for layer in layers]
        try:
            for layer in layers:
                layer.momentum = 0.0
            forward = self._forward_of(model)
            for batch in self.batches:
                forward(np.asarray(batch, np.float32))
                for (mean, second), layer in zip(sums, layers, strict=True):
                    mu = layer.moving_mean.numpy().astype(np.float64)
                    mean += mu
                    second += layer.moving_variance.numpy() + mu ** 2
        finally:
            for layer, m in zip(layers, saved, strict=True):
                layer.momentum = m
        k = len(self.batches)
        for (mean, second), layer in zip(sums, layers, strict=True):
            mean /= k
            layer.moving_mean.assign(mean.astype(np.float32))
            layer.moving_variance.assign(np.maximum(second / k - mean ** 2, 0.0).astype(np.float32))


PRECISE_BN_PIXELS = 2 ** 20  # per forward pass: 1,024 images of 32 px, 64 of 128 px


def precise_bn_batch(image_shape) -> int:
    """Images per precise-BN forward pass: as many as ``PRECISE_BN_PIXELS`` allow, at least 64. At
    the quick profile's 32 px that is every recalibration image in one pass (exact statistics, and
    0.19 s instead of 0.27 s for 180 images in batches of 64 on a 2-core AMD EPYC); at 224 px it
    stays 64, as before, for memory."""
    return max(64, PRECISE_BN_PIXELS // int(np.prod(image_shape[:2])))


def higher_is_better(monitor: str) -> bool:
    """Accuracy and AUC improve upwards, losses downwards (the Keras "auto" rule)."""
    return "acc" in monitor or "auc" in monitor


def best_epoch_index(values: Sequence[float], monitor: str) -> int:
    """0-based index of the first best finite value (what ``restore_best_callback`` keeps)."""
    v = np.asarray(values, np.float64)
    if not np.isfinite(v).any():
        return 0
    v = np.where(np.isfinite(v), v if higher_is_better(monitor) else -v, -np.inf)
    return int(np.argmax(v))


def restore_best_callback(monitor: str = "val_loss"):
    """Keep the weights of the epoch with the best ``monitor`` value (lowest loss, highest
    accuracy; the first on ties) and put them back at the end of training — whether or not
    early stopping fired (Keras' own ``restore_best_weights`` only restores when it stops early)."""
    import tensorflow as tf

    sign = 1.0 if higher_is_better(monitor) else -1.0

    class RestoreBest(tf.keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.best, self.best_weights = -np.inf, None

        def on_epoch_end(self, epoch, logs=None):
            value = sign * float((logs or {}).get(monitor, np.nan))
            if np.isfinite(value) and value > self.best:
                self.best, self.best_weights = value, self.model.get_weights()

        def on_train_end(self, logs=None):
            if self.best_weights is not None:
                self.model.set_weights(self.best_weights)

    return RestoreBest()


def callbacks_for(p) -> list:
    """TerminateOnNaN; ReduceLROnPlateau and EarlyStopping on ``p.monitor`` (each off when its
    patience is 0); the best-epoch weights kept."""
    import tensorflow as tf

    monitor = getattr(p, "monitor", "val_loss")
    mode = "max" if higher_is_better(monitor) else "min"  # Keras' "auto" takes val_auc for a loss
    cbs = [tf.keras.callbacks.TerminateOnNaN()]
    lr_patience = getattr(p, "reduce_lr_patience", 3)
    if lr_patience:
        cbs.append(tf.keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=getattr(p, "reduce_lr_factor", 0.5),
                                                        patience=lr_patience, mode=mode, verbose=0))
    patience = getattr(p, "early_stopping_patience", None)
    if patience:
        cbs.append(tf.keras.callbacks.EarlyStopping(monitor=monitor, patience=patience, mode=mode,
                                                    restore_best_weights=False, verbose=0))
    cbs.append(restore_best_callback(monitor))
    return cbs


def class_weights(labels: np.ndarray, mode: str = "none", n_classes: int = 2) -> dict[int, float] | None:
    """``balanced``: w_c = n / (n_classes · n_c), inversely proportional to the class frequency
    (Byra 2021 §3.4), mean weight over the samples 1; ``none``: None."""
    if mode == "none":
        return None
    if mode != "balanced":
        raise ValueError(f"class_weight must be 'none' or 'balanced', got {mode!r}")
    counts = np.bincount(np.asarray(labels, np.int64), minlength=n_classes)
    if (counts == 0).any():
        raise AugbenchError(f"class_weight 'balanced' needs every class in the training set, which has "
                            f"{counts.tolist()} images per class; set class_weight: none")
    return {c: float(len(labels) / (n_classes * counts[c])) for c in range(n_classes)}


def targets(model, labels: np.ndarray, n_classes: int = 2) -> np.ndarray:
    """One-hot rows for a multi-unit (softmax) output; a (N, 1) 0/1 column for a single unit."""
    import tensorflow as tf

    if model.output_shape[-1] == 1:
        return np.asarray(labels, np.float32).reshape(-1, 1)
    return tf.keras.utils.to_categorical(labels, n_classes)


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order of the ``n`` training images in ``epoch``: a permutation drawn from (seed,
    epoch) alone, so a run resumed at epoch k shuffles it as an uninterrupted run does. (Keras'
    own ``shuffle=True`` draws from a stateful op inside its input pipeline, which restarts
    with every new process.)"""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch)])).permutation(n)


def epoch_rows(seed: int, epoch: int, n: int, workers=None, size: int | None = None) -> np.ndarray:
    """The training rows of this process in ``epoch``: :func:`epoch_order`, or under Horovod
    (``workers.size`` > 1) this rank's slice of it, ``n // size`` rows on every rank so that
    all ranks take the same number of steps (each step is an allreduce); the ``n % size``
    rows left over differ from epoch to epoch. ``size`` (< ``n``): an epoch of only the first
    ``size`` rows of the permutation — a fresh random subset each epoch — so that a run on a
    larger (augmented) set takes the optimizer steps of one on ``size`` images (the ``steps``
    budget); ``size`` > ``n``: ``size`` rows from consecutive passes over the set; None or
    ``n``: the whole set once."""
    order = epoch_order(seed, epoch, n)
    if size is not None:
        if size < 1:
            raise ValueError(f"epoch size {size} must be >= 1")
        # more rows than images (train.min_epoch_images): further seeded permutations of the whole
        # set follow the first, so every image appears once per pass and the passes differ
        extra = [np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch), k])).permutation(n)
                 for k in range(1, -(-size // n))]
        order, n = np.concatenate([order, *extra])[:size], size
    if workers is None or workers.size == 1:
        return order
    m = n // workers.size
    return order[workers.rank * m:(workers.rank + 1) * m]


def random_generators(model) -> list:
    """The ``tf.random.Generator`` of every random layer of ``model`` (Dropout, random
    augmentation layers), created now so their states can be saved before the first step.
    Layers built before :func:`seed_everything` use stateful ops instead and are not listed.
    (Keras 2.15 keeps the generator in ``layer._random_generator._generator``.)"""
    import tensorflow as tf

    found = []
    for layer in model.submodules:
        wrapper = getattr(layer, "_random_generator", None) if isinstance(layer, tf.keras.layers.Layer) else None
        if wrapper is not None and hasattr(wrapper, "_maybe_init"):
            wrapper._maybe_init()
            if getattr(wrapper, "_generator", None) is not None:
                found.append(wrapper._generator)
    return found


# Attributes that hold a Keras callback's progress (EarlyStopping, ReduceLROnPlateau, RestoreBest).
CALLBACK_STATE = ("wait", "best", "cooldown_counter", "stopped_epoch", "best_epoch")


class Checkpoint:
    """A training run's state after its last finished epoch, in one file replaced atomically:
    weights, optimizer variables and learning rate, random-generator states, the progress of
    the epoch callbacks (best value and best-epoch weights, patience counters), the history
    and the elapsed time. ``done``: the run is over, and the weights are its final ones.
    ``key`` names what the run depends on; a file with another key is ignored."""

    def __init__(self, path: str | os.PathLike, key: str, every_seconds: float = 0.0):
        self.path, self.key, self.every_seconds = Path(path), key, float(every_seconds)
        self._last_save = time.monotonic()  # the clock starts with the training

    def due(self) -> bool:
        """Whether the state after this epoch should be saved: once ``every_seconds`` have passed
        since the training started or was last saved (0: after every epoch). A ResNet50 state is
        ~280 MB (1-2 s to write); saved after each of 40 one-second epochs, or after the first
        epoch of each of five 40-s seeds, it would cost a large part of the steps' time. A killed
        run resumes from the last save, losing at most ``every_seconds`` of training."""
        return time.monotonic() - self._last_save >= self.every_seconds

    def save(self, model, history: dict, callbacks: Sequence, seconds: float, done: bool = False) -> None:
        from bench.io import save_npz

        arrays = {f"w{i}": w for i, w in enumerate(model.get_weights())}
        states = []
        if not done:
            arrays.update({f"o{i}": v.numpy() for i, v in enumerate(model.optimizer.variables)})
            arrays["lr"] = np.asarray(model.optimizer.learning_rate.numpy())
            arrays.update({f"r{i}": g.state.numpy() for i, g in enumerate(random_generators(model))})
            for cb in callbacks:
                states.append({a: _plain(getattr(cb, a)) for a in CALLBACK_STATE if hasattr(cb, a)})
                for i, w in enumerate(getattr(cb, "best_weights", None) or []):
                    arrays[f"b{len(states) - 1}_{i}"] = w
        meta = {"key": self.key, "done": done, "epochs": len(history.get("loss", [])), "history": history,
                "callbacks": states, "seconds": seconds}
        save_npz(self.path, compress=False, meta=np.array(json.dumps(meta)), **arrays)
        self._last_save = time.monotonic()

    def load(self) -> tuple[dict, dict] | None:
        """(meta, arrays) of a checkpoint of this run, or None."""
        from bench.io import load_npz

        if not self.path.is_file():
            return None
        try:
            arrays = load_npz(self.path)
            meta = json.loads(str(arrays.pop("meta")))
        except (AugbenchError, KeyError, ValueError) as exc:
            log.warning("%s: unreadable checkpoint ignored (%s)", self.path, exc)
            return None
        if meta.get("key") != self.key:
            log.warning("%s: checkpoint of another run (other parameters or data) ignored", self.path)
            return None
        return meta, arrays

    @staticmethod
    def restore(model, callbacks: Sequence, meta: dict, arrays: dict) -> None:
        """Put a saved state back into ``model`` (whose optimizer is built here) and ``callbacks``."""
        import tensorflow as tf

        model.set_weights([arrays[f"w{i}"] for i in range(len(model.get_weights()))])
        if meta["done"]:
            return
        optimizer = model.optimizer
        if not getattr(optimizer, "_built", False):
            optimizer.build(model.trainable_variables)
        for i, v in enumerate(optimizer.variables):
            v.assign(arrays[f"o{i}"])
        tf.keras.backend.set_value(optimizer.learning_rate, arrays["lr"])
        for i, g in enumerate(random_generators(model)):
            g.state.assign(arrays[f"r{i}"])
        for k, (cb, state) in enumerate(zip(callbacks, meta["callbacks"], strict=True)):
            for name, value in state.items():
                setattr(cb, name, value)
            if hasattr(cb, "best_weights") and f"b{k}_0" in arrays:
                cb.best_weights = [arrays[f"b{k}_{i}"] for i in range(len(model.get_weights()))]


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    return value


def _epoch_line(epoch: int, epochs: int, seconds: float, logs: dict) -> str:
    values = " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())
    return f"Epoch {epoch + 1}/{epochs} - {seconds:.0f}s - {values}"


def fit(model, p, x_train, y_train, x_val, y_val, n_classes: int = 2, verbose: int | None = None,
        seed: int = 0, log_dir: str | os.PathLike | None = None,
        checkpoint: Checkpoint | None = None, workers=None, epoch_size: int | None = None,
        online=None, bn_images: int | None = None) -> FitResult:
    """Fit with the model's cross-entropy (and ``p.class_weight``); keep the best-validation weights.

    One Keras ``fit`` call per epoch, on the training images in :func:`epoch_order`; the
    epoch-level callbacks (learning-rate plateau, early stopping, best weights, dvclive) are
    driven here, so that after every epoch the whole state can go to ``checkpoint`` and a
    later call with the same checkpoint continues from there, ending with the same weights
    and history as an uninterrupted run. ``verbose``: one line per epoch (default; none in
    quiet mode). ``log_dir``: write every epoch's losses and metrics there with dvclive
    (``train/loss``, ``eval/loss``, …); None (the default) logs nothing. ``workers``
    (bench.distributed.Workers, np > 1): data parallel under Horovod — each rank trains on its
    share of a seeded permutation of the training set with ``batch_size`` per rank, learning
    rate × np, rank 0's initial weights, gradients and epoch metrics averaged over ranks; only
    rank 0 logs; no ``checkpoint``. ``epoch_size``: images per epoch, drawn afresh each epoch
    from the whole training set (:func:`epoch_rows`; more than the set: several passes); None:
    the whole set. ``bn_images``: at most this many precise-BN images. ``online``
    (bench.online.OnlineAugmentation): each epoch's minibatches are its ``epoch_inputs`` — the
    epoch's rows randomly transformed per batch, from (seed, epoch, batch) alone — instead of the
    rows of ``x_train`` as they are (which precise BatchNorm still reads)."""
    started = time.perf_counter()
    every = callbacks_for(p)
    in_fit = [cb for cb in every if type(cb).__name__ == "TerminateOnNaN"]
    per_epoch = [cb for cb in every if cb not in in_fit]
    # at most an epoch's images: under the steps budget every method re-estimates its BatchNorm
    # statistics from as many images as `none` does (its whole training split)
    # (``bn_images``: the real split's size, passed by the train stage under that budget)
    n_bn = min(getattr(p, "bn_recalibration_images", 0), epoch_size or len(x_train), bn_images or len(x_train))
    # the whole training set on every rank: the same statistics everywhere
    precise = PreciseBatchNorm(x_train, n_bn, precise_bn_batch(x_train.shape[1:]), seed) if n_bn else None
    if workers is not None and workers.size > 1:
        from bench.distributed import keras_distributed

        if checkpoint is not None:
            raise ValueError("epoch checkpoints are not supported under Horovod")
        in_fit = keras_distributed(model, workers) + in_fit  # broadcast + metric average first
        if not workers.is_root:
            log_dir, verbose = None, 0
    if log_dir is not None:  # last: it sees the epoch logs as every other callback left them
        per_epoch.append(tracking.epoch_logger(log_dir))
    if verbose is None:
        verbose = 0 if is_quiet() else 2
    for cb in per_epoch:
        cb.set_model(model)
        cb.on_train_begin()
    build_training_variables(model)
    random_generators(model)  # create them now, at the same point in a fresh and a resumed run
    history, elapsed, done = _resume(model, per_epoch, checkpoint)
    if done:
        for cb in per_epoch:
            cb.on_train_end()  # closes the dvclive log replayed by _resume
        return FitResult(model, history, best_epoch_index_of(history, p) + 1, elapsed)
    y_fit = targets(model, y_train, n_classes)
    y_val_fit = targets(model, y_val, n_classes)
    weights = class_weights(y_train, getattr(p, "class_weight", "none"), n_classes)
    with_auc = getattr(p, "monitor", "val_loss") == "val_auc"
    model.stop_training = False
    for epoch in range(len(history.get("loss", [])), 0 if _stopped(per_epoch, history) else p.epochs):
        epoch_started = time.perf_counter()
        order = epoch_rows(seed, epoch, len(x_train), workers, epoch_size)
        if online is not None:  # this epoch's transformed images, in epoch order
            rank = workers.rank if workers is not None and workers.size > 1 else 0
            x_epoch, y_epoch = online.epoch_inputs(order, seed, epoch, p.batch_size, rank), y_fit[order]
            batches = epoch_batches(x_epoch, y_epoch, np.arange(len(order)), p.batch_size)
        else:
            batches = epoch_batches(x_train, y_fit, order, p.batch_size)
        hist = model.fit(batches, initial_epoch=epoch,
                         epochs=epoch + 1, class_weight=weights, callbacks=in_fit, verbose=0)
        logs = {k: v[-1] for k, v in hist.history.items()}
        if precise is not None:
            precise.recalibrate(model)
        logs.update(validation_logs(model, x_val, y_val, y_val_fit, with_auc))
        for cb in per_epoch:
            cb.on_epoch_end(epoch, logs)
        for k, v in logs.items():
            history.setdefault(k, []).append(float(v))
        if verbose:
            print(_epoch_line(epoch, p.epochs, time.perf_counter() - epoch_started, logs), flush=True)
        stop = bool(model.stop_training)
        if checkpoint is not None and checkpoint.due():
            checkpoint.save(model, history, per_epoch, elapsed + time.perf_counter() - started)
        if stop:
            break
    for cb in per_epoch:
        cb.on_train_end()
    if precise is not None:  # the best epoch's weights are back: re-estimate their statistics
        precise.recalibrate(model)
    if any(not np.isfinite(v) for v in history.get("loss", [])):
        raise NumericalError("training loss became NaN/inf; no predictions were written "
                             "(lower the learning rate or check the inputs)")
    seconds = elapsed + time.perf_counter() - started
    if checkpoint is not None:
        checkpoint.save(model, history, per_epoch, seconds, done=True)
    return FitResult(model, history, best_epoch_index_of(history, p) + 1, seconds)


class ModelReuse:
    """One built, compiled and traced Keras model for a series of trainings of the same network:
    the seeds of a matrix cell, the candidates of a grid, in one process.

    Building a ResNet50 and tracing its train, predict and precise-BN functions costs 6-10 s at
    32 px, as much as a whole quick training. Here every training still starts from exactly the
    state a fresh process would give it: the network is built anew from the same seeds (its
    initialisers draw from the seeds just set), its random-layer generators are created at the
    point :func:`fit` would create them, and that initial state (weights, BatchNorm statistics,
    generator states, a zeroed optimizer at the configured learning rate) is copied into the kept
    model, whose traced functions then run. ``tests/test_training.py`` trains two seeds in one
    process and checks the second against a fresh process bit for bit.

    A different network (another plugin, input shape, or any parameter other than the learning
    rate, which is a variable of the kept optimizer) replaces the kept model."""

    def __init__(self):
        self._model, self._key = None, None

    @staticmethod
    def key(clf, input_shape, n_classes: int) -> str:
        from dataclasses import asdict, is_dataclass

        p = clf.params
        values = {k: v for k, v in (asdict(p) if is_dataclass(p) else vars(p)).items() if k != "learning_rate"}
        return json.dumps([type(clf).__module__, type(clf).__qualname__, list(input_shape), n_classes, values],
                          sort_keys=True, default=str)

    def build(self, clf, input_shape, n_classes: int):
        """``clf.build(input_shape, n_classes)`` as a fresh process would return it, as the kept model
        when there is one of the same network. Call it right after seeding (:func:`seed_everything`)."""
        import tensorflow as tf

        fresh = clf.build(input_shape, n_classes)
        generators = random_generators(fresh)  # now, as fit would: they draw their seeds from Python's random
        key = self.key(clf, input_shape, n_classes)
        if self._model is None or key != self._key:
            self._model, self._key = fresh, key
            return fresh
        model = self._model
        model.set_weights(fresh.get_weights())
        optimizer = model.optimizer
        for v in optimizer.variables:
            v.assign(tf.zeros_like(v))
        tf.keras.backend.set_value(optimizer.learning_rate, tf.keras.backend.get_value(fresh.optimizer.learning_rate))
        for kept, new in zip(random_generators(model), generators, strict=True):
            kept.reset(new.state)
        model.stop_training = False
        return model


def build_training_variables(model) -> None:
    """Create the optimizer's slots and the compiled loss's and metrics' variables now, before the
    first step. Created inside the first call of Keras' train-step function instead, they make
    TensorFlow trace that function twice (3-4 s each for a ResNet50 at 32 px)."""
    import tensorflow as tf

    if not getattr(model.optimizer, "_built", False):
        model.optimizer.build(model.trainable_variables)
    y = tf.zeros((1, *model.output_shape[1:]), tf.float32)
    if not model.compiled_loss.built:
        model.compiled_loss.build(y)
    if not model.compiled_metrics.built:
        model.compiled_metrics.build(y, y)


def epoch_batches(x: np.ndarray, y: np.ndarray, order: np.ndarray, batch_size: int):
    """The epoch's minibatches in ``order``, as a dataset whose batch dimension is unknown: Keras
    traces its train step once for every batch size (given numpy arrays, it traces the full
    batches, then again for a smaller last one: 3-4 s each at 32 px)."""
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((x[order], y[order])).batch(batch_size)


def validation_logs(model, x_val, y_val, y_val_fit, with_auc: bool = False) -> dict[str, float]:
    """``val_loss`` (the model's compiled loss, unweighted, as Keras' validation computes it),
    ``val_accuracy`` and, with ``with_auc``, ``val_auc`` (AUC of P(positive): what the report
    measures, the ``monitor: val_auc`` criterion) from ONE inference pass over the validation
    images, after this epoch's BatchNorm re-estimation. Non-finite outputs give NaN values (the
    loop then stops as for a NaN loss), not an exception."""
    import tensorflow as tf

    probs = predict_outputs(model, x_val)
    names = ["val_loss", "val_accuracy"] + (["val_auc"] if with_auc else [])
    if not np.isfinite(probs).all():
        return dict.fromkeys(names, np.nan)
    y_val = np.asarray(y_val)
    loss = float(np.mean(tf.keras.losses.get(model.loss)(y_val_fit, probs).numpy()))
    predicted = (probs[:, 0] > 0.5) if probs.shape[-1] == 1 else probs.argmax(axis=-1)
    logs = {"val_loss": loss, "val_accuracy": float(np.mean(predicted == y_val))}
    if with_auc:
        from bench.metrics import binary_metrics

        logs["val_auc"] = float(binary_metrics(y_val, positive_column(probs))["auc"])
    return logs


def best_epoch_index_of(history: dict, p) -> int:
    monitor = getattr(p, "monitor", "val_loss")
    return best_epoch_index(history.get(monitor, [0.0]), monitor)


def _stopped(callbacks: Sequence, history: dict) -> bool:
    """Training stopped in the epochs already run (early stopping, or a NaN loss)."""
    early = any(getattr(cb, "stopped_epoch", 0) for cb in callbacks)
    return early or any(not np.isfinite(v) for v in history.get("loss", []))


def _resume(model, callbacks: Sequence, checkpoint: Checkpoint | None) -> tuple[dict, float, bool]:
    """(history, seconds, finished) of the run so far, after restoring ``checkpoint``'s state
    into ``model`` and ``callbacks``; ({}, 0.0, False) when there is nothing to resume."""
    found = checkpoint.load() if checkpoint is not None else None
    if found is None:
        return {}, 0.0, False
    meta, arrays = found
    Checkpoint.restore(model, callbacks, meta, arrays)
    history = meta["history"]
    if meta["done"]:
        log.info("%s: finished earlier; its final weights loaded", checkpoint.path)
    else:
        log.info("%s: resuming after epoch %d", checkpoint.path, meta["epochs"])
    for epoch in range(meta["epochs"]):  # dvclive starts its files afresh: replay the finished epochs
        for cb in callbacks:
            if type(cb).__name__ == "DVCLiveCallback":
                cb.on_epoch_end(epoch, {k: v[epoch] for k, v in history.items()})
    return history, meta["seconds"], meta["done"]


def _traced_call(model, shape: tuple, training: bool, jit_compile: bool | None = None):
    """``model(x, training=training)`` as one traced function per model, mode and image shape, for
    any batch size, kept for the model's lifetime (:class:`ModelReuse` trains one model many
    times)."""
    import tensorflow as tf

    traced = _TRACED.setdefault(model, {})
    key = (training, shape)
    if key not in traced:
        spec = tf.TensorSpec((None, *shape), tf.float32)
        traced[key] = tf.function(lambda x: model(x, training=training), input_signature=[spec],
                                  jit_compile=jit_compile)
    return traced[key]


def predict_outputs(model, x, batch_size: int = 64) -> np.ndarray:
    """The model's outputs (probabilities) for ``x``, in inference mode, ``batch_size`` images at a
    time: the same batches and operations as ``model.predict`` (tests/test_training.py checks the
    outputs equal), without its per-call set-up, which cost more than the forward passes of a
    100-image validation split at 32 px (0.36 s against 0.13 s on a 2-core AMD EPYC)."""
    import tensorflow as tf

    if not isinstance(model, tf.keras.Model):  # anything else with a Keras-style predict
        return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
    x = np.asarray(x, np.float32)
    if len(x) == 0:
        return np.zeros((0, *model.output_shape[1:]), np.float32)
    # compiled with XLA exactly when the model's own functions are (``jit_compile``)
    forward = _traced_call(model, tuple(x.shape[1:]), training=False,
                           jit_compile=bool(getattr(model, "jit_compile", False)) or None)
    return np.concatenate([forward(x[i:i + batch_size]).numpy() for i in range(0, len(x), batch_size)])


def positive_column(probs: np.ndarray) -> np.ndarray:
    """Column 1 of a two-unit softmax output, the only column of a one-unit sigmoid output."""
    return probs[:, 0 if probs.shape[-1] == 1 else 1].astype(np.float64)


def predict_positive(model, x, batch_size: int = 64) -> np.ndarray:
    """P(positive class) for each input (:func:`positive_column`); NaN/inf raises NumericalError."""
    scores = positive_column(predict_outputs(model, x, batch_size))
    bad = ~np.isfinite(scores)
    if bad.any():
        raise NumericalError(f"the classifier output NaN/inf for {int(bad.sum())} of {len(scores)} images")
    return scores


# --------------------------------------------------------------------------- grid search


@dataclass(frozen=True)
class Candidate:
    """One training run of a grid: its hyperparameters, repeat number and seed."""

    index: int
    learning_rate: float
    beta_1: float
    repeat: int
    seed: int


def candidate_log_dir(out: str | os.PathLike, index: int, n_candidates: int) -> Path:
    """Where ``fit(log_dir=...)`` writes a candidate's dvclive log: ``out/dvclive`` when
    there is one candidate, ``out/dvclive/candidate<index>`` for each of a grid's."""
    folder = Path(out) / "dvclive"
    return folder if n_candidates == 1 else folder / f"candidate{index}"


def candidate_seed(seed: int, index: int) -> int:
    """Candidate 0 uses the run seed itself (a run without a grid is what it always was);
    candidate k > 0 a seed drawn from ``SeedSequence([seed, k])``."""
    if index == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0] % 2**31)


def grid_candidates(p, seed: int) -> list[Candidate]:
    """Every (learning rate, β1) of the grid × ``repeats``; an empty grid axis means the
    single ``learning_rate`` / ``beta_1``. Order: lr, then β1, then repeat."""
    lrs = tuple(getattr(p, "grid_learning_rate", ())) or (p.learning_rate,)
    betas = tuple(getattr(p, "grid_beta_1", ())) or (getattr(p, "beta_1", 0.9),)
    combos = [(lr, b, r) for lr in lrs for b in betas for r in range(getattr(p, "repeats", 1))]
    return [Candidate(k, float(lr), float(b), r, candidate_seed(seed, k)) for k, (lr, b, r) in enumerate(combos)]


@dataclass
class Trial:
    """A trained candidate, judged on the validation split only; ``state`` is whatever the
    caller needs to keep of the chosen one (model, history, scores)."""

    candidate: Candidate
    val_loss: float
    val_auc: float
    best_epoch: int
    epochs: int
    state: Any = None


def selection_key(trial: Trial, criterion: str) -> tuple[float, float]:
    """Smaller is better. ``val_auc``: highest AUC, ties by lowest loss; ``val_loss``: lowest
    loss, ties by highest AUC. Non-finite values rank last."""
    loss = trial.val_loss if np.isfinite(trial.val_loss) else np.inf
    auc = trial.val_auc if np.isfinite(trial.val_auc) else -np.inf
    if criterion == "val_auc":
        return (-auc, loss)
    if criterion == "val_loss":
        return (loss, -auc)
    raise ValueError(f"selection criterion must be 'val_loss' or 'val_auc', got {criterion!r}")


def _grid_row(c: Candidate, trial: Trial | None) -> dict[str, Any]:
    row = {"candidate": c.index, "learning_rate": c.learning_rate, "beta_1": c.beta_1, "repeat": c.repeat,
           "seed": c.seed}
    if trial is None:
        return {**row, "val_loss": np.nan, "val_auc": np.nan, "best_epoch": 0, "epochs": 0, "status": "diverged"}
    return {**row, "val_loss": trial.val_loss, "val_auc": trial.val_auc, "best_epoch": trial.best_epoch,
            "epochs": trial.epochs, "status": "ok"}


def run_grid(candidates: Sequence[Candidate], fit_one: Callable[[Candidate], Trial],
             criterion: str) -> tuple[Trial, pd.DataFrame]:
    """Train every candidate with ``fit_one`` and keep the best by ``criterion`` (the earlier
    on ties). Only the best trial stays referenced. A candidate raising NumericalError is
    recorded as diverged; if all do, the first error is raised. Returns the best trial and the
    table (candidate, learning_rate, beta_1, repeat, seed, val_loss, val_auc, best_epoch,
    epochs, status, selected)."""
    best, rows, errors = None, [], []
    for c in candidates:
        try:
            trial = fit_one(c)
        except NumericalError as exc:
            errors.append(exc)
            rows.append(_grid_row(c, None))
            continue
        rows.append(_grid_row(c, trial))
        if best is None or selection_key(trial, criterion) < selection_key(best, criterion):
            best = trial
    if best is None:
        if len(errors) == 1:
            raise errors[0]
        raise NumericalError(f"all {len(errors)} grid candidates diverged; the first: {errors[0]}")
    table = pd.DataFrame(rows)
    table["selected"] = table["candidate"] == best.candidate.index
    return best, table
