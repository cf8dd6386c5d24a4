"""ferrosession.django.signed_cookies against the real Django: each engine reads the
other's cookies, bad cookies are empty sessions, fallback keys re-issue, lifetimes are
enforced by the server, and a pickle serializer is refused at start-up."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import pickle
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

django = pytest.importorskip("django")

from django.conf import settings  # noqa: E402

if not settings.configured:
    settings.configure(
        SECRET_KEY="django-insecure-ferrosession-tests-0123456789",
        ROOT_URLCONF=__name__,
        ALLOWED_HOSTS=["testserver"],
        MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware"],
        INSTALLED_APPS=["django.contrib.sessions"],
        SESSION_ENGINE="ferrosession.django.signed_cookies",
        USE_TZ=True,
    )
    django.setup()

from django.contrib.sessions.backends import (  # noqa: E402
    signed_cookies as django_engine,
)
from django.core import signing  # noqa: E402
from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.http import HttpRequest, HttpResponse, JsonResponse  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.urls import path  # noqa: E402

import ferrosession as fs  # noqa: E402
from ferrosession.django import signed_cookies as ours  # noqa: E402

SALT = "django.contrib.sessions.backends.signed_cookies"
ENGINE = "ferrosession.django.signed_cookies"
DJANGO_ENGINE = "django.contrib.sessions.backends.signed_cookies"


def login_view(request: HttpRequest) -> HttpResponse:
    request.session["user"] = request.GET.get("user", "ada")
    request.session["roles"] = ["admin", "é"]
    return HttpResponse("ok")


def whoami_view(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"user": request.session.get("user")})


def expire_view(request: HttpRequest) -> HttpResponse:
    request.session["user"] = "short"
    request.session.set_expiry(int(request.GET["seconds"]))
    return HttpResponse("ok")


async def async_whoami_view(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"user": await request.session.aget("user")})


@dataclasses.dataclass
class Login:
    user: str


SESSIONS = fs.Sessions()
SESSIONS.cookie(Login, "login", transformers=[fs.MessageAuthentication(bytes(range(32)))])


def typed_login_view(request: HttpRequest) -> HttpResponse:
    fs.get_sessions(request).set(Login(request.GET.get("user", "ada")))
    request.session["django_side"] = "kept"  # Django's own session, beside it
    return HttpResponse("ok")


def typed_whoami_view(request: HttpRequest) -> HttpResponse:
    login = fs.get_sessions(request).get(Login)
    return JsonResponse({"user": login.user if login else None})


async def async_typed_whoami_view(request: HttpRequest) -> HttpResponse:
    login = fs.get_sessions(request).get(Login)
    return JsonResponse({"user": login.user if login else None})


def typed_logout_view(request: HttpRequest) -> HttpResponse:
    fs.get_sessions(request).clear(Login)
    return HttpResponse("ok")


urlpatterns = [
    path("typed-login", typed_login_view),
    path("typed-whoami", typed_whoami_view),
    path("async-typed-whoami", async_typed_whoami_view),
    path("typed-logout", typed_logout_view),
    path("login", login_view),
    path("whoami", whoami_view),
    path("expire", expire_view),
    path("async-whoami", async_whoami_view),
]

SESSION = {"user": "ada", "n": 1, "roles": ["admin", "é"], "nested": {"a": [1, 2.5, None]}}
BIG = {"blob": "x" * 3000, "user": "ada"}  # compresses: the payload gets its leading "."


def django_cookie(session: dict[str, Any]) -> str:
    store = django_engine.SessionStore()
    store.update(session)
    store.save()
    return str(store.session_key)


def our_cookie(session: dict[str, Any]) -> str:
    store = ours.SessionStore()
    store.update(session)
    store.save()
    return str(store.session_key)


@pytest.mark.parametrize("session", [SESSION, BIG, {}])
def test_each_engine_reads_the_others_cookie(session: dict[str, Any]) -> None:
    theirs = django_cookie(session)
    assert dict(ours.SessionStore(theirs).items()) == session
    mine = our_cookie(session)
    assert dict(django_engine.SessionStore(mine).items()) == session
    assert signing.loads(mine, salt=SALT) == session
    if session is BIG:
        assert mine.startswith(".") and theirs.startswith(".")


def test_our_uncompressed_cookie_is_djangos_byte_for_byte() -> None:
    # same JSON, same base64, same key: only the second of signing may differ
    for _ in range(3):
        before = int(time.time())
        mine = our_cookie(SESSION)
        theirs = django_cookie(SESSION)
        if int(time.time()) == before:
            assert mine == theirs
            return
    pytest.fail("the clock moved on every try")


def bad_cookies() -> list[str]:
    good = django_cookie(SESSION)
    flipped = [
        good[:i] + ("A" if good[i] != "A" else "B") + good[i + 1 :] for i in range(len(good))
    ]
    foreign = [
        signing.dumps(SESSION, salt="django.core.signing", compress=True),
        signing.dumps(SESSION, key="another-secret-key-entirely", salt=SALT, compress=True),
        signing.dumps([1, 2], salt=SALT),  # verifies, but not a session dict
        signing.dumps("text", salt=SALT),
        signing.Signer(salt=SALT).sign("not-base64!"),
        signing.TimestampSigner(salt=SALT).sign(".bm90IHpsaWI"),  # "." but not zlib
        signing.TimestampSigner(salt=SALT).sign("bm90IGpzb24"),  # base64 of "not json"
        "x" * 8,
        "::::::::",
        "é" * 20,
        good + "\x00",
    ]
    return [good[:cut] for cut in range(8, len(good))] + flipped + foreign


def test_tampered_truncated_and_foreign_cookies_are_empty_sessions() -> None:
    for cookie in bad_cookies():
        store = ours.SessionStore(cookie)
        assert dict(store.items()) == {}, cookie


def test_bad_cookies_through_the_wsgi_handler_are_anonymous() -> None:
    client = Client()
    for cookie in bad_cookies()[-30:]:
        client.cookies["sessionid"] = cookie
        response = client.get("/whoami")
        assert response.status_code == 200
        assert response.json() == {"user": None}


@override_settings(
    SECRET_KEY="the-new-secret-key-0123456789", SECRET_KEY_FALLBACKS=["old-key-0123456789"]
)
def test_fallback_keys_verify_and_reissue_under_secret_key() -> None:
    with override_settings(SECRET_KEY="old-key-0123456789", SECRET_KEY_FALLBACKS=[]):
        old = django_cookie(SESSION)
    store = ours.SessionStore(old)
    assert dict(store.items()) == SESSION
    assert store.modified  # so the middleware sends it again
    store.save()
    with override_settings(SECRET_KEY_FALLBACKS=[]):
        assert dict(ours.SessionStore(store.session_key).items()) == SESSION
        assert dict(ours.SessionStore(old).items()) == {}
    # under the current key nothing is re-issued
    fresh = ours.SessionStore(our_cookie(SESSION))
    assert dict(fresh.items()) == SESSION
    assert not fresh.modified


def test_fallback_cookie_is_reissued_by_the_middleware() -> None:
    with override_settings(SECRET_KEY="old-key-0123456789"):
        old = django_cookie({"user": "grace"})
    with override_settings(
        SECRET_KEY="the-new-secret-key-0123456789", SECRET_KEY_FALLBACKS=["old-key-0123456789"]
    ):
        client = Client()
        client.cookies["sessionid"] = old
        response = client.get("/whoami")
        assert response.json() == {"user": "grace"}
        new = response.cookies["sessionid"].value
        assert new != old
        assert signing.loads(new, key="the-new-secret-key-0123456789", salt=SALT) == {
            "user": "grace"
        }


def signed_at(session: dict[str, Any], seconds_ago: int) -> str:
    """Django's cookie for ``session`` as Django signed it ``seconds_ago``."""
    then = time.time() - seconds_ago
    with pytest.MonkeyPatch.context() as m:
        m.setattr(time, "time", lambda: then)
        return str(signing.dumps(session, salt=SALT, compress=True))


