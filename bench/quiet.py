"""What the console shows: quiet mode, progress bars and TensorFlow's start-up lines.

- Quiet mode (``augbench --quiet …``, ``augbench run --quiet``, ``AUGBENCH_QUIET=1``): warnings,
  errors and summary lines only — no progress bars, no Keras epoch lines, no INFO log records.
  It is carried to child processes (the stages ``dvc repro`` starts) by the ``AUGBENCH_QUIET``
  environment variable.
- :func:`progress` / :func:`keras_progress`: every long loop's bar, drawn the same way — on
  stderr, only on a terminal, never in quiet mode.
- :func:`filter_tensorflow_startup`: while ``import tensorflow`` runs, file descriptor 2 goes
  through a filter process that passes every line to stderr except the known-harmless ones of
  :data:`HARMLESS_TF_LINES`. ``AUGBENCH_TF_LOG=1`` turns the filter off (docs/console.md).

A command-line concern that changes no number a stage computes, so it lives outside the modules
DVC stages depend on.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

QUIET_ENV = "AUGBENCH_QUIET"
TF_LOG_ENV = "AUGBENCH_TF_LOG"


def is_quiet() -> bool:
    return os.environ.get(QUIET_ENV, "") not in ("", "0")


@contextlib.contextmanager
def quiet_mode(enabled: bool = True) -> Iterator[None]:
    """While active: INFO records dropped, every tqdm bar disabled, ``AUGBENCH_QUIET=1``
    set for child processes. Everything is put back on exit."""
    if not enabled:
        yield
        return
    from tqdm import std

    root = logging.getLogger()
    level, env, init = root.level, os.environ.get(QUIET_ENV), std.tqdm.__init__

    def silent_init(self, *args, **kwargs):
        kwargs["disable"] = True  # callers pass disable= explicitly, so TQDM_DISABLE would not do
        init(self, *args, **kwargs)

    root.setLevel(logging.WARNING)
    os.environ[QUIET_ENV] = "1"
    std.tqdm.__init__ = silent_init
    try:
        yield
    finally:
        std.tqdm.__init__ = init
        root.setLevel(level)
        if env is None:
            os.environ.pop(QUIET_ENV, None)
        else:
            os.environ[QUIET_ENV] = env


# --------------------------------------------------------------------------- progress bars


@contextlib.contextmanager
def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str, unit: str,
             initial: int = 0, leave: bool | None = None) -> Iterator:
    """A tqdm bar on stderr, as every long loop of the project draws it: only when stderr is a
    terminal (tqdm's rule for ``disable=None``), never in quiet mode, redrawn at most once a
    second; closed on exit. While it is shown, log records are printed above it instead of
    through it. ``leave`` None: the bar stays on screen when it is the outermost one."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    bar = tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, leave=leave, file=sys.stderr,
               disable=True if is_quiet() else None, mininterval=1.0, dynamic_ncols=True)
    try:
        with contextlib.nullcontext() if bar.disable else logging_redirect_tqdm():
            yield bar
    finally:
        bar.close()


@contextlib.contextmanager
def keras_progress(desc: str, epochs: int, steps: int) -> Iterator[list]:
    """``with keras_progress(...) as callbacks: model.fit(..., callbacks=callbacks)``: one
    :func:`progress` bar over the ``epochs × steps`` batches, with the epoch and the running loss
    beside it, closed however ``fit`` ends. No callback when the bar would not be shown, so that a
    run without a terminal pays nothing per batch."""
    if is_quiet() or not _stderr_is_terminal():
        yield []
        return
    import tensorflow as tf

    with progress(total=epochs * steps, desc=desc, unit="batch") as bar:

        class KerasProgress(tf.keras.callbacks.Callback):
            epoch = 0

            def on_epoch_begin(self, epoch, logs=None):
                self.epoch = epoch

            def on_train_batch_end(self, batch, logs=None):
                bar.update(1)
                loss = (logs or {}).get("loss")
                bar.set_postfix_str(f"epoch {self.epoch + 1}/{epochs}"
                                    + (f", loss {float(loss):.4f}" if loss is not None else ""), refresh=False)

        yield [KerasProgress()]


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


