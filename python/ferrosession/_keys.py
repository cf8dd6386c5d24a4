"""Argument checks shared by the configuration code."""

from datetime import timedelta
from typing import Optional, Union

from ferrosession.errors import ConfigurationError

MIN_KEY_BYTES = 16


def key_bytes(key: object, what: str, *, min_len: int = MIN_KEY_BYTES) -> bytes:
    """Returns ``key`` as bytes, or raises ``ConfigurationError`` saying what to change."""
    if isinstance(key, str):
        raise ConfigurationError(
            f"{what} must be bytes, not str: pass the raw key bytes, e.g. "
            f"bytes.fromhex(HEX) or base64.urlsafe_b64decode(TEXT) "
            f"(`ferrosession keygen` prints a new one)"
        )
    if not isinstance(key, (bytes, bytearray, memoryview)):
        raise ConfigurationError(f"{what} must be bytes, not {type(key).__name__}")
    raw = bytes(key)
    if len(raw) < min_len:
        raise ConfigurationError(
            f"{what} is {len(raw)} bytes; use at least {min_len} random bytes "
            f"(32 recommended: secrets.token_bytes(32))"
        )
    return raw


def seconds(value: Union[int, timedelta, None], what: str) -> Optional[int]:
    """Whole seconds from an int or timedelta; ``None`` stays ``None``; negative is an error."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, timedelta)):
        raise ConfigurationError(f"{what} must be an int of seconds or a timedelta")
    secs = int(value.total_seconds()) if isinstance(value, timedelta) else value
    if secs < 0:
        raise ConfigurationError(f"{what} must not be negative (got {secs})")
    return secs
