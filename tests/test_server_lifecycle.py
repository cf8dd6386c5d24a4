"""The lifecycle of server-side sessions (DESIGN "Lifecycle"): idle and absolute
timeouts kept in the stored record, renewal by a touch of the entry, per-value max_age,
the per-owner index (principal, sessions_of, invalidate_all) and "logout wins", for
MemoryStorage, DirectoryStorage and RedisStorage, through the real middleware."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest

import ferrosession as fs
from _driver import call, http_environ
from redis_servers import RedisServer


@dataclass(frozen=True)
class Login:
    user: str
    n: int = 0


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Counting:
    """Wraps a storage and counts the calls the middleware makes (a plain storage
    with exactly the methods of the wrapped one)."""

    def __init__(self, inner: Any, methods: tuple[str, ...]) -> None:
        self.inner = inner
        self.calls: list[str] = []
        for m in methods:
            setattr(self, m, self._counted(m))

    def _counted(self, method: str) -> Callable[..., Any]:
        target = getattr(self.inner, method)

        def run(*args: Any) -> Any:
            self.calls.append(method)
            return target(*args)

        return run

    def take(self) -> list[str]:
        calls, self.calls = self.calls, []
        return calls


FULL = (
    "read",
    "write",
    "invalidate",
    "create",
    "update",
    "touch",
    "read_ttl",
    "index_add",
    "index_remove",
    "index_list",
)
BASIC = ("read", "write", "invalidate")


# -- a WSGI app whose paths drive the session --------------------------------------------
def wsgi_app(sessions: fs.Sessions, hook: Optional[Callable[[str], None]] = None) -> Any:
    def inner(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        c = fs.get_sessions(environ)
        path = environ["PATH_INFO"]
        out: Any = None
        if path == "/login":
            user = environ.get("QUERY_STRING") or "ann"
            c.set(Login(user))
        elif path == "/remember":
            c.set(Login("ann"), max_age=30)
        elif path == "/read":
            v = c.get(Login)
            out = None if v is None else [v.user, v.n]
        elif path == "/update":
            v = c.get(Login)
            if hook is not None:
                hook(path)
            if v is not None:
                c.set(Login(v.user, v.n + 1))
        elif path == "/regenerate":
            c.get(Login)
            if hook is not None:
                hook(path)
            c.regenerate(Login)
        elif path == "/logout":
            c.clear(Login)
        elif path == "/devices":
            out = [
                [i.id_hash, i.created.timestamp(), i.last_seen.timestamp(), i.current]
                for i in c.sessions_of(Login, environ["QUERY_STRING"])
            ]
        elif path == "/everywhere":
            c.get(Login)
            c.invalidate_all(Login, environ["QUERY_STRING"], keep_current=True)
        elif path == "/everywhere-all":
            c.invalidate_all(Login, environ["QUERY_STRING"], keep_current=False)
        elif path == "/end":  # ?who:id_hash
            who, _, id_hash = environ["QUERY_STRING"].partition(":")
            c.invalidate_one(Login, who, id_hash)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(out).encode()]

    return fs.WSGISessionMiddleware(inner, sessions)


class Reply:
    def __init__(self, headers: list[tuple[str, str]], body: bytes) -> None:
        self.headers = headers
        self.body = json.loads(body)

    @property
    def set_cookies(self) -> list[str]:
        return [v for k, v in self.headers if k.lower() == "set-cookie"]

    def cookie(self, name: str = "S") -> Optional[str]:
        for line in self.set_cookies:
            k, _, v = line.split(";", 1)[0].partition("=")
            if k == name:
                return v or None
        return None


def get(app: Any, path: str, cookie: Optional[str] = None, query: str = "") -> Reply:
    cookies = [("cookie", f"S={cookie}")] if cookie is not None else []
    environ = http_environ(cookies, path=path, query=query)
    seen: list[tuple[str, str]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen.extend(headers)

    body = b"".join(app(environ, start_response))
    return Reply(seen, body)


def login(app: Any, user: str = "ann") -> str:
    cookie = get(app, "/login", query=user).cookie()
    assert cookie
    return cookie


# -- storages on one injected clock ------------------------------------------------------
@pytest.fixture(params=["memory", "directory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, Clock]]:
    """A storage with every optional method, and the clock it and the sessions share."""
    clock = Clock(time.time())
    if request.param == "memory":
        yield fs.MemoryStorage(clock=clock), clock
    else:
        storage = fs.DirectoryStorage(tmp_path / "s", cached=False)
        yield storage, Shifted(storage)


class Shifted(Clock):
    """A clock that moves a DirectoryStorage's clock along with it."""

    def __init__(self, storage: fs.DirectoryStorage) -> None:
        self.storage = storage
        self.base = time.time()
        super().__init__(self.base)

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name == "now":
            self.storage._set_clock_offset(value - self.base)


