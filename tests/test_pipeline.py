"""End-to-end: one smoke pipeline serves the plumbing, determinism and report tests.

Runs real stages (phantom → encoders → augment (NST and a GAN among them) → ResNet50 training →
metrics → pseudo-label folds → image quality → Horovod scaling → report) with `dvc repro` in a
temporary copy of the project, once per session; then the same parameters once more with
`augbench run --workdir` in a second, freshly initialised project (`augbench init`'s files, run by
DVC too): the two projects must give byte-identical arrays, predictions and metrics. The second run
switches off what it does not compare (`pseudolabel.enabled`, `scaling.enabled`), so that the
switch itself is exercised too. Last, the DVC project switches pseudolabel and scaling off and
runs `dvc repro` again: those stages record themselves as switched off and their tables leave the
report. Slow (several minutes) and marked so.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
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
METHODS = ["none", "classical", "nst-gatys", "stylegan2-ada"]
GENERATIVE = ["nst-gatys", "stylegan2-ada"]  # of METHODS: the quality table's rows (with the pseudo-label fold 0)
METRICS = ("accuracy", "recall", "specificity", "precision", "f1", "auc")

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


def _picture(path: Path, min_side: int = 64) -> None:
    """A real PNG with something drawn on it (not a blank canvas), not merely a file of some size."""
    from PIL import Image

    with Image.open(path) as img:
        assert img.format == "PNG" and min(img.size) >= min_side, (path, img.format, img.size)
        pixels = np.asarray(img.convert("L"), dtype=np.float32)
    assert pixels.std() > 1.0, f"{path} is blank"


def test_repro_writes_report_and_metrics(project: Path):
    results = pd.read_csv(project / "reports" / "results.csv")
    zoo = yaml.safe_load((project / "params.yaml").read_text())["profiles"]["smoke"]["matrix"]["zoo"]
    pairs = list(zip(results["method"], results["classifier"], strict=True))
    assert sorted(pairs) == sorted({(m, "resnet50") for m in METHODS} | {("none", c) for c in zoo})
    n_test = int((pd.read_csv(project / "data" / "prepared" / "manifest.csv")["split"] == "test").sum())
    assert (results["n_test"] == n_test).all() and n_test > 0
    for col in METRICS:  # every row: a finite value inside its finite interval, on the unit interval
        values, low, high = results[col], results[f"{col}_low"], results[f"{col}_high"]
        if col == "precision":  # undefined for a run that calls nothing positive: say so, never invent it
            defined = values.notna()
        else:
            defined = pd.Series(True, index=results.index)
            assert values.notna().all(), (col, results[["method", "classifier", col]])
        assert np.isfinite(values[defined]).all() and values[defined].between(0, 1).all(), col
        assert (low[defined] <= values[defined] + 1e-12).all() and (values[defined] <= high[defined] + 1e-12).all()
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    for method, clf in pairs:  # the DVC metrics file holds the same AUC as the table
        row = results[(results["method"] == method) & (results["classifier"] == clf)].iloc[0]
        assert metrics[method][clf]["auc"] == pytest.approx(row["auc"], abs=1e-4)
    text = (project / "reports" / "results.md").read_text()
    for needle in ("Table 4", "Weights", "resnet50: none", "Splits", "Code", "source sha256", "tensorflow 2.15.1", "AMD" if
                   "AMD" in Path("/proc/cpuinfo").read_text(errors="ignore") else "cores"):
        assert needle in text
    for method in METHODS:  # every method's row in the Markdown table, with its AUC as the CSV has it
        assert f"| {method}" in text, method
    for png in ("roc.png", "history.png", "grids/classical.png", "grids/nst-gatys.png",
                "confusion/none__resnet50__seed0.png"):
        _picture(project / "reports" / png)
    page = (project / "reports" / "index.html").read_text()
    assert "Papers vs this run" in page and "data:image/png;base64," in page and "http://" not in page
    assert (project / "dvc.lock").is_file()


def test_the_report_opens_with_the_verdict_over_seeds(project: Path):
    """Every method against `none` over the smoke seeds, with the A/A control (`none` on seeds +
    controls.aa_seed_offset), under the steps budget; results.md and index.html open with it."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    seeds, offset = params["profiles"]["smoke"]["matrix"]["seeds"], params["controls"]["aa_seed_offset"]
    verdict = pd.read_csv(project / "reports" / "verdict.csv")
    assert verdict["method"].tolist() == [*[m for m in METHODS if m != "none"], "none-aa"]
    assert (verdict["n_seeds"] == len(seeds)).all() and verdict["role"].iloc[-1] == "A/A"
    assert verdict["verdict"].isin(["helps", "hurts", "no evidence"]).all()
    assert ((verdict["low"] <= verdict["delta"]) & (verdict["delta"] <= verdict["high"])).all()
    about = json.loads((project / "reports" / "verdict.json").read_text())
    assert about["budget"] == "steps" and about["seeds"] == seeds and about["aa_seeds"] == [s + offset for s in seeds]
    for seed in about["aa_seeds"]:  # the A/A control's own runs
        assert (project / "runs" / "none-aa" / "resnet50" / f"seed{seed}" / "predictions.csv").is_file()
    for method in METHODS:  # one stage trained every seed; the first one explained
        meta = json.loads((project / "runs" / method / "resnet50" / f"seed{seeds[1]}" / "meta.json").read_text())
        assert meta["budget"] == "steps" and meta["epoch_images"] == meta["training_set"]["n_split"]
        assert not (project / "runs" / method / "resnet50" / f"seed{seeds[1]}" / "relevance.npz").exists()
    text = (project / "reports" / "results.md").read_text()
    assert text.index("ΔAUC") < text.index("Table 4") and "R = 2" in text
    _picture(project / "reports" / "figures" / "verdict.png")
    page = (project / "reports" / "index.html").read_text()
    sections = re.findall(r'<section id="([a-z-]+)"', page)
    assert sections[0] == "verdict" and "ΔAUC" in page, sections


