"""Tests for bench.registry: register / list / get / create and entry-point discovery.

Every test that changes the registry works on a private copy of its state
(``isolated`` fixture), so the built-in plugins seen by other tests are untouched.
"""

from __future__ import annotations

import importlib.metadata as md
import sys
import textwrap
from dataclasses import dataclass

import numpy as np
import pytest

from bench import registry
from bench.errors import ConfigError, RegistryError
from bench.plugins import Augmenter, Classifier, Generated, ImageSet

BUILTIN_AUGMENTERS = {"none", "geometric-rotation", "geometric-scaling", "geometric-flipping",
                      "classical"}
GEOMETRIC = ["geometric-flipping", "geometric-rotation", "geometric-scaling"]

GOOD_MODULE = "augbench_testplug_good"
BROKEN_MODULE = "augbench_testplug_broken"


# --------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class DemoParams:
    strength: float = 1.0


class DemoAugmenter(Augmenter):
    Params = DemoParams
    summary = "test augmenter"

    def generate(self, train: ImageSet, n: int, rng: np.random.Generator) -> Generated:
        return Generated(np.zeros((0, 1, 1), np.float32), np.zeros(0, np.int64), [])


class OtherAugmenter(DemoAugmenter):
    """A different class, to collide with DemoAugmenter's name."""


class DemoClassifier(Classifier):
    Params = DemoParams


@pytest.fixture
def isolated(monkeypatch):
    """An empty registry that does not run discovery (tests register by hand)."""
    monkeypatch.setattr(registry, "_plugins", {kind: {} for kind in registry.GROUPS})
    monkeypatch.setattr(registry, "_failures", [])
    monkeypatch.setattr(registry, "_discovered", True)
    return registry


@dataclass
class FakeDist:
    name: str


class FakeEntryPoint:
    """Stand-in for importlib.metadata.EntryPoint with a distribution attached.

    ``load`` goes through a real EntryPoint, so the module is really imported.
    """

    def __init__(self, name: str, value: str, package: str | None, loads: list[str] | None = None):
        self.name = name
        self.value = value
        self.dist = FakeDist(package) if package else None
        self._loads = loads if loads is not None else []

    def load(self):
        self._loads.append(self.name)
        return md.EntryPoint(self.name, self.value, "augbench.augmenters").load()


