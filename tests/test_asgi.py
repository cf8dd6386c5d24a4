"""The contract through the ASGI middleware, driven with exact headers."""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import re
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Optional

import pytest

import ferrosession as fs
from _driver import Response, call

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


@dataclass(frozen=True)
class Cart:
    items: list[str]


@dataclass(frozen=True)
class Login:
    user: str
    visits: int = 0


Handler = Callable[[fs.CurrentSessions], Any]


def make_app(sessions: fs.Sessions, handler: Handler) -> fs.SessionMiddleware:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        result = handler(fs.get_sessions(scope))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": repr(result).encode()})

    return fs.SessionMiddleware(app, sessions)


def signed_cart_sessions(**options: Any) -> fs.Sessions:
    sessions = fs.Sessions()
    options.setdefault("transformers", [fs.MessageAuthentication(KEY)])
    sessions.cookie(Cart, "CART", **options)
    return sessions


def set_cart(items: list[str]) -> Handler:
    def handler(s: fs.CurrentSessions) -> Any:
        s.set(Cart(items=items))
        return None

    return handler


def read(key: Any) -> Handler:
    return lambda s: s.get(key)


def cookie_for(sessions_factory: Callable[[], fs.Sessions], value: Any, name: str) -> str:
    """A valid cookie value, obtained by running a real request that sets ``value``."""

    def handler(s: fs.CurrentSessions) -> None:
        s.set(value)

    response = call(make_app(sessions_factory(), handler))
    cookie = response.cookie_value(name)
    assert cookie
    return cookie


IMF = re.compile(r"^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$")


def test_default_set_cookie_line() -> None:
    before = time.time()
    response = call(make_app(signed_cart_sessions(), set_cart(["a b"])))
    after = time.time()
    (line,) = response.set_cookies
    parts = line.split("; ")
    assert parts[0].startswith("CART=%7B%22items%22%3A%5B%22a+b%22%5D%7D%2F")
    assert parts[1] == "Max-Age=604800"
    assert parts[2].startswith("Expires=")
    expires = parts[2].removeprefix("Expires=")
    assert IMF.match(expires)
    when = email.utils.parsedate_to_datetime(expires).timestamp()
    assert int(before) + 604800 <= when <= after + 604800
    assert parts[3:] == ["Path=/", "HttpOnly", "SameSite=Lax"]


def test_round_trip_and_value_with_space() -> None:
    cookie = cookie_for(signed_cart_sessions, Cart(items=["a b", "ü"]), "CART")
    response = call(
        make_app(signed_cart_sessions(), read(Cart)), headers=[("cookie", f"CART={cookie}")]
    )
    assert response.body == repr(Cart(items=["a b", "ü"])).encode()
    assert response.set_cookies == []


def test_no_set_cookie_when_untouched_or_only_read() -> None:
    sessions = signed_cart_sessions
    assert call(make_app(sessions(), lambda s: None)).set_cookies == []
    cookie = cookie_for(sessions, Cart(items=["x"]), "CART")
    for handler in (lambda s: None, read(Cart), read("CART")):
        response = call(make_app(sessions(), handler), headers=[("cookie", f"CART={cookie}")])
        assert response.set_cookies == []


def test_get_returns_value_set_in_this_request() -> None:
    def handler(s: fs.CurrentSessions) -> Any:
        assert s.get(Cart) is None
        s.set(Cart(items=["1"]))
        return s.get(Cart)

    assert call(make_app(signed_cart_sessions(), handler)).body == repr(Cart(["1"])).encode()


def test_set_twice_sends_one_header_with_last_value() -> None:
    def handler(s: fs.CurrentSessions) -> None:
        s.set(Cart(items=["first"]))
        s.set(Cart(items=["second"]))

    response = call(make_app(signed_cart_sessions(), handler))
    assert len(response.set_cookies) == 1
    assert "second" in response.set_cookies[0]
    assert "first" not in response.set_cookies[0]


def test_clear_sends_expiring_cookie_with_same_attributes() -> None:
    def factory() -> fs.Sessions:
        return signed_cart_sessions(
            path="/shop", domain="example.com", secure=True, same_site="Strict"
        )

    cookie = cookie_for(factory, Cart(items=["x"]), "CART")

    def handler(s: fs.CurrentSessions) -> Any:
        s.clear(Cart)
        return s.get(Cart)

    response = call(make_app(factory(), handler), headers=[("cookie", f"CART={cookie}")])
    assert response.body == b"None"
    assert response.set_cookies == [
        "CART=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=example.com; "
        "Path=/shop; Secure; HttpOnly; SameSite=Strict"
    ]


