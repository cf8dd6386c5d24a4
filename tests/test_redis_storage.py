"""RedisStorage against real redis-server processes: one node, a 3-node cluster, and a
server that goes away mid-run."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import flask
import pytest
import redis
import redis.asyncio
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

import ferrosession as fs
from ferrosession.errors import ConfigurationError, StorageError
from ferrosession.storage.redis import RedisStorage
from redis_servers import RedisClusterNodes, RedisServer, free_port, require

MAX_AGE = 3600
TIMEOUT = 0.5  # socket timeouts of the test clients: a stopped server fails fast


@dataclass(frozen=True)
class Login:
    user: str
    visits: int = 0


# -- servers and raw clients -----------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    node = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield node
    node.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterNodes]:
    nodes = RedisClusterNodes(tmp_path_factory.mktemp("redis-cluster")).start()
    yield nodes
    nodes.stop()


@pytest.fixture
def raw(server: RedisServer) -> Iterator[redis.Redis]:
    """A plain client for looking at what the storage did; the database starts empty."""
    client = redis.Redis(port=server.port, decode_responses=True)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def raw_cluster(cluster: RedisClusterNodes) -> Iterator[RedisCluster]:
    client = RedisCluster(host="127.0.0.1", port=cluster.ports[0], decode_responses=True)
    client.flushall(target_nodes=RedisCluster.PRIMARIES)
    yield client
    client.close()


def sync_client(port: int, **options: Any) -> redis.Redis:
    """A client that fails fast when the server is gone (no retries, short timeouts)."""
    return redis.Redis(
        port=port,
        socket_timeout=TIMEOUT,
        socket_connect_timeout=TIMEOUT,
        retry=Retry(NoBackoff(), 0),
        **options,
    )


def async_client(port: int, **options: Any) -> redis.asyncio.Redis:
    return redis.asyncio.Redis(
        port=port,
        socket_timeout=TIMEOUT,
        socket_connect_timeout=TIMEOUT,
        retry=AsyncRetry(NoBackoff(), 0),
        **options,
    )


class Loop:
    """One event loop for many requests, as under uvicorn; closed like asyncio.run does."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.owned: list[Any] = []

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def adopt(self, client: Any) -> Any:
        """Closes ``client`` in this loop at the end of the test."""
        self.owned.append(client)
        return client

    def close(self) -> None:
        for client in self.owned:
            self.run(client.aclose())
        self.run(self.loop.shutdown_asyncgens())
        self.loop.close()


@pytest.fixture
def loop() -> Iterator[Loop]:
    runner = Loop()
    yield runner
    runner.close()


def command_calls(raw: redis.Redis) -> dict[str, int]:
    """Commands run since ``CONFIG RESETSTAT``, without the stats commands themselves."""
    stats = raw.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(entry["calls"])
        for name, entry in stats.items()
        if not name.startswith(("cmdstat_info", "cmdstat_config"))
    }


# -- one app, three ways to drive it ------------------------------------------------------


def make_sessions(storage: Any) -> fs.Sessions:
    sessions = fs.Sessions()
    sessions.cookie(Login, "SID", storage=storage, max_age=MAX_AGE)
    return sessions


def handle(s: fs.CurrentSessions, path: str, user: Optional[str]) -> str:
    if path == "/login":
        s.set(Login(user=user or "ann"))
        return s.session_id(Login) or ""
    if path == "/whoami":
        login = s.get(Login)
        return "anonymous" if login is None else f"{login.user}:{login.visits}"
    if path == "/visit":
        login = s.get(Login)
        assert login is not None
        s.set(dataclasses.replace(login, visits=login.visits + 1))
        return "ok"
    if path == "/regenerate":
        s.regenerate(Login)
        return s.session_id(Login) or ""
    if path == "/logout":
        s.clear(Login)
        return "bye"
    return "nothing"


@dataclass
class Resp:
    status: int
    body: str
    set_cookies: list[str]

    @property
    def cookie(self) -> Optional[str]:
        """The SID value sent back (``""`` for an expiring cookie), or ``None``."""
        for line in self.set_cookies:
            name, _, value = line.split(";", 1)[0].partition("=")
            if name == "SID":
                return value
        return None


Request = Callable[..., Resp]


