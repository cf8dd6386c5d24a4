"""Sessions in Redis, Valkey or a Redis Cluster, on redis-py.

Needs ``pip install "ferrosession[redis]"`` (redis-py) for a ``url``.

One round trip per operation: ``GET`` to read, ``SET key value EX ttl`` to write, ``DEL``
to invalidate, ``SET … NX EX`` to create, ``SET … XX EX`` to update, ``EXPIRE`` to touch,
and a short Lua script (``EVALSHA``, falling back to ``EVAL`` once per server) for
``read_ttl`` and ``index_add``. Keys are ``prefix + session id``; values are the session
text as UTF-8, whatever ``decode_responses`` or ``encoding`` the client was built with
(replies are read undecoded, so the client's settings are used as they are and never
changed).

Clients built from a ``url`` get a 1 s ``socket_timeout`` and ``socket_connect_timeout``
(redis-py before 8 waits forever by default, 8 waits 5 s, so a Redis that stops answering
would hang every request): such a Redis is a ``StorageError`` after about a second. The
URL's query overrides them (``?socket_timeout=5``). Explicit clients are used as they are.

asyncio clients belong to the event loop that first uses them, so a client built from a
``url`` (or by an ``async_client`` factory) is made once per running loop, on its first
await there, and closed when that loop shuts down (``asyncio.run``, ``asyncio.Runner``,
uvicorn and anyio all shut their loop down that way), or soon after the storage itself is
dropped while its loop runs on; a client bound to a closed loop is never used again.

The owner index ("which sessions belong to user X") is one sorted set per owner, at
``prefix + "owner:" + owner`` (session keys never hold a ``:``, so it cannot collide with
a session key): each member is a session key as the middleware gave it (without the
prefix), scored with its index expiry as Unix milliseconds **on the client's clock**
(``time.time()``; the processes sharing a Redis should keep their clocks in sync, as
they must for the cookies' own lifetimes anyway). Every ``index_add`` also drops the
members whose score has passed and extends the sorted set's own lifetime so that it
outlives its longest-lived member; that lifetime is never shortened, and it is relative
(``PEXPIRE``), so the server's clock does not matter. The script uses only Redis 2.6
commands (it does not need ``EXPIRE … GT`` from Redis 7), and every command of a call
touches one key, so it works on a Redis Cluster too.
"""

import asyncio
import functools
import hashlib
import inspect
import logging
import threading
import time
import weakref
from types import ModuleType
from typing import Any, AsyncGenerator, Awaitable, Callable, Generic, Optional, TypeVar, overload
from urllib.parse import urlsplit, urlunsplit

from ferrosession.errors import ConfigurationError, StorageError

__all__ = ["RedisStorage"]

log = logging.getLogger("ferrosession")

# Lifetimes past this are clamped (about 68 years, the cookie Max-Age limit).
_MAX_TTL = 2**31 - 1
# Given to Redis.from_url for the clients made from a url; the URL's query wins over them
# (redis-py applies its query after the keyword arguments). redis-py's own default (none
# before redis-py 8: wait forever; 5 s since) lets a stopped Redis hang every request for
# that long. One second is far above a session GET/SET's round trip.
_URL_CLIENT_TIMEOUTS: dict[str, Any] = {"socket_timeout": 1.0, "socket_connect_timeout": 1.0}
# redis.client.NEVER_DECODE: the option that makes redis-py return this one reply as raw
# bytes, whatever the client's decode_responses says (redis-py uses it for DUMP).
_RAW: dict[str, Any] = {"NEVER_DECODE": []}

AsyncReader = Callable[[str], Awaitable[Optional[str]]]
AsyncWriter = Callable[[str, str, int], Awaitable[None]]
AsyncInvalidator = Callable[[str], Awaitable[bool]]
AsyncCreator = Callable[[str, str, int], Awaitable[bool]]  # acreate and aupdate
AsyncToucher = Callable[[str, int], Awaitable[bool]]
AsyncTtlReader = Callable[[str], Awaitable[Optional[tuple[str, float]]]]
AsyncIndexAdder = Callable[[str, str, int], Awaitable[None]]
AsyncIndexRemover = Callable[[str, str], Awaitable[None]]
AsyncIndexLister = Callable[[str], Awaitable[list[str]]]


