"""Registration errors: each is a ConfigurationError that says what to change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

import ferrosession as fs

KEY = bytes(range(32))


@dataclass(frozen=True)
class A:
    x: int = 0


@dataclass(frozen=True)
class B:
    y: str = ""


def test_duplicate_name_and_type() -> None:
    sessions = fs.Sessions()
    sessions.cookie(A, "S", unsigned=True)
    with pytest.raises(fs.ConfigurationError, match="named 'S' is already registered"):
        sessions.cookie(B, "S", unsigned=True)
    with pytest.raises(fs.ConfigurationError, match="A is already registered as 'S'"):
        sessions.header(A, "X-Other", unsigned=True)
    sessions.cookie(B, "T", unsigned=True)  # a different name and type is fine


@pytest.mark.parametrize("name", ["", "a b", "a;b", "a=b", 'a"b', "é", "a,b", "a\tb"])
def test_bad_names(name: str) -> None:
    with pytest.raises(fs.ConfigurationError, match="not a valid cookie name"):
        fs.Sessions().cookie(A, name)
    with pytest.raises(fs.ConfigurationError, match="not a valid header name"):
        fs.Sessions().header(A, name)


def test_reserved_header_names() -> None:
    with pytest.raises(fs.ConfigurationError, match="cannot carry a session"):
        fs.Sessions().header(A, "Cookie")


@pytest.mark.parametrize("max_age", [-1, timedelta(seconds=-5), "60", 1.5, True])
def test_bad_max_age(max_age: Any) -> None:
    with pytest.raises(fs.ConfigurationError, match="max_age"):
        fs.Sessions().cookie(A, "S", max_age=max_age, unsigned=True)


def test_same_site() -> None:
    with pytest.raises(fs.ConfigurationError, match="needs secure=True"):
        fs.Sessions().cookie(A, "S", same_site="None", unsigned=True)
    fs.Sessions().cookie(A, "S", same_site="none", secure=True, unsigned=True)
    fs.Sessions().cookie(A, "S", same_site=None, unsigned=True)
    with pytest.raises(fs.ConfigurationError, match="same_site must be"):
        fs.Sessions().cookie(A, "S", same_site="sometimes", unsigned=True)


def test_other_cookie_options() -> None:
    with pytest.raises(fs.ConfigurationError, match="path"):
        fs.Sessions().cookie(A, "S", path="shop", unsigned=True)
    with pytest.raises(fs.ConfigurationError, match="encoding"):
        fs.Sessions().cookie(A, "S", encoding="hex", unsigned=True)
    with pytest.raises(fs.ConfigurationError, match="partitioned"):
        fs.Sessions().cookie(A, "S", partitioned=True, unsigned=True)
    with pytest.raises(fs.ConfigurationError, match="holds ';'"):
        fs.Sessions().cookie(A, "S", domain="a;b", unsigned=True)


def test_keys() -> None:
    with pytest.raises(fs.ConfigurationError, match="must be bytes, not str"):
        fs.MessageAuthentication("secret-secret-secret")  # type: ignore[arg-type]
    with pytest.raises(fs.ConfigurationError, match="at least 16"):
        fs.MessageAuthentication(b"short")
    with pytest.raises(fs.ConfigurationError, match="old key is 3 bytes"):
        fs.MessageAuthentication(KEY, old_keys=[b"abc"])
    with pytest.raises(fs.ConfigurationError, match="algorithm"):
        fs.MessageAuthentication(KEY, algorithm="md5")
    with pytest.raises(fs.ConfigurationError, match="exactly 32"):
        fs.Encrypt(KEY[:16])
    with pytest.raises(fs.ConfigurationError, match="not str"):
        fs.Encrypt(KEY.hex())  # type: ignore[arg-type]
    with pytest.raises(fs.ConfigurationError, match="16, 24 or 32"):
        fs.KtorEncrypt(bytes(20), b"k")
    fs.KtorEncrypt(bytes(24), b"k")  # Ktor takes any non-empty sign key


def test_types_serializers_storages_transformers() -> None:
    class Plain:
        pass

    with pytest.raises(fs.ConfigurationError, match="neither a dataclass nor dict"):
        fs.Sessions().cookie(Plain, "S", unsigned=True)
    with pytest.raises(fs.ConfigurationError, match="must be a class"):
        fs.Sessions().cookie(A(), "S")  # type: ignore[arg-type]
    with pytest.raises(fs.ConfigurationError, match="serializer needs"):
        fs.Sessions().cookie(A, "S", serializer=object(), unsigned=True)
    with pytest.raises(fs.ConfigurationError, match="not a storage"):
        fs.Sessions().cookie(A, "S", storage=object())
    with pytest.raises(fs.ConfigurationError, match="not a transformer"):
        fs.Sessions().cookie(A, "S", transformers=[object()])
    with pytest.raises(fs.ConfigurationError, match="list or tuple"):
        fs.Sessions().cookie(A, "S", transformers=fs.MessageAuthentication(KEY))  # type: ignore[arg-type]
    with pytest.raises(fs.ConfigurationError, match="identity is for server-side"):
        fs.Sessions().cookie(A, "S", identity=lambda: "x", unsigned=True)

    class Mixed:
        async def read(self, session_id: str) -> None: ...
        def write(self, session_id: str, value: str, ttl: int) -> None: ...
        def invalidate(self, session_id: str) -> None: ...

    with pytest.raises(fs.ConfigurationError, match="mixes async and plain"):
        fs.Sessions().cookie(A, "S", storage=Mixed())


def test_registration_after_middleware_is_refused() -> None:
    sessions = fs.Sessions()
    sessions.cookie(A, "S", unsigned=True)

    async def app(scope: Any, receive: Any, send: Any) -> None: ...

    fs.SessionMiddleware(app, sessions)
    with pytest.raises(fs.ConfigurationError, match="before creating the middleware"):
        sessions.cookie(B, "T", unsigned=True)


def test_error_hierarchy() -> None:
    assert issubclass(fs.ConfigurationError, ValueError)
    assert issubclass(fs.SessionTooLarge, ValueError)
    assert issubclass(fs.SessionsNotInstalled, RuntimeError)
    for cls in (
        fs.ConfigurationError,
        fs.SessionNotRegistered,
        fs.SessionsNotInstalled,
        fs.TooLateSessionSet,
        fs.SessionTooLarge,
        fs.StorageError,
    ):
        assert issubclass(cls, fs.SessionError)


def test_server_side_max_age_zero_is_refused() -> None:
    with pytest.raises(fs.ConfigurationError, match="max_age=0"):
        fs.Sessions().cookie(A, "S", storage=fs.MemoryStorage(), max_age=0)
    fs.Sessions().cookie(A, "S", storage=fs.MemoryStorage(), max_age=None)