def test_scaling_table_has_a_row_per_process_count(project: Path):
    """The scaling stage ran the smoke profile's np list under horovodrun: one row each, T_1 its own
    first row, speedup = T_1/T_p, and the np = 2 images identical to np = 1's."""
    nps = yaml.safe_load((project / "params.yaml").read_text())["profiles"]["smoke"]["scaling"]["np"]
    table = pd.read_csv(project / "reports" / "speedup.csv")
    assert table["np"].tolist() == sorted(nps) and (table["stage"] == "augment").all()
    assert (table["seconds"] > 0).all() and (table["images"] > 0).all()
    t1 = table.loc[table["np"] == 1, "seconds"].iloc[0]
    assert (table["t1"] == t1).all()
    np.testing.assert_allclose(table["speedup"], t1 / table["seconds"], atol=1e-3)
    np.testing.assert_allclose(table["efficiency"], table["speedup"] / table["np"], atol=1e-3)
    assert table["identical_to_np1"].astype(bool).all()
    record = json.loads((project / "reports" / "scaling.json").read_text())
    assert [r["np"] for r in record["runs"]] == sorted(nps) and record["cores"] >= 1
    shown = [line.split("|")[2].strip() for line in (project / "reports" / "speedup.md").read_text().splitlines()
             if line.startswith("| augment")]
    assert shown == [str(n) for n in sorted(nps)]
    _picture(project / "reports" / "speedup.png")
    assert 'id="speedup"' in (project / "reports" / "index.html").read_text()


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
        _picture(project / "reports" / "lrp" / f"{method}__{clf}.png")
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
        _picture(project / "reports" / png)
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
    _picture(project / "reports" / "grids" / "nst-pseudolabel.png")
    quality = pd.read_csv(project / "reports" / "quality.csv")
    assert quality["method"].tolist() == ["real train vs real val (floor)", *GENERATIVE,
                                          "real fold-0 train vs held-out (floor)", "nst-pseudolabel (fold 0)"]
    assert quality["feature_network"].nunique() == 1 and "domain encoder" in quality["feature_network"].iloc[0]
    assert np.isfinite(quality["fid"]).all() and np.isfinite(quality["kid"]).all() and (quality["kid_sd"] > 0).all()
    generated = ~quality["method"].str.endswith("(floor)")
    assert quality.loc[generated, "source_ssim"].between(-1, 1).all()
    assert quality.loc[generated, "memorised"].between(0, 1).all() and quality.loc[generated, "copying"].isin(["yes", "no"]).all()
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


