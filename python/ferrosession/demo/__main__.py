"""Serve the demo shop with uvicorn: ``python -m ferrosession.demo [--port N]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional


def main(argv: Optional[list[str]] = None) -> int:
    """Parse ``--host``, ``--port`` and ``--dir`` and serve the demo until Ctrl+C."""
    parser = argparse.ArgumentParser(
        prog="python -m ferrosession.demo",
        description="Serve the ferrosession demo shop (needs the 'demo' extra: "
        "pip install 'ferrosession[demo]').",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument(
        "--dir",
        default=".sessions",
        help="folder for the server-side sessions and the cart's signing key "
        "(default ./.sessions; delete it to start over)",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be 0-65535, not {args.port}")

    try:
        import uvicorn
    except ImportError:
        print(
            "the demo needs Starlette and uvicorn: pip install 'ferrosession[demo]'",
            file=sys.stderr,
        )
        return 2

    from ferrosession.demo.app import create_app

    app = create_app(args.dir)
    folder = Path(args.dir).resolve()
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"ferrosession demo shop: http://{host}:{args.port}/", flush=True)
    print(f"  sessions and the cart's signing key: {folder}/", flush=True)
    print("  press Ctrl+C to stop", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
