"""Black-box tests of the ``augbench`` command line, run in-process through ``bench.cli.main``."""

from __future__ import annotations

import importlib.metadata as md
import io
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from bench import registry
from bench.cli import main

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()  # drop anything printed before
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def plugin_lines(out: str) -> dict[str, list[str]]:
    """``augbench list`` output → {"augmenters": [names], "classifiers": [names]}."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in out.splitlines():
        if line and not line.startswith(" "):
            current = line.rstrip(":")
            sections[current] = []
        elif line.strip():
            sections[current].append(line.split()[0])
    return sections


def parameter_lines(out: str) -> dict[str, str]:
    """``augbench describe`` output → {parameter name: its line}."""
    lines = out.splitlines()
    start = lines.index("  parameters:") + 1
    return {line.split()[0]: line for line in lines[start:] if line.startswith("    ")}


# ------------------------------------------------------------------- list


def test_list(capsys):
    code, out, err = run(capsys, "list")
    assert code == 0
    sections = plugin_lines(out)
    assert list(sections) == ["augmenters", "classifiers"]
    augmenters = sections["augmenters"]
    assert augmenters == sorted(augmenters)
    assert {"none", "classical", "geometric-rotation", "geometric-scaling",
            "geometric-flipping"} <= set(augmenters)
    assert "resnet50" in sections["classifiers"]
    # Each plugin is shown with its one-line summary.
    assert any(line.startswith("  none ") and "Baseline" in line for line in out.splitlines())
    assert "broken:" not in err


def test_list_glob(capsys):
    code, out, _ = run(capsys, "list", "geometric-*")
    assert code == 0
    assert plugin_lines(out) == {
        "augmenters": ["geometric-flipping", "geometric-rotation", "geometric-scaling"],
        "classifiers": [],
    }
    code, out, _ = run(capsys, "list", "resnet*")
    assert plugin_lines(out) == {"augmenters": [], "classifiers": ["resnet50"]}


@dataclass
class _Dist:
    name: str


class _BrokenEntryPoint:
    name = "fancy-gan"
    value = "augbench_fancy_gan:FancyGAN"
    dist = _Dist("augbench-gan")

    def load(self):
        raise ImportError("No module named 'torch'")


def test_list_reports_broken_plugin_on_stderr(capsys, monkeypatch):
    monkeypatch.setattr(registry, "_plugins", {kind: {} for kind in registry.GROUPS})
    monkeypatch.setattr(registry, "_failures", [])
    monkeypatch.setattr(registry, "_discovered", False)
    good = md.EntryPoint("none", "methods.augment.baseline:NoAugmentation", "augbench.augmenters")
    eps = {"augbench.augmenters": [_BrokenEntryPoint(), good], "augbench.classifiers": []}
    monkeypatch.setattr(registry, "_entry_points", lambda group: eps[group])
    with pytest.warns(RuntimeWarning, match="augbench-gan"):
        code, out, err = run(capsys, "list")
    assert code == 0
    assert plugin_lines(out) == {"augmenters": ["none"], "classifiers": []}
    assert ("broken: augmenter 'fancy-gan' from package 'augbench-gan' failed to load: "
            "ImportError: No module named 'torch'") in err
    code, _, err = run(capsys, "describe", "fancy-gan")
    assert code == 2
    assert "from package 'augbench-gan' failed to load" in err


# --------------------------------------------------------------- describe


def test_describe_classical(capsys):
    code, out, err = run(capsys, "describe", "classical")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "classical (augmenter, methods.augment.classical.ClassicalAugmentation)"
    assert "  source: Fedoruk et al. 2022, §Classical augmentation" in lines
    assert "  mode: append" in lines
    params = parameter_lines(out)
    assert list(params) == ["factor", "rotation_range", "width_shift_range", "height_shift_range",
                            "shear_range", "zoom_range", "horizontal_flip", "brightness_range"]
    assert "default 5.0" in params["rotation_range"]
    assert params["rotation_range"].endswith("[Fedoruk et al. 2022, §Classical augmentation]")
    assert "(degrees, Keras semantics)]" in params["shear_range"]
    assert "default (0.6, 1.4)" in params["brightness_range"]
    assert "tuple[float, float]" in params["brightness_range"]
    assert "default False" in params["horizontal_flip"] and " bool " in params["horizontal_flip"]


def test_describe_resnet50_does_not_build_a_model(capsys, monkeypatch):
    from methods.classify.resnet import ResNet50Classifier

    def forbidden(*args, **kwargs):
        raise AssertionError("describe must not build or run the model")

    for attr in ("build", "backbone", "preprocess"):
        monkeypatch.setattr(ResNet50Classifier, attr, forbidden)
    tf_before = "tensorflow" in sys.modules
    code, out, err = run(capsys, "describe", "resnet50")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "resnet50 (classifier, methods.classify.resnet.ResNet50Classifier)"
    assert any(line.startswith("  source: Panigrahi et al. 2024") for line in lines)
    assert not any(line.startswith("  mode:") for line in lines)  # augmenters only
    params = parameter_lines(out)
    assert {"weights", "transfer", "epochs", "batch_size", "learning_rate", "momentum"} <= set(params)
    assert "default 20" in params["epochs"] and "[Panigrahi et al. 2024" in params["epochs"]
    assert "default 0.0001" in params["learning_rate"]
    assert "'finetune-all'" in params["transfer"] and "'feature-extraction'" in params["transfer"]
    assert "int | None" in params["input_size"]
    if not tf_before:
        assert "tensorflow" not in sys.modules


@pytest.mark.parametrize("name,hints", [
    ("nonexistent", ["known: ", "classical", "geometric-flipping", "geometric-rotation", "none"]),
    ("clasical", ["did you mean", "'classical'"]),
    ("resnet5", ["did you mean", "'resnet50'"]),
])
def test_describe_unknown_name(capsys, name, hints):
    code, out, err = run(capsys, "describe", name)
    assert code == 2
    assert out == ""
    assert err.startswith("augbench: error: ")
    assert f"'{name}'" in err
    assert all(h in err for h in hints)
    assert "Traceback" not in err


# ----------------------------------------------------------------- params


def test_params_profile_smoke(capsys):
    raw = yaml.safe_load(PARAMS.read_text(encoding="utf-8"))
    code, out, err = run(capsys, "params", "--params", str(PARAMS), "--profile", "smoke")
    assert code == 0, err
    resolved = yaml.safe_load(out)
    smoke = raw["profiles"]["smoke"]
    assert resolved["profile"] == "smoke"
    assert resolved["preprocess"]["image_size"] == smoke["preprocess"]["image_size"]
    assert resolved["preprocess"]["srad_dt"] == raw["preprocess"]["srad_dt"]
    resnet = resolved["train"]["classifiers"]["resnet50"]
    assert resnet["epochs"] == smoke["train"]["classifiers"]["resnet50"]["epochs"]
    assert resnet["momentum"] == raw["train"]["classifiers"]["resnet50"]["momentum"]
    assert resolved["split"]["ratios"] == raw["split"]["ratios"]
    assert resolved["matrix"]["methods"] == raw["matrix"]["methods"]


def test_params_set_override(capsys):
    code, out, _ = run(capsys, "params", "--params", str(PARAMS), "--profile", "smoke",
                       "--set", "train.classifiers.resnet50.epochs=3", "--set", "preprocess.srad=true")
    assert code == 0
    resolved = yaml.safe_load(out)
    assert resolved["train"]["classifiers"]["resnet50"]["epochs"] == 3
    assert resolved["preprocess"]["srad"] is True


def test_params_set_typo_fails_with_suggestion(capsys):
    code, out, err = run(capsys, "params", "--params", str(PARAMS),
                         "--set", "train.classifiers.resnet50.epoch=3")
    assert code == 2
    assert out == ""
    assert "train.classifiers.resnet50.epoch: unknown parameter" in err
    assert "did you mean 'epochs'?" in err


@pytest.mark.parametrize("argv,text", [
    (["--set", "split.ratios=[0.8, 0.1"], "split.ratios: override value '[0.8, 0.1' is not valid YAML"),
    (["--set", "epochs3"], "an override must look like key.path=value"),
    (["--profile", "fast"], "unknown profile 'fast'"),
    (["--set", "matrix.methods=[none, geometric-rotaton]"], "matrix.methods.1: unknown augmenter"),
])
def test_params_errors_exit_2(capsys, argv, text):
    code, out, err = run(capsys, "params", "--params", str(PARAMS), *argv)
    assert code == 2 and out == ""
    assert text in err
    assert "Traceback" not in err


def test_params_missing_file(capsys, tmp_path):
    code, _, err = run(capsys, "params", "--params", str(tmp_path / "missing.yaml"))
    assert code == 2
    assert f"{tmp_path / 'missing.yaml'}: file not found" in err


# --------------------------------------------------------------- validate


def _image(seed: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (32, 32), dtype=np.uint8)
    return Image.fromarray(pixels, mode="L")


@pytest.fixture
def dataset(tmp_path) -> dict[str, Path]:
    """benign: b1, b2, dup; malignant: m1 (same bytes as benign/dup), m2, a truncated PNG."""
    root = tmp_path / "data"
    (root / "benign").mkdir(parents=True)
    (root / "malignant").mkdir()
    for rel, seed in (("benign/b1.png", 1), ("benign/b2.png", 2), ("malignant/m1.png", 3),
                      ("malignant/m2.png", 4)):
        _image(seed).save(root / rel)
    (root / "benign" / "dup.png").write_bytes((root / "malignant" / "m1.png").read_bytes())
    buf = io.BytesIO()
    _image(5).save(buf, format="PNG")
    bad = root / "malignant" / "broken.png"
    bad.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (root / "benign" / "notes.txt").write_text("not an image", encoding="utf-8")
    return {"root": root, "bad": bad, "notes": root / "benign" / "notes.txt"}


def test_validate_reports_conflict_and_unreadable(capsys, tmp_path, dataset):
    report_json = tmp_path / "out" / "report.json"
    report_md = tmp_path / "out" / "report.md"
    code, out, err = run(capsys, "validate", str(dataset["root"]), "--json", str(report_json),
                         "--markdown", str(report_md))
    assert code == 0, err

    assert "- Image files found: 6 (benign 3, malignant 3)" in out
    assert "- Usable images: 3 (benign 2, malignant 1)" in out
    assert "- Unreadable images: 1" in out
    assert "- Label conflicts: 1 groups (2 images, dropped; 2 images dropped)" in out
    assert "- `benign/dup`, `malignant/m1`" in out.split("## Label conflicts")[1]
    unreadable = out.split("## Unreadable")[1].splitlines()
    line = next(x for x in unreadable if x.startswith("- "))
    assert line.startswith(f"- `{dataset['bad']}`: {dataset['bad']}: truncated or corrupt image data")
    assert f"- `{dataset['notes']}`: not an image file" in out

    report = json.loads(report_json.read_text(encoding="utf-8"))
    assert report["n_files"] == 6 and report["n_usable"] == 3
    assert report["label_conflicts"] == [["benign/dup", "malignant/m1"]]
    assert report["exact_duplicate_groups"] == [["benign/dup", "malignant/m1"]]
    assert sorted(report["dropped"]) == ["benign/dup", "malignant/m1"]
    assert report["usable_class_counts"] == {"benign": 2, "malignant": 1}
    assert [u["path"] for u in report["unreadable"]] == [str(dataset["bad"])]
    assert str(dataset["bad"]) in report["unreadable"][0]["reason"]
    assert report["conflicts_dropped"] is True
    assert report_md.read_text(encoding="utf-8") + "\n" == out  # print adds one newline


def test_validate_keep_conflicts_and_classes(capsys, tmp_path, dataset):
    code, out, _ = run(capsys, "validate", str(dataset["root"]), "--keep-conflicts",
                       "--json", str(tmp_path / "r.json"))
    assert code == 0
    assert "- Label conflicts: 1 groups (2 images, kept; 0 images dropped)" in out
    assert json.loads((tmp_path / "r.json").read_text())["n_usable"] == 5

    code, out, _ = run(capsys, "validate", str(dataset["root"]), "--classes", "benign")
    assert code == 0
    assert "- Image files found: 3 (benign 3)" in out
    assert "- Label conflicts: 0 groups" in out
    assert "- Unreadable images: 0" in out


def test_validate_missing_folder(capsys, tmp_path):
    code, out, err = run(capsys, "validate", str(tmp_path / "nowhere"))
    assert code == 2 and out == ""
    assert f"augbench: error: {tmp_path / 'nowhere'}: dataset folder not found" in err


# ------------------------------------------------------------------- run (writes params.yaml, then dvc repro)


@pytest.fixture
def dvc_repo(tmp_path, monkeypatch) -> Path:
    """A folder with the project's dvc.yaml and params.yaml and a .dvc folder, as the current folder."""
    root = PARAMS.parent
    for name in ("dvc.yaml", "params.yaml"):
        (tmp_path / name).write_text((root / name).read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / ".dvc").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _plan(*argv: str, raw: dict | None = None) -> list:
    from bench import project

    args = project.build_run_parser().parse_args(list(argv))
    return project.planned_edits(args, raw if raw is not None else yaml.safe_load(PARAMS.read_text()))


