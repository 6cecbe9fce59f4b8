"""``drs-resnet101``: ResNet101 with Deep Representation Scaling (Byra et al. 2021).

Architecture (Byra 2021, Eq. 2–4, Fig. 2): in each of the 33 residual blocks of
ResNet101 a DRS layer (``methods.classify.layers.DRS``: a spatial H×W scale and
bias, then a per-channel scale and bias, initialised to identity) sits between
the residual addition and the ReLU — in Keras names between ``{block}_add`` and
``{block}_out``; the layer is ``{block}_drs``. The network is built as a plain
Keras ResNet101 (``include_top=False, weights=None``), the ImageNet/file weights
are loaded into it, and its graph is rebuilt layer by layer with fresh copies of
every layer (same names, same weights) and the DRS layers inserted. One flat
model: block outputs are reachable for the activation analysis.

Head: GlobalAveragePooling2D → Dense(1, sigmoid) (binary cross-entropy, §3.4),
given to the harness as the pair (1 − p, p) (``_keras._head_sigmoid``: no extra
weights, same loss). Byra's Table 1 DRS count reconciles only with this head:
at 224×224 the ``drs`` mode trains exactly 101,471 weights =
Σ over the 33 blocks of (2·H·W + 2·C) + the dense layer, where

    conv2:  3 blocks × (2·56·56 + 2·256)  = 3 × 6,784  = 20,352
    conv3:  4 blocks × (2·28·28 + 2·512)  = 4 × 2,592  = 10,368
    conv4: 23 blocks × (2·14·14 + 2·1024) = 23 × 2,440 = 56,120
    conv5:  3 blocks × (2·7·7 + 2·2048)   = 3 × 4,194  = 12,582
    DRS total 99,422;  head Dense(2048 → 1): 2,048 + 1 = 2,049;  sum 101,471

(so Table 1's "excluding the last task specific dense layer" does not hold for
the DRS row; tests/test_classifiers.py checks the number). Byra's other rows do
not reconcile exactly with Keras' ResNet101: last block 4,471,394 vs 4,465,664
for ``conv5_block3`` (see methods/classify/resnet.py), all blocks 42,653,790 vs
42,552,832 trainable backbone weights.

Transfer modes: ``drs`` (backbone frozen with BatchNorm in inference mode; DRS
layers and head train), ``drs+finetune-last-block`` (also ``conv5_block3_*``),
``drs+finetune-all`` (everything), and Byra's baselines without DRS layers
(Table 2): ``feature-extraction``, ``finetune-last-block``, ``finetune-all``.

Recipe (Byra 2021 §3.4, the defaults of ``DRSResNet101Params``): Adam, binary
cross-entropy weighted inversely to class frequency, grid over lr {1e-3, 1e-2,
1e-1} × β1 {0.85, 0.9, 0.95}, β2 0.999, batch 24, validation accuracy
monitored: training stops after 20 epochs without improvement and the lr is
multiplied by 0.9 after 4; each grid point trained 3 times and "the better
performing model on the validation set was selected". The paper names no
selection metric; its evaluation metric is AUC (§3.3, Table 2), so candidates
are ranked by validation AUC (ties: lower validation loss). Within a run the
epoch with the best validation accuracy (the monitored quantity) is kept. The
paper gives no epoch limit; ours is 100 (early stopping normally ends sooner).

Activation rates (Byra 2021 Eq. 5–7, ``activation_rates``): A_l, the fraction of
positive elements of block l's ReLU output over a set of images, for the trained
model and for the reference — the same network with its initial weights (DRS at
identity, i.e. the feature-extraction model) — and ΔA_l, the fraction of
elements whose sign differs between the two. ``drs_deviation`` gives the mean
and max absolute deviation of the DRS parameters from identity (Byra Fig. 7).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from bench.weights import resolve_weights
from methods.classify._keras import (
    KerasApplicationClassifier,
    KerasParams,
    add_head,
    compile_model,
    freeze,
    split_mode,
    trainable_names,
    upsize_input,
)
from methods.classify.resnet import caffe_preprocess, resnet_last_block

BYRA = "Byra et al. 2021"
BYRA_TRAINING = BYRA + ", §3.4"
BLOCK_OUT = re.compile(r"^(conv\d+_block\d+)_out$")  # Keras ResNet block outputs: f(y_l) of Eq. 1
DRS_PARAMS = ("spatial_scale", "spatial_bias", "channel_scale", "channel_bias")
IDENTITY = {"spatial_scale": 1.0, "spatial_bias": 0.0, "channel_scale": 1.0, "channel_bias": 0.0}  # Byra §2.2


@dataclass(frozen=True)
class DRSResNet101Params(KerasParams):
    transfer: Literal["drs", "drs+finetune-last-block", "drs+finetune-all", "feature-extraction",
                      "finetune-last-block", "finetune-all"] = field(
        default="drs", metadata={"source": BYRA + ", §3.2 (DRS: only DRS layers and dense layer train)"})
    epochs: int = field(default=100, metadata={"source": "not stated in the paper (assumption): cap only"})
    batch_size: int = field(default=24, metadata={"source": BYRA_TRAINING})
    optimizer: Literal["sgd", "adam"] = field(default="adam", metadata={"source": BYRA_TRAINING})
    learning_rate: float = field(default=1e-3, metadata={"source": BYRA_TRAINING + " (used when the grid is empty)"})
    beta_1: float = field(default=0.9, metadata={"source": BYRA_TRAINING + " (used when the grid is empty)"})
    beta_2: float = field(default=0.999, metadata={"source": BYRA_TRAINING})
    head: Literal["panigrahi", "softmax", "sigmoid"] = field(default="sigmoid", metadata={
        "source": BYRA_TRAINING + " binary cross-entropy; Table 1 count"})
    monitor: Literal["val_loss", "val_accuracy"] = field(default="val_accuracy", metadata={
        "source": BYRA_TRAINING + " ('monitored the accuracy on the validation set')"})
    early_stopping_patience: int = field(default=20, metadata={"source": BYRA_TRAINING})
    reduce_lr_factor: float = field(default=0.9, metadata={"source": BYRA_TRAINING})
    reduce_lr_patience: int = field(default=4, metadata={"source": BYRA_TRAINING})
    class_weight: Literal["none", "balanced"] = field(default="balanced", metadata={"source": BYRA_TRAINING})
    grid_learning_rate: tuple[float, ...] = field(default=(1e-3, 1e-2, 1e-1), metadata={"source": BYRA_TRAINING})
    grid_beta_1: tuple[float, ...] = field(default=(0.85, 0.9, 0.95), metadata={"source": BYRA_TRAINING})
    repeats: int = field(default=3, metadata={"source": BYRA_TRAINING})
    select: Literal["val_loss", "val_auc"] = field(default="val_auc", metadata={
        "source": BYRA_TRAINING + " 'better performing on validation'; AUC is the paper's metric (§3.3)"})

    ARCH_NAME: ClassVar[str] = "ResNet101"


def rebuild_with_drs(plain, inputs, with_drs: bool = True) -> tuple[Any, list[str]]:
    """Re-apply fresh copies of ``plain``'s layers to ``inputs``, a DRS layer after each
    ``{block}_add``. Returns the output tensor and the DRS layer names (weights: not copied)."""
    from methods.classify.layers import DRS

    tensors = {plain.layers[0].name: inputs}
    added: list[str] = []
    for layer in plain.layers[1:]:  # topological order
        parents = layer.inbound_nodes[0].inbound_layers
        args = [tensors[q.name] for q in parents] if isinstance(parents, list) else tensors[parents.name]
        x = type(layer).from_config(layer.get_config())(args)
        if with_drs and layer.name.endswith("_add"):
            drs = DRS(name=layer.name.removesuffix("_add") + "_drs")
            x = drs(x)
            added.append(drs.name)
        tensors[layer.name] = x
    return tensors[plain.layers[-1].name], added


class DRSResNet101Classifier(KerasApplicationClassifier):
    Params = DRSResNet101Params
    paper = BYRA
    summary = "ResNet101 + Deep Representation Scaling layers, GAP/Dense(1, sigmoid) head, Adam grid (Byra 2021)."
    arch = "resnet101"

    def keras_preprocess(self, rgb255: np.ndarray) -> np.ndarray:
        """Keras 'caffe' ResNet preprocessing: Byra normalises "in the same way as the ImageNet data"."""
        return caffe_preprocess(rgb255)

    def backbone(self, input_shape):
        import tensorflow as tf

        return tf.keras.applications.ResNet101(include_top=False, weights=None, input_shape=input_shape)

    def build(self, input_shape: tuple[int, ...], n_classes: int):
        import tensorflow as tf

        p = self.params
        weights_file, self.weights_description = resolve_weights(p.weights, self.arch)
        inputs, upsized = upsize_input(input_shape, self.Params.MIN_INPUT_SIZE)
        plain = self.training_backbone(tuple(upsized.shape[1:]))
        if weights_file:
            self.load_weights(plain, weights_file, p.weights)
        features, drs_names = rebuild_with_drs(plain, upsized, with_drs=split_mode(p.transfer)[0])
        model = tf.keras.Model(inputs, add_head(features, p, n_classes), name="drs_resnet101_classifier")
        backbone = [layer.name for layer in plain.layers[1:]]
        for name in backbone:
            model.get_layer(name).set_weights(plain.get_layer(name).get_weights())
        train = trainable_names(p.transfer, backbone, resnet_last_block(backbone), drs_names)
        freeze((model.get_layer(n) for n in backbone + drs_names), train)
        compile_model(model, p)
        return model

    def parameter_counts(self, model) -> dict[str, Any]:
        """The generic counts plus, with DRS layers, ``drs`` and ``drs_groups`` (methods.classify.counts)."""
        from methods.classify.counts import drs_counts

        return {**super().parameter_counts(model), **drs_counts(model)}

    def analyse(self, model, initial_weights: list[np.ndarray], images: np.ndarray) -> dict | None:
        """Byra's activation analysis on ``images`` (the train stage passes the test split):
        {"tables": {"activation.csv": per-block table}, "meta": {"drs_deviation": ...}};
        None for the modes without DRS layers."""
        if not drs_layers(model):
            return None
        reference = initial_model(model, initial_weights)
        table = activation_rates(model, reference, images).merge(drs_deviation(model), on=["block", "name"])
        return {"tables": {"activation.csv": table}, "meta": {"drs_deviation": deviation_summary(model)}}


# --------------------------------------------------------------------------- analysis


def initial_model(model, initial_weights: list[np.ndarray]):
    """A copy of ``model`` with the weights it had before training (the reference of Eq. 6)."""
    import tensorflow as tf

    import methods.classify.layers  # noqa: F401  (registers DRS for cloning)

    reference = tf.keras.models.clone_model(model)
    reference.set_weights(initial_weights)
    return reference


def drs_layers(model) -> list:
    from methods.classify.layers import DRS

    return [layer for layer in model.layers if isinstance(layer, DRS)]


def block_outputs(model) -> list[str]:
    """Names of the residual blocks' ReLU outputs ``{block}_out``, in network order."""
    return [layer.name for layer in model.layers if BLOCK_OUT.match(layer.name)]


