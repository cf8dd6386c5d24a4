"""The demo shop: each kind of session, the way Ktor's documentation shows them.

- ``/shop``: a cart kept client-side in a signed cookie (``SESSION_CART``) that the
  browser sends only under ``/shop``. Scripts may read it (it is not a credential); the
  signature stops anyone changing it — the page has a button that tries.
- ``/login``, ``/logout``: a login kept server-side in a folder (``DirectoryStorage``,
  cached); only a random id travels, in the HttpOnly cookie ``SESSION_ID``. Logging in
  calls ``regenerate`` (a fresh id: no session fixation); logging out clears it (the
  file is deleted and the browser told to drop the cookie). It ends after 30 minutes
  unused or 12 hours in all; the home page lists the user's sessions on every device
  (``principal``, ``sessions_of``) and logs one (``invalidate_one``) or all the others
  out (``invalidate_all``).
- ``/api``: an API session in the ``X-Session`` request and response header, kept in
  memory on the server (a restart forgets it).

Every page ends with what travels and what stays: the Cookie header the server
received, what ``document.cookie`` shows to scripts, and the session values.
"""

from __future__ import annotations

import dataclasses
import html
import json
import os
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Optional, Union
from urllib.parse import parse_qs, unquote_plus

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

import ferrosession as fs
from ferrosession import _core

__all__ = ["CATALOG", "ApiToken", "Cart", "Login", "Order", "Product", "create_app"]


# -- the sessions -----------------------------------------------------------------------
@dataclass(frozen=True)
class Cart:
    """The shopping cart: product id -> quantity (client-side, signed)."""

    items: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Order:
    """A placed order, kept in the login session."""

    items: dict[str, int]
    total_cents: int
    at: datetime


@dataclass(frozen=True)
class Login:
    """Who is logged in (server-side: only an id travels)."""

    user: str
    since: datetime
    page_views: int = 0
    orders: tuple[Order, ...] = ()


@dataclass(frozen=True)
class ApiToken:
    """An API client's session (header transport, server-side in memory)."""

    calls: int = 0


CART_COOKIE = "SESSION_CART"
LOGIN_COOKIE = "SESSION_ID"
API_HEADER = "X-Session"


# -- the catalog ------------------------------------------------------------------------
@dataclass(frozen=True)
class Product:
    """Something to sell."""

    name: str
    price_cents: int
    color: str
    blurb: str


CATALOG: dict[str, Product] = {
    "apple": Product("Apple", 45, "#d64541", "Crisp, from the orchard down the road."),
    "bread": Product("Sourdough", 380, "#c8913f", "Baked this morning, still warm."),
    "cheese": Product("Comté", 620, "#e8c547", "Aged 18 months in the Jura."),
    "coffee": Product("Coffee beans", 990, "#6f4e37", "250 g, roasted for espresso."),
    "honey": Product("Honey", 750, "#f0a500", "Wildflower, raw, 400 g jar."),
    "olives": Product("Olives", 430, "#6b8e23", "Kalamata, in brine."),
}
MAX_QUANTITY = 20  # per product: the signed cookie stays far below 4 KB

NOTES = {
    "logged-in": "You are logged in. The server issued a fresh session id "
    "(<code>regenerate</code>): an id planted before login is useless.",
    "logged-out": "You are logged out. The server deleted your session file and told the "
    "browser to drop <code>SESSION_ID</code>; the old id no longer opens anything.",
    "logged-out-elsewhere": "Your other sessions are ended (<code>invalidate_all</code>): "
    "their files are deleted, and their ids open nothing any more.",
    "logged-out-device": "That session is ended (<code>invalidate_one</code>): its file is "
    "deleted, and its id opens nothing any more.",
    "login-first": "Log in to check out. Your cart stays in its cookie meanwhile.",
    "ordered": "Thank you! The order is stored in your server-side login session, and the "
    "cart cookie was cleared.",
    "emptied": "Cart emptied: the browser was told to drop <code>SESSION_CART</code>.",
    "full": f"At most {MAX_QUANTITY} of each product, please.",
}


