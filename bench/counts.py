"""Trainable / non-trainable parameter counts of a classifier in a transfer mode.

Counts do not depend on the weights, so models are built with ``weights="none"`` unless asked
otherwise. Used by ``augbench params-count`` and by the report (Byra 2021, Table 1).
:func:`parameter_counts` builds a registered classifier plugin's model and asks the plugin for
its counts (:meth:`bench.plugins.Classifier.parameter_counts`: :func:`model_counts` by default;
a plugin adds its own entries, as the DRS classifier does with its DRS layers).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from bench.errors import AugbenchError


def count(weights) -> int:
    """Number of scalars in a list of weights (variables or arrays)."""
    return int(sum(int(np.prod(w.shape)) for w in weights))


def head_count(model) -> int:
    """Trainable weights of the head (layers named ``head_*``)."""
    return sum(count(layer.trainable_weights) for layer in model.layers if layer.name.startswith("head_"))


def model_counts(model) -> dict[str, Any]:
    """Counts of a built model: trainable, non_trainable, total, head."""
    trainable, frozen = count(model.trainable_weights), count(model.non_trainable_weights)
    return {"trainable": trainable, "non_trainable": frozen, "total": trainable + frozen,
            "head": head_count(model)}


def plugin_counts(clf, model) -> dict[str, Any]:
    """The counts classifier plugin ``clf`` gives for ``model`` (its ``parameter_counts``; a
    duck-typed plugin without one: :func:`model_counts`)."""
    method = getattr(clf, "parameter_counts", None)
    return method(model) if callable(method) else model_counts(model)


def parameter_counts(name: str, mode: str | None, input_size: int, weights: str = "none") -> dict[str, Any]:
    """Build classifier plugin ``name`` in transfer ``mode`` (None: its default) at
    ``input_size`` px (raised to the architecture's minimum) with two outputs, and count
    its parameters: the plugin's counts (:func:`plugin_counts`) plus classifier, mode, input_size."""
    import tensorflow as tf

    from bench import registry

    # `weights` and `transfer` are conventions of the built-in classifiers, not of the plugin
    # contract: a plugin without them is built with its defaults (mode reported as its default).
    fields = {f.name for f in dataclasses.fields(registry.get("classifier", name).Params)}
    if mode and "transfer" not in fields:
        raise AugbenchError(f"classifier {name!r} has no transfer modes (its parameters have no 'transfer')")
    overrides = {"transfer": mode} if mode else {}
    if "weights" in fields:
        overrides["weights"] = weights
    clf = registry.create("classifier", name, **overrides)
    size = clf.input_size(input_size)
    try:
        model = clf.build((size, size, 3), 2)
        return {"classifier": name, "mode": getattr(clf.params, "transfer", None), "input_size": size,
                **plugin_counts(clf, model)}
    finally:
        tf.keras.backend.clear_session()
