"""In-process ASGI overhead of a signed-cookie session: ferrosession beside Starlette.

    make release && .venv/bin/python benches/asgi_overhead.py [--quick]

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
app (DESIGN.md §3). Goals: ferrosession's overhead at most 1/5 of Starlette
``SessionMiddleware``'s for read / write / new, at most 1/10 for ignore. Before timing,
every variant is checked once (the Set-Cookie it must or must not send, the value it
reads back) and the run aborts if one misbehaves, so a broken middleware cannot post a
fast figure. The same run also times ferrosession with ``Encrypt`` (AES-256-GCM) in place
of ``MessageAuthentication`` for read and write, reported as a ratio to the signed case
(goal: at most 1.5x). Results go to ``benches/results/asgi_overhead.json``; a Markdown
table to stdout; progress to stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import _harness as h

CASES = ("read", "write", "new", "ignore")
LIBS = ("starlette", "ferrosession")
GOALS = {"read": 1 / 5, "write": 1 / 5, "new": 1 / 5, "ignore": 1 / 10}
# ferrosession with Encrypt instead of MessageAuthentication, against the signed case
ENCRYPT = "ferrosession-encrypt"
ENCRYPT_CASES = ("read", "write")
ENCRYPT_GOAL = 1.5
# ferrosession with idle_timeout and a one-minute refresh, against the signed read (#8)
IDLE = "ferrosession-idle"
IDLE_CASES = ("read",)
IDLE_GOAL = 1.2
COOKIE = "session"
FS_KEY = bytes(range(32))  # fixed, so runs are comparable; never a real key
STARLETTE_SECRET = "bench-secret-key-0123456789abcdef"


@dataclasses.dataclass(frozen=True)
class Cart:
    user: str
    items: list[str]
    visits: int


USER = "ada.lovelace@example.com"
ITEMS = ("sku-10001", "sku-10002", "sku-10003", "sku-10004")
VISITS = 42
CART = Cart(USER, list(ITEMS), VISITS)  # compact JSON: 105 bytes
CART_DICT = dataclasses.asdict(CART)
RESULT_KEY = "bench.value"  # where a handler leaves what it read, for the sanity check

Handler = Callable[[dict[str, Any]], None]


# -- the app ------------------------------------------------------------------------------
def raw_app(handler: Optional[Handler]) -> Any:
    """A minimal ASGI app: runs ``handler(scope)`` then sends a 2-byte response. Every
    message is built per call, as a framework does (middleware may extend the header
    list of the start message)."""
    if handler is None:

        async def bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")],
                }
            )
            await send({"type": "http.response.body", "body": b"ok"})

        return bare

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
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


# -- handlers: same work, each library's idiom ----------------------------------------------
def _fs_handlers() -> dict[str, Handler]:
    import ferrosession as fs

    get_sessions = fs.get_sessions

    def read(scope: dict[str, Any]) -> None:
        scope[RESULT_KEY] = get_sessions(scope).get(Cart)

    def write(scope: dict[str, Any]) -> None:
        s = get_sessions(scope)
        c = s.get(Cart)
        s.set(Cart(c.user, c.items, c.visits + 1))

    def new(scope: dict[str, Any]) -> None:
        get_sessions(scope).set(Cart(USER, list(ITEMS), VISITS))

    def ignore(scope: dict[str, Any]) -> None:
        pass

    return {"read": read, "write": write, "new": new, "ignore": ignore}


def _starlette_handlers() -> dict[str, Handler]:
    def read(scope: dict[str, Any]) -> None:
        s = scope["session"]
        s.mark_accessed()  # what ``request.session`` does in every Starlette app
        scope[RESULT_KEY] = s

    def write(scope: dict[str, Any]) -> None:
        s = scope["session"]
        s["visits"] = s["visits"] + 1

    def new(scope: dict[str, Any]) -> None:
        scope["session"].update(user=USER, items=list(ITEMS), visits=VISITS)

    def ignore(scope: dict[str, Any]) -> None:
        pass

    return {"read": read, "write": write, "new": new, "ignore": ignore}


def fs_app(handler: Handler) -> Any:
    import ferrosession as fs

    sessions = fs.Sessions()
    sessions.cookie(Cart, COOKIE, transformers=[fs.MessageAuthentication(FS_KEY)])
    return fs.SessionMiddleware(raw_app(handler), sessions)


def fs_encrypt_app(handler: Handler) -> Any:
    import ferrosession as fs

    sessions = fs.Sessions()
    sessions.cookie(Cart, COOKIE, transformers=[fs.Encrypt(FS_KEY)])
    return fs.SessionMiddleware(raw_app(handler), sessions)


def fs_idle_app(handler: Handler) -> Any:
    import ferrosession as fs

    sessions = fs.Sessions()
    sessions.cookie(
        Cart,
        COOKIE,
        transformers=[fs.MessageAuthentication(FS_KEY)],
        idle_timeout=1800,
        refresh=60,
    )
    return fs.SessionMiddleware(raw_app(handler), sessions)


def starlette_app(handler: Handler) -> Any:
    from starlette.middleware.sessions import SessionMiddleware

    return SessionMiddleware(raw_app(handler), secret_key=STARLETTE_SECRET, session_cookie=COOKIE)


FACTORIES: dict[str, tuple[Callable[[Handler], Any], Callable[[], dict[str, Handler]]]] = {
    "starlette": (starlette_app, _starlette_handlers),
    "ferrosession": (fs_app, _fs_handlers),
    ENCRYPT: (fs_encrypt_app, _fs_handlers),
    IDLE: (fs_idle_app, _fs_handlers),
}


# -- sanity ------------------------------------------------------------------------------
class SanityError(AssertionError):
    pass


def _set_cookies(messages: list[dict[str, Any]]) -> list[str]:
    return [
        v.decode("latin-1") for k, v in h.response_headers(messages) if k.lower() == b"set-cookie"
    ]


def _cookie_header(set_cookie: str) -> bytes:
    """``Cookie`` request header value from a ``Set-Cookie`` line: the ``name=value``."""
    pair = set_cookie.split(";", 1)[0].strip()
    if not pair.startswith(COOKIE + "=") or len(pair) <= len(COOKIE) + 1:
        raise SanityError(f"unexpected Set-Cookie {set_cookie!r}")
    return pair.encode("latin-1")


def _same(lib: str, value: Any, expected: Cart) -> bool:
    if lib.startswith("ferrosession"):
        return isinstance(value, Cart) and value == expected
    return dict(value or {}) == dataclasses.asdict(expected)


async def _request(app: Any, scope: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One request; returns the messages sent and the scope the handler saw (both
    middlewares hand the scope they were given on to the app)."""
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    seen = scope.copy()
    await app(seen, h.asgi_receive, send)
    return sent, seen


