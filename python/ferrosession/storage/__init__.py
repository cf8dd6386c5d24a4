"""Server-side storages: only a session id travels; the data lives here.

A storage is any object with ``read(id) -> str | None``, ``write(id, value, ttl)`` and
``invalidate(id)``, either all plain methods or all ``async def``. ``value`` is the
serialized session text and ``ttl`` whole seconds. A storage that can do both (like
:class:`~ferrosession.RedisStorage`) offers the async trio as ``aread``, ``awrite`` and
``ainvalidate``; the ASGI middleware uses those, the WSGI middleware the plain ones.

A storage may offer more (the built-in ones offer all of it; the middleware looks for
each method, and the async ``a`` forms, when it registers the session):

- ``invalidate`` returning whether a live entry was deleted (``None``: cannot tell);
- ``create(id, value, ttl) -> bool`` (store only if absent) and ``update(id, value,
  ttl) -> bool`` (replace only a live entry): "logout wins" — a write racing a delete
  never brings the entry back;
- ``touch(id, ttl) -> bool`` and ``read_ttl(id) -> (text, seconds left) | None``: an
  active session with ``idle_timeout`` is renewed by a touch, not a write (a storage
  whose ``read_ttl`` costs more than ``read`` sets ``renew_by_touch = False``: renewal
  is then a rewrite of the record, at most once per ``refresh`` interval);
- ``index_add(owner, id, ttl)``, ``index_remove(owner, id)``, ``index_list(owner) ->
  list[str]``: the per-owner index that ``principal=`` needs.

:func:`ferrosession.testing.check_storage` checks all of it.
"""

from typing import Any, Awaitable, Optional, Protocol, Union, runtime_checkable

from ferrosession.storage.directory import DirectoryStorage
from ferrosession.storage.memory import MemoryStorage
from ferrosession.storage.postgres import PostgresStorage
from ferrosession.storage.redis import RedisStorage
from ferrosession.storage.sqlite import SQLiteStorage

__all__ = [
    "DirectoryStorage",
    "MemoryStorage",
    "PostgresStorage",
    "RedisStorage",
    "SQLiteStorage",
    "SessionStorage",
]


@runtime_checkable
class SessionStorage(Protocol):
    """The storage protocol (sync or async)."""

    def read(self, session_id: str) -> Union[Optional[str], Awaitable[Optional[str]]]:
        """The stored text, or ``None`` when the id is unknown or expired."""
        ...

    def write(self, session_id: str, value: str, ttl: int) -> Union[Awaitable[None], None]:
        """Stores ``value`` under ``session_id`` for ``ttl`` seconds."""
        ...

    def invalidate(self, session_id: str) -> Union[Any, Awaitable[Any]]:
        """Deletes the entry (no error when it does not exist)."""
        ...
