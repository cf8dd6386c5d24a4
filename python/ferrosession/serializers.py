"""Turning a session value into text and back.

A session type's serializer is any object with ``serialize(value) -> str`` and
``deserialize(text) -> value`` (see :class:`Serializer`). The default one,
:class:`JSONSerializer`, writes compact JSON with the fields of a dataclass in
declaration order (the format Ktor 3 writes, so both can share a cookie) and reads it
back through a decoder compiled once from the type's annotations. A ``TypedDict`` is
read by the same machinery: its keys and their types are checked like a dataclass's
fields.

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
from typing import Any, Callable, Generic, Literal, Optional, Protocol, TypeVar, Union
from uuid import UUID

import orjson

from ferrosession import _core
from ferrosession.errors import ConfigurationError, SessionError

__all__ = ["DeserializationError", "JSONSerializer", "Serializer"]

T = TypeVar("T")

_Decoder = Callable[[Any], Any]
_NoneType = type(None)
_UnionType: Any = getattr(types, "UnionType", Union)  # ``X | Y`` (Python 3.10+)
_MISSING: Any = object()
_JSON_NAMES: dict[type, str] = {
    dict: "object",
    list: "array",
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    _NoneType: "null",
}
# Types whose JSON value is a hashable scalar: what Literal and Enum values may be.
_SCALARS = frozenset((str, int, float, bool, _NoneType))


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
    """The default serializer: compact JSON through orjson, read back strictly.

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

    __slots__ = ("_cls", "_decode", "_fast", "_keys", "_names", "_type")
    # a payload it cannot read is an old or foreign value, not a bug (logged at DEBUG)
    _builtin = True

    def __init__(self, tp: type[T]) -> None:
        """Compile the decoder of ``tp``.

        Args:
            tp: The session type: a dataclass, a ``TypedDict``, ``dict`` or
                ``dict[str, X]``.

        Raises:
            ConfigurationError: ``tp`` is none of these, one of its annotations is not
                supported (the message names the field and the type), or its postponed
                annotations cannot be resolved.
        """
        self._type: Any = tp
        # The field names when a value's __dict__ is exactly its fields (then it is
        # written straight from __dict__).
        self._names: Optional[tuple[str, ...]] = None
        # A TypedDict's declared keys: only those are written, as for a dataclass.
        self._keys: Optional[frozenset[str]] = None
        self._cls: type = dict
        if is_typed_dict(tp):
            self._decode: _Decoder = _compile_typed_dict(tp, {})
            self._keys = frozenset(_resolve_hints(tp))
        elif isinstance(tp, type) and dataclasses.is_dataclass(tp):
            self._cls = tp
            self._decode = _compile_dataclass(tp, {})
            plain = _plain_init(tp)
            if plain is not None:
                self._names = tuple(name for name, _, _ in plain)
        elif tp is dict or typing.get_origin(tp) is dict:
            self._decode = _compile(tp, "session type", {})
        else:
            raise ConfigurationError(
                f"a session type must be a dataclass or dict (or a TypedDict), not {_type_name(tp)}"
            )
        # The typed reader in Rust, for the types it decodes exactly as `_decode` does.
        spec = _fast_spec(tp, set())
        self._fast: Any = None if spec is None else _core.Schema(spec)

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
        """:meth:`serialize` as UTF-8 bytes (what orjson writes; the session layer hands
        them to Rust as they are)."""
        fast = self._fast
        if fast is not None:
            # plain values: written in Rust, exactly as orjson writes them below
            data: Optional[bytes] = fast.dumps(value)
            if data is not None:
                return data
        names = self._names
        if names is not None and type(value) is self._cls:
            attrs = value.__dict__
            if tuple(attrs) == names:
                return orjson.dumps(
                    attrs, default=_encode_default, option=orjson.OPT_PASSTHROUGH_DATACLASS
                )
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
        fast = self._fast
        if fast is not None and type(text) is str:
            # JSON straight to the value in one Rust call; None: it cannot be sure (a
            # mismatch, malformed JSON, JSON it leaves to orjson): the path below decides
            value = fast.decode(text)
            if value is not None:
                return value  # type: ignore[no-any-return]
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise DeserializationError(f"not valid JSON: {exc.msg}") from None
        try:
            return self._decode(obj)  # type: ignore[no-any-return]
        except RecursionError:
            raise DeserializationError("nested too deeply") from None


