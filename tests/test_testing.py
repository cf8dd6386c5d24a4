"""ferrosession.testing.check_storage: passes on every built-in storage, fails on broken ones."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Optional

import pytest

import ferrosession as fs
from ferrosession.testing import check_storage


def test_memory_storage_conforms() -> None:
    check_storage(fs.MemoryStorage())


@pytest.mark.parametrize("options", [{}, {"cached": False}, {"shared": False}])
def test_directory_storage_conforms(tmp_path: Path, options: dict[str, Any]) -> None:
    check_storage(fs.DirectoryStorage(tmp_path / "s", **options))


def test_redis_storage_conforms(tmp_path: Path) -> None:
    from redis_servers import RedisServer

    node = RedisServer(tmp_path).start()
    try:
        storage = fs.RedisStorage(node.url)
        check_storage(storage)  # the sync methods and the asyncio ones
        storage.close()
    finally:
        node.stop()


class AsyncDict:
    def __init__(self) -> None:
        self.data: dict[str, tuple[str, float]] = {}

    async def read(self, key: str) -> Optional[str]:
        await asyncio.sleep(0)
        entry = self.data.get(key)
        return entry[0] if entry and entry[1] > time.time() else None

    async def write(self, key: str, value: str, ttl: int) -> None:
        self.data[key] = (value, time.time() + ttl)

    async def invalidate(self, key: str) -> None:
        self.data.pop(key, None)


def test_an_async_custom_storage_conforms() -> None:
    check_storage(AsyncDict())


class NeverExpires(fs.MemoryStorage):
    def write(self, session_id: str, value: str, ttl: int) -> None:
        super().write(session_id, value, 10**6)


class Strips(fs.MemoryStorage):
    def write(self, session_id: str, value: str, ttl: int) -> None:
        super().write(session_id, value.strip(), ttl)


class SharedSlot:
    def __init__(self) -> None:
        self.value: Optional[str] = None

    def read(self, key: str) -> Optional[str]:
        return self.value

    def write(self, key: str, value: str, ttl: int) -> None:
        self.value = value

    def invalidate(self, key: str) -> None:
        self.value = None


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        (NeverExpires(), "did not expire"),
        (Strips(), "read back"),
        (SharedSlot(), "writing one key changed another"),
    ],
)
def test_broken_storages_fail_with_a_message(storage: Any, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        check_storage(storage)
