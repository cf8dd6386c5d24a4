"""A small shop that shows each kind of session the way Ktor's docs describe them:

- ``/shop``: a cart kept client-side in a signed cookie scoped to ``/shop``;
- ``/login``, ``/logout``: a login kept server-side (only an id travels), regenerated
  on login and cleared on logout;
- ``/api/visits``: an API session in the ``X-Session`` header.

Every page shows the session values and the raw cookie header the browser sent.
"""

from __future__ import annotations

import dataclasses
import html
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

import ferrosession as fs
from ferrosession import _core


@dataclass(frozen=True)
class Cart:
    """The shopping cart (client-side, signed)."""

    items: list[str]


@dataclass(frozen=True)
class Login:
    """Who is logged in (server-side)."""

    user: str
    visits: int = 0


@dataclass(frozen=True)
class ApiToken:
    """An API client's session (header transport)."""

    calls: int = 0


def _demo_key(folder: Path) -> bytes:
    """A signing key kept beside the sessions, so a restart keeps carts valid."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / "demo.key"
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        key = _core.random_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key.hex())
        return key


def _page(request: Request, body: str) -> HTMLResponse:
    s = fs.get_sessions(request)
    login = s.get(Login)
    cart = s.get(Cart) if request.url.path.startswith("/shop") else None
    raw = request.headers.get("cookie", "")
    who = (
        f"logged in as <b>{html.escape(login.user)}</b> ({login.visits} visits) "
        f'<form method="post" action="/logout" style="display:inline">'
        f'<button id="logout">Log out</button></form>'
        if login
        else '<form method="post" action="/login" style="display:inline">'
        '<input name="user" id="user" placeholder="name"> '
        '<button id="login">Log in</button></form>'
    )
    cart_text = html.escape(repr(dataclasses.asdict(cart))) if cart else "(not sent here or empty)"
    return HTMLResponse(
        f"""<!doctype html><html><head><meta charset="utf-8"><title>ferrosession demo</title>
<style>body{{font:15px system-ui;max-width:46rem;margin:2rem auto}}code{{word-break:break-all}}
nav a{{margin-right:1rem}}</style></head><body>
<h1>ferrosession demo shop</h1>
<nav><a href="/">Home</a><a href="/shop">Shop</a></nav>
<p id="who">{who}</p>
{body}
<h2>What travels</h2>
<p>Cart session (signed cookie <code>SESSION_CART</code>, path /shop):
   <code id="cart">{cart_text}</code></p>
<p>Login session (id in <code>SESSION_ID</code>, data on the server):
   <code id="login-value">{html.escape(repr(login))}</code></p>
<p>Cookie header your browser sent: <code id="raw-cookie">{html.escape(raw) or "(none)"}</code></p>
</body></html>"""
    )


async def home(request: Request) -> Response:
    s = fs.get_sessions(request)
    login = s.get(Login)
    if login is not None:
        s.set(dataclasses.replace(login, visits=login.visits + 1))
    return _page(request, "<p>Welcome. Add something to your cart in the shop.</p>")


async def shop(request: Request) -> Response:
    items = ["apple", "bread", "cheese"]
    links = " ".join(f'<a id="add-{i}" href="/shop/add?item={i}">add {i}</a>' for i in items)
    return _page(request, f"<p>{links}</p>")


async def shop_add(request: Request) -> Response:
    s = fs.get_sessions(request)
    cart = s.get(Cart) or Cart(items=[])
    item = request.query_params.get("item", "")[:40]
    if item:
        s.set(Cart(items=[*cart.items, item]))
    return RedirectResponse("/shop", status_code=303)


async def login(request: Request) -> Response:
    form = await request.form()
    user = str(form.get("user", "")).strip()[:40] or "guest"
    s = fs.get_sessions(request)
    s.set(Login(user=user, visits=0))
    s.regenerate(Login)  # a new id at login: no fixation
    return RedirectResponse("/", status_code=303)


async def logout(request: Request) -> Response:
    fs.get_sessions(request).clear(Login)
    return RedirectResponse("/", status_code=303)


async def api_visits(request: Request) -> Response:
    s = fs.get_sessions(request)
    token = s.get(ApiToken) or ApiToken()
    token = ApiToken(calls=token.calls + 1)
    s.set(token)
    return JSONResponse({"calls": token.calls, "session_id": s.session_id(ApiToken)})


def create_app(folder: str | os.PathLike[str] = ".sessions") -> Any:
    """The demo ASGI app, with sessions under ``folder``."""
    path = Path(folder)
    key = _demo_key(path)
    sessions = fs.Sessions()
    sessions.cookie(
        Cart, "SESSION_CART", path="/shop", transformers=[fs.MessageAuthentication(key)]
    )
    sessions.cookie(Login, "SESSION_ID", storage=fs.DirectoryStorage(path, cached=True))
    sessions.header(ApiToken, "X-Session", storage=fs.MemoryStorage())
    app = Starlette(
        routes=[
            Route("/", home),
            Route("/shop", shop),
            Route("/shop/add", shop_add),
            Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/api/visits", api_visits),
        ]
    )
    app.add_middleware(fs.SessionMiddleware, sessions=sessions)
    return app
