"""TypedDict, pydantic and msgspec session types, through the real middleware: Starlette
(ASGI) and Flask (WSGI), client-side (signed cookie) and server-side (MemoryStorage)."""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
import textwrap
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypedDict
from urllib.parse import quote_plus, unquote_plus

import flask
import msgspec
import pydantic
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from typing_extensions import NotRequired

import ferrosession as fs
from ferrosession.adapters import MsgspecSerializer, PydanticSerializer

KEY = bytes(range(32))
NAME = "SESSION"

# --- the session types ------------------------------------------------------------------


class LoginDict(TypedDict):
    user: str
    visits: int
    theme: NotRequired[str]


class OtherDict(TypedDict):
    colour: str


class Profile(pydantic.BaseModel):
    """Aliases: written by alias, read by alias."""

    user_id: str = pydantic.Field(alias="userId")
    visits: int = 0
    tags: list[str] = []


class Derived(pydantic.BaseModel):
    """Only round-trips if written without its computed field and with Json as text."""

    model_config = pydantic.ConfigDict(extra="forbid")

    visits: int
    history: pydantic.Json[list[int]]

    @pydantic.computed_field  # type: ignore[prop-decorator]
    @property
    def doubled(self) -> int:
        return self.visits * 2


class LaxCount(pydantic.BaseModel):
    visits: int


