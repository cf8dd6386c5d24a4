"""Tests of ferrosession.serializers: the JSON format, strict reading, type support.

This module uses postponed annotations on purpose: the session types below are read
through ``typing.get_type_hints``, as they would be in a user's module.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import sys
import typing
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, NewType, Optional, Union

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ferrosession.errors import ConfigurationError, SessionError
from ferrosession.serializers import DeserializationError, JSONSerializer, Serializer

# --- session types used below (module level, so postponed annotations resolve) -----


@dataclass
class KtorVector:
    userId: str  # camelCase: the field name of the Ktor test vector
    cart: list[str]


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Perm(enum.IntFlag):
    READ = 1
    WRITE = 2


UserId = NewType("UserId", str)


@dataclass(frozen=True)
class Address:
    city: str
    zip_code: Optional[str] = None


@dataclass(frozen=True)
class Everything:
    name: str
    count: int
    ratio: float
    active: bool
    nothing: None
    address: Address
    previous: list[Address]
    tags: list[str]
    pair: tuple[int, str]
    scores: tuple[float, ...]
    counters: dict[str, int]
    nested_map: dict[str, list[Address]]
    maybe: Optional[int]
    maybe_too: Optional[int]
    when: datetime
    naive: datetime
    ident: uuid.UUID
    color: Color
    level: Level
    perm: Perm
    mode: Literal["a", "b"]
    owner: UserId
    anything: Any
    either: Union[int, str]
    empty: tuple[()]


EVERYTHING = Everything(
    name="Zoë 😀",
    count=-7,
    ratio=0.1,
    active=True,
    nothing=None,
    address=Address("Paris", "75001"),
    previous=[Address("Lyon"), Address("Nice", "06000")],
    tags=["a", "b"],
    pair=(1, "one"),
    scores=(1.5, -2.25),
    counters={"x": 1, "y": 2},
    nested_map={"home": [Address("Oslo")]},
    maybe=None,
    maybe_too=3,
    when=datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=timezone(timedelta(hours=2))),
    naive=datetime(2001, 2, 3, 4, 5, 6),
    ident=uuid.UUID("12345678-1234-5678-1234-567812345678"),
    color=Color.GREEN,
    level=Level.HIGH,
    perm=Perm.READ | Perm.WRITE,
    mode="b",
    owner=UserId("u-1"),
    anything={"k": [1, None, "x"]},
    either="text",
    empty=(),
)


@dataclass
class WithDefaults:
    user: str
    visits: int = 0
    items: list[str] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=lambda: {"v": "1"})


@dataclass
class Primitives:
    i: int
    f: float
    s: str
    b: bool


@dataclass
class Holder:
    pair: tuple[int, int]
    items: list[int]
    mapping: dict[str, int]
    opt: Optional[int]
    when: datetime
    ident: uuid.UUID
    color: Color
    level: Level
    mode: Literal[1, 2]
    address: Address


HOLDER_JSON: dict[str, Any] = {
    "pair": [1, 2],
    "items": [1, 2],
    "mapping": {"a": 1},
    "opt": None,
    "when": "2024-01-01T00:00:00+00:00",
    "ident": "12345678-1234-5678-1234-567812345678",
    "color": "red",
    "level": 1,
    "mode": 1,
    "address": {"city": "Rome"},
}


@dataclass
class Node:
    name: str
    children: list[Node] = field(default_factory=list)


@dataclass
class Validated:
    age: int

    def __post_init__(self) -> None:
        if self.age < 0:
            raise ValueError("age must not be negative")


@dataclass
class Renamed:
    user_name: str


@dataclass
class Original:
    user: str


@dataclass
class Cached:
    first: str
    last: str

    @functools.cached_property
    def full(self) -> str:
        return f"{self.first} {self.last}"


@dataclass
class Computed:
    a: int
    b: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.b = self.a * 2
        self.scratch = "not a field"


class Random:
    """Some class the serializer knows nothing about."""


@dataclass
class Mixed:
    value: Union[float, int]


@dataclass
class Pep604:  # resolvable on Python 3.10+ only
    maybe: int | None
    items: list[str] | None
    number: float | int


@dataclass
class Sample:
    text: str
    number: int
    real: float
    words: list[str]
    table: dict[str, int]


def roundtrip(tp: type[Any], value: Any) -> Any:
    ser = JSONSerializer(tp)
    return ser.deserialize(ser.serialize(value))


# --- writing ----------------------------------------------------------------------


def test_ktor_vector_is_exact() -> None:
    assert JSONSerializer(KtorVector).serialize(KtorVector("id 2", [])) == (
        '{"userId":"id 2","cart":[]}'
    )


def test_output_is_compact_in_declaration_order_and_keeps_utf8() -> None:
    text = JSONSerializer(WithDefaults).serialize(WithDefaults("Zoë 😀", 3, ["é"]))
    assert text == '{"user":"Zoë 😀","visits":3,"items":["é"],"meta":{"v":"1"}}'


def test_formats_of_datetime_uuid_enum() -> None:
    ser = JSONSerializer(Everything)
    data = orjson.loads(ser.serialize(EVERYTHING))
    assert data["when"] == "2024-05-06T07:08:09.123456+02:00"
    assert data["naive"] == "2001-02-03T04:05:06"
    assert data["ident"] == "12345678-1234-5678-1234-567812345678"
    assert data["color"] == "green"
    assert data["level"] == 2
    assert data["perm"] == 3
    assert data["pair"] == [1, "one"]
    assert list(data) == [f.name for f in dataclasses.fields(Everything)]


def test_only_declared_fields_are_written() -> None:
    cached = Cached("Ada", "Lovelace")
    assert cached.full == "Ada Lovelace"  # now stored in the instance __dict__
    assert JSONSerializer(Cached).serialize(cached) == '{"first":"Ada","last":"Lovelace"}'
    assert JSONSerializer(Computed).serialize(Computed(2)) == '{"a":2,"b":4}'


def test_serialize_rejects_a_value_of_another_type() -> None:
    with pytest.raises(TypeError, match="Original"):
        JSONSerializer(KtorVector).serialize(Original("x"))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        JSONSerializer(dict).serialize([1, 2])  # type: ignore[arg-type]


def test_serialize_rejects_what_json_cannot_carry() -> None:
    with pytest.raises(TypeError):
        JSONSerializer(dict).serialize({1: "int key"})
    with pytest.raises(TypeError):
        JSONSerializer(dict).serialize({"b": b"bytes"})
    with pytest.raises(TypeError):
        JSONSerializer(Primitives).serialize(Primitives(2**64, 0.0, "", False))


# --- round trips ------------------------------------------------------------------


def test_roundtrip_of_every_supported_type() -> None:
    back = roundtrip(Everything, EVERYTHING)
    assert back == EVERYTHING
    assert back.when.utcoffset() == timedelta(hours=2)
    assert back.naive.tzinfo is None
    assert back.color is Color.GREEN
    assert back.level is Level.HIGH
    assert back.perm == Perm.READ | Perm.WRITE and isinstance(back.perm, Perm)
    assert type(back.pair) is tuple and type(back.scores) is tuple
    assert type(back.address) is Address
    assert type(back.nested_map["home"][0]) is Address


def test_roundtrip_of_optional_values_present() -> None:
    value = dataclasses.replace(EVERYTHING, maybe=5, maybe_too=None, either=12)
    back = roundtrip(Everything, value)
    assert back == value
    assert back.either == 12 and type(back.either) is int


def test_frozen_dataclass_comes_back_frozen() -> None:
    back = roundtrip(Address, Address("Paris", None))
    assert back == Address("Paris", None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        back.city = "Lyon"


def test_missing_keys_take_defaults_and_fresh_default_factories() -> None:
    ser = JSONSerializer(WithDefaults)
    first = ser.deserialize('{"user":"u"}')
    second = ser.deserialize('{"user":"u"}')
    assert first == WithDefaults("u", 0, [], {"v": "1"})
    assert first.items is not second.items


def test_plain_dict_session_type() -> None:
    value = {"user": "john", "visits": 2, "tags": ["a"], "nested": {"x": None}}
    assert roundtrip(dict, value) == value
    assert JSONSerializer(dict).serialize({"a": 1}) == '{"a":1}'


def test_typed_dict_session_type() -> None:
    ser: JSONSerializer[dict[str, int]] = JSONSerializer(dict[str, int])
    assert ser.deserialize('{"a":1,"b":2}') == {"a": 1, "b": 2}
    with pytest.raises(DeserializationError):
        ser.deserialize('{"a":"1"}')


def test_recursive_dataclass() -> None:
    tree = Node("root", [Node("a"), Node("b", [Node("c")])])
    assert roundtrip(Node, tree) == tree


def test_union_prefers_int_over_float() -> None:
    ser = JSONSerializer(Mixed)
    assert type(ser.deserialize('{"value":3}').value) is int
    assert ser.deserialize('{"value":3.5}').value == 3.5


@pytest.mark.parametrize("bad", ["true", '"3"', "null", "[3]"])
def test_union_is_strict(bad: str) -> None:
    with pytest.raises(DeserializationError, match="fits none of"):
        JSONSerializer(Mixed).deserialize(f'{{"value":{bad}}}')


@pytest.mark.skipif(sys.version_info < (3, 10), reason="X | Y needs Python 3.10")
def test_pep604_unions() -> None:
    ser = JSONSerializer(Pep604)
    assert roundtrip(Pep604, Pep604(None, ["a"], 2)) == Pep604(None, ["a"], 2)
    assert roundtrip(Pep604, Pep604(4, None, 2.5)) == Pep604(4, None, 2.5)
    assert type(ser.deserialize('{"maybe":1,"items":null,"number":2}').number) is int
    with pytest.raises(DeserializationError):
        ser.deserialize('{"maybe":true,"items":null,"number":2}')
    with pytest.raises(DeserializationError):
        ser.deserialize('{"maybe":null,"items":[1],"number":2}')
    with pytest.raises(DeserializationError):
        ser.deserialize('{"maybe":null,"items":null,"number":"2"}')


def test_annotations_that_are_not_postponed() -> None:
    # make_dataclass stores real type objects, not strings.
    cls = dataclasses.make_dataclass("Plain", [("a", int), ("b", list[str])])
    ser: JSONSerializer[Any] = JSONSerializer(cls)
    assert ser.deserialize('{"a":1,"b":["x"]}') == cls(1, ["x"])
    with pytest.raises(DeserializationError):
        ser.deserialize('{"a":"1","b":["x"]}')


# --- strict reading ---------------------------------------------------------------


def test_int_is_accepted_for_float_and_converted() -> None:
    back = JSONSerializer(Primitives).deserialize('{"i":1,"f":2,"s":"","b":false}')
    assert back.f == 2.0 and type(back.f) is float


def test_extra_keys_are_ignored() -> None:
    back = JSONSerializer(Original).deserialize('{"user":"u","new_field":[1,{"x":2}]}')
    assert back == Original("u")


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('{"i":"12","f":1.0,"s":"","b":true}', id="string-for-int"),
        pytest.param('{"i":true,"f":1.0,"s":"","b":true}', id="bool-for-int"),
        pytest.param('{"i":1.0,"f":1.0,"s":"","b":true}', id="float-for-int"),
        pytest.param('{"i":1,"f":true,"s":"","b":true}', id="bool-for-float"),
        pytest.param('{"i":1,"f":"1.5","s":"","b":true}', id="string-for-float"),
        pytest.param('{"i":1,"f":1.0,"s":1,"b":true}', id="int-for-str"),
        pytest.param('{"i":1,"f":1.0,"s":"","b":1}', id="int-for-bool"),
        pytest.param('{"i":1,"f":1.0,"s":"","b":"true"}', id="string-for-bool"),
        pytest.param('{"i":null,"f":1.0,"s":"","b":true}', id="null-for-int"),
        pytest.param('{"i":1,"f":1.0,"s":null,"b":true}', id="null-for-str"),
        pytest.param('{"i":1,"f":1.0,"s":""}', id="missing-required"),
        pytest.param('{"i":18446744073709551616,"f":1.0,"s":"","b":true}', id="int-over-64-bits"),
    ],
)
def test_primitive_mismatches(text: str) -> None:
    ser = JSONSerializer(Primitives)
    assert ser.deserialize('{"i":1,"f":1.0,"s":"","b":true}') == Primitives(1, 1.0, "", True)
    with pytest.raises(DeserializationError):
        ser.deserialize(text)


@pytest.mark.parametrize(
    ("key", "bad"),
    [
        ("pair", [1]),
        ("pair", [1, 2, 3]),
        ("pair", [1, "2"]),
        ("pair", {"0": 1, "1": 2}),
        ("items", "1,2"),
        ("items", [1, "2"]),
        ("items", [1, None]),
        ("mapping", [["a", 1]]),
        ("mapping", {"a": "1"}),
        ("opt", "1"),
        ("opt", True),
        ("when", "yesterday"),
        ("when", 1704067200),
        ("ident", "not-a-uuid"),
        ("ident", 5),
        ("color", "RED"),
        ("color", "blue"),
        ("color", ["red"]),
        ("level", "1"),
        ("level", True),
        ("level", 3),
        ("mode", 3),
        ("mode", True),
        ("mode", "1"),
        ("address", "Rome"),
        ("address", {}),
        ("address", {"city": "Rome", "zip_code": 75001}),
    ],
)
def test_container_and_special_mismatches(key: str, bad: Any) -> None:
    ser = JSONSerializer(Holder)
    good = ser.deserialize(orjson.dumps(HOLDER_JSON).decode())
    assert good.color is Color.RED and good.level is Level.LOW
    with pytest.raises(DeserializationError):
        ser.deserialize(orjson.dumps({**HOLDER_JSON, key: bad}).decode())


def test_field_renamed_is_a_deserialization_error() -> None:
    text = JSONSerializer(Original).serialize(Original("john"))
    with pytest.raises(DeserializationError, match="missing required field"):
        JSONSerializer(Renamed).deserialize(text)


def test_post_init_rejection_is_a_deserialization_error() -> None:
    ser = JSONSerializer(Validated)
    assert ser.deserialize('{"age":3}') == Validated(3)
    with pytest.raises(DeserializationError, match="rejected"):
        ser.deserialize('{"age":-1}')


@pytest.mark.parametrize(
    "text",
    ["", " ", "not json", "{", '{"user":', "[1,]", "\x00", "NaN", "{'user': 'x'}", "\ud800"],
)
def test_text_that_is_not_json(text: str) -> None:
    with pytest.raises(DeserializationError, match="not valid JSON"):
        JSONSerializer(Original).deserialize(text)


@pytest.mark.parametrize("text", ["null", "[]", '["user"]', "42", '"user"', "true", "1.5"])
@pytest.mark.parametrize("tp", [Original, dict])
def test_json_of_the_wrong_top_level_type(tp: type[Any], text: str) -> None:
    with pytest.raises(DeserializationError, match="expected object"):
        JSONSerializer(tp).deserialize(text)


def test_too_deep_is_a_deserialization_error_not_a_crash() -> None:
    ser = JSONSerializer(Node)
    for depth in (50, 400, 2000):
        text = '{"name":"n","children":[' * depth + '{"name":"leaf"}' + "]}" * depth
        try:
            value = ser.deserialize(text)
        except DeserializationError:
            continue
        for _ in range(depth):
            (value,) = value.children
        assert value == Node("leaf")
    with pytest.raises(DeserializationError):
        ser.deserialize('{"name":"n","children":[' * 2000 + "]}" * 2000)


def test_error_names_the_place_but_not_the_value() -> None:
    ser = JSONSerializer(Everything)
    data = orjson.loads(ser.serialize(EVERYTHING))
    data["previous"][1]["city"] = 12345
    data["nested_map"] = {"home": [{"city": "secret-value"}]}
    with pytest.raises(DeserializationError) as info:
        ser.deserialize(orjson.dumps(data).decode())
    assert str(info.value) == "$.previous[1].city: expected string, got integer"
    assert info.value.path == (".previous", "[1]", ".city")
    data["previous"][1]["city"] = "ok"
    data["counters"] = {"secret-key": "secret-value"}
    with pytest.raises(DeserializationError) as info:
        ser.deserialize(orjson.dumps(data).decode())
    assert "secret-value" not in str(info.value)
    assert info.value.path == (".counters", "['secret-key']")


def test_deserialization_error_hierarchy() -> None:
    assert issubclass(DeserializationError, ValueError)
    assert issubclass(DeserializationError, SessionError)
    with pytest.raises(DeserializationError) as info:
        JSONSerializer(Original).deserialize("{")
    assert not isinstance(info.value, orjson.JSONDecodeError)


# --- configuration errors ---------------------------------------------------------


@pytest.mark.parametrize(
    ("annotation", "shown"),
    [
        ("Random", "Random"),
        ("set[int]", "set[int]"),
        ("bytes", "bytes"),
        ("dict[int, str]", "dict[int, str]"),
        ("list[Random]", "Random"),
        ("Optional[Random]", "Random"),
    ],
)
def test_unsupported_annotation_is_a_configuration_error(annotation: str, shown: str) -> None:
    cls = dataclasses.make_dataclass("Bad", [("ok", int), ("broken", annotation)])
    cls.__module__ = __name__  # resolve the string annotation in this module
    with pytest.raises(ConfigurationError, match=r"Bad\.broken") as info:
        JSONSerializer(cls)
    assert shown in str(info.value)


def test_enum_without_json_values_is_a_configuration_error() -> None:
    class Shape(enum.Enum):
        POINT = (0, 0)

    cls = dataclasses.make_dataclass("HasShape", [("shape", Shape)])
    with pytest.raises(ConfigurationError, match=r"HasShape\.shape"):
        JSONSerializer(cls)


@pytest.mark.parametrize("tp", [list, int, str, Random, list[str], Optional[Original]])
def test_session_type_must_be_a_dataclass_or_dict(tp: Any) -> None:
    with pytest.raises(ConfigurationError, match="dataclass or dict"):
        JSONSerializer(tp)


def test_unresolvable_forward_reference_is_a_configuration_error() -> None:
    @dataclass
    class Local:
        x: int

    @dataclass
    class UsesLocal:
        inner: Local  # a postponed annotation naming a function-local class

    with pytest.raises(ConfigurationError, match="module level"):
        JSONSerializer(UsesLocal)


# --- the protocol -----------------------------------------------------------------


def test_serializer_protocol() -> None:
    class Upper:
        def serialize(self, value: str) -> str:
            return value.upper()

        def deserialize(self, text: str) -> str:
            return text.lower()

    class HalfDone:
        def serialize(self, value: str) -> str:
            return value

    custom: Serializer[str] = Upper()
    assert isinstance(custom, Serializer)
    assert isinstance(JSONSerializer(Original), Serializer)
    assert not isinstance(HalfDone(), Serializer)
    assert repr(JSONSerializer(Original)) == "JSONSerializer(Original)"


# --- properties -------------------------------------------------------------------

_int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_floats = st.floats(allow_nan=False, allow_infinity=False)
_samples = st.builds(
    Sample,
    text=st.text(),
    number=_int64,
    real=_floats | _int64.map(float),
    words=st.lists(st.text()),
    table=st.dictionaries(st.text(), _int64),
)


@given(_samples)
def test_roundtrip_property(value: Sample) -> None:
    ser = JSONSerializer(Sample)
    text = ser.serialize(value)
    back = ser.deserialize(text)
    assert back == value
    assert type(back.real) is float
    assert ser.serialize(back) == text


_json = st.recursive(
    st.none() | st.booleans() | _int64 | _floats | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=12,
)


@given(st.one_of(_json.map(lambda v: orjson.dumps(v).decode()), st.text()))
def test_arbitrary_text_only_ever_raises_deserialization_error(text: str) -> None:
    ser = JSONSerializer(Holder)
    try:
        value = ser.deserialize(text)
    except DeserializationError:
        return
    assert isinstance(value, Holder)


@given(
    st.fixed_dictionaries(
        {"name": st.text()},
        optional={"children": st.lists(st.fixed_dictionaries({"name": st.text()}), max_size=3)},
    )
)
def test_payloads_that_fit_are_read(payload: dict[str, Any]) -> None:
    value = JSONSerializer(Node).deserialize(orjson.dumps(payload).decode())
    assert value.name == payload["name"]
    assert [c.name for c in value.children] == [c["name"] for c in payload.get("children", [])]


def test_type_hints_of_this_module_are_postponed() -> None:
    # Guards the premise of this module: annotations are strings until resolved.
    assert KtorVector.__annotations__["cart"] == "list[str]"
    assert typing.get_type_hints(KtorVector)["cart"] == list[str]


# --- the fast paths must behave exactly like the class --------------------------------


def test_fast_construction_matches_the_class() -> None:
    import dataclasses as dc

    @dc.dataclass(frozen=True)
    class Fast:
        a: str
        b: list[int] = dc.field(default_factory=list)
        c: int = 7

    s = JSONSerializer(Fast)
    got = s.deserialize('{"c":1,"a":"x"}')
    assert got == Fast(a="x", c=1)
    assert list(vars(got)) == ["a", "b", "c"]  # declaration order, as __init__ builds it
    assert s.serialize(got) == '{"a":"x","b":[],"c":1}'
    other = s.deserialize('{"a":"y"}')
    assert other.b is not got.b  # default_factory runs per value
    with pytest.raises(dc.FrozenInstanceError):
        got.a = "z"  # type: ignore[misc]


def test_post_init_custom_init_and_slots_still_run_through_the_class() -> None:
    import dataclasses as dc

    calls: list[str] = []

    @dc.dataclass
    class Checked:
        n: int

        def __post_init__(self) -> None:
            calls.append("post_init")
            if self.n < 0:
                raise ValueError("negative")

    s = JSONSerializer(Checked)
    assert s.deserialize('{"n":1}') == Checked(1)
    assert calls == ["post_init", "post_init"]
    with pytest.raises(DeserializationError):
        s.deserialize('{"n":-1}')

    @dc.dataclass(slots=True)
    class Slotted:
        n: int

    assert JSONSerializer(Slotted).deserialize('{"n":2}') == Slotted(2)
    assert JSONSerializer(Slotted).serialize(Slotted(3)) == '{"n":3}'


def test_extra_instance_attributes_are_not_written() -> None:
    import dataclasses as dc

    @dc.dataclass
    class Plain:
        n: int

    value = Plain(1)
    value.secret = "leak"  # type: ignore[attr-defined]
    assert JSONSerializer(Plain).serialize(value) == '{"n":1}'
