"""Tests for bench.config and bench.typed: params.yaml loading, profiles, overrides, validation.

Invalid variants are built from the repository's own params.yaml (loaded with yaml,
edited, written to tmp_path), so the tests follow the real file's structure.
"""

from __future__ import annotations

import copy
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
import yaml

from bench.config import (
    PROFILES,
    Params,
    deep_merge,
    load_params,
    params_record,
    parse_overrides,
    resolve,
)
from bench.errors import ConfigError, RegistryError
from bench.typed import describe_fields, from_dict, suggest, to_dict

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(PARAMS.read_text(encoding="utf-8"))


def set_in(data: dict, dotted: str, value) -> None:
    """Set ``a.b.c`` in nested dicts, creating sections as needed."""
    *parents, last = dotted.split(".")
    for key in parents:
        data = data.setdefault(key, {})
    data[last] = value


def write_variant(tmp_path: Path, raw: dict, changes: dict) -> Path:
    """params.yaml with ``changes`` ({dotted key: value}) applied, written to tmp_path."""
    data = copy.deepcopy(raw)
    for dotted, value in changes.items():
        set_in(data, dotted, value)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


# ------------------------------------------------------------- the real file


@pytest.mark.parametrize("profile", PROFILES)
def test_repo_params_load_for_every_profile(profile, raw):
    params = load_params(PARAMS, profile)  # validates every plugin section too
    assert isinstance(params, Params)
    assert params.profile == profile
    own = ((raw["profiles"].get(profile) or {}).get("matrix") or {}).get("methods")  # the paper profile lists its own
    assert set(params.matrix.methods) == set(own or raw["matrix"]["methods"])
    for name in params.matrix.methods:
        params.method_params(name)
    for name in params.matrix.classifiers:
        assert params.classifier_params(name).epochs >= 1


def test_repo_default_profile_is_the_files_profile_key(raw):
    assert load_params(PARAMS).profile == raw["profile"]


@pytest.mark.parametrize("profile", PROFILES)
def test_profile_overrides_the_base(profile, raw):
    params = load_params(PARAMS, profile)
    over = raw["profiles"][profile]
    assert params.preprocess.image_size == over["preprocess"]["image_size"]
    resnet = params.classifier_params("resnet50")
    assert resnet.epochs == over["train"]["classifiers"]["resnet50"]["epochs"]
    # Keys the profile does not mention keep the base value (deep merge, not replace).
    base_resnet = raw["train"]["classifiers"]["resnet50"]
    assert resnet.momentum == base_resnet["momentum"]
    assert resnet.batch_size == over["train"]["classifiers"]["resnet50"].get(
        "batch_size", base_resnet["batch_size"])
    assert params.split.ratios == tuple(raw["split"]["ratios"])


def test_profiles_really_differ(raw):
    sizes = {p: load_params(PARAMS, p).preprocess.image_size for p in PROFILES}
    assert sizes["smoke"] != raw["preprocess"]["image_size"]
    epochs = {p: load_params(PARAMS, p).classifier_params("resnet50").epochs for p in PROFILES}
    assert len(set(epochs.values())) == 3
    assert sizes["paper"] == 224  # Panigrahi et al. 2024 / ImageNet input size
    smoke = load_params(PARAMS, "smoke")
    assert smoke.phantom.n_per_class == raw["profiles"]["smoke"]["phantom"]["n_per_class"]
    assert smoke.phantom.difficulty == raw["phantom"]["difficulty"]  # not in the profile
    assert smoke.method_params("classical").factor == 2
    assert load_params(PARAMS, "paper").classifier_params("resnet50").weights == "imagenet"


def test_params_record_is_plain_yaml_and_json(raw):
    record = params_record(load_params(PARAMS, "smoke"))
    assert record["profile"] == "smoke"
    assert record["preprocess"]["image_size"] == raw["profiles"]["smoke"]["preprocess"]["image_size"]
    json.dumps(record)
    assert yaml.safe_load(yaml.safe_dump(record))["matrix"] == record["matrix"]


# ---------------------------------------------------------------- merging


