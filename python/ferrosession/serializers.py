"""Turning a session value into text and back.

A session type's serializer is any object with ``serialize(value) -> str`` and
``deserialize(text) -> value`` (see :class:`Serializer`). The default one,
:class:`JSONSerializer`, writes compact JSON with the fields of a dataclass in
declaration order (the format Ktor 3 writes, so both can share a cookie) and reads it
back through a description of the type built once from its annotations (``_describe``),
which the Rust core's one JSON reader and writer execute (``_core.Schema``). A
``TypedDict`` is described the same way: its keys and their types are checked like a
dataclass's fields.

Reading is strict: a payload that no longer fits the type (a field renamed, a wrong JSON
type) raises :class:`DeserializationError`, which the session layer turns into an absent
session. Unknown keys are ignored and missing keys take the field's default.
"""

import dataclasses
import enum
import sys
import types
import typing
from datetime import datetime
from typing import Any, Generic, Literal, Optional, Protocol, TypeVar, Union
from uuid import UUID

import orjson

from ferrosession import _core
from ferrosession.errors import ConfigurationError, SessionError

__all__ = ["DeserializationError", "JSONSerializer", "Serializer"]

T = TypeVar("T")

_NoneType = type(None)
_UnionType: Any = getattr(types, "UnionType", Union)  # ``X | Y`` (Python 3.10+)


class DeserializationError(SessionError, ValueError):
    """A payload does not fit its session type (or is not JSON at all).

    The session layer turns it into an absent session; a custom serializer raises it
    for the same purpose. The message names the place and the JSON types involved but
    never the client-supplied values themselves.

    Attributes:
        reason: What is wrong, e.g. ``"expected integer, got string"``.
        path: Where, as segments such as ``".cart"``, ``"[2]"``, ``"['key']"``.
    """

    def __init__(self, reason: str, path: tuple[str, ...] = ()) -> None:
        """Create the error.

        Args:
            reason: What is wrong.
            path: Where in the payload, outermost segment first.
        """
        super().__init__(reason, path)
        self.reason = reason
        self.path = path

    def __str__(self) -> str:
        """Return ``"$.cart[2]: reason"``, or just the reason at the top level."""
        if not self.path:
            return self.reason
        return f"${''.join(self.path)}: {self.reason}"

    def _within(self, segment: str) -> "DeserializationError":
        return DeserializationError(self.reason, (segment, *self.path))


@typing.runtime_checkable
class Serializer(Protocol[T]):
    """What a session type's serializer provides.

    Any object with these two methods will do; it need not subclass this protocol.
    """

    def serialize(self, value: T) -> str:
        """Return the text form of ``value``.

        Args:
            value: A value of the session type.

        Returns:
            The text that the transformers and storage receive.
        """
        ...

    def deserialize(self, text: str) -> T:
        """Rebuild a value from its text form.

        Args:
            text: What :meth:`serialize` returned (or a client's forgery of it).

        Returns:
            The session value.

        Raises:
            DeserializationError: ``text`` does not describe a value of the type.
        """
        ...


