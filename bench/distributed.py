"""Horovod execution: ranks, pinned threads, sharded NST jobs with resumable shard files,
rank failures, and the ``horovodrun`` launcher behind ``augbench launch`` and ``augbench scale``.

Under ``horovodrun -np N --gloo`` (or ``mpirun`` with a Horovod built with MPI) every stage
command finds its rank in the environment (:func:`init_workers`). The augment stage then
splits the NST job plan (``bench.nst.transfer.plan_jobs``), never the images: the plan is
made from the seed on every rank, cut into the engine's fixed-size batches, and each rank
runs a contiguous, equal share of the batches (every batch costs the same: fixed shape,
fixed iterations). A finished batch is written at once, atomically, as one file in the
shard folder (default ``OUT.shards`` beside the stage's output) by the same store that
checkpoints a one-process run (:mod:`bench.nst.shards`: each file carries the fingerprint
of the plan and settings that made it); a rerun with the same settings loads the batches
whose files exist, so it resumes after a crash. Retries of failed images are batched from
the global list of failures, exactly as in one process. Rank 0 reads the files in plan
order (the deterministic merge), writes the stage's outputs, and removes the shard folder.
Because each batch holds the same jobs as in a one-process run, and each target is
computed in the same chunk as there (``NSTEngine._targets``), the merged images and
provenance are bit for bit those of ``augbench augment`` without Horovod (tested, with
one thread per process on both sides).

Why this matters: Panigrahi et al. 2024, Table 3 (../shared/papers/panigrahi-2024-*.txt)
report 3771.53 s on one GPU and 739.65 s on eight for NST augmentation, a speedup of
T_1/T_p = 5.10 and an efficiency of 64% for work that needs no communication at all
(their table writes S = T_p/T_s, which is the inverse). Amdahl's law with p = 8 gives a
serial fraction of about 8%; here only the plan, the merge and the output writing are
serial.

Threads: each process gets ``cores // local processes`` intra-op and OpenMP threads (at
least 1) and one inter-op thread; a run with more processes on a host than cores is
*oversubscribed*, and every record of it says so (meta.json, the scaling table).

Failures: a rank that raises writes ``rank-R.error`` into the shard folder and exits;
Horovod then stops the others. :func:`launch` turns that into one message naming the
rank and its error (or, for a rank that died without a word, its exit status, e.g.
SIGKILL). Nothing is marked complete on failure: the stage's ``meta.json`` is removed at
the start and written last, by rank 0, after the merge.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import AugbenchError

log = logging.getLogger("augbench")

LAUNCH_T0 = "AUGBENCH_LAUNCH_T0"  # time.time() when the launcher started horovodrun (start-up phase)
THREADS = "AUGBENCH_THREADS"  # threads per process, set by the launcher (else cores // local processes)
SHARD_SUFFIX = ".shards"


class RankError(AugbenchError):
    """One or more Horovod ranks failed; the message names each rank and its error."""


# --------------------------------------------------------------------------- workers


def cpu_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def threads_per_process(local_size: int, cores: int | None = None) -> int:
    return max(1, (cores or cpu_cores()) // max(1, local_size))


def _env_int(*names: str) -> int | None:
    for name in names:
        if os.environ.get(name, "").strip().isdigit():
            return int(os.environ[name])
    return None


def horovod_environment() -> tuple[int, int, int, int] | None:
    """(rank, size, local rank, local size) when started by horovodrun (Gloo) or mpirun, else None."""
    size = _env_int("HOROVOD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")
    if size is None:
        return None
    rank = _env_int("HOROVOD_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK") or 0
    local_rank = _env_int("HOROVOD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID") or 0
    local_size = _env_int("HOROVOD_LOCAL_SIZE", "OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS") or size
    return rank, size, local_rank, local_size


class Timer:
    """Wall time per phase: ``startup``, ``build`` (model build and tracing), ``compute``, ``io``."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(phase, time.perf_counter() - started)

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] = self.seconds.get(phase, 0.0) + seconds

    def rounded(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in sorted(self.seconds.items())}