class _Script:
    """A Lua script run with ``EVALSHA`` on one key (``EVAL`` when the server does not
    know it yet: after a restart, a ``SCRIPT FLUSH``, or on a cluster node seen first)."""

    __slots__ = ("sha", "text")

    def __init__(self, text: str) -> None:
        self.text = text.encode("utf-8")
        self.sha = hashlib.sha1(self.text).hexdigest()


# The value and its remaining lifetime, read atomically: nil for a missing key, else
# {value, PTTL} (PTTL -1 when the key has no expiry).
_READ_TTL = _Script(
    "local v = redis.call('GET', KEYS[1])\n"
    "if not v then return nil end\n"
    "return {v, redis.call('PTTL', KEYS[1])}\n"
)
# ARGV: score (expiry in client ms), member, now (client ms), ttl in ms. Adds the member,
# drops the expired ones, and makes the set live at least ttl ms more (never less: PTTL
# is -1 for a set that has no expiry yet, i.e. one ZADD just made).
_INDEX_ADD = _Script(
    "redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])\n"
    "local left = redis.call('PTTL', KEYS[1])\n"
    "if left < tonumber(ARGV[4]) then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end\n"
    "return 1\n"
)


def _no_script(exc: BaseException) -> bool:
    # redis-py and valkey-py both raise a NoScriptError (a ResponseError) for NOSCRIPT.
    return any(cls.__name__ == "NoScriptError" for cls in type(exc).__mro__)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _import_redis() -> ModuleType:
    try:
        import redis
    except ImportError as exc:
        raise ConfigurationError(
            'RedisStorage needs redis-py, which is not installed: pip install "ferrosession[redis]"'
        ) from exc
    return redis


def _check_ttl(ttl: int) -> int:
    if isinstance(ttl, bool) or not isinstance(ttl, int):
        raise TypeError(f"ttl must be whole seconds as an int, not {type(ttl).__name__}")
    if ttl < 1:
        raise ValueError(
            f"ttl must be at least 1 second for Redis (it rejects EX {ttl}); a server-side "
            "session's max_age must be at least 1"
        )
    return min(ttl, _MAX_TTL)


def _failed(op: str, exc: BaseException) -> StorageError:
    # The key is left out on purpose: it holds a live session id.
    # redis-py 8's repr of its errors drops the message: spell out both.
    err = StorageError(f"RedisStorage {op} failed: {type(exc).__name__}: {exc}")
    err.__cause__ = exc
    return err


def _text(raw: Any) -> Optional[str]:
    if raw is None or isinstance(raw, str):
        return raw
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        # Not written by ferrosession: treat it like a value that no longer deserializes.
        log.debug("RedisStorage: a stored value is not UTF-8 text: reading it as absent")
        return None


def _redacted(url: str) -> str:
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        user = parts.username or ""
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port is not None else ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))
    except ValueError:
        return "<url>"


def _is_asyncio_client(client: Any) -> bool:
    return inspect.iscoroutinefunction(getattr(client, "execute_command", None))


_F = TypeVar("_F")


class _AsyncMethod(Generic[_F]):
    """An asyncio method of :class:`RedisStorage` (``aread`` & co.): absent
    (``AttributeError``) on a storage that has only a sync client, so that the
    middleware, which looks for them with ``getattr``, calls the sync ones instead."""

    def __init__(self, impl: str, doc: str) -> None:
        self.impl = impl
        self.__doc__ = doc

    @overload
    def __get__(self, obj: None, owner: Any) -> "_AsyncMethod[_F]": ...
    @overload
    def __get__(self, obj: "RedisStorage", owner: Any) -> _F: ...
    def __get__(self, obj: Optional["RedisStorage"], owner: Any) -> Any:
        if obj is None:
            return self
        obj._check_async()
        return getattr(obj, self.impl)


