"""Two runs on one workspace: the second refuses, naming the lock file, the holder's PID and
what to do; a lock left by a killed process is taken over; the lock file goes when the run ends."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time

import pytest

from bench.lock import LOCK_NAME, LockedError, workspace_lock
from tests.reliability.process import PARAMS, cli_env, kill_when, run_cli

HOLD = ("import sys, time\nfrom bench.lock import workspace_lock\n"
        "with workspace_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(120)\n")


@pytest.fixture
def holder(tmp_path):
    """Another process holding tmp_path/work's lock."""
    folder = tmp_path / "work"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], env=cli_env(), stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "held"
    yield folder, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_second_run_on_a_workdir_refuses(holder):
    folder, proc = holder
    started = time.monotonic()
    done = run_cli("run", "--profile", "smoke", "--workdir", str(folder), cwd=folder.parent)
    assert done.returncode == 2
    message = done.stderr.strip().splitlines()[-1]
    assert message.startswith(f"augbench: error: {folder / LOCK_NAME}: the augbench project {folder} is in use")
    assert f"PID {proc.pid}" in message and "wait for it to finish" in message
    assert time.monotonic() - started < 120 and proc.poll() is None  # refused at once; the holder runs on
    assert not (folder / "prepared").exists()  # nothing was written


def test_stage_command_refuses_a_locked_output_folder(holder):
    folder, proc = holder
    done = run_cli("prepare", "--params", str(PARAMS), "--profile", "smoke", "--out", str(folder),
                   cwd=folder.parent)
    assert done.returncode == 2 and f"PID {proc.pid}" in done.stderr and str(folder / LOCK_NAME) in done.stderr


def test_lock_in_process_refuses_and_is_removed_after(holder, tmp_path):
    folder, proc = holder
    with pytest.raises(LockedError, match=f"PID {proc.pid}"), workspace_lock(folder):
        pass
    assert json.loads((folder / LOCK_NAME).read_text())["pid"] == proc.pid
    other = tmp_path / "other"
    with workspace_lock(other) as path:
        assert json.loads(path.read_text())["pid"] != proc.pid
    assert not path.exists()


def test_lock_of_a_killed_process_is_taken_over(holder, caplog):
    folder, proc = holder
    kill_when(proc, lambda: True)
    assert (folder / LOCK_NAME).exists()  # SIGKILL left the file, but not the lock
    with caplog.at_level(logging.WARNING, logger="augbench"), workspace_lock(folder) as path:
        assert f"taking over a lock left by PID {proc.pid}" in caplog.text
        assert json.loads(path.read_text())["pid"] != proc.pid
