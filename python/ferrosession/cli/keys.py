"""The keys a user gives ``inspect``: hex or base64 (``hex:`` / ``base64:`` prefixes force
one), ``env:VAR`` or ``--key-file``, with where each came from for the report."""

from __future__ import annotations

import argparse
import base64
import binascii
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ferrosession.cli._command import UsageError

_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+")
_B64 = re.compile(r"[A-Za-z0-9_\-+/]+={0,2}")
KEY_OPTIONS = "--key KEY, --key env:VAR or --key-file PATH"


@dataclass(frozen=True)
class KeyText:
    """A key as the user gave it (after ``env:`` / ``--key-file`` are read) and where it
    came from. Its bytes depend on the format: hex or base64 for ferrosession's own
    transformers, the secret string itself for Starlette's and Flask's cookies."""

    text: str
    option: str  # the option, for messages: --key, --old-key #1
    source: str  # where the text came from, for the report

    def key(self) -> bytes:
        """The key bytes of a ferrosession transformer (hex or base64)."""
        return _decode_key(self.text, self.option)

    def secret(self) -> bytes:
        """The bytes of a Starlette ``secret_key`` / Flask ``SECRET_KEY``: the string
        itself, UTF-8 (a ``hex:`` / ``base64:`` prefix gives bytes instead)."""
        if self.text.startswith(("hex:", "base64:", "b64:")):
            return _decode_key(self.text, self.option)
        return self.text.encode("utf-8")


def _env_key(text: str, what: str) -> tuple[str, Optional[str]]:
    """``(key text, environment variable or None)``: ``env:VAR`` reads the variable."""
    if not text.strip().startswith("env:"):
        return text, None
    var = text.strip()[4:]
    if var not in os.environ:
        raise UsageError(f"{what}: the environment variable {var!r} is not set")
    return os.environ[var], var


def _decode_key(text: str, what: str) -> bytes:
    raw = text.strip()
    try:
        if raw.startswith("hex:"):
            return bytes.fromhex(raw[4:])
        if raw.startswith(("base64:", "b64:")):
            return _b64(raw.split(":", 1)[1])
        if _HEX.fullmatch(raw):
            return bytes.fromhex(raw)
        if _B64.fullmatch(raw):
            return _b64(raw)
    except (ValueError, binascii.Error):
        pass
    raise UsageError(
        f"{what} is neither hex nor base64: give the key that `ferrosession keygen` "
        f"printed (hex or base64url), or prefix it with hex: or base64:"
    )


def parse_key(text: str, what: str) -> bytes:
    """Key bytes from hex, base64url or base64 (``hex:`` / ``base64:`` prefixes force
    one; ``env:VAR`` reads the text from an environment variable)."""
    return _decode_key(_env_key(text, what)[0], what)


def key_texts(args: argparse.Namespace) -> list[KeyText]:
    """The keys given, the current one first; empty when none was."""
    keys: list[KeyText] = []
    if args.key is not None:
        text, var = _env_key(args.key, "--key")
        source = "--key" if var is None else f"the environment variable {var} (--key env:{var})"
        keys.append(KeyText(text, "--key", source))
    elif args.key_file is not None:
        try:
            text = Path(args.key_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--key-file: cannot read {args.key_file}: {exc}") from None
        # an editor's final newline is not part of the key
        text = text[:-1] if text.endswith("\n") else text
        text = text[:-1] if text.endswith("\r") else text
        keys.append(KeyText(text, "--key", f"the file {args.key_file} (--key-file)"))
    for i, old in enumerate(args.old_key, 1):
        if not keys:
            raise UsageError(f"--old-key needs the current key too ({KEY_OPTIONS})")
        text, var = _env_key(old, "--old-key")
        source = f"--old-key #{i}" + ("" if var is None else f" (the environment variable {var})")
        keys.append(KeyText(text, f"--old-key #{i}", source))
    return keys


def _b64(text: str) -> bytes:
    text = text.strip().rstrip("=")
    if "-" in text or "_" in text:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
