"""``augbench init DIR`` and ``augbench run``: an augbench project in any folder, always run by DVC.

A project is a folder with ``params.yaml`` and ``dvc.yaml``. Both come from the installed package
(``bench/defaults/``, copies of the repository's top-level files that a test keeps identical), so
``augbench init`` works without a checkout. The project's ``dvc.yaml`` is the repository's one
pipeline definition with its code dependencies (``bench/...``, ``methods/...``) pointed at the
installed package, so a new augbench version re-runs the stages whose code changed.

``augbench run`` writes what its options ask for (``--profile``, ``--data``, ``--methods``, ...,
``--set KEY=VALUE``) into the project's ``params.yaml``, printing each key it changes, validates
the result as the stages will read it, and runs ``dvc repro``. There is no second orchestrator:
what runs, and what is up to date, is DVC's decision from dvc.yaml and dvc.lock.
"""

from __future__ import annotations

import argparse
import copy
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from bench import config
from bench.data.sources import kind_of_path
from bench.errors import AugbenchError, ConfigError, RegistryError
from bench.io import write_text
from bench.lock import workspace_lock
from bench.quiet import is_quiet, quiet_mode

DEFAULTS = Path(__file__).resolve().parent / "defaults"  # package data (pyproject.toml)
PROJECT_FILES = ("params.yaml", "dvc.yaml")  # the repository's top-level files, copied under DEFAULTS
# The packaged copy of dvc.yaml has another name: DVC takes every file named dvc.yaml in a project for a
# pipeline, so a bench/defaults/dvc.yaml would be a second pipeline of the repository (and of any project
# holding a copy of bench/).
PACKAGED_NAMES = {"params.yaml": "params.yaml", "dvc.yaml": "dvc-pipeline.yaml"}
CODE_ROOT = Path(__file__).resolve().parents[1]  # holds the installed `bench` and `methods` packages
CODE_PACKAGES = ("bench", "methods")
_CODE_DEP = re.compile(r"^(\s*-\s+)((?:bench|methods)(?:/\S*)?)\s*$")

GITIGNORE = """\
# augbench: what the pipeline writes and DVC caches (dvc.lock and reports/ are worth keeping)
/data/
/runs/
.augbench.lock
__pycache__/
"""

README = """\
augbench project
================

params.yaml  the parameters: the active `profile` (smoke, quick, paper), the `matrix` of methods,
             classifiers and seeds, the dataset, every hyperparameter
dvc.yaml     the pipeline (augbench's own; its code dependencies point at the installed augbench)

Next steps:
  augbench run --profile smoke                 # a few minutes on the built-in phantom: checks the set-up
  augbench run --data /path/to/class-folders --methods none,geometric-flipping,classical
  augbench run --set train.classifiers.resnet50.epochs=5
  augbench list                                # every augmentation method and classifier

`augbench run` writes its options into params.yaml (it prints each key it changes) and runs
`dvc repro`; the report is reports/results.md and reports/index.html. `dvc repro` alone re-runs
what params.yaml asks for. Data and runs are in data/ and runs/ (DVC's cache; `dvc push` to a remote).
"""


# ------------------------------------------------------------------------------------ files


def packaged_path(name: str) -> Path:
    """Where the installed package keeps its copy of the project file ``name``."""
    return DEFAULTS / PACKAGED_NAMES[name]


def default_text(name: str) -> str:
    """The packaged default ``params.yaml`` or ``dvc.yaml``."""
    path = packaged_path(name)
    if not path.is_file():
        raise AugbenchError(f"{path}: not found: this augbench installation lacks its default project files; "
                            "reinstall it (pip install --force-reinstall augbench, or pip install . in a checkout)")
    return path.read_text(encoding="utf-8")


def project_dvc_yaml(text: str, code_root: Path = CODE_ROOT) -> str:
    """The repository's dvc.yaml for a project outside the repository: each code dependency
    (``- bench/...``, ``- methods/...``) becomes the absolute path of the installed file (DVC
    hashes dependencies outside the project like any other), the rest is unchanged."""
    lines = []
    for line in text.splitlines(keepends=True):
        hit = _CODE_DEP.match(line)
        lines.append(f"{hit.group(1)}{(code_root / hit.group(2)).as_posix()}\n" if hit else line)
    header = (f"# Written by `augbench init` from augbench's dvc.yaml; code dependencies point at the installed\n"
              f"# augbench ({code_root.as_posix()}), so upgrading it re-runs the stages whose code changed.\n")
    return header + "".join(lines)


