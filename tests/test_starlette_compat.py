"""``ferrosession.starlette.SessionMiddleware`` against Starlette's own ``SessionMiddleware``:
the same cookies (byte for byte with the same clock), read both ways, the same
``Set-Cookie`` / ``Vary`` behaviour, and the opt-in extras (fallback secrets, laziness)."""

from __future__ import annotations

import asyncio
import copy
import json
import math
import operator
import pickle
import re
import string
from typing import Any, Callable, Optional

import itsdangerous
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.datastructures import Secret
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware as StarletteMiddleware
from starlette.requests import Request, cookie_parser
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

from ferrosession import _core
from ferrosession.starlette import Session, SessionMiddleware, _LazySession

SECRET = "s3cr3t-key"
TS = 1_700_000_000
DAY = 86_400
# §3.4 of the peers' research: {"user": "alice", "n": 1} at 1700000000 under "s3cr3t-key"
VECTOR = "eyJ1c2VyIjogImFsaWNlIiwgIm4iOiAxfQ==.ZVPxAA.EzISTvwV8eo5dug5e1HkDOkiW5g"
VECTOR_DATA = {"user": "alice", "n": 1}


class Clock:
    """A settable clock for both middlewares (ours: ``clock=``, Starlette's through
    itsdangerous' ``TimestampSigner.get_timestamp``)."""

    def __init__(self, now: int = TS) -> None:
        self.now = now

    def __call__(self) -> float:
        return float(self.now)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(itsdangerous.TimestampSigner, "get_timestamp", lambda self: c.now)
    return c


# -- apps -------------------------------------------------------------------------------
def view(request: Request) -> JSONResponse:
    return JSONResponse({"session": request.session})


async def update(request: Request) -> JSONResponse:
    request.session.update(await request.json())
    return JSONResponse({"session": request.session})


async def replace(request: Request) -> JSONResponse:
    request.session.clear()
    request.session.update(await request.json())
    return JSONResponse({"session": request.session})


def clear(request: Request) -> JSONResponse:
    request.session.clear()
    return JSONResponse({"session": request.session})