async def prepare(lib: str) -> tuple[dict[str, Any], bytes]:
    """Builds the app of every case for ``lib``, checks them, and returns the apps and
    the Cookie header value (taken from a real Set-Cookie of the ``new`` case)."""
    make_app, make_handlers = FACTORIES[lib]
    handlers = make_handlers()
    apps = {case: make_app(handlers[case]) for case in CASES}
    no_cookie = h.asgi_scope()

    # new: a fresh session must go out, and read back as the value that was set
    sent, _ = await _request(apps["new"], no_cookie)
    lines = _set_cookies(sent)
    if len(lines) != 1:
        raise SanityError(f"{lib}/new: expected one Set-Cookie, got {lines!r}")
    cookie = _cookie_header(lines[0])
    with_cookie = h.asgi_scope(headers=[(b"cookie", cookie)])

    # read: no Set-Cookie, and the expected value
    sent, seen = await _request(apps["read"], with_cookie)
    if _set_cookies(sent):
        raise SanityError(f"{lib}/read: sent a Set-Cookie: {_set_cookies(sent)!r}")
    if not _same(lib, seen.get(RESULT_KEY), CART):
        raise SanityError(f"{lib}/read: read {seen.get(RESULT_KEY)!r}, expected {CART!r}")

    # write: one Set-Cookie, whose value reads back with the change
    sent, _ = await _request(apps["write"], with_cookie)
    lines = _set_cookies(sent)
    if len(lines) != 1:
        raise SanityError(f"{lib}/write: expected one Set-Cookie, got {lines!r}")
    changed = h.asgi_scope(headers=[(b"cookie", _cookie_header(lines[0]))])
    _, seen = await _request(apps["read"], changed)
    want = dataclasses.replace(CART, visits=VISITS + 1)
    if not _same(lib, seen.get(RESULT_KEY), want):
        raise SanityError(f"{lib}/write: wrote {seen.get(RESULT_KEY)!r}, expected {want!r}")

    # ignore: no Set-Cookie
    sent, _ = await _request(apps["ignore"], with_cookie)
    if _set_cookies(sent):
        raise SanityError(f"{lib}/ignore: sent a Set-Cookie: {_set_cookies(sent)!r}")

    # a tampered cookie must not read as the value (the signature is really checked)
    name, _, value = cookie.decode("latin-1").partition("=")
    # Change a character well inside the signature: the last base64 character of a
    # Starlette signature carries unused bits, so changing it may not change the tag.
    flipped = value[:-5] + ("A" if value[-5] != "A" else "B") + value[-4:]
    tampered = h.asgi_scope(headers=[(b"cookie", f"{name}={flipped}".encode("latin-1"))])
    _, seen = await _request(apps["read"], tampered)
    if seen.get(RESULT_KEY):
        raise SanityError(f"{lib}/read: a tampered cookie was accepted")
    if lib == ENCRYPT and any(part in value for part in (USER, "sku-1000", "visits")):
        raise SanityError(f"{lib}: the session shows through the encrypted cookie: {value!r}")
    return apps, cookie


