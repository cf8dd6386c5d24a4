"""RedisStorage against real redis-server processes: one node, a 3-node cluster, and a
server that goes away mid-run."""

from __future__ import annotations

import asyncio
import gc
import inspect
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, TypeVar

import pytest
import redis
import redis.asyncio
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

import ferrosession as fs
from _driver import Request, Resp, flask_request, http_scope, starlette_request
from ferrosession.errors import ConfigurationError, StorageError
from ferrosession.storage.redis import RedisStorage
from redis_servers import RedisClusterNodes, RedisServer, free_port, require
from sql_storage_apps import Login, handle

MAX_AGE = 3600
TIMEOUT = 0.5  # socket timeouts of the test clients: a stopped server fails fast
URL_TIMEOUT = 1.0  # the socket timeouts RedisStorage gives the clients it builds from a url


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


_T = TypeVar("_T")


class Loop:
    """One event loop for many requests, as under uvicorn, and what the test opened: both
    closed at the end of the test, passed or failed, like asyncio.run closes its loop.

    A client left to the garbage collector is closed whenever it runs, which can be in the
    middle of a later test: its ResourceWarnings, or the close asyncio starts for it on a
    loop that is then closed before the close ends ("coroutine 'disconnect' was never
    awaited"), fail that other test under ``-W error``."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.owned: list[Any] = []

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def adopt(self, thing: _T) -> _T:
        """Closes ``thing`` at the end of the test: a sync or asyncio client, or a
        RedisStorage (the clients it made: its sync one, and its asyncio one for this loop)."""
        self.owned.append(thing)
        return thing

    def close(self) -> None:
        for thing in reversed(self.owned):
            if isinstance(thing, RedisStorage):
                thing.close()
                self.run(thing.aclose())
            elif inspect.iscoroutinefunction(getattr(thing, "aclose", None)):
                self.run(thing.aclose())
            else:
                thing.close()
        self.finish_tasks()
        self.run(self.loop.shutdown_asyncgens())
        self.finish_tasks()
        self.loop.close()

    def finish_tasks(self) -> None:
        """Lets the loop's remaining tasks end (such as the close asyncio starts for a
        storage freed while its loop is open), as asyncio.run does before it closes."""
        self.run(asyncio.sleep(0))  # a close asyncio was asked for becomes a task
        pending = asyncio.all_tasks(self.loop)
        if pending:
            self.run(asyncio.wait(pending, timeout=10))
        for task in asyncio.all_tasks(self.loop):
            task.cancel()
            self.run(asyncio.gather(task, return_exceptions=True))


@pytest.fixture
def loop() -> Iterator[Loop]:
    runner = Loop()
    yield runner
    runner.close()


@pytest.fixture(autouse=True)
def _nothing_left_to_the_collector() -> Iterator[None]:
    """Collects the garbage at the end of each test, so that a client a test left open
    fails that test (its ResourceWarning, an error here) instead of a random later one."""
    yield
    gc.collect()


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
    """The SQL tests' session (``handle`` serves it), without an owner index."""
    sessions = fs.Sessions()
    sessions.cookie(Login, "SID", storage=storage, max_age=MAX_AGE)
    return sessions


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
        scope = http_scope(path, headers, query_string=f"user={user}".encode() if user else b"")
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


def wsgi_request(storage: Any) -> Request:
    return flask_request(make_sessions(storage), handle)


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
    storage = loop.adopt(RedisStorage(server.url))

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
    storage = loop.adopt(RedisStorage(server.url))
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


def test_one_round_trip_per_request_through_the_middleware(
    server: RedisServer, raw: redis.Redis, loop: Loop
) -> None:
    storage = loop.adopt(RedisStorage(server.url))
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
    assert sessions.registrations[0].home.async_storage is False
    # under ASGI it is a plain sync storage: read on first touch, written at the start
    ids = run_scenarios(ASGIClient(asgi_app(storage)), raw)
    assert len(ids) == 3
    assert not hasattr(RedisStorage(client=_Client()), "aread")
    storage._sync.close()


def test_async_only_storage_refuses_sync_calls(server: RedisServer, loop: Loop) -> None:
    storage = RedisStorage(async_client=loop.adopt(redis.asyncio.Redis(port=server.port)))
    assert make_sessions(storage).registrations[0].home.async_storage is True
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
    storage = loop.adopt(RedisStorage(server.url, prefix="myapp:"))
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


