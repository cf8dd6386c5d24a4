"""Lifetimes of client-side sessions: idle and absolute timeouts, renewal, per-value
max_age, clocks bound to the session's name (DESIGN "Lifecycle"), on an injected clock."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import pytest

import ferrosession as fs
from _driver import Response, call

KEY = bytes(range(32))


@dataclass(frozen=True)
class Login:
    user: str


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def sessions(clock: Clock, transformer: Any = None, name: str = "S", **options: Any) -> fs.Sessions:
    s = fs.Sessions(clock=clock)
    s.cookie(Login, name, transformers=[transformer or fs.MessageAuthentication(KEY)], **options)
    return s


def app(s: fs.Sessions, handler: Any) -> fs.SessionMiddleware:
    async def inner(scope: Any, receive: Any, send: Any) -> None:
        result = handler(fs.get_sessions(scope))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": repr(result).encode()})

    return fs.SessionMiddleware(inner, s)


def login(s: fs.Sessions, **kw: Any) -> str:
    r = call(app(s, lambda c: c.set(Login("ann"), **kw)))
    value = r.cookie_value("S")
    assert value
    return value


def read(s: fs.Sessions, cookie: str, name: str = "S") -> Response:
    return call(app(s, lambda c: c.get(Login)), headers=[("cookie", f"{name}={cookie}")])


@pytest.mark.parametrize("transformer", [fs.MessageAuthentication(KEY), fs.Encrypt(KEY)])
def test_idle_timeout(transformer: Any) -> None:
    clock = Clock()
    s = sessions(clock, transformer, idle_timeout=60, refresh="on_change")
    cookie = login(s)
    clock.now += 60
    assert read(s, cookie).body == repr(Login("ann")).encode()
    clock.now += 1
    assert read(s, cookie).body == b"None"


def test_renewal_keeps_an_active_session_and_is_not_sent_on_every_request() -> None:
    clock = Clock()
    s = sessions(clock, idle_timeout=60, refresh=20)
    cookie = login(s)
    clock.now += 10
    quiet = read(s, cookie)
    assert quiet.body == repr(Login("ann")).encode() and quiet.set_cookies == []
    clock.now += 15  # 25 s since last seen: due
    renewed = read(s, cookie)
    new_cookie = renewed.cookie_value("S")
    assert renewed.body == repr(Login("ann")).encode() and new_cookie and new_cookie != cookie
    assert "Max-Age=60" in renewed.set_cookies[0]
    clock.now += 50  # 75 s after the first cookie was last seen, 50 s after the renewal
    assert read(s, cookie).body == b"None"
    assert read(s, new_cookie).body == repr(Login("ann")).encode()


def test_default_refresh_is_a_quarter_of_idle_capped_at_a_minute() -> None:
    clock = Clock()
    s = sessions(clock, idle_timeout=3600)  # refresh: 60 s
    cookie = login(s)
    clock.now += 59
    assert read(s, cookie).set_cookies == []
    clock.now += 1
    assert len(read(s, cookie).set_cookies) == 1


def test_absolute_timeout_ends_even_an_active_session() -> None:
    clock = Clock()
    s = sessions(clock, idle_timeout=60, absolute_timeout=100, refresh=10)
    cookie = login(s)
    for _ in range(5):  # active every 19 s: renewed each time
        clock.now += 19
        r = read(s, cookie)
        assert r.body == repr(Login("ann")).encode()
        cookie = r.cookie_value("S") or cookie
    assert "Max-Age=5;" in r.set_cookies[0]  # the cookie ends with the session
    clock.now += 6  # 101 s after it began
    assert read(s, cookie).body == b"None"


def test_set_keeps_the_session_start_and_clear_starts_anew() -> None:
    clock = Clock()
    s = sessions(clock, absolute_timeout=100)
    cookie = login(s)
    clock.now += 90
    again = call(
        app(s, lambda c: c.set(Login("bob"))), headers=[("cookie", f"S={cookie}")]
    ).cookie_value("S")
    assert again
    assert (
        "Max-Age=10"
        in call(
            app(s, lambda c: c.set(Login("bob"))), headers=[("cookie", f"S={again}")]
        ).set_cookies[0]
    )
    clock.now += 11
    assert read(s, again).body == b"None"  # the start carried over: 101 s

    def clear_then_set(c: fs.CurrentSessions) -> None:
        c.clear(Login)
        c.set(Login("carol"))

    clock.now -= 11
    fresh = call(app(s, clear_then_set), headers=[("cookie", f"S={again}")]).cookie_value("S")
    assert fresh
    clock.now += 50
    assert read(s, fresh).body == repr(Login("carol")).encode()


def test_per_value_max_age_is_a_deadline_nothing_extends() -> None:
    clock = Clock()
    s = sessions(clock, idle_timeout=3600, refresh=5)
    cookie = login(s, max_age=30)
    line = call(app(s, lambda c: c.set(Login("ann"), max_age=30))).set_cookies[0]
    assert "Max-Age=30" in line
    clock.now += 10
    renewed = read(s, cookie)  # renewal keeps the deadline
    c2 = renewed.cookie_value("S")
    assert c2 and "Max-Age=20" in renewed.set_cookies[0]
    later = call(
        app(s, lambda c: c.set(Login("ann"), max_age=3600)), headers=[("cookie", f"S={c2}")]
    )
    c3 = later.cookie_value("S")
    assert c3 and "Max-Age=20" in later.set_cookies[0]  # a longer max_age does not extend
    clock.now += 21
    for c in (cookie, c2, c3):
        assert read(s, c).body == b"None"


def test_values_without_clocks_or_for_another_name_are_absent() -> None:
    clock = Clock()
    plain = fs.Sessions(clock=clock)
    plain.cookie(Login, "S", transformers=[fs.MessageAuthentication(KEY)])
    old = login(plain)  # issued before timeouts were configured
    s = sessions(clock, idle_timeout=60)
    assert read(s, old).body == b"None"
    # the same key under another registration name
    other = sessions(clock, name="T", idle_timeout=60)
    t_cookie = call(app(other, lambda c: c.set(Login("eve")))).cookie_value("T")
    assert t_cookie
    assert read(s, t_cookie).body == b"None"
    assert read(other, t_cookie, name="T").body == repr(Login("eve")).encode()


def test_clock_skew_is_tolerated_but_never_extends() -> None:
    clock = Clock()
    s = sessions(clock, idle_timeout=100, refresh="on_change")
    clock.now += 30
    ahead = login(s)  # a server whose clock is 30 s ahead issued it
    clock.now -= 30
    assert read(s, ahead).body == repr(Login("ann")).encode()
    clock.now += 100 + 30
    assert read(s, ahead).body == repr(Login("ann")).encode()  # counted from its own time
    clock.now += 1
    assert read(s, ahead).body == b"None"
    clock.now += 1000
    far = login(s)
    clock.now -= 120  # issued 120 s in the future: beyond the 60 s skew
    assert read(s, far).body == b"None"


@pytest.mark.parametrize(
    "payload",
    [
        "~1:S:²:1:: {}",
        "~1:S:1000000:1000000:x:{}",
        "~1:S::1000000::{}",
        "~1:S:1000000:1000000:",
        "~2:S:1000000:1000000::{}",
        "garbage",
    ],
)
def test_malformed_clocks_are_absent(payload: str) -> None:
    clock = Clock()
    s = sessions(clock, idle_timeout=60)
    from urllib.parse import quote_plus

    signed = fs.MessageAuthentication(KEY).transform_write(payload)
    assert read(s, quote_plus(signed, safe="")).body == b"None"


def test_configuration_errors() -> None:
    clock = Clock()
    with pytest.raises(fs.ConfigurationError, match="signed or encrypted"):
        fs.Sessions().cookie(Login, "S", idle_timeout=60, unsigned=True)
    with pytest.raises(fs.ConfigurationError, match="signed or encrypted"):
        fs.Sessions().cookie(Login, "S", idle_timeout=60, transformers=[fs.Digest()], unsigned=True)
    # server-side: the record carries the clocks, no transformer needed
    fs.Sessions().cookie(Login, "S", storage=fs.MemoryStorage(), idle_timeout=60)
    with pytest.raises(fs.ConfigurationError, match="shorter than idle_timeout"):
        sessions(clock, idle_timeout=60, refresh=60)
    with pytest.raises(fs.ConfigurationError, match="refresh goes with idle_timeout"):
        fs.Sessions().cookie(Login, "S", refresh=10, unsigned=True)
    with pytest.raises(fs.ConfigurationError, match="must be positive"):
        sessions(clock, idle_timeout=0)
    # a per-value deadline on a value nothing authenticates would prove nothing
    plain = fs.Sessions()
    plain.cookie(Login, "S", unsigned=True)
    errors: list[str] = []

    def handler(c: fs.CurrentSessions) -> Optional[str]:
        try:
            c.set(Login("x"), max_age=10)
        except fs.ConfigurationError as exc:
            errors.append(str(exc))
        return None

    call(app(plain, handler))
    assert errors and "nothing authenticates" in errors[0]


def test_header_sessions_carry_clocks_too() -> None:
    clock = Clock()
    s = fs.Sessions(clock=clock)
    s.header(Login, "X-S", transformers=[fs.Encrypt(KEY)], idle_timeout=60, refresh=10)
    value = call(app(s, lambda c: c.set(Login("api")))).headers("x-s")[0]
    clock.now += 30
    r = call(app(s, lambda c: c.get(Login)), headers=[("X-S", value)])
    assert r.body == repr(Login("api")).encode() and r.headers("x-s")  # renewed
    clock.now += 61
    assert call(app(s, lambda c: c.get(Login)), headers=[("X-S", value)]).body == b"None"


class Reverse:
    def transform_write(self, value: str) -> str:
        return value[::-1]

    def transform_read(self, value: str) -> Optional[str]:
        return value[::-1]


def test_lifetimes_through_a_chain_with_a_custom_transformer() -> None:
    """The Python path (a custom transformer in the chain) enforces the same clocks."""
    clock = Clock()
    s = fs.Sessions(clock=clock)
    s.cookie(
        Login,
        "S",
        transformers=[Reverse(), fs.MessageAuthentication(KEY)],
        idle_timeout=60,
        refresh=20,
    )
    cookie = login(s)
    clock.now += 25
    renewed = read(s, cookie)
    assert renewed.body == repr(Login("ann")).encode() and len(renewed.set_cookies) == 1
    clock.now += 40  # 65 s after the first cookie
    assert read(s, cookie).body == b"None"
    assert read(s, renewed.cookie_value("S") or "").body == repr(Login("ann")).encode()
