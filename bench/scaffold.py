"""``augbench new-plugin``: scaffold an installable plugin package.

``create("gamma-x", "augmenter", Path("."))`` writes ``./augbench-gamma-x/``:
``pyproject.toml`` (setuptools; the entry point in ``augbench.augmenters`` or
``augbench.classifiers``; depends on augbench), ``augbench_gamma_x/plugin.py``
(a typed parameter dataclass and a small working plugin: a gamma/contrast
augmenter or a small Keras CNN), ``tests/test_plugin.py`` (augbench's contract
checks from ``bench.contract`` plus the plugin's own tests) and ``README.md``
(install, test, add to ``params.yaml``, run). The templates are the files in
``bench/templates/plugin/``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from bench import registry
from bench.errors import AugbenchError
from bench.typed import suggest

KINDS = tuple(registry.GROUPS)  # augmenter, classifier
NAME_PATTERN = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
MAX_NAME = 40
SUMMARIES = {"augmenter": "Random gamma curve and contrast change (template from augbench new-plugin).",
             "classifier": "Small CNN: conv blocks, global average pooling, Dense(2, softmax) "
                           "(template from augbench new-plugin)."}


class ScaffoldError(AugbenchError):
    """A plugin name or target folder that cannot be used."""


@dataclass(frozen=True)
class Names:
    """Every name the scaffold derives from the plugin name, e.g. ``gamma-x``."""

    name: str  # the registry name, used in params.yaml: gamma-x
    kind: str  # augmenter | classifier

    @property
    def dist(self) -> str:  # distribution and folder: augbench-gamma-x
        return f"augbench-{self.name}"

    @property
    def module(self) -> str:  # import package: augbench_gamma_x
        return self.dist.replace("-", "_")

    @property
    def camel(self) -> str:  # GammaX
        return "".join(part[:1].upper() + part[1:] for part in self.name.split("-"))

    @property
    def cls(self) -> str:  # GammaXAugmenter
        return self.camel + self.kind.capitalize()


def check_name(name: str) -> None:
    """A plugin name is lowercase letters, digits and single hyphens, starting with a letter."""
    if len(name) > MAX_NAME or not NAME_PATTERN.fullmatch(name):
        raise ScaffoldError(f"new-plugin: invalid plugin name {name!r}: use lowercase letters, digits and "
                            f"single hyphens, starting with a letter and ending with a letter or digit, at "
                            f"most {MAX_NAME} characters (e.g. 'gamma-contrast')")


def check_not_registered(name: str) -> None:
    """Refuse a name any installed plugin (of either kind, broken ones included) already uses."""
    for kind in registry.GROUPS:
        if name in registry.list_plugins(kind):
            plugin = registry.get(kind, name)
            raise ScaffoldError(f"new-plugin: {name!r} is already registered as {kind} "
                                f"{plugin.__module__}.{plugin.__qualname__}; pick another name "
                                f"(`augbench list` shows the names in use)")
    for failure in registry.failures():
        if failure.name == name:
            raise ScaffoldError(f"new-plugin: {name!r} is already claimed by package {failure.package!r} "
                                f"(which fails to load: {failure.error}); pick another name")


def near_names(name: str) -> str:
    """A note when ``name`` is close to a registered name ('' when none is)."""
    every = [n for kind in registry.GROUPS for n in registry.list_plugins(kind) if n != name]
    hint = suggest(name, every)
    return f"{name!r} is close to a registered plugin ({hint}); going on, since it is a new name" if hint else ""


def target_folder(out: Path, names: Names) -> Path:
    """``out/augbench-NAME``, refused when it exists and is not an empty folder."""
    target = out / names.dist
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ScaffoldError(f"new-plugin: {target} already exists and is not an empty folder; "
                            f"nothing was written (remove it, or pass another --out)")
    return target


def _fields(names: Names) -> dict[str, str]:
    augmenter = names.kind == "augmenter"
    n = names.name
    section = "augment.methods" if augmenter else "train.classifiers"
    outer, inner = section.split(".")
    example = "{factor: 3}" if augmenter else "{epochs: 4}"
    return {
        "name": n, "kind": names.kind, "dist": names.dist, "module": names.module, "cls": names.cls,
        "params_cls": f"{names.camel}Params", "group": registry.GROUPS[names.kind], "summary": SUMMARIES[names.kind],
        "matrix_key": "methods" if augmenter else "classifiers",
        "matrix_line": (f"methods: [none, {n}]   # plus the methods you compare it with" if augmenter else
                        f"classifiers: [resnet50, {n}]"),
        "section": section, "section_yaml": f"{outer}:\n  {inner}:\n    {n}: {example}",
        "try_overrides": (f"--set 'matrix.methods=[none,{n}]' --set 'matrix.zoo=[]'" if augmenter else
                          f"--set 'matrix.methods=[none]' --set 'matrix.classifiers=[{n}]' --set 'matrix.zoo=[]'"),
        "dvc_force": f"dvc repro -s -f augment@{n}" if augmenter else f"dvc repro -s -f --glob 'train@*-{n}'",
        "run_folder": f"augmented/{n}" if augmenter else f"runs/*/{n}",
    }


def render(names: Names) -> dict[str, str]:
    """Relative path → text of every file of the package."""
    templates = resources.files("bench") / "templates" / "plugin"
    files = {"pyproject.toml": "pyproject.toml.tmpl", "README.md": "README.md.tmpl", ".gitignore": "gitignore.tmpl",
             f"{names.module}/__init__.py": "init.py.tmpl",
             f"{names.module}/plugin.py": f"{names.kind}_plugin.py.tmpl",
             "tests/test_plugin.py": f"{names.kind}_test.py.tmpl"}
    fields = _fields(names)
    return {path: Template((templates / tmpl).read_text(encoding="utf-8")).substitute(fields)
            for path, tmpl in files.items()}


def create(name: str, kind: str, out: Path) -> tuple[Path, list[str]]:
    """Check the name and folder, write the package; returns its folder and the files written."""
    if kind not in KINDS:
        raise ScaffoldError(f"new-plugin: unknown kind {kind!r}; known: {', '.join(KINDS)}")
    check_name(name)
    check_not_registered(name)
    names = Names(name, kind)
    target = target_folder(Path(out), names)
    files = render(names)
    for path, text in files.items():
        (target / path).parent.mkdir(parents=True, exist_ok=True)
        (target / path).write_text(text, encoding="utf-8")
    return target, sorted(files)


def next_steps(target: Path, names: Names) -> str:
    """What ``augbench new-plugin`` prints after writing the package."""
    key = "matrix.methods" if names.kind == "augmenter" else "matrix.classifiers"
    return "\n".join([
        "next:", f"  cd {target} && pip install -e .    # into augbench's environment",
        f"  augbench list && augbench describe {names.name}",
        "  pytest                              # augbench's contract checks + the plugin's own tests",
        f"  add {names.name} to {key} in params.yaml, then make bench (see {target / 'README.md'})"])
