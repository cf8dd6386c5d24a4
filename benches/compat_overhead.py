"""In-process overhead of the drop-ins beside the originals: ``ferrosession.starlette``
against Starlette's ``SessionMiddleware`` (ASGI) and ``ferrosession.flask`` against
Flask's default session (WSGI), all in the same interleaved run.

    make release && .venv/bin/python benches/compat_overhead.py [--quick]

The same handler code runs under both members of a pair (that is the point of a drop-in):

=========  ===========  ====================================
case       Cookie sent  handler
=========  ===========  ====================================
read       yes          reads the session
write      yes          reads it and stores a changed value
new        no           stores a new value
ignore     yes          never touches it
=========  ===========  ====================================

ASGI: a raw ASGI app (no routing) called directly with a prebuilt scope; "overhead" is
the median per-call time with the middleware minus that of the bare app. WSGI: a Flask
app called with a prebuilt environ; Flask's session is built in, so the baseline is the
same Flask app whose session interface hands out the session's data without any cookie
work (and saves nothing): the overhead is the whole cookie work of an interface (parsing,
verifying, decoding; serializing, signing, ``Set-Cookie``). Goals (DESIGN.md §3): at most
1/5 of the original's overhead for read, write and new; ignore is reported (1/10 is the
goal of ferrosession's own middleware). Every variant is checked once before timing (its
Set-Cookie, the value it reads back, a tampered cookie rejected), and the run aborts if
one misbehaves. Results go to ``benches/results/compat_overhead.json``, a Markdown table
to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import _harness as h

CASES = ("read", "write", "new", "ignore")
GOALS = {"read": 1 / 5, "write": 1 / 5, "new": 1 / 5, "ignore": 1 / 10}
PAIRS = {"asgi": ("starlette", "ferrosession"), "wsgi": ("flask", "ferrosession")}
COOKIE = "session"
SECRET = "bench-secret-key-0123456789abcdef"  # fixed, so runs are comparable
USER = "ada.lovelace@example.com"
ITEMS = ("sku-10001", "sku-10002", "sku-10003", "sku-10004")
VISITS = 42
DATA: dict[str, Any] = {"user": USER, "items": list(ITEMS), "visits": VISITS}  # 105 B JSON
RESULT_KEY = "bench.value"

Handler = Callable[[dict[str, Any]], None]


class SanityError(AssertionError):
    pass


# -- ASGI -----------------------------------------------------------------------------
def raw_app(handler: Optional[Handler]) -> Any:
    """A minimal ASGI app: runs ``handler(scope)`` then sends a 2-byte response, its
    messages built per call as a framework does."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if handler is not None:
            handler(scope)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")],
            }
        )
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def _asgi_read(scope: dict[str, Any]) -> None:
    s = scope["session"]
    s.mark_accessed()  # what ``request.session`` does in every Starlette app
    scope[RESULT_KEY] = s


def _asgi_write(scope: dict[str, Any]) -> None:
    s = scope["session"]
    s["visits"] = s["visits"] + 1


def _asgi_new(scope: dict[str, Any]) -> None:
    scope["session"].update(user=USER, items=list(ITEMS), visits=VISITS)


def _asgi_ignore(scope: dict[str, Any]) -> None:
    pass


ASGI_HANDLERS: dict[str, Handler] = {
    "read": _asgi_read,
    "write": _asgi_write,
    "new": _asgi_new,
    "ignore": _asgi_ignore,
}


def asgi_middleware(lib: str) -> Any:
    if lib == "starlette":
        from starlette.middleware.sessions import SessionMiddleware
    else:
        from ferrosession.starlette import SessionMiddleware  # type: ignore[assignment]
    return SessionMiddleware


def _set_cookies(headers: list[tuple[Any, Any]]) -> list[str]:
    out = []
    for k, v in headers:
        k = k.decode("latin-1") if isinstance(k, bytes) else k
        if k.lower() == "set-cookie":
            out.append(v.decode("latin-1") if isinstance(v, bytes) else v)
    return out


def _cookie_pair(set_cookie: str) -> str:
    pair = set_cookie.split(";", 1)[0].strip()
    if not pair.startswith(COOKIE + "=") or len(pair) <= len(COOKIE) + 1:
        raise SanityError(f"unexpected Set-Cookie {set_cookie!r}")
    return pair


def _tampered(pair: str) -> str:
    """One signature character changed (not the last: its low bits are padding, which a
    lenient base64 decoder ignores)."""
    name, _, value = pair.partition("=")
    i = len(value) - 5
    return f"{name}={value[:i]}{'A' if value[i] != 'A' else 'B'}{value[i + 1 :]}"