def project_files() -> dict[str, str]:
    return {"params.yaml": default_text("params.yaml"), "dvc.yaml": project_dvc_yaml(default_text("dvc.yaml")),
            ".gitignore": GITIGNORE, "README.txt": README}


def _above(folder: Path, marker: str) -> Path | None:
    """The nearest folder at or above ``folder`` that holds ``marker``."""
    here = folder.resolve()
    for candidate in (here, *here.parents):
        if (candidate / marker).exists():
            return candidate
    return None


def git_root(folder: Path) -> Path | None:
    return _above(folder, ".git")


def dvc_root(folder: Path) -> Path | None:
    return _above(folder, ".dvc")


def dvc_program() -> str:
    """The ``dvc`` beside this Python (its virtualenv), else the one on PATH."""
    beside = Path(sys.executable).parent / "dvc"
    found = str(beside) if beside.is_file() else shutil.which("dvc")
    if found is None:
        raise AugbenchError("the dvc program is not installed; pip install augbench installs it (dvc>=3.50): "
                            "activate the environment augbench is installed in")
    return found


def dvc_init(folder: Path) -> None:
    """``dvc init --no-scm`` in ``folder``: a DVC project that does not use git."""
    done = subprocess.run([dvc_program(), "init", "--no-scm", "-q"], cwd=folder, capture_output=True, text=True,
                          check=False)
    if done.returncode:
        raise AugbenchError(f"{folder}: dvc init --no-scm failed (exit code {done.returncode}): "
                            f"{(done.stderr or done.stdout).strip()}")


def gitignore_text(existing: str | None) -> str:
    """``existing`` (the user's .gitignore, or None) with augbench's lines it lacks appended, so
    writing it twice changes nothing."""
    if existing is None:
        return GITIGNORE
    have = {line.strip() for line in existing.splitlines()}
    missing = [line for line in GITIGNORE.splitlines() if line.strip() and line.strip() not in have
               and not line.startswith("#")]
    if not missing:
        return existing
    head = existing if not existing or existing.endswith("\n") else existing + "\n"
    return head + GITIGNORE.splitlines()[0] + "\n" + "".join(f"{line}\n" for line in missing)


def write_project(folder: Path, force: bool = False, refresh_pipeline: bool = False) -> list[Path]:
    """Write params.yaml, dvc.yaml, .gitignore and README.txt into ``folder`` (created if needed);
    refuses to replace an existing one unless ``force``. An existing .gitignore is the user's:
    augbench's lines are appended to it (those it lacks), never replacing it. ``refresh_pipeline``:
    rewrite dvc.yaml only (its code paths pointed at this augbench), keeping params.yaml."""
    files = project_files()
    if refresh_pipeline:
        if not (folder / "params.yaml").is_file():
            raise AugbenchError(f"{folder / 'params.yaml'}: not found, so {folder} is no augbench project to refresh; "
                                "run `augbench init` without --refresh-pipeline to create one")
        write_text(folder / "dvc.yaml", files["dvc.yaml"])
        return [folder / "dvc.yaml"]
    existing = [folder / name for name in files if name != ".gitignore" and (folder / name).exists()]
    if existing and not force:
        others = f" (also {', '.join(p.name for p in existing[1:])})" if len(existing) > 1 else ""
        raise AugbenchError(f"{existing[0]}: already exists{others}; augbench init does not overwrite a project's "
                            "files: pass --force to replace them with augbench's defaults, or choose another folder")
    if folder.exists() and not folder.is_dir():
        raise AugbenchError(f"{folder}: exists and is not a folder; choose a folder name")
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        if name == ".gitignore":
            ours = folder / name
            before = ours.read_text(encoding="utf-8") if ours.is_file() else None
            text = gitignore_text(before)
            if text == before:
                continue
        write_text(folder / name, text)
    return [folder / name for name in files]


