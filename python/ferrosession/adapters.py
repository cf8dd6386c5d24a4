"""The serializer a registration gets when it passes none: chosen once, from the type.

- a dataclass, ``TypedDict`` or ``dict``: :class:`~ferrosession.serializers.JSONSerializer`
  (strict type checks);
- a ``pydantic.BaseModel`` (v2): :class:`PydanticSerializer`, written with
  ``model_dump_json(by_alias=True, round_trip=True)``, read with ``model_validate_json``;
- a ``msgspec.Struct``: :class:`MsgspecSerializer`, written with ``msgspec.json.encode``,
  read with ``msgspec.json.decode(text, type=T)``.

pydantic and msgspec are optional and never imported here: a model class exists only
once its library is imported, so the type is recognised through ``sys.modules``.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import TYPE_CHECKING, Any, Callable, Generic, TypeVar

from ferrosession.errors import ConfigurationError
from ferrosession.serializers import DeserializationError, JSONSerializer, is_typed_dict

if TYPE_CHECKING:
    import msgspec
    import pydantic

__all__ = ["MsgspecSerializer", "PydanticSerializer", "serializer_for"]

M = TypeVar("M", bound="pydantic.BaseModel")
S = TypeVar("S", bound="msgspec.Struct")


def serializer_for(tp: type) -> Any:
    """The default serializer of session type ``tp``.

    Raises:
        ConfigurationError: ``tp`` is none of the types above (pass ``serializer=``), or
            a pydantic v1 model.
    """
    if tp is dict or dataclasses.is_dataclass(tp) or is_typed_dict(tp):
        return JSONSerializer(tp)
    pydantic_module = sys.modules.get("pydantic")
    v1 = sys.modules.get("pydantic.v1")
    if pydantic_module is not None and issubclass(tp, pydantic_module.BaseModel):
        if hasattr(tp, "model_validate_json"):
            return PydanticSerializer(tp)
        v1 = pydantic_module  # pydantic 1 itself is installed
    msgspec_module = sys.modules.get("msgspec")
    if msgspec_module is not None and issubclass(tp, msgspec_module.Struct):
        return MsgspecSerializer(tp)
    if v1 is not None and issubclass(tp, v1.BaseModel):
        raise ConfigurationError(
            f"{tp.__name__} is a pydantic v1 model: make it a pydantic 2 BaseModel, or pass "
            f"serializer= (an object with serialize and deserialize)"
        )
    raise ConfigurationError(
        f"{tp.__name__} is neither a dataclass nor dict (nor a TypedDict, pydantic "
        f"BaseModel or msgspec Struct): make it one of these or pass serializer= (an "
        f"object with serialize and deserialize)"
    )


class PydanticSerializer(Generic[M]):
    """A pydantic v2 model as JSON, read by ``model_validate_json`` under the model's own
    config (strict or lax, aliases, validators).

    Written so that the model reads its own output back: by alias, and in pydantic's
    round-trip form (no computed fields, which ``extra="forbid"`` would reject; a
    ``Json[T]`` field as the JSON string it is validated from).
    """

    __slots__ = ("_type", "_validate")
    # a payload it cannot read is an old or foreign value, not a bug (logged at DEBUG)
    _builtin = True

    def __init__(self, tp: type[M]) -> None:
        """Args:
        tp: the model class.
        """
        self._type = tp
        self._validate: Callable[[str], M] = tp.model_validate_json

    def __repr__(self) -> str:
        """Return ``PydanticSerializer(Model)``."""
        return f"PydanticSerializer({self._type.__qualname__})"

    def serialize(self, value: M) -> str:
        """The model's JSON, by alias, in round-trip form.

        Raises:
            TypeError: ``value`` is not an instance of the model.
        """
        if not isinstance(value, self._type):
            raise TypeError(f"{self!r} cannot serialize a {type(value).__qualname__} value")
        return value.model_dump_json(by_alias=True, round_trip=True)

    def deserialize(self, text: str) -> M:
        """The model validated from ``text``.

        Raises:
            DeserializationError: the model rejects ``text`` (not JSON, a wrong type, a
                validator raising); the cause holds pydantic's details, the message
                none of the client's values.
        """
        try:
            return self._validate(text)
        except Exception as exc:  # a validator may raise anything: still a misfit
            raise DeserializationError(
                f"{self._type.__qualname__}.model_validate_json rejected the payload "
                f"({type(exc).__name__})"
            ) from exc


class MsgspecSerializer(Generic[S]):
    """A ``msgspec.Struct`` as JSON, read back by msgspec's typed (strict) decoder; the
    encoder and decoder are built once."""

    __slots__ = ("_decode", "_encode", "_type")
    # a payload it cannot read is an old or foreign value, not a bug (logged at DEBUG)
    _builtin = True

    def __init__(self, tp: type[S]) -> None:
        """Args:
        tp: the Struct class.
        """
        import msgspec.json  # the Struct exists, so msgspec is imported already

        self._type = tp
        self._encode = msgspec.json.Encoder().encode
        self._decode = msgspec.json.Decoder(tp).decode

    def __repr__(self) -> str:
        """Return ``MsgspecSerializer(Struct)``."""
        return f"MsgspecSerializer({self._type.__qualname__})"

    def serialize(self, value: S) -> str:
        """The Struct's JSON.

        Raises:
            TypeError: ``value`` is not an instance of the Struct, or holds something
                msgspec cannot encode.
        """
        if not isinstance(value, self._type):
            raise TypeError(f"{self!r} cannot serialize a {type(value).__qualname__} value")
        return self._encode(value).decode()

    def deserialize(self, text: str) -> S:
        """The Struct decoded from ``text``.

        Raises:
            DeserializationError: ``text`` is not JSON or does not fit the Struct (a
                ``__post_init__`` raising included).
        """
        try:
            return self._decode(text)
        except Exception as exc:  # msgspec.ValidationError / DecodeError, __post_init__
            raise DeserializationError(
                f"{self._type.__qualname__} rejected the payload ({type(exc).__name__})"
            ) from exc
