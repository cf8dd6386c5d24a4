"""Every Python block in the README runs, and the quickstarts behave as they say."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def run_block(index: int) -> dict[str, Any]:
    """Runs a block as a real module (dataclasses look their module up in sys.modules)."""
    name = f"readme_block_{index}"
    module = types.ModuleType(name)
    sys.modules[name] = module
    try:
        exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), module.__dict__)
    finally:
        del sys.modules[name]
    return module.__dict__


def test_readme_has_python_blocks() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_block_runs(index: int) -> None:
    run_block(index)


def test_asgi_quickstart_counts_visits() -> None:
    from starlette.testclient import TestClient

    index = next(i for i, b in enumerate(BLOCKS) if "Starlette(" in b)
    app = run_block(index)["app"]
    with TestClient(app) as client:
        assert client.get("/").text == "visit number 1"
        assert client.get("/").text == "visit number 2"
        assert client.get("/").text == "visit number 3"
        client.cookies.clear()
        assert client.get("/").text == "visit number 1"


def test_wsgi_quickstart_logs_in_and_out() -> None:
    index = next(i for i, b in enumerate(BLOCKS) if "Flask(" in b)
    app = run_block(index)["app"]
    client = app.test_client()
    assert client.get("/me").text == "anonymous"
    assert client.post("/login/ann").text == "ok"
    first = client.get_cookie("SESSION_ID")
    assert first is not None and len(first.value) == 64
    assert client.get("/me").text == "ann"
    assert client.post("/logout").text == "bye"
    assert client.get("/me").text == "anonymous"
    # replaying the logged-out id gives no session
    client.set_cookie("SESSION_ID", first.value)
    assert client.get("/me").text == "anonymous"
