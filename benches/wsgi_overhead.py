"""In-process WSGI overhead of a signed-cookie session: ferrosession beside Flask's default
session, on a Flask app and on a raw WSGI app.

    make bench-build && PYTHONPATH=target/bench-site .venv/bin/python benches/wsgi_overhead.py

Each app is called directly, many times, with a prebuilt environ; no network, no server.
Per case its handler:

=========  ==================  ====================================
case       Cookie sent         handler
=========  ==================  ====================================
read       yes                 reads the session
write      yes                 reads it and stores a changed value
new        no                  stores a new value
ignore     yes                 never touches it
=========  ==================  ====================================

Variants, with a ~100-byte session (105 bytes of compact JSON):

* Flask ``bare``: a Flask app with the same four routes doing no session work and no
  ``SECRET_KEY``, as an app that keeps its sessions elsewhere is configured (Flask then
  opens its cheap ``NullSession`` per request; that cost is in every Flask variant).
* Flask ``flask``: Flask's default cookie session (``flask.session``, ``SECRET_KEY`` set).
  Flask opens (reads and verifies) the session cookie on *every* request, whether the
  handler uses it or not; that is how Flask behaves, so it stays in its figures.
* Flask ``ferrosession``: the bare app with ``fs.WSGISessionMiddleware(app.wsgi_app,
  sessions)``, a signed cookie (``MessageAuthentication``), and
  ``fs.get_sessions(flask.request)`` in the handler.
* raw ``bare`` / raw ``ferrosession``: a minimal WSGI app, and the same wrapped in
  ``WSGISessionMiddleware``.

"Overhead" is the median per-call time of a variant minus the median of its bare app,
both measured in the same interleaved rounds. Goal (DESIGN.md §3): ferrosession's Flask
overhead at most 1/5 of Flask's default session's for read and write. Every variant is
checked before timing (the Set-Cookie it must or must not send, the value it reads back,
a tampered cookie refused). Results go to ``benches/results/wsgi_overhead.json``; a
Markdown table to stdout; progress to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import _harness as h
from peers import COOKIE, DATA, ITEMS, RESULT_KEY, USER, VISITS, Cart, as_tuple, raw_wsgi_app

CASES = ("read", "write", "new", "ignore")
GOALS: dict[str, Optional[float]] = {"read": 1 / 5, "write": 1 / 5, "new": None, "ignore": None}
FS_KEY = bytes(range(32))  # fixed, so runs are comparable; never a real key
FLASK_SECRET = "bench-secret-key-0123456789abcdef"
CART = Cart(USER, list(ITEMS), VISITS)
EXPECTED = as_tuple(CART)
WANT_SET_COOKIE = {"read": False, "write": True, "new": True, "ignore": False}

Handler = Callable[[Any], None]


class SanityError(AssertionError):
    pass


# -- handlers ------------------------------------------------------------------------------
def _fs_handlers(request_of: Callable[[Any], Any]) -> dict[str, Handler]:
    """ferrosession's handlers; ``request_of(arg)`` gives what ``get_sessions`` takes (the
    Flask request, or the environ itself on the raw app) and ``arg`` is where the read value
    is left (an environ)."""
    import ferrosession as fs

    get_sessions = fs.get_sessions

    def read(environ: Any) -> None:
        environ[RESULT_KEY] = get_sessions(request_of(environ)).get(Cart)

    def write(environ: Any) -> None:
        s = get_sessions(request_of(environ))
        c = s.get(Cart)
        s.set(Cart(c.user, c.items, c.visits + 1))

    def new(environ: Any) -> None:
        get_sessions(request_of(environ)).set(Cart(USER, list(ITEMS), VISITS))

    def ignore(environ: Any) -> None:
        pass

    return {"read": read, "write": write, "new": new, "ignore": ignore}


def _flask_session_handlers() -> dict[str, Handler]:
    import flask

    session = flask.session

    def read(environ: Any) -> None:
        environ[RESULT_KEY] = (session.get("user"), session.get("items"), session.get("visits"))

    def write(environ: Any) -> None:
        session["visits"] = session["visits"] + 1

    def new(environ: Any) -> None:
        session.update(user=USER, items=list(ITEMS), visits=VISITS)

    def ignore(environ: Any) -> None:
        pass

    return {"read": read, "write": write, "new": new, "ignore": ignore}


def _noop_handlers() -> dict[str, Handler]:
    def noop(environ: Any) -> None:
        pass

    return {case: noop for case in CASES}


# -- apps ----------------------------------------------------------------------------------
def _flask_app(name: str, handlers: dict[str, Handler], secret: Optional[str]) -> Any:
    """A Flask app with a route per case (``/read`` ...), each running its handler on the
    request's environ and returning ``"ok"``."""
    import flask

    app = flask.Flask(name)
    if secret is not None:
        app.secret_key = secret
    request = flask.request

    def route(case: str, handler: Handler) -> None:
        def view() -> str:
            handler(request.environ)
            return "ok"

        app.add_url_rule(f"/{case}", endpoint=case, view_func=view, methods=["GET"])

    for case in CASES:
        route(case, handlers[case])
    return app


