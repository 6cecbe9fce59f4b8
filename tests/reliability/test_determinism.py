"""Another augment seed gives other images. That the same seed gives byte-identical arrays,
predictions and metrics across two process layouts is tested on the one smoke pipeline of
tests/test_pipeline.py (`test_two_process_layouts_are_byte_identical`)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.config import load_params
from bench.io import load_npz
from bench.stages import augment, prepare
from bench.stages.common import load_prepared
from tests.reliability.process import PARAMS

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings(
    "ignore:non-integer arguments to randrange:DeprecationWarning")]

# Random VGG19 weights for NST: no encoder stage needed.
SETS = ("--set", "augment.methods.nst-gatys.weights=random")


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
