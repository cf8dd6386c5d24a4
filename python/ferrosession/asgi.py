"""ASGI middleware."""

from __future__ import annotations

from typing import Any, Awaitable, Callable, MutableMapping, Optional

from ferrosession.config import Provider, Sessions
from ferrosession.current import SCOPE_KEY, CurrentSessions, _sent
from ferrosession.errors import ConfigurationError

__all__ = ["SessionMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _ASGISessions(CurrentSessions):
    __slots__ = ("_headers", "_values")

    def __init__(self, config: Sessions, headers: Any, https: bool) -> None:
        # Every request makes one of these: the fields are set here directly rather
        # than through super().__init__ (a measurable share of an untouched request).
        self._config = config
        self._https = https
        self._states = {}
        self._started = False
        self._dirty = False
        self._cookie = None
        self._scanned = False
        self._headers = headers
        self._values: Optional[dict[bytes, str]] = None

    def _raw(self, provider: Provider) -> Optional[str]:
        if not self._scanned:
            self._scan()
        if provider.header:
            return self._values.get(provider.header_key) if self._values else None
        return self._cookie

    def _read_rust(self, p: Provider) -> Optional[tuple[Any, ...]]:
        # Rust walks the ASGI header list itself.
        if p.clocks:
            return p.codec.read_asgi(self._headers, int(self._config._clock()))
        return p.codec.read_asgi(self._headers)

    def _scan(self) -> None:
        """One pass over the raw header list (no copy of it)."""
        self._scanned = True
        wanted = self._config._header_keys
        cookies: list[str] = []
        for key, value in self._headers:
            if key == b"cookie":
                cookies.append(value.decode("latin-1"))
            elif wanted and key in wanted:
                if self._values is None:
                    self._values = {}
                self._values.setdefault(key, value.decode("latin-1"))
        if cookies:
            self._cookie = cookies[0] if len(cookies) == 1 else "; ".join(cookies)


class SessionMiddleware:
    """ASGI middleware that gives every HTTP and WebSocket request its sessions.

    Use it as ``SessionMiddleware(app, sessions)`` or, in Starlette / FastAPI,
    ``app.add_middleware(SessionMiddleware, sessions=sessions)``. Lifespan and other
    scopes pass through untouched. A WebSocket handler may read sessions and set them
    before it accepts the connection (they go out with the accept).
    """

    def __init__(self, app: ASGIApp, sessions: Sessions) -> None:
        if not isinstance(sessions, Sessions):
            raise ConfigurationError("sessions must be a ferrosession.Sessions")
        self.app = app
        self.sessions = sessions
        sessions._freeze()
        self._preload = any(p.async_storage for p in sessions.providers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        current = _ASGISessions(
            self.sessions,
            scope["headers"],
            self.sessions._secure_auto and scope.get("scheme") in ("https", "wss"),
        )
        scope[SCOPE_KEY] = current
        if self._preload:
            await current._preload()

        async def send_with_sessions(message: Message) -> None:
            mtype = message["type"]
            if mtype == "http.response.start" or mtype == "websocket.accept":
                current._started = True
                if current._dirty:
                    planned, ops = current._plan()
                    if ops:
                        await current._run_async(ops)
                    extra, cookie_sent = _sent(planned)
                    if extra:
                        headers = message.get("headers")
                        if not isinstance(headers, list):
                            headers = message["headers"] = list(headers or ())
                        if cookie_sent and not any(
                            k.lower() == b"cache-control" for k, _ in headers
                        ):
                            # a response that sets a session cookie must not be cached
                            headers.append((b"cache-control", b"no-store"))
                        headers.extend([(k, v.encode("latin-1")) for _, k, v in extra])
            await send(message)

        await self.app(scope, receive, send_with_sessions)
