"""The typed reader in Rust (``_core.Schema``) against the Python decoder it stands in
for: whenever it returns a value, the Python path returns an equal value of the same
shape; whenever the Python path rejects, it returns ``None`` (and the Python path then
reports)."""

from __future__ import annotations

import dataclasses
import json
import math
import random
import struct
from typing import Any, Literal, NewType, Optional, Union

import orjson
import pytest

import ferrosession as fs
from ferrosession import _core
from ferrosession.serializers import DeserializationError, JSONSerializer
from ferrosession.state import State

UserId = NewType("UserId", str)


@dataclasses.dataclass(frozen=True)
class Item:
    sku: str
    qty: int = 1


@dataclasses.dataclass
class Cart:
    user: UserId
    items: list[Item]
    tags: list[str] = dataclasses.field(default_factory=list)
    note: Optional[str] = None
    score: float = 0.0
    flags: dict[str, bool] = dataclasses.field(default_factory=dict)
    extra: Any = None
    raw: list = dataclasses.field(default_factory=list)  # type: ignore[type-arg]
    obj: dict = dataclasses.field(default_factory=dict)  # type: ignore[type-arg]
    nothing: None = None
    maybe_item: Optional[Item] = None
    nested: list[list[int]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class WithLiteral:
    mode: Literal["a", "b"]


@dataclasses.dataclass
class WithUnion:
    v: Union[int, str]


@dataclasses.dataclass
class WithPost:
    a: int

    def __post_init__(self) -> None:
        pass


@dataclasses.dataclass
class Node:
    name: str
    children: list[Node] = dataclasses.field(default_factory=list)


def _python(ser: JSONSerializer[Any], text: str) -> Any:
    """The Python path alone (orjson and the compiled decoder)."""
    return ser._decode(orjson.loads(text))


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if dataclasses.is_dataclass(a):
        return list(vars(a)) == list(vars(b)) and _same(vars(a), vars(b))
    return bool(a == b)


def _check(ser: JSONSerializer[Any], text: str) -> Optional[Any]:
    fast = ser._fast
    assert fast is not None
    got = fast.decode(text)
    try:
        want = _python(ser, text)
    except (DeserializationError, orjson.JSONDecodeError, RecursionError):
        assert got is None, f"Rust read {text!r} which Python rejects"
        return None
    if got is not None:
        assert _same(got, want), (text, got, want)
    assert _same(ser.deserialize(text), want)
    return got


def test_covered_types_get_a_schema() -> None:
    assert JSONSerializer(Cart)._fast is not None
    assert JSONSerializer(dict)._fast is not None
    assert JSONSerializer(dict[str, int])._fast is not None
    # left to Python: unions, literals, recursive types, __post_init__
    for tp in (WithLiteral, WithUnion, WithPost, Node):
        assert JSONSerializer(tp)._fast is None, tp


FULL = {
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


def test_full_value_matches() -> None:
    ser = JSONSerializer(Cart)
    text = json.dumps(FULL)
    got = _check(ser, text)
    assert got is not None and got.items[1] == Item("b", 1)
    assert _check(ser, orjson.dumps(FULL).decode()) is not None


def test_defaults_and_factories_are_fresh() -> None:
    ser = JSONSerializer(Cart)
    a = ser._fast.decode('{"user":"u","items":[]}')  # type: ignore[union-attr]
    b = ser._fast.decode('{"user":"u","items":[]}')  # type: ignore[union-attr]
    assert a == Cart(UserId("u"), [])
    assert a.tags is not b.tags
    assert list(vars(a)) == [f.name for f in dataclasses.fields(Cart)]


def test_frozen_dataclass_is_filled() -> None:
    ser = JSONSerializer(Item)
    got = _check(ser, '{"qty":3,"sku":"q"}')
    assert got == Item("q", 3)
    assert list(vars(got)) == ["sku", "qty"]


@pytest.mark.parametrize(
    "text",
    [
        '{"user":1,"items":[]}',
        '{"user":"u","items":[1]}',
        '{"user":"u"}',
        '{"items":[]}',
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
        "[]",
        "null",
        "1",
        '"s"',
        "",
        "{",
        '{"user":"u","items":[]} x',
        '{"user":"u","items":[],}',
        '{"user":"u","items":[],"qty":NaN}',
        '{"user":"u","items":[],"extra":99999999999999999999999}',
        '{"user":"u","items":[],"extra":1e999}',
        '{"user":"\\ud83d\\ude00","items":[]}',
        '{"user":"\\ud800","items":[]}',
        '{"user":"a\\u0000b\\n\\"","items":[]}',
        '{"user":"é","items":[],"user":"x"}',
        '{"user":5,"items":[],"user":"x"}',
        '{"user":"x","items":[],"user":5}',
        '{"user":"u","items":[],"score":-0}',
        '{"user":"u","items":[],"score":9007199254740993}',
        '{"user":"u","items":[],"score":-9223372036854775808}',
        '{"user":"u","items":[],"score":9223372036854775808}',
        '{"user":"u","items":[],"extra":' + "[" * 200 + "]" * 200 + "}",
        ' \n{"user" : "u" , "items" : [ ] }\t',
        '{"user":"u","items":[],"unknown":{"a":[1,{"b":null}]}}',
        '{"user":"u","items":[],"unknown":{"a":[1,}}',
    ],
)
def test_inputs(text: str) -> None:
    _check(JSONSerializer(Cart), text)


def test_floats_round_exactly_as_orjson() -> None:
    ser = JSONSerializer(Cart)
    rng = random.Random(5)
    samples = ["0.1", "1e-320", "2.2250738585072011e-308", "1.7976931348623157e308", "5e-324"]
    samples += ["123456789012345678901234567890.5", "0.30000000000000004", "-1.5E+3", "1e22"]
    for _ in range(2000):
        bits = rng.getrandbits(64)
        f = struct.unpack("<d", struct.pack("<Q", bits))[0]
        if math.isfinite(f):
            samples.append(repr(f))
        samples.append(
            f"{rng.randint(0, 10**20)}.{rng.randint(0, 10**20)}e{rng.randint(-330, 310)}"
        )
    for s in samples:
        _check(ser, f'{{"user":"u","items":[],"score":{s},"extra":[{s}]}}')


def test_dict_session_types() -> None:
    _check(JSONSerializer(dict), '{"a":[1,{"b":2.5}],"a":3}')
    _check(JSONSerializer(dict[str, int]), '{"a":1,"b":2}')
    _check(JSONSerializer(dict[str, int]), '{"a":1,"b":"2"}')


def test_raising_factory_makes_the_session_absent() -> None:
    calls = []

    def boom() -> list[str]:
        calls.append(1)
        raise RuntimeError("factory")

    @dataclasses.dataclass
    class S:
        a: str
        b: list[str] = dataclasses.field(default_factory=boom)

    ser = JSONSerializer(S)
    with pytest.raises(RuntimeError):
        ser.deserialize('{"a":"x"}')
    assert ser.deserialize('{"a":"x","b":[]}') == S("x", [])


def test_session_schema_wired_to_the_home() -> None:
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
    to decide)."""
    old, new = bytes(range(32)), bytes(range(1, 33))
    item = Item("a", 2)
    text = JSONSerializer(Item).serialize(item)

    def registration(key: bytes, *old_keys: bytes) -> Any:
        sessions = fs.Sessions()
        mac = fs.MessageAuthentication(key, old_keys=old_keys)
        sessions.cookie(Item, "s", transformers=[mac])
        return sessions.registrations[0]

    def read(reg: Any, headers: list[tuple[bytes, bytes]], schema: Any = True) -> State:
        st = State(reg)
        reg.transport.codec.read_asgi(st, headers, None, reg.home.schema if schema else None)
        return st

    def fields(st: State) -> tuple[Any, ...]:
        return (st.present, st.payload, st.reissue, st.value)

    rotated = registration(new, old)
    current = registration(old)
    line = current.transport.codec.write(text, None)
    cookie = line.split(";", 1)[0].encode()
    headers = [(b"host", b"x"), (b"cookie", cookie)]
    # verified by a retired key: issued again, so the payload comes too
    assert fields(read(rotated, headers)) == (True, text, True, item)
    assert fields(read(current, headers)) == (True, None, False, item)
    assert fields(read(current, [(b"host", b"x")])) == (False, None, False, None)
    tampered = [(b"cookie", cookie[:-3] + b"000")]
    assert fields(read(current, tampered)) == (True, None, False, None)
    # verified, but not of the type: the serializer decides, from the payload
    odd = current.transport.codec.write('{"sku":1}', None).split(";", 1)[0].encode()
    assert fields(read(current, [(b"cookie", odd)])) == (True, '{"sku":1}', False, None)
    # without a schema: the payload
    assert fields(read(current, headers, schema=False)) == (True, text, False, None)


def test_write_takes_bytes_and_write_asgi_gives_bytes() -> None:
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