def _money(cents: int) -> str:
    return f"€{cents // 100}.{cents % 100:02d}"


def _cart_total(cart: Cart) -> int:
    return sum(CATALOG[sku].price_cents * n for sku, n in cart.items.items() if sku in CATALOG)


# -- the signing key ----------------------------------------------------------------------
def _demo_key(folder: Path) -> bytes:
    """The cart's signing key, kept beside the sessions so a restart keeps carts valid."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / "demo.key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        text = path.read_text().strip()
        try:
            key = bytes.fromhex(text)
        except ValueError:
            key = b""
        if len(key) < 16:
            raise fs.ConfigurationError(
                f"{path} does not hold a hex key of at least 16 bytes: delete it to get a new one"
            ) from None
        return key
    key = _core.random_bytes(32)
    with os.fdopen(fd, "w") as f:
        f.write(key.hex() + "\n")
    return key


# -- request helpers ------------------------------------------------------------------------
async def _form(request: Request) -> dict[str, str]:
    """A small urlencoded form (no multipart parser needed)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > 16_384:
            break
    fields = parse_qs(body[:16_384].decode("utf-8", "replace"), max_num_fields=20)
    return {k: v[0] for k, v in fields.items()}


def _same_origin(request: Request) -> bool:
    """A POST from our own pages (browsers send Origin on form posts)."""
    origin = request.headers.get("origin")
    if origin is None:  # not a browser, or an old one: nothing to check
        return True
    return origin == f"{request.url.scheme}://{request.headers.get('host', '')}"


def _local_path(value: str, default: str = "/") -> str:
    """``value`` if it is a path on this site, else ``default`` (no open redirect)."""
    if value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return default


def _redirect(path: str, note: Optional[str] = None) -> RedirectResponse:
    if note:
        path += ("&" if "?" in path else "?") + "note=" + note
    return RedirectResponse(path, status_code=303)


def _cookies(header: str) -> list[tuple[str, str]]:
    """The name=value pairs of a Cookie header, in order (for display)."""
    pairs = []
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            pairs.append((name, value))
    return pairs


# -- rendering ------------------------------------------------------------------------------
CSS = """
:root{--ink:#1d2330;--muted:#5d6576;--line:#dfe3ea;--bg:#f6f7f9;--accent:#b7410e;
--ok:#2e7d32;--warn:#8a5a00}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--ink);background:var(--bg)}
header.top{background:#fff;border-bottom:1px solid var(--line)}
.bar{max-width:62rem;margin:0 auto;padding:.7rem 1rem;display:flex;gap:1.2rem;
align-items:center;flex-wrap:wrap}
.brand{font-weight:700;font-size:1.15rem;color:var(--accent);text-decoration:none}
nav a{color:var(--ink);text-decoration:none;margin-right:.9rem;padding:.2rem 0}
nav a.here{border-bottom:2px solid var(--accent)}
#who{margin-left:auto;display:flex;gap:.5rem;align-items:center}
main{max-width:62rem;margin:0 auto;padding:1rem}
h1{font-size:1.5rem;margin:.6rem 0 .4rem}h2{font-size:1.15rem;margin:1.4rem 0 .5rem}
h3{font-size:.95rem;margin:0 0 .4rem}
p.lead{color:var(--muted);margin-top:0}
input{font:inherit;padding:.3rem .5rem;border:1px solid var(--line);border-radius:6px}
button{font:inherit;padding:.3rem .8rem;border:1px solid var(--accent);border-radius:6px;
background:var(--accent);color:#fff;cursor:pointer}
button.quiet{background:#fff;color:var(--accent)}
form.inline{display:inline}
.note{background:#fff8e1;border:1px solid #f3d27a;border-radius:8px;padding:.6rem .9rem}
.products{display:grid;grid-template-columns:repeat(auto-fill,minmax(12.5rem,1fr));gap:.8rem}
.product,.card{background:#fff;border:1px solid var(--line);border-radius:10px;padding:.8rem}
.product{display:flex;flex-direction:column;gap:.3rem}
.swatch{width:2.2rem;height:2.2rem;border-radius:50%;display:grid;place-items:center;
color:#fff;font-weight:700}
.product .price{font-weight:600}.product p{margin:0;color:var(--muted);font-size:.9rem}
.product form{margin-top:auto}
table{border-collapse:collapse;width:100%}
td,th{text-align:left;padding:.3rem .4rem;border-bottom:1px solid var(--line);
vertical-align:top}
.num{text-align:right}
#cart-table{max-width:36rem}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(18rem,1fr));gap:.8rem}
code,.mono{font:12.5px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
overflow-wrap:anywhere}
pre.mono{white-space:pre-wrap;margin:0;background:var(--bg);padding:.4rem .5rem;
border-radius:6px}
.tag{display:inline-block;font-size:.75rem;padding:0 .4rem;border-radius:4px;
background:#eef1f6;color:var(--muted);margin-left:.3rem}
.tag.server{background:#e8f5e9;color:var(--ok)}.tag.client{background:#fff3e0;color:var(--warn)}
.muted{color:var(--muted)}dl{margin:0}dt{font-weight:600;margin-top:.5rem}dd{margin:0}
footer{max-width:62rem;margin:1.5rem auto;padding:0 1rem;color:var(--muted);font-size:.85rem}
"""

