"""A registration's lifetime part: how long its cookie and its stored entry live.

From the registration's ``max_age``, its ``idle_timeout`` / ``absolute_timeout`` and a
value's own deadline (``set(value, max_age=...)``). The rules: a cookie never outlives
its server-side entry; the entry lives until the session's own end (the timeouts, the
per-value deadline), else for ``max_age``, else 604800 s; the cookie lives until the
per-value deadline when there is one, else for ``max_age`` (none: a browser-session
cookie, with or without timeouts), never past the absolute end.
"""

from typing import Optional

from ferrosession import _core

__all__ = ["DEFAULT_MAX_AGE", "Lifetime"]

DEFAULT_MAX_AGE = 604_800
# seconds a stored record outlives its clocks in the storage: the clocks decide the
# last second, not the storage
_SLACK = _core.RECORD_SLACK


class Lifetime:
    """The lifetimes of one registration, in seconds."""

    __slots__ = ("absolute", "clocks", "entry_age", "idle", "max_age", "refresh")

    def __init__(
        self,
        max_age: Optional[int],
        idle: Optional[int] = None,
        absolute: Optional[int] = None,
        refresh: Optional[int] = None,
        *,
        clocks: bool = False,
    ) -> None:
        self.max_age = max_age  # the cookie's Max-Age; None: a browser-session cookie
        self.entry_age = DEFAULT_MAX_AGE if max_age is None else max_age
        self.idle = idle
        self.absolute = absolute
        self.refresh = refresh  # None: renew only on set ("on_change")
        # every value carries its created / last-seen times (timeouts, or principal's
        # sessions_of); without, only a value with a deadline carries them
        self.clocks = clocks

    def cookie_age(
        self, created: int, deadline: Optional[int], now: int, *, client: bool
    ) -> Optional[int]:
        """The cookie's Max-Age. A client-side cookie also ends with the idle timeout
        (it is issued again on renewal); a server-side one does not (a touch renews
        the entry, not the cookie: idleness is the server's to judge)."""
        age = self.max_age if deadline is None else max(0, deadline - now)
        if age is None:
            return None
        if client and self.idle is not None:
            age = min(age, self.idle)
        if self.absolute is not None:
            age = min(age, max(0, created + self.absolute - now))
        return age

    def entry_ttl(self, created: int, deadline: Optional[int], now: int, *, framed: bool) -> int:
        """The storage TTL of an entry written now; ``framed``: the record carries its
        clocks, which then decide (the entry outlives them by a second)."""
        own = []
        if self.idle is not None:
            own.append(self.idle)
        if self.absolute is not None:
            own.append(max(0, created + self.absolute - now))
        if deadline is not None:
            own.append(max(0, deadline - now))
        ttl = min(own) if own else self.entry_age
        return max(1, ttl) + _SLACK if framed else ttl
