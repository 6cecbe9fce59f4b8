"""The plugin registry: register / list / get / create, with entry-point discovery.

Built-in methods and third-party packages register the same way, through the
entry-point groups ``augbench.augmenters`` and ``augbench.classifiers``
(pyproject.toml). Discovery is sorted by name; a plugin that fails to import is
reported with its distribution name and does not take the others down.
"""

from __future__ import annotations

import contextlib
import fnmatch
import importlib.metadata as md
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bench.errors import RegistryError
from bench.typed import from_dict, suggest

log = logging.getLogger(__name__)

GROUPS = {"augmenter": "augbench.augmenters", "classifier": "augbench.classifiers"}


@dataclass(frozen=True)
class LoadFailure:
    kind: str
    name: str
    package: str
    error: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name!r} from package {self.package!r} failed to load: {self.error}"


_plugins: dict[str, dict[str, type]] = {kind: {} for kind in GROUPS}
_failures: list[LoadFailure] = []
_discovered = False


def _check_kind(kind: str) -> None:
    if kind not in GROUPS:
        raise RegistryError(f"unknown plugin kind {kind!r}; known: {', '.join(GROUPS)}")


def register(kind: str, name: str, plugin: type) -> type:
    """Register ``plugin`` under ``name``; a different object under a taken name raises."""
    _check_kind(kind)
    current = _plugins[kind].get(name)
    if current is not None and current is not plugin:
        raise RegistryError(
            f"{kind} name {name!r} is already registered by "
            f"{current.__module__}.{current.__qualname__}; pick another name for "
            f"{plugin.__module__}.{plugin.__qualname__}")
    _validate_plugin(kind, name, plugin)
    _plugins[kind][name] = plugin
    return plugin


def _validate_plugin(kind: str, name: str, plugin: type) -> None:
    required = ("Params", "generate") if kind == "augmenter" else ("Params", "build")
    missing = [attr for attr in required if not hasattr(plugin, attr)]
    if missing:
        raise RegistryError(f"{kind} {name!r} ({plugin!r}) lacks {', '.join(missing)}")


def unregister(kind: str, name: str) -> None:
    """Remove a plugin (tests use this to undo temporary registrations)."""
    _plugins[kind].pop(name, None)


@contextlib.contextmanager
def registered_if_missing(kind: str, name: str, cls: type) -> Iterator[str]:
    """``name`` registered as ``cls`` for the duration (tests of a built-in whose entry point the
    installed metadata may not list yet, before ``pip install -e .``); an existing one is left alone."""
    added = name not in list_plugins(kind)
    if added:
        register(kind, name, cls)
    try:
        yield name
    finally:
        if added:
            unregister(kind, name)


def _entry_points(group: str) -> list[md.EntryPoint]:
    return sorted(md.entry_points(group=group), key=lambda ep: (ep.name, ep.value))


def _load_entry_point(kind: str, ep: md.EntryPoint) -> None:
    package = ep.dist.name if ep.dist is not None else "<unknown>"
    try:
        register(kind, ep.name, ep.load())
    except Exception as exc:  # a broken plugin (or a RegistryError) must not break the others
        failure = LoadFailure(kind, ep.name, package, f"{type(exc).__name__}: {exc}")
        _failures.append(failure)
        warnings.warn(str(failure), RuntimeWarning, stacklevel=3)


def discover(force: bool = False) -> None:
    """Load every entry point of both groups (once), in sorted order."""
    global _discovered
    if _discovered and not force:
        return
    _discovered = True
    if force:
        _failures.clear()
    for kind, group in GROUPS.items():
        seen: set[tuple[str, str]] = set()
        for ep in _entry_points(group):
            if (ep.name, ep.value) in seen:  # the same distribution seen twice on sys.path
                continue
            seen.add((ep.name, ep.value))
            _load_entry_point(kind, ep)  # a name taken by another target is reported as a failure


def failures() -> list[LoadFailure]:
    discover()
    return list(_failures)


def list_plugins(kind: str, pattern: str = "*") -> list[str]:
    """Sorted names of registered plugins of ``kind`` matching a glob ``pattern``."""
    _check_kind(kind)
    discover()
    return sorted(n for n in _plugins[kind] if fnmatch.fnmatchcase(n, pattern))


def get(kind: str, name: str) -> type:
    _check_kind(kind)
    discover()
    try:
        return _plugins[kind][name]
    except KeyError:
        broken = [f for f in _failures if f.kind == kind and f.name == name]
        if broken:
            raise RegistryError(str(broken[0])) from None
        hint = suggest(name, _plugins[kind]) or f"known: {', '.join(sorted(_plugins[kind]))}"
        raise RegistryError(f"unknown {kind} {name!r}; {hint}") from None


def control_of(name: str) -> str:
    """The ``control`` role augmenter ``name`` declares: "positive", "negative" or "" (a method)."""
    return getattr(get("augmenter", name), "control", "") or ""


def positive_controls(methods, plugin_of=None) -> list[str]:
    """The positive controls among ``methods`` (fresh phantom images: the phantom only).
    ``plugin_of``: the registered plugin behind a method name (``Params.method_plugin``, for
    ``augment.methods`` variants); default: the name itself."""
    plugin_of = plugin_of or (lambda m: m)
    return [m for m in methods if control_of(plugin_of(m)) == "positive"]


def modes_of(name: str) -> tuple[str, ...]:
    """The modes augmenter ``name`` can run in: its own ``mode`` (``append`` or ``replace``: stored
    synthetic images), then ``online`` when it defines ``transform(images, rng)`` (random transforms
    drawn per minibatch during training; bench.online)."""
    plugin = get("augmenter", name)
    own = getattr(plugin, "mode", "append")
    from bench.online import ONLINE

    return (own, ONLINE) if callable(getattr(plugin, "transform", None)) else (own,)


def params_for(kind: str, name: str, raw: dict[str, Any] | None = None, path: str = ""):
    """Validate ``raw`` against the plugin's parameter dataclass."""
    return from_dict(get(kind, name).Params, raw or {}, path or f"{kind}.{name}")


def create(kind: str, name: str, **params: Any):
    """Instantiate plugin ``name`` with validated parameters."""
    return get(kind, name)(params_for(kind, name, params))
