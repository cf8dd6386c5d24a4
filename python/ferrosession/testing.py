"""A conformance suite for storages: run it against your own before you ship it.

    from ferrosession.testing import check_storage

    check_storage(MyStorage())            # raises AssertionError naming what is wrong

It checks the storage protocol the middleware relies on (``read``, ``write``,
``invalidate``, plain or ``async def``; for a storage that offers both, the async trio
``aread``/``awrite``/``ainvalidate`` too): a written value reads back exactly, a write
replaces, an unknown or invalidated key reads as ``None``, invalidating an unknown key is
no error, keys do not collide, entries expire after their ``ttl``, and values survive
as text (unicode, quotes, newlines, several kB). Keys are the ones the middleware uses:
43-character base64url hashes. It writes keys with a random prefix and removes them.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import os
import time
from typing import Any, Awaitable, Callable, Optional

__all__ = ["check_storage"]

_VALUES = (
    '{"user":"ann","visits":0}',
    "",
    'ünïcödé ✓ "quoted" \\ back\nslash',
    "  leading and trailing space, a newline\n",
    "x" * 8000,
)


def _key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()


def check_storage(storage: Any, *, expiry: bool = True, expiry_ttl: int = 1) -> None:
    """Runs the conformance checks against ``storage``.

    Args:
        storage: the storage to check (sync, async, or both).
        expiry: also check that entries expire (waits ``expiry_ttl`` + 1.1 s).
        expiry_ttl: the ttl, in seconds, used for the expiry check.

    Raises:
        AssertionError: the storage breaks the protocol; the message says how.
    """
    for method in ("read", "write", "invalidate"):
        assert callable(getattr(storage, method, None)), f"the storage has no {method}()"
    is_async = inspect.iscoroutinefunction(storage.read)
    if is_async:
        _run_async(storage.read, storage.write, storage.invalidate, expiry, expiry_ttl)
    else:
        _run_sync(storage.read, storage.write, storage.invalidate, expiry, expiry_ttl)
    if hasattr(storage, "aread"):
        _run_async(storage.aread, storage.awrite, storage.ainvalidate, expiry, expiry_ttl)


def _run_sync(
    read: Callable[[str], Optional[str]],
    write: Callable[[str, str, int], None],
    invalidate: Callable[[str], Any],
    expiry: bool,
    expiry_ttl: int,
) -> None:
    async def aread(key: str) -> Optional[str]:
        return read(key)

    async def awrite(key: str, value: str, ttl: int) -> None:
        write(key, value, ttl)

    async def ainvalidate(key: str) -> None:
        invalidate(key)

    _run_async(aread, awrite, ainvalidate, expiry, expiry_ttl)


def _run_async(
    read: Callable[[str], Awaitable[Optional[str]]],
    write: Callable[[str, str, int], Awaitable[None]],
    invalidate: Callable[[str], Awaitable[Any]],
    expiry: bool,
    expiry_ttl: int,
) -> None:
    async def checks() -> None:
        a, b = _key(), _key()
        assert await read(a) is None, "an unknown key must read as None"
        await invalidate(a)  # no error for an unknown key
        for value in _VALUES:
            await write(a, value, 60)
            got = await read(a)
            assert got == value, f"wrote {value[:40]!r}…, read back {str(got)[:40]!r}…"
        await write(b, "other", 60)
        assert await read(a) == _VALUES[-1], "writing one key changed another"
        await write(a, "short", 60)
        assert await read(a) == "short", "a write must replace the value (even a longer one)"
        await invalidate(a)
        assert await read(a) is None, "an invalidated key must read as None"
        assert await read(b) == "other", "invalidating one key removed another"
        await invalidate(b)
        if expiry:
            c = _key()
            await write(c, "expires", expiry_ttl)
            assert await read(c) == "expires"
            deadline = time.monotonic() + expiry_ttl + 1.1
            while time.monotonic() < deadline and await read(c) is not None:
                await asyncio.sleep(0.1)
            assert await read(c) is None, f"an entry written with ttl={expiry_ttl} did not expire"
            await invalidate(c)

    asyncio.run(checks())