# --- reading: the typed fast path in Rust ------------------------------------------

_FAST_SCALARS: dict[Any, str] = {
    str: "str",
    int: "int",
    bool: "bool",
    float: "float",
    _NoneType: "none",
    None: "none",
    Any: "any",
    object: "any",
    list: "array",
    dict: "object",
}


def _fast_spec(tp: Any, active: set[type]) -> Any:
    """The spec of ``_core.Schema`` for annotation ``tp``, or ``None`` when the Rust
    reader does not cover it (then the whole type is read in Python). Covered: str,
    int, bool, float, None, Any, list, list[X], dict, dict[str, X], Optional[X],
    NewType, and dataclasses that `_plain_init` fills straight (not recursive)."""
    try:
        scalar = _FAST_SCALARS.get(tp)
    except TypeError:  # an unhashable annotation
        return None
    if scalar is not None:
        return scalar
    supertype = getattr(tp, "__supertype__", None)
    if supertype is not None:  # typing.NewType
        return _fast_spec(supertype, active)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Union or origin is _UnionType:
        members = [a for a in args if a is not _NoneType]
        if len(members) != 1 or len(args) != 2:
            return None
        inner = _fast_spec(members[0], active)
        return None if inner is None else ("optional", inner)
    if origin is list and len(args) == 1:
        inner = _fast_spec(args[0], active)
        if inner == "any":
            return "array"
        return None if inner is None else ("list", inner)
    if origin is dict and len(args) == 2 and args[0] in (str, Any, object):
        inner = _fast_spec(args[1], active)
        if inner == "any":
            return "object"
        return None if inner is None else ("dict", inner)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp) and tp not in active:
        plain = _plain_init(tp)
        if plain is None:
            return None
        hints = _resolve_hints(tp)
        active.add(tp)
        try:
            fields = []
            for f, (name, default, factory) in zip(dataclasses.fields(tp), plain, strict=True):
                spec = _fast_spec(hints.get(name, f.type), active)
                if spec is None:
                    return None
                if default is not dataclasses.MISSING:
                    fields.append((name, spec, 1, default))
                elif factory is not dataclasses.MISSING:
                    fields.append((name, spec, 2, factory))
                else:
                    fields.append((name, spec, 0, None))
        finally:
            active.discard(tp)
        return ("dataclass", tp, tuple(fields))
    return None


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


# --- reading: primitive decoders ---------------------------------------------------


def _json_type(value: Any) -> str:
    return _JSON_NAMES.get(type(value), type(value).__name__)


def _mismatch(expected: str, value: Any) -> DeserializationError:
    return DeserializationError(f"expected {expected}, got {_json_type(value)}")


def _decode_any(value: Any) -> Any:
    return value


def _decode_str(value: Any) -> Any:
    if type(value) is str:
        return value
    raise _mismatch("string", value)


def _decode_int(value: Any) -> Any:
    if type(value) is int:
        return value
    raise _mismatch("integer", value)


def _decode_bool(value: Any) -> Any:
    if type(value) is bool:
        return value
    raise _mismatch("boolean", value)


def _decode_none(value: Any) -> Any:
    if value is None:
        return None
    raise _mismatch("null", value)


def _decode_float(value: Any) -> Any:
    tp = type(value)
    if tp is float:
        return value
    if tp is int:
        return float(value)
    raise _mismatch("number", value)


def _decode_datetime(value: Any) -> Any:
    if type(value) is not str:
        raise _mismatch("ISO 8601 datetime string", value)
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise DeserializationError("not an ISO 8601 datetime") from None


def _decode_uuid(value: Any) -> Any:
    if type(value) is not str:
        raise _mismatch("UUID string", value)
    try:
        return UUID(value)
    except ValueError:
        raise DeserializationError("not a UUID") from None


def _decode_object(value: Any) -> Any:
    if type(value) is dict:
        return value
    raise _mismatch("object", value)


def _decode_array(value: Any) -> Any:
    if type(value) is list:
        return value
    raise _mismatch("array", value)


