"""``ferrosession inspect``: decode a cookie value for debugging: say which format it is
(one of our transformers, the lifetimes inside it, Starlette's or Flask's cookie, an
unsigned value, a server-side session id) and where the key came from; print its payload,
or say why it is rejected (bad encoding, wrong key or tampered, expired, from the future,
wrong session name, ...). Exit 0 when it opens, 1 when it is rejected."""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Optional, Sequence

from ferrosession import _core
from ferrosession.cli._command import EXIT_OK, EXIT_REJECTED, Command, UsageError, err, out
from ferrosession.cli.formats import (
    FLASK,
    MAC_TAG_LENGTHS,
    SESSION_ID,
    STARLETTE,
    recognise,
    require_inspect_helpers,
    split_cookie,
)
from ferrosession.cli.keys import KEY_OPTIONS, KeyText, key_texts, parse_key
from ferrosession.transformers import Encrypt, KtorEncrypt, MessageAuthentication

#: Tolerated clock skew for issue times in the future (the codec's own constant).
CLOCK_SKEW = _core.CLOCK_SKEW

TRANSFORMERS = (
    "auto",
    "mac",
    "encrypt",
    "ktor-encrypt",
    "starlette",
    "flask",
    "none",
    "session-id",
)
ENCODINGS = ("uri", "base64", "raw", "dquotes")
_CLOCKS = re.compile(r"~1:([^:]*):(\d{1,12}):(\d{1,12}):(\d{0,12}):(.*)", re.S)
_NO_ISSUE_TIME = "--max-age is set but the value carries no issue time (issued without max_age)"


@dataclass
class Verdict:
    """What ``inspect`` found out about one value."""

    transformer: str
    payload: Optional[str] = None
    reason: Optional[str] = None  # a stable code when rejected
    message: str = ""
    reissue: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    #: Accepted without a payload to print (a server-side session id).
    accepted: bool = False

    @property
    def ok(self) -> bool:
        return self.payload is not None or self.accepted