def asgi_app(storage: Any) -> fs.SessionMiddleware:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        query = dict(p.split("=", 1) for p in scope["query_string"].decode().split("&") if p)
        body = handle(fs.get_sessions(scope), scope["path"], query.get("user"))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body.encode()})

    return fs.SessionMiddleware(app, make_sessions(storage))


class ASGIClient:
    """Drives the middleware directly: in one persistent loop, or one ``asyncio.run`` per
    request. ``sent`` keeps the messages that reached the server of the last request."""

    def __init__(self, app: Any, loop: Optional[Loop] = None) -> None:
        self.app = app
        self.loop = loop
        self.sent: list[dict[str, Any]] = []

    def __call__(self, path: str, *, cookie: Optional[str] = None, user: str = "") -> Resp:
        headers = [(b"cookie", f"SID={cookie}".encode())] if cookie is not None else []
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": f"user={user}".encode() if user else b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 1234),
            "server": ("127.0.0.1", 80),
        }
        sent: list[dict[str, Any]] = []
        self.sent = sent

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        coro = self.app(scope, receive, send)
        if self.loop is None:
            asyncio.run(coro)
        else:
            self.loop.run(coro)
        start = next(m for m in sent if m["type"] == "http.response.start")
        return Resp(
            start["status"],
            b"".join(m.get("body", b"") for m in sent[1:]).decode(),
            [v.decode("latin-1") for k, v in start["headers"] if k == b"set-cookie"],
        )


def starlette_app(storage: Any) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request as HTTPRequest
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def endpoint(request: HTTPRequest) -> PlainTextResponse:
        s = fs.get_sessions(request)
        return PlainTextResponse(handle(s, request.url.path, request.query_params.get("user")))

    paths = ("/login", "/whoami", "/visit", "/regenerate", "/logout")
    app = Starlette(routes=[Route(p, endpoint) for p in paths])
    app.add_middleware(fs.SessionMiddleware, sessions=make_sessions(storage))
    return app


def starlette_request(http: Any) -> Request:
    def request(path: str, *, cookie: Optional[str] = None, user: str = "") -> Resp:
        http.cookies.clear()
        headers = {"cookie": f"SID={cookie}"} if cookie is not None else {}
        r = http.get(path, params={"user": user} if user else None, headers=headers)
        return Resp(r.status_code, r.text, r.headers.get_list("set-cookie"))

    return request


def wsgi_request(storage: Any) -> Request:
    app = flask.Flask(__name__)
    app.wsgi_app = fs.WSGISessionMiddleware(app.wsgi_app, make_sessions(storage))  # type: ignore[method-assign]

    @app.get("/<name>")
    def route(name: str) -> str:
        return handle(fs.get_sessions(flask.request), "/" + name, flask.request.args.get("user"))

    http = app.test_client(use_cookies=False)

    def request(path: str, *, cookie: Optional[str] = None, user: str = "") -> Resp:
        headers = {"Cookie": f"SID={cookie}"} if cookie is not None else {}
        r = http.get(path, query_string={"user": user} if user else None, headers=headers)
        return Resp(r.status_code, r.get_data(as_text=True), r.headers.getlist("Set-Cookie"))

    return request


# -- the session scenarios, for any driver and any Redis -----------------------------------

HEX64 = re.compile(r"[0-9a-f]{64}")


def key(sid: str) -> str:
    """The Redis key suffix for a session id: its hash bound to the session name."""
    return make_sessions(fs.MemoryStorage()).storage_key(Login, sid)


