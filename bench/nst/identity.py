"""Which NST rows minimise the same loss: a canonical form of each resolved loss configuration,
and a comparison of two of them.

The identity behind it (Li et al. 2017, "Demystifying Neural Style Transfer", §3; restated as
Panigrahi et al. 2024 Eq. 6): with the degree-2 polynomial kernel k(x, y) = (xᵀy)² and the
biased MMD estimator,

    E_l = 1/(4 N_l² M_l²) Σ_ij (G_l(Î) − G_l(I_s))²_ij = 1/(4 N_l²) · MMD²_k[F_l(Î), F_l(I_s)],

so the Gram loss of Gatys et al. 2016 (Eq. 4), DNST with the polynomial kernel at c = 0 (Eq. 6)
and the combined loss of nst-proposed at c = 0 with one reference are the same function of the
image; with several references, the last equals mr²NST's max-Gram loss (Eq. 7-9). In this code
base the equality is exact (bench.nst.losses: GramStyle, MMDStyle("poly", c=0) and CombinedStyle(0)
compute 1/(4N²)‖Ĝ − Â‖²; tests/test_nst_losses.py). Two totals L = α·L_c + β·Σ_l w_l·E_l + λ·TV
whose weight vectors (α, β·w_1 … β·w_L, λ) are proportional have the same minimisers: "equal up to
a constant factor" (the optimiser's path may still differ, e.g. L-BFGS line searches).

Two losses are compared only for the same problems: the same (content, style) pairs (the sampling
plan and k per content image), the same target (one reference, or the max over exactly n), and for
a relevance-weighted content term the same LRP rule and α/β. What the check cannot see: the content
term as a sum, α·½Σ(F−P)², equals the per-element mean with α·H_l·W_l·N_l, but H_l·W_l depend on
the image size, which the configuration does not hold, so "sum" and "mean" count as different forms
(such a pair is at most "same style term, different weights"). Switching sum → mean at fixed α and β
is not a constant factor of the total: it scales the content term alone, by 1/(H_l·W_l·N_l).
"""

from __future__ import annotations

import math
from typing import Any

IDENTICAL = "identical loss"
PROPORTIONAL = "equal up to a constant factor"
SAME_STYLE_TERM = "same style term, different weights"


def style_statistic(style_loss: dict[str, Any]) -> tuple:
    """The mathematical style statistic of a style loss's ``describe()`` output: Gram and the
    polynomial MMD (plain or combined) at the same c are one statistic ("poly2", c)."""
    name = style_loss.get("style_loss", "")
    if name == "gram":
        return ("poly2", 0.0)
    if name in ("mmd-poly", "combined-mmd-poly"):
        return ("poly2", float(style_loss.get("poly_c", 0.0)))
    if name == "mmd-gaussian":
        return ("gaussian", float(style_loss.get("bandwidth_scale", 1.0)))
    return (name,)


def canonical(config: dict[str, Any]) -> dict[str, Any]:
    """The parts of a loss configuration (``_NSTAugmenter.loss_config()``) that decide the loss
    as a function of the image: features, the content term (with its LRP rule, if relevance-weighted),
    the style statistic with its target (one reference, or the element-wise max over n: Panigrahi
    Eq. 9), the sampling plan (which pairs it is minimised for) and the normalised weights.
    Configurations written before ``relevance`` and ``sampling`` were recorded read them as None."""
    alpha, beta, tv = config["content_weight"], config["style_weight"], config["tv_weight"]
    weights = [alpha, *(beta * w for w in config["style_layer_weights"]), tv]
    total = sum(weights)
    return {
        "features": (config["encoder"], config["weights"], config["pooling"],
                     tuple(config["content_layers"]), tuple(config["style_layers"])),
        "content": (config["content_normalisation"], config["content_weighting"],
                    _frozen(config.get("relevance"))),
        "style": style_statistic(config["style"]),
        "target": ("max", int(config["n_references"])) if config["n_references"] > 1 else ("single",),
        "sampling": _frozen(config.get("sampling")),
        "raw_weights": tuple(weights),
        "weights": tuple(w / total for w in weights) if total > 0 else tuple(weights),
    }


def relation(a: dict[str, Any], b: dict[str, Any]) -> str:
    """How two loss configurations relate: IDENTICAL, PROPORTIONAL, SAME_STYLE_TERM, or ""."""
    ca, cb = canonical(a), canonical(b)
    if ca["sampling"] != cb["sampling"]:
        return ""  # not the same problems: different (content, style) pairs
    same_form = all(ca[k] == cb[k] for k in ("features", "content", "style", "target"))
    if same_form and _close(ca["raw_weights"], cb["raw_weights"]):
        return IDENTICAL
    if same_form and _close(ca["weights"], cb["weights"]):
        return PROPORTIONAL
    if ca["style"] == cb["style"] and ca["target"] == cb["target"] and ca["features"] == cb["features"]:
        return SAME_STYLE_TERM
    return ""


def equal_losses(configs: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    """Every pair of rows (name → loss configuration) whose losses are related, sorted by name:
    ``[{"a": name, "b": name, "relation": ...}]``."""
    names = sorted(configs)
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            rel = relation(configs[a], configs[b])
            if rel:
                out.append({"a": a, "b": b, "relation": rel})
    return out


def _frozen(value: Any) -> Any:
    """A dict (e.g. the LRP rule or the sampling plan) as a comparable tuple; None stays None."""
    return tuple(sorted(value.items())) if isinstance(value, dict) else value


def _close(x: tuple, y: tuple) -> bool:
    return len(x) == len(y) and all(math.isclose(u, v, rel_tol=1e-9, abs_tol=1e-15) for u, v in zip(x, y, strict=True))
