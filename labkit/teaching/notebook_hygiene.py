"""Notebook hygiene: stored without outputs, and built the lab's way.

Each notebook must have a title, learning goals, a papermill-style ``parameters``
cell, and at least one "Your turn" exercise with a labkit self-check.

``python -m labkit.teaching.notebook_hygiene notebooks/*.ipynb`` checks;
``--strip`` removes outputs and execution counts in place first.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

CHECK_CALL = re.compile(r"\bcheck_\w+\s*\(")


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def problems(path: str | Path) -> list[str]:
    """Everything wrong with one notebook file (empty list: clean)."""
    path = Path(path)
    try:
        nb = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return [f"cannot read as JSON: {exc}"]
    cells = nb.get("cells", [])
    out: list[str] = []
    for i, c in enumerate(cells):
        if c.get("cell_type") == "code":
            if c.get("outputs"):
                out.append(f"cell {i} is stored with outputs (run `make strip`)")
            if c.get("execution_count") is not None:
                out.append(f"cell {i} is stored with an execution count (run `make strip`)")
    if nb.get("metadata", {}).get("widgets"):
        out.append("the notebook stores widget state in its metadata (run `make strip`)")
    md = [_source(c) for c in cells if c.get("cell_type") == "markdown"]
    code = [c for c in cells if c.get("cell_type") == "code"]
    if not cells or cells[0].get("cell_type") != "markdown" or not _source(cells[0]).lstrip().startswith("# "):
        out.append("the first cell must be a markdown title ('# ...')")
    if not any(re.search(r"learning goals|you will (see|learn)", m, re.I) for m in md[:3]):
        out.append("the opening cells must state the learning goals ('Learning goals' / 'you will see')")
    if not any("parameters" in c.get("metadata", {}).get("tags", []) for c in code):
        out.append("no code cell is tagged 'parameters' (papermill style)")
    if not any(re.search(r"your turn", m, re.I) for m in md):
        out.append("no 'Your turn' exercise")
    if not any(CHECK_CALL.search(_source(c)) for c in code):
        out.append("no exercise self-check (a labkit check_...() call)")
    solutions = [c for c in code if c.get("metadata", {}).get("nbgrader", {}).get("solution")]
    if not any("### BEGIN SOLUTION" in _source(c) and "### END SOLUTION" in _source(c) for c in solutions):
        out.append("no reference solution for the exercise (an nbgrader solution cell with a ### BEGIN SOLUTION / "
                   "### END SOLUTION region)")
    graded = [c for c in code if c.get("metadata", {}).get("nbgrader", {}).get("grade")]
    if not any(CHECK_CALL.search(_source(c)) and c["metadata"]["nbgrader"].get("points", 0) > 0 for c in graded):
        out.append("no autograded test cell (nbgrader grade=True with points) calling the exercise's check_...()")
    return out


def strip(path: str | Path) -> bool:
    """Remove outputs, execution counts and volatile metadata; return True if the file changed."""
    path = Path(path)
    text = path.read_text()
    nb = json.loads(text)
    for c in nb.get("cells", []):
        if c.get("cell_type") == "code":
            c["outputs"] = []
            c["execution_count"] = None
        meta = c.get("metadata", {})
        for key in ("execution", "collapsed", "scrolled", "ExecuteTime"):
            meta.pop(key, None)
    nb.get("metadata", {}).pop("widgets", None)
    new = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    if new != text:
        path.write_text(new)
        return True
    return False


def main(argv: list[str] | None = None) -> int:
    """Check (and with ``--strip`` first clean) the given notebooks; exit 1 on any problem."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("notebooks", nargs="+")
    ap.add_argument("--strip", action="store_true", help="strip outputs in place before checking")
    args = ap.parse_args(argv)
    bad = 0
    for p in args.notebooks:
        if args.strip and strip(p):
            print(f"stripped {p}")
        for msg in problems(p):
            print(f"{p}: {msg}")
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
