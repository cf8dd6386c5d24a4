"""PostgresStorage against a real PostgreSQL 15 (a throwaway cluster, see
postgres_server.py): the protocol (sync, async, the user's pools), several processes on
one database, the server stopped and started again, logout wins, time zones, expiry and
gc, hostile ids, what a dump holds, and the real ASGI and WSGI middlewares."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool, ConnectionPool

import ferrosession as fs
from ferrosession.cli import main
from ferrosession.testing import acheck_storage, check_storage
from postgres_server import BIN, PostgresServer
from sql_storage_apps import (
    HOSTILE,
    HUGE,
    check_expiry_gc_and_the_owner_index,
    check_hostile_ids,
    key,
    readme_block,
    run_processes,
    run_under_asgi_and_wsgi,
    starlette_app,
    starlette_request,
)
from sql_storage_apps import wsgi_request as wsgi_client

_tables = itertools.count()
README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    cluster = PostgresServer().start()
    try:
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture
def table() -> str:
    """A table name of its own for each test."""
    return f"t{os.getpid()}_{next(_tables)}"


def sql(server: PostgresServer, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        cur = conn.execute(query, params or None)
        return cur.fetchall() if cur.description else []


def test_conformance_sync_and_async(server: PostgresServer, table: str) -> None:
    storage = fs.PostgresStorage(server.dsn, table=table)
    check_storage(storage)  # the sync methods, then the a-methods in a fresh loop
    storage.close()


def test_conformance_with_the_user_s_pools(server: PostgresServer, table: str) -> None:
    # a pool of plain (not autocommit) connections: the pool's context commits
    with ConnectionPool(server.dsn, min_size=1, max_size=2, open=True) as pool:
        storage = fs.PostgresStorage(pool=pool, table=table)
        assert not hasattr(storage, "aread")  # the ASGI middleware calls the sync ones
        check_storage(storage, expiry=False)

    async def run() -> None:
        async with AsyncConnectionPool(server.dsn, min_size=1, max_size=4, open=False) as apool:
            storage = fs.PostgresStorage(async_pool=apool, table=table)
            await acheck_storage(storage)
            with pytest.raises(fs.ConfigurationError, match="only an async pool"):
                storage.read("k")

    asyncio.run(run())


def test_configuration_errors(server: PostgresServer) -> None:
    for name in ("a-b", "1abc", 'x"; DROP TABLE y; --', "", "s p", "public.t", "x" * 46, "ünï"):
        with pytest.raises(fs.ConfigurationError, match="table"):
            fs.PostgresStorage(server.dsn, table=name)
    with pytest.raises(fs.ConfigurationError, match="needs a dsn"):
        fs.PostgresStorage()
    with pytest.raises(fs.ConfigurationError, match="not a libpq connection string"):
        fs.PostgresStorage("host=x port")
    with pytest.raises(fs.ConfigurationError, match="timeout"):
        fs.PostgresStorage(server.dsn, timeout=0)
    with ConnectionPool(server.dsn, min_size=1, open=False) as pool:
        with pytest.raises(fs.ConfigurationError, match="not both"):
            fs.PostgresStorage(server.dsn, pool=pool)
        with pytest.raises(fs.ConfigurationError, match="pass it as pool="):
            fs.PostgresStorage(async_pool=pool)
    with pytest.raises(fs.ConfigurationError, match="ConnectionPool"):
        fs.PostgresStorage(pool=object())
    # the longest name allowed: every derived name fits PostgreSQL's 63 bytes, uncut
    longest = "T" * 45
    storage = fs.PostgresStorage(server.dsn, table=longest)
    storage.write("k", "v", 60)
    assert storage.read("k") == "v"
    names = {n for (n,) in sql(server, "SELECT relname FROM pg_class WHERE relname LIKE 'TTT%'")}
    assert names == {
        longest,
        f"{longest}_pkey",
        f"{longest}_expires_at",
        f"{longest}_owners",
        f"{longest}_owners_pkey",
        f"{longest}_owners_key",
        f"{longest}_owners_expires_at",
    }
    with pytest.raises(TypeError):
        storage.write("k", b"bytes", 60)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        storage.write("k", "v", 0)
    storage.close()


def test_four_processes_share_one_database(server: PostgresServer, table: str) -> None:
    # the table does not exist yet: the four create it at the same moment
    spec = ("ferrosession", "PostgresStorage", {"dsn": server.dsn, "table": table})
    ops = run_processes(spec, processes=4, rounds=150)
    assert ops == 4 * (1 + 150 * 8)
    left = sorted(k for (k,) in sql(server, f"SELECT key FROM {table}"))
    assert left == sorted([f"counter-{p}" for p in range(4)] + [f"r149-p{p}" for p in range(4)])
    counters = sql(server, f"SELECT value FROM {table} WHERE key LIKE 'counter-%'")
    assert counters == [("150",)] * 4


def test_stopped_and_started_again(server: PostgresServer, table: str) -> None:
    """Down: every request is a StorageError (a 500), never an empty session. Back: the
    next request works, through the pools the storage made (sync and async)."""
    from starlette.testclient import TestClient

    storage = fs.PostgresStorage(server.dsn, table=table, timeout=1)
    wsgi = wsgi_client(storage)
    with TestClient(starlette_app(storage), raise_server_exceptions=False) as http:
        asgi = starlette_request(http)
        sid = asgi("/login", user="ann").cookie
        other = wsgi("/login", user="bob").cookie
        assert sid and other
        assert (asgi("/whoami", cookie=sid).body, wsgi("/whoami", cookie=other).body) == (
            "ann:0",
            "bob:0",
        )
        server.stop()
        try:
            for path, cookie in (("/whoami", sid), ("/visit", sid), ("/login", None)):
                failed = asgi(path, cookie=cookie, user="mallory")
                assert (failed.status, failed.set_cookies) == (500, []), path
                failed = wsgi(path, cookie=other, user="mallory")
                assert (failed.status, failed.set_cookies) == (500, []), path
            with pytest.raises(fs.StorageError, match="read failed") as down:
                storage.read(key(sid))
            assert isinstance(down.value.__cause__, psycopg.Error)
            time.sleep(2)  # longer than the pools' reconnection attempts last
        finally:
            server.start()
        assert asgi("/whoami", cookie=sid).body == "ann:0"  # the first request after
        assert wsgi("/whoami", cookie=other).body == "bob:0"
        assert asgi("/visit", cookie=sid).status == 200
        assert wsgi("/whoami", cookie=sid).body == "ann:1"
    storage.close()


def test_logout_wins(server: PostgresServer, table: str) -> None:
    """An update racing a delete waits for the delete's row lock and then finds no live
    row: it never brings the entry back. A touch likewise."""
    storage = fs.PostgresStorage(server.dsn, table=table)
    for racer in ("update", "touch"):
        storage.write("k", "logged in", 60)
        with psycopg.connect(server.dsn) as logout:
            logout.execute(f"DELETE FROM {table} WHERE key = 'k'")  # not committed yet
            result: list[bool] = []

            def race(racer: str = racer, result: list[bool] = result) -> None:
                if racer == "update":
                    result.append(storage.update("k", "x", 60))
                else:
                    result.append(storage.touch("k", 60))

            thread = threading.Thread(target=race)
            thread.start()
            thread.join(0.5)
            assert thread.is_alive(), f"{racer} did not wait for the delete's row lock"
            logout.commit()
            thread.join(10)
        assert result == [False], racer
        assert storage.read("k") is None
        assert sql(server, f"SELECT count(*) FROM {table}") == [(0,)]
    # and one create wins among concurrent ones
    results: list[bool] = []
    threads = [
        threading.Thread(target=lambda i=i: results.append(storage.create("c", str(i), 60)))
        for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == [False] * 7 + [True]
    storage.close()


def test_times_are_the_database_s_whatever_the_time_zones(
    server: PostgresServer, table: str
) -> None:
    east = fs.PostgresStorage(server.dsn + " options='-c TimeZone=Pacific/Kiritimati'", table=table)
    west = fs.PostgresStorage(server.dsn + " options='-c TimeZone=America/Adak'", table=table)
    east.write("k", "v", 100)
    got = west.read_ttl("k")
    assert got is not None and 98 < got[1] <= 100
    assert west.touch("k", 200)
    got = east.read_ttl("k")
    assert got is not None and 198 < got[1] <= 200
    types = sql(
        server,
        "SELECT table_name, data_type FROM information_schema.columns "
        "WHERE column_name = 'expires_at' AND table_name LIKE %s ORDER BY 1",
        f"{table}%",
    )
    assert types == [
        (table, "timestamp with time zone"),
        (f"{table}_owners", "timestamp with time zone"),
    ]
    east.close()
    west.close()


def test_expiry_gc_and_the_owner_index(server: PostgresServer, table: str) -> None:
    storage = fs.PostgresStorage(server.dsn, table=table)

    def add_expired(n: int) -> None:
        sql(
            server,
            f"INSERT INTO {table} SELECT 'old' || i, 'v', now() - interval '10 seconds' "
            "FROM generate_series(1, %s) AS i",
            n,
        )

    check_expiry_gc_and_the_owner_index(storage, table, add_expired, lambda q: sql(server, q))
    storage.close()


def test_hostile_ids_touch_no_other_row(server: PostgresServer, table: str) -> None:
    storage = fs.PostgresStorage(server.dsn, table=table)
    check_hostile_ids(storage, [*HOSTILE, HUGE], HOSTILE)
    assert sql(server, f"SELECT key, value FROM {table}") == [("victim", "intact")]
    storage.close()


def test_asgi_and_wsgi_and_no_raw_id_in_a_dump(server: PostgresServer, table: str) -> None:
    storage = fs.PostgresStorage(server.dsn, table=table)
    sid = run_under_asgi_and_wsgi(storage, storage.read)
    dump = subprocess.run(
        [str(BIN / "pg_dump"), "--data-only", "-t", f"{table}*", server.dsn],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert key(sid) in dump
    assert sid not in dump
    storage.close()


def test_cli_gc(server: PostgresServer, table: str, capsys: pytest.CaptureFixture[str]) -> None:
    storage = fs.PostgresStorage(server.dsn, table=table)
    storage.write("a", "v", 1)
    storage.write("b", "v", 60)
    time.sleep(1.1)
    assert main(["gc", "--postgres", server.dsn, "--table", table]) == 0
    assert "removed 1 expired session " in capsys.readouterr().out
    assert storage.read("b") == "v"
    storage.close()
    done = subprocess.run(
        [sys.executable, "-m", "ferrosession.cli", "gc", "--postgres", "env:APP_DSN"],
        capture_output=True,
        text=True,
        env={**os.environ, "APP_DSN": server.dsn},
    )
    assert done.returncode == 0, done.stderr
    assert "removed 0 expired sessions from the database" in done.stdout
    down = f"host=127.0.0.1 port={server.port} user=nobody_here dbname=postgres"
    assert main(["gc", "--postgres", down, "--table", table]) == 1  # refused: StorageError
    assert "ferrosession gc: PostgresStorage gc failed" in capsys.readouterr().err


def test_readme_example(server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from starlette.testclient import TestClient

    monkeypatch.setenv("DATABASE_URL", server.dsn)
    example = readme_block("fs.PostgresStorage(os.environ")
    with TestClient(example["app"]) as phone, TestClient(example["app"]) as laptop:
        assert phone.get("/devices").status_code == 401
        assert phone.post("/login/ann").text == "ok"
        assert laptop.post("/login/ann").text == "ok"
        assert phone.get("/devices").text == "ann: 2 session(s)"
        sid = phone.cookies["SESSION_ID"]
    assert sql(server, "SELECT count(*) FROM ferrosession_sessions") == [(2,)]
    assert sql(server, "SELECT count(*) FROM ferrosession_sessions WHERE key = %s", sid) == [(0,)]
    example["storage"].close()
    for line in ("ferrosession gc --postgres env:DATABASE_URL",):
        assert line in README, line
        assert main(line.split()[1:]) == 0
