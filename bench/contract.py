"""The plugin contract as importable checks, for augbench's tests and for plugin packages.

Every check takes a registered plugin's name, runs it with its default
parameters on a small phantom set and raises ``AssertionError`` naming the
plugin and what is wrong. ``tests/test_contract.py`` parametrises them over
every registered plugin; a plugin package runs the same checks on its own
plugin (``augbench new-plugin`` writes such a test)::

    CHECKS = contract.checks("augmenter", "my-method")

    @pytest.mark.parametrize("check", CHECKS, ids=[c.id for c in CHECKS])
    def test_contract(check):
        try:
            check.run()
        except contract.NotApplicable as why:
            pytest.skip(str(why))

``check_plugin(kind, name)`` runs them all outside pytest. Only tests import
this module; pipeline stages never do.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

from bench import registry
from bench.errors import AugbenchError
from bench.plugins import Generated, ImageSet

SIZE = 32  # px of the phantom images every check uses
N_PER_CLASS = 6  # phantom images per class: 6 benign, then 6 malignant
N_TRAIN_SIZES = (0, 1, 12, 800)  # training-split sizes n_synthetic is asked about
SEED, OTHER_SEED = 7, 8


class NotApplicable(Exception):
    """A check that does not apply to this plugin with its defaults (pytest: a skip)."""


@dataclasses.dataclass(frozen=True)
class Check:
    """One named check of one plugin; ``run()`` raises AssertionError or NotApplicable."""

    id: str
    run: Callable[[], None]


def _expect(ok: Any, name: str, problem: str) -> None:
    if not ok:
        raise AssertionError(f"{name}: {problem}")


def _expect_equal(actual: Any, desired: Any, name: str, problem: str) -> None:
    try:
        np.testing.assert_array_equal(actual, desired)
    except AssertionError as exc:
        raise AssertionError(f"{name}: {problem}{exc}") from None


# --------------------------------------------------------------------------- data


@functools.lru_cache(maxsize=4)
def _phantom_arrays(n_per_class: int, size: int) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    from bench.data.phantom import generate_phantom

    samples = generate_phantom(n_per_class, size=size, seed=0)
    images = np.stack([s.image for s in samples]).astype(np.float32)
    labels = np.array([int(s.label == "malignant") for s in samples], dtype=np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels, tuple(s.id for s in samples)


def phantom(n_per_class: int = N_PER_CLASS, size: int = SIZE) -> ImageSet:
    """A fresh, writable copy of the check set, so a mutating plugin cannot hide behind another check."""
    images, labels, ids = _phantom_arrays(n_per_class, size)
    return ImageSet(images.copy(), labels.copy(), list(ids))


# --------------------------------------------------------------------------- both kinds


def check_params(kind: str, name: str) -> None:
    """``Params`` is a dataclass that builds from an empty section, equal to its defaults."""
    cls = registry.get(kind, name)
    _expect(dataclasses.is_dataclass(cls.Params) and isinstance(cls.Params, type), name,
            f"Params must be a dataclass type, got {cls.Params!r}")
    params = registry.params_for(kind, name)
    _expect(isinstance(params, cls.Params), name, f"params_for gave {type(params).__name__}, not Params")
    _expect(params == cls.Params(), name, "Params built from an empty section differ from Params()")


def check_descriptions(kind: str, name: str) -> None:
    """``paper`` and ``summary`` are non-empty strings (``augbench list`` / ``describe`` show them)."""
    cls = registry.get(kind, name)
    for attr in ("paper", "summary"):
        text = getattr(cls, attr, None)
        _expect(isinstance(text, str) and text.strip(), name, f"{attr} is empty; say what it is and where from")


# --------------------------------------------------------------------------- augmenters


def augmenter(name: str):
    """The augmenter ``name`` with its default parameters (and, when it needs domain encoders,
    tiny ones trained on the check set, as the encoder stage would)."""
    plugin = registry.get("augmenter", name)(registry.params_for("augmenter", name))
    archs = tuple(plugin.needs_encoders()) if hasattr(plugin, "needs_encoders") else ()
    if archs:
        plugin.resources = {**getattr(plugin, "resources", {}), "encoder_dir": _encoder_dir(archs)}
    if "fresh_real_images" in (plugin.needs_resources() if hasattr(plugin, "needs_resources") else ()):
        plugin.resources = {**getattr(plugin, "resources", {}), "fresh_real_images": _fresh_phantom()}
    return plugin


@functools.lru_cache(maxsize=1)
def _fresh_phantom():
    """New phantom samples after the check set's (from sample N_PER_CLASS on, SIZE px, seed 0), as
    the augment stage hands a phantom's to the positive control (bench.data.fresh)."""
    from bench.config import PhantomParams, PreprocessParams
    from bench.data.fresh import FreshPhantom

    return FreshPhantom(PhantomParams(n_per_class=N_PER_CLASS, size=SIZE, seed=0), PreprocessParams(image_size=SIZE))