def run_scenarios(request: Request, raw: Any, prefix: str = "ferrosession:") -> list[str]:
    """set → cookie with an id; read back; update; regenerate; clear; unknown id not
    adopted. Returns the ids it minted. Redis holds each id's hash (see ``key``)."""
    login = request("/login", user="ann")
    sid = login.cookie
    assert login.status == 200 and sid is not None and HEX64.fullmatch(sid)
    assert login.body == sid
    assert raw.get(prefix + key(sid)) == '{"user":"ann","visits":0}'
    assert MAX_AGE - 5 <= raw.ttl(prefix + key(sid)) <= MAX_AGE

    again = request("/whoami", cookie=sid)
    assert (again.body, again.set_cookies) == ("ann:0", [])

    visit = request("/visit", cookie=sid)
    assert visit.cookie == sid
    assert raw.get(prefix + key(sid)) == '{"user":"ann","visits":1}'

    regen = request("/regenerate", cookie=sid)
    new = regen.cookie
    assert new is not None and HEX64.fullmatch(new) and new != sid and regen.body == new
    assert raw.exists(prefix + key(sid)) == 0
    assert raw.get(prefix + key(new)) == '{"user":"ann","visits":1}'
    replay = request("/whoami", cookie=sid)
    assert (replay.body, replay.cookie) == ("anonymous", "")  # expired, not adopted
    assert request("/whoami", cookie=new).body == "ann:1"

    out = request("/logout", cookie=new)
    assert (out.body, out.cookie) == ("bye", "")
    assert raw.exists(prefix + key(new)) == 0
    assert request("/whoami", cookie=new).body == "anonymous"

    chosen = "f" * 64
    unknown = request("/whoami", cookie=chosen)
    assert (unknown.body, unknown.cookie) == ("anonymous", "")
    minted = request("/login", cookie=chosen, user="eve")
    assert minted.cookie is not None and HEX64.fullmatch(minted.cookie)
    assert minted.cookie != chosen
    assert raw.exists(prefix + key(chosen)) == 0
    assert raw.get(prefix + key(minted.cookie)) == '{"user":"eve","visits":0}'
    return [sid, new, minted.cookie]


# -- the protocol, called directly ----------------------------------------------------------


def test_redis_server_is_installed() -> None:
    require("redis-server")
    require("redis-cli")


def test_round_trip_ttl_invalidate_and_prefix(server: RedisServer, raw: redis.Redis) -> None:
    storage = RedisStorage(server.url)
    assert storage.read("s1") is None
    storage.write("s1", '{"user":"ann"}', 120)
    assert storage.read("s1") == '{"user":"ann"}'
    assert raw.get("ferrosession:s1") == '{"user":"ann"}'
    assert 115 <= raw.ttl("ferrosession:s1") <= 120
    storage.write("s1", "second", 30)  # a write replaces the value and the lifetime
    assert storage.read("s1") == "second"
    assert 25 <= raw.ttl("ferrosession:s1") <= 30
    storage.invalidate("s1")
    assert raw.exists("ferrosession:s1") == 0
    assert storage.read("s1") is None
    storage.invalidate("s1")  # deleting what is gone is no error

    other = RedisStorage(server.url, prefix="app:sess:")
    other.write("s1", "x", 60)
    assert raw.keys("*") == ["app:sess:s1"]
    assert storage.read("s1") is None and other.read("s1") == "x"
    assert RedisStorage(server.url, prefix="").prefix == ""
    storage.close()
    storage.write("s2", "reopened", 60)  # close() only drops the client it made
    assert storage.read("s2") == "reopened"
    storage.close()
    other.close()


def test_async_round_trip(server: RedisServer, raw: redis.Redis, loop: Loop) -> None:
    storage = RedisStorage(server.url)

    async def scenario() -> None:
        assert await storage.aread("a1") is None
        await storage.awrite("a1", "välue ✓", 90)
        assert await storage.aread("a1") == "välue ✓"
        await storage.ainvalidate("a1")
        assert await storage.aread("a1") is None
        await storage.awrite("a2", "kept", 90)

    loop.run(scenario())
    assert raw.get("ferrosession:a2") == "kept"
    assert 85 <= raw.ttl("ferrosession:a2") <= 90
    assert storage.read("a2") == "kept"  # the sync and asyncio sides share the data


def test_ttl_is_checked_and_clamped(server: RedisServer, raw: redis.Redis) -> None:
    storage = RedisStorage(server.url)
    for bad in (0, -1):
        with pytest.raises(ValueError, match="at least 1"):
            storage.write("t", "v", bad)
    for wrong in (True, 1.5, "60", None):
        with pytest.raises(TypeError):
            storage.write("t", "v", wrong)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        storage.write("t", b"bytes", 60)  # type: ignore[arg-type]
    assert raw.exists("ferrosession:t") == 0
    storage.write("t", "v", 10**12)
    assert raw.ttl("ferrosession:t") == 2**31 - 1
    storage.close()


@pytest.mark.parametrize("decode", [False, True])
def test_text_is_utf8_whatever_the_client_decodes(
    server: RedisServer, raw: redis.Redis, loop: Loop, decode: bool
) -> None:
    sync = redis.Redis(port=server.port, decode_responses=decode, encoding="latin-1")
    aclient = loop.adopt(redis.asyncio.Redis(port=server.port, decode_responses=decode))
    storage = RedisStorage(client=sync, async_client=aclient)
    storage.write("u", "ü € 😀", 60)
    assert storage.read("u") == "ü € 😀"
    assert loop.run(storage.aread("u")) == "ü € 😀"
    raw_bytes = redis.Redis(port=server.port)
    assert raw_bytes.get("ferrosession:u") == "ü € 😀".encode()
    # the client's settings are untouched
    assert sync.get_encoder().decode_responses is decode
    assert sync.get_encoder().encoding == "latin-1"
    # a value that is not UTF-8 was not written by ferrosession: absent, not a crash
    raw_bytes.set("ferrosession:bin", b"\xff\xfe")
    assert storage.read("bin") is None
    assert loop.run(storage.aread("bin")) is None
    raw_bytes.close()
    sync.close()


def test_one_round_trip_per_operation(server: RedisServer, raw: redis.Redis, loop: Loop) -> None:
    storage = RedisStorage(server.url)
    storage.read("warm")  # the connection's own hand-shake is not a per-operation cost
    loop.run(storage.aread("warm"))
    for op, expected in (
        (lambda: storage.read("x"), {"get": 1}),
        (lambda: storage.write("x", "v", 60), {"set": 1}),
        (lambda: storage.read("x"), {"get": 1}),
        (lambda: storage.invalidate("x"), {"del": 1}),
        (lambda: loop.run(storage.aread("x")), {"get": 1}),
        (lambda: loop.run(storage.awrite("x", "v", 60)), {"set": 1}),
        (lambda: loop.run(storage.aread("x")), {"get": 1}),
        (lambda: loop.run(storage.ainvalidate("x")), {"del": 1}),
    ):
        raw.config_resetstat()
        op()
        assert command_calls(raw) == expected
    storage.close()


def test_one_round_trip_per_request_through_the_middleware(
    server: RedisServer, raw: redis.Redis, loop: Loop
) -> None:
    storage = RedisStorage(server.url)
    request = ASGIClient(asgi_app(storage), loop)
    request("/whoami", cookie="warm")
    raw.config_resetstat()
    sid = request("/login", user="ann").cookie
    assert command_calls(raw) == {"set": 1}  # no cookie came in: nothing is read
    for path, cookie, expected in (
        ("/whoami", sid, {"get": 1}),
        ("/nothing", sid, {"get": 1}),  # an async storage is read before the handler
        ("/visit", sid, {"get": 1, "set": 1}),
        ("/logout", sid, {"get": 1, "del": 1}),
        ("/nothing", None, {}),  # no cookie, no round trip
    ):
        raw.config_resetstat()
        request(path, cookie=cookie)
        assert command_calls(raw) == expected, path

    wsgi = wsgi_request(storage)
    sid = wsgi("/login", user="bob").cookie
    for path, expected in (
        ("/whoami", {"get": 1}),
        ("/nothing", {}),  # a sync storage is read only when the handler touches it
        ("/visit", {"get": 1, "set": 1}),
    ):
        raw.config_resetstat()
        wsgi(path, cookie=sid)
        assert command_calls(raw) == expected, path
    storage.close()


def test_configuration_errors(server: RedisServer, loop: Loop) -> None:
    sync = redis.Redis(port=server.port)
    aclient = loop.adopt(redis.asyncio.Redis(port=server.port))
    with pytest.raises(ConfigurationError, match="needs a url"):
        RedisStorage()
    with pytest.raises(ConfigurationError, match="not both"):
        RedisStorage(server.url, client=sync)
    with pytest.raises(ConfigurationError, match="not a Redis URL"):
        RedisStorage("http://127.0.0.1:6379/0")
    with pytest.raises(ConfigurationError, match="url must be a str"):
        RedisStorage(b"redis://127.0.0.1")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="asyncio client: pass it as async_client"):
        RedisStorage(client=aclient)
    with pytest.raises(ConfigurationError, match="sync client: pass it as client"):
        RedisStorage(async_client=sync)
    with pytest.raises(ConfigurationError, match="not a redis client"):
        RedisStorage(client=object())
    with pytest.raises(ConfigurationError, match="asyncio redis client or a callable"):
        RedisStorage(async_client=42)
    with pytest.raises(ConfigurationError, match="prefix must be a str"):
        RedisStorage(server.url, prefix=None)  # type: ignore[arg-type]
    factory_of_sync = RedisStorage(async_client=lambda: sync)
    with pytest.raises(ConfigurationError, match="not an asyncio client"):
        loop.run(factory_of_sync.aread("x"))
    shown = repr(RedisStorage("redis://user:s3cret@127.0.0.1:6379/0"))
    assert "s3cret" not in shown and "127.0.0.1:6379" in shown
    sync.close()


def test_missing_redis_py_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(ConfigurationError, match=r'pip install "ferrosession\[redis\]"'):
        RedisStorage("redis://127.0.0.1:6379/0")


class _Client:
    """Enough of a client for construction checks (redis-py is not needed for these)."""

    def execute_command(self, *args: Any, **options: Any) -> Any:
        raise AssertionError("not called")


def test_sync_only_storage_has_no_asyncio_methods(server: RedisServer, raw: redis.Redis) -> None:
    storage = RedisStorage(client=redis.Redis(port=server.port))
    assert not hasattr(storage, "aread")
    assert not hasattr(storage, "awrite") and not hasattr(storage, "ainvalidate")
    sessions = make_sessions(storage)
    assert sessions.providers[0].async_storage is False
    # under ASGI it is a plain sync storage: read on first touch, written at the start
    ids = run_scenarios(ASGIClient(asgi_app(storage)), raw)
    assert len(ids) == 3
    assert not hasattr(RedisStorage(client=_Client()), "aread")


def test_async_only_storage_refuses_sync_calls(server: RedisServer, loop: Loop) -> None:
    storage = RedisStorage(async_client=loop.adopt(redis.asyncio.Redis(port=server.port)))
    assert make_sessions(storage).providers[0].async_storage is True
    loop.run(storage.awrite("k", "v", 60))
    assert loop.run(storage.aread("k")) == "v"
    for call in (lambda: storage.read("k"), lambda: storage.invalidate("k")):
        with pytest.raises(ConfigurationError, match="only an asyncio client"):
            call()
    with pytest.raises(ConfigurationError, match="only an asyncio client"):
        storage.write("k", "v", 60)


# -- asyncio clients and event loops ------------------------------------------------------------


def connected_clients(raw: redis.Redis, expected: int) -> int:
    """The number of connections (with a short wait for closes to reach the server)."""
    deadline = time.monotonic() + 2
    while True:
        count = len(raw.client_list())
        if count == expected or time.monotonic() > deadline:
            return count
        time.sleep(0.01)


def test_one_asyncio_client_per_loop_closed_with_its_loop(
    server: RedisServer, raw: redis.Redis
) -> None:
    storage = RedisStorage(server.url)
    seen: list[Any] = []

    async def requests() -> None:
        await storage.awrite("k", "v", 60)
        values = await asyncio.gather(*(storage.aread("k") for _ in range(20)))
        assert values == ["v"] * 20
        seen.append(storage._loop_client())
        assert storage._loop_client() is seen[-1]

    for _ in range(3):
        asyncio.run(requests())
        # asyncio.run shut the loop down: the client it used is closed and forgotten
        assert storage._loops == {}
        assert connected_clients(raw, 1) == 1  # only `raw` is left
    assert len({id(c) for c in seen}) == 3  # never reused across loops

    async def close_explicitly() -> None:
        await storage.aread("k")
        await storage.aclose()
        assert storage._loops == {}
        assert await storage.aread("k") == "v"  # a new client for the same loop

    asyncio.run(close_explicitly())
    assert connected_clients(raw, 1) == 1


@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_client_of_a_loop_closed_without_shutdown_is_not_reused(
    server: RedisServer, raw: redis.Redis
) -> None:
    storage = RedisStorage(server.url)
    first = asyncio.new_event_loop()
    assert first.run_until_complete(storage.aread("k")) is None
    stale = first.run_until_complete(_current(storage))
    first.close()  # no shutdown_asyncgens: the client could not be closed
    assert asyncio.run(storage.aread("k")) is None
    assert all(entry[0] is not stale for entry in storage._loops.values())
    assert storage._loops == {}
    del stale, first
    gc.collect()


async def _current(storage: RedisStorage) -> Any:
    return storage._loop_client()


def test_url_storage_through_asgi_with_asyncio_run_per_request(
    server: RedisServer, raw: redis.Redis
) -> None:
    storage = RedisStorage(server.url)
    run_scenarios(ASGIClient(asgi_app(storage)), raw)
    assert storage._loops == {}


def test_explicit_asyncio_client_through_asgi(
    server: RedisServer, raw: redis.Redis, loop: Loop
) -> None:
    aclient = loop.adopt(redis.asyncio.Redis(port=server.port, decode_responses=True))
    storage = RedisStorage(client=redis.Redis(port=server.port), async_client=aclient)
    run_scenarios(ASGIClient(asgi_app(storage), loop), raw, "ferrosession:")


def test_custom_prefix_through_asgi(server: RedisServer, raw: redis.Redis, loop: Loop) -> None:
    storage = RedisStorage(server.url, prefix="myapp:")
    run_scenarios(ASGIClient(asgi_app(storage), loop), raw, "myapp:")
    assert all(k.startswith("myapp:") for k in raw.keys("*"))


def test_starlette_app_in_one_loop(server: RedisServer, raw: redis.Redis) -> None:
    from starlette.testclient import TestClient

    storage = RedisStorage(server.url)
    with TestClient(starlette_app(storage)) as http:
        run_scenarios(starlette_request(http), raw)
    assert storage._loops == {}  # closed when the test client's loop shut down


def test_wsgi_with_the_sync_client(server: RedisServer, raw: redis.Redis) -> None:
    storage = RedisStorage(server.url)
    run_scenarios(wsgi_request(storage), raw)
    assert storage._loops == {}  # WSGI never made an asyncio client
    storage.close()


# -- a real 3-node cluster ---------------------------------------------------------------------


def spread_over_nodes(cluster: RedisClusterNodes, count: int) -> list[int]:
    """Keys per node after ``count`` sessions were stored."""
    sizes = []
    for port in cluster.ports:
        with redis.Redis(port=port) as node:
            sizes.append(int(node.dbsize()))
    assert sum(sizes) == count
    return sizes


def cluster_storage(cluster: RedisClusterNodes, loop: Optional[Loop] = None) -> RedisStorage:
    port = cluster.ports[1]
    client = RedisCluster(host="127.0.0.1", port=port, socket_timeout=2)
    if loop is None:  # a factory: one client per loop
        return RedisStorage(
            client=client,
            async_client=lambda: AsyncRedisCluster(host="127.0.0.1", port=port, socket_timeout=2),
        )
    aclient = loop.adopt(AsyncRedisCluster(host="127.0.0.1", port=port, socket_timeout=2))
    return RedisStorage(client=client, async_client=aclient)


def test_cluster_protocol_and_one_round_trip(
    cluster: RedisClusterNodes, raw_cluster: RedisCluster, loop: Loop
) -> None:
    storage = cluster_storage(cluster, loop)
    for i in range(30):
        storage.write(f"id{i}", f"value {i}", 60)
    assert all(storage.read(f"id{i}") == f"value {i}" for i in range(30))
    assert loop.run(storage.aread("id7")) == "value 7"
    sizes = spread_over_nodes(cluster, 30)
    assert sum(1 for n in sizes if n > 0) >= 2  # the keys really live on several nodes
    assert 55 <= raw_cluster.ttl("ferrosession:id3") <= 60
    storage.invalidate("id3")
    loop.run(storage.ainvalidate("id4"))
    assert raw_cluster.exists("ferrosession:id3") == 0
    assert raw_cluster.exists("ferrosession:id4") == 0
    # one command on the node that holds the key, and none elsewhere
    owner = raw_cluster.get_node_from_key("ferrosession:id5")
    storage.read("id5")  # connect both clients to that node first
    loop.run(storage.aread("id5"))
    nodes = {p: redis.Redis(port=p, decode_responses=True) for p in cluster.ports}
    for op, name in (
        (lambda: storage.read("id5"), "get"),
        (lambda: loop.run(storage.aread("id5")), "get"),
        (lambda: loop.run(storage.awrite("id5", "w", 60)), "set"),
        (lambda: storage.write("id5", "w", 60), "set"),
    ):
        for node in nodes.values():
            node.config_resetstat()
        op()
        per_node = {port: command_calls(node) for port, node in nodes.items()}
        assert per_node.pop(owner.port) == {name: 1}
        assert all(calls == {} for calls in per_node.values()), per_node
    for node in nodes.values():
        node.close()
    storage._sync.close()


