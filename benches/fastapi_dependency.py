"""A FastAPI endpoint taking ``Depends(session(Cart))``, beside FastAPI's own raw cookie.

    make bench-build && PYTHONPATH=target/bench-site .venv/bin/python \\
        benches/fastapi_dependency.py [--quick]

Three FastAPI apps with the same ``async def`` endpoint, called in-process with a
prebuilt scope carrying the signed Cart cookie (``_harness``'s reference session):

=============  ===========================================================================
variant        the endpoint takes
=============  ===========================================================================
apikey         ``Depends(APIKeyCookie(name=..., auto_error=False))``: the raw cookie
               string, no session middleware (what FastAPI charges for the raw string)
manual         ``request: Request`` and calls ``fs.get_sessions(request).get(Cart)``
dependency     ``Depends(session(Cart))`` (``ferrosession.fastapi``)
plain-dep      ``Depends(read_cart)``, a plain ``async def`` that calls
               ``fs.get_sessions(connection).get(Cart)``: what FastAPI charges for any
               dependency (a control, no goal)
=============  ===========================================================================

The two ferrosession apps run under ``fs.SessionMiddleware``. Figures are whole requests
(per-call medians), and the ratios are of those, paired by round. Goals (issue 15):
dependency ≤ 1.3x apikey and ≤ 1.2x manual. Each app is checked first: it reads the
Cart (apikey: the raw token) and reads a tampered cookie as no session.
Results: ``benches/results/fastapi_dependency.json``.

No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations,
which name local dependencies.
"""

import argparse
import sys
from typing import Annotated, Any, Optional

import _harness as h

GOALS = {"apikey": 1.3, "manual": 1.2}  # dependency / variant
VARIANTS = ("apikey", "manual", "dependency", "plain-dep")
CONTROLS = ("plain-dep",)  # dependency / control, reported without a goal


def apps(sessions: Any) -> dict[str, Any]:
    from fastapi import Depends, FastAPI, Request
    from fastapi.responses import PlainTextResponse
    from fastapi.security import APIKeyCookie
    from starlette.requests import HTTPConnection

    import ferrosession as fs
    from ferrosession.fastapi import session

    raw_cookie = APIKeyCookie(name=h.COOKIE, auto_error=False)
    out: dict[str, Any] = {}

    apikey = FastAPI()

    @apikey.get("/", response_class=PlainTextResponse)
    async def with_apikey(
        request: Request, raw: Annotated[Optional[str], Depends(raw_cookie)]
    ) -> str:
        request.scope[h.RESULT_KEY] = raw
        return "ok"

    manual = FastAPI()
    manual.add_middleware(fs.SessionMiddleware, sessions=sessions)

    @manual.get("/", response_class=PlainTextResponse)
    async def with_manual(request: Request) -> str:
        request.scope[h.RESULT_KEY] = fs.get_sessions(request).get(h.Cart)
        return "ok"

    dependency = FastAPI()
    dependency.add_middleware(fs.SessionMiddleware, sessions=sessions)

    @dependency.get("/", response_class=PlainTextResponse)
    async def with_dependency(
        request: Request, cart: Annotated[Optional[h.Cart], Depends(session(h.Cart))]
    ) -> str:
        request.scope[h.RESULT_KEY] = cart
        return "ok"

    async def read_cart(connection: HTTPConnection) -> Optional[h.Cart]:
        return fs.get_sessions(connection).get(h.Cart)

    plain = FastAPI()
    plain.add_middleware(fs.SessionMiddleware, sessions=sessions)

    @plain.get("/", response_class=PlainTextResponse)
    async def with_plain(
        request: Request, cart: Annotated[Optional[h.Cart], Depends(read_cart)]
    ) -> str:
        request.scope[h.RESULT_KEY] = cart
        return "ok"

    out.update(apikey=apikey, manual=manual, dependency=dependency)
    out["plain-dep"] = plain
    return out


