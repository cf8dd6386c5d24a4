"""``SESSION_ENGINE = "ferrosession.django.store"``: Django's session API on any
ferrosession storage, ``FERROSESSION_STORAGE`` in the settings::

    import ferrosession as fs

    SESSION_ENGINE = "ferrosession.django.store"
    FERROSESSION_STORAGE = fs.DirectoryStorage("/var/lib/myapp/sessions")

Everything of Django's session API works as on Django's own stores (``cycle_key``,
``flush``, ``set_expiry``, ``get_expiry_age``, ``clear_expired``; the async methods
run the sync ones in a thread, as Django's base class does). What the storage sees:

* never the session key: the storage key is the unpadded base64url of
  ``SHA-256(SESSION_COOKIE_NAME + "\\0" + key)``, so a dump of the store yields no
  cookie that logs anyone in;
* the session as JSON text (Django's ``JSONSerializer``; any other
  ``SESSION_SERIALIZER`` is ``ImproperlyConfigured``), kept for ``get_expiry_age()``
  seconds: the storage expires it, so ``set_expiry`` is enforced by the server;
* logout wins: saving a session that was deleted meanwhile (``flush`` or ``cycle_key``
  in another request) uses the storage's ``update`` (only if present) and raises
  Django's ``UpdateError``, which Django's middleware answers with ``SessionInterrupted``;
  a new key is stored with ``create`` (only if absent). A storage without them falls
  back to ``read`` + ``write`` (best effort, like Django's cache engine).

``manage.py clearsessions`` calls ``clear_expired()``, which runs the storage's ``gc()``
(a storage without one expires entries itself: nothing to do). A failing storage raises
ferrosession's ``StorageError``.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any, Optional

from django.conf import settings  # type: ignore[import-untyped]
from django.contrib.sessions.backends.base import (  # type: ignore[import-untyped]
    CreateError,
    SessionBase,
    UpdateError,
)
from django.core.exceptions import ImproperlyConfigured  # type: ignore[import-untyped]

from .signed_cookies import _dumps, _loads, check_serializer

__all__ = ["SessionStore"]


def storage() -> Any:
    """``settings.FERROSESSION_STORAGE``, checked to be a storage."""
    found = getattr(settings, "FERROSESSION_STORAGE", None)
    if found is None or not all(
        callable(getattr(found, m, None)) for m in ("read", "write", "invalidate")
    ):
        raise ImproperlyConfigured(
            "ferrosession.django.store keeps sessions in settings.FERROSESSION_STORAGE: "
            "set it to a ferrosession storage, e.g. "
            "FERROSESSION_STORAGE = ferrosession.DirectoryStorage('/var/lib/app/sessions')"
        )
    return found


def storage_key(session_key: str) -> str:
    """What the storage sees for ``session_key`` (bound to the cookie's name, as
    ferrosession's registrations bind ids to theirs)."""
    digest = hashlib.sha256(
        settings.SESSION_COOKIE_NAME.encode() + b"\0" + session_key.encode()
    ).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class SessionStore(SessionBase):  # type: ignore[misc]
    """A Django session store on ``settings.FERROSESSION_STORAGE``."""

    def __init__(self, session_key: Optional[str] = None) -> None:
        self._storage = storage()
        self._session_key = session_key
        self.accessed = False
        self.modified = False
        self.serializer = check_serializer(settings.SESSION_SERIALIZER)

    def load(self) -> dict[str, Any]:
        text = self._storage.read(storage_key(self.session_key))
        if text is not None:
            try:
                session = _loads(text.encode())
            except ValueError:
                session = None
            if isinstance(session, dict):
                return session
        # unknown, expired or unreadable: an empty session under a new key, never adopted
        self._session_key = None
        return {}

    def exists(self, session_key: Optional[str]) -> bool:
        if not session_key:
            return False
        return self._storage.read(storage_key(session_key)) is not None

    def create(self) -> None:
        for _ in range(100):
            self._session_key = self._get_new_session_key()
            try:
                self.save(must_create=True)
            except CreateError:
                continue  # a key collision: 190 random bits make it all but impossible
            self.modified = True
            return
        raise RuntimeError("no new session key could be stored")

    def save(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return self.create()
        key = storage_key(self.session_key)
        # the data first: get_expiry_age() reads the session, and a load of a key not
        # stored yet would drop it
        text = _dumps(self._get_session(no_load=must_create)).decode("ascii")
        ttl = self.get_expiry_age()
        if ttl <= 0:
            # already expired (set_expiry to a past date): nothing is kept
            self._storage.invalidate(key)
            return None
        store = self._storage
        if must_create:
            create = getattr(store, "create", None)
            if create is not None:
                if not create(key, text, ttl):
                    raise CreateError
            elif store.read(key) is not None:
                raise CreateError
            else:
                store.write(key, text, ttl)
            return None
        update = getattr(store, "update", None)
        if update is not None:
            if not update(key, text, ttl):
                raise UpdateError
        elif store.read(key) is None:
            raise UpdateError
        else:
            store.write(key, text, ttl)
        return None

    def delete(self, session_key: Optional[str] = None) -> None:
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        self._storage.invalidate(storage_key(session_key))

    @classmethod
    def clear_expired(cls) -> None:
        gc = getattr(storage(), "gc", None)
        if gc is not None:
            gc()