def init_project(folder: Path, force: bool = False, own_dvc: bool = False, refresh_pipeline: bool = False) -> str:
    """Write the project files, then set up DVC: ``dvc init --no-scm`` when ``folder`` is in no
    git repository (or ``own_dvc``: ``run --workdir``'s work folder, a project of its own). Inside
    git, whether DVC uses that repository is the user's call; the returned note says so."""
    write_project(folder, force, refresh_pipeline)
    if (folder / ".dvc").is_dir():
        return f"{folder} is a DVC project already"
    parent_dvc, git = dvc_root(folder), git_root(folder)
    if own_dvc or (git is None and parent_dvc is None):
        dvc_init(folder)
        return f"ran dvc init --no-scm in {folder} (a DVC project without git)"
    if parent_dvc is not None:
        return f"{folder} lies inside the DVC project {parent_dvc}; dvc repro there will use it"
    return (f"did not run dvc init: {folder} lies inside the git repository {git}, and whether DVC records "
            f"its pipeline there is your call: `cd {folder} && dvc init --subdir` (DVC beside git), or "
            "`dvc init --no-scm` there (DVC without git)")


# ------------------------------------------------------------------------------------ params


def _parse_set(item: str) -> tuple[str, Any]:
    """``"a.b=[1,2]"`` → ``("a.b", [1, 2])``, with config.parse_overrides' checks and messages."""
    key = item.split("=", 1)[0].strip()
    return key, config.get_dotted(config.parse_overrides([item]), key)


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def _profile_matrix(raw: dict, profile: str) -> dict:
    return ((raw.get("profiles") or {}).get(profile) or {}).get("matrix") or {}


def positive_controls_dropped(raw: dict, explicit: set[str]) -> list[tuple[str, Any]]:
    """For a dataset other than the phantom: every ``matrix.methods`` list of params.yaml (the base
    one and each profile's, except those in ``explicit``) less the positive control, which draws
    fresh phantom images and has nothing to draw from (the stages check every profile, so an
    inactive one would stop them too). One note on stderr per list changed."""
    from bench import registry

    where = [("matrix.methods", raw.get("matrix") or {}, raw.get("profile") or "quick")]
    where += [(f"profiles.{name}.matrix.methods", (section or {}).get("matrix") or {}, name)
              for name, section in (raw.get("profiles") or {}).items() if isinstance(section, dict)]
    edits = []
    for key, matrix, profile in where:
        if key in explicit or not isinstance(matrix.get("methods"), list):
            continue
        sections = (config.resolve(raw, profile).get("augment") or {}).get("methods") or {}  # variants name a plugin
        methods = matrix["methods"]
        dropped = registry.positive_controls(methods, lambda m, s=sections: (s.get(m) or {}).get("method", m))
        if dropped:
            print(f"augbench run: {key}: leaving out {', '.join(dropped)} (the positive control adds fresh "
                  "phantom images, which a folder dataset cannot supply)", file=sys.stderr)
            edits.append((key, [m for m in methods if m not in dropped]))
    return edits


def planned_edits(args: argparse.Namespace, raw: dict) -> list[tuple[str, Any]]:
    """The ``(key, value)`` pairs ``run`` writes into params.yaml, in order (a later one wins):
    ``--profile`` (with the profile's own ``matrix`` lists: dvc.yaml's ``${matrix...}`` reads the
    base section only), then the shortcuts, then each ``--set``. A key the active profile also
    sets is written there too, since a profile value wins over the base one."""
    profile = args.profile or raw.get("profile") or "quick"
    edits: list[tuple[str, Any]] = []
    if args.profile:
        config.resolve(raw, args.profile)  # an unknown profile is named before anything else
        edits.append(("profile", args.profile))
        edits += [(f"matrix.{k}", copy.deepcopy(v)) for k, v in _profile_matrix(raw, args.profile).items()]
    wanted: list[tuple[str, Any]] = []
    if args.data:
        data = Path(args.data).expanduser().resolve()  # a folder, a MedMNIST .npz or a CSV list
        name = data.stem if kind_of_path(data) != "folder" else data.name
        wanted += [("dataset.source", kind_of_path(data)), ("dataset.path", str(data)), ("dataset.name", name)]
    for flag, key in (("methods", "matrix.methods"), ("classifiers", "matrix.classifiers"), ("zoo", "matrix.zoo")):
        if getattr(args, flag) is not None:
            wanted.append((key, _names(getattr(args, flag))))
    if args.seeds is not None:
        try:
            wanted.append(("matrix.seeds", [int(s) for s in _names(args.seeds)]))
        except ValueError:
            raise ConfigError("--seeds", f"{args.seeds!r} is not a comma-separated list of integers",
                              "e.g. --seeds 0,1,2") from None
    wanted += [_parse_set(item) for item in args.overrides]
    trial = apply_edits(raw, [*edits, *wanted])
    if ((trial.get("dataset") or {}).get("source") or "phantom") != "phantom":
        explicit = {k for k, _ in wanted if k.endswith("matrix.methods")}
        if "matrix.methods" in explicit:  # the user's list is the active profile's too
            explicit.add(f"profiles.{profile}.matrix.methods")
        wanted += positive_controls_dropped(trial, explicit)
    for key, value in wanted:
        edits.append((key, value))
        if key != "profile" and config.has_dotted(((raw.get("profiles") or {}).get(profile) or {}), key):
            edits.append((f"profiles.{profile}.{key}", copy.deepcopy(value)))
    return edits