# Fills in what scripts can read, and wires the two demo buttons (tamper, API console).
SCRIPT = """
(function () {
  var out = document.getElementById("js-cookie");
  var shown = document.cookie ? document.cookie.split("; ").join("\\n") : "";
  out.textContent = shown || "(nothing: no cookie on this page is readable by scripts)";
  var tamper = document.getElementById("tamper");
  if (tamper) tamper.addEventListener("click", function () {
    var m = document.cookie.match(/(?:^|; )SESSION_CART=([^;]*)/);
    if (!m) return;
    var v = decodeURIComponent(m[1].replace(/\\+/g, " "));
    var cut = v.lastIndexOf("/");
    var forged = v.slice(0, cut).replace(/:(\\d+)/, function (_, n) {
      return ":" + (Number(n) + 100);
    }) + v.slice(cut);
    document.cookie = "SESSION_CART=" + encodeURIComponent(forged) + "; path=/shop";
    location.reload();
  });
  var call = document.getElementById("api-call");
  if (!call) return;
  var log = document.getElementById("api-log");
  var token = sessionStorage.getItem("x-session");
  var held = document.getElementById("api-token");
  function showToken() { held.textContent = token || "(none yet)"; }
  function exchange(method) {
    var headers = token ? {"X-Session": token} : {};
    var sent = method + " /api/counter\\n  X-Session: " + (token || "(not sent)");
    return fetch("/api/counter", {method: method, headers: headers}).then(function (r) {
      var back = r.headers.get("X-Session");
      if (back) { token = back; sessionStorage.setItem("x-session", token); }
      return r.text().then(function (body) {
        log.textContent = "\\u2192 " + sent + "\\n\\u2190 " + r.status + "  X-Session: " +
          (back || "(not sent)") + "\\n  " + body + "\\n\\n" + log.textContent;
        showToken();
      });
    });
  }
  call.addEventListener("click", function () { exchange("GET"); });
  document.getElementById("api-end").addEventListener("click", function () {
    exchange("DELETE").then(function () {
      token = null; sessionStorage.removeItem("x-session"); showToken();
    });
  });
  showToken();
})();
"""


