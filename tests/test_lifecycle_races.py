"""Four real processes share one DirectoryStorage folder (and one Redis) and race
logout, update, regenerate and renewal on the same sessions, through the middleware:
zero resurrected sessions, zero lost ones, zero errors (DESIGN "Lifecycle": logout wins).
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

import ferrosession as fs
from redis_servers import RedisServer
from test_server_lifecycle import Login, get, login, wsgi_app

WORKERS = 4
ROUNDS = 40
ROLES = ("logout", "update", "regenerate", "touch")
PATHS = {"logout": "/logout", "update": "/update", "regenerate": "/regenerate", "touch": "/read"}


def _storage(spec: tuple[str, str, str]) -> Any:
    kind, where, prefix = spec
    if kind == "directory":
        st = fs.DirectoryStorage(where, cached=True, shared=True)
        # cache hits are checked against the folder's change table (local, Linux)
        want = "table" if sys.platform.startswith("linux") else "stat"
        assert st.revalidation == want, st._core._table_status()
        return st
    return fs.RedisStorage(where, prefix=prefix)


def _app(spec: tuple[str, str, str]) -> Any:
    s = fs.Sessions()
    s.cookie(Login, "S", _storage(spec), idle_timeout=600, refresh=1, principal=lambda v: v.user)
    return wsgi_app(s)


def role(worker: int, round_: int) -> str:
    """Each round every role runs once, on different workers; odd rounds have no
    logout (an extra update instead)."""
    r = ROLES[(round_ + worker) % len(ROLES)]
    return "update" if r == "logout" and round_ % 2 else r


def _worker(
    worker: int,
    spec: tuple[str, str, str],
    cookies: list[str],
    barrier: Any,
    results: Any,
) -> None:
    app = _app(spec)
    out: list[tuple[int, str, Optional[str], int]] = []
    for r, cookie in enumerate(cookies):
        barrier.wait(timeout=60)
        what = role(worker, r)
        reply = get(app, PATHS[what], cookie)
        out.append((r, what, reply.cookie(), len(reply.set_cookies)))
    results.put((worker, out))


def race(spec: tuple[str, str, str]) -> None:
    app = _app(spec)
    cookies = [login(app, f"user{r}") for r in range(ROUNDS)]
    time.sleep(1.1)  # every session is due for renewal (refresh=1)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(w, spec, cookies, barrier, results))
        for w in range(WORKERS)
    ]
    for p in procs:
        p.start()
    got = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    moved: dict[int, list[str]] = {r: [] for r in range(ROUNDS)}
    for _, out in got:
        assert len(out) == ROUNDS
        for r, what, new_cookie, _ in out:
            if what == "regenerate" and new_cookie:
                moved[r].append(new_cookie)
    resurrected = lost = 0
    for r, cookie in enumerate(cookies):
        live = [c for c in [cookie, *moved[r]] if get(app, "/read", c).body is not None]
        owned = get(app, "/devices", None, query=f"user{r}").body
        if r % 2 == 0:  # a logout raced: the old id never comes back
            resurrected += get(app, "/read", cookie).body is not None
            resurrected += len(live) > 1
        else:  # no logout: exactly one session survives
            lost += len(live) == 0
            resurrected += len(live) > 1
        assert len(owned) == len(live), f"round {r}: the index lists {owned}, live {live}"
    assert (resurrected, lost) == (0, 0)


def test_four_processes_on_one_directory(tmp_path: Path) -> None:
    race(("directory", str(tmp_path / "sessions"), ""))


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    node = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield node
    node.stop()


def test_four_processes_on_one_redis(redis_server: RedisServer) -> None:
    race(("redis", redis_server.url, f"race{time.time_ns()}:"))