def apply_edits(raw: dict, edits: list[tuple[str, Any]]) -> dict:
    out = copy.deepcopy(raw)
    for key, value in edits:
        config.set_dotted(out, key, copy.deepcopy(value))
    return out


def validate(raw: dict, where: Path) -> config.Params:
    """The parameters as the stages will load them from the edited params.yaml (every profile checked)."""
    try:
        params = config.build(config.resolve(raw))
        config.check_other_profiles(raw, params.profile)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc.key}", exc.problem, exc.hint) from None
    except RegistryError as exc:
        raise RegistryError(f"{where}: {exc}") from None
    return params


def _roundtrip_yaml():
    # DVC's own YAML library (a dependency of dvc): keeps comments and key order
    from ruamel.yaml import YAML

    rt = YAML()
    rt.width = 4096
    rt.indent(mapping=2, sequence=4, offset=2)
    rt.preserve_quotes = True
    rt.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    return rt


def _flow(value: Any) -> Any:
    """Lists and mappings in flow style (``[a, b]``), as params.yaml writes them; a string that
    PyYAML (YAML 1.1, what the stages read with) would not read back as that string when written
    plain (``on``, ``no``, ``1:20``, ``1e3``) double-quoted."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString

    if isinstance(value, str) and not _reads_back(value):
        return DoubleQuotedScalarString(value)
    if isinstance(value, list):
        seq = CommentedSeq(_flow(v) for v in value)
        seq.fa.set_flow_style()
        return seq
    if isinstance(value, dict):
        mapping = CommentedMap((k, _flow(v)) for k, v in value.items())
        mapping.fa.set_flow_style()
        return mapping
    return value


def _reads_back(text: str) -> bool:
    """Whether the plain scalar ``text`` reads back as that string under YAML 1.1 (PyYAML)."""
    try:
        return yaml.safe_load(f"v: {text}\n") == {"v": text}
    except yaml.YAMLError:
        return False


def write_params_edits(path: Path, edits: list[tuple[str, Any]]) -> None:
    """Each edit into ``path`` in place, comments and key order kept (atomically). The text is
    written by ruamel (YAML 1.2) and read by the stages with PyYAML (YAML 1.1): it is read back
    with PyYAML first, and refused (``path`` untouched) unless every edited key reads as intended."""
    rt = _roundtrip_yaml()
    data = rt.load(path.read_text(encoding="utf-8"))
    for key, value in edits:
        config.set_dotted(data, key, _flow(value))
    buffer = io.StringIO()
    rt.dump(data, buffer)
    text = buffer.getvalue()
    reread, intended = yaml.safe_load(text) or {}, apply_edits({}, edits)  # a later edit of a key wins
    for key in dict.fromkeys(k for k, _ in edits):
        value = config.get_dotted(intended, key)
        if not config.has_dotted(reread, key) or config.get_dotted(reread, key) != value:
            got = config.get_dotted(reread, key) if config.has_dotted(reread, key) else "(absent)"
            raise ConfigError(key, f"would be read back from {path} as {got!r}, not {value!r} (YAML 1.1, as the "
                              "stages read it)", f"quote the value, or edit {path} by hand")
    write_text(path, text)


def _show(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=4096).strip().removesuffix("...").strip()


# ------------------------------------------------------------------------------------ commands


def run(args: argparse.Namespace) -> int:
    folder = Path(args.workdir) if args.workdir is not None else Path.cwd()
    fresh = not (folder / "dvc.yaml").is_file()
    if fresh and args.workdir is None:
        raise AugbenchError(f"{folder / 'dvc.yaml'}: not found, so this folder is no augbench project; create one "
                            "with `augbench init DIR` (then run there), or add --workdir DIR (initialised when it "
                            "has no dvc.yaml)")
    params_file = folder / "params.yaml"
    if fresh:
        raw = yaml.safe_load(default_text("params.yaml")) or {}
    else:
        raw = config.load_raw(params_file)
    edits = planned_edits(args, raw)
    final = apply_edits(raw, edits)
    params = validate(final, params_file)
    command = ["dvc", "repro", *(["--quiet"] if args.quiet or is_quiet() else [])]
    changes = final_changes(raw, final, edits)
    if args.dry_run:
        if fresh:
            print(f"would initialise {folder} (augbench init, dvc init --no-scm)")
        for key, value in changes:
            print(f"would set {params_file}: {key}: {_show(value)}")
        print(f"would run in {folder}: {shlex.join(command)}  (profile {params.profile}, methods "
              f"{', '.join(params.matrix.methods)}, classifiers {', '.join(params.matrix.classifiers)}, "
              f"seeds {', '.join(map(str, params.matrix.seeds))})")
        return 0
    program = dvc_program()
    if fresh:
        print(f"augbench run: {init_project(folder, own_dvc=True)}")
    elif dvc_root(folder) is None:
        if args.workdir is None:
            raise AugbenchError(f"{folder}: no DVC project here (no .dvc folder here or above); run `dvc init` "
                                "(inside a git repository) or `dvc init --no-scm`, then augbench run again")
        dvc_init(folder)
    warn_moved_code(folder / "dvc.yaml")
    # one `augbench run` per project from the params.yaml edit to the end of dvc repro: another one
    # would rewrite params.yaml under the stages of this one
    with workspace_lock(folder, f"the augbench project {folder}"):
        if not fresh and config.load_raw(params_file) != raw:
            raise AugbenchError(f"{params_file}: changed while augbench run was preparing its edits; run again")
        if changes:
            write_params_edits(params_file, changes)
            for key, value in changes:
                print(f"augbench run: {params_file}: {key}: {_show(value)}")
        print(shlex.join(command), flush=True)
        started = time.perf_counter()
        code = run_dvc([program, *command[1:]], folder)
    if code:
        print(f"augbench: error: {shlex.join(command)} failed in {folder} (exit code {code}); its output above "
              "names the stage", file=sys.stderr)
        return code
    print(f"augbench run: dvc repro finished in {time.perf_counter() - started:.0f}s; report: "
          f"{folder / 'reports' / 'results.md'}")
    return 0


def final_changes(raw: dict, final: dict, edits: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """``(key, value)`` for each key of ``edits`` (first-edit order, once each) whose value after
    all the edits (``final``, a later edit winning) differs from ``raw``'s."""
    keys = list(dict.fromkeys(k for k, _ in edits))
    get, has = config.get_dotted, config.has_dotted
    return [(k, get(final, k)) for k in keys if not has(raw, k) or get(raw, k) != get(final, k)]


