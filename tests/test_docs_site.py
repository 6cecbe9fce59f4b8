"""The docs/ folder as a MkDocs site: it builds with ``--strict``, and every page is in the nav.

``mkdocs.yml`` turns broken links, missing anchors and pages missing from the nav into
warnings, and ``--strict`` turns warnings into a failed build. The last test breaks a copy of
the docs on purpose to show that those checks are really on.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "mkdocs.yml"
DOCS = ROOT / "docs"


def _build(config: Path, site_dir: Path) -> subprocess.CompletedProcess[str]:
    """``python -m mkdocs build --strict`` with this interpreter; output captured."""
    try:
        import mkdocs  # noqa: F401
    except ImportError:
        pytest.fail(
            "mkdocs is not installed in this environment; it is in the dev extra: "
            "pip install -c requirements.lock -e '.[dev]'"
        )
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict",
         "--config-file", str(config), "--site-dir", str(site_dir)],
        cwd=config.parent, capture_output=True, text=True, timeout=120,
    )


def _nav_pages(nav: object) -> list[str]:
    """Every page path in a MkDocs nav (nested lists of ``{title: page-or-section}``)."""
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [page for item in nav for page in _nav_pages(item)]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in _nav_pages(value)]
    raise AssertionError(f"mkdocs.yml: unexpected nav entry {nav!r}")


def test_site_builds_strict(tmp_path: Path) -> None:
    result = _build(CONFIG, tmp_path / "site")
    assert result.returncode == 0, (
        f"mkdocs build --strict failed (rc {result.returncode}):\n{result.stdout}{result.stderr}"
    )
    assert (tmp_path / "site" / "index.html").is_file()


def test_every_page_is_in_nav() -> None:
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    assert config["docs_dir"] == "docs"
    listed = _nav_pages(config["nav"])
    pages = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
    missing = [p for p in pages if p not in listed]
    assert not missing, f"pages under docs/ missing from mkdocs.yml nav: {missing}"
    twice = sorted({p for p in listed if listed.count(p) > 1})
    assert not twice, f"pages listed more than once in mkdocs.yml nav: {twice}"


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        ("[gone](no-such-page.md)", "no-such-page.md"),
        ("[gone](statistics.md#no-such-section)", "no-such-section"),
        ("[outside](../README.md)", "../README.md"),
    ],
    ids=["missing-page", "missing-anchor", "outside-docs"],
)
def test_strict_build_fails_on_broken_links(tmp_path: Path, broken: str, expected: str) -> None:
    shutil.copy(CONFIG, tmp_path / "mkdocs.yml")
    shutil.copytree(DOCS, tmp_path / "docs")
    index = tmp_path / "docs" / "index.md"
    index.write_text(index.read_text(encoding="utf-8") + f"\n{broken}\n", encoding="utf-8")
    result = _build(tmp_path / "mkdocs.yml", tmp_path / "site")
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"a broken link passed the strict build:\n{output}"
    assert expected in output, output
