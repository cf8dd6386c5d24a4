"""``SESSION_ENGINE = "ferrosession.django.signed_cookies"``: a drop-in for
``django.contrib.sessions.backends.signed_cookies`` that signs and verifies in Rust.

The cookie is the same: ``django.core.signing`` with salt
``django.contrib.sessions.backends.signed_cookies``, HMAC-SHA256 under a key derived
from ``SECRET_KEY`` as Django derives it, base64 JSON (zlib-compressed with a leading
``.`` when that saves space) and the base62 signing time. A site can switch to this
engine and back and keep every user's session. ``SECRET_KEY_FALLBACKS`` verify; a
cookie one of them verified is issued again under ``SECRET_KEY`` on that response.

What differs, on purpose (the server enforces the lifetime Django only asks the
browser to keep):

* ``set_expiry(seconds)`` is enforced: a cookie older than that many seconds since it
  was last signed is an empty session, as ``set_expiry(datetime)`` is past its date;
  without one, ``SESSION_COOKIE_AGE`` (Django: always ``SESSION_COOKIE_AGE``, longer
  custom expiries were cut to it, ticket #19201);
* a cookie signed more than a minute in the future is an empty session (Django takes
  it);
* JSON under 256 bytes is not compressed, and compressed payloads come from miniz_oxide,
  not CPython's zlib: other bytes than Django's for the same session, read by Django all
  the same;
* ``SESSION_SERIALIZER`` must be Django's ``JSONSerializer``: anything else (a pickle
  serializer) is ``ImproperlyConfigured`` when the engine is loaded, which Django's
  ``SessionMiddleware`` does at start-up.

A cookie that is tampered, truncated, expired or foreign is an empty session, never an
exception.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import orjson
from django.conf import settings  # type: ignore[import-untyped]
from django.contrib.sessions.backends import (  # type: ignore[import-untyped]
    signed_cookies as django_signed_cookies,
)
from django.core import signing  # type: ignore[import-untyped]
from django.core.exceptions import ImproperlyConfigured  # type: ignore[import-untyped]
from django.utils.encoding import force_bytes  # type: ignore[import-untyped]

from .._core import DjangoSigner

__all__ = ["SessionStore"]

SALT = "django.contrib.sessions.backends.signed_cookies"

# Django's own names for its JSON serializer (the sessions one is an alias).
_JSON_SERIALIZERS = frozenset(
    {"django.contrib.sessions.serializers.JSONSerializer", "django.core.signing.JSONSerializer"}
)

# JSON shorter than this is not tried with zlib: both spellings are valid Django
# cookies, and deflating a small session costs more than it could save.
COMPRESS_MIN_BYTES = 256

# The signer of the last (SECRET_KEY, SECRET_KEY_FALLBACKS) seen: keys are derived once
# (Django derives them on every call) and made again when override_settings or a test
# changes either.
_last: tuple[object, list[object], DjangoSigner] | None = None


def _signer() -> DjangoSigner:
    global _last
    secret, fallbacks = settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS
    last = _last
    if last is not None and secret == last[0] and fallbacks == last[1]:
        return last[2]
    if not secret:
        raise ImproperlyConfigured(
            "ferrosession.django.signed_cookies signs with SECRET_KEY; set it"
        )
    keys = [force_bytes(secret), *(force_bytes(k) for k in fallbacks)]
    signer = DjangoSigner(keys, SALT)
    _last = (secret, list(fallbacks), signer)
    return signer


def check_serializer(path: str) -> type[Any]:
    """The serializer class of ``SESSION_SERIALIZER`` ``path``, which must be Django's
    ``JSONSerializer``: this engine writes JSON, and unpickling what a cookie holds
    runs code chosen by whoever knows the key."""
    if path not in _JSON_SERIALIZERS:
        from django.utils.module_loading import import_string  # type: ignore[import-untyped]

        try:
            found = import_string(path)
        except ImportError:
            found = None
        if found is not signing.JSONSerializer:
            raise ImproperlyConfigured(
                f"SESSION_SERIALIZER = {path!r}: ferrosession.django.signed_cookies "
                "only stores JSON; set SESSION_SERIALIZER = "
                "'django.contrib.sessions.serializers.JSONSerializer' (the default)"
            )
    return signing.JSONSerializer  # type: ignore[no-any-return]


# Django's JSONSerializer, byte for byte (ASCII: Django reads it as latin-1); made once,
# where json.dumps with separators builds an encoder per call
_encode_json = json.JSONEncoder(separators=(",", ":")).encode


def _dumps(session: dict[str, Any]) -> bytes:
    return _encode_json(session).encode("latin-1")


def _loads(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        # what orjson refuses and Python's json reads (NaN, integers over 64 bits)
        return json.loads(data.decode("latin-1"))


def _expired(session: dict[str, Any], signed_at: int, cookie_age: int, now: float) -> bool:
    expiry = session.get("_session_expiry")
    if isinstance(expiry, str):
        try:
            return datetime.fromisoformat(expiry).timestamp() <= now
        except ValueError:
            return True
    # 0 / None: the default age; an int: seconds of inactivity since it was signed
    age = (
        expiry
        if isinstance(expiry, int) and not isinstance(expiry, bool) and expiry
        else cookie_age
    )
    return now - signed_at > age


class SessionStore(django_signed_cookies.SessionStore):  # type: ignore[misc]
    """Django's signed-cookie ``SessionStore`` with the signing in Rust and the
    session's lifetime checked by the server."""

    def __init__(self, session_key: str | None = None) -> None:
        self._session_key = session_key
        self.accessed = False
        self.modified = False
        self.serializer = check_serializer(settings.SESSION_SERIALIZER)

    def load(self) -> dict[str, Any]:
        now = time.time()
        found = _signer().loads(self.session_key, None, int(now))
        if found is not None:
            data, signed_at, reissue = found
            try:
                session = _loads(data)
            except ValueError:
                session = None
            if isinstance(session, dict) and not _expired(
                session, signed_at, self.get_session_cookie_age(), now
            ):
                if reissue:
                    # verified by a fallback key: sign it again under SECRET_KEY
                    self.modified = True
                return session
        self.create()
        return {}

    def _get_session_key(self) -> str:
        return _signer().dumps(_dumps(self._session), True, COMPRESS_MIN_BYTES, int(time.time()))


if settings.configured:
    # Django's SessionMiddleware imports the engine when the app starts
    check_serializer(settings.SESSION_SERIALIZER)
