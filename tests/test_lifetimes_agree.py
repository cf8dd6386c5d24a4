"""Lifetimes agree (issue 19): a cookie never outlives its server-side entry; the entry
lives until the session's own deadline (per-value ``max_age``, timeouts), else the
registration's ``max_age``, else 604800 s; ``max_age=None`` sends no Max-Age, with or
without timeouts. Checked per storage by comparing the Set-Cookie's Max-Age with what
the storage's ``read_ttl`` says of the entry. Also: ``set(value, max_age=...)`` on every
registration, and a client-side value that nothing authenticates is refused."""

import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
from werkzeug.test import Client

import ferrosession as fs
from postgres_server import PostgresServer
from redis_servers import RedisServer, require

KEY = b"k" * 32
DAY = 86_400
WEEK = 604_800


@dataclass(frozen=True)
class Login:
    user: str


def _app(sessions: fs.Sessions, handler: Callable[[fs.CurrentSessions], object]) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        out = handler(fs.get_sessions(environ))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [repr(out).encode()]

    return fs.WSGISessionMiddleware(app, sessions)


def _set_cookie(response: Any, name: str = "S") -> str:
    lines = [v for k, v in response.headers if k == "Set-Cookie" and v.startswith(name + "=")]
    assert len(lines) == 1, response.headers
    return lines[0]


def _max_age(line: str) -> Optional[int]:
    found = re.search(r"; Max-Age=(\d+)", line)
    assert ("Expires=" in line) == (found is not None), line
    return int(found.group(1)) if found else None


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require("redis-server")
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def postgres_dsn() -> Iterator[str]:
    cluster = PostgresServer().start()
    try:
        yield cluster.dsn
    finally:
        cluster.remove()


