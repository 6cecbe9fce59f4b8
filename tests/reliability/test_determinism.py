"""Same seed, same machine, two processes: the whole pipeline (prepare → encoder → augment →
train → evaluate → report) gives byte-identical arrays, predictions and metrics; another
augment seed gives other images. About 2 minutes of CPU per pipeline run on the smoke profile."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from bench.config import load_params
from bench.io import load_npz
from bench.stages import augment, prepare
from bench.stages.common import load_prepared
from tests.reliability.process import PARAMS, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings(
    "ignore:non-integer arguments to randrange:DeprecationWarning")]

METHODS = ("none", "geometric-flipping", "nst-gatys")
# Random VGG19 weights for NST; the encoder stage still trains the smoke profile's domain encoders.
SETS = ("--set", "augment.methods.nst-gatys.weights=random")
COMPARED = ("prepared/dataset.npz", "prepared/manifest.csv", "encoder/vgg19_domain_head.npz",
            "encoder/resnet50_domain_head.npz",
            *(f"augmented/{m}/{f}" for m in METHODS for f in ("synthetic.npz", "provenance.jsonl")),
            *(f"runs/{m}/resnet50/seed0/{f}" for m in METHODS
              for f in ("predictions.csv", "history.csv", "grid.csv", "relevance.npz")),
            "reports/metrics.json", "reports/results.csv", "reports/runs.csv", "reports/comparisons.csv")


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("determinism")
    for name in ("a", "b"):
        done = run_cli("-q", "run", "--params", str(PARAMS), "--profile", "smoke", "--workdir", name,
                       "--methods", ",".join(METHODS), "--classifiers", "resnet50", "--zoo", "", *SETS,
                       cwd=root, timeout=1200)
        assert done.returncode == 0, done.stderr[-3000:]
    return root / "a", root / "b"


def test_two_runs_are_byte_identical(two_runs):
    a, b = two_runs
    differ = [name for name in COMPARED if _sha256(a / name) != _sha256(b / name)]
    assert not differ


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    prepare.prepare(load_params(PARAMS, "smoke"), out)
    return load_prepared(out)


# geometric-flipping is left out: it draws nothing (copy k of an image gets the k-th flip).
@pytest.mark.parametrize("method", ["geometric-rotation", "classical", "nst-gatys"])
def test_another_augment_seed_gives_other_images(prepared, tmp_path, method):
    images = []
    for seed in (0, 1):
        params = load_params(PARAMS, "smoke", [SETS[1], f"augment.seed={seed}"])
        augment.augment(params, prepared, method, tmp_path / str(seed))
        images.append(load_npz(tmp_path / str(seed) / "synthetic.npz")["images"])
    assert images[0].shape == images[1].shape and not np.array_equal(*images)
