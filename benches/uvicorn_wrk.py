"""A real server: uvicorn serving a small ASGI app with and without ferrosession, loaded
by ``wrk`` over 127.0.0.1.

    make bench-build && PYTHONPATH=target/bench-site .venv/bin/python benches/uvicorn_wrk.py

Two uvicorn servers (one worker each, ``--loop asyncio``, ``--http httptools`` when it is
installed, else ``h11``, no access log) on free 127.0.0.1 ports serve the same raw ASGI
app: ``plain`` without sessions, ``session`` inside ferrosession's ``SessionMiddleware``
with a signed cookie (``MessageAuthentication``), whose handler reads the session (the
``read`` case). Both get the same request, with the session cookie, from ``wrk -t1 -c16
-d10s --latency`` (a second process), interleaved A B A B. The figure is the read case's
requests/s as a percentage of the plain app's (goal, DESIGN.md §3: at least 95 %), from
the medians of the runs. Both responses are 2 bytes (``ok``; the session app answers
``no`` when it could not read the session, which the sanity check refuses).

``wrk`` is the Debian package; when it is missing this script installs it with
``apt-get install -y wrk``. The servers are always stopped. Results go to
``benches/results/uvicorn_wrk.json``; a Markdown table to stdout; progress to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from importlib import metadata
from pathlib import Path
from typing import Any, Optional

import _harness as h

BENCHES = Path(__file__).resolve().parent
COOKIE = "session"
FS_KEY = bytes(range(32))  # fixed, so runs are comparable; never a real key
GOAL = 0.95
VARIANTS = ("plain", "session")
IGNORE = "ignore"  # diagnostic (--ignore): the middleware present, the session untouched
LABELS = {
    "plain": "no sessions",
    "session": "ferrosession read (signed cookie)",
    IGNORE: "ferrosession, session untouched",
}
ALLOW_DEBUG_ENV = "FERROSESSION_BENCH_ALLOW_DEBUG"


@dataclasses.dataclass(frozen=True)
class Cart:
    user: str
    items: list[str]
    visits: int


CART = Cart("ada.lovelace@example.com", ["sku-10001", "sku-10002", "sku-10003", "sku-10004"], 42)
START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")],
}


# -- the apps (imported by uvicorn: ``uvicorn_wrk:plain_app`` / ``uvicorn_wrk:session_app``) --
def _refuse_debug() -> None:
    from ferrosession import _core

    if _core.build_profile != "release" and not os.environ.get(ALLOW_DEBUG_ENV):
        raise SystemExit("the server imported a debug build of ferrosession")


def plain_app() -> Any:
    """The app without sessions (a factory, for ``uvicorn --factory``)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return  # lifespan
        await send({**START, "headers": list(START["headers"])})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def _sessions() -> Any:
    import ferrosession as fs

    sessions = fs.Sessions()
    sessions.cookie(Cart, COOKIE, transformers=[fs.MessageAuthentication(FS_KEY)])
    return sessions


def session_app() -> Any:
    """The same app inside ``SessionMiddleware``; its handler reads the session."""
    import ferrosession as fs

    _refuse_debug()
    get_sessions = fs.get_sessions

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        cart = get_sessions(scope).get(Cart)
        await send({**START, "headers": list(START["headers"])})
        await send({"type": "http.response.body", "body": b"ok" if cart == CART else b"no"})

    return fs.SessionMiddleware(app, _sessions())


def ignore_app() -> Any:
    """The middleware around the plain app: the cookie is sent, the session never read."""
    import ferrosession as fs

    _refuse_debug()
    return fs.SessionMiddleware(plain_app(), _sessions())


async def _new_cookie() -> str:
    """``name=value`` of a real Set-Cookie from the session middleware (a ``new`` case)."""
    import ferrosession as fs

    async def handler(scope: dict[str, Any], receive: Any, send: Any) -> None:
        fs.get_sessions(scope).set(CART)
        await send({**START, "headers": list(START["headers"])})
        await send({"type": "http.response.body", "body": b"ok"})

    sent = await h.asgi_call(fs.SessionMiddleware(handler, _sessions()), h.asgi_scope())
    lines = h.set_cookies(h.response_headers(sent))
    if len(lines) != 1:
        raise RuntimeError(f"expected one Set-Cookie, got {lines!r}")
    return lines[0].split(";", 1)[0].strip()


