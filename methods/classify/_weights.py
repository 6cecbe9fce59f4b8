"""Where backbone weights come from: ``imagenet`` | ``<path>`` | ``none``.

``imagenet`` uses the Keras application weight files. They are looked up in the
Keras cache (``$KERAS_HOME/models`` or ``~/.keras/models``) first and verified
against their published MD5; only when absent does Keras try to download them,
which needs internet. Offline, the error says which file to put where.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from bench.errors import AugbenchError

# File names and MD5 hashes of the no-top ImageNet weights, as published with
# keras.applications 2.15 (keras/src/applications/{resnet,inception_v3,efficientnet}.py:
# WEIGHTS_HASHES[...][1] / the ``include_top=False`` branch of each ``get_file`` call).
IMAGENET_FILES = {
    "resnet50": ("resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
                 "4d473c1dd8becc155b73f8504c6f6626"),
    "resnet101": ("resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5",
                  "88cf7a10940856eca736dc7b7e228a21"),
    "inception_v3": ("inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
                     "bcbd6486424b2319ff4ef7d526e38f63"),
    "efficientnetb0": ("efficientnetb0_notop.h5", "50bc09e76180e00e4465e1a485ddc09d"),
}
BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"
# Where each file lives online (the same URLs keras.applications downloads from).
URL_PREFIXES = {
    "resnet50": BASE_URL + "resnet/",
    "resnet101": BASE_URL + "resnet/",
    "inception_v3": BASE_URL + "inception_v3/",
    "efficientnetb0": "https://storage.googleapis.com/keras-applications/",
}


def keras_cache_dir() -> Path:
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


def md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def imagenet_weights_file(arch: str) -> Path:
    """Path of the verified ImageNet (no-top) weights of ``arch``; download if missing."""
    if arch not in IMAGENET_FILES:
        raise AugbenchError(f"no ImageNet weights known for {arch!r}")
    name, expected = IMAGENET_FILES[arch]
    path = keras_cache_dir() / name
    if not path.is_file():
        path = _download(arch, name, expected, path)
    actual = md5(path)
    if actual != expected:
        raise AugbenchError(f"{path}: MD5 {actual} does not match the published {expected}; "
                            "the file is corrupt or not the Keras ImageNet weights — delete it and retry")
    return path


def _download(arch: str, name: str, expected: str, path: Path) -> Path:
    import tensorflow as tf

    url = URL_PREFIXES[arch] + name
    try:
        return Path(tf.keras.utils.get_file(name, url, cache_subdir="models", file_hash=expected,
                                            cache_dir=str(path.parent.parent)))
    except Exception as exc:
        raise AugbenchError(
            f"ImageNet weights for {arch} are not at {path} and could not be downloaded "
            f"({type(exc).__name__}). On a machine with internet, fetch {url} and copy it to "
            f"{path}; or set weights to a file path, or to 'none'") from None


def resolve_weights(spec: str, arch: str) -> tuple[str | None, str]:
    """(file to load or None, human-readable source) for a ``weights`` parameter."""
    if spec == "none":
        return None, "none (random initialisation)"
    if spec == "imagenet":
        path = imagenet_weights_file(arch)
        return str(path), f"imagenet ({path.name}, md5 verified)"
    path = Path(spec).expanduser()
    if not path.is_file():
        raise AugbenchError(f"{path}: weights file not found (weights must be 'imagenet', 'none' or a file path)")
    return str(path), f"file {path} (md5 {md5(path)})"