def test_clear_of_an_invalid_incoming_cookie_still_expires_it() -> None:
    response = call(
        make_app(signed_cart_sessions(), lambda s: s.clear(Cart)),
        headers=[("cookie", "CART=garbage")],
    )
    assert response.set_cookies == [
        "CART=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; HttpOnly; SameSite=Lax"
    ]


def test_clear_without_incoming_cookie_sends_nothing() -> None:
    def set_then_clear(s: fs.CurrentSessions) -> None:
        s.set(Cart(items=["x"]))
        s.clear(Cart)

    assert call(make_app(signed_cart_sessions(), lambda s: s.clear(Cart))).set_cookies == []
    assert call(make_app(signed_cart_sessions(), set_then_clear)).set_cookies == []


def test_two_session_types_send_two_cookies() -> None:
    sessions = signed_cart_sessions(path="/shop")
    sessions.cookie(Login, "LOGIN", transformers=[fs.MessageAuthentication(OTHER_KEY)])

    def handler(s: fs.CurrentSessions) -> None:
        s.set(Cart(items=["x"]))
        s.set(Login(user="ann"))

    response = call(make_app(sessions, handler))
    assert len(response.set_cookies) == 2
    assert response.cookie_value("CART") and response.cookie_value("LOGIN")
    assert "Path=/shop" in response.set_cookies[0]
    assert "Path=/;" in response.set_cookies[1]


def test_path_scoping_with_a_real_client() -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    sessions = signed_cart_sessions(path="/shop")

    async def add(request: Request) -> PlainTextResponse:
        s = fs.get_sessions(request)
        cart = s.get(Cart) or Cart(items=[])
        s.set(Cart(items=[*cart.items, "x"]))
        return PlainTextResponse(str(len(cart.items)))

    async def home(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.headers.get("cookie", "none"))

    app = Starlette(routes=[Route("/shop/add", add), Route("/", home)])
    app.add_middleware(fs.SessionMiddleware, sessions=sessions)
    with TestClient(app) as client:
        assert client.get("/shop/add").text == "0"
        assert client.get("/shop/add").text == "1"
        assert client.get("/").text == "none"  # the cart cookie stays under /shop


def test_header_transport_round_trip() -> None:
    sessions = fs.Sessions()
    sessions.header(Login, "X-Session", transformers=[fs.MessageAuthentication(KEY)])
    response = call(make_app(sessions, lambda s: s.set(Login(user="api"))))
    assert response.set_cookies == []
    (value,) = response.headers("x-session")
    assert value.startswith('{"user":"api","visits":0}/')
    again = call(make_app(sessions, read(Login)), headers=[("X-Session", value)])
    assert again.body == repr(Login(user="api")).encode()
    assert again.headers("x-session") == []
    cleared = call(make_app(sessions, lambda s: s.clear(Login)), headers=[("X-Session", value)])
    assert cleared.headers("x-session") == [] and cleared.set_cookies == []


def _bad_cookies(valid: str) -> dict[str, str]:
    value, _, tag = valid.rpartition("%2F")
    flipped = tag[:-1] + ("0" if tag[-1] != "0" else "1")
    return {
        "tampered value": value.replace("x", "y") + "%2F" + tag,
        "flipped tag": value + "%2F" + flipped,
        "truncated": valid[:-5],
        "uppercase hex": value + "%2F" + tag.upper(),
        "empty": "",
        "no tag": value,
        "garbage": "not-a-session",
        "bad escape": "%ZZ%2F00",
        "non-utf8 escape": "%FF%FE%2F" + tag,
        "huge": "a" * 100_000,
        "only slash": "%2F",
        "quoted": '"' + valid + '"',
    }


def test_bad_cookies_are_absent_sessions() -> None:
    valid = cookie_for(signed_cart_sessions, Cart(items=["x"]), "CART")
    wrong_key = cookie_for(
        lambda: signed_cart_sessions(transformers=[fs.MessageAuthentication(OTHER_KEY)]),
        Cart(items=["x"]),
        "CART",
    )
    cases = _bad_cookies(valid)
    cases["wrong key"] = wrong_key
    for label, bad in cases.items():
        response = call(
            make_app(signed_cart_sessions(), read(Cart)), headers=[("cookie", f"CART={bad}")]
        )
        assert response.status == 200, label
        assert response.body == b"None", label
        assert response.set_cookies == [], label


