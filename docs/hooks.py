"""MkDocs hook: the benchmark page shows README.md's tables, which ``make bench``
rewrites between ``<!-- perf-… -->`` markers, and the chart they link.

A line ``<!-- readme: NAME -->`` in a page becomes README's block between
``<!-- NAME -->`` and ``<!-- /NAME -->``; ``<!-- readme-table: HEAD -->`` becomes the
README table whose first cell is HEAD (the ASVS table on the security page: one copy).
``benches/results/*.svg`` are published as ``assets/bench/*.svg`` and README's links to
them are rewritten to that place.
"""

import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benches" / "results"
MARKER = re.compile(r"^<!-- readme: ([\w-]+) -->$", re.M)
TABLE_MARKER = re.compile(r"^<!-- readme-table: (.+?) -->$", re.M)


def readme_table(head: str) -> str:
    text = (ROOT / "README.md").read_text()
    found = re.search(rf"^\| {re.escape(head)} \|.*\n(?:\|.*\n)+", text, re.M)
    if found is None:
        raise ValueError(f"README.md has no table headed {head!r}")
    return found[0]


def readme_block(name: str) -> str:
    text = (ROOT / "README.md").read_text()
    found = re.search(rf"<!-- {re.escape(name)} -->\n(.*?)<!-- /{re.escape(name)} -->", text, re.S)
    if found is None:
        raise ValueError(f"README.md has no <!-- {name} --> block")
    return found[1]


def on_files(files: Files, config: Any) -> Files:
    for chart in sorted(RESULTS.glob("*.svg")):
        files.append(File.generated(config, f"assets/bench/{chart.name}", abs_src_path=str(chart)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    def block(match: re.Match[str]) -> str:
        depth = page.file.src_uri.count("/")
        prefix = "../" * depth + "assets/bench/"
        return readme_block(match[1]).replace("benches/results/", prefix)

    markdown = TABLE_MARKER.sub(lambda m: readme_table(m[1]), markdown)
    return MARKER.sub(block, markdown)