def code_root_of(dvc_yaml: Path) -> Path | None:
    """The augbench code folder a project's dvc.yaml points its code dependencies at (None for the
    repository's own dvc.yaml, whose are relative)."""
    try:
        stages = (yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")) or {}).get("stages") or {}
    except (OSError, yaml.YAMLError):
        return None
    for stage in stages.values():
        for dep in (stage or {}).get("deps") or []:
            for package in CODE_PACKAGES:
                marker, padded = f"/{package}/", f"{dep}/"  # a file under the package, or the package itself
                if isinstance(dep, str) and Path(dep).is_absolute() and marker in padded:
                    return Path(padded[:padded.rindex(marker)])
    return None


def warn_moved_code(dvc_yaml: Path) -> None:
    """A warning when the project's dvc.yaml points at augbench code elsewhere than this augbench's
    (a moved or another virtualenv): DVC would fail on the missing dependencies, or hash the old code."""
    root = code_root_of(dvc_yaml)
    if root is not None and root.resolve() != CODE_ROOT:
        print(f"augbench run: warning: {dvc_yaml}'s code dependencies point at {root}, and this augbench is "
              f"installed at {CODE_ROOT}: run `augbench init --refresh-pipeline` in "
              f"{dvc_yaml.parent} to rewrite dvc.yaml for it (params.yaml is kept)", file=sys.stderr)


def run_dvc(command: list[str], folder: Path) -> int:
    """Run a dvc command in ``folder``, its output going straight to the terminal; its exit code.
    This Python's bin folder comes first on PATH, so the stages' ``augbench`` is this one even
    when its virtualenv is not activated."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")]).rstrip(os.pathsep)
    return subprocess.run(command, cwd=folder, check=False, env=env).returncode


def build_run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="augbench run", description="run the DVC pipeline of an augbench project (dvc repro), after "
        "writing the options into its params.yaml",
        epilog="Examples: augbench run --profile smoke --methods none,classical\n"
               "          augbench run --dry-run --seeds 0,1,2          (print what would change and run)\n"
               "          augbench run --workdir busi-run --data ../shared/datasets/busi --methods "
               "none,geometric-flipping --zoo ''\n"
               "Each option is written into params.yaml (every changed key is printed), where it stays: "
               "`dvc repro` alone then repeats the run.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", metavar="DIR",
                        help="the project folder (default: the current folder, which must hold dvc.yaml); "
                             "one without dvc.yaml is initialised first (augbench init, dvc init --no-scm)")
    parser.add_argument("--profile", help="set params.yaml `profile` (smoke, quick, paper) with its matrix lists")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="write a parameter, e.g. --set train.classifiers.resnet50.epochs=2 (value as YAML)")
    parser.add_argument("--data", metavar="FOLDER",
                        help="a folder-per-class dataset (= dataset.source=folder, dataset.path=<its absolute "
                             "path>, dataset.name=<its name>; --set dataset.name=... wins)")
    parser.add_argument("--methods", metavar="A,B", help="augmentation methods, comma-separated (= matrix.methods)")
    parser.add_argument("--classifiers", metavar="A,B",
                        help="classifiers trained on every method, comma-separated (= matrix.classifiers)")
    parser.add_argument("--zoo", metavar="A,B",
                        help="classifier variants trained on 'none' only, comma-separated; '' for none (= matrix.zoo)")
    parser.add_argument("--seeds", metavar="0,1", help="training seeds, comma-separated (= matrix.seeds)")
    parser.add_argument("--dry-run", action="store_true",
                        help="validate, print the params.yaml changes and the dvc command, change nothing")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress bars, no per-epoch lines, no INFO logs: warnings, errors and the "
                             "final summary line only (for CI)")
    return parser


def main_run(argv: list[str] | None = None) -> int:
    args = build_run_parser().parse_args(argv)
    with quiet_mode(args.quiet):
        return run(args)


def build_init_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="augbench init", description="write a ready augbench project (params.yaml, dvc.yaml, .gitignore, "
        "README.txt) into DIR; dvc init --no-scm there unless DIR is inside a git repository")
    parser.add_argument("dir", nargs="?", default=".", help="project folder (created if needed; default: here)")
    parser.add_argument("--force", action="store_true", help="replace existing project files with the defaults "
                        "(an existing .gitignore is kept, augbench's lines appended)")
    parser.add_argument("--refresh-pipeline", action="store_true",
                        help="rewrite only dvc.yaml, its code paths pointed at this augbench (after moving or "
                             "reinstalling it); params.yaml, dvc.lock and the data are kept")
    return parser


def main_init(argv: list[str] | None = None) -> int:
    args = build_init_parser().parse_args(argv)
    folder = Path(args.dir)
    if args.refresh_pipeline:
        write_project(folder, refresh_pipeline=True)
        print(f"augbench init: rewrote {folder / 'dvc.yaml'} for the augbench at {CODE_ROOT} (params.yaml kept); "
              "dvc repro re-runs the stages whose code differs")
        return 0
    note = init_project(folder, force=args.force)
    print(f"wrote an augbench project to {folder}/: {', '.join(project_files())}")
    print(f"augbench init: {note}")
    where = "" if folder.resolve() == Path.cwd().resolve() else f"cd {shlex.quote(os.fspath(folder))} && "
    print(f"next: {where}augbench run --profile smoke   (see README.txt there)")
    return 0
