"""Drive an ASGI app directly: exact request headers in, exact response headers out."""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Optional


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
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": scheme,
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(k.lower().encode(), v.encode("latin-1")) for k, v in (headers or [])],
            "client": ("127.0.0.1", 1234),
            "server": ("127.0.0.1", 80),
        }
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