def _inspect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "cookie",
        metavar="COOKIE",
        help="the cookie value, NAME=VALUE, or a whole Cookie / Set-Cookie header; "
        "'-' reads it from standard input",
    )
    given = p.add_mutually_exclusive_group()
    given.add_argument(
        "--key",
        metavar="KEY",
        help="the current key: as hex or base64url for ferrosession's transformers (force "
        "one with a hex: or base64: prefix), the secret_key / SECRET_KEY string for "
        "Starlette's and Flask's cookies; env:VAR reads it from an environment variable. "
        "For ktor-encrypt: the AES key. Not needed for unsigned values and session ids",
    )
    given.add_argument(
        "--key-file",
        metavar="PATH",
        help="read the current key from this file (one line, as --key takes it)",
    )
    p.add_argument(
        "--old-key",
        action="append",
        default=[],
        metavar="KEY",
        help="a retired key that still opens values (repeatable; env:VAR works too)",
    )
    p.add_argument(
        "--transformer",
        choices=TRANSFORMERS,
        default="auto",
        help="the value's format: a transformer of ours, Starlette's or Flask's cookie, "
        "none (unsigned) or a server-side session id (default: recognised by its shape)",
    )
    p.add_argument("--sign-key", metavar="KEY", help="ktor-encrypt: the HMAC-SHA256 key")
    p.add_argument(
        "--backward-compatible-read",
        action="store_true",
        help="ktor-encrypt: also accept Ktor < 3.0 values (MAC over the plaintext)",
    )
    p.add_argument(
        "--algorithm",
        choices=("sha256", "sha384", "sha512"),
        help="mac: the HMAC hash (default: from the tag's length)",
    )
    p.add_argument(
        "--name",
        metavar="SESSION_NAME",
        help="the session's registered name (Encrypt binds it into each value; a "
        "server-side id's storage key is derived from it); default: the cookie's name "
        "when COOKIE is NAME=VALUE",
    )
    p.add_argument(
        "--max-age",
        type=int,
        metavar="SECONDS",
        help="the transformer's max_age (Starlette's max_age, Flask's "
        "PERMANENT_SESSION_LIFETIME): check the value's issue time",
    )
    p.add_argument(
        "--idle-timeout",
        type=int,
        metavar="SECONDS",
        help="the registration's idle_timeout: check a value's last use",
    )
    p.add_argument(
        "--absolute-timeout",
        type=int,
        metavar="SECONDS",
        help="the registration's absolute_timeout: check when a value's session began",
    )
    p.add_argument(
        "--encoding",
        choices=ENCODINGS,
        default="uri",
        help="the cookie encoding of the registration (default uri)",
    )
    p.add_argument(
        "--now",
        type=int,
        metavar="UNIX_SECONDS",
        help="check as of this time instead of the clock",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _needs_key(what: str, give: str = "it") -> UsageError:
    return UsageError(
        f"this is {what}: a key is needed to verify it: pass {give} with {KEY_OPTIONS}"
    )


def _when(ts: int, now: int) -> str:
    try:
        stamp = datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        stamp = f"Unix time {ts}"
    delta = now - ts
    ago = f"{delta} s ago" if delta >= 0 else f"{-delta} s in the future"
    return f"{stamp} ({ago})"


def _timing(
    v: Verdict,
    issued: int,
    now: int,
    max_age: Optional[int],
    *,
    checked: bool,
    skew: int = CLOCK_SKEW,
) -> Optional[Verdict]:
    """Adds the issue time to ``v``; when ``checked``, returns a rejection for a value
    from the future or too old (the codec's rules: 60 s of skew, never a longer life;
    itsdangerous tolerates none)."""
    v.details["issued_at"] = issued
    v.details["issued"] = _when(issued, now)
    if not checked or max_age is None:
        return None
    if issued > now + skew:
        v.reason = "from_the_future"
        v.message = (
            f"issued {issued - now} s in the future, beyond the {skew} s of "
            f"tolerated clock skew (issued {_when(issued, now)})"
        )
        return v
    if now > issued + max_age:
        v.reason = "expired"
        v.message = (
            f"expired: issued {_when(issued, now)}, older than --max-age {max_age} s "
            f"by {now - issued - max_age} s"
        )
        return v
    return None


def _inspect_mac(value: str, keys: list[bytes], args: argparse.Namespace, now: int) -> Verdict:
    v = Verdict("mac")
    signed, slash, tag = value.rpartition("/")
    if not slash:
        v.reason, v.message = "malformed", "not a signed value (VALUE/HEX_TAG): no '/'"
        return v
    algorithm: Optional[str] = args.algorithm or MAC_TAG_LENGTHS.get(len(tag))
    if algorithm is None or not re.fullmatch(r"[0-9a-f]+", tag):
        v.reason = "malformed"
        v.message = (
            "the tag after the last '/' is not lowercase hex of an HMAC-SHA256/384/512 "
            f"({len(tag)} characters)"
        )
        return v
    v.details["algorithm"] = algorithm
    # The verdict is the codec's own; the steps below only explain it.
    full = MessageAuthentication(
        keys[0], old_keys=keys[1:], algorithm=algorithm, max_age=args.max_age
    )
    opened = full._core.read(value, "", now)
    index = next(
        (
            i
            for i, k in enumerate(keys)
            if MessageAuthentication(k, algorithm=algorithm)._core.read(value, "", now)
        ),
        None,
    )
    if index is not None:
        v.details["key"] = "--key" if index == 0 else f"--old-key #{index}"
    if opened is not None:
        v.payload, v.reissue = opened
        if args.max_age is not None:
            _timing(v, int(signed.rpartition("/")[2]), now, args.max_age, checked=False)
        elif re.search(r"/\d{1,20}$", signed):
            v.details["note"] = "the value may end with an issue time: pass --max-age"
        return v
    if index is None:
        v.reason = "wrong_key_or_tampered"
        v.message = (
            f"the {algorithm} tag does not verify under --key"
            + (" or any --old-key" if len(keys) > 1 else "")
            + ": another key, or the value was changed"
        )
        return v
    _, slash, ts = signed.rpartition("/")
    if not slash or not re.fullmatch(r"\d{1,20}", ts):
        v.reason = "no_issue_time"
        v.message = _NO_ISSUE_TIME
        return v
    rejected = _timing(v, int(ts), now, args.max_age, checked=True)
    if rejected is not None:
        return rejected
    v.reason, v.message = "rejected", "rejected by the codec"
    return v


_ENCRYPT_REASONS = {
    "not_base64": "malformed",
    "too_short": "malformed",
    "unknown_version": "malformed",
    "unknown_key": "wrong_key",
    "bad_tag": "wrong_key_or_tampered",
    "not_utf8": "wrong_key_or_tampered",
    "no_issue_time": "no_issue_time",
    "expired": "expired",
    "from_the_future": "from_the_future",
}


def _inspect_encrypt(
    value: str,
    keys: list[bytes],
    args: argparse.Namespace,
    now: int,
    name: Optional[str],
    cookie_name: Optional[str],
) -> Verdict:
    require_inspect_helpers()
    if name is None:
        raise UsageError(
            "Encrypt binds the session name into each value: pass --name SESSION_NAME, "
            "or give the cookie as NAME=VALUE"
        )
    Encrypt(keys[0], old_keys=keys[1:], max_age=args.max_age)  # validates the keys
    v = Verdict("encrypt")
    v.details["name"] = name
    envelope, code, message = _core.encrypt_envelope(value)
    if envelope is None:
        v.reason, v.message = "malformed", f"not an Encrypt value: {message}"
        v.details["code"] = code
        return v
    version, key_id, issued, length = envelope
    v.details.update(version=version, key_id=key_id.hex(), plaintext_bytes=length)
    ids = [_core.encrypt_key_id(k) for k in keys]
    if key_id in ids:
        i = ids.index(key_id)
        v.details["key"] = "--key" if i == 0 else f"--old-key #{i}"
    if issued is not None:
        _timing(v, issued, now, args.max_age, checked=False)
    payload, reissue, code, message = _core.encrypt_open(keys, value, name, now, args.max_age)
    if payload is not None:
        v.payload, v.reissue = payload, reissue
        return v
    assert code is not None
    v.details["code"] = code
    v.reason = _ENCRYPT_REASONS.get(code, "rejected")
    v.message = message
    if code == "unknown_key":
        v.message = (
            f"encrypted under a key that is not configured (key id {key_id.hex()}; --key "
            f"has {ids[0].hex()}"
            + "".join(f", --old-key #{i} has {k.hex()}" for i, k in enumerate(ids[1:], 1))
            + ")"
        )
    elif code == "bad_tag":
        if cookie_name is not None and cookie_name != name:
            other = _core.encrypt_open(keys, value, cookie_name, now, args.max_age)
            if other[0] is not None:
                v.reason = "wrong_session_name"
                v.message = (
                    f"wrong session name: issued for {cookie_name!r}, not {name!r} "
                    f"(Encrypt binds the name)"
                )
                return v
        v.message = (
            f"authentication failed under the key with id {key_id.hex()}: the value was "
            f"tampered with, or issued for a session name other than {name!r}"
        )
    elif code in ("expired", "from_the_future") and issued is not None:
        timed = _timing(v, issued, now, args.max_age, checked=True)
        if timed is not None:
            return timed
    elif code == "no_issue_time":
        v.message = _NO_ISSUE_TIME
    return v


_KTOR_REASONS = {
    "malformed": "malformed",
    "bad_iv": "malformed",
    "bad_ciphertext": "malformed",
    "bad_mac_encoding": "malformed",
    "bad_mac": "wrong_key_or_tampered",
    "bad_padding": "wrong_key",
    "not_utf8": "wrong_key",
}


def _inspect_ktor(value: str, keys: list[bytes], args: argparse.Namespace) -> Verdict:
    require_inspect_helpers()
    if args.sign_key is None:
        raise UsageError("ktor-encrypt needs --sign-key (the HMAC-SHA256 key)")
    if len(keys) > 1:
        raise UsageError("ktor-encrypt has no key rotation: --old-key does not apply")
    sign = parse_key(args.sign_key, "--sign-key")
    compat = bool(args.backward_compatible_read)
    KtorEncrypt(keys[0], sign, backward_compatible_read=compat)  # validates the keys
    v = Verdict("ktor-encrypt")
    v.details["aes_bits"] = 8 * len(keys[0])
    payload, reissue, code, message = _core.ktor_encrypt_open(keys[0], sign, value, compat)
    if payload is not None:
        v.payload, v.reissue = payload, reissue
        v.details["note"] = "Ktor's format does not authenticate its IV"
        if reissue:
            v.details["format"] = "Ktor < 3.0 (MAC over the plaintext)"
        return v
    assert code is not None
    v.details["code"] = code
    v.reason, v.message = _KTOR_REASONS.get(code, "rejected"), message
    if code == "bad_mac" and not compat:
        legacy = _core.ktor_encrypt_open(keys[0], sign, value, True)
        if legacy[0] is not None:
            v.reason = "legacy_format"
            v.message = (
                "a Ktor < 3.0 value (its MAC covers the plaintext): pass "
                "--backward-compatible-read to accept it"
            )
    return v


def _starlette_codec(secrets: list[bytes]) -> Callable[[bytes, Optional[int], int], Any]:
    """``read(value, max_age, now)`` through the drop-in's own Rust codec."""

    def read(value: bytes, max_age: Optional[int], now: int) -> Any:
        # the cookie's name and Set-Cookie text play no part in reading one value
        codec = _core.StarletteCodec(
            secrets,
            max_age,
            b"session",
            b"",
            b"",
            b"",
            fast_loads=json.loads,
            fast_error=ValueError,
            loads=json.loads,
            dumps=json.dumps,
        )
        return codec.load_value(value, now)

    return read


def _flask_codec(secrets: list[bytes]) -> Callable[[bytes, Optional[int], int], Any]:
    codec = _core.FlaskCodec(secrets)
    return lambda value, max_age, now: codec.load(value, max_age, now)


_ITSDANGEROUS = {
    "starlette": (
        "Starlette's SessionMiddleware cookie (itsdangerous TimestampSigner; also "
        "ferrosession.starlette)",
        "secret_key",
        _starlette_codec,
    ),
    "flask": (
        "Flask's session cookie (itsdangerous URLSafeTimedSerializer, salt cookie-session; "
        "also ferrosession.flask)",
        "SECRET_KEY",
        _flask_codec,
    ),
}


def _itsdangerous_time(value: str) -> Optional[int]:
    ts = value.rsplit(".", 2)[-2]
    try:
        return int.from_bytes(base64.urlsafe_b64decode(ts + "=" * (-len(ts) % 4)), "big")
    except (ValueError, binascii.Error):
        return None


def _itsdangerous_names(kinds: Sequence[str], joined_by: str) -> str:
    """``Starlette's SessionMiddleware cookie or Flask's session cookie``: the formats'
    names without their notes."""
    return joined_by.join(_ITSDANGEROUS[k][0].split(" (")[0] for k in kinds)


def _inspect_itsdangerous(
    value: str, keys: list[KeyText], args: argparse.Namespace, now: int, kinds: Sequence[str]
) -> Verdict:
    """Starlette's or Flask's cookie (``kinds``: the ones its shape allows), verified by
    the Rust codec the drop-ins use, under the secret strings given."""
    if not keys:
        which = " or ".join(_ITSDANGEROUS[k][1] for k in kinds)
        raise _needs_key(
            _itsdangerous_names(kinds, " or ") + " (signed by itsdangerous)",
            f"the app's {which} string",
        )
    secrets = [k.secret() for k in keys]
    raw = value.encode("ascii")
    issued = _itsdangerous_time(value)
    for kind in kinds:
        what, _, make = _ITSDANGEROUS[kind]
        opened = make(secrets)(raw, None, now)
        if opened is None:
            continue
        v = Verdict(kind)
        v.details["format"] = what
        index = next(i for i, s in enumerate(secrets) if make([s])(raw, None, now) is not None)
        v.details["key"] = keys[index].option
        if kind == "flask" and value.startswith("."):
            v.details["compressed"] = "zlib"
        if issued is not None:
            _timing(v, issued, now, args.max_age, checked=False)
        if args.max_age is not None:
            opened = make(secrets)(raw, args.max_age, now)
            if opened is None:
                # itsdangerous takes no clock skew: an age below zero is expired too
                timed = (
                    None
                    if issued is None
                    else _timing(v, issued, now, args.max_age, checked=True, skew=0)
                )
                if timed is None:
                    v.reason, v.message = "rejected", "rejected by the codec"
                return v
        v.payload = opened[0].decode("utf-8", "replace")
        v.reissue = bool(opened[1])
        return v
    v = Verdict(kinds[0] if len(kinds) == 1 else "starlette-or-flask")
    v.reason = "wrong_key_or_tampered"
    v.message = (
        "the signature does not verify as "
        + _itsdangerous_names(kinds, " or as ")
        + " under --key"
        + (" or any --old-key" if len(keys) > 1 else "")
        + ": another secret, or the value was changed"
    )
    return v


def _inspect_session_id(value: str, name: Optional[str]) -> Verdict:
    v = Verdict("session-id", accepted=True)
    v.message = "a server-side session id: its data is in the storage"
    v.details["format"] = v.message
    v.details["id"] = value
    if name is None:
        v.details["storage_key"] = "pass --name SESSION_NAME (or NAME=VALUE) to derive it"
    else:
        try:
            v.details["storage_key"] = _core.Codec(name).storage_key(value)
        except ValueError as exc:
            raise UsageError(f"--name {name!r} cannot be a session name: {exc}") from None
        v.details["storage_key_note"] = (
            f"what the storage of session {name!r} keys it by (the id itself if it was "
            f"registered with hash_ids=False)"
        )
    return v


def _open_clocks(v: Verdict, name: Optional[str], args: argparse.Namespace, now: int) -> Verdict:
    """Unwraps the lifetimes envelope (``~1:NAME:CREATED:LAST_SEEN:DEADLINE:PAYLOAD``) of
    an opened value; the verdict on it is the codec's (``Codec.open_clocks``)."""
    assert v.payload is not None
    if not v.payload.startswith("~1:"):
        return v
    m = _CLOCKS.fullmatch(v.payload)
    if m is None:
        v.payload, v.reason = None, "malformed"
        v.message = (
            "the value opens, but its lifetimes (~1:NAME:CREATED:LAST_SEEN:DEADLINE:) are malformed"
        )
        return v
    bound, created, last_seen, deadline = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)
    v.details["lifetimes_of"] = bound
    v.details.update(created_at=created, created=_when(created, now))
    v.details.update(last_seen_at=last_seen, last_seen=_when(last_seen, now))
    if deadline:
        v.details.update(deadline_at=int(deadline), deadline=_when(int(deadline), now))
    if name is not None and name != bound:
        v.payload, v.reason = None, "wrong_session_name"
        v.message = (
            f"wrong session name: issued for {bound!r}, not {name!r} (its lifetimes name it)"
        )
        return v
    try:
        codec = _core.Codec(
            bound, clocks=True, idle=args.idle_timeout, absolute=args.absolute_timeout
        )
    except ValueError:
        v.payload, v.reason = None, "malformed"
        v.message = f"its lifetimes name {bound!r}, which no session can be named"
        return v
    opened = codec.open_clocks(v.payload, now)
    if opened is not None:
        v.payload = opened.payload
        if args.idle_timeout is None and args.absolute_timeout is None:
            v.details["note"] = "pass --idle-timeout / --absolute-timeout to check those"
        return v
    v.payload = None
    if max(created, last_seen) > now + CLOCK_SKEW:
        v.reason = "from_the_future"
        v.message = f"its clocks are beyond the {CLOCK_SKEW} s of tolerated skew in the future"
    elif deadline and now > int(deadline):
        v.reason = "expired"
        v.message = f"ended: its deadline passed {now - int(deadline)} s ago"
    elif args.idle_timeout is not None and now - min(last_seen, now) > args.idle_timeout:
        v.reason = "expired"
        v.message = f"ended: unused for longer than --idle-timeout {args.idle_timeout} s"
    elif args.absolute_timeout is not None and now - min(created, now) > args.absolute_timeout:
        v.reason = "expired"
        v.message = f"ended: began longer than --absolute-timeout {args.absolute_timeout} s ago"
    else:
        v.reason, v.message = "rejected", "its lifetimes are rejected by the codec"
    return v


