"""The per-request fast paths of the ASGI middleware (a read that only marks the
response ``Vary``, a set in one go, the plain-method ``send``) against what the
general path (``_plan``) sends, for sequences that leave or cross them."""

from __future__ import annotations

import asyncio
import copy
import re
from dataclasses import dataclass
from typing import Any, Callable

import pytest

import ferrosession as fs
from _driver import Response, call

KEY = bytes(range(32))
OLD_KEY = bytes(range(1, 33))


@dataclass(frozen=True)
class Cart:
    items: list[str]


@dataclass(frozen=True)
class Login:
    user: str


def sessions(key: bytes = KEY, *old: bytes, idle: bool = False) -> fs.Sessions:
    s = fs.Sessions()
    mac = fs.MessageAuthentication(key, old_keys=old)
    options: dict[str, Any] = {"idle_timeout": 1800, "refresh": 60} if idle else {}
    s.cookie(Cart, "CART", transformers=[mac], **options)
    s.cookie(Login, "LOGIN", transformers=[mac])
    return s


def app(s: fs.Sessions, handler: Callable[[fs.CurrentSessions], Any], **start: Any) -> Any:
    async def inner(scope: Any, receive: Any, send: Any) -> None:
        result = handler(fs.get_sessions(scope))
        message = {"type": "http.response.start", "status": 200, "headers": [], **start}
        await send(message)
        await send({"type": "http.response.body", "body": repr(result).encode()})

    return fs.SessionMiddleware(inner, s)


def cookie(value: Any, key: bytes = KEY, idle: bool = False) -> str:
    def handler(cs: fs.CurrentSessions) -> None:
        cs.set(value)

    name = "CART" if isinstance(value, Cart) else "LOGIN"
    r = call(app(sessions(key, idle=idle), handler))
    got = r.cookie_value(name)
    assert got
    return f"{name}={got}"


def names(r: Response) -> list[str]:
    return [k.decode().lower() for k, _ in r.raw_headers]


def test_read_only_sends_vary_alone() -> None:
    c = cookie(Cart(["a"]))
    for headers in ([("cookie", c)], [], [("cookie", "CART=tampered")]):
        r = call(app(sessions(), lambda s: s.get(Cart)), headers=headers)
        assert r.headers("vary") == ["Cookie"]
        assert r.set_cookies == [] and r.headers("cache-control") == []
    r = call(app(sessions(), lambda s: s.get(Cart)), headers=[("cookie", c)])
    assert r.body == repr(Cart(["a"])).encode()


@pytest.mark.parametrize("idle", [False, True])
@pytest.mark.parametrize("incoming", [False, True])
def test_read_then_more_leaves_the_vary_only_path(idle: bool, incoming: bool) -> None:
    c = cookie(Cart(["a"]), idle=idle) if incoming else None
    s = sessions(idle=idle)
    r = call(app(s, lambda cs: cs.get(Cart)), headers=[("cookie", c)] if c else [])
    assert r.headers("vary") == ["Cookie"] and r.set_cookies == []
    assert r.body == repr(Cart(["a"]) if c else None).encode()

    def read_set(cs: fs.CurrentSessions) -> None:
        cs.get(Cart)
        cs.set(Cart(["b"]))

    def read_clear(cs: fs.CurrentSessions) -> None:
        cs.get(Cart)
        cs.clear(Cart)

    def read_two(cs: fs.CurrentSessions) -> None:
        cs.get(Cart)
        cs.get(Login)

    def set_then_read(cs: fs.CurrentSessions) -> None:
        cs.set(Login("x"))
        cs.get(Cart)

    headers = [("cookie", c)] if c else []
    r = call(app(s, read_set), headers=headers)
    assert len(r.set_cookies) == 1 and r.set_cookies[0].startswith("CART=")
    assert r.headers("vary") == ["Cookie"] and r.headers("cache-control") == ["no-store"]
    r = call(app(s, read_clear), headers=headers)
    assert r.set_cookies == ([] if not c else [s.providers[0].clear_line])
    assert r.headers("vary") == ["Cookie"]
    r = call(app(s, read_two), headers=headers)
    assert r.set_cookies == [] and r.headers("vary") == ["Cookie"]
    r = call(app(s, set_then_read), headers=headers)
    assert [line.split("=", 1)[0] for line in r.set_cookies] == ["LOGIN"]
    assert r.headers("vary") == ["Cookie"] and r.headers("cache-control") == ["no-store"]


