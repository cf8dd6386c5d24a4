"""The one harness of the in-process benchmarks: every ``benches/*.py`` builds on it.

* the session under test (:class:`Cart`, ~100 bytes of JSON) and the app builders, the
  same work in each library's idiom: ferrosession registrations, Starlette,
  starsessions, Flask (its default session, Flask-Session), Beaker;
* the drivers: a prebuilt ASGI scope or WSGI environ, direct calls, batches;
* the sanity checks every variant passes before it is timed (a broken middleware must
  not post a fast figure);
* the measuring loop: a *variant* runs a *batch* of ``n`` calls and returns the elapsed
  ns; :func:`measure` calibrates ``n`` so a batch lasts about ``batch_ms``, then runs
  *rounds* until the budget is spent, every round one batch of every variant in a freshly
  shuffled order, so a noisy neighbour hits every variant alike. A figure is the median
  of its per-call batch times; a paired figure (variant minus baseline *in the same
  round*) gives the spread of an overhead;
* the results JSON (``benches/results/NAME.json``) and the command line (``--quick``,
  ``--budget``, ``--check``, ``--allow-debug``: a debug build is refused).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import inspect
import io
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any, Awaitable, Callable, Coroutine, Optional, Sequence, Union

BatchFn = Callable[[int], Union[int, Awaitable[int]]]
Handler = Callable[[Any], None]

BENCHES = Path(__file__).resolve().parent
ROOT = BENCHES.parent
RESULTS_DIR = BENCHES / "results"


class SanityError(AssertionError):
    """A variant misbehaved in its check: nothing is timed."""


# -- the session under test ----------------------------------------------------------------
COOKIE = "session"
KEY = bytes(range(32))  # fixed, so runs are comparable; never a real key
SECRET = "bench-secret-key-0123456789abcdef"  # the peers' secret_key
USER = "ada.lovelace@example.com"
ITEMS = ("sku-10001", "sku-10002", "sku-10003", "sku-10004")
VISITS = 42
DATA: dict[str, Any] = {"user": USER, "items": list(ITEMS), "visits": VISITS}
PAYLOAD = json.dumps(DATA, separators=(",", ":"))  # 105 bytes
LIFETIME = 604800  # ferrosession's default max_age; peers are given the same lifetime
RESULT_KEY = "bench.value"  # where a handler leaves what it read, for the sanity checks
EXPECTED = (USER, list(ITEMS), VISITS)
CHANGED = (USER, list(ITEMS), VISITS + 1)
CASES = ("read", "write", "new", "ignore")


@dataclasses.dataclass(frozen=True)
class Cart:
    user: str
    items: list[str]
    visits: int


CART = Cart(USER, list(ITEMS), VISITS)


def as_tuple(value: Any) -> Optional[tuple[Any, ...]]:
    """What a handler read, as ``(user, items, visits)``; ``None`` when absent. Takes a
    dataclass, model or Struct, a mapping (a dict-like session) or such a tuple."""
    if value is None:
        return None
    if isinstance(value, tuple):
        return None if all(v is None for v in value) else value
    if isinstance(value, Mapping):
        if not value:
            return None
        got = (value.get("user"), value.get("items"), value.get("visits"))
    else:
        got = (value.user, value.items, value.visits)
    return (got[0], None if got[1] is None else list(got[1]), got[2])


# -- bare apps -------------------------------------------------------------------------------
def raw_asgi_app(handler: Optional[Handler]) -> Any:
    """A minimal ASGI app (no routing, so the baseline stays tiny): ``handler(scope)``,
    then a 2-byte response whose messages are built per call, as a framework does
    (middleware may extend the header list)."""

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


# -- ferrosession ------------------------------------------------------------------------------
def fs_handlers(
    type_: Any = Cart,
    bump: Callable[[Any], Any] = lambda c: Cart(c.user, c.items, c.visits + 1),
    fresh: Callable[[], Any] = lambda: Cart(USER, list(ITEMS), VISITS),
    request_of: Optional[Callable[[Any], Any]] = None,
) -> dict[str, Handler]:
    """ferrosession's handlers of every case, for a session of ``type_``: ``bump`` is the
    changed value a write stores, ``fresh`` the new one. ``request_of(arg)`` gives what
    ``get_sessions`` takes (the Flask request; default: the scope / environ itself);
    ``arg`` is where the read value is left."""
    import ferrosession as fs

    get_sessions = fs.get_sessions

    if request_of is None:

        def read(scope: Any) -> None:
            scope[RESULT_KEY] = get_sessions(scope).get(type_)

        def write(scope: Any) -> None:
            s = get_sessions(scope)
            s.set(bump(s.get(type_)))

        def new(scope: Any) -> None:
            get_sessions(scope).set(fresh())

    else:
        of = request_of

        def read(scope: Any) -> None:
            scope[RESULT_KEY] = get_sessions(of(scope)).get(type_)

        def write(scope: Any) -> None:
            s = get_sessions(of(scope))
            s.set(bump(s.get(type_)))

        def new(scope: Any) -> None:
            get_sessions(of(scope)).set(fresh())

    def ignore(scope: Any) -> None:
        pass

    return {"read": read, "write": write, "new": new, "ignore": ignore}


def fs_signed(**options: Any) -> Any:
    """``Sessions`` with the reference registration: :class:`Cart` in a signed cookie."""
    import ferrosession as fs

    sessions = fs.Sessions()
    sessions.cookie(Cart, COOKIE, transformers=[fs.MessageAuthentication(KEY)], **options)
    return sessions


def fs_stored(storage: Any, **options: Any) -> Any:
    """``Sessions`` with :class:`Cart` server-side in ``storage`` (only an id travels)."""
    import ferrosession as fs

    sessions = fs.Sessions()
    sessions.cookie(Cart, COOKIE, storage=storage, max_age=LIFETIME, **options)
    return sessions


def fs_asgi(sessions: Any, case: str, handlers: Optional[dict[str, Handler]] = None) -> Any:
    """ferrosession's ASGI middleware around the raw app running ``case``'s handler."""
    import ferrosession as fs

    return fs.SessionMiddleware(raw_asgi_app((handlers or fs_handlers())[case]), sessions)


def fs_wsgi(sessions: Any, case: str, handlers: Optional[dict[str, Handler]] = None) -> Any:
    """ferrosession's WSGI middleware around the raw app running ``case``'s handler."""
    import ferrosession as fs

    return fs.WSGISessionMiddleware(raw_wsgi_app((handlers or fs_handlers())[case]), sessions)


# -- dict-like sessions: Starlette, starsessions, Beaker, Flask ---------------------------------
def dict_handlers(
    session_of: Callable[[Any], Any],
    *,
    save: bool = False,
    fields: bool = True,
    touch: bool = False,
) -> dict[str, Handler]:
    """Handlers of a dict-like session: ``session_of(arg)`` is the session; ``save``
    calls its ``save()`` after a change (Beaker); ``fields`` reads the three fields on a
    read (else the session itself is left); ``touch`` calls ``mark_accessed()`` first, as
    ``request.session`` does in every Starlette app."""

    def read(arg: Any) -> None:
        s = session_of(arg)
        if touch:
            s.mark_accessed()
        arg[RESULT_KEY] = (s.get("user"), s.get("items"), s.get("visits")) if fields else s

    def write(arg: Any) -> None:
        s = session_of(arg)
        s["visits"] = s["visits"] + 1
        if save:
            s.save()

    def new(arg: Any) -> None:
        s = session_of(arg)
        s.update(user=USER, items=list(ITEMS), visits=VISITS)
        if save:
            s.save()

    def ignore(arg: Any) -> None:
        pass

    return {"read": read, "write": write, "new": new, "ignore": ignore}


def starlette_asgi(case: str, middleware: Any = None) -> Any:
    """Starlette's ``SessionMiddleware`` (or a drop-in ``middleware``) around the raw app."""
    if middleware is None:
        from starlette.middleware.sessions import SessionMiddleware as middleware
    handler = dict_handlers(lambda scope: scope["session"], fields=False, touch=True)[case]
    return middleware(raw_asgi_app(handler), secret_key=SECRET, session_cookie=COOKIE)


