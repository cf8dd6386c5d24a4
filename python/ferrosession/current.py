"""Per-request session access: :class:`CurrentSessions` and :func:`get_sessions`.

Nothing is decoded until a handler touches a session: the middleware only keeps a
reference to the request headers. The first ``get``/``set``/``clear``/``regenerate``/
``session_id`` of a session makes one Rust call to find, decode and verify its value
(and, server-side, one storage read). Writes happen when the response starts.
"""

import logging
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple, Optional, TypeVar, Union, overload

from ferrosession import _core
from ferrosession._keys import seconds
from ferrosession.config import Provider, Sessions
from ferrosession.errors import (
    ConfigurationError,
    SessionsNotInstalled,
    StorageError,
    TooLateSessionSet,
)
from ferrosession.transformers import BuiltinTransformer

__all__ = ["SCOPE_KEY", "CurrentSessions", "SessionInfo", "get_sessions"]

T = TypeVar("T")
SCOPE_KEY = "ferrosession"
log = logging.getLogger("ferrosession")

_NONE, _SET, _CLEAR = 0, 1, 2
_new = object.__new__
_DEFAULT: Any = object()  # "the registration's max_age"
_SLACK = _core.RECORD_SLACK  # seconds a stored record outlives its clocks in the storage


class SessionInfo(NamedTuple):
    """One live session of an owner, as :meth:`CurrentSessions.sessions_of` lists it."""

    id_hash: str
    """The session id's hash (unpadded base64url SHA-256, as the storage keys it)."""
    created: datetime
    """When the session began (UTC)."""
    last_seen: datetime
    """When it was last used, to within the ``refresh`` interval (UTC)."""
    current: bool
    """It is the session of the request that asked."""


class _Guard:
    """Storage operations (and the header that goes with them) that stand or fall
    together: once one of them reports ``False`` (the entry it needed is gone, so a
    logout won the race), the rest are skipped and the header is not sent."""

    __slots__ = ("ok",)

    def __init__(self) -> None:
        self.ok = True


# a storage operation: (registration, method name, arguments, guard)
_Op = tuple[Provider, str, tuple[Any, ...], Optional[_Guard]]
# a response header: (name, ASGI name, value, is a session cookie, guard)
_Header = tuple[str, bytes, str, bool, Optional[_Guard]]


class _State:
    """What one request knows and wants for one registered session. The defaults live
    on the class, so a new state costs one attribute write."""

    provider: Provider
    loaded = False  # the incoming value has been looked up
    present = False  # something of this name came in, valid or not
    value: Any = None  # the incoming value
    payload: Optional[str] = None  # its serialized text (when it may be issued again)
    reissue = False  # verified by a retired key: send it again
    unknown = False  # server-side: the incoming id is not in the storage
    sid: Optional[str] = None  # server-side id (incoming and known, or minted)
    action = _NONE
    new: Any = None
    # rendered Set-Cookie / header value of `new` (str; bytes from set's ASGI fast path)
    out: Any = None
    force = False
    delete_ids: tuple[str, ...] = ()
    # lifetimes (registrations with idle_timeout / absolute_timeout)
    created: Optional[int] = None  # when the incoming session began
    deadline: Optional[int] = None  # its per-value end (set(value, max_age=...))
    renew = False  # last_seen is due for renewal: re-issue the value
    new_deadline: Optional[int] = None
    # server-side
    stored_sid: Optional[str] = None  # the incoming id, found in the storage
    regen_from: Optional[str] = None  # regenerate() moved the session off stored_sid
    record: Optional[str] = None  # what the storage gets for `new`
    ttl = 0  # and for how long
    owner_in: Any = None  # the owner of the incoming value (registrations with principal)
    owner_new: Any = None  # the owner of `new`
    # invalidate_all / invalidate_one: (owner key, keep current, only this id hash)
    purges: tuple[tuple[Any, bool, Optional[str]], ...] = ()

    def __init__(self, provider: Provider) -> None:
        self.provider = provider


def _storage_error(provider: Provider, op: str, exc: BaseException) -> StorageError:
    """A StorageError for a storage that failed with another exception (raised ``from``
    it; a storage's own StorageError is re-raised as it is)."""
    _warn_once(provider, f"storage {op}", exc)
    return StorageError(f"session {provider.name!r}: storage {op} failed: {exc!r}")


def _warn_once(p: Provider, what: str, exc: BaseException) -> None:
    """Logs a failure of the app's own code (a serializer, a storage) at WARNING, once
    per registration and cause: a bug there logs every user out, and that must show
    without flooding the log with one line per request."""
    cause = (what, type(exc).__qualname__)
    if cause in p.warned:
        log.debug("session %r: %s failed again: %r", p.name, what, exc)
        return
    p.warned.add(cause)  # a race may log twice: harmless
    log.warning(
        "session %r: %s raised %r; the session counts as absent (logged once per cause)",
        p.name,
        what,
        exc,
    )


def _rejected(p: Provider, exc: BaseException) -> None:
    """A payload that came in verified but does not read as its type. From a built-in
    serializer that is an old or foreign value (DEBUG); a custom serializer raising may
    be a bug in it (WARNING, once per cause)."""
    if getattr(p.serializer, "_builtin", False):
        log.debug("session %r: stored value does not deserialize: %r", p.name, exc)
    else:
        _warn_once(p, "serializer.deserialize", exc)