def untouched(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def with_vary(request: Request) -> Response:
    request.session["seen"] = True
    response = PlainTextResponse("ok")
    response.headers.append("Vary", "Accept-Encoding")
    response.headers.append("Vary", "Accept-Language")
    return response


ROUTES = [
    Route("/view", view),
    Route("/update", update, methods=["POST"]),
    Route("/replace", replace, methods=["POST"]),
    Route("/clear", clear, methods=["POST"]),
    Route("/untouched", untouched),
    Route("/vary", with_vary),
]


def app_with(middleware: type, **options: Any) -> Starlette:
    options.setdefault("secret_key", SECRET)
    return Starlette(routes=ROUTES, middleware=[Middleware(middleware, **options)])


def ours(clock: Optional[Clock] = None, **options: Any) -> Starlette:
    if clock is not None:
        options["clock"] = clock
    return app_with(SessionMiddleware, **options)


def theirs(**options: Any) -> Starlette:
    return app_with(StarletteMiddleware, **options)


def cookie_value(set_cookie: str) -> str:
    match = re.match(r"[^=]*=([^;]*);", set_cookie)
    assert match is not None, set_cookie
    return match[1]


def written_by(app: Any, data: dict[str, Any]) -> str:
    """The cookie value ``app`` sets for ``data``."""
    return cookie_value(client(app).post("/update", json=data).headers["set-cookie"])


def client(app: Starlette, cookie: Optional[str] = None, **kwargs: Any) -> TestClient:
    c = TestClient(app, **kwargs)
    if cookie is not None:
        c.cookies.set("session", cookie)
    return c


# -- the wire format --------------------------------------------------------------------
def test_vector_byte_exact_in_the_core() -> None:
    codec = _core.StarletteCodec(
        [SECRET.encode()],
        14 * DAY,
        b"session",
        b"",
        b"",
        b"",
        fast_loads=json.loads,
        fast_error=ValueError,
        loads=json.loads,
        dumps=json.dumps,
    )
    assert codec.sign(json.dumps(VECTOR_DATA).encode(), TS) == VECTOR
    opened = codec.load_value(VECTOR.encode(), TS + 1)
    assert opened is not None
    assert json.loads(opened[0]) == VECTOR_DATA


def test_vector_byte_exact_through_the_middleware(clock: Clock) -> None:
    response = client(ours(clock)).post("/update", json=VECTOR_DATA)
    assert cookie_value(response.headers["set-cookie"]) == VECTOR
    # and Starlette itself writes the very same bytes
    response = client(theirs()).post("/update", json=VECTOR_DATA)
    assert cookie_value(response.headers["set-cookie"]) == VECTOR


def test_vector_reads(clock: Clock) -> None:
    clock.now = TS + 100
    assert client(ours(clock), VECTOR).get("/view").json() == {"session": VECTOR_DATA}


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"max_age": None},
        {"max_age": 0},
        {"max_age": -1},
        {"max_age": 3600, "path": "/app", "same_site": "strict"},
        {"https_only": True, "same_site": "none", "partitioned": True},
        {"domain": ".example.com", "session_cookie": "sid"},
    ],
)
def test_set_cookie_lines_are_starlettes(clock: Clock, options: dict[str, Any]) -> None:
    data = {"user": "bob", "roles": ["a", "b"], "n": 3, "x": 1.5, "z": None, "t": True}
    name = options.get("session_cookie", "session")
    base = "https://testserver" if options.get("https_only") else "http://testserver"
    incoming = client(theirs(**options), base_url=base).post("/update", json=data)
    cookie = cookie_value(incoming.headers["set-cookie"])

    def run(app: Starlette, path: str, with_cookie: bool) -> tuple[list[str], list[str]]:
        c = TestClient(app, base_url=base)
        if with_cookie:
            c.cookies.set(name, cookie)
        response = c.post(path, json=data)
        return response.headers.get_list("set-cookie"), response.headers.get_list("vary")

    for path, with_cookie in (("/update", False), ("/update", True), ("/clear", True)):
        mine = run(ours(clock, **options), path, with_cookie)
        assert mine == run(theirs(**options), path, with_cookie), (path, with_cookie)
        if path == "/update":
            assert len(mine[0]) == 1


# -- reading each other's cookies -------------------------------------------------------
SESSIONS = [
    {"user": "alice"},
    {"é": "ünïcødé ✓ 😀", "quote": 'say "hi"\n\t\\', "ctl": "\x00\x1f\x7f"},
    {"nested": {"a": [1, 2, {"b": None}], "c": {}}, "empty": [], "s": ""},
    {"float": 0.1, "big": 1e300, "neg": -0.0, "exp": 1e-7, "int": -(2**53)},
    {"huge": 2**80, "small": -(2**70)},  # beyond orjson: Python's json reads them
    {"": "empty key", " t": "a tag-looking key"},
]


@pytest.mark.parametrize("data", SESSIONS)
def test_starlette_writes_we_read(data: dict[str, Any]) -> None:
    written = client(theirs()).post("/update", json=data)
    cookie = cookie_value(written.headers["set-cookie"])
    assert client(ours(), cookie).get("/view").json() == {"session": data}


@pytest.mark.parametrize("data", SESSIONS)
def test_we_write_starlette_reads(data: dict[str, Any]) -> None:
    written = client(ours()).post("/update", json=data)
    cookie = cookie_value(written.headers["set-cookie"])
    assert client(theirs(), cookie).get("/view").json() == {"session": data}


def test_nan_and_infinity_survive_both_ways() -> None:
    # JSON cannot carry them, but Python's json (and so Starlette) writes and reads them
    async def handler(scope: Any, receive: Any, send: Any) -> None:
        session = scope["session"]
        if "nan" in session:
            body = repr(dict(session)).encode()
        else:
            session.update(nan=math.nan, inf=math.inf, minus=-math.inf)
            body = b""
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    for writer, reader in ((SessionMiddleware, StarletteMiddleware), (StarletteMiddleware, None)):
        written = client(writer(handler, secret_key=SECRET)).get("/")  # type: ignore[arg-type]
        cookie = cookie_value(written.headers["set-cookie"])
        read_by = reader or SessionMiddleware
        response = client(read_by(handler, secret_key=SECRET), cookie).get("/")  # type: ignore[arg-type]
        assert response.text == "{'nan': nan, 'inf': inf, 'minus': -inf}"


