"""``ferrosession gc --postgres DSN`` / ``--sqlite PATH``: the SQL storages' gc, apart
from cli.py (which is long enough)."""

import argparse
import os
from typing import Any, Callable, Optional

from ferrosession.errors import ConfigurationError, StorageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--postgres",
        metavar="DSN",
        help="a PostgresStorage's database (a libpq connection string or URL; env:VAR reads "
        "it from that environment variable, so that a password stays out of the history)",
    )
    where.add_argument("--sqlite", metavar="FILE", help="a SQLiteStorage's database file")
    p.add_argument(
        "--table",
        default="ferrosession_sessions",
        help="the storage's table (default: ferrosession_sessions)",
    )


def run(
    args: argparse.Namespace, out: Callable[[str], None], err: Callable[[str], None]
) -> Optional[int]:
    """The gc of ``--postgres`` / ``--sqlite``: the exit status, or ``None`` when neither
    was given (the folder form then runs). Raises the CLI's ``UsageError`` for a missing
    SQLite file, a path given too, or a bad table name."""
    from ferrosession.cli import UsageError

    if args.postgres is None and args.sqlite is None:
        return None
    if args.path is not None:
        raise UsageError("give a folder, --postgres or --sqlite, not several")
    storage: Any
    try:
        if args.sqlite is not None:
            from ferrosession.storage.sqlite import SQLiteStorage

            if not os.path.isfile(args.sqlite):  # never create a database by mistake
                raise UsageError(f"{args.sqlite} is not a file")
            storage, where = SQLiteStorage(args.sqlite, table=args.table), args.sqlite
        else:
            from ferrosession.storage.postgres import PostgresStorage

            dsn = args.postgres
            if dsn.startswith("env:"):
                name = dsn[4:]
                if name not in os.environ:
                    raise UsageError(f"--postgres {dsn}: the environment variable is not set")
                dsn = os.environ[name]
            storage, where = PostgresStorage(dsn, table=args.table), "the database"
    except ConfigurationError as exc:
        raise UsageError(str(exc)) from None
    try:
        removed = storage.gc()
    except StorageError as exc:
        err(f"ferrosession gc: {exc}")
        return 1
    finally:
        storage.close()
    out(f"removed {removed} expired session{'s' if removed != 1 else ''} from {where}")
    return 0