def test_run_shortcuts_become_params_edits(tmp_path):
    data = tmp_path / "my data"
    edits = _plan("--data", str(data), "--methods", "none, geometric-flipping", "--classifiers", "resnet50",
                  "--zoo", "", "--seeds", "0,1")
    assert edits[:7] == [("dataset.source", "folder"), ("dataset.path", str(data.resolve())),
                         ("dataset.name", "my data"), ("matrix.methods", ["none", "geometric-flipping"]),
                         ("matrix.classifiers", ["resnet50"]), ("matrix.zoo", []), ("matrix.seeds", [0, 1])]


def test_run_explicit_set_wins_over_a_shortcut():
    edits = _plan("--methods", "none", "--set", "matrix.methods=[none,classical]")
    assert [v for k, v in edits if k == "matrix.methods"][-1] == ["none", "classical"]  # applied last


def test_run_shortcut_typo_is_refused_with_a_suggestion(capsys, tmp_path):
    code, _, err = run(capsys, "run", "--workdir", str(tmp_path / "w"), "--methods", "none,geometric-fliping")
    assert code == 2
    assert "unknown augmenter" in err and "geometric-flipping" in err
    assert not (tmp_path / "w").exists()  # refused at validation: nothing written


def test_run_dry_run_without_options_changes_nothing(capsys, dvc_repo):
    code, out, err = run(capsys, "run", "--dry-run")
    assert code == 0 and err == ""
    assert out.startswith(f"would run in {dvc_repo}: dvc repro  (profile quick")
    code, out, _ = run(capsys, "run", "--dry-run", "--quiet")
    assert f"would run in {dvc_repo}: dvc repro --quiet  (" in out


