"""Speed of a Horovod allreduce (Gloo, np = 2, this host) relative to a local sum of the same tensor.

``horovod.allreduce_vs_local_sum``
    ``local sum seconds / allreduce seconds`` for one float32 tensor the size of ResNet50's
    trainable weights (23,542,786 values, ~94 MB: the gradient a data-parallel step averages).
    The allreduce is ``hvd.allreduce(x, op=hvd.Sum)`` with two ranks; the reference is
    ``tf.add_n([x, x])`` in the same process (the arithmetic the allreduce must do, without
    the exchange). Both are timed interleaved, round by round, inside the horovodrun job, and
    each side's fastest round is used; the ratio is rank 0's. It falls if the exchange gets
    slower (a Gloo/Horovod build without its fast paths, a changed fusion buffer, a slower
    loopback). The absolute time pytest-benchmark records is the whole horovodrun job.

Skipped, with the reason, when Horovod cannot be imported (``make horovod``), unless
``AUGBENCH_REQUIRE_HOROVOD=1`` (set by CI, .ci/run): then a missing Horovod fails the test, as
it fails the horovodrun tests of tests/test_distributed.py (the same condition).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.distributed import have_horovod, horovodrun

HOROVOD, WHY = have_horovod()
REQUIRED = os.environ.get("AUGBENCH_REQUIRE_HOROVOD") == "1"
# as tests/test_distributed.py's needs_horovod: skip without Horovod unless CI requires it
pytestmark = pytest.mark.skipif(not HOROVOD and not REQUIRED, reason=WHY or "")

ROOT = Path(__file__).resolve().parents[2]
N_VALUES, ROUNDS = 23_542_786, 5  # ResNet50 (finetune-all) trainable parameters, README table

SCRIPT = """
import json, sys, time
import tensorflow as tf
import horovod.tensorflow as hvd

hvd.init()
x = tf.random.stateless_uniform((int(sys.argv[2]),), seed=(0, hvd.rank()))
hvd.allreduce(x, op=hvd.Sum)  # warm-up: negotiation, fusion buffer
tf.add_n([x, x]).numpy()
reduce_times, local_times = [], []
for _ in range(int(sys.argv[3])):
    start = time.perf_counter(); tf.add_n([x, x]).numpy(); local_times.append(time.perf_counter() - start)
    start = time.perf_counter(); hvd.allreduce(x, op=hvd.Sum).numpy(); reduce_times.append(time.perf_counter() - start)
if hvd.rank() == 0:
    json.dump({"allreduce": min(reduce_times), "local_sum": min(local_times)}, open(sys.argv[1], "w"))
"""


@pytest.mark.slow
def test_allreduce_vs_local_sum(benchmark, record_ratio, tmp_path):
    if not HOROVOD:  # only reached with AUGBENCH_REQUIRE_HOROVOD=1
        pytest.fail(f"AUGBENCH_REQUIRE_HOROVOD=1 but Horovod cannot be imported: {WHY}", pytrace=False)
    script, out = tmp_path / "allreduce.py", tmp_path / "times.json"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    argv = [*horovodrun(), "-np", "2", "--gloo", sys.executable, str(script), str(out), str(N_VALUES), str(ROUNDS)]

    def job():
        subprocess.run(argv, check=True, env=env, cwd=ROOT, capture_output=True)

    benchmark.pedantic(job, rounds=1, iterations=1)
    times = json.loads(out.read_text())
    benchmark.extra_info.update(times)
    record_ratio("horovod.allreduce_vs_local_sum", times["local_sum"] / times["allreduce"],
                 what="tf.add_n([x, x]) vs hvd.allreduce(x, Sum) on 2 Gloo ranks, x = 23,542,786 float32 "
                      "(ResNet50's trainable weights)")
