"""In-process WSGI overhead of a signed-cookie session: ferrosession beside Flask's default
session, on a Flask app and on a raw WSGI app.

    make bench-build && PYTHONPATH=target/bench-site .venv/bin/python benches/wsgi_overhead.py

Each app is called directly, many times, with a prebuilt environ; no network, no server.
The cases are those of ``asgi_overhead.py`` (read, write, new, ignore). Variants, with a
~100-byte session:

* Flask ``bare``: the same routes doing no session work and no ``SECRET_KEY``, as an app
  that keeps its sessions elsewhere is configured (Flask then opens its cheap
  ``NullSession`` per request; that cost is in every Flask variant).
* Flask ``flask``: Flask's default cookie session (``flask.session``, ``SECRET_KEY`` set).
  Flask opens (reads and verifies) the cookie on *every* request, used or not; that is
  how Flask behaves, so it stays in its figures.
* Flask ``ferrosession``: the bare app with ``fs.WSGISessionMiddleware(app.wsgi_app,
  sessions)``, a signed cookie, and ``fs.get_sessions(flask.request)`` in the handler.
* raw ``bare`` / raw ``ferrosession``: a minimal WSGI app, and the same wrapped in
  ``WSGISessionMiddleware``.

Goal (DESIGN.md §3): ferrosession's Flask overhead at most 1/5 of Flask's default
session's for read and write. Every variant is checked before timing. Results:
``benches/results/wsgi_overhead.json``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Optional

import _harness as h

GOALS: dict[str, Optional[float]] = {"read": 1 / 5, "write": 1 / 5, "new": None, "ignore": None}


def noop(environ: Any) -> None:
    pass


def flask_fs() -> Any:
    import flask

    import ferrosession as fs

    handlers = h.fs_handlers(request_of=lambda environ: flask.request)
    app = h.flask_app("bench_wsgi_fs", handlers, secret=None)
    app.wsgi_app = fs.WSGISessionMiddleware(app.wsgi_app, h.fs_signed())
    return app


async def run(args: argparse.Namespace, progress: h.Progress) -> dict[str, Any]:
    fl_bare = h.flask_app("bench_wsgi_bare", {case: noop for case in h.CASES}, secret=None)
    fl_default, fl_fs = h.flask_app("bench_wsgi_flask"), flask_fs()
    sessions = h.fs_signed()
    raw_apps = {case: h.fs_wsgi(sessions, case) for case in h.CASES}
    raw_bare = h.raw_wsgi_app(None)
    families = {"flask/flask": fl_default, "flask/ferrosession": fl_fs}
    cookies = {
        label: await h.check_cases(label, h.cookie_exchange(h.one_app(app), wsgi=True))
        for label, app in families.items()
    }
    cookies["raw/ferrosession"] = await h.check_cases(
        "raw/ferrosession", h.cookie_exchange(raw_apps.get, wsgi=True)
    )
    fs_cookie = cookies["flask/ferrosession"]
    for label, app, path in (("flask", fl_bare, "/read"), ("raw", raw_bare, "/")):
        reply = h.wsgi_call(app, h.cookie_environ(path, fs_cookie))
        if reply.set_cookies or h.RESULT_KEY in reply.seen or reply.body != b"ok":
            raise h.SanityError(f"{label}/bare: the bare app did session work")
    progress.note(
        "sanity checks passed: "
        + ", ".join(f"{k} ({len(v)}-byte cookie)" for k, v in cookies.items())
    )

    variants: dict[str, h.Variant] = {}

    def add(key: str, app: Any, path: str, cookie: Optional[str]) -> None:
        variants[key] = h.Variant(key, h.wsgi_batch(app, h.cookie_environ(path, cookie)))

    add("flask/bare", fl_bare, "/read", fs_cookie)
    add("raw/bare", raw_bare, "/", fs_cookie)
    for case in args.cases:
        for lib, app in (("flask", fl_default), ("ferrosession", fl_fs)):
            add(
                f"flask/{case}/{lib}",
                app,
                f"/{case}",
                None if case == "new" else cookies[f"flask/{lib}"],
            )
        cookie = None if case == "new" else cookies["raw/ferrosession"]
        add(f"raw/{case}/ferrosession", raw_apps[case], "/", cookie)
    rounds = await h.measure_args(variants, args, progress)

    fbare, rbare = variants["flask/bare"], variants["raw/bare"]
    cases: dict[str, Any] = {}
    for case in args.cases:
        fl, ff = variants[f"flask/{case}/flask"], variants[f"flask/{case}/ferrosession"]
        rf = variants[f"raw/{case}/ferrosession"]
        cases[case] = {
            "flask_bare_us": h.quantiles(fbare.samples)["median"],
            "raw_bare_us": h.quantiles(rbare.samples)["median"],
            "flask": h.figures(fl, fbare),
            "ferrosession_flask": h.figures(ff, fbare),
            "ferrosession_raw": h.figures(rf, rbare),
            "goal": GOALS[case],
            **h.ratio(ff, fbare, fl, fbare, GOALS[case]),
            "ratio_raw_to_flask": h.ratio(rf, rbare, fl, fbare, None)["ratio"],
        }
    return h.result(
        "wsgi_overhead",
        args,
        unit="microseconds per request",
        packages=["flask", "werkzeug", "itsdangerous", "orjson"],
        rounds=rounds,
        variants=variants,
        settings={
            "session": h.DATA,
            "session_json_bytes": len(h.PAYLOAD),
            "cookie_bytes": {k: len(v) for k, v in cookies.items()},
            "overhead": "median(variant) - median(its bare app); paired = per-round difference",
            "flask_bare": "same routes, no SECRET_KEY (Flask opens a NullSession per request)",
        },
        cases=cases,
    )


def table(result: dict[str, Any]) -> str:
    rows = [
        [
            case,
            f"{e['flask_bare_us']:.2f}",
            h.fmt_overhead(e["flask"]),
            h.fmt_overhead(e["ferrosession_flask"]),
            h.fmt_ratio(e),
            "-" if e["goal"] is None else f"≤ {e['goal']:.2f}",
            h.fmt_met(e["met"]),
            f"{e['raw_bare_us']:.2f}",
            h.fmt_overhead(e["ferrosession_raw"]),
            f"{e['ratio_raw_to_flask']:.3f}",
        ]
        for case, e in result["cases"].items()
    ]
    header = [
        "case",
        "Flask bare µs",
        "Flask session overhead µs",
        "ferrosession (Flask) overhead µs",
        "ratio fs/Flask",
        "goal",
        "met",
        "raw bare µs",
        "ferrosession (raw) overhead µs",
        "raw fs / Flask",
    ]
    return h.markdown_table(header, rows) + "\n" + h.footer(result, "flask", "werkzeug")


def main(argv: Optional[list[str]] = None) -> int:
    args = h.parse_args(
        "wsgi_overhead", __doc__, argv, budget=60, quick_budget=4, batch_ms=5, cases=h.CASES
    )
    return h.run_and_report("wsgi_overhead", args, run, table, h.cases_met)


if __name__ == "__main__":
    sys.exit(main())