def test_run_dry_run_lists_the_params_yaml_changes(capsys, dvc_repo):
    code, out, err = run(capsys, "run", "--dry-run", "--profile", "smoke", "--methods", "none,classical",
                         "--seeds", "0,1", "--set", "train.classifiers.resnet50.epochs=2")
    assert code == 0, err
    # The profile sets resnet50's epochs, and a profile value wins over the base one: both are written.
    # The smoke profile's own seeds and zoo go to the base lists too (dvc.yaml's ${matrix...} reads the base).
    where = f"would set {dvc_repo / 'params.yaml'}: "
    assert [line.removeprefix(where) for line in out.splitlines() if line.startswith(where)] == [
        "profile: smoke", "matrix.seeds: [0, 1]", "matrix.zoo: [drs-resnet101, efficientnetb0-feature-extraction]",
        "matrix.methods: [none, classical]", "train.classifiers.resnet50.epochs: 2",
        "profiles.smoke.train.classifiers.resnet50.epochs: 2"]  # each key once, with its final value
    assert (dvc_repo / "params.yaml").read_text() == PARAMS.read_text()  # a dry run writes nothing


def test_run_profile_brings_its_own_matrix_lists():
    """`dvc repro` reads the base `matrix` only; --profile paper must still train the paper zoo,
    and an explicit --zoo still wins over the profile's list."""
    paper = yaml.safe_load(PARAMS.read_text())["profiles"]["paper"]["matrix"]["zoo"]
    assert ("matrix.zoo", paper) in _plan("--profile", "paper") and len(paper) > 3
    edits = _plan("--profile", "paper", "--zoo", "inceptionv3")
    assert edits.index(("matrix.zoo", ["inceptionv3"])) > edits.index(("matrix.zoo", paper))


