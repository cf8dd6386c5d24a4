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


# --- one reader: every supported type is read in Rust, as orjson reads JSON ----------


@dataclass(frozen=True)
class Item:
    sku: str
    qty: int = 1


@dataclass
class Cart:
    user: UserId
    items: list[Item]
    tags: list[str] = field(default_factory=list)
    note: Optional[str] = None
    score: float = 0.0
    flags: dict[str, bool] = field(default_factory=dict)
    extra: Any = None
    raw: list = field(default_factory=list)  # type: ignore[type-arg]
    obj: dict = field(default_factory=dict)  # type: ignore[type-arg]
    nothing: None = None
    maybe_item: Optional[Item] = None
    nested: list[list[int]] = field(default_factory=list)


if sys.version_info >= (3, 11):

    class Keyed(typing.TypedDict):
        a: int
        b: typing.NotRequired[list[Optional[int]]]

else:  # NotRequired is 3.11's: the same keys, "b" optional through total=False

    class _KeyedA(typing.TypedDict):
        a: int

    class Keyed(_KeyedA, total=False):  # type: ignore[no-redef]
        b: list[Optional[int]]


@dataclass
class Fixed:
    pair: tuple[int, int]


@dataclass
class Ordered:
    first: int
    second: str


def test_every_supported_type_is_read_by_the_one_reader() -> None:
    # `decode` is the reader the session layer calls: no other decoder takes over
    cases: list[tuple[Any, str]] = [
        (Everything, JSONSerializer(Everything).serialize(EVERYTHING)),
        (Node, '{"name":"r","children":[{"name":"c"}]}'),
        (Validated, '{"age":1}'),
        (Mixed, '{"value":1}'),
        (Keyed, '{"a":1,"b":[null,2]}'),
        (dict, '{"a":[1]}'),
    ]
    for tp, text in cases:
        value = JSONSerializer(tp)._fast.decode(text)
        assert value is not None and value == JSONSerializer(tp).deserialize(text), tp
    assert JSONSerializer(Validated)._fast.decode('{"age":-1}') is None
    assert JSONSerializer(Validated)._fast.decode("{") is None


FULL_CART = {
    "user": "ada",
    "items": [{"sku": "a", "qty": 2}, {"sku": "b"}],
    "tags": ["x", "y"],
    "note": "hi",
    "score": 1.5,
    "flags": {"on": True, "off": False},
    "extra": {"deep": [1, 2.5, None, "s", {"k": []}]},
    "raw": [1, "a", None],
    "obj": {"a": {"b": 1}},
    "nothing": None,
    "maybe_item": {"sku": "z", "qty": 0},
    "nested": [[1, 2], [], [-3]],
}


def test_a_full_value_is_read_with_its_defaults_in_declaration_order() -> None:
    ser = JSONSerializer(Cart)
    got = ser.deserialize(orjson.dumps(FULL_CART).decode())
    assert got.items == [Item("a", 2), Item("b", 1)] and type(got.items[0]) is Item
    assert got.extra == FULL_CART["extra"] and got.maybe_item == Item("z", 0)
    assert (
        ser.deserialize(" \n" + orjson.dumps(FULL_CART).decode().replace(",", " , ") + "\t") == got
    )
    fresh = ser.deserialize('{"user":"u","items":[]}')
    assert fresh == Cart(UserId("u"), [])
    assert fresh.tags is not ser.deserialize('{"user":"u","items":[]}').tags
    assert list(vars(fresh)) == [f.name for f in dataclasses.fields(Cart)]
    item = JSONSerializer(Item).deserialize('{"qty":3,"sku":"q"}')
    assert item == Item("q", 3) and list(vars(item)) == ["sku", "qty"]


