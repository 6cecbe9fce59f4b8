"""dvclive logs of training and generation (bench.tracking), and the quiet mode."""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from bench import quiet, tracking

pytestmark = pytest.mark.filterwarnings(
    # Keras 2.15 initialisers call random.randint(1, 1e9); not ours to fix.
    "ignore:non-integer arguments to randrange:DeprecationWarning")


def _rows(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def _fit(log_dir, verbose=0, epochs=2):
    """A two-unit softmax model on a separable toy problem, fitted from a fixed seed."""
    tf = pytest.importorskip("tensorflow")
    from bench.training import fit, seed_everything

    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 3)).astype("float32")
    y = (x[:, 0] > 0).astype(int)
    seed_everything(0)
    model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2, activation="softmax")])
    model.compile(tf.keras.optimizers.SGD(0.1), "categorical_crossentropy", metrics=["accuracy"])
    p = SimpleNamespace(epochs=epochs, batch_size=16, reduce_lr_patience=0, early_stopping_patience=None)
    return fit(model, p, x, y, x[:16], y[:16], verbose=verbose, log_dir=log_dir)


def test_fit_logs_one_row_per_epoch(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    log_dir = tmp_path / "runs" / "none" / "tiny" / "seed0" / "dvclive"
    result = _fit(log_dir)
    metrics = log_dir / "plots" / "metrics"
    assert _files(metrics) == {"train/loss.tsv", "train/accuracy.tsv", "eval/loss.tsv", "eval/accuracy.tsv"}
    for name, key in (("train/loss", "loss"), ("eval/loss", "val_loss"), ("eval/accuracy", "val_accuracy")):
        rows = _rows(metrics / f"{name}.tsv")
        assert [r["step"] for r in rows] == ["0", "1"]
        leaf = name.split("/")[1]
        assert [float(r[leaf]) for r in rows] == pytest.approx(result.history[key], rel=1e-6)
    summary = json.loads((log_dir / "metrics.json").read_text())
    assert summary["step"] == 1 and summary["eval"]["loss"] == pytest.approx(result.history["val_loss"][-1])
    # Files only: no dvc.yaml, no report, nothing outside the log folder.
    assert _files(tmp_path) == {f"runs/none/tiny/seed0/dvclive/{f}" for f in _files(log_dir)}
    assert not any(f.endswith(("dvc.yaml", ".html", ".md")) for f in _files(log_dir))


def test_logging_changes_no_number(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plain, logged = _fit(None), _fit(tmp_path / "dvclive")
    assert plain.history == logged.history and plain.best_epoch == logged.best_epoch
    for a, b in zip(plain.model.get_weights(), logged.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_git_repository_without_dvc_is_left_alone(tmp_path, monkeypatch):
    """dvclive's own set-up runs `dvc init` in a Git repository that has no DVC; ours must not."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    monkeypatch.chdir(tmp_path)
    assert tracking.log_generation(tmp_path / "out" / "dvclive", [{"loss": 1.0}])
    assert not (tmp_path / ".dvc").exists() and not (tmp_path / "dvc.yaml").exists()


def test_generation_log_has_one_row_per_image(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    provenance = [{"source_id": f"b{i}", "loss": 3.0 - i, "loss_content": 1.0 + i, "loss_style": 0.5 * i,
                   "loss_tv": 0.01, "loss_initial": 9.0} for i in range(3)]
    assert tracking.log_generation(tmp_path / "dvclive", provenance)
    metrics = tmp_path / "dvclive" / "plots" / "metrics" / "generation"
    assert _files(metrics) == {"total.tsv", "content.tsv", "style.tsv", "tv.tsv"}
    rows = _rows(metrics / "style.tsv")
    assert [(r["step"], float(r["style"])) for r in rows] == [("0", 0.0), ("1", 0.5), ("2", 1.0)]
    assert json.loads((tmp_path / "dvclive" / "metrics.json").read_text())["generation"]["total"] == 1.0


def test_no_generation_log_without_losses(tmp_path):
    assert not tracking.log_generation(tmp_path / "dvclive", [{"source_id": "b1"}, {"source_id": "b2"}])
    assert not (tmp_path / "dvclive").exists()


def test_quiet_mode_silences_bars_and_info_and_is_undone(capsys, monkeypatch):
    from tqdm import tqdm

    monkeypatch.delenv(quiet.QUIET_ENV, raising=False)
    log = logging.getLogger("augbench.test")
    before = logging.getLogger().level
    with quiet.quiet_mode():
        assert quiet.is_quiet() and os.environ[quiet.QUIET_ENV] == "1"
        for _ in tqdm(range(3), disable=False, mininterval=0):  # even an explicit disable=False
            pass
        assert not logging.getLogger().isEnabledFor(logging.INFO) and log.isEnabledFor(logging.WARNING)
    assert capsys.readouterr().err == ""
    assert not quiet.is_quiet() and logging.getLogger().level == before
    for _ in tqdm(range(3), disable=False, mininterval=0):
        pass
    assert "3/3" in capsys.readouterr().err


def test_quiet_fit_prints_no_epoch_lines(tmp_path, capsys):
    _fit(None, verbose=None)
    assert "Epoch 1/2" in capsys.readouterr().out
    with quiet.quiet_mode():
        _fit(None, verbose=None)
    assert "Epoch" not in capsys.readouterr().out
