"""App factories shared by the peer benchmarks: one small app per library and case, the
same work in each library's own idiom, plus a throwaway ``redis-server``.

Handlers leave what they read under :data:`RESULT_KEY` in the scope / environ, so a
sanity check can see it. A *read* handler reads the three fields of the session; a
*write* handler reads it and stores it again with ``visits + 1``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Optional

__all__ = [
    "COOKIE",
    "DATA",
    "ITEMS",
    "LIFETIME",
    "RESULT_KEY",
    "USER",
    "VISITS",
    "Cart",
    "RedisServer",
    "beaker_wsgi",
    "filesystem_of",
    "flask_bare",
    "flask_session",
    "fs_asgi",
    "fs_storage_key",
    "fs_wsgi",
    "raw_asgi_app",
    "raw_wsgi_app",
    "starsessions_asgi",
]

COOKIE = "session"
USER = "ada.lovelace@example.com"
ITEMS = ("sku-10001", "sku-10002", "sku-10003", "sku-10004")
VISITS = 42
DATA: dict[str, Any] = {"user": USER, "items": list(ITEMS), "visits": VISITS}  # 105 B JSON
LIFETIME = 604800  # ferrosession's default max_age; peers are given the same lifetime
RESULT_KEY = "bench.value"
FIELDS = ("user", "items", "visits")

Handler = Callable[[Any], None]


@dataclasses.dataclass(frozen=True)
class Cart:
    user: str
    items: list[str]
    visits: int


CART = Cart(USER, list(ITEMS), VISITS)  # compact JSON: 105 bytes


def as_tuple(value: Any) -> Optional[tuple[Any, ...]]:
    """What a handler read, as ``(user, items, visits)``; ``None`` when absent."""
    if value is None:
        return None
    if isinstance(value, Cart):
        return (value.user, list(value.items), value.visits)
    if isinstance(value, tuple) and all(v is None for v in value):
        return None
    return tuple(value)


# -- bare apps --------------------------------------------------------------------------
def raw_asgi_app(handler: Optional[Handler]) -> Any:
    """A minimal ASGI app: ``handler(scope)``, then a 2-byte response whose messages are
    built per call, as a framework does."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if handler is not None:
            handler(scope)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")],
            }
        )
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def raw_wsgi_app(handler: Optional[Handler]) -> Any:
    """A minimal WSGI app: ``handler(environ)``, then a 2-byte response."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if handler is not None:
            handler(environ)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    return app


# -- ferrosession -------------------------------------------------------------------------
def _fs_handlers() -> dict[str, Handler]:
    import ferrosession as fs

    get_sessions = fs.get_sessions

    def read(scope: Any) -> None:
        scope[RESULT_KEY] = get_sessions(scope).get(Cart)

    def write(scope: Any) -> None:
        s = get_sessions(scope)
        c = s.get(Cart)
        s.set(Cart(c.user, c.items, c.visits + 1))

    def new(scope: Any) -> None:
        get_sessions(scope).set(Cart(USER, list(ITEMS), VISITS))

    return {"read": read, "write": write, "new": new}


def _fs_sessions(storage: Any) -> Any:
    import ferrosession as fs

    sessions = fs.Sessions()
    sessions.cookie(Cart, COOKIE, storage=storage, max_age=LIFETIME)
    return sessions


def fs_storage_key(session_id: str) -> str:
    """The key ferrosession's storages see for the id a cookie carries (a hash of it, when
    the build hashes ids at rest; the id itself with an older build)."""
    import ferrosession as fs

    sessions = _fs_sessions(fs.MemoryStorage())
    storage_key = getattr(sessions, "storage_key", None)
    return session_id if storage_key is None else str(storage_key(Cart, session_id))


def fs_asgi(storage: Any, case: str) -> Any:
    """ferrosession's ASGI middleware, a server-side session in ``storage``."""
    import ferrosession as fs

    return fs.SessionMiddleware(raw_asgi_app(_fs_handlers()[case]), _fs_sessions(storage))


def fs_wsgi(storage: Any, case: str) -> Any:
    """ferrosession's WSGI middleware, a server-side session in ``storage``."""
    import ferrosession as fs

    return fs.WSGISessionMiddleware(raw_wsgi_app(_fs_handlers()[case]), _fs_sessions(storage))


# -- dict-like sessions (starsessions, Beaker) ------------------------------------------
def _dict_handlers(session_of: Callable[[Any], Any], save: bool) -> dict[str, Handler]:
    def read(scope: Any) -> None:
        s = session_of(scope)
        scope[RESULT_KEY] = (s.get("user"), s.get("items"), s.get("visits"))

    def write(scope: Any) -> None:
        s = session_of(scope)
        s["visits"] = s["visits"] + 1
        if save:
            s.save()

    def new(scope: Any) -> None:
        s = session_of(scope)
        s.update(user=USER, items=list(ITEMS), visits=VISITS)
        if save:
            s.save()

    return {"read": read, "write": write, "new": new}