def test_deep_merge_recurses_replaces_lists_and_does_not_mutate():
    base = {"a": {"b": 1, "c": {"d": 2, "e": 3}}, "lst": [1, 2, 3], "keep": "x"}
    over = {"a": {"c": {"d": 20}}, "lst": [9], "new": {"k": 1}}
    before = copy.deepcopy(base), copy.deepcopy(over)
    out = deep_merge(base, over)
    assert out == {"a": {"b": 1, "c": {"d": 20, "e": 3}}, "lst": [9], "keep": "x", "new": {"k": 1}}
    assert (base, over) == before
    out["a"]["c"]["e"] = 99
    assert base["a"]["c"]["e"] == 3  # a deep copy, not shared sections
    assert deep_merge(base, None) == base


def test_resolve_picks_profile_and_drops_profiles_section(raw):
    merged = resolve(raw, "smoke")
    assert merged["profile"] == "smoke" and "profiles" not in merged
    assert merged["preprocess"]["image_size"] == raw["profiles"]["smoke"]["preprocess"]["image_size"]
    assert merged["preprocess"]["srad_dt"] == raw["preprocess"]["srad_dt"]


def test_empty_profile_means_the_base(tmp_path, raw):
    path = write_variant(tmp_path, raw, {"profiles.bare": None, "profile": "bare"})
    params = load_params(path)
    assert params.profile == "bare"
    assert params.preprocess.image_size == raw["preprocess"]["image_size"]
    assert params.classifier_params("resnet50").epochs == raw["train"]["classifiers"]["resnet50"]["epochs"]


# ----------------------------------------------------------- invalid params
# (unknown keys and names, wrong types, out-of-range values, unknown profiles: see
# tests/reliability/test_params.py)


