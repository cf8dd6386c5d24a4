"""Test helpers: start a test logged in (:func:`login`), read what a response set
(:func:`session_of`), and a conformance suite for storages.

    testing.login(client, sessions, Login("ann"))       # the client now carries it
    assert testing.session_of(response, sessions, Login) == Login("ann")

The conformance suite: run it against your own storage before you ship it.

    from ferrosession.testing import check_storage

    check_storage(MyStorage())            # raises AssertionError naming what is wrong

For a storage bound to a running event loop (an ``AsyncConnectionPool``, an asyncio
client made for the app's loop), ``await acheck_storage(storage)`` runs the same checks
in that loop.

It checks the storage protocol the middleware relies on, plain or ``async def``; for a
storage that offers both (like :class:`~ferrosession.RedisStorage`), the plain methods
and the ``a``-prefixed async ones (``aread``, ``awrite``, ``ainvalidate``, ``acreate``…)
each as a set.

The required methods (``read``, ``write``, ``invalidate``): a written value reads back
exactly, a write replaces, an unknown or invalidated key reads as ``None``, invalidating
an unknown key is no error, keys do not collide, entries expire after their ``ttl``, and
values survive as text (unicode, quotes, newlines, several kB). When ``invalidate``
returns a bool, it must be ``True`` for a live entry and ``False`` for an unknown, already
invalidated or expired one (``None``, from storages written before it returned anything,
passes as "unknown").

Each optional method the storage offers (looked up with ``getattr``, like the middleware
does) is checked too:

- ``create`` and ``update`` (they come together): ``create`` stores only when there is no
  live entry (``True``), returns ``False`` and keeps the value when there is one (of
  several concurrent ones exactly one wins), and stores over an expired entry;
  ``update`` replaces only a live value (``True``) and returns ``False`` — without
  creating anything — for an absent, invalidated or expired key. Both store with the
  ``ttl`` given.
- ``touch``: ``True`` for a live entry, whose value it keeps and which then outlives its
  original ``ttl``; ``False`` for an absent, invalidated or expired one, which it does
  not create.
- ``read_ttl``: ``(value, remaining)`` with ``0 < remaining <= ttl`` (plus 1 s of slack)
  for a live entry, ``None`` otherwise.
- the owner index (``index_add``, ``index_remove`` and ``index_list`` come together): an
  unknown owner lists ``[]``, added keys are listed (once, however often they are
  added), owners do not mix, ``index_remove`` forgets a pair (no error when there is
  none), a member disappears once its index ttl passes, a later add of a pair replaces
  its ttl, and a member added with a shorter ttl does not shorten the others.

A storage must not mix kinds: with a plain ``read``, every plain method is plain; with
an ``async def read``, every method is ``async def``.

Keys and owners are the ones the middleware uses: 43-character base64url hashes. It uses
fresh random ones and removes what it stored. The expiry checks (``expiry=True``) share
one wait of about ``expiry_ttl`` + 1 s per set of methods.
"""

import asyncio
import base64
import importlib
import inspect
import os
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Optional

__all__ = [
    "acheck_storage",
    "alogin",
    "asession_of",
    "atoken",
    "check_storage",
    "login",
    "session_of",
    "token",
]

_VALUES = (
    '{"user":"ann","visits":0}',
    "",
    'ünïcödé ✓ "quoted" \\ back\nslash',
    "  leading and trailing space, a newline\n",
    "x" * 8000,
)

_OPTIONAL = ("create", "update", "touch", "read_ttl", "index_add", "index_remove", "index_list")
# Methods that only make sense together: a storage offering one offers all.
_TOGETHER = (("create", "update"), ("index_add", "index_remove", "index_list"))
# How far read_ttl's remaining lifetime may exceed the ttl (clocks, rounding).
_TTL_SLACK = 1.0
# The ttl of what must outlive the expiry wait.
_LONG = 60

AsyncFn = Callable[..., Awaitable[Any]]


