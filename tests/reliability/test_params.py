"""Bad parameters (issue 10): unknown keys and names, wrong types, out-of-range values and
unknown profiles are rejected when params.yaml is loaded, with the key path in the message
(and a "did you mean" hint for a near name).

Each case edits the repository's own params.yaml (loaded with yaml, changed, written to
tmp_path), so the cases follow the real file's structure.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from bench.config import load_params
from bench.errors import ConfigError, RegistryError

PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(PARAMS.read_text(encoding="utf-8"))


def write_variant(tmp_path: Path, raw: dict, changes: dict) -> Path:
    """params.yaml with ``changes`` ({dotted key: value}) applied, written to tmp_path."""
    data = copy.deepcopy(raw)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


# (changes to params.yaml, profile, expected ConfigError key, text the message must contain)
CONFIG_ERRORS = {
    "unknown top-level key": (
        {"evalute": {"seed": 1}}, None, "evalute", ["unknown parameter", "did you mean 'evaluate'?"]),
    "unknown key in a section": (
        {"phantom.sizes": 64}, None, "phantom.sizes", ["unknown parameter", "did you mean 'size'?"]),
    "unknown key in a profile": (
        {"profiles.quick.preprocess.imgae_size": 32}, "quick", "preprocess.imgae_size",
        ["unknown parameter", "did you mean 'image_size'?"]),
    "unknown plugin key in a profile": (
        {"profiles.smoke.train.classifiers.resnet50.epoch": 2}, "smoke",
        "train.classifiers.resnet50.epoch", ["unknown parameter", "did you mean 'epochs'?"]),
    "unknown key of a method outside the matrix": (
        {"matrix.methods": ["none"], "augment.methods.classical.factr": 2}, None,
        "augment.methods.classical.factr", ["did you mean 'factor'?"]),
    "string for int": (
        {"phantom.n_per_class": "100"}, None, "phantom.n_per_class", ["expected int, got str '100'"]),
    "bool for int": (
        {"phantom.seed": True}, None, "phantom.seed", ["expected int, got bool True"]),
    "bool for int in a plugin": (
        {"profiles.quick.train.classifiers.resnet50.batch_size": False}, "quick",
        "train.classifiers.resnet50.batch_size", ["expected int, got bool False"]),
    "list for float": (
        {"evaluate.confidence": [0.9]}, None, "evaluate.confidence", ["expected float, got list [0.9]"]),
    "string for float in a plugin": (
        {"augment.methods.geometric-rotation.max_angle": "20"}, None,
        "augment.methods.geometric-rotation.max_angle", ["expected float, got str '20'"]),
    "string for bool": (
        {"preprocess.srad": "yes"}, None, "preprocess.srad", ["expected bool, got str 'yes'"]),
    "wrong list item": (
        {"matrix.seeds": [0, "1"]}, None, "matrix.seeds.1", ["expected int, got str '1'"]),
    "section is not a mapping": (
        {"phantom": 5}, None, "phantom", ["expected a mapping, got int 5"]),
    "negative epochs": (
        {"profiles.quick.train.classifiers.resnet50.epochs": -1}, "quick",
        "train.classifiers.resnet50.epochs", ["must be >= 1"]),
    "ratios not summing to 1": (
        {"split.ratios": [0.7, 0.2, 0.2]}, None, "split.ratios", ["must sum to 1, sum is 1.1"]),
    "ratios of the wrong length": (
        {"split.ratios": [0.8, 0.2]}, None, "split.ratios", ["expected 3 items, got 2"]),
    "negative ratio": (
        {"split.ratios": [1.2, -0.1, -0.1]}, None, "split.ratios", ["must be non-negative"]),
    "difficulty above 1": (
        {"phantom.difficulty": 1.5}, None, "phantom.difficulty", ["must lie in [0, 1]"]),
    "confidence of 1": (
        {"evaluate.confidence": 1.0}, None, "evaluate.confidence", ["must lie in (0, 1)"]),
    "duplicate methods": (
        {"matrix.methods": ["none", "classical", "none"]}, None, "matrix.methods", ["contains duplicates"]),
    "empty seeds": (
        {"matrix.seeds": []}, None, "matrix.seeds", ["must not be empty"]),
    "positive class missing": (
        {"dataset.positive": "cancer"}, None, "dataset.positive", ["'cancer' is not one of"]),
    "folder without path": (
        {"dataset.source": "folder"}, None, "dataset.path", ["source is 'folder' but no path is given"]),
    "literal typo": (
        {"dataset.source": "flder"}, None, "dataset.source",
        ["'flder' is not one of ['phantom', 'folder', 'medmnist', 'csv']", "did you mean 'folder'?"]),
    "literal in a plugin": (
        {"augment.methods.geometric-rotation.fill": "wrap"}, None,
        "augment.methods.geometric-rotation.fill", ["'wrap' is not one of ['reflect', 'nearest', 'constant']"]),
    "literal inside a list": (
        {"augment.methods.geometric-flipping.flips": ["horizontal", "diagonal"]}, None,
        "augment.methods.geometric-flipping.flips.1", ["'diagonal' is not one of"]),
    "optional given a wrong type": (
        {"dataset.path": 3}, None, "dataset.path", ["expected str, got int 3"]),
    "optional plugin field given a string": (
        {"profiles.quick.train.classifiers.resnet50.input_size": "64"}, "quick",
        "train.classifiers.resnet50.input_size", ["expected int, got str '64'"]),
    "optional plugin field out of range": (
        {"profiles.quick.train.classifiers.resnet50.input_size": 16}, "quick",
        "train.classifiers.resnet50.input_size", ["ResNet50 needs at least 32 px"]),
    "NaN for a float": (
        {"phantom.difficulty": float("nan")}, None, "phantom.difficulty",
        ["must be a finite number, got float nan"]),
    "infinity for a float in a plugin": (
        {"profiles.quick.train.classifiers.resnet50.learning_rate": float("inf")}, "quick",
        "train.classifiers.resnet50.learning_rate", ["must be a finite number, got float inf"]),
    "zero epochs": (
        {"profiles.quick.train.classifiers.resnet50.epochs": 0}, "quick",
        "train.classifiers.resnet50.epochs", ["must be >= 1"]),
    "epochs as a float": (
        {"profiles.quick.train.classifiers.resnet50.epochs": 2.5}, "quick",
        "train.classifiers.resnet50.epochs", ["expected int, got float 2.5"]),
    "profile name that is not a string": (
        {"profile": ["quick"]}, None, "profile", ["expected a profile name, got list ['quick']"]),
    "profiles that are not a mapping": (
        {"profiles": ["quick"]}, None, "profiles", ["expected a mapping of profile name to overrides"]),
    "profile section that is not a mapping": (
        {"profiles.quick": [1, 2]}, "quick", "profiles.quick", ["expected a mapping of overrides"]),
    "one class": (
        {"dataset.classes": ["benign"]}, None, "dataset.classes", ["exactly two classes"]),
    "unknown profile": (
        {"profile": "smok"}, None, "profile", ["unknown profile 'smok'", "did you mean 'smoke'?"]),
}


@pytest.mark.parametrize("changes,profile,key,texts", CONFIG_ERRORS.values(), ids=CONFIG_ERRORS.keys())
def test_invalid_params_name_the_key(tmp_path, raw, changes, profile, key, texts):
    path = write_variant(tmp_path, raw, changes)
    with pytest.raises(ConfigError) as err:
        load_params(path, profile)
    assert err.value.key == key
    msg = str(err.value)
    assert msg.startswith(f"params: {key}: ")
    for text in texts:
        assert text in msg


def test_unknown_profile_argument_lists_known(raw, tmp_path):
    with pytest.raises(ConfigError) as err:
        load_params(PARAMS, "fast")
    assert err.value.key == "profile"
    assert "unknown profile 'fast'" in str(err.value)
    assert "known: paper, quick, smoke" in str(err.value)


# (changes, text the RegistryError message must contain, in order)
REGISTRY_ERRORS = {
    "unknown method in the matrix": (
        {"matrix.methods": ["none", "geometric-rotaton"]},
        ["params: matrix.methods.1: ", "unknown augmenter 'geometric-rotaton'",
         "did you mean 'geometric-rotation'"]),
    "unknown classifier in the matrix": (
        {"matrix.classifiers": ["resnet5"]},
        ["params: matrix.classifiers.0: ", "unknown classifier 'resnet5'", "did you mean 'resnet50'"]),
    "unknown method section": (
        {"augment.methods.clasical": {"factor": 2}},
        ["params: augment.methods.clasical: ", "unknown augmenter 'clasical'", "did you mean 'classical'?"]),
    "unknown classifier section": (
        {"train.classifiers.resnet101": {"epochs": 2}},
        ["params: train.classifiers.resnet101: ", "unknown classifier 'resnet101'"]),
}


@pytest.mark.parametrize("changes,texts", REGISTRY_ERRORS.values(), ids=REGISTRY_ERRORS.keys())
def test_unknown_plugin_names_name_the_key(tmp_path, raw, changes, texts):
    path = write_variant(tmp_path, raw, changes)
    with pytest.raises(RegistryError) as err:
        load_params(path)
    msg = str(err.value)
    positions = [msg.find(text) for text in texts]
    assert -1 not in positions, msg
    assert positions == sorted(positions)



@pytest.mark.parametrize("override", ["augment.seed=-1", "split.seed=-1", "matrix.seeds=[0,-2]",
                                      "evaluate.seed=-1", "phantom.seed=-1"])
def test_negative_seeds_are_rejected(override):
    with pytest.raises(ConfigError, match="seed"):
        load_params(PARAMS, "smoke", [override])