def _owner(model, names: list[str]):
    """``model`` or the nested sub-model (a backbone applied to the input) holding ``names``."""
    import tensorflow as tf

    for candidate in [model, *(la for la in model.layers if isinstance(la, tf.keras.Model))]:
        have = {layer.name for layer in candidate.layers}
        if set(names) <= have:
            return candidate
    raise ValueError(f"layers {names[:3]}... are not all in {model.name} or one of its sub-models")


def _probe(model, names: list[str]):
    import tensorflow as tf

    owner = _owner(model, names)
    return tf.keras.Model(owner.inputs, [owner.get_layer(n).output for n in names])


def activation_rates(model, reference, images: np.ndarray, names: list[str] | None = None,
                     batch_size: int = 16) -> pd.DataFrame:
    """Byra 2021 Eq. 5–7 for each layer in ``names`` (default: every ``{block}_out``).

    ``rate`` = A_l of ``model``, ``rate_reference`` = A_l of ``reference``: the
    fraction of elements > 0 of the layer's output over all ``images`` (Eq. 5; ReLU
    outputs are ≥ 0, so the sign is 1 exactly when positive). ``rate_change`` = ΔA_l:
    the fraction of elements whose sign differs between the two models (Eq. 6–7).
    Rows: block (1-based), name (without ``_out``), rate, rate_reference, rate_change.
    """
    names = list(names or block_outputs(model))
    probes = _probe(model, names), _probe(reference, names)
    positive, positive_ref, changed, total = (np.zeros(len(names), np.int64) for _ in range(4))
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        outs, refs = ([o] if len(names) == 1 else o for o in (p(batch, training=False) for p in probes))
        for i, (a, b) in enumerate(zip(outs, refs, strict=True)):
            on, on_ref = a.numpy() > 0, b.numpy() > 0
            positive[i] += on.sum()
            positive_ref[i] += on_ref.sum()
            changed[i] += (on != on_ref).sum()
            total[i] += on.size
    return pd.DataFrame({"block": np.arange(1, len(names) + 1), "name": [n.removesuffix("_out") for n in names],
                         "rate": positive / total, "rate_reference": positive_ref / total,
                         "rate_change": changed / total})


