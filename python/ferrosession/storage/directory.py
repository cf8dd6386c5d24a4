"""Sessions in a folder: one file per session, with an in-memory cache (Rust core)."""

import math
import os
from datetime import timedelta
from pathlib import Path
from typing import Callable, Literal, Optional, Union

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

    Besides ``read``/``write``/``invalidate`` it offers the whole session lifecycle,
    safe across processes without a lock file: :meth:`create` (store only if absent),
    :meth:`update` (replace only a live entry, never undoing an invalidation),
    :meth:`touch`, :meth:`read_ttl`, and an owner index (:meth:`index_add`,
    :meth:`index_remove`, :meth:`index_list`) kept under ``PATH/owners/``.

    Disk I/O runs in Rust with the GIL released (a cache hit checked against the change
    table needs none, and keeps it). A full disk or an unwritable folder raises
    :class:`~ferrosession.StorageError` naming the path and the OS error. A storage maps
    its folder's change table while it lives, so (as with an open file) the filesystem
    cannot be unmounted meanwhile.

    Args:
        path: the folder; created (mode 0700) if missing, with a
            ``.ferrosession-layout`` file that marks it as a storage's (``ferrosession
            gc`` refuses folders that are not). Relative paths are resolved once, here.
        cached: keep values in memory: a hit within ``cache_ttl`` reads no file.
        cache_ttl: how long a cached value is trusted, in seconds or as a
            ``timedelta``.
        shared: other processes (gunicorn / uvicorn workers) use the same folder:
            each cache hit is revalidated, so no process serves a value that another
            has replaced or deleted. On a local filesystem (Linux) against the folder's
            change table (``PATH/.ferrosession-changes``, shared memory in which every
            change of an entry, by any process, is counted): one memory load, no
            system call. Elsewhere (network filesystems such as NFS or SMB;
            copy-on-write ones such as btrfs or ZFS, where a store into the mapped
            table could crash the process on a full disk; other systems; or when the
            table cannot be used) with one ``stat`` of the file;
            ``"stat"`` always does that, for folders shared in ways the storage cannot
            detect. :attr:`revalidation` says which is in use. The table counts only
            changes made through ``DirectoryStorage`` (any process, this version or
            later): a file deleted or replaced by other means (``rm``, a restore) is
            noticed by a ``stat`` at once but by the table only when the value leaves
            the cache (``cache_ttl``). With ``False`` the cache is trusted for
            ``cache_ttl`` (only for a single process).
        cache_max_entries: bound of the cache; past it the least recently used value
            is dropped. ``0`` disables the cache.

    Raises:
        ConfigurationError: an argument is out of range.
        StorageError: the folder cannot be created.
    """

    # ``read`` and ``read_ttl`` are the Rust methods themselves, bound once per instance:
    # a cache hit is then one call into Rust, without a Python frame in front of it.
    __slots__ = ("_core", "read", "read_ttl")

    read: Callable[[str], Optional[str]]
    """``read(session_id)``: the stored text, or ``None`` when the id is unknown, expired
    or invalid. Raises :class:`~ferrosession.StorageError` when the file exists but
    cannot be read (permissions, I/O error) or the folder cannot be used (one of its
    folders replaced by a file): only a missing or expired entry is ``None``."""

    read_ttl: Callable[[str], Optional[tuple[str, float]]]
    """``read_ttl(session_id)``: the stored text and its remaining lifetime in seconds
    (``> 0``), or ``None``. Served from the cache whenever ``read`` would be (with
    ``shared``, after the same revalidation, which also notices a ``touch`` by another
    process). Raises :class:`~ferrosession.StorageError` when the file exists but cannot
    be read."""

    def __init__(
        self,
        path: Union[str, os.PathLike[str]],
        *,
        cached: bool = True,
        cache_ttl: Union[float, timedelta] = 60,
        shared: Union[bool, Literal["stat"]] = True,
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
        if not isinstance(cached, bool):
            raise ConfigurationError(
                f"DirectoryStorage cached must be True or False, not {cached!r}"
            )
        if not isinstance(shared, bool) and shared != "stat":
            raise ConfigurationError(
                f'DirectoryStorage shared must be True, False or "stat", not {shared!r}'
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
        core = _core.DirectoryStorage(
            os.path.abspath(folder),
            cached=cached,
            cache_ttl=seconds,
            shared=shared,
            cache_max_entries=min(cache_max_entries, 2**63 - 1),
        )
        self._core = core
        self.read = core.read
        self.read_ttl = core.read_ttl

    def write(self, session_id: str, value: str, ttl: int) -> None:
        """Stores ``value`` under ``session_id`` for ``ttl`` seconds (``0`` deletes it).

        Raises:
            ConfigurationError: ``session_id`` is not ``[A-Za-z0-9_-]{1,128}`` (ids are
                minted by the server, so this is a bug in an ``identity`` function).
            StorageError: the file cannot be written; the previous value is intact.
        """
        self._core.write(session_id, value, _check_ttl(ttl))

    def invalidate(self, session_id: str) -> bool:
        """Deletes the entry (nothing happens when there is none or the id is invalid).

        The file is moved aside atomically before it is checked and deleted, so the
        answer is about the very file removed, and an :meth:`update` racing with the
        deletion either landed before it (and is deleted too) or finds no entry.

        Returns:
            Whether a live entry was deleted (``False`` for an absent, expired or
            damaged one, and for an invalid id, which touches no file).

        Raises:
            StorageError: the file exists but cannot be deleted, or was deleted but
                could not be read (whether it was live is unknown), or the folder
                cannot be used: never a ``False`` that would read as a logout.
        """
        return self._core.invalidate(session_id)

    def create(self, session_id: str, value: str, ttl: int) -> bool:
        """Stores ``value`` for ``ttl`` seconds only when there is no live entry.

        Atomic across threads and processes: of concurrent creates of one id exactly
        one stores. The record goes to a temp file that is moved into place without
        replacing anything (``renameat2(RENAME_NOREPLACE)``, or a hard link where that
        is missing). An expired or damaged entry in the way is removed (only if it is
        still not live when moved aside) and the move retried once. ``ttl=0`` stores
        nothing.

        Returns:
            Whether ``value`` was stored.

        Raises:
            ConfigurationError: ``session_id`` is not ``[A-Za-z0-9_-]{1,128}``.
            StorageError: the file cannot be written.
        """
        return self._core.create(session_id, value, _check_ttl(ttl))

    def update(self, session_id: str, value: str, ttl: int) -> bool:
        """Replaces the value only while the entry is live, for ``ttl`` seconds.

        An :meth:`invalidate` (or expiry) that happened before is never undone, in any
        process: the new record is exchanged with the entry
        (``renameat2(RENAME_EXCHANGE)``, which fails when the entry is gone), and when
        the record it displaced turns out to be expired, the new one is expired and
        removed again. Where the exchange is missing (not Linux or macOS, or a
        filesystem without it) the entry is moved aside, checked and replaced, so
        readers may see no entry for a moment. ``ttl=0`` deletes a live entry and
        returns ``False``.

        Returns:
            Whether a live entry was replaced (when ``False``, nothing is stored and
            nothing stays cached for ``session_id``). ``False`` only when the entry is
            truly gone (missing or expired).

        Raises:
            ConfigurationError: ``session_id`` is not ``[A-Za-z0-9_-]{1,128}``.
            StorageError: the file cannot be written, the old entry cannot be read (it
                is left in place), or the folder cannot be used.
        """
        return self._core.update(session_id, value, _check_ttl(ttl))

    def touch(self, session_id: str, ttl: int) -> bool:
        """Makes a live entry expire ``ttl`` seconds from now, without rewriting it.

        Returns:
            Whether there was a live entry to extend.

        Raises:
            StorageError: the entry or its folder cannot be read or changed.
        """
        return self._core.touch(session_id, _check_ttl(ttl))

    def index_add(self, owner: str, session_id: str, ttl: int) -> None:
        """Records that ``session_id`` belongs to ``owner``, for ``ttl`` seconds.

        A later add of the same pair sets the new lifetime (``0`` removes the pair).
        The index lives in ``PATH/owners/``: one folder per owner (named by a hash of
        it) holding one empty file per session whose modification time is its
        expiry.

        Raises:
            ConfigurationError: ``owner`` or ``session_id`` is not
                ``[A-Za-z0-9_-]{1,128}`` (both are made by the server); no file is
                touched.
            StorageError: the file cannot be written.
        """
        self._core.index_add(owner, session_id, _check_ttl(ttl))

    def index_remove(self, owner: str, session_id: str) -> None:
        """Forgets that ``session_id`` belongs to ``owner`` (no error when it was not
        recorded, or for an invalid owner or id).

        Raises:
            StorageError: the file exists but cannot be deleted.
        """
        self._core.index_remove(owner, session_id)

    def index_list(self, owner: str) -> list[str]:
        """The session ids recorded for ``owner`` whose index lifetime has not passed.

        In no particular order; an id may name a session that is already gone (the
        caller checks and calls :meth:`index_remove`). ``[]`` for an unknown or
        invalid owner.

        Raises:
            StorageError: the owner's folder cannot be listed.
        """
        return self._core.index_list(owner)

    def gc(self) -> int:
        """Deletes expired entries, and temp files left by crashed writers.

        Also deletes the owner-index records (not counted) that expired or whose
        session entry is gone (expired, invalidated, deleted by hand), so an owner's
        records go with the sessions, and owner folders left empty for ten minutes.
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
        """Whether cache hits are revalidated (``shared=True`` or ``"stat"``)."""
        return self._core.shared

    @property
    def revalidation(self) -> Literal["table", "stat", "none"]:
        """How a cache hit is revalidated now: ``"table"`` (against the folder's change
        table: no system call), ``"stat"`` (one ``stat`` of the file: ``shared="stat"``,
        a network filesystem, not Linux, or a table that cannot be used or that
        another process retired), or ``"none"`` (``shared=False``, or no cache)."""
        return self._core.revalidation

    def _set_clock_offset(self, seconds: float) -> None:
        """Test hook: run this storage's clock ``seconds`` ahead of the system clock."""
        self._core._set_clock_offset(seconds)

    def __repr__(self) -> str:
        return (
            f"DirectoryStorage({str(self.path)!r}, cached={self.cached}, shared={self.shared}, "
            f"revalidation={self.revalidation!r})"
        )
