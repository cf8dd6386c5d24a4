"""ASGI middleware."""

from typing import Any, Awaitable, Callable, MutableMapping, Optional, Sequence

from ferrosession.config import Sessions
from ferrosession.current import SCOPE_KEY, CurrentSessions
from ferrosession.errors import ConfigurationError
from ferrosession.state import Header
from ferrosession.transport import Transport

__all__ = ["SessionMiddleware"]

_new = object.__new__

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _ASGISessions(CurrentSessions):
    # the request's header list, and what the one pass over it found (for chains that
    # run partly in Python): (the Cookie header, other wanted headers), None until made
    __slots__ = ("_headers", "_next", "_scanned")
    _asgi = True

    def __init__(self, config: Sessions, headers: Any, https: bool, send: Send) -> None:
        # Every request makes one of these: the fields are set here directly rather
        # than through super().__init__ (a measurable share of an untouched request).
        self._config = config
        self._https = https
        self._states = {}
        self._started = False
        self._headers = headers
        self._scanned: Optional[tuple[Optional[str], Optional[dict[bytes, str]]]] = None
        self._next = send

    def _send(self, message: Message) -> Awaitable[None]:
        """The ``send`` the app gets: the server's (``_next``) with this request's
        session headers added to the response start. A plain method that returns the
        awaitable of ``_next`` (no coroutine of its own per message): the app awaits
        what it returns, as it would await ``send``."""
        if not self._started:
            mtype = message["type"]
            if mtype == "http.response.start" or mtype == "websocket.accept":
                self._started = True
                if self._states:  # a session was touched
                    planned, ops = self._plan()
                    if ops:  # storage work first, then the message
                        return _then(self._run_async(ops), planned, self._next, message)
                    _add_planned(message, planned)
        return self._next(message)

    def _raw(self, transport: Transport) -> Optional[str]:
        scanned = self._scanned
        if scanned is None:
            scanned = self._scanned = self._scan()
        cookie, values = scanned
        if transport.header:
            return values.get(transport.header_key) if values else None
        return cookie

    def _scan(self) -> tuple[Optional[str], Optional[dict[bytes, str]]]:
        """One pass over the raw header list (no copy of it)."""
        wanted = self._config._header_keys
        cookies: list[str] = []
        values: Optional[dict[bytes, str]] = None
        for key, value in self._headers:
            if key == b"cookie":
                cookies.append(value.decode("latin-1"))
            elif wanted and key in wanted:
                if values is None:
                    values = {}
                values.setdefault(key, value.decode("latin-1"))
        cookie = None
        if cookies:
            cookie = cookies[0] if len(cookies) == 1 else "; ".join(cookies)
        return cookie, values


_NO_STORE = (b"cache-control", b"no-store")


def _add_planned(message: Message, planned: Sequence[Header]) -> None:
    """Adds the planned headers whose storage work held to a response start (its header
    list is copied first when it is not a list); with a session cookie, ``Cache-Control:
    no-store`` too (before them) unless the app set its own: a response that sets a
    session cookie must not be cached."""
    headers = message.get("headers")
    if headers.__class__ is not list:
        headers = message["headers"] = list(headers or ())
    own = len(headers)  # the app's own headers
    cookie_sent = False
    for _, key, value, cookie, guard in planned:
        if guard is None or guard.ok:
            headers.append((key, value if value.__class__ is bytes else value.encode("latin-1")))
            if cookie:
                cookie_sent = True
    if cookie_sent:
        for i in range(own):
            k = headers[i][0]
            if len(k) == 13 and k.lower() == b"cache-control":
                return
        headers.insert(own, _NO_STORE)


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
        self._preload = any(
            r.home.server and r.home.async_storage  # type: ignore[union-attr]
            for r in sessions.registrations
        )
        self._secure_auto = sessions._secure_auto

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        # _ASGISessions(self.sessions, headers, https, send), without the call of its
        # __init__ (every request makes one)
        current = _new(_ASGISessions)
        current._config = self.sessions
        current._https = self._secure_auto and scope.get("scheme") in ("https", "wss")
        current._states = {}
        current._started = False
        current._headers = scope["headers"]
        current._scanned = None
        current._next = send
        scope[SCOPE_KEY] = current
        try:
            if self._preload:
                await current._preload()
            await self.app(scope, receive, current._send)
        finally:
            # The server's send may hold the scope (uvicorn's does, through its
            # per-request object): kept here, it would close a reference cycle per
            # request (scope -> sessions -> send -> scope) that only the cycle
            # collector frees, at a cost of several µs per request under load.
            current._next = _after_the_app


def _after_the_app(message: Message) -> Awaitable[None]:
    """The ``send`` a request's sessions hold once the app has returned."""
    raise RuntimeError(f"a {message.get('type')!r} message was sent after the app returned")


async def _then(
    work: Awaitable[None], planned: Sequence[Header], send: Send, message: Message
) -> None:
    """Runs the storage work, then sends the message with the headers whose work held."""
    await work
    _add_planned(message, planned)
    await send(message)
