"""code: per augmentation method, the files of the code its augment stage runs, with their sha256.

DVC gives every item of a ``matrix`` stage the same dependency list, so ``augment@<method>`` cannot
list only its own method's code: with ``bench/nst``, ``bench/gan`` and ``methods/augment`` as
dependencies of every item, a GAN fix would re-run every NST method. This stage depends on the
whole ``bench`` and ``methods`` trees and writes one small file per method of the matrix,
``OUT/augment/<method>.json``: ``{"method", "plugin", "files": {path: sha256}}``. Each
``augment@<method>`` depends on its own file only; DVC re-runs it when that file's bytes change,
and an edit that leaves a method's code alone rewrites the same bytes, so that stage stays up to date.

``files`` is the import closure of the stage script (``bench/stages/augment.py``) and of the
method's plugin module (a variant, ``augment.methods.<name>.method: PLUGIN``, resolves to its
plugin, as ``Params.method_plugin`` does for the augment stage): every module named by an
``import`` or ``from ... import`` statement anywhere in a module (inside functions too: plugins
import lazily), read with ``ast``, never imported, and followed within the ``bench`` and ``methods``
packages and the plugin's own top-level package; each module brings the ``__init__.py`` of its
parent packages (Python runs them). A string constant of a module that names a file or folder
beside it (``Path(__file__).with_name("paper_values.yaml")``) adds those data files (not ``.py``).
Paths are relative to the folder holding the package (``bench/nst/engine.py``), so the same code
gives the same bytes wherever it is installed. The code hashed is the code Python imports (the
installed augbench, or the checkout an editable install points at).

What this cannot see: an import by a computed name (``importlib.import_module(name)``) and the
plugins the registry imports at discovery (every entry point is loaded; only the method's own
plugin is followed). A plugin outside ``bench`` and ``methods`` is not a dependency of this stage
in dvc.yaml: after editing one, ``dvc repro -f -s code`` and then ``dvc repro``.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.metadata as md
import importlib.util
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from bench import registry
from bench.config import Params, load_params, load_raw
from bench.errors import ConfigError, RegistryError
from bench.io import write_json
from bench.stages.common import add_params_args, log, writing

STAGE_MODULE = "bench.stages.augment"  # what `augbench augment` runs (bench/cli.py STAGES)
LOCAL_PACKAGES = ("bench", "methods")  # followed for every method; a plugin's own package besides
AUGMENT = "augment"  # OUT/augment/<method>.json: the augment stage's digests
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
    file holds it (``bench.io.write_json``, from ``from bench.io import write_json``, names a function)."""
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


def plugin_module(plugin: str) -> str:
    """The module of augmenter ``plugin``: its entry point's (read from the installed metadata, in the
    registry's order, without importing it), else the class the registry holds (registered in this
    process; an unknown name fails with the registry's suggestion)."""
    group = registry.GROUPS["augmenter"]
    for ep in sorted(md.entry_points(group=group), key=lambda ep: (ep.name, ep.value)):
        if ep.name == plugin:
            return ep.module
    return registry.get("augmenter", plugin).__module__


def method_digest(params: Params, method: str) -> dict:
    """``{"method", "plugin", "files": {path: sha256}}`` of augmentation method ``method``."""
    plugin = params.method_plugin(method)
    try:
        module = plugin_module(plugin)
    except RegistryError as exc:
        where = f"augment.methods.{method}.method" if plugin != method else "matrix.methods"
        raise RegistryError(f"params: {where}: {exc}") from None
    if locate(module) is None:
        raise RegistryError(f"augmenter {plugin!r} (method {method!r}): its module {module} has no Python source "
                            "file to digest (not installed, or compiled only); reinstall the package that provides "
                            "it (for augbench's own: pip install -e . in a checkout)")
    packages = tuple(dict.fromkeys([*LOCAL_PACKAGES, module.split(".")[0]]))
    files = closure([STAGE_MODULE, module], packages)
    return {"method": method, "plugin": plugin,
            "files": {key: hashlib.sha256(path.read_bytes()).hexdigest() for key, path in sorted(files.items())}}


def matrix_methods(params: Params, raw: dict) -> list[str]:
    """The methods DVC expands ``augment@`` over (params.yaml's base ``matrix.methods``: dvc.yaml's
    ``${matrix.methods}``) and those of the active profile, each once, in that order."""
    base = (raw.get("matrix") or {}).get("methods") or []
    if not isinstance(base, list):
        raise ConfigError("matrix.methods", f"is {base!r}, not a list", "list the method names, e.g. [none, classical]")
    methods = list(dict.fromkeys([*map(str, base), *params.matrix.methods]))
    for name in methods:
        if not _METHOD_NAME.fullmatch(name):
            raise ConfigError("matrix.methods", f"{name!r} cannot name a file ({AUGMENT}/<method>.json)",
                              "use letters, digits, '-', '_', '.' and '+' only")
    return methods


def write_digests(params: Params, methods: list[str], out: Path) -> list[Path]:
    """Write ``out/augment/<method>.json`` for each method (atomically); remove the files of
    methods no longer listed (a folder reused outside DVC). Returns the files written."""
    folder = out / AUGMENT
    digests = [method_digest(params, method) for method in methods]  # every name checked before writing
    written = []
    for digest in digests:
        path = folder / f"{digest['method']}.json"
        write_json(path, digest)
        written.append(path)
    for stale in sorted(folder.glob("*.json")):
        if stale not in written:
            stale.unlink()
            log.info("code: removed %s (no longer in matrix.methods)", stale)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="augbench code-digest", description=__doc__.splitlines()[0],
                                     epilog="Writes OUT/augment/<method>.json per method of matrix.methods: the "
                                     "augment stage's dependency on its own code (dvc.yaml stage `code`).")
    add_params_args(parser)
    parser.add_argument("--out", default="data/code", help="output folder (default: data/code)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    # the plugins' parameters are the augment stage's to validate: no registry (nor TensorFlow) here
    params = load_params(args.params, args.profile, args.overrides, validate_plugins=False)
    methods = matrix_methods(params, load_raw(args.params))
    with writing(out):
        written = write_digests(params, methods, out)
    log.info("code: %d method digests in %s", len(written), out / AUGMENT)
    return 0