class RedisStorage:
    """Server-side sessions in Redis (also Valkey, and Redis Cluster through a cluster
    client), on redis-py.

    Give either a ``url`` or explicit clients:

    - ``RedisStorage("redis://127.0.0.1:6379/0")``: the storage builds a sync
      ``redis.Redis.from_url(url)`` on first sync use and an asyncio
      ``redis.asyncio.Redis.from_url(url)`` per running event loop, on first use in it.
      Both wait at most 1 s for a connection and for a reply (``socket_connect_timeout``
      and ``socket_timeout``), so a Redis that stops answering fails the request with
      ``StorageError`` instead of hanging it. Client options go in the URL's query, which
      overrides these (``?socket_timeout=5&socket_connect_timeout=2``).
    - ``RedisStorage(client=redis.RedisCluster(...), async_client=...)``: the clients are
      used as they are (a ``redis.Redis``, ``redis.RedisCluster``, their asyncio versions,
      or the Valkey equivalents), with their own timeouts: give them ``socket_timeout``
      and ``socket_connect_timeout`` (redis-py before 8 waits forever by default).
      ``async_client`` is either an asyncio client, which is then bound to the one event
      loop that uses it (create it for the loop that serves the app), or a callable
      returning a new asyncio client, which the storage calls once per event loop like it
      does for a ``url``.

    The sync methods (``read``, ``write``, ``invalidate`` and the optional lifecycle ones
    ``create``, ``update``, ``touch``, ``read_ttl``, ``index_add``, ``index_remove``,
    ``index_list``) serve the WSGI middleware and direct calls; the asyncio ones (the same
    names with an ``a`` in front: ``aread``, ``awrite``, ``ainvalidate``, ``acreate`` …)
    serve the ASGI middleware. A storage with only a sync ``client`` has no asyncio
    methods (reading ``storage.aread`` raises ``AttributeError``): it is a plain sync
    storage, which the ASGI middleware calls directly, blocking the loop for each round
    trip. A storage with only an ``async_client`` works only under ASGI: its sync methods
    raise ``ConfigurationError``.

    Every failure of a round trip (connection refused, timeout, an error reply, a cluster
    without a reachable node) raises :class:`~ferrosession.StorageError` naming the
    operation, with the client's exception as ``__cause__``.

    An active session with ``idle_timeout`` is renewed by rewriting its record (one
    ``SET … XX``, at most once per ``refresh`` interval), not by ``touch``: that needs
    ``read_ttl`` on every read, a Lua call that costs ~20 % more than a ``GET``
    (``renew_by_touch = False``).

    Args:
        url: a ``redis://``, ``rediss://`` or ``unix://`` URL.
        client: a sync redis-py client (not with ``url``).
        async_client: an asyncio redis-py client, or a callable returning one (not with
            ``url``).
        prefix: put before every session id to make the key.

    Raises:
        ConfigurationError: no url and no client, both, a malformed url, a client of the
            wrong kind, or redis-py is not installed (for ``url``).
    """

    # the middleware renews idle sessions by a rewrite, not read_ttl + touch (see above)
    renew_by_touch = False

    __slots__ = (
        "__weakref__",
        "_async_factory",
        "_async_fixed",
        "_lock",
        "_loops",
        "_prefix",
        "_sync",
        "_sync_owned",
        "_url",
    )

    def __init__(
        self,
        url: Optional[str] = None,
        *,
        client: Any = None,
        async_client: Any = None,
        prefix: str = "ferrosession:",
    ) -> None:
        if not isinstance(prefix, str):
            raise ConfigurationError(f"RedisStorage prefix must be a str, not {prefix!r}")
        self._prefix = prefix
        self._url = url
        self._lock = threading.Lock()
        # Clients this storage made, one per running event loop, with the async
        # generator that closes each when its loop shuts down (see _new_async_client).
        self._loops: dict[asyncio.AbstractEventLoop, tuple[Any, AsyncGenerator[None, None]]] = {}
        self._sync: Any = None  # the sync client (redis-py's types are not worth it here)
        self._sync_owned = False
        self._async_fixed: Any = None
        self._async_factory: Optional[Callable[[], Any]] = None
        if url is not None:
            if client is not None or async_client is not None:
                raise ConfigurationError(
                    "RedisStorage takes a url or explicit client / async_client, not both"
                )
            if not isinstance(url, str):
                raise ConfigurationError(f"RedisStorage url must be a str, not {url!r}")
            redis = _import_redis()
            try:
                redis.connection.parse_url(url)
            except ValueError as exc:
                raise ConfigurationError(
                    f"RedisStorage url {_redacted(url)!r} is not a Redis URL: {exc}"
                ) from None
            self._sync_owned = True
            # not a bound method: that would make the storage a cycle (see _close_with_loop)
            self._async_factory = functools.partial(_async_client_from_url, url)
            return
        if client is None and async_client is None:
            raise ConfigurationError(
                'RedisStorage needs a url (RedisStorage("redis://127.0.0.1:6379/0")) or a '
                "client / async_client"
            )
        if client is not None:
            if not callable(getattr(client, "execute_command", None)):
                raise ConfigurationError(f"RedisStorage client {client!r} is not a redis client")
            if _is_asyncio_client(client):
                raise ConfigurationError(
                    f"{client!r} is an asyncio client: pass it as async_client="
                )
            self._sync = client
        if async_client is not None:
            if callable(getattr(async_client, "execute_command", None)):
                if not _is_asyncio_client(async_client):
                    raise ConfigurationError(
                        f"{async_client!r} is a sync client: pass it as client="
                    )
                self._async_fixed = async_client
            elif callable(async_client):
                self._async_factory = async_client
            else:
                raise ConfigurationError(
                    "RedisStorage async_client must be an asyncio redis client or a callable "
                    f"returning one, not {async_client!r}"
                )

    def __repr__(self) -> str:
        if self._url is not None:
            return f"RedisStorage({_redacted(self._url)!r}, prefix={self._prefix!r})"
        clients = (
            f"client={self._sync!r}, async_client={self._async_fixed or self._async_factory!r}"
        )
        return f"RedisStorage({clients}, prefix={self._prefix!r})"

    @property
    def prefix(self) -> str:
        """What is put before a session id to make its key."""
        return self._prefix

    def _key(self, session_id: str) -> bytes:
        return (self._prefix + session_id).encode("utf-8", "surrogatepass")

    def _owner_key(self, owner: str) -> bytes:
        if not isinstance(owner, str):
            raise TypeError(f"owner must be a str, not {type(owner).__name__}")
        return (self._prefix + "owner:" + owner).encode("utf-8", "surrogatepass")

    def _index_list_command(self, owner: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """``index_list``'s command: the owner's members whose time has not passed."""
        owner_key = self._owner_key(owner)
        command = ("ZRANGEBYSCORE", owner_key, f"({_now_ms()}", "+inf")
        return command, {"keys": [owner_key], **_RAW}

    def _index_add_args(
        self, owner: str, session_id: str, ttl: int
    ) -> tuple[bytes, tuple[int, bytes, int, int]]:
        """The owner's key and the arguments of ``_INDEX_ADD``."""
        owner_key, member = self._owner_key(owner), _member(session_id)
        ttl_ms = _check_ttl(ttl) * 1000
        now = _now_ms()
        return owner_key, (now + ttl_ms, member, now, ttl_ms)

    # -- sync -------------------------------------------------------------------------
    def _client(self) -> Any:
        client = self._sync
        if client is None:
            if not self._sync_owned:
                raise ConfigurationError(
                    "this RedisStorage has only an asyncio client, so it works only under the "
                    "ASGI middleware: give it client= (or a url) for sync use"
                )
            with self._lock:
                if self._sync is None:
                    redis = _import_redis()
                    self._sync = redis.Redis.from_url(self._url, **_URL_CLIENT_TIMEOUTS)
                client = self._sync
        return client

    def read(self, session_id: str) -> Optional[str]:
        """The stored text, or ``None`` when the id is unknown or expired (one ``GET``).

        Raises:
            StorageError: Redis could not be reached or answered with an error.
        """
        key = self._key(session_id)
        return _text(self._run("read (GET)", "GET", key, keys=[key], **_RAW))

    def write(self, session_id: str, value: str, ttl: int) -> None:
        """Stores ``value`` for ``ttl`` seconds (one ``SET … EX ttl``).

        Raises:
            TypeError: ``value`` is not a str or ``ttl`` not an int.
            ValueError: ``ttl`` is less than 1.
            StorageError: Redis could not be reached or answered with an error.
        """
        key, data, ttl = self._key(session_id), _data(value), _check_ttl(ttl)
        # execute_command, not client.set: its option checks cost ~2 µs a call
        self._run("write (SET)", "SET", key, data, "EX", ttl, keys=[key])

    def invalidate(self, session_id: str) -> bool:
        """Deletes the entry (one ``DEL``): ``True`` when there was one, ``False`` when
        there was none (never stored, deleted or expired).

        Raises:
            StorageError: Redis could not be reached or answered with an error.
        """
        key = self._key(session_id)
        return bool(self._run("invalidate (DEL)", "DEL", key, keys=[key]))

    def create(self, session_id: str, value: str, ttl: int) -> bool:
        """Stores ``value`` for ``ttl`` seconds only when there is no live entry (one
        ``SET … NX EX ttl``, atomic: of concurrent creates of one key, exactly one wins).
        ``True`` when stored.

        Raises:
            TypeError: ``value`` is not a str or ``ttl`` not an int.
            ValueError: ``ttl`` is less than 1.
            StorageError: Redis could not be reached or answered with an error.
        """
        key, data, ttl = self._key(session_id), _data(value), _check_ttl(ttl)
        return bool(self._run("create (SET NX)", "SET", key, data, "NX", "EX", ttl, keys=[key]))

    def update(self, session_id: str, value: str, ttl: int) -> bool:
        """Replaces a live entry's value and lifetime (one ``SET … XX EX ttl``, atomic: an
        entry deleted or expired before is never brought back). ``True`` when stored,
        ``False`` when there was no live entry.

        Raises:
            TypeError: ``value`` is not a str or ``ttl`` not an int.
            ValueError: ``ttl`` is less than 1.
            StorageError: Redis could not be reached or answered with an error.
        """
        key, data, ttl = self._key(session_id), _data(value), _check_ttl(ttl)
        return bool(self._run("update (SET XX)", "SET", key, data, "XX", "EX", ttl, keys=[key]))

    def touch(self, session_id: str, ttl: int) -> bool:
        """Makes a live entry expire ``ttl`` seconds from now without rewriting it (one
        ``EXPIRE``). ``False`` when there is no live entry.

        Raises:
            TypeError: ``ttl`` is not an int.
            ValueError: ``ttl`` is less than 1.
            StorageError: Redis could not be reached or answered with an error.
        """
        key, ttl = self._key(session_id), _check_ttl(ttl)
        return bool(self._run("touch (EXPIRE)", "EXPIRE", key, ttl, keys=[key]))

    def read_ttl(self, session_id: str) -> Optional[tuple[str, float]]:
        """The stored text and its remaining lifetime in seconds, or ``None`` when there
        is no live entry (``GET`` and ``PTTL`` in one script, so they see the same entry).
        An entry stored without an expiry (not by ferrosession) has ``float("inf")`` left.

        Raises:
            StorageError: Redis could not be reached or answered with an error.
        """
        return _text_ttl(self._script("read_ttl (GET, PTTL)", _READ_TTL, self._key(session_id)))

    def index_add(self, owner: str, session_id: str, ttl: int) -> None:
        """Records that ``session_id`` belongs to ``owner`` for ``ttl`` seconds (replacing
        the lifetime of an earlier record of the pair), drops the owner's expired records
        and keeps the owner's sorted set alive at least as long as this record (one
        script: ``ZADD``, ``ZREMRANGEBYSCORE``, ``PTTL``, ``PEXPIRE``).

        Raises:
            TypeError: ``ttl`` is not an int.
            ValueError: ``ttl`` is less than 1.
            StorageError: Redis could not be reached or answered with an error.
        """
        owner_key, args = self._index_add_args(owner, session_id, ttl)
        self._script("index_add (ZADD)", _INDEX_ADD, owner_key, *args)

    def index_remove(self, owner: str, session_id: str) -> None:
        """Forgets that ``session_id`` belongs to ``owner`` (one ``ZREM``; no error when
        it was not recorded).

        Raises:
            StorageError: Redis could not be reached or answered with an error.
        """
        owner_key, member = self._owner_key(owner), _member(session_id)
        self._run("index_remove (ZREM)", "ZREM", owner_key, member, keys=[owner_key])

    def index_list(self, owner: str) -> list[str]:
        """The session keys recorded for ``owner`` whose record has not expired (one
        ``ZRANGEBYSCORE``), in no particular order; ``[]`` for an unknown owner. Their
        sessions may be gone already: the caller checks them.

        Raises:
            StorageError: Redis could not be reached or answered with an error.
        """
        command, options = self._index_list_command(owner)
        return _members(self._run("index_list (ZRANGEBYSCORE)", *command, **options))

    def _run(self, op: str, *command: Any, **options: Any) -> Any:
        """One command on the sync client; a failure is a StorageError naming ``op``."""
        client = self._client()
        try:
            return client.execute_command(*command, **options)
        except Exception as exc:
            raise _failed(op, exc) from exc

    def _script(self, op: str, script: _Script, key: bytes, *args: Any) -> Any:
        """One script on the sync client (see :func:`_eval`)."""
        client = self._client()
        try:
            return _eval(client, script, key, *args)
        except Exception as exc:
            raise _failed(op, exc) from exc

    async def _arun(self, op: str, *command: Any, **options: Any) -> Any:
        """One command on the running loop's asyncio client."""
        client = self._loop_client()
        if client is None:
            client = await self._new_async_client()
        try:
            return await client.execute_command(*command, **options)
        except Exception as exc:
            raise _failed(op, exc) from exc

    async def _ascript(self, op: str, script: _Script, key: bytes, *args: Any) -> Any:
        """One script on the running loop's asyncio client."""
        client = self._loop_client()
        if client is None:
            client = await self._new_async_client()
        try:
            return await _aeval(client, script, key, *args)
        except Exception as exc:
            raise _failed(op, exc) from exc

    def close(self) -> None:
        """Closes the sync client if this storage made it (from ``url``); a later sync
        call makes a new one. Explicit clients are left to their owner."""
        if not self._sync_owned:
            return
        with self._lock:
            client, self._sync = self._sync, None
        if client is not None:
            client.close()

    # -- asyncio ----------------------------------------------------------------------
    # Each is absent (AttributeError) on a storage without an asyncio client.
    aread: _AsyncMethod[AsyncReader] = _AsyncMethod("_aread", "Async :meth:`read`.")
    awrite: _AsyncMethod[AsyncWriter] = _AsyncMethod("_awrite", "Async :meth:`write`.")
    ainvalidate: _AsyncMethod[AsyncInvalidator] = _AsyncMethod(
        "_ainvalidate", "Async :meth:`invalidate`."
    )
    acreate: _AsyncMethod[AsyncCreator] = _AsyncMethod("_acreate", "Async :meth:`create`.")
    aupdate: _AsyncMethod[AsyncCreator] = _AsyncMethod("_aupdate", "Async :meth:`update`.")
    atouch: _AsyncMethod[AsyncToucher] = _AsyncMethod("_atouch", "Async :meth:`touch`.")
    aread_ttl: _AsyncMethod[AsyncTtlReader] = _AsyncMethod("_aread_ttl", "Async :meth:`read_ttl`.")
    aindex_add: _AsyncMethod[AsyncIndexAdder] = _AsyncMethod(
        "_aindex_add", "Async :meth:`index_add`."
    )
    aindex_remove: _AsyncMethod[AsyncIndexRemover] = _AsyncMethod(
        "_aindex_remove", "Async :meth:`index_remove`."
    )
    aindex_list: _AsyncMethod[AsyncIndexLister] = _AsyncMethod(
        "_aindex_list", "Async :meth:`index_list`."
    )

    def _check_async(self) -> None:
        if self._async_fixed is None and self._async_factory is None:
            raise AttributeError(
                "this RedisStorage has only a sync client, so it has no asyncio methods: give "
                "it async_client= (or a url) to use asyncio"
            )

    async def _aread(self, session_id: str) -> Optional[str]:
        key = self._key(session_id)
        return _text(await self._arun("read (GET)", "GET", key, keys=[key], **_RAW))

    async def _awrite(self, session_id: str, value: str, ttl: int) -> None:
        key, data, ttl = self._key(session_id), _data(value), _check_ttl(ttl)
        await self._arun("write (SET)", "SET", key, data, "EX", ttl, keys=[key])

    async def _ainvalidate(self, session_id: str) -> bool:
        key = self._key(session_id)
        return bool(await self._arun("invalidate (DEL)", "DEL", key, keys=[key]))

    async def _acreate(self, session_id: str, value: str, ttl: int) -> bool:
        key, data, ttl = self._key(session_id), _data(value), _check_ttl(ttl)
        command = ("SET", key, data, "NX", "EX", ttl)
        return bool(await self._arun("create (SET NX)", *command, keys=[key]))

    async def _aupdate(self, session_id: str, value: str, ttl: int) -> bool:
        key, data, ttl = self._key(session_id), _data(value), _check_ttl(ttl)
        command = ("SET", key, data, "XX", "EX", ttl)
        return bool(await self._arun("update (SET XX)", *command, keys=[key]))

    async def _atouch(self, session_id: str, ttl: int) -> bool:
        key, ttl = self._key(session_id), _check_ttl(ttl)
        return bool(await self._arun("touch (EXPIRE)", "EXPIRE", key, ttl, keys=[key]))

    async def _aread_ttl(self, session_id: str) -> Optional[tuple[str, float]]:
        key = self._key(session_id)
        return _text_ttl(await self._ascript("read_ttl (GET, PTTL)", _READ_TTL, key))

    async def _aindex_add(self, owner: str, session_id: str, ttl: int) -> None:
        owner_key, args = self._index_add_args(owner, session_id, ttl)
        await self._ascript("index_add (ZADD)", _INDEX_ADD, owner_key, *args)

    async def _aindex_remove(self, owner: str, session_id: str) -> None:
        owner_key, member = self._owner_key(owner), _member(session_id)
        await self._arun("index_remove (ZREM)", "ZREM", owner_key, member, keys=[owner_key])

    async def _aindex_list(self, owner: str) -> list[str]:
        command, options = self._index_list_command(owner)
        return _members(await self._arun("index_list (ZRANGEBYSCORE)", *command, **options))

    def _loop_client(self) -> Any:
        """The asyncio client for the running loop, or ``None`` when it must be made."""
        fixed = self._async_fixed
        if fixed is not None:
            return fixed
        entry = self._loops.get(asyncio.get_running_loop())
        return None if entry is None else entry[0]

    async def _new_async_client(self) -> Any:
        """Makes the running loop's client, and arranges for it to be closed when the
        loop shuts down: an async generator started here is one of the loop's open
        generators, which ``loop.shutdown_asyncgens()`` closes (inside the loop, before
        it is closed); its ``finally`` closes the client."""
        factory = self._async_factory
        if factory is None:  # pragma: no cover - aread & co. do not exist then
            raise ConfigurationError("this RedisStorage has no asyncio client")
        loop = asyncio.get_running_loop()
        client = factory()
        if not _is_asyncio_client(client):
            raise ConfigurationError(
                f"RedisStorage async_client factory returned {client!r}, not an asyncio client"
            )
        keeper = _close_with_loop(weakref.ref(self), loop, client)
        with self._lock:
            # Loops closed without shutting down their generators: their clients cannot
            # be used, nor closed cleanly any more. Forget them.
            for old in [other for other in self._loops if other.is_closed()]:
                del self._loops[old]
            self._loops[loop] = (client, keeper)
        await keeper.__anext__()
        return client

    async def aclose(self) -> None:
        """Closes the running loop's asyncio client if this storage made it (from ``url``
        or a factory); the next asyncio call makes a new one. Not needed with
        ``asyncio.run`` or uvicorn, which close it when the loop shuts down. Explicit
        clients are left to their owner."""
        with self._lock:
            entry = self._loops.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[1].aclose()


def _async_client_from_url(url: str) -> Any:
    import redis.asyncio

    return redis.asyncio.Redis.from_url(url, **_URL_CLIENT_TIMEOUTS)


async def _close_with_loop(
    owner: weakref.ref[RedisStorage], loop: asyncio.AbstractEventLoop, client: Any
) -> AsyncGenerator[None, None]:
    """Closes ``client`` when its loop shuts down its async generators, or when the storage
    drops it (``aclose``, or the storage itself is freed: asyncio then closes the generator
    in the loop). It holds the storage only weakly: a strong reference would make the
    storage and its clients a cycle, freed (with their sockets) whenever the garbage
    collector runs, not when the last reference goes."""
    try:
        yield
    finally:
        storage = owner()
        if storage is not None:
            with storage._lock:
                entry = storage._loops.get(loop)
                if entry is not None and entry[0] is client:
                    del storage._loops[loop]
        try:
            await client.aclose()
        except Exception as exc:  # closing a client whose server is gone
            log.debug("RedisStorage: closing an asyncio client failed: %r", exc)


def _data(value: str) -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"value must be the session text as a str, not {type(value).__name__}")
    return value.encode("utf-8")


