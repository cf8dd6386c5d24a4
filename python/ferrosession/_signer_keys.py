"""What the Flask and Quart session interfaces share: the Rust codec of an app's
itsdangerous keys, built again only when a key or a signing setting changes."""

from typing import Any, Optional, Union

from ferrosession import _core

# The key derivations Rust implements, by itsdangerous' names.
DERIVATIONS = ("concat", "django-concat", "hmac", "none")


def key_bytes(key: Union[str, bytes]) -> bytes:
    """itsdangerous' ``want_bytes``: text as UTF-8."""
    return key.encode("utf-8") if isinstance(key, str) else bytes(key)


class CodecCache:
    """One session interface's codec, keyed by what it is built from."""

    __slots__ = ("_cached",)

    def __init__(self) -> None:
        self._cached: Optional[tuple[tuple[Any, ...], Optional[_core.FlaskCodec]]] = None

    def codec(self, interface: Any, app: Any, sha1: tuple[Any, ...]) -> Optional[_core.FlaskCodec]:
        """The codec of ``app``'s current keys under ``interface``'s salt, derivation and
        digest; ``None`` when the framework's own code must run (a digest not in
        ``sha1``, an unknown key derivation)."""
        fallbacks = app.config.get("SECRET_KEY_FALLBACKS") or ()
        ident = (
            app.secret_key,
            tuple(fallbacks),
            interface.salt,
            interface.key_derivation,
            interface.digest_method,
        )
        cached = self._cached
        if cached is not None and cached[0] == ident:
            return cached[1]
        codec: Optional[_core.FlaskCodec] = None
        if interface.digest_method in sha1 and interface.key_derivation in DERIVATIONS:
            # the current key first, then the fallbacks newest first (as itsdangerous tries)
            secrets = [key_bytes(app.secret_key)]
            secrets += [key_bytes(k) for k in reversed(tuple(fallbacks))]
            codec = _core.FlaskCodec(secrets, key_bytes(interface.salt), interface.key_derivation)
        self._cached = (ident, codec)
        return codec