def _describe_cookie(name: str, value: str) -> str:
    """What a cookie the server received is, as HTML."""
    if name == CART_COOKIE:
        text = unquote_plus(value)
        payload, _, tag = text.rpartition("/")
        return (
            f'<span class="tag client">client-side</span> the cart itself: '
            f"<code>{html.escape(payload)}</code> signed with HMAC-SHA256 "
            f"<code>{html.escape(tag[:16])}…</code>"
        )
    if name == LOGIN_COOKIE:
        return (
            '<span class="tag server">server-side</span> only an id (256 random bits); '
            "the login itself is in a file on the server"
        )
    return '<span class="muted">not a session of this app</span>'


class _Page:
    """What every page needs from the request: the sessions and what came in."""

    def __init__(self, request: Request, *, count_view: bool = True) -> None:
        self.request = request
        self.sessions = fs.get_sessions(request)
        self.raw_cookie = request.headers.get("cookie", "")
        self.received = dict(_cookies(self.raw_cookie))
        login = self.sessions.get(Login)
        if login is not None and count_view:
            login = dataclasses.replace(login, page_views=login.page_views + 1)
            self.sessions.set(login)
        self.login = login

    def render(self, title: str, body: str, *, status: int = 200) -> HTMLResponse:
        request = self.request
        path = request.url.path
        note = NOTES.get(request.query_params.get("note", ""))
        nonce = secrets.token_urlsafe(16)
        nav = "".join(
            f'<a href="{href}"{" class=here" if _section(path) == href else ""}>{label}</a>'
            for href, label in (("/", "Home"), ("/shop", "Shop"), ("/api", "API"))
        )
        here = html.escape(path, quote=True)
        if self.login is not None:
            who = (
                f'<span>Logged in as <b id="user-name">{html.escape(self.login.user)}</b></span>'
                f'<form class="inline" method="post" action="/logout">'
                f'<input type="hidden" name="next" value="{here}">'
                f'<button id="logout" class="quiet">Log out</button></form>'
            )
        else:
            who = (
                f'<form class="inline" method="post" action="/login">'
                f'<input type="hidden" name="next" value="{here}">'
                f'<input id="user" name="user" placeholder="your name" maxlength="40" '
                f'autocomplete="username" aria-label="name"> '
                f'<button id="login">Log in</button></form>'
            )
        page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} · ferrosession demo</title>
<link rel="icon" href="data:,">
<style>{CSS}</style></head>
<body>
<header class="top"><div class="bar">
<a class="brand" href="/">ferroshop</a><nav>{nav}</nav><div id="who">{who}</div>
</div></header>
<main>
{f'<p class="note" id="note">{note}</p>' if note else ""}
{body}
{self._travel()}
</main>
<footer>ferrosession demo · sessions and the cart's signing key live in
<code>{html.escape(str(request.app.state.folder))}</code> · delete that folder to start over
</footer>
<script nonce="{nonce}">{SCRIPT}</script>
</body></html>"""
        return HTMLResponse(
            page,
            status_code=status,
            headers={
                "Content-Security-Policy": (
                    f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; "
                    "img-src data:; connect-src 'self'; form-action 'self'; base-uri 'none'; "
                    "frame-ancestors 'none'"
                ),
                "Cache-Control": "no-store",
                "Referrer-Policy": "same-origin",
                "X-Content-Type-Options": "nosniff",
            },
        )

    def _travel(self) -> str:
        """The 'what travels, what stays' panel."""
        if self.received:
            rows = "".join(
                f"<dt><code>{html.escape(k)}</code></dt><dd>{_describe_cookie(k, v)}</dd>"
                for k, v in self.received.items()
            )
            received = f'<dl id="server-cookies">{rows}</dl>'
        else:
            received = '<p class="muted" id="server-cookies">No cookies came with this request.</p>'
        raw = html.escape(self.raw_cookie) or "(no Cookie header)"
        on_shop = _section(self.request.url.path) == "/shop"
        return f"""<h2>What travels, what stays</h2>
