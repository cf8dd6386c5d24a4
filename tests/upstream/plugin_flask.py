"""pytest plugin for Flask's own session tests: every ``Flask`` app gets ferrosession's
``SessionInterface``, and ``flask.sessions.SecureCookieSessionInterface`` names it too,
so a test that subclasses Flask's interface subclasses the drop-in."""

from __future__ import annotations

import flask
import flask.sessions

from ferrosession.flask import SessionInterface

flask.sessions.SecureCookieSessionInterface = SessionInterface  # type: ignore[misc]
flask.Flask.session_interface = SessionInterface()


def pytest_report_header() -> str:
    """Says which interface the apps get (``run_upstream.py`` checks it was loaded)."""
    return (
        f"ferrosession drop-in: {type(flask.Flask.session_interface).__module__}.SessionInterface"
    )