# --------------------------------------------------------------------------- TensorFlow's start-up lines

# The lines ``import tensorflow`` (2.15) prints that say nothing is wrong, as (the C++ source file
# that logs it, the start of its message). Each is dropped only in TensorFlow's log format,
# "[date time: ]<I|W|E|F> <path>/<file>:<line>] <message>"; every other line is kept.
HARMLESS_TF_LINES: tuple[tuple[str, str], ...] = (
    # The CUDA plugins of the TF 2.15 wheels register twice at import, with or without a GPU:
    ("cuda_dnn.cc", "Unable to register cuDNN factory: Attempting to register factory for plugin cuDNN "
                    "when one has already been registered"),
    ("cuda_fft.cc", "Unable to register cuFFT factory: Attempting to register factory for plugin cuFFT "
                    "when one has already been registered"),
    ("cuda_blas.cc", "Unable to register cuBLAS factory: Attempting to register factory for plugin cuBLAS "
                     "when one has already been registered"),
    # No GPU or no TensorRT: TensorFlow runs on the CPU, as the benchmark expects (the cuda-drivers line
    # is kept when a GPU is expected, see GPU_FALLBACK_LINE).
    ("cudart_stub.cc", "Could not find cuda drivers on your machine, GPU will not be used."),
    ("py_utils.cc", "TF-TRT Warning: Could not find TensorRT"),
    # CPU notices: the wheel could use more instructions (its second line follows, see below);
    # oneDNN is on (results may differ in the last bits; TF_ENABLE_ONEDNN_OPTS=0 turns it off).
    ("cpu_feature_guard.cc", "This TensorFlow binary is optimized to use available CPU instructions in "
                             "performance-critical operations."),
    ("port.cc", "oneDNN custom operations are on."),
)
# The second line of the cpu_feature_guard notice, dropped only right after its first line.
_CPU_NOTICE_TAIL = re.compile(r"To enable the following instructions: .*, in other operations, "
                              r"rebuild TensorFlow with the appropriate compiler flags\.$")
_TF_LINE = re.compile(r"^(?:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: )?[IWEF] (?:\S*/)?(?P<file>[\w.]+):\d+\] "
                      r"(?P<message>.*)$")


# Harmless only on a machine without a GPU: where one is expected (gpu_expected), this line is the only
# sign that TensorFlow did not find the driver and fell back to the CPU, so it is kept.
GPU_FALLBACK_LINE = ("cudart_stub.cc", "Could not find cuda drivers on your machine, GPU will not be used.")


