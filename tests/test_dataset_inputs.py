"""Dataset inputs (MedMNIST .npz, CSV lists with patient groups) and dataset cards (datasets/)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from bench.cli import main
from bench.config import load_params
from bench.data import cards
from bench.data.csvinput import csv_source
from bench.data.medmnist import medmnist_source, read_medmnist
from bench.data.sources import folder_source, merge_groups, straddling_groups
from bench.errors import ConfigError, DataError
from bench.stages import prepare
from bench.stages.common import load_prepared

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params.yaml"
CARDS = sorted((ROOT / "datasets").glob("*.yaml"))
SIZES = {"train": 14, "val": 6, "test": 8}


def _params(**overrides):
    overrides.setdefault("matrix.zoo", [])
    overrides.setdefault("matrix.methods", ["none"])
    return load_params(PARAMS, "smoke", [f"{k}={json.dumps(v)}" for k, v in overrides.items()])


def _noise(rng, n, side=28, rgb=False):
    shape = (n, side, side, 3) if rgb else (n, side, side)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def breastmnist_npz(path: Path, seed=0, rgb=False, **replace) -> Path:
    """A tiny file in BreastMNIST's format: uint8 (N, 28, 28) images, (N, 1) labels 0/1 with both
    labels in every split (random noise, so no two images are near duplicates)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in SIZES.items():
        arrays[f"{split}_images"] = _noise(rng, n, rgb=rgb)
        arrays[f"{split}_labels"] = (np.arange(n) % 3 == 0).astype(np.uint8)[:, None] ^ 1  # a third label 0
    arrays.update(replace)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)
    return path


# --------------------------------------------------------------------------------------- MedMNIST

def test_medmnist_official_splits_and_label_names(tmp_path):
    npz = breastmnist_npz(tmp_path / "breastmnist.npz")
    source = medmnist_source(npz, ["malignant", "benign"], tmp_path / "work")
    raw = np.load(npz)
    assert {s: list(source.splits.values()).count(s) for s in SIZES} == SIZES
    for split in SIZES:  # label 0 -> classes[0] = malignant, as BreastMNIST's label 0 is malignant
        n_malignant = sum(r.label == "malignant" for r in source.scan.records if source.splits[r.id] == split)
        assert n_malignant == int((raw[f"{split}_labels"] == 0).sum())
    rec = next(r for r in source.scan.records if r.id.endswith("val-3"))
    np.testing.assert_array_equal(np.asarray(Image.open(rec.path)), raw["val_images"][3])  # lossless
    assert source.location(rec) == "breastmnist.npz:val_images[3]"


def test_medmnist_rgb_and_one_channel_images_load(tmp_path):
    rgb = medmnist_source(breastmnist_npz(tmp_path / "rgb.npz", rgb=True), None, tmp_path / "w1")
    assert rgb.scan.classes == ["0", "1"] and len(rgb.scan.records) == sum(SIZES.values())
    one = breastmnist_npz(tmp_path / "one.npz", train_images=np.zeros((14, 28, 28, 1), np.uint8) + 7)
    assert read_medmnist(one)["train"][0].shape == (14, 28, 28)


def test_prepare_medmnist_keeps_the_official_splits(tmp_path):
    npz = breastmnist_npz(tmp_path / "breastmnist.npz")
    params = _params(**{"dataset.source": "medmnist", "dataset.path": str(npz), "dataset.name": "breastmnist",
                        "dataset.classes": ["malignant", "benign"], "dataset.positive": "malignant"})
    meta = prepare.prepare(params, tmp_path / "out")
    manifest = pd.read_csv(tmp_path / "out" / "manifest.csv")
    official = manifest["path"].str.extract(r":(\w+)_images\[")[0]
    assert (manifest["split"] == official).all() and meta["split_rule"] == "official"
    assert {s: n for s, n in manifest["split"].value_counts().items()} == SIZES
    prepared = load_prepared(tmp_path / "out")
    assert ((prepared.labels == 1) == (manifest["label"] == "malignant").to_numpy()).all()
    assert meta["root"] == str(npz) and meta["straddling_groups"] == 0
    card = meta["card"]  # found by dataset.name in datasets/; a random file is no known copy
    assert card["name"] == "breastmnist" and "Yang" in card["citation"] and card["licence"].startswith("CC BY 4.0")
    assert card["verification"]["status"] == "no match"
    assert "(another version" not in card["verification"]["detail"]  # 28 images, not 546/78/156
    assert "MedMNIST v2" in cards.card_line(card)


