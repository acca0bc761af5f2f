"""The documentation: README.md stays a front page, and the MkDocs site builds without a warning.

`mkdocs build --strict` fails on any warning: a broken link or anchor, a missing image, a page under docs/
that is not in the nav (mkdocs.yml sets `validation:` so that all of these are warnings).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
MAX_README_LINES = 250


def _nav_pages(nav) -> list[str]:
    """Every page file named in a MkDocs nav (nested lists of {title: page-or-list} or bare pages)."""
    pages = []
    for entry in nav:
        items = entry.values() if isinstance(entry, dict) else [entry]
        for item in items:
            if isinstance(item, list):
                pages += _nav_pages(item)
            elif isinstance(item, str) and not re.match(r"[a-z]+://", item):
                pages.append(item)
    return pages


def _config() -> dict:
    return yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))


def test_readme_is_a_front_page():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, (
        f"README.md has {len(lines)} lines (at most {MAX_README_LINES}): "
        "move the details to a page under docs/"
    )


def test_readme_links_exist():
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    assert targets, "README.md links nowhere"
    missing = [
        t for t in targets
        if not re.match(r"[a-z]+://", t) and not (ROOT / t.split("#")[0]).exists()
    ]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_every_page_is_in_the_nav():
    nav = _nav_pages(_config()["nav"])
    pages = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
    assert "index.md" in nav and "extending.md" in nav
    missing, dangling = set(pages) - set(nav), set(nav) - set(pages)
    assert not missing, f"pages under docs/ missing from mkdocs.yml's nav: {sorted(missing)}"
    assert not dangling, f"nav entries without a page under docs/: {sorted(dangling)}"


def test_every_image_is_used():
    texts = README.read_text(encoding="utf-8") + "".join(
        p.read_text(encoding="utf-8") for p in DOCS.rglob("*.md")
    )
    unused = [p.name for p in sorted((DOCS / "images").iterdir()) if f"images/{p.name}" not in texts]
    assert not unused, f"figures in docs/images/ that no page shows: {unused}"


def test_mkdocs_build_strict(tmp_path):
    for module in ("mkdocs", "material"):
        if importlib.util.find_spec(module) is None:
            pytest.fail(f"{module} is not installed: pip install -e '.[dev]' (mkdocs, mkdocs-material)")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=300,
    )
    output = result.stdout + result.stderr
    warnings = [line for line in output.splitlines() if "WARNING" in line]
    assert result.returncode == 0 and not warnings, f"mkdocs build --strict failed:\n{output}"
    assert (tmp_path / "site" / "index.html").exists()
    assert (tmp_path / "site" / "extending" / "index.html").exists()
