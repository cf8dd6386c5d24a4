"""The exceptions of ferrosession. Every one subclasses :class:`SessionError`."""

__all__ = [
    "ConfigurationError",
    "SessionError",
    "SessionNotRegistered",
    "SessionTooLarge",
    "SessionsNotInstalled",
    "StorageError",
    "TooLateSessionSet",
]


class SessionError(Exception):
    """Base class of every ferrosession error."""


class ConfigurationError(SessionError, ValueError):
    """A registration, option or key is wrong; the message says what to change."""


class SessionNotRegistered(SessionError, LookupError):
    """No session is registered under that type or name."""


class SessionsNotInstalled(SessionError, RuntimeError):
    """``get_sessions`` was called on a request that did not pass the middleware."""


class TooLateSessionSet(SessionError, RuntimeError):
    """``set``, ``clear`` or ``regenerate`` was called after the response started."""


class SessionTooLarge(SessionError, ValueError):
    """The session would not fit in its header (4096 bytes for a cookie line,
    8192 for a header value); raised at ``set()`` rather than sending a cookie that
    the browser silently drops."""


class StorageError(SessionError):
    """The storage failed (disk full, Redis down): the request fails loudly, and no
    session is silently lost or replaced."""