def test_only_the_active_profile_is_a_stage_parameter(project: Path):
    """Every stage lists `profiles.${profile}`, not the whole `profiles` section: editing the paper
    profile leaves the smoke run up to date, editing the smoke profile does not."""
    params_file = project / "params.yaml"
    kept = params_file.read_text()
    try:
        for edited, stale in (("paper", False), ("smoke", True)):
            params = yaml.safe_load(kept)
            params["profiles"][edited]["train"] = {**(params["profiles"][edited].get("train") or {}), "patience": 77}
            params_file.write_text(yaml.safe_dump(params, sort_keys=False))
            status = _sh([str(BIN / "dvc"), "status"], project)
            assert ("profiles.smoke" in status and "prepare:" in status) is stale, (edited, status[-2000:])
            assert ("up to date" in status) is not stale, (edited, status[-2000:])
    finally:
        params_file.write_text(kept)
    assert "up to date" in _sh([str(BIN / "dvc"), "status"], project)


def test_dvc_metrics_and_plots(project: Path):
    shown = json.loads(_sh([str(BIN / "dvc"), "metrics", "show", "--json"], project))
    values = json.dumps(shown)
    assert "accuracy" in values and "classical" in values
    _sh([str(BIN / "dvc"), "plots", "show", "-o", "plots_html"], project)
    html = (project / "plots_html" / "index.html").read_text()
    for method in METHODS:  # one ROC plot per method × classifier, with data in it
        assert f"{method}__resnet50" in html
    assert html.count('"fpr"') >= len(METHODS)
    for method in METHODS:  # and every run's training curves (evaluate collects them from the runs)
        assert f"training/{method}__resnet50__seed0.csv" in html
    assert html.count('"val_loss"') >= len(METHODS)


@pytest.fixture(scope="module")
def workdir_run(project: Path, tmp_path_factory) -> Path:
    """The same parameters through `augbench run --workdir` in a project made by `augbench init`
    (its dvc.yaml points at the installed code). The pseudo-label folds and the Horovod scaling are
    switched off: they would only repeat the first project's work."""
    out = tmp_path_factory.mktemp("workdir") / "second"
    _sh([str(BIN / "augbench"), "init", str(out)], project)
    shutil.copy(project / "params.yaml", out / "params.yaml")
    _sh([str(BIN / "augbench"), "run", "--workdir", str(out), "--set", "pseudolabel.enabled=false",
         "--set", "scaling.enabled=false"], project, timeout=2400)
    return out