def _fs_sessions() -> Any:
    import ferrosession as fs

    sessions = fs.Sessions()
    sessions.cookie(Cart, COOKIE, transformers=[fs.MessageAuthentication(FS_KEY)])
    return sessions


def flask_bare() -> Any:
    return _flask_app("bench_wsgi_bare", _noop_handlers(), secret=None)


def flask_default() -> Any:
    return _flask_app("bench_wsgi_flask", _flask_session_handlers(), secret=FLASK_SECRET)


def flask_fs() -> Any:
    import flask

    import ferrosession as fs

    app = _flask_app("bench_wsgi_fs", _fs_handlers(lambda environ: flask.request), secret=None)
    app.wsgi_app = fs.WSGISessionMiddleware(app.wsgi_app, _fs_sessions())  # type: ignore[method-assign]
    return app


def raw_fs(case: str) -> Any:
    import ferrosession as fs

    handler = _fs_handlers(lambda environ: environ)[case]
    return fs.WSGISessionMiddleware(raw_wsgi_app(handler), _fs_sessions())


# -- sanity --------------------------------------------------------------------------------
def _cookie_pair(set_cookie: str) -> str:
    pair = set_cookie.split(";", 1)[0].strip()
    if not pair.startswith(COOKIE + "=") or len(pair) <= len(COOKIE) + 1:
        raise SanityError(f"unexpected Set-Cookie {set_cookie!r}")
    return pair


def _env(path: str, cookie: Optional[str]) -> dict[str, Any]:
    return h.wsgi_environ(path, headers=[("Cookie", cookie)] if cookie else None)


def _check(label: str, resp: h.WSGIResponse, set_cookie: bool) -> list[str]:
    if not resp.status.startswith("200") or resp.body != b"ok":
        raise SanityError(f"{label}: status {resp.status!r}, body {resp.body!r}")
    lines = h.set_cookies(resp.headers)
    if set_cookie and len(lines) != 1:
        raise SanityError(f"{label}: expected one Set-Cookie, got {lines!r}")
    if not set_cookie and lines:
        raise SanityError(f"{label}: sent a Set-Cookie: {lines!r}")
    return lines


def prepare(label: str, app_of: Callable[[str], Any], prefix: str) -> str:
    """Checks every case of an app family; returns the Cookie header (``name=value``)
    taken from a real Set-Cookie of its ``new`` case. ``prefix`` is the path prefix
    (``""`` on the raw app, whose path does not matter; ``"/"`` + case on Flask)."""

    def path(case: str) -> str:
        return f"/{case}" if prefix else "/"

    lines = _check(f"{label}/new", h.wsgi_call(app_of("new"), _env(path("new"), None)), True)
    cookie = _cookie_pair(lines[0])

    resp = h.wsgi_call(app_of("read"), _env(path("read"), cookie))
    _check(f"{label}/read", resp, WANT_SET_COOKIE["read"])
    if as_tuple(resp.environ.get(RESULT_KEY)) != EXPECTED:
        raise SanityError(f"{label}/read: read {resp.environ.get(RESULT_KEY)!r}")

    lines = _check(
        f"{label}/write", h.wsgi_call(app_of("write"), _env(path("write"), cookie)), True
    )
    resp = h.wsgi_call(app_of("read"), _env(path("read"), _cookie_pair(lines[0])))
    want = (USER, list(ITEMS), VISITS + 1)
    if as_tuple(resp.environ.get(RESULT_KEY)) != want:
        raise SanityError(f"{label}/write: wrote {resp.environ.get(RESULT_KEY)!r}")

    _check(f"{label}/ignore", h.wsgi_call(app_of("ignore"), _env(path("ignore"), cookie)), False)

    name, _, value = cookie.partition("=")
    flipped = value[:-5] + ("A" if value[-5] != "A" else "B") + value[-4:]
    resp = h.wsgi_call(app_of("read"), _env(path("read"), f"{name}={flipped}"))
    if as_tuple(resp.environ.get(RESULT_KEY)) is not None:
        raise SanityError(f"{label}/read: a tampered cookie was accepted")
    return cookie


