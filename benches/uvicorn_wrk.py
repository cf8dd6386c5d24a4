"""A real server: uvicorn serving a small ASGI app with and without ferrosession, loaded
by ``wrk`` over 127.0.0.1.

    make bench-build && PYTHONPATH=target/bench-site .venv/bin/python benches/uvicorn_wrk.py

Two uvicorn servers (one worker each, ``--loop asyncio``, ``--http httptools`` when it is
installed, else ``h11``, no access log) on free 127.0.0.1 ports serve the same raw ASGI
app: ``plain`` without sessions, ``session`` inside ferrosession's ``SessionMiddleware``
with a signed cookie (``MessageAuthentication``), whose handler reads the session (the
``read`` case). Both get the same request, with the session cookie, from ``wrk -t1 -c16
--latency`` (a second process). Both responses are 2 bytes (``ok``; the session app
answers ``no`` when it could not read the session, which the sanity check refuses).

On a machine of a few shared cores the figure of one long run swings by a third, so:

* both servers are pinned to one CPU and ``wrk`` to another (``os.sched_setaffinity``;
  when at least two CPUs are usable, ``--no-pin`` to turn it off), so they do not take
  turns on the same core; and they run at nice -10 (``--nice``), each in a session of its
  own whose autogroup gets that nice value too (with autogroups, a plain nice value does
  not count against other sessions' processes), so other work on the machine yields;
* after an unrecorded warm-up of each server, ``--pairs`` (default 8) pairs of short
  runs (``--duration``, default 3 s) alternate in ABBA order (plain session, session
  plain, ...), so a slow drift of the machine hits both variants alike;
* the headline is the **median of the per-pair ratios** (the read run's requests/s over
  the plain run's of the same pair), with its quartiles and extremes; the goal (DESIGN.md
  §3) is at least 95 %. The median requests/s of each variant are kept too.

For each run the JSON also keeps the server's CPU time (``/proc/PID/task/*/schedstat``):
its CPU µs per request (less swayed by a neighbour than requests/s, not immune), its
share of the run (below ~90 % the server was not the bottleneck) and the time it
sat runnable but waiting for its CPU (something else ran there), and the busy and
steal shares of both CPUs (``/proc/stat``).

``--ignore`` adds a diagnostic variant: the middleware present, the session untouched;
``--vary`` another: no sessions, but the response carries the ``Vary: Cookie`` header a
session read adds (h11 handles each response header in Python).

``wrk`` is the Debian package; when it is missing this script installs it with
``apt-get install -y wrk``. The servers are always stopped. Results go to
``benches/results/uvicorn_wrk.json`` (``--quick``, 2 pairs of 1 s: ``*.smoke.json``); a
Markdown table to stdout; progress to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
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
from typing import Any, Callable, Optional

import _harness as h

BENCHES = Path(__file__).resolve().parent
GOAL = 0.95
VARIANTS = ("plain", "session")
IGNORE = "ignore"  # diagnostic (--ignore): the middleware present, the session untouched
VARY = "vary"  # diagnostic (--vary): no sessions, with the Vary header a read sends
LABELS = {
    "plain": "no sessions",
    "session": "ferrosession read (signed cookie)",
    IGNORE: "ferrosession, session untouched",
    VARY: "no sessions, plus Vary: Cookie",
}
ALLOW_DEBUG_ENV = "FERROSESSION_BENCH_ALLOW_DEBUG"
# (pairs, seconds per run, seconds of warm-up per server): default, then --quick
DEFAULTS = (8, 3, 2)
QUICK = (2, 1, 1)
HASH_SEED = "0"  # the same str/bytes hashing in both servers


Cart, CART = h.Cart, h.CART
START: dict[str, Any] = {
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

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return  # lifespan
        await send({**START, "headers": list(START["headers"])})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def vary_app() -> Any:
    """The app without sessions, whose response also carries the ``Vary: Cookie`` a
    session read adds (what that one header costs the server, h11 included)."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({**START, "headers": [*START["headers"], (b"vary", b"Cookie")]})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def session_app() -> Any:
    """The same app inside ``SessionMiddleware``; its handler reads the session."""
    import ferrosession as fs

    _refuse_debug()
    get_sessions = fs.get_sessions

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        cart = get_sessions(scope).get(Cart)
        await send({**START, "headers": list(START["headers"])})
        await send({"type": "http.response.body", "body": b"ok" if cart == CART else b"no"})

    return fs.SessionMiddleware(app, h.fs_signed())