def outage_storage(port: int, loop: Loop) -> RedisStorage:
    """Explicit clients that fail fast; closed with the test's ``loop``."""
    storage = RedisStorage(
        client=loop.adopt(sync_client(port)), async_client=lambda: async_client(port)
    )
    return loop.adopt(storage)


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
    down = outage_storage(free_port(), loop)  # nothing listens there
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
    up = loop.adopt(RedisStorage(server.url))
    with pytest.raises(StorageError, match="read \\(GET\\) failed: ResponseError: WRONGTYPE"):
        up.read("list")
    with pytest.raises(StorageError, match="WRONGTYPE") as info:
        loop.run(up.aread("list"))
    assert isinstance(info.value.__cause__, redis.ResponseError)


def test_middleware_keeps_the_redis_error_as_the_cause(loop: Loop) -> None:
    request = ASGIClient(asgi_app(outage_storage(free_port(), loop)), loop)
    with pytest.raises(StorageError) as info:
        request("/whoami", cookie="a" * 64)
    assert isinstance(info.value.__cause__, redis.ConnectionError)


def test_redis_stopped_and_restarted_under_asgi(tmp_path: Path, loop: Loop) -> None:
    from starlette.testclient import TestClient

    node = RedisServer(tmp_path, persistent=True).start()
    try:
        storage = outage_storage(node.port, loop)  # type: ignore[arg-type]
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
                direct, "create (SET NX)", "ConnectionError", path="/login", user="x"
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


def test_redis_stopped_and_restarted_under_wsgi(tmp_path: Path, loop: Loop) -> None:
    node = RedisServer(tmp_path, persistent=True).start()
    try:
        request = wsgi_request(RedisStorage(client=loop.adopt(sync_client(node.port))))
        sid = request("/login", user="ann").cookie
        assert sid

        node.stop()
        for path in ("/whoami", "/visit", "/logout"):  # the read fails in the handler
            failed = request(path, cookie=sid)
            assert (failed.status, failed.set_cookies) == (500, []), path
        with pytest.raises(StorageError, match=re.escape("create (SET NX)")):
            request("/login", user="bob")  # the new entry fails before start_response

        node.start()
        assert request("/whoami", cookie=sid).body == "ann:0"
        assert request("/visit", cookie=sid).cookie == sid
        assert request("/whoami", cookie=sid).body == "ann:1"
    finally:
        node.stop()


def test_redis_hanging_times_out_and_recovers(tmp_path: Path, loop: Loop) -> None:
    node = RedisServer(tmp_path).start()
    try:
        storage = outage_storage(node.port, loop)  # type: ignore[arg-type]
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


def client_timeouts(client: Any) -> tuple[Any, Any]:
    """The socket timeouts the client's connections are made with."""
    options = client.connection_pool.connection_kwargs
    return options.get("socket_timeout"), options.get("socket_connect_timeout")


def test_url_clients_get_timeouts_that_the_url_overrides(server: RedisServer, loop: Loop) -> None:
    storage = loop.adopt(RedisStorage(server.url))
    storage.read("k")
    loop.run(storage.aread("k"))
    assert client_timeouts(storage._sync) == (URL_TIMEOUT, URL_TIMEOUT)
    assert client_timeouts(loop.run(_current(storage))) == (URL_TIMEOUT, URL_TIMEOUT)

    url = server.url + "?socket_timeout=5&socket_connect_timeout=2.5"
    custom = loop.adopt(RedisStorage(url))
    custom.read("k")
    loop.run(custom.aread("k"))
    assert client_timeouts(custom._sync) == (5.0, 2.5)
    assert client_timeouts(loop.run(_current(custom))) == (5.0, 2.5)

    # the user's own clients are left as they are
    explicit = loop.adopt(redis.Redis(port=server.port, socket_timeout=7, socket_connect_timeout=3))
    aexplicit = loop.adopt(
        redis.asyncio.Redis(port=server.port, socket_timeout=7, socket_connect_timeout=3)
    )
    own = RedisStorage(client=explicit, async_client=aexplicit)
    own.read("k")
    loop.run(own.aread("k"))
    assert client_timeouts(explicit) == client_timeouts(aexplicit) == (7.0, 3.0)


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    """What ``call`` raised (a StorageError) and how many seconds it took."""
    started = time.monotonic()
    with pytest.raises(StorageError) as info:
        call()
    return info.value, time.monotonic() - started


