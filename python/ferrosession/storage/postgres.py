"""Sessions in PostgreSQL, on psycopg 3 and psycopg_pool.

Needs ``pip install "ferrosession[postgres]"`` (psycopg and psycopg_pool).

Two tables: the sessions (``key`` primary key, ``value``, ``expires_at timestamptz``,
indexed) and the owner index (``<table>_owners``: ``owner``, ``key``, ``expires_at``).
Every operation is one statement, with the id only ever a query parameter; lifetimes
are computed by the database (``now() + ttl * interval '1 second'``, compared with
``now()``), so neither the server's nor the clients' time zone or clock matters.
Invalidating a session and :meth:`PostgresStorage.gc` delete its owner-index rows in
the same statement (a data-modifying ``WITH``).

The tables are created on first use, inside a transaction holding an advisory lock, so
several processes starting at once do not trip over each other's ``CREATE``.
"""

import asyncio
import contextlib
import hashlib
import logging
import select
import threading
import weakref
from types import ModuleType
from typing import (
    Any,
    Callable,
    Coroutine,
    Generic,
    Optional,
    TypeVar,
    overload,
)

from ferrosession.errors import ConfigurationError, StorageError
from ferrosession.storage._sql import (
    GC_BATCH,
    Statements,
    check_key,
    check_table,
    check_ttl,
    check_value,
)

__all__ = ["PostgresStorage"]

log = logging.getLogger("ferrosession")

# The pools this storage makes from a dsn. A connection that cannot be had within
# `timeout` (a database that is down) fails the request instead of hanging it.
_POOL_MIN, _POOL_MAX = 1, 10
_CONNECT_TIMEOUT = 5  # seconds, libpq's connect_timeout unless the dsn sets one


def _import() -> tuple[ModuleType, ModuleType]:
    try:
        import psycopg
        import psycopg_pool
    except ImportError as exc:
        raise ConfigurationError(
            "PostgresStorage needs psycopg 3 and psycopg_pool, which are not installed: "
            'pip install "ferrosession[postgres]"'
        ) from exc
    return psycopg, psycopg_pool


