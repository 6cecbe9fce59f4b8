"""What the console shows (bench.quiet): TensorFlow's known-harmless start-up lines are dropped,
every other line written to stderr is kept; the long loops draw progress bars on a terminal only,
never in quiet mode; `augbench params --get` answers the Makefile's question."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bench.quiet import (
    QUIET_ENV,
    TF_LOG_ENV,
    drop_harmless_tf_lines,
    gpu_expected,
    keras_progress,
    progress,
)

ROOT = Path(__file__).resolve().parents[1]

# What `import tensorflow` (2.15.1, CPU-only machine, TF_CPP_MIN_LOG_LEVEL=0) printed here.
STARTUP = """\
2026-12-07 15:12:18.792911: I external/local_tsl/tsl/cuda/cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
2026-12-07 15:12:18.872371: E external/local_xla/xla/stream_executor/cuda/cuda_dnn.cc:9261] Unable to register cuDNN factory: Attempting to register factory for plugin cuDNN when one has already been registered
2026-12-07 15:12:18.872416: E external/local_xla/xla/stream_executor/cuda/cuda_fft.cc:607] Unable to register cuFFT factory: Attempting to register factory for plugin cuFFT when one has already been registered
2026-12-07 15:12:18.880578: E external/local_xla/xla/stream_executor/cuda/cuda_blas.cc:1515] Unable to register cuBLAS factory: Attempting to register factory for plugin cuBLAS when one has already been registered
2026-12-07 15:12:18.901395: I tensorflow/core/platform/cpu_feature_guard.cc:182] This TensorFlow binary is optimized to use available CPU instructions in performance-critical operations.
To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the appropriate compiler flags.
2026-12-07 15:12:19.000001: I tensorflow/core/util/port.cc:113] oneDNN custom operations are on. You may see slightly different numerical results due to floating-point round-off errors from different computation orders. To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.
2026-12-07 15:12:20.056439: W tensorflow/compiler/tf2tensorrt/utils/py_utils.cc:38] TF-TRT Warning: Could not find TensorRT
"""
# Lines that look alike but report real trouble: each must survive the filter.
REAL = """\
2026-12-07 15:12:21.000000: E external/local_xla/xla/stream_executor/cuda/cuda_dnn.cc:535] Could not create cudnn handle: CUDNN_STATUS_INTERNAL_ERROR
2026-12-07 15:12:21.000001: E tensorflow/core/framework/op_kernel.cc:1827] OP_REQUIRES failed at conv_ops.cc:1068 : RESOURCE_EXHAUSTED
To enable the following instructions: AVX512F, in other operations, rebuild TensorFlow with the appropriate compiler flags.
Traceback (most recent call last):
augbench: error: params: scaling.np: must be a list
"""


def _python(code: str, tmp_path: Path, *, env: dict | None = None, path: str = "") -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter with every TensorFlow log level on and the filter not
    turned off (unless ``env`` says so); ``path`` goes first on PYTHONPATH."""
    environ = {k: v for k, v in os.environ.items() if k not in (TF_LOG_ENV, *GPU_ENV)}  # no GPU expected
    environ.update({"PYTHONPATH": os.pathsep.join(p for p in (path, str(ROOT)) if p), "TF_CPP_MIN_LOG_LEVEL": "0",
                    **(env or {})})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path, env=environ,
                          capture_output=True, text=True, timeout=300)


# --------------------------------------------------------------------------- the filter itself


GPU_ENV = ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES")
CUDA_DRIVERS = STARTUP.splitlines(keepends=True)[0]


@pytest.fixture
def no_gpu_expected(monkeypatch):
    for name in GPU_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(("env", "expected"), [
    ({}, False), ({"CUDA_VISIBLE_DEVICES": ""}, False), ({"CUDA_VISIBLE_DEVICES": "-1"}, False),
    ({"NVIDIA_VISIBLE_DEVICES": "void"}, False), ({"CUDA_VISIBLE_DEVICES": "0"}, True),
    ({"CUDA_VISIBLE_DEVICES": "0,1"}, True), ({"NVIDIA_VISIBLE_DEVICES": "all"}, True),
])
def test_the_cuda_drivers_line_is_kept_when_a_gpu_is_expected(monkeypatch, no_gpu_expected, env, expected):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert gpu_expected() is expected
    # with a GPU expected, "no cuda drivers" means TensorFlow fell back to the CPU: shown
    assert drop_harmless_tf_lines(STARTUP) == (CUDA_DRIVERS if expected else "")


