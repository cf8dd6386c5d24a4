"""``ferrosession bench``: run the benchmarks of a source checkout (its benches/ folder)
against the Python peers, then write the README table and chart."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ferrosession import _core
from ferrosession.cli._command import EXIT_OK, EXIT_REJECTED, Command, UsageError, err

BENCHES = (
    "asgi_overhead",
    "configurations",
    "storage_overhead",
    "primitives",
    "compat_overhead",
    "wsgi_overhead",
    "memory",
    "uvicorn_wrk",
)


def _bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="a short smoke run (figures mean little)")
    p.add_argument(
        "--only", choices=BENCHES, action="append", help="run only this benchmark (repeatable)"
    )


def _bench(args: argparse.Namespace) -> int:
    import subprocess

    here = Path.cwd().resolve()
    root = next(
        (d for d in (here, *here.parents) if (d / "benches" / "_harness.py").is_file()), None
    )
    if root is None:
        raise UsageError(
            "run it inside a ferrosession source checkout (the benchmarks and their peers "
            "live in its benches/ folder); there, `make bench` also builds the release snapshot"
        )
    if _core.build_profile != "release":
        raise UsageError(
            "this ferrosession is a debug build: benchmark a release one (`make bench` builds "
            "it, or `maturin develop --release`)"
        )
    for name in args.only or BENCHES:
        cmd = [sys.executable, str(root / "benches" / f"{name}.py")]
        if args.quick:
            cmd.append("--quick")
        err(f"ferrosession bench: {name}")
        done = subprocess.run(cmd, cwd=root, check=False)
        if done.returncode != 0:
            return EXIT_REJECTED
    subprocess.run([sys.executable, str(root / "benches" / "render.py")], cwd=root, check=True)
    return EXIT_OK


COMMAND = Command(
    "bench",
    "run the benchmark suite against the Python peers",
    "Run the in-process benchmarks (benches/ of a source checkout) with a progress "
    "line, then write the README table and chart. Refuses a debug build.",
    _bench_args,
    _bench,
)
