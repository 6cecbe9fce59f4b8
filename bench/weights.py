"""Weight files and their hashes: the Keras ImageNet files, the Keras cache, MD5 checks.

The one place for them: the classifiers (methods/classify: ``weights: imagenet | <path> |
none``), the NST encoders (bench.nst.encoders) and the quality stage's feature network
(bench.quality) all read the files from here.

``imagenet`` uses the Keras application weight files. They are looked up in the Keras
cache (``$KERAS_HOME/models`` or ``~/.keras/models``) first and verified against their
published MD5; only when absent does Keras try to download them, which needs internet.
Offline, the error says which file to put where.

Callers look the table and the cache folder up here when they run (``weights.IMAGENET_FILES``,
``weights.keras_cache_dir()``), so one patch of this module (tests) reaches them all.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.errors import AugbenchError
from bench.io import file_digest

# File names and MD5 hashes of the no-top ImageNet weights, as published with keras.applications
# 2.15 (keras/src/applications/{resnet,inception_v3,efficientnet,vgg19}.py: WEIGHTS_HASHES[...][1]
# / the ``include_top=False`` branch of each ``get_file`` call; vgg19: WEIGHTS_PATH_NO_TOP).
IMAGENET_FILES = {
    "resnet50": ("resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
                 "4d473c1dd8becc155b73f8504c6f6626"),
    "resnet101": ("resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5",
                  "88cf7a10940856eca736dc7b7e228a21"),
    "inception_v3": ("inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
                     "bcbd6486424b2319ff4ef7d526e38f63"),
    "efficientnetb0": ("efficientnetb0_notop.h5", "50bc09e76180e00e4465e1a485ddc09d"),
    "vgg19": ("vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5", "253f8cb515780f3b799900260a226db6"),
}
BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"
# Where each file lives online (the same URLs keras.applications downloads from).
URL_PREFIXES = {
    "resnet50": BASE_URL + "resnet/",
    "resnet101": BASE_URL + "resnet/",
    "inception_v3": BASE_URL + "inception_v3/",
    "efficientnetb0": "https://storage.googleapis.com/keras-applications/",
    "vgg19": BASE_URL + "vgg19/",
}
# What a classifier's ``weights`` can be instead, for the error when a file is missing offline.
CLASSIFIER_ALTERNATIVES = "set weights to a file path, or to 'none'"


def keras_cache_dir() -> Path:
    """Keras' cache of downloaded application weights: ``$KERAS_HOME/models`` or ``~/.keras/models``."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


def md5(path: str | os.PathLike) -> str:
    """MD5 of a file's bytes (the hash Keras publishes for its weight files)."""
    return file_digest(path, "md5")


def imagenet_weights_file(arch: str, download: bool = True,
                          alternatives: str = CLASSIFIER_ALTERNATIVES) -> Path:
    """Path of the verified ImageNet (no-top) weights of ``arch`` from the Keras cache. A missing
    file is downloaded when ``download`` (else an error); ``alternatives`` ends the error when
    that fails (what the ``weights`` parameter can be instead)."""
    if arch not in IMAGENET_FILES:
        raise AugbenchError(f"no ImageNet weights known for {arch!r}; known: {', '.join(sorted(IMAGENET_FILES))}")
    name, expected = IMAGENET_FILES[arch]
    path = keras_cache_dir() / name
    if not path.is_file():
        if not download:
            raise AugbenchError(f"ImageNet weights for {arch} are not at {path}")
        path = _download(arch, name, expected, path, alternatives)
    actual = md5(path)
    if actual != expected:
        raise AugbenchError(f"{path}: MD5 {actual} does not match the published {expected}; "
                            "the file is corrupt or not the Keras ImageNet weights — delete it and retry")
    return path


def _download(arch: str, name: str, expected: str, path: Path, alternatives: str) -> Path:
    import tensorflow as tf

    url = URL_PREFIXES[arch] + name
    try:
        return Path(tf.keras.utils.get_file(name, url, cache_subdir="models", file_hash=expected,
                                            cache_dir=str(path.parent.parent)))
    except Exception as exc:
        raise AugbenchError(
            f"ImageNet weights for {arch} are not at {path} and could not be downloaded "
            f"({type(exc).__name__}). On a machine with internet, fetch {url} and copy it to "
            f"{path}; or {alternatives}") from None


def resolve_weights(spec: str, arch: str) -> tuple[str | None, str]:
    """(file to load or None, human-readable source) for a classifier's ``weights`` parameter."""
    if spec == "none":
        return None, "none (random initialisation)"
    if spec == "imagenet":
        path = imagenet_weights_file(arch)
        return str(path), f"imagenet ({path.name}, md5 verified)"
    path = Path(spec).expanduser()
    if not path.is_file():
        raise AugbenchError(f"{path}: weights file not found (weights must be 'imagenet', 'none' or a file path)")
    return str(path), f"file {path} (md5 {md5(path)})"
