"""In-process overhead of server-side sessions: ferrosession's storages beside
starsessions, Flask-Session and Beaker, and beside raw redis-py round trips.

    make bench-build && PYTHONPATH=target/bench-site .venv/bin/python \\
        benches/storage_overhead.py [--quick]

A ~100-byte session lives in a store; only its id travels in the cookie. Cases:

=========  ==================  ====================================
case       Cookie sent         handler
=========  ==================  ====================================
read       a valid id          reads the session
write      a valid id          reads it and stores a changed value
=========  ==================  ====================================

ASGI (a raw ASGI app, a prebuilt scope, direct calls, one event loop): ferrosession's
``SessionMiddleware`` with ``MemoryStorage``, ``DirectoryStorage`` cached (the default:
``shared=True``, each hit checked against the folder's change table in shared memory;
also ``shared="stat"``, one ``stat`` per hit, the fallback where there is no table, and
``shared=False``) and uncached (``cached=False``: a file read per request) and
``RedisStorage`` (its asyncio client), beside starsessions' ``SessionMiddleware`` +
``SessionAutoloadMiddleware`` with its in-memory and Redis stores.
WSGI (a prebuilt environ, direct calls, a ``start_response`` that records): ferrosession's
``WSGISessionMiddleware`` with ``DirectoryStorage`` (uncached) and ``RedisStorage`` (sync
client) and Beaker's file store, all on a raw WSGI app, beside Flask-Session's filesystem
(cachelib ``FileSystemCache``) and Redis stores on a Flask app. Also, in the same
interleaved rounds: raw redis-py ``GET`` and ``SET … EX`` (sync and asyncio) and direct
calls of ferrosession's storages.

Issue #8: the ASGI read and write of MemoryStorage, DirectoryStorage (cached) and
RedisStorage also run with the session registered with ``idle_timeout=1800`` (default
refresh: the stored record is renewed by a storage ``touch`` at most once a minute; the
storage's ``read_ttl`` replaces ``read``), on the same storage instances; a goal compares
each read with the plain one (≤ 1.2x). Controls for the RedisStorage ratios (reported as
diagnostics, not goals): the raw round trips a case needs followed, in the same loop, by
the same request on MemoryStorage. The raw round trips alone run in a tight loop whose
code stays in the CPU caches; after a round trip (a switch to redis-server and the
kernel's TCP path) the middleware's own work runs on cold caches and costs ~2x more, so
the controls show the part of a RedisStorage overhead that is not RedisStorage's.

"Overhead" = median per-request time with the session layer minus the median of the same
app without it (the raw app; for Flask-Session, the same Flask app whose session interface
hands out the data with no storage and no cookie). A real ``redis-server`` is started on a
free 127.0.0.1 port and stopped at the end; the folders live under ``target/`` on the real
disk (the filesystem is recorded). Before timing, every variant is checked: ``new`` stores
the value (read back from the store itself), ``read`` returns it (ferrosession: without a
``Set-Cookie``), ``write`` stores the change, and an unknown id reads as absent; the run
aborts if one misbehaves. Goals (DESIGN.md §3): DirectoryStorage cached read ≤ 1/4 of
starsessions' in-memory overhead; RedisStorage ≤ 1.3x the raw round trips it needs and
≤ 1/2 of starsessions' Redis store. Results: ``benches/results/storage_overhead.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import _harness as h

CASES = ("read", "write")
ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "target" / "bench-storage"
FS_PREFIX = "ferrosession:"

ASGI_LIBS = {
    "fs-memory": "ferrosession MemoryStorage",
    "fs-dir-cached": "ferrosession DirectoryStorage (cached, shared)",
    "fs-dir-private": "ferrosession DirectoryStorage (cached, shared=False)",
    "fs-dir-stat": "ferrosession DirectoryStorage (cached, shared='stat')",
    "fs-dir-uncached": "ferrosession DirectoryStorage (cached=False)",
    "fs-redis": "ferrosession RedisStorage (asyncio)",
    "fs-memory-idle": "ferrosession MemoryStorage, idle_timeout=1800",
    "fs-dir-cached-idle": "ferrosession DirectoryStorage (cached, shared), idle_timeout=1800",
    "fs-redis-idle": "ferrosession RedisStorage (asyncio), idle_timeout=1800",
    "starsessions-memory": "starsessions InMemoryStore",
    "starsessions-redis": "starsessions RedisStore",
}
WSGI_LIBS = {
    "fs-memory": "ferrosession MemoryStorage",
    "fs-dir-uncached": "ferrosession DirectoryStorage (cached=False)",
    "fs-redis": "ferrosession RedisStorage (sync)",
    "beaker-file": "Beaker file store",
    "flask-session-fs": "Flask-Session FileSystemCache",
    "flask-session-redis": "Flask-Session Redis",
}
FLASK_LIBS = ("flask-session-fs", "flask-session-redis")
# Issue #8: the same storage instance, the session registered with idle_timeout (default
# refresh: renewed by a storage touch at most once a minute), beside the plain one.
IDLE_TIMEOUT = 1800
IDLE_LIBS = {
    "fs-memory-idle": "fs-memory",
    "fs-dir-cached-idle": "fs-dir-cached",
    "fs-redis-idle": "fs-redis",
}


Probe = Callable[[str], Optional[tuple[Any, ...]]]


# -- the stores, read back directly (sanity) ----------------------------------------------
def _json_fields(raw: Any) -> Optional[tuple[Any, ...]]:
    if raw is None or raw in (b"", ""):
        return None
    d = json.loads(raw)
    return (d.get("user"), d.get("items"), d.get("visits"))


def _record_fields(raw: Any) -> Optional[tuple[Any, ...]]:
    """A stored lifecycle record (``~1:name:created:last_seen:deadline:payload``)."""
    if raw is None or raw in (b"", ""):
        return None
    text = raw.decode() if isinstance(raw, bytes) else raw
    if not text.startswith("~"):
        raise h.SanityError(f"not a lifecycle record: {text[:40]!r}")
    return _json_fields(text.split(":", 5)[5])


def _dict_fields(d: Any) -> Optional[tuple[Any, ...]]:
    if not d:
        return None
    return (d.get("user"), d.get("items"), d.get("visits"))


class Setup:
    """Every store and app of the run, and how to read each store directly."""

    def __init__(self, work: Path, redis_url: str) -> None:
        import redis
        import redis.asyncio
        import starsessions
        from starsessions.stores.redis import RedisStore

        import ferrosession as fs

        self.work = work
        self.redis_url = redis_url
        self.sync_redis = redis.Redis.from_url(redis_url)
        self.async_redis = redis.asyncio.Redis.from_url(redis_url)
        self.dirs = {name: work / name for name in ("fs-asgi", "fs-wsgi", "fss", "beaker")}
        for d in self.dirs.values():
            d.mkdir(parents=True, exist_ok=True)

        self.fs_memory = fs.MemoryStorage()
        self.fs_wsgi_memory = fs.MemoryStorage()
        self.fs_dir_cached = fs.DirectoryStorage(self.dirs["fs-asgi"] / "cached")
        self.fs_dir_private = fs.DirectoryStorage(self.dirs["fs-asgi"] / "private", shared=False)
        self.fs_dir_stat = fs.DirectoryStorage(self.dirs["fs-asgi"] / "stat", shared="stat")
        self.fs_dir_uncached = fs.DirectoryStorage(self.dirs["fs-asgi"] / "uncached", cached=False)
        self.fs_wsgi_dir = fs.DirectoryStorage(self.dirs["fs-wsgi"], cached=False)
        self.fs_redis = fs.RedisStorage(redis_url)
        self.ss_memory = starsessions.InMemoryStore()
        self.ss_redis = RedisStore(connection=self.async_redis, prefix="starsessions.")

        self.asgi_storages: dict[str, Any] = {
            "fs-memory": self.fs_memory,
            "fs-dir-cached": self.fs_dir_cached,
            "fs-dir-private": self.fs_dir_private,
            "fs-dir-stat": self.fs_dir_stat,
            "fs-dir-uncached": self.fs_dir_uncached,
            "fs-redis": self.fs_redis,
            "starsessions-memory": self.ss_memory,
            "starsessions-redis": self.ss_redis,
        }
        self.flask_apps = {
            "flask-session-fs": h.flask_session("filesystem", self.dirs["fss"]),
            "flask-session-redis": h.flask_session("redis", self.sync_redis),
        }
        for app in self.flask_apps.values():
            app.config["PERMANENT_SESSION_LIFETIME"] = h.LIFETIME

    def asgi_app(self, lib: str, case: str) -> Any:
        if lib in IDLE_LIBS:
            import ferrosession as fs

            sessions = fs.Sessions()
            sessions.cookie(
                h.Cart,
                h.COOKIE,
                storage=self.asgi_storages[IDLE_LIBS[lib]],
                max_age=h.LIFETIME,
                idle_timeout=IDLE_TIMEOUT,
            )
            return fs.SessionMiddleware(h.raw_asgi_app(h.fs_handlers()[case]), sessions)
        storage = self.asgi_storages[lib]
        if lib.startswith("fs-"):
            return h.fs_asgi(h.fs_stored(storage), case)
        return h.starsessions_asgi(storage, case)

    def wsgi_app(self, lib: str, case: str) -> Any:
        if lib == "fs-memory":
            return h.fs_wsgi(h.fs_stored(self.fs_wsgi_memory), case)
        if lib == "fs-dir-uncached":
            return h.fs_wsgi(h.fs_stored(self.fs_wsgi_dir), case)
        if lib == "fs-redis":
            return h.fs_wsgi(h.fs_stored(self.fs_redis), case)
        if lib == "beaker-file":
            return h.beaker_wsgi(self.dirs["beaker"], case)
        return self.flask_apps[lib]  # one app, a route per case

    def probe(self, side: str, lib: str) -> Probe:
        """Reads a session straight from ``lib``'s store (not through its middleware)."""
        import ferrosession as fs

        r = self.sync_redis
        ids = h.fs_stored(fs.MemoryStorage())

        def key(sid: str) -> str:
            return str(ids.storage_key(h.Cart, sid))

        if lib in IDLE_LIBS:
            plain = self.asgi_storages[IDLE_LIBS[lib]]
            if lib == "fs-dir-cached-idle":
                folder = self.dirs["fs-asgi"] / "cached"
                return lambda sid: _record_fields(
                    fs.DirectoryStorage(folder, cached=False).read(key(sid))
                )
            if lib == "fs-redis-idle":
                return lambda sid: _record_fields(r.get(FS_PREFIX + key(sid)))
            return lambda sid: _record_fields(plain.read(key(sid)))
        if side == "wsgi" and lib == "fs-memory":
            return lambda sid: _json_fields(self.fs_wsgi_memory.read(key(sid)))
        if lib == "fs-memory":
            return lambda sid: _json_fields(self.fs_memory.read(key(sid)))
        if lib.startswith("fs-dir") or (side == "wsgi" and lib == "fs-dir-uncached"):
            folder = {
                ("asgi", "fs-dir-cached"): self.dirs["fs-asgi"] / "cached",
                ("asgi", "fs-dir-private"): self.dirs["fs-asgi"] / "private",
                ("asgi", "fs-dir-stat"): self.dirs["fs-asgi"] / "stat",
                ("asgi", "fs-dir-uncached"): self.dirs["fs-asgi"] / "uncached",
                ("wsgi", "fs-dir-uncached"): self.dirs["fs-wsgi"],
            }[(side, lib)]
            # a fresh, uncached instance: what is really on disk
            return lambda sid: _json_fields(
                fs.DirectoryStorage(folder, cached=False).read(key(sid))
            )
        if lib == "fs-redis":
            return lambda sid: _json_fields(r.get(FS_PREFIX + key(sid)))
        if lib == "starsessions-memory":
            return lambda sid: _json_fields(self.ss_memory.data.get(sid))
        if lib == "starsessions-redis":
            return lambda sid: _json_fields(r.get("starsessions." + sid))
        if lib == "flask-session-fs":
            cache = self.flask_apps[lib].session_interface.cache
            return lambda sid: _dict_fields(cache.get("session:" + sid))
        if lib == "flask-session-redis":
            import msgspec

            def read(sid: str) -> Optional[tuple[Any, ...]]:
                raw = r.get("session:" + sid)
                return None if raw is None else _dict_fields(msgspec.msgpack.decode(raw))

            return read
        if lib == "beaker-file":
            from beaker.session import Session

            def beaker(sid: str) -> Optional[tuple[Any, ...]]:
                s = Session(
                    {},
                    use_cookies=False,
                    id=sid,
                    type="file",
                    data_dir=str(self.dirs["beaker"] / "data"),
                    lock_dir=str(self.dirs["beaker"] / "lock"),
                )
                return None if s.is_new else _dict_fields(dict(s))

            return beaker
        raise KeyError(lib)

    async def close(self) -> None:
        await self.async_redis.aclose()
        self.sync_redis.close()
        self.fs_redis.close()