# -- main --------------------------------------------------------------------------------
def _fmt(x: float) -> str:
    return f"{x:.2f}"


async def run(args: argparse.Namespace, progress: h.Progress) -> dict[str, Any]:
    cases = [c for c in CASES if c in args.cases]
    prepared: dict[str, tuple[dict[str, Any], bytes]] = {}
    encrypt_cases = [c for c in cases if c in ENCRYPT_CASES]
    idle_cases = [c for c in cases if c in IDLE_CASES]
    checked = [*LIBS, *([ENCRYPT] if encrypt_cases else []), *([IDLE] if idle_cases else [])]
    for lib in checked:
        prepared[lib] = await prepare(lib)
    progress.note(
        "sanity checks passed: "
        + ", ".join(f"{lib} ({len(prepared[lib][1])}-byte cookie)" for lib in checked)
    )

    variants: dict[str, h.Variant] = {}
    bare_scope = h.asgi_scope(headers=[(b"cookie", prepared["ferrosession"][1])])
    variants["bare"] = h.Variant("bare", h.asgi_batch(raw_app(None), bare_scope))
    for case in cases:
        for lib in LIBS:
            apps, cookie = prepared[lib]
            headers = [] if case == "new" else [(b"cookie", cookie)]
            key = f"{case}/{lib}"
            variants[key] = h.Variant(key, h.asgi_batch(apps[case], h.asgi_scope(headers=headers)))
    for lib, lib_cases in ((ENCRYPT, encrypt_cases), (IDLE, idle_cases)):
        for case in lib_cases:
            apps, cookie = prepared[lib]
            key = f"{case}/{lib}"
            scope = h.asgi_scope(headers=[(b"cookie", cookie)])
            variants[key] = h.Variant(key, h.asgi_batch(apps[case], scope))

    rounds = await h.measure(
        list(variants.values()),
        budget_s=args.budget,
        batch_ms=args.batch_ms,
        min_rounds=args.min_rounds,
        progress=progress,
    )

    bare = variants["bare"].samples
    bare_q = h.quantiles(bare)
    out_cases: dict[str, Any] = {}
    for case in cases:
        entry: dict[str, Any] = {"bare_us": bare_q["median"], "goal": GOALS[case]}
        per_round: dict[str, list[float]] = {}
        for lib in LIBS:
            v = variants[f"{case}/{lib}"]
            q = h.quantiles(v.samples)
            per_round[lib] = h.paired(v.samples, bare)
            oq = h.quantiles(per_round[lib])
            entry[lib] = {
                "per_call_us": q,
                "overhead_us": q["median"] - bare_q["median"],
                "overhead_paired_us": {k: oq[k] for k in ("median", "p25", "p75", "iqr")},
                "batch_calls": v.n,
            }
        st, fs_ = entry["starlette"]["overhead_us"], entry["ferrosession"]["overhead_us"]
        ratio = fs_ / st if st > 0 else float("inf")
        ratios = [
            f / s
            for f, s in zip(per_round["ferrosession"], per_round["starlette"], strict=True)
            if s > 0
        ]
        rq = h.quantiles(ratios) if ratios else {"p25": float("nan"), "p75": float("nan")}
        entry["ratio"] = ratio
        entry["ratio_paired_p25"] = rq["p25"]
        entry["ratio_paired_p75"] = rq["p75"]
        entry["met"] = ratio <= GOALS[case]
        if case in encrypt_cases:
            v = variants[f"{case}/{ENCRYPT}"]
            enc = h.overhead(v.samples, bare)
            enc["batch_calls"] = v.n
            entry["ferrosession_encrypt"] = enc
            signed = entry["ferrosession"]["overhead_us"]
            enc_ratio = enc["overhead_us"] / signed if signed > 0 else float("inf")
            spread = h.ratio_spread(h.paired(v.samples, bare), per_round["ferrosession"])
            entry["encrypt"] = {
                "ratio_to_signed": enc_ratio,
                "ratio_paired_p25": spread["p25"],
                "ratio_paired_p75": spread["p75"],
                "goal": ENCRYPT_GOAL,
                "met": enc_ratio <= ENCRYPT_GOAL,
            }
        if case in idle_cases:
            v = variants[f"{case}/{IDLE}"]
            idle = h.overhead(v.samples, bare)
            idle["batch_calls"] = v.n
            entry["ferrosession_idle"] = idle
            signed = entry["ferrosession"]["overhead_us"]
            idle_ratio = idle["overhead_us"] / signed if signed > 0 else float("inf")
            spread = h.ratio_spread(h.paired(v.samples, bare), per_round["ferrosession"])
            entry["idle"] = {
                "ratio_to_signed": idle_ratio,
                "ratio_paired_p25": spread["p25"],
                "ratio_paired_p75": spread["p75"],
                "goal": IDLE_GOAL,
                "met": idle_ratio <= IDLE_GOAL,
            }
        out_cases[case] = entry

    import ferrosession
    from ferrosession import _core

    return {
        "benchmark": "asgi_overhead",
        "unit": "microseconds per request",
        "quick": args.quick,
        "environment": h.environment(
            ["ferrosession", "starlette", "itsdangerous", "orjson"],
            ferrosession_build_profile=_core.build_profile,
            ferrosession_path=str(Path(ferrosession.__file__).parent),
        ),
        "settings": {
            "budget_s": args.budget,
            "batch_ms": args.batch_ms,
            "rounds": rounds,
            "session": CART_DICT,
            "session_json_bytes": len(json.dumps(CART_DICT, separators=(",", ":"))),
            "cookie_bytes": {lib: len(prepared[lib][1]) for lib in checked},
            "overhead": "median(with middleware) - median(bare); paired = per-round difference",
        },
        "command": [Path(sys.executable).name, *sys.argv],
        "loadavg_at_end": list(os.getloadavg()),
        "variants": {
            k: {**h.quantiles(v.samples), "batch_calls": v.n} for k, v in variants.items()
        },
        "cases": out_cases,
    }