def test_plugin_validation_can_be_skipped(tmp_path, raw):
    path = write_variant(tmp_path, raw, {"matrix.methods": ["none", "not-installed-yet"]})
    params = load_params(path, validate_plugins=False)
    assert params.matrix.methods == ["none", "not-installed-yet"]


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_params(tmp_path / "nope.yaml")
    assert err.value.key == str(tmp_path / "nope.yaml") and "file not found" in str(err.value)
    bad = tmp_path / "bad.yaml"
    bad.write_text("matrix: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="<root>"):
        load_params(listed)


# ------------------------------------------------------------------ overrides


def test_parse_overrides_reads_yaml_values():
    out = parse_overrides([
        "train.classifiers.resnet50.epochs=3",
        "split.ratios=[0.8, 0.1, 0.1]",
        "dataset.path=null",
        "preprocess.srad=true",
        "dataset.name = busi ",
        "dataset.classes=[a, b]",
        "evaluate.threshold=0.25",
        "augment.methods.classical={factor: 2}",
        "dataset.positive=x=y",
        "phantom.seed='7'",
    ])
    assert out == {
        "train": {"classifiers": {"resnet50": {"epochs": 3}}},
        "split": {"ratios": [0.8, 0.1, 0.1]},
        "dataset": {"path": None, "name": "busi", "classes": ["a", "b"], "positive": "x=y"},
        "preprocess": {"srad": True},
        "evaluate": {"threshold": 0.25},
        "augment": {"methods": {"classical": {"factor": 2}}},
        "phantom": {"seed": "7"},
    }
    assert parse_overrides(None) == {} and parse_overrides([]) == {}


@pytest.mark.parametrize("item,key,text", [
    ("train.classifiers.resnet50.epochs", "train.classifiers.resnet50.epochs", "key.path=value"),
    ("=3", "=3", "empty key"),
    ("a..b=1", "a..b=1", "empty key"),
    ("split.ratios=[0.8, 0.1", "split.ratios", "is not valid YAML"),
    ("dataset.name={a: 1", "dataset.name", "is not valid YAML"),
])
def test_malformed_override_raises(item, key, text):
    with pytest.raises(ConfigError) as err:
        parse_overrides([item])
    assert err.value.key == key
    assert text in str(err.value)


def test_conflicting_overrides_raise():
    with pytest.raises(ConfigError, match="is not a section"):
        parse_overrides(["phantom=1", "phantom.size=64"])


def test_overrides_beat_profile_and_base():
    params = load_params(PARAMS, "smoke", ["train.classifiers.resnet50.epochs=3",
                                           "preprocess.image_size=40", "split.ratios=[0.8, 0.1, 0.1]"])
    assert params.classifier_params("resnet50").epochs == 3
    assert params.preprocess.image_size == 40
    assert params.split.ratios == (0.8, 0.1, 0.1)
    assert params.profile == "smoke"


@pytest.mark.parametrize("item,key,text", [
    ("train.classifiers.resnet50.epoch=3", "train.classifiers.resnet50.epoch", "did you mean 'epochs'?"),
    ("preprocess.image_size=big", "preprocess.image_size", "expected int, got str 'big'"),
    ("preprocess.image_size='48'", "preprocess.image_size", "expected int, got str '48'"),
    ("split.ratios=[0.5, 0.1, 0.1]", "split.ratios", "must sum to 1"),
    ("dataset=3", "dataset", "expected a mapping"),
])
def test_invalid_override_value_names_the_key(item, key, text):
    with pytest.raises(ConfigError) as err:
        load_params(PARAMS, "smoke", [item])
    assert err.value.key == key
    assert text in str(err.value)


# ------------------------------------------------------- from_dict / to_dict


@pytest.mark.parametrize("profile", PROFILES)
def test_params_round_trip(profile):
    params = load_params(PARAMS, profile)
    plain = to_dict(params)
    assert plain["split"]["ratios"] == list(params.split.ratios)  # tuples become lists
    again = from_dict(Params, plain)
    assert again == params
    assert to_dict(again) == plain
    assert from_dict(Params, yaml.safe_load(yaml.safe_dump(plain))) == params


def test_plugin_params_round_trip():
    from methods.augment.classical import ClassicalParams
    from methods.augment.geometric import FlippingParams

    p = ClassicalParams(factor=3, brightness_range=(0.5, 1.5), horizontal_flip=True)
    plain = to_dict(p)
    assert plain["brightness_range"] == [0.5, 1.5]
    assert from_dict(ClassicalParams, plain) == p
    f = FlippingParams(flips=["vertical"])
    assert from_dict(FlippingParams, to_dict(f)) == f


@dataclass(frozen=True)
class Inner:
    level: int = 1


@dataclass(frozen=True)
class Demo:
    mode: Literal["a", "b"] = "a"
    size: int | None = None
    name: typing.Optional[str] = None  # noqa: UP045 - typing.Optional is handled separately
    either: typing.Union[int, str] = 0  # noqa: UP007
    pair: tuple[int, float] = (1, 2.0)
    tags: list[Literal["x", "y"]] = field(default_factory=list)
    scale: float = 1.0
    inner: Inner = field(default_factory=Inner)
    table: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Required:
    needed: int
    other: int = 0


def test_literal_values():
    assert from_dict(Demo, {"mode": "b"}).mode == "b"
    with pytest.raises(ConfigError) as err:
        from_dict(Demo, {"mode": "c"}, "demo")
    assert err.value.key == "demo.mode" and "'c' is not one of ['a', 'b']" in str(err.value)
    assert from_dict(Demo, {"tags": ["y", "x"]}).tags == ["y", "x"]
    with pytest.raises(ConfigError, match=r"'z' is not one of \['x', 'y'\]") as err:
        from_dict(Demo, {"tags": ["x", "z"]}, "demo")
    assert err.value.key == "demo.tags.1"


@pytest.mark.parametrize("key", ["size", "name"])
def test_optional_accepts_none_and_the_type(key):
    assert getattr(from_dict(Demo, {key: None}), key) is None
    good = 3 if key == "size" else "three"
    assert getattr(from_dict(Demo, {key: good}), key) == good
    bad = "3" if key == "size" else 3
    with pytest.raises(ConfigError) as err:
        from_dict(Demo, {key: bad}, "demo")
    assert err.value.key == f"demo.{key}"
    want = "int" if key == "size" else "str"
    assert f"expected {want}, got {type(bad).__name__}" in str(err.value)


def test_union_without_none():
    assert from_dict(Demo, {"either": 5}).either == 5
    assert from_dict(Demo, {"either": "five"}).either == "five"
    with pytest.raises(ConfigError) as err:
        from_dict(Demo, {"either": None}, "demo")
    assert "expected int" in str(err.value) and "expected str" in str(err.value)


def test_scalars_tuples_nested_and_mappings():
    d = from_dict(Demo, {"pair": [3, 4], "scale": 2, "inner": {"level": 5}, "table": {"a": 1}})
    assert d.pair == (3, 4.0) and isinstance(d.pair, tuple) and isinstance(d.pair[1], float)
    assert d.scale == 2.0 and isinstance(d.scale, float)
    assert d.inner == Inner(5) and d.table == {"a": 1}
    for raw_value, key, text in ((["1", 2], "demo.pair.0", "expected int"),
                                 ((1, 2, 3), "demo.pair", "expected 2 items, got 3")):
        with pytest.raises(ConfigError) as err:
            from_dict(Demo, {"pair": raw_value}, "demo")
        assert err.value.key == key and text in str(err.value)
    with pytest.raises(ConfigError) as err:
        from_dict(Demo, {"inner": {"levl": 2}}, "demo")
    assert err.value.key == "demo.inner.levl" and "did you mean 'level'?" in str(err.value)
    with pytest.raises(ConfigError, match="expected int, got str '1'") as err:
        from_dict(Demo, {"table": {"a": "1"}}, "demo")
    assert err.value.key == "demo.table.a"
    with pytest.raises(ConfigError, match="expected float, got bool True"):
        from_dict(Demo, {"scale": True})


def test_from_dict_edge_cases():
    d = Demo()
    assert from_dict(Demo, d) is d
    assert from_dict(Demo, None) == Demo()
    with pytest.raises(ConfigError) as err:
        from_dict(Demo, ["mode", "a"], "demo")
    assert err.value.key == "demo" and "expected a mapping, got list" in str(err.value)
    with pytest.raises(ConfigError) as err:
        from_dict(Required, {"other": 1}, "req")
    assert err.value.key == "req.needed" and "required parameter is missing" in str(err.value)
    with pytest.raises(ConfigError) as err:
        from_dict(Demo, {"zzzzzz": 1}, "demo")
    assert "known: either, inner, mode, name, pair, scale, size, table, tags" in str(err.value)


def test_suggest():
    assert suggest("epoch", ["epochs", "batch_size"]) == "did you mean 'epochs'?"
    assert suggest("qqq", ["epochs"]) == ""


def test_describe_fields_shows_types_defaults_and_sources():
    rows = {r["name"]: r for r in describe_fields(Demo)}
    assert rows["scale"]["type"] == "float" and rows["scale"]["default"] == 1.0
    assert rows["mode"]["type"] == "Literal['a', 'b']"  # allowed values are shown
    assert rows["size"]["type"] == "int | None"
    assert rows["tags"]["default"] == []
    assert describe_fields(Required)[0]["default"] == "<required>"
    from methods.augment.classical import FEDORUK, ClassicalParams

    rows = {r["name"]: r for r in describe_fields(ClassicalParams)}
    assert rows["rotation_range"]["source"] == FEDORUK
    assert rows["brightness_range"]["type"] == "tuple[float, float]"


def test_typo_in_inactive_profile_fails_at_load(tmp_path):
    raw = yaml.safe_load(PARAMS.read_text())
    raw["profiles"]["paper"]["preprocess"]["imgae_size"] = 224
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as err:
        load_params(path, "smoke")
    assert "profiles.paper" in str(err.value) and "imgae_size" in str(err.value)


def test_exponent_without_dot_is_a_float():
    """YAML 1.1 reads `1e-3` as a string; a float parameter still accepts it."""
    params = load_params(PARAMS, "smoke", ["train.classifiers.resnet50.learning_rate=1e-3"])
    assert params.classifier_params("resnet50").learning_rate == pytest.approx(1e-3)


def test_phantom_only_has_benign_and_malignant():
    with pytest.raises(ConfigError, match="dataset.classes"):
        load_params(PARAMS, "smoke", ["dataset.classes=[benign, normal]", "dataset.positive=benign"])


def test_plugin_typo_in_inactive_profile_fails(tmp_path):
    raw = yaml.safe_load(PARAMS.read_text())
    raw["profiles"]["paper"]["train"]["classifiers"]["resnet50"]["epoch"] = 20
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="profiles.paper"):
        load_params(path, "quick")


