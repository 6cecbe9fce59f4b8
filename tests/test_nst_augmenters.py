"""The three NST augmenters beyond the generic contract: parameters, pair counts, labels,
multi-reference provenance and histogram specification."""

from __future__ import annotations

import numpy as np
import pytest

from bench import registry
from bench.data.phantom import generate_phantom
from bench.errors import AugbenchError, ConfigError
from bench.plugins import ImageSet

pytestmark = pytest.mark.filterwarnings("ignore:non-integer arguments to randrange:DeprecationWarning")

FAST = {"iterations": [1], "batch_size": 8}


@pytest.fixture(scope="module")
def train() -> ImageSet:
    samples = generate_phantom(4, size=32, seed=5)
    return ImageSet(np.stack([s.image for s in samples]).astype(np.float32),
                    np.array([int(s.label == "malignant") for s in samples]), [s.id for s in samples])


def _make(name: str, **params):
    return registry.create("augmenter", name, **params)


def test_registered_with_their_papers():
    for name in ("nst-gatys", "nst-dnst", "nst-mr2"):
        cls = registry.get("augmenter", name)
        assert "Panigrahi" in cls.paper and cls.mode == "append"


def test_parameters_are_checked():
    with pytest.raises(ConfigError, match="iterations.*one entry per resolution level"):
        _make("nst-gatys", scales=[0.5, 1.0], iterations=[3])
    with pytest.raises(ConfigError, match="scales"):
        _make("nst-mr2", scales=[1.0, 0.5], iterations=[3, 3])
    with pytest.raises(ConfigError, match="weights"):
        _make("nst-gatys", weights="imagenett")
    with pytest.raises(ConfigError, match="kernel"):
        _make("nst-dnst", kernel="cubic")
    with pytest.raises(ConfigError, match="pairs_per_content"):
        _make("nst-gatys", factor=None, sampling="k-per-content")


def test_dnst_style_weight_defaults_per_kernel():
    from methods.augment.nst import DNST_STYLE_WEIGHTS

    for kernel, beta in DNST_STYLE_WEIGHTS.items():
        assert _make("nst-dnst", kernel=kernel).style_weight() == beta
    assert _make("nst-dnst", kernel="bn", style_weight=7.0).style_weight() == 7.0
    assert _make("nst-gatys").style_weight() == 1e3  # Gatys et al. 2016: α/β = 1e-3


def test_every_pair_mode_counts_the_plan_after_fit(train):
    plugin = _make("nst-gatys", factor=None)
    with pytest.raises(AugbenchError, match="needs fit"):
        plugin.n_synthetic(len(train))
    plugin.fit(train, np.random.default_rng(0))
    assert plugin.n_synthetic(len(train)) == 4**2 + 4**2
    cross = _make("nst-gatys", factor=None, sampling="cross-class", pairs_per_content=3)
    cross.fit(train, np.random.default_rng(0))
    assert cross.n_synthetic(len(train)) == 3 * len(train)


@pytest.mark.slow
def test_cross_class_keeps_the_content_label(train):
    plugin = _make("nst-gatys", sampling="cross-class", factor=2, **FAST)
    gen = plugin.generate(train, plugin.n_synthetic(len(train)), np.random.default_rng(1))
    assert len(gen) == plugin.n_synthetic(len(train)) > 0  # the loop below must see images
    index = {i: k for k, i in enumerate(train.ids)}
    for label, rec in zip(gen.labels, gen.provenance, strict=True):
        assert label == train.labels[index[rec["content_id"]]]
        assert train.labels[index[rec["style_ids"][0]]] != label


@pytest.mark.slow
def test_mr2_uses_several_references_and_specifies_histograms(train):
    from bench.nst.histogram import match_to_references

    plugin = _make("nst-mr2", n_references=3, factor=2, iterations=[1, 1])
    gen = plugin.generate(train, plugin.n_synthetic(len(train)), np.random.default_rng(2))
    assert len(gen) == plugin.n_synthetic(len(train)) > 0  # the loop below must see images
    index = {i: k for k, i in enumerate(train.ids)}
    for image, rec in zip(gen.images, gen.provenance, strict=True):
        styles = [index[s] for s in rec["style_ids"]]
        assert len(set(styles)) == 3 and len({train.labels[s] for s in styles}) == 1
        pooled = np.concatenate([train.images[s].ravel() for s in styles])
        q = np.linspace(0.05, 0.95, 7)
        np.testing.assert_allclose(np.quantile(image, q), np.quantile(pooled, q), atol=0.03)
        np.testing.assert_allclose(match_to_references(image, [train.images[s] for s in styles]), image,
                                   atol=1e-6)  # already specified: a second pass changes nothing
    assert gen.provenance[0]["params"]["histogram"] == "output"

    plain = _make("nst-mr2", n_references=3, factor=2, iterations=[1, 1], histogram="none")
    other = plain.generate(train, plain.n_synthetic(len(train)), np.random.default_rng(2))
    assert not np.allclose(other.images, gen.images)


@pytest.mark.slow
def test_provenance_records_loss_seed_and_parameters(train):
    plugin = _make("nst-dnst", kernel="bn", factor=2, **FAST)
    gen = plugin.generate(train, plugin.n_synthetic(len(train)), np.random.default_rng(3))
    rec = gen.provenance[0]
    assert rec["method"] == "nst-dnst" and rec["source_id"] == rec["content_id"]
    assert isinstance(rec["seed"], int) and rec["attempt"] == 0
    assert np.isfinite(rec["loss"]) and rec["loss"] <= rec["loss_grey"]
    assert rec["params"]["style_loss"] == "bn" and rec["params"]["weights"].startswith("random")
    assert plugin.run_info["weights_kind"] == "random" and plugin.run_info["failures"] == []
