"""pytest plugin for Starlette's own session tests: ``starlette.middleware.sessions``
hands out ferrosession's drop-ins, so the tests' ``from starlette.middleware.sessions
import Session, SessionMiddleware`` (and every app they build) uses them."""

from __future__ import annotations

import starlette.middleware.sessions as upstream

from ferrosession.starlette import Session, SessionMiddleware

upstream.SessionMiddleware = SessionMiddleware  # type: ignore[misc]
upstream.Session = Session  # type: ignore[misc]


def pytest_report_header() -> str:
    """Says which middleware the tests get (``run_upstream.py`` checks it was loaded)."""
    return f"ferrosession drop-in: {upstream.SessionMiddleware.__module__}.SessionMiddleware"