<div class="grid" id="travel">
<div class="card"><h3>Cookie header the server received</h3>
<pre class="mono" id="raw-cookie">{raw}</pre>
{received}
{
            ""
            if on_shop
            else '<p class="muted">The cart cookie is scoped to <code>Path=/shop</code>: '
            "your browser never sends it to this page.</p>"
        }
</div>
<div class="card"><h3>What page scripts can read (<code>document.cookie</code>)</h3>
<pre class="mono" id="js-cookie">(needs JavaScript)</pre>
<p class="muted"><code>{LOGIN_COOKIE}</code> is <b>HttpOnly</b>: the browser sends it but no
script can read it, so an injected script cannot steal the login. The cart cookie is readable
on purpose: it is not a credential, and its signature stops changes.</p>
</div>
<div class="card"><h3>Session values in this request</h3><dl>
<dt>Cart <span class="tag client">signed cookie</span></dt>
<dd id="cart">{self._cart_text(on_shop)}</dd>
<dt>Login <span class="tag server">server-side file</span></dt>
<dd id="login-value">{self._login_text()}</dd>
<dt>API session <span class="tag server">memory, via <code>X-Session</code></span></dt>
<dd class="muted">only on <a href="/api">/api</a>, for API clients: no cookie at all</dd>
</dl></div>
</div>"""

    def _cart_text(self, on_shop: bool) -> str:
        if not on_shop:
            return '<span class="muted">not sent to this page (its path is /shop)</span>'
        cart = self.sessions.get(Cart)
        if cart is None:
            if CART_COOKIE in self.received:
                return (
                    '<b id="cart-rejected">rejected</b>: a cart cookie came in but its signature '
                    "does not match, so the server treats it as no cart at all."
                )
            return '<span class="muted">none yet: add something</span>'
        return f"<code>{html.escape(json.dumps(cart.items))}</code>"

    def _login_text(self) -> str:
        if self.login is None:
            if LOGIN_COOKIE in self.received:
                return (
                    '<span class="muted">an id came in, but the server has no session for it: '
                    "the browser is told to forget it</span>"
                )
            return '<span class="muted">not logged in</span>'
        sid = self.sessions.session_id(Login) or ""
        stored = fs.JSONSerializer(Login).serialize(self.login)
        return (
            f"kept on the server under the id <code>{html.escape(sid[:12])}…</code>; "
            f'this data never leaves it:<pre class="mono">{html.escape(stored)}</pre>'
        )


def _section(path: str) -> str:
    for prefix in ("/shop", "/api"):
        if path == prefix or path.startswith(prefix + "/"):
            return prefix
    return "/"


# -- pages -----------------------------------------------------------------------------------
async def home(request: Request) -> Response:
    page = _Page(request)
    if page.login is None:
        account = (
            "<p>You are browsing anonymously. Log in (any name will do) to see a server-side "
            "session appear: the page then shows what the server stores and what travels.</p>"
        )
    else:
        login = page.login
        orders = "".join(
            f"<tr><td>{o.at.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC</td>"
            f"<td>{_items_html(o.items)}</td>"
            f'<td class="num">{_money(o.total_cents)}</td></tr>'
            for o in reversed(login.orders)
        )
        devices = "".join(
            _device_row(d)
            for d in sorted(page.sessions.sessions_of(Login, login.user), key=lambda d: d.created)
        )
        account = (
            f"<p>Welcome back, <b>{html.escape(login.user)}</b>. Logged in since "
            f"{login.since.astimezone(timezone.utc):%H:%M:%S} UTC, "
            f'<span id="page-views">{login.page_views}</span> page views in this session.</p>'
            f"<h2>Where you are logged in</h2>"
            f'<table id="devices"><tr><th>Session (id hash)</th><th>Since</th>'
            f"<th>Last seen</th><th></th></tr>{devices}</table>"
            f'<form class="inline" method="post" action="/logout-others">'
            f'<button id="logout-others" class="quiet">Log out everywhere else</button></form>'
            + (
                f'<h2>Your orders</h2><table id="orders"><tr><th>When</th><th>What</th>'
                f'<th class="num">Total</th></tr>{orders}</table>'
                if orders
                else '<p class="muted">No orders yet.</p>'
            )
        )
    body = f"""<h1>Sessions you can see</h1>