def table(result: dict[str, Any]) -> str:
    rows = []
    for case, e in result["cases"].items():
        st, fs_ = e["starlette"], e["ferrosession"]

        def ov(x: dict[str, Any]) -> str:
            p = x["overhead_paired_us"]
            return f"{_fmt(x['overhead_us'])} ({_fmt(p['p25'])} to {_fmt(p['p75'])})"

        rows.append(
            [
                case,
                _fmt(e["bare_us"]),
                _fmt(st["per_call_us"]["median"]),
                _fmt(fs_["per_call_us"]["median"]),
                ov(st),
                ov(fs_),
                f"{e['ratio']:.3f} ({e['ratio_paired_p25']:.3f} to {e['ratio_paired_p75']:.3f})",
                f"≤ {e['goal']:.2f}",
                "yes" if e["met"] else "**no**",
            ]
        )
    header = [
        "case",
        "bare µs",
        "Starlette µs",
        "ferrosession µs",
        "Starlette overhead µs",
        "ferrosession overhead µs",
        "ratio fs/Starlette",
        "goal",
        "met",
    ]
    env = result["environment"]
    pk = env["packages"]
    foot = (
        f"\nMedians of {result['settings']['rounds']} interleaved rounds; overhead = median with "
        f"middleware - median bare; (p25 to p75) of the per-round paired difference / ratio.\n"
        f"Python {env['python']}, Starlette {pk['starlette']}, ferrosession {pk['ferrosession']} "
        f"({env['ferrosession_build_profile']}), {env['nproc']} CPU(s): {env['cpu']}."
    )
    enc_rows = []
    for case, e in result["cases"].items():
        if "encrypt" not in e:
            continue
        x, g = e["ferrosession_encrypt"], e["encrypt"]
        p = x["overhead_paired_us"]
        enc_rows.append(
            [
                case,
                _fmt(e["ferrosession"]["overhead_us"]),
                f"{_fmt(x['overhead_us'])} ({_fmt(p['p25'])} to {_fmt(p['p75'])})",
                f"{g['ratio_to_signed']:.3f} ({g['ratio_paired_p25']:.3f} to "
                f"{g['ratio_paired_p75']:.3f})",
                f"≤ {g['goal']:.2f}",
                "yes" if g["met"] else "**no**",
            ]
        )
    if enc_rows:
        enc_header = [
            "case",
            "signed overhead µs",
            "Encrypt overhead µs",
            "ratio Encrypt/signed",
            "goal",
            "met",
        ]
        foot += "\n\n" + h.markdown_table(enc_header, enc_rows)
    idle_rows = [
        [
            case,
            _fmt(e["ferrosession"]["overhead_us"]),
            _fmt(e["ferrosession_idle"]["overhead_us"]),
            f"{e['idle']['ratio_to_signed']:.3f}",
            f"≤ {e['idle']['goal']:.2f}",
            "yes" if e["idle"]["met"] else "**no**",
        ]
        for case, e in result["cases"].items()
        if "idle" in e
    ]
    if idle_rows:
        idle_header = [
            "case",
            "signed overhead µs",
            "with idle_timeout µs",
            "ratio idle/signed",
            "goal",
            "met",
        ]
        foot += "\n\n" + h.markdown_table(idle_header, idle_rows)
    return h.markdown_table(header, rows) + "\n" + foot


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    h.add_timing_args(parser, budget=90, quick_budget=4, batch_ms=5)
    parser.add_argument(
        "--cases", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}"
    )
    h.add_output_args(parser)
    args = parser.parse_args(argv)
    args.cases = h.comma_list(parser, args.cases, CASES, "case")
    h.timing_defaults(args, budget=90, quick_budget=4, batch_ms=5)
    h.require_release(args, "asgi_overhead")
    return h.run_and_report(
        "asgi_overhead",
        args,
        run,
        table,
        lambda result: all(
            e["met"]
            and e.get("encrypt", {"met": True})["met"]
            and e.get("idle", {"met": True})["met"]
            for e in result["cases"].values()
        ),
        SanityError,
    )


if __name__ == "__main__":
    sys.exit(main())
