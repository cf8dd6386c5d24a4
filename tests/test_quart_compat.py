"""ferrosession.quart.SessionInterface against Quart's own SecureCookieSessionInterface,
through real Quart apps: each reads the other's cookies, the bytes and Set-Cookie lines
are the same, and the settings, fallbacks, expiry and forgeries behave as Quart's."""

import asyncio
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Optional

import pytest
import quart
from quart.sessions import SecureCookieSessionInterface

from ferrosession.quart import SessionInterface

SECRET = "a secret that is long enough for the test"


def make_app(interface: Any, **config: Any) -> quart.Quart:
    app = quart.Quart(__name__)
    app.secret_key = SECRET
    app.config.update(config)
    app.session_interface = interface

    @app.post("/set")
    async def set_() -> str:
        data = await quart.request.get_json()
        quart.session.update(data)
        if quart.request.args.get("permanent"):
            quart.session.permanent = True
        return "ok"

    @app.post("/tagged")
    async def tagged() -> str:
        quart.session["tuple"] = (1, "two")
        quart.session["bytes"] = b"\x00\xff"
        quart.session["uuid"] = uuid.UUID(int=7)
        quart.session["when"] = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
        return "ok"

    @app.get("/get")
    async def get() -> Any:
        return {"session": repr(dict(quart.session))}

    @app.post("/clear")
    async def clear() -> str:
        quart.session.clear()
        return "ok"

    @app.websocket("/ws")
    async def ws() -> None:
        await quart.websocket.accept()
        await quart.websocket.send(repr(dict(quart.session)))

    return app


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def set_cookie(app: quart.Quart, data: dict[str, Any], path: str = "/set") -> list[str]:
    client = app.test_client()
    response = await client.post(path, json=data)
    return response.headers.getlist("Set-Cookie")


async def read(app: quart.Quart, cookie: Optional[str]) -> str:
    client = app.test_client()
    headers = {"Cookie": cookie} if cookie else {}
    response = await client.get("/get", headers=headers)
    return str((await response.get_json())["session"])


def pair(line: str) -> str:
    return line.split(";", 1)[0]


OURS: Callable[[], Any] = SessionInterface
QUARTS: Callable[[], Any] = SecureCookieSessionInterface


@pytest.mark.parametrize(
    "data",
    [{"user": "ann"}, {"n": 1, "list": [1, 2], "nested": {"a": None}}, {"big": "x" * 3000}],
    ids=["small", "json", "compressed"],
)
@pytest.mark.parametrize(
    "writer,reader", [(OURS, QUARTS), (QUARTS, OURS)], ids=["to-quart", "from-quart"]
)
def test_each_reads_the_others_cookie(writer: Any, reader: Any, data: dict[str, Any]) -> None:
    (line,) = run(set_cookie(make_app(writer()), data))
    assert run(read(make_app(reader()), pair(line))) == repr(data)


def test_tagged_values_round_trip_both_ways() -> None:
    for writer, reader in ((OURS, QUARTS), (QUARTS, OURS)):
        (line,) = run(set_cookie(make_app(writer()), {}, "/tagged"))
        got = run(read(make_app(reader()), pair(line)))
        assert "(1, 'two')" in got and "b'\\x00\\xff'" in got
        assert "UUID('00000000-0000-0000-0000-000000000007')" in got
        assert "datetime.datetime(2026, 1, 2, 3, 4, 5" in got


def test_the_same_bytes_and_set_cookie_line_as_quart() -> None:
    config = {
        "SESSION_COOKIE_NAME": "qs",
        "SESSION_COOKIE_DOMAIN": "example.com",
        "SESSION_COOKIE_PATH": "/app",
        "SESSION_COOKIE_SECURE": True,
        "SESSION_COOKIE_SAMESITE": "Strict",
        "PERMANENT_SESSION_LIFETIME": timedelta(days=3),
    }
    data = {"user": "ann", "visits": 3}
    for _ in range(5):  # both lines within one second (the signed timestamp)
        second = int(time.time())
        ours = run(set_cookie(make_app(OURS(), **config), data, "/set?permanent=1"))
        theirs = run(set_cookie(make_app(QUARTS(), **config), data, "/set?permanent=1"))
        if int(time.time()) == second:
            break
    assert len(ours) == 1
    # Expires is computed from the request time: compare the lines without it
    strip = lambda lines: [";".join(p for p in ln.split(";") if "Expires" not in p) for ln in lines]  # noqa: E731
    assert strip(ours) == strip(theirs)
    assert "Expires=" in ours[0] and "Max-Age" not in ours[0]


def test_a_cleared_session_deletes_the_cookie_as_quart_does() -> None:
    async def clear_lines(interface: Any) -> list[str]:
        app = make_app(interface)
        client = app.test_client()
        await client.post("/set", json={"user": "ann"})
        response = await client.post("/clear")
        assert response.headers.get("Vary") == "Cookie"
        return list(response.headers.getlist("Set-Cookie"))

    assert run(clear_lines(OURS())) == run(clear_lines(QUARTS()))


def test_forged_expired_and_rotated_cookies() -> None:
    (line,) = run(set_cookie(make_app(QUARTS()), {"user": "ann"}))
    cookie = pair(line)
    forged = cookie[:-3] + ("AAA" if not cookie.endswith("AAA") else "BBB")
    assert run(read(make_app(OURS()), forged)) == "{}"
    # the key rotated: the old one as a fallback still reads it
    rotated = make_app(OURS(), SECRET_KEY_FALLBACKS=[SECRET])
    rotated.secret_key = "the new secret key, also long enough"
    assert run(read(rotated, cookie)) == "{'user': 'ann'}"
    rotated.config["SECRET_KEY_FALLBACKS"] = []
    assert run(read(rotated, cookie)) == "{}"
    # older than PERMANENT_SESSION_LIFETIME: empty, as in Quart
    later = SessionInterface(clock=lambda: time.time() + 3600)
    short = make_app(later, PERMANENT_SESSION_LIFETIME=timedelta(seconds=60))
    assert run(read(short, cookie)) == "{}"


def test_websocket_reads_the_session_and_no_secret_key_is_quarts_null_session() -> None:
    (line,) = run(set_cookie(make_app(QUARTS()), {"user": "ann"}))
    app = make_app(OURS())

    async def over_websocket() -> str:
        client = app.test_client()
        async with client.websocket("/ws", headers={"Cookie": pair(line)}) as socket:
            return str(await socket.receive())

    assert run(over_websocket()) == "{'user': 'ann'}"
    keyless = make_app(OURS())
    keyless.secret_key = None
    assert run(read(keyless, pair(line))) == "{}"
    assert run(set_cookie(keyless, {"user": "ann"})) == []  # Quart's null session refuses


def test_a_digest_other_than_sha1_uses_quarts_code() -> None:
    import hashlib

    class Sha256(SessionInterface):
        digest_method = staticmethod(hashlib.sha256)

    class QuartSha256(SecureCookieSessionInterface):
        digest_method = staticmethod(hashlib.sha256)

    (line,) = run(set_cookie(make_app(Sha256()), {"user": "ann"}))
    assert run(read(make_app(QuartSha256()), pair(line))) == "{'user': 'ann'}"
    assert run(read(make_app(OURS()), pair(line))) == "{}"