<p class="lead">A tiny shop built on ferrosession. Each kind of session, side by side:</p>
<div class="grid">
<div class="card"><h3><a href="/shop">The cart</a> <span class="tag client">client-side</span></h3>
The whole cart travels in a signed cookie, sent only to <code>/shop</code>. Nothing is stored on
the server; the signature makes any change visible.</div>
<div class="card"><h3>The login <span class="tag server">server-side</span></h3>
Only a random id travels, in an HttpOnly cookie. The data lives in a file on the server, so a
restart keeps you logged in; logging out deletes it.</div>
<div class="card"><h3><a href="/api">The API</a> <span class="tag server">server-side</span></h3>
API clients send an <code>X-Session</code> header instead of a cookie; the value is an id whose
data lives in the server's memory.</div>
</div>
<h2>Your account</h2>
{account}"""
    return page.render("Home", body)


def _device_row(d: fs.SessionInfo) -> str:
    if d.current:
        end = "(this browser)"
    else:  # ends that session alone (invalidate_one); the id hash is all the page knows
        end = (
            f'<form class="inline" method="post" action="/logout-device">'
            f'<input type="hidden" name="session" value="{html.escape(d.id_hash)}">'
            f'<button class="quiet end-session">Log out</button></form>'
        )
    return (
        f'<tr class="{"current" if d.current else "other"}">'
        f"<td><code>{d.id_hash[:10]}…</code></td>"
        f"<td>{d.created:%H:%M:%S} UTC</td><td>{d.last_seen:%H:%M:%S} UTC</td>"
        f"<td>{end}</td></tr>"
    )


def _items_html(items: dict[str, int]) -> str:
    return ", ".join(
        f"{n} &times; {html.escape(CATALOG[sku].name if sku in CATALOG else sku)}"
        for sku, n in items.items()
    )


async def shop(request: Request) -> Response:
    page = _Page(request)
    cart = page.sessions.get(Cart) or Cart()
    cards = "".join(
        f"""<div class="product" id="product-{sku}">
<div class="swatch" style="background:{p.color}">{p.name[0]}</div>
<b>{html.escape(p.name)}</b><span class="price">{_money(p.price_cents)}</span>
<p>{html.escape(p.blurb)}</p>
<form method="post" action="/shop/add"><input type="hidden" name="sku" value="{sku}">
<button id="add-{sku}">Add to cart</button></form></div>"""
        for sku, p in CATALOG.items()
    )
    if cart.items:
        lines = "".join(
            f"<tr><td>{html.escape(CATALOG[sku].name)}</td>"
            f'<td class="num" id="qty-{sku}">{n}</td>'
            f'<td class="num">{_money(CATALOG[sku].price_cents * n)}</td>'
            f'<td><form class="inline" method="post" action="/shop/remove">'
            f'<input type="hidden" name="sku" value="{sku}">'
            f'<button class="quiet" id="remove-{sku}" aria-label="remove one">&minus;</button>'
            f"</form></td></tr>"
            for sku, n in cart.items.items()
            if sku in CATALOG
        )
        basket = f"""<table id="cart-table"><tr><th>Product</th><th class="num">Qty</th>
<th class="num">Price</th><th></th></tr>{lines}
<tr><th>Total</th><th></th><th class="num" id="cart-total">{_money(_cart_total(cart))}</th>
<th></th></tr></table>
<p><form class="inline" method="post" action="/shop/checkout">
<button id="checkout">Check out</button></form>
<form class="inline" method="post" action="/shop/empty">
<button class="quiet" id="empty">Empty cart</button></form>
<button class="quiet" id="tamper" type="button"
 title="Change a quantity in the cookie without the key">Tamper with the cookie</button></p>"""
    elif CART_COOKIE in page.received:
        basket = """<p>Your cart cookie did not verify: someone changed it. Add something to
