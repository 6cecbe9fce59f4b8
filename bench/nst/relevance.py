"""LRP relevance of content images for the relevance-weighted content loss of ``nst-proposed-lrp``.

Panigrahi et al. 2024, "Proposed augmentation model", Step 2: "Propagate the LRP
method in the ResNet50 model to explain the contributions of each input feature
from the content images", integrated "with the content loss function". The paper
gives no formula for the integration; ours (README "NST losses"):

    L_c^LRP = ½ Σ_ij ω_ij (F_ij(Î) − P_ij)²,   ω = R⁺ · n / Σ R⁺          (cf. Eq. 2)

where R is the LRP relevance (α2β1, Panigrahi Eq. 16; bench.xai.lrp) of the content
image's *own class* logit at the content layer's output, taken from the domain
encoder's classifier (the ResNet50 backbone the encoder stage trained on the
training split, with its GlobalAveragePooling2D → Dense head), n the number of
elements of that layer. ω has mean 1, so the loss keeps Eq. 2's scale; a uniform
relevance gives Eq. 2 exactly (bench.nst.losses.relevance_weights). Relevance is
computed once per content image and resolution level, and cached by the engine.

The classifier is the network as trained (max pooling in ResNet50's stem); the
``nst-proposed*`` augmenters use the same pooling for their features, so R and F
come from one network.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.errors import AugbenchError
from bench.nst.losses import relevance_weights


def domain_classifier(arch: str, weights, encoder_dir: Path):
    """The encoder stage's classifier: the Keras backbone with ``weights`` (a WeightsSource of
    kind ``domain``) + GlobalAveragePooling2D + Dense(softmax) with the saved head."""
    from bench.nst.domain import with_head
    from bench.nst.encoders import domain_head, get_encoder_spec

    if weights.kind != "domain" or not weights.path:
        raise AugbenchError("nst-proposed-lrp explains the domain encoder's classifier: set weights: domain "
                            f"(got {weights.kind!r}); ImageNet and random backbones have no breast-lesion head")
    head = domain_head(arch, encoder_dir)
    backbone = get_encoder_spec(arch).build()
    backbone.load_weights(weights.path)
    model = with_head(backbone, head["kernel"].shape[1])
    model.get_layer("domain_head").set_weights([head["kernel"], head["bias"]])
    return model


class ContentRelevance:
    """Callable for :class:`bench.nst.transfer.TransferConfig` ``content_weights``: the ω of
    every content layer for a chunk of source images, explained for their own labels."""

    def __init__(self, model, labels: np.ndarray, content_layers: Sequence[str], rule: str = "alpha-beta",
                 alpha: float | None = None, beta: float | None = None):
        from bench.xai.lrp import ALPHA, BETA, canonize

        self.graph = canonize(model)  # once: folding BatchNorm is the slow part
        self.labels = np.asarray(labels)
        self.layers = list(content_layers)
        self.rule = rule
        self.alpha, self.beta = ALPHA if alpha is None else alpha, BETA if beta is None else beta
        # (source index, layer, shape) → shares; a retry or another resolution level of the same
        # image replaces or adds its own entry, never double-counts it
        self.stats: dict[tuple, dict] = {}

    def __call__(self, indices: np.ndarray, images: np.ndarray) -> list[np.ndarray]:
        import tensorflow as tf

        from bench.nst.encoders import to_encoder_input
        from bench.xai.lrp import explain

        x = to_encoder_input(tf.constant(np.asarray(images, np.float32)[..., None])).numpy()
        _, layers = explain(self.graph, x, self.rule, alpha=self.alpha, beta=self.beta,
                            target=self.labels[np.asarray(indices)], return_layers=True)
        out = []
        for name in self.layers:
            if name not in layers:
                raise AugbenchError(f"LRP gives no relevance for content layer {name!r}; "
                                    f"layers with relevance: {', '.join(sorted(layers)[:8])} ...")
            r = layers[name]
            if not np.all(np.isfinite(r)):
                raise AugbenchError(f"LRP relevance at {name!r} is not finite for source images "
                                    f"{list(map(int, indices))}")
            w = np.stack([relevance_weights(ri) for ri in r])
            out.append(w)
            for idx, ri, wi in zip(indices, r, w, strict=True):
                self.stats[(int(idx), name, ri.shape)] = {"positive_share": float((ri > 0).mean()),
                                                          "zero_weight_share": float((wi == 0).mean())}
        return out

    def summary(self) -> dict:
        """Mean share of elements with positive relevance (= weight > 0) over the explained images."""
        if not self.stats:
            return {}
        shares = list(self.stats.values())
        return {"relevance_rule": f"{self.rule} (alpha {self.alpha}, beta {self.beta})",
                "relevance_images": len({key[0] for key in self.stats}),
                "relevance_positive_share": round(float(np.mean([s["positive_share"] for s in shares])), 4),
                "relevance_zero_weight_share": round(float(np.mean([s["zero_weight_share"] for s in shares])), 4)}
