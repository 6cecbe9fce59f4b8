"""What was run, where: machine, the code (augbench's version, a digest of its source, and its git
commit when it runs from a checkout), package versions — every result carries them."""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata as md
import os
import platform
import subprocess
from functools import lru_cache
from pathlib import Path

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


def _code_root() -> Path:
    """The folder that holds augbench's packages ``bench`` and ``methods`` (a checkout's root,
    or site-packages for an installed wheel)."""
    return Path(__file__).resolve().parents[1]


def git_commit(cwd: str | os.PathLike | None = None) -> dict:
    """The git commit of augbench's own code: of the checkout holding ``bench`` and ``methods``
    (``cwd``: that root, by default the running code's), with ``dirty`` when a file that changes
    results differs from it. The commit of whatever repository the run happens to be started in
    says nothing about the code, so an installed copy (no checkout, or one whose git does not
    track ``bench/__init__.py``) gives ``unknown``; :func:`code_digest` identifies it instead."""
    root = Path(cwd) if cwd is not None else _code_root()

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != root.resolve():
            raise subprocess.CalledProcessError(1, "git")  # inside another repository (a venv in a checkout)
        git("ls-files", "--error-unmatch", "bench/__init__.py")
        # only what changes results counts; dvc.lock and reports/ are rewritten by the
        # pipeline itself before the report is made
        changed = git("status", "--porcelain", "--untracked-files=no", "--", *RESULT_INPUTS)
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(changed)}
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}


def code_digest(root: str | os.PathLike | None = None) -> str:
    """sha256 over augbench's Python source as it runs: every ``.py`` file under ``bench`` and
    ``methods`` of ``root`` (default: the running code's), path and bytes, in path order. Equal
    for a checkout and a wheel built from it, so a result names its code also where git cannot."""
    root = Path(root) if root is not None else _code_root()
    h = hashlib.sha256()
    for package in ("bench", "methods"):
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            h.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


@lru_cache(maxsize=1)
def code() -> dict:
    """augbench's version and the digest of its running source (:func:`code_digest`, read once)."""
    from bench import __version__

    return {"augbench": __version__, "sha256": code_digest()}


def versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    return out


def record() -> dict:
    return {"machine": machine(), "git": git_commit(), "code": code(), "versions": versions(),
            "time_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
