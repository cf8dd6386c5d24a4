"""``ferrosession.flask.SessionInterface`` against Flask's own
``SecureCookieSessionInterface``: the same cookies (byte for byte with the same clock),
read both ways with tagged values, compression, fallback keys and expiry, and the same
``Set-Cookie`` / ``Vary`` lines for every ``SESSION_COOKIE_*`` setting."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

import flask
import flask.sessions
import itsdangerous
import pytest
from flask.json.provider import DefaultJSONProvider
from flask.json.tag import JSONTag, TaggedJSONSerializer
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import Markup
from werkzeug.http import parse_cookie

from ferrosession import _core
from ferrosession.flask import SessionInterface

SECRET = "s3cr3t-key"
TS = 1_700_000_000
DAY = 86_400
VECTOR = "eyJuIjoxLCJ1c2VyIjoiYWxpY2UifQ.ZVPxAA.KDxxEGIyBLMSlZf2NCJWcGhKNzY"
VECTOR_DATA = {"user": "alice", "n": 1}
COMPRESSED_VECTOR = ".eJyrVqpQslJKHCZAqRYAn1xN-w.ZVPxAA.KLhQG0MTr9-UdPH10zReblHcZBE"
NOW = datetime(2026, 5, 4, 3, 2, 1, 654321, tzinfo=timezone.utc)


class Clock:
    def __init__(self, now: int = TS) -> None:
        self.now = now

    def __call__(self) -> float:
        return float(self.now)


class FrozenDatetime(datetime):
    @classmethod
    def now(cls, tz: Any = None) -> FrozenDatetime:  # type: ignore[override]
        return cls.fromtimestamp(NOW.timestamp(), tz)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """One clock for both: ours through ``clock=``, Flask's through itsdangerous; and
    ``Expires`` (``datetime.now()`` in Flask's ``get_expiration_time``) frozen."""
    c = Clock()
    monkeypatch.setattr(itsdangerous.TimestampSigner, "get_timestamp", lambda self: c.now)
    monkeypatch.setattr(flask.sessions, "datetime", FrozenDatetime)
    return c


SPECIAL = {
    "t": (1, 2, 3),
    "b": b"\xff\x00",
    "m": Markup("<html>"),
    "u": uuid.UUID(int=0x1234),
    "d": datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
    "t_tag": {" t": "not-a-tuple"},
    "di_t_tag": {" t__": "not-a-tuple"},
    "di_tag": {" di": "not-a-dict"},
    "nested": [{"x": (4,)}, [b"a"]],
}


def make_app(
    ours: bool = True,
    clock: Optional[Clock] = None,
    interface: Optional[flask.sessions.SessionInterface] = None,
    **config: Any,
) -> flask.Flask:
    app = flask.Flask(__name__)
    app.config.update(SECRET_KEY=SECRET, TESTING=True)
    app.config.update(config)
    if interface is not None:
        app.session_interface = interface
    elif ours:
        app.session_interface = SessionInterface(clock=clock)
    session = flask.session

    @app.post("/set")
    def set_() -> str:
        session.update(flask.request.get_json())
        return ""

    @app.get("/special")
    def special() -> str:
        session.update(SPECIAL)
        return ""

    @app.get("/big")
    def big() -> str:
        session["x"] = "a" * 200
        return ""

    @app.get("/huge")
    def huge() -> str:
        session["rows"] = [{"id": i, "name": f"row {i}"} for i in range(60)]
        return ""

    @app.get("/perm")
    def perm() -> str:
        session["p"] = 1
        session.permanent = True
        return ""

    @app.get("/get")
    def get() -> str:
        return repr(sorted(session.items()))

    @app.get("/nothing")
    def nothing() -> str:
        return ""

    @app.get("/clear")
    def clear() -> str:
        session.clear()
        return ""

    return app


def cookie_of(response: Any, name: str = "session") -> str:
    for line in response.headers.getlist("Set-Cookie"):
        match = re.match(rf"{re.escape(name)}=([^;]*)", line)
        if match:
            return match[1]
    raise AssertionError(f"no {name} cookie in {response.headers}")


def read_with(app: flask.Flask, cookie: str, name: str = "session") -> str:
    c = app.test_client()
    c.set_cookie(name, cookie)
    return c.get("/get").text


def expected(data: dict[str, Any]) -> str:
    return repr(sorted(data.items()))


# -- the wire format --------------------------------------------------------------------
def test_vectors_in_the_core() -> None:
    codec = _core.FlaskCodec([SECRET.encode()])
    assert codec.dump_json(b'{"n":1,"user":"alice"}', TS) == VECTOR
    assert codec.dump(VECTOR_DATA, TS) == VECTOR
    opened = codec.load(VECTOR.encode(), 31 * DAY, TS)
    assert opened is not None and opened[0] == b'{"n":1,"user":"alice"}'
    opened = codec.load(COMPRESSED_VECTOR.encode(), 31 * DAY, TS)
    assert opened is not None and opened[0] == b'{"x":"' + b"a" * 200 + b'"}'
    # our own compression reads back, and only starts at compress_min
    big = b'{"x":"' + b"a" * 200 + b'"}'
    assert codec.dump_json(big, TS, 0).startswith(".")
    assert not codec.dump_json(big, TS, len(big) + 1).startswith(".")
    assert codec.load(codec.dump_json(big, TS, 0).encode(), None, TS)[0] == big  # type: ignore[index]


def test_vector_through_the_interface(clock: Clock) -> None:
    for ours in (True, False):
        response = make_app(ours, clock).test_client().post("/set", json=VECTOR_DATA)
        assert cookie_of(response) == VECTOR


def test_vectors_read(clock: Clock) -> None:
    clock.now = TS + 5
    assert read_with(make_app(clock=clock), VECTOR) == expected(VECTOR_DATA)
    assert read_with(make_app(clock=clock), COMPRESSED_VECTOR) == expected({"x": "a" * 200})


# -- reading each other's cookies -------------------------------------------------------
PATHS = ["/special", "/big", "/huge", "/perm"]
DATA = [
    {"user": "alice", "id": 7},
    {"é": "ünïcødé ✓ 😀", "q": 'say "hi"\n\t\\', "ctl": "\x00\x1f\x7f"},
    {"nested": {"a": [1, 2, {"b": None}], "c": {}}, "empty": [], "s": ""},
    {"float": 0.1, "big": 1e300, "neg": -0.0, "int": -(2**53)},
    {"huge": 2**80, "small": -(2**70)},
    {" x": "space key", "": "empty key"},
]


@pytest.mark.parametrize("path", PATHS)
def test_flask_writes_we_read(path: str) -> None:
    response = make_app(ours=False).test_client().get(path)
    reference = make_app(ours=False)
    cookie = cookie_of(response)
    assert read_with(make_app(), cookie) == read_with(reference, cookie)
    assert read_with(make_app(), cookie) not in ("[]", "")


@pytest.mark.parametrize("path", PATHS)
def test_we_write_flask_reads(path: str) -> None:
    cookie = cookie_of(make_app().test_client().get(path))
    reference = cookie_of(make_app(ours=False).test_client().get(path))
    assert read_with(make_app(ours=False), cookie) == read_with(make_app(ours=False), reference)


@pytest.mark.parametrize("data", DATA)
def test_plain_json_both_ways(data: dict[str, Any]) -> None:
    for writer, reader in ((True, False), (False, True)):
        cookie = cookie_of(make_app(writer).test_client().post("/set", json=data))
        assert read_with(make_app(reader), cookie) == expected(data)


def test_special_types_round_trip_like_flask() -> None:
    c = make_app().test_client()
    with c:
        c.get("/special")
        cookie = cookie_of(c.get("/special"))
    got = read_with(make_app(), cookie)
    assert got == expected(SPECIAL)
    assert got == read_with(make_app(ours=False), cookie)


def test_compression_follows_flask_from_the_threshold_on(clock: Clock) -> None:
    small = cookie_of(make_app(clock=clock).test_client().get("/big"))
    assert not small.startswith(".")  # 208 bytes of JSON: under compress_min_bytes
    large = cookie_of(make_app(clock=clock).test_client().get("/huge"))
    assert large.startswith(".")
    eager = SessionInterface(clock=clock)
    eager.compress_min_bytes = 0  # Flask's rule: compress whenever it is shorter
    also = cookie_of(make_app(interface=eager).test_client().get("/big"))
    assert also.startswith(".")
    for cookie in (small, large, also):
        assert read_with(make_app(ours=False), cookie) == read_with(make_app(clock=clock), cookie)


def test_fallback_keys_both_ways() -> None:
    old = cookie_of(
        make_app(ours=False, SECRET_KEY="old").test_client().post("/set", json={"a": 1})
    )
    assert read_with(make_app(SECRET_KEY="new"), old) == "[]"
    rotated = make_app(SECRET_KEY="new", SECRET_KEY_FALLBACKS=["older", "old"])
    assert read_with(rotated, old) == expected({"a": 1})
    # Flask does not re-sign a cookie a fallback verified, and neither do we
    c = rotated.test_client()
    c.set_cookie("session", old)
    assert "Set-Cookie" not in c.get("/get").headers
    # what we sign with the current key, Flask with fallbacks reads, and the reverse
    ours_new = cookie_of(rotated.test_client().post("/set", json={"b": 2}))
    flask_rotated = make_app(False, SECRET_KEY="newer", SECRET_KEY_FALLBACKS=["new"])
    assert read_with(flask_rotated, ours_new) == expected({"b": 2})
    bytes_key = make_app(SECRET_KEY=b"new", SECRET_KEY_FALLBACKS=[b"old"])
    assert read_with(bytes_key, old) == expected({"a": 1})


def test_expiry_is_permanent_session_lifetime(clock: Clock) -> None:
    lifetime = {"PERMANENT_SESSION_LIFETIME": timedelta(seconds=100)}
    cookie = cookie_of(make_app(ours=False, **lifetime).test_client().post("/set", json={"a": 1}))
    for now, result in ((TS + 100, {"a": 1}), (TS + 101, {}), (TS - 1, {})):
        clock.now = now
        for ours in (True, False):
            got = read_with(make_app(ours, clock, **lifetime), cookie)
            assert got == expected(result), (now, ours)
    # the default is 31 days
    clock.now = TS + 31 * DAY
    assert read_with(make_app(clock=clock), cookie) == expected({"a": 1})
    clock.now = TS + 31 * DAY + 1
    assert read_with(make_app(clock=clock), cookie) == "[]"


@pytest.mark.parametrize(
    "cookie",
    ["", "x", "a.b.c", VECTOR[:-1], VECTOR + "A", "." + VECTOR, VECTOR.replace("ZVPxAA", "ZVPxAB")],
)
def test_bad_cookies_are_empty_sessions(clock: Clock, cookie: str) -> None:
    assert read_with(make_app(clock=clock), cookie) == "[]"


def test_a_valid_signature_over_a_bad_payload_is_an_empty_session(clock: Clock) -> None:
    codec = _core.FlaskCodec([SECRET.encode()])
    for json_text in (b"{not json", b"\xff\xfe", b"[1, 2]"):
        cookie = codec.dump_json(json_text, TS, 1 << 20)
        app = make_app(clock=clock)
        got = read_with(app, cookie)
        assert got in ("[]",), (json_text, got)


# -- Set-Cookie and Vary ----------------------------------------------------------------
SETTINGS = [
    {},
    {"SESSION_COOKIE_NAME": "sid", "SESSION_COOKIE_PATH": "/app"},
    {
        "SESSION_COOKIE_DOMAIN": ".example.com",
        "SESSION_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": False,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_PARTITIONED": True,
    },
    {"SESSION_COOKIE_SAMESITE": "Strict", "APPLICATION_ROOT": "/root"},
    {"SESSION_REFRESH_EACH_REQUEST": False},
    {"PERMANENT_SESSION_LIFETIME": timedelta(hours=2)},
]


@pytest.mark.parametrize("config", SETTINGS)
def test_headers_are_flasks(clock: Clock, config: dict[str, Any]) -> None:
    name = config.get("SESSION_COOKIE_NAME", "session")

    def run(ours: bool) -> list[Any]:
        app = make_app(ours, clock, **config)
        c = app.test_client()
        out = []
        for path in ("/nothing", "/get", "/set", "/perm", "/get", "/nothing", "/special", "/clear"):
            response = c.post(path, json={"k": "v"}) if path == "/set" else c.get(path)
            lines = response.headers.getlist("Set-Cookie")
            values = [cookie_of(response, name)] if lines else []
            # compressed payloads differ in their bytes (zlib vs miniz_oxide): compare
            # what they carry, and the rest of the line exactly
            contents = [read_with(make_app(False, **config), v, name) if v else "" for v in values]
            shapes = [re.sub(rf"^{re.escape(name)}=[^;]*", f"{name}=V", line) for line in lines]
            out.append((path, shapes, contents, response.headers.getlist("Vary")))
            if values:
                c.set_cookie(name, values[0])
            elif lines:
                c.delete_cookie(name)
        return out

    assert run(True) == run(False)


def test_samesite_is_validated_like_flask() -> None:
    for ours in (True, False):
        app = make_app(ours, SESSION_COOKIE_SAMESITE="invalid")
        with pytest.raises(ValueError):
            app.test_client().post("/set", json={"a": 1})


def test_no_secret_key_is_flasks_null_session() -> None:
    app = make_app(SECRET_KEY=None)
    with app.test_request_context():
        assert flask.session.get("x") is None
        with pytest.raises(RuntimeError, match="session is unavailable"):
            flask.session["x"] = 1


def test_session_transaction_works() -> None:
    app = make_app()
    c = app.test_client()
    with c.session_transaction() as session:
        session["t"] = (1, 2)
    assert c.get("/get").text == expected({"t": (1, 2)})


# -- what a subclass or an app may change ------------------------------------------------
class TagSet(JSONTag):
    __slots__ = ()
    key = " s"

    def check(self, value: Any) -> bool:
        return isinstance(value, (set, frozenset))

    def to_json(self, value: Any) -> Any:
        return sorted(value)

    def to_python(self, value: Any) -> Any:
        return set(value)


def test_custom_tags_are_used() -> None:
    serializer = TaggedJSONSerializer()
    serializer.register(TagSet)

    class WithSets(SessionInterface):
        pass

    WithSets.serializer = serializer

    class FlaskWithSets(flask.sessions.SecureCookieSessionInterface):
        pass

    FlaskWithSets.serializer = serializer
    app = make_app(interface=WithSets())

    @app.get("/sets")
    def sets() -> str:
        flask.session["s"] = {3, 1}
        flask.session["l"] = [1]
        return ""

    cookie = cookie_of(app.test_client().get("/sets"))
    assert read_with(make_app(interface=WithSets()), cookie) == expected({"l": [1], "s": {1, 3}})
    assert read_with(make_app(interface=FlaskWithSets()), cookie) == expected(
        {"l": [1], "s": {1, 3}}
    )


def test_a_custom_json_provider_is_used() -> None:
    class Unsorted(DefaultJSONProvider):
        sort_keys = False

    app = make_app()
    app.json = Unsorted(app)
    cookie = cookie_of(app.test_client().post("/set", json={"b": 1, "a": 2}))
    payload = cookie.split(".")[0]
    assert _core.FlaskCodec([SECRET.encode()]).load(cookie.encode())[0] == b'{"b":1,"a":2}'  # type: ignore[index]
    assert payload and read_with(make_app(ours=False), cookie) == expected({"a": 2, "b": 1})


def test_another_digest_falls_back_to_flask_code(clock: Clock) -> None:
    class Sha256(SessionInterface):
        digest_method = staticmethod(hashlib.sha256)

    class FlaskSha256(flask.sessions.SecureCookieSessionInterface):
        digest_method = staticmethod(hashlib.sha256)

    mine = cookie_of(make_app(interface=Sha256(clock=clock)).test_client().get("/special"))
    theirs = cookie_of(make_app(interface=FlaskSha256()).test_client().get("/special"))
    assert mine == theirs
    assert read_with(make_app(interface=Sha256()), theirs) == expected(SPECIAL)


def test_another_salt_and_key_derivation_are_honoured(clock: Clock) -> None:
    class Salty(SessionInterface):
        salt = "other-salt"
        key_derivation = "django-concat"

    class FlaskSalty(flask.sessions.SecureCookieSessionInterface):
        salt = "other-salt"
        key_derivation = "django-concat"

    mine = cookie_of(
        make_app(interface=Salty(clock=clock)).test_client().post("/set", json={"a": 1})
    )
    theirs = cookie_of(make_app(interface=FlaskSalty()).test_client().post("/set", json={"a": 1}))
    assert mine == theirs
    assert read_with(make_app(), mine) == "[]"


def test_a_request_class_with_its_own_cookies_is_asked() -> None:
    class Decoy(flask.Request):
        @property
        def cookies(self) -> Any:  # type: ignore[override]
            return {"session": VECTOR}

    app = make_app(clock=Clock(TS))
    app.request_class = Decoy
    assert app.test_client().get("/get").text == expected(VECTOR_DATA)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(alphabet=' =;"\\\t\nab', max_size=6),
            st.text(alphabet=' =;"\\\t\n0127ab', max_size=8),
        ),
        max_size=5,
    ),
    st.sampled_from(["session", "a", "b"]),
)
def test_cookie_parsing_is_werkzeugs(pairs: list[tuple[str, str]], name: str) -> None:
    header = ";".join(f"{k}={v}" if v else k for k, v in pairs)
    want = parse_cookie(header).get(name)
    got = _core._test_cookie_value(header, name, "werkzeug")
    assert got == (None if want is None else want.encode()), header
