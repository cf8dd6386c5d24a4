"""DirectoryStorage gc and ``ferrosession gc`` (issue 19): the owner-index markers of a
session go with its entry, and the command refuses (touching nothing) a folder that is
not a DirectoryStorage's. Sessions come from the real WSGI middleware with
``principal=``; the storage's clock is moved with ``_set_clock_offset``, and for the
command (another process, on the system clock) expiry is the entry file's mtime, moved
into the past."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pytest

import ferrosession as fs
from _driver import http_environ
from ferrosession.cli import main

LAYOUT = ".ferrosession-layout"
TABLE = ".ferrosession-changes"


@dataclass(frozen=True)
class Login:
    user: str


class StorageClock:
    """The Sessions clock, moving the DirectoryStorage's clock along with it."""

    def __init__(self, storage: fs.DirectoryStorage) -> None:
        self.storage = storage
        self.base = time.time()
        self.offset = 0.0

    def __call__(self) -> float:
        return self.base + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds
        self.storage._set_clock_offset(self.offset)


def make_app(storage: fs.DirectoryStorage, clock: StorageClock) -> Any:
    sessions = fs.Sessions(clock=clock)
    sessions.cookie(
        Login,
        "S",
        storage,
        idle_timeout=60,
        principal=lambda v: v.user,
    )

    def inner(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        c = fs.get_sessions(environ)
        out: Any = None
        if environ["PATH_INFO"] == "/login":
            c.set(Login(environ["QUERY_STRING"]))
        else:  # /devices?who
            out = [i.id_hash for i in c.sessions_of(Login, environ["QUERY_STRING"])]
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(out).encode()]

    return fs.WSGISessionMiddleware(inner, sessions)


def request(app: Any, path: str, query: str) -> tuple[Optional[str], Any]:
    environ = http_environ(path=path, query=query)
    headers: list[tuple[str, str]] = []
    body = b"".join(app(environ, lambda status, h, exc=None: headers.extend(h)))
    cookie = next((v for k, v in headers if k.lower() == "set-cookie"), None)
    return cookie, json.loads(body)


def devices(app: Any, who: str) -> list[str]:
    return list(request(app, "/devices", who)[1])


def files(folder: Path, under: str = "") -> set[Path]:
    """The files below ``folder`` (only those under its ``under`` folder when given),
    but the two in its root."""
    base = folder / under if under else folder
    return {p for p in base.rglob("*") if p.is_file() and p.parent != folder}


def markers(folder: Path) -> set[Path]:
    return files(folder, "owners")


def entries(folder: Path) -> set[Path]:
    return files(folder) - markers(folder)


def snapshot(folder: Path) -> dict[str, tuple[int, int, int, bytes]]:
    """Every path below ``folder`` with its mode, inode, mtime and (files) content."""
    out = {}
    for p in [folder, *folder.rglob("*")]:
        st = p.lstat()
        content = p.read_bytes() if p.is_file() else b""
        out[str(p)] = (st.st_mode, st.st_ino, st.st_mtime_ns, content)
    return out


