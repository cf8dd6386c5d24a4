"""The ``ferrosession`` command (also ``python -m ferrosession.cli``).

Subcommands, each in the module named for it:

- ``keygen`` (:mod:`.keygen`): a new random key from the OS CSPRNG, as hex and base64url.
- ``inspect`` (:mod:`.inspect`, with :mod:`.formats` telling the formats apart and
  :mod:`.keys` reading the keys given): decode a cookie value for debugging: say which
  format it is and where the key came from; print its payload, or say why it is rejected.
- ``gc`` (:mod:`.gc`): delete the expired sessions of a DirectoryStorage folder or of an
  SQL storage.
- ``bench`` (:mod:`.bench`) and ``demo`` (:mod:`.demo`).

Exit codes: 0 ok, 1 the value is rejected, 2 usage error. Every subcommand is one entry
of :data:`COMMANDS`; add another by writing its module's ``COMMAND`` (a :class:`Command`)
and listing it there.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from ferrosession import _core
from ferrosession.cli import bench, demo, gc, inspect, keygen
from ferrosession.cli._command import EXIT_OK, EXIT_REJECTED, EXIT_USAGE, Command, UsageError, err
from ferrosession.cli.formats import split_cookie
from ferrosession.cli.keys import parse_key
from ferrosession.errors import ConfigurationError

__all__ = [
    "COMMANDS",
    "EXIT_OK",
    "EXIT_REJECTED",
    "EXIT_USAGE",
    "Command",
    "UsageError",
    "build_parser",
    "main",
    "parse_key",
    "split_cookie",
]

COMMANDS: dict[str, Command] = {
    cmd.name: cmd
    for cmd in (keygen.COMMAND, inspect.COMMAND, gc.COMMAND, bench.COMMAND, demo.COMMAND)
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand in :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="ferrosession",
        description="Typed HTTP sessions: key generation and cookie debugging.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_core.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for cmd in COMMANDS.values():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.description)
        cmd.configure(p)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the command line; returns the exit status (0 ok, 1 rejected, 2 usage)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    cmd = COMMANDS[args.command]
    try:
        return cmd.run(args)
    except (UsageError, ConfigurationError) as exc:
        err(f"ferrosession {cmd.name}: error: {exc}")
        return EXIT_USAGE
