"""Quart: a drop-in for Quart's default session, signing and verifying in Rust.

Set it once and every existing session cookie stays valid::

    from ferrosession.quart import SessionInterface

    app.session_interface = SessionInterface()

It reads and writes the cookie of Quart's ``SecureCookieSessionInterface`` (it is a
subclass of it): itsdangerous ``URLSafeTimedSerializer`` with salt ``cookie-session``, key
``HMAC-SHA1(SECRET_KEY, salt)``, HMAC-SHA1 signatures, the tagged JSON of
``self.serializer`` (Flask's, which Quart uses: tuples, bytes, ``Markup``, UUIDs,
datetimes survive a round trip) and zlib-compressed payloads. It honours
``SECRET_KEY_FALLBACKS``, ``PERMANENT_SESSION_LIFETIME``, ``SESSION_REFRESH_EACH_REQUEST``,
every ``SESSION_COOKIE_*`` setting and ``session.permanent``; ``should_set_cookie``,
``get_expiration_time``, the ``get_cookie_*`` methods and ``session_class`` can be
overridden as in Quart. A subclass that changes ``digest_method`` to anything but SHA-1,
or ``key_derivation`` to one Rust does not know, gets Quart's own code.

The signature, timestamp, base64 and zlib are done in Rust; the JSON text is
``self.serializer``'s, as in Quart. The one difference in bytes: JSON shorter than
:attr:`SessionInterface.compress_min_bytes` (512) is not compressed, and compressed
payloads come from miniz_oxide, not CPython's zlib — Quart reads both all the same.
"""

import hashlib
from typing import Any, Callable, Optional, Union

from quart import Quart
from quart.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin
from quart.wrappers import BaseRequestWebsocket, Response
from werkzeug.wrappers import Response as WerkzeugResponse

from ferrosession import _core
from ferrosession._signer_keys import CodecCache

__all__ = ["SessionInterface"]

_SHA1: tuple[Any, ...] = (SecureCookieSessionInterface.digest_method, hashlib.sha1)


class SessionInterface(SecureCookieSessionInterface):
    """Quart's ``SecureCookieSessionInterface`` with its cookie signed in Rust.

    Args:
        clock: returns the Unix time in seconds for the signed timestamp and the age
            check (for tests); the system clock by default. ``Expires`` still comes from
            :meth:`get_expiration_time`, as in Quart.
    """

    #: JSON shorter than this many bytes is not compressed (Quart tries zlib on every
    #: payload; both are cookies Quart reads). 0 = try every payload, as Quart.
    compress_min_bytes = 512

    def __init__(self, *, clock: Optional[Callable[[], float]] = None) -> None:
        self._clock = clock
        self._codecs = CodecCache()

    def _codec(self, app: Quart) -> Optional[_core.FlaskCodec]:
        """The codec of ``app``'s current keys; ``None`` when Quart's own code must run."""
        return self._codecs.codec(self, app, _SHA1)

    def _now(self) -> Optional[int]:
        clock = self._clock
        return None if clock is None else int(clock())

    async def open_session(
        self, app: Quart, request: BaseRequestWebsocket
    ) -> Optional[SecureCookieSession]:
        """Reads the session cookie; an absent, forged or expired one is an empty session
        (``None`` without a ``SECRET_KEY``: Quart then uses its null session)."""
        if not app.secret_key:
            return None
        codec = self._codec(app)
        if codec is None:
            return await super().open_session(app, request)
        cookie = request.cookies.get(self.get_cookie_name(app))
        if cookie is None:
            return self.session_class()
        max_age = int(app.permanent_session_lifetime.total_seconds())
        opened = codec.load(cookie.encode("utf-8"), max_age, self._now())
        if opened is None:
            return self.session_class()
        try:
            return self.session_class(self.serializer.loads(opened[0].decode("utf-8")))
        except Exception:  # itsdangerous' BadPayload (a BadSignature): Quart's empty session
            return self.session_class()

    async def save_session(
        self,
        app: Quart,
        session: SessionMixin,
        response: Union[Response, WerkzeugResponse, None],
    ) -> None:
        """Sets, refreshes or deletes the cookie exactly when and how Quart does."""
        codec = self._codec(app)
        if codec is None or response is None or not session:
            # Quart's own code: a WebSocket (no response: it logs a modified session),
            # an emptied session (the deleting cookie) or an empty one (nothing)
            await super().save_session(app, session, response)
            return
        if session.accessed:
            response.vary.add("Cookie")
        if not self.should_set_cookie(app, session):
            return
        text = self.serializer.dumps(dict(session))
        val = codec.dump_json(text.encode("utf-8"), self._now(), self.compress_min_bytes)
        response.set_cookie(
            self.get_cookie_name(app),
            val,
            expires=self.get_expiration_time(app, session),
            httponly=self.get_cookie_httponly(app),
            domain=self.get_cookie_domain(app),
            partitioned=self.get_cookie_partitioned(app),
            path=self.get_cookie_path(app),
            secure=self.get_cookie_secure(app),
            samesite=self.get_cookie_samesite(app),
        )
        response.vary.add("Cookie")