def _key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()


def check_storage(storage: Any, *, expiry: bool = True, expiry_ttl: int = 1) -> None:
    """Runs the conformance checks against ``storage``.

    Args:
        storage: the storage to check (sync, async, or both).
        expiry: also check that entries and index members expire (waits about
            ``expiry_ttl`` + 1 s, once for the plain methods and once for the async ones).
        expiry_ttl: the ttl, in seconds, used for the expiry checks.

    Raises:
        AssertionError: the storage breaks the protocol; the message says how.
    """
    for ops in _sets(storage, plain=True):
        asyncio.run(_check(ops, expiry, expiry_ttl))


async def acheck_storage(storage: Any, *, expiry: bool = True, expiry_ttl: int = 1) -> None:
    """The checks of :func:`check_storage`, in the running event loop: the methods an ASGI
    app calls (``aread`` & co. when the storage has them, else its own ``read`` & co.,
    plain or ``async def``), for a storage bound to that loop, such as a
    :class:`~ferrosession.PostgresStorage` given an ``AsyncConnectionPool``::

        async def test_my_storage():
            await acheck_storage(MyStorage(pool))

    Plain methods are called in the loop, as the ASGI middleware calls them.

    Args:
        storage: the storage to check.
        expiry: also check that entries and index members expire (waits about
            ``expiry_ttl`` + 1 s).
        expiry_ttl: the ttl, in seconds, used for the expiry checks.

    Raises:
        AssertionError: the storage breaks the protocol; the message says how.
    """
    for ops in _sets(storage, plain=not hasattr(storage, "aread")):
        await _check(ops, expiry, expiry_ttl)


def _sets(storage: Any, *, plain: bool) -> list["_Ops"]:
    """The storage's sets of methods to check: its own (``read`` & co.) when ``plain``,
    and the ``a``-prefixed ones when it has ``aread``."""
    for method in ("read", "write", "invalidate"):
        assert callable(getattr(storage, method, None)), f"the storage has no {method}()"
    is_async = inspect.iscoroutinefunction(storage.read)
    sets = [_methods(storage, "", is_async)] if plain else []
    if hasattr(storage, "aread"):
        for method in ("awrite", "ainvalidate"):
            assert callable(getattr(storage, method, None)), (
                f"the storage has aread() but no {method}()"
            )
        sets.append(_methods(storage, "a", True))
    return sets


@dataclass
class _Ops:
    """One set of methods, every one made async (and checked to be of the set's kind)."""

    prefix: str
    read: AsyncFn
    write: AsyncFn
    invalidate: AsyncFn
    optional: dict[str, AsyncFn]

    def name(self, method: str) -> str:
        return f"{self.prefix}{method}()"

    def has(self, *methods: str) -> bool:
        return all(m in self.optional for m in methods)

    def __getattr__(self, method: str) -> AsyncFn:
        """An optional method (only called once :meth:`has` said it is there)."""
        fn = self.__dict__.get("optional", {}).get(method)
        if fn is None:
            raise AttributeError(method)
        return fn  # type: ignore[no-any-return]


def _methods(storage: Any, prefix: str, is_async: bool) -> _Ops:
    optional = {}
    for method in _OPTIONAL:
        fn = getattr(storage, prefix + method, None)
        if fn is not None:
            assert callable(fn), f"the storage's {prefix}{method} is not a method"
            optional[method] = fn
    for group in _TOGETHER:
        present = [m for m in group if m in optional]
        missing = [m for m in group if m not in optional]
        if present and missing:
            listed = ", ".join(f"{prefix}{m}()" for m in missing)
            raise AssertionError(
                f"the storage offers {prefix}{present[0]}() but not {listed}: "
                f"{', '.join(prefix + m + '()' for m in group)} come together"
            )
    reader = "aread()" if prefix else "read()"
    read, write, invalidate = (
        _kind(getattr(storage, prefix + m), prefix + m, is_async, reader)
        for m in ("read", "write", "invalidate")
    )
    return _Ops(
        prefix,
        read,
        write,
        invalidate,
        {m: _kind(fn, prefix + m, is_async, reader) for m, fn in optional.items()},
    )


