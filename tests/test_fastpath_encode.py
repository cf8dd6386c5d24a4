"""The typed writer in Rust (``_core.Schema.dumps``, used by ``JSONSerializer._dumps``
and fused into ``Codec.write_value`` for ``set``) against orjson, which it stands in
for: whenever it writes a value, the bytes are exactly those orjson writes; whenever it
is not sure (floats, subclasses, tuples, nested dataclasses, lone surrogates, integers
beyond 64 bits, deep nesting, a ``__dict__`` that is not exactly the fields) it returns
``None`` and orjson decides, errors and all."""

from __future__ import annotations

import dataclasses
import random
from typing import Any, Optional

import orjson
import pytest

import ferrosession as fs
from _driver import call
from ferrosession.serializers import JSONSerializer
from ferrosession.state import State


@dataclasses.dataclass
class Plain:
    name: str
    n: int
    ok: bool
    tags: list[str]
    extra: Any = None
    note: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class Frozen:
    user: str
    items: list[str]
    visits: int


@dataclasses.dataclass
class Inner:
    a: int


@dataclasses.dataclass
class Outer:
    inner: Optional[Inner] = None
    score: float = 0.0


@dataclasses.dataclass
class Box:
    v: Any


@dataclasses.dataclass
class WithPost:
    a: int

    def __post_init__(self) -> None:
        self.derived = self.a * 2  # not a field: must never be written


class Str(str):
    pass


class Int(int):
    pass


def schema(tp: Any) -> Any:
    fast = JSONSerializer(tp)._fast
    assert fast is not None, tp
    return fast


def orjson_dumps(value: Any) -> bytes:
    """What ``_dumps`` gives without the Rust writer (its orjson path)."""
    ser = JSONSerializer(type(value) if dataclasses.is_dataclass(value) else dict)
    ser._fast = None  # type: ignore[misc]
    return ser._dumps(value)


_ALPHABET = [chr(c) for c in range(0x00, 0x80)] + [
    "é",
    "ß",
    "\u2028",
    "\u2029",
    "\ufeff",
    "\uffff",
    "😀",
    "\U0010ffff",
    "ā",
    "中",
]


def random_text(rng: random.Random) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(rng.randrange(0, 12)))


