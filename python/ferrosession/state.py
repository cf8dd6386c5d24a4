"""What one request knows and wants of one registered session: :class:`State`."""

from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from ferrosession.registration import Registration

__all__ = ["CLEAR", "NONE", "SET", "Guard", "Header", "Op", "State"]

# what the request does with the session
NONE, SET, CLEAR = 0, 1, 2


class Guard:
    """Storage operations (and the header that goes with them) that stand or fall
    together: once one of them reports ``False`` (the entry it needed is gone, so a
    logout won the race), the rest are skipped and the header is not sent."""

    __slots__ = ("ok",)

    def __init__(self) -> None:
        self.ok = True


# a storage operation: (the server home, method name, arguments, guard)
Op = tuple[Any, str, tuple[Any, ...], Optional[Guard]]
# a response header: (name, ASGI name, value, is a session cookie, guard)
Header = tuple[str, bytes, Any, bool, Optional[Guard]]


class State:
    """One registered session in one request. The defaults live on the class, so a new
    state costs one attribute write; a read writes only what differs from them (the
    Rust codec writes these fields by name, see ``src/bindings/found.rs``)."""

    reg: "Registration"
    loaded = False  # the incoming value has been looked up
    varies = False  # the response depends on the incoming value (it gets Vary)
    present = False  # something of this name came in, valid or not
    value: Any = None  # the incoming value
    payload: Optional[str] = None  # its serialized text (when it may be issued again)
    reissue = False  # verified by a retired key: send it again
    unknown = False  # server-side: the incoming id is not in the storage
    sid: Optional[str] = None  # server-side id (incoming and known, or minted)
    action = NONE
    # the response has work for the session besides its action: a re-issue or renewal
    # (reissue, renew), an unknown or ended id to clear (unknown), entries to delete
    # (delete_ids, purges). Set with them, so the plan passes over a session that was
    # only read with one check.
    todo = False
    new: Any = None
    # the rendered Set-Cookie / header value of `new` (str; bytes from the ASGI write)
    out: Any = None
    force = False  # regenerate: sent even when unchanged
    delete_ids: tuple[str, ...] = ()
    # lifetimes
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

    def __init__(self, reg: "Registration") -> None:
        self.reg = reg

    def unchanged(self) -> bool:
        """``send_only_if_modified``: the value set equals the incoming one (and was not
        forced out by ``regenerate``), so nothing is sent or stored."""
        return (
            self.reg.send_only_if_modified
            and not self.force
            and self.value is not None
            and self.new is not self.value
            and self.new == self.value
        )