def registry(storage: Any, clock: Clock, **options: Any) -> fs.Sessions:
    s = fs.Sessions(clock=clock)
    s.cookie(Login, "S", storage, **options)
    return s


def test_idle_timeout_ends_a_stored_session(store: tuple[Any, Clock]) -> None:
    storage, clock = store
    app = wsgi_app(registry(storage, clock, idle_timeout=60, refresh="on_change"))
    cookie = login(app)
    clock.now += 60
    assert get(app, "/read", cookie).body == ["ann", 0]
    clock.now += 61  # refresh on_change: reading does not renew
    gone = get(app, "/read", cookie)
    assert gone.body is None
    assert gone.set_cookies and gone.cookie() is None  # the browser's cookie is cleared


def test_renewal_is_a_touch_at_most_once_per_interval(store: tuple[Any, Clock]) -> None:
    storage, clock = store
    counted = Counting(storage, FULL)
    app = wsgi_app(registry(counted, clock, idle_timeout=60, refresh=20))
    cookie = login(app)
    assert counted.take() == ["create"]
    clock.now += 10
    quiet = get(app, "/read", cookie)
    assert quiet.body == ["ann", 0] and quiet.set_cookies == []
    assert counted.take() == ["read_ttl"]  # one read, no write, no touch
    clock.now += 15  # 25 s since the last use: due
    renewed = get(app, "/read", cookie)
    assert renewed.body == ["ann", 0] and renewed.set_cookies == []  # no Set-Cookie
    assert counted.take() == ["read_ttl", "touch"]  # a touch, not a write
    clock.now += 10
    assert get(app, "/read", cookie).body == ["ann", 0]
    assert counted.take() == ["read_ttl"]  # renewed 10 s ago: nothing to do
    clock.now += 45  # 80 s after the login's last_seen, 55 s after the touch: alive
    assert get(app, "/read", cookie).body == ["ann", 0]
    assert counted.take() == ["read_ttl", "touch"]
    clock.now += 61
    assert get(app, "/read", cookie).body is None


def test_a_storage_that_cannot_touch_gets_the_record_again(store: tuple[Any, Clock]) -> None:
    storage, clock = store
    counted = Counting(storage, BASIC)
    app = wsgi_app(registry(counted, clock, idle_timeout=60, refresh=20))
    cookie = login(app)
    assert counted.take() == ["write"]
    clock.now += 25
    renewed = get(app, "/read", cookie)
    assert renewed.body == ["ann", 0] and renewed.set_cookies == []
    assert counted.take() == ["read", "write"]  # once per interval
    clock.now += 5
    get(app, "/read", cookie)
    assert counted.take() == ["read"]
    clock.now += 50  # 55 s after the rewrite
    assert get(app, "/read", cookie).body == ["ann", 0]


def test_absolute_timeout_and_the_cookie_lifetime(store: tuple[Any, Clock]) -> None:
    storage, clock = store
    app = wsgi_app(registry(storage, clock, idle_timeout=60, absolute_timeout=100, max_age=3600))
    first = get(app, "/login")
    cookie = first.cookie()
    assert cookie
    # idleness is the server's to judge; the cookie lives until the absolute end
    assert "Max-Age=100" in first.set_cookies[0]
    for _ in range(4):
        clock.now += 25
        assert get(app, "/read", cookie).body == ["ann", 0]
    clock.now += 1  # 101 s after the login, active all along
    assert get(app, "/read", cookie).body is None


def test_set_keeps_created_and_regenerate_keeps_it_too(store: tuple[Any, Clock]) -> None:
    storage, clock = store
    app = wsgi_app(registry(storage, clock, absolute_timeout=100))
    cookie = login(app)
    clock.now += 50
    assert get(app, "/update", cookie).set_cookies
    clock.now += 20
    moved = get(app, "/regenerate", cookie).cookie()
    assert moved and moved != cookie
    assert get(app, "/read", cookie).body is None  # the old id is gone
    clock.now += 30
    assert get(app, "/read", moved).body == ["ann", 1]
    clock.now += 1
    assert get(app, "/read", moved).body is None  # 101 s after the first login