def test_non_latin1_bytes_in_cookie_header_are_absent() -> None:
    sessions = signed_cart_sessions()
    app = make_app(sessions, read(Cart))

    async def run() -> bytes:
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/",
            "headers": [(b"cookie", b"CART=\xff\xfe\x00; other=1")],
        }
        body = []

        async def send(m: Any) -> None:
            body.append(m)

        async def receive() -> Any:
            return {"type": "http.request"}

        await app(scope, receive, send)
        return body[-1]["body"]  # type: ignore[no-any-return]

    assert asyncio.run(run()) == b"None"


def test_raw_json_cookie_is_accepted_without_transformers() -> None:
    sessions = fs.Sessions()
    sessions.cookie(Login, "S", unsigned=True)
    response = call(make_app(sessions, read(Login)), headers=[("cookie", 'S={"user":"id1"}')])
    assert response.body == repr(Login(user="id1")).encode()


def test_schema_change_is_an_absent_session() -> None:
    @dataclass(frozen=True)
    class CartV2:
        products: list[str]

    cookie = cookie_for(signed_cart_sessions, Cart(items=["x"]), "CART")
    sessions = fs.Sessions()
    sessions.cookie(CartV2, "CART", transformers=[fs.MessageAuthentication(KEY)])
    response = call(make_app(sessions, read(CartV2)), headers=[("cookie", f"CART={cookie}")])
    assert response.body == b"None"
    assert response.set_cookies == []


