"""A registration's home part: where its value lives.

:class:`ClientHome`: the whole value travels in the cookie or header, through the
transformer chain, with its clocks (timeouts) or its deadline framed in front.
:class:`ServerHome`: only an id travels; the value is in a storage, whose optional
methods (create / update / touch / read_ttl / the owner index) are looked up once.

Each home reads the incoming value into a request's :class:`~ferrosession.state.State`
(``load``), writes a value set in the request (``issue``) and says what the response
gets (``plan``: headers, and storage operations to run first).
"""

import inspect
import logging
from typing import TYPE_CHECKING, Any, Callable, Optional

from ferrosession import _core
from ferrosession.chain import Chain
from ferrosession.errors import ConfigurationError, StorageError
from ferrosession.lifetime import Lifetime
from ferrosession.state import CLEAR, SET, Guard, Header, Op, State
from ferrosession.transport import Transport

if TYPE_CHECKING:
    from ferrosession.current import CurrentSessions

__all__ = ["ClientHome", "ServerHome", "acall", "guarded", "storage_error"]

log = logging.getLogger("ferrosession")


def _deadline_codec(name: str) -> _core.Codec:
    """The codec that frames a per-value deadline (``set(value, max_age=...)``) in
    front of the payload of a registration without timeouts."""
    return _core.Codec(name, header=True, clocks=True)


class _Home:
    """What both homes share: the parts they are made of, and reading a payload into
    the session's type."""

    __slots__ = (
        "adapter",
        "chain",
        "deadline_codec",
        "deadline_prefix",
        "lifetime",
        "name",
        "schema",
        "transport",
        "warned",
    )

    def __init__(
        self,
        name: str,
        transport: Transport,
        chain: Chain,
        lifetime: Lifetime,
        adapter: Any,
        deadline_codec: Optional[_core.Codec],
    ) -> None:
        self.name = name
        self.transport = transport
        self.chain = chain
        self.lifetime = lifetime
        self.adapter = adapter
        # the adapter's reader in Rust (built-in JSON types), for the reads that decode
        # in the same call; None: the adapter's deserialize does it
        self.schema: Optional[_core.Schema] = getattr(adapter, "_fast", None)
        self.deadline_codec = deadline_codec
        # tells a value framed with its deadline from a plain one (JSON never starts so)
        self.deadline_prefix = f"~1:{name}:"
        # the causes of failure already logged at WARNING (see warn_once)
        self.warned: set[tuple[str, str]] = set()

    def accept(self, current: "CurrentSessions", st: State, text: str) -> None:
        """Reads a verified payload into ``st.value`` (and keeps it as ``st.payload``):
        a deadline framed in front is checked first; a payload that does not fit the
        type is an absent session."""
        deadline_codec = self.deadline_codec
        if deadline_codec is not None and text.startswith(self.deadline_prefix):
            clocks = deadline_codec.open_clocks(text, current._now())
            if clocks is None:
                log.debug("session %r: value past its deadline", self.name)
                st.payload = None
                return
            text = clocks.payload
            st.created = clocks.created
            st.deadline = clocks.deadline
        try:
            st.value = self.adapter.deserialize(text)
        except Exception as exc:  # a payload that no longer fits its type: absent
            st.payload = None
            if getattr(self.adapter, "_builtin", False):
                log.debug("session %r: stored value does not deserialize: %r", self.name, exc)
            else:  # a custom serializer raising may be a bug in it
                warn_once(self, "serializer.deserialize", exc)
            return
        st.payload = text

    def serialize(self, value: object) -> str:
        payload = self.adapter.serialize(value)
        if not isinstance(payload, str):
            raise TypeError(
                f"the serializer of {self.name!r} returned {type(payload).__name__}, not str"
            )
        return payload


