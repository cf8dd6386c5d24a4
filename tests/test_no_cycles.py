"""A request leaves no reference cycle behind: everything the middleware made is freed
by reference counting when the request ends, not by the cycle collector.

A cycle per request is cheap in an in-process benchmark but not in a server: uvicorn's
``send`` is a method of its per-request object, which holds the scope, so a middleware
that keeps ``send`` in the scope's sessions tied scope, sessions, send and the server's
request object together, and the cycle collector ran every few dozen requests (about 4 µs
per request on this machine, measured by benches/uvicorn_wrk.py). The servers here are
modelled by what matters: a ``send`` bound to an object that holds the scope (ASGI), an
environ the WSGI server keeps while it iterates the response."""

from __future__ import annotations

import dataclasses
import gc
import warnings
from collections.abc import Iterator
from typing import Any, Callable

import pytest

import ferrosession as fs

KEY = bytes(range(32))


@dataclasses.dataclass(frozen=True)
class Cart:
    items: list[str]


@pytest.fixture
def no_collector() -> Iterator[None]:
    enabled = gc.isenabled()
    with warnings.catch_warnings():
        # what earlier tests left for the collector (an unclosed client socket, say)
        # is not this test's to report
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def sessions(header: bool = False) -> fs.Sessions:
    s = fs.Sessions()
    mac = fs.MessageAuthentication(KEY)
    if header:
        s.header(Cart, "X-Cart", transformers=[mac])
    else:
        s.cookie(Cart, "CART", transformers=[mac])
    return s


class ServerCycle:
    """What uvicorn's RequestResponseCycle is to the app: it holds the scope, and
    ``send`` is its method."""

    def __init__(self, scope: dict[str, Any]) -> None:
        self.scope = scope
        self.sent: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


def run_asgi(app: Any, headers: list[tuple[bytes, bytes]]) -> ServerCycle:
    scope = {"type": "http", "method": "GET", "path": "/", "headers": list(headers)}
    cycle = ServerCycle(scope)
    coro = app(scope, _receive, cycle.send)
    with pytest.raises(StopIteration):  # nothing in it waits: it runs to the end at once
        coro.send(None)
    return cycle


def assert_no_cycle(app: Any, headers: list[tuple[bytes, bytes]]) -> None:
    """50 requests, then nothing for the cycle collector to free."""
    gc.collect()
    for _ in range(50):
        assert run_asgi(app, headers).sent[0]["type"] == "http.response.start"
    assert gc.collect() == 0


def handlers() -> dict[str, Callable[[fs.CurrentSessions], Any]]:
    def write(s: fs.CurrentSessions) -> None:
        s.set(Cart([*(s.get(Cart) or Cart([])).items, "x"]))

    return {
        "read": lambda s: s.get(Cart),
        "write": write,
        "clear": lambda s: s.clear(Cart),
        "ignore": lambda s: None,
    }


def asgi_app(handler: Callable[[fs.CurrentSessions], Any], s: fs.Sessions) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        handler(fs.get_sessions(scope))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return fs.SessionMiddleware(app, s)


def incoming(s: fs.Sessions, header: bool) -> list[tuple[bytes, bytes]]:
    cycle = run_asgi(asgi_app(lambda cs: cs.set(Cart(["a"])), s), [])
    (value,) = [v for k, v in cycle.sent[0]["headers"] if k in (b"set-cookie", b"x-cart")]
    if header:
        return [(b"x-cart", value)]
    return [(b"cookie", value.split(b";", 1)[0])]


@pytest.mark.parametrize("header", [False, True], ids=["cookie", "header"])
@pytest.mark.parametrize("case", list(handlers()))
def test_asgi_requests_leave_no_cycle(no_collector: None, case: str, header: bool) -> None:
    s = sessions(header)
    app = asgi_app(handlers()[case], s)
    assert_no_cycle(app, incoming(s, header))


@pytest.mark.parametrize("header", [False, True], ids=["cookie", "header"])
@pytest.mark.parametrize("case", list(handlers()))
def test_wsgi_requests_leave_no_cycle(no_collector: None, case: str, header: bool) -> None:
    s = sessions(header)
    handler = handlers()[case]

    def app(environ: Any, start_response: Any) -> list[bytes]:
        handler(fs.get_sessions(environ))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    mw = fs.WSGISessionMiddleware(app, s)
    value = incoming(s, header)[0][1].decode("latin-1")
    environ_key = "HTTP_X_CART" if header else "HTTP_COOKIE"

    def request() -> None:
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", environ_key: value}
        started: list[Any] = []
        body = mw(environ, lambda status, headers, exc_info=None: started.append(headers))
        assert b"".join(body) == b"ok" and started

    gc.collect()
    for _ in range(50):
        request()
    assert gc.collect() == 0


def test_send_after_the_app_returned_is_refused_cleanly(no_collector: None) -> None:
    """The middleware lets go of the server's send once the app is done: a send kept
    by the app and called afterwards (an ASGI error anyway) raises RuntimeError, it
    does not reach the server."""
    kept: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        kept.append(send)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    cycle = run_asgi(fs.SessionMiddleware(app, sessions()), [])
    assert len(cycle.sent) == 2
    with pytest.raises(RuntimeError, match="after the app returned"):
        kept[0]({"type": "http.response.body", "body": b"late"})
    assert len(cycle.sent) == 2


@pytest.mark.parametrize("case", ["read", "write", "clear", "ignore"])
def test_starlette_drop_in_requests_leave_no_cycle(no_collector: None, case: str) -> None:
    from ferrosession.starlette import SessionMiddleware

    def handle(session: dict[str, Any]) -> None:
        if case == "read":
            session.get("items")
        elif case == "write":
            session["items"] = [*session.get("items", []), "x"]
        elif case == "clear":
            session.clear()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        handle(scope["session"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    mw = SessionMiddleware(app, secret_key="s" * 32)
    first = run_asgi(SessionMiddleware(_setter, secret_key="s" * 32), [])
    (line,) = [v for k, v in first.sent[0]["headers"] if k == b"set-cookie"]
    assert_no_cycle(mw, [(b"cookie", line.split(b";", 1)[0])])


async def _setter(scope: Any, receive: Any, send: Any) -> None:
    scope["session"]["items"] = ["a"]
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})
