"""Sessions in an SQLite file, on the standard library's ``sqlite3``.

One table of sessions (``key`` primary key, ``value``, ``expires_at`` as Unix seconds,
indexed) and one of the owner index (``<table>_owners``: ``owner``, ``key``,
``expires_at``); a trigger deletes a session's owner rows with the session, so the index
follows invalidation, regeneration and :meth:`SQLiteStorage.gc`. Every operation is one
statement on this thread's connection, in autocommit mode.

The file is in WAL mode (readers never wait for the writer, and several processes on one
machine share it safely), with a busy timeout: a write that finds the file locked by
another writer waits up to ``timeout`` seconds, then fails with ``StorageError``.
Expiry compares with this machine's clock, which every process sharing the file reads.
"""

import asyncio
import os
import sqlite3
import threading
import time
from typing import Any, Optional, Union

from ferrosession.errors import ConfigurationError, StorageError
from ferrosession.storage._sql import (
    GC_BATCH,
    Statements,
    check_key,
    check_table,
    check_ttl,
    check_value,
)

__all__ = ["SQLiteStorage"]

# How long to sleep between two tries of the switch to WAL (which does not wait on the
# busy timeout: SQLite answers "database is locked" at once while another process
# creates the file).
_WAL_RETRY = 0.01


class SQLiteStorage:
    """Server-side sessions in an SQLite database file.

    Each thread gets its own connection (opened on its first call, in WAL mode with the
    busy timeout); the tables are created on first use (``CREATE … IF NOT EXISTS`` in one
    ``BEGIN IMMEDIATE`` transaction, so several processes starting at once agree). The
    plain methods serve the WSGI middleware and direct calls; the ``a``-methods
    (``aread``, ``awrite`` …) run the same call in the event loop's default thread pool,
    off the loop, for the ASGI middleware.

    It offers the whole storage protocol: ``read``, ``write``, ``invalidate``,
    ``create`` / ``update`` ("logout wins": an update never brings back a deleted entry),
    ``touch``, ``read_ttl``, the owner index (``index_add``, ``index_remove``,
    ``index_list``) and :meth:`gc`.

    Args:
        path: the database file (created when missing; its folder must exist).
        table: the sessions table's name, a plain SQL identifier of at most 45
            characters; the owner index is ``<table>_owners``.
        timeout: how long, in seconds, a statement waits for a lock held by another
            connection before it fails with ``StorageError``.

    Raises:
        ConfigurationError: ``table`` is not a plain identifier, ``path`` is
            ``":memory:"`` (each thread would get a database of its own: use
            ``MemoryStorage``), or ``timeout`` is not a positive number.
    """

    __slots__ = ("_local", "_lock", "_path", "_ready", "_sql", "_table", "_timeout")

    def __init__(
        self,
        path: Union[str, os.PathLike[str]],
        *,
        table: str = "ferrosession_sessions",
        timeout: float = 5.0,
    ) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise ConfigurationError(f"SQLiteStorage path must be a str or a path, not {path!r}")
        path = os.fspath(path)
        if path == ":memory:" or path == "" or path.startswith("file::memory:"):
            raise ConfigurationError(
                "SQLiteStorage needs a file: an in-memory SQLite database would be one per "
                "thread; use MemoryStorage for sessions in memory"
            )
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ConfigurationError(
                f"SQLiteStorage timeout must be a positive number of seconds, not {timeout!r}"
            )
        self._path = path
        self._table = check_table("SQLiteStorage", table)
        self._timeout = float(timeout)
        self._sql = _Statements(table)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._ready = False

    def __repr__(self) -> str:
        return f"SQLiteStorage({self._path!r}, table={self._table!r})"

    @property
    def path(self) -> str:
        """The database file."""
        return self._path

    @property
    def table(self) -> str:
        """The sessions table (the owner index is ``<table>_owners``)."""
        return self._table

    # -- connections ------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        """This thread's connection (a new one in a forked child: a connection must not
        cross a fork)."""
        local = self._local
        conn: Optional[sqlite3.Connection] = getattr(local, "conn", None)
        if conn is None or local.pid != os.getpid():
            conn = self._connect()
            local.conn, local.pid = conn, os.getpid()
        return conn

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, timeout=self._timeout, isolation_level=None)
        try:
            self._wal(conn)
            # in WAL mode, NORMAL never corrupts the file; a power cut may lose the
            # last commits, which for sessions means a few logins
            conn.execute("PRAGMA synchronous=NORMAL")
            if not self._ready:
                with self._lock:
                    if not self._ready:
                        self._create_tables(conn)
                        self._ready = True
        except BaseException:
            conn.close()
            raise
        return conn

    def _wal(self, conn: sqlite3.Connection) -> None:
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL").fetchall()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(_WAL_RETRY)

    def _create_tables(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in self._sql.create:
                conn.execute(statement)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _run(self, op: str, sql: str, params: tuple[Any, ...]) -> sqlite3.Cursor:
        try:
            return self._conn().execute(sql, params)
        except sqlite3.Error as exc:
            raise _failed(op, exc) from exc

    def _fetch(self, op: str, sql: str, params: tuple[Any, ...]) -> list[Any]:
        try:
            return self._conn().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _failed(op, exc) from exc

    def close(self) -> None:
        """Closes this thread's connection; its next call opens a new one."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

    # -- the protocol -----------------------------------------------------------------
    def read(self, session_id: str) -> Optional[str]:
        """The stored text, or ``None`` when the id is unknown or expired.

        Raises:
            StorageError: the file could not be read (locked past the timeout, gone…).
        """
        params = (check_key(session_id), time.time())
        rows = self._fetch("read", self._sql.read, params)
        return rows[0][0] if rows else None

    def write(self, session_id: str, value: str, ttl: int) -> None:
        """Stores ``value`` for ``ttl`` seconds (an upsert).

        Raises:
            TypeError: ``value`` is not a str or ``ttl`` not an int.
            ValueError: ``ttl`` is less than 1.
            StorageError: the file could not be written.
        """
        expires = time.time() + check_ttl(ttl)
        self._run("write", self._sql.write, (check_key(session_id), check_value(value), expires))

    def invalidate(self, session_id: str) -> bool:
        """Deletes the entry and its owner-index rows; ``True`` when it was live.

        Raises:
            StorageError: the file could not be written.
        """
        now = time.time()
        rows = self._fetch("invalidate", self._sql.invalidate, (check_key(session_id),))
        return bool(rows) and rows[0][0] > now

    def create(self, session_id: str, value: str, ttl: int) -> bool:
        """Stores ``value`` only when there is no live entry (an expired one counts as
        none); ``True`` when it stored.

        Raises:
            TypeError, ValueError: as for :meth:`write`.
            StorageError: the file could not be written.
        """
        now = time.time()
        params = (check_key(session_id), check_value(value), now + check_ttl(ttl), now)
        return self._run("create", self._sql.create_entry, params).rowcount == 1

    def update(self, session_id: str, value: str, ttl: int) -> bool:
        """Replaces a live entry's value and lifetime; ``False`` (storing nothing) when
        there is none: an entry deleted before is never brought back.

        Raises:
            TypeError, ValueError: as for :meth:`write`.
            StorageError: the file could not be written.
        """
        now = time.time()
        params = (check_value(value), now + check_ttl(ttl), check_key(session_id), now)
        return self._run("update", self._sql.update, params).rowcount == 1

    def touch(self, session_id: str, ttl: int) -> bool:
        """Makes a live entry expire ``ttl`` seconds from now, keeping its value;
        ``False`` when there is none.

        Raises:
            TypeError, ValueError: ``ttl`` is not a positive int.
            StorageError: the file could not be written.
        """
        now = time.time()
        params = (now + check_ttl(ttl), check_key(session_id), now)
        return self._run("touch", self._sql.touch, params).rowcount == 1

    def read_ttl(self, session_id: str) -> Optional[tuple[str, float]]:
        """The stored text and its remaining lifetime in seconds, or ``None``.

        Raises:
            StorageError: the file could not be read.
        """
        now = time.time()
        rows = self._fetch("read_ttl", self._sql.read_ttl, (check_key(session_id), now))
        if not rows:
            return None
        value, expires = rows[0]
        return value, expires - now

    def index_add(self, owner: str, session_id: str, ttl: int) -> None:
        """Records that ``session_id`` belongs to ``owner`` for ``ttl`` seconds (a later
        add of the pair replaces its lifetime).

        Raises:
            StorageError: the file could not be written.
        """
        expires = time.time() + check_ttl(ttl)
        params = (check_key(owner, "owner"), check_key(session_id), expires)
        self._run("index_add", self._sql.index_add, params)

    def index_remove(self, owner: str, session_id: str) -> None:
        """Forgets that ``session_id`` belongs to ``owner`` (no error when it was not
        recorded).

        Raises:
            StorageError: the file could not be written.
        """
        params = (check_key(owner, "owner"), check_key(session_id))
        self._run("index_remove", self._sql.index_remove, params)

    def index_list(self, owner: str) -> list[str]:
        """The keys recorded for ``owner`` whose record has not expired.

        Raises:
            StorageError: the file could not be read.
        """
        params = (check_key(owner, "owner"), time.time())
        return [row[0] for row in self._fetch("index_list", self._sql.index_list, params)]

    def gc(self) -> int:
        """Deletes the expired entries (with their owner-index rows) and the expired
        owner-index rows, :data:`GC_BATCH` rows per statement so that no writer waits
        long; returns how many session entries it deleted.

        Raises:
            StorageError: the file could not be written.
        """
        deleted = 0
        while True:
            done = self._run("gc", self._sql.gc_entries, (time.time(), GC_BATCH)).rowcount
            deleted += done
            if done < GC_BATCH:
                break
        while self._run("gc", self._sql.gc_owners, (time.time(), GC_BATCH)).rowcount >= GC_BATCH:
            pass
        return deleted

    # -- asyncio: the same calls in the loop's default thread pool ---------------------
    async def aread(self, session_id: str) -> Optional[str]:
        """Async :meth:`read` (in a worker thread)."""
        return await asyncio.get_running_loop().run_in_executor(None, self.read, session_id)

    async def awrite(self, session_id: str, value: str, ttl: int) -> None:
        """Async :meth:`write` (in a worker thread)."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.write, session_id, value, ttl)

    async def ainvalidate(self, session_id: str) -> bool:
        """Async :meth:`invalidate` (in a worker thread)."""
        return await asyncio.get_running_loop().run_in_executor(None, self.invalidate, session_id)

    async def acreate(self, session_id: str, value: str, ttl: int) -> bool:
        """Async :meth:`create` (in a worker thread)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.create, session_id, value, ttl)

    async def aupdate(self, session_id: str, value: str, ttl: int) -> bool:
        """Async :meth:`update` (in a worker thread)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.update, session_id, value, ttl)

    async def atouch(self, session_id: str, ttl: int) -> bool:
        """Async :meth:`touch` (in a worker thread)."""
        return await asyncio.get_running_loop().run_in_executor(None, self.touch, session_id, ttl)

    async def aread_ttl(self, session_id: str) -> Optional[tuple[str, float]]:
        """Async :meth:`read_ttl` (in a worker thread)."""
        return await asyncio.get_running_loop().run_in_executor(None, self.read_ttl, session_id)

    async def aindex_add(self, owner: str, session_id: str, ttl: int) -> None:
        """Async :meth:`index_add` (in a worker thread)."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.index_add, owner, session_id, ttl)

    async def aindex_remove(self, owner: str, session_id: str) -> None:
        """Async :meth:`index_remove` (in a worker thread)."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.index_remove, owner, session_id)

    async def aindex_list(self, owner: str) -> list[str]:
        """Async :meth:`index_list` (in a worker thread)."""
        return await asyncio.get_running_loop().run_in_executor(None, self.index_list, owner)

    async def agc(self) -> int:
        """Async :meth:`gc` (in a worker thread)."""
        return await asyncio.get_running_loop().run_in_executor(None, self.gc)


class _Statements(Statements):
    __slots__ = ()

    def __init__(self, t: str) -> None:
        o = f"{t}_owners"
        self.create = (
            f'CREATE TABLE IF NOT EXISTS "{t}" (key TEXT PRIMARY KEY, value TEXT NOT NULL, '
            "expires_at REAL NOT NULL)",
            f'CREATE INDEX IF NOT EXISTS "{t}_expires_at" ON "{t}" (expires_at)',
            f'CREATE TABLE IF NOT EXISTS "{o}" (owner TEXT NOT NULL, key TEXT NOT NULL, '
            "expires_at REAL NOT NULL, PRIMARY KEY (owner, key)) WITHOUT ROWID",
            f'CREATE INDEX IF NOT EXISTS "{o}_key" ON "{o}" (key)',
            f'CREATE INDEX IF NOT EXISTS "{o}_expires_at" ON "{o}" (expires_at)',
            # a session's owner rows go with it (invalidate, gc), in the same statement
            f'CREATE TRIGGER IF NOT EXISTS "{t}_unindex" AFTER DELETE ON "{t}" '
            f'BEGIN DELETE FROM "{o}" WHERE key = old.key; END',
        )
        self.read = f'SELECT value FROM "{t}" WHERE key = ? AND expires_at > ?'
        self.read_ttl = f'SELECT value, expires_at FROM "{t}" WHERE key = ? AND expires_at > ?'
        upsert = f'INSERT INTO "{t}" (key, value, expires_at) VALUES (?, ?, ?) ON CONFLICT (key) '
        replace = "DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at"
        self.write = upsert + replace
        self.create_entry = f'{upsert}{replace} WHERE "{t}".expires_at <= ?'
        self.update = f'UPDATE "{t}" SET value = ?, expires_at = ? WHERE key = ? AND expires_at > ?'
        self.touch = f'UPDATE "{t}" SET expires_at = ? WHERE key = ? AND expires_at > ?'
        self.invalidate = f'DELETE FROM "{t}" WHERE key = ? RETURNING expires_at'
        self.index_add = (
            f'INSERT INTO "{o}" (owner, key, expires_at) VALUES (?, ?, ?) '
            "ON CONFLICT (owner, key) DO UPDATE SET expires_at = excluded.expires_at"
        )
        self.index_remove = f'DELETE FROM "{o}" WHERE owner = ? AND key = ?'
        self.index_list = f'SELECT key FROM "{o}" WHERE owner = ? AND expires_at > ?'
        self.gc_entries = (
            f'DELETE FROM "{t}" WHERE rowid IN '
            f'(SELECT rowid FROM "{t}" WHERE expires_at <= ? LIMIT ?)'
        )
        self.gc_owners = (
            f'DELETE FROM "{o}" WHERE (owner, key) IN '
            f'(SELECT owner, key FROM "{o}" WHERE expires_at <= ? LIMIT ?)'
        )


def _failed(op: str, exc: BaseException) -> StorageError:
    # The key is left out on purpose: it holds a live session id.
    err = StorageError(f"SQLiteStorage {op} failed: {type(exc).__name__}: {exc}")
    err.__cause__ = exc
    return err