def starsessions_asgi(store: Any, case: str) -> Any:
    """starsessions ``SessionMiddleware`` + ``SessionAutoloadMiddleware`` (as its docs
    set them up) around the raw app; the session lives in ``store``."""
    from starsessions import SessionAutoloadMiddleware, SessionMiddleware

    handler = dict_handlers(lambda scope: scope["session"])[case]
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

    handler = dict_handlers(lambda environ: environ["beaker.session"], save=True)[case]
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


def flask_app(
    name: str,
    handlers: Optional[dict[str, Handler]] = None,
    *,
    secret: Optional[str] = SECRET,
    interface: Any = None,
) -> Any:
    """A Flask app with a route per case (``/read`` ...) running ``handlers[case]`` on
    the request's environ (default: Flask's own session) and returning ``"ok"``."""
    import flask

    app = flask.Flask(name)
    if secret is not None:
        app.secret_key = secret
    if interface is not None:
        app.session_interface = interface
    if handlers is None:
        session = flask.session
        handlers = dict_handlers(lambda environ: session)
    request = flask.request

    def route(case: str, handler: Handler) -> None:
        def view() -> str:
            handler(request.environ)
            return "ok"

        app.add_url_rule(f"/{case}", endpoint=case, view_func=view, methods=["GET"])

    for case in CASES:
        route(case, handlers[case])
    return app


