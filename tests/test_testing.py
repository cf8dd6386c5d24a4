"""ferrosession.testing.check_storage: passes on every built-in storage, fails on broken ones
with a message naming the rule; and the MemoryStorage details it cannot see."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

import ferrosession as fs
from ferrosession.testing import check_storage

OPTIONAL = ("create", "update", "touch", "read_ttl", "index_add", "index_remove", "index_list")


def fast_clock(speed: float = 20.0) -> Callable[[], float]:
    """A clock running ``speed`` times faster than real time: check_storage's expiry wait
    (polled every 0.1 s of real time) ends after one poll; a 60 s entry lives 3 s."""
    t0 = time.monotonic()
    return lambda: 1e6 + (time.monotonic() - t0) * speed


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- the built-in storages conform ----------------------------------------------------


def test_memory_storage_conforms() -> None:
    check_storage(fs.MemoryStorage())


@pytest.mark.parametrize("max_entries", [None, 50])
def test_memory_storage_conforms_on_a_fast_clock(max_entries: Optional[int]) -> None:
    storage = fs.MemoryStorage(max_entries, clock=fast_clock())
    started = time.monotonic()
    check_storage(storage)
    assert time.monotonic() - started < 2.0
    assert len(storage) == 0  # it cleaned up


def test_memory_storage_offers_every_optional_method() -> None:
    storage = fs.MemoryStorage()
    assert all(callable(getattr(storage, m, None)) for m in OPTIONAL)


@pytest.mark.parametrize("options", [{}, {"cached": False}, {"shared": False}])
def test_directory_storage_conforms(tmp_path: Path, options: dict[str, Any]) -> None:
    check_storage(fs.DirectoryStorage(tmp_path / "s", **options))


def test_redis_storage_conforms(tmp_path: Path) -> None:
    from redis_servers import RedisServer

    node = RedisServer(tmp_path).start()
    try:
        storage = fs.RedisStorage(node.url)
        check_storage(storage)  # the sync methods and the asyncio ones, optional ones too
        storage.close()
    finally:
        node.stop()


class AsyncDict:
    def __init__(self) -> None:
        self.data: dict[str, tuple[str, float]] = {}

    async def read(self, key: str) -> Optional[str]:
        await asyncio.sleep(0)
        entry = self.data.get(key)
        return entry[0] if entry and entry[1] > time.time() else None

    async def write(self, key: str, value: str, ttl: int) -> None:
        self.data[key] = (value, time.time() + ttl)

    async def invalidate(self, key: str) -> None:
        self.data.pop(key, None)


def test_an_async_custom_storage_conforms() -> None:
    check_storage(AsyncDict())


class AsyncOf:
    """Every method of ``inner`` (a sync storage) as ``async def`` under the same name;
    an attribute set to ``None`` on ``inner`` is absent here too."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self.inner, name)
        if fn is None:
            return None

        async def call(*args: Any) -> Any:
            await asyncio.sleep(0)
            return fn(*args)

        return call


class DualOf:
    """A storage with both kinds, like RedisStorage: ``sync``'s methods under their names,
    ``async_``'s as ``async def`` with an ``a`` prefix."""

    def __init__(self, sync: Any, async_: Any) -> None:
        self.sync = sync
        self.async_ = AsyncOf(async_)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("a") and name[1:] in ("read", "write", "invalidate", *OPTIONAL):
            return getattr(self.async_, name[1:])
        return getattr(self.sync, name)


def test_an_all_async_storage_with_every_optional_method_conforms() -> None:
    check_storage(AsyncOf(fs.MemoryStorage(clock=fast_clock())))


def test_a_storage_with_both_kinds_conforms() -> None:
    check_storage(
        DualOf(fs.MemoryStorage(clock=fast_clock()), fs.MemoryStorage(clock=fast_clock()))
    )


def test_old_storages_whose_invalidate_returns_nothing_conform() -> None:
    class Quiet(fs.MemoryStorage):
        def invalidate(self, session_id: str) -> None:  # type: ignore[override]
            super().invalidate(session_id)

    check_storage(Quiet(clock=fast_clock()))


# -- broken storages fail, naming the rule ----------------------------------------------


