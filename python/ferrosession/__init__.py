"""ferrosession: typed HTTP sessions for ASGI and WSGI apps, with a Rust core.

Register session types on a :class:`Sessions`, wrap the app in
:class:`SessionMiddleware` (ASGI) or :class:`WSGISessionMiddleware` (WSGI), then in any
handler ``get_sessions(request).get(T)`` / ``.set(value)`` / ``.clear(T)``.
"""

from ferrosession._core import __version__
from ferrosession.asgi import SessionMiddleware
from ferrosession.config import Sessions
from ferrosession.current import CurrentSessions, SessionInfo, get_sessions
from ferrosession.errors import (
    ConfigurationError,
    SessionError,
    SessionNotRegistered,
    SessionsNotInstalled,
    SessionTooLarge,
    StorageError,
    TooLateSessionSet,
)
from ferrosession.serializers import JSONSerializer
from ferrosession.storage import (
    DirectoryStorage,
    MemoryStorage,
    PostgresStorage,
    RedisStorage,
    SQLiteStorage,
)
from ferrosession.transformers import Digest, Encrypt, KtorEncrypt, MessageAuthentication
from ferrosession.wsgi import WSGISessionMiddleware

__all__ = [
    "ConfigurationError",
    "CurrentSessions",
    "Digest",
    "DirectoryStorage",
    "Encrypt",
    "JSONSerializer",
    "KtorEncrypt",
    "MemoryStorage",
    "MessageAuthentication",
    "PostgresStorage",
    "RedisStorage",
    "SQLiteStorage",
    "SessionError",
    "SessionInfo",
    "SessionMiddleware",
    "SessionNotRegistered",
    "SessionTooLarge",
    "Sessions",
    "SessionsNotInstalled",
    "StorageError",
    "TooLateSessionSet",
    "WSGISessionMiddleware",
    "__version__",
    "get_sessions",
]
