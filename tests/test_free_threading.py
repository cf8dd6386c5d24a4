"""Many threads on one ``Sessions``: no lost update, no exception.

Threaded WSGI servers (gunicorn ``gthread``, waitress) run requests of one process on
several threads, and on a free-threaded CPython (3.14t) the extension runs without the
GIL (pyo3 declares the module GIL-free). Everything requests share must then be safe:
the frozen registrations (built lazily by the first requests, here several at once),
the key rings, ``MemoryStorage``, ``DirectoryStorage``'s cache and change table. Each
simulated user counts its own requests in four sessions (a signed cookie, an encrypted
header, a ``MemoryStorage`` and a ``DirectoryStorage`` session) and checks every
response: a count that is not the number of requests it made is a lost update (a stale
cache hit, a torn write, a value of another user). ``sys.setswitchinterval`` is tiny so
that, under the GIL, threads switch inside every Python-level step.

Public API only. Runs in ``make test`` on the GIL build, and in CI on 3.14t.
"""

from __future__ import annotations

import http.client
import io
import sys
import sysconfig
import threading
from dataclasses import dataclass, field
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any, Callable, Iterable, Iterator, Optional
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

import ferrosession as fs
from _driver import http_environ

KEY = bytes(range(32))
OLD_KEY = bytes(range(100, 132))
REQUESTS_PER_USER = 30
#: Enough to fail loudly if a thread hangs; a healthy run takes a few seconds.
HANG_GUARD_SECONDS = 300.0


@dataclass(frozen=True)
class Tally:  # client-side, signed (with a retired key in the ring)
    n: int


@dataclass(frozen=True)
class Memo:  # server-side in MemoryStorage, with an idle timeout (renewal)
    n: int


@dataclass(frozen=True)
class Disk:  # server-side in a cached, shared DirectoryStorage (the change table)
    n: int


NAMES = {Tally: "TALLY", Memo: "MEMO", Disk: "DISK"}


def build_sessions(folder: Path) -> fs.Sessions:
    sessions = fs.Sessions()
    sessions.cookie(
        Tally, "TALLY", transformers=[fs.MessageAuthentication(KEY, old_keys=[OLD_KEY])]
    )
    sessions.cookie(Memo, "MEMO", storage=fs.MemoryStorage(), idle_timeout=3600)
    sessions.cookie(Disk, "DISK", storage=fs.DirectoryStorage(folder, cached=True))
    sessions.header(dict, "X-Tally", transformers=[fs.Encrypt(KEY, old_keys=[OLD_KEY])])
    return sessions


def counting_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Adds one to each of the four counts; every 7th request also rotates the ids."""
    s = fs.get_sessions(environ)
    tally, memo, disk = s.get(Tally), s.get(Memo), s.get(Disk)
    header = s.get("X-Tally")
    counts = [
        tally.n if tally else 0,
        memo.n if memo else 0,
        disk.n if disk else 0,
        int(header["n"]) if header else 0,
    ]
    counts = [c + 1 for c in counts]
    s.set(Tally(counts[0]))
    s.set(Memo(counts[1]))
    s.set(Disk(counts[2]))
    s.set({"n": counts[3]})
    if counts[1] % 7 == 0:
        s.regenerate(Memo)
        s.regenerate(Disk)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [" ".join(map(str, counts)).encode()]


@dataclass
class Outcome:
    """What the threads saw: requests made, lost updates, exceptions (with their text)."""

    requests: int = 0
    lost: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, *, lost: Optional[str] = None, error: Optional[str] = None) -> None:
        with self.lock:
            self.requests += 1
            if lost is not None:
                self.lost.append(lost)
            if error is not None:
                self.errors.append(error)


class Client:
    """One user: its cookies and its ``X-Tally`` header, carried from response to request."""

    def __init__(self) -> None:
        self.cookies: dict[str, str] = {}
        self.header: Optional[str] = None

    def request_headers(self) -> list[tuple[str, str]]:
        headers = []
        if self.cookies:
            headers.append(("Cookie", "; ".join(f"{k}={v}" for k, v in self.cookies.items())))
        if self.header is not None:
            headers.append(("X-Tally", self.header))
        return headers

    def absorb(self, headers: list[tuple[str, str]]) -> None:
        for name, value in headers:
            if name.lower() == "set-cookie":
                cookie_name, _, rest = value.partition("=")
                self.cookies[cookie_name] = rest.split(";", 1)[0]
            elif name.lower() == "x-tally":
                self.header = value


def check(outcome: Outcome, expected: int, status: int, body: str) -> None:
    want = " ".join([str(expected)] * 4)
    if status != 200:
        outcome.record(error=f"status {status}: {body[:200]}")
    elif body != want:
        outcome.record(lost=f"request {expected}: got {body!r}, want {want!r}")
    else:
        outcome.record()


def seeded_with_the_old_key(folder: Path) -> Client:
    """A user whose ``TALLY`` cookie was signed under the retired key (a key-ring path):
    the first response re-issues it under the current one."""
    old = fs.Sessions()
    old.cookie(Tally, "TALLY", transformers=[fs.MessageAuthentication(OLD_KEY)])
    seed = Client()

    def seed_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        fs.get_sessions(environ).set(Tally(0))
        start_response("200 OK", [])
        return [b""]

    status, headers, _ = call_directly(fs.WSGISessionMiddleware(seed_app, old), seed)
    assert status == 200
    seed.absorb(headers)
    assert "TALLY" in seed.cookies
    return seed


def call_directly(
    app: Callable[..., Iterable[bytes]], client: Client
) -> tuple[int, list[tuple[str, str]], str]:
    environ = http_environ(
        client.request_headers(), wsgi_input=io.BytesIO(), errors=sys.stderr, multithread=True
    )
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started.append((status, headers))
        return lambda data: None

    result = app(environ, start_response)
    try:
        body = b"".join(result).decode()
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    status, headers = started[-1]
    return int(status.split()[0]), headers, body


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    """wsgiref's server with a thread per request (as gthread and waitress run them)."""

    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would drown the test output


