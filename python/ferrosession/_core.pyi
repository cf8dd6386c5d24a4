"""The Rust extension. Everything here is internal; the public API is ``ferrosession``."""

import os
import pathlib
from typing import Any, Callable, Literal, Optional, Union, final

__all__ = [
    "CLOCK_SKEW",
    "RECORD_SLACK",
    "Clocks",
    "Codec",
    "DirectoryStorage",
    "DjangoSigner",
    "FlaskCodec",
    "Schema",
    "StarletteCodec",
    "StarletteSend",
    "Transform",
    "__version__",
    "_test_compat_json",
    "_test_cookie_value",
    "build_profile",
    "digest_transformer",
    "encrypt_envelope",
    "encrypt_key_id",
    "encrypt_open",
    "encrypt_transformer",
    "http_date",
    "ktor_encrypt_open",
    "ktor_encrypt_transformer",
    "mac_transformer",
    "new_session_id",
    "random_bytes",
]

__version__: str
build_profile: str
CLOCK_SKEW: int
RECORD_SLACK: int

@final
class Transform:
    """A built-in transformer (MessageAuthentication, Digest, Encrypt, …)."""

    def write(self, value: str, name: str = "", now: Optional[int] = None) -> str: ...
    def read(
        self, value: str, name: str = "", now: Optional[int] = None
    ) -> Optional[tuple[str, bool]]: ...

@final
class Codec:
    """The wire codec of one registered session."""

    def __new__(
        cls,
        name: str,
        *,
        header: bool = False,
        encoding: str = "uri",
        chain: list[Transform] = ...,
        domain: Optional[str] = None,
        path: str = ...,  # "/"
        secure: bool = False,
        http_only: bool = True,
        same_site: Optional[str] = None,
        partitioned: bool = False,
        clocks: bool = False,
        idle: Optional[int] = None,
        absolute: Optional[int] = None,
        refresh: Optional[int] = None,
    ) -> Codec: ...
    def read_text(
        self, st: Any, text: str, now: Optional[int] = None, schema: Optional[Schema] = None
    ) -> None: ...
    def read_asgi(
        self, st: Any, headers: Any, now: Optional[int] = None, schema: Optional[Schema] = None
    ) -> None: ...
    def find_cookie(self, header: str) -> Optional[str]: ...
    def decode(self, raw: str) -> Optional[str]: ...
    def write(
        self, payload: Union[str, bytes], max_age: Optional[int] = None, now: Optional[int] = None
    ) -> str: ...
    def write_asgi(
        self, payload: Union[str, bytes], max_age: Optional[int] = None, now: Optional[int] = None
    ) -> bytes: ...
    def write_value(
        self,
        schema: Schema,
        value: Any,
        max_age: Optional[int] = None,
        asgi: bool = True,
        now: Optional[int] = None,
    ) -> Optional[Union[bytes, str]]: ...
    def render(
        self, transformed: str, max_age: Optional[int] = None, now: Optional[int] = None
    ) -> str: ...
    def write_clocked(
        self,
        payload: str,
        created: int,
        deadline: Optional[int] = None,
        max_age: Optional[int] = None,
        now: Optional[int] = None,
    ) -> str: ...
    def open_clocks(
        self,
        text: str,
        now: Optional[int] = None,
        seen: Optional[int] = None,
        left: Optional[float] = None,
    ) -> Optional[Clocks]: ...
    def open_record(
        self,
        st: Any,
        text: str,
        now: Optional[int] = None,
        left: Optional[float] = None,
        schema: Optional[Schema] = None,
    ) -> bool: ...
    def wrap_clocks(
        self, payload: str, created: int, deadline: Optional[int] = None, now: Optional[int] = None
    ) -> str: ...
    def storage_key(self, id: str) -> str: ...
    @property
    def clear_line(self) -> Optional[str]: ...

@final
class Clocks:
    """The clocks in front of a value that is alive (``Codec.open_clocks``)."""

    @property
    def payload(self) -> str: ...
    @property
    def created(self) -> int: ...
    @property
    def last_seen(self) -> int: ...
    @property
    def deadline(self) -> Optional[int]: ...
    @property
    def renew(self) -> bool: ...

@final
class Schema:
    """The reader and writer of JSONSerializer, executing a session type's description."""

    def __new__(
        cls,
        nodes: tuple[Any, ...],
        root: int,
        error: type[Exception],
        not_json: Callable[[Any], Exception],
    ) -> Schema: ...
    def decode(self, text: str) -> Optional[Any]: ...
    def load(self, text: Union[str, bytes]) -> Any: ...
    def dumps(self, value: Any) -> Optional[bytes]: ...

def mac_transformer(
    keys: list[bytes], algorithm: str = "sha256", max_age: Optional[int] = None
) -> Transform: ...
def digest_transformer(salt: bytes, algorithm: str = "sha384") -> Transform: ...
def new_session_id() -> str: ...
def random_bytes(n: int) -> bytes: ...
def encrypt_transformer(keys: list[bytes], max_age: Optional[int] = None) -> Transform: ...
def ktor_encrypt_transformer(
    encryption_key: bytes, sign_key: bytes, backward_compatible_read: bool = False
) -> Transform: ...