@functools.lru_cache(maxsize=4)
def _encoder_dir(archs: tuple[str, ...]):
    """Domain encoders for the checks: 1 epoch on the check set, in a temporary folder."""
    import atexit
    import shutil
    import tempfile
    from pathlib import Path

    from bench.nst.domain import EncoderParams
    from bench.stages.encoder import write_encoders

    out = Path(tempfile.mkdtemp(prefix="augbench-contract-encoder-"))
    atexit.register(shutil.rmtree, out, True)  # ~100 MB of weights per process otherwise left in /tmp
    settings = EncoderParams(archs=list(archs), init="random", epochs=1, batch_size=2 * N_PER_CLASS,
                             bn_recalibration_images=2 * N_PER_CLASS)
    write_encoders(phantom(), out, settings)
    return out


def run_augmenter(name: str, train: ImageSet, seed: int) -> tuple[Generated, np.random.Generator]:
    """``fit`` then ``generate`` as the augment stage does; returns the output and the used rng."""
    plugin = augmenter(name)
    rng = np.random.default_rng(seed)
    plugin.fit(train, rng)
    return plugin.generate(train, plugin.n_synthetic(len(train)), rng), rng


@dataclasses.dataclass(frozen=True)
class Run:
    """One seeded ``fit`` + ``generate`` of an augmenter (``run_augmenter``): what the output
    checks inspect. The checks only read it, so one run serves them all."""

    before: ImageSet  # a copy of the training set taken before the run
    train: ImageSet  # the training set the plugin was given, as the plugin left it
    generated: Generated
    rng: np.random.Generator  # the generator after fit and generate
    seed: int


def _copy(train: ImageSet) -> ImageSet:
    return ImageSet(train.images.copy(), train.labels.copy(), list(train.ids))


def seeded_run(name: str, train: ImageSet | None = None, seed: int = SEED) -> Run:
    """Run augmenter ``name`` on ``train`` (default: a fresh check set) with ``seed``."""
    train = phantom() if train is None else train
    before = _copy(train)
    generated, rng = run_augmenter(name, train, seed)
    return Run(before, train, generated, rng, seed)


def shared_run(name: str) -> Run:
    """``seeded_run(name)`` on the check set with ``SEED``, made once per process for each
    registered class: the output checks share it instead of fitting and generating again
    (``check_deterministic`` and ``check_seed_matters`` still make their second run)."""
    return _shared_run(name, registry.get("augmenter", name))


@functools.lru_cache(maxsize=32)
def _shared_run(name: str, cls: type) -> Run:  # cls: a name registered anew is run anew
    return seeded_run(name)


def _run(name: str, train: ImageSet | None, run: Run | None) -> Run:
    return seeded_run(name, train) if run is None else run


def check_mode(name: str) -> None:
    mode = registry.get("augmenter", name).mode
    _expect(mode in {"append", "replace"}, name, f"mode is {mode!r}, expected 'append' or 'replace'")


