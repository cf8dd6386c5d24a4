"""Every Python block in the README runs, and the quickstarts behave as they say."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest

from readme_examples import BLOCKS, module_name


def run_block(index: int) -> dict[str, Any]:
    """Runs a block as a real module (dataclasses look their module up in sys.modules)."""
    name = module_name(index)
    module = types.ModuleType(name)
    sys.modules[name] = module
    try:
        exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), module.__dict__)
    finally:
        del sys.modules[name]
    return module.__dict__


@pytest.fixture(autouse=True)
def _in_a_temp_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks use relative paths (``DirectoryStorage(".sessions")``): not in the checkout."""
    monkeypatch.chdir(tmp_path)


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


def test_starlette_drop_in_block_counts_and_reads_starlettes_cookie() -> None:
    from starlette.applications import Starlette
    from starlette.middleware.sessions import SessionMiddleware as Original
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    index = next(i for i, b in enumerate(BLOCKS) if "ferrosession.starlette" in b)
    app = run_block(index)["app"]
    with TestClient(app) as client:
        assert client.get("/").json() == {"n": 1}
        assert client.get("/").json() == {"n": 2}

    # a cookie written by Starlette's own middleware with the same secret keeps working
    async def seed(request: Any) -> JSONResponse:
        request.session["n"] = 41
        return JSONResponse({})

    original = Starlette(routes=[Route("/", seed)])
    original.add_middleware(Original, secret_key="the same secret as before")
    with TestClient(original) as client:
        client.get("/")
        cookie = client.cookies["session"]
    with TestClient(app) as client:
        client.cookies.set("session", cookie)
        assert client.get("/").json() == {"n": 42}


def test_flask_drop_in_block_counts() -> None:
    index = next(i for i, b in enumerate(BLOCKS) if "ferrosession.flask.SessionInterface" in b)
    app = run_block(index)["app"]
    client = app.test_client()
    assert client.get("/").text == "1"
    assert client.get("/").text == "2"


def test_lifecycle_example_lists_and_ends_other_devices() -> None:
    from starlette.testclient import TestClient

    index = next(i for i, b in enumerate(BLOCKS) if "asessions_of" in b)
    app = run_block(index)["app"]
    with (
        TestClient(app, base_url="https://testserver") as phone,
        TestClient(app, base_url="https://testserver") as laptop,
    ):
        assert phone.get("/devices").status_code == 401
        phone.post("/login/ann")
        laptop.post("/login/ann")
        listed = laptop.get("/devices").json()
        assert len(listed) == 2 and [row[2] for row in listed].count(True) == 1
        laptop.post("/logout-elsewhere")
        assert phone.get("/devices").status_code == 401
        assert len(laptop.get("/devices").json()) == 1