def _inspect(args: argparse.Namespace) -> int:
    arg: str = args.cookie
    if arg == "-":
        arg = sys.stdin.read().strip()
    keys = key_texts(args)
    for option in ("max_age", "idle_timeout", "absolute_timeout"):
        if getattr(args, option) is not None and getattr(args, option) <= 0:
            flag = "--" + option.replace("_", "-")
            raise UsageError(f"{flag} must be a positive number of seconds")
    now: int = int(time.time()) if args.now is None else args.now
    if now < 0:
        raise UsageError("--now must not be negative")
    cookie_name, raw = split_cookie(arg, args.name, args.encoding)
    name: Optional[str] = args.name if args.name is not None else cookie_name
    decoded = _core.Codec("inspect", header=True, encoding=args.encoding).decode(raw)
    kind: Optional[str] = args.transformer
    if kind == "auto":
        kind = recognise(raw, decoded or "", bool(keys), args.sign_key is not None)
        if decoded is None and kind != "itsdangerous":
            kind = "auto"  # a bad encoding, said below
    if kind not in ("starlette", "flask", "itsdangerous") and decoded is None:
        v = Verdict(kind or "auto", reason="bad_encoding")
        v.message = f"not valid {args.encoding} encoding" + (
            " (a malformed %-escape, or bytes that are not UTF-8)" if args.encoding == "uri" else ""
        )
        return _report(v, args, keys)
    text = decoded or ""
    if kind is None:
        v = Verdict("auto", reason="malformed")
        v.message = (
            "not shaped like a MessageAuthentication, Encrypt, KtorEncrypt, Starlette or "
            "Flask value (if its registration is unsigned, inspect it without a key), "
            "nor a server-side session id: pass --transformer"
        )
        return _report(v, args, keys)
    if kind == "session-id":
        v = _inspect_session_id(text, name)
    elif kind == "none":
        v = Verdict("none", payload=text)
        v.details["format"] = "unsigned (no transformer): anyone can read and change it"
    elif kind in ("starlette", "flask", "itsdangerous"):
        if kind == "itsdangerous":
            kinds: list[str] = []
            if STARLETTE.fullmatch(raw):
                kinds.append("starlette")
            if FLASK.fullmatch(raw):
                kinds.append("flask")
        else:
            kinds = [kind]
        v = _inspect_itsdangerous(raw, keys, args, now, kinds)
    else:
        described = {
            "mac": "a MessageAuthentication value (VALUE/HEX_TAG)",
            "encrypt": "an Encrypt value",
            "ktor-encrypt": "a KtorEncrypt value",
        }[kind]
        if not keys:
            if kind == "mac" and SESSION_ID.fullmatch(text.rpartition("/")[0]):
                described = "a server-side session id signed by MessageAuthentication"
            raise _needs_key(described)
        if kind == "ktor-encrypt" and args.sign_key is None:
            raise UsageError("this looks like a KtorEncrypt value: pass --sign-key")
        key_bytes = [k.key() for k in keys]
        if kind == "mac":
            v = _inspect_mac(text, key_bytes, args, now)
        elif kind == "encrypt":
            v = _inspect_encrypt(text, key_bytes, args, now, name, cookie_name)
        else:
            v = _inspect_ktor(text, key_bytes, args)
        if v.payload is not None:
            v = _open_clocks(v, name, args, now)
        if v.payload is not None and SESSION_ID.fullmatch(v.payload):
            v.details.update(
                _inspect_session_id(v.payload, name).details,
                format=f"a server-side session id, signed by {kind}: its data is in the storage",
            )
    if args.transformer == "auto":
        v.details["transformer"] = f"{v.transformer} (recognised; --transformer to choose)"
    return _report(v, args, keys)


