"""Flask: the extension for ferrosession's typed sessions (:func:`init_app`,
:class:`FlaskSessions`, from :mod:`ferrosession.flask_ext`), and a drop-in for Flask's
default session, signing and verifying in Rust.

Set it once and every existing session cookie stays valid::

    from ferrosession.flask import SessionInterface

    app.session_interface = SessionInterface()

It reads and writes the cookie of Flask's ``SecureCookieSessionInterface`` (it is a
subclass of it): itsdangerous ``URLSafeTimedSerializer`` with salt ``cookie-session``,
key ``HMAC-SHA1(SECRET_KEY, salt)``, HMAC-SHA1 signatures, Flask's tagged JSON (tuples,
bytes, ``Markup``, UUIDs, datetimes survive a round trip) and zlib-compressed payloads
(marked by a leading ``.``). It honours ``SECRET_KEY_FALLBACKS``,
``PERMANENT_SESSION_LIFETIME`` (the maximum age of a cookie, as in Flask, permanent or
not), ``SESSION_REFRESH_EACH_REQUEST``, every ``SESSION_COOKIE_*`` setting and
``session.permanent``; ``should_set_cookie``, ``get_expiration_time``, the
``get_cookie_*`` methods and ``session_class`` can be overridden as in Flask.

The signature, base64, zlib and, for sessions of plain JSON values, the JSON text are
done in Rust; a session holding tagged types goes through Flask's own
``TaggedJSONSerializer`` (``self.serializer``), so custom tags registered on it work. A
subclass that changes ``digest_method`` to anything but SHA-1 gets Flask's own code.

The cookie's text is found in ``HTTP_COOKIE`` by Rust with Werkzeug's rules (unless the
request class replaces ``cookies``), and the ``Set-Cookie`` line is Werkzeug's own
``dump_cookie`` output for those settings, built once and filled in per response (a
cookie over ``MAX_COOKIE_SIZE`` still goes through ``response.set_cookie``, which warns).

Differences, none of which changes which cookies are valid or what they carry:

* a cookie whose signature verifies but whose payload does not decode (only a holder of
  the secret can make one) is an empty session here, where Flask raises ``BadPayload``
  on every request until the cookie goes;
* JSON shorter than :attr:`SessionInterface.compress_min_bytes` (512) is not
  compressed, and compressed payloads come from miniz_oxide, not CPython's zlib: other
  bytes than Flask's for the same session, read by Flask all the same.
"""

import hashlib
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Optional

import orjson
from flask import Flask
from flask.json.provider import DefaultJSONProvider
from flask.json.tag import TaggedJSONSerializer
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin
from flask.wrappers import Request, Response
from werkzeug.http import dump_cookie, http_date
from werkzeug.sansio.request import Request as _SansIORequest

from ferrosession import _core
from ferrosession._signer_keys import CodecCache
from ferrosession.flask_ext import FlaskSessions, init_app

__all__ = ["FlaskSessions", "SessionInterface", "init_app"]

_DEFAULT_TAGS = tuple(type(tag) for tag in TaggedJSONSerializer().order)
_SHA1: tuple[Any, ...] = (SecureCookieSessionInterface.digest_method, hashlib.sha1)
# Werkzeug's own ``Request.cookies``: when a request class keeps it, the cookie is found
# in ``HTTP_COOKIE`` by Rust with the same rules, without building ``request.cookies``.
_WERKZEUG_COOKIES = _SansIORequest.__dict__["cookies"]
_FLASK_MAX_COOKIE_SIZE = Response.__dict__["max_cookie_size"]
_DATE_MARK = "\x00"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_EPOCH_NAIVE = datetime(1970, 1, 1)
_SECOND = timedelta(seconds=1)