def test_values_json_cannot_write_fail_like_starlette() -> None:
    import datetime

    async def handler(scope: Any, receive: Any, send: Any) -> None:
        scope["session"]["when"] = datetime.date(2024, 1, 2)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    for mw in (SessionMiddleware, StarletteMiddleware):
        with pytest.raises(TypeError, match="not JSON serializable"):
            client(mw(handler, secret_key=SECRET)).get("/")  # type: ignore[operator]


def test_tuples_and_subclasses_serialize_as_json_does(clock: Clock) -> None:
    import enum

    class Level(enum.IntEnum):
        HIGH = 3

    class Name(str):
        pass

    data = {"t": (1, (2, 3)), "level": Level.HIGH, "name": Name("x"), "d": {"k": (None,)}}

    async def handler(scope: Any, receive: Any, send: Any) -> None:
        scope["session"].update(data)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    lines = [
        client(mw(handler, secret_key=SECRET, **extra)).get("/").headers["set-cookie"]  # type: ignore[operator]
        for mw, extra in ((SessionMiddleware, {"clock": clock}), (StarletteMiddleware, {}))
    ]
    assert lines[0] == lines[1]


# -- behaviour --------------------------------------------------------------------------
def test_only_a_modified_session_is_written_and_vary_follows_access() -> None:
    for app in (ours(), theirs()):
        c = client(app)
        response = c.get("/view")
        assert "set-cookie" not in response.headers
        assert response.headers["vary"] == "Cookie"
        response = c.get("/untouched")
        assert "set-cookie" not in response.headers and "vary" not in response.headers
        response = c.post("/update", json={"a": 1})
        assert "set-cookie" in response.headers
        response = c.get("/view")
        assert "set-cookie" not in response.headers
        assert response.json() == {"session": {"a": 1}}
        response = c.get("/untouched")
        assert "set-cookie" not in response.headers and "vary" not in response.headers


def test_vary_is_merged_like_starlette(clock: Clock) -> None:
    got = []
    for app in (ours(clock), theirs()):
        response = client(app).get("/vary")
        got.append(response.headers.get_list("vary"))
    assert got[0] == got[1] == ["Accept-Encoding, Accept-Language, Cookie"]


def test_clearing(clock: Clock) -> None:
    for app in (ours(clock), theirs()):
        c = client(app)
        c.post("/update", json={"a": 1})
        response = c.post("/clear")
        assert response.headers["set-cookie"] == (
            "session=null; path=/; expires=Thu, 01 Jan 1970 00:00:00 GMT; httponly; samesite=lax"
        )
        # clearing an empty session, or one whose cookie did not verify, sends nothing
        assert "set-cookie" not in client(app).post("/clear").headers
        assert "set-cookie" not in client(app, "garbage").post("/clear").headers


def test_replaced_with_new_data_in_one_request() -> None:
    c = client(ours())
    c.post("/update", json={"a": 1, "b": 2})
    assert c.post("/replace", json={"c": 3}).json() == {"session": {"c": 3}}
    assert c.get("/view").json() == {"session": {"c": 3}}


@pytest.mark.parametrize(
    "cookie",
    [
        "",
        "null",
        "invalid",
        "a.b.c",
        VECTOR[:-1],
        VECTOR + "A",
        VECTOR.replace("ZVPxAA", "ZVPxAB"),
        "eyJ1c2VyIjogImFsaWNlIiwgIm4iOiAxfQ==.ZVPxAA",
        "." * 50,
    ],
)
def test_bad_cookies_are_empty_sessions(clock: Clock, cookie: str) -> None:
    clock.now = TS + 1
    response = client(ours(clock), cookie).get("/view")
    assert response.status_code == 200
    assert response.json() == {"session": {}}