def _kind(fn: Callable[..., Any], name: str, is_async: bool, reader: str) -> AsyncFn:
    """``fn`` as an async function that checks it is of the same kind as ``read``."""

    async def call(*args: Any) -> Any:
        result = fn(*args)
        if inspect.isawaitable(result):
            if not is_async:
                if inspect.iscoroutine(result):
                    result.close()
                raise AssertionError(
                    f"{name}() returned an awaitable but {reader} is a plain method: a "
                    "storage's methods are either all plain or all async def"
                )
            return await result
        assert not is_async, (
            f"{name}() is a plain method but {reader} is async def: a storage's methods are "
            "either all plain or all async def"
        )
        return result

    return call


async def _check(ops: _Ops, expiry: bool, expiry_ttl: int) -> None:
    await _check_required(ops)
    if ops.has("create"):
        await _check_create_update(ops)
    if ops.has("touch"):
        await _check_touch(ops)
    if ops.has("read_ttl"):
        await _check_read_ttl(ops)
    if ops.has("index_add"):
        await _check_index(ops)
    if expiry:
        await _check_expiry(ops, expiry_ttl)


def _returned(ops: _Ops, method: str, got: Any, want: bool, case: str) -> None:
    assert isinstance(got, bool), f"{ops.name(method)} must return a bool, not {got!r}"
    assert got is want, f"{ops.name(method)} returned {got} for {case}: it must return {want}"


def _invalidated(ops: _Ops, got: Any, want: bool, case: str) -> None:
    """``invalidate``'s result, checked when it is a bool (``None`` means unknown)."""
    if isinstance(got, bool):
        assert got is want, (
            f"{ops.name('invalidate')} returned {got} for {case}: it must return {want} "
            "(True only when it deleted a live entry)"
        )


async def _check_required(ops: _Ops) -> None:
    read, write, invalidate = ops.read, ops.write, ops.invalidate
    a, b = _key(), _key()
    assert await read(a) is None, f"an unknown key must read as None ({ops.name('read')})"
    _invalidated(ops, await invalidate(a), False, "an unknown key")  # and no error
    for value in _VALUES:
        await write(a, value, _LONG)
        got = await read(a)
        assert got == value, f"wrote {value[:40]!r}…, read back {str(got)[:40]!r}…"
    await write(b, "other", _LONG)
    assert await read(a) == _VALUES[-1], "writing one key changed another"
    await write(a, "short", _LONG)
    assert await read(a) == "short", "a write must replace the value (even a longer one)"
    _invalidated(ops, await invalidate(a), True, "a live entry")
    assert await read(a) is None, "an invalidated key must read as None"
    assert await read(b) == "other", "invalidating one key removed another"
    _invalidated(ops, await invalidate(a), False, "a key invalidated already")
    await invalidate(b)


