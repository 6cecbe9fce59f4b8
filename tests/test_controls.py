"""The controls (methods/augment/controls.py) and their fresh real images (bench/data/fresh.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench import registry
from bench.config import load_params
from bench.data.fresh import FRESH_REAL_IMAGES, FreshPhantom, fresh_source
from bench.data.phantom import file_index
from bench.errors import AugbenchError, ConfigError
from bench.io import load_npz
from bench.plugins import ImageSet
from bench.stages import augment, prepare
from bench.stages import train as train_stage
from bench.stages.common import load_prepared
from methods.augment.controls import class_counts

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
# A phantom small enough for a test, resized (48 → 32 px) so that prepare's resize step is exercised.
TINY = {"phantom.n_per_class": 10, "phantom.size": 48, "preprocess.image_size": 32}
# n_t and L differ, so that a wrong iteration count (n_t × L, bench.stages.prepare.despeckle) fails the test.
SRAD = {"preprocess.srad": True, "preprocess.srad_iterations": 1, "preprocess.srad_scale": 2, "preprocess.srad_dt": 0.1}
SETS = {"phantom.n_per_class": 4, "phantom.val_per_class": 3, "phantom.test_per_class": 2}


def _params(**overrides):
    if overrides.get("dataset.source") == "folder":  # the positive control is refused in a folder run's matrix
        overrides.setdefault("matrix.methods", ["none"])
    sets = [f"{k}={json.dumps(v)}" for k, v in {**TINY, **overrides}.items()]
    return load_params(PARAMS, "smoke", sets)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(params, prepared folder) of a tiny phantom split by ratios."""
    out = tmp_path_factory.mktemp("prepared")
    params = _params()
    prepare.prepare(params, out)
    return params, out


def _fresh(params) -> FreshPhantom:
    """The generator the augment stage would hand over (without a prepared meta.json to check)."""
    return fresh_source(params, {})


def _index(image_id: str) -> tuple[str, int]:
    """("benign", 6) for the prepared id "benign/benign (7)"."""
    label, stem = image_id.split("/")
    return label, file_index(label, stem)


# --------------------------------------------------------------------------- fresh images


@pytest.mark.parametrize("overrides", [{}, SRAD, SETS], ids=["resize", "srad", "phantom-sets"])
def test_phantom_images_reproduce_the_prepared_arrays_bit_for_bit(overrides, tmp_path):
    params = _params(**overrides)
    prepare.prepare(params, tmp_path)
    prepared = load_prepared(tmp_path)
    for split in ("train", "val", "test"):
        part = prepared.subset(split)
        fresh = fresh_source(params, prepared.meta)
        again = np.concatenate([fresh.images(label, [k]) for label, k in map(_index, part.ids)])
        assert again.dtype == part.images.dtype == np.float32
        np.testing.assert_array_equal(again, part.images, err_msg=f"{split} images differ from prepare's")


def test_fresh_images_are_new_and_counted_per_class(tiny):
    params, folder = tiny
    prepared = load_prepared(folder)
    fresh = _fresh(params)({0: 6, 1: 5})
    assert isinstance(fresh, ImageSet) and fresh.images.shape == (11, 32, 32) and fresh.images.dtype == np.float32
    assert fresh.labels.tolist() == [0] * 6 + [1] * 5
    first = params.phantom.total_per_class()
    assert fresh.ids[0] == f"fresh-benign-{first + 1:04d}" and fresh.ids[-1] == f"fresh-malignant-{first + 5:04d}"
    assert not set(fresh.ids) & set(prepared.ids) and len(set(fresh.ids)) == 11
    for rec, label in zip(fresh.provenance, fresh.labels, strict=True):
        assert rec["source"] == "phantom" and rec["sample_index"] >= first
        assert rec["class"] == ("malignant" if label else "benign") and "source_id" not in rec
    flat_fresh, flat_prepared = fresh.images.reshape(11, -1), prepared.images.reshape(len(prepared.ids), -1)
    assert not (flat_fresh[:, None, :] == flat_prepared[None, :, :]).all(axis=2).any()  # no prepared image again
    assert fresh.images.min() >= 0.0 and fresh.images.max() <= 1.0


def test_fresh_images_are_deterministic_per_phantom_seed(tiny):
    params, _ = tiny
    a, b = _fresh(params)({0: 2, 1: 2}), _fresh(params)({0: 2, 1: 2})
    np.testing.assert_array_equal(a.images, b.images)
    assert a.ids == b.ids and a.provenance == b.provenance
    other = _fresh(_params(**{"phantom.seed": 1}))({0: 2, 1: 2})
    assert not np.array_equal(a.images, other.images)


def test_fresh_images_refuse_samples_a_split_used(tiny):
    params, _ = tiny
    with pytest.raises(AugbenchError, match="must start at sample 10 or later"):
        _fresh(params)({0: 1}, start=9)
    assert _fresh(params)({0: 1}, start=12).provenance[0]["sample_index"] == 12


def test_fresh_source_is_for_the_phantom_and_its_own_prepared_data(tiny, tmp_path):
    params, folder = tiny
    meta = load_prepared(folder).meta
    assert fresh_source(params, meta) is not None
    assert fresh_source(_params(**{"dataset.source": "folder", "dataset.path": str(tmp_path)}), meta) is None
    fresh = fresh_source(params, meta)({0: 1, 1: 2})
    np.testing.assert_array_equal(fresh.images, _fresh(params)({0: 1, 1: 2}).images)
    other = fresh_source(_params(**{"phantom.difficulty": 0.9}), meta)  # refused when used, not before
    with pytest.raises(AugbenchError, match="other phantom parameters.*re-run the prepare stage"):
        other({0: 1})