start a new cart, or <form class="inline" method="post" action="/shop/empty">
<button class="quiet" id="empty">drop it</button></form>.</p>"""
    else:
        basket = '<p class="muted" id="cart-empty">Your cart is empty.</p>'
    body = f"""<h1>Shop</h1>
<p class="lead">Add a few things. The cart lives in your browser, in a cookie signed by the
server: try <em>Tamper with the cookie</em> to see a changed cart rejected.</p>
<div class="products">{cards}</div>
<h2>Your cart</h2>
{basket}"""
    return page.render("Shop", body)


async def shop_add(request: Request) -> Response:
    if not _same_origin(request):
        return Response("cross-site form refused", status_code=403)
    sku = (await _form(request)).get("sku", "")
    if sku not in CATALOG:
        return _redirect("/shop")
    s = fs.get_sessions(request)
    cart = s.get(Cart) or Cart()
    quantity = cart.items.get(sku, 0) + 1
    if quantity > MAX_QUANTITY:
        return _redirect("/shop", "full")
    s.set(Cart(items={**cart.items, sku: quantity}))
    return _redirect("/shop")


async def shop_remove(request: Request) -> Response:
    if not _same_origin(request):
        return Response("cross-site form refused", status_code=403)
    sku = (await _form(request)).get("sku", "")
    s = fs.get_sessions(request)
    cart = s.get(Cart)
    if cart is not None and sku in cart.items:
        items = dict(cart.items)
        items[sku] -= 1
        if items[sku] <= 0:
            del items[sku]
        if items:
            s.set(Cart(items=items))
        else:
            s.clear(Cart)
    return _redirect("/shop")


async def shop_empty(request: Request) -> Response:
    if not _same_origin(request):
        return Response("cross-site form refused", status_code=403)
    fs.get_sessions(request).clear(Cart)
    return _redirect("/shop", "emptied")


async def shop_checkout(request: Request) -> Response:
    if not _same_origin(request):
        return Response("cross-site form refused", status_code=403)
    s = fs.get_sessions(request)
    login = s.get(Login)
    if login is None:
        return _redirect("/shop", "login-first")
    cart = s.get(Cart)
    if cart is None or not cart.items:
        return _redirect("/shop")
    items = {sku: n for sku, n in cart.items.items() if sku in CATALOG}
    order = Order(items=items, total_cents=_cart_total(cart), at=datetime.now(timezone.utc))
    s.set(dataclasses.replace(login, orders=(*login.orders, order)[-10:]))
    s.clear(Cart)
    return _redirect("/", "ordered")


async def login(request: Request) -> Response:
    if not _same_origin(request):
        return Response("cross-site form refused", status_code=403)
    form = await _form(request)
    user = " ".join(form.get("user", "").split())[:40] or "guest"
    s = fs.get_sessions(request)
    s.set(Login(user=user, since=datetime.now(timezone.utc)))
    s.regenerate(Login)  # a fresh id at login: an id planted before is worthless
    return _redirect(_local_path(form.get("next", "/")), "logged-in")


async def logout(request: Request) -> Response:
    if not _same_origin(request):
        return Response("cross-site form refused", status_code=403)
    form = await _form(request)
    fs.get_sessions(request).clear(Login)  # deletes the file, expires the cookie
    return _redirect(_local_path(form.get("next", "/")), "logged-out")


async def logout_others(request: Request) -> Response:
    if not _same_origin(request):
        return Response("cross-site form refused", status_code=403)
    s = fs.get_sessions(request)
    login = s.get(Login)
    if login is not None:  # every other session of this user ends; this one stays
        s.invalidate_all(Login, login.user, keep_current=True)
    return _redirect("/", "logged-out-elsewhere")


async def logout_device(request: Request) -> Response:
    if not _same_origin(request):
        return Response("cross-site form refused", status_code=403)
    form = await _form(request)
    s = fs.get_sessions(request)
    login = s.get(Login)
    if login is not None:  # only this user's sessions: another id hash ends nothing
        s.invalidate_one(Login, login.user, form.get("session", ""))
    return _redirect("/", "logged-out-device")


async def api_page(request: Request) -> Response:
    page = _Page(request)
    base = f"{request.url.scheme}://{request.headers.get('host', '127.0.0.1:8000')}"
    curl = html.escape(
        f"curl -i {base}/api/counter\n"
        f"# copy the X-Session value from the response, then:\n"
        f'curl -i -H "X-Session: <value>" {base}/api/counter'
    )
    body = f"""<h1>API session in a header</h1>