@pytest.mark.parametrize("argv", [
    ["--profile", "smoke", "--zoo", "", "--set", "train.classifiers.drs-resnet101.repeats=2"],  # a key params.yaml lacks
    ["--set", "train.classifiers.resnet50.epochs=3", "--data", "/tmp/my data", "--classifiers", "resnet50"],
])
def test_run_params_edits_give_the_stages_the_validated_parameters(argv, tmp_path):
    """params.yaml after run's edits, loaded as a stage loads it == the parameters the options ask for."""
    from bench import config, project

    path = tmp_path / "params.yaml"
    path.write_text(PARAMS.read_text())
    edits = _plan(*argv)
    project.write_params_edits(path, edits)
    stage_view = config.load_params(path)
    args = project.build_run_parser().parse_args(argv)
    wanted = config.build(config.resolve(project.apply_edits(yaml.safe_load(PARAMS.read_text()), edits)))
    assert config.params_record(stage_view) == config.params_record(wanted)
    if "--data" in argv:
        assert stage_view.dataset.path == str(Path(args.data).resolve())
    else:
        assert stage_view.train.classifiers["drs-resnet101"]["repeats"] == 2 and stage_view.profile == "smoke"


def test_run_refuses_an_unknown_method_before_anything_runs(capsys, dvc_repo, monkeypatch):
    monkeypatch.setattr("bench.project.run_dvc", pytest.fail)
    code, out, err = run(capsys, "run", "--methods", "none,geometric-fliping")
    assert code == 2 and out == ""
    assert "matrix.methods.1: unknown augmenter 'geometric-fliping'" in err and "'geometric-flipping'" in err
    assert (dvc_repo / "params.yaml").read_text() == PARAMS.read_text()