def flask_without_cookie(name: str, data: Optional[dict[str, Any]] = DATA) -> Any:
    """The Flask baseline: the same app whose session interface hands out ``data`` (or
    an empty session) with no storage and no cookie work, and saves nothing."""
    from flask.sessions import SecureCookieSession, SessionInterface

    class NoCookie(SessionInterface):
        def open_session(self, app: Any, request: Any) -> SecureCookieSession:
            return SecureCookieSession({**data, "items": list(ITEMS)} if data else {})

        def save_session(self, app: Any, session: Any, response: Any) -> None:
            pass

    return flask_app(name, interface=NoCookie())


def flask_session(kind: str, target: Any) -> Any:
    """A Flask app with Flask-Session: ``kind`` ``"filesystem"`` (``target``: a folder,
    through cachelib's ``FileSystemCache``, which Flask-Session 0.8 recommends in place of
    its deprecated ``filesystem`` type) or ``"redis"`` (``target``: a sync redis client).
    Flask-Session's defaults otherwise (permanent sessions, msgpack)."""
    from flask_session import Session

    app = flask_app(f"bench_flask_session_{kind}")
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


# -- drivers: ASGI -------------------------------------------------------------------------------
ASGI_RECEIVE: dict[str, Any] = {"type": "http.request", "body": b"", "more_body": False}


async def asgi_receive() -> dict[str, Any]:
    """A ``receive`` that hands out one empty request body (every time it is asked)."""
    return ASGI_RECEIVE


async def asgi_discard(message: Any) -> None:
    """A ``send`` that drops every message."""


def asgi_scope(
    path: str = "/", *, headers: Optional[list[tuple[bytes, bytes]]] = None, method: str = "GET"
) -> dict[str, Any]:
    """An HTTP scope as uvicorn builds it for a plain request over HTTP/1.1."""
    base = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench/1.0"), (b"accept", b"*/*")]
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": method,
        "root_path": "",
        "path": path,
        "raw_path": path.encode("latin-1"),
        "query_string": b"",
        "headers": base + list(headers or ()),
        "state": {},
    }


def cookie_scope(cookie: Optional[str], header: str = "cookie") -> dict[str, Any]:
    """A scope that sends ``cookie`` (``name=value``; or a header value) when there is one."""
    if cookie is None:
        return asgi_scope()
    return asgi_scope(headers=[(header.encode("latin-1"), cookie.encode("latin-1"))])


class ServerRequest:
    """What a server's per-request object is to the app (uvicorn's
    ``RequestResponseCycle``): it holds the scope, and the app's ``send`` is its method.
    So a middleware that keeps ``send`` where the scope reaches it makes a reference
    cycle per request, and the cycle collector's cost shows in its figures, as it does
    in a real server."""

    __slots__ = ("scope",)

    def __init__(self, scope: dict[str, Any]) -> None:
        self.scope = scope

    async def send(self, message: Any) -> None:
        """Drops every message."""


def asgi_batch(app: Any, scope: dict[str, Any]) -> Callable[[int], Awaitable[int]]:
    """A batch that awaits ``app`` ``n`` times, each on a shallow copy of ``scope`` (a
    server builds a fresh scope per request; middleware write into it) with the ``send``
    of a fresh :class:`ServerRequest`. The copy, the request object and the loop cost the
    same for every variant, so they cancel in an overhead."""
    receive = asgi_receive
    clock = time.perf_counter_ns

    async def batch(n: int) -> int:
        t0 = clock()
        for _ in range(n):
            request_scope = scope.copy()
            await app(request_scope, receive, ServerRequest(request_scope).send)
        return clock() - t0

    return batch


@dataclasses.dataclass
class Reply:
    """What one request produced (for the sanity checks)."""

    status: str
    headers: list[tuple[str, str]]
    body: bytes
    seen: dict[str, Any]  # the scope / environ copy the app was called with

    def header_values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name]

    @property
    def set_cookies(self) -> list[str]:
        return self.header_values("set-cookie")

    @property
    def value(self) -> Optional[tuple[Any, ...]]:
        """What the handler read, as :func:`as_tuple` gives it."""
        return as_tuple(self.seen.get(RESULT_KEY))


async def asgi_call(app: Any, scope: dict[str, Any]) -> Reply:
    """Runs one request on a shallow copy of ``scope`` and records what it sent."""
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    seen = scope.copy()
    await app(seen, asgi_receive, send)
    start = next((m for m in sent if m["type"] == "http.response.start"), None)
    if start is None:
        raise SanityError("the app sent no http.response.start")
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start.get("headers", ())]
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return Reply(str(start["status"]), headers, body, seen)


# -- drivers: WSGI -------------------------------------------------------------------------------
def wsgi_environ(
    path: str = "/", *, headers: Optional[list[tuple[str, str]]] = None, method: str = "GET"
) -> dict[str, Any]:
    """A WSGI environ as a server (gunicorn, waitress) builds it for a plain HTTP/1.1
    request: ``headers`` are ``(name, value)`` pairs, turned into ``HTTP_*`` keys."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "50000",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": "bench/1.0",
        "HTTP_ACCEPT": "*/*",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in headers or ():
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        environ[key] = value
    return environ


