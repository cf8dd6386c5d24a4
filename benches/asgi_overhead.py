"""In-process ASGI overhead of a signed-cookie session: ferrosession beside Starlette.

    make bench-build && PYTHONPATH=target/bench-site .venv/bin/python \\
        benches/asgi_overhead.py [--quick]

A raw ASGI app (no routing, so the baseline stays tiny) is called directly, many times,
inside one event loop, with a prebuilt scope; no network. Per case its handler:

=========  ==================  ====================================
case       Cookie sent         handler
=========  ==================  ====================================
read       yes                 reads the session
write      yes                 reads it and stores a changed value
new        no                  stores a new value
ignore     yes                 never touches it
=========  ==================  ====================================

"Overhead" is the median per-call time with a middleware minus the median of the bare
app. Goals (DESIGN.md §3): ferrosession's overhead at most 1/5 of Starlette
``SessionMiddleware``'s for read / write / new, at most 1/10 for ignore. Every variant is
checked once before timing (``_harness.check_cases``), so a broken middleware cannot post
a fast figure. The other ferrosession configurations are in ``configurations.py``.
Results: ``benches/results/asgi_overhead.json``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Optional

import _harness as h

LIBS = ("starlette", "ferrosession")
GOALS = {"read": 1 / 5, "write": 1 / 5, "new": 1 / 5, "ignore": 1 / 10}  # DESIGN.md §3


def apps_of(lib: str) -> dict[str, Any]:
    if lib == "starlette":
        return {case: h.starlette_asgi(case) for case in h.CASES}
    sessions = h.fs_signed()
    return {case: h.fs_asgi(sessions, case) for case in h.CASES}


async def run(args: argparse.Namespace, progress: h.Progress) -> dict[str, Any]:
    apps = {lib: apps_of(lib) for lib in LIBS}
    cookies = {lib: await h.check_cases(lib, h.cookie_exchange(apps[lib].get)) for lib in LIBS}
    progress.note(
        "sanity checks passed: "
        + ", ".join(f"{k} ({len(v)}-byte cookie)" for k, v in cookies.items())
    )

    bare_scope = h.cookie_scope(cookies["ferrosession"])
    variants = {"bare": h.Variant("bare", h.asgi_batch(h.raw_asgi_app(None), bare_scope))}
    for case in args.cases:
        for lib in LIBS:
            scope = h.cookie_scope(None if case == "new" else cookies[lib])
            variants[f"{case}/{lib}"] = h.Variant(
                f"{case}/{lib}", h.asgi_batch(apps[lib][case], scope)
            )
    rounds = await h.measure_args(variants, args, progress)

    bare = variants["bare"]
    cases: dict[str, Any] = {}
    for case in args.cases:
        st, fs = variants[f"{case}/starlette"], variants[f"{case}/ferrosession"]
        cases[case] = {
            "bare_us": h.quantiles(bare.samples)["median"],
            "goal": GOALS[case],
            "starlette": h.figures(st, bare),
            "ferrosession": h.figures(fs, bare),
            **h.ratio(fs, bare, st, bare, GOALS[case]),
        }
    return h.result(
        "asgi_overhead",
        args,
        unit="microseconds per request",
        packages=["starlette", "itsdangerous", "orjson"],
        rounds=rounds,
        variants=variants,
        settings={
            "session": h.DATA,
            "session_json_bytes": len(h.PAYLOAD),
            "cookie_bytes": {lib: len(c) for lib, c in cookies.items()},
            "overhead": "median(with middleware) - median(bare); paired = per-round difference",
        },
        cases=cases,
    )


def table(result: dict[str, Any]) -> str:
    rows = [
        [
            case,
            f"{e['bare_us']:.2f}",
            h.fmt_overhead(e["starlette"]),
            h.fmt_overhead(e["ferrosession"]),
            h.fmt_ratio(e),
            f"≤ {e['goal']:.2f}",
            h.fmt_met(e["met"]),
        ]
        for case, e in result["cases"].items()
    ]
    header = [
        "case",
        "bare µs",
        "Starlette overhead µs",
        "ferrosession overhead µs",
        "ratio",
        "goal",
        "met",
    ]
    return h.markdown_table(header, rows) + "\n" + h.footer(result, "starlette")


def main(argv: Optional[list[str]] = None) -> int:
    args = h.parse_args(
        "asgi_overhead", __doc__, argv, budget=90, quick_budget=4, batch_ms=5, cases=h.CASES
    )
    return h.run_and_report(
        "asgi_overhead", args, run, table, lambda r: all(e["met"] for e in r["cases"].values())
    )


if __name__ == "__main__":
    sys.exit(main())