async def _check_create_update(ops: _Ops) -> None:
    read, invalidate, create, update = ops.read, ops.invalidate, ops.create, ops.update
    a, b = _key(), _key()
    _returned(ops, "create", await create(a, "first", _LONG), True, "an absent key")
    assert await read(a) == "first", f"{ops.name('create')} returned True but did not store"
    _returned(ops, "create", await create(a, "second", _LONG), False, "a live entry")
    assert await read(a) == "first", f"{ops.name('create')} replaced a live value"
    if ops.has("read_ttl"):
        await _ttl_within(ops, a, "first", 0, _LONG, f"after create(key, value, {_LONG})")

    _returned(ops, "update", await update(a, "updated", 2 * _LONG), True, "a live entry")
    assert await read(a) == "updated", f"{ops.name('update')} returned True but did not store"
    if ops.has("read_ttl"):
        await _ttl_within(
            ops, a, "updated", _LONG, 2 * _LONG, f"after update(key, value, {2 * _LONG})"
        )

    _returned(ops, "update", await update(b, "ghost", _LONG), False, "an absent key")
    assert await read(b) is None, f"{ops.name('update')} of an absent key created it"

    await invalidate(a)
    _returned(ops, "update", await update(a, "ghost", _LONG), False, "an invalidated key")
    assert await read(a) is None, (
        f"{ops.name('update')} brought back an invalidated entry: it must replace only a live one"
    )
    _returned(ops, "create", await create(a, "again", _LONG), True, "an invalidated key")
    assert await read(a) == "again", f"{ops.name('create')} did not store over an invalidated key"
    await invalidate(a)

    c = _key()
    results = await asyncio.gather(*(create(c, f"racer {i}", _LONG) for i in range(4)))
    winners = [i for i, won in enumerate(results) if won is True]
    assert len(winners) == 1, (
        f"4 concurrent {ops.name('create')} of one key returned {results}: exactly one must win"
    )
    assert await read(c) == f"racer {winners[0]}", (
        f"after concurrent {ops.name('create')}, the stored value is not the winner's"
    )
    await invalidate(c)


async def _check_touch(ops: _Ops) -> None:
    read, write, invalidate, touch = ops.read, ops.write, ops.invalidate, ops.touch
    a, b = _key(), _key()
    value = _VALUES[2]
    await write(a, value, _LONG)
    _returned(ops, "touch", await touch(a, 2 * _LONG), True, "a live entry")
    got = await read(a)
    assert got == value, (
        f"{ops.name('touch')} changed the value: wrote {value[:40]!r}, read back "
        f"{str(got)[:40]!r} after it (touch must keep the value)"
    )
    if ops.has("read_ttl"):
        when = f"after touch(key, {2 * _LONG}) of an entry written with ttl={_LONG}"
        await _ttl_within(ops, a, value, _LONG, 2 * _LONG, when)
    _returned(ops, "touch", await touch(b, _LONG), False, "an absent key")
    assert await read(b) is None, f"{ops.name('touch')} of an absent key created it"
    await invalidate(a)
    _returned(ops, "touch", await touch(a, _LONG), False, "an invalidated key")
    assert await read(a) is None, f"{ops.name('touch')} brought back an invalidated entry"


async def _ttl_within(ops: _Ops, key: str, value: str, low: float, ttl: int, when: str) -> None:
    """``read_ttl(key)`` is ``(value, remaining)`` with ``low < remaining <= ttl``."""
    got = await ops.read_ttl(key)
    assert isinstance(got, (tuple, list)) and len(got) == 2, (
        f"{ops.name('read_ttl')} must return (value, remaining seconds) or None, not {got!r}"
    )
    text, remaining = got
    assert text == value, f"{ops.name('read_ttl')} returned the value {str(text)[:40]!r}…"
    assert isinstance(remaining, (int, float)) and not isinstance(remaining, bool), (
        f"{ops.name('read_ttl')} must return the remaining lifetime as seconds (a float), "
        f"not {remaining!r}"
    )
    assert low < remaining <= ttl + _TTL_SLACK, (
        f"{ops.name('read_ttl')} reports {remaining} s left {when}: expected more than "
        f"{low} and at most {ttl}"
    )


async def _check_read_ttl(ops: _Ops) -> None:
    read_ttl, write, invalidate = ops.read_ttl, ops.write, ops.invalidate
    a = _key()
    got = await read_ttl(a)
    assert got is None, f"{ops.name('read_ttl')} of an unknown key must be None, not {got!r}"
    for value in (_VALUES[0], _VALUES[2], _VALUES[-1]):
        await write(a, value, _LONG)
        await _ttl_within(ops, a, value, 0, _LONG, f"after write(key, value, {_LONG})")
    await invalidate(a)
    got = await read_ttl(a)
    assert got is None, (
        f"{ops.name('read_ttl')} of an invalidated key must be None, not {str(got)[:60]}"
    )