def test_fresh_labels_follow_the_positive_class(tiny):
    params, _ = tiny
    assert _fresh(params).classes == ("benign", "malignant")
    flipped = _fresh(_params(**{"dataset.positive": "benign"}))
    assert flipped.classes == ("malignant", "benign")
    assert [r["class"] for r in flipped({0: 1, 1: 1}).provenance] == ["malignant", "benign"]


def test_class_counts_follow_the_training_split():
    labels = np.array([0] * 7 + [1] * 3)
    assert class_counts(labels, 40) == {0: 28, 1: 12}  # (factor - 1) × each class exactly
    assert class_counts(labels, 5) == {0: 4, 1: 1}  # 3.5 / 1.5: the larger remainder first (a tie: lower label)
    assert sum(class_counts(labels, 13).values()) == 13
    assert class_counts(labels, 0) == {} and class_counts(np.zeros(0, np.int64), 0) == {}


# --------------------------------------------------------------------------- the plugins


@pytest.mark.parametrize(("name", "control"), [("control-more-data", "positive"),
                                               ("control-shuffled-labels", "negative")])
def test_controls_declare_themselves_and_validate_factor(name, control):
    cls = registry.get("augmenter", name)
    assert cls.control == control and cls.generative is False and cls.mode == "append"
    assert "Bouthillier" in cls.paper and cls.summary
    assert registry.create("augmenter", name).params.factor == 5
    with pytest.raises(ConfigError, match=rf"augmenter\.{name}\.factor: must be >= 2"):
        registry.create("augmenter", name, factor=1)


def test_more_data_through_the_augment_stage(tiny, tmp_path):
    params, folder = tiny
    prepared = load_prepared(folder)
    train = prepared.subset("train")
    meta = augment.augment(params, prepared, "control-more-data", tmp_path)
    n_train = {c: int((train.labels == c).sum()) for c in (0, 1)}
    assert meta["n_synthetic"] == 4 * len(train)  # default factor 5
    assert meta["synthetic_per_class"] == {str(c): 4 * n for c, n in n_train.items()}
    synth = load_npz(tmp_path / "synthetic.npz")
    expected = _fresh(params)({c: 4 * n for c, n in n_train.items()})
    np.testing.assert_array_equal(synth["images"], expected.images)
    np.testing.assert_array_equal(synth["labels"], expected.labels)
    records = [json.loads(line) for line in (tmp_path / "provenance.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == expected.ids
    assert all(r["method"] == "control-more-data" and r["source"] == "phantom" for r in records)
    x, y, composition = train_stage.training_set(prepared, tmp_path)  # the train stage accepts it too
    assert composition["n_total"] == 5 * len(train) and y.sum() == 5 * n_train[1]


def test_more_data_refuses_a_folder_dataset_clearly(tiny, tmp_path):
    params, folder = tiny
    folder_params = _params(**{"dataset.source": "folder", "dataset.path": str(Path(folder) / "phantom")})
    prepare.prepare(folder_params, tmp_path / "prepared")  # the phantom's PNGs, read as a folder dataset
    with pytest.raises(ConfigError, match=r"needs a generator of new real images.*phantom.*remove "
                                          r"control-more-data from matrix\.methods for folder datasets"):
        augment.augment(folder_params, load_prepared(tmp_path / "prepared"), "control-more-data", tmp_path / "aug")
    assert not (tmp_path / "aug" / "synthetic.npz").exists()


def test_more_data_without_its_resource_names_the_fix():
    plugin = registry.create("augmenter", "control-more-data")
    train = ImageSet(np.zeros((2, 16, 16), np.float32), np.array([0, 1]), ["a", "b"])
    with pytest.raises(ConfigError, match="remove control-more-data from matrix.methods"):
        plugin.fit(train, np.random.default_rng(0))
    plugin.resources[FRESH_REAL_IMAGES] = lambda counts: pytest.fail("not reached")
    plugin.fit(train, np.random.default_rng(0))  # with a generator: nothing to refuse


def test_shuffled_labels_permute_the_copies_labels_and_flip_training_images(tiny, tmp_path):
    params, folder = tiny
    prepared = load_prepared(folder)
    train = prepared.subset("train")
    meta = augment.augment(params, prepared, "control-shuffled-labels", tmp_path)
    synth = load_npz(tmp_path / "synthetic.npz")
    records = [json.loads(line) for line in (tmp_path / "provenance.jsonl").read_text().splitlines()]
    assert meta["n_synthetic"] == len(records) == 4 * len(train)
    index = {image_id: k for k, image_id in enumerate(train.ids)}
    true = np.array([train.labels[index[r["source_id"]]] for r in records])
    assert [r["true_label"] for r in records] == true.tolist()
    assert [r["label"] for r in records] == synth["labels"].tolist()
    assert sorted(synth["labels"].tolist()) == sorted(true.tolist())  # a permutation: class counts kept
    wrong = synth["labels"] != true
    assert [r["label_wrong"] for r in records] == wrong.tolist() and 0.3 < wrong.mean() < 0.7
    flips = {r["flip"] for r in records}
    assert flips == {"horizontal", "none"}
    for image, rec in zip(synth["images"], records, strict=True):
        source = train.images[index[rec["source_id"]]]
        np.testing.assert_array_equal(image, source[:, ::-1] if rec["flip"] == "horizontal" else source)


def test_shuffled_labels_are_deterministic_for_a_seed(tiny):
    params, folder = tiny
    train = load_prepared(folder).subset("train")
    plugin = registry.create("augmenter", "control-shuffled-labels", factor=3)
    a, b, c = (plugin.generate(train, 2 * len(train), np.random.default_rng(s)) for s in (0, 0, 1))
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.provenance == b.provenance and a.provenance != c.provenance
    assert not np.shares_memory(a.images, train.images)