def gpu_expected(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment asks for a GPU: ``CUDA_VISIBLE_DEVICES`` set to something other
    than empty or ``-1``, or ``NVIDIA_VISIBLE_DEVICES`` (the NVIDIA container runtime's) set to
    something other than empty, ``void`` or ``none``, its values for "no GPU"."""
    env = os.environ if environ is None else environ
    cuda = env.get("CUDA_VISIBLE_DEVICES")
    nvidia = env.get("NVIDIA_VISIBLE_DEVICES")
    return ((cuda is not None and cuda.strip() not in ("", "-1"))
            or (nvidia is not None and nvidia.strip().lower() not in ("", "void", "none")))


def harmless_tf_line(line: str) -> bool:
    """Whether ``line`` (without its newline) is one of :data:`HARMLESS_TF_LINES`
    (:data:`GPU_FALLBACK_LINE` only when no GPU is expected: :func:`gpu_expected`)."""
    found = _TF_LINE.match(line)
    if not found:
        return False
    known = [k for k in HARMLESS_TF_LINES if k != GPU_FALLBACK_LINE or not gpu_expected()]
    return any(found["file"] == file and found["message"].startswith(message) for file, message in known)


class _HarmlessLines:
    """Decides line by line which lines to drop (the cpu_feature_guard notice's second line is
    dropped only right after its first)."""

    def __init__(self) -> None:
        self.after_cpu_notice = False

    def drop(self, line: str) -> bool:
        bare = line.rstrip("\r\n")
        if harmless_tf_line(bare):
            self.after_cpu_notice = "cpu_feature_guard.cc:" in bare
            return True
        tail = self.after_cpu_notice and bool(_CPU_NOTICE_TAIL.match(bare))
        self.after_cpu_notice = False
        return tail


def drop_harmless_tf_lines(text: str) -> str:
    """``text`` without the lines of :data:`HARMLESS_TF_LINES` (and the cpu_feature_guard notice's
    second line right after its first); every other line, in order, with its line ending."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
    harmless = _HarmlessLines()
    return "".join(line for line in lines if not harmless.drop(line))


def tf_log_wanted() -> bool:
    """``AUGBENCH_TF_LOG`` set (not empty, not 0): show TensorFlow's start-up lines unfiltered."""
    return os.environ.get(TF_LOG_ENV, "") not in ("", "0")


# The filter process: copies its stdin to its stdout line by line, less the harmless lines (all of
# it unfiltered if bench.quiet cannot be imported there). It ignores Ctrl-C, so that it forwards
# what the importing process wrote until that process has gone (end of input).
_FILTER_PROCESS = """\
import signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
try:
    from bench.quiet import forward_kept_lines
except Exception:
    import shutil
    shutil.copyfileobj(sys.stdin.buffer, sys.stdout.buffer)
else:
    forward_kept_lines(sys.stdin.buffer, sys.stdout.buffer)
"""


def forward_kept_lines(source, sink) -> None:
    """Copy ``source``'s lines (binary) to ``sink`` as they come, less :data:`HARMLESS_TF_LINES`."""
    harmless = _HarmlessLines()
    for line in source:
        if not harmless.drop(line.decode("utf-8", "replace")):
            sink.write(line)
            sink.flush()


@contextlib.contextmanager
def harmless_lines_dropped(wait_s: float = 10.0) -> Iterator[None]:
    """While active, file descriptor 2 (C++ and Python writes alike) is a pipe into a small filter
    process that writes every line to the real stderr as it comes, except the harmless ones
    (:func:`drop_harmless_tf_lines`). Being another process, it still writes the last words of an
    import that crashes (a fatal TensorFlow line followed by abort()). On exit fd 2 is restored and
    the filter's end awaited (at most ``wait_s``: a child process started inside could hold the
    pipe open), so lines stay in order. Unfiltered under ``AUGBENCH_TF_LOG``, or when no filter
    process can be started."""
    if tf_log_wanted():
        yield
        return
    _flush_stderr()
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 to filter
        yield
        return
    try:
        read, write = os.pipe()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")) if p)}
        try:
            child = subprocess.Popen([sys.executable, "-c", _FILTER_PROCESS], stdin=read, stdout=saved,
                                     stderr=saved, env=env)
        finally:
            os.close(read)
    except (OSError, subprocess.SubprocessError):
        os.close(saved)
        yield
        return
    os.dup2(write, 2)
    os.close(write)
    try:
        yield
    finally:
        _flush_stderr()
        os.dup2(saved, 2)  # the pipe's last write end closes: the filter reads to the end and exits
        os.close(saved)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=wait_s)


def _flush_stderr() -> None:
    with contextlib.suppress(AttributeError, ValueError, OSError):
        sys.stderr.flush()


class _FilteredLoader(importlib.abc.Loader):
    """Runs the real loader of ``tensorflow`` inside :func:`harmless_lines_dropped`."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        module.__loader__ = module.__spec__.loader = self.loader  # the real loader from here on
        with harmless_lines_dropped():
            self.loader.exec_module(module)


class _TensorFlowStartupFilter(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` with the other finders and wraps its loader in :class:`_FilteredLoader`."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "tensorflow":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _FilteredLoader(spec.loader)
                return spec
        return None


def filter_tensorflow_startup() -> None:
    """Drop :data:`HARMLESS_TF_LINES` from the first ``import tensorflow`` of this process, wherever it
    happens (a stage, a plugin, a test module). Call it before TensorFlow is imported (``augbench``'s
    ``main`` does, first); afterwards, or a second time, it does nothing."""
    if "tensorflow" in sys.modules or any(isinstance(f, _TensorFlowStartupFilter) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _TensorFlowStartupFilter())
