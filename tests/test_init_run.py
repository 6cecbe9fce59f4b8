"""`augbench init` and `augbench run`: a project in any folder, one pipeline definition (dvc.yaml), run by DVC."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from bench import project
from bench.cli import main

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
OPTIONAL = {"pseudolabel": "data/pseudolabel", "quality": "data/quality", "scaling": "data/scaling"}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", project.PROJECT_FILES)
def test_packaged_defaults_equal_the_repository_files(name):
    """bench/defaults/ (package data, what `pip install` carries) are copies of the top-level files."""
    packaged = project.packaged_path(name)
    assert packaged.read_bytes() == (ROOT / name).read_bytes(), (
        f"{packaged.relative_to(ROOT)} differs from {name}: copy it over (cp {name} {packaged.relative_to(ROOT)})")
    assert not list(project.DEFAULTS.rglob("dvc.yaml"))  # DVC would take it for a second pipeline


@pytest.mark.parametrize("card", sorted(p.name for p in (ROOT / "datasets").glob("*.yaml")))
def test_packaged_cards_equal_the_repository_cards(card):
    """bench/defaults/datasets/ (package data: the cards an installed augbench finds) copies datasets/."""
    packaged = project.DEFAULTS / "datasets" / card
    assert packaged.is_file() and packaged.read_bytes() == (ROOT / "datasets" / card).read_bytes(), (
        f"{packaged} differs from datasets/{card}: copy it over (cp datasets/{card} {packaged.relative_to(ROOT)})")


def test_package_data_lists_the_defaults():
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert {"defaults/*.yaml", "defaults/datasets/*.yaml"} <= set(data["package-data"]["bench"])


def test_init_writes_a_project_and_refuses_to_overwrite(capsys, tmp_path):
    folder = tmp_path / "proj"
    code, out, err = run(capsys, "init", str(folder))
    assert code == 0, err
    assert sorted(p.name for p in folder.iterdir() if p.name not in (".dvc", ".dvcignore")) == [
        ".gitignore", "README.txt", "dvc.yaml", "params.yaml"]
    assert (folder / "params.yaml").read_bytes() == (ROOT / "params.yaml").read_bytes()
    assert {"/data/", "/runs/"} <= set((folder / ".gitignore").read_text().splitlines())
    assert "augbench run" in (folder / "README.txt").read_text()
    if project.git_root(folder) is None and project.dvc_root(tmp_path) is None:
        assert (folder / ".dvc").is_dir() and "dvc init --no-scm" in out
    (folder / "params.yaml").write_text("profile: mine\n")
    code, out, err = run(capsys, "init", str(folder))
    assert code == 2 and out == ""
    assert f"{folder / 'params.yaml'}: already exists" in err and "--force" in err
    assert (folder / "params.yaml").read_text() == "profile: mine\n"  # untouched
    code, _, err = run(capsys, "init", str(folder), "--force")
    assert code == 0, err
    assert (folder / "params.yaml").read_bytes() == (ROOT / "params.yaml").read_bytes()


def test_init_inside_git_leaves_dvc_init_to_the_user(capsys, tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    code, out, err = run(capsys, "init", str(tmp_path / "sub"))
    assert code == 0, err
    assert not (tmp_path / "sub" / ".dvc").exists()
    assert "did not run dvc init" in out and "your call" in out and str(tmp_path) in out


def test_project_dvc_yaml_is_the_repository_pipeline_with_installed_code(tmp_path):
    """The same stages, commands, params and data paths; each code dependency an existing absolute path."""
    ours = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    theirs = yaml.safe_load(project.project_files()["dvc.yaml"])["stages"]
    assert list(ours) == list(theirs)
    code_deps = 0
    for name, stage in ours.items():
        other = theirs[name]
        assert {k: v for k, v in stage.items() if k != "deps"} == {k: v for k, v in other.items() if k != "deps"}
        for dep, written in zip(stage.get("deps", []), other.get("deps", []), strict=True):
            if dep.split("/")[0] in project.CODE_PACKAGES:
                assert Path(written).is_absolute() and Path(written).exists(), written
                assert Path(written) == project.CODE_ROOT / dep
                code_deps += 1
            else:
                assert written == dep
    assert code_deps > 20


@pytest.fixture
def proj(tmp_path, monkeypatch):
    """An initialised project as the current folder; `dvc repro` recorded instead of run."""
    folder = tmp_path / "proj"
    project.init_project(folder, own_dvc=True)
    monkeypatch.chdir(folder)
    calls = []

    def fake_run(command, cwd):
        calls.append((command, Path(cwd)))
        return 0

    monkeypatch.setattr("bench.project.run_dvc", fake_run)
    return folder, calls


def test_run_writes_the_options_into_params_yaml_then_runs_dvc_repro(capsys, proj, tmp_path):
    from bench import config

    folder, calls = proj
    before = (folder / "params.yaml").read_text()
    data = tmp_path / "my data"
    code, out, err = run(capsys, "run", "--profile", "smoke", "--data", str(data), "--methods", "none,classical",
                         "--zoo", "", "--seeds", "0", "--set", "train.classifiers.resnet50.epochs=2")
    assert code == 0, err
    assert calls == [([project.dvc_program(), "repro"], folder)]
    text = (folder / "params.yaml").read_text()
    assert "# 5 seeds: the fewest" in text  # the comments stay
    changed = [line for line in out.splitlines() if line.startswith("augbench run: ")]
    assert f"augbench run: {folder / 'params.yaml'}: dataset.path: {data.resolve()}" in changed
    assert any(line.endswith("matrix.methods: [none, classical]") for line in changed)
    params = config.load_params(folder / "params.yaml")  # what every stage reads
    assert params.profile == "smoke" and list(params.matrix.methods) == ["none", "classical"]
    assert list(params.matrix.seeds) == [0] and not params.matrix.zoo
    assert params.dataset.source == "folder" and params.dataset.path == str(data.resolve())
    assert params.dataset.name == "my data"
    raw = yaml.safe_load(text)  # dvc.yaml's ${matrix...} reads the base section
    assert raw["matrix"]["methods"] == ["none", "classical"] and raw["matrix"]["seeds"] == [0]
    assert raw["profiles"]["smoke"]["train"]["classifiers"]["resnet50"]["epochs"] == 2
    assert text != before
    assert out.splitlines()[-1].startswith("augbench run: dvc repro finished in ")


def test_run_explicit_set_wins_over_data_name(capsys, proj, tmp_path):
    folder, _ = proj
    code, _, err = run(capsys, "run", "--data", str(tmp_path / "x"), "--set", "dataset.name=busi", "--methods", "none")
    assert code == 0, err
    assert yaml.safe_load((folder / "params.yaml").read_text())["dataset"]["name"] == "busi"


def test_run_refuses_a_bad_option_before_writing_or_running(capsys, proj):
    folder, calls = proj
    before = (folder / "params.yaml").read_bytes()
    code, out, err = run(capsys, "run", "--methods", "none,geometric-fliping")
    assert code == 2 and out == "" and not calls
    assert "unknown augmenter 'geometric-fliping'" in err and "'geometric-flipping'" in err
    assert str(folder / "params.yaml") in err
    assert (folder / "params.yaml").read_bytes() == before
    code, _, err = run(capsys, "run", "--seeds", "0,x")
    assert code == 2 and "--seeds" in err and not calls


def test_run_failure_returns_dvc_exit_code(capsys, proj, monkeypatch):
    folder, _ = proj
    monkeypatch.setattr("bench.project.run_dvc", lambda command, cwd: 3)
    code, out, err = run(capsys, "run")
    assert code == 3 and out == "dvc repro\n"
    assert f"dvc repro failed in {folder} (exit code 3)" in err


def test_run_outside_a_project_says_how_to_make_one(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "run", "--dry-run")
    assert code == 2 and out == ""
    assert "dvc.yaml: not found" in err and "augbench init DIR" in err and "--workdir" in err


def test_run_workdir_dry_run_changes_nothing(capsys, tmp_path):
    work = tmp_path / "w"
    code, out, err = run(capsys, "run", "--dry-run", "--workdir", str(work), "--methods", "none,classical")
    assert code == 0, err
    assert f"would initialise {work}" in out and "matrix.methods: [none, classical]" in out
    assert out.splitlines()[-1].startswith(f"would run in {work}: dvc repro  (profile quick, methods none, classical")
    assert not work.exists()


def test_the_in_process_orchestrator_is_gone():
    """One pipeline definition: `augbench run` drives DVC, there is no second stage loop."""
    assert not (ROOT / "bench" / "stages" / "run_all.py").exists()
    from bench import cli

    assert cli.TOOLS["run"] == "bench.project:main_run" and "run" not in cli.STAGES


def _set_optional(folder: Path, enabled: bool) -> None:
    project.write_params_edits(folder / "params.yaml", [(f"{s}.enabled", enabled) for s in OPTIONAL])


def test_optional_stages_switched_off_do_no_work(capsys, tmp_path, monkeypatch):
    """A project whose parameters leave out pseudolabel, quality and scaling: each stage, run exactly as
    its dvc.yaml command reads, writes only switched_off.json and never reaches its work (fold encoders
    and training, the quality table, horovodrun), nor reads the data it would need."""
    folder = tmp_path / "proj"
    project.init_project(folder, own_dvc=True)
    _set_optional(folder, False)
    monkeypatch.chdir(folder)
    for target in ("bench.stages.pseudolabel.pseudolabel", "bench.stages.pseudolabel.load_prepared",
                   "bench.stages.quality.measure", "bench.stages.scaling.scale", "bench.distributed.launch",
                   "bench.stages.encoder.train_encoders", "bench.stages.train.run"):
        monkeypatch.setattr(target, lambda *a, _t=target, **k: pytest.fail(f"{_t} ran for a stage switched off"))
    stages = yaml.safe_load((folder / "dvc.yaml").read_text())["stages"]
    for stage, out in OPTIONAL.items():
        argv = shlex.split(stages[stage]["cmd"])
        assert argv[0] == "augbench" and stages[stage]["outs"] == [out]
        code, _, err = run(capsys, *argv[1:])
        assert code == 0, err
        assert sorted(p.relative_to(folder / out).as_posix() for p in (folder / out).rglob("*")) == [
            "switched_off.json"], stage
        assert json.loads((folder / out / "switched_off.json").read_text())["stage"] == stage
    assert not (folder / "data" / "prepared").exists()  # nothing upstream was needed


def test_quick_profile_leaves_the_optional_stages_out():
    """The default profile is one such project."""
    from bench import config

    params = config.load_params(ROOT / "params.yaml")
    assert params.profile == "quick"
    assert not (params.pseudolabel.enabled or params.quality.enabled or params.scaling.enabled)


def _folder_dataset(root: Path, per_class: int = 14, size: int = 40) -> Path:
    """Two classes of distinct random-texture PNGs (no near-duplicates: pHash differs)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, shift in (("benign", 0), ("malignant", 60)):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 196, (size, size)) + shift
            pixels[: size // 2] = np.clip(pixels[: size // 2] + rng.integers(0, 60), 0, 255)
            Image.fromarray(pixels.astype(np.uint8), mode="L").save(root / label / f"{label}{i}.png")
    return root


@pytest.mark.slow
@pytest.mark.pipeline
def test_run_workdir_on_a_folder_dataset_end_to_end(tmp_path):
    """`augbench run --workdir` on a tiny folder dataset, smoke profile, optional stages off: the work folder
    is initialised, dvc repro runs every stage, the report exists, and the optional stages did no work."""
    from tests.test_pipeline import _env

    data = _folder_dataset(tmp_path / "scans")
    work = tmp_path / "work"
    sets = [f"{s}.enabled=false" for s in OPTIONAL]
    argv = [str(BIN / "augbench"), "--quiet", "run", "--workdir", str(work), "--profile", "smoke", "--data", str(data),
            "--methods", "none", "--zoo", "", "--seeds", "0", *(a for s in sets for a in ("--set", s))]
    done = subprocess.run(argv, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert (work / ".dvc").is_dir() and (work / "dvc.lock").is_file()
    assert (work / "reports" / "results.md").is_file() and (work / "reports" / "index.html").is_file()
    manifest = (work / "data" / "prepared" / "manifest.csv").read_text()
    assert "malignant" in manifest and "scans" in yaml.safe_load((work / "params.yaml").read_text())["dataset"]["path"]
    for out in OPTIONAL.values():
        assert sorted(p.name for p in (work / out).iterdir()) == ["switched_off.json"], out
    assert not any((work / "reports" / n).exists() for n in ("quality.csv", "pseudolabel.csv", "speedup.csv"))
    assert "horovodrun" not in done.stdout + done.stderr
    status = subprocess.run([str(BIN / "dvc"), "status"], cwd=work, env=_env(), capture_output=True, text=True)
    assert "up to date" in status.stdout, status.stdout


def test_run_writes_each_key_s_final_value(capsys, proj, tmp_path):
    """A later edit wins even where it equals the file's value: an earlier, overridden one is not written."""
    folder, _ = proj
    code, _, err = run(capsys, "run", "--set", "dataset.name=busi", "--methods", "none")
    assert code == 0, err
    code, out, err = run(capsys, "run", "--data", str(tmp_path / "Dataset_BUSI"), "--set", "dataset.name=busi")
    assert code == 0, err
    raw = yaml.safe_load((folder / "params.yaml").read_text())
    assert raw["dataset"]["name"] == "busi" and raw["dataset"]["path"] == str((tmp_path / "Dataset_BUSI").resolve())
    assert "dataset.name" not in out  # unchanged: not printed, not written

    code, out, err = run(capsys, "run", "--profile", "smoke", "--seeds", "0,1,2,3,4")
    assert code == 0, err
    raw = yaml.safe_load((folder / "params.yaml").read_text())
    assert raw["profile"] == "smoke" and raw["matrix"]["seeds"] == [0, 1, 2, 3, 4]
    if "seeds" in (raw["profiles"]["smoke"].get("matrix") or {}):
        assert raw["profiles"]["smoke"]["matrix"]["seeds"] == [0, 1, 2, 3, 4]
    from bench import config

    assert list(config.load_params(folder / "params.yaml").matrix.seeds) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("value", ["on", "no", "1:20", "1e3", "null"])
def test_params_yaml_strings_read_back_as_strings(tmp_path, value):
    """ruamel writes YAML 1.2, the stages read YAML 1.1 (PyYAML): such strings are quoted."""
    path = tmp_path / "params.yaml"
    path.write_text("# a comment\ndataset: {name: busi, path: null}\n")
    project.write_params_edits(path, [("dataset.name", value), ("dataset.path", [value, "x"])])
    raw = yaml.safe_load(path.read_text())
    assert raw["dataset"]["name"] == value and raw["dataset"]["path"] == [value, "x"]
    assert path.read_text().startswith("# a comment\n")


def test_run_refuses_while_another_run_holds_the_project(capsys, proj):
    from bench.lock import workspace_lock

    folder, calls = proj
    before = (folder / "params.yaml").read_bytes()
    with workspace_lock(folder, "the project"):
        code, out, err = run(capsys, "run", "--seeds", "7")
    assert code != 0 and not calls
    assert "in use by another augbench run" in err and str(folder / ".augbench.lock") in err
    assert (folder / "params.yaml").read_bytes() == before


def test_run_data_kind_follows_the_path(proj, tmp_path):
    folder, _ = proj
    edits = project.planned_edits(project.build_run_parser().parse_args(["--data", str(tmp_path / "list.csv")]),
                                  yaml.safe_load((folder / "params.yaml").read_text()))
    assert ("dataset.source", "csv") in edits and ("dataset.name", "list") in edits


def test_dvc_runs_with_this_python_first_on_path(tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    code = project.run_dvc([sys.executable, "-c", "import os; print(os.environ['PATH'])"], tmp_path)
    assert code == 0
    assert capfd.readouterr().out.strip().split(":")[0] == str(BIN)


def test_refresh_pipeline_rewrites_dvc_yaml_only(capsys, proj):
    folder, _ = proj
    (folder / "params.yaml").write_text((folder / "params.yaml").read_text() + "# mine\n")
    params = (folder / "params.yaml").read_text()
    moved = (folder / "dvc.yaml").read_text().replace(project.CODE_ROOT.as_posix(), "/old/venv/site-packages")
    (folder / "dvc.yaml").write_text(moved)
    code, _, err = run(capsys, "run")
    assert code == 0 and "/old/venv/site-packages" in err and "augbench init --refresh-pipeline" in err
    code, out, err = run(capsys, "init", str(folder), "--refresh-pipeline")
    assert code == 0, err
    assert (folder / "dvc.yaml").read_text() == project.project_files()["dvc.yaml"]
    assert (folder / "params.yaml").read_text() == params
    assert project.code_root_of(folder / "dvc.yaml") == project.CODE_ROOT


def test_init_keeps_the_user_s_gitignore(capsys, tmp_path):
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / ".gitignore").write_text("*.log")
    code, _, err = run(capsys, "init", str(folder))
    assert code == 0, err
    text = (folder / ".gitignore").read_text()
    assert text.startswith("*.log\n") and {"/data/", "/runs/", ".augbench.lock"} <= set(text.splitlines())
    code, _, err = run(capsys, "init", str(folder), "--force")
    assert code == 0, err
    assert (folder / ".gitignore").read_text() == text  # appended once