def check_bare(label: str, app: Any, path: str, cookie: str) -> None:
    resp = h.wsgi_call(app, _env(path, cookie))
    _check(f"{label}/bare", resp, False)
    if RESULT_KEY in resp.environ:
        raise SanityError(f"{label}/bare: the bare app ran a handler")


# -- main ----------------------------------------------------------------------------------
def _fmt(x: float) -> str:
    return f"{x:.2f}"


async def run(args: argparse.Namespace, progress: h.Progress) -> dict[str, Any]:
    cases = [c for c in CASES if c in args.cases]
    fl_bare, fl_default, fl_fs = flask_bare(), flask_default(), flask_fs()
    raw_apps = {case: raw_fs(case) for case in CASES}
    raw_bare = raw_wsgi_app(None)

    cookies = {
        "flask/flask": prepare("flask/flask", lambda c: fl_default, "/"),
        "flask/ferrosession": prepare("flask/ferrosession", lambda c: fl_fs, "/"),
        "raw/ferrosession": prepare("raw/ferrosession", lambda c: raw_apps[c], ""),
    }
    fs_cookie = cookies["flask/ferrosession"]
    check_bare("flask", fl_bare, "/read", fs_cookie)
    check_bare("raw", raw_bare, "/", fs_cookie)
    progress.note(
        "sanity checks passed: "
        + ", ".join(f"{k} ({len(v)}-byte cookie)" for k, v in cookies.items())
    )

    variants: dict[str, h.Variant] = {}

    def add(key: str, app: Any, path: str, cookie: Optional[str]) -> None:
        variants[key] = h.Variant(key, h.wsgi_batch(app, _env(path, cookie)))

    add("flask/bare", fl_bare, "/read", fs_cookie)
    add("raw/bare", raw_bare, "/", fs_cookie)
    for case in cases:
        for lib, app in (("flask", fl_default), ("ferrosession", fl_fs)):
            cookie = None if case == "new" else cookies[f"flask/{lib}"]
            add(f"flask/{case}/{lib}", app, f"/{case}", cookie)
        cookie = None if case == "new" else cookies["raw/ferrosession"]
        add(f"raw/{case}/ferrosession", raw_apps[case], "/", cookie)

    rounds = await h.measure(
        list(variants.values()),
        budget_s=args.budget,
        batch_ms=args.batch_ms,
        min_rounds=args.min_rounds,
        progress=progress,
    )

    fbare = variants["flask/bare"].samples
    rbare = variants["raw/bare"].samples
    out_cases: dict[str, Any] = {}
    for case in cases:
        fl = variants[f"flask/{case}/flask"].samples
        ff = variants[f"flask/{case}/ferrosession"].samples
        rf = variants[f"raw/{case}/ferrosession"].samples
        e: dict[str, Any] = {
            "flask_bare_us": h.quantiles(fbare)["median"],
            "raw_bare_us": h.quantiles(rbare)["median"],
            "flask": h.overhead(fl, fbare),
            "ferrosession_flask": h.overhead(ff, fbare),
            "ferrosession_raw": h.overhead(rf, rbare),
            "goal": GOALS[case],
        }
        fl_ov = e["flask"]["overhead_us"]
        ratio = e["ferrosession_flask"]["overhead_us"] / fl_ov if fl_ov > 0 else float("inf")
        spread = h.ratio_spread(h.paired(ff, fbare), h.paired(fl, fbare))
        raw_ratio = e["ferrosession_raw"]["overhead_us"] / fl_ov if fl_ov > 0 else float("inf")
        e["ratio"] = ratio
        e["ratio_paired_p25"] = spread["p25"]
        e["ratio_paired_p75"] = spread["p75"]
        e["ratio_raw_to_flask"] = raw_ratio
        e["met"] = None if GOALS[case] is None else ratio <= GOALS[case]
        out_cases[case] = e

    import ferrosession
    from ferrosession import _core

    return {
        "benchmark": "wsgi_overhead",
        "unit": "microseconds per request",
        "quick": args.quick,
        "environment": h.environment(
            ["ferrosession", "flask", "werkzeug", "itsdangerous", "orjson"],
            ferrosession_build_profile=_core.build_profile,
            ferrosession_path=str(Path(ferrosession.__file__).parent),
        ),
        "settings": {
            "budget_s": args.budget,
            "batch_ms": args.batch_ms,
            "rounds": rounds,
            "session": DATA,
            "session_json_bytes": len(json.dumps(DATA, separators=(",", ":"))),
            "cookie_bytes": {k: len(v) for k, v in cookies.items()},
            "overhead": "median(variant) - median(its bare app); paired = per-round difference",
            "flask_bare": "same routes, no SECRET_KEY (Flask opens a NullSession per request)",
        },
        "command": [Path(sys.executable).name, *sys.argv],
        "loadavg_at_end": list(os.getloadavg()),
        "variants": {
            k: {**h.quantiles(v.samples), "batch_calls": v.n} for k, v in variants.items()
        },
        "cases": out_cases,
    }


