"""Django: ferrosession's session engine for Django's own session API.

``SESSION_ENGINE = "ferrosession.django.signed_cookies"`` (:mod:`.signed_cookies`)
reads and writes the cookie of ``django.contrib.sessions.backends.signed_cookies``,
signing and verifying in Rust, with lifetimes enforced by the server.

This package imports Django only in its submodules, so ``import ferrosession`` never
needs it.
"""