def test_frozen_redis_fails_url_clients_within_their_timeout_and_recovers(
    tmp_path: Path, loop: Loop
) -> None:
    node = RedisServer(tmp_path).start()
    try:
        storage = loop.adopt(RedisStorage(node.url))
        asgi = ASGIClient(asgi_app(storage), loop)
        wsgi = wsgi_request(storage)
        sid = asgi("/login", user="ann").cookie
        assert sid and wsgi("/whoami", cookie=sid).body == "ann:0"

        node.pause()  # SIGSTOP: connections are accepted, nothing answers
        assert_fails_before_the_response(
            asgi, "read (GET)", "TimeoutError", path="/whoami", cookie=sid
        )
        assert_fails_before_the_response(
            asgi, "create (SET NX)", "TimeoutError", path="/login", user="bob"
        )
        started = time.monotonic()
        failed = wsgi("/whoami", cookie=sid)  # the read fails in the handler
        assert (failed.status, failed.set_cookies) == (500, [])
        assert time.monotonic() - started < URL_TIMEOUT + 2
        error, took = timed(lambda: storage.read(sid))
        assert isinstance(error.__cause__, redis.TimeoutError) and took < URL_TIMEOUT + 2
        node.resume()  # SIGCONT

        assert asgi("/whoami", cookie=sid).body == "ann:0"
        assert wsgi("/visit", cookie=sid).cookie == sid
        assert asgi("/whoami", cookie=sid).body == "ann:1"
        assert asgi("/login", user="bob").cookie
    finally:
        node.stop()


def test_frozen_redis_waits_the_timeout_the_url_gives(tmp_path: Path, loop: Loop) -> None:
    node = RedisServer(tmp_path).start()
    try:
        longer = 2 * URL_TIMEOUT
        storage = loop.adopt(RedisStorage(f"{node.url}?socket_timeout={longer}"))
        node.pause()  # the connections are made now: their hand-shake times out
        for call in (lambda: storage.read("k"), lambda: loop.run(storage.aread("k"))):
            error, took = timed(call)
            assert isinstance(error.__cause__, redis.TimeoutError)
            # the URL's timeout, not the default one, and not forever
            assert longer - 0.25 <= took < longer + 2
        node.resume()
        assert storage.read("k") is None and loop.run(storage.aread("k")) is None
    finally:
        node.stop()


def test_a_dropped_storage_closes_its_clients_without_the_collector(
    server: RedisServer, raw: redis.Redis, loop: Loop
) -> None:
    storage = RedisStorage(server.url)
    storage.read("k")
    loop.run(storage.aread("k"))
    assert connected_clients(raw, 3) == 3
    gc.disable()
    try:
        del storage  # the last reference: the storage and its clients go now
        loop.finish_tasks()  # the asyncio client is closed in its loop
        assert connected_clients(raw, 1) == 1
    finally:
        gc.enable()


# -- the lifecycle methods (storage protocol v2) ---------------------------------------------

INF = float("inf")


class Api:
    """A storage's methods by their plain names: called directly, or (with ``run``, which
    runs a coroutine to its end in some event loop) their asyncio ``a``-prefixed versions."""

    def __init__(self, storage: RedisStorage, run: Optional[Callable[[Any], Any]] = None) -> None:
        self.storage = storage
        self.run = run

    def __getattr__(self, name: str) -> Callable[..., Any]:
        run = self.run
        if run is None:
            return getattr(self.storage, name)  # type: ignore[no-any-return]
        method = getattr(self.storage, "a" + name)
        return lambda *args: run(method(*args))


