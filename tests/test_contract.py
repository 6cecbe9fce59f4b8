"""The plugin contract, generated from the registry.

Every installed augmenter and classifier (built-in or third-party, found through
the ``augbench.augmenters`` / ``augbench.classifiers`` entry points) is run
through the same checks, with its default parameters, on a small phantom set.
The checks live in ``bench.contract`` so that plugin packages run them too
(``augbench new-plugin`` writes such a test); the tests at the end make sure
they catch what they should.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest

from bench import contract, registry
from bench.plugins import Augmenter, Generated, ImageSet

pytestmark = pytest.mark.filterwarnings(
    # Keras 2.15 initialisers call random.randint(1, 1e9); not ours to fix.
    "ignore:non-integer arguments to randrange:DeprecationWarning")

AUGMENTERS = registry.list_plugins("augmenter")
CLASSIFIERS = registry.list_plugins("classifier")
PLUGINS = [("augmenter", n) for n in AUGMENTERS] + [("classifier", n) for n in CLASSIFIERS]


def test_registry_finds_the_built_ins():
    assert {"none", "geometric-rotation", "geometric-scaling", "geometric-flipping",
            "classical"} <= set(AUGMENTERS)
    assert "resnet50" in CLASSIFIERS
    assert [str(f) for f in registry.failures() if f.package == "augbench"] == []


@pytest.fixture
def train() -> ImageSet:
    """A fresh copy per test, so a mutating plugin cannot hide behind another test."""
    return contract.phantom()


# --------------------------------------------------------------------------- both kinds


@pytest.mark.parametrize(("kind", "name"), PLUGINS)
def test_params_build_with_defaults(kind, name):
    contract.check_params(kind, name)


@pytest.mark.parametrize(("kind", "name"), PLUGINS)
def test_descriptions(kind, name):
    contract.check_descriptions(kind, name)


# --------------------------------------------------------------------------- augmenters


@pytest.mark.parametrize("name", AUGMENTERS)
class TestAugmenterContract:
    def test_mode(self, name):
        contract.check_mode(name)

    def test_online_transform(self, name):
        try:
            contract.check_online_transform(name)
        except contract.NotApplicable as why:
            pytest.skip(str(why))

    @pytest.mark.parametrize("n_train", contract.N_TRAIN_SIZES)
    def test_n_synthetic_is_a_non_negative_int(self, name, n_train):
        contract.check_n_synthetic(name, n_train)

    # One seeded fit + generate per plugin (contract.shared_run, on a fresh check set) serves
    # these checks; the determinism and seed checks make their own second run.

    def test_generate_output(self, name):
        contract.check_generate_output(name, run=contract.shared_run(name))

    def test_provenance_names_training_sources_and_is_json(self, name):
        contract.check_provenance(name, run=contract.shared_run(name))

    def test_deterministic_for_a_seed(self, name):
        contract.check_deterministic(name, run=contract.shared_run(name))

    def test_seed_matters_when_randomness_is_used(self, name):
        try:
            contract.check_seed_matters(name, run=contract.shared_run(name))
        except contract.NotApplicable as why:
            pytest.skip(str(why))

    def test_does_not_mutate_or_alias_the_training_set(self, name):
        contract.check_no_mutation(name, run=contract.shared_run(name))


# --------------------------------------------------------------------------- classifiers


@pytest.mark.parametrize("name", CLASSIFIERS)
class TestClassifierParams:
    def test_preprocess_grey_to_channels(self, name, train):
        contract.check_preprocess(name, train)

    def test_input_size_defaults_to_image_size(self, name):
        contract.check_input_size(name)


@pytest.fixture(scope="module",
                params=[pytest.param(n, marks=pytest.mark.slow) for n in CLASSIFIERS])
def built(request, classifier_model) -> tuple[str, contract.Built]:
    """(name, built classifier) for each classifier: its default model from the session's cache
    (as ``contract.build`` makes it, seed 0), which these checks only read."""
    name = request.param
    x = np.asarray(registry.create("classifier", name).preprocess(contract.phantom().images[:4]))
    clf, model = classifier_model(name, x.shape[1:])
    return name, contract.Built(clf, model, x)


class TestClassifierBuild:
    def test_builds_a_compiled_two_class_model(self, built):
        contract.check_compiled_model(*built)

    def test_outputs_are_probabilities(self, built):
        contract.check_probabilities(*built)

    def test_has_trainable_weights(self, built):
        contract.check_trainable_weights(*built)

    def test_weights_source_is_described(self, built):
        contract.check_weights_source(*built)


# --------------------------------------------------------------------------- the checks themselves


@dataclass(frozen=True)
class CopyParams:
    factor: int = 2


class CopyAugmenter(Augmenter):
    """A correct augmenter (copies with a random gain); the subclasses below each break one rule."""

    Params = CopyParams
    summary = "copies"
    paper = "none"

    def generate(self, train: ImageSet, n: int, rng: np.random.Generator) -> Generated:
        src = np.arange(n) % len(train)
        gain = rng.uniform(0.5, 1.0, size=n).astype(np.float32)
        return Generated(train.images[src] * gain[:, None, None], train.labels[src],
                         [{"source_id": train.ids[s], "gain": float(g)} for s, g in zip(src, gain, strict=True)])

    def transform(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:  # online mode
        return images * rng.uniform(0.5, 1.0, size=len(images)).astype(np.float32)[:, None, None]


class OutOfRange(CopyAugmenter):
    def generate(self, train, n, rng):
        gen = super().generate(train, n, rng)
        return Generated(gen.images * 3, gen.labels, gen.provenance)


class LeaksTestImages(CopyAugmenter):
    def generate(self, train, n, rng):
        gen = super().generate(train, n, rng)
        return Generated(gen.images, gen.labels, [{**r, "source_id": "test-0"} for r in gen.provenance])


class NumpyInProvenance(CopyAugmenter):
    def generate(self, train, n, rng):
        gen = super().generate(train, n, rng)
        return Generated(gen.images, gen.labels, [{**r, "gain": np.float32(r["gain"])} for r in gen.provenance])


class UnseededRandomness(CopyAugmenter):
    def generate(self, train, n, rng):
        return super().generate(train, n, np.random.default_rng())


class DrawsButIgnoresTheSeed(CopyAugmenter):
    def generate(self, train, n, rng):
        rng.random()
        return super().generate(train, n, np.random.default_rng(0))


class Mutates(CopyAugmenter):
    def generate(self, train, n, rng):
        train.images *= 0.5
        return super().generate(train, n, rng)


class FloatCount(CopyAugmenter):
    def n_synthetic(self, n_train):
        return float(n_train)


class NoSummary(CopyAugmenter):
    summary = " "


class IdentityTransform(CopyAugmenter):
    def transform(self, images, rng):
        return images.copy()


class TransformIgnoresTheSeed(CopyAugmenter):
    def transform(self, images, rng):
        return super().transform(images, np.random.default_rng())


BROKEN = {OutOfRange: ("generate_output", r"pixels span"),
          LeaksTestImages: ("provenance", r"'test-0', not a training image id"),
          NumpyInProvenance: ("provenance", r"not plain JSON"),
          UnseededRandomness: ("deterministic", r"images differ for the same seed"),
          DrawsButIgnoresTheSeed: ("seed_matters", r"draws from rng but seeds 7 and 8 give the same output"),
          Mutates: ("no_mutation", r"changed the training images"),
          FloatCount: ("n_synthetic[12]", r"returned 12\.0 \(float\), expected an int"),
          NoSummary: ("descriptions", r"summary is empty"),
          IdentityTransform: ("online_transform", r"left every check image as it was"),
          TransformIgnoresTheSeed: ("online_transform", r"different images for the same rng seed")}


@pytest.fixture
def register_as():
    """Register plugin classes under temporary names; unregister them afterwards."""
    names = []

    def _register(cls: type) -> str:
        name = f"contract-test-{cls.__name__.lower()}"
        registry.register("augmenter", name, cls)
        names.append(name)
        return name

    yield _register
    for name in names:
        registry.unregister("augmenter", name)


def test_a_correct_augmenter_passes_every_check(register_as):
    name = register_as(CopyAugmenter)
    assert [c.id for c in contract.checks("augmenter", name)][:3] == ["params", "descriptions", "mode"]
    assert contract.check_plugin("augmenter", name) == []


@pytest.mark.parametrize("cls", list(BROKEN), ids=lambda cls: cls.__name__)
def test_each_broken_rule_fails_its_check_by_name(register_as, cls):
    name = register_as(cls)
    failing, message = BROKEN[cls]
    outcomes = {}
    for check in contract.checks("augmenter", name):
        try:
            check.run()
            outcomes[check.id] = "ok"
        except AssertionError as exc:
            outcomes[check.id] = str(exc)
        except Exception as exc:  # a later check may crash on what an earlier one refused
            outcomes[check.id] = f"crashed: {exc!r}"
    assert outcomes[failing].startswith(f"{name}: ")
    assert re.search(message, outcomes[failing]), outcomes[failing]
    with pytest.raises(AssertionError, match=f"^{name}: "):  # stops at the first failing check
        contract.check_plugin("augmenter", name)


def test_generating_nothing_is_not_applicable_for_the_seed_check():
    with pytest.raises(contract.NotApplicable, match="generates nothing"):
        contract.check_seed_matters("none", contract.phantom())


def test_pipeline_stages_do_not_import_the_contract():
    code = ("import sys, bench.cli, bench.project, bench.stages.train, bench.stages.augment; "
            "sys.exit('bench.contract' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=300).returncode == 0