# -- sanity ---------------------------------------------------------------------------
def _session_id(lines: list[str], where: str) -> str:
    if len(lines) != 1:
        raise h.SanityError(f"{where}: expected one Set-Cookie, got {lines!r}")
    pair = lines[0].strip().split(";", 1)[0].strip()
    name, _, value = pair.partition("=")
    if name != h.COOKIE or not re.fullmatch(r"[A-Za-z0-9_\-]{16,128}", value):
        raise h.SanityError(f"{where}: unexpected Set-Cookie {lines[0]!r}")
    return value


def _forged(sid: str) -> str:
    """Another id of the same shape that no store holds."""
    if re.fullmatch(r"[0-9a-f]+", sid):
        return secrets.token_hex(len(sid) // 2 + 1)[: len(sid)]
    return secrets.token_urlsafe(len(sid))[: len(sid)]


EXPECTED = (h.USER, list(h.ITEMS), h.VISITS)
CHANGED = (h.USER, list(h.ITEMS), h.VISITS + 1)


class Checked:
    """A side's checked apps: per lib, the app and the cookie of each case."""

    def __init__(self) -> None:
        self.apps: dict[tuple[str, str], Any] = {}
        self.cookies: dict[tuple[str, str], str] = {}
        self.notes: dict[str, dict[str, Any]] = {}


async def check_asgi(setup: Setup, lib: str, out: Checked) -> None:
    apps = {case: setup.asgi_app(lib, case) for case in (*CASES, "new")}

    async def request(case: str, sid: Optional[str]) -> tuple[list[str], Any]:
        reply = await h.asgi_call(apps[case], h.cookie_scope(sid and f"{h.COOKIE}={sid}"))
        return reply.set_cookies, reply.value

    await _check(f"asgi/{lib}", lib, request, setup.probe("asgi", lib), apps, out)


async def check_wsgi(setup: Setup, lib: str, out: Checked) -> None:
    apps = {case: setup.wsgi_app(lib, case) for case in (*CASES, "new")}
    where = f"wsgi/{lib}"

    async def request(case: str, sid: Optional[str]) -> tuple[list[str], Any]:
        reply = h.wsgi_call(apps[case], h.cookie_environ(f"/{case}", sid and f"{h.COOKIE}={sid}"))
        if not reply.status.startswith("200"):
            raise h.SanityError(f"{where}/{case}: status {reply.status}")
        return reply.set_cookies, reply.value

    await _check(where, lib, request, setup.probe("wsgi", lib), apps, out)


async def _check(
    where: str,
    lib: str,
    request: Callable[[str, Optional[str]], Any],
    probe: Probe,
    apps: dict[str, Any],
    out: Checked,
) -> None:
    ours = lib.startswith("fs-")
    notes: dict[str, Any] = {}
    sids: dict[str, str] = {}
    for case in CASES:  # one session per case: the write case keeps changing its own
        lines, _ = await request("new", None)
        sid = _session_id(lines, f"{where}/new")
        if probe(sid) != EXPECTED:
            raise h.SanityError(f"{where}/new: the store holds {probe(sid)!r} for the new id")
        sids[case] = sid

    lines, got = await request("read", sids["read"])
    if got != EXPECTED:
        raise h.SanityError(f"{where}/read: read {got!r}, expected {EXPECTED!r}")
    notes["read_sends_set_cookie"] = bool(lines)
    if ours and lines:
        raise h.SanityError(f"{where}/read: sent {lines!r}")

    forged = _forged(sids["read"])
    lines, got = await request("read", forged)
    if got is not None:
        raise h.SanityError(f"{where}/read: an unknown id read as {got!r}")
    if probe(forged) is not None:
        raise h.SanityError(f"{where}/read: the store adopted a client-chosen id")

    lines, _ = await request("write", sids["write"])
    notes["write_sends_set_cookie"] = bool(lines)
    if ours and _session_id(lines, f"{where}/write") != sids["write"]:
        raise h.SanityError(f"{where}/write: the id changed on a plain write: {lines!r}")
    if probe(sids["write"]) != CHANGED:
        raise h.SanityError(f"{where}/write: the store holds {probe(sids['write'])!r}")
    _, got = await request("read", sids["write"])
    if got != CHANGED:
        raise h.SanityError(f"{where}/write: read back {got!r}, expected {CHANGED!r}")
    if probe(sids["read"]) != EXPECTED:
        raise h.SanityError(f"{where}: the read session changed: {probe(sids['read'])!r}")

    for case in CASES:
        out.apps[(lib, case)] = apps[case]
        out.cookies[(lib, case)] = f"{h.COOKIE}={sids[case]}"
    notes["id_length"] = len(sids["read"])
    out.notes[lib] = notes


# -- batches of direct calls -------------------------------------------------------------


def async_then_asgi(ops: list[Callable[[], Any]], app: Any, scope: dict[str, Any]) -> Any:
    """A batch of: the raw round trips ``ops`` (awaited), then one request of ``app``,
    back to back: the controls of the RedisStorage ratios."""
    clock = time.perf_counter_ns
    receive, send = h.asgi_receive, h.asgi_discard

    async def batch(n: int) -> int:
        t0 = clock()
        for _ in range(n):
            for op in ops:
                await op()
            await app(scope.copy(), receive, send)
        return clock() - t0

    return batch


# -- run -------------------------------------------------------------------------------
async def run(args: argparse.Namespace, progress: h.Progress) -> dict[str, Any]:
    run_dir = WORK / f"run-{os.getpid()}"
    shutil.rmtree(run_dir, ignore_errors=True)
    server = h.RedisServer(run_dir / "redis")
    server.start()
    setup: Optional[Setup] = None
    before = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    try:
        args.pinned_cpu = None
        args.cpus_before_pinning = None if before is None else len(before)
        if args.pin and before is not None and server.proc is not None:
            # One CPU for this process and redis-server: a round trip is then two context
            # switches on that CPU. Unpinned, each request's wake-up lands on the same or
            # the other CPU by chance, and on a VM a cross-CPU wake-up costs ~40 µs more:
            # the figures turn bimodal. Pinned gives the smallest, steadiest round trip,
            # so a ratio to it is the strictest.
            cpu = max(before)
            os.sched_setaffinity(0, {cpu})
            os.sched_setaffinity(server.proc.pid, {cpu})
            args.pinned_cpu = cpu
        setup = Setup(run_dir, server.url)
        return await _run(args, progress, setup, server, run_dir)
    finally:
        if setup is not None:
            await setup.close()
        server.stop()
        if before is not None:
            os.sched_setaffinity(0, before)
        shutil.rmtree(run_dir, ignore_errors=True)


async def _run(
    args: argparse.Namespace,
    progress: h.Progress,
    setup: Setup,
    server: h.RedisServer,
    run_dir: Path,
) -> dict[str, Any]:
    asgi, wsgi = Checked(), Checked()
    for lib in ASGI_LIBS:
        await check_asgi(setup, lib, asgi)
    for lib in WSGI_LIBS:
        await check_wsgi(setup, lib, wsgi)

    # raw round trips and direct storage calls, checked too
    r, ar = setup.sync_redis, setup.async_redis
    raw_key = "bench:raw"
    r.set(raw_key, h.PAYLOAD, ex=h.LIFETIME)
    if r.get(raw_key) != h.PAYLOAD.encode() or await ar.get(raw_key) != h.PAYLOAD.encode():
        raise h.SanityError("raw redis: GET did not return what SET stored")
    direct = {
        "memory": setup.fs_memory,
        "cached": setup.fs_dir_cached,
        "private": setup.fs_dir_private,
        "stat": setup.fs_dir_stat,
        "uncached": setup.fs_dir_uncached,
        "redis": setup.fs_redis,
    }
    direct_ids = {name: secrets.token_hex(32) for name in direct}
    for name, storage in direct.items():
        storage.write(direct_ids[name], h.PAYLOAD, h.LIFETIME)
        if storage.read(direct_ids[name]) != h.PAYLOAD:
            raise h.SanityError(f"direct {name}: read did not return what write stored")
    if await setup.fs_redis.aread(direct_ids["redis"]) != h.PAYLOAD:
        raise h.SanityError("direct redis: aread did not return what write stored")
    fs_kind = h.filesystem_of(run_dir)
    fs_kind["revalidation"] = setup.fs_dir_cached.revalidation
    progress.note(
        f"sanity checks passed (redis-server {server.version()} on port {server.port}; "
        f"folders on {fs_kind.get('type', '?')} at {fs_kind.get('mount', '?')}; "
        f"DirectoryStorage(shared=True) revalidates by {fs_kind['revalidation']})"
    )

    variants: dict[str, h.Variant] = {}

    def add(key: str, batch: Any) -> None:
        variants[key] = h.Variant(key, batch)

    cookie_any = asgi.cookies[("fs-memory", "read")]
    add(
        "asgi/bare",
        h.asgi_batch(
            h.raw_asgi_app(None), h.asgi_scope(headers=[(b"cookie", cookie_any.encode())])
        ),
    )
    for (lib, case), app in asgi.apps.items():
        scope = h.asgi_scope(headers=[(b"cookie", asgi.cookies[(lib, case)].encode())])
        add(f"asgi/{case}/{lib}", h.asgi_batch(app, scope))
    add(
        "wsgi/bare",
        h.wsgi_batch(h.raw_wsgi_app(None), h.wsgi_environ("/", headers=[("Cookie", cookie_any)])),
    )
    flask_bare = h.flask_without_cookie("bench_flask_bare")
    for case in CASES:
        env = h.wsgi_environ(f"/{case}", headers=[("Cookie", cookie_any)])
        add(f"wsgi/{case}/flask-bare", h.wsgi_batch(flask_bare, env))
    for (lib, case), app in wsgi.apps.items():
        env = h.wsgi_environ(f"/{case}", headers=[("Cookie", wsgi.cookies[(lib, case)])])
        add(f"wsgi/{case}/{lib}", h.wsgi_batch(app, env))

    add("raw/sync/GET", h.call_batch(r.get, raw_key))
    add("raw/sync/SET", h.call_batch(lambda: r.set(raw_key, h.PAYLOAD, ex=h.LIFETIME)))
    add("raw/async/GET", h.await_batch(ar.get, raw_key))
    add("raw/async/SET", h.await_batch(lambda: ar.set(raw_key, h.PAYLOAD, ex=h.LIFETIME)))
    # Controls: the raw round trips the case needs, then the same request on MemoryStorage
    # (the middleware's whole work, without Redis in it), back to back in one loop. Against
    # the raw round trips alone (a tight loop whose code stays in the CPU caches) they show
    # what running the middleware between round trips costs by itself.
    raw_ops: dict[tuple[str, str], list[Callable[[], Any]]] = {
        ("sync", "read"): [lambda: r.get(raw_key)],
        ("sync", "write"): [
            lambda: r.get(raw_key),
            lambda: r.set(raw_key, h.PAYLOAD, ex=h.LIFETIME),
        ],
        ("async", "read"): [lambda: ar.get(raw_key)],
        ("async", "write"): [
            lambda: ar.get(raw_key),
            lambda: ar.set(raw_key, h.PAYLOAD, ex=h.LIFETIME),
        ],
    }
    for case in CASES:
        cookie = wsgi.cookies[("fs-memory", case)]
        env = h.wsgi_environ(f"/{case}", headers=[("Cookie", cookie)])
        add(
            f"control/sync/{case}",
            h.wsgi_batch(wsgi.apps[("fs-memory", case)], env, before=raw_ops[("sync", case)]),
        )
        scope = h.asgi_scope(headers=[(b"cookie", asgi.cookies[("fs-memory", case)].encode())])
        add(
            f"control/async/{case}",
            async_then_asgi(raw_ops[("async", case)], asgi.apps[("fs-memory", case)], scope),
        )
    add("direct/fs-memory/read", h.call_batch(setup.fs_memory.read, direct_ids["memory"]))
    add("direct/fs-dir-cached/read", h.call_batch(setup.fs_dir_cached.read, direct_ids["cached"]))
    add(
        "direct/fs-dir-private/read", h.call_batch(setup.fs_dir_private.read, direct_ids["private"])
    )
    add("direct/fs-dir-stat/read", h.call_batch(setup.fs_dir_stat.read, direct_ids["stat"]))
    stat_path = str(setup.fs_dir_cached.path)
    add("direct/os.stat (reference)", h.call_batch(os.stat, stat_path))
    add(
        "direct/fs-dir-uncached/read",
        h.call_batch(setup.fs_dir_uncached.read, direct_ids["uncached"]),
    )
    add(
        "direct/fs-dir-uncached/write",
        h.call_batch(setup.fs_dir_uncached.write, direct_ids["uncached"], h.PAYLOAD, h.LIFETIME),
    )
    add("direct/fs-redis/read", h.call_batch(setup.fs_redis.read, direct_ids["redis"]))
    add(
        "direct/fs-redis/write",
        h.call_batch(setup.fs_redis.write, direct_ids["redis"], h.PAYLOAD, h.LIFETIME),
    )
    add("direct/fs-redis/aread", h.await_batch(setup.fs_redis.aread, direct_ids["redis"]))
    add(
        "direct/fs-redis/awrite",
        h.await_batch(setup.fs_redis.awrite, direct_ids["redis"], h.PAYLOAD, h.LIFETIME),
    )

    rounds = await h.measure(
        list(variants.values()),
        budget_s=args.budget,
        batch_ms=args.batch_ms,
        min_rounds=args.min_rounds,
        progress=progress,
    )
    return report(args, variants, rounds, asgi, wsgi, server, fs_kind)


def report(
    args: argparse.Namespace,
    variants: dict[str, h.Variant],
    rounds: int,
    asgi: Checked,
    wsgi: Checked,
    server: h.RedisServer,
    fs_kind: dict[str, str],
) -> dict[str, Any]:
    s = {k: v.samples for k, v in variants.items()}
    med = {k: h.quantiles(v)["median"] for k, v in s.items()}

    def bare_of(side: str, case: str, lib: str) -> str:
        if side == "wsgi" and lib in FLASK_LIBS:
            return f"wsgi/{case}/flask-bare"
        return f"{side}/bare"

    results: dict[str, Any] = {"asgi": {}, "wsgi": {}}
    paired: dict[str, list[float]] = {}
    for side, libs in (("asgi", ASGI_LIBS), ("wsgi", WSGI_LIBS)):
        for case in CASES:
            entry: dict[str, Any] = {}
            for lib in libs:
                key = f"{side}/{case}/{lib}"
                bare = bare_of(side, case, lib)
                entry[lib] = {
                    **h.overhead(s[key], s[bare]),
                    "baseline": bare,
                    "baseline_us": med[bare],
                    "batch_calls": variants[key].n,
                }
                paired[key] = h.paired(s[key], s[bare])
            results[side][case] = entry

    def ov(side: str, case: str, lib: str) -> float:
        return float(results[side][case][lib]["overhead_us"])

    def goal(
        name: str,
        num_key: str,
        num: float,
        den_keys: list[str],
        den: float,
        limit: float,
        note: str,
        informational: bool = False,
    ) -> dict[str, Any]:
        ratio = num / den if den > 0 else float("inf")
        num_rounds = paired.get(num_key) or s[num_key]
        den_rounds = [
            sum(vals)
            for vals in zip(*[paired.get(k) or s[k] for k in den_keys], strict=True)  # same rounds
        ]
        return {
            "name": name,
            "numerator": num_key,
            "numerator_us": num,
            "denominator": " + ".join(den_keys),
            "denominator_us": den,
            "ratio": ratio,
            "ratio_paired": h.ratio_spread(num_rounds, den_rounds),
            "goal": limit,
            "met": ratio <= limit,
            "note": note,
            "informational": informational,
        }

    goals = [
        goal(
            f"{label}read ≤ 1/4 of starsessions' in-memory store",
            f"asgi/read/{lib}",
            ov("asgi", "read", lib),
            ["asgi/read/starsessions-memory"],
            ov("asgi", "read", "starsessions-memory"),
            0.25,
            note,
            informational=lib == "fs-dir-stat",
        )
        for lib, label, note in (
            (
                "fs-dir-cached",
                "DirectoryStorage cached ",
                "ASGI overheads; starsessions writes its store and sends Set-Cookie on a read",
            ),
            (
                "fs-dir-private",
                "(not the default) DirectoryStorage cached, shared=False, ",
                "one process only: a hit is trusted for cache_ttl, no stat",
            ),
            (
                "fs-dir-stat",
                "(diagnostic) DirectoryStorage cached, shared='stat' (one stat per hit, the "
                "fallback without a change table), ",
                "network filesystems, other systems, or shared='stat'",
            ),
        )
    ]
    for case, raw_ops in (("read", ["GET"]), ("write", ["GET", "SET"])):
        for side, mode in (("asgi", "async"), ("wsgi", "sync")):
            keys = [f"raw/{mode}/{op}" for op in raw_ops]
            goals.append(
                goal(
                    f"RedisStorage {side.upper()} {case} ≤ 1.3x raw {mode} {' + '.join(raw_ops)}",
                    f"{side}/{case}/fs-redis",
                    ov(side, case, "fs-redis"),
                    keys,
                    sum(med[k] for k in keys),
                    1.3,
                    "whole middleware overhead against the round trips the case needs"
                    + ("" if case == "read" else " (the handler reads, then changes it)"),
                )
            )
        goals.append(
            goal(
                f"RedisStorage ASGI {case} ≤ 1/2 of starsessions' Redis store",
                f"asgi/{case}/fs-redis",
                ov("asgi", case, "fs-redis"),
                [f"asgi/{case}/starsessions-redis"],
                ov("asgi", case, "starsessions-redis"),
                0.5,
                "ASGI overheads"
                + ("; starsessions also writes (SET) on a read" if case == "read" else ""),
            )
        )
    for lib, plain in IDLE_LIBS.items():
        goals.append(
            goal(
                f"{ASGI_LIBS[plain].removeprefix('ferrosession ')} read with "
                f"idle_timeout={IDLE_TIMEOUT} ≤ 1.2x the same read without timeouts",
                f"asgi/read/{lib}",
                ov("asgi", "read", lib),
                [f"asgi/read/{plain}"],
                ov("asgi", "read", plain),
                1.2,
                "ASGI overheads, the same storage instance; default refresh (a touch at "
                "most once a minute)",
            )
        )
    # Diagnostics (not goals): the RedisStorage overheads against their controls, the raw
    # round trips followed by the same request on MemoryStorage in one loop.
    for case in CASES:
        for side, mode in (("asgi", "async"), ("wsgi", "sync")):
            bare = f"{side}/bare"
            ctl = f"control/{mode}/{case}"
            paired[ctl] = h.paired(s[ctl], s[bare])
            goals.append(
                goal(
                    f"(diagnostic) RedisStorage {side.upper()} {case} ≤ 1.3x raw {mode} round "
                    f"trips then the same request on MemoryStorage",
                    f"{side}/{case}/fs-redis",
                    ov(side, case, "fs-redis"),
                    [ctl],
                    med[ctl] - med[bare],
                    1.3,
                    "control: one loop of the raw round trips and the MemoryStorage request "
                    "(minus the bare app); the middleware's own work between round trips "
                    "is in both",
                    informational=True,
                )
            )
    for op, raw in (("aread", "GET"), ("awrite", "SET"), ("read", "GET"), ("write", "SET")):
        mode = "async" if op.startswith("a") else "sync"
        k = f"direct/fs-redis/{op}"
        goals.append(
            goal(
                f"RedisStorage.{op} (direct call) ≤ 1.3x raw {mode} {raw}",
                k,
                med[k],
                [f"raw/{mode}/{raw}"],
                med[f"raw/{mode}/{raw}"],
                1.3,
                "storage alone, no middleware",
            )
        )

    return h.result(
        "storage_overhead",
        args,
        unit="microseconds per request (or per call)",
        packages=[
            "starlette",
            "starsessions",
            "flask",
            "werkzeug",
            "Flask-Session",
            "cachelib",
            "msgspec",
            "Beaker",
            "redis",
            "orjson",
        ],
        rounds=rounds,
        variants=variants,
        environment_extra={
            "redis_server": server.version(),
            "storage_filesystem": fs_kind,
            # what the machine gives, not the pinning
            **({} if args.cpus_before_pinning is None else {"nproc": args.cpus_before_pinning}),
        },
        settings={
            "session": h.DATA,
            "session_json_bytes": len(h.PAYLOAD),
            "lifetime_s": h.LIFETIME,
            "folders": str(WORK),
            "pinned_cpu": args.pinned_cpu,
            "overhead": (
                "median(with the session layer) - median(the same app without it); "
                "paired = per-round difference"
            ),
            "peer_behaviour": {"asgi": asgi.notes, "wsgi": wsgi.notes},
        },
        results=results,
        goals=goals,
    )


# -- output -----------------------------------------------------------------------------
def _f(x: float) -> str:
    return f"{x:.2f}" if x < 100 else f"{x:.0f}"


def table(result: dict[str, Any]) -> str:
    out: list[str] = []
    names = {"asgi": ASGI_LIBS, "wsgi": WSGI_LIBS}
    for side in ("asgi", "wsgi"):
        rows = []
        for lib, label in names[side].items():
            row = [label]
            for case in CASES:
                e = result["results"][side][case][lib]
                pq = e["overhead_paired_us"]
                row += [
                    _f(e["per_call_us"]["median"]),
                    f"{_f(e['overhead_us'])} ({_f(pq['p25'])} to {_f(pq['p75'])})",
                ]
            notes = result["settings"]["peer_behaviour"][side].get(lib, {})
            row.append("yes" if notes.get("read_sends_set_cookie") else "no")
            rows.append(row)
        header = [
            f"{side.upper()}: ~100-byte session",
            "read µs",
            "read overhead µs (p25 to p75)",
            "write µs",
            "write overhead µs (p25 to p75)",
            "read sends Set-Cookie",
        ]
        out.append(h.markdown_table(header, rows))
        base = result["variants"][f"{side}/bare"]["median"]
        extra = ""
        if side == "wsgi":
            fb = [result["variants"][f"wsgi/{c}/flask-bare"]["median"] for c in CASES]
            extra = (
                "; Flask-Session against the same Flask app without storage "
                f"({_f(fb[0])} / {_f(fb[1])} µs)"
            )
        out.append(f"\nBaseline: the raw {side.upper()} app, {_f(base)} µs{extra}.\n")

    rows = []
    for key, v in result["variants"].items():
        if key.startswith(("raw/", "direct/", "control/")):
            rows.append([key, _f(v["median"]), f"{_f(v['p25'])} to {_f(v['p75'])}"])
    out.append(h.markdown_table(["call", "µs (median)", "p25 to p75"], rows))

    rows = []
    for g in result["goals"]:
        rp = g["ratio_paired"]
        rows.append(
            [
                g["name"],
                f"{_f(g['numerator_us'])} / {_f(g['denominator_us'])}",
                f"{g['ratio']:.3f} ({rp['p25']:.3f} to {rp['p75']:.3f})",
                f"≤ {g['goal']:.2f}",
                "yes" if g["met"] else "**no**",
            ]
        )
    out.append("")
    out.append(
        h.markdown_table(["goal", "µs / µs", "ratio (paired p25 to p75)", "goal", "met"], rows)
    )
    env = result["environment"]
    pk = env["packages"]
    fsk = env["storage_filesystem"]
    out.append(
        f"\nMedians of {result['settings']['rounds']} interleaved rounds, in-process. "
        f"Folders on {fsk.get('type', '?')} ({fsk.get('device', '?')} at {fsk.get('mount', '?')}; "
        f"writes rename a temp file, no fsync). redis-server {env['redis_server']} on 127.0.0.1"
        + (
            f", pinned with this process to CPU {result['settings']['pinned_cpu']}. "
            if result["settings"]["pinned_cpu"] is not None
            else " (not pinned). "
        )
        + f"Python {env['python']}, ferrosession {pk['ferrosession']} "
        f"({env['ferrosession_build_profile']}), starsessions {pk['starsessions']}, "
        f"Starlette {pk['starlette']}, Flask {pk['flask']}, Flask-Session {pk['Flask-Session']}, "
        f"cachelib {pk['cachelib']}, Beaker {pk['Beaker']}, redis-py {pk['redis']}; "
        f"{env['nproc']} CPU(s): {env['cpu']}."
    )
    return "\n".join(out)


def main(argv: Optional[list[str]] = None) -> int:
    args = h.parse_args(
        "storage_overhead",
        __doc__,
        argv,
        budget=80,
        quick_budget=4,
        min_rounds=30,
        quick_min_rounds=5,
        pinned_with="redis-server",
    )
    return h.run_and_report(
        "storage_overhead",
        args,
        run,
        table,
        lambda result: all(g["met"] for g in result["goals"] if not g.get("informational")),
    )


if __name__ == "__main__":
    sys.exit(main())