def test_run_runs_dvc_repro_and_passes_quiet_on(capsys, dvc_repo, monkeypatch):
    import os

    seen = {}

    def fake_run(command, cwd):
        seen.update(command=command[1:], cwd=cwd, quiet=os.environ.get("AUGBENCH_QUIET"))
        return 0

    monkeypatch.setattr("bench.project.run_dvc", fake_run)
    monkeypatch.delenv("AUGBENCH_QUIET", raising=False)
    code, out, err = run(capsys, "run", "--quiet", "--seeds", "0,1")
    assert code == 0 and err == ""
    assert seen == {"command": ["repro", "--quiet"], "cwd": dvc_repo, "quiet": "1"}
    changed, command, summary = out.splitlines()
    assert changed == f"augbench run: {dvc_repo / 'params.yaml'}: matrix.seeds: [0, 1]"
    assert command == "dvc repro --quiet" and summary.startswith("augbench run: dvc repro finished in ")
    assert yaml.safe_load((dvc_repo / "params.yaml").read_text())["matrix"]["seeds"] == [0, 1]
    assert "AUGBENCH_QUIET" not in os.environ  # put back afterwards


@pytest.mark.parametrize("stage", ["pseudolabel", "quality", "scaling"])
def test_run_runs_with_a_stage_switched_off(capsys, dvc_repo, stage):
    """dvc.yaml runs every stage with --skip-if-off: a stage switched off is passed on to DVC, not refused."""
    code, out, err = run(capsys, "run", "--dry-run", "--set", f"{stage}.enabled=false")
    assert code == 0, err
    assert out.startswith(f"would set {dvc_repo / 'params.yaml'}: {stage}.enabled: false\n")


