"""A drop-in for Starlette's ``SessionMiddleware``, signing and verifying in Rust.

Change one import and every existing session cookie stays valid::

    # from starlette.middleware.sessions import SessionMiddleware
    from ferrosession.starlette import SessionMiddleware

    app.add_middleware(SessionMiddleware, secret_key=SECRET)

The constructor, ``request.session`` (``scope["session"]``, a dict) and the cookie are
Starlette 1.x's: an itsdangerous ``TimestampSigner`` value (HMAC-SHA1 over
``base64(json) + "." + timestamp``, key ``SHA1(b"itsdangerous.Signer" + b"signer" +
secret)``), ``max_age`` enforced on the signed timestamp, a ``Set-Cookie`` only when the
session was modified, a clearing cookie when it was emptied, ``Vary: Cookie`` when it was
accessed, and the same attribute text (``session=…; path=/; Max-Age=1209600; httponly;
samesite=lax``).

Beyond Starlette, both opt-in:

* ``secret_key_fallbacks``: retired secrets that still verify. A cookie one of them
  verified is re-signed under ``secret_key`` on that response (even a read-only one), so
  users move to the new key as they come back; once no cookie signed with an old secret
  can still be valid (``max_age`` after the rotation), drop it from the list.
* lazy decoding (on by default, ``lazy=False`` turns it off): the cookie is verified and
  decoded on the first use of the session (``request.session`` does that), so a request
  whose handler never touches it costs no Rust call. Every Python-level use of the dict
  reads it first, and so does ``json.dumps``. Only C code that walks a ``dict``'s storage
  itself, handed ``scope["session"]`` before anything else touched it, sees the
  difference: orjson, for one, raises ``TypeError`` (a key that is not a ``str``) instead
  of writing the data. Pass ``lazy=False`` if you do that.
"""

import json
import math
from typing import (
    Any,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Literal,
    MutableMapping,
    Optional,
)

import orjson

from ferrosession import _core

