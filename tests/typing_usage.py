"""A typed program that uses ferrosession the way its users do: a Starlette shop and a
Flask app, with a custom serializer, transformer and storage.

``tests/test_typing_usage.py`` checks it with ``mypy --strict`` (no error allowed; the one
``type: ignore`` is for Flask's own ``app.wsgi_app = ...`` pattern, and ``--strict`` would
report it if it were not needed) and also runs it, so every line here is real code.
``assert_type`` pins what the annotations promise: ``get(T)`` is ``Optional[T]``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Optional

from flask import Flask, request
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

import ferrosession as fs

if sys.version_info >= (3, 11):
    from typing import assert_type
else:  # pragma: no cover - the test venv runs 3.11+
    from typing_extensions import assert_type

KEY = bytes(range(32))
OLD_KEY = bytes(range(1, 33))


# -- session types ----------------------------------------------------------------------
@dataclass(frozen=True)
class Cart:
    items: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Login:
    user: str
    visits: int = 0


@dataclass(frozen=True)
class ApiToken:
    client: str
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Prefs:
    theme: str = "light"


# -- custom pieces: a transformer, a serializer and a storage that satisfy the protocols --
class Reverse:
    """A (useless) custom transformer: reverses the text."""

    def transform_write(self, value: str) -> str:
        return value[::-1]

    def transform_read(self, value: str) -> Optional[str]:
        return value[::-1]


class PrefsSerializer:
    """A hand-written serializer for one type."""

    def serialize(self, value: Prefs) -> str:
        return value.theme

    def deserialize(self, text: str) -> Prefs:
        if text not in ("light", "dark"):
            raise ValueError(text)
        return Prefs(theme=text)


class DictStorage:
    """A custom server-side storage."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def read(self, session_id: str) -> Optional[str]:
        return self.data.get(session_id)

    def write(self, session_id: str, value: str, ttl: int) -> None:
        self.data[session_id] = value

    def invalidate(self, session_id: str) -> None:
        self.data.pop(session_id, None)


def make_sessions(folder: Path) -> fs.Sessions:
    sessions = fs.Sessions()
    sessions.cookie(
        Cart,
        "SESSION_CART",
        path="/shop",
        max_age=timedelta(days=1),
        transformers=[fs.MessageAuthentication(KEY, old_keys=[OLD_KEY])],
    )
    sessions.cookie(
        Login,
        "SESSION_ID",
        storage=fs.DirectoryStorage(folder, cached=True, cache_ttl=timedelta(seconds=30)),
        same_site="Strict",
    )
    sessions.cookie(
        Prefs,
        "PREFS",
        max_age=None,
        serializer=PrefsSerializer(),
        transformers=[Reverse(), fs.Encrypt(KEY)],
    )
    sessions.header(ApiToken, "X-Session", storage=DictStorage())
    return sessions


# -- helpers typed against the public API --------------------------------------------------
def cart_of(s: fs.CurrentSessions) -> Cart:
    cart = s.get(Cart)
    assert_type(cart, Optional[Cart])
    return cart or Cart()


def who(s: fs.CurrentSessions) -> str:
    login = s.get(Login)
    if login is None:
        return "anonymous"
    assert_type(login, Login)
    return f"{login.user} ({login.visits})"


def raw_by_name(s: fs.CurrentSessions) -> object:
    value: object = s.get("SESSION_ID")  # by name: the type is not known statically
    return value


# -- Starlette ------------------------------------------------------------------------------
async def shop(request: Request) -> Response:
    s = fs.get_sessions(request)
    return PlainTextResponse(f"{who(s)}: {', '.join(cart_of(s).items) or 'empty'}")


async def shop_add(request: Request) -> Response:
    s = fs.get_sessions(request)
    cart = cart_of(s)
    s.set(replace(cart, items=[*cart.items, request.path_params["item"]]))
    return RedirectResponse("/shop", status_code=303)


async def shop_clear(request: Request) -> Response:
    fs.get_sessions(request).clear(Cart)
    return PlainTextResponse("emptied")


async def login(request: Request) -> Response:
    s = fs.get_sessions(request)
    previous = s.get(Login)
    s.set(Login(user=request.path_params["user"], visits=previous.visits if previous else 0))
    s.regenerate(Login)
    sid: Optional[str] = s.session_id(Login)
    return PlainTextResponse(sid or "")


async def logout(request: Request) -> Response:
    s = fs.get_sessions(request)
    s.clear(Login)
    return PlainTextResponse("bye")


async def api_me(request: Request) -> Response:
    s = fs.get_sessions(request)
    token = s.get(ApiToken)
    if token is None:
        s.set(ApiToken(client="cli", scopes=("read",)))
        return JSONResponse({"client": None})
    return JSONResponse({"client": token.client, "scopes": list(token.scopes)})


async def prefs(request: Request) -> Response:
    s = fs.get_sessions(request)
    current = s.get(Prefs) or Prefs()
    s.set(Prefs(theme="dark" if current.theme == "light" else "light"))
    return PlainTextResponse(current.theme)


def make_starlette_app(folder: Path) -> Starlette:
    app = Starlette(
        routes=[
            Route("/shop", shop),
            Route("/shop/add/{item}", shop_add),
            Route("/shop/clear", shop_clear),
            Route("/login/{user}", login),
            Route("/logout", logout),
            Route("/api/me", api_me),
            Route("/prefs", prefs),
        ]
    )
    app.add_middleware(fs.SessionMiddleware, sessions=make_sessions(folder))
    return app


def make_asgi_app(folder: Path) -> fs.SessionMiddleware:
    """The middleware around a bare ASGI app, built without Starlette's helper."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        s = fs.get_sessions(scope)
        body = who(s).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return fs.SessionMiddleware(app, make_sessions(folder))


# -- Flask ----------------------------------------------------------------------------------
def make_flask_app(folder: Path) -> Flask:
    app = Flask(__name__)
    # Flask's own documented pattern; mypy sees wsgi_app as a method, hence the ignore.
    app.wsgi_app = fs.WSGISessionMiddleware(app.wsgi_app, make_sessions(folder))  # type: ignore[method-assign]

    @app.get("/login/<name>")
    def flask_login(name: str) -> str:
        s = fs.get_sessions(request)
        s.set(Login(user=name))
        s.regenerate(Login)
        return "ok"

    @app.get("/me")
    def flask_me() -> str:
        s = fs.get_sessions(request)
        login = s.get(Login)
        if login is not None:
            s.set(replace(login, visits=login.visits + 1))
        return who(s)

    @app.get("/logout")
    def flask_logout() -> str:
        fs.get_sessions(request).clear(Login)
        return "bye"

    return app


def handle_errors(s: fs.CurrentSessions) -> str:
    """The exception hierarchy is usable in ``except`` clauses."""
    try:
        s.set(Login(user="x" * 10))
    except fs.SessionTooLarge as exc:
        return f"too large: {exc}"
    except fs.TooLateSessionSet:
        return "too late"
    except fs.SessionError as exc:
        return type(exc).__name__
    return "ok"