def test_non_ascii_cookie_bytes_are_an_empty_session() -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(dict(scope["session"]))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    for value in ("\u00e9t\u00e9.x.y", VECTOR + "\u00ff"):
        header = f"session={value}".encode("latin-1")
        asyncio.run(call(SessionMiddleware(app, secret_key=SECRET), [(b"cookie", header)]))
    assert seen == [{}, {}]


def test_another_secret_is_rejected() -> None:
    cookie = written_by(theirs(secret_key="other"), {"a": 1})
    assert client(ours(), cookie).get("/view").json() == {"session": {}}


def test_max_age_is_enforced_on_the_signed_timestamp(clock: Clock) -> None:
    app = ours(clock, max_age=100)
    cookie = written_by(app, {"a": 1})
    clock.now = TS + 100
    assert client(app, cookie).get("/view").json() == {"session": {"a": 1}}
    clock.now = TS + 101
    assert client(app, cookie).get("/view").json() == {"session": {}}
    # itsdangerous treats a timestamp from the future as expired, and so do we
    clock.now = TS - 1
    assert client(app, cookie).get("/view").json() == {"session": {}}
    # without max_age, any age goes (Starlette's max_age=None)
    clock.now = TS + 10 * 365 * DAY
    assert client(ours(clock, max_age=None), cookie).get("/view").json() == {"session": {"a": 1}}


def test_expired_starlette_cookie_matches_starlette(clock: Clock) -> None:
    cookie = written_by(theirs(), {"a": 1})
    for now, expected in ((TS + 14 * DAY, {"a": 1}), (TS + 14 * DAY + 1, {})):
        clock.now = now
        for app in (ours(clock), theirs()):
            assert client(app, cookie).get("/view").json() == {"session": expected}


def test_secret_is_str_of_the_key_like_starlette() -> None:
    for key in (Secret("from-env"), "plain"):
        cookie = written_by(theirs(secret_key=key), {"k": 1})
        assert client(ours(secret_key=key), cookie).get("/view").json() == {"session": {"k": 1}}


def test_fallback_secrets_verify_and_reissue(clock: Clock) -> None:
    old = written_by(theirs(secret_key="old-secret"), {"u": 1})
    # without the fallback the cookie is an empty session
    assert client(ours(clock, secret_key="new-secret"), old).get("/view").json() == {"session": {}}
    rotated = ours(clock, secret_key="new-secret", secret_key_fallbacks=["old-secret"])
    clock.now = TS + 50
    for path in ("/view", "/untouched"):
        response = client(rotated, old).get(path)
        # re-signed under the new secret even though nothing changed
        reissued = cookie_value(response.headers["set-cookie"])
        assert "Max-Age=1209600" in response.headers["set-cookie"]
        assert client(theirs(secret_key="new-secret"), reissued).get("/view").json() == {
            "session": {"u": 1}
        }
    # a cookie under the current secret is not re-issued
    current = client(theirs(secret_key="new-secret")).post("/update", json={"u": 2})
    response = client(rotated, cookie_value(current.headers["set-cookie"])).get("/view")
    assert "set-cookie" not in response.headers
    assert response.json() == {"session": {"u": 2}}


def test_multiple_cookie_headers_and_duplicates_read_like_starlette() -> None:
    good = written_by(theirs(), {"g": 1})
    headers_cases = [
        [("cookie", f"session={good}")],
        [("cookie", "a=1"), ("cookie", f"session={good}")],
        [("cookie", f"session={good}"), ("cookie", "session=bad")],
        [("cookie", f"session=bad; session={good}")],
        [("cookie", f'session="{good}"')],
        [("cookie", f" session = {good} ;")],
    ]
    for headers in headers_cases:
        raw = [(k.encode(), v.encode()) for k, v in headers]
        results = []
        for mw in (SessionMiddleware, StarletteMiddleware):
            seen: dict[str, Any] = {}

            async def app(scope: Any, receive: Any, send: Any, seen: Any = seen) -> None:
                seen.update(scope["session"])
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b""})

            asyncio.run(call(mw(app, secret_key=SECRET), raw))  # type: ignore[operator]
            results.append(seen)
        assert results[0] == results[1], headers


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(alphabet=' =;"\\\t\xa0\x1fab', max_size=6),
            st.text(alphabet=' =;"\\\t\xa0\x1f0127ab', max_size=8),
        ),
        max_size=5,
    ),
    st.sampled_from(["session", "a", "", "b=", " a"]),
)
def test_cookie_parsing_is_starlettes(pairs: list[tuple[str, str]], name: str) -> None:
    header = ";".join(f"{k}={v}" if k or v else k for k, v in pairs)
    expected = cookie_parser(header).get(name)
    got = _core._test_cookie_value(header, name, "starlette")
    assert got == (None if expected is None else expected.encode("latin-1")), header


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.text(max_size=8),
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers()
            | st.floats(allow_nan=False)
            | st.text(max_size=12),
            lambda children: (
                st.lists(children, max_size=4)
                | st.dictionaries(st.text(max_size=6), children, max_size=4)
                | st.tuples(children, children)
            ),
            max_leaves=12,
        ),
        max_size=6,
    )
)
def test_json_is_byte_exact_with_pythons(data: dict[str, Any]) -> None:
    assert _core._test_compat_json(data) == json.dumps(data)
    flask_text = _core._test_compat_json(data, "flask")
    if flask_text is not None:
        assert flask_text == json.dumps(data, separators=(",", ":"), sort_keys=True)


def test_json_leaves_the_rest_to_python() -> None:
    class Sub(dict):  # type: ignore[type-arg]
        pass

    for value in ({1: "int key"}, {"d": Sub(a=1)}, {"o": object()}, {"s": {1, 2}}, {"b": b"x"}):
        assert _core._test_compat_json(value) is None
    deep: Any = []
    for _ in range(100):
        deep = [deep]
    assert _core._test_compat_json({"deep": deep}) is None
    loop: dict[str, Any] = {}
    loop["me"] = loop
    assert _core._test_compat_json(loop) is None
    assert _core._test_compat_json({"nan": math.nan}) == '{"nan": NaN}'


# -- laziness ---------------------------------------------------------------------------
async def call(
    app: Any, headers: list[tuple[bytes, bytes]], scope_type: str = "http"
) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": scope_type, "headers": headers, "path": "/", "method": "GET"}
    await app(scope, receive, send)
    return sent


def test_an_untouched_session_is_never_decoded() -> None:
    good = written_by(theirs(), {"g": 1})
    kinds: list[type] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        kinds.append(type(scope["session"]))
        await send({"type": "http.response.body", "body": b""})

    sent = asyncio.run(
        call(SessionMiddleware(app, secret_key=SECRET), [(b"cookie", f"session={good}".encode())])
    )
    assert kinds == [_LazySession]
    assert sent[0]["headers"] == []


OPERATIONS: list[Callable[[Any], Any]] = [
    len,
    bool,
    list,
    dict,
    repr,
    str,
    sorted,
    lambda s: s["g"],
    lambda s: s.get("g"),
    lambda s: s.get("missing", 7),
    lambda s: "g" in s,
    lambda s: list(s.keys()),
    lambda s: list(s.values()),
    lambda s: list(s.items()),
    lambda s: list(reversed(s)),
    lambda s: s == {"g": 1, "h": [2]},
    lambda s: operator.eq({"g": 1, "h": [2]}, s),  # the reflected __eq__
    lambda s: s != {},
    lambda s: s.copy(),
    lambda s: s | {"x": 1},
    lambda s: {"x": 1} | s,
    lambda s: {**s},
    lambda s: json.dumps(s),
    lambda s: dict(pickle.loads(pickle.dumps(s))),
    lambda s: dict(copy.copy(s)),
    lambda s: dict(copy.deepcopy(s)),
    lambda s: (lambda **kw: kw)(**s),
    lambda s: s.setdefault("g", 5),
    lambda s: (s.setdefault("new", 5), dict(s)),
    lambda s: (s.pop("g"), dict(s)),
    lambda s: (s.pop("nope", None), dict(s)),
    lambda s: (s.popitem(), dict(s)),
    lambda s: (s.update(z=1), dict(s)),
    lambda s: (s.__ior__({"z": 2}), dict(s)),
    lambda s: (s.clear(), dict(s)),
    lambda s: (s.__setitem__("g", 9), dict(s)),
    lambda s: (s.__delitem__("g"), dict(s)),
    lambda s: (s.mark_accessed(), dict(s)),
    lambda s: (s.mark_modified(), dict(s)),
]