class ClientHome(_Home):
    """A client-side session: the whole value travels, signed or encrypted by the chain.

    A chain of built-in transformers reads in one Rust call that finds, decodes,
    verifies, checks the clocks and (for the built-in JSON types) reads the value into
    its type; and writes a plain value in one Rust call that writes its JSON, signs or
    seals it and renders the line.
    """

    server = False
    __slots__ = ("fused_write", "load_on_set", "reads_clock", "set_varies")

    def __init__(
        self,
        name: str,
        transport: Transport,
        chain: Chain,
        lifetime: Lifetime,
        adapter: Any,
        *,
        signed: bool,
        send_only_if_modified: bool,
        system_clock: bool,
    ) -> None:
        # a deadline on a value without clocks can be trusted only when the chain
        # authenticates it
        deadline_codec = _deadline_codec(name) if signed and not lifetime.clocks else None
        super().__init__(name, transport, chain, lifetime, adapter, deadline_codec)
        # the codec checks the clocks in Rust: it is given the Sessions clock when that
        # is not the system's (which it reads itself)
        self.reads_clock = lifetime.clocks and not system_clock
        # set() of a plain value in one Rust call (nothing to frame in front)
        self.fused_write = chain.fused and self.schema is not None and not lifetime.clocks
        # set() looks at the incoming value first: to compare it, to carry its clocks
        # on, or to keep the deadline it may carry
        self.load_on_set = send_only_if_modified or lifetime.clocks or deadline_codec is not None
        # ... and the response varies with it, except when set() only looked for a
        # deadline and none came in
        self.set_varies = send_only_if_modified or lifetime.clocks

    def load(self, current: "CurrentSessions", st: State) -> None:
        now = current._now() if self.reads_clock else None
        if self.chain.fused:  # one Rust call finds, verifies and reads it
            self.transport.read(current, st, now, self.schema)
        else:
            self.chain.read(current, self.transport, st, now, self.schema)
        text = st.payload
        if text is None or st.value is not None:
            return
        if self.lifetime.clocks and not self.chain.fused:
            # the chain ran in Python: the codec checks the clocks in front now
            clocks = self.transport.codec.open_clocks(text, current._now())
            if clocks is None:
                log.debug("session %r: value without valid clocks, or ended", self.name)
                st.payload = None
                return
            text = clocks.payload
            st.created = clocks.created
            st.deadline = clocks.deadline
            if clocks.renew:
                st.renew = st.todo = True
        self.accept(current, st, text)

    def issue(self, current: "CurrentSessions", st: State, value: object) -> None:
        """``st.out``: the rendered line that carries ``value``."""
        if self.fused_write and st.new_deadline is None:
            transport = self.transport
            codec = transport.codec_secure if current._https else transport.codec
            max_age = self.lifetime.max_age
            asgi = current._asgi
            out = codec.write_value(self.schema, value, max_age, asgi)  # type: ignore[arg-type]
            if out is None:  # orjson writes it (or raises), as UTF-8 bytes Rust reads as they are
                data = self.adapter._dumps(value)
                out = codec.write_asgi(data, max_age) if asgi else codec.write(data, max_age)
            st.out = out
            return
        st.out = self.render(current, st, self.serialize(value))

    def render(self, current: "CurrentSessions", st: State, payload: str) -> str:
        """The line that carries ``payload`` with its clocks (timeouts) or its deadline
        in front, if it has them; the cookie lives no longer than they allow."""
        lifetime = self.lifetime
        codec = self.transport.codec_for(current._https)
        deadline = st.new_deadline
        if not lifetime.clocks and deadline is None:
            return self.chain.write(codec, payload, lifetime.max_age)
        now = current._now()
        created = st.created if st.created is not None else now
        max_age = lifetime.cookie_age(created, deadline, now, client=True)
        if not lifetime.clocks:
            assert self.deadline_codec is not None  # set() refuses a deadline otherwise
            framed = self.deadline_codec.wrap_clocks(payload, created, deadline, now)
            return self.chain.write(codec, framed, max_age)
        if self.chain.fused:
            return codec.write_clocked(payload, created, deadline, max_age, now)
        framed = self.transport.codec.wrap_clocks(payload, created, deadline, now)
        return self.chain.write(codec, framed, max_age)

    def plan(
        self, current: "CurrentSessions", st: State, headers: list[Header], ops: list[Op]
    ) -> None:
        transport = self.transport
        cookie = not transport.header
        name, key = transport.response_name, transport.response_key
        action = st.action
        if action == SET:
            if not (st.reg.send_only_if_modified and st.unchanged()):
                headers.append((name, key, st.out, cookie, None))
        elif action == CLEAR:
            clear = transport.clearing(current._https)
            if clear is not None and st.present:
                headers.append(("Set-Cookie", b"set-cookie", clear, True, None))
        elif (st.reissue or st.renew) and st.payload is not None:
            # verified by a retired key (issue it under the current one), or an active
            # session whose last_seen is due for renewal
            st.new_deadline = st.deadline
            headers.append((name, key, self.render(current, st, st.payload), cookie, None))


