"""The SQL storages against the raw statements they stand for.

    make bench-build && PYTHONPATH=target/bench-site .venv/bin/python \\
        benches/sql_overhead.py [--quick]

In-process (a raw ASGI / WSGI app, a prebuilt scope or environ, direct calls), over
loopback to a throwaway PostgreSQL 15 cluster (``tests/postgres_server.py``: initdb as
the postgres user, ``fsync=off``) and to an SQLite file in a temp folder, all variants in
the same interleaved rounds:

- ``PostgresStorage`` (from a dsn: its own pools) under the ASGI middleware (its async
  pool) and the WSGI one (its sync pool), read and write cases, beside one raw
  ``SELECT value FROM t WHERE key = $1`` and one raw upsert over **the same pool**, and
  the storage's own ``read`` / ``write`` called directly.
- ``SQLiteStorage`` the same, beside a raw ``SELECT`` and upsert on **the same
  connection** (the calling thread's).
- ``DirectoryStorage`` (cached) and ``MemoryStorage`` read under the WSGI middleware, for
  the comparison of server-side homes on one machine.

Goals (DESIGN.md §3, issue 17): PostgresStorage read overhead ≤ 1.3x the raw SELECT and
write overhead ≤ 1.3x the raw SELECT + upsert a write request needs (the middleware
reads, then updates), ASGI and WSGI; its direct ``read`` / ``write`` ≤ 1.3x the raw
statement; SQLiteStorage direct ``read`` ≤ 1.5x the raw SELECT;
cached DirectoryStorage the fastest server-side home (its WSGI read overhead below
SQLite's). Results: ``benches/results/sql_overhead.json``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

import _harness as h

sys.path.insert(0, str(h.ROOT / "tests"))
from postgres_server import PostgresServer

TABLE = "bench_sessions"
RAW_KEY = "bench:raw"


def _pg_sql() -> tuple[str, str]:
    select = f"SELECT value FROM {TABLE} WHERE key = %s AND expires_at > now()"
    upsert = (
        f"INSERT INTO {TABLE} AS s (key, value, expires_at) "
        "VALUES (%s, %s, now() + %s * interval '1 second') ON CONFLICT (key) DO UPDATE "
        "SET value = excluded.value, expires_at = excluded.expires_at"
    )
    return select, upsert


async def _session_cookie(sessions: Any) -> str:
    """``name=value`` of a new server-side session (the ``new`` case, once)."""
    reply = await h.asgi_call(h.fs_asgi(sessions, "new"), h.asgi_scope())
    lines = reply.set_cookies
    if not lines:
        raise h.SanityError("the new case sent no Set-Cookie")
    return h.cookie_pair(lines[0])


async def _check_read(label: str, asgi: Any, wsgi: Any, cookie: str) -> None:
    got = (await h.asgi_call(asgi, h.cookie_scope(cookie))).value
    if got != h.EXPECTED:
        raise h.SanityError(f"{label}: the ASGI read case read {got}, not {h.EXPECTED}")
    got = h.wsgi_call(wsgi, h.cookie_environ("/", cookie)).value
    if got != h.EXPECTED:
        raise h.SanityError(f"{label}: the WSGI read case read {got}, not {h.EXPECTED}")


async def run(args: Any, progress: h.Progress) -> dict[str, Any]:
    import psycopg

    import ferrosession as fs

    with tempfile.TemporaryDirectory(prefix="bench-sql-") as tmp:
        server = PostgresServer().start()
        before = os.sched_getaffinity(0)
        args.pinned_cpu = None
        try:
            if args.pin:
                # One CPU for this process (and the pools' threads, started later) and the
                # postmaster, whose backends (forked per connection, later) inherit it: a
                # round trip is then two context switches on that CPU, as in
                # storage_overhead.py. Unpinned, a cross-CPU wake-up on a VM costs tens
                # of µs by chance, and the figures turn bimodal.
                cpu = max(before)
                postmaster = int((server.data / "postmaster.pid").read_text().split()[0])
                os.sched_setaffinity(0, {cpu})
                os.sched_setaffinity(postmaster, {cpu})
                args.pinned_cpu = cpu
            pg = fs.PostgresStorage(server.dsn, table=TABLE)
            lite = fs.SQLiteStorage(Path(tmp) / "sessions.db", table=TABLE)
            folder = fs.DirectoryStorage(Path(tmp) / "dir", cached=True)
            memory = fs.MemoryStorage()
            with psycopg.connect(server.dsn) as conn:
                version = conn.execute("SHOW server_version").fetchone()
            result = await _measure(args, progress, pg, lite, folder, memory)
            await pg.aclose()
            pg.close()
            lite.close()
            return {**result, "postgres_server": None if version is None else version[0]}
        finally:
            os.sched_setaffinity(0, before)
            server.remove()


async def _measure(
    args: Any, progress: h.Progress, pg: Any, lite: Any, folder: Any, memory: Any
) -> dict[str, Any]:
    import sqlite3

    variants: dict[str, h.Variant] = {}

    def add(key: str, batch: Any) -> None:
        variants[key] = h.Variant(key, batch)

    homes = {"pg": pg, "sqlite": lite, "directory": folder, "memory": memory}
    cookies: dict[str, str] = {}
    for name, storage in homes.items():
        sessions = h.fs_stored(storage)
        cookie = await _session_cookie(sessions)
        cookies[name] = cookie
        apps = {
            case: (h.fs_asgi(sessions, case), h.fs_wsgi(sessions, case))
            for case in ("read", "write")
        }
        await _check_read(name, apps["read"][0], apps["read"][1], cookie)
        for case, (asgi, wsgi) in apps.items():
            if name in ("pg", "sqlite") or case == "read":
                add(f"wsgi/{case}/{name}", h.wsgi_batch(wsgi, h.cookie_environ("/", cookie)))
            if name in ("pg", "sqlite"):
                add(f"asgi/{case}/{name}", h.asgi_batch(asgi, h.cookie_scope(cookie)))
    any_cookie = cookies["pg"]
    add("bare/asgi", h.asgi_batch(h.raw_asgi_app(None), h.cookie_scope(any_cookie)))
    add("bare/wsgi", h.wsgi_batch(h.raw_wsgi_app(None), h.cookie_environ("/", any_cookie)))
    add("bare/call", h.call_batch(lambda: None))

    # -- raw statements over the storage's own pools / connection --------------------
    select, upsert = _pg_sql()
    pg.write(RAW_KEY, h.PAYLOAD, h.LIFETIME)  # also creates the tables
    sync_pool, async_pool = pg._sync_pool(), await pg._apool()

    def raw_select() -> Any:
        with sync_pool.connection() as conn:
            return conn.execute(select, (RAW_KEY,)).fetchall()

    def raw_upsert() -> Any:
        with sync_pool.connection() as conn:
            return conn.execute(upsert, (RAW_KEY, h.PAYLOAD, h.LIFETIME)).rowcount

    async def araw_select() -> Any:
        async with async_pool.connection() as conn:
            return await (await conn.execute(select, (RAW_KEY,))).fetchall()

    async def araw_upsert() -> Any:
        async with async_pool.connection() as conn:
            return (await conn.execute(upsert, (RAW_KEY, h.PAYLOAD, h.LIFETIME))).rowcount

    if raw_select() != [(h.PAYLOAD,)] or await araw_select() != [(h.PAYLOAD,)]:
        raise h.SanityError("raw PostgreSQL: the SELECT did not return what was stored")
    if raw_upsert() != 1 or await araw_upsert() != 1 or pg.read(RAW_KEY) != h.PAYLOAD:
        raise h.SanityError("raw PostgreSQL: the upsert did not store")
    add("raw/pg/sync/select", h.call_batch(raw_select))
    add("raw/pg/sync/upsert", h.call_batch(raw_upsert))
    add("raw/pg/async/select", h.await_batch(araw_select))
    add("raw/pg/async/upsert", h.await_batch(araw_upsert))
    add("direct/pg/read", h.call_batch(pg.read, RAW_KEY))
    add("direct/pg/write", h.call_batch(pg.write, RAW_KEY, h.PAYLOAD, h.LIFETIME))
    add("direct/pg/aread", h.await_batch(pg.aread, RAW_KEY))
    add("direct/pg/awrite", h.await_batch(pg.awrite, RAW_KEY, h.PAYLOAD, h.LIFETIME))

    lite.write(RAW_KEY, h.PAYLOAD, h.LIFETIME)
    conn: sqlite3.Connection = lite._conn()  # this thread's: the one lite.read uses here
    lselect = f"SELECT value FROM {TABLE} WHERE key = ? AND expires_at > ?"
    lupsert = (
        f"INSERT INTO {TABLE} (key, value, expires_at) VALUES (?, ?, ?) ON CONFLICT (key) "
        "DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at"
    )

    def lraw_select() -> Any:
        return conn.execute(lselect, (RAW_KEY, time.time())).fetchall()

    def lraw_upsert() -> Any:
        return conn.execute(lupsert, (RAW_KEY, h.PAYLOAD, time.time() + h.LIFETIME)).rowcount

    if lraw_select() != [(h.PAYLOAD,)] or lraw_upsert() != 1 or lite.read(RAW_KEY) != h.PAYLOAD:
        raise h.SanityError("raw SQLite: the SELECT / upsert did not round-trip")
    add("raw/sqlite/select", h.call_batch(lraw_select))
    add("raw/sqlite/upsert", h.call_batch(lraw_upsert))
    add("direct/sqlite/read", h.call_batch(lite.read, RAW_KEY))
    add("direct/sqlite/write", h.call_batch(lite.write, RAW_KEY, h.PAYLOAD, h.LIFETIME))
    # Controls (diagnostics, not goals): the raw statements a case needs, then the same
    # request on MemoryStorage, back to back in one loop. The raw statements alone run
    # in a tight loop whose code stays in the CPU caches; these show the part of a
    # PostgresStorage overhead that is the middleware's own work and the cache misses
    # of a real request, not the storage's.
    memory_sessions = h.fs_stored(memory)
    memory_cookie = cookies["memory"]
    for case, sync_ops, async_ops in (
        ("read", [raw_select], [araw_select]),
        ("write", [raw_select, raw_upsert], [araw_select, araw_upsert]),
    ):
        env = h.cookie_environ("/", memory_cookie)
        wsgi_app = h.fs_wsgi(memory_sessions, case)
        add(f"control/wsgi/{case}", h.wsgi_batch(wsgi_app, env, before=sync_ops))
        asgi_app = h.fs_asgi(memory_sessions, case)
        add(f"control/asgi/{case}", _async_then_asgi(async_ops, asgi_app, memory_cookie))
    progress.note("sanity checks passed: every home reads its session back; raw statements")

    rounds = await h.measure_args(variants, args, progress)
    return _report(args, variants, rounds)


def _async_then_asgi(ops: list[Callable[[], Any]], app: Any, cookie: str) -> Any:
    """A batch of: the raw statements ``ops`` (awaited), then one request of ``app``."""
    clock = time.perf_counter_ns
    receive, send = h.asgi_receive, h.asgi_discard
    scope = h.cookie_scope(cookie)

    async def batch(n: int) -> int:
        t0 = clock()
        for _ in range(n):
            for op in ops:
                await op()
            await app(scope.copy(), receive, send)
        return clock() - t0

    return batch


def _median(v: h.Variant) -> float:
    return float(h.quantiles(v.samples)["median"])


def _report(args: Any, v: dict[str, h.Variant], rounds: int) -> dict[str, Any]:
    med = {k: _median(x) for k, x in v.items()}
    over = {
        k: med[k] - med[f"bare/{k.split('/')[0]}"] for k in v if k.startswith(("asgi/", "wsgi/"))
    }
    for k in v:
        if k.startswith("control/"):
            over[k] = med[k] - med[f"bare/{k.split('/')[1]}"]
    direct = {k: med[k] - med["bare/call"] for k in v if k.startswith(("direct/", "raw/"))}
    goals: list[dict[str, Any]] = []

    def goal(label: str, value: float, base: float, limit: float, parts: list[str]) -> None:
        ratio = value / base if base > 0 else float("inf")
        goals.append(
            {
                "goal": label,
                "us": round(value, 2),
                "baseline_us": round(base, 2),
                "baseline": " + ".join(parts),
                "ratio": round(ratio, 3),
                "limit": limit,
                "met": ratio <= limit,
            }
        )

    for side, mode in (("asgi", "async"), ("wsgi", "sync")):
        sel, ups = direct[f"raw/pg/{mode}/select"], direct[f"raw/pg/{mode}/upsert"]
        goal(
            f"PostgresStorage {side.upper()} read overhead ≤ 1.3x raw SELECT",
            over[f"{side}/read/pg"], sel, 1.3, [f"raw/pg/{mode}/select"],
        )  # fmt: skip
        goal(
            f"PostgresStorage {side.upper()} write overhead ≤ 1.3x raw SELECT + upsert",
            over[f"{side}/write/pg"], sel + ups, 1.3,
            [f"raw/pg/{mode}/select", f"raw/pg/{mode}/upsert"],
        )  # fmt: skip
    for side in ("asgi", "wsgi"):
        for case in ("read", "write"):
            goal(
                f"(diagnostic) PostgresStorage {side.upper()} {case} overhead ≤ 1.3x its control: "
                "the raw statements, then the same request on MemoryStorage, in one loop",
                over[f"{side}/{case}/pg"], over[f"control/{side}/{case}"], 1.3,
                [f"control/{side}/{case}"],
            )  # fmt: skip
    for op, raw, mode in (
        ("read", "select", "sync"),
        ("write", "upsert", "sync"),
        ("aread", "select", "async"),
        ("awrite", "upsert", "async"),
    ):
        goal(
            f"PostgresStorage.{op} (direct) ≤ 1.3x raw {raw}",
            direct[f"direct/pg/{op}"], direct[f"raw/pg/{mode}/{raw}"], 1.3,
            [f"raw/pg/{mode}/{raw}"],
        )  # fmt: skip
    lsel, lups = direct["raw/sqlite/select"], direct["raw/sqlite/upsert"]
    goal("SQLiteStorage.read (direct) ≤ 1.5x raw SELECT", direct["direct/sqlite/read"], lsel, 1.5,
         ["raw/sqlite/select"])  # fmt: skip
    goal("SQLiteStorage.write (direct) ≤ 1.5x raw upsert", direct["direct/sqlite/write"], lups,
         1.5, ["raw/sqlite/upsert"])  # fmt: skip
    # the middleware's own work (MemoryStorage's overhead) costs about one SQLite SELECT:
    # what the storage adds to a request is the overhead beyond it
    goal(
        "(diagnostic) SQLiteStorage WSGI read overhead beyond MemoryStorage's ≤ 1.5x raw SELECT",
        over["wsgi/read/sqlite"] - over["wsgi/read/memory"], lsel, 1.5, ["raw/sqlite/select"],
    )  # fmt: skip
    goal(
        "DirectoryStorage (cached) WSGI read is the fastest server-side home on one machine: "
        "its overhead over SQLite's < 1",
        over["wsgi/read/directory"], over["wsgi/read/sqlite"], 0.999999, ["wsgi/read/sqlite"],
    )  # fmt: skip
    homes = {
        name: round(over[f"wsgi/read/{name}"], 2)
        for name in ("memory", "directory", "sqlite", "pg")
    }
    return h.result(
        "sql_overhead",
        args,
        unit="microseconds per request or call",
        packages=["psycopg", "psycopg-pool", "psycopg-binary"],
        rounds=rounds,
        variants=v,
        settings={
            "session": h.DATA,
            "pinned_cpu": args.pinned_cpu,
            "overhead": "median(with middleware) - median(bare app); direct and raw calls: "
            "median - median of an empty call",
            "sqlite": f"SQLite {__import__('sqlite3').sqlite_version}, WAL",
        },
        overheads_us={k: round(x, 2) for k, x in over.items()},
        calls_us={k: round(x, 2) for k, x in direct.items()},
        wsgi_read_overhead_by_home_us=homes,
        goals=goals,
    )


def table(result: dict[str, Any]) -> str:
    rows = [
        [g["goal"], f"{g['us']:.1f}", f"{g['baseline_us']:.1f}", f"{g['ratio']:.2f}",
         h.fmt_met(g["met"])]
        for g in result["goals"]
    ]  # fmt: skip
    out = h.markdown_table(["goal", "µs", "baseline µs", "ratio", "met"], rows)
    homes = result["wsgi_read_overhead_by_home_us"]
    out += "\n\nWSGI read overhead by server-side home (µs): " + ", ".join(
        f"{k} {x:.1f}" for k, x in homes.items()
    )
    pinned = result["settings"]["pinned_cpu"]
    out += f"\nPostgreSQL {result.get('postgres_server')}, {result['settings']['sqlite']}"
    out += f"; this process and PostgreSQL pinned to CPU {pinned}." if pinned is not None else "."
    return out + h.footer(result, "psycopg", "psycopg-pool")


def main(argv: Optional[list[str]] = None) -> int:
    args = h.parse_args(
        "sql_overhead",
        __doc__,
        argv,
        budget=60,
        quick_budget=5,
        batch_ms=5,
        pinned_with="PostgreSQL",
    )
    met: Callable[[dict[str, Any]], bool] = lambda r: all(  # noqa: E731
        g["met"] for g in r["goals"] if not g["goal"].startswith("(diagnostic)")
    )
    return h.run_and_report("sql_overhead", args, run, table, met)


if __name__ == "__main__":
    sys.exit(main())