def lifecycle_scenario(api: Api, raw: Any, tag: str) -> None:
    """create / update / touch / read_ttl / invalidate on one key, and the owner index."""
    p = "ferrosession:"
    k = f"{tag}-" + "K" * 40
    assert api.invalidate(k) is False
    assert api.read_ttl(k) is None

    assert api.create(k, "one ✓", 100) is True
    assert raw.get(p + k) == "one ✓" and 95 <= raw.ttl(p + k) <= 100
    assert api.create(k, "two", 200) is False  # a live entry is never replaced
    assert raw.get(p + k) == "one ✓" and raw.ttl(p + k) <= 100

    assert api.update(k, "three", 30) is True  # value and lifetime replaced
    assert raw.get(p + k) == "three" and 25 <= raw.ttl(p + k) <= 30
    assert api.touch(k, 500) is True  # only the lifetime
    assert raw.get(p + k) == "three" and 495 <= raw.ttl(p + k) <= 500
    text, left = api.read_ttl(k)
    assert text == "three" and 495 < left <= 500 and isinstance(left, float)
    raw.persist(p + k)  # not written by ferrosession: live, with no end
    assert api.read_ttl(k) == ("three", INF)
    assert api.read(k) == "three"

    assert api.invalidate(k) is True
    assert raw.exists(p + k) == 0
    assert api.invalidate(k) is False
    # logout wins: nothing brings a deleted entry back
    assert api.update(k, "zombie", 60) is False
    assert api.touch(k, 60) is False
    assert raw.exists(p + k) == 0
    assert api.read_ttl(k) is None

    assert api.create(k, "again", 60) is True  # the key is free again
    raw.pexpire(p + k, 1)
    time.sleep(0.01)
    # an expired entry is no entry
    assert api.read_ttl(k) is None
    assert api.update(k, "zombie", 60) is False
    assert api.touch(k, 60) is False
    assert api.invalidate(k) is False
    assert api.create(k, "fresh", 60) is True
    assert api.read_ttl(k)[0] == "fresh"
    raw.set(p + k, b"\xff\xfe")  # not UTF-8: not ferrosession's, read as absent
    assert api.read_ttl(k) is None

    for bad in (0, -5):
        with pytest.raises(ValueError, match="at least 1"):
            api.create(k, "v", bad)
        with pytest.raises(ValueError, match="at least 1"):
            api.touch(k, bad)
        with pytest.raises(ValueError, match="at least 1"):
            api.index_add("o", k, bad)
    for wrong in (1.5, "60", None, True):
        with pytest.raises(TypeError):
            api.update(k, "v", wrong)
    with pytest.raises(TypeError):
        api.create(k, b"bytes", 60)
    with pytest.raises(TypeError):
        api.index_list(None)
    api.create(k + "x", "v", 10**12)  # clamped like write
    assert raw.ttl(p + k + "x") == 2**31 - 1

    # the owner index
    owner = f"{tag}-" + "O" * 40
    okey = f"{p}owner:{owner}"
    assert api.index_list(owner) == []
    assert api.index_add(owner, "s1", 100) is None
    api.index_add(owner, "s2", 300)
    assert sorted(api.index_list(owner)) == ["s1", "s2"]
    assert raw.type(okey) == "zset"
    assert 295_000 < raw.pttl(okey) <= 300_000  # lives as long as its longest member
    api.index_add(owner, "s3", 10)  # a shorter member does not shorten the set
    assert 290_000 < raw.pttl(okey) <= 300_000
    api.index_add(owner, "s2", 20)  # the same pair again: its lifetime is replaced
    now = time.time() * 1000
    assert now + 18_000 < raw.zscore(okey, "s2") <= now + 20_500
    assert 290_000 < raw.pttl(okey) <= 300_000  # and the set's is still never shortened
    api.index_add(owner, "s1", 600)  # a longer one extends it
    assert 595_000 < raw.pttl(okey) <= 600_000
    assert sorted(api.index_list(owner)) == ["s1", "s2", "s3"]

    assert api.index_remove(owner, "s3") is None
    api.index_remove(owner, "absent")  # no error
    api.index_remove(owner + "-nobody", "s1")
    assert sorted(api.index_list(owner)) == ["s1", "s2"]

    raw.zadd(okey, {"old": time.time() * 1000 - 1000})  # a record whose time has passed
    assert sorted(api.index_list(owner)) == ["s1", "s2"]
    assert raw.zscore(okey, "old") is not None
    api.index_add(owner, "s4", 60)  # each add drops the passed ones
    assert raw.zscore(okey, "old") is None
    assert sorted(api.index_list(owner)) == ["s1", "s2", "s4"]
    assert api.index_list(owner + "-other") == []
    assert raw.exists(f"{p}owner:{owner}-other") == 0


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_lifecycle_methods(server: RedisServer, raw: redis.Redis, loop: Loop, mode: str) -> None:
    storage = loop.adopt(RedisStorage(server.url))
    lifecycle_scenario(Api(storage, loop.run if mode == "async" else None), raw, mode)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_lifecycle_methods_on_the_cluster(
    cluster: RedisClusterNodes, raw_cluster: RedisCluster, loop: Loop, mode: str
) -> None:
    storage = cluster_storage(cluster, loop)
    api = Api(storage, loop.run if mode == "async" else None)
    for tag in ("a", "b", "c", "d"):  # keys and owners on several nodes
        lifecycle_scenario(api, raw_cluster, f"{mode}{tag}")
    storage._sync.close()


