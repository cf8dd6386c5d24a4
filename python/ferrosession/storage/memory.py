"""In-process storage."""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from typing import Callable, Optional

from ferrosession.errors import ConfigurationError

__all__ = ["MemoryStorage"]

_SWEEP_EVERY = 1024
_SWEEP_SPAN = 2048


class MemoryStorage:
    """Sessions kept in this process's memory; entries expire with the session.

    Args:
        max_entries: optional bound; past it the least recently used entry is dropped.
        clock: a function returning the time in seconds (tests pass their own).
    """

    __slots__ = ("_clock", "_data", "_max_entries", "_writes")

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
        self._writes = 0

    def __len__(self) -> int:
        return len(self._data)

    def read(self, session_id: str) -> Optional[str]:
        """The stored text, or ``None`` when unknown or expired."""
        entry = self._data.get(session_id)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            del self._data[session_id]
            return None
        if self._max_entries is not None:
            self._data.move_to_end(session_id)
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

    def invalidate(self, session_id: str) -> None:
        """Deletes the entry."""
        self._data.pop(session_id, None)

    def _sweep(self) -> None:
        """Drops expired entries among the least recently written or read ones (the
        front of the dict), a bounded number at a time: amortised O(1) per write, where a
        full scan every N writes would make filling the storage quadratic. What it does
        not reach expires on read, or by :meth:`gc`."""
        now = self._clock()
        expired = [
            k for k, (_, exp) in itertools.islice(self._data.items(), _SWEEP_SPAN) if exp <= now
        ]
        for k in expired:
            del self._data[k]

    def gc(self) -> int:
        """Deletes expired entries; returns how many."""
        now = self._clock()
        expired = [k for k, (_, exp) in self._data.items() if exp <= now]
        for k in expired:
            del self._data[k]
        return len(expired)