def test_read_under_a_retired_key_reissues() -> None:
    c = cookie(Cart(["a"]), OLD_KEY)
    r = call(app(sessions(KEY, OLD_KEY), lambda s: s.get(Cart)), headers=[("cookie", c)])
    assert len(r.set_cookies) == 1
    assert r.headers("vary") == ["Cookie"] and r.headers("cache-control") == ["no-store"]
    assert r.body == repr(Cart(["a"])).encode()


def test_set_keeps_the_apps_cache_control_and_tuple_headers() -> None:
    handler = lambda s: s.set(Cart(["z"]))  # noqa: E731
    r = call(app(sessions(), handler, headers=((b"Cache-Control", b"private"),)))
    assert names(r) == ["cache-control", "set-cookie"]
    assert r.headers("cache-control") == ["private"]
    r = call(app(sessions(), handler))
    assert names(r) == ["cache-control", "set-cookie"]
    assert r.headers("cache-control") == ["no-store"]
    r = call(app(sessions(), lambda s: s.get(Cart), headers=((b"x-a", b"1"),)))
    assert names(r) == ["x-a", "vary"]


def test_send_returns_the_servers_awaitable_and_marks_the_start() -> None:
    sent: list[Any] = []

    async def server_send(message: Any) -> None:
        sent.append(message)

    seen: dict[str, Any] = {}

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        s = fs.get_sessions(scope)
        s.get(Cart)
        awaitable = send({"type": "http.response.start", "status": 200, "headers": []})
        seen["awaitable"] = awaitable
        await awaitable
        with pytest.raises(fs.TooLateSessionSet):
            s.set(Cart(["late"]))
        await send({"type": "http.response.body", "body": b""})

    mw = fs.SessionMiddleware(inner, sessions())
    scope = {"type": "http", "headers": [], "scheme": "http"}

    async def receive() -> Any:
        return {"type": "http.request"}

    asyncio.run(mw(scope, receive, server_send))
    assert asyncio.iscoroutine(seen["awaitable"])
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["headers"] == [(b"vary", b"Cookie")]


@dataclass(frozen=True)
class Token:
    v: str


def _scenarios() -> dict[str, Callable[[fs.CurrentSessions], Any]]:
    def run(*steps: Callable[[fs.CurrentSessions], Any]) -> Callable[[fs.CurrentSessions], Any]:
        def handler(cs: fs.CurrentSessions) -> Any:
            return [step(cs) for step in steps]

        return handler

    return {
        "set": run(lambda cs: cs.set(Cart(["n"]))),
        "read, set": run(lambda cs: cs.get(Cart), lambda cs: cs.set(Cart(["n"]))),
        "set, set": run(lambda cs: cs.set(Cart(["1"])), lambda cs: cs.set(Cart(["2"]))),
        "set, read": run(lambda cs: cs.set(Cart(["n"])), lambda cs: cs.get(Cart)),
        "set, clear": run(lambda cs: cs.set(Cart(["n"])), lambda cs: cs.clear(Cart)),
        "set, read other": run(lambda cs: cs.set(Cart(["n"])), lambda cs: cs.get(Login)),
        "read other, set": run(lambda cs: cs.get(Login), lambda cs: cs.set(Cart(["n"]))),
        "set, set other": run(lambda cs: cs.set(Cart(["n"])), lambda cs: cs.set(Login("u"))),
        "clear, set": run(lambda cs: cs.clear(Cart), lambda cs: cs.set(Cart(["n"]))),
        "set header": run(lambda cs: cs.set(Token("t"))),
        "read header, set header": run(lambda cs: cs.get(Token), lambda cs: cs.set(Token("u"))),
        "set float": run(lambda cs: cs.set(Login(1.5))),  # type: ignore[arg-type]
    }


def _mixed(key: bytes = KEY, *old: bytes) -> fs.Sessions:
    s = sessions(key, *old)
    s.header(Token, "X-Token", transformers=[fs.MessageAuthentication(key, old_keys=old)])
    return s


def _headers(r: Response) -> list[tuple[str, str]]:
    """The response headers, Expires left out (the two runs may straddle a second)."""
    out = []
    for k, v in r.raw_headers:
        value = v.decode("latin-1")
        if k.lower() == b"set-cookie":
            value = "; ".join(p for p in value.split("; ") if not p.startswith("Expires="))
        out.append((k.decode("latin-1").lower(), value))
    return out


