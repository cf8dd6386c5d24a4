"""Render the README's performance figures and the overhead chart from benches/results.

    .venv/bin/python benches/render.py          # rewrite README.md and the chart
    .venv/bin/python benches/render.py --check  # exit 1 when they differ from the results

Every figure the README quotes (the opening pitch included) sits between
``<!-- NAME -->`` and ``<!-- /NAME -->`` markers and is produced here from
``benches/results/*.json`` (written by ``make bench``), so the pitch and the tables
cannot disagree. ``benches/results/asgi_overhead.svg`` is a bar chart of per-request
overhead by case and library, drawn without a plotting dependency.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
from pathlib import Path
from typing import Any, Callable, Optional

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benches" / "results"
README = ROOT / "README.md"
CHART = RESULTS / "asgi_overhead.svg"
LIBS = (
    ("starlette", "Starlette SessionMiddleware", "#9aa5b1"),
    ("ferrosession", "ferrosession", "#b5420e"),
)


def met(value: Optional[bool]) -> str:
    return "met" if value else "not yet"


def pitch(data: dict[str, Any]) -> str:
    c = data["cases"]
    ignore, read = c["ignore"], c["read"]
    return (
        f"**A request that never touches its session costs "
        f"{ignore['ferrosession']['overhead_us']:.1f} µs of middleware time, against\n"
        f"{ignore['starlette']['overhead_us']:.1f} µs for Starlette's `SessionMiddleware`; "
        f"reading a signed session costs {read['ferrosession']['overhead_us']:.1f} µs against\n"
        f"Starlette's {read['starlette']['overhead_us']:.1f} µs** (in-process medians, "
        "[Performance](#performance)). Nothing is\ndecoded and no Rust is called until a "
        "handler asks for a session."
    )


def about(data: dict[str, Any], what: str, **peers: str) -> str:
    """Where and when a result was measured; ``peers``: display name -> package."""
    env = data["environment"]
    versions = "".join(f"{name} {env['packages'][dist]}, " for name, dist in peers.items())
    return (
        f"{what} ({data['settings']['rounds']} interleaved rounds, in-process, no network). "
        f"{env['cpu']}, {env['nproc']} cores, Python {env['python']}, {versions}ferrosession "
        f"{env['packages']['ferrosession']} ({env['ferrosession_build_profile']}), "
        f"{env['date'][:10]}. Reproduce: `make bench`."
    )


def asgi_table(data: dict[str, Any]) -> str:
    rows = [
        "| case (signed cookie, ~100-byte session) | Starlette overhead | ferrosession overhead "
        "| ratio | goal |",
        "|---|--:|--:|--:|--:|",
    ]
    for case, c in data["cases"].items():
        rows.append(
            f"| {case} | {c['starlette']['overhead_us']:.2f} µs "
            f"| {c['ferrosession']['overhead_us']:.2f} µs | {c['ratio']:.2f} "
            f"| ≤ {c['goal']:.2f} ({met(c['met'])}) |"
        )
    rows += [
        "",
        about(
            data,
            "Overhead = median time per request through the middleware minus the bare ASGI app",
            Starlette="starlette",
        ),
        "",
        "![overhead per request](benches/results/asgi_overhead.svg)",
    ]
    return "\n".join(rows)


def configurations_table(data: dict[str, Any]) -> str:
    rows = [
        "| configuration | read overhead | read ratio | write overhead | write ratio | goal |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for e in data["configurations"].values():
        r, w = e["read"], e["write"]
        if r["met"] is None:  # the reference
            goal = "reference"
        else:
            verdict = "met" if r["met"] and w["met"] else "not yet"
            limits = (
                f"≤ {r['goal']:.1f}x"
                if r["goal"] == w["goal"]
                else f"read ≤ {r['goal']:.1f}x, write ≤ {w['goal']:.0f}x"
            )
            goal = f"{limits} ({verdict})"
        rows.append(
            f"| {e['label']} | {r['overhead_us']:.2f} µs | {r['ratio']:.2f} "
            f"| {w['overhead_us']:.2f} µs | {w['ratio']:.2f} | {goal} |"
        )
    what = (
        "Ratio = overhead / the reference's in the same run; read and write as in the table above"
    )
    rows += ["", about(data, what, pydantic="pydantic", msgspec="msgspec")]
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


def more_table(wsgi: dict[str, Any], wrk: dict[str, Any], mem: dict[str, Any]) -> str:
    """WSGI beside Flask's session, uvicorn + wrk, and resident memory."""
    rows = ["| measure | figure | goal |", "|---|--:|--:|"]
    for case in ("read", "write"):
        c = wsgi["cases"][case]
        rows.append(
            f"| WSGI {case}: ferrosession / Flask default session overhead on a Flask app "
            f"({c['ferrosession_flask']['overhead_us']:.1f} / {c['flask']['overhead_us']:.1f} µs)"
            f" | {c['ratio']:.2f} | ≤ {c['goal']:.2f} ({met(c['met'])}) |"
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
        f"({how}) | {w['read_pct_of_plain']:.1f} % | ≥ {w['goal_pct']:.0f} % ({met(w['met'])}) |"
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


# marker -> (the results it is rendered from, how)
BLOCKS: dict[str, tuple[tuple[str, ...], Callable[..., str]]] = {
    "perf-pitch": (("asgi_overhead",), pitch),
    "perf-table": (("asgi_overhead",), asgi_table),
    "perf-configurations": (("configurations",), configurations_table),
    "perf-storage": (("storage_overhead",), storage_table),
    "perf-primitives": (("primitives",), primitives_table),
    "perf-more": (("wsgi_overhead", "uvicorn_wrk", "memory"), more_table),
}


def replace_block(text: str, marker: str, body: str) -> str:
    block = f"<!-- {marker} -->\n{body}\n<!-- /{marker} -->"
    pattern = f"<!-- {marker} -->.*?<!-- /{marker} -->"
    new, n = re.subn(pattern, lambda _: block, text, flags=re.S)
    if n != 1:
        raise SystemExit(f"README.md has no <!-- {marker} --> block (or more than one)")
    return new


def render(readme: str, results: Path = RESULTS) -> tuple[str, str]:
    """The README with every block rendered from ``results``, and the chart. A block
    whose results are missing is left as it is (``make bench`` writes them all)."""
    for marker, (names, make) in BLOCKS.items():
        files = [results / f"{name}.json" for name in names]
        if all(f.exists() for f in files):
            body = make(*(json.loads(f.read_text()) for f in files))
            readme = replace_block(readme, marker, body)
    return readme, svg(json.loads((results / "asgi_overhead.json").read_text()))


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if README.md or the chart differ"
    )
    args = parser.parse_args(argv)
    readme, chart = render(README.read_text())
    if args.check:
        stale = [p.name for p, t in ((README, readme), (CHART, chart)) if p.read_text() != t]
        if stale:
            print(f"out of date with benches/results: {', '.join(stale)} (run benches/render.py)")
            return 1
        return 0
    README.write_text(readme)
    CHART.write_text(chart)
    print("wrote README.md's performance blocks and benches/results/asgi_overhead.svg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