async def _listed(ops: _Ops, owner: str) -> list[str]:
    got = await ops.index_list(owner)
    assert isinstance(got, (list, tuple)), (
        f"{ops.name('index_list')} must return a list of keys, not {got!r}"
    )
    return sorted(got)


async def _check_index(ops: _Ops) -> None:
    add, remove = ops.index_add, ops.index_remove
    name = ops.name
    one, two = _key(), _key()
    k1, k2, k3 = _key(), _key(), _key()
    got = await _listed(ops, one)
    assert got == [], f"{name('index_list')} of an unknown owner must be [], not {got}"
    await add(one, k1, _LONG)
    await add(one, k2, _LONG)
    got = await _listed(ops, one)
    assert got == sorted([k1, k2]), (
        f"after {name('index_add')} of two keys, {name('index_list')} returned {got}, not both"
    )
    await add(two, k3, _LONG)
    assert await _listed(ops, two) == [k3], (
        f"{name('index_list')} of an owner does not give just the key added for it: owners mix"
    )
    assert await _listed(ops, one) == sorted([k1, k2]), (
        f"{name('index_add')} for one owner changed another owner's {name('index_list')}"
    )
    await add(one, k2, _LONG)
    got = await _listed(ops, one)
    assert got == sorted([k1, k2]), (
        f"after adding a pair again, {name('index_list')} returned {got}: re-adding must "
        "list it once"
    )
    await remove(one, k1)
    got = await _listed(ops, one)
    assert got == [k2], (
        f"{name('index_list')} still lists a removed key (or lost another): {got} after "
        f"{name('index_remove')}"
    )
    await remove(one, k1)  # no error when absent
    await remove(_key(), k1)  # nor for an unknown owner
    await remove(one, k2)
    await remove(two, k3)
    got = await _listed(ops, one)
    assert got == [], f"{name('index_list')} after removing every key must be [], not {got}"
    assert await _listed(ops, two) == [], f"{name('index_remove')} did not remove the key"