def ignore_app() -> Any:
    """The middleware around the plain app: the cookie is sent, the session never read."""
    import ferrosession as fs

    _refuse_debug()
    return fs.SessionMiddleware(plain_app(), h.fs_signed())


async def _new_cookie() -> str:
    """``name=value`` of a real Set-Cookie from the session middleware (a ``new`` case)."""
    import ferrosession as fs

    async def handler(scope: Any, receive: Any, send: Any) -> None:
        fs.get_sessions(scope).set(CART)
        await send({**START, "headers": list(START["headers"])})
        await send({"type": "http.response.body", "body": b"ok"})

    reply = await h.asgi_call(fs.SessionMiddleware(handler, h.fs_signed()), h.asgi_scope())
    if len(reply.set_cookies) != 1:
        raise RuntimeError(f"expected one Set-Cookie, got {reply.set_cookies!r}")
    return h.cookie_pair(reply.set_cookies[0])


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
    total = re.search(r"(\d+) requests in ([\d.]+\w+),", out)
    result["requests"] = int(total.group(1)) if total else None
    result["duration_s"] = _ms(total.group(2)) / 1e3 if total else None
    errors = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["socket_errors"] = errors.group(1).strip() if errors else None
    result["non_2xx"] = int(non2xx.group(1)) if non2xx else 0
    return result


# -- CPUs ------------------------------------------------------------------------------------
def plan_cpus(pin: bool) -> Optional[tuple[int, int]]:
    """``(server CPU, wrk CPU)``: the first two usable CPUs, or None (no pinning) when
    pinning is off, unsupported or fewer than two CPUs are usable."""
    if not pin or not hasattr(os, "sched_setaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else None


def child_setup(cpu: Optional[int], nice: int = 0) -> Optional[Callable[[], None]]:
    """A ``preexec_fn`` that pins the child to ``cpu`` (None: no pinning) and gives it
    the nice value ``nice`` (0: left alone). With the kernel's autogroups on, a nice
    value only weighs against the same session's processes, so the child then starts a
    session of its own and that session's autogroup gets ``nice`` too. A negative value
    needs root or CAP_SYS_NICE: without, it is skipped (``Server.placement`` tells)."""
    if cpu is None and not nice:
        return None

    def setup() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        if nice:
            os.setsid()
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, 0, nice)
            with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as f:
                f.write(str(nice))

    return setup


def autogroup(pid: int) -> Optional[str]:
    """``/proc/PID/autogroup`` (``/autogroup-N nice V``), None without autogroups."""
    try:
        return Path(f"/proc/{pid}/autogroup").read_text().strip()
    except OSError:
        return None


def task_times_ns(pid: int) -> tuple[int, int]:
    """CPU time and run-queue wait (ns) of all the threads of ``pid`` so far."""
    run = wait = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "schedstat").read_text().split()
        except OSError:  # a thread that just ended
            continue
        run += int(fields[0])
        wait += int(fields[1])
    return run, wait


def cpu_ticks() -> dict[int, list[int]]:
    """``/proc/stat``'s per-CPU counters: user nice system idle iowait irq softirq steal."""
    out: dict[int, list[int]] = {}
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        m = re.match(r"cpu(\d+)\s+(.*)", line)
        if m:
            out[int(m.group(1))] = [int(x) for x in m.group(2).split()[:8]]
    return out


def cpu_shares(before: dict[int, list[int]], after: dict[int, list[int]]) -> dict[str, Any]:
    """Busy (user nice system irq softirq) and steal shares (%) of each CPU between two
    :func:`cpu_ticks`."""
    shares: dict[str, Any] = {}
    for cpu, end in after.items():
        d = [b - a for a, b in zip(before.get(cpu, end), end, strict=True)]
        total = sum(d)
        if total <= 0 or len(d) < 8:
            continue
        busy = d[0] + d[1] + d[2] + d[5] + d[6]
        shares[str(cpu)] = {"busy_pct": busy / total * 100, "steal_pct": d[7] / total * 100}
    return shares


