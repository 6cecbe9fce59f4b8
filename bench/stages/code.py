"""code: per augmentation method and per classifier, the files of the code its stages run, with sha256.

DVC gives every item of a ``matrix`` stage the same dependency list, so ``augment@<method>`` cannot
list only its own method's code: with ``bench/nst``, ``bench/gan`` and ``methods/augment`` as
dependencies of every item, a GAN fix would re-run every NST method (and with ``methods/classify``
on every ``train`` item, a DRS fix would re-train every ResNet50). This stage depends on the
whole ``bench`` and ``methods`` trees and writes one small file per method of the matrix,
``OUT/augment/<method>.json``: ``{"method", "plugin", "files": {path: sha256}}``, and one per
classifier variant of ``matrix.classifiers`` and ``matrix.zoo``, ``OUT/train/<classifier>.json``:
``{"classifier", "plugin", "files"}``. Each ``augment@<method>`` depends on its own method's file;
``train@<method>-<classifier>``, ``control-aa@<classifier>`` and ``zoo@<classifier>`` on their
classifier's (``train@`` on its method's too: an online method's transform runs in the train stage,
its plugin found by name in ``online.json``). DVC re-runs a stage when its file's bytes change, and
an edit that leaves its code alone rewrites the same bytes, so that stage stays up to date.

``files`` is the import closure of the stage script (``bench/stages/augment.py``; for a classifier
``bench/stages/train.py``, which brings ``bench/training.py``, ``bench/xai`` and the rest of the
train stage) and of the plugin's module (a variant, ``augment.methods.<name>.method: PLUGIN`` or
``train.classifiers.<name>.classifier: PLUGIN``, resolves to its plugin, as
``Params.method_plugin`` and ``Params.classifier_plugin`` do for the stages): every module named by an
``import`` or ``from ... import`` statement anywhere in a module (inside functions too: plugins
import lazily), read with ``ast``, never imported, and followed within the ``bench`` and ``methods``
packages and the plugin's own top-level package; each module brings the ``__init__.py`` of its
parent packages (Python runs them). A string constant of a module that names a file or folder
beside it (``Path(__file__).with_name("paper_values.yaml")``) adds those data files (not ``.py``).
Paths are relative to the folder holding the package (``bench/nst/engine.py``), so the same code
gives the same bytes wherever it is installed. The code hashed is the code Python imports (the
installed augbench, or the checkout an editable install points at).

What this cannot see: an import by a computed name (``importlib.import_module(name)``) and the
plugins the registry imports at discovery (every entry point is loaded; only the stage's own
plugin is followed). A plugin outside ``bench`` and ``methods`` is not a dependency of this stage
in dvc.yaml: after editing one, ``dvc repro -f -s code`` and then ``dvc repro``.
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata as md
import importlib.util
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from bench import registry
from bench.config import Params, load_params, load_raw
from bench.errors import ConfigError, RegistryError
from bench.io import file_digest, write_json
from bench.stages.common import add_params_args, log, writing

STAGE_MODULE = "bench.stages.augment"  # what `augbench augment` runs (bench/cli.py STAGES)
TRAIN_STAGE_MODULE = "bench.stages.train"  # what `augbench train` runs (stages train, control-aa, zoo)
LOCAL_PACKAGES = ("bench", "methods")  # followed for every plugin; a plugin's own package besides
AUGMENT = "augment"  # OUT/augment/<method>.json: the augment stage's digests
TRAIN = "train"  # OUT/train/<classifier>.json: the train stage's digests
_SKIP_DATA = (".py", ".pyc", ".pyo")
_METHOD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


@dataclass(frozen=True)
class Module:
    name: str  # dotted
    path: Path  # its source file
    base: Path  # the folder holding its top-level package: keys are relative to it


@cache
def _top_spec(top: str):
    """The spec of top-level package ``top`` (finding a top-level name imports nothing)."""
    return importlib.util.find_spec(top)


def locate(name: str) -> Module | None:
    """The source file of module ``name``, found without importing it; None when no Python source
    file holds it (``bench.io.write_json``, from ``from bench.io import file_digest, write_json``, names a function)."""
    top, *rest = name.split(".")
    spec = _top_spec(top)
    if spec is None:
        return None
    if not spec.submodule_search_locations:  # a single-module top level (plugin.py)
        origin = Path(spec.origin) if spec.origin else None
        return Module(name, origin, origin.parent) if not rest and origin and origin.suffix == ".py" else None
    for location in spec.submodule_search_locations:
        stem = Path(location, *rest)
        for candidate in (stem / "__init__.py", stem.parent / f"{stem.name}.py"):
            if candidate.is_file():
                return Module(name, candidate, Path(location).parent)
    return None


def _package_of(module: Module) -> str:
    return module.name if module.path.name == "__init__.py" else module.name.rpartition(".")[0]


def imported_names(module: Module, tree: ast.Module) -> set[str]:
    """Every module name an import statement of ``tree`` (at any depth) may load: ``import a.b``
    → ``a.b``; ``from a import b`` → ``a`` and ``a.b`` (b may be a submodule); relative imports resolved."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = _package_of(module).split(".")
                if node.level - 1 > len(parts) - 1:
                    continue  # beyond the top-level package: Python would refuse it too
                base = ".".join([*parts[:len(parts) - node.level + 1], *([node.module] if node.module else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return {n for n in names if n}


def data_files(module: Module, tree: ast.Module) -> set[Path]:
    """Non-Python files a module names beside itself: a string constant that is the name of a file
    or folder in the module's own folder (a folder brings every file under it)."""
    here, found = module.path.parent, set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            continue
        text = node.value
        if not text or len(text) > 200 or "\n" in text or text.startswith(("/", ".")) or "\0" in text:
            continue
        target = here / text
        if target.is_file():
            found.add(target)
        elif target.is_dir():
            found.update(p for p in target.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return {p for p in found if p.suffix not in _SKIP_DATA}


def _scan(module: Module) -> tuple[tuple[str, ...], tuple[Path, ...]]:
    """A module's imported names and data files (parsed once while the file is unchanged: the methods
    share most of their modules)."""
    stat = module.path.stat()
    return _parse(module, stat.st_mtime_ns, stat.st_size)


@cache
def _parse(module: Module, mtime_ns: int, size: int) -> tuple[tuple[str, ...], tuple[Path, ...]]:
    tree = ast.parse(module.path.read_bytes(), filename=str(module.path))
    return tuple(sorted(imported_names(module, tree))), tuple(sorted(data_files(module, tree)))


def _digest(path: Path) -> str:
    """sha256 of a file (bench.io.file_digest), once per file and version: the methods and classifiers
    share most of their modules."""
    stat = path.stat()
    return _digest_of(path, stat.st_mtime_ns, stat.st_size)


@cache
def _digest_of(path: Path, mtime_ns: int, size: int) -> str:
    return file_digest(path)


def closure(roots: list[str], packages: tuple[str, ...]) -> dict[str, Path]:
    """``{relative path: file}`` of the modules ``roots`` import, transitively, within the top-level
    ``packages``, with their parent packages' ``__init__.py`` and the data files they name."""
    files: dict[str, Path] = {}
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen or name.split(".")[0] not in packages:
            continue
        seen.add(name)
        module = locate(name)
        if module is None:
            continue
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # Python runs each parent's __init__
        imports, data = _scan(module)
        todo.extend(imports)
        for path in (module.path, *data):
            files[path.relative_to(module.base).as_posix()] = path
    return files


def plugin_module(plugin: str, kind: str = "augmenter") -> str:
    """The module of plugin ``plugin`` of ``kind`` (``augmenter`` or ``classifier``): its entry
    point's (read from the installed metadata, in the registry's order, without importing it), else
    the class the registry holds (registered in this process; an unknown name fails with the
    registry's suggestion)."""
    group = registry.GROUPS[kind]
    for ep in sorted(md.entry_points(group=group), key=lambda ep: (ep.name, ep.value)):
        if ep.name == plugin:
            return ep.module
    return registry.get(kind, plugin).__module__


def _files(kind: str, plugin: str, stage: str, where: str, what: str) -> dict[str, str]:
    """``{path: sha256}`` of the import closure of ``stage`` and of plugin ``plugin``'s module;
    ``where``: the parameter that names the plugin; ``what``: the name it runs under (for errors)."""
    try:
        module = plugin_module(plugin, kind)
    except RegistryError as exc:
        raise RegistryError(f"params: {where}: {exc}") from None
    if locate(module) is None:
        raise RegistryError(f"{kind} {plugin!r} ({what}): its module {module} has no Python source "
                            "file to digest (not installed, or compiled only); reinstall the package that provides "
                            "it (for augbench's own: pip install -e . in a checkout)")
    packages = tuple(dict.fromkeys([*LOCAL_PACKAGES, module.split(".")[0]]))
    files = closure([stage, module], packages)
    return {key: _digest(path) for key, path in sorted(files.items())}


def method_digest(params: Params, method: str) -> dict:
    """``{"method", "plugin", "files": {path: sha256}}`` of augmentation method ``method``."""
    plugin = params.method_plugin(method)
    where = f"augment.methods.{method}.method" if plugin != method else "matrix.methods"
    return {"method": method, "plugin": plugin,
            "files": _files("augmenter", plugin, STAGE_MODULE, where, f"method {method!r}")}


def classifier_digest(params: Params, classifier: str, listed_in: str = "matrix.classifiers") -> dict:
    """``{"classifier", "plugin", "files": {path: sha256}}`` of classifier variant ``classifier``
    (the train stage's code: ``bench/stages/train.py`` and its plugin's module); ``listed_in``:
    the matrix list that names it (for errors)."""
    plugin = params.classifier_plugin(classifier)
    where = f"train.classifiers.{classifier}.classifier" if plugin != classifier else listed_in
    return {"classifier": classifier, "plugin": plugin,
            "files": _files("classifier", plugin, TRAIN_STAGE_MODULE, where, f"classifier {classifier!r}")}


def _listed(raw: dict, key: str, active: list[str], folder: str, required: bool = True) -> dict[str, str]:
    """``{name: key}`` of params.yaml's base ``matrix.<key>`` (what dvc.yaml's ``${matrix.<key>}``
    expands over) and of the active profile's (``active``), each once, in that order; every name
    must be able to name a file ``folder/<name>.json``."""
    base = (raw.get("matrix") or {}).get(key) or []
    if not isinstance(base, list):
        example = "[none, classical]" if key == "methods" else "[resnet50]"
        raise ConfigError(f"matrix.{key}", f"is {base!r}, not a list", f"list the names, e.g. {example}")
    names = {str(name): f"matrix.{key}" for name in [*base, *active]}
    for name in names:
        if not _METHOD_NAME.fullmatch(name):
            raise ConfigError(f"matrix.{key}", f"{name!r} cannot name a file ({folder}/<name>.json)",
                              "use letters, digits, '-', '_', '.' and '+' only")
    return names


def matrix_methods(params: Params, raw: dict) -> list[str]:
    """The methods DVC expands ``augment@`` over (params.yaml's base ``matrix.methods``: dvc.yaml's
    ``${matrix.methods}``) and those of the active profile, each once, in that order."""
    return list(_listed(raw, "methods", params.matrix.methods, AUGMENT))


def matrix_classifiers(params: Params, raw: dict) -> dict[str, str]:
    """``{classifier: the list naming it}``: the classifier variants DVC expands ``train@``,
    ``control-aa@`` (``matrix.classifiers``) and ``zoo@`` (``matrix.zoo``) over, from params.yaml's
    base lists and the active profile's, each once, in that order."""
    found = _listed(raw, "classifiers", params.matrix.classifiers, TRAIN)
    for name, key in _listed(raw, "zoo", params.matrix.zoo, TRAIN).items():
        found.setdefault(name, key)
    return found


def _write(folder: Path, digests: list[dict], key: str, listed: str) -> list[Path]:
    """Write ``folder/<digest[key]>.json`` per digest (atomically); remove the files of names no
    longer listed (a folder reused outside DVC). Returns the files written."""
    written = []
    for digest in digests:
        path = folder / f"{digest[key]}.json"
        write_json(path, digest)
        written.append(path)
    for stale in sorted(folder.glob("*.json")):
        if stale not in written:
            stale.unlink()
            log.info("code: removed %s (no longer in %s)", stale, listed)
    return written


def write_digests(params: Params, methods: list[str], out: Path,
                  classifiers: dict[str, str] | None = None) -> list[Path]:
    """Write ``out/augment/<method>.json`` for each method and ``out/train/<classifier>.json`` for
    each classifier (``{name: the list naming it}``; None: none); remove the files of names no
    longer listed. Returns the files written."""
    classifiers = classifiers or {}
    # every name checked before anything is written
    methods_done = [method_digest(params, method) for method in methods]
    classifiers_done = [classifier_digest(params, name, listed) for name, listed in classifiers.items()]
    return (_write(out / AUGMENT, methods_done, "method", "matrix.methods")
            + _write(out / TRAIN, classifiers_done, "classifier", "matrix.classifiers or matrix.zoo"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="augbench code-digest", description=__doc__.splitlines()[0],
                                     epilog="Writes OUT/augment/<method>.json per method of matrix.methods and "
                                     "OUT/train/<classifier>.json per classifier of matrix.classifiers and "
                                     "matrix.zoo: the augment and train stages' dependencies on their own code "
                                     "(dvc.yaml stage `code`).")
    add_params_args(parser)
    parser.add_argument("--out", default="data/code", help="output folder (default: data/code)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    # the plugins' parameters are the augment stage's to validate: no registry (nor TensorFlow) here
    params = load_params(args.params, args.profile, args.overrides, validate_plugins=False)
    raw = load_raw(args.params)
    methods, classifiers = matrix_methods(params, raw), matrix_classifiers(params, raw)
    with writing(out):
        write_digests(params, methods, out, classifiers)
    log.info("code: %d method digests in %s, %d classifier digests in %s", len(methods), out / AUGMENT,
             len(classifiers), out / TRAIN)
    return 0
