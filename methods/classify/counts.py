"""Trainable / non-trainable parameter counts of a classifier in a transfer mode.

Counts do not depend on the weights, so models are built with ``weights="none"``
unless asked otherwise. Used by ``augbench params-count`` and by the report
(Byra 2021, Table 1).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from methods.classify._keras import count


def head_count(model) -> int:
    """Trainable weights of the head (layers named ``head_*``)."""
    return sum(count(layer.trainable_weights) for layer in model.layers if layer.name.startswith("head_"))


def drs_groups(model) -> list[dict[str, int]]:
    """DRS layers grouped by shape, in network order: h, w, c, blocks, per_block, total."""
    from methods.classify.drs import drs_decomposition

    shapes = Counter((r["h"], r["w"], r["c"]) for r in drs_decomposition(model))  # keeps network order
    groups = []
    for (h, w, c), n in shapes.items():
        per_block = 2 * h * w + 2 * c
        groups.append({"h": h, "w": w, "c": c, "blocks": n, "per_block": per_block, "total": n * per_block})
    return groups


def model_counts(model) -> dict[str, Any]:
    """Counts of a built model: trainable, non_trainable, total, head; for DRS models also
    ``drs`` (their trainable weights) and ``drs_groups`` (the 2·H·W + 2·C decomposition)."""
    from methods.classify.drs import drs_layers

    trainable, frozen = count(model.trainable_weights), count(model.non_trainable_weights)
    out: dict[str, Any] = {"trainable": trainable, "non_trainable": frozen, "total": trainable + frozen,
                           "head": head_count(model)}
    layers = drs_layers(model)
    if layers:
        out["drs"] = sum(count(layer.trainable_weights) for layer in layers)
        out["drs_groups"] = drs_groups(model)
    return out


def parameter_counts(name: str, mode: str | None, input_size: int, weights: str = "none") -> dict[str, Any]:
    """Build classifier plugin ``name`` in transfer ``mode`` (None: its default) at
    ``input_size`` px (raised to the architecture's minimum) with two outputs, and count
    its parameters: ``model_counts`` plus classifier, mode, input_size."""
    import dataclasses

    import tensorflow as tf

    from bench import registry
    from bench.errors import AugbenchError

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
                **model_counts(model)}
    finally:
        tf.keras.backend.clear_session()