def test_only_the_known_harmless_lines_are_dropped(no_gpu_expected):
    assert drop_harmless_tf_lines(STARTUP) == ""
    assert drop_harmless_tf_lines(REAL) == REAL
    mixed = STARTUP.splitlines(keepends=True)
    mixed.insert(3, REAL)  # between the harmless lines, in order
    assert drop_harmless_tf_lines("".join(mixed)) == REAL
    # a line without its newline at the end is kept as it is
    assert drop_harmless_tf_lines(STARTUP + "E x.cc:1] last words") == "E x.cc:1] last words"


FAKE_TENSORFLOW = f'''\
import os, sys, warnings
os.write(2, {STARTUP.encode()!r})
os.write(2, b"E tensorflow/core/real.cc:7] a real error during the import\\n")
print("printed to sys.stderr during the import", file=sys.stderr)
warnings.warn("a Python warning during the import")
if os.environ.get("FAKE_TF_FAILS"):
    raise ImportError("this build of the fake tensorflow is broken")
if os.environ.get("FAKE_TF_ABORTS"):  # as TensorFlow does on a CPU without the instructions it needs
    os.write(2, b"F tensorflow/core/platform/cpu_feature_guard.cc:99] The TensorFlow library was "
                b"compiled to use AVX instructions, but these aren't available on your machine.\\n")
    os.abort()
VALUE = 42
'''


@pytest.fixture
def fake_tensorflow(tmp_path) -> str:
    """A ``tensorflow`` package that prints TensorFlow's start-up lines and a real error on fd 2."""
    package = tmp_path / "fake" / "tensorflow"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(FAKE_TENSORFLOW)
    return str(package.parent)


IMPORT_FILTERED = """\
import os
from bench.quiet import filter_tensorflow_startup
filter_tensorflow_startup()
import tensorflow
os.write(2, b"after the import\\n")
print(tensorflow.VALUE, type(tensorflow.__loader__).__name__, type(tensorflow.__spec__.loader).__name__)
"""


def test_the_first_import_of_tensorflow_is_filtered(tmp_path, fake_tensorflow):
    run = _python(IMPORT_FILTERED, tmp_path, path=fake_tensorflow)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["42", "SourceFileLoader", "SourceFileLoader"]  # the real loader, afterwards
    for harmless in ("Unable to register", "cpu_feature_guard", "oneDNN", "TensorRT", "cuda drivers",
                     "To enable the following"):
        assert harmless not in run.stderr
    lines = run.stderr.splitlines()
    real = lines.index("E tensorflow/core/real.cc:7] a real error during the import")
    printed = lines.index("printed to sys.stderr during the import")
    warned = next(i for i, line in enumerate(lines) if "UserWarning: a Python warning during the import" in line)
    assert real < printed < warned < lines.index("after the import")  # in the order written


def test_the_full_log_is_back_with_the_environment_variable(tmp_path, fake_tensorflow):
    run = _python(IMPORT_FILTERED, tmp_path, path=fake_tensorflow, env={TF_LOG_ENV: "1"})
    assert run.returncode == 0, run.stderr
    assert STARTUP in run.stderr and "a real error during the import" in run.stderr


def test_a_failing_import_still_shows_everything_but_the_harmless_lines(tmp_path, fake_tensorflow):
    run = _python(IMPORT_FILTERED, tmp_path, path=fake_tensorflow, env={"FAKE_TF_FAILS": "1"})
    assert run.returncode == 1
    assert "ImportError: this build of the fake tensorflow is broken" in run.stderr
    assert "a real error during the import" in run.stderr and "Unable to register" not in run.stderr


def test_the_last_words_of_an_import_that_crashes_are_shown(tmp_path, fake_tensorflow):
    run = _python(IMPORT_FILTERED, tmp_path, path=fake_tensorflow, env={"FAKE_TF_ABORTS": "1"})
    assert run.returncode != 0
    assert "compiled to use AVX instructions, but these aren't available on your machine." in run.stderr
    assert "a real error during the import" in run.stderr and "Unable to register" not in run.stderr


