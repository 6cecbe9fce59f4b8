"""Panigrahi et al. 2024's proposed NST: the combined style loss (Eq. 14/17, our reading) and the
LRP-relevance-weighted content loss, checked against the losses they must reduce to."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from bench.data.phantom import generate_phantom  # noqa: E402
from bench.errors import AugbenchError  # noqa: E402
from bench.nst import losses  # noqa: E402
from bench.nst.encoders import get_encoder_spec, resolve_encoder_weights  # noqa: E402
from bench.nst.engine import Job, LossConfig, NSTEngine, Schedule  # noqa: E402
from bench.plugins import ImageSet  # noqa: E402
from bench.typed import from_dict  # noqa: E402
from methods.augment.nst import ProposedLRPNST, ProposedLRPParams, ProposedNST, ProposedParams  # noqa: E402

SIZE = 32
RNG_SEED = 7  # the seed of the rng fixture (tests/conftest.py) for this module


def _t(a):
    return tf.constant(a, tf.float64)


def _reps(loss, feats):
    return [tuple(np.asarray(r)[0] for r in loss.representation(_t(f[None]))) for f in feats]


def _compare(loss, f, target):
    return float(loss.compare(_t(f[None]), tuple(_t(t[None]) for t in target), None)[0])


# --------------------------------------------------------------------------- combined style loss


def test_combined_loss_with_one_reference_is_the_gram_loss(rng):
    """One reference, c = 0 (Panigrahi Eq. 6's kernel): exactly Eq. 4, the Gatys Gram loss."""
    f, s = rng.standard_normal((2, 9, 4))
    combined, gram = losses.CombinedStyle(c=0.0), losses.GramStyle()
    target_c = combined.combine(_reps(combined, [s]))
    target_g = gram.combine(_reps(gram, [s]))
    value = _compare(combined, f, target_c)
    assert value == pytest.approx(_compare(gram, f, target_g), rel=1e-12)
    m, n = f.shape
    assert value == pytest.approx(((f.T @ f - s.T @ s) ** 2).sum() / (4 * n**2 * m**2), rel=1e-12)  # Eq. 4


@pytest.mark.parametrize("c", [0.5, 2.0])
def test_combined_loss_with_one_reference_is_dnst_poly_mmd(rng, c):
    f, s = rng.standard_normal((2, 9, 4))
    combined, poly = losses.CombinedStyle(c=c), losses.MMDStyle("poly", c=c)
    assert _compare(combined, f, combined.combine(_reps(combined, [s]))) == pytest.approx(
        _compare(poly, f, _reps(poly, [s])[0]), rel=1e-12)


def test_combined_loss_with_several_references_is_mr2_max_gram(rng):
    """c = 0 and n references: mr²NST's loss against the element-wise max of the Grams (Eq. 7-9)."""
    f, *refs = rng.standard_normal((4, 9, 4))
    combined, gram = losses.CombinedStyle(c=0.0), losses.GramStyle()
    target = combined.combine(_reps(combined, refs))
    np.testing.assert_allclose(target[0], np.max([r.T @ r / 9 for r in refs], axis=0), rtol=1e-12)
    assert _compare(combined, f, target) == pytest.approx(_compare(gram, f, gram.combine(_reps(gram, refs))),
                                                          rel=1e-12)
    assert combined.describe() == {"style_loss": "combined-mmd-poly", "poly_c": 0.0}


# --------------------------------------------------------------------------- relevance-weighted content loss


def test_relevance_weights_have_mean_one_and_keep_only_positive_relevance(rng):
    r = rng.standard_normal((4, 4, 3))
    w = losses.relevance_weights(r)
    assert w.mean() == pytest.approx(1.0, rel=1e-6)
    assert (w[r <= 0] == 0).all() and (w[r > 0] > 0).all()
    np.testing.assert_allclose(w[r > 0] / r[r > 0], w[r > 0][0] / r[r > 0][0], rtol=1e-5)  # proportional
    np.testing.assert_array_equal(losses.relevance_weights(np.full((2, 2), 3.0)), np.ones((2, 2)))
    np.testing.assert_array_equal(losses.relevance_weights(-np.abs(r)), np.ones(r.shape))  # no evidence: Eq. 2


def test_weighted_content_loss_reduces_to_eq2_and_ignores_zero_weights(rng):
    f, p = rng.standard_normal((2, 1, 3, 3, 2))
    plain = float(losses.content_loss(_t(f), _t(p))[0])
    assert plain == pytest.approx(0.5 * ((f - p) ** 2).sum(), rel=1e-12)  # Panigrahi Eq. 2
    assert float(losses.content_loss(_t(f), _t(p), _t(np.ones_like(f)))[0]) == pytest.approx(plain, rel=1e-12)
    w = np.ones_like(f)
    w[0, 0] = 0.0
    g = f.copy()
    g[0, 0] += 10.0  # a change where the weight is zero costs nothing
    assert float(losses.content_loss(_t(g), _t(p), _t(w))[0]) == pytest.approx(
        float(losses.content_loss(_t(f), _t(p), _t(w))[0]), rel=1e-12)


@pytest.fixture(scope="module")
def phantom() -> ImageSet:
    samples = generate_phantom(4, size=SIZE, seed=5)
    return ImageSet(np.stack([s.image for s in samples]).astype(np.float32),
                    np.array([int(s.label == "malignant") for s in samples]), [s.id for s in samples])


def _engine(weighted: bool):
    spec = get_encoder_spec("vgg19")
    losses_ = LossConfig(spec.content_layers, spec.style_layers, (0.2,) * 5, content_weight=1.0, style_weight=1e3,
                         weighted_content=weighted)
    return NSTEngine("vgg19", resolve_encoder_weights("random", "vgg19", seed=0), "avg", losses.GramStyle(),
                     losses_, Schedule(iterations=(4,), batch_size=2), (SIZE, SIZE))


def test_engine_with_unit_content_weights_equals_the_unweighted_engine(phantom):
    jobs = [Job(0, (1,), 0), Job(5, (6,), 1)]

    def ones(indices, images):
        return [np.ones((len(indices), 4, 4, 512), np.float32)]  # block4_conv2 at 32 px

    plain = list(_engine(False).run(jobs, phantom.images, progress=False))
    weighted_engine = _engine(True)
    with pytest.raises(AugbenchError, match="content_weights"):
        list(weighted_engine.run(jobs, phantom.images, progress=False))
    weighted = list(weighted_engine.run(jobs, phantom.images, progress=False, content_weights=ones))
    np.testing.assert_allclose(weighted[0].images, plain[0].images, atol=1e-6)

    def half(indices, images):  # content counts less: the result moves further from the content image
        return [np.full((len(indices), 4, 4, 512), 0.01, np.float32)]

    weak = list(_engine(True).run(jobs, phantom.images, progress=False, content_weights=half))
    moved = [np.abs(r[0].images - phantom.images[[0, 5]]).mean() for r in (plain, weak)]
    assert moved[1] > moved[0]


# --------------------------------------------------------------------------- the augmenters


def test_proposed_defaults_reach_the_engine():
    """Panigrahi Step 1 and Eq. 6 where the paper gives values (ResNet50, α = 1, w_l = 1, c = 0), and our
    β = γ·β′ = 5·1e-3 with the per-element content term, as the engine receives them."""
    p = ProposedParams()
    assert (p.encoder, p.content_weight, p.style_weight, p.poly_c) == ("resnet50", 1.0, None, 0.0)  # Step 1, Eq. 6
    aug = ProposedNST(p)
    aug._weights = resolve_encoder_weights("random", "resnet50")
    config = aug.transfer_config(8, 8)
    assert config.losses.style_weight == pytest.approx(5e-3) and config.losses.content_weight == 1.0
    assert config.losses.normalise_content and config.record["style_weight"] == pytest.approx(5e-3)
    assert set(config.losses.style_layer_weights) == {1.0}  # w_l = 1.0 (Step 1)
    assert isinstance(config.style_loss, losses.CombinedStyle) and config.n_references == 3
    assert not config.losses.weighted_content and config.content_weights is None


def test_lrp_params_are_checked():
    with pytest.raises(AugbenchError, match="relevance_alpha"):
        from_dict(ProposedLRPParams, {"relevance_alpha": 3.0, "relevance_beta": 1.0}, "m")
    with pytest.raises(AugbenchError, match="weights"):
        from_dict(ProposedLRPParams, {"weights": "random"}, "m")


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory, phantom) -> Path:
    """A real domain ResNet50 (1 epoch on the 8 phantom images) written by the encoder stage code."""
    from bench.nst.domain import EncoderParams
    from bench.stages.encoder import write_encoders

    out = tmp_path_factory.mktemp("enc")
    write_encoders(phantom, out, EncoderParams(archs=["resnet50"], init="random", epochs=1, batch_size=8,
                                               bn_recalibration_images=8))
    return out


