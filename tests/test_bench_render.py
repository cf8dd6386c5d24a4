"""The README's performance figures, the opening pitch included, are those that
benches/render.py renders from the committed benches/results: they cannot disagree."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RESULTS = ROOT / "benches" / "results"


def load_render() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_render", ROOT / "benches" / "render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def block(text: str, marker: str) -> str:
    found = re.search(f"<!-- {marker} -->\n(.*?)\n<!-- /{marker} -->", text, flags=re.S)
    assert found is not None, marker
    return found.group(1)


def test_the_readme_and_the_chart_are_rendered_from_the_committed_results() -> None:
    render = load_render()
    readme, chart = render.render(README.read_text())
    assert README.read_text() == readme, "README.md differs: run .venv/bin/python benches/render.py"
    assert (RESULTS / "asgi_overhead.svg").read_text() == chart
    assert render.main(["--check"]) == 0


def test_every_block_has_its_results_and_its_place() -> None:
    # render() leaves a block alone when its results are missing: then nothing would be checked
    render = load_render()
    text = README.read_text()
    for marker, (names, _) in render.BLOCKS.items():
        assert text.count(f"<!-- {marker} -->") == 1, marker
        for name in names:
            assert (RESULTS / f"{name}.json").is_file(), name
    assert text.index("<!-- perf-pitch -->") < text.index("## Install")


def test_the_pitch_and_the_table_quote_the_same_figures(tmp_path: Path) -> None:
    render = load_render()
    for f in RESULTS.glob("*.json"):
        shutil.copy(f, tmp_path / f.name)
    data = json.loads((tmp_path / "asgi_overhead.json").read_text())
    data["cases"]["read"]["ferrosession"]["overhead_us"] = 9.87654
    (tmp_path / "asgi_overhead.json").write_text(json.dumps(data))
    readme, _ = render.render(README.read_text(), tmp_path)
    assert "reading a signed session costs 9.9 µs" in block(readme, "perf-pitch")
    assert "| read | " in block(readme, "perf-table")
    assert "| 9.88 µs |" in block(readme, "perf-table")


def test_a_figure_edited_by_hand_is_put_back() -> None:
    render = load_render()
    text = README.read_text()
    pitch = block(text, "perf-pitch")
    edited = text.replace(pitch, re.sub(r"costs [0-9.]+ µs", "costs 0.01 µs", pitch, count=1))
    assert edited != text
    assert render.render(edited)[0] == text