class JSONSerializer(Generic[T]):
    """The default serializer: compact JSON as orjson writes it, read back strictly.

    Supported types, at any depth: dataclasses (frozen or not, with defaults and
    ``default_factory``), ``list[X]``, ``tuple[X, ...]``, ``tuple[X, Y]``,
    ``dict[str, X]``, ``Optional[X]`` / ``X | None`` and other unions (alternatives are
    tried in declaration order, ``int`` before ``float``), ``Literal[...]``, ``int``,
    ``float``, ``str``, ``bool``, ``None``, ``datetime`` (ISO 8601), ``UUID``,
    ``Enum`` (by value), ``NewType``, ``Any`` and ``TypedDict``. A session type is a
    dataclass, a ``TypedDict`` or a plain ``dict`` (``dict[str, X]`` too).

    Writing: dataclass fields in declaration order (only the declared fields; a
    ``TypedDict``'s declared keys, in the dict's order), no spaces, non-ASCII kept as
    UTF-8. orjson writes ``NaN`` and infinities as ``null``,
    which a ``float`` field then rejects, and refuses integers outside 64 bits.

    Reading: unknown keys are ignored; a missing key takes the field's default or
    ``default_factory`` (a missing key without one fails; a ``TypedDict`` value simply
    lacks a key that is not required); JSON types are checked
    strictly: no ``"12"`` for ``12``, no ``true`` for an ``int`` or a ``float``, but an
    integer is accepted (and converted) for a ``float``.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class S:
        ...     userId: str
        ...     cart: list[str]
        >>> JSONSerializer(S).serialize(S("id 2", []))
        '{"userId":"id 2","cart":[]}'
    """

    __slots__ = ("_cls", "_fast", "_keys", "_type")
    # a payload it cannot read is an old or foreign value, not a bug (logged at DEBUG)
    _builtin = True

    def __init__(self, tp: type[T]) -> None:
        """Describe ``tp`` for the Rust reader and writer.

        Args:
            tp: The session type: a dataclass, a ``TypedDict``, ``dict`` or
                ``dict[str, X]``.

        Raises:
            ConfigurationError: ``tp`` is none of these, one of its annotations is not
                supported (the message names the field and the type), or its postponed
                annotations cannot be resolved.
        """
        self._type: Any = tp
        # A TypedDict's declared keys: only those are written, as for a dataclass.
        self._keys: Optional[frozenset[str]] = None
        self._cls: type = dict
        if is_typed_dict(tp):
            self._keys = frozenset(_resolve_hints(tp))
        elif isinstance(tp, type) and dataclasses.is_dataclass(tp):
            self._cls = tp
        elif not (tp is dict or typing.get_origin(tp) is dict):
            raise ConfigurationError(
                f"a session type must be a dataclass or dict (or a TypedDict), not {_type_name(tp)}"
            )
        # the type's reader and writer (the session layer calls them directly too)
        self._fast = _core.Schema(*_describe(tp), DeserializationError, _not_json)

    def __repr__(self) -> str:
        """Return ``JSONSerializer(TypeName)``."""
        return f"JSONSerializer({_type_name(self._type)})"

    def serialize(self, value: T) -> str:
        """Return compact JSON for ``value``.

        Args:
            value: An instance of the session type.

        Returns:
            The JSON text, e.g. ``{"userId":"id 2","cart":[]}``.

        Raises:
            TypeError: ``value`` is not an instance of the session type, or holds
                something JSON cannot carry (bytes, a set, a non-``str`` dict key, an
                integer beyond 64 bits).
        """
        return self._dumps(value).decode()

    def _dumps(self, value: T) -> bytes:
        """:meth:`serialize` as UTF-8 bytes (what the session layer hands to Rust)."""
        data: Optional[bytes] = self._fast.dumps(value)
        if data is not None:
            return data
        # orjson writes what the Rust writer leaves to it by design (see
        # bindings/json_write.rs): floats (its shortest round-trip form), datetimes (its
        # RFC 3339 form), subclasses of str/int/list/dict, and it raises the TypeError
        # for what JSON cannot carry.
        if not isinstance(value, self._cls):
            raise TypeError(f"{self!r} cannot serialize a {type(value).__qualname__} value")
        obj: Any = value
        keys = self._keys
        if keys is not None and not keys.issuperset(obj):
            obj = {k: v for k, v in obj.items() if k in keys}
        return orjson.dumps(obj, default=_encode_default, option=orjson.OPT_PASSTHROUGH_DATACLASS)

    def deserialize(self, text: str) -> T:
        """Parse ``text`` and build a value of the session type from it.

        Args:
            text: JSON text, as :meth:`serialize` writes it.

        Returns:
            A new instance of the session type.

        Raises:
            DeserializationError: ``text`` is not JSON, or does not fit the type.
        """
        return self._fast.load(text)  # type: ignore[no-any-return]