def test_per_value_max_age_is_enforced_server_side(store: tuple[Any, Clock]) -> None:
    storage, clock = store
    app = wsgi_app(registry(storage, clock, idle_timeout=60, refresh=10))
    first = get(app, "/remember")
    cookie = first.cookie()
    assert cookie and "Max-Age=30" in first.set_cookies[0]
    clock.now += 20
    assert get(app, "/read", cookie).body == ["ann", 0]
    assert get(app, "/update", cookie).set_cookies  # a later set keeps the deadline
    clock.now += 11
    assert get(app, "/read", cookie).body is None


def test_records_without_clocks_are_absent_once_timeouts_are_on(
    store: tuple[Any, Clock],
) -> None:
    storage, clock = store
    before = wsgi_app(registry(storage, clock))
    cookie = login(before)
    after = wsgi_app(registry(storage, clock, idle_timeout=60))
    assert get(after, "/read", cookie).body is None


# -- logout wins ---------------------------------------------------------------------------
def test_an_update_racing_a_logout_is_dropped(store: tuple[Any, Clock]) -> None:
    storage, clock = store
    s = registry(storage, clock, idle_timeout=600)
    cookie: list[str] = []
    # the logout lands while the update's handler runs (after it read the session)
    app = wsgi_app(s, hook=lambda path: get(app, "/logout", cookie[0]))
    cookie.append(login(app))
    racing = get(app, "/update", cookie[0])
    assert racing.set_cookies == []  # nothing sent: the entry it would update is gone
    assert get(app, "/read", cookie[0]).body is None


def test_a_regenerate_racing_a_logout_mints_nothing(store: tuple[Any, Clock]) -> None:
    storage, clock = store
    s = registry(storage, clock)
    cookie: list[str] = []
    app = wsgi_app(s, hook=lambda path: get(app, "/logout", cookie[0]))
    cookie.append(login(app))
    racing = get(app, "/regenerate", cookie[0])
    assert racing.set_cookies == []
    assert get(app, "/read", cookie[0]).body is None
    assert len(getattr(storage, "_data", {None: 1})) in (0, 1)  # nothing new stored


