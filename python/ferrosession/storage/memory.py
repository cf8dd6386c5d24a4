"""In-process storage."""

import itertools
import threading
import time
from collections import OrderedDict
from typing import Callable, Optional

from ferrosession.errors import ConfigurationError

__all__ = ["MemoryStorage"]

_SWEEP_EVERY = 1024
_SWEEP_SPAN = 2048
# Owners of the index looked at per sweep (each with its few members).
_INDEX_SWEEP_SPAN = 256


class MemoryStorage:
    """Sessions kept in this process's memory; entries expire with the session.

    Besides ``read``, ``write`` and ``invalidate`` it offers the whole optional protocol:
    ``create`` and ``update`` (conditional writes), ``touch``, ``read_ttl`` and the owner
    index (``index_add``, ``index_remove``, ``index_list``). ``create``, ``update``,
    ``touch``, ``invalidate`` and the index methods hold a lock, so they are atomic with
    respect to each other across threads (of two concurrent ``create`` of one key exactly
    one wins; an ``update`` never brings back an entry that was invalidated before it);
    ``read`` and ``write`` stay lock-free (a ``write`` stores unconditionally).

    The owner index keeps, per owner, each key with the time its membership expires.
    Expired members are pruned when the owner is added to or listed, an owner with no
    members left is dropped, and a bounded sweep (every 1024 writes or index additions)
    and :meth:`gc` prune the rest, so the index stays bounded by what was added within
    the index ttls. The index is not tied to the entries: when an entry expires, is
    invalidated, or is dropped by ``max_entries``, its membership lingers until its own
    index ttl passes or the caller removes it (``index_list`` may name keys whose entry
    is gone; the protocol lets the caller check them and ``index_remove`` the stale ones).

    Args:
        max_entries: optional bound on the entries; past it the least recently used entry
            is dropped. (The index is bounded by its ttls, not by this.)
        clock: a function returning the time in seconds (tests pass their own).
    """

    __slots__ = ("_clock", "_data", "_index", "_lock", "_max_entries", "_writes")

    def __init__(
        self, max_entries: Optional[int] = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        if max_entries is not None and (
            isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1
        ):
            raise ConfigurationError("MemoryStorage max_entries must be a positive int or None")
        self._max_entries = max_entries
        self._clock = clock
        self._data: OrderedDict[str, tuple[str, float]] = OrderedDict()
        # owner -> {key: when the membership expires}
        self._index: OrderedDict[str, dict[str, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._writes = 0

    def __len__(self) -> int:
        return len(self._data)

    def read(self, session_id: str) -> Optional[str]:
        """The stored text, or ``None`` when unknown or expired."""
        entry = self._data.get(session_id)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            self._drop_expired(session_id, entry)
            return None
        if self._max_entries is not None:
            try:  # noqa: SIM105 - a try costs nothing, contextlib.suppress does
                self._data.move_to_end(session_id)
            except KeyError:  # invalidated by another thread meanwhile
                pass
        return entry[0]

    def write(self, session_id: str, value: str, ttl: int) -> None:
        """Stores ``value`` for ``ttl`` seconds."""
        now = self._clock()
        data = self._data
        data[session_id] = (value, now + ttl)
        data.move_to_end(session_id)
        if self._max_entries is not None:
            while len(data) > self._max_entries:
                data.popitem(last=False)
        self._writes += 1
        if self._writes % _SWEEP_EVERY == 0:
            self._sweep()

    def invalidate(self, session_id: str) -> bool:
        """Deletes the entry; returns whether there was a live one."""
        with self._lock:
            entry = self._data.pop(session_id, None)
            return entry is not None and entry[1] > self._clock()

    def create(self, session_id: str, value: str, ttl: int) -> bool:
        """Stores ``value`` for ``ttl`` seconds only when there is no live entry for
        ``session_id``; returns whether it stored."""
        with self._lock:
            now = self._clock()
            entry = self._data.get(session_id)
            if entry is not None and entry[1] > now:
                return False
            self._put(session_id, value, now + ttl)
        self._count_write()
        return True

    def update(self, session_id: str, value: str, ttl: int) -> bool:
        """Replaces the value of a live entry (now for ``ttl`` seconds); returns whether
        there was one. Never brings back an invalidated or expired entry."""
        with self._lock:
            now = self._clock()
            if self._live_locked(session_id, now) is None:
                return False
            self._put(session_id, value, now + ttl)
        self._count_write()
        return True

    def touch(self, session_id: str, ttl: int) -> bool:
        """Makes a live entry expire ``ttl`` seconds from now, keeping its value; returns
        whether there was one."""
        with self._lock:
            now = self._clock()
            entry = self._live_locked(session_id, now)
            if entry is None:
                return False
            self._data[session_id] = (entry[0], now + ttl)
            if self._max_entries is not None:
                self._data.move_to_end(session_id)
            return True

    def read_ttl(self, session_id: str) -> Optional[tuple[str, float]]:
        """The stored text and its remaining lifetime in seconds, or ``None`` when unknown
        or expired."""
        entry = self._data.get(session_id)
        if entry is None:
            return None
        remaining = entry[1] - self._clock()
        if remaining <= 0:
            self._drop_expired(session_id, entry)
            return None
        if self._max_entries is not None:
            try:  # noqa: SIM105 - a try costs nothing, contextlib.suppress does
                self._data.move_to_end(session_id)
            except KeyError:  # invalidated by another thread meanwhile
                pass
        return entry[0], remaining

    def index_add(self, owner: str, session_id: str, ttl: int) -> None:
        """Records that ``session_id`` belongs to ``owner`` for ``ttl`` seconds (a later
        add of the same pair replaces the ttl)."""
        with self._lock:
            now = self._clock()
            members = self._index.get(owner)
            if members is None:
                self._index[owner] = {session_id: now + ttl}
            else:
                members = {k: exp for k, exp in members.items() if exp > now}
                members[session_id] = now + ttl
                self._index[owner] = members
        self._count_write()

    def index_remove(self, owner: str, session_id: str) -> None:
        """Forgets that ``session_id`` belongs to ``owner`` (no error when it is not
        recorded)."""
        with self._lock:
            members = self._index.get(owner)
            if members is not None:
                members.pop(session_id, None)
                if not members:
                    del self._index[owner]

    def index_list(self, owner: str) -> list[str]:
        """The keys recorded for ``owner`` whose index ttl has not passed (their entries
        may be gone already); ``[]`` for an unknown owner."""
        with self._lock:
            members = self._index.get(owner)
            if members is None:
                return []
            now = self._clock()
            live = {k: exp for k, exp in members.items() if exp > now}
            if not live:
                del self._index[owner]
            elif len(live) < len(members):
                self._index[owner] = live
            return list(live)

    def _put(self, session_id: str, value: str, expires_at: float) -> None:
        """Stores an entry; the caller holds the lock."""
        data = self._data
        data[session_id] = (value, expires_at)
        data.move_to_end(session_id)
        if self._max_entries is not None:
            while len(data) > self._max_entries:
                data.popitem(last=False)

    def _count_write(self) -> None:
        self._writes += 1
        if self._writes % _SWEEP_EVERY == 0:
            self._sweep()

    def _live_locked(self, session_id: str, now: float) -> Optional[tuple[str, float]]:
        """The live entry of ``session_id``, or ``None``; an expired one is deleted. The
        caller holds the lock."""
        entry = self._data.get(session_id)
        if entry is not None and entry[1] <= now:
            self._data.pop(session_id, None)  # a lock-free eviction may get there first
            return None
        return entry

    def _drop_expired(self, session_id: str, entry: tuple[str, float]) -> None:
        """Deletes an expired entry, unless another thread replaced it meanwhile."""
        with self._lock:
            if self._data.get(session_id) is entry:
                self._data.pop(session_id, None)  # a lock-free eviction may get there first

    def _sweep(self) -> None:
        """Drops expired entries among the least recently written or read ones (the
        front of the dict), a bounded number at a time: amortised O(1) per write, where a
        full scan every N writes would make filling the storage quadratic. What it does
        not reach expires on read, or by :meth:`gc`. It also prunes a bounded number of
        the index's owners, front first, moving those still live to the back so that
        successive sweeps go round the whole index."""
        with self._lock:
            now = self._clock()
            data = self._data
            try:
                expired = [
                    k for k, (_, exp) in itertools.islice(data.items(), _SWEEP_SPAN) if exp <= now
                ]
            except RuntimeError:  # a lock-free write changed the dict meanwhile: next time
                expired = []
            _drop(data, expired, now)
            index = self._index
            for owner in list(itertools.islice(index, _INDEX_SWEEP_SPAN)):
                live = {k: exp for k, exp in index[owner].items() if exp > now}
                del index[owner]
                if live:
                    index[owner] = live

    def gc(self) -> int:
        """Deletes expired entries and prunes expired index members (dropping owners left
        with none); returns how many entries it deleted."""
        with self._lock:
            now = self._clock()
            data = self._data
            # list() copies in C, so a lock-free write cannot change the dict under it.
            dropped = _drop(data, [k for k, (_, exp) in list(data.items()) if exp <= now], now)
            index = self._index
            for owner in list(index):
                members = index[owner]
                live = {k: exp for k, exp in members.items() if exp > now}
                if not live:
                    del index[owner]
                elif len(live) < len(members):
                    index[owner] = live
            return dropped


def _drop(data: OrderedDict[str, tuple[str, float]], keys: list[str], now: float) -> int:
    """Deletes the entries of ``keys`` still expired at ``now`` (a lock-free write may have
    stored a new one since they were collected); returns how many."""
    dropped = 0
    for k in keys:
        entry = data.get(k)
        if entry is not None and entry[1] <= now:
            data.pop(k, None)  # pop: a lock-free eviction may get there first
            dropped += 1
    return dropped