@pytest.fixture
def plugin_modules(tmp_path, monkeypatch):
    """A good and a broken plugin module, importable from a folder on sys.path."""
    (tmp_path / f"{GOOD_MODULE}.py").write_text(textwrap.dedent('''
        from dataclasses import dataclass

        import numpy as np

        from bench.plugins import Augmenter, Generated


        @dataclass(frozen=True)
        class InvertParams:
            factor: int = 2


        class Invert(Augmenter):
            Params = InvertParams
            summary = "invert grey values"

            def generate(self, train, n, rng):
                src = np.arange(n) % len(train)
                return Generated(1.0 - train.images[src], train.labels[src], [])


        class OtherInvert(Invert):
            """Another class, for a name clash."""


        class NoGenerate:
            Params = InvertParams
        '''), encoding="utf-8")
    (tmp_path / f"{BROKEN_MODULE}.py").write_text(
        'raise ImportError("this plugin needs the optional package torch")\n', encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in (GOOD_MODULE, BROKEN_MODULE):
        sys.modules.pop(name, None)


def use_entry_points(monkeypatch, augmenters: list, classifiers: list | None = None) -> None:
    """Make discovery see only these entry points (in the given order), from a fresh start."""
    groups = {registry.GROUPS["augmenter"]: augmenters,
              registry.GROUPS["classifier"]: classifiers or []}
    monkeypatch.setattr(registry, "_entry_points", lambda group: list(groups[group]))
    monkeypatch.setattr(registry, "_discovered", False)


# ------------------------------------------------------------ built-in plugins


def test_builtins_listed_sorted():
    names = registry.list_plugins("augmenter")
    assert names == sorted(names)
    assert set(names) >= BUILTIN_AUGMENTERS
    assert "resnet50" in registry.list_plugins("classifier")
    assert "resnet50" not in names


def test_builtin_glob_filter():
    assert registry.list_plugins("augmenter", "geometric-*") == GEOMETRIC
    assert registry.list_plugins("augmenter", "*-rotation") == ["geometric-rotation"]
    assert registry.list_plugins("augmenter", "nothing-*") == []
    assert registry.list_plugins("classifier", "geometric-*") == []


def test_builtins_have_no_load_failures():
    assert registry.failures() == []


def test_get_builtin_classes():
    from methods.augment.classical import ClassicalAugmentation
    from methods.classify.resnet import ResNet50Classifier

    assert registry.get("augmenter", "classical") is ClassicalAugmentation
    assert registry.get("classifier", "resnet50") is ResNet50Classifier


def test_create_validates_and_converts_params():
    from methods.augment.geometric import GeometricRotation

    plugin = registry.create("augmenter", "geometric-rotation", max_angle=10)
    assert isinstance(plugin, GeometricRotation)
    assert plugin.params.max_angle == 10.0 and isinstance(plugin.params.max_angle, float)
    assert plugin.params.fill == "reflect"  # default kept
    clf = registry.create("classifier", "resnet50", epochs=3)
    assert clf.params.epochs == 3 and clf.params.batch_size == 32
    with pytest.raises(ConfigError) as err:
        registry.create("augmenter", "geometric-rotation", max_angle=0.0)
    assert err.value.key == "augmenter.geometric-rotation.max_angle"
    assert "(0, 180]" in str(err.value)


def test_params_for_defaults_and_values():
    p = registry.params_for("augmenter", "classical", {"factor": 3, "brightness_range": [0.5, 1.5]})
    assert p.factor == 3
    assert p.brightness_range == (0.5, 1.5)  # list from YAML becomes the annotated tuple
    assert p.rotation_range == 5.0
    assert registry.params_for("augmenter", "classical") == registry.get("augmenter", "classical").Params()


def test_params_for_unknown_key_has_path_and_suggestion():
    with pytest.raises(ConfigError) as err:
        registry.params_for("augmenter", "geometric-rotation", {"max_angel": 10})
    assert err.value.key == "augmenter.geometric-rotation.max_angel"
    assert "unknown parameter" in str(err.value)
    assert "did you mean 'max_angle'?" in str(err.value)
    # An explicit path (as config.py passes) is used instead of kind.name.
    with pytest.raises(ConfigError) as err:
        registry.params_for("classifier", "resnet50", {"epoch": 3}, path="train.classifiers.resnet50")
    assert str(err.value).startswith("params: train.classifiers.resnet50.epoch: unknown parameter")
    assert "did you mean 'epochs'?" in str(err.value)


def test_params_for_wrong_type_names_the_key():
    with pytest.raises(ConfigError) as err:
        registry.params_for("augmenter", "geometric-scaling", {"factor": "5"})
    assert err.value.key == "augmenter.geometric-scaling.factor"
    assert "expected int, got str '5'" in str(err.value)


def test_unknown_name_suggests_close_match():
    with pytest.raises(RegistryError) as err:
        registry.get("augmenter", "geometric-rotaton")
    assert "unknown augmenter 'geometric-rotaton'" in str(err.value)
    assert "did you mean 'geometric-rotation'" in str(err.value)
    with pytest.raises(RegistryError, match=r"did you mean 'resnet50'"):
        registry.get("classifier", "resnet5")


def test_unknown_name_without_close_match_lists_known():
    with pytest.raises(RegistryError) as err:
        registry.get("augmenter", "zzzz")
    msg = str(err.value)
    assert "known: " in msg
    assert all(name in msg for name in BUILTIN_AUGMENTERS)


def test_unknown_kind():
    for call in (lambda: registry.list_plugins("augmentor"), lambda: registry.get("augmentor", "none"),
                 lambda: registry.register("augmentor", "x", DemoAugmenter)):
        with pytest.raises(RegistryError, match="unknown plugin kind 'augmentor'"):
            call()


# --------------------------------------------------------------- registration


def test_register_list_sorted_and_glob(isolated):
    for name in ("zeta", "geo-b", "alpha", "geo-a", "Geo-c"):
        registry.register("augmenter", name, DemoAugmenter)
    assert registry.list_plugins("augmenter") == ["Geo-c", "alpha", "geo-a", "geo-b", "zeta"]
    assert registry.list_plugins("augmenter", "geo-*") == ["geo-a", "geo-b"]  # case-sensitive
    assert registry.list_plugins("augmenter", "[az]*") == ["alpha", "zeta"]
    assert registry.list_plugins("augmenter", "geo-?") == ["geo-a", "geo-b"]
    assert registry.list_plugins("classifier") == []


def test_register_same_object_twice_is_fine(isolated):
    assert registry.register("augmenter", "demo", DemoAugmenter) is DemoAugmenter
    assert registry.register("augmenter", "demo", DemoAugmenter) is DemoAugmenter
    assert registry.list_plugins("augmenter") == ["demo"]


def test_register_taken_name_raises_and_keeps_first(isolated):
    registry.register("augmenter", "demo", DemoAugmenter)
    with pytest.raises(RegistryError) as err:
        registry.register("augmenter", "demo", OtherAugmenter)
    msg = str(err.value)
    assert "'demo' is already registered by" in msg
    assert "DemoAugmenter" in msg and "OtherAugmenter" in msg
    assert registry.get("augmenter", "demo") is DemoAugmenter
    # The same name in the other kind is a different namespace.
    registry.register("classifier", "demo", DemoClassifier)
    assert registry.get("classifier", "demo") is DemoClassifier


def test_register_refuses_incomplete_plugins(isolated):
    class NoGenerate:
        Params = DemoParams

    class NoParams:
        def generate(self, train, n, rng):
            raise NotImplementedError

    class Nothing:
        pass

    with pytest.raises(RegistryError, match="lacks generate"):
        registry.register("augmenter", "a", NoGenerate)
    with pytest.raises(RegistryError, match="lacks Params$"):
        registry.register("augmenter", "b", NoParams)
    with pytest.raises(RegistryError, match="lacks Params, generate"):
        registry.register("augmenter", "c", Nothing)
    with pytest.raises(RegistryError, match="classifier 'd'.*lacks build"):
        registry.register("classifier", "d", NoGenerate)
    assert registry.list_plugins("augmenter") == [] and registry.list_plugins("classifier") == []


def test_unregister(isolated):
    registry.register("augmenter", "demo", DemoAugmenter)
    registry.unregister("augmenter", "demo")
    registry.unregister("augmenter", "never-registered")  # no error
    assert registry.list_plugins("augmenter") == []
    with pytest.raises(RegistryError, match="unknown augmenter 'demo'"):
        registry.get("augmenter", "demo")


def test_registered_plugin_is_created_with_validated_params(isolated):
    registry.register("augmenter", "demo", DemoAugmenter)
    plugin = registry.create("augmenter", "demo", strength=2)
    assert isinstance(plugin, DemoAugmenter) and plugin.params == DemoParams(strength=2.0)
    with pytest.raises(ConfigError, match=r"augmenter\.demo\.strenght: unknown parameter"):
        registry.create("augmenter", "demo", strenght=2)


def test_real_registry_restored_after_isolated_tests():
    # Runs after the tests above (file order): the built-ins are still there, the demos are not.
    assert set(registry.list_plugins("augmenter")) >= BUILTIN_AUGMENTERS
    assert "demo" not in registry.list_plugins("augmenter")


# ----------------------------------------------------------------- discovery


def test_discovery_order_is_sorted(isolated, plugin_modules, monkeypatch):
    loads: list[str] = []
    value = f"{GOOD_MODULE}:Invert"
    unsorted = [FakeEntryPoint(name, value, "augbench-extra", loads) for name in ("m-c", "m-a", "m-b")]
    # Patch the metadata lookup itself, so the real _entry_points does the sorting.
    monkeypatch.setattr(registry.md, "entry_points",
                        lambda group: unsorted if group == "augbench.augmenters" else [])
    monkeypatch.setattr(registry, "_discovered", False)
    assert registry.list_plugins("augmenter", "m-*") == ["m-a", "m-b", "m-c"]
    assert loads == ["m-a", "m-b", "m-c"]


def test_discovery_reports_broken_plugin_and_keeps_the_others(isolated, plugin_modules, monkeypatch):
    loads: list[str] = []
    broken = FakeEntryPoint("fancy-gan", f"{BROKEN_MODULE}:FancyGAN", "augbench-gan", loads)
    good = FakeEntryPoint("invert", f"{GOOD_MODULE}:Invert", "augbench-invert", loads)
    use_entry_points(monkeypatch, [broken, good])

    with pytest.warns(RuntimeWarning) as record:
        names = registry.list_plugins("augmenter")
    assert names == ["invert"]
    assert loads == ["fancy-gan", "invert"]
    messages = [str(w.message) for w in record if issubclass(w.category, RuntimeWarning)]
    assert any("'fancy-gan'" in m and "'augbench-gan'" in m for m in messages)

    failures = registry.failures()
    assert len(failures) == 1
    f = failures[0]
    assert (f.kind, f.name, f.package) == ("augmenter", "fancy-gan", "augbench-gan")
    assert f.error == "ImportError: this plugin needs the optional package torch"
    assert str(f) == ("augmenter 'fancy-gan' from package 'augbench-gan' failed to load: "
                      "ImportError: this plugin needs the optional package torch")

    good_cls = registry.get("augmenter", "invert")
    assert good_cls.__module__ == GOOD_MODULE and good_cls.__name__ == "Invert"
    train = ImageSet(np.full((2, 4, 4), 0.25, np.float32), np.array([0, 1]), ["a", "b"])
    out = registry.create("augmenter", "invert").generate(train, 3, np.random.default_rng(0))
    assert np.allclose(out.images, 0.75) and out.labels.tolist() == [0, 1, 0]

    with pytest.raises(RegistryError) as err:
        registry.get("augmenter", "fancy-gan")
    assert "from package 'augbench-gan' failed to load" in str(err.value)
    assert "torch" in str(err.value)

    # Discovery runs once: a second query neither reloads nor warns again.
    assert registry.list_plugins("augmenter") == ["invert"]
    assert loads == ["fancy-gan", "invert"]


def test_discovery_without_dist_reports_unknown_package(isolated, plugin_modules, monkeypatch):
    use_entry_points(monkeypatch, [FakeEntryPoint("x", f"{BROKEN_MODULE}:X", None)])
    with pytest.warns(RuntimeWarning, match="package '<unknown>'"):
        assert registry.failures()[0].package == "<unknown>"


def test_discovery_invalid_plugin_does_not_take_the_others_down(isolated, plugin_modules, monkeypatch):
    # A third-party class lacking generate() is reported like an import failure; the
    # plugins after it in sorted order still load, and a second query sees them too.
    bad = FakeEntryPoint("aaa-incomplete", f"{GOOD_MODULE}:NoGenerate", "augbench-bad")
    good = FakeEntryPoint("invert", f"{GOOD_MODULE}:Invert", "augbench-invert")
    use_entry_points(monkeypatch, [bad, good])
    with pytest.warns(RuntimeWarning, match="lacks generate"):
        assert registry.list_plugins("augmenter") == ["invert"]
    assert registry.list_plugins("augmenter") == ["invert"]
    assert [(f.name, f.package) for f in registry.failures()] == [("aaa-incomplete", "augbench-bad")]
    with pytest.raises(RegistryError, match="augbench-bad"):
        registry.get("augmenter", "aaa-incomplete")


def test_discovery_name_clash_between_packages_is_reported(isolated, plugin_modules, monkeypatch):
    # The same name and target twice (one distribution seen twice on sys.path) is loaded once;
    # the same name for another target, from another package, is reported, never silently dropped.
    loads: list[str] = []
    first = FakeEntryPoint("invert", f"{GOOD_MODULE}:Invert", "augbench-invert", loads)
    again = FakeEntryPoint("invert", f"{GOOD_MODULE}:Invert", "augbench-invert", loads)
    other = FakeEntryPoint("invert", f"{GOOD_MODULE}:OtherInvert", "augbench-other", loads)
    use_entry_points(monkeypatch, [first, again, other])
    with pytest.warns(RuntimeWarning, match="already registered"):
        assert registry.list_plugins("augmenter") == ["invert"]
    assert loads == ["invert", "invert"]  # first and other; the exact repeat is skipped
    assert registry.get("augmenter", "invert").__module__ == GOOD_MODULE
    [failure] = registry.failures()
    assert failure.package == "augbench-other" and "already registered" in failure.error


def test_discover_force_clears_old_failures(isolated, plugin_modules, monkeypatch):
    use_entry_points(monkeypatch, [FakeEntryPoint("x", f"{BROKEN_MODULE}:X", "augbench-x")])
    with pytest.warns(RuntimeWarning):
        assert len(registry.failures()) == 1
    use_entry_points(monkeypatch, [FakeEntryPoint("invert", f"{GOOD_MODULE}:Invert", "augbench-invert")])
    registry.discover(force=True)
    assert registry.failures() == []
    assert registry.list_plugins("augmenter") == ["invert"]


def test_real_entry_points_are_sorted():
    for group in registry.GROUPS.values():
        eps = registry._entry_points(group)
        keys = [(ep.name, ep.value) for ep in eps]
        assert keys == sorted(keys)
    names = {ep.name for ep in registry._entry_points("augbench.augmenters")}
    assert names >= BUILTIN_AUGMENTERS
