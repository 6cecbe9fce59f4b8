"""NST methods as their papers define them: Panigrahi's β = γ·β′ with balanced terms, the ablation
rows under one encoder, every NST loss named, and rows with mathematically equal losses flagged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from bench.config import load_params  # noqa: E402
from bench.data.phantom import generate_phantom  # noqa: E402
from bench.nst import identity, losses  # noqa: E402
from bench.nst.encoders import get_encoder_spec, resolve_encoder_weights  # noqa: E402
from bench.nst.engine import Job, LossConfig, NSTEngine, Schedule  # noqa: E402
from bench.typed import describe_fields  # noqa: E402
from methods.augment.nst import DNST, MR2NST, GatysNST, ProposedLRPNST, ProposedNST, ProposedParams  # noqa: E402

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
SIZE = 32
ABLATION = ("nst-mr2-resnet50", "nst-combined", "nst-combined-lrp")


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.stack([s.image for s in generate_phantom(3, size=SIZE, seed=7)]).astype(np.float32)


def _plugin(params, name):
    from bench import registry

    return registry.get("augmenter", params.method_plugin(name))(params.method_params(name))


# --------------------------------------------------------------------------- β = γ·β′


def test_proposed_beta_is_gamma_times_beta_prime():
    aug = ProposedNST(ProposedParams())
    assert aug.style_weight() == pytest.approx(5.0 * 1e-3)
    assert ProposedNST(ProposedParams(gamma=2.0, beta_prime=0.5)).style_weight() == pytest.approx(1.0)
    assert ProposedNST(ProposedParams(style_weight=3.0)).style_weight() == 3.0  # an explicit β wins
    assert aug.loss_config()["content_normalisation"] == "mean"


def test_describe_shows_alpha_beta_gamma_beta_prime_with_sources():
    rows = {f["name"]: f for f in describe_fields(ProposedParams)}
    for name, symbol in (("content_weight", "α"), ("style_weight", "β"), ("gamma", "γ"), ("beta_prime", "β′")):
        assert symbol in rows[name]["source"], name
    assert "Step 1" in rows["style_weight"]["source"] and "Li et al. 2017" in rows["gamma"]["source"]
    assert "Li et al. 2017" in rows["beta_prime"]["source"]


def test_content_normalisation_divides_by_the_feature_elements(rng):
    f, p = rng.normal(size=(2, 3, 4, 5)), rng.normal(size=(2, 3, 4, 5))
    plain = losses.content_loss(tf.constant(f), tf.constant(p)).numpy()
    mean = losses.content_loss(tf.constant(f), tf.constant(p), normalise=True).numpy()
    np.testing.assert_allclose(mean, plain / 60.0, rtol=1e-12)


def _balance(normalise: bool, style_weight: float, images: np.ndarray) -> dict:
    spec = get_encoder_spec("resnet50")
    config = LossConfig(spec.content_layers, spec.style_layers, (1.0,) * len(spec.style_layers),
                        content_weight=1.0, style_weight=style_weight, normalise_content=normalise)
    engine = NSTEngine("resnet50", resolve_encoder_weights("random", "resnet50", seed=0), "max",
                       losses.CombinedStyle(0.0), config, Schedule(iterations=(1,), batch_size=2, init="noise"),
                       (SIZE, SIZE))
    jobs = [Job(0, (1, 2, 3), seed=0), Job(4, (3, 5, 1), seed=1)]
    return engine.gradient_balance(jobs, images)


@pytest.mark.slow
def test_terms_are_balanced_at_the_papers_weights(images):
    """At α = 1, β = γ·β′ (defaults) and the first iteration from noise, the weighted content and style
    gradients are within two orders of magnitude; unnormalised Eq. 2 with β = 1 is not balanced the same
    way (its content gradient grows with the layer size)."""
    p = ProposedParams()
    grads = _balance(True, ProposedNST(p).style_weight(), images)
    ratio = grads["content"] / grads["style"]
    assert np.all(grads["content"] > 0) and np.all(grads["style"] > 0)
    assert np.all((ratio > 1e-2) & (ratio < 1e2)), ratio
    old = _balance(False, 1.0, images)
    assert np.all(old["content"] > 100 * grads["content"])  # the unnormalised content term dominated


def test_gradient_balance_is_zero_for_content_at_content_init(images):
    spec = get_encoder_spec("vgg19")
    config = LossConfig(spec.content_layers, spec.style_layers[:2], (0.5, 0.5), 1.0, 1.0, normalise_content=True)
    engine = NSTEngine("vgg19", resolve_encoder_weights("random", "vgg19", seed=0), "avg", losses.GramStyle(),
                       config, Schedule(iterations=(1,), batch_size=1), (SIZE, SIZE))
    grads = engine.gradient_balance([Job(0, (1,), seed=0)], images)
    assert grads["content"][0] == 0.0 and grads["style"][0] > 0


# --------------------------------------------------------------------------- loss names


def test_every_nst_plugin_names_its_loss():
    names = {cls.name: cls(cls.Params()).loss_name() for cls in (GatysNST, DNST, MR2NST, ProposedNST, ProposedLRPNST)}
    assert names["nst-gatys"].startswith("α·½Σ(F−P)² + β·Σ_l w_l·E_l^Gram  [α=1, β=1000, w_l=0.2]")
    assert "MMD²_gauss" in names["nst-dnst"] and "β=1e+06" in names["nst-dnst"]
    assert "vs max over 3 refs" in names["nst-mr2"]
    assert "½·mean(F−P)²" in names["nst-proposed"] and "β=γ·β′=5·0.001=0.005" in names["nst-proposed"]
    assert "MMD²_poly(c=0)" in names["nst-proposed"]
    assert "LRP relevance" in names["nst-proposed-lrp"] and "LRP" not in names["nst-proposed"]


# --------------------------------------------------------------------------- equal losses


def test_dnst_poly_c0_is_flagged_as_gatys_gram_loss():
    gatys = GatysNST(GatysNST.Params()).loss_config()
    poly = DNST(DNST.Params(kernel="poly", poly_c=0.0, style_weight=1e3)).loss_config()
    assert identity.relation(gatys, poly) == identity.IDENTICAL
    scaled = DNST(DNST.Params(kernel="poly", poly_c=0.0, style_weight=2e3, content_weight=2.0)).loss_config()
    assert identity.relation(gatys, scaled) == identity.PROPORTIONAL
    assert identity.relation(gatys, DNST(DNST.Params(kernel="poly", poly_c=1.0, style_weight=1e3)).loss_config()) == ""
    assert identity.relation(gatys, DNST(DNST.Params(kernel="gaussian")).loss_config()) == ""


def test_proposed_at_c0_has_mr2s_style_term():
    mr2 = MR2NST(MR2NST.Params(encoder="resnet50", weights="domain", pooling="max")).loss_config()
    proposed = ProposedNST(ProposedParams()).loss_config()
    assert identity.relation(mr2, proposed) == identity.SAME_STYLE_TERM
    pairs = identity.equal_losses({"a": mr2, "b": proposed, "c": dict(proposed)})
    assert {"a": "b", "b": "c", "relation": identity.IDENTICAL} in [
        {"a": p["a"], "b": p["b"], "relation": p["relation"]} for p in pairs if p["a"] == "b"]


# --------------------------------------------------------------------------- profiles


@pytest.mark.parametrize("profile", ["quick", "paper"])
def test_dnst_uses_one_kernel_in_every_profile(profile):
    assert load_params(PARAMS, profile).method_params("nst-dnst").kernel == "gaussian"


def test_ablation_rows_share_encoder_learning_rate_and_iterations():
    params = load_params(PARAMS, "paper")
    assert set(ABLATION) <= set(params.matrix.methods)
    assert not set(ABLATION) & set(load_params(PARAMS, "quick").matrix.methods)
    shared = ("encoder", "weights", "pooling", "learning_rate", "iterations", "scales", "batch_size",
              "n_references", "histogram", "optimizer", "init", "factor")
    rows = {m: params.method_params(m) for m in ABLATION}
    for key in shared:
        values = {m: getattr(p, key) for m, p in rows.items()}
        assert len({repr(v) for v in values.values()}) == 1, (key, values)
    assert rows["nst-mr2-resnet50"].encoder == "resnet50" and rows["nst-combined"].iterations == [1000]
    plugins = {m: _plugin(params, m) for m in ABLATION}
    configs = {m: p.loss_config() for m, p in plugins.items()}
    # one change per step: the weights/normalisation (same style term), then the LRP content weighting
    assert identity.relation(configs["nst-mr2-resnet50"], configs["nst-combined"]) == identity.SAME_STYLE_TERM
    diff = {k for k in configs["nst-combined"] if configs["nst-combined"][k] != configs["nst-combined-lrp"][k]}
    assert diff == {"content_weighting"}