def test_set_after_response_start_is_too_late() -> None:
    sessions = signed_cart_sessions()
    raised: list[BaseException] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        s = fs.get_sessions(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for action in (
            lambda: s.set(Cart(items=["late"])),
            lambda: s.clear(Cart),
            lambda: s.regenerate(Cart),
        ):
            try:
                action()
            except fs.TooLateSessionSet as exc:
                raised.append(exc)
        await send({"type": "http.response.body", "body": b""})

    response = call(fs.SessionMiddleware(app, sessions))
    assert len(raised) == 3
    assert response.set_cookies == []


def test_session_too_large_is_raised_at_set() -> None:
    sessions = signed_cart_sessions()
    errors: list[BaseException] = []

    def handler(s: fs.CurrentSessions) -> None:
        try:
            s.set(Cart(items=["x" * 4000]))
        except fs.SessionTooLarge as exc:
            errors.append(exc)
        s.set(Cart(items=["x" * 1000]))  # a smaller one still fits

    response = call(make_app(sessions, handler))
    assert len(errors) == 1
    assert "4096" in str(errors[0])
    (line,) = response.set_cookies
    assert len(line) <= 4096


def test_header_too_large_above_8192() -> None:
    sessions = fs.Sessions()
    sessions.header(Cart, "X-Cart", unsigned=True)
    with pytest.raises(fs.SessionTooLarge):
        call(make_app(sessions, set_cart(["x" * 9000])))
    assert call(make_app(sessions, set_cart(["x" * 7000]))).headers("x-cart")


def test_key_rotation_reissues_under_the_current_key() -> None:
    old = cookie_for(
        lambda: signed_cart_sessions(transformers=[fs.MessageAuthentication(OTHER_KEY)]),
        Cart(items=["x"]),
        "CART",
    )

    def rotated() -> fs.Sessions:
        return signed_cart_sessions(
            transformers=[fs.MessageAuthentication(KEY, old_keys=[OTHER_KEY])]
        )

    response = call(make_app(rotated(), read(Cart)), headers=[("cookie", f"CART={old}")])
    assert response.body == repr(Cart(items=["x"])).encode()
    new = response.cookie_value("CART")
    assert new and new != old
    # the re-issued cookie verifies under the current key alone
    current_only = call(
        make_app(signed_cart_sessions(), read(Cart)), headers=[("cookie", f"CART={new}")]
    )
    assert current_only.body == repr(Cart(items=["x"])).encode()
    # and a value under a key that was removed from old_keys is rejected
    removed = call(
        make_app(signed_cart_sessions(), read(Cart)), headers=[("cookie", f"CART={old}")]
    )
    assert removed.body == b"None"


def test_duplicate_cookie_names_first_wins() -> None:
    a = cookie_for(signed_cart_sessions, Cart(items=["a"]), "CART")
    b = cookie_for(signed_cart_sessions, Cart(items=["b"]), "CART")
    response = call(
        make_app(signed_cart_sessions(), read(Cart)), headers=[("cookie", f"CART={a}; CART={b}")]
    )
    assert response.body == repr(Cart(items=["a"])).encode()


def test_max_age_options() -> None:
    none = call(make_app(signed_cart_sessions(max_age=None), set_cart([]))).set_cookies[0]
    assert "Max-Age" not in none and "Expires" not in none
    hour = call(make_app(signed_cart_sessions(max_age=timedelta(hours=1)), set_cart([])))
    assert "; Max-Age=3600; Expires=" in hour.set_cookies[0]
    huge = call(make_app(signed_cart_sessions(max_age=10**12), set_cart([])))
    assert "; Max-Age=2147483647; Expires=" in huge.set_cookies[0]


def test_base64_encoding_round_trip() -> None:
    def factory() -> fs.Sessions:
        return signed_cart_sessions(encoding="base64")

    cookie = cookie_for(factory, Cart(items=["a b"]), "CART")
    assert re.fullmatch(r"[A-Za-z0-9+/]+=*", cookie)
    response = call(make_app(factory(), read(Cart)), headers=[("cookie", f"CART={cookie}")])
    assert response.body == repr(Cart(items=["a b"])).encode()


def test_send_only_if_modified() -> None:
    def factory() -> fs.Sessions:
        return signed_cart_sessions(send_only_if_modified=True)

    cookie = cookie_for(factory, Cart(items=["x"]), "CART")
    headers = [("cookie", f"CART={cookie}")]
    assert call(make_app(factory(), set_cart(["x"])), headers=headers).set_cookies == []
    assert len(call(make_app(factory(), set_cart(["y"])), headers=headers).set_cookies) == 1
    assert len(call(make_app(factory(), set_cart(["x"]))).set_cookies) == 1  # new session
    # default: an equal value is sent again
    assert len(call(make_app(signed_cart_sessions(), set_cart(["x"])), headers=headers).set_cookies)


def test_dict_sessions_and_custom_serializer() -> None:
    class Upper:
        def serialize(self, value: Any) -> str:
            return str(value.user).upper()

        def deserialize(self, text: str) -> Login:
            return Login(user=text.lower())

    sessions = fs.Sessions()
    sessions.cookie(dict, "D", transformers=[fs.MessageAuthentication(KEY)])
    sessions.cookie(Login, "L", serializer=Upper(), unsigned=True)

    def handler(s: fs.CurrentSessions) -> None:
        s.set({"a": 1, "b": [1, 2]})
        s.set(Login(user="ann"))

    response = call(make_app(sessions, handler))
    assert response.cookie_value("L") == "ANN"
    d = response.cookie_value("D")
    again = call(
        make_app(sessions, lambda s: (s.get(dict), s.get(Login))),
        headers=[("cookie", f"D={d}; L=BOB")],
    )
    assert again.body == repr(({"a": 1, "b": [1, 2]}, Login(user="bob"))).encode()


class Reverse:
    """A custom transformer: reverses the text."""

    def transform_write(self, value: str) -> str:
        return value[::-1]

    def transform_read(self, value: str) -> Optional[str]:
        return value[::-1]


class Exploding:
    def transform_write(self, value: str) -> str:
        return value

    def transform_read(self, value: str) -> Optional[str]:
        raise ValueError("boom")


@pytest.mark.parametrize(
    "chain",
    [
        [Reverse(), fs.MessageAuthentication(KEY)],
        [fs.MessageAuthentication(KEY), Reverse()],
        [fs.Digest(), Reverse(), fs.MessageAuthentication(KEY)],
    ],
)
def test_custom_transformers_anywhere_in_the_chain(chain: list[Any]) -> None:
    def factory() -> fs.Sessions:
        return signed_cart_sessions(transformers=chain)

    cookie = cookie_for(factory, Cart(items=["q"]), "CART")
    ok = call(make_app(factory(), read(Cart)), headers=[("cookie", f"CART={cookie}")])
    assert ok.body == repr(Cart(items=["q"])).encode()
    bad = call(make_app(factory(), read(Cart)), headers=[("cookie", f"CART=x{cookie}")])
    assert bad.body == b"None"


def test_a_custom_transformer_that_raises_is_an_absent_session() -> None:
    sessions = signed_cart_sessions(transformers=[Exploding()])
    response = call(make_app(sessions, read(Cart)), headers=[("cookie", "CART=x")])
    assert response.body == b"None"


def test_api_errors() -> None:
    sessions = signed_cart_sessions()

    def handler(s: fs.CurrentSessions) -> list[str]:
        seen = []
        for action in (
            lambda: s.set(None),
            lambda: s.set(Login(user="x")),
            lambda: s.get(Login),
            lambda: s.get("NOPE"),
            lambda: s.clear("NOPE"),
            lambda: s.session_id(Cart),
            lambda: s.invalidate(Cart, "abc"),
        ):
            try:
                action()
            except Exception as exc:
                seen.append(type(exc).__name__)
        return seen

    response = call(make_app(sessions, handler))
    assert (
        response.body
        == repr(
            [
                "TypeError",
                "SessionNotRegistered",
                "SessionNotRegistered",
                "SessionNotRegistered",
                "SessionNotRegistered",
                "ConfigurationError",
                "ConfigurationError",
            ]
        ).encode()
    )
    assert issubclass(fs.SessionNotRegistered, LookupError)
    assert issubclass(fs.TooLateSessionSet, RuntimeError)


def test_sessions_not_installed() -> None:
    with pytest.raises(fs.SessionsNotInstalled):
        fs.get_sessions({"type": "http", "headers": []})
    with pytest.raises(fs.SessionsNotInstalled):
        fs.get_sessions(object())


def test_lifespan_passes_through_and_websocket_reads() -> None:
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.testclient import TestClient
    from starlette.websockets import WebSocket

    events: list[str] = []

    async def ws(websocket: WebSocket) -> None:
        cart = fs.get_sessions(websocket).get(Cart)
        await websocket.accept()
        await websocket.send_text(repr(cart))
        await websocket.close()

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        events.append("startup")
        yield
        events.append("shutdown")

    app = Starlette(routes=[WebSocketRoute("/ws", ws)], lifespan=lifespan)
    app.add_middleware(fs.SessionMiddleware, sessions=signed_cart_sessions())
    cookie = cookie_for(signed_cart_sessions, Cart(items=["w"]), "CART")
    with (
        TestClient(app) as client,
        client.websocket_connect("/ws", headers={"cookie": f"CART={cookie}"}) as socket,
    ):
        assert socket.receive_text() == repr(Cart(items=["w"]))
    assert events == ["startup", "shutdown"]


def test_websocket_set_goes_out_with_the_accept() -> None:
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.testclient import TestClient
    from starlette.websockets import WebSocket

    async def ws(websocket: WebSocket) -> None:
        fs.get_sessions(websocket).set(Cart(items=["ws"]))
        await websocket.accept()
        await websocket.close()

    app = Starlette(routes=[WebSocketRoute("/ws", ws)])
    app.add_middleware(fs.SessionMiddleware, sessions=signed_cart_sessions())
    with TestClient(app) as client, client.websocket_connect("/ws") as socket:
        cookies = [v for k, v in socket.extra_headers if k == b"set-cookie"]
        assert len(cookies) == 1 and cookies[0].startswith(b"CART=")


# -- server-side -------------------------------------------------------------------


class CountingStorage(fs.MemoryStorage):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self.writes = 0
        self.deletes = 0

    def read(self, session_id: str) -> Optional[str]:
        self.reads += 1
        return super().read(session_id)

    def write(self, session_id: str, value: str, ttl: int) -> None:
        self.writes += 1
        super().write(session_id, value, ttl)

    def invalidate(self, session_id: str) -> None:
        self.deletes += 1
        super().invalidate(session_id)


def server_side(storage: Any, **options: Any) -> fs.Sessions:
    sessions = fs.Sessions()
    sessions.cookie(Login, "SID", storage=storage, **options)
    return sessions


def key(sid: Optional[str]) -> str:
    """What the storage sees for ``sid`` (a hash bound to the session name)."""
    assert sid is not None
    return server_side(fs.MemoryStorage()).storage_key(Login, sid)


def login_as(user: str) -> Handler:
    def handler(s: fs.CurrentSessions) -> Optional[str]:
        s.set(Login(user=user))
        return s.session_id(Login)

    return handler


def test_server_side_set_and_read() -> None:
    storage = CountingStorage()
    response = call(make_app(server_side(storage), login_as("ann")))
    sid = response.cookie_value("SID")
    assert sid and re.fullmatch(r"[0-9a-f]{64}", sid)
    assert response.body == repr(sid).encode()
    assert storage.read(key(sid)) == '{"user":"ann","visits":0}'
    storage.reads = 0
    again = call(make_app(server_side(storage), read(Login)), headers=[("cookie", f"SID={sid}")])
    assert again.body == repr(Login(user="ann")).encode()
    assert again.set_cookies == []
    assert storage.reads == 1


def test_storage_is_read_once_and_never_without_the_cookie() -> None:
    storage = CountingStorage()
    sid = call(make_app(server_side(storage), login_as("ann"))).cookie_value("SID")
    storage.reads = 0

    def many(s: fs.CurrentSessions) -> None:
        s.get(Login)
        s.get("SID")
        s.session_id(Login)
        s.set(Login(user="bob"))

    call(make_app(server_side(storage), many), headers=[("cookie", f"SID={sid}")])
    assert storage.reads == 1
    storage.reads = 0
    call(make_app(server_side(storage), read(Login)))  # no cookie
    call(make_app(server_side(storage), lambda s: None), headers=[("cookie", f"SID={sid}")])
    assert storage.reads == 0


def test_untouched_request_calls_no_rust_and_no_storage() -> None:
    storage = CountingStorage()
    sessions = server_side(storage)
    signed = fs.Sessions()
    signed.cookie(Cart, "CART", transformers=[fs.MessageAuthentication(KEY)])

    class Bomb:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"Rust codec touched: {name}")

    for s in (sessions, signed):
        app = make_app(s, lambda s: None)
        for reg in s.registrations:
            reg.transport.codec = Bomb()  # type: ignore[assignment]
        response = call(app, headers=[("cookie", "SID=abc; CART=def")])
        assert response.status == 200 and response.set_cookies == []
    assert storage.reads == 0


