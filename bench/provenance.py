"""What was run, where: machine, commit, package versions — every result carries them."""

from __future__ import annotations

import datetime as dt
import importlib.metadata as md
import os
import platform
import subprocess
from functools import lru_cache

RESULT_INPUTS = ("bench", "methods", "params.yaml", "dvc.yaml", "pyproject.toml", "requirements.lock")
PACKAGES = ("augbench", "tensorflow", "keras", "numpy", "scipy", "scikit-learn",
            "scikit-image", "pandas", "dvc", "horovod")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def _gpus() -> list[str]:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=True)
        return [line.strip() for line in out.stdout.splitlines() if line.strip()]
    except (OSError, subprocess.SubprocessError):
        return []


@lru_cache(maxsize=1)
def machine() -> dict:
    return {"hostname": platform.node(), "platform": platform.platform(),
            "python": platform.python_version(), "cpu": _cpu_model(),
            "cpu_count": os.cpu_count(), "memory_gib": _memory_gib(), "gpus": _gpus()}


def git_commit(cwd: str | None = None) -> dict:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
    try:
        # only what changes results counts; dvc.lock and reports/ are rewritten by the
        # pipeline itself before the report is made
        changed = git("status", "--porcelain", "--untracked-files=no", "--", *RESULT_INPUTS)
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(changed)}
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}


def versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    return out


def record() -> dict:
    return {"machine": machine(), "git": git_commit(), "versions": versions(),
            "time_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
