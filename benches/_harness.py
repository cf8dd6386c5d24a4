"""Shared machinery of the in-process benchmarks (ASGI and WSGI).

The model: a *variant* is one configuration under test (an app, its request, its
middleware) that knows how to run a *batch* of ``n`` calls and return the elapsed
nanoseconds. :func:`measure` calibrates ``n`` per variant so that a batch lasts about
``batch_ms``, then runs *rounds* until the time budget is spent: every round runs one
batch of every variant, in a freshly shuffled order, so slow drifts of a shared, noisy
machine hit every variant alike. The figure of a variant is the median of its per-call
batch times; a paired figure (variant minus baseline *in the same round*) gives the
spread of an overhead.

Batches may be plain callables (WSGI) or coroutine functions (ASGI); ASGI variants are
all awaited inside the one event loop that runs :func:`measure`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import inspect
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional, Sequence, Union

__all__ = [
    "ASGI_RECEIVE",
    "Progress",
    "ServerRequest",
    "Variant",
    "WSGIResponse",
    "asgi_batch",
    "asgi_call",
    "asgi_discard",
    "asgi_scope",
    "environment",
    "markdown_table",
    "measure",
    "overhead",
    "paired",
    "quantiles",
    "ratio_spread",
    "response_headers",
    "set_cookies",
    "write_json",
    "wsgi_batch",
    "wsgi_call",
    "wsgi_environ",
]

BatchFn = Callable[[int], Union[int, Awaitable[int]]]

RESULTS_DIR = Path(__file__).resolve().parent / "results"


# -- statistics -----------------------------------------------------------------------
def quantiles(samples: list[float]) -> dict[str, float]:
    """Median, quartiles and extremes of ``samples`` (per-call times in µs)."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    if len(ordered) >= 2:
        q1, q2, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1 = q2 = q3 = ordered[0]
    return {
        "median": q2,
        "p25": q1,
        "p75": q3,
        "iqr": q3 - q1,
        "min": ordered[0],
        "max": ordered[-1],
        "n": float(len(ordered)),
    }


def paired(a: list[float], b: list[float]) -> list[float]:
    """Round-by-round differences ``a[i] - b[i]`` (both measured in the same rounds)."""
    return [x - y for x, y in zip(a, b, strict=True)]


def overhead(samples: list[float], bare: list[float]) -> dict[str, Any]:
    """The figures of a variant against its baseline (both measured in the same rounds):
    its per-call quantiles, ``overhead_us`` = median minus the baseline's median, and the
    quartiles of the per-round paired difference."""
    q = quantiles(samples)
    pq = quantiles(paired(samples, bare))
    return {
        "per_call_us": q,
        "overhead_us": q["median"] - quantiles(bare)["median"],
        "overhead_paired_us": {k: pq[k] for k in ("median", "p25", "p75", "iqr")},
    }


def ratio_spread(num: list[float], den: list[float]) -> dict[str, float]:
    """Quartiles of the per-round ratios ``num[i] / den[i]`` (rounds with ``den <= 0``
    left out): the spread of a ratio of two paired figures."""
    ratios = [a / b for a, b in zip(num, den, strict=True) if b > 0]
    if not ratios:
        return {"p25": float("nan"), "median": float("nan"), "p75": float("nan")}
    q = quantiles(ratios)
    return {"p25": q["p25"], "median": q["median"], "p75": q["p75"]}


# -- variants and the measuring loop ----------------------------------------------------
@dataclasses.dataclass
class Variant:
    """One configuration under test.

    Attributes:
        key: a unique, stable name such as ``"read/ferrosession"`` (used in the JSON).
        batch: runs ``n`` calls and returns the elapsed ns (plain or ``async def``).
        n: calls per batch; 0 = calibrate.
        samples: per-call µs of every batch, one per round.
    """

    key: str
    batch: BatchFn
    n: int = 0
    samples: list[float] = dataclasses.field(default_factory=list)


async def _run(v: Variant, n: int) -> int:
    result = v.batch(n)
    if inspect.isawaitable(result):
        result = await result
    return int(result)  # type: ignore[arg-type]