async def _asgi_request(app: Any, scope: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    seen = scope.copy()
    await app(seen, h.asgi_receive, send)
    return _set_cookies(h.response_headers(sent)), seen


async def prepare_asgi(lib: str) -> tuple[dict[str, Any], str]:
    """The app of every case for ``lib``, checked, and its cookie (from ``new``)."""
    mw = asgi_middleware(lib)
    apps = {c: mw(raw_app(ASGI_HANDLERS[c]), secret_key=SECRET) for c in CASES}
    lines, _ = await _asgi_request(apps["new"], h.asgi_scope())
    if len(lines) != 1:
        raise SanityError(f"asgi {lib}/new: expected one Set-Cookie, got {lines!r}")
    pair = _cookie_pair(lines[0])
    with_cookie = h.asgi_scope(headers=[(b"cookie", pair.encode("latin-1"))])
    lines, seen = await _asgi_request(apps["read"], with_cookie)
    if lines or dict(seen.get(RESULT_KEY) or {}) != DATA:
        raise SanityError(f"asgi {lib}/read: {lines!r}, read {seen.get(RESULT_KEY)!r}")
    lines, _ = await _asgi_request(apps["write"], with_cookie)
    if len(lines) != 1:
        raise SanityError(f"asgi {lib}/write: expected one Set-Cookie, got {lines!r}")
    changed = h.asgi_scope(headers=[(b"cookie", _cookie_pair(lines[0]).encode("latin-1"))])
    _, seen = await _asgi_request(apps["read"], changed)
    if dict(seen.get(RESULT_KEY) or {}) != {**DATA, "visits": VISITS + 1}:
        raise SanityError(f"asgi {lib}/write: wrote {seen.get(RESULT_KEY)!r}")
    lines, _ = await _asgi_request(apps["ignore"], with_cookie)
    if lines:
        raise SanityError(f"asgi {lib}/ignore: sent {lines!r}")
    bad = h.asgi_scope(headers=[(b"cookie", _tampered(pair).encode("latin-1"))])
    _, seen = await _asgi_request(apps["read"], bad)
    if seen.get(RESULT_KEY):
        raise SanityError(f"asgi {lib}/read: a tampered cookie was accepted")
    return apps, pair


# -- WSGI (Flask) ---------------------------------------------------------------------
_LAST: dict[str, Any] = {}


def flask_app(lib: str) -> Any:
    """A Flask app with one route per case; ``lib`` picks the session interface:
    ``flask`` (the default), ``ferrosession``, or ``bare:DATA`` / ``bare:EMPTY`` (the
    baseline: a session with that content, no cookie work)."""
    import flask
    from flask.sessions import SecureCookieSession, SessionInterface

    app = flask.Flask(f"bench_{lib.replace(':', '_')}")
    app.secret_key = SECRET
    if lib == "ferrosession":
        from ferrosession.flask import SessionInterface as FsInterface

        app.session_interface = FsInterface()
    elif lib.startswith("bare:"):
        initial = DATA if lib == "bare:DATA" else {}

        class NoCookie(SessionInterface):
            def open_session(self, app: Any, request: Any) -> SecureCookieSession:
                return SecureCookieSession({**initial, "items": list(ITEMS)} if initial else {})

            def save_session(self, app: Any, session: Any, response: Any) -> None:
                pass

        app.session_interface = NoCookie()
    session = flask.session

    @app.get("/read")
    def read() -> str:
        _LAST["value"] = dict(session)
        return "ok"

    @app.get("/write")
    def write() -> str:
        session["visits"] = session["visits"] + 1
        return "ok"

    @app.get("/new")
    def new() -> str:
        session.update(user=USER, items=list(ITEMS), visits=VISITS)
        return "ok"

    @app.get("/ignore")
    def ignore() -> str:
        return "ok"

    return app


def wsgi_environ(path: str, cookie: Optional[str] = None) -> dict[str, Any]:
    from werkzeug.test import EnvironBuilder

    headers = {"Cookie": cookie} if cookie else {}
    builder = EnvironBuilder(path=path, base_url="http://127.0.0.1:8000", headers=headers)
    try:
        return builder.get_environ()
    finally:
        builder.close()


def wsgi_call(app: Any, environ: dict[str, Any]) -> list[tuple[str, str]]:
    got: list[tuple[str, str]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if not status.startswith("200"):
            raise SanityError(f"status {status}")
        got[:] = headers

    body = app(environ.copy(), start_response)
    try:
        b"".join(body)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return got


def wsgi_batch(app: Any, environ: dict[str, Any]) -> Callable[[int], int]:
    """``n`` requests, each on a shallow copy of ``environ`` (as a server builds one per
    request); the response iterable is drained and closed as a server does."""
    clock = time.perf_counter_ns

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        return None

    def batch(n: int) -> int:
        t0 = clock()
        for _ in range(n):
            body = app(environ.copy(), start_response)
            for _chunk in body:
                pass
            body.close()
        return clock() - t0

    return batch


def prepare_wsgi(lib: str) -> tuple[Any, str]:
    app = flask_app(lib)
    lines = _set_cookies(wsgi_call(app, wsgi_environ("/new")))
    if len(lines) != 1:
        raise SanityError(f"wsgi {lib}/new: expected one Set-Cookie, got {lines!r}")
    pair = _cookie_pair(lines[0])
    _LAST.clear()
    lines = _set_cookies(wsgi_call(app, wsgi_environ("/read", pair)))
    if lines or _LAST.get("value") != DATA:
        raise SanityError(f"wsgi {lib}/read: {lines!r}, read {_LAST.get('value')!r}")
    lines = _set_cookies(wsgi_call(app, wsgi_environ("/write", pair)))
    if len(lines) != 1:
        raise SanityError(f"wsgi {lib}/write: expected one Set-Cookie, got {lines!r}")
    wsgi_call(app, wsgi_environ("/read", _cookie_pair(lines[0])))
    if _LAST.get("value") != {**DATA, "visits": VISITS + 1}:
        raise SanityError(f"wsgi {lib}/write: wrote {_LAST.get('value')!r}")
    if _set_cookies(wsgi_call(app, wsgi_environ("/ignore", pair))):
        raise SanityError(f"wsgi {lib}/ignore: sent a Set-Cookie")
    _LAST.clear()
    wsgi_call(app, wsgi_environ("/read", _tampered(pair)))
    if _LAST.get("value"):
        raise SanityError(f"wsgi {lib}/read: a tampered cookie was accepted")
    return app, pair


# -- main -----------------------------------------------------------------------------
async def run(args: argparse.Namespace, progress: h.Progress) -> dict[str, Any]:
    cases = [c for c in CASES if c in args.cases]
    variants: dict[str, h.Variant] = {}
    cookies: dict[str, int] = {}

    if "asgi" in args.sides:
        asgi = {lib: await prepare_asgi(lib) for lib in PAIRS["asgi"]}
        bare_scope = h.asgi_scope(headers=[(b"cookie", asgi["ferrosession"][1].encode())])
        variants["asgi/bare"] = h.Variant("asgi/bare", h.asgi_batch(raw_app(None), bare_scope))
        for lib, (apps, pair) in asgi.items():
            cookies[f"asgi/{lib}"] = len(pair)
            for case in cases:
                headers = [] if case == "new" else [(b"cookie", pair.encode("latin-1"))]
                key = f"asgi/{case}/{lib}"
                scope = h.asgi_scope(headers=headers)
                variants[key] = h.Variant(key, h.asgi_batch(apps[case], scope))
    if "wsgi" in args.sides:
        wsgi = {lib: prepare_wsgi(lib) for lib in PAIRS["wsgi"]}
        bare_data, bare_empty = flask_app("bare:DATA"), flask_app("bare:EMPTY")
        for case in cases:
            bare = bare_empty if case == "new" else bare_data
            key = f"wsgi/{case}/bare"
            variants[key] = h.Variant(key, wsgi_batch(bare, wsgi_environ(f"/{case}")))
            for lib, (app, pair) in wsgi.items():
                cookie = None if case == "new" else pair
                key = f"wsgi/{case}/{lib}"
                variants[key] = h.Variant(key, wsgi_batch(app, wsgi_environ(f"/{case}", cookie)))
        for lib, (_, pair) in wsgi.items():
            cookies[f"wsgi/{lib}"] = len(pair)
    progress.note(
        "sanity checks passed; cookie bytes: " + ", ".join(f"{k} {v}" for k, v in cookies.items())
    )

    rounds = await h.measure(
        list(variants.values()),
        budget_s=args.budget,
        batch_ms=args.batch_ms,
        min_rounds=args.min_rounds,
        progress=progress,
    )

    out: dict[str, Any] = {}
    for side in args.sides:
        original, ours = PAIRS[side]
        for case in cases:
            bare_key = "asgi/bare" if side == "asgi" else f"wsgi/{case}/bare"
            bare = variants[bare_key].samples
            bare_q = h.quantiles(bare)
            entry: dict[str, Any] = {"bare_us": bare_q["median"], "goal": GOALS[case]}
            per_round: dict[str, list[float]] = {}
            for lib in (original, ours):
                v = variants[f"{side}/{case}/{lib}"]
                q = h.quantiles(v.samples)
                per_round[lib] = h.paired(v.samples, bare)
                oq = h.quantiles(per_round[lib])
                entry[lib] = {
                    "per_call_us": q,
                    "overhead_us": q["median"] - bare_q["median"],
                    "overhead_paired_us": {k: oq[k] for k in ("median", "p25", "p75", "iqr")},
                    "batch_calls": v.n,
                }
            theirs, mine = entry[original]["overhead_us"], entry[ours]["overhead_us"]
            entry["ratio"] = mine / theirs if theirs > 0 else float("inf")
            ratios = [
                m / t for m, t in zip(per_round[ours], per_round[original], strict=True) if t > 0
            ]
            rq = h.quantiles(ratios) if ratios else {"p25": float("nan"), "p75": float("nan")}
            entry["ratio_paired_p25"] = rq["p25"]
            entry["ratio_paired_p75"] = rq["p75"]
            entry["met"] = entry["ratio"] <= GOALS[case]
            out[f"{side}/{case}"] = entry

    import ferrosession
    from ferrosession import _core

    return {
        "benchmark": "compat_overhead",
        "unit": "microseconds per request",
        "quick": args.quick,
        "environment": h.environment(
            ["ferrosession", "starlette", "flask", "werkzeug", "itsdangerous", "orjson"],
            ferrosession_build_profile=_core.build_profile,
            ferrosession_path=str(Path(ferrosession.__file__).parent),
        ),
        "settings": {
            "budget_s": args.budget,
            "batch_ms": args.batch_ms,
            "rounds": rounds,
            "session": DATA,
            "session_json_bytes": len(json.dumps(DATA, separators=(",", ":"))),
            "cookie_bytes": cookies,
            "overhead": (
                "asgi: median(with middleware) - median(bare app); wsgi: median(interface) - "
                "median(same Flask app, session without cookie work); paired = per round"
            ),
        },
        "variants": {
            k: {**h.quantiles(v.samples), "batch_calls": v.n} for k, v in variants.items()
        },
        "cases": out,
    }


def _fmt(x: float) -> str:
    return f"{x:.2f}"


def table(result: dict[str, Any]) -> str:
    rows = []
    for key, e in result["cases"].items():
        side = key.split("/", 1)[0]
        original, ours = PAIRS[side]

        def ov(x: dict[str, Any]) -> str:
            p = x["overhead_paired_us"]
            return f"{_fmt(x['overhead_us'])} ({_fmt(p['p25'])} to {_fmt(p['p75'])})"

        rows.append(
            [
                key,
                original,
                _fmt(e["bare_us"]),
                ov(e[original]),
                ov(e[ours]),
                f"{e['ratio']:.3f} ({e['ratio_paired_p25']:.3f} to {e['ratio_paired_p75']:.3f})",
                f"≤ {e['goal']:.2f}",
                "yes" if e["met"] else "**no**",
            ]
        )
    header = [
        "case",
        "original",
        "bare µs",
        "original overhead µs",
        "ferrosession overhead µs",
        "ratio",
        "goal",
        "met",
    ]
    env = result["environment"]
    pk = env["packages"]
    foot = (
        f"\nMedians of {result['settings']['rounds']} interleaved rounds; overhead = median "
        f"with the session - median of the baseline; (p25 to p75) of the per-round paired "
        f"difference / ratio.\nPython {env['python']}, Starlette {pk['starlette']}, Flask "
        f"{pk['flask']}, Werkzeug {pk['werkzeug']}, ferrosession {pk['ferrosession']} "
        f"({env['ferrosession_build_profile']}), {env['nproc']} CPU(s): {env['cpu']}."
    )
    return h.markdown_table(header, rows) + "\n" + foot


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    h.add_timing_args(parser, budget=90, quick_budget=6, batch_ms=5)
    parser.add_argument("--cases", default=",".join(CASES), help=f"subset of {','.join(CASES)}")
    parser.add_argument("--sides", default="asgi,wsgi", help="asgi (Starlette), wsgi (Flask)")
    h.add_output_args(parser)
    args = parser.parse_args(argv)
    args.cases = h.comma_list(parser, args.cases, CASES, "case")
    args.sides = h.comma_list(parser, args.sides, list(PAIRS), "side")
    h.timing_defaults(args, budget=90, quick_budget=6, batch_ms=5)
    h.require_release(args, "compat_overhead")
    return h.run_and_report(
        "compat_overhead",
        args,
        run,
        table,
        lambda result: all(e["met"] for e in result["cases"].values()),
        SanityError,
    )


if __name__ == "__main__":
    sys.exit(main())