def test_owner_index_records_and_the_set_itself_expire(
    server: RedisServer, raw: redis.Redis, loop: Loop
) -> None:
    storage = loop.adopt(RedisStorage(server.url))
    owner, fresh = "A" * 43, "B" * 43
    storage.index_add(owner, "long", 60)
    storage.index_add(owner, "short", 1)
    loop.run(storage.aindex_add(owner, "ashort", 1))
    storage.index_add(fresh, "only", 1)
    assert sorted(storage.index_list(owner)) == ["ashort", "long", "short"]
    assert 900 < raw.pttl(f"ferrosession:owner:{fresh}") <= 1000
    time.sleep(1.05)
    assert storage.index_list(owner) == ["long"]
    assert loop.run(storage.aindex_list(owner)) == ["long"]
    assert raw.exists(f"ferrosession:owner:{fresh}") == 0  # gone with its last member
    assert storage.index_list(fresh) == []


@pytest.mark.parametrize("decode", [False, True])
def test_lifecycle_text_is_utf8_whatever_the_client_decodes(
    server: RedisServer, raw: redis.Redis, loop: Loop, decode: bool
) -> None:
    sync = redis.Redis(port=server.port, decode_responses=decode, encoding="latin-1")
    aclient = loop.adopt(redis.asyncio.Redis(port=server.port, decode_responses=decode))
    storage = RedisStorage(client=sync, async_client=aclient, prefix="é:")
    assert storage.create("ü", "ü € 😀", 60) is True
    assert storage.read_ttl("ü")[0] == "ü € 😀"  # type: ignore[index]
    assert loop.run(storage.aread_ttl("ü"))[0] == "ü € 😀"
    storage.index_add("öwner", "ü", 60)
    loop.run(storage.aindex_add("öwner", "😀", 60))
    assert sorted(storage.index_list("öwner")) == ["ü", "😀"]
    assert sorted(loop.run(storage.aindex_list("öwner"))) == ["ü", "😀"]
    assert raw.zcard("é:owner:öwner") == 2
    assert loop.run(storage.aupdate("ü", "ä", 60)) is True
    assert storage.read("ü") == "ä"
    sync.close()


def test_lifecycle_one_round_trip_each(server: RedisServer, raw: redis.Redis, loop: Loop) -> None:
    storage = loop.adopt(RedisStorage(server.url))
    storage.read_ttl("warm")  # the connections' hand-shakes, and the scripts loaded
    storage.index_add("o", "warm", 3600)  # outlives "x": no PEXPIRE below
    loop.run(storage.aread("warm"))
    script = {"evalsha": 1}
    for op, expected in (
        (lambda: storage.create("x", "v", 60), {"set": 1}),
        (lambda: storage.update("x", "v", 60), {"set": 1}),
        (lambda: storage.touch("x", 60), {"expire": 1}),
        (lambda: storage.read_ttl("x"), {**script, "get": 1, "pttl": 1}),
        (lambda: storage.invalidate("x"), {"del": 1}),
        (
            lambda: storage.index_add("o", "x", 60),
            {**script, "zadd": 1, "zremrangebyscore": 1, "pttl": 1},
        ),
        (lambda: storage.index_list("o"), {"zrangebyscore": 1}),
        (lambda: storage.index_remove("o", "x"), {"zrem": 1}),
        (lambda: loop.run(storage.acreate("x", "v", 60)), {"set": 1}),
        (lambda: loop.run(storage.aupdate("x", "v", 60)), {"set": 1}),
        (lambda: loop.run(storage.atouch("x", 60)), {"expire": 1}),
        (lambda: loop.run(storage.aread_ttl("x")), {**script, "get": 1, "pttl": 1}),
        (lambda: loop.run(storage.ainvalidate("x")), {"del": 1}),
        (lambda: loop.run(storage.aindex_list("o")), {"zrangebyscore": 1}),
        (lambda: loop.run(storage.aindex_remove("o", "x")), {"zrem": 1}),
        (lambda: storage.read_ttl("x"), {**script, "get": 1}),  # missing: no PTTL
    ):
        raw.config_resetstat()
        op()
        assert command_calls(raw) == expected
    # the server forgot the scripts (a restart, SCRIPT FLUSH): EVAL once, then EVALSHA
    raw.script_flush()
    raw.config_resetstat()
    assert loop.run(storage.aindex_add("o", "y", 60)) is None
    calls = command_calls(raw)
    assert (calls["evalsha"], calls["eval"], calls["zadd"]) == (1, 1, 1)
    raw.config_resetstat()
    loop.run(storage.aindex_add("o", "y", 60))
    assert command_calls(raw)["evalsha"] == 1 and "eval" not in command_calls(raw)
    raw.config_resetstat()
    storage.index_add("o", "z", 7200)  # a longer member: the set lives longer too
    assert command_calls(raw)["pexpire"] == 1
    raw.script_flush()
    storage.create("y", "v", 60)
    assert storage.read_ttl("y")[0] == "v"  # type: ignore[index]