def _server_spoke(conn: Any) -> bool:
    """Whether an idle connection's socket is readable: the server closed it, or sent
    the notice that it is closing it (a restart, ``pg_terminate_backend``). An idle
    connection in good health has nothing to read. One ``poll``, no round trip."""
    try:
        poller = select.poll()
        poller.register(conn.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except Exception:  # a closed connection has no fileno
        return True


def _check(conn: Any) -> None:
    """The checkout check of the pools this storage owns: a round trip (psycopg_pool's
    own check) only when the socket says the server went away, so that the first request
    after an outage gets a fresh connection instead of a dead one, at no cost otherwise."""
    if _server_spoke(conn):
        from psycopg_pool import ConnectionPool

        ConnectionPool.check_connection(conn)


async def _acheck(conn: Any) -> None:
    if _server_spoke(conn):
        from psycopg_pool import AsyncConnectionPool

        await AsyncConnectionPool.check_connection(conn)


def _failed(op: str, exc: BaseException) -> StorageError:
    # The key is left out on purpose: it holds a live session id.
    err = StorageError(f"PostgresStorage {op} failed: {type(exc).__name__}: {exc}")
    err.__cause__ = exc
    return err


_F = TypeVar("_F")


class _AsyncMethod(Generic[_F]):
    """An ``a``-method of :class:`PostgresStorage`: absent (``AttributeError``) on a
    storage given only a sync pool, so that the ASGI middleware, which looks for them
    with ``getattr``, calls the sync ones instead."""

    def __init__(self, impl: str, doc: str) -> None:
        self.impl = impl
        self.__doc__ = doc

    @overload
    def __get__(self, obj: None, owner: Any) -> "_AsyncMethod[_F]": ...
    @overload
    def __get__(self, obj: object, owner: Any) -> _F: ...
    def __get__(self, obj: Any, owner: Any) -> Any:
        if obj is None:
            return self
        if obj._async_pool is None and obj._dsn is None:
            raise AttributeError(
                "this PostgresStorage has only a sync pool, so it has no async methods: give "
                "it async_pool= (or a dsn) to use asyncio"
            )
        return getattr(obj, self.impl)


class PostgresStorage:
    """Server-side sessions in PostgreSQL.

    Give either a ``dsn`` or pools:

    - ``PostgresStorage("postgresql://app@db/app")`` (a URL or ``key=value`` string):
      the storage opens a ``psycopg_pool.ConnectionPool`` on first sync use and an
      ``AsyncConnectionPool`` per running event loop on first use there (closed when
      that loop shuts down), each of 1 to 10 autocommit connections. A request waits at
      most ``timeout`` seconds for a connection, and a connection attempt at most 5 s
      (libpq's ``connect_timeout``, unless the dsn sets it), so a database that is down
      fails the request with ``StorageError`` instead of hanging it. On checkout, a
      connection whose server went away (its socket is readable while idle) is checked
      with a round trip and replaced, so the first request after an outage works.
    - ``PostgresStorage(pool=ConnectionPool(...), async_pool=AsyncConnectionPool(...))``:
      the pools are used as they are (opened, sized, checked and timed out as their
      owner set them up; they recover from an outage as psycopg_pool does). A storage
      with only ``pool`` has no ``a``-methods (reading ``storage.aread`` raises
      ``AttributeError``): the ASGI middleware then calls the sync ones. A storage with
      only ``async_pool`` works only under ASGI: its sync methods raise
      ``ConfigurationError``. An ``AsyncConnectionPool`` belongs to the event loop that
      opened it.

    The sync methods (``read``, ``write``, ``invalidate``, ``create``, ``update``,
    ``touch``, ``read_ttl``, ``index_add``, ``index_remove``, ``index_list``, ``gc``)
    serve the WSGI middleware and direct calls; the ``a``-methods (``aread``, ``awrite``
    …) the ASGI middleware. Each is one statement: ``create`` is an ``INSERT … ON
    CONFLICT`` that replaces only an expired row, ``update`` and ``touch`` an ``UPDATE …
    WHERE`` the row is live, so an update racing a delete never brings it back.

    Every failure (connection refused, a timeout, an error from the server) raises
    :class:`~ferrosession.StorageError` naming the operation, with psycopg's exception
    as ``__cause__``.

    Args:
        dsn: a libpq connection string or URL (not with ``pool`` / ``async_pool``).
        pool: a ``psycopg_pool.ConnectionPool``.
        async_pool: a ``psycopg_pool.AsyncConnectionPool``.
        table: the sessions table, a plain SQL identifier of at most 45 characters (the
            owner index is ``<table>_owners``, and every derived name stays within
            PostgreSQL's 63-byte limit); created in the connection's default schema.
        timeout: how long, in seconds, a request waits for a connection from a pool
            this storage owns.

    Raises:
        ConfigurationError: no dsn and no pool, both, a malformed dsn, a pool of the
            wrong kind, a table name that is not a plain identifier, or psycopg is not
            installed.
    """

    __slots__ = (
        "__weakref__",
        "_async_pool",
        "_dsn",
        "_kwargs",
        "_lock",
        "_lock_id",
        "_loops",
        "_pool",
        "_ready",
        "_sql",
        "_table",
        "_timeout",
    )

    def __init__(
        self,
        dsn: Optional[str] = None,
        *,
        pool: Any = None,
        async_pool: Any = None,
        table: str = "ferrosession_sessions",
        timeout: float = 5.0,
    ) -> None:
        self._table = check_table("PostgresStorage", table)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ConfigurationError(
                f"PostgresStorage timeout must be a positive number of seconds, not {timeout!r}"
            )
        self._timeout = float(timeout)
        self._sql = _Statements(table)
        # one lock id per table name: the processes creating the same table take turns
        digest = hashlib.sha256(f"ferrosession:{table}".encode()).digest()
        self._lock_id = int.from_bytes(digest[:8], "big", signed=True)
        self._lock = threading.Lock()
        self._ready = False
        self._dsn: Optional[str] = None
        self._kwargs: dict[str, Any] = {}
        self._pool: Any = None
        self._async_pool: Any = None
        # pools made from the dsn, one per running event loop (see _loop_pool)
        self._loops: dict[asyncio.AbstractEventLoop, _LoopPool] = {}
        psycopg, psycopg_pool = _import()
        if dsn is not None:
            if pool is not None or async_pool is not None:
                raise ConfigurationError(
                    "PostgresStorage takes a dsn or explicit pool / async_pool, not both"
                )
            if not isinstance(dsn, str):
                raise ConfigurationError(f"PostgresStorage dsn must be a str, not {dsn!r}")
            try:
                params = psycopg.conninfo.conninfo_to_dict(dsn)
            except psycopg.Error as exc:
                raise ConfigurationError(
                    f"PostgresStorage dsn is not a libpq connection string or URL: {exc}"
                ) from None
            self._dsn = dsn
            self._kwargs = {"autocommit": True}
            if "connect_timeout" not in params:
                self._kwargs["connect_timeout"] = _CONNECT_TIMEOUT
            return
        if pool is None and async_pool is None:
            raise ConfigurationError(
                'PostgresStorage needs a dsn (PostgresStorage("postgresql://user@host/db")) '
                "or a pool / async_pool"
            )
        if pool is not None:
            if isinstance(pool, psycopg_pool.AsyncConnectionPool):
                raise ConfigurationError(
                    f"{pool!r} is an AsyncConnectionPool: pass it as async_pool="
                )
            if not isinstance(pool, psycopg_pool.ConnectionPool):
                raise ConfigurationError(
                    f"PostgresStorage pool must be a psycopg_pool.ConnectionPool, not {pool!r}"
                )
            self._pool = pool
        if async_pool is not None:
            if isinstance(async_pool, psycopg_pool.ConnectionPool):
                raise ConfigurationError(
                    f"{async_pool!r} is a sync ConnectionPool: pass it as pool="
                )
            if not isinstance(async_pool, psycopg_pool.AsyncConnectionPool):
                raise ConfigurationError(
                    "PostgresStorage async_pool must be a psycopg_pool.AsyncConnectionPool, "
                    f"not {async_pool!r}"
                )
            self._async_pool = async_pool

    def __repr__(self) -> str:
        if self._dsn is not None:
            return f"PostgresStorage(<dsn>, table={self._table!r})"
        pools = f"pool={self._pool!r}, async_pool={self._async_pool!r}"
        return f"PostgresStorage({pools}, table={self._table!r})"

    @property
    def table(self) -> str:
        """The sessions table (the owner index is ``<table>_owners``)."""
        return self._table

    # -- sync -------------------------------------------------------------------------
    def _sync_pool(self) -> Any:
        pool = self._pool
        if pool is None:
            if self._dsn is None:
                raise ConfigurationError(
                    "this PostgresStorage has only an async pool, so it works only under the "
                    "ASGI middleware: give it pool= (or a dsn) for sync use"
                )
            with self._lock:
                if self._pool is None:
                    from psycopg_pool import ConnectionPool

                    made: Any = ConnectionPool(
                        self._dsn,
                        min_size=_POOL_MIN,
                        max_size=_POOL_MAX,
                        kwargs=self._kwargs,
                        open=False,
                        check=_check,
                        timeout=self._timeout,
                        # a short chain of reconnection attempts: past it, the next request starts a
                        # new one at once, instead of waiting out an ever longer backoff
                        reconnect_timeout=self._timeout,
                        name="ferrosession",
                    )
                    made.open(wait=False)
                    self._pool = made
                pool = self._pool
        return pool

    def _execute(self, op: str, sql: str, params: tuple[Any, ...], rows: bool) -> Any:
        """One statement on a pooled connection: its rows, or its row count."""
        pool = self._sync_pool()
        try:
            with pool.connection() as conn:
                if not self._ready:
                    self._create_tables(conn)
                cur = conn.execute(sql, params)
                return cur.fetchall() if rows else cur.rowcount
        except StorageError:
            raise
        except Exception as exc:
            raise _failed(op, exc) from exc

    def _create_tables(self, conn: Any) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_id,))
            for statement in self._sql.create:
                conn.execute(statement)
        self._ready = True

    def read(self, session_id: str) -> Optional[str]:
        """The stored text, or ``None`` when the id is unknown or expired (one
        ``SELECT``).

        Raises:
            StorageError: the database could not be reached or answered with an error.
        """
        found = self._execute("read", self._sql.read, (check_key(session_id),), True)
        return found[0][0] if found else None

    def write(self, session_id: str, value: str, ttl: int) -> None:
        """Stores ``value`` for ``ttl`` seconds (one ``INSERT … ON CONFLICT DO UPDATE``).

        Raises:
            TypeError: ``value`` is not a str or ``ttl`` not an int.
            ValueError: ``ttl`` is less than 1.
            StorageError: the database could not be reached or answered with an error.
        """
        self._execute("write", self._sql.write, _entry(session_id, value, ttl), False)

    def invalidate(self, session_id: str) -> bool:
        """Deletes the entry and its owner-index rows (one statement); ``True`` when it
        was live.

        Raises:
            StorageError: the database could not be reached or answered with an error.
        """
        key = check_key(session_id)
        found = self._execute("invalidate", self._sql.invalidate, (key, key), True)
        return bool(found) and bool(found[0][0])

    def create(self, session_id: str, value: str, ttl: int) -> bool:
        """Stores ``value`` only when there is no live entry (an expired one counts as
        none; one ``INSERT … ON CONFLICT DO UPDATE … WHERE`` expired): of concurrent
        creates of one key, exactly one wins. ``True`` when it stored.

        Raises:
            TypeError, ValueError: as for :meth:`write`.
            StorageError: the database could not be reached or answered with an error.
        """
        params = _entry(session_id, value, ttl)
        return self._execute("create", self._sql.create_entry, params, False) == 1  # type: ignore[no-any-return]

    def update(self, session_id: str, value: str, ttl: int) -> bool:
        """Replaces a live entry's value and lifetime (one ``UPDATE … WHERE`` live);
        ``False``, storing nothing, when there is none: an entry deleted before, or by a
        transaction that commits first, is never brought back.

        Raises:
            TypeError, ValueError: as for :meth:`write`.
            StorageError: the database could not be reached or answered with an error.
        """
        params = (check_value(value), check_ttl(ttl), check_key(session_id))
        return self._execute("update", self._sql.update, params, False) == 1  # type: ignore[no-any-return]

    def touch(self, session_id: str, ttl: int) -> bool:
        """Makes a live entry expire ``ttl`` seconds from now, keeping its value (one
        ``UPDATE``); ``False`` when there is none.

        Raises:
            TypeError, ValueError: ``ttl`` is not a positive int.
            StorageError: the database could not be reached or answered with an error.
        """
        params = (check_ttl(ttl), check_key(session_id))
        return self._execute("touch", self._sql.touch, params, False) == 1  # type: ignore[no-any-return]

    def read_ttl(self, session_id: str) -> Optional[tuple[str, float]]:
        """The stored text and its remaining lifetime in seconds, or ``None`` (one
        ``SELECT``).

        Raises:
            StorageError: the database could not be reached or answered with an error.
        """
        found = self._execute("read_ttl", self._sql.read_ttl, (check_key(session_id),), True)
        return (found[0][0], float(found[0][1])) if found else None

    def index_add(self, owner: str, session_id: str, ttl: int) -> None:
        """Records that ``session_id`` belongs to ``owner`` for ``ttl`` seconds (a later
        add of the pair replaces its lifetime; one upsert).

        Raises:
            StorageError: the database could not be reached or answered with an error.
        """
        params = (check_key(owner, "owner"), check_key(session_id), check_ttl(ttl))
        self._execute("index_add", self._sql.index_add, params, False)

    def index_remove(self, owner: str, session_id: str) -> None:
        """Forgets that ``session_id`` belongs to ``owner`` (no error when it was not
        recorded).

        Raises:
            StorageError: the database could not be reached or answered with an error.
        """
        params = (check_key(owner, "owner"), check_key(session_id))
        self._execute("index_remove", self._sql.index_remove, params, False)

    def index_list(self, owner: str) -> list[str]:
        """The keys recorded for ``owner`` whose record has not expired.

        Raises:
            StorageError: the database could not be reached or answered with an error.
        """
        found = self._execute(
            "index_list", self._sql.index_list, (check_key(owner, "owner"),), True
        )
        return [row[0] for row in found]

    def gc(self) -> int:
        """Deletes the expired entries (with their owner-index rows) and the expired
        owner-index rows, at most :data:`GC_BATCH` rows per statement (rows another
        transaction holds are skipped, not waited for); returns how many session entries
        it deleted.

        Raises:
            StorageError: the database could not be reached or answered with an error.
        """
        deleted: int = 0
        while True:
            done = self._execute("gc", self._sql.gc_entries, (GC_BATCH,), True)[0][0]
            deleted += int(done)
            if done < GC_BATCH:
                break
        while self._execute("gc", self._sql.gc_owners, (GC_BATCH,), False) >= GC_BATCH:
            pass
        return deleted

    def close(self) -> None:
        """Closes the sync pool if this storage made it (from ``dsn``); a later sync
        call opens a new one. Explicit pools are left to their owner."""
        if self._dsn is None:
            return
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    # -- asyncio ----------------------------------------------------------------------
    aread: _AsyncMethod[Callable[[str], Coroutine[Any, Any, Optional[str]]]] = _AsyncMethod(
        "_aread", "Async :meth:`read`."
    )
    awrite: _AsyncMethod[Callable[[str, str, int], Coroutine[Any, Any, None]]] = _AsyncMethod(
        "_awrite", "Async :meth:`write`."
    )
    ainvalidate: _AsyncMethod[Callable[[str], Coroutine[Any, Any, bool]]] = _AsyncMethod(
        "_ainvalidate", "Async :meth:`invalidate`."
    )
    acreate: _AsyncMethod[Callable[[str, str, int], Coroutine[Any, Any, bool]]] = _AsyncMethod(
        "_acreate", "Async :meth:`create`."
    )
    aupdate: _AsyncMethod[Callable[[str, str, int], Coroutine[Any, Any, bool]]] = _AsyncMethod(
        "_aupdate", "Async :meth:`update`."
    )
    atouch: _AsyncMethod[Callable[[str, int], Coroutine[Any, Any, bool]]] = _AsyncMethod(
        "_atouch", "Async :meth:`touch`."
    )
    aread_ttl: _AsyncMethod[Callable[[str], Coroutine[Any, Any, Optional[tuple[str, float]]]]] = (
        _AsyncMethod("_aread_ttl", "Async :meth:`read_ttl`.")
    )
    aindex_add: _AsyncMethod[Callable[[str, str, int], Coroutine[Any, Any, None]]] = _AsyncMethod(
        "_aindex_add", "Async :meth:`index_add`."
    )
    aindex_remove: _AsyncMethod[Callable[[str, str], Coroutine[Any, Any, None]]] = _AsyncMethod(
        "_aindex_remove", "Async :meth:`index_remove`."
    )
    aindex_list: _AsyncMethod[Callable[[str], Coroutine[Any, Any, list[str]]]] = _AsyncMethod(
        "_aindex_list", "Async :meth:`index_list`."
    )
    agc: _AsyncMethod[Callable[[], Coroutine[Any, Any, int]]] = _AsyncMethod(
        "_agc", "Async :meth:`gc`."
    )

    async def _apool(self) -> Any:
        fixed = self._async_pool
        if fixed is not None:
            return fixed
        loop = asyncio.get_running_loop()
        entry = self._loops.get(loop)
        if entry is None:
            entry = self._new_loop_pool(loop)
        if not entry.opened.done():
            await asyncio.shield(entry.opened)
        return entry.pool

    def _new_loop_pool(self, loop: asyncio.AbstractEventLoop) -> "_LoopPool":
        from psycopg_pool import AsyncConnectionPool

        pool = AsyncConnectionPool(
            self._dsn or "",
            min_size=_POOL_MIN,
            max_size=_POOL_MAX,
            kwargs=self._kwargs,
            open=False,
            check=_acheck,
            timeout=self._timeout,
            # a short chain of reconnection attempts: past it, the next request starts a
            # new one at once, instead of waiting out an ever longer backoff
            reconnect_timeout=self._timeout,
            name="ferrosession-async",
        )
        # Loops closed without cancelling their tasks: their pools cannot be used, nor
        # closed cleanly any more. Forget them.
        for old in [other for other in self._loops if other.is_closed()]:
            del self._loops[old]
        opened: asyncio.Future[None] = loop.create_future()
        keeper = loop.create_task(_keep_open(weakref.ref(self), loop, pool, opened))
        entry = _LoopPool(pool, keeper, opened)
        self._loops[loop] = entry
        return entry

    async def _aexecute(self, op: str, sql: str, params: tuple[Any, ...], rows: bool) -> Any:
        try:
            pool = await self._apool()
            async with pool.connection() as conn:
                if not self._ready:
                    await self._acreate_tables(conn)
                cur = await conn.execute(sql, params)
                return await cur.fetchall() if rows else cur.rowcount
        except StorageError:
            raise
        except Exception as exc:
            raise _failed(op, exc) from exc

    async def _acreate_tables(self, conn: Any) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_id,))
            for statement in self._sql.create:
                await conn.execute(statement)
        self._ready = True

    async def _aread(self, session_id: str) -> Optional[str]:
        found = await self._aexecute("read", self._sql.read, (check_key(session_id),), True)
        return found[0][0] if found else None

    async def _awrite(self, session_id: str, value: str, ttl: int) -> None:
        await self._aexecute("write", self._sql.write, _entry(session_id, value, ttl), False)

    async def _ainvalidate(self, session_id: str) -> bool:
        key = check_key(session_id)
        found = await self._aexecute("invalidate", self._sql.invalidate, (key, key), True)
        return bool(found) and bool(found[0][0])

    async def _acreate(self, session_id: str, value: str, ttl: int) -> bool:
        params = _entry(session_id, value, ttl)
        return await self._aexecute("create", self._sql.create_entry, params, False) == 1  # type: ignore[no-any-return]

    async def _aupdate(self, session_id: str, value: str, ttl: int) -> bool:
        params = (check_value(value), check_ttl(ttl), check_key(session_id))
        return await self._aexecute("update", self._sql.update, params, False) == 1  # type: ignore[no-any-return]

    async def _atouch(self, session_id: str, ttl: int) -> bool:
        params = (check_ttl(ttl), check_key(session_id))
        return await self._aexecute("touch", self._sql.touch, params, False) == 1  # type: ignore[no-any-return]

    async def _aread_ttl(self, session_id: str) -> Optional[tuple[str, float]]:
        key = (check_key(session_id),)
        found = await self._aexecute("read_ttl", self._sql.read_ttl, key, True)
        return (found[0][0], float(found[0][1])) if found else None

    async def _aindex_add(self, owner: str, session_id: str, ttl: int) -> None:
        params = (check_key(owner, "owner"), check_key(session_id), check_ttl(ttl))
        await self._aexecute("index_add", self._sql.index_add, params, False)

    async def _aindex_remove(self, owner: str, session_id: str) -> None:
        params = (check_key(owner, "owner"), check_key(session_id))
        await self._aexecute("index_remove", self._sql.index_remove, params, False)

    async def _aindex_list(self, owner: str) -> list[str]:
        key = (check_key(owner, "owner"),)
        return [
            row[0] for row in await self._aexecute("index_list", self._sql.index_list, key, True)
        ]

    async def _agc(self) -> int:
        deleted: int = 0
        while True:
            done = (await self._aexecute("gc", self._sql.gc_entries, (GC_BATCH,), True))[0][0]
            deleted += int(done)
            if done < GC_BATCH:
                break
        while await self._aexecute("gc", self._sql.gc_owners, (GC_BATCH,), False) >= GC_BATCH:
            pass
        return deleted

    async def aclose(self) -> None:
        """Closes the running loop's pool if this storage made it (from ``dsn``); the
        next async call opens a new one. Not needed with ``asyncio.run`` or uvicorn,
        which close it when the loop shuts down. Explicit pools are left to their owner."""
        entry = self._loops.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            entry.keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await entry.keeper


