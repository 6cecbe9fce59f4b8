"""Horovod execution (bench/distributed.py): sharded NST augmentation equal to one process, a
killed rank named and resumed from, one np = 2 training step equal to one process's step on the
global batch, and the scaling stage's table and plot.

Tests marked ``horovod`` start ``horovodrun -np N --gloo``; they skip, with the reason, when
Horovod cannot be imported (``make test`` builds it; AUGBENCH_REQUIRE_HOROVOD=1, set by CI,
turns that skip into a failure)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import distributed
from bench.config import load_params
from bench.distributed import (
    LaunchResult,
    RankError,
    Workers,
    failure_message,
    have_horovod,
    launch,
    share,
)
from bench.io import load_npz, read_json

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params.yaml"
NST = ["--set", "augment.methods.nst-gatys.batch_size=4", "--set", "augment.methods.nst-gatys.weights=random"]

HOROVOD, WHY = have_horovod()
needs_horovod = pytest.mark.skipif(not HOROVOD and os.environ.get("AUGBENCH_REQUIRE_HOROVOD") != "1",
                                   reason=WHY or "")


def _env() -> dict:
    """The environment of a launched stage: this checkout importable, one thread per process."""
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT),
            "AUGBENCH_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}


@pytest.fixture(scope="module")
def prepared_dir(tmp_path_factory):
    from bench.stages import prepare

    out = tmp_path_factory.mktemp("prepared")
    prepare.prepare(load_params(PARAMS, "smoke"), out)
    return out


def _augment_args(prepared: Path, out: Path, *extra: str) -> list[str]:
    return ["augment", "--params", str(PARAMS), "--profile", "smoke", "--prepared", str(prepared),
            "--method", "nst-gatys", "--out", str(out), *NST, *extra]


def _same_output(a: Path, b: Path) -> None:
    x, y = load_npz(a / "synthetic.npz"), load_npz(b / "synthetic.npz")
    assert x["images"].shape == y["images"].shape and len(x["images"]) > 0
    np.testing.assert_array_equal(x["images"], y["images"])  # bit for bit
    np.testing.assert_array_equal(x["labels"], y["labels"])
    assert (a / "provenance.jsonl").read_bytes() == (b / "provenance.jsonl").read_bytes()


@pytest.fixture(scope="module")
def single_process(prepared_dir, tmp_path_factory):
    """``augbench augment`` without Horovod, one thread: the reference."""
    out = tmp_path_factory.mktemp("single") / "nst"
    subprocess.run([sys.executable, "-m", "bench.cli", "--quiet", *_augment_args(prepared_dir, out)],
                   check=True, env=_env(), cwd=ROOT)
    return out


# ------------------------------------------------------------------ no Horovod needed


def test_shares_are_contiguous_balanced_and_cover_every_batch():
    for n in (0, 1, 7, 28, 29):
        for size in (1, 2, 3, 8):
            parts = [share(n, size, r) for r in range(size)]
            assert sum(parts, []) == list(range(n))
            assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_oversubscription_is_more_processes_or_threads_than_cores():
    assert not Workers(size=2, local_size=2, cores=2, threads=1).oversubscribed
    assert Workers(size=4, local_size=4, cores=2, threads=1).oversubscribed
    assert Workers(size=2, local_size=2, cores=2, threads=2).oversubscribed
    assert Workers(size=4, local_size=4, cores=2, threads=1).describe()["oversubscribed"] is True


def test_augment_ranks_get_a_long_horovod_cycle_unless_the_user_set_one(monkeypatch):
    monkeypatch.delenv("HOROVOD_CYCLE_TIME", raising=False)
    env = distributed.launch_environment(["augment", "--method", "nst-gatys"], threads=1)
    assert env["HOROVOD_CYCLE_TIME"] == "50" and env["OMP_NUM_THREADS"] == "1"
    assert "HOROVOD_CYCLE_TIME" not in distributed.launch_environment(["train", "--seed", "0"])
    monkeypatch.setenv("HOROVOD_CYCLE_TIME", "5")
    assert distributed.launch_environment(["augment"])["HOROVOD_CYCLE_TIME"] == "5"


def test_failure_message_names_the_rank_its_error_and_a_kill(tmp_path):
    (tmp_path / "rank-0.json").write_text(json.dumps({"rank": 0, "pid": 1, "state": "running"}))
    (tmp_path / "rank-1.json").write_text(json.dumps({"rank": 1, "pid": 2, "state": "failed",
                                                      "error": "NumericalError: 3 images still fail"}))
    output = "RuntimeError: Horovod detected ...\nProcess name: 1\nExit code: 1\n"
    text = failure_message(LaunchResult(2, 1.0, 1, output), tmp_path)
    assert "rank 1 failed: NumericalError: 3 images still fail" in text
    assert "rank 0 was stopped while running" in text and str(tmp_path) in text
    (tmp_path / "rank-1.json").write_text(json.dumps({"rank": 1, "pid": 2, "state": "running"}))
    text = failure_message(LaunchResult(2, 1.0, 1, output.replace("Exit code: 1", "Exit code: 137")), tmp_path)
    assert text.startswith("the run on 2 processes failed: rank 1 exited with status 137 (killed by SIGKILL)")


@pytest.mark.slow
def test_shard_folder_in_one_process_equals_the_plain_run_and_is_removed(prepared_dir, single_process, tmp_path):
    out, shards = tmp_path / "nst", tmp_path / "parts"
    subprocess.run([sys.executable, "-m", "bench.cli", "--quiet", *_augment_args(prepared_dir, out),
                    "--shards", str(shards)], check=True, env=_env(), cwd=ROOT)
    _same_output(single_process, out)
    assert not shards.exists()  # merged and complete: the shards are gone
    dist = read_json(out / "meta.json")["distributed"]
    assert dist["np"] == 1 and set(dist["phases_max"]) >= {"startup", "build", "compute", "io"}


# ------------------------------------------------------------------ horovodrun


@needs_horovod
@pytest.mark.horovod
@pytest.mark.slow
def test_np2_augmentation_is_bit_identical_to_one_process(prepared_dir, single_process, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", _env()["PYTHONPATH"])
    out = tmp_path / "nst"
    launch(2, _augment_args(prepared_dir, out), tmp_path / "nst.shards", threads=1, echo=False)
    _same_output(single_process, out)
    meta = read_json(out / "meta.json")
    dist = meta["distributed"]
    assert dist["np"] == 2 and dist["backend"] == "gloo" and len(dist["phases_by_rank"]) == 2
    assert meta["run_info"]["distributed"]["batches_computed"] == -(-meta["n_synthetic"] // 4)
    assert not (tmp_path / "nst.shards").exists()


@needs_horovod
@pytest.mark.horovod
@pytest.mark.slow
def test_a_killed_rank_fails_the_run_by_name_and_a_rerun_resumes(prepared_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", _env()["PYTHONPATH"])
    slow = ["--set", "augment.methods.nst-gatys.iterations=[40]"]  # batches of ~1 s: time to kill one
    out, shards = tmp_path / "nst", tmp_path / "nst.shards"
    failure: list[BaseException] = []

    def run():
        try:
            launch(2, _augment_args(prepared_dir, out, *slow), shards, threads=1, echo=False, timeout=600)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            failure.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    first_of_rank1 = shards / "shard-16-4.npz"  # 28 jobs / 4 = 7 batches: rank 1 runs 3..6; this is batch 4 (jobs 16..19)
    deadline = time.monotonic() + 300
    while not first_of_rank1.exists() and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.2)
    assert first_of_rank1.exists(), "rank 1 never finished a batch"
    pid = read_json(shards / "rank-1.json")["pid"]
    os.kill(pid, signal.SIGKILL)  # mid-run: rank 1 has batches left
    thread.join(600)
    assert failure and isinstance(failure[0], RankError)
    message = str(failure[0])
    assert "rank 1 exited with status" in message and "SIGKILL" in message and str(shards) in message
    assert not (out / "meta.json").exists()  # nothing marked complete
    kept = sorted(p.name for p in shards.glob("shard-*.npz"))
    assert "shard-16-4.npz" in kept and len(kept) < 7

    launch(2, _augment_args(prepared_dir, out, *slow), shards, threads=1, echo=False)
    info = read_json(out / "meta.json")["run_info"]["distributed"]
    assert info["batches_resumed"] == len(kept) and info["batches_computed"] == 7 - len(kept)
    reference = tmp_path / "reference"  # the same settings in one process, no shards
    subprocess.run([sys.executable, "-m", "bench.cli", "--quiet", *_augment_args(prepared_dir, reference, *slow)],
                   check=True, env=_env(), cwd=ROOT)
    _same_output(reference, out)


STEP_SCRIPT = """
import sys
import numpy as np
from bench.distributed import (broadcast_variables, init_workers, keras_distributed, make_train_step,
                               scaled_learning_rate, share)