class ServerHome(_Home):
    """A server-side session: only an id travels (through the chain, like a value);
    the value is in the storage under the id's hash, with its clocks in front when the
    registration has timeouts or an owner index, or when it was set with a deadline."""

    server = True
    __slots__ = (
        "async_storage",
        "can_create",
        "can_touch",
        "can_update",
        "hash_ids",
        "identity",
        "load_on_set",
        "principal",
        "reads_ttl",
        "record_codec",
        "set_varies",
        "storage",
        "system_clock",
    )

    def __init__(
        self,
        name: str,
        transport: Transport,
        chain: Chain,
        lifetime: Lifetime,
        adapter: Any,
        storage: Any,
        *,
        hash_ids: bool,
        identity: Callable[[], str],
        principal: Optional[Callable[[Any], Any]],
        system_clock: bool,
    ) -> None:
        super().__init__(
            name,
            transport,
            chain,
            lifetime,
            adapter,
            None if lifetime.clocks else _deadline_codec(name),
        )
        self.storage = storage
        self.async_storage = hasattr(storage, "aread") or inspect.iscoroutinefunction(storage.read)
        self.can_create = offers(storage, "create")
        self.can_update = offers(storage, "update")
        self.can_touch = offers(storage, "touch")
        self.hash_ids = hash_ids
        self.identity = identity
        self.principal = principal
        self.system_clock = system_clock
        # with clocks: the codec that frames and checks the stored record
        self.record_codec: Optional[_core.Codec] = None
        if lifetime.clocks:
            self.record_codec = _core.Codec(
                name,
                header=True,
                clocks=True,
                idle=lifetime.idle,
                absolute=lifetime.absolute,
                refresh=lifetime.refresh,
            )
        # idle renewal by touch: the storage reports an entry's remaining lifetime
        self.reads_ttl = (
            lifetime.idle is not None
            and lifetime.refresh is not None
            and self.can_touch
            and offers(storage, "read_ttl")
            # a storage whose read_ttl costs more than read renews by a rewrite instead
            and getattr(storage, "renew_by_touch", True) is not False
        )
        self.load_on_set = True  # the id, and whether the entry still exists
        self.set_varies = True

    def key(self, session_id: str) -> str:
        """What the storage sees for ``session_id``: its hash bound to this name, or the
        id itself with ``hash_ids=False``."""
        return self.transport.codec.storage_key(session_id) if self.hash_ids else session_id

    def id_hash(self, key: str) -> str:
        """The id hash ``sessions_of`` shows for a storage key (never the id itself)."""
        return key if self.hash_ids else self.transport.codec.storage_key(key)

    def owner_key(self, who: object) -> Optional[str]:
        """The index key of an owner: a hash bound to the session's name."""
        if who is None:
            return None
        if isinstance(who, bool) or not isinstance(who, (str, int)):
            raise TypeError(
                f"the principal of {self.name!r} must give a str or int (or None), not "
                f"{type(who).__name__}"
            )
        return self.transport.codec.storage_key(f"\0owner\0{who}")

    def owner(self, value: object) -> Optional[str]:
        """The index key of the owner of ``value`` (``None``: it has none)."""
        assert self.principal is not None
        return self.owner_key(self.principal(value))

    # -- reading ------------------------------------------------------------------------
    def _incoming_id(self, current: "CurrentSessions", st: State) -> Optional[str]:
        self.chain.read(current, self.transport, st, None, None)
        sid = st.payload
        st.payload = None
        return sid

    def load(self, current: "CurrentSessions", st: State) -> None:
        sid = self._incoming_id(current, st)
        if sid is None:
            return
        if self.async_storage and not hasattr(self.storage, "aread"):
            raise ConfigurationError(
                f"session {self.name!r} has an async storage: it works only under the "
                f"ASGI middleware"
            )
        reader = self.storage.read_ttl if self.reads_ttl else self.storage.read
        self.found(current, st, sid, guarded(self, "read", reader, self.key(sid)))

    async def aload(self, current: "CurrentSessions", st: State) -> None:
        sid = self._incoming_id(current, st)
        if sid is None:
            return
        got = await acall(self, "read_ttl" if self.reads_ttl else "read", self.key(sid))
        self.found(current, st, sid, got)

    def found(self, current: "CurrentSessions", st: State, sid: str, got: Any) -> None:
        """Takes what the storage gave for the incoming id: the text (or ``(text,
        remaining seconds)`` from ``read_ttl``), ``None`` when there is no entry."""
        if got is None:
            st.unknown = st.todo = True
            return
        codec = self.record_codec
        if codec is None:
            st.sid = st.stored_sid = sid
            self.accept(current, st, got)
        else:
            # the record's clocks (and, from read_ttl, the seconds left: the last use)
            # and the payload read into its type, in the same Rust call
            now = None if self.system_clock else current._now()
            if self.reads_ttl:
                alive = codec.open_record(st, got[0], now, got[1], self.schema)
            else:
                alive = codec.open_record(st, got, now, None, self.schema)
            if not alive:  # ended: the entry goes, the cookie is cleared
                st.unknown = st.todo = True
                st.delete_ids = (*st.delete_ids, sid)
                return
            st.sid = st.stored_sid = sid
            if st.value is None:
                self.accept(current, st, st.payload)  # type: ignore[arg-type]
        if self.principal is not None and st.value is not None:
            st.owner_in = self.owner(st.value)

    def open_listed(self, got: Any, now: int) -> Optional[_core.Clocks]:
        """The clocks of an entry ``sessions_of`` lists, or ``None`` when it has ended.
        ``got`` is the text, or ``(text, seconds left)`` from ``read_ttl``, which tells
        when an entry renewed by a touch was last used (the codec works it out)."""
        codec = self.record_codec
        assert codec is not None  # principal= gives every record its clocks
        if self.reads_ttl:
            return codec.open_clocks(got[0], now, None, got[1])
        return codec.open_clocks(got, now)

    # -- writing ------------------------------------------------------------------------
    def issue(self, current: "CurrentSessions", st: State, value: object) -> None:
        """The record, its TTL and ``st.out`` (the line carrying the id; a new id is
        minted when the session has none)."""
        payload = self.serialize(value)
        if st.sid is None:
            sid = self.identity()
            if not isinstance(sid, str) or not sid:
                raise ConfigurationError(
                    f"the identity of {self.name!r} must return a non-empty str"
                )
            st.sid = sid
        st.record, max_age, st.ttl = self.record(current, st, payload)
        st.out = self.chain.write(self.transport.codec_for(current._https), st.sid, max_age)
        if self.principal is not None:
            st.owner_new = self.owner(value)

    def record(
        self, current: "CurrentSessions", st: State, payload: str
    ) -> tuple[str, Optional[int], int]:
        """What the storage gets (the payload, with its clocks or deadline in front when
        it has them; ``last_seen`` = now), the cookie's Max-Age and the storage TTL."""
        lifetime = self.lifetime
        deadline = st.new_deadline
        codec = self.record_codec
        if codec is None:
            if deadline is None:
                return payload, lifetime.max_age, lifetime.entry_age
            codec = self.deadline_codec
            assert codec is not None
        now = current._now()
        created = st.created if st.created is not None else now
        return (
            codec.wrap_clocks(payload, created, deadline, now),
            lifetime.cookie_age(created, deadline, now, client=False),
            lifetime.entry_ttl(created, deadline, now, framed=True),
        )

    def plan(
        self, current: "CurrentSessions", st: State, headers: list[Header], ops: list[Op]
    ) -> None:
        """The storage work and headers of the session. Writes to an entry that exists
        are updates (dropped when a logout deleted it meanwhile), new ids are created,
        and a regenerated session is moved only if its old entry still exists: logout
        wins."""
        transport = self.transport
        cookie = not transport.header
        current_key = self.key(st.sid) if st.sid is not None else None
        for owner, keep, only in st.purges:
            ops.append((self, "_purge", (owner, current_key if keep else None, only), None))
        action = st.action
        setting = action == SET and not st.unchanged()
        regen = st.regen_from if setting else None
        stored = st.stored_sid
        for sid in st.delete_ids:
            if sid != regen:
                ops.append((self, "invalidate", (self.key(sid),), None))
                if sid == stored and st.owner_in is not None:
                    ops.append((self, "index_remove", (st.owner_in, self.key(sid)), None))
        if setting:
            assert st.sid is not None and st.out is not None
            guard = Guard()
            key = self.key(st.sid)
            if regen is not None:
                ops.append((self, "invalidate", (self.key(regen),), guard))
                if st.owner_in is not None:
                    ops.append((self, "index_remove", (st.owner_in, self.key(regen)), None))
            if st.sid == stored:
                op = "update" if self.can_update else "write"
                if st.owner_in is not None and st.owner_in != st.owner_new:
                    ops.append((self, "index_remove", (st.owner_in, key), None))
            else:
                op = "create" if self.can_create else "write"
            ops.append((self, op, (key, st.record, st.ttl), guard))
            if st.owner_new is not None:
                ops.append((self, "index_add", (st.owner_new, key, st.ttl), guard))
            headers.append((transport.response_name, transport.response_key, st.out, cookie, guard))
        elif action == CLEAR or st.unknown:
            # expire the browser's cookie: it was cleared, or names an unknown id
            clear = transport.clearing(current._https)
            if clear is not None and (st.present or st.unknown):
                headers.append(("Set-Cookie", b"set-cookie", clear, True, None))
        elif (st.reissue or st.renew) and st.payload is not None and st.sid is not None:
            guard = Guard()
            key = self.key(st.sid)
            st.new_deadline = st.deadline
            record, max_age, ttl = self.record(current, st, st.payload)
            if st.renew:
                # last_seen is due: a touch where the storage can tell how long an
                # entry has left (that tells the last use), else the record again
                if self.reads_ttl:
                    ops.append((self, "touch", (key, ttl), guard))
                else:
                    op = "update" if self.can_update else "write"
                    ops.append((self, op, (key, record, ttl), guard))
                if st.owner_in is not None:
                    ops.append((self, "index_add", (st.owner_in, key, ttl), guard))
            if st.reissue:  # verified by a retired key: the id again, under the current one
                out = self.chain.write(transport.codec_for(current._https), st.sid, max_age)
                headers.append(
                    (transport.response_name, transport.response_key, out, cookie, guard)
                )

    # -- running the storage work -------------------------------------------------------
    def run(self, op: str, args: tuple[Any, ...]) -> Any:
        """Runs one planned operation with the storage's plain methods."""
        if op == "_purge":
            self.purge(*args)
            return None
        return guarded(self, op, getattr(self.storage, op), *args)

    async def arun(self, op: str, args: tuple[Any, ...]) -> Any:
        """Runs one planned operation the ASGI way (the async forms where there are)."""
        if op == "_purge":
            await self.apurge(*args)
            return None
        return await acall(self, op, *args)

    def purged(self, keys: list[str], keep: Optional[str], only: Optional[str]) -> list[str]:
        """The owner's index keys that invalidate_all (``only`` None, sparing ``keep``) or
        invalidate_one (the key whose id hash is ``only``) ends."""
        if only is not None:
            return [k for k in keys if self.id_hash(k) == only]
        return [k for k in keys if k != keep]

    def purge(self, owner: str, keep: Optional[str], only: Optional[str]) -> None:
        """invalidate_all / invalidate_one: deletes an owner's entries and their index."""
        storage = self.storage
        keys = guarded(self, "index_list", storage.index_list, owner)
        for k in self.purged(keys, keep, only):
            guarded(self, "invalidate", storage.invalidate, k)
            guarded(self, "index_remove", storage.index_remove, owner, k)

    async def apurge(self, owner: str, keep: Optional[str], only: Optional[str]) -> None:
        for k in self.purged(await acall(self, "index_list", owner), keep, only):
            await acall(self, "invalidate", k)
            await acall(self, "index_remove", owner, k)