@pytest.mark.slow
def test_relevance_weights_come_from_lrp_of_the_domain_classifier(phantom, encoder_dir):
    from bench.nst.encoders import to_encoder_input
    from bench.nst.relevance import ContentRelevance, domain_classifier
    from bench.xai.lrp import explain

    weights = resolve_encoder_weights("domain", "resnet50", encoder_dir)
    model = domain_classifier("resnet50", weights, encoder_dir)
    rel = ContentRelevance(model, phantom.labels, ["conv3_block4_out"])
    idx = np.array([0, 5])
    w = rel(idx, phantom.images[idx])[0]
    assert w.shape == (2, 4, 4, 512)
    x = to_encoder_input(tf.constant(phantom.images[idx][..., None])).numpy()
    _, layers = explain(model, x, "alpha-beta", target=phantom.labels[idx], return_layers=True)
    for k in range(2):  # ω = R⁺ rescaled to mean 1, R of the image's own class at the content layer
        np.testing.assert_allclose(w[k], losses.relevance_weights(layers["conv3_block4_out"][k]), rtol=1e-5)
    assert rel.summary()["relevance_images"] == 2
    with pytest.raises(AugbenchError, match="weights: domain"):
        domain_classifier("resnet50", resolve_encoder_weights("random", "resnet50"), encoder_dir)


@pytest.mark.slow
def test_proposed_lrp_generates_from_training_images_with_relevance(phantom, encoder_dir):
    aug = ProposedLRPNST(ProposedLRPParams(iterations=[2], batch_size=4, n_references=2))
    aug.resources = {"encoder_dir": encoder_dir}
    rng = np.random.default_rng(0)
    aug.fit(phantom, rng)
    gen = aug.generate(phantom, 4, rng)
    assert gen.images.shape == (4, SIZE, SIZE) and np.isfinite(gen.images).all()
    assert {r["content_id"] for r in gen.provenance} <= set(phantom.ids)
    assert gen.provenance[0]["params"]["content_loss"] == "relevance-weighted (LRP)"
    assert gen.provenance[0]["params"]["style_loss"] == "combined-mmd-poly"
    assert aug.run_info["relevance_images"] >= 4 and "domain" in aug.run_info["weights"]
    assert 0 < aug.run_info["relevance_positive_share"] < 1


def test_missing_domain_head_is_a_clear_error(tmp_path):
    from bench.nst.encoders import domain_head

    with pytest.raises(AugbenchError, match="classification head is missing"):
        domain_head("resnet50", tmp_path)