# ------------------------------------------------------------- classifier variants and the zoo


def test_variant_inherits_its_plugin_section_and_overrides(tmp_path, raw):
    path = write_variant(tmp_path, raw, {
        "train.classifiers.resnet50-fe": {"classifier": "resnet50", "transfer": "feature-extraction"},
        "train.classifiers.resnet50.batch_size": 7,
        "profiles.quick.matrix": {"zoo": ["resnet50-fe"]}})
    params = load_params(path)
    assert params.classifier_plugin("resnet50-fe") == "resnet50"
    assert params.classifier_plugin("resnet50") == "resnet50"
    fe, base = params.classifier_params("resnet50-fe"), params.classifier_params("resnet50")
    assert fe.transfer == "feature-extraction" and base.transfer == "finetune-all"
    assert fe.batch_size == base.batch_size == 7  # inherited
    assert fe.epochs == base.epochs  # the quick profile's value reaches the variant too
    assert ("none", "resnet50-fe") in params.matrix.pairs()


@pytest.mark.parametrize(("changes", "key", "text"), [
    ({"train.classifiers.r50x": {"classifier": "resnet5O"}}, "train.classifiers.r50x", "resnet50"),
    ({"train.classifiers.r50x": {"classifier": "resnet50", "transfr": "feature-extraction"}},
     "train.classifiers.r50x", "transfer"),
    ({"train.classifiers.r50x": {"classifier": "resnet50", "transfer": "fine-tune"}},
     "train.classifiers.r50x.transfer", "finetune-all"),
    ({"matrix.zoo": ["resnet50"]}, "matrix.zoo", "already in matrix.classifiers"),
    ({"matrix.zoo": ["inceptionv9"]}, "matrix.zoo.0", "inceptionv9"),
    ({"matrix.zoo": ["r50x"], "matrix.methods": ["classical"],
      "train.classifiers.r50x": {"classifier": "resnet50"}}, "matrix.zoo", "'none'"),
    ({"train.classifiers.a": {"classifier": "resnet50"}, "train.classifiers.b": {"classifier": "a"}},
     "train.classifiers.b.classifier", "itself a variant"),
])
def test_bad_variants_name_the_key(tmp_path, raw, changes, key, text):
    data = copy.deepcopy(raw)
    data["profiles"] = {name: {k: v for k, v in (prof or {}).items() if k != "matrix"}
                        for name, prof in raw["profiles"].items()}  # the base matrix decides here
    path = write_variant(tmp_path, data, changes)
    with pytest.raises((ConfigError, RegistryError)) as info:
        load_params(path)
    assert key in str(info.value) and text in str(info.value)


