"""The `code` stage (bench/stages/code.py): per augmentation method, the files its augment stage runs;
per classifier, the files its train stage runs.

Unit tests of the import closure (per method family and classifier family, variants, lazy and relative
imports, data files, an out-of-tree plugin, deterministic bytes), then a small DVC project: the `code`
stage and stand-in stages per method and per classifier depending on `data/code/augment/<method>.json`
and `data/code/train/<classifier>.json`, as augment@<method> and train/zoo@<classifier> do in dvc.yaml.
Editing a GAN file re-runs the GAN's stand-in only; editing the DRS module, the DRS classifier's only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from bench import registry
from bench.config import load_params
from bench.errors import ConfigError, RegistryError
from bench.stages import code

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PARAMS = ROOT / "params.yaml"


@pytest.fixture(scope="module")
def params():
    return load_params(PARAMS, validate_plugins=False)


def _files(params, method: str) -> set[str]:
    return set(code.method_digest(params, method)["files"])


def _under(files: set[str], folder: str) -> set[str]:
    return {f for f in files if f.startswith(folder)}


def test_geometric_reads_no_nst_and_no_gan_code(params):
    files = _files(params, "geometric-flipping")
    assert {"bench/stages/augment.py", "methods/augment/geometric.py", "methods/augment/_warp.py",
            "bench/config.py", "bench/__init__.py", "methods/augment/__init__.py"} <= files
    assert not _under(files, "bench/nst/") and not _under(files, "bench/gan/")
    assert "methods/augment/nst.py" not in files and "methods/augment/stylegan2.py" not in files


def test_nst_reads_the_nst_engine_and_not_the_gan(params):
    files = _files(params, "nst-gatys")
    assert {"methods/augment/nst.py", "bench/nst/__init__.py", "bench/nst/engine.py", "bench/nst/transfer.py",
            "bench/xai/lrp.py"} <= files  # bench.xai: imported inside a function of bench.nst (lazily)
    assert not _under(files, "bench/gan/") and "methods/augment/geometric.py" not in files


def test_the_gan_reads_bench_gan(params):
    files = _files(params, "stylegan2-ada")
    assert {"methods/augment/stylegan2.py", "bench/gan/__init__.py", "bench/gan/training.py"} <= files
    assert not _under(files, "bench/nst/")


def test_a_variant_resolves_to_its_plugin(params):
    """augment.methods.nst-combined: {method: nst-proposed} is nst-proposed's code under its own name."""
    assert params.method_plugin("nst-combined") == "nst-proposed"
    variant, plugin = code.method_digest(params, "nst-combined"), code.method_digest(params, "nst-proposed")
    assert (variant["method"], variant["plugin"]) == ("nst-combined", "nst-proposed")
    assert variant["files"] == plugin["files"]


def _classifier_files(params, classifier: str) -> set[str]:
    return set(code.classifier_digest(params, classifier)["files"])


TRAIN_STAGE = {"bench/stages/train.py", "bench/training.py", "bench/xai/__init__.py", "bench/xai/lrp.py",
               "bench/xai/runs.py", "bench/online.py", "bench/models_io.py", "bench/stages/augment.py"}


def test_resnet50_reads_the_train_stage_and_not_drs(params):
    files = _classifier_files(params, "resnet50")
    assert TRAIN_STAGE | {"methods/classify/resnet.py", "methods/classify/_keras.py",
                          "methods/classify/__init__.py"} <= files
    assert "methods/classify/drs.py" not in files and "methods/classify/fedoruk.py" not in files
    assert not _under(files, "methods/augment/")  # a method's plugin comes from data/code/augment/<method>.json
    assert not _under(files, "bench/nst/") and not _under(files, "bench/gan/")


def test_drs_reads_the_drs_module_and_the_resnet_it_builds_on(params):
    files = _classifier_files(params, "drs-resnet101")
    assert TRAIN_STAGE | {"methods/classify/drs.py", "methods/classify/resnet.py",
                          "methods/classify/layers.py"} <= files  # layers: imported inside a function
    assert "methods/classify/fedoruk.py" not in files