def cookie_environ(path: str, cookie: Optional[str]) -> dict[str, Any]:
    """An environ for ``path`` that sends ``cookie`` (``name=value``) when there is one."""
    return wsgi_environ(path, headers=[("Cookie", cookie)] if cookie else None)


def wsgi_batch(
    app: Any, environ: dict[str, Any], before: Sequence[Callable[[], Any]] = ()
) -> Callable[[int], int]:
    """A batch that calls ``app`` ``n`` times, each on a shallow copy of ``environ`` (a
    server builds one per request); the response is drained and closed as a server does.
    ``before``: calls made ahead of each request (in the same timed loop)."""
    clock = time.perf_counter_ns

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        return None

    def batch(n: int) -> int:
        t0 = clock()
        for _ in range(n):
            for op in before:
                op()
            body = app(environ.copy(), start_response)
            for _chunk in body:
                pass
            close = getattr(body, "close", None)
            if close is not None:
                close()
        return clock() - t0

    return batch


def wsgi_call(app: Any, environ: dict[str, Any]) -> Reply:
    """Runs one request on a shallow copy of ``environ`` and records what it produced."""
    got: list[Any] = ["", []]

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        got[0] = status
        got[1] = list(headers)
        return None

    seen = environ.copy()
    body = app(seen, start_response)
    try:
        data = b"".join(body)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return Reply(got[0], got[1], data, seen)


# -- drivers: direct calls -----------------------------------------------------------------------
def call_batch(fn: Callable[..., Any], *args: Any) -> Callable[[int], int]:
    """A batch of ``n`` calls ``fn(*args)``."""
    clock = time.perf_counter_ns

    def batch(n: int) -> int:
        t0 = clock()
        for _ in range(n):
            fn(*args)
        return clock() - t0

    return batch


def await_batch(fn: Callable[..., Any], *args: Any) -> Callable[[int], Awaitable[int]]:
    """A batch of ``n`` awaited calls ``await fn(*args)``."""
    clock = time.perf_counter_ns

    async def batch(n: int) -> int:
        t0 = clock()
        for _ in range(n):
            await fn(*args)
        return clock() - t0

    return batch


# -- sanity checks --------------------------------------------------------------------------------
def cookie_pair(set_cookie: str, name: str = COOKIE) -> str:
    """``name=value`` of a ``Set-Cookie`` line (what the next request sends back)."""
    pair = set_cookie.split(";", 1)[0].strip()
    if not pair.startswith(name + "=") or len(pair) <= len(name) + 1:
        raise SanityError(f"unexpected Set-Cookie {set_cookie!r}")
    return pair


def tampered(token: str) -> str:
    """``token`` with one character changed well inside its signature: the last base64
    character of a signature carries unused bits, so changing it may not change the tag."""
    i = len(token) - 5
    return f"{token[:i]}{'A' if token[i] != 'A' else 'B'}{token[i + 1 :]}"


# (case, what the client sends back or None) -> the reply and the token it carries out
# (a cookie's ``name=value``, a header's value; None when the reply sends none)
Exchange = Callable[[str, Optional[str]], Awaitable[tuple[Reply, list[str]]]]


def cookie_exchange(apps: Callable[[str], Any], wsgi: bool = False, name: str = COOKIE) -> Exchange:
    """The :data:`Exchange` of cookie sessions: ``apps(case)`` is the app of a case (ASGI;
    WSGI with ``wsgi``, on the path ``/case``)."""

    async def exchange(case: str, cookie: Optional[str]) -> tuple[Reply, list[str]]:
        if wsgi:
            reply = wsgi_call(apps(case), cookie_environ(f"/{case}", cookie))
        else:
            reply = await asgi_call(apps(case), cookie_scope(cookie))
        # a cookie the server expires (a tampered one came in) is no session token
        sent = [line for line in reply.set_cookies if not line.startswith(f"{name}=;")]
        return reply, [cookie_pair(line, name) for line in sent]

    return exchange


