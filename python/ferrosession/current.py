"""Per-request session access: :class:`CurrentSessions` and :func:`get_sessions`.

Nothing is decoded until a handler touches a session: the middleware only keeps a
reference to the request headers. The first ``get``/``set``/``clear``/``regenerate``/
``session_id`` of a session makes one Rust call to find, decode and verify its value
(and, server-side, one storage read). Writes happen when the response starts.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, Optional, TypeVar, Union, overload

from ferrosession._keys import seconds
from ferrosession.config import Provider, Sessions
from ferrosession.errors import (
    ConfigurationError,
    SessionsNotInstalled,
    StorageError,
    TooLateSessionSet,
)
from ferrosession.transformers import BuiltinTransformer

__all__ = ["SCOPE_KEY", "CurrentSessions", "get_sessions"]

T = TypeVar("T")
SCOPE_KEY = "ferrosession"
log = logging.getLogger("ferrosession")

_NONE, _SET, _CLEAR = 0, 1, 2
_DEFAULT: Any = object()  # "the registration's max_age"


class _State:
    """What one request knows and wants for one registered session. The defaults live
    on the class, so a new state costs one attribute write."""

    provider: Provider
    loaded = False  # the incoming value has been looked up
    present = False  # something of this name came in, valid or not
    value: Any = None  # the incoming value
    payload: Optional[str] = None  # its serialized text
    reissue = False  # verified by a retired key: send it again
    unknown = False  # server-side: the incoming id is not in the storage
    sid: Optional[str] = None  # server-side id (incoming and known, or minted)
    action = _NONE
    new: Any = None
    new_payload: Optional[str] = None
    out: Optional[str] = None  # rendered Set-Cookie / header value of `new`
    force = False
    delete_ids: tuple[str, ...] = ()
    # lifetimes (registrations with idle_timeout / absolute_timeout)
    created: Optional[int] = None  # when the incoming session began
    deadline: Optional[int] = None  # its per-value end (set(value, max_age=...))
    renew = False  # last_seen is due for renewal: re-issue the value
    new_deadline: Optional[int] = None

    def __init__(self, provider: Provider) -> None:
        self.provider = provider


def _storage_error(provider: Provider, op: str, exc: BaseException) -> StorageError:
    """A StorageError for a storage that failed with another exception (raised ``from``
    it; a storage's own StorageError is re-raised as it is)."""
    return StorageError(f"session {provider.name!r}: storage {op} failed: {exc!r}")


class CurrentSessions:
    """The sessions of one request. Get it with :func:`get_sessions`."""

    __slots__ = ("_config", "_cookie", "_dirty", "_https", "_scanned", "_started", "_states")

    def __init__(self, config: Sessions, https: bool = False) -> None:
        self._config = config
        self._https = https  # the request came over https (for secure="auto")
        self._states: dict[Provider, _State] = {}
        self._started = False
        self._dirty = False  # something to send or store when the response starts
        self._cookie: Optional[str] = None
        self._scanned = False

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
        now = int(self._config._clock()) if p.clocks else None
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
        if st.provider.clocks and not st.provider.rust_chain:
            text = self._open_clocks(st, text)
            if text is None:
                return
        try:
            st.value = st.provider.serializer.deserialize(text)
        except Exception as exc:  # a payload that no longer fits its type: absent
            log.debug("session %r: stored value does not deserialize: %r", st.provider.name, exc)
            return
        st.payload = text

    def _open_clocks(self, st: _State, text: str) -> Optional[str]:
        """For a chain that runs partly in Python: the codec checks the lifetimes carried
        in front of the payload; the payload, or ``None`` for an ended session (or one
        without clocks, or another session's name)."""
        p = st.provider
        alive = p.codec.open_clocks(text, int(self._config._clock()))
        if alive is None:
            log.debug("session %r: value without valid clocks, or ended", p.name)
            return None
        payload, st.created, st.deadline, renew = alive
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
            text = p.storage.read(p.key(decoded))
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
            reader = getattr(storage, "aread", None) or storage.read
            text = await reader(p.key(decoded))
        except StorageError:
            raise
        except Exception as exc:
            raise _storage_error(p, "read", exc) from exc
        self._found(st, decoded, text)

    def _found(self, st: _State, sid: str, text: Optional[str]) -> None:
        if text is None:
            st.unknown = True
            self._dirty = True
            return
        st.sid = sid
        self._accept(st, text)

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
        p = self._config._lookup.get(key)
        if p is None:
            p = self._config.lookup(key)  # raises SessionNotRegistered
        st = self._states.get(p)
        if st is None:
            st = self._states[p] = _State(p)
            self._load_sync(st)
            return st.value
        if not st.loaded:
            self._load_sync(st)
        if st.action == _SET:
            return st.new
        return st.value

    def set(self, value: object, *, max_age: Union[int, timedelta, None] = None) -> None:
        """Sets the session of ``value``'s type; sent when the response starts.

        Args:
            value: the new value (its type picks the registration).
            max_age: a lifetime for this value ("remember me"), enforced by the server;
                it fixes a deadline that neither renewal nor a later ``set`` extends.
                Needs ``idle_timeout`` or ``absolute_timeout`` on the registration.

        Raises:
            TypeError: ``value`` is ``None`` (use :meth:`clear`).
            SessionNotRegistered: no session is registered for that type.
            SessionTooLarge: the value would not fit in its cookie or header.
            TooLateSessionSet: the response has already started.
        """
        if value is None:
            raise TypeError("set(None) is not a clear: call clear(T) to end a session")
        provider = self._config.lookup_value(value)
        if self._started:
            self._too_late("set")
        # A client-side value replaces the incoming one without reading it (unless it
        # must be compared, or its clocks carry on); a server-side one needs the id.
        load = provider.storage is not None or provider.send_only_if_modified or provider.clocks
        st = self._state(provider, load)
        if max_age is not None:
            if not provider.clocks:
                raise ConfigurationError(
                    f"set(value, max_age=...) needs idle_timeout or absolute_timeout on the "
                    f"registration of {provider.name!r} (the deadline travels with them)"
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
            out = self._write_clocked(st, payload) if p.clocks else self._write(p, payload)
        else:
            if st.sid is None:
                st.sid = _mint(p)
            out = self._write(p, st.sid)
        st.action = _SET
        st.new = value
        st.new_payload = payload
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

    def _write_clocked(self, st: _State, payload: str) -> str:
        """The value with its clocks in front; the cookie lives no longer than they allow."""
        p = st.provider
        now = int(self._config._clock())
        created = st.created if st.created is not None else now
        deadline = st.new_deadline
        ends = [t for t in (p.cookie_max_age, p.idle) if t is not None]
        if p.absolute is not None:
            ends.append(max(0, created + p.absolute - now))
        if deadline is not None:
            ends.append(max(0, deadline - now))
        max_age = min(ends) if ends else None
        if p.rust_chain:
            codec = p.codec_secure if self._https and p.secure_auto else p.codec
            return codec.write_clocked(payload, created, deadline, max_age, now)
        return self._write(p, p.codec.wrap_clocks(payload, created, deadline, now), max_age)

    # -- commit -----------------------------------------------------------------------
    def _plan(self) -> tuple[list[tuple[str, bytes, str]], list[tuple[Provider, str, Any]], bool]:
        """What the response gets: the headers to add as (name, ASGI name, value), the
        storage operations to run first, and whether a session cookie goes out (then the
        response must not be cached: the middleware adds ``Cache-Control: no-store``
        unless the app set its own)."""
        headers: list[tuple[str, bytes, str]] = []
        ops: list[tuple[Provider, str, Any]] = []
        vary: list[str] = []
        cookie_sent = False
        for p, st in self._states.items():
            if st.loaded and p.vary not in vary:  # read: the response depends on it
                vary.append(p.vary)
            if st.delete_ids:
                ops.extend([(p, "invalidate", (p.key(sid),)) for sid in st.delete_ids])
            action = st.action
            if action == _SET:
                if (
                    p.send_only_if_modified
                    and not st.force
                    and st.value is not None
                    and st.new is not st.value
                    and st.new == st.value
                ):
                    continue
                if p.storage is not None:
                    assert st.sid is not None
                    ops.append((p, "write", (p.key(st.sid), st.new_payload, p.storage_ttl)))
                assert st.out is not None
                headers.append((p.response_name, p.response_key, st.out))
                cookie_sent = cookie_sent or not p.header
            elif action == _CLEAR or st.unknown:
                # Expire the browser's cookie: it was cleared, or names an unknown id.
                clear = p.clear_line_secure if self._https else p.clear_line
                if clear is not None and (st.present or st.unknown):
                    headers.append(("Set-Cookie", b"set-cookie", clear))
                    cookie_sent = True
            elif (st.reissue or st.renew) and st.payload is not None:
                # Verified by a retired key (issue it under the current one), or an active
                # session whose last_seen is due for renewal.
                if p.clocks:
                    st.new_deadline = st.deadline
                    out = self._write_clocked(st, st.payload)
                else:
                    out = self._write(p, st.payload if st.sid is None else st.sid)
                headers.append((p.response_name, p.response_key, out))
                cookie_sent = cookie_sent or not p.header
        if vary:
            headers.append(("Vary", b"vary", vary[0] if len(vary) == 1 else ", ".join(vary)))
        return headers, ops, cookie_sent

    def _commit_sync(self, has_cache_control: bool) -> list[tuple[str, str]]:
        """Runs the storage work with the plain methods; the headers to add (WSGI)."""
        self._started = True
        headers, ops, cookie_sent = self._plan()
        for p, op, args in ops:
            try:
                getattr(p.storage, op)(*args)
            except StorageError:
                raise
            except Exception as exc:
                raise _storage_error(p, op, exc) from exc
        out = [(name, value) for name, _, value in headers]
        if cookie_sent and not has_cache_control:
            out.append(("Cache-Control", "no-store"))
        return out

    async def _run_async(self, ops: list[tuple[Provider, str, Any]]) -> None:
        """Runs the storage work, awaiting async storages (ASGI)."""
        for p, op, args in ops:
            storage = p.storage
            try:
                method = getattr(storage, "a" + op, None)
                if method is not None:
                    await method(*args)
                elif p.async_storage:
                    await getattr(storage, op)(*args)
                else:
                    getattr(storage, op)(*args)
            except StorageError:
                raise
            except Exception as exc:
                raise _storage_error(p, op, exc) from exc


def _retire_id(st: _State) -> None:
    """The current server-side id's entry is deleted when the response starts, and the
    session has no id until a ``set`` mints a new one."""
    if st.sid is not None:
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
    if isinstance(request, dict):
        holder: Any = request
    else:
        # `environ` first: through Flask's request proxy a missing attribute costs a
        # raised and caught exception (~1.5 µs); on a Starlette request it is cheap.
        holder = getattr(request, "environ", None)
        if holder is None:
            holder = getattr(request, "scope", None)
    current = holder.get(SCOPE_KEY) if isinstance(holder, dict) else None
    if current is None:
        raise SessionsNotInstalled(
            "this request has no sessions: add ferrosession.SessionMiddleware (ASGI) or "
            "WSGISessionMiddleware (WSGI) around the app"
        )
    return current  # type: ignore[no-any-return]
