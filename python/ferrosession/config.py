"""The registry of session types: :class:`Sessions`."""

import inspect
import re
import time
import weakref
from datetime import timedelta
from typing import Any, Callable, Literal, Optional, Sequence, Union

from ferrosession import _core
from ferrosession._keys import seconds
from ferrosession.adapters import serializer_for
from ferrosession.chain import Chain
from ferrosession.errors import ConfigurationError, SessionNotRegistered
from ferrosession.homes import ClientHome, ServerHome, offers
from ferrosession.lifetime import DEFAULT_MAX_AGE, Lifetime
from ferrosession.registration import Registration
from ferrosession.serializers import is_typed_dict
from ferrosession.transport import Transport

__all__ = ["DEFAULT_MAX_AGE", "Sessions"]

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_SAME_SITE = {"strict": "Strict", "lax": "Lax", "none": "None"}
_ENCODINGS = ("uri", "base64", "raw", "dquotes")


_INDEX = ("index_add", "index_remove", "index_list")
# every Sessions made, for integrations that look a session up by its type before any
# request (ferrosession.fastapi names the OpenAPI security scheme after it)
_ALL: "weakref.WeakSet[Sessions]" = weakref.WeakSet()


def _check_name(name: object, what: str) -> str:
    if not isinstance(name, str) or not _TOKEN.match(name):
        raise ConfigurationError(
            f"{name!r} is not a valid {what} name: use letters, digits and !#$%&'*+-.^_`|~ "
            f"(no spaces, ';', ',', '=' or quotes)"
        )
    return name


