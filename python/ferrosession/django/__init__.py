"""Django: ferrosession's session engine for Django's own session API.

``SESSION_ENGINE = "ferrosession.django.signed_cookies"`` (:mod:`.signed_cookies`)
reads and writes the cookie of ``django.contrib.sessions.backends.signed_cookies``,
signing and verifying in Rust, with lifetimes enforced by the server.

``SESSION_ENGINE = "ferrosession.django.store"`` (:mod:`.store`) is Django's session
API on any ferrosession storage. ``MIDDLEWARE += ["ferrosession.django.SessionMiddleware"]``
with ``FERROSESSION_SESSIONS = "pkg.module.sessions"`` (:mod:`.middleware`) serves
ferrosession's typed sessions: ``fs.get_sessions(request).get(Login)`` in views.

This package imports Django only when one of them is used, so ``import ferrosession``
never needs it.
"""

from typing import Any

__all__ = ["SessionMiddleware"]


def __getattr__(name: str) -> Any:
    if name == "SessionMiddleware":
        from .middleware import SessionMiddleware

        return SessionMiddleware
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
