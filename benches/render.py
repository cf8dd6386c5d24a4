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
from typing import Any, Optional

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


def storage_table(data: dict[str, Any]) -> str:
    rows = ["| stack | storage | read overhead | write overhead |", "|---|---|--:|--:|"]
    for stack, cases in data["results"].items():
        names = list(dict.fromkeys(n for case in cases.values() for n in case))
        for name in names:
            cells = []
            for case in ("read", "write"):
                entry = cases.get(case, {}).get(name)
                cells.append(f"{entry['overhead_us']:.1f} µs" if entry else "-")
            rows.append(f"| {stack.upper()} | {name} | {cells[0]} | {cells[1]} |")
    rows += ["", "| goal | ratio | met |", "|---|--:|:-:|"]
    for goal in data["goals"]:
        rows.append(f"| {goal['name']} | {goal['ratio']:.2f} | {'yes' if goal['met'] else 'no'} |")
    return "\n".join(rows)


def primitives_table(data: dict[str, Any]) -> str:
    rows = ["| operation (100 bytes, wrap + unwrap) | µs | speed-up |", "|---|--:|--:|"]
    for result in data["results"].values():
        speedup = result.get("speedup")
        vs = f"{speedup:.1f}x {result['speedup_vs'].split('/', 1)[1]}" if speedup else ""
        rows.append(f"| {result['label']} | {result['per_op_us']['median']:.2f} | {vs} |")
    return "\n".join(rows)


def more_table() -> Optional[str]:
    """WSGI beside Flask's session, uvicorn + wrk, and resident memory, when present."""
    files = {n: RESULTS / f"{n}.json" for n in ("wsgi_overhead", "uvicorn_wrk", "memory")}
    if not all(f.exists() for f in files.values()):
        return None
    wsgi, wrk, mem = (json.loads(f.read_text()) for f in files.values())
    rows = ["| measure | figure | goal |", "|---|--:|--:|"]
    for case in ("read", "write"):
        c = wsgi["cases"][case]
        rows.append(
            f"| WSGI {case}: ferrosession / Flask default session overhead on a Flask app "
            f"({c['ferrosession_flask']['overhead_us']:.1f} / {c['flask']['overhead_us']:.1f} µs)"
            f" | {c['ratio']:.2f} | ≤ {c['goal']:.2f} ({'met' if c['met'] else 'not yet'}) |"
        )
    w = wrk["summary"]
    with_s, without = w["session"]["requests_per_s_median"], w["plain"]["requests_per_s_median"]
    how = f"{with_s:,.0f} / {without:,.0f} req/s"
    if "pairs" in w:  # the median of per-pair ratios, with its quartiles
        how = (
            f"median of {w['pairs']} paired runs, quartiles {w['pct_p25']:.1f} to "
            f"{w['pct_p75']:.1f} %; {how}"
        )
    rows.append(
        f"| uvicorn, 1 worker, wrk -c16: read case throughput vs no sessions "
        f"({how}) | {w['read_pct_of_plain']:.1f} % "
        f"| ≥ {w['goal_pct']:.0f} % "
        f"({'met' if w['met'] else 'not yet'}) |"
    )
    m = mem["scenarios"]
    rows.append(
        f"| resident memory, 1,000,000 MemoryStorage sessions (~100 B each) "
        f"| {m['memory_1m']['evaluation']['delta'] / 2**20:.0f} MiB | reported |"
    )
    for key, label in (
        ("memory_bounded", "MemoryStorage(max_entries=100,000), 1,000,000 writes"),
        ("directory_cache_full", "DirectoryStorage cache at cache_max_entries=100,000"),
    ):
        ev = m[key]["evaluation"]
        rows.append(
            f"| {label}: growth after reaching the bound "
            f"| {ev['growth_past_bound'] / 2**20:.1f} MiB | bounded "
            f"({'yes' if ev['bounded'] else 'no'}) |"
        )
    return "\n".join(rows)


def replace_block(text: str, marker: str, body: str) -> str:
    block = f"<!-- {marker} -->\n{body}\n<!-- /{marker} -->"
    pattern = f"<!-- {marker} -->.*?<!-- /{marker} -->"
    new, n = re.subn(pattern, lambda _: block, text, flags=re.S)
    if n != 1:
        raise SystemExit(f"README.md has no <!-- {marker} --> block")
    return new


def main() -> None:
    data = load()
    (RESULTS / "asgi_overhead.svg").write_text(svg(data))
    readme = ROOT / "README.md"
    text = replace_block(
        readme.read_text(),
        "perf-table",
        table(data) + "\n\n![overhead per request](benches/results/asgi_overhead.svg)",
    )
    storage = RESULTS / "storage_overhead.json"
    if storage.exists():
        text = replace_block(text, "perf-storage", storage_table(json.loads(storage.read_text())))
    primitives = RESULTS / "primitives.json"
    if primitives.exists():
        body = primitives_table(json.loads(primitives.read_text()))
        text = replace_block(text, "perf-primitives", body)
    more = more_table()
    if more is not None:
        text = replace_block(text, "perf-more", more)
    readme.write_text(text)
    print("wrote benches/results/asgi_overhead.svg and the README tables")


if __name__ == "__main__":
    main()