class _LoopPool:
    """A pool made for one event loop, the task that keeps it open (see
    :func:`_keep_open`), and the future the requests arriving while it opens wait on."""

    __slots__ = ("keeper", "opened", "pool")

    def __init__(
        self, pool: Any, keeper: "asyncio.Task[None]", opened: "asyncio.Future[None]"
    ) -> None:
        self.pool = pool
        self.keeper = keeper
        self.opened = opened


async def _keep_open(
    owner: "weakref.ref[PostgresStorage]",
    loop: asyncio.AbstractEventLoop,
    pool: Any,
    opened: "asyncio.Future[None]",
) -> None:
    """Opens ``pool``, then waits until it is cancelled, and closes the pool. A loop that
    shuts down (``asyncio.run``, ``asyncio.Runner``, uvicorn, anyio) cancels every task,
    this one among them, and waits for them all. It must be a task, closing the pool
    while the pool's own tasks are cancelled: psycopg_pool's workers swallow a
    cancellation that lands in a connection attempt, and only the pool's close stops
    them then (an async generator closed after the tasks would come too late: the loop
    would wait for those workers forever). The storage is held weakly: a strong
    reference would make the storage and its pools a cycle."""
    try:
        await pool.open(wait=False)
        opened.set_result(None)
        await loop.create_future()  # until cancelled
    finally:
        if not opened.done():
            opened.cancel()
        storage = owner()
        if storage is not None:
            entry = storage._loops.get(loop)
            if entry is not None and entry.pool is pool:
                del storage._loops[loop]
        try:
            await pool.close()
        except Exception as exc:  # closing a pool whose server is gone
            log.debug("PostgresStorage: closing an async pool failed: %r", exc)