__all__ = ["Session", "SessionMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Session(dict[str, Any]):
    """The session dict, as Starlette 1.x's ``starlette.middleware.sessions.Session``.

    Changes through its own methods set ``modified`` (and ``accessed``); a change inside
    a nested value does not: assign the key again, or call :meth:`mark_modified`.
    (Its methods call ``dict``'s directly rather than through ``super()``: the same
    result, a little faster on every request.)
    """

    accessed: bool = False
    modified: bool = False

    def mark_accessed(self) -> None:
        """Records a read (``request.session`` calls it): the response gets ``Vary: Cookie``."""
        self.accessed = True

    def mark_modified(self) -> None:
        """Records a change: the response carries the session cookie."""
        self.accessed = True
        self.modified = True

    def __setitem__(self, key: str, value: Any) -> None:
        self.mark_modified()
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: str) -> None:
        self.mark_modified()
        dict.__delitem__(self, key)

    def clear(self) -> None:
        """Empties the session (the response clears the cookie)."""
        self.mark_modified()
        dict.clear(self)

    def pop(self, key: str, *args: Any) -> Any:
        """``dict.pop``; only a key that was there counts as a change."""
        if key in self:
            self.mark_modified()
        return dict.pop(self, key, *args)

    def popitem(self) -> tuple[str, Any]:
        """``dict.popitem``."""
        item = dict.popitem(self)
        self.mark_modified()
        return item

    def setdefault(self, key: str, default: Any = None) -> Any:
        """``dict.setdefault``; only a missing key counts as a change."""
        if key not in self:
            self.mark_modified()
        return dict.setdefault(self, key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        """``dict.update``."""
        self.mark_modified()
        dict.update(self, *args, **kwargs)

    def __ior__(self, other: Any, /) -> "Session":  # type: ignore[override,misc]
        self.mark_modified()
        return super().__ior__(other)


class _NotRead:
    """The one key an unread lazy session holds in its dict storage (its value is the
    request's state list, so the session needs no instance ``__dict__`` until used).

    Python code never sees it (every method reads the cookie first, which removes it).
    C code that reads a dict's storage directly does: ``json.dumps`` then takes the
    non-empty path that asks ``items()``, which reads the cookie, so its output is right;
    orjson and its kind fail loudly on a key that is not a ``str`` instead of quietly
    writing ``{}``.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "<ferrosession: session cookie not read yet>"


_NOT_READ = _NotRead()
_pop: Callable[[Any, Any], Any] = dict.pop  # one global look-up on the hot path


class _LazySession(Session):
    """A :class:`Session` whose cookie is verified and decoded on first use.

    Every method loads, turns the object into a plain :class:`Session` (``__class__``
    assignment, so later calls cost nothing extra) and then does its work.
    """

    def _fs_load(self) -> None:
        state = _pop(self, _NOT_READ)
        self.__class__ = Session  # type: ignore[assignment]
        state[0].load(self, state)

    # reads
    def mark_accessed(self) -> None:
        # what ``request.session`` calls: _fs_load inlined (one call less on the hot path)
        state = _pop(self, _NOT_READ)
        self.__class__ = Session  # type: ignore[assignment]
        state[0].load(self, state)
        self.accessed = True

    def __getitem__(self, key: str) -> Any:
        # _fs_load inlined: with mark_accessed, the first call of most requests
        state = _pop(self, _NOT_READ)
        self.__class__ = Session  # type: ignore[assignment]
        state[0].load(self, state)
        return dict.__getitem__(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        self._fs_load()
        return dict.get(self, key, default)

    def __contains__(self, key: object) -> bool:
        self._fs_load()
        return dict.__contains__(self, key)

    def __iter__(self) -> Iterator[str]:
        self._fs_load()
        return dict.__iter__(self)

    def __reversed__(self) -> Iterator[str]:
        self._fs_load()
        return dict.__reversed__(self)

    def __len__(self) -> int:
        self._fs_load()
        return dict.__len__(self)

    def keys(self) -> Any:
        self._fs_load()
        return dict.keys(self)

    def values(self) -> Any:
        self._fs_load()
        return dict.values(self)

    def items(self) -> Any:
        self._fs_load()
        return dict.items(self)

    def copy(self) -> dict[str, Any]:
        self._fs_load()
        return dict.copy(self)

    def __eq__(self, other: object) -> bool:
        self._fs_load()
        return dict.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        self._fs_load()
        return dict.__ne__(self, other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        self._fs_load()
        return dict.__repr__(self)

    def __or__(self, other: Any) -> Any:
        self._fs_load()
        return dict.__or__(self, other)

    def __ror__(self, other: Any) -> Any:
        self._fs_load()
        return dict.__ror__(self, other)

    def __sizeof__(self) -> int:
        self._fs_load()
        return dict.__sizeof__(self)

    def __reduce_ex__(self, protocol: Any) -> Any:
        self._fs_load()
        return self.__reduce_ex__(protocol)

    # changes: load first, so the cookie written carries the old data too
    def mark_modified(self) -> None:
        self._fs_load()
        Session.mark_modified(self)

    def __setitem__(self, key: str, value: Any) -> None:
        self._fs_load()
        self.accessed = True  # Session.__setitem__, inlined
        self.modified = True
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: str) -> None:
        self._fs_load()
        Session.__delitem__(self, key)

    def clear(self) -> None:
        self._fs_load()
        Session.clear(self)

    def pop(self, key: str, *args: Any) -> Any:
        self._fs_load()
        return Session.pop(self, key, *args)

    def popitem(self) -> tuple[str, Any]:
        self._fs_load()
        return Session.popitem(self)

    def setdefault(self, key: str, default: Any = None) -> Any:
        self._fs_load()
        return Session.setdefault(self, key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._fs_load()
        self.accessed = True  # Session.update, inlined
        self.modified = True
        dict.update(self, *args, **kwargs)

    def __ior__(self, other: Any, /) -> Session:  # type: ignore[override]
        self._fs_load()
        return Session.__ior__(self, other)


class SessionMiddleware:
    """Starlette's ``SessionMiddleware`` with its cookie signed and verified in Rust.

    Args:
        app: the ASGI app.
        secret_key: the secret (``str`` or Starlette's ``Secret``; like Starlette, its
            ``str()`` is what signs).
        session_cookie: the cookie name.
        max_age: seconds a cookie stays valid (the signed timestamp is checked, and it is
            the cookie's ``Max-Age``); ``None`` = a browser-session cookie of any age.
        path: the cookie's ``path``.
        same_site: ``"lax"``, ``"strict"`` or ``"none"``.
        https_only: adds ``secure``.
        domain: adds ``domain=…``.
        partitioned: adds ``partitioned`` (Starlette 1.x).
        secret_key_fallbacks: retired secrets that still verify; a cookie they verify is
            re-signed under ``secret_key`` on that response (not in Starlette).
        lazy: decode the cookie on the session's first use (default) instead of on every
            request (see the module's notes).
        clock: returns the Unix time in seconds (for tests); the system clock by default.
    """

    def __init__(
        self,
        app: ASGIApp,
        secret_key: Any,
        session_cookie: str = "session",
        max_age: Optional[int] = 14 * 24 * 60 * 60,  # 14 days, in seconds
        path: str = "/",
        same_site: Literal["lax", "strict", "none"] = "lax",
        https_only: bool = False,
        domain: Optional[str] = None,
        partitioned: bool = False,
        *,
        secret_key_fallbacks: Iterable[Any] = (),
        lazy: bool = True,
        clock: Optional[Callable[[], float]] = None,
    ) -> None:
        self.app = app
        self.session_cookie = session_cookie
        self.max_age = max_age
        self.path = path
        self.security_flags = "httponly; samesite=" + same_site
        if https_only:  # Secure flag can be used with HTTPS only
            self.security_flags += "; secure"
        if domain is not None:
            self.security_flags += f"; domain={domain}"
        if partitioned:
            self.security_flags += "; partitioned"
        secrets = [str(secret_key).encode("utf-8")]
        secrets += [str(k).encode("utf-8") for k in secret_key_fallbacks]
        try:
            name: Optional[bytes] = session_cookie.encode("latin-1")
        except UnicodeEncodeError:
            name = None  # no request header can carry it: never found
        max_age_text = f"Max-Age={max_age}; " if max_age is not None else ""
        clear_line = (
            f"{session_cookie}=null; path={path}; expires=Thu, 01 Jan 1970 00:00:00 GMT; "
            f"{self.security_flags}"
        )
        # not_read, lazy and begin: _core.pyi to be updated (not this change's file)
        self._codec = _core.StarletteCodec(
            secrets,
            None if max_age is None else math.floor(max_age),
            name,
            f"{session_cookie}=".encode("latin-1"),
            f"; path={path}; {max_age_text}{self.security_flags}".encode("latin-1"),
            clear_line.encode("latin-1"),
            fast_loads=orjson.loads,
            fast_error=orjson.JSONDecodeError,
            loads=json.loads,
            dumps=json.dumps,
            clock=clock,
            lazy_type=_LazySession,
            not_read=_NOT_READ,
            lazy=lazy,
        )
        # puts the request's session in the scope and returns the app's ``send``
        self._begin: Callable[[Scope, Send], Send] = self._codec.begin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        # In Rust, one call: the lazy session (its state, [codec, headers, status], under
        # its one key until read; the status is then 0 (no valid cookie), 1 (verified)
        # or 2 (by a fallback)) goes into scope["session"], and the ``send`` returned
        # adds Vary / Set-Cookie to the response start as Starlette's middleware does
        # (nothing for a lazy session never used, unless fallback secrets are set),
        # then returns ``send(message)``.
        await self.app(scope, receive, self._begin(scope, send))
