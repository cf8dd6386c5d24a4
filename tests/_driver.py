"""Drive an ASGI app directly: exact request headers in, exact response headers out."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional
from urllib.parse import quote_plus

# The 32-byte key the cookie tests sign with.
KEY = bytes(range(32))


def signed(payload: str, key: bytes = KEY) -> str:
    """A MessageAuthentication cookie value by hand: the payload, "/", its HMAC-SHA256."""
    return payload + "/" + hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


def uri(value: str) -> str:
    """The contract's URI encoding: keep A-Za-z0-9-._~, space -> '+', the rest %XX."""
    return quote_plus(value, safe="")


class Response:
    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status = status
        self.raw_headers = headers
        self.body = body

    def headers(self, name: str) -> list[str]:
        key = name.lower().encode()
        return [v.decode("latin-1") for k, v in self.raw_headers if k.lower() == key]

    @property
    def set_cookies(self) -> list[str]:
        return self.headers("set-cookie")

    def cookie_value(self, name: str) -> Optional[str]:
        """The value of the Set-Cookie for ``name`` (None when absent)."""
        for line in self.set_cookies:
            first = line.split(";", 1)[0]
            k, _, v = first.partition("=")
            if k == name:
                return v
        return None


def call(
    app: Callable[..., Any],
    *,
    path: str = "/",
    headers: Optional[list[tuple[str, str]]] = None,
    method: str = "GET",
    scheme: str = "http",
) -> Response:
    """Runs one HTTP request through ``app``."""

    async def run() -> Response:
        raw = [(k.lower().encode(), v.encode("latin-1")) for k, v in (headers or [])]
        scope = http_scope(path, raw, method=method, scheme=scheme)
        sent: list[dict[str, Any]] = []
        received = False

        async def receive() -> dict[str, Any]:
            nonlocal received
            if not received:
                received = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope, receive, send)
        start = next(m for m in sent if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return Response(start["status"], list(start.get("headers", [])), body)

    return asyncio.run(run())


def http_scope(
    path: str = "/",
    headers: Optional[list[tuple[bytes, bytes]]] = None,
    *,
    query_string: bytes = b"",
    method: str = "GET",
    scheme: str = "http",
) -> dict[str, Any]:
    """The ASGI scope of one plain HTTP/1.1 request from 127.0.0.1."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": scheme,
        "path": path,
        "raw_path": path.encode(),
        "query_string": query_string,
        "root_path": "",
        "headers": headers or [],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
    }


# -- a session driven by its SID cookie, the same way through every server ----------------


@dataclass
class Resp:
    status: int
    body: str
    set_cookies: list[str]

    @property
    def cookie(self) -> Optional[str]:
        """The SID value sent back (``""`` for an expiring cookie), or ``None``."""
        for line in self.set_cookies:
            name, _, value = line.split(";", 1)[0].partition("=")
            if name == "SID":
                return value
        return None


Request = Callable[..., Resp]
# (sessions of the request, path, ?user=) -> the body
Handler = Callable[[Any, str, Optional[str]], str]


def starlette_request(http: Any) -> Request:
    """``request(path, cookie=, user=)`` through a Starlette ``TestClient``, no cookie jar."""

    def request(path: str, *, cookie: Optional[str] = None, user: str = "") -> Resp:
        http.cookies.clear()
        headers = {"cookie": f"SID={cookie}"} if cookie is not None else {}
        r = http.get(path, params={"user": user} if user else None, headers=headers)
        return Resp(r.status_code, r.text, r.headers.get_list("set-cookie"))

    return request


def flask_request(sessions: Any, handle: Handler) -> Request:
    """``request(path, cookie=, user=)`` through a Flask app behind the WSGI middleware
    that answers every ``/<name>`` with ``handle``."""
    import flask

    import ferrosession as fs

    app = flask.Flask(__name__)
    app.wsgi_app = fs.WSGISessionMiddleware(app.wsgi_app, sessions)  # type: ignore[method-assign]

    @app.get("/<name>")
    def route(name: str) -> str:
        return handle(fs.get_sessions(flask.request), "/" + name, flask.request.args.get("user"))

    http = app.test_client(use_cookies=False)

    def request(path: str, *, cookie: Optional[str] = None, user: str = "") -> Resp:
        headers = {"Cookie": f"SID={cookie}"} if cookie is not None else {}
        r = http.get(path, query_string={"user": user} if user else None, headers=headers)
        return Resp(r.status_code, r.get_data(as_text=True), r.headers.getlist("Set-Cookie"))

    return request


def http_environ(
    headers: Iterable[tuple[str, str]] = (),
    *,
    path: str = "/",
    query: str = "",
    wsgi_input: Any = None,
    errors: Any = None,
    multithread: bool = False,
) -> dict[str, Any]:
    """The WSGI environ of one plain ``GET path?query`` over HTTP/1.1; a header named
    twice keeps its last value."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": wsgi_input,
        "wsgi.errors": errors,
        "wsgi.multithread": multithread,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in headers:
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ
