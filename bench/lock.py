"""One writer per workspace: an advisory lock file held for as long as a run writes there.

Each stage command locks its output folder (``--out``) with ``.augbench.lock`` there. The lock is ``flock(2)`` on the file, so the
kernel drops it the moment its process ends, however it ends (SIGKILL included): a lock
file left behind by a dead process is not held, and the next run takes it over and says
so. The file records the holder's PID, host, start time and command line, which a second
run quotes when it refuses. The file is removed when the run ends.

flock is advisory and local: it does not stop a program that ignores it, and on some
network file systems it is not shared between hosts.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from bench.errors import AugbenchError

LOCK_NAME = ".augbench.lock"
log = logging.getLogger("augbench")


class LockedError(AugbenchError):
    """Another augbench process holds the workspace lock."""


def _holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}


def _refusal(path: Path, what: str) -> LockedError:
    info = _holder(path)
    pid = info.get("pid", "?")
    since = f", started {info['started']}" if info.get("started") else ""
    command = f": {info['command']}" if info.get("command") else ""
    host = info.get("host")
    where = f" on host {host}" if host and host != socket.gethostname() else ""
    return LockedError(f"{path}: {what} is in use by another augbench run (PID {pid}{where}{since}{command}); "
                       f"wait for it to finish or stop it, then run again. The lock is released when that "
                       f"process ends, even if it is killed; if PID {pid} is no longer running and this "
                       f"message persists (a network file system), delete {path}")


def _acquire(path: Path) -> int:
    """An open descriptor holding an exclusive flock on ``path`` (the file as it is now on
    disk, not one that another process unlinked meanwhile), or -1 when another process holds it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return -1
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the holder removed it between our open and flock: try the new file


@contextlib.contextmanager
def workspace_lock(folder: str | os.PathLike, what: str = "this folder") -> Iterator[Path]:
    """Hold ``folder/.augbench.lock`` (``folder`` is created) or raise :class:`LockedError`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = _acquire(path)
    if fd < 0:
        raise _refusal(path, what)
    try:
        stale = _holder(path)
        if stale.get("pid") and stale.get("pid") != os.getpid():
            log.warning("%s: taking over a lock left by PID %s (started %s), which is no longer running",
                        path, stale["pid"], stale.get("started", "?"))
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": " ".join(sys.argv)}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # while still held, so nobody can be waiting on the old file
        os.close(fd)