def check_online_transform(name: str) -> None:
    """For a plugin with an online mode (``transform(images, rng)``, bench.online): float32 images of
    the input's shape in [0, 1], the input left as it was, the same output for the same seed, and
    not the identity on the check set (with the default parameters)."""
    plugin = augmenter(name)
    if not callable(getattr(plugin, "transform", None)):
        raise NotApplicable("no online mode (no transform method)")
    images = phantom().images
    before = images.copy()
    out = np.asarray(plugin.transform(images, np.random.default_rng(SEED)))
    _expect(out.shape == images.shape, name, f"transform returned shape {out.shape} for {images.shape}")
    _expect(out.dtype == np.float32, name, f"transform returned {out.dtype}, expected float32")
    _expect(np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1, name,
            "transform returned pixels outside [0, 1] or NaN/inf")
    _expect(np.array_equal(images, before), name, "transform changed its input images in place")
    again = np.asarray(plugin.transform(images.copy(), np.random.default_rng(SEED)))
    _expect(np.array_equal(out, again), name, "transform gave different images for the same rng seed")
    _expect(not np.array_equal(out, images), name, "transform left every check image as it was")


def check_n_synthetic(name: str, n_train: int) -> None:
    """``n_synthetic(n_train)`` is a non-negative int (not a bool, not a float)."""
    k = augmenter(name).n_synthetic(n_train)
    _expect(isinstance(k, numbers.Integral) and not isinstance(k, bool), name,
            f"n_synthetic({n_train}) returned {k!r} ({type(k).__name__}), expected an int")
    _expect(k >= 0, name, f"n_synthetic({n_train}) returned {k}, expected >= 0")


# The output checks below take ``run``, a seeded run to inspect (``shared_run``), or else run the
# plugin on ``train`` (default: a fresh check set) with ``SEED`` themselves.


def check_generate_output(name: str, train: ImageSet | None = None, run: Run | None = None) -> None:
    """Shape, dtype, range and labels of ``generate``'s output, and the augment stage's own checks."""
    run = _run(name, train, run)
    gen, train = run.generated, run.before
    n = augmenter(name).n_synthetic(len(train))
    _expect(isinstance(gen, Generated), name, f"generate returned {type(gen).__name__}, not Generated")
    expected = (n, *train.images.shape[1:])
    _expect(gen.images.shape == expected, name, f"images have shape {gen.images.shape}, expected {expected}")
    _expect(gen.images.dtype == np.float32, name, f"images are {gen.images.dtype}, expected float32")
    _expect(np.isfinite(gen.images).all(), name, "images contain NaN/inf")
    if n:
        lo, hi = float(gen.images.min()), float(gen.images.max())
        _expect(lo >= 0.0 and hi <= 1.0, name, f"pixels span [{lo:g}, {hi:g}], expected within [0, 1]")
    _check_labels(name, np.asarray(gen.labels), n)
    _expect(len(gen.provenance) == n, name, f"{len(gen.provenance)} provenance records for {n} images")
    _expect(all(isinstance(rec, dict) for rec in gen.provenance), name, "every provenance record must be a dict")
    try:
        from bench.stages.augment import check_generated

        check_generated(gen, train, name)
    except AugbenchError as exc:
        raise AssertionError(f"{name}: the augment stage would refuse this output: {exc}") from exc


def _check_labels(name: str, labels: np.ndarray, n: int) -> None:
    _expect(labels.shape == (n,), name, f"labels have shape {labels.shape}, expected ({n},)")
    _expect(np.issubdtype(labels.dtype, np.integer), name, f"labels are {labels.dtype}, expected integers")
    _expect(set(labels.tolist()) <= {0, 1}, name, f"labels {sorted(set(labels.tolist()))} are not all 0/1")


def check_provenance(name: str, train: ImageSet | None = None, run: Run | None = None) -> None:
    """Every record names training images only (``source_id``, ``style_ids``) and is plain JSON."""
    run = _run(name, train, run)
    gen, ids = run.generated, set(run.before.ids)
    for i, rec in enumerate(gen.provenance):
        new_real = "source_id" not in rec and rec.get("source") == "phantom"  # a new real image (control-more-data)
        _expect(new_real or rec.get("source_id") in ids, name, f"provenance {i} has source_id "
                f"{rec.get('source_id')!r}, not a training image id: {rec}")
        _expect(set(rec.get("style_ids", [])) <= ids, name, f"provenance {i} names style images "
                f"outside the training split: {rec}")
        try:
            json.dumps(rec)  # provenance.jsonl must be writable: plain Python types only
        except (TypeError, ValueError) as exc:
            raise AssertionError(f"{name}: provenance {i} is not plain JSON ({exc}): {rec}") from exc