def _check_lifetimes(
    lifetimes: tuple[Any, Any, Any], chain: tuple[Any, ...], storage: Any
) -> tuple[Optional[int], Optional[int], Optional[int]]:
    """idle_timeout, absolute_timeout and refresh, checked: (idle, absolute, refresh)
    in seconds, refresh ``None`` for "on_change"."""
    idle_opt, absolute_opt, refresh_opt = lifetimes
    idle = seconds(idle_opt, "idle_timeout")
    absolute = seconds(absolute_opt, "absolute_timeout")
    for value, what in ((idle, "idle_timeout"), (absolute, "absolute_timeout")):
        if value == 0:
            raise ConfigurationError(f"{what} must be positive (or None for no limit)")
    if idle is None and absolute is None:
        if refresh_opt is not None:
            raise ConfigurationError("refresh goes with idle_timeout")
        return None, None, None
    if storage is None and not _signed(chain):
        raise ConfigurationError(
            "idle_timeout / absolute_timeout on a client-side session need its clocks to be "
            "signed or encrypted: add MessageAuthentication(key) or Encrypt(key) to "
            "transformers"
        )
    if refresh_opt == "on_change":
        refresh = None
    elif refresh_opt is None:
        refresh = max(1, min(60, idle // 4)) if idle is not None else None
    else:
        refresh = seconds(refresh_opt, "refresh")
        if not refresh:
            raise ConfigurationError('refresh must be positive, or "on_change"')
        if idle is not None and refresh >= idle:
            raise ConfigurationError(
                f"refresh ({refresh} s) must be shorter than idle_timeout ({idle} s)"
            )
    return idle, absolute, refresh


def _signed(chain: tuple[Any, ...]) -> bool:
    """Whether a built-in transformer of the chain authenticates the value, so that the
    lifetimes it carries can be trusted."""
    from ferrosession.transformers import Encrypt, KtorEncrypt, MessageAuthentication

    return any(isinstance(t, (MessageAuthentication, Encrypt, KtorEncrypt)) for t in chain)


def _authenticates(chain: tuple[Any, ...]) -> bool:
    """Whether a chain proves a value was issued by the server: a keyed transformer, or
    a custom one (whose author answers for it). ``Digest`` is unkeyed: anyone can
    recompute it."""
    from ferrosession.transformers import Digest

    return any(not isinstance(t, Digest) for t in chain)


def _check_authenticated(name: str, chain: tuple[Any, ...], storage: Any, unsigned: bool) -> None:
    """A client-side value that nothing authenticates can be forged by the client:
    refused unless the registration says ``unsigned=True``."""
    if not isinstance(unsigned, bool):
        raise ConfigurationError(f"unsigned must be True or False, not {unsigned!r}")
    if storage is not None:
        if unsigned:
            raise ConfigurationError(
                "unsigned=True is for client-side sessions: a server-side session's cookie "
                "carries only an id"
            )
        return
    if not unsigned and not _authenticates(chain):
        raise ConfigurationError(
            f"session {name!r} is client-side and nothing authenticates its value, so a "
            f"client could forge it: add transformers=[MessageAuthentication(key)] or "
            f"[Encrypt(key)], give it a storage (server-side), or pass unsigned=True for a "
            f"value the client may change freely"
        )


def _check_prefix(name: str, secure: object, path: str, domain: Optional[str]) -> None:
    """The cookie name prefixes of RFC 6265bis (matched case-insensitively, as browsers
    do): ``__Secure-`` needs Secure; ``__Host-`` also needs ``path="/"`` and no domain."""
    lower = name.lower()
    if lower.startswith("__host-"):
        if secure is not True or path != "/" or domain is not None:
            raise ConfigurationError(
                f"a {name[:7]} cookie needs secure=True, path='/' and no domain "
                f"(browsers reject it otherwise)"
            )
    elif lower.startswith("__secure-") and secure is not True:
        raise ConfigurationError(
            f"a {name[:9]} cookie needs secure=True (browsers reject it otherwise)"
        )


def _check_transformers(transformers: Sequence[Any]) -> tuple[Any, ...]:
    if isinstance(transformers, (str, bytes)) or not isinstance(transformers, (list, tuple)):
        raise ConfigurationError("transformers must be a list or tuple of transformers")
    for t in transformers:
        if not (
            callable(getattr(t, "transform_write", None))
            and callable(getattr(t, "transform_read", None))
        ):
            raise ConfigurationError(
                f"{t!r} is not a transformer: it needs transform_write(str) -> str and "
                f"transform_read(str) -> str | None"
            )
    return tuple(transformers)


def _check_storage(storage: Any) -> Any:
    if storage is None:
        return None
    for method in ("read", "write", "invalidate"):
        if not callable(getattr(storage, method, None)):
            raise ConfigurationError(
                f"{storage!r} is not a storage: it needs read(id), write(id, value, ttl) "
                f"and invalidate(id) (plain or async def)"
            )
    kinds = {
        inspect.iscoroutinefunction(getattr(storage, m)) for m in ("read", "write", "invalidate")
    }
    if len(kinds) > 1:
        raise ConfigurationError(
            f"{storage!r} mixes async and plain methods: make read, write and invalidate "
            f"all async def or all plain"
        )
    return storage


class Sessions:
    """The registry of session types. Register each with :meth:`cookie` or
    :meth:`header`, then give it to :class:`~ferrosession.SessionMiddleware` or
    :class:`~ferrosession.WSGISessionMiddleware`.

    Each type and each name may be registered once.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        """Args:
        clock: the time in seconds, for session lifetimes (tests pass their own).
        """
        self._clock = clock
        # the system clock: Rust reads it itself (int(time.time()), the same seconds)
        self._system_clock = clock is time.time
        self._by_name: dict[str, Registration] = {}
        self._by_type: dict[type, Registration] = {}
        # types and names together: the one dict `get` looks in
        self._lookup: dict[Union[type, str], Registration] = {}
        self._registrations: tuple[Registration, ...] = ()
        self._header_keys: frozenset[bytes] = frozenset()
        self._wsgi_keys: tuple[str, ...] = ()
        self._frozen = False
        self._secure_auto = False
        _ALL.add(self)

    def _freeze(self) -> None:
        """Called by the middleware: the registry no longer changes."""
        self._frozen = True
        transports = [r.transport for r in self._registrations]
        self._secure_auto = any(t.secure_auto for t in transports)
        self._header_keys = frozenset(t.header_key for t in transports if t.header)
        self._wsgi_keys = tuple(t.wsgi_key for t in transports if t.header)

    @property
    def registrations(self) -> tuple[Registration, ...]:
        """The registrations, in order."""
        return self._registrations

    def cookie(
        self,
        type: type,
        name: str,
        storage: Any = None,
        *,
        transformers: Sequence[Any] = (),
        serializer: Any = None,
        max_age: Union[int, timedelta, None] = DEFAULT_MAX_AGE,
        path: str = "/",
        domain: Optional[str] = None,
        secure: Union[bool, Literal["auto"]] = False,
        http_only: bool = True,
        same_site: Optional[str] = "Lax",
        partitioned: bool = False,
        encoding: str = "uri",
        identity: Optional[Callable[[], str]] = None,
        send_only_if_modified: bool = False,
        hash_ids: bool = True,
        idle_timeout: Union[int, timedelta, None] = None,
        absolute_timeout: Union[int, timedelta, None] = None,
        refresh: Union[int, timedelta, Literal["on_change"], None] = None,
        principal: Optional[Callable[[Any], Any]] = None,
        unsigned: bool = False,
    ) -> None:
        """Registers a session that travels in a cookie.

        Args:
            type: the session's type (a dataclass or ``dict``, or any type with a custom
                serializer).
            name: the cookie name.
            storage: ``None`` keeps the whole value in the cookie (client-side); a
                storage keeps it server-side and the cookie carries only an id.
            transformers: applied in order on write, in reverse on read.
            serializer: an object with ``serialize`` and ``deserialize``; JSON by default.
            max_age: seconds or a timedelta; ``None`` for a browser-session cookie (no
                Max-Age, timeouts or not). Server-side also the entry's lifetime (604800
                s when ``None``), unless the session has its own end (timeouts, a
                per-value ``set(value, max_age=...)``), which the entry then follows.
            path: the cookie's Path.
            domain: the cookie's Domain.
            secure: add ``Secure``; ``"auto"`` adds it when the request arrived over
                https (as the server reports the scheme).
            http_only: add ``HttpOnly``.
            same_site: ``"Strict"``, ``"Lax"``, ``"None"`` (needs ``secure=True``) or
                ``None`` to omit the attribute.
            partitioned: add ``Partitioned`` (CHIPS).
            encoding: ``"uri"``, ``"base64"``, ``"raw"`` or ``"dquotes"``.
            identity: server-side only: returns a new session id.
            send_only_if_modified: skip sending and storing a ``set()`` value equal to
                the incoming one.
            hash_ids: server-side only: the storage sees a hash of each id bound to this
                session's name (see :meth:`storage_key`), never the id itself; ``False``
                gives it the raw id.
            idle_timeout: the session ends after this long without a request that uses
                it (client-side sessions: the clock travels inside the signed or
                encrypted value, which must then have ``MessageAuthentication`` or
                ``Encrypt``).
            absolute_timeout: the session ends this long after it began, however active.
            refresh: how often an active session's ``last_seen`` is renewed (a re-issued
                cookie client-side; server-side a touch of the entry, or a rewrite when
                the storage cannot touch): a ``timedelta`` or seconds (default: a quarter
                of ``idle_timeout``, at most 60 s), or ``"on_change"`` (only on ``set``).
            principal: server-side only: gives the owner of a value (``lambda s:
                s.user``; a str or int, or ``None`` for no owner). The storage then keeps
                a per-owner index, for :meth:`CurrentSessions.sessions_of`,
                :meth:`CurrentSessions.invalidate_one` and
                :meth:`CurrentSessions.invalidate_all`.
            unsigned: client-side only: accept a value that nothing authenticates (no
                ``MessageAuthentication`` or ``Encrypt``), for values a client may
                change freely (and Ktor's plain cookies). Without it such a
                registration is a ``ConfigurationError``: a client could forge it.
        """
        _check_name(name, "cookie")
        if not isinstance(path, str) or not path.startswith("/"):
            raise ConfigurationError(f"path must be a str starting with '/', not {path!r}")
        if domain is not None and (not isinstance(domain, str) or not domain):
            raise ConfigurationError("domain must be a non-empty str or None")
        if secure == "auto":
            auto = True
        elif isinstance(secure, bool):
            auto = False
        else:
            raise ConfigurationError(f'secure must be True, False or "auto", not {secure!r}')
        _check_prefix(name, secure, path, domain)
        site: Optional[str] = None
        if same_site is not None:
            if not isinstance(same_site, str) or same_site.lower() not in _SAME_SITE:
                raise ConfigurationError(
                    f'same_site must be "Strict", "Lax", "None" or None, not {same_site!r}'
                )
            site = _SAME_SITE[same_site.lower()]
            if site == "None" and not secure:
                raise ConfigurationError(
                    'same_site="None" needs secure=True (or "auto"): browsers drop '
                    "SameSite=None cookies that are not Secure"
                )
        if partitioned and not secure:
            raise ConfigurationError("partitioned=True needs secure=True")
        self._register(
            type,
            name,
            storage,
            header=False,
            transformers=transformers,
            serializer=serializer,
            max_age=max_age,
            encoding=encoding,
            identity=identity,
            send_only_if_modified=send_only_if_modified,
            hash_ids=hash_ids,
            lifetimes=(idle_timeout, absolute_timeout, refresh),
            principal=principal,
            unsigned=unsigned,
            cookie_options={
                "path": path,
                "domain": domain,
                "secure": secure is True,
                "secure_auto": auto,
                "http_only": bool(http_only),
                "same_site": site,
                "partitioned": bool(partitioned),
            },
        )

    def header(
        self,
        type: type,
        name: str,
        storage: Any = None,
        *,
        transformers: Sequence[Any] = (),
        serializer: Any = None,
        max_age: Union[int, timedelta, None] = DEFAULT_MAX_AGE,
        encoding: str = "raw",
        identity: Optional[Callable[[], str]] = None,
        send_only_if_modified: bool = False,
        hash_ids: bool = True,
        idle_timeout: Union[int, timedelta, None] = None,
        absolute_timeout: Union[int, timedelta, None] = None,
        refresh: Union[int, timedelta, Literal["on_change"], None] = None,
        principal: Optional[Callable[[Any], Any]] = None,
        unsigned: bool = False,
    ) -> None:
        """Registers a session that travels in a request / response header of the same
        name (for API clients; browser sessions belong in cookies).

        Args:
            type: the session's type.
            name: the header name, e.g. ``"X-Session"``.
            storage: ``None`` for a client-side value, or a storage.
            transformers: applied in order on write, in reverse on read.
            serializer: an object with ``serialize`` and ``deserialize``; JSON by default.
            max_age: server-side: the entry's lifetime (604800 s when ``None``).
            encoding: ``"raw"`` (default), ``"uri"``, ``"base64"`` or ``"dquotes"``.
            identity: server-side only: returns a new session id.
            send_only_if_modified: skip sending and storing an unchanged value.
            hash_ids: server-side only: the storage sees a hash of each id (see
                :meth:`storage_key`); ``False`` gives it the raw id.
            idle_timeout: the session ends after this long without a request that uses
                it (client-side sessions: the clock travels inside the signed or
                encrypted value, which must then have ``MessageAuthentication`` or
                ``Encrypt``).
            absolute_timeout: the session ends this long after it began, however active.
            refresh: how often an active session's ``last_seen`` is renewed (a re-issued
                cookie client-side; server-side a touch of the entry, or a rewrite when
                the storage cannot touch): a ``timedelta`` or seconds (default: a quarter
                of ``idle_timeout``, at most 60 s), or ``"on_change"`` (only on ``set``).
            principal: server-side only: gives the owner of a value (``lambda s:
                s.user``; a str or int, or ``None`` for no owner). The storage then keeps
                a per-owner index, for :meth:`CurrentSessions.sessions_of`,
                :meth:`CurrentSessions.invalidate_one` and
                :meth:`CurrentSessions.invalidate_all`.
            unsigned: client-side only: accept a value that nothing authenticates (no
                ``MessageAuthentication`` or ``Encrypt``), for values a client may
                change freely (and Ktor's plain cookies). Without it such a
                registration is a ``ConfigurationError``: a client could forge it.
        """
        _check_name(name, "header")
        if name.lower() in ("cookie", "set-cookie", "content-length", "content-type", "host"):
            raise ConfigurationError(f"{name!r} cannot carry a session: choose another header")
        self._register(
            type,
            name,
            storage,
            header=True,
            transformers=transformers,
            serializer=serializer,
            max_age=max_age,
            encoding=encoding,
            identity=identity,
            send_only_if_modified=send_only_if_modified,
            hash_ids=hash_ids,
            lifetimes=(idle_timeout, absolute_timeout, refresh),
            principal=principal,
            unsigned=unsigned,
            cookie_options={},
        )

    def _register(
        self,
        tp: type,
        name: str,
        storage: Any,
        *,
        header: bool,
        transformers: Sequence[Any],
        serializer: Any,
        max_age: Union[int, timedelta, None],
        encoding: str,
        identity: Optional[Callable[[], str]],
        send_only_if_modified: bool,
        hash_ids: bool,
        lifetimes: tuple[Any, Any, Any],
        principal: Optional[Callable[[Any], Any]],
        unsigned: bool,
        cookie_options: dict[str, Any],
    ) -> None:
        if self._frozen:
            raise ConfigurationError(
                "register every session before creating the middleware that uses them"
            )
        if not isinstance(tp, type):
            raise ConfigurationError(f"the session type must be a class, not {tp!r}")
        if name in self._by_name:
            raise ConfigurationError(
                f"a session named {name!r} is already registered "
                f"(for {self._by_name[name].type.__name__}): choose another name"
            )
        if tp in self._by_type:
            raise ConfigurationError(
                f"{tp.__name__} is already registered as {self._by_type[tp].name!r}: "
                f"each type is registered once (wrap it in another dataclass for a second session)"
            )
        if encoding not in _ENCODINGS:
            raise ConfigurationError(f"encoding must be one of {_ENCODINGS}, not {encoding!r}")
        age = seconds(max_age, "max_age")
        chain = _check_transformers(transformers)
        storage = _check_storage(storage)
        _check_authenticated(name, chain, storage, unsigned)
        idle, absolute, refresh_every = _check_lifetimes(lifetimes, chain, storage)
        if storage is not None and age == 0:
            raise ConfigurationError(
                "max_age=0 would store server-side entries that expire at once: give a "
                "positive max_age, or None for a browser-session cookie (entries then live "
                f"{DEFAULT_MAX_AGE} s)"
            )
        if principal is not None:
            if storage is None:
                raise ConfigurationError(
                    "principal is for server-side sessions (an owner's client-side values "
                    "cannot be listed or ended): give a storage"
                )
            if not callable(principal):
                raise ConfigurationError("principal must be a callable: value -> owner")
            missing = [m for m in _INDEX if not offers(storage, m)]
            if missing:
                raise ConfigurationError(
                    f"principal needs a storage with an owner index: {storage!r} has no "
                    f"{', '.join(missing)} (MemoryStorage, DirectoryStorage and "
                    f"RedisStorage have one)"
                )
        if identity is not None:
            if storage is None:
                raise ConfigurationError("identity is for server-side sessions: give a storage")
            if not callable(identity):
                raise ConfigurationError("identity must be a callable returning a new id")
        if serializer is None:
            serializer = serializer_for(tp)
        elif not (
            callable(getattr(serializer, "serialize", None))
            and callable(getattr(serializer, "deserialize", None))
        ):
            raise ConfigurationError(
                "serializer needs serialize(value) -> str and deserialize(text) -> value"
            )
        wire = Chain(name, chain)
        auto = cookie_options.pop("secure_auto", False)
        # the value carries its created / last-seen times: timeouts, or the owner index
        # of principal= (sessions_of lists when each session began and was last used)
        clocks = idle is not None or absolute is not None or principal is not None
        lifetime = Lifetime(age, idle, absolute, refresh_every, clocks=clocks)
        if clocks and storage is None:
            # the codec frames and checks the clocks (within its one call per direction
            # for a built-in chain; around a chain that runs partly in Python)
            cookie_options.update(clocks=True, idle=idle, absolute=absolute, refresh=refresh_every)
        rust = wire.rust_steps
        codec = _core.Codec(name, header=header, encoding=encoding, chain=rust, **cookie_options)
        codec_secure = None
        if auto:
            cookie_options["secure"] = True
            codec_secure = _core.Codec(
                name, header=header, encoding=encoding, chain=rust, **cookie_options
            )
        transport = Transport(name, header=header, codec=codec, codec_secure=codec_secure)
        home: Union[ClientHome, ServerHome]
        if storage is None:
            home = ClientHome(
                name,
                transport,
                wire,
                lifetime,
                serializer,
                signed=_signed(chain),
                send_only_if_modified=bool(send_only_if_modified),
                system_clock=self._system_clock,
            )
        else:
            home = ServerHome(
                name,
                transport,
                wire,
                lifetime,
                serializer,
                storage,
                hash_ids=bool(hash_ids),
                identity=identity or _core.new_session_id,
                principal=principal,
                system_clock=self._system_clock,
            )
        reg = Registration(
            tp,
            name,
            transport=transport,
            home=home,
            lifetime=lifetime,
            adapter=serializer,
            send_only_if_modified=bool(send_only_if_modified),
        )
        self._by_name[name] = reg
        self._by_type[tp] = reg
        self._lookup[name] = reg
        self._lookup[tp] = reg
        self._registrations = (*self._registrations, reg)

    def lookup(self, key: Union[type, str]) -> Registration:
        """The registration for a type or name; ``SessionNotRegistered`` otherwise."""
        try:
            if isinstance(key, str):
                return self._by_name[key]
            return self._by_type[key]
        except (KeyError, TypeError):
            raise SessionNotRegistered(
                f"no session is registered for {getattr(key, '__name__', key)!r}: register it "
                f"with Sessions.cookie() or Sessions.header()"
            ) from None

    def storage_key(self, key: Union[type, str], session_id: str) -> str:
        """The key under which a server-side session's storage keeps ``session_id``:
        unpadded base64url of ``SHA-256(name + "\\0" + id)`` (43 characters), or the id
        itself when the session was registered with ``hash_ids=False``. Use it to find a
        session in the store by the id its cookie carries.
        """
        home = self.lookup(key).home
        if isinstance(home, ServerHome):
            return home.key(session_id)
        return home.transport.codec.storage_key(session_id)

    def lookup_value(self, value: object) -> Registration:
        """The registration for a value's type (or a registered base class)."""
        reg = self._by_type.get(type(value))
        if reg is not None:
            return reg
        for p in self._registrations:
            # a TypedDict refuses isinstance: its values are plain dicts (below)
            if not is_typed_dict(p.type) and isinstance(value, p.type):
                return p
        if isinstance(value, dict):
            typed = [p for p in self._registrations if is_typed_dict(p.type)]
            if len(typed) == 1:
                return typed[0]
            if typed:
                raise ConfigurationError(
                    "set() of a dict cannot tell apart the TypedDict sessions "
                    + ", ".join(f"{p.type.__name__} ({p.name!r})" for p in typed)
                    + ": a TypedDict value is a plain dict; register one TypedDict and make "
                    "the others dataclasses"
                )
        raise SessionNotRegistered(
            f"no session is registered for type {type(value).__name__}: register it with "
            f"Sessions.cookie() or Sessions.header()"
        )
