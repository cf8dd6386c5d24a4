"""Sessions in a folder: one file per session, with an in-memory cache (Rust core)."""

from __future__ import annotations

import math
import os
from datetime import timedelta
from pathlib import Path
from typing import Optional, Union

from ferrosession import _core
from ferrosession.errors import ConfigurationError

__all__ = ["DirectoryStorage"]

# Lifetimes past this are clamped (about 68 years, the cookie Max-Age limit).
_MAX_TTL = 2**31 - 1


def _check_ttl(ttl: int) -> int:
    if isinstance(ttl, bool) or not isinstance(ttl, int):
        raise TypeError(f"ttl must be whole seconds as an int, not {type(ttl).__name__}")
    if ttl < 0:
        raise ValueError(f"ttl must not be negative, not {ttl}")
    return min(ttl, _MAX_TTL)


class DirectoryStorage:
    """Server-side sessions kept as files in a folder.

    Each session is one file, written atomically (a temp file in the same folder, then
    a rename; mode 0600) so a reader sees the old or the new value, never a mix. Files
    are sharded two levels deep by a hash of the id (``ab/cd/<hash>``), so no folder
    grows past a few thousand entries. An entry expires with the session's lifetime
    (kept as the file's modification time); expired files read as absent and
    :meth:`gc` deletes them (``ferrosession gc PATH`` does it from the command line).
    Ids outside ``[A-Za-z0-9_-]{1,128}`` are absent sessions and touch no file.

    Disk I/O runs in Rust with the GIL released. A full disk or an unwritable folder
    raises :class:`~ferrosession.StorageError` naming the path and the OS error.

    Args:
        path: the folder; created (mode 0700) if missing. Relative paths are resolved
            once, here.
        cached: keep values in memory: a hit within ``cache_ttl`` reads no file.
        cache_ttl: how long a cached value is trusted, in seconds or as a
            ``timedelta``.
        shared: other processes (gunicorn / uvicorn workers) use the same folder:
            each cache hit is revalidated with one ``stat`` of the file, so no process
            serves a value that another has replaced or deleted. With ``False`` the
            cache is trusted for ``cache_ttl`` (only for a single process).
        cache_max_entries: bound of the cache; past it the least recently used value
            is dropped. ``0`` disables the cache.

    Raises:
        ConfigurationError: an argument is out of range.
        StorageError: the folder cannot be created.
    """

    __slots__ = ("_core",)

    def __init__(
        self,
        path: Union[str, os.PathLike[str]],
        *,
        cached: bool = True,
        cache_ttl: Union[float, timedelta] = 60,
        shared: bool = True,
        cache_max_entries: int = 100_000,
    ) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise ConfigurationError(
                f"DirectoryStorage path must be a str or os.PathLike, not {type(path).__name__}"
            )
        folder = os.fspath(path)
        if not isinstance(folder, str):
            raise ConfigurationError("DirectoryStorage path must be a text path, not bytes")
        if not folder or "\0" in folder:
            raise ConfigurationError(f"DirectoryStorage path must name a folder, not {folder!r}")
        for name, flag in (("cached", cached), ("shared", shared)):
            if not isinstance(flag, bool):
                raise ConfigurationError(
                    f"DirectoryStorage {name} must be True or False, not {flag!r}"
                )
        if isinstance(cache_ttl, timedelta):
            seconds = cache_ttl.total_seconds()
        elif isinstance(cache_ttl, (int, float)) and not isinstance(cache_ttl, bool):
            seconds = float(cache_ttl)
        else:
            raise ConfigurationError(
                "DirectoryStorage cache_ttl must be seconds (int or float) or a timedelta, "
                f"not {type(cache_ttl).__name__}"
            )
        if not math.isfinite(seconds) or seconds < 0:
            raise ConfigurationError(
                f"DirectoryStorage cache_ttl must be zero or more seconds, not {cache_ttl!r}"
            )
        if (
            isinstance(cache_max_entries, bool)
            or not isinstance(cache_max_entries, int)
            or cache_max_entries < 0
        ):
            raise ConfigurationError(
                "DirectoryStorage cache_max_entries must be an int >= 0 (0 disables the "
                f"cache), not {cache_max_entries!r}"
            )
        self._core = _core.DirectoryStorage(
            os.path.abspath(folder),
            cached=cached,
            cache_ttl=seconds,
            shared=shared,
            cache_max_entries=min(cache_max_entries, 2**63 - 1),
        )

    def read(self, session_id: str) -> Optional[str]:
        """The stored text, or ``None`` when the id is unknown, expired or invalid.

        Raises:
            StorageError: the file exists but cannot be read (permissions, I/O error).
        """
        return self._core.read(session_id)

    def write(self, session_id: str, value: str, ttl: int) -> None:
        """Stores ``value`` under ``session_id`` for ``ttl`` seconds (``0`` deletes it).

        Raises:
            ConfigurationError: ``session_id`` is not ``[A-Za-z0-9_-]{1,128}`` (ids are
                minted by the server, so this is a bug in an ``identity`` function).
            StorageError: the file cannot be written; the previous value is intact.
        """
        self._core.write(session_id, value, _check_ttl(ttl))

    def invalidate(self, session_id: str) -> None:
        """Deletes the entry (nothing happens when there is none or the id is invalid).

        Raises:
            StorageError: the file exists but cannot be deleted.
        """
        self._core.invalidate(session_id)

    def touch(self, session_id: str, ttl: int) -> bool:
        """Makes a live entry expire ``ttl`` seconds from now, without rewriting it.

        Returns:
            Whether there was a live entry to extend.
        """
        return self._core.touch(session_id, _check_ttl(ttl))

    def gc(self) -> int:
        """Deletes expired entries, and temp files left by crashed writers.

        Safe to run while other processes use the folder.

        Returns:
            How many expired sessions were deleted.
        """
        return self._core.gc()

    @property
    def path(self) -> Path:
        """The folder (absolute)."""
        return Path(self._core.path)

    @property
    def cached(self) -> bool:
        """Whether values are cached in memory."""
        return self._core.cached

    @property
    def shared(self) -> bool:
        """Whether cache hits are revalidated against the files."""
        return self._core.shared

    def _set_clock_offset(self, seconds: float) -> None:
        """Test hook: run this storage's clock ``seconds`` ahead of the system clock."""
        self._core._set_clock_offset(seconds)

    def __repr__(self) -> str:
        return f"DirectoryStorage({str(self.path)!r}, cached={self.cached}, shared={self.shared})"