def test_lifecycle_on_the_cluster_goes_to_the_key_s_node_only(
    cluster: RedisClusterNodes, raw_cluster: RedisCluster, loop: Loop
) -> None:
    storage = cluster_storage(cluster, loop)
    sid, owner = "id5", "owner5"
    node_of = {
        "sid": raw_cluster.get_node_from_key(f"ferrosession:{sid}").port,
        "owner": raw_cluster.get_node_from_key(f"ferrosession:owner:{owner}").port,
    }
    storage.create(sid, "v", 60)  # connect both clients, load the scripts on the nodes
    storage.read_ttl(sid)
    storage.index_add(owner, sid, 60)
    loop.run(storage.aread_ttl(sid))
    loop.run(storage.aindex_add(owner, sid, 60))
    nodes = {p: redis.Redis(port=p, decode_responses=True) for p in cluster.ports}
    for op, where, name in (
        (lambda: storage.update(sid, "w", 60), "sid", "set"),
        (lambda: loop.run(storage.acreate(sid, "w", 60)), "sid", "set"),
        (lambda: storage.touch(sid, 60), "sid", "expire"),
        (lambda: loop.run(storage.aread_ttl(sid)), "sid", "evalsha"),
        (lambda: storage.read_ttl(sid), "sid", "evalsha"),
        (lambda: storage.index_add(owner, sid, 60), "owner", "evalsha"),
        (lambda: loop.run(storage.aindex_add(owner, sid, 60)), "owner", "evalsha"),
        (lambda: loop.run(storage.aindex_list(owner)), "owner", "zrangebyscore"),
        (lambda: storage.index_remove(owner, sid), "owner", "zrem"),
        (lambda: loop.run(storage.ainvalidate(sid)), "sid", "del"),
    ):
        for node in nodes.values():
            node.config_resetstat()
        op()
        per_node = {port: command_calls(node) for port, node in nodes.items()}
        assert per_node.pop(node_of[where])[name] == 1
        assert all(calls == {} for calls in per_node.values()), per_node
    for node in nodes.values():
        node.close()
    storage._sync.close()


def test_lifecycle_methods_exist_only_with_their_client(
    server: RedisServer, raw: redis.Redis, loop: Loop
) -> None:
    names = ("invalidate", "create", "update", "touch", "read_ttl")
    names += ("index_add", "index_remove", "index_list")
    sync_only = RedisStorage(client=redis.Redis(port=server.port))
    for name in names:
        assert callable(getattr(sync_only, name))
        assert getattr(sync_only, "a" + name, None) is None
    async_only = RedisStorage(async_client=loop.adopt(redis.asyncio.Redis(port=server.port)))
    assert loop.run(async_only.acreate("k", "v", 60)) is True
    assert loop.run(async_only.aindex_list("o")) == []
    for call in (
        lambda: async_only.create("k", "v", 60),
        lambda: async_only.read_ttl("k"),
        lambda: async_only.index_list("o"),
    ):
        with pytest.raises(ConfigurationError, match="only an asyncio client"):
            call()
    sync_only._sync.close()


# -- races between processes --------------------------------------------------------------------