class Fast(fs.MemoryStorage):
    """A correct storage on a fast clock, to break one rule at a time."""

    def __init__(self) -> None:
        super().__init__(clock=fast_clock())


class NeverExpires(fs.MemoryStorage):
    read_ttl = None  # type: ignore[assignment]  # it would notice the ttl first

    def write(self, session_id: str, value: str, ttl: int) -> None:
        super().write(session_id, value, 10**6)


class Strips(fs.MemoryStorage):
    def write(self, session_id: str, value: str, ttl: int) -> None:
        super().write(session_id, value.strip(), ttl)


class SharedSlot:
    def __init__(self) -> None:
        self.value: Optional[str] = None

    def read(self, key: str) -> Optional[str]:
        return self.value

    def write(self, key: str, value: str, ttl: int) -> None:
        self.value = value

    def invalidate(self, key: str) -> None:
        self.value = None


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        (NeverExpires(), "did not expire"),
        (Strips(), "read back"),
        (SharedSlot(), "writing one key changed another"),
    ],
)
def test_broken_storages_fail_with_a_message(storage: Any, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        check_storage(storage)


class InvalidateAlwaysTrue(Fast):
    def invalidate(self, session_id: str) -> bool:
        super().invalidate(session_id)
        return True


class InvalidateAlwaysFalse(Fast):
    def invalidate(self, session_id: str) -> bool:
        super().invalidate(session_id)
        return False


class InvalidateTrueWhenExpired(Fast):
    def invalidate(self, session_id: str) -> bool:
        present = session_id in self._data
        super().invalidate(session_id)
        return present


class UpdateCreates(Fast):
    def update(self, session_id: str, value: str, ttl: int) -> bool:
        self.write(session_id, value, ttl)
        return True


class UpdateCreatesQuietly(Fast):
    def update(self, session_id: str, value: str, ttl: int) -> bool:
        live = self.read(session_id) is not None
        self.write(session_id, value, ttl)
        return live


class UpdateRevivesExpired(Fast):
    def update(self, session_id: str, value: str, ttl: int) -> bool:
        if session_id not in self._data:  # an expired entry still counts
            return False
        self.write(session_id, value, ttl)
        return True


class UpdateKeepsTtl(Fast):
    def update(self, session_id: str, value: str, ttl: int) -> bool:
        got = self.read_ttl(session_id)
        if got is None:
            return False
        self.write(session_id, value, max(1, int(got[1])))
        return True


class CreateReplaces(Fast):
    def create(self, session_id: str, value: str, ttl: int) -> bool:
        self.write(session_id, value, ttl)
        return True


class CreateReplacesQuietly(Fast):
    def create(self, session_id: str, value: str, ttl: int) -> bool:
        absent = self.read(session_id) is None
        self.write(session_id, value, ttl)
        return absent


class CreateRefusesExpired(Fast):
    def create(self, session_id: str, value: str, ttl: int) -> bool:
        if session_id in self._data:  # an expired entry still counts
            return False
        return super().create(session_id, value, ttl)


class CreateReturnsInt(Fast):
    def create(self, session_id: str, value: str, ttl: int) -> bool:
        return int(super().create(session_id, value, ttl))  # type: ignore[return-value]


class TouchRewrites(Fast):
    def touch(self, session_id: str, ttl: int) -> bool:
        if self.read(session_id) is None:
            return False
        self.write(session_id, "{}", ttl)
        return True


class TouchCreates(Fast):
    def touch(self, session_id: str, ttl: int) -> bool:
        value = self.read(session_id)
        self.write(session_id, value or "", ttl)
        return value is not None


class TouchDoesNothing(Fast):
    read_ttl = None  # type: ignore[assignment]  # it would notice first

    def touch(self, session_id: str, ttl: int) -> bool:
        return self.read(session_id) is not None


class TouchDoesNothingSeenByReadTtl(Fast):
    def touch(self, session_id: str, ttl: int) -> bool:
        return self.read(session_id) is not None


class ReadTtlTooLong(Fast):
    def read_ttl(self, session_id: str) -> Optional[tuple[str, float]]:
        got = super().read_ttl(session_id)
        return None if got is None else (got[0], got[1] + 3600)


class ReadTtlOfExpired(Fast):
    def read_ttl(self, session_id: str) -> Optional[tuple[str, float]]:
        entry = self._data.get(session_id)
        return None if entry is None else (entry[0], max(entry[1] - self._clock(), 0.5))


class ReadTtlValueOnly(Fast):
    def read_ttl(self, session_id: str) -> Any:
        return self.read(session_id)


class IndexRemoveDoesNothing(Fast):
    def index_remove(self, owner: str, session_id: str) -> None:
        pass


class IndexOwnersMix(Fast):
    def index_list(self, owner: str) -> list[str]:
        keys: set[str] = set()
        for other in list(self._index):
            keys.update(super().index_list(other))
        return sorted(keys)


class IndexListsTwice(Fast):
    def __init__(self) -> None:
        super().__init__()
        self.pairs: list[tuple[str, str]] = []

    def index_add(self, owner: str, session_id: str, ttl: int) -> None:
        self.pairs.append((owner, session_id))

    def index_remove(self, owner: str, session_id: str) -> None:
        self.pairs = [p for p in self.pairs if p != (owner, session_id)]

    def index_list(self, owner: str) -> list[str]:
        return [k for o, k in self.pairs if o == owner]


class IndexNeverExpires(Fast):
    def index_add(self, owner: str, session_id: str, ttl: int) -> None:
        super().index_add(owner, session_id, 10**6)


class IndexOwnerTtlIsTheLastOne(Fast):
    """Like a Redis set whose EXPIRE each add resets."""

    def index_add(self, owner: str, session_id: str, ttl: int) -> None:
        super().index_add(owner, session_id, ttl)
        for key in list(self._index[owner]):
            self._index[owner][key] = self._clock() + ttl


class IndexKeepsTheLongerTtl(Fast):
    """Like ZADD GT: a later add of a pair never shortens it."""

    def index_add(self, owner: str, session_id: str, ttl: int) -> None:
        old = self._index.get(owner, {}).get(session_id, 0.0)
        super().index_add(owner, session_id, ttl)
        self._index[owner][session_id] = max(old, self._index[owner][session_id])


class IndexUnknownOwnerIsNone(Fast):
    def index_list(self, owner: str) -> Any:
        return super().index_list(owner) or None


class IndexAddOnly(SharedSlot):
    def index_add(self, owner: str, session_id: str, ttl: int) -> None:
        pass


class IndexWithoutRemove(Fast):
    index_remove = None  # type: ignore[assignment]


class CreateWithoutUpdate(Fast):
    update = None  # type: ignore[assignment]


class UpdateWithoutCreate(Fast):
    create = None  # type: ignore[assignment]


# (storage class, the method the message names, the rule it states)
BROKEN: list[tuple[type, str, str]] = [
    (InvalidateAlwaysTrue, "invalidate", r"returned True for an unknown key"),
    (InvalidateAlwaysFalse, "invalidate", r"returned False for a live entry"),
    (InvalidateTrueWhenExpired, "invalidate", r"returned True for an expired entry"),
    (UpdateCreates, "update", r"returned True for an absent key: it must return False"),
    (UpdateCreatesQuietly, "update", r"of an absent key created it"),
    (UpdateRevivesExpired, "update", r"returned True for an expired entry"),
    (UpdateKeepsTtl, "read_ttl", r"left after update\(key, value, 120\)"),
    (CreateReplaces, "create", r"returned True for a live entry: it must return False"),
    (CreateReplacesQuietly, "create", r"replaced a live value"),
    (CreateRefusesExpired, "create", r"returned False for an expired entry"),
    (CreateReturnsInt, "create", r"must return a bool, not 1"),
    (TouchRewrites, "touch", r"changed the value"),
    (TouchCreates, "touch", r"of an absent key created it"),
    (TouchDoesNothing, "touch", r"did not outlive its original ttl=1.*must extend"),
    (TouchDoesNothingSeenByReadTtl, "read_ttl", r"left after touch\(key, 120\)"),
    (ReadTtlTooLong, "read_ttl", r"reports 36\d\d\.\d+ s left .* at most 60"),
    (ReadTtlOfExpired, "read_ttl", r"of an expired entry must be None"),
    (ReadTtlValueOnly, "read_ttl", r"must return \(value, remaining seconds\) or None"),
    (IndexRemoveDoesNothing, "index_list", r"still lists a removed key"),
    (IndexOwnersMix, "index_list", r"owners mix"),
    (IndexListsTwice, "index_list", r"re-adding must list it once"),
    (IndexNeverExpires, "index_list", r"still lists a member added with ttl=1 after it"),
    (IndexOwnerTtlIsTheLastOne, "index_add", r"must not shorten the owner's record"),
    (IndexKeepsTheLongerTtl, "index_add", r"ttl=60, then again with ttl=1.*must replace"),
    (IndexUnknownOwnerIsNone, "index_list", r"must return a list of keys, not None"),
    (IndexAddOnly, "index_add", r"offers a?index_add\(\) but not a?index_remove\(\), a?index_list"),
    (IndexWithoutRemove, "index_add", r"offers a?index_add\(\) but not a?index_remove\(\):"),
    (CreateWithoutUpdate, "create", r"offers a?create\(\) but not a?update\(\)"),
    (UpdateWithoutCreate, "update", r"offers a?update\(\) but not a?create\(\)"),
]


# Cases that wait out check_storage's whole expiry deadline (about 2 s): the sync shape only.
SLOW = (IndexNeverExpires,)
QUICK = [case for case in BROKEN if case[0] not in SLOW]


def _ids(case: tuple[type, str, str]) -> str:
    return case[0].__name__


@pytest.mark.parametrize("case", BROKEN, ids=_ids)
def test_a_broken_sync_storage_fails_naming_the_rule(case: tuple[type, str, str]) -> None:
    cls, method, rule = case
    with pytest.raises(AssertionError, match=rule) as caught:
        check_storage(cls())
    assert f"{method}()" in str(caught.value) and f"a{method}()" not in str(caught.value)


@pytest.mark.parametrize("case", QUICK, ids=_ids)
def test_a_broken_async_storage_fails_naming_the_rule(case: tuple[type, str, str]) -> None:
    cls, method, rule = case
    with pytest.raises(AssertionError, match=rule) as caught:
        check_storage(AsyncOf(cls()))
    assert f"{method}()" in str(caught.value)


@pytest.mark.parametrize("case", QUICK, ids=_ids)
def test_a_storage_with_broken_async_methods_fails_naming_them(
    case: tuple[type, str, str],
) -> None:
    cls, method, rule = case
    # (a correct sync side: the sets are checked one by one, plain first)
    with pytest.raises(AssertionError, match=rule) as caught:
        check_storage(DualOf(Fast(), cls()))
    assert f"a{method}()" in str(caught.value)


class RacyCreate:
    """An all-async storage whose create checks, then awaits, then stores."""

    def __init__(self) -> None:
        self.inner = fs.MemoryStorage(clock=fast_clock())

    def __getattr__(self, name: str) -> Any:
        return getattr(AsyncOf(self.inner), name)

    async def create(self, key: str, value: str, ttl: int) -> bool:
        if self.inner.read(key) is not None:
            return False
        await asyncio.sleep(0.001)  # another create of the key gets in here
        self.inner.write(key, value, ttl)
        return True


def test_a_create_that_is_not_atomic_fails() -> None:
    with pytest.raises(AssertionError, match=r"concurrent create\(\).*exactly one must win"):
        check_storage(RacyCreate())


class SyncWithAsyncTouch(Fast):
    async def touch(self, session_id: str, ttl: int) -> bool:  # type: ignore[override]
        return super().touch(session_id, ttl)


class AsyncWithPlainTouch:
    def __init__(self) -> None:
        self.inner = AsyncOf(Fast())

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def touch(self, session_id: str, ttl: int) -> bool:
        return bool(self.inner.inner.touch(session_id, ttl))


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        (SyncWithAsyncTouch(), r"touch\(\) returned an awaitable but read\(\) is a plain"),
        (AsyncWithPlainTouch(), r"touch\(\) is a plain method but read\(\) is async def"),
    ],
)
def test_a_storage_mixing_plain_and_async_methods_fails(storage: Any, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        check_storage(storage)


def test_check_storage_cleans_up_after_itself() -> None:
    storage = fs.MemoryStorage(clock=fast_clock())
    check_storage(storage)
    assert len(storage) == 0
    assert storage._index == {}


# -- MemoryStorage details --------------------------------------------------------------


def test_memory_invalidate_says_whether_it_deleted_a_live_entry() -> None:
    clock = ManualClock()
    storage = fs.MemoryStorage(clock=clock)
    storage.write("a", "1", 10)
    storage.write("b", "2", 10)
    assert storage.invalidate("a") is True
    assert storage.invalidate("a") is False
    clock.now += 10
    assert storage.invalidate("b") is False  # expired: not live
    assert len(storage) == 0


def test_memory_conditional_writes_respect_expiry() -> None:
    clock = ManualClock()
    storage = fs.MemoryStorage(clock=clock)
    assert storage.create("a", "1", 10) is True
    assert storage.create("a", "2", 10) is False
    assert storage.touch("a", 20) is True
    clock.now += 15
    assert storage.read_ttl("a") == ("1", 5.0)
    assert storage.update("a", "3", 10) is True
    assert storage.read_ttl("a") == ("3", 10.0)
    clock.now += 10
    assert storage.update("a", "4", 10) is False
    assert storage.touch("a", 10) is False
    assert storage.read_ttl("a") is None
    assert storage.create("a", "5", 10) is True
    assert storage.read("a") == "5"


def test_memory_create_respects_max_entries() -> None:
    storage = fs.MemoryStorage(2, clock=ManualClock())
    for key in "abc":
        assert storage.create(key, key, 10)
    assert len(storage) == 2
    assert storage.read("a") is None and storage.read("c") == "c"


def test_memory_index_prunes_expired_members_and_empty_owners() -> None:
    clock = ManualClock()
    storage = fs.MemoryStorage(clock=clock)
    storage.index_add("ann", "s1", 10)
    storage.index_add("ann", "s2", 30)
    storage.index_add("ann", "s2", 20)  # replaces the ttl
    storage.index_add("bob", "s3", 10)
    clock.now += 10
    assert storage.index_list("ann") == ["s2"]
    assert storage.index_list("bob") == []
    assert "bob" not in storage._index  # dropped once empty
    storage.index_add("ann", "s4", 10)
    assert storage._index["ann"] == {"s2": 1020.0, "s4": 1020.0}
    storage.index_remove("ann", "s2")
    storage.index_remove("ann", "s4")
    storage.index_remove("ann", "s4")
    storage.index_remove("nobody", "s4")
    assert storage._index == {}


def test_memory_index_outlives_an_evicted_entry_only_until_its_ttl() -> None:
    clock = ManualClock()
    storage = fs.MemoryStorage(1, clock=clock)
    storage.write("s1", "1", 10)
    storage.index_add("ann", "s1", 10)
    storage.write("s2", "2", 10)  # evicts s1
    assert storage.read("s1") is None
    assert storage.index_list("ann") == ["s1"]  # lingers: the caller removes stale ones
    clock.now += 10
    assert storage.index_list("ann") == []


def test_memory_gc_prunes_the_index_too() -> None:
    clock = ManualClock()
    storage = fs.MemoryStorage(clock=clock)
    storage.write("s1", "1", 10)
    storage.write("s2", "2", 30)
    storage.index_add("ann", "s1", 10)
    storage.index_add("bob", "s1", 10)
    storage.index_add("bob", "s2", 30)
    clock.now += 10
    assert storage.gc() == 1
    assert storage._index == {"bob": {"s2": 1030.0}}


def test_memory_sweep_reaches_every_owner_of_the_index() -> None:
    clock = ManualClock()
    storage = fs.MemoryStorage(clock=clock)
    for n in range(3000):  # more owners than one sweep looks at
        storage.index_add(f"owner{n}", "s", 1)
    storage.index_add("keeper", "s", 10**6)
    clock.now += 1
    for n in range(40 * 1024):  # writes trigger the bounded sweeps
        storage.write(f"k{n % 10}", "v", 10)
    assert list(storage._index) == ["keeper"]