def one_app(app: Any) -> Callable[[str], Any]:
    """The same app for every case (a Flask app has a route per case)."""
    return lambda case: app


async def check_cases(
    label: str,
    exchange: Exchange,
    cases: Sequence[str] = CASES,
    *,
    read_sends: bool = False,
    secret: bool = False,
) -> str:
    """Checks every case of an app family through ``exchange``: ``new`` sends one token
    that reads back as the value; ``read`` returns it (and sends no token, unless
    ``read_sends``); ``write`` sends one that reads back changed; ``ignore`` sends none; a
    tampered token reads as absent; with ``secret``, the value does not show in the token.
    Returns the token of ``new`` (what the timed requests send)."""

    def one(tokens: list[str], case: str) -> str:
        if len(tokens) != 1:
            raise SanityError(f"{label}/{case}: expected one session token, got {tokens!r}")
        return tokens[0]

    reply, tokens = await exchange("new", None)
    if not reply.status.startswith("200"):
        raise SanityError(f"{label}/new: status {reply.status!r}")
    token = one(tokens, "new")
    if secret and any(part in token for part in (USER, "sku-1000", "visits")):
        raise SanityError(f"{label}: the session shows through the token: {token!r}")
    if "read" in cases:
        reply, tokens = await exchange("read", token)
        if reply.value != EXPECTED:
            raise SanityError(f"{label}/read: read {reply.value!r}, expected {EXPECTED!r}")
        if tokens and not read_sends:
            raise SanityError(f"{label}/read: sent {tokens!r}")
        reply, _ = await exchange("read", tampered(token))
        if reply.value is not None:
            raise SanityError(f"{label}/read: a tampered token read as {reply.value!r}")
    if "write" in cases:
        _, tokens = await exchange("write", token)
        reply, _ = await exchange("read", one(tokens, "write"))
        if reply.value != CHANGED:
            raise SanityError(f"{label}/write: wrote {reply.value!r}, expected {CHANGED!r}")
    if "ignore" in cases:
        _, tokens = await exchange("ignore", token)
        if tokens:
            raise SanityError(f"{label}/ignore: sent {tokens!r}")
    return token


