"""How ``inspect`` tells the formats apart: the cookie pasted (a value, ``NAME=VALUE`` or a
whole header) and the shapes of the values of ferrosession's transformers, of Starlette's
and Flask's cookies and of server-side session ids."""

from __future__ import annotations

import re
from typing import Optional

from ferrosession import _core
from ferrosession.cli._command import UsageError

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
MAC_TAG_LENGTHS = {64: "sha256", 96: "sha384", 128: "sha512"}
#: What ``new_session_id`` mints: 32 bytes as lowercase hex.
SESSION_ID = re.compile(r"[0-9a-f]{64}")
_KTOR = re.compile(r"[0-9a-fA-F]{32}/[0-9a-fA-F]*:[0-9a-fA-F]*")
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
# itsdangerous: PAYLOAD.TIMESTAMP.SIGNATURE, the signature an unpadded base64url HMAC-SHA1
# (27 characters). Starlette's payload is standard base64 with padding, Flask's is
# base64url, with a leading '.' when zlib-compressed.
STARLETTE = re.compile(r"[A-Za-z0-9+/]+={0,2}\.[A-Za-z0-9_-]{1,11}\.[A-Za-z0-9_-]{27}")
FLASK = re.compile(r"\.?[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{1,11}\.[A-Za-z0-9_-]{27}")


def require_inspect_helpers() -> None:
    """Refuses a stale build of ``ferrosession._core`` without the debugging helpers of
    ``src/bindings/inspect.rs`` (``_core.encrypt_open`` and the others)."""
    if not hasattr(_core, "encrypt_open"):
        raise UsageError(
            "this build of ferrosession._core lacks the inspect helpers "
            "(src/bindings/inspect.rs); rebuild it (make develop)"
        )


def split_cookie(arg: str, name: Optional[str], encoding: str) -> tuple[Optional[str], str]:
    """``(cookie name or None, raw value)`` from what the user pasted: a bare value,
    ``NAME=VALUE``, or a whole ``Cookie:`` / ``Set-Cookie:`` header."""
    text = arg.strip()
    prefix = re.match(r"(?i)(set-)?cookie:[ \t]*", text)
    if prefix:
        text = text[prefix.end() :]
        if prefix.group(1):  # Set-Cookie: the first pair; the rest are attributes
            text = text.split(";", 1)[0]
    elif STARLETTE.fullmatch(text):
        return None, text  # its base64 padding is no NAME=VALUE
    pairs: list[tuple[str, str]] = []
    for part in text.split(";"):
        part = part.strip(" \t")
        key, eq, value = part.partition("=")
        if eq and _TOKEN.fullmatch(key):
            pairs.append((key, value.strip(" \t")))
    # A base64 value may end with '=', so only these make it NAME=VALUE there.
    single = len(pairs) == 1 and bool(pairs[0][1]) and "=".join(pairs[0]) == text
    is_header = bool(pairs) and (
        bool(prefix)
        or ";" in text
        or (name is not None and text.startswith(name + "="))
        or (single and encoding != "base64")
    )
    if not is_header:
        return None, text
    if not pairs:
        raise UsageError("no NAME=VALUE cookie in COOKIE")
    if name is None:
        return pairs[0]
    for key, value in pairs:
        if key == name:
            return key, value
    if len(pairs) == 1:
        return pairs[0]  # another name: reported if the value turns out bound to it
    names = ", ".join(k for k, _ in pairs)
    raise UsageError(f"no cookie named {name!r} in COOKIE (it has: {names})")


def _mac_tag_shape(value: str) -> bool:
    """Whether ``value`` ends with a MessageAuthentication tag (``/`` + lowercase hex of
    an HMAC-SHA256/384/512)."""
    _, slash, tag = value.rpartition("/")
    return (
        bool(slash) and len(tag) in MAC_TAG_LENGTHS and re.fullmatch(r"[0-9a-f]+", tag) is not None
    )


def _encrypt_shape(value: str) -> bool:
    """Whether ``value`` is a well-formed Encrypt envelope (it may still not open)."""
    if _B64URL.fullmatch(value) is None:
        return False
    require_inspect_helpers()
    return _core.encrypt_envelope(value)[0] is not None


def guess_transformer(value: str) -> Optional[str]:
    """The transformer a value's shape suggests."""
    if _KTOR.fullmatch(value):
        return "ktor-encrypt"
    if _B64URL.fullmatch(value):
        return "encrypt"
    if "/" in value:
        return "mac"
    return None


def recognise(raw: str, decoded: str, keyed: bool, sign_key: bool) -> Optional[str]:
    """The format of a value: ``session-id``, ``ktor-encrypt``, ``itsdangerous``
    (Starlette's or Flask's cookie), ``mac``, ``encrypt``, ``none`` (unsigned, only
    without a key), or ``None``: given a key, the value has no signed format's shape."""
    if SESSION_ID.fullmatch(decoded):
        return "session-id"
    if sign_key:
        return "ktor-encrypt"
    # itsdangerous values are read as sent: their standard base64 may hold '+', which
    # the uri encoding would read as a space
    if STARLETTE.fullmatch(raw) or FLASK.fullmatch(raw):
        return "itsdangerous"
    if keyed:
        return guess_transformer(decoded)
    if _KTOR.fullmatch(decoded):
        return "ktor-encrypt"
    if _mac_tag_shape(decoded):
        return "mac"
    if _encrypt_shape(decoded):
        return "encrypt"
    return "none"