@pytest.mark.parametrize("scenario", list(_scenarios()))
@pytest.mark.parametrize("incoming", ["none", "valid", "tampered", "retired"])
def test_sets_fast_path_sends_what_the_general_path_sends(scenario: str, incoming: str) -> None:
    """set's ASGI fast path (the headers listed at set time, added by _send as they are)
    against the general path (_start and _plan), for the same requests."""
    handler = _scenarios()[scenario]
    cookies = {"valid": KEY, "retired": OLD_KEY}
    headers: list[tuple[str, str]] = []
    if incoming in cookies:
        key = cookies[incoming]
        headers = [
            ("cookie", f"{cookie(Cart(['a']), key)}; {cookie(Login('a'), key)}"),
            (
                "x-token",
                call(app(_mixed(key), lambda cs: cs.set(Token("a")))).headers("x-token")[0],
            ),
        ]
    elif incoming == "tampered":
        headers = [("cookie", "CART=x; LOGIN=y"), ("x-token", "z")]
    fast = app(_mixed(KEY, OLD_KEY), handler)
    general = app(_mixed(KEY, OLD_KEY), handler)
    for p in general.sessions.providers:
        p.fast_set = False
    for start in ({}, {"headers": [(b"cache-control", b"private")]}, {"headers": ((b"x", b"1"),)}):
        # each app its own copy: a middleware extends the start message's header list
        fast_app = app(fast.sessions, handler, **copy.deepcopy(start))
        general_app = app(general.sessions, handler, **copy.deepcopy(start))
        a, b = call(fast_app, headers=headers), call(general_app, headers=headers)
        assert _headers(a) == _headers(b), (scenario, incoming, start)
        assert a.body == b.body


def _server_scenarios() -> dict[str, Callable[[fs.CurrentSessions], Any]]:
    return {
        "read": lambda cs: cs.get(Cart),
        "read twice": lambda cs: [cs.get(Cart), cs.get(Cart)],
        "read, set": lambda cs: [cs.get(Cart), cs.set(Cart(["n"]))],
        "read, clear": lambda cs: [cs.get(Cart), cs.clear(Cart)],
        "read, read other": lambda cs: [cs.get(Cart), cs.get(Login)],
        "read other, read": lambda cs: [cs.get(Login), cs.get(Cart)],
        "read, invalidate": lambda cs: [cs.get(Cart), cs.invalidate(Cart, "x" * 64)],
        "session_id": lambda cs: cs.session_id(Cart) is not None,
    }


@pytest.mark.parametrize("scenario", list(_server_scenarios()))
@pytest.mark.parametrize("incoming", ["none", "valid", "unknown id", "tampered", "ended"])
def test_server_side_reads_send_what_the_general_path_sends(
    scenario: str, incoming: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server-side session only read gets its Vary header without the plan (marked by
    get under ASGI, found by _simple under WSGI too): the same headers, and the same
    storage state, as through _plan, for the same requests."""
    from ferrosession import current

    clock = [1_000_000.0]

    def run(fast: bool) -> tuple[list[tuple[str, str]], bytes, list[str]]:
        storage = fs.MemoryStorage(clock=lambda: clock[0])
        s = fs.Sessions(clock=lambda: clock[0])
        s.cookie(Cart, "CART", storage, idle_timeout=600)
        s.cookie(Login, "LOGIN", transformers=[fs.MessageAuthentication(KEY)])
        made = call(app(s, lambda cs: cs.set(Cart(["a"])))).cookie_value("CART")
        assert made
        value = {"none": None, "valid": made, "tampered": made[:-2] + "xx"}.get(incoming, made)
        if incoming == "unknown id":
            storage.invalidate(next(iter(storage._data)))  # type: ignore[attr-defined]
        clock[0] += 700 if incoming == "ended" else 1
        headers = [("cookie", f"CART={value}")] if value else []
        with monkeypatch.context() as m:
            if not fast:
                m.setattr(current, "_read_only", lambda st: False)
            r = call(app(s, _server_scenarios()[scenario]), headers=headers)
        # a new server-side id is random: only whether one was issued compares
        out = [
            (k, re.sub(r"^CART=[^;]+", "CART=<id>", v) if k == "set-cookie" else v)
            for k, v in _headers(r)
        ]
        return out, r.body, sorted(storage._data)  # type: ignore[attr-defined]

    fast, general = run(True), run(False)
    assert fast[0] == general[0]
    assert fast[1] == general[1] and len(fast[2]) == len(general[2])
