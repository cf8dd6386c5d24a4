"""A registration's transport part: the cookie or the header a session travels in."""

from typing import TYPE_CHECKING, Optional

from ferrosession import _core
from ferrosession.state import Header, State

if TYPE_CHECKING:
    from ferrosession.current import CurrentSessions

__all__ = ["Transport"]


class Transport:
    """Where a session travels: a cookie, or a request / response header of its own.

    Knows where the incoming value is (the ASGI header key, the WSGI environ key), the
    response header that carries the outgoing one and what a response that read the
    session varies with. Its codec renders the lines (the ``Set-Cookie`` attribute
    suffix is built once); with ``secure="auto"`` a second codec renders them with
    ``Secure`` for requests that came over https.
    """

    __slots__ = (
        "clear_line",
        "clear_line_secure",
        "codec",
        "codec_secure",
        "header",
        "header_key",
        "response_key",
        "response_name",
        "secure_auto",
        "vary",
        "vary_asgi",
        "vary_header",
        "wsgi_key",
    )

    def __init__(
        self,
        name: str,
        *,
        header: bool,
        codec: _core.Codec,
        codec_secure: Optional[_core.Codec] = None,
    ) -> None:
        self.header = header
        self.codec = codec
        self.secure_auto = codec_secure is not None
        self.codec_secure = codec if codec_secure is None else codec_secure
        # the clearing Set-Cookie lines (None for a header), built once
        self.clear_line: Optional[str] = codec.clear_line
        self.clear_line_secure: Optional[str] = self.codec_secure.clear_line
        self.header_key = name.lower().encode("latin-1")
        self.wsgi_key = "HTTP_" + name.upper().replace("-", "_")
        # the response header that carries the value: its WSGI (str) and ASGI (bytes) name
        self.response_name = name if header else "Set-Cookie"
        self.response_key = self.header_key if header else b"set-cookie"
        self.vary = name if header else "Cookie"
        self.vary_asgi = (b"vary", self.vary.encode("latin-1"))
        # the planned Vary header of a response that read this session
        self.vary_header: Header = ("Vary", b"vary", self.vary_asgi[1], False, None)

    def read(
        self,
        current: "CurrentSessions",
        st: State,
        now: Optional[int],
        schema: Optional[_core.Schema],
    ) -> None:
        """Finds the incoming value and has the codec decode it into ``st`` (for a chain
        the codec runs itself: verified, and with ``schema`` read into its type), in one
        Rust call: over the ASGI header list as it is, or the WSGI environ's text."""
        headers = current._headers
        if headers is not None:
            self.codec.read_asgi(st, headers, now, schema)
            return
        raw = current._raw(self)
        if raw is not None:
            self.codec.read_text(st, raw, now, schema)

    def codec_for(self, https: bool) -> _core.Codec:
        """The codec that renders this request's lines (``https``: the request came
        over https and the registration has ``secure="auto"``)."""
        return self.codec_secure if https else self.codec

    def clearing(self, https: bool) -> Optional[str]:
        """The ``Set-Cookie`` value that expires the browser's cookie (``None`` for a
        header session: there is nothing to expire)."""
        return self.clear_line_secure if https else self.clear_line