def test_unknown_id_is_absent_and_never_adopted() -> None:
    storage = CountingStorage()
    chosen = "a" * 64
    absent = call(
        make_app(server_side(storage), read(Login)), headers=[("cookie", f"SID={chosen}")]
    )
    assert absent.body == b"None"
    assert absent.set_cookies == [
        "SID=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; HttpOnly; SameSite=Lax"
    ]
    fixed = call(
        make_app(server_side(storage), login_as("ann")), headers=[("cookie", f"SID={chosen}")]
    )
    new = fixed.cookie_value("SID")
    assert new and new != chosen
    assert storage.read(key(chosen)) is None


def test_regenerate_moves_the_session_to_a_new_id() -> None:
    storage = CountingStorage()
    old = call(make_app(server_side(storage), login_as("ann"))).cookie_value("SID")

    def regen(s: fs.CurrentSessions) -> Any:
        before = s.session_id(Login)
        s.regenerate(Login)
        return (before, s.session_id(Login))

    response = call(make_app(server_side(storage), regen), headers=[("cookie", f"SID={old}")])
    new = response.cookie_value("SID")
    assert response.body == repr((old, new)).encode()
    assert new != old
    assert storage.read(key(new)) == '{"user":"ann","visits":0}'
    assert storage.read(key(old)) is None
    replay = call(make_app(server_side(storage), read(Login)), headers=[("cookie", f"SID={old}")])
    assert replay.body == b"None"


