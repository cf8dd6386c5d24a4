"""In-process overhead of ``ferrosession.django.signed_cookies`` beside Django's
``django.contrib.sessions.backends.signed_cookies``, through Django's WSGI handler.

    make bench-build && PYTHONPATH=target/bench-site .venv/bin/python \\
        benches/django_overhead.py [--quick]

One Django project (``SessionMiddleware``, a view per case, a prebuilt environ, no
network), one ``WSGIHandler`` per engine. The same view code runs under both (that is
the point of an engine). Cases: ``read`` (the view reads the three fields of the session
the cookie carries), ``write`` (it changes one, so the cookie is signed again), ``new``
and ``ignore`` as in the other benches. The baseline is the same handler whose engine
hands out the session's data with no signing, no JSON and no base64 (and "signs" with a
constant): the overhead is the engine's own work, Django's middleware being the same
for both. Goal (issue 16): at most 1/4 of Django's engine's overhead for read and write.
Every variant but the baseline passes the sanity checks first.

``--sides store`` (on by default): ``ferrosession.django.store`` on ``DirectoryStorage``
beside Django's ``file`` engine (the same folder kind, a temporary one), and on
``RedisStorage`` beside Django's ``cache`` engine on Django's ``RedisCache`` (one
throwaway ``redis-server``), against the same baseline. Goal: at most 1/2 of Django's
overhead for a read. Results: ``benches/results/django_overhead.json``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import types
from pathlib import Path
from typing import Any, Optional

import _harness as h

GOALS: dict[str, Optional[float]] = {"read": 1 / 4, "write": 1 / 4, "new": 1 / 4, "ignore": 1 / 4}
# the goal is for reads; the other cases are shown without one
STORE_GOALS: dict[str, Optional[float]] = {
    "read": 1 / 2,
    "write": None,
    "new": None,
    "ignore": None,
}
ENGINES = {
    "django": "django.contrib.sessions.backends.signed_cookies",
    "ferrosession": "ferrosession.django.signed_cookies",
    "bare": "bench_django_bare_engine",
}
# (store, lib) -> engine; the Redis one of ferrosession is a module made in setup_django
STORE_ENGINES = {
    ("directory", "django"): "django.contrib.sessions.backends.file",
    ("directory", "ferrosession"): "ferrosession.django.store",
    ("redis", "django"): "django.contrib.sessions.backends.cache",
    ("redis", "ferrosession"): "bench_django_redis_store",
}
SIDES = ("cookie", "store")


def setup_django(folder: Optional[Path] = None, redis_url: Optional[str] = None) -> None:
    import django
    from django.conf import settings

    import ferrosession as fs

    stores: dict[str, Any] = {}
    if folder is not None and redis_url is not None:
        stores = {
            "SESSION_FILE_PATH": str(folder / "django-file"),
            "FERROSESSION_STORAGE": fs.DirectoryStorage(str(folder / "ferrosession")),
            "CACHES": {
                "default": {
                    "BACKEND": "django.core.cache.backends.redis.RedisCache",
                    "LOCATION": redis_url,
                }
            },
        }
        (folder / "django-file").mkdir(parents=True)
    settings.configure(
        **stores,
        SECRET_KEY=h.SECRET,
        ROOT_URLCONF=__name__,
        ALLOWED_HOSTS=["127.0.0.1"],
        MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware"],
        INSTALLED_APPS=["django.contrib.sessions"],
        SESSION_COOKIE_NAME=h.COOKIE,
        SESSION_COOKIE_AGE=h.LIFETIME,
        USE_TZ=True,
    )
    django.setup()
    sys.modules[ENGINES["bare"]] = bare_engine()
    if redis_url is not None:
        sys.modules[STORE_ENGINES["redis", "ferrosession"]] = redis_store_engine(redis_url)


def redis_store_engine(url: str) -> types.ModuleType:
    """``ferrosession.django.store`` on a ``RedisStorage`` (the settings hold one
    ``FERROSESSION_STORAGE``, the directory one)."""
    import ferrosession as fs
    from ferrosession.django import store

    redis = fs.RedisStorage(url)

    class SessionStore(store.SessionStore):
        def __init__(self, session_key: Optional[str] = None) -> None:
            super().__init__(session_key)
            self._storage = redis

    module = types.ModuleType(STORE_ENGINES["redis", "ferrosession"])
    module.SessionStore = SessionStore  # type: ignore[attr-defined]
    return module


def bare_engine() -> types.ModuleType:
    """The baseline engine: Django's signed-cookie store with its cookie work taken out."""
    from django.contrib.sessions.backends import signed_cookies

    class SessionStore(signed_cookies.SessionStore):  # type: ignore[misc]
        def load(self) -> dict[str, Any]:
            return {**h.DATA, "items": list(h.ITEMS)}

        def _get_session_key(self) -> str:
            return "bare-engine-constant-cookie"

    module = types.ModuleType(ENGINES["bare"])
    module.SessionStore = SessionStore  # type: ignore[attr-defined]
    return module