async def _check_expiry(ops: _Ops, expiry_ttl: int) -> None:
    """Everything that needs time to pass, around one wait."""
    read, write, invalidate, name = ops.read, ops.write, ops.invalidate, ops.name
    ttl = expiry_ttl
    # Written first, so that each has expired once `clock` (written last) has.
    for_create, for_update, for_invalidate, for_read_ttl = _key(), _key(), _key(), _key()
    touched, for_touch = _key(), _key()
    owner = _key()
    short, long, renewed, shortened = _key(), _key(), _key(), _key()
    for key in (for_create, for_update, for_invalidate, for_read_ttl, for_touch, touched):
        await write(key, "expires", ttl)
    if ops.has("touch"):
        _returned(ops, "touch", await ops.touch(touched, _LONG), True, "a live entry")
    if ops.has("index_add"):
        await ops.index_add(owner, short, ttl)
        await ops.index_add(owner, long, _LONG)
        await ops.index_add(owner, renewed, ttl)
        await ops.index_add(owner, renewed, _LONG)
        await ops.index_add(owner, shortened, _LONG)
        await ops.index_add(owner, shortened, ttl)
    clock = _key()
    await write(clock, "expires", ttl)
    assert await read(clock) == "expires"

    deadline = time.monotonic() + ttl + 1.1
    while time.monotonic() < deadline and await read(clock) is not None:
        await asyncio.sleep(0.1)
    assert await read(clock) is None, f"an entry written with ttl={ttl} did not expire"
    want = sorted([long, renewed])
    if ops.has("index_add"):  # the index may measure time apart from the entries
        while time.monotonic() < deadline and short in await _listed(ops, owner):
            await asyncio.sleep(0.1)
    _invalidated(ops, await invalidate(for_invalidate), False, "an expired entry")
    if ops.has("read_ttl"):
        got = await ops.read_ttl(for_read_ttl)
        assert got is None, f"{name('read_ttl')} of an expired entry must be None, not {got}"
    if ops.has("touch"):
        got = await read(touched)
        assert got == "expires", (
            f"an entry touched with ttl={_LONG} did not outlive its original ttl={ttl}: "
            f"it read as {got!r}; {name('touch')} must extend its lifetime"
        )
        _returned(ops, "touch", await ops.touch(for_touch, _LONG), False, "an expired entry")
        assert await read(for_touch) is None, f"{name('touch')} brought back an expired entry"
    if ops.has("create"):
        got = await ops.update(for_update, "new", _LONG)
        _returned(ops, "update", got, False, "an expired entry")
        assert await read(for_update) is None, f"{name('update')} brought back an expired entry"
        got = await ops.create(for_create, "new", _LONG)
        _returned(ops, "create", got, True, "an expired entry (it counts as none)")
        assert await read(for_create) == "new", (
            f"{name('create')} returned True over an expired entry but did not store"
        )
    if ops.has("index_add"):
        got = await _listed(ops, owner)
        assert short not in got, (
            f"{name('index_list')} still lists a member added with ttl={ttl} after it passed"
        )
        assert long in got, (
            f"a member added with ttl={_LONG} disappeared after another member's "
            f"ttl={ttl} passed: a shorter {name('index_add')} must not shorten the owner's "
            "record"
        )
        assert renewed in got, (
            f"a member added with ttl={ttl}, then again with ttl={_LONG}, disappeared: a "
            f"later {name('index_add')} of a pair must replace its ttl"
        )
        assert shortened not in got, (
            f"a member added with ttl={_LONG}, then again with ttl={ttl}, is still listed "
            f"after {ttl} s: a later {name('index_add')} of a pair must replace its ttl"
        )
        assert got == want, f"{name('index_list')} returned {got}, expected {want}"
    for key in (for_create, for_update, for_invalidate, for_read_ttl, for_touch, touched):
        await invalidate(key)
    await invalidate(clock)
    if ops.has("index_add"):
        for key in (short, long, renewed, shortened):
            await ops.index_remove(owner, key)


# -- test helpers for app authors: start a test logged in, read what a response set ----------


def token(sessions: Any, value: object, *, max_age: Any = None) -> str:
    """What a response that set ``value`` would have sent for its session: the cookie's
    value, or the header's. Server-side, the entry is written to the storage (the token
    is then its id). For a client that takes no default headers (Quart's), send a header
    session's token yourself: ``headers={"X-Session": token(sessions, value)}``.

    Args:
        sessions: the app's :class:`~ferrosession.Sessions`.
        value: the session's value (its type picks the registration).
        max_age: as :meth:`~ferrosession.CurrentSessions.set` takes it.

    Raises:
        RuntimeError: called inside a running event loop for a session whose storage is
            async only: ``await atoken(...)`` there.
    """
    return _token_in(sessions.lookup_value(value), _minted(sessions, value, max_age, "token"))


async def atoken(sessions: Any, value: object, *, max_age: Any = None) -> str:
    """:func:`token` in the running event loop (through the ASGI middleware, so an
    async storage is awaited there)."""
    return _token_in(sessions.lookup_value(value), await _aminted(sessions, value, max_age))


def login(client: Any, sessions: Any, value: object, *, max_age: Any = None) -> str:
    """Puts ``value`` into a test client as if a response had set it (a login), and
    returns its token (see :func:`token`)::

        def test_me(client):
            testing.login(client, sessions, Login("ann"))
            assert client.get("/me").json() == "ann"

    The clients: Starlette's / FastAPI's and Litestar's ``TestClient``, ``httpx.Client``
    and ``httpx.AsyncClient`` (a cookie into ``client.cookies``, a header session into
    ``client.headers``), Flask's / Werkzeug's test client (a cookie, or a header into its
    ``environ_base``) and Quart's (cookie sessions).

    Raises:
        TypeError: a client this does not know, or a header session on Quart's client.
    """
    reg = sessions.lookup_value(value)
    headers = _minted(sessions, value, max_age, "login")
    _put(client, reg, headers)
    return _token_in(reg, headers)