def test_cluster_sessions_through_asgi_with_one_client(
    cluster: RedisClusterNodes, raw_cluster: RedisCluster, loop: Loop
) -> None:
    storage = cluster_storage(cluster, loop)
    ids = run_scenarios(ASGIClient(asgi_app(storage), loop), raw_cluster)
    more = [ASGIClient(asgi_app(storage), loop)("/login", user=f"u{i}").cookie for i in range(9)]
    assert len(set(ids + more)) == 12
    sizes = spread_over_nodes(cluster, 10)  # eve + 9
    assert sum(1 for n in sizes if n > 0) >= 2
    storage._sync.close()


def test_cluster_sessions_through_asgi_with_a_client_per_loop(
    cluster: RedisClusterNodes, raw_cluster: RedisCluster
) -> None:
    storage = cluster_storage(cluster)
    run_scenarios(ASGIClient(asgi_app(storage)), raw_cluster)
    assert storage._loops == {}
    storage._sync.close()


def test_cluster_sessions_through_wsgi(
    cluster: RedisClusterNodes, raw_cluster: RedisCluster
) -> None:
    storage = cluster_storage(cluster)
    run_scenarios(wsgi_request(storage), raw_cluster)
    storage._sync.close()


# -- Redis goes away mid-run ---------------------------------------------------------------------


def outage_storage(port: int) -> RedisStorage:
    return RedisStorage(client=sync_client(port), async_client=lambda: async_client(port))


def assert_fails_before_the_response(
    request: ASGIClient, op: str, error: str, **kwargs: Any
) -> None:
    """The middleware raises StorageError (naming the operation and the redis error)
    before anything is sent: the server answers 500 and no Set-Cookie goes out."""
    started = time.monotonic()
    with pytest.raises(StorageError, match=re.escape(f"{op} failed: {error}")):
        request(**kwargs)
    assert time.monotonic() - started < 4 * TIMEOUT + 1
    assert request.sent == []


def test_redis_errors_become_storage_errors_with_the_cause(
    server: RedisServer, raw: redis.Redis, loop: Loop
) -> None:
    secret = "0123abcd" * 8
    down = outage_storage(free_port())  # nothing listens there
    calls = (
        ("read (GET)", lambda: down.read(secret)),
        ("write (SET)", lambda: down.write(secret, "v", 60)),
        ("invalidate (DEL)", lambda: down.invalidate(secret)),
        ("read (GET)", lambda: loop.run(down.aread(secret))),
        ("write (SET)", lambda: loop.run(down.awrite(secret, "v", 60))),
        ("invalidate (DEL)", lambda: loop.run(down.ainvalidate(secret))),
    )
    for op, call in calls:
        with pytest.raises(StorageError, match=re.escape(f"{op} failed: ConnectionError")) as info:
            call()
        assert isinstance(info.value.__cause__, redis.ConnectionError)
        assert secret not in str(info.value)  # a live session id stays out of logs
    raw.rpush("ferrosession:list", "not a string")  # an error reply: WRONGTYPE
    up = RedisStorage(server.url)
    with pytest.raises(StorageError, match="read \\(GET\\) failed: ResponseError: WRONGTYPE"):
        up.read("list")
    with pytest.raises(StorageError, match="WRONGTYPE") as info:
        loop.run(up.aread("list"))
    assert isinstance(info.value.__cause__, redis.ResponseError)
    up.close()