def test_session_cookie_age_is_enforced() -> None:
    with override_settings(SESSION_COOKIE_AGE=100):
        assert dict(ours.SessionStore(signed_at(SESSION, 90)).items()) == SESSION
        assert dict(ours.SessionStore(signed_at(SESSION, 200)).items()) == {}


def test_set_expiry_seconds_is_enforced_by_the_server() -> None:
    # Django's engine keeps this session for SESSION_COOKIE_AGE (ticket #19201)
    session = {**SESSION, "_session_expiry": 60}
    stale = signed_at(session, 120)
    assert dict(django_engine.SessionStore(stale).items()) == session
    assert dict(ours.SessionStore(stale).items()) == {}
    assert dict(ours.SessionStore(signed_at(session, 30)).items()) == session
    # longer than SESSION_COOKIE_AGE is honoured too
    with override_settings(SESSION_COOKIE_AGE=100):
        long = {**SESSION, "_session_expiry": 1000}
        assert dict(ours.SessionStore(signed_at(long, 500)).items()) == long


def test_set_expiry_datetime_is_enforced_by_the_server() -> None:
    store = ours.SessionStore()
    store.update(SESSION)
    store.set_expiry(timedelta(seconds=-1))
    store.save()
    assert dict(ours.SessionStore(store.session_key).items()) == {}
    store.set_expiry(datetime.now().astimezone() + timedelta(hours=1))
    store.save()
    assert ours.SessionStore(store.session_key)["user"] == "ada"