def _no_phase(_name: str) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext()


def phases(workers: Workers | None) -> Callable[[str], contextlib.AbstractContextManager]:
    """``with phases(workers)("io"): ...``: the block's seconds go to that phase of this rank's
    timer (a run's meta.json); a plain run without ``workers`` times nothing."""
    return workers.timer if workers is not None else _no_phase


def phase_summary(by_rank: list[dict]) -> dict:
    """Every rank's phase seconds (``Workers.allgather`` of ``timer.rounded()``) and the slowest
    rank's per phase, for a run's meta.json."""
    return {"phases_by_rank": by_rank,
            "phases_max": {k: max(p.get(k, 0.0) for p in by_rank) for k in sorted(set().union(*by_rank))}}


@dataclass
class Workers:
    """This process's place in a run: one process (``size`` 1, no Horovod) or a Horovod rank."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1
    cores: int = field(default_factory=cpu_cores)
    threads: int = 0
    horovod: bool = False
    timer: Timer = field(default_factory=Timer)

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    @property
    def oversubscribed(self) -> bool:
        """More processes on this host than cores (or more threads than cores in all)."""
        return self.local_size > self.cores or self.local_size * max(1, self.threads) > self.cores

    def describe(self) -> dict:
        return {"np": self.size, "local_processes": self.local_size, "cores": self.cores,
                "threads_per_process": self.threads, "oversubscribed": self.oversubscribed,
                "backend": _backend() if self.horovod else "none"}

    def allgather(self, obj):
        """Every rank's ``obj``, in rank order (a barrier as well)."""
        if not self.horovod:
            return [obj]
        import horovod.tensorflow as hvd

        return list(hvd.allgather_object(obj))

    def broadcast(self, obj):
        if not self.horovod:
            return obj
        import horovod.tensorflow as hvd

        return hvd.broadcast_object(obj, root_rank=0)


def _backend() -> str:
    import horovod.tensorflow as hvd

    return "mpi" if hvd.mpi_enabled() else ("gloo" if hvd.gloo_enabled() else "unknown")


