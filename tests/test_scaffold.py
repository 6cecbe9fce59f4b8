"""``augbench new-plugin``: names and folders refused, the files written, and the packages at work.

The scaffolded packages are installed with ``pip install --target`` into a
temporary folder and used through ``PYTHONPATH`` in subprocesses, so the
project's environment is never changed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import tomlkit  # pinned in requirements.lock (DVC needs it); tomllib is Python >= 3.11 only

from bench import registry, scaffold
from bench.cli import main
from bench.registry import LoadFailure

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
AUG, CLF = "gamma-test", "tiny-cnn-test"
FILES = {".gitignore", "README.md", "pyproject.toml", "tests/test_plugin.py"}


def _toml(text: str) -> dict:
    return tomlkit.parse(text).unwrap()


def _package(name: str) -> str:
    return scaffold.Names(name, "augmenter").module


def _run(args: list[str], cwd: Path, site: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "TF_CPP_MIN_LOG_LEVEL": "2"}
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("name", ["Gamma", "gamma_x", "gamma x", "-gamma", "gamma-", "gamma--x", "1gamma",
                                  "gämma", "", "a" * 41])
def test_bad_names_are_refused(tmp_path, name):
    with pytest.raises(scaffold.ScaffoldError, match=f"invalid plugin name {name!r}: use lowercase letters"):
        scaffold.create(name, "augmenter", tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", scaffold.KINDS)
@pytest.mark.parametrize(("name", "owner"), [("none", "augmenter methods.augment.baseline.NoAugmentation"),
                                             ("resnet50", "classifier methods.classify.resnet.ResNet50Classifier")])
def test_registered_names_are_refused_whatever_the_kind(tmp_path, kind, name, owner):
    with pytest.raises(scaffold.ScaffoldError, match=f"{name!r} is already registered as {owner}; pick another"):
        scaffold.create(name, kind, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_name_claimed_by_a_broken_package_is_refused(tmp_path, monkeypatch):
    registry.discover()
    failure = LoadFailure("augmenter", "fancy-gan", "augbench-gan", "ImportError: needs torch")
    monkeypatch.setattr(registry, "_failures", [failure])
    with pytest.raises(scaffold.ScaffoldError, match="'fancy-gan' is already claimed by package 'augbench-gan'"):
        scaffold.create("fancy-gan", "augmenter", tmp_path)


def test_an_existing_folder_is_refused_unless_empty(tmp_path):
    target = tmp_path / "augbench-gamma"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(scaffold.ScaffoldError, match=r"augbench-gamma already exists and is not an empty folder; "
                                                     r"nothing was written"):
        scaffold.create("gamma", "augmenter", tmp_path)
    assert [p.name for p in target.iterdir()] == ["notes.txt"] and (target / "notes.txt").read_text() == "mine"
    (tmp_path / "augbench-flat").write_text("a file")
    with pytest.raises(scaffold.ScaffoldError, match="augbench-flat already exists"):
        scaffold.create("flat", "augmenter", tmp_path)
    (tmp_path / "augbench-empty").mkdir()
    folder, _ = scaffold.create("empty", "augmenter", tmp_path)
    assert (folder / "pyproject.toml").is_file()


def test_cli_errors_and_notes(tmp_path, capsys):
    assert main(["new-plugin", "resnet50", "--kind", "classifier", "--out", str(tmp_path)]) == 2
    assert "augbench: error: new-plugin: 'resnet50' is already registered" in capsys.readouterr().err
    assert main(["new-plugin", "Gamma", "--out", str(tmp_path)]) == 2
    assert "invalid plugin name 'Gamma'" in capsys.readouterr().err
    # A name close to a registered one is allowed, with the registry's "did you mean" as a note.
    assert main(["new-plugin", "geometric-rotaton", "--out", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert "augbench: note: 'geometric-rotaton' is close to a registered plugin (did you mean 'geometric-rotation'" in err
    assert f"wrote augmenter plugin 'geometric-rotaton' to {tmp_path / 'augbench-geometric-rotaton'}" in out
    assert "add geometric-rotaton to matrix.methods in params.yaml" in out
    with pytest.raises(SystemExit):
        main(["new-plugin", "x", "--kind", "augmentor"])
    assert "invalid choice: 'augmentor'" in capsys.readouterr().err


def test_help_texts(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "new-plugin" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["new-plugin", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for text in ("augbench-NAME", "contract checks", "lowercase letters, digits and hyphens",
                 "--kind {augmenter,classifier}", "(default: augmenter)", "(default: the current folder)"):
        assert text in out


# --------------------------------------------------------------------------- the files


@pytest.mark.parametrize(("kind", "name"), [("augmenter", "gamma"), ("classifier", "small-cnn2")])
def test_generated_files(tmp_path, kind, name):
    folder, files = scaffold.create(name, kind, tmp_path)
    module = _package(name)
    assert folder == tmp_path / f"augbench-{name}"
    assert set(files) == FILES | {f"{module}/__init__.py", f"{module}/plugin.py"}
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) == sorted(files)
    meta = _toml((folder / "pyproject.toml").read_text())
    assert meta["build-system"]["build-backend"] == "setuptools.build_meta"
    assert meta["project"]["name"] == f"augbench-{name}"
    assert any(dep.startswith("augbench") for dep in meta["project"]["dependencies"])
    cls = scaffold.Names(name, kind).cls
    assert meta["project"]["entry-points"] == {registry.GROUPS[kind]: {name: f"{module}.plugin:{cls}"}}
    plugin = (folder / module / "plugin.py").read_text()
    assert f"class {cls}(" in plugin and "@dataclass(frozen=True)" in plugin and "require(" in plugin
    assert f'contract.checks("{kind}", NAME)' in (folder / "tests" / "test_plugin.py").read_text()
    readme = (folder / "README.md").read_text()
    key = "methods" if kind == "augmenter" else "classifiers"
    for text in ("pip install -e .", f"augbench describe {name}", f"matrix.{key}", "augbench run", "pytest"):
        assert text in readme
    assert "$" not in readme.replace("${", "")  # every placeholder was filled


@pytest.mark.parametrize("kind", scaffold.KINDS)
def test_generated_files_pass_ruff_with_the_project_rules(tmp_path, kind):
    folder, _ = scaffold.create("lint-me", kind, tmp_path)
    ours = _toml((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]
    theirs = _toml((folder / "pyproject.toml").read_text())["tool"]["ruff"]
    assert theirs["lint"] == ours["lint"] and theirs["line-length"] == ours["line-length"]
    done = subprocess.run([str(BIN / "ruff"), "check", "--no-cache", "."], cwd=folder, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


# --------------------------------------------------------------------------- installed and used (slow: subprocesses)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """Both kinds scaffolded and installed into a private folder (never into the project's venv)."""
    tmp = tmp_path_factory.mktemp("plugins")
    folders = {kind: scaffold.create(name, kind, tmp)[0] for kind, name in (("augmenter", AUG), ("classifier", CLF))}
    site = tmp / "site"
    _run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
          "--disable-pip-version-check", "--target", str(site), *map(str, folders.values())], cwd=tmp)
    return {"tmp": tmp, "site": site, **folders}


