"""Every configuration beside the reference: no configuration falls off a cliff.

    make bench-build && PYTHONPATH=target/bench-site .venv/bin/python \\
        benches/configurations.py [--quick]

The in-process ASGI read and write of ``asgi_overhead.py`` (a raw app, a prebuilt scope,
direct calls), for each ferrosession configuration below, all in the same interleaved
rounds. The reference is the signed-cookie dataclass session (``MessageAuthentication``);
every other configuration's overhead is given as a ratio to the reference's in the same
run. Goals (DESIGN.md §3): read ≤ 1.3x, write ≤ 2x; pydantic and msgspec types (against
the same dataclass) ≤ 1.5x for both. Every configuration is checked before timing (its
read value, its write read back, a tampered token refused). Results:
``benches/results/configurations.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any, Callable, Optional

import _harness as h

REFERENCE = "signed-cookie"
CASES = ("read", "write")
GOALS = {"read": 1.3, "write": 2.0}
TYPE_GOAL = 1.5  # pydantic / msgspec against the dataclass
HEADER = "x-session"
HOST_COOKIE = "__Host-session"


@dataclasses.dataclass(frozen=True)
class Prefs:
    theme: str


@dataclasses.dataclass
class Config:
    """One configuration: its label, its ``Sessions``, the session's type and how a
    handler changes / creates its value, and what carries it (a cookie or a header)."""

    label: str
    sessions: Any
    type_: Any = h.Cart
    bump: Callable[[Any], Any] = lambda c: h.Cart(c.user, c.items, c.visits + 1)
    fresh: Callable[[], Any] = lambda: h.Cart(h.USER, list(h.ITEMS), h.VISITS)
    cookie: Optional[str] = h.COOKIE  # None: the header transport
    goal: Optional[float] = None  # None: GOALS per case


def configurations() -> dict[str, Config]:
    import msgspec
    import pydantic

    import ferrosession as fs

    mac = [fs.MessageAuthentication(h.KEY)]

    def sessions(register: Callable[[Any], None]) -> Any:
        s = fs.Sessions()
        register(s)
        return s

    class CartModel(pydantic.BaseModel):
        user: str
        items: list[str]
        visits: int

    class CartStruct(msgspec.Struct):
        user: str
        items: list[str]
        visits: int

    def two(s: Any) -> None:
        s.cookie(h.Cart, h.COOKIE, transformers=mac)
        s.cookie(Prefs, "prefs", transformers=mac)

    return {
        REFERENCE: Config("signed cookie, dataclass (the reference)", h.fs_signed()),
        "header": Config(
            "header transport (X-Session)",
            sessions(lambda s: s.header(h.Cart, HEADER, transformers=mac)),
            cookie=None,
        ),
        "encrypt": Config(
            "Encrypt (AES-256-GCM)",
            sessions(lambda s: s.cookie(h.Cart, h.COOKIE, transformers=[fs.Encrypt(h.KEY)])),
        ),
        "dict": Config(
            "dict type",
            sessions(lambda s: s.cookie(dict, h.COOKIE, transformers=mac)),
            type_=dict,
            bump=lambda c: {**c, "visits": c["visits"] + 1},
            fresh=lambda: {"user": h.USER, "items": list(h.ITEMS), "visits": h.VISITS},
        ),
        "timeouts": Config(
            "idle_timeout=1800, absolute_timeout=43200",
            h.fs_signed(idle_timeout=1800, absolute_timeout=43200),
        ),
        "host-cookie": Config(
            "__Host- cookie (secure=True)",
            sessions(lambda s: s.cookie(h.Cart, HOST_COOKIE, transformers=mac, secure=True)),
            cookie=HOST_COOKIE,
        ),
        "two-sessions": Config("two sessions registered, one touched", sessions(two)),
        "memory": Config("server-side MemoryStorage", h.fs_stored(fs.MemoryStorage())),
        "memory-principal": Config(
            "MemoryStorage + principal",
            h.fs_stored(fs.MemoryStorage(), principal=lambda c: c.user),
        ),
        "pydantic": Config(
            "pydantic BaseModel",
            sessions(lambda s: s.cookie(CartModel, h.COOKIE, transformers=mac)),
            type_=CartModel,
            bump=lambda c: CartModel(user=c.user, items=c.items, visits=c.visits + 1),
            fresh=lambda: CartModel(user=h.USER, items=list(h.ITEMS), visits=h.VISITS),
            goal=TYPE_GOAL,
        ),
        "msgspec": Config(
            "msgspec Struct",
            sessions(lambda s: s.cookie(CartStruct, h.COOKIE, transformers=mac)),
            type_=CartStruct,
            bump=lambda c: CartStruct(c.user, c.items, c.visits + 1),
            fresh=lambda: CartStruct(h.USER, list(h.ITEMS), h.VISITS),
            goal=TYPE_GOAL,
        ),
    }


def scope_of(config: Config, token: Optional[str]) -> dict[str, Any]:
    return h.cookie_scope(token, "cookie" if config.cookie else HEADER)


def header_exchange(apps: dict[str, Any]) -> h.Exchange:
    async def exchange(case: str, token: Optional[str]) -> tuple[h.Reply, list[str]]:
        reply = await h.asgi_call(apps[case], h.cookie_scope(token, HEADER))
        return reply, reply.header_values(HEADER)

    return exchange


async def run(args: argparse.Namespace, progress: h.Progress) -> dict[str, Any]:
    configs = {k: c for k, c in configurations().items() if k in args.configs}
    tokens: dict[str, str] = {}
    variants: dict[str, h.Variant] = {}
    for key, config in configs.items():
        handlers = h.fs_handlers(config.type_, config.bump, config.fresh)
        apps = {case: h.fs_asgi(config.sessions, case, handlers) for case in h.CASES}
        exchange = (
            h.cookie_exchange(apps.get, name=config.cookie)
            if config.cookie
            else header_exchange(apps)
        )
        tokens[key] = await h.check_cases(key, exchange, ("read", "write"), secret=key == "encrypt")
        for case in args.cases:
            scope = scope_of(config, tokens[key])
            variants[f"{case}/{key}"] = h.Variant(f"{case}/{key}", h.asgi_batch(apps[case], scope))
    progress.note(
        "sanity checks passed: " + ", ".join(f"{k} ({len(v)} B)" for k, v in tokens.items())
    )
    bare_scope = h.cookie_scope(tokens[REFERENCE])
    variants["bare"] = h.Variant("bare", h.asgi_batch(h.raw_asgi_app(None), bare_scope))
    rounds = await h.measure_args(variants, args, progress)

    bare = variants["bare"]
    out: dict[str, Any] = {}
    for key, config in configs.items():
        entry: dict[str, Any] = {"label": config.label}
        for case in args.cases:
            goal = config.goal or GOALS[case]
            v, ref = variants[f"{case}/{key}"], variants[f"{case}/{REFERENCE}"]
            entry[case] = {**h.figures(v, bare), **h.ratio(v, bare, ref, bare, goal), "goal": goal}
            if key == REFERENCE:
                entry[case]["met"] = None  # the reference itself
        out[key] = entry
    return h.result(
        "configurations",
        args,
        unit="microseconds per request",
        packages=["pydantic", "msgspec", "orjson"],
        rounds=rounds,
        variants=variants,
        settings={
            "session": h.DATA,
            "reference": REFERENCE,
            "token_bytes": {k: len(v) for k, v in tokens.items()},
            "overhead": "median(with middleware) - median(bare); ratio = overhead / reference's",
        },
        configurations=out,
    )


def table(result: dict[str, Any]) -> str:
    rows = []
    for key, e in result["configurations"].items():
        row = [f"{key}: {e['label']}"]
        for case in ("read", "write"):
            c = e.get(case)
            row += ["-", "-", "-"] if c is None else [
                h.fmt_overhead(c),
                f"{c['ratio']:.2f} ≤ {c['goal']:.1f}",
                h.fmt_met(c["met"]),
            ]  # fmt: skip
        rows.append(row)
    header = ["configuration", "read µs", "read ratio", "met", "write µs", "write ratio", "met"]
    return h.markdown_table(header, rows) + "\n" + h.footer(result, "pydantic", "msgspec")


def main(argv: Optional[list[str]] = None) -> int:
    def pick(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--configs", help="comma-separated subset (the reference always runs)")

    args = h.parse_args(
        "configurations", __doc__, argv, budget=90, quick_budget=4, batch_ms=5, cases=CASES,
        options=pick,
    )  # fmt: skip
    known = list(configurations())
    wanted = known if args.configs is None else args.configs.split(",")
    if set(wanted) - set(known):
        sys.exit(f"--configs: a subset of {','.join(known)}")
    args.configs = [REFERENCE, *(k for k in wanted if k != REFERENCE)]
    return h.run_and_report(
        "configurations",
        args,
        run,
        table,
        lambda r: all(
            c["met"] is not False
            for e in r["configurations"].values()
            for k, c in e.items()
            if k in CASES
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