@pytest.mark.parametrize(
    ("extra", "want"),
    [
        ('"user":"\\ud83d\\ude00"', {"user": "😀"}),
        ('"user":"a\\u0000b\\n\\""', {"user": 'a\x00b\n"'}),
        ('"user":5,"user":"x"', {"user": "x"}),  # a repeated key: the last one counts
        ('"score":-0', {"score": 0.0}),
        ('"score":9007199254740993', {"score": 9007199254740992.0}),
        ('"score":-9223372036854775808', {"score": -9223372036854775808.0}),
        ('"score":18446744073709551615', {"score": 18446744073709551615.0}),
        # beyond 64 bits orjson reads a float, so Any holds one
        ('"extra":99999999999999999999999', {"extra": 1e23}),
        ('"extra":18446744073709551615', {"extra": 2**64 - 1}),
        ('"extra":' + "[" * 200 + "]" * 200, {"extra": orjson.loads("[" * 200 + "]" * 200)}),
        ('"unknown":{"a":[1,{"b":null}]}', {}),
    ],
)
def test_json_is_read_as_orjson_reads_it(extra: str, want: dict[str, Any]) -> None:
    got = JSONSerializer(Cart).deserialize('{"user":"u","items":[],' + extra + "}")
    for name, value in want.items():
        assert getattr(got, name) == value and type(getattr(got, name)) is type(value)


@pytest.mark.parametrize(
    "text",
    [
        '{"user":1,"items":[]}',
        '{"user":"u","items":[1]}',
        '{"user":"u"}',
        '{"user":"u","items":[],"score":"1"}',
        '{"user":"u","items":[],"score":true}',
        '{"user":"u","items":[],"note":5}',
        '{"user":"u","items":[],"tags":[true]}',
        '{"user":"u","items":[{"sku":"a","qty":1.0}]}',
        '{"user":"u","items":[{"sku":"a","qty":true}]}',
        '{"user":"u","items":[],"flags":{"a":1}}',
        '{"user":"u","items":[],"nested":[[1.5]]}',
        '{"user":"u","items":[],"nothing":0}',
        '{"user":"u","items":[],"raw":{}}',
        '{"user":"u","items":[],"obj":[]}',
        '{"user":"x","items":[],"user":5}',
        '{"user":"u","items":[],"extra":1e999}',
        '{"user":"\\ud800","items":[]}',
        '{"user":"u","items":[],"qty":NaN}',
        '{"user":"u","items":[]} x',
        '{"user":"u","items":[],}',
        '{"user":"u","items":[],"unknown":{"a":[1,}}',
    ],
)
def test_misfits_and_malformed_json_are_rejected(text: str) -> None:
    with pytest.raises(DeserializationError):
        JSONSerializer(Cart).deserialize(text)
    assert JSONSerializer(Cart)._fast.decode(text) is None


def test_floats_are_read_exactly_as_orjson_reads_them() -> None:
    import math
    import random
    import struct

    ser = JSONSerializer(Cart)
    rng = random.Random(5)
    samples = ["0.1", "1e-320", "2.2250738585072011e-308", "1.7976931348623157e308", "5e-324"]
    samples += ["123456789012345678901234567890.5", "0.30000000000000004", "-1.5E+3", "1e22"]
    for _ in range(2000):
        f = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
        if math.isfinite(f):
            samples.append(repr(f))
        samples.append(
            f"{rng.randint(0, 10**20)}.{rng.randint(0, 10**20)}e{rng.randint(-330, 310)}"
        )
    for s in samples:
        text = f'{{"user":"u","items":[],"score":{s},"extra":[{s}]}}'
        try:
            want = orjson.loads(text)
        except orjson.JSONDecodeError:
            with pytest.raises(DeserializationError, match="not valid JSON"):
                ser.deserialize(text)
            continue
        got = ser.deserialize(text)
        assert struct.pack("<d", got.score) == struct.pack("<d", want["score"]), s
        assert got.extra == want["extra"], s


def test_dict_session_types_keep_the_last_of_a_repeated_key() -> None:
    assert JSONSerializer(dict).deserialize('{"a":[1,{"b":2.5}],"a":3}') == {"a": 3}
    assert JSONSerializer(dict[str, int]).deserialize('{"a":1,"b":2}') == {"a": 1, "b": 2}


