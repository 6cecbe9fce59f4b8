"""Same seed, same machine, two processes: the whole pipeline (prepare → encoder → augment →
train → evaluate → report) gives byte-identical arrays, predictions and metrics; another
augment seed gives other images. About 2 minutes of CPU per pipeline run on the smoke profile."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from bench.config import load_params
from bench.io import load_npz
from bench.stages import augment
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


@pytest.mark.parametrize("method", ["geometric-flipping", "nst-gatys"])
def test_another_augment_seed_gives_other_images(two_runs, tmp_path, method):
    a, _ = two_runs
    params = load_params(PARAMS, "smoke", [SETS[1], "augment.seed=1"])
    augment.augment(params, load_prepared(a / "prepared"), method, tmp_path / method)
    seed0, seed1 = (load_npz(d / "synthetic.npz")["images"] for d in (a / "augmented" / method, tmp_path / method))
    assert seed0.shape == seed1.shape and not np.array_equal(seed0, seed1)
