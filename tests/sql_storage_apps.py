"""What the PostgreSQL and SQLite storage tests share: one app behind the real ASGI
(Starlette) and WSGI (Flask) middlewares, the session scenarios they run through it, and
the worker of the several-processes test.

The session is server-side (``sessions.cookie(Login, "SID", storage)``) with a
``principal``, so the owner index is exercised by every login and logout.
"""

from __future__ import annotations

import asyncio
import importlib
import re
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Optional

import ferrosession as fs
from _driver import Request, flask_request
from _driver import starlette_request as starlette_request  # the SQL tests import it here

MAX_AGE = 600
HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass
class Login:
    user: str
    visits: int = 0


def make_sessions(storage: Any) -> fs.Sessions:
    sessions = fs.Sessions()
    sessions.cookie(
        Login, "SID", storage=storage, max_age=MAX_AGE, principal=lambda login: login.user
    )
    return sessions


def key(sid: str) -> str:
    """What the storage keeps for a session id: its hash bound to the session name."""
    return make_sessions(fs.MemoryStorage()).storage_key(Login, sid)


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
        s.set(replace(login, visits=login.visits + 1))
        return "ok"
    if path == "/regenerate":
        s.regenerate(Login)
        return s.session_id(Login) or ""
    if path == "/logout":
        s.clear(Login)
        return "bye"
    if path == "/devices":
        return str(len(s.sessions_of(Login, user or "ann")))
    if path == "/everywhere":
        s.invalidate_all(Login, user or "ann", keep_current=False)
        return "gone"
    return "nothing"


def starlette_app(storage: Any) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request as HTTPRequest
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def endpoint(request: HTTPRequest) -> PlainTextResponse:
        s = fs.get_sessions(request)
        user = request.query_params.get("user")
        if request.url.path == "/devices":  # the storage is async here: the a-form
            return PlainTextResponse(str(len(await s.asessions_of(Login, user or "ann"))))
        return PlainTextResponse(handle(s, request.url.path, user))

    paths = ("/login", "/whoami", "/visit", "/regenerate", "/logout", "/devices", "/everywhere")
    app = Starlette(routes=[Route(p, endpoint) for p in paths])
    app.add_middleware(fs.SessionMiddleware, sessions=make_sessions(storage))
    return app


def wsgi_request(storage: Any) -> Request:
    return flask_request(make_sessions(storage), handle)


def run_scenarios(request: Request, stored: Callable[[str], Optional[str]]) -> None:
    """Login, read, update, regenerate, the owner index, logout and "log out
    everywhere", each checked against what the database holds (``stored(key)``)."""
    login = request("/login", user="ann")
    sid = login.cookie
    assert login.status == 200 and sid is not None and HEX64.fullmatch(sid)
    # the record: the lifetimes' clocks (for the owner index), then the value
    assert (stored(key(sid)) or "").endswith(':{"user":"ann","visits":0}')
    assert request("/whoami", cookie=sid).body == "ann:0"
    assert request("/visit", cookie=sid).status == 200
    assert request("/whoami", cookie=sid).body == "ann:1"

    moved = request("/regenerate", cookie=sid)
    new = moved.cookie
    assert new and new != sid and moved.body == new
    assert stored(key(sid)) is None, "regenerate left the old entry"
    assert request("/whoami", cookie=sid).body == "anonymous"
    assert request("/whoami", cookie=new).body == "ann:1"

    second = request("/login", user="ann").cookie
    assert second
    assert request("/devices", user="ann").body == "2"
    assert request("/logout", cookie=second).cookie == ""
    assert stored(key(second)) is None
    assert request("/devices", user="ann").body == "1"

    unknown = "0" * 64
    assert request("/whoami", cookie=unknown).body == "anonymous"
    assert request("/whoami", cookie="'; DROP TABLE x; --").body == "anonymous"

    assert request("/everywhere", cookie=new, user="ann").status == 200
    assert stored(key(new)) is None
    assert request("/devices", user="ann").body == "0"


# -- the several-processes test ----------------------------------------------------------


def storage_from(spec: tuple[str, str, dict[str, Any]]) -> Any:
    """A storage rebuilt in a child process from (module, class name, arguments)."""
    module, name, kwargs = spec
    return getattr(importlib.import_module(module), name)(**kwargs)


def worker(
    spec: tuple[str, str, dict[str, Any]],
    me: int,
    processes: int,
    rounds: int,
    barrier: Any,
    use_async: bool,
) -> int:
    """One of ``processes`` processes sharing a database. Each round every process
    creates its key of the round, waits for the others, reads every process's key of the
    round (exact values), bumps its own counter with a conditional update, and
    invalidates its key of the round before. Returns how many operations it ran.

    The first operation of every process starts at the same moment (the barrier), on
    tables that do not exist yet: creating them at once must not fail."""
    storage = storage_from(spec)
    if use_async:
        return asyncio.run(_aworker(storage, me, processes, rounds, barrier))
    ops = 0
    barrier.wait()
    assert storage.create(f"counter-{me}", "0", MAX_AGE)
    ops += 1
    for i in range(rounds):
        assert storage.create(f"r{i}-p{me}", f"round {i} of {me} ✓", MAX_AGE)
        barrier.wait()
        for other in range(processes):
            got = storage.read(f"r{i}-p{other}")
            assert got == f"round {i} of {other} ✓", (me, i, other, got)
        count = storage.read(f"counter-{me}")
        assert count == str(i), (me, i, count)
        assert storage.update(f"counter-{me}", str(i + 1), MAX_AGE)
        if i:
            assert storage.invalidate(f"r{i - 1}-p{me}") is True
        ops += processes + 4
        barrier.wait()  # nobody reads round i - 1 any more when the next one starts
    return ops


