"""WSGI middleware."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional

from ferrosession.config import Provider, Sessions
from ferrosession.current import SCOPE_KEY, CurrentSessions
from ferrosession.errors import ConfigurationError

__all__ = ["WSGISessionMiddleware"]

_new = object.__new__

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class _WSGISessions(CurrentSessions):
    __slots__ = ("_environ",)

    def __init__(self, config: Sessions, environ: dict[str, Any]) -> None:
        super().__init__(config, config._secure_auto and environ.get("wsgi.url_scheme") == "https")
        self._environ = environ

    def _raw(self, provider: Provider) -> Optional[str]:
        if provider.header:
            return self._environ.get(provider.wsgi_key)
        return self._environ.get("HTTP_COOKIE")


class WSGISessionMiddleware:
    """WSGI middleware: ``app.wsgi_app = WSGISessionMiddleware(app.wsgi_app, sessions)``.

    Storages are called with their plain (sync) methods; an ``async def`` storage is a
    configuration error here.
    """

    def __init__(self, app: WSGIApp, sessions: Sessions) -> None:
        if not isinstance(sessions, Sessions):
            raise ConfigurationError("sessions must be a ferrosession.Sessions")
        for p in sessions.providers:
            if p.async_storage and not hasattr(p.storage, "aread"):
                raise ConfigurationError(
                    f"session {p.name!r} has an async storage, which WSGI cannot await: "
                    f"use a storage with plain methods"
                )
        sessions._freeze()
        self.app = app
        self.sessions = sessions

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        # _WSGISessions(...), without the calls of the __init__s (every request makes one)
        current = _new(_WSGISessions)
        current._config = config = self.sessions
        current._https = config._secure_auto and environ.get("wsgi.url_scheme") == "https"
        current._states = {}
        current._started = False
        current._dirty = False
        current._headers = None
        current._environ = environ
        environ[SCOPE_KEY] = current

        committed: list[tuple[str, str]] = []

        def start_with_sessions(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            if current._dirty and not current._started:
                has_cache_control = False
                for k, _ in headers:
                    if k.lower() == "cache-control":
                        has_cache_control = True
                        break
                committed.extend(current._commit_sync(has_cache_control))
            current._started = True
            # A second start_response (with exc_info, PEP 3333) replaces the headers:
            # the storage work is done, so the session headers go out with it too.
            if committed:
                if isinstance(headers, list):
                    headers.extend(committed)
                else:
                    headers = [*headers, *committed]
            return start_response(status, headers, exc_info)

        return self.app(environ, start_with_sessions)
