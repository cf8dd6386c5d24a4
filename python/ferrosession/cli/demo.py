"""``ferrosession demo``: serve the demo shop (the demo extra)."""

from __future__ import annotations

import argparse

from ferrosession.cli._command import Command


def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (8000)")
    p.add_argument("--dir", default=".sessions", help="where sessions live (./.sessions)")


def _demo(args: argparse.Namespace) -> int:
    from ferrosession.demo.__main__ import main as demo_main

    return demo_main(["--host", args.host, "--port", str(args.port), "--dir", args.dir])


COMMAND = Command(
    "demo",
    "serve the demo shop",
    "Serve the demo shop (needs the demo extra: pip install 'ferrosession[demo]').",
    _demo_args,
    _demo,
)