def test_a_classifier_variant_resolves_to_its_plugin(params):
    """train.classifiers.drs-resnet101-finetune-all: {classifier: drs-resnet101} is drs-resnet101's code."""
    assert params.classifier_plugin("drs-resnet101-finetune-all") == "drs-resnet101"
    variant = code.classifier_digest(params, "drs-resnet101-finetune-all")
    plugin = code.classifier_digest(params, "drs-resnet101")
    assert (variant["classifier"], variant["plugin"]) == ("drs-resnet101-finetune-all", "drs-resnet101")
    assert variant["files"] == plugin["files"]
    efficient = _classifier_files(params, "efficientnetb0-feature-extraction")
    assert "methods/classify/fedoruk.py" in efficient and "methods/classify/drs.py" not in efficient


def test_an_unknown_classifier_is_named_with_its_parameter():
    params = load_params(PARAMS, overrides=["train.classifiers.mine.classifier=resnet5"], validate_plugins=False)
    with pytest.raises(RegistryError, match=r"params: matrix\.zoo: unknown classifier 'resnet5O'.*resnet50"):
        code.classifier_digest(params, "resnet5O", "matrix.zoo")
    with pytest.raises(RegistryError, match=r"params: train\.classifiers\.mine\.classifier: unknown classifier "
                                            r"'resnet5'.*resnet50"):
        code.classifier_digest(params, "mine")


def test_the_classifiers_are_the_base_lists_and_the_active_profiles():
    raw = yaml.safe_load(PARAMS.read_text())
    smoke = load_params(PARAMS, "smoke", validate_plugins=False)
    found = code.matrix_classifiers(smoke, raw)
    assert set(raw["matrix"]["classifiers"]) <= set(found)
    assert {name: found[name] for name in smoke.matrix.zoo} == dict.fromkeys(smoke.matrix.zoo, "matrix.zoo")
    raw["matrix"]["zoo"] = "resnet50"
    with pytest.raises(ConfigError, match=r"matrix\.zoo.*not a list"):
        code.matrix_classifiers(smoke, raw)
    raw["matrix"]["zoo"] = ["../resnet50"]
    with pytest.raises(ConfigError, match=r"matrix\.zoo.*cannot name a file"):
        code.matrix_classifiers(smoke, raw)


def test_each_digest_is_the_sha256_of_the_file(params):
    import hashlib

    digest = code.method_digest(params, "none")
    assert digest["files"] and list(digest["files"]) == sorted(digest["files"])
    for rel, sha in digest["files"].items():
        assert hashlib.sha256((ROOT / rel).read_bytes()).hexdigest() == sha, rel


def test_data_files_only_when_a_module_of_the_closure_names_them(params):
    """bench/html_report.py reads paper_values.yaml beside itself; the augment stage's closure holds neither."""
    assert "bench/paper_values.yaml" in code.closure(["bench.html_report"], code.LOCAL_PACKAGES)
    assert "bench/paper_values.yaml" not in _files(params, "nst-proposed-lrp")


def _package(root: Path, name: str, modules: dict[str, str]) -> None:
    for rel, text in modules.items():
        path = root / name / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


@pytest.fixture
def outside(tmp_path, monkeypatch):
    """An out-of-tree plugin package `outside_pkg` on sys.path: relative, lazy and nested imports."""
    _package(tmp_path, "outside_pkg", {
        "__init__.py": "",
        "plugin.py": """
            from dataclasses import dataclass

            from . import helpers


            class Plugin:
                @dataclass
                class Params:
                    factor: int = 2

                def generate(self, train, n, rng):
                    from outside_pkg.sub import lazy  # inside a function, as plugins import

                    return lazy, helpers
            """,
        "helpers.py": "import numpy\nTABLE = 'table.json'\n",
        "table.json": "{}\n",
        "sub/__init__.py": "",
        "sub/lazy.py": "from ..helpers import TABLE\n",
        "unused.py": "",
    })
    monkeypatch.syspath_prepend(str(tmp_path))
    code._top_spec.cache_clear()
    yield tmp_path
    code._top_spec.cache_clear()
    for name in [m for m in sys.modules if m.split(".")[0] == "outside_pkg"]:
        del sys.modules[name]


def test_an_out_of_tree_plugin_is_followed_within_its_own_package(params, outside):
    import importlib

    cls = importlib.import_module("outside_pkg.plugin").Plugin
    with registry.registered_if_missing("augmenter", "outside-test-plugin", cls):
        digest = code.method_digest(params, "outside-test-plugin")
    files = set(digest["files"])
    ours = {"outside_pkg/__init__.py", "outside_pkg/plugin.py", "outside_pkg/helpers.py", "outside_pkg/table.json",
            "outside_pkg/sub/__init__.py", "outside_pkg/sub/lazy.py"}
    assert _under(files, "outside_pkg/") == ours  # not unused.py; numpy is nobody's package here
    assert "bench/stages/augment.py" in files and not _under(files, "bench/nst/")
    assert digest["plugin"] == "outside-test-plugin"


