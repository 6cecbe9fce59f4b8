"""Provenance of the code a result came from: augbench's version, a digest of its source, and the
git commit of the checkout it runs from (never that of whatever repository the run starts in)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench import provenance
from bench.stages.report import code_line


def _tree(root: Path) -> Path:
    for rel, text in {"bench/__init__.py": "x = 1\n", "bench/a.py": "A = 2\n", "methods/m.py": "M = 3\n",
                      "bench/data.yaml": "k: v\n"}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root, check=True,
                   capture_output=True)


def test_code_digest_follows_the_python_source_only(tmp_path):
    one, two = _tree(tmp_path / "one"), _tree(tmp_path / "two")
    assert provenance.code_digest(one) == provenance.code_digest(two)  # the same code anywhere
    (two / "bench" / "data.yaml").write_text("k: other\n")
    assert provenance.code_digest(two) == provenance.code_digest(one)  # not a .py file
    (two / "methods" / "m.py").write_text("M = 4\n")
    assert provenance.code_digest(two) != provenance.code_digest(one)
    (two / "methods" / "m.py").write_text("M = 3\n")
    assert provenance.code_digest(two) == provenance.code_digest(one)
    (two / "bench" / "b.py").write_text("A = 2\n")  # a new module counts, by its path
    assert provenance.code_digest(two) != provenance.code_digest(one)


def test_the_running_code_has_a_version_and_a_digest():
    code = provenance.code()
    assert code["augbench"] and len(code["sha256"]) == 64
    assert code["sha256"] == provenance.code_digest(Path(provenance.__file__).resolve().parents[1])


@pytest.mark.skipif(subprocess.run(["git", "--version"], capture_output=True).returncode != 0, reason="no git")
def test_git_commit_is_that_of_the_checkout_holding_the_code(tmp_path):
    root = _tree(tmp_path / "checkout")
    assert provenance.git_commit(root) == {"commit": "unknown", "dirty": None}  # not a repository
    _git(root, "init", "-q")
    _git(root, "add", "methods")
    _git(root, "commit", "-qm", "m")
    assert provenance.git_commit(root)["commit"] == "unknown"  # a repository that does not track bench
    _git(root, "add", "bench")
    _git(root, "commit", "-qm", "b")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
    assert provenance.git_commit(root) == {"commit": head, "dirty": False}
    (root / "bench" / "a.py").write_text("A = 5\n")
    assert provenance.git_commit(root) == {"commit": head, "dirty": True}
    # an installed copy inside some other checkout (a virtual environment in a repository) is no checkout
    site = _tree(root / "venv" / "site-packages")
    assert provenance.git_commit(site)["commit"] == "unknown"


def test_the_report_names_the_code_with_or_without_git():
    prov = {"git": {"commit": "unknown", "dirty": None}, "code": {"augbench": "1.2.3", "sha256": "ab" * 32},
            "versions": {"tensorflow": "2.15.1", "horovod": "not installed"}}
    line = code_line(prov)
    assert line == f"augbench 1.2.3, source sha256 {'ab' * 6}; not run from a git checkout; tensorflow 2.15.1"
    prov["git"] = {"commit": "c" * 40, "dirty": True}
    assert f"commit {'c' * 12} (uncommitted changes)" in code_line(prov)
