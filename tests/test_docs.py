"""The documentation site: ``mkdocs build --strict`` passes (as ``make docs`` runs it),
every Python example on it runs, and the pages the site promises are in its nav.

The examples are extracted by tests/readme_examples.py, as the README's are; most
check themselves with asserts (a test client making the requests the page describes).
"""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import yaml

from readme_examples import DOC_BLOCKS, DOCS, doc_module_name

REPO = DOCS.parent
VENV_BIN = Path(sys.executable).parent


def run_doc_block(page: str, index: int) -> dict[str, Any]:
    """Runs a block as a real module (dataclasses look their module up in sys.modules)."""
    name = doc_module_name(page, index)
    module = types.ModuleType(name)
    sys.modules[name] = module
    try:
        code = compile(DOC_BLOCKS[page, index], f"docs/{page} block {index}", "exec")
        exec(code, module.__dict__)
    finally:
        del sys.modules[name]
    return module.__dict__


@pytest.mark.parametrize("key", list(DOC_BLOCKS), ids=[f"{p}-{i}" for p, i in DOC_BLOCKS])
def test_doc_example_runs(
    key: tuple[str, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # examples may make relative folders
    run_doc_block(*key)


def test_every_page_with_an_api_has_examples() -> None:
    pages = {page for page, _ in DOC_BLOCKS}
    for page in (
        "getting-started.md", "guides/starlette.md", "guides/fastapi.md", "guides/flask.md",
        "storages.md", "migration/starlette.md", "migration/flask.md",
        "migration/starsessions.md", "migration/flask-session.md", "security.md",
    ):  # fmt: skip
        assert page in pages, page


def test_nav_has_the_pages_the_issue_lists() -> None:
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text().replace("!!python", "python"))

    def files(nav: Any) -> list[str]:
        if isinstance(nav, str):
            return [nav]
        if isinstance(nav, list):
            return [f for item in nav for f in files(item)]
        return [f for value in nav.values() for f in files(value)]

    listed = files(config["nav"])
    on_disk = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
    assert sorted(listed) == on_disk, "every page in the nav, every nav entry a page"
    for needed in (
        "getting-started.md", "guides/starlette.md", "guides/fastapi.md", "guides/flask.md",
        "storages.md", "security.md", "migration/starlette.md", "migration/flask.md",
        "migration/starsessions.md", "migration/flask-session.md", "cli.md",
        "benchmarks.md", "api.md",
    ):  # fmt: skip
        assert needed in listed, needed


def test_mkdocs_builds_the_site_strictly(tmp_path: Path) -> None:
    site = tmp_path / "site"
    proc = subprocess.run(
        [VENV_BIN / "mkdocs", "build", "--strict", "--site-dir", site],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    api = (site / "api" / "index.html").read_text()
    # the reference is generated from the docstrings, not written by hand
    assert "Registers a session that travels in a cookie." in api
    assert "Signs the value" in api
    bench = (site / "benchmarks" / "index.html").read_text()
    assert "Starlette overhead" in bench, "README's perf table on the page"
    assert (site / "assets" / "bench" / "asgi_overhead.svg").is_file()
    assert 'src="../assets/bench/asgi_overhead.svg"' in bench
