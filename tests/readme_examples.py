"""The README's Python examples: one list for tests/test_readme.py (which runs them) and
for ``make lint`` (which type-checks them with ``mypy --strict``).

``python tests/readme_examples.py DIR`` writes each example to ``DIR/readme_block_N.py``
(N as in ``BLOCKS[N]``, the same name test_readme gives the module it runs) and removes
the files of examples that no longer exist.
"""

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS: list[str] = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def module_name(index: int) -> str:
    return f"readme_block_{index}"


def write_examples(folder: Path) -> list[Path]:
    """Writes every block to ``folder`` as a module; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("readme_block_*.py"):
        stale.unlink()
    paths = []
    for index, block in enumerate(BLOCKS):
        path = folder / f"{module_name(index)}.py"
        path.write_text(block)
        paths.append(path)
    return paths


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} FOLDER")
    for written in write_examples(Path(sys.argv[1])):
        print(written)