def offers(storage: Any, method: str) -> bool:
    """Whether a storage offers an optional method (plain, or the async ``a`` form)."""
    return storage is not None and (
        callable(getattr(storage, method, None)) or callable(getattr(storage, "a" + method, None))
    )


def guarded(home: ServerHome, op: str, method: Any, *args: Any) -> Any:
    """Calls a plain storage method; other exceptions than StorageError become one."""
    try:
        return method(*args)
    except StorageError:
        raise
    except Exception as exc:
        raise storage_error(home, op, exc) from exc


async def acall(home: ServerHome, op: str, *args: Any) -> Any:
    """Calls a storage method the ASGI way: the async form when there is one."""
    storage = home.storage
    try:
        method = getattr(storage, "a" + op, None)
        if method is not None:
            return await method(*args)
        if home.async_storage:
            return await getattr(storage, op)(*args)
        return getattr(storage, op)(*args)
    except StorageError:
        raise
    except Exception as exc:
        raise storage_error(home, op, exc) from exc


def storage_error(home: ServerHome, op: str, exc: BaseException) -> StorageError:
    """A StorageError for a storage that failed with another exception (raised ``from``
    it; a storage's own StorageError is re-raised as it is)."""
    warn_once(home, f"storage {op}", exc)
    return StorageError(f"session {home.name!r}: storage {op} failed: {exc!r}")


def warn_once(home: _Home, what: str, exc: BaseException) -> None:
    """Logs a failure of the app's own code (a serializer, a storage) at WARNING, once
    per registration and cause: a bug there logs every user out, and that must show
    without flooding the log with one line per request."""
    cause = (what, type(exc).__qualname__)
    if cause in home.warned:
        log.debug("session %r: %s failed again: %r", home.name, what, exc)
        return
    home.warned.add(cause)  # a race may log twice: harmless
    log.warning(
        "session %r: %s raised %r; the session counts as absent (logged once per cause)",
        home.name,
        what,
        exc,
    )