@pytest.mark.slow
def test_installed_plugins_are_listed_and_described(installed):
    out = _run([str(BIN / "augbench"), "list"], installed["tmp"], installed["site"])
    listed = {line.split()[0] for line in out.stdout.splitlines() if line.startswith("  ")}
    assert {AUG, CLF} <= listed and "none" in listed
    assert "broken:" not in out.stderr
    aug = _run([str(BIN / "augbench"), "describe", AUG], installed["tmp"], installed["site"]).stdout
    assert aug.startswith(f"{AUG} (augmenter, {_package(AUG)}.plugin.GammaTestAugmenter)")
    for field in ("factor", "gamma", "contrast"):
        assert f"    {field} " in aug
    assert "tuple[float, float]          default (0.7, 1.4)" in aug
    clf = _run([str(BIN / "augbench"), "describe", CLF], installed["tmp"], installed["site"]).stdout
    assert clf.startswith(f"{CLF} (classifier, {_package(CLF)}.plugin.TinyCnnTestClassifier)")
    for field in ("filters", "dropout", "epochs", "batch_size", "learning_rate"):
        assert f"    {field} " in clf


@pytest.mark.slow
@pytest.mark.parametrize("kind", scaffold.KINDS)
def test_the_package_own_tests_pass(installed, kind):
    out = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], installed[kind], installed["site"])
    assert " passed" in out.stdout and "failed" not in out.stdout and "error" not in out.stdout.lower()


@pytest.mark.slow
@pytest.mark.pipeline
def test_smoke_pipeline_with_the_new_plugins(installed):
    """The new method in the matrix by one --set; the new classifier beside resnet50 by another."""
    work = installed["tmp"] / "w"
    _run([str(BIN / "augbench"), "run", "--workdir", str(work),
          "--profile", "smoke", "--set", f"matrix.methods=[none,{AUG}]", "--set", "matrix.zoo=[]",
          "--set", f"matrix.classifiers=[resnet50,{CLF}]",
          # what this test is not about: one encoder, no pseudo-label folds, no quality table
          "--set", "encoder.archs=[vgg19]", "--set", "pseudolabel.enabled=false", "--set", "quality.enabled=false"],
         installed["tmp"], installed["site"], timeout=900)
    results = pd.read_csv(work / "reports" / "results.csv")
    pairs = set(zip(results["method"], results["classifier"], strict=True))
    assert pairs == {(m, c) for m in ("none", AUG) for c in ("resnet50", CLF)}
    assert (results["n_test"] > 0).all() and results["auc"].notna().all()
    meta = json.loads((work / "data" / "augmented" / AUG / "meta.json").read_text())  # dvc.yaml's layout
    assert meta["mode"] == "append"
    records = [json.loads(line) for line in (work / "data" / "augmented" / AUG / "provenance.jsonl").read_text().splitlines()]
    assert records and all(r["method"] == AUG and 0.7 <= r["gamma"] <= 1.4 for r in records)
    assert f"| {AUG}" in (work / "reports" / "results.md").read_text()
    assert not (work / "data" / "pseudolabel" / "report").exists() and not (work / "reports" / "quality.csv").exists()
