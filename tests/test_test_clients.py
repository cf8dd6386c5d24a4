"""ferrosession.testing's helpers for app authors (login, token, session_of) with the real
test clients of Starlette/FastAPI, httpx, Flask, Quart and Litestar; and Litestar and
Quart apps under fs.SessionMiddleware (their own request objects, Quart's websocket)."""

import asyncio
import os
import time
from dataclasses import dataclass
from typing import Any, Optional

import flask
import httpx
import litestar
import pytest
import quart
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from litestar.middleware import DefineMiddleware
from litestar.params import FromPath
from litestar.testing import TestClient as LitestarClient

import ferrosession as fs
from ferrosession import testing

KEY = os.urandom(32)


@dataclass(frozen=True)
class Login:
    user: str


@dataclass(frozen=True)
class ApiToken:
    scope: str


class AsyncOnlyStorage:
    """A storage whose methods are all ``async def`` (WSGI cannot serve it)."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[str, float]] = {}

    async def read(self, key: str) -> Optional[str]:
        entry = self.entries.get(key)
        return entry[0] if entry and entry[1] > time.time() else None

    async def write(self, key: str, value: str, ttl: int) -> None:
        self.entries[key] = (value, time.time() + ttl)

    async def invalidate(self, key: str) -> bool:
        return self.entries.pop(key, None) is not None


def make_sessions(kind: str) -> fs.Sessions:
    sessions = fs.Sessions()
    if kind == "server":
        sessions.cookie(Login, "SID", fs.MemoryStorage(), path="/")
    elif kind == "async-server":
        sessions.cookie(Login, "SID", AsyncOnlyStorage())
    else:
        sessions.cookie(Login, "SID", transformers=[fs.MessageAuthentication(KEY)])
    sessions.header(ApiToken, "X-Session", transformers=[fs.MessageAuthentication(KEY)])
    return sessions


KINDS = ["client", "server"]


# -- Starlette / FastAPI and httpx --------------------------------------------------------------
def fastapi_app(sessions: fs.Sessions) -> FastAPI:
    app = FastAPI()
    app.add_middleware(fs.SessionMiddleware, sessions=sessions)

    @app.get("/me")
    def me(request: Request) -> Optional[str]:
        login = fs.get_sessions(request).get(Login)
        return login.user if login else None

    @app.get("/token")
    def read_token(request: Request) -> Optional[str]:
        tok = fs.get_sessions(request).get(ApiToken)
        return tok.scope if tok else None

    @app.post("/rename/{user}")
    def rename(user: str, request: Request) -> str:
        fs.get_sessions(request).set(Login(user))
        return "ok"

    @app.post("/logout")
    def logout(request: Request) -> str:
        fs.get_sessions(request).clear(Login)
        return "bye"

    return app


@pytest.mark.parametrize("kind", KINDS)
def test_login_puts_a_session_into_starlettes_test_client(kind: str) -> None:
    sessions = make_sessions(kind)
    client = TestClient(fastapi_app(sessions))
    assert client.get("/me").json() is None
    sent = testing.login(client, sessions, Login("ann"))
    assert client.get("/me").json() == "ann"
    if kind == "server":  # only the id travels; the entry is in the storage
        assert "ann" not in sent
        sid = sent
        storage = sessions.lookup(Login).home.storage  # type: ignore[union-attr]
        assert storage.read(sessions.storage_key(Login, sid)) is not None


@pytest.mark.parametrize("kind", KINDS)
def test_session_of_reads_what_a_response_set(kind: str) -> None:
    sessions = make_sessions(kind)
    client = TestClient(fastapi_app(sessions))
    testing.login(client, sessions, Login("ann"))
    renamed = client.post("/rename/bob")
    assert testing.session_of(renamed, sessions, Login) == Login("bob")
    assert testing.session_of(renamed, sessions, "SID") == Login("bob")
    assert testing.session_of(client.get("/me"), sessions, Login) is None  # set nothing
    assert testing.session_of(client.post("/logout"), sessions, Login) is None
    assert client.get("/me").json() is None


def test_a_header_session_goes_into_the_clients_headers() -> None:
    sessions = make_sessions("client")
    client = TestClient(fastapi_app(sessions))
    assert client.get("/token").json() is None
    testing.login(client, sessions, ApiToken("read"))
    assert client.get("/token").json() == "read"


def test_alogin_with_httpx_async_client_and_an_async_only_storage() -> None:
    sessions = make_sessions("async-server")
    app = fastapi_app(sessions)

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            assert (await c.get("/me")).json() is None
            await testing.alogin(c, sessions, Login("ann"))
            assert (await c.get("/me")).json() == "ann"
            renamed = await c.post("/rename/bob")
            assert await testing.asession_of(renamed, sessions, Login) == Login("bob")
            with pytest.raises(RuntimeError, match=r"await alogin\(\.\.\.\)"):
                testing.login(c, sessions, Login("eve"))

    asyncio.run(main())
    # outside a loop the sync helpers run one of their own
    client = TestClient(app)
    testing.login(client, sessions, Login("cy"))
    assert client.get("/me").json() == "cy"
    assert testing.session_of(client.post("/rename/dee"), sessions, Login) == Login("dee")


def test_login_refuses_a_client_it_does_not_know() -> None:
    with pytest.raises(TypeError, match="does not know object"):
        testing.login(object(), make_sessions("client"), Login("ann"))


# -- Flask ---------------------------------------------------------------------------------------
def flask_app(sessions: fs.Sessions) -> flask.Flask:
    app = flask.Flask(__name__)
    app.wsgi_app = fs.WSGISessionMiddleware(app.wsgi_app, sessions)  # type: ignore[method-assign]

    @app.get("/me")
    def me() -> Any:
        login = fs.get_sessions(flask.request).get(Login)
        return {"user": login.user if login else None}

    @app.get("/token")
    def read_token() -> Any:
        tok = fs.get_sessions(flask.request).get(ApiToken)
        return {"scope": tok.scope if tok else None}

    @app.post("/rename/<user>")
    def rename(user: str) -> str:
        fs.get_sessions(flask.request).set(Login(user))
        return "ok"

    return app


@pytest.mark.parametrize("kind", KINDS)
def test_login_with_flasks_test_client(kind: str) -> None:
    sessions = make_sessions(kind)
    client = flask_app(sessions).test_client()
    assert client.get("/me").json == {"user": None}
    testing.login(client, sessions, Login("ann"))
    assert client.get("/me").json == {"user": "ann"}
    renamed = client.post("/rename/bob")
    assert testing.session_of(renamed, sessions, Login) == Login("bob")
    testing.login(client, sessions, ApiToken("write"))
    assert client.get("/token").json == {"scope": "write"}


# -- Quart -----------------------------------------------------------------------------------------
def quart_app(sessions: fs.Sessions) -> quart.Quart:
    app = quart.Quart(__name__)
    app.asgi_app = fs.SessionMiddleware(app.asgi_app, sessions)  # type: ignore[method-assign]

    @app.get("/me")
    async def me() -> Any:
        login = fs.get_sessions(quart.request).get(Login)
        return {"user": login.user if login else None}

    @app.post("/rename/<user>")
    async def rename(user: str) -> str:
        fs.get_sessions(quart.request).set(Login(user))
        return "ok"

    @app.post("/logout")
    async def logout() -> str:
        fs.get_sessions(quart.request).clear(Login)
        return "bye"

    @app.get("/token")
    async def read_token() -> Any:
        tok = fs.get_sessions(quart.request).get(ApiToken)
        return {"scope": tok.scope if tok else None}

    @app.websocket("/ws")
    async def ws() -> None:
        login = fs.get_sessions(quart.websocket).get(Login)
        await quart.websocket.accept()
        await quart.websocket.send(login.user if login else "nobody")

    return app


@pytest.mark.parametrize("kind", KINDS)
def test_quart_request_and_websocket_with_the_helpers(kind: str) -> None:
    sessions = make_sessions(kind)
    app = quart_app(sessions)

    async def main() -> None:
        client = app.test_client()
        assert await (await client.get("/me")).get_json() == {"user": None}
        renamed = await client.post("/rename/zoe")  # a real login through the app
        assert await testing.asession_of(renamed, sessions, Login) == Login("zoe")
        assert await (await client.get("/me")).get_json() == {"user": "zoe"}
        await testing.alogin(client, sessions, Login("ann"))
        assert await (await client.get("/me")).get_json() == {"user": "ann"}
        async with client.websocket("/ws") as ws:
            assert await ws.receive() == "ann"
        renamed = await client.post("/rename/bob")
        assert await testing.asession_of(renamed, sessions, Login) == Login("bob")
        out = await client.post("/logout")
        assert await testing.asession_of(out, sessions, Login) is None
        assert await (await client.get("/me")).get_json() == {"user": None}
        async with client.websocket("/ws") as ws:
            assert await ws.receive() == "nobody"
        sent = await testing.atoken(sessions, ApiToken("read"))
        got = await client.get("/token", headers={"X-Session": sent})
        assert await got.get_json() == {"scope": "read"}
        with pytest.raises(TypeError, match="no default headers"):
            await testing.alogin(client, sessions, ApiToken("read"))

    asyncio.run(main())


# -- Litestar ------------------------------------------------------------------------------------
def litestar_app(sessions: fs.Sessions) -> litestar.Litestar:
    @litestar.get("/me")
    async def me(request: litestar.Request[Any, Any, Any]) -> dict[str, Optional[str]]:
        login = fs.get_sessions(request).get(Login)
        return {"user": login.user if login else None}

    @litestar.post("/rename/{user:str}")
    async def rename(user: FromPath[str], request: litestar.Request[Any, Any, Any]) -> str:
        s = fs.get_sessions(request)
        s.set(Login(user))
        s.regenerate(Login)
        return "ok"

    @litestar.post("/logout", sync_to_thread=True)  # a sync handler, in a worker thread
    def logout(request: litestar.Request[Any, Any, Any]) -> str:
        fs.get_sessions(request).clear(Login)
        return "bye"

    return litestar.Litestar(
        [me, rename, logout],
        middleware=[DefineMiddleware(fs.SessionMiddleware, sessions=sessions)],
    )


@pytest.mark.parametrize("kind", KINDS)
def test_litestar_with_its_test_client(kind: str) -> None:
    sessions = make_sessions(kind)
    with LitestarClient(litestar_app(sessions)) as client:
        assert client.get("/me").json() == {"user": None}
        renamed = client.post("/rename/zoe")
        assert renamed.status_code == 201
        assert testing.session_of(renamed, sessions, Login) == Login("zoe")
        assert client.get("/me").json() == {"user": "zoe"}
        client.cookies.clear()
        client.cookies.set("SID", "forged")
        assert client.get("/me").json() == {"user": None}
        client.cookies.clear()
        testing.login(client, sessions, Login("ann"))
        assert client.get("/me").json() == {"user": "ann"}
        assert testing.session_of(client.post("/logout"), sessions, Login) is None
        assert client.get("/me").json() == {"user": None}