def test_clear_deletes_the_entry_and_set_after_clear_mints_a_new_id() -> None:
    storage = CountingStorage()
    old = call(make_app(server_side(storage), login_as("ann"))).cookie_value("SID")
    assert old
    cleared = call(
        make_app(server_side(storage), lambda s: s.clear(Login)), headers=[("cookie", f"SID={old}")]
    )
    assert cleared.set_cookies[0].startswith("SID=; Max-Age=0")
    assert storage.read(key(old)) is None
    sid2 = call(make_app(server_side(storage), login_as("bob"))).cookie_value("SID")

    def clear_then_set(s: fs.CurrentSessions) -> None:
        s.clear(Login)
        s.set(Login(user="carol"))

    again = call(
        make_app(server_side(storage), clear_then_set), headers=[("cookie", f"SID={sid2}")]
    )
    sid3 = again.cookie_value("SID")
    assert sid3 and sid3 != sid2
    assert storage.read(key(sid2)) is None


def test_invalidate_logs_another_device_out() -> None:
    storage = CountingStorage()
    phone = call(make_app(server_side(storage), login_as("ann"))).cookie_value("SID")
    laptop = call(make_app(server_side(storage), login_as("ann"))).cookie_value("SID")
    assert phone and laptop and phone != laptop
    call(
        make_app(server_side(storage), lambda s: s.invalidate(Login, phone)),
        headers=[("cookie", f"SID={laptop}")],
    )
    assert storage.read(key(phone)) is None
    assert storage.read(key(laptop)) is not None


def test_session_id_none_without_session_and_custom_identity() -> None:
    counter = iter(range(100))
    sessions = server_side(fs.MemoryStorage(), identity=lambda: f"id-{next(counter)}")
    assert call(make_app(sessions, lambda s: s.session_id(Login))).body == b"None"
    assert call(make_app(sessions, login_as("x"))).cookie_value("SID") == "id-0"