class SessionInterface(SecureCookieSessionInterface):
    """Flask's ``SecureCookieSessionInterface`` with its cookie handled in Rust.

    Args:
        clock: returns the Unix time in seconds for the signed timestamp and the age
            check (for tests); the system clock by default. ``Expires`` still comes from
            :meth:`get_expiration_time`, as in Flask.
    """

    #: JSON shorter than this many bytes is not compressed. Flask tries zlib on every
    #: payload; both spellings are valid cookies that Flask reads, and compressing a small
    #: session costs more time than the bytes it saves. 0 = try every payload, as Flask.
    compress_min_bytes = 512

    def __init__(self, *, clock: Optional[Callable[[], float]] = None) -> None:
        self._clock = clock
        self._codecs = CodecCache()
        self._order_seen: list[Any] = []
        self._order_default = False
        self._templates: dict[tuple[Any, ...], tuple[str, str, tuple[str, str]]] = {}

    # -- configuration -----------------------------------------------------------------
    def _codec(self, app: Flask) -> Optional[_core.FlaskCodec]:
        """The codec of ``app``'s current keys; ``None`` when Flask's own code must run
        (a digest other than SHA-1, an unknown key derivation)."""
        return self._codecs.codec(self, app, _SHA1)

    def _plain_json(self, app: Flask) -> bool:
        """Whether the session's JSON is exactly what Rust writes and orjson reads for
        untagged values: Flask's default JSON provider and tags."""
        provider = app.json
        if type(provider) is not DefaultJSONProvider:
            return False
        if not (provider.sort_keys and provider.ensure_ascii):
            return False
        serializer = self.serializer
        if type(serializer) is not TaggedJSONSerializer:
            return False
        order = serializer.order
        if order != self._order_seen:
            self._order_seen = list(order)
            self._order_default = tuple(type(tag) for tag in order) == _DEFAULT_TAGS
        return self._order_default

    def _settings(
        self, app: Flask
    ) -> tuple[str, Optional[str], str, bool, bool, Optional[str], bool]:
        """The cookie settings, from the ``get_cookie_*`` methods as Flask reads them."""
        return (
            self.get_cookie_name(app),
            self.get_cookie_domain(app),
            self.get_cookie_path(app),
            self.get_cookie_secure(app),
            # Flask 3.1 added SESSION_COOKIE_PARTITIONED
            self.get_cookie_partitioned(app) if hasattr(self, "get_cookie_partitioned") else False,
            self.get_cookie_samesite(app),
            self.get_cookie_httponly(app),
        )

    def _now(self) -> Optional[int]:
        clock = self._clock
        return None if clock is None else int(clock())

    # -- Flask's interface ---------------------------------------------------------------
    def open_session(self, app: Flask, request: Request) -> Optional[SecureCookieSession]:
        """Reads the session cookie; an absent, forged or expired one is an empty session
        (``None`` without a ``SECRET_KEY``: Flask then uses its null session)."""
        if not app.secret_key:
            return None
        codec = self._codec(app)
        if codec is None:
            return super().open_session(app, request)
        name = self.get_cookie_name(app)
        max_age = int(app.permanent_session_lifetime.total_seconds())
        if getattr(type(request), "cookies", None) is _WERKZEUG_COOKIES:
            header = request.environ.get("HTTP_COOKIE")
            opened = codec.load_header(header, name, max_age, self._now()) if header else None
        else:
            val = request.cookies.get(name)
            opened = codec.load(val.encode("utf-8"), max_age, self._now()) if val else None
        if opened is None:
            return self.session_class()
        raw, _reissue, plain = opened
        try:
            if plain and self._plain_json(app):
                try:
                    return self.session_class(orjson.loads(raw))
                except orjson.JSONDecodeError:
                    pass  # Flask's serializer decides
            return self.session_class(self.serializer.loads(raw.decode("utf-8")))
        except Exception:  # itsdangerous' BadPayload, or not a mapping: see the notes
            return self.session_class()

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        """Sets, refreshes or deletes the cookie exactly when and how Flask does."""
        codec = self._codec(app)
        if codec is None:
            super().save_session(app, session, response)
            return
        # Add a "Vary: Cookie" header if the session was accessed at all.
        if session.accessed:
            _vary_cookie(response)

        # If the session is modified to be empty, remove the cookie.
        # If the session is empty, return without setting the cookie.
        # (The cookie settings are read only when a cookie goes out.)
        if not session:
            if session.modified:
                name, domain, path, secure, partitioned, samesite, httponly = self._settings(app)
                response.delete_cookie(
                    name,
                    domain=domain,
                    path=path,
                    secure=secure,
                    **_partitioned(partitioned),
                    samesite=samesite,
                    httponly=httponly,
                )
                _vary_cookie(response)
            return

        if not self.should_set_cookie(app, session):
            return

        name, domain, path, secure, partitioned, samesite, httponly = self._settings(app)
        expires = self.get_expiration_time(app, session)
        now = self._now()
        compress_min = self.compress_min_bytes
        val = None
        if self._plain_json(app):
            val = codec.dump(session, now, compress_min)  # type: ignore[arg-type]
        if val is None:
            text = self.serializer.dumps(dict(session))
            val = codec.dump_json(text.encode("utf-8"), now, compress_min)
        # response.set_cookie(name, val, expires=expires, httponly=httponly, domain=domain,
        # path=path, secure=secure, partitioned=partitioned, samesite=samesite), from a
        # template of Werkzeug's own dump_cookie output
        key = (name, domain, path, secure, partitioned, samesite, httponly)
        template = self._templates.get(key)
        if template is None:
            template = _cookie_template(*key)
            if len(self._templates) >= 64:
                self._templates.clear()
            self._templates[key] = template
        head, tail, with_expires = template
        if expires is None:
            line = head + val + tail
        else:
            date = _http_date(expires)
            line = head + val + with_expires[0] + date + with_expires[1]
        if type(response).max_cookie_size is _FLASK_MAX_COOKIE_SIZE:
            max_size = app.config["MAX_COOKIE_SIZE"]
        else:
            max_size = response.max_cookie_size
        if max_size and len(line) > max_size:
            # Werkzeug warns about it: let it write this one
            response.set_cookie(
                name,
                val,
                expires=expires,
                httponly=httponly,
                domain=domain,
                path=path,
                secure=secure,
                **_partitioned(partitioned),
                samesite=samesite,
            )
        else:
            response.headers.add("Set-Cookie", line)
        _vary_cookie(response)