def test_an_unknown_method_is_named_with_a_suggestion(params):
    with pytest.raises(RegistryError, match=r"params: matrix\.methods: unknown augmenter 'geometric-flip'.*"
                                            r"geometric-flipping"):
        code.method_digest(params, "geometric-flip")


def test_output_bytes_are_identical_on_two_runs_and_stale_files_go(tmp_path, capsys):
    from bench.cli import main

    first, second = tmp_path / "a", tmp_path / "b"
    (second / "augment").mkdir(parents=True)
    (second / "augment" / "gone.json").write_text("{}")  # a method no longer in the matrix
    for out in (first, second):
        assert main(["code-digest", "--params", str(PARAMS), "--profile", "paper", "--out", str(out)]) == 0
    names = sorted(p.name for p in (first / "augment").iterdir())
    raw = yaml.safe_load(PARAMS.read_text())
    paper = raw["profiles"]["paper"]["matrix"]
    assert names == sorted(f"{m}.json" for m in paper["methods"])  # the base matrix's methods are all in paper's
    assert names == sorted(p.name for p in (second / "augment").iterdir())
    trained = sorted(p.name for p in (first / "train").iterdir())
    assert trained == sorted(f"{c}.json" for c in {*raw["matrix"]["classifiers"], *paper["zoo"]})
    for folder, key in (("augment", "method"), ("train", "classifier")):
        for name in sorted(p.name for p in (first / folder).iterdir()):
            a, b = (first / folder / name).read_bytes(), (second / folder / name).read_bytes()
            assert a == b, name
            assert set(json.loads(a)) == {key, "plugin", "files"} and json.loads(a)[key] == name[:-5]
    assert not list(first.glob(".augbench.lock"))  # the output lock is gone: the folder holds the digests only


# ------------------------------------------------------------------------------------------- DVC


STANDIN = "mkdir -p copies && cp data/code/augment/${item.method}.json copies/${item.method}.json"
TRAIN_STANDIN = ("mkdir -p trained && cp data/code/train/${item.classifier}.json "
                 "trained/${item.classifier}.json")