async def _aworker(storage: Any, me: int, processes: int, rounds: int, barrier: Any) -> int:
    ops = 0
    barrier.wait()  # blocks this process's loop only: nothing else runs on it
    assert await storage.acreate(f"counter-{me}", "0", MAX_AGE)
    ops += 1
    for i in range(rounds):
        assert await storage.acreate(f"r{i}-p{me}", f"round {i} of {me} ✓", MAX_AGE)
        barrier.wait()
        for other in range(processes):
            got = await storage.aread(f"r{i}-p{other}")
            assert got == f"round {i} of {other} ✓", (me, i, other, got)
        count = await storage.aread(f"counter-{me}")
        assert count == str(i), (me, i, count)
        assert await storage.aupdate(f"counter-{me}", str(i + 1), MAX_AGE)
        if i:
            assert await storage.ainvalidate(f"r{i - 1}-p{me}") is True
        ops += processes + 4
        barrier.wait()
    return ops


def run_processes(spec: tuple[str, str, dict[str, Any]], processes: int, rounds: int) -> int:
    """Runs :func:`worker` in ``processes`` fresh processes (half of them on the async
    methods); returns the operations they ran together."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(processes, mp_context=context) as pool:
        barrier = manager.Barrier(processes, timeout=60)
        futures = [
            pool.submit(worker, spec, me, processes, rounds, barrier, me % 2 == 1)
            for me in range(processes)
        ]
        return sum(f.result(timeout=120) for f in futures)


def readme_block(marker: str) -> dict[str, Any]:
    """Runs the README's Python block that contains ``marker`` as a module (as
    test_readme does) and returns its namespace."""
    import sys
    import types

    from readme_examples import BLOCKS, module_name

    index = next(i for i, block in enumerate(BLOCKS) if marker in block)
    module = types.ModuleType(module_name(index))
    sys.modules[module.__name__] = module
    try:
        exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), module.__dict__)
    finally:
        del sys.modules[module.__name__]
    return module.__dict__


def run_under_asgi_and_wsgi(storage: Any, stored: Callable[[str], Optional[str]]) -> str:
    """:func:`run_scenarios` through Starlette, then Flask; then a login under WSGI read
    under ASGI. Returns the session id of that login."""
    from starlette.testclient import TestClient

    with TestClient(starlette_app(storage)) as http:
        run_scenarios(starlette_request(http), stored)
    request = wsgi_request(storage)
    run_scenarios(request, stored)

    sid = request("/login", user="dora").cookie
    assert sid
    with TestClient(starlette_app(storage)) as http:  # a WSGI login read under ASGI
        asgi = starlette_request(http)
        assert asgi("/whoami", cookie=sid).body == "dora:0"
        assert asgi("/devices", user="dora").body == "1"
    return sid


# Ids that would break a statement built by string formatting (quotes, placeholders of
# both drivers, LIKE wildcards, non-ASCII, a backslash and a newline).
HOSTILE = [
    "'; DROP TABLE ferrosession_sessions; --",
    'a"b',
    "x' OR '1'='1",
    "semi;colon",
    "%s",
    "%(key)s",
    "%",
    "_",
    "ünïcödé ✓ 鍵",
    "back\\slash\nnewline",
]
HUGE = "k" * 10_000


def check_hostile_ids(storage: Any, absent: list[str], created: list[str]) -> None:
    """Every method on an ``absent`` id finds nothing, each ``created`` id is stored as
    itself and removed, and the one other row ("victim", with its owner row) is intact."""
    storage.write("victim", "intact", 60)
    storage.index_add("owner", "victim", 60)
    for hostile in absent:
        assert storage.read(hostile) is None
        assert storage.read_ttl(hostile) is None
        assert storage.invalidate(hostile) is False
        assert storage.update(hostile, "x", 60) is False
        assert storage.touch(hostile, 60) is False
        assert storage.index_list(hostile) == []
        storage.index_remove("owner", hostile)
    for hostile in created:
        assert storage.create(hostile, hostile, 60) is True
        assert storage.read(hostile) == hostile
        assert storage.invalidate(hostile) is True
    assert storage.read("victim") == "intact"
    assert storage.index_list("owner") == ["victim"]


def check_expiry_gc_and_the_owner_index(
    storage: Any,
    table: str,
    add_expired: Callable[[int], None],
    rows: Callable[[str], list[Any]],
) -> None:
    """Expired sessions read as absent and ``gc()`` deletes them, in batches, with their
    owner rows. ``add_expired(n)`` inserts ``n`` rows expired 10 s ago into ``table``;
    ``rows(sql)`` runs a query on the database."""
    for i in range(5):
        storage.write(f"short{i}", "v", 1)
        storage.index_add("ann", f"short{i}", 60)
    for i in range(3):
        storage.write(f"long{i}", "v", 60)
        storage.index_add("ann", f"long{i}", 60)
    storage.index_add("bob", "nobody", 1)
    add_expired(2500)  # many more expired rows than one gc batch
    time.sleep(1.1)
    assert storage.read("short0") is None and storage.read_ttl("short0") is None
    assert storage.update("short1", "back?", 60) is False
    assert storage.gc() == 2505
    assert storage.gc() == 0
    assert rows(f"SELECT count(*) FROM {table}") == [(3,)]
    # the owner rows of the deleted sessions went with them; bob's expired one by gc
    assert sorted(storage.index_list("ann")) == ["long0", "long1", "long2"]
    assert rows(f"SELECT owner, count(*) FROM {table}_owners GROUP BY owner") == [("ann", 3)]
    assert storage.invalidate("long0") is True
    assert sorted(storage.index_list("ann")) == ["long1", "long2"]
    assert asyncio.run(storage.agc()) == 0
