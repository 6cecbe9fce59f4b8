"""Kept models: a train run's chosen model (``model.keras``) and its record (``model.json``).

The train stage (``train.keep_models``) saves the chosen model of every run in the Keras v3
format beside its predictions, without its optimizer state (only inference is needed), and
writes ``model.json``: the augbench version and git commit, the run (method, classifier, seed),
the class names in output order, every preprocessing step from an image file to the network's
input, and the sha256 of ``model.keras``. :func:`load_kept` refuses a model whose record is
missing, comes from another augbench version or does not match the file; it loads with
``safe_mode=True`` (no Lambda layers, no pickled code) and ``compile=False``.

:func:`images_for_model` reproduces the preprocessing: decode to grey [0, 1]
(bench.data.loader.read_grey), Lanczos resize to the prepared size (the prepare stage),
optional SRAD despeckling (the prepare stage), bilinear resize to the classifier's input size
and the classifier plugin's own ``preprocess`` (the train stage).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import bench
from bench.errors import AugbenchError, DataError, RegistryError
from bench.io import atomic_path, file_digest, read_json, write_json

MODEL_FILE = "model.keras"
MODEL_JSON = "model.json"
FORMAT = 1  # of model.json; a reader refuses another


@dataclass(frozen=True)
class KeptModel:
    """A loaded kept model and its record."""

    model: Any  # tf.keras.Model
    record: dict
    folder: Path

    @property
    def classes(self) -> list[str]:
        """Class names in output order: [negative, positive]."""
        return list(self.record["classes"])

    @property
    def positive(self) -> str:
        return str(self.record["positive"])


def preprocessing_record(prepared_meta: dict, input_size: int, plugin: str, plugin_params: dict) -> dict:
    """``model.json``'s ``preprocessing``: what :func:`images_for_model` needs, from the prepared
    data's meta.json (image size, SRAD and its parameters) and the train stage (input size, the
    classifier plugin and its parameters, whose ``preprocess`` is the last step)."""
    size, srad = prepared_form(prepared_meta)
    return {"grey": "ITU-R BT.601 luminance in [0, 1] (bench.data.loader.read_grey)",
            "prepared_size": size,
            "prepared_resize": "Lanczos, antialiased (bench.data.loader.resize)",
            "srad": srad, "input_size": int(input_size),
            "input_resize": "bilinear (bench.stages.train.resize_to)",
            "classifier": {"plugin": plugin, "params": plugin_params}}


def prepared_form(prepared_meta: dict) -> tuple[int, dict | None]:
    """``(image size, SRAD parameters or None)`` of the prepared data, from its meta.json."""
    pre = (prepared_meta.get("inputs") or {}).get("preprocess") or {}
    srad = None
    if prepared_meta.get("srad"):
        srad = {"iterations": int(pre["srad_iterations"]), "scale": int(pre["srad_scale"]),
                "dt": float(pre["srad_dt"])}
    return int(prepared_meta["image_size"]), srad


def class_order(classes: list[str], positive: str) -> list[str]:
    """[negative, positive]: the order of the network's outputs (label 1 = ``positive``)."""
    negatives = [c for c in classes if c != positive]
    if len(negatives) != 1 or positive not in classes:
        raise AugbenchError(f"classes {classes} with positive {positive!r}: a kept model needs two classes, "
                            "one of them the positive")
    return [negatives[0], positive]


def inference_model(model):
    """``model`` without its optimizer: a functional model over the same layers (and weights)."""
    import tensorflow as tf

    return tf.keras.Model(model.inputs, model.outputs, name=model.name)


def save_kept(model, folder: str | os.PathLike, run: dict, classes: list[str], positive: str,
              preprocessing: dict) -> dict:
    """Write ``folder/model.keras`` (atomically) and then ``folder/model.json``; return the record.
    ``run``: method, classifier, plugin, seed."""
    from bench.provenance import code, git_commit, versions

    folder = Path(folder)
    (folder / MODEL_JSON).unlink(missing_ok=True)  # never beside another model file
    with atomic_path(folder / MODEL_FILE) as tmp:  # the temporary name ends in .keras, as Keras requires
        inference_model(model).save(tmp)
    record = {"format": FORMAT, "augbench_version": bench.__version__, "git": git_commit(), "code": code(),
              "versions": {k: v for k, v in versions().items() if k in ("tensorflow", "keras", "numpy")},
              "run": run, "classes": class_order(classes, positive), "positive": positive,
              "dataset_classes": list(classes),  # the training set's order (a MedMNIST file's label k)
              "input_shape": [int(d) for d in model.input_shape[1:]],
              "preprocessing": preprocessing, "model_file": MODEL_FILE,
              "sha256": file_digest(folder / MODEL_FILE), "bytes": (folder / MODEL_FILE).stat().st_size}
    write_json(folder / MODEL_JSON, record)
    return record


