"""Explanations of classifier decisions.

- :mod:`bench.xai.lrp`: layer-wise relevance propagation (Panigrahi et al. 2024,
  Eq. 10–16; Montavon, Samek & Müller 2018) for tf.keras functional models —
  :func:`~bench.xai.lrp.explain`, :func:`~bench.xai.lrp.canonize` (BatchNorm
  folding) and the gradient × input baseline.

Importing this package does not import TensorFlow; the names below load
:mod:`bench.xai.lrp` (and TensorFlow) on first use.
"""

from __future__ import annotations

import importlib

__all__ = ["Graph", "UnsupportedLayerError", "canonization_error", "canonize", "explain",
           "gradient_x_input", "positive_share_inside", "supported_layers"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(importlib.import_module("bench.xai.lrp"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
