"""End-to-end: the DVC pipeline on the smoke profile, its idempotence, and determinism.

Runs real stages (phantom → augment (a GAN among them) → ResNet50 training → metrics →
pseudo-label folds → image quality → report) in a temporary copy of the project, so it is
slow (several minutes) and marked so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
METHODS = ["none", "classical", "stylegan2-ada"]
GENERATIVE = ["stylegan2-ada"]  # of METHODS: the quality table's rows (with the pseudo-label fold 0)

pytestmark = [pytest.mark.slow, pytest.mark.pipeline]


def _env() -> dict:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "TF_CPP_MIN_LOG_LEVEL": "2",
            "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def _sh(args: list[str], cwd: Path, timeout: int = 900) -> str:
    done = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def _smoke_params(dest: Path) -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["profile"] = "smoke"
    params["matrix"].update(params["profiles"]["smoke"].get("matrix", {}))  # dvc.yaml reads the base lists
    params["matrix"]["methods"] = METHODS
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the DVC project (code, dvc.yaml, smoke params) with a finished `dvc repro`."""
    dest = tmp_path_factory.mktemp("project")
    for name in ("bench", "methods"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "dvc.yaml", dest / "dvc.yaml")
    _smoke_params(dest)
    _sh(["git", "init", "-q"], dest)
    _sh([str(BIN / "dvc"), "init", "-q"], dest)
    _sh([str(BIN / "dvc"), "repro"], dest, timeout=2400)
    return dest


def test_repro_writes_report_and_metrics(project: Path):
    results = pd.read_csv(project / "reports" / "results.csv")
    zoo = yaml.safe_load((project / "params.yaml").read_text())["profiles"]["smoke"]["matrix"]["zoo"]
    pairs = set(zip(results["method"], results["classifier"], strict=True))
    assert pairs == {(m, "resnet50") for m in METHODS} | {("none", c) for c in zoo}
    assert results["n_test"].min() > 0
    for col in ("accuracy", "recall", "specificity", "precision", "f1", "auc"):
        assert {f"{col}_low", f"{col}_high"} <= set(results.columns)
        ok = results[col].notna()
        assert (results.loc[ok, f"{col}_low"] <= results.loc[ok, col] + 1e-12).all()
    text = (project / "reports" / "results.md").read_text()
    for needle in ("Table 4", "Weights", "resnet50: none", "Splits", "Commit", "tensorflow 2.15.1", "AMD" if
                   "AMD" in Path("/proc/cpuinfo").read_text(errors="ignore") else "cores"):
        assert needle in text
    for png in ("roc.png", "history.png", "grids/classical.png", "confusion/none__resnet50__seed0.png"):
        assert (project / "reports" / png).stat().st_size > 1000
    page = (project / "reports" / "index.html").read_text()
    assert "Papers vs this run" in page and "data:image/png;base64," in page and "http://" not in page
    assert (project / "dvc.lock").is_file()


def test_every_run_is_explained_and_logged(project: Path):
    """LRP of every trained classifier (phantom masks → share inside the lesion), heatmaps in the
    report, and dvclive's per-epoch log in every run folder."""
    lrp = pd.read_csv(project / "reports" / "lrp.csv")
    results = pd.read_csv(project / "reports" / "results.csv")
    assert set(zip(lrp["Method"], lrp["Classifier"], strict=True)) == set(
        zip(results["method"], results["classifier"], strict=True))
    assert "Note" not in lrp or lrp["Note"].isna().all(), lrp.get("Note")  # every model explained
    shares = lrp["LRP share in lesion"].str.split(" ").str[0].astype(float)
    assert ((shares >= 0) & (shares <= 1)).all()
    for method, clf in zip(lrp["Method"], lrp["Classifier"], strict=True):
        assert (project / "reports" / "lrp" / f"{method}__{clf}.png").stat().st_size > 1000
        run = project / "runs" / method / clf / "seed0"
        with np.load(run / "relevance.npz") as z:
            assert z["lrp"].shape == z["inputs"].shape == z["masks"].shape and np.isfinite(z["lrp"]).all()
        assert (run / "dvclive" / "metrics.json").is_file()
    assert "LRP relevance heatmaps" in (project / "reports" / "index.html").read_text()