# -- statistics ---------------------------------------------------------------------------------
def quantiles(samples: list[float]) -> dict[str, float]:
    """Median, quartiles and extremes of ``samples`` (per-call times in µs)."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    if len(ordered) >= 2:
        q1, q2, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1 = q2 = q3 = ordered[0]
    return {
        "median": q2,
        "p25": q1,
        "p75": q3,
        "iqr": q3 - q1,
        "min": ordered[0],
        "max": ordered[-1],
        "n": float(len(ordered)),
    }


def paired(a: list[float], b: list[float]) -> list[float]:
    """Round-by-round differences ``a[i] - b[i]`` (both measured in the same rounds)."""
    return [x - y for x, y in zip(a, b, strict=True)]


def overhead(samples: list[float], bare: list[float]) -> dict[str, Any]:
    """A variant against its baseline (same rounds): its per-call quantiles,
    ``overhead_us`` = median minus the baseline's median, and the quartiles of the
    per-round paired difference."""
    q = quantiles(samples)
    pq = quantiles(paired(samples, bare))
    return {
        "per_call_us": q,
        "overhead_us": q["median"] - quantiles(bare)["median"],
        "overhead_paired_us": {k: pq[k] for k in ("median", "p25", "p75", "iqr")},
    }


def ratio_spread(num: list[float], den: list[float]) -> dict[str, float]:
    """Quartiles of the per-round ratios ``num[i] / den[i]`` (rounds with ``den <= 0``
    left out): the spread of a ratio of two paired figures."""
    ratios = [a / b for a, b in zip(num, den, strict=True) if b > 0]
    if not ratios:
        return {"p25": float("nan"), "median": float("nan"), "p75": float("nan")}
    q = quantiles(ratios)
    return {"p25": q["p25"], "median": q["median"], "p75": q["p75"]}


def figures(v: Variant, bare: Variant) -> dict[str, Any]:
    """:func:`overhead` of a variant against its baseline, with its batch size."""
    return {**overhead(v.samples, bare.samples), "batch_calls": v.n}


def ratio(
    num: Variant, num_bare: Variant, den: Variant, den_bare: Variant, goal: Optional[float]
) -> dict[str, Any]:
    """The overhead of ``num`` over that of ``den`` (each against its own baseline), the
    quartiles of the per-round ratio, and whether it is at most ``goal``."""
    n = quantiles(num.samples)["median"] - quantiles(num_bare.samples)["median"]
    d = quantiles(den.samples)["median"] - quantiles(den_bare.samples)["median"]
    value = n / d if d > 0 else float("inf")
    spread = ratio_spread(
        paired(num.samples, num_bare.samples), paired(den.samples, den_bare.samples)
    )
    return {
        "ratio": value,
        "ratio_paired_p25": spread["p25"],
        "ratio_paired_p75": spread["p75"],
        "met": None if goal is None else value <= goal,
    }


# -- variants and the measuring loop ------------------------------------------------------------
@dataclasses.dataclass
class Variant:
    """One configuration under test.

    Attributes:
        key: a unique, stable name such as ``"read/ferrosession"`` (used in the JSON).
        batch: runs ``n`` calls and returns the elapsed ns (plain or ``async def``).
        n: calls per batch; 0 = calibrate.
        samples: per-call µs of every batch, one per round.
    """

    key: str
    batch: BatchFn
    n: int = 0
    samples: list[float] = dataclasses.field(default_factory=list)


async def _run(v: Variant, n: int) -> int:
    result = v.batch(n)
    if inspect.isawaitable(result):
        result = await result
    return int(result)


async def measure(
    variants: list[Variant],
    *,
    budget_s: float,
    batch_ms: float = 4.0,
    min_rounds: int = 20,
    warmup_rounds: int = 3,
    progress: Optional[Progress] = None,
    seed: int = 12345,
) -> int:
    """Calibrates and runs interleaved rounds until ``budget_s`` is spent; returns the
    number of measured rounds (each variant has that many samples)."""
    target_ns = batch_ms * 1e6
    for v in variants:
        if v.n:
            continue
        n = 1
        while True:
            elapsed = await _run(v, n)
            if elapsed >= target_ns / 4 or n >= 1 << 22:
                break
            n *= 2
        # the fastest of a few batches: a neighbour's burst must not shrink the batch size
        elapsed = min([elapsed] + [await _run(v, n) for _ in range(4)])
        v.n = max(1, round(n * target_ns / max(elapsed, 1)))
    rng = random.Random(seed)
    order = list(variants)
    for _ in range(warmup_rounds):
        for v in order:
            await _run(v, v.n)
    gc.collect()
    rounds = 0
    start = time.monotonic()
    deadline = start + budget_s
    while rounds < min_rounds or time.monotonic() < deadline:
        rng.shuffle(order)
        for v in order:
            v.samples.append(await _run(v, v.n) / v.n / 1000.0)
        rounds += 1
        if progress is not None:
            progress.update(rounds, time.monotonic() - start, budget_s, variants)
    if progress is not None:
        progress.done(rounds, time.monotonic() - start)
    return rounds


async def measure_args(
    variants: dict[str, Variant], args: argparse.Namespace, progress: Progress
) -> int:
    """:func:`measure` with the timing of the command line."""
    return await measure(
        list(variants.values()),
        budget_s=args.budget,
        batch_ms=args.batch_ms,
        min_rounds=args.min_rounds,
        progress=progress,
    )


class Progress:
    """A progress line on stderr: rewritten in place on a terminal, every few seconds
    otherwise (logs stay readable)."""

    def __init__(self, label: str, *, every_s: float = 5.0) -> None:
        self.label = label
        self.tty = sys.stderr.isatty()
        self.every_s = 0.25 if self.tty else every_s
        self._last = 0.0

    def note(self, text: str) -> None:
        self._clear()
        print(f"[{self.label}] {text}", file=sys.stderr, flush=True)

    def update(self, rounds: int, elapsed: float, budget: float, variants: list[Variant]) -> None:
        now = time.monotonic()
        if now - self._last < self.every_s:
            return
        self._last = now
        pct = min(100.0, 100.0 * elapsed / budget) if budget > 0 else 100.0
        calls = sum(v.n for v in variants) * rounds
        line = (
            f"[{self.label}] round {rounds}, {elapsed:5.1f}/{budget:.0f} s ({pct:3.0f} %), "
            f"{calls:,} calls"
        )
        if self.tty:
            sys.stderr.write("\r\x1b[2K" + line)
            sys.stderr.flush()
        else:
            print(line, file=sys.stderr, flush=True)

    def done(self, rounds: int, elapsed: float) -> None:
        self._clear()
        print(f"[{self.label}] {rounds} rounds in {elapsed:.1f} s", file=sys.stderr, flush=True)

    def _clear(self) -> None:
        if self.tty:
            sys.stderr.write("\r\x1b[2K")


# -- real services ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process(proc: Optional[subprocess.Popen[Any]]) -> None:
    """Terminates ``proc`` (one this harness started), killing it if it lingers."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


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
            self.port = free_port()
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
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                if _ping(self.port):
                    return self
                time.sleep(0.02)
            self.stop()
        raise RuntimeError(f"redis-server did not start (log in {self.folder / 'redis.log'})")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        stop_process(proc)


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