def test_storage_failure_is_a_storage_error() -> None:
    class Broken:
        def read(self, session_id: str) -> Optional[str]:
            raise OSError("disk on fire")

        def write(self, session_id: str, value: str, ttl: int) -> None:
            raise OSError("disk on fire")

        def invalidate(self, session_id: str) -> None:
            raise OSError("disk on fire")

    with pytest.raises(fs.StorageError, match="disk on fire"):
        call(make_app(server_side(Broken()), read(Login)), headers=[("cookie", "SID=abc")])
    with pytest.raises(fs.StorageError, match="write failed"):
        call(make_app(server_side(Broken()), login_as("ann")))


class AsyncStorage:
    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.reads = 0

    async def read(self, session_id: str) -> Optional[str]:
        self.reads += 1
        await asyncio.sleep(0)
        return self.data.get(session_id)

    async def write(self, session_id: str, value: str, ttl: int) -> None:
        await asyncio.sleep(0)
        self.data[session_id] = value

    async def invalidate(self, session_id: str) -> None:
        self.data.pop(session_id, None)


def test_async_storage_under_asgi() -> None:
    storage = AsyncStorage()
    sid = call(make_app(server_side(storage), login_as("ann"))).cookie_value("SID")
    assert sid and storage.data[key(sid)] == '{"user":"ann","visits":0}'
    assert storage.reads == 0
    got = call(make_app(server_side(storage), read(Login)), headers=[("cookie", f"SID={sid}")])
    assert got.body == repr(Login(user="ann")).encode()
    assert storage.reads == 1
    call(make_app(server_side(storage), lambda s: None))  # no cookie: no read
    assert storage.reads == 1
    call(
        make_app(server_side(storage), lambda s: s.clear(Login)), headers=[("cookie", f"SID={sid}")]
    )
    assert key(sid) not in storage.data


def test_server_side_rotated_id_cookie_is_reissued() -> None:
    storage = CountingStorage()
    old_sessions = server_side(storage, transformers=[fs.MessageAuthentication(OTHER_KEY)])
    old_cookie = call(make_app(old_sessions, login_as("ann"))).cookie_value("SID")
    rotated = server_side(
        storage, transformers=[fs.MessageAuthentication(KEY, old_keys=[OTHER_KEY])]
    )
    response = call(make_app(rotated, read(Login)), headers=[("cookie", f"SID={old_cookie}")])
    assert response.body == repr(Login(user="ann")).encode()
    new_cookie = response.cookie_value("SID")
    assert new_cookie and new_cookie != old_cookie
    assert new_cookie.split("%2F")[0] == old_cookie.split("%2F")[0]  # same id, new tag


def test_replace_keeps_frozen_values_immutable() -> None:
    login = Login(user="a")
    with pytest.raises(dataclasses.FrozenInstanceError):
        login.user = "b"  # type: ignore[misc]
    assert dataclasses.replace(login, visits=2) == Login(user="a", visits=2)


def test_many_requests_share_nothing() -> None:
    sessions = signed_cart_sessions()
    responses: list[Response] = [call(make_app(sessions, set_cart([str(i)]))) for i in range(3)]
    values = {r.cookie_value("CART") for r in responses}
    assert len(values) == 3


def test_storage_sees_hashed_ids_bound_to_the_session_name() -> None:
    storage = CountingStorage()
    sid = call(make_app(server_side(storage), login_as("ann"))).cookie_value("SID")
    assert sid is not None
    assert storage.read(sid) is None  # the raw id is not a key
    assert len(key(sid)) == 43 and re.fullmatch(r"[A-Za-z0-9_-]{43}", key(sid))
    assert storage.read(key(sid)) == '{"user":"ann","visits":0}'
    # a second registration sharing the storage does not accept the first one's id
    sessions = fs.Sessions()

    @dataclass(frozen=True)
    class Admin:
        user: str

    sessions.cookie(Admin, "ADMIN", storage=storage)
    response = call(make_app(sessions, read(Admin)), headers=[("cookie", f"ADMIN={sid}")])
    assert response.body == b"None"
    # hash_ids=False gives the storage the id itself
    raw = CountingStorage()
    rid = call(make_app(server_side(raw, hash_ids=False), login_as("bo"))).cookie_value("SID")
    assert rid and raw.read(rid) == '{"user":"bo","visits":0}'


# -- cache safety, secure="auto", cookie prefixes -------------------------------------


