"""ferrosession.django.signed_cookies against the real Django: each engine reads the
other's cookies, bad cookies are empty sessions, fallback keys re-issue, lifetimes are
enforced by the server, and a pickle serializer is refused at start-up."""

from __future__ import annotations

import asyncio
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


urlpatterns = [
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