@pytest.fixture(params=["memory", "directory", "redis", "sqlite", "postgres"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "memory":
        yield fs.MemoryStorage()
        return
    if request.param == "directory":
        yield fs.DirectoryStorage(tmp_path / "sessions")
        return
    if request.param == "redis":
        store: Any = fs.RedisStorage(request.getfixturevalue("redis_url"))
    elif request.param == "sqlite":
        store = fs.SQLiteStorage(tmp_path / "sessions.db")
    else:
        table = f"lifetimes_{len(request.node.name)}_{abs(hash(request.node.name)) % 10**8}"
        store = fs.PostgresStorage(request.getfixturevalue("postgres_dsn"), table=table)
    try:
        yield store
    finally:
        store.close()


# (registration options, set() options, the cookie's Max-Age, the entry's lifetime)
CASES = [
    # the "remember me": a browser-session cookie unless the box is ticked
    ({"max_age": None, "absolute_timeout": 60 * DAY}, {"max_age": 30 * DAY}, 30 * DAY, 30 * DAY),
    ({"max_age": None, "absolute_timeout": 60 * DAY}, {}, None, 60 * DAY),
    # per-value max_age without any timeout
    ({}, {"max_age": 30 * DAY}, 30 * DAY, 30 * DAY),
    ({"max_age": None}, {"max_age": 3600}, 3600, 3600),
    ({"max_age": None}, {}, None, WEEK),
    ({"max_age": 2 * DAY}, {}, 2 * DAY, 2 * DAY),
    # the absolute end caps both
    ({"max_age": 30 * DAY, "absolute_timeout": 7 * DAY}, {}, 7 * DAY, 7 * DAY),
    ({"absolute_timeout": 7 * DAY}, {"max_age": 30 * DAY}, 7 * DAY, 7 * DAY),
    # the entry lives for the absolute lifetime; the cookie for the registration's max_age
    ({"max_age": DAY, "absolute_timeout": 7 * DAY}, {}, DAY, 7 * DAY),
]


@pytest.mark.parametrize(("options", "set_options", "cookie_age", "entry_age"), CASES)
def test_cookie_never_outlives_its_entry(
    storage: Any,
    options: dict[str, Any],
    set_options: dict[str, Any],
    cookie_age: Optional[int],
    entry_age: int,
) -> None:
    sessions = fs.Sessions()
    sessions.cookie(Login, "S", storage, **options)

    def login(s: fs.CurrentSessions) -> object:
        s.set(Login("alice"), **set_options)
        return s.session_id(Login)

    client = Client(_app(sessions, login), use_cookies=False)
    response = client.get("/")
    line = _set_cookie(response)
    sid = line.split(";")[0].split("=", 1)[1]
    got = storage.read_ttl(sessions.storage_key(Login, sid))
    assert got is not None
    left = got[1]
    assert entry_age - 3 <= left <= entry_age + 2  # + the record's second of slack
    age = _max_age(line)
    assert age == cookie_age
    if age is not None:  # written in the same second: whole seconds apart at most
        assert age <= left + 1
    # and the session reads back
    reader = Client(_app(sessions, lambda s: s.get(Login)), use_cookies=False)
    assert reader.get("/", headers={"Cookie": f"S={sid}"}).data == b"Login(user='alice')"


def test_idle_entry_lives_for_the_idle_timeout_and_the_cookie_for_max_age() -> None:
    storage = fs.MemoryStorage()
    sessions = fs.Sessions()
    sessions.cookie(Login, "S", storage, max_age=2 * DAY, idle_timeout=3600)
    response = Client(_app(sessions, lambda s: s.set(Login("alice")))).get("/")
    line = _set_cookie(response)
    sid = line.split(";")[0].split("=", 1)[1]
    got = storage.read_ttl(sessions.storage_key(Login, sid))
    assert got is not None and 3597 <= got[1] <= 3602  # renewed by a touch while used
    assert _max_age(line) == 2 * DAY


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _cookie_value(line: str) -> str:
    return line.split(";")[0].split("=", 1)[1]


@pytest.mark.parametrize(
    "transformer", [fs.MessageAuthentication(KEY), fs.Encrypt(KEY)], ids=["mac", "encrypt"]
)
def test_client_side_per_value_deadline_without_timeouts(transformer: Any) -> None:
    """The deadline travels inside the signed / encrypted value and is enforced by the
    server; neither a later set after a read nor a blind set extends it."""
    clock = Clock()
    sessions = fs.Sessions(clock=clock)
    sessions.cookie(Login, "S", transformers=[transformer])
    handlers: dict[str, Callable[[fs.CurrentSessions], object]] = {
        "/remember": lambda s: s.set(Login("alice"), max_age=100),
        "/read": lambda s: s.get(Login),
        "/rewrite": lambda s: s.set(Login(s.get(Login).user + "!")),  # type: ignore[union-attr]
        "/blind": lambda s: s.set(Login("bob")),
    }

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        out = handlers[environ["PATH_INFO"]](fs.get_sessions(environ))
        start_response("200 OK", [])
        return [repr(out).encode()]

    client = Client(fs.WSGISessionMiddleware(app, sessions), use_cookies=False)

    def call(path: str, cookie: str) -> Any:
        return client.get(path, headers={"Cookie": f"S={cookie}"} if cookie else {})

    line = _set_cookie(call("/remember", ""))
    assert _max_age(line) == 100
    cookie = _cookie_value(line)
    clock.now += 40
    assert call("/read", cookie).data == b"Login(user='alice')"
    line = _set_cookie(call("/rewrite", cookie))
    assert _max_age(line) == 60  # the deadline carried on, not renewed
    cookie = _cookie_value(line)
    line = _set_cookie(call("/blind", cookie))
    assert _max_age(line) == 60
    cookie = _cookie_value(line)
    clock.now += 59
    assert call("/read", cookie).data == b"Login(user='bob')"
    clock.now += 2
    assert call("/read", cookie).data == b"None"  # past the deadline: absent
    # a value without a deadline is read as before (wire format unchanged)
    line = _set_cookie(call("/blind", ""))
    assert _max_age(line) == WEEK
    assert "~1:" not in _cookie_value(line)


def test_server_side_per_value_deadline_without_timeouts() -> None:
    clock = Clock()
    storage = fs.MemoryStorage(clock=clock)
    sessions = fs.Sessions(clock=clock)
    sessions.cookie(Login, "S", storage)
    handlers: dict[str, Callable[[fs.CurrentSessions], object]] = {
        "/remember": lambda s: s.set(Login("alice"), max_age=100),
        "/read": lambda s: s.get(Login),
        "/rewrite": lambda s: s.set(Login("bob")),
    }

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        out = handlers[environ["PATH_INFO"]](fs.get_sessions(environ))
        start_response("200 OK", [])
        return [repr(out).encode()]

    client = Client(fs.WSGISessionMiddleware(app, sessions), use_cookies=False)
    line = _set_cookie(client.get("/remember"))
    assert _max_age(line) == 100
    sid = _cookie_value(line)
    cookie = {"Cookie": f"S={sid}"}
    clock.now += 50
    line = _set_cookie(client.get("/rewrite", headers=cookie))
    assert _max_age(line) == 50  # a later set does not extend it
    got = storage.read_ttl(sessions.storage_key(Login, sid))
    assert got is not None and 50 <= got[1] <= 52
    clock.now += 49
    assert client.get("/read", headers=cookie).data == b"Login(user='bob')"
    clock.now += 2
    assert client.get("/read", headers=cookie).data == b"None"


def test_an_unsigned_client_side_session_is_refused_and_cannot_be_forged() -> None:
    """The issue's forgery: LOGIN={"user":"admin"} taken back as a Login."""
    with pytest.raises(fs.ConfigurationError, match="MessageAuthentication") as error:
        fs.Sessions().cookie(Login, "LOGIN")
    assert "unsigned=True" in str(error.value) and "storage" in str(error.value)
    with pytest.raises(fs.ConfigurationError, match="forge"):
        fs.Sessions().header(Login, "X-Login")
    # an unkeyed Digest detects corruption, not forgery
    with pytest.raises(fs.ConfigurationError, match="forge"):
        fs.Sessions().cookie(Login, "LOGIN", transformers=[fs.Digest()])
    with pytest.raises(fs.ConfigurationError, match="client-side"):
        fs.Sessions().cookie(Login, "LOGIN", fs.MemoryStorage(), unsigned=True)

    forged = {"Cookie": "LOGIN=%7B%22user%22%3A%22admin%22%7D"}
    signed = fs.Sessions()
    signed.cookie(Login, "LOGIN", transformers=[fs.MessageAuthentication(KEY)])
    assert (
        Client(_app(signed, lambda s: s.get(Login)), use_cookies=False)
        .get("/", headers=forged)
        .data
        == b"None"
    )
    # asked for, an unsigned value is what the client sends
    plain = fs.Sessions()
    plain.cookie(Login, "LOGIN", unsigned=True)
    got = Client(_app(plain, lambda s: s.get(Login)), use_cookies=False).get("/", headers=forged)
    assert got.data == b"Login(user='admin')"


class Broken:
    """A custom serializer with a bug in its reader."""

    def serialize(self, value: Login) -> str:
        return value.user

    def deserialize(self, text: str) -> Login:
        raise KeyError("user")


class FailingStorage:
    def read(self, session_id: str) -> Optional[str]:
        raise ConnectionError("store is down")

    def write(self, session_id: str, value: str, ttl: int) -> None:
        raise ConnectionError("store is down")

    def invalidate(self, session_id: str) -> None:
        raise ConnectionError("store is down")


def test_rejections_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A custom serializer's or a storage's exception at WARNING, once per registration
    and cause; client garbage at DEBUG only."""
    sessions = fs.Sessions()
    sessions.cookie(Login, "S", transformers=[fs.MessageAuthentication(KEY)], serializer=Broken())
    sessions.cookie(dict, "D", FailingStorage())
    signed = fs.MessageAuthentication(KEY).transform_write("alice")
    client = Client(_app(sessions, lambda s: s.get(Login)), use_cookies=False)
    caplog.set_level(logging.DEBUG, logger="ferrosession")
    for _ in range(3):
        assert client.get("/", headers={"Cookie": f"S={signed}"}).data == b"None"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, caplog.text
    assert "'S'" in warnings[0].getMessage() and "KeyError" in warnings[0].getMessage()

    caplog.clear()
    for garbage in ("S=alice/00", "S=%ff%fe", "S=" + "x" * 5000):
        assert client.get("/", headers={"Cookie": garbage}).data == b"None"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text

    caplog.clear()
    reader = Client(_app(sessions, lambda s: s.get(dict)), use_cookies=False)
    for _ in range(3):
        with pytest.raises(fs.StorageError):
            reader.get("/", headers={"Cookie": "D=" + "a" * 64})
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, caplog.text
    assert "'D'" in warnings[0].getMessage() and "ConnectionError" in warnings[0].getMessage()