async def measure(
    variants: list[Variant],
    *,
    budget_s: float,
    batch_ms: float = 4.0,
    min_rounds: int = 20,
    warmup_rounds: int = 3,
    progress: Optional[Progress] = None,
    seed: int = 12345,
) -> int:
    """Calibrates and runs interleaved rounds until ``budget_s`` is spent.

    Returns the number of measured rounds (each variant has that many samples).
    """
    target_ns = batch_ms * 1e6
    for v in variants:
        if v.n:
            continue
        n = 1
        while True:
            elapsed = await _run(v, n)
            if elapsed >= target_ns / 4 or n >= 1 << 22:
                break
            n *= 2
        # the fastest of a few batches: a neighbour's burst must not shrink the batch size
        elapsed = min([elapsed] + [await _run(v, n) for _ in range(4)])
        v.n = max(1, round(n * target_ns / max(elapsed, 1)))
    rng = random.Random(seed)
    order = list(variants)
    for _ in range(warmup_rounds):
        for v in order:
            await _run(v, v.n)
    gc.collect()
    rounds = 0
    start = time.monotonic()
    deadline = start + budget_s
    while rounds < min_rounds or time.monotonic() < deadline:
        rng.shuffle(order)
        for v in order:
            v.samples.append(await _run(v, v.n) / v.n / 1000.0)
        rounds += 1
        if progress is not None:
            progress.update(rounds, time.monotonic() - start, budget_s, variants)
    if progress is not None:
        progress.done(rounds, time.monotonic() - start)
    return rounds


class Progress:
    """A progress line on stderr: rewritten in place on a terminal, every few seconds
    otherwise (logs stay readable)."""

    def __init__(self, label: str, *, every_s: float = 5.0) -> None:
        self.label = label
        self.tty = sys.stderr.isatty()
        self.every_s = 0.25 if self.tty else every_s
        self._last = 0.0

    def note(self, text: str) -> None:
        self._clear()
        print(f"[{self.label}] {text}", file=sys.stderr, flush=True)

    def update(self, rounds: int, elapsed: float, budget: float, variants: list[Variant]) -> None:
        now = time.monotonic()
        if now - self._last < self.every_s:
            return
        self._last = now
        pct = min(100.0, 100.0 * elapsed / budget) if budget > 0 else 100.0
        calls = sum(v.n for v in variants) * rounds
        line = (
            f"[{self.label}] round {rounds}, {elapsed:5.1f}/{budget:.0f} s ({pct:3.0f} %), "
            f"{calls:,} calls"
        )
        if self.tty:
            sys.stderr.write("\r\x1b[2K" + line)
            sys.stderr.flush()
        else:
            print(line, file=sys.stderr, flush=True)

    def done(self, rounds: int, elapsed: float) -> None:
        self._clear()
        print(f"[{self.label}] {rounds} rounds in {elapsed:.1f} s", file=sys.stderr, flush=True)

    def _clear(self) -> None:
        if self.tty:
            sys.stderr.write("\r\x1b[2K")


# -- ASGI helpers -----------------------------------------------------------------------
ASGI_RECEIVE: dict[str, Any] = {"type": "http.request", "body": b"", "more_body": False}


async def asgi_receive() -> dict[str, Any]:
    """A ``receive`` that hands out one empty request body (every time it is asked)."""
    return ASGI_RECEIVE


async def asgi_discard(message: Any) -> None:
    """A ``send`` that drops every message."""


def asgi_scope(
    path: str = "/", *, headers: Optional[list[tuple[bytes, bytes]]] = None, method: str = "GET"
) -> dict[str, Any]:
    """An HTTP scope as uvicorn builds it for a plain request over HTTP/1.1."""
    base = [
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", b"bench/1.0"),
        (b"accept", b"*/*"),
    ]
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": method,
        "root_path": "",
        "path": path,
        "raw_path": path.encode("latin-1"),
        "query_string": b"",
        "headers": base + list(headers or ()),
        "state": {},
    }


class ServerRequest:
    """What a server's per-request object is to the app (uvicorn's
    ``RequestResponseCycle``): it holds the scope, and the app's ``send`` is its method.
    So a middleware that keeps ``send`` where the scope reaches it makes a reference
    cycle per request, and the cycle collector's cost shows in its figures, as it does
    in a real server."""

    __slots__ = ("scope",)

    def __init__(self, scope: dict[str, Any]) -> None:
        self.scope = scope

    async def send(self, message: Any) -> None:
        """Drops every message."""