def test_middleware_keeps_the_redis_error_as_the_cause(loop: Loop) -> None:
    request = ASGIClient(asgi_app(outage_storage(free_port())), loop)
    with pytest.raises(StorageError) as info:
        request("/whoami", cookie="a" * 64)
    assert isinstance(info.value.__cause__, redis.ConnectionError)


def test_redis_stopped_and_restarted_under_asgi(tmp_path: Path, loop: Loop) -> None:
    from starlette.testclient import TestClient

    node = RedisServer(tmp_path, persistent=True).start()
    try:
        storage = outage_storage(node.port)  # type: ignore[arg-type]
        direct = ASGIClient(asgi_app(storage), loop)
        with TestClient(starlette_app(storage), raise_server_exceptions=False) as http:
            request = starlette_request(http)
            sid = request("/login", user="ann").cookie
            other = direct("/login", user="bob").cookie
            assert sid and other and request("/whoami", cookie=sid).body == "ann:0"

            node.stop()  # the process is gone: connections are refused
            for path, cookie in (
                ("/whoami", sid),
                ("/visit", sid),
                ("/logout", sid),
                ("/login", sid),
                ("/login", None),  # the write fails: no id goes out for data never stored
            ):
                failed = request(path, cookie=cookie, user="mallory")
                assert (failed.status, failed.set_cookies) == (500, []), path
            assert_fails_before_the_response(
                direct, "read (GET)", "ConnectionError", path="/whoami", cookie=other
            )
            assert_fails_before_the_response(
                direct, "read (GET)", "ConnectionError", path="/logout", cookie=other
            )
            assert_fails_before_the_response(
                direct, "write (SET)", "ConnectionError", path="/login", user="x"
            )

            node.start()  # same port, same snapshot: the sessions are all still there
            assert request("/whoami", cookie=sid).body == "ann:0"
            assert direct("/whoami", cookie=other).body == "bob:0"
            assert request("/visit", cookie=sid).cookie == sid
            assert request("/whoami", cookie=sid).body == "ann:1"
            fresh = request("/login", user="carl")
            assert fresh.status == 200 and fresh.cookie
            assert direct("/logout", cookie=other).cookie == ""
            with redis.Redis(port=node.port, decode_responses=True) as check:
                assert sorted(check.keys("*")) == sorted(
                    f"ferrosession:{key(i)}" for i in (sid, fresh.cookie)
                )
    finally:
        node.stop()


def test_redis_stopped_and_restarted_under_wsgi(tmp_path: Path) -> None:
    node = RedisServer(tmp_path, persistent=True).start()
    try:
        request = wsgi_request(RedisStorage(client=sync_client(node.port)))
        sid = request("/login", user="ann").cookie
        assert sid

        node.stop()
        for path in ("/whoami", "/visit", "/logout"):  # the read fails in the handler
            failed = request(path, cookie=sid)
            assert (failed.status, failed.set_cookies) == (500, []), path
        with pytest.raises(StorageError, match=re.escape("write (SET)")):
            request("/login", user="bob")  # the write fails before start_response

        node.start()
        assert request("/whoami", cookie=sid).body == "ann:0"
        assert request("/visit", cookie=sid).cookie == sid
        assert request("/whoami", cookie=sid).body == "ann:1"
    finally:
        node.stop()


def test_redis_hanging_times_out_and_recovers(tmp_path: Path, loop: Loop) -> None:
    node = RedisServer(tmp_path).start()
    try:
        storage = outage_storage(node.port)  # type: ignore[arg-type]
        direct = ASGIClient(asgi_app(storage), loop)
        wsgi = wsgi_request(storage)
        sid = direct("/login", user="ann").cookie
        assert sid and wsgi("/whoami", cookie=sid).body == "ann:0"

        node.pause()  # connections are accepted, nothing answers
        assert_fails_before_the_response(
            direct, "read (GET)", "TimeoutError", path="/whoami", cookie=sid
        )
        assert wsgi("/whoami", cookie=sid).status == 500
        node.resume()

        assert direct("/whoami", cookie=sid).body == "ann:0"
        assert wsgi("/visit", cookie=sid).cookie == sid
        assert direct("/whoami", cookie=sid).body == "ann:1"
    finally:
        node.stop()
