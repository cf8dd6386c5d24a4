"""Per-request session access: :class:`CurrentSessions` and :func:`get_sessions`.

One request is one walk through each touched registration's parts (see
:class:`~ferrosession.registration.Registration`): the first ``get`` / ``set`` /
``clear`` / ``regenerate`` / ``session_id`` of a session has its home read the
incoming value through its transport (one Rust call that finds, verifies and decodes
it; server-side, one storage read). Nothing is read for a session the handler never
touches. When the response starts, each touched session's home says what the response
gets (headers, and storage work to run first).
"""

from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple, Optional, TypeVar, Union, overload

from ferrosession._keys import seconds
from ferrosession.config import Sessions
from ferrosession.errors import (
    ConfigurationError,
    SessionsNotInstalled,
    TooLateSessionSet,
)
from ferrosession.homes import ServerHome, acall, guarded
from ferrosession.registration import Registration
from ferrosession.state import CLEAR, SET, Header, Op, State
from ferrosession.transport import Transport

__all__ = ["SCOPE_KEY", "CurrentSessions", "SessionInfo", "get_sessions"]

T = TypeVar("T")
SCOPE_KEY = "ferrosession"

_new = object.__new__


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


class CurrentSessions:
    """The sessions of one request. Get it with :func:`get_sessions`."""

    __slots__ = ("_config", "_https", "_started", "_states")
    # the response headers are ASGI byte pairs (the ASGI subclass)
    _asgi = False
    # the ASGI request's header list (None: a WSGI request, see _raw)
    _headers: Any = None

    def __init__(self, config: Sessions, https: bool = False) -> None:
        self._config = config
        self._https = https  # the request came over https (for secure="auto")
        self._states: dict[Registration, State] = {}
        self._started = False

    # -- the request, as the ASGI and WSGI subclasses see it ---------------------------
    def _raw(self, transport: Transport) -> Optional[str]:  # pragma: no cover - abstract
        """The text that came in for a transport: the ``Cookie`` header (cookies) or
        the header's value, ``None`` when absent."""
        raise NotImplementedError

    def _now(self) -> int:
        return int(self._config._clock())

    # -- loading ------------------------------------------------------------------------
    def _state(self, reg: Registration, load: bool = True) -> State:
        st = self._states.get(reg)
        if st is None:
            st = self._states[reg] = State(reg)
        if load and not st.loaded:
            self._load(st)
        return st

    def _load(self, st: State, varies: bool = True) -> None:
        """Has the session's home read the incoming value. ``varies``: the response
        depends on it (it gets Vary) even when nothing came in."""
        st.loaded = True
        st.reg.home.load(self, st)
        if varies or st.present:
            st.varies = True

    async def _preload(self) -> None:
        """Reads every async storage whose id came in (ASGI, before the handler)."""
        for reg in self._config.registrations:
            home = reg.home
            if (
                home.server
                and home.async_storage  # type: ignore[union-attr]
                and reg not in self._states
                and self._raw(reg.transport) is not None
            ):
                st = self._states[reg] = State(reg)
                st.loaded = st.varies = True
                await home.aload(self, st)  # type: ignore[union-attr]

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
        reg = config._lookup.get(key)
        if reg is None:
            reg = config.lookup(key)  # raises SessionNotRegistered
        st = self._states.get(reg)
        if st is None:
            st = self._states[reg] = _new(State)  # State(reg), without the call of __init__
            st.reg = reg
        if not st.loaded:  # what _load does (here without its call: the hottest path)
            st.loaded = True
            reg.home.load(self, st)
        st.varies = True  # read: the response depends on it
        return st.new if st.action == SET else st.value

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
        reg = self._config._by_type.get(type(value))
        if reg is None:
            reg = self._config.lookup_value(value)
        if self._started:
            self._too_late("set")
        home = reg.home
        st = self._states.get(reg)
        if st is None:
            st = self._states[reg] = _new(State)
            st.reg = reg
        if home.load_on_set and not st.loaded:
            self._load(st, home.set_varies)
        if max_age is not None:
            if home.deadline_codec is None and not reg.lifetime.clocks:
                raise ConfigurationError(
                    f"set(value, max_age=...) on {reg.name!r}: nothing authenticates "
                    f"this client-side value, so a client could change its deadline: add "
                    f"MessageAuthentication(key) or Encrypt(key) to transformers, or give "
                    f"it a storage"
                )
            age = seconds(max_age, "max_age")
            assert age is not None
            deadline = self._now() + age
            current = st.new_deadline if st.action == SET else st.deadline
            st.new_deadline = deadline if current is None else min(current, deadline)
        elif st.action != SET:
            st.new_deadline = st.deadline
        self._set(st, value, False)

    def _set(self, st: State, value: object, force: bool) -> None:
        st.reg.home.issue(self, st, value)
        st.action = SET
        st.new = value
        st.force = force

    def clear(self, key: Union[type[Any], str]) -> None:
        """Ends the session: ``get`` returns ``None``; an expiring cookie goes out if one
        came in; a server-side entry is deleted."""
        self._check_not_started("clear")
        st = self._state(self._config.lookup(key))
        _retire_id(st)
        st.action = CLEAR
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
        value = st.new if st.action == SET else st.value
        if value is None:
            return
        if st.sid is not None and st.sid == st.stored_sid:
            st.regen_from = st.sid  # the new entry is made only if this one still exists
        _retire_id(st)
        if st.action != SET:
            st.new_deadline = st.deadline
        self._set(st, value, True)

    def session_id(self, key: Union[type[Any], str]) -> Optional[str]:
        """The server-side id of the session, or ``None`` when there is none.

        Raises:
            ConfigurationError: the session is client-side.
        """
        reg = self._config.lookup(key)
        if not reg.home.server:
            raise ConfigurationError(
                f"session {reg.name!r} is client-side: it has no id (give it a storage)"
            )
        return self._state(reg).sid

    def invalidate(self, key: Union[type[Any], str], session_id: str) -> None:
        """Deletes another id's entry when the response starts (log out other devices)."""
        reg = self._config.lookup(key)
        if not reg.home.server:
            raise ConfigurationError(
                f"session {reg.name!r} is client-side: there is no entry to invalidate"
            )
        if not isinstance(session_id, str):
            raise TypeError("session_id must be a str")
        self._check_not_started("invalidate")
        st = self._state(reg, load=False)
        st.delete_ids = (*st.delete_ids, session_id)
        st.todo = True

    def sessions_of(self, key: Union[type[Any], str], who: Union[str, int]) -> list[SessionInfo]:
        """The live sessions of an owner (as the registration's ``principal`` names
        owners), for a "your devices" page. Uses the storage's plain methods: under ASGI
        with an async storage, ``await`` :meth:`asessions_of` instead.

        Args:
            key: the session's registered type or name (registered with ``principal``).
            who: the owner, as ``principal`` returns it.
        """
        reg, home, owner = self._indexed(key, who)
        if home.async_storage and not hasattr(home.storage, "aread"):
            raise ConfigurationError(
                f"session {reg.name!r} has an async storage: use await asessions_of(...)"
            )
        self._state(reg)  # this request's own session, to mark it
        storage = home.storage
        reader = storage.read_ttl if home.reads_ttl else storage.read
        found = [(k, guarded(home, "read", reader, k)) for k in storage.index_list(owner)]
        return self._infos(reg, home, owner, found, lambda k: storage.index_remove(owner, k))

    async def asessions_of(
        self, key: Union[type[Any], str], who: Union[str, int]
    ) -> list[SessionInfo]:
        """Like :meth:`sessions_of`, with the storage's async methods."""
        reg, home, owner = self._indexed(key, who)
        if not home.async_storage:
            self._state(reg)  # this request's own session (async ones are read already)
        keys = await acall(home, "index_list", owner)
        found = []
        for k in keys:
            found.append((k, await acall(home, "read_ttl" if home.reads_ttl else "read", k)))
        stale: list[str] = []
        infos = self._infos(reg, home, owner, found, stale.append)
        for k in stale:
            await acall(home, "index_remove", owner, k)
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
        reg, _, owner = self._indexed(key, who)
        self._check_not_started("invalidate")
        st = self._state(reg, load=False)
        st.purges = (*st.purges, (owner, bool(keep_current), None))
        st.todo = True

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
        reg, home, owner = self._indexed(key, who)
        if not isinstance(id_hash, str):
            raise TypeError("id_hash must be a str (a SessionInfo.id_hash)")
        self._check_not_started("invalidate")
        st = self._state(reg)  # this request's own session, to recognise it
        value = st.new if st.action == SET else st.value
        if (
            st.sid is not None
            and value is not None
            and home.id_hash(home.key(st.sid)) == id_hash
            and home.owner(value) == owner
        ):
            self.clear(key)
            return
        st.purges = (*st.purges, (owner, False, id_hash))
        st.todo = True

    def _indexed(
        self, key: Union[type[Any], str], who: object
    ) -> tuple[Registration, ServerHome, str]:
        reg = self._config.lookup(key)
        home = reg.home
        if not isinstance(home, ServerHome) or home.principal is None:
            raise ConfigurationError(
                f"session {reg.name!r} was registered without principal=: it keeps no "
                f"per-owner index"
            )
        owner = home.owner_key(who)
        if owner is None:
            raise TypeError("who must be a str or int (as principal returns it), not None")
        return reg, home, owner

    def _infos(
        self,
        reg: Registration,
        home: ServerHome,
        owner: str,
        found: list[tuple[str, Any]],
        stale: Any,
    ) -> list[SessionInfo]:
        """The listed entries that are alive and still belong to the owner; the others
        are passed to ``stale`` (the index forgets them)."""
        now = self._now()
        st = self._states.get(reg)
        current = home.key(st.sid) if st is not None and st.sid is not None else None
        infos = []
        for k, got in found:
            clocks = None if got is None else home.open_listed(got, now)
            value = None
            if clocks is not None:
                try:
                    value = home.adapter.deserialize(clocks.payload)
                except Exception:  # no longer fits its type: not a live session
                    value = None
            if clocks is None or value is None or home.owner(value) != owner:
                stale(k)
                continue
            infos.append(
                SessionInfo(
                    home.id_hash(k),
                    datetime.fromtimestamp(clocks.created, timezone.utc),
                    datetime.fromtimestamp(clocks.last_seen, timezone.utc),
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

    # -- commit -----------------------------------------------------------------------
    def _plan(self) -> tuple[list[Header], list[Op]]:
        """What the response gets: the headers to add and the storage operations to run
        first. A header with a guard goes out only if the storage work it goes with
        held (see :class:`~ferrosession.state.Guard`)."""
        headers: list[Header] = []
        ops: list[Op] = []
        vary: Optional[Header] = None  # the transports read: what the response depends on
        for reg, st in self._states.items():
            if st.action or st.todo:  # a session only read needs nothing but Vary
                reg.home.plan(self, st, headers, ops)
            if st.varies:
                own = reg.transport.vary_header
                if vary is None:
                    vary = own
                elif own[2] not in vary[2].split(b", "):
                    vary = ("Vary", b"vary", vary[2] + b", " + own[2], False, None)
        if vary is not None:
            headers.append(vary)
        return headers, ops

    def _commit_sync(self, has_cache_control: bool) -> list[tuple[str, str]]:
        """Runs the storage work with the plain methods; the headers to add (WSGI)."""
        self._started = True
        headers, ops = self._plan()
        for home, op, args, guard in ops:
            if guard is not None and not guard.ok:
                continue
            done = home.run(op, args)
            if done is False and guard is not None:
                guard.ok = False
        # the headers whose storage work held, with values as WSGI wants them (str)
        out = []
        cookie_sent = False
        for name, _, value, cookie, guard in headers:
            if guard is None or guard.ok:
                out.append((name, value.decode("latin-1") if value.__class__ is bytes else value))
                if cookie:
                    cookie_sent = True
        if cookie_sent and not has_cache_control:
            out.append(("Cache-Control", "no-store"))
        return out

    async def _run_async(self, ops: list[Op]) -> None:
        """Runs the storage work, awaiting async storages (ASGI)."""
        for home, op, args, guard in ops:
            if guard is not None and not guard.ok:
                continue
            done = await home.arun(op, args)
            if done is False and guard is not None:
                guard.ok = False


def _retire_id(st: State) -> None:
    """The current server-side id's entry is deleted when the response starts, and the
    session has no id until a ``set`` mints a new one."""
    if st.sid is not None:
        if st.sid == st.stored_sid:  # an id minted in this request was never stored
            st.delete_ids = (*st.delete_ids, st.sid)
            st.todo = True
        st.sid = None


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
            "this request has no sessions: add ferrosession.SessionMiddleware (ASGI), "
            "WSGISessionMiddleware (WSGI) or, in Flask, ferrosession.flask.init_app(app, "
            "sessions)"
        )
    return current  # type: ignore[no-any-return]