def test_a_raising_default_factory_raises() -> None:
    ser = JSONSerializer(RaisingFactory)
    with pytest.raises(RuntimeError, match="factory"):
        ser.deserialize('{"a":"x"}')
    with pytest.raises(RuntimeError, match="factory"):
        ser._fast.decode('{"a":"x"}')
    assert ser.deserialize('{"a":"x","b":[]}') == RaisingFactory("x", [])


def _boom() -> list[str]:
    raise RuntimeError("factory")


@dataclass
class RaisingFactory:
    a: str
    b: list[str] = field(default_factory=_boom)


@pytest.mark.parametrize(
    ("tp", "text", "message", "path"),
    [
        (Fixed, '{"pair":[1,"x",3]}', "expected an array of 2 items, got 3", (".pair",)),
        (Fixed, '{"pair":[1,"x"]}', "expected integer, got string", (".pair", "[1]")),
        (Mixed, '{"value":"3"}', "string fits none of float | int", (".value",)),
        (Holder, {"mode": 3}, "integer is not one of 1 | 2", (".mode",)),
        (Holder, {"color": "blue"}, "string is not a value of Color", (".color",)),
        (Holder, {"when": "yesterday"}, "not an ISO 8601 datetime", (".when",)),
        (Holder, {"when": 1}, "expected ISO 8601 datetime string, got integer", (".when",)),
        (Holder, {"ident": "x"}, "not a UUID", (".ident",)),
        (Holder, {"opt": "1"}, "expected integer or null, got string", (".opt",)),
        (Holder, {"address": {"zip_code": "1"}}, "missing required field", (".address", ".city")),
        (Keyed, '{"a":1,"b":[1,"2"]}', "expected integer or null, got string", ("['b']", "[1]")),
        (Keyed, '{"b":[]}', "missing required field", ("['a']",)),
        (
            dict[str, int],
            '{"' + "k" * 40 + '":"1"}',
            "expected integer, got string",
            (f"[{'k' * 32!r}...]",),
        ),
        (
            Primitives,
            '{"i":18446744073709551616,"f":1,"s":"","b":true}',
            "expected integer, got number",
            (".i",),
        ),
        (
            Node,
            '{"name":"n","children":[{"name":1}]}',
            "expected string, got integer",
            (".children", "[0]", ".name"),
        ),
    ],
)
def test_errors_say_what_and_where(tp: Any, text: Any, message: str, path: tuple[str, ...]) -> None:
    if isinstance(text, dict):
        text = orjson.dumps({**HOLDER_JSON, **text}).decode()
    with pytest.raises(DeserializationError) as info:
        JSONSerializer(tp).deserialize(text)
    assert (info.value.reason, info.value.path) == (message, path)


def test_the_error_is_the_first_field_in_declaration_order() -> None:
    ser = JSONSerializer(Ordered)
    for text in ('{"first":"1","second":2}', '{"second":2,"first":"1"}'):
        with pytest.raises(DeserializationError) as info:
            ser.deserialize(text)
        assert info.value.path == (".first",)


def test_a_misfit_before_malformed_json_is_malformed_json() -> None:
    with pytest.raises(DeserializationError, match="not valid JSON"):
        JSONSerializer(Ordered).deserialize('{"first":"1","second":[1,}')


def test_a_class_rejecting_its_fields_keeps_the_cause() -> None:
    with pytest.raises(DeserializationError, match=r"Validated\(\) rejected the value") as info:
        JSONSerializer(Validated).deserialize('{"age":-1}')
    assert isinstance(info.value.__cause__, ValueError)
    # a misfit is reported as itself, not as a rejection by the class
    with pytest.raises(DeserializationError) as misfit:
        JSONSerializer(Validated).deserialize('{"age":"1"}')
    assert misfit.value.reason == "expected integer, got string"


def test_bytes_are_read_as_utf8_text() -> None:
    assert JSONSerializer(Original).deserialize(b'{"user":"\xc3\xa9"}') == Original("é")  # type: ignore[arg-type]
    with pytest.raises(DeserializationError, match="not valid JSON"):
        JSONSerializer(Original).deserialize(b'{"user":"\xff"}')  # type: ignore[arg-type]


# --- one writer: orjson's bytes, whoever writes them --------------------------------