def _partitioned(partitioned: bool) -> dict[str, bool]:
    """The ``partitioned`` argument, only when set (Werkzeug < 3.1 has none)."""
    return {"partitioned": True} if partitioned else {}


def _vary_cookie(response: Response) -> None:
    """``response.vary.add("Cookie")`` without parsing and rebuilding the header in the
    two cases that need none: no ``Vary`` yet (it becomes ``Cookie``), or exactly
    ``Cookie`` already (nothing to do)."""
    headers = response.headers
    current = headers.get("Vary")
    if current is None:
        headers["Vary"] = "Cookie"
    elif current != "Cookie":
        response.vary.add("Cookie")


def _cookie_template(
    name: str,
    domain: Optional[str],
    path: Optional[str],
    secure: bool,
    partitioned: bool,
    samesite: Optional[str],
    httponly: bool,
) -> tuple[str, str, tuple[str, str]]:
    """Werkzeug's ``dump_cookie`` text around the value (and around ``Expires``) for one
    set of cookie settings: ``(head, tail, (before the date, after it))``. It raises
    what ``dump_cookie`` raises (an invalid ``SameSite``)."""
    settings: dict[str, Any] = {
        "httponly": httponly,
        "domain": domain,
        "path": path,
        "secure": secure,
        **_partitioned(partitioned),
        "samesite": samesite,
        "max_size": 0,
    }
    plain = dump_cookie(name, "", **settings)
    dated = dump_cookie(name, "", expires=_DATE_MARK, **settings)
    head = f"{name.encode().decode('latin1')}="
    if not (plain.startswith(head) and dated.startswith(head) and dated.count(_DATE_MARK) == 1):
        raise RuntimeError(f"unexpected dump_cookie output {plain!r}")  # pragma: no cover
    before, after = dated[len(head) :].split(_DATE_MARK)
    return head, plain[len(head) :], (before, after)


def _http_date(expires: Any) -> str:
    """Werkzeug's ``http_date`` for what ``get_expiration_time`` returns (a datetime;
    naive means UTC), formatted in Rust."""
    if isinstance(expires, datetime):
        epoch = _EPOCH_NAIVE if expires.tzinfo is None else _EPOCH
        text = _core.http_date((expires - epoch) // _SECOND)
        if text is not None:
            return text
    return expires if isinstance(expires, str) else http_date(expires)
