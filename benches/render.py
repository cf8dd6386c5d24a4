"""Render the README's performance table and the overhead chart from benches/results.

    .venv/bin/python benches/render.py

Reads ``benches/results/asgi_overhead.json`` (written by ``make bench``), writes
``benches/results/asgi_overhead.svg`` (a bar chart of per-request overhead by case and
library, drawn here without a plotting dependency) and replaces the text between the
``<!-- perf-table -->`` markers in README.md.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benches" / "results"
LIBS = (
    ("starlette", "Starlette SessionMiddleware", "#9aa5b1"),
    ("ferrosession", "ferrosession", "#b5420e"),
)


def load() -> dict[str, Any]:
    return json.loads((RESULTS / "asgi_overhead.json").read_text())  # type: ignore[no-any-return]


def table(data: dict[str, Any]) -> str:
    env = data["environment"]
    rows = [
        "| case (signed cookie, ~100-byte session) | Starlette overhead | ferrosession overhead "
        "| ratio | goal |",
        "|---|--:|--:|--:|--:|",
    ]
    for case, c in data["cases"].items():
        met = "met" if c["met"] else "not yet"
        rows.append(
            f"| {case} | {c['starlette']['overhead_us']:.2f} µs "
            f"| {c['ferrosession']['overhead_us']:.2f} µs | {c['ratio']:.2f} "
            f"| ≤ {c['goal']:.2f} ({met}) |"
        )
    pk = env["packages"]
    rows.append("")
    rows.append(
        f"Overhead = median time per request through the middleware minus the bare ASGI app "
        f"({data['settings']['rounds']} interleaved rounds, in-process, no network). "
        f"{env['cpu']}, {env['nproc']} cores, Python {env['python']}, Starlette "
        f"{pk['starlette']}, ferrosession {pk['ferrosession']} "
        f"({env['ferrosession_build_profile']}), {env['date'][:10]}. Reproduce: `make bench`."
    )
    return "\n".join(rows)


def svg(data: dict[str, Any]) -> str:
    cases = list(data["cases"])
    peak = max(c[lib]["overhead_us"] for c in data["cases"].values() for lib, _, _ in LIBS)
    width, left, top, row_h, bar_h = 640, 70, 40, 56, 20
    scale = (width - left - 80) / peak
    height = top + row_h * len(cases) + 40
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="system-ui, sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        '<text x="10" y="20" font-size="14" font-weight="bold">Per-request overhead of a '
        "signed-cookie session (µs, lower is better)</text>",
    ]
    for i, case in enumerate(cases):
        y = top + i * row_h
        out.append(f'<text x="10" y="{y + bar_h + 4}">{html.escape(case)}</text>')
        for j, (lib, _, color) in enumerate(LIBS):
            value = data["cases"][case][lib]["overhead_us"]
            w = max(1.0, value * scale)
            by = y + j * (bar_h + 2)
            out.append(
                f'<rect x="{left}" y="{by}" width="{w:.1f}" height="{bar_h}" fill="{color}"/>'
            )
            out.append(f'<text x="{left + w + 6:.1f}" y="{by + 15}">{value:.2f}</text>')
    ly = height - 18
    for j, (_, label, color) in enumerate(LIBS):
        x = left + j * 230
        out.append(f'<rect x="{x}" y="{ly - 10}" width="12" height="12" fill="{color}"/>')
        out.append(f'<text x="{x + 18}" y="{ly}">{html.escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main() -> None:
    data = load()
    (RESULTS / "asgi_overhead.svg").write_text(svg(data))
    readme = ROOT / "README.md"
    text = readme.read_text()
    block = (
        "<!-- perf-table -->\n"
        + table(data)
        + "\n\n![overhead per request](benches/results/asgi_overhead.svg)\n<!-- /perf-table -->"
    )
    new, n = re.subn(
        r"<!-- perf-table -->.*?<!-- /perf-table -->", lambda _: block, text, flags=re.S
    )
    if n != 1:
        raise SystemExit("README.md has no <!-- perf-table --> block")
    readme.write_text(new)
    print("wrote benches/results/asgi_overhead.svg and the README table")


if __name__ == "__main__":
    main()