@pytest.fixture
def tiny_switch_interval() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def run_users(
    users: list[Client], do_request: Callable[[Client], tuple[int, list[tuple[str, str]], str]]
) -> Outcome:
    """One thread per user, all released at once; each makes its requests in order."""
    outcome = Outcome()
    barrier = threading.Barrier(len(users))

    def user_loop(client: Client) -> None:
        barrier.wait()
        for expected in range(1, REQUESTS_PER_USER + 1):
            try:
                status, headers, body = do_request(client)
            except Exception as exc:  # counted, not raised: the thread must go on
                outcome.record(error=f"{type(exc).__name__}: {exc}")
                continue
            client.absorb(headers)
            check(outcome, expected, status, body)

    threads = [threading.Thread(target=user_loop, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(HANG_GUARD_SECONDS)
    assert not any(t.is_alive() for t in threads), "a user thread hung"
    return outcome


class ErrorLog:
    """Exceptions the app raised inside the server (wsgiref would only print them)."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.errors: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        try:
            return self.app(environ, start_response)
        except Exception as exc:
            with self.lock:
                self.errors.append(f"{type(exc).__name__}: {exc}")
            raise


def assert_clean(outcome: Outcome, users: int, extra_errors: list[str]) -> None:
    assert outcome.requests == users * REQUESTS_PER_USER
    assert outcome.lost == [], f"{len(outcome.lost)} lost updates, e.g. {outcome.lost[:3]}"
    errors = outcome.errors + extra_errors
    assert errors == [], f"{len(errors)} exceptions, e.g. {errors[:3]}"


def test_threaded_wsgi_server_loses_no_update(tiny_switch_interval: None, tmp_path: Path) -> None:
    sessions = build_sessions(tmp_path / "sessions")
    app = ErrorLog(fs.WSGISessionMiddleware(counting_app, sessions))
    server = make_server(
        "127.0.0.1", 0, app, server_class=ThreadingWSGIServer, handler_class=QuietHandler
    )
    port = server.server_address[1]
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    serving.start()

    def over_http(client: Client) -> tuple[int, list[tuple[str, str]], str]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            conn.request("GET", "/", headers=dict(client.request_headers()))
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read().decode()
        finally:
            conn.close()

    users = [Client() for _ in range(6)] + [seeded_with_the_old_key(tmp_path) for _ in range(2)]
    try:
        outcome = run_users(users, over_http)
    finally:
        server.shutdown()
        server.server_close()
        serving.join(HANG_GUARD_SECONDS)
    assert_clean(outcome, len(users), app.errors)


def test_direct_calls_lose_no_update(tiny_switch_interval: None, tmp_path: Path) -> None:
    sessions = build_sessions(tmp_path / "sessions")
    app = fs.WSGISessionMiddleware(counting_app, sessions)
    users = [Client() for _ in range(14)] + [seeded_with_the_old_key(tmp_path) for _ in range(2)]
    outcome = run_users(users, lambda client: call_directly(app, client))
    assert_clean(outcome, len(users), [])
    # Every user kept its own server-side sessions: no two share an id.
    for name in ("MEMO", "DISK"):
        ids = {u.cookies[name] for u in users}
        assert len(ids) == len(users), name


def test_a_free_threaded_build_runs_the_extension_without_the_gil() -> None:
    """On 3.13t/3.14t importing the extension must not turn the GIL back on (it would,
    with a RuntimeWarning, for a module that does not declare itself GIL-free)."""
    if not sysconfig.get_config_var("Py_GIL_DISABLED"):
        pytest.skip("a GIL build of CPython: CI runs this on 3.14t")
    import ferrosession._core  # noqa: F401  (already imported; the check is the state)

    assert sys._is_gil_enabled() is False  # type: ignore[attr-defined]