def _member(session_id: str) -> bytes:
    if not isinstance(session_id, str):
        raise TypeError(f"a session key must be a str, not {type(session_id).__name__}")
    return session_id.encode("utf-8", "surrogatepass")


def _members(reply: Any) -> list[str]:
    members = []
    for raw in reply or ():
        text = _text(raw)
        if text is not None:
            members.append(text)
    return members


def _text_ttl(reply: Any) -> Optional[tuple[str, float]]:
    if reply is None:
        return None
    raw, left = reply
    text = _text(raw)
    left = int(left)
    if text is None or left == 0 or left < -1:
        return None  # not UTF-8, or expiring this very millisecond
    return text, float("inf") if left == -1 else left / 1000


def _eval(client: Any, script: _Script, key: bytes, *args: Any) -> Any:
    try:
        return client.execute_command("EVALSHA", script.sha, 1, key, *args, **_RAW)
    except Exception as exc:
        if not _no_script(exc):
            raise
    return client.execute_command("EVAL", script.text, 1, key, *args, **_RAW)


async def _aeval(client: Any, script: _Script, key: bytes, *args: Any) -> Any:
    try:
        return await client.execute_command("EVALSHA", script.sha, 1, key, *args, **_RAW)
    except Exception as exc:
        if not _no_script(exc):
            raise
    return await client.execute_command("EVAL", script.text, 1, key, *args, **_RAW)
