"""What every subcommand is made of: :class:`Command`, the exit codes, :class:`UsageError`
and the two output streams."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Callable

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """A bad argument: the command prints it and exits with status 2."""


@dataclass(frozen=True)
class Command:
    """One subcommand: ``configure`` adds its arguments, ``run`` returns the exit code."""

    name: str
    help: str
    description: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def out(text: str) -> None:
    print(text, file=sys.stdout)


def err(text: str) -> None:
    print(text, file=sys.stderr)