def test_set_expiry_through_the_wsgi_handler() -> None:
    client = Client()
    client.get("/expire?seconds=3600")
    assert client.get("/whoami").json() == {"user": "short"}
    cookie = client.cookies["sessionid"].value
    assert signing.loads(cookie, salt=SALT)["_session_expiry"] == 3600


def test_login_through_django_then_switch_engines_and_back() -> None:
    with override_settings(SESSION_ENGINE=DJANGO_ENGINE):
        theirs = Client()
        theirs.get("/login?user=linus")
        cookie = theirs.cookies["sessionid"].value
    mine = Client()
    mine.cookies["sessionid"] = cookie
    assert mine.get("/whoami").json() == {"user": "linus"}
    mine.get("/login?user=barbara")
    with override_settings(SESSION_ENGINE=DJANGO_ENGINE):
        back = Client()
        back.cookies["sessionid"] = mine.cookies["sessionid"].value
        assert back.get("/whoami").json() == {"user": "barbara"}


def test_async_view_under_the_asgi_handler() -> None:
    from django.test import AsyncClient

    async def run() -> None:
        client = AsyncClient()
        client.cookies["sessionid"] = our_cookie({"user": "ada"})
        response = await client.get("/async-whoami")
        assert response.json() == {"user": "ada"}

    asyncio.run(run())


class PickleSerializer:
    def dumps(self, obj: object) -> bytes:
        return pickle.dumps(obj)

    def loads(self, data: bytes) -> object:
        return pickle.loads(data)


def test_a_serializer_other_than_json_is_refused() -> None:
    pickled = override_settings(SESSION_SERIALIZER=f"{__name__}.PickleSerializer")
    with pickled, pytest.raises(ImproperlyConfigured, match="SESSION_SERIALIZER"):
        ours.SessionStore()
    with override_settings(SESSION_SERIALIZER="django.core.signing.JSONSerializer"):
        assert ours.SessionStore().serializer is signing.JSONSerializer