def _deviations(layer) -> dict[str, np.ndarray]:
    return {k: np.abs(getattr(layer, k).numpy() - IDENTITY[k]).ravel() for k in DRS_PARAMS}


def drs_deviation(model) -> pd.DataFrame:
    """Per DRS layer: mean and max |parameter − identity| of each of its four parameters (Byra Fig. 7)."""
    rows = []
    for i, layer in enumerate(drs_layers(model), start=1):
        row: dict[str, Any] = {"block": i, "name": layer.name.removesuffix("_drs")}
        for key, dev in _deviations(layer).items():
            row[f"{key}_mean_abs"], row[f"{key}_max_abs"] = float(dev.mean()), float(dev.max())
        rows.append(row)
    return pd.DataFrame(rows)


def deviation_summary(model) -> dict[str, dict[str, float]]:
    """Mean and max |parameter − identity| over all DRS layers, per parameter kind."""
    per_layer = [_deviations(layer) for layer in drs_layers(model)]
    out = {}
    for key in DRS_PARAMS:
        values = np.concatenate([d[key] for d in per_layer])
        out[key] = {"mean_abs": float(values.mean()), "max_abs": float(values.max())}
    return out


def drs_decomposition(model) -> list[dict[str, int | str]]:
    """Each DRS layer's shape and its 2·H·W + 2·C weights."""
    rows = []
    for layer in drs_layers(model):
        _, h, w, c = layer.input_shape
        rows.append({"name": layer.name, "h": h, "w": w, "c": c, "params": 2 * h * w + 2 * c})
    return rows
