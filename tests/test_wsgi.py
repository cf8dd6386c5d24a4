"""The session contract through WSGI: a real Flask app driven by Flask's test client,
and bare WSGI callables that use the environ form of ``get_sessions``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any, Optional

import flask
import pytest
from werkzeug.test import Client, EnvironBuilder

import ferrosession as fs
from _driver import KEY, signed, uri

WEEK = 604_800
EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"
HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Counter:
    n: int


@dataclass(frozen=True)
class Cart:
    items: list[str]


@dataclass(frozen=True)
class Login:
    user: str
    visits: int = 0


@dataclass(frozen=True)
class ApiToken:
    user: str


@dataclass(frozen=True)
class ApiKey:
    owner: str


# --- helpers ---------------------------------------------------------------------------


def set_cookies(resp: Any) -> list[str]:
    return list(resp.headers.getlist("Set-Cookie"))


def cookie_parts(line: str) -> tuple[str, str, list[str]]:
    """``NAME=value; attr; attr`` -> (NAME, value, [attrs])."""
    first, *attrs = line.split("; ")
    name, _, value = first.partition("=")
    return name, value, attrs


def check_expires(attr: str, seconds: int = WEEK) -> str:
    """Asserts ``Expires=<IMF-fixdate>`` about now + ``seconds``; returns the attribute."""
    assert attr.startswith("Expires="), attr
    text = attr[len("Expires=") :]
    assert re.fullmatch(
        r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} "
        r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT",
        text,
    ), text
    when = parsedate_to_datetime(text)
    assert format_datetime(when, usegmt=True) == text  # the weekday matches the date
    expected = datetime.now(timezone.utc) + timedelta(seconds=seconds)
    assert abs((when - expected).total_seconds()) <= 5, (when, expected)
    return attr


def default_line(name: str, value: str, line: str) -> None:
    """Asserts ``line`` is exactly the default Set-Cookie line for ``name=value``."""
    got_name, got_value, attrs = cookie_parts(line)
    assert (got_name, got_value) == (name, value)
    assert len(attrs) == 5, attrs
    check_expires(attrs[1])
    assert attrs == ["Max-Age=604800", attrs[1], "Path=/", "HttpOnly", "SameSite=Lax"]


def clear_line(name: str, attrs: str = "Path=/; HttpOnly; SameSite=Lax") -> str:
    return f"{name}=; Max-Age=0; Expires={EPOCH}; {attrs}"


def counter_cookie(n: int) -> str:
    return uri(signed(f'{{"n":{n}}}'))


# --- the Flask app -----------------------------------------------------------------------


def show(value: Optional[object]) -> str:
    return "none" if value is None else repr(value)


def make_app() -> tuple[flask.Flask, fs.MemoryStorage, fs.MemoryStorage]:
    storage = fs.MemoryStorage()
    api_storage = fs.MemoryStorage()
    sessions = fs.Sessions()
    sessions.cookie(Counter, "COUNTER", transformers=[fs.MessageAuthentication(KEY)])
    sessions.cookie(Cart, "CART", path="/shop", transformers=[fs.MessageAuthentication(KEY)])
    sessions.cookie(Login, "SESSION_ID", storage=storage)
    sessions.header(ApiToken, "X-Session", transformers=[fs.MessageAuthentication(KEY)])
    sessions.header(ApiKey, "X-Api-Session", storage=api_storage)

    app = flask.Flask(__name__)
    app.testing = True
    app.wsgi_app = fs.WSGISessionMiddleware(app.wsgi_app, sessions)  # type: ignore[method-assign]

    def s() -> fs.CurrentSessions:
        return fs.get_sessions(flask.request)

    @app.get("/nothing")
    def nothing() -> str:
        return "ok"

    @app.get("/counter")
    def counter_get() -> str:
        return show(s().get(Counter))

    @app.get("/counter/by-name")
    def counter_by_name() -> str:
        return show(s().get("COUNTER"))

    @app.get("/counter/set/<int:n>")
    def counter_set(n: int) -> str:
        s().set(Counter(n))
        return show(s().get(Counter))

    @app.get("/counter/set-twice")
    def counter_set_twice() -> str:
        s().set(Counter(1))
        s().set(Counter(2))
        return show(s().get(Counter))

    @app.get("/counter/clear")
    def counter_clear() -> str:
        s().clear(Counter)
        return show(s().get(Counter))

    @app.get("/counter/session-id")
    def counter_session_id() -> str:
        try:
            s().session_id(Counter)
        except fs.ConfigurationError:
            return "ConfigurationError"
        return "no error"

    @app.get("/shop/cart")
    def cart_get() -> str:
        return show(s().get(Cart))

    @app.get("/shop/add/<item>")
    def cart_add(item: str) -> str:
        cart = s().get(Cart)
        s().set(Cart(items=[*(cart.items if cart else []), item]))
        return show(s().get(Cart))

    @app.get("/cart-at-root")
    def cart_at_root() -> str:
        return f"{show(s().get(Cart))}|{flask.request.headers.get('Cookie', '')}"

    @app.get("/both/set")
    def both_set() -> str:
        s().set(Counter(7))
        s().set(Login(user="ann", visits=1))
        return "ok"

    @app.get("/both")
    def both_get() -> str:
        return f"{show(s().get(Counter))}|{show(s().get(Login))}"

    @app.get("/login/<user>")
    def login(user: str) -> str:
        s().set(Login(user=user, visits=1))
        return str(s().session_id(Login))

    @app.get("/me")
    def me() -> str:
        login = s().get(Login)
        if login is None:
            return f"none|{s().session_id(Login)}"
        return f"{login.user}:{login.visits}|{s().session_id(Login)}"

    @app.get("/visit")
    def visit() -> str:
        login = s().get(Login)
        assert login is not None
        s().set(Login(user=login.user, visits=login.visits + 1))
        return f"{login.user}:{login.visits + 1}|{s().session_id(Login)}"

    @app.get("/regenerate")
    def regenerate() -> str:
        old = s().session_id(Login)
        s().regenerate(Login)
        return f"{old}|{s().session_id(Login)}|{show(s().get(Login))}"

    @app.get("/logout")
    def logout() -> str:
        s().clear(Login)
        return f"{show(s().get(Login))}|{s().session_id(Login)}"

    @app.get("/kick/<sid>")
    def kick(sid: str) -> str:
        s().invalidate(Login, sid)
        return "kicked"

    @app.get("/api/login/<user>")
    def api_login(user: str) -> str:
        s().set(ApiToken(user=user))
        return "ok"

    @app.get("/api/me")
    def api_me() -> str:
        return show(s().get(ApiToken))

    @app.get("/api/logout")
    def api_logout() -> str:
        s().clear(ApiToken)
        return show(s().get(ApiToken))

    @app.get("/api-key/set/<owner>")
    def api_key_set(owner: str) -> str:
        s().set(ApiKey(owner=owner))
        return str(s().session_id(ApiKey))

    @app.get("/api-key")
    def api_key_get() -> str:
        return show(s().get(ApiKey))

    @app.get("/api-key/clear")
    def api_key_clear() -> str:
        s().clear(ApiKey)
        return "cleared"

    @app.get("/stream")
    def stream() -> flask.Response:
        current = s()

        def body() -> Any:
            yield "started;"
            for name, action in (
                ("set", lambda: current.set(Counter(99))),
                ("clear", lambda: current.clear(Counter)),
                ("regenerate", lambda: current.regenerate(Login)),
            ):
                try:
                    action()
                except fs.TooLateSessionSet as exc:
                    yield f"{name}:{type(exc).__name__}:{isinstance(exc, RuntimeError)};"
                else:
                    yield f"{name}:no error;"

        return flask.Response(flask.stream_with_context(body()), mimetype="text/plain")

    return app, storage, api_storage


@pytest.fixture
def env() -> tuple[flask.Flask, fs.MemoryStorage, fs.MemoryStorage]:
    return make_app()


@pytest.fixture
def app(env: tuple[flask.Flask, fs.MemoryStorage, fs.MemoryStorage]) -> flask.Flask:
    return env[0]


@pytest.fixture
def storage(env: tuple[flask.Flask, fs.MemoryStorage, fs.MemoryStorage]) -> fs.MemoryStorage:
    return env[1]


@pytest.fixture
def client(app: flask.Flask) -> Any:
    return app.test_client()


def jar_value(client: Any, name: str, path: str = "/") -> Optional[str]:
    cookie = client.get_cookie(name, path=path)
    return None if cookie is None else cookie.value


def login(app: flask.Flask, user: str = "john") -> tuple[Any, str]:
    """A fresh client logged in as ``user``; returns it and its session id."""
    c = app.test_client()
    r = c.get(f"/login/{user}")
    assert r.status_code == 200
    sid = r.get_data(as_text=True)
    assert HEX64.match(sid), sid
    assert jar_value(c, "SESSION_ID") == sid
    return c, sid


# --- the Set-Cookie line -----------------------------------------------------------------


def test_default_set_cookie_line(client: Any) -> None:
    r = client.get("/counter/set/1")
    assert r.status_code == 200
    assert r.get_data(as_text=True) == "Counter(n=1)"
    lines = set_cookies(r)
    assert len(lines) == 1
    default_line("COUNTER", counter_cookie(1), lines[0])
    assert "Secure" not in lines[0] and "Domain" not in lines[0]
    # The value goes back and reads as the typed session, by type and by name.
    assert client.get("/counter").get_data(as_text=True) == "Counter(n=1)"
    assert client.get("/counter/by-name").get_data(as_text=True) == "Counter(n=1)"


def test_non_default_attributes_on_set_and_clear() -> None:
    sessions = fs.Sessions()
    sessions.cookie(
        Counter, "C", path="/shop", domain="example.com", secure=True, same_site="Strict",
        max_age=3600, transformers=[fs.MessageAuthentication(KEY)],
    )  # fmt: skip
    app = flask.Flask(__name__)
    app.wsgi_app = fs.WSGISessionMiddleware(app.wsgi_app, sessions)  # type: ignore[method-assign]

    @app.get("/shop/set")
    def set_() -> str:
        fs.get_sessions(flask.request).set(Counter(3))
        return "ok"

    @app.get("/shop/clear")
    def clear() -> str:
        fs.get_sessions(flask.request).clear(Counter)
        return "ok"

    c = app.test_client(use_cookies=False)
    (line,) = set_cookies(c.get("/shop/set"))
    name, value, attrs = cookie_parts(line)
    assert (name, value) == ("C", counter_cookie(3))
    check_expires(attrs[1], 3600)
    assert attrs == [
        "Max-Age=3600", attrs[1], "Domain=example.com", "Path=/shop", "Secure", "HttpOnly",
        "SameSite=Strict",
    ]  # fmt: skip
    r = c.get("/shop/clear", headers={"Cookie": f"C={value}"})
    assert set_cookies(r) == [
        f"C=; Max-Age=0; Expires={EPOCH}; Domain=example.com; Path=/shop; Secure; HttpOnly; "
        "SameSite=Strict"
    ]


def test_no_set_cookie_when_nothing_was_set(client: Any) -> None:
    r = client.get("/nothing")
    assert (r.status_code, r.get_data(as_text=True)) == (200, "ok")
    assert set_cookies(r) == []
    r = client.get("/counter")  # read, nothing came in
    assert (r.get_data(as_text=True), set_cookies(r)) == ("none", [])


def test_no_set_cookie_when_only_read(client: Any) -> None:
    client.get("/counter/set/5")
    assert jar_value(client, "COUNTER") == counter_cookie(5)
    r = client.get("/counter")
    assert r.get_data(as_text=True) == "Counter(n=5)"
    assert set_cookies(r) == []
    r = client.get("/nothing")  # a cookie came in, the handler never touched it
    assert set_cookies(r) == []


def test_set_twice_sends_one_header_with_the_last_value(client: Any) -> None:
    r = client.get("/counter/set-twice")
    assert r.get_data(as_text=True) == "Counter(n=2)"
    lines = set_cookies(r)
    assert len(lines) == 1
    default_line("COUNTER", counter_cookie(2), lines[0])


def test_clear_with_a_cookie_sends_an_expiring_cookie(client: Any) -> None:
    client.get("/counter/set/4")
    r = client.get("/counter/clear")
    assert r.get_data(as_text=True) == "none"
    assert set_cookies(r) == [clear_line("COUNTER")]
    assert jar_value(client, "COUNTER") is None  # the client dropped it
    assert client.get("/counter").get_data(as_text=True) == "none"


def test_clear_without_a_cookie_sends_nothing(client: Any) -> None:
    r = client.get("/counter/clear")
    assert r.get_data(as_text=True) == "none"
    assert set_cookies(r) == []


def test_clear_of_an_invalid_cookie_still_expires_it(app: flask.Flask) -> None:
    c = app.test_client(use_cookies=False)
    r = c.get("/counter/clear", headers={"Cookie": "COUNTER=garbage"})
    assert set_cookies(r) == [clear_line("COUNTER")]


def test_tampered_cookie_is_absent_without_set_cookie(app: flask.Flask) -> None:
    c = app.test_client(use_cookies=False)
    good = counter_cookie(1)
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    for value in (bad, good[:-10], "", "x" * 100):
        r = c.get("/counter", headers={"Cookie": f"COUNTER={value}"})
        assert (r.status_code, r.get_data(as_text=True)) == (200, "none"), value
        assert set_cookies(r) == []
    r = c.get("/counter", headers={"Cookie": f"COUNTER={good}"})
    assert r.get_data(as_text=True) == "Counter(n=1)"


# --- path scoping, several sessions -----------------------------------------------------


def test_path_scoped_cookie(client: Any) -> None:
    r = client.get("/shop/add/apple")
    assert r.get_data(as_text=True) == "Cart(items=['apple'])"
    (line,) = set_cookies(r)
    name, value, attrs = cookie_parts(line)
    assert (name, value) == ("CART", uri(signed('{"items":["apple"]}')))
    check_expires(attrs[1])
    assert attrs == ["Max-Age=604800", attrs[1], "Path=/shop", "HttpOnly", "SameSite=Lax"]
    # Sent back under /shop ...
    r = client.get("/shop/add/pear")
    assert r.get_data(as_text=True) == "Cart(items=['apple', 'pear'])"
    assert client.get("/shop/cart").get_data(as_text=True) == "Cart(items=['apple', 'pear'])"
    # ... not to "/" (the client sends no Cookie header at all there).
    assert client.get("/cart-at-root").get_data(as_text=True) == "none|"
    # The jar holds it under its path only.
    assert jar_value(client, "CART") is None
    assert jar_value(client, "CART", path="/shop") == uri(signed('{"items":["apple","pear"]}'))


def test_two_session_types_send_two_set_cookie_headers(
    client: Any, storage: fs.MemoryStorage
) -> None:
    r = client.get("/both/set")
    lines = sorted(set_cookies(r))
    assert len(lines) == 2
    default_line("COUNTER", counter_cookie(7), lines[0])
    name, sid, _ = cookie_parts(lines[1])
    assert name == "SESSION_ID" and HEX64.match(sid)
    default_line("SESSION_ID", sid, lines[1])
    assert len(storage) == 1
    r = client.get("/both")
    assert r.get_data(as_text=True) == "Counter(n=7)|Login(user='ann', visits=1)"
    assert set_cookies(r) == []


# --- header transport --------------------------------------------------------------------


def test_header_transport_round_trip(app: flask.Flask) -> None:
    c = app.test_client(use_cookies=False)
    r = c.get("/api/login/bob")
    token = signed('{"user":"bob"}')
    assert r.headers.getlist("X-Session") == [token]  # raw encoding: the value as is
    assert set_cookies(r) == []
    r = c.get("/api/me", headers={"X-Session": token})
    assert r.get_data(as_text=True) == "ApiToken(user='bob')"
    assert r.headers.getlist("X-Session") == []  # only read: nothing sent back
    assert c.get("/api/me").get_data(as_text=True) == "none"
    r = c.get("/api/me", headers={"X-Session": token[:-1] + ("0" if token[-1] != "0" else "1")})
    assert (r.status_code, r.get_data(as_text=True)) == (200, "none")
    r = c.get("/api/logout", headers={"X-Session": token})
    assert r.get_data(as_text=True) == "none"
    assert (r.headers.getlist("X-Session"), set_cookies(r)) == ([], [])


def test_header_transport_server_side(
    env: tuple[flask.Flask, fs.MemoryStorage, fs.MemoryStorage],
) -> None:
    app, _, api_storage = env
    c = app.test_client(use_cookies=False)
    r = c.get("/api-key/set/eve")
    sid = r.get_data(as_text=True)
    assert HEX64.match(sid)
    assert r.headers.getlist("X-Api-Session") == [sid]
    assert len(api_storage) == 1
    r = c.get("/api-key", headers={"X-Api-Session": sid})
    assert r.get_data(as_text=True) == "ApiKey(owner='eve')"
    r = c.get("/api-key/clear", headers={"X-Api-Session": sid})
    assert (r.headers.getlist("X-Api-Session"), set_cookies(r)) == ([], [])
    assert len(api_storage) == 0
    r = c.get("/api-key", headers={"X-Api-Session": sid})
    assert (r.get_data(as_text=True), r.headers.getlist("X-Api-Session")) == ("none", [])


# --- server-side sessions ---------------------------------------------------------------


def test_server_side_cookie_carries_a_64_hex_id(
    app: flask.Flask, storage: fs.MemoryStorage
) -> None:
    c = app.test_client()
    r = c.get("/login/john")
    sid = r.get_data(as_text=True)
    assert HEX64.match(sid)
    (line,) = set_cookies(r)
    default_line("SESSION_ID", sid, line)
    assert len(storage) == 1
    r = c.get("/me")
    assert r.get_data(as_text=True) == f"john:1|{sid}"
    assert set_cookies(r) == []
    # An update keeps the id and sends it again.
    r = c.get("/visit")
    assert r.get_data(as_text=True) == f"john:2|{sid}"
    (line,) = set_cookies(r)
    default_line("SESSION_ID", sid, line)
    assert c.get("/me").get_data(as_text=True) == f"john:2|{sid}"
    assert len(storage) == 1


def test_session_id_is_none_without_a_session(client: Any) -> None:
    r = client.get("/me")
    assert (r.get_data(as_text=True), set_cookies(r)) == ("none|None", [])


def test_session_id_of_a_client_side_session_is_a_configuration_error(client: Any) -> None:
    assert client.get("/counter/session-id").get_data(as_text=True) == "ConfigurationError"


def test_two_logins_get_different_ids(app: flask.Flask) -> None:
    _, a = login(app, "john")
    _, b = login(app, "john")
    assert a != b


@pytest.mark.parametrize("chosen", ["a" * 64, "attacker-chosen-id"])
def test_unknown_id_is_absent_and_expired(
    app: flask.Flask, storage: fs.MemoryStorage, chosen: str
) -> None:
    c = app.test_client()
    c.set_cookie("SESSION_ID", chosen)
    r = c.get("/me")
    assert (r.status_code, r.get_data(as_text=True)) == (200, "none|None")
    assert set_cookies(r) == [clear_line("SESSION_ID")]
    assert len(storage) == 0


@pytest.mark.parametrize("chosen", ["a" * 64, "attacker-chosen-id"])
def test_unknown_id_then_set_mints_a_new_id(
    app: flask.Flask, storage: fs.MemoryStorage, chosen: str
) -> None:
    c = app.test_client()
    c.set_cookie("SESSION_ID", chosen)
    r = c.get("/login/mallory")
    sid = r.get_data(as_text=True)
    assert HEX64.match(sid) and sid != chosen
    (line,) = set_cookies(r)
    default_line("SESSION_ID", sid, line)
    assert len(storage) == 1
    # The client-chosen id still holds nothing.
    other = app.test_client(use_cookies=False)
    r = other.get("/me", headers={"Cookie": f"SESSION_ID={chosen}"})
    assert r.get_data(as_text=True) == "none|None"
    assert c.get("/me").get_data(as_text=True) == f"mallory:1|{sid}"


def test_regenerate_moves_the_session_to_a_new_id(
    app: flask.Flask, storage: fs.MemoryStorage
) -> None:
    c, old = login(app)
    r = c.get("/regenerate")
    before, new, value = r.get_data(as_text=True).split("|")
    assert before == old
    assert HEX64.match(new) and new != old
    assert value == "Login(user='john', visits=1)"
    (line,) = set_cookies(r)
    default_line("SESSION_ID", new, line)
    assert c.get("/me").get_data(as_text=True) == f"john:1|{new}"
    assert len(storage) == 1
    replay = app.test_client(use_cookies=False)
    r = replay.get("/me", headers={"Cookie": f"SESSION_ID={old}"})
    assert r.get_data(as_text=True) == "none|None"
    assert set_cookies(r) == [clear_line("SESSION_ID")]


def test_regenerate_without_a_session_sends_nothing(client: Any, storage: fs.MemoryStorage) -> None:
    r = client.get("/regenerate")
    assert r.get_data(as_text=True) == "None|None|none"
    assert set_cookies(r) == []
    assert len(storage) == 0


def test_clear_deletes_the_server_side_entry(app: flask.Flask, storage: fs.MemoryStorage) -> None:
    c, sid = login(app)
    r = c.get("/logout")
    assert r.get_data(as_text=True) == "none|None"
    assert set_cookies(r) == [clear_line("SESSION_ID")]
    assert jar_value(c, "SESSION_ID") is None
    assert len(storage) == 0
    replay = app.test_client(use_cookies=False)
    r = replay.get("/me", headers={"Cookie": f"SESSION_ID={sid}"})
    assert r.get_data(as_text=True) == "none|None"
    assert set_cookies(r) == [clear_line("SESSION_ID")]


def test_invalidate_logs_another_client_out(app: flask.Flask, storage: fs.MemoryStorage) -> None:
    a, sid_a = login(app, "john")
    b, sid_b = login(app, "john")
    assert len(storage) == 2
    r = a.get(f"/kick/{sid_b}")
    assert (r.get_data(as_text=True), set_cookies(r)) == ("kicked", [])
    assert len(storage) == 1
    r = b.get("/me")
    assert r.get_data(as_text=True) == "none|None"
    assert set_cookies(r) == [clear_line("SESSION_ID")]
    assert a.get("/me").get_data(as_text=True) == f"john:1|{sid_a}"


# --- errors ---------------------------------------------------------------------------


def test_set_inside_a_streamed_body_is_too_late(client: Any, storage: fs.MemoryStorage) -> None:
    client.get("/login/john")
    r = client.get("/stream")
    assert r.status_code == 200
    assert r.get_data(as_text=True) == (
        "started;set:TooLateSessionSet:True;clear:TooLateSessionSet:True;"
        "regenerate:TooLateSessionSet:True;"
    )
    assert set_cookies(r) == []
    assert client.get("/counter").get_data(as_text=True) == "none"
    assert len(storage) == 1


def test_set_none_is_a_type_error(env: Any) -> None:
    app = env[0]

    @app.get("/set-none")
    def set_none() -> str:
        try:
            fs.get_sessions(flask.request).set(None)
        except TypeError as exc:
            return type(exc).__name__
        return "no error"

    assert app.test_client().get("/set-none").get_data(as_text=True) == "TypeError"


def test_sessions_not_installed_without_the_middleware() -> None:
    app = flask.Flask(__name__)

    @app.get("/")
    def index() -> str:
        try:
            fs.get_sessions(flask.request)
        except fs.SessionsNotInstalled as exc:
            return f"{type(exc).__name__}:{isinstance(exc, RuntimeError)}"
        return "no error"

    r = app.test_client().get("/")
    assert r.get_data(as_text=True) == "SessionsNotInstalled:True"
    with pytest.raises(fs.SessionsNotInstalled):
        fs.get_sessions(EnvironBuilder(path="/").get_environ())


class AsyncStorage:
    async def read(self, session_id: str) -> Optional[str]:
        return None

    async def write(self, session_id: str, value: str, ttl: int) -> None:
        return None

    async def invalidate(self, session_id: str) -> None:
        return None


def test_async_storage_under_wsgi_is_a_configuration_error() -> None:
    sessions = fs.Sessions()
    sessions.cookie(Login, "ASYNC_SESSION", storage=AsyncStorage())
    app = flask.Flask(__name__)
    with pytest.raises(fs.ConfigurationError, match="ASYNC_SESSION") as info:
        fs.WSGISessionMiddleware(app.wsgi_app, sessions)
    assert isinstance(info.value, ValueError)


# --- bare WSGI callables (environ form) ---------------------------------------------------


def bare_sessions() -> fs.Sessions:
    sessions = fs.Sessions()
    sessions.cookie(Counter, "COUNTER", transformers=[fs.MessageAuthentication(KEY)])
    return sessions


def test_bare_wsgi_counter_with_environ() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        s = fs.get_sessions(environ)
        current = s.get(Counter)
        s.set(Counter(current.n + 1 if current else 1))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [show(s.get(Counter)).encode()]

    wrapped = fs.WSGISessionMiddleware(app, bare_sessions())
    c = Client(wrapped)
    for n in (1, 2, 3):
        r = c.get("/")
        assert r.get_data(as_text=True) == f"Counter(n={n})"
        (line,) = r.headers.getlist("Set-Cookie")
        default_line("COUNTER", counter_cookie(n), line)


def test_bare_wsgi_called_directly() -> None:
    seen: list[Any] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        s = fs.get_sessions(environ)
        seen.append(s.get(Counter))
        s.clear(Counter)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    wrapped = fs.WSGISessionMiddleware(app, bare_sessions())
    started: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started.append((status, list(headers)))
        return lambda data: None

    environ = EnvironBuilder(
        path="/", headers={"Cookie": f"COUNTER={counter_cookie(8)}"}
    ).get_environ()
    assert list(wrapped(environ, start_response)) == [b"ok"]
    assert seen == [Counter(8)]
    assert started == [
        (
            "200 OK",
            [
                ("Content-Type", "text/plain"),
                ("Set-Cookie", clear_line("COUNTER")),
                ("Vary", "Cookie"),
                ("Cache-Control", "no-store"),
            ],
        )
    ]


def test_bare_wsgi_set_after_start_response_is_too_late() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        s = fs.get_sessions(environ)
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"first"
        s.set(Counter(1))
        yield b"never"

    wrapped = fs.WSGISessionMiddleware(app, bare_sessions())
    started: list[Any] = []
    environ = EnvironBuilder(path="/").get_environ()
    body = iter(wrapped(environ, lambda status, headers, exc_info=None: started.append(headers)))
    assert next(body) == b"first"
    with pytest.raises(fs.TooLateSessionSet):
        next(body)
    assert started == [[("Content-Type", "text/plain")]]


# --- more of the contract through WSGI ------------------------------------------------


class CountingStorage:
    """A sync storage that counts its calls."""

    def __init__(self) -> None:
        self.inner = fs.MemoryStorage()
        self.calls: list[str] = []

    def read(self, session_id: str) -> Optional[str]:
        self.calls.append("read")
        return self.inner.read(session_id)

    def write(self, session_id: str, value: str, ttl: int) -> None:
        self.calls.append(f"write:{ttl}")
        self.inner.write(session_id, value, ttl)

    def invalidate(self, session_id: str) -> None:
        self.calls.append("invalidate")
        self.inner.invalidate(session_id)


def test_storage_read_at_most_once_and_only_with_a_cookie() -> None:
    store = CountingStorage()
    sessions = fs.Sessions()
    sessions.cookie(Login, "SID", storage=store)
    app = flask.Flask(__name__)
    app.wsgi_app = fs.WSGISessionMiddleware(app.wsgi_app, sessions)  # type: ignore[method-assign]

    @app.get("/touch")
    def touch() -> str:
        s = fs.get_sessions(flask.request)
        first = s.get(Login)
        s.get(Login)
        s.session_id(Login)
        s.set(Login(user="x", visits=(first.visits + 1) if first else 1))
        return show(s.get(Login))

    @app.get("/untouched")
    def untouched() -> str:
        return "ok"

    c = app.test_client()
    assert c.get("/touch").get_data(as_text=True) == "Login(user='x', visits=1)"
    assert store.calls == ["write:604800"]  # no cookie came in: no read
    store.calls.clear()
    assert c.get("/touch").get_data(as_text=True) == "Login(user='x', visits=2)"
    assert store.calls == ["read", "write:604800"]
    store.calls.clear()
    assert set_cookies(c.get("/untouched")) == []
    assert store.calls == []


def test_browser_session_cookie_and_clamped_max_age() -> None:
    sessions = fs.Sessions()
    sessions.cookie(Counter, "C", max_age=None, unsigned=True)
    sessions.cookie(Login, "L", max_age=10**12, same_site=None, unsigned=True)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        s = fs.get_sessions(environ)
        s.set(Counter(1))
        s.set(Login(user="u"))
        start_response("200 OK", [])
        return [b""]

    r = Client(fs.WSGISessionMiddleware(app, sessions)).get("/")
    c_line, l_line = r.headers.getlist("Set-Cookie")
    assert c_line == "C=" + uri('{"n":1}') + "; Path=/; HttpOnly; SameSite=Lax"
    name, value, attrs = cookie_parts(l_line)
    assert (name, value) == ("L", uri('{"user":"u","visits":0}'))
    check_expires(attrs[1], 2_147_483_647)
    assert attrs == ["Max-Age=2147483647", attrs[1], "Path=/", "HttpOnly"]


def test_session_too_large_at_set(client: Any) -> None:
    app = client.application

    @app.get("/shop/huge")
    def huge() -> str:
        try:
            fs.get_sessions(flask.request).set(Cart(items=["x" * 100] * 50))
        except fs.SessionTooLarge as exc:
            return f"{type(exc).__name__}:{isinstance(exc, ValueError)}"
        return "no error"

    r = client.get("/shop/huge")
    assert (r.get_data(as_text=True), set_cookies(r)) == ("SessionTooLarge:True", [])


def test_key_rotation_reissues_under_the_new_key() -> None:
    old_key, new_key = b"o" * 32, b"n" * 32
    sessions = fs.Sessions()
    sessions.cookie(
        Counter, "COUNTER", transformers=[fs.MessageAuthentication(new_key, old_keys=[old_key])]
    )

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        value = show(fs.get_sessions(environ).get(Counter))
        start_response("200 OK", [])
        return [value.encode()]

    c = Client(fs.WSGISessionMiddleware(app, sessions), use_cookies=False)
    old = uri(signed('{"n":3}', old_key))
    r = c.get("/", headers={"Cookie": f"COUNTER={old}"})
    assert r.get_data(as_text=True) == "Counter(n=3)"
    (line,) = r.headers.getlist("Set-Cookie")
    default_line("COUNTER", uri(signed('{"n":3}', new_key)), line)
    r = c.get("/", headers={"Cookie": "COUNTER=" + uri(signed('{"n":3}', new_key))})
    assert (r.get_data(as_text=True), r.headers.getlist("Set-Cookie")) == ("Counter(n=3)", [])
    r = c.get("/", headers={"Cookie": "COUNTER=" + uri(signed('{"n":3}', b"w" * 32))})
    assert (r.get_data(as_text=True), r.headers.getlist("Set-Cookie")) == ("none", [])


def test_duplicate_cookie_names_first_wins(app: flask.Flask) -> None:
    c = app.test_client(use_cookies=False)
    r = c.get(
        "/counter", headers={"Cookie": f"COUNTER={counter_cookie(1)}; COUNTER={counter_cookie(2)}"}
    )
    assert r.get_data(as_text=True) == "Counter(n=1)"


def test_client_side_regenerate_reissues_and_clear_then_set() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        s = fs.get_sessions(environ)
        if environ["PATH_INFO"] == "/regenerate":
            s.regenerate(Counter)
        else:  # clear, then set again: the set wins
            s.clear(Counter)
            s.set(Counter(5))
        start_response("200 OK", [])
        return [show(s.get(Counter)).encode()]

    c = Client(fs.WSGISessionMiddleware(app, bare_sessions()), use_cookies=False)
    r = c.get("/regenerate", headers={"Cookie": f"COUNTER={counter_cookie(4)}"})
    assert r.get_data(as_text=True) == "Counter(n=4)"
    (line,) = r.headers.getlist("Set-Cookie")
    default_line("COUNTER", counter_cookie(4), line)
    r = c.get("/regenerate")
    assert (r.get_data(as_text=True), r.headers.getlist("Set-Cookie")) == ("none", [])
    r = c.get("/clear-then-set", headers={"Cookie": f"COUNTER={counter_cookie(4)}"})
    assert r.get_data(as_text=True) == "Counter(n=5)"
    (line,) = r.headers.getlist("Set-Cookie")
    default_line("COUNTER", counter_cookie(5), line)


def test_second_start_response_with_exc_info_keeps_the_session_headers() -> None:
    storage = fs.MemoryStorage()
    sessions = fs.Sessions()
    sessions.cookie(Login, "SESSION_ID", storage=storage)
    calls: list[list[tuple[str, str]]] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        fs.get_sessions(environ).set(Login("ann"))
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise RuntimeError("failed before the body")
        except RuntimeError:
            import sys

            start_response("500 Internal Server Error", [("X-Error", "1")], sys.exc_info())
        return [b"error"]

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        calls.append(list(headers))
        return lambda data: None

    wrapped = fs.WSGISessionMiddleware(app, sessions)
    environ = EnvironBuilder(path="/").get_environ()
    assert list(wrapped(environ, start_response)) == [b"error"]
    assert len(calls) == 2
    for headers in calls:
        (cookie,) = [v for k, v in headers if k == "Set-Cookie"]
        assert re.match(r"SESSION_ID=[0-9a-f]{64}; ", cookie)
    assert len(storage) == 1


def test_wsgi_secure_auto_vary_and_cache_control() -> None:
    sessions = fs.Sessions()
    sessions.cookie(Login, "S", transformers=[fs.MessageAuthentication(KEY)], secure="auto")
    seen: list[list[tuple[str, str]]] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        s = fs.get_sessions(environ)
        s.get(Login)
        s.set(Login("ann"))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen.append(list(headers))
        return lambda data: None

    wrapped = fs.WSGISessionMiddleware(app, sessions)
    for scheme in ("https", "http"):
        environ = EnvironBuilder(path="/", base_url=f"{scheme}://localhost/").get_environ()
        list(wrapped(environ, start_response))
    https, http = (dict(h) for h in seen)
    assert "; Secure;" in https["Set-Cookie"] and "Secure" not in http["Set-Cookie"]
    assert https["Vary"] == "Cookie" and https["Cache-Control"] == "no-store"