def test_dvc_yaml_runs_the_optional_stages_with_skip_if_off_into_their_own_folders():
    """Each optional stage's one output is its data folder (a declared output must exist after the stage
    runs, switched off or not); the report stage copies their tables from there."""
    stages = yaml.safe_load((PARAMS.parent / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    for stage, folder in (("pseudolabel", "data/pseudolabel"), ("quality", "data/quality"),
                          ("scaling", "data/scaling"), ("external", "data/external")):
        assert "--skip-if-off" in stages[stage]["cmd"].split(), stage
        assert stages[stage]["outs"] == [folder] and "metrics" not in stages[stage], stage
        assert folder in stages["report"]["deps"]
    assert "data/pseudolabel" in stages["quality"]["deps"]
    report = stages["report"]["cmd"].split()
    extras = report[report.index("--extras") + 1:report.index("--out")]
    assert extras == ["data/pseudolabel/report", "data/quality", "data/scaling/report", "data/external"]
    assert "--reports data/pseudolabel/report" in stages["pseudolabel"]["cmd"]
    assert "--out data/quality" in stages["quality"]["cmd"] and "--out data/scaling/report" in stages["scaling"]["cmd"]
    declared = [next(iter(o)) if isinstance(o, dict) else o for s in stages.values() for o in s.get("outs", [])]
    assert not any(Path(o).name.startswith(("pseudolabel.", "quality.", "speedup", "scaling.", "external.", "external_")) for o in declared)


@pytest.mark.parametrize(("command", "stage"), [("pseudolabel", "pseudolabel"), ("quality", "quality"),
                                                ("scale", "scaling")])
def test_an_optional_stage_switched_off_refuses_to_run(capsys, tmp_path, command, stage):
    code, _, err = run(capsys, command, "--params", str(PARAMS), "--set", f"{stage}.enabled=false",
                       "--prepared", str(tmp_path / "none"), "--out", str(tmp_path / "out"),
                       *(["--reports", str(tmp_path / "r")] if command == "pseudolabel" else []),
                       *(["--augmented", str(tmp_path / "a")] if command == "quality" else []))
    assert code == 2
    assert f"{stage}.enabled: is false, so `augbench {command}` has nothing to do" in err and "--skip-if-off" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("command", "stage"), [("pseudolabel", "pseudolabel"), ("quality", "quality"),
                                                ("scale", "scaling")])
def test_an_optional_stage_switched_off_with_skip_if_off_writes_only_its_marker(capsys, caplog, tmp_path, command,
                                                                                 stage):
    """--skip-if-off (dvc.yaml's way): exit 0, an earlier run's output removed, only switched_off.json left
    in the stage's data folder (its one DVC output), one log line; the prepared data is not even read."""
    folder = tmp_path / stage
    if command == "pseudolabel":
        args = ["--out", str(folder), "--reports", str(folder / "report")]
        stale = ["folds.json", "meta.json", "fold0/augmented/grid.png", "report/pseudolabel.csv",
                 "report/pseudolabel.json"]
    elif command == "quality":
        args = ["--out", str(folder), "--pseudolabel", str(tmp_path / "missing")]
        stale = ["quality.csv", "quality.md", "quality.json"]
    else:
        args = ["--work", str(folder), "--out", str(folder / "report")]
        stale = ["augment-np1/synthetic.npz", "augment-np2.shards/x", "train-np1/meta.json", "report/speedup.csv",
                 "report/speedup.png", "report/scaling.json"]
    for name in stale:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("an earlier run")
    with caplog.at_level(logging.INFO, logger="augbench"):
        code, out, err = run(capsys, command, "--params", str(PARAMS), "--set", f"{stage}.enabled=false",
                             "--skip-if-off", "--prepared", str(tmp_path / "no-prepared-data"), *args)
    assert code == 0, err
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == ["switched_off.json"]
    assert json.loads((folder / "switched_off.json").read_text()) == {"stage": stage,
                                                                       "reason": f"{stage}.enabled: false"}
    lines = [r.getMessage() for r in caplog.records if "switched off" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith(f"stage {stage}: switched off ({stage}.enabled: false)")
    assert "removed an earlier run's" in lines[0]
    if command != "scale":  # the flag changes nothing when the stage is on: it still needs its inputs
        code, _, err = run(capsys, command, "--params", str(PARAMS), "--set", f"{stage}.enabled=true",
                           "--skip-if-off", "--prepared", str(tmp_path / "no-prepared-data"), *args)
        assert code == 2 and "Traceback" not in err


def test_quality_skip_if_off_leaves_other_files_of_its_folder(capsys, tmp_path):
    """quality's --out may be a shared folder (reports/ outside DVC): only its own tables go."""
    (tmp_path / "quality.csv").write_text("old")
    (tmp_path / "results.md").write_text("keep")
    code, _, err = run(capsys, "quality", "--params", str(PARAMS), "--set", "quality.enabled=false",
                       "--skip-if-off", "--out", str(tmp_path))
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.md", "switched_off.json"]


@pytest.mark.parametrize("setup,text", [
    ("no-dvc-yaml", "dvc.yaml: not found"),
    ("no-dvc-project", "no DVC project here"),
])
def test_run_outside_a_project_says_what_to_do(capsys, tmp_path, monkeypatch, setup, text):
    monkeypatch.chdir(tmp_path)
    if setup != "no-dvc-yaml":
        for name in ("dvc.yaml", "params.yaml"):
            (tmp_path / name).write_text((PARAMS.parent / name).read_text(encoding="utf-8"), encoding="utf-8")
        monkeypatch.setattr("bench.project.dvc_root", lambda folder: None)
    monkeypatch.setattr("bench.project.run_dvc", pytest.fail)
    code, out, err = run(capsys, "run")
    assert code == 2 and out == ""
    assert text in err and "Traceback" not in err
    assert ("--workdir" in err) if setup == "no-dvc-yaml" else ("dvc init" in err)


# ------------------------------------------------------------------- quiet


def _noisy_dvc(command, cwd):
    """Stands in for dvc repro: a progress bar and an INFO record, as the stages make."""
    import logging

    from tqdm import tqdm

    for _ in tqdm(range(3), desc="nst", disable=False, mininterval=0):
        pass
    logging.getLogger("augbench").info("training resnet50")
    logging.getLogger("augbench").warning("something to look at")
    return 0


@pytest.mark.parametrize("command", [["run", "--quiet"], ["--quiet", "run"], ["run"]])
def test_quiet_leaves_warnings_and_the_summary(capsys, dvc_repo, monkeypatch, caplog, command):
    monkeypatch.setattr("bench.project.run_dvc", _noisy_dvc)
    monkeypatch.delenv("AUGBENCH_QUIET", raising=False)
    quiet = "--quiet" in command
    with caplog.at_level(logging.NOTSET):
        caplog.clear()
        code, out, err = run(capsys, *command)
    assert code == 0
    assert out.splitlines()[-1].startswith("augbench run: dvc repro finished in ") and out.count("\n") == 2
    assert ("3/3" in err) != quiet  # the progress bar
    levels = [r.levelname for r in caplog.records if r.name == "augbench"]
    assert levels == (["WARNING"] if quiet else ["INFO", "WARNING"])


def test_global_quiet_flag_is_in_help(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0 and "--quiet" in capsys.readouterr().out


def test_every_command_has_help(capsys):
    from bench.cli import STAGES, TOOLS, build_parser

    commands = set(build_parser()._subparsers._group_actions[0].choices)
    assert set(STAGES) | set(TOOLS) <= commands
    for name in sorted(commands):
        with pytest.raises(SystemExit) as done:
            main([name, "--help"])
        out = capsys.readouterr().out
        assert done.value.code == 0 and out.startswith(f"usage: augbench {name}"), name
        assert len(out.splitlines()) > 3, name


def test_run_with_data_leaves_out_the_phantom_only_positive_control(capsys, dvc_repo, tmp_path):
    """--data FOLDER without --methods: the matrix's methods less control-more-data (fresh phantom
    images, which a folder dataset cannot supply), with a note; an explicit --methods is kept."""
    code, out, err = run(capsys, "run", "--dry-run", "--data", str(tmp_path))
    assert code == 0, err
    methods = yaml.safe_load((dvc_repo / "params.yaml").read_text())["matrix"]["methods"]
    kept = ",".join(m for m in methods if m != "control-more-data")
    where = f"would set {dvc_repo / 'params.yaml'}: "
    assert f"{where}matrix.methods: [{kept.replace(',', ', ')}]" in out and "control-shuffled-labels" in kept
    assert "matrix.methods: leaving out control-more-data" in err
    # every profile's list too: the stages check each profile, so the paper one would stop them
    assert f"{where}profiles.paper.matrix.methods: [" in out
    code, out, err = run(capsys, "run", "--dry-run", "--data", str(tmp_path), "--methods", "none,classical")
    assert code == 0, err
    assert f"{where}matrix.methods: [none, classical]" in out and "profiles.quick.matrix.methods" not in out
    assert "\nmatrix.methods: leaving out" not in "\n" + err
