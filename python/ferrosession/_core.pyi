"""The Rust extension. Everything here is internal; the public API is ``ferrosession``."""

from typing import Optional

__version__: str
build_profile: str

class Transform:
    """A built-in transformer (MessageAuthentication, Digest, Encrypt, …)."""

    def write(self, value: str, name: str = "", now: Optional[int] = None) -> str: ...
    def read(
        self, value: str, name: str = "", now: Optional[int] = None
    ) -> Optional[tuple[str, bool]]: ...

class Codec:
    """The wire codec of one registered session."""

    def __init__(
        self,
        name: str,
        *,
        header: bool = False,
        encoding: str = "uri",
        chain: list[Transform] = ...,
        domain: Optional[str] = None,
        path: str = "/",
        secure: bool = False,
        http_only: bool = True,
        same_site: Optional[str] = None,
        partitioned: bool = False,
    ) -> None: ...
    def read_cookie(
        self, header: str, now: Optional[int] = None
    ) -> Optional[tuple[Optional[str], bool]]: ...
    def read_value(self, raw: str, now: Optional[int] = None) -> tuple[Optional[str], bool]: ...
    def find_cookie(self, header: str) -> Optional[str]: ...
    def decode(self, raw: str) -> Optional[str]: ...
    def write(self, payload: str, max_age: Optional[int] = None, now: Optional[int] = None) -> str: ...
    def render(
        self, transformed: str, max_age: Optional[int] = None, now: Optional[int] = None
    ) -> str: ...
    @property
    def clear_line(self) -> Optional[str]: ...

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