def test_gan_trains_under_the_stage_and_is_reported(project: Path):
    """The GAN is an ordinary matrix method: its log is an output, its checkpoint folder is gone once the
    stage is complete, and the report shows its row, sample grid and training curves."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    steps = params["profiles"]["smoke"]["augment"]["methods"]["stylegan2-ada"]["steps"]
    folder = project / "data" / "augmented" / "stylegan2-ada"
    log = pd.read_csv(folder / "train_log.csv")
    assert log["step"].tolist() == list(range(1, steps + 1)) and log["p"].between(0, 1).all()
    assert not (folder / "shards").exists()
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["run_info"]["steps"] == steps and meta["n_synthetic"] == len(np.load(folder / "synthetic.npz")["labels"])
    table = pd.read_csv(project / "reports" / "table.csv")
    assert "stylegan2-ada" in set(table["Method"])
    for png in ("grids/stylegan2-ada.png", "figures/gan_stylegan2-ada.png"):
        assert (project / "reports" / png).stat().st_size > 1000
    assert "## GAN training" in (project / "reports" / "results.md").read_text()


def test_pseudolabel_folds_and_quality_are_reported(project: Path):
    params = yaml.safe_load((project / "params.yaml").read_text())
    k = params["profiles"]["smoke"]["pseudolabel"]["folds"]
    folds = pd.read_csv(project / "reports" / "pseudolabel.csv", dtype={"fold": str})
    assert folds["fold"].tolist() == [str(i) for i in range(k)] + ["mean", "sd"]
    assert folds.loc[folds["fold"] == "mean", "auc"].iloc[0] == pytest.approx(folds["auc"].iloc[:k].mean())
    plan = json.loads((project / "data" / "pseudolabel" / "folds.json").read_text())
    for entry in plan["folds"]:  # no fold's synthetic image was made from its validation or test images
        held = set(entry["val"]) | set(entry["test"])
        records = (project / "data" / "pseudolabel" / f"fold{entry['index']}" / "augmented" / "provenance.jsonl")
        for rec in map(json.loads, records.read_text().splitlines()):
            assert not ({rec["content_id"], *rec["style_ids"]} & held)
    table = pd.read_csv(project / "reports" / "table.csv")
    row = table[table["Method"] == f"nst-pseudolabel ({k}-fold mean ± sd)"]
    assert len(row) == 1 and " ± " in row["AUC"].iloc[0]
    assert (project / "reports" / "grids" / "nst-pseudolabel.png").stat().st_size > 1000
    quality = pd.read_csv(project / "reports" / "quality.csv")
    assert quality["method"].tolist() == ["real train vs real val (floor)", *GENERATIVE, "nst-pseudolabel (fold 0)"]
    assert quality["feature_network"].nunique() == 1 and "domain encoder" in quality["feature_network"].iloc[0]
    assert np.isfinite(quality["fid"]).all() and quality["ssim"].iloc[1:].between(-1, 1).all()
    text = (project / "reports" / "results.md").read_text()
    for heading in ("## Pseudo-labelled NST per fold", "## Image quality of the synthetic images"):
        assert heading in text
    page = (project / "reports" / "index.html").read_text()
    for section in ('id="gan"', 'id="pseudolabel"', 'id="quality"'):
        assert section in page


def test_second_repro_is_up_to_date(project: Path):
    out = _sh([str(BIN / "dvc"), "repro"], project)
    assert "didn't change" in out or "up to date" in out.lower()
    assert "Running stage" not in out


def test_dvc_metrics_and_plots(project: Path):
    shown = json.loads(_sh([str(BIN / "dvc"), "metrics", "show", "--json"], project))
    values = json.dumps(shown)
    assert "accuracy" in values and "classical" in values
    assert "pseudolabel.json" in values  # the k-fold mean is a DVC metric too
    _sh([str(BIN / "dvc"), "plots", "show", "-o", "plots_html"], project)
    html = (project / "plots_html" / "index.html").read_text()
    for method in METHODS:  # one ROC plot per method × classifier, with data in it
        assert f"{method}__resnet50" in html
    assert html.count('"fpr"') >= len(METHODS)
    for method in METHODS:  # and every run's training curves (evaluate collects them from the runs)
        assert f"training/{method}__resnet50__seed0.csv" in html
    assert html.count('"val_loss"') >= len(METHODS)


def test_same_seed_same_arrays_and_metrics(project: Path, tmp_path: Path):
    """`augbench run` with the same params reproduces DVC's arrays and predictions exactly."""
    _sh([str(BIN / "augbench"), "run", "--params", str(project / "params.yaml"), "--workdir", str(tmp_path)], project,
        timeout=2400)
    a = np.load(project / "data" / "prepared" / "dataset.npz")
    b = np.load(tmp_path / "prepared" / "dataset.npz")
    for key in ("images", "labels", "ids", "splits"):
        np.testing.assert_array_equal(a[key], b[key])
    sa = np.load(project / "data" / "augmented" / "classical" / "synthetic.npz")
    sb = np.load(tmp_path / "augmented" / "classical" / "synthetic.npz")
    np.testing.assert_array_equal(sa["images"], sb["images"])
    for method in METHODS:
        pa = pd.read_csv(project / "runs" / method / "resnet50" / "seed0" / "predictions.csv")
        pb = pd.read_csv(tmp_path / "runs" / method / "resnet50" / "seed0" / "predictions.csv")
        pd.testing.assert_frame_equal(pa, pb)
    for name in ("results.csv", "pseudolabel.csv", "quality.csv"):
        ra = pd.read_csv(project / "reports" / name)
        rb = pd.read_csv(tmp_path / "reports" / name)
        pd.testing.assert_frame_equal(ra.drop(columns=["seconds"], errors="ignore"),
                                      rb.drop(columns=["seconds"], errors="ignore"))
