"""Explicit finiteness checks of images that augmentation takes from outside (bench.finite):
the augment stage and StyleGAN2-ADA refuse a NaN/inf training image, naming it, before any
plugin or TensorFlow op sees it — whatever the CPU's kernels do with a NaN."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.errors import NumericalError
from bench.finite import nonfinite_rows, require_finite
from bench.plugins import ImageSet

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def _images(n=6, size=8):
    return np.random.default_rng(0).random((n, size, size), dtype=np.float32)


def test_nonfinite_rows_and_require_finite_name_the_image():
    images = _images()
    assert nonfinite_rows(images).tolist() == []
    require_finite(images, [f"img{i}" for i in range(6)], "here")
    images[4, 1, 2], images[1, 0, 0], images[1, 3, 3] = np.inf, np.nan, -np.inf
    assert nonfinite_rows(images).tolist() == [1, 4]
    with pytest.raises(NumericalError, match=r"^here: image 'img1' \(index 1\) has 2 NaN/inf pixel\(s\) "
                                             r"\(2 of 6 images are\); refused before any computation"):
        require_finite(images, [f"img{i}" for i in range(6)], "here")
    assert nonfinite_rows(np.zeros((3, 2, 2), np.uint8)).tolist() == []  # integers are always finite


def test_augment_stage_refuses_a_non_finite_training_image_before_building_the_plugin(tmp_path, monkeypatch):
    from bench import registry
    from bench.config import load_params
    from bench.stages import augment
    from bench.stages.common import Prepared

    images = _images(8)
    images[5, 2, 2] = np.nan  # a training image
    images[7, 0, 0] = np.nan  # a test image: not the augmenter's business, not named
    prepared = Prepared(images=images, labels=np.array([0, 1] * 4, np.int64), ids=[f"id{i}" for i in range(8)],
                        splits=np.array(["train"] * 6 + ["val", "test"]), masks=None, meta={})

    def no_plugin(*args, **kwargs):
        raise AssertionError("a plugin was built for a training split with a non-finite image")

    params = load_params(PARAMS, "smoke", [f"matrix.zoo={json.dumps([])}"])
    monkeypatch.setattr(registry, "get", no_plugin)
    with pytest.raises(NumericalError, match=r"^classical: training split: image 'id5' \(index 5\) has 1 NaN/inf"):
        augment.augment(params, prepared, "classical", tmp_path)
    assert not (tmp_path / "synthetic.npz").exists()


def test_stylegan2_refuses_non_finite_training_data_before_training():
    pytest.importorskip("tensorflow")
    from methods.augment.stylegan2 import StyleGAN2ADA, StyleGAN2Params

    images = _images(4, 16)
    images[2, 3, 3] = np.inf
    plugin = StyleGAN2ADA(StyleGAN2Params(steps=1))
    with pytest.raises(NumericalError, match=r"^stylegan2-ada: training data: image 'g2' \(index 2\)"):
        plugin.fit(ImageSet(images, np.array([0, 1, 0, 1]), ["g0", "g1", "g2", "g3"]), np.random.default_rng(0))