@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_lazy_session_behaves_like_the_eager_one(operation: Callable[[Any], Any]) -> None:
    good = written_by(theirs(), {"g": 1, "h": [2]})
    outcomes = []
    for lazy in (True, False):
        seen: list[Any] = []

        async def app(scope: Any, receive: Any, send: Any, seen: Any = seen) -> None:
            session = scope["session"]
            seen.append(operation(session))
            seen.append((dict(session), session.accessed, session.modified, type(session)))
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        mw = SessionMiddleware(app, secret_key=SECRET, lazy=lazy)
        sent = asyncio.run(call(mw, [(b"cookie", f"session={good}".encode())]))
        names = [k for k, _ in sent[0]["headers"]]
        outcomes.append((seen, names))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0][-1][-1] is Session


def test_c_code_that_reads_dict_storage_fails_loudly_before_the_first_use() -> None:
    import orjson

    good = written_by(theirs(), {"g": 1})
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        with pytest.raises(TypeError):
            orjson.dumps(scope["session"])  # documented: use lazy=False for this
        seen.append(json.dumps(scope["session"]))  # json's encoder asks items(): fine
        seen.append(orjson.dumps(scope["session"]))  # read by now
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    asyncio.run(
        call(SessionMiddleware(app, secret_key=SECRET), [(b"cookie", f"session={good}".encode())])
    )
    assert seen == ['{"g": 1}', b'{"g":1}']


def test_a_send_kept_in_the_scope_is_collected() -> None:
    """The ``send`` the app gets refers to the scope: a cycle through it (an app that keeps
    it where the scope reaches) is the garbage collector's to break."""
    import gc
    import weakref

    class Holder:
        send: Any = None

    holders: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        holder = Holder()
        holder.send = send
        scope["holder"] = holder
        holders.append(weakref.ref(holder))
        scope["session"]["n"] = 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    sent = asyncio.run(call(SessionMiddleware(app, secret_key=SECRET), []))
    assert [k for k, _ in sent[0]["headers"]] == [b"vary", b"set-cookie"]
    gc.collect()
    assert holders[0]() is None


def test_websocket_sessions_are_read_and_never_sent() -> None:
    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        websocket.session["seen"] = True
        await websocket.send_json(websocket.session)
        await websocket.close()

    good = written_by(theirs(), {"g": 1})
    app = Starlette(
        routes=[WebSocketRoute("/ws", endpoint)],
        middleware=[Middleware(SessionMiddleware, secret_key=SECRET)],
    )
    with client(app, good).websocket_connect("/ws") as ws:
        assert ws.receive_json() == {"g": 1, "seen": True}


def test_lifespan_and_other_scopes_pass_through() -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append("session" in scope)

    asyncio.run(SessionMiddleware(app, secret_key=SECRET)({"type": "lifespan"}, None, None))  # type: ignore[arg-type]
    assert seen == [False]


def test_session_class_tracks_changes_like_starlettes() -> None:
    s = Session({"a": "1"})
    assert not s.modified and not s.accessed
    s.pop("missing", None)
    s.setdefault("a", "2")
    assert not s.modified and not s.accessed
    s.setdefault("b", "2")
    assert s.modified and s.accessed
    for change in (
        lambda s: s.__setitem__("c", 1),
        lambda s: s.__delitem__("a"),
        lambda s: s.clear(),
        lambda s: s.pop("a"),
        lambda s: s.popitem(),
        lambda s: s.update(x=1),
        lambda s: s.__ior__({"x": 1}),
    ):
        s = Session({"a": "1"})
        change(s)
        assert s.modified and s.accessed


def test_cookie_names_and_values_need_no_quoting() -> None:
    cookie = written_by(ours(), {"k": "~" * 300})
    assert set(cookie) <= set(string.ascii_letters + string.digits + "+/=._-")