def pin_threads(threads: int) -> None:
    """OpenMP and TensorFlow intra-op threads = ``threads``, one inter-op thread. Call before
    TensorFlow runs its first op (thread pools are fixed from then on)."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already started: say so rather than pretend
        log.warning("TensorFlow was initialised before its threads could be pinned (%s); keeping %d/%d",
                    threads, tf.config.threading.get_intra_op_parallelism_threads(),
                    tf.config.threading.get_inter_op_parallelism_threads())


_WORKERS: Workers | None = None


def init_workers() -> Workers:
    """The Workers of this process, created once: under horovodrun/mpirun, ``hvd.init()`` with
    pinned threads; otherwise one process (threads pinned only when AUGBENCH_THREADS is set)."""
    global _WORKERS
    if _WORKERS is not None:
        return _WORKERS
    env = horovod_environment()
    started = time.perf_counter()
    if env is None:
        threads = _env_int(THREADS) or 0
        if threads:
            pin_threads(threads)
        _WORKERS = Workers(threads=threads)
    else:
        rank, size, local_rank, local_size = env
        threads = _env_int(THREADS) or threads_per_process(local_size)
        pin_threads(threads)
        try:
            import horovod.tensorflow as hvd
        except ImportError as exc:
            raise AugbenchError(f"started as rank {rank} of {size} (horovodrun/mpirun), but Horovod cannot be "
                                f"imported ({exc}); build it with `make horovod`") from None
        hvd.init()
        _WORKERS = Workers(rank=hvd.rank(), size=hvd.size(), local_rank=hvd.local_rank(),
                           local_size=hvd.local_size(), threads=threads, horovod=True)
    launched = os.environ.get(LAUNCH_T0)
    # start-up: from the launcher's start (process spawn, imports) to a ready Horovod
    _WORKERS.timer.add("startup", time.time() - float(launched) if launched else time.perf_counter() - started)
    if _WORKERS.oversubscribed:
        log.warning("oversubscribed: %d processes × %d threads on %d cores", _WORKERS.local_size,
                    max(1, _WORKERS.threads), _WORKERS.cores)
    return _WORKERS


def reset_workers() -> None:
    """Forget the Workers of this process (tests)."""
    global _WORKERS
    _WORKERS = None


@contextlib.contextmanager
def rank_guard(workers: Workers, shard_dir: Path | None) -> Iterator[Callable[[], None]]:
    """Record this rank's pid while it runs and its error if it fails: ``rank-R.json`` in
    ``shard_dir`` (read by :func:`launch`). A failing rank also prints one line naming itself.
    Yields ``done()``, which a rank calls once its part is finished (before rank 0 may remove
    the folder)."""
    status = None if shard_dir is None else Path(shard_dir) / f"rank-{workers.rank}.json"
    if status is not None:
        status.parent.mkdir(parents=True, exist_ok=True)
        _write_status(status, {"rank": workers.rank, "pid": os.getpid(), "state": "running"})
        if workers.is_root:  # a previous run with more processes left these
            for old in status.parent.glob("rank-*.json"):
                if old.stem.split("-")[-1].isdigit() and int(old.stem.split("-")[-1]) >= workers.size:
                    old.unlink(missing_ok=True)

    def done() -> None:
        if status is not None:
            _write_status(status, {"rank": workers.rank, "pid": os.getpid(), "state": "done"})

    try:
        yield done
    except BaseException as exc:
        text = f"{type(exc).__name__}: {exc}" if not isinstance(exc, AugbenchError) else str(exc)
        if status is not None:
            _write_status(status, {"rank": workers.rank, "pid": os.getpid(), "state": "failed", "error": text,
                                   "traceback": traceback.format_exc()})
        if workers.size > 1:
            print(f"augbench: rank {workers.rank} of {workers.size} failed: {text}", file=sys.stderr, flush=True)
        raise


def _write_status(path: Path, data: dict) -> None:
    from bench.io import write_json

    write_json(path, data)


# --------------------------------------------------------------------------- shards


def share(n_batches: int, size: int, rank: int) -> list[int]:
    """Rank ``rank``'s contiguous share of ``n_batches`` equal-cost batches (sizes differ by ≤ 1)."""
    return list(range(rank * n_batches // size, (rank + 1) * n_batches // size))


def default_shard_dir(out: Path) -> Path:
    out = Path(out)
    return out.parent / (out.name + SHARD_SUFFIX)


@dataclass
class Sharding:
    """An augment run across processes: the workers and the shard folder where every rank saves
    its finished batches (:class:`bench.nst.shards.ShardStore`, used by ``style_transfer``)."""

    workers: Workers
    folder: Path


# --------------------------------------------------------------------------- training
#
# Data-parallel training: every process keeps the classifier's ``batch_size``, so the global
# batch is np × batch_size, and the learning rate is multiplied by np (the linear scaling rule
# of Goyal et al. 2017, "Accurate, Large Minibatch SGD", §2.1; Horovod's own examples do the
# same). Gradients are averaged over the ranks (allreduce), so one step on np ranks equals one
# step of a single process on the concatenated global batch at the scaled learning rate —
# except for BatchNormalization, whose batch statistics stay per rank (tested without BN).


def scaled_learning_rate(learning_rate: float, workers: Workers) -> float:
    """The learning rate for np processes: ``learning_rate × np`` (linear scaling rule)."""
    return float(learning_rate) * workers.size


def broadcast_variables(variables, workers: Workers) -> None:
    """Give every rank rank 0's initial values (model weights, optimizer slots)."""
    if workers.horovod and workers.size > 1:
        import horovod.tensorflow as hvd

        hvd.broadcast_variables(list(variables), root_rank=0)


def make_train_step(model, optimizer, loss_fn, workers: Workers):
    """A traced step: loss of this rank's batch, gradients averaged over the ranks
    (``hvd.DistributedGradientTape``), applied by every rank alike. Returns the global mean loss."""
    import tensorflow as tf

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        if workers.horovod:
            import horovod.tensorflow as hvd

            tape = hvd.DistributedGradientTape(tape)
            grads = tape.gradient(loss, model.trainable_variables)
            loss = hvd.allreduce(loss)
        else:
            grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    return step


def keras_distributed(model, workers: Workers, learning_rate: float | None = None):
    """Recompile a compiled Keras ``model`` for Horovod: its optimizer (learning rate × np) in
    ``hvd.DistributedOptimizer``; returns the callbacks that broadcast rank 0's initial
    variables and average the epoch metrics over ranks. One process: the model as it is, no
    callbacks."""
    if not (workers.horovod and workers.size > 1):
        return []
    import horovod.tensorflow.keras as hvd
    import tensorflow as tf

    optimizer = model.optimizer
    lr = float(tf.keras.backend.get_value(optimizer.learning_rate)) if learning_rate is None else learning_rate
    optimizer.learning_rate = scaled_learning_rate(lr, workers)
    model.compile(optimizer=hvd.DistributedOptimizer(optimizer), loss=model.loss,
                  metrics=[m for m in model.compiled_metrics._user_metrics or []])
    # Now, not only in the callback: Horovod's callback broadcasts after the first batch, whose
    # gradients would then come from different weights on each rank.
    broadcast_variables(model.variables, workers)
    return [hvd.callbacks.BroadcastGlobalVariablesCallback(0), hvd.callbacks.MetricAverageCallback()]


# --------------------------------------------------------------------------- launcher


def horovodrun() -> list[str]:
    """The horovodrun command of this Python (the script beside it, else Horovod's module)."""
    beside = Path(sys.executable).parent / "horovodrun"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("horovodrun")
    if found:
        return [found]
    return [sys.executable, "-c", "from horovod.runner.launch import run_commandline; run_commandline()"]


def have_horovod() -> tuple[bool, str]:
    """(True, "") when Horovod with TensorFlow can be imported, else (False, why)."""
    try:
        import horovod.tensorflow  # noqa: F401
    except Exception as exc:  # ImportError, or a Horovod built against another TensorFlow
        return False, f"Horovod is not importable ({type(exc).__name__}: {exc}); build it with `make horovod`"
    return True, ""


@dataclass
class LaunchResult:
    np: int
    seconds: float
    returncode: int
    output: str


# Horovod's background thread wakes every HOROVOD_CYCLE_TIME ms (default 1) to negotiate
# collectives; on a CPU it then keeps 20-33% of a core busy per idle rank (measured here:
# 4.1 and 6.6 CPU seconds in 20 s for two ranks doing nothing; 0.4 s at 50 ms), CPU taken
# from the rank's own work. The augment stage exchanges data only once per NST round (an
# allgather), so a 50 ms cycle costs it nothing; training allreduces every step, where the
# default (tuned for GPUs) is kept.
CYCLE_TIME_MS = {"augment": "50"}


def launch_environment(command: Sequence[str], threads: int | None = None, extra_env: dict | None = None) -> dict:
    """The environment of the launched processes: ours, the launch time, pinned threads, and a
    longer Horovod cycle for stages with rare collectives (``CYCLE_TIME_MS``) unless set."""
    env = {**os.environ, LAUNCH_T0: repr(time.time()), **(extra_env or {})}
    if threads:
        env[THREADS] = str(threads)
        env["OMP_NUM_THREADS"] = str(threads)
    if command and command[0] in CYCLE_TIME_MS:
        env.setdefault("HOROVOD_CYCLE_TIME", CYCLE_TIME_MS[command[0]])
    return env


def launch(np_: int, command: Sequence[str], shard_dir: Path | None = None, hosts: str | None = None,
           threads: int | None = None, mpi: bool = False, timeout: float | None = None,
           echo: bool = True, extra_env: dict | None = None) -> LaunchResult:
    """Run ``command`` (an augbench stage's arguments, e.g. ``["augment", "--method", ...]``) on
    ``np_`` processes with horovodrun (Gloo, or MPI with ``mpi``); raise :class:`RankError`
    naming the failed ranks and their errors when the run fails."""
    ok, why = have_horovod()
    if not ok:
        raise AugbenchError(why)
    argv = [*horovodrun(), "-np", str(np_), "--mpi" if mpi else "--gloo"]
    if hosts:
        argv += ["-H", hosts]
    argv += [sys.executable, "-m", "bench.cli", "--quiet", *command]
    env = launch_environment(command, threads, extra_env)
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if echo:
                sys.stderr.write(line)
        proc.wait(timeout=timeout)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
        raise
    result = LaunchResult(np_, time.perf_counter() - started, proc.returncode, "".join(lines))
    if result.returncode != 0:
        raise RankError(failure_message(result, shard_dir))
    return result


_FIRST = re.compile(r"Process name:\s*(\S+)\s*\n\s*Exit code:\s*(-?\d+)")


def failure_message(result: LaunchResult, shard_dir: Path | None) -> str:
    """One message for a failed run: each rank that recorded an error, with it; a rank that
    died without one, with the exit status horovodrun saw (137 or -9: killed, SIGKILL)."""
    parts = []
    states = {}
    if shard_dir is not None and Path(shard_dir).is_dir():
        for path in sorted(Path(shard_dir).glob("rank-*.json")):
            with contextlib.suppress(ValueError, OSError):
                data = json.loads(path.read_text(encoding="utf-8"))
                states[int(data["rank"])] = data
    for rank, data in sorted(states.items()):
        if data.get("state") == "failed":
            parts.append(f"rank {rank} failed: {data.get('error')}")
    first = _FIRST.search(result.output)
    if first:
        name, code = first.group(1), int(first.group(2))
        rank = int(name) if name.isdigit() else name
        if not any(p.startswith(f"rank {rank} ") for p in parts):
            parts.insert(0, f"rank {rank} exited with status {code}{_signal_note(code)} without an error of "
                            "its own")
    for rank, data in sorted(states.items()):
        if data.get("state") == "running" and not any(p.startswith(f"rank {rank} ") for p in parts):
            parts.append(f"rank {rank} was stopped while running")
    if not parts:
        tail = "".join(result.output.splitlines(keepends=True)[-15:])
        parts.append(f"horovodrun exited with status {result.returncode}; its last lines:\n{tail}")
    resume = (f"; finished batches are kept in {shard_dir} and a rerun resumes from them"
              if shard_dir is not None else "")
    return f"the run on {result.np} processes failed: " + "; ".join(parts) + resume


def _signal_note(code: int) -> str:
    number = -code if code < 0 else (code - 128 if code > 128 else 0)
    if number <= 0:
        return ""
    try:
        return f" (killed by {signal.Signals(number).name})"
    except ValueError:
        return f" (signal {number})"


def main_launch(argv: list[str] | None = None) -> int:
    """``augbench launch -np N [-H hosts] [--threads T] STAGE ARGS...``"""
    import argparse

    parser = argparse.ArgumentParser(prog="augbench launch", description="run an augbench stage on N Horovod "
                                     "processes (horovodrun --gloo; --mpi for MPI) and name any rank that fails")
    parser.add_argument("-np", "--np", dest="np", type=int, required=True, help="number of processes")
    parser.add_argument("-H", "--hosts", default=None, help="hosts and slots, e.g. host1:4,host2:4")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads per process (default: cores // processes on the host)")
    parser.add_argument("--mpi", action="store_true", help="use MPI instead of Gloo")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="stage and its arguments, e.g. augment ...")
    args = parser.parse_args(argv)
    if not args.command:
        parser.error("give a stage and its arguments, e.g. augment --method nst-gatys --out DIR")
    out = _option(args.command, "--out")
    shards = _option(args.command, "--shards") or (str(default_shard_dir(Path(out))) if out else None)
    launch(args.np, args.command, Path(shards) if shards else None, args.hosts, args.threads, args.mpi)
    return 0


def _option(argv: Sequence[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None