def test_real_tensorflow_starts_quietly_and_real_errors_stay_visible(tmp_path):
    run = _python("""\
        import os
        from bench.quiet import harmless_lines_dropped
        with harmless_lines_dropped():
            os.write(2, b"E tensorflow/core/kernels/real.cc:1] a deliberate real error\\n")
            import tensorflow as tf
        print(int(tf.constant(2) + 1))
        """, tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "3"
    assert "E tensorflow/core/kernels/real.cc:1] a deliberate real error" in run.stderr.splitlines()
    for harmless in ("Unable to register", "This TensorFlow binary is optimized", "To enable the following"):
        assert harmless not in run.stderr, run.stderr


@pytest.mark.parametrize("enabled", ["true", "false"])
def test_the_cli_answers_the_makefile_quietly(tmp_path, enabled):
    """`make bench` asks `augbench params --get scaling.enabled` whether to build Horovod first."""
    run = _python(f"""\
        import sys
        from bench.cli import main
        sys.exit(main(["params", "--params", {str(ROOT / "params.yaml")!r}, "--profile", "quick",
                       "--set", "scaling.enabled={enabled}", "--get", "scaling.enabled"]))
        """, tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout == f"{enabled}\n"
    assert "Unable to register" not in run.stderr and "TensorRT" not in run.stderr, run.stderr


def test_an_unknown_key_is_named_with_a_suggestion(capsys):
    from bench.cli import main

    assert main(["params", "--params", str(ROOT / "params.yaml"), "--get", "scaling.enabeld"]) == 2
    err = capsys.readouterr().err
    assert "scaling.enabeld" in err and "did you mean 'enabled'" in err


# --------------------------------------------------------------------------- progress bars


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def terminal(monkeypatch):
    """``terminal()`` replaces stderr by a terminal that keeps what is written to it and returns it
    (called in the test: pytest's own capture resets stderr between a fixture and the test); not in
    quiet mode."""
    monkeypatch.delenv(QUIET_ENV, raising=False)

    def attach() -> Terminal:
        screen = Terminal()
        monkeypatch.setattr(sys, "stderr", screen)
        return screen

    return attach


def test_a_bar_is_drawn_on_a_terminal_only_and_never_in_quiet_mode(terminal, monkeypatch):
    screen = terminal()
    with progress(range(3), desc="loop", unit="item") as bar:
        assert list(bar) == [0, 1, 2]
    assert "loop" in screen.getvalue() and "3/3" in screen.getvalue()
    monkeypatch.setenv(QUIET_ENV, "1")
    with progress(total=3, desc="quiet", unit="item") as bar, keras_progress("quiet", 1, 3) as callbacks:
        assert bar.disable and callbacks == []
    monkeypatch.delenv(QUIET_ENV)
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a file or a pipe: no bar
    with progress(total=3, desc="piped", unit="item") as bar, keras_progress("piped", 1, 3) as callbacks:
        assert bar.disable and callbacks == []
    assert "quiet" not in screen.getvalue()


def test_keras_fit_draws_one_bar_over_every_batch(terminal):
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([tf.keras.layers.Input((4,)), tf.keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((6, 4), np.float32), np.zeros((6, 1), np.float32)
    screen = terminal()
    with keras_progress("fit", epochs=2, steps=3) as callbacks:
        model.fit(x, y, epochs=2, batch_size=2, verbose=0, callbacks=callbacks)
    shown = screen.getvalue()
    assert "fit" in shown and "6/6" in shown and "epoch 2/2, loss" in shown


def test_the_teacher_shows_its_batches(terminal):
    from bench.pseudolabel import TeacherConfig, train_teacher

    images = np.random.default_rng(0).uniform(0, 1, (8, 8, 8)).astype(np.float32)
    screen = terminal()
    train_teacher(images, np.arange(8) % 2, TeacherConfig(filters=2, epochs=2, batch_size=4))
    assert "teacher" in screen.getvalue() and "4/4" in screen.getvalue()


def test_stylegan2_training_shows_its_steps_and_resumes_the_count(terminal, tmp_path):
    from bench.gan.training import Trainer
    from tests.test_stylegan2 import _config

    cfg = _config(ada_target=0.6)  # the GAN tests' tiny network, with ADA's p moving
    images = np.random.default_rng(0).uniform(-1, 1, (8, 8, 8, 1)).astype(np.float32)
    labels = np.arange(8) % 2
    screen = terminal()
    Trainer(cfg, images, labels, compiled=False).run(3, tmp_path, checkpoint_every=1, stop_after=2)
    first = screen.getvalue()
    assert "StyleGAN2-ADA" in first and "0/3" in first and "2/3" in first and "3/3" not in first
    screen.truncate(0)
    screen.seek(0)
    Trainer(cfg, images, labels, compiled=False).run(3, tmp_path)  # resumes from the checkpoint at step 2
    resumed = screen.getvalue()
    assert "0/3" not in resumed and "2/3" in resumed and "3/3" in resumed and "p 0." in resumed