# Decoders that return their input unchanged once its type is exactly this one:
# containers check such items inline instead of calling the decoder.
_EXACT: dict[_Decoder, type] = {
    _decode_str: str,
    _decode_int: int,
    _decode_bool: bool,
    _decode_none: _NoneType,
}
_PRIMITIVES: dict[Any, _Decoder] = {
    str: _decode_str,
    int: _decode_int,
    bool: _decode_bool,
    float: _decode_float,
    _NoneType: _decode_none,
    None: _decode_none,
    datetime: _decode_datetime,
    UUID: _decode_uuid,
    Any: _decode_any,
    object: _decode_any,
}


# --- reading: the compiler ---------------------------------------------------------

_Memo = dict[type, list[Any]]


def _type_name(tp: Any) -> str:
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__qualname__
    return repr(tp).replace("typing.", "")


def _compile(tp: Any, where: str, memo: _Memo) -> _Decoder:
    """Return the decoder of annotation ``tp``; ``where`` names it in errors."""
    try:
        primitive = _PRIMITIVES.get(tp)
    except TypeError:  # an unhashable annotation
        primitive = None
    if primitive is not None:
        return primitive
    supertype = getattr(tp, "__supertype__", None)
    if supertype is not None:  # typing.NewType
        return _compile(supertype, where, memo)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Union or origin is _UnionType:
        return _compile_union(args, where, memo)
    if origin is Literal:
        return _compile_literal(args, where)
    if tp is list:
        return _decode_array
    if origin is list:
        return _compile_list(_compile(args[0], where, memo))
    if tp is tuple:
        return _compile_tuple(_decode_any, None)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return _compile_tuple(_compile(args[0], where, memo), None)
        if args == ((),):  # tuple[()] on Python < 3.11
            args = ()
        return _compile_tuple(None, [_compile(a, where, memo) for a in args])
    if tp is dict:
        return _decode_object
    if origin is dict:
        if args[0] not in (str, Any, object):
            raise ConfigurationError(
                f"{where}: unsupported type {_type_name(tp)}: JSON object keys are "
                "strings, so a dict field must be dict[str, ...]"
            )
        return _compile_dict(_compile(args[1], where, memo))
    if origin is None and isinstance(tp, type):
        if is_typed_dict(tp):
            return _compile_typed_dict(tp, memo)
        if issubclass(tp, enum.Enum):
            return _compile_enum(tp, where)
        if dataclasses.is_dataclass(tp):
            return _compile_dataclass(tp, memo)
    raise ConfigurationError(
        f"{where}: unsupported type {_type_name(tp)}; a session field may be a "
        "dataclass, TypedDict, list, tuple, dict[str, ...], Optional, Union, Literal, int, float, "
        "str, bool, None, datetime, UUID, Enum or Any"
    )


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


def _compiled(cls: type, memo: _Memo) -> Optional[_Decoder]:
    """The decoder of a class compiled already, or being compiled (a recursive type: a
    forward resolved once it is); ``None`` for a new one, whose cell is then reserved."""
    seen = memo.get(cls)
    if seen is None:
        memo[cls] = [None]
        return None
    if seen[0] is not None:
        return typing.cast("_Decoder", seen[0])

    def forward(value: Any) -> Any:
        return seen[0](value)

    return forward


# per field: name, path segment, exact type (or None), decoder, required
_Field = tuple[str, str, Optional[type], _Decoder, bool]
_Plan = tuple[_Field, ...]


def _collector(fields: _Plan, expected: str) -> Callable[[Any], dict[str, Any]]:
    """Checks a JSON object against ``fields``: the checked and converted values present
    in it, by name."""

    def collect(value: Any) -> dict[str, Any]:
        if type(value) is not dict:
            raise _mismatch(expected, value)
        kwargs = {}
        for name, segment, exact, conv, required in fields:
            item = value.get(name, _MISSING)
            if item is _MISSING:
                if required:
                    raise DeserializationError("missing required field", (segment,))
                continue
            if exact is not None:
                if type(item) is not exact:
                    raise _mismatch(_JSON_NAMES[exact], item)._within(segment)
            else:
                try:
                    item = conv(item)
                except DeserializationError as exc:
                    raise exc._within(segment) from None
            kwargs[name] = item
        return kwargs

    return collect


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


