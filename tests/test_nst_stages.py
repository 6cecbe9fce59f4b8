"""The encoder stage and the augment stage with NST: training split only, weights recorded,
content | style | result grids, style leakage refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench import cli
from bench.config import load_params
from bench.errors import AugbenchError
from bench.io import read_json
from bench.nst.domain import EncoderParams, ids_digest
from bench.plugins import Generated
from bench.stages import augment, prepare
from bench.stages.augment import check_sources
from bench.stages.common import load_prepared
from bench.stages.encoder import train_encoders

pytestmark = pytest.mark.filterwarnings(
    # Keras 2.15 initialisers call random.randint(1, 1e9); not ours to fix.
    "ignore:non-integer arguments to randrange:DeprecationWarning")

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
QUICK_NST = {"factor": 2, "iterations": [1], "batch_size": 8}


def _params(**overrides):
    sets = [f"{k}={json.dumps(v)}" for k, v in overrides.items()]
    return load_params(PARAMS, "smoke", sets)


@pytest.fixture(scope="module")
def prepared_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    prepare.prepare(_params(), out)
    return out


@pytest.fixture(scope="module")
def encoder_dir(prepared_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("encoder")
    train_encoders(_params(), load_prepared(prepared_dir), out, EncoderParams(epochs=1, init="random"))
    return out


@pytest.mark.slow
def test_encoder_stage_trains_on_the_training_split_only(prepared_dir, encoder_dir):
    prepared = load_prepared(prepared_dir)
    meta = read_json(encoder_dir / "meta.json")
    record = meta["encoders"]["vgg19"]
    train = prepared.subset("train")
    assert record["n_train"] == len(train) < len(prepared.ids)
    assert record["train_ids_sha256"] == ids_digest(train.ids)
    assert record["train_ids_sha256"] != ids_digest(prepared.ids)
    assert record["init"].startswith("random") and record["split"] == "train"
    assert (encoder_dir / record["file"]).stat().st_size > 1_000_000
    assert meta["upstream"] == prepared.digest
    assert np.isfinite(record["train_loss"])


@pytest.mark.slow
def test_nst_with_domain_weights_records_them_and_draws_content_style_result(prepared_dir, encoder_dir,
                                                                              tmp_path):
    params = _params(**{"augment.methods.nst-gatys": {**QUICK_NST, "weights": "domain"}})
    prepared = load_prepared(prepared_dir)
    meta = augment.augment(params, prepared, "nst-gatys", tmp_path / "gatys", encoder_dir=encoder_dir)
    assert meta["encoder"] == "vgg19" and meta["encoder_weights"].startswith("domain (vgg19_domain_notop.h5")
    assert meta["run_info"]["failures"] == [] and meta["run_info"]["images_per_second"] > 0
    records = [json.loads(line) for line in (tmp_path / "gatys" / "provenance.jsonl").read_text().splitlines()]
    train_ids = set(prepared.subset("train").ids)
    assert len(records) == meta["n_synthetic"] == len(train_ids)
    assert all(r["content_id"] in train_ids and set(r["style_ids"]) <= train_ids for r in records)
    assert all(r["params"]["weights"] == meta["encoder_weights"] for r in records)

    augment.augment(params, prepared, "classical", tmp_path / "classical")
    nst_grid = Image.open(tmp_path / "gatys" / "grid.png")
    plain_grid = Image.open(tmp_path / "classical" / "grid.png")
    assert nst_grid.size[0] > 1.3 * plain_grid.size[0]  # three columns instead of two


def test_domain_weights_without_the_encoder_stage_fail_early(prepared_dir, tmp_path):
    params = _params(**{"augment.methods.nst-gatys": {**QUICK_NST, "weights": "domain"}})
    with pytest.raises(AugbenchError, match="--encoder DIR"):
        augment.augment(params, load_prepared(prepared_dir), "nst-gatys", tmp_path)
    assert not (tmp_path / "meta.json").exists()


def test_style_images_outside_the_training_split_are_refused():
    records = [{"source_id": "a", "style_ids": ["b"]}, {"source_id": "a", "style_ids": ["b", "test-7"]}]
    check_sources(records[:1], {"a", "b"}, "nst-x")
    with pytest.raises(AugbenchError, match="'test-7'.*leakage"):
        check_sources(records, {"a", "b"}, "nst-x")


def test_grid_without_style_ids_keeps_two_columns(tmp_path, prepared_dir):
    train = load_prepared(prepared_dir).subset("train")
    gen = Generated(train.images[:2].copy(), train.labels[:2], [{"source_id": i} for i in train.ids[:2]])
    augment.write_grid(tmp_path / "a.png", gen, train, "x", 2)
    styled = Generated(train.images[:2].copy(), train.labels[:2],
                       [{"source_id": i, "style_ids": [train.ids[3]]} for i in train.ids[:2]])
    augment.write_grid(tmp_path / "b.png", styled, train, "x", 2)
    assert Image.open(tmp_path / "b.png").size[0] > Image.open(tmp_path / "a.png").size[0]


@pytest.mark.slow
def test_encoder_cli(prepared_dir, tmp_path):
    code = cli.main(["encoder", "--params", str(PARAMS), "--profile", "smoke", "--prepared", str(prepared_dir),
                     "--out", str(tmp_path / "enc")])
    assert code == 0
    meta = read_json(tmp_path / "enc" / "meta.json")
    assert set(meta["encoders"]) == {"vgg19", "resnet50"} and meta["params"]["archs"] == ["vgg19", "resnet50"]
    for record in meta["encoders"].values():  # the backbone and, for nst-proposed-lrp, its head
        assert (tmp_path / "enc" / record["file"]).is_file() and (tmp_path / "enc" / record["head_file"]).is_file()


def test_encoder_from_other_prepared_data_is_refused(encoder_dir, tmp_path):
    """An encoder trained on another split may have seen today's val/test images: refused."""
    other = tmp_path / "prepared-other"
    prepare.prepare(_params(**{"split.seed": 7}), other)
    with pytest.raises(AugbenchError, match="trained on other prepared data"):
        augment.augment(_params(), load_prepared(other), "none", tmp_path / "out", encoder_dir=encoder_dir)
    assert not (tmp_path / "out" / "meta.json").exists()


