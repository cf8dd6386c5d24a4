"""What the SQL storages share: the table-name rule and the argument checks."""

import re

from ferrosession.errors import ConfigurationError

# A plain SQL identifier: no quoting needed in PostgreSQL or SQLite, no schema part.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# The longest suffix a table name gets ("<table>_owners_expires_at"): PostgreSQL cuts
# identifiers at 63 bytes, which would make two derived names collide silently.
_LONGEST_SUFFIX = len("_owners_expires_at")
_PG_IDENTIFIER_MAX = 63
MAX_TABLE_NAME = _PG_IDENTIFIER_MAX - _LONGEST_SUFFIX
# Lifetimes past this are clamped (about 68 years, the cookie Max-Age limit).
MAX_TTL = 2**31 - 1
# Rows gc() deletes per statement: a short lock, however many rows have expired.
GC_BATCH = 1000


def check_table(storage: str, table: object) -> str:
    if not isinstance(table, str) or not _IDENTIFIER.match(table):
        raise ConfigurationError(
            f"{storage} table must be a plain SQL identifier (letters, digits and _, not "
            f"starting with a digit), not {table!r}"
        )
    if len(table) > MAX_TABLE_NAME:
        raise ConfigurationError(
            f"{storage} table {table!r} is {len(table)} characters long: at most "
            f"{MAX_TABLE_NAME}, so that its derived names ({table}_owners_expires_at) stay "
            f"within PostgreSQL's {_PG_IDENTIFIER_MAX}-byte identifier limit"
        )
    return table


def check_ttl(ttl: int) -> int:
    if isinstance(ttl, bool) or not isinstance(ttl, int):
        raise TypeError(f"ttl must be whole seconds as an int, not {type(ttl).__name__}")
    if ttl < 1:
        raise ValueError(f"ttl must be at least 1 second, not {ttl}")
    return min(ttl, MAX_TTL)


def check_value(value: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"value must be the session text as a str, not {type(value).__name__}")
    return value


def check_key(key: str, what: str = "a session key") -> str:
    if not isinstance(key, str):
        raise TypeError(f"{what} must be a str, not {type(key).__name__}")
    return key


class Statements:
    """The SQL of one table, built once by each storage's subclass in its dialect (the
    names are checked identifiers)."""

    __slots__ = (
        "create",
        "create_entry",
        "gc_entries",
        "gc_owners",
        "index_add",
        "index_list",
        "index_remove",
        "invalidate",
        "read",
        "read_ttl",
        "touch",
        "update",
        "write",
    )
