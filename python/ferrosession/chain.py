"""The transformer chain a wire value goes through (a client-side value, or a
server-side id): in Rust when every step is built in, step by step otherwise."""

import logging
from typing import TYPE_CHECKING, Any, Optional

from ferrosession import _core
from ferrosession.transformers import BuiltinTransformer

if TYPE_CHECKING:
    from ferrosession.current import CurrentSessions
    from ferrosession.state import State
    from ferrosession.transport import Transport

__all__ = ["Chain"]

log = logging.getLogger("ferrosession")


class Chain:
    """Transformers applied in order on write and in reverse on read.

    ``fused``: every step is built in, so the codec runs the whole chain inside the
    one Rust call that finds and decodes the value (and, with a schema, reads it into
    its type); otherwise the codec decodes and Python runs the steps.
    """

    __slots__ = ("fused", "name", "steps")

    def __init__(self, name: str, steps: tuple[Any, ...]) -> None:
        self.name = name
        self.steps = steps
        self.fused = all(isinstance(t, BuiltinTransformer) for t in steps)

    @property
    def rust_steps(self) -> list[Any]:
        """The steps the codec runs itself (all of them, or none)."""
        return [t._core for t in self.steps] if self.fused else []

    def read(
        self,
        current: "CurrentSessions",
        transport: "Transport",
        st: "State",
        now: Optional[int],
        schema: Optional[_core.Schema],
    ) -> None:
        """Finds and verifies the incoming value into ``st`` (``present``, ``payload``,
        ``reissue``; fused, also the clocks the codec checks and the value ``schema``
        reads)."""
        if self.fused:
            transport.read(current, st, now, schema)
            return
        raw = current._raw(transport)
        if raw is None:
            return
        codec = transport.codec
        if not transport.header:
            raw = codec.find_cookie(raw)
            if raw is None:
                return
        st.present = True
        value: Optional[str] = codec.decode(raw)
        reissue = False
        for t in reversed(self.steps):
            if value is None:
                return
            if isinstance(t, BuiltinTransformer):
                opened = t._core.read(value, self.name)
                if opened is None:
                    return
                value, again = opened
                reissue = reissue or again
            else:
                try:
                    value = t.transform_read(value)
                except Exception as exc:  # a custom transformer choking on hostile input
                    log.debug("session %r: transformer %r raised %r", self.name, t, exc)
                    return
        if value is not None:
            st.payload = value
            if reissue:
                st.reissue = st.todo = True

    def write(self, codec: _core.Codec, text: str, max_age: Optional[int]) -> str:
        """The rendered header value carrying ``text``."""
        if self.fused:
            return codec.write(text, max_age)
        value = text
        for t in self.steps:
            value = (
                t._core.write(value, self.name)
                if isinstance(t, BuiltinTransformer)
                else t.transform_write(value)
            )
        return codec.render(value, max_age)