class CurrentSessions:
    """The sessions of one request. Get it with :func:`get_sessions`."""

    __slots__ = ("_config", "_dirty", "_headers", "_https", "_started", "_states")

    def __init__(self, config: Sessions, https: bool = False) -> None:
        self._headers: Any = None  # an ASGI request's header list
        self._config = config
        self._https = https  # the request came over https (for secure="auto")
        self._states: dict[Provider, _State] = {}
        self._started = False
        # something to send or store when the response starts: True, or (ASGI, when all
        # there is to send is the Vary header of one session read) that header
        self._dirty: Any = False

    # -- request access, specialised by the ASGI and WSGI subclasses -----------------
    def _raw(self, provider: Provider) -> Optional[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _read_rust(self, p: Provider) -> Optional[tuple[Any, ...]]:
        """One Rust call for a chain of built-in transformers: ``None`` when nothing of
        that name came in, else ``(payload or None, reissue)``, and for a registration
        with lifetimes ``(payload, reissue, created, deadline, renew)``."""
        raw = self._raw(p)
        if raw is None:
            return None
        now = int(self._config._clock()) if p.cookie_clock else None
        if p.header:
            return p.codec.read_value(raw, now)
        return p.codec.read_cookie(raw, now)

    # -- loading ----------------------------------------------------------------------
    def _decode(self, st: _State) -> Optional[str]:
        """Finds and verifies the incoming value: the payload (client-side) or the id."""
        p = st.provider
        if p.rust_chain:
            found = self._read_rust(p)
            if found is None:
                return None
            payload: Optional[str] = found[0]
            reissue: bool = found[1]
            if len(found) == 5:  # lifetimes, checked in Rust
                st.created, st.deadline = found[2], found[3]
                if found[4]:
                    st.renew = True
                    self._dirty = True
        else:
            raw = self._raw(p)
            if raw is None:
                return None
            if not p.header:
                raw = p.codec.find_cookie(raw)
                if raw is None:
                    return None
            payload, reissue = _read_chain(p, raw)
        st.present = True
        if reissue:
            st.reissue = True
            self._dirty = True
        return payload

    def _accept(self, st: _State, text: Optional[str]) -> None:
        if text is None:
            return
        p = st.provider
        if p.clocks and not p.rust_chain and p.storage is None:
            text = self._open_clocks(st, text)
            if text is None:
                return
        elif p.deadline_codec is not None and text.startswith(p.deadline_prefix):
            text = self._open_deadline(st, text)
            if text is None:
                return
        try:
            st.value = p.serializer.deserialize(text)
        except Exception as exc:  # a payload that no longer fits its type: absent
            _rejected(p, exc)
            return
        st.payload = text

    def _open_deadline(self, st: _State, text: str) -> Optional[str]:
        """A value set with a per-value ``max_age`` on a registration without timeouts
        carries its deadline in front: the payload, or ``None`` once it has passed."""
        p = st.provider
        assert p.deadline_codec is not None
        alive = p.deadline_codec.open_clocks(text, int(self._config._clock()))
        if alive is None:
            log.debug("session %r: value past its deadline", p.name)
            return None
        payload, st.created, _, st.deadline, _ = alive
        return payload

    def _open_clocks(self, st: _State, text: str) -> Optional[str]:
        """For a chain that runs partly in Python: the codec checks the lifetimes carried
        in front of the payload; the payload, or ``None`` for an ended session (or one
        without clocks, or another session's name)."""
        p = st.provider
        alive = p.codec.open_clocks(text, int(self._config._clock()))
        if alive is None:
            log.debug("session %r: value without valid clocks, or ended", p.name)
            return None
        payload, st.created, _, st.deadline, renew = alive
        if renew:
            st.renew = True
            self._dirty = True
        return payload

    def _load_sync(self, st: _State) -> None:
        st.loaded = True
        self._dirty = True  # read: the response varies with it
        p = st.provider
        decoded = self._decode(st)
        if decoded is None or p.storage is None:
            self._accept(st, decoded)
            return
        if p.async_storage and not hasattr(p.storage, "aread"):
            raise ConfigurationError(
                f"session {p.name!r} has an async storage: it works only under the ASGI middleware"
            )
        try:
            storage = p.storage
            reader = storage.read_ttl if p.reads_ttl else storage.read
            text = reader(p.key(decoded))
        except StorageError:
            raise
        except Exception as exc:
            raise _storage_error(p, "read", exc) from exc
        self._found(st, decoded, text)

    async def _load_async(self, st: _State) -> None:
        st.loaded = True
        self._dirty = True
        p = st.provider
        decoded = self._decode(st)
        if decoded is None:
            return
        storage = p.storage
        try:
            if p.reads_ttl:
                reader = getattr(storage, "aread_ttl", None) or storage.read_ttl
            else:
                reader = getattr(storage, "aread", None) or storage.read
            text = await reader(p.key(decoded))
        except StorageError:
            raise
        except Exception as exc:
            raise _storage_error(p, "read", exc) from exc
        self._found(st, decoded, text)

    def _found(self, st: _State, sid: str, got: Any) -> None:
        """Takes what the storage gave for the incoming id: the text (or ``(text,
        remaining seconds)`` from ``read_ttl``), ``None`` when there is no entry."""
        if got is None:
            st.unknown = True
            self._dirty = True
            return
        p = st.provider
        codec = p.record_codec
        value = None
        if codec is None:
            text: Optional[str] = got
        else:
            # the record's clocks (and, from read_ttl, the seconds left: the last use)
            # and the payload read into its type, in the same Rust call
            config = self._config
            now = None if config._system_clock else int(config._clock())
            if p.reads_ttl:
                alive = codec.open_record(got[0], now, got[1], p.schema)
            else:
                alive = codec.open_record(got, now, None, p.schema)
            if alive is None:  # ended: the entry goes, the cookie is cleared
                st.unknown = True
                st.delete_ids = (*st.delete_ids, sid)
                self._dirty = True
                return
            text, st.created, st.deadline, renew, value = alive
            if renew:
                st.renew = True
        st.sid = st.stored_sid = sid
        if value is not None:  # read in Rust
            st.value = value
            st.payload = text
        else:
            self._accept(st, text)
        if p.principal is not None and st.value is not None:
            st.owner_in = _owner(p, st.value)

    def _state(self, provider: Provider, load: bool = True) -> _State:
        st = self._states.get(provider)
        if st is None:
            st = self._states[provider] = _State(provider)
        if load and not st.loaded:
            self._load_sync(st)
        return st

    async def _preload(self) -> None:
        """Reads every async storage whose id came in (ASGI, before the handler)."""
        for p in self._config.providers:
            if p.async_storage and p not in self._states and self._raw(p) is not None:
                st = self._states[p] = _State(p)
                await self._load_async(st)

    # -- public API -------------------------------------------------------------------
    @overload
    def get(self, key: type[T]) -> Optional[T]: ...
    @overload
    def get(self, key: str) -> Any: ...
    def get(self, key: Union[type[Any], str]) -> Any:
        """The value set in this request, else the incoming one, else ``None``.

        Args:
            key: the session's registered type or name.
        """
        config = self._config
        p = config._lookup.get(key)
        if p is None:
            p = config.lookup(key)  # raises SessionNotRegistered
        st = self._states.get(p)
        if st is None:
            st = self._states[p] = _new(_State)  # _State(p), without the call of __init__
            st.provider = p
            if not p.fast_get:
                clean = not self._dirty  # nothing else to send or store yet
                self._load_sync(st)
                if clean and self._headers is not None and _read_only(st):
                    self._dirty = p.vary_asgi  # all the response gets (_ASGISessions._send)
                return st.value
            # The common case in one go (what _load_sync, _decode and _accept do for a
            # client-side value through built-in transformers).
            st.loaded = True
            clean = not self._dirty  # nothing else to send or store yet
            self._dirty = True  # read: the response varies with it
            headers = self._headers
            schema = p.schema
            if headers is None or schema is None:
                return self._got(st, self._read_rust(p))
            # ASGI: one Rust call finds, verifies and reads the value into its type
            now = int(config._clock()) if p.cookie_clock else None
            found = p.codec.read_asgi(headers, now, schema)
            if found is None:
                if clean:  # all the response gets: Vary (see _ASGISessions._send)
                    self._dirty = p.vary_asgi
                return None
            st.present = True
            if type(found) is not tuple:  # the value, and nothing more to do
                if clean:
                    self._dirty = p.vary_asgi
                st.value = found
                return found
            # (payload, reissue, [created, deadline, renew,] value): the payload only
            # when it is needed (to issue it again, or for the serializer to decide)
            if found[1]:
                st.reissue = True
            if len(found) > 4:  # lifetimes, checked in Rust
                st.created, st.deadline = found[2], found[3]
                if found[4]:
                    st.renew = True
            value = found[-1]
            if value is not None:
                st.value = value
                st.payload = found[0]
            elif found[0] is not None:
                self._accept(st, found[0])  # the serializer decides, and reports
            if clean and not st.reissue and not st.renew:
                self._dirty = p.vary_asgi
            return st.value
        if not st.loaded:
            self._load_sync(st)
        if st.action == _SET:
            return st.new
        return st.value

    def _got(self, st: _State, found: Optional[tuple[Any, ...]]) -> Any:
        """`get`'s common case, without the fused read: takes what `_read_rust` found
        (see `_decode`) and reads it into the type."""
        if found is None:
            return None
        st.present = True
        if found[1]:
            st.reissue = True
        if len(found) == 5:  # lifetimes, checked in Rust
            st.created, st.deadline = found[2], found[3]
            if found[4]:
                st.renew = True
        text = found[0]
        if text is None:
            return None
        fast = st.provider.fast_decode
        if fast is not None:
            try:
                value = fast(text)
            except Exception as exc:  # a default_factory raised: absent, as in _accept
                _rejected(st.provider, exc)
                return None
            if value is not None:
                st.value = value
                st.payload = text
                return value
        self._accept(st, text)
        return st.value

    def set(self, value: object, *, max_age: Union[int, timedelta, None] = None) -> None:
        """Sets the session of ``value``'s type; sent when the response starts.

        Args:
            value: the new value (its type picks the registration).
            max_age: a lifetime for this value ("remember me"), enforced by the server:
                it fixes a deadline that neither renewal nor a later ``set`` extends, and
                the cookie's Max-Age and the storage entry follow it. Client-side it
                travels inside the signed or encrypted value (an unauthenticated
                registration refuses it).

        Raises:
            TypeError: ``value`` is ``None`` (use :meth:`clear`).
            SessionNotRegistered: no session is registered for that type.
            SessionTooLarge: the value would not fit in its cookie or header.
            TooLateSessionSet: the response has already started.
        """
        if value is None:
            raise TypeError("set(None) is not a clear: call clear(T) to end a session")
        provider = self._config._by_type.get(type(value))
        if provider is None:
            provider = self._config.lookup_value(value)
        if self._started:
            self._too_late("set")
        states = self._states
        st = states.get(provider)
        if (
            provider.fast_set
            and max_age is None
            # no per-value deadline to carry on: none came in, or what came in has none
            and (
                (st.deadline is None if st.loaded else self._raw(provider) is None)
                if st is not None
                else provider.deadline_codec is None or self._raw(provider) is None
            )
        ):
            # The common case in one go (what _state and _set do for it): serialize,
            # then one Rust call signs (or seals) and renders the Set-Cookie line.
            if st is None:
                st = states[provider] = _new(_State)
                st.provider = provider
            codec = (
                provider.codec_secure if self._https and provider.secure_auto else provider.codec
            )
            # Rust writes the JSON of a plain value itself (orjson's, byte for byte);
            # under ASGI the line comes as the bytes the header takes
            asgi = self._headers is not None
            schema: Any = provider.schema  # fast_set: not None
            out = codec.write_value(schema, value, provider.cookie_max_age, asgi)
            if out is None:  # orjson writes it (or raises), as UTF-8 bytes Rust reads as they are
                data = provider.serializer._dumps(value)
                if asgi:
                    out = codec.write_asgi(data, provider.cookie_max_age)
                else:
                    out = codec.write(data, provider.cookie_max_age)
            st.out = out
            st.action = _SET
            st.new = value
            st.force = False
            dirty = self._dirty
            if asgi and len(states) == 1 and (not dirty or type(dirty) is not bool):
                # This session is all the response gets (nothing else was read, set or
                # cleared; a read of it, if any, was plain): the headers _start would
                # add, for _ASGISessions._send to add as they are.
                if st.loaded:
                    self._dirty = [(provider.response_key, out), provider.vary_asgi]
                else:
                    self._dirty = [(provider.response_key, out)]
            else:
                self._dirty = True
            return
        # A client-side value replaces the incoming one without reading it unless it
        # must be compared, or its clocks or deadline carry on; a server-side one needs
        # the id.
        load = (
            provider.storage is not None
            or provider.send_only_if_modified
            or provider.clocks
            or provider.deadline_codec is not None
        )
        st = self._state(provider, load)
        if max_age is not None:
            if not provider.clocks and provider.deadline_codec is None:
                raise ConfigurationError(
                    f"set(value, max_age=...) on {provider.name!r}: nothing authenticates "
                    f"this client-side value, so a client could change its deadline: add "
                    f"MessageAuthentication(key) or Encrypt(key) to transformers, or give "
                    f"it a storage"
                )
            age = seconds(max_age, "max_age")
            assert age is not None
            deadline = int(self._config._clock()) + age
            current = st.new_deadline if st.action == _SET else st.deadline
            st.new_deadline = deadline if current is None else min(current, deadline)
        elif st.action != _SET:
            st.new_deadline = st.deadline
        self._set(st, value, force=False)

    def _set(self, st: _State, value: object, *, force: bool) -> None:
        p = st.provider
        payload = p.serializer.serialize(value)
        if not isinstance(payload, str):
            raise TypeError(
                f"the serializer of {p.name!r} returned {type(payload).__name__}, not str"
            )
        if p.storage is None:
            out = self._write_clocked(st, payload) if p.clocks else self._write_plain(st, payload)
        else:
            if st.sid is None:
                st.sid = _mint(p)
            if p.record_codec is None:
                st.record, cookie_age, st.ttl = self._plain_record(st, payload)
            else:
                st.record, cookie_age, st.ttl = self._record(st, payload)
            out = self._write(p, st.sid, cookie_age)
            if p.principal is not None:
                st.owner_new = _owner(p, value)
        st.action = _SET
        st.new = value
        st.out = out
        st.force = force
        self._dirty = True

    def clear(self, key: Union[type[Any], str]) -> None:
        """Ends the session: ``get`` returns ``None``; an expiring cookie goes out if one
        came in; a server-side entry is deleted."""
        self._check_not_started("clear")
        st = self._state(self._config.lookup(key))
        _retire_id(st)
        self._dirty = True
        st.action = _CLEAR
        st.created = st.deadline = st.new_deadline = None  # a later set starts anew
        st.value = None
        st.payload = None
        st.new = None
        st.out = None

    def regenerate(self, key: Union[type[Any], str]) -> None:
        """Server-side: moves the session to a new id (same data) and deletes the old
        entry; call it on login. Client-side: issues the value again."""
        self._check_not_started("regenerate")
        st = self._state(self._config.lookup(key))
        value = st.new if st.action == _SET else st.value
        if value is None:
            return
        if st.sid is not None and st.sid == st.stored_sid:
            st.regen_from = st.sid  # the new entry is made only if this one still exists
        _retire_id(st)
        if st.action != _SET:
            st.new_deadline = st.deadline
        self._set(st, value, force=True)

    def session_id(self, key: Union[type[Any], str]) -> Optional[str]:
        """The server-side id of the session, or ``None`` when there is none.

        Raises:
            ConfigurationError: the session is client-side.
        """
        provider = self._config.lookup(key)
        if provider.storage is None:
            raise ConfigurationError(
                f"session {provider.name!r} is client-side: it has no id (give it a storage)"
            )
        return self._state(provider).sid

    def invalidate(self, key: Union[type[Any], str], session_id: str) -> None:
        """Deletes another id's entry when the response starts (log out other devices)."""
        provider = self._config.lookup(key)
        if provider.storage is None:
            raise ConfigurationError(
                f"session {provider.name!r} is client-side: there is no entry to invalidate"
            )
        if not isinstance(session_id, str):
            raise TypeError("session_id must be a str")
        self._check_not_started("invalidate")
        st = self._state(provider, load=False)
        st.delete_ids = (*st.delete_ids, session_id)
        self._dirty = True

    def sessions_of(self, key: Union[type[Any], str], who: Union[str, int]) -> list[SessionInfo]:
        """The live sessions of an owner (as the registration's ``principal`` names
        owners), for a "your devices" page. Uses the storage's plain methods: under ASGI
        with an async storage, ``await`` :meth:`asessions_of` instead.

        Args:
            key: the session's registered type or name (registered with ``principal``).
            who: the owner, as ``principal`` returns it.
        """
        p, owner = self._indexed(key, who)
        if p.async_storage and not hasattr(p.storage, "aread"):
            raise ConfigurationError(
                f"session {p.name!r} has an async storage: use await asessions_of(...)"
            )
        self._state(p)  # this request's own session, to mark it
        storage = p.storage
        found = []
        for k in storage.index_list(owner):
            got = _guarded(p, "read", storage.read_ttl if p.reads_ttl else storage.read, k)
            found.append((k, got))
        return self._infos(p, owner, who, found, lambda k: storage.index_remove(owner, k))

    async def asessions_of(
        self, key: Union[type[Any], str], who: Union[str, int]
    ) -> list[SessionInfo]:
        """Like :meth:`sessions_of`, with the storage's async methods."""
        p, owner = self._indexed(key, who)
        if not p.async_storage:
            self._state(p)  # this request's own session (async ones are read already)
        keys = await _acall(p, "index_list", owner)
        found = []
        for k in keys:
            found.append((k, await _acall(p, "read_ttl" if p.reads_ttl else "read", k)))
        stale: list[str] = []
        infos = self._infos(p, owner, who, found, stale.append)
        for k in stale:
            await _acall(p, "index_remove", owner, k)
        return infos

    def invalidate_all(
        self, key: Union[type[Any], str], who: Union[str, int], *, keep_current: bool = True
    ) -> None:
        """Ends every session of an owner when the response starts ("log out
        everywhere"; also after a password change), except this request's own session
        when ``keep_current`` is true.

        Args:
            key: the session's registered type or name (registered with ``principal``).
            who: the owner, as ``principal`` returns it.
            keep_current: spare the session of this request.
        """
        p, owner = self._indexed(key, who)
        self._check_not_started("invalidate")
        st = self._state(p, load=False)
        st.purges = (*st.purges, (owner, bool(keep_current), None))
        self._dirty = True

    def invalidate_one(
        self, key: Union[type[Any], str], who: Union[str, int], id_hash: str
    ) -> None:
        """Ends one session of an owner when the response starts: the one
        :meth:`sessions_of` lists with this ``id_hash`` ("log out that device"). An
        ``id_hash`` that is not among the owner's live sessions ends nothing (so one
        owner cannot end another's). When it is this request's own session, this is
        :meth:`clear`.

        Args:
            key: the session's registered type or name (registered with ``principal``).
            who: the owner, as ``principal`` returns it.
            id_hash: the ``SessionInfo.id_hash`` of the session to end.
        """
        p, owner = self._indexed(key, who)
        if not isinstance(id_hash, str):
            raise TypeError("id_hash must be a str (a SessionInfo.id_hash)")
        self._check_not_started("invalidate")
        st = self._state(p)  # this request's own session, to recognise it
        value = st.new if st.action == _SET else st.value
        if (
            st.sid is not None
            and value is not None
            and _id_hash(p, p.key(st.sid)) == id_hash
            and _owner(p, value) == owner
        ):
            self.clear(key)
            return
        st.purges = (*st.purges, (owner, False, id_hash))
        self._dirty = True

    def _indexed(self, key: Union[type[Any], str], who: object) -> tuple[Provider, str]:
        p = self._config.lookup(key)
        if p.principal is None:
            raise ConfigurationError(
                f"session {p.name!r} was registered without principal=: it keeps no per-owner index"
            )
        owner = _owner_key(p, who)
        if owner is None:
            raise TypeError("who must be a str or int (as principal returns it), not None")
        return p, owner

    def _infos(
        self,
        p: Provider,
        owner: str,
        who: object,
        found: list[tuple[str, Any]],
        stale: Any,
    ) -> list[SessionInfo]:
        """The listed entries that are alive and still belong to ``who``; the others
        are passed to ``stale`` (the index forgets them)."""
        now = int(self._config._clock())
        st = self._states.get(p)
        current = p.key(st.sid) if st is not None and st.sid is not None else None
        infos = []
        for k, got in found:
            alive = None if got is None else _open_record(p, got, now)
            value = None
            if alive is not None:
                try:
                    value = p.serializer.deserialize(alive[0])
                except Exception:  # no longer fits its type: not a live session
                    value = None
            if value is None or _owner_key(p, _principal(p, value)) != owner:
                stale(k)
                continue
            _, created, last_seen, _, _ = alive  # type: ignore[misc]
            infos.append(
                SessionInfo(
                    _id_hash(p, k),
                    datetime.fromtimestamp(created, timezone.utc),
                    datetime.fromtimestamp(last_seen, timezone.utc),
                    k == current,
                )
            )
        return infos

    def _check_not_started(self, what: str) -> None:
        if self._started:
            self._too_late(what)

    @staticmethod
    def _too_late(what: str) -> None:
        raise TooLateSessionSet(
            f"it is too late to {what} a session: the response has already started"
        )

    def _write(self, p: Provider, payload: str, max_age: Any = _DEFAULT) -> str:
        return _write(p, payload, self._https and p.secure_auto, max_age)

    def _write_plain(self, st: _State, payload: str) -> str:
        """A client-side value without timeouts: as it is, or, set with a per-value
        ``max_age``, with its deadline in front and a cookie that lives until then."""
        p = st.provider
        deadline = st.new_deadline
        if deadline is None:
            return self._write(p, payload)
        assert p.deadline_codec is not None  # set() refuses a deadline otherwise
        now = int(self._config._clock())
        created = st.created if st.created is not None else now
        framed = p.deadline_codec.wrap_clocks(payload, created, deadline, now)
        return self._write(p, framed, max(0, deadline - now))

    def _plain_record(self, st: _State, payload: str) -> tuple[str, Any, int]:
        """Server-side, without timeouts: the stored record, the cookie's Max-Age and
        the storage TTL. A per-value deadline goes in front of the payload, and the
        entry and the cookie both live until then; else the registration's max_age
        rules both."""
        p = st.provider
        deadline = st.new_deadline
        if deadline is None:
            return payload, _DEFAULT, p.storage_ttl
        assert p.deadline_codec is not None
        now = int(self._config._clock())
        created = st.created if st.created is not None else now
        left = max(0, deadline - now)
        record = p.deadline_codec.wrap_clocks(payload, created, deadline, now)
        return record, left, max(1, left) + _SLACK

    def _write_clocked(self, st: _State, payload: str) -> str:
        """The value with its clocks in front. The cookie lives as long as they allow:
        until the per-value deadline when there is one, else the registration's max_age
        (none: a browser-session cookie, timeouts or not)."""
        p = st.provider
        now = int(self._config._clock())
        created = st.created if st.created is not None else now
        deadline = st.new_deadline
        max_age = p.cookie_max_age if deadline is None else max(0, deadline - now)
        if max_age is not None:
            if p.idle is not None:
                max_age = min(max_age, p.idle)
            if p.absolute is not None:
                max_age = min(max_age, max(0, created + p.absolute - now))
        if p.rust_chain:
            codec = p.codec_secure if self._https and p.secure_auto else p.codec
            return codec.write_clocked(payload, created, deadline, max_age, now)
        return self._write(p, p.codec.wrap_clocks(payload, created, deadline, now), max_age)

    def _record(self, st: _State, payload: str) -> tuple[str, Optional[int], int]:
        """Server-side, with clocks: the stored record (the payload with its clocks in
        front, ``last_seen`` = now), the cookie's Max-Age and the storage TTL.

        The entry lives until the session's own end (the idle timeout, renewed by a
        touch; the absolute one; the per-value deadline), else for the registration's
        max_age. The cookie lives until the per-value deadline when there is one, else
        for the registration's max_age (none: a browser-session cookie), never past
        the absolute end (idleness is the server's to judge: a touch renews the entry,
        not the cookie)."""
        p = st.provider
        assert p.record_codec is not None
        now = int(self._config._clock())
        created = st.created if st.created is not None else now
        deadline = st.new_deadline
        caps = []
        if p.absolute is not None:
            caps.append(max(0, created + p.absolute - now))
        if deadline is not None:
            caps.append(max(0, deadline - now))
        cap = min(caps) if caps else None
        cookie_age = p.cookie_max_age if deadline is None else cap
        if cookie_age is not None and cap is not None:
            cookie_age = min(cookie_age, cap)
        own = [t for t in (p.idle, cap) if t is not None]
        ttl = min(own) if own else p.storage_ttl
        record = p.record_codec.wrap_clocks(payload, created, deadline, now)
        # one second over: the record's clocks decide the last second, not the storage
        return record, cookie_age, max(1, ttl) + _SLACK

    # -- commit -----------------------------------------------------------------------
    def _plan(self) -> tuple[list[_Header], list[_Op]]:
        """What the response gets: the headers to add and the storage operations to run
        first (see :func:`_sent` for the headers that then go out)."""
        headers: list[_Header] = []
        ops: list[_Op] = []
        vary: list[str] = []
        for p, st in self._states.items():
            if st.loaded and p.vary not in vary:  # read: the response depends on it
                vary.append(p.vary)
            if p.storage is not None:
                self._plan_server(p, st, headers, ops)
                continue
            action = st.action
            if action == _SET:
                if _unchanged(p, st):
                    continue
                assert st.out is not None
                headers.append((p.response_name, p.response_key, st.out, not p.header, None))
            elif action == _CLEAR:
                # Expire the browser's cookie.
                clear = p.clear_line_secure if self._https else p.clear_line
                if clear is not None and st.present:
                    headers.append(("Set-Cookie", b"set-cookie", clear, True, None))
            elif (st.reissue or st.renew) and st.payload is not None:
                # Verified by a retired key (issue it under the current one), or an active
                # session whose last_seen is due for renewal.
                st.new_deadline = st.deadline
                if p.clocks:
                    out = self._write_clocked(st, st.payload)
                else:
                    out = self._write_plain(st, st.payload)
                headers.append((p.response_name, p.response_key, out, not p.header, None))
        if vary:
            value = vary[0] if len(vary) == 1 else ", ".join(vary)
            headers.append(("Vary", b"vary", value, False, None))
        return headers, ops

    def _plan_server(self, p: Provider, st: _State, headers: list[_Header], ops: list[_Op]) -> None:
        """The storage work and headers of one server-side session. Writes to an entry
        that exists are updates (dropped when a logout deleted it meanwhile), new ids are
        created, and a regenerated session is moved only if its old entry still exists:
        logout wins."""
        cookie = not p.header
        current = p.key(st.sid) if st.sid is not None else None
        for owner, keep, only in st.purges:
            ops.append((p, "_purge", (owner, current if keep else None, only), None))
        action = st.action
        setting = action == _SET and not _unchanged(p, st)
        regen = st.regen_from if setting else None
        stored = st.stored_sid
        for sid in st.delete_ids:
            if sid != regen:
                ops.append((p, "invalidate", (p.key(sid),), None))
                if sid == stored and st.owner_in is not None:
                    ops.append((p, "index_remove", (st.owner_in, p.key(sid)), None))
        if setting:
            assert st.sid is not None and st.out is not None
            guard = _Guard()
            key = p.key(st.sid)
            if regen is not None:
                ops.append((p, "invalidate", (p.key(regen),), guard))
                if st.owner_in is not None:
                    ops.append((p, "index_remove", (st.owner_in, p.key(regen)), None))
            if st.sid == stored:
                op = "update" if p.can_update else "write"
                if st.owner_in is not None and st.owner_in != st.owner_new:
                    ops.append((p, "index_remove", (st.owner_in, key), None))
            else:
                op = "create" if p.can_create else "write"
            ops.append((p, op, (key, st.record, st.ttl), guard))
            if st.owner_new is not None:
                ops.append((p, "index_add", (st.owner_new, key, st.ttl), guard))
            headers.append((p.response_name, p.response_key, st.out, cookie, guard))
        elif action == _CLEAR or st.unknown:
            # Expire the browser's cookie: it was cleared, or names an unknown id.
            clear = p.clear_line_secure if self._https else p.clear_line
            if clear is not None and (st.present or st.unknown):
                headers.append(("Set-Cookie", b"set-cookie", clear, True, None))
        elif (st.reissue or st.renew) and st.payload is not None and st.sid is not None:
            guard = _Guard()
            key = p.key(st.sid)
            cookie_age: Any = _DEFAULT
            if p.record_codec is None and st.deadline is not None:
                cookie_age = max(0, st.deadline - int(self._config._clock()))
            elif p.record_codec is not None:
                st.new_deadline = st.deadline
                record, cookie_age, ttl = self._record(st, st.payload)
                if st.renew:
                    # last_seen is due: a touch where the storage can tell how long an
                    # entry has left (that tells the last use), else the record again
                    if p.reads_ttl:
                        ops.append((p, "touch", (key, ttl), guard))
                    else:
                        op = "update" if p.can_update else "write"
                        ops.append((p, op, (key, record, ttl), guard))
                    if st.owner_in is not None:
                        ops.append((p, "index_add", (st.owner_in, key, ttl), guard))
            if st.reissue:  # verified by a retired key: the id again, under the current one
                out = self._write(p, st.sid, cookie_age)
                headers.append((p.response_name, p.response_key, out, cookie, guard))

    def _simple(self) -> Optional[tuple[Provider, _State]]:
        """The one session of a request, when it was only read (client- or server-side:
        nothing to store, renew, re-issue or clear), or is client-side and only set
        (nothing to compare): what the response gets follows from it directly (as
        `_plan` would give it). ``None`` otherwise."""
        states = self._states
        if len(states) == 1:
            for p, st in states.items():
                action = st.action
                if action == _NONE:
                    return (p, st) if _read_only(st) else None
                if action == _SET and p.storage is None and not st.reissue and not st.renew:
                    return None if p.send_only_if_modified else (p, st)
        return None

    def _commit_sync(self, has_cache_control: bool) -> list[tuple[str, str]]:
        """Runs the storage work with the plain methods; the headers to add (WSGI)."""
        self._started = True
        simple = self._simple()
        if simple is not None:
            p, st = simple
            if st.action == _SET:
                assert st.out is not None
                out = [(p.response_name, st.out)]
                if st.loaded:
                    out.append(("Vary", p.vary))
                if not p.header and not has_cache_control:
                    out.append(("Cache-Control", "no-store"))
                return out
            return [("Vary", p.vary)] if st.loaded else []
        headers, ops = self._plan()
        for p, op, args, guard in ops:
            if guard is not None and not guard.ok:
                continue
            if op == "_purge":
                _purge_sync(p, *args)
                continue
            done = _guarded(p, op, getattr(p.storage, op), *args)
            if done is False and guard is not None:
                guard.ok = False
        sent, cookie_sent = _sent(headers)
        out = [(name, value) for name, _, value in sent]
        if cookie_sent and not has_cache_control:
            out.append(("Cache-Control", "no-store"))
        return out

    async def _run_async(self, ops: list[_Op]) -> None:
        """Runs the storage work, awaiting async storages (ASGI)."""
        for p, op, args, guard in ops:
            if guard is not None and not guard.ok:
                continue
            if op == "_purge":
                await _purge_async(p, *args)
                continue
            done = await _acall(p, op, *args)
            if done is False and guard is not None:
                guard.ok = False


def _sent(headers: list[_Header]) -> tuple[list[tuple[str, bytes, str]], bool]:
    """The planned headers whose storage work held, and whether a session cookie is
    among them (then the response must not be cached: the middleware adds
    ``Cache-Control: no-store`` unless the app set its own)."""
    sent = []
    cookie_sent = False
    for name, key, value, cookie, guard in headers:
        if guard is None or guard.ok:
            sent.append((name, key, value))
            cookie_sent = cookie_sent or cookie
    return sent, cookie_sent


def _guarded(p: Provider, op: str, method: Any, *args: Any) -> Any:
    """Calls a plain storage method; other exceptions than StorageError become one."""
    try:
        return method(*args)
    except StorageError:
        raise
    except Exception as exc:
        raise _storage_error(p, op, exc) from exc


async def _acall(p: Provider, op: str, *args: Any) -> Any:
    """Calls a storage method the ASGI way: the async form when there is one."""
    storage = p.storage
    try:
        method = getattr(storage, "a" + op, None)
        if method is not None:
            return await method(*args)
        if p.async_storage:
            return await getattr(storage, op)(*args)
        return getattr(storage, op)(*args)
    except StorageError:
        raise
    except Exception as exc:
        raise _storage_error(p, op, exc) from exc


def _purged(p: Provider, keys: list[str], keep: Optional[str], only: Optional[str]) -> list[str]:
    """The owner's index keys that invalidate_all (``only`` None, sparing ``keep``) or
    invalidate_one (the key whose id hash is ``only``) ends."""
    if only is not None:
        return [k for k in keys if _id_hash(p, k) == only]
    return [k for k in keys if k != keep]


def _purge_sync(p: Provider, owner: str, keep: Optional[str], only: Optional[str]) -> None:
    """invalidate_all / invalidate_one: deletes an owner's entries and their index."""
    storage = p.storage
    for k in _purged(p, _guarded(p, "index_list", storage.index_list, owner), keep, only):
        _guarded(p, "invalidate", storage.invalidate, k)
        _guarded(p, "index_remove", storage.index_remove, owner, k)


async def _purge_async(p: Provider, owner: str, keep: Optional[str], only: Optional[str]) -> None:
    for k in _purged(p, await _acall(p, "index_list", owner), keep, only):
        await _acall(p, "invalidate", k)
        await _acall(p, "index_remove", owner, k)


def _id_hash(p: Provider, key: str) -> str:
    """The id hash ``sessions_of`` shows for a storage key (never the id itself)."""
    return key if p.hash_ids else p.codec.storage_key(key)


def _open_record(p: Provider, got: Any, now: int) -> Optional[tuple[Any, ...]]:
    """Checks a stored record's clocks: ``(payload, created, last_seen, deadline,
    renew)``, or ``None`` when the session has ended. ``got`` is the text, or ``(text,
    seconds left)`` from a storage's ``read_ttl``, which tells when an entry renewed by a
    touch was last used (the codec works it out)."""
    codec = p.record_codec
    assert codec is not None
    if p.reads_ttl:
        return codec.open_clocks(got[0], now, None, got[1])
    return codec.open_clocks(got, now)


def _principal(p: Provider, value: object) -> Any:
    assert p.principal is not None
    return p.principal(value)


def _owner_key(p: Provider, who: object) -> Optional[str]:
    """The index key of an owner: a hash bound to the session's name."""
    if who is None:
        return None
    if isinstance(who, bool) or not isinstance(who, (str, int)):
        raise TypeError(
            f"the principal of {p.name!r} must give a str or int (or None), not "
            f"{type(who).__name__}"
        )
    return p.codec.storage_key(f"\0owner\0{who}")


def _owner(p: Provider, value: object) -> Optional[str]:
    """The index key of the owner of ``value`` (``None``: it has none)."""
    return _owner_key(p, _principal(p, value))


def _read_only(st: _State) -> bool:
    """A session that was read and left as it is: nothing to store, renew, re-issue or
    clear, so the response gets its Vary header alone (see `_plan`)."""
    return (
        st.action == _NONE
        and not st.reissue
        and not st.renew
        and not st.unknown
        and not st.delete_ids
        and not st.purges
    )


def _unchanged(p: Provider, st: _State) -> bool:
    """``send_only_if_modified``: the value set equals the incoming one (and was not
    forced out by ``regenerate``), so nothing is sent or stored."""
    return (
        p.send_only_if_modified
        and not st.force
        and st.value is not None
        and st.new is not st.value
        and st.new == st.value
    )


def _retire_id(st: _State) -> None:
    """The current server-side id's entry is deleted when the response starts, and the
    session has no id until a ``set`` mints a new one."""
    if st.sid is not None:
        if st.sid == st.stored_sid:  # an id minted in this request was never stored
            st.delete_ids = (*st.delete_ids, st.sid)
        st.sid = None


def _mint(p: Provider) -> str:
    sid = p.identity()
    if not isinstance(sid, str) or not sid:
        raise ConfigurationError(f"the identity of {p.name!r} must return a non-empty str")
    return sid


def _write(p: Provider, payload: str, secure: bool = False, max_age: Any = _DEFAULT) -> str:
    """The rendered header value carrying ``payload`` (one Rust call for built-in chains)."""
    codec = p.codec_secure if secure else p.codec
    if max_age is _DEFAULT:
        max_age = p.cookie_max_age
    if p.rust_chain:
        return codec.write(payload, max_age)
    value = payload
    for t in p.chain:
        value = (
            t._core.write(value, p.name)
            if isinstance(t, BuiltinTransformer)
            else t.transform_write(value)
        )
    return codec.render(value, max_age)


def _read_chain(p: Provider, raw: str) -> tuple[Optional[str], bool]:
    """Reads a value through a chain that holds custom (Python) transformers."""
    value: Optional[str] = p.codec.decode(raw)
    reissue = False
    for t in reversed(p.chain):
        if value is None:
            break
        if isinstance(t, BuiltinTransformer):
            opened = t._core.read(value, p.name)
            if opened is None:
                value = None
            else:
                value, again = opened
                reissue = reissue or again
        else:
            try:
                value = t.transform_read(value)
            except Exception as exc:  # a custom transformer choking on hostile input
                log.debug("session %r: transformer %r raised %r", p.name, t, exc)
                value = None
    return value, reissue and value is not None


def get_sessions(request: Any) -> CurrentSessions:
    """The sessions of a request.

    Args:
        request: a Starlette/FastAPI ``Request`` or ``WebSocket``, a Flask/Werkzeug
            request, an ASGI scope or a WSGI environ.

    Raises:
        SessionsNotInstalled: the request did not pass through the session middleware.
    """
    if type(request) is dict:  # an ASGI scope or a WSGI environ
        current = request.get(SCOPE_KEY)
        if current is not None:
            return current  # type: ignore[no-any-return]
        holder: Any = request
    else:
        # `environ` first: through Flask's request proxy a missing attribute costs a
        # raised and caught exception (~1.5 µs), and so does an isinstance check (the
        # proxy looks up __class__); on a Starlette request it is cheap.
        holder = getattr(request, "environ", None)
        if holder is None:
            holder = request if isinstance(request, dict) else getattr(request, "scope", None)
    current = holder.get(SCOPE_KEY) if isinstance(holder, dict) else None
    if current is None:
        raise SessionsNotInstalled(
            "this request has no sessions: add ferrosession.SessionMiddleware (ASGI) or "
            "WSGISessionMiddleware (WSGI) around the app"
        )
    return current  # type: ignore[no-any-return]