# ------------------------------------------------------- phantom sets, subsample, explanations


def test_phantom_sets_are_off_by_default_and_counted_when_set():
    ph = load_params(PARAMS, "smoke").phantom
    assert not ph.has_sets and ph.per_split() is None
    assert ph.total_per_class() == ph.n_per_class and ph.describe() == f"{ph.n_per_class} per class"
    ph = load_params(PARAMS, "smoke", ["phantom.n_per_class=3", "phantom.val_per_class=5",
                                       "phantom.test_per_class=7"]).phantom  # < 10 is fine with own sets
    assert ph.has_sets and ph.per_split() == {"train": 3, "val": 5, "test": 7}
    assert ph.total_per_class() == 15 and ph.describe() == "3 train + 5 val + 7 test per class"


@pytest.mark.parametrize("items,key,text", [
    (["phantom.val_per_class=5"], "phantom.test_per_class", "must be set when val_per_class is"),
    (["phantom.test_per_class=5"], "phantom.val_per_class", "must be set when test_per_class is"),
    (["phantom.val_per_class=0", "phantom.test_per_class=5"], "phantom.val_per_class", "must be >= 1"),
    (["phantom.val_per_class=5", "phantom.test_per_class=0"], "phantom.test_per_class", "must be >= 1"),
    (["phantom.n_per_class=0", "phantom.val_per_class=5", "phantom.test_per_class=5"], "phantom.n_per_class",
     "must be >= 1"),
    (["phantom.n_per_class=9"], "phantom.n_per_class", "must be at least 10"),  # ratio split: as before
    (["train.explain_images=0"], "train.explain_images", "must be >= 1 or null"),
    (["pseudolabel.max_per_class=3"], "pseudolabel.max_per_class", "must be >= 2 × folds = 4"),  # smoke: 2 folds
])
def test_phantom_sets_subsample_and_explain_images_are_validated(items, key, text):
    with pytest.raises(ConfigError) as err:
        load_params(PARAMS, "smoke", items)
    assert err.value.key == key and text in str(err.value)


def test_subsample_and_explain_images_default_to_everything():
    params = load_params(PARAMS, "smoke")
    assert params.pseudolabel.max_per_class is None and params.train.explain_images is None
    params = load_params(PARAMS, "smoke", ["pseudolabel.max_per_class=4", "train.explain_images=1"])
    assert params.pseudolabel.max_per_class == 4 and params.train.explain_images == 1
