"""The notebook runner's own checks (``notebooks/conftest.py``), run over small notebooks as its control.

``make test-notebooks`` runs every course notebook once under nbval, and that file makes each code cell run twice
and fails on a figure shown twice in one cell. Here the same file runs over notebooks built to fail those checks:
a cell that only fails when re-run, a cell that returns a figure it did not close, and the parameters override of
notebook 08; a clean notebook passes.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbval")

REPO_ROOT = Path(__file__).resolve().parents[1]
FIGURE = "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.plot([1, 2, 3])\n"

CASES = {
    "clean.ipynb": [FIGURE + "plt.close(fig)\nfig", FIGURE + "plt.show()", "a = 1\na += 1"],
    "rerun.ipynb": ["a = 1", "del a"],  # the second run of the second cell fails
    "unclosed.ipynb": [FIGURE + "fig"],  # drawn by the inline backend and again as the cell's value
    "08_leaderboard.ipynb": ["MAX_BENCH_SECONDS = None", "assert MAX_BENCH_SECONDS == 5"],
}


def _write(path: Path, sources: list[str]) -> None:
    cells = [nbformat.v4.new_code_cell(source) for source in sources]
    if path.name == "08_leaderboard.ipynb":
        cells[0].metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_the_runner_reruns_every_cell_and_catches_a_figure_shown_twice(tmp_path: Path) -> None:
    folder = tmp_path / "notebooks"
    folder.mkdir()
    shutil.copy(REPO_ROOT / "notebooks" / "conftest.py", folder / "conftest.py")
    for name, sources in CASES.items():
        _write(folder / name, sources)
    done = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-rA", "-q",
                           "--rootdir", str(tmp_path), str(folder)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr
    outcome = {cell: result for result, cell in re.findall(r"^(PASSED|FAILED) \S*?(\w+\.ipynb::Cell \d+)", out,
                                                           re.M)}
    assert outcome == {"clean.ipynb::Cell 0": "PASSED", "clean.ipynb::Cell 1": "PASSED",
                       "clean.ipynb::Cell 2": "PASSED",
                       "rerun.ipynb::Cell 0": "PASSED", "rerun.ipynb::Cell 1": "FAILED",
                       "unclosed.ipynb::Cell 0": "FAILED",
                       "08_leaderboard.ipynb::Cell 0": "PASSED", "08_leaderboard.ipynb::Cell 1": "PASSED"}, out
    assert "second run: Cell execution caused an exception" in out and "NameError" in out
    assert "first run: the same figure is shown twice" in out