def test_prepare_medmnist_defaults_take_breastmnist_classes_from_its_card(tmp_path):
    """BreastMNIST's label 0 is malignant: with dataset.classes and .positive left at their defaults
    the positive class must be label 0's images, as the card says."""
    npz = breastmnist_npz(tmp_path / "breastmnist.npz")
    params = _params(**{"dataset.source": "medmnist", "dataset.path": str(npz), "dataset.name": "breastmnist"})
    assert params.dataset.classes is None and params.dataset.positive is None
    meta = prepare.prepare(params, tmp_path / "out")
    assert meta["classes"] == ["malignant", "benign"] and meta["positive"] == "malignant"
    prepared = load_prepared(tmp_path / "out")
    manifest = pd.read_csv(tmp_path / "out" / "manifest.csv")
    assert (manifest["id"] == prepared.ids).all()
    where = manifest["path"].str.extract(r":(\w+)_images\[(\d+)\]")
    raw = np.load(npz)
    label = np.array([raw[f"{split}_labels"][int(k), 0] for split, k in zip(where[0], where[1], strict=True)])
    assert ((prepared.labels == 1) == (label == 0)).all()  # positive (malignant) = label 0's images
    assert 0 < (prepared.labels == 1).sum() < len(label)


def test_prepare_medmnist_classes_that_disagree_with_the_card_stop_early(tmp_path):
    npz = breastmnist_npz(tmp_path / "breastmnist_128.npz")  # found by its file name among the card's copies
    params = _params(**{"dataset.source": "medmnist", "dataset.path": str(npz),
                        "dataset.classes": ["benign", "malignant"], "dataset.positive": "malignant"})
    with pytest.raises(ConfigError, match=r"dataset.classes.*disagrees with the dataset card .*breastmnist.yaml"):
        prepare.prepare(params, tmp_path / "out")
    assert not (tmp_path / "out" / "validation.json").exists()  # stopped before any work
    params = _params(**{"dataset.source": "medmnist", "dataset.path": str(npz), "dataset.positive": "benign"})
    with pytest.raises(ConfigError, match=r"dataset.positive.*disagrees with the dataset card"):
        prepare.prepare(params, tmp_path / "out")


def test_prepare_medmnist_without_a_card_needs_the_classes(tmp_path):
    npz = breastmnist_npz(tmp_path / "mine.npz")
    params = _params(**{"dataset.source": "medmnist", "dataset.path": str(npz), "dataset.name": "mine"})
    with pytest.raises(ConfigError, match=r"dataset.classes.*label k of .*mine.npz is named classes\[k\]"):
        prepare.prepare(params, tmp_path / "out")


