"""Killed stages: ``augbench augment`` (NST) and ``augbench train`` are started as child
processes and killed with SIGKILL after their first checkpoint file appears. Nothing is then
marked complete (no meta.json), a re-run says it resumes and runs only what is missing, and
its output is byte for byte that of an uninterrupted run in another process."""

from __future__ import annotations

import json
import re

import pytest

from bench.io import file_digest
from tests.reliability.process import PARAMS, kill_when, run_cli, start_cli

pytestmark = pytest.mark.slow

NST = "nst-gatys"
# 7 batches of 4 jobs, 40 Adam steps each: long enough to be killed between two batches.
NST_SETS = ["--set", f"augment.methods.{NST}.weights=random", "--set", f"augment.methods.{NST}.batch_size=4",
            "--set", f"augment.methods.{NST}.iterations=[40]"]
TRAIN_SETS = ["--set", "train.classifiers.resnet50.epochs=3"]


def _common(*extra: str) -> list[str]:
    return ["--params", str(PARAMS), "--profile", "smoke", *extra]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("interrupt")
    done = run_cli("prepare", *_common(), "--out", "prepared", cwd=root)
    assert done.returncode == 0, done.stderr
    done = run_cli("augment", *_common(), "--prepared", "prepared", "--method", "none", "--out", "none", cwd=root)
    assert done.returncode == 0, done.stderr
    return root


def _assert_same(a, b, names) -> None:
    for name in names:
        assert file_digest(a / name) == file_digest(b / name), name


def _meta_without_times(folder) -> dict:
    meta = json.loads((folder / "meta.json").read_text())
    return {k: v for k, v in meta.items() if not k.endswith("seconds") and k != "run_info"}


def test_killed_nst_augment_resumes_from_its_shards(work):
    args = ("augment", *_common(*NST_SETS), "--prepared", "prepared", "--method", NST)
    killed = work / "nst-killed"
    proc = start_cli(*args, "--out", str(killed), cwd=work, log=work / "nst-killed.log")
    kill_when(proc, lambda: any((killed / "shards").glob("shard-*.npz")))
    finished = sorted((killed / "shards").glob("shard-*.npz"))
    assert 1 <= len(finished) < 7
    assert not (killed / "meta.json").exists()  # nothing marked complete

    rerun = run_cli(*args, "--out", str(killed), cwd=work)
    assert rerun.returncode == 0, rerun.stderr
    loaded = re.search(r"resuming: (\d+) of 7 batches", rerun.stderr)
    assert loaded and int(loaded.group(1)) >= len(finished), rerun.stderr
    assert not (killed / "shards").exists()
    assert not list(killed.glob(".*tmp*"))  # no temporary file of the killed write is left

    whole = run_cli(*args, "--out", "nst-whole", cwd=work)
    assert whole.returncode == 0, whole.stderr
    _assert_same(killed, work / "nst-whole", ("synthetic.npz", "provenance.jsonl"))
    assert _meta_without_times(killed) == _meta_without_times(work / "nst-whole")


def test_killed_training_resumes_after_its_last_epoch(work, monkeypatch):
    monkeypatch.setenv("AUGBENCH_CHECKPOINT_SECONDS", "0")  # a checkpoint after every epoch, so the kill finds one
    args = ("train", *_common(*TRAIN_SETS), "--prepared", "prepared", "--augmented", "none",
            "--classifier", "resnet50", "--seed", "0")
    killed = work / "train-killed"
    proc = start_cli(*args, "--out", str(killed), cwd=work, log=work / "train-killed.log")
    kill_when(proc, lambda: (killed / "checkpoint" / "candidate0.npz").exists())
    assert not (killed / "meta.json").exists() and not (killed / "predictions.csv").exists()

    rerun = run_cli(*args, "--out", str(killed), cwd=work)
    assert rerun.returncode == 0, rerun.stderr
    assert re.search(r"candidate0\.npz: resuming after epoch [12]\b", rerun.stderr), rerun.stderr
    assert not (killed / "checkpoint").exists()

    whole = run_cli(*args, "--out", "train-whole", cwd=work)
    assert whole.returncode == 0, whole.stderr
    _assert_same(killed, work / "train-whole", ("predictions.csv", "history.csv", "grid.csv", "relevance.npz"))
    assert _meta_without_times(killed) == _meta_without_times(work / "train-whole")