# -- servers ---------------------------------------------------------------------------------
def http_impl() -> str:
    return "httptools" if importlib.util.find_spec("httptools") else "h11"


class Server:
    """``uvicorn`` in a subprocess on a free 127.0.0.1 port; ``stop()`` ends it."""

    def __init__(self, factory: str, http: str, setup: Optional[Callable[[], None]] = None) -> None:
        self.factory = factory
        self.http = http
        self.setup = setup
        self.port = 0
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.command: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self, env: dict[str, str]) -> Server:
        for _ in range(3):
            self.port = h.free_port()
            self.command = [
                sys.executable, "-m", "uvicorn", "--factory", f"uvicorn_wrk:{self.factory}",
                "--app-dir", str(BENCHES),
                "--host", "127.0.0.1", "--port", str(self.port),
                "--workers", "1", "--loop", "asyncio", "--http", self.http,
                "--no-access-log", "--log-level", "warning", "--lifespan", "off",
            ]  # fmt: skip
            self.proc = subprocess.Popen(
                self.command,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                preexec_fn=self.setup,
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

    @property
    def pid(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"uvicorn {self.factory} is not running")
        return self.proc.pid

    def placement(self) -> dict[str, Any]:
        """The CPUs the server may run on and its nice value, as the kernel has them."""
        return {
            "cpus": sorted(os.sched_getaffinity(self.pid)),
            "nice": os.getpriority(os.PRIO_PROCESS, self.pid),
            "autogroup": autogroup(self.pid),
        }

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        h.stop_process(proc)
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


# -- the runs ------------------------------------------------------------------------------
def schedule(variants: list[str], pairs: int) -> list[list[str]]:
    """ABBA: the variants in order in even pairs, reversed in odd ones."""
    return [list(variants) if i % 2 == 0 else variants[::-1] for i in range(pairs)]


def run_wrk(
    wrk: str,
    args: list[str],
    server: Server,
    setup: Optional[Callable[[], None]],
    timeout: float,
) -> dict[str, Any]:
    """One recorded wrk run against ``server``: wrk's figures plus the server's CPU time
    and the CPUs' busy and steal shares over the run."""
    pid = server.pid
    ticks0 = cpu_ticks()
    run0, wait0 = task_times_ns(pid)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [wrk, *args, server.url],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        preexec_fn=setup,
    )
    wall = time.perf_counter() - t0
    run1, wait1 = task_times_ns(pid)
    ticks1 = cpu_ticks()
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed: {proc.stderr}")
    r = parse_wrk(proc.stdout)
    if r["non_2xx"] or r["socket_errors"]:
        raise RuntimeError(f"{server.factory}: errors under load:\n{proc.stdout}")
    cpu_ns, wait_ns = run1 - run0, wait1 - wait0
    load_s = r["duration_s"] or wall
    r["server"] = {
        "cpu_s": cpu_ns / 1e9,
        "cpu_us_per_request": cpu_ns / 1e3 / r["requests"] if r["requests"] else None,
        # shares of the load time wrk reports (not of its process start and exit)
        "cpu_pct_of_load": cpu_ns / 1e9 / load_s * 100,
        "runqueue_wait_pct_of_load": wait_ns / 1e9 / load_s * 100,
    }
    r["wall_s"] = wall
    r["cpus"] = cpu_shares(ticks0, ticks1)
    r["raw"] = proc.stdout
    return r


def spread(values: list[float]) -> dict[str, float]:
    q = h.quantiles(values)
    return {k: q[k] for k in ("median", "p25", "p75", "min", "max")}