async def alogin(client: Any, sessions: Any, value: object, *, max_age: Any = None) -> str:
    """:func:`login` in the running event loop (an async test, an async storage)."""
    reg = sessions.lookup_value(value)
    headers = await _aminted(sessions, value, max_age)
    _put(client, reg, headers)
    return _token_in(reg, headers)


def session_of(response: Any, sessions: Any, key: Any) -> Any:
    """The value a response set for a session (a type or name): read back from its
    ``Set-Cookie`` or header as the next request would read it (verified, server-side
    from the storage); ``None`` when the response set none, or cleared it.

    Takes httpx's responses (Starlette's, FastAPI's, Litestar's ``TestClient``), Flask's
    / Werkzeug's and Quart's test responses.
    """
    reg = sessions.lookup(key)
    sent = _sent_by(response, reg)
    if sent is None:
        return None
    if _async_only(sessions):
        _no_running_loop("session_of", "asession_of")
        return asyncio.run(_aread(sessions, reg, sent))
    from ferrosession.wsgi import open_request_sessions, prepare_sessions

    prepare_sessions(sessions)
    if reg.transport.header:
        environ = {reg.transport.wsgi_key: sent}
    else:
        environ = {"HTTP_COOKIE": f"{reg.name}={sent}"}
    return open_request_sessions(sessions, environ).get(reg.name)


async def asession_of(response: Any, sessions: Any, key: Any) -> Any:
    """:func:`session_of` in the running event loop."""
    reg = sessions.lookup(key)
    sent = _sent_by(response, reg)
    return None if sent is None else await _aread(sessions, reg, sent)


def _minted(sessions: Any, value: object, max_age: Any, name: str) -> list[tuple[str, str]]:
    """The headers of a response that set ``value`` (its storage work done): through the
    WSGI request path, or an ASGI one in an event loop of its own for an async storage."""
    if _async_only(sessions):
        _no_running_loop(name, "a" + name)
        return asyncio.run(_aminted(sessions, value, max_age))
    from ferrosession.wsgi import commit_request_sessions, open_request_sessions, prepare_sessions

    prepare_sessions(sessions)
    current = open_request_sessions(sessions, {})
    current.set(value, max_age=max_age)
    return commit_request_sessions(current, True)


async def _aminted(sessions: Any, value: object, max_age: Any) -> list[tuple[str, str]]:
    """:func:`_minted` through the ASGI middleware, in the running loop."""
    from ferrosession.asgi import SessionMiddleware
    from ferrosession.current import get_sessions

    async def app(scope: Any, receive: Any, send: Any) -> None:
        get_sessions(scope).set(value, max_age=max_age)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return await _asgi_headers(SessionMiddleware(app, sessions), [])


def _async_only(sessions: Any) -> bool:
    """A registration's storage has no plain methods (WSGI cannot serve it)."""
    return any(
        r.home.server and r.home.async_storage and not hasattr(r.home.storage, "aread")
        for r in sessions.registrations
    )


def _no_running_loop(name: str, async_name: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(
        f"{name}() runs an event loop of its own, for an async storage, and one is running "
        f"already: await {async_name}(...) here"
    )


async def _asgi_headers(app: Any, headers: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """The response headers of one request to ``app``."""
    started: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            started.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "server": ("testserver", 80),
        "client": ("testclient", 50000),
    }
    await app(scope, receive, send)
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in started[0]["headers"]]


async def _aread(sessions: Any, reg: Any, sent: str) -> Any:
    from ferrosession.asgi import SessionMiddleware
    from ferrosession.current import get_sessions

    got: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        got.append(get_sessions(scope).get(reg.name))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    if reg.transport.header:
        header = (reg.transport.header_key, sent.encode("latin-1"))
    else:
        header = (b"cookie", f"{reg.name}={sent}".encode("latin-1"))
    await _asgi_headers(SessionMiddleware(app, sessions), [header])
    return got[0]