workers = init_workers()
import tensorflow as tf

tf.keras.utils.set_random_seed(1 + workers.rank)  # different initial weights per rank on purpose
model = tf.keras.Sequential([tf.keras.Input((12, 12, 1)), tf.keras.layers.Conv2D(4, 3, activation="relu"),
                             tf.keras.layers.GlobalAveragePooling2D(), tf.keras.layers.Dense(2, activation="softmax")])
rng = np.random.default_rng(0)
x = rng.random((8, 12, 12, 1), dtype=np.float32)  # the global batch
y = tf.keras.utils.to_categorical(rng.integers(0, 2, 8), 2)
rows = share(len(x), workers.size, workers.rank)  # this rank's part of the global batch
before = [w.copy() for w in model.get_weights()]
if sys.argv[3] == "tape":  # custom loop: DistributedGradientTape
    optimizer = tf.keras.optimizers.SGD(scaled_learning_rate(float(sys.argv[2]), workers), momentum=0.9)
    broadcast_variables(model.variables, workers)  # rank 0's weights everywhere
    before = [w.copy() for w in model.get_weights()]
    step = make_train_step(model, optimizer, tf.keras.losses.CategoricalCrossentropy(), workers)
    loss = float(step(x[rows], y[rows]))
else:  # Keras fit: hvd.DistributedOptimizer + broadcast callback (bench.training.fit's path)
    model.compile(optimizer=tf.keras.optimizers.SGD(float(sys.argv[2]), momentum=0.9),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    callbacks = keras_distributed(model, workers)
    if workers.rank == 0:
        before = [w.copy() for w in model.get_weights()]
    history = model.fit(x[rows], y[rows], batch_size=len(x[rows]), epochs=1, shuffle=False, verbose=0,
                        callbacks=callbacks)
    loss = history.history["loss"][0]
if workers.is_root:
    np.savez(sys.argv[1], loss=loss, moved=sum(float(np.abs(a - b).max()) for a, b in zip(model.get_weights(), before)),
             **{f"w{i}": w for i, w in enumerate(model.get_weights())})
"""


@needs_horovod
@pytest.mark.horovod
@pytest.mark.slow
@pytest.mark.parametrize("loop", ["tape", "keras"])
def test_one_np2_training_step_equals_one_step_on_the_global_batch(tmp_path, loop):
    script = tmp_path / "step.py"
    script.write_text(STEP_SCRIPT)
    env = _env()
    # np = 2 at base learning rate 0.05 (scaled to 0.1) ...
    subprocess.run([*distributed.horovodrun(), "-np", "2", "--gloo", sys.executable, str(script),
                    str(tmp_path / "np2.npz"), "0.05", loop], check=True, env=env, cwd=ROOT, capture_output=True)
    # ... equals one process on all 8 rows at 0.1, with rank 0's initial weights (seed 1)
    subprocess.run([sys.executable, str(script), str(tmp_path / "np1.npz"), "0.1", loop], check=True, env=env,
                   cwd=ROOT)
    a, b = np.load(tmp_path / "np2.npz"), np.load(tmp_path / "np1.npz")
    assert float(b["moved"]) > 1e-4  # the step did something
    np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-6)
    for key in [k for k in b.files if k.startswith("w")]:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-7)


@needs_horovod
@pytest.mark.horovod
@pytest.mark.slow
def test_scale_writes_the_speedup_tables_and_plot(prepared_dir, tmp_path, monkeypatch):
    """Both stages under horovodrun: NST augmentation and resnet50 training with np = 1 and 2."""
    monkeypatch.setenv("PYTHONPATH", _env()["PYTHONPATH"])
    from bench.stages import scaling

    out = tmp_path / "reports"
    common = ["--params", str(PARAMS), "--profile", "smoke", *NST]
    params = load_params(PARAMS, "smoke", [a for a in NST if a != "--set"] + ["scaling.classifier=resnet50"])
    frame = scaling.scale(params, common, str(prepared_dir), None, tmp_path / "work", out, [1, 2])
    table = pd.read_csv(out / "speedup.csv")
    assert list(table["np"]) == [1, 2] and {"seconds", "speedup", "efficiency", "t1", "compute"} <= set(table)
    assert table.loc[0, "speedup"] == 1.0 and table["identical_to_np1"].all()
    assert abs(table.loc[1, "speedup"] - table.loc[0, "seconds"] / table.loc[1, "seconds"]) < 1e-2
    assert (out / "speedup.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "T_1/T_p" in (out / "speedup.md").read_text()
    assert read_json(out / "scaling.json")["cores"] == distributed.cpu_cores()
    assert len(frame) == 2
    trained = pd.read_csv(out / "speedup_train.csv")  # resnet50, scaling.train_epochs = 1
    assert list(trained["np"]) == [1, 2] and (trained["stage"] == "train").all()
    meta = read_json(tmp_path / "work" / "train-np2" / "meta.json")
    assert meta["distributed"]["np"] == 2 and meta["distributed"]["learning_rate_scaled_by"] == 2
    assert meta["distributed"]["global_batch_size"] == 2 * meta["params"]["batch_size"]
    assert (tmp_path / "work" / "train-np2" / "predictions.csv").is_file()  # written by rank 0
    assert not (tmp_path / "work" / "train-np2.shards").exists()