def table(result: dict[str, Any]) -> str:
    def ov(x: dict[str, Any]) -> str:
        p = x["overhead_paired_us"]
        return f"{_fmt(x['overhead_us'])} ({_fmt(p['p25'])} to {_fmt(p['p75'])})"

    rows = []
    for case, e in result["cases"].items():
        goal = e["goal"]
        rows.append(
            [
                case,
                _fmt(e["flask_bare_us"]),
                ov(e["flask"]),
                ov(e["ferrosession_flask"]),
                f"{e['ratio']:.3f} ({e['ratio_paired_p25']:.3f} to {e['ratio_paired_p75']:.3f})",
                "-" if goal is None else f"≤ {goal:.2f}",
                "-" if e["met"] is None else ("yes" if e["met"] else "**no**"),
                _fmt(e["raw_bare_us"]),
                ov(e["ferrosession_raw"]),
                f"{e['ratio_raw_to_flask']:.3f}",
            ]
        )
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
    env = result["environment"]
    pk = env["packages"]
    foot = (
        f"\nMedians of {result['settings']['rounds']} interleaved rounds; overhead = median of "
        f"the variant - median of its bare app; (p25 to p75) of the per-round paired "
        f"difference / ratio. Flask bare: same routes, no SECRET_KEY (NullSession).\n"
        f"Python {env['python']}, Flask {pk['flask']}, Werkzeug {pk['werkzeug']}, "
        f"ferrosession {pk['ferrosession']} ({env['ferrosession_build_profile']}), "
        f"{env['nproc']} CPU(s): {env['cpu']}."
    )
    return h.markdown_table(header, rows) + "\n" + foot


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    h.add_timing_args(parser, budget=60, quick_budget=4, batch_ms=5)
    parser.add_argument(
        "--cases", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}"
    )
    h.add_output_args(parser)
    args = parser.parse_args(argv)
    args.cases = h.comma_list(parser, args.cases, CASES, "case")
    h.timing_defaults(args, budget=60, quick_budget=4, batch_ms=5)
    h.require_release(args, "wsgi_overhead")
    return h.run_and_report(
        "wsgi_overhead",
        args,
        run,
        table,
        lambda result: all(e["met"] is not False for e in result["cases"].values()),
        SanityError,
    )


if __name__ == "__main__":
    sys.exit(main())
