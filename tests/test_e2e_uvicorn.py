"""End to end: a real uvicorn server in a subprocess, a real HTTP client keeping cookies.

The apps are built by the factories below; the server imports this module by name
(``uvicorn --factory test_e2e_uvicorn:make_asgi_app``, with ``tests/`` on PYTHONPATH).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Optional

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

import ferrosession as fs
from _driver import KEY, signed, uri

HEX64 = re.compile(r"^[0-9a-f]{64}$")
EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"
TIMEOUT = httpx.Timeout(5.0)


@dataclass(frozen=True)
class Counter:
    n: int


@dataclass(frozen=True)
class Login:
    user: str
    visits: int = 0


@dataclass(frozen=True)
class ApiToken:
    user: str


def make_sessions() -> fs.Sessions:
    sessions = fs.Sessions()
    sessions.cookie(Counter, "COUNTER", transformers=[fs.MessageAuthentication(KEY)])
    sessions.cookie(Login, "SESSION_ID", storage=fs.MemoryStorage())
    sessions.header(ApiToken, "X-Session", transformers=[fs.MessageAuthentication(KEY)])
    return sessions


def show(value: Optional[object]) -> str:
    return "none" if value is None else repr(value)


def handle(s: fs.CurrentSessions, path: str) -> str:
    """The routes both apps share."""
    if path == "/count":
        current = s.get(Counter)
        s.set(Counter(current.n + 1 if current else 1))
        return str(s.get(Counter).n)  # type: ignore[union-attr]
    if path == "/peek":
        return show(s.get(Counter))
    if path == "/visit":  # anonymous visitor: a server-side session before login
        login = s.get(Login)
        s.set(Login(user=login.user if login else "", visits=(login.visits + 1) if login else 1))
        return f"{show(s.get(Login))}|{s.session_id(Login)}"
    if path.startswith("/login/"):
        login = s.get(Login)
        s.set(Login(user=path[len("/login/") :], visits=login.visits if login else 0))
        s.regenerate(Login)
        return f"{show(s.get(Login))}|{s.session_id(Login)}"
    if path == "/me":
        return f"{show(s.get(Login))}|{s.session_id(Login)}"
    if path == "/logout":
        s.clear(Login)
        return f"{show(s.get(Login))}|{s.session_id(Login)}"
    if path.startswith("/api/login/"):
        s.set(ApiToken(user=path[len("/api/login/") :]))
        return "ok"
    if path == "/api/me":
        return show(s.get(ApiToken))
    raise LookupError(path)


def make_asgi_app() -> Any:
    """A bare ASGI app (it answers lifespan itself) wrapped in ``SessionMiddleware``."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        assert scope["type"] == "http"
        try:
            body, status = handle(fs.get_sessions(scope), scope["path"]), 200
        except LookupError:
            body, status = "not found", 404
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")],
            }
        )
        await send({"type": "http.response.body", "body": body.encode()})

    return fs.SessionMiddleware(app, make_sessions())


def make_starlette_app() -> Starlette:
    """A Starlette app: routing, ``add_middleware``, and a WebSocket that reads sessions."""

    async def endpoint(request: Request) -> PlainTextResponse:
        return PlainTextResponse(handle(fs.get_sessions(request), request.url.path))

    async def ws(websocket: WebSocket) -> None:
        s = fs.get_sessions(websocket)
        await websocket.accept()
        await websocket.send_text(f"{show(s.get(Counter))}|{show(s.get(Login))}")
        await websocket.close()

    paths = ["/count", "/peek", "/visit", "/login/{user}", "/me", "/logout"]
    app = Starlette(routes=[*(Route(p, endpoint) for p in paths), WebSocketRoute("/ws", ws)])
    app.add_middleware(fs.SessionMiddleware, sessions=make_sessions())
    return app


# --- tests -----------------------------------------------------------------------------

Start = Callable[[str], Any]


@pytest.fixture(params=["make_asgi_app", "make_starlette_app"])
def server(request: pytest.FixtureRequest, uvicorn_server: Start) -> Any:
    return uvicorn_server(f"test_e2e_uvicorn:{request.param}")


def assert_clean(server: Any) -> None:
    server.stop()
    err = server.stderr()
    assert "Traceback" not in err, err
    assert "ERROR" not in err, err
    assert "Application startup complete." in err, err


def test_counter_in_a_signed_cookie_across_requests(server: Any) -> None:
    with httpx.Client(base_url=server.base_url, timeout=TIMEOUT) as client:
        assert client.get("/peek").text == "none"
        for n in range(1, 6):
            r = client.get("/count")
            assert (r.status_code, r.text) == (200, str(n))
            expected = uri(signed(f'{{"n":{n}}}'))
            (line,) = r.headers.get_list("set-cookie")
            assert line.startswith(f"COUNTER={expected}; Max-Age=604800; Expires=")
            assert line.endswith(" GMT; Path=/; HttpOnly; SameSite=Lax")
            assert client.cookies.get("COUNTER") == expected
        r = client.get("/peek")
        assert (r.text, r.headers.get_list("set-cookie")) == ("Counter(n=5)", [])
    assert_clean(server)