RACE_ROUNDS = 150
RACE_WORKERS = 4
RACE_MAX_UPDATES = 500  # per process and round: far more than a logout takes to land


def race_worker(port: int, role: int, barrier: Any, results: Any) -> None:
    """One process of the race: each round all create the same key (one must win); then
    role 0 invalidates it while the others update it in a loop until an update fails, and
    everyone reads it afterwards. Role 3 uses the asyncio methods."""
    import traceback

    out: list[tuple[bool, Optional[bool], int, int]] = []
    loop = asyncio.new_event_loop() if role == 3 else None
    client = redis.Redis(port=port, socket_timeout=5)
    storage = RedisStorage(client=client, async_client=lambda: redis.asyncio.Redis(port=port))
    api = Api(storage, None if loop is None else loop.run_until_complete)
    try:
        for r in range(RACE_ROUNDS):
            k = f"race-{r}"
            barrier.wait(timeout=10)
            created = api.create(k, f"w{role}", 60)
            barrier.wait(timeout=10)
            if role == 0:
                for _ in range(r % 8):  # vary the moment of the logout
                    api.read(k)
                deleted = api.invalidate(k)
                # after the logout returned, nobody may see the session again
                seen = sum(api.read(k) is not None for _ in range(20))
                seen += sum(api.read_ttl(k) is not None for _ in range(5))
                out.append((created, deleted, 0, seen))
            else:
                updates = 0
                while updates < RACE_MAX_UPDATES and api.update(k, f"u{role}-{updates}", 60):
                    updates += 1
                seen = int(api.read(k) is not None) + int(api.touch(k, 60))
                out.append((created, None, updates, seen))
            barrier.wait(timeout=10)
        results.put((role, out))
    except BaseException:
        results.put((role, traceback.format_exc()))
        barrier.abort()
    finally:
        if loop is not None:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
        client.close()


def test_logout_wins_and_one_create_wins_across_processes(
    server: RedisServer, raw: redis.Redis
) -> None:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(RACE_WORKERS)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=race_worker, args=(server.port, role, barrier, results))
        for role in range(RACE_WORKERS)
    ]
    started = time.monotonic()
    for proc in procs:
        proc.start()
    try:
        got = dict(results.get(timeout=60) for _ in procs)
    finally:
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join()
    errors = [v for v in got.values() if isinstance(v, str)]
    assert not errors, errors[0]
    assert time.monotonic() - started < 30
    updates = 0
    for r in range(RACE_ROUNDS):
        rows = [got[role][r] for role in range(RACE_WORKERS)]
        assert sum(row[0] for row in rows) == 1, (r, rows)  # exactly one create won
        assert rows[0][1] is True  # the logout found the session
        assert all(row[3] == 0 for row in rows), (r, rows)  # and it never came back
        updates += sum(row[2] for row in rows)
    assert all(row[2] < RACE_MAX_UPDATES for role in range(1, 4) for row in got[role])
    assert updates > RACE_ROUNDS  # the updates really raced the logout
    assert raw.keys("ferrosession:race-*") == []


# -- the lifecycle methods when Redis goes away --------------------------------------------------


def lifecycle_calls(storage: RedisStorage, loop: Loop) -> list[tuple[str, Callable[[], Any]]]:
    sid, owner = "0123abcd" * 8, "owner" * 8
    sync: list[tuple[str, Callable[[], Any]]] = [
        ("invalidate (DEL)", lambda: storage.invalidate(sid)),
        ("create (SET NX)", lambda: storage.create(sid, "v", 60)),
        ("update (SET XX)", lambda: storage.update(sid, "v", 60)),
        ("touch (EXPIRE)", lambda: storage.touch(sid, 60)),
        ("read_ttl (GET, PTTL)", lambda: storage.read_ttl(sid)),
        ("index_add (ZADD)", lambda: storage.index_add(owner, sid, 60)),
        ("index_remove (ZREM)", lambda: storage.index_remove(owner, sid)),
        ("index_list (ZRANGEBYSCORE)", lambda: storage.index_list(owner)),
    ]
    asynchronous: list[tuple[str, Callable[[], Any]]] = [
        ("invalidate (DEL)", lambda: loop.run(storage.ainvalidate(sid))),
        ("create (SET NX)", lambda: loop.run(storage.acreate(sid, "v", 60))),
        ("update (SET XX)", lambda: loop.run(storage.aupdate(sid, "v", 60))),
        ("touch (EXPIRE)", lambda: loop.run(storage.atouch(sid, 60))),
        ("read_ttl (GET, PTTL)", lambda: loop.run(storage.aread_ttl(sid))),
        ("index_add (ZADD)", lambda: loop.run(storage.aindex_add(owner, sid, 60))),
        ("index_remove (ZREM)", lambda: loop.run(storage.aindex_remove(owner, sid))),
        ("index_list (ZRANGEBYSCORE)", lambda: loop.run(storage.aindex_list(owner))),
    ]
    return sync + asynchronous