# -- wrk -------------------------------------------------------------------------------------
def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path:
        return path
    print("[uvicorn_wrk] installing wrk (Debian package) ...", file=sys.stderr, flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-qq", "wrk"]
    if subprocess.run(cmd, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=False)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"`apt-get install -y wrk` failed:\n{proc.stderr}")
    path = shutil.which("wrk")
    if not path:
        raise RuntimeError("wrk is still not on PATH after apt-get install")
    return path


def wrk_version(wrk: str) -> Optional[str]:
    proc = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    m = re.search(r"wrk\s+(\S+)", proc.stdout + proc.stderr)
    return m.group(1) if m else None


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError(f"unparsable wrk duration {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str) -> dict[str, Any]:
    """Requests/s, latency percentiles (ms), request count and errors of a wrk run."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not rps:
        raise RuntimeError(f"no Requests/sec in wrk output:\n{out}")
    result: dict[str, Any] = {"requests_per_s": float(rps.group(1)), "latency_ms": {}}
    for pct, value in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)\s*$", out, re.MULTILINE):
        result["latency_ms"][f"p{pct}"] = _ms(value)
    lat = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", out)
    if lat:
        result["latency_ms"]["mean"] = _ms(lat.group(1))
        result["latency_ms"]["stdev"] = _ms(lat.group(2))
        result["latency_ms"]["max"] = _ms(lat.group(3))
    total = re.search(r"(\d+) requests in", out)
    result["requests"] = int(total.group(1)) if total else None
    errors = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["socket_errors"] = errors.group(1).strip() if errors else None
    result["non_2xx"] = int(non2xx.group(1)) if non2xx else 0
    return result


# -- servers ---------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_impl() -> str:
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return "httptools"


class Server:
    """``uvicorn`` in a subprocess on a free 127.0.0.1 port; ``stop()`` ends it."""

    def __init__(self, factory: str, http: str) -> None:
        self.factory = factory
        self.http = http
        self.port = 0
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.command: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self, env: dict[str, str]) -> Server:
        for _ in range(3):
            self.port = _free_port()
            self.command = [
                sys.executable, "-m", "uvicorn", "--factory", f"uvicorn_wrk:{self.factory}",
                "--app-dir", str(BENCHES),
                "--host", "127.0.0.1", "--port", str(self.port),
                "--workers", "1", "--loop", "asyncio", "--http", self.http,
                "--no-access-log", "--log-level", "warning", "--lifespan", "off",
            ]  # fmt: skip
            self.proc = subprocess.Popen(
                self.command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                        return self
                except OSError:
                    time.sleep(0.05)
            err = b""
            if self.proc.poll() is not None and self.proc.stderr is not None:
                err = self.proc.stderr.read()
            self.stop()
            if err:
                raise RuntimeError(f"uvicorn {self.factory} did not start:\n{err.decode()}")
        raise RuntimeError(f"uvicorn {self.factory} did not start")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if proc.stderr is not None:
            proc.stderr.close()


def get(url: str, cookie: Optional[str]) -> tuple[int, bytes, list[str]]:
    req = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    with urllib.request.urlopen(req, timeout=5) as resp:  # loopback only
        return resp.status, resp.read(), resp.headers.get_all("Set-Cookie") or []


def sanity(servers: dict[str, Server], cookie: str) -> None:
    for name, server in servers.items():
        status, body, set_cookie = get(server.url, cookie)
        if status != 200 or body != b"ok" or set_cookie:
            raise RuntimeError(f"{name}: {status} {body!r} Set-Cookie {set_cookie!r}")
    _, body, _ = get(servers["session"].url, None)
    if body != b"no":
        raise RuntimeError(f"session: read a session without a cookie ({body!r})")
    name, _, value = cookie.partition("=")
    flipped = value[:-5] + ("A" if value[-5] != "A" else "B") + value[-4:]
    _, body, _ = get(servers["session"].url, f"{name}={flipped}")
    if body != b"no":
        raise RuntimeError("session: a tampered cookie was accepted")


# -- main ------------------------------------------------------------------------------------
def _med(values: list[float]) -> float:
    return statistics.median(values)


def table(result: dict[str, Any]) -> str:
    s = result["summary"]
    rows = []
    for name in result["settings"]["variants"]:
        v = s[name]
        lat = v["latency_ms_median"]
        rows.append(
            [
                LABELS[name],
                " / ".join(f"{r:,.0f}" for r in v["requests_per_s_runs"]),
                f"{v['requests_per_s_median']:,.0f}",
                f"{lat.get('p50', float('nan')):.2f}",
                f"{lat.get('p75', float('nan')):.2f}",
                f"{lat.get('p90', float('nan')):.2f}",
                f"{lat.get('p99', float('nan')):.2f}",
                "100 %" if name == "plain" else f"{s[name]['pct_of_plain']:.1f} %",
            ]
        )
    header = ["variant", "req/s per run", "req/s median"]
    header += ["p50 ms", "p75 ms", "p90 ms", "p99 ms", "% of no-session"]
    st = result["settings"]
    env = result["environment"]
    foot = (
        f"\nGoal: read ≥ {GOAL:.0%} of the no-session throughput: "
        f"{s['read_pct_of_plain']:.1f} % ({s['pct_min']:.1f} to {s['pct_max']:.1f} % run by "
        f"run) → {'met' if s['met'] else '**not met**'}.\n"
        f"`{' '.join(st['wrk_args'])}`, order {' '.join(st['order'])}; uvicorn "
        f"{env['packages']['uvicorn']} (1 worker, asyncio, {st['http']}), wrk "
        f"{st['wrk_version']}, ferrosession {env['packages']['ferrosession']} "
        f"({env['ferrosession_build_profile']}), Python {env['python']}, {env['nproc']} CPU(s)."
    )
    return h.markdown_table(header, rows) + "\n" + foot


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (-d2s, A B)")
    parser.add_argument("--duration", type=int, help="seconds per wrk run (default 10; quick 2)")
    parser.add_argument("--repeats", type=int, help="A B pairs (default 2; quick 1)")
    parser.add_argument("--connections", type=int, default=16, help="wrk -c (default 16)")
    parser.add_argument(
        "--ignore",
        action="store_true",
        help="add a diagnostic variant: the middleware present, the session untouched",
    )
    parser.add_argument("--out", type=Path, help="JSON output (default benches/results/...)")
    parser.add_argument("--check", action="store_true", help="exit 1 when the goal is missed")
    parser.add_argument(
        "--allow-debug", action="store_true", help="run on a debug build (figures meaningless)"
    )
    args = parser.parse_args(argv)
    args.duration = args.duration or (2 if args.quick else 10)
    args.repeats = args.repeats or (1 if args.quick else 2)

    import ferrosession
    from ferrosession import _core

    env = dict(os.environ)
    if h.require_release(args, "uvicorn_wrk"):
        env[ALLOW_DEBUG_ENV] = "1"
    # the servers must import the same ferrosession as this process
    site = str(Path(ferrosession.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([site, *filter(None, [env.get("PYTHONPATH")])])

    progress = h.Progress("uvicorn_wrk")
    try:
        wrk = ensure_wrk()
    except RuntimeError as exc:
        print(str(exc), file=sys.stderr)
        return 3
    cookie = asyncio.run(_new_cookie())
    http = http_impl()
    variants = [*VARIANTS, IGNORE] if args.ignore else list(VARIANTS)
    servers = {name: Server(f"{name}_app", http) for name in variants}
    wrk_args = [
        "wrk", "-t1", f"-c{args.connections}", f"-d{args.duration}s", "--latency",
        "-H", f"Cookie: {cookie}",
    ]  # fmt: skip
    order = variants * args.repeats
    runs: list[dict[str, Any]] = []
    loadavg_start = list(os.getloadavg())
    try:
        for server in servers.values():
            server.start(env)
        sanity(servers, cookie)
        progress.note(
            f"sanity checks passed ({len(cookie)}-byte cookie); uvicorn {http} on ports "
            + ", ".join(f"{k} {s.port}" for k, s in servers.items())
        )
        # a short warm-up of each, not recorded
        for server in servers.values():
            subprocess.run(
                [wrk, "-t1", f"-c{args.connections}", "-d1s", server.url],
                capture_output=True,
                check=False,
            )
        for i, name in enumerate(order, 1):
            progress.note(f"run {i}/{len(order)}: {name} ({args.duration} s)")
            cmd = [wrk, *wrk_args[1:], servers[name].url]
            proc = subprocess.run(
                cmd, capture_output=True, text=True, check=False, timeout=args.duration + 60
            )
            if proc.returncode != 0:
                raise RuntimeError(f"wrk failed: {proc.stderr}")
            r = parse_wrk(proc.stdout)
            if r["non_2xx"] or r["socket_errors"]:
                raise RuntimeError(f"{name}: errors under load:\n{proc.stdout}")
            for s in servers.values():
                if s.proc is None or s.proc.poll() is not None:
                    raise RuntimeError(f"uvicorn {s.factory} died")
            runs.append({"variant": name, **r, "raw": proc.stdout})
    except RuntimeError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    finally:
        for server in servers.values():
            server.stop()

    summary: dict[str, Any] = {}
    for name in variants:
        mine = [r for r in runs if r["variant"] == name]
        summary[name] = {
            "requests_per_s_runs": [r["requests_per_s"] for r in mine],
            "requests_per_s_median": _med([r["requests_per_s"] for r in mine]),
            "latency_ms_median": {
                k: _med([r["latency_ms"][k] for r in mine]) for k in mine[0]["latency_ms"]
            },
        }
    plain = summary["plain"]["requests_per_s_median"]
    read = summary["session"]["requests_per_s_median"]
    for name in variants:
        summary[name]["pct_of_plain"] = summary[name]["requests_per_s_median"] / plain * 100
    # the read run against the plain run of the same repeat
    k = len(variants)
    pairs = [
        runs[i + 1]["requests_per_s"] / runs[i]["requests_per_s"] * 100
        for i in range(0, len(runs), k)
    ]
    summary["read_pct_of_plain"] = read / plain * 100
    summary["pct_min"] = min(pairs)
    summary["pct_max"] = max(pairs)
    summary["goal_pct"] = GOAL * 100
    summary["met"] = read / plain >= GOAL

    result = {
        "benchmark": "uvicorn_wrk",
        "unit": "requests per second; latency in ms",
        "quick": args.quick,
        "environment": h.environment(
            ["ferrosession", "uvicorn", "h11", "httptools"],
            ferrosession_build_profile=_core.build_profile,
            ferrosession_path=str(Path(ferrosession.__file__).parent),
            loadavg_at_end=list(os.getloadavg()),
            loadavg_at_start_of_runs=loadavg_start,
        ),
        "settings": {
            "wrk_args": [*wrk_args[:-1], "Cookie: <signed session, see cookie_bytes>"],
            "wrk_version": wrk_version(wrk),
            "cookie_bytes": len(cookie),
            "variants": variants,
            "order": order,
            "http": http,
            "uvicorn_command": [
                Path(a).name if a == sys.executable else a for a in servers["session"].command
            ],
        },
        "command": [Path(sys.executable).name, *sys.argv],
        "runs": runs,
        "summary": summary,
    }
    h.write_json(args.out, result)
    print(table(result))
    print(f"\nresults: {args.out}", file=sys.stderr)
    if args.check and not summary["met"]:
        return 1
    return 0


if __name__ == "__main__":
    metadata.version("uvicorn")  # fail early, with a clear error, when uvicorn is missing
    sys.exit(main())