def check_deterministic(name: str, train: ImageSet | None = None, run: Run | None = None) -> None:
    """The same seed gives the same images, labels and provenance (a second run, on a copy of the
    first one's input)."""
    first = _run(name, train, run)
    a = first.generated
    b = seeded_run(name, _copy(first.before), first.seed).generated
    _expect_equal(a.images, b.images, name, "images differ for the same seed")
    _expect_equal(a.labels, b.labels, name, "labels differ for the same seed")
    _expect(_same_records(a.provenance, b.provenance), name, "provenance differs for the same seed")


def _same_records(a: Any, b: Any) -> bool:
    """Equal, except that floats need only agree to 1e-6 relative: recorded losses of a float32
    network on CPU can differ in the last bit between calls (TensorFlow's multi-threaded Eigen
    contractions for small, deep feature maps, e.g. ResNet50's conv4 at 2×2 px with 16 images,
    even with op determinism on; measured for nst-proposed), while the images are bit-identical."""
    import math

    if isinstance(a, float) and isinstance(b, float):
        return a == b or math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_records(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_records(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def check_seed_matters(name: str, train: ImageSet | None = None, run: Run | None = None) -> None:
    """A plugin that draws from ``rng`` gives other output for another seed; one that does not
    draws from no hidden randomness either. NotApplicable when it generates nothing."""
    first = _run(name, train, run)
    a, rng, seed = first.generated, first.rng, first.seed
    if len(a) == 0:
        raise NotApplicable(f"{name} generates nothing by default")
    other = OTHER_SEED if seed != OTHER_SEED else SEED
    b = seeded_run(name, _copy(first.before), other).generated
    drew = rng.bit_generator.state != np.random.default_rng(seed).bit_generator.state
    same = np.array_equal(a.images, b.images) and a.provenance == b.provenance
    if drew:
        _expect(not same, name, f"draws from rng but seeds {seed} and {other} give the same output")
    else:  # no draws from rng: the output must not depend on hidden randomness either
        _expect(same, name, "does not use rng, yet its output changes between runs")


def check_no_mutation(name: str, train: ImageSet | None = None, run: Run | None = None) -> None:
    """``train`` is left as it was, and the output does not share memory with it."""
    run = _run(name, train, run)
    images, labels, ids, train, gen = run.before.images, run.before.labels, run.before.ids, run.train, run.generated
    _expect_equal(train.images, images, name, "changed the training images")
    _expect_equal(train.labels, labels, name, "changed the training labels")
    _expect(train.ids == ids, name, "changed the training ids")
    _expect(train.images.dtype == images.dtype, name, f"changed the training images' dtype to {train.images.dtype}")
    _expect(not np.shares_memory(gen.images, train.images), name,
            "generated images share memory with the training images (return copies)")


# --------------------------------------------------------------------------- classifiers


def check_preprocess(name: str, train: ImageSet) -> None:
    """Grey (N, H, W) → finite float32 (N, H, W, C ≥ 1), leaving the input as it was."""
    clf = registry.create("classifier", name)
    before = train.images.copy()
    x = np.asarray(clf.preprocess(train.images))
    _expect(x.dtype == np.float32, name, f"preprocess returned {x.dtype}, expected float32")
    _expect(x.ndim == 4 and x.shape[:3] == train.images.shape and x.shape[3] >= 1, name,
            f"preprocess returned shape {x.shape}, expected ({', '.join(map(str, train.images.shape))}, C)")
    _expect(np.isfinite(x).all(), name, "preprocess output contains NaN/inf")
    _expect_equal(train.images, before, name, "preprocess changed its input")


def check_input_size(name: str, image_size: int = SIZE) -> None:
    size = registry.create("classifier", name).input_size(image_size)
    _expect(isinstance(size, numbers.Integral) and size > 0, name,
            f"input_size({image_size}) returned {size!r}, expected a positive int")


@dataclasses.dataclass
class Built:
    """A classifier with default parameters, its built model and the inputs it was built for."""

    classifier: Any
    model: Any
    x: np.ndarray


def build(name: str, images: np.ndarray, seed: int = 0) -> Built:
    """Seed Keras, preprocess ``images`` and ``build`` a two-class model for them."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    clf = registry.create("classifier", name)
    x = np.asarray(clf.preprocess(images))
    return Built(clf, clf.build(x.shape[1:], 2), x)


def check_compiled_model(name: str, built: Built, image_size: int = SIZE) -> None:
    """A compiled model (optimizer and loss set) with two outputs per image."""
    model, x = built.model, built.x
    _expect(x.shape[1:3] == (image_size, image_size), name,
            f"preprocessed inputs are {x.shape[1:3]}, expected ({image_size}, {image_size})")
    _expect(model.optimizer is not None, name, "build must return a compiled model (no optimizer)")
    _expect(model.loss is not None, name, "build must return a compiled model (no loss)")
    _expect(tuple(model.output_shape) == (None, 2), name, f"output shape is {model.output_shape}, expected (None, 2)")


def check_probabilities(name: str, built: Built) -> None:
    """Inference outputs are finite, non-negative and sum to 1 per image."""
    probs = built.model(built.x, training=False).numpy()
    _expect(probs.shape == (len(built.x), 2), name, f"outputs have shape {probs.shape}, expected ({len(built.x)}, 2)")
    _expect(np.isfinite(probs).all() and (probs >= 0).all(), name, "outputs are not finite non-negative probabilities")
    try:
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    except AssertionError as exc:
        raise AssertionError(f"{name}: outputs do not sum to 1 per image{exc}") from None


def check_trainable_weights(name: str, built: Built) -> None:
    weights = built.model.trainable_weights
    _expect(len(weights) > 0, name, "the model has no trainable weights")
    _expect(sum(int(np.prod(w.shape)) for w in weights) > 0, name, "the trainable weights are all empty")


def check_weights_source(name: str, built: Built) -> None:
    source = built.classifier.weights_source()
    _expect(isinstance(source, str) and source.strip(), name,
            f"weights_source() returned {source!r}; say where the weights came from ('none' for random init)")


# --------------------------------------------------------------------------- all checks of a plugin


def checks(kind: str, name: str) -> list[Check]:
    """Every contract check of plugin ``name``, in a stable order, ready to parametrise a test."""
    registry.get(kind, name)  # unknown or broken: fail here, with the registry's message
    common = [Check("params", functools.partial(check_params, kind, name)),
              Check("descriptions", functools.partial(check_descriptions, kind, name))]
    return common + (_augmenter_checks(name) if kind == "augmenter" else _classifier_checks(name))


def _with_phantom(func: Callable, name: str) -> Callable[[], None]:
    return lambda: func(name, phantom())


def _augmenter_checks(name: str) -> list[Check]:
    found = [Check("mode", functools.partial(check_mode, name)),
             Check("online_transform", functools.partial(check_online_transform, name))]
    found += [Check(f"n_synthetic[{n}]", functools.partial(check_n_synthetic, name, n)) for n in N_TRAIN_SIZES]
    found += [Check(func.__name__.removeprefix("check_"), _on_shared_run(func, name))
              for func in (check_generate_output, check_provenance, check_deterministic, check_seed_matters,
                           check_no_mutation)]
    return found


def _on_shared_run(func: Callable, name: str) -> Callable[[], None]:
    return lambda: func(name, run=shared_run(name))


def _classifier_checks(name: str) -> list[Check]:
    built = functools.cache(lambda: build(name, phantom().images[:4]))  # one model for the build checks
    found = [Check("preprocess", _with_phantom(check_preprocess, name)),
             Check("input_size", functools.partial(check_input_size, name))]
    found += [Check(func.__name__.removeprefix("check_"), _on_built(func, name, built))
              for func in (check_compiled_model, check_probabilities, check_trainable_weights,
                           check_weights_source)]
    return found


def _on_built(func: Callable, name: str, built: Callable[[], Built]) -> Callable[[], None]:
    return lambda: func(name, built())


def check_plugin(kind: str, name: str) -> list[str]:
    """Run every check of ``name``; raise on the first failure; return the checks that did not apply."""
    skipped = []
    for check in checks(kind, name):
        try:
            check.run()
        except NotApplicable as why:
            skipped.append(f"{check.id}: {why}")
    return skipped