def starsessions_asgi(store: Any, case: str) -> Any:
    """starsessions ``SessionMiddleware`` + ``SessionAutoloadMiddleware`` (as its docs
    set them up) around the raw app; the session lives in ``store``."""
    from starsessions import SessionAutoloadMiddleware, SessionMiddleware

    handler = _dict_handlers(lambda scope: scope["session"], save=False)[case]
    return SessionMiddleware(
        SessionAutoloadMiddleware(raw_asgi_app(handler)),
        store=store,
        lifetime=LIFETIME,
        cookie_name=COOKIE,
        cookie_https_only=False,  # plain http in-process, like ferrosession's default
    )


def beaker_wsgi(data_dir: Path, case: str) -> Any:
    """Beaker's ``SessionMiddleware`` with its file store (pickle files, file locks)."""
    from beaker.middleware import SessionMiddleware

    handler = _dict_handlers(lambda environ: environ["beaker.session"], save=True)[case]
    return SessionMiddleware(
        raw_wsgi_app(handler),
        {
            "session.type": "file",
            "session.data_dir": str(data_dir / "data"),
            "session.lock_dir": str(data_dir / "lock"),
            "session.key": COOKIE,
            "session.cookie_expires": LIFETIME,
        },
    )


# -- Flask (Flask-Session, and the baseline) ------------------------------------------------
def _flask_app(name: str) -> Any:
    import flask

    app = flask.Flask(name)
    app.secret_key = "bench-secret-key-0123456789abcdef"
    session = flask.session

    @app.get("/read")
    def read() -> str:
        flask.request.environ[RESULT_KEY] = (
            session.get("user"),
            session.get("items"),
            session.get("visits"),
        )
        return "ok"

    @app.get("/write")
    def write() -> str:
        session["visits"] = session["visits"] + 1
        return "ok"

    @app.get("/new")
    def new() -> str:
        session.update(user=USER, items=list(ITEMS), visits=VISITS)
        return "ok"

    return app


def flask_session(kind: str, target: Any) -> Any:
    """A Flask app with Flask-Session: ``kind`` ``"filesystem"`` (``target``: a folder,
    through cachelib's ``FileSystemCache``, which Flask-Session 0.8 recommends in place of
    its deprecated ``filesystem`` type) or ``"redis"`` (``target``: a sync redis client).
    Flask-Session's defaults otherwise (permanent sessions, msgpack)."""
    from flask_session import Session

    app = _flask_app(f"bench_flask_session_{kind}")
    if kind == "filesystem":
        from cachelib.file import FileSystemCache

        app.config["SESSION_TYPE"] = "cachelib"
        app.config["SESSION_CACHELIB"] = FileSystemCache(str(target), threshold=500, mode=0o600)
    elif kind == "redis":
        app.config["SESSION_TYPE"] = "redis"
        app.config["SESSION_REDIS"] = target
    else:
        raise ValueError(kind)
    Session(app)
    return app


def flask_bare() -> Any:
    """The Flask baseline: the same app whose session interface hands out the session's
    data with no storage and no cookie work (and saves nothing)."""
    from flask.sessions import SecureCookieSession, SessionInterface

    app = _flask_app("bench_flask_bare")

    class NoStorage(SessionInterface):
        def open_session(self, app: Any, request: Any) -> SecureCookieSession:
            return SecureCookieSession({**DATA, "items": list(ITEMS)})

        def save_session(self, app: Any, session: Any, response: Any) -> None:
            pass

    app.session_interface = NoStorage()
    return app


# -- real services ----------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A throwaway ``redis-server`` on a free 127.0.0.1 port, no persistence; ``stop()``
    terminates it (only this process)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = 0
        self.proc: Optional[subprocess.Popen[bytes]] = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def version(self) -> Optional[str]:
        binary = shutil.which("redis-server")
        if binary is None:
            return None
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
        for part in out.stdout.split():
            if part.startswith("v="):
                return part[2:]
        return out.stdout.strip() or None

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is not installed: `make services` (or apt-get install redis-server)"
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            self.port = _free_port()
            args = [
                binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.folder),
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
                "--logfile", str(self.folder / "redis.log"),
            ]  # fmt: skip
            self.proc = subprocess.Popen(
                args,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                if _ping(self.port):
                    return self
                time.sleep(0.02)
            self.stop()
        raise RuntimeError(f"redis-server did not start (log in {self.folder / 'redis.log'})")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def filesystem_of(path: Path) -> dict[str, str]:
    """The mount that holds ``path``: its mount point, type, device and options
    (from ``/proc/self/mounts``; empty off Linux)."""
    real = os.path.realpath(path)
    best: dict[str, str] = {}
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return best
    for line in lines:
        parts = line.split()
        if len(parts) < 4:
            continue
        device, mount, fstype, options = parts[:4]
        mount = mount.replace("\\040", " ")
        inside = real == mount or real.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best.get("mount", "")):
            best = {"mount": mount, "type": fstype, "device": device, "options": options}
    return best