def views() -> list[Any]:
    from django.http import HttpResponse
    from django.urls import path

    # the harness's dict handlers, in Django's spelling (update takes a dict)
    def read(request: Any) -> None:
        s = request.session
        request.environ[h.RESULT_KEY] = (s.get("user"), s.get("items"), s.get("visits"))

    def write(request: Any) -> None:
        request.session["visits"] = request.session["visits"] + 1

    def new(request: Any) -> None:
        request.session.update({"user": h.USER, "items": list(h.ITEMS), "visits": h.VISITS})

    def ignore(request: Any) -> None:
        pass

    handlers = {"read": read, "write": write, "new": new, "ignore": ignore}

    def view_of(case: str) -> Any:
        handler = handlers[case]

        def view(request: Any) -> HttpResponse:
            handler(request)
            return HttpResponse("ok")

        return path(case, view)

    return [view_of(case) for case in h.CASES]


urlpatterns: list[Any] = []


def handler_for(engine: str) -> Any:
    """A ``WSGIHandler`` whose ``SessionMiddleware`` uses ``engine`` (it loads the engine
    when the handler builds its middleware chain)."""
    from django.core.handlers.wsgi import WSGIHandler
    from django.test import override_settings

    with override_settings(SESSION_ENGINE=engine):
        return WSGIHandler()


def cross_check(apps: dict[str, Any], cookies: dict[str, str]) -> None:
    """Each engine reads the session the other one issued (what makes it a drop-in)."""
    for reader, issuer in (("ferrosession", "django"), ("django", "ferrosession")):
        reply = h.wsgi_call(apps[reader], h.cookie_environ("/read", cookies[issuer]))
        if reply.value != h.EXPECTED:
            raise h.SanityError(f"{reader} read {issuer}'s cookie as {reply.value!r}")


async def run(args: argparse.Namespace, progress: h.Progress) -> dict[str, Any]:
    global urlpatterns
    redis: Optional[h.RedisServer] = None
    folder = Path(tempfile.mkdtemp(prefix="bench-django-"))
    try:
        if "store" in args.sides:
            redis = h.RedisServer(folder / "redis").start()
        setup_django(folder, redis.url if redis else None)
        urlpatterns = views()
        return await measured(args, progress, redis)
    finally:
        if redis is not None:
            redis.stop()
        shutil.rmtree(folder, ignore_errors=True)