def test_a_login_that_sets_then_regenerates_stores_once(store: tuple[Any, Clock]) -> None:
    """The usual login (set, then regenerate) on a new session: the id minted by set was
    never stored, so nothing is deleted; one create."""
    storage, clock = store
    counted = Counting(storage, FULL)
    s = registry(counted, clock)

    def inner(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        c = fs.get_sessions(environ)
        c.set(Login("ann"))
        c.regenerate(Login)
        start_response("200 OK", [])
        return [b"null"]

    cookie = get(fs.WSGISessionMiddleware(inner, s), "/").cookie()
    assert cookie and counted.take() == ["create"]
    assert get(wsgi_app(s), "/read", cookie).body == ["ann", 0]
    counted.take()
    # logged in already: the stored entry moves (deleted, then the new one created)
    again = get(fs.WSGISessionMiddleware(inner, s), "/", cookie).cookie()
    assert again and again != cookie
    assert counted.take() == ["read", "invalidate", "create"]
    assert get(wsgi_app(s), "/read", cookie).body is None


def test_without_create_and_update_a_write_is_best_effort(store: tuple[Any, Clock]) -> None:
    storage, clock = store
    counted = Counting(storage, BASIC)
    cookie: list[str] = []
    app = wsgi_app(registry(counted, clock), hook=lambda path: get(app, "/logout", cookie[0]))
    cookie.append(login(app))
    get(app, "/update", cookie[0])
    # documented: a storage without update() cannot tell, so the write lands
    assert get(app, "/read", cookie[0]).body == ["ann", 1]


# -- the per-owner index -----------------------------------------------------------------
def owned(storage: Any, clock: Clock, **options: Any) -> Any:
    return wsgi_app(registry(storage, clock, principal=lambda v: v.user, **options))


def test_sessions_of_lists_an_owners_live_sessions(store: tuple[Any, Clock]) -> None:
    storage, clock = store
    app = owned(storage, clock, idle_timeout=600)
    start = clock.now
    phone = login(app, "ann")
    clock.now += 5
    laptop = login(app, "ann")
    login(app, "bob")
    listed = get(app, "/devices", laptop, query="ann").body
    assert len(listed) == 2
    assert sorted(row[1] for row in listed) == [int(start), int(start) + 5]
    assert [row[3] for row in listed].count(True) == 1  # the asking session is marked
    hashes = {row[0] for row in listed}
    assert all(len(h) == 43 for h in hashes)
    assert phone not in hashes and laptop not in hashes  # hashes, never the ids
    assert len(get(app, "/devices", phone, query="bob").body) == 1
    assert get(app, "/devices", phone, query="carol").body == []
    # a logout and an expiry leave the list
    get(app, "/logout", phone)
    assert len(get(app, "/devices", laptop, query="ann").body) == 1
    clock.now += 601
    assert get(app, "/devices", None, query="ann").body == []


def test_last_seen_follows_touches(store: tuple[Any, Clock]) -> None:
    storage, clock = store
    app = owned(storage, clock, idle_timeout=600, refresh=60)
    start = int(clock.now)
    cookie = login(app)
    clock.now += 100
    get(app, "/read", cookie)  # renewed by a touch
    clock.now += 10
    (row,) = get(app, "/devices", None, query="ann").body
    assert row[1] == start
    assert start + 99 <= row[2] <= start + 100


def test_invalidate_all_keeps_the_current_session_or_not(store: tuple[Any, Clock]) -> None:
    storage, clock = store
    app = owned(storage, clock)
    a, b, c = login(app), login(app), login(app)
    bob = login(app, "bob")
    get(app, "/everywhere", b, query="ann")
    assert get(app, "/read", a).body is None
    assert get(app, "/read", c).body is None
    assert get(app, "/read", b).body == ["ann", 0]
    assert get(app, "/read", bob).body == ["bob", 0]
    assert len(get(app, "/devices", b, query="ann").body) == 1
    get(app, "/everywhere-all", b, query="ann")
    assert get(app, "/read", b).body is None
    assert get(app, "/devices", None, query="ann").body == []


def test_invalidate_one_ends_the_listed_session_and_no_other(store: tuple[Any, Clock]) -> None:
    storage, clock = store
    check_invalidate_one(owned(storage, clock))


def check_invalidate_one(app: Any) -> None:
    """Ann on three devices, Bob on one: ending one of Ann's by its id hash ends it
    alone; Bob's hash, or no session's, ends nothing; her own is a logout."""
    phone, laptop, tablet = login(app), login(app), login(app)
    bob = login(app, "bob")
    rows = get(app, "/devices", laptop, query="ann").body
    (phone_hash,) = [r[0] for r in rows if r[0] not in _hashes_of(app, laptop, tablet)]
    (bob_hash,) = [r[0] for r in get(app, "/devices", bob, query="bob").body]
    # from the laptop: end the phone's session; the others stay
    reply = get(app, "/end", laptop, query=f"ann:{phone_hash}")
    assert reply.set_cookies == []
    assert get(app, "/read", phone).body is None
    assert get(app, "/read", laptop).body == ["ann", 0]
    assert get(app, "/read", tablet).body == ["ann", 0]
    assert len(get(app, "/devices", laptop, query="ann").body) == 2
    # another owner's session, or a hash that is no session: nothing ends
    get(app, "/end", laptop, query=f"ann:{bob_hash}")
    get(app, "/end", laptop, query="ann:" + "A" * 43)
    assert get(app, "/read", bob).body == ["bob", 0]
    assert len(get(app, "/devices", laptop, query="ann").body) == 2
    # the asking session's own hash: a logout of it (its cookie is cleared)
    (own,) = [r[0] for r in get(app, "/devices", tablet, query="ann").body if r[3]]
    reply = get(app, "/end", tablet, query=f"ann:{own}")
    assert reply.cookie() is None and reply.set_cookies  # an expiring Set-Cookie
    assert get(app, "/read", tablet).body is None
    assert get(app, "/read", laptop).body == ["ann", 0]


def _hashes_of(app: Any, *cookies: str) -> set[str]:
    """The id hashes of the sessions behind ``cookies`` (each marks itself current)."""
    out = set()
    for cookie in cookies:
        (row,) = [r for r in get(app, "/devices", cookie, query="ann").body if r[3]]
        out.add(row[0])
    return out


def test_a_change_of_owner_moves_the_session_in_the_index(tmp_path: Path) -> None:
    clock = Clock()
    storage = fs.MemoryStorage(clock=clock)
    s = registry(storage, clock, principal=lambda v: v.user)

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        c = fs.get_sessions(scope)
        c.set(Login("bob"))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = wsgi_app(s)
    cookie = login(app, "ann")
    asgi = fs.SessionMiddleware(inner, s)
    call(asgi, headers=[("cookie", f"S={cookie}")])
    assert get(app, "/devices", None, query="ann").body == []
    assert len(get(app, "/devices", None, query="bob").body) == 1


def test_principal_configuration_errors() -> None:
    with pytest.raises(fs.ConfigurationError, match="server-side"):
        fs.Sessions().cookie(
            Login,
            "S",
            principal=lambda v: v.user,
            transformers=[fs.MessageAuthentication(bytes(32))],
        )

    class Basic:
        def read(self, key: str) -> Optional[str]:
            return None

        def write(self, key: str, value: str, ttl: int) -> None:
            pass

        def invalidate(self, key: str) -> None:
            pass

    with pytest.raises(fs.ConfigurationError, match="index_add, index_remove, index_list"):
        fs.Sessions().cookie(Login, "S", Basic(), principal=lambda v: v.user)
    s = fs.Sessions()
    s.cookie(Login, "S", fs.MemoryStorage())
    app = wsgi_app(s)
    with pytest.raises(fs.ConfigurationError, match="without principal"):
        get(app, "/devices", None, query="ann")


def test_created_and_last_seen_are_utc_datetimes() -> None:
    clock = Clock(1_700_000_000.0)
    storage = fs.MemoryStorage(clock=clock)
    s = registry(storage, clock, principal=lambda v: v.user)
    seen: list[fs.SessionInfo] = []

    def inner(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        c = fs.get_sessions(environ)
        if environ["PATH_INFO"] == "/login":
            c.set(Login("ann"))
        else:
            seen.extend(c.sessions_of(Login, "ann"))
        start_response("200 OK", [])
        return [b"null"]

    app = fs.WSGISessionMiddleware(inner, s)
    get(app, "/login")
    get(app, "/list")
    (info,) = seen
    assert info.created == datetime.fromtimestamp(1_700_000_000, timezone.utc)
    assert info.last_seen == info.created and info.current is False


# -- RedisStorage: real time, short lifetimes -----------------------------------------------
@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    node = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield node
    node.stop()


def test_redis_idle_timeout_touch_and_index(redis_server: RedisServer) -> None:
    storage = fs.RedisStorage(redis_server.url, prefix=f"lc{time.time_ns()}:")
    s = fs.Sessions()
    s.cookie(Login, "S", storage, idle_timeout=2, refresh=1, principal=lambda v: v.user)
    app = wsgi_app(s)
    cookie = login(app)
    for _ in range(4):  # active for ~5 s, more than idle_timeout: kept by touches
        time.sleep(1.25)
        assert get(app, "/read", cookie).body == ["ann", 0]
    listed = get(app, "/devices", None, query="ann").body
    assert len(listed) == 1 and listed[0][2] >= listed[0][1] + 3
    time.sleep(3.3)  # idle_timeout, and the second by which the entry outlives it
    assert get(app, "/read", cookie).body is None
    assert get(app, "/devices", None, query="ann").body == []
    storage.close()


def test_redis_invalidate_one(redis_server: RedisServer) -> None:
    storage = fs.RedisStorage(redis_server.url, prefix=f"io{time.time_ns()}:")
    s = fs.Sessions()
    s.cookie(Login, "S", storage, principal=lambda v: v.user)
    check_invalidate_one(wsgi_app(s))
    storage.close()


def test_redis_logout_wins(redis_server: RedisServer) -> None:
    storage = fs.RedisStorage(redis_server.url, prefix=f"lw{time.time_ns()}:")
    s = fs.Sessions()
    s.cookie(Login, "S", storage)
    cookie: list[str] = []
    app = wsgi_app(s, hook=lambda path: get(app, "/logout", cookie[0]))
    cookie.append(login(app))
    assert get(app, "/update", cookie[0]).set_cookies == []
    assert get(app, "/read", cookie[0]).body is None
    cookie[0] = login(app)
    assert get(app, "/regenerate", cookie[0]).set_cookies == []
    assert get(app, "/read", cookie[0]).body is None
    storage.close()


# -- ASGI: the async storage methods --------------------------------------------------------
def asgi_app(sessions: fs.Sessions) -> Any:
    """The ASGI twin of :func:`wsgi_app`; ``/update`` lets a logout land mid-request."""

    async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
        c = fs.get_sessions(scope)
        path = scope["path"]
        query = scope["query_string"].decode()
        out: Any = None
        if path == "/login":
            c.set(Login(query or "ann"))
        elif path == "/read":
            v = c.get(Login)
            out = None if v is None else [v.user, v.n]
        elif path == "/update":
            v = c.get(Login)
            cookie = dict(scope["headers"])[b"cookie"].decode()[2:]
            await acall(app, "/logout", cookie)
            if v is not None:
                c.set(Login(v.user, v.n + 1))
        elif path == "/regenerate":
            c.get(Login)
            cookie = dict(scope["headers"])[b"cookie"].decode()[2:]
            await acall(app, "/logout", cookie)
            c.regenerate(Login)
        elif path == "/logout":
            c.clear(Login)
        elif path == "/devices":
            out = [[i.id_hash, i.current] for i in await c.asessions_of(Login, query)]
        elif path == "/everywhere":
            c.get(Login)
            c.invalidate_all(Login, query)
        elif path == "/end":  # ?who:id_hash
            who, _, id_hash = query.partition(":")
            c.invalidate_one(Login, who, id_hash)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": json.dumps(out).encode()})

    app = fs.SessionMiddleware(inner, sessions)
    return app


async def acall(app: Any, path: str, cookie: Optional[str] = None, query: str = "") -> Reply:
    headers = [] if cookie is None else [(b"cookie", f"S={cookie}".encode())]
    scope = {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "query_string": query.encode(),
        "headers": headers,
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    raw = sent[0].get("headers", [])
    return Reply([(k.decode(), v.decode()) for k, v in raw], sent[1]["body"])


def test_asgi_with_the_async_redis_methods(redis_server: RedisServer) -> None:
    import asyncio

    storage = fs.RedisStorage(redis_server.url, prefix=f"as{time.time_ns()}:")
    s = fs.Sessions()
    s.cookie(Login, "S", storage, idle_timeout=600, refresh=1, principal=lambda v: v.user)
    app = asgi_app(s)

    async def scenario() -> None:
        first = (await acall(app, "/login")).cookie()
        second = (await acall(app, "/login")).cookie()
        assert first and second
        listed = (await acall(app, "/devices", second, query="ann")).body
        assert sorted(row[1] for row in listed) == [False, True]
        await asyncio.sleep(1.1)
        renewed = await acall(app, "/read", first)  # due: a touch, no Set-Cookie
        assert renewed.body == ["ann", 0] and renewed.set_cookies == []
        # one device ended from the other, through the async index and invalidate
        extra = (await acall(app, "/login")).cookie()
        listed = (await acall(app, "/devices", extra, query="ann")).body
        assert len(listed) == 3
        others = [row[0] for row in listed if not row[1]]
        own = [row[0] for row in listed if row[1]]
        keep = (await acall(app, "/devices", first, query="ann")).body
        (first_hash,) = [row[0] for row in keep if row[1]]
        (second_hash,) = [h for h in others if h != first_hash]
        await acall(app, "/end", extra, query=f"ann:{second_hash}")
        assert (await acall(app, "/read", second)).body is None
        assert (await acall(app, "/read", first)).body == ["ann", 0]
        ended = await acall(app, "/end", extra, query=f"ann:{own[0]}")
        assert ended.set_cookies and ended.cookie() is None
        assert (await acall(app, "/read", extra)).body is None
        second = (await acall(app, "/login")).cookie()
        assert second
        await acall(app, "/everywhere", second, query="ann")
        assert (await acall(app, "/read", first)).body is None
        assert (await acall(app, "/read", second)).body == ["ann", 0]
        # logout wins, with the async create / update / invalidate
        raced = await acall(app, "/update", second)
        assert raced.set_cookies == []
        assert (await acall(app, "/read", second)).body is None
        third = (await acall(app, "/login")).cookie()
        assert (await acall(app, "/regenerate", third)).set_cookies == []
        assert (await acall(app, "/read", third)).body is None
        assert (await acall(app, "/devices", None, query="ann")).body == []
        await storage.aclose()

    asyncio.run(scenario())
    storage.close()