# --- the description of a type -----------------------------------------------------
#
# `_describe` turns a session type into a table of nodes (tuples, children by index)
# that `_core.Schema` compiles once; its decoder and writer execute it.
# A dataclass or TypedDict has one node however often it occurs, so a recursive type
# refers to its own node.

# the node of each annotation that needs no arguments
_LEAVES: dict[Any, tuple[Any, ...]] = {
    str: ("str",),
    int: ("int",),
    bool: ("bool",),
    float: ("float",),
    _NoneType: ("none",),
    None: ("none",),
    Any: ("any",),
    object: ("any",),
    list: ("array",),
    dict: ("object",),
}
# Types whose JSON value is a hashable scalar: what Literal and Enum values may be.
_SCALARS = frozenset((str, int, float, bool, _NoneType))


class _Describer:
    """Builds the node table of one session type."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.classes: dict[type, int] = {}  # dataclass / TypedDict -> its node

    def add(self, node: tuple[Any, ...]) -> int:
        self.nodes.append(node)
        return len(self.nodes) - 1

    def reserve(self, cls: type) -> Optional[int]:
        """The node of ``cls`` if it has one already (or is being described), else
        ``None`` after reserving its place (filled by the caller)."""
        index = self.classes.get(cls)
        if index is not None:
            return index
        self.classes[cls] = self.add(())
        return None

    def describe(self, tp: Any, where: str) -> int:
        """The node of annotation ``tp``; ``where`` names it in errors."""
        try:
            leaf = _LEAVES.get(tp)
        except TypeError:  # an unhashable annotation
            leaf = None
        if leaf is not None:
            return self.add(leaf)
        if tp is datetime:
            return self.add(("parsed", datetime.fromisoformat, "ISO 8601 datetime", "an"))
        if tp is UUID:
            return self.add(("parsed", UUID, "UUID", "a"))
        supertype = getattr(tp, "__supertype__", None)
        if supertype is not None:  # typing.NewType
            return self.describe(supertype, where)
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin is Union or origin is _UnionType:
            return self.union(args, where)
        if origin is Literal:
            return self.literal(args, where)
        if origin is list:
            return self.add(("list", self.describe(args[0], where)))
        if tp is tuple:
            return self.add(("tuple", self.add(("any",))))
        if origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return self.add(("tuple", self.describe(args[0], where)))
            if args == ((),):  # tuple[()] on Python < 3.11
                args = ()
            return self.add(("fixed", tuple(self.describe(a, where) for a in args)))
        if origin is dict:
            if args[0] not in (str, Any, object):
                raise ConfigurationError(
                    f"{where}: unsupported type {_type_name(tp)}: JSON object keys are "
                    "strings, so a dict field must be dict[str, ...]"
                )
            return self.add(("dict", self.describe(args[1], where)))
        if origin is None and isinstance(tp, type):
            if is_typed_dict(tp):
                return self.typed_dict(tp)
            if issubclass(tp, enum.Enum):
                return self.enum(tp, where)
            if dataclasses.is_dataclass(tp):
                return self.dataclass(tp)
        raise ConfigurationError(
            f"{where}: unsupported type {_type_name(tp)}; a session field may be a "
            "dataclass, TypedDict, list, tuple, dict[str, ...], Optional, Union, Literal, "
            "int, float, str, bool, None, datetime, UUID, Enum or Any"
        )

    def union(self, args: tuple[Any, ...], where: str) -> int:
        nullable = _NoneType in args
        members = [a for a in args if a is not _NoneType]
        if len(members) == 1:
            return self.add(("optional", self.describe(members[0], where)))
        # Try the alternatives in declaration order, except that int goes before float,
        # so that ``float | int`` reads 3 back as 3, not 3.0.
        if int in members and float in members:
            members.remove(int)
            members.insert(members.index(float), int)
        alternatives = tuple(self.describe(a, where) for a in members)
        text = "fits none of " + " | ".join(_type_name(a) for a in args)
        return self.add(("union", alternatives, nullable, text))

    def literal(self, args: tuple[Any, ...], where: str) -> int:
        table: dict[tuple[type, Any], Any] = {}
        for arg in args:
            raw = arg.value if isinstance(arg, enum.Enum) else arg
            table[_scalar_key(raw, where)] = arg
        text = "is not one of " + " | ".join(repr(a) for a in args)
        return self.add(("choice", table, None, (), text))

    def enum(self, cls: type[enum.Enum], where: str) -> int:
        table = {
            _scalar_key(member.value, f"{where} ({cls.__qualname__}.{name})"): member
            for name, member in cls.__members__.items()
        }
        # a value of one of these types may still be a member: a Flag combination
        value_types = tuple({tp for tp, _ in table})
        return self.add(
            ("choice", table, cls, value_types, f"is not a value of {cls.__qualname__}")
        )

    def dataclass(self, cls: type) -> int:
        index = self.reserve(cls)
        if index is not None:
            return index
        index = self.classes[cls]
        hints = _resolve_hints(cls)
        plain = _plain_init(cls)
        fields = []
        for f in dataclasses.fields(cls):
            if not f.init:
                continue
            node = self.describe(hints.get(f.name, f.type), f"{cls.__qualname__}.{f.name}")
            if f.default is not dataclasses.MISSING:
                missing, default = (_DEFAULT, f.default) if plain else (_OMIT, None)
            elif f.default_factory is not dataclasses.MISSING:
                missing, default = (_FACTORY, f.default_factory) if plain else (_OMIT, None)
            else:
                missing, default = _REQUIRED, None
            fields.append((f.name, "." + f.name, node, missing, default))
        # what is written: every field, in declaration order (init=False ones too)
        names = tuple(f.name for f in dataclasses.fields(cls))
        expected = f"object ({cls.__qualname__})"
        self.nodes[index] = ("dataclass", cls, plain is not None, tuple(fields), names, expected)
        return index

    def typed_dict(self, cls: type) -> int:
        index = self.reserve(cls)
        if index is not None:
            return index
        index = self.classes[cls]
        required = _required_keys(cls)
        fields = []
        for name, hint in _resolve_hints(cls).items():
            node = self.describe(hint, f"{cls.__qualname__}[{name!r}]")
            missing = _REQUIRED if name in required else _OMIT
            fields.append((name, _key_segment(name), node, missing, None))
        expected = f"object ({cls.__qualname__})"
        self.nodes[index] = ("typeddict", tuple(fields), expected)
        return index


# what a missing key of a field takes: an error, the default, the factory's value, or
# nothing (a key a TypedDict does not require; a default the class's __init__ fills)
_REQUIRED, _DEFAULT, _FACTORY, _OMIT = 0, 1, 2, 3


def _describe(tp: Any) -> tuple[tuple[Any, ...], int]:
    """The node table of session type ``tp`` for ``_core.Schema``, and its root."""
    describer = _Describer()
    root = describer.describe(tp, "session type")
    return tuple(describer.nodes), root


def _not_json(text: Any) -> DeserializationError:
    """The error for ``text`` that the Rust reader found is no JSON: orjson's words
    for what is wrong (the error path only)."""
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return DeserializationError(f"not valid JSON: {exc.msg}")
    # orjson reads it: deeper than the Rust reader goes, or a disagreement
    return DeserializationError("nested too deeply")


# --- writing -----------------------------------------------------------------------

_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _encode_default(obj: Any) -> Any:
    # orjson's own dataclass support writes the instance ``__dict__``, which also holds
    # non-field attributes (a ``cached_property``, something set in ``__post_init__``).
    # Those must not leak into a cookie, so dataclasses come here and only their fields
    # are written.
    cls = type(obj)
    names = _FIELD_NAMES.get(cls)
    if names is None:
        if not dataclasses.is_dataclass(cls):
            raise TypeError
        names = tuple(f.name for f in dataclasses.fields(cls))
        _FIELD_NAMES[cls] = names
    return {name: getattr(obj, name) for name in names}


def _type_name(tp: Any) -> str:
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__qualname__
    return repr(tp).replace("typing.", "")


def _scalar_key(value: Any, where: str) -> tuple[type, Any]:
    if type(value) not in _SCALARS:
        raise ConfigurationError(
            f"{where}: value {value!r} has no JSON form this serializer reads back "
            "(allowed: str, int, float, bool, None)"
        )
    return (type(value), value)


def _key_segment(key: str) -> str:
    return f"[{key[:32]!r}]" if len(key) <= 32 else f"[{key[:32]!r}...]"


def _resolve_hints(cls: type, *, extras: bool = False) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls, include_extras=extras)
    except Exception as exc:  # NameError mostly; any error in a string annotation
        raise ConfigurationError(
            f"cannot resolve the annotations of {cls.__qualname__} "
            f"({type(exc).__name__}: {exc}); with postponed annotations "
            "(`from __future__ import annotations`) every type a field names must be "
            "importable from the module, so define the session type and the types it "
            "uses at module level, not inside a function"
        ) from exc


def is_typed_dict(tp: object) -> bool:
    """Whether ``tp`` is a ``TypedDict`` class (of ``typing`` or ``typing_extensions``)."""
    if typing.is_typeddict(tp):
        return True
    extensions = sys.modules.get("typing_extensions")  # only if something imported it
    return extensions is not None and bool(extensions.is_typeddict(tp))


def _qualifier_forms(name: str) -> tuple[Any, ...]:
    return tuple(
        getattr(module, name)
        for module in (typing, sys.modules.get("typing_extensions"))
        if module is not None and hasattr(module, name)
    )


def _required_keys(cls: type) -> frozenset[str]:
    """The keys a TypedDict requires. ``__required_keys__`` misses ``Required`` and
    ``NotRequired`` in postponed annotations (``from __future__ import annotations``),
    so the evaluated annotations decide where they say."""
    required = set(getattr(cls, "__required_keys__", ()))
    yes, no = _qualifier_forms("Required"), _qualifier_forms("NotRequired")
    wrappers = (typing.Annotated, *_qualifier_forms("ReadOnly"))
    for name, hint in _resolve_hints(cls, extras=True).items():
        while True:
            origin = typing.get_origin(hint)
            if origin in yes:
                required.add(name)
            elif origin in no:
                required.discard(name)
            elif origin in wrappers:
                hint = typing.get_args(hint)[0]
                continue
            break
    return frozenset(required)


def _plain_init(cls: type) -> Optional[tuple[tuple[str, Any, Any], ...]]:
    """For a dataclass whose ``__init__`` only stores its fields (the generated one, no
    ``__post_init__``, no slots, every field in ``__init__``): each field's
    (name, default, default_factory), so a value can be built by filling ``__dict__``
    directly, which skips the frozen-dataclass ``__init__`` (a third of a read's cost).
    ``None`` when that would not be the same as calling the class."""
    params = getattr(cls, "__dataclass_params__", None)
    init = cls.__dict__.get("__init__")
    if (
        params is None
        or not params.init
        or init is None
        or getattr(getattr(init, "__code__", None), "co_filename", None) != "<string>"
        or hasattr(cls, "__post_init__")
        or "__slots__" in cls.__dict__
        or type(cls) is not type
        or cls.__new__ is not object.__new__  # type: ignore[comparison-overlap]
    ):
        return None
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            return None
        out.append((f.name, f.default, f.default_factory))
    return tuple(out)
