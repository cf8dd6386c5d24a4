"""One registered session, made of parts chosen once: :class:`Registration`."""

from typing import Any, Union

from ferrosession.homes import ClientHome, ServerHome
from ferrosession.lifetime import Lifetime
from ferrosession.transport import Transport

__all__ = ["Registration"]


class Registration:
    """A session type registered under a name, as :class:`~ferrosession.Sessions`
    builds it: its **transport** (the cookie or header it travels in), its **home**
    (client-side: the transformer chain; server-side: the storage), its **lifetime**
    and its **adapter** (the type's serializer). A request walks them in that order on
    the way in (the home reads through the chain, then the adapter decodes) and back
    on the way out.
    """

    __slots__ = (
        "adapter",
        "home",
        "lifetime",
        "name",
        "send_only_if_modified",
        "transport",
        "type",
    )

    def __init__(
        self,
        tp: type,
        name: str,
        *,
        transport: Transport,
        home: Union[ClientHome, ServerHome],
        lifetime: Lifetime,
        adapter: Any,
        send_only_if_modified: bool,
    ) -> None:
        self.type = tp
        self.name = name
        self.transport = transport
        self.home = home
        self.lifetime = lifetime
        self.adapter = adapter
        self.send_only_if_modified = send_only_if_modified

    def __repr__(self) -> str:
        where = "server-side" if self.home.server else "client-side"
        how = "header" if self.transport.header else "cookie"
        return f"<Registration {self.name!r}: {self.type.__name__}, {how}, {where}>"
