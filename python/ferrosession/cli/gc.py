"""``ferrosession gc``: delete the expired sessions of a DirectoryStorage folder, or of a
PostgresStorage (``--postgres DSN``) or SQLiteStorage (``--sqlite FILE``) table."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, Optional

from ferrosession import _core
from ferrosession.cli._command import EXIT_OK, EXIT_REJECTED, Command, UsageError, err, out
from ferrosession.errors import ConfigurationError, StorageError

# The file every DirectoryStorage makes in its folder (src/storage/directory.rs).
_LAYOUT_FILE = ".ferrosession-layout"


def _gc_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="PATH", nargs="?", help="the folder of a DirectoryStorage")
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


def _gc(args: argparse.Namespace) -> int:
    from ferrosession.storage.directory import DirectoryStorage

    sql = _gc_sql(args)
    if sql is not None:
        return sql
    if args.path is None:
        raise UsageError("give the folder of a DirectoryStorage, --postgres DSN or --sqlite FILE")
    path = Path(args.path)
    if not path.is_dir():  # never create a folder by mistake
        raise UsageError(f"{path} is not a folder")
    try:
        # Opening a storage makes its layout (change table, layout file): only in a
        # folder that already is one, so a mistyped path is left as it was.
        if not _core.DirectoryStorage.holds_layout(path):
            raise UsageError(
                f"{path} is not a DirectoryStorage folder (it holds no "
                f"{_LAYOUT_FILE}, change table, owners/ or session folders); nothing "
                "was changed. Give the path the app passes to DirectoryStorage"
            )
        removed = DirectoryStorage(path, cached=False).gc()
    except StorageError as exc:
        return _storage_failed(exc)
    return _removed(removed, path)


def _gc_sql(args: argparse.Namespace) -> Optional[int]:
    """The gc of ``--postgres`` / ``--sqlite``: the exit status, or ``None`` when neither
    was given (the folder form then runs). Raises ``UsageError`` for a missing SQLite
    file, a path given too, or a bad table name."""
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
        return _storage_failed(exc)
    finally:
        storage.close()
    return _removed(removed, where)


def _storage_failed(exc: StorageError) -> int:
    err(f"ferrosession gc: {exc}")
    return EXIT_REJECTED


def _removed(removed: int, where: object) -> int:
    out(f"removed {removed} expired session{'s' if removed != 1 else ''} from {where}")
    return EXIT_OK


COMMAND = Command(
    "gc",
    "delete expired sessions from a DirectoryStorage folder or an SQL storage",
    "Delete the expired session files (and stale temporary files) of a DirectoryStorage "
    "folder, with the owner-index records of sessions that are gone; safe while the app "
    "runs. Prints how many sessions it removed. Refuses (exit 2, changing nothing) a "
    "folder that is not a DirectoryStorage's. With --postgres DSN or --sqlite FILE (and "
    "--table when the app names one), the same for a PostgresStorage or SQLiteStorage.",
    _gc_args,
    _gc,
)