def asgi_batch(app: Any, scope: dict[str, Any]) -> Callable[[int], Awaitable[int]]:
    """A batch function that awaits ``app`` ``n`` times, each on a shallow copy of
    ``scope`` (a server builds a fresh scope per request; middleware write into it)
    with the ``send`` of a fresh :class:`ServerRequest`. The copy, the request object
    and the loop cost the same for every variant, so they cancel in an overhead."""
    receive = asgi_receive
    clock = time.perf_counter_ns

    async def batch(n: int) -> int:
        t0 = clock()
        for _ in range(n):
            request_scope = scope.copy()
            await app(request_scope, receive, ServerRequest(request_scope).send)
        return clock() - t0

    return batch


async def asgi_call(app: Any, scope: dict[str, Any]) -> list[dict[str, Any]]:
    """Runs one request and returns every message the app sent (for sanity checks)."""
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    await app(scope.copy(), asgi_receive, send)
    return sent


def response_headers(messages: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    """The headers of the ``http.response.start`` among ``messages``."""
    for m in messages:
        if m["type"] == "http.response.start":
            return list(m.get("headers") or ())
    raise AssertionError("the app sent no http.response.start")


def set_cookies(headers: Any) -> list[str]:
    """The ``Set-Cookie`` values among ``headers`` (ASGI bytes pairs or WSGI str pairs)."""
    out = []
    for k, v in headers:
        name = k.decode("latin-1") if isinstance(k, bytes) else k
        if name.lower() == "set-cookie":
            out.append(v.decode("latin-1") if isinstance(v, bytes) else v)
    return out


# -- WSGI helpers -----------------------------------------------------------------------
def wsgi_environ(
    path: str = "/", *, headers: Optional[list[tuple[str, str]]] = None, method: str = "GET"
) -> dict[str, Any]:
    """A WSGI environ as a server (gunicorn, waitress) builds it for a plain HTTP/1.1
    request: ``headers`` are ``(name, value)`` pairs, turned into ``HTTP_*`` keys."""
    import io

    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "50000",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": "bench/1.0",
        "HTTP_ACCEPT": "*/*",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in headers or ():
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        environ[key] = value
    return environ


def wsgi_batch(app: Any, environ: dict[str, Any]) -> Callable[[int], int]:
    """A batch function that calls ``app`` ``n`` times, each on a shallow copy of
    ``environ`` (a server builds one per request) with a ``start_response`` that records
    the status and headers; the response iterable is drained and closed as a server
    does."""
    clock = time.perf_counter_ns
    last: list[Any] = [None, None]

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        last[0] = status
        last[1] = headers
        return None

    def batch(n: int) -> int:
        t0 = clock()
        for _ in range(n):
            body = app(environ.copy(), start_response)
            for _chunk in body:
                pass
            close = getattr(body, "close", None)
            if close is not None:
                close()
        return clock() - t0

    return batch


@dataclasses.dataclass
class WSGIResponse:
    """What one WSGI request produced (see :func:`wsgi_call`)."""

    status: str
    headers: list[tuple[str, str]]
    body: bytes
    environ: dict[str, Any]  # the copy of the environ the app was called with


def wsgi_call(app: Any, environ: dict[str, Any]) -> WSGIResponse:
    """Runs one request on a shallow copy of ``environ`` (for sanity checks): the status,
    headers and body it produced, and the environ the app saw (handlers may leave what
    they read in it)."""
    got: list[Any] = ["", []]

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        got[0] = status
        got[1] = list(headers)
        return None

    seen = environ.copy()
    body = app(seen, start_response)
    try:
        data = b"".join(body)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return WSGIResponse(got[0], got[1], data, seen)


# -- environment and output -------------------------------------------------------------
def _version(dist: str) -> Optional[str]:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> Optional[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _git_revision() -> Optional[str]:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment(packages: list[str], **extra: Any) -> dict[str, Any]:
    """What a reader needs to trust (or reproduce) a figure."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 0
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "nproc": usable,
        "cpu_count": os.cpu_count(),
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "git": _git_revision(),
        "packages": {name: _version(name) for name in packages},
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **extra,
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table with right-aligned columns after the first."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        out = []
        for i, c in enumerate(cells):
            out.append(str(c).ljust(widths[i]) if i == 0 else str(c).rjust(widths[i]))
        return "| " + " | ".join(out) + " |"

    sep = ["-" * (widths[0] + 2)] + ["-" * (w + 1) + ":" for w in widths[1:]]
    rows_text = [line(r) for r in rows]
    return "\n".join([line(header), "|" + "|".join(sep) + "|", *rows_text])


# -- the command line every benchmark script shares ----------------------------------------
def add_timing_args(
    parser: argparse.ArgumentParser, *, budget: float, quick_budget: float, batch_ms: float
) -> None:
    """``--quick``, ``--budget``, ``--batch-ms`` and ``--min-rounds`` (defaults filled in
    by :func:`timing_defaults`)."""
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument(
        "--budget",
        type=float,
        help=f"seconds of measuring (default {budget:g}; quick {quick_budget:g})",
    )
    parser.add_argument(
        "--batch-ms", type=float, help=f"target ms per batch (default {batch_ms:g}; quick 2)"
    )
    parser.add_argument("--min-rounds", type=int, default=None, help="at least this many rounds")


def timing_defaults(
    args: argparse.Namespace,
    *,
    budget: float,
    quick_budget: float,
    batch_ms: float,
    min_rounds: int = 50,
    quick_min_rounds: int = 10,
) -> None:
    """Fills the timing arguments the command line left out."""
    if args.budget is None:
        args.budget = quick_budget if args.quick else budget
    if args.batch_ms is None:
        args.batch_ms = 2.0 if args.quick else batch_ms
    if args.min_rounds is None:
        args.min_rounds = quick_min_rounds if args.quick else min_rounds


def add_output_args(parser: argparse.ArgumentParser) -> None:
    """``--out``, ``--check`` and ``--allow-debug``."""
    parser.add_argument("--out", type=Path, help="JSON output (default benches/results/...)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    parser.add_argument(
        "--allow-debug", action="store_true", help="run on a debug build (figures meaningless)"
    )


def comma_list(
    parser: argparse.ArgumentParser, text: str, known: Sequence[str], what: str
) -> list[str]:
    """The items of a comma-separated option, each one of ``known``."""
    items = [part.strip() for part in text.split(",") if part.strip()]
    unknown = set(items) - set(known)
    if unknown:
        parser.error(f"unknown {what}(s): {', '.join(sorted(unknown))}")
    return items


def require_release(args: argparse.Namespace, name: str) -> bool:
    """Refuses a debug build of ferrosession (unless ``--allow-debug``) and sets
    ``args.out`` (quick and debug runs write ``NAME.smoke.json``). True for a debug build."""
    from ferrosession import _core

    debug = _core.build_profile != "release"
    if debug:
        if not args.allow_debug:
            sys.exit(
                "this is a debug build of ferrosession: `make bench-build`, then run with "
                "PYTHONPATH=target/bench-site"
            )
        print("WARNING: debug build: these figures mean nothing", file=sys.stderr)
    if args.out is None:
        suffix = ".smoke" if args.quick or debug else ""
        args.out = RESULTS_DIR / f"{name}{suffix}.json"
    return debug


def run_and_report(
    name: str,
    args: argparse.Namespace,
    run: Callable[[argparse.Namespace, Progress], Awaitable[dict[str, Any]]],
    table: Callable[[dict[str, Any]], str],
    met: Callable[[dict[str, Any]], bool],
    sanity_error: type[Exception],
) -> int:
    """Runs a benchmark, writes its JSON and prints its table: 2 when a sanity check
    failed (nothing timed), 1 with ``--check`` when a goal is missed, else 0."""
    progress = Progress(name)
    try:
        result = asyncio.run(run(args, progress))
    except sanity_error as exc:
        print(f"sanity check failed, nothing timed: {exc}", file=sys.stderr)
        return 2
    write_json(args.out, result)
    print(table(result))
    print(f"\nresults: {args.out}", file=sys.stderr)
    if args.check and not met(result):
        return 1
    return 0