def random_plain(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["str", "int", "bool", "none"] + (["list", "dict"] if depth < 4 else [])
    kind = rng.choice(kinds)
    if kind == "str":
        return random_text(rng)
    if kind == "int":
        edges = [0, -1, 1, 42, 2**31, -(2**31), 2**63 - 1, -(2**63), 2**63, 2**64 - 1]
        return rng.choice([*edges, rng.randrange(-(2**63), 2**64)])
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "none":
        return None
    if kind == "list":
        return [random_plain(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    return {random_text(rng): random_plain(rng, depth + 1) for _ in range(rng.randrange(0, 4))}


def test_random_plain_values_are_written_as_orjson_writes_them() -> None:
    rng = random.Random(20261125)
    dict_schema = schema(dict[str, Any])
    plain_schema = schema(Plain)
    for _ in range(3000):
        d = {random_text(rng): random_plain(rng) for _ in range(rng.randrange(0, 5))}
        assert dict_schema.dumps(d) == orjson.dumps(d), d
        v = Plain(
            random_text(rng),
            rng.randrange(-(2**63), 2**63),
            rng.random() < 0.5,
            [random_text(rng) for _ in range(rng.randrange(0, 4))],
            random_plain(rng),
            rng.choice([None, random_text(rng)]),
        )
        got = plain_schema.dumps(v)
        assert got is not None
        assert got == orjson_dumps(v), v


def test_every_code_point_class_is_escaped_as_orjson_escapes_it() -> None:
    text = "".join(chr(c) for c in range(0, 0x800) if not 0xD800 <= c < 0xE000)
    text += "\U0001f600\U0010ffff\ufffe"
    assert schema(dict).dumps({"k": text}) == orjson.dumps({"k": text})


@pytest.mark.parametrize(
    "value",
    [
        {"f": 1.5},  # floats: orjson's formatting decides
        {"t": (1, 2)},  # tuples
        {"s": Str("x")},  # subclasses
        {"i": Int(3)},
        {Str("k"): 1},
        {1: "non-str key"},  # orjson raises
        {"big": 2**64},  # beyond 64 bits: orjson raises
        {"small": -(2**63) - 1},
        {"surrogate": "\ud800"},  # orjson raises
        {"b": b"bytes"},  # orjson raises
        {"set": {1}},
        {"dc": Inner(1)},  # a nested dataclass
    ],
    ids=repr,
)
def test_what_it_is_not_sure_of_is_left_to_orjson(value: dict[str, Any]) -> None:
    assert schema(dict[str, Any]).dumps(value) is None
    ser = JSONSerializer(dict[str, Any])
    try:
        expected: Any = orjson_dumps(value)
    except TypeError as exc:
        with pytest.raises(TypeError, match=str(exc)[:20].replace("(", r"\(")):
            ser._dumps(value)
    else:
        assert ser._dumps(value) == expected


def test_deep_nesting_is_left_to_orjson() -> None:
    shallow: Any = []
    for _ in range(60):
        shallow = [shallow]
    assert schema(dict).dumps({"x": shallow}) == orjson.dumps({"x": shallow})
    deep: Any = []
    for _ in range(100):
        deep = [deep]
    assert schema(dict).dumps({"x": deep}) is None
    assert JSONSerializer(dict)._dumps({"x": deep}) == orjson.dumps({"x": deep})


def test_dataclasses_are_written_from_their_fields_only() -> None:
    assert JSONSerializer(WithPost)._fast is None  # __post_init__: Python's path
    assert JSONSerializer(WithPost).serialize(WithPost(3)) == '{"a":3}'
    v = Plain("n", 1, True, [])
    v.cached = "not a field"  # type: ignore[attr-defined]
    assert schema(Plain).dumps(v) is None  # __dict__ holds more than the fields
    assert "cached" not in JSONSerializer(Plain).serialize(v)
    # fields out of declaration order in __dict__: orjson's path writes the fields
    p = Plain("n", 1, True, [])
    del p.__dict__["name"]
    p.__dict__["name"] = "n"
    assert schema(Plain).dumps(p) is None
    # a subclass instance, a nested dataclass, a float field: Python's path
    assert schema(Outer).dumps(Outer(Inner(1))) is None
    assert schema(Outer).dumps(Outer(None, 0.5)) is None
    assert JSONSerializer(Outer).serialize(Outer(Inner(1), 0.5)) == '{"inner":{"a":1},"score":0.5}'
    f = Frozen("ada", ["a"], 2)
    assert schema(Frozen).dumps(f) == orjson.dumps(dataclasses.asdict(f))
    assert schema(Frozen).dumps(Plain("n", 1, True, [])) is None  # another type


def test_write_value_is_write_of_what_orjson_writes() -> None:
    sessions = fs.Sessions()
    sessions.cookie(Frozen, "S", transformers=[fs.MessageAuthentication(b"k" * 32)])
    sessions._freeze()
    reg = sessions.registrations[0]
    codec, schema = reg.transport.codec, reg.home.schema
    assert schema is not None
    v = Frozen('ada "lovelace" é', ["sku-1", "ß"], 42)
    data = orjson.dumps(dataclasses.asdict(v))
    for max_age in (None, 0, 60):
        line = codec.write_value(schema, v, max_age, True, 1_700_000_000)
        assert line == codec.write_asgi(data, max_age, 1_700_000_000)
        text = codec.write_value(schema, v, max_age, False, 1_700_000_000)
        assert text == codec.write(data, max_age, 1_700_000_000)
    assert codec.write_value(schema, Frozen("a", ["b"], 2**70), None) is None


def _asgi(sessions: fs.Sessions, run: Any, cookie: Optional[str] = None) -> tuple[Any, list[str]]:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(run(fs.get_sessions(scope)))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    headers = [("cookie", f"S={cookie}")] if cookie else []
    resp = call(fs.SessionMiddleware(app, sessions), headers=headers)
    return seen[0], resp.set_cookies


def _wsgi(sessions: fs.Sessions, run: Any, cookie: Optional[str] = None) -> tuple[Any, list[str]]:
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


@pytest.mark.parametrize("driver", [_asgi, _wsgi], ids=["asgi", "wsgi"])
def test_set_writes_the_same_cookie_with_and_without_the_rust_writer(driver: Any) -> None:
    """Through the middleware: a value the Rust writer takes and values it leaves to
    orjson each go out in a Set-Cookie whose payload is orjson's JSON, and read back."""
    sessions = fs.Sessions()
    sessions.cookie(Box, "S", transformers=[fs.MessageAuthentication(b"k" * 32)])
    for value in ({"a": [1, "x", None, True], "é": "\u2028"}, {"a": 1.5}, {"a": (1, 2)}):
        _, lines = driver(sessions, lambda s, v=value: s.set(Box(v)))
        assert len(lines) == 1
        cookie = lines[0].split(";", 1)[0].split("=", 1)[1]
        st = State(sessions.registrations[0])
        sessions.registrations[0].transport.codec.read_text(st, f"S={cookie}")
        assert st.payload == orjson_dumps(Box(value)).decode()
        back, _ = driver(sessions, lambda s: s.get(Box), cookie)
        assert back == Box(orjson.loads(orjson.dumps(value)))