# The first project's files → the second's (the same layout: both are dvc.yaml's).
SAME_BYTES = {
    "data/prepared/dataset.npz": "data/prepared/dataset.npz",
    "data/prepared/manifest.csv": "data/prepared/manifest.csv",
    "data/encoder/vgg19_domain_head.npz": "data/encoder/vgg19_domain_head.npz",
    "data/encoder/resnet50_domain_head.npz": "data/encoder/resnet50_domain_head.npz",
    **{f"data/augmented/{m}/{f}": f"data/augmented/{m}/{f}" for m in METHODS
       for f in ("synthetic.npz", "provenance.jsonl")},
    **{f"runs/{m}/resnet50/seed0/{f}": f"runs/{m}/resnet50/seed0/{f}" for m in METHODS
       for f in ("predictions.csv", "history.csv", "grid.csv", "relevance.npz")},
    **{f"runs/{m}/resnet50/seed1/predictions.csv": f"runs/{m}/resnet50/seed1/predictions.csv" for m in METHODS},
    **{f"runs/none-aa/resnet50/seed{s}/predictions.csv": f"runs/none-aa/resnet50/seed{s}/predictions.csv"
       for s in (1000, 1001)},
    **{f"reports/{f}": f"reports/{f}" for f in ("metrics.json", "results.csv", "runs.csv", "comparisons.csv",
                                                 "verdict.csv", "verdict.json")},
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_two_projects_are_byte_identical(project: Path, workdir_run: Path):
    """Same seed, same machine, the repository's pipeline against `augbench init`'s copy driven by
    `augbench run --workdir`: identical arrays, synthetic images (NST and GAN included), predictions, training
    histories, relevance maps and metrics, byte for byte."""
    differ = [dvc for dvc, own in SAME_BYTES.items() if _sha256(project / dvc) != _sha256(workdir_run / own)]
    assert not differ
    for zoo in yaml.safe_load((project / "params.yaml").read_text())["profiles"]["smoke"]["matrix"]["zoo"]:
        name = f"runs/none/{zoo}/seed0/predictions.csv"
        assert _sha256(project / name) == _sha256(workdir_run / name), name
    qa = pd.read_csv(project / "reports" / "quality.csv").drop(columns=["seconds"], errors="ignore")
    qb = pd.read_csv(workdir_run / "reports" / "quality.csv").drop(columns=["seconds"], errors="ignore")
    pd.testing.assert_frame_equal(qa[qa["method"].isin(qb["method"])].reset_index(drop=True), qb)


def test_a_stage_switched_off_runs_nothing(workdir_run: Path):
    """pseudolabel.enabled = false: no folds trained, no k-fold files or report rows."""
    for folder in ("data/pseudolabel", "data/scaling"):
        assert sorted(p.name for p in (workdir_run / folder).iterdir()) == ["switched_off.json"], folder
    assert not any((workdir_run / "reports" / n).exists() for n in ("pseudolabel.csv", "pseudolabel.json"))
    quality = pd.read_csv(workdir_run / "reports" / "quality.csv")
    assert quality["method"].tolist() == ["real train vs real val (floor)", *GENERATIVE]
    assert not (pd.read_csv(workdir_run / "reports" / "table.csv")["Method"].str.contains("pseudolabel")).any()
    assert "## Pseudo-labelled NST per fold" not in (workdir_run / "reports" / "results.md").read_text()
    assert 'id="pseudolabel"' not in (workdir_run / "reports" / "index.html").read_text()


OPTIONAL_FILES = {"pseudolabel": ("pseudolabel.csv", "pseudolabel.md", "pseudolabel.json", "grids/nst-pseudolabel.png"),
                  "scaling": ("speedup.csv", "speedup.md", "speedup.png", "scaling.json", "speedup_train.csv",
                              "speedup_train.md")}


def test_optional_stages_switched_off_under_dvc(project: Path):
    """Runs last (it changes the shared project): pseudolabel and scaling switched off in params.yaml, then
    `dvc repro`. Both stages run and write only switched_off.json into their one output folder; quality
    re-runs without the fold-0 row; the report leaves out their sections and removes the earlier tables."""
    for name in (n for names in OPTIONAL_FILES.values() for n in names if not n.startswith("speedup_train")):
        assert (project / "reports" / name).is_file(), name  # from the first repro
    params = yaml.safe_load((project / "params.yaml").read_text())
    for stage in OPTIONAL_FILES:
        params[stage]["enabled"] = False
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = _sh([str(BIN / "dvc"), "repro"], project, timeout=1200)
    ran = set(re.findall(r"Running stage '([^']+)'", out))
    # the encoder stage lists `scaling` (its NST method may need an encoder): it re-runs, finds the encoders
    # it would train already there and keeps them byte for byte, so nothing downstream of it re-runs
    assert ran == {"encoder", "pseudolabel", "quality", "scaling", "report"}, ran
    assert "already holds these encoders" in out
    for stage, folder in (("pseudolabel", "data/pseudolabel"), ("scaling", "data/scaling")):
        assert sorted(p.name for p in (project / folder).iterdir()) == ["switched_off.json"], folder
        marker = json.loads((project / folder / "switched_off.json").read_text())
        assert marker == {"stage": stage, "reason": f"{stage}.enabled: false"}
        assert not any((project / "reports" / n).exists() for n in OPTIONAL_FILES[stage]), stage
    quality = pd.read_csv(project / "reports" / "quality.csv")
    assert quality["method"].tolist() == ["real train vs real val (floor)", *GENERATIVE]
    pd.testing.assert_frame_equal(quality, pd.read_csv(project / "data" / "quality" / "quality.csv"))
    assert not pd.read_csv(project / "reports" / "table.csv")["Method"].str.contains("pseudolabel").any()
    text = (project / "reports" / "results.md").read_text()
    assert "## Pseudo-labelled NST per fold" not in text and "## Speed-up under Horovod" not in text
    assert "## Image quality of the synthetic images" in text
    page = (project / "reports" / "index.html").read_text()
    assert 'id="pseudolabel"' not in page and 'id="speedup"' not in page and 'id="quality"' in page
    again = _sh([str(BIN / "dvc"), "repro"], project)
    assert "Running stage" not in again