def test_server_side_login_regenerate_logout(server: Any) -> None:
    with httpx.Client(base_url=server.base_url, timeout=TIMEOUT) as client:
        r = client.get("/visit")
        value, anon = r.text.split("|")
        assert value == "Login(user='', visits=1)" and HEX64.match(anon)
        assert client.cookies.get("SESSION_ID") == anon

        r = client.get("/login/john")
        value, sid = r.text.split("|")
        assert value == "Login(user='john', visits=1)"
        assert HEX64.match(sid) and sid != anon  # the id changes at login
        (line,) = r.headers.get_list("set-cookie")
        assert line.startswith(f"SESSION_ID={sid}; Max-Age=604800; Expires=")
        assert client.cookies.get("SESSION_ID") == sid
        assert client.get("/me").text == f"Login(user='john', visits=1)|{sid}"

        # The pre-login id is dead: replaying it gives no session and an expiring cookie.
        with httpx.Client(base_url=server.base_url, timeout=TIMEOUT) as replay:
            r = replay.get("/me", headers={"Cookie": f"SESSION_ID={anon}"})
            assert (r.status_code, r.text) == (200, "none|None")
            assert r.headers.get_list("set-cookie") == [
                f"SESSION_ID=; Max-Age=0; Expires={EPOCH}; Path=/; HttpOnly; SameSite=Lax"
            ]

        r = client.get("/logout")
        assert r.text == "none|None"
        assert r.headers.get_list("set-cookie") == [
            f"SESSION_ID=; Max-Age=0; Expires={EPOCH}; Path=/; HttpOnly; SameSite=Lax"
        ]
        assert client.cookies.get("SESSION_ID") is None  # the jar dropped it
        assert client.get("/me").text == "none|None"

        with httpx.Client(base_url=server.base_url, timeout=TIMEOUT) as replay:
            r = replay.get("/me", headers={"Cookie": f"SESSION_ID={sid}"})
            assert (r.status_code, r.text) == (200, "none|None")
    assert_clean(server)


def test_header_transport_round_trip(uvicorn_server: Start) -> None:
    server = uvicorn_server("test_e2e_uvicorn:make_asgi_app")
    with httpx.Client(base_url=server.base_url, timeout=TIMEOUT) as client:
        r = client.get("/api/login/bob")
        token = signed('{"user":"bob"}')
        assert r.headers.get_list("x-session") == [token]
        assert r.headers.get_list("set-cookie") == []
        assert client.get("/api/me").text == "none"
        r = client.get("/api/me", headers={"X-Session": token})
        assert (r.text, r.headers.get_list("x-session")) == ("ApiToken(user='bob')", [])
        r = client.get("/api/me", headers={"X-Session": token.replace("/", "/0", 1)[:-1]})
        assert (r.status_code, r.text) == (200, "none")
    assert_clean(server)


def test_bad_cookies_are_absent_sessions_without_errors(server: Any) -> None:
    with httpx.Client(base_url=server.base_url, timeout=TIMEOUT) as client:
        for _ in range(3):
            client.get("/count")
        good = client.cookies.get("COUNTER")
        assert good == uri(signed('{"n":3}'))
    digest = good[-64:]
    flipped = good[:-1] + ("0" if good[-1] != "0" else "1")
    bad_values: list[bytes] = [
        flipped.encode(),  # tampered signature
        uri(signed('{"n":999}')[:-64] + digest).encode(),  # tampered value
        good[:-20].encode(),  # truncated
        uri(signed('{"n":3}', b"w" * 32)).encode(),  # wrong key
        (good[:-64] + digest.upper()).encode(),  # uppercase hex
        b"",  # empty
        b"\xff\xfe%FF%C3%28" + good.encode()[4:],  # not UTF-8
        b"%7B" * 2000,  # 6 kB of garbage
    ]
    with httpx.Client(base_url=server.base_url, timeout=TIMEOUT) as attacker:
        for value in bad_values:
            r = attacker.get("/peek", headers={"Cookie": b"COUNTER=" + value})
            assert (r.status_code, r.text) == (200, "none"), value
            assert r.headers.get_list("set-cookie") == [], value
        r = attacker.get("/count", headers={"Cookie": b"COUNTER=" + flipped.encode()})
        assert (r.status_code, r.text) == (200, "1")
        r = attacker.get("/peek", headers={"Cookie": f"COUNTER={good}"})
        assert r.text == "Counter(n=3)"
    assert_clean(server)


def test_starlette_websocket_reads_the_session(uvicorn_server: Start) -> None:
    ws_client = pytest.importorskip("websockets.sync.client")
    server = uvicorn_server("test_e2e_uvicorn:make_starlette_app")
    with httpx.Client(base_url=server.base_url, timeout=TIMEOUT) as client:
        client.get("/count")
        client.get("/count")
        sid = client.get("/login/ann").text.split("|")[1]
        cookie = f"COUNTER={client.cookies.get('COUNTER')}; SESSION_ID={sid}"
    url = server.base_url.replace("http://", "ws://") + "/ws"
    with ws_client.connect(url, additional_headers={"Cookie": cookie}, open_timeout=5) as ws:
        assert ws.recv(timeout=5) == "Counter(n=2)|Login(user='ann', visits=0)"
    assert_clean(server)