<p class="lead">API clients don't keep cookies. Here the session id travels in an
<code>X-Session</code> header: the server returns it after the first call, the client sends
it back. The data (a call counter) stays in the server's memory.</p>
<div class="grid">
<div class="card"><h3>Try it from this page</h3>
<p><button id="api-call">Call GET /api/counter</button>
<button class="quiet" id="api-end">End the API session</button></p>
<p>The token this page holds (in <code>sessionStorage</code>, not a cookie):<br>
<code id="api-token">(needs JavaScript)</code></p></div>
<div class="card"><h3>Or with curl</h3><pre class="mono">{curl}</pre></div>
</div>
<h2>Exchanges</h2>
<pre class="mono" id="api-log"></pre>"""
    return page.render("API", body)


async def api_counter(request: Request) -> Response:
    s = fs.get_sessions(request)
    if request.method == "DELETE":
        ended = s.get(ApiToken) is not None
        s.clear(ApiToken)  # deletes the entry; a header session sends nothing back
        return JSONResponse({"ended": ended})
    token = ApiToken(calls=(s.get(ApiToken) or ApiToken()).calls + 1)
    s.set(token)
    return JSONResponse({"calls": token.calls})


async def not_found(request: Request, exc: Exception) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": "not found"}, status_code=404)
    page = _Page(request, count_view=False)
    return page.render(
        "Not found", '<h1>Not found</h1><p><a href="/">Back home</a></p>', status=404
    )


def create_app(folder: Union[str, os.PathLike[str]] = ".sessions") -> Starlette:
    """The demo ASGI app, with logins and the cart's signing key under ``folder``."""
    path = Path(folder).resolve()
    key = _demo_key(path)
    sessions = fs.Sessions()
    sessions.cookie(
        Cart,
        CART_COOKIE,
        path="/shop",  # sent only to the shop
        http_only=False,  # readable by scripts: not a credential, and signed
        transformers=[fs.MessageAuthentication(key)],
    )
    sessions.cookie(
        Login,
        LOGIN_COOKIE,
        storage=fs.DirectoryStorage(path, cached=True),
        idle_timeout=timedelta(minutes=30),
        absolute_timeout=timedelta(hours=12),
        principal=lambda login: login.user,  # for "where you are logged in"
    )
    sessions.header(ApiToken, API_HEADER, storage=fs.MemoryStorage(max_entries=10_000))
    app = Starlette(
        routes=[
            Route("/", home),
            Route("/shop", shop),
            Route("/shop/add", shop_add, methods=["POST"]),
            Route("/shop/remove", shop_remove, methods=["POST"]),
            Route("/shop/empty", shop_empty, methods=["POST"]),
            Route("/shop/checkout", shop_checkout, methods=["POST"]),
            Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/logout-others", logout_others, methods=["POST"]),
            Route("/logout-device", logout_device, methods=["POST"]),
            Route("/api", api_page),
            Route("/api/counter", api_counter, methods=["GET", "DELETE"]),
        ],
        exception_handlers={404: not_found},
    )
    app.state.folder = path
    app.add_middleware(fs.SessionMiddleware, sessions=sessions)
    return app