def summarize(runs: list[dict[str, Any]], variants: list[str]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for name in variants:
        mine = [r for r in runs if r["variant"] == name]
        cpu = [r["server"]["cpu_us_per_request"] for r in mine]
        summary[name] = {
            "requests_per_s_runs": [r["requests_per_s"] for r in mine],
            "requests_per_s_median": statistics.median(r["requests_per_s"] for r in mine),
            "requests_per_s_spread": spread([r["requests_per_s"] for r in mine]),
            "latency_ms_median": {
                k: statistics.median(r["latency_ms"][k] for r in mine)
                for k in mine[0]["latency_ms"]
            },
            "server_cpu_us_per_request_median": statistics.median(cpu),
            "server_cpu_pct_of_load_median": statistics.median(
                r["server"]["cpu_pct_of_load"] for r in mine
            ),
            "server_runqueue_wait_pct_median": statistics.median(
                r["server"]["runqueue_wait_pct_of_load"] for r in mine
            ),
        }
    by_pair: dict[int, dict[str, dict[str, Any]]] = {}
    for r in runs:
        by_pair.setdefault(r["pair"], {})[r["variant"]] = r
    plain = summary["plain"]
    plain["pct_of_plain"] = 100.0
    for name in variants[1:]:
        pct = [
            p[name]["requests_per_s"] / p["plain"]["requests_per_s"] * 100 for p in by_pair.values()
        ]
        extra_cpu = [
            p[name]["server"]["cpu_us_per_request"] - p["plain"]["server"]["cpu_us_per_request"]
            for p in by_pair.values()
        ]
        s = summary[name]
        s["pct_of_plain_pairs"] = pct
        s["pct_of_plain"] = statistics.median(pct)
        s["pct_of_plain_spread"] = spread(pct)
        s["pct_of_plain_from_medians"] = (
            s["requests_per_s_median"] / plain["requests_per_s_median"] * 100
        )
        s["server_cpu_us_per_request_over_plain_pairs"] = extra_cpu
        s["server_cpu_us_per_request_over_plain"] = statistics.median(extra_cpu)
        # what the throughput ratio would be if the server alone set the pace
        s["pct_of_plain_by_server_cpu"] = statistics.median(
            p["plain"]["server"]["cpu_us_per_request"]
            / p[name]["server"]["cpu_us_per_request"]
            * 100
            for p in by_pair.values()
        )
    read = summary["session"]
    summary["pairs"] = len(by_pair)
    summary["read_pct_of_plain"] = read["pct_of_plain"]  # the headline: median pair ratio
    summary["read_pct_of_plain_from_medians"] = read["pct_of_plain_from_medians"]
    for k in ("min", "p25", "p75", "max"):
        summary[f"pct_{k}"] = read["pct_of_plain_spread"][k]
    summary["read_server_cpu_us_per_request_over_plain"] = read[
        "server_cpu_us_per_request_over_plain"
    ]
    summary["read_pct_of_plain_by_server_cpu"] = read["pct_of_plain_by_server_cpu"]
    summary["goal_pct"] = GOAL * 100
    summary["met"] = read["pct_of_plain"] >= GOAL * 100
    summary["warnings"] = warnings(summary, variants)
    return summary


def warnings(summary: dict[str, Any], variants: list[str]) -> list[str]:
    """What makes a figure less trustworthy: a server that was not saturated, or that
    waited for its CPU."""
    out = []
    for name in variants:
        s = summary[name]
        if s["server_cpu_pct_of_load_median"] < 90:
            out.append(
                f"{name}: the server used {s['server_cpu_pct_of_load_median']:.0f} % of a "
                "CPU (median): it was not the bottleneck, so requests/s measure something else"
            )
        if s["server_runqueue_wait_pct_median"] > 5:
            out.append(
                f"{name}: the server waited {s['server_runqueue_wait_pct_median']:.0f} % of "
                "the time for its CPU (median): something else ran on it"
            )
    return out


# -- main ------------------------------------------------------------------------------------
def table(result: dict[str, Any]) -> str:
    s = result["summary"]
    rows = []
    for name in result["settings"]["variants"]:
        v = s[name]
        lat = v["latency_ms_median"]
        rps = v["requests_per_s_spread"]
        if name == "plain":
            pct = "100 %"
        else:
            sp = v["pct_of_plain_spread"]
            pct = f"{v['pct_of_plain']:.1f} % ({sp['p25']:.1f} to {sp['p75']:.1f})"
        rows.append(
            [
                LABELS[name],
                f"{v['requests_per_s_median']:,.0f}",
                f"{rps['min']:,.0f} to {rps['max']:,.0f}",
                f"{lat.get('p50', float('nan')):.2f}",
                f"{lat.get('p99', float('nan')):.2f}",
                f"{v['server_cpu_us_per_request_median']:.1f}",
                f"{v['server_cpu_pct_of_load_median']:.0f} %",
                pct,
            ]
        )
    header = ["variant", "req/s median", "req/s min to max", "p50 ms", "p99 ms"]
    header += ["server CPU µs/req", "server CPU use", "% of no-session (p25 to p75)"]
    st = result["settings"]
    env = result["environment"]
    pin = st["pinning"]
    where = (
        f"uvicorn pinned to CPU {pin['server_cpu']}, wrk to CPU {pin['wrk_cpu']}"
        if pin["enabled"]
        else f"not pinned ({pin['why_not']})"
    )
    nices = {p["nice"] for p in st["servers_as_started"].values()}
    if nices != {0}:
        where += f", nice {', '.join(str(n) for n in sorted(nices))}"
    foot = (
        f"\nGoal: read ≥ {GOAL:.0%} of the no-session throughput: "
        f"{s['read_pct_of_plain']:.1f} %, the median of {s['pairs']} per-pair ratios "
        f"(p25 {s['pct_p25']:.1f}, p75 {s['pct_p75']:.1f}, min {s['pct_min']:.1f}, max "
        f"{s['pct_max']:.1f} %; {s['read_pct_of_plain_from_medians']:.1f} % from the medians "
        f"of the runs) → {'met' if s['met'] else '**not met**'}. The read case costs the "
        f"server {s['read_server_cpu_us_per_request_over_plain']:+.1f} µs of CPU per "
        f"request (median over pairs; {s['read_pct_of_plain_by_server_cpu']:.1f} % from the "
        "server's CPU time per request alone).\n"
        f"`{' '.join(st['wrk_args'])}`, {s['pairs']} ABBA pairs after a "
        f"{st['warmup_s']} s warm-up, {where}; uvicorn "
        f"{env['packages']['uvicorn']} (1 worker, asyncio, {st['http']}), wrk "
        f"{st['wrk_version']}, ferrosession {env['packages']['ferrosession']} "
        f"({env['ferrosession_build_profile']}), Python {env['python']}, {env['nproc']} CPU(s)."
    )
    for w in s["warnings"]:
        foot += f"\nWarning: {w}."
    return h.markdown_table(header, rows) + "\n" + foot


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help=f"a smoke run ({QUICK[0]} pairs of {QUICK[1]} s)"
    )
    parser.add_argument("--duration", type=int, help=f"seconds per wrk run (default {DEFAULTS[1]})")
    parser.add_argument(
        "--pairs",
        "--repeats",
        dest="pairs",
        type=int,
        help=f"plain/read pairs of runs, in ABBA order (default {DEFAULTS[0]})",
    )
    parser.add_argument(
        "--warmup", type=int, help=f"unrecorded seconds per server first (default {DEFAULTS[2]})"
    )
    parser.add_argument("--connections", type=int, default=16, help="wrk -c (default 16)")
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="do not pin the servers and wrk to separate CPUs",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=-10,
        help="nice value of the servers and wrk (default -10, when permitted; 0: unchanged)",
    )
    parser.add_argument(
        "--ignore",
        action="store_true",
        help="add a diagnostic variant: the middleware present, the session untouched",
    )
    parser.add_argument(
        "--vary",
        action="store_true",
        help="add a diagnostic variant: no sessions, with the Vary: Cookie a read sends",
    )
    parser.add_argument("--out", type=Path, help="JSON output (default benches/results/...)")
    parser.add_argument("--check", action="store_true", help="exit 1 when the goal is missed")
    parser.add_argument(
        "--allow-debug", action="store_true", help="run on a debug build (figures meaningless)"
    )
    args = parser.parse_args(argv)
    pairs, duration, warmup = QUICK if args.quick else DEFAULTS
    args.pairs = args.pairs or pairs
    args.duration = args.duration or duration
    args.warmup = warmup if args.warmup is None else args.warmup

    import ferrosession

    env = dict(os.environ)
    if h.require_release(args, "uvicorn_wrk"):
        env[ALLOW_DEBUG_ENV] = "1"
    # the servers must import the same ferrosession as this process
    site = str(Path(ferrosession.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([site, *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONHASHSEED"] = HASH_SEED

    progress = h.Progress("uvicorn_wrk")
    try:
        wrk = ensure_wrk()
    except RuntimeError as exc:
        print(str(exc), file=sys.stderr)
        return 3
    cookie = asyncio.run(_new_cookie())
    http = http_impl()
    cpus = plan_cpus(args.pin)
    server_cpu, wrk_cpu = cpus if cpus else (None, None)
    variants = [*VARIANTS, *([IGNORE] if args.ignore else []), *([VARY] if args.vary else [])]
    server_setup = child_setup(server_cpu, args.nice)
    wrk_setup = child_setup(wrk_cpu, args.nice)
    servers = {name: Server(f"{name}_app", http, server_setup) for name in variants}
    wrk_args = [
        "-t1", f"-c{args.connections}", f"-d{args.duration}s", "--latency",
        "-H", f"Cookie: {cookie}",
    ]  # fmt: skip
    blocks = schedule(variants, args.pairs)
    runs: list[dict[str, Any]] = []
    placement: dict[str, dict[str, Any]] = {}
    own_affinity = os.sched_getaffinity(0) if cpus else None
    loadavg_start = list(os.getloadavg())
    try:
        for server in servers.values():
            server.start(env)
            placement[server.factory] = server.placement()
        if wrk_cpu is not None:
            os.sched_setaffinity(0, {wrk_cpu})  # this script stays off the servers' CPU
        sanity(servers, cookie)
        progress.note(
            f"sanity checks passed ({len(cookie)}-byte cookie); uvicorn {http} on ports "
            + ", ".join(f"{k} {s.port}" for k, s in servers.items())
            + (f"; servers on CPU {server_cpu}, wrk on CPU {wrk_cpu}" if cpus else "; no pinning")
        )
        for server in servers.values():  # warm-up, not recorded
            if args.warmup > 0:
                warm = ["-t1", f"-c{args.connections}", f"-d{args.warmup}s", server.url]
                subprocess.run([wrk, *warm], capture_output=True, check=False, preexec_fn=wrk_setup)
        total = args.pairs * len(variants)
        for pair, block in enumerate(blocks):
            for name in block:
                r = run_wrk(wrk, wrk_args, servers[name], wrk_setup, args.duration + 60)
                for s in servers.values():
                    if s.proc is None or s.proc.poll() is not None:
                        raise RuntimeError(f"uvicorn {s.factory} died")
                runs.append({"variant": name, "pair": pair, **r})
                progress.note(
                    f"run {len(runs)}/{total}, pair {pair + 1}: {name} "
                    f"{r['requests_per_s']:,.0f} req/s, server "
                    f"{r['server']['cpu_us_per_request']:.1f} µs CPU/req, "
                    f"{r['server']['cpu_pct_of_load']:.0f} % busy"
                )
    except RuntimeError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    finally:
        for server in servers.values():
            server.stop()
        if own_affinity is not None:
            os.sched_setaffinity(0, own_affinity)

    summary = summarize(runs, variants)
    result = h.result(
        "uvicorn_wrk",
        args,
        unit="requests per second; latency in ms; server CPU in µs per request",
        packages=["uvicorn", "h11", "httptools"],
        environment_extra={"loadavg_at_start_of_runs": loadavg_start},
        settings={
            "wrk_args": ["wrk", *wrk_args[:-1], "Cookie: <signed session, see cookie_bytes>"],
            "wrk_version": wrk_version(wrk),
            "cookie_bytes": len(cookie),
            "variants": variants,
            "pairs": args.pairs,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "order": [name for block in blocks for name in block],
            "pinning": {
                "enabled": cpus is not None,
                "server_cpu": server_cpu,
                "wrk_cpu": wrk_cpu,
                "why_not": None
                if cpus
                else ("--no-pin" if not args.pin else "fewer than 2 usable CPUs"),
                "how": "os.sched_setaffinity in each child's preexec_fn",
            },
            "nice_requested": args.nice,
            "servers_as_started": placement,
            "python_hash_seed": HASH_SEED,
            "http": http,
            "uvicorn_command": [
                Path(a).name if a == sys.executable else a for a in servers["session"].command
            ],
        },
        runs=runs,
        summary=summary,
    )
    h.write_json(args.out, result)
    print(table(result))
    for w in summary["warnings"]:
        print(f"[uvicorn_wrk] warning: {w}", file=sys.stderr)
    print(f"\nresults: {args.out}", file=sys.stderr)
    if args.check and not summary["met"]:
        return 1
    return 0


if __name__ == "__main__":
    metadata.version("uvicorn")  # fail early, with a clear error, when uvicorn is missing
    sys.exit(main())
