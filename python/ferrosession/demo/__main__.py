"""Serve the demo shop with uvicorn."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    """Parse ``--host``, ``--port`` and ``--dir`` and serve the demo."""
    parser = argparse.ArgumentParser(prog="python -m ferrosession.demo")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--dir", default=".sessions", help="where server-side sessions live")
    args = parser.parse_args(argv)

    import uvicorn

    from ferrosession.demo.app import create_app

    print(f"ferrosession demo on http://{args.host}:{args.port}/ (sessions in {args.dir}/)")
    uvicorn.run(create_app(args.dir), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
