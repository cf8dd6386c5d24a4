"""WSGI middleware."""

from typing import Any, Callable, Iterable, Optional

from ferrosession.config import Sessions
from ferrosession.current import SCOPE_KEY, CurrentSessions
from ferrosession.errors import ConfigurationError
from ferrosession.transport import Transport

__all__ = [
    "WSGISessionMiddleware",
    "commit_request_sessions",
    "open_request_sessions",
    "prepare_sessions",
]

_new = object.__new__

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class _WSGISessions(CurrentSessions):
    # What _raw reads, taken from the environ up front: holding the environ itself
    # would close a reference cycle per request (environ -> sessions -> environ) that
    # only the cycle collector frees.
    __slots__ = ("_cookie", "_values")

    def __init__(self, config: Sessions, environ: dict[str, Any]) -> None:
        super().__init__(config, config._secure_auto and environ.get("wsgi.url_scheme") == "https")
        self._cookie = environ.get("HTTP_COOKIE")
        self._values = _header_values(config, environ)

    def _raw(self, transport: Transport) -> Optional[str]:
        if transport.header:
            return self._values.get(transport.wsgi_key) if self._values else None
        return self._cookie


def prepare_sessions(sessions: Sessions) -> None:
    """Checks that ``sessions`` can serve WSGI requests and freezes its registry (once,
    at start-up: by :class:`WSGISessionMiddleware` and the Flask extension)."""
    if not isinstance(sessions, Sessions):
        raise ConfigurationError("sessions must be a ferrosession.Sessions")
    for reg in sessions.registrations:
        home = reg.home
        if home.server and home.async_storage and not hasattr(home.storage, "aread"):  # type: ignore[union-attr]
            raise ConfigurationError(
                f"session {reg.name!r} has an async storage, which WSGI cannot await: "
                f"use a storage with plain methods"
            )
    sessions._freeze()


def open_request_sessions(sessions: Sessions, environ: dict[str, Any]) -> CurrentSessions:
    """The sessions of one WSGI request, put in ``environ`` for :func:`get_sessions`
    (for framework integrations; ``sessions`` went through :func:`prepare_sessions`)."""
    current = _WSGISessions(sessions, environ)
    environ[SCOPE_KEY] = current
    return current


def commit_request_sessions(
    current: CurrentSessions, has_cache_control: bool
) -> list[tuple[str, str]]:
    """Does the request's storage work and returns the headers to add to its response
    (``Cache-Control: no-store`` with a session cookie unless ``has_cache_control``).
    Once called, ``set``, ``clear`` and ``regenerate`` raise ``TooLateSessionSet``.

    Raises:
        StorageError: the storage failed; nothing is to be sent for the sessions.
    """
    if current._states and not current._started:
        return current._commit_sync(has_cache_control)
    current._started = True
    return []


def _header_values(config: Sessions, environ: dict[str, Any]) -> Optional[dict[str, Any]]:
    """The environ entries of the header sessions (``None`` when there are none)."""
    keys = config._wsgi_keys
    if not keys:
        return None
    return {k: environ[k] for k in keys if k in environ}


class WSGISessionMiddleware:
    """WSGI middleware: ``app.wsgi_app = WSGISessionMiddleware(app.wsgi_app, sessions)``.

    Storages are called with their plain (sync) methods; an ``async def`` storage is a
    configuration error here.
    """

    def __init__(self, app: WSGIApp, sessions: Sessions) -> None:
        prepare_sessions(sessions)
        self.app = app
        self.sessions = sessions

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        # _WSGISessions(...), without the calls of the __init__s (every request makes one)
        current = _new(_WSGISessions)
        current._config = config = self.sessions
        current._https = config._secure_auto and environ.get("wsgi.url_scheme") == "https"
        current._states = {}
        current._started = False
        current._cookie = environ.get("HTTP_COOKIE")
        current._values = _header_values(config, environ) if config._wsgi_keys else None
        environ[SCOPE_KEY] = current

        committed: list[tuple[str, str]] = []

        def start_with_sessions(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            if current._states and not current._started:
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
