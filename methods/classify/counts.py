"""The DRS classifier's own parameter counts (Byra 2021, Table 1).

The generic counts (trainable, non-trainable, total, head) and building a plugin's model to
count it are in bench.counts (``augbench params-count``, the report); the DRS classifier
(methods.classify.drs) adds the entries here to them through its ``parameter_counts``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from bench.counts import count


def drs_groups(model) -> list[dict[str, int]]:
    """DRS layers grouped by shape, in network order: h, w, c, blocks, per_block, total."""
    from methods.classify.drs import drs_decomposition

    shapes = Counter((r["h"], r["w"], r["c"]) for r in drs_decomposition(model))  # keeps network order
    groups = []
    for (h, w, c), n in shapes.items():
        per_block = 2 * h * w + 2 * c
        groups.append({"h": h, "w": w, "c": c, "blocks": n, "per_block": per_block, "total": n * per_block})
    return groups


def drs_counts(model) -> dict[str, Any]:
    """For a model with DRS layers: ``drs`` (their trainable weights) and ``drs_groups`` (the
    2·H·W + 2·C decomposition); empty for one without (the plain transfer modes)."""
    from methods.classify.drs import drs_layers

    layers = drs_layers(model)
    if not layers:
        return {}
    return {"drs": sum(count(layer.trainable_weights) for layer in layers), "drs_groups": drs_groups(model)}