def check_record(folder: str | os.PathLike) -> dict:
    """The ``model.json`` of kept-model folder ``folder`` after checking it against ``model.keras``
    and this augbench; :class:`DataError` naming the file, what differs and what to do."""
    folder = Path(folder)
    model_file, record_file = folder / MODEL_FILE, folder / MODEL_JSON
    retrain = "re-run the train stage with train.keep_models: true (dvc repro, or augbench train)"
    if not folder.is_dir():
        raise DataError(folder, "not a folder", "pass a run folder, e.g. runs/none/resnet50/seed0")
    if not model_file.is_file():
        raise DataError(model_file, "no kept model here (train.keep_models was false, or the run was made "
                        "before models were kept)", retrain)
    if not record_file.is_file():
        raise DataError(model_file, f"has no {MODEL_JSON} beside it, so its classes, preprocessing and origin "
                        "are unknown and it is not loaded", retrain)
    record = read_json(record_file)
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise DataError(record_file, f"record format {record.get('format') if isinstance(record, dict) else None!r}, "
                        f"this augbench reads format {FORMAT}", retrain)
    made = record.get("augbench_version")
    if made != bench.__version__:
        commit = (record.get("git") or {}).get("commit", "unknown")
        raise DataError(record_file, f"written by augbench {made}, this is augbench {bench.__version__}; "
                        "preprocessing and custom layers may differ between versions",
                        f"score it with augbench {made} (git commit {commit}), or {retrain} with this version")
    digest = file_digest(model_file)
    if digest != record.get("sha256"):
        raise DataError(model_file, f"sha256 {digest[:16]}… differs from the {str(record.get('sha256'))[:16]}… "
                        f"recorded in {MODEL_JSON}: the model file was changed or replaced after training",
                        f"restore the file (dvc checkout) or {retrain}")
    return record


def register_custom_layers(record: dict, record_file: Path) -> None:
    """Register the custom Keras layers a kept model can hold (register_keras_serializable):
    bench's own (InputGradConv2D) and those of the classifier plugin that built it, which the
    plugin registers itself (``register_custom_objects``; the built-in ones: DRS, SigmoidPair,
    ShiftedMaxPooling2D). The plugin is found through the registry, as in the train stage."""
    import bench.convgrad  # noqa: F401  InputGradConv2D
    from bench import registry

    plugin = ((record.get("preprocessing") or {}).get("classifier") or {}).get("plugin")
    if not plugin:
        raise DataError(record_file, "names no classifier plugin (preprocessing.classifier.plugin), so its "
                        "custom layers cannot be registered", "re-run the train stage for this run")
    try:
        cls = registry.get("classifier", plugin)
    except RegistryError as exc:
        raise DataError(record_file, f"the model was built by classifier plugin {plugin!r}, which is not "
                        f"available here ({exc})", "install the package that provides it") from None
    register = getattr(cls, "register_custom_objects", None)
    if callable(register):
        register()


def load_kept(folder: str | os.PathLike) -> KeptModel:
    """Check (:func:`check_record`) and load the kept model of run folder ``folder``: safe mode (no
    Lambda layers or pickled code), not compiled (inference only)."""
    import tensorflow as tf

    folder = Path(folder)
    record = check_record(folder)
    register_custom_layers(record, folder / MODEL_JSON)
    try:
        model = tf.keras.models.load_model(folder / MODEL_FILE, safe_mode=True, compile=False)
    except (ValueError, TypeError, OSError) as exc:
        raise DataError(folder / MODEL_FILE, f"Keras cannot load it safely ({exc})",
                        "it may hold a layer augbench does not register; re-run the train stage") from None
    return KeptModel(model, record, folder)


def classifier_for(record: dict):
    """The classifier plugin the model was trained with, with its recorded parameters (for its
    ``preprocess``)."""
    from bench import registry

    spec = record["preprocessing"]["classifier"]
    return registry.create("classifier", spec["plugin"], **spec["params"])


def images_for_model(grey: list[np.ndarray], record: dict) -> np.ndarray:
    """Decoded grey [0, 1] images (any sizes) → the network's input, as the prepare and train
    stages made it: Lanczos resize to the prepared size, SRAD when the model's data had it,
    bilinear resize to the input size, the classifier plugin's preprocessing."""
    from bench.stages.train import resize_to

    pre = record["preprocessing"]
    images = prepared_like(grey, pre["prepared_size"], pre.get("srad"))
    return classifier_for(record).preprocess(resize_to(images, pre["input_size"]))


def prepared_like(grey: list[np.ndarray], size: int, srad: dict | None) -> np.ndarray:
    """Decoded grey images as the prepare stage stores them: Lanczos resize to ``size``, then SRAD
    when ``srad`` (iterations, scale, dt) is given."""
    from bench.data.loader import resize

    images = np.stack([resize(np.asarray(g, np.float32), int(size)) for g in grey]).astype(np.float32)
    if srad:
        from bench.data.srad import srad_scale_image

        images = np.stack([srad_scale_image(image, n_t=srad["iterations"], scale=srad["scale"], dt=srad["dt"])
                           for image in images]).astype(np.float32)
    return images


def predict_kept(kept: KeptModel, grey: list[np.ndarray]) -> np.ndarray:
    """P(positive class) of each decoded grey image."""
    from bench import training

    return training.predict_positive(kept.model, images_for_model(grey, kept.record))