async def measured(
    args: argparse.Namespace, progress: h.Progress, redis: Optional[h.RedisServer]
) -> dict[str, Any]:
    apps = {lib: handler_for(engine) for lib, engine in ENGINES.items()}
    variants: dict[str, h.Variant] = {}
    cookies: dict[str, str] = {}
    bare_cookie = f"{h.COOKIE}=bare-engine-constant-cookie"
    reply = h.wsgi_call(apps["bare"], h.cookie_environ("/read", bare_cookie))
    if reply.value != h.EXPECTED:
        raise h.SanityError(f"bare engine read {reply.value!r}")
    for case in args.cases:
        environ = h.cookie_environ(f"/{case}", None if case == "new" else bare_cookie)
        variants[f"wsgi/{case}/bare"] = h.Variant(
            f"wsgi/{case}/bare", h.wsgi_batch(apps["bare"], environ)
        )
    pairs: list[tuple[str, str, str]] = []  # (result key, variant prefix, goal table)
    if "cookie" in args.sides:
        for lib in ("django", "ferrosession"):
            exchange = h.cookie_exchange(h.one_app(apps[lib]), wsgi=True)
            cookies[lib] = await h.check_cases(f"wsgi/{lib}", exchange)
        cross_check(apps, cookies)
        for case in args.cases:
            for lib in ("django", "ferrosession"):
                environ = h.cookie_environ(f"/{case}", None if case == "new" else cookies[lib])
                variants[f"wsgi/{case}/{lib}"] = h.Variant(
                    f"wsgi/{case}/{lib}", h.wsgi_batch(apps[lib], environ)
                )
            pairs.append((f"wsgi/{case}", f"wsgi/{case}", "cookie"))
    if "store" in args.sides:
        for (store, lib), engine in STORE_ENGINES.items():
            app = handler_for(engine)
            label = f"{store}/{lib}"
            exchange = h.cookie_exchange(h.one_app(app), wsgi=True)
            cookies[label] = await h.check_cases(f"wsgi/{label}", exchange)
            for case in args.cases:
                environ = h.cookie_environ(f"/{case}", None if case == "new" else cookies[label])
                variants[f"wsgi/{case}/{label}"] = h.Variant(
                    f"wsgi/{case}/{label}", h.wsgi_batch(app, environ)
                )
        for store in ("directory", "redis"):
            for case in args.cases:
                pairs.append((f"{store}/{case}", f"wsgi/{case}/{store}", "store"))
    progress.note(
        "sanity checks passed; cookie bytes: "
        + ", ".join(f"{k} {len(v)}" for k, v in cookies.items())
    )
    rounds = await h.measure_args(variants, args, progress)

    out: dict[str, Any] = {}
    for key, prefix, kind in pairs:
        case = key.rsplit("/", 1)[1]
        goal = GOALS[case] if kind == "cookie" else STORE_GOALS[case]
        bare = variants[f"wsgi/{case}/bare"]
        theirs, mine = variants[f"{prefix}/django"], variants[f"{prefix}/ferrosession"]
        out[key] = {
            "bare_us": h.quantiles(bare.samples)["median"],
            "goal": goal,
            "against": {"cookie": "signed_cookies", "directory": "file", "redis": "cache"}[
                key.split("/", 1)[0] if kind == "store" else "cookie"
            ],
            "django": h.figures(theirs, bare),
            "ferrosession": h.figures(mine, bare),
            **h.ratio(mine, bare, theirs, bare, goal),
        }
    return h.result(
        "django_overhead",
        args,
        unit="microseconds per request",
        packages=["django", "orjson", "redis"],
        rounds=rounds,
        variants=variants,
        settings={
            "session": h.DATA,
            "session_json_bytes": len(h.PAYLOAD),
            "cookie_bytes": {k: len(v) for k, v in cookies.items()},
            "redis_server": redis.version() if redis else None,
            "overhead": (
                "median(engine) - median(same WSGIHandler, engine without cookie work); "
                "paired = per round"
            ),
        },
        cases=out,
    )


def table(result: dict[str, Any]) -> str:
    rows = [
        [
            key,
            e["against"],
            f"{e['bare_us']:.2f}",
            h.fmt_overhead(e["django"]),
            h.fmt_overhead(e["ferrosession"]),
            h.fmt_ratio(e),
            "-" if e["goal"] is None else f"≤ {e['goal']:.2f}",
            h.fmt_met(e["met"]),
        ]
        for key, e in result["cases"].items()
    ]
    header = [
        "case",
        "Django engine",
        "bare µs",
        "Django overhead µs",
        "ferrosession overhead µs",
        "ratio",
        "goal",
        "met",
    ]
    return h.markdown_table(header, rows) + "\n" + h.footer(result, "django")


def main(argv: Optional[list[str]] = None) -> int:
    args = h.parse_args(
        "django_overhead",
        __doc__,
        argv,
        budget=90,
        quick_budget=6,
        batch_ms=5,
        cases=h.CASES,
        sides=SIDES,
        sides_help="cookie, store",
    )
    return h.run_and_report("django_overhead", args, run, table, h.cases_met)


if __name__ == "__main__":
    sys.exit(main())