async def check(app_of: dict[str, Any], sessions: Any) -> str:
    """The Cart cookie (made by the raw app's ``new`` case); every app reads it."""
    new = await h.asgi_call(h.fs_asgi(sessions, "new"), h.cookie_scope(None))
    (line,) = new.set_cookies
    cookie = h.cookie_pair(line)
    token = cookie.split("=", 1)[1]
    for key, app in app_of.items():
        reply = await h.asgi_call(app, h.cookie_scope(cookie))
        if not reply.status.startswith("200"):
            raise h.SanityError(f"{key}: status {reply.status}")
        got = reply.seen.get(h.RESULT_KEY)
        if key == "apikey":
            if got != token:
                raise h.SanityError(f"apikey: got {got!r}, not the raw cookie")
            continue
        if h.as_tuple(got) != h.EXPECTED:
            raise h.SanityError(f"{key}: read {got!r}, expected {h.EXPECTED!r}")
        if reply.set_cookies:
            raise h.SanityError(f"{key}: a read sent {reply.set_cookies!r}")
        reply = await h.asgi_call(app, h.cookie_scope(h.tampered(cookie)))
        if reply.seen.get(h.RESULT_KEY) is not None:
            raise h.SanityError(f"{key}: a tampered cookie read as a session")
    return cookie


async def run(args: argparse.Namespace, progress: h.Progress) -> dict[str, Any]:
    sessions = h.fs_signed()
    app_of = apps(sessions)
    cookie = await check(app_of, sessions)
    progress.note(f"sanity checks passed ({len(cookie)} B cookie)")
    scope = h.cookie_scope(cookie)
    variants = {k: h.Variant(k, h.asgi_batch(app, scope)) for k, app in app_of.items()}
    rounds = await h.measure_args(variants, args, progress)

    dep = variants["dependency"]
    dep_median = h.quantiles(dep.samples)["median"]
    against: dict[str, Any] = {}
    for key, goal in [*GOALS.items(), *((c, None) for c in CONTROLS)]:
        other = variants[key]
        value = dep_median / h.quantiles(other.samples)["median"]
        spread = h.ratio_spread(dep.samples, other.samples)
        against[key] = {
            "ratio": value,
            "ratio_paired_p25": spread["p25"],
            "ratio_paired_p75": spread["p75"],
            "goal": goal,
            "met": None if goal is None else value <= goal,
        }
    return h.result(
        "fastapi_dependency",
        args,
        unit="microseconds per request",
        packages=["fastapi", "starlette", "pydantic"],
        rounds=rounds,
        variants=variants,
        settings={
            "session": h.DATA,
            "cookie_bytes": len(cookie),
            "ratio": "median(dependency) / median(variant), whole requests",
        },
        per_call_us={k: h.quantiles(v.samples)["median"] for k, v in variants.items()},
        dependency_against=against,
    )


def table(result: dict[str, Any]) -> str:
    per_call = result["per_call_us"]
    rows = []
    for key in VARIANTS:
        e = result["dependency_against"].get(key)
        if e is None:
            rows.append([key, f"{per_call[key]:.1f}", "-", "-"])
            continue
        spread = f"{e['ratio']:.2f} ({e['ratio_paired_p25']:.2f} to {e['ratio_paired_p75']:.2f})"
        goal = "" if e["goal"] is None else f" ≤ {e['goal']:.1f}"
        rows.append([key, f"{per_call[key]:.1f}", spread + goal, h.fmt_met(e["met"])])
    header = ["endpoint takes", "µs per request", "dependency / this", "met"]
    return h.markdown_table(header, rows) + "\n" + h.footer(result, "fastapi", "starlette")


def main(argv: Optional[list[str]] = None) -> int:
    args = h.parse_args("fastapi_dependency", __doc__, argv, budget=40, quick_budget=4)
    return h.run_and_report(
        "fastapi_dependency",
        args,
        run,
        table,
        lambda r: all(e["met"] is not False for e in r["dependency_against"].values()),
    )


if __name__ == "__main__":
    sys.exit(main())
