"""``ferrosession.django.SessionMiddleware``: ferrosession's typed sessions in Django
views, ``fs.get_sessions(request).get(Login)``, under Django's WSGI and ASGI handlers,
in sync and async views. ``FERROSESSION_SESSIONS`` is the dotted path to the
``fs.Sessions`` to serve. Its cookies are ferrosession's own, so it runs beside Django's
``SessionMiddleware`` (give them different cookie names).
"""

from __future__ import annotations

from http.cookies import Morsel
from typing import Any, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings  # type: ignore[import-untyped]
from django.core.exceptions import ImproperlyConfigured  # type: ignore[import-untyped]
from django.utils.cache import patch_vary_headers  # type: ignore[import-untyped]
from django.utils.module_loading import import_string  # type: ignore[import-untyped]

from ..config import Sessions
from ..current import SCOPE_KEY, CurrentSessions
from ..wsgi import commit_request_sessions, open_request_sessions, prepare_sessions

__all__ = ["SessionMiddleware"]


class _Line(Morsel):  # type: ignore[type-arg]
    """A ``Set-Cookie`` line ferrosession rendered, carried in ``response.cookies``
    (where Django's handlers take each cookie's ``output(header="")``; a response's
    headers hold one value per name)."""

    def __init__(self, line: str) -> None:
        super().__init__()
        name, _, rest = line.partition("=")
        value = rest.split(";", 1)[0]
        # what Django's test client and code reading response.cookies see
        self.set(name, value, value)
        self._line = line

    def output(self, attrs: Any = None, header: str = "Set-Cookie:") -> str:
        return f"{header} {self._line}"


def _sessions() -> Sessions:
    path = getattr(settings, "FERROSESSION_SESSIONS", None)
    if not isinstance(path, str):
        raise ImproperlyConfigured(
            "ferrosession.django.SessionMiddleware serves the fs.Sessions named by "
            "FERROSESSION_SESSIONS: set it to its dotted path, e.g. 'myapp.sessions.sessions'"
        )
    try:
        found = import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(f"FERROSESSION_SESSIONS = {path!r}: {exc}") from exc
    if not isinstance(found, Sessions):
        raise ImproperlyConfigured(
            f"FERROSESSION_SESSIONS = {path!r} is a {type(found).__name__}, not a "
            "ferrosession.Sessions"
        )
    return found


def _finish(current: CurrentSessions, response: Any) -> Any:
    lines = commit_request_sessions(current, response.has_header("Cache-Control"))
    for name, value in lines:
        lowered = name.lower()
        if lowered == "set-cookie":
            line = _Line(value)
            # past SimpleCookie.__setitem__, which would parse and quote the line again
            dict.__setitem__(response.cookies, line.key, line)
        elif lowered == "vary":
            patch_vary_headers(response, [v.strip() for v in value.split(",")])
        else:
            response.headers[name] = value
    return response


class SessionMiddleware:
    """Django middleware (sync and async) serving ``settings.FERROSESSION_SESSIONS``."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self.sessions = _sessions()
        prepare_sessions(self.sessions)
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def _open(self, request: Any) -> CurrentSessions:
        current = open_request_sessions(self.sessions, request.META)
        scope = getattr(request, "scope", None)
        if isinstance(scope, dict):
            # an ASGIRequest: get_sessions looks in its scope
            scope[SCOPE_KEY] = current
        return current

    def __call__(self, request: Any) -> Any:
        if self.is_async:
            return self.__acall__(request)
        current = self._open(request)
        return _finish(current, self.get_response(request))

    async def __acall__(self, request: Any) -> Any:
        current = self._open(request)
        return _finish(current, await self.get_response(request))