def test_a_broken_card_stops_prepare_before_any_work(tmp_path):
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    params = _params(**{"dataset.card": str(tmp_path / "bad.yaml")})
    with pytest.raises(DataError, match="not valid YAML"):
        prepare.prepare(params, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_prepare_medmnist_reports_a_duplicate_across_official_splits(tmp_path):
    rng = np.random.default_rng(1)
    train, test = _noise(rng, SIZES["train"]), _noise(rng, SIZES["test"])
    test[1] = train[1]  # the same image (same label, 1) in train and test
    npz = breastmnist_npz(tmp_path / "b.npz", train_images=train, test_images=test)
    params = _params(**{"dataset.source": "medmnist", "dataset.path": str(npz), "dataset.classes": ["m", "b"],
                        "dataset.positive": "m", "dataset.name": "dup"})
    meta = prepare.prepare(params, tmp_path / "out")
    manifest = pd.read_csv(tmp_path / "out" / "manifest.csv").set_index("id")
    assert meta["straddling_groups"] == 1 and meta["validation"]["exact_duplicate_groups"] == 1
    assert manifest.loc["b/train-01", "split"] == "train" and manifest.loc["b/test-1", "split"] == "test"


def test_prepare_medmnist_refuses_repeated_kfold(tmp_path):
    npz = breastmnist_npz(tmp_path / "b.npz")
    params = _params(**{"dataset.source": "medmnist", "dataset.path": str(npz), "dataset.classes": ["m", "b"],
                        "dataset.positive": "m", "split.mode": "repeated-kfold", "split.folds": 2,
                        "split.repeats": 1, "matrix.seeds": [0, 1]})
    with pytest.raises(ConfigError, match="official train/val/test splits"):
        prepare.prepare(params, tmp_path / "out")


@pytest.mark.parametrize("replace, message", [
    ({"val_labels": None}, r"missing key\(s\) val_labels"),
    ({"train_images": np.zeros((14, 28), np.uint8)}, r"train_images has shape \(14, 28\), expected \(N, H, W\)"),
    ({"test_images": np.zeros((8, 28, 28), np.float32)}, "test_images has dtype float32, expected uint8"),
    ({"train_labels": np.zeros((14, 2), np.uint8)}, r"train_labels has shape \(14, 2\): 2 labels per image"),
    ({"val_labels": np.arange(6)[:, None] % 3}, r"val_labels takes the values \[0, 1, 2\]; augbench compares two"),
    ({"test_labels": np.zeros((7, 1), np.uint8)}, "test_labels has 7 labels for 8 images"),
    ({"train_images": np.zeros((0, 28, 28), np.uint8), "train_labels": np.zeros((0, 1), np.uint8)},
     "train_images holds no images"),
    ({"train_images": np.zeros((14, 4, 4), np.uint8)}, "smaller than the 8x8 minimum"),
])
def test_medmnist_errors_name_the_file_and_key(tmp_path, replace, message):
    npz = breastmnist_npz(tmp_path / "bad.npz", **replace)
    with pytest.raises(DataError, match=message) as info:
        medmnist_source(npz, None, tmp_path / "work")
    assert str(npz) in str(info.value)


def test_medmnist_other_errors(tmp_path):
    with pytest.raises(DataError, match="MedMNIST file not found"):
        read_medmnist(tmp_path / "none.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(DataError, match="not a readable .npz file"):
        read_medmnist(tmp_path / "text.npz")
    one_class = breastmnist_npz(tmp_path / "one.npz", **{f"{s}_labels": np.ones((n, 1), np.uint8)
                                                         for s, n in SIZES.items()})
    with pytest.raises(DataError, match=r"no image has label 0 \('malignant'\)"):
        medmnist_source(one_class, ["malignant", "benign"], tmp_path / "work")
    with pytest.raises(DataError, match="a MedMNIST file needs two"):
        medmnist_source(breastmnist_npz(tmp_path / "ok.npz"), ["a", "b", "c"], tmp_path / "work")


def test_dataset_params_check_the_path_kind():
    with pytest.raises(ConfigError, match="dataset.path: source is 'medmnist' but 'x.csv' is not a .npz file"):
        _params(**{"dataset.source": "medmnist", "dataset.path": "x.csv"})
    with pytest.raises(ConfigError, match="dataset.path: source is 'csv' but no path is given"):
        _params(**{"dataset.source": "csv"})


# -------------------------------------------------------------------------------------------- CSV

def csv_dataset(root: Path, patients=5, per_patient=2, seed=0) -> Path:
    """root/list.csv over root/imgs/*.png: per class ``patients`` patients with ``per_patient``
    noise images each; one benign image is a byte copy of another patient's (linking the two);
    one row has a third label; one row uses an absolute path."""
    rng = np.random.default_rng(seed)
    (root / "imgs").mkdir(parents=True)
    rows = []
    for label in ("benign", "malignant"):
        for p in range(patients):
            for k in range(per_patient):
                name = f"imgs/{label[0]}{p}_{k}.png"
                Image.fromarray(_noise(rng, 1, 24)[0]).save(root / name)
                rows.append({"path": name, "label": label, "patient": f"{label[0]}p{p}"})
    (root / "imgs" / "copy.png").write_bytes((root / "imgs" / "b0_0.png").read_bytes())
    rows.append({"path": "imgs/copy.png", "label": "benign", "patient": "bp1"})  # links bp0 and bp1
    Image.fromarray(_noise(rng, 1, 24)[0]).save(root / "imgs" / "n0.png")
    rows.append({"path": str(root / "imgs" / "n0.png"), "label": "normal", "patient": "np0"})
    rows[1]["path"] = str(root / rows[1]["path"])  # absolute: kept as written
    pd.DataFrame(rows).to_csv(root / "list.csv", index=False)
    return root / "list.csv"


def test_csv_source_resolves_paths_and_lists_other_labels(tmp_path):
    source = csv_source(csv_dataset(tmp_path / "ds"), ["benign", "malignant"])
    assert len(source.scan.records) == 21 and source.scan.classes == ["benign", "malignant"]
    assert all(Path(r.path).is_file() for r in source.scan.records)
    assert [s.reason for s in source.scan.skipped] == [
        "CSV line 23: label 'normal' is not in the class list (benign, malignant)"]
    assert source.groups["benign/imgs/b1_0.png"] == "bp1"
    rec = source.scan.records[1]
    assert source.location(rec) == str(tmp_path / "ds" / "imgs" / "b0_1.png")  # as written: absolute


def test_prepare_csv_keeps_patients_whole(tmp_path):
    csv = csv_dataset(tmp_path / "ds", patients=6)
    params = _params(**{"dataset.source": "csv", "dataset.path": str(csv), "dataset.name": "mine"})
    meta = prepare.prepare(params, tmp_path / "out")
    manifest = pd.read_csv(tmp_path / "out" / "manifest.csv")
    assert len(manifest) == 25 and set(manifest["split"]) == {"train", "val", "test"}
    assert manifest.groupby("group")["split"].nunique().max() == 1
    patient = manifest["path"].map(lambda p: Path(p).stem.split("_")[0])
    assert manifest.groupby(patient)["split"].nunique().max() == 1  # each patient in one split
    linked = manifest[manifest["path"].isin(["imgs/b0_0.png", "imgs/copy.png", "imgs/b1_1.png"])]
    assert linked["group"].nunique() == 1 and linked["group"].iloc[0] == "bp0+bp1"  # duplicate joins patients
    assert meta["card"] is None and meta["split_rule"] == "ratios"


@pytest.mark.parametrize("text, message", [
    ("file,label\na.png,benign\n", r"missing column\(s\) path; header has 'file', 'label'"),
    ("path,label\n", "has a header but no rows"),
    ("path,label\na.png,benign\na.png,malignant\n", r"line 3: 'a.png' is already listed on line 2"),
    ("path,label\na.png,\n", "line 2: empty label cell"),
    ("path,label,group,patient\na.png,benign,1,1\n", "has both a group and a patient column"),
    ("path,label\na.png,benign\nb.png,benign\n", r"no row has the label\(s\) 'malignant'"),
    ("path,label\nx/a.png,benign\nx/b.png,malignant\n", "none of the 2 listed files exists"),
])
def test_csv_errors_name_the_file_and_line(tmp_path, text, message):
    (tmp_path / "list.csv").write_text(text)
    with pytest.raises(DataError, match=message) as info:
        csv_source(tmp_path / "list.csv", ["benign", "malignant"])
    assert str(tmp_path / "list.csv") in str(info.value)


def test_csv_missing_files_hint_names_the_folder(tmp_path):
    (tmp_path / "list.csv").write_text("path,label\nx/a.png,benign\nx/b.png,malignant\n")
    with pytest.raises(DataError, match=f"relative paths resolve against the CSV's folder {tmp_path}"):
        csv_source(tmp_path / "list.csv", None)


def test_merge_groups_joins_components():
    ids = ["a", "b", "c", "d", "e"]
    patients = {"a": "p1", "b": "p1", "c": "p2", "d": "p3"}
    duplicates = {"a": "a", "b": "b", "c": "b", "d": "d", "e": "e"}  # b and c are duplicates
    assert merge_groups(ids, patients, duplicates) == ["p1+p2", "p1+p2", "p1+p2", "p3", "e"]
    assert straddling_groups(ids, ["g", "g", "h", "h", "i"], ["train", "test", "val", "val", "test"]) == [["a", "b"]]


# ------------------------------------------------------------------------------------------ cards

def test_the_repository_has_the_three_cards():
    assert {p.stem for p in CARDS} >= {"phantom", "busi", "breastmnist"}


@pytest.mark.parametrize("path", CARDS, ids=[p.stem for p in CARDS])
def test_every_card_parses_and_validates(path):
    card = cards.load_card(path)
    assert card.name == path.stem and card.citation and card.licence and card.known_defects
    params = card.dataset_params()  # the card's params.yaml section is a valid dataset section
    assert params.source in card.source.inputs and params.positive in params.classes
    assert cards.find_card(card.name.upper()).samefile(path)
    text = cards.card_text(card, path)
    assert card.title in text and "Known defects" in text


def _card_dict(**change) -> dict:
    data = yaml.safe_load((ROOT / "datasets" / "busi.yaml").read_text())
    data.update(change)
    return {k: v for k, v in data.items() if v is not None}


@pytest.mark.parametrize("change, message", [
    ({"licence": None}, "field licence: required parameter is missing"),
    ({"license": "CC0"}, "field license: unknown parameter.*did you mean 'licence'"),
    ({"classes": {"a": "only one"}}, "field classes: must name at least two classes"),
    ({"source": {"inputs": ["folders"], "url": "x"}}, "field source.inputs.0: 'folders' is not a dataset source.*folder"),
    ({"source": {"inputs": ["folder"]}}, "field source: needs a url .* or a generator"),
    ({"checksums": {"verify": "x", "copies": [{"description": "c", "file": "f", "md5": "XYZ"}]}},
     "field checksums.copies.0.md5: must be 32 lower-case hex digits"),
    ({"checksums": {"verify": "x", "copies": [{"description": "c", "counts": {"cats": 3}}]}},
     r"field checksums.copies.0.counts: \['cats'\] are not in classes"),
    ({"params": {"classes": ["benign", "malignant"], "positive": "normal"}}, "field params.positive"),
    ({"name": "other"}, "field name: 'other' differs from the file name 'busi'"),
])
def test_a_broken_card_gives_a_clear_error(tmp_path, change, message):
    path = tmp_path / "busi.yaml"
    path.write_text(yaml.safe_dump(_card_dict(**change)))
    with pytest.raises(DataError, match=message) as info:
        cards.load_card(path)
    assert str(path) in str(info.value)


def test_unreadable_cards_and_unknown_names(tmp_path):
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    with pytest.raises(DataError, match="not valid YAML"):
        cards.load_card(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(DataError, match="must be a mapping of fields, got list"):
        cards.load_card(tmp_path / "list.yaml")
    with pytest.raises(DataError, match="no dataset card with this name.*did you mean 'busi'"):
        cards.resolve_card("bussi")
    assert cards.find_card("nothing-like-this") is None


def _independent_digest(root: Path) -> str:
    """The manifest digest as the card format defines it, computed here with hashlib alone."""
    lines = sorted(f"{p.relative_to(root).as_posix()}\t{hashlib.sha256(p.read_bytes()).hexdigest()}\n"
                   for p in root.rglob("*.png"))
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def _two_class_folder(root: Path) -> Path:
    for label in ("benign", "malignant"):
        (root / label).mkdir(parents=True)
        Image.fromarray(np.full((16, 16), 50 if label == "benign" else 200, np.uint8)).save(root / label / "1.png")
    return root


def test_verify_copy_by_manifest_digest_and_md5(tmp_path):
    root = _two_class_folder(tmp_path / "folder")
    source = folder_source(root, None)
    digest = _independent_digest(root)
    assert cards.manifest_digest(source.scan, root) == ({"benign": 1, "malignant": 1}, digest)
    npz = breastmnist_npz(tmp_path / "b.npz")
    md5 = hashlib.md5(npz.read_bytes()).hexdigest()
    data = _card_dict(checksums={"verify": "x", "copies": [
        {"description": "mine", "manifest_sha256": digest, "counts": {"benign": 1, "malignant": 1}},
        {"description": "the npz", "file": "b.npz", "md5": md5}]})
    (tmp_path / "busi.yaml").write_text(yaml.safe_dump(data))
    card = cards.load_card(tmp_path / "busi.yaml")
    assert cards.verify_copy(card, source)["copy"] == "mine"
    assert cards.verify_copy(card, medmnist_source(npz, None, tmp_path / "w"))["status"] == "match"
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(root / "benign" / "1.png")  # altered
    assert cards.verify_copy(card, folder_source(root, None))["status"] == "no match"


def test_a_csv_input_is_checked_by_the_manifest_of_its_images(tmp_path):
    root = _two_class_folder(tmp_path / "images")
    listing = tmp_path / "images" / "list.csv"
    listing.write_text("path,label\nbenign/1.png,benign\nmalignant/1.png,malignant\n")
    source = csv_source(listing, None)
    data = _card_dict(checksums={"verify": "x", "copies": [
        {"description": "the csv text", "file": "list.csv", "md5": hashlib.md5(listing.read_bytes()).hexdigest()},
        {"description": "the images", "manifest_sha256": _independent_digest(root)}]})
    (tmp_path / "busi.yaml").write_text(yaml.safe_dump(data))
    found = cards.verify_copy(cards.load_card(tmp_path / "busi.yaml"), source)
    assert found["status"] == "match" and found["copy"] == "the images"  # not the CSV file's md5
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(root / "malignant" / "1.png")  # an image altered
    assert cards.verify_copy(cards.load_card(tmp_path / "busi.yaml"), csv_source(listing, None))["status"] == "no match"


def test_counts_alone_are_reported_as_counts_match_for_the_same_classes(tmp_path):
    source = folder_source(_two_class_folder(tmp_path / "folder"), None)
    copies = [{"description": "three classes", "counts": {"benign": 1, "malignant": 1, "normal": 4}},
              {"description": "two classes", "counts": {"benign": 1, "malignant": 1}}]
    (tmp_path / "busi.yaml").write_text(yaml.safe_dump(_card_dict(checksums={"verify": "x", "copies": copies})))
    found = cards.verify_copy(cards.load_card(tmp_path / "busi.yaml"), source)
    assert found["status"] == "counts match" and found["copy"] == "two classes"
    (tmp_path / "busi.yaml").write_text(yaml.safe_dump(_card_dict(checksums={"verify": "x", "copies": copies[:1]})))
    assert cards.verify_copy(cards.load_card(tmp_path / "busi.yaml"), source)["status"] == "no match"


def test_validate_command_shows_the_card_and_checks_the_copy(capsys, tmp_path):
    npz = breastmnist_npz(tmp_path / "breastmnist.npz")
    capsys.readouterr()
    assert main(["validate", str(npz), "--card", "breastmnist"]) == 0
    out = capsys.readouterr().out
    assert "# Dataset card: BreastMNIST (MedMNIST v2)" in out and "Licence: CC BY 4.0" in out
    assert "- This copy: no match (md5" in out
    assert "Image files found: 28 (malignant 10, benign 18)" in out  # classes from the card's params
    assert main(["validate", str(npz), "--card", "nope"]) == 2
    assert "no dataset card with this name" in capsys.readouterr().err