class StrictCount(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(strict=True)

    visits: int


class Checked(pydantic.BaseModel):
    visits: int

    @pydantic.field_validator("visits")
    @classmethod
    def not_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError("negative")  # pydantic wraps it in a ValidationError
        if value == 13:
            raise RuntimeError("unlucky")  # pydantic lets this one through as it is
        return value


class Basket(msgspec.Struct, rename="camel"):
    owner_id: str
    items: list[str] = []


class FrozenCount(msgspec.Struct, frozen=True):
    visits: int


# --- one app per framework, driven request by request -----------------------------------

Handler = Callable[[fs.CurrentSessions], Any]


class Driver:
    """One client of one app: each request runs ``handler`` in the app and keeps what it
    returned; cookies are kept here, from the Set-Cookie lines, and sent as a Cookie
    header (so a test can plant or tamper with one)."""

    def __init__(self, framework: str, sessions: fs.Sessions) -> None:
        self.cookies: dict[str, str] = {}
        self.handler: Handler = lambda s: None
        self.result: Any = None
        self._send: Callable[[dict[str, str]], list[str]]
        if framework == "asgi":
            self._send = self._asgi(sessions)
        else:
            self._send = self._wsgi(sessions)

    def _asgi(self, sessions: fs.Sessions) -> Callable[[dict[str, str]], list[str]]:
        async def endpoint(request: Request) -> PlainTextResponse:
            self.result = self.handler(fs.get_sessions(request))
            return PlainTextResponse("ok")

        app = Starlette(routes=[Route("/", endpoint)])
        client = TestClient(fs.SessionMiddleware(app, sessions))

        def send(headers: dict[str, str]) -> list[str]:
            response = client.get("/", headers=headers)
            client.cookies.clear()  # this driver keeps the cookies
            assert response.status_code == 200, response.text
            return response.headers.get_list("set-cookie")

        return send

    def _wsgi(self, sessions: fs.Sessions) -> Callable[[dict[str, str]], list[str]]:
        app = flask.Flask(__name__)
        app.testing = True  # a handler's exception reaches the test

        @app.route("/")
        def index() -> str:
            self.result = self.handler(fs.get_sessions(flask.request))
            return "ok"

        app.wsgi_app = fs.WSGISessionMiddleware(app.wsgi_app, sessions)  # type: ignore[method-assign]
        client = app.test_client(use_cookies=False)

        def send(headers: dict[str, str]) -> list[str]:
            response = client.get("/", headers=headers)
            assert response.status_code == 200, response.text
            return response.headers.getlist("Set-Cookie")

        return send

    def request(self, handler: Handler) -> Any:
        """One request whose handler is ``handler``; returns what it returned."""
        self.handler = handler
        self.result = None
        headers = {}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for line in self._send(headers):
            first, _, attrs = line.partition(";")
            name, _, value = first.partition("=")
            if "Max-Age=0" in attrs:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return self.result


class Harness:
    """One session type registered one way (client- or server-side) in one framework."""

    def __init__(self, framework: str, side: str, *session_types: type) -> None:
        self.side = side
        self.storage = fs.MemoryStorage() if side == "server" else None
        self.sessions = fs.Sessions()
        for i, tp in enumerate(session_types):
            name = NAME if i == 0 else f"{NAME}{i}"
            if self.storage is None:
                self.sessions.cookie(tp, name, transformers=[fs.MessageAuthentication(KEY)])
            else:
                self.sessions.cookie(tp, name, self.storage)
        self.driver = Driver(framework, self.sessions)
        self.request = self.driver.request

    def sent(self) -> str:
        """The session text the last response left: the signed cookie's payload, or the
        stored entry its id points to."""
        cookie = self.driver.cookies[NAME]
        if self.storage is None:
            payload = fs.MessageAuthentication(KEY).transform_read(unquote_plus(cookie))
        else:
            payload = self.storage.read(self.sessions.storage_key(NAME, cookie))
        assert payload is not None
        return payload

    def plant(self, payload: str) -> None:
        """The next request carries ``payload`` as its session, exactly as the server
        would have issued it (signed with the key, or stored under a known id)."""
        if self.storage is None:
            wire = fs.MessageAuthentication(KEY).transform_write(payload)
            self.driver.cookies[NAME] = quote_plus(wire, safe="")
        else:
            sid = secrets.token_hex(32)
            self.storage.write(self.sessions.storage_key(NAME, sid), payload, 3600)
            self.driver.cookies[NAME] = sid

    def get(self, key: Any = NAME) -> Any:
        return self.request(lambda s: s.get(key))


MODES = [(f, side) for f in ("asgi", "wsgi") for side in ("client", "server")]


@pytest.fixture(params=MODES, ids=[f"{f}-{side}" for f, side in MODES])
def mode(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.param  # type: ignore[no-any-return]


def harness(mode: tuple[str, str], *session_types: type) -> Harness:
    return Harness(mode[0], mode[1], *session_types)


# --- TypedDict --------------------------------------------------------------------------


def test_typed_dict_round_trip(mode: tuple[str, str]) -> None:
    h = harness(mode, LoginDict)
    assert h.get() is None
    h.request(lambda s: s.set(LoginDict(user="ann", visits=1)))
    assert h.sent() == '{"user":"ann","visits":1}'
    assert h.get() == {"user": "ann", "visits": 1}
    assert h.get(LoginDict) == {"user": "ann", "visits": 1}
    h.request(lambda s: s.set(LoginDict(user="ann", visits=2, theme="dark")))
    assert h.get() == {"user": "ann", "visits": 2, "theme": "dark"}


def test_typed_dict_keys_and_types_are_checked(mode: tuple[str, str]) -> None:
    h = harness(mode, LoginDict)
    for misfit in (
        '{"user":"ann","visits":"1"}',  # no coercion
        '{"user":"ann","visits":true}',
        '{"user":"ann"}',  # a required key missing
        '{"name":"ann","visits":1}',  # a key renamed
        '{"user":"ann","visits":1,"theme":3}',  # a NotRequired key of the wrong type
        '["ann",1]',
        "not json",
    ):
        h.plant(misfit)
        assert h.get() is None, misfit
    h.plant('{"visits":1,"user":"ann","extra":[1]}')  # unknown keys are dropped
    assert h.get() == {"user": "ann", "visits": 1}


def test_typed_dict_writes_only_its_declared_keys(mode: tuple[str, str]) -> None:
    h = harness(mode, LoginDict)
    h.request(lambda s: s.set({"user": "ann", "visits": 1, "password": "hunter2"}))
    assert h.sent() == '{"user":"ann","visits":1}'


def test_a_dict_goes_to_the_dict_registration_before_a_typed_dict(mode: tuple[str, str]) -> None:
    h = harness(mode, dict, LoginDict)
    h.request(lambda s: s.set({"user": "ann", "visits": 1}))
    assert h.get(dict) == {"user": "ann", "visits": 1}
    assert h.get(LoginDict) is None


def test_several_typed_dicts_make_set_of_a_dict_an_error(mode: tuple[str, str]) -> None:
    h = harness(mode, LoginDict, OtherDict)
    with pytest.raises(fs.ConfigurationError, match=r"LoginDict \('SESSION'\), OtherDict"):
        h.request(lambda s: s.set({"colour": "red"}))
    # each is still read by type or by name
    h.plant('{"user":"ann","visits":1}')
    assert h.get(LoginDict) == {"user": "ann", "visits": 1}
    assert h.get(OtherDict) is None


# --- pydantic ---------------------------------------------------------------------------


def test_pydantic_round_trip_by_alias(mode: tuple[str, str]) -> None:
    h = harness(mode, Profile)
    assert isinstance(h.sessions.lookup(Profile).adapter, PydanticSerializer)
    h.request(lambda s: s.set(Profile(userId="ann", visits=3, tags=["a"])))
    assert h.sent() == '{"userId":"ann","visits":3,"tags":["a"]}'
    got = h.get()
    assert got == Profile(userId="ann", visits=3, tags=["a"])
    assert type(got) is Profile


def test_pydantic_model_reads_its_own_output(mode: tuple[str, str]) -> None:
    h = harness(mode, Derived)
    value = Derived.model_validate({"visits": 2, "history": "[1,2]"})
    h.request(lambda s: s.set(value))
    assert h.sent() == '{"visits":2,"history":"[1,2]"}'
    assert h.get() == value


def test_pydantic_payload_that_no_longer_fits_is_absent(mode: tuple[str, str]) -> None:
    h = harness(mode, Profile)
    for misfit in (
        '{"user_id":"ann"}',  # the field name, not its alias
        '{"userId":3}',
        '{"userId":"ann","tags":"a"}',
        "{",
        "",
    ):
        h.plant(misfit)
        assert h.get() is None, misfit
    h.plant('{"userId":"ann"}')
    assert h.get() == Profile(userId="ann")


def test_pydantic_strict_and_lax_follow_the_model_config(mode: tuple[str, str]) -> None:
    lax = harness(mode, LaxCount)
    lax.plant('{"visits":"12"}')
    assert lax.get() == LaxCount(visits=12)
    strict = harness(mode, StrictCount)
    strict.plant('{"visits":"12"}')
    assert strict.get() is None
    strict.plant('{"visits":12}')
    assert strict.get() == StrictCount(visits=12)


def test_pydantic_validator_raising_on_read_is_absent(mode: tuple[str, str]) -> None:
    h = harness(mode, Checked)
    h.plant('{"visits":-1}')  # ValueError -> ValidationError
    assert h.get() is None
    h.plant('{"visits":13}')  # RuntimeError, not wrapped by pydantic
    assert h.get() is None
    h.request(lambda s: s.set(Checked(visits=5)))
    assert h.get() == Checked(visits=5)


def test_pydantic_value_is_a_snapshot_at_set(mode: tuple[str, str]) -> None:
    h = harness(mode, Profile)

    def set_then_mutate(s: fs.CurrentSessions) -> None:
        profile = Profile(userId="ann", visits=1)
        s.set(profile)
        profile.visits = 99
        profile.tags.append("later")

    h.request(set_then_mutate)
    assert h.sent() == '{"userId":"ann","visits":1,"tags":[]}'
    assert h.get() == Profile(userId="ann", visits=1)


def test_pydantic_v1_model_is_refused() -> None:
    import pydantic.v1

    class Old(pydantic.v1.BaseModel):
        visits: int

    with pytest.raises(fs.ConfigurationError, match="pydantic v1 model"):
        fs.Sessions().cookie(Old, NAME, transformers=[fs.MessageAuthentication(KEY)])


# --- msgspec ----------------------------------------------------------------------------


def test_msgspec_round_trip_with_renamed_fields(mode: tuple[str, str]) -> None:
    h = harness(mode, Basket)
    assert isinstance(h.sessions.lookup(Basket).adapter, MsgspecSerializer)
    h.request(lambda s: s.set(Basket(owner_id="ann", items=["tea"])))
    assert h.sent() == '{"ownerId":"ann","items":["tea"]}'
    got = h.get()
    assert got == Basket(owner_id="ann", items=["tea"])
    assert type(got) is Basket


def test_msgspec_payload_that_no_longer_fits_is_absent(mode: tuple[str, str]) -> None:
    h = harness(mode, Basket)
    for misfit in (
        '{"owner_id":"ann"}',  # the attribute name, not the renamed one
        '{"ownerId":1}',
        '{"ownerId":"ann","items":["tea",2]}',
        '{"ownerId":"ann"',
    ):
        h.plant(misfit)
        assert h.get() is None, misfit
    strict = harness(mode, FrozenCount)
    strict.plant('{"visits":"12"}')  # msgspec is strict: no "12" for 12
    assert strict.get() is None
    strict.plant('{"visits":12,"more":1}')
    assert strict.get() == FrozenCount(visits=12)


def test_msgspec_value_is_a_snapshot_at_set(mode: tuple[str, str]) -> None:
    h = harness(mode, Basket)

    def set_then_mutate(s: fs.CurrentSessions) -> None:
        basket = Basket(owner_id="ann", items=["tea"])
        s.set(basket)
        basket.items.append("cake")
        basket.owner_id = "bob"

    h.request(set_then_mutate)
    assert h.sent() == '{"ownerId":"ann","items":["tea"]}'
    assert h.get() == Basket(owner_id="ann", items=["tea"])


def test_typed_dict_value_is_a_snapshot_at_set(mode: tuple[str, str]) -> None:
    h = harness(mode, LoginDict)

    def set_then_mutate(s: fs.CurrentSessions) -> None:
        login = LoginDict(user="ann", visits=1)
        s.set(login)
        login["visits"] = 99

    h.request(set_then_mutate)
    assert h.sent() == '{"user":"ann","visits":1}'
    assert h.get() == {"user": "ann", "visits": 1}


# --- client input that is not the server's ---------------------------------------------


@pytest.mark.parametrize(
    ("tp", "value"),
    [
        (LoginDict, LoginDict(user="ann", visits=1)),
        (Profile, Profile(userId="ann")),
        (Basket, Basket(owner_id="ann")),
    ],
)
def test_tampered_cookie_is_absent(mode: tuple[str, str], tp: type, value: Any) -> None:
    h = harness(mode, tp)
    h.request(lambda s: s.set(value))
    assert h.get() == value
    cookie = h.driver.cookies[NAME]
    h.driver.cookies[NAME] = cookie[:-1] + ("0" if cookie[-1] != "0" else "1")
    assert h.get() is None


@pytest.mark.parametrize("tp", [LoginDict, Profile, Basket])
def test_foreign_payload_is_absent(mode: tuple[str, str], tp: type) -> None:
    # a value another session type wrote (a dataclass Cart), issued with the same key
    h = harness(mode, tp)
    h.plant('{"items":["tea"]}')
    assert h.get() is None


# --- configuration ----------------------------------------------------------------------


def test_other_classes_still_need_a_serializer() -> None:
    class Plain:
        pass

    with pytest.raises(fs.ConfigurationError, match="neither a dataclass nor dict"):
        fs.Sessions().cookie(Plain, NAME, transformers=[fs.MessageAuthentication(KEY)])


def test_unsupported_annotation_in_typed_dict_names_the_key() -> None:
    class Bad(TypedDict):
        data: bytes

    with pytest.raises(fs.ConfigurationError, match=r"Bad\['data'\]: unsupported type bytes"):
        fs.Sessions().cookie(Bad, NAME, transformers=[fs.MessageAuthentication(KEY)])


def test_dataclass_sessions_import_neither_pydantic_nor_msgspec() -> None:
    script = textwrap.dedent(
        """
        import asyncio, sys
        from dataclasses import dataclass
        from typing import TypedDict
        import ferrosession as fs

        @dataclass(frozen=True)
        class Login:
            user: str

        class Prefs(TypedDict):
            theme: str

        sessions = fs.Sessions()
        sessions.cookie(Login, "LOGIN", transformers=[fs.MessageAuthentication(bytes(32))])
        sessions.cookie(Prefs, "PREFS", fs.MemoryStorage())

        async def app(scope, receive, send):
            s = fs.get_sessions(scope)
            s.set(Login(user="ann"))
            s.set(Prefs(theme="dark"))
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        sent = []

        async def send(message):
            sent.append(message)

        async def receive():
            return {"type": "http.request", "body": b""}

        scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
        asyncio.run(fs.SessionMiddleware(app, sessions)(scope, receive, send))
        cookies = [v for k, v in sent[0]["headers"] if k == b"set-cookie"]
        assert len(cookies) == 2, sent
        print(sorted(m for m in ("pydantic", "msgspec") if m in sys.modules))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]", out


@dataclass(frozen=True)
class Visits:
    n: int


def test_dataclass_registration_keeps_the_default_json_serializer() -> None:
    sessions = fs.Sessions()
    sessions.cookie(Visits, NAME, transformers=[fs.MessageAuthentication(KEY)])
    assert type(sessions.lookup(Visits).adapter) is fs.JSONSerializer


def test_readme_session_types_example() -> None:
    # the block test_readme runs; run here as a module too, and driven
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = next(
        b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S) if "class Prefs(" in b
    )
    module = types.ModuleType("readme_session_types")
    sys.modules[module.__name__] = module
    try:
        exec(compile(block, "README.md (Session types)", "exec"), module.__dict__)
    finally:
        del sys.modules[module.__name__]
    app = module.app
    with TestClient(app) as client:
        assert client.get("/").json() == {"visits": 1, "basket": ["tea"]}
        assert client.get("/?add=cake").json() == {"visits": 2, "basket": ["tea", "cake"]}
        assert client.cookies["PREFS"].startswith("%7B%22theme%22%3A%22dark%22%7D")
        assert len(client.cookies["PROFILE"]) == 64  # server-side: only the id travels
        client.cookies.delete("PROFILE")
        assert client.get("/").json() == {"visits": 1, "basket": ["tea", "cake", "tea"]}