def test_encoder_stage_hands_only_training_images_to_training(prepared_dir, tmp_path, monkeypatch):
    import bench.nst.domain as domain

    seen = {}

    def fake_train(arch, train, settings):
        seen["ids"] = list(train.ids)
        raise RuntimeError("stop here")

    monkeypatch.setattr(domain, "train_domain_encoder", fake_train)
    prepared = load_prepared(prepared_dir)
    with pytest.raises(RuntimeError, match="stop here"):
        train_encoders(_params(), prepared, tmp_path / "enc", EncoderParams(epochs=1, init="random"))
    assert seen["ids"] == prepared.subset("train").ids
    assert not set(seen["ids"]) & set(prepared.subset("val").ids + prepared.subset("test").ids)


def test_encoder_stage_trains_only_what_the_matrix_reads(tmp_path):
    """needs_encoders of the matrix's methods (and of the scaling stage's method, and the quality
    stage's domain features, when those stages are on) decides the architectures; with none the
    stage trains nothing and its meta.json says so (empty ``encoders``, the prepared digest kept)."""
    from bench.stages.encoder import needed_archs

    off = {"scaling.enabled": False, "quality.enabled": False}
    assert needed_archs(_params(**off, **{"matrix.methods": ["none", "geometric-flipping"]})) == []
    assert needed_archs(_params(**off, **{"matrix.methods": ["none", "nst-gatys"]})) == ["vgg19"]
    assert needed_archs(_params(**off, **{"matrix.methods": ["none", "nst-mr2-resnet50", "nst-gatys"]})) == [
        "vgg19", "resnet50"]
    assert needed_archs(_params(**off, **{"matrix.methods": ["none", "nst-gatys"],
                                          "augment.methods.nst-gatys.weights": "random"})) == []
    flip = {"matrix.methods": ["none", "geometric-flipping"]}
    assert needed_archs(_params(**{**off, "scaling.enabled": True, "scaling.method": "nst-gatys"}, **flip)) == [
        "vgg19"]
    assert needed_archs(_params(**{**off, "quality.enabled": True, "quality.feature_network": "domain",
                                   "quality.domain_arch": "resnet50"}, **flip)) == ["resnet50"]
    assert needed_archs(_params(**{**off, "quality.enabled": True, "quality.feature_network": "inceptionv3"},
                                **flip)) == []

    class _Prepared:  # only what train_encoders reads; no image is touched when nothing is trained
        digest = "abc"

        def subset(self, split):
            assert split == "train"
            return []

    meta = train_encoders(_params(**off, **{"matrix.methods": ["none"]}), _Prepared(), tmp_path / "enc")
    assert meta["encoders"] == {} and meta["params"]["archs"] == [] and meta["upstream"] == "abc"
    assert sorted(p.name for p in (tmp_path / "enc").iterdir()) == ["meta.json"]


@pytest.mark.slow
def test_encoder_stage_keeps_encoders_it_already_holds(prepared_dir, encoder_dir, tmp_path, monkeypatch):
    """A re-run with the same plan, training split and files keeps the folder byte for byte without
    training (dvc.yaml persists the output); another plan, or a changed file, is not kept."""
    import shutil

    from bench.stages.encoder import finished

    folder = tmp_path / "enc"
    shutil.copytree(encoder_dir, folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    monkeypatch.setattr("bench.nst.domain.train_domain_encoder",
                        lambda *a, **k: pytest.fail("trained although the encoders were there"))
    settings = EncoderParams(epochs=1, init="random")
    prepared = load_prepared(prepared_dir)
    train_encoders(_params(), prepared, folder, settings)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    n_train = len(prepared.subset("train"))
    assert finished(folder, settings, prepared.digest, n_train) is not None
    assert finished(folder, EncoderParams(epochs=2, init="random"), prepared.digest, n_train) is None
    assert finished(folder, settings, "another split", n_train) is None
    weights = next(folder.glob("*.h5"))
    weights.write_bytes(weights.read_bytes() + b"\0")  # another file than the one meta.json records
    assert finished(folder, settings, prepared.digest, n_train) is None