def _entry(session_id: str, value: str, ttl: int) -> tuple[str, str, int]:
    return check_key(session_id), check_value(value), check_ttl(ttl)


class _Statements(Statements):
    __slots__ = ()

    def __init__(self, t: str) -> None:
        o = f"{t}_owners"
        expires = "now() + %s * interval '1 second'"
        self.create = (
            f'CREATE TABLE IF NOT EXISTS "{t}" (key text PRIMARY KEY, value text NOT NULL, '
            "expires_at timestamptz NOT NULL)",
            f'CREATE INDEX IF NOT EXISTS "{t}_expires_at" ON "{t}" (expires_at)',
            f'CREATE TABLE IF NOT EXISTS "{o}" (owner text NOT NULL, key text NOT NULL, '
            "expires_at timestamptz NOT NULL, PRIMARY KEY (owner, key))",
            f'CREATE INDEX IF NOT EXISTS "{o}_key" ON "{o}" (key)',
            f'CREATE INDEX IF NOT EXISTS "{o}_expires_at" ON "{o}" (expires_at)',
        )
        self.read = f'SELECT value FROM "{t}" WHERE key = %s AND expires_at > now()'
        self.read_ttl = (
            f"SELECT value, extract(epoch FROM expires_at - now())::float8 "
            f'FROM "{t}" WHERE key = %s AND expires_at > now()'
        )
        upsert = (
            f'INSERT INTO "{t}" AS s (key, value, expires_at) VALUES (%s, %s, {expires}) '
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
            "expires_at = excluded.expires_at"
        )
        self.write = upsert
        self.create_entry = upsert + " WHERE s.expires_at <= now()"
        self.update = (
            f'UPDATE "{t}" SET value = %s, expires_at = {expires} '
            "WHERE key = %s AND expires_at > now()"
        )
        self.touch = (
            f'UPDATE "{t}" SET expires_at = {expires} WHERE key = %s AND expires_at > now()'
        )
        self.invalidate = (
            f'WITH gone AS (DELETE FROM "{t}" WHERE key = %s '
            "RETURNING expires_at > now() AS live), "
            f'unindexed AS (DELETE FROM "{o}" WHERE key = %s) SELECT live FROM gone'
        )
        self.index_add = (
            f'INSERT INTO "{o}" (owner, key, expires_at) VALUES (%s, %s, {expires}) '
            "ON CONFLICT (owner, key) DO UPDATE SET expires_at = excluded.expires_at"
        )
        self.index_remove = f'DELETE FROM "{o}" WHERE owner = %s AND key = %s'
        self.index_list = f'SELECT key FROM "{o}" WHERE owner = %s AND expires_at > now()'
        self.gc_entries = (
            f'WITH doomed AS (SELECT key FROM "{t}" WHERE expires_at <= now() LIMIT %s '
            "FOR UPDATE SKIP LOCKED), "
            f'gone AS (DELETE FROM "{t}" s USING doomed WHERE s.key = doomed.key '
            "AND s.expires_at <= now() RETURNING s.key), "
            f'unindexed AS (DELETE FROM "{o}" WHERE key IN (SELECT key FROM gone)) '
            "SELECT count(*) FROM gone"
        )
        self.gc_owners = (
            f'DELETE FROM "{o}" WHERE ctid IN (SELECT ctid FROM "{o}" '
            "WHERE expires_at <= now() LIMIT %s FOR UPDATE SKIP LOCKED)"
        )
