"""The Flask extension: ferrosession's sessions opened and saved inside Flask's own
request handling, so Flask's error handlers and signals apply to the storage's errors.

::

    import ferrosession.flask

    app = Flask(__name__)
    ferrosession.flask.init_app(app, sessions)

or, with an application factory, ``ext = FlaskSessions(sessions=sessions)`` at import
time and ``ext.init_app(app)`` in the factory. Importable as ``ferrosession.flask``.

A ``before_request`` function opens the request's sessions (so ``fs.get_sessions(request)``
works in views, error handlers and later hooks); an ``after_request`` function does the
storage work and adds the session headers to the response. Flask runs ``after_request``
functions in the reverse order of registration, so those registered after
:func:`init_app` run before the save and may still change sessions, as they may change
``flask.session``. A :class:`~ferrosession.StorageError` raised by the save goes to
``app.handle_user_exception``, as if the view had raised it: an
``@app.errorhandler(StorageError)`` answers the request (its response then goes through
the ``after_request`` functions registered before :func:`init_app` and the Flask session
save), and with no handler Flask answers a 500 its own way (``got_request_exception``,
the log, an ``errorhandler(500)``). A streamed response is saved before its body is
sent: a ``set`` while streaming raises ``TooLateSessionSet``.
"""

from typing import Callable, Optional

from flask import Flask, request
from flask.wrappers import Response

from ferrosession.config import Sessions
from ferrosession.current import SCOPE_KEY
from ferrosession.errors import ConfigurationError, StorageError
from ferrosession.wsgi import commit_request_sessions, open_request_sessions, prepare_sessions

__all__ = ["FlaskSessions", "init_app"]

EXTENSION_KEY = "ferrosession"


class FlaskSessions:
    """The Flask extension object (Flask's ``init_app`` pattern).

    Args:
        app: the app to set up now; or later, with :meth:`init_app`.
        sessions: the registrations, for every app this extension sets up (or pass them
            to :meth:`init_app`).
    """

    def __init__(self, app: Optional[Flask] = None, sessions: Optional[Sessions] = None) -> None:
        self.sessions = sessions
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask, sessions: Optional[Sessions] = None) -> None:
        """Sets up ``app``: its requests get ``sessions`` (else the extension's).

        Raises:
            ConfigurationError: no sessions were given, the app is set up already, or a
                registration cannot serve WSGI (an async-only storage).
        """
        chosen = sessions if sessions is not None else self.sessions
        if chosen is None:
            raise ConfigurationError(
                "no sessions to install: pass a ferrosession.Sessions, as "
                "init_app(app, sessions) or FlaskSessions(sessions=sessions)"
            )
        if EXTENSION_KEY in app.extensions:
            raise ConfigurationError(
                f"ferrosession is already set up on the Flask app {app.name!r}: "
                f"call init_app once per app"
            )
        prepare_sessions(chosen)
        app.extensions[EXTENSION_KEY] = chosen
        app.before_request(_opener(chosen))
        app.after_request(_saver(app))


def init_app(app: Flask, sessions: Sessions) -> None:
    """Sets up ``app`` so that its requests have ``sessions``: see the module's notes.

    Raises:
        ConfigurationError: as :meth:`FlaskSessions.init_app`.
    """
    FlaskSessions().init_app(app, sessions)


def _opener(sessions: Sessions) -> Callable[[], None]:
    def open_sessions() -> None:
        environ = request.environ
        if SCOPE_KEY in environ:
            # two owners would each save (or one would lose) the request's sessions
            raise ConfigurationError(
                "this request already has sessions: the Flask app is set up with "
                "ferrosession.flask.init_app and also wrapped in a session middleware; "
                "keep init_app only"
            )
        open_request_sessions(sessions, environ)

    return open_sessions


def _saver(app: Flask) -> Callable[[Response], Response]:
    def save_sessions(response: Response) -> Response:
        current = request.environ.get(SCOPE_KEY)
        if current is None:
            # answered before the sessions were opened (an earlier before_request
            # function returned a response): nothing was read or set
            return response
        headers = response.headers
        try:
            added = commit_request_sessions(current, "Cache-Control" in headers)
        except StorageError as exc:
            # Where the view's own exceptions go. With no handler for it, this raises
            # it again and Flask's handle_exception makes the 500.
            handled = app.handle_user_exception(exc)
            return app.make_response(handled)
        for name, value in added:
            if name == "Vary":
                response.vary.add(value)  # merged into the app's own Vary, if any
            else:
                headers.add(name, value)
        return response

    return save_sessions