def _token_in(reg: Any, headers: list[tuple[str, str]]) -> str:
    """The token a response's headers carry for ``reg``."""
    for name, value in headers:
        if name.lower() == reg.transport.response_name.lower():
            if not reg.transport.header:
                pair = value.split(";", 1)[0]
                cookie, _, text = pair.partition("=")
                if cookie.strip() != reg.name:
                    continue
                return text
            return value
    raise AssertionError(f"no {reg.name!r} session in the response headers {headers!r}")


def _set_cookie_line(reg: Any, headers: list[tuple[str, str]]) -> str:
    for name, value in headers:
        if name.lower() == "set-cookie" and value.split("=", 1)[0].strip() == reg.name:
            return value
    raise AssertionError(f"no {reg.name!r} cookie in the response headers {headers!r}")


def _put(client: Any, reg: Any, headers: list[tuple[str, str]]) -> None:
    """Has ``client`` take the session from a response's headers, as it would from a
    real response (its cookie jar: the cookie's path, domain and flags as sent), so the
    app's later ``Set-Cookie`` replaces it."""
    header = reg.transport.header
    kind = type(client).__module__.split(".")[0]
    if hasattr(getattr(client, "cookies", None), "jar"):  # httpx and the TestClients on it
        if header:
            client.headers[reg.name] = _token_in(reg, headers)
            return
        # httpx, or httpx2 (Starlette's TestClient): the client's own classes
        httpx = importlib.import_module(type(client.cookies).__module__.split(".")[0])
        request = httpx.Request("GET", client.base_url)
        response = httpx.Response(
            200, headers=[("set-cookie", _set_cookie_line(reg, headers))], request=request
        )
        client.cookies.extract_cookies(response)
    elif kind in ("flask", "werkzeug"):
        if header:
            client.environ_base[reg.transport.wsgi_key] = _token_in(reg, headers)
            return
        from werkzeug.http import parse_cookie

        line = _set_cookie_line(reg, headers)
        (value,) = parse_cookie(line.split(";", 1)[0]).values()
        # the server name and path the test client stores a response's cookie under
        client.set_cookie(reg.name, value, path=_attribute(line, "path") or "/")
    elif kind == "quart":
        if header:
            raise TypeError(
                "Quart's test client takes no default headers: pass the header session "
                f"per request, headers={{{reg.name!r}: testing.token(sessions, value)}}"
            )
        from werkzeug.http import parse_cookie

        line = _set_cookie_line(reg, headers)
        (value,) = parse_cookie(line.split(";", 1)[0]).values()
        client.set_cookie("localhost", reg.name, value, path=_attribute(line, "path") or "/")
    else:
        raise TypeError(
            f"login() does not know {type(client).__qualname__}: it takes Starlette's, "
            "FastAPI's, Litestar's, httpx's, Flask's and Quart's test clients"
        )


def _attribute(line: str, name: str) -> Optional[str]:
    """A ``Set-Cookie`` line's attribute (``None`` when absent)."""
    for part in line.split(";")[1:]:
        attr, _, value = part.strip().partition("=")
        if attr.lower() == name:
            return value
    return None


def _sent_by(response: Any, reg: Any) -> Any:
    """The token a response sent for ``reg`` (``None``: none, or an expiring cookie)."""
    headers = response.headers
    lines = headers.get_list if hasattr(headers, "get_list") else headers.getlist
    if reg.transport.header:
        values = lines(reg.name)
        return values[-1] if values else None
    found = None
    for line in lines("set-cookie"):
        pair = line.split(";", 1)[0]
        name, _, text = pair.partition("=")
        if name.strip() == reg.name:
            found = text or None  # an expiring cookie carries no value
    return found