def run_gc(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ferrosession.cli", "gc", str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_gc_removes_the_marker_of_an_expired_session(tmp_path: Path) -> None:
    folder = tmp_path / "sessions"
    storage = fs.DirectoryStorage(folder, cached=False)
    clock = StorageClock(storage)
    app = make_app(storage, clock)
    request(app, "/login", "ann")
    ann_entries, ann_markers = entries(folder), markers(folder)
    assert len(ann_entries) == 1 and len(ann_markers) == 1
    clock.advance(30)
    request(app, "/login", "bob")
    bob_markers = markers(folder) - ann_markers
    clock.advance(40)  # ann idle for 70 s (expired), bob for 40 s
    assert devices(app, "ann") == [] and len(devices(app, "bob")) == 1
    assert storage.gc() == 1
    assert markers(folder) == bob_markers, "ann's marker is gone, bob's live one stays"
    assert not ann_entries & entries(folder)
    assert len(devices(app, "bob")) == 1
    clock.advance(60)
    assert storage.gc() == 1
    assert markers(folder) == set() and entries(folder) == set()


def test_gc_removes_the_markers_of_an_entry_deleted_before_its_time(tmp_path: Path) -> None:
    folder = tmp_path / "sessions"
    storage = fs.DirectoryStorage(folder, cached=False)
    clock = StorageClock(storage)
    app = make_app(storage, clock)
    request(app, "/login", "ann")
    first = entries(folder)
    request(app, "/login", "ann")  # a second device
    request(app, "/login", "bob")
    assert len(devices(app, "ann")) == 2
    before = markers(folder)
    (gone,) = first
    gone.unlink()  # by hand, or a restore: the entry only
    assert markers(folder) == before, "the index does not know yet"
    assert storage.gc() == 0, "an entry that is already gone is not counted"
    assert len(markers(folder)) == 2
    assert len(devices(app, "ann")) == 1 and len(devices(app, "bob")) == 1


def test_the_command_removes_the_marker_of_an_expired_session(tmp_path: Path) -> None:
    folder = tmp_path / "sessions"
    storage = fs.DirectoryStorage(folder, cached=False)
    app = make_app(storage, StorageClock(storage))
    request(app, "/login", "ann")
    (ann_entry,) = entries(folder)
    ann_markers = markers(folder)
    request(app, "/login", "bob")
    bob_markers = markers(folder) - ann_markers
    os.utime(ann_entry, (1, 1))  # expired long ago (an entry expires at its mtime)
    done = run_gc(folder)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"removed 1 expired session from {folder}"
    assert not ann_entry.exists()
    assert markers(folder) == bob_markers
    assert devices(app, "ann") == [] and len(devices(app, "bob")) == 1


@pytest.mark.parametrize("content", ["empty", "unrelated"])
def test_the_command_refuses_a_folder_that_is_not_a_storage(tmp_path: Path, content: str) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    if content == "unrelated":
        (folder / "notes.txt").write_text("keep me")
        (folder / "ab").mkdir()  # a shard-like name, but no shard folder in it
        (folder / "ab" / "cd").write_text("a file")
        old = folder / "ab" / ("0" * 64)
        old.write_text("looks like an old entry")
        os.utime(old, (1, 1))
        (folder / ".tmp-x").write_text("")
        os.utime(folder / ".tmp-x", (1, 1))
    before = snapshot(folder)
    done = run_gc(folder)
    assert done.returncode == 2
    assert done.stdout == ""
    assert f"{folder} is not a DirectoryStorage folder" in done.stderr
    assert "nothing was changed" in done.stderr
    assert snapshot(folder) == before, "nothing created, changed or removed"
    assert not (folder / TABLE).exists() and not (folder / LAYOUT).exists()


def test_the_command_accepts_a_storage_folder_without_sessions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "sessions"
    fs.DirectoryStorage(folder)
    assert (folder / LAYOUT).is_file()
    assert main(["gc", str(folder)]) == 0
    assert capsys.readouterr().out.strip() == f"removed 0 expired sessions from {folder}"


def test_the_command_accepts_a_folder_of_an_older_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Made before the layout file existed: known by its sessions (or its table or
    owner index), and then gets the file."""
    folder = tmp_path / "sessions"
    storage = fs.DirectoryStorage(folder, cached=False)
    storage.write("old", "v", 3600)
    storage.write("live", "v", 3600)
    del storage
    (folder / LAYOUT).unlink()
    (folder / TABLE).unlink()
    (old,) = [p for p in entries(folder) if p.name == _name("old")]
    os.utime(old, (1, 1))
    assert main(["gc", str(folder)]) == 0
    assert capsys.readouterr().out.strip() == f"removed 1 expired session from {folder}"
    assert fs.DirectoryStorage(folder, cached=False).read("live") == "v"
    assert (folder / LAYOUT).is_file()


def test_holds_layout_touches_nothing(tmp_path: Path) -> None:
    from ferrosession import _core

    assert _core.DirectoryStorage.holds_layout(tmp_path / "missing") is False
    assert not (tmp_path / "missing").exists()
    (tmp_path / "owners-file").mkdir()
    (tmp_path / "owners-file" / "owners").write_text("not a folder")
    before = snapshot(tmp_path)
    assert _core.DirectoryStorage.holds_layout(tmp_path / "owners-file") is False
    assert snapshot(tmp_path) == before


def _name(session_id: str) -> str:
    import hashlib

    return hashlib.sha256(session_id.encode()).hexdigest()