def _compile_typed_dict(cls: type, memo: _Memo) -> _Decoder:
    """A TypedDict: its keys checked like a dataclass's fields; the value is the dict of
    the declared keys present (a key it does not require may be absent)."""
    done = _compiled(cls, memo)
    if done is not None:
        return done
    required = _required_keys(cls)
    plan: list[_Field] = []
    for name, hint in _resolve_hints(cls).items():
        conv = _compile(hint, f"{cls.__qualname__}[{name!r}]", memo)
        plan.append((name, _key_segment(name), _EXACT.get(conv), conv, name in required))
    decode = _collector(tuple(plan), f"object ({cls.__qualname__})")
    memo[cls][0] = decode
    return decode


def _compile_dataclass(cls: type, memo: _Memo) -> _Decoder:
    done = _compiled(cls, memo)
    if done is not None:
        return done
    cell = memo[cls]
    hints = _resolve_hints(cls)
    plan: list[_Field] = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        conv = _compile(hints.get(f.name, f.type), f"{cls.__qualname__}.{f.name}", memo)
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        plan.append((f.name, "." + f.name, _EXACT.get(conv), conv, required))
    collect = _collector(tuple(plan), f"object ({cls.__qualname__})")
    plain = _plain_init(cls)
    if plain is not None:
        decode = _fill_dict(cls, collect, plain)
    else:

        def decode(value: Any) -> Any:
            try:
                return cls(**collect(value))
            except (TypeError, ValueError) as exc:
                # __post_init__ validation, say; the cause keeps the details.
                raise DeserializationError(
                    f"{cls.__qualname__}() rejected the value ({type(exc).__name__})"
                ) from exc

    cell[0] = decode
    return decode


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


def _fill_dict(
    cls: type,
    collect: Callable[[Any], dict[str, Any]],
    defaults: tuple[tuple[str, Any, Any], ...],
) -> _Decoder:
    """A decoder that builds the value as the generated ``__init__`` would: the fields,
    defaults filled in, in declaration order, stored straight into ``__dict__``."""
    missing = dataclasses.MISSING
    fill = tuple(
        (name, default, factory)
        for name, default, factory in defaults
        if default is not missing or factory is not missing
    )
    new = object.__new__
    count = len(defaults)

    def decode(value: Any) -> Any:
        attrs = collect(value)
        if len(attrs) != count:
            for name, default, factory in fill:
                if name not in attrs:
                    attrs[name] = default if default is not missing else factory()
            attrs = {name: attrs[name] for name, _, _ in defaults}
        obj: Any = new(cls)
        obj.__dict__.update(attrs)
        return obj

    return decode


def _locate(items: Any, convs: Any) -> DeserializationError:
    """On the error path only: find which item failed, for the message."""
    for key, item, conv in convs(items):
        try:
            conv(item)
        except DeserializationError as exc:
            return exc._within(key)
    return DeserializationError("invalid item")  # pragma: no cover - not reached


def _compile_list(conv: _Decoder) -> _Decoder:
    exact = _EXACT.get(conv)
    if conv is _decode_any:
        return _decode_array

    def located(items: Any) -> Any:
        return ((f"[{i}]", item, conv) for i, item in enumerate(items))

    if exact is not None:

        def decode_exact(value: Any) -> Any:
            if type(value) is not list:
                raise _mismatch("array", value)
            for item in value:
                if type(item) is not exact:
                    raise _locate(value, located)
            return value  # orjson built a fresh list: no need to copy it

        return decode_exact

    def decode(value: Any) -> Any:
        if type(value) is not list:
            raise _mismatch("array", value)
        try:
            return [conv(item) for item in value]
        except DeserializationError:
            raise _locate(value, located) from None

    return decode


def _compile_tuple(conv: _Decoder | None, convs: list[_Decoder] | None) -> _Decoder:
    if convs is None:  # tuple[X, ...]
        assert conv is not None
        item_conv = conv

        def located(items: Any) -> Any:
            return ((f"[{i}]", item, item_conv) for i, item in enumerate(items))

        def decode_variadic(value: Any) -> Any:
            if type(value) is not list:
                raise _mismatch("array", value)
            try:
                return tuple([item_conv(item) for item in value])
            except DeserializationError:
                raise _locate(value, located) from None

        return decode_variadic

    fixed = tuple(convs)
    size = len(fixed)

    def located_fixed(items: Any) -> Any:
        return ((f"[{i}]", item, c) for i, (item, c) in enumerate(zip(items, fixed, strict=True)))

    def decode_fixed(value: Any) -> Any:
        if type(value) is not list:
            raise _mismatch("array", value)
        if len(value) != size:
            raise DeserializationError(f"expected an array of {size} items, got {len(value)}")
        try:
            return tuple([c(item) for c, item in zip(fixed, value, strict=True)])
        except DeserializationError:
            raise _locate(value, located_fixed) from None

    return decode_fixed