def _report(v: Verdict, args: argparse.Namespace, keys: Sequence[KeyText]) -> int:
    if v.transformer in ("none", "session-id"):
        v.details["key_source"] = "none needed" + (" (--key was not used)" if keys else "")
    elif keys:
        v.details["key_source"] = keys[0].source
    if args.json:
        out(
            json.dumps(
                {
                    "ok": v.ok,
                    "transformer": v.transformer,
                    "payload": v.payload,
                    "reason": v.reason,
                    "message": v.message,
                    "reissue": v.reissue,
                    "details": v.details,
                },
                ensure_ascii=False,
                sort_keys=True,
            )
        )
    elif v.ok:
        if v.payload is not None:
            out(v.payload)
        facts = [f"{k}: {val}" for k, val in v.details.items()]
        if v.reissue:
            facts.append("would be re-issued under the current key / format")
        err(f"ok ({v.transformer})" + "".join(f"\n  {f}" for f in facts))
    else:
        err(f"rejected ({v.reason}): {v.message}")
        for k, val in v.details.items():
            err(f"  {k}: {val}")
    return EXIT_OK if v.ok else EXIT_REJECTED


COMMAND = Command(
    "inspect",
    "decode a cookie value and say why it is rejected",
    "Decode a session cookie value for debugging: ferrosession's own (MessageAuthentication, "
    "Encrypt, KtorEncrypt, unsigned, a server-side session id), Starlette's "
    "SessionMiddleware's or Flask's. Print its payload (stdout) and what was checked "
    "(stderr): the format recognised and where the key came from; or say why it is "
    "rejected. Exit 0 when it opens, 1 when it is rejected, 2 on a usage error (a "
    "signed value without a key, too). Keys on a command line end up in the shell's "
    "history: prefer --key env:VAR or --key-file.",
    _inspect_args,
    _inspect,
)
