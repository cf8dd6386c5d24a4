"""``ferrosession keygen``: a new random key from the OS CSPRNG, as hex and base64url."""

from __future__ import annotations

import argparse
import base64

from ferrosession import _core
from ferrosession.cli._command import EXIT_OK, Command, UsageError, err, out

MIN_KEY_BYTES = 16
MAX_KEY_BYTES = 1024


def _keygen_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--bytes",
        type=int,
        default=32,
        metavar="N",
        help="key length in bytes (default 32, what Encrypt takes; at least 16)",
    )
    p.add_argument(
        "--format",
        choices=("all", "hex", "base64url"),
        default="all",
        help="print every form with a usage line (default), or only the hex or the "
        "base64url form (for scripts)",
    )


def _keygen(args: argparse.Namespace) -> int:
    n: int = args.bytes
    if not MIN_KEY_BYTES <= n <= MAX_KEY_BYTES:
        raise UsageError(
            f"--bytes must be between {MIN_KEY_BYTES} and {MAX_KEY_BYTES} (32 for Encrypt)"
        )
    key = _core.random_bytes(n)
    hex_key = key.hex()
    b64_key = base64.urlsafe_b64encode(key).decode("ascii").rstrip("=")
    if args.format == "hex":
        out(hex_key)
    elif args.format == "base64url":
        out(b64_key)
    else:
        transformer = "Encrypt" if n == 32 else "MessageAuthentication"
        out(f"hex:       {hex_key}")
        out(f"base64url: {b64_key}")
        out(f'python:    fs.{transformer}(bytes.fromhex("{hex_key}"))')
        err(
            "Keep this key secret: load it from the environment or a secrets store, "
            "never commit it. `ferrosession inspect --key` takes either form."
        )
    return EXIT_OK


COMMAND = Command(
    "keygen",
    "print a new random key (hex and base64url)",
    "Print a new key from the OS CSPRNG, as hex and as base64url, with a line of "
    "Python that uses it.",
    _keygen_args,
    _keygen,
)
