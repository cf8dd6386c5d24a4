"""FastAPI dependencies: a typed session, and the request's sessions.

::

    from ferrosession.fastapi import current_sessions, session

    @app.get("/me")
    async def me(login: Annotated[Login | None, Depends(session(Login))]) -> str: ...

    @app.post("/logout")
    def logout(s: Annotated[fs.CurrentSessions, Depends(current_sessions)]) -> None:
        s.clear(Login)

A route that depends on ``session(...)`` lists, in its OpenAPI operation, a security
requirement of an ``apiKey`` scheme ``in: cookie`` (or ``header``) named after the
session, the way ``fastapi.security.APIKeyCookie`` does, so ``/docs`` shows it. The
dependency learns the name from the registration: register the session (on any
:class:`~ferrosession.Sessions`) before the OpenAPI schema is built.
"""

import re
from typing import Any, Optional, Union

from fastapi import HTTPException, WebSocketException
from fastapi.openapi.models import APIKey, APIKeyIn
from fastapi.security.base import SecurityBase
from starlette.requests import HTTPConnection
from starlette.status import HTTP_401_UNAUTHORIZED, WS_1008_POLICY_VIOLATION

from ferrosession.config import _ALL
from ferrosession.current import CurrentSessions, get_sessions
from ferrosession.errors import ConfigurationError, SessionNotRegistered
from ferrosession.registration import Registration

__all__ = ["SessionDependency", "current_sessions", "session"]

# what an OpenAPI component name may hold
_NOT_IN_COMPONENT_NAME = re.compile(r"[^A-Za-z0-9._-]")


async def current_sessions(connection: HTTPConnection) -> CurrentSessions:
    """The request's (or WebSocket's) sessions, as a dependency::

        s: Annotated[fs.CurrentSessions, Depends(current_sessions)]

    Raises:
        SessionsNotInstalled: the app has no ``ferrosession.SessionMiddleware``.
    """
    # async: FastAPI runs a plain dependency in its threadpool, for nothing here
    return get_sessions(connection)


class SessionDependency(SecurityBase):
    """``session(key)``: the session's value or ``None``, and its OpenAPI security
    scheme. Made by :func:`session`."""

    def __init__(self, key: Union[type, str], required: bool) -> None:
        self.key = key
        self.required = required
        self._registration: Optional[Registration] = None

    def registration(self) -> Registration:
        """The registration of ``key`` among every :class:`~ferrosession.Sessions`
        made so far (the OpenAPI schema needs its name before any request)."""
        if self._registration is None:
            found = {}
            for sessions in list(_ALL):
                try:
                    reg = sessions.lookup(self.key)
                except SessionNotRegistered:
                    continue
                found[(reg.name, reg.transport.header)] = reg
            what = getattr(self.key, "__name__", self.key)
            if not found:
                raise SessionNotRegistered(
                    f"session({what!r}): no Sessions registers it; register it with "
                    "Sessions.cookie() or Sessions.header() before FastAPI builds the "
                    "OpenAPI schema"
                )
            if len(found) > 1:
                raise ConfigurationError(
                    f"session({what!r}): it is registered under different names "
                    f"({', '.join(sorted(n for n, _ in found))}); register it under one "
                    "name, or pass the name: session('NAME')"
                )
            (self._registration,) = found.values()
        return self._registration

    @property
    def model(self) -> APIKey:  # type: ignore[override]  # SecurityBase's field, made lazy
        reg = self.registration()
        where = APIKeyIn.header if reg.transport.header else APIKeyIn.cookie
        description = f"ferrosession {getattr(reg.type, '__name__', reg.type)} session"
        return APIKey.model_validate({"in": where, "name": reg.name, "description": description})

    @property
    def scheme_name(self) -> str:  # type: ignore[override]
        return "session_" + _NOT_IN_COMPONENT_NAME.sub("_", self.registration().name)

    # async, like current_sessions (an async storage is read by the middleware first)
    async def __call__(self, connection: HTTPConnection) -> Any:
        value = get_sessions(connection).get(self.key)
        if value is None and self.required:
            if connection.scope["type"] == "websocket":
                raise WebSocketException(WS_1008_POLICY_VIOLATION, "Not authenticated")
            raise HTTPException(
                HTTP_401_UNAUTHORIZED,
                "Not authenticated",
                headers={"WWW-Authenticate": "APIKey"},
            )
        return value


def session(key: Union[type, str], *, required: bool = False) -> SessionDependency:
    """A dependency that gives the session registered for ``key`` (a type or a name)::

        login: Annotated[Login | None, Depends(session(Login))]          # or None
        login: Annotated[Login, Depends(session(Login, required=True))]  # or 401

    Args:
        key: the session's type or name.
        required: answer ``401 {"detail": "Not authenticated"}`` (a WebSocket: close
            with 1008) when the session is absent, instead of giving ``None``.

    The dependency raises :class:`~ferrosession.SessionsNotInstalled` when the app has
    no ``ferrosession.SessionMiddleware``.
    """
    return SessionDependency(key, required)