@final
class DirectoryStorage:
    """Sessions as files under a folder (see ``ferrosession.DirectoryStorage``)."""

    def __new__(
        cls,
        path: Union[str, os.PathLike[str]],
        cached: bool = True,
        cache_ttl: float = 60.0,
        shared: Union[bool, Literal["stat"]] = True,
        cache_max_entries: int = 100000,
    ) -> DirectoryStorage: ...
    def read(self, id: str) -> Optional[str]: ...
    def write(self, id: str, value: str, ttl: int) -> None: ...
    def invalidate(self, id: str) -> bool: ...
    def create(self, id: str, value: str, ttl: int) -> bool: ...
    def update(self, id: str, value: str, ttl: int) -> bool: ...
    def read_ttl(self, id: str) -> Optional[tuple[str, float]]: ...
    def touch(self, id: str, ttl: int) -> bool: ...
    def index_add(self, owner: str, key: str, ttl: int) -> None: ...
    def index_remove(self, owner: str, key: str) -> None: ...
    def index_list(self, owner: str) -> list[str]: ...
    def gc(self) -> int: ...
    @staticmethod
    def holds_layout(path: Union[str, os.PathLike[str]]) -> bool: ...
    @property
    def path(self) -> pathlib.Path: ...
    @property
    def cached(self) -> bool: ...
    @property
    def shared(self) -> bool: ...
    @property
    def revalidation(self) -> Literal["table", "stat", "none"]: ...
    def _set_clock_offset(self, seconds: float) -> None: ...
    def _io_counts(self) -> tuple[int, int, int]: ...
    def _table_status(self) -> str: ...
    def _cache_len(self) -> int: ...

def encrypt_open(
    keys: list[bytes],
    value: str,
    name: str = "",
    now: Optional[int] = None,
    max_age: Optional[int] = None,
) -> tuple[Optional[str], bool, Optional[str], str]: ...
def encrypt_envelope(
    value: str,
) -> tuple[Optional[tuple[int, bytes, Optional[int], int]], Optional[str], str]: ...
def encrypt_key_id(key: bytes) -> bytes: ...
def ktor_encrypt_open(
    encryption_key: bytes, sign_key: bytes, value: str, backward_compatible_read: bool = False
) -> tuple[Optional[str], bool, Optional[str], str]: ...

@final
class StarletteCodec:
    """Starlette's ``SessionMiddleware`` cookie (itsdangerous ``TimestampSigner``)."""

    def __new__(
        cls,
        secrets: list[bytes],
        max_age: Optional[int],
        name: Optional[bytes],
        prefix: bytes,
        suffix: bytes,
        clear_line: bytes,
        *,
        fast_loads: Any,
        fast_error: Any,
        loads: Any,
        dumps: Any,
        clock: Any = None,
        lazy_type: Any = None,
        not_read: Any = None,
        lazy: bool = True,
    ) -> StarletteCodec: ...
    def begin(self, scope: Any, send: Any) -> StarletteSend: ...
    def load(self, session: dict[str, Any], state: list[Any]) -> None: ...
    def finish(self, message: Any, scope: Any, state: list[Any]) -> None: ...
    def load_value(
        self, value: bytes, now: Optional[int] = None
    ) -> Optional[tuple[bytes, bool, bool]]: ...
    def dump(self, session: dict[str, Any], now: Optional[int] = None) -> bytes: ...
    def sign(self, json: bytes, now: Optional[int] = None) -> str: ...

@final
class StarletteSend:
    """The ``send`` a Starlette-compatible request hands to its app."""

    def __call__(self, message: Any) -> Any: ...

@final
class FlaskCodec:
    """Flask's ``SecureCookieSessionInterface`` cookie (``URLSafeTimedSerializer``)."""

    def __new__(
        cls, secrets: list[bytes], salt: bytes = ..., key_derivation: str = "hmac"
    ) -> FlaskCodec: ...
    def load(
        self, value: bytes, max_age: Optional[int] = None, now: Optional[int] = None
    ) -> Optional[tuple[bytes, bool, bool]]: ...
    def load_header(
        self, header: str, name: str, max_age: Optional[int] = None, now: Optional[int] = None
    ) -> Optional[tuple[bytes, bool, bool]]: ...
    def dump(
        self, session: dict[str, Any], now: Optional[int] = None, compress_min: int = 0
    ) -> Optional[str]: ...
    def dump_json(self, json: bytes, now: Optional[int] = None, compress_min: int = 0) -> str: ...

def http_date(seconds: int) -> Optional[str]: ...

@final
class DjangoSigner:
    """Django's `signing` format (src/bindings/django.rs)."""

    key_count: int

    def __new__(cls, secrets: list[bytes], salt: str = ...) -> DjangoSigner: ...
    def dumps(
        self,
        json: bytes,
        compress: bool = True,
        compress_min: int = 0,
        now: Optional[int] = None,
    ) -> str: ...
    def loads(
        self, signed: str, max_age: Optional[int] = None, now: Optional[int] = None
    ) -> Optional[tuple[bytes, int, bool]]: ...

# Test-only hooks (src/bindings/compat/testing.rs): not API.
def _test_compat_json(obj: object, style: str = "starlette") -> Optional[str]: ...
def _test_cookie_value(header: str, name: str, style: str) -> Optional[bytes]: ...
