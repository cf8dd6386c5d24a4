"""In-process overhead of the drop-ins beside the originals: ``ferrosession.starlette``
against Starlette's ``SessionMiddleware`` (ASGI) and ``ferrosession.flask`` against
Flask's default session (WSGI), all in the same interleaved run.

    make bench-build && PYTHONPATH=target/bench-site .venv/bin/python \\
        benches/compat_overhead.py [--quick]

The same handler code runs under both members of a pair (that is the point of a drop-in),
in the cases of ``asgi_overhead.py`` (read, write, new, ignore). ASGI: the raw app, the
baseline is the bare app. WSGI: a Flask app; Flask's session is built in, so the baseline
is the same Flask app whose session interface hands out the session's data without any
cookie work (and saves nothing): the overhead is the whole cookie work of an interface.
Goals (DESIGN.md §3): at most 1/5 of the original's overhead for read, write and new;
1/10 for ignore. Every variant is checked before timing. Results:
``benches/results/compat_overhead.json``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Optional

import _harness as h

GOALS = {"read": 1 / 5, "write": 1 / 5, "new": 1 / 5, "ignore": 1 / 10}
PAIRS = {"asgi": ("starlette", "ferrosession"), "wsgi": ("flask", "ferrosession")}


def asgi_apps(lib: str) -> dict[str, Any]:
    middleware: Any = None
    if lib == "ferrosession":
        from ferrosession.starlette import SessionMiddleware as middleware
    return {case: h.starlette_asgi(case, middleware) for case in h.CASES}


def flask_app(lib: str) -> Any:
    if lib == "flask":
        return h.flask_app("bench_compat_flask")
    from ferrosession.flask import SessionInterface

    return h.flask_app("bench_compat_fs", interface=SessionInterface())


async def run(args: argparse.Namespace, progress: h.Progress) -> dict[str, Any]:
    variants: dict[str, h.Variant] = {}
    cookies: dict[str, str] = {}

    def add(key: str, batch: Any) -> None:
        variants[key] = h.Variant(key, batch)

    if "asgi" in args.sides:
        for lib in PAIRS["asgi"]:
            apps = asgi_apps(lib)
            cookie = cookies[f"asgi/{lib}"] = await h.check_cases(
                f"asgi/{lib}", h.cookie_exchange(apps.get)
            )
            for case in args.cases:
                scope = h.cookie_scope(None if case == "new" else cookie)
                add(f"asgi/{case}/{lib}", h.asgi_batch(apps[case], scope))
        scope = h.cookie_scope(cookies["asgi/ferrosession"])
        add("asgi/bare", h.asgi_batch(h.raw_asgi_app(None), scope))
    if "wsgi" in args.sides:
        bare_data = h.flask_without_cookie("bench_compat_bare_data")
        bare_empty = h.flask_without_cookie("bench_compat_bare_empty", None)
        for lib in PAIRS["wsgi"]:
            app = flask_app(lib)
            exchange = h.cookie_exchange(h.one_app(app), wsgi=True)
            cookie = cookies[f"wsgi/{lib}"] = await h.check_cases(f"wsgi/{lib}", exchange)
            for case in args.cases:
                environ = h.cookie_environ(f"/{case}", None if case == "new" else cookie)
                add(f"wsgi/{case}/{lib}", h.wsgi_batch(app, environ))
        for case in args.cases:
            bare = bare_empty if case == "new" else bare_data
            add(f"wsgi/{case}/bare", h.wsgi_batch(bare, h.cookie_environ(f"/{case}", None)))
    progress.note(
        "sanity checks passed; cookie bytes: "
        + ", ".join(f"{k} {len(v)}" for k, v in cookies.items())
    )
    rounds = await h.measure_args(variants, args, progress)

    out: dict[str, Any] = {}
    for side in args.sides:
        original, ours = PAIRS[side]
        for case in args.cases:
            bare = variants["asgi/bare" if side == "asgi" else f"wsgi/{case}/bare"]
            theirs, mine = variants[f"{side}/{case}/{original}"], variants[f"{side}/{case}/{ours}"]
            out[f"{side}/{case}"] = {
                "bare_us": h.quantiles(bare.samples)["median"],
                "goal": GOALS[case],
                original: h.figures(theirs, bare),
                ours: h.figures(mine, bare),
                **h.ratio(mine, bare, theirs, bare, GOALS[case]),
            }
    return h.result(
        "compat_overhead",
        args,
        unit="microseconds per request",
        packages=["starlette", "flask", "werkzeug", "itsdangerous", "orjson"],
        rounds=rounds,
        variants=variants,
        settings={
            "session": h.DATA,
            "session_json_bytes": len(h.PAYLOAD),
            "cookie_bytes": {k: len(v) for k, v in cookies.items()},
            "overhead": (
                "asgi: median(with middleware) - median(bare app); wsgi: median(interface) - "
                "median(same Flask app, session without cookie work); paired = per round"
            ),
        },
        cases=out,
    )


def table(result: dict[str, Any]) -> str:
    rows = []
    for key, e in result["cases"].items():
        original, ours = PAIRS[key.split("/", 1)[0]]
        rows.append(
            [
                key,
                original,
                f"{e['bare_us']:.2f}",
                h.fmt_overhead(e[original]),
                h.fmt_overhead(e[ours]),
                h.fmt_ratio(e),
                f"≤ {e['goal']:.2f}",
                h.fmt_met(e["met"]),
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
    return (
        h.markdown_table(header, rows) + "\n" + h.footer(result, "starlette", "flask", "werkzeug")
    )


def main(argv: Optional[list[str]] = None) -> int:
    args = h.parse_args(
        "compat_overhead",
        __doc__,
        argv,
        budget=90,
        quick_budget=6,
        batch_ms=5,
        cases=h.CASES,
        sides=tuple(PAIRS),
        sides_help="asgi (Starlette), wsgi (Flask)",
    )
    return h.run_and_report(
        "compat_overhead", args, run, table, lambda r: all(e["met"] for e in r["cases"].values())
    )


if __name__ == "__main__":
    sys.exit(main())