def _key_segment(key: str) -> str:
    return f"[{key[:32]!r}]" if len(key) <= 32 else f"[{key[:32]!r}...]"


def _compile_dict(conv: _Decoder) -> _Decoder:
    exact = _EXACT.get(conv)
    if conv is _decode_any:
        return _decode_object

    def located(items: Any) -> Any:
        return ((_key_segment(k), item, conv) for k, item in items.items())

    if exact is not None:

        def decode_exact(value: Any) -> Any:
            if type(value) is not dict:
                raise _mismatch("object", value)
            for item in value.values():
                if type(item) is not exact:
                    raise _locate(value, located)
            return value

        return decode_exact

    def decode(value: Any) -> Any:
        if type(value) is not dict:
            raise _mismatch("object", value)
        try:
            return {k: conv(item) for k, item in value.items()}
        except DeserializationError:
            raise _locate(value, located) from None

    return decode


def _compile_union(args: tuple[Any, ...], where: str, memo: _Memo) -> _Decoder:
    nullable = _NoneType in args
    members = [a for a in args if a is not _NoneType]
    convs = [_compile(a, where, memo) for a in members]
    if len(convs) == 1:
        inner = convs[0]
        exact = _EXACT.get(inner)
        if exact is not None:
            expected = f"{_JSON_NAMES[exact]} or null"

            def decode_optional_exact(value: Any) -> Any:
                if value is None or type(value) is exact:
                    return value
                raise _mismatch(expected, value)

            return decode_optional_exact

        def decode_optional(value: Any) -> Any:
            if value is None:
                return None
            return inner(value)

        return decode_optional

    # Try the alternatives in declaration order, except that int goes before float,
    # so that ``float | int`` reads 3 back as 3, not 3.0.
    if _decode_int in convs and _decode_float in convs:
        convs.remove(_decode_int)
        convs.insert(convs.index(_decode_float), _decode_int)
    alternatives = tuple(convs)
    spec = " | ".join(_type_name(a) for a in args)

    def decode_union(value: Any) -> Any:
        if value is None and nullable:
            return None
        for conv in alternatives:
            try:
                return conv(value)
            except DeserializationError:
                pass
        raise DeserializationError(f"{_json_type(value)} fits none of {spec}")

    return decode_union


def _scalar_key(value: Any, where: str) -> tuple[type, Any]:
    if type(value) not in _SCALARS:
        raise ConfigurationError(
            f"{where}: value {value!r} has no JSON form this serializer reads back "
            "(allowed: str, int, float, bool, None)"
        )
    return (type(value), value)


def _compile_literal(args: tuple[Any, ...], where: str) -> _Decoder:
    table: dict[tuple[type, Any], Any] = {}
    for arg in args:
        raw = arg.value if isinstance(arg, enum.Enum) else arg
        table[_scalar_key(raw, where)] = arg
    allowed = " | ".join(repr(a) for a in args)

    def decode_literal(value: Any) -> Any:
        tp = type(value)
        if tp in _SCALARS:  # hashable, so the lookup below cannot fail
            found = table.get((tp, value), _MISSING)
            if found is not _MISSING:
                return found
        raise DeserializationError(f"{_json_type(value)} is not one of {allowed}")

    return decode_literal


def _compile_enum(cls: type[enum.Enum], where: str) -> _Decoder:
    table = {
        _scalar_key(member.value, f"{where} ({cls.__qualname__}.{name})"): member
        for name, member in cls.__members__.items()
    }
    value_types = frozenset(tp for tp, _ in table)
    name = cls.__qualname__

    def decode_enum(value: Any) -> Any:
        tp = type(value)
        if tp in value_types:
            found = table.get((tp, value), _MISSING)
            if found is not _MISSING:
                return found
            try:  # a Flag combination is no member of its own
                return cls(value)
            except ValueError:
                pass
        raise DeserializationError(f"{_json_type(value)} is not a value of {name}")

    return decode_enum