# -- environment and output ---------------------------------------------------------------------
def _version(dist: str) -> Optional[str]:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> Optional[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _git_revision() -> Optional[str]:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=BENCHES,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment(packages: list[str], **extra: Any) -> dict[str, Any]:
    """What a reader needs to trust (or reproduce) a figure, with the ferrosession that
    was imported (the release snapshot, not .venv's debug build)."""
    import ferrosession
    from ferrosession import _core

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 0
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "nproc": usable,
        "cpu_count": os.cpu_count(),
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "git": _git_revision(),
        "packages": {name: _version(name) for name in ["ferrosession", *packages]},
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "ferrosession_build_profile": _core.build_profile,
        "ferrosession_path": str(Path(ferrosession.__file__).parent),
        **extra,
    }


def result(
    name: str,
    args: argparse.Namespace,
    *,
    unit: str,
    packages: list[str],
    rounds: Optional[int] = None,
    variants: Optional[dict[str, Variant]] = None,
    settings: Optional[dict[str, Any]] = None,
    environment_extra: Optional[dict[str, Any]] = None,
    **sections: Any,
) -> dict[str, Any]:
    """The results JSON every benchmark writes: what ran, where, with which settings, the
    quantiles of every variant, then the benchmark's own ``sections``."""
    timing = {} if rounds is None else {"budget_s": args.budget, "batch_ms": args.batch_ms}
    if rounds is not None:
        timing["rounds"] = rounds
    out: dict[str, Any] = {
        "benchmark": name,
        "unit": unit,
        "quick": args.quick,
        "environment": environment(packages, **(environment_extra or {})),
        "settings": {**timing, **(settings or {})},
        "command": [Path(sys.executable).name, *sys.argv],
        "loadavg_at_end": list(os.getloadavg()),
    }
    if variants is not None:
        out["variants"] = {
            k: {**quantiles(v.samples), "batch_calls": v.n} for k, v in variants.items()
        }
    return {**out, **sections}


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table with right-aligned columns after the first."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        out = []
        for i, c in enumerate(cells):
            out.append(str(c).ljust(widths[i]) if i == 0 else str(c).rjust(widths[i]))
        return "| " + " | ".join(out) + " |"

    sep = ["-" * (widths[0] + 2)] + ["-" * (w + 1) + ":" for w in widths[1:]]
    return "\n".join([line(header), "|" + "|".join(sep) + "|", *(line(r) for r in rows)])


def fmt_overhead(x: dict[str, Any]) -> str:
    """``overhead (p25 to p75)`` of a :func:`figures` entry."""
    p = x["overhead_paired_us"]
    return f"{x['overhead_us']:.2f} ({p['p25']:.2f} to {p['p75']:.2f})"


def fmt_ratio(e: dict[str, Any]) -> str:
    """``ratio (p25 to p75)`` of a :func:`ratio` entry."""
    return f"{e['ratio']:.3f} ({e['ratio_paired_p25']:.3f} to {e['ratio_paired_p75']:.3f})"


def fmt_met(met: Optional[bool]) -> str:
    return "-" if met is None else ("yes" if met else "**no**")


def footer(result: dict[str, Any], *packages: str) -> str:
    """The line under a table: rounds, Python, the packages' versions, the CPU."""
    env = result["environment"]
    pk = env["packages"]
    versions = ", ".join(f"{p} {pk.get(p)}" for p in packages)
    rounds = result["settings"].get("rounds")
    return (
        (f"\nMedians of {rounds} interleaved rounds; overhead = median with the session "
         "layer - median of its baseline; (p25 to p75) of the per-round paired difference / "
         "ratio.\n" if rounds is not None else "\n")
        + f"Python {env['python']}, {versions}, ferrosession {pk['ferrosession']} "
        f"({env['ferrosession_build_profile']}), {env['nproc']} CPU(s): {env['cpu']}."
    )  # fmt: skip


# -- the command line every benchmark shares -------------------------------------------------------
def comma_list(
    parser: argparse.ArgumentParser, text: str, known: Sequence[str], what: str
) -> list[str]:
    """The items of a comma-separated option, each one of ``known``."""
    items = [part.strip() for part in text.split(",") if part.strip()]
    unknown = set(items) - set(known)
    if unknown:
        parser.error(f"unknown {what}(s): {', '.join(sorted(unknown))}")
    return items


