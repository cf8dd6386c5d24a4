"""Transformers: what happens to a session's serialized text on its way to the wire.

A transformer is any object with ``transform_write(str) -> str`` and
``transform_read(str) -> str | None`` (``None`` rejects the value). Writes apply the
registered transformers in order, reads in reverse. The built-in ones run in Rust; when a
chain holds only built-in transformers the whole chain runs in one Rust call.
"""

from datetime import timedelta
from typing import Optional, Protocol, Union, runtime_checkable

from ferrosession import _core
from ferrosession._keys import key_bytes, seconds
from ferrosession.errors import ConfigurationError

__all__ = ["Digest", "Encrypt", "KtorEncrypt", "MessageAuthentication", "Transformer"]


@runtime_checkable
class Transformer(Protocol):
    """The protocol of a custom transformer."""

    def transform_write(self, value: str) -> str:
        """Wraps ``value`` for the wire."""
        ...

    def transform_read(self, value: str) -> Optional[str]:
        """Unwraps ``value``, or returns ``None`` to reject it."""
        ...


class BuiltinTransformer:
    """Base of the transformers implemented in Rust. ``_core`` holds the Rust object
    that a session's codec chains together."""

    __slots__ = ("_core",)
    _core: _core.Transform

    def transform_write(self, value: str) -> str:
        """Wraps ``value`` for the wire (outside a registration: no session name)."""
        return self._core.write(value)

    def transform_read(self, value: str) -> Optional[str]:
        """Unwraps ``value``; ``None`` when it is rejected."""
        opened = self._core.read(value)
        return None if opened is None else opened[0]


class MessageAuthentication(BuiltinTransformer):
    """Signs the value: ``value + "/" + lowercase_hex(HMAC(key, value))`` (Ktor 3's format).

    Args:
        key: the signing key, at least 16 bytes (32 random bytes recommended).
        old_keys: retired keys that still verify; a value they verify is re-issued under
            ``key`` on that response.
        algorithm: ``"sha256"`` (default), ``"sha384"`` or ``"sha512"``.
        max_age: when set, a signed issue time is added and older values are rejected
            (this format is not Ktor-compatible).
    """

    __slots__ = ()

    def __init__(
        self,
        key: bytes,
        *,
        old_keys: tuple[bytes, ...] | list[bytes] = (),
        algorithm: str = "sha256",
        max_age: Union[int, timedelta, None] = None,
    ) -> None:
        keys = [key_bytes(key, "MessageAuthentication key")]
        keys += [key_bytes(k, "MessageAuthentication old key") for k in old_keys]
        age = seconds(max_age, "MessageAuthentication max_age")
        if max_age is not None and age == 0:
            raise ConfigurationError("MessageAuthentication max_age must be positive")
        self._core = _core.mac_transformer(keys, algorithm, age)


class Digest(BuiltinTransformer):
    """Ktor 1.x's unkeyed salted digest: ``value + "/" + hex(H(salt + value))``.

    It detects corruption, not forgery: anyone can compute it. Use
    :class:`MessageAuthentication` to stop forgery.

    Args:
        salt: the salt (``"ktor"`` by default).
        algorithm: ``"sha384"`` (default), ``"sha256"`` or ``"sha512"``.
    """

    __slots__ = ()

    def __init__(self, salt: str = "ktor", algorithm: str = "sha384") -> None:
        if not isinstance(salt, str):
            raise ConfigurationError("Digest salt must be a str")
        self._core = _core.digest_transformer(salt.encode(), algorithm)


class Encrypt(BuiltinTransformer):
    """Authenticated encryption with AES-256-GCM.

    Wire: canonical unpadded base64url of ``version ‖ key id ‖ [issue time] ‖ nonce ‖
    ciphertext ‖ tag``, with a fresh 96-bit nonce from the OS CSPRNG per value. The
    version, key id, issue time and the session's name are authenticated, so a value
    issued for one session name is rejected under another.

    Args:
        key: 32 random bytes (``ferrosession keygen`` prints one).
        old_keys: retired 32-byte keys that still decrypt; a value opened with one is
            re-issued under ``key`` on that response.
        max_age: when set, the issue time is authenticated and older values (and values
            from more than 60 s in the future) are rejected.
    """

    __slots__ = ()

    def __init__(
        self,
        key: bytes,
        *,
        old_keys: tuple[bytes, ...] | list[bytes] = (),
        max_age: Union[int, timedelta, None] = None,
    ) -> None:
        keys = [_aes256_key(key, "Encrypt key")]
        keys += [_aes256_key(k, "Encrypt old key") for k in old_keys]
        age = seconds(max_age, "Encrypt max_age")
        if max_age is not None and age == 0:
            raise ConfigurationError("Encrypt max_age must be positive")
        self._core = _core.encrypt_transformer(keys, age)


def _aes256_key(key: object, what: str) -> bytes:
    raw = key_bytes(key, what)
    if len(raw) != 32:
        raise ConfigurationError(
            f"{what} is {len(raw)} bytes; AES-256-GCM takes exactly 32 random bytes "
            f"(secrets.token_bytes(32), or `ferrosession keygen`)"
        )
    return raw


class KtorEncrypt(BuiltinTransformer):
    """Reads and writes Ktor's ``SessionTransportTransformerEncrypt`` cookies:
    ``hex(iv) + "/" + hex(AES-CBC ciphertext) + ":" + hex(HMAC-SHA256(sign_key, ciphertext))``.

    For interoperability with a Ktor service only: this format does not authenticate
    its IV, so whoever knows the first 16 bytes of a plaintext can change them. Use
    :class:`Encrypt` unless you must share cookies with Ktor.

    Args:
        encryption_key: an AES key of 16, 24 or 32 bytes.
        sign_key: the HMAC-SHA256 key (any non-empty length, as Ktor).
        backward_compatible_read: also accept Ktor < 3.0 values, whose MAC covers the
            plaintext (they are re-issued in the current format).
    """

    __slots__ = ()

    def __init__(
        self, encryption_key: bytes, sign_key: bytes, *, backward_compatible_read: bool = False
    ) -> None:
        enc = key_bytes(encryption_key, "KtorEncrypt encryption_key", min_len=16)
        sign = key_bytes(sign_key, "KtorEncrypt sign_key", min_len=1)
        self._core = _core.ktor_encrypt_transformer(enc, sign, bool(backward_compatible_read))
