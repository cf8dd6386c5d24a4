"""SQLiteStorage on a real SQLite file: the protocol (sync and async), several processes
on one file, a locked file, expiry and gc, hostile ids, what the file holds, and the
real ASGI and WSGI middlewares."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import ferrosession as fs
import sql_storage_apps as apps
from ferrosession.cli import main
from ferrosession.testing import acheck_storage, check_storage
from sql_storage_apps import key, readme_block, run_processes

TABLE = "ferrosession_sessions"
README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


def test_conformance_sync_and_async(tmp_path: Path) -> None:
    storage = fs.SQLiteStorage(tmp_path / "s.db")
    check_storage(storage)  # the plain methods, then the a-methods, each with expiry
    asyncio.run(acheck_storage(storage, expiry=False))
    assert rows(tmp_path / "s.db", "PRAGMA journal_mode") == [("wal",)]


def test_configuration_errors(tmp_path: Path) -> None:
    for table in ("a-b", "1abc", 'x"; DROP TABLE y; --', "", "s p", "x" * 46, "ünï"):
        with pytest.raises(fs.ConfigurationError, match="table"):
            fs.SQLiteStorage(tmp_path / "s.db", table=table)
    for path in (":memory:", ""):
        with pytest.raises(fs.ConfigurationError, match="MemoryStorage"):
            fs.SQLiteStorage(path)
    with pytest.raises(fs.ConfigurationError, match="timeout"):
        fs.SQLiteStorage(tmp_path / "s.db", timeout=0)
    longest = fs.SQLiteStorage(tmp_path / "s.db", table="T" * 45)
    longest.write("k", "v", 60)
    assert longest.read("k") == "v"
    with pytest.raises(TypeError):
        longest.write("k", b"bytes", 60)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        longest.write("k", "v", 0)


def test_four_processes_share_one_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"  # does not exist yet: the four create it at once
    spec = ("ferrosession", "SQLiteStorage", {"path": str(path)})
    ops = run_processes(spec, processes=4, rounds=150)
    assert ops == 4 * (1 + 150 * 8)
    left = sorted(str(k) for (k,) in rows(path, f"SELECT key FROM {TABLE}"))
    assert left == sorted([f"counter-{p}" for p in range(4)] + [f"r149-p{p}" for p in range(4)])
    assert rows(path, f"SELECT value FROM {TABLE} WHERE key LIKE 'counter-%'") == [("150",)] * 4


def test_a_locked_file_waits_the_busy_timeout_then_fails_and_recovers(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    storage = fs.SQLiteStorage(path, timeout=0.3)
    storage.write("k", "before", 60)
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        with pytest.raises(fs.StorageError, match="write failed: OperationalError") as failed:
            storage.write("k", "during", 60)
        assert time.monotonic() - started >= 0.3
        assert isinstance(failed.value.__cause__, sqlite3.OperationalError)
        # ASGI: the same error through the a-method, off the loop
        with pytest.raises(fs.StorageError, match="update failed"):
            asyncio.run(storage.aupdate("k", "during", 60))
        # a writer that finds the lock released within the timeout just waits
        threading.Timer(0.1, lambda: blocker.execute("COMMIT")).start()
        slow = fs.SQLiteStorage(path, timeout=5)
        slow.write("k", "after", 60)
    finally:
        blocker.close()
    assert storage.read("k") == "after"


def test_an_unreadable_database_is_a_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.write_bytes(b"this is not an SQLite database, just some bytes " * 100)
    storage = fs.SQLiteStorage(path)
    with pytest.raises(fs.StorageError, match="read failed: DatabaseError"):
        storage.read("k")
    path.unlink()  # the next call opens the file anew
    storage.close()
    assert storage.read("k") is None


def test_expiry_gc_and_the_owner_index(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    storage = fs.SQLiteStorage(path)

    def add_expired(n: int) -> None:
        with sqlite3.connect(path) as conn:
            conn.executemany(
                f"INSERT INTO {TABLE} VALUES (?, 'v', ?)",
                [(f"old{i}", time.time() - 10) for i in range(n)],
            )

    apps.check_expiry_gc_and_the_owner_index(storage, TABLE, add_expired, lambda q: rows(path, q))


def test_hostile_ids_touch_no_other_row(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    storage = fs.SQLiteStorage(path)
    every_id = [*apps.HOSTILE, apps.HUGE]
    apps.check_hostile_ids(storage, every_id, every_id)
    assert rows(path, f"SELECT key, value FROM {TABLE}") == [("victim", "intact")]


def test_asgi_and_wsgi_and_no_raw_id_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    storage = fs.SQLiteStorage(path)
    sid = apps.run_under_asgi_and_wsgi(storage, storage.read)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(FULL)")
        dump = "\n".join(conn.iterdump())
    assert key(sid) in dump
    assert sid not in dump
    for file in tmp_path.iterdir():  # nor in the file, its WAL or shared memory
        assert sid.encode() not in file.read_bytes(), file


def test_cli_gc(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.db"
    storage = fs.SQLiteStorage(path, table="app_sessions")
    storage.write("a", "v", 1)
    storage.write("b", "v", 60)
    time.sleep(1.1)
    assert main(["gc", "--sqlite", str(path), "--table", "app_sessions"]) == 0
    assert "removed 1 expired session " in capsys.readouterr().out
    assert storage.read("b") == "v"
    done = subprocess.run(
        [sys.executable, "-m", "ferrosession.cli", "gc", "--sqlite", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    assert done.returncode == 0, done.stderr
    assert "removed 0 expired sessions" in done.stdout
    # a missing file is refused, not created
    assert main(["gc", "--sqlite", str(tmp_path / "nope.db")]) == 2
    assert not (tmp_path / "nope.db").exists()


def test_readme_example(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # the example's sessions.db
    example = readme_block('fs.SQLiteStorage("sessions.db")')
    client = example["app"].test_client()
    assert client.get("/me").text == "anonymous"
    assert client.post("/login/ann").text == "ok"
    assert client.get("/me").text == "ann"
    assert rows(tmp_path / "sessions.db", f"SELECT count(*) FROM {TABLE}") == [(1,)]
    fs.SQLiteStorage("sessions.db", table="app_sessions").write("k", "v", 60)
    line = "ferrosession gc --sqlite sessions.db --table app_sessions"
    assert line in README
    assert main(line.split()[1:]) == 0
    assert "removed 0 expired sessions from sessions.db" in capsys.readouterr().out
