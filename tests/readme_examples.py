"""The README's Python examples: one list for tests/test_readme.py (which runs them) and
for ``make lint`` (which type-checks them with ``mypy --strict``); the documentation
site's (docs/**/*.md), extracted the same way, for tests/test_docs.py and the same lint.

``python tests/readme_examples.py DIR`` writes each example to ``DIR/readme_block_N.py``
(N as in ``BLOCKS[N]``, the same name test_readme gives the module it runs), each site
example to ``DIR/docs_PAGE_N.py`` (see ``doc_module_name``), and removes the files of
examples that no longer exist.
"""

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
DOCS = README.parent / "docs"


def python_blocks(markdown: str) -> list[str]:
    """The ```` ```python ```` fenced blocks of a Markdown text, in order."""
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.S)


BLOCKS: list[str] = python_blocks(README.read_text())
#: (page relative to docs/, index on that page) -> block, for every page of the site.
DOC_BLOCKS: dict[tuple[str, int], str] = {
    (page.relative_to(DOCS).as_posix(), index): block
    for page in sorted(DOCS.rglob("*.md"))
    for index, block in enumerate(python_blocks(page.read_text()))
}


def module_name(index: int) -> str:
    return f"readme_block_{index}"


def doc_module_name(page: str, index: int) -> str:
    """``guides/flask.md``, 1 -> ``docs_guides_flask_1``."""
    return "docs_" + re.sub(r"\W", "_", page.removesuffix(".md")) + f"_{index}"


def write_examples(folder: Path) -> list[Path]:
    """Writes every block to ``folder`` as a module; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in [*folder.glob("readme_block_*.py"), *folder.glob("docs_*.py")]:
        stale.unlink()
    paths = []
    named = [(module_name(i), b) for i, b in enumerate(BLOCKS)]
    named += [(doc_module_name(*key), b) for key, b in DOC_BLOCKS.items()]
    for name, block in named:
        path = folder / f"{name}.py"
        path.write_text(block)
        paths.append(path)
    return paths


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} FOLDER")
    for written in write_examples(Path(sys.argv[1])):
        print(written)