def test_a_pickle_serializer_is_refused_at_start_up(tmp_path: Path) -> None:
    # the WSGI handler loads the middleware, which imports the engine, at start-up
    (tmp_path / "pickle_site.py").write_text(
        "import pickle\n"
        "class PickleSerializer:\n"
        "    def dumps(self, obj): return pickle.dumps(obj)\n"
        "    def loads(self, data): return pickle.loads(data)\n"
        "SECRET_KEY = 'x' * 50\n"
        "ROOT_URLCONF = 'pickle_site'\n"
        "urlpatterns = []\n"
        "MIDDLEWARE = ['django.contrib.sessions.middleware.SessionMiddleware']\n"
        f"SESSION_ENGINE = {ENGINE!r}\n"
        "SESSION_SERIALIZER = 'pickle_site.PickleSerializer'\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "DJANGO_SETTINGS_MODULE": "pickle_site"}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from django.core.wsgi import get_wsgi_application; get_wsgi_application()",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SESSION_SERIALIZER = 'pickle_site.PickleSerializer'" in result.stderr


def test_readme_settings_block_switches_engines_without_logging_anyone_out() -> None:
    from readme_examples import BLOCKS

    block = next(b for b in BLOCKS if f'SESSION_ENGINE = "{ENGINE}"' in b)
    readme: dict[str, Any] = {}
    exec(compile(block, "README.md Django block", "exec"), readme)
    readme_settings = {k: v for k, v in readme.items() if k.isupper()}
    assert readme_settings["SESSION_ENGINE"] == ENGINE
    with override_settings(SESSION_ENGINE=DJANGO_ENGINE, SECRET_KEY="a retired secret"):
        before = Client()
        before.get("/login?user=ada")
    with override_settings(**readme_settings):
        after = Client()
        after.cookies["sessionid"] = before.cookies["sessionid"].value
        response = after.get("/whoami")
        assert response.json() == {"user": "ada"}
        reissued = response.cookies["sessionid"].value
        assert signing.loads(reissued, key="the same secret as before", salt=SALT)["user"] == "ada"
        too_old = signed_at({"user": "ada"}, readme_settings["SESSION_COOKIE_AGE"] + 5)
        after.cookies["sessionid"] = too_old
        assert after.get("/whoami").json() == {"user": None}


# -- ferrosession.django.store -------------------------------------------------------------
STORE_ENGINE = "ferrosession.django.store"


def test_store_engine_keeps_only_hashed_keys_and_json(tmp_path: Path) -> None:
    import ferrosession as fs
    from ferrosession.django import store

    storage = fs.DirectoryStorage(str(tmp_path / "sessions"), cached=False)
    with override_settings(SESSION_ENGINE=STORE_ENGINE, FERROSESSION_STORAGE=storage):
        client = Client()
        client.get("/login?user=ada")
        key = client.cookies["sessionid"].value
        assert client.get("/whoami").json() == {"user": "ada"}
        assert storage.read(key) is None
        assert '"user":"ada"' in (storage.read(store.storage_key(key)) or "")
        dumped = b"".join(p.read_bytes() for p in (tmp_path / "sessions").rglob("*") if p.is_file())
        dumped += "".join(str(p) for p in (tmp_path / "sessions").rglob("*")).encode()
        assert key.encode() not in dumped


def test_store_engine_logout_wins_and_cycle_key_ends_the_old_key() -> None:
    from django.contrib.sessions.backends.base import UpdateError

    import ferrosession as fs
    from ferrosession.django.store import SessionStore

    with override_settings(SESSION_ENGINE=STORE_ENGINE, FERROSESSION_STORAGE=fs.MemoryStorage()):
        first = SessionStore()
        first["user"] = "ada"
        first.save()
        key = first.session_key
        other = SessionStore(key)
        assert other["user"] == "ada"
        first.flush()  # logout in one request
        other["user"] = "mallory"
        with pytest.raises(UpdateError):
            other.save()  # the other request's save does not bring it back
        assert not SessionStore().exists(key)
        again = SessionStore()
        again["user"] = "grace"
        again.save()
        old = again.session_key
        again.cycle_key()
        assert again.session_key != old and not again.exists(old)
        assert SessionStore(again.session_key)["user"] == "grace"


def test_store_engine_set_expiry_is_the_storage_ttl() -> None:
    import ferrosession as fs
    from ferrosession.django.store import SessionStore, storage_key

    storage = fs.MemoryStorage()
    with override_settings(SESSION_ENGINE=STORE_ENGINE, FERROSESSION_STORAGE=storage):
        s = SessionStore()
        s["user"] = "ada"
        s.set_expiry(30)
        s.save()
        found = storage.read_ttl(storage_key(s.session_key))
        assert found is not None and 0 < found[1] <= 30  # seconds left
        assert s.get_expiry_age() == 30
        s.set_expiry(timedelta(seconds=-5))
        s.save()
        assert not s.exists(s.session_key)


def test_clearsessions_runs_the_storages_gc(tmp_path: Path) -> None:
    from django.core.management import call_command

    import ferrosession as fs

    storage = fs.DirectoryStorage(str(tmp_path / "s"), cached=False)
    storage.write("expiring-entry", "{}", 1)
    storage.write("live-entry", "{}", 3600)
    with override_settings(SESSION_ENGINE=STORE_ENGINE, FERROSESSION_STORAGE=storage):
        time.sleep(1.1)
        files_before = sum(1 for p in (tmp_path / "s").rglob("*") if p.is_file())
        call_command("clearsessions")
        files_after = sum(1 for p in (tmp_path / "s").rglob("*") if p.is_file())
        assert files_after < files_before
        assert storage.read("live-entry") == "{}"


def test_store_engine_without_a_storage_is_improperly_configured() -> None:
    from ferrosession.django.store import SessionStore

    with (
        override_settings(SESSION_ENGINE=STORE_ENGINE, FERROSESSION_STORAGE=None),
        pytest.raises(ImproperlyConfigured, match="FERROSESSION_STORAGE"),
    ):
        SessionStore()


def test_readme_store_block_serves_sessions_from_its_storage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from readme_examples import BLOCKS

    monkeypatch.chdir(tmp_path)
    block = next(b for b in BLOCKS if f'SESSION_ENGINE = "{STORE_ENGINE}"' in b)
    readme: dict[str, Any] = {}
    exec(compile(block, "README.md Django store block", "exec"), readme)
    with override_settings(**{k: v for k, v in readme.items() if k.isupper()}):
        client = Client()
        client.get("/login?user=ada")
        assert client.get("/whoami").json() == {"user": "ada"}
        assert any(p.is_file() for p in (tmp_path / ".sessions").rglob("*"))


# -- ferrosession.django.SessionMiddleware ----------------------------------------------------
TYPED = override_settings(
    MIDDLEWARE=[
        "django.contrib.sessions.middleware.SessionMiddleware",
        "ferrosession.django.SessionMiddleware",
    ],
    FERROSESSION_SESSIONS=f"{__name__}.SESSIONS",
)


def test_typed_sessions_in_sync_views_beside_djangos_session() -> None:
    with TYPED:
        client = Client()
        assert client.get("/typed-whoami").json() == {"user": None}
        response = client.get("/typed-login?user=grace")
        assert {"login", "sessionid"} <= set(response.cookies)
        line = response.cookies["login"].output(header="").strip()  # what the handler sends
        assert line.startswith("login=") and "HttpOnly" in line
        assert client.get("/typed-whoami").json() == {"user": "grace"}
        assert client.get("/whoami").json() == {"user": None}  # Django's: its own data
        assert signing.loads(client.cookies["sessionid"].value, salt=SALT) == {
            "django_side": "kept"
        }
        client.get("/typed-logout")
        assert client.get("/typed-whoami").json() == {"user": None}


def test_typed_sessions_reject_a_tampered_cookie() -> None:
    with TYPED:
        client = Client()
        client.get("/typed-login?user=grace")
        value = client.cookies["login"].value
        client.cookies["login"] = value[:-3] + ("AAA" if value[-3:] != "AAA" else "BBB")
        assert client.get("/typed-whoami").json() == {"user": None}


def test_typed_sessions_in_async_views_under_the_asgi_handler() -> None:
    from django.test import AsyncClient

    async def run() -> None:
        with TYPED:
            client = AsyncClient()
            response = await client.get("/typed-login?user=ada")
            client.cookies["login"] = response.cookies["login"].value
            got = await client.get("/async-typed-whoami")
            assert got.json() == {"user": "ada"}
            got = await client.get("/typed-whoami")  # a sync view under ASGI
            assert got.json() == {"user": "ada"}

    asyncio.run(run())


def test_typed_middleware_needs_ferrosession_sessions() -> None:
    from django.core.handlers.wsgi import WSGIHandler

    for value in (None, "no.such.module.sessions", f"{__name__}.SALT"):
        with (
            override_settings(
                MIDDLEWARE=["ferrosession.django.SessionMiddleware"], FERROSESSION_SESSIONS=value
            ),
            pytest.raises(ImproperlyConfigured, match="FERROSESSION_SESSIONS"),
        ):
            WSGIHandler()


def test_readme_typed_block_serves_its_views() -> None:
    import types

    from readme_examples import BLOCKS

    block = next(b for b in BLOCKS if "ferrosession.django.SessionMiddleware" in b)
    module = types.ModuleType("readme_django_typed")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    try:
        exec(compile(block, "README.md Django typed block", "exec"), module.__dict__)
        module.urlpatterns = [  # type: ignore[attr-defined]
            path("sign-in", module.sign_in),
            path("whoami", module.whoami),
        ]
        with override_settings(
            ROOT_URLCONF=module.__name__,
            MIDDLEWARE=["ferrosession.django.SessionMiddleware"],
            FERROSESSION_SESSIONS=f"{module.__name__}.sessions",
        ):
            client = Client()
            assert client.get("/whoami").json() == {"user": None}
            client.get("/sign-in")
            assert client.get("/whoami").json() == {"user": "ada"}
    finally:
        del sys.modules[module.__name__]


def test_store_engine_on_a_real_redis(tmp_path: Path) -> None:
    import redis

    import ferrosession as fs
    from ferrosession.django.store import storage_key
    from redis_servers import RedisServer

    server = RedisServer(tmp_path / "redis").start()
    try:
        url = f"redis://127.0.0.1:{server.port}/0"
        storage = fs.RedisStorage(url)
        with override_settings(SESSION_ENGINE=STORE_ENGINE, FERROSESSION_STORAGE=storage):
            client = Client()
            client.get("/login?user=ada")
            key = client.cookies["sessionid"].value
            assert client.get("/whoami").json() == {"user": "ada"}
            raw = redis.Redis(port=server.port, decode_responses=True)
            keys = raw.keys("*")
            assert keys and not any(key in k for k in keys)
            assert any(storage_key(key) in k for k in keys)
            ttl = raw.ttl(keys[0])
            assert 0 < ttl <= settings.SESSION_COOKIE_AGE
            raw.close()
            client.get("/expire?seconds=5")  # set_expiry is the entry's TTL
            raw = redis.Redis(port=server.port, decode_responses=True)
            assert all(0 < raw.ttl(k) <= 5 for k in raw.keys("*"))
            raw.close()
    finally:
        server.stop()