@dataclass
class PlainFields:
    name: str
    n: int
    ok: bool
    tags: list[str]
    extra: Any = None
    note: Optional[str] = None


@dataclass
class Inner:
    a: int


@dataclass
class Outer:
    inner: Optional[Inner] = None
    score: float = 0.0


@dataclass
class Box:
    v: Any


class StrSub(str):
    pass


class IntSub(int):
    pass


_ALPHABET = [chr(c) for c in range(0x80)] + [
    "é",
    "ß",
    "\u2028",
    "\ufeff",
    "\uffff",
    "😀",
    "\U0010ffff",
]


def _random_text(rng: Any) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(rng.randrange(0, 12)))


def _random_plain(rng: Any, depth: int = 0) -> Any:
    kind = rng.choice(["str", "int", "bool", "none"] + (["list", "dict"] if depth < 4 else []))
    if kind == "str":
        return _random_text(rng)
    if kind == "int":
        edges = [0, -1, 2**31, -(2**31), 2**63 - 1, -(2**63), 2**63, 2**64 - 1]
        return rng.choice([*edges, rng.randrange(-(2**63), 2**64)])
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "none":
        return None
    if kind == "list":
        return [_random_plain(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    return {_random_text(rng): _random_plain(rng, depth + 1) for _ in range(rng.randrange(0, 4))}


def test_random_plain_values_are_written_as_orjson_writes_them() -> None:
    import random

    rng = random.Random(20261125)
    as_dict, as_fields = JSONSerializer(dict[str, Any]), JSONSerializer(PlainFields)
    for _ in range(3000):
        d = {_random_text(rng): _random_plain(rng) for _ in range(rng.randrange(0, 5))}
        assert as_dict._fast.dumps(d) == orjson.dumps(d), d
        v = PlainFields(
            _random_text(rng),
            rng.randrange(-(2**63), 2**63),
            rng.random() < 0.5,
            [_random_text(rng) for _ in range(rng.randrange(0, 4))],
            _random_plain(rng),
            rng.choice([None, _random_text(rng)]),
        )
        assert as_fields._fast.dumps(v) == orjson.dumps(dataclasses.asdict(v)), v


def test_every_code_point_class_is_escaped_as_orjson_escapes_it() -> None:
    text = "".join(chr(c) for c in range(0, 0x800) if not 0xD800 <= c < 0xE000)
    text += "\U0001f600\U0010ffff\ufffe"
    assert JSONSerializer(dict).serialize({"k": text}) == orjson.dumps({"k": text}).decode()


@pytest.mark.parametrize(
    "value",
    [
        {"f": 1.5},  # floats: orjson's formatting
        {"t": (1, 2)},
        {"s": StrSub("x")},
        {"i": IntSub(3)},
        {StrSub("k"): 1},
        {"dc": Inner(1)},
        {"e": Color.RED, "l": Level.HIGH, "p": Perm.READ | Perm.WRITE},
        {"u": uuid.UUID(int=7)},
        {"d": datetime(2024, 1, 2, 3, 4, 5, 6)},
        {"deep": functools.reduce(lambda inner, _: [inner], range(100), [])},
        {1: "non-str key"},  # orjson raises
        {"big": 2**64},
        {"small": -(2**63) - 1},
        {"surrogate": "\ud800"},
        {"b": b"bytes"},
        {"set": {1}},
    ],
    ids=repr,
)
def test_everything_is_written_as_orjson_writes_it_or_refused(value: dict[Any, Any]) -> None:
    ser = JSONSerializer(dict[str, Any])
    try:
        want = orjson.dumps(value, default=lambda o: {"a": o.a})
    except TypeError:
        with pytest.raises(TypeError):
            ser.serialize(value)
    else:
        assert ser.serialize(value) == want.decode()


def test_dataclasses_are_written_from_their_fields_in_order() -> None:
    v = PlainFields("n", 1, True, [])
    v.cached = "not a field"  # type: ignore[attr-defined]
    assert (
        JSONSerializer(PlainFields).serialize(v)
        == '{"name":"n","n":1,"ok":true,"tags":[],"extra":null,"note":null}'
    )
    p = PlainFields("n", 1, True, [])
    del p.__dict__["name"]
    p.__dict__["name"] = "n"  # __dict__ out of declaration order: the fields' order counts
    assert JSONSerializer(PlainFields).serialize(p).startswith('{"name":"n","n":1,')
    ser = JSONSerializer(Outer)
    assert ser.serialize(Outer(Inner(1), 0.5)) == '{"inner":{"a":1},"score":0.5}'
    assert ser.serialize(Outer(Inner(1))) == '{"inner":{"a":1},"score":0.0}'
    assert ser._fast.dumps(Outer(Inner(1), 0.5)) is None  # a float: orjson writes it
    assert JSONSerializer(Keyed).serialize({"a": 1, "zz": 2, 3: 4}) == '{"a":1}'  # type: ignore[typeddict-unknown-key,dict-item]


def test_write_value_writes_what_orjson_writes() -> None:
    import ferrosession as fs

    sessions = fs.Sessions()
    sessions.cookie(Address, "S", transformers=[fs.MessageAuthentication(b"k" * 32)])
    sessions._freeze()
    reg = sessions.registrations[0]
    codec, schema = reg.transport.codec, reg.home.schema
    assert schema is not None
    v = Address('ada "lovelace" é', "ß")
    data = orjson.dumps(dataclasses.asdict(v))
    for max_age in (None, 0, 60):
        line = codec.write_value(schema, v, max_age, True, 1_700_000_000)
        assert line == codec.write_asgi(data, max_age, 1_700_000_000)
        text = codec.write_value(schema, v, max_age, False, 1_700_000_000)
        assert text == codec.write(data, max_age, 1_700_000_000)
    assert codec.write_value(schema, Box(2**70), None) is None


def test_write_takes_bytes_and_write_asgi_gives_bytes() -> None:
    import ferrosession as fs

    sessions = fs.Sessions()
    sessions.cookie(Item, "s", transformers=[fs.MessageAuthentication(bytes(range(32)))])
    sessions.header(Cart, "X-S", transformers=[fs.MessageAuthentication(bytes(range(32)))])
    for reg in sessions.registrations:
        codec = reg.transport.codec
        text = '{"sku":"e u","qty":1}'
        line = codec.write(text, 60, 1000)
        assert codec.write(text.encode(), 60, 1000) == line
        assert codec.write_asgi(text, 60, 1000) == line.encode("latin-1")
        assert codec.write_asgi(text.encode(), None, 1000) == codec.write(text).encode()
    with pytest.raises(ValueError):
        sessions.registrations[0].transport.codec.write(b"\xff", 60)


# --- the session layer uses the serializer's reader and writer --------------------


def test_the_schema_is_wired_to_the_home() -> None:
    import ferrosession as fs
    from ferrosession import _core

    sessions = fs.Sessions()
    sessions.cookie(Cart, "c", transformers=[fs.MessageAuthentication(bytes(32))])
    assert isinstance(sessions.registrations[0].home.schema, _core.Schema)

    class Custom:
        def serialize(self, value: Any) -> str:
            return "{}"

        def deserialize(self, text: str) -> Any:
            return Item("c")

    sessions.cookie(Item, "i", serializer=Custom(), unsigned=True)
    assert sessions.registrations[1].home.schema is None


def test_read_asgi_fills_the_state() -> None:
    """What the fused read writes into the request's state for the session: the value,
    and the payload only when it is needed (to issue it again, or for the serializer
    to say why it does not fit)."""
    import ferrosession as fs
    from ferrosession.state import State

    old, new = bytes(range(32)), bytes(range(1, 33))
    item = Item("a", 2)
    text = JSONSerializer(Item).serialize(item)

    def registration(key: bytes, *old_keys: bytes) -> Any:
        sessions = fs.Sessions()
        sessions.cookie(Item, "s", transformers=[fs.MessageAuthentication(key, old_keys=old_keys)])
        return sessions.registrations[0]

    def read(reg: Any, headers: list[tuple[bytes, bytes]], schema: bool = True) -> Any:
        st = State(reg)
        reg.transport.codec.read_asgi(st, headers, None, reg.home.schema if schema else None)
        return (st.present, st.payload, st.reissue, st.value)

    rotated, current = registration(new, old), registration(old)
    cookie = current.transport.codec.write(text, None).split(";", 1)[0].encode()
    headers = [(b"host", b"x"), (b"cookie", cookie)]
    # verified by a retired key: issued again, so the payload comes too
    assert read(rotated, headers) == (True, text, True, item)
    assert read(current, headers) == (True, None, False, item)
    assert read(current, [(b"host", b"x")]) == (False, None, False, None)
    assert read(current, [(b"cookie", cookie[:-3] + b"000")]) == (True, None, False, None)
    # verified, but not of the type: the serializer says why, from the payload
    odd = current.transport.codec.write('{"sku":1}', None).split(";", 1)[0].encode()
    assert read(current, [(b"cookie", odd)]) == (True, '{"sku":1}', False, None)
    assert read(current, headers, schema=False) == (True, text, False, None)


def _asgi_run(sessions: Any, run: Any, cookie: Optional[str] = None) -> tuple[Any, list[str]]:
    import ferrosession as fs
    from _driver import call

    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(run(fs.get_sessions(scope)))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    headers = [("cookie", f"S={cookie}")] if cookie else []
    resp = call(fs.SessionMiddleware(app, sessions), headers=headers)
    return seen[0], resp.set_cookies


def _wsgi_run(sessions: Any, run: Any, cookie: Optional[str] = None) -> tuple[Any, list[str]]:
    import ferrosession as fs

    seen: list[Any] = []
    started: list[Any] = []

    def app(environ: Any, start_response: Any) -> list[bytes]:
        seen.append(run(fs.get_sessions(environ)))
        start_response("200 OK", [])
        return [b""]

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "wsgi.url_scheme": "http"}
    if cookie:
        environ["HTTP_COOKIE"] = f"S={cookie}"
    fs.WSGISessionMiddleware(app, sessions)(environ, lambda *a: started.append(a))
    return seen[0], [v for k, v in started[0][1] if k.lower() == "set-cookie"]


@pytest.mark.parametrize("driver", [_asgi_run, _wsgi_run], ids=["asgi", "wsgi"])
def test_set_sends_orjsons_json_and_get_reads_it_back(driver: Any) -> None:
    import ferrosession as fs
    from ferrosession.state import State

    sessions = fs.Sessions()
    sessions.cookie(Box, "S", transformers=[fs.MessageAuthentication(b"k" * 32)])
    for value in ({"a": [1, "x", None, True], "é": "\u2028"}, {"a": 1.5}, {"a": (1, 2)}):
        _, lines = driver(sessions, lambda s, v=value: s.set(Box(v)))
        assert len(lines) == 1
        cookie = lines[0].split(";", 1)[0].split("=", 1)[1]
        st = State(sessions.registrations[0])
        sessions.registrations[0].transport.codec.read_text(st, f"S={cookie}")
        assert st.payload == orjson.dumps({"v": value}).decode()
        back, _ = driver(sessions, lambda s: s.get(Box), cookie)
        assert back == Box(orjson.loads(orjson.dumps(value)))


@dataclass
class NoFloats:
    color: Color
    level: Level
    perm: Perm
    ident: uuid.UUID
    pair: tuple[int, str]
    address: Address
    previous: list[Address]
    either: Union[Address, int]
    mode: Literal["a", "b"]


def test_the_rust_writer_writes_enums_uuids_tuples_and_nested_dataclasses_as_orjson() -> None:
    v = NoFloats(
        Color.GREEN,
        Level.LOW,
        Perm.READ | Perm.WRITE,
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        (1, "é"),
        Address("Paris"),
        [Address("Lyon", "69000")],
        Address("Nice"),
        "b",
    )
    ser = JSONSerializer(NoFloats)
    data = ser._fast.dumps(v)
    assert data is not None  # written in Rust
    assert data == orjson.dumps(dataclasses.asdict(v))
    assert ser.deserialize(data.decode()) == v