def require_release(args: argparse.Namespace, name: str) -> bool:
    """Refuses a debug build of ferrosession (unless ``--allow-debug``) and sets
    ``args.out`` (quick and debug runs write ``NAME.smoke.json``). True for a debug build."""
    from ferrosession import _core

    debug = _core.build_profile != "release"
    if debug:
        if not args.allow_debug:
            sys.exit(
                "this is a debug build of ferrosession: `make bench-build`, then run with "
                "PYTHONPATH=target/bench-site"
            )
        print("WARNING: debug build: these figures mean nothing", file=sys.stderr)
    if args.out is None:
        suffix = ".smoke" if args.quick or debug else ""
        args.out = RESULTS_DIR / f"{name}{suffix}.json"
    return debug


def parse_args(
    name: str,
    doc: Optional[str],
    argv: Optional[list[str]],
    *,
    budget: float,
    quick_budget: float,
    batch_ms: float = 4.0,
    min_rounds: int = 50,
    quick_min_rounds: int = 10,
    cases: Sequence[str] = (),
    sides: Sequence[str] = (),
    sides_help: str = "",
    pinned_with: str = "",
    options: Optional[Callable[[argparse.ArgumentParser], None]] = None,
) -> argparse.Namespace:
    """The shared flags (``--quick``, ``--budget``, ``--batch-ms``, ``--min-rounds``,
    ``--cases`` when ``cases``, ``--sides`` (all by default) when ``sides``, ``--out``,
    ``--check``, ``--allow-debug``, and ``--no-pin`` (``args.pin``) when the bench pins
    itself and the server ``pinned_with`` to one CPU), the bench's own ``options``, the
    timing defaults, and the release-build check."""
    parser = argparse.ArgumentParser(description=(doc or name).split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument(
        "--budget",
        type=float,
        help=f"seconds of measuring (default {budget:g}; quick {quick_budget:g})",
    )
    parser.add_argument(
        "--batch-ms", type=float, help=f"target ms per batch (default {batch_ms:g}; quick 2)"
    )
    parser.add_argument("--min-rounds", type=int, help="at least this many rounds")
    if cases:
        parser.add_argument("--cases", default=",".join(cases), help=f"subset of {','.join(cases)}")
    parser.add_argument("--out", type=Path, help="JSON output (default benches/results/...)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    parser.add_argument(
        "--allow-debug", action="store_true", help="run on a debug build (figures meaningless)"
    )
    if sides:
        parser.add_argument("--sides", default=",".join(sides), help=sides_help)
    if pinned_with:
        parser.add_argument(
            "--no-pin",
            dest="pin",
            action="store_false",
            help=f"leave this process and {pinned_with} unpinned (default: both on one CPU)",
        )
    if options is not None:
        options(parser)
    args = parser.parse_args(argv)
    if cases:
        args.cases = comma_list(parser, args.cases, cases, "case")
    if sides:
        args.sides = args.sides.split(",")
        if not args.sides or set(args.sides) - set(sides):
            sys.exit(f"--sides: a comma-separated subset of {','.join(sides)}")
    if args.budget is None:
        args.budget = quick_budget if args.quick else budget
    if args.batch_ms is None:
        args.batch_ms = 2.0 if args.quick else batch_ms
    if args.min_rounds is None:
        args.min_rounds = quick_min_rounds if args.quick else min_rounds
    require_release(args, name)
    return args


def cases_met(result: dict[str, Any]) -> bool:
    """Whether no case of ``result`` missed its goal (a case without one counts as met)."""
    return all(e["met"] is not False for e in result["cases"].values())


def run_and_report(
    name: str,
    args: argparse.Namespace,
    run: Callable[[argparse.Namespace, Progress], Coroutine[Any, Any, dict[str, Any]]],
    table: Callable[[dict[str, Any]], str],
    met: Callable[[dict[str, Any]], bool],
) -> int:
    """Runs a benchmark, writes its JSON and prints its table: 2 when a sanity check
    failed (nothing timed), 1 with ``--check`` when a goal is missed, else 0."""
    progress = Progress(name)
    try:
        data = asyncio.run(run(args, progress))
    except SanityError as exc:
        print(f"sanity check failed, nothing timed: {exc}", file=sys.stderr)
        return 2
    write_json(args.out, data)
    print(table(data))
    print(f"\nresults: {args.out}", file=sys.stderr)
    if args.check and not met(data):
        return 1
    return 0