def test_lifecycle_redis_stopped_and_restarted(tmp_path: Path, loop: Loop) -> None:
    node = RedisServer(tmp_path, persistent=True).start()
    try:
        storage = outage_storage(node.port, loop)  # type: ignore[arg-type]
        api, aapi = Api(storage), Api(storage, loop.run)
        assert api.create("kept", "v", 600) and aapi.create("akept", "w", 600)
        api.index_add("o", "kept", 600)
        aapi.index_add("o", "akept", 600)
        assert api.read_ttl("kept")[0] == "v" and aapi.read_ttl("akept")[0] == "w"

        node.stop()  # connections are refused
        for op, call in lifecycle_calls(storage, loop):
            started = time.monotonic()
            with pytest.raises(
                StorageError, match=re.escape(f"{op} failed: ConnectionError")
            ) as info:
                call()
            assert isinstance(info.value.__cause__, redis.ConnectionError), op
            assert "0123abcd" not in str(info.value)  # the session key stays out of logs
            assert time.monotonic() - started < 4 * TIMEOUT + 1

        node.start()  # same port and data, but the scripts are gone: EVAL again
        assert api.read_ttl("kept")[0] == "v"
        assert aapi.read_ttl("akept")[0] == "w"
        assert sorted(aapi.index_list("o")) == ["akept", "kept"]
        api.index_add("o", "new", 60)
        assert sorted(api.index_list("o")) == ["akept", "kept", "new"]
        assert api.update("kept", "v2", 600) is True and aapi.touch("akept", 60) is True
        assert aapi.invalidate("kept") is True and api.invalidate("akept") is True
        assert api.create("kept", "again", 60) is True
    finally:
        node.stop()


def test_lifecycle_redis_hanging_times_out(tmp_path: Path, loop: Loop) -> None:
    node = RedisServer(tmp_path).start()
    try:
        storage = outage_storage(node.port, loop)  # type: ignore[arg-type]
        assert storage.create("k", "v", 60) and loop.run(storage.aread_ttl("k"))
        node.pause()
        for op, call in lifecycle_calls(storage, loop)[3:5] + lifecycle_calls(storage, loop)[11:13]:
            with pytest.raises(StorageError, match=re.escape(f"{op} failed: TimeoutError")):
                call()
        node.resume()
        assert storage.touch("k", 60) is True
        assert loop.run(storage.aread_ttl("k"))[0] == "v"
    finally:
        node.stop()


def test_lifecycle_error_replies_become_storage_errors(
    server: RedisServer, raw: redis.Redis, loop: Loop
) -> None:
    storage = loop.adopt(RedisStorage(server.url))
    raw.rpush("ferrosession:list", "not a string")
    raw.set("ferrosession:owner:str", "not a sorted set")
    for op, call in (
        ("read_ttl (GET, PTTL)", lambda: storage.read_ttl("list")),
        ("read_ttl (GET, PTTL)", lambda: loop.run(storage.aread_ttl("list"))),
        ("index_add (ZADD)", lambda: storage.index_add("str", "k", 60)),
        ("index_add (ZADD)", lambda: loop.run(storage.aindex_add("str", "k", 60))),
        ("index_list (ZRANGEBYSCORE)", lambda: storage.index_list("str")),
        ("index_remove (ZREM)", lambda: loop.run(storage.aindex_remove("str", "k"))),
    ):
        with pytest.raises(StorageError, match=re.escape(f"{op} failed: ResponseError")) as info:
            call()
        assert "WRONGTYPE" in str(info.value)
        assert isinstance(info.value.__cause__, redis.ResponseError)
    assert storage.update("list", "v", 60) is True  # SET replaces any type, like write