def test_vary_cookie_when_a_session_was_read_and_not_otherwise() -> None:
    cookie = cookie_for(signed_cart_sessions, Cart(items=["x"]), "CART")
    got = call(make_app(signed_cart_sessions(), read(Cart)), headers=[("cookie", f"CART={cookie}")])
    assert got.headers("vary") == ["Cookie"]
    assert got.headers("cache-control") == []  # nothing set: the response may be cached
    untouched = call(
        make_app(signed_cart_sessions(), lambda s: None), headers=[("cookie", f"CART={cookie}")]
    )
    assert untouched.headers("vary") == [] and untouched.set_cookies == []
    # a read with no cookie still makes the response depend on the Cookie header
    assert call(make_app(signed_cart_sessions(), read(Cart))).headers("vary") == ["Cookie"]
    # set without reading (a client-side value replaces the old one unseen): no Vary
    assert call(make_app(signed_cart_sessions(), set_cart(["y"]))).headers("vary") == []


def test_vary_names_the_header_of_a_header_session() -> None:
    sessions = fs.Sessions()
    sessions.header(Login, "X-Session", unsigned=True)
    sessions.cookie(Cart, "CART", unsigned=True)
    got = call(make_app(sessions, lambda s: (s.get(Login), s.get(Cart))))
    assert got.headers("vary") == ["X-Session, Cookie"]


def test_cache_control_no_store_with_a_session_cookie_unless_the_app_set_one() -> None:
    response = call(make_app(signed_cart_sessions(), set_cart(["x"])))
    assert response.headers("cache-control") == ["no-store"]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        fs.get_sessions(scope).set(Cart(items=["x"]))
        headers = [(b"cache-control", b"private, max-age=60")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    own = call(fs.SessionMiddleware(app, signed_cart_sessions()))
    assert own.headers("cache-control") == ["private, max-age=60"]
    assert len(own.set_cookies) == 1
    # a clearing cookie counts too
    cookie = cookie_for(signed_cart_sessions, Cart(items=["x"]), "CART")
    cleared = call(
        make_app(signed_cart_sessions(), lambda s: s.clear(Cart)),
        headers=[("cookie", f"CART={cookie}")],
    )
    assert cleared.headers("cache-control") == ["no-store"]


def test_secure_auto_follows_the_request_scheme() -> None:
    def factory() -> fs.Sessions:
        return signed_cart_sessions(secure="auto")

    https = call(make_app(factory(), set_cart(["x"])), scheme="https")
    http = call(make_app(factory(), set_cart(["x"])), scheme="http")
    assert "; Secure;" in https.set_cookies[0]
    assert "Secure" not in http.set_cookies[0]
    cookie = cookie_for(factory, Cart(items=["x"]), "CART")
    cleared = call(
        make_app(factory(), lambda s: s.clear(Cart)),
        headers=[("cookie", f"CART={cookie}")],
        scheme="https",
    )
    assert "; Secure;" in cleared.set_cookies[0]
    with pytest.raises(fs.ConfigurationError, match='"auto"'):
        signed_cart_sessions(secure="sometimes")
    signed_cart_sessions(secure="auto", same_site="None")  # auto satisfies SameSite=None


@pytest.mark.parametrize(
    ("name", "options", "ok"),
    [
        ("__Host-S", {"secure": True}, True),
        ("__host-S", {"secure": True}, True),
        ("__Host-S", {}, False),
        ("__Host-S", {"secure": "auto"}, False),
        ("__Host-S", {"secure": True, "path": "/shop"}, False),
        ("__Host-S", {"secure": True, "domain": "example.com"}, False),
        ("__Secure-S", {"secure": True, "path": "/shop", "domain": "example.com"}, True),
        ("__SECURE-S", {}, False),
        ("__Secure-S", {"secure": "auto"}, False),
    ],
)
def test_cookie_prefix_rules(name: str, options: dict[str, Any], ok: bool) -> None:
    if ok:
        fs.Sessions().cookie(Cart, name, **options, unsigned=True)
    else:
        with pytest.raises(fs.ConfigurationError, match="needs secure=True"):
            fs.Sessions().cookie(Cart, name, **options, unsigned=True)


def test_memory_storage_expires_and_sweeps_a_bounded_span() -> None:
    now = [1000.0]
    storage = fs.MemoryStorage(clock=lambda: now[0])
    for i in range(3000):
        storage.write(f"old{i}", "x", 10)
    now[0] += 11  # all of them have expired
    storage.write("fresh", "y", 100)
    assert storage.read("old5") is None and storage.read("fresh") == "y"
    before = len(storage)
    for i in range(1024):  # the next sweep drops expired entries from the front
        storage.write(f"new{i}", "z", 100)
    assert len(storage) < before + 1024
    assert storage.gc() > 0  # the rest go with gc()
    assert all(storage.read(f"old{i}") is None for i in range(3000))
    assert len(storage) == 1 + 1024