def _dvc(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "DVC_NO_ANALYTICS": "1",
           "PYTHONPATH": str(cwd), "TF_CPP_MIN_LOG_LEVEL": "2"}  # the copy of bench/ and methods/ is what runs
    done = subprocess.run([str(BIN / "dvc"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"dvc {' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


@dataclass
class Project:
    root: Path
    first: str


@pytest.fixture
def dvc_project(tmp_path) -> Project:
    """bench/ and methods/ copied, the `code` stage of dvc.yaml and a stand-in per method (git-free)."""
    for name in ("bench", "methods"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    raw = yaml.safe_load(PARAMS.read_text())
    raw["matrix"]["methods"] = ["none", "geometric-flipping", "stylegan2-ada"]  # none: the zoo needs it
    raw["matrix"]["classifiers"] = ["resnet50"]  # the profiles' zoos hold the others (each listed in one place)
    raw["matrix"]["zoo"] = ["drs-resnet101", "efficientnetb0-feature-extraction"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    stage = stages["code"]
    assert stage["cmd"] == "augbench code-digest --out data/code" and stage["deps"] == ["bench", "methods"]
    assert {"matrix.methods", "matrix.classifiers", "matrix.zoo", "augment", "train"} <= set(stage["params"])
    own = {"augment": ["data/code/augment/${item.method}.json"],
           "train": ["data/code/train/${item.classifier}.json", "data/code/augment/${item.method}.json"],
           "control-aa": ["data/code/train/${item.classifier}.json"], "zoo": ["data/code/train/${item.classifier}.json"]}
    for name, digests in own.items():
        assert set(digests) <= set(stages[name]["deps"]), name
        assert not [d for d in stages[name]["deps"] if d.split("/")[0] in ("bench", "methods")], name  # no code dep
        assert {d.split("${item.")[1].split("}")[0] for d in digests} <= set(stages[name]["matrix"]), name
    pipeline = {"stages": {
        "code": stage,
        "standin": {"matrix": {"method": "${matrix.methods}"}, "cmd": STANDIN,
                    "deps": ["data/code/augment/${item.method}.json"], "outs": ["copies/${item.method}.json"]},
        "train-standin": {"matrix": {"classifier": "${matrix.classifiers}"}, "cmd": TRAIN_STANDIN,
                          "deps": ["data/code/train/${item.classifier}.json"],
                          "outs": ["trained/${item.classifier}.json"]},
        "zoo-standin": {"matrix": {"classifier": "${matrix.zoo}"}, "cmd": TRAIN_STANDIN,
                        "deps": ["data/code/train/${item.classifier}.json"],
                        "outs": ["trained/${item.classifier}.json"]}}}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    _dvc(["init", "--no-scm", "-q"], tmp_path)
    first = _dvc(["repro"], tmp_path)
    return Project(tmp_path, first)


@pytest.mark.pipeline  # ~10 s: two `dvc repro` of a cheap stage
def test_a_gan_edit_reruns_the_gan_stage_only(dvc_project: Project):
    root = dvc_project.root
    for method in ("geometric-flipping", "stylegan2-ada"):
        assert f"Running stage 'standin@{method}'" in dvc_project.first
        assert (root / "copies" / f"{method}.json").read_bytes() == \
            (root / "data" / "code" / "augment" / f"{method}.json").read_bytes()
    gan_before = json.loads((root / "copies" / "stylegan2-ada.json").read_text())
    geometric_before = (root / "copies" / "geometric-flipping.json").read_bytes()
    with open(root / "bench" / "gan" / "training.py", "a", encoding="utf-8") as fh:
        fh.write("\n# an edit\n")
    assert "code" in _dvc(["status"], root)  # the code stage's dependency `bench` changed
    out = _dvc(["repro"], root)
    assert "Running stage 'code'" in out
    assert "Running stage 'standin@stylegan2-ada'" in out
    assert "Running stage 'standin@geometric-flipping'" not in out
    assert "'standin@geometric-flipping' didn't change, skipping" in out
    assert "Running stage 'train-standin@" not in out and "Running stage 'zoo-standin@" not in out
    gan_after = json.loads((root / "copies" / "stylegan2-ada.json").read_text())
    changed = {k for k in gan_after["files"] if gan_after["files"][k] != gan_before["files"].get(k)}
    assert changed == {"bench/gan/training.py"}
    assert (root / "copies" / "geometric-flipping.json").read_bytes() == geometric_before
    assert "up to date" in _dvc(["status"], root)


@pytest.mark.pipeline  # ~10 s: two `dvc repro` of a cheap stage
def test_a_drs_edit_reruns_the_drs_stage_only(dvc_project: Project):
    root = dvc_project.root
    for classifier, stage in (("resnet50", "train-standin"), ("drs-resnet101", "zoo-standin"),
                              ("efficientnetb0-feature-extraction", "zoo-standin")):
        assert f"Running stage '{stage}@{classifier}'" in dvc_project.first
        assert (root / "trained" / f"{classifier}.json").read_bytes() == \
            (root / "data" / "code" / "train" / f"{classifier}.json").read_bytes()
    drs_before = json.loads((root / "trained" / "drs-resnet101.json").read_text())
    untouched = {c: (root / "trained" / f"{c}.json").read_bytes()
                 for c in ("resnet50", "efficientnetb0-feature-extraction")}
    with open(root / "methods" / "classify" / "drs.py", "a", encoding="utf-8") as fh:
        fh.write("\n# an edit\n")
    out = _dvc(["repro"], root)
    assert "Running stage 'code'" in out
    assert "Running stage 'zoo-standin@drs-resnet101'" in out
    for stage in ("train-standin@resnet50", "zoo-standin@efficientnetb0-feature-extraction",
                  "standin@geometric-flipping", "standin@stylegan2-ada"):
        assert f"Running stage '{stage}'" not in out and f"'{stage}' didn't change, skipping" in out, stage
    drs_after = json.loads((root / "trained" / "drs-resnet101.json").read_text())
    changed = {k for k in drs_after["files"] if drs_after["files"][k] != drs_before["files"].get(k)}
    assert changed == {"methods/classify/drs.py"}
    for classifier, before in untouched.items():
        assert (root / "trained" / f"{classifier}.json").read_bytes() == before, classifier
    assert "up to date" in _dvc(["status"], root)
