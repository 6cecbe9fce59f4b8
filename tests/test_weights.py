"""bench.weights: one table of Keras ImageNet files and one Keras cache folder for every user
(classifiers, NST encoders, the quality stage's feature network), looked up when they run."""

from __future__ import annotations

import hashlib
import re

import pytest

from bench import quality, weights
from bench.errors import AugbenchError
from bench.io import file_digest
from bench.nst import encoders


def test_md5_and_sha256_are_the_file_digests(tmp_path):
    path = tmp_path / "w.h5"
    path.write_bytes(b"not really weights" * 100_000)  # more than one 1 MiB chunk
    assert weights.md5(path) == hashlib.md5(path.read_bytes()).hexdigest()
    assert file_digest(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_patched_cache_folder_reaches_every_user(tmp_path, monkeypatch):
    cache = tmp_path / "elsewhere"
    cache.mkdir()
    monkeypatch.setattr(weights, "keras_cache_dir", lambda: cache)
    with pytest.raises(AugbenchError, match=re.escape(f"not at {cache / weights.IMAGENET_FILES['vgg19'][0]}")):
        encoders.imagenet_file("vgg19", download=False)  # the NST encoders
    with pytest.raises(ValueError, match=re.escape(str(cache / weights.IMAGENET_FILES["inception_v3"][0]))):
        quality.feature_network(None, choice="inceptionv3")  # the quality stage
    name = weights.IMAGENET_FILES["resnet50"][0]
    (cache / name).write_bytes(b"resnet50 stand-in")
    monkeypatch.setitem(weights.IMAGENET_FILES, "resnet50", (name, weights.md5(cache / name)))
    path, source = weights.resolve_weights("imagenet", "resnet50")  # the classifiers
    assert path == str(cache / name) and source == f"imagenet ({name}, md5 verified)"


def test_a_missing_file_is_not_downloaded_when_asked_not_to(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(AugbenchError, match="not at .*resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5$"):
        weights.imagenet_weights_file("resnet50", download=False)
    with pytest.raises(AugbenchError, match="no ImageNet weights known for 'vgg16'; known: .*vgg19"):
        weights.imagenet_weights_file("vgg16")


def test_a_wrong_md5_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    name = weights.IMAGENET_FILES["efficientnetb0"][0]
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / name).write_bytes(b"corrupt")
    with pytest.raises(AugbenchError, match=f"{name}: MD5 .* does not match the published"):
        weights.imagenet_weights_file("efficientnetb0", download=False)
