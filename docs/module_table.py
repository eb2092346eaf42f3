"""DEVELOPING.md's module table, generated from the package: each labkit module and its docstring's first sentence.

``make docs`` (``python docs/module_table.py``) rewrites the table between the two markers in DEVELOPING.md;
``python docs/module_table.py --check`` exits 1 when the table is out of date (``tests/test_layout.py`` runs the check).
"""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEVELOPING = ROOT / "DEVELOPING.md"
BEGIN = "<!-- module table: generated from the package by `make docs`; do not edit by hand -->"
END = "<!-- end of the module table -->"
#: The layers from the bottom up; a module outside them (``__init__``, ``__main__``) comes first.
LAYERS = ("core", "synthesis", "methods", "studies", "teaching")


def first_sentence(docstring: str | None) -> str:
    """The first sentence of a docstring's first paragraph, in Markdown: reST roles and ````code```` become
    ```code```, and the sentence ends at a full stop outside brackets and code that a capital letter follows."""
    if not docstring:
        return "(no module docstring)"
    paragraph = " ".join(docstring.strip().split("\n\n")[0].split())
    paragraph = re.sub(r":[a-z]+:`~?(?:[\w.]+\.)?([\w]+)`", r"`\1`", paragraph).replace("``", "`")
    depth, in_code = 0, False
    for i, char in enumerate(paragraph):
        in_code ^= char == "`"
        depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(char, 0)
        if char == "." and depth == 0 and not in_code and paragraph[i + 1: i + 3].strip()[:1].isupper():
            return paragraph[: i + 1]
    return paragraph


def _order(path: Path, package: Path) -> tuple[int, str]:
    parts = path.relative_to(package).parts
    layer = LAYERS.index(parts[0]) + 1 if len(parts) > 1 and parts[0] in LAYERS else 0
    return layer, path.relative_to(package).as_posix()


def module_rows(package: Path = ROOT / "labkit") -> list[tuple[str, str]]:
    """``(path under labkit/, first sentence)`` for every module of the package, layer by layer from the bottom up."""
    files = sorted(package.rglob("*.py"), key=lambda p: _order(p, package))
    return [(p.relative_to(package).as_posix(), first_sentence(ast.get_docstring(ast.parse(p.read_text()))))
            for p in files]


def module_table(package: Path = ROOT / "labkit") -> str:
    """The Markdown table of :func:`module_rows`, between the markers."""
    lines = [BEGIN, "", "| module (under `labkit/`) | what it is |", "|---|---|"]
    lines += [f"| `{path}` | {text.replace('|', chr(92) + '|')} |" for path, text in module_rows(package)]
    return "\n".join([*lines, "", END])


def with_table(text: str, table: str) -> str:
    """``text`` with the part between the markers (markers included) replaced by ``table``."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"DEVELOPING.md lacks the markers {BEGIN!r} ... {END!r}")
    return text[:start] + table + text[end + len(END):]


def main(argv: list[str]) -> int:
    """Rewrite the table in DEVELOPING.md, or with ``--check`` report whether it is current."""
    text = DEVELOPING.read_text()
    updated = with_table(text, module_table())
    if "--check" in argv:
        if updated != text:
            print("DEVELOPING.md's module table is out of date: run `make docs`")
            return 1
        return 0
    if updated != text:
        DEVELOPING.write_text(updated)
        print("rewrote the module table in DEVELOPING.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
